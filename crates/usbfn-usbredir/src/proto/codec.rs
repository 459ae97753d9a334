//! [`Codec`]: the incremental decoder and the encoder for one side of a usbredir connection.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::packet_type as t;
use super::{
    BufferedBulkPacket, BulkPacket, Caps, ControlPacket, DataPacket, DeviceConnect, ENDPOINT_SLOTS,
    EpInfo, EpType, InterfaceInfo, Limits, Message, Packet, ProtoError, Speed, Status,
};

/// Which side of the connection this codec is: it decides which data rules apply to what is
/// received (a usb-host receives requests, a usb-guest replies).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// The side that owns the device (usbfn; `usbredirhost` in the C library).
    Host,
    /// The side that uses the device (QEMU's `usb-redir`).
    Guest,
}

/// One side's codec: its own capabilities, the peer's once its hello arrived, and the limits.
#[derive(Clone, Debug)]
pub struct Codec {
    role: Role,
    ours: Caps,
    peer: Option<Caps>,
    limits: Limits,
}

/// The header before the peer's hello, and always for hello: 32-bit id.
const HEADER_32: usize = 12;
/// The header once both sides announced 64bits_ids.
const HEADER_64: usize = 16;
/// `char version[64]` of hello.
const HELLO_VERSION: u32 = 64;

/// How a packet type carries data.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Body {
    /// The type header only.
    None,
    /// Hello capabilities.
    Caps,
    /// Filter rules text.
    Filter,
    /// Transfer data.
    Data,
}

impl Codec {
    /// A codec for `role` announcing `ours`.
    pub fn new(role: Role, ours: Caps, limits: Limits) -> Codec {
        Codec {
            role,
            ours,
            peer: None,
            limits,
        }
    }

    /// The peer's capabilities, once its hello was decoded.
    pub fn peer(&self) -> Option<Caps> {
        self.peer
    }

    /// The capabilities in use (both sides have them); empty before the peer's hello.
    pub fn agreed(&self) -> Caps {
        self.peer.map_or(Caps(0), |p| p.and(self.ours))
    }

    /// The header size of every packet but hello.
    fn header_len(&self) -> usize {
        if self.agreed().has(Caps::IDS_64) {
            HEADER_64
        } else {
            HEADER_32
        }
    }

    /// Name, type header size and body kind of a packet type under the agreed capabilities.
    fn layout(&self, ty: u32) -> Result<(&'static str, u32, Body), ProtoError> {
        let caps = self.agreed();
        let bit = |b: u32, n: u32| if caps.has(b) { n } else { 0 };
        Ok(match ty {
            t::HELLO => ("hello", HELLO_VERSION, Body::Caps),
            t::DEVICE_CONNECT => (
                "device_connect",
                8 + bit(Caps::CONNECT_DEVICE_VERSION, 2),
                Body::None,
            ),
            t::DEVICE_DISCONNECT => ("device_disconnect", 0, Body::None),
            t::RESET => ("reset", 0, Body::None),
            t::INTERFACE_INFO => ("interface_info", 4 + 4 * 32, Body::None),
            t::EP_INFO => (
                "ep_info",
                96 + bit(Caps::EP_INFO_MAX_PACKET_SIZE, 64) + bit(Caps::BULK_STREAMS, 128),
                Body::None,
            ),
            t::SET_CONFIGURATION => ("set_configuration", 1, Body::None),
            t::GET_CONFIGURATION => ("get_configuration", 0, Body::None),
            t::CONFIGURATION_STATUS => ("configuration_status", 2, Body::None),
            t::SET_ALT_SETTING => ("set_alt_setting", 2, Body::None),
            t::GET_ALT_SETTING => ("get_alt_setting", 1, Body::None),
            t::ALT_SETTING_STATUS => ("alt_setting_status", 3, Body::None),
            t::START_ISO_STREAM => ("start_iso_stream", 3, Body::None),
            t::STOP_ISO_STREAM => ("stop_iso_stream", 1, Body::None),
            t::ISO_STREAM_STATUS => ("iso_stream_status", 2, Body::None),
            t::START_INTERRUPT_RECEIVING => ("start_interrupt_receiving", 1, Body::None),
            t::STOP_INTERRUPT_RECEIVING => ("stop_interrupt_receiving", 1, Body::None),
            t::INTERRUPT_RECEIVING_STATUS => ("interrupt_receiving_status", 2, Body::None),
            t::ALLOC_BULK_STREAMS => ("alloc_bulk_streams", 8, Body::None),
            t::FREE_BULK_STREAMS => ("free_bulk_streams", 4, Body::None),
            t::BULK_STREAMS_STATUS => ("bulk_streams_status", 9, Body::None),
            t::CANCEL_DATA_PACKET => ("cancel_data_packet", 0, Body::None),
            t::FILTER_REJECT => ("filter_reject", 0, Body::None),
            t::FILTER_FILTER => ("filter_filter", 0, Body::Filter),
            t::DEVICE_DISCONNECT_ACK => ("device_disconnect_ack", 0, Body::None),
            t::START_BULK_RECEIVING => ("start_bulk_receiving", 10, Body::None),
            t::STOP_BULK_RECEIVING => ("stop_bulk_receiving", 5, Body::None),
            t::BULK_RECEIVING_STATUS => ("bulk_receiving_status", 6, Body::None),
            t::CONTROL_PACKET => ("control_packet", 10, Body::Data),
            t::BULK_PACKET => ("bulk_packet", 8 + bit(Caps::BULK_LENGTH_32, 2), Body::Data),
            t::ISO_PACKET => ("iso_packet", 4, Body::Data),
            t::INTERRUPT_PACKET => ("interrupt_packet", 4, Body::Data),
            t::BUFFERED_BULK_PACKET => ("buffered_bulk_packet", 10, Body::Data),
            other => return Err(ProtoError::UnknownType(other)),
        })
    }

