#!/usr/bin/env bash
# Tempest's object storage API tests (tempest.api.object_storage, or the regex given as $1)
# against a fresh all-in-one (three local devices, three replicas), through
# ../shared/conformance/run-tempest.sh. It prints the counts (`tempest: N passed, M failed,
# K skipped`) and leaves summary.json, failures.txt, the Tempest log and the server log in
# $TEMPEST_WORK/object-last/. Then it checks the tests listed in object-expected-pass.txt:
# the closing line `tempest-object-gate: N passed, M failed` counts those (M are regressions)
# and the script exits 1 when M > 0.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=measure-lib.bash
source tests/tempest/measure-lib.bash
REGEX="${1:-tempest.api.object_storage}"
port=$(free_port)
object_port=$(free_port)
FERROSTACK_IDENTITY__PORT=$port FERROSTACK_IMAGE__PORT=$(free_port) \
  FERROSTACK_PLACEMENT__PORT=$(free_port) FERROSTACK_COMPUTE__PORT=$(free_port) \
  FERROSTACK_COMPUTE__METADATA_PORT=$(free_port) \
  FERROSTACK_NETWORK__PORT=$(free_port) FERROSTACK_OBJECT__PORT=$object_port \
  FERROSTACK_IDENTITY__BCRYPT_COST=4 FERROSTACK_LOG=warn \
  "$BIN" all-in-one --state-dir "$work/state" --config /dev/null --admin-password secret \
  --compute-driver fake </dev/null >>"$work/server.log" 2>&1 &
pid=$!
for _ in $(seq 600); do curl -sf "http://127.0.0.1:$port/v3" >/dev/null && break; kill -0 "$pid" || { cat "$work/server.log" >&2; exit 1; }; sleep 0.1; done

# shellcheck source=object-lib.bash
source "$REPO/tests/tempest/object-lib.bash"
object_tempest_prepare "$port" "$object_port"

bash "$SHARED/conformance/run-tempest.sh" \
  --auth-url "http://127.0.0.1:$port/v3" --password secret --workspace "$work/tempest" --venv "$venv" \
  --regex "$REGEX" \
  --set service_available.nova=false --set service_available.neutron=false \
  --set service_available.cinder=false --set service_available.glance=false \
  --set service_available.heat=false --set auth.create_isolated_networks=false \
  "${OBJECT_TEMPEST_SETS[@]}" | tail -25

mkdir -p "$TEMPEST_WORK/object-last"
cp "$work/tempest/summary.json" "$work/tempest/failures.txt" "$work/tempest/logs/tempest.log" \
  "$work/tempest/etc/tempest.conf" "$work/tempest/run.log" "$work/server.log" "$TEMPEST_WORK/object-last/" 2>/dev/null || true
[ "$REGEX" = tempest.api.object_storage ] || exit 0
python3 tests/tempest/gate.py tempest-object-gate "$work/tempest/summary.json" tests/tempest/object-expected-pass.txt
