#!/usr/bin/env bash
# Image data throughput: a 1 GiB image uploaded to and downloaded from FerroStack's image API
# (release build, file store), against copying the same bytes with dd to the same disk in the
# same run. Both write paths end with an fsync (the store syncs before it renames), both
# read paths read a file of the same size; page cache is dropped before every timed step.
# Prints each figure, then the ratios (FerroStack MB/s over dd MB/s; target >= 0.8).
#
# Environment: SIZE_MIB [1024] RUNS [3] FS_PORT [5110] FS_IMAGE_PORT [5111]
#   WORK [/var/tmp/ferrostack-bench/image] (the disk both sides write to)
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/ferrostack-target}"
. scripts/lib.sh
install_packages curl
SIZE_MIB="${SIZE_MIB:-1024}" RUNS="${RUNS:-3}"
FS_PORT="${FS_PORT:-5110}" FS_IMAGE_PORT="${FS_IMAGE_PORT:-5111}"
WORK="${WORK:-/var/tmp/ferrostack-bench/image}"
mkdir -p "$WORK"

cargo build -q --release -p ferrostack
state="$WORK/state"
rm -rf "$state"
cleanup() {
  [ -n "${fs_pid:-}" ] && kill "$fs_pid" 2>/dev/null || true
  rm -rf "$state" "$WORK/dd.out" "$WORK/down.out"
}
trap cleanup EXIT
FERROSTACK_IDENTITY__PORT=$FS_PORT FERROSTACK_IMAGE__PORT=$FS_IMAGE_PORT FERROSTACK_IDENTITY__BCRYPT_COST=4 \
  FERROSTACK_LOG=warn "$CARGO_TARGET_DIR/release/ferrostack" all-in-one --state-dir "$state" \
  --admin-password secret --compute-driver fake >"$WORK/server.log" 2>&1 &
fs_pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$FS_PORT/v3" >/dev/null && break; sleep 0.1; done

# Random bytes (incompressible, no sparse shortcuts), made once and kept.
src="$WORK/src-${SIZE_MIB}M.img"
[ -f "$src" ] || head -c "$((SIZE_MIB << 20))" /dev/urandom >"$src"

token=$(curl -sf -D - -o /dev/null -H 'Content-Type: application/json' \
  -d '{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"admin","domain":{"id":"default"},"password":"secret"}}},"scope":{"project":{"name":"admin","domain":{"id":"default"}}}}}' \
  "http://127.0.0.1:$FS_PORT/v3/auth/tokens" | awk -F': ' 'tolower($1)=="x-subject-token" {print $2}' | tr -d '\r')
api="http://127.0.0.1:$FS_IMAGE_PORT/v2/images"

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }
# secs CMD...: wall seconds of one run of CMD.
secs() { local t0 t1; t0=$(date +%s.%N); "$@"; t1=$(date +%s.%N); echo "$t1 - $t0" | bc -l; }
mbps() { echo "scale=1; $SIZE_MIB * 1.048576 / $1" | bc -l; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

dd_w=() dd_r=() up=() down=()
for run in $(seq "$RUNS"); do
  drop_caches
  dd_w+=("$(secs dd if="$src" of="$WORK/dd.out" bs=1M conv=fsync status=none)")
  drop_caches
  dd_r+=("$(secs dd if="$WORK/dd.out" of=/dev/null bs=1M status=none)")
  rm -f "$WORK/dd.out"

  id=$(curl -sf -H "X-Auth-Token: $token" -H 'Content-Type: application/json' \
    -d '{"name":"bench","disk_format":"raw","container_format":"bare"}' "$api" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  drop_caches
  up+=("$(secs curl -sf -o /dev/null -X PUT -H "X-Auth-Token: $token" \
    -H 'Content-Type: application/octet-stream' -T "$src" "$api/$id/file")")
  drop_caches
  down+=("$(secs curl -sf -o /dev/null -H "X-Auth-Token: $token" "$api/$id/file")")
  curl -sf -o /dev/null -X DELETE -H "X-Auth-Token: $token" "$api/$id"
  echo "run $run: dd write ${dd_w[-1]}s read ${dd_r[-1]}s; upload ${up[-1]}s download ${down[-1]}s" >&2
done

m() { printf '%s\n' "$@" | median; }
w=$(m "${dd_w[@]}") r=$(m "${dd_r[@]}") u=$(m "${up[@]}") d=$(m "${down[@]}")
echo "| ${SIZE_MIB} MiB, median of $RUNS | seconds | MB/s | ratio to dd |"
echo "|---|---|---|---|"
echo "| dd write (conv=fsync) | $(printf %.2f "$w") | $(mbps "$w") | 1 |"
echo "| image upload (PUT .../file) | $(printf %.2f "$u") | $(mbps "$u") | $(echo "scale=2; $w / $u" | bc -l) |"
echo "| dd read | $(printf %.2f "$r") | $(mbps "$r") | 1 |"
echo "| image download (GET .../file) | $(printf %.2f "$d") | $(mbps "$d") | $(echo "scale=2; $r / $d" | bc -l) |"
