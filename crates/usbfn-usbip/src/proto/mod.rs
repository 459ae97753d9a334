//! The USB/IP wire protocol, sans I/O: no sockets, no tasks, no clock.
//!
//! Two phases share one TCP connection:
//!
//! - **op** ([`op`]): the client sends an [`OpRequest`] (device list or import), the server
//!   answers with an [`OpReply`]. After a successful import the connection switches to URBs.
//! - **URB** ([`urb`]): the client sends [`CmdSubmit`] / [`CmdUnlink`], the server answers
//!   with [`RetSubmit`] / [`RetUnlink`]. [`ServerCodec`] and [`ClientCodec`] frame them on a
//!   byte stream.
//!
//! Everything a peer sends is input: decoders return a typed [`ProtoError`] for anything
//! malformed, never panic, and check every length against [`Limits`] as soon as the header is
//! in, before they wait for (or reserve room for) the payload. A partial message is never an
//! error: `decode` returns `Ok(None)` and is called again when more bytes have arrived.
//!
//! # Example
//!
//! A control IN URB (GET_DESCRIPTOR device) from client to server and back:
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use usbfn_usbip::proto::{
//!     ClientCodec, CmdSubmit, Command, Direction, Limits, Reply, RetSubmit, ServerCodec,
//!     TransferFlags,
//! };
//!
//! let mut client = ClientCodec::new(Limits::default());
//! let mut server = ServerCodec::new(Limits::default());
//!
//! // Client: encode the URB.
//! let cmd = CmdSubmit {
//!     seqnum: 1,
//!     devid: 0x0001_0002,
//!     direction: Direction::In,
//!     ep: 0,
//!     transfer_flags: TransferFlags::DIR_IN,
//!     transfer_buffer_length: 18,
//!     start_frame: 0,
//!     number_of_packets: 0,
//!     interval: 0,
//!     setup: [0x80, 0x06, 0x00, 0x01, 0x00, 0x00, 18, 0],
//!     data: Bytes::new(),
//!     iso: Vec::new(),
//! };
//! let mut wire = BytesMut::new();
//! client.encode_submit(&cmd, &mut wire)?;
//!
//! // Server: bytes arrive in two pieces; the first is not yet a message.
//! let mut rx = wire.split_to(20);
//! assert_eq!(server.decode(&mut rx)?, None);
//! rx.unsplit(wire);
//! let Some(Command::Submit(got)) = server.decode(&mut rx)? else { unreachable!() };
//! assert_eq!(got, cmd);
//!
//! // Server: complete it with 18 bytes of descriptor.
//! let ret = RetSubmit {
//!     seqnum: got.seqnum,
//!     status: 0,
//!     actual_length: 18,
//!     start_frame: 0,
//!     number_of_packets: 0,
//!     error_count: 0,
//!     data: Bytes::from_static(&[18, 1, 0, 2, 0, 0, 0, 64, 0x09, 0x12, 1, 0, 0, 1, 1, 2, 3, 1]),
//!     iso: Vec::new(),
//! };
//! let mut wire = BytesMut::new();
//! server.encode_ret_submit(&ret, got.direction, &mut wire)?;
//!
//! // Client: the reply matches the outstanding URB.
//! assert_eq!(client.decode(&mut wire)?, Some(Reply::Submit(ret)));
//! assert_eq!(client.outstanding(), 0);
//! # Ok::<(), usbfn_usbip::proto::ProtoError>(())
//! ```

pub mod codec;
mod error;
mod flags;
pub mod op;
pub mod urb;

pub use codec::{ClientCodec, Command, Reply, ServerCodec};
pub use error::{Limit, ProtoError};
pub use flags::{Direction, TransferFlags, errno};
pub use op::{
    BusId, DevicePath, ExportedDevice, OpHeader, OpReply, OpRequest, OpStatus, USBIP_VERSION,
    UsbDevice, UsbInterface, UsbSpeed,
};
pub use urb::{
    CMD_SUBMIT, CMD_UNLINK, CmdSubmit, CmdUnlink, HEADER_LEN, IsoPacketDescriptor, RET_SUBMIT,
    RET_UNLINK, RetSubmit, RetUnlink, SubmitInfo,
};

/// Default [`Limits::max_transfer_buffer`]: 16 MiB.
pub const DEFAULT_MAX_TRANSFER_BUFFER: usize = 16 * 1024 * 1024;
/// Default [`Limits::max_iso_packets`]: 1024, the Linux `USBIP_MAX_ISO_PACKETS`
/// (16 KiB of descriptors per URB).
pub const DEFAULT_MAX_ISO_PACKETS: usize = 1024;
/// Default [`Limits::max_outstanding_urbs`]: 1024.
pub const DEFAULT_MAX_OUTSTANDING_URBS: usize = 1024;
/// Default [`Limits::max_devices`]: 256 devices in one OP_REP_DEVLIST.
pub const DEFAULT_MAX_DEVICES: usize = 256;

/// Bounds on what a peer may make this side buffer or remember.
///
/// One URB message is at most [`Limits::max_message_len`] bytes; the decoders check the
/// header against these limits before reserving room for the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest `transfer_buffer_length` (and so OUT data or IN `actual_length`) of one URB.
    pub max_transfer_buffer: usize,
    /// Most iso packet descriptors in one URB.
    pub max_iso_packets: usize,
    /// Most URBs outstanding at once on one connection (the server enforces it on what it
    /// accepts; [`ClientCodec`] on what it sends).
    pub max_outstanding_urbs: usize,
    /// Most devices accepted in one OP_REP_DEVLIST.
    pub max_devices: usize,
}

impl Limits {
    /// The defaults (the `DEFAULT_*` constants).
    pub const DEFAULT: Limits = Limits {
        max_transfer_buffer: DEFAULT_MAX_TRANSFER_BUFFER,
        max_iso_packets: DEFAULT_MAX_ISO_PACKETS,
        max_outstanding_urbs: DEFAULT_MAX_OUTSTANDING_URBS,
        max_devices: DEFAULT_MAX_DEVICES,
    };

    /// The largest URB message these limits let through: header, data and descriptors.
    pub const fn max_message_len(&self) -> usize {
        HEADER_LEN
            .saturating_add(self.max_transfer_buffer)
            .saturating_add(
                self.max_iso_packets
                    .saturating_mul(urb::ISO_PACKET_DESCRIPTOR_LEN),
            )
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::DEFAULT
    }
}
