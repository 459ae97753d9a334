//! [`ImportedDevice`]: URB traffic on an imported device's connection.
//!
//! One reader task decodes replies and completes waiters; one writer task owns the write
//! half and writes what submitters queue (so a cancelled `submit` future can never leave half
//! a message on the wire). Both share one [`ClientCodec`] behind a mutex, so every URB is
//! registered before its bytes can reach the server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{AbortHandle, JoinHandle};

use super::ClientError;
use crate::batch::WriteBatch;
use crate::proto::{
    ClientCodec, CmdSubmit, CmdUnlink, Direction, IsoPacketDescriptor, Limits, ProtoError, Reply,
    RetSubmit, TransferFlags, UsbDevice,
};

/// Bytes of CMD_SUBMIT headers encoded per allocation.
const HEADER_ARENA: usize = 64 * crate::proto::HEADER_LEN;
/// The writer stops coalescing queued messages at this many bytes and writes.
const WRITE_BATCH: usize = 256 * 1024;

/// A URB to submit. Build one with the constructors, adjust fields as needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Urb {
    /// Endpoint number (0..=15; 0 is the control endpoint).
    pub ep: u8,
    /// Direction of the data stage.
    pub direction: Direction,
    /// URB flags (the constructors set [`TransferFlags::DIR_IN`] for IN).
    pub transfer_flags: TransferFlags,
    /// Setup packet for control URBs, zeros otherwise.
    pub setup: [u8; 8],
    /// IN: how many bytes the host can take. Ignored for OUT (`data.len()` is sent).
    pub buffer_len: u32,
    /// OUT: the data. Must be empty for IN.
    pub data: Bytes,
    /// Isochronous start frame.
    pub start_frame: i32,
    /// Raw packet count: > 0 for isochronous URBs, 0 otherwise (-1 to mimic Windows).
    pub number_of_packets: i32,
    /// Polling interval.
    pub interval: i32,
    /// Isochronous packet descriptors.
    pub iso: Vec<IsoPacketDescriptor>,
}

/// A completed URB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrbCompletion {
    /// 0 or a negative errno: `-EPIPE` stall, `-EOVERFLOW` babble, `-EREMOTEIO` short with
    /// SHORT_NOT_OK, `-ECONNRESET` unlinked.
    pub status: i32,
    /// Bytes transferred.
    pub actual_length: u32,
    /// IN data (`actual_length` bytes; iso packets packed without gaps).
    pub data: Bytes,
    /// Isochronous start frame.
    pub start_frame: i32,
    /// Isochronous packets that failed.
    pub error_count: i32,
    /// Isochronous descriptors as returned.
    pub iso: Vec<IsoPacketDescriptor>,
}

/// A submitted URB whose completion has not been awaited yet. Dropping it does not cancel
/// the URB: use [`ImportedDevice::unlink`] with its [`seqnum`](PendingUrb::seqnum).
#[derive(Debug)]
pub struct PendingUrb {
    seqnum: u32,
    rx: oneshot::Receiver<Result<UrbCompletion, ClientError>>,
}

/// An imported device: submit URBs, unlink them, run host-style requests.
///
/// Methods take `&self`; share it between tasks with an `Arc`. Dropping it closes the
/// connection and fails pending URBs with [`ClientError::Closed`].
#[derive(Debug)]
pub struct ImportedDevice {
    device: UsbDevice,
    shared: Arc<Shared>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    codec: ClientCodec,
    next_seqnum: u32,
    submits: HashMap<u32, SubmitWaiter>,
    unlinks: HashMap<u32, oneshot::Sender<Result<i32, ClientError>>>,
    /// Queue to the writer task; `None` once the connection is down. A message may come in
    /// several parts (header, then data), sent back to back under the state lock.
    tx: Option<mpsc::UnboundedSender<Bytes>>,
    /// CMD_SUBMIT headers are encoded here and split off, so they share allocations.
    headers: BytesMut,
    /// Why the connection is down.
    failure: Option<ClientError>,
    writer: Option<AbortHandle>,
}

