//! The usbredir wire protocol (version 0.7), sans-IO: typed packets, capability negotiation,
//! an incremental decoder that checks every length against [`Limits`] before it allocates, and
//! the encoder.
//!
//! Framing: every packet is a header `u32 type, u32 length, u32|u64 id` (the id is 64 bits
//! once both sides announced [`Caps::IDS_64`]; `hello` always uses 32 bits), a type-specific
//! header whose size depends on the type and on the agreed capabilities, then
//! `length - type_header_len` bytes of data. All integers are little-endian.
//!
//! ```
//! use bytes::BytesMut;
//! use usbfn_usbredir::proto::{Caps, Codec, Limits, Packet, Role};
//!
//! // The usb-host side (usbfn) reads QEMU's hello first: it decides the header size.
//! let mut host = Codec::new(Role::Host, Caps::USBFN, Limits::default());
//! let mut guest = Codec::new(Role::Guest, Caps(0xff), Limits::default());
//! let mut wire = BytesMut::new();
//! guest.encode(0, &Packet::Hello { version: "qemu".into(), caps: Caps(0xff) }, &mut wire).unwrap();
//! let hello = host.decode(&mut wire).unwrap().unwrap();
//! assert!(matches!(hello.packet, Packet::Hello { .. }));
//! assert!(host.agreed().has(Caps::IDS_64));
//! ```

mod codec;
#[cfg(test)]
mod tests;

pub use codec::{Codec, Role};

use bytes::Bytes;

/// The usbredir protocol version a usb-host announces in its hello text.
pub const VERSION_TEXT: &str = concat!("usbfn usbredir host ", env!("CARGO_PKG_VERSION"));

/// Capability bits (`usb_redir_cap_*`): a feature is in use only when both sides announce it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Caps(pub u32);

impl Caps {
    /// USB 3 bulk streams.
    pub const BULK_STREAMS: u32 = 1 << 0;
    /// `device_connect` carries `device_version_bcd`.
    pub const CONNECT_DEVICE_VERSION: u32 = 1 << 1;
    /// `filter_reject` and `filter_filter`.
    pub const FILTER: u32 = 1 << 2;
    /// `device_disconnect_ack`.
    pub const DEVICE_DISCONNECT_ACK: u32 = 1 << 3;
    /// `ep_info` carries `max_packet_size`.
    pub const EP_INFO_MAX_PACKET_SIZE: u32 = 1 << 4;
    /// 64-bit ids in the header.
    pub const IDS_64: u32 = 1 << 5;
    /// `bulk_packet` carries `length_high`.
    pub const BULK_LENGTH_32: u32 = 1 << 6;
    /// Bulk receiving / buffered bulk input.
    pub const BULK_RECEIVING: u32 = 1 << 7;

    /// What usbfn's usb-host side announces (QEMU on an xHCI SuperSpeed port requires
    /// ep_info_max_packet_size, 32bits_bulk_length and 64bits_ids).
    pub const USBFN: Caps = Caps(
        Self::CONNECT_DEVICE_VERSION
            | Self::DEVICE_DISCONNECT_ACK
            | Self::EP_INFO_MAX_PACKET_SIZE
            | Self::IDS_64
            | Self::BULK_LENGTH_32,
    );

    /// True when `bit` is set.
    pub fn has(self, bit: u32) -> bool {
        self.0 & bit == bit
    }

    /// The capabilities both sides have.
    pub fn and(self, other: Caps) -> Caps {
        Caps(self.0 & other.0)
    }
}

/// A transfer or request status (`usb_redir_success` ...). Unknown values are kept.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Status(pub u8);

impl Status {
    /// `usb_redir_success`.
    pub const SUCCESS: Status = Status(0);
    /// `usb_redir_cancelled`.
    pub const CANCELLED: Status = Status(1);
    /// `usb_redir_inval`.
    pub const INVAL: Status = Status(2);
    /// `usb_redir_ioerror`.
    pub const IOERROR: Status = Status(3);
    /// `usb_redir_stall`.
    pub const STALL: Status = Status(4);
    /// `usb_redir_timeout`.
    pub const TIMEOUT: Status = Status(5);
    /// `usb_redir_babble`.
    pub const BABBLE: Status = Status(6);
}

