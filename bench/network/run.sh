#!/usr/bin/env bash
# Port-creation benchmark (issue #6): 16 concurrent clients create 2,000 ports on one /20
# subnet through the network API of an all-in-one (release build, fake compute), first on
# SQLite, then on PostgreSQL; the driver (bench/network/driver.py, Python standard library
# only) prints the rate, p50/p99 latency, and checks that no IP or MAC was handed out twice.
# There is no Neutron peer on this machine: the figures are absolute.
#
# Environment: PORTS [2000] CLIENTS [16] ENGINES [sqlite postgres]
#   PG_URL [postgres://ferro:ferro@127.0.0.1:5432] FERROSTACK_BIN (instead of a release build)
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/ferrostack-target}"
. scripts/lib.sh
. bench/lib/cloud.bash
install_packages curl python3
export PORTS="${PORTS:-2000}" CLIENTS="${CLIENTS:-16}"
ENGINES="${ENGINES:-sqlite postgres}"
PG_URL="${PG_URL:-postgres://ferro:ferro@127.0.0.1:5432}"
if [ -z "${FERROSTACK_BIN:-}" ]; then
  cargo build -q --release -p ferrostack
  FERROSTACK_BIN="$CARGO_TARGET_DIR/release/ferrostack"
fi
state=""
db=""
stop() {
  stop_aio
  [ -n "$state" ] && rm -rf "$state"
  if [ -n "$db" ]; then psql "$PG_URL/postgres" -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true; fi
  db=""
}
trap stop EXIT

echo "== network: $PORTS ports by $CLIENTS clients on one /20 (commit $(git rev-parse --short HEAD), $(nproc) cores)" >&2
echo "| engine | ports | clients | seconds | ports/s | p50 ms | p99 ms | duplicate IPs | duplicate MACs | errors |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for engine in $ENGINES; do
  state=$(mktemp -d)
  url=""
  if [ "$engine" = postgres ]; then
    start_databases >/dev/null
    db="bench_net_$$"
    psql "$PG_URL/postgres" -qc "CREATE DATABASE $db" >/dev/null
    url="$PG_URL/$db"
  fi
  start_aio "$state.log" ${url:+FERROSTACK_DATABASE__URL=$url} \
    "$FERROSTACK_BIN" --state-dir "$state" all-in-one --admin-password secret \
    --compute-driver fake --fake-hosts 1
  IDENTITY_URL="http://127.0.0.1:$ID_PORT" NETWORK_URL="http://127.0.0.1:$NETWORK_PORT" \
    ADMIN_PASSWORD=secret ENGINE="$engine" \
    python3 bench/network/driver.py
  stop
  rm -f "$state.log"
done
