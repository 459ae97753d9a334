//! Connection-setup ("op") messages: OP_REQ/OP_REP_DEVLIST and OP_REQ/OP_REP_IMPORT.
//!
//! Every op message starts with the 8-byte [`OpHeader`] (`u16 version, u16 code, u32 status`,
//! big-endian). Decoding is incremental: `decode` returns `Ok(None)` until a whole message is
//! buffered, then splits it off the front of the buffer and leaves whatever follows (the first
//! URB of an imported device, say) in place.

use std::fmt;
use std::str::FromStr;

use bytes::{Buf, BufMut, BytesMut};

use super::{Limit, Limits, ProtoError};

/// The protocol version both sides put in every op header.
pub const USBIP_VERSION: u16 = 0x0111;
/// Op code: request the list of exported devices.
pub const OP_REQ_DEVLIST: u16 = 0x8005;
/// Op code: the list of exported devices.
pub const OP_REP_DEVLIST: u16 = 0x0005;
/// Op code: request to import (attach) one device.
pub const OP_REQ_IMPORT: u16 = 0x8003;
/// Op code: the answer to an import request.
pub const OP_REP_IMPORT: u16 = 0x0003;

/// Length of [`OpHeader`] on the wire.
pub const OP_HEADER_LEN: usize = 8;
/// Length of the `busid` field (NUL padded).
pub const BUSID_LEN: usize = 32;
/// Length of the `path` field (NUL padded).
pub const PATH_LEN: usize = 256;
/// Length of the device block ([`UsbDevice`]) on the wire.
pub const USB_DEVICE_LEN: usize = 312;
/// Length of one interface block ([`UsbInterface`]) in OP_REP_DEVLIST.
pub const USB_INTERFACE_LEN: usize = 4;

/// The `status` field of an op header. Unknown values are kept.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct OpStatus(pub u32);

impl OpStatus {
    /// Request completed successfully.
    pub const OK: OpStatus = OpStatus(0);
    /// Request failed: not available.
    pub const NA: OpStatus = OpStatus(1);
    /// The device is busy (already imported).
    pub const DEV_BUSY: OpStatus = OpStatus(2);
    /// The device is in an error state.
    pub const DEV_ERR: OpStatus = OpStatus(3);
    /// No such device.
    pub const NODEV: OpStatus = OpStatus(4);
    /// Unexpected response / generic error.
    pub const ERROR: OpStatus = OpStatus(5);

    /// Whether this is [`OpStatus::OK`].
    pub const fn is_ok(self) -> bool {
        self.0 == 0
    }

    /// The name of a known status (`"OK"`, `"NODEV"`, ...), `None` for others.
    pub const fn name(self) -> Option<&'static str> {
        match self.0 {
            0 => Some("OK"),
            1 => Some("NA"),
            2 => Some("DEV_BUSY"),
            3 => Some("DEV_ERR"),
            4 => Some("NODEV"),
            5 => Some("ERROR"),
            _ => None,
        }
    }
}

impl fmt::Debug for OpStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "OpStatus::{name}"),
            None => write!(f, "OpStatus({})", self.0),
        }
    }
}

impl fmt::Display for OpStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({})", self.0),
            None => write!(f, "unknown status {}", self.0),
        }
    }
}

/// The USB/IP speed number of a device (`enum usb_device_speed`). Unknown values are kept.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct UsbSpeed(pub u32);

impl UsbSpeed {
    /// Speed not known.
    pub const UNKNOWN: UsbSpeed = UsbSpeed(0);
    /// Low speed, 1.5 Mbit/s.
    pub const LOW: UsbSpeed = UsbSpeed(1);
    /// Full speed, 12 Mbit/s.
    pub const FULL: UsbSpeed = UsbSpeed(2);
    /// High speed, 480 Mbit/s.
    pub const HIGH: UsbSpeed = UsbSpeed(3);
    /// Wireless USB.
    pub const WIRELESS: UsbSpeed = UsbSpeed(4);
    /// SuperSpeed, 5 Gbit/s.
    pub const SUPER: UsbSpeed = UsbSpeed(5);
    /// SuperSpeed Plus, 10 Gbit/s and up.
    pub const SUPER_PLUS: UsbSpeed = UsbSpeed(6);

    /// The name of a known speed, `None` for others.
    pub const fn name(self) -> Option<&'static str> {
        match self.0 {
            0 => Some("unknown"),
            1 => Some("low"),
            2 => Some("full"),
            3 => Some("high"),
            4 => Some("wireless"),
            5 => Some("super"),
            6 => Some("super-plus"),
            _ => None,
        }
    }
}

