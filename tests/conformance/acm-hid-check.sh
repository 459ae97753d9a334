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
# usbfn against the kernel's usb_f_acm on usbip-vudc, each way (MB/s).
awk '$1 == "bench" && $2 == "acm" { v[$3 " " $4] = $7 }
  END { for (d in v) if (d ~ /^usbfn/) { split(d, p, " "); k = "vudc " p[2];
    if (k in v && v[k] > 0) printf "acm %s: usbfn %s MB/s, usbip-vudc %s MB/s, ratio %.2f\n", p[2], v[d], v[k], v[d] / v[k] } }' "$log"
exit $rc
