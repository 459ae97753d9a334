#!/usr/bin/env bash
# The Linux-kernel conformance test: builds the guest and the release `usbfn`, boots the
# guest once, runs usbtest against usbfn's Gadget Zero and against the kernel's own
# SourceSink with the same parameters, and requires the same result for every case.
#
# A third boot runs usbfn on a real device controller through Linux FunctionFS (dummy_hcd's
# dummy_udc.0) against the kernel's SourceSink on the same controller, plus the FunctionFS
# checks (errors, stale gadgets, the daemon with a kill -9'd service, a composite device):
# guest/ffs-vs-kernel.sh, judged by compare.py --prefix ffs. FFS_ROUNDS=0 skips it.
# Then the FunctionFS throughput benchmark (issue 14: usbtest 27/28, usbfn against the
# kernel's SourceSink, 3 rounds in one boot, ~1.5 min of guest time): guest/ffs-bench.sh,
# judged by ffs-bench-check.py (missing or failed results fail the suite; the ratio is
# reported against the 1.5x goal). It is a benchmark, not a check: off in the test command;
# FFS_BENCH=1 runs it.
#
# A fourth boot runs the audio function against snd-usb-audio with ALSA's arecord/aplay
# (guest/audio.sh, ~3 min of guest time); AUDIO_CONFORMANCE=0 skips it.
# A further stage runs usbfn outside the guest over usbredir (tests/conformance/usbredir.sh:
# QEMU's usb-redir on EHCI and xHCI, compared with the first boot's USB/IP results);
# USBREDIR_CONFORMANCE=0 skips it.
#
# Usage: tests/conformance/run.sh [--bench-markdown FILE] [run-guest.sh --env KEY=VALUE ...]
# USBFN_BIN=/path/to/usbfn skips building it.
# Exit status: 0 when every case matches the kernel's; 1 otherwise; 2+ on setup errors.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
build="${CONFORMANCE_BUILD_DIR:-$repo/build/conformance}"
bench_md=""
if [ "${1:-}" = "--bench-markdown" ]; then bench_md="$2"; shift 2; fi

t0=$(date +%s)
"$here/build-guest.sh"
usbfn="${USBFN_BIN:-}"
if [ -z "$usbfn" ]; then
  echo "==> building usbfn (release)"
  (cd "$repo" && cargo build --release -q --locked -p usbfn-cli)
  usbfn="${CARGO_TARGET_DIR:-$repo/target}/release/usbfn"
fi
log="$build/usbfn-vs-kernel.log"
echo "==> booting the guest: usbtest against usbfn and against the kernel's SourceSink"
rc=0
retried=0
"$here/run-guest.sh" --quiet --timeout 900 --log "$log" "$@" "$here/guest/usbfn-vs-kernel.sh" "$usbfn" || rc=$?
if [ "$rc" -ne 0 ]; then
  retried=1
  # A usbtest case that never completes leaves the guest's host stack stuck (exit 3), and
  # vhci-hcd has unlink races of its own (see REFERENCE.md: the kernel's own usbip-vudc lost
  # its device in case 11 twice in ~45 runs). Keep the evidence and boot a fresh guest once;
  # a second failure fails the suite.
  cp "$log" "$build/usbfn-vs-kernel.attempt1.log"
  echo "==> the guest run did not complete (exit $rc): its log is kept as usbfn-vs-kernel.attempt1.log"
  grep -aE 'TIMEOUT|timed out|stuck|CMD_UNLINK|vhci_hcd|usbtest' "$log" | tail -25 || true
  echo "==> booting a fresh guest once more"
  rc=0
  "$here/run-guest.sh" --quiet --timeout 900 --log "$log" "$@" "$here/guest/usbfn-vs-kernel.sh" "$usbfn" || rc=$?
fi
grep -E '^conformance:|^\[ *[0-9.]+\] (usbtest|usb [0-9-]+:).*(failed|error)' "$log" | head -40 || true
args=("$log")
[ -n "$bench_md" ] && args+=(--markdown "$bench_md")
# A retried run is reported case by case as flakes (compare.py --retried), never silently.
if [ "$retried" = 1 ]; then args+=(--retried "$build/usbfn-vs-kernel.attempt1.log"); fi
cmp=0
python3 "$here/compare.py" "${args[@]}" || cmp=$?

# The unlink races on their own, repeated (the usbtest case-24 hang of issue 11): every
# round must pass; no retry.
rounds="${UNLINK_STRESS_ROUNDS:-10}"
stress_rc=0
if [ "$rounds" != 0 ]; then
  echo "==> booting the guest: unlink races, usbtest 24,11,12,24 x $rounds rounds"
  "$here/run-guest.sh" --quiet --timeout 900 --log "$build/unlink-stress.log" \
    --env "STRESS_ROUNDS=$rounds" "$@" "$here/guest/unlink-stress.sh" "$usbfn" || stress_rc=$?
  grep -aE '^conformance: unlink stress|round [0-9]+: FAIL|cannot find a urb' "$build/unlink-stress.log" || true
