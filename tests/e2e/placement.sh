#!/usr/bin/env bash
# End-to-end test of placement with the real `openstack` CLI and its osc-placement plugin:
# providers, inventories, traits, resource classes, allocation candidates, allocations and
# usages, as an operator (or nova's report client, through the same API) drives them.
# Run alone:  PATH=/var/tmp/ferrostack-e2e-venv/bin:$PATH tests/e2e/placement.sh
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib/checks.bash
source "$HERE/lib/checks.bash"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/ferrostack-e2e-placement.XXXXXX")"
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
env -i PATH="$PATH" HOME="$HOME" FERROSTACK_LOG=warn FERROSTACK_IDENTITY__BCRYPT_COST=4 \
    FERROSTACK_IDENTITY__PORT="$PORT" FERROSTACK_IMAGE__PORT="$IMAGE_PORT" \
    FERROSTACK_PLACEMENT__PORT="$PLACEMENT_PORT" \
    "$FERROSTACK_BIN" --state-dir "$STATE" all-in-one --admin-password pl-secret --compute-driver fake \
    </dev/null >>"$WORK/server.log" 2>&1 &
SERVER_PID=$!
"$E2E_PY" "$HTTP_PY" wait "http://127.0.0.1:$PORT/v3" 15 2>/dev/null
for _ in $(seq 50); do [[ -f "$STATE/clouds.yaml" ]] && break; sleep 0.1; done
export OS_CLIENT_CONFIG_FILE="$STATE/clouds.yaml" OS_CLOUD=ferrostack

http_get "http://127.0.0.1:$PLACEMENT_PORT/"
check "the version document answers without a token" status_is 200
osc catalog show placement -f json
check "placement is in the catalog without a version suffix" \
    out_matches "http://127.0.0.1:$PLACEMENT_PORT\""

osc resource provider create -f value -c uuid e2e-cn1
RP="$OUT"
check "resource provider create" out_matches '^[0-9a-f-]{36}$'
osc --os-placement-api-version 1.14 resource provider create -f value -c uuid \
    --parent-provider "$RP" e2e-cn1-numa0
CHILD="$OUT"
check "a child provider under it (1.14)" out_matches '^[0-9a-f-]{36}$'
osc --os-placement-api-version 1.14 resource provider show -f value -c root_provider_uuid "$CHILD"
check "the child's root is the parent" out_is "$RP"
osc resource provider list -f value -c name
check "resource provider list shows both" out_has_line e2e-cn1-numa0
osc resource provider create e2e-cn1
check "a duplicate name is refused (409)" failed_with '409|Conflict'

osc resource provider inventory set --resource VCPU=8 --resource VCPU:allocation_ratio=2.0 \
    --resource MEMORY_MB=4096 --resource DISK_GB=100 "$RP"
check "resource provider inventory set" succeeded
osc resource provider inventory list -f value -c resource_class "$RP"
check "the inventory lists VCPU" out_has_line VCPU
osc resource provider inventory show -f value -c total "$RP" MEMORY_MB
check "inventory show MEMORY_MB total" out_is 4096

osc --os-placement-api-version 1.7 resource class create CUSTOM_E2E_GPU
check "resource class create CUSTOM_E2E_GPU" succeeded
osc --os-placement-api-version 1.2 resource class list -f value -c name
check "resource class list has it and the standard ones" out_has_line CUSTOM_E2E_GPU
osc --os-placement-api-version 1.6 trait create CUSTOM_E2E_FAST
check "trait create" succeeded
osc --os-placement-api-version 1.6 resource provider trait set --trait CUSTOM_E2E_FAST \
    --trait HW_CPU_X86_AVX2 "$RP"
check "resource provider trait set" succeeded
osc --os-placement-api-version 1.6 resource provider trait list -f value -c name "$RP"
check "the provider has the trait" out_has_line CUSTOM_E2E_FAST

osc --os-placement-api-version 1.17 allocation candidate list --resource VCPU=4 \
    --required CUSTOM_E2E_FAST -f json
check "allocation candidate list finds the provider" out_matches "$RP"
osc --os-placement-api-version 1.17 allocation candidate list --resource VCPU=17 -f value
check "no candidate asks more than (8 x 2.0) VCPUs" out_is ""

CONSUMER="$("$E2E_PY" -c 'import uuid; print(uuid.uuid4())')"
osc --os-placement-api-version 1.12 resource provider allocation set \
    --allocation "rp=$RP,VCPU=4,MEMORY_MB=1024" --project-id e2e-proj --user-id e2e-user \
    "$CONSUMER"
check "resource provider allocation set" succeeded
osc --os-placement-api-version 1.12 resource provider allocation show -f value -c resources \
    "$CONSUMER"
check "allocation show returns the claim" out_matches "'VCPU': 4"
osc resource provider usage show -f value -c resource_class -c usage "$RP"
check "usage show counts the claim" out_has_line "VCPU 4"
osc --os-placement-api-version 1.9 resource usage show -f value -c resource_class -c usage e2e-proj
check "project usage show" out_has_line "MEMORY_MB 1024"
osc --os-placement-api-version 1.12 resource provider allocation set \
    --allocation "rp=$RP,VCPU=64" --project-id e2e-proj --user-id e2e-user "$CONSUMER"
check "over capacity is refused (409)" failed_with '409|Conflict|capacity'
osc resource provider inventory delete --resource-class VCPU "$RP"
check "inventory in use cannot be deleted" failed_with '409|Conflict|in use'
osc resource provider delete "$RP"
check "a parent provider cannot be deleted" failed_with '409|Conflict|child'
osc resource provider allocation delete "$CONSUMER"
check "resource provider allocation delete" succeeded
osc resource provider delete "$CHILD"
osc resource provider delete "$RP"
check "resource provider delete (after its child)" succeeded
osc resource provider list -f value -c name
check "the providers are gone" out_lacks_line e2e-cn1

e2e_summary placement
