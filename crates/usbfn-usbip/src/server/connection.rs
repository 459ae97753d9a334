//! One USB/IP connection: the op phase, then URB traffic for an imported device.

use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use usbfn::{BusOutput, BusPort, CompletionStatus, Error as UsbfnError, UrbCompletion};
use usbfn_core::UrbId;

use super::flow::{Early, EarlyUnlinks, Refusal, Window};
use super::replies::{Replies, Reply};
use super::{Export, Server, SubmittedUrb};
use crate::batch::WriteBatch;
use crate::proto::{
    CmdSubmit, CmdUnlink, Command, OpReply, OpRequest, OpStatus, ProtoError, RetUnlink,
    ServerCodec, UsbDevice, errno,
};
use crate::read_ahead::ReadAhead;

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectionError {
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
    #[error("protocol error: {0}")]
    Proto(#[from] ProtoError),
    #[error("limit exceeded: {0}")]
    Limit(String),
    #[error("peer closed the connection in the middle of a message ({0} bytes buffered)")]
    Truncated(usize),
    #[error(
        "peer stalled for {timeout:?} in the middle of {what} ({buffered} bytes buffered; idle_timeout)"
    )]
    IdleTimeout {
        what: &'static str,
        buffered: usize,
        timeout: Duration,
    },
    #[error("peer took no replies for {timeout:?} ({pending} bytes unsent; idle_timeout)")]
    WriteTimeout { pending: usize, timeout: Duration },
}

/// Messages (mostly CMD_UNLINKs) queued for the writer before the reader waits for it.
const UNLINK_QUEUE: usize = 1024;
/// Write when this many reply bytes are batched, even if more are ready.
const WRITE_BATCH: usize = 256 * 1024;

pub(crate) async fn run(
    server: &Server,
    stream: TcpStream,
    peer: SocketAddr,
    mut stop: watch::Receiver<bool>,
) -> Result<(), ConnectionError> {
    let (mut reader, mut writer) = stream.into_split();
    let idle = server.options.idle_timeout;
    // An op request is at most 40 bytes: no need for the URB phase's read buffer yet.
    let mut buf = BytesMut::with_capacity(64);
    // Op phase: the whole request must arrive within `idle` of connecting.
    let deadline = deadline_after(idle);
    let op_ahead = ReadAhead::default();
    let request = loop {
        if let Some(r) = OpRequest::decode(&mut buf)? {
            break r;
        }
        tokio::select! {
            n = read_more(&mut reader, &mut buf, &op_ahead) => {
                if n? == 0 {
                    return if buf.is_empty() { Ok(()) } else { Err(ConnectionError::Truncated(buf.len())) };
                }
            }
            () = sleep_until(deadline) => {
                return Err(ConnectionError::IdleTimeout {
                    what: "the op request",
                    buffered: buf.len(),
                    timeout: idle,
                });
            }
            _ = stop.changed() => return Ok(()),
        }
    };
    let mut out = BytesMut::new();
    match request {
        OpRequest::Devlist => {
            let devices = server
                .exports
                .iter()
                .filter(|e| e.controller.is_ready())
                .map(|e| e.exported())
                .collect::<Result<Vec<_>, _>>()?;
            tracing::info!(%peer, devices = devices.len(), "OP_REQ_DEVLIST");
            OpReply::Devlist {
                status: OpStatus::OK,
                devices,
            }
            .encode(&mut out)?;
            write_within(&mut writer, &out, idle).await?;
            writer.shutdown().await?;
            Ok(())
        }
        OpRequest::Import { busid } => {
            let Some(export) = server.exports.iter().find(|e| e.busid == busid).cloned() else {
                tracing::info!(%peer, %busid, "OP_REQ_IMPORT of an unknown busid");
                return reply_import_error(&mut writer, OpStatus::NODEV, idle).await;
            };
            if !export.controller.is_ready() {
                tracing::info!(%peer, %busid, "OP_REQ_IMPORT refused: the device's services are not active");
                return reply_import_error(&mut writer, OpStatus::NA, idle).await;
            }
            let port = claim(&export);
            let port = match port {
                Ok(Some(port)) => port,
                Ok(None) => {
                    tracing::info!(%peer, %busid, "OP_REQ_IMPORT refused: already imported");
                    return reply_import_error(&mut writer, OpStatus::DEV_BUSY, idle).await;
                }
                Err(e) => {
                    tracing::warn!(%peer, %busid, error = %e, "import failed");
                    return reply_import_error(&mut writer, OpStatus::DEV_ERR, idle).await;
                }
            };
            let _imported = ImportGuard(export.clone());
            let device = export.usb_device()?;
            OpReply::Import {
                status: OpStatus::OK,
                device: Some(device.clone()),
            }
            .encode(&mut out)?;
            write_within(&mut writer, &out, idle).await?;
            tracing::info!(%peer, %busid, speed = %export.speed, "device imported");
            let result = urb_phase(server, device, port, reader, writer, buf, stop).await;
            tracing::info!(%peer, %busid, "device released");
            result
        }
    }
}