#[derive(Debug)]
struct SubmitWaiter {
    tx: oneshot::Sender<Result<UrbCompletion, ClientError>>,
    direction: Direction,
    ep: u8,
}

impl Urb {
    /// A bulk or interrupt IN URB taking up to `len` bytes.
    pub fn bulk_in(ep: u8, len: u32) -> Urb {
        Urb {
            buffer_len: len,
            ..Urb::base(ep, Direction::In)
        }
    }

    /// A bulk or interrupt OUT URB sending `data`.
    pub fn bulk_out(ep: u8, data: impl Into<Bytes>) -> Urb {
        Urb {
            data: data.into(),
            ..Urb::base(ep, Direction::Out)
        }
    }

    /// A control IN URB on endpoint 0 taking up to `len` bytes.
    pub fn control_in(setup: [u8; 8], len: u32) -> Urb {
        Urb {
            setup,
            buffer_len: len,
            ..Urb::base(0, Direction::In)
        }
    }

    /// A control OUT URB on endpoint 0 (an empty `data` means no data stage).
    pub fn control_out(setup: [u8; 8], data: impl Into<Bytes>) -> Urb {
        Urb {
            setup,
            data: data.into(),
            ..Urb::base(0, Direction::Out)
        }
    }

    /// An isochronous IN URB with one packet per entry of `packet_lengths`, laid out back to
    /// back in the buffer.
    pub fn iso_in(ep: u8, packet_lengths: &[u32], interval: i32) -> Urb {
        let (iso, total) = iso_layout(packet_lengths.iter().copied());
        Urb {
            buffer_len: total,
            transfer_flags: TransferFlags::DIR_IN | TransferFlags::ISO_ASAP,
            // Past i32::MAX packets the count disagrees with `iso`, and submitting fails
            // (ClientError::InvalidArgument from CMD_SUBMIT's encoder): nothing clamped is sent.
            number_of_packets: i32::try_from(iso.len()).unwrap_or(i32::MAX),
            interval,
            iso,
            ..Urb::base(ep, Direction::In)
        }
    }

    /// An isochronous OUT URB sending one packet per entry of `packets`.
    pub fn iso_out(ep: u8, packets: &[&[u8]], interval: i32) -> Urb {
        // A packet past u32::MAX makes `data` longer than transfer_buffer_length can say, and
        // submitting fails (ClientError::InvalidArgument): nothing clamped is sent.
        let lengths = packets
            .iter()
            .map(|p| u32::try_from(p.len()).unwrap_or(u32::MAX));
        let (iso, _) = iso_layout(lengths);
        Urb {
            data: Bytes::from(packets.concat()),
            transfer_flags: TransferFlags::ISO_ASAP,
            // As in iso_in: a count past i32::MAX fails when submitted.
            number_of_packets: i32::try_from(iso.len()).unwrap_or(i32::MAX),
            interval,
            iso,
            ..Urb::base(ep, Direction::Out)
        }
    }

    /// The same URB with `flags` added.
    pub fn with_flags(mut self, flags: TransferFlags) -> Urb {
        self.transfer_flags |= flags;
        self
    }

    fn base(ep: u8, direction: Direction) -> Urb {
        Urb {
            ep,
            direction,
            transfer_flags: if direction.is_in() {
                TransferFlags::DIR_IN
            } else {
                TransferFlags::NONE
            },
            setup: [0; 8],
            buffer_len: 0,
            data: Bytes::new(),
            start_frame: 0,
            number_of_packets: 0,
            interval: 0,
            iso: Vec::new(),
        }
    }

    fn to_cmd(&self, seqnum: u32, devid: u32) -> Result<CmdSubmit, ClientError> {
        let transfer_buffer_length = match self.direction {
            Direction::In => self.buffer_len,
            Direction::Out => u32::try_from(self.data.len()).map_err(|_| {
                ClientError::InvalidArgument(ProtoError::LimitExceeded {
                    message: "CMD_SUBMIT",
                    field: "transfer_buffer_length",
                    value: self.data.len() as u64,
                    limit: crate::proto::Limit::WireI32,
                    max: i32::MAX as u64,
                })
            })?,
        };
        Ok(CmdSubmit {
            seqnum,
            devid,
            direction: self.direction,
            ep: self.ep,
            transfer_flags: self.transfer_flags,
            transfer_buffer_length,
            start_frame: self.start_frame,
            number_of_packets: self.number_of_packets,
            interval: self.interval,
            setup: self.setup,
            data: self.data.clone(),
            iso: self.iso.clone(),
        })
    }
}

