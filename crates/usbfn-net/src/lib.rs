//! The device side of usbfn's USB network adapters (CDC-NCM, CDC-ECM): what sits behind the
//! Ethernet frames the host sends.
//!
//! A USB network function (in `usbfn::functions::ncm`) moves Ethernet frames between the USB
//! host and a [`HostPort`]; [`start`] puts one of two networks at the other end:
//!
//! * [`Network::Embedded`] (default): a user-space TCP/IP stack ([smoltcp]) at
//!   192.168.7.1/24 that answers ARP and ping, runs a DHCP server for the host
//!   ([`dhcp`]: pool 192.168.7.2–254) and an HTTP server on port 80 ([`http`]:
//!   `GET /bytes/N`, `POST /sink`, `GET /stats`). No privileges needed.
//! * [`Network::Tap`]: the frames go to a TAP interface of the device's machine (needs
//!   CAP_NET_ADMIN), so a real network can sit behind the adapter.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use usbfn_net::{EmbeddedConfig, Network};
//! let (mut port, task) = usbfn_net::start(Network::Embedded(EmbeddedConfig::default())).expect("starts");
//! // An ARP request for 192.168.7.1 from the host, as a USB function would pass it on:
//! let mut arp = vec![0xff; 6];
//! arp.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
//! arp.extend_from_slice(&[2, 0, 0, 0, 0, 1, 192, 168, 7, 2, 0, 0, 0, 0, 0, 0, 192, 168, 7, 1]);
//! port.to_network.send(arp.into()).await.expect("stack running");
//! let reply = port.from_network.recv().await.expect("an ARP reply");
//! assert_eq!(&reply[12..14], &[0x08, 0x06]);
//! task.abort();
//! # }
//! ```

#![forbid(unsafe_code)]

pub mod dhcp;
pub mod http;
mod stack;
mod tap;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

pub use tap::TapError;

/// Frames queued from the USB host to the network. A full queue drops the frame and counts
/// it ([`LinkStats::dropped_to_network`]): a host that floods costs at most this many frames
/// of memory.
pub const QUEUE_FRAMES: usize = 1024;
/// Frames queued from the network to the USB host. Kept short on purpose: frames waiting
/// here are "sent" as far as TCP is concerned, and a deep queue (bufferbloat) makes the round
/// trip grow past the retransmission timeout the stack estimated, so it resends what is still
/// queued (measured in the guest: 4 MiB downloaded as 16 580 frames, 12 461 of them
/// duplicates, with 1024 here). The embedded stack waits for room instead of dropping.
pub const QUEUE_FRAMES_TO_HOST: usize = 64;
/// Largest Ethernet frame (without FCS) carried: 1500 bytes of payload + 14 of header.
pub const MAX_FRAME: usize = 1514;
/// Smallest Ethernet frame accepted from the host (a header).
pub const MIN_FRAME: usize = 14;

/// Which network the adapter leads to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Network {
    /// The embedded user-space stack.
    Embedded(EmbeddedConfig),
    /// A TAP interface of this name.
    Tap(String),
}

/// The embedded stack's addresses and servers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmbeddedConfig {
    /// The device's own MAC address (not the host's: that one is in the USB descriptors).
    pub mac: [u8; 6],
    /// The device's address.
    pub address: Ipv4Addr,
    /// Its prefix length.
    pub prefix_len: u8,
    /// First address the DHCP server hands out.
    pub pool_start: Ipv4Addr,
    /// Last address the DHCP server hands out.
    pub pool_end: Ipv4Addr,
    /// DHCP lease time.
    pub lease: Duration,
    /// TCP port of the HTTP server.
    pub http_port: u16,
    /// HTTP connections served at once (one listening socket each).
    pub http_connections: usize,
    /// Send and receive buffer of each TCP connection, bytes.
    pub tcp_buffer: usize,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        EmbeddedConfig {
            mac: [0x06, 0x75, 0x73, 0x62, 0x66, 0x01],
            address: Ipv4Addr::new(192, 168, 7, 1),
            prefix_len: 24,
            pool_start: Ipv4Addr::new(192, 168, 7, 2),
            pool_end: Ipv4Addr::new(192, 168, 7, 254),
            lease: Duration::from_secs(3600),
            http_port: 80,
            http_connections: 4,
            tcp_buffer: 256 * 1024,
        }
    }
}

