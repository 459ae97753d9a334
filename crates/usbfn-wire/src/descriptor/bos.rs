//! BOS and device capability descriptors (USB 3.2 §9.6.2).
//!
//! These are the fixed pieces; [`BosTree`](crate::BosTree) parses a whole GET_DESCRIPTOR(BOS)
//! answer and [`DescriptorWriter::bos`](crate::DescriptorWriter::bos) builds one.

use super::{checked_descriptor, fixed_descriptor, fixed_descriptor_io, le16};
use crate::{DescriptorType, WireError};

/// The BOS descriptor header (USB 3.2 table 9-12).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct BosDescriptor {
    /// Length of this descriptor and all device capabilities after it.
    #[doc(alias = "wTotalLength")]
    pub w_total_length: u16,
    /// Number of device capability descriptors after it.
    #[doc(alias = "bNumDeviceCaps")]
    pub b_num_device_caps: u8,
}

wire_newtype! {
    /// A device capability type (`bDevCapabilityType`, USB 3.2 table 9-14).
    #[doc(alias = "bDevCapabilityType")]
    pub struct DeviceCapabilityType(u8);
    /// Wireless USB (1).
    WIRELESS_USB = 0x01;
    /// USB 2.0 extension (2): LPM support.
    USB_2_0_EXTENSION = 0x02;
    /// SuperSpeed USB (3).
    SUPERSPEED_USB = 0x03;
    /// Container ID (4).
    CONTAINER_ID = 0x04;
    /// Platform (5), e.g. Microsoft OS 2.0 or WebUSB.
    PLATFORM = 0x05;
    /// Power delivery (6).
    POWER_DELIVERY = 0x06;
    /// Battery info (7).
    BATTERY_INFO = 0x07;
    /// PD consumer port (8).
    PD_CONSUMER_PORT = 0x08;
    /// PD provider port (9).
    PD_PROVIDER_PORT = 0x09;
    /// SuperSpeedPlus (0x0A).
    SUPERSPEED_PLUS = 0x0a;
    /// Precision time measurement (0x0B).
    PRECISION_TIME_MEASUREMENT = 0x0b;
    /// Wireless USB extension (0x0C).
    WIRELESS_USB_EXT = 0x0c;
    /// Billboard (0x0D).
    BILLBOARD = 0x0d;
    /// Authentication (0x0E).
    AUTHENTICATION = 0x0e;
    /// Billboard extension (0x0F).
    BILLBOARD_EX = 0x0f;
    /// Configuration summary (0x10).
    CONFIGURATION_SUMMARY = 0x10;
}

/// The USB 2.0 extension capability (USB 3.2 table 9-15): link power management support.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Usb20ExtensionCapability {
    /// Bit 1: LPM supported; bit 2: BESL and alternate HIRD definitions supported; bits 3 and
    /// 4: baseline / deep BESL valid, with the values in bits 11..8 and 15..12.
    #[doc(alias = "bmAttributes")]
    pub bm_attributes: u32,
}

/// The SuperSpeed USB device capability (USB 3.2 table 9-16).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct SuperSpeedUsbCapability {
    /// Bit 1: the device can generate latency tolerance messages.
    #[doc(alias = "bmAttributes")]
    pub bm_attributes: u8,
    /// Speeds supported: bit 0 low, 1 full, 2 high, 3 SuperSpeed (Gen 1).
    #[doc(alias = "wSpeedsSupported")]
    pub w_speeds_supported: u16,
    /// The lowest speed at which all functionality is available (0 low ... 3 SuperSpeed).
    #[doc(alias = "bFunctionalitySupport")]
    pub b_functionality_support: u8,
    /// U1 device exit latency, in microseconds (0..=10).
    #[doc(alias = "bU1DevExitLat")]
    pub b_u1_dev_exit_lat: u8,
    /// U2 device exit latency, in microseconds (0..=2047).
    #[doc(alias = "wU2DevExitLat")]
    pub w_u2_dev_exit_lat: u16,
}

