#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks, builds FerroStack and runs it all-in-one
# on the embedded default (SQLite, in-process bus) with one QEMU compute host, `qemu-0`.
# Arguments go to `ferrostack all-in-one` (e.g. `--compute-driver fake`). State:
# $FERROSTACK_STATE_DIR (default /var/lib/ferrostack); the admin's clouds.yaml and
# admin-openrc are written there. On QEMU (the default) the test guest is registered as image
# `ferrostack-guest` with flavor `m1.nano`, so `openstack server create --image
# ferrostack-guest --flavor m1.nano --no-network --wait vm` boots at once.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
. scripts/lib.sh
install_packages build-essential pkg-config ca-certificates curl
# The network agent (bridges, DHCP namespaces) runs when these are present and we are root.
install_packages iproute2 dnsmasq-base nftables conntrack
# The default compute driver runs each server as a qemu-system process (KVM when a probe
# boot works, else TCG), its disks qcow2 overlays, its config drive an ISO. `--compute-driver
# fake` (passed through below) runs without them.
install_packages qemu-system-x86 qemu-utils genisoimage
require_rust
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/ferrostack-target}"
cargo build --release -p ferrostack
state="${FERROSTACK_STATE_DIR:-/var/lib/ferrostack}"
if [[ " $* " == *" fake "* || "${FERROSTACK_COMPUTE__DRIVER:-}" == fake ]]; then
    exec "$CARGO_TARGET_DIR/release/ferrostack" all-in-one --state-dir "$state" "$@"
fi
# On QEMU the cloud gets something to boot, as DevStack's cirros: the test guest of
# scripts/build-guest-image (built once, cached) as image `ferrostack-guest` and flavor
# `m1.nano`, registered on the first start.
img="$(bash scripts/build-guest-image | tail -1)"
"$CARGO_TARGET_DIR/release/ferrostack" all-in-one --state-dir "$state" "$@" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null' INT TERM
for _ in $(seq 300); do
    url="$(sed -n 's/^export OS_AUTH_URL=//p' "$state/admin-openrc" 2>/dev/null)"
    [[ -n "$url" ]] && curl -sf -o /dev/null "$url" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
done
if kill -0 "$pid" 2>/dev/null; then
    python3 scripts/register-guest.py "$state/admin-openrc" "$img" || echo "run-all-in-one: the test guest was not registered" >&2
fi
wait "$pid"
