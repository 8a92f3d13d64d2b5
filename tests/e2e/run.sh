#!/usr/bin/env bash
# FerroStack end-to-end tests with the real, unmodified `openstack` CLI from PyPI.
#
#   tests/e2e/run.sh            # every tests/e2e/*.sh but this one
#   tests/e2e/run.sh identity   # only tests/e2e/identity.sh
#
# 1. makes (or reuses, when it is still valid) a venv at ${FERRO_E2E_VENV:-/var/tmp/ferrostack-e2e-venv}
#    with the pins of tests/e2e/requirements.txt (python-openstackclient and its closure);
# 2. uses ${FERROSTACK_BIN:-$CARGO_TARGET_DIR/debug/ferrostack} (CARGO_TARGET_DIR defaults to
#    /var/tmp/ferrostack-target). Without FERROSTACK_BIN it runs `cargo build -p ferrostack`
#    first (a no-op when the binary is up to date) unless FERRO_E2E_NO_BUILD=1 and the
#    binary exists; with FERROSTACK_BIN it uses that binary as it is;
# 3. runs each test file; each prints one PASS/FAIL line per check.
# Ends with exactly one line `e2e: N passed, M failed`; exits 1 if anything failed.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="${FERRO_E2E_VENV:-/var/tmp/ferrostack-e2e-venv}"
REQS="$HERE/requirements.txt"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/ferrostack-target}"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 DEBIAN_FRONTEND=noninteractive

RESULTS="$(mktemp "${TMPDIR:-/tmp}/ferrostack-e2e-results.XXXXXX")"
child=""
trap 'rm -f "$RESULTS"' EXIT
# stop_child SIGNAL-EXIT-CODE: ends the running test file (which cleans up after itself).
stop_child() {
    if [[ -n "$child" ]]; then
        kill -TERM "$child" 2>/dev/null
        wait "$child" 2>/dev/null
    fi
    exit "$1"
}
trap 'stop_child 129' HUP
trap 'stop_child 130' INT
trap 'stop_child 143' TERM

log() { printf 'e2e: %s\n' "$*" >&2; }

# setup_failed NAME: a failed setup step counts as one failed check; nothing else can run.
setup_failed() {
    printf 'FAIL  setup: %s\n' "$1"
    printf 'e2e: 0 passed, 1 failed\n'
    exit 1
}

# ---- 1. the venv -----------------------------------------------------------------------------
# osc-placement (the `resource provider ...` commands) rides along with the pinned closure.
PLUGINS="osc-placement==4.9.1"
reqs_sum() { cat "$REQS" - <<<"$PLUGINS" | sha256sum | cut -d' ' -f1; }

venv_valid() {
    [[ -x "$VENV/bin/python" && -x "$VENV/bin/openstack" ]] || return 1
    [[ "$(cat "$VENV/.ferrostack-e2e-requirements" 2>/dev/null)" == "$(reqs_sum)" ]] || return 1
    "$VENV/bin/python" -c 'import sys' 2>/dev/null || return 1
    local want have
    want="$(sed -n 's/^python-openstackclient==//p' "$REQS")"
    have="$("$VENV/bin/openstack" --version 2>&1 </dev/null)"
    [[ "$have" == "openstack $want" ]]
}

ensure_python_venv() {
    local probe
    probe="$(mktemp -d "${TMPDIR:-/tmp}/ferrostack-e2e-venvprobe.XXXXXX")"
    if python3 -m venv "$probe/v" >/dev/null 2>&1; then
        rm -rf "$probe"
        return 0
    fi
    rm -rf "$probe"
    log "python3 -m venv does not work here: installing python3-venv with apt-get"
    if [[ $(id -u) -eq 0 ]]; then
        apt-get update -qq >&2 && apt-get install -y -qq python3-venv >&2
    else
        sudo -n apt-get update -qq >&2 && sudo -n apt-get install -y -qq python3-venv >&2
    fi
}