impl fmt::Debug for UsbSpeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "UsbSpeed({name})"),
            None => write!(f, "UsbSpeed({})", self.0),
        }
    }
}

impl fmt::Display for UsbSpeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "speed {}", self.0),
        }
    }
}

/// A bus id such as `"1-1"`: 1 to 31 printable ASCII characters (no spaces), sent NUL padded
/// in a 32-byte field.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BusId(String);

impl BusId {
    /// Validates `s` as a bus id.
    pub fn new(s: &str) -> Result<BusId, ProtoError> {
        let invalid = |reason| ProtoError::InvalidString {
            field: "busid",
            reason,
        };
        if s.is_empty() {
            return Err(invalid("empty"));
        }
        if s.len() >= BUSID_LEN {
            return Err(invalid("longer than 31 bytes"));
        }
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid("not printable ASCII without spaces"));
        }
        Ok(BusId(s.to_owned()))
    }

    /// The bus id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn from_field(field: &[u8]) -> Result<BusId, ProtoError> {
        BusId::new(field_str(field, "busid")?)
    }
}

impl fmt::Display for BusId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for BusId {
    type Err = ProtoError;
    fn from_str(s: &str) -> Result<BusId, ProtoError> {
        BusId::new(s)
    }
}

impl AsRef<str> for BusId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// The sysfs-style path of an exported device: at most 255 bytes of UTF-8 without NUL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct DevicePath(String);

impl DevicePath {
    /// Validates `s` as a device path.
    pub fn new(s: &str) -> Result<DevicePath, ProtoError> {
        let invalid = |reason| ProtoError::InvalidString {
            field: "path",
            reason,
        };
        if s.len() >= PATH_LEN {
            return Err(invalid("longer than 255 bytes"));
        }
        if s.contains('\0') {
            return Err(invalid("contains NUL"));
        }
        Ok(DevicePath(s.to_owned()))
    }

    /// The path as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DevicePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The 312-byte device block of OP_REP_DEVLIST and OP_REP_IMPORT (`struct usbip_usb_device`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsbDevice {
    /// Device path (sysfs path on Linux servers).
    pub path: DevicePath,
    /// Bus id the client names in OP_REQ_IMPORT.
    pub busid: BusId,
    /// Bus number.
    pub busnum: u32,
    /// Device number on that bus.
    pub devnum: u32,
    /// Speed the device runs at.
    pub speed: UsbSpeed,
    /// `idVendor` of the device descriptor.
    #[doc(alias = "idVendor")]
    pub id_vendor: u16,
    /// `idProduct`.
    #[doc(alias = "idProduct")]
    pub id_product: u16,
    /// `bcdDevice`.
    #[doc(alias = "bcdDevice")]
    pub bcd_device: u16,
    /// `bDeviceClass`.
    #[doc(alias = "bDeviceClass")]
    pub b_device_class: u8,
    /// `bDeviceSubClass`.
    #[doc(alias = "bDeviceSubClass")]
    pub b_device_sub_class: u8,
    /// `bDeviceProtocol`.
    #[doc(alias = "bDeviceProtocol")]
    pub b_device_protocol: u8,
    /// `bConfigurationValue` of the active configuration (0 when unconfigured).
    #[doc(alias = "bConfigurationValue")]
    pub b_configuration_value: u8,
    /// `bNumConfigurations`.
    #[doc(alias = "bNumConfigurations")]
    pub b_num_configurations: u8,
    /// `bNumInterfaces` of the active configuration; OP_REP_DEVLIST sends this many
    /// interface blocks after the device block.
    #[doc(alias = "bNumInterfaces")]
    pub b_num_interfaces: u8,
}

/// One 4-byte interface block of OP_REP_DEVLIST (`struct usbip_usb_interface`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UsbInterface {
    /// `bInterfaceClass`.
    #[doc(alias = "bInterfaceClass")]
    pub b_interface_class: u8,
    /// `bInterfaceSubClass`.
    #[doc(alias = "bInterfaceSubClass")]
    pub b_interface_sub_class: u8,
    /// `bInterfaceProtocol`.
    #[doc(alias = "bInterfaceProtocol")]
    pub b_interface_protocol: u8,
}

/// One entry of OP_REP_DEVLIST: the device block and its interfaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedDevice {
    /// The device block.
    pub device: UsbDevice,
    /// `device.b_num_interfaces` interface blocks.
    pub interfaces: Vec<UsbInterface>,
}

