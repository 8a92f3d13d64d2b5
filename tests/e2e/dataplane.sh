#!/usr/bin/env bash
# End-to-end test of the network dataplane with real guests and the real `openstack` CLI
# (root; QEMU, iproute2, dnsmasq, busybox): all-in-one on the QEMU driver with its network
# agent under a prefix of its own; two servers on one tenant network get their ports'
# addresses by DHCP from the network's dnsmasq, read their instance id from the metadata
# service at 169.254.169.254, and the second pings the first (user data script); pings from
# the network and from the second guest reach the first while its security group has an ICMP
# rule and not once the rule is deleted (a ping running across the delete included); the ports go ACTIVE (before their servers do); a router to an external
# network whose gateway is a test namespace gives the first guest a floating IP that answers
# ping from that namespace; deleting the servers, the router and the networks leaves no tap,
# bridge, namespace, dnsmasq or nftables table of the prefix.
# Run alone:  PATH=/var/tmp/ferrostack-e2e-venv/bin:$PATH tests/e2e/dataplane.sh
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib/checks.bash
source "$HERE/lib/checks.bash"
# shellcheck source=lib/guests.bash
source "$HERE/lib/guests.bash"

guest_setup d busybox

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
start_cloud "$STATE" FERROSTACK_COMPUTE__REPORT_INTERVAL=1 \
    FERROSTACK_COMPUTE__QEMU_PROBE_KERNEL="$IMG/vmlinuz" \
    FERROSTACK_NETWORK_AGENT__ENABLED=true FERROSTACK_NETWORK_AGENT__PREFIX="$PREFIX" \
    FERROSTACK_NETWORK_AGENT__SYNC_INTERVAL=2 \
    -- --admin-password nova-secret --compute-driver qemu --fake-hosts 1

[[ -f "$STATE/clouds.yaml" ]] || { echo "e2e: all-in-one did not start" >&2; exit 1; }
for _ in $(seq 150); do
    osc hypervisor list -f value -c "Hypervisor Hostname"
    printf '%s\n' "$OUT" | grep -q '^qemu-0$' && break
    sleep 0.2
done
osc network agent list -f value -c "Agent Type" -c Host -c Alive
check "the host's network agents are listed and alive" out_has_line "DHCP agent qemu-0 True"

register_guest_image "$IMG" dp-guest
check "the guest image is active" out_is active
osc flavor create --ram 128 --vcpus 1 --disk 1 --id dp-q -f value -c id dp.qemu

osc network create -f value -c id dp-net
NET="$OUT"
osc subnet create --network dp-net --subnet-range 10.78.0.0/24 -f value -c gateway_ip dp-sub
check "a tenant network with a DHCP subnet" out_is 10.78.0.1

osc security group create -f value -c id dp-sg
osc security group rule create --ingress --protocol icmp --remote-ip 0.0.0.0/0 -f value -c id dp-sg
ICMP_RULE="$OUT"
check "a security group that lets ICMP in" succeeded

osc server create --image dp-guest --flavor dp.qemu --network dp-net --config-drive true \
    --security-group dp-sg --wait -f value -c id dp-a
A="$OUT"
check "server A on the network is ACTIVE" succeeded
# Nova waited for network-vif-plugged: the port was ACTIVE before the server was.
osc port list --server "$A" -f value -c Status
check "server A's port was ACTIVE when the server became ACTIVE" out_is ACTIVE
grep -q "instance event.*network-vif-plugged" "$STATE.log"
check "the network service told Nova network-vif-plugged" succeeded
A_IP="$(server_ip "$A")"
ping_script "$A_IP" "$WORK/ping-a"
osc server create --image dp-guest --flavor dp.qemu --network dp-net --config-drive true \
    --security-group dp-sg --user-data "$WORK/ping-a" --wait -f value -c id dp-b
B="$OUT"
check "server B on the network is ACTIVE" succeeded
B_IP="$(server_ip "$B")"

wait_console "$A" "guest: eth0 has $A_IP"
check "guest A got its port's address ($A_IP) by DHCP" out_matches "guest: eth0 has $A_IP\$"
wait_console "$A" "guest: metadata uuid"
check "guest A read its uuid from 169.254.169.254" out_matches "guest: metadata uuid $A\$"
wait_console "$B" "user-script: ping"
check "guest B got its port's address ($B_IP) by DHCP" out_matches "guest: eth0 has $B_IP\$"
check "guest B pings guest A across the bridge" out_matches "user-script: ping $A_IP ok"

