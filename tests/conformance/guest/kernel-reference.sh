#!/bin/sh
# Guest /init: the Linux kernel's own reference results. The kernel's SourceSink function
# ("Gadget Zero", 0525:a4a0) is tested with usbtest + usbtest-driver over
#   dummy-hs   dummy_hcd (host and gadget in one kernel), high speed
#   dummy-ss   dummy_hcd is_super_speed=1
#   dummy-fs   dummy_hcd is_high_speed=0 (full speed)
#   vudc-hs    usbip-vudc, exported by `usbipd -e` on 127.0.0.1:3240 and imported through
#              vhci-hcd with `usbip attach` (vudc is high speed only)
# for each usbtest pattern (module parameter pattern=, and the function's own pattern
# attribute) and each parameter set; every set runs on a freshly bound and enumerated gadget.
#
# Run: tests/conformance/run-guest.sh tests/conformance/guest/kernel-reference.sh
# Knobs (run-guest.sh --env KEY=VALUE):
#   REF_TRANSPORTS   default "dummy-hs dummy-ss dummy-fs vudc-hs"
#   REF_PATTERNS     default "0 1"
#   REF_SETS         length:vary[:bulk_buflen] sets, default
#                    "1024:512 512:256 1000:500 1000:500:1000 2048:1024";
#                    bulk_buflen is SourceSink's bulk request size (the function's default 4096)
#   REF_ITERATIONS   default 100
#   REF_SGLEN        default 32
#   REF_CASES        default 0-29 (iso/interrupt cases report n/a on the bulk altsetting)
#   REF_ISO_CASES    after the bulk sets, bind with usbtest alt=1 (SourceSink's iso
#                    altsetting, where the UDC has iso endpoints) and run these; default
#                    15,16,22,23 ("" to skip)
#   REF_CASE_TIMEOUT seconds per case, default 300
# Result lines: "<transport>-p<pattern>-l<length>[b<buflen>] case N ...: pass 0.123 s".
# Exit status 0 when every run completed (case failures are results to record, not errors);
# 1 when a device did not bind, the driver could not run or a case timed out.
. /lib/conformance/lib.sh
conformance_setup

REF_TRANSPORTS=${REF_TRANSPORTS:-dummy-hs dummy-ss dummy-fs vudc-hs}
REF_PATTERNS=${REF_PATTERNS:-0 1}
REF_SETS=${REF_SETS:-1024:512 512:256 1000:500 1000:500:1000 2048:1024}
REF_ITERATIONS=${REF_ITERATIONS:-100}
REF_SGLEN=${REF_SGLEN:-32}
REF_CASES=${REF_CASES:-0-29}
REF_ISO_CASES=${REF_ISO_CASES-15,16,22,23}
REF_CASE_TIMEOUT=${REF_CASE_TIMEOUT:-300}

failing_runs=0 # runs in which some case failed: recorded, not an error of this script
incomplete=0   # runs that did not complete (no device, driver error, case timeout)
t0=$(uptime_s)
load_modules configfs usb-common usbcore udc-core usbip-core vhci-hcd usbtest \
  libcomposite usb_f_ss_lb usbip-vudc || conformance_exit 10
say "modules loaded in $(awk -v a="$t0" -v b="$(uptime_s)" 'BEGIN { printf "%.2f", b - a }') s"
say "parameters: iterations $REF_ITERATIONS sglen $REF_SGLEN sets $REF_SETS patterns $REF_PATTERNS cases $REF_CASES iso $REF_ISO_CASES"

elapsed_since() { awk -v a="$1" -v b="$(uptime_s)" 'BEGIN { printf "%.1f", b - a }'; }

# run_cases LABEL CASES LENGTH VARY: one usbtest-driver run against the bound device.
# (The kernel's error messages reach the console by themselves: quiet keeps KERN_ERR.)
run_cases() {
  local rc=0
  usbtest-driver --device 0525:a4a0 --label "$1" --cases "$2" --iterations "$REF_ITERATIONS" \
    --length "$3" --vary "$4" --sglen "$REF_SGLEN" --case-timeout "$REF_CASE_TIMEOUT" || rc=$?
  case $rc in
    0) ;;
    1) failing_runs=$((failing_runs + 1)) ;;
    *) incomplete=$((incomplete + 1)) ;;
  esac
}

