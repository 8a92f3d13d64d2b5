#!/usr/bin/env bash
# Identity benchmark: FerroStack against upstream Keystone, measured in the same run with the
# same driver (../shared/peers/bench-keystone.sh, wrk): password token issue, token validation
# and project list at concurrency 4 and 16; then FerroStack's validation again after 10,000
# revocation events; prints every figure and the ratios.
#
# Environment: DURATION [10] RUNS [1] CONCS ["4 16"] SKIP_PEER [0] (1: FerroStack only)
#   FS_PORT [5100] KS_PORT [5200] OUT [/var/tmp/ferrostack-bench/identity-<time>]
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$(pwd)
SHARED="${FERRO_SHARED:-$REPO/../shared}"
PEERS="$SHARED/peers"
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/ferrostack-target}"
. scripts/lib.sh
install_packages wrk memcached curl bc python3-venv
export DURATION="${DURATION:-10}" RUNS="${RUNS:-1}" CONCS="${CONCS:-4 16}" WARMUP="${WARMUP:-2}"
FS_PORT="${FS_PORT:-5100}"
KS_PORT="${KS_PORT:-5200}"
OUT="${OUT:-/var/tmp/ferrostack-bench/identity-$(date -u +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"

cargo build --release -p ferrostack
state=$(mktemp -d)
cleanup() {
  [ -n "${fs_pid:-}" ] && kill "$fs_pid" 2>/dev/null || true
  [ "${SKIP_PEER:-0}" = 1 ] || KS_PORT=$KS_PORT PEERS_DIR=/var/tmp/ferrostack-peers "$PEERS/setup-keystone.sh" stop >/dev/null 2>&1 || true
  rm -rf "$state"
}
trap cleanup EXIT

# FerroStack at Keystone's default bcrypt cost (12), as the peer.
FERROSTACK_IDENTITY__PORT=$FS_PORT FERROSTACK_IMAGE__PORT=${FS_IMAGE_PORT:-5101} FERROSTACK_IDENTITY__BCRYPT_COST=12 FERROSTACK_LOG=warn \
  "$CARGO_TARGET_DIR/release/ferrostack" all-in-one --state-dir "$state" --admin-password secret \
  --compute-driver fake &
fs_pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$FS_PORT/v3" >/dev/null && break; sleep 0.1; done

# The cost of one bcrypt verify at cost 12 on this machine, for the issue bound.
verify_ms=$(cargo run -q --release -p ferro-identity --example bcrypt_verify -- 12 2>/dev/null | tail -1 || true)

echo "== FerroStack (release) at http://127.0.0.1:$FS_PORT" >&2
SERVER_PIDS=$fs_pid SERVER_LABEL=ferrostack OUT_DIR="$OUT/ferrostack" \
  bash "$PEERS/bench-keystone.sh" "http://127.0.0.1:$FS_PORT" >&2

if [ "${SKIP_PEER:-0}" != 1 ]; then
  echo "== upstream Keystone (uWSGI, 2 workers, memcached) at http://127.0.0.1:$KS_PORT" >&2
  # keystone-manage bootstrap already talks to the cache: memcached must be up first.
  PEERS_DIR=/var/tmp/ferrostack-peers bash "$PEERS/memcached.sh" start >&2
  KS_CACHE=memcache KS_PORT=$KS_PORT PEERS_DIR=/var/tmp/ferrostack-peers "$PEERS/setup-keystone.sh" all >&2
  SERVER_PIDS="$(cat /var/tmp/ferrostack-peers/keystone/uwsgi.pid) $(pgrep -x memcached | head -1)" SERVER_LABEL=keystone \
    OUT_DIR="$OUT/keystone" bash "$PEERS/bench-keystone.sh" "http://127.0.0.1:$KS_PORT" >&2
fi

echo "== FerroStack validation after 10,000 revocation events" >&2
python3 bench/identity/revocations.py "http://127.0.0.1:$FS_PORT" 10000 >&2
SERVER_PIDS=$fs_pid SERVER_LABEL=ferrostack-revoked OUT_DIR="$OUT/ferrostack-revoked" TESTS=validate WARMUP=1 \
  bash "$PEERS/bench-keystone.sh" "http://127.0.0.1:$FS_PORT" >&2

python3 bench/identity/ratios.py "$OUT" "$verify_ms" | tee "$OUT/ratios.md"
echo "results in $OUT" >&2
