#!/usr/bin/env python3
"""Judge the console log of guest/ffs-bench.sh (usbtest 27/28: usbfn on FunctionFS against the
kernel's SourceSink on dummy_hcd, one boot).

Prints one line per round and case with both times and the ratio usbfn / kernel, the median
ratio per case against the goal (issue 14: within 1.5x), the sweep and after-cases-1/2 pairs,
and the profile lines (guest CPU ticks, usbfn's schedstat, AIO counters) as they came. Exit
status 1 when a round's result is missing or did not pass (a failed check line, which fails
the suite); with --enforce-goal also when a median ratio is above the goal (2).

Usage: ffs-bench-check.py LOG [--goal 1.5] [--enforce-goal] [--markdown FILE]
"""
import re
import statistics
import sys

LINE = re.compile(r"^(\S+) case\s+(\d+) iterations (\d+) length (\d+) vary \d+ sglen (\d+): (\w+)(?: ([0-9.]+) s)?")


def main(argv):
    args = list(argv)
    goal = 1.5
    enforce = False
    markdown = None
    log = None
    while args:
        a = args.pop(0)
        if a == "--goal":
            goal = float(args.pop(0))
        elif a == "--enforce-goal":
            enforce = True
        elif a == "--markdown":
            markdown = args.pop(0)
        elif log is None:
            log = a
        else:
            print(__doc__)
            return 2
    if log is None:
        print(__doc__)
        return 2
    results = {}
    extra = []
    with open(log, errors="replace") as f:
        for raw in f:
            line = raw.strip().replace("\r", "")
            m = LINE.match(line)
            if m:
                label, case, verdict, secs = m.group(1), int(m.group(2)), m.group(6), m.group(7)
                results[(label, case)] = (verdict, float(secs) if secs else None)
            elif line.startswith("ffs-bench ") or line.startswith("conformance: ffs-bench"):
                extra.append(line)
    failed = 0
    rows = []
    rounds = sorted({int(l[len("bench-ffs-r"):]) for (l, _) in results if re.fullmatch(r"bench-ffs-r\d+", l)})
    if not rounds:
        print("conformance ffs-bench: FAIL no bench-ffs-rN results in the log")
        return 1
    for case in (27, 28):
        ratios = []
        for r in rounds:
            u = results.get((f"bench-ffs-r{r}", case))
            k = results.get((f"bench-kernel-r{r}", case))
            wu = results.get((f"warmup-ffs-r{r}", case))
            wk = results.get((f"warmup-kernel-r{r}", case))
            if not u or not k or u[0] != "pass" or k[0] != "pass" or not u[1] or not k[1]:
                print(f"conformance ffs-bench: FAIL case {case} round {r}: usbfn {u}, kernel {k}")
                failed += 1
                continue
            ratio = u[1] / k[1]
            ratios.append(ratio)
            warm = ""
            if wu and wk and wu[1] and wk[1]:
                warm = f"; warm-up pass usbfn {wu[1]:.3f} s, kernel {wk[1]:.3f} s, {wu[1] / wk[1]:.2f}x"
            print(f"conformance ffs-bench: case {case} round {r}: usbfn {u[1]:.3f} s, kernel {k[1]:.3f} s, "
                  f"usbfn/kernel {ratio:.2f}x{warm}")
            rows.append((case, r, u[1], k[1], ratio))
        if ratios:
            med = statistics.median(ratios)
            met = "met" if med <= goal else "NOT met"
            print(f"conformance ffs-bench: {'PASS' if med <= goal or not enforce else 'FAIL'} case {case} "
                  f"median usbfn/kernel {med:.2f}x over {len(ratios)} rounds "
                  f"({', '.join(f'{x:.2f}' for x in ratios)}); goal {goal}x {met}")
            if med > goal and enforce:
                failed += 1
    for case in (27, 28):
        pairs = [(results.get((f"bench-other-r{r}", case)), results.get((f"bench-ffs-r{r}", case)),
                  results.get((f"bench-kernel-r{r}", case))) for r in rounds]
        pairs = [(o[1], u[1], k[1]) for o, u, k in pairs if o and u and k and o[1] and u[1] and k[1]]
        for i, (o, u, k) in enumerate(pairs, 1):
            print(f"conformance ffs-bench: other binary case {case} round {i}: {o:.3f} s "
                  f"({o / k:.2f}x the kernel; usbfn {u:.3f} s, {u / k:.2f}x)")
        if pairs:
            print(f"conformance ffs-bench: other binary case {case} median {statistics.median(o / k for o, _, k in pairs):.2f}x the kernel")
    for label in sorted({l for (l, _) in results if l.startswith("bench-ffs-q")}):
        kl = "bench-kernel-" + label[len("bench-ffs-"):]
        for case in (27, 28):
            u, k = results.get((label, case)), results.get((kl, case))
            if u and k and u[1] and k[1]:
                print(f"conformance ffs-bench: sweep {label[len('bench-ffs-'):]} case {case}: "
                      f"usbfn {u[1]:.3f} s, kernel {k[1]:.3f} s, {u[1] / k[1]:.2f}x")
    for case in (1, 2, 27, 28):
        u, k = results.get(("after12-ffs", case)), results.get(("after12-kernel", case))
        if u and k and u[1] and k[1]:
            print(f"conformance ffs-bench: after cases 1,2 case {case}: usbfn {u[1]:.3f} s, "
                  f"kernel {k[1]:.3f} s, {u[1] / k[1]:.2f}x")
    for line in extra:
        print(line)
    if markdown:
        with open(markdown, "w") as out:
            out.write("| usbtest case | round | usbfn on FunctionFS (s) | kernel SourceSink (s) | usbfn / kernel |\n")
            out.write("|---|---:|---:|---:|---:|\n")
            for case, r, u, k, ratio in rows:
                out.write(f"| {case} | {r} | {u:.3f} | {k:.3f} | {ratio:.2f} |\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
