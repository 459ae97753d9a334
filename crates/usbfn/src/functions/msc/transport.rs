//! The Bulk-Only Transport loop: read a CBW, run its command (SCSI in [`super::scsi`], block
//! I/O on the I/O thread), move the data stage as [`Plan`] says, send the CSW.
//!
//! Block data streams through a bounded window: at most [`WINDOW`] chunks of [`CHUNK`]
//! bytes are held at once (being read from the image, waiting in a bulk IN transfer, being
//! received, or being written), however long the command; the next chunk's file I/O overlaps
//! the current chunk's USB transfer.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use usbfn_core::PipeId;

use super::bot::{Cbw, CbwError, Csw, Expect, Intent, Plan, Status};
use super::image::{self, Io};
use super::scsi::{self, Action, Command, Identity, Lun, Sense};
use crate::{Error, ServiceApi};

/// Bytes per data-stage transfer and per file read or write.
pub const CHUNK: usize = 128 * 1024;
/// Chunks in flight at once per command: the memory bound of a data stage is
/// `WINDOW * CHUNK` (1 MiB) whatever the command's length.
pub const WINDOW: usize = 8;

/// The bulk pipes at the current speed.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Pipes {
    pub(crate) bulk_in: PipeId,
    pub(crate) bulk_out: PipeId,
    /// wMaxPacketSize of the bulk endpoints.
    pub(crate) max_packet: usize,
}

/// The state that outlives a transport task (a reset restarts the task, not the LUNs).
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) luns: Mutex<Vec<Lun>>,
    pub(crate) identity: Identity,
    pub(crate) io: Io,
    /// An invalid CBW wedged bulk-in: the Bulk-Only Mass Storage Reset clears its halt.
    pub(crate) wedged: AtomicBool,
}

/// How often a wedged bulk-in endpoint is checked and halted again (the host's
/// CLEAR_FEATURE(ENDPOINT_HALT) is answered by the bus, not by the function).
pub(crate) const WEDGE_POLL: Duration = Duration::from_millis(5);

