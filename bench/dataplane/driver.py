"""Drives bench/dataplane/run.sh against a running all-in-one (see there). Standard library only."""
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from api import admin_login, call  # noqa: E402

ID = os.environ["IDENTITY_URL"]
NET = os.environ["NETWORK_URL"]
PREFIX = os.environ["PREFIX"]
STATE = os.environ["STATE"]
DHCP_PORTS = int(os.environ["DHCP_PORTS"])
PORTS = int(os.environ["PORTS"])
RULES = int(os.environ["RULES"])
ROUNDS = int(os.environ["ROUNDS"])
HOST = "fake-0"
TABLE = f"{PREFIX}_sg"


TOKEN, PROJECT = admin_login(ID, os.environ["ADMIN_PASSWORD"])


def neutron(method, path, body=None):
    return call(method, f"{NET}/v2.0{path}", body, TOKEN)[2]


def sh(*args, check=True):
    return subprocess.run(args, check=check, capture_output=True, text=True)


def device(kind, ident):
    room = 15 - len(PREFIX) - 1
    return PREFIX + kind + ident.replace("-", "")[:room]


def chain(ident):
    return ident.replace("-", "")[:12]


def wait(pred, limit=30.0, every=0.002):
    t = time.monotonic()
    while time.monotonic() - t < limit:
        if pred():
            return time.monotonic() - t
        time.sleep(every)
    raise SystemExit("timed out")


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def ms(x):
    return f"{x * 1000:.0f} ms"


# Neutron's default quotas (50 ports, 100 rules) are below what the benchmark makes.
neutron("PUT", f"/quotas/{PROJECT}", {"quota": {"port": -1, "security_group_rule": -1}})
net = neutron("POST", "/networks", {"network": {"name": "bench"}})["network"]
subnet = neutron("POST", "/subnets", {"subnet": {"network_id": net["id"], "cidr": "10.90.0.0/22",
                                                 "ip_version": 4}})["subnet"]
sg = neutron("POST", "/security-groups", {"security_group": {"name": "bench"}})["security_group"]
bridge = device("b", net["id"])
dhcp_ns = f"{PREFIX}-qdhcp-{net['id']}"
hosts_file = os.path.join(STATE, "network", "dhcp", net["id"], "host")
wait(lambda: os.path.exists(hosts_file), 30, 0.05)

script = os.path.join(STATE, "udhcpc.sh")
with open(script, "w") as f:
    f.write("#!/bin/sh\nexit 0\n")
os.chmod(script, 0o755)


def new_port():
    return neutron("POST", "/ports", {"port": {
        "network_id": net["id"], "device_owner": "compute:nova", "device_id": "bench",
        "binding:host_id": HOST, "security_groups": [sg["id"]]}})["port"]


# 1. DHCP: port create -> dnsmasq knows it -> plugged guest holds its lease.
known, leased, guests = [], [], []
for i in range(DHCP_PORTS):
    t0 = time.monotonic()
    p = new_port()
    tap, ns = device("t", p["id"]), f"{PREFIX}-g{i}"
    sh("ip", "netns", "add", ns)
    sh("ip", "link", "add", tap, "type", "veth", "peer", "name", "eth0", "netns", ns)
    sh("ip", "link", "set", tap, "master", bridge, "up")
    sh("ip", "-n", ns, "link", "set", "eth0", "address", p["mac_address"], "up")
    dhcp = subprocess.Popen(["ip", "netns", "exec", ns, "busybox", "udhcpc", "-i", "eth0", "-n", "-q",
                             "-f", "-t", "30", "-T", "1", "-s", script],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    mac = p["mac_address"]
    wait(lambda: mac in open(hosts_file).read())
    known.append(time.monotonic() - t0)
    if dhcp.wait(timeout=60) != 0:
        raise SystemExit(f"guest {i} got no lease")
    leased.append(time.monotonic() - t0)
    ip = p["fixed_ips"][0]["ip_address"]
    sh("ip", "-n", ns, "addr", "add", f"{ip}/22", "dev", "eth0")
    guests.append((ns, ip))
print(f"## DHCP ({DHCP_PORTS} ports, one at a time)")
print(f"- port create answered → the network's dnsmasq knows the port: p50 {ms(pct(known, 50))}, "
      f"p90 {ms(pct(known, 90))}, max {ms(max(known))}")
print(f"- port create answered → plugged guest holds its lease: p50 {ms(pct(leased, 50))}, "
      f"p90 {ms(pct(leased, 90))}, max {ms(max(leased))}")

# 2. Security groups: PORTS ports in the group, RULES rules, then ICMP rule changes.
for i in range(DHCP_PORTS, PORTS):
    p = new_port()
    tap = device("t", p["id"])
    sh("ip", "tuntap", "add", "dev", tap, "mode", "tap")
    sh("ip", "link", "set", tap, "master", bridge, "up")
for r in range(RULES):
    neutron("POST", "/security-group-rules", {"security_group_rule": {
        "security_group_id": sg["id"], "direction": "ingress", "protocol": "tcp",
        "port_range_min": 10000 + r, "port_range_max": 10000 + r, "remote_ip_prefix": "10.0.0.0/8"}})
gi = f"gi_{chain(sg['id'])}"


def group_chain():
    return sh("nft", "list", "chain", "inet", TABLE, gi, check=False).stdout


wait(lambda: f"dport {10000 + RULES - 1} " in group_chain(), 120, 0.05)
ruleset = sh("nft", "list", "table", "inet", TABLE).stdout
jumps = ruleset.count("jump e_")
ns0, ip0 = guests[0]


def ping():
    return sh("ip", "netns", "exec", dhcp_ns, "busybox", "ping", "-c", "1", "-W", "1", ip0,
              check=False).returncode == 0


assert not ping(), "no ICMP rule yet, yet the ping went through"
adds, dels = [], []
for _ in range(ROUNDS):
    rule = neutron("POST", "/security-group-rules", {"security_group_rule": {
        "security_group_id": sg["id"], "direction": "ingress", "protocol": "icmp",
        "remote_ip_prefix": "0.0.0.0/0"}})["security_group_rule"]
    t0 = time.monotonic()
    wait(lambda: "icmp" in group_chain(), 60)
    adds.append(time.monotonic() - t0)
    assert ping(), "the ICMP rule is in the table, yet the ping failed"
    call("DELETE", f"{NET}/v2.0/security-group-rules/{rule['id']}", None, TOKEN)
    t0 = time.monotonic()
    wait(lambda: "icmp" not in group_chain(), 60)
    dels.append(time.monotonic() - t0)
    assert not ping(), "the ICMP rule is gone, yet the ping went through"
print(f"## Security groups ({PORTS} ports in one group of {RULES} rules; {jumps} ports guarded)")
print(f"- rule added → in the host's nftables table (ping then passes): p50 {ms(pct(adds, 50))}, "
      f"max {ms(max(adds))} over {ROUNDS} rounds")
print(f"- rule deleted → gone from the table (ping then fails): p50 {ms(pct(dels, 50))}, "
      f"max {ms(max(dels))} over {ROUNDS} rounds")
for ns, _ in guests:
    sh("ip", "netns", "del", ns, check=False)
