"""Drives bench/network/run.sh against a running all-in-one (see there). Standard library only."""
import os
import statistics
import threading
import sys
import time
import urllib.error

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from api import admin_login, call  # noqa: E402

ID = os.environ["IDENTITY_URL"]
NET = os.environ["NETWORK_URL"]
PORTS = int(os.environ["PORTS"])
CLIENTS = int(os.environ["CLIENTS"])
ENGINE = os.environ["ENGINE"]


TOKEN, PROJECT = admin_login(ID, os.environ["ADMIN_PASSWORD"])


def neutron(method, path, body=None):
    return call(method, f"{NET}/v2.0{path}", body, TOKEN)


# Room for every port: no quota in the way of the measurement.
neutron("PUT", f"/quotas/{PROJECT}", {"quota": {"port": -1}})
_, _, net = neutron("POST", "/networks", {"network": {"name": "bench"}})
net = net["network"]["id"]
neutron("POST", "/subnets", {"subnet": {"network_id": net, "cidr": "10.60.0.0/20",
                                        "ip_version": 4, "enable_dhcp": False}})

latencies = []
errors = []
lock = threading.Lock()
per_client = [PORTS // CLIENTS + (1 if i < PORTS % CLIENTS else 0) for i in range(CLIENTS)]


def client(n):
    mine = []
    for _ in range(n):
        t = time.perf_counter()
        try:
            status, _, _ = neutron("POST", "/ports", {"port": {"network_id": net}})
            ok = status == 201
        except urllib.error.HTTPError as e:
            ok = False
            with lock:
                errors.append(f"{e.code} {e.read()[:200]!r}")
        mine.append(time.perf_counter() - t)
        if not ok:
            break
    with lock:
        latencies.extend(mine)


start = time.perf_counter()
threads = [threading.Thread(target=client, args=(n,)) for n in per_client]
for t in threads:
    t.start()
for t in threads:
    t.join()
elapsed = time.perf_counter() - start

_, _, ports = neutron("GET", f"/ports?network_id={net}")
ports = ports["ports"]
ips = [f["ip_address"] for p in ports for f in p["fixed_ips"]]
macs = [p["mac_address"] for p in ports]
latencies.sort()
p50 = statistics.median(latencies) * 1000
p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
print(f"| {ENGINE} | {len(ports)} | {CLIENTS} | {elapsed:.2f} | {len(ports) / elapsed:.0f} "
      f"| {p50:.1f} | {p99:.1f} | {len(ips) - len(set(ips))} | {len(macs) - len(set(macs))} "
      f"| {len(errors)} |")
if errors:
    print("errors:", errors[:5])
