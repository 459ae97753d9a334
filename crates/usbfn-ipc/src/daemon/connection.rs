//! One service connection: frames in, `usbfn_api::ioctl::dispatch` calls on the opened
//! interface (any backend), completions out.
//!
//! The reader admits each REQUEST into the connection's [`Outstanding`] table (over a limit:
//! an immediate `STATUS_INSUFFICIENT_RESOURCES` completion) and runs it as a task; a CANCEL
//! signals the task, which completes with `STATUS_CANCELLED` unless its request finished
//! first. Completions go through a bounded queue to the writer, so a service that stops
//! reading stops being read: its requests back up into its own socket, not into the daemon's
//! memory. Pending `BUS_EVENT_NOTIFICATION`s are served one at a time, in order.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use usbfn_abi::{IoctlCode, IoctlMethod, NtStatus};
use usbfn_api::ServiceApi;
use usbfn_api::ioctl::IoctlRequest;

use crate::error::{FrameError, LimitError};
use crate::frame::{Completion, Hello, MAX_DATA_LEN, Request, ServiceFrame};
use crate::outstanding::Outstanding;

/// Completions queued for the writer before finished requests wait for it.
const COMPLETION_QUEUE: usize = 256;
/// How long a service has to take the daemon's HELLO.
const HELLO_WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// Read the socket in chunks of at least this many bytes.
const READ_CHUNK: usize = 64 * 1024;
/// Batch completions up to this many bytes per write.
const WRITE_BATCH: usize = 256 * 1024;

/// Why a connection was closed by the daemon.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectionError {
    #[error("socket error: {0}")]
    Io(#[from] io::Error),
    #[error("protocol error: {0}")]
    Frame(#[from] FrameError),
    #[error("protocol error: {0}")]
    Limit(#[from] LimitError),
    #[error("the service did not take the HELLO within {HELLO_WRITE_TIMEOUT:?}")]
    HelloTimeout,
}

type Table = Arc<Mutex<Outstanding<Option<oneshot::Sender<()>>>>>;

fn lock(table: &Table) -> MutexGuard<'_, Outstanding<Option<oneshot::Sender<()>>>> {
    // Nothing panics while holding this lock; a poisoned table is still consistent.
    table.lock().unwrap_or_else(|p| p.into_inner())
}

/// Send a HELLO that refuses the open, then close.
pub(crate) async fn refuse(mut stream: UnixStream, hello: Hello) {
    let mut out = BytesMut::new();
    if hello.encode(&mut out).is_ok() {
        let _ = tokio::time::timeout(HELLO_WRITE_TIMEOUT, stream.write_all(&out)).await;
    }
    let _ = stream.shutdown().await;
}

/// Serve one service on its opened interface until it disconnects, breaks the protocol, or
/// the daemon stops. The interface is dropped (deactivated) when this returns.
pub(crate) async fn serve<S: ServiceApi>(
    iface: S,
    stream: UnixStream,
    mut stop: watch::Receiver<bool>,
) -> Result<(), ConnectionError> {
    let (mut rd, mut wr) = stream.into_split();
    let mut hello = BytesMut::new();
    Hello::new(NtStatus::STATUS_SUCCESS).encode(&mut hello)?;
    tokio::time::timeout(HELLO_WRITE_TIMEOUT, wr.write_all(&hello))
        .await
        .map_err(|_| ConnectionError::HelloTimeout)??;

    let (out_tx, out_rx) = mpsc::channel(COMPLETION_QUEUE);
    let mut writer = tokio::spawn(write_loop(wr, out_rx));
    let mut cx = Reader {
        iface: Arc::new(iface),
        table: Arc::new(Mutex::new(Outstanding::with_protocol_limits())),
        events: Arc::new(tokio::sync::Mutex::new(())),
        out: out_tx,
        tasks: JoinSet::new(),
        refused: 0,
    };
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let result = loop {
        match cx.drain(&mut buf).await {
            Ok(()) => {}
            Err(e) => break Err(e),
        }
        while cx.tasks.try_join_next().is_some() {}
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        tokio::select! {
            n = rd.read_buf(&mut buf) => match n {
                Ok(0) if buf.is_empty() => break Ok(()),
                Ok(0) => break Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the service closed in the middle of a frame ({} bytes buffered)", buf.len()),
                ).into()),
                Ok(_) => {}
                // A service process that dies with unread completions resets the socket.
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break Ok(()),
                Err(e) => break Err(e.into()),
            },
            w = &mut writer => break match w {
                Ok(Ok(())) => Ok(()),
                Ok(Err(ConnectionError::Io(e)))
                    if matches!(e.kind(), io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset) =>
                {
                    Ok(())
                }
                Ok(Err(e)) => Err(e),
                Err(e) => Err(io::Error::other(e).into()),
            },
            _ = stop.changed() => break Ok(()),
        }
    };
    // Cancel everything still pending (dropping a transfer cancels it), then let the
    // interface go: its Drop deactivates the bus and a connected host is detached.
    cx.tasks.abort_all();
    while cx.tasks.join_next().await.is_some() {}
    writer.abort();
    let outstanding = lock(&cx.table).len();
    if outstanding > 0 {
        tracing::debug!(outstanding, "requests cancelled with the connection");
    }
    drop(cx);
    result
}