impl UrbCompletion {
    /// Whether the status is 0.
    pub const fn is_ok(&self) -> bool {
        self.status == 0
    }

    /// `Ok(self)` when the status is 0, else [`ClientError::UrbFailed`].
    pub fn into_result(self) -> Result<UrbCompletion, ClientError> {
        if self.is_ok() {
            Ok(self)
        } else {
            Err(ClientError::UrbFailed {
                status: self.status,
            })
        }
    }

    /// For isochronous IN replies: each descriptor with its packet's bytes, unpacked from
    /// the gap-free data (a packet whose bytes are missing gets an empty slice).
    pub fn iso_packets(&self) -> impl Iterator<Item = (&IsoPacketDescriptor, Bytes)> {
        let mut at = 0usize;
        self.iso.iter().map(move |d| {
            let len = d.actual_length as usize;
            let end = at.saturating_add(len);
            let bytes = if end <= self.data.len() {
                self.data.slice(at..end)
            } else {
                Bytes::new()
            };
            at = end;
            (d, bytes)
        })
    }

    fn unlinked(status: i32) -> UrbCompletion {
        UrbCompletion {
            status,
            actual_length: 0,
            data: Bytes::new(),
            start_frame: 0,
            error_count: 0,
            iso: Vec::new(),
        }
    }
}

impl From<RetSubmit> for UrbCompletion {
    fn from(r: RetSubmit) -> UrbCompletion {
        UrbCompletion {
            status: r.status,
            actual_length: r.actual_length,
            data: r.data,
            start_frame: r.start_frame,
            error_count: r.error_count,
            iso: r.iso,
        }
    }
}

impl PendingUrb {
    /// The URB's sequence number (to [`unlink`](ImportedDevice::unlink) it).
    pub fn seqnum(&self) -> u32 {
        self.seqnum
    }

    /// Waits for the URB to complete (or be unlinked: status `-ECONNRESET`).
    pub async fn wait(self) -> Result<UrbCompletion, ClientError> {
        self.rx.await.unwrap_or(Err(ClientError::Closed))
    }
}

