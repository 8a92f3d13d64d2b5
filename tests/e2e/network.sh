#!/usr/bin/env bash
# End-to-end test of the network service (Neutron v2.0) with the real `openstack` CLI:
# networks (provider attributes), subnets, ports with fixed IPs, security groups and rules,
# and the faults the CLI shows for an address held twice and a network still in use.
# Run alone:  PATH=/var/tmp/ferrostack-e2e-venv/bin:$PATH tests/e2e/network.sh
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib/checks.bash
source "$HERE/lib/checks.bash"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/ferrostack-e2e-network.XXXXXX")"
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
NET_PORT="$("$E2E_PY" "$HTTP_PY" free-port)"
env -i PATH="$PATH" HOME="$HOME" FERROSTACK_LOG=warn FERROSTACK_IDENTITY__BCRYPT_COST=4 \
    FERROSTACK_IDENTITY__PORT="$PORT" FERROSTACK_NETWORK__PORT="$NET_PORT" \
    FERROSTACK_IMAGE__PORT=0 FERROSTACK_COMPUTE__PORT=0 FERROSTACK_PLACEMENT__PORT=0 \
    "$FERROSTACK_BIN" --state-dir "$STATE" all-in-one --admin-password net-secret --compute-driver fake \
    </dev/null >>"$WORK/server.log" 2>&1 &
SERVER_PID=$!
"$E2E_PY" "$HTTP_PY" wait "http://127.0.0.1:$PORT/v3" 15 2>/dev/null
for _ in $(seq 300); do [[ -f "$STATE/clouds.yaml" ]] && break; sleep 0.1; done
export OS_CLIENT_CONFIG_FILE="$STATE/clouds.yaml" OS_CLOUD=ferrostack

osc extension list --network -f value -c Alias
check "extension list --network names the provider extension" out_has_line provider
osc network create -f value -c id e2e-net
NET="$OUT"
check "network create" out_matches '^[0-9a-f-]{36}$'
osc network show -f value -c provider:network_type e2e-net
check "a tenant network is VXLAN" out_is vxlan
osc network show -f value -c mtu e2e-net
check "its MTU leaves room for VXLAN" out_is 1450
osc network create --provider-network-type vlan --provider-physical-network physnet1 \
    --provider-segment 1234 -f value -c provider:segmentation_id e2e-vlan
check "network create with a VLAN segment" out_is 1234
osc network create --external --provider-network-type flat --provider-physical-network public \
    -f value -c router:external e2e-ext
check "network create --external (flat)" out_is True
osc network list -f value -c Name
check "network list shows them" out_has_line e2e-net
osc network list --external -f value -c Name
check "network list --external filters" out_is e2e-ext

osc subnet create --network e2e-net --subnet-range 192.168.50.0/24 -f value -c gateway_ip e2e-sub
check "subnet create --subnet-range" out_is 192.168.50.1
osc subnet show -f json e2e-sub
POOL="$(jfield 'd["allocation_pools"][0]["start"] + "-" + d["allocation_pools"][0]["end"]')"
check "the default pool skips the gateway" is_true eval '[[ "$POOL" == 192.168.50.2-192.168.50.254 ]]'
osc subnet create --network e2e-net --subnet-range 192.168.50.128/25 e2e-overlap
check "an overlapping subnet is refused (400)" failed_with 'overlaps|400|BadRequest'
osc subnet create --network e2e-net --ip-version 6 --ipv6-ra-mode slaac --ipv6-address-mode slaac \
    --subnet-range fd00:50::/64 -f value -c ipv6_address_mode e2e-sub6
check "subnet create (IPv6 SLAAC)" out_is slaac

osc subnet pool create --pool-prefix 10.250.0.0/16 --default-prefix-length 26 -f value -c id e2e-pool
check "subnet pool create --pool-prefix" out_matches '^[0-9a-f-]{36}$'
osc subnet create --network e2e-vlan --subnet-pool e2e-pool -f value -c cidr e2e-pooled
check "subnet create --subnet-pool carves the first /26" out_is 10.250.0.0/26
osc subnet create --network e2e-vlan --subnet-pool e2e-pool --prefix-length 28 -f value -c cidr e2e-pooled2
check "subnet create --prefix-length carves the next free block" out_is 10.250.0.64/28
osc subnet pool delete e2e-pool
check "a pool in use is refused (409)" failed_with 'in use|409|Conflict'
osc subnet delete e2e-pooled e2e-pooled2
osc subnet pool delete e2e-pool
check "subnet pool delete once its subnets are gone" succeeded

