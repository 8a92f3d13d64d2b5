#!/usr/bin/env bash
# Boot benchmark (issue #5): all-in-one (release build) on the QEMU driver boots the test
# guest image (scripts/build-guest-image, kernel + initramfs as AKI/ARI) as 1 server, then as
# 4 concurrent servers, with no network; the driver (bench/boot/driver.py, Python standard
# library only) splits each server's time into FerroStack's own share (the API's create until
# the guest's qemu process started: the mtime of the pidfile QEMU writes once it runs) and
# the guest's boot (qemu started until the guest's marker line on its serial console), and
# also gives the time to ACTIVE. Target: FerroStack's own share < 300 ms per server. There is
# no Nova peer on this machine: the figures are absolute.
#
# Environment: ROUNDS [3] (each round: 1 server, then 4), FERROSTACK_BIN (instead of a
# release build).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/ferrostack-target}"
. scripts/lib.sh
. bench/lib/cloud.bash
install_packages curl python3 qemu-system-x86 qemu-utils genisoimage cpio busybox >&2
export ROUNDS="${ROUNDS:-3}"
if [ -z "${FERROSTACK_BIN:-}" ]; then
  cargo build -q --release -p ferrostack
  FERROSTACK_BIN="$CARGO_TARGET_DIR/release/ferrostack"
fi
IMG="$(bash scripts/build-guest-image | tail -1)"
# Short: QMP sockets live under the state directory (unix paths < 108 bytes).
state=$(mktemp -d /tmp/fbb.XXXXXX)
stop() {
  stop_aio
  for p in "$state"/state/qemu/*/vms/*/qemu.pid; do
    [ -f "$p" ] && kill -KILL "$(cat "$p")" 2>/dev/null
  done
  rm -rf "$state"
}
trap stop EXIT
start_aio "$state/log" FERROSTACK_COMPUTE__QEMU_PROBE_KERNEL="$IMG/vmlinuz" \
  "$FERROSTACK_BIN" --state-dir "$state/state" all-in-one --admin-password secret \
  --compute-driver qemu --fake-hosts 1
echo "== boot: the guest image, 1 then 4 concurrent servers, $ROUNDS rounds (commit $(git rev-parse --short HEAD), $(nproc) cores)" >&2
IDENTITY_URL="http://127.0.0.1:$ID_PORT" IMAGE_URL="http://127.0.0.1:$IMAGE_PORT" \
  COMPUTE_URL="http://127.0.0.1:$COMPUTE_PORT/v2.1" ADMIN_PASSWORD=secret \
  GUEST_IMAGE="$IMG" VMS_DIR="$state/state/qemu/qemu-0/vms" \
  python3 bench/boot/driver.py