# attach TRANSPORT / detach TRANSPORT: make the bound gadget visible to the host side.
attach() { # TRANSPORT [SECONDS]
  case "$1" in
    vudc-*) usbip_attach_local usbip-vudc.0 10 || return 1 ;;
  esac
  wait_usbtest_bound "${2:-10}"
}
detach() {
  case "$1" in
    vudc-*) usbip_detach_all ;;
  esac
  sleep 0.2
}

# setup_transport TRANSPORT: loads/reloads what the transport needs; sets UDC to its UDC name.
setup_transport() {
  # f_sourcesink edits its static descriptor tables at bind: on a UDC without iso endpoints
  # (dummy_hcd) it drops altsetting 1 for good. A fresh module restores it.
  if grep -q '^usb_f_ss_lb ' /proc/modules; then
    rmmod usb_f_ss_lb && load_module usb_f_ss_lb || return 1
  fi
  case "$1" in
    dummy-hs | dummy-ss | dummy-fs)
      grep -q '^dummy_hcd ' /proc/modules && rmmod dummy_hcd
      case "$1" in
        dummy-hs) load_module dummy_hcd ;;
        dummy-ss) load_module dummy_hcd is_super_speed=1 ;;
        dummy-fs) load_module dummy_hcd is_high_speed=0 ;;
      esac || return 1
      UDC=dummy_udc.0
      ;;
    vudc-hs)
      if [ ! -f /run/usbipd.pid ]; then
        usbipd -e -D -P/run/usbipd.pid || return 1
        sleep 0.3
      fi
      UDC=usbip-vudc.0
      ;;
    *) say "unknown transport $1"; return 1 ;;
  esac
}

for transport in $REF_TRANSPORTS; do
  tt=$(uptime_s)
  setup_transport "$transport" || { say "cannot set up $transport"; incomplete=$((incomplete + 1)); continue; }
  echo -1 >/sys/module/usbtest/parameters/alt
  for pattern in $REF_PATTERNS; do
    tp=$(uptime_s)
    set_usbtest_pattern "$pattern"
    for set in $REF_SETS; do
      length=${set%%:*}
      rest=${set#*:}
      vary=${rest%%:*}
      buflen=""
      label="$transport-p$pattern-l$length"
      if [ "$rest" != "$vary" ]; then buflen=${rest#*:}; label="${label}b$buflen"; fi
      gadget_sourcesink g1 "$pattern" "$buflen"
      gadget_bind g1 "$UDC"
      if attach "$transport" 10; then
        run_cases "$label" "$REF_CASES" "$length" "$vary"
      else
        say "$label: device did not bind to usbtest"
        incomplete=$((incomplete + 1))
      fi
      detach "$transport"
      gadget_remove g1
    done
    say "part $transport pattern $pattern took $(elapsed_since "$tp") s"
  done
  if [ -n "$REF_ISO_CASES" ]; then
    tp=$(uptime_s)
    echo 1 >/sys/module/usbtest/parameters/alt
    set_usbtest_pattern 0
    gadget_sourcesink g1 0
    gadget_bind g1 "$UDC"
    # dummy_hcd has no iso endpoints (SourceSink then drops its alt 1): do not wait long.
    case "$transport" in dummy-*) iso_wait=3 ;; *) iso_wait=10 ;; esac
    if attach "$transport" "$iso_wait"; then
      run_cases "$transport-p0-iso" "$REF_ISO_CASES" 1024 512
    else
      say "$transport-p0-iso: usbtest did not bind with alt=1; last kernel messages:"
      dmesg | tail -n 4
    fi
    detach "$transport"
    gadget_remove g1
    echo -1 >/sys/module/usbtest/parameters/alt
    say "part $transport iso took $(elapsed_since "$tp") s"
  fi
  say "transport $transport took $(elapsed_since "$tt") s"
done

say "total $(elapsed_since "$t0") s, $failing_runs runs with failing cases, $incomplete incomplete"
if [ "$incomplete" -eq 0 ]; then conformance_exit 0; else conformance_exit 1; fi