/// The 8-byte header of every op message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpHeader {
    /// Protocol version ([`USBIP_VERSION`]).
    pub version: u16,
    /// Op code (`OP_REQ_*` / `OP_REP_*`).
    pub code: u16,
    /// Status; requests send 0.
    pub status: OpStatus,
}

/// A request the client sends on a fresh connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpRequest {
    /// OP_REQ_DEVLIST.
    Devlist,
    /// OP_REQ_IMPORT of one bus id.
    Import {
        /// The bus id to import.
        busid: BusId,
    },
}

/// A reply the server sends to an [`OpRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpReply {
    /// OP_REP_DEVLIST. Devices follow only when `status` is OK.
    Devlist {
        /// Status of the request.
        status: OpStatus,
        /// The exported devices.
        devices: Vec<ExportedDevice>,
    },
    /// OP_REP_IMPORT. The device block follows only when `status` is OK.
    Import {
        /// Status of the request.
        status: OpStatus,
        /// The imported device; `Some` exactly when `status` is OK.
        device: Option<UsbDevice>,
    },
}

impl UsbDevice {
    /// The `devid` a client puts in URB headers: `busnum << 16 | devnum`.
    pub const fn devid(&self) -> u32 {
        (self.busnum << 16) | self.devnum
    }

    /// Appends the 312-byte block.
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.reserve(USB_DEVICE_LEN);
        put_padded(dst, self.path.as_str().as_bytes(), PATH_LEN);
        put_padded(dst, self.busid.as_str().as_bytes(), BUSID_LEN);
        dst.put_u32(self.busnum);
        dst.put_u32(self.devnum);
        dst.put_u32(self.speed.0);
        dst.put_u16(self.id_vendor);
        dst.put_u16(self.id_product);
        dst.put_u16(self.bcd_device);
        dst.put_u8(self.b_device_class);
        dst.put_u8(self.b_device_sub_class);
        dst.put_u8(self.b_device_protocol);
        dst.put_u8(self.b_configuration_value);
        dst.put_u8(self.b_num_configurations);
        dst.put_u8(self.b_num_interfaces);
    }

    /// Parses a 312-byte block.
    pub fn parse(block: &[u8; USB_DEVICE_LEN]) -> Result<UsbDevice, ProtoError> {
        let (path, rest) = block.split_at(PATH_LEN);
        let (busid, mut rest) = rest.split_at(BUSID_LEN);
        // `rest` is exactly 24 bytes: 3 × u32, 3 × u16, 6 × u8, as the getters consume.
        Ok(UsbDevice {
            path: DevicePath::new(field_str(path, "path")?)?,
            busid: BusId::from_field(busid)?,
            busnum: rest.get_u32(),
            devnum: rest.get_u32(),
            speed: UsbSpeed(rest.get_u32()),
            id_vendor: rest.get_u16(),
            id_product: rest.get_u16(),
            bcd_device: rest.get_u16(),
            b_device_class: rest.get_u8(),
            b_device_sub_class: rest.get_u8(),
            b_device_protocol: rest.get_u8(),
            b_configuration_value: rest.get_u8(),
            b_num_configurations: rest.get_u8(),
            b_num_interfaces: rest.get_u8(),
        })
    }
}

impl UsbInterface {
    /// Appends the 4-byte block (the pad byte is 0).
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.put_slice(&[
            self.b_interface_class,
            self.b_interface_sub_class,
            self.b_interface_protocol,
            0,
        ]);
    }

    /// Parses a 4-byte block (the pad byte is ignored).
    pub const fn parse(block: [u8; USB_INTERFACE_LEN]) -> UsbInterface {
        UsbInterface {
            b_interface_class: block[0],
            b_interface_sub_class: block[1],
            b_interface_protocol: block[2],
        }
    }
}

impl OpHeader {
    /// A header with [`USBIP_VERSION`].
    pub const fn new(code: u16, status: OpStatus) -> OpHeader {
        OpHeader {
            version: USBIP_VERSION,
            code,
            status,
        }
    }

    /// Appends the 8-byte header.
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.put_u16(self.version);
        dst.put_u16(self.code);
        dst.put_u32(self.status.0);
    }

    /// Parses the first 8 bytes of `buf` (`None` when fewer are there). Any version is
    /// returned; the message decoders reject versions other than [`USBIP_VERSION`].
    pub fn peek(buf: &[u8]) -> Option<OpHeader> {
        let mut b = buf.get(..OP_HEADER_LEN)?;
        Some(OpHeader {
            version: b.get_u16(),
            code: b.get_u16(),
            status: OpStatus(b.get_u32()),
        })
    }

    fn check_version(&self) -> Result<(), ProtoError> {
        if self.version == USBIP_VERSION {
            Ok(())
        } else {
            Err(ProtoError::VersionMismatch {
                version: self.version,
            })
        }
    }
}

