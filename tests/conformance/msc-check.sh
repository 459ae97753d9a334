#!/usr/bin/env bash
# Judges guest/msc.sh's log: every "conformance msc:" line must be PASS, every check must be
# there, and the benchmark lines are summed up as usbfn / kernel ratios (printed; the 2x goal
# is reported, not enforced, since TCG timings depend on the host's load).
# Usage: tests/conformance/msc-check.sh LOG [--markdown FILE]
set -euo pipefail
log="$1"
md=""
if [ "${2:-}" = "--markdown" ]; then md="$3"; fi
lines=$(grep -aE '^conformance msc: ' "$log" | tr -d '\r' || true)
echo "$lines"
fails=$(echo "$lines" | grep -c ': FAIL ' || true)
expected=("usb-storage binds" "disk size" "random write + read back after drop_caches"
  "device-side image holds the same bytes" "FAT file system survives unmount/remount"
  "crash test:" "ro refuses writes")
missing=0
for e in "${expected[@]}"; do
  if ! echo "$lines" | grep -q ": PASS .*$e\|: PASS $e"; then
    echo "msc check: missing or failed: $e"
    missing=$((missing + 1))
  fi
done
bench=$(grep -aE '^msc bench ' "$log" | tr -d '\r' || true)
echo "$bench"
ratio() { # DIRECTION
  awk -v d="$1" '$1 == "msc" && $4 == d { v[$3] = $5 }
    END { if (v["usbfn"] && v["kernel-vudc"]) printf "%.1f", v["usbfn"] / v["kernel-vudc"]; else printf "n/a" }' <<<"$bench"
}
wr=$(ratio write)
rd=$(ratio read)
echo "msc bench: usbfn / kernel usb_f_mass_storage on usbip-vudc: write ${wr}x, read ${rd}x (goal >= 2x)"
if [ -n "$md" ]; then
  {
    echo "| figure (64 MiB, 1 MiB blocks, O_DIRECT) | usbfn | kernel usb_f_mass_storage + usbip-vudc | ratio |"
    echo "|---|---|---|---|"
    for d in write read; do
      awk -v d="$d" -v r="$(ratio "$d")" '$1 == "msc" && $4 == d { v[$3] = $5 }
        END { printf "| sequential %s | %s MB/s | %s MB/s | %sx |\n", d, v["usbfn"], v["kernel-vudc"], r }' <<<"$bench"
    done
  } >"$md"
fi
if [ "$fails" -ne 0 ] || [ "$missing" -ne 0 ]; then
  echo "msc conformance: FAIL ($fails failed, $missing missing)"
  exit 1
fi
echo "msc conformance: PASS (${#expected[@]} checks)"