/// Why the transport stopped: a transfer was cancelled or the device went away (logged
/// through `Debug`).
#[derive(Debug)]
pub(crate) enum Stopped {
    Transfer(#[allow(dead_code)] Error),
}

/// Serve CBWs until something stops it.
pub(crate) async fn run<S: ServiceApi>(
    iface: Arc<S>,
    pipes: Pipes,
    shared: Arc<Shared>,
) -> Stopped {
    // Read CBWs in buffers of one packet: a CBW is a short packet (31 bytes), so anything
    // else (a data packet where a CBW belongs) arrives with another length and is invalid.
    let cbw_capacity = pipes.max_packet.max(64);
    let mut next = Some(iface.transfer_out(pipes.bulk_out, cbw_capacity));
    loop {
        let received = match next.take() {
            Some(t) => t.await,
            None => iface.transfer_out(pipes.bulk_out, cbw_capacity).await,
        };
        let received = match received {
            Ok(c) => c.data,
            Err(e) => return Stopped::Transfer(e),
        };
        let cbw = match Cbw::parse(&received) {
            Ok(c) => c,
            // Not valid (BOT 6.6.1), as f_mass_storage: bulk-in wedged, bulk-out data taken
            // and dropped, until the Bulk-Only Mass Storage Reset.
            Err(e @ (CbwError::Length(_) | CbwError::Signature(_))) => {
                tracing::warn!(
                    error = %e,
                    "msc: invalid CBW; bulk-in stalled (and stalled again after CLEAR_FEATURE(HALT)), bulk-out data dropped, until a Bulk-Only Mass Storage Reset"
                );
                shared.wedged.store(true, Ordering::SeqCst);
                halt(&*iface, pipes.bulk_in).await;
                return wedged(&*iface, pipes).await;
            }
            // Valid but not meaningful, as f_mass_storage: both endpoints halted (the host
            // clears them), then the next CBW.
            Err(e) => {
                tracing::warn!(error = %e, "msc: CBW not meaningful; halting both bulk endpoints");
                halt(&*iface, pipes.bulk_in).await;
                halt(&*iface, pipes.bulk_out).await;
                continue;
            }
        };
        let csw = match command(&*iface, pipes, &shared, &cbw).await {
            Ok(csw) => csw,
            Err(e) => return Stopped::Transfer(e),
        };
        tracing::trace!(tag = csw.tag, residue = csw.residue, status = ?csw.status, "msc: CSW");
        let sent = iface.transfer_in(pipes.bulk_in, Bytes::copy_from_slice(&csw.emit()));
        // The next CBW's read is queued while the CSW goes out.
        next = Some(iface.transfer_out(pipes.bulk_out, cbw_capacity));
        if let Err(e) = sent.await {
            return Stopped::Transfer(e);
        }
    }
}

/// Run one command: its data stage and its CSW's contents.
async fn command<S: ServiceApi>(
    iface: &S,
    pipes: Pipes,
    shared: &Shared,
    cbw: &Cbw,
) -> Result<Csw, Error> {
    let lun = usize::from(cbw.lun);
    let action = decide(shared, cbw);
    let intent = match &action {
        Action::Reply(d) if !d.is_empty() => Intent::In(d.len() as u64),
        Action::Read { len, .. } if *len > 0 => Intent::In(*len),
        Action::Write { len, .. } if *len > 0 => Intent::Out(*len),
        _ => Intent::None,
    };
    let plan = Plan::new(cbw.expect, intent);
    tracing::trace!(tag = cbw.tag, lun, cb = ?cbw.cb, ?plan, "msc: CBW");
    let mut status = match (&action, plan.phase_error) {
        (_, true) => Status::PhaseError,
        (Action::Fail(_), false) => Status::Failed,
        _ => Status::Passed,
    };
    let mut moved: u64 = 0;
    let transfer = u64::from(plan.transfer);
    match (&action, cbw.expect) {
        (_, Expect::In(_)) => {
            let outcome = match &action {
                Action::Reply(d) => {
                    // Fits: a u32 transfer length into usize on every target usbfn builds for.
                    let n = usize::try_from(plan.transfer).unwrap_or(usize::MAX);
                    let d = Bytes::copy_from_slice(d.get(..n).unwrap_or(d));
                    send(iface, pipes, d, plan.stall).await?
                }
                Action::Read { offset, .. } if transfer > 0 => {
                    send_image(iface, pipes, &shared.io, lun, *offset, transfer).await?
                }
                _ => Moved::default(),
            };
            moved = outcome.bytes;
            if let Some(sense) = outcome.failed {
                status = fail(shared, lun, sense, status);
            }
            if plan.stall || outcome.failed.is_some() {
                halt(iface, pipes.bulk_in).await;
            }
        }
        (_, Expect::Out(_)) => {
            let target = match &action {
                Action::Write { offset, .. } if !plan.phase_error => Some(*offset),
                _ => None,
            };
            let outcome = receive_image(iface, pipes, &shared.io, lun, target, transfer).await?;
            moved = outcome.bytes;
            if let Some(sense) = outcome.failed {
                status = fail(shared, lun, sense, status);
            }
            if plan.stall || moved < transfer {
                halt(iface, pipes.bulk_out).await;
            }
        }
        (_, Expect::None) => {}
    }
    // Durability: FUA and SYNCHRONIZE CACHE are on stable storage before the CSW.
    let sync = match action {
        Action::Sync => true,
        Action::Write { fua, .. } => fua && moved > 0,
        _ => false,
    };
    if sync && !plan.phase_error && status == Status::Passed {
        let result = image::wait(shared.io.sync(lun).await).await;
        if let Err(e) = result {
            tracing::warn!(lun, error = %e, "msc: fdatasync of the image failed");
            status = fail(shared, lun, Sense::WRITE_ERROR, status);
        }
    }
    let residue = u64::from(cbw.expect.len()).saturating_sub(moved);
    Ok(Csw {
        tag: cbw.tag,
        // Fits: the residue is at most dCBWDataTransferLength, a u32.
        residue: u32::try_from(residue).unwrap_or(u32::MAX),
        status,
    })
}

/// The command's action, with the LUN's state updated (and a decoding error recorded as the
/// LUN's sense).
fn decide(shared: &Shared, cbw: &Cbw) -> Action {
    let mut luns = shared.luns.lock().unwrap_or_else(|p| p.into_inner());
    let count = u8::try_from(luns.len()).unwrap_or(u8::MAX);
    let parsed = Command::parse(&cbw.cb);
    match (luns.get_mut(usize::from(cbw.lun)), parsed) {
        (Some(lun), Ok(cmd)) => lun.execute(&cmd, &shared.identity, count),
        (Some(lun), Err(sense)) => {
            lun.sense = sense;
            Action::Fail(sense)
        }
        (None, Ok(cmd)) => scsi::absent_lun(&cmd, &shared.identity, count),
        (None, Err(_)) => Action::Fail(Sense::LUN_NOT_SUPPORTED),
    }
}

/// Record `sense` as the LUN's and turn a passed status into failed.
fn fail(shared: &Shared, lun: usize, sense: Sense, status: Status) -> Status {
    if let Some(l) = shared
        .luns
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_mut(lun)
    {
        l.sense = sense;
    }
    match status {
        Status::Passed => Status::Failed,
        s => s,
    }
}

/// After an invalid CBW: keep bulk-in halted and drop what arrives on bulk-out, until the
/// task is aborted (reset, reconfiguration) or the interface fails.
async fn wedged<S: ServiceApi>(iface: &S, pipes: Pipes) -> Stopped {
    let chunk = pipes.max_packet.max(64).saturating_mul(16);
    let drop_out = async {
        loop {
            match iface.transfer_out(pipes.bulk_out, chunk).await {
                Ok(c) => {
                    tracing::debug!(bytes = c.data.len(), "msc: wedged; bulk-out data dropped")
                }
                Err(e) => return e,
            }
        }
    };
    let keep_halted = async {
        loop {
            tokio::time::sleep(WEDGE_POLL).await;
            match iface.get_pipe_state(pipes.bulk_in).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::debug!(
                        "msc: wedged bulk-in was cleared without a reset; halting it again"
                    );
                    if let Err(e) = iface.set_pipe_state(pipes.bulk_in, true).await {
                        return e;
                    }
                }
                Err(e) => return e,
            }
        }
    };
    tokio::select! {
        e = drop_out => Stopped::Transfer(e),
        e = keep_halted => Stopped::Transfer(e),
    }
}

