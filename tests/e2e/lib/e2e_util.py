#!/usr/bin/env python3
"""Tiny HTTP and JSON helpers for the e2e shell tests (standard library only).

  e2e_util.py free-port
      prints a free TCP port on 127.0.0.1
  e2e_util.py wait URL SECONDS
      polls GET URL until it answers 200 (exit 0) or SECONDS pass (exit 1)
  e2e_util.py get URL [TOKEN [SUBJECT_TOKEN]]
      GET with optional X-Auth-Token / X-Subject-Token; prints "<status> <body>"
  e2e_util.py json EXPR
      reads JSON from stdin, prints eval(EXPR) with the document bound to `d`
      (lists and dicts are printed as JSON, None as an empty line)
"""
import json
import socket
import sys
import time
import urllib.error
import urllib.request


def get(url, token=None, subject=None, timeout=10):
    req = urllib.request.Request(url, headers={"Accept": "application/json"})
    if token:
        req.add_header("X-Auth-Token", token)
    if subject:
        req.add_header("X-Subject-Token", subject)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def main(argv):
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    cmd = argv[0]
    if cmd == "free-port":
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])
        s.close()
        return 0
    if cmd == "wait":
        url, seconds = argv[1], float(argv[2])
        deadline = time.monotonic() + seconds
        while True:
            try:
                status, _ = get(url, timeout=2)
                if status == 200:
                    return 0
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() >= deadline:
                return 1
            time.sleep(0.1)
    if cmd == "get":
        try:
            status, body = get(argv[1], *argv[2:4])
        except (OSError, urllib.error.URLError) as e:
            print(f"000 {e}")
            return 1
        print(f"{status} {body}")
        return 0
    if cmd == "json":
        try:
            d = json.load(sys.stdin)
            v = eval(argv[1], {"d": d})
        except Exception as e:  # noqa: BLE001 - report anything as a failed lookup
            print(f"json: {type(e).__name__}: {e}", file=sys.stderr)
            return 1
        if v is None:
            print()
        elif isinstance(v, (dict, list)):
            print(json.dumps(v, sort_keys=True))
        else:
            print(v)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
