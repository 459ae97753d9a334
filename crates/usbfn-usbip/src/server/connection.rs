//! One USB/IP connection: the op phase, then URB traffic for an imported device.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use usbfn::{BusOutput, BusPort, CompletionStatus, Error as UsbfnError, UrbCompletion};
use usbfn_core::{Urb, UrbId};
use usbfn_wire::SetupPacket;

use super::{Export, Server, SubmittedUrb};
use crate::batch::WriteBatch;
use crate::proto::{
    CmdSubmit, CmdUnlink, Command, Direction, OpReply, OpRequest, OpStatus, ProtoError, RetUnlink,
    ServerCodec, TransferFlags, UsbDevice, errno,
};

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

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 64 * 1024;
/// Queued CMD_UNLINKs before the reader waits for the writer.
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
    let request = loop {
        if let Some(r) = OpRequest::decode(&mut buf)? {
            break r;
        }
        tokio::select! {
            n = read_more(&mut reader, &mut buf) => {
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
async fn write_batch_within(
    writer: &mut OwnedWriteHalf,
    batch: &mut WriteBatch,
    timeout: Duration,
) -> Result<(), ConnectionError> {
    let pending = batch.len();
    tokio::select! {
        r = batch.write_to(writer) => Ok(r?),
        () = sleep_until(deadline_after(timeout)) => Err(ConnectionError::WriteTimeout {
            pending,
            timeout,
        }),
    }
}

async fn read_more(reader: &mut OwnedReadHalf, buf: &mut BytesMut) -> std::io::Result<usize> {
    if buf.capacity() - buf.len() < READ_CHUNK / 4 {
        buf.reserve(READ_CHUNK);
    }
    reader.read_buf(buf).await
}

/// URBs the connection has accepted and not yet answered, by seqnum, and their bytes.
#[derive(Debug, Default)]
struct PendingUrbs {
    urbs: HashMap<u32, SubmittedUrb>,
    /// Sum of `transfer_buffer_length` over `urbs` (checked against
    /// `ServerOptions::max_outstanding_bytes`).
    bytes: usize,
}

impl PendingUrbs {
    fn insert(&mut self, urb: SubmittedUrb) {
        self.bytes = self.bytes.saturating_add(urb_bytes(&urb));
        if let Some(old) = self.urbs.insert(urb.seqnum, urb) {
            // The caller refuses reused seqnums first; keep the count right regardless.
            self.bytes = self.bytes.saturating_sub(urb_bytes(&old));
        }
    }

    fn remove(&mut self, seqnum: u32) -> Option<SubmittedUrb> {
        let urb = self.urbs.remove(&seqnum)?;
        self.bytes = self.bytes.saturating_sub(urb_bytes(&urb));
        Some(urb)
    }
}

fn urb_bytes(urb: &SubmittedUrb) -> usize {
    usize::try_from(urb.transfer_buffer_length).unwrap_or(usize::MAX)
}

type Pending = Arc<Mutex<PendingUrbs>>;

#[allow(clippy::too_many_arguments)] // the pieces of one connection, handed over once
async fn urb_phase(
    server: &Server,
    device: UsbDevice,
    mut port: BusPort,
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    buf: BytesMut,
    mut stop: watch::Receiver<bool>,
) -> Result<(), ConnectionError> {
    let completions = port.take_receiver();
    let port = Arc::new(port);
    let pending: Pending = Arc::default();
    let (unlink_tx, unlink_rx) = mpsc::channel(UNLINK_QUEUE);
    let limits = server.options.limits;
    let tap = server.options.tap.clone();
    let idle = server.options.idle_timeout;
    let read = read_loop(ReadCtx {
        codec: ServerCodec::new(limits),
        reader,
        buf,
        port: port.clone(),
        pending: pending.clone(),
        unlinks: unlink_tx,
        device: device.clone(),
        max_outstanding: limits.max_outstanding_urbs,
        max_outstanding_bytes: server.options.max_outstanding_bytes,
        idle,
        tap: tap.clone(),
    });
    let write = write_loop(WriteCtx {
        writer,
        completions,
        unlinks: unlink_rx,
        port: port.clone(),
        pending,
        device,
        idle,
        tap,
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

struct ReadCtx {
    codec: ServerCodec,
    reader: OwnedReadHalf,
    buf: BytesMut,
    port: Arc<BusPort>,
    pending: Pending,
    unlinks: mpsc::Sender<CmdUnlink>,
    device: UsbDevice,
    max_outstanding: usize,
    max_outstanding_bytes: usize,
    idle: Duration,
    tap: Option<Arc<dyn super::UrbTap>>,
}

async fn read_loop(mut cx: ReadCtx) -> Result<(), ConnectionError> {
    // When the first byte of the message at the front of `buf` arrived (None: `buf` is
    // empty, the host is between messages and may stay there as long as it likes).
    let mut partial_since: Option<Instant> = None;
    loop {
        let mut decoded = false;
        while let Some(cmd) = cx.codec.decode(&mut cx.buf)? {
            decoded = true;
            match cmd {
                Command::Submit(cmd) => cx.submit(cmd)?,
                Command::Unlink(cmd) => {
                    if cx.unlinks.send(cmd).await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
        partial_since = match partial_since {
            _ if cx.buf.is_empty() => None,
            // What is left arrived with the last read, after the message before it.
            Some(_) if decoded => Some(Instant::now()),
            Some(since) => Some(since),
            None => Some(Instant::now()),
        };
        let deadline = partial_since.and_then(|since| since.checked_add(cx.idle));
        let n = tokio::select! {
            n = read_more(&mut cx.reader, &mut cx.buf) => n?,
            () = sleep_until(deadline), if deadline.is_some() => {
                return Err(ConnectionError::IdleTimeout {
                    what: "a URB message",
                    buffered: cx.buf.len(),
                    timeout: cx.idle,
                });
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

impl ReadCtx {
    fn submit(&mut self, cmd: CmdSubmit) -> Result<(), ConnectionError> {
        let record = SubmittedUrb {
            seqnum: cmd.seqnum,
            direction: cmd.direction,
            ep: cmd.ep,
            setup: cmd.setup,
            transfer_buffer_length: cmd.transfer_buffer_length,
            number_of_packets: cmd.number_of_packets,
            transfer_flags: cmd.transfer_flags.0,
            iso: cmd.iso.clone(),
        };
        {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            if pending.urbs.len() >= self.max_outstanding {
                return Err(ConnectionError::Limit(format!(
                    "{} URBs outstanding on one connection (max_outstanding_urbs {})",
                    pending.urbs.len() + 1,
                    self.max_outstanding
                )));
            }
            let bytes = pending.bytes.saturating_add(urb_bytes(&record));
            if bytes > self.max_outstanding_bytes {
                return Err(ConnectionError::Limit(format!(
                    "{bytes} bytes of URBs outstanding on one connection (max_outstanding_bytes {})",
                    self.max_outstanding_bytes
                )));
            }
            if pending.urbs.contains_key(&cmd.seqnum) {
                return Err(ConnectionError::Limit(format!(
                    "CMD_SUBMIT reuses seqnum {} of a pending URB",
                    cmd.seqnum
                )));
            }
            pending.insert(record);
        }
        if let Some(tap) = &self.tap {
            tap.submit(&self.device, &cmd);
        }
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
            return Ok(());
        }
        let direction = match cmd.direction {
            Direction::In => usbfn_wire::Direction::In,
            Direction::Out => usbfn_wire::Direction::Out,
        };
        let setup = (cmd.ep == 0).then(|| SetupPacket::from_bytes(cmd.setup));
        let buffer_len = usize::try_from(cmd.transfer_buffer_length).unwrap_or(usize::MAX);
        let flags = cmd.transfer_flags;
        let iso = super::iso::iso_request(&cmd);
        self.port.submit(Urb {
            id: UrbId(u64::from(cmd.seqnum)),
            endpoint: cmd.ep,
            direction,
            setup,
            buffer_len,
            data: cmd.data,
            short_not_ok: flags.contains(TransferFlags::SHORT_NOT_OK),
            zero_packet: flags.contains(TransferFlags::ZERO_PACKET),
            iso,
        });
        Ok(())
    }
}

struct WriteCtx {
    writer: OwnedWriteHalf,
    completions: mpsc::UnboundedReceiver<BusOutput>,
    unlinks: mpsc::Receiver<CmdUnlink>,
    port: Arc<BusPort>,
    pending: Pending,
    device: UsbDevice,
    idle: Duration,
    tap: Option<Arc<dyn super::UrbTap>>,
}

async fn write_loop(mut cx: WriteCtx) -> Result<(), ConnectionError> {
    // Headers are packed together; IN payloads are written from the device's buffers.
    let mut out = WriteBatch::with_capacity(64 * 1024);
    loop {
        let mut disconnect = false;
        tokio::select! {
            // Unlinks first: the host waits for each one (usb_kill_urb), and a device that
            // completes URBs faster than the socket drains would otherwise starve them.
            // Answering one while completions are queued is safe: `unlink` sends a queued
            // RET_SUBMIT before the RET_UNLINK that says it went out.
            biased;
            u = cx.unlinks.recv() => match u {
                Some(u) => disconnect = cx.unlink(u, &mut out)?,
                None => return Ok(()),
            },
            c = cx.completions.recv() => match c {
                Some(BusOutput::Completion(c)) => cx.ret_submit(c, &mut out)?,
                Some(BusOutput::Disconnect) | None => disconnect = true,
            },
        }
        // Batch whatever else is ready before writing, unlinks first again.
        while !disconnect && out.len() < WRITE_BATCH {
            if let Ok(u) = cx.unlinks.try_recv() {
                disconnect = cx.unlink(u, &mut out)?;
                continue;
            }
            match cx.completions.try_recv() {
                Ok(BusOutput::Completion(c)) => cx.ret_submit(c, &mut out)?,
                Ok(BusOutput::Disconnect) => disconnect = true,
                Err(_) => break,
            }
        }
        if !out.is_empty() {
            write_batch_within(&mut cx.writer, &mut out, cx.idle).await?;
        }
        if disconnect {
            tracing::info!("the device's service went away: disconnecting the host");
            let _ = tokio::time::timeout(cx.idle, cx.writer.shutdown()).await;
            return Ok(());
        }
    }
}

impl WriteCtx {
    fn ret_submit(
        &mut self,
        c: UrbCompletion,
        out: &mut WriteBatch,
    ) -> Result<(), ConnectionError> {
        let seqnum = u32::try_from(c.id.0).unwrap_or(u32::MAX);
        let Some(urb) = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(seqnum)
        else {
            // Never send an unknown seqnum: the Linux host would drop the device.
            tracing::warn!(seqnum, "completion for a URB that is not pending: dropped");
            return Ok(());
        };
        let mut ret = super::iso::ret_submit(seqnum, &urb, c);
        if let Some(tap) = &self.tap {
            tap.complete(&self.device, &urb, &ret);
        }
        ret.encode_header(urb.direction, out.packed())?;
        out.payload(std::mem::take(&mut ret.data));
        ret.encode_iso(out.packed());
        Ok(())
    }

    /// Answers a CMD_UNLINK. True when the device asked to disconnect the host meanwhile.
    fn unlink(&mut self, u: CmdUnlink, out: &mut WriteBatch) -> Result<bool, ConnectionError> {
        let mut disconnect = false;
        let was_pending = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .urbs
            .contains_key(&u.unlink_seqnum);
        let cancelled = was_pending && self.port.unlink(UrbId(u64::from(u.unlink_seqnum)));
        tracing::debug!(
            seqnum = u.unlink_seqnum,
            was_pending,
            cancelled,
            "CMD_UNLINK"
        );
        let status = if cancelled {
            self.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(u.unlink_seqnum);
            -errno::ECONNRESET
        } else {
            // Completed already: its RET_SUBMIT is queued (or sent); send it first. A
            // disconnect request met on the way is kept, not lost.
            loop {
                match self.completions.try_recv() {
                    Ok(BusOutput::Completion(c)) => self.ret_submit(c, out)?,
                    Ok(BusOutput::Disconnect) => disconnect = true,
                    Err(_) => break,
                }
            }
            0
        };
        RetUnlink {
            seqnum: u.seqnum,
            status,
        }
        .encode(out.packed())?;
        Ok(disconnect)
    }
}
