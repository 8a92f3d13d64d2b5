"""The gate of a Tempest run: every test listed in the expected-pass files must have passed.

Usage: gate.py NAME SUMMARY_JSON EXPECTED_FILE...
Prints `REGRESSION <test>` per listed test that did not pass and closes with
`NAME: N passed, M failed`; exits 1 when M > 0.
"""
import json
import sys

name, summary_path, *lists = sys.argv[1:]
summary = json.load(open(summary_path))
passed = {t.split("[")[0] for t in summary.get("passed_tests", [])}
expected = [l.strip() for f in lists for l in open(f) if l.strip() and not l.startswith("#")]
missing = [t for t in expected if t not in passed]
for t in missing:
    print(f"REGRESSION {t}")
print(f"{name}: {len(expected) - len(missing)} passed, {len(missing)} failed")
sys.exit(1 if missing else 0)
