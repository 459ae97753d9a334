//! Errors of the service API.

use usbfn_abi::NtStatus;
use usbfn_core::{CompletionStatus, ServiceError};

/// Errors from the controller and the service API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is not valid.
    #[error(transparent)]
    Config(#[from] usbfn_core::ValidationError),
    /// A generated descriptor does not fit.
    #[error(transparent)]
    Descriptor(#[from] usbfn_core::DescriptorTooLong),
    /// No interface has that GUID or name.
    #[error("no interface with GUID or name {0:?}")]
    NoSuchInterface(String),
    /// The interface is already open by another service.
    #[error("interface {0:?} is already open by another service")]
    InterfaceBusy(String),
    /// A host is already connected.
    #[error("a host is already connected to this device")]
    BusBusy,
    /// The driver refused the request.
    #[error(transparent)]
    Refused(#[from] ServiceError),
    /// The transfer ended with an error status.
    #[error("transfer ended with status {0:?}")]
    Transfer(CompletionStatus),
    /// The device was dropped.
    #[error("the device is gone")]
    DeviceGone,
    /// A blocking call was made from inside an async runtime.
    #[error("blocking usbfn call made from inside an async runtime; use the async API there")]
    BlockingInAsync,
    /// A call that starts a task was made outside a tokio runtime.
    #[error(
        "{0} needs a tokio runtime (call it inside one, or pass a runtime handle to the _in variant)"
    )]
    NoRuntime(&'static str),
}

impl Error {
    /// The NTSTATUS a GenericUSBFn service would see.
    pub fn to_ntstatus(&self) -> NtStatus {
        match self {
            Error::Refused(e) => e.to_ntstatus(),
            Error::Transfer(s) => s.to_ntstatus(),
            Error::NoSuchInterface(_) => NtStatus::STATUS_INVALID_PARAMETER,
            Error::InterfaceBusy(_) | Error::BusBusy => NtStatus::STATUS_INVALID_DEVICE_STATE,
            Error::DeviceGone => NtStatus::STATUS_DEVICE_NOT_CONNECTED,
            Error::BlockingInAsync | Error::NoRuntime(_) => NtStatus::STATUS_INVALID_DEVICE_REQUEST,
            Error::Config(_) | Error::Descriptor(_) => NtStatus::STATUS_INVALID_PARAMETER,
        }
    }
}
