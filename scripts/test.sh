#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, unit and whole-cloud tests on
# SQLite, the same tests on PostgreSQL and MariaDB, the real openstack CLI end to end, and
# Tempest's identity, image, object storage and network API tests against all-in-one. Installs what is missing (Debian 12, root).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/ferrostack-target}"
export CARGO_TERM_COLOR=never
. scripts/lib.sh

passed=0
failed=0
# Adds the counts of cargo test's "test result:" lines in a log to the totals.
count_cargo() {
  local p f
  p=$(grep -E '^test result:' "$1" | sed -E 's/.* ([0-9]+) passed.*/\1/' | paste -sd+ | bc)
  f=$(grep -E '^test result:' "$1" | sed -E 's/.* ([0-9]+) failed.*/\1/' | paste -sd+ | bc)
  passed=$((passed + ${p:-0}))
  failed=$((failed + ${f:-0}))
}
step() { echo; echo "=== $* ($(date -u +%H:%M:%S))"; }
# A hung test must fail the run in minutes, not eat CI's whole time limit.
bounded() { timeout --kill-after=30 "$@"; }

install_packages build-essential pkg-config ca-certificates curl bc python3-venv
# The QEMU driver's unit tests make qcow2 overlays and config drive ISOs.
install_packages qemu-utils genisoimage
require_rust
rustup component add rustfmt clippy >/dev/null 2>&1 || true

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --all-targets -- -D warnings

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

step "unit and whole-cloud tests (SQLite)"
cargo test --workspace --no-run
bounded 900 cargo test --workspace 2>&1 | tee "$logs/sqlite.log"
count_cargo "$logs/sqlite.log"

step "whole-cloud tests on PostgreSQL and MariaDB"
start_databases
for engine in postgres mysql; do
  FERRO_TEST_DB=$engine bounded 900 cargo test -p ferro-testkit 2>&1 | tee "$logs/$engine.log"
  count_cargo "$logs/$engine.log"
done

step "message bus contract on RabbitMQ"
start_rabbitmq
export FERRO_TEST_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f
bounded 600 cargo test -p ferro-bus 2>&1 | tee "$logs/amqp.log"
count_cargo "$logs/amqp.log"

step "compute whole-cloud tests with the bus on RabbitMQ"
# Each test cloud names its queues ferrotest-<id>; they are removed afterwards.
FERRO_TEST_BUS=amqp bounded 600 cargo test -p ferro-testkit --test it -- \
  servers server_ resize instance_actions compute 2>&1 | tee "$logs/amqp-cloud.log"
count_cargo "$logs/amqp-cloud.log"
{ timeout 120 rabbitmqctl -q list_queues name 2>/dev/null | grep '^ferrotest-' || true; } |
  while read -r q; do rabbitmqctl -q delete_queue "$q" </dev/null >/dev/null || true; done

step "end to end: the openstack CLI against all-in-one"
cargo build -p ferrostack
bounded 1800 bash tests/e2e/run.sh 2>&1 | tee "$logs/e2e.log" || true
line=$(grep -E '^e2e: [0-9]+ passed, [0-9]+ failed' "$logs/e2e.log" | tail -1)
[ -n "$line" ] || { echo "e2e produced no result line"; exit 1; }
passed=$((passed + $(echo "$line" | sed -E 's/e2e: ([0-9]+) passed.*/\1/')))
failed=$((failed + $(echo "$line" | sed -E 's/.* ([0-9]+) failed/\1/')))

step "the QEMU driver with real guests (TCG)"
install_packages qemu-system-x86 qemu-utils genisoimage cpio
scripts/build-guest-image | tail -1
cargo clippy -p ferro-virt --features qemu-tests --all-targets -- -D warnings
bounded 600 cargo test -p ferro-virt --features qemu-tests --test it 2>&1 | tee "$logs/qemu.log"
count_cargo "$logs/qemu.log"

step "the network dataplane on this host (bridges, namespaces, dnsmasq)"
install_packages iproute2 dnsmasq-base busybox nftables conntrack
cargo clippy -p ferro-testkit --features dataplane-tests --all-targets -- -D warnings
bounded 600 cargo test -p ferro-testkit --features dataplane-tests --test dataplane 2>&1 |
  tee "$logs/dataplane.log"
count_cargo "$logs/dataplane.log"

# count_gate LOG NAME: adds the counts of the line `NAME: N passed, M failed` in LOG.
count_gate() {
  local line
  line=$(grep -E "^$2: [0-9]+ passed, [0-9]+ failed" "$1" | tail -1)
  [ -n "$line" ] || { echo "$2 produced no result line"; exit 1; }
  passed=$((passed + $(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')))
  failed=$((failed + $(echo "$line" | sed -E 's/.* ([0-9]+) failed/\1/')))
}

step "Tempest: identity, image and object storage"
bounded 1200 bash tests/tempest/run.sh 2>&1 | tee "$logs/tempest.log" || true
count_gate "$logs/tempest.log" tempest-gate

step "Tempest: network (with the network agent)"
bounded 900 bash tests/tempest/network.sh 2>&1 | tee "$logs/tempest-network.log" || true
count_gate "$logs/tempest-network.log" tempest-network-gate

echo
echo "all: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
