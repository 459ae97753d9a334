//! The USB Audio Class 2.0 class-specific descriptors of the function, byte by byte, with the
//! sizes Linux's `snd-usb-audio` checks (`include/linux/usb/audio-v2.h`).
//!
//! Entity IDs follow the kernel's `f_uac2.c`:
//!
//! ```text
//!  speaker:    USB OUT IT (1) ─▶ feature unit (7) ─▶ speaker OT (3)        clock 5
//!  microphone: microphone IT (2) ─▶ feature unit (8) ─▶ USB IN OT (4)      clock 6
//! ```

/// CS_INTERFACE.
const CS_INTERFACE: u8 = 0x24;
/// CS_ENDPOINT.
const CS_ENDPOINT: u8 = 0x25;

/// Input terminal of the speaker path: the USB OUT stream.
pub const USB_OUT_IT: u8 = 1;
/// Input terminal of the microphone path: the microphone.
pub const MIC_IT: u8 = 2;
/// Output terminal of the speaker path: the speaker.
pub const SPEAKER_OT: u8 = 3;
/// Output terminal of the microphone path: the USB IN stream.
pub const USB_IN_OT: u8 = 4;
/// Clock source of the speaker path.
pub const SPEAKER_CLOCK: u8 = 5;
/// Clock source of the microphone path.
pub const MIC_CLOCK: u8 = 6;
/// Feature unit (mute, volume) of the speaker path.
pub const SPEAKER_FU: u8 = 7;
/// Feature unit (mute, volume) of the microphone path.
pub const MIC_FU: u8 = 8;

/// The stream format both paths use.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct StreamFormat {
    /// Channels (1..=4).
    pub channels: u8,
    /// Bytes per sample in the stream (`bSubslotSize`: 2 or 3).
    pub subslot: u8,
    /// Valid bits per sample (`bBitResolution`: 16 or 24).
    pub bits: u8,
}

impl StreamFormat {
    /// Bytes per frame (one sample of every channel).
    pub fn frame_bytes(&self) -> usize {
        usize::from(self.channels) * usize::from(self.subslot)
    }

    /// `bmChannelConfig`: front left/right for stereo, front centre for mono, none
    /// (non-predefined positions) otherwise.
    fn channel_config(&self) -> u32 {
        match self.channels {
            1 => 0x4,
            2 => 0x3,
            _ => 0,
        }
    }
}

/// The AudioControl interface's class-specific descriptors: header, two clock sources, the
/// four terminals and two feature units.
pub fn audio_control(format: &StreamFormat) -> Vec<u8> {
    let mut body = Vec::new();
    for clock in [SPEAKER_CLOCK, MIC_CLOCK] {
        // bmAttributes 0x03: internal programmable clock; bmControls 0x07: sampling
        // frequency read/write, clock validity read-only.
        body.extend_from_slice(&[8, CS_INTERFACE, 0x0a, clock, 0x03, 0x07, 0, 0]);
    }
    body.extend(input_terminal(USB_OUT_IT, 0x0101, SPEAKER_CLOCK, format));
    body.extend(input_terminal(MIC_IT, 0x0201, MIC_CLOCK, format));
    body.extend(output_terminal(
        SPEAKER_OT,
        0x0301,
        SPEAKER_FU,
        SPEAKER_CLOCK,
    ));
    body.extend(output_terminal(USB_IN_OT, 0x0101, MIC_FU, MIC_CLOCK));
    body.extend(feature_unit(SPEAKER_FU, USB_OUT_IT, format.channels));
    body.extend(feature_unit(MIC_FU, MIC_IT, format.channels));
    let total = u16::try_from(body.len() + 9)
        .unwrap_or(u16::MAX)
        .to_le_bytes();
    // bcdADC 2.00, bCategory 0x08 (I/O box, as f_uac2), wTotalLength, bmControls 0.
    let mut out = vec![
        9,
        CS_INTERFACE,
        0x01,
        0x00,
        0x02,
        0x08,
        total[0],
        total[1],
        0,
    ];
    out.extend(body);
    out
}

