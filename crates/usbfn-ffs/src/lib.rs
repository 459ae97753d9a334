//! usbfn on a real USB device controller: the Linux **FunctionFS** backend.
//!
//! The kernel's gadget framework (libcomposite, configured through configfs) does chapter 9
//! on the controller; each usbfn service-owned function becomes one FunctionFS function whose
//! ep0 events and endpoint files this crate maps to the GenericUSBFn service API. A service
//! written against [`usbfn_api::ServiceApi`] runs unchanged on [`FfsInterface`], and
//! [`FfsDevice`] is a [`usbfn_api::Backend`] the daemon fronts.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use usbfn_ffs::{FfsDevice, FfsOptions};
//! let config = usbfn_core::DeviceConfig::from_toml(r#"
//!     [device]
//!     vendor_id = 0x1209
//!     product_id = 0x0001
//!     [[interfaces]]
//!     name = "hello"
//!     endpoints = [{ direction = "in", type = "bulk" }]
//! "#)?;
//! let device = FfsDevice::new(&config, &FfsOptions::new("dummy_udc.0"))?;
//! let iface = device.open("hello")?; // a ServiceApi, as on USB/IP
//! // ... run a service on `iface`; activate_bus() binds the gadget to the UDC ...
//! # drop(iface);
//! device.close().await; // unbind, unmount, remove the gadget
//! # Ok(()) }
//! ```
//!
//! Layout: `blob` (descriptor and string blobs, safe, tested with byte vectors), `configfs`
//! (gadget creation, binding, teardown, stale gadgets), `sys` (every `unsafe` system call,
//! each with a `// SAFETY:` line), `aio` (Linux AIO with an eventfd: many transfers in
//! flight per endpoint), `affinity` (the CPU of the I/O thread), `ep0` (one thread per function serving ep0), `device`
//! ([`FfsDevice`]: events → bus events, binding), `interface` ([`FfsInterface`]).

#![cfg(target_os = "linux")]

mod affinity;
mod aio;
pub mod blob;
mod configfs;
mod device;
mod ep0;
mod error;
mod interface;
#[allow(unsafe_code)] // every system call, each block with its SAFETY comment
mod sys;

pub use affinity::{IoCpu, allowed_cpus, pin_current_thread, pin_io_thread};
pub use aio::MAX_IN_FLIGHT;
pub use configfs::{GADGET_ROOT, UDC_ROOT, list_udcs, udc_holder};
pub use device::{DEFAULT_MOUNT_ROOT, FfsDevice, FfsOptions, MAX_QUEUED_EVENTS};
pub use error::FfsError;
pub use interface::{FfsInterface, FfsTransfer};
