#!/usr/bin/env bash
# Boots the conformance guest with a payload and returns the guest's verdict.
#
# Usage: tests/conformance/run-guest.sh [options] <init-script | payload-dir> [FILE[:GUEST_PATH]]...
#
#   init-script    becomes /init (it should source /lib/conformance/lib.sh and end with
#                  conformance_exit N, which prints CONFORMANCE-EXIT=N and runs poweroff -f)
#   payload-dir    copied onto the root; must contain an executable ./init
#   FILE           extra file, by default put at /usr/local/bin/<name>; a dynamically linked
#                  executable brings the libraries ldd lists (e.g. target/release/usbfn)
#
# Options:
#   --timeout SECONDS   kill the guest after this long (default 900); exit status 124
#   --log FILE          also write the console to FILE (default build/conformance/last-run.log)
#   --env KEY=VALUE     exported to the payload through /conformance.env (repeatable)
#   --append ARGS       extra kernel command line
#   --quiet             do not stream the console to stdout
#   --qemu ARGS         extra QEMU arguments, split on spaces (repeatable), e.g. the
#                       `-device qemu-xhci -chardev socket,... -device usb-redir,...` that
#                       `usbfn serve --usbredir` prints
#
# Exit status: N from the last CONFORMANCE-EXIT=N line; 124 on timeout; 125 when the guest
# stopped without a marker; 126 on a setup error. Needs build-guest.sh to have run.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
build="${CONFORMANCE_BUILD_DIR:-$repo/build/conformance}"

die() { printf 'run-guest: error: %s\n' "$*" >&2; exit 126; }

timeout_s=900
logfile="$build/last-run.log"
append=""
quiet=0
envs=()
qemu_extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --timeout) timeout_s="$2"; shift 2 ;;
    --log) logfile="$2"; shift 2 ;;
    --env) envs+=("$2"); shift 2 ;;
    --append) append="$2"; shift 2 ;;
    --quiet) quiet=1; shift ;;
    --qemu) read -r -a more <<<"$2"; qemu_extra+=("${more[@]}"); shift 2 ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    --) shift; break ;;
    -*) die "unknown option $1" ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || die "usage: run-guest.sh [options] <init-script|payload-dir> [FILE[:GUEST_PATH]]..."
payload="$1"
shift

if [ ! -f "$build/vmlinuz" ] || [ ! -f "$build/base.cpio.gz" ]; then
  die "no guest in $build: run tests/conformance/build-guest.sh first"
fi
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not installed"

work="$(mktemp -d "${TMPDIR:-/tmp}/conformance-run.XXXXXX")"
trap 'rm -rf "$work"' EXIT
root="$work/root"
mkdir -p "$root/usr/local/bin"

if [ -d "$payload" ]; then
  cp -a "$payload/." "$root/"
  [ -x "$root/init" ] || die "payload directory $payload has no executable init"
elif [ -f "$payload" ]; then
  cp "$payload" "$root/init"
  chmod 755 "$root/init"
else
  die "payload $payload not found"
fi

# add_file SRC DEST: copies SRC to DEST in the payload; executables bring their libraries.
add_file() {
  local src="$1" dest="$2" lib
  [ -e "$src" ] || die "extra file $src not found"
  mkdir -p "$root$(dirname "$dest")"
  cp -L "$src" "$root$dest"
  if [ -x "$src" ] && ldd "$src" >/dev/null 2>&1; then
    for lib in $(ldd "$src" | awk '/=> \// { print $3 } /^\t\// { print $1 }'); do
      # The base tree already has the C library; adding it again is harmless.
      if [ ! -e "$root$lib" ]; then
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
      fi
    done
  fi
}
for spec in "$@"; do
  src="${spec%%:*}"
  if [ "$src" != "$spec" ]; then dest="${spec#*:}"; else dest="/usr/local/bin/$(basename "$src")"; fi
  case "$dest" in /*) ;; *) dest="/$dest" ;; esac
  add_file "$src" "$dest"
done

if [ ${#envs[@]} -gt 0 ]; then
  for kv in "${envs[@]}"; do
    key="${kv%%=*}"
    [[ "$key" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "--env $kv: bad variable name"
    printf "export %s='%s'\n" "$key" "$(printf '%s' "${kv#*=}" | sed "s/'/'\\\\''/g")"
  done >"$root/conformance.env"
fi

# The kernel unpacks concatenated archives in order; later files replace earlier ones.
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -1 >"$work/payload.cpio.gz")
cat "$build/base.cpio.gz" "$work/payload.cpio.gz" >"$work/initrd.gz"

mkdir -p "$(dirname "$logfile")"
: >"$logfile"
# Guest timings under TCG depend on how busy the host is: record it next to the results.
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
started=$(date +%s.%N)
set +e
# The console is line-buffered through tee; </dev/null keeps qemu off the caller's terminal.
if [ "$quiet" -eq 1 ]; then
  timeout -k 10 "$timeout_s" qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m 1024 \
    -nographic -no-reboot -kernel "$build/vmlinuz" -initrd "$work/initrd.gz" \
    -append "console=ttyS0 quiet panic=-1 $append" ${qemu_extra[@]+"${qemu_extra[@]}"} </dev/null >"$logfile" 2>&1
  qemu_rc=$?
else
  timeout -k 10 "$timeout_s" qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m 1024 \
    -nographic -no-reboot -kernel "$build/vmlinuz" -initrd "$work/initrd.gz" \
    -append "console=ttyS0 quiet panic=-1 $append" ${qemu_extra[@]+"${qemu_extra[@]}"} </dev/null 2>&1 | tee "$logfile"
  qemu_rc=${PIPESTATUS[0]}
fi
set -e
elapsed=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')

load_msg="run-guest: host load average $load_before before, $(cut -d' ' -f1-3 /proc/loadavg) after ($(nproc) cpus)"
printf '%s\n' "$load_msg" >&2
printf '\n%s\n' "$load_msg" >>"$logfile" # the console's last line has no newline
marker="$(tr -d '\r' <"$logfile" | sed -n 's/.*CONFORMANCE-EXIT=\([0-9][0-9]*\).*/\1/p' | tail -n 1)"
if [ "$qemu_rc" -eq 124 ] || [ "$qemu_rc" -eq 137 ]; then
  printf 'run-guest: timeout after %s s (log: %s)\n' "$timeout_s" "$logfile" >&2
  exit 124
fi
if [ -z "$marker" ]; then
  printf 'run-guest: guest stopped without CONFORMANCE-EXIT (qemu status %s, log: %s)\n' \
    "$qemu_rc" "$logfile" >&2
  exit 125
fi
printf 'run-guest: CONFORMANCE-EXIT=%s after %s s (log: %s)\n' "$marker" "$elapsed" "$logfile" >&2
[ "$marker" -le 255 ] || marker=255
exit "$marker"
