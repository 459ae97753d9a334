//! A host-side USB/IP client on tokio: what `usbip list` / `usbip attach` do, in-process.
//!
//! - [`list_devices`] asks a server for its exported devices (OP_REQ_DEVLIST on a connection
//!   of its own).
//! - [`import`] attaches one device (OP_REQ_IMPORT) and returns an [`ImportedDevice`] that
//!   carries URBs on the same connection: many outstanding at once, from several tasks,
//!   completed in whatever order the server answers.
//! - [`ImportedDevice`] also has host-style helpers: control transfers, GET_DESCRIPTOR,
//!   SET_CONFIGURATION, and [`ImportedDevice::enumerate`], which reads every descriptor the
//!   way a host does after reset.
//!
//! The client is strict the way the Linux host is: a reply for an unknown seqnum, an IN
//! `actual_length` beyond the URB's buffer, or any other protocol error fails the connection
//! and every pending URB with [`ClientError::Protocol`], and is kept for
//! [`ImportedDevice::connection_error`], so tests can catch server bugs.
//!
//! ```no_run
//! use usbfn_usbip::client::{self, Urb};
//!
//! # async fn run() -> Result<(), client::ClientError> {
//! for d in client::list_devices("127.0.0.1:3240").await? {
//!     println!("{} {:04x}:{:04x}", d.device.busid, d.device.id_vendor, d.device.id_product);
//! }
//! let dev = client::import("127.0.0.1:3240", "1-1").await?;
//! let tree = dev.enumerate(Some(1)).await?;
//! println!("{:?}", tree.strings);
//! let reply = dev.submit(Urb::bulk_in(1, 512)).await?;
//! println!("{} bytes, status {}", reply.actual_length, reply.status);
//! # Ok(())
//! # }
//! ```

mod control;
mod device;

use std::io;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, ToSocketAddrs};

use crate::socket::SendBuffer;

use crate::proto::{
    BusId, ExportedDevice, Limits, OpReply, OpRequest, OpStatus, ProtoError, UsbDevice, errno,
    op::{OP_REP_DEVLIST, OP_REP_IMPORT},
};

pub use control::{BosInfo, ConfigurationInfo, DeviceTree};
pub use device::{ImportedDevice, PendingUrb, Urb, UrbCompletion};

