#!/usr/bin/env python3
"""Compare usbfn's usbtest results with the kernel's own gadget, from a guest console log.

Reads the lines usbtest-driver prints ("<label> case N ...: pass 0.1 s" / "FAIL EPIPE 32 ..." /
"n/a (EOPNOTSUPP 95) ..."), pairs kernel-<set> with usbfn-<set> case by case, prints one line
per case and parameter set with both results, the benchmark ratios (bench-usbfn vs
bench-vudc), and a closing "conformance: N passed, M failed" line.

A case passes when usbfn's outcome equals the kernel's: both pass, both not applicable, or
both fail with the same errno. The kernel reference is its SourceSink on dummy_hcd; where the
log also has the same SourceSink on usbip-vudc (vudc-<set>: the kernel's gadget behind
vhci-hcd, the host controller usbfn is attached through), usbfn must match that too.

One host-side difference is not a device result: for scatter-gather cases 5-8, usbcore
refuses (-EINVAL, at submission, before any device sees a packet) SG lists whose entries are
not multiples of wMaxPacketSize on host controllers without `no_sg_constraint`, such as
dummy_hcd; vhci-hcd accepts them. Those dummy_hcd results are shown as "EINVAL(hcd)" and
not compared; the vudc reference (when present) still is.

Case 11 (unlink queued reads) reports N000+ERRNO, where N says which of its two unlink
styles (1: usb_unlink_urb, 2: usb_kill_urb) saw the URB end with ERRNO first. Which one does
depends on vhci-hcd's own transmit thread (an unlink can overtake the URB's CMD_SUBMIT inside
the host), so only the errno is compared. Exit status 1 when any case differs or a result is
missing.

A run that needed a fresh guest (run.sh boots one when a case hangs) is a flake, never a
silent pass: with --retried FIRST_LOG every case that timed out or differed in the first
attempt is printed as "flake: ..." and counted in a "conformance flakes: N" line, and a case
that flaked and then fails again in the final attempt fails the suite (two flakes of the
same case in one run).

With --iso LOG (the log of guest/iso-interrupt.sh) it judges the isochronous and interrupt
run instead: every usbfn case must pass (there is no kernel device-side reference that does
iso over USB/IP: usbip-vudc's results are printed next to usbfn's, not compared), and every
"pace <speed>: ..." verdict must be pass; it closes with "conformance iso: N passed, M failed".


With --prefix ffs the log is the FunctionFS run (guest/ffs-vs-kernel.sh): ffs-<set> is
paired with kernel-<set> (both on dummy_hcd, so SG refusals are compared like any result),
its "check" lines are required, and the benchmark is bench-ffs vs bench-kernel (the kernel's
SourceSink on the same dummy_hcd). Every ffs-<set> line is compared; the closing line is
"conformance (ffs): N compared, M matched, K failed".

Usage: compare.py LOG [--prefix usbfn|ffs] [--markdown FILE] [--retried FIRST_LOG]
       compare.py --iso LOG
       (FILE gets the benchmark table in Markdown)
"""
import re
import sys

LINE = re.compile(
    r"^(?P<label>[\w.-]+) case +(?P<case>\d+) iterations (?P<it>\d+) length (?P<len>\d+) "
    r"vary (?P<vary>\d+) sglen (?P<sg>\d+): (?P<result>.*?) (?P<secs>[\d.]+) s\s*$"
)


def outcome(result):
    """'pass', 'n/a', 'timeout' or 'FAIL <errno name>'."""
    r = result.strip()
    if r == "pass":
        return "pass"
    if r.startswith("n/a"):
        return "n/a"
    if r.upper().startswith("TIMEOUT"):
        return "timeout"
    m = re.match(r"FAIL (?:[12]000\+)?(\S+)", r)
    return f"FAIL {m.group(1)}" if m else r


CHECK = re.compile(r"^check (?P<name>[\w-]+): (?P<verdict>pass|FAIL)(?P<detail>.*)$")


def parse_checks(path):
    checks = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for raw in f:
            m = CHECK.match(raw.strip().replace("\r", ""))
            if m:
                checks.append((m["name"], m["verdict"], m["detail"].strip()))
    return checks


def parse(path):
    results = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for raw in f:
            m = LINE.match(raw.strip().replace("\r", ""))
            if m:
                results[(m["label"], int(m["case"]))] = (outcome(m["result"]), float(m["secs"]), m)
    return results


