//! The real-time arithmetic of the streams: how many frames each 1 ms packet carries, the
//! feedback value, and the microphone's samples.
//!
//! Both streams move one packet per millisecond of bus time at both speeds (bInterval 1 at
//! full speed, 4 at high speed, as the kernel's `f_uac2` does). The core completes each
//! isochronous packet in its own (micro)frame, so a microphone that always has packets
//! queued sends exactly `rate` frames per second of bus time: the packet sizes follow an
//! exact accumulator (44.1 kHz: nine packets of 44 frames, then one of 45), never a clock
//! read by the service.

use std::sync::Arc;

use usbfn_core::BusSpeed;

use super::wav::{Wav, push_sample, to_sample};

/// Frames per packet for a clock of `rate` × (1 + ppm/10⁶) frames per second, one packet per
/// millisecond: the running remainder keeps the long-run count exact.
#[derive(Clone, Debug)]
pub struct PacketClock {
    /// Frames per second × 10⁶ (rate × (10⁶ + ppm)).
    micro_rate: u64,
    /// Remainder, in units of 1/(1000 × 10⁶) frame.
    remainder: u64,
}

impl PacketClock {
    /// A clock of `rate` Hz running `ppm` parts per million fast (negative: slow).
    pub fn new(rate: u32, ppm: i32) -> Self {
        let scale = (1_000_000i64 + i64::from(ppm)).max(0) as u64;
        PacketClock {
            micro_rate: u64::from(rate) * scale,
            remainder: 0,
        }
    }

    /// Frames in the next 1 ms packet.
    pub fn next_frames(&mut self) -> usize {
        let total = self.remainder + self.micro_rate;
        self.remainder = total % 1_000_000_000;
        usize::try_from(total / 1_000_000_000).unwrap_or(0)
    }
}

/// The feedback endpoint's value for a consumption of `rate` × (1 + ppm/10⁶) frames per
/// second: 10.14 frames per frame in 3 bytes at full speed, 16.16 frames per microframe in
/// 4 bytes at high speed (USB 2.0 §5.12.4.2, the formats `snd-usb-audio` detects).
pub fn feedback(speed: BusSpeed, rate: u32, ppm: i32) -> Vec<u8> {
    let scale = (1_000_000i64 + i64::from(ppm)).max(0) as u128;
    let per_second = u128::from(rate) * scale; // frames/s × 10⁶
    match speed {
        BusSpeed::Full => {
            let v = (per_second << 14) / (1000 * 1_000_000);
            let v = u32::try_from(v).unwrap_or(u32::MAX).min(0x00ff_ffff);
            v.to_le_bytes()[..3].to_vec()
        }
        _ => {
            let v = (per_second << 16) / (8000 * 1_000_000);
            u32::try_from(v).unwrap_or(u32::MAX).to_le_bytes().to_vec()
        }
    }
}

/// Where the microphone's samples come from.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// A sine of this frequency (Hz), amplitude 1/2 of full scale, in every channel.
    Sine(f64),
    /// A WAV file, looped; channel `c` takes the file's channel `c % channels`, and a file
    /// at another rate is stepped through at its own rate (nearest frame).
    File(Arc<Wav>),
}

/// The microphone's sample generator for one stream.
#[derive(Clone, Debug)]
pub struct Generator {
    source: Source,
    rate: u32,
    /// Frames generated since the stream started.
    frame: u64,
}

impl Generator {
    /// Start `source` at frame 0 for a stream at `rate`.
    pub fn new(source: Source, rate: u32) -> Self {
        Generator {
            source,
            rate: rate.max(1),
            frame: 0,
        }
    }

    /// Append `frames` frames of `channels` × `bits` samples, scaled by `gain`.
    pub fn fill(&mut self, out: &mut Vec<u8>, frames: usize, channels: u8, bits: u16, gain: f64) {
        for _ in 0..frames {
            for c in 0..usize::from(channels) {
                let v = self.sample(c);
                let v = if gain == 1.0 {
                    v
                } else {
                    to_sample(f64::from(v) * gain)
                };
                push_sample(out, v, bits);
            }
            self.frame += 1;
        }
    }