/// Connect the device's bus for an import: `Ok(None)` when a host already has it.
fn claim(export: &Export) -> Result<Option<BusPort>, UsbfnError> {
    let mut imported = export.imported.lock().unwrap_or_else(|p| p.into_inner());
    if *imported {
        return Ok(None);
    }
    match export.controller.connect_bus(export.speed) {
        Ok(port) => {
            *imported = true;
            Ok(Some(port))
        }
        Err(UsbfnError::BusBusy) => Ok(None),
        Err(e) => Err(e),
    }
}

struct ImportGuard(Arc<Export>);

impl Drop for ImportGuard {
    fn drop(&mut self) {
        *self.0.imported.lock().unwrap_or_else(|p| p.into_inner()) = false;
    }
}

async fn reply_import_error(
    writer: &mut OwnedWriteHalf,
    status: OpStatus,
    idle: Duration,
) -> Result<(), ConnectionError> {
    let mut out = BytesMut::new();
    OpReply::Import {
        status,
        device: None,
    }
    .encode(&mut out)?;
    write_within(writer, &out, idle).await?;
    writer.shutdown().await?;
    Ok(())
}

/// `now + timeout`, or `None` (never) when that is beyond what the clock can express.
fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// Sleeps until `deadline`; forever when there is none.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Writes all of `bytes`, failing with [`ConnectionError::WriteTimeout`] when the peer does
/// not take them within `timeout` (it stopped reading).
async fn write_within(
    writer: &mut OwnedWriteHalf,
    bytes: &[u8],
    timeout: Duration,
) -> Result<(), ConnectionError> {
    tokio::select! {
        r = writer.write_all(bytes) => Ok(r?),
        () = sleep_until(deadline_after(timeout)) => Err(ConnectionError::WriteTimeout {
            pending: bytes.len(),
            timeout,
        }),
    }
}

/// Writes everything `batch` holds (one `writev` per call the socket allows), failing with
/// [`ConnectionError::WriteTimeout`] when the peer does not take it within `timeout`.
///
/// The write is tried once before any timer exists: most batches fit the socket at once, and
/// arming a timer per batch costs the runtime's timer wheel, and a wake-up of its driver (an
/// eventfd write and an extra `epoll_wait`) whenever that timer is the earliest one.
async fn write_batch_within<W: AsyncWrite + Unpin>(
    writer: &mut W,
    batch: &mut WriteBatch,
    timeout: Duration,
) -> Result<(), ConnectionError> {
    let pending = batch.len();
    let mut write = std::pin::pin!(batch.write_to(writer));
    let first = std::future::poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await;
    if let Poll::Ready(r) = first {
        return Ok(r?);
    }
    tokio::select! {
        r = write => Ok(r?),
        () = sleep_until(deadline_after(timeout)) => Err(ConnectionError::WriteTimeout {
            pending,
            timeout,
        }),
    }
}

async fn read_more<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut BytesMut,
    ahead: &ReadAhead,
) -> std::io::Result<usize> {
    ahead.make_room(buf);
    reader.read_buf(buf).await
}

#[allow(clippy::too_many_arguments)] // the pieces of one connection, handed over once
async fn urb_phase<R, W>(
    server: &Server,
    device: UsbDevice,
    mut port: BusPort,
    reader: R,
    writer: W,
    buf: BytesMut,
    mut stop: watch::Receiver<bool>,
) -> Result<(), ConnectionError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let completions = port.take_receiver();
    let port = Arc::new(port);
    let limits = server.options.limits;
    let window = Window::new(
        limits.max_outstanding_urbs,
        server.options.max_outstanding_bytes,
    );
    let (to_writer, from_reader) = mpsc::channel(UNLINK_QUEUE);
    let tap = server.options.tap.clone();
    let idle = server.options.idle_timeout;
    let read = read_loop(ReadCtx {
        codec: ServerCodec::new(limits),
        reader,
        buf,
        port: port.clone(),
        window: window.clone(),
        early: EarlyUnlinks::default(),
        to_writer,
        device: device.clone(),
        idle,
        tap: tap.clone(),
        waiting_logged: false,
    });
    let write = write_loop(WriteCtx {
        writer,
        completions,
        from_reader,
        port: port.clone(),
        window,
        device,
        idle,
        tap,
        replies: Replies::default(),
        answered: Vec::new(),
    });
    tokio::select! {
        r = read => r,
        r = write => r,
        _ = stop.changed() => {
            tracing::info!("server shutting down: detaching the host");
            Ok(())
        }
    }
}

