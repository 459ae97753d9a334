//! The usbfn backend seam.
//!
//! Everything a service sees, and nothing that carries it: [`ServiceApi`] (one method per
//! `IOCTL_GENERICUSBFN_*`), its [`Error`], the raw IOCTL dispatcher [`ioctl::dispatch`] that
//! turns `DeviceIoControl` bytes into `ServiceApi` calls for any implementation, and
//! [`Backend`], the device the daemon fronts. A backend crate depends on this crate (and the
//! core's plain types it re-exports), not on the bus-backed runtime.
//!
//! ```
//! use usbfn_api::{BusSpeed, Error, ServiceApi};
//!
//! /// A service written only against the seam runs on every backend.
//! async fn pipe_count<S: ServiceApi>(iface: &S) -> Result<usize, Error> {
//!     let info = iface.class_info().await?;
//!     iface.activate_bus().await?;
//!     Ok(info.at(BusSpeed::High).pipes.len())
//! }
//! ```
//!
//! See `docs/architecture.md` ("The backend seam") for which trait a new backend implements
//! and the call sequence.

#![forbid(unsafe_code)]

mod backend;
mod error;
pub mod ioctl;
mod service;

pub use backend::{Backend, InterfaceEntry};
pub use error::Error;
pub use service::ServiceApi;
pub use usbfn_core::{
    BusEvent, BusSpeed, ClassInfo, ClassInterfaceInfo, CompletionStatus, PipeId, ServiceError,
    TransferCompletion, TransferId,
};
