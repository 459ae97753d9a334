#!/bin/sh
# Guest /init: usbfn's Gadget Zero against the kernel's own SourceSink, case by case, in one
# boot. For every speed, pattern and parameter set the same usbtest cases run twice:
#   kernel-<speed>-p<pattern>-l<length>   SourceSink on dummy_hcd (the kernel's own gadget)
#   vudc-high-p<pattern>-l<length>        SourceSink on usbip-vudc, over USB/IP through vhci-hcd:
#                                         the kernel's gadget behind the same host controller
#                                         as usbfn (usbip-vudc is high speed only)
#   usbfn-<speed>-p<pattern>-l<length>    `usbfn serve` over USB/IP, attached through vhci-hcd
# then a short benchmark: cases 1, 2, 27, 28 for usbfn and for the kernel's usbip-vudc +
# SourceSink (both over USB/IP through vhci-hcd):
#   bench-usbfn / bench-vudc
# tests/conformance/compare.py turns the console log into the verdict and the tables.
#
# Knobs (run-guest.sh --env KEY=VALUE):
#   CMP_SPEEDS        default "high super" (set but empty: no comparison, e.g. benchmark only)
#   CMP_PATTERNS      default "0 1"
#   CMP_SETS          length:vary, default "1024:512 1000:500 2048:1024"
#   CMP_ITERATIONS    default 20
#   CMP_CASES         default 0-14,17-21,24,27-29
#   BENCH_ITERATIONS  default 200 ("0" skips the benchmark)
#   BENCH_LENGTH      default 1024
#   BENCH_ROUNDS      default 1 (more: each label gets "-rN")
#   BENCH_MULTI_THREAD  1: also `usbfn serve --multi-thread` (bench-usbfn-mt) each round
#   BENCH_ALT_FLAGS   flags of one more `usbfn serve` run each round (bench-usbfn-alt), e.g.
#                     "--send-buffer auto", to compare two settings in one boot
#   BENCH_OTHER       another usbfn binary in the guest (e.g. usbfn-base, a baseline build
#                     passed as FILE path/to/usbfn:/usr/local/bin/usbfn-base): one more run
#                     each round (bench-other)
#   CMP_CASE_TIMEOUT  seconds one usbtest case may take, default 60
. /lib/conformance/lib.sh
conformance_setup

CMP_SPEEDS=${CMP_SPEEDS-high super}
CMP_PATTERNS=${CMP_PATTERNS:-0 1}
CMP_SETS=${CMP_SETS:-1024:512 1000:500 2048:1024}
CMP_ITERATIONS=${CMP_ITERATIONS:-20}
CMP_CASES=${CMP_CASES:-0-14,17-21,24,27-29}
BENCH_ITERATIONS=${BENCH_ITERATIONS:-200}
BENCH_LENGTH=${BENCH_LENGTH:-1024}
SGLEN=32
CASE_TIMEOUT=${CMP_CASE_TIMEOUT:-60}

incomplete=0
t0=$(uptime_s)
elapsed_since() { awk -v a="$1" -v b="$(uptime_s)" 'BEGIN { printf "%.1f", b - a }'; }

# Kernel messages would interleave with the result lines on the console: keep them in the
# ring buffer and print the errors at the end.
dmesg -n 1
load_modules configfs usb-common usbcore udc-core usbip-core vhci-hcd usbtest libcomposite \
  usb_f_ss_lb usbip-vudc || conformance_exit 10
echo -1 >/sys/module/usbtest/parameters/alt
say "parameters: speeds $CMP_SPEEDS patterns $CMP_PATTERNS sets $CMP_SETS iterations $CMP_ITERATIONS cases $CMP_CASES"

