#![no_main]
//! Device configuration files (see `usbfn_fuzz::config`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| usbfn_fuzz::config::run(data));
