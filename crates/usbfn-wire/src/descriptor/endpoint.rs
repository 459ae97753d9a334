//! ENDPOINT and SUPERSPEED_USB_ENDPOINT_COMPANION descriptors (USB 2.0 §9.6.6,
//! USB 3.2 §9.6.7).

use super::{fixed_descriptor, fixed_descriptor_io, le16};
use crate::{
    DescriptorType, EndpointAddress, SynchronizationType, TransferType, UsageType, WireError,
};

/// The endpoint descriptor (USB 2.0 table 9-13).
///
/// Audio class 1.0 endpoints carry two more bytes (`bRefresh`, `bSynchAddress`); `parse`
/// accepts them and ignores them, so such descriptors re-encode as 7 bytes. Keep the raw bytes
/// (e.g. [`RawOwned`](crate::RawOwned)) where those must survive.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct EndpointDescriptor {
    /// Address: number and direction.
    #[doc(alias = "bEndpointAddress")]
    pub b_endpoint_address: EndpointAddress,
    /// Transfer type (bits 1..0), and for isochronous endpoints synchronization (3..2) and
    /// usage (5..4) types.
    #[doc(alias = "bmAttributes")]
    pub bm_attributes: u8,
    /// Max packet size (bits 10..0) and, for high-speed periodic endpoints, additional
    /// transactions per microframe (bits 12..11).
    #[doc(alias = "wMaxPacketSize")]
    pub w_max_packet_size: u16,
    /// Polling interval, in frames or (micro)frames as an exponent, depending on speed and type.
    #[doc(alias = "bInterval")]
    pub b_interval: u8,
}

/// The SuperSpeed endpoint companion descriptor (USB 3.2 table 9-27), which follows each
/// endpoint descriptor in a SuperSpeed configuration.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct SuperSpeedEndpointCompanion {
    /// Packets the endpoint can send or receive in a burst, minus one (0..=15).
    #[doc(alias = "bMaxBurst")]
    pub b_max_burst: u8,
    /// Bulk: max streams exponent (bits 4..0). Isochronous: `Mult` (bits 1..0) and
    /// SSP isochronous companion present (bit 7).
    #[doc(alias = "bmAttributes")]
    pub bm_attributes: u8,
    /// Periodic endpoints: bytes per service interval.
    #[doc(alias = "wBytesPerInterval")]
    pub w_bytes_per_interval: u16,
}

impl EndpointDescriptor {
    /// `bLength`.
    pub const LENGTH: usize = 7;
    /// `bDescriptorType`.
    pub const DESCRIPTOR_TYPE: DescriptorType = DescriptorType::ENDPOINT;

    /// A descriptor for a non-isochronous endpoint (`bmAttributes` holds just the type).
    pub const fn new(
        address: EndpointAddress,
        transfer_type: TransferType,
        max_packet_size: u16,
        interval: u8,
    ) -> Self {
        Self {
            b_endpoint_address: address,
            bm_attributes: transfer_type.to_bits(),
            w_max_packet_size: max_packet_size,
            b_interval: interval,
        }
    }

    /// Parses the endpoint descriptor at the start of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let b = fixed_descriptor::<7>(bytes, Self::DESCRIPTOR_TYPE, "endpoint descriptor")?;
        Ok(Self {
            b_endpoint_address: EndpointAddress(b[2]),
            bm_attributes: b[3],
            w_max_packet_size: le16(b[4], b[5]),
            b_interval: b[6],
        })
    }

    /// The transfer type.
    pub const fn transfer_type(&self) -> TransferType {
        TransferType::from_attributes(self.bm_attributes)
    }

    /// The isochronous synchronization type.
    pub const fn synchronization_type(&self) -> SynchronizationType {
        SynchronizationType::from_attributes(self.bm_attributes)
    }

    /// The isochronous (or SuperSpeed interrupt) usage type.
    pub const fn usage_type(&self) -> UsageType {
        UsageType::from_attributes(self.bm_attributes)
    }

    /// The max packet size: bits 10..0 of `wMaxPacketSize`.
    pub const fn max_packet_size(&self) -> u16 {
        self.w_max_packet_size & 0x07ff
    }

    /// Additional transactions per microframe for high-speed periodic endpoints: bits 12..11
    /// of `wMaxPacketSize` (0, 1 or 2; 3 is reserved).
    pub const fn additional_transactions(&self) -> u8 {
        (self.w_max_packet_size.to_le_bytes()[1] >> 3) & 0x3
    }

    /// The 7 wire bytes.
    pub const fn to_array(&self) -> [u8; 7] {
        let [mps0, mps1] = self.w_max_packet_size.to_le_bytes();
        [
            7,
            Self::DESCRIPTOR_TYPE.0,
            self.b_endpoint_address.0,
            self.bm_attributes,
            mps0,
            mps1,
            self.b_interval,
        ]
    }
}
fixed_descriptor_io!(EndpointDescriptor);

impl SuperSpeedEndpointCompanion {
    /// `bLength`.
    pub const LENGTH: usize = 6;
    /// `bDescriptorType`.
    pub const DESCRIPTOR_TYPE: DescriptorType = DescriptorType::SUPERSPEED_USB_ENDPOINT_COMPANION;

