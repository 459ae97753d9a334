//! The usb-host side of usbredir over a usbfn [`Controller`]: one connection (a TCP or Unix
//! stream to QEMU's `usb-redir` chardev) drives one device through its `BusPort`.
//!
//! After both hellos the connection waits until the device is ready (every service active),
//! connects the bus and sends `ep_info`, `interface_info` and `device_connect`. Requests
//! become URBs for the core, which does chapter 9: `set_configuration`, `get_configuration`,
//! `set_alt_setting` and `get_alt_setting` are the standard requests on endpoint 0, answered
//! with their status packets (after a fresh `ep_info` and `interface_info` for the set ones);
//! `control_packet`, `bulk_packet` and interrupt OUT `interrupt_packet`s are answered with the
//! same id when their URB completes. `start_interrupt_receiving` keeps URBs queued on an
//! interrupt IN endpoint and sends an `interrupt_packet` for each one that completes, and
//! `start_iso_stream` does the same for an isochronous IN endpoint, one `iso_packet` per
//! packet. `cancel_data_packet` unlinks the URB: it is answered exactly once, `cancelled`
//! when the unlink took it, its real result when it had already completed. When the device
//! stops being ready (a service went away) the guest gets `device_disconnect`; when it is
//! ready again, a new `device_connect`.
//!
//! A peer that breaks the protocol (garbage, a packet longer than the limits, a stream that
//! ends in the middle of a packet, or stalls there for `idle_timeout`) is disconnected with
//! an error naming what was wrong; the device and other connections go on.

mod session;
#[cfg(test)]
mod tests;

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use usbfn::{BusSpeed, Controller};

use crate::proto::{Caps, Codec, Limits, Message, Packet, ProtoError, Role, VERSION_TEXT};

/// Settings of the usb-host side.
#[derive(Clone, Debug)]
pub struct HostOptions {
    /// The speed the guest sees (the device's own maximum caps it).
    pub speed: BusSpeed,
    /// Limits on what the guest may send.
    pub limits: Limits,
    /// How long the guest may stall in the middle of a packet (or leave our packets
    /// unread) before it is disconnected. A guest idle between packets is never dropped.
    pub idle_timeout: Duration,
    /// URBs kept queued per interrupt IN endpoint while interrupt receiving runs.
    pub interrupt_urbs: usize,
    /// Most URBs a guest may have outstanding at once (beyond it the connection is closed).
    pub max_outstanding: usize,
}

/// Default [`HostOptions::max_outstanding`].
pub const DEFAULT_MAX_OUTSTANDING: usize = 4096;

