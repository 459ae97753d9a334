//! The NCM/ECM service: class requests on the communication interface, notifications, and
//! the frame pumps between the bulk pipes and the network ([`usbfn_net::HostPort`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::Mutex as AsyncMutex;
use usbfn_core::{BusEvent, BusSpeed, CompletionStatus, PipeId};
use usbfn_net::{HostPort, LinkStats, MAX_FRAME};
use usbfn_wire::{Direction, RequestType, SetupPacket, TransferType};

use super::control::{Answer, Link};
use super::ntb::{self, NtbBuilder};
use super::{MAC_STRING_INDEX, Model, Options};
use crate::{Error, ServiceApi};

/// NETWORK_CONNECTION notification code.
pub const NETWORK_CONNECTION: u8 = 0x00;
/// CONNECTION_SPEED_CHANGE notification code.
pub const CONNECTION_SPEED_CHANGE: u8 = 0x2a;

/// The bit rate reported at `speed` (as f_ncm: 13 packets per microframe at high speed).
pub fn bit_rate(speed: BusSpeed) -> u32 {
    match speed {
        BusSpeed::Full => 19 * 64 * 1000 * 8,
        BusSpeed::High => 13 * 512 * 8 * 1000 * 8,
        BusSpeed::Super => 13 * 1024 * 8 * 1000 * 8,
    }
}

/// The notification bytes: CONNECTION_SPEED_CHANGE then NETWORK_CONNECTION(connected), to
/// interface `interface`.
pub fn notifications(interface: u8, speed: BusSpeed, connected: bool) -> [Vec<u8>; 2] {
    let rate = bit_rate(speed).to_le_bytes();
    let mut speed_change = vec![0xa1, CONNECTION_SPEED_CHANGE, 0, 0, interface, 0, 8, 0];
    speed_change.extend_from_slice(&rate);
    speed_change.extend_from_slice(&rate);
    let connection = vec![
        0xa1,
        NETWORK_CONNECTION,
        u8::from(connected),
        0,
        interface,
        0,
        0,
        0,
    ];
    [speed_change, connection]
}

/// The host MAC as iMACAddress text: 12 uppercase hex digits.
pub fn mac_string(mac: [u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02X}")).collect()
}

struct Shared<S> {
    control: S,
    data: S,
    link: Mutex<Link>,
    /// Bumped whenever the data pipes stop (alternate setting 0, reset, unconfigure).
    generation: AtomicU64,
    port_rx: AsyncMutex<tokio::sync::mpsc::Receiver<Bytes>>,
    port: HostPort,
    options: Options,
}

/// Serve the function on its two interfaces (communication, data) with the network `port`,
/// until an interface fails.
pub async fn run<S: ServiceApi>(
    control: S,
    data: S,
    options: Options,
    instance: usize,
    port: HostPort,
) -> Result<(), Error> {
    let HostPort {
        to_network,
        from_network,
        stats,
    } = port;
    let shared = Arc::new(Shared {
        link: Mutex::new(Link::new(&options)),
        generation: AtomicU64::new(0),
        port_rx: AsyncMutex::new(from_network),
        port: HostPort {
            to_network,
            from_network: tokio::sync::mpsc::channel(1).1,
            stats,
        },
        options,
        control,
        data,
    });
    // Instances beyond 255 share the last string index (saturating_add): a composite that large is refused by the model anyway (255 interfaces).
    let mac_index = MAC_STRING_INDEX.saturating_add(u8::try_from(instance).unwrap_or(u8::MAX));
    let mac = mac_string(shared.options.host_mac());
    shared.control.register_usb_string(mac_index, &mac).await?;
    let control_info = shared.control.class_info().await?;
    let data_info = shared.data.class_info().await?;
    shared.control.activate_bus().await?;
    shared.data.activate_bus().await?;
    tracing::info!(model = ?shared.options.model, host_mac = %mac, "network function up");
    let control_loop = {
        let shared = shared.clone();
        async move {
            loop {
                let event = shared.control.next_event().await?;
                match event {
                    BusEvent::SetupPacket(setup) => answer_setup(&shared, setup).await,
                    other => tracing::trace!(event = ?other, "ncm control event"),
                }
            }
        }
    };
    let data_loop = {
        let shared = shared.clone();
        async move {
            let mut speed = BusSpeed::High;
            loop {
                let event = shared.data.next_event().await?;
                tracing::debug!(?event, "network function data event");
                match event {
                    BusEvent::Reset(s) => {
                        speed = s;
                        stop(&shared);
                    }
                    BusEvent::Configured(_) | BusEvent::UnConfigured | BusEvent::Detach => {
                        stop(&shared);
                    }
                    BusEvent::SetInterface { alternate, .. } => {
                        let generation = stop(&shared);
                        if alternate == 1 {
                            start(&shared, speed, generation, &control_info, &data_info);
                        }
                    }
                    BusEvent::SetupPacket(setup) => {
                        // Requests to the data interface: none are defined.
                        tracing::debug!(%setup, "setup packet to the data interface refused");
                        let _ = shared.data.set_pipe_state(PipeId::CONTROL, true).await;
                    }
                    BusEvent::Attach | BusEvent::Suspend | BusEvent::Resume => {}
                }
            }
        }
    };
    tokio::select! {
        r = control_loop => r,
        r = data_loop => r,
    }
}

