#!/usr/bin/env python3
"""Registers the test guest of scripts/build-guest-image in a running FerroStack, once.

Usage: register-guest.py OPENRC IMAGE_DIR

OPENRC is the admin-openrc all-in-one writes (its OS_* lines are read, not sourced).
IMAGE_DIR holds vmlinuz, initrd.gz and root.raw. The guest becomes three public images, as
Glance holds AMI-style images: `ferrostack-guest-kernel` (aki), `ferrostack-guest-ramdisk`
(ari) and `ferrostack-guest` (ami, naming the other two, booted with a serial console); and
flavor `m1.nano` (1 vCPU, 128 MiB, 1 GB disk, as DevStack makes for its test image) when no
flavor of that name exists. An image named `ferrostack-guest` already active: nothing is
done. Standard library only: the quick start needs no openstack CLI.
"""

import json
import sys
import urllib.error
import urllib.request

GUEST = "ferrostack-guest"


def openrc(path):
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("export ") and "=" in line:
                key, value = line[len("export "):].split("=", 1)
                env[key] = value.strip("'\"")
    return env


def call(method, url, token=None, body=None, data=None, content_type="application/json"):
    headers = {"Accept": "application/json"}
    if token:
        headers["X-Auth-Token"] = token
    if body is not None:
        data = json.dumps(body).encode()
    if data is not None:
        headers["Content-Type"] = content_type
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            text = r.read()
            return r.status, r.headers, json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        raise SystemExit(f"register-guest: {method} {url}: {e.code} {e.read().decode(errors='replace')}")


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    env, image_dir = openrc(sys.argv[1]), sys.argv[2]
    auth = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": env["OS_USERNAME"], "domain": {"name": env.get("OS_USER_DOMAIN_NAME", "Default")},
        "password": env["OS_PASSWORD"]}}},
        "scope": {"project": {"name": env["OS_PROJECT_NAME"],
                              "domain": {"name": env.get("OS_PROJECT_DOMAIN_NAME", "Default")}}}}}
    _, headers, body = call("POST", env["OS_AUTH_URL"].rstrip("/") + "/auth/tokens", body=auth)
    token = headers["X-Subject-Token"]

    def endpoint(kind):
        for svc in body["token"]["catalog"]:
            if svc["type"] == kind:
                for e in svc["endpoints"]:
                    if e["interface"] == "public":
                        return e["url"].rstrip("/")
        raise SystemExit(f"register-guest: no public {kind} endpoint in the catalog")

    glance, nova = endpoint("image"), endpoint("compute")
    _, _, found = call("GET", f"{glance}/v2/images?name={GUEST}&status=active", token)
    if found["images"]:
        print(f"register-guest: image {GUEST} is there ({found['images'][0]['id']})")
    else:
        def upload(name, fmt, path, props=None):
            meta = {"name": name, "disk_format": fmt, "container_format": fmt,
                    "visibility": "public", **(props or {})}
            _, _, img = call("POST", f"{glance}/v2/images", token, body=meta)
            with open(path, "rb") as f:
                call("PUT", f"{glance}/v2/images/{img['id']}/file", token, data=f.read(),
                     content_type="application/octet-stream")
            return img["id"]

        kernel = upload(f"{GUEST}-kernel", "aki", f"{image_dir}/vmlinuz")
        ramdisk = upload(f"{GUEST}-ramdisk", "ari", f"{image_dir}/initrd.gz")
        guest = upload(GUEST, "ami", f"{image_dir}/root.raw", {
            "kernel_id": kernel, "ramdisk_id": ramdisk, "os_command_line": "console=ttyS0"})
        print(f"register-guest: image {GUEST} registered ({guest})")
    _, _, flavors = call("GET", f"{nova}/flavors", token)
    if not any(f["name"] == "m1.nano" for f in flavors["flavors"]):
        call("POST", f"{nova}/flavors", token, body={"flavor": {
            "name": "m1.nano", "vcpus": 1, "ram": 128, "disk": 1}})
        print("register-guest: flavor m1.nano created")


if __name__ == "__main__":
    main()
