//! usbredir for usbfn: QEMU guests attach usbfn devices with `-device usb-redir`, with no
//! root and no kernel module on either side.
//!
//! - [`proto`]: the sans-IO codec (hello and capability negotiation, every control and data
//!   packet, limits checked before allocation, incremental decoding).
//! - [`host`]: the usb-host side over a [`usbfn::Controller`]'s `BusPort`: one connection
//!   drives one device, the core does chapter 9.
#![forbid(unsafe_code)]

pub mod host;
pub mod proto;
pub mod server;
