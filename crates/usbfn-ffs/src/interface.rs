//! [`FfsInterface`]: one opened interface of an [`crate::FfsDevice`], implementing
//! [`ServiceApi`] with FunctionFS endpoint I/O.

use std::future::Future;
use std::io::{Read, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::sync::oneshot;
use usbfn_api::{ClassInfo, Error, ServiceApi};
use usbfn_core::{
    BusEvent, BusSpeed, CompletionStatus, FunctionId, PipeId, ServiceError, TransferCompletion,
    TransferId,
};

use crate::aio::Aio;
use crate::device::{Shared, lock};
use crate::ep0::{Answer, Answered, Ep0Command};

/// An opened interface on FunctionFS. Dropping it deactivates the bus for it (the gadget is
/// unbound: the host sees a disconnect) and cancels its transfers.
#[derive(Debug)]
pub struct FfsInterface {
    shared: Arc<Shared>,
    function: FunctionId,
}

/// A transfer in flight on FunctionFS. Dropping it unfinished cancels it (`io_cancel`).
#[derive(Debug)]
#[must_use = "a transfer is cancelled when its future is dropped"]
pub struct FfsTransfer {
    kind: Kind,
    id: TransferId,
}

#[derive(Debug)]
enum Kind {
    Early(Option<Result<TransferCompletion, Error>>),
    Ep0(oneshot::Receiver<Result<Answered, Error>>),
    /// The data request, then (for TRANSFER_IN_APPEND_ZERO_PKT) the zero-length packet:
    /// their keys, each until its result is taken.
    Aio {
        aio: Arc<Aio>,
        parts: [Option<u64>; 2],
        bytes: usize,
        data: Bytes,
        done: bool,
    },
}

fn refused(e: ServiceError) -> Error {
    Error::Refused(e)
}

impl FfsInterface {
    pub(crate) fn new(shared: Arc<Shared>, function: FunctionId) -> Self {
        FfsInterface { shared, function }
    }

    /// The function id inside the device.
    pub fn function(&self) -> FunctionId {
        self.function
    }

    fn early(result: Result<TransferCompletion, Error>) -> FfsTransfer {
        FfsTransfer {
            kind: Kind::Early(Some(result)),
            id: TransferId(0),
        }
    }

    fn control(&self, answer: Answer) -> Result<oneshot::Receiver<Result<Answered, Error>>, Error> {
        let st = lock(&self.shared.state);
        let me = &st.functions[self.function.0];
        let group = &st.groups[me.group];
        let Some((seq, owner)) = group.pending else {
            return Err(refused(ServiceError::InvalidDeviceState(
                "no setup packet of this interface is being answered".into(),
            )));
        };
        // Only the setup packet the service has taken from its events can be answered.
        if owner != self.function || me.current_setup != Some(seq) {
            return Err(refused(ServiceError::InvalidDeviceState(
                "no setup packet of this interface is being answered".into(),
            )));
        }
        let (reply, rx) = oneshot::channel();
        group
            .ep0
            .send(Ep0Command::Answer { seq, answer, reply })
            .map_err(|_| Error::DeviceGone)?;
        Ok(rx)
    }

    fn submit(
        &self,
        pipe: PipeId,
        write: Option<Bytes>,
        capacity: usize,
        zlp: bool,
    ) -> FfsTransfer {
        if pipe == PipeId::CONTROL {
            let answer = match write {
                Some(data) => Answer::DataIn(data),
                None => Answer::DataOut(capacity),
            };
            return match self.control(answer) {
                Ok(rx) => FfsTransfer {
                    kind: Kind::Ep0(rx),
                    id: TransferId(0),
                },
                Err(e) => Self::early(Err(e)),
            };
        }
        if capacity > usbfn_core::MAX_TRANSFER_LENGTH {
            return Self::early(Err(refused(ServiceError::LimitExceeded {
                what: "transfer length (MAX_TRANSFER_LENGTH)",
                limit: usbfn_core::MAX_TRANSFER_LENGTH,
            })));
        }
        let (file, mps) = {
            let st = lock(&self.shared.state);
            let Some(p) = st.pipes.get(&pipe) else {
                return Self::early(Err(refused(ServiceError::InvalidParameter(format!(
                    "no pipe {}",
                    pipe.0
                )))));
            };
            if p.owner != self.function {
                return Self::early(Err(refused(ServiceError::NotOwner {
                    pipe: pipe.0,
                    owner: self.shared.model.interfaces()[p.owner.0].name.clone(),
                })));
            }
            let is_in = p.address & 0x80 != 0;
            if is_in != write.is_some() {
                return Self::early(Err(refused(ServiceError::InvalidParameter(format!(
                    "pipe {} is an {} pipe; use TRANSFER_{} on it",
                    pipe.0,
                    if is_in { "In" } else { "Out" },
                    if is_in { "IN" } else { "OUT" }
                )))));
            }
            let g = &st.groups[p.group];
            if !g.enabled {
                return Self::early(Err(refused(ServiceError::InvalidDeviceState(
                    "transfers need a configured device; the function is not enabled".into(),
                ))));
            }
            let speed_index = match g.speed {
                BusSpeed::Full => 0,
                BusSpeed::High => 1,
                BusSpeed::Super => 2,
            };
            (
                p.file.clone(),
                usize::from(p.max_packet[speed_index]).max(1),
            )
        };
        let aio = self.shared.aio.clone();
        let len = write.as_ref().map_or(0, Bytes::len);
        let needs_zlp = zlp && len > 0 && len.is_multiple_of(mps);
        let parts = match aio.submit(&file, capacity, write, needs_zlp) {
            Ok(keys) => [Some(keys.data), keys.zlp],
            Err(e) => {
                return Self::early(Err(if e.kind() == std::io::ErrorKind::WouldBlock {
                    refused(ServiceError::LimitExceeded {
                        what: "AIO requests in flight (usbfn_ffs::MAX_IN_FLIGHT)",
                        limit: crate::aio::MAX_IN_FLIGHT,
                    })
                } else {
                    Error::Transfer(CompletionStatus::from_functionfs_errno(
                        -e.raw_os_error().unwrap_or(libc::EIO),
                    ))
                }));
            }
        };
        FfsTransfer {
            kind: Kind::Aio {
                aio,
                parts,
                bytes: 0,
                data: Bytes::new(),
                done: false,
            },
            id: TransferId(0),
        }
    }

    fn set_active(&self, active: bool) {
        {
            let mut st = lock(&self.shared.state);
            let f = &mut st.functions[self.function.0];
            f.active = active;
            if !active {
                f.events.clear();
                f.setup_seqs.clear();
                f.current_setup = None;
                f.handshake_owed = None;
            }
        }
        self.shared.update_binding();
    }

    fn halt(&self, pipe: PipeId, stall: bool) -> Result<(), Error> {
        let file = {
            let st = lock(&self.shared.state);
            let p = st.pipes.get(&pipe).ok_or_else(|| {
                refused(ServiceError::InvalidParameter(format!(
                    "no pipe {}",
                    pipe.0
                )))
            })?;
            if p.owner != self.function {
                return Err(refused(ServiceError::NotOwner {
                    pipe: pipe.0,
                    owner: self.shared.model.interfaces()[p.owner.0].name.clone(),
                }));
            }
            (p.file.clone(), p.address & 0x80 != 0)
        };
        let (f, is_in) = file;
        let result = self.shared.aio.with_submit_lock(|| {
            if stall {
                // I/O in the wrong direction halts the endpoint (EBADMSG means done).
                let r = if is_in {
                    (&*f).read(&mut [0u8; 1]).map(drop)
                } else {
                    (&*f).write(&[0u8]).map(drop)
                };
                match r {
                    Err(e) if e.raw_os_error() == Some(libc::EBADMSG) => Ok(()),
                    Ok(()) => Ok(()),
                    Err(e) => Err(e),
                }
            } else {
                crate::sys::clear_halt(std::os::fd::AsFd::as_fd(&*f))
            }
        });
        match result {
            Ok(()) => {
                if let Some(p) = lock(&self.shared.state).pipes.get_mut(&pipe) {
                    p.halted = stall;
                }
                Ok(())
            }
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                Err(refused(ServiceError::InvalidDeviceState(
                    "the endpoint is not enabled (or has transfers queued)".into(),
                )))
            }
            Err(e) => Err(Error::Transfer(CompletionStatus::from_functionfs_errno(
                -e.raw_os_error().unwrap_or(libc::EIO),
            ))),
        }
    }
}

