# shellcheck shell=bash
# Helpers shared by the tests/e2e/*.sh test files (sourced, never run).
#
# A test file runs commands with `run` (or `osc` for the openstack CLI), which captures
# stdout, stderr and the exit code, then judges them with `check NAME PREDICATE ARGS...`.
# Every check prints exactly one line, `PASS  name` or `FAIL  name`; a failing check
# also prints the command, its exit code and its output, indented, below that line.
#
# Under run.sh, E2E_RESULTS names a file that collects one "PASS|FAIL name" line per
# check; run.sh counts it. A test file run on its own prints its own summary instead.

E2E_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
E2E_PY="${E2E_PY:-python3}"
E2E_PASSED=0
E2E_FAILED=0
: "${E2E_CMD_TIMEOUT:=60}"

# What every test file starts from: the binary under test (run.sh sets it; alone, the debug
# build in CARGO_TARGET_DIR), the HTTP helper, and no OS_* variables from the caller's shell,
# so the CLI reads only the clouds.yaml the test's own cloud wrote.
FERROSTACK_BIN="${FERROSTACK_BIN:-${CARGO_TARGET_DIR:-/var/tmp/ferrostack-target}/debug/ferrostack}"
HTTP_PY="$E2E_LIB_DIR/e2e_util.py"
while IFS= read -r v; do unset "$v"; done < <(compgen -e | grep -E '^OS_' || true)

# Last command's record.
OUT=""
ERR=""
RC=0
LAST_CMD=""

_e2e_record() {
    if [[ -n "${E2E_RESULTS:-}" ]]; then
        printf '%s %s\n' "$1" "$2" >>"$E2E_RESULTS"
    fi
}

pass() {
    E2E_PASSED=$((E2E_PASSED + 1))
    printf 'PASS  %s\n' "$1"
    _e2e_record PASS "$1"
}

# fail NAME [WHY]: a failed check, with the last command's details.
fail() {
    E2E_FAILED=$((E2E_FAILED + 1))
    printf 'FAIL  %s\n' "$1"
    _e2e_record FAIL "$1"
    if [[ -n "${2:-}" ]]; then
        printf '      why: %s\n' "$2"
    fi
    if [[ -n "$LAST_CMD" ]]; then
        printf '      command: %s\n' "$LAST_CMD"
        printf '      exit code: %s\n' "$RC"
        _e2e_indent stdout "$OUT"
        _e2e_indent stderr "$ERR"
    fi
}

_e2e_indent() {
    local label=$1 text=$2
    [[ -z "$text" ]] && return 0
    printf '      %s:\n' "$label"
    printf '%s\n' "$text" | head -n 25 | sed 's/^/        | /'
    local n
    n=$(printf '%s\n' "$text" | wc -l)
    if ((n > 25)); then printf '        | ... (%d more lines)\n' $((n - 25)); fi
}

# run CMD ARGS...: runs a command (stdin from /dev/null, with a time limit) and records
# OUT, ERR, RC and LAST_CMD.
run() {
    local errf
    errf=$(mktemp "${TMPDIR:-/tmp}/e2e-err.XXXXXX")
    LAST_CMD="$(_e2e_quote "$@")"
    OUT=$(timeout -k 5 "$E2E_CMD_TIMEOUT" "$@" </dev/null 2>"$errf")
    RC=$?
    ERR=$(cat "$errf")
    rm -f "$errf"
    return 0
}

_e2e_quote() {
    local s="" a
    for a in "$@"; do
        if [[ "$a" =~ ^[A-Za-z0-9_./:=@,+-]+$ ]]; then s+="$a "; else s+="$(printf '%q' "$a") "; fi
    done
    printf '%s' "${s% }"
}

# osc ARGS...: the openstack CLI in the current environment.
osc() { run openstack "$@"; }

# check NAME PREDICATE ARGS...: one PASS/FAIL line.
check() {
    local name=$1
    shift
    if "$@"; then pass "$name"; else fail "$name" "expected: $*"; fi
}

# ---- predicates on the last command -------------------------------------------------------
succeeded() { [[ $RC -eq 0 ]]; }
# out_is TEXT: succeeded and stdout is exactly TEXT
out_is() { [[ $RC -eq 0 && "$OUT" == "$1" ]]; }
# out_has_line TEXT: succeeded and one stdout line is exactly TEXT
out_has_line() { [[ $RC -eq 0 ]] && printf '%s\n' "$OUT" | grep -Fxq -- "$1"; }
# out_lacks_line TEXT: succeeded and no stdout line is exactly TEXT
out_lacks_line() { [[ $RC -eq 0 ]] && ! printf '%s\n' "$OUT" | grep -Fxq -- "$1"; }
# out_matches ERE: succeeded and stdout matches the extended regex
out_matches() { [[ $RC -eq 0 ]] && printf '%s\n' "$OUT" | grep -Eq -- "$1"; }
# failed_with ERE: failed, and stdout or stderr matches the extended regex
failed_with() { [[ $RC -ne 0 ]] && printf '%s\n%s\n' "$OUT" "$ERR" | grep -Eq -- "$1"; }
# is_true CMD...: an arbitrary condition (the last command must have succeeded too)
is_true() { [[ $RC -eq 0 ]] && "$@"; }

