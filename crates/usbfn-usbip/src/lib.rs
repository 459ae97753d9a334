//! USB/IP for usbfn: the wire protocol and a host-side client.
//!
//! - [`proto`]: the sans-IO codec (op messages, URB messages, stream decoders, limits). No
//!   tokio, no sockets: the server and the client share it.
//! - [`client`]: a tokio client that lists and imports exported devices and submits URBs,
//!   for integration tests, the CLI (`usbfn list`, `usbfn probe`) and benchmarks.
//! - [`socket`]: the socket options both ends set (`TCP_NODELAY`, the send buffer).
#![forbid(unsafe_code)]

mod batch;
pub mod client;
pub mod proto;
mod read_ahead;
pub mod server;
pub mod socket;

// `usize_from` widens; usbfn builds for 32- and 64-bit targets only.
const _: () = assert!(usize::BITS >= u32::BITS);

/// A wire `u32` (a length, an offset) as a `usize`: lossless, `usize` has at least 32 bits
/// (asserted above), so no value needs clamping.
pub(crate) const fn usize_from(n: u32) -> usize {
    n as usize
}