impl Drop for FfsInterface {
    fn drop(&mut self) {
        self.set_active(false);
        lock(&self.shared.state).functions[self.function.0].opened = false;
    }
}

impl ServiceApi for FfsInterface {
    type Transfer = FfsTransfer;

    async fn class_info(&self) -> Result<ClassInfo, Error> {
        self.shared
            .class_info
            .get(self.function.0)
            .cloned()
            .ok_or(Error::DeviceGone)
    }

    async fn activate_bus(&self) -> Result<(), Error> {
        self.set_active(true);
        Ok(())
    }

    async fn deactivate_bus(&self) -> Result<(), Error> {
        self.set_active(false);
        Ok(())
    }

    async fn next_event(&self) -> Result<BusEvent, Error> {
        let notify = self
            .shared
            .events
            .get(self.function.0)
            .ok_or(Error::DeviceGone)?;
        loop {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = lock(&self.shared.state);
                let f = &mut st.functions[self.function.0];
                if let Some(e) = f.events.pop_front() {
                    if let BusEvent::SetupPacket(_) = e {
                        f.current_setup = f.setup_seqs.pop_front();
                    }
                    return Ok(e);
                }
                if st.closed {
                    return Err(Error::DeviceGone);
                }
            }
            notified.await;
        }
    }

    fn transfer_in(&self, pipe: PipeId, data: Bytes) -> FfsTransfer {
        let len = data.len();
        self.submit(pipe, Some(data), len, false)
    }

    fn transfer_in_append_zero(&self, pipe: PipeId, data: Bytes) -> FfsTransfer {
        let len = data.len();
        self.submit(pipe, Some(data), len, true)
    }

    fn transfer_out(&self, pipe: PipeId, capacity: usize) -> FfsTransfer {
        self.submit(pipe, None, capacity, false)
    }

    async fn control_status_handshake_in(&self) -> Result<(), Error> {
        self.handshake().await
    }

    async fn control_status_handshake_out(&self) -> Result<(), Error> {
        self.handshake().await
    }

    async fn get_pipe_state(&self, pipe: PipeId) -> Result<bool, Error> {
        if pipe == PipeId::CONTROL {
            return Ok(false);
        }
        let st = lock(&self.shared.state);
        let p = st.pipes.get(&pipe).ok_or_else(|| {
            refused(ServiceError::InvalidParameter(format!(
                "no pipe {}",
                pipe.0
            )))
        })?;
        Ok(p.halted)
    }

    async fn set_pipe_state(&self, pipe: PipeId, stall: bool) -> Result<(), Error> {
        if pipe == PipeId::CONTROL {
            if !stall {
                return Ok(());
            }
            let rx = self.control(Answer::Stall)?;
            return rx.await.map_err(|_| Error::DeviceGone)?.map(drop);
        }
        self.halt(pipe, stall)
    }

    async fn interface_descriptor_set(
        &self,
        interface_number: u8,
        speed: BusSpeed,
    ) -> Result<Vec<u8>, Error> {
        self.shared
            .model
            .interface_descriptor_set(interface_number, speed)
            .ok_or_else(|| {
                refused(ServiceError::InvalidParameter(format!(
                    "no interface number {interface_number}"
                )))
            })
    }

    async fn register_usb_string(&self, index: u8, text: &str) -> Result<(), Error> {
        // FunctionFS takes a function's strings once, when its descriptors are written (the
        // gadget is made before services connect), and renumbers them itself.
        match self.shared.model.strings().get(&index) {
            Some(current) if current == text => Ok(()),
            _ => Err(refused(ServiceError::NotSupported(
                "REGISTER_USB_STRING on FunctionFS: the kernel takes a function's strings once, when the gadget is made; declare the string in the device configuration",
            ))),
        }
    }
}