make_venv() {
    command -v python3 >/dev/null || setup_failed "python3 is on PATH"
    ensure_python_venv || setup_failed "python3-venv installed"
    log "creating the venv $VENV (python-openstackclient from PyPI)"
    rm -rf "$VENV"
    python3 -m venv "$VENV" >&2 || setup_failed "python3 -m venv $VENV"
    local try
    for try in 1 2 3; do
        if "$VENV/bin/pip" install -q --no-input -r "$REQS" $PLUGINS >&2; then
            reqs_sum >"$VENV/.ferrostack-e2e-requirements"
            return 0
        fi
        log "pip install failed (try $try of 3)"
        sleep $((try * 5))
    done
    setup_failed "pip install -r tests/e2e/requirements.txt into $VENV"
}

started=$SECONDS
if venv_valid; then
    log "reusing the venv $VENV"
else
    make_venv
    venv_valid || setup_failed "venv $VENV has the pinned openstack CLI"
    log "venv ready in $((SECONDS - started)) s"
fi
export PATH="$VENV/bin:$PATH"
export E2E_PY="$VENV/bin/python"

# ---- 2. the binary ---------------------------------------------------------------------------
if [[ -n "${FERROSTACK_BIN:-}" ]]; then
    [[ -x "$FERROSTACK_BIN" ]] || setup_failed "FERROSTACK_BIN=$FERROSTACK_BIN is an executable"
else
    FERROSTACK_BIN="$CARGO_TARGET_DIR/debug/ferrostack"
    if [[ "${FERRO_E2E_NO_BUILD:-0}" == 1 && -x "$FERROSTACK_BIN" ]]; then
        log "using $FERROSTACK_BIN as it is (FERRO_E2E_NO_BUILD=1)"
    else
        log "cargo build -p ferrostack (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
        (cd "$ROOT" && cargo build -p ferrostack >&2) || setup_failed "cargo build -p ferrostack"
        [[ -x "$FERROSTACK_BIN" ]] || setup_failed "cargo build made $FERROSTACK_BIN"
    fi
fi
export FERROSTACK_BIN

# ---- 3. the test files -----------------------------------------------------------------------
tests=()
if [[ $# -gt 0 ]]; then
    for t in "$@"; do tests+=("$HERE/${t%.sh}.sh"); done
else
    for t in "$HERE"/*.sh; do
        [[ "$(basename "$t")" == run.sh ]] || tests+=("$t")
    done
fi

for t in "${tests[@]}"; do
    name="$(basename "$t" .sh)"
    if [[ ! -f "$t" ]]; then
        printf 'FAIL  %s: no such test file\n' "$name"
        printf 'FAIL %s: no such test file\n' "$name" >>"$RESULTS"
        continue
    fi
    log "running $name"
    before=$(wc -l <"$RESULTS")
    t0=$SECONDS
    # In the background so that a TERM/INT to run.sh reaches the test (its trap cleans up):
    # timeout runs in a process group of its own.
    E2E_RESULTS="$RESULTS" timeout -k 75 "${FERRO_E2E_FILE_TIMEOUT:-600}" bash "$t" </dev/null &
    child=$!
    wait "$child"
    rc=$?
    child=""
    after=$(wc -l <"$RESULTS")
    nfail=$(tail -n +$((before + 1)) "$RESULTS" | grep -c '^FAIL ')
    if ((after == before)); then
        printf 'FAIL  %s: ran no check (exit code %d)\n' "$name" "$rc"
        printf 'FAIL %s: ran no check\n' "$name" >>"$RESULTS"
    elif ((rc != 0 && nfail == 0)); then
        printf 'FAIL  %s: exited with code %d after its checks\n' "$name" "$rc"
        printf 'FAIL %s: exit code %d\n' "$name" "$rc" >>"$RESULTS"
    fi
    log "$name took $((SECONDS - t0)) s"
done

passed=$(grep -c '^PASS ' "$RESULTS")
failed=$(grep -c '^FAIL ' "$RESULTS")
printf 'e2e: %d passed, %d failed\n' "$passed" "$failed"
[[ $failed -eq 0 ]]
