#!/bin/sh
# Guest /init: usbfn's CDC-ACM serial port and HID keyboard, judged by the kernel's cdc-acm,
# usbhid and hid-generic over USB/IP (vhci-hcd, usbfn inside the guest), and the ACM
# throughput each way next to the kernel's usb_f_acm exported through usbip-vudc; then acm
# and msc as service processes under `usbfn daemon --services external`.
# Check lines: "conformance acm: PASS|FAIL <what> (<figures>)", "conformance hid: ...",
# "conformance services: ...";
# benchmark lines: "bench acm <usbfn|vudc> <h2d|d2h> <bytes> <seconds> <MB/s>".
# Knobs: ACM_BYTES (default 1048576), ACM_BENCH (1: the vudc side too), ACM_RUNS (timed
# transfers each way per side, default 3; the checker takes the median), ACM_SPEED (the speed
# `usbfn serve` exports the serial port at, default high), ACM_ONLY (1: skip HID and the
# composite, for benchmark runs).
. /lib/conformance/lib.sh
conformance_setup

ACM_BYTES=${ACM_BYTES:-1048576}
ACM_BENCH=${ACM_BENCH:-1}
ACM_RUNS=${ACM_RUNS:-3}
ACM_SPEED=${ACM_SPEED:-high}
ACM_ONLY=${ACM_ONLY:-0}
fails=0
check() { # AREA NAME RC FIGURES
  if [ "$3" = 0 ]; then
    echo "conformance $1: PASS $2 ($4)"
  else
    echo "conformance $1: FAIL $2 ($4)"
    fails=$((fails + 1))
  fi
}
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
mbps() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.3f", (s > 0 ? n / s / 1e6 : 0) }'; }
wait_file() { # PATH SECONDS
  local i=0
  while [ $i -lt $(($2 * 10)) ]; do
    [ -e "$1" ] && return 0
    sleep 0.1
    i=$((i + 1))
  done
  return 1
}

dmesg -n 1
# Pseudo-terminals (the serial function's device side) need devpts.
grep -q ' /dev/pts ' /proc/mounts || mount -t devpts -o ptmxmode=0666 devpts /dev/pts
load_modules configfs usb-common usbcore udc-core usbip-core vhci-hcd libcomposite usbip-vudc \
  cdc-acm usbhid hid-generic evdev usb_f_acm usb-storage sd_mod || conformance_exit 10

dd if=/dev/urandom of=/tmp/h2d bs=65536 count=$((ACM_BYTES / 65536)) 2>/dev/null
dd if=/dev/urandom of=/tmp/d2h bs=65536 count=$((ACM_BYTES / 65536)) 2>/dev/null

# one AREA LABEL h2d|d2h HOST_TTY DEVICE_TTY RUN: ACM_BYTES one way, byte-exact, timed from
# the writer's start until the reader has them all.
one() {
  local file src dst what reader t0 t1 s rc
  if [ "$3" = h2d ]; then
    file=/tmp/h2d src=$4 dst=$5 what="host to device"
  else
    file=/tmp/d2h src=$5 dst=$4 what="device to host"
  fi
  rm -f /tmp/rx
  timeout 120 head -c "$ACM_BYTES" "$dst" >/tmp/rx &
  reader=$!
  sleep 0.5
  t0=$(uptime_s)
  cat "$file" >"$src"
  wait $reader
  t1=$(uptime_s)
  s=$(secs "$t0" "$t1")
  cmp -s "$file" /tmp/rx
  rc=$?
  check "$1" "$2 $what: $ACM_BYTES random bytes byte-exact (run $6)" $rc \
    "$(wc -c </tmp/rx) bytes in $s s, $(mbps "$ACM_BYTES" "$s") MB/s"
  echo "bench acm $2 $3 $ACM_BYTES $s $(mbps "$ACM_BYTES" "$s")"
}

# ---- ACM: usbfn (port 3241), then the kernel's usb_f_acm through usbip-vudc (usbipd on
# 3240), both attached at once so that their runs alternate in the same boot.
usbfn serve --listen 127.0.0.1:3241 --speed "$ACM_SPEED" --function acm,pty=/tmp/ttyUSBFN \
  >/tmp/acm.log 2>&1 &
USBFN_PID=$!
i=0
until usbip --tcp-port 3241 attach -r 127.0.0.1 -b 1-1 || [ $i -ge 50 ]; do
  sleep 0.2
  i=$((i + 1))
done
wait_file /dev/ttyACM0 10
rc=$?
check acm "cdc-acm binds, /dev/ttyACM0 appears" $rc \
  "$(ls /sys/bus/usb/drivers/cdc_acm 2>/dev/null | grep -c :) interfaces bound, $ACM_SPEED speed"
