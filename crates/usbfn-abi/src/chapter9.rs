//! The two byte-packed chapter-9 structures the GenericUSBFn ABI embeds.
//!
//! Both are kept raw (every field as sent, no validation): interpreting setup packets and
//! descriptors is the job of the wire and core crates.

use crate::AbiError;
use crate::codec::{Reader, Writer, fixed_size};
use crate::limits::USBFN_INTERRUPT_ENDPOINT_SIZE_NOT_UPDATEABLE_MASK;

/// `USB_DEFAULT_PIPE_SETUP_PACKET`: the 8 bytes of a setup packet, fields uninterpreted.
///
/// ```
/// use usbfn_abi::SetupPacketRaw;
/// // GET_DESCRIPTOR(Device), 18 bytes.
/// let setup = SetupPacketRaw::from_bytes([0x80, 0x06, 0x00, 0x01, 0x00, 0x00, 0x12, 0x00]);
/// assert_eq!(setup.value, 0x0100);
/// assert!(setup.is_device_to_host());
/// assert_eq!(setup.to_bytes()[6], 0x12);
/// ```
#[doc(alias = "USB_DEFAULT_PIPE_SETUP_PACKET")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SetupPacketRaw {
    /// `bmRequestType`.
    #[doc(alias = "bmRequestType")]
    pub request_type: u8,
    /// `bRequest`.
    #[doc(alias = "bRequest")]
    pub request: u8,
    /// `wValue`.
    #[doc(alias = "wValue")]
    pub value: u16,
    /// `wIndex`.
    #[doc(alias = "wIndex")]
    pub index: u16,
    /// `wLength`.
    #[doc(alias = "wLength")]
    pub length: u16,
}

/// `USB_ENDPOINT_DESCRIPTOR`: the 7 bytes of an endpoint descriptor, fields uninterpreted.
#[doc(alias = "USB_ENDPOINT_DESCRIPTOR")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct EndpointDescriptorRaw {
    /// `bLength` (7 in a well-formed descriptor).
    #[doc(alias = "bLength")]
    pub length: u8,
    /// `bDescriptorType` (5 in a well-formed descriptor).
    #[doc(alias = "bDescriptorType")]
    pub descriptor_type: u8,
    /// `bEndpointAddress`: number in bits 0..4, direction (1 = IN) in bit 7.
    #[doc(alias = "bEndpointAddress")]
    pub endpoint_address: u8,
    /// `bmAttributes`: transfer type in bits 0..2.
    #[doc(alias = "bmAttributes")]
    pub attributes: u8,
    /// `wMaxPacketSize`.
    #[doc(alias = "wMaxPacketSize")]
    pub max_packet_size: u16,
    /// `bInterval`.
    #[doc(alias = "bInterval")]
    pub interval: u8,
}

/// Byte offsets (pinned against [`crate::raw::UsbDefaultPipeSetupPacket`]).
mod setup_field {
    pub(super) const REQUEST_TYPE: usize = 0;
    pub(super) const REQUEST: usize = 1;
    pub(super) const VALUE: usize = 2;
    pub(super) const INDEX: usize = 4;
    pub(super) const LENGTH: usize = 6;
}

/// Byte offsets (pinned against [`crate::raw::UsbEndpointDescriptor`]).
mod endpoint_field {
    pub(super) const LENGTH: usize = 0;
    pub(super) const DESCRIPTOR_TYPE: usize = 1;
    pub(super) const ENDPOINT_ADDRESS: usize = 2;
    pub(super) const ATTRIBUTES: usize = 3;
    pub(super) const MAX_PACKET_SIZE: usize = 4;
    pub(super) const INTERVAL: usize = 6;
}

fixed_size!(SetupPacketRaw, "USB_DEFAULT_PIPE_SETUP_PACKET", 8);
fixed_size!(EndpointDescriptorRaw, "USB_ENDPOINT_DESCRIPTOR", 7);

