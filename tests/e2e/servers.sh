#!/usr/bin/env bash
# End-to-end test of servers on the fake hypervisor with the real `openstack` CLI: create with
# --no-network (networks "none") --wait until ACTIVE on the in-process host, list --long, show, stop/start,
# a refused action (409), hypervisors and compute services, delete --wait, and no
# placement allocation left behind; ports attached and detached with `server add port`,
# `server remove port` and `server add network` (os-interface).
# Run alone:  PATH=/var/tmp/ferrostack-e2e-venv/bin:$PATH tests/e2e/servers.sh
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib/checks.bash
source "$HERE/lib/checks.bash"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/ferrostack-e2e-servers.XXXXXX")"
SERVER_PID=""
cleanup() {
    local rc=$?
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
export HOME="$WORK" TMPDIR="$WORK"
STATE="$WORK/state"
PORT="$("$E2E_PY" "$HTTP_PY" free-port)"
IMAGE_PORT="$("$E2E_PY" "$HTTP_PY" free-port)"
PLACEMENT_PORT="$("$E2E_PY" "$HTTP_PY" free-port)"
COMPUTE_PORT="$("$E2E_PY" "$HTTP_PY" free-port)"
NETWORK_PORT="$("$E2E_PY" "$HTTP_PY" free-port)"
env -i PATH="$PATH" HOME="$HOME" FERROSTACK_LOG=warn FERROSTACK_IDENTITY__BCRYPT_COST=4 \
    FERROSTACK_IDENTITY__PORT="$PORT" FERROSTACK_IMAGE__PORT="$IMAGE_PORT" \
    FERROSTACK_PLACEMENT__PORT="$PLACEMENT_PORT" FERROSTACK_COMPUTE__PORT="$COMPUTE_PORT" \
    FERROSTACK_NETWORK__PORT="$NETWORK_PORT" FERROSTACK_COMPUTE__REPORT_INTERVAL=1 \
    "$FERROSTACK_BIN" --state-dir "$STATE" all-in-one --admin-password nova-secret \
    --compute-driver fake --fake-hosts 2 </dev/null >>"$WORK/server.log" 2>&1 &
SERVER_PID=$!
"$E2E_PY" "$HTTP_PY" wait "http://127.0.0.1:$PORT/v3" 15 2>/dev/null
for _ in $(seq 50); do [[ -f "$STATE/clouds.yaml" ]] && break; sleep 0.1; done
export OS_CLIENT_CONFIG_FILE="$STATE/clouds.yaml" OS_CLOUD=ferrostack

# The agents register in placement and heartbeat; wait for both hypervisors.
for _ in $(seq 100); do
    osc hypervisor list -f value -c "Hypervisor Hostname"
    [[ "$(printf '%s\n' "$OUT" | grep -c '^fake-')" == 2 ]] && break
    sleep 0.1
done
check "both fake hosts are hypervisors" out_has_line fake-1
osc compute service list -f value -c Binary -c Host -c State
check "os-services shows the agents up" out_has_line "nova-compute fake-0 up"
osc resource provider list -f value -c name
check "each host is a resource provider" out_has_line fake-0

printf 'not really a disk' >"$WORK/disk.img"
osc image create --file "$WORK/disk.img" --disk-format qcow2 --container-format bare \
    -f value -c id e2e-img
IMAGE="$OUT"
osc flavor create --ram 128 --vcpus 1 --disk 1 --id e2e-s -f value -c id e2e.small
check "flavor create" out_is e2e-s

osc server create --image e2e-img --flavor e2e.small --no-network --wait -f value -c status e2e-vm
check "server create --wait reaches ACTIVE" out_is ACTIVE
osc server show -f value -c OS-EXT-SRV-ATTR:host e2e-vm
check "the server runs on a fake host" out_matches '^fake-[01]$'
osc server list --long -f value -c Name -c Status -c "Power State" -c "Image Name"
check "server list --long shows it running (power state 1)" out_has_line "e2e-vm ACTIVE 1 e2e-img"
SERVER="$(openstack server show -f value -c id e2e-vm 2>/dev/null)"
osc resource provider allocation show "$SERVER" -f value -c resources
check "placement holds its allocation" out_matches "VCPU.: 1"

osc server start e2e-vm
check "starting an active server is refused" failed_with "Cannot 'start' instance .* while it is in vm_state active"
osc server stop e2e-vm
check "server stop" succeeded
for _ in $(seq 100); do
    osc server show -f value -c status e2e-vm
    [[ "$OUT" == SHUTOFF ]] && break
    sleep 0.1
done
check "the server shuts off" out_is SHUTOFF
osc server start e2e-vm
check "server start" succeeded
wait_server_status e2e-vm ACTIVE
check "the server is active again" out_is ACTIVE
osc server reboot --hard --wait e2e-vm
check "server reboot --hard --wait" succeeded
osc limits show --absolute -f value -c Name -c Value
check "limits count the server" out_has_line "instances_used 1"

osc server create --image e2e-img --flavor e2e.small --network bogus-net e2e-bad
check "an unknown network is refused" failed_with "."
osc server create --image "$IMAGE" --flavor no-such-flavor --no-network e2e-bad
check "an unknown flavor is refused" failed_with "."

osc console log show e2e-vm
check "console log show prints the guest's console" out_matches "^fake: booting instance-"
osc server set --property role=web e2e-vm
check "server set --property" succeeded
osc server show -f value -c properties e2e-vm
check "server show lists the property" out_matches "'role': 'web'"
osc server unset --property role e2e-vm
osc server show -f value -c properties e2e-vm
check "server unset --property removes it" out_is "{}"
osc --os-compute-api-version 2.26 server set --tag blue e2e-vm
check "server set --tag (2.26)" succeeded
osc --os-compute-api-version 2.26 server show -f value -c tags e2e-vm
check "server show lists the tag" out_matches "blue"

osc server rebuild --image e2e-img --wait e2e-vm
check "server rebuild --wait" succeeded
osc server show -f value -c status e2e-vm
check "the rebuilt server is active" out_is ACTIVE
osc server event list -f value -c Action e2e-vm
check "server event list shows the rebuild" out_has_line rebuild

osc server image create --name e2e-snap --wait e2e-vm -f value -c status
check "server image create --wait makes an active image" out_has_line active
osc image show -f value -c properties e2e-snap
check "the snapshot names its server" out_matches "image_type.: .snapshot"

osc flavor create --ram 256 --vcpus 2 --disk 1 --id e2e-m -f value -c id e2e.medium
osc server resize --flavor e2e.medium --wait e2e-vm
check "server resize --wait" succeeded
osc server show -f value -c status e2e-vm
check "the resized server waits in VERIFY_RESIZE" out_is VERIFY_RESIZE
osc server resize confirm e2e-vm
check "server resize confirm" succeeded
wait_server_status e2e-vm ACTIVE
check "the confirmed server is active again" out_is ACTIVE
osc server show -f value -c flavor e2e-vm
check "it has the new flavor" out_matches "e2e.medium"

osc server show -f value -c OS-EXT-SRV-ATTR:host e2e-vm
FROM="$OUT"
osc server migrate --wait e2e-vm
check "server migrate --wait (cold migration)" succeeded
osc server show -f value -c status -c OS-EXT-SRV-ATTR:host e2e-vm
check "the migrated server waits in VERIFY_RESIZE on the other host" is_true eval \
    '[[ "$(tail -1 <<<"$OUT")" == VERIFY_RESIZE && "$(head -1 <<<"$OUT")" != "$FROM" ]]'
osc server migrate confirm e2e-vm
check "server migrate confirm" succeeded
wait_server_status e2e-vm ACTIVE
check "the migrated server is active again" out_is ACTIVE

osc server shelve --wait e2e-vm
check "server shelve --wait" succeeded
osc server show -f value -c status -c OS-EXT-SRV-ATTR:host e2e-vm
check "the shelved server is offloaded from its host" is_true eval \
    '[[ "$(tail -1 <<<"$OUT")" == SHELVED_OFFLOADED && "$(head -1 <<<"$OUT")" == None ]]'
osc image list -f value -c Name
check "its snapshot is an image" out_has_line e2e-vm-shelved
osc server unshelve --wait e2e-vm
check "server unshelve --wait" succeeded
wait_server_status e2e-vm ACTIVE
check "the unshelved server is active" out_is ACTIVE
osc image list -f value -c Name
check "the snapshot is deleted once it runs" is_true eval '! grep -qx e2e-vm-shelved <<<"$OUT"'

osc server group create --policy anti-affinity -f value -c id e2e-apart
check "server group create --policy anti-affinity" succeeded
GROUP="$OUT"
for vm in e2e-a1 e2e-a2; do
    osc server create --image e2e-img --flavor e2e.small --no-network --hint "group=$GROUP" \
        --wait -f value -c status "$vm"
    check "$vm in the anti-affinity group reaches ACTIVE" out_is ACTIVE
done
osc server show -f value -c OS-EXT-SRV-ATTR:host e2e-a1
H1="$OUT"
osc server show -f value -c OS-EXT-SRV-ATTR:host e2e-a2
check "anti-affinity puts the two servers on different hosts" is_true test "$H1" != "$OUT"
A1="$(openstack server show -f value -c id e2e-a1 2>/dev/null)"
A2="$(openstack server show -f value -c id e2e-a2 2>/dev/null)"
osc server group show -f value -c members e2e-apart
check "the group lists both members" is_true grep -q "$A1.*$A2\|$A2.*$A1" <<<"$OUT"
osc server delete --wait e2e-a1 e2e-a2
check "deleting the group's servers" succeeded
osc server group delete e2e-apart
check "server group delete" succeeded

osc network create e2e-net -f value -c id
check "network create" succeeded
osc subnet create --network e2e-net --subnet-range 10.9.0.0/24 e2e-subnet -f value -c id
check "subnet create" succeeded
osc server create --image e2e-img --flavor e2e.small --network e2e-net --wait -f value -c status e2e-netvm
check "server create --network --wait reaches ACTIVE" out_is ACTIVE
osc server show -f value -c addresses e2e-netvm
check "the server has an address on e2e-net" out_matches "e2e-net.*10\.9\.0\."
NET_ID="$(openstack network show -f value -c id e2e-net 2>/dev/null)"
osc server create --image e2e-img --flavor e2e.small --nic "net-id=$NET_ID,v4-fixed-ip=10.9.0.77" \
    --wait -f value -c status e2e-nicvm
check "server create --nic net-id=...,v4-fixed-ip=... reaches ACTIVE" out_is ACTIVE
osc server show -f value -c addresses e2e-nicvm
check "server show lists the fixed IP asked for" out_matches "e2e-net.*10\.9\.0\.77"
osc server delete --wait e2e-nicvm
check "the --nic server is deleted" succeeded
osc port list --server e2e-netvm -f value -c Status -c "Fixed IP Addresses"
check "port list --server shows its port" out_matches "10\.9\.0\."
osc port create --network e2e-net -f value -c id e2e-extra
EXTRA="$OUT"
osc server add port e2e-netvm e2e-extra
check "server add port (os-interface attach)" succeeded
osc port list --server e2e-netvm -f value -c ID
check "port list --server shows the attached port" out_has_line "$EXTRA"
osc port show -f value -c device_owner e2e-extra
check "the attached port is bound to the server" out_is compute:nova
osc server show -f json e2e-netvm
NADDR="$(jfield 'len(d["addresses"]["e2e-net"]) if isinstance(d["addresses"], dict) else d["addresses"].count("10.9.0.")')"
check "server show lists both addresses" is_true eval '[[ "$NADDR" == 2 ]]'
osc server add port e2e-netvm e2e-extra
check "attaching a port in use is refused (409)" failed_with 'in use|409|Conflict'
osc server remove port e2e-netvm e2e-extra
check "server remove port (os-interface detach)" succeeded
osc port list --server e2e-netvm -f value -c ID
check "the detached port left the server" out_lacks_line "$EXTRA"
osc port show -f value -c device_id e2e-extra
check "the user's port is kept, unbound" out_is ""
osc port delete e2e-extra
osc server add network e2e-netvm e2e-net
check "server add network (a port made by Nova)" succeeded
osc port list --server e2e-netvm -f value -c ID
check "port list --server shows both ports" is_true eval '[[ "$(printf "%s\n" "$OUT" | grep -c .)" == 2 ]]'
osc server delete --wait e2e-netvm
check "deleting the networked server" succeeded
osc port list --network e2e-net --device-owner compute:nova -f value -c ID
check "its port is gone with it" out_is ""

PROJECT="$(openstack token issue -f value -c project_id 2>/dev/null)"
osc quota set --instances 1 "$PROJECT"
check "quota set --instances 1" succeeded
osc server create --image e2e-img --flavor e2e.small --no-network e2e-over
check "a second server over the instances quota is refused" failed_with "Quota exceeded for instances"
osc quota set --instances 10 "$PROJECT"

osc server delete --wait e2e-vm
check "server delete --wait" succeeded
osc server list -f value -c Name
check "the list is empty again" out_is ""
osc resource provider allocation show "$SERVER" -f value -c resources
check "no allocation is left" out_is ""

e2e_summary servers
