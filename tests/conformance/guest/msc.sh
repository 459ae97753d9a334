#!/bin/sh
# Guest /init: usbfn's mass-storage function (`usbfn serve --function msc,image=...`) judged by
# the kernel's usb-storage + sd_mod over USB/IP through vhci-hcd, then the kernel's own
# usb_f_mass_storage on the same image exported through usbip-vudc, for the benchmark.
#
# Check lines (judged by tests/conformance/msc-check.sh: any FAIL, or a missing check, fails):
#   conformance msc: PASS|FAIL <what> (<figures>)
# Benchmark lines:
#   msc bench <usbfn|kernel-vudc> <write|read> <MB/s> MB/s (<bytes> bytes, <s> s)
#
# Knobs (run-guest.sh --env KEY=VALUE):
#   MSC_MIB     MiB written and read back (default 64), in 1 MiB blocks with O_DIRECT
#   MSC_KERNEL  1 (default): also measure the kernel's usb_f_mass_storage on usbip-vudc
. /lib/conformance/lib.sh
conformance_setup

MSC_MIB=${MSC_MIB:-64}
MSC_KERNEL=${MSC_KERNEL:-1}
IMG=/tmp/disk.img
IMG_MIB=$((MSC_MIB + 16))
t0=$(uptime_s)

check() { # OK WHAT FIGURES
  if [ "$1" = 0 ]; then
    echo "conformance msc: PASS $2 ($3)"
  else
    echo "conformance msc: FAIL $2 ($3)"
  fi
}
elapsed_since() { awk -v a="$1" -v b="$(uptime_s)" 'BEGIN { printf "%.2f", b - a }'; }

dmesg -n 1
load_modules configfs usb-common usbcore udc-core usbip-core vhci-hcd libcomposite \
  usbip-vudc usb_f_mass_storage scsi_mod sd_mod vfat nls_cp437 nls_ascii nls_utf8 ||
  conformance_exit 10
load_module usb-storage delay_use=0 || conformance_exit 10

# wait_disk SECONDS: the name of the first sd* block device (usb-storage found a disk).
wait_disk() {
  local i=0 limit=$((${1:-10} * 10)) d
  while [ $i -lt $limit ]; do
    for d in /sys/block/sd*; do
      if [ -e "$d" ] && [ "$(cat "$d/size")" != 0 ] && [ -b "/dev/${d##*/}" ]; then
        echo "${d##*/}"
        return 0
      fi
    done
    sleep 0.1
    i=$((i + 1))
  done
  return 1
}
wait_no_disk() {
  local i=0
  while [ $i -lt 50 ] && ls /sys/block/sd* >/dev/null 2>&1; do
    sleep 0.1
    i=$((i + 1))
  done
}
usbfn_start() { # OPTIONS
  usbfn serve --function "msc,image=$IMG$1" >/tmp/usbfn-serve.log 2>&1 &
  USBFN_PID=$!
}
usbfn_stop() {
  usbip_detach_all
  [ -n "${USBFN_PID:-}" ] && kill -INT "$USBFN_PID" 2>/dev/null && wait "$USBFN_PID"
  USBFN_PID=""
  wait_no_disk
}
# dd_timed LABEL DIRECTION dd-args...: runs dd, prints the bench line; returns dd's status.
dd_timed() {
  local label=$1 dir=$2 out rc ts secs
  shift 2
  ts=$(uptime_s)
  out=$(dd "$@" 2>&1)
  rc=$?
  secs=$(elapsed_since "$ts")
  echo "$out" | tail -1
  awk -v s="$secs" -v b=$((MSC_MIB * 1048576)) -v l="$label" -v d="$dir" 'BEGIN {
    printf "msc bench %s %s %.2f MB/s (%d bytes, %.2f s)\n", l, d, (s > 0 ? b / s / 1e6 : 0), b, s }'
  return $rc
}
# bench LABEL DEV: 64 MiB written with O_DIRECT, caches dropped, read back with O_DIRECT.
bench() {
  local label=$1 dev=$2 rc
  dd_timed "$label" write if=/tmp/rand of="/dev/$dev" bs=1M count="$MSC_MIB" oflag=direct
  rc=$?
  echo 3 >/proc/sys/vm/drop_caches
  dd_timed "$label" read if="/dev/$dev" of=/tmp/back bs=1M count="$MSC_MIB" iflag=direct
  return $((rc + $?))
}

say "making a $IMG_MIB MiB image and $MSC_MIB MiB of random data"
dd if=/dev/zero of=$IMG bs=1M count=$IMG_MIB 2>/dev/null
dd if=/dev/urandom of=/tmp/rand bs=1M count="$MSC_MIB" 2>/dev/null
rand_sum=$(sha256sum /tmp/rand | cut -d' ' -f1)

# ---- usbfn: bind, size, 64 MiB byte-exact, the image holds the bytes --------------------
usbfn_start ""
usbip_attach_local 1-1 10 || { cat /tmp/usbfn-serve.log; conformance_exit 11; }
dev=$(wait_disk 20)
bound=$(ls -d /sys/bus/usb/drivers/usb-storage/*:* 2>/dev/null | head -1)
[ -n "$bound" ] && [ -n "$dev" ]
check $? "usb-storage binds" "interface ${bound##*/}, disk ${dev:-none}"
[ -n "$dev" ] || { dmesg | tail -30; cat /tmp/usbfn-serve.log; conformance_exit 12; }
size=$(($(cat "/sys/block/$dev/size") * 512))
[ "$size" = $((IMG_MIB * 1048576)) ]
check $? "disk size" "/dev/$dev $size bytes, image $((IMG_MIB * 1048576)) bytes"

