# Sourced by guest/usbredir.sh (UR_EXTRA_CHECKS) when tests/conformance/usbredir.sh runs the
# class functions over usbredir (UR_CLASSES=1): usbfn on the machine outside this guest serves
# acm, msc and hid-keyboard, QEMU attaches them with usb-redir on EHCI ports 3, 4 and 5 (high
# speed), and QEMU's own emulated usb-storage sits on EHCI port 6 for the MSC benchmark.
# The device sides are outside the guest: the host script echoes the ACM pty back, made the
# MSC image (its sha256 in UR_MSC_SHA), and types into the keyboard FIFO when this script
# says "ur-classes: ... reading" (a report every 0.4 s). Check lines go through guest/usbredir.sh's check(); the
# host script checks what reached the device side (line coding, written data, LED report).
# Knobs: UR_ACM_BYTES (1048576), UR_MSC_MIB (8, the image size), UR_MSC_RUNS (3).

UR_ACM_BYTES=${UR_ACM_BYTES:-1048576}
UR_MSC_MIB=${UR_MSC_MIB:-8}
UR_MSC_RUNS=${UR_MSC_RUNS:-3}
tc=$(uptime_s)
load_modules cdc-acm usbhid hid-generic evdev usb-storage sd_mod || incomplete=$((incomplete + 1))

wait_for() { # SECONDS COMMAND...: until COMMAND succeeds (guest uptime seconds)
  local until
  until=$(awk -v a="$(uptime_s)" -v b="$1" 'BEGIN { printf "%d", a + b }')
  shift
  while :; do
    "$@" && return 0
    [ "$(cut -d. -f1 /proc/uptime)" -lt "$until" ] || return 1
    sleep 0.2
  done
}
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
mbps() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.2f", (s > 0 ? n / s / 1e6 : 0) }'; }
usb_of() { # BLOCK-OR-CLASS-DEVICE sysfs path: the idVendor:idProduct of its USB device
  local d
  d=$(readlink -f "$1")
  while [ "$d" != / ]; do
    [ -f "$d/idVendor" ] && { echo "$(cat "$d/idVendor"):$(cat "$d/idProduct")"; return 0; }
    d=${d%/*}
  done
  return 1
}
# disk usbfn|qemu: the sd device of usbfn's msc (1209:0001) or of QEMU's usb-storage (46f4:0001)
disk() {
  local b id
  for b in /sys/block/sd*; do
    [ -e "$b" ] || continue
    id=$(usb_of "$b/device") || continue
    case "$1:$id" in usbfn:1209:0001 | qemu:46f4:0001) echo "/dev/${b##*/}"; return 0 ;; esac
  done
  return 1
}

# ---- ACM: cdc-acm binds; 1 MiB out through the device-side pty (echoed back), byte-exact ----
if wait_for 30 test -e /dev/ttyACM0; then
  check usbredir-acm-bind 0 "(/dev/ttyACM0, cdc_acm: $(ls /sys/bus/usb/drivers/cdc_acm 2>/dev/null | grep -c :) interface(s), $(usb_of /sys/class/tty/ttyACM0/device))"
  stty -F /dev/ttyACM0 raw -echo clocal
  stty -F /dev/ttyACM0 57600
  stty -F /dev/ttyACM0 115200
  dd if=/dev/urandom of=/tmp/acm.tx bs=65536 count=$((UR_ACM_BYTES / 65536)) 2>/dev/null
  timeout 120 head -c "$UR_ACM_BYTES" /dev/ttyACM0 >/tmp/acm.rx &
  rx=$!
  sleep 0.5
  t1=$(uptime_s)
  cat /tmp/acm.tx >/dev/ttyACM0
  wait "$rx"
  s=$(secs "$t1" "$(uptime_s)")
  cmp -s /tmp/acm.tx /tmp/acm.rx
  check usbredir-acm-echo $? "($(wc -c </tmp/acm.rx) of $UR_ACM_BYTES random bytes back through the device-side pty byte-exact, $s s, $(mbps $((2 * UR_ACM_BYTES)) "$s") MB/s both ways)"
else
  check usbredir-acm-bind 1 "(no /dev/ttyACM0 after 30 s)"
fi

