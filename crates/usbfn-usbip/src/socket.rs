//! The socket options of a USB/IP connection, server and client alike: `TCP_NODELAY`, and the
//! size of the kernel's send buffer.
//!
//! Left to itself Linux grows a TCP connection's send buffer up to `net.ipv4.tcp_wmem`'s
//! maximum (4 MiB), sized for a path with a long round trip. Over loopback the round trip is
//! a few microseconds, and a sender that may queue megabytes before the receiver runs pushes
//! its own data out of the CPU's caches: the receiver then copies it back from memory. With
//! 16 URBs of 64 KiB in flight on one thread, usbfn's bulk IN moved 2.8–7.7 GB/s (bimodal
//! from one run to the next) with the kernel's autotuning and 8.5–9.0 GB/s with a 128 KiB
//! `SO_SNDBUF` on the same machine (`docs/benchmarks.md`, "The send buffer"). So loopback
//! connections get [`DEFAULT_LOOPBACK_SEND_BUFFER`] and every other peer keeps the kernel's
//! autotuning unless the user chooses otherwise ([`SendBuffer`]).

use std::fmt;
use std::net::SocketAddr;

use tokio::net::TcpStream;

/// The default `SO_SNDBUF` of a loopback connection: 128 KiB (the kernel doubles the value
/// for its bookkeeping, so the connection may queue 256 KiB).
pub const DEFAULT_LOOPBACK_SEND_BUFFER: usize = 128 * 1024;

/// Smallest send buffer that may be asked for: 16 KiB (the kernel's own floor is lower,
/// but a smaller buffer only adds wake-ups).
pub const MIN_SEND_BUFFER: usize = 16 * 1024;

/// How big the kernel's send buffer of a connection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendBuffer {
    /// The kernel's autotuning for every peer.
    Auto,
    /// This `SO_SNDBUF` (bytes) for a peer on a loopback address, autotuning for the others.
    Loopback(usize),
    /// This `SO_SNDBUF` (bytes) for every peer.
    Fixed(usize),
}

impl Default for SendBuffer {
    fn default() -> SendBuffer {
        SendBuffer::Loopback(DEFAULT_LOOPBACK_SEND_BUFFER)
    }
}

impl SendBuffer {
    /// The `SO_SNDBUF` to set for a connection to `peer`, `None` to leave the kernel's.
    pub fn for_peer(self, peer: SocketAddr) -> Option<usize> {
        match self {
            SendBuffer::Auto => None,
            SendBuffer::Loopback(n) => peer.ip().is_loopback().then_some(n),
            SendBuffer::Fixed(n) => Some(n),
        }
    }
}

impl fmt::Display for SendBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendBuffer::Auto => f.write_str("auto"),
            SendBuffer::Loopback(n) => write!(f, "{n} (loopback peers)"),
            SendBuffer::Fixed(n) => write!(f, "{n}"),
        }
    }
}

/// Set `TCP_NODELAY` (a URB's reply must not wait for the next) and the send buffer
/// `send_buffer` asks for on a connection to `peer`. A refusal is logged, not fatal: the
/// connection works either way, only slower.
pub(crate) fn tune(stream: &TcpStream, peer: SocketAddr, send_buffer: SendBuffer) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "TCP_NODELAY failed");
    }
    if let Some(n) = send_buffer.for_peer(peer) {
        let socket = socket2::SockRef::from(stream);
        match socket.set_send_buffer_size(n) {
            Ok(()) => tracing::trace!(
                %peer,
                asked = n,
                got = socket.send_buffer_size().unwrap_or(0),
                "SO_SNDBUF set"
            ),
            Err(e) => tracing::debug!(%peer, bytes = n, error = %e, "SO_SNDBUF failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_peers_get_the_default_and_others_autotuning() {
        let lo: SocketAddr = "127.0.0.1:3240".parse().expect("addr");
        let lo6: SocketAddr = "[::1]:3240".parse().expect("addr");
        let lan: SocketAddr = "192.168.1.20:3240".parse().expect("addr");
        let d = SendBuffer::default();
        assert_eq!(d.for_peer(lo), Some(DEFAULT_LOOPBACK_SEND_BUFFER));
        assert_eq!(d.for_peer(lo6), Some(DEFAULT_LOOPBACK_SEND_BUFFER));
        assert_eq!(d.for_peer(lan), None);
        assert_eq!(SendBuffer::Auto.for_peer(lo), None);
        assert_eq!(SendBuffer::Fixed(1 << 20).for_peer(lan), Some(1 << 20));
    }

    #[tokio::test]
    async fn tune_sets_the_buffer_on_a_loopback_connection() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = TcpStream::connect(addr).await.expect("connect");
        let (server, peer) = listener.accept().await.expect("accept");
        let before = socket2::SockRef::from(&server)
            .send_buffer_size()
            .expect("SO_SNDBUF");
        tune(&server, peer, SendBuffer::Fixed(64 * 1024));
        let after = socket2::SockRef::from(&server)
            .send_buffer_size()
            .expect("SO_SNDBUF");
        // Linux reports twice what was asked (its bookkeeping); other kernels the value.
        assert!(
            after == 64 * 1024 || after == 128 * 1024,
            "{before} -> {after}"
        );
        assert!(server.nodelay().expect("nodelay"));
        drop(client);
    }
}