if [[ $E2E_FAILED -gt 0 ]]; then
    echo "e2e: the dataplane's logs (dnsmasq, then the cloud's warnings):" >&2
    head -n 12 "$STATE"/network/dhcp/*/log >&2
    tail -n 8 "$STATE"/network/dhcp/*/log >&2
    cat "$STATE"/network/dhcp/*/host >&2
    pgrep -af dnsmasq >&2
    tail -n 30 "$STATE.log" >&2
fi
osc port list --server "$A" -f value -c Status
check "the guests' ports are ACTIVE" out_is ACTIVE

# A router to an external network whose gateway (172.24.7.1) is a namespace of the test on
# the host, plugged into the network's bridge as DevStack's br-ex holds its address.
osc network create --external -f value -c id dp-public
EXT="$OUT"
osc subnet create --network dp-public --subnet-range 172.24.7.0/24 --gateway 172.24.7.1 \
    --no-dhcp -f value -c id dp-public-sub
osc router create -f value -c id dp-router
osc router set --external-gateway dp-public dp-router
osc router add subnet dp-router dp-sub
check "a router from the tenant network to an external network" succeeded
EXT_BRIDGE="${PREFIX}b$(printf '%s' "$EXT" | tr -d - | cut -c1-$((14 - ${#PREFIX})))"
OUT_NS="$PREFIX-outside"
for _ in $(seq 50); do ip link show "$EXT_BRIDGE" >/dev/null 2>&1 && break; sleep 0.2; done
ip netns add "$OUT_NS" &&
    ip link add "${PREFIX}wout" type veth peer name eth0 netns "$OUT_NS" &&
    ip link set "${PREFIX}wout" master "$EXT_BRIDGE" up &&
    ip -n "$OUT_NS" addr add 172.24.7.1/24 dev eth0 &&
    ip -n "$OUT_NS" link set eth0 up
check "the external network's gateway namespace is on its bridge" succeeded
osc floating ip create -f value -c floating_ip_address dp-public
FIP="$OUT"
osc server add floating ip "$A" "$FIP"
check "a floating IP ($FIP) is added to server A" succeeded
out_ping() { ip netns exec "$OUT_NS" busybox ping -c 1 -W 1 "$FIP" >/dev/null 2>&1; }
for _ in $(seq 20); do out_ping && break; sleep 0.5; done
RC=0
check "server A answers ping at its floating IP from the external namespace" is_true out_ping
for _ in $(seq 20); do
    osc floating ip show -f value -c status "$FIP"
    [[ "$OUT" == ACTIVE ]] && break
    sleep 0.5
done
check "the router's agent reports the floating IP ACTIVE" out_is ACTIVE

# From the network's DHCP namespace (not in the group): ICMP passes while the rule is there.
DHCP_NS="$PREFIX-qdhcp-$NET"
ns_ping() { ip netns exec "$DHCP_NS" busybox ping -c 1 -W 1 "$A_IP" >/dev/null 2>&1; }
for _ in $(seq 10); do ns_ping && break; sleep 0.5; done
RC=0
check "the ICMP rule lets a ping from the network reach guest A" is_true ns_ping
# One long ping (one ICMP id: one conntrack entry, established after its first reply).
ip netns exec "$DHCP_NS" busybox ping -i 1 "$A_IP" >"$WORK/long-ping" 2>&1 &
LONG_PING=$!
sleep 2
osc security group rule delete "$ICMP_RULE"
for _ in $(seq 10); do ns_ping || break; sleep 0.5; done
RC=0
check "without the ICMP rule the ping does not reach guest A" is_true eval '! ns_ping'
replies() { grep -c "bytes from" "$WORK/long-ping"; }
BEFORE_WAIT=$(replies)
sleep 3
AFTER_WAIT=$(replies)
kill "$LONG_PING" 2>/dev/null
wait "$LONG_PING" 2>/dev/null
RC=0
check "a ping running since before the delete stops too (its conntrack entry goes with the rule)" \
    is_true eval '[[ $BEFORE_WAIT -gt 0 && $AFTER_WAIT -eq $BEFORE_WAIT ]]'
wait_console "$B" "user-script: ping $A_IP lost"
check "guest B's pings to guest A stop once the ICMP rule is gone" out_matches "user-script: ping $A_IP lost"
if ! printf '%s\n' "$OUT" | grep -q "user-script: ping $A_IP lost"; then
    echo "e2e: the security group table, conntrack and the cloud's log after the rule's delete:" >&2
    nft list table inet "${PREFIX}_sg" >&2
    conntrack -L -p icmp 2>/dev/null | grep -F "$A_IP" >&2
    grep -iE "warn|error" "$STATE.log" | tail -n 20 >&2
fi

osc server delete --wait "$A" "$B"
check "server delete --wait" succeeded
osc floating ip delete "$FIP"
osc router remove subnet dp-router dp-sub
osc router delete dp-router
check "the floating IP and the router are deleted" succeeded
ip netns del "$OUT_NS" 2>/dev/null
osc subnet delete dp-sub dp-public-sub
osc network delete dp-net dp-public
check "the networks are deleted" succeeded
gone() {
    [[ -z "$(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | grep "^$PREFIX")" ]] &&
        [[ -z "$(ip netns list 2>/dev/null | grep "^$PREFIX-")" ]] &&
        [[ -z "$(pgrep -f "$STATE/network/dhcp" || true)" ]] &&
        ! nft list table inet "${PREFIX}_sg" >/dev/null 2>&1
}
for _ in $(seq 100); do gone && break; sleep 0.2; done
RC=0
check "no tap, bridge, namespace, dnsmasq or nftables table of the prefix is left" is_true gone
