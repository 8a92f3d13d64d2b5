#!/usr/bin/env bash
# Object storage benchmark (issue #8), an A/B run in one go: upstream Swift (from PyPI, set up
# by ../shared/peers/setup-swift.sh: proxy + account/container/object servers, 4 devices) and
# FerroStack all-in-one (release build, 4 local devices), both with REPLICAS replicas, measured
# one after the other by the same load script, ../shared/peers/bench-swift.sh (wrk and curl):
# 4 KiB PUT and GET at concurrency 16, a 64 MiB PUT and GET, the JSON listing of a
# 10,000-object container, server CPU and peak RSS. Both servers fsync an object before its
# 201; neither runs its replicator or auditor during the run (setup-swift.sh starts none;
# FerroStack's first passes run at start, over empty devices, the next an hour later).
# Then bench/object/ratios.py prints FerroStack over Swift for each figure.
#
# Environment: REPLICAS [3]  DURATION [10] RUNS [3] (per wrk test)  NLIST [10000]  BIG_MB [64]
#   QUIET_MAX_WAIT [20] (seconds a run waits for the shared machine to go quiet)
#   WORK [/var/tmp/ferrostack-bench/object]  OUT [$WORK/results-<UTC time>]
#   SWIFT_PROXY_PORT [18080] (Swift's servers on 16200-16202)  FERROSTACK_BIN (skip the build)
#   SERVERS ["ferrostack swift"]: `SERVERS=ferrostack` measures FerroStack alone (no ratios),
#   for quick iterations; with TESTS (bench-swift.sh's: put4k get4k bigput bigget list) and
#   e.g. `DURATION=5 RUNS=1` it takes a minute or two. Figures for docs come from a full run.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$(pwd)
SHARED="${FERRO_SHARED:-$REPO/../shared}"
PEERS="$SHARED/peers"
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/ferrostack-target}"
. scripts/lib.sh
. bench/lib/cloud.bash
install_packages curl wrk memcached
export REPLICAS="${REPLICAS:-3}" DURATION="${DURATION:-10}" RUNS="${RUNS:-3}"
export NLIST="${NLIST:-10000}" BIG_MB="${BIG_MB:-64}" QUIET_MAX_WAIT="${QUIET_MAX_WAIT:-20}"
export CONCS=16 NDEVS=4
WORK="${WORK:-/var/tmp/ferrostack-bench/object}"
OUT="${OUT:-$WORK/results-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
export PROXY_PORT="${SWIFT_PROXY_PORT:-18080}" OBJ_PORT=16200 CONT_PORT=16201 ACCT_PORT=16202

if [ -z "${FERROSTACK_BIN:-}" ]; then
  cargo build -q --release -p ferrostack
  FERROSTACK_BIN="$CARGO_TARGET_DIR/release/ferrostack"
fi
state="$WORK/state"
cleanup() {
  stop_aio
  bash "$PEERS/setup-swift.sh" stop >/dev/null 2>&1 || true
  rm -rf "$state"
}
trap cleanup EXIT INT TERM

SERVERS="${SERVERS:-ferrostack swift}"

# ---- FerroStack ---------------------------------------------------------------------------
rm -rf "$state"
start_aio "$OUT/ferrostack-server.log" FERROSTACK_OBJECT__REPLICAS="$REPLICAS" \
  FERROSTACK_OBJECT__DEVICES='["d1","d2","d3","d4"]' \
  FERROSTACK_OBJECT__REPLICATOR_INTERVAL=3600 FERROSTACK_OBJECT__AUDITOR_INTERVAL=3600 \
  "$FERROSTACK_BIN" all-in-one --state-dir "$state" --config /dev/null --admin-password secret \
  --compute-driver fake
port=$ID_PORT object_port=$OBJECT_PORT
# Identity answers before bootstrap has made the admin: retry the first login a while.
for _ in $(seq 100); do
  curl -sf -D "$OUT/token-headers" -o "$OUT/token.json" -H 'Content-Type: application/json' \
    -d '{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"admin","domain":{"id":"default"},"password":"secret"}}},"scope":{"project":{"name":"admin","domain":{"id":"default"}}}}}' \
    "http://127.0.0.1:$port/v3/auth/tokens" && break
  sleep 0.3
done
token=$(awk -F': ' 'tolower($1)=="x-subject-token" {print $2}' "$OUT/token-headers" | tr -d '\r')
project=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["token"]["project"]["id"])' "$OUT/token.json")
SERVER_PIDS="$fs_pid" SERVER_LABEL="ferrostack-r$REPLICAS" OUT_DIR="$OUT/ferrostack" \
  STORAGE_URL="http://127.0.0.1:$object_port/v1/AUTH_$project" AUTH_TOKEN="$token" \
  bash "$PEERS/bench-swift.sh"
stop_aio
case " $SERVERS " in *" swift "*) ;; *) echo "results in $OUT (FerroStack only)" >&2; exit 0 ;; esac

# ---- upstream Swift -----------------------------------------------------------------------
bash "$PEERS/setup-swift.sh" install >&2
bash "$PEERS/setup-swift.sh" configure >&2
bash "$PEERS/setup-swift.sh" start >&2
swift_pids="$(cat /tmp/peers/swift/run/*.pid) $(cat /tmp/peers/memcached/memcached.pid 2>/dev/null || true)"
SERVER_PIDS="$swift_pids" SERVER_LABEL="swift-r$REPLICAS" OUT_DIR="$OUT/swift" \
  bash "$PEERS/bench-swift.sh" "http://127.0.0.1:$PROXY_PORT/auth/v1.0"
bash "$PEERS/setup-swift.sh" stop >&2

python3 bench/object/ratios.py "$OUT/swift/results.jsonl" "$OUT/ferrostack/results.jsonl" | tee "$OUT/ratios.md"
echo "results in $OUT" >&2