impl ImportedDevice {
    /// Spawns the reader and writer tasks on `stream`; `leftover` holds bytes already read
    /// past the import reply.
    pub(super) fn start<S>(
        stream: S,
        device: UsbDevice,
        limits: Limits,
        leftover: BytesMut,
    ) -> ImportedDevice
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (rd, wr) = tokio::io::split(stream);
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                codec: ClientCodec::new(limits),
                next_seqnum: 1,
                submits: HashMap::new(),
                unlinks: HashMap::new(),
                tx: Some(tx),
                headers: BytesMut::with_capacity(HEADER_ARENA),
                failure: None,
                writer: None,
            }),
        });
        let writer = tokio::spawn(write_loop(wr, rx, shared.clone()));
        shared.lock().writer = Some(writer.abort_handle());
        let reader = tokio::spawn(read_loop(rd, leftover, shared.clone()));
        ImportedDevice {
            device,
            shared,
            reader,
            writer,
        }
    }

    /// The device block the server sent on import.
    pub fn device(&self) -> &UsbDevice {
        &self.device
    }

    /// The `devid` URBs carry (`busnum << 16 | devnum`).
    pub fn devid(&self) -> u32 {
        self.device.devid()
    }

    /// URBs submitted and not yet completed.
    pub fn outstanding(&self) -> usize {
        self.shared.lock().codec.outstanding()
    }

    /// Why the connection went down (`None` while it is up). A protocol error from the
    /// server shows up here as [`ClientError::Protocol`].
    pub fn connection_error(&self) -> Option<ClientError> {
        self.shared.lock().failure.clone()
    }

    /// Submits `urb` and waits for its completion.
    pub async fn submit(&self, urb: Urb) -> Result<UrbCompletion, ClientError> {
        self.submit_handle(urb)?.wait().await
    }

    /// Submits `urb` without waiting: the URB is queued for sending before this returns.
    pub fn submit_handle(&self, urb: Urb) -> Result<PendingUrb, ClientError> {
        let mut st = self.shared.lock();
        st.check_up()?;
        let seqnum = st.alloc_seqnum();
        let cmd = urb.to_cmd(seqnum, self.devid())?;
        let header = {
            let State { codec, headers, .. } = &mut *st;
            codec
                .encode_submit_header(&cmd, headers)
                .map_err(ClientError::InvalidArgument)?;
            headers.split().freeze()
        };
        let (tx, rx) = oneshot::channel();
        st.submits.insert(
            seqnum,
            SubmitWaiter {
                tx,
                direction: urb.direction,
                ep: urb.ep,
            },
        );
        // The data goes to the socket from the caller's buffer, not copied into the message.
        st.send(header)?;
        if !cmd.data.is_empty() {
            st.send(cmd.data.clone())?;
        }
        if !cmd.iso.is_empty() {
            let mut iso = BytesMut::with_capacity(
                cmd.iso.len() * crate::proto::urb::ISO_PACKET_DESCRIPTOR_LEN,
            );
            cmd.encode_iso(&mut iso);
            st.send(iso.freeze())?;
        }
        tracing::trace!(seqnum, ep = urb.ep, direction = ?urb.direction, "CMD_SUBMIT");
        Ok(PendingUrb { seqnum, rx })
    }

    /// Unlinks (cancels) URB `seqnum` and returns the RET_UNLINK status: `-ECONNRESET` when
    /// the URB was cancelled (its waiter then completes with that status), 0 when it had
    /// already completed.
    pub async fn unlink(&self, seqnum: u32) -> Result<i32, ClientError> {
        let rx = {
            let mut st = self.shared.lock();
            st.check_up()?;
            let (direction, ep) = st
                .submits
                .get(&seqnum)
                .map_or((Direction::Out, 0), |w| (w.direction, w.ep));
            let cmd = CmdUnlink {
                seqnum: st.alloc_seqnum(),
                devid: self.devid(),
                direction,
                ep,
                unlink_seqnum: seqnum,
            };
            let mut buf = BytesMut::with_capacity(crate::proto::HEADER_LEN);
            st.codec
                .encode_unlink(&cmd, &mut buf)
                .map_err(ClientError::InvalidArgument)?;
            let (tx, rx) = oneshot::channel();
            st.unlinks.insert(cmd.seqnum, tx);
            st.send(buf.freeze())?;
            tracing::trace!(seqnum = cmd.seqnum, unlink_seqnum = seqnum, "CMD_UNLINK");
            rx
        };
        rx.await.unwrap_or(Err(ClientError::Closed))
    }
}

impl Drop for ImportedDevice {
    fn drop(&mut self) {
        self.shared.fail(ClientError::Closed);
        self.reader.abort();
        self.writer.abort();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked: every update is one insert
        // or remove.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the connection down: records `reason` (the first one wins), fails every waiter,
    /// stops the writer (dropping the write half closes the socket once the reader is gone).
    fn fail(&self, reason: ClientError) {
        let mut st = self.lock();
        if st.failure.is_none() {
            if !matches!(reason, ClientError::Closed) {
                tracing::warn!(error = %reason, pending = st.submits.len(), "USB/IP connection failed");
            }
            st.failure = Some(reason);
        }
        let reason = st.failure.clone().unwrap_or(ClientError::Closed);
        st.tx = None;
        if let Some(writer) = st.writer.take() {
            writer.abort();
        }
        for (_, w) in st.submits.drain() {
            let _ = w.tx.send(Err(reason.clone()));
        }
        for (_, w) in st.unlinks.drain() {
            let _ = w.send(Err(reason.clone()));
        }
    }

    /// Handles one decoded reply (called with the state locked).
    fn dispatch(st: &mut State, reply: Reply) {
        match reply {
            Reply::Submit(ret) => {
                tracing::trace!(seqnum = ret.seqnum, status = ret.status, "RET_SUBMIT");
                if let Some(w) = st.submits.remove(&ret.seqnum) {
                    let _ = w.tx.send(Ok(ret.into()));
                }
            }
            Reply::Unlink {
                ret,
                unlink_seqnum,
                cancelled,
            } => {
                tracing::trace!(
                    seqnum = ret.seqnum,
                    status = ret.status,
                    cancelled,
                    "RET_UNLINK"
                );
                if cancelled && let Some(w) = st.submits.remove(&unlink_seqnum) {
                    let _ = w.tx.send(Ok(UrbCompletion::unlinked(ret.status)));
                }
                if let Some(w) = st.unlinks.remove(&ret.seqnum) {
                    let _ = w.send(Ok(ret.status));
                }
            }
        }
    }
}

impl State {
    fn check_up(&self) -> Result<(), ClientError> {
        match &self.failure {
            Some(reason) => Err(reason.clone()),
            None => Ok(()),
        }
    }

