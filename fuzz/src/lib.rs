//! Harnesses behind usbfn's fuzz targets, and the seeds of their corpora.
//!
//! Each `fuzz_targets/<name>.rs` is one line calling into a module here, so the same code
//! also runs under `cargo test` (replaying the committed corpus) and from the seed generator
//! (`cargo run --bin gen-corpus` rewrites `corpus/`).
//!
//! | target | input | harness |
//! |---|---|---|
//! | `usbip_server` | bytes a host sends the server: op request, then URB commands | [`usbip::server_stream`] |
//! | `usbip_iso` | a script of iso CMD_SUBMITs (counts, offsets, lengths as the fuzzer likes), unlinks, service transfers, clock steps, resets | [`iso::run`] |
//! | `usbip_client` | bytes a server sends our client, after some URBs were submitted | [`usbip::client_stream`] |
//! | `core_events` | a script of bus and service calls on the sans-IO `Device` (`arbitrary`) | [`core_ops::run`] |
//! | `config_toml` | a device configuration file | [`config::run`] |
//! | `descriptors` | descriptor bytes (GET_DESCRIPTOR answers, registry blobs) and setup packets | [`descriptors::run`] |
//! | `ioctl_dispatch` | raw IOCTLs from a service into `Interface::ioctl`, with a host coming and going | [`ioctl::run`] |
//! | `msc_bot` | a LUN's flags, then CBWs (CBW, SCSI CDB, BOT case table) | [`msc::run`] |
//! | `audio` | a WAV file, or a script of AudioControl class requests | [`audio::run`] |
//! | `ntb_parser` | NCM transfer blocks a host sends on bulk OUT (format and block limit in the first two bytes) | [`ntb::run`] |
//! | `ipc_frame` | frames on the daemon's IOCTL socket, from a service or from the daemon | [`ipc::frames`] |
//! | `cdc_request` | a setup packet to the ACM function and a SET_LINE_CODING data stage | [`classes::cdc_request`] |
//! | `hid_request` | a setup packet to the HID function | [`classes::hid_request`] |
//! | `hid_command` | a line of the HID function's input FIFO | [`classes::hid_command`] |
//!
//! The harnesses check more than "no panic": decoded messages re-encode to themselves,
//! buffers stay within the configured limits, every URB and service transfer the device
//! accepts completes exactly once, and generated descriptors parse back.

pub mod audio;
pub mod classes;
pub mod config;
pub mod core_ops;
pub mod descriptors;
pub mod ioctl;
pub mod ipc;
pub mod iso;
pub mod msc;
pub mod ntb;
pub mod seeds;
pub mod usbip;
