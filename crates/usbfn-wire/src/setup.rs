//! The 8-byte SETUP packet that starts every control transfer (USB 2.0 §9.3).

use core::fmt;

use crate::{DescriptorType, FeatureSelector, StandardRequest, WireError};

/// A control request: the 8 bytes of a SETUP packet (USB 2.0 §9.3, table 9-2).
///
/// Fields are public and named after the spec (searchable by their spec names). Multi-byte
/// fields are little-endian on the wire; [`from_bytes`](Self::from_bytes) and
/// [`to_bytes`](Self::to_bytes) convert.
///
/// `Display` prints the raw fields in hex, `SETUP c0 5c 0000 0000 0010`; the alternate form
/// (`{:#}`) spells the request out.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SetupPacket {
    /// Direction (bit 7), type (bits 6..5) and recipient (bits 4..0) of the request.
    #[doc(alias = "bmRequestType")]
    pub bm_request_type: u8,
    /// The request code; see [`StandardRequest`] for standard requests.
    #[doc(alias = "bRequest")]
    pub b_request: u8,
    /// Request-specific parameter.
    #[doc(alias = "wValue")]
    pub w_value: u16,
    /// Request-specific parameter, often an interface or endpoint number.
    #[doc(alias = "wIndex")]
    pub w_index: u16,
    /// Length of the data stage; 0 means no data stage.
    #[doc(alias = "wLength")]
    pub w_length: u16,
}

/// Direction of a control request's data stage or of an endpoint.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Direction {
    /// Host to device.
    Out,
    /// Device to host.
    In,
}

/// The type of a control request (bits 6..5 of `bmRequestType`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum RequestType {
    /// Defined by chapter 9.
    Standard,
    /// Defined by a device class.
    Class,
    /// Defined by the vendor.
    Vendor,
    /// The reserved value 3.
    Reserved,
}

/// The recipient of a control request (bits 4..0 of `bmRequestType`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Recipient {
    /// The device.
    Device,
    /// The interface numbered by the low byte of `wIndex`.
    Interface,
    /// The endpoint addressed by the low byte of `wIndex`.
    Endpoint,
    /// Other.
    Other,
    /// A reserved value (4..=31), kept as found. When encoding, only the low 5 bits are used;
    /// `Reserved(0..=3)` therefore encodes as one of the named recipients.
    Reserved(u8),
}

impl SetupPacket {
    /// Size of a SETUP packet on the wire.
    pub const SIZE: usize = 8;

    /// Builds a request from its parts.
    pub const fn new(
        direction: Direction,
        request_type: RequestType,
        recipient: Recipient,
        b_request: u8,
        w_value: u16,
        w_index: u16,
        w_length: u16,
    ) -> Self {
        Self {
            bm_request_type: direction.bm_request_type_bits()
                | request_type.bm_request_type_bits()
                | recipient.bm_request_type_bits(),
            b_request,
            w_value,
            w_index,
            w_length,
        }
    }

    /// Decodes the 8 wire bytes.
    pub const fn from_bytes(b: [u8; 8]) -> Self {
        Self {
            bm_request_type: b[0],
            b_request: b[1],
            w_value: u16::from_le_bytes([b[2], b[3]]),
            w_index: u16::from_le_bytes([b[4], b[5]]),
            w_length: u16::from_le_bytes([b[6], b[7]]),
        }
    }

