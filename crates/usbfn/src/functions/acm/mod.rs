//! CDC-ACM serial port (`acm[,pty=PATH]`): the host's `cdc-acm` driver binds it as
//! `/dev/ttyACM*`; the device side is a pseudo-terminal in raw mode.
//!
//! * Two interfaces tied by an IAD: the communication interface (class 2/2/1, Header, Call
//!   Management, ACM and Union functional descriptors, an interrupt IN endpoint for
//!   SERIAL_STATE) and the data interface (class 0x0A, bulk IN and OUT), shaped as the
//!   kernel's f_acm.
//! * SET/GET_LINE_CODING, SET_CONTROL_LINE_STATE and SEND_BREAK are answered; the line
//!   coding is applied to the pty (so `stty -F <pty>` on the device side shows the host's
//!   speed and framing) and, with DTR/RTS and breaks, printed on stdout as device-side events
//!   (`acm0: line coding 57600 8N1`, `acm0: control lines DTR=1 RTS=1`, `acm0: break 250 ms`).
//! * SERIAL_STATE carries DCD and DSR while someone has the pty open on the device side.
//! * Flow control: host data is read only while the device side has the pty open and only as
//!   fast as it drains; otherwise the OUT pipe is simply not served and the host sees NAKs.
//!   At most [`OUT_QUEUE`] packets are held per direction.

pub mod cdc;
mod pty;

use std::collections::VecDeque;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use usbfn_core::config::{
    AssociationSection, DeviceConfig, DeviceSection, DirectionName, EndpointSection,
    InterfaceSection, PerSpeed, TransferTypeName,
};
use usbfn_core::{BusEvent, BusSpeed, CompletionStatus, PipeId};
use usbfn_wire::{Direction, SetupPacket, TransferType};

use crate::{Error, ServiceApi};
use cdc::{AcmRequest, LineCoding};
use pty::{Pty, ReadOutcome};

/// OUT transfers (one packet each) kept queued while the device side reads: the most host
/// data held in memory before the host sees NAKs.
pub const OUT_QUEUE: usize = 32;
/// IN transfers in flight at once.
pub const IN_DEPTH: usize = 8;
/// The largest read from the pty.
pub const IN_CHUNK: usize = 16 * 1024;
/// The largest IN transfer (reads already made, joined).
pub const IN_MAX: usize = 64 * 1024;
/// How often the device side's open/close is checked.
pub const CARRIER_POLL: Duration = Duration::from_millis(50);
/// wMaxPacketSize of the notification endpoint (the kernel's `GS_NOTIFY_MAXPACKET`).
pub const NOTIFY_MAXPACKET: u16 = 10;

/// Options of `acm`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// `pty=PATH`: a symlink to the pty's slave.
    pub pty: Option<PathBuf>,
}

/// The names of instance `instance`'s interfaces: communication, then data.
pub fn interface_names(instance: usize) -> [String; 2] {
    [
        format!("acm{instance}.control"),
        format!("acm{instance}.data"),
    ]
}

/// The device descriptor fields when the serial port is the whole device (the kernel's
/// g_serial CDC ACM id, 0525:a4a7, with IADs: class EF/02/01).
pub fn device_section() -> DeviceSection {
    DeviceSection {
        class: 0xef,
        subclass: 0x02,
        protocol: 0x01,
        ..super::function_device(
            0x0525,
            0xa4a7,
            Some("usbfn serial port".into()),
            Some("usbfn-acm".into()),
        )
    }
}

