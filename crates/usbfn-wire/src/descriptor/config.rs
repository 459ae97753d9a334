//! CONFIGURATION, INTERFACE and INTERFACE_ASSOCIATION descriptors (USB 2.0 §9.6.3, §9.6.5,
//! USB 3.2 §9.6.4).
//!
//! These are the fixed headers only; [`ConfigurationTree`](crate::ConfigurationTree) parses
//! the whole GET_DESCRIPTOR(CONFIGURATION) answer.

use super::{fixed_descriptor, fixed_descriptor_io, le16};
use crate::{DescriptorType, WireError};

/// The configuration descriptor header (USB 2.0 table 9-10). The same layout with type
/// OTHER_SPEED_CONFIGURATION is the other-speed configuration descriptor (table 9-11).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ConfigurationDescriptor {
    /// Length of this descriptor plus all interface, endpoint and class descriptors after it.
    #[doc(alias = "wTotalLength")]
    pub w_total_length: u16,
    /// Number of interfaces (not counting alternate settings).
    #[doc(alias = "bNumInterfaces")]
    pub b_num_interfaces: u8,
    /// The value SET_CONFIGURATION selects this configuration with (not 0).
    #[doc(alias = "bConfigurationValue")]
    pub b_configuration_value: u8,
    /// String index describing this configuration, 0 for none.
    #[doc(alias = "iConfiguration")]
    pub i_configuration: u8,
    /// Bit 7 reserved (set), bit 6 self-powered, bit 5 remote wakeup; see the `ATTR_*`
    /// constants.
    #[doc(alias = "bmAttributes")]
    pub bm_attributes: u8,
    /// Maximum bus power, in units of 2 mA (high/full speed) or 8 mA (SuperSpeed).
    #[doc(alias = "bMaxPower")]
    pub b_max_power: u8,
}

/// The interface descriptor (USB 2.0 table 9-12): one alternate setting of one interface.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct InterfaceDescriptor {
    /// Interface number (zero-based).
    #[doc(alias = "bInterfaceNumber")]
    pub b_interface_number: u8,
    /// Alternate setting.
    #[doc(alias = "bAlternateSetting")]
    pub b_alternate_setting: u8,
    /// Number of endpoints, excluding endpoint 0.
    #[doc(alias = "bNumEndpoints")]
    pub b_num_endpoints: u8,
    /// Class code.
    #[doc(alias = "bInterfaceClass")]
    pub b_interface_class: u8,
    /// Subclass code.
    #[doc(alias = "bInterfaceSubClass")]
    pub b_interface_sub_class: u8,
    /// Protocol code.
    #[doc(alias = "bInterfaceProtocol")]
    pub b_interface_protocol: u8,
    /// String index describing this interface, 0 for none.
    #[doc(alias = "iInterface")]
    pub i_interface: u8,
}

/// The interface association descriptor (IAD, USB 3.2 table 9-16): groups consecutive
/// interfaces into one function.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct InterfaceAssociationDescriptor {
    /// First interface of the function.
    #[doc(alias = "bFirstInterface")]
    pub b_first_interface: u8,
    /// Number of contiguous interfaces.
    #[doc(alias = "bInterfaceCount")]
    pub b_interface_count: u8,
    /// Function class code.
    #[doc(alias = "bFunctionClass")]
    pub b_function_class: u8,
    /// Function subclass code.
    #[doc(alias = "bFunctionSubClass")]
    pub b_function_sub_class: u8,
    /// Function protocol code.
    #[doc(alias = "bFunctionProtocol")]
    pub b_function_protocol: u8,
    /// String index describing the function, 0 for none.
    #[doc(alias = "iFunction")]
    pub i_function: u8,
}

impl ConfigurationDescriptor {
    /// `bLength`.
    pub const LENGTH: usize = 9;
    /// `bDescriptorType`.
    pub const DESCRIPTOR_TYPE: DescriptorType = DescriptorType::CONFIGURATION;
    /// `bmAttributes` bit 7: reserved, must be set.
    pub const ATTR_RESERVED_ONE: u8 = 0x80;
    /// `bmAttributes` bit 6: self-powered.
    pub const ATTR_SELF_POWERED: u8 = 0x40;
    /// `bmAttributes` bit 5: supports remote wakeup.
    pub const ATTR_REMOTE_WAKEUP: u8 = 0x20;

