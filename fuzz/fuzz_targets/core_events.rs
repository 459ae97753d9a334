#![no_main]
//! Scripts of bus and service calls on the sans-IO device (see `usbfn_fuzz::core_ops`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| usbfn_fuzz::core_ops::run(data));
