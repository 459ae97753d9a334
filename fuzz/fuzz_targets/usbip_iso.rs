#![no_main]
//! Isochronous URBs from a hostile host through the server's decode path and a paced device
//! (see `usbfn_fuzz::iso`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| usbfn_fuzz::iso::run(data));