struct Reader<S> {
    iface: Arc<S>,
    table: Table,
    events: Arc<tokio::sync::Mutex<()>>,
    out: mpsc::Sender<Completion>,
    tasks: JoinSet<()>,
    refused: u64,
}

impl<S: ServiceApi> Reader<S> {
    /// Handle every whole frame in `buf`.
    async fn drain(&mut self, buf: &mut BytesMut) -> Result<(), ConnectionError> {
        while let Some(frame) = ServiceFrame::decode(buf)? {
            match frame {
                ServiceFrame::Request(r) => self.request(r).await?,
                ServiceFrame::Cancel(c) => {
                    let signal = lock(&self.table).get_mut(c.id).and_then(Option::take);
                    match signal {
                        Some(tx) => {
                            let _ = tx.send(());
                        }
                        None => tracing::debug!(id = c.id, "CANCEL of a request not outstanding"),
                    }
                }
            }
        }
        Ok(())
    }

    async fn request(&mut self, r: Request) -> Result<(), ConnectionError> {
        let id = r.id;
        let held = crate::usize_from(r.output_length)
            .max(r.output.len())
            .saturating_add(r.input.len());
        let (cancel_tx, mut cancel_rx) = oneshot::channel();
        let admitted = lock(&self.table).admit(id, held, Some(cancel_tx));
        match admitted {
            Ok(()) => {}
            Err(e @ LimitError::DuplicateId { .. }) => return Err(e.into()),
            Err(e) => {
                self.refused += 1;
                if self.refused == 1 || self.refused.is_multiple_of(1000) {
                    tracing::warn!(
                        refused = self.refused,
                        "request refused with STATUS_INSUFFICIENT_RESOURCES: {e}"
                    );
                }
                let refusal = reply(id, NtStatus::STATUS_INSUFFICIENT_RESOURCES);
                if self.out.send(refusal).await.is_err() {
                    return Err(io::Error::from(io::ErrorKind::BrokenPipe).into());
                }
                return Ok(());
            }
        }
        let iface = self.iface.clone();
        let events = self.events.clone();
        let table = self.table.clone();
        let out = self.out.clone();
        // Transfers are queued on their pipes here, in the order the service sent them; the
        // task only waits (tasks run in any order on a multi-threaded runtime).
        let started = start(&*iface, r);
        self.tasks.spawn(async move {
            let completion = tokio::select! {
                biased;
                c = finish(&*iface, &events, started) => c,
                Ok(()) = &mut cancel_rx => reply(id, NtStatus::STATUS_CANCELLED),
            };
            lock(&table).finish(id);
            let _ = out.send(completion).await;
        });
        Ok(())
    }
}

