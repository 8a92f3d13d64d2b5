# Helpers for e2e files with real guests (sourced after checks.bash).

# guest_setup LETTER [PACKAGE...]: installs what real guests need (and the PACKAGEs), builds
# or reuses the guest image (IMG), and makes the run's work directory (WORK, short: the
# guests' QMP sockets live under it and unix paths must stay under 108 bytes) and the
# prefix of its bridges, taps, namespaces and nftables table (PREFIX, LETTER and three hex
# digits, unique per run so parallel runs and left-overs of a killed run do not collide).
guest_setup() {
    local letter=$1
    shift
    # shellcheck source=../../../scripts/lib.sh
    . "$E2E_LIB_DIR/../../../scripts/lib.sh"
    install_packages qemu-system-x86 qemu-utils genisoimage cpio iproute2 dnsmasq-base nftables conntrack "$@" >&2
    IMG="$(bash "$E2E_LIB_DIR/../../../scripts/build-guest-image" | tail -1)"
    WORK="$(mktemp -d "/tmp/fe2e-$letter.XXXXXX")"
    PREFIX="$letter$(printf '%s' "$WORK" | sha256sum | cut -c1-3)"
}

# server_ip SERVER: prints the first fixed IPv4 address of the server's ports.
server_ip() {
    osc port list --server "$1" -f value -c "Fixed IP Addresses"
    printf '%s' "$OUT" | sed -n "s/.*'ip_address': '\([0-9.]*\)'.*/\1/p" | head -1
}

# ping_script IP FILE: writes user data that pings IP every second for as long as the guest
# runs and prints each change: `ping IP ok` when it answers (again), `ping IP lost` when it
# stops answering, `ping IP failed` once if it never answered in the first 90 tries. The
# lines go straight to the console, marked `user-script:` as the guest image marks a
# script's output (which it passes through a pipe that holds lines until the script ends).
ping_script() {
    cat >"$2" <<SCRIPT
#!/bin/sh
say() { echo "user-script: \$*" >/dev/console; }
up=no
i=0
while true; do
  if ping -c 1 -W 1 $1 >/dev/null 2>&1; then
    [ \$up = yes ] || say "ping $1 ok"
    up=yes
  else
    [ \$up = yes ] && say "ping $1 lost"
    up=no
    i=\$((i + 1))
    [ \$i -eq 90 ] && say "ping $1 failed"
  fi
  sleep 1
done
SCRIPT
}

# wait_console SERVER PATTERN: polls the console log until PATTERN shows, up to about
# 4 minutes (TCG guests, a CLI start per poll); OUT holds the last log.
wait_console() {
    local _
    for _ in $(seq 80); do
        osc console log show "$1"
        printf '%s\n' "$OUT" | grep -Eq -- "$2" && return 0
        sleep 3
    done
    return 1
}

# purge_host STATE_DIR PREFIX...: what a test's QEMU host and network agent leave on the
# host: kills the guests and dnsmasq processes named by the pidfiles under STATE_DIR (guests
# outlive their agent by design), then removes the namespaces, links and security group
# table of each PREFIX.
purge_host() {
    local state=$1 p ns l
    shift
    for p in "$state"/qemu/*/vms/*/qemu.pid "$state"/network/dhcp/*/pid; do
        [[ -f "$p" ]] && kill -KILL "$(cat "$p")" 2>/dev/null
    done
    for p in "$@"; do
        for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$p-"); do
            ip netns del "$ns" 2>/dev/null
        done
        for l in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep "^$p"); do
            ip link del "$l" 2>/dev/null
        done
        nft delete table inet "${p}_sg" 2>/dev/null
    done
    return 0
}
