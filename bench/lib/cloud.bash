# shellcheck shell=bash
# Starting and stopping the FerroStack all-in-one a benchmark measures (sourced by
# bench/*/run.sh, never run).

# free_port: a TCP port free on 127.0.0.1 now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_aio LOG [VAR=value...] BINARY ARGS...: starts `BINARY ARGS...` (an all-in-one) in the
# background with every service on a free port (ID_PORT, IMAGE_PORT, PLACEMENT_PORT,
# COMPUTE_PORT, NETWORK_PORT, OBJECT_PORT, METADATA_PORT), warnings-only logging into LOG,
# bcrypt cost 4 and no network agent — the VARs given override these —, sets fs_pid and
# returns once identity, compute and network answer (or after 30 s).
start_aio() {
  local log=$1
  shift
  ID_PORT=$(free_port) IMAGE_PORT=$(free_port) PLACEMENT_PORT=$(free_port) COMPUTE_PORT=$(free_port)
  NETWORK_PORT=$(free_port) OBJECT_PORT=$(free_port) METADATA_PORT=$(free_port)
  env NO_COLOR=1 FERROSTACK_LOG=warn FERROSTACK_IDENTITY__BCRYPT_COST=4 \
    FERROSTACK_IDENTITY__PORT="$ID_PORT" FERROSTACK_IMAGE__PORT="$IMAGE_PORT" \
    FERROSTACK_PLACEMENT__PORT="$PLACEMENT_PORT" FERROSTACK_COMPUTE__PORT="$COMPUTE_PORT" \
    FERROSTACK_NETWORK__PORT="$NETWORK_PORT" FERROSTACK_OBJECT__PORT="$OBJECT_PORT" \
    FERROSTACK_COMPUTE__METADATA_PORT="$METADATA_PORT" FERROSTACK_NETWORK_AGENT__ENABLED=false \
    "$@" >"$log" 2>&1 &
  fs_pid=$!
  local port
  for port in "$ID_PORT" "$COMPUTE_PORT" "$NETWORK_PORT"; do
    for _ in $(seq 300); do
      curl -s -o /dev/null "http://127.0.0.1:$port/" && break
      kill -0 "$fs_pid" 2>/dev/null || return 1
      sleep 0.1
    done
  done
}

# stop_aio: stops the all-in-one start_aio started, if it runs.
stop_aio() {
  if [ -n "${fs_pid:-}" ]; then
    kill "$fs_pid" 2>/dev/null || true
    wait "$fs_pid" 2>/dev/null || true
  fi
  fs_pid=""
}