/// What the reader hands the writer.
#[derive(Debug)]
enum ToWriter {
    /// A CMD_UNLINK for the writer to answer (it alone knows what is on the wire).
    Unlink(CmdUnlink),
    /// A CMD_UNLINK the reader answered itself: its URB was cancelled before it reached the
    /// device (the unlink arrived first, see [`EarlyUnlinks`]).
    Answered(RetUnlink),
}

struct ReadCtx<R> {
    codec: ServerCodec,
    reader: R,
    buf: BytesMut,
    port: Arc<BusPort>,
    window: Arc<Window>,
    early: EarlyUnlinks,
    to_writer: mpsc::Sender<ToWriter>,
    device: UsbDevice,
    idle: Duration,
    tap: Option<Arc<dyn super::UrbTap>>,
    /// The "window full" debug line was logged for the current wait.
    waiting_logged: bool,
}

async fn read_loop<R: AsyncRead + Unpin>(mut cx: ReadCtx<R>) -> Result<(), ConnectionError> {
    // When the first byte of the message at the front of `buf` arrived (None: `buf` is
    // empty, the host is between messages and may stay there as long as it likes).
    let mut partial_since: Option<Instant> = None;
    // The idle check: one timer for the connection, moved only when it fires (to when the
    // partial message at the front would time out, or one period on), not a timer per read:
    // a fresh timer per read cost the runtime's driver a wake-up (an eventfd write and an
    // extra `epoll_wait`) about every other URB.
    let mut watchdog = std::pin::pin!(tokio::time::sleep_until(or_far_future(deadline_after(
        cx.idle
    ))));
    let mut ahead = ReadAhead::default();
    loop {
        let (held, mut messages) = (cx.buf.len(), 0);
        while let Some(cmd) = cx.codec.decode(&mut cx.buf)? {
            messages += 1;
            let open = match cmd {
                Command::Submit(cmd) => cx.submit(cmd).await?,
                Command::Unlink(u) => cx.unlink(u).await,
            };
            if !open {
                return Ok(());
            }
        }
        let decoded = messages > 0;
        ahead.decoded(held.saturating_sub(cx.buf.len()), messages);
        partial_since = match partial_since {
            _ if cx.buf.is_empty() => None,
            // What is left arrived with the last read, after the message before it.
            Some(_) if decoded => Some(Instant::now()),
            Some(since) => Some(since),
            None => Some(Instant::now()),
        };
        let early = cx.early.deadline().map(Instant::from_std);
        let n = tokio::select! {
            n = read_more(&mut cx.reader, &mut cx.buf, &ahead) => n?,
            () = &mut watchdog => {
                let now = Instant::now();
                let next = match partial_since.and_then(|since| since.checked_add(cx.idle)) {
                    Some(due) if due <= now => {
                        return Err(ConnectionError::IdleTimeout {
                            what: "a URB message",
                            buffered: cx.buf.len(),
                            timeout: cx.idle,
                        });
                    }
                    Some(due) => Some(due),
                    None => now.checked_add(cx.idle),
                };
                watchdog.as_mut().reset(or_far_future(next));
                continue;
            }
            () = sleep_until(early), if early.is_some() => {
                let mut due = Vec::new();
                cx.early.expire(std::time::Instant::now(), &mut due);
                for u in due {
                    if !cx.tell_writer(ToWriter::Unlink(u)).await {
                        return Ok(());
                    }
                }
                continue;
            }
        };
        if n == 0 {
            return if cx.buf.is_empty() {
                Ok(())
            } else {
                Err(ConnectionError::Truncated(cx.buf.len()))
            };
        }
    }
}

/// `deadline`, or thirty years from now when it is beyond the clock (never, for a timer).
fn or_far_future(deadline: Option<Instant>) -> Instant {
    const FAR: Duration = Duration::from_secs(30 * 365 * 24 * 3600);
    // Proof for the `+`: CLOCK_MONOTONIC counts from boot, so now + 30 years is far below
    // what `Instant` holds (tokio's own timers use the same far future).
    deadline.unwrap_or_else(|| Instant::now() + FAR)
}