    fn sample(&self, channel: usize) -> i32 {
        match &self.source {
            Source::Sine(hz) => {
                // The phase from the frame count (not a running sum): no drift over hours.
                let cycles = (hz * self.frame as f64 / f64::from(self.rate)).fract();
                to_sample(f64::from(1 << 22) * (2.0 * std::f64::consts::PI * cycles).sin())
            }
            Source::File(wav) => {
                let frames = wav.frames() as u64;
                if frames == 0 {
                    return 0;
                }
                let at = u128::from(self.frame) * u128::from(wav.format.rate)
                    / u128::from(self.rate)
                    % u128::from(frames);
                let channels = usize::from(wav.format.channels.max(1));
                wav.sample(usize::try_from(at).unwrap_or(0), channel % channels)
            }
        }
    }
}

/// Scale samples of `bits` in place by `gain` (mute: 0.0 writes silence; 1.0 leaves them
/// bit-exact).
pub fn apply_gain(data: &mut [u8], bits: u16, gain: f64) {
    if gain == 1.0 {
        return;
    }
    let size = usize::from(bits / 8).max(1);
    for chunk in data.chunks_exact_mut(size) {
        let v = super::wav::read_sample(chunk, bits);
        let mut out = Vec::with_capacity(size);
        push_sample(&mut out, to_sample(f64::from(v) * gain), bits);
        chunk.copy_from_slice(&out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_sizes_add_up_exactly() {
        let mut c = PacketClock::new(44_100, 0);
        let sizes: Vec<usize> = (0..10).map(|_| c.next_frames()).collect();
        assert_eq!(sizes, [44, 44, 44, 44, 44, 44, 44, 44, 44, 45]);
        let mut c = PacketClock::new(48_000, 0);
        assert!((0..1000).all(|_| c.next_frames() == 48));
        // An hour: exactly rate × 3600 frames.
        let mut c = PacketClock::new(44_100, 0);
        let total: usize = (0..3_600_000).map(|_| c.next_frames()).sum();
        assert_eq!(total, 44_100 * 3600);
        // 1000 ppm fast: 48048 frames a second.
        let mut c = PacketClock::new(48_000, 1000);
        assert_eq!((0..1000).map(|_| c.next_frames()).sum::<usize>(), 48_048);
    }

    #[test]
    fn feedback_formats() {
        // 48 frames per frame in 10.14; 6 frames per microframe in 16.16.
        assert_eq!(feedback(BusSpeed::Full, 48_000, 0), [0x00, 0x00, 0x0c]);
        assert_eq!(feedback(BusSpeed::High, 48_000, 0), [0, 0, 6, 0]);
        // 44.1: 44.1 × 2^14 = 722534.4 → 722534; 5.5125 × 2^16 = 361267.2 → 361267.
        assert_eq!(
            feedback(BusSpeed::Full, 44_100, 0),
            722_534u32.to_le_bytes()[..3]
        );
        assert_eq!(
            feedback(BusSpeed::High, 44_100, 0),
            361_267u32.to_le_bytes()
        );
        assert_eq!(
            u32::from_le_bytes(feedback(BusSpeed::High, 48_000, 5000).try_into().unwrap()),
            395_182
        );
    }

    #[test]
    fn sine_and_file_sources() {
        let mut g = Generator::new(Source::Sine(1000.0), 48_000);
        let mut out = Vec::new();
        g.fill(&mut out, 48, 2, 16, 1.0);
        assert_eq!(out.len(), 48 * 4);
        assert_eq!(&out[..4], &[0, 0, 0, 0]);
        // Frame 12 is a quarter period: +1/2 full scale in both channels.
        assert_eq!(&out[48..52], &[0x00, 0x40, 0x00, 0x40]);
        let wav = Wav {
            format: super::super::wav::WavFormat {
                rate: 48_000,
                channels: 1,
                bits: 16,
            },
            data: vec![1, 0, 2, 0, 3, 0],
        };
        let mut g = Generator::new(Source::File(Arc::new(wav)), 48_000);
        let mut out = Vec::new();
        g.fill(&mut out, 4, 2, 16, 1.0);
        assert_eq!(
            out,
            [1, 0, 1, 0, 2, 0, 2, 0, 3, 0, 3, 0, 1, 0, 1, 0],
            "looped"
        );
        let mut muted = out.clone();
        apply_gain(&mut muted, 16, 0.0);
        assert!(muted.iter().all(|b| *b == 0));
        let mut same = out.clone();
        apply_gain(&mut same, 16, 1.0);
        assert_eq!(same, out);
    }
}
