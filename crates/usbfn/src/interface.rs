//! The service API: one opened GenericUSBFn interface, one method per IOCTL.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::oneshot;
use usbfn_core::{
    BusEvent, BusSpeed, ClassInfo, CompletionStatus, FunctionId, Handshake, PipeId,
    TransferCompletion, TransferId, TransferRequest,
};

use crate::Error;
use crate::controller::Shared;

/// An opened interface (a GenericUSBFn handle). Dropping it deactivates the bus for it: a
/// connected host sees the device go away.
#[derive(Debug)]
pub struct Interface {
    pub(crate) shared: Arc<Shared>,
    pub(crate) function: FunctionId,
}

/// A transfer in flight. Await it for the result; drop it to cancel (CancelIoEx).
#[derive(Debug)]
#[must_use = "a transfer is cancelled when its future is dropped"]
pub struct Transfer {
    shared: Arc<Shared>,
    id: TransferId,
    rx: Option<oneshot::Receiver<TransferCompletion>>,
    early: Option<Result<TransferCompletion, Error>>,
}

impl Interface {
    pub(crate) fn new(shared: Arc<Shared>, function: FunctionId) -> Self {
        Interface { shared, function }
    }

    /// The function id inside the device.
    pub fn function(&self) -> FunctionId {
        self.function
    }

    /// `IOCTL_GENERICUSBFN_GET_CLASS_INFO` / `_EX`: pipes per speed, name and GUID.
    pub fn class_info(&self) -> Result<ClassInfo, Error> {
        Ok(self.shared.lock().device.class_info(self.function)?)
    }

    /// `IOCTL_GENERICUSBFN_ACTIVATE_USB_BUS`.
    pub fn activate_bus(&self) -> Result<(), Error> {
        self.call(|d, f| d.activate(f))
    }

    /// `IOCTL_GENERICUSBFN_DEACTIVATE_USB_BUS`: the host is disconnected.
    pub fn deactivate_bus(&self) -> Result<(), Error> {
        self.call(|d, f| d.deactivate(f, Instant::now()))
    }

    /// `IOCTL_GENERICUSBFN_BUS_EVENT_NOTIFICATION`: the next bus event.
    pub async fn next_event(&self) -> Result<BusEvent, Error> {
        let notify = self
            .shared
            .events
            .get(self.function.0)
            .ok_or(Error::DeviceGone)?;
        loop {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(e) = self.shared.lock().device.poll_event(self.function) {
                return Ok(e);
            }
            notified.await;
        }
    }

    /// A bus event if one is waiting.
    pub fn try_next_event(&self) -> Option<BusEvent> {
        self.shared.lock().device.poll_event(self.function)
    }

    /// `IOCTL_GENERICUSBFN_TRANSFER_IN`: send `data` on an IN pipe (or answer a setup
    /// packet's IN data stage on pipe 0). Queued at once; await the result.
    pub fn transfer_in(&self, pipe: PipeId, data: Bytes) -> Transfer {
        self.submit(
            pipe,
            TransferRequest::In {
                data,
                append_zero_packet: false,
            },
        )
    }

    /// `IOCTL_GENERICUSBFN_TRANSFER_IN_APPEND_ZERO_PKT`: like [`Interface::transfer_in`], and
    /// a zero-length packet ends a transfer whose length is a multiple of wMaxPacketSize.
    pub fn transfer_in_append_zero(&self, pipe: PipeId, data: Bytes) -> Transfer {
        self.submit(
            pipe,
            TransferRequest::In {
                data,
                append_zero_packet: true,
            },
        )
    }

    /// `IOCTL_GENERICUSBFN_TRANSFER_OUT`: receive up to `capacity` bytes.
    pub fn transfer_out(&self, pipe: PipeId, capacity: usize) -> Transfer {
        self.submit(pipe, TransferRequest::Out { capacity })
    }

    /// `IOCTL_GENERICUSBFN_CONTROL_STATUS_HANDSHAKE_IN`.
    pub fn control_status_handshake_in(&self) -> Result<(), Error> {
        self.call(|d, f| d.control_handshake(f, Handshake::In, Instant::now()))
    }

    /// `IOCTL_GENERICUSBFN_CONTROL_STATUS_HANDSHAKE_OUT`.
    pub fn control_status_handshake_out(&self) -> Result<(), Error> {
        self.call(|d, f| d.control_handshake(f, Handshake::Out, Instant::now()))
    }

