#![no_main]
//! NCM transfer blocks from the host (see `usbfn_fuzz::ntb`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| usbfn_fuzz::ntb::run(data));
