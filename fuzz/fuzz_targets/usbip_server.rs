#![no_main]
//! A host's bytes into the USB/IP server's decoders (see `usbfn_fuzz::usbip`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| usbfn_fuzz::usbip::server_stream(data));