def main():
    args = sys.argv[1:]
    if not args:
        print(__doc__)
        return 2
    if args[0] == "--iso" and len(args) > 1:
        return iso_main(args[1])
    log = args[0]
    markdown = args[args.index("--markdown") + 1] if "--markdown" in args else None
    retried = args[args.index("--retried") + 1] if "--retried" in args else None
    prefix = args[args.index("--prefix") + 1] if "--prefix" in args else "usbfn"
    if prefix == "ffs":
        return compare_ffs(log, markdown)
    results = parse(log)
    sets = sorted({label[len("usbfn-"):] for (label, _) in results if label.startswith("usbfn-")})
    passed = failed = hcd_only = 0
    checks = parse_checks(log)
    for name, verdict, detail in checks:
        print(f"check {name}: {verdict} {detail}".rstrip())
        passed += verdict == "pass"
        failed += verdict != "pass"
    if not checks:
        print("check usbip-list / sysfs-vid-pid: missing from the log")
        failed += 1
    print(f"{'parameter set':<16} {'case':>4}  {'kernel dummy_hcd':<18} {'kernel usbip-vudc':<18} {'usbfn':<18} verdict")
    for s in sets:
        labels = (f"usbfn-{s}", f"kernel-{s}", f"vudc-{s}")
        cases = sorted({c for (label, c) in results if label in labels})
        for case in cases:
            k = results.get((f"kernel-{s}", case))
            v = results.get((f"vudc-{s}", case))
            u = results.get((f"usbfn-{s}", case))
            ko = k[0] if k else "missing"
            vo = v[0] if v else "-"
            uo = u[0] if u else "missing"
            hcd_refused = ko == "FAIL EINVAL" and 5 <= case <= 8
            if hcd_refused:
                ko = "EINVAL(hcd)"
                hcd_only += 1
            ok = u is not None and k is not None and (hcd_refused or ko == uo) and (v is None or vo == uo)
            if hcd_refused and v is None:
                verdict = "not comparable"
            else:
                verdict = "ok" if ok else "DIFFERS"
                passed += ok
                failed += not ok
            print(f"{s:<16} {case:>4}  {ko:<18} {vo:<18} {uo:<18} {verdict}")
    if not sets:
        print("no usbfn results in the log")
        failed += 1

    bench = []
    for case in (1, 2, 27, 28):
        u = results.get(("bench-usbfn", case))
        v = results.get(("bench-vudc", case))
        if u and v and u[0] == "pass" and v[0] == "pass":
            bench.append((case, u[1], v[1], v[1] / u[1] if u[1] > 0 else float("inf"), u[2]))
    if bench:
        m = bench[0][4]
        print()
        print(f"benchmark (usbtest, iterations {m['it']}, length {m['len']}, sglen {m['sg']}; "
              "both over USB/IP through vhci-hcd in the same guest)")
        print(f"{'case':>4}  {'usbfn s':>9}  {'kernel usbip-vudc s':>20}  {'speed-up (vudc/usbfn)':>22}")
        for case, us, vs, ratio, _ in bench:
            print(f"{case:>4}  {us:>9.3f}  {vs:>20.3f}  {ratio:>22.2f}")
        if markdown:
            with open(markdown, "w", encoding="utf-8") as f:
                f.write(f"usbtest, iterations {m['it']}, length {m['len']}, sglen {m['sg']}, TCG guest, "
                        "both devices over USB/IP through vhci-hcd in the same boot\n\n")
                f.write("| case | usbfn (s) | kernel usbip-vudc + SourceSink (s) | vudc time / usbfn time |\n")
                f.write("|---:|---:|---:|---:|\n")
                for case, us, vs, ratio, _ in bench:
                    f.write(f"| {case} | {us:.3f} | {vs:.3f} | {ratio:.2f} |\n")
    print()
    if hcd_only:
        print(f"{hcd_only} dummy_hcd results were host-side SG refusals (EINVAL(hcd)); "
              "cases without a vudc reference are listed as not comparable")
    if retried:
        failed += report_flakes(parse(retried), results)
    print(f"conformance: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


PACE = re.compile(r"^pace (?P<speed>\w+): .*: (?P<verdict>pass|FAIL)$")


def iso_main(log):
    results = parse(log)
    passed = failed = 0
    sides = {}
    for (label, case), (out, secs, _) in sorted(results.items()):
        if label.startswith("pace-"):
            continue
        side, _, rest = label.partition("-")
        sides.setdefault(rest, {}).setdefault(case, {})[side] = (out, secs)
    print(f"{'speed-set-pattern':<28} {'case':>4}  {'usbfn':<12} {'kernel usbip-vudc':<22} verdict")
    for rest, cases in sorted(sides.items()):
        for case, by in sorted(cases.items()):
            u = by.get("usbfn")
            v = by.get("vudc")
            uo = u[0] if u else "missing"
            vo = v[0] if v else "-"
            ok = uo == "pass"
            passed += ok
            failed += not ok
            print(f"{rest:<28} {case:>4}  {uo:<12} {vo:<22} {'ok' if ok else 'FAIL'}")
    paces = []
    with open(log, encoding="utf-8", errors="replace") as f:
        for raw in f:
            line = raw.strip().replace("\r", "")
            m = PACE.match(line)
            if m:
                paces.append((m["speed"], m["verdict"], line))
    final = {}
    for speed, verdict, line in paces:
        print(line)
        final[speed] = verdict
    for speed, verdict in sorted(final.items()):
        passed += verdict == "pass"
        failed += verdict != "pass"
    if not sides:
        print("no usbfn iso/interrupt results in the log")
        failed += 1
    print(f"conformance iso: {passed} passed, {failed} failed")


def compare_ffs(log, markdown):
    """The FunctionFS run: ffs-<set> against kernel-<set>, the checks, bench-ffs/bench-kernel."""
    results = parse(log)
    checks = parse_checks(log)
    failed = 0
    for name, verdict, detail in checks:
        print(f"check {name}: {verdict} {detail}".rstrip())
        failed += verdict != "pass"
    required = ("ffs-enumerate", "ffs-cleanup", "ffs-error-no-udc", "ffs-error-udc-busy",
                "ffs-stale-gadget-removed", "ffs-daemon-usbtest", "ffs-daemon-kill9-disconnects",
                "ffs-daemon-restart-usbtest", "ffs-daemon-python-usbtest", "ffs-daemon-survives",
                "ffs-daemon-cleanup", "ffs-composite-two-services")
    for name in required:
        if name not in {c[0] for c in checks}:
            print(f"check {name}: missing from the log")
            failed += 1
    sets = sorted({label[len("ffs-"):] for (label, _) in results
                   if label.startswith("ffs-") and f"kernel-{label[len('ffs-'):]}" in
                   {l for (l, _) in results}})
    compared = matched = 0
    print(f"{'parameter set':<16} {'case':>4}  {'kernel dummy_hcd':<18} {'usbfn FunctionFS':<18} verdict")
    for s in sets:
        cases = sorted({c for (label, c) in results if label in (f"ffs-{s}", f"kernel-{s}")})
        for case in cases:
            k = results.get((f"kernel-{s}", case))
            u = results.get((f"ffs-{s}", case))
            ko = k[0] if k else "missing"
            uo = u[0] if u else "missing"
            ok = k is not None and u is not None and ko == uo
            compared += 1
            matched += ok
            print(f"{s:<16} {case:>4}  {ko:<18} {uo:<18} {'ok' if ok else 'DIFFERS'}")
    if not sets:
        print("no ffs results in the log")
        failed += 1
    bench = []
    for case in (1, 2, 27, 28):
        u = results.get(("bench-ffs", case))
        k = results.get(("bench-kernel", case))
        if u and k and u[0] == "pass" and k[0] == "pass":
            bench.append((case, u[1], k[1], u[1] / k[1] if k[1] > 0 else float("inf"), u[2]))
    if bench:
        m = bench[0][4]
        print()
        print(f"benchmark (usbtest, iterations {m['it']}, length {m['len']}, sglen {m['sg']}; "
              "both on dummy_hcd high speed in the same guest)")
        print(f"{'case':>4}  {'usbfn FunctionFS s':>18}  {'kernel SourceSink s':>20}  {'usbfn/kernel':>12}")
        for case, us, ks, ratio, _ in bench:
            print(f"{case:>4}  {us:>18.3f}  {ks:>20.3f}  {ratio:>12.2f}")
        if markdown:
            with open(markdown, "w", encoding="utf-8") as f:
                f.write(f"usbtest, iterations {m['it']}, length {m['len']}, sglen {m['sg']}, TCG guest, "
                        "dummy_hcd at high speed, both gadgets in the same boot\n\n")
                f.write("| case | usbfn on FunctionFS (s) | kernel SourceSink (s) | usbfn time / kernel time |\n")
                f.write("|---:|---:|---:|---:|\n")
                for case, us, ks, ratio, _ in bench:
                    f.write(f"| {case} | {us:.3f} | {ks:.3f} | {ratio:.2f} |\n")
    print()
    failed += compared - matched
    print(f"conformance (ffs): {compared} compared, {matched} matched, {failed} failed")
    return 0 if failed == 0 else 1


def report_flakes(first, final):
    """Prints the cases that went wrong in the first attempt; returns how many of them went
    wrong again in the final one."""
    flakes = []
    for (label, case), (out, _, _) in sorted(first.items()):
        if not label.startswith("usbfn-") and not label.startswith("bench-usbfn"):
            continue
        reference = first.get((label.replace("usbfn-", "kernel-", 1), case))
        bad = out == "timeout" or (reference is not None and reference[0] != out
                                   and not (5 <= case <= 8 and reference[0] == "FAIL EINVAL"))
        if bad:
            flakes.append((label, case, out))
    if not flakes:
        print("flake: the first guest run failed without a usbfn case timing out or differing")
        flakes.append(("guest", -1, "incomplete"))
    again = 0
    for label, case, out in flakes:
        now = final.get((label, case))
        now_out = now[0] if now else "missing"
        repeated = case >= 0 and now_out in ("timeout", "missing")
        again += repeated
        where = f"{label} case {case}" if case >= 0 else "the guest run"
        print(f"flake: {where}: {out} in the first attempt, {now_out} on a fresh guest"
              + (" -- flaked twice" if repeated else ""))
    print(f"conformance flakes: {len(flakes)}")
    return again


if __name__ == "__main__":
    sys.exit(main())