async fn halt<S: ServiceApi>(iface: &S, pipe: PipeId) {
    if let Err(e) = iface.set_pipe_state(pipe, true).await {
        tracing::debug!(error = %e, pipe = pipe.0, "msc: halting a bulk endpoint failed");
    }
}

/// What a data stage moved, and the sense when the image failed under it.
#[derive(Debug, Default)]
struct Moved {
    bytes: u64,
    failed: Option<Sense>,
}

/// Send a small reply. When the host expects more and the reply is a whole number of
/// packets, a zero-length packet ends the host's transfer before the endpoint is halted (so
/// the data is not lost in a stalled URB).
async fn send<S: ServiceApi>(
    iface: &S,
    pipes: Pipes,
    data: Bytes,
    short_of_host: bool,
) -> Result<Moved, Error> {
    if data.is_empty() {
        return Ok(Moved::default());
    }
    let len = data.len();
    let t = if short_of_host && len.is_multiple_of(pipes.max_packet.max(1)) {
        iface.transfer_in_append_zero(pipes.bulk_in, data)
    } else {
        iface.transfer_in(pipes.bulk_in, data)
    };
    t.await?;
    Ok(Moved {
        bytes: len as u64,
        failed: None,
    })
}

/// Stream `len` bytes of the image from `offset` to the host.
async fn send_image<S: ServiceApi>(
    iface: &S,
    pipes: Pipes,
    io: &Io,
    lun: usize,
    offset: u64,
    len: u64,
) -> Result<Moved, Error> {
    let mut reads: VecDeque<(u64, image::Pending<Bytes>)> = VecDeque::new();
    let mut sends: VecDeque<(u64, S::Transfer)> = VecDeque::new();
    let (mut issued, mut sent) = (0u64, 0u64);
    let mut failed = None;
    loop {
        while failed.is_none() && issued < len && reads.len() + sends.len() < WINDOW {
            let n = (len - issued).min(CHUNK as u64);
            let pending = io.read(lun, offset + issued, chunk_len(n)).await;
            reads.push_back((n, pending));
            issued += n;
        }
        // Keep half the window for read-ahead: move a read to the bus while there is room.
        if (failed.is_none() && sends.len() < WINDOW / 2 || sends.is_empty())
            && let Some((n, pending)) = reads.pop_front()
        {
            match image::wait(pending).await {
                Ok(data) => sends.push_back((n, iface.transfer_in(pipes.bulk_in, data))),
                Err(e) => {
                    tracing::warn!(lun, offset = offset + sent, error = %e, "msc: image read failed");
                    failed = Some(Sense::READ_ERROR);
                    reads.clear();
                }
            }
            continue;
        }
        match sends.pop_front() {
            Some((n, t)) => {
                t.await?;
                sent += n;
            }
            None => break,
        }
    }
    Ok(Moved {
        bytes: sent,
        failed,
    })
}

