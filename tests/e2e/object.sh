#!/usr/bin/env bash
# End-to-end test of object storage (Swift) with the real `openstack` CLI: container create,
# list and show; object create, list, show, save (the bytes come back unchanged), set
# properties, delete; a container that still holds objects cannot be deleted.
# Run alone:  PATH=/var/tmp/ferrostack-e2e-venv/bin:$PATH tests/e2e/object.sh
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib/checks.bash
source "$HERE/lib/checks.bash"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/ferrostack-e2e-object.XXXXXX")"
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
port() { "$E2E_PY" "$HTTP_PY" free-port; }
PORT="$(port)"
env -i PATH="$PATH" HOME="$HOME" FERROSTACK_LOG=warn FERROSTACK_IDENTITY__BCRYPT_COST=4 \
    FERROSTACK_IDENTITY__PORT="$PORT" FERROSTACK_IMAGE__PORT="$(port)" \
    FERROSTACK_COMPUTE__PORT="$(port)" FERROSTACK_PLACEMENT__PORT="$(port)" \
    FERROSTACK_NETWORK__PORT="$(port)" FERROSTACK_OBJECT__PORT="$(port)" \
    "$FERROSTACK_BIN" --state-dir "$STATE" all-in-one --admin-password obj-secret --compute-driver fake \
    </dev/null >>"$WORK/server.log" 2>&1 &
SERVER_PID=$!
"$E2E_PY" "$HTTP_PY" wait "http://127.0.0.1:$PORT/v3" 15 2>/dev/null
for _ in $(seq 50); do [[ -f "$STATE/clouds.yaml" ]] && break; sleep 0.1; done
export OS_CLIENT_CONFIG_FILE="$STATE/clouds.yaml" OS_CLOUD=ferrostack

osc catalog show object-store -f json
check "the catalog has object-store at /v1/AUTH_<project>" out_matches '/v1/AUTH_[0-9a-f]{32}'

osc container create -f value -c container e2e-c
check "container create" out_is e2e-c
osc container list -f value -c Name
check "container list shows it" out_has_line e2e-c

# A few MiB of non-repeating bytes, named with a pseudo-directory.
cd "$WORK" || exit 1
mkdir -p dir
head -c 3145728 /dev/urandom >dir/data.bin
SUM="$(md5sum dir/data.bin | cut -d' ' -f1)"
echo "small" >note.txt

osc object create -f value -c object e2e-c dir/data.bin
check "object create uploads the file" out_is dir/data.bin
osc object create -f value -c object e2e-c note.txt
check "a second object" out_is note.txt
osc object list -f value -c Name e2e-c
check "object list shows both" is_true eval '[[ "$OUT" == $'"'"'dir/data.bin\nnote.txt'"'"' ]]'
osc object list -f value -c Name --prefix dir/ e2e-c
check "object list --prefix" out_is dir/data.bin
osc object show -f json e2e-c dir/data.bin
ETAG="$(jfield 'd["etag"]')"
check "object show: its etag is the file's md5" is_true eval '[[ "$ETAG" == "$SUM" ]]'
osc object save --file "$WORK/back.bin" e2e-c dir/data.bin
check "object save succeeds" succeeded
run cmp dir/data.bin "$WORK/back.bin"
check "the saved bytes are the uploaded bytes" succeeded
osc object set --property color=blue e2e-c note.txt
check "object set --property" succeeded
osc object show -f json e2e-c note.txt
check "object show has the property" out_matches '"color": "blue"'
osc container show -f json e2e-c
COUNT="$(jfield 'd["object_count"]')"
check "container show counts two objects" is_true eval '[[ "$COUNT" == 2 ]]'
osc container delete e2e-c
check "deleting a container with objects is refused (409)" failed_with '409|Conflict'
osc object delete e2e-c dir/data.bin note.txt
check "object delete" succeeded
osc object list -f value -c Name e2e-c
check "the container is empty" out_is ""
osc container delete e2e-c
check "container delete" succeeded
osc container list -f value -c Name
check "container list no longer shows it" out_lacks_line e2e-c

e2e_summary object
