//! usbfn-ipc: the usbfn daemon's IOCTL socket, so that GenericUSBFn services run in their own
//! processes (crash-isolated, unprivileged, in any language), as they do on Windows.
//!
//! * [`frame`]: the sans-IO codec. The socket protocol *is* `DeviceIoControl`: a REQUEST
//!   carries a request id, an `IOCTL_GENERICUSBFN_*` code, the input bytes and the output
//!   buffer's size (and, for `METHOD_IN_DIRECT` codes, its contents); a COMPLETION carries the
//!   id, an NTSTATUS and the output bytes; a CANCEL is `CancelIoEx`. Limits are named
//!   constants ([`MAX_FRAME_LEN`], [`MAX_OUTSTANDING_REQUESTS`], ...). `docs/ipc.md` specifies
//!   the bytes for other languages.
//! * [`daemon`]: every interface of a [`usbfn::Controller`] as a Unix socket named by its
//!   InterfaceGUID in a runtime directory ([`path`]).
//! * [`RemoteInterface`]: the Rust client, implementing [`usbfn::ServiceApi`] like the
//!   in-process [`usbfn::Interface`]; [`arrival`] lists and watches (inotify) interfaces.
//!
//! Moving a service out of the daemon's process is one line:
//!
//! ```no_run
//! # async fn demo(controller: usbfn::Controller) -> Result<(), Box<dyn std::error::Error>> {
//! use usbfn::functions::gadget_zero::{self, INTERFACE_GUID};
//! # let in_process = false;
//! # if in_process {
//! let iface = controller.open(INTERFACE_GUID)?;
//! # gadget_zero::run(iface, Default::default()).await?;
//! # }
//! let iface = usbfn_ipc::RemoteInterface::wait_and_open("/run/usbfn", INTERFACE_GUID).await?;
//! gadget_zero::run(iface, Default::default()).await?;
//! # Ok(()) }
//! ```

// `unsafe` is denied everywhere and allowed for one block in `arrival` (registering the
// inotify descriptor with tokio); the codec modules forbid it outright.
#![deny(unsafe_code)]

pub mod arrival;
mod client;
pub mod daemon;
mod error;
pub mod frame;
#[cfg(test)]
mod frame_tests;
pub mod outstanding;
pub mod path;

pub use client::{
    BUSY_GRACE, ClientError, HELLO_TIMEOUT, PendingIoctl, RemoteInterface, RemoteTransfer,
};
pub use error::{FrameError, LimitError};
pub use frame::{
    MAX_BUFFERED_BYTES, MAX_DATA_LEN, MAX_FRAME_LEN, MAX_INPUT_LEN, MAX_OUTSTANDING_REQUESTS,
    PROTOCOL_VERSION,
};

/// `STATUS_SHARING_VIOLATION`: the HELLO status when another service has the interface open
/// (what `CreateFile` of an exclusive device reports on Windows).
pub const STATUS_SHARING_VIOLATION: usbfn_abi::NtStatus = usbfn_abi::NtStatus(0xC000_0043);

// `usize_from` widens; usbfn builds for 32- and 64-bit targets only.
const _: () = assert!(usize::BITS >= u32::BITS);

/// A wire `u32` (a length, a count) as a `usize`: lossless, `usize` has at least 32 bits
/// (asserted above), so no value needs clamping.
pub(crate) const fn usize_from(n: u32) -> usize {
    n as usize
}

/// Conversions between the IOCTL buffers and the service API's values, for other clients.
pub mod convert {
    pub use crate::client::{
        bus_event_from_notification, class_info_from_packet, completion_status, status_error,
    };
}