impl FfsInterface {
    async fn handshake(&self) -> Result<(), Error> {
        {
            // After a data stage FunctionFS and the UDC finish the status stage themselves:
            // the handshake of the setup packet the service is answering is then accepted.
            let mut st = lock(&self.shared.state);
            let f = &mut st.functions[self.function.0];
            if f.handshake_owed.is_some() && f.handshake_owed == f.current_setup {
                f.handshake_owed = None;
                return Ok(());
            }
        }
        let rx = self.control(Answer::Handshake)?;
        rx.await.map_err(|_| Error::DeviceGone)?.map(drop)
    }
}

impl FfsTransfer {
    fn poll_raw(&mut self, cx: &mut Context<'_>) -> Poll<Result<TransferCompletion, Error>> {
        let id = self.id;
        match &mut self.kind {
            Kind::Early(r) => Poll::Ready(r.take().unwrap_or(Err(Error::DeviceGone))),
            Kind::Ep0(rx) => match Pin::new(rx).poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Err(_)) => Poll::Ready(Err(Error::DeviceGone)),
                Poll::Ready(Ok(Err(e))) => Poll::Ready(Err(e)),
                Poll::Ready(Ok(Ok(a))) => {
                    let (bytes, data) = match a {
                        Answered::Sent(n) => (n, Bytes::new()),
                        Answered::Received(d) => (d.len(), d),
                        Answered::Done => (0, Bytes::new()),
                    };
                    Poll::Ready(Ok(TransferCompletion {
                        id,
                        status: CompletionStatus::Success,
                        bytes_transferred: bytes,
                        data,
                    }))
                }
            },
            Kind::Aio {
                aio,
                parts,
                bytes,
                data,
                done,
            } => {
                for (i, slot) in parts.iter_mut().enumerate() {
                    let Some(key) = *slot else { continue };
                    match aio.poll_result(key, cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(r) => {
                            *slot = None;
                            let r = r.ok_or(Error::DeviceGone)?;
                            if r.res < 0 {
                                *done = true;
                                let status = CompletionStatus::from_functionfs_errno(
                                    i32::try_from(r.res).unwrap_or(-libc::EIO),
                                );
                                return Poll::Ready(Ok(TransferCompletion {
                                    id,
                                    status,
                                    bytes_transferred: *bytes,
                                    data: std::mem::take(data),
                                }));
                            }
                            if i == 0 {
                                *bytes = usize::try_from(r.res).unwrap_or(0);
                                *data = r.data;
                            }
                        }
                    }
                }
                *done = true;
                Poll::Ready(Ok(TransferCompletion {
                    id,
                    status: CompletionStatus::Success,
                    bytes_transferred: *bytes,
                    data: std::mem::take(data),
                }))
            }
        }
    }

    /// The raw completion, whatever its status.
    pub async fn completion(mut self) -> Result<TransferCompletion, Error> {
        std::future::poll_fn(|cx| self.poll_raw(cx)).await
    }
}

impl Future for FfsTransfer {
    type Output = Result<TransferCompletion, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.poll_raw(cx) {
            Poll::Ready(Ok(c)) if c.status != CompletionStatus::Success => {
                Poll::Ready(Err(Error::Transfer(c.status)))
            }
            other => other,
        }
    }
}

impl Drop for FfsTransfer {
    fn drop(&mut self) {
        if let Kind::Aio {
            aio, parts, done, ..
        } = &self.kind
        {
            for key in parts.iter().flatten() {
                if *done {
                    // Finished on the data request's error: the zero-length packet behind
                    // it goes on, its result unwanted.
                    aio.forget(*key);
                } else {
                    aio.cancel(*key);
                }
            }
        }
    }
}
