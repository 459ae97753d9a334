#![no_main]
//! Frames on the daemon's IOCTL socket (see `usbfn_fuzz::ipc`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| usbfn_fuzz::ipc::frames(data));
