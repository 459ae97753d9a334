#![no_main]
//! See `usbfn_fuzz::classes::cdc_request`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| usbfn_fuzz::classes::cdc_request(data));
