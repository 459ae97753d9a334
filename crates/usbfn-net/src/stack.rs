//! The embedded network: smoltcp's interface over two frame queues, with the DHCP server on
//! UDP port 67 and the HTTP server's TCP sockets, polled by one task.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::socket::{tcp, udp};
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, IpEndpoint, Ipv4Cidr};
use tokio::sync::mpsc;

use crate::dhcp::{DhcpConfig, DhcpServer};
use crate::http::{Conn, Finished};
use crate::{EmbeddedConfig, LinkStats, MAX_FRAME, NetError};

/// Frames the stack may queue for the host before it stops producing (smoltcp keeps the rest
/// in its socket buffers and sends them at a later poll; see `QUEUE_FRAMES_TO_HOST`).
const TX_QUEUE: usize = 16;
/// Frames taken from the host's queue per poll.
const RX_BATCH: usize = 128;
/// DHCP datagrams buffered.
const DHCP_PACKETS: usize = 8;

struct Queues {
    rx: VecDeque<Bytes>,
    tx: VecDeque<Bytes>,
}

struct Rx(Bytes);
struct Tx<'a>(&'a mut VecDeque<Bytes>);

impl RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0u8; len];
        let r = f(&mut frame);
        self.0.push_back(frame.into());
        r
    }
}

impl Device for Queues {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _: SmolInstant) -> Option<(Rx, Tx<'_>)> {
        if self.tx.len() >= TX_QUEUE {
            return None;
        }
        let frame = self.rx.pop_front()?;
        Some((Rx(frame), Tx(&mut self.tx)))
    }

    fn transmit(&mut self, _: SmolInstant) -> Option<Tx<'_>> {
        (self.tx.len() < TX_QUEUE).then_some(Tx(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MAX_FRAME;
        caps
    }
}

pub(crate) struct Stack {
    iface: Interface,
    sockets: SocketSet<'static>,
    queues: Queues,
    dhcp: DhcpServer,
    dhcp_socket: SocketHandle,
    http: Vec<(SocketHandle, Conn)>,
    http_port: u16,
    address: Ipv4Addr,
    stats: Arc<LinkStats>,
    started: tokio::time::Instant,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack")
            .field("address", &self.address)
            .finish()
    }
}

impl Stack {
    pub(crate) fn new(config: &EmbeddedConfig, stats: Arc<LinkStats>) -> Result<Self, NetError> {
        if config.prefix_len == 0 || config.prefix_len > 30 {
            return Err(NetError::Config(format!(
                "prefix length {} (allowed: 1..=30)",
                config.prefix_len
            )));
        }
        let mac = EthernetAddress(config.mac);
        if !mac.is_unicast() {
            return Err(NetError::Config(format!("device MAC {mac} is not unicast")));
        }
        let cidr = Ipv4Cidr::new(config.address, config.prefix_len);
        for (what, a) in [
            ("pool_start", config.pool_start),
            ("pool_end", config.pool_end),
        ] {
            if !cidr.contains_addr(&a) {
                return Err(NetError::Config(format!("{what} {a} is outside {cidr}")));
            }
        }
        if u32::from(config.pool_start) > u32::from(config.pool_end) {
            return Err(NetError::Config(format!(
                "pool_start {} is after pool_end {}",
                config.pool_start, config.pool_end
            )));
        }
        let mut queues = Queues {
            rx: VecDeque::new(),
            tx: VecDeque::new(),
        };
        let started = tokio::time::Instant::now();
        let mut iface_config = Config::new(HardwareAddress::Ethernet(mac));
        iface_config.random_seed = u64::from_le_bytes([
            config.mac[0],
            config.mac[1],
            config.mac[2],
            config.mac[3],
            config.mac[4],
            config.mac[5],
            0x17,
            0x42,
        ]);
        let mut iface = Interface::new(iface_config, &mut queues, SmolInstant::from_micros(0));
        iface.update_ip_addrs(|addrs| {
            // A fresh interface has room for one address.
            let _ = addrs.push(IpCidr::Ipv4(cidr));
        });
        let mut sockets = SocketSet::new(Vec::new());
        let dhcp_socket = {
            let meta = || vec![udp::PacketMetadata::EMPTY; DHCP_PACKETS];
            let mut s = udp::Socket::new(
                udp::PacketBuffer::new(meta(), vec![0; DHCP_PACKETS * 600]),
                udp::PacketBuffer::new(meta(), vec![0; DHCP_PACKETS * 600]),
            );
            s.bind(67)
                .map_err(|e| NetError::Config(format!("DHCP socket: {e}")))?;
            sockets.add(s)
        };
        let http = (0..config.http_connections.clamp(1, 64))
            .map(|_| {
                let mut s = tcp::Socket::new(
                    tcp::SocketBuffer::new(vec![0; config.tcp_buffer]),
                    tcp::SocketBuffer::new(vec![0; config.tcp_buffer]),
                );
                s.set_nagle_enabled(false);
                s.set_timeout(Some(smoltcp::time::Duration::from_secs(60)));
                (sockets.add(s), Conn::default())
            })
            .collect();
        let netmask = Ipv4Addr::from(u32::MAX << (32 - u32::from(config.prefix_len)));
        Ok(Stack {
            iface,
            sockets,
            queues,
            dhcp: DhcpServer::new(DhcpConfig {
                server: config.address,
                netmask,
                pool_start: config.pool_start,
                pool_end: config.pool_end,
                lease: config.lease,
            }),
            dhcp_socket,
            http,
            http_port: config.http_port,
            address: config.address,
            stats,
            started,
        })
    }

    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    fn smol_now(&self) -> SmolInstant {
        // Fits: i64 microseconds is 292,000 years of uptime.
        SmolInstant::from_micros(i64::try_from(self.now().as_micros()).unwrap_or(i64::MAX))
    }

