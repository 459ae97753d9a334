//! One thread per FunctionFS function owns its `ep0`: it reads the events, hands setup
//! packets to the owning service and performs the service's answer (data stage, status
//! stage or STALL) on `ep0` before it reads the next event, as FunctionFS requires. An
//! answer that does not come within the setup timeout STALLs the request.
//!
//! FunctionFS's rules for a pending setup packet (`f_fs.c`): for a request whose
//! bmRequestType has the IN bit, `write(ep0, data)` is the data stage (at most wLength bytes;
//! an empty write acknowledges a request without data) and a `read` STALLs; for an OUT
//! request, `read(ep0, wLength)` takes the data stage (an empty read acknowledges) and a
//! `write` STALLs (EL2HLT).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;
use usbfn_api::Error;
use usbfn_core::{FunctionId, ServiceError};
use usbfn_wire::SetupPacket;

use crate::sys;

/// `struct usb_functionfs_event` is 12 bytes.
pub(crate) const EVENT_SIZE: usize = 12;
/// FunctionFS event types.
pub(crate) const BIND: u8 = 0;
pub(crate) const UNBIND: u8 = 1;
pub(crate) const ENABLE: u8 = 2;
pub(crate) const DISABLE: u8 = 3;
pub(crate) const SETUP: u8 = 4;
pub(crate) const SUSPEND: u8 = 5;
pub(crate) const RESUME: u8 = 6;

/// A service's answer to the pending setup packet.
#[derive(Debug)]
pub(crate) enum Answer {
    /// IN data stage.
    DataIn(Bytes),
    /// OUT data stage of up to this many bytes.
    DataOut(usize),
    /// Status stage only.
    Handshake,
    /// STALL.
    Stall,
}

/// What the answer did.
#[derive(Debug)]
pub(crate) enum Answered {
    /// Bytes sent in an IN data stage.
    Sent(usize),
    /// Data received in an OUT data stage.
    Received(Bytes),
    /// Status stage or STALL done.
    Done,
}

/// A command to an ep0 thread.
#[derive(Debug)]
pub(crate) enum Ep0Command {
    /// Answer setup packet number `seq` (stale numbers are refused).
    Answer {
        seq: u64,
        answer: Answer,
        reply: oneshot::Sender<Result<Answered, Error>>,
    },
    /// Stop the thread.
    Stop,
}

/// What the thread reports to the device.
pub(crate) trait Ep0Sink: Send + Sync + 'static {
    /// A FunctionFS event other than SETUP.
    fn event(&self, kind: u8);
    /// A setup packet (number `seq`); returns the owner it was delivered to, or None when
    /// nobody takes it (the thread then STALLs it).
    fn setup(&self, seq: u64, setup: SetupPacket) -> Option<FunctionId>;
    /// The setup packet `seq` is finished (answered, stalled or timed out); `data_stage`
    /// when a data stage was done (the service's status handshake is then owed, not needed).
    fn setup_done(&self, seq: u64, owner: FunctionId, data_stage: bool);
}

/// Run the thread until [`Ep0Command::Stop`] (with `wake` signalled) or an ep0 error.
pub(crate) fn run(
    ep0: File,
    wake: Arc<OwnedFd>,
    commands: Receiver<Ep0Command>,
    sink: Arc<dyn Ep0Sink>,
    timeout: Duration,
) {
    let mut seq = 0u64;
    let mut buf = [0u8; EVENT_SIZE * 4];
    loop {
        let ready = match sys::poll_readable(&[ep0.as_raw_fd(), wake.as_raw_fd()], -1) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::error!(error = %e, "poll on ep0");
                return;
            }
        };
        if ready.get(1) == Some(&true) {
            let _ = sys::eventfd_drain(wake.as_fd());
            loop {
                match commands.try_recv() {
                    Ok(Ep0Command::Stop) | Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                        return;
                    }
                    Ok(Ep0Command::Answer { reply, .. }) => {
                        let _ = reply.send(Err(no_setup()));
                    }
                    Err(std::sync::mpsc::TryRecvError::Empty) => break,
                }
            }
        }
        if ready.first() != Some(&true) {
            continue;
        }
        let n = match (&ep0).read(&mut buf) {
            Ok(n) => n,
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EAGAIN)) => continue,
            // EIDRM: the host replaced a setup packet; EL2HLT: FunctionFS stalled a setup
            // packet still pending. Neither ends the function.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EIDRM | libc::EL2HLT | libc::ESRCH)
                ) =>
            {
                tracing::debug!(error = %e, "reading ep0 events");
                continue;
            }
            Err(e) => {
                tracing::error!(error = %e, "reading ep0 events: the function stops serving its host");
                return;
            }
        };
        for ev in buf[..n].chunks_exact(EVENT_SIZE) {
            let kind = ev[8];
            if kind != SETUP {
                sink.event(kind);
                continue;
            }
            let Ok(setup) = SetupPacket::parse(&ev[..8]) else {
                continue;
            };
            seq += 1;
            match sink.setup(seq, setup) {
                None => {
                    let _ = stall(&ep0, setup);
                }
                Some(owner) => {
                    if !serve_setup(&ep0, &commands, &*sink, seq, owner, setup, timeout) {
                        return;
                    }
                }
            }
        }
    }
}