/// Counters of one adapter, shared by the USB function and the network side; `GET /stats`
/// of the embedded HTTP server prints them.
#[derive(Debug, Default)]
pub struct LinkStats {
    /// Frames from the host passed to the network.
    pub frames_from_host: AtomicU64,
    /// Frames from the network passed to the host.
    pub frames_to_host: AtomicU64,
    /// Frames from the host dropped because the network's queue was full.
    pub dropped_to_network: AtomicU64,
    /// Frames for the host dropped because the USB side's queue was full.
    pub dropped_to_host: AtomicU64,
    /// NTBs (or ECM transfers) from the host refused as malformed.
    pub bad_transfers: AtomicU64,
    /// Datagrams from the host dropped (out of bounds, too short, too long).
    pub bad_datagrams: AtomicU64,
    /// NTBs sent to the host.
    pub ntbs_to_host: AtomicU64,
    /// DHCP leases acknowledged.
    pub dhcp_acks: AtomicU64,
    /// DHCP messages not answered (malformed, for another server, pool exhausted).
    pub dhcp_ignored: AtomicU64,
    /// HTTP requests served.
    pub http_requests: AtomicU64,
    /// Bytes counted by `POST /sink`, over all requests.
    pub sink_bytes: AtomicU64,
    /// Bytes counted by the last `POST /sink`.
    pub last_sink_bytes: AtomicU64,
    /// Microseconds the last `POST /sink` body took.
    pub last_sink_micros: AtomicU64,
}

impl LinkStats {
    /// Add one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters as `name value` lines.
    pub fn render(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "frames_from_host {}\nframes_to_host {}\ndropped_to_network {}\ndropped_to_host {}\n\
             bad_transfers {}\nbad_datagrams {}\nntbs_to_host {}\ndhcp_acks {}\ndhcp_ignored {}\n\
             http_requests {}\nsink_bytes {}\nlast_sink_bytes {}\nlast_sink_micros {}\n",
            get(&self.frames_from_host),
            get(&self.frames_to_host),
            get(&self.dropped_to_network),
            get(&self.dropped_to_host),
            get(&self.bad_transfers),
            get(&self.bad_datagrams),
            get(&self.ntbs_to_host),
            get(&self.dhcp_acks),
            get(&self.dhcp_ignored),
            get(&self.http_requests),
            get(&self.sink_bytes),
            get(&self.last_sink_bytes),
            get(&self.last_sink_micros),
        )
    }
}

/// The USB function's end of the network.
#[derive(Debug)]
pub struct HostPort {
    /// Frames from the USB host to the network. Use `try_send` and count a full queue
    /// (`LinkStats::dropped_to_network`) rather than waiting: the host does not wait.
    pub to_network: mpsc::Sender<Bytes>,
    /// Frames from the network to the USB host.
    pub from_network: mpsc::Receiver<Bytes>,
    /// The adapter's counters.
    pub stats: Arc<LinkStats>,
}

impl HostPort {
    /// Pass one frame from the host on: frames shorter than [`MIN_FRAME`] or longer than
    /// `max` are dropped as bad datagrams, a full queue drops it too; each drop is counted.
    pub fn frame_from_host(&self, frame: Bytes, max: usize) {
        if frame.len() < MIN_FRAME || frame.len() > max {
            LinkStats::bump(&self.stats.bad_datagrams);
            tracing::debug!(
                len = frame.len(),
                max,
                "frame from the host of a bad length dropped"
            );
            return;
        }
        match self.to_network.try_send(frame) {
            Ok(()) => LinkStats::bump(&self.stats.frames_from_host),
            Err(mpsc::error::TrySendError::Full(_)) => {
                LinkStats::bump(&self.stats.dropped_to_network);
                tracing::debug!(
                    limit = QUEUE_FRAMES,
                    "network queue full: frame from the host dropped"
                );
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                LinkStats::bump(&self.stats.dropped_to_network);
            }
        }
    }
}

/// Why a network could not be started.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The embedded stack's configuration is unusable.
    #[error("network configuration: {0}")]
    Config(String),
    /// The TAP interface could not be opened.
    #[error(transparent)]
    Tap(#[from] TapError),
}

/// Start the network on the current tokio runtime: the USB function's end and the task
/// that runs the network (it ends when the [`HostPort`] is dropped).
pub fn start(network: Network) -> Result<(HostPort, tokio::task::JoinHandle<()>), NetError> {
    let stats = Arc::new(LinkStats::default());
    let (to_network, from_host) = mpsc::channel(QUEUE_FRAMES);
    let (to_host, from_network) = mpsc::channel(QUEUE_FRAMES_TO_HOST);
    let task = match network {
        Network::Embedded(config) => {
            let stack = stack::Stack::new(&config, stats.clone())?;
            tokio::spawn(stack.run(from_host, to_host))
        }
        Network::Tap(name) => tap::start(&name, from_host, to_host, stats.clone())?,
    };
    Ok((
        HostPort {
            to_network,
            from_network,
            stats,
        },
        task,
    ))
}