/// A device speed (`usb_redir_speed_*`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Speed(pub u8);

impl Speed {
    /// Low speed.
    pub const LOW: Speed = Speed(0);
    /// Full speed.
    pub const FULL: Speed = Speed(1);
    /// High speed.
    pub const HIGH: Speed = Speed(2);
    /// SuperSpeed.
    pub const SUPER: Speed = Speed(3);
    /// Unknown.
    pub const UNKNOWN: Speed = Speed(255);
}

/// An endpoint's transfer type in `ep_info` (`usb_redir_type_*`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct EpType(pub u8);

impl EpType {
    /// Control.
    pub const CONTROL: EpType = EpType(0);
    /// Isochronous.
    pub const ISO: EpType = EpType(1);
    /// Bulk.
    pub const BULK: EpType = EpType(2);
    /// Interrupt.
    pub const INTERRUPT: EpType = EpType(3);
    /// No such endpoint.
    pub const INVALID: EpType = EpType(255);
}

/// Packet type numbers (`usb_redir_*`).
pub mod packet_type {
    #![allow(missing_docs)]
    pub const HELLO: u32 = 0;
    pub const DEVICE_CONNECT: u32 = 1;
    pub const DEVICE_DISCONNECT: u32 = 2;
    pub const RESET: u32 = 3;
    pub const INTERFACE_INFO: u32 = 4;
    pub const EP_INFO: u32 = 5;
    pub const SET_CONFIGURATION: u32 = 6;
    pub const GET_CONFIGURATION: u32 = 7;
    pub const CONFIGURATION_STATUS: u32 = 8;
    pub const SET_ALT_SETTING: u32 = 9;
    pub const GET_ALT_SETTING: u32 = 10;
    pub const ALT_SETTING_STATUS: u32 = 11;
    pub const START_ISO_STREAM: u32 = 12;
    pub const STOP_ISO_STREAM: u32 = 13;
    pub const ISO_STREAM_STATUS: u32 = 14;
    pub const START_INTERRUPT_RECEIVING: u32 = 15;
    pub const STOP_INTERRUPT_RECEIVING: u32 = 16;
    pub const INTERRUPT_RECEIVING_STATUS: u32 = 17;
    pub const ALLOC_BULK_STREAMS: u32 = 18;
    pub const FREE_BULK_STREAMS: u32 = 19;
    pub const BULK_STREAMS_STATUS: u32 = 20;
    pub const CANCEL_DATA_PACKET: u32 = 21;
    pub const FILTER_REJECT: u32 = 22;
    pub const FILTER_FILTER: u32 = 23;
    pub const DEVICE_DISCONNECT_ACK: u32 = 24;
    pub const START_BULK_RECEIVING: u32 = 25;
    pub const STOP_BULK_RECEIVING: u32 = 26;
    pub const BULK_RECEIVING_STATUS: u32 = 27;
    pub const CONTROL_PACKET: u32 = 100;
    pub const BULK_PACKET: u32 = 101;
    pub const ISO_PACKET: u32 = 102;
    pub const INTERRUPT_PACKET: u32 = 103;
    pub const BUFFERED_BULK_PACKET: u32 = 104;
}

/// The 32 endpoint slots of `ep_info` and `interface_info`: OUT endpoints 0-15, then IN 0-15.
pub const ENDPOINT_SLOTS: usize = 32;

/// The `ep_info` slot of an endpoint address: `((ep & 0x80) >> 3) | (ep & 0x0f)`.
pub fn endpoint_slot(endpoint: u8) -> usize {
    usize::from(((endpoint & 0x80) >> 3) | (endpoint & 0x0f))
}

/// `device_connect`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceConnect {
    /// Speed.
    pub speed: Speed,
    /// `bDeviceClass`.
    pub device_class: u8,
    /// `bDeviceSubClass`.
    pub device_subclass: u8,
    /// `bDeviceProtocol`.
    pub device_protocol: u8,
    /// `idVendor`.
    #[doc(alias = "idVendor")]
    pub vendor_id: u16,
    /// `idProduct`.
    #[doc(alias = "idProduct")]
    pub product_id: u16,
    /// `bcdDevice` (sent only with connect_device_version).
    #[doc(alias = "bcdDevice")]
    pub device_version_bcd: u16,
}

