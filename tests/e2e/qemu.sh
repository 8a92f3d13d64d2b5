#!/usr/bin/env bash
# End-to-end test of real guests with the real `openstack` CLI: all-in-one on the QEMU driver
# (root; qemu-system-x86, qemu-utils, genisoimage, cpio), the guest test image of
# scripts/build-guest-image uploaded as AKI + ARI + AMI, `server create --wait` to ACTIVE,
# and the guest's serial console showing the marker, the server's id read from the config
# drive and the user data; stop/start, reboot and rebuild bring the marker again; the guest
# outlives a restart of the cloud and stays manageable; a port added to the running server
# (`server add port`) shows in the guest and its tap in the network's bridge, stays through
# stop/start, gets its address by DHCP from the network agent, and `server remove port` takes
# it out of both; a port whose tap cannot be made fails a server create (ERROR, the reason in
# its fault, the port DOWN and free) and an attach, and leaves no device behind; delete
# leaves no qemu process or guest directory.
# Run alone:  PATH=/var/tmp/ferrostack-e2e-venv/bin:$PATH tests/e2e/qemu.sh
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib/checks.bash
source "$HERE/lib/checks.bash"
# shellcheck source=lib/guests.bash
source "$HERE/lib/guests.bash"
MARKER=FERROSTACK-GUEST-READY

guest_setup q

SERVER_PID=""
cleanup() {
    local rc=$?
    stop_cloud
    purge_host "$WORK/state" "$PREFIX"
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
        FERROSTACK_NETWORK_AGENT__ENABLED=true FERROSTACK_NETWORK_AGENT__PREFIX="$PREFIX" \
        FERROSTACK_NETWORK_AGENT__SYNC_INTERVAL=2 FERROSTACK_COMPUTE__SYNC_POWER_STATE_INTERVAL=2 \
        -- --admin-password nova-secret --compute-driver qemu --fake-hosts 1
}
start_qemu_cloud

for _ in $(seq 150); do
    osc hypervisor list -f value -c "Hypervisor Hostname" -c "Hypervisor Type"
    printf '%s\n' "$OUT" | grep -q '^qemu-0 QEMU$' && break
    sleep 0.2
done
check "the QEMU host is a hypervisor of type QEMU" out_has_line "qemu-0 QEMU"
# `hypervisor show` of the CLI also asks for aggregates: read the detail through the SDK.
run "$E2E_PY" -c 'import json, openstack
c = openstack.connect()
print(json.dumps(c.compute.get("/os-hypervisors/detail", microversion="2.28").json()))'
check "its cpu_info names the accelerator" out_matches '"cpu_info": \{[^}]*"accelerator": "(kvm|tcg)"'

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
check "server start boots the guest again" wait_console 2
osc server reboot --wait e2e-guest-vm
check "server reboot (soft) boots the guest again" wait_console 3

# The agent goes away and comes back: the guest keeps running and stays manageable.
guest_pid="$(cat "$STATE"/qemu/qemu-0/vms/"$SERVER"/qemu.pid)"
stop_cloud
check "the guest outlives the agent" is_true kill -0 "$guest_pid"
start_qemu_cloud
osc server show -f value -c status e2e-guest-vm
check "after the restart the server is ACTIVE" out_is ACTIVE
check "after the restart the same qemu process runs it" is_true kill -0 "$guest_pid"
osc server reboot --hard --wait e2e-guest-vm
check "after the restart a hard reboot boots the guest again" wait_console 4
osc server rebuild --image e2e-guest --wait e2e-guest-vm
check "server rebuild --wait" succeeded
# The rebuilt guest is made anew, its console log too.
check "server rebuild boots a new guest from the image" wait_console 1

# os-interface on a running guest: the NIC is hot-plugged, the guest sees it, its tap is in
# the network's bridge; it stays through stop/start; removed, it leaves guest and bridge.
osc network create -f value -c id e2e-q-net
NET="$OUT"
osc subnet create --network e2e-q-net --subnet-range 10.79.0.0/24 -f value -c id e2e-q-sub
osc port create --network e2e-q-net -f value -c id e2e-q-port
PORT_ID="$OUT"
osc port show -f value -c mac_address e2e-q-port
MAC="$OUT"
BRIDGE="${PREFIX}b$(printf '%s' "$NET" | tr -d - | cut -c1-$((14 - ${#PREFIX})))"
TAP="${PREFIX}t$(printf '%s' "$PORT_ID" | tr -d - | cut -c1-$((14 - ${#PREFIX})))"
# wait_nic PATTERN N: waits up to a minute for N console lines matching PATTERN.
wait_nic() {
    local _
    for _ in $(seq 30); do
        osc console log show e2e-guest-vm
        [[ "$(printf '%s\n' "$OUT" | grep -c "$1")" -ge "$2" ]] && return 0
        sleep 2
    done
    return 1
}
osc server add port e2e-guest-vm e2e-q-port
check "server add port on a running QEMU guest" succeeded
osc port show -f value -c device_id e2e-q-port
check "the port's device is the server" out_is "$SERVER"
check "the port's tap is in the network's bridge" is_true \
    bash -c "ip -o link show master '$BRIDGE' | grep -q ': $TAP:'"