fi
# Isochronous and interrupt transfers (usbtest 15, 16, 22, 23, 25, 26 at full, high and
# SuperSpeed, usbip-vudc alongside, and the pacing check): every usbfn case must pass.
iso_rc=0
if [ "${ISO_CONFORMANCE:-1}" = 1 ]; then
  echo "==> booting the guest: isochronous and interrupt (usbtest 15,16,22,23,25,26)"
  "$here/run-guest.sh" --quiet --timeout 1200 --log "$build/iso-interrupt.log" "$@" \
    "$here/guest/iso-interrupt.sh" "$usbfn" || iso_rc=$?
  python3 "$here/compare.py" --iso "$build/iso-interrupt.log" || iso_rc=$((iso_rc == 0 ? 1 : iso_rc))
fi
# Mass storage (guest/msc.sh): usb-storage against usbfn's msc function, byte-exact 64 MiB,
# FAT, the SIGKILL crash test, ro; the kernel's usb_f_mass_storage on usbip-vudc alongside
# for the benchmark. msc-check.sh fails the suite on any failed or missing check line.
msc_rc=0
if [ "${MSC_CONFORMANCE:-1}" = 1 ]; then
  echo "==> booting the guest: mass storage (usb-storage against usbfn msc; usb_f_mass_storage)"
  "$here/run-guest.sh" --quiet --timeout 900 --log "$build/msc.log" "$@" \
    "$here/guest/msc.sh" "$usbfn" || msc_rc=$?
  msc_args=("$build/msc.log")
  [ -n "$bench_md" ] && msc_args+=(--markdown "${bench_md%.md}-msc.md")
  "$here/msc-check.sh" "${msc_args[@]}" || msc_rc=$((msc_rc == 0 ? 1 : msc_rc))
fi
# The UAC2 audio function against snd-usb-audio and arecord/aplay (guest/audio.sh) at high
# and full speed: every "conformance audio:" check must pass, and all of them must be there.
audio_rc=0
if [ "${AUDIO_CONFORMANCE:-1}" = 1 ]; then
  echo "==> booting the guest: the audio function against snd-usb-audio (arecord, aplay)"
  "$here/run-guest.sh" --quiet --timeout 900 --log "$build/audio.log" "$@" \
    "$here/guest/audio.sh" "$usbfn" || audio_rc=$?
  grep -a '^conformance audio:' "$build/audio.log" || true
  # 9 checks per speed (card, record-frequency, record-length, record-pace, play, xrun,
  # mic-packets, feedback, feedback-xrun), two speeds.
  awk -v need=18 '/^conformance audio: PASS/ { p++ } /^conformance audio: FAIL/ { f++ }
    END { printf "conformance audio: %d passed, %d failed, %d expected\n", p, f, need;
          exit (f == 0 && p == need) ? 0 : 1 }' "$build/audio.log" ||
    audio_rc=$((audio_rc == 0 ? 1 : audio_rc))
fi
# The network adapters (issue 17): cdc_ncm and cdc_ether against `usbfn serve --function
# ncm|ecm` with the embedded stack (DHCP, ping, wget checksum, POST count), and the NCM TCP
# throughput next to usbtest 27/28 in the same boot. check-net.py fails the suite on any
# failed check line.
net_rc=0
if [ "${NET_CONFORMANCE:-1}" = 1 ]; then
  echo "==> booting the guest: network adapters (cdc_ncm, cdc_ether; udhcpc, ping, wget)"
  net_bytes=16777216
  net_sha=$(python3 -c "import hashlib; n=$net_bytes; print(hashlib.sha256((bytes(range(251))*(n//251+1))[:n]).hexdigest())")
  "$here/run-guest.sh" --quiet --timeout 600 --log "$build/net.log" \
    --env "NET_BYTES=$net_bytes" --env "NET_SHA256=$net_sha" "$@" \
    "$here/guest/net.sh" "$usbfn" || net_rc=$?
  python3 "$here/check-net.py" "$build/net.log" || net_rc=$((net_rc == 0 ? 1 : net_rc))