/// The container ID capability (USB 3.2 table 9-17): a UUID shared by all functions of one
/// physical device.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ContainerIdCapability {
    /// The 128-bit UUID, as stored on the wire.
    #[doc(alias = "ContainerID")]
    pub container_id: [u8; 16],
}

impl BosDescriptor {
    /// `bLength`.
    pub const LENGTH: usize = 5;
    /// `bDescriptorType`.
    pub const DESCRIPTOR_TYPE: DescriptorType = DescriptorType::BOS;

    /// Parses the BOS header at the start of `bytes`; `wTotalLength` is not checked here.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let b = fixed_descriptor::<5>(bytes, Self::DESCRIPTOR_TYPE, "BOS descriptor")?;
        Ok(Self {
            w_total_length: le16(b[2], b[3]),
            b_num_device_caps: b[4],
        })
    }

    /// The 5 wire bytes.
    pub const fn to_array(&self) -> [u8; 5] {
        let [total0, total1] = self.w_total_length.to_le_bytes();
        [
            5,
            Self::DESCRIPTOR_TYPE.0,
            total0,
            total1,
            self.b_num_device_caps,
        ]
    }
}
fixed_descriptor_io!(BosDescriptor);

impl DeviceCapabilityType {
    /// Reads `bDevCapabilityType` of the device capability descriptor at the start of
    /// `bytes`, checking its header (type DEVICE_CAPABILITY, `bLength` at least 3 and within
    /// the buffer).
    pub fn of(bytes: &[u8]) -> Result<Self, WireError> {
        let what = "device capability descriptor";
        let d = checked_descriptor(bytes, DescriptorType::DEVICE_CAPABILITY, 3, what)?;
        match d {
            [_, _, capability_type, ..] => Ok(Self(*capability_type)),
            _ => Err(WireError::Truncated {
                what,
                needed: 3,
                available: d.len(),
            }),
        }
    }
}

/// Parses the header of a device capability of type `expected` and fixed size `N`.
fn capability<'a, const N: usize>(
    bytes: &'a [u8],
    expected: DeviceCapabilityType,
    what: &'static str,
) -> Result<&'a [u8; N], WireError> {
    let found = DeviceCapabilityType::of(bytes)?;
    if found != expected {
        return Err(WireError::WrongCapabilityType { expected, found });
    }
    // `bLength` was checked against the buffer; a capability shorter than its fixed size is
    // reported as truncated (BadLength's per-type minimum is that of DEVICE_CAPABILITY, 3).
    let b_length = bytes.first().map_or(0, |&b| usize::from(b));
    bytes
        .get(..b_length)
        .and_then(|d| d.first_chunk::<N>())
        .ok_or(WireError::Truncated {
            what,
            needed: N,
            available: b_length,
        })
}

impl Usb20ExtensionCapability {
    /// `bLength`.
    pub const LENGTH: usize = 7;
    /// `bDevCapabilityType`.
    pub const CAPABILITY_TYPE: DeviceCapabilityType = DeviceCapabilityType::USB_2_0_EXTENSION;
    /// `bmAttributes` bit 1: link power management supported.
    pub const ATTR_LPM: u32 = 1 << 1;
    /// `bmAttributes` bit 2: BESL and alternate HIRD definitions supported.
    pub const ATTR_BESL: u32 = 1 << 2;

    /// Parses the capability at the start of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let b = capability::<7>(bytes, Self::CAPABILITY_TYPE, "USB 2.0 extension capability")?;
        Ok(Self {
            bm_attributes: u32::from_le_bytes([b[3], b[4], b[5], b[6]]),
        })
    }

    /// Whether LPM is supported.
    pub const fn lpm(&self) -> bool {
        self.bm_attributes & Self::ATTR_LPM != 0
    }

    /// The 7 wire bytes.
    pub const fn to_array(&self) -> [u8; 7] {
        let [a0, a1, a2, a3] = self.bm_attributes.to_le_bytes();
        [
            7,
            DescriptorType::DEVICE_CAPABILITY.0,
            Self::CAPABILITY_TYPE.0,
            a0,
            a1,
            a2,
            a3,
        ]
    }
}
fixed_descriptor_io!(Usb20ExtensionCapability);

