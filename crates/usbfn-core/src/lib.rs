//! The usbfn function controller: a sans-IO USB device with GenericUSBFn semantics.
//!
//! ```text
//!  services ── activate, transfers, handshakes, pipe state ──▶ ┌────────┐ ◀── attach, reset, URBs, unlinks ── bus
//!  services ◀── bus events, transfer completions ──────────── │ Device │ ──── URB completions ─────────────▶ bus
//!                                                             └────────┘
//! ```
//!
//! [`DeviceConfig`] (the registry's twin, from TOML or code) is validated into a
//! [`DeviceModel`], which generates descriptors per speed. A [`Device`] answers chapter 9
//! itself, forwards class and vendor requests to services, and moves data between host URBs
//! and service transfers packet by packet. It owns no sockets, threads or clocks: callers
//! pass `Instant`s in and poll outputs out, so every behaviour is testable without a host.
//!
//! ```
//! use std::time::Instant;
//! use usbfn_core::{Device, DeviceConfig, DeviceModel, BusSpeed, FunctionId};
//!
//! let config = DeviceConfig::from_toml(r#"
//!     [device]
//!     vendor_id = 0x1209
//!     product_id = 0x0001
//!     [[interfaces]]
//!     name = "loopback"
//!     [[interfaces.endpoints]]
//!     direction = "in"
//!     type = "bulk"
//! "#).unwrap();
//! let model = DeviceModel::build(&config).unwrap();
//! let now = Instant::now();
//! let mut device = Device::new(model, now).unwrap();
//! device.activate(FunctionId(0)).unwrap();
//! device.bus_attach(now);
//! device.bus_reset(BusSpeed::High, now);
//! assert_eq!(device.descriptors(BusSpeed::High).device[0], 18);
//! ```

#![forbid(unsafe_code)]

mod chapter9;
mod clock;
pub mod config;
mod control;
pub mod descriptors;
mod device;
mod event;
mod iso;
pub mod model;
pub mod msos;
mod pipe;
mod registry;
pub mod status;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
mod types;

pub use clock::{FRAME_NUMBER_MODULUS, frame_duration};
pub use config::{ConfigError, DeviceConfig};
pub use descriptors::{DescriptorSet, DescriptorTooLong};
pub use device::{
    BusRequest, ClassInfo, ClassInterfaceInfo, Device, DeviceState, Handshake,
    MAX_QUEUED_CONTROL_URBS, MAX_QUEUED_EVENTS, MAX_TRANSFER_LENGTH, MAX_TRANSFERS_PER_PIPE,
    ServiceError,
};
pub use event::BusEvent;
pub use iso::MAX_ISO_PACKETS;
pub use model::{DeviceModel, ValidationError};
pub use status::CompletionStatus;
pub use types::{
    BusSpeed, FunctionId, IsoCompletion, IsoPacket, IsoPacketResult, IsoRequest, PipeId,
    TransferCompletion, TransferId, TransferRequest, Urb, UrbCompletion, UrbId,
};

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // test indexes are small
mod pipe_model;
#[cfg(test)]
mod tests;
