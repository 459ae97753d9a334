# Guest-side helpers for conformance init scripts (busybox ash). Installed as
# /lib/conformance/lib.sh in the base initramfs; a payload /init starts with
#
#   #!/bin/sh
#   . /lib/conformance/lib.sh
#   conformance_setup
#   ...
#   conformance_exit 0          # prints CONFORMANCE-EXIT=0 and powers off
#
# run-guest.sh returns the number after CONFORMANCE-EXIT= as its exit status.

CONFORMANCE_LIB=/lib/conformance
GADGET_ROOT=/sys/kernel/config/usb_gadget

say() { echo "conformance: $*"; }

# Seconds since boot, with hundredths.
uptime_s() { cut -d' ' -f1 /proc/uptime; }

# Mounts the pseudo file systems, brings up loopback, reads /conformance.env.
conformance_setup() {
  export PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin
  export HOME=/root
  mount -t proc proc /proc
  mount -t sysfs sysfs /sys
  mount -t devtmpfs devtmpfs /dev 2>/dev/null || true
  mkdir -p /dev/pts /dev/shm
  mount -t tmpfs tmpfs /tmp
  mount -t tmpfs tmpfs /run
  mkdir -p /var/run
  ip link set lo up
  # Keep usbtest's per-test dev_info lines off the console (quiet already does: level 4).
  if [ -f /conformance.env ]; then . /conformance.env; fi
  say "kernel $(uname -r), $(grep -c ^processor /proc/cpuinfo) cpus, up $(uptime_s) s"
}

# Prints the exit marker run-guest.sh looks for and powers the guest off.
conformance_exit() {
  sync
  echo
  echo "CONFORMANCE-EXIT=${1:-0}"
  poweroff -f
}

# load_module NAME [PARAM=VALUE...]: insmod NAME after its dependencies (from the table
# build-guest.sh wrote). Already loaded modules are left alone (parameters then ignored).
load_module() {
  local name path deps dep line
  name=$(echo "$1" | tr - _)
  shift
  if grep -q "^$name " /proc/modules; then return 0; fi
  line=$(grep "^$name " "$CONFORMANCE_LIB/modules.dep") || {
    say "unknown module $name"
    return 1
  }
  path=$(echo "$line" | cut -d' ' -f2)
  deps=$(echo "$line" | cut -d' ' -f3-)
  for dep in $deps; do load_module "$dep" || return 1; done
  insmod "$path" "$@" || { say "insmod $path $* failed"; return 1; }
  if [ "$name" = configfs ] && ! grep -q ' configfs ' /proc/mounts; then
    mount -t configfs none /sys/kernel/config
  fi
}

# load_modules NAME...: the recipe's order for every name given.
load_modules() {
  local m
  for m in "$@"; do load_module "$m" || return 1; done
}

unload_module() { rmmod "$(echo "$1" | tr - _)"; }

# ---- usbtest ---------------------------------------------------------------------------------

# wait_usbtest_bound SECONDS: waits for an interface bound to usbtest.
wait_usbtest_bound() {
  local i=0 limit=$((${1:-10} * 10)) intf
  while [ $i -lt $limit ]; do
    for intf in /sys/bus/usb/drivers/usbtest/*:*; do
      if [ -e "$intf" ]; then return 0; fi
    done
    sleep 0.1
    i=$((i + 1))
  done
  say "no interface bound to usbtest after ${1:-10} s"
  return 1
}

# set_usbtest_pattern 0|1: usbtest reads the parameter at every test.
set_usbtest_pattern() { echo "$1" >/sys/module/usbtest/parameters/pattern; }

# ---- gadget (configfs) -----------------------------------------------------------------------

# gadget_sourcesink NAME PATTERN [BULK_BUFLEN [BULK_QLEN]]: a "Gadget Zero" (0525:a4a0) with the kernel's
# SourceSink function, not yet bound. PATTERN must match usbtest's pattern= (the gadget checks
# OUT data); BULK_BUFLEN is the size of the gadget's bulk requests (default 4096), BULK_QLEN
# how many it keeps queued per endpoint (default 32; "" keeps the default). Function
# attributes can only be set before the function is linked into a configuration.
gadget_sourcesink() {
  local g="$GADGET_ROOT/$1"
  mkdir "$g" || return 1
  echo 0x0525 >"$g/idVendor"
  echo 0xa4a0 >"$g/idProduct"
  echo 0x0100 >"$g/bcdDevice"
  mkdir "$g/strings/0x409"
  echo usbfn-conformance >"$g/strings/0x409/serialnumber"
  echo Linux >"$g/strings/0x409/manufacturer"
  echo "Gadget Zero (SourceSink)" >"$g/strings/0x409/product"
  mkdir "$g/configs/c.1"
  mkdir "$g/configs/c.1/strings/0x409"
  echo "source/sink" >"$g/configs/c.1/strings/0x409/configuration"
  mkdir "$g/functions/SourceSink.0"
  echo "$2" >"$g/functions/SourceSink.0/pattern"
  if [ -n "${3:-}" ]; then echo "$3" >"$g/functions/SourceSink.0/bulk_buflen"; fi
  if [ -n "${4:-}" ]; then echo "$4" >"$g/functions/SourceSink.0/bulk_qlen"; fi
  ln -s "$g/functions/SourceSink.0" "$g/configs/c.1/"
}

# gadget_bind NAME UDC / gadget_unbind NAME
gadget_bind() { echo "$2" >"$GADGET_ROOT/$1/UDC"; }
gadget_unbind() { echo "" >"$GADGET_ROOT/$1/UDC" 2>/dev/null || true; }

# gadget_remove NAME: unbinds and removes a gadget made by gadget_sourcesink.
gadget_remove() {
  local g="$GADGET_ROOT/$1"
  [ -d "$g" ] || return 0
  gadget_unbind "$1"
  rm -f "$g/configs/c.1/SourceSink.0"
  rmdir "$g/configs/c.1/strings/0x409" "$g/configs/c.1" "$g/functions/SourceSink.0" \
    "$g/strings/0x409" "$g"
}

# ---- USB/IP ----------------------------------------------------------------------------------

# usbip_attach_local BUSID [SECONDS]: imports BUSID from 127.0.0.1:3240 (retrying while the
# server starts) through vhci-hcd.
usbip_attach_local() {
  local i=0 limit=$((${2:-10} * 5))
  while [ $i -lt $limit ]; do
    if usbip attach -r 127.0.0.1 -b "$1"; then return 0; fi
    sleep 0.2
    i=$((i + 1))
  done
  say "usbip attach -r 127.0.0.1 -b $1 failed"
  return 1
}

# usbip_detach_all: detaches every imported port.
usbip_detach_all() {
  local port
  for port in $(usbip port 2>/dev/null | sed -n 's/^Port \([0-9]*\):.*/\1/p'); do
    usbip detach -p "$port" >/dev/null 2>&1 || true
  done
}