impl SuperSpeedUsbCapability {
    /// `bLength`.
    pub const LENGTH: usize = 10;
    /// `bDevCapabilityType`.
    pub const CAPABILITY_TYPE: DeviceCapabilityType = DeviceCapabilityType::SUPERSPEED_USB;
    /// `bmAttributes` bit 1: latency tolerance messages capable.
    pub const ATTR_LTM: u8 = 1 << 1;
    /// `wSpeedsSupported`: low speed.
    pub const SPEED_LOW: u16 = 1 << 0;
    /// `wSpeedsSupported`: full speed.
    pub const SPEED_FULL: u16 = 1 << 1;
    /// `wSpeedsSupported`: high speed.
    pub const SPEED_HIGH: u16 = 1 << 2;
    /// `wSpeedsSupported`: SuperSpeed (Gen 1, 5 Gb/s).
    pub const SPEED_SUPER: u16 = 1 << 3;

    /// Parses the capability at the start of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let b = capability::<10>(bytes, Self::CAPABILITY_TYPE, "SuperSpeed USB capability")?;
        Ok(Self {
            bm_attributes: b[3],
            w_speeds_supported: le16(b[4], b[5]),
            b_functionality_support: b[6],
            b_u1_dev_exit_lat: b[7],
            w_u2_dev_exit_lat: le16(b[8], b[9]),
        })
    }

    /// The 10 wire bytes.
    pub const fn to_array(&self) -> [u8; 10] {
        let [s0, s1] = self.w_speeds_supported.to_le_bytes();
        let [u0, u1] = self.w_u2_dev_exit_lat.to_le_bytes();
        [
            10,
            DescriptorType::DEVICE_CAPABILITY.0,
            Self::CAPABILITY_TYPE.0,
            self.bm_attributes,
            s0,
            s1,
            self.b_functionality_support,
            self.b_u1_dev_exit_lat,
            u0,
            u1,
        ]
    }
}
fixed_descriptor_io!(SuperSpeedUsbCapability);

impl ContainerIdCapability {
    /// `bLength`.
    pub const LENGTH: usize = 20;
    /// `bDevCapabilityType`.
    pub const CAPABILITY_TYPE: DeviceCapabilityType = DeviceCapabilityType::CONTAINER_ID;

