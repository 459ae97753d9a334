//! The AudioControl interface's class requests (UAC2 §5.2): CUR and RANGE of each clock
//! source's sampling frequency, CUR of its validity, and CUR/RANGE of each feature unit's
//! master mute and volume. Everything else is answered with a STALL, as the specification
//! asks for an unsupported control.

use usbfn_wire::{Direction, Recipient, RequestType, SetupPacket};

use super::descriptors::{MIC_CLOCK, MIC_FU, SPEAKER_CLOCK, SPEAKER_FU};

/// `CUR`.
pub const CUR: u8 = 0x01;
/// `RANGE`.
pub const RANGE: u8 = 0x02;
/// Clock source control: sampling frequency (4 bytes).
pub const CS_SAM_FREQ: u8 = 0x01;
/// Clock source control: clock validity (1 byte).
pub const CS_CLOCK_VALID: u8 = 0x02;
/// Feature unit control: mute (1 byte).
pub const FU_MUTE: u8 = 0x01;
/// Feature unit control: volume (2 bytes, 1/256 dB).
pub const FU_VOLUME: u8 = 0x02;

/// Sampling frequencies the clock sources offer.
pub const RATES: [u32; 2] = [44_100, 48_000];
/// Volume range in 1/256 dB: -100 dB ..= 0 dB in 1 dB steps (f_uac2's defaults).
pub const VOLUME_MIN: i16 = -100 * 256;
/// See [`VOLUME_MIN`].
pub const VOLUME_MAX: i16 = 0;
/// See [`VOLUME_MIN`].
pub const VOLUME_RES: i16 = 256;

/// One path's (speaker or microphone) settings, as the host set them.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PathState {
    /// The clock source's sampling frequency.
    pub rate: u32,
    /// The feature unit's master mute (starts off: a muted start silences the path).
    pub mute: bool,
    /// The feature unit's master volume, 1/256 dB.
    pub volume: i16,
}

impl PathState {
    /// Unmuted at 0 dB.
    pub fn new(rate: u32) -> Self {
        PathState {
            rate,
            mute: false,
            volume: 0,
        }
    }

    /// The linear gain mute and volume give (exactly 1.0 at 0 dB, 0.0 when muted).
    pub fn gain(&self) -> f64 {
        if self.mute {
            0.0
        } else if self.volume == 0 {
            1.0
        } else {
            10f64.powf(f64::from(self.volume) / 256.0 / 20.0)
        }
    }
}

/// Both paths.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ControlState {
    /// Host to device.
    pub speaker: PathState,
    /// Device to host.
    pub microphone: PathState,
}

/// A request this interface answers.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// `CUR` or `RANGE`.
    pub request: u8,
    /// The entity (`wIndex` high byte).
    pub entity: u8,
    /// The control selector (`wValue` high byte).
    pub selector: u8,
    /// The channel (`wValue` low byte).
    pub channel: u8,
    /// Device to host (get) or host to device (set).
    pub direction: Direction,
    /// `wLength`.
    pub length: u16,
}

impl Request {
    /// The class request to an interface in `setup`, if it is one.
    pub fn from_setup(setup: &SetupPacket) -> Option<Request> {
        if setup.request_type() != RequestType::Class || setup.recipient() != Recipient::Interface {
            return None;
        }
        let [channel, selector] = setup.w_value.to_le_bytes();
        Some(Request {
            request: setup.b_request,
            entity: setup.w_index.to_le_bytes()[1],
            selector,
            channel,
            direction: setup.direction(),
            length: setup.w_length,
        })
    }
}

impl ControlState {
    /// Both paths at `rate`, unmuted at 0 dB.
    pub fn new(rate: u32) -> Self {
        ControlState {
            speaker: PathState::new(rate),
            microphone: PathState::new(rate),
        }
    }

    fn clock(&mut self, entity: u8) -> Option<&mut PathState> {
        match entity {
            SPEAKER_CLOCK => Some(&mut self.speaker),
            MIC_CLOCK => Some(&mut self.microphone),
            _ => None,
        }
    }