/// Stop the pumps and return the new generation.
fn stop<S>(shared: &Shared<S>) -> u64 {
    if let Ok(mut link) = shared.link.lock() {
        link.reset_ntb();
    }
    shared.generation.fetch_add(1, Ordering::SeqCst) + 1
}

fn start<S: ServiceApi>(
    shared: &Arc<Shared<S>>,
    speed: BusSpeed,
    generation: u64,
    control_info: &usbfn_core::ClassInfo,
    data_info: &usbfn_core::ClassInfo,
) {
    let bulk_in = data_info.find_pipe(speed, TransferType::Bulk, Direction::In);
    let bulk_out = data_info.find_pipe(speed, TransferType::Bulk, Direction::Out);
    let notify = control_info.find_pipe(speed, TransferType::Interrupt, Direction::In);
    let (Some((bulk_in, _)), Some((bulk_out, _))) = (bulk_in, bulk_out) else {
        tracing::warn!("network function: the data interface has no bulk pipes at {speed:?}");
        return;
    };
    tokio::spawn(out_pump(shared.clone(), bulk_out, generation));
    tokio::spawn(in_pump(shared.clone(), bulk_in, generation));
    if let Some((pipe, _)) = notify {
        let shared = shared.clone();
        let interface = control_info.at(speed).interface_number;
        tokio::spawn(async move {
            for n in notifications(interface, speed, true) {
                if shared.generation.load(Ordering::SeqCst) != generation {
                    return;
                }
                if let Err(e) = shared.control.transfer_in(pipe, Bytes::from(n)).await {
                    tracing::debug!(error = %e, "notification not delivered");
                    return;
                }
            }
            tracing::debug!("network function: connected notification delivered");
        });
    }
}

fn ended(e: &Error) -> bool {
    matches!(
        e,
        Error::Transfer(CompletionStatus::Cancelled | CompletionStatus::Shutdown)
            | Error::Refused(_)
            | Error::DeviceGone
    )
}

/// Keep `qlen` OUT transfers queued; hand each received frame to the network in order.
async fn out_pump<S: ServiceApi>(shared: Arc<Shared<S>>, pipe: PipeId, generation: u64) {
    let model = shared.options.model;
    let capacity = match model {
        Model::Ncm => shared
            .link
            .lock()
            .map(|l| l.out_max())
            .unwrap_or(super::MAX_NTB),
        // A frame plus the byte usbnet pads a frame of a multiple of wMaxPacketSize with.
        Model::Ecm => 2048,
    };
    let mut queue: VecDeque<S::Transfer> = (0..shared.options.qlen)
        .map(|_| shared.data.transfer_out(pipe, capacity))
        .collect();
    let stats = shared.port.stats.clone();
    while let Some(transfer) = queue.pop_front() {
        let result = transfer.await;
        if shared.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        match result {
            Ok(c) => {
                queue.push_back(shared.data.transfer_out(pipe, capacity));
                match model {
                    Model::Ecm => shared.port.frame_from_host(c.data, MAX_FRAME + 4),
                    Model::Ncm => {
                        let (format, max_datagram) = shared
                            .link
                            .lock()
                            .map(|l| (l.format, l.max_datagram))
                            .unwrap_or_default();
                        match ntb::parse(&c.data, format, capacity, max_datagram.max(MAX_FRAME)) {
                            Ok(parsed) => {
                                if parsed.bad_datagrams > 0 {
                                    stats
                                        .bad_datagrams
                                        .fetch_add(parsed.bad_datagrams as u64, Ordering::Relaxed);
                                    tracing::debug!(
                                        count = parsed.bad_datagrams,
                                        "NTB datagrams dropped"
                                    );
                                }
                                for range in parsed.datagrams {
                                    shared.port.frame_from_host(c.data.slice(range), MAX_FRAME);
                                }
                            }
                            Err(e) => {
                                LinkStats::bump(&stats.bad_transfers);
                                tracing::debug!(error = %e, len = c.data.len(), "NTB from the host dropped");
                            }
                        }
                    }
                }
            }
            Err(e) if ended(&e) => return,
            Err(e) => {
                LinkStats::bump(&stats.bad_transfers);
                tracing::debug!(error = %e, "network OUT transfer failed");
                queue.push_back(shared.data.transfer_out(pipe, capacity));
            }
        }
    }
}