check "the guest sees the hot-plugged NIC" wait_nic "^guest: nic eth0 $MAC present" 1
check "the hot-plugged NIC gets its address by DHCP" wait_nic "^guest: eth0 has 10\.79\.0\." 1
osc server stop e2e-guest-vm
for _ in $(seq 120); do
    osc server show -f value -c status e2e-guest-vm
    [[ "$OUT" == SHUTOFF ]] && break
    sleep 0.5
done
osc server start e2e-guest-vm
wait_console 2
check "the added NIC is there again after stop/start" wait_nic "^guest: nic eth0 $MAC present" 2
osc server remove port e2e-guest-vm e2e-q-port
check "server remove port" succeeded
check "the guest saw the NIC go" wait_nic "^guest: nic eth0 gone" 1
check "the port's tap is gone" is_true bash -c "! ip link show '$TAP' >/dev/null 2>&1"
osc port show -f value -c device_id e2e-q-port
check "the port is free again" out_is ""

# A port whose tap cannot be made (a device of another kind holds the tap's name): the
# build fails, the server is ERROR with the reason in its fault, the port is DOWN and free,
# and the device is as it was (in no bridge); no tap of the port and no guest is left. An
# attach of the port to the running server fails the same way and leaves nothing either.
ip link add "$TAP" type bridge
stray_untouched() {
    ip -d -o link show "$TAP" | grep -q " bridge " && ! ip -o link show "$TAP" | grep -q " master "
}
osc server create --image e2e-guest --flavor e2e.qemu --port e2e-q-port --wait -f value -c id e2e-q-clash
check "server create with a port whose tap name is taken fails" failed_with "Error creating server"
osc server show -f json -c id -c status -c fault e2e-q-clash
CLASH="$(jfield "d['id']")" STATUS="$(jfield "d['status']")"
MESSAGE="$(jfield "d['fault']['message']")" DETAILS="$(jfield "d['fault']['details']")"
check "the server is ERROR" is_true eval '[[ $STATUS == ERROR ]]'
check "its fault says the build failed on every host" is_true \
    eval '[[ $MESSAGE == "Exceeded maximum number of retries. Exhausted all hosts"* ]]'
check "its fault's details (admin) name the port and why" is_true \
    eval '[[ $DETAILS == *"plug port $PORT_ID: a device named $TAP exists and is not a tap (bridge)"* ]]'
osc port show -f json -c status -c device_id -c binding_host_id e2e-q-port
PORT_STATE="$(jfield "' '.join([d['status'], d['device_id'] or '-', d['binding_host_id'] or '-'])")"
check "the port is DOWN, free and unbound" is_true eval '[[ $PORT_STATE == "DOWN - -" ]]'
check "the device holding the tap name is left as it was" is_true stray_untouched
check "no guest of the failed server is left" is_true \
    eval '[[ -n $CLASH && -z "$(pgrep -f "qemu-system.*-uuid $CLASH")" && ! -e $STATE/qemu/qemu-0/vms/$CLASH ]]'
osc server add port e2e-guest-vm e2e-q-port
check "server add port with that port fails" failed_with "."
osc port show -f value -c device_id e2e-q-port
check "the port is free after the failed attach" out_is ""
check "the failed attach left the device as it was" is_true stray_untouched
osc server show -f value -c status e2e-guest-vm
check "the server the attach failed on is still ACTIVE" out_is ACTIVE
ip link del "$TAP"
osc server delete --wait e2e-q-clash
check "the failed server deletes" succeeded

# A guest whose qemu dies is found by the power state sync: the server is SHUTOFF, and
# starts again.
pkill -KILL -f "qemu-system.*-uuid $SERVER"
wait_server_status e2e-guest-vm SHUTOFF
check "a server whose qemu was killed is SHUTOFF after the power state sync" out_is SHUTOFF
osc server start e2e-guest-vm
check "and starts again" wait_console 3

# Shelve: the guest's disk goes into an image and the guest leaves the host; unshelve boots
# a new guest from that image (a qcow2 snapshot that keeps the AMI's kernel and ramdisk).
osc server shelve --wait e2e-guest-vm
check "server shelve --wait" succeeded
wait_server_status e2e-guest-vm SHELVED_OFFLOADED
check "the shelved guest is offloaded" out_is SHELVED_OFFLOADED
check "its guest is gone from the host" is_true test ! -e "$STATE/qemu/qemu-0/vms/$SERVER"
osc image show -f value -c disk_format -c status e2e-guest-vm-shelved
check "its snapshot is an active qcow2 image" is_true eval '[[ "$(tr "\n" " " <<<"$OUT")" == "qcow2 active " ]]'
osc server unshelve --wait e2e-guest-vm
check "server unshelve --wait" succeeded
check "the unshelved guest boots from its snapshot" wait_console 1
osc image list -f value -c Name
check "the snapshot is deleted once the guest runs" is_true eval '! grep -qx e2e-guest-vm-shelved <<<"$OUT"'

osc server delete --wait e2e-guest-vm
check "server delete --wait" succeeded
left="$(pgrep -f "$STATE/qemu" || true)"
check "no qemu process is left" is_true test -z "$left"
check "no guest directory is left" is_true test -z "$(ls "$STATE/qemu/qemu-0/vms" 2>/dev/null)"