impl<R> ReadCtx<R> {
    /// Hand the writer something; false when the writer is gone (the connection is ending).
    async fn tell_writer(&self, m: ToWriter) -> bool {
        self.to_writer.send(m).await.is_ok()
    }

    async fn unlink(&mut self, u: CmdUnlink) -> bool {
        for e in self.early.unlink(u, std::time::Instant::now()) {
            if let Early::Forward(u) = e
                && !self.tell_writer(ToWriter::Unlink(u)).await
            {
                return false;
            }
        }
        true
    }

    /// Accept a CMD_SUBMIT: waits while the window is full (not reading the socket meanwhile).
    /// Ok(false) when the writer is gone.
    async fn submit(&mut self, cmd: CmdSubmit) -> Result<bool, ConnectionError> {
        let mut stale = Vec::new();
        let cancelled_by = self.early.submit(cmd.seqnum, &mut stale);
        for u in stale {
            if !self.tell_writer(ToWriter::Unlink(u)).await {
                return Ok(false);
            }
        }
        if let Some(tap) = &self.tap {
            tap.submit(&self.device, &cmd);
        }
        if let Some(u) = cancelled_by {
            tracing::debug!(
                seqnum = cmd.seqnum,
                unlink = u.seqnum,
                "CMD_SUBMIT already unlinked: cancelled before it reached the device"
            );
            let ret = RetUnlink {
                seqnum: u.seqnum,
                status: -errno::ECONNRESET,
            };
            return Ok(self.tell_writer(ToWriter::Answered(ret)).await);
        }
        let record = SubmittedUrb::of(&cmd);
        loop {
            match self.window.try_accept(&record) {
                Ok(()) => break,
                Err(Refusal::Full) => {
                    if !std::mem::replace(&mut self.waiting_logged, true) {
                        let (urbs, bytes) = self.window.limits();
                        tracing::debug!(
                            max_outstanding_urbs = urbs,
                            max_outstanding_bytes = bytes,
                            "window full: not reading until the host takes replies"
                        );
                    }
                    self.window.room().await;
                }
                Err(Refusal::TooLarge) => {
                    return Err(ConnectionError::Limit(format!(
                        "a URB of {} bytes is larger than max_outstanding_bytes ({})",
                        cmd.transfer_buffer_length,
                        self.window.limits().1
                    )));
                }
                Err(Refusal::SeqnumInUse) => {
                    return Err(ConnectionError::Limit(format!(
                        "CMD_SUBMIT reuses seqnum {} of a pending URB",
                        cmd.seqnum
                    )));
                }
            }
        }
        self.waiting_logged = false;
        if cmd.devid != self.device.devid() {
            tracing::debug!(
                devid = cmd.devid,
                expected = self.device.devid(),
                "CMD_SUBMIT for another devid: -ENODEV"
            );
            let c = UrbCompletion {
                id: UrbId(u64::from(cmd.seqnum)),
                status: CompletionStatus::Shutdown,
                actual_length: 0,
                data: Bytes::new(),
                iso: None,
            };
            // Answered through the same path as device completions, to keep one writer.
            self.port.answer(c);
            return Ok(true);
        }
        self.port.submit(super::core_urb(cmd));
        Ok(true)
    }
}

struct WriteCtx<W> {
    writer: W,
    completions: mpsc::UnboundedReceiver<BusOutput>,
    from_reader: mpsc::Receiver<ToWriter>,
    port: Arc<BusPort>,
    window: Arc<Window>,
    device: UsbDevice,
    idle: Duration,
    tap: Option<Arc<dyn super::UrbTap>>,
    /// Replies decided and not yet encoded (see `replies.rs` for the exactly-once rule).
    replies: Replies,
    /// URBs answered by the batch being written (reused buffer).
    answered: Vec<SubmittedUrb>,
}