/// Gather frames from the network into NTBs (NCM) or send one per transfer (ECM), with up
/// to `in_depth` transfers in flight.
async fn in_pump<S: ServiceApi>(shared: Arc<Shared<S>>, pipe: PipeId, generation: u64) {
    let mut rx = shared.port_rx.lock().await;
    let depth = shared.options.in_depth;
    let stats = shared.port.stats.clone();
    let mut in_flight: VecDeque<tokio::task::JoinHandle<Result<(), Error>>> = VecDeque::new();
    let mut sequence: u16 = 0;
    let mut pending: Option<Bytes> = None;
    loop {
        if shared.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        let room = in_flight.len() < depth;
        let busy = !in_flight.is_empty();
        tokio::select! {
            done = async {
                match in_flight.front_mut() {
                    Some(handle) => Some(handle.await),
                    None => None,
                }
            }, if busy => {
                let Some(result) = done else { continue };
                in_flight.pop_front();
                match result {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) if ended(&e) => return,
                    Ok(Err(e)) => tracing::debug!(error = %e, "network IN transfer failed"),
                    Err(e) => tracing::debug!(error = %e, "network IN transfer task failed"),
                }
            }
            frame = async {
                match pending.take() {
                    Some(f) => Some(f),
                    None => rx.recv().await,
                }
            }, if room => {
                let Some(frame) = frame else { return };
                let transfer = match shared.options.model {
                    Model::Ecm => {
                        LinkStats::bump(&stats.ntbs_to_host);
                        shared.data.transfer_in_append_zero(pipe, frame)
                    }
                    Model::Ncm => {
                        let layout = shared.link.lock().map(|l| l.in_layout()).unwrap_or(super::ntb::InLayout {
                            format: super::ntb::NtbFormat::Ntb16,
                            max_size: super::MIN_NTB_IN,
                            divisor: 4,
                            ndp_alignment: 4,
                            max_datagrams: 0,
                        });
                        let mut builder = NtbBuilder::new(layout);
                        if !builder.push(&frame) {
                            LinkStats::bump(&stats.dropped_to_host);
                            tracing::debug!(len = frame.len(), max = layout.max_size, "frame larger than the host's NTB size dropped");
                            continue;
                        }
                        // Everything already waiting goes into the same NTB.
                        while let Ok(next) = rx.try_recv() {
                            if !builder.push(&next) {
                                pending = Some(next);
                                break;
                            }
                        }
                        sequence = sequence.wrapping_add(1);
                        LinkStats::bump(&stats.ntbs_to_host);
                        let bytes = Bytes::from(builder.finish(sequence));
                        // A block exactly as large as the host's URB needs no ZLP; one
                        // shorter that is a multiple of wMaxPacketSize does.
                        if bytes.len() >= layout.max_size {
                            shared.data.transfer_in(pipe, bytes)
                        } else {
                            shared.data.transfer_in_append_zero(pipe, bytes)
                        }
                    }
                };
                in_flight.push_back(tokio::spawn(async move { transfer.await.map(|_| ()) }));
            }
        }
    }
}

async fn answer_setup<S: ServiceApi>(shared: &Shared<S>, setup: SetupPacket) {
    let iface = &shared.control;
    let class = setup.request_type() == RequestType::Class;
    let device_to_host = setup.direction() == Direction::In;
    let answer = if class {
        match shared.link.lock() {
            Ok(mut link) => link.decide(
                setup.b_request,
                setup.w_value,
                setup.w_length,
                device_to_host,
            ),
            Err(_) => Answer::Stall,
        }
    } else {
        Answer::Stall
    };
    tracing::debug!(%setup, ?answer, "network function class request");
    let result = match answer {
        Answer::Data(mut bytes) => {
            bytes.truncate(usize::from(setup.w_length));
            match iface.transfer_in(PipeId::CONTROL, Bytes::from(bytes)).await {
                Ok(_) => iface.control_status_handshake_out().await,
                Err(e) => Err(e),
            }
        }
        Answer::Ack => iface.control_status_handshake_in().await,
        Answer::Read => match iface
            .transfer_out(PipeId::CONTROL, usize::from(setup.w_length))
            .await
        {
            Ok(c) => {
                let ok = shared
                    .link
                    .lock()
                    .map(|mut l| l.apply(setup.b_request, &c.data))
                    .unwrap_or(false);
                if ok {
                    iface.control_status_handshake_in().await
                } else {
                    tracing::debug!(%setup, "network function class request data refused");
                    iface.set_pipe_state(PipeId::CONTROL, true).await
                }
            }
            Err(e) => Err(e),
        },
        Answer::Stall => iface.set_pipe_state(PipeId::CONTROL, true).await,
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, %setup, "network function could not answer a setup packet");
    }
}