# drive LABEL CASES LENGTH VARY ITERATIONS: one usbtest-driver run; case failures are results.
# A case that times out leaves usbtest blocked inside the kernel (detaching would hang too), so
# the run stops there with exit status 3; run.sh reports it and boots a fresh guest once.
drive() {
  local rc=0
  usbtest-driver --device 0525:a4a0 --label "$1" --cases "$2" --iterations "$5" \
    --length "$3" --vary "$4" --sglen "$SGLEN" --case-timeout "$CASE_TIMEOUT" || rc=$?
  if [ "$rc" -eq 3 ]; then
    say "$1: a case timed out; the host stack is stuck, stopping this run"
    dmesg | grep -E 'usbtest|vhci|usb [0-9-]+:' | tail -20
    [ -f /tmp/usbfn-serve.log ] && tail -20 /tmp/usbfn-serve.log
    conformance_exit 3
  fi
  [ "$rc" -le 1 ] || incomplete=$((incomplete + 1))
}

# USBFN_PID is set while a usbfn server runs.
usbfn_start() { # SPEED PATTERN [MORE SERVE FLAGS...]
  local speed=$1 pattern=$2
  shift 2
  "${USBFN_BIN:-usbfn}" serve --speed "$speed" --pattern "$pattern" "$@" >/tmp/usbfn-serve.log 2>&1 &
  USBFN_PID=$!
}
# usbipd -e (the kernel's vudc exporter) and usbfn both listen on 3240: one at a time.
usbipd_start() { usbipd -e -D -P/run/usbipd.pid && sleep 0.3; }
usbipd_stop() {
  [ -f /run/usbipd.pid ] && kill "$(cat /run/usbipd.pid)" 2>/dev/null
  rm -f /run/usbipd.pid
  sleep 0.2
}
usbfn_stop() {
  usbip_detach_all
  [ -n "${USBFN_PID:-}" ] && kill -INT "$USBFN_PID" 2>/dev/null && wait "$USBFN_PID"
  USBFN_PID=""
  sleep 0.2
}

dummy_load() { # SPEED
  grep -q '^dummy_hcd ' /proc/modules && rmmod dummy_hcd
  case "$1" in
    high) load_module dummy_hcd ;;
    super) load_module dummy_hcd is_super_speed=1 ;;
    full) load_module dummy_hcd is_high_speed=0 ;;
  esac
}