    /// Decodes the first 8 bytes of `bytes`; bytes after them are ignored.
    ///
    /// Fails with [`WireError::Truncated`] when fewer than 8 bytes are given.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        match bytes.first_chunk::<8>() {
            Some(b) => Ok(Self::from_bytes(*b)),
            None => Err(WireError::Truncated {
                what: "setup packet",
                needed: Self::SIZE,
                available: bytes.len(),
            }),
        }
    }

    /// Encodes the 8 wire bytes.
    pub const fn to_bytes(&self) -> [u8; 8] {
        let [v0, v1] = self.w_value.to_le_bytes();
        let [i0, i1] = self.w_index.to_le_bytes();
        let [l0, l1] = self.w_length.to_le_bytes();
        [self.bm_request_type, self.b_request, v0, v1, i0, i1, l0, l1]
    }

    /// Direction of the data stage (bit 7 of `bmRequestType`).
    pub const fn direction(&self) -> Direction {
        Direction::from_bm_request_type(self.bm_request_type)
    }

    /// Whether the data stage (if any) goes device to host.
    pub const fn is_in(&self) -> bool {
        self.direction().is_in()
    }

    /// Request type (bits 6..5 of `bmRequestType`).
    pub const fn request_type(&self) -> RequestType {
        RequestType::from_bm_request_type(self.bm_request_type)
    }

    /// Recipient (bits 4..0 of `bmRequestType`).
    pub const fn recipient(&self) -> Recipient {
        Recipient::from_bm_request_type(self.bm_request_type)
    }

    /// Whether there is a data stage (`wLength != 0`).
    pub const fn has_data_stage(&self) -> bool {
        self.w_length != 0
    }

    /// The standard request code, if this is a standard request.
    pub const fn standard_request(&self) -> Option<StandardRequest> {
        match self.request_type() {
            RequestType::Standard => Some(StandardRequest(self.b_request)),
            _ => None,
        }
    }

    /// For GET_DESCRIPTOR / SET_DESCRIPTOR: the descriptor type (high byte of `wValue`).
    pub const fn descriptor_type(&self) -> DescriptorType {
        DescriptorType(self.w_value.to_le_bytes()[1])
    }

    /// For GET_DESCRIPTOR / SET_DESCRIPTOR: the descriptor index (low byte of `wValue`).
    pub const fn descriptor_index(&self) -> u8 {
        self.w_value.to_le_bytes()[0]
    }

    /// The low byte of `wIndex`: the interface number or endpoint address for interface and
    /// endpoint recipients.
    pub const fn index_low(&self) -> u8 {
        self.w_index.to_le_bytes()[0]
    }

    /// A standard GET_DESCRIPTOR request (language ID only matters for strings).
    pub const fn get_descriptor(
        descriptor_type: DescriptorType,
        index: u8,
        language_id: u16,
        length: u16,
    ) -> Self {
        Self::new(
            Direction::In,
            RequestType::Standard,
            Recipient::Device,
            StandardRequest::GET_DESCRIPTOR.0,
            u16::from_le_bytes([index, descriptor_type.0]),
            language_id,
            length,
        )
    }

    /// A standard SET_ADDRESS request.
    pub const fn set_address(address: u8) -> Self {
        let request = StandardRequest::SET_ADDRESS.0;
        Self::standard_out(Recipient::Device, request, address as u16, 0)
    }

    /// A standard SET_CONFIGURATION request.
    pub const fn set_configuration(value: u8) -> Self {
        let request = StandardRequest::SET_CONFIGURATION.0;
        Self::standard_out(Recipient::Device, request, value as u16, 0)
    }

    /// A standard GET_CONFIGURATION request.
    pub const fn get_configuration() -> Self {
        let request = StandardRequest::GET_CONFIGURATION.0;
        Self::new(
            Direction::In,
            RequestType::Standard,
            Recipient::Device,
            request,
            0,
            0,
            1,
        )
    }

    /// A standard SET_INTERFACE request.
    pub const fn set_interface(interface: u8, alternate_setting: u8) -> Self {
        let request = StandardRequest::SET_INTERFACE.0;
        Self::standard_out(
            Recipient::Interface,
            request,
            alternate_setting as u16,
            interface as u16,
        )
    }

    /// A standard GET_INTERFACE request.
    pub const fn get_interface(interface: u8) -> Self {
        let request = StandardRequest::GET_INTERFACE.0;
        let (dir, ty, rec) = (Direction::In, RequestType::Standard, Recipient::Interface);
        Self::new(dir, ty, rec, request, 0, interface as u16, 1)
    }

    /// A standard GET_STATUS request; `index` is 0, an interface number or an endpoint address.
    pub const fn get_status(recipient: Recipient, index: u16) -> Self {
        let request = StandardRequest::GET_STATUS.0;
        Self::new(
            Direction::In,
            RequestType::Standard,
            recipient,
            request,
            0,
            index,
            2,
        )
    }

    /// A standard SET_FEATURE request.
    pub const fn set_feature(recipient: Recipient, feature: FeatureSelector, index: u16) -> Self {
        Self::standard_out(recipient, StandardRequest::SET_FEATURE.0, feature.0, index)
    }

    /// A standard CLEAR_FEATURE request.
    pub const fn clear_feature(recipient: Recipient, feature: FeatureSelector, index: u16) -> Self {
        Self::standard_out(
            recipient,
            StandardRequest::CLEAR_FEATURE.0,
            feature.0,
            index,
        )
    }

    const fn standard_out(recipient: Recipient, request: u8, w_value: u16, w_index: u16) -> Self {
        Self::new(
            Direction::Out,
            RequestType::Standard,
            recipient,
            request,
            w_value,
            w_index,
            0,
        )
    }
}