/// `interface_info`: the interfaces of the current configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceInfo {
    /// How many entries are valid (at most 32).
    pub interface_count: u32,
    /// `bInterfaceNumber` per entry.
    pub interface: [u8; ENDPOINT_SLOTS],
    /// `bInterfaceClass` per entry.
    pub class: [u8; ENDPOINT_SLOTS],
    /// `bInterfaceSubClass` per entry.
    pub subclass: [u8; ENDPOINT_SLOTS],
    /// `bInterfaceProtocol` per entry.
    pub protocol: [u8; ENDPOINT_SLOTS],
}

impl Default for InterfaceInfo {
    fn default() -> Self {
        InterfaceInfo {
            interface_count: 0,
            interface: [0; ENDPOINT_SLOTS],
            class: [0; ENDPOINT_SLOTS],
            subclass: [0; ENDPOINT_SLOTS],
            protocol: [0; ENDPOINT_SLOTS],
        }
    }
}

/// `ep_info`: every endpoint slot's type, interval, interface and packet size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpInfo {
    /// Transfer type per slot ([`EpType::INVALID`] for no endpoint).
    pub ep_type: [EpType; ENDPOINT_SLOTS],
    /// `bInterval` per slot.
    pub interval: [u8; ENDPOINT_SLOTS],
    /// Interface number per slot.
    pub interface: [u8; ENDPOINT_SLOTS],
    /// `wMaxPacketSize` per slot (sent with ep_info_max_packet_size).
    pub max_packet_size: [u16; ENDPOINT_SLOTS],
    /// Bulk streams per slot (sent with bulk_streams).
    pub max_streams: [u32; ENDPOINT_SLOTS],
}

impl Default for EpInfo {
    fn default() -> Self {
        EpInfo {
            ep_type: [EpType::INVALID; ENDPOINT_SLOTS],
            interval: [0; ENDPOINT_SLOTS],
            interface: [0; ENDPOINT_SLOTS],
            max_packet_size: [0; ENDPOINT_SLOTS],
            max_streams: [0; ENDPOINT_SLOTS],
        }
    }
}

/// `control_packet`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlPacket {
    /// 0x00 (OUT) or 0x80 (IN).
    pub endpoint: u8,
    /// `bRequest`.
    #[doc(alias = "bRequest")]
    pub request: u8,
    /// `bmRequestType`.
    #[doc(alias = "bmRequestType")]
    pub requesttype: u8,
    /// Status (replies).
    pub status: Status,
    /// `wValue`.
    #[doc(alias = "wValue")]
    pub value: u16,
    /// `wIndex`.
    #[doc(alias = "wIndex")]
    pub index: u16,
    /// `wLength` in a request; the bytes moved in a reply.
    #[doc(alias = "wLength")]
    pub length: u16,
    /// OUT data (request) or IN data (reply).
    pub data: Bytes,
}

/// `bulk_packet`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BulkPacket {
    /// Endpoint address.
    pub endpoint: u8,
    /// Status (replies).
    pub status: Status,
    /// Requested length (request) or bytes moved (reply): 32 bits with 32bits_bulk_length.
    pub length: u32,
    /// Stream id (bulk streams).
    pub stream_id: u32,
    /// OUT data (request) or IN data (reply).
    pub data: Bytes,
}

/// `iso_packet` and `interrupt_packet`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataPacket {
    /// Endpoint address.
    pub endpoint: u8,
    /// Status.
    pub status: Status,
    /// Data length (OUT request: the data; reply: bytes moved).
    pub length: u16,
    /// The data.
    pub data: Bytes,
}

/// `buffered_bulk_packet`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BufferedBulkPacket {
    /// Stream id.
    pub stream_id: u32,
    /// Data length.
    pub length: u32,
    /// Endpoint address.
    pub endpoint: u8,
    /// Status.
    pub status: Status,
    /// The data.
    pub data: Bytes,
}

