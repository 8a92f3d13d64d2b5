# Shared by tests/tempest/run.sh and object.sh: what Tempest's object storage tests need from
# an all-in-one whose identity listens on $1 and object storage on $2 — the ResellerAdmin role
# (DevStack's lib/swift makes it; Tempest gives it to its reseller user) — and the
# run-tempest.sh options for it in OBJECT_TEMPEST_SETS: discoverable_apis names exactly the
# middlewares the proxy's GET /info advertises, as a deployment's tempest.conf would.
# Needs $venv.
object_tempest_prepare() { # identity-port object-port
  env -u OS_CLOUD OS_AUTH_URL="http://127.0.0.1:$1/v3" OS_USERNAME=admin OS_PASSWORD=secret \
    OS_PROJECT_NAME=admin OS_USER_DOMAIN_NAME=Default OS_PROJECT_DOMAIN_NAME=Default \
    OS_IDENTITY_API_VERSION=3 "$venv/bin/openstack" role create --or-show ResellerAdmin >/dev/null
  local apis
  apis=$(curl -sf "http://127.0.0.1:$2/info" | python3 -c \
    'import json, sys; print(",".join(sorted(k for k in json.load(sys.stdin) if k != "swift")))')
  OBJECT_TEMPEST_SETS=(
    --set service_available.swift=true
    --set object-storage-feature-enabled.discoverable_apis="$apis"
    --set object-storage-feature-enabled.object_versioning=true
  )
}
