#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks, builds FerroStack and runs it all-in-one
# on the embedded default (SQLite, in-process bus) with one QEMU compute host, `qemu-0`.
# Arguments go to `ferrostack all-in-one` (e.g. `--compute-driver fake`). State:
# $FERROSTACK_STATE_DIR (default /var/lib/ferrostack); the admin's clouds.yaml and
# admin-openrc are written there.
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
exec "$CARGO_TARGET_DIR/release/ferrostack" all-in-one --state-dir "${FERROSTACK_STATE_DIR:-/var/lib/ferrostack}" "$@"