    fn unit(&mut self, entity: u8) -> Option<&mut PathState> {
        match entity {
            SPEAKER_FU => Some(&mut self.speaker),
            MIC_FU => Some(&mut self.microphone),
            _ => None,
        }
    }

    /// The data stage of a get request (cut to `wLength`), or `None` for a STALL.
    pub fn get(&mut self, r: &Request) -> Option<Vec<u8>> {
        if r.direction != Direction::In || r.channel != 0 {
            return None;
        }
        let mut data = if let Some(path) = self.clock(r.entity) {
            match (r.request, r.selector) {
                (CUR, CS_SAM_FREQ) => path.rate.to_le_bytes().to_vec(),
                (CUR, CS_CLOCK_VALID) => vec![1],
                (RANGE, CS_SAM_FREQ) => {
                    let mut out = u16::try_from(RATES.len())
                        .unwrap_or(0)
                        .to_le_bytes()
                        .to_vec();
                    for rate in RATES {
                        out.extend_from_slice(&rate.to_le_bytes());
                        out.extend_from_slice(&rate.to_le_bytes());
                        out.extend_from_slice(&0u32.to_le_bytes());
                    }
                    out
                }
                _ => return None,
            }
        } else if let Some(path) = self.unit(r.entity) {
            match (r.request, r.selector) {
                (CUR, FU_MUTE) => vec![u8::from(path.mute)],
                (CUR, FU_VOLUME) => path.volume.to_le_bytes().to_vec(),
                (RANGE, FU_VOLUME) => {
                    let mut out = 1u16.to_le_bytes().to_vec();
                    for v in [VOLUME_MIN, VOLUME_MAX, VOLUME_RES] {
                        out.extend_from_slice(&v.to_le_bytes());
                    }
                    out
                }
                _ => return None,
            }
        } else {
            return None;
        };
        data.truncate(usize::from(r.length));
        Some(data)
    }

    /// The length of a set request's data stage, or `None` for a STALL (checked before the
    /// data is read).
    pub fn set_length(&mut self, r: &Request) -> Option<usize> {
        if r.direction != Direction::Out || r.request != CUR || r.channel != 0 {
            return None;
        }
        let needed = if self.clock(r.entity).is_some() {
            (r.selector == CS_SAM_FREQ).then_some(4)?
        } else if self.unit(r.entity).is_some() {
            match r.selector {
                FU_MUTE => 1,
                FU_VOLUME => 2,
                _ => return None,
            }
        } else {
            return None;
        };
        (usize::from(r.length) == needed).then_some(needed)
    }

