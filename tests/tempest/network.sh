#!/usr/bin/env bash
# Tempest's network API tests (tempest.api.network, or the regex given as $1) against a fresh
# all-in-one (fake compute driver, one fake host), through ../shared/conformance/run-tempest.sh.
# Before the run it makes what devstack would: an external flat network with a subnet
# (public_network_id, for the router and floating IP tests). A measurement, not a gate: it
# prints the counts (`tempest: N passed, M failed, K skipped`) and leaves summary.json,
# failures.txt and the Tempest log in $TEMPEST_WORK/network-last/. Then it checks the tests
# listed in network-expected-pass.txt: the closing line `tempest-network-gate: N passed,
# M failed` counts those (M are regressions) and the script exits 1 when M > 0.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=measure-lib.bash
source tests/tempest/measure-lib.bash
REGEX="${1:-tempest.api.network}"
port=$(free_port)
FERROSTACK_IDENTITY__PORT=$port FERROSTACK_IMAGE__PORT=$(free_port) \
  FERROSTACK_PLACEMENT__PORT=$(free_port) FERROSTACK_COMPUTE__PORT=$(free_port) \
  FERROSTACK_NETWORK__PORT=$(free_port) FERROSTACK_OBJECT__PORT=$(free_port) \
  FERROSTACK_IDENTITY__BCRYPT_COST=4 FERROSTACK_LOG=warn \
  "$BIN" all-in-one --state-dir "$work/state" --config /dev/null --admin-password secret \
  --compute-driver fake --fake-hosts 1 </dev/null >>"$work/server.log" 2>&1 &
pid=$!
for _ in $(seq 600); do curl -sf "http://127.0.0.1:$port/v3" >/dev/null && break; kill -0 "$pid" || { cat "$work/server.log" >&2; exit 1; }; sleep 0.1; done
osc=(env -u OS_CLOUD OS_AUTH_URL="http://127.0.0.1:$port/v3" OS_USERNAME=admin
  OS_PASSWORD=secret OS_PROJECT_NAME=admin OS_USER_DOMAIN_NAME=Default
  OS_PROJECT_DOMAIN_NAME=Default OS_IDENTITY_API_VERSION=3 "$venv/bin/openstack")
PUBLIC_NETWORK_ID=$("${osc[@]}" network create --external --share --provider-network-type flat \
  --provider-physical-network public -f value -c id public)
"${osc[@]}" subnet create --network public --subnet-range 172.24.4.0/24 --no-dhcp public-subnet >/dev/null
# The exact extension list turns tests of missing extensions into skips, not failures.
EXTENSIONS=$("${osc[@]}" extension list --network -f value -c Alias | paste -sd, -)
export PUBLIC_NETWORK_ID FLOATING_NETWORK_NAME=public

bash "$SHARED/conformance/run-tempest.sh" \
  --auth-url "http://127.0.0.1:$port/v3" --password secret --workspace "$work/tempest" --venv "$venv" \
  --regex "$REGEX" \
  --set service_available.nova=true --set service_available.neutron=true \
  --set service_available.cinder=false --set service_available.swift=false \
  --set service_available.heat=false --set auth.create_isolated_networks=false \
  --set validation.run_validation=false \
  --set network-feature-enabled.api_extensions="$EXTENSIONS" | tail -25

mkdir -p "$TEMPEST_WORK/network-last"
cp "$work/tempest/summary.json" "$work/tempest/failures.txt" "$work/tempest/logs/tempest.log" \
  "$work/tempest/etc/tempest.conf" "$work/server.log" "$TEMPEST_WORK/network-last/" 2>/dev/null || true
[ "$REGEX" = tempest.api.network ] || exit 0
python3 tests/tempest/gate.py tempest-network-gate "$work/tempest/summary.json" tests/tempest/network-expected-pass.txt