/// The two interfaces, for a device where the communication interface gets number
/// `first_interface` and the data interface the next one (the Union descriptor names both).
pub fn interfaces(instance: usize, first_interface: u8) -> Vec<InterfaceSection> {
    let [control, data] = interface_names(instance);
    let endpoint =
        |direction, transfer_type| EndpointSection::new(None, Some(direction), transfer_type);
    let notify = EndpointSection {
        max_packet: Some(PerSpeed::All(NOTIFY_MAXPACKET)),
        // f_acm's GS_NOTIFY_INTERVAL_MS: 32 frames, 2^(9-1) microframes.
        interval: Some(PerSpeed::Each {
            full: Some(32),
            high: Some(9),
            super_: Some(9),
        }),
        ..endpoint(DirectionName::In, TransferTypeName::Interrupt)
    };
    let section =
        |name: String, class, subclass, protocol, string: &str, cs, endpoints| InterfaceSection {
            name,
            guid: None,
            number: None,
            device_request_owner: false,
            compatible_id: None,
            class: Some(class),
            subclass: Some(subclass),
            protocol: Some(protocol),
            string: Some(string.into()),
            class_descriptors: cs,
            endpoints,
            descriptor: None,
            alternates: Vec::new(),
        };
    vec![
        section(
            control,
            0x02,
            0x02,
            0x01,
            "CDC Abstract Control Model (ACM)",
            Some(hex(&functional_descriptors(
                first_interface,
                first_interface.wrapping_add(1),
            ))),
            vec![notify],
        ),
        section(
            data,
            0x0a,
            0,
            0,
            "CDC ACM Data",
            None,
            vec![
                endpoint(DirectionName::In, TransferTypeName::Bulk),
                endpoint(DirectionName::Out, TransferTypeName::Bulk),
            ],
        ),
    ]
}

/// The IAD over both interfaces.
pub fn association(instance: usize) -> AssociationSection {
    AssociationSection {
        interfaces: interface_names(instance).to_vec(),
        class: 0x02,
        subclass: 0x02,
        protocol: 0x01,
        string: Some("CDC Serial".into()),
    }
}

/// The serial port alone as a device.
pub fn config() -> DeviceConfig {
    DeviceConfig {
        device: device_section(),
        configurations: Vec::new(),
        interfaces: interfaces(0, 0),
        associations: vec![association(0)],
        control: Default::default(),
    }
}