    /// Apply a set request's data; `Err` names what was refused (then STALL).
    pub fn set(&mut self, r: &Request, data: &[u8]) -> Result<(), String> {
        if self.set_length(r) != Some(data.len()) {
            return Err(format!(
                "{} bytes for entity {} control {}",
                data.len(),
                r.entity,
                r.selector
            ));
        }
        if let Some(path) = self.clock(r.entity) {
            let rate = u32::from_le_bytes(
                data.try_into()
                    .map_err(|_| "sampling frequency is 4 bytes".to_owned())?,
            );
            if !RATES.contains(&rate) {
                return Err(format!("sampling frequency {rate} Hz (offered: {RATES:?})"));
            }
            path.rate = rate;
        } else if let Some(path) = self.unit(r.entity) {
            match data {
                [m] => path.mute = *m != 0,
                [lo, hi] => {
                    path.volume = i16::from_le_bytes([*lo, *hi]).clamp(VOLUME_MIN, VOLUME_MAX);
                }
                _ => return Err("unexpected control length".to_owned()),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(request_type: u8, request: u8, value: u16, index: u16, length: u16) -> Request {
        Request::from_setup(&SetupPacket {
            bm_request_type: request_type,
            b_request: request,
            w_value: value,
            w_index: index,
            w_length: length,
        })
        .expect("class interface request")
    }

    #[test]
    fn sampling_frequency_cur_range_and_set() {
        let mut s = ControlState::new(48_000);
        let index = u16::from(MIC_CLOCK) << 8;
        let range2 = setup(0xa1, RANGE, 0x0100, index, 2);
        assert_eq!(s.get(&range2), Some(vec![2, 0]), "the count first");
        let range = setup(0xa1, RANGE, 0x0100, index, 26);
        let table = s.get(&range).expect("answered");
        assert_eq!(table.len(), 26);
        assert_eq!(&table[2..6], &44_100u32.to_le_bytes());
        assert_eq!(&table[14..18], &48_000u32.to_le_bytes());
        let cur = setup(0xa1, CUR, 0x0100, index, 4);
        assert_eq!(s.get(&cur), Some(48_000u32.to_le_bytes().to_vec()));
        let valid = setup(0xa1, CUR, 0x0200, index, 1);
        assert_eq!(s.get(&valid), Some(vec![1]));
        let set = setup(0x21, CUR, 0x0100, index, 4);
        assert_eq!(s.set_length(&set), Some(4));
        s.set(&set, &44_100u32.to_le_bytes()).expect("offered rate");
        assert_eq!(s.microphone.rate, 44_100);
        assert_eq!(s.speaker.rate, 48_000, "each path has its own clock");
        assert!(s.set(&set, &32_000u32.to_le_bytes()).is_err());
        assert_eq!(s.microphone.rate, 44_100);
        assert!(s.set(&set, &[1, 2]).is_err(), "short data");
    }

    #[test]
    fn mute_and_volume() {
        let mut s = ControlState::new(48_000);
        let index = u16::from(SPEAKER_FU) << 8 | 3;
        let mute = setup(0xa1, CUR, 0x0100, index, 1);
        assert_eq!(s.get(&mute), Some(vec![0]), "starts unmuted");
        s.set(&setup(0x21, CUR, 0x0100, index, 1), &[1])
            .expect("mute");
        assert!(s.speaker.mute && !s.microphone.mute);
        assert_eq!(s.speaker.gain(), 0.0);
        let range = setup(0xa1, RANGE, 0x0200, index, 8);
        assert_eq!(
            s.get(&range),
            Some(vec![1, 0, 0x00, 0x9c, 0, 0, 0x00, 0x01])
        );
        s.set(
            &setup(0x21, CUR, 0x0200, index, 2),
            &(-6i16 * 256).to_le_bytes(),
        )
        .expect("volume");
        assert_eq!(s.speaker.volume, -1536);
        s.set(
            &setup(0x21, CUR, 0x0200, index, 2),
            &(10i16 * 256).to_le_bytes(),
        )
        .expect("clamped");
        assert_eq!(s.speaker.volume, 0);
        assert_eq!(s.microphone.gain(), 1.0);
    }

    #[test]
    fn everything_else_stalls() {
        let mut s = ControlState::new(48_000);
        // A channel other than master, an unknown entity, an unknown selector, a set of a
        // read-only control, wrong wLength.
        assert_eq!(
            s.get(&setup(0xa1, CUR, 0x0201, u16::from(MIC_FU) << 8, 2)),
            None
        );
        assert_eq!(s.get(&setup(0xa1, CUR, 0x0100, 0x0900, 4)), None);
        assert_eq!(
            s.get(&setup(0xa1, CUR, 0x0300, u16::from(MIC_CLOCK) << 8, 4)),
            None
        );
        assert_eq!(
            s.set_length(&setup(0x21, CUR, 0x0200, u16::from(MIC_CLOCK) << 8, 1)),
            None
        );
        assert_eq!(
            s.set_length(&setup(0x21, CUR, 0x0100, u16::from(MIC_CLOCK) << 8, 2)),
            None
        );
        assert_eq!(
            s.get(&setup(0xa1, 0x03, 0x0100, u16::from(MIC_CLOCK) << 8, 4)),
            None
        );
    }
}