/// An AudioStreaming interface's class-specific descriptors for alternate setting 1: AS
/// General (linked to `terminal`, PCM) and Format Type I.
pub fn audio_streaming(terminal: u8, format: &StreamFormat) -> Vec<u8> {
    let mut out = vec![16, CS_INTERFACE, 0x01, terminal, 0, 0x01];
    out.extend_from_slice(&1u32.to_le_bytes()); // bmFormats: PCM
    out.push(format.channels);
    out.extend_from_slice(&format.channel_config().to_le_bytes());
    out.push(0); // iChannelNames
    out.extend_from_slice(&[6, CS_INTERFACE, 0x02, 0x01, format.subslot, format.bits]);
    out
}

/// The class-specific isochronous data endpoint descriptor (no pitch control, no lock delay).
pub fn iso_data_endpoint() -> Vec<u8> {
    vec![8, CS_ENDPOINT, 0x01, 0, 0, 0, 0, 0]
}

fn input_terminal(id: u8, terminal_type: u16, clock: u8, format: &StreamFormat) -> Vec<u8> {
    let t = terminal_type.to_le_bytes();
    let mut out = vec![
        17,
        CS_INTERFACE,
        0x02,
        id,
        t[0],
        t[1],
        0,
        clock,
        format.channels,
    ];
    out.extend_from_slice(&format.channel_config().to_le_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]); // iChannelNames, bmControls, iTerminal
    out
}

fn output_terminal(id: u8, terminal_type: u16, source: u8, clock: u8) -> Vec<u8> {
    let t = terminal_type.to_le_bytes();
    vec![
        12,
        CS_INTERFACE,
        0x03,
        id,
        t[0],
        t[1],
        0,
        source,
        clock,
        0,
        0,
        0,
    ]
}

fn feature_unit(id: u8, source: u8, channels: u8) -> Vec<u8> {
    let len = 6 + 4 * (usize::from(channels) + 1);
    let mut out = vec![
        u8::try_from(len).unwrap_or(u8::MAX),
        CS_INTERFACE,
        0x06,
        id,
        source,
    ];
    // Master channel: mute (bits 0..1) and volume (bits 2..3) read/write; none per channel.
    out.extend_from_slice(&0x0fu32.to_le_bytes());
    for _ in 0..channels {
        out.extend_from_slice(&0u32.to_le_bytes());
    }
    out.push(0); // iFeature
    out
}

pub(crate) use usbfn_core::config::to_hex as hex;

#[cfg(test)]
mod tests {
    use super::*;

    const STEREO16: StreamFormat = StreamFormat {
        channels: 2,
        subslot: 2,
        bits: 16,
    };

    #[test]
    fn audio_control_sizes_and_total_length() {
        let ac = audio_control(&STEREO16);
        let sizes: Vec<(u8, u8)> = usbfn_wire::descriptors(&ac)
            .map(|d| {
                let d = d.expect("well formed").bytes;
                (d[0], d[2])
            })
            .collect();
        assert_eq!(
            sizes,
            [
                (9, 0x01),
                (8, 0x0a),
                (8, 0x0a),
                (17, 0x02),
                (17, 0x02),
                (12, 0x03),
                (12, 0x03),
                (18, 0x06),
                (18, 0x06)
            ]
        );
        assert_eq!(usize::from(u16::from_le_bytes([ac[6], ac[7]])), ac.len());
        assert_eq!(&ac[..6], &[9, 0x24, 1, 0, 2, 8], "bcdADC 2.00");
    }

    #[test]
    fn streaming_descriptors() {
        let f = StreamFormat {
            channels: 1,
            subslot: 3,
            bits: 24,
        };
        assert_eq!(
            audio_streaming(USB_IN_OT, &f),
            [
                16, 0x24, 1, 4, 0, 1, 1, 0, 0, 0, 1, 4, 0, 0, 0, 0, 6, 0x24, 2, 1, 3, 24
            ]
        );
        assert_eq!(iso_data_endpoint().len(), 8);
        assert_eq!(hex(&[1, 0xab]), "01 ab");
    }
}
