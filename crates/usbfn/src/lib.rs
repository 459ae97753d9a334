//! usbfn: write USB device functions in user mode, GenericUSBFn style.
//!
//! A [`Controller`] owns one device built from a [`DeviceConfig`]; services open its
//! interfaces ([`Controller::open`]) and talk to them with one method per
//! `IOCTL_GENERICUSBFN_*` ([`Interface`]); a bus (USB/IP, or the in-process [`host`])
//! connects a host through a [`BusPort`].
//!
//! ```text
//!   service ──▶ Interface ──┐                     ┌──▶ BusPort ◀── USB/IP server / in-process host
//!                           ▼                     │
//!                     Controller (tokio glue) ── usbfn-core::Device (sans-IO)
//! ```
//!
//! A minimal service (an IN pipe that says hello to whoever reads it):
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), usbfn::Error> {
//! use usbfn::{Controller, DeviceConfig, BusEvent};
//! let config = DeviceConfig::from_toml(r#"
//!     [device]
//!     vendor_id = 0x1209
//!     product_id = 0x0001
//!     [[interfaces]]
//!     name = "hello"
//!     [[interfaces.endpoints]]
//!     direction = "in"
//!     type = "bulk"
//! "#).expect("valid TOML");
//! let controller = Controller::new(&config)?;
//! let iface = controller.open("hello")?;
//! let pipe = iface.class_info()?.per_speed[1].pipes[0].1;
//! iface.activate_bus()?;
//! # let host = usbfn::host::Host::connect(&controller, usbfn::BusSpeed::High)?;
//! # host.set_configuration(1).await?;
//! while let Ok(event) = iface.next_event().await {
//!     if let BusEvent::Configured(_) = event {
//!         # let read = host.bulk_in(1, 512);
//!         iface.transfer_in(pipe, bytes::Bytes::from_static(b"hello")).await?;
//!         # assert_eq!(&read.await?.data[..], b"hello");
//!         break;
//!     }
//! }
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

mod api;
pub mod blocking;
pub mod bus_tap;
mod controller;
pub mod functions;
pub mod host;
mod interface;
pub mod ioctl;

pub use controller::{BusOutput, BusPort, Controller};
pub use interface::{Interface, Transfer};
pub use usbfn_api::{Backend, Error, InterfaceEntry, ServiceApi};
pub use usbfn_core::{
    BusEvent, BusSpeed, ClassInfo, CompletionStatus, DeviceConfig, FunctionId, PipeId,
    TransferCompletion, UrbCompletion,
};