/// Receive `len` bytes from the host and write them at `target` (or discard them when
/// `None`: a phase error's data).
async fn receive_image<S: ServiceApi>(
    iface: &S,
    pipes: Pipes,
    io: &Io,
    lun: usize,
    target: Option<u64>,
    len: u64,
) -> Result<Moved, Error> {
    let mut receives: VecDeque<(u64, S::Transfer)> = VecDeque::new();
    let mut writes: VecDeque<image::Pending<()>> = VecDeque::new();
    let (mut issued, mut received) = (0u64, 0u64);
    let mut failed = None;
    let mut ended = false;
    loop {
        while !ended && issued < len && receives.len() + writes.len() < WINDOW {
            let n = (len - issued).min(CHUNK as u64);
            receives.push_back((n, iface.transfer_out(pipes.bulk_out, chunk_len(n))));
            issued += n;
        }
        // Writes are awaited when the window is full or nothing else is left.
        if !writes.is_empty() && (receives.is_empty() || receives.len() + writes.len() >= WINDOW) {
            if let Some(w) = writes.pop_front()
                && let Err(e) = image::wait(w).await
            {
                tracing::warn!(lun, error = %e, "msc: image write failed");
                failed = Some(Sense::WRITE_ERROR);
            }
            continue;
        }
        let Some((n, t)) = receives.pop_front() else {
            break;
        };
        let r = t.await;
        let data = match r {
            Ok(c) => c.data,
            Err(e) => return Err(e),
        };
        let got = data.len() as u64;
        if let Some(at) = target
            && failed.is_none()
            && got > 0
        {
            writes.push_back(io.write(lun, at + received, data).await);
        }
        received += got;
        if got < n {
            // A short packet: the host ended its data early. The queued reads go (dropped:
            // cancelled) and the residue tells the host.
            ended = true;
            receives.clear();
            if target.is_some() && failed.is_none() {
                failed = Some(Sense::INVALID_FIELD_IN_CDB);
            }
        }
    }
    Ok(Moved {
        bytes: received,
        failed,
    })
}

/// A chunk's length (at most [`CHUNK`]) as a usize.
fn chunk_len(n: u64) -> usize {
    usize::try_from(n).unwrap_or(CHUNK).min(CHUNK)
}
