"""Reads the bench-keystone.sh results of FerroStack and Keystone and prints each figure and
the ratio against the targets. Usage: ratios.py OUT_DIR [bcrypt_verify_ms]"""
import json
import os
import statistics
import sys

out = sys.argv[1]
verify_ms = float(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2] else None


def load(label):
    path = os.path.join(out, label, "results.jsonl")
    if not os.path.exists(path):
        return {}
    rows = [json.loads(line) for line in open(path) if line.strip()]
    by = {}
    for r in rows:
        by.setdefault((r["test"], r["conc"]), []).append(r)
    return {k: {"rps": statistics.median(x["rps"] for x in v),
                "rss": max((x.get("server_rss_peak_kib") or 0) for x in v),
                "p50": statistics.median(x["p50_us"] for x in v) / 1000}
            for k, v in by.items()}


fs, ks, rv = load("ferrostack"), load("keystone"), load("ferrostack-revoked")
targets = {"validate": 50, "projects": 20}
print("| test | conc | FerroStack req/s | Keystone req/s | ratio | target |")
print("|---|---|---|---|---|---|")
for key in sorted(fs):
    f = fs[key]
    k = ks.get(key)
    ratio = f"{f['rps'] / k['rps']:.1f}x" if k else "-"
    target = f"≥ {targets[key[0]]}x" if key[0] in targets else ""
    if key[0] == "issue" and verify_ms:
        bound = (os.cpu_count() or 2) * 1000 / verify_ms
        target = f"≥ 90% of bcrypt bound {bound:.2f}/s: {100 * f['rps'] / bound:.0f}%"
    print(f"| {key[0]} | {key[1]} | {f['rps']:.1f} | {k['rps']:.1f} | {ratio} | {target} |" if k else
          f"| {key[0]} | {key[1]} | {f['rps']:.1f} | - | - | {target} |")
for key in sorted(rv):
    base = fs.get(key)
    change = f"{100 * rv[key]['rps'] / base['rps']:.0f}% of before" if base else "-"
    print(f"| validate after 10,000 revocations | {key[1]} | {rv[key]['rps']:.1f} | | {change} | unchanged |")
fs_rss = max((v["rss"] for v in fs.values()), default=0)
ks_rss = max((v["rss"] for v in ks.values()), default=0)
if fs_rss:
    ratio = f"{fs_rss / ks_rss:.2f} of Keystone's" if ks_rss else "-"
    print(f"\nPeak RSS under load: FerroStack {fs_rss / 1024:.1f} MiB, Keystone {ks_rss / 1024:.1f} MiB ({ratio}; target ≤ 0.25)")
if verify_ms:
    print(f"bcrypt verify at cost 12: {verify_ms:.1f} ms on this machine")