fn reply(id: u64, status: NtStatus) -> Completion {
    Completion {
        id,
        status,
        information: 0,
        output: Bytes::new(),
    }
}

/// A request checked and begun by [`start`], or already answered.
enum Begun<S: ServiceApi> {
    Started {
        id: u64,
        code: IoctlCode,
        output_length: usize,
        output_length_u32: u32,
        started: usbfn_api::ioctl::Started<S>,
    },
    Answered(Completion),
}

/// Check the buffers the way the I/O manager and the driver would, then begin the driver's
/// work (a transfer is queued on its pipe now: see [`usbfn_api::ioctl::start`]).
fn start<S: ServiceApi>(iface: &S, r: Request) -> Begun<S> {
    let id = r.id;
    if !IoctlCode::KNOWN.contains(&r.code) {
        tracing::debug!(code = %r.code, "unknown IOCTL code");
        return Begun::Answered(reply(id, NtStatus::STATUS_INVALID_DEVICE_REQUEST));
    }
    let output_length = crate::usize_from(r.output_length);
    let carried_ok = if r.code.method() == IoctlMethod::IN_DIRECT {
        r.output.len() == output_length
    } else {
        r.output.is_empty()
    };
    if !carried_ok || output_length > MAX_DATA_LEN {
        tracing::debug!(
            code = %r.code, output_length, carried = r.output.len(),
            "output buffer does not fit the code's method"
        );
        return Begun::Answered(reply(id, NtStatus::STATUS_INVALID_PARAMETER));
    }
    let code = r.code;
    let output_length_u32 = r.output_length;
    let request = IoctlRequest {
        code,
        input: r.input,
        output: r.output,
        output_capacity: output_length,
    };
    Begun::Started {
        id,
        code,
        output_length,
        output_length_u32,
        started: usbfn_api::ioctl::start(iface, request),
    }
}

/// Finish what [`start`] began: the completion to send.
async fn finish<S: ServiceApi>(
    iface: &S,
    events: &tokio::sync::Mutex<()>,
    begun: Begun<S>,
) -> Completion {
    let (id, code, output_length, output_length_u32, started) = match begun {
        Begun::Answered(c) => return c,
        Begun::Started {
            id,
            code,
            output_length,
            output_length_u32,
            started,
        } => (id, code, output_length, output_length_u32, started),
    };
    let answer = if code == IoctlCode::BUS_EVENT_NOTIFICATION {
        // One notification at a time, completed in the order they were sent.
        let _turn = events.lock().await;
        started.finish(iface).await
    } else {
        started.finish(iface).await
    };
    let mut output = answer.output;
    let mut status = answer.status;
    let mut information = answer.information;
    if output.len() > output_length || information > output_length {
        tracing::error!(
            code = %code, len = output.len(), information, output_length,
            "driver returned or reported more than the output buffer holds; truncated"
        );
        output.truncate(output_length);
        information = information.min(output_length);
        status = NtStatus::STATUS_BUFFER_OVERFLOW;
    }
    Completion {
        id,
        status,
        // fits: information <= output_length (just above), which is the u32 r.output_length.
        information: u32::try_from(information).unwrap_or(output_length_u32),
        output,
    }
}

async fn write_loop(
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Completion>,
) -> Result<(), ConnectionError> {
    let mut out = BytesMut::with_capacity(WRITE_BATCH);
    while let Some(c) = rx.recv().await {
        let mut next = Some(c);
        while let Some(c) = next.take() {
            if let Err(e) = c.encode(&mut out) {
                // `dispatch` keeps outputs within MAX_DATA_LEN; report instead of corrupting.
                tracing::error!(id = c.id, error = %e, "completion too large to send");
                reply(c.id, NtStatus::STATUS_BUFFER_OVERFLOW).encode(&mut out)?;
            }
            if out.len() < WRITE_BATCH {
                next = rx.try_recv().ok();
            }
        }
        wr.write_all(&out).await?;
        out.clear();
    }
    Ok(())
}
