#![no_main]
//! See `usbfn_fuzz::classes::hid_request`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| usbfn_fuzz::classes::hid_request(data));