# jfield EXPR: evaluates a Python expression over the JSON in OUT (bound to `d`)
jfield() { printf '%s' "$OUT" | "$E2E_PY" "$E2E_LIB_DIR/e2e_util.py" json "$1" 2>/dev/null; }

# http_get URL [TOKEN [SUBJECT]]: GET through Python; records "<status> <body>" in OUT
http_get() { run "$E2E_PY" "$E2E_LIB_DIR/e2e_util.py" get "$@"; }
# status_is CODE: the last http_get answered CODE
status_is() { [[ $RC -eq 0 && "${OUT%% *}" == "$1" ]]; }

# summary PREFIX: prints "PREFIX: N passed, M failed" unless run.sh collects the results;
# returns non-zero if any check failed.
e2e_summary() {
    if [[ -z "${E2E_RESULTS:-}" ]]; then
        printf '%s: %d passed, %d failed\n' "$1" "$E2E_PASSED" "$E2E_FAILED"
    fi
    [[ $E2E_FAILED -eq 0 ]]
}

# start_cloud STATE_DIR [ENV=VALUE...] -- [ALL-IN-ONE ARGS...]: starts all-in-one on free
# ports (the same ones again when it starts a second time, as the catalog names them) with
# its state in STATE_DIR and its log in STATE_DIR.log, waits for identity and clouds.yaml,
# and points the openstack CLI at it. Sets SERVER_PID; the caller's EXIT trap stops it.
CLOUD_PORTS=()
start_cloud() {
    local state="$1" env=() s
    shift
    while [[ $# -gt 0 && "$1" != -- ]]; do env+=("$1"); shift; done
    [[ "${1:-}" == -- ]] && shift
    if [[ ${#CLOUD_PORTS[@]} -eq 0 ]]; then
        PORT="$("$E2E_PY" "$E2E_LIB_DIR/e2e_util.py" free-port)"
        for s in IMAGE PLACEMENT COMPUTE NETWORK OBJECT; do
            CLOUD_PORTS+=("FERROSTACK_${s}__PORT=$("$E2E_PY" "$E2E_LIB_DIR/e2e_util.py" free-port)")
        done
        CLOUD_PORTS+=("FERROSTACK_COMPUTE__METADATA_PORT=$("$E2E_PY" "$E2E_LIB_DIR/e2e_util.py" free-port)")
    fi
    # The network agent changes the host's network: only tests that ask for it (their env
    # names FERROSTACK_NETWORK_AGENT__ENABLED) get one, with their own device prefix. The
    # compute hosts are fake unless the test's env or `--compute-driver qemu` says otherwise.
    env -i PATH="$PATH" HOME="$HOME" FERROSTACK_LOG=warn FERROSTACK_IDENTITY__BCRYPT_COST=4 \
        FERROSTACK_NETWORK_AGENT__ENABLED=false FERROSTACK_COMPUTE__DRIVER=fake \
        FERROSTACK_IDENTITY__PORT="$PORT" "${CLOUD_PORTS[@]}" "${env[@]}" \
        "$FERROSTACK_BIN" --state-dir "$state" all-in-one "$@" </dev/null >>"$state.log" 2>&1 &
    SERVER_PID=$!
    if ! "$E2E_PY" "$E2E_LIB_DIR/e2e_util.py" wait "http://127.0.0.1:$PORT/v3" 30 2>/dev/null; then
        printf 'e2e: all-in-one did not answer; its log ends:\n' >&2
        tail -20 "$state.log" >&2
    fi
    # Bootstrap follows the first answer; slow on a loaded machine (30 s at most).
    for _ in $(seq 300); do [[ -f "$state/clouds.yaml" ]] && break; sleep 0.1; done
    export OS_CLIENT_CONFIG_FILE="$state/clouds.yaml" OS_CLOUD=ferrostack
}

# stop_cloud: stops the all-in-one start_cloud started, if it still runs.
stop_cloud() {
    if [[ -n "${SERVER_PID:-}" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
    fi
}

# on_exit FUNCTION: runs FUNCTION at exit, and makes INT and TERM exit through it.
on_exit() {
    trap "$1" EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# register_guest_image DIR NAME: uploads the guest test image of scripts/build-guest-image
# (DIR) as NAME (AMI) with NAME-kernel (AKI) and NAME-ramdisk (ARI); leaves the AMI's status
# in OUT for a check.
register_guest_image() {
    local kernel ramdisk
    osc image create --file "$1/vmlinuz" --disk-format aki --container-format aki -f value -c id "$2-kernel"
    kernel="$OUT"
    osc image create --file "$1/initrd.gz" --disk-format ari --container-format ari -f value -c id "$2-ramdisk"
    ramdisk="$OUT"
    osc image create --file "$1/root.raw" --disk-format ami --container-format ami \
        --property kernel_id="$kernel" --property ramdisk_id="$ramdisk" \
        --property os_command_line="console=ttyS0 quiet" -f value -c status "$2"
}

# wait_server_status SERVER STATUS: polls `server show` up to about a minute until the
# server has STATUS; OUT holds the last status.
wait_server_status() {
    local _
    for _ in $(seq 60); do
        osc server show -f value -c status "$1"
        [[ "$OUT" == "$2" ]] && return 0
        sleep 0.5
    done
    return 1
}
