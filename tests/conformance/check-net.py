#!/usr/bin/env python3
"""Judges the network-adapter guest run (guest/net.sh): every model must print a PASS line
for each check and no FAIL line; the benchmark lines are printed as they are.

Usage: check-net.py LOG [--models "ncm ecm"]
Exit status 0 when every check passed, 1 otherwise."""
import re
import sys

CHECKS = ["bind", "dhcp", "ping", "download", "upload", "errors"]


def main() -> int:
    args = sys.argv[1:]
    if not args:
        print(__doc__)
        return 2
    log = args[0]
    models = ["ncm", "ecm"]
    if "--models" in args:
        models = args[args.index("--models") + 1].split()
    text = open(log, encoding="utf-8", errors="replace").read()
    lines = [l.strip() for l in text.splitlines()]
    failed = 0
    for line in lines:
        if line.startswith("conformance net: FAIL"):
            print(line)
            failed += 1
    for model in models:
        for check in CHECKS:
            pat = re.compile(rf"^conformance net: PASS {model} {check} ")
            hits = [l for l in lines if pat.match(l)]
            if hits:
                print(hits[-1])
            else:
                print(f"conformance net: FAIL {model} {check} (no result line)")
                failed += 1
    for line in lines:
        if line.startswith("conformance: net-bench") or line.startswith("net-bench "):
            print(line)
    print(f"network adapters: {failed} check(s) failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
