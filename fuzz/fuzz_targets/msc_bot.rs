#![no_main]
//! CBWs, SCSI CDBs and BOT's thirteen cases (see `usbfn_fuzz::msc`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| usbfn_fuzz::msc::run(data));
