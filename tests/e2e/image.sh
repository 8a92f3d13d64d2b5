#!/usr/bin/env bash
# End-to-end test of the image service (Glance v2) with the real `openstack` CLI: create with
# data, list, show, save (the bytes come back unchanged), set properties and tags, delete.
# Run alone:  PATH=/var/tmp/ferrostack-e2e-venv/bin:$PATH tests/e2e/image.sh
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib/checks.bash
source "$HERE/lib/checks.bash"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/ferrostack-e2e-image.XXXXXX")"
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
env -i PATH="$PATH" HOME="$HOME" FERROSTACK_LOG=warn FERROSTACK_IDENTITY__BCRYPT_COST=4 \
    FERROSTACK_IDENTITY__PORT="$PORT" FERROSTACK_IMAGE__PORT="$IMAGE_PORT" \
    "$FERROSTACK_BIN" --state-dir "$STATE" all-in-one --admin-password img-secret --compute-driver fake \
    </dev/null >>"$WORK/server.log" 2>&1 &
SERVER_PID=$!
"$E2E_PY" "$HTTP_PY" wait "http://127.0.0.1:$PORT/v3" 15 2>/dev/null
for _ in $(seq 50); do [[ -f "$STATE/clouds.yaml" ]] && break; sleep 0.1; done
export OS_CLIENT_CONFIG_FILE="$STATE/clouds.yaml" OS_CLOUD=ferrostack

# A few MiB of non-repeating bytes.
DATA="$WORK/disk.img"
head -c 5242880 /dev/urandom >"$DATA"
SUM="$(md5sum "$DATA" | cut -d' ' -f1)"

osc image create --file "$DATA" --disk-format qcow2 --container-format bare -f value -c id e2e-img
ID="$OUT"
check "image create --file uploads the data" out_matches '^[0-9a-f-]{36}$'
osc image show -f value -c status "$ID"
check "the new image is active" out_is active
osc image show -f value -c checksum "$ID"
check "its checksum is the md5 of the file" out_is "$SUM"
osc image show -f value -c size "$ID"
check "its size is the file's" out_is 5242880
osc image list -f value -c Name
check "image list shows it" out_has_line e2e-img
osc image save --file "$WORK/back.img" "$ID"
check "image save succeeds" succeeded
run cmp "$DATA" "$WORK/back.img"
check "the saved bytes are the uploaded bytes" succeeded
osc image set --property os_distro=cirros --tag t1 "$ID"
check "image set --property --tag" succeeded
osc image show -f json "$ID"
PROP="$(jfield 'd["properties"]["os_distro"]')"
check "the property is set" is_true eval '[[ "$PROP" == cirros ]]'
osc image show -f value -c tags "$ID"
check "the tag is set" out_matches 't1'
osc image list --tag t1 -f value -c Name
check "image list --tag finds it" out_has_line e2e-img
osc image set --property checksum=0123 "$ID"
check "setting a read-only property is refused by the server (403)" failed_with '403|read-only'
osc image set --deactivate "$ID"
check "image set --deactivate" succeeded
osc image show -f value -c status "$ID"
check "the image is deactivated" out_is deactivated
osc image set --activate "$ID"
osc image show -f value -c status "$ID"
check "image set --activate makes it active again" out_is active
# Sharing: the owner adds a project, which sees the image listed once it accepts.
osc project create -f value -c id e2e-demo
DEMO_PROJECT="$OUT"
osc user create --password demo-pw --project e2e-demo e2e-demo
osc role add --user e2e-demo --project e2e-demo member
check "a second project with a member" succeeded
demo() { osc --os-username e2e-demo --os-password demo-pw --os-project-name e2e-demo "$@"; }
osc image add project "$ID" "$DEMO_PROJECT"
check "image add project shares the image" succeeded
demo image list -f value -c Name
check "the member does not list a pending share" out_lacks_line e2e-img
demo image set --accept "$ID"
check "image set --accept from the member's side" succeeded
demo image list -f value -c Name
check "the member lists the accepted image" out_has_line e2e-img
demo image save --file "$WORK/shared.img" "$ID"
run cmp "$DATA" "$WORK/shared.img"
check "the member downloads the same bytes" succeeded
osc image delete "$ID"
check "image delete" succeeded
osc image list -f value -c Name
check "the deleted image is gone from the list" out_lacks_line e2e-img

# Interoperable import with the CLI: stage the data, then glance-direct.
osc image create --disk-format raw --container-format bare --import --file "$DATA" -f value -c id e2e-imported
IMP_ID="$OUT"
check "image create --import (stage + glance-direct)" out_matches '^[0-9a-f-]{36}$'
for _ in $(seq 100); do
    osc image show -f value -c status "$IMP_ID"
    [[ "$OUT" == active ]] && break
    sleep 0.1
done
check "the imported image becomes active" out_is active
osc image show -f value -c checksum "$IMP_ID"
check "the imported image has the file's md5" out_is "$SUM"
osc image delete "$IMP_ID"

# 2 GiB through the server in bounded memory: the peak RSS (VmHWM, reset first) may grow by
# less than 64 MiB over the RSS before the transfer, for the upload and for the download.
BIG="$WORK/big.img"
truncate -s 2G "$BIG"
BIG_SUM="$(md5sum "$BIG" | cut -d' ' -f1)"
osc token issue -f value -c id
TOKEN="$OUT"
# (Not `openstack image create`: without --file it uploads whatever its stdin holds.)
run bash -c "curl -sS -f -H 'X-Auth-Token: $TOKEN' -H 'Content-Type: application/json' \
    -d '{\"name\": \"e2e-big\", \"disk_format\": \"raw\", \"container_format\": \"bare\"}' \
    http://127.0.0.1:$IMAGE_PORT/v2/images | $E2E_PY -c 'import json,sys; print(json.load(sys.stdin)[\"id\"])'"
BIG_ID="$OUT"
check "a queued image for the 2 GiB test" out_matches '^[0-9a-f-]{36}$'
IMG_URL="http://127.0.0.1:$IMAGE_PORT/v2/images/$BIG_ID/file"
kib() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$SERVER_PID/status"; }
BASE="$(kib VmRSS)"
echo 5 >"/proc/$SERVER_PID/clear_refs"
run curl -sS -f -X PUT -H "X-Auth-Token: $TOKEN" -H 'Content-Type: application/octet-stream' \
    -T "$BIG" "$IMG_URL"
check "a 2 GiB upload succeeds" succeeded
UP_MIB=$(( ($(kib VmHWM) - BASE) / 1024 ))
check "the upload grew the server's RSS by $UP_MIB MiB (< 64)" is_true test "$UP_MIB" -lt 64
osc image show -f value -c checksum "$BIG_ID"
check "the 2 GiB image has the file's md5" out_is "$BIG_SUM"
BASE="$(kib VmRSS)"
echo 5 >"/proc/$SERVER_PID/clear_refs"
run bash -c "curl -sS -f -H 'X-Auth-Token: $TOKEN' '$IMG_URL' | md5sum | cut -d' ' -f1"
check "the 2 GiB download returns the same bytes" out_is "$BIG_SUM"
DOWN_MIB=$(( ($(kib VmHWM) - BASE) / 1024 ))
check "the download grew the server's RSS by $DOWN_MIB MiB (< 64)" is_true test "$DOWN_MIB" -lt 64
osc image delete "$BIG_ID"
rm -f "$BIG"

e2e_summary image