# The stock tools first: `usbip list -r` shows usbfn's device and `usbip attach` makes the
# kernel enumerate it with the right VID:PID. Lines "check NAME: pass|FAIL detail".
check() { if [ "$2" = 0 ]; then echo "check $1: pass"; else echo "check $1: FAIL $3"; fi; }
usbfn_start high 0
sleep 0.5
list=$(usbip list -r 127.0.0.1 2>&1)
echo "$list"
echo "$list" | grep -q '1-1: .*(0525:a4a0)'
check usbip-list $? "usbip list -r did not show 1-1 (0525:a4a0)"
if usbip_attach_local 1-1 10 && wait_usbtest_bound 10; then
  found=""
  for d in /sys/bus/usb/devices/*; do
    [ -f "$d/idVendor" ] || continue
    if [ "$(cat "$d/idVendor"):$(cat "$d/idProduct")" = 0525:a4a0 ]; then
      found="$d speed $(cat "$d/speed") product $(cat "$d/product" 2>/dev/null)"
    fi
  done
  echo "sysfs: $found"
  [ -n "$found" ]
  check sysfs-vid-pid $? "no 0525:a4a0 under /sys/bus/usb/devices"
  usbip port
else
  check sysfs-vid-pid 1 "usbip attach failed"
fi
usbfn_stop

for speed in $CMP_SPEEDS; do
  ts=$(uptime_s)
  dummy_load "$speed" || { say "cannot load dummy_hcd for $speed"; incomplete=$((incomplete + 1)); continue; }
  for pattern in $CMP_PATTERNS; do
    set_usbtest_pattern "$pattern"
    for set in $CMP_SETS; do
      length=${set%%:*}
      vary=${set#*:}
      # The kernel's own gadget on dummy_hcd.
      gadget_sourcesink g1 "$pattern"
      gadget_bind g1 dummy_udc.0
      if wait_usbtest_bound 10; then
        drive "kernel-$speed-p$pattern-l$length" "$CMP_CASES" "$length" "$vary" "$CMP_ITERATIONS"
      else
        say "kernel-$speed-p$pattern-l$length: no device"
        incomplete=$((incomplete + 1))
      fi
      gadget_remove g1
      sleep 0.2
      # The kernel's own gadget over USB/IP (high speed only).
      if [ "$speed" = high ]; then
        usbipd_start
        gadget_sourcesink g1 "$pattern"
        gadget_bind g1 usbip-vudc.0
        if usbip_attach_local usbip-vudc.0 10 && wait_usbtest_bound 10; then
          drive "vudc-$speed-p$pattern-l$length" "$CMP_CASES" "$length" "$vary" "$CMP_ITERATIONS"
        else
          say "vudc-$speed-p$pattern-l$length: no device"
          incomplete=$((incomplete + 1))
        fi
        usbip_detach_all
        gadget_remove g1
        usbipd_stop
      fi
      # usbfn over USB/IP.
      usbfn_start "$speed" "$pattern"
      if usbip_attach_local 1-1 10 && wait_usbtest_bound 10; then
        drive "usbfn-$speed-p$pattern-l$length" "$CMP_CASES" "$length" "$vary" "$CMP_ITERATIONS"
      else
        say "usbfn-$speed-p$pattern-l$length: no device"
        cat /tmp/usbfn-serve.log
        incomplete=$((incomplete + 1))
      fi
      usbfn_stop
    done
  done
  say "speed $speed took $(elapsed_since "$ts") s"
done
grep -q '^dummy_hcd ' /proc/modules && rmmod dummy_hcd

# BENCH_ROUNDS > 1 repeats the benchmark (labels get "-rN"); BENCH_MULTI_THREAD=1 adds a
# run of `usbfn serve --multi-thread` (label bench-usbfn-mt) to each round; BENCH_ALT_FLAGS
# (e.g. "--send-buffer auto") adds a run of `usbfn serve` with those flags (bench-usbfn-alt).
BENCH_ROUNDS=${BENCH_ROUNDS:-1}
BENCH_MULTI_THREAD=${BENCH_MULTI_THREAD:-0}
BENCH_ALT_FLAGS=${BENCH_ALT_FLAGS:-}
BENCH_OTHER=${BENCH_OTHER:-}
bench_usbfn() { # LABEL [SERVE FLAGS...]
  local label=$1
  shift
  usbfn_start high 0 "$@"
  if usbip_attach_local 1-1 10 && wait_usbtest_bound 10; then
    drive "$label" 1,2,27,28 "$BENCH_LENGTH" 512 "$BENCH_ITERATIONS"
  else
    incomplete=$((incomplete + 1))
  fi
  usbfn_stop
}
if [ "$BENCH_ITERATIONS" != 0 ]; then
  tb=$(uptime_s)
  set_usbtest_pattern 0
  for round in $(seq 1 "$BENCH_ROUNDS"); do
    suffix=""
    [ "$BENCH_ROUNDS" -gt 1 ] && suffix="-r$round"
    bench_usbfn "bench-usbfn$suffix"
    [ "$BENCH_MULTI_THREAD" = 1 ] && bench_usbfn "bench-usbfn-mt$suffix" --multi-thread
    # shellcheck disable=SC2086 # the flags are split on purpose
    [ -n "$BENCH_ALT_FLAGS" ] && bench_usbfn "bench-usbfn-alt$suffix" $BENCH_ALT_FLAGS
    [ -n "$BENCH_OTHER" ] && USBFN_BIN=$BENCH_OTHER bench_usbfn "bench-other$suffix"
    usbipd_start
    gadget_sourcesink g1 0
    gadget_bind g1 usbip-vudc.0
    if usbip_attach_local usbip-vudc.0 10 && wait_usbtest_bound 10; then
      drive "bench-vudc$suffix" 1,2,27,28 "$BENCH_LENGTH" 512 "$BENCH_ITERATIONS"
    else
      incomplete=$((incomplete + 1))
    fi
    usbip_detach_all
    gadget_remove g1
    usbipd_stop
  done
  say "benchmark took $(elapsed_since "$tb") s"
fi

dmesg | grep -E 'usbtest|usb [0-9-]+:' | grep -E 'fail|error' | tail -40
say "total $(elapsed_since "$t0") s, $incomplete incomplete runs"
if [ "$incomplete" -eq 0 ]; then conformance_exit 0; else conformance_exit 1; fi
