//! The audio function's inputs: a WAV file (the microphone's `source=`, and what `usbfn wav`
//! reads) and the AudioControl class requests a host sends.
//!
//! Input: byte 0 even, the rest is a WAV file: parsed, measured, compared with itself (all
//! samples equal, correlation 1 unless silent) and re-encoded through the writer's header.
//! Byte 0 odd: a script of 10-byte records (8-byte setup packet, 2 data bytes for a set)
//! applied to one `ControlState`: answers are never longer than wLength, the rates stay
//! offered ones, the volume stays in range.

use usbfn::functions::audio::control::{ControlState, RATES, Request, VOLUME_MAX, VOLUME_MIN};
use usbfn::functions::audio::wav::{self, Wav};
use usbfn_wire::{Direction, SetupPacket};

/// Run one input.
pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        wav_file(rest);
    } else {
        control(rest);
    }
}

fn wav_file(bytes: &[u8]) {
    let Ok(w) = Wav::parse(bytes) else {
        return;
    };
    assert!(w.data.len() <= bytes.len());
    assert_eq!(
        w.data.len() % w.format.frame_bytes(),
        0,
        "whole frames only"
    );
    let a = wav::analyze(&w);
    assert_eq!(a.frames, w.frames());
    assert!(a.frequency.is_finite() && a.frequency >= 0.0);
    if let Ok(c) = wav::compare(&w, &w, 8) {
        assert_eq!(c.equal, c.samples, "a file equals itself");
    }
    let mut again = wav::header(w.format, u32::try_from(w.data.len()).unwrap_or(0)).to_vec();
    again.extend_from_slice(&w.data);
    let back = Wav::parse(&again).expect("the writer's header parses");
    assert_eq!(back, w);
}

fn control(script: &[u8]) {
    let mut state = ControlState::new(48_000);
    for record in script.chunks_exact(10).take(256) {
        let mut setup = [0u8; 8];
        setup.copy_from_slice(&record[..8]);
        let setup = SetupPacket::from_bytes(setup);
        let Some(r) = Request::from_setup(&setup) else {
            continue;
        };
        if r.direction == Direction::In {
            if let Some(answer) = state.get(&r) {
                assert!(answer.len() <= usize::from(r.length));
            }
        } else if let Some(n) = state.set_length(&r) {
            let data = record[8..]
                .iter()
                .copied()
                .cycle()
                .take(n)
                .collect::<Vec<_>>();
            let _ = state.set(&r, &data);
        }
        for path in [state.speaker, state.microphone] {
            assert!(RATES.contains(&path.rate));
            assert!((VOLUME_MIN..=VOLUME_MAX).contains(&path.volume));
        }
    }
}