impl SetupPacketRaw {
    /// The 8 bytes, little-endian.
    #[must_use]
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut out = [0; Self::SIZE];
        let mut w = Writer::new(&mut out);
        w.u8(setup_field::REQUEST_TYPE, self.request_type);
        w.u8(setup_field::REQUEST, self.request);
        w.u16(setup_field::VALUE, self.value);
        w.u16(setup_field::INDEX, self.index);
        w.u16(setup_field::LENGTH, self.length);
        out
    }

    /// Same as [`encode`](Self::encode).
    #[must_use]
    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        self.encode()
    }

    /// From exactly 8 bytes; cannot fail.
    #[must_use]
    pub const fn from_bytes(b: [u8; Self::SIZE]) -> Self {
        Self {
            request_type: b[0],
            request: b[1],
            value: u16::from_le_bytes([b[2], b[3]]),
            index: u16::from_le_bytes([b[4], b[5]]),
            length: u16::from_le_bytes([b[6], b[7]]),
        }
    }

    /// Decodes the first 8 bytes; later bytes are ignored.
    ///
    /// # Errors
    ///
    /// [`AbiError::BufferTooShort`] for fewer than 8 bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, AbiError> {
        let r = Reader::new(bytes, Self::SIZE, Self::WINDOWS_NAME)?;
        Ok(Self::from_bytes(r.array(0)))
    }

    /// Bit 7 of `bmRequestType`: the data stage (if any) goes device to host.
    #[must_use]
    pub const fn is_device_to_host(&self) -> bool {
        self.request_type & 0x80 != 0
    }
}

