"""bench/boot driver: boots the guest image as 1 and as 4 concurrent servers, ROUNDS times,
and prints per batch size the p50 and worst of: FerroStack's own share (create request until
the guest's qemu process started, from the mtime of the pidfile QEMU writes once running),
time to ACTIVE, the guest's boot (qemu started until the marker on its console) and the whole
(create until the marker). Standard library only."""
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from api import admin_login, call  # noqa: E402

MARKER = b"FERROSTACK-GUEST-READY"
IDENTITY = os.environ["IDENTITY_URL"]
IMAGE = os.environ["IMAGE_URL"]
COMPUTE = os.environ["COMPUTE_URL"]
VMS = os.environ["VMS_DIR"]
ROUNDS = int(os.environ.get("ROUNDS", "3"))
token, _ = admin_login(IDENTITY, os.environ["ADMIN_PASSWORD"])


def upload(name, path, fmt, props=None):
    body = {"name": name, "disk_format": fmt, "container_format": fmt, **(props or {})}
    _, _, img = call("POST", f"{IMAGE}/v2/images", body, token)
    with open(path, "rb") as f:
        req = urllib.request.Request(f"{IMAGE}/v2/images/{img['id']}/file", data=f.read(),
                                     method="PUT")
    req.add_header("Content-Type", "application/octet-stream")
    req.add_header("X-Auth-Token", token)
    urllib.request.urlopen(req).read()
    return img["id"]


def host_up():
    """Waits until the QEMU host reports to the scheduler; its accelerator (cpu_info)."""
    for _ in range(600):
        try:
            hv = nova("GET", "/os-hypervisors/detail")["hypervisors"]
        except urllib.error.HTTPError:
            hv = []
        if hv and hv[0].get("state") == "up" and hv[0].get("memory_mb"):
            info = hv[0].get("cpu_info") or {}
            return info.get("accelerator", "?") if isinstance(info, dict) else "?"
        time.sleep(0.1)
    sys.exit("the QEMU host never came up")


guest = os.environ["GUEST_IMAGE"]
kernel = upload("bb-kernel", f"{guest}/vmlinuz", "aki")
ramdisk = upload("bb-ramdisk", f"{guest}/initrd.gz", "ari")
root = upload("bb-root", f"{guest}/root.raw", "ami", {
    "kernel_id": kernel, "ramdisk_id": ramdisk, "os_command_line": "console=ttyS0 quiet"})
_, _, flavor = call("POST", f"{COMPUTE}/flavors", {"flavor": {
    "name": "bb.tiny", "ram": 128, "vcpus": 1, "disk": 1}}, token)
flavor = flavor["flavor"]["id"]
# networks "none" needs 2.37; cpu_info is an object from 2.28 (gone in 2.88).
MICROVERSION = "compute 2.37"


def nova(method, path, body=None):
    """One compute API call at MICROVERSION; the decoded body or None."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{COMPUTE}{path}", data=data, method=method)
    req.add_header("Content-Type", "application/json")
    req.add_header("X-Auth-Token", token)
    req.add_header("OpenStack-API-Version", MICROVERSION)
    with urllib.request.urlopen(req) as r:
        text = r.read()
        return json.loads(text) if text else None


def boot_one(name, out):
    """Creates one server and follows it until its marker: fills out[name]."""
    t0 = time.time()
    sid = nova("POST", "/servers", {"server": {
        "name": name, "imageRef": root, "flavorRef": flavor, "networks": "none"}})["server"]["id"]
    vm = os.path.join(VMS, sid)
    active = started = marked = None
    deadline = t0 + 180
    while time.time() < deadline and (active is None or marked is None):
        if active is None:
            s = nova("GET", f"/servers/{sid}")["server"]
            if s["status"] == "ACTIVE":
                active = time.time()
            elif s["status"] == "ERROR":
                out[name] = {"id": sid, "error": s.get("fault", {}).get("message")}
                return
        if started is None and os.path.exists(os.path.join(vm, "qemu.pid")):
            started = os.stat(os.path.join(vm, "qemu.pid")).st_mtime
        if marked is None:
            try:
                with open(os.path.join(vm, "console.log"), "rb") as f:
                    if MARKER in f.read():
                        marked = time.time()
            except FileNotFoundError:
                pass
        time.sleep(0.02)
    out[name] = {"id": sid, "own": started - t0 if started else None,
                 "active": active - t0 if active else None,
                 "boot": marked - started if marked and started else None,
                 "whole": marked - t0 if marked else None}


def delete_all(ids):
    for sid in ids:
        nova("DELETE", f"/servers/{sid}")
    for sid in ids:
        for _ in range(600):
            try:
                nova("GET", f"/servers/{sid}")
            except urllib.error.HTTPError as e:
                if e.code == 404:
                    break
            time.sleep(0.05)


def ms(values, q):
    v = sorted(x for x in values if x is not None)
    if not v:
        return "—"
    return f"{1000 * v[min(len(v) - 1, int(q * len(v)))]:.0f}"


print(f"accelerator: {host_up()}", file=sys.stderr)
results = {1: [], 4: []}
for r in range(ROUNDS):
    for n in (1, 4):
        out = {}
        threads = [threading.Thread(target=boot_one, args=(f"bb-{r}-{n}-{i}", out))
                   for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        errors = [v for v in out.values() if "error" in v]
        if errors:
            print(f"errors: {errors}", file=sys.stderr)
        results[n].extend(v for v in out.values() if "error" not in v)
        delete_all([v["id"] for v in out.values()])

print("| servers at once | samples | own share p50 / max ms | to ACTIVE p50 / max ms "
      "| guest boot p50 / max ms | create to marker p50 / max ms |")
print("|---:|---:|---:|---:|---:|---:|")
for n, rows in results.items():
    cells = [f"{ms([x[k] for x in rows], 0.5)} / {ms([x[k] for x in rows], 1.0)}"
             for k in ("own", "active", "boot", "whole")]
    print(f"| {n} | {len(rows)} | " + " | ".join(cells) + " |")
own = [x["own"] for rows in results.values() for x in rows if x["own"] is not None]
print(f"own share worst {1000 * max(own):.0f} ms (target < 300 ms): "
      f"{'met' if own and max(own) < 0.3 else 'not met'}")
