#!/bin/sh
# Guest /init for tests/conformance/usbredir.sh: usbfn runs on the machine *outside* this
# guest and QEMU attaches its devices over usbredir (`-device usb-redir`). Expected devices
# (the host script starts one `usbfn serve --usbredir` per device):
#   EHCI port 1: Gadget Zero pattern 0, high speed      EHCI port 2: pattern 1, high speed
#   xHCI port 1: Gadget Zero pattern 0, SuperSpeed      xHCI port 2: pattern 1, SuperSpeed
# Runs the USB/IP suite's usbtest cases and parameter sets against each (labels
# usbredir-<speed>-p<pattern>-l<length>, compared by compare-usbredir.py with the USB/IP run's
# usbfn-<speed>-p<pattern>-l<length>), then the benchmark (cases 1, 2, 27, 28) over usbredir
# and, in this same boot, over USB/IP (usbfn inside the guest, vhci-hcd): bench-usbredir /
# bench-usbip, and (UR_USBIP_HOST_PORT, set by the host script) over USB/IP from a usbfn
# outside the guest, through QEMU's user network: bench-usbip-host, the like-for-like
# figure. UR_EXTRA_CHECKS, when set, is a script sourced at the end (class functions:
# their devices are extra usb-redir devices the host script was given).
#
# Knobs: UR_SPEEDS ("high super"), UR_PATTERNS ("0 1"), UR_SETS ("1024:512 1000:500
# 2048:1024"), UR_ITERATIONS (20), UR_CASES (0-14,17-21,24,27-29), UR_BENCH_ITERATIONS (200,
# 0 skips), UR_CASE_TIMEOUT (60), UR_FAULT=1: only start a long transfer (the host script
# kills QEMU during it).
. /lib/conformance/lib.sh
conformance_setup

UR_SPEEDS=${UR_SPEEDS-high super}
UR_PATTERNS=${UR_PATTERNS:-0 1}
UR_SETS=${UR_SETS:-1024:512 1000:500 2048:1024}
UR_ITERATIONS=${UR_ITERATIONS:-20}
UR_CASES=${UR_CASES:-0-14,17-21,27-29}
# Run last, after the benchmark: on xHCI, usbtest 24 (unlink queued OUT URBs) has hung the
# guest's host stack (a timed-out usbtest ioctl blocks later sysfs reads of its device), so
# it must not take the other results with it.
UR_LATE_CASES=${UR_LATE_CASES-24}
UR_BENCH_ITERATIONS=${UR_BENCH_ITERATIONS:-200}
CASE_TIMEOUT=${UR_CASE_TIMEOUT:-60}
SGLEN=32
incomplete=0
timeouts=0
t0=$(uptime_s)
elapsed_since() { awk -v a="$1" -v b="$(uptime_s)" 'BEGIN { printf "%.1f", b - a }'; }
check() { if [ "$2" = 0 ]; then echo "check $1: pass $3"; else echo "check $1: FAIL $3"; fi; }

dmesg -n 1
load_modules usb-common usbcore ehci-hcd ehci-pci xhci-hcd xhci-pci usbtest || conformance_exit 10
echo -1 >/sys/module/usbtest/parameters/alt