async fn write_loop<W: AsyncWrite + Unpin>(mut cx: WriteCtx<W>) -> Result<(), ConnectionError> {
    // Headers are packed together; IN payloads are written from the device's buffers.
    let mut out = WriteBatch::with_capacity(64 * 1024);
    loop {
        let mut disconnect = false;
        tokio::select! {
            // Unlinks first: the host waits for each one (usb_kill_urb), and a device that
            // completes URBs faster than the socket drains would otherwise starve them.
            biased;
            m = cx.from_reader.recv() => match m {
                Some(m) => disconnect |= cx.handle_reader_msg(m),
                None => return Ok(()),
            },
            c = cx.completions.recv() => match c {
                Some(BusOutput::Completion(c)) => cx.take(c),
                Some(BusOutput::Disconnect) | None => disconnect = true,
            },
        }
        // Gather whatever else is ready before writing, unlinks first again.
        while !disconnect && cx.replies.bytes() < WRITE_BATCH {
            if let Ok(m) = cx.from_reader.try_recv() {
                disconnect |= cx.handle_reader_msg(m);
                continue;
            }
            match cx.completions.try_recv() {
                Ok(BusOutput::Completion(c)) => cx.take(c),
                Ok(BusOutput::Disconnect) => disconnect = true,
                Err(_) => break,
            }
        }
        // Encode right before writing: until here a queued RET_SUBMIT can still be
        // cancelled by an unlink; from here on it is the wire's.
        cx.encode(&mut out)?;
        if !out.is_empty() {
            write_batch_within(&mut cx.writer, &mut out, cx.idle).await?;
        }
        cx.window.answered(cx.answered.iter());
        cx.answered.clear();
        if disconnect {
            tracing::info!("the device's service went away: disconnecting the host");
            let _ = tokio::time::timeout(cx.idle, cx.writer.shutdown()).await;
            return Ok(());
        }
    }
}

impl<W> WriteCtx<W> {
    /// A message from the reader. True when the device asked to disconnect the host meanwhile.
    fn handle_reader_msg(&mut self, m: ToWriter) -> bool {
        match m {
            ToWriter::Unlink(u) => self.unlink(u),
            ToWriter::Answered(ret) => {
                self.replies.push_unlink(ret, None);
                false
            }
        }
    }

    /// A completion from the device: its RET_SUBMIT joins the queue.
    fn take(&mut self, c: UrbCompletion) {
        let Some(urb) = u32::try_from(c.id.0)
            .ok()
            .and_then(|seqnum| self.window.take_from_device(seqnum))
        else {
            // Never send an unknown seqnum: the Linux host would drop the device.
            tracing::warn!(
                urb = c.id.0,
                "completion for a URB that is not pending: dropped"
            );
            return;
        };
        self.replies.push_submit(urb, c);
    }

    /// Answer a CMD_UNLINK (the table in `replies.rs`). True when the device asked to
    /// disconnect the host meanwhile.
    fn unlink(&mut self, u: CmdUnlink) -> bool {
        let target = u.unlink_seqnum;
        let in_device = self.window.lock().in_device.contains_key(&target);
        if in_device && self.port.unlink(UrbId(u64::from(target))) {
            let urb = self.window.take_from_device(target);
            tracing::debug!(seqnum = target, "CMD_UNLINK: cancelled in the device");
            self.replies.push_unlink(
                RetUnlink {
                    seqnum: u.seqnum,
                    status: -errno::ECONNRESET,
                },
                urb,
            );
            return false;
        }
        // Completed: its completion is in the channel, queued here, or on the wire.
        let mut disconnect = false;
        loop {
            match self.completions.try_recv() {
                Ok(BusOutput::Completion(c)) => self.take(c),
                Ok(BusOutput::Disconnect) => disconnect = true,
                Err(_) => break,
            }
        }
        let (status, answers) = match self.replies.cancel_submit(target) {
            Some(urb) => (-errno::ECONNRESET, Some(urb)),
            None => (0, None),
        };
        tracing::debug!(
            seqnum = target,
            status,
            "CMD_UNLINK of a completed URB ({})",
            if answers.is_some() {
                "its RET_SUBMIT was not written yet: cancelled"
            } else {
                "its RET_SUBMIT is on the wire"
            }
        );
        self.replies.push_unlink(
            RetUnlink {
                seqnum: u.seqnum,
                status,
            },
            answers,
        );
        disconnect
    }

    /// Encode every queued reply into `out`, noting the URBs they answer.
    fn encode(&mut self, out: &mut WriteBatch) -> Result<(), ConnectionError> {
        for reply in self.replies.take_all() {
            match reply {
                Reply::Submit { urb, completion } => {
                    let mut ret = super::iso::ret_submit(urb.seqnum, &urb, completion);
                    if let Some(tap) = &self.tap {
                        tap.complete(&self.device, &urb, &ret);
                    }
                    ret.encode_header(urb.direction, out.packed())?;
                    out.payload(std::mem::take(&mut ret.data));
                    ret.encode_iso(out.packed());
                    self.answered.push(urb);
                }
                Reply::Unlink { ret, answers } => {
                    ret.encode(out.packed())?;
                    self.answered.extend(answers);
                }
            }
        }
        Ok(())
    }
}
