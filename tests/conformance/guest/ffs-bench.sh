#!/bin/sh
# Guest /init: the FunctionFS throughput benchmark of issue 14 in one boot. usbtest cases 27
# (bulk OUT) and 28 (bulk IN) (iterations 200, length 1024, sglen 32, pattern 0, high speed:
# the parameters of the USB/IP benchmark) against
#   (a) the kernel's SourceSink (usb_f_ss_lb) on dummy_udc.0       labels bench-kernel-rN
#   (b) `usbfn serve --udc dummy_udc.0` (Gadget Zero, FunctionFS)   labels bench-ffs-rN
# alternating a, b for FFS_BENCH_REPS rounds, each on a fresh enumeration, each timed pass
# after one warm-up pass of the same cases on that enumeration (labels warmup-*-rN; the first
# pass after an enumeration runs slower for both gadgets by varying amounts under TCG). Then
# the same on each gadget with cases 1 and 2 run first on the enumeration (labels
# after12-kernel / after12-ffs). Each timed pass is profiled: the guest's CPU ticks
# (/proc/stat), usbfn's threads' schedstat, and usbfn's AIO counters (system calls and
# wake-ups, logged when it stops). tests/conformance/ffs-bench-check.py turns the log into
# the figures and ratios.
#
# Knobs (run-guest.sh --env KEY=VALUE): FFS_BENCH_ITERATIONS (200), FFS_BENCH_REPS (3),
# FFS_BENCH_BUFLEN (empty: both gadgets' defaults, 4096; else the bulk request size of both),
# FFS_BENCH_SWEEP ("QLEN:BUFLEN ...": the same
# queue depth and request size on both gadgets, one enumeration each, labels bench-*-qQ-bB),
# FFS_BENCH_OTHER (another usbfn binary in the guest, e.g. a baseline build: run after usbfn
# in every round, labels bench-other-rN).
. /lib/conformance/lib.sh
conformance_setup

ITER=${FFS_BENCH_ITERATIONS:-200}
REPS=${FFS_BENCH_REPS:-3}
BUFLEN=${FFS_BENCH_BUFLEN:-}
UDC=dummy_udc.0
incomplete=0
t0=$(uptime_s)
elapsed_since() { awk -v a="$1" -v b="$(uptime_s)" 'BEGIN { printf "%.1f", b - a }'; }

dmesg -n 1
load_modules configfs usb-common usbcore udc-core usbtest libcomposite usb_f_ss_lb usb_f_fs \
  dummy_hcd || conformance_exit 10
echo -1 >/sys/module/usbtest/parameters/alt
set_usbtest_pattern 0
say "ffs-bench: iterations $ITER length 1024 sglen 32 pattern 0 high speed, $REPS rounds, buflen ${BUFLEN:-default}; load $(cat /proc/loadavg)"

drive() { # LABEL CASES
  local rc=0
  usbtest-driver --device 0525:a4a0 --label "$1" --cases "$2" --iterations "$ITER" \
    --length 1024 --vary 512 --sglen 32 --case-timeout 60 || rc=$?
  [ "$rc" -le 1 ] || incomplete=$((incomplete + 1))
}
kernel_up() { # [QLEN [BUFLEN]]
  gadget_sourcesink g1 0 "${2:-$BUFLEN}" "${1:-}" && gadget_bind g1 "$UDC" && wait_usbtest_bound 10
}
kernel_down() { gadget_remove g1; sleep 0.2; }
ffs_up() { # [QLEN [BUFLEN]]
  local fn=gadget-zero b=${2:-$BUFLEN}
  [ -n "$b" ] && fn="$fn,buflen=$b"
  [ -n "${1:-}" ] && fn="$fn,qlen=$1"
  "${USBFN_BIN:-usbfn}" serve --udc "$UDC" --function "$fn" >/tmp/usbfn.log 2>&1 &
  USBFN_PID=$!
  wait_usbtest_bound 10
}
ffs_down() {
  kill -TERM "$USBFN_PID" 2>/dev/null && wait "$USBFN_PID"
  grep -o 'aio statistics.*' /tmp/usbfn.log | sed "s/^/ffs-bench $1: /"
  sleep 0.2
}