fi
# CDC-ACM and HID keyboard judged by cdc-acm, usbhid and hid-generic, and the ACM throughput
# next to the kernel's usb_f_acm on usbip-vudc; the composite; acm and msc as service
# processes under `usbfn daemon --services external` (acm-hid-check.sh: any FAIL line fails).
acm_hid_rc=0
if [ "${ACM_HID_CONFORMANCE:-1}" = 1 ]; then
  echo "==> booting the guest: acm and hid-keyboard against cdc-acm, usbhid and hid-generic"
  "$here/run-guest.sh" --quiet --timeout 900 --log "$build/acm-hid.log" "$@" \
    "$here/guest/acm-hid.sh" "$usbfn" || acm_hid_rc=$?
  "$here/acm-hid-check.sh" "$build/acm-hid.log" || acm_hid_rc=$((acm_hid_rc == 0 ? 1 : acm_hid_rc))
fi
ffs_rc=0
ffs_cmp=0
if [ "${FFS_ROUNDS:-1}" != 0 ]; then
  echo "==> booting the guest: usbfn on FunctionFS (dummy_hcd) against the kernel's SourceSink"
  "$here/run-guest.sh" --quiet --timeout 1500 --log "$build/ffs-vs-kernel.log" "$@" \
    "$here/guest/ffs-vs-kernel.sh" "$usbfn" || ffs_rc=$?
  ffs_args=("$build/ffs-vs-kernel.log" --prefix ffs)
  [ -n "$bench_md" ] && ffs_args+=(--markdown "${bench_md%.md}-ffs.md")
  python3 "$here/compare.py" "${ffs_args[@]}" || ffs_cmp=$?
fi
ffs_bench_rc=0
if [ "${FFS_BENCH:-0}" != 0 ]; then
  echo "==> booting the guest: FunctionFS throughput, usbtest 27/28 against the kernel's SourceSink"
  "$here/run-guest.sh" --quiet --timeout 600 --log "$build/ffs-bench.log" "$@" \
    "$here/guest/ffs-bench.sh" "$usbfn" || ffs_bench_rc=$?
  fb_args=("$build/ffs-bench.log")
  [ -n "$bench_md" ] && fb_args+=(--markdown "${bench_md%.md}-ffs-bench.md")
  python3 "$here/ffs-bench-check.py" "${fb_args[@]}" || ffs_bench_rc=$((ffs_bench_rc == 0 ? 1 : ffs_bench_rc))
fi
# usbredir: usbfn on this machine, QEMU's usb-redir devices on EHCI/xHCI in the guest, every
# usbtest result compared with the USB/IP run above (tests/conformance/usbredir.sh; the fault
# checks, the class functions acm/msc/hid-keyboard over usbredir (UR_CLASSES=0 skips them) and
# the bench next to USB/IP and QEMU's usb-storage in the same boot). USBREDIR_CONFORMANCE=0
# skips it.
redir_rc=0
if [ "${USBREDIR_CONFORMANCE:-1}" = 1 ]; then
  echo "==> usbredir: usbtest over QEMU's usb-redir, compared with the USB/IP run"
  USBFN_BIN="$usbfn" "$here/usbredir.sh" --usbip-log "$log" || redir_rc=$?
fi
echo "conformance run took $(( $(date +%s) - t0 )) s (guest exit $rc, log $log)"
if [ "$rc" -ne 0 ]; then
  echo "the guest run did not complete (exit $rc)"
  exit 2
fi
if [ "$iso_rc" -ne 0 ]; then
  echo "the isochronous/interrupt run failed (exit $iso_rc, log $build/iso-interrupt.log)"
  exit 1
fi
if [ "$msc_rc" -ne 0 ]; then
  echo "the mass-storage run failed (exit $msc_rc, log $build/msc.log)"
  exit 1
fi
if [ "$audio_rc" -ne 0 ]; then
  echo "the audio run failed (exit $audio_rc, log $build/audio.log)"
  exit 1
fi
if [ "$net_rc" -ne 0 ]; then
  echo "the network adapter run failed (exit $net_rc, log $build/net.log)"
  exit 1
fi
if [ "$acm_hid_rc" -ne 0 ]; then
  echo "the acm/hid run failed (exit $acm_hid_rc, log $build/acm-hid.log)"
  exit 1
fi
if [ "$ffs_rc" -ne 0 ]; then
  echo "the FunctionFS guest run did not complete (exit $ffs_rc, log $build/ffs-vs-kernel.log)"
  exit 2
fi
if [ "$stress_rc" -ne 0 ]; then
  echo "the unlink stress run failed (exit $stress_rc, log $build/unlink-stress.log)"
  exit 1
fi
if [ "$ffs_cmp" -ne 0 ]; then exit 1; fi
if [ "$ffs_bench_rc" -ne 0 ]; then
  echo "the FunctionFS benchmark run failed (exit $ffs_bench_rc, log $build/ffs-bench.log)"
  exit 1
fi
if [ "$redir_rc" -ne 0 ]; then
  echo "the usbredir run failed (exit $redir_rc, log $build/usbredir.log)"
  exit 1
fi
exit "$cmp"
