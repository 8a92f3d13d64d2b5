"""Makes N revocation events on an identity endpoint: rescopes the admin's token (no bcrypt)
and revokes each new token. Usage: revocations.py URL N [password]"""
import http.client
import json
import sys
import threading
import urllib.parse

url, n = sys.argv[1], int(sys.argv[2])
password = sys.argv[3] if len(sys.argv) > 3 else "secret"
u = urllib.parse.urlparse(url)


def conn():
    return http.client.HTTPConnection(u.hostname, u.port, timeout=30)


def issue(c, body):
    c.request("POST", "/v3/auth/tokens?nocatalog", json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse()
    r.read()
    assert r.status == 201, r.status
    return r.getheader("X-Subject-Token")


c = conn()
admin = issue(c, {"auth": {"identity": {"methods": ["password"], "password": {"user": {
    "name": "admin", "domain": {"id": "default"}, "password": password}}},
    "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}})
done = [0]
lock = threading.Lock()


def worker(count):
    c = conn()
    for _ in range(count):
        t = issue(c, {"auth": {"identity": {"methods": ["token"], "token": {"id": admin}},
                               "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}})
        c.request("DELETE", "/v3/auth/tokens", headers={"X-Auth-Token": admin, "X-Subject-Token": t})
        r = c.getresponse()
        r.read()
        assert r.status == 204, r.status
        with lock:
            done[0] += 1


threads = [threading.Thread(target=worker, args=(n // 4 + (1 if i < n % 4 else 0),)) for i in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(f"{done[0]} tokens revoked", file=sys.stderr)