bench usbfn "$dev"
rc=$?
back_sum=$(sha256sum /tmp/back | cut -d' ' -f1)
[ "$rc" = 0 ] && [ "$back_sum" = "$rand_sum" ]
check $? "$MSC_MIB MiB random write + read back after drop_caches" "dd status $rc, sha256 ${back_sum%${back_sum#????????????}}"
img_sum=$(dd if=$IMG bs=1M count="$MSC_MIB" 2>/dev/null | sha256sum | cut -d' ' -f1)
[ "$img_sum" = "$rand_sum" ]
check $? "device-side image holds the same bytes" "sha256 ${img_sum%${img_sum#????????????}}"
rm -f /tmp/back

# ---- FAT: mkfs, files, unmount, mount again ----------------------------------------------
mkdir -p /mnt/msc
fat=1
if mkdosfs "/dev/$dev" >/tmp/mkfs.log 2>&1 && mount -t vfat "/dev/$dev" /mnt/msc; then
  dd if=/tmp/rand of=/mnt/msc/random.bin bs=1M count=3 2>/dev/null
  echo "hello from the guest" >/mnt/msc/hello.txt
  mkdir /mnt/msc/dir && cp /tmp/mkfs.log /mnt/msc/dir/mkfs.log
  umount /mnt/msc
  echo 3 >/proc/sys/vm/drop_caches
  if mount -t vfat "/dev/$dev" /mnt/msc; then
    dd if=/tmp/rand bs=1M count=3 2>/dev/null | cmp - /mnt/msc/random.bin &&
      [ "$(cat /mnt/msc/hello.txt)" = "hello from the guest" ] &&
      cmp /tmp/mkfs.log /mnt/msc/dir/mkfs.log && fat=0
    files=$(ls -R /mnt/msc | wc -l)
    umount /mnt/msc
  fi
fi
check $fat "FAT file system survives unmount/remount" "mkdosfs (busybox mkfs.vfat), 3 files, ${files:-0} ls lines"

# ---- crash test: write, sync, SIGKILL; every block written before sync is in the image ----
dd if=/dev/urandom of=/tmp/crash bs=1M count=8 2>/dev/null
dd if=/tmp/crash of="/dev/$dev" bs=64k seek=256 conv=notrunc 2>/dev/null
sync
kill -KILL "$USBFN_PID"
wait "$USBFN_PID" 2>/dev/null
USBFN_PID=""
dd if=$IMG bs=1M skip=16 count=8 2>/dev/null | cmp -s - /tmp/crash
check $? "crash test: 8 MiB written + sync, usbfn SIGKILLed, all in the image" "offset 16 MiB"
usbip_detach_all
wait_no_disk

# ---- ro: WP reported, writes refused with DATA PROTECT, the image unchanged ---------------
before=$(dd if=$IMG bs=1M count=1 2>/dev/null | sha256sum | cut -d' ' -f1)
usbfn_start ",ro"
usbip_attach_local 1-1 10 || { cat /tmp/usbfn-serve.log; conformance_exit 11; }
dev=$(wait_disk 20)
# sd_mod reads WP from MODE SENSE and marks the disk read-only, so the block layer refuses
# the write before a WRITE reaches the device (the DATA PROTECT answer itself is covered by
# the unit tests: functions::msc::tests::read_only_answers_writes_with_data_protect).
ro=$(cat "/sys/block/$dev/ro" 2>/dev/null)
blockdev --setrw "/dev/$dev" 2>/dev/null
err=$(dd if=/dev/zero of="/dev/$dev" bs=4k count=1 oflag=direct 2>&1)
wrc=$?
after=$(dd if=$IMG bs=1M count=1 2>/dev/null | sha256sum | cut -d' ' -f1)
[ "$ro" = 1 ] && [ "$wrc" != 0 ] && [ "$before" = "$after" ]
check $? "ro refuses writes" "sysfs ro=$ro, dd status $wrc: $(echo "$err" | head -1), image unchanged: $([ "$before" = "$after" ] && echo yes || echo no)"
usbfn_stop
say "usbfn part took $(elapsed_since "$t0") s"

# ---- the kernel's usb_f_mass_storage on usbip-vudc, same image, same dd -------------------
if [ "$MSC_KERNEL" = 1 ]; then
  g=$GADGET_ROOT/ms
  mkdir "$g" && echo 0x1d6b >"$g/idVendor" && echo 0x0104 >"$g/idProduct"
  mkdir "$g/strings/0x409" "$g/configs/c.1" "$g/functions/mass_storage.0"
  echo 0123456789 >"$g/strings/0x409/serialnumber"
  echo $IMG >"$g/functions/mass_storage.0/lun.0/file"
  ln -s "$g/functions/mass_storage.0" "$g/configs/c.1/"
  usbipd -e -D -P/run/usbipd.pid && sleep 0.3
  echo usbip-vudc.0 >"$g/UDC"
  if usbip_attach_local usbip-vudc.0 10 && kdev=$(wait_disk 20); then
    bench kernel-vudc "$kdev"
    rc=$?
    back_sum=$(sha256sum /tmp/back | cut -d' ' -f1)
    [ "$rc" = 0 ] && [ "$back_sum" = "$rand_sum" ]
    check $? "kernel usb_f_mass_storage reference run byte-exact" "dd status $rc"
  else
    check 1 "kernel usb_f_mass_storage reference run" "no disk"
  fi
  usbip_detach_all
  echo "" >"$g/UDC" 2>/dev/null
  [ -f /run/usbipd.pid ] && kill "$(cat /run/usbipd.pid)" 2>/dev/null
fi
say "msc stage took $(elapsed_since "$t0") s"
conformance_exit 0
