#![no_main]
//! A server's bytes into the USB/IP client's decoders (see `usbfn_fuzz::usbip`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| usbfn_fuzz::usbip::client_stream(data));
