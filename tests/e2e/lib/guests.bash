# Helpers for e2e files with real guests (sourced after checks.bash).

# server_ip SERVER: prints the first fixed IPv4 address of the server's ports.
server_ip() {
    osc port list --server "$1" -f value -c "Fixed IP Addresses"
    printf '%s' "$OUT" | sed -n "s/.*'ip_address': '\([0-9.]*\)'.*/\1/p" | head -1
}

# ping_script IP FILE: writes user data that pings IP for up to 90 s and prints
# `ping IP ok` or `ping IP failed` (the guest image prints it as `user-script: ...`).
ping_script() {
    cat >"$2" <<SCRIPT
#!/bin/sh
i=0
while [ \$i -lt 90 ]; do
  if ping -c 1 -W 1 $1 >/dev/null 2>&1; then echo "ping $1 ok"; exit 0; fi
  i=\$((i + 1)); sleep 1
done
echo "ping $1 failed"
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
