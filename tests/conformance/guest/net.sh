#!/bin/sh
# Guest /init: usbfn's network adapters judged by the kernel's host drivers, over USB/IP
# through vhci-hcd. For each of ncm and ecm (`usbfn serve --function MODEL`, the embedded
# user-space stack at 192.168.7.1):
#   bind      cdc_ncm / cdc_ether binds and a network interface appears
#   dhcp      busybox udhcpc gets an address from the device's DHCP server
#   ping      ping -c PING_COUNT 192.168.7.1 with 0% loss (RTT p50 in the line)
#   download  wget /bytes/N is byte-exact (sha256 against NET_SHA256, computed on the host)
#   upload    a POST of N bytes to /sink is counted exactly by the device (its /stats)
#   errors    the device counted no malformed NTB/transfer from the host
# Then the benchmark: usbtest 27/28 (raw bulk OUT/IN) against Gadget Zero in the same boot.
# Lines: "conformance net: PASS|FAIL <model> <check> (<figures>)", "conformance net-bench: ...".
#
# Knobs (run-guest.sh --env KEY=VALUE): NET_MODELS ("ncm ecm"), NET_BYTES (16777216),
# NET_SHA256 (sha256 of the /bytes/NET_BYTES body; required), PING_COUNT (100),
# PING_INTERVAL (0.02), NET_BENCH (1: run usbtest 27/28), BENCH_ITERATIONS (200),
# NET_SPEED (super: what `usbfn serve --speed` exports, for the adapters and the raw bulk
# baseline alike; usbnet keeps 5x more rx URBs queued at SuperSpeed than at high speed),
# NET_DIAG (0; 1 prints the guest's TCP counters and the device's /stats after the download).
. /lib/conformance/lib.sh
conformance_setup

NET_MODELS=${NET_MODELS:-ncm ecm}
NET_BYTES=${NET_BYTES:-16777216}
PING_COUNT=${PING_COUNT:-100}
PING_INTERVAL=${PING_INTERVAL:-0.02}
NET_BENCH=${NET_BENCH:-1}
BENCH_ITERATIONS=${BENCH_ITERATIONS:-200}
DEV=192.168.7.1
failed=0

pass() { say "net: PASS $*" | sed 's/^conformance: /conformance /'; }
fail() { say "net: FAIL $*" | sed 's/^conformance: /conformance /'; failed=$((failed + 1)); }
now() { uptime_s; }
mbps() { awk -v b="$1" -v s="$2" 'BEGIN { if (s <= 0) s = 0.01; printf "%.2f", b / s / 1e6 }'; }

dmesg -n 1
load_modules configfs usb-common usbcore usbip-core vhci-hcd usbtest cdc_ncm cdc_ether ||
  conformance_exit 10

cat >/tmp/udhcpc.sh <<'EOF'
#!/bin/sh
case "$1" in
  deconfig) ifconfig "$interface" 0.0.0.0 up ;;
  bound|renew)
    ifconfig "$interface" "$ip" netmask "${subnet:-255.255.255.0}" up
    echo "$ip" >/tmp/dhcp-address
    ;;
esac
EOF
chmod +x /tmp/udhcpc.sh

# The interface bound to driver $1, waiting up to 10 s.
wait_netif() {
  local i=0 n
  while [ $i -lt 50 ]; do
    for n in /sys/class/net/*; do
      case "$(readlink "$n/device/driver" 2>/dev/null)" in
        */"$1") basename "$n"; return 0 ;;
      esac
    done
    sleep 0.2
    i=$((i + 1))
  done
  return 1
}

stat_of() { # NAME: a counter from the device's /stats
  wget -q -O - "http://$DEV/stats" 2>/dev/null | awk -v k="$1" '$1 == k { print $2 }'
}