fn no_setup() -> Error {
    Error::Refused(ServiceError::InvalidDeviceState(
        "no setup packet of this interface is being answered".into(),
    ))
}

/// Wait for the owner's answer and perform it. False: stop the thread.
fn serve_setup(
    ep0: &File,
    commands: &Receiver<Ep0Command>,
    sink: &dyn Ep0Sink,
    seq: u64,
    owner: FunctionId,
    setup: SetupPacket,
    timeout: Duration,
) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match commands.recv_timeout(left) {
            Ok(Ep0Command::Answer {
                seq: s,
                answer,
                reply,
            }) => {
                if s != seq {
                    let _ = reply.send(Err(no_setup()));
                    continue;
                }
                let data_stage = matches!(answer, Answer::DataIn(_) | Answer::DataOut(_));
                let result = perform(ep0, setup, answer);
                tracing::debug!(%setup, ?result, "setup packet answered");
                sink.setup_done(seq, owner, data_stage && result.is_ok());
                let _ = reply.send(result);
                return true;
            }
            Ok(Ep0Command::Stop) | Err(RecvTimeoutError::Disconnected) => {
                let _ = stall(ep0, setup);
                sink.setup_done(seq, owner, false);
                return false;
            }
            Err(RecvTimeoutError::Timeout) => {
                tracing::debug!(%setup, "setup packet not answered in time: STALL");
                let _ = stall(ep0, setup);
                sink.setup_done(seq, owner, false);
                return true;
            }
        }
    }
}

fn is_in(setup: SetupPacket) -> bool {
    setup.bm_request_type & 0x80 != 0
}

/// STALL the pending request: I/O in the wrong direction (EL2HLT is success).
fn stall(ep0: &File, setup: SetupPacket) -> std::io::Result<()> {
    // One byte, not zero: a zero-length read or write might never reach the driver; the
    // wrong direction moves nothing either way.
    let r = if is_in(setup) {
        let mut b = [0u8; 1];
        (&*ep0).read(&mut b).map(drop)
    } else {
        (&*ep0).write(&[0]).map(drop)
    };
    match r {
        Err(e) if e.raw_os_error() == Some(libc::EL2HLT) => Ok(()),
        Ok(()) => Ok(()),
        Err(e) => {
            tracing::debug!(error = %e, %setup, "stalling ep0");
            Err(e)
        }
    }
}

fn perform(ep0: &File, setup: SetupPacket, answer: Answer) -> Result<Answered, Error> {
    let io_err = |e: std::io::Error| {
        let status = usbfn_core::CompletionStatus::from_functionfs_errno(
            -e.raw_os_error().unwrap_or(libc::EIO),
        );
        Error::Transfer(status)
    };
    let w_length = usize::from(setup.w_length);
    match answer {
        Answer::Stall => stall(ep0, setup).map(|()| Answered::Done).map_err(io_err),
        Answer::DataIn(data) if is_in(setup) => {
            let n = data.len().min(w_length);
            // (A zero-length write reaches FunctionFS too: a zero-length data stage.)
            (&*ep0)
                .write(&data[..n])
                .map(Answered::Sent)
                .map_err(io_err)
        }
        Answer::DataOut(capacity) if !is_in(setup) => {
            let mut buf = vec![0u8; capacity.min(w_length).max(1)];
            let n = (&*ep0).read(&mut buf).map_err(io_err)?;
            buf.truncate(n);
            Ok(Answered::Received(Bytes::from(buf)))
        }
        Answer::Handshake if is_in(setup) && w_length > 0 => {
            Err(Error::Refused(ServiceError::InvalidDeviceState(
                "the setup packet has an IN data stage: send it with TRANSFER_IN on pipe 0 first"
                    .into(),
            )))
        }
        Answer::Handshake if is_in(setup) => {
            // wLength is 0: FunctionFS clamps the write to it, so this acknowledges.
            (&*ep0).write(&[0]).map(|_| Answered::Done).map_err(io_err)
        }
        Answer::Handshake => {
            // An OUT request: reading acknowledges (the data, if any, is discarded as the
            // core does when a service acknowledges without reading).
            // (At least one byte: FunctionFS clamps the read to wLength.)
            let mut buf = vec![0u8; w_length.max(1)];
            (&*ep0)
                .read(&mut buf)
                .map(|_| Answered::Done)
                .map_err(io_err)
        }
        Answer::DataIn(_) | Answer::DataOut(_) => {
            Err(Error::Refused(ServiceError::InvalidParameter(format!(
                "the setup packet's data stage is {}: use TRANSFER_{} on pipe 0",
                if is_in(setup) { "IN" } else { "OUT" },
                if is_in(setup) { "IN" } else { "OUT" }
            ))))
        }
    }
}