    /// Decode one packet from the front of `buf`. `Ok(None)`: more bytes are needed (room
    /// for the whole packet is reserved once its header is known and its length is within
    /// the limits). An error leaves the connection unusable: close it.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, ProtoError> {
        let header = if self.peer.is_none() {
            HEADER_32
        } else {
            self.header_len()
        };
        if buf.len() < header {
            return Ok(None);
        }
        let mut h = &buf[..header];
        let ty = h.get_u32_le();
        let length = h.get_u32_le();
        let id = if header == HEADER_64 {
            h.get_u64_le()
        } else {
            u64::from(h.get_u32_le())
        };
        match (self.peer.is_some(), ty == t::HELLO) {
            (false, false) => return Err(ProtoError::HelloFirst(ty)),
            (true, true) => return Err(ProtoError::HelloAgain),
            _ => {}
        }
        let (name, type_header, body) = self.layout(ty)?;
        let Some(data_len) = length.checked_sub(type_header) else {
            return Err(ProtoError::ShortHeader {
                packet: name,
                length,
                header: type_header,
            });
        };
        let (limit, max) = match body {
            Body::None if data_len > 0 => {
                return Err(ProtoError::UnexpectedData {
                    packet: name,
                    extra: data_len,
                });
            }
            Body::None => ("", 0),
            Body::Caps => ("max_caps_bytes", self.limits.max_caps_bytes),
            Body::Filter => ("max_filter_bytes", self.limits.max_filter_bytes),
            Body::Data => ("max_data", self.limits.max_data),
        };
        if data_len > max && body != Body::None {
            return Err(ProtoError::LimitExceeded {
                packet: name,
                field: "length",
                value: u64::from(data_len),
                limit,
                max: u64::from(max),
            });
        }
        // Bounded by the limits above: the length cannot make this allocate more.
        let total = header + usize::try_from(length).unwrap_or(usize::MAX);
        if buf.len() < total {
            buf.reserve(total - buf.len());
            return Ok(None);
        }
        let mut packet = buf.split_to(total).freeze();
        packet.advance(header);
        let data = packet.split_off(usize::try_from(type_header).unwrap_or(0));
        let packet = self.parse(ty, name, &mut packet, data)?;
        if let Packet::Hello { caps, .. } = &packet {
            self.peer = Some(*caps);
        }
        Ok(Some(Message { id, packet }))
    }

    /// The typed packet from its type header `h` (exactly as long as the layout says) and data.
    fn parse(
        &self,
        ty: u32,
        name: &'static str,
        h: &mut Bytes,
        data: Bytes,
    ) -> Result<Packet, ProtoError> {
        let caps = self.agreed();
        // Fits: the decoder checked the body against its u32 length field before this.
        let data_len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        Ok(match ty {
            t::HELLO => {
                let version = String::from_utf8_lossy(&h[..]);
                let version = version.trim_end_matches('\0').to_owned();
                if !data.len().is_multiple_of(4) {
                    return Err(ProtoError::CapsLength(data_len));
                }
                // Only the first word has bits usbfn knows; later words are ignored.
                let caps = Caps(data.get(..4).map_or(0, |mut w| w.get_u32_le()));
                Packet::Hello { version, caps }
            }
            t::DEVICE_CONNECT => Packet::DeviceConnect(DeviceConnect {
                speed: Speed(h.get_u8()),
                device_class: h.get_u8(),
                device_subclass: h.get_u8(),
                device_protocol: h.get_u8(),
                vendor_id: h.get_u16_le(),
                product_id: h.get_u16_le(),
                device_version_bcd: if caps.has(Caps::CONNECT_DEVICE_VERSION) {
                    h.get_u16_le()
                } else {
                    0
                },
            }),
            t::DEVICE_DISCONNECT => Packet::DeviceDisconnect,
            t::RESET => Packet::Reset,
            t::INTERFACE_INFO => {
                let mut info = InterfaceInfo {
                    interface_count: h.get_u32_le(),
                    ..InterfaceInfo::default()
                };
                if info.interface_count > 32 {
                    return Err(ProtoError::LimitExceeded {
                        packet: name,
                        field: "interface_count",
                        value: u64::from(info.interface_count),
                        limit: "32 entries",
                        max: 32,
                    });
                }
                h.copy_to_slice(&mut info.interface);
                h.copy_to_slice(&mut info.class);
                h.copy_to_slice(&mut info.subclass);
                h.copy_to_slice(&mut info.protocol);
                Packet::InterfaceInfo(Box::new(info))
            }
            t::EP_INFO => {
                let mut info = EpInfo::default();
                for slot in &mut info.ep_type {
                    *slot = EpType(h.get_u8());
                }
                h.copy_to_slice(&mut info.interval);
                h.copy_to_slice(&mut info.interface);
                if caps.has(Caps::EP_INFO_MAX_PACKET_SIZE) {
                    for slot in &mut info.max_packet_size {
                        *slot = h.get_u16_le();
                    }
                }
                if caps.has(Caps::BULK_STREAMS) {
                    for slot in &mut info.max_streams {
                        *slot = h.get_u32_le();
                    }
                }
                Packet::EpInfo(Box::new(info))
            }
            t::SET_CONFIGURATION => Packet::SetConfiguration {
                configuration: h.get_u8(),
            },
            t::GET_CONFIGURATION => Packet::GetConfiguration,
            t::CONFIGURATION_STATUS => Packet::ConfigurationStatus {
                status: Status(h.get_u8()),
                configuration: h.get_u8(),
            },
            t::SET_ALT_SETTING => Packet::SetAltSetting {
                interface: h.get_u8(),
                alt: h.get_u8(),
            },
            t::GET_ALT_SETTING => Packet::GetAltSetting {
                interface: h.get_u8(),
            },
            t::ALT_SETTING_STATUS => Packet::AltSettingStatus {
                status: Status(h.get_u8()),
                interface: h.get_u8(),
                alt: h.get_u8(),
            },
            t::START_ISO_STREAM => Packet::StartIsoStream {
                endpoint: h.get_u8(),
                pkts_per_urb: h.get_u8(),
                no_urbs: h.get_u8(),
            },
            t::STOP_ISO_STREAM => Packet::StopIsoStream {
                endpoint: h.get_u8(),
            },
            t::ISO_STREAM_STATUS => Packet::IsoStreamStatus {
                status: Status(h.get_u8()),
                endpoint: h.get_u8(),
            },
            t::START_INTERRUPT_RECEIVING => Packet::StartInterruptReceiving {
                endpoint: h.get_u8(),
            },
            t::STOP_INTERRUPT_RECEIVING => Packet::StopInterruptReceiving {
                endpoint: h.get_u8(),
            },
            t::INTERRUPT_RECEIVING_STATUS => Packet::InterruptReceivingStatus {
                status: Status(h.get_u8()),
                endpoint: h.get_u8(),
            },
            t::ALLOC_BULK_STREAMS => Packet::AllocBulkStreams {
                endpoints: h.get_u32_le(),
                no_streams: h.get_u32_le(),
            },
            t::FREE_BULK_STREAMS => Packet::FreeBulkStreams {
                endpoints: h.get_u32_le(),
            },
            t::BULK_STREAMS_STATUS => Packet::BulkStreamsStatus {
                endpoints: h.get_u32_le(),
                no_streams: h.get_u32_le(),
                status: Status(h.get_u8()),
            },
            t::CANCEL_DATA_PACKET => Packet::CancelDataPacket,
            t::FILTER_REJECT => Packet::FilterReject,
            t::FILTER_FILTER => Packet::FilterFilter { rules: data },
            t::DEVICE_DISCONNECT_ACK => Packet::DeviceDisconnectAck,
            t::START_BULK_RECEIVING => Packet::StartBulkReceiving {
                stream_id: h.get_u32_le(),
                bytes_per_transfer: h.get_u32_le(),
                endpoint: h.get_u8(),
                no_transfers: h.get_u8(),
            },
            t::STOP_BULK_RECEIVING => Packet::StopBulkReceiving {
                stream_id: h.get_u32_le(),
                endpoint: h.get_u8(),
            },
            t::BULK_RECEIVING_STATUS => Packet::BulkReceivingStatus {
                stream_id: h.get_u32_le(),
                endpoint: h.get_u8(),
                status: Status(h.get_u8()),
            },
            t::CONTROL_PACKET => {
                let p = ControlPacket {
                    endpoint: h.get_u8(),
                    request: h.get_u8(),
                    requesttype: h.get_u8(),
                    status: Status(h.get_u8()),
                    value: h.get_u16_le(),
                    index: h.get_u16_le(),
                    length: h.get_u16_le(),
                    data,
                };
                self.check_data(name, p.endpoint, u32::from(p.length), data_len)?;
                Packet::Control(p)
            }
            t::BULK_PACKET => {
                let endpoint = h.get_u8();
                let status = Status(h.get_u8());
                let low = h.get_u16_le();
                let stream_id = h.get_u32_le();
                let high = if caps.has(Caps::BULK_LENGTH_32) {
                    h.get_u16_le()
                } else {
                    0
                };
                let length = u32::from(high) << 16 | u32::from(low);
                self.check_data(name, endpoint, length, data_len)?;
                Packet::Bulk(BulkPacket {
                    endpoint,
                    status,
                    length,
                    stream_id,
                    data,
                })
            }
            t::ISO_PACKET | t::INTERRUPT_PACKET => {
                let p = DataPacket {
                    endpoint: h.get_u8(),
                    status: Status(h.get_u8()),
                    length: h.get_u16_le(),
                    data,
                };
                self.check_data(name, p.endpoint, u32::from(p.length), data_len)?;
                if ty == t::ISO_PACKET {
                    Packet::Iso(p)
                } else {
                    Packet::Interrupt(p)
                }
            }
            t::BUFFERED_BULK_PACKET => {
                let p = BufferedBulkPacket {
                    stream_id: h.get_u32_le(),
                    length: h.get_u32_le(),
                    endpoint: h.get_u8(),
                    status: Status(h.get_u8()),
                    data,
                };
                if p.length != data_len {
                    return Err(ProtoError::DataLength {
                        packet: name,
                        data: data_len,
                        length: p.length,
                        direction: "IN reply",
                    });
                }
                Packet::BufferedBulk(p)
            }
            other => return Err(ProtoError::UnknownType(other)),
        })
    }

    /// The data rule of a transfer packet: a request carries OUT data of its full length and
    /// no IN data; a reply carries IN data of its length and no OUT data.
    fn check_data(
        &self,
        packet: &'static str,
        endpoint: u8,
        length: u32,
        data: u32,
    ) -> Result<(), ProtoError> {
        let input = endpoint & 0x80 != 0;
        let (expected, direction) = match (self.role, input) {
            (Role::Host, false) => (length, "OUT request"),
            (Role::Host, true) => (0, "IN request"),
            (Role::Guest, true) => (length, "IN reply"),
            (Role::Guest, false) => (0, "OUT reply"),
        };
        if data == expected {
            Ok(())
        } else {
            Err(ProtoError::DataLength {
                packet,
                data,
                length,
                direction,
            })
        }
    }

    /// Append `packet` with header id `id` to `out`. Hello may be sent at any time (it uses
    /// a 32-bit id); every other packet needs the peer's hello first (it decides the header).
    pub fn encode(&self, id: u64, packet: &Packet, out: &mut BytesMut) -> Result<(), ProtoError> {
        let ty = packet.packet_type();
        let (name, type_header, _) = self.layout(ty)?;
        let header = if ty == t::HELLO {
            HEADER_32
        } else if self.peer.is_none() {
            return Err(ProtoError::BeforeHello(name));
        } else {
            self.header_len()
        };
        let caps = self.agreed();
        let data: &[u8] = match packet {
            Packet::FilterFilter { rules } => rules,
            Packet::Control(p) => &p.data,
            Packet::Bulk(p) => &p.data,
            Packet::Iso(p) | Packet::Interrupt(p) => &p.data,
            Packet::BufferedBulk(p) => &p.data,
            _ => &[],
        };
        let hello_caps = matches!(packet, Packet::Hello { .. });
        let body = if hello_caps { 4 } else { data.len() };
        let length = u32::try_from(body)
            .ok()
            .and_then(|d| d.checked_add(type_header))
            .ok_or(ProtoError::LimitExceeded {
                packet: name,
                field: "length",
                // Fits: usize into u64 on every target usbfn builds for.
                value: u64::try_from(body).unwrap_or(u64::MAX),
                limit: "u32::MAX",
                max: u64::from(u32::MAX),
            })?;
        if let Packet::Bulk(p) = packet
            && p.length > 0xffff
            && !caps.has(Caps::BULK_LENGTH_32)
        {
            return Err(ProtoError::LimitExceeded {
                packet: name,
                field: "length",
                value: u64::from(p.length),
                limit: "u16::MAX (32bits_bulk_length not agreed)",
                max: u64::from(u16::MAX),
            });
        }
        out.reserve(header + usize::try_from(length).unwrap_or(0));
        out.put_u32_le(ty);
        out.put_u32_le(length);
        if header == HEADER_64 {
            out.put_u64_le(id);
        } else {
            out.put_u32_le(u32::try_from(id).map_err(|_| ProtoError::IdTooLarge(id))?);
        }
        match packet {
            Packet::Hello { version, caps } => {
                let mut text = [0u8; 64];
                let bytes = version.as_bytes();
                // Keep a terminating NUL, as C peers expect.
                let n = bytes.len().min(63);
                text[..n].copy_from_slice(&bytes[..n]);
                out.put_slice(&text);
                out.put_u32_le(caps.0);
            }
            Packet::DeviceConnect(d) => {
                out.put_u8(d.speed.0);
                out.put_u8(d.device_class);
                out.put_u8(d.device_subclass);
                out.put_u8(d.device_protocol);
                out.put_u16_le(d.vendor_id);
                out.put_u16_le(d.product_id);
                if caps.has(Caps::CONNECT_DEVICE_VERSION) {
                    out.put_u16_le(d.device_version_bcd);
                }
            }
            Packet::DeviceDisconnect
            | Packet::Reset
            | Packet::GetConfiguration
            | Packet::CancelDataPacket
            | Packet::FilterReject
            | Packet::DeviceDisconnectAck => {}
            Packet::InterfaceInfo(i) => {
                out.put_u32_le(i.interface_count);
                out.put_slice(&i.interface);
                out.put_slice(&i.class);
                out.put_slice(&i.subclass);
                out.put_slice(&i.protocol);
            }
            Packet::EpInfo(e) => {
                for slot in &e.ep_type {
                    out.put_u8(slot.0);
                }
                out.put_slice(&e.interval);
                out.put_slice(&e.interface);
                if caps.has(Caps::EP_INFO_MAX_PACKET_SIZE) {
                    for slot in &e.max_packet_size {
                        out.put_u16_le(*slot);
                    }
                }
                if caps.has(Caps::BULK_STREAMS) {
                    for slot in &e.max_streams {
                        out.put_u32_le(*slot);
                    }
                }
            }
            Packet::SetConfiguration { configuration } => out.put_u8(*configuration),
            Packet::ConfigurationStatus {
                status,
                configuration,
            } => {
                out.put_u8(status.0);
                out.put_u8(*configuration);
            }
            Packet::SetAltSetting { interface, alt } => {
                out.put_u8(*interface);
                out.put_u8(*alt);
            }
            Packet::GetAltSetting { interface } => out.put_u8(*interface),
            Packet::AltSettingStatus {
                status,
                interface,
                alt,
            } => {
                out.put_u8(status.0);
                out.put_u8(*interface);
                out.put_u8(*alt);
            }
            Packet::StartIsoStream {
                endpoint,
                pkts_per_urb,
                no_urbs,
            } => {
                out.put_u8(*endpoint);
                out.put_u8(*pkts_per_urb);
                out.put_u8(*no_urbs);
            }
            Packet::StopIsoStream { endpoint }
            | Packet::StartInterruptReceiving { endpoint }
            | Packet::StopInterruptReceiving { endpoint } => out.put_u8(*endpoint),
            Packet::IsoStreamStatus { status, endpoint }
            | Packet::InterruptReceivingStatus { status, endpoint } => {
                out.put_u8(status.0);
                out.put_u8(*endpoint);
            }
            Packet::AllocBulkStreams {
                endpoints,
                no_streams,
            } => {
                out.put_u32_le(*endpoints);
                out.put_u32_le(*no_streams);
            }
            Packet::FreeBulkStreams { endpoints } => out.put_u32_le(*endpoints),
            Packet::BulkStreamsStatus {
                endpoints,
                no_streams,
                status,
            } => {
                out.put_u32_le(*endpoints);
                out.put_u32_le(*no_streams);
                out.put_u8(status.0);
            }
            Packet::FilterFilter { rules } => out.put_slice(rules),
            Packet::StartBulkReceiving {
                stream_id,
                bytes_per_transfer,
                endpoint,
                no_transfers,
            } => {
                out.put_u32_le(*stream_id);
                out.put_u32_le(*bytes_per_transfer);
                out.put_u8(*endpoint);
                out.put_u8(*no_transfers);
            }
            Packet::StopBulkReceiving {
                stream_id,
                endpoint,
            } => {
                out.put_u32_le(*stream_id);
                out.put_u8(*endpoint);
            }
            Packet::BulkReceivingStatus {
                stream_id,
                endpoint,
                status,
            } => {
                out.put_u32_le(*stream_id);
                out.put_u8(*endpoint);
                out.put_u8(status.0);
            }
            Packet::Control(p) => {
                out.put_u8(p.endpoint);
                out.put_u8(p.request);
                out.put_u8(p.requesttype);
                out.put_u8(p.status.0);
                out.put_u16_le(p.value);
                out.put_u16_le(p.index);
                out.put_u16_le(p.length);
                out.put_slice(&p.data);
            }
            Packet::Bulk(p) => {
                // Fits: a u32 shifted right by 16.
                let high = u16::try_from(p.length >> 16).unwrap_or(u16::MAX);
                out.put_u8(p.endpoint);
                out.put_u8(p.status.0);
                out.put_u16_le(u16::try_from(p.length & 0xffff).unwrap_or(0));
                out.put_u32_le(p.stream_id);
                if caps.has(Caps::BULK_LENGTH_32) {
                    out.put_u16_le(high);
                }
                out.put_slice(&p.data);
            }
            Packet::Iso(p) | Packet::Interrupt(p) => {
                out.put_u8(p.endpoint);
                out.put_u8(p.status.0);
                out.put_u16_le(p.length);
                out.put_slice(&p.data);
            }
            Packet::BufferedBulk(p) => {
                out.put_u32_le(p.stream_id);
                out.put_u32_le(p.length);
                out.put_u8(p.endpoint);
                out.put_u8(p.status.0);
                out.put_slice(&p.data);
            }
        }
        Ok(())
    }
}

/// Keeps [`ENDPOINT_SLOTS`] and the 32-entry arrays of the layout in step.
const _: () = assert!(ENDPOINT_SLOTS == 32);
