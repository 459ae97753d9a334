#![no_main]
//! See `usbfn_fuzz::classes::hid_command`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| usbfn_fuzz::classes::hid_command(data));
