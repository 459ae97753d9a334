#!/bin/sh
# Guest /init: usbfn's UAC2 audio function (usbfn serve --function audio,...) against the
# kernel's snd-usb-audio and Debian's arecord/aplay, over USB/IP through vhci-hcd, at each
# speed:
#   card      snd-usb-audio binds; the card is listed in /proc/asound/cards
#   record    arecord -d 5 at 48 kHz from source=sine:1000: dominant frequency 1000 Hz +-1 %,
#             length within 2 % of 5 s of frames, and frames per second of wall time within
#             -2 %..+10 % of the rate (never faster than real time)
#   play      aplay of a 5 s noise WAV (usbfn wav generate) into sink=FILE: the aligned
#             middle equal sample for sample, correlation >= 0.999
#   xrun      neither arecord nor aplay reported an overrun/underrun
#   mic-packets  usbfn's count: the microphone's packets carried exactly rate/1000 frames
#             each (the accumulator; per served 1 ms slot of bus time)
#   feedback  (ppm=AUDIO_PPM) the host follows the feedback endpoint: its packets carried
#             rate x (1 + ppm/1e6) / 1000 frames on average (within 0.05 %), usbfn's count
# Each check prints "conformance audio: PASS|FAIL <speed> <what> (<figures>)"; the checker in
# run.sh fails the suite on any FAIL or on a missing line.
#
# Knobs (run-guest.sh --env KEY=VALUE): AUDIO_SPEEDS (default "high full"), AUDIO_PPM
# (default 2000; 0 skips the feedback check).
. /lib/conformance/lib.sh
conformance_setup

AUDIO_SPEEDS=${AUDIO_SPEEDS:-high full}
AUDIO_PPM=${AUDIO_PPM:-2000}
RATE=48000
SECONDS_=5
FRAMES=$((RATE * SECONDS_))
t0=$(uptime_s)

dmesg -n 1
load_modules usb-common usbcore usbip-core vhci-hcd snd-usb-audio || conformance_exit 10

