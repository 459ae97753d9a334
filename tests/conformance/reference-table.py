#!/usr/bin/env python3
"""Turns a conformance console log into tables.

Reads the text lines usbtest-driver prints with --label
("<label> case N iterations I length L vary V sglen S: <result> <seconds> s") from a
run-guest.sh log and writes
  - with --tsv: one line per case: label, case, iterations, length, vary, sglen, result,
    errno name, seconds (kernel-measured for passes, wall clock otherwise);
  - otherwise Markdown: a summary per run and, per transport (the label up to "-p"), a table
    of cases by run.

Usage: reference-table.py [--tsv] LOG
"""

import re
import sys
from collections import OrderedDict

LINE = re.compile(
    r"(?P<label>\S+) case +(?P<case>\d+) iterations (?P<it>\d+) length (?P<len>\d+) "
    r"vary (?P<vary>\d+) sglen (?P<sg>\d+): (?P<result>.+?) (?P<secs>[0-9.]+) s\s*$"
)


def parse(path):
    runs = OrderedDict()
    with open(path, encoding="utf-8", errors="replace") as f:
        for raw in f:
            m = LINE.search(raw.replace("\r", ""))
            if not m:
                continue
            res = m["result"]
            if res == "pass":
                kind, err = "pass", ""
            elif res.startswith("n/a"):
                kind, err = "n/a", "EOPNOTSUPP"
            elif res.startswith("FAIL"):
                kind, err = "fail", res.split()[1]
            else:
                kind, err = res.lower(), ""
            runs.setdefault(m["label"], []).append(
                dict(case=int(m["case"]), it=m["it"], len=m["len"], vary=m["vary"],
                     sg=m["sg"], kind=kind, err=err, secs=float(m["secs"]))
            )
    return runs


def cell(r):
    if r["kind"] == "pass":
        return f"pass {r['secs']:.3f}"
    if r["kind"] == "n/a":
        return "n/a"
    return f"**{r['err'] or r['kind']}**"


def markdown(runs):
    out = ["| run | iterations | length | vary | sglen | pass | n/a | failing cases | seconds |",
           "|---|---|---|---|---|---|---|---|---|"]
    for label, rs in runs.items():
        fails = ", ".join(f"{r['case']} {r['err'] or r['kind']}" for r in rs
                          if r["kind"] not in ("pass", "n/a"))
        p = sum(r["kind"] == "pass" for r in rs)
        na = sum(r["kind"] == "n/a" for r in rs)
        t = sum(r["secs"] for r in rs)
        out.append(f"| {label} | {rs[0]['it']} | {rs[0]['len']} | {rs[0]['vary']} | "
                   f"{rs[0]['sg']} | {p} | {na} | {fails or '-'} | {t:.1f} |")
    transports = OrderedDict()
    for label in runs:
        transports.setdefault(label.split("-p")[0], []).append(label)
    for transport, labels in transports.items():
        out += ["", f"#### {transport}", ""]
        short = [label[len(transport) + 1:] for label in labels]
        out.append("| case | " + " | ".join(short) + " |")
        out.append("|---" * (len(labels) + 1) + "|")
        cases = sorted({r["case"] for label in labels for r in runs[label]})
        for c in cases:
            cells = []
            for label in labels:
                r = next((r for r in runs[label] if r["case"] == c), None)
                cells.append(cell(r) if r else "")
            out.append(f"| {c} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main():
    args = sys.argv[1:]
    tsv = "--tsv" in args
    args = [a for a in args if a != "--tsv"]
    if len(args) != 1:
        sys.exit(__doc__)
    runs = parse(args[0])
    if tsv:
        print("label\tcase\titerations\tlength\tvary\tsglen\tresult\terrno\tseconds")
        for label, rs in runs.items():
            for r in rs:
                print(f"{label}\t{r['case']}\t{r['it']}\t{r['len']}\t{r['vary']}\t{r['sg']}\t"
                      f"{r['kind']}\t{r['err']}\t{r['secs']:.6f}")
    else:
        print(markdown(runs))


if __name__ == "__main__":
    main()
