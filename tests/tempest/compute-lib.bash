# Shared by tests/tempest/run.sh and compute.sh: start an all-in-one with the fake compute driver
# and two fake hosts (identity on $port), make the image and flavors Tempest's compute tests
# need, and fill COMPUTE_TEMPEST_SETS with the run-tempest.sh options for what FerroStack has.
# Needs $BIN and $venv; sets $pid (the all-in-one) and exports IMAGE_REF/FLAVOR_REF/_ALT.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

start_compute_cloud() { # workdir
  local w="$1"
  port=$(free_port)
  FERROSTACK_IDENTITY__PORT=$port FERROSTACK_IMAGE__PORT=$(free_port) \
    FERROSTACK_PLACEMENT__PORT=$(free_port) FERROSTACK_COMPUTE__PORT=$(free_port) \
    FERROSTACK_NETWORK__PORT=$(free_port) FERROSTACK_OBJECT__PORT=$(free_port) \
    FERROSTACK_COMPUTE__METADATA_PORT=$(free_port) FERROSTACK_COMPUTE__REPORT_INTERVAL=1 \
    FERROSTACK_IDENTITY__BCRYPT_COST=4 FERROSTACK_LOG=warn \
    "$BIN" all-in-one --state-dir "$w/state" --config /dev/null --admin-password secret \
    --compute-driver fake --fake-hosts 2 </dev/null >>"$w/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 600); do curl -sf "http://127.0.0.1:$port/v3" >/dev/null && break; kill -0 "$pid" || { cat "$w/server.log" >&2; return 1; }; sleep 0.1; done
  local osc=(env -u OS_CLOUD OS_AUTH_URL="http://127.0.0.1:$port/v3" OS_USERNAME=admin
    OS_PASSWORD=secret OS_PROJECT_NAME=admin OS_USER_DOMAIN_NAME=Default
    OS_PROJECT_DOMAIN_NAME=Default OS_IDENTITY_API_VERSION=3 "$venv/bin/openstack")
  head -c 1048576 /dev/zero >"$w/tiny.img"
  IMAGE_REF=$("${osc[@]}" image create --disk-format raw --container-format bare --public \
    --file "$w/tiny.img" -f value -c id tempest-tiny)
  IMAGE_REF_ALT=$("${osc[@]}" image create --disk-format raw --container-format bare --public \
    --file "$w/tiny.img" -f value -c id tempest-tiny-alt)
  "${osc[@]}" flavor create --id 42 --ram 128 --disk 1 --vcpus 1 tempest.nano >/dev/null
  "${osc[@]}" flavor create --id 84 --ram 192 --disk 2 --vcpus 1 tempest.micro >/dev/null
  export IMAGE_REF IMAGE_REF_ALT IMAGE_NAME=tempest-tiny FLAVOR_REF=42 FLAVOR_REF_ALT=84 \
    FLAVOR_NAME=tempest.nano COMPUTE_MIN_MICROVERSION=2.1 COMPUTE_MAX_MICROVERSION=2.100
  # Both fake hosts report to placement before the first server is scheduled.
  for _ in $(seq 100); do
    [ "$("${osc[@]}" hypervisor list -f value -c "Hypervisor Hostname" 2>/dev/null | grep -c '^fake-')" = 2 ] && break
    sleep 0.2
  done
}

COMPUTE_TEMPEST_SETS=(
  --set service_available.nova=true --set service_available.neutron=true
  --set service_available.cinder=false --set service_available.swift=false
  --set service_available.heat=false --set auth.create_isolated_networks=false
  --set validation.run_validation=false
  --set compute-feature-enabled.resize=true --set compute-feature-enabled.console_output=true
  --set compute-feature-enabled.change_password=false --set compute-feature-enabled.snapshot=false
  --set compute-feature-enabled.rescue=false --set compute-feature-enabled.shelve=true
  --set compute-feature-enabled.suspend=true --set compute-feature-enabled.pause=true
  --set compute.min_compute_nodes=2
  --set compute-feature-enabled.live_migration=false --set compute-feature-enabled.cold_migration=true
  --set compute-feature-enabled.interface_attach=false
  --set compute-feature-enabled.attach_encrypted_volume=false
  --set compute-feature-enabled.serial_console=false --set compute-feature-enabled.vnc_console=false
  --set compute-feature-enabled.personality=false --set compute-feature-enabled.metadata_service=false
  --set compute-feature-enabled.config_drive=true
  --set compute-feature-enabled.enable_instance_password=true
)