/// Why a client operation failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Connecting, reading or writing failed.
    #[error("I/O error talking to the USB/IP server: {0}")]
    Io(#[source] Arc<io::Error>),
    /// The server sent something the protocol does not allow; the connection is dropped.
    #[error("USB/IP protocol error from the server: {0}")]
    Protocol(#[source] ProtoError),
    /// A request or URB built by the caller cannot be sent (bad bus id, inconsistent URB,
    /// over a limit).
    #[error("invalid request: {0}")]
    InvalidArgument(#[source] ProtoError),
    /// The server closed the connection.
    #[error("the USB/IP server closed the connection")]
    ConnectionClosed,
    /// The [`ImportedDevice`] was dropped or closed locally.
    #[error("the imported device was closed")]
    Closed,
    /// OP_REP_DEVLIST reported an error.
    #[error("device list request failed with status {status}")]
    DevlistFailed {
        /// The status.
        status: OpStatus,
    },
    /// Import failed: no such device (NODEV).
    #[error("import of {busid}: no such device")]
    NoSuchDevice {
        /// The bus id asked for.
        busid: String,
    },
    /// Import failed: the device is busy (already imported).
    #[error("import of {busid}: device busy (already imported?)")]
    DeviceBusy {
        /// The bus id asked for.
        busid: String,
    },
    /// Import failed: the device is in an error state.
    #[error("import of {busid}: device error")]
    DeviceError {
        /// The bus id asked for.
        busid: String,
    },
    /// Import failed: not available.
    #[error("import of {busid}: not available")]
    NotAvailable {
        /// The bus id asked for.
        busid: String,
    },
    /// Import failed with another status (ERROR or unknown).
    #[error("import of {busid} failed with status {status}")]
    ImportFailed {
        /// The bus id asked for.
        busid: String,
        /// The status.
        status: OpStatus,
    },
    /// OP_REP_IMPORT echoed a different bus id than requested.
    #[error("import of {requested}: the server answered with bus id {returned}")]
    BusIdMismatch {
        /// The bus id asked for.
        requested: String,
        /// The bus id in the reply.
        returned: String,
    },
    /// A URB completed with a non-zero status (for helpers that need success).
    #[error("URB completed with status {status} ({})", errno::status_name(*status).unwrap_or("unknown errno"))]
    UrbFailed {
        /// The status: a negative errno (`-EPIPE` is a stall).
        status: i32,
    },
    /// A host-style request failed; `request` says which.
    #[error("{request}: {source}")]
    Request {
        /// The request, e.g. `GET_DESCRIPTOR(STRING 2, langid 0x0409, 255)`.
        request: String,
        /// What went wrong.
        source: Box<ClientError>,
    },
    /// A descriptor from the device does not parse.
    #[error("invalid descriptor from the device: {0}")]
    Descriptor(#[source] usbfn_wire::WireError),
}

impl ClientError {
    /// The URB status if this is (or wraps) [`ClientError::UrbFailed`].
    pub fn urb_status(&self) -> Option<i32> {
        match self {
            ClientError::UrbFailed { status } => Some(*status),
            ClientError::Request { source, .. } => source.urb_status(),
            _ => None,
        }
    }

    /// Whether this is (or wraps) a URB that stalled (`-EPIPE`).
    pub fn is_stall(&self) -> bool {
        self.urb_status() == Some(-errno::EPIPE)
    }

    /// Whether this is (or wraps) a protocol error from the server.
    pub fn is_protocol_error(&self) -> bool {
        match self {
            ClientError::Protocol(_) => true,
            ClientError::Request { source, .. } => source.is_protocol_error(),
            _ => false,
        }
    }
}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> ClientError {
        ClientError::Io(Arc::new(e))
    }
}

/// Lists the devices a server exports (OP_REQ_DEVLIST on its own connection), accepting at
/// most [`DEFAULT_MAX_DEVICES`](crate::proto::DEFAULT_MAX_DEVICES) of them; see
/// [`list_devices_with_limits`] for a server that exports more.
pub async fn list_devices(addr: impl ToSocketAddrs) -> Result<Vec<ExportedDevice>, ClientError> {
    list_devices_with_limits(addr, Limits::default()).await
}

/// [`list_devices`] with `limits` (`max_devices` bounds how many devices the reply may
/// carry: a longer list fails with the limit named, nothing is allocated for it).
pub async fn list_devices_with_limits(
    addr: impl ToSocketAddrs,
    limits: Limits,
) -> Result<Vec<ExportedDevice>, ClientError> {
    let mut stream = connect(addr).await?;
    match request(&mut stream, &OpRequest::Devlist, &limits).await?.0 {
        OpReply::Devlist { status, devices } if status.is_ok() => Ok(devices),
        OpReply::Devlist { status, .. } => Err(ClientError::DevlistFailed { status }),
        OpReply::Import { .. } => Err(unexpected_reply(OP_REP_IMPORT, "OP_REP_DEVLIST")),
    }
}

/// Imports (attaches) the device `busid` with default [`Limits`].
pub async fn import(addr: impl ToSocketAddrs, busid: &str) -> Result<ImportedDevice, ClientError> {
    import_with_limits(addr, busid, Limits::default()).await
}

/// Imports the device `busid`, enforcing `limits` on the URB traffic.
pub async fn import_with_limits(
    addr: impl ToSocketAddrs,
    busid: &str,
    limits: Limits,
) -> Result<ImportedDevice, ClientError> {
    let stream = connect(addr).await?;
    import_over(stream, busid, limits).await
}

/// Imports the device `busid` over an already connected byte stream (TCP, an in-memory
/// `tokio::io::duplex`, ...). Spawns the connection's reader and writer tasks.
pub async fn import_over<S>(
    mut stream: S,
    busid: &str,
    limits: Limits,
) -> Result<ImportedDevice, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let requested = BusId::new(busid).map_err(ClientError::InvalidArgument)?;
    let req = OpRequest::Import {
        busid: requested.clone(),
    };
    let (reply, leftover) = request(&mut stream, &req, &limits).await?;
    let device = check_import(&requested, reply)?;
    tracing::debug!(busid = %requested, devid = device.devid(), "imported");
    Ok(ImportedDevice::start(stream, device, limits, leftover))
}

fn check_import(requested: &BusId, reply: OpReply) -> Result<UsbDevice, ClientError> {
    let busid = || requested.to_string();
    match reply {
        OpReply::Import {
            device: Some(device),
            ..
        } => {
            if device.busid != *requested {
                return Err(ClientError::BusIdMismatch {
                    requested: busid(),
                    returned: device.busid.to_string(),
                });
            }
            Ok(device)
        }
        OpReply::Import { status, .. } => Err(match status {
            OpStatus::NODEV => ClientError::NoSuchDevice { busid: busid() },
            OpStatus::DEV_BUSY => ClientError::DeviceBusy { busid: busid() },
            OpStatus::DEV_ERR => ClientError::DeviceError { busid: busid() },
            OpStatus::NA => ClientError::NotAvailable { busid: busid() },
            status => ClientError::ImportFailed {
                busid: busid(),
                status,
            },
        }),
        OpReply::Devlist { .. } => Err(unexpected_reply(OP_REP_DEVLIST, "OP_REP_IMPORT")),
    }
}

fn unexpected_reply(code: u16, expected: &'static str) -> ClientError {
    ClientError::Protocol(ProtoError::UnexpectedOpCode { code, expected })
}

async fn connect(addr: impl ToSocketAddrs) -> Result<TcpStream, ClientError> {
    let stream = TcpStream::connect(addr).await?;
    let peer = stream.peer_addr()?;
    crate::socket::tune(&stream, peer, SendBuffer::default());
    Ok(stream)
}

/// Sends `req` and reads its reply; returns the reply and any bytes read after it.
async fn request<S>(
    stream: &mut S,
    req: &OpRequest,
    limits: &Limits,
) -> Result<(OpReply, BytesMut), ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut out = BytesMut::new();
    req.encode(&mut out);
    stream.write_all(&out).await?;
    stream.flush().await?;
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        if let Some(reply) = OpReply::decode(&mut buf, limits).map_err(ClientError::Protocol)? {
            return Ok((reply, buf));
        }
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(ClientError::ConnectionClosed);
        }
    }
}

#[cfg(test)]
mod tests;