/// Every usbredir packet.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // the fields are the protocol's, named as in usbredirproto.h
pub enum Packet {
    Hello {
        version: String,
        caps: Caps,
    },
    DeviceConnect(DeviceConnect),
    DeviceDisconnect,
    Reset,
    InterfaceInfo(Box<InterfaceInfo>),
    EpInfo(Box<EpInfo>),
    SetConfiguration {
        configuration: u8,
    },
    GetConfiguration,
    ConfigurationStatus {
        status: Status,
        configuration: u8,
    },
    SetAltSetting {
        interface: u8,
        alt: u8,
    },
    GetAltSetting {
        interface: u8,
    },
    AltSettingStatus {
        status: Status,
        interface: u8,
        alt: u8,
    },
    StartIsoStream {
        endpoint: u8,
        pkts_per_urb: u8,
        no_urbs: u8,
    },
    StopIsoStream {
        endpoint: u8,
    },
    IsoStreamStatus {
        status: Status,
        endpoint: u8,
    },
    StartInterruptReceiving {
        endpoint: u8,
    },
    StopInterruptReceiving {
        endpoint: u8,
    },
    InterruptReceivingStatus {
        status: Status,
        endpoint: u8,
    },
    AllocBulkStreams {
        endpoints: u32,
        no_streams: u32,
    },
    FreeBulkStreams {
        endpoints: u32,
    },
    BulkStreamsStatus {
        endpoints: u32,
        no_streams: u32,
        status: Status,
    },
    CancelDataPacket,
    FilterReject,
    /// The filter rules as text (`usbredirfilter` string form).
    FilterFilter {
        rules: Bytes,
    },
    DeviceDisconnectAck,
    StartBulkReceiving {
        stream_id: u32,
        bytes_per_transfer: u32,
        endpoint: u8,
        no_transfers: u8,
    },
    StopBulkReceiving {
        stream_id: u32,
        endpoint: u8,
    },
    BulkReceivingStatus {
        stream_id: u32,
        endpoint: u8,
        status: Status,
    },
    Control(ControlPacket),
    Bulk(BulkPacket),
    Iso(DataPacket),
    Interrupt(DataPacket),
    BufferedBulk(BufferedBulkPacket),
}

impl Packet {
    /// The packet's type number.
    pub fn packet_type(&self) -> u32 {
        use packet_type as t;
        match self {
            Packet::Hello { .. } => t::HELLO,
            Packet::DeviceConnect(_) => t::DEVICE_CONNECT,
            Packet::DeviceDisconnect => t::DEVICE_DISCONNECT,
            Packet::Reset => t::RESET,
            Packet::InterfaceInfo(_) => t::INTERFACE_INFO,
            Packet::EpInfo(_) => t::EP_INFO,
            Packet::SetConfiguration { .. } => t::SET_CONFIGURATION,
            Packet::GetConfiguration => t::GET_CONFIGURATION,
            Packet::ConfigurationStatus { .. } => t::CONFIGURATION_STATUS,
            Packet::SetAltSetting { .. } => t::SET_ALT_SETTING,
            Packet::GetAltSetting { .. } => t::GET_ALT_SETTING,
            Packet::AltSettingStatus { .. } => t::ALT_SETTING_STATUS,
            Packet::StartIsoStream { .. } => t::START_ISO_STREAM,
            Packet::StopIsoStream { .. } => t::STOP_ISO_STREAM,
            Packet::IsoStreamStatus { .. } => t::ISO_STREAM_STATUS,
            Packet::StartInterruptReceiving { .. } => t::START_INTERRUPT_RECEIVING,
            Packet::StopInterruptReceiving { .. } => t::STOP_INTERRUPT_RECEIVING,
            Packet::InterruptReceivingStatus { .. } => t::INTERRUPT_RECEIVING_STATUS,
            Packet::AllocBulkStreams { .. } => t::ALLOC_BULK_STREAMS,
            Packet::FreeBulkStreams { .. } => t::FREE_BULK_STREAMS,
            Packet::BulkStreamsStatus { .. } => t::BULK_STREAMS_STATUS,
            Packet::CancelDataPacket => t::CANCEL_DATA_PACKET,
            Packet::FilterReject => t::FILTER_REJECT,
            Packet::FilterFilter { .. } => t::FILTER_FILTER,
            Packet::DeviceDisconnectAck => t::DEVICE_DISCONNECT_ACK,
            Packet::StartBulkReceiving { .. } => t::START_BULK_RECEIVING,
            Packet::StopBulkReceiving { .. } => t::STOP_BULK_RECEIVING,
            Packet::BulkReceivingStatus { .. } => t::BULK_RECEIVING_STATUS,
            Packet::Control(_) => t::CONTROL_PACKET,
            Packet::Bulk(_) => t::BULK_PACKET,
            Packet::Iso(_) => t::ISO_PACKET,
            Packet::Interrupt(_) => t::INTERRUPT_PACKET,
            Packet::BufferedBulk(_) => t::BUFFERED_BULK_PACKET,
        }
    }
}

