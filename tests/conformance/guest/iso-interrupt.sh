#!/bin/sh
# Guest /init: isochronous (usbtest 15, 16, 22, 23 with usbtest's module parameter alt=1) and
# interrupt (25, 26) cases against usbfn's Gadget Zero over USB/IP, per speed and parameter
# set and pattern, next to the kernel's own SourceSink exported by usbip-vudc (high speed
# only) with the same isoc_* parameters; then the pacing check: one iso read (case 16) long
# enough for >= 2 s of bus time, whose duration is compared with the bus time its packets
# need. Result lines are usbtest-driver's, labelled
#   usbfn-<speed>-<set>-p<pattern>   usbfn serve --function gadget-zero,<params>
#   vudc-high-<set>-p<pattern>       SourceSink with the same params on usbip-vudc
#   pace-usbfn-<speed>               the pacing run; "pace <speed>: ..." gives the verdict
#
# Knobs (run-guest.sh --env KEY=VALUE):
#   ISO_SPEEDS       default "full high super"
#   ISO_PATTERNS     default "0 1"
#   ISO_CASES        default 15,16,22,23 (length and iterations from the parameter set)
#   INT_CASES        default 25,26 (length INT_LENGTH, default 1024: a multiple of every
#                    interrupt wMaxPacketSize, so IN never babbles; INT_ITERATIONS, default 16)
#   ISO_CASE_TIMEOUT seconds one case may take, default 120
#   ISO_PACE         1 (default) runs the pacing check at high and full speed
#   PACE_SGLEN       URBs usbtest keeps queued in the pacing check, default 128 (usbtest's
#                    MAX_SGLEN): 128 ms of lead at high speed, so a guest vCPU descheduled for
#                    tens of ms on a loaded TCG host does not let the host's queue run dry
. /lib/conformance/lib.sh
conformance_setup

ISO_SPEEDS=${ISO_SPEEDS:-full high super}
ISO_PATTERNS=${ISO_PATTERNS:-0 1}
ISO_CASES=${ISO_CASES:-15,16,22,23}
INT_CASES=${INT_CASES-25,26}
INT_LENGTH=${INT_LENGTH:-1024}
INT_ITERATIONS=${INT_ITERATIONS:-16}
CASE_TIMEOUT=${ISO_CASE_TIMEOUT:-120}
ISO_PACE=${ISO_PACE:-1}
PACE_SGLEN=${PACE_SGLEN:-128}
SGLEN=32
incomplete=0
t0=$(uptime_s)
elapsed_since() { awk -v a="$1" -v b="$(uptime_s)" 'BEGIN { printf "%.1f", b - a }'; }

dmesg -n 1
load_modules configfs usb-common usbcore udc-core usbip-core vhci-hcd usbtest libcomposite \
  usb_f_ss_lb usbip-vudc || conformance_exit 10
# usbtest reads alt at probe time: alternate setting 1 has the iso endpoints (and, in usbfn's
# Gadget Zero, the interrupt ones too).
echo 1 >/sys/module/usbtest/parameters/alt

# Parameter sets per speed: NAME|gadget-zero options|usbtest length|iterations.
# Lengths are multiples of the bytes per interval (the device sends full packets; a shorter
# host packet would be babble, as with the kernel's gadget on real hardware).
sets_for() {
  case "$1" in
    full)
      echo "default||1023|2"
      echo "i1-mp512|isoc_interval=1,isoc_maxpacket=512|2048|8"
      ;;
    high)
      echo "default||1024|16"
      echo "i1-mult2|isoc_interval=1,isoc_mult=2|6144|16"
      ;;
    super)
      echo "default||1024|16"
      echo "i1-mult1-burst3|isoc_interval=1,isoc_mult=1,isoc_maxburst=3|16384|16"
      ;;
  esac
}

drive() { # LABEL CASES LENGTH ITERATIONS
  local rc=0
  usbtest-driver --device 0525:a4a0 --label "$1" --cases "$2" --iterations "$4" \
    --length "$3" --vary 0 --sglen "$SGLEN" --case-timeout "$CASE_TIMEOUT" || rc=$?
  if [ "$rc" -eq 3 ]; then
    say "$1: a case timed out; the host stack is stuck, stopping this run"
    dmesg | grep -E 'usbtest|vhci|usb [0-9-]+:' | tail -20
    [ -f /tmp/usbfn-serve.log ] && tail -20 /tmp/usbfn-serve.log
    conformance_exit 3
  fi
  [ "$rc" -le 1 ] || incomplete=$((incomplete + 1))
}