osc port create --network e2e-net --fixed-ip subnet=e2e-sub,ip-address=192.168.50.10 \
    -f json e2e-port
IPS="$(jfield 'd["fixed_ips"]')"
check "port create --fixed-ip ip-address" is_true eval '[[ "$IPS" == *192.168.50.10* ]]'
osc port create --network e2e-net --fixed-ip ip-address=192.168.50.10 e2e-port2
check "the same address twice is refused (409)" failed_with 'already allocated|409|Conflict'
osc port create --network e2e-net -f value -c mac_address e2e-port3
check "port create picks a MAC from the base" out_matches '^fa:16:3e:'
osc port list --network e2e-net -f value -c Name
check "port list --network" out_has_line e2e-port3
osc port set --name e2e-renamed e2e-port3
osc port show -f value -c name e2e-renamed
check "port set --name" out_is e2e-renamed

osc security group create -f value -c id e2e-sg
SG="$OUT"
check "security group create" out_matches '^[0-9a-f-]{36}$'
osc security group rule create --protocol tcp --dst-port 22 --remote-ip 0.0.0.0/0 -f value -c id "$SG"
check "security group rule create (tcp/22)" out_matches '^[0-9a-f-]{36}$'
osc security group rule create --protocol tcp --dst-port 22 --remote-ip 0.0.0.0/0 "$SG"
check "a duplicate rule is refused (409)" failed_with 'already exists|409|Conflict'
osc security group rule list -f value -c 'Port Range' "$SG"
check "security group rule list shows the range" out_has_line 22:22
osc security group list -f value -c Name
check "the project's default group exists" out_has_line default
osc port set --security-group e2e-sg e2e-port
osc port show -f value -c security_group_ids e2e-port
check "port set --security-group" out_matches "$SG"

osc subnet create --network e2e-ext --subnet-range 203.0.113.0/24 --no-dhcp e2e-ext-sub
check "subnet create on the external network" succeeded
osc router create -f value -c id e2e-router
ROUTER="$OUT"
check "router create" out_matches '^[0-9a-f-]{36}$'
osc router set --external-gateway e2e-ext e2e-router
check "router set --external-gateway" succeeded
osc router show -f json e2e-router
GW="$(jfield 'd["external_gateway_info"]["external_fixed_ips"][0]["ip_address"]')"
check "the gateway has an external address" is_true eval '[[ "$GW" == 203.0.113.* ]]'
osc router add subnet e2e-router e2e-sub
check "router add subnet" succeeded
osc port list --router e2e-router -f value -c 'Fixed IP Addresses'
check "the interface holds the subnet's gateway" out_matches '192.168.50.1'
osc floating ip create --port e2e-port -f json e2e-ext
FIP="$(jfield 'd["floating_ip_address"]')"
FIP_FIXED="$(jfield 'd["fixed_ip_address"]')"
check "floating ip create --port" is_true eval '[[ "$FIP" == 203.0.113.* && "$FIP_FIXED" == 192.168.50.10 ]]'
osc floating ip list -f value -c 'Floating IP Address'
check "floating ip list shows it" out_has_line "$FIP"
osc floating ip unset --port "$FIP"
check "floating ip unset --port" succeeded
osc floating ip delete "$FIP"
check "floating ip delete" succeeded
osc router delete e2e-router
check "a router with interfaces is refused (409)" failed_with 'still has ports|409|Conflict'
osc router remove subnet e2e-router e2e-sub
check "router remove subnet" succeeded
osc router delete e2e-router
check "router delete" succeeded
osc quota show -f json
check "quota show (network quotas included)" succeeded

osc network delete e2e-net
check "a network with ports is refused (409 NetworkInUse)" failed_with 'in use|409|Conflict'
osc port delete e2e-port e2e-renamed
check "port delete" succeeded
osc security group delete e2e-sg
check "security group delete" succeeded
osc network delete e2e-net
check "network delete once its ports are gone" succeeded
osc network list -f value -c Name
check "the deleted network is gone" out_lacks_line e2e-net

e2e_summary network