    /// Parses the capability at the start of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let b = capability::<20>(bytes, Self::CAPABILITY_TYPE, "container ID capability")?;
        let mut container_id = [0u8; 16];
        let [_, _, _, _, id @ ..] = b;
        container_id.copy_from_slice(id);
        Ok(Self { container_id })
    }

    /// The 20 wire bytes (`bReserved` is written as 0).
    pub fn to_array(&self) -> [u8; 20] {
        let mut out = [0u8; 20];
        let [
            b_length,
            b_descriptor_type,
            b_dev_capability_type,
            _,
            id @ ..,
        ] = &mut out;
        *b_length = 20;
        *b_descriptor_type = DescriptorType::DEVICE_CAPABILITY.0;
        *b_dev_capability_type = Self::CAPABILITY_TYPE.0;
        *id = self.container_id;
        out
    }
}
fixed_descriptor_io!(ContainerIdCapability);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn usb2_extension() {
        let bytes = [0x07, 0x10, 0x02, 0x02, 0x00, 0x00, 0x00];
        let c = Usb20ExtensionCapability::parse(&bytes).unwrap();
        assert!(c.lpm());
        assert_eq!(c.to_array(), bytes);
        assert_eq!(
            DeviceCapabilityType::of(&bytes),
            Ok(DeviceCapabilityType::USB_2_0_EXTENSION)
        );
    }

    #[test]
    fn superspeed_usb() {
        let bytes = [0x0a, 0x10, 0x03, 0x00, 0x0e, 0x00, 0x01, 0x0a, 0xff, 0x07];
        let c = SuperSpeedUsbCapability::parse(&bytes).unwrap();
        assert_eq!(
            c.w_speeds_supported,
            SuperSpeedUsbCapability::SPEED_FULL
                | SuperSpeedUsbCapability::SPEED_HIGH
                | SuperSpeedUsbCapability::SPEED_SUPER
        );
        assert_eq!(c.b_functionality_support, 1);
        assert_eq!(c.b_u1_dev_exit_lat, 10);
        assert_eq!(c.w_u2_dev_exit_lat, 0x07ff);
        assert_eq!(c.to_array(), bytes);
        assert_eq!(
            Usb20ExtensionCapability::parse(&bytes),
            Err(WireError::WrongCapabilityType {
                expected: DeviceCapabilityType::USB_2_0_EXTENSION,
                found: DeviceCapabilityType::SUPERSPEED_USB,
            })
        );
    }

    #[test]
    fn short_capabilities() {
        // bLength 5 claims a USB 2.0 extension shorter than its 7 fixed bytes.
        let bytes = [0x05, 0x10, 0x02, 0x02, 0x00, 0x00, 0x00];
        assert_eq!(
            Usb20ExtensionCapability::parse(&bytes),
            Err(WireError::Truncated {
                what: "USB 2.0 extension capability",
                needed: 7,
                available: 5
            })
        );
        assert_eq!(
            DeviceCapabilityType::of(&[0x02, 0x10]),
            Err(WireError::BadLength {
                descriptor_type: DescriptorType::DEVICE_CAPABILITY,
                b_length: 2
            })
        );
        assert_eq!(
            BosDescriptor::parse(&[0x05, 0x0f, 0x05]),
            Err(WireError::BadLength {
                descriptor_type: DescriptorType::BOS,
                b_length: 5
            })
        );
    }

    #[test]
    fn container_id() {
        let id: [u8; 16] = core::array::from_fn(|i| u8::try_from(i).unwrap_or(0));
        let c = ContainerIdCapability { container_id: id };
        let bytes = c.to_bytes();
        assert_eq!(&bytes[..4], &[20, 0x10, 0x04, 0x00]);
        assert_eq!(ContainerIdCapability::parse(&bytes), Ok(c));
        assert_eq!(
            format!("{:?}", DeviceCapabilityType(5)),
            "DeviceCapabilityType::PLATFORM"
        );
    }

    proptest! {
        #[test]
        fn round_trips(a in any::<[u8; 4]>(), w in any::<(u16, u16, u32)>(), id in any::<[u8; 16]>()) {
            let bos = BosDescriptor { w_total_length: w.0, b_num_device_caps: a[0] };
            prop_assert_eq!(BosDescriptor::parse(&bos.to_bytes()), Ok(bos));
            let usb2 = Usb20ExtensionCapability { bm_attributes: w.2 };
            prop_assert_eq!(Usb20ExtensionCapability::parse(&usb2.to_bytes()), Ok(usb2));
            let ss = SuperSpeedUsbCapability {
                bm_attributes: a[1],
                w_speeds_supported: w.0,
                b_functionality_support: a[2],
                b_u1_dev_exit_lat: a[3],
                w_u2_dev_exit_lat: w.1,
            };
            prop_assert_eq!(SuperSpeedUsbCapability::parse(&ss.to_bytes()), Ok(ss));
            let cid = ContainerIdCapability { container_id: id };
            prop_assert_eq!(ContainerIdCapability::parse(&cid.to_bytes()), Ok(cid));
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..24)) {
            let _ = BosDescriptor::parse(&bytes);
            let _ = DeviceCapabilityType::of(&bytes);
            let _ = Usb20ExtensionCapability::parse(&bytes);
            let _ = SuperSpeedUsbCapability::parse(&bytes);
            let _ = ContainerIdCapability::parse(&bytes);
        }
    }
}
