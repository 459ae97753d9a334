#!/bin/sh
# acm-hid-check.sh LOG: the verdict on guest/acm-hid.sh's console log. Prints the check and
# benchmark lines; fails on any FAIL line, on a missing check (acm 7, hid 4, composite 2,
# services 6) or when the guest
# did not reach its exit marker.
log=$1
grep -aE '^conformance (acm|hid|vudc|composite|services): |^bench acm ' "$log"
fails=$(grep -acE '^conformance (acm|hid|vudc|composite|services): FAIL' "$log")
acm=$(grep -acE '^conformance acm: PASS' "$log")
hid=$(grep -acE '^conformance hid: PASS' "$log")
composite=$(grep -acE '^conformance composite: PASS' "$log")
services=$(grep -acE '^conformance services: PASS' "$log")
rc=0
[ "$fails" -eq 0 ] || { echo "acm-hid: $fails failed check(s)"; rc=1; }
[ "$acm" -ge 7 ] || { echo "acm-hid: $acm of 7 acm checks passed"; rc=1; }
[ "$hid" -ge 4 ] || { echo "acm-hid: $hid of 4 hid checks passed"; rc=1; }
[ "$composite" -ge 2 ] || { echo "acm-hid: $composite of 2 composite checks passed"; rc=1; }
[ "$services" -ge 6 ] || { echo "acm-hid: $services of 6 services checks passed"; rc=1; }
grep -aq '^CONFORMANCE-EXIT=' "$log" || { echo "acm-hid: the guest did not finish"; rc=1; }
# usbfn against the kernel's usb_f_acm on usbip-vudc, each way: every run's MB/s, the
# median of each side's runs and the ratio of the medians (the runs alternate in one boot).
awk '$1 == "bench" && $2 == "acm" { k = $3 " " $4; n[k]++; v[k, n[k]] = $7; all[k] = all[k] " " $7 }
  function median(k,   i, j, t, a, m) {
    m = n[k]; for (i = 1; i <= m; i++) a[i] = v[k, i]
    for (i = 2; i <= m; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
  }
  END { split("h2d d2h", dirs, " ")
    for (d = 1; d <= 2; d++) { u = "usbfn " dirs[d]; b = "vudc " dirs[d]
      if ((u in n) && (b in n) && median(b) > 0)
        printf "acm %s: usbfn median %.3f MB/s (runs:%s), usbip-vudc median %.3f MB/s (runs:%s), ratio %.2f\n", dirs[d], median(u), all[u], median(b), all[b], median(u) / median(b) } }' "$log"
exit $rc
