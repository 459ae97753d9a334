#!/bin/sh
# Guest /init: the unlink races, repeated. usbtest cases 24, 11, 12, 24 (unlink from the
# middle of a queue, unlink queued reads, unlink queued writes) at the parameters that hung
# usbfn before its writer and early-unlink fixes (high speed, iterations 120, length 1536,
# vary 512, sglen 12), STRESS_ROUNDS times in a row against `usbfn serve` over vhci-hcd,
# with a busy loop on one guest CPU for load.
#
# Prints "stress-usbfn round K: pass|FAIL ..." per round, a summary line
#   conformance: unlink stress usbfn N of M rounds passed (H early unlinks held)
# and exits 0 when every usbfn round passed (3 when a case hung: the host stack is stuck).
#
# Knobs (run-guest.sh --env KEY=VALUE): STRESS_ROUNDS (default 50),
# STRESS_CASES (default 24,11,12,24), STRESS_ITERATIONS (120),
# STRESS_LENGTH (1536), STRESS_VARY (512), STRESS_SGLEN (12), STRESS_LOAD (1: busy loop).
. /lib/conformance/lib.sh
conformance_setup

ROUNDS=${STRESS_ROUNDS:-50}
CASES=${STRESS_CASES:-24,11,12,24}
ITERATIONS=${STRESS_ITERATIONS:-120}
LENGTH=${STRESS_LENGTH:-1536}
VARY=${STRESS_VARY:-512}
SGLEN=${STRESS_SGLEN:-12}
CASE_TIMEOUT=60

dmesg -n 1
load_modules configfs usb-common usbcore udc-core usbip-core vhci-hcd usbtest libcomposite \
  usb_f_ss_lb usbip-vudc || conformance_exit 10
echo -1 >/sys/module/usbtest/parameters/alt
set_usbtest_pattern 0
say "unlink stress: $ROUNDS rounds of cases $CASES, iterations $ITERATIONS length $LENGTH vary $VARY sglen $SGLEN, load ${STRESS_LOAD:-1}"

load_pid=""
if [ "${STRESS_LOAD:-1}" = 1 ]; then
  (while :; do :; done) &
  load_pid=$!
fi

# rounds LABEL COUNT: COUNT usbtest-driver runs on the attached device; sets $passed.
rounds() {
  local k=1 rc
  passed=0
  while [ "$k" -le "$2" ]; do
    rc=0
    usbtest-driver --device 0525:a4a0 --label "$1-r$k" --cases "$CASES" \
      --iterations "$ITERATIONS" --length "$LENGTH" --vary "$VARY" --sglen "$SGLEN" \
      --case-timeout "$CASE_TIMEOUT" >/tmp/round.log 2>&1 || rc=$?
    if [ "$rc" -eq 0 ]; then
      echo "$1 round $k: pass"
      passed=$((passed + 1))
    else
      echo "$1 round $k: FAIL (exit $rc)"
      cat /tmp/round.log
      dmesg | grep -E 'vhci|usbtest|usb [0-9-]+:' | tail -10
      if [ "$rc" -eq 3 ]; then
        say "$1: a case timed out; the host stack is stuck, stopping"
        return 3
      fi
    fi
    k=$((k + 1))
  done
  return 0
}

RUST_LOG=usbfn_usbip=debug usbfn serve --speed high --pattern 0 >/tmp/usbfn-serve.log 2>&1 &
usbfn_pid=$!
usbfn_rc=0
usbfn_passed=0
if usbip_attach_local 1-1 10 && wait_usbtest_bound 10; then
  rounds stress-usbfn "$ROUNDS" || usbfn_rc=$?
  usbfn_passed=$passed
else
  say "usbfn: no device"
  usbfn_rc=1
fi
held=$(grep -c 'CMD_UNLINK before its CMD_SUBMIT' /tmp/usbfn-serve.log)
cancelled=$(grep -c 'its RET_SUBMIT was not written yet' /tmp/usbfn-serve.log)
say "unlink stress usbfn $usbfn_passed of $ROUNDS rounds passed ($held early unlinks held, $cancelled unwritten completions cancelled)"
dmesg | grep -E 'cannot find a urb|vhci_hcd' | tail -5
if [ "$usbfn_rc" -eq 3 ]; then
  tail -30 /tmp/usbfn-serve.log
  conformance_exit 3
fi
usbip_detach_all
kill -INT "$usbfn_pid" 2>/dev/null && wait "$usbfn_pid"

[ -n "$load_pid" ] && kill "$load_pid"
if [ "$usbfn_passed" -eq "$ROUNDS" ] && [ "$usbfn_rc" -eq 0 ]; then conformance_exit 0; fi
conformance_exit 1
