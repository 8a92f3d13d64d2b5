#!/usr/bin/env bash
# End-to-end test of two hosts on one VXLAN network, with real guests and the real
# `openstack` CLI (root; QEMU, iproute2, dnsmasq, busybox, RabbitMQ). Host A is all-in-one
# (its network agent and one QEMU compute host, `qemu-0`) on the RabbitMQ bus; host B is a
# network namespace joined to A by a veth link, running `ferrostack network-agent` and
# `ferrostack compute-agent` (host `hostb`), which reach A over that link only: the bus,
# identity, placement and the image API at A's address, VXLAN between the two tunnel
# addresses (the bus through a relay on A's address: RabbitMQ here listens on loopback
# only). A server on each host, same tenant network: B's guest gets its address by DHCP
# from A's dnsmasq across the tunnel and pings A's guest. Host B's compute agent, killed
# while three guests run there, finds them again when restarted. Deleting everything leaves
# no tap, bridge, VXLAN device or qemu process on either host.
# Run alone:  PATH=/var/tmp/ferrostack-e2e-venv/bin:$PATH tests/e2e/twohost.sh
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib/checks.bash
source "$HERE/lib/checks.bash"
# shellcheck source=lib/guests.bash
source "$HERE/lib/guests.bash"

guest_setup t busybox socat
start_rabbitmq >&2 || { echo "e2e: RabbitMQ did not start" >&2; exit 1; }