    /// Parses the configuration descriptor header at the start of `bytes` (type
    /// CONFIGURATION). Only the 9-byte header is read; `wTotalLength` is not checked here.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        Self::parse_as(bytes, Self::DESCRIPTOR_TYPE)
    }

    /// Like [`parse`](Self::parse) but for type OTHER_SPEED_CONFIGURATION.
    pub fn parse_other_speed(bytes: &[u8]) -> Result<Self, WireError> {
        Self::parse_as(bytes, DescriptorType::OTHER_SPEED_CONFIGURATION)
    }

    /// Parses the header with the given `bDescriptorType` (CONFIGURATION or
    /// OTHER_SPEED_CONFIGURATION).
    pub fn parse_as(bytes: &[u8], descriptor_type: DescriptorType) -> Result<Self, WireError> {
        let b = fixed_descriptor::<9>(bytes, descriptor_type, "configuration descriptor")?;
        Ok(Self {
            w_total_length: le16(b[2], b[3]),
            b_num_interfaces: b[4],
            b_configuration_value: b[5],
            i_configuration: b[6],
            bm_attributes: b[7],
            b_max_power: b[8],
        })
    }

    /// Whether `bmAttributes` says self-powered.
    pub const fn self_powered(&self) -> bool {
        self.bm_attributes & Self::ATTR_SELF_POWERED != 0
    }

    /// Whether `bmAttributes` says remote wakeup is supported.
    pub const fn remote_wakeup(&self) -> bool {
        self.bm_attributes & Self::ATTR_REMOTE_WAKEUP != 0
    }

    /// The 9 wire bytes (type CONFIGURATION).
    pub const fn to_array(&self) -> [u8; 9] {
        self.to_array_as(Self::DESCRIPTOR_TYPE)
    }

    /// The 9 wire bytes with the given `bDescriptorType` (e.g. OTHER_SPEED_CONFIGURATION).
    pub const fn to_array_as(&self, descriptor_type: DescriptorType) -> [u8; 9] {
        let [total0, total1] = self.w_total_length.to_le_bytes();
        [
            9,
            descriptor_type.0,
            total0,
            total1,
            self.b_num_interfaces,
            self.b_configuration_value,
            self.i_configuration,
            self.bm_attributes,
            self.b_max_power,
        ]
    }
}
fixed_descriptor_io!(ConfigurationDescriptor);

impl InterfaceDescriptor {
    /// `bLength`.
    pub const LENGTH: usize = 9;
    /// `bDescriptorType`.
    pub const DESCRIPTOR_TYPE: DescriptorType = DescriptorType::INTERFACE;

    /// Parses the interface descriptor at the start of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let b = fixed_descriptor::<9>(bytes, Self::DESCRIPTOR_TYPE, "interface descriptor")?;
        Ok(Self {
            b_interface_number: b[2],
            b_alternate_setting: b[3],
            b_num_endpoints: b[4],
            b_interface_class: b[5],
            b_interface_sub_class: b[6],
            b_interface_protocol: b[7],
            i_interface: b[8],
        })
    }

    /// The 9 wire bytes.
    pub const fn to_array(&self) -> [u8; 9] {
        [
            9,
            Self::DESCRIPTOR_TYPE.0,
            self.b_interface_number,
            self.b_alternate_setting,
            self.b_num_endpoints,
            self.b_interface_class,
            self.b_interface_sub_class,
            self.b_interface_protocol,
            self.i_interface,
        ]
    }
}
fixed_descriptor_io!(InterfaceDescriptor);

impl InterfaceAssociationDescriptor {
    /// `bLength`.
    pub const LENGTH: usize = 8;
    /// `bDescriptorType`.
    pub const DESCRIPTOR_TYPE: DescriptorType = DescriptorType::INTERFACE_ASSOCIATION;

