#!/usr/bin/env bash
# Network dataplane benchmark (issue #7): FerroStack all-in-one (release build, SQLite,
# in-process bus, fake compute host `fake-0`) with its network agent under a prefix of its
# own, as root. The driver (bench/dataplane/driver.py, Python standard library only):
#  1. DHCP: DHCP_PORTS times, a port is created (bound to fake-0) and plugged as a
#     namespace "guest" behind a veth named as the port's tap; it reports the time from the
#     port's 201 until the network's dnsmasq knows the port (its hosts file names the MAC)
#     and until the guest holds its lease (busybox udhcpc started right after the plug).
#  2. Security groups: PORTS ports (the DHCP guests plus dummy taps) in one group holding
#     RULES rules; then ROUNDS times an ICMP rule is added and deleted, timing each change
#     from the API's answer until the host's nftables table has it (or no longer has it),
#     each confirmed by a ping from the network's DHCP namespace into the first guest.
# There is no Neutron peer on this machine: the figures are absolute, not ratios.
#
# Environment: DHCP_PORTS [20] PORTS [100] RULES [1000] ROUNDS [5]
#   OUT [/var/tmp/ferrostack-bench/dataplane-<time>] (server log and results)
#   FERROSTACK_BIN (a binary to use instead of building the release one)
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/ferrostack-target}"
. scripts/lib.sh
. bench/lib/cloud.bash
install_packages curl python3 iproute2 dnsmasq-base busybox nftables conntrack
export DHCP_PORTS="${DHCP_PORTS:-20}" PORTS="${PORTS:-100}" RULES="${RULES:-1000}" ROUNDS="${ROUNDS:-5}"
OUT="${OUT:-/var/tmp/ferrostack-bench/dataplane-$(date -u +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"

if [ -z "${FERROSTACK_BIN:-}" ]; then
  cargo build -q --release -p ferrostack
  FERROSTACK_BIN="$CARGO_TARGET_DIR/release/ferrostack"
fi
state=$(mktemp -d)
export PREFIX="b$(printf '%s' "$state" | sha256sum | cut -c1-3)"
cleanup() {
  stop_aio
  for p in "$state"/network/dhcp/*/pid; do [ -f "$p" ] && kill -KILL "$(cat "$p")" 2>/dev/null; done
  for ns in $(ip netns list | awk '{print $1}' | grep "^$PREFIX-" || true); do ip netns del "$ns"; done
  for l in $(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep "^$PREFIX" || true); do
    ip link del "$l" 2>/dev/null || true
  done
  nft delete table inet "${PREFIX}_sg" 2>/dev/null || true
  rm -rf "$state"
}
trap cleanup EXIT

start_aio "$OUT/server.log" \
  FERROSTACK_NETWORK_AGENT__ENABLED=true FERROSTACK_NETWORK_AGENT__PREFIX="$PREFIX" \
  "$FERROSTACK_BIN" --state-dir "$state" all-in-one --admin-password secret \
  --compute-driver fake --fake-hosts 1

echo "== dataplane: $DHCP_PORTS DHCP guests, $PORTS ports, $RULES rules (commit $(git rev-parse --short HEAD), $(nproc) cores)" >&2
IDENTITY_URL="http://127.0.0.1:$ID_PORT" NETWORK_URL="http://127.0.0.1:$NETWORK_PORT" \
  ADMIN_PASSWORD=secret STATE="$state" python3 bench/dataplane/driver.py | tee "$OUT/results.md"
echo "results in $OUT" >&2
