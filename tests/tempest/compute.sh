#!/usr/bin/env bash
# Tempest's compute API tests (tempest.api.compute, or the regex given as $1) against a fresh
# all-in-one on the fake hypervisor with two fake hosts, through
# ../shared/conformance/run-tempest.sh. A measurement, not a gate: it prints the counts
# (`tempest: N passed, M failed, K skipped`) and leaves summary.json, failures.txt and the
# Tempest log in $TEMPEST_WORK/compute-last/. Then, like run.sh, it checks the tests listed in
# compute-expected-pass.txt: the closing line `tempest-compute-gate: N passed, M failed`
# counts those (M are regressions) and the script exits 1 when M > 0. It is not part of
# run.sh's pass: the compute selection alone takes about 6 minutes on the 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=measure-lib.bash
source tests/tempest/measure-lib.bash
REGEX="${1:-tempest.api.compute}"
# shellcheck source=compute-lib.bash
source "$REPO/tests/tempest/compute-lib.bash"
start_compute_cloud "$work"

bash "$SHARED/conformance/run-tempest.sh" \
  --auth-url "http://127.0.0.1:$port/v3" --password secret --workspace "$work/tempest" --venv "$venv" \
  --regex "$REGEX" "${COMPUTE_TEMPEST_SETS[@]}" | tail -25

mkdir -p "$TEMPEST_WORK/compute-last"
cp "$work/tempest/summary.json" "$work/tempest/failures.txt" "$work/tempest/logs/tempest.log" \
  "$work/tempest/etc/tempest.conf" "$work/server.log" "$TEMPEST_WORK/compute-last/" 2>/dev/null || true
[ "$REGEX" = tempest.api.compute ] || exit 0
python3 tests/tempest/gate.py tempest-compute-gate "$work/tempest/summary.json" tests/tempest/compute-expected-pass.txt