    /// The next free sequence number: never 0, never one still in use.
    fn alloc_seqnum(&mut self) -> u32 {
        loop {
            let s = self.next_seqnum;
            self.next_seqnum = self.next_seqnum.wrapping_add(1).max(1);
            if s != 0 && !self.codec.is_outstanding(s) {
                return s;
            }
        }
    }

    fn send(&mut self, bytes: Bytes) -> Result<(), ClientError> {
        match &self.tx {
            Some(tx) if tx.send(bytes).is_ok() => Ok(()),
            _ => Err(self.failure.clone().unwrap_or(ClientError::Closed)),
        }
    }
}

async fn read_loop<R>(mut rd: R, mut buf: BytesMut, shared: Arc<Shared>)
where
    R: AsyncRead + Unpin,
{
    buf.reserve(crate::read_ahead::READ_AHEAD);
    let mut ahead = crate::read_ahead::ReadAhead::default();
    let reason = loop {
        let (held, mut replies) = (buf.len(), 0);
        let decoded = {
            let mut st = shared.lock();
            let mut result = Ok(());
            loop {
                match st.codec.decode(&mut buf) {
                    Ok(Some(reply)) => {
                        replies += 1;
                        Shared::dispatch(&mut st, reply);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            result
        };
        if let Err(e) = decoded {
            tracing::error!(error = %e, "USB/IP protocol error from the server; dropping the device");
            break ClientError::Protocol(e);
        }
        ahead.decoded(held.saturating_sub(buf.len()), replies);
        ahead.make_room(&mut buf);
        match rd.read_buf(&mut buf).await {
            Ok(0) => break ClientError::ConnectionClosed,
            Ok(_) => {}
            Err(e) => break e.into(),
        }
    };
    shared.fail(reason);
}

async fn write_loop<W>(mut wr: W, mut rx: mpsc::UnboundedReceiver<Bytes>, shared: Arc<Shared>)
where
    W: AsyncWrite + Unpin,
{
    let mut batch = WriteBatch::with_capacity(64 * 1024);
    while let Some(bytes) = rx.recv().await {
        batch.payload(bytes);
        // Coalesce whatever else is queued into one vectored write.
        while batch.len() < WRITE_BATCH {
            match rx.try_recv() {
                Ok(more) => batch.payload(more),
                Err(_) => break,
            }
        }
        if let Err(e) = batch.write_to(&mut wr).await {
            shared.fail(e.into());
            return;
        }
    }
    let _ = wr.shutdown().await;
}

/// Descriptors for packets of `lengths` laid out back to back, and the total length.
fn iso_layout(lengths: impl Iterator<Item = u32>) -> (Vec<IsoPacketDescriptor>, u32) {
    let mut offset = 0u32;
    let iso = lengths
        .map(|length| {
            let d = IsoPacketDescriptor {
                offset,
                length,
                actual_length: 0,
                status: 0,
            };
            offset = offset.saturating_add(length);
            d
        })
        .collect();
    (iso, offset)
}
