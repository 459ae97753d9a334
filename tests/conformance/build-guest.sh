#!/usr/bin/env bash
# Prepares everything the Linux-kernel conformance guest needs, cached in build/conformance/:
#   - Debian packages on the host (only the missing ones): qemu-system-x86, busybox-static,
#     usbip, cpio, kmod, alsa-utils
#   - the Debian 6.1 kernel image (the package linux-image-amd64 depends on), unpacked
#   - a base initramfs tree (busybox, usbip/usbipd + libraries, usb.ids, the USB modules and
#     their dependencies, the usbtest-driver binary, ALSA's aplay/arecord with libasound and
#     /usr/share/alsa, /lib/conformance/lib.sh) and its
#     compressed cpio archive base.cpio.gz, which run-guest.sh extends with a payload.
#
# Usage: tests/conformance/build-guest.sh
# Environment:
#   CONFORMANCE_BUILD_DIR   cache directory (default: <repo>/build/conformance)
#   CONFORMANCE_KERNEL_PKG  kernel image package (default: what linux-image-amd64 depends on)
#   USBTEST_DRIVER          prebuilt usbtest-driver binary (default: cargo build --release)
#   CARGO_TARGET_DIR        honoured when building usbtest-driver
# Idempotent: the kernel is downloaded once; the base tree is rebuilt each run (a few seconds).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
build="${CONFORMANCE_BUILD_DIR:-$repo/build/conformance}"

# Modules the guest scripts load; their dependencies are added automatically.
MODULES=(configfs usb-common usbcore udc-core usbip-core vhci-hcd usbtest
  dummy_hcd libcomposite usb_f_ss_lb usb_f_fs usbip-vudc
  # mass storage (guest/msc.sh): the host's class driver and disk, FAT, the kernel's function
  usb-storage sd_mod vfat nls_cp437 nls_ascii nls_utf8 usb_f_mass_storage
  # audio (guest/audio.sh)
  snd-usb-audio
  # the host controllers QEMU emulates for usbredir (tests/conformance/usbredir.sh)
  ehci-hcd ehci-pci xhci-hcd xhci-pci
  # network adapters (guest/net.sh)
  cdc_ncm cdc_ether
  # serial port and HID (guest/acm-hid.sh), and the kernel's usb_f_acm for the benchmark
  cdc-acm usbhid hid-generic evdev usb_f_acm
  # QEMU's default NIC, for USB/IP from usbfn outside the guest (guest/usbredir.sh's bench)
  e1000)

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'build-guest: error: %s\n' "$*" >&2; exit 1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# --- 1. host packages -------------------------------------------------------------------
need=()
for pkg in qemu-system-x86 busybox-static usbip cpio kmod alsa-utils python3-minimal libpython3.11-stdlib; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
apt_updated=0
if [ ${#need[@]} -gt 0 ]; then
  log "installing Debian packages: ${need[*]}"
  $SUDO apt-get update -qq
  apt_updated=1
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
for tool in qemu-system-x86_64 busybox usbip usbipd cpio gzip modinfo ldd aplay arecord; do
  command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || [ -x "/sbin/$tool" ] ||
    die "$tool not found after installing packages"
done
PATH="$PATH:/usr/sbin:/sbin"

# --- 2. kernel image ----------------------------------------------------------------------
mkdir -p "$build"
kpkg="${CONFORMANCE_KERNEL_PKG:-}"
if [ -z "$kpkg" ]; then
  kpkg="$(apt-cache depends linux-image-amd64 2>/dev/null |
    awk '/Depends: linux-image-[0-9]/ { print $2; exit }')"
  if [ -z "$kpkg" ] && [ "$apt_updated" -eq 0 ]; then
    $SUDO apt-get update -qq
    kpkg="$(apt-cache depends linux-image-amd64 2>/dev/null |
      awk '/Depends: linux-image-[0-9]/ { print $2; exit }')"
  fi
  [ -n "$kpkg" ] || die "cannot find the kernel package linux-image-amd64 depends on"
