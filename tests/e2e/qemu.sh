#!/usr/bin/env bash
# End-to-end test of real guests with the real `openstack` CLI: all-in-one on the QEMU driver
# (root; qemu-system-x86, qemu-utils, genisoimage, cpio), the guest test image of
# scripts/build-guest-image uploaded as AKI + ARI + AMI, `server create --wait` to ACTIVE,
# and the guest's serial console showing the marker, the server's id read from the config
# drive and the user data; stop/start, reboot and rebuild bring the marker again; the guest
# outlives a restart of the cloud and stays manageable; delete leaves no qemu process or
# guest directory.
# Run alone:  PATH=/var/tmp/ferrostack-e2e-venv/bin:$PATH tests/e2e/qemu.sh
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
# shellcheck source=lib/checks.bash
source "$HERE/lib/checks.bash"
FERROSTACK_BIN="${FERROSTACK_BIN:-${CARGO_TARGET_DIR:-/var/tmp/ferrostack-target}/debug/ferrostack}"
while IFS= read -r v; do unset "$v"; done < <(compgen -e | grep -E '^OS_' || true)
MARKER=FERROSTACK-GUEST-READY

# shellcheck source=../../scripts/lib.sh
. "$ROOT/scripts/lib.sh"
install_packages qemu-system-x86 qemu-utils genisoimage cpio >&2
IMG="$(bash "$ROOT/scripts/build-guest-image" | tail -1)"

# Short: the guests' QMP sockets live under the state directory (unix paths < 108 bytes).
WORK="$(mktemp -d /tmp/fe2e-q.XXXXXX)"
SERVER_PID=""
cleanup() {
    local rc=$?
    stop_cloud
    # Guests outlive the agent by design: end this test's ones by their pidfiles.
    for p in "$WORK"/state/qemu/*/vms/*/qemu.pid; do
        [[ -f "$p" ]] && kill -KILL "$(cat "$p")" 2>/dev/null
    done
    rm -rf "$WORK"
    exit "$rc"
}
on_exit cleanup
export HOME="$WORK" TMPDIR="$WORK"
STATE="$WORK/state"
start_qemu_cloud() {
    start_cloud "$STATE" FERROSTACK_COMPUTE__REPORT_INTERVAL=1 \
        FERROSTACK_COMPUTE__QEMU_PROBE_KERNEL="$IMG/vmlinuz" \
        FERROSTACK_COMPUTE__SHUTDOWN_TIMEOUT=30 FERROSTACK_COMPUTE__SOFT_REBOOT_TIMEOUT=30 \
        -- --admin-password nova-secret --compute-driver qemu --fake-hosts 1
}
start_qemu_cloud

for _ in $(seq 150); do
    osc hypervisor list -f value -c "Hypervisor Hostname" -c "Hypervisor Type"
    printf '%s\n' "$OUT" | grep -q '^qemu-0 QEMU$' && break
    sleep 0.2
done
check "the QEMU host is a hypervisor of type QEMU" out_has_line "qemu-0 QEMU"

register_guest_image "$IMG" e2e-guest
check "the guest image (AMI + AKI + ARI) is active" out_is active
osc flavor create --ram 128 --vcpus 1 --disk 1 --id e2e-q -f value -c id e2e.qemu
printf 'e2e user data 42' >"$WORK/user-data"

osc server create --image e2e-guest --flavor e2e.qemu --no-network --config-drive true \
    --user-data "$WORK/user-data" --wait -f value -c status e2e-guest-vm
check "server create --wait reaches ACTIVE on QEMU" out_is ACTIVE
SERVER="$(openstack server show -f value -c id e2e-guest-vm 2>/dev/null)"

# wait_console N: waits up to about 2 minutes for the marker to show N times. Each CLI
# start costs a second of CPU that the TCG guest needs too, hence the slow poll.
wait_console() {
    local _
    for _ in $(seq 60); do
        osc console log show e2e-guest-vm
        [[ "$(printf '%s\n' "$OUT" | grep -c "^$MARKER")" -ge "$1" ]] && return 0
        sleep 2
    done
    return 1
}
wait_console 1
check "console log show has the guest's marker" out_matches "^$MARKER"
for _ in $(seq 20); do
    osc console log show e2e-guest-vm
    printf '%s\n' "$OUT" | grep -q "^user-data-end" && break
    sleep 1
done
check "the guest read the server's id from its config drive" out_matches "^instance-uuid: $SERVER"
check "the guest printed the user data" out_matches "e2e user data 42"

osc server stop e2e-guest-vm
check "server stop" succeeded
for _ in $(seq 120); do
    osc server show -f value -c status e2e-guest-vm
    [[ "$OUT" == SHUTOFF ]] && break
    sleep 0.5
done
check "the stopped server is SHUTOFF" out_is SHUTOFF
osc server start e2e-guest-vm
wait_console 2
check "server start boots the guest again" succeeded
osc server reboot --wait e2e-guest-vm
wait_console 3
check "server reboot (soft) boots the guest again" succeeded

# The agent goes away and comes back: the guest keeps running and stays manageable.
guest_pid="$(cat "$STATE"/qemu/qemu-0/vms/"$SERVER"/qemu.pid)"
stop_cloud
check "the guest outlives the agent" is_true kill -0 "$guest_pid"
start_qemu_cloud
osc server show -f value -c status e2e-guest-vm
check "after the restart the server is ACTIVE" out_is ACTIVE
check "after the restart the same qemu process runs it" is_true kill -0 "$guest_pid"
osc server reboot --hard --wait e2e-guest-vm
wait_console 4
check "after the restart a hard reboot boots the guest again" succeeded
osc server rebuild --image e2e-guest --wait e2e-guest-vm
wait_console 5
check "server rebuild boots a new guest from the image" succeeded

osc server delete --wait e2e-guest-vm
check "server delete --wait" succeeded
left="$(pgrep -f "$STATE/qemu" || true)"
check "no qemu process is left" is_true test -z "$left"
check "no guest directory is left" is_true test -z "$(ls "$STATE/qemu/qemu-0/vms" 2>/dev/null)"