usbfn_start() { # SPEED PATTERN OPTIONS
  local f="gadget-zero"
  [ -n "$3" ] && f="gadget-zero,$3"
  usbfn serve --speed "$1" --pattern "$2" --function "$f" >/tmp/usbfn-serve.log 2>&1 &
  USBFN_PID=$!
}
usbfn_stop() {
  usbip_detach_all
  [ -n "${USBFN_PID:-}" ] && kill -INT "$USBFN_PID" 2>/dev/null && wait "$USBFN_PID"
  USBFN_PID=""
  sleep 0.2
}
usbipd_start() { usbipd -e -D -P/run/usbipd.pid && sleep 0.3; }
usbipd_stop() {
  [ -f /run/usbipd.pid ] && kill "$(cat /run/usbipd.pid)" 2>/dev/null
  rm -f /run/usbipd.pid
  sleep 0.2
}
# vudc_sourcesink PATTERN OPTIONS: SourceSink with the same isoc_* attributes.
vudc_sourcesink() {
  gadget_sourcesink_unlinked g1 "$1"
  local kv key value
  for kv in $(echo "$2" | tr ',' ' '); do
    key=${kv%%=*}
    value=${kv#*=}
    echo "$value" >"$GADGET_ROOT/g1/functions/SourceSink.0/$key"
  done
  ln -s "$GADGET_ROOT/g1/functions/SourceSink.0" "$GADGET_ROOT/g1/configs/c.1/"
}
# gadget_sourcesink without the final link, so attributes can still be set.
gadget_sourcesink_unlinked() {
  gadget_sourcesink "$1" "$2" && rm -f "$GADGET_ROOT/$1/configs/c.1/SourceSink.0"
}

for speed in $ISO_SPEEDS; do
  ts=$(uptime_s)
  for pattern in $ISO_PATTERNS; do
    set_usbtest_pattern "$pattern"
    for line in $(sets_for "$speed"); do
      name=$(echo "$line" | cut -d'|' -f1)
      opts=$(echo "$line" | cut -d'|' -f2)
      length=$(echo "$line" | cut -d'|' -f3)
      iterations=$(echo "$line" | cut -d'|' -f4)
      say "set $speed-$name: gadget-zero,$opts length $length iterations $iterations sglen $SGLEN"
      usbfn_start "$speed" "$pattern" "$opts"
      if usbip_attach_local 1-1 10 && wait_usbtest_bound 10; then
        drive "usbfn-$speed-$name-p$pattern" "$ISO_CASES" "$length" "$iterations"
        [ -n "$INT_CASES" ] &&
          drive "usbfn-$speed-$name-p$pattern" "$INT_CASES" "$INT_LENGTH" "$INT_ITERATIONS"
      else
        say "usbfn-$speed-$name-p$pattern: no device"
        cat /tmp/usbfn-serve.log
        incomplete=$((incomplete + 1))
      fi
      usbfn_stop
      if [ "$speed" = high ]; then
        usbipd_start
        vudc_sourcesink "$pattern" "$opts"
        gadget_bind g1 usbip-vudc.0
        if usbip_attach_local usbip-vudc.0 10 && wait_usbtest_bound 10; then
          drive "vudc-$speed-$name-p$pattern" "$ISO_CASES" "$length" "$iterations"
          [ -n "$INT_CASES" ] &&
            drive "vudc-$speed-$name-p$pattern" "$INT_CASES" "$INT_LENGTH" "$INT_ITERATIONS"
        else
          say "vudc-$speed-$name-p$pattern: no device"
          incomplete=$((incomplete + 1))
        fi
        usbip_detach_all
        gadget_remove g1
        usbipd_stop
      fi
    done
  done
  say "speed $speed took $(elapsed_since "$ts") s"
done

# Pacing: case 16 with the default interval (isoc_interval 4: 8 microframes = 1 ms at high
# speed, 8 frames = 8 ms at full speed), one packet per URB, >= 2 s of bus time.
# pace_verdict SPEED USBTEST_OUTPUT ITERATIONS PACKET_US: the "pace ..." line.
pace_verdict() {
  local secs
  secs=$(echo "$2" | sed -n 's/.*case 16 .*: [^ ]* \([0-9.]*\) s$/\1/p')
  awk -v s="$secs" -v n=$(($3 * PACE_SGLEN)) -v us="$4" -v sp="$1" 'BEGIN {
    bus = n * us / 1e6; r = (s == "" ? 0 : s / bus)
    v = (r >= 1.0 && r <= 1.05) ? "pass" : (r > 1.05 ? "slow: FAIL" : "FAIL")
    printf "pace %s: %d packets need %.3f s of bus time, took %.3f s (ratio %.4f, %.0f packets/s vs %.0f): %s\n", sp, n, bus, s, r, (s > 0 ? n / s : 0), 1e6 / us, v
  }'
}
pace() { # SPEED LENGTH ITERATIONS PACKET_US
  local speed=$1 length=$2 iterations=$3 us=$4 out secs
  set_usbtest_pattern 0
  usbfn_start "$speed" 0 ""
  if usbip_attach_local 1-1 10 && wait_usbtest_bound 10; then
    out=$(usbtest-driver --device 0525:a4a0 --label "pace-usbfn-$speed" --cases 16 \
      --iterations "$iterations" --length "$length" --vary 0 --sglen "$PACE_SGLEN" \
      --case-timeout "$CASE_TIMEOUT")
    echo "$out"
    verdict=$(pace_verdict "$speed" "$out" "$iterations" "$us")
    if echo "$verdict" | grep -q 'slow: FAIL$'; then
      # Slower than the bus clock allows: the host's URB queue may have run dry while a
      # guest vCPU was descheduled. Measured once more, printed as a flake; the second
      # measurement is the verdict. Faster than the bus clock is never retried.
      echo "flake: $verdict; measuring once more"
      out=$(usbtest-driver --device 0525:a4a0 --label "pace-usbfn-$speed-retry" --cases 16 \
        --iterations "$iterations" --length "$length" --vary 0 --sglen "$PACE_SGLEN" \
        --case-timeout "$CASE_TIMEOUT")
      echo "$out"
      verdict=$(pace_verdict "$speed" "$out" "$iterations" "$us")
    fi
    echo "$verdict"
  else
    incomplete=$((incomplete + 1))
  fi
  usbfn_stop
}
if [ "$ISO_PACE" = 1 ]; then
  # iterations × PACE_SGLEN packets: 2048 × 1 ms, 256 × 8 ms.
  pace high 1024 $((2048 / PACE_SGLEN)) 1000
  pace full 1023 $((256 / PACE_SGLEN)) 8000
fi

dmesg | grep -E 'usbtest|usb [0-9-]+:' | grep -E 'fail|error' | tail -40
say "total $(elapsed_since "$t0") s, $incomplete incomplete runs"
if [ "$incomplete" -eq 0 ]; then conformance_exit 0; else conformance_exit 1; fi
