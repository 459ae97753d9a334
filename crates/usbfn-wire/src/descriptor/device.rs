//! DEVICE and DEVICE_QUALIFIER descriptors (USB 2.0 §9.6.1, §9.6.2).

use super::{fixed_descriptor, fixed_descriptor_io, le16};
use crate::{DescriptorType, WireError};

/// The device descriptor (USB 2.0 table 9-8): identity and endpoint 0 packet size.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct DeviceDescriptor {
    /// USB spec release in BCD, e.g. `0x0200` (2.0), `0x0320`.
    #[doc(alias = "bcdUSB")]
    pub bcd_usb: u16,
    /// Class code; 0 means "per interface", 0xEF with subclass 2 / protocol 1 means IADs.
    #[doc(alias = "bDeviceClass")]
    pub b_device_class: u8,
    /// Subclass code.
    #[doc(alias = "bDeviceSubClass")]
    pub b_device_sub_class: u8,
    /// Protocol code.
    #[doc(alias = "bDeviceProtocol")]
    pub b_device_protocol: u8,
    /// Max packet size of endpoint 0: 8, 16, 32 or 64; for SuperSpeed the exponent 9 (512).
    #[doc(alias = "bMaxPacketSize0")]
    pub b_max_packet_size0: u8,
    /// Vendor ID.
    #[doc(alias = "idVendor")]
    pub id_vendor: u16,
    /// Product ID.
    #[doc(alias = "idProduct")]
    pub id_product: u16,
    /// Device release number in BCD.
    #[doc(alias = "bcdDevice")]
    pub bcd_device: u16,
    /// String index of the manufacturer, 0 for none.
    #[doc(alias = "iManufacturer")]
    pub i_manufacturer: u8,
    /// String index of the product, 0 for none.
    #[doc(alias = "iProduct")]
    pub i_product: u8,
    /// String index of the serial number, 0 for none.
    #[doc(alias = "iSerialNumber")]
    pub i_serial_number: u8,
    /// Number of configurations.
    #[doc(alias = "bNumConfigurations")]
    pub b_num_configurations: u8,
}

/// The device qualifier descriptor (USB 2.0 table 9-9): what would change at the other speed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct DeviceQualifierDescriptor {
    /// USB spec release in BCD (at least `0x0200`).
    #[doc(alias = "bcdUSB")]
    pub bcd_usb: u16,
    /// Class code at the other speed.
    #[doc(alias = "bDeviceClass")]
    pub b_device_class: u8,
    /// Subclass code at the other speed.
    #[doc(alias = "bDeviceSubClass")]
    pub b_device_sub_class: u8,
    /// Protocol code at the other speed.
    #[doc(alias = "bDeviceProtocol")]
    pub b_device_protocol: u8,
    /// Max packet size of endpoint 0 at the other speed.
    #[doc(alias = "bMaxPacketSize0")]
    pub b_max_packet_size0: u8,
    /// Number of other-speed configurations.
    #[doc(alias = "bNumConfigurations")]
    pub b_num_configurations: u8,
}

impl DeviceDescriptor {
    /// `bLength`.
    pub const LENGTH: usize = 18;
    /// `bDescriptorType`.
    pub const DESCRIPTOR_TYPE: DescriptorType = DescriptorType::DEVICE;

    /// Parses the device descriptor at the start of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let b = fixed_descriptor::<18>(bytes, Self::DESCRIPTOR_TYPE, "device descriptor")?;
        Ok(Self {
            bcd_usb: le16(b[2], b[3]),
            b_device_class: b[4],
            b_device_sub_class: b[5],
            b_device_protocol: b[6],
            b_max_packet_size0: b[7],
            id_vendor: le16(b[8], b[9]),
            id_product: le16(b[10], b[11]),
            bcd_device: le16(b[12], b[13]),
            i_manufacturer: b[14],
            i_product: b[15],
            i_serial_number: b[16],
            b_num_configurations: b[17],
        })
    }

    /// The 18 wire bytes.
    pub const fn to_array(&self) -> [u8; 18] {
        let [usb0, usb1] = self.bcd_usb.to_le_bytes();
        let [vid0, vid1] = self.id_vendor.to_le_bytes();
        let [pid0, pid1] = self.id_product.to_le_bytes();
        let [dev0, dev1] = self.bcd_device.to_le_bytes();
        [
            18,
            Self::DESCRIPTOR_TYPE.0,
            usb0,
            usb1,
            self.b_device_class,
            self.b_device_sub_class,
            self.b_device_protocol,
            self.b_max_packet_size0,
            vid0,
            vid1,
            pid0,
            pid1,
            dev0,
            dev1,
            self.i_manufacturer,
            self.i_product,
            self.i_serial_number,
            self.b_num_configurations,
        ]
    }
}
fixed_descriptor_io!(DeviceDescriptor);

impl DeviceQualifierDescriptor {
    /// `bLength`.
    pub const LENGTH: usize = 10;
    /// `bDescriptorType`.
    pub const DESCRIPTOR_TYPE: DescriptorType = DescriptorType::DEVICE_QUALIFIER;

