#!/usr/bin/env python3
"""FerroStack over upstream Swift for each figure of two bench-swift.sh result files.

Usage: ratios.py SWIFT.jsonl FERROSTACK.jsonl
Figures are medians over runs: 4 KiB PUT/GET ops/s (concurrency 16), 64 MiB PUT/GET MB/s,
listing seconds (10,000 names, JSON, following markers), and the peak server RSS seen in any
run. A ratio above 1 means FerroStack is better (for listing time and RSS: Swift's figure
over FerroStack's). The issue's targets are printed beside them.
"""
import json
import statistics
import sys


def load(path):
    return [json.loads(line) for line in open(path) if line.strip()]


def figures(rows):
    out = {}
    for test in ("put4k", "get4k"):
        v = [r["rps"] for r in rows if r["test"] == test]
        if v:
            out[test] = statistics.median(v)
    for test in ("bigput", "bigget"):
        v = [r["bytes"] / r["seconds"] / 1e6 for r in rows if r["test"] == test]
        if v:
            out[test] = statistics.median(v)
    v = [r["seconds"] for r in rows if r["test"] == "list"]
    if v:
        out["list"] = statistics.median(v)
    for test in ("put4k", "get4k"):
        v = [r["server_cpu_ms_per_req"] for r in rows
             if r["test"] == test and r.get("server_cpu_ms_per_req")]
        if v:
            out["cpu-" + test] = statistics.median(v)
    for test in ("bigput", "bigget", "list"):
        v = [r["server_cpu_s"] for r in rows if r["test"] == test and r.get("server_cpu_s")]
        if v:
            out["cpu-" + test] = statistics.median(v)
    rss = [r["server_rss_peak_kib"] for r in rows if r.get("server_rss_peak_kib")]
    if rss:
        out["rss"] = max(rss) / 1024
    errors = sum(r.get("err_status", 0) + r.get("err_timeout", 0) for r in rows)
    return out, errors


ROWS = [
    ("put4k", "4 KiB PUT, c=16", "ops/s", False, 10),
    ("get4k", "4 KiB GET, c=16", "ops/s", False, 10),
    ("bigput", "64 MiB PUT", "MB/s", False, 2),
    ("bigget", "64 MiB GET", "MB/s", False, 2),
    ("list", "list 10,000 names", "s", True, 10),
    ("rss", "server RSS peak", "MiB", True, None),
    # Server CPU per operation: steadier than throughput on a shared, noisy machine.
    ("cpu-put4k", "server CPU per 4 KiB PUT", "ms", True, None),
    ("cpu-get4k", "server CPU per 4 KiB GET", "ms", True, None),
    ("cpu-bigput", "server CPU per 64 MiB PUT", "s", True, None),
    ("cpu-bigget", "server CPU per 64 MiB GET", "s", True, None),
    ("cpu-list", "server CPU per listing", "s", True, None),
]


def main():
    swift, swift_err = figures(load(sys.argv[1]))
    ours, our_err = figures(load(sys.argv[2]))
    print("| figure | Swift | FerroStack | ratio (FerroStack better when > 1) | issue target |")
    print("|---|---:|---:|---:|---:|")
    for key, label, unit, lower_better, target in ROWS:
        if key not in swift or key not in ours:
            continue
        a, b = swift[key], ours[key]
        ratio = (a / b if lower_better else b / a) if a and b else float("nan")
        fmt = "%.3f" if unit in ("s", "ms") else "%.1f"
        print("| %s | %s %s | %s %s | %.2f× | %s |" % (
            label, fmt % a, unit, fmt % b, unit, ratio, "≥ %d×" % target if target else "—"))
    print()
    print("HTTP errors or timeouts counted by wrk: Swift %d, FerroStack %d" % (swift_err, our_err))


if __name__ == "__main__":
    main()
