#![no_main]
//! WAV files and AudioControl requests (see `usbfn_fuzz::audio`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| usbfn_fuzz::audio::run(data));
