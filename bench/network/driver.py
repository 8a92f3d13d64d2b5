"""Drives bench/network/run.sh against a running all-in-one (see there). Standard library only."""
import json
import os
import statistics
import threading
import time
import urllib.error
import urllib.request

ID = os.environ["IDENTITY_URL"]
NET = os.environ["NETWORK_URL"]
PORTS = int(os.environ["PORTS"])
CLIENTS = int(os.environ["CLIENTS"])
ENGINE = os.environ["ENGINE"]


def call(method, url, body=None, token=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("X-Auth-Token", token)
    with urllib.request.urlopen(req) as r:
        text = r.read()
        return r.status, r.headers, json.loads(text) if text else None


body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
    "name": "admin", "domain": {"id": "default"}, "password": os.environ["ADMIN_PASSWORD"]}}},
    "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}
_, headers, reply = call("POST", f"{ID}/v3/auth/tokens", body)
TOKEN = headers["X-Subject-Token"]
PROJECT = reply["token"]["project"]["id"]


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