# ---- MSC: usb-storage binds; the image reads back byte-exact; a write lands in the image ----
if wait_for 40 disk usbfn >/dev/null && wait_for 10 disk qemu >/dev/null; then
  d=$(disk usbfn)
  q=$(disk qemu)
  size=$(cat "/sys/block/${d#/dev/}/size")
  [ "$size" = $((UR_MSC_MIB * 2048)) ]
  check usbredir-msc-bind $? "($d, usb-storage, $size sectors; QEMU usb-storage $q)"
  sum=$(dd if="$d" bs=1048576 count="$UR_MSC_MIB" 2>/dev/null | sha256sum | cut -c1-64)
  [ "$sum" = "${UR_MSC_SHA:-}" ]
  check usbredir-msc-read $? "($UR_MSC_MIB MiB image read, sha256 ${sum%"${sum#????????????}"} vs the host's ${UR_MSC_SHA%"${UR_MSC_SHA#????????????}"})"
  dd if=/dev/urandom of=/tmp/msc.w bs=1048576 count=1 2>/dev/null
  dd if=/tmp/msc.w of="$d" bs=1048576 seek=2 conv=fsync 2>/dev/null && sync
  echo 3 >/proc/sys/vm/drop_caches
  dd if="$d" bs=1048576 skip=2 count=1 2>/dev/null | cmp -s - /tmp/msc.w
  check usbredir-msc-write $? "(1 MiB written at 2 MiB and read back after dropping the page cache)"
  say "ur-classes: msc wrote $(sha256sum </tmp/msc.w | cut -c1-64) at 2 MiB"
  # The benchmark: dd of the whole disk, usbfn's msc over usbredir and QEMU's usb-storage,
  # both on this EHCI, alternating, the page cache dropped before each run.
  n=1
  while [ "$n" -le "$UR_MSC_RUNS" ]; do
    for which in usbfn qemu; do
      dev=$(disk "$which")
      echo 3 >/proc/sys/vm/drop_caches
      t1=$(uptime_s)
      dd if="$dev" of=/dev/null bs=1048576 count="$UR_MSC_MIB" 2>/dev/null
      s=$(secs "$t1" "$(uptime_s)")
      echo "bench msc $which read run $n $((UR_MSC_MIB << 20)) $s $(mbps $((UR_MSC_MIB << 20)) "$s")"
      t1=$(uptime_s)
      dd if=/tmp/msc.w of="$dev" bs=1048576 seek=4 conv=fsync 2>/dev/null
      dd if=/tmp/msc.w of="$dev" bs=1048576 seek=5 conv=fsync 2>/dev/null
      s=$(secs "$t1" "$(uptime_s)")
      echo "bench msc $which write run $n 2097152 $s $(mbps 2097152 "$s")"
    done
    n=$((n + 1))
  done
else
  check usbredir-msc-bind 1 "(usbfn disk: $(disk usbfn || echo none), QEMU disk: $(disk qemu || echo none) after 50 s)"
fi

# ---- HID keyboard: usbhid/hid-generic bind; typed keys and a raw report arrive; LED out ----
ev=""
find_ev() {
  local e
  for e in /sys/class/input/event*; do
    grep -q usbfn "$e/device/name" 2>/dev/null && ev=/dev/input/${e##*/} && return 0
  done
  return 1
}
if wait_for 30 test -e /dev/hidraw0 && wait_for 10 find_ev && wait_for 5 test -e "$ev"; then
  check usbredir-hid-bind 0 "(hid-generic: $(ls /sys/bus/hid/drivers/hid-generic 2>/dev/null | grep -c :) device(s), /dev/hidraw0, $ev)"
  timeout 16 cat "$ev" >/tmp/ev &
  rx=$!
  sleep 0.3
  say "ur-classes: hid events reading"
  wait "$rx"
  # struct input_event on x86_64: 16 bytes of time, u16 type, u16 code, s32 value.
  got=$(hexdump -v -e '6/4 "%08x " "\n"' /tmp/ev | awk '
    $5 == "00040004" { scan = substr($6, 7, 2) }
    substr($5, 5, 4) == "0001" && $6 == "00000001" { printf "0x%s ", scan }
    substr($5, 5, 4) == "0001" && $6 == "00000000" { rel++ }
    END { printf "releases %d", rel }')
  [ "$got" = "0x0b 0x08 0x0f 0x0f 0x12 releases 5" ]
  check usbredir-hid-type $? "(h e l l o typed a report each 0.4 s on the device side: $got)"
  timeout 10 head -c 16 /dev/hidraw0 >/tmp/raw &
  rx=$!
  sleep 0.3
  say "ur-classes: hidraw reading"
  wait "$rx"
  raw=$(hexdump -v -e '16/1 "%02x"' /tmp/raw)
  [ "$raw" = "010005060708090a0000000000000000" ]
  check usbredir-hid-report $? "($raw)"
  # An output report (report number 0, then the LED byte: Caps Lock); the host checks it.
  printf '\000\002' >/dev/hidraw0
else
  check usbredir-hid-bind 1 "(hidraw0: $(ls /dev/hidraw* 2>/dev/null | tr '\n' ' '), event device: ${ev:-none})"
fi
say "usbredir classes took $(elapsed_since "$tc") s"