impl OpRequest {
    /// Appends the request.
    pub fn encode(&self, dst: &mut BytesMut) {
        match self {
            OpRequest::Devlist => OpHeader::new(OP_REQ_DEVLIST, OpStatus::OK).encode(dst),
            OpRequest::Import { busid } => {
                OpHeader::new(OP_REQ_IMPORT, OpStatus::OK).encode(dst);
                put_padded(dst, busid.as_str().as_bytes(), BUSID_LEN);
            }
        }
    }

    /// Server side: decodes one request from the front of `buf`; `Ok(None)` means "need more".
    pub fn decode(buf: &mut BytesMut) -> Result<Option<OpRequest>, ProtoError> {
        let Some(header) = OpHeader::peek(buf) else {
            return need(buf, OP_HEADER_LEN);
        };
        header.check_version()?;
        match header.code {
            OP_REQ_DEVLIST => {
                buf.advance(OP_HEADER_LEN);
                Ok(Some(OpRequest::Devlist))
            }
            OP_REQ_IMPORT => {
                let total = OP_HEADER_LEN + BUSID_LEN;
                let Some(field) = buf.get(OP_HEADER_LEN..total) else {
                    return need(buf, total);
                };
                let busid = BusId::from_field(field)?;
                buf.advance(total);
                Ok(Some(OpRequest::Import { busid }))
            }
            code => Err(ProtoError::UnexpectedOpCode {
                code,
                expected: "OP_REQ_DEVLIST or OP_REQ_IMPORT",
            }),
        }
    }
}

impl OpReply {
    /// The reply's status.
    pub const fn status(&self) -> OpStatus {
        match self {
            OpReply::Devlist { status, .. } | OpReply::Import { status, .. } => *status,
        }
    }

    /// Appends the reply. Fails (appending nothing) when the reply is inconsistent: an OK
    /// import without a device, a device whose `b_num_interfaces` differs from its interface
    /// list, or more devices than fit the `u32` count.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), ProtoError> {
        match self {
            OpReply::Devlist { status, devices } => {
                if !status.is_ok() {
                    OpHeader::new(OP_REP_DEVLIST, *status).encode(dst);
                    return Ok(());
                }
                let ndev = u32::try_from(devices.len()).map_err(|_| ProtoError::LimitExceeded {
                    message: "OP_REP_DEVLIST",
                    field: "ndev",
                    value: devices.len() as u64,
                    limit: Limit::MaxDevices,
                    max: u32::MAX.into(),
                })?;
                for d in devices {
                    if usize::from(d.device.b_num_interfaces) != d.interfaces.len() {
                        return Err(ProtoError::Inconsistent {
                            message: "OP_REP_DEVLIST",
                            what: "interfaces",
                            actual: d.interfaces.len() as u64,
                            expected: d.device.b_num_interfaces.into(),
                        });
                    }
                }
                OpHeader::new(OP_REP_DEVLIST, *status).encode(dst);
                dst.put_u32(ndev);
                for d in devices {
                    d.device.encode(dst);
                    for i in &d.interfaces {
                        i.encode(dst);
                    }
                }
                Ok(())
            }
            OpReply::Import { status, device } => match (status.is_ok(), device) {
                (true, Some(device)) => {
                    OpHeader::new(OP_REP_IMPORT, *status).encode(dst);
                    device.encode(dst);
                    Ok(())
                }
                (true, None) => Err(ProtoError::Malformed {
                    message: "OP_REP_IMPORT",
                    reason: "status OK needs a device block",
                }),
                (false, _) => {
                    OpHeader::new(OP_REP_IMPORT, *status).encode(dst);
                    Ok(())
                }
            },
        }
    }

    /// Client side: decodes one reply from the front of `buf`; `Ok(None)` means "need more".
    /// The device count of OP_REP_DEVLIST is checked against `limits.max_devices` before
    /// anything is allocated.
    pub fn decode(buf: &mut BytesMut, limits: &Limits) -> Result<Option<OpReply>, ProtoError> {
        let Some(header) = OpHeader::peek(buf) else {
            return need(buf, OP_HEADER_LEN);
        };
        header.check_version()?;
        match header.code {
            OP_REP_DEVLIST => decode_devlist(buf, header.status, limits),
            OP_REP_IMPORT => {
                if !header.status.is_ok() {
                    buf.advance(OP_HEADER_LEN);
                    return Ok(Some(OpReply::Import {
                        status: header.status,
                        device: None,
                    }));
                }
                let total = OP_HEADER_LEN + USB_DEVICE_LEN;
                let Some(block) = device_block(buf, OP_HEADER_LEN) else {
                    return need(buf, total);
                };
                let device = UsbDevice::parse(block)?;
                buf.advance(total);
                Ok(Some(OpReply::Import {
                    status: header.status,
                    device: Some(device),
                }))
            }
            code => Err(ProtoError::UnexpectedOpCode {
                code,
                expected: "OP_REP_DEVLIST or OP_REP_IMPORT",
            }),
        }
    }
}

