#![no_main]
//! Descriptor bytes and setup packets (see `usbfn_fuzz::descriptors`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| usbfn_fuzz::descriptors::run(data));