# Host B's devices carry a prefix of their own: named namespaces are machine-wide, and an
# agent removes the namespaces of its prefix that it does not serve.
PREFIX_B="f${PREFIX:1}"
NS_B="$PREFIX-hostb"
# The link between the hosts: A's end in the root namespace, B's in its namespace.
NET_N=$((16#$(printf '%s' "$WORK" | sha256sum | cut -c4-5) % 200 + 20))
ADDR_A="10.251.$NET_N.1"
ADDR_B="10.251.$NET_N.2"
VHOST="$PREFIX-twohost"
SERVER_PID=""
B_PIDS=()
RELAY_PID=""

cleanup() {
    local rc=$? p
    for p in "${B_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${B_PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    done
    stop_cloud
    [[ -n "$RELAY_PID" ]] && kill -TERM "$RELAY_PID" 2>/dev/null
    [[ -n "${E2E_KEEP_LOGS:-}" ]] && mkdir -p "$E2E_KEEP_LOGS" && cp "$WORK"/*.log "$E2E_KEEP_LOGS"/
    purge_host "$WORK/state" "$PREFIX"
    purge_host "$WORK/state-b" "$PREFIX_B"
    rabbitmqctl -q delete_vhost "$VHOST" >/dev/null 2>&1
    rm -rf "$WORK"
    exit "$rc"
}
on_exit cleanup
export HOME="$WORK" TMPDIR="$WORK"
STATE="$WORK/state"

# The bus: a vhost of this run's own.
rabbitmqctl -q add_vhost "$VHOST" >/dev/null &&
    rabbitmqctl -q set_permissions -p "$VHOST" guest '.*' '.*' '.*' >/dev/null
RC=$?
check "a RabbitMQ vhost for the two hosts" succeeded

ip netns add "$NS_B" &&
    ip link add "${PREFIX}h" type veth peer name eth0 netns "$NS_B" &&
    ip addr add "$ADDR_A/24" dev "${PREFIX}h" && ip link set "${PREFIX}h" up &&
    ip -n "$NS_B" addr add "$ADDR_B/24" dev eth0 && ip -n "$NS_B" link set eth0 up &&
    ip -n "$NS_B" link set lo up
RC=$?
check "host B is a namespace linked to host A ($ADDR_A <-> $ADDR_B)" succeeded

free_port() { "$E2E_PY" "$E2E_LIB_DIR/e2e_util.py" free-port; }
BUS_PORT="$(free_port)"
socat "TCP-LISTEN:$BUS_PORT,bind=$ADDR_A,fork,reuseaddr" TCP:127.0.0.1:5672 </dev/null 2>/dev/null &
RELAY_PID=$!
BUS="amqp://guest:guest@$ADDR_A:$BUS_PORT/$VHOST"
PORT="$(free_port)"
IMAGE_PORT="$(free_port)"
PLACEMENT_PORT="$(free_port)"
CLOUD_PORTS=(FERROSTACK_IMAGE__PORT="$IMAGE_PORT" FERROSTACK_PLACEMENT__PORT="$PLACEMENT_PORT"
    FERROSTACK_COMPUTE__PORT="$(free_port)" FERROSTACK_NETWORK__PORT="$(free_port)"
    FERROSTACK_OBJECT__PORT="$(free_port)" FERROSTACK_COMPUTE__METADATA_PORT="$(free_port)")
start_cloud "$STATE" FERROSTACK_COMPUTE__REPORT_INTERVAL=1 \
    FERROSTACK_COMPUTE__BUS_URL="$BUS" \
    FERROSTACK_COMPUTE__QEMU_PROBE_KERNEL="$IMG/vmlinuz" \
    FERROSTACK_IDENTITY__BIND=0.0.0.0 FERROSTACK_IDENTITY__PUBLIC_URL="http://$ADDR_A:$PORT" \
    FERROSTACK_IMAGE__BIND=0.0.0.0 FERROSTACK_IMAGE__PUBLIC_URL="http://$ADDR_A:$IMAGE_PORT" \
    FERROSTACK_PLACEMENT__BIND=0.0.0.0 \
    FERROSTACK_PLACEMENT__PUBLIC_URL="http://$ADDR_A:$PLACEMENT_PORT" \
    FERROSTACK_NETWORK_AGENT__ENABLED=true FERROSTACK_NETWORK_AGENT__PREFIX="$PREFIX" \
    FERROSTACK_NETWORK_AGENT__SYNC_INTERVAL=2 FERROSTACK_NETWORK_AGENT__TUNNEL_IP="$ADDR_A" \
    -- --admin-password nova-secret --compute-driver qemu --fake-hosts 1
[[ -f "$STATE/clouds.yaml" ]] || {
    echo "e2e: all-in-one did not start; its log ends:" >&2
    tail -n 20 "$STATE.log" >&2
    exit 1
}

# Host B: the same binary, its own state, configured to reach A at A's address only.
B_ENV=(PATH="$PATH" HOME="$HOME" FERROSTACK_LOG=warn
    FERROSTACK_COMPUTE__BUS_URL="$BUS" FERROSTACK_COMPUTE__HOST=hostb
    FERROSTACK_COMPUTE__DRIVER=qemu FERROSTACK_COMPUTE__REPORT_INTERVAL=1
    FERROSTACK_COMPUTE__QEMU_PROBE_KERNEL="$IMG/vmlinuz"
    FERROSTACK_COMPUTE__SERVICE_PASSWORD="$(cat "$STATE/service-password")"
    FERROSTACK_IDENTITY__PUBLIC_URL="http://$ADDR_A:$PORT"
    FERROSTACK_IMAGE__PUBLIC_URL="http://$ADDR_A:$IMAGE_PORT"
    FERROSTACK_PLACEMENT__PUBLIC_URL="http://$ADDR_A:$PLACEMENT_PORT"
    FERROSTACK_NETWORK_AGENT__HOST=hostb FERROSTACK_NETWORK_AGENT__PREFIX="$PREFIX_B"
    FERROSTACK_NETWORK_AGENT__DHCP=false FERROSTACK_NETWORK_AGENT__L3=false
    FERROSTACK_NETWORK_AGENT__SYNC_INTERVAL=2 FERROSTACK_NETWORK_AGENT__TUNNEL_IP="$ADDR_B")
# start_b ROLE: host B's `ferrostack ROLE` in its namespace; prints its pid.
start_b() {
    ip netns exec "$NS_B" env -i "${B_ENV[@]}" "$FERROSTACK_BIN" --state-dir "$WORK/state-b" \
        "$1" </dev/null >>"$WORK/state-b.$1.log" 2>&1 &
    echo $!
}
B_PIDS+=("$(start_b network-agent)")
B_COMPUTE="$(start_b compute-agent)"
B_PIDS+=("$B_COMPUTE")

for _ in $(seq 150); do
    osc hypervisor list -f value -c "Hypervisor Hostname"
    printf '%s\n' "$OUT" | grep -q '^hostb$' && printf '%s\n' "$OUT" | grep -q '^qemu-0$' && break
    sleep 0.2
done
check "both hosts are hypervisors (qemu-0 and hostb)" is_true eval \
    "printf '%s\n' \"\$OUT\" | grep -q '^hostb$'"
for _ in $(seq 50); do
    osc network agent list -f value -c "Agent Type" -c Host -c Alive
    printf '%s\n' "$OUT" | grep -q "hostb True" && break
    sleep 0.2
done
check "host B's network agent is listed and alive" out_has_line "Linux bridge agent hostb True"
osc network agent show -f json "$(openstack network agent list --host hostb -f value -c ID | head -1)"
check "host B's agent reports its tunnel address" out_matches "\"tunneling_ip\": \"$ADDR_B\""

register_guest_image "$IMG" th-guest
check "the guest image is active" out_is active
osc flavor create --ram 128 --vcpus 1 --disk 1 --id th-q -f value -c id th.qemu
osc network create -f value -c provider:network_type th-net
check "the tenant network is a VXLAN network" out_is vxlan
osc subnet create --network th-net --subnet-range 10.79.0.0/24 -f value -c gateway_ip th-sub
check "a DHCP subnet on it" out_is 10.79.0.1
osc security group create -f value -c id th-sg
osc security group rule create --ingress --protocol icmp --remote-ip 0.0.0.0/0 -f value -c id th-sg
check "a security group that lets ICMP in" succeeded

osc server create --image th-guest --flavor th.qemu --network th-net --config-drive true \
    --security-group th-sg --availability-zone nova:qemu-0 --wait -f value -c id th-a
A="$OUT"
check "server A on host A (qemu-0) is ACTIVE" succeeded
osc server show -f value -c OS-EXT-SRV-ATTR:host "$A"
check "server A runs on qemu-0 (the forced host)" out_is qemu-0
A_IP="$(server_ip "$A")"
ping_script "$A_IP" "$WORK/ping-a"
osc server create --image th-guest --flavor th.qemu --network th-net --config-drive true \
    --security-group th-sg --availability-zone nova:hostb --user-data "$WORK/ping-a" \
    --wait -f value -c id th-b
B="$OUT"
check "server B on host B (hostb) is ACTIVE" succeeded
osc server show -f value -c OS-EXT-SRV-ATTR:host "$B"
check "server B runs on hostb" out_is hostb
B_IP="$(server_ip "$B")"
pgrep -f "$WORK/state-b/qemu/hostb" >/dev/null
RC=$?
check "server B's qemu runs under host B's state" succeeded

wait_console "$B" "user-script: ping"
check "guest B got its address ($B_IP) by DHCP across the tunnel" out_matches "guest: eth0 has $B_IP\$"
check "guest B on host B pings guest A on host A over VXLAN" out_matches "user-script: ping $A_IP ok"
wait_console "$B" "guest: metadata uuid"
check "guest B read its uuid from the metadata proxy on host A" out_matches "guest: metadata uuid $B\$"

# Issue #5: kill host B's compute agent while three guests run there; restarted, it finds
# them again: same processes, the servers ACTIVE and manageable.
C=()
for n in 1 2; do
    osc server create --image th-guest --flavor th.qemu --no-network \
        --availability-zone nova:hostb --wait -f value -c id "th-c$n"
    C+=("$OUT")
done
check "two more servers on host B are ACTIVE" is_true eval '[[ ${#C[@]} -eq 2 && -n "${C[1]}" ]]'
b_qemus() { pgrep -f "qemu-system.*$WORK/state-b/qemu/hostb" | sort | paste -sd' '; }
BEFORE="$(b_qemus)"
RC=0
check "three guests run on host B" is_true eval '[[ $(wc -w <<<"$BEFORE") -eq 3 ]]'
kill -KILL "$B_COMPUTE" 2>/dev/null
for _ in $(seq 50); do kill -0 "$B_COMPUTE" 2>/dev/null || break; sleep 0.1; done
B_COMPUTE="$(start_b compute-agent)"
B_PIDS+=("$B_COMPUTE")
sleep 3
RC=0
check "the guests outlive their agent (same qemu processes)" is_true eval '[[ "$(b_qemus)" == "$BEFORE" ]]'
osc server list -f value -c Status --host hostb
check "host B's servers are still ACTIVE" is_true eval \
    '[[ "$(sort -u <<<"$OUT")" == ACTIVE && $(wc -l <<<"$OUT") -eq 3 ]]'
osc server stop "${C[0]}"
wait_server_status "${C[0]}" SHUTOFF
check "the restarted agent stops a guest it found again" out_is SHUTOFF
osc server start "${C[0]}"
wait_server_status "${C[0]}" ACTIVE
check "and starts it again" out_is ACTIVE
# A server deleted while its host is down is deleted at once (upstream's local delete); the
# host's agent destroys its guest once it is back.
kill -KILL "$B_COMPUTE" 2>/dev/null
for _ in $(seq 50); do kill -0 "$B_COMPUTE" 2>/dev/null || break; sleep 0.1; done
osc --os-compute-api-version 2.11 compute service set --down hostb nova-compute
check "host B's compute service is forced down" succeeded
osc compute service list --host hostb -f value -c State
check "and listed down" out_is down
osc server delete "${C[1]}"
check "a server on the down host can be deleted" succeeded
osc server show "${C[1]}"
check "and is gone at once" failed_with "No Server found"
RC=0
check "its guest still runs while the agent is away" is_true eval 'pgrep -f "qemu-system.*-uuid ${C[1]}" >/dev/null'
B_COMPUTE="$(start_b compute-agent)"
B_PIDS+=("$B_COMPUTE")
osc --os-compute-api-version 2.11 compute service set --up hostb nova-compute
check "host B's compute service is up again" succeeded
for _ in $(seq 150); do pgrep -f "qemu-system.*-uuid ${C[1]}" >/dev/null || break; sleep 0.2; done
RC=0
check "back, host B's agent destroys the deleted server's guest" is_true eval '! pgrep -f "qemu-system.*-uuid ${C[1]}" >/dev/null'
osc server delete --wait "${C[0]}"
check "the other server is deleted" succeeded

if [[ $E2E_FAILED -gt 0 ]]; then
    echo "e2e: host A's and host B's devices, then the logs:" >&2
    ip -d link show type vxlan >&2
    bridge fdb show | grep -F "$ADDR_B" >&2
    ip -n "$NS_B" -d link show >&2
    ip netns exec "$NS_B" bridge fdb show | grep -F "$ADDR_A" >&2
    tail -n 30 "$STATE.log" >&2
    tail -n 30 "$WORK"/state-b.*.log >&2
fi

osc server delete --wait "$A" "$B"
check "server delete --wait" succeeded
osc subnet delete th-sub
osc network delete th-net
check "the network is deleted" succeeded
gone() {
    [[ -z "$(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | grep "^$PREFIX" | grep -vx "${PREFIX}h@if[0-9]*")" ]] &&
        [[ -z "$(ip -n "$NS_B" -o link show 2>/dev/null | awk -F': ' '{print $2}' | grep "^$PREFIX_B")" ]] &&
        [[ -z "$(pgrep -f "qemu-system.*$WORK" || true)" ]]
}
for _ in $(seq 100); do gone && break; sleep 0.2; done
RC=0
check "no tap, bridge, VXLAN device or qemu process is left on either host" is_true gone