check() { # SPEED WHAT OK FIGURES
  if [ "$3" = 1 ]; then
    echo "conformance audio: PASS $1 $2 ($4)"
  else
    echo "conformance audio: FAIL $1 $2 ($4)"
  fi
}
# field KEY LINE: the value of KEY=... in a `usbfn wav` line.
field() { echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
# within VALUE LO HI: 1 when LO <= VALUE <= HI.
within() { awk -v v="$1" -v lo="$2" -v hi="$3" 'BEGIN { print (v != "" && v >= lo && v <= hi) ? 1 : 0 }'; }

usbfn wav generate /tmp/reference.wav --seconds "$SECONDS_" --rate "$RATE" --channels 2 \
  --bits 16 || conformance_exit 11

USBFN_PID=""
serve() { # SPEED OPTIONS
  rm -f /tmp/sink.wav
  usbfn ${AUDIO_VERBOSE:+-v} serve --speed "$1" --function "audio,source=sine:1000,sink=/tmp/sink.wav$2" \
    >>/tmp/usbfn-audio.log 2>&1 &
  USBFN_PID=$!
}
stop() {
  usbip_detach_all
  [ -n "$USBFN_PID" ] && kill -INT "$USBFN_PID" 2>/dev/null && wait "$USBFN_PID"
  USBFN_PID=""
  sleep 0.3
}
# wait_card SECONDS: the number of the USB-Audio card, once listed.
wait_card() {
  local i=0
  while [ $i -lt $(($1 * 10)) ]; do
    card=$(sed -n 's/^ *\([0-9][0-9]*\) \[.*\]: USB-Audio - .*/\1/p' /proc/asound/cards | head -n 1)
    if [ -n "$card" ] && [ -e "/dev/snd/pcmC${card}D0c" ] && [ -e "/dev/snd/pcmC${card}D0p" ]; then
      echo "$card"
      return 0
    fi
    sleep 0.1
    i=$((i + 1))
  done
  return 1
}
xruns() { grep -ci 'overrun\|underrun\|xrun' "$@" 2>/dev/null | awk -F: '{ s += $NF } END { print s + 0 }'; }

for speed in $AUDIO_SPEEDS; do
  ts=$(uptime_s)
  rm -f /tmp/usbfn-audio.log
  serve "$speed" ""
  if ! usbip_attach_local 1-1 10 || ! card=$(wait_card 30); then
    check "$speed" card 0 "no USB-Audio card after 30 s"
    cat /proc/asound/cards
    dmesg | tail -30
    tail -30 /tmp/usbfn-audio.log
    stop
    continue
  fi
  name=$(sed -n "s/^ *$card \[.*\]: //p" /proc/asound/cards)
  long=$(grep -A1 "^ *$card \[" /proc/asound/cards | tail -n 1 | sed 's/^ *//')
  echo "$long" | grep -q "$speed speed"
  check "$speed" card "$([ $? = 0 ] && echo 1 || echo 0)" "card $card: $name; $long"

  # Record.
  a=$(uptime_s)
  arecord -q -B 2000000 -D "hw:$card,0" -f S16_LE -r "$RATE" -c 2 -d "$SECONDS_" /tmp/rec.wav 2>/tmp/arecord.err
  rc=$?
  b=$(uptime_s)
  if [ "$rc" != 0 ]; then
    cat /tmp/arecord.err
    dmesg | grep -v "unlink->seqnum\|urb->status\|already given back\|Not yet implemented\|callbacks suppressed" | tail -25
  fi
  line=$(usbfn wav analyze /tmp/rec.wav 2>&1)
  echo "analyze: $line"
  freq=$(field frequency "$line")
  frames=$(field frames "$line")
  check "$speed" record-frequency "$(within "$freq" 990 1010)" "arecord rc $rc, dominant $freq Hz, expected 1000 +-1 %"
  lo=$((FRAMES * 98 / 100)) hi=$((FRAMES * 102 / 100))
  check "$speed" record-length "$(within "$frames" $lo $hi)" "$frames frames, expected $FRAMES +-2 %"
  wall=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", b - a }')
  fps=$(awk -v f="$frames" -v w="$wall" 'BEGIN { printf "%.0f", (w > 0 ? f / w : 0) }')
  # A device completing faster than the bus clock would exceed the rate; slower is the
  # host's queue running dry under TCG (its late URBs' passed slots are missed).
  check "$speed" record-pace "$(within "$fps" 1 $((RATE * 102 / 100)))" \
    "$frames frames in $wall s of arecord wall time: $fps frames/s (includes start-up), rate $RATE, never faster"
  # Play. Under TCG a guest descheduled for longer than ALSA's buffer gets EIO, and its
  # late URBs land in slots that have passed, whose packets a device never receives (as on
  # hardware): such a run is printed as a flake and played once more; the second is the
  # verdict, as the pacing check of iso-interrupt.sh does.
  for attempt in 1 2; do
    aplay -q -B 2000000 -D "hw:$card,0" /tmp/reference.wav 2>/tmp/aplay.err
    rc=$?
    if [ "$rc" != 0 ]; then
      cat /tmp/aplay.err
      dmesg | grep -v "unlink->seqnum\|urb->status\|already given back\|Not yet implemented\|callbacks suppressed" | tail -10
    fi
    sleep 0.5
    line=$(usbfn wav compare /tmp/reference.wav /tmp/sink.wav 2>&1)
    echo "compare: $line"
    corr=$(field correlation "$line")
    equal=$(field equal "$line")
    samples=$(field samples "$line")
    ok=$(within "$corr" 0.999 1.0)
    [ -n "$samples" ] && [ "$samples" -gt $((FRAMES * 2 * 90 / 100)) ] || ok=0
    figures="aplay rc $rc, correlation $corr, $equal of $samples samples equal, $(field offset "$line") frames of leading silence, sink $(field recording_frames "$line") frames"
    [ "$ok" = 1 ] && break
    [ "$attempt" = 1 ] && echo "flake: $speed play: $figures; restarting the device and playing once more"
    # A fresh sink: the device truncates it when it starts.
    stop
    serve "$speed" ""
    if ! usbip_attach_local 1-1 10 || ! card=$(wait_card 30); then
      figures="no card for the second attempt"
      break
    fi
  done
  check "$speed" play "$ok" "$figures"
  n=$(xruns /tmp/arecord.err /tmp/aplay.err)
  check "$speed" xrun "$([ "$n" = 0 ] && echo 1 || echo 0)" "$n xrun messages"
  [ "$n" = 0 ] || cat /tmp/arecord.err /tmp/aplay.err
  stop
  grep -a 'audio stream stopped' /tmp/usbfn-audio.log | grep -a 'packets=[1-9]' | sed 's/^/usbfn: /'
  # The microphone's packet sizes: exactly rate/1000 frames per served 1 ms slot.
  mic=$(grep -a 'audio stream stopped' /tmp/usbfn-audio.log | grep -a 'path=Microphone' |
    grep -a 'packets=[1-9]' | tail -n 1 | sed -n 's/.*frames_per_packet="\{0,1\}\([0-9.]*\).*/\1/p')
  want=$(awk -v r="$RATE" 'BEGIN { printf "%.4f", r / 1000 }')
  check "$speed" mic-packets "$(within "$mic" "$want" "$want")" "$mic frames per packet, expected $want"

  # Feedback: a device clock AUDIO_PPM fast; the host must size its packets by it.
  if [ "$AUDIO_PPM" != 0 ]; then
    serve "$speed" ",ppm=$AUDIO_PPM"
    if usbip_attach_local 1-1 10 && card=$(wait_card 30); then
      aplay -q -B 2000000 -D "hw:$card,0" /tmp/reference.wav 2>/tmp/aplay.err
      rc=$?
      [ "$rc" = 0 ] || cat /tmp/aplay.err
      stop
      stats=$(grep -a 'audio stream stopped' /tmp/usbfn-audio.log | grep -a 'path=Speaker' |
        grep -a 'packets=[1-9]' | tail -n 1)
      echo "usbfn: $stats"
      got=$(echo "$stats" | sed -n 's/.*frames_per_packet="\{0,1\}\([0-9.]*\).*/\1/p')
      want=$(awk -v r="$RATE" -v p="$AUDIO_PPM" 'BEGIN { printf "%.4f", r * (1 + p / 1e6) / 1000 }')
      lo=$(awk -v w="$want" 'BEGIN { print w * 0.9995 }')
      hi=$(awk -v w="$want" 'BEGIN { print w * 1.0005 }')
      ok=$(within "$got" "$lo" "$hi")
      [ "$rc" = 0 ] || ok=0
      check "$speed" feedback "$ok" "aplay rc $rc; ppm $AUDIO_PPM: the host sent $got frames per 1 ms packet, expected $want (nominal $(awk -v r="$RATE" 'BEGIN { printf "%.4f", r / 1000 }'))"
      n=$(xruns /tmp/aplay.err)
      check "$speed" feedback-xrun "$([ "$n" = 0 ] && echo 1 || echo 0)" "$n xrun messages"
    else
      check "$speed" feedback 0 "no card"
      stop
    fi
  fi
  say "audio $speed took $(awk -v a="$ts" -v b="$(uptime_s)" 'BEGIN { printf "%.1f", b - a }') s"
done
say "audio took $(awk -v a="$t0" -v b="$(uptime_s)" 'BEGIN { printf "%.1f", b - a }') s"
conformance_exit 0