impl Direction {
    /// Direction from bit 7 of an endpoint address.
    pub const fn from_endpoint_address(address: u8) -> Self {
        if address & 0x80 != 0 {
            Self::In
        } else {
            Self::Out
        }
    }

    /// Direction from bit 7 of `bmRequestType`.
    pub const fn from_bm_request_type(bm_request_type: u8) -> Self {
        Self::from_endpoint_address(bm_request_type)
    }

    /// Bit 7 set for IN, clear for OUT (the same in `bmRequestType` and endpoint addresses).
    pub const fn bm_request_type_bits(self) -> u8 {
        match self {
            Self::Out => 0,
            Self::In => 0x80,
        }
    }

    /// Whether this is device to host.
    pub const fn is_in(self) -> bool {
        matches!(self, Self::In)
    }

    /// Whether this is host to device.
    pub const fn is_out(self) -> bool {
        matches!(self, Self::Out)
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Out => "OUT",
            Self::In => "IN",
        })
    }
}

impl RequestType {
    /// Request type from bits 6..5 of `bmRequestType`.
    pub const fn from_bm_request_type(bm_request_type: u8) -> Self {
        match (bm_request_type >> 5) & 0x3 {
            0 => Self::Standard,
            1 => Self::Class,
            2 => Self::Vendor,
            _ => Self::Reserved,
        }
    }

    /// Bits 6..5 of `bmRequestType`.
    pub const fn bm_request_type_bits(self) -> u8 {
        match self {
            Self::Standard => 0,
            Self::Class => 1 << 5,
            Self::Vendor => 2 << 5,
            Self::Reserved => 3 << 5,
        }
    }
}

impl Recipient {
    /// Recipient from bits 4..0 of `bmRequestType`.
    pub const fn from_bm_request_type(bm_request_type: u8) -> Self {
        match bm_request_type & 0x1f {
            0 => Self::Device,
            1 => Self::Interface,
            2 => Self::Endpoint,
            3 => Self::Other,
            other => Self::Reserved(other),
        }
    }

    /// Bits 4..0 of `bmRequestType`.
    pub const fn bm_request_type_bits(self) -> u8 {
        match self {
            Self::Device => 0,
            Self::Interface => 1,
            Self::Endpoint => 2,
            Self::Other => 3,
            Self::Reserved(bits) => bits & 0x1f,
        }
    }
}

impl fmt::Debug for SetupPacket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SetupPacket")
            .field(
                "bm_request_type",
                &format_args!("{:#04x}", self.bm_request_type),
            )
            .field("b_request", &format_args!("{:#04x}", self.b_request))
            .field("w_value", &format_args!("{:#06x}", self.w_value))
            .field("w_index", &format_args!("{:#06x}", self.w_index))
            .field("w_length", &self.w_length)
            .finish()
    }
}