# Where a pass's time goes: the CPU time of the whole guest (/proc/stat, 10 ms ticks, both
# vCPUs) and, for usbfn, its threads' run time, run-queue wait and time slices (schedstat).
cpu_snap() { head -1 /proc/stat; }
sched_snap() { # PID: run_ns wait_ns slices summed over its threads
  cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ r += $1; w += $2; n += $3 } END { printf "%.0f %.0f %.0f", r, w, n }'
}
profiled() { # LABEL CASES [PID]
  local c0 c1 s0 s1
  c0=$(cpu_snap)
  [ -n "${3:-}" ] && s0=$(sched_snap "$3")
  drive "$1" "$2"
  c1=$(cpu_snap)
  echo "$c0 $c1" | awk -v l="$1" '{ n = 11; printf "ffs-bench cpu %s: user %d system %d irq %d softirq %d idle %d iowait %d steal %d (10 ms ticks, 2 vCPUs)\n", l, $(n+2)-$2, $(n+4)-$4, $(n+7)-$7, $(n+8)-$8, $(n+5)-$5, $(n+6)-$6, $(n+9)-$9 }'
  if [ -n "${3:-}" ]; then
    s1=$(sched_snap "$3")
    echo "$s0 $s1" | awk -v l="$1" '{ printf "ffs-bench sched %s: usbfn ran %.1f ms, waited for a CPU %.1f ms, %d time slices\n", l, ($4-$1)/1e6, ($5-$2)/1e6, $6-$3 }'
  fi
}

r=1
while [ "$r" -le "$REPS" ]; do
  if kernel_up; then
    drive "warmup-kernel-r$r" 27,28
    profiled "bench-kernel-r$r" 27,28
  else
    incomplete=$((incomplete + 1))
  fi
  kernel_down
  if ffs_up; then
    drive "warmup-ffs-r$r" 27,28
    profiled "bench-ffs-r$r" 27,28 "$USBFN_PID"
  else
    incomplete=$((incomplete + 1))
    cat /tmp/usbfn.log
  fi
  ffs_down "r$r"
  if [ -n "${FFS_BENCH_OTHER:-}" ]; then
    if USBFN_BIN=$FFS_BENCH_OTHER ffs_up; then
      drive "warmup-other-r$r" 27,28
      profiled "bench-other-r$r" 27,28 "$USBFN_PID"
    else
      incomplete=$((incomplete + 1))
    fi
    ffs_down "other-r$r"
  fi
  echo "ffs-bench: load after round $r: $(cat /proc/loadavg)"
  r=$((r + 1))
done

# The history question: 27/28 right after cases 1 and 2 on the same enumeration.
if kernel_up; then drive after12-kernel 1,2,27,28; else incomplete=$((incomplete + 1)); fi
kernel_down
if ffs_up; then drive after12-ffs 1,2,27,28; else incomplete=$((incomplete + 1)); fi
ffs_down after12

# Queue depth and request size, the same on both gadgets: FFS_BENCH_SWEEP="QLEN:BUFLEN ...".
for qb in ${FFS_BENCH_SWEEP:-}; do
  q=${qb%%:*}
  b=${qb#*:}
  if kernel_up "$q" "$b"; then
    drive "warmup-kernel-q$q-b$b" 27,28
    profiled "bench-kernel-q$q-b$b" 27,28
  else
    incomplete=$((incomplete + 1))
  fi
  kernel_down
  if ffs_up "$q" "$b"; then
    drive "warmup-ffs-q$q-b$b" 27,28
    profiled "bench-ffs-q$q-b$b" 27,28 "$USBFN_PID"
  else
    incomplete=$((incomplete + 1))
    cat /tmp/usbfn.log
  fi
  ffs_down "q$q-b$b"
done

say "ffs-bench: total $(elapsed_since "$t0") s, $incomplete incomplete runs; load $(cat /proc/loadavg)"
if [ "$incomplete" -eq 0 ]; then conformance_exit 0; else conformance_exit 1; fi
