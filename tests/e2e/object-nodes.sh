#!/usr/bin/env bash
# End-to-end test of object storage across storage nodes, as processes: three
# `ferrostack storage-node`s (one device each, their own ports) built into rings with
# `ferrostack ring`, and an all-in-one proxy holding no device. The `openstack` CLI stores and
# reads an object through them; with one node stopped a write still succeeds, and once the
# node is back its replicator-run peers give it its copy; a node refuses a device it does
# not hold (507).
# Run alone:  FERROSTACK_BIN=... tests/e2e/run.sh object-nodes
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib/checks.bash
source "$HERE/lib/checks.bash"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/ferrostack-e2e-object-nodes.XXXXXX")"
PIDS=()
cleanup() {
    local rc=$?
    for p in "${PIDS[@]}"; do
        if [[ -n "$p" ]] && kill -0 "$p" 2>/dev/null; then
            kill -TERM "$p" 2>/dev/null
            wait "$p" 2>/dev/null
        fi
    done
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
export HOME="$WORK" TMPDIR="$WORK"
port() { "$E2E_PY" "$HTTP_PY" free-port; }
RINGS="$WORK/rings"
NODE_PORTS=("$(port)" "$(port)" "$(port)")

RINGS_OK=1
for ring in account container object; do
    run "$FERROSTACK_BIN" ring --dir "$RINGS" "$ring" create 6 3 0
    [[ $RC -eq 0 ]] || RINGS_OK=0
    for i in 1 2 3; do
        run "$FERROSTACK_BIN" ring --dir "$RINGS" "$ring" add \
            "r1z$i-127.0.0.1:${NODE_PORTS[$((i - 1))]}/n$i" 100
        [[ $RC -eq 0 ]] || RINGS_OK=0
    done
    run "$FERROSTACK_BIN" ring --dir "$RINGS" "$ring" rebalance
    [[ $RC -eq 0 ]] || RINGS_OK=0
done
check "ferrostack ring builds three rings over the three nodes" is_true eval \
    '[[ $RINGS_OK == 1 ]]'

# start_node I: node I (1-based) on its port with device nI, replicator every second.
start_node() {
    local i=$1
    env -i PATH="$PATH" HOME="$HOME" FERROSTACK_LOG=warn \
        FERROSTACK_OBJECT__RINGS_DIR="$RINGS" FERROSTACK_OBJECT__DEVICES="[\"n$i\"]" \
        FERROSTACK_OBJECT__NODE_ADDRESSES="[]" \
        FERROSTACK_OBJECT__STORAGE_PORT="${NODE_PORTS[$((i - 1))]}" \
        FERROSTACK_OBJECT__REPLICATOR_INTERVAL=1 \
        "$FERROSTACK_BIN" --state-dir "$WORK/node$i" storage-node \
        </dev/null >>"$WORK/node$i.log" 2>&1 &
    PIDS[i]=$!
}
for i in 1 2 3; do start_node "$i"; done

PORT="$(port)"
env -i PATH="$PATH" HOME="$HOME" FERROSTACK_LOG=warn FERROSTACK_IDENTITY__BCRYPT_COST=4 \
    FERROSTACK_IDENTITY__PORT="$PORT" FERROSTACK_IMAGE__PORT="$(port)" \
    FERROSTACK_COMPUTE__PORT="$(port)" FERROSTACK_PLACEMENT__PORT="$(port)" \
    FERROSTACK_NETWORK__PORT="$(port)" FERROSTACK_OBJECT__PORT="$(port)" \
    FERROSTACK_OBJECT__RINGS_DIR="$RINGS" FERROSTACK_OBJECT__DEVICES="[]" \
    FERROSTACK_OBJECT__NODE_ADDRESSES="[]" \
    "$FERROSTACK_BIN" --state-dir "$WORK/proxy" all-in-one --admin-password obj-secret --compute-driver fake \
    </dev/null >>"$WORK/proxy.log" 2>&1 &
PIDS[0]=$!
"$E2E_PY" "$HTTP_PY" wait "http://127.0.0.1:$PORT/v3" 15 2>/dev/null
for _ in $(seq 50); do [[ -f "$WORK/proxy/clouds.yaml" ]] && break; sleep 0.1; done
export OS_CLIENT_CONFIG_FILE="$WORK/proxy/clouds.yaml" OS_CLOUD=ferrostack

# data_on I: how many .data files node I's device holds.
data_on() { find "$WORK/node$1/object-devices/n$1/objects" -name '*.data' 2>/dev/null | wc -l; }

cd "$WORK" || exit 1
head -c 2097152 /dev/urandom >one.bin
head -c 1048576 /dev/urandom >two.bin
osc container create -f value -c container c1
check "container create through the nodes" out_is c1
osc object create -f value -c object c1 one.bin
check "object create through the nodes" out_is one.bin
check "each node holds one copy" is_true eval \
    '[[ "$(data_on 1)$(data_on 2)$(data_on 3)" == 111 ]]'
osc object save --file "$WORK/one.back" c1 one.bin
run cmp one.bin one.back
check "object save returns the bytes" succeeded

kill -TERM "${PIDS[3]}" && wait "${PIDS[3]}" 2>/dev/null
osc object create -f value -c object c1 two.bin
check "with node 3 stopped a write still succeeds (quorum)" out_is two.bin
osc object save --file "$WORK/two.back" c1 two.bin
run cmp two.bin two.back
check "and reads back" succeeded
check "node 3 missed it" is_true eval '[[ "$(data_on 3)" == 1 ]]'
start_node 3
for _ in $(seq 100); do [[ "$(data_on 3)" == 2 ]] && break; sleep 0.2; done
check "back up, node 3 gets its copy from the replicators" is_true eval \
    '[[ "$(data_on 3)" == 2 ]]'
osc container show -f json c1
COUNT="$(jfield 'd["object_count"]')"
check "the container counts both objects" is_true eval '[[ "$COUNT" == 2 ]]'

run curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${NODE_PORTS[0]}/n2/0/AUTH_x"
check "a node refuses a device it does not hold (507)" out_is 507

osc object delete c1 one.bin two.bin
check "object delete through the nodes" succeeded
check "no node keeps data of deleted objects" is_true eval \
    '[[ "$(data_on 1)$(data_on 2)$(data_on 3)" == 000 ]]'

e2e_summary object-nodes