/// Header (CDC 1.10), Call Management (no call management: the kernel's f_acm sets 0),
/// ACM (bmCapabilities 0x02: line coding and serial state) and Union.
pub fn functional_descriptors(control: u8, data: u8) -> [u8; 19] {
    [
        5, 0x24, 0x00, 0x10, 0x01, // Header, bcdCDC 1.10
        5, 0x24, 0x01, 0x00, data, // Call Management, bDataInterface
        4, 0x24, 0x02, 0x02, // ACM
        5, 0x24, 0x06, control, data, // Union
    ]
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The device side of one serial port, made before the service starts (so that a pty that
/// cannot be made is a start error).
#[derive(Debug)]
pub struct DeviceSide {
    tag: String,
    pty: Pty,
}

impl DeviceSide {
    /// Make the pty (and its `pty=PATH` symlink) and print where it is:
    /// `acm0: pty /dev/pts/3 (link /tmp/ttyUSBFN)`.
    pub fn open(options: &Options, instance: usize) -> std::io::Result<DeviceSide> {
        let pty = Pty::open(options.pty.as_deref())?;
        let tag = format!("acm{instance}");
        let link = pty
            .link()
            .map(|l| format!(" (link {})", l.display()))
            .unwrap_or_default();
        device_event(&tag, &format!("pty {}{link}", pty.path().display()));
        Ok(DeviceSide { tag, pty })
    }

    /// The pty's slave path.
    pub fn path(&self) -> &std::path::Path {
        self.pty.path()
    }
}

/// Serve the port on its opened interfaces (communication, data) until the device goes away.
pub fn spawn<S: ServiceApi>(device: DeviceSide, control: S, data: S) -> JoinHandle<()> {
    let (carrier, _) = watch::channel(false);
    let shared = Arc::new(Shared {
        tag: device.tag,
        pty: device.pty,
        coding: Mutex::new(LineCoding::default()),
        carrier,
    });
    tokio::spawn(async move {
        let watcher = tokio::spawn(watch_carrier(shared.clone()));
        let control = tokio::spawn(control_loop(Arc::new(control), shared.clone()));
        let data = data_loop(Arc::new(data), shared.clone()).await;
        if let Err(e) = data {
            tracing::debug!(error = %e, "acm data interface ended");
        }
        control.abort();
        watcher.abort();
    })
}

struct Shared {
    tag: String,
    pty: Pty,
    coding: Mutex<LineCoding>,
    /// Whether the device side has the pty open.
    carrier: watch::Sender<bool>,
}

/// A device-side event: logged, and printed on stdout for scripts on the device side.
fn device_event(tag: &str, what: &str) {
    tracing::info!(function = tag, "{what}");
    println!("{tag}: {what}");
}

/// The end of a pipe's stream: the transfer was cancelled by a reset, or the device is gone.
fn ends_stream(e: &Error) -> bool {
    matches!(
        e,
        Error::Transfer(CompletionStatus::Cancelled | CompletionStatus::Shutdown)
            | Error::Refused(_)
            | Error::DeviceGone
    )
}

async fn watch_carrier(shared: Arc<Shared>) {
    let mut ticker = tokio::time::interval(CARRIER_POLL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let open = shared.pty.peer_open();
        if shared
            .carrier
            .send_if_modified(|c| std::mem::replace(c, open) != open)
        {
            let what = if open { "opened" } else { "closed" };
            device_event(&shared.tag, &format!("device side {what} the pty"));
        }
    }
}

async fn control_loop<S: ServiceApi>(iface: Arc<S>, shared: Arc<Shared>) -> Result<(), Error> {
    let info = iface.class_info().await?;
    let mut speed = BusSpeed::High;
    let mut notifier: Option<JoinHandle<()>> = None;
    iface.activate_bus().await?;
    loop {
        let event = iface.next_event().await?;
        tracing::debug!(?event, function = %shared.tag, "acm control event");
        let number = info.at(speed).interface_number;
        match event {
            BusEvent::Reset(s) => {
                speed = s;
                if let Some(n) = notifier.take() {
                    n.abort();
                }
            }
            BusEvent::Configured(_) | BusEvent::SetInterface { .. } => {
                if let Some(n) = notifier.take() {
                    n.abort();
                }
                let pipe = info.find_pipe(speed, TransferType::Interrupt, Direction::In);
                if let Some((pipe, _)) = pipe {
                    let rx = shared.carrier.subscribe();
                    notifier = Some(tokio::spawn(notify_loop(iface.clone(), pipe, number, rx)));
                }
            }
            BusEvent::UnConfigured | BusEvent::Detach => {
                if let Some(n) = notifier.take() {
                    n.abort();
                }
            }
            BusEvent::SetupPacket(setup) => answer_setup(&*iface, setup, number, &shared).await,
            BusEvent::Attach | BusEvent::Suspend | BusEvent::Resume => {}
        }
    }
}

async fn answer_setup<S: ServiceApi>(iface: &S, setup: SetupPacket, number: u8, shared: &Shared) {
    let tag = &shared.tag;
    let result = match cdc::decode(&setup, number) {
        Err(e) => {
            tracing::debug!(function = %tag, %setup, "stalling: {e}");
            iface.set_pipe_state(PipeId::CONTROL, true).await
        }
        Ok(AcmRequest::SetLineCoding) => {
            match iface
                .transfer_out(PipeId::CONTROL, cdc::LINE_CODING_LEN)
                .await
            {
                Ok(c) => match LineCoding::parse(&c.data) {
                    Ok(coding) => {
                        *shared.coding.lock().unwrap_or_else(|p| p.into_inner()) = coding;
                        if let Err(e) = shared.pty.apply_line_coding(&coding) {
                            tracing::warn!(function = %tag, "line coding not applied to the pty: {e}");
                        }
                        device_event(tag, &format!("line coding {coding}"));
                        iface.control_status_handshake_in().await
                    }
                    Err(e) => {
                        tracing::debug!(function = %tag, "stalling SET_LINE_CODING: {e}");
                        iface.set_pipe_state(PipeId::CONTROL, true).await
                    }
                },
                Err(e) => Err(e),
            }
        }
        Ok(AcmRequest::GetLineCoding { len }) => {
            let bytes = shared
                .coding
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .to_bytes();
            let n = usize::from(len).min(bytes.len());
            let data = Bytes::copy_from_slice(bytes.get(..n).unwrap_or(&bytes));
            match iface.transfer_in(PipeId::CONTROL, data).await {
                Ok(_) => iface.control_status_handshake_out().await,
                Err(e) => Err(e),
            }
        }
        Ok(AcmRequest::SetControlLineState { dtr, rts }) => {
            device_event(
                tag,
                &format!("control lines DTR={} RTS={}", u8::from(dtr), u8::from(rts)),
            );
            iface.control_status_handshake_in().await
        }
        Ok(AcmRequest::SendBreak { duration_ms }) => {
            let what = match duration_ms {
                0 => "break off".to_owned(),
                0xffff => "break on".to_owned(),
                ms => format!("break {ms} ms"),
            };
            device_event(tag, &what);
            iface.control_status_handshake_in().await
        }
    };
    if let Err(e) = result {
        tracing::debug!(function = %tag, error = %e, %setup, "could not answer a setup packet");
    }
}

/// Send SERIAL_STATE whenever the carrier changes (the host polls the interrupt endpoint
/// only while its tty is open, so this waits there, apart from the control requests).
async fn notify_loop<S: ServiceApi>(
    iface: Arc<S>,
    pipe: PipeId,
    number: u8,
    mut carrier: watch::Receiver<bool>,
) {
    let mut sent = 0u16;
    loop {
        let bits = if *carrier.borrow_and_update() {
            cdc::STATE_DCD | cdc::STATE_DSR
        } else {
            0
        };
        if bits != sent {
            let note = Bytes::copy_from_slice(&cdc::serial_state(number, bits));
            match iface.transfer_in(pipe, note).await {
                Ok(_) => sent = bits,
                Err(e) if ends_stream(&e) => return,
                Err(e) => tracing::debug!(error = %e, "SERIAL_STATE notification failed"),
            }
            continue;
        }
        if carrier.changed().await.is_err() {
            return;
        }
    }
}

async fn data_loop<S: ServiceApi>(iface: Arc<S>, shared: Arc<Shared>) -> Result<(), Error> {
    let info = iface.class_info().await?;
    let mut speed = BusSpeed::High;
    let mut session: Vec<JoinHandle<()>> = Vec::new();
    let stop = |session: &mut Vec<JoinHandle<()>>| session.drain(..).for_each(|t| t.abort());
    iface.activate_bus().await?;
    loop {
        let event = iface.next_event().await?;
        tracing::debug!(?event, function = %shared.tag, "acm data event");
        match event {
            BusEvent::Reset(s) => {
                speed = s;
                stop(&mut session);
            }
            BusEvent::Configured(_) | BusEvent::SetInterface { .. } => {
                stop(&mut session);
                let bulk = TransferType::Bulk;
                // A packet size of at least 1: the data path divides by it.
                let out = info
                    .find_pipe(speed, bulk, Direction::Out)
                    .map(|(p, m)| (p, m.max(1)));
                let inp = info
                    .find_pipe(speed, bulk, Direction::In)
                    .map(|(p, m)| (p, m.max(1)));
                if let (Some((out, out_mps)), Some((inp, in_mps))) = (out, inp) {
                    let (tx, rx) = mpsc::channel(IN_DEPTH);
                    session.push(tokio::spawn(host_to_device(
                        iface.clone(),
                        out,
                        out_mps,
                        shared.clone(),
                    )));
                    session.push(tokio::spawn(read_device_side(shared.clone(), tx)));
                    session.push(tokio::spawn(device_to_host(iface.clone(), inp, in_mps, rx)));
                }
            }
            BusEvent::UnConfigured | BusEvent::Detach => stop(&mut session),
            BusEvent::SetupPacket(setup) => {
                tracing::debug!(%setup, "acm data interface: no requests, stalling");
                let _ = iface.set_pipe_state(PipeId::CONTROL, true).await;
            }
            BusEvent::Attach | BusEvent::Suspend | BusEvent::Resume => {}
        }
    }
}

/// Host to device: one-packet OUT transfers (a transfer never waits for more data than one
/// packet, so a host write that ends on a full packet is delivered at once), written to the
/// pty in order; nothing is read while the device side is closed or not draining. Packets
/// that have already arrived behind the first one are joined into one pty write (a host URB
/// of several packets costs one write, not one per packet).
async fn host_to_device<S: ServiceApi>(
    iface: Arc<S>,
    pipe: PipeId,
    mps: usize,
    shared: Arc<Shared>,
) {
    let mut carrier = shared.carrier.subscribe();
    let mut queue: VecDeque<Pin<Box<S::Transfer>>> = VecDeque::with_capacity(OUT_QUEUE);
    let mut joined = Vec::with_capacity(OUT_QUEUE * mps);
    loop {
        if !wait_open(&mut carrier).await {
            return;
        }
        while queue.len() < OUT_QUEUE {
            queue.push_back(Box::pin(iface.transfer_out(pipe, mps)));
        }
        let Some(front) = queue.pop_front() else {
            continue;
        };
        let first = match front.await {
            Ok(c) => c.data,
            Err(e) if ends_stream(&e) => return,
            Err(e) => {
                tracing::debug!(error = %e, "acm OUT transfer failed");
                continue;
            }
        };
        // Take the packets that are already there, without waiting for any.
        joined.clear();
        let mut stream_ended = false;
        while let Some(next) = queue.front_mut() {
            let mut cx = Context::from_waker(Waker::noop());
            let Poll::Ready(result) = next.as_mut().poll(&mut cx) else {
                break;
            };
            queue.pop_front();
            match result {
                Ok(c) => {
                    if joined.is_empty() {
                        joined.extend_from_slice(&first);
                    }
                    joined.extend_from_slice(&c.data);
                }
                Err(e) if ends_stream(&e) => {
                    stream_ended = true;
                    break;
                }
                Err(e) => tracing::debug!(error = %e, "acm OUT transfer failed"),
            }
        }
        let data = if joined.is_empty() {
            &first[..]
        } else {
            &joined[..]
        };
        if !write_to_device_side(&shared, data, &mut carrier).await || stream_ended {
            return;
        }
    }
}

/// Wait until the device side has the pty open; false when the port is gone.
async fn wait_open(carrier: &mut watch::Receiver<bool>) -> bool {
    while !*carrier.borrow_and_update() {
        if carrier.changed().await.is_err() {
            return false;
        }
    }
    true
}

/// Write all of `data` to the pty, waiting for the device side to (re)open it when it is
/// closed (a master write fails with `EIO` then, having written nothing): bytes the host
/// sent are never dropped. False when the port is gone.
async fn write_to_device_side(
    shared: &Shared,
    mut data: &[u8],
    carrier: &mut watch::Receiver<bool>,
) -> bool {
    while !data.is_empty() {
        match shared.pty.write(data).await {
            Ok(n) => data = data.get(n..).unwrap_or_default(),
            Err(e) if e.raw_os_error() == Some(nix::libc::EIO) => {
                // The device side closed the pty: wait for it to open it again.
                carrier.mark_changed();
                tokio::time::sleep(CARRIER_POLL).await;
                if !shared.pty.peer_open() && !wait_open(carrier).await {
                    return false;
                }
            }
            Err(e) => {
                tracing::warn!(function = %shared.tag, "pty write failed: {e}");
                return false;
            }
        }
    }
    true
}

/// Device side to the IN queue: what the device side writes to the pty, in chunks.
async fn read_device_side(shared: Arc<Shared>, tx: mpsc::Sender<Bytes>) {
    let mut buf = vec![0u8; IN_CHUNK];
    loop {
        match shared.pty.read(&mut buf).await {
            Ok(ReadOutcome::Data(n)) => {
                let chunk = Bytes::copy_from_slice(buf.get(..n).unwrap_or_default());
                if tx.send(chunk).await.is_err() {
                    return;
                }
            }
            Ok(ReadOutcome::PeerClosed) => {
                // Nobody has the pty open: look again a poll later. Not only when the carrier
                // rises: a device side that opens, writes and closes between two carrier
                // polls (`echo hello >PTY`) never raises it, and its bytes wait in the pty.
                if tx.is_closed() {
                    return;
                }
                tokio::time::sleep(CARRIER_POLL).await;
            }
            Err(e) => {
                tracing::warn!(function = %shared.tag, "pty read failed: {e}");
                return;
            }
        }
    }
}

/// The IN queue to the host: up to [`IN_DEPTH`] transfers in flight. Chunks already read
/// from the pty are joined into one transfer of up to [`IN_MAX`] bytes, and only the last
/// transfer of a burst (nothing read behind it yet) is ended by a short packet or a
/// zero-length packet, as the kernel's u_serial does: the host's read URB completes at once
/// when the device side pauses, and no URB is spent on a zero-length packet while data keeps
/// coming.
async fn device_to_host<S: ServiceApi>(
    iface: Arc<S>,
    pipe: PipeId,
    mps: usize,
    mut rx: mpsc::Receiver<Bytes>,
) {
    let mut inflight = VecDeque::with_capacity(IN_DEPTH);
    let mut pending: Option<Bytes> = None;
    loop {
        let next = if inflight.len() < IN_DEPTH && pending.is_some() {
            pending.take()
        } else if pending.is_some() {
            None
        } else if inflight.is_empty() {
            match rx.recv().await {
                Some(chunk) => Some(chunk),
                None => return,
            }
        } else if inflight.len() < IN_DEPTH {
            rx.try_recv().ok()
        } else {
            None
        };
        match next {
            Some(chunk) => {
                let (data, behind) = join_ready(chunk, &mut rx, IN_MAX);
                let more = behind.is_some();
                pending = behind;
                let t = if data.len() % mps == 0 && !more {
                    iface.transfer_in_append_zero(pipe, data)
                } else {
                    iface.transfer_in(pipe, data)
                };
                inflight.push_back(t);
            }
            None => {
                let Some(t) = inflight.pop_front() else {
                    continue;
                };
                match t.await {
                    Ok(_) => {}
                    Err(e) if ends_stream(&e) => return,
                    Err(e) => tracing::debug!(error = %e, "acm IN transfer failed"),
                }
            }
        }
    }
}

/// `first` and the chunks already waiting in `rx` behind it, joined up to `max` bytes; the
/// chunk that did not fit (data is behind the joined ones) is handed back.
fn join_ready(first: Bytes, rx: &mut mpsc::Receiver<Bytes>, max: usize) -> (Bytes, Option<Bytes>) {
    let Ok(second) = rx.try_recv() else {
        return (first, None);
    };
    if first.len() + second.len() > max {
        return (first, Some(second));
    }
    let mut joined = BytesMut::with_capacity(max);
    joined.extend_from_slice(&first);
    joined.extend_from_slice(&second);
    while let Ok(next) = rx.try_recv() {
        if joined.len() + next.len() > max {
            return (joined.freeze(), Some(next));
        }
        joined.extend_from_slice(&next);
    }
    (joined.freeze(), None)
}

#[cfg(test)]
mod tests;