    /// `IOCTL_GENERICUSBFN_GET_PIPE_STATE`: true when stalled.
    pub fn get_pipe_state(&self, pipe: PipeId) -> Result<bool, Error> {
        Ok(self
            .shared
            .lock()
            .device
            .get_pipe_state(self.function, pipe)?)
    }

    /// `IOCTL_GENERICUSBFN_SET_PIPE_STATE`: stall (true) or clear (false) a pipe; stalling
    /// pipe 0 refuses the setup packet being answered.
    pub fn set_pipe_state(&self, pipe: PipeId, stall: bool) -> Result<(), Error> {
        self.call(|d, f| d.set_pipe_state(f, pipe, stall, Instant::now()))
    }

    /// `IOCTL_GENERICUSBFN_GET_INTERFACE_DESCRIPTOR_SET`.
    pub fn interface_descriptor_set(
        &self,
        interface_number: u8,
        speed: BusSpeed,
    ) -> Result<Vec<u8>, Error> {
        Ok(self
            .shared
            .lock()
            .device
            .interface_descriptor_set(interface_number, speed)?)
    }

    /// `IOCTL_GENERICUSBFN_REGISTER_USB_STRING`.
    pub fn register_usb_string(&self, index: u8, text: &str) -> Result<(), Error> {
        Ok(self.shared.lock().device.register_string(index, text)?)
    }

    fn call(
        &self,
        op: impl FnOnce(&mut usbfn_core::Device, FunctionId) -> Result<(), usbfn_core::ServiceError>,
    ) -> Result<(), Error> {
        let mut inner = self.shared.lock();
        let result = op(&mut inner.device, self.function);
        self.shared.dispatch(&mut inner);
        Ok(result?)
    }

    fn submit(&self, pipe: PipeId, request: TransferRequest) -> Transfer {
        let mut inner = self.shared.lock();
        let id = TransferId(inner.next_transfer);
        inner.next_transfer += 1;
        let (tx, rx) = oneshot::channel();
        inner.waiters.insert(id, tx);
        let result = inner
            .device
            .submit_transfer(self.function, id, pipe, request, Instant::now());
        let early = match result {
            Ok(()) => None,
            Err(e) => {
                inner.waiters.remove(&id);
                Some(Err(Error::Refused(e)))
            }
        };
        self.shared.dispatch(&mut inner);
        Transfer {
            shared: self.shared.clone(),
            id,
            rx: Some(rx),
            early,
        }
    }
}

impl Drop for Interface {
    fn drop(&mut self) {
        let mut inner = self.shared.lock();
        let _ = inner.device.deactivate(self.function, Instant::now());
        if let Some(open) = inner.opened.get_mut(self.function.0) {
            *open = false;
        }
        self.shared.dispatch(&mut inner);
    }
}

impl Transfer {
    /// The transfer's id.
    pub fn id(&self) -> TransferId {
        self.id
    }

    /// Cancel it now (the future then yields [`CompletionStatus::Cancelled`]).
    pub fn cancel(&self) {
        let mut inner = self.shared.lock();
        inner.device.cancel_transfer(self.id);
        self.shared.dispatch(&mut inner);
    }

    /// Await the raw completion, whatever its status.
    pub async fn completion(mut self) -> Result<TransferCompletion, Error> {
        if let Some(early) = self.early.take() {
            return early;
        }
        // The receiver stays in `self` while awaited, so dropping this future unfinished
        // still cancels the transfer (see `Drop`).
        let rx = self.rx.as_mut().ok_or(Error::DeviceGone)?;
        let result = rx.await.map_err(|_| Error::DeviceGone);
        self.rx = None;
        result
    }
}

impl Future for Transfer {
    /// IN: the bytes sent (in [`TransferCompletion::bytes_transferred`]); OUT: the data.
    type Output = Result<TransferCompletion, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(early) = self.early.take() {
            return Poll::Ready(early);
        }
        let Some(rx) = self.rx.as_mut() else {
            return Poll::Ready(Err(Error::DeviceGone));
        };
        match Pin::new(rx).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(c)) => {
                self.rx = None;
                Poll::Ready(if c.status == CompletionStatus::Success {
                    Ok(c)
                } else {
                    Err(Error::Transfer(c.status))
                })
            }
            Poll::Ready(Err(_)) => {
                self.rx = None;
                Poll::Ready(Err(Error::DeviceGone))
            }
        }
    }
}

impl Drop for Transfer {
    fn drop(&mut self) {
        if self.rx.is_some() && self.early.is_none() {
            let mut inner = self.shared.lock();
            inner.waiters.remove(&self.id);
            inner.device.cancel_transfer(self.id);
            self.shared.dispatch(&mut inner);
        }
    }
}