run_model() { # MODEL
  local model=$1 driver ifc addr t0 t1 got loss p50 count
  case "$model" in ncm) driver=cdc_ncm ;; *) driver=cdc_ether ;; esac
  RUST_LOG=info usbfn serve --speed "${NET_SPEED:-super}" --function "$model" >"/tmp/usbfn-$model.log" 2>&1 &
  USBFN_PID=$!
  if ! usbip_attach_local 1-1 10; then
    fail "$model bind (usbip attach failed)"
    cat "/tmp/usbfn-$model.log"
    return
  fi
  if ! ifc=$(wait_netif "$driver"); then
    fail "$model bind (no network interface bound to $driver)"
    dmesg | tail -20
    return
  fi
  pass "$model bind (driver $driver, interface $ifc, mac $(cat "/sys/class/net/$ifc/address"))"

  rm -f /tmp/dhcp-address
  ifconfig "$ifc" up
  t0=$(now)
  if udhcpc -i "$ifc" -s /tmp/udhcpc.sh -n -q -t 10 -T 1 -A 1 >/tmp/udhcpc.log 2>&1 &&
    addr=$(cat /tmp/dhcp-address 2>/dev/null) && [ -n "$addr" ]; then
    t1=$(now)
    case "$addr" in
      192.168.7.*) pass "$model dhcp (address $addr in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s)" ;;
      *) fail "$model dhcp (address $addr is outside the pool)" ;;
    esac
  else
    fail "$model dhcp (udhcpc got no address)"
    cat /tmp/udhcpc.log
    return
  fi

  ping -c "$PING_COUNT" -i "$PING_INTERVAL" -W 5 "$DEV" >/tmp/ping.log 2>&1
  count=$(grep -c 'bytes from' /tmp/ping.log)
  loss=$(sed -n 's/.* \([0-9.]*\)% packet loss.*/\1/p' /tmp/ping.log)
  p50=$(sed -n 's/.*time=\([0-9.]*\) ms.*/\1/p' /tmp/ping.log | sort -n |
    awk '{ v[NR] = $1 } END { if (NR) printf "%.3f", v[int((NR + 1) / 2)] }')
  if [ "$count" = "$PING_COUNT" ] && [ "$loss" = 0 ]; then
    pass "$model ping ($count/$PING_COUNT replies, ${loss}% loss, rtt p50 ${p50} ms)"
  else
    fail "$model ping ($count/$PING_COUNT replies, ${loss:-?}% loss)"
    tail -5 /tmp/ping.log
  fi

  t0=$(now)
  got=$(wget -q -O - "http://$DEV/bytes/$NET_BYTES" | sha256sum | cut -d' ' -f1)
  t1=$(now)
  local down_s
  down_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
  if [ "$got" = "$NET_SHA256" ]; then
    pass "$model download ($NET_BYTES bytes, sha256 $got, $down_s s, $(mbps "$NET_BYTES" "$down_s") MB/s)"
  else
    fail "$model download (sha256 $got, expected $NET_SHA256)"
  fi
  eval "DOWN_$model=$(mbps "$NET_BYTES" "$down_s")"

  if [ "${NET_DIAG:-0}" = 1 ]; then
    grep Tcp: /proc/net/snmp
    grep TcpExt: /proc/net/netstat | tr ' ' '\n' | paste - - 2>/dev/null | head -0
    awk '/TcpExt:/ { if (!h) { split($0, k); h = 1 } else { for (i = 2; i <= NF; i++) if ($i != 0) printf "%s=%s ", k[i], $i; print "" } }' /proc/net/netstat
    ip -s link show "$ifc"
    wget -q -O - "http://$DEV/stats"
    dmesg | grep -iE 'cdc|usbnet|usb0|vhci' | tail -10
  fi
  # busybox wget sends a --post-file with Content-Length = strlen(contents): no NUL bytes.
  dd if=/dev/zero bs=1048576 count=$((NET_BYTES / 1048576)) 2>/dev/null | tr '\000' 'u' >/tmp/post.bin
  local size reply counted micros
  size=$(stat -c %s /tmp/post.bin)
  t0=$(now)
  reply=$(wget -q -O - --post-file /tmp/post.bin "http://$DEV/sink" 2>&1)
  t1=$(now)
  rm -f /tmp/post.bin
  counted=$(stat_of last_sink_bytes)
  micros=$(stat_of last_sink_micros)
  local up_s
  up_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
  if [ "$counted" = "$size" ] && [ "$reply" = "received $size bytes" ]; then
    pass "$model upload ($size bytes posted, device counted $counted, $up_s s, $(mbps "$size" "$up_s") MB/s; device-side body time $micros us)"
  else
    fail "$model upload (posted $size, device counted ${counted:-?}, reply '$reply')"
  fi
  eval "UP_$model=$(mbps "$size" "$up_s")"
  eval "P50_$model=$p50"

  local bad_t bad_d
  bad_t=$(stat_of bad_transfers)
  bad_d=$(stat_of bad_datagrams)
  if [ "$bad_t" = 0 ] && [ "$bad_d" = 0 ]; then
    pass "$model errors (0 malformed transfers, 0 bad datagrams; $(stat_of frames_from_host) frames from the host, $(stat_of ntbs_to_host) transfers to it)"
  else
    fail "$model errors (${bad_t:-?} malformed transfers, ${bad_d:-?} bad datagrams)"
  fi
  grep -E 'POST /sink|WARN|ERROR' "/tmp/usbfn-$model.log" | tail -3

  usbip_detach_all
  kill -INT "$USBFN_PID" 2>/dev/null && wait "$USBFN_PID"
  USBFN_PID=""
  sleep 0.3
}

t_start=$(now)
for model in $NET_MODELS; do run_model "$model"; done
say "net checks took $(awk -v a="$t_start" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }') s of guest time"

if [ "$NET_BENCH" = 1 ]; then
  usbfn serve --speed "${NET_SPEED:-super}" --function gadget-zero >/tmp/usbfn-gz.log 2>&1 &
  USBFN_PID=$!
  if usbip_attach_local 1-1 10 && wait_usbtest_bound 10; then
    usbtest-driver --device 0525:a4a0 --label net-bench-warmup --cases 27,28 \
      --iterations "$BENCH_ITERATIONS" --length 1024 --sglen 32 --case-timeout 60 >/dev/null
    usbtest-driver --device 0525:a4a0 --label net-bench --cases 27,28 \
      --iterations "$BENCH_ITERATIONS" --length 1024 --sglen 32 --case-timeout 60 |
      tee /tmp/bench.log
    bytes=$((BENCH_ITERATIONS * 32 * 1024))
    for c in 27 28; do
      s=$(awk -v c="$c" '$2 == "case" && $3 == c { for (i = 1; i < NF; i++) if ($i == "pass") print $(i + 1) }' /tmp/bench.log | tail -1)
      eval "RAW_$c=$(mbps "$bytes" "${s:-0}")"
    done
    for model in $NET_MODELS; do
      eval "d=\$DOWN_$model u=\$UP_$model p=\$P50_$model"
      say "net-bench: $model TCP download $d MB/s vs raw bulk IN (usbtest 28) $RAW_28 MB/s ($(awk -v a="$d" -v b="$RAW_28" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }')x); upload $u MB/s vs raw bulk OUT (usbtest 27) $RAW_27 MB/s ($(awk -v a="$u" -v b="$RAW_27" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }')x); ping p50 $p ms"
    done
  else
    say "net-bench: Gadget Zero did not bind"
  fi
  usbip_detach_all
  kill -INT "$USBFN_PID" 2>/dev/null && wait "$USBFN_PID"
fi
say "net summary: $failed failed"
conformance_exit "$((failed > 0 ? 1 : 0))"