    /// Parses the companion descriptor at the start of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let what = "SuperSpeed endpoint companion";
        let b = fixed_descriptor::<6>(bytes, Self::DESCRIPTOR_TYPE, what)?;
        Ok(Self {
            b_max_burst: b[2],
            bm_attributes: b[3],
            w_bytes_per_interval: le16(b[4], b[5]),
        })
    }

    /// Bulk endpoints: the max streams exponent (bits 4..0); the endpoint supports
    /// `2^max_streams` streams, 0 meaning no streams.
    pub const fn max_streams(&self) -> u8 {
        self.bm_attributes & 0x1f
    }

    /// Isochronous endpoints: `Mult` (bits 1..0), the max number of bursts per service
    /// interval minus one.
    pub const fn mult(&self) -> u8 {
        self.bm_attributes & 0x3
    }

    /// The 6 wire bytes.
    pub const fn to_array(&self) -> [u8; 6] {
        let [bpi0, bpi1] = self.w_bytes_per_interval.to_le_bytes();
        [
            6,
            Self::DESCRIPTOR_TYPE.0,
            self.b_max_burst,
            self.bm_attributes,
            bpi0,
            bpi1,
        ]
    }
}
fixed_descriptor_io!(SuperSpeedEndpointCompanion);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Direction;
    use proptest::prelude::*;

    #[test]
    fn bulk_in_endpoint() {
        let bytes = [0x07, 0x05, 0x81, 0x02, 0x00, 0x02, 0x00];
        let ep = EndpointDescriptor::parse(&bytes).unwrap();
        assert_eq!(ep.b_endpoint_address, EndpointAddress(0x81));
        assert_eq!(ep.transfer_type(), TransferType::Bulk);
        assert_eq!(ep.max_packet_size(), 512);
        assert_eq!(ep.additional_transactions(), 0);
        let built = EndpointDescriptor::new(
            EndpointAddress::new(1, Direction::In).unwrap(),
            TransferType::Bulk,
            512,
            0,
        );
        assert_eq!(built, ep);
        assert_eq!(ep.to_array(), bytes);
    }

    #[test]
    fn high_bandwidth_iso_endpoint() {
        // A high-speed isochronous asynchronous IN endpoint, 3 x 1024 bytes per microframe.
        let bytes = [0x07, 0x05, 0x82, 0x05, 0x00, 0x14, 0x01];
        let ep = EndpointDescriptor::parse(&bytes).unwrap();
        assert_eq!(ep.transfer_type(), TransferType::Isochronous);
        assert_eq!(ep.synchronization_type(), SynchronizationType::Asynchronous);
        assert_eq!(ep.usage_type(), UsageType::Data);
        assert_eq!(ep.max_packet_size(), 1024);
        assert_eq!(ep.additional_transactions(), 2);
    }

    #[test]
    fn audio_endpoint_with_extra_bytes() {
        let bytes = [0x09, 0x05, 0x01, 0x09, 0xc0, 0x00, 0x01, 0x00, 0x00];
        let ep = EndpointDescriptor::parse(&bytes).unwrap();
        assert_eq!(ep.max_packet_size(), 192);
        assert_eq!(ep.to_bytes().len(), 7);
    }

    #[test]
    fn companion() {
        let bytes = [0x06, 0x30, 0x0f, 0x04, 0x00, 0x00];
        let c = SuperSpeedEndpointCompanion::parse(&bytes).unwrap();
        assert_eq!(c.b_max_burst, 15);
        assert_eq!(c.max_streams(), 4);
        assert_eq!(c.to_array(), bytes);
        let iso = SuperSpeedEndpointCompanion {
            b_max_burst: 0,
            bm_attributes: 2,
            w_bytes_per_interval: 3072,
        };
        assert_eq!(iso.mult(), 2);
        assert_eq!(
            SuperSpeedEndpointCompanion::parse(&bytes[..5]),
            Err(WireError::BadLength {
                descriptor_type: DescriptorType::SUPERSPEED_USB_ENDPOINT_COMPANION,
                b_length: 6
            })
        );
    }

    proptest! {
        #[test]
        fn round_trips(a in any::<[u8; 4]>(), w in any::<u16>()) {
            let ep = EndpointDescriptor {
                b_endpoint_address: EndpointAddress(a[0]),
                bm_attributes: a[1],
                w_max_packet_size: w,
                b_interval: a[2],
            };
            prop_assert_eq!(EndpointDescriptor::parse(&ep.to_bytes()), Ok(ep));
            prop_assert!(ep.max_packet_size() <= 2047);
            prop_assert!(ep.additional_transactions() <= 3);
            let c = SuperSpeedEndpointCompanion {
                b_max_burst: a[0],
                bm_attributes: a[3],
                w_bytes_per_interval: w,
            };
            prop_assert_eq!(SuperSpeedEndpointCompanion::parse(&c.to_bytes()), Ok(c));
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
            let _ = EndpointDescriptor::parse(&bytes);
            let _ = SuperSpeedEndpointCompanion::parse(&bytes);
        }
    }
}
