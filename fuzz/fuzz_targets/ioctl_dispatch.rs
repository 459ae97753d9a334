#![no_main]
//! Raw IOCTLs from a hostile service (see `usbfn_fuzz::ioctl`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| usbfn_fuzz::ioctl::run(data));
