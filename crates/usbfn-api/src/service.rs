//! [`ServiceApi`]: the GenericUSBFn service API as a trait. Every backend implements it: the
//! bus-backed runtime (`usbfn::Interface`, over usbfn-core), the daemon's socket client
//! (`usbfn_ipc::RemoteInterface`) and the kernel-function backends (`usbfn_ffs::FfsInterface`
//! on Linux FunctionFS). A service written against it cannot tell which one it runs on.
//!
//! Every method is one `IOCTL_GENERICUSBFN_*`. Requests that a remote driver answers over a
//! socket are `async` even where a backend answers at once; transfers are **submitted when
//! the method returns**, awaited later, and cancelled (`CancelIoEx`) when the returned future
//! is dropped unfinished.

use std::future::Future;

use bytes::Bytes;
use usbfn_core::{BusEvent, BusSpeed, ClassInfo, PipeId, TransferCompletion, TransferId};

use crate::error::Error;

/// An opened GenericUSBFn interface, on whatever backend: one method per IOCTL.
///
/// Implementations are shared between tasks (`Arc<impl ServiceApi>`), so every future they
/// return is `Send`.
pub trait ServiceApi: Send + Sync + 'static {
    /// A transfer in flight: resolves to its completion (`Err(Error::Transfer(status))` when
    /// it did not succeed); dropping it unfinished cancels it.
    type Transfer: Future<Output = Result<TransferCompletion, Error>> + Send + 'static;

    /// `IOCTL_GENERICUSBFN_GET_CLASS_INFO`: pipes per speed, name and GUID.
    fn class_info(&self) -> impl Future<Output = Result<ClassInfo, Error>> + Send;

    /// `IOCTL_GENERICUSBFN_ACTIVATE_USB_BUS`: the service is ready for the host.
    fn activate_bus(&self) -> impl Future<Output = Result<(), Error>> + Send;

    /// `IOCTL_GENERICUSBFN_DEACTIVATE_USB_BUS`: the host is disconnected.
    fn deactivate_bus(&self) -> impl Future<Output = Result<(), Error>> + Send;

    /// `IOCTL_GENERICUSBFN_BUS_EVENT_NOTIFICATION`: the next bus event.
    fn next_event(&self) -> impl Future<Output = Result<BusEvent, Error>> + Send;

    /// `IOCTL_GENERICUSBFN_TRANSFER_IN`: send `data` on an IN pipe (or answer a setup
    /// packet's IN data stage on pipe 0).
    fn transfer_in(&self, pipe: PipeId, data: Bytes) -> Self::Transfer;

    /// `IOCTL_GENERICUSBFN_TRANSFER_IN_APPEND_ZERO_PKT`.
    fn transfer_in_append_zero(&self, pipe: PipeId, data: Bytes) -> Self::Transfer;

    /// `IOCTL_GENERICUSBFN_TRANSFER_OUT`: receive up to `capacity` bytes.
    fn transfer_out(&self, pipe: PipeId, capacity: usize) -> Self::Transfer;

    /// The completion of `transfer` whatever its status (the raw IOCTL dispatcher's view:
    /// a cancelled or stalled transfer is a completion with that status, not an error). The
    /// default turns `Err(Error::Transfer(status))` back into a completion with no data;
    /// a backend that knows the bytes moved before the failure overrides it.
    fn raw_completion(
        transfer: Self::Transfer,
    ) -> impl Future<Output = Result<TransferCompletion, Error>> + Send {
        async move {
            match transfer.await {
                Err(Error::Transfer(status)) => Ok(TransferCompletion {
                    id: TransferId(0),
                    status,
                    bytes_transferred: 0,
                    data: Bytes::new(),
                }),
                other => other,
            }
        }
    }

    /// `IOCTL_GENERICUSBFN_CONTROL_STATUS_HANDSHAKE_IN`.
    fn control_status_handshake_in(&self) -> impl Future<Output = Result<(), Error>> + Send;

    /// `IOCTL_GENERICUSBFN_CONTROL_STATUS_HANDSHAKE_OUT`.
    fn control_status_handshake_out(&self) -> impl Future<Output = Result<(), Error>> + Send;

    /// `IOCTL_GENERICUSBFN_GET_PIPE_STATE`: true when stalled.
    fn get_pipe_state(&self, pipe: PipeId) -> impl Future<Output = Result<bool, Error>> + Send;

    /// `IOCTL_GENERICUSBFN_SET_PIPE_STATE`: stall (true) or clear (false) a pipe.
    fn set_pipe_state(
        &self,
        pipe: PipeId,
        stall: bool,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// `IOCTL_GENERICUSBFN_GET_INTERFACE_DESCRIPTOR_SET`: the interface's descriptors.
    fn interface_descriptor_set(
        &self,
        interface_number: u8,
        speed: BusSpeed,
    ) -> impl Future<Output = Result<Vec<u8>, Error>> + Send;

    /// `IOCTL_GENERICUSBFN_REGISTER_USB_STRING`.
    fn register_usb_string(
        &self,
        index: u8,
        text: &str,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}