usbfn_ok=$rc
if [ $rc = 0 ]; then
  stty -F /dev/ttyACM0 raw -echo clocal
  stty -F /tmp/ttyUSBFN raw -echo
  host=$(stty -F /dev/ttyACM0 -a | tr '\n' ' ')
  dev=$(stty -F /tmp/ttyUSBFN -a | tr '\n' ' ')
  echo "$host" | grep -q -- '-icanon' && echo "$host" | grep -q -- '-echo ' &&
    echo "$dev" | grep -q -- '-icanon' && echo "$dev" | grep -q -- '-echo '
  check acm "both ends raw" $? "host -icanon -echo, device -icanon -echo"
  stty -F /dev/ttyACM0 57600
  sleep 0.3
  grep -q 'acm0: line coding 57600 8N1' /tmp/acm.log
  rc=$?
  devspeed=$(stty -F /tmp/ttyUSBFN speed)
  [ "$devspeed" = 57600 ] || rc=1
  check acm "SET_LINE_CODING from stty seen on the device side" $rc \
    "log: $(grep -c 'line coding 57600' /tmp/acm.log) line(s), device-side stty speed $devspeed"
  stty -F /dev/ttyACM0 115200
  grep -q 'control lines DTR=1 RTS=1' /tmp/acm.log
  check acm "DTR/RTS visible on the device side" $? \
    "$(grep -c 'control lines' /tmp/acm.log) control-line events"
fi

vtty=""
if [ "$ACM_BENCH" = 1 ]; then
  usbipd -e -D -P/run/usbipd.pid && sleep 0.3
  g="$GADGET_ROOT/acm"
  mkdir "$g" && echo 0x0525 >"$g/idVendor" && echo 0xa4a7 >"$g/idProduct"
  mkdir "$g/configs/c.1" "$g/functions/acm.usb0"
  ln -s "$g/functions/acm.usb0" "$g/configs/c.1/"
  echo usbip-vudc.0 >"$g/UDC"
  usbip_attach_local usbip-vudc.0 10
  for i in 1 2 3 4 5 6 7 8 9 10; do
    for t in /dev/ttyACM*; do [ -e "$t" ] && [ "$t" != /dev/ttyACM0 ] && vtty=$t; done
    [ -n "$vtty" ] && [ -e /dev/ttyGS0 ] && break
    sleep 0.5
  done
  if [ -n "$vtty" ] && [ -e /dev/ttyGS0 ]; then
    stty -F "$vtty" raw -echo clocal
    stty -F /dev/ttyGS0 raw -echo clocal
  else
    check vudc "kernel usb_f_acm on usbip-vudc" 1 "no tty"
    vtty=""
  fi
fi

# Same tools, block sizes and bytes on both sides; the order alternates from run to run.
run=1
while [ $run -le "$ACM_RUNS" ]; do
  for dir in h2d d2h; do
    if [ $((run % 2)) = 1 ]; then
      [ $usbfn_ok = 0 ] && one acm usbfn $dir /dev/ttyACM0 /tmp/ttyUSBFN $run
      [ -n "$vtty" ] && one vudc vudc $dir "$vtty" /dev/ttyGS0 $run
    else
      [ -n "$vtty" ] && one vudc vudc $dir "$vtty" /dev/ttyGS0 $run
      [ $usbfn_ok = 0 ] && one acm usbfn $dir /dev/ttyACM0 /tmp/ttyUSBFN $run
    fi
  done
  run=$((run + 1))
done
if [ $usbfn_ok = 0 ]; then
  grep -q 'device side opened the pty' /tmp/acm.log
  check acm "carrier follows the device side's open" $? \
    "$(grep -c 'device side' /tmp/acm.log) open/close events"
fi
usbip_detach_all
kill -INT "$USBFN_PID" 2>/dev/null
wait "$USBFN_PID" 2>/dev/null
sleep 0.5
if [ "$ACM_BENCH" = 1 ]; then
  echo "" >"$g/UDC" 2>/dev/null
  rm -f "$g/configs/c.1/acm.usb0"
  rmdir "$g/configs/c.1" "$g/functions/acm.usb0" "$g"
  [ -f /run/usbipd.pid ] && kill "$(cat /run/usbipd.pid)" 2>/dev/null
  sleep 0.3
fi

if [ "$ACM_ONLY" = 1 ]; then
  echo "acm-hid: $fails failed check(s) (acm only)"
  conformance_exit "$fails"
fi