impl EndpointDescriptorRaw {
    /// The 7 bytes, little-endian.
    #[must_use]
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut out = [0; Self::SIZE];
        let mut w = Writer::new(&mut out);
        w.u8(endpoint_field::LENGTH, self.length);
        w.u8(endpoint_field::DESCRIPTOR_TYPE, self.descriptor_type);
        w.u8(endpoint_field::ENDPOINT_ADDRESS, self.endpoint_address);
        w.u8(endpoint_field::ATTRIBUTES, self.attributes);
        w.u16(endpoint_field::MAX_PACKET_SIZE, self.max_packet_size);
        w.u8(endpoint_field::INTERVAL, self.interval);
        out
    }

    /// From exactly 7 bytes; cannot fail.
    #[must_use]
    pub const fn from_bytes(b: [u8; Self::SIZE]) -> Self {
        Self {
            length: b[0],
            descriptor_type: b[1],
            endpoint_address: b[2],
            attributes: b[3],
            max_packet_size: u16::from_le_bytes([b[4], b[5]]),
            interval: b[6],
        }
    }

    /// Decodes the first 7 bytes; later bytes are ignored.
    ///
    /// # Errors
    ///
    /// [`AbiError::BufferTooShort`] for fewer than 7 bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, AbiError> {
        let r = Reader::new(bytes, Self::SIZE, Self::WINDOWS_NAME)?;
        Ok(Self::from_bytes(r.array(0)))
    }

    /// Bit 7 of `bEndpointAddress`: an IN (device to host) endpoint.
    #[must_use]
    pub const fn is_in(&self) -> bool {
        self.endpoint_address & 0x80 != 0
    }

    /// `true` when the high byte of `wMaxPacketSize` has
    /// [`USBFN_INTERRUPT_ENDPOINT_SIZE_NOT_UPDATEABLE_MASK`]: the stack must keep this interrupt
    /// endpoint's size as configured instead of adapting it to the bus speed.
    #[must_use]
    pub const fn size_not_updateable(&self) -> bool {
        let [_, high] = self.max_packet_size.to_le_bytes();
        high & USBFN_INTERRUPT_ENDPOINT_SIZE_NOT_UPDATEABLE_MASK != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};
    use proptest::prelude::*;

    #[test]
    fn offsets_match_raw() {
        use crate::raw::{UsbDefaultPipeSetupPacket as S, UsbEndpointDescriptor as E};
        assert_eq!(SetupPacketRaw::SIZE, size_of::<S>());
        assert_eq!(setup_field::REQUEST_TYPE, offset_of!(S, bm_request_type));
        assert_eq!(setup_field::REQUEST, offset_of!(S, b_request));
        assert_eq!(setup_field::VALUE, offset_of!(S, w_value));
        assert_eq!(setup_field::INDEX, offset_of!(S, w_index));
        assert_eq!(setup_field::LENGTH, offset_of!(S, w_length));
        assert_eq!(EndpointDescriptorRaw::SIZE, size_of::<E>());
        assert_eq!(endpoint_field::LENGTH, offset_of!(E, b_length));
        assert_eq!(
            endpoint_field::DESCRIPTOR_TYPE,
            offset_of!(E, b_descriptor_type)
        );
        assert_eq!(
            endpoint_field::ENDPOINT_ADDRESS,
            offset_of!(E, b_endpoint_address)
        );
        assert_eq!(endpoint_field::ATTRIBUTES, offset_of!(E, bm_attributes));
        assert_eq!(
            endpoint_field::MAX_PACKET_SIZE,
            offset_of!(E, w_max_packet_size)
        );
        assert_eq!(endpoint_field::INTERVAL, offset_of!(E, b_interval));
    }

    #[test]
    fn setup_packet_bytes() {
        // A HID class SET_REPORT(Output, id 0) to interface 2, 8 bytes of data.
        let bytes = [0x21, 0x09, 0x00, 0x02, 0x02, 0x00, 0x08, 0x00];
        let setup = SetupPacketRaw::decode(&bytes).unwrap();
        assert_eq!(
            setup,
            SetupPacketRaw {
                request_type: 0x21,
                request: 0x09,
                value: 0x0200,
                index: 2,
                length: 8
            }
        );
        assert!(!setup.is_device_to_host());
        assert_eq!(setup.encode(), bytes);
        assert_eq!(
            SetupPacketRaw::decode(&bytes[..7]),
            Err(AbiError::BufferTooShort {
                structure: "USB_DEFAULT_PIPE_SETUP_PACKET",
                need: 8,
                got: 7
            })
        );
    }

    #[test]
    fn endpoint_descriptor_bytes() {
        // Interrupt IN endpoint 1, 64 bytes, size not updateable, interval 10.
        let bytes = [0x07, 0x05, 0x81, 0x03, 0x40, 0x80, 0x0A];
        let ep = EndpointDescriptorRaw::decode(&bytes).unwrap();
        assert_eq!(ep.max_packet_size, 0x8040);
        assert!(ep.is_in());
        assert!(ep.size_not_updateable());
        assert_eq!(ep.encode(), bytes);
        let plain = EndpointDescriptorRaw {
            max_packet_size: 0x0040,
            ..ep
        };
        assert!(!plain.size_not_updateable());
        assert_eq!(
            EndpointDescriptorRaw::decode(&[]),
            Err(AbiError::BufferTooShort {
                structure: "USB_ENDPOINT_DESCRIPTOR",
                need: 7,
                got: 0
            })
        );
        let mut out = [0u8; 6];
        assert!(matches!(
            ep.encode_into(&mut out),
            Err(AbiError::OutputTooSmall {
                need: 7,
                got: 6,
                ..
            })
        ));
    }

    proptest! {
        #[test]
        fn setup_bytes_round_trip(bytes in any::<[u8; 8]>()) {
            let s = SetupPacketRaw::decode(&bytes).unwrap();
            prop_assert_eq!(s.encode(), bytes);
            prop_assert_eq!(SetupPacketRaw::from_bytes(bytes), s);
        }

        #[test]
        fn endpoint_bytes_round_trip(bytes in any::<[u8; 7]>()) {
            let e = EndpointDescriptorRaw::decode(&bytes).unwrap();
            prop_assert_eq!(e.encode(), bytes);
        }
    }
}