    /// Parses the device qualifier descriptor at the start of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let b = fixed_descriptor::<10>(bytes, Self::DESCRIPTOR_TYPE, "device qualifier")?;
        Ok(Self {
            bcd_usb: le16(b[2], b[3]),
            b_device_class: b[4],
            b_device_sub_class: b[5],
            b_device_protocol: b[6],
            b_max_packet_size0: b[7],
            b_num_configurations: b[8],
        })
    }

    /// The qualifier describing `device` (class, protocol, EP0 size and configuration count
    /// are assumed to be the same at the other speed).
    pub const fn from_device(device: &DeviceDescriptor) -> Self {
        Self {
            bcd_usb: device.bcd_usb,
            b_device_class: device.b_device_class,
            b_device_sub_class: device.b_device_sub_class,
            b_device_protocol: device.b_device_protocol,
            b_max_packet_size0: device.b_max_packet_size0,
            b_num_configurations: device.b_num_configurations,
        }
    }

    /// The 10 wire bytes (`bReserved` is written as 0).
    pub const fn to_array(&self) -> [u8; 10] {
        let [usb0, usb1] = self.bcd_usb.to_le_bytes();
        [
            10,
            Self::DESCRIPTOR_TYPE.0,
            usb0,
            usb1,
            self.b_device_class,
            self.b_device_sub_class,
            self.b_device_protocol,
            self.b_max_packet_size0,
            self.b_num_configurations,
            0,
        ]
    }
}
fixed_descriptor_io!(DeviceQualifierDescriptor);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A USB optical mouse (Logitech 046d:c077), as `lsusb -v` shows it.
    const MOUSE_DEVICE: [u8; 18] = [
        0x12, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x08, 0x6d, 0x04, 0x77, 0xc0, 0x00, 0x72, 0x01,
        0x02, 0x00, 0x01,
    ];

    #[test]
    fn parse_mouse_device_descriptor() {
        let d = DeviceDescriptor::parse(&MOUSE_DEVICE).unwrap();
        assert_eq!(d.bcd_usb, 0x0200);
        assert_eq!(d.b_max_packet_size0, 8);
        assert_eq!(d.id_vendor, 0x046d);
        assert_eq!(d.id_product, 0xc077);
        assert_eq!(d.bcd_device, 0x7200);
        assert_eq!(
            (d.i_manufacturer, d.i_product, d.i_serial_number),
            (1, 2, 0)
        );
        assert_eq!(d.b_num_configurations, 1);
        assert_eq!(d.to_array(), MOUSE_DEVICE);
        assert_eq!(d.to_bytes(), MOUSE_DEVICE.to_vec());
    }

    #[test]
    fn short_reads_and_bad_headers() {
        // A host's first 8-byte read of the device descriptor.
        assert_eq!(
            DeviceDescriptor::parse(&MOUSE_DEVICE[..8]),
            Err(WireError::BadLength {
                descriptor_type: DescriptorType::DEVICE,
                b_length: 18
            })
        );
        assert_eq!(
            DeviceDescriptor::parse(&MOUSE_DEVICE[..1]),
            Err(WireError::Truncated {
                what: "device descriptor",
                needed: 18,
                available: 1
            })
        );
        let mut wrong = MOUSE_DEVICE;
        wrong[1] = 2;
        assert_eq!(
            DeviceDescriptor::parse(&wrong),
            Err(WireError::WrongDescriptorType {
                expected: DescriptorType::DEVICE,
                found: DescriptorType::CONFIGURATION
            })
        );
        for b_length in [0u8, 1, 17] {
            let mut short = MOUSE_DEVICE;
            short[0] = b_length;
            assert_eq!(
                DeviceDescriptor::parse(&short),
                Err(WireError::BadLength {
                    descriptor_type: DescriptorType::DEVICE,
                    b_length
                })
            );
        }
        // A longer bLength is tolerated when the buffer holds it.
        let mut long = MOUSE_DEVICE.to_vec();
        long[0] = 20;
        long.extend([0xaa, 0xbb]);
        assert_eq!(DeviceDescriptor::parse(&long).unwrap().id_vendor, 0x046d);
    }

    #[test]
    fn qualifier() {
        let device = DeviceDescriptor::parse(&MOUSE_DEVICE).unwrap();
        let q = DeviceQualifierDescriptor::from_device(&device);
        let bytes = q.to_bytes();
        assert_eq!(bytes, [10, 6, 0x00, 0x02, 0, 0, 0, 8, 1, 0]);
        assert_eq!(DeviceQualifierDescriptor::parse(&bytes), Ok(q));
        assert!(DeviceQualifierDescriptor::parse(&bytes[..9]).is_err());
    }

    prop_compose! {
        fn any_device()(
            a in any::<(u16, u8, u8, u8, u8, u16)>(),
            b in any::<(u16, u16, u8, u8, u8, u8)>(),
        ) -> DeviceDescriptor {
            DeviceDescriptor {
                bcd_usb: a.0,
                b_device_class: a.1,
                b_device_sub_class: a.2,
                b_device_protocol: a.3,
                b_max_packet_size0: a.4,
                id_vendor: a.5,
                id_product: b.0,
                bcd_device: b.1,
                i_manufacturer: b.2,
                i_product: b.3,
                i_serial_number: b.4,
                b_num_configurations: b.5,
            }
        }
    }

    proptest! {
        #[test]
        fn device_round_trip(d in any_device()) {
            prop_assert_eq!(DeviceDescriptor::parse(&d.to_bytes()), Ok(d));
            let q = DeviceQualifierDescriptor::from_device(&d);
            prop_assert_eq!(DeviceQualifierDescriptor::parse(&q.to_bytes()), Ok(q));
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = DeviceDescriptor::parse(&bytes);
            let _ = DeviceQualifierDescriptor::parse(&bytes);
        }
    }
}