# ---- HID keyboard ------------------------------------------------------------------------
usbfn serve --function hid-keyboard,input=/tmp/kbd.fifo >/tmp/hid.log 2>&1 &
USBFN_PID=$!
usbip_attach_local 1-1 10
wait_file /dev/hidraw0 10
rc=$?
ev=""
for e in /sys/class/input/event*; do
  grep -q usbfn "$e/device/name" 2>/dev/null && ev=/dev/input/${e##*/}
done
[ -n "$ev" ] && wait_file "$ev" 5 || rc=1
check hid "usbhid/hid-generic bind, hidraw and an input device appear" $rc \
  "hid-generic: $(ls /sys/bus/hid/drivers/hid-generic 2>/dev/null | grep -c :) device(s), /dev/hidraw0, ${ev:-no event device}"
if [ $rc = 0 ]; then
  timeout 4 cat "$ev" >/tmp/ev &
  sleep 0.5
  echo "type hello" >/tmp/kbd.fifo
  wait $!
  # struct input_event on x86_64: 16 bytes of time, u16 type, u16 code, s32 value.
  got=$(hexdump -v -e '6/4 "%08x " "\n"' /tmp/ev | awk '
    $5 == "00040004" { scan = substr($6, 7, 2) }
    substr($5, 5, 4) == "0001" && $6 == "00000001" { printf "0x%s ", scan }
    substr($5, 5, 4) == "0001" && $6 == "00000000" { rel++ }
    END { printf "releases %d", rel }')
  [ "$got" = "0x0b 0x08 0x0f 0x0f 0x12 releases 5" ]
  check hid "type hello gives usages 0x0b 0x08 0x0f 0x0f 0x12 with releases" $? "$got"
  timeout 4 head -c 16 /dev/hidraw0 >/tmp/raw &
  sleep 0.5
  printf 'report 01 00 05 06 07 08 09 0a\nreport 0000000000000000\n' >/tmp/kbd.fifo
  wait $!
  raw=$(hexdump -v -e '16/1 "%02x"' /tmp/raw)
  [ "$raw" = "010005060708090a0000000000000000" ]
  check hid "report HEX arrives byte-exact on hidraw" $? "$raw"
  # An output report (report number 0, then the LED byte: Caps Lock).
  printf '\000\002' >/dev/hidraw0
  sleep 0.5
  grep -q 'hid0: output 02' /tmp/hid.log
  check hid "LED output report written by the host reaches the device side" $? \
    "$(grep 'hid0: output' /tmp/hid.log | tr '\n' ' ')"
fi
usbip_detach_all
kill -INT "$USBFN_PID" 2>/dev/null
wait "$USBFN_PID" 2>/dev/null

# ---- composite: acm + msc + hid-keyboard in one device -----------------------------------
# One usbfn device with the three functions (interface association per function, interfaces
# and endpoints numbered in order): cdc_acm, usb-storage and usbhid must all bind at once.
dd if=/dev/zero of=/tmp/comp.img bs=1048576 count=8 2>/dev/null
usbfn serve --function acm,pty=/tmp/ttyCOMP --function msc,image=/tmp/comp.img \
  --function hid-keyboard,input=/tmp/comp.fifo >/tmp/comp.log 2>&1 &
USBFN_PID=$!
usbip_attach_local 1-1 10
wait_file /dev/ttyACM0 10; a=$?
wait_file /dev/sda 20; m=$?
wait_file /dev/hidraw0 10; h=$?
drivers=$(for i in /sys/bus/usb/devices/*-*:1.*; do
  [ -e "$i/driver" ] && basename "$(readlink "$i/driver")"; done | sort | tr '\n' ' ')
size=$(cat /sys/block/sda/size 2>/dev/null)
[ $a = 0 ] && [ $m = 0 ] && [ $h = 0 ] && [ "$size" = 16384 ] &&
  echo "$drivers" | grep -q cdc_acm && echo "$drivers" | grep -q usb-storage &&
  echo "$drivers" | grep -q usbhid
check composite "acm + msc + hid-keyboard bind cdc_acm, usb-storage and usbhid at once" $? \
  "interface drivers: $drivers; /dev/ttyACM0, /dev/sda ${size:-?} sectors, /dev/hidraw0"
if [ $m = 0 ]; then
  dd if=/dev/urandom of=/tmp/comp.data bs=65536 count=16 2>/dev/null
  dd if=/tmp/comp.data of=/dev/sda bs=65536 conv=fsync 2>/dev/null && sync
  head -c 1048576 /tmp/comp.img | cmp -s - /tmp/comp.data
  check composite "1 MiB written to the composite's disk is in its image" $? \
    "sha256 $(sha256sum /tmp/comp.data | cut -c1-12)"
fi
usbip_detach_all
kill -INT "$USBFN_PID" 2>/dev/null
wait "$USBFN_PID" 2>/dev/null

# ---- service processes: acm + msc under usbfn daemon, each function its own process ------
# The daemon owns the device (built from the acm and msc fragments); `usbfn service acm` and
# `usbfn service msc` open their interfaces by InterfaceGUID and run the same function code.
# kill -9 of the acm service withdraws the device (the host is detached); a restarted service
# lets it enumerate again.
SVC_BYTES=262144
dd if=/dev/zero of=/tmp/svc.img bs=1048576 count=8 2>/dev/null
usbfn daemon --function acm --function msc --services external --runtime-dir /run/usbfn \
  >/tmp/svc-daemon.log 2>&1 &
DAEMON_PID=$!
usbfn service acm,pty=/tmp/ttySVC --runtime-dir /run/usbfn >/tmp/svc-acm.log 2>&1 &
ACM_SVC=$!
usbfn service msc,image=/tmp/svc.img --runtime-dir /run/usbfn >/tmp/svc-msc.log 2>&1 &
MSC_SVC=$!
usbip_attach_local 1-1 20
wait_file /dev/ttyACM0 10; a=$?
wait_file /dev/sda 20; m=$?
drivers=$(for i in /sys/bus/usb/devices/*-*:1.*; do
  [ -e "$i/driver" ] && basename "$(readlink "$i/driver")"; done | sort | tr '\n' ' ')
[ $a = 0 ] && [ $m = 0 ] && echo "$drivers" | grep -q cdc_acm && echo "$drivers" | grep -q usb-storage
check services "daemon + usbfn service acm + usbfn service msc: cdc_acm and usb-storage bind" $? \
  "interface drivers: $drivers; services: $(grep -c 'opened' /tmp/svc-acm.log /tmp/svc-msc.log | tr '\n' ' ')"
# svc_acm LABEL: SVC_BYTES random bytes each way through the acm service process.
svc_acm() {
  local rc=1
  if wait_file /dev/ttyACM0 10 && wait_file /tmp/ttySVC 5; then
    stty -F /dev/ttyACM0 raw -echo clocal
    stty -F /tmp/ttySVC raw -echo
    head -c "$SVC_BYTES" /tmp/h2d >/tmp/svc-h2d
    head -c "$SVC_BYTES" /tmp/d2h >/tmp/svc-d2h
    rm -f /tmp/rx
    timeout 60 head -c "$SVC_BYTES" /tmp/ttySVC >/tmp/rx &
    sleep 0.5
    cat /tmp/svc-h2d >/dev/ttyACM0
    wait $!
    cmp -s /tmp/svc-h2d /tmp/rx && rc=0
    rm -f /tmp/rx
    timeout 60 head -c "$SVC_BYTES" /dev/ttyACM0 >/tmp/rx &
    sleep 0.5
    cat /tmp/svc-d2h >/tmp/ttySVC
    wait $!
    cmp -s /tmp/svc-d2h /tmp/rx || rc=1
  fi
  check services "$1: $SVC_BYTES random bytes each way byte-exact through the acm service process" $rc \
    "$(wc -c </tmp/rx 2>/dev/null || echo 0) bytes back"
}
svc_acm "first service"
if [ $m = 0 ]; then
  dd if=/dev/urandom of=/tmp/svc.data bs=65536 count=16 2>/dev/null
  dd if=/tmp/svc.data of=/dev/sda bs=65536 conv=fsync 2>/dev/null && sync
  head -c 1048576 /tmp/svc.img | cmp -s - /tmp/svc.data
  check services "1 MiB written through the msc service process is in its image" $? \
    "sha256 $(sha256sum /tmp/svc.data | cut -c1-12)"
fi
kill -KILL "$ACM_SVC"
gone=1
for i in $(seq 1 50); do
  [ -e /dev/ttyACM0 ] || [ -e /dev/sda ] || { gone=0; break; }
  sleep 0.2
done
check services "kill -9 of the acm service detaches the host from the device" $gone \
  "ttyACM0 $([ -e /dev/ttyACM0 ] && echo present || echo gone), sda $([ -e /dev/sda ] && echo present || echo gone)"
usbip_detach_all
usbfn service acm,pty=/tmp/ttySVC --runtime-dir /run/usbfn >/tmp/svc-acm2.log 2>&1 &
ACM_SVC=$!
usbip_attach_local 1-1 20
wait_file /dev/ttyACM0 10 && wait_file /dev/sda 20
check services "a restarted acm service: the device enumerates again (cdc_acm and usb-storage)" $? \
  "$(grep -c 'opened' /tmp/svc-acm2.log) open(s) by the new service"
svc_acm "restarted service"
usbip_detach_all
kill -INT "$ACM_SVC" "$MSC_SVC" 2>/dev/null
kill -INT "$DAEMON_PID" 2>/dev/null
wait "$DAEMON_PID" 2>/dev/null

echo "acm-hid: $fails failed check(s)"
if [ "$fails" -gt 0 ]; then
  tail -20 /tmp/svc-daemon.log
  tail -20 /tmp/svc-acm.log
  tail -20 /tmp/svc-msc.log
  tail -20 /tmp/acm.log
  tail -20 /tmp/hid.log
  tail -20 /tmp/comp.log
  dmesg | tail -20
fi
conformance_exit "$fails"