# find_dev SPEED PORT: the sysfs directory of the Gadget Zero at that speed (480 high, 5000
# super) on root port PORT of the EHCI or xHCI bus (devpath = PORT).
find_dev() {
  local want d
  case "$1" in high) want=480 ;; super) want=5000 ;; full) want=12 ;; esac
  for d in /sys/bus/usb/devices/*; do
    [ -f "$d/idVendor" ] || continue
    [ "$(cat "$d/idVendor"):$(cat "$d/idProduct")" = 0525:a4a0 ] || continue
    [ "$(cat "$d/speed")" = "$want" ] || continue
    [ "$(cat "$d/devpath")" = "$2" ] || continue
    case "$(readlink -f "$d")" in *vhci*) continue ;; esac
    echo "$d"
    return 0
  done
  return 1
}

wait_dev() { # SPEED PORT SECONDS (of guest uptime: a loop count is minutes under TCG)
  local until
  until=$(awk -v a="$(uptime_s)" -v b="$3" 'BEGIN { printf "%d", a + b }')
  while :; do
    find_dev "$1" "$2" >/dev/null && return 0
    [ "$(cut -d. -f1 /proc/uptime)" -lt "$until" ] || return 1
    sleep 0.2
  done
}

drive() { # LABEL DEVICE CASES LENGTH VARY ITERATIONS
  local pid since=""
  # In the background, through tee: a usbtest ioctl stuck in the kernel (uninterruptible)
  # keeps usbtest-driver from exiting even after its --case-timeout, so the wait is ours and
  # the outcome is read from its output (TIMEOUT: 3, a summary: done, none: incomplete).
  : >/tmp/drive.out
  usbtest-driver --device "$2" --label "$1" --cases "$3" --iterations "$6" \
    --length "$4" --vary "$5" --sglen "$SGLEN" --case-timeout "$CASE_TIMEOUT" --wait 20 2>&1 |
    tee /tmp/drive.out &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    if grep -q ': TIMEOUT' /tmp/drive.out; then
      [ -z "$since" ] && since=$(cut -d. -f1 /proc/uptime)
      if [ $(($(cut -d. -f1 /proc/uptime) - since)) -ge 10 ]; then
        say "$1: usbtest-driver is stuck in the kernel after a timeout: ending the run"
        timeouts=$((timeouts + 1))
        say "total $(elapsed_since "$t0") s, $incomplete incomplete runs, $timeouts timed out"
        # poweroff -f would wait for the stuck device in the kernel's device shutdown: an
        # emergency reboot does not (QEMU runs with -no-reboot, so it exits).
        echo
        echo "CONFORMANCE-EXIT=3"
        # The reboot does not drain the serial console: without the pause the last lines,
        # the exit status among them, can be lost (the run then reads as incomplete, 125).
        sleep 2
        echo 1 >/proc/sys/kernel/sysrq
        echo b >/proc/sysrq-trigger
      fi
    fi
    sleep 1
  done
  wait "$pid" 2>/dev/null
  if grep -q ': TIMEOUT' /tmp/drive.out; then
    say "$1: a case timed out (its later cases skipped); going on with the next device"
    timeouts=$((timeouts + 1))
    return 3
  fi
  grep -q ' summary: ' /tmp/drive.out || incomplete=$((incomplete + 1))
  return 0
}

if [ "${UR_FAULT:-0}" = 1 ]; then
  # The host kills QEMU during this transfer; nothing after it runs.
  if wait_dev high 1 30; then
    set_usbtest_pattern 0
    say "fault: transfer starting"
    usbtest-driver --device "$(find_dev high 1)" --label fault --cases 27 --iterations 100000 \
      --length 1024 --vary 512 --sglen 32 --case-timeout 600
  fi
  say "fault: the transfer ended before QEMU was killed"
  conformance_exit 20
fi

# Enumeration: every expected device shows up with its VID:PID at its speed.
for speed in $UR_SPEEDS; do
  for port in 1 2; do
    ts=$(uptime_s)
    if wait_dev "$speed" "$port" "${UR_ENUM_WAIT:-20}"; then
      d=$(find_dev "$speed" "$port")
      check "usbredir-enumerate-$speed-$port" 0 "($(basename "$d"), $(cat "$d/speed") Mb/s, product '$(cat "$d/product" 2>/dev/null)', $(elapsed_since "$ts") s)"
    else
      check "usbredir-enumerate-$speed-$port" 1 "(no 0525:a4a0 at $speed speed on port $port after 30 s)"
      incomplete=$((incomplete + 1))
    fi
  done
done

for speed in $UR_SPEEDS; do
  ts=$(uptime_s)
  for pattern in $UR_PATTERNS; do
    dev=$(find_dev "$speed" $((pattern + 1))) || { incomplete=$((incomplete + 1)); continue; }
    set_usbtest_pattern "$pattern"
    for set in $UR_SETS; do
      drive "usbredir-$speed-p$pattern-l${set%%:*}" "$dev" "$UR_CASES" "${set%%:*}" "${set#*:}" "$UR_ITERATIONS" || break
    done
  done
  say "usbredir $speed took $(elapsed_since "$ts") s"
done

if [ "$UR_BENCH_ITERATIONS" != 0 ]; then
  tb=$(uptime_s)
  set_usbtest_pattern 0
  if dev=$(find_dev high 1); then
    drive bench-usbredir "$dev" 1,2,27,28 1024 512 "$UR_BENCH_ITERATIONS"
  fi
  if command -v usbfn >/dev/null && load_modules usbip-core vhci-hcd; then
    usbfn serve --speed high --pattern 0 >/tmp/usbfn-serve.log 2>&1 &
    pid=$!
    vdev=""
    if usbip_attach_local 1-1 10; then
      # wait_usbtest_bound would see the usbredir devices: wait for the vhci one itself.
      for _ in $(seq 1 100); do
        for d in /sys/bus/usb/devices/*; do
          case "$(readlink -f "$d")" in *vhci*) ;; *) continue ;; esac
          [ -f "$d/idVendor" ] && [ "$(cat "$d/idVendor")" = 0525 ] && vdev=$d
        done
        [ -n "$vdev" ] && break # usbtest-driver --wait 20 waits for usbtest to bind
        sleep 0.2
      done
    fi
    if [ -n "$vdev" ]; then
      drive bench-usbip "$vdev" 1,2,27,28 1024 512 "$UR_BENCH_ITERATIONS"
    else
      incomplete=$((incomplete + 1))
    fi
    usbip_detach_all
    kill -INT "$pid" 2>/dev/null && wait "$pid"
  fi
  # Like for like: USB/IP from a usbfn on the machine outside the guest (where the usbredir
  # one runs too), reached through QEMU's user network (10.0.2.2 is the host's loopback).
  if [ -n "${UR_USBIP_HOST_PORT:-}" ] && load_modules e1000 usbip-core vhci-hcd; then
    ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0
    vdev=""
    i=0
    while [ $i -lt 50 ]; do
      usbip --tcp-port "$UR_USBIP_HOST_PORT" attach -r 10.0.2.2 -b 1-1 2>/dev/null && break
      sleep 0.2
      i=$((i + 1))
    done
    for _ in $(seq 1 100); do
      for d in /sys/bus/usb/devices/*; do
        case "$(readlink -f "$d")" in *vhci*) ;; *) continue ;; esac
        [ -f "$d/idVendor" ] && [ "$(cat "$d/idVendor")" = 0525 ] && vdev=$d
      done
      [ -n "$vdev" ] && break
      sleep 0.2
    done
    if [ -n "$vdev" ]; then
      drive bench-usbip-host "$vdev" 1,2,27,28 1024 512 "$UR_BENCH_ITERATIONS"
    else
      say "bench-usbip-host: usbip attach -r 10.0.2.2 (port $UR_USBIP_HOST_PORT) gave no device"
      incomplete=$((incomplete + 1))
    fi
    usbip_detach_all
  fi
  say "benchmark took $(elapsed_since "$tb") s"
fi

if [ -n "${UR_EXTRA_CHECKS:-}" ] && [ -f "$UR_EXTRA_CHECKS" ]; then . "$UR_EXTRA_CHECKS"; fi

# The late cases, high speed first; the first timeout ends them.
if [ -n "$UR_LATE_CASES" ]; then
  for speed in $UR_SPEEDS; do
    for pattern in $UR_PATTERNS; do
      dev=$(find_dev "$speed" $((pattern + 1))) || continue
      set_usbtest_pattern "$pattern"
      for set in $UR_SETS; do
        drive "usbredir-$speed-p$pattern-l${set%%:*}" "$dev" "$UR_LATE_CASES" "${set%%:*}" "${set#*:}" "$UR_ITERATIONS" || break 3
      done
    done
  done
fi

dmesg | grep -E 'usbtest|usb [0-9-]+:|xhci|ehci' | grep -iE 'fail|error|reject' | tail -20
say "total $(elapsed_since "$t0") s, $incomplete incomplete runs, $timeouts timed out"
if [ "$incomplete" -eq 0 ] && [ "$timeouts" -eq 0 ]; then conformance_exit 0; else conformance_exit 1; fi
