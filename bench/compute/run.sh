#!/usr/bin/env bash
# Compute control-plane benchmark (issue #4): FerroStack all-in-one (release build, SQLite,
# in-process bus) with HOSTS fake compute hosts in one process; SERVERS servers
# (`networks: none`, microversion 2.37) created by CLIENTS concurrent clients, each waiting
# for ACTIVE before its next create; then all deleted the same way. The driver
# (crates/ferrostack/examples/bench_compute.rs) prints create latency p50/p99 (as the control
# plane recorded it, and as a polling client saw it), the POST's own latency, the wall time
# until all are ACTIVE and until all are gone, and the scheduler's time per decision, read from
# the server's `ferro_compute::scheduler` debug events; each against the issue's targets
# (control-plane create→ACTIVE p50 < 20 ms; scheduler < 1 ms per decision at 1,000 hosts).
# There is no upstream Nova peer on this machine: the figures are absolute, not ratios.
#
# Environment: SERVERS [1000] CLIENTS [16] HOSTS [1000] POLL_MS [10]
#   REPORT_INTERVAL [10] (seconds between the fake hosts' heartbeats, Nova's default)
#   QUICK=1 for a short run (SERVERS=200 HOSTS=100 unless set)
#   OUT [/var/tmp/ferrostack-bench/compute-<time>] (server log and results)
#   FERROSTACK_BIN (another server binary to measure) BENCH_LOG (the server's log filter)
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/ferrostack-target}"
. scripts/lib.sh
. bench/lib/cloud.bash
install_packages curl python3
if [ "${QUICK:-0}" = 1 ]; then
  SERVERS="${SERVERS:-200}" HOSTS="${HOSTS:-100}"
fi
export SERVERS="${SERVERS:-1000}" CLIENTS="${CLIENTS:-16}" HOSTS="${HOSTS:-1000}" POLL_MS="${POLL_MS:-10}"
REPORT_INTERVAL="${REPORT_INTERVAL:-10}"
OUT="${OUT:-/var/tmp/ferrostack-bench/compute-$(date -u +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"

# FERROSTACK_BIN names another server binary to measure (an older build, say); the driver
# is this tree's either way.
cargo build -q --release -p ferrostack --bin ferrostack --example bench_compute
BIN="${FERROSTACK_BIN:-$CARGO_TARGET_DIR/release/ferrostack}"
state=$(mktemp -d)
cleanup() {
  stop_aio
  rm -rf "$state"
}
trap cleanup EXIT

# The scheduler's per-decision timings are debug events of their own target.
start_aio "$OUT/server.log" FERROSTACK_LOG="${BENCH_LOG:-warn,ferro_compute::scheduler=debug}" \
  FERROSTACK_COMPUTE__REPORT_INTERVAL="$REPORT_INTERVAL" \
  "$BIN" --state-dir "$state" all-in-one --admin-password secret \
  --compute-driver fake --fake-hosts "$HOSTS"

echo "== $SERVERS servers, $CLIENTS clients, $HOSTS fake hosts (commit $(git rev-parse --short HEAD), $(nproc) cores)" >&2
t0=$(date +%s)
IDENTITY_URL="http://127.0.0.1:$ID_PORT" COMPUTE_URL="http://127.0.0.1:$COMPUTE_PORT" \
  IMAGE_URL="http://127.0.0.1:$IMAGE_PORT" ADMIN_PASSWORD=secret LOG="$OUT/server.log" \
  "$CARGO_TARGET_DIR/release/examples/bench_compute" | tee "$OUT/results.md"
# Server CPU over the whole run (start-up, registration, creates, deletes), from /proc.
ticks=$(awk '{print $14 + $15}' "/proc/$fs_pid/stat")
echo "- server CPU over the run: $(echo "scale=1; $ticks / $(getconf CLK_TCK)" | bc -l) s in $(($(date +%s) - t0)) s wall" | tee -a "$OUT/results.md"
echo "results in $OUT" >&2
