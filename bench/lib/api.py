"""What the benchmark drivers share: JSON calls to the OpenStack APIs and the admin's login.
Standard library only; a driver imports it after putting bench/lib on sys.path."""
import json
import urllib.request


def call(method, url, body=None, token=None):
    """One JSON request: (status, headers, decoded body or None); HTTP errors raise."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("X-Auth-Token", token)
    with urllib.request.urlopen(req) as r:
        text = r.read()
        return r.status, r.headers, json.loads(text) if text else None


def admin_login(identity_url, password):
    """A project-scoped token of all-in-one's admin: (token, project id)."""
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}
    _, headers, reply = call("POST", f"{identity_url}/v3/auth/tokens", body)
    return headers["X-Subject-Token"], reply["token"]["project"]["id"]