fi
kdir="$build/kernel/$kpkg"
if [ ! -f "$kdir/.unpacked" ]; then
  log "downloading $kpkg"
  rm -rf "$kdir" "$build/debs"
  mkdir -p "$build/debs" "$kdir"
  # Downloading as root into a directory _apt cannot write to is fine; skip the sandbox
  # warning by not switching users.
  (cd "$build/debs" && apt-get -q -o APT::Sandbox::User=root download "$kpkg")
  dpkg-deb -x "$build/debs/$kpkg"_*.deb "$kdir"
  rm -rf "$build/debs"
  touch "$kdir/.unpacked"
fi
kver="$(find "$kdir/lib/modules" -mindepth 1 -maxdepth 1 -printf '%f\n' | head -n 1)"
[ -n "$kver" ] || die "no lib/modules/<version> in $kdir"
cp -f "$kdir/boot/vmlinuz-$kver" "$build/vmlinuz"
echo "$kver" >"$build/kernel-version"
log "kernel $kver ($kpkg)"

# --- 3. usbtest-driver -----------------------------------------------------------------------
driver="${USBTEST_DRIVER:-}"
if [ -z "$driver" ]; then
  command -v cargo >/dev/null 2>&1 || die "cargo not found (or set USBTEST_DRIVER=/path/to/bin)"
  log "building usbtest-driver (release)"
  (cd "$repo" && cargo build --release -q -p usbtest-driver)
  driver="${CARGO_TARGET_DIR:-$repo/target}/release/usbtest-driver"
  case "$driver" in /*) ;; *) driver="$repo/$driver" ;; esac
fi
[ -x "$driver" ] || die "usbtest-driver binary not found at $driver"

# --- 4. base tree -------------------------------------------------------------------------
base="$build/base"
log "assembling base tree in $base"
rm -rf "$base"
mkdir -p "$base"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,usr/share/misc,lib/conformance}
mkdir -p "$base"/{dev,proc,sys,tmp,run,var/run,etc,root,mnt}

# busybox and its applet links, made here so /bin/sh exists before /proc is mounted
cp /bin/busybox "$base/bin/busybox"
busybox --list-full | while read -r applet; do
  [ -e "$base/$applet" ] || ln -s /bin/busybox "$base/$applet"
done

# copy_with_libs SRC DEST: copies a binary to DEST (inside $base) plus every library ldd lists
copy_with_libs() {
  local src="$1" dest="$2" lib
  mkdir -p "$(dirname "$base/$dest")"
  cp -L "$src" "$base/$dest"
  chmod 755 "$base/$dest"
  # ldd lines: "libx.so => /path (0x..)" or "/lib64/ld-linux-x86-64.so.2 (0x..)"
  for lib in $(ldd "$src" 2>/dev/null | awk '/=> \// { print $3 } /^\t\// { print $1 }'); do
    if [ ! -e "$base$lib" ]; then
      mkdir -p "$(dirname "$base$lib")"
      cp -L "$lib" "$base$lib"
    fi
  done
}
copy_with_libs /usr/sbin/usbip usr/sbin/usbip
copy_with_libs /usr/sbin/usbipd usr/sbin/usbipd
copy_with_libs "$driver" usr/local/bin/usbtest-driver
cp -L /usr/share/misc/usb.ids "$base/usr/share/misc/usb.ids"
# ALSA (the audio function's checks): arecord is aplay under another name; libasound reads
# its configuration from /usr/share/alsa.
copy_with_libs /usr/bin/aplay usr/bin/aplay
ln -s aplay "$base/usr/bin/arecord"
mkdir -p "$base/usr/share"
cp -a /usr/share/alsa "$base/usr/share/alsa"
# Python 3 for the example service (examples/python, standard library only), run by the
# FunctionFS suite against `usbfn daemon --udc`: Debian's interpreter and the library
# modules importing the examples and starting an event loop loads, not the whole library.
py=/usr/bin/python3.11
[ -x "$py" ] || die "$py not found after installing python3-minimal"
copy_with_libs "$py" usr/bin/python3
"$py" - "$repo/examples/python" <<'PY' | while read -r f; do
import asyncio, sys
sys.path.insert(0, sys.argv[1])
import gadget_zero_service, loopback_service  # noqa: F401
asyncio.new_event_loop().close()
for m in list(sys.modules.values()):
    f = getattr(m, "__file__", None) or ""
    if f.startswith("/usr/lib/python3.11/"):
        print(f)
PY
  mkdir -p "$(dirname "$base$f")"
  case "$f" in
    *.so) copy_with_libs "$f" "${f#/}" ;;
    *) cp -L "$f" "$base$f" ;;
  esac
done
[ -e "$base/usr/lib/python3.11/os.py" ] || die "the Python library was not copied"
mkdir -p "$base/usr/local/share/usbfn"
cp -r "$repo/examples/python" "$base/usr/local/share/usbfn/python"
rm -rf "$base/usr/local/share/usbfn/python/__pycache__"
# the C library wants these to resolve "localhost" and user names
printf '127.0.0.1 localhost\n::1 localhost\n' >"$base/etc/hosts"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$base/etc/passwd"
printf 'root:x:0:\n' >"$base/etc/group"
printf 'hosts: files\n' >"$base/etc/nsswitch.conf"

# modules: resolve dependencies (modinfo -F depends), copy, write the load table
moddir="$kdir/lib/modules/$kver"
declare -A modpath=() moddeps=() seen=()
while IFS= read -r -d '' ko; do
  name="$(basename "$ko")"; name="${name%%.ko*}"
  modpath[${name//-/_}]="$ko"
done < <(find "$moddir/kernel" -name '*.ko*' -print0)
order=()
resolve() { # depth-first: dependencies before the module
  local key="${1//-/_}" dep
  [ -n "${seen[$key]:-}" ] && return 0
  seen[$key]=1
  local ko="${modpath[$key]:-}"
  if [ -z "$ko" ]; then
    grep -q "/${1}.ko\$\|/${key}.ko\$" "$moddir/modules.builtin" 2>/dev/null && return 0
    die "module $1 is neither a module nor built into $kver"
  fi
  local deps
  deps="$(modinfo -F depends "$ko" | tr ',' ' ')"
  moddeps[$key]="$deps"
  for dep in $deps; do resolve "$dep"; done
  order+=("$key")
}
for m in "${MODULES[@]}" ${CONFORMANCE_EXTRA_MODULES:-}; do resolve "$m"; done
gmoddir="lib/modules/$kver"
: >"$base/lib/conformance/modules.dep"
for key in "${order[@]}"; do
  ko="${modpath[$key]}"
  rel="${ko#"$moddir"/}"
  mkdir -p "$base/$gmoddir/$(dirname "$rel")"
  cp "$ko" "$base/$gmoddir/$rel"
  deps="${moddeps[$key]}"
  printf '%s /%s/%s %s\n' "$key" "$gmoddir" "$rel" "${deps//-/_}" >>"$base/lib/conformance/modules.dep"
done
log "modules (load order): ${order[*]}"

cp "$here/guest/lib.sh" "$base/lib/conformance/lib.sh"
echo "$kver" >"$base/lib/conformance/kernel-version"
cat >"$base/init" <<'EOF'
#!/bin/sh
echo "conformance: no payload /init was packed (use tests/conformance/run-guest.sh)"
echo "CONFORMANCE-EXIT=125"
poweroff -f
EOF
chmod 755 "$base/init"

# --- 5. base archive ----------------------------------------------------------------------
(cd "$base" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -1 >"$build/base.cpio.gz.tmp")
mv "$build/base.cpio.gz.tmp" "$build/base.cpio.gz"
log "ready: $build/vmlinuz, $build/base.cpio.gz ($(du -h "$build/base.cpio.gz" | cut -f1))"
