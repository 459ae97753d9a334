//! The bus clock: (micro)frames counted from the last bus reset, computed from the `now`
//! every core input carries. Nothing here reads a clock.
//!
//! Full speed counts 1 ms frames; high speed and SuperSpeed count 125 µs microframes (a
//! SuperSpeed "bus interval"). Absolute frame numbers are `u64` and never wrap; the host sees
//! them modulo [`FRAME_NUMBER_MODULUS`] (the USB 11-bit frame number, times 8 at high speed
//! and SuperSpeed: the unit Linux uses for `urb->start_frame` there).

use std::time::{Duration, Instant};

use crate::types::BusSpeed;

/// Frame numbers the host sees wrap at this value: 2048 frames at full speed, 2048 × 8
/// microframes at high speed and SuperSpeed.
pub const FRAME_NUMBER_MODULUS: [u32; 3] = [2048, 2048 * 8, 2048 * 8];

/// The length of one (micro)frame at `speed`.
pub fn frame_duration(speed: BusSpeed) -> Duration {
    match speed {
        BusSpeed::Full => Duration::from_millis(1),
        BusSpeed::High | BusSpeed::Super => Duration::from_micros(125),
    }
}

/// The bus clock since the last reset.
#[derive(Copy, Clone, Debug)]
pub(crate) struct FrameClock {
    epoch: Instant,
    speed: BusSpeed,
}

impl FrameClock {
    pub(crate) fn new(epoch: Instant, speed: BusSpeed) -> Self {
        FrameClock { epoch, speed }
    }

    fn unit_nanos(&self) -> u128 {
        frame_duration(self.speed).as_nanos()
    }

    /// The frame in progress at `now` (0 before the epoch).
    pub(crate) fn frame_at(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.epoch).as_nanos();
        // Saturates on purpose: u64 frames of 125 µs last 73 million years.
        u64::try_from(elapsed / self.unit_nanos()).unwrap_or(u64::MAX)
    }

    /// When `frame` begins; `None` when that is beyond what `Instant` can express.
    pub(crate) fn start_of(&self, frame: u64) -> Option<Instant> {
        let nanos = u128::from(frame).checked_mul(self.unit_nanos())?;
        let nanos = u64::try_from(nanos).ok()?;
        self.epoch.checked_add(Duration::from_nanos(nanos))
    }

    fn modulus(&self) -> u64 {
        u64::from(FRAME_NUMBER_MODULUS[self.speed.index()])
    }

    /// The frame number the host sees for an absolute frame.
    pub(crate) fn wire(&self, frame: u64) -> u32 {
        u32::try_from(frame % self.modulus()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_per_speed() {
        let t0 = Instant::now();
        let fs = FrameClock::new(t0, BusSpeed::Full);
        let hs = FrameClock::new(t0, BusSpeed::High);
        let t = t0 + Duration::from_micros(2_600);
        assert_eq!(fs.frame_at(t), 2);
        assert_eq!(hs.frame_at(t), 20);
        assert_eq!(hs.start_of(20), Some(t0 + Duration::from_micros(2_500)));
        assert_eq!(fs.frame_at(t0), 0);
    }

    #[test]
    fn wire_numbers_wrap() {
        let t0 = Instant::now();
        let fs = FrameClock::new(t0, BusSpeed::Full);
        assert_eq!(fs.wire(2047), 2047);
        assert_eq!(fs.wire(2048 + 5), 5);
        let hs = FrameClock::new(t0, BusSpeed::Super);
        assert_eq!(hs.wire(16384 * 3 + 7), 7);
    }
}