fn decode_devlist(
    buf: &mut BytesMut,
    status: OpStatus,
    limits: &Limits,
) -> Result<Option<OpReply>, ProtoError> {
    if !status.is_ok() {
        buf.advance(OP_HEADER_LEN);
        return Ok(Some(OpReply::Devlist {
            status,
            devices: Vec::new(),
        }));
    }
    let Some(mut count) = buf.get(OP_HEADER_LEN..OP_HEADER_LEN + 4) else {
        return need(buf, OP_HEADER_LEN + 4);
    };
    let ndev = count.get_u32();
    if u64::from(ndev) > limits.max_devices as u64 {
        return Err(ProtoError::LimitExceeded {
            message: "OP_REP_DEVLIST",
            field: "ndev",
            value: ndev.into(),
            limit: Limit::MaxDevices,
            max: limits.max_devices as u64,
        });
    }
    // First pass: find the end without allocating, so a partial reply costs nothing.
    let mut end = OP_HEADER_LEN + 4;
    for _ in 0..ndev {
        let Some(block) = device_block(buf, end) else {
            return need(buf, end + USB_DEVICE_LEN);
        };
        end += USB_DEVICE_LEN + USB_INTERFACE_LEN * usize::from(block[USB_DEVICE_LEN - 1]);
    }
    if buf.len() < end {
        return need(buf, end);
    }
    let msg = buf.split_to(end);
    let mut at = OP_HEADER_LEN + 4;
    // ndev <= max_devices was checked above, so this allocation is bounded.
    let mut devices = Vec::with_capacity(ndev as usize);
    for _ in 0..ndev {
        let Some(block) = device_block(&msg, at) else {
            break; // unreachable: the first pass proved every block is present
        };
        let device = UsbDevice::parse(block)?;
        at += USB_DEVICE_LEN;
        let mut interfaces = Vec::with_capacity(usize::from(device.b_num_interfaces));
        for _ in 0..device.b_num_interfaces {
            if let Some(&[a, b, c, d]) = msg.get(at..at + USB_INTERFACE_LEN) {
                interfaces.push(UsbInterface::parse([a, b, c, d]));
            }
            at += USB_INTERFACE_LEN;
        }
        devices.push(ExportedDevice { device, interfaces });
    }
    Ok(Some(OpReply::Devlist { status, devices }))
}

/// The 312-byte block at `at`, if the buffer holds it.
fn device_block(buf: &[u8], at: usize) -> Option<&[u8; USB_DEVICE_LEN]> {
    buf.get(at..at.checked_add(USB_DEVICE_LEN)?)?
        .try_into()
        .ok()
}

/// "Need more": reserve room for the whole message (callers bound `total`) and wait.
pub(super) fn need<T>(buf: &mut BytesMut, total: usize) -> Result<Option<T>, ProtoError> {
    buf.reserve(total.saturating_sub(buf.len()));
    Ok(None)
}

/// Writes `s` NUL padded to `width` bytes (validated strings are always shorter).
fn put_padded(dst: &mut BytesMut, s: &[u8], width: usize) {
    let n = s.len().min(width.saturating_sub(1));
    dst.put_slice(s.get(..n).unwrap_or_default());
    dst.put_bytes(0, width - n);
}

/// The NUL-terminated string at the start of a fixed-width field.
fn field_str<'a>(field: &'a [u8], name: &'static str) -> Result<&'a str, ProtoError> {
    let Some(nul) = field.iter().position(|&b| b == 0) else {
        return Err(ProtoError::InvalidString {
            field: name,
            reason: "not NUL-terminated",
        });
    };
    std::str::from_utf8(&field[..nul]).map_err(|_| ProtoError::InvalidString {
        field: name,
        reason: "not UTF-8",
    })
}

#[cfg(test)]
#[path = "op_tests.rs"]
mod tests;