    /// Run until the USB function's end goes away.
    pub(crate) async fn run(
        mut self,
        mut from_host: mpsc::Receiver<Bytes>,
        to_host: mpsc::Sender<Bytes>,
    ) {
        tracing::info!(address = %self.address, "embedded network up");
        loop {
            self.poll();
            // Hand what the stack produced to the USB side, as far as its queue takes it.
            while let Some(frame) = self.queues.tx.pop_front() {
                match to_host.try_send(frame) {
                    Ok(()) => LinkStats::bump(&self.stats.frames_to_host),
                    Err(mpsc::error::TrySendError::Full(frame)) => {
                        self.queues.tx.push_front(frame);
                        break;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                }
            }
            let delay = {
                let now = self.smol_now();
                self.iface
                    .poll_delay(now, &self.sockets)
                    .map(|d| Duration::from_micros(d.total_micros()))
                    .unwrap_or(Duration::from_secs(1))
            };
            let blocked = !self.queues.tx.is_empty();
            if delay.is_zero() && !blocked {
                // smoltcp has more to do right away: yield (a task that never returns
                // Pending starves the USB side on a current-thread runtime), take what the
                // host sent meanwhile, and poll again.
                tokio::task::yield_now().await;
                if !self.take_from_host(&mut from_host) {
                    return;
                }
                continue;
            }
            // Blocked on the host side's queue: wait for room or for a frame, not for a timer
            // that is already due (smoltcp cannot send until there is room).
            tokio::select! {
                frame = from_host.recv() => match frame {
                    Some(f) => {
                        self.queues.rx.push_back(f);
                        if !self.take_from_host(&mut from_host) {
                            return;
                        }
                    }
                    None => {
                        tracing::debug!("embedded network: the USB function is gone");
                        return;
                    }
                },
                permit = to_host.reserve(), if blocked => match permit {
                    Ok(permit) => {
                        if let Some(f) = self.queues.tx.pop_front() {
                            permit.send(f);
                            LinkStats::bump(&self.stats.frames_to_host);
                        }
                    }
                    Err(_) => return,
                },
                _ = tokio::time::sleep(delay), if !delay.is_zero() => {}
            }
        }
    }

    /// Move what is waiting in the host's queue into the stack's (up to [`RX_BATCH`]);
    /// false when the USB function is gone.
    fn take_from_host(&mut self, from_host: &mut mpsc::Receiver<Bytes>) -> bool {
        while self.queues.rx.len() < RX_BATCH {
            match from_host.try_recv() {
                Ok(f) => self.queues.rx.push_back(f),
                Err(mpsc::error::TryRecvError::Empty) => return true,
                Err(mpsc::error::TryRecvError::Disconnected) => return false,
            }
        }
        true
    }

    /// One round: frames in, servers served, frames out (several egress passes: smoltcp
    /// emits one segment per socket per pass).
    fn poll(&mut self) {
        let now = self.smol_now();
        self.iface.poll(now, &mut self.queues, &mut self.sockets);
        self.serve_dhcp();
        self.serve_http();
        loop {
            let before = self.queues.tx.len();
            self.iface
                .poll_egress(now, &mut self.queues, &mut self.sockets);
            self.serve_http();
            if self.queues.tx.len() == before || self.queues.tx.len() >= TX_QUEUE {
                break;
            }
        }
    }

    fn serve_dhcp(&mut self) {
        let now = self.now();
        let socket = self.sockets.get_mut::<udp::Socket<'_>>(self.dhcp_socket);
        while let Ok((payload, meta)) = socket.recv() {
            match self.dhcp.handle(payload, now) {
                Ok(reply) => {
                    let to = IpEndpoint::new(reply.to.into(), 68);
                    let mut meta_out = udp::UdpMetadata::from(to);
                    meta_out.local_address = Some(self.address.into());
                    if let Err(e) = socket.send_slice(&reply.payload, meta_out) {
                        tracing::debug!(error = %e, "DHCP reply not sent");
                    }
                    self.stats
                        .dhcp_acks
                        .store(self.dhcp.acks(), Ordering::Relaxed);
                }
                Err(e) => {
                    LinkStats::bump(&self.stats.dhcp_ignored);
                    tracing::debug!(from = %meta.endpoint, reason = %e, "DHCP message not answered");
                }
            }
        }
    }

    fn serve_http(&mut self) {
        let now = self.now();
        let stats = self.stats.clone();
        let render = move || stats.render();
        for (handle, conn) in &mut self.http {
            let socket = self.sockets.get_mut::<tcp::Socket<'_>>(*handle);
            if !socket.is_open() {
                *conn = Conn::default();
                if let Err(e) = socket.listen(self.http_port) {
                    tracing::warn!(error = %e, "HTTP socket cannot listen");
                }
                continue;
            }
            while socket.can_recv() {
                let result = socket.recv(|data| {
                    let (n, finished) = conn.receive(data, now, &render);
                    (n, (n, finished))
                });
                match result {
                    Ok((n, finished)) => {
                        if let Some(Finished::Sunk { bytes, elapsed }) = finished {
                            let s = &self.stats;
                            s.sink_bytes.fetch_add(bytes, Ordering::Relaxed);
                            s.last_sink_bytes.store(bytes, Ordering::Relaxed);
                            // Fits: u64 microseconds is 584,000 years.
                            let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
                            s.last_sink_micros.store(micros, Ordering::Relaxed);
                            tracing::info!(bytes, micros, "http: POST /sink body counted");
                        }
                        if n == 0 {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
            // The client closed its side (not: still connecting, where may_recv is false too).
            let peer_closed = matches!(
                socket.state(),
                tcp::State::CloseWait | tcp::State::LastAck | tcp::State::Closing
            ) && !socket.can_recv();
            if peer_closed
                && matches!(conn, Conn::Head(_) | Conn::Sink { .. })
                && let Some(Finished::Sunk { bytes, .. }) = conn.receive_fin(now)
            {
                self.stats.sink_bytes.fetch_add(bytes, Ordering::Relaxed);
                self.stats.last_sink_bytes.store(bytes, Ordering::Relaxed);
                tracing::info!(
                    bytes,
                    "http: POST /sink body counted (until the client closed)"
                );
            }
            while socket.can_send() && matches!(conn, Conn::Send { .. }) {
                match socket.send(|buf| {
                    let n = conn.send(buf);
                    (n, n)
                }) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            if conn.is_done()
                && matches!(
                    socket.state(),
                    tcp::State::Established | tcp::State::CloseWait
                )
            {
                // FIN after the queued data.
                LinkStats::bump(&self.stats.http_requests);
                socket.close();
            }
        }
    }
}