/// A decoded packet with its header id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The header id (requests and their replies share it).
    pub id: u64,
    /// The packet.
    pub packet: Packet,
}

/// Limits on what a peer may send, checked before any allocation.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most data bytes in one packet (a bulk transfer's length, a control transfer's data).
    pub max_data: u32,
    /// Most bytes of capabilities in a hello.
    pub max_caps_bytes: u32,
    /// Most bytes of filter rules in filter_filter.
    pub max_filter_bytes: u32,
}

/// Default [`Limits::max_data`]: 16 MiB, usbfn's largest transfer.
pub const DEFAULT_MAX_DATA: u32 = 16 * 1024 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_data: DEFAULT_MAX_DATA,
            max_caps_bytes: 128,
            max_filter_bytes: 64 * 1024,
        }
    }
}

/// Why a usbredir packet could not be decoded or encoded. Every variant says which packet,
/// which field and (for limits) which limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtoError {
    /// The first packet was not a hello.
    #[error("expected hello as the first packet, got type {0}")]
    HelloFirst(u32),
    /// A second hello.
    #[error("a second hello")]
    HelloAgain,
    /// An unknown packet type.
    #[error("unknown packet type {0}")]
    UnknownType(u32),
    /// A packet whose length is shorter than its type header.
    #[error("{packet}: length {length} is shorter than its {header}-byte type header")]
    ShortHeader {
        /// Packet name.
        packet: &'static str,
        /// The header's length field.
        length: u32,
        /// The type header's size with the agreed capabilities.
        header: u32,
    },
    /// Data after a packet that carries none.
    #[error("{packet}: {extra} bytes of data after a packet that carries none")]
    UnexpectedData {
        /// Packet name.
        packet: &'static str,
        /// Extra bytes.
        extra: u32,
    },
    /// A length beyond a limit.
    #[error("{packet} {field} {value} exceeds {limit} {max}")]
    LimitExceeded {
        /// Packet name.
        packet: &'static str,
        /// Field name.
        field: &'static str,
        /// The value.
        value: u64,
        /// The limit's name (a [`Limits`] field, or the wire field's width).
        limit: &'static str,
        /// The limit's value.
        max: u64,
    },
    /// A data length that disagrees with the header's length field.
    #[error("{packet}: {data} bytes of data, but its length field says {length} ({direction})")]
    DataLength {
        /// Packet name.
        packet: &'static str,
        /// Data bytes present.
        data: u32,
        /// The type header's length field.
        length: u32,
        /// Which rule: "OUT request", "IN request", "IN reply", "OUT reply".
        direction: &'static str,
    },
    /// A hello whose capabilities are not whole 32-bit words.
    #[error("hello: {0} bytes of capabilities is not a multiple of 4")]
    CapsLength(u32),
    /// A packet that needs a capability the two sides did not agree on.
    #[error("{packet} needs the {cap} capability, which was not agreed")]
    MissingCap {
        /// Packet name.
        packet: &'static str,
        /// Capability name.
        cap: &'static str,
    },
    /// A packet sent before the hello exchange finished.
    #[error("{0} before the peer's hello")]
    BeforeHello(&'static str),
    /// An id that does not fit the header's 32-bit id field.
    #[error("id {0} does not fit a 32-bit header id (64bits_ids not agreed)")]
    IdTooLarge(u64),
}