impl fmt::Display for SetupPacket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !f.alternate() {
            return write!(
                f,
                "SETUP {:02x} {:02x} {:04x} {:04x} {:04x}",
                self.bm_request_type, self.b_request, self.w_value, self.w_index, self.w_length
            );
        }
        write!(
            f,
            "{} {:?} {:?} ",
            self.direction(),
            self.request_type(),
            self.recipient()
        )?;
        match self.standard_request().and_then(StandardRequest::name) {
            Some(name) => f.write_str(name)?,
            None => write!(f, "bRequest={:#04x}", self.b_request)?,
        }
        if self.standard_request() == Some(StandardRequest::GET_DESCRIPTOR) {
            write!(
                f,
                " {} #{}",
                self.descriptor_type(),
                self.descriptor_index()
            )?;
        } else {
            write!(f, " wValue={:#06x}", self.w_value)?;
        }
        write!(f, " wIndex={:#06x} wLength={}", self.w_index, self.w_length)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn get_device_descriptor_bytes() {
        // What every host sends first: GET_DESCRIPTOR(DEVICE), 64 bytes.
        let bytes = [0x80, 0x06, 0x00, 0x01, 0x00, 0x00, 0x40, 0x00];
        let setup = SetupPacket::parse(&bytes).unwrap();
        assert_eq!(
            setup,
            SetupPacket::get_descriptor(DescriptorType::DEVICE, 0, 0, 64)
        );
        assert_eq!(setup.direction(), Direction::In);
        assert_eq!(setup.request_type(), RequestType::Standard);
        assert_eq!(setup.recipient(), Recipient::Device);
        assert_eq!(
            setup.standard_request(),
            Some(StandardRequest::GET_DESCRIPTOR)
        );
        assert_eq!(setup.descriptor_type(), DescriptorType::DEVICE);
        assert_eq!(setup.descriptor_index(), 0);
        assert_eq!(setup.w_length, 64);
        assert_eq!(setup.to_bytes(), bytes);
    }

    #[test]
    fn vendor_request_display() {
        let setup = SetupPacket::from_bytes([0xc0, 0x5c, 0, 0, 0, 0, 0x10, 0]);
        assert_eq!(setup.to_string(), "SETUP c0 5c 0000 0000 0010");
        assert_eq!(setup.request_type(), RequestType::Vendor);
        assert_eq!(setup.standard_request(), None);
        assert_eq!(
            format!("{setup:#}"),
            "IN Vendor Device bRequest=0x5c wValue=0x0000 wIndex=0x0000 wLength=16"
        );
        let get = SetupPacket::get_descriptor(DescriptorType::STRING, 2, 0x0409, 255);
        assert_eq!(
            format!("{get:#}"),
            "IN Standard Device GET_DESCRIPTOR STRING #2 wIndex=0x0409 wLength=255"
        );
        assert!(format!("{get:?}").contains("w_index: 0x0409"));
    }

    #[test]
    fn short_setup_packet_is_an_error() {
        for len in 0..8 {
            let err = SetupPacket::parse(&[0u8; 8][..len]).unwrap_err();
            assert_eq!(
                err,
                WireError::Truncated {
                    what: "setup packet",
                    needed: 8,
                    available: len
                }
            );
        }
        // Trailing bytes are ignored.
        assert!(SetupPacket::parse(&[0u8; 12]).is_ok());
    }

    #[test]
    fn constructors() {
        let clear =
            SetupPacket::clear_feature(Recipient::Endpoint, FeatureSelector::ENDPOINT_HALT, 0x81);
        assert_eq!(
            clear.to_bytes(),
            [0x02, 0x01, 0x00, 0x00, 0x81, 0x00, 0x00, 0x00]
        );
        assert_eq!(clear.index_low(), 0x81);
        let set_if = SetupPacket::set_interface(1, 2);
        assert_eq!(
            set_if.to_bytes(),
            [0x01, 0x0b, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00]
        );
        assert_eq!(
            SetupPacket::set_address(7).to_bytes(),
            [0, 5, 7, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            SetupPacket::set_configuration(1).to_bytes(),
            [0, 9, 1, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            SetupPacket::get_configuration().to_bytes(),
            [0x80, 8, 0, 0, 0, 0, 1, 0]
        );
        assert_eq!(
            SetupPacket::get_interface(3).to_bytes(),
            [0x81, 10, 0, 0, 3, 0, 1, 0]
        );
        let status = SetupPacket::get_status(Recipient::Device, 0);
        assert_eq!(status.to_bytes(), [0x80, 0, 0, 0, 0, 0, 2, 0]);
        let wake =
            SetupPacket::set_feature(Recipient::Device, FeatureSelector::DEVICE_REMOTE_WAKEUP, 0);
        assert_eq!(wake.to_bytes(), [0, 3, 1, 0, 0, 0, 0, 0]);
        assert!(!wake.has_data_stage());
    }

    #[test]
    fn bm_request_type_fields() {
        let class_if_out = SetupPacket::from_bytes([0x21, 0x09, 0, 2, 0, 0, 1, 0]);
        assert_eq!(class_if_out.direction(), Direction::Out);
        assert_eq!(class_if_out.request_type(), RequestType::Class);
        assert_eq!(class_if_out.recipient(), Recipient::Interface);
        let reserved = SetupPacket::from_bytes([0xff, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(reserved.request_type(), RequestType::Reserved);
        assert_eq!(reserved.recipient(), Recipient::Reserved(0x1f));
        assert_eq!(Recipient::Other.bm_request_type_bits(), 3);
        assert!(Direction::from_endpoint_address(0x81).is_in());
        assert!(Direction::from_endpoint_address(0x01).is_out());
    }

    proptest! {
        #[test]
        fn bytes_round_trip(bytes in any::<[u8; 8]>()) {
            let setup = SetupPacket::from_bytes(bytes);
            prop_assert_eq!(setup.to_bytes(), bytes);
            prop_assert_eq!(SetupPacket::parse(&bytes), Ok(setup));
            let rebuilt = SetupPacket::new(
                setup.direction(),
                setup.request_type(),
                setup.recipient(),
                setup.b_request,
                setup.w_value,
                setup.w_index,
                setup.w_length,
            );
            prop_assert_eq!(rebuilt, setup);
            let _ = format!("{setup} {setup:#} {setup:?}");
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
            prop_assert_eq!(SetupPacket::parse(&bytes).is_ok(), bytes.len() >= 8);
        }
    }
}
