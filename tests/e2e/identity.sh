#!/usr/bin/env bash
# End-to-end test of Identity (Keystone v3) through the real, unmodified `openstack` CLI.
#
# Starts `ferrostack all-in-one` in a fresh temporary state directory on a free port, points
# the CLI at the clouds.yaml it writes, and drives projects, users, groups, roles, role
# assignments, application credentials, token issue/revoke and the catalog. One PASS/FAIL
# line per check. Cleans up (server and temp dir) on any exit.
#
# Needs: `openstack` on PATH (run.sh puts its venv first), FERROSTACK_BIN (default
# $CARGO_TARGET_DIR/debug/ferrostack), python3 (E2E_PY).
# Run alone:  PATH=/var/tmp/ferrostack-e2e-venv/bin:$PATH tests/e2e/identity.sh
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib/checks.bash
source "$HERE/lib/checks.bash"

# ---- cleanup ---------------------------------------------------------------------------------

WORK="$(mktemp -d "${TMPDIR:-/tmp}/ferrostack-e2e-identity.XXXXXX")"
SERVER_PID=""
cleanup() {
    local rc=$?
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$WORK/home"
export HOME="$WORK/home" # no ~/.config/openstack of the caller's
export TMPDIR="$WORK"
STATE="$WORK/state"
CONF="$WORK/ferrostack.toml"
: >"$CONF" # an empty config file: no /etc/ferrostack/ferrostack.toml of the host's
ADMIN_PW="e2e-admin-$RANDOM$RANDOM"
SFX="$$"

if ! command -v openstack >/dev/null; then
    fail "setup: the openstack CLI is on PATH" "put the venv's bin/ first on PATH (run.sh does)"
    e2e_summary identity
    exit 1
fi
if [[ ! -x "$FERROSTACK_BIN" ]]; then
    fail "setup: ferrostack binary at $FERROSTACK_BIN" "build it: cargo build -p ferrostack"
    e2e_summary identity
    exit 1
fi

# ---- start the server ------------------------------------------------------------------------
# start_server: picks a free port, starts all-in-one, waits until GET /v3 answers 200 and the
# client files are written. Retries with another port if the chosen one was taken meanwhile.
start_server() {
    local attempt i
    for attempt in 1 2 3; do
        rm -rf "$STATE"
        PORT="$("$E2E_PY" "$HTTP_PY" free-port)"
        IMAGE_PORT="$("$E2E_PY" "$HTTP_PY" free-port)"
        env -i PATH="$PATH" HOME="$HOME" TMPDIR="$WORK" \
            FERROSTACK_LOG="${FERROSTACK_LOG:-info,sqlx=warn}" \
            FERROSTACK_IDENTITY__PORT="$PORT" \
            FERROSTACK_IMAGE__PORT="$IMAGE_PORT" \
            FERROSTACK_IDENTITY__BCRYPT_COST=4 \
            "$FERROSTACK_BIN" --config "$CONF" all-in-one \
            --state-dir "$STATE" --admin-password "$ADMIN_PW" --compute-driver fake \
            </dev/null >"$WORK/server-$attempt.log" 2>&1 &
        SERVER_PID=$!
        SERVER_LOG="$WORK/server-$attempt.log"
        for i in $(seq 300); do # 30 s
            if ! kill -0 "$SERVER_PID" 2>/dev/null; then
                wait "$SERVER_PID" 2>/dev/null
                SERVER_PID=""
                break
            fi
            # admin-openrc is written after clouds.yaml: both are complete once it exists.
            if [[ -s "$STATE/admin-openrc" && -s "$STATE/clouds.yaml" ]] &&
                "$E2E_PY" "$HTTP_PY" wait "http://127.0.0.1:$PORT/v3" 0 2>/dev/null; then
                return 0
            fi
            sleep 0.1
        done
        if [[ -n "$SERVER_PID" ]]; then
            return 1 # running but never ready: no point in retrying
        fi
        grep -qiE 'address (already )?in use|bind identity' "$SERVER_LOG" || return 1
    done
    return 1
}

STARTED_AT=$SECONDS
LAST_CMD=""
if start_server; then
    printf 'e2e: identity: all-in-one on 127.0.0.1:%s, ready in %d s\n' "$PORT" $((SECONDS - STARTED_AT)) >&2
    pass "server: all-in-one starts on a free port and writes clouds.yaml"
else
    fail "server: all-in-one starts on a free port and writes clouds.yaml" "see the server log below"
    sed 's/^/        | /' "${SERVER_LOG:-/dev/null}" | tail -n 40
    e2e_summary identity
    exit 1
fi

AUTH_URL="http://127.0.0.1:$PORT/v3"
http_get "$AUTH_URL"
V3_ID="$(printf '%s' "${OUT#* }" | "$E2E_PY" "$HTTP_PY" json 'd["version"]["id"]' 2>/dev/null)"
check "server: GET /v3 answers 200 with the v3 version document" \
    is_true eval '[[ ${OUT%% *} == 200 && $V3_ID == v3.* ]]'

run cat "$STATE/clouds.yaml"
check "clouds.yaml: cloud 'ferrostack' with auth_url $AUTH_URL" \
    is_true eval '[[ $OUT == *"  ferrostack:"* && $OUT == *"auth_url: $AUTH_URL"* ]]'

export OS_CLIENT_CONFIG_FILE="$STATE/clouds.yaml"
export OS_CLOUD=ferrostack

# A clean environment (no clouds.yaml, no admin password) for the runs as other principals.
clean_env=(env -i PATH="$PATH" HOME="$HOME" TMPDIR="$WORK" LANG=C.UTF-8
    OS_AUTH_URL="$AUTH_URL" OS_IDENTITY_API_VERSION=3 OS_INTERFACE=public OS_REGION_NAME=RegionOne)

# ---- tokens and catalog ----------------------------------------------------------------------
osc token issue -f json
ADMIN_PROJECT_ID="$(jfield 'd["project_id"]')"
ADMIN_USER_ID="$(jfield 'd["user_id"]')"
TOKEN_ID="$(jfield 'd["id"]')"
check "token issue (admin via clouds.yaml) returns id, project_id, user_id, expires" \
    is_true eval '[[ -n $TOKEN_ID && -n $ADMIN_PROJECT_ID && -n $ADMIN_USER_ID && -n $(jfield "d[\"expires\"]") ]]'

osc project show admin -f value -c id
check "project show admin: id is the token's project_id" out_is "$ADMIN_PROJECT_ID"

osc user show admin -f value -c id
check "user show admin: id is the token's user_id" out_is "$ADMIN_USER_ID"

osc --os-password "wrong-$ADMIN_PW" token issue
check "token issue with a wrong password fails with HTTP 401" failed_with 'HTTP 401'

osc catalog list -f value -c Name -c Type
check "catalog list shows keystone (identity)" out_has_line "keystone identity"

osc catalog show identity -f json
check "catalog show identity lists the public endpoint $AUTH_URL" \
    is_true [ "$(jfield "[e['url'] for e in d['endpoints'] if e['interface'] == 'public']")" = "[\"$AUTH_URL\"]" ]

osc endpoint list -f value -c Region -c "Service Name" -c "Service Type" -c Enabled -c Interface -c URL
check "endpoint list shows RegionOne keystone identity public $AUTH_URL" \
    out_has_line "RegionOne keystone identity True public $AUTH_URL"

osc endpoint list --service identity --interface public -f value -c URL
check "endpoint list --service identity --interface public gives $AUTH_URL" out_is "$AUTH_URL"

# ---- projects --------------------------------------------------------------------------------
P="e2e-project-$SFX"
osc project create "$P" --domain default --description "e2e first" -f json
PROJECT_ID="$(jfield 'd["id"]')"
check "project create $P" \
    is_true [ "$(jfield 'd["name"], d["description"], d["domain_id"], d["enabled"]')" = "('$P', 'e2e first', 'default', True)" ]

osc project create "$P" --domain default
check "project create of a duplicate name fails with HTTP 409" failed_with 'HTTP 409|[Cc]onflict'

osc project list -f value -c Name
check "project list shows $P and admin" is_true eval 'out_has_line "$P" && out_has_line admin'

osc project show "$P" -f value -c id -c description
check "project show $P (by name) gives its id and description" \
    out_is "$(printf '%s\n%s' "e2e first" "$PROJECT_ID")"

osc project set "$P" --description "e2e second" --disable
check "project set --description --disable" out_is ""

osc project show "$PROJECT_ID" -f json
check "project show after set: description changed, disabled" \
    is_true [ "$(jfield 'd["description"], d["enabled"]')" = "('e2e second', False)" ]

osc project set "$PROJECT_ID" --enable
osc project show "$PROJECT_ID" -f value -c enabled
check "project set --enable re-enables it" out_is "True"

osc project show "e2e-missing-$SFX"
check "project show of a missing project fails (not found)" \
    failed_with "No Project found for e2e-missing-$SFX|No project with a name or ID of 'e2e-missing-$SFX' exists"

http_get "$AUTH_URL/projects/e2e-missing-$SFX" "$TOKEN_ID"
check "GET /v3/projects/<missing> answers 404 with a Keystone error body" \
    is_true eval '[[ ${OUT%% *} == 404 && $(printf "%s" "${OUT#* }" | "$E2E_PY" "$HTTP_PY" json "d[\"error\"][\"code\"]") == 404 ]]'

# ---- users, groups, roles --------------------------------------------------------------------
U="e2e-user-$SFX"
UPW="e2e-user-pw-$RANDOM$RANDOM"
osc user create "$U" --domain default --password "$UPW" --project "$P" --email "$U@example.org" -f json
USER_ID="$(jfield 'd["id"]')"
check "user create --password $U" \
    is_true [ "$(jfield 'd["name"], d["domain_id"], d["enabled"], d["default_project_id"]')" = "('$U', 'default', True, '$PROJECT_ID')" ]

G="e2e-group-$SFX"
osc group create "$G" --domain default --description "e2e group" -f value -c name
check "group create $G" out_is "$G"

osc group add user "$G" "$U"
check "group add user $G $U" out_is ""

osc group contains user "$G" "$U"
check "group contains user: $U is in $G" out_matches "$U in group $G"

osc user list --group "$G" -f value -c Name
check "user list --group $G shows $U" out_is "$U"

osc role list -f value -c Name
check "role list shows the bootstrap roles admin, member, reader" \
    is_true eval 'out_has_line admin && out_has_line member && out_has_line reader'

R="e2e-role-$SFX"
osc role create "$R" -f json
ROLE_ID="$(jfield 'd["id"]')"
check "role create $R" is_true eval '[[ -n $ROLE_ID && $(jfield "d[\"name\"]") == "$R" ]]'

osc role add --user "$U" --project "$P" member
check "role add --user $U --project $P member" out_is ""

osc role add --group "$G" --project "$P" "$R"
check "role add --group $G --project $P $R" out_is ""

osc role assignment list --user "$U" --project "$P" --names -f value -c Role -c User -c Project
check "role assignment list --user --project --names shows the direct member grant only" \
    out_is "member $U@Default $P@Default"

osc role assignment list --group "$G" --names -f value -c Role -c Group -c Project
check "role assignment list --group --names shows the group grant" out_is "$R $G@Default $P@Default"

osc role assignment list --user "$U" --project "$P" --names --effective -f value -c Role -c User -c Project
check "role assignment list --names --effective: direct member on $P" \
    out_has_line "member $U@Default $P@Default"
check "role assignment list --names --effective: $R through group $G" \
    out_has_line "$R $U@Default $P@Default"
check "role assignment list --names --effective: reader implied by member" \
    out_has_line "reader $U@Default $P@Default"

osc group show "$G" -f value -c id
GROUP_ID="$OUT"
osc role assignment list --project "$P" --effective -f value -c Role -c User -c Group
check "role assignment list --project --effective (ids): group grant expanded to $U, no group rows" \
    is_true eval '[[ -n $GROUP_ID && $OUT != *"$GROUP_ID"* ]] && out_has_line "$ROLE_ID $USER_ID "'

# The new user logs in with its password on its project.
run "${clean_env[@]}" OS_USERNAME="$U" OS_PASSWORD="$UPW" OS_USER_DOMAIN_NAME=Default \
    OS_PROJECT_NAME="$P" OS_PROJECT_DOMAIN_NAME=Default openstack token issue -f json
check "token issue as $U (password) on $P" \
    is_true [ "$(jfield 'd["user_id"], d["project_id"]')" = "('$USER_ID', '$PROJECT_ID')" ]
USER_TOKEN="$(jfield 'd["id"]')"

# A member may not list all projects (identity:list_projects is admin or reader on system or
# domain scope). On that 403 the CLI falls back to GET /v3/users/{self}/projects.
http_get "$AUTH_URL/projects" "$USER_TOKEN"
check "GET /v3/projects with a project member's token answers 403" status_is 403

run "${clean_env[@]}" OS_USERNAME="$U" OS_PASSWORD="$UPW" OS_USER_DOMAIN_NAME=Default \
    OS_PROJECT_NAME="$P" OS_PROJECT_DOMAIN_NAME=Default openstack project list -f value -c Name
check "project list as $U shows only its own project $P" out_is "$P"

# Likewise identity:list_users and identity:list_role_assignments (no CLI fallback here).
run "${clean_env[@]}" OS_USERNAME="$U" OS_PASSWORD="$UPW" OS_USER_DOMAIN_NAME=Default \
    OS_PROJECT_NAME="$P" OS_PROJECT_DOMAIN_NAME=Default openstack user list
check "user list as the project member $U is forbidden (HTTP 403)" failed_with '(HTTP 403|403: Client Error)'

run "${clean_env[@]}" OS_USERNAME="$U" OS_PASSWORD="$UPW" OS_USER_DOMAIN_NAME=Default \
    OS_PROJECT_NAME="$P" OS_PROJECT_DOMAIN_NAME=Default openstack role assignment list
check "role assignment list as the project member $U is forbidden (HTTP 403)" failed_with '(HTTP 403|403: Client Error)'

run "${clean_env[@]}" OS_USERNAME="$U" OS_PASSWORD="not-$UPW" OS_USER_DOMAIN_NAME=Default \
    OS_PROJECT_NAME="$P" OS_PROJECT_DOMAIN_NAME=Default openstack token issue
check "token issue as $U with a wrong password fails with HTTP 401" failed_with 'HTTP 401'

# ---- application credentials -----------------------------------------------------------------
# python-openstackclient 10.x prints these fields capitalised ("ID", "Secret", "Roles"); older
# releases printed them in lower case.
ac_field() { jfield "d.get('$1', d.get('${1,,}'))"; }
# ac_roles: the role names of the credential shown in OUT, sorted, space-separated
ac_roles() { jfield "' '.join(sorted(r['name'] if isinstance(r, dict) else str(r) for r in d.get('Roles', d.get('roles')) or []))"; }
appcred_env=("${clean_env[@]}" OS_AUTH_TYPE=v3applicationcredential)

# 1. Without --role: Keystone gives the credential every role of the creator's token (the CLI
#    sends "roles": [], which Keystone treats like an absent list).
AC="e2e-appcred-$SFX"
osc application credential create "$AC" --description "e2e" -f json
AC_ID="$(ac_field ID)"
AC_SECRET="$(ac_field Secret)"
check "application credential create $AC returns id and secret" \
    is_true eval '[[ -n $AC_ID && -n $AC_SECRET && $(ac_field Name) == "$AC" ]]'
AC_ROLES="$(ac_roles)"
check "application credential create without --role gets the token's roles (admin member reader)" \
    is_true eval '[[ " $AC_ROLES " == *" admin "* ]]'

osc application credential list -f value -c Name
check "application credential list shows $AC" out_has_line "$AC"

run "${appcred_env[@]}" OS_APPLICATION_CREDENTIAL_ID="$AC_ID" OS_APPLICATION_CREDENTIAL_SECRET="$AC_SECRET" \
    openstack token issue -f json
check "token issue with the application credential $AC (id + secret, no password)" \
    is_true [ "$(jfield 'd["user_id"], d["project_id"]')" = "('$ADMIN_USER_ID', '$ADMIN_PROJECT_ID')" ]

run "${appcred_env[@]}" OS_APPLICATION_CREDENTIAL_ID="$AC_ID" OS_APPLICATION_CREDENTIAL_SECRET="$AC_SECRET" \
    openstack project show "$PROJECT_ID" -f value -c name
check "project show $P through the application credential $AC" out_is "$P"

# 2. With --role member: restricted to that role.
AC2="e2e-appcred-member-$SFX"
osc application credential create "$AC2" --role member --secret "e2e-secret-$SFX" -f json
AC2_ID="$(ac_field ID)"
check "application credential create $AC2 --role member --secret" \
    is_true eval '[[ -n $AC2_ID && $(ac_field Secret) == "e2e-secret-$SFX" && $(ac_roles) == member ]]'

run "${appcred_env[@]}" OS_APPLICATION_CREDENTIAL_ID="$AC2_ID" OS_APPLICATION_CREDENTIAL_SECRET="e2e-secret-$SFX" \
    openstack token issue -f json
check "token issue with the application credential $AC2 (id + secret, no password)" \
    is_true [ "$(jfield 'd["user_id"], d["project_id"]')" = "('$ADMIN_USER_ID', '$ADMIN_PROJECT_ID')" ]

run "${appcred_env[@]}" OS_APPLICATION_CREDENTIAL_ID="$AC2_ID" OS_APPLICATION_CREDENTIAL_SECRET="e2e-secret-$SFX" \
    openstack project show "$ADMIN_PROJECT_ID" -f value -c name
check "project show admin through the application credential $AC2" out_is "admin"

# The credential's token carries member (+ reader) only: GET /v3/projects is refused and the
# CLI falls back to the admin user's own projects, which are just "admin".
run "${appcred_env[@]}" OS_APPLICATION_CREDENTIAL_ID="$AC2_ID" OS_APPLICATION_CREDENTIAL_SECRET="e2e-secret-$SFX" \
    openstack project list -f value -c Name
check "project list through the member-only application credential shows only admin" out_is "admin"

run "${appcred_env[@]}" OS_APPLICATION_CREDENTIAL_NAME="$AC2" OS_APPLICATION_CREDENTIAL_SECRET="e2e-secret-$SFX" \
    OS_USERNAME=admin OS_USER_DOMAIN_NAME=Default openstack token issue -f value -c project_id
check "token issue with the application credential by name + user name" out_is "$ADMIN_PROJECT_ID"

run "${appcred_env[@]}" OS_APPLICATION_CREDENTIAL_ID="$AC2_ID" OS_APPLICATION_CREDENTIAL_SECRET="wrong-secret" \
    openstack token issue
check "application credential with a wrong secret fails with HTTP 401" failed_with 'HTTP 401'

# ---- token revocation ------------------------------------------------------------------------
osc token issue -f value -c id
TOK="$OUT"
check "token issue for the revocation test" is_true [ -n "$TOK" ]

token_cli=("${clean_env[@]}" openstack --os-auth-type token --os-token "$TOK"
    --os-project-name admin --os-project-domain-name Default)
run "${token_cli[@]}" project list -f value -c Name
check "the issued token works with --os-auth-type token before revocation" out_has_line admin

http_get "$AUTH_URL/projects" "$TOK"
check "the issued token works as X-Auth-Token before revocation (GET /v3/projects 200)" status_is 200

http_get "$AUTH_URL/auth/tokens" "$TOKEN_ID" "$TOK"
check "the issued token validates before revocation (GET /v3/auth/tokens 200)" status_is 200

osc token revoke "$TOK"
check "token revoke" out_is ""

run "${token_cli[@]}" project list -f value -c Name
check "the revoked token is refused by the CLI (--os-auth-type token)" failed_with 'HTTP 40[14]'

http_get "$AUTH_URL/projects" "$TOK"
check "the revoked token is refused as X-Auth-Token (GET /v3/projects 401)" status_is 401

http_get "$AUTH_URL/auth/tokens" "$TOKEN_ID" "$TOK"
check "the revoked token no longer validates (GET /v3/auth/tokens 404)" status_is 404

osc token issue -f value -c id
check "a fresh admin token is issued after the revocation" is_true eval '[[ -n $OUT && $OUT != "$TOK" ]]'

# ---- deletion --------------------------------------------------------------------------------
osc application credential delete "$AC" "$AC2"
check "application credential delete $AC $AC2" out_is ""

run "${appcred_env[@]}" OS_APPLICATION_CREDENTIAL_ID="$AC2_ID" OS_APPLICATION_CREDENTIAL_SECRET="e2e-secret-$SFX" \
    openstack token issue
check "a deleted application credential no longer authenticates" failed_with 'HTTP 401|HTTP 404'

osc group remove user "$G" "$U"
osc user list --group "$G" -f value -c Name
check "group remove user: $G is empty" out_is ""

osc user delete "$U"
check "user delete $U" out_is ""

osc group delete "$G"
check "group delete $G" out_is ""

osc project delete "$P"
check "project delete $P" out_is ""

osc project list -f value -c Name
check "project list no longer shows $P" out_lacks_line "$P"

osc project show "$PROJECT_ID"
check "project show of the deleted project fails (not found)" \
    failed_with "No Project found for $PROJECT_ID|No project with a name or ID of '$PROJECT_ID' exists"

e2e_summary identity