impl Default for HostOptions {
    fn default() -> Self {
        HostOptions {
            speed: BusSpeed::High,
            limits: Limits::default(),
            idle_timeout: Duration::from_secs(60),
            interrupt_urbs: 2,
            max_outstanding: DEFAULT_MAX_OUTSTANDING,
        }
    }
}

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// The socket failed.
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
    /// The guest broke the protocol.
    #[error("protocol error: {0}")]
    Proto(#[from] ProtoError),
    /// The guest sent a packet only a usb-host sends, or one whose capability is not agreed.
    #[error("unexpected packet from the guest: {0}")]
    Unexpected(String),
    /// The stream ended inside a packet.
    #[error("the guest closed the connection in the middle of a packet ({0} bytes buffered)")]
    Truncated(usize),
    /// The guest stalled inside a packet.
    #[error("the guest stalled for {0:?} in the middle of a packet (idle_timeout)")]
    IdleTimeout(Duration),
    /// Too many URBs outstanding.
    #[error("the guest has {0} packets outstanding (max_outstanding)")]
    TooManyOutstanding(usize),
    /// The device could not be connected.
    #[error("the device could not be connected: {0}")]
    Device(#[from] usbfn::Error),
}

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 64 * 1024;

/// Serve one usbredir connection for `controller` until the guest closes it or `stop`
/// resolves. Hello first, then the device whenever it is ready.
pub async fn serve_connection<S>(
    controller: &Controller,
    stream: S,
    options: &HostOptions,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), HostError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (reader, writer) = tokio::io::split(stream);
    let mut link = Link {
        codec: Codec::new(Role::Host, Caps::USBFN, options.limits),
        reader,
        writer,
        buf: BytesMut::with_capacity(READ_CHUNK),
        out: BytesMut::with_capacity(READ_CHUNK),
        idle: options.idle_timeout,
        partial_since: None,
    };
    tokio::pin!(stop);
    link.send(
        0,
        &Packet::Hello {
            version: VERSION_TEXT.into(),
            caps: Caps::USBFN,
        },
    )?;
    link.flush().await?;
    // The peer's hello decides the header size of everything after it.
    let hello = tokio::select! {
        m = link.next() => m?,
        () = &mut stop => return Ok(()),
    };
    let Some(Message {
        packet: Packet::Hello { version, caps },
        ..
    }) = hello
    else {
        return Ok(());
    };
    tracing::info!(peer = %version, caps = format_args!("{:#x}", caps.0),
        agreed = format_args!("{:#x}", link.codec.agreed().0), "usbredir hello");
    let mut ready = controller.ready_watch();
    loop {
        // Wait for the device; the guest may only send leftovers meanwhile.
        while !*ready.borrow_and_update() {
            tokio::select! {
                m = link.next() => match m? {
                    Some(m) => session::answer_without_device(&mut link, m)?,
                    None => return Ok(()),
                },
                r = ready.changed() => if r.is_err() { return Ok(()) },
                () = &mut stop => return Ok(()),
            }
            link.flush().await?;
        }
        let port = match controller.connect_bus(options.speed) {
            Ok(port) => port,
            Err(usbfn::Error::BusBusy) => {
                tracing::warn!("the device is attached elsewhere: waiting for it");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    () = &mut stop => return Ok(()),
                }
            }
            Err(e) => return Err(e.into()),
        };
        let mut session = session::Session::new(controller.clone(), port, options.clone());
        session.connect(&mut link)?;
        link.flush().await?;
        tracing::info!(speed = %session.speed(), "usbredir: device connected");
        match session.run(&mut link, &mut stop).await? {
            session::End::GuestClosed | session::End::Stopped => return Ok(()),
            session::End::DeviceGone => {
                tracing::info!("usbredir: the device's service went away: device_disconnect");
                drop(session);
                link.send(0, &Packet::DeviceDisconnect)?;
                link.flush().await?;
            }
        }
    }
}

/// The framed connection: codec, read buffer and pending output.
pub(crate) struct Link<R, W> {
    pub(crate) codec: Codec,
    reader: R,
    writer: W,
    buf: BytesMut,
    out: BytesMut,
    idle: Duration,
    /// When the first byte of an incomplete packet at the front of `buf` arrived.
    partial_since: Option<tokio::time::Instant>,
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Link<R, W> {
    /// Queue a packet for the next flush.
    pub(crate) fn send(&mut self, id: u64, packet: &Packet) -> Result<(), ProtoError> {
        self.codec.encode(id, packet, &mut self.out)
    }

    /// Bytes queued.
    pub(crate) fn queued(&self) -> usize {
        self.out.len()
    }

    /// Write everything queued, within the idle timeout.
    pub(crate) async fn flush(&mut self) -> Result<(), HostError> {
        if self.out.is_empty() {
            return Ok(());
        }
        let idle = self.idle;
        match tokio::time::timeout(idle, self.writer.write_all(&self.out)).await {
            Ok(r) => r?,
            Err(_) => return Err(HostError::IdleTimeout(idle)),
        }
        self.out.clear();
        Ok(())
    }

    /// A packet already in the buffer, without reading.
    pub(crate) fn try_next(&mut self) -> Result<Option<Message>, HostError> {
        let m = self.codec.decode(&mut self.buf)?;
        if m.is_some() {
            self.partial_since = None;
        }
        Ok(m)
    }

    /// The next packet; `None` when the guest closed the connection between packets.
    /// Cancel-safe: bytes read stay in the buffer.
    pub(crate) async fn next(&mut self) -> Result<Option<Message>, HostError> {
        loop {
            if let Some(m) = self.try_next()? {
                return Ok(Some(m));
            }
            if self.buf.is_empty() {
                self.partial_since = None;
            } else if self.partial_since.is_none() {
                self.partial_since = Some(tokio::time::Instant::now());
            }
            if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
                self.buf.reserve(READ_CHUNK);
            }
            let deadline = self.partial_since.and_then(|s| s.checked_add(self.idle));
            let n = tokio::select! {
                n = self.reader.read_buf(&mut self.buf) => n?,
                () = sleep_until(deadline) => return Err(HostError::IdleTimeout(self.idle)),
            };
            if n == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(HostError::Truncated(self.buf.len()))
                };
            }
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