    /// Parses the interface association descriptor at the start of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let what = "interface association descriptor";
        let b = fixed_descriptor::<8>(bytes, Self::DESCRIPTOR_TYPE, what)?;
        Ok(Self {
            b_first_interface: b[2],
            b_interface_count: b[3],
            b_function_class: b[4],
            b_function_sub_class: b[5],
            b_function_protocol: b[6],
            i_function: b[7],
        })
    }

    /// Whether `interface` is one of the interfaces this association groups.
    pub const fn contains(&self, interface: u8) -> bool {
        interface >= self.b_first_interface
            && ((interface - self.b_first_interface) as usize) < self.b_interface_count as usize
    }

    /// The 8 wire bytes.
    pub const fn to_array(&self) -> [u8; 8] {
        [
            8,
            Self::DESCRIPTOR_TYPE.0,
            self.b_first_interface,
            self.b_interface_count,
            self.b_function_class,
            self.b_function_sub_class,
            self.b_function_protocol,
            self.i_function,
        ]
    }
}
fixed_descriptor_io!(InterfaceAssociationDescriptor);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn configuration_header() {
        // The header of a bus-powered 100 mA configuration with one interface.
        let bytes = [0x09, 0x02, 0x22, 0x00, 0x01, 0x01, 0x00, 0xa0, 0x32];
        let c = ConfigurationDescriptor::parse(&bytes).unwrap();
        assert_eq!(c.w_total_length, 0x22);
        assert_eq!(c.b_num_interfaces, 1);
        assert_eq!(c.b_configuration_value, 1);
        assert!(!c.self_powered());
        assert!(c.remote_wakeup());
        assert_eq!(c.b_max_power, 50);
        assert_eq!(c.to_array(), bytes);
        let other = c.to_array_as(DescriptorType::OTHER_SPEED_CONFIGURATION);
        assert_eq!(other[1], 7);
        assert_eq!(ConfigurationDescriptor::parse_other_speed(&other), Ok(c));
        assert_eq!(
            ConfigurationDescriptor::parse(&other),
            Err(WireError::WrongDescriptorType {
                expected: DescriptorType::CONFIGURATION,
                found: DescriptorType::OTHER_SPEED_CONFIGURATION,
            })
        );
    }

    #[test]
    fn interface_and_iad() {
        // A CDC ACM control interface and the IAD that groups it with its data interface.
        let iface = [0x09, 0x04, 0x00, 0x00, 0x01, 0x02, 0x02, 0x01, 0x04];
        let i = InterfaceDescriptor::parse(&iface).unwrap();
        assert_eq!(
            (
                i.b_interface_number,
                i.b_alternate_setting,
                i.b_num_endpoints
            ),
            (0, 0, 1)
        );
        assert_eq!((i.b_interface_class, i.b_interface_sub_class), (2, 2));
        assert_eq!(i.to_array(), iface);
        let iad = [0x08, 0x0b, 0x00, 0x02, 0x02, 0x02, 0x01, 0x00];
        let a = InterfaceAssociationDescriptor::parse(&iad).unwrap();
        assert_eq!((a.b_first_interface, a.b_interface_count), (0, 2));
        assert!(a.contains(0) && a.contains(1) && !a.contains(2));
        assert_eq!(a.to_array(), iad);
        assert_eq!(
            InterfaceAssociationDescriptor::parse(&iad[..7]),
            Err(WireError::BadLength {
                descriptor_type: DescriptorType::INTERFACE_ASSOCIATION,
                b_length: 8
            })
        );
        let mut short = iface;
        short[0] = 7;
        assert_eq!(
            InterfaceDescriptor::parse(&short),
            Err(WireError::BadLength {
                descriptor_type: DescriptorType::INTERFACE,
                b_length: 7
            })
        );
    }

    proptest! {
        #[test]
        fn round_trips(a in any::<[u8; 7]>(), total in any::<u16>()) {
            let c = ConfigurationDescriptor {
                w_total_length: total,
                b_num_interfaces: a[0],
                b_configuration_value: a[1],
                i_configuration: a[2],
                bm_attributes: a[3],
                b_max_power: a[4],
            };
            prop_assert_eq!(ConfigurationDescriptor::parse(&c.to_bytes()), Ok(c));
            let i = InterfaceDescriptor {
                b_interface_number: a[0],
                b_alternate_setting: a[1],
                b_num_endpoints: a[2],
                b_interface_class: a[3],
                b_interface_sub_class: a[4],
                b_interface_protocol: a[5],
                i_interface: a[6],
            };
            prop_assert_eq!(InterfaceDescriptor::parse(&i.to_bytes()), Ok(i));
            let iad = InterfaceAssociationDescriptor {
                b_first_interface: a[0],
                b_interface_count: a[1],
                b_function_class: a[2],
                b_function_sub_class: a[3],
                b_function_protocol: a[4],
                i_function: a[5],
            };
            prop_assert_eq!(InterfaceAssociationDescriptor::parse(&iad.to_bytes()), Ok(iad));
            let _ = iad.contains(a[6]);
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..24)) {
            let _ = ConfigurationDescriptor::parse(&bytes);
            let _ = InterfaceDescriptor::parse(&bytes);
            let _ = InterfaceAssociationDescriptor::parse(&bytes);
        }
    }
}
