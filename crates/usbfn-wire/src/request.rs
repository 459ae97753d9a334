//! Chapter-9 request codes, feature selectors and descriptor types.
//!
//! Each is a newtype over the wire integer with named constants, so a value this crate does not
//! know (a class or vendor code, a newer spec revision) survives parsing and re-encoding
//! unchanged. `Debug` prints `DescriptorType::DEVICE` for a known value and
//! `DescriptorType(0x42)` otherwise.

wire_newtype! {
    /// A standard request code (`bRequest` of a standard request, USB 2.0 table 9-4,
    /// USB 3.2 table 9-5).
    ///
    /// Only meaningful when the setup packet's request type is
    /// [`RequestType::Standard`](crate::RequestType::Standard); class and vendor requests reuse
    /// the same numbers for other things.
    #[doc(alias = "bRequest")]
    pub struct StandardRequest(u8);
    /// GET_STATUS (0).
    GET_STATUS = 0;
    /// CLEAR_FEATURE (1).
    CLEAR_FEATURE = 1;
    /// SET_FEATURE (3).
    SET_FEATURE = 3;
    /// SET_ADDRESS (5).
    SET_ADDRESS = 5;
    /// GET_DESCRIPTOR (6).
    GET_DESCRIPTOR = 6;
    /// SET_DESCRIPTOR (7).
    SET_DESCRIPTOR = 7;
    /// GET_CONFIGURATION (8).
    GET_CONFIGURATION = 8;
    /// SET_CONFIGURATION (9).
    SET_CONFIGURATION = 9;
    /// GET_INTERFACE (10).
    GET_INTERFACE = 10;
    /// SET_INTERFACE (11).
    SET_INTERFACE = 11;
    /// SYNCH_FRAME (12).
    SYNCH_FRAME = 12;
    /// SET_SEL (48, SuperSpeed): the host tells the device the system exit latencies.
    SET_SEL = 48;
    /// SET_ISOCH_DELAY (49, SuperSpeed).
    SET_ISOCH_DELAY = 49;
}

wire_newtype! {
    /// A feature selector (`wValue` of SET_FEATURE / CLEAR_FEATURE, USB 2.0 table 9-6,
    /// USB 3.2 table 9-7).
    ///
    /// The meaning depends on the recipient: value 0 is `ENDPOINT_HALT` for an endpoint and
    /// [`FUNCTION_SUSPEND`](Self::FUNCTION_SUSPEND) for an interface; `name()` reports the
    /// endpoint / device meaning.
    #[doc(alias = "wValue")]
    pub struct FeatureSelector(u16);
    /// ENDPOINT_HALT (0, recipient endpoint).
    ENDPOINT_HALT = 0;
    /// DEVICE_REMOTE_WAKEUP (1, recipient device).
    DEVICE_REMOTE_WAKEUP = 1;
    /// TEST_MODE (2, recipient device; the test selector is the high byte of `wIndex`).
    TEST_MODE = 2;
    /// b_hnp_enable (3, OTG).
    B_HNP_ENABLE = 3;
    /// a_hnp_support (4, OTG).
    A_HNP_SUPPORT = 4;
    /// a_alt_hnp_support (5, OTG).
    A_ALT_HNP_SUPPORT = 5;
    /// U1_ENABLE (48, SuperSpeed, recipient device).
    U1_ENABLE = 48;
    /// U2_ENABLE (49, SuperSpeed, recipient device).
    U2_ENABLE = 49;
    /// LTM_ENABLE (50, SuperSpeed, recipient device).
    LTM_ENABLE = 50;
}

impl FeatureSelector {
    /// FUNCTION_SUSPEND (0, SuperSpeed, recipient interface). Same value as
    /// [`ENDPOINT_HALT`](Self::ENDPOINT_HALT); the recipient tells them apart.
    pub const FUNCTION_SUSPEND: Self = Self(0);
}

wire_newtype! {
    /// A descriptor type (`bDescriptorType`, USB 2.0 table 9-5, USB 3.2 table 9-6, plus the
    /// HID class types that hosts ask for with a standard GET_DESCRIPTOR).
    #[doc(alias = "bDescriptorType")]
    pub struct DescriptorType(u8);
    /// DEVICE (1).
    DEVICE = 1;
    /// CONFIGURATION (2).
    CONFIGURATION = 2;
    /// STRING (3).
    STRING = 3;
    /// INTERFACE (4).
    INTERFACE = 4;
    /// ENDPOINT (5).
    ENDPOINT = 5;
    /// DEVICE_QUALIFIER (6, high-speed capable devices).
    DEVICE_QUALIFIER = 6;
    /// OTHER_SPEED_CONFIGURATION (7, high-speed capable devices).
    OTHER_SPEED_CONFIGURATION = 7;
    /// INTERFACE_POWER (8).
    INTERFACE_POWER = 8;
    /// OTG (9).
    OTG = 9;
    /// DEBUG (10).
    DEBUG = 10;
    /// INTERFACE_ASSOCIATION (11).
    INTERFACE_ASSOCIATION = 11;
    /// BOS (15), binary device object store.
    BOS = 15;
    /// DEVICE_CAPABILITY (16), one entry of a BOS.
    DEVICE_CAPABILITY = 16;
    /// HID (0x21), HID class descriptor.
    HID = 0x21;
    /// HID_REPORT (0x22), HID report descriptor.
    HID_REPORT = 0x22;
    /// HID_PHYSICAL (0x23), HID physical descriptor.
    HID_PHYSICAL = 0x23;
    /// CS_INTERFACE (0x24), class-specific interface descriptor (audio, video, CDC, ...).
    CS_INTERFACE = 0x24;
    /// CS_ENDPOINT (0x25), class-specific endpoint descriptor.
    CS_ENDPOINT = 0x25;
    /// SUPERSPEED_USB_ENDPOINT_COMPANION (48).
    SUPERSPEED_USB_ENDPOINT_COMPANION = 48;
    /// SUPERSPEEDPLUS_ISOCHRONOUS_ENDPOINT_COMPANION (49).
    SUPERSPEEDPLUS_ISOCHRONOUS_ENDPOINT_COMPANION = 49;
}

impl DescriptorType {
    /// The smallest `bLength` this crate accepts for a descriptor of this type: the fixed size
    /// of the types it parses, 2 (the header) for the rest.
    pub const fn min_length(self) -> usize {
        match self {
            Self::DEVICE => 18,
            Self::CONFIGURATION | Self::OTHER_SPEED_CONFIGURATION | Self::INTERFACE => 9,
            Self::ENDPOINT => 7,
            Self::DEVICE_QUALIFIER => 10,
            Self::INTERFACE_ASSOCIATION => 8,
            Self::BOS => 5,
            Self::DEVICE_CAPABILITY => 3,
            Self::SUPERSPEED_USB_ENDPOINT_COMPANION => 6,
            _ => 2,
        }
    }
}

/// Bits of the two-byte GET_STATUS answer (USB 2.0 figures 9-4 and 9-6, USB 3.2 figure 9-4).
pub mod status {
    /// Device status: the device is currently self-powered.
    pub const DEVICE_SELF_POWERED: u16 = 1 << 0;
    /// Device status: remote wakeup is enabled.
    pub const DEVICE_REMOTE_WAKEUP: u16 = 1 << 1;
    /// Device status (SuperSpeed): U1 entry is enabled.
    pub const DEVICE_U1_ENABLE: u16 = 1 << 2;
    /// Device status (SuperSpeed): U2 entry is enabled.
    pub const DEVICE_U2_ENABLE: u16 = 1 << 3;
    /// Device status (SuperSpeed): latency tolerance messages are enabled.
    pub const DEVICE_LTM_ENABLE: u16 = 1 << 4;
    /// Interface status (SuperSpeed): the function may signal remote wakeup.
    pub const INTERFACE_REMOTE_WAKE_CAPABLE: u16 = 1 << 0;
    /// Interface status (SuperSpeed): function remote wakeup is enabled.
    pub const INTERFACE_REMOTE_WAKEUP: u16 = 1 << 1;
    /// Endpoint status: the endpoint is halted.
    pub const ENDPOINT_HALT: u16 = 1 << 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_unknown_values() {
        assert_eq!(
            StandardRequest::GET_DESCRIPTOR.name(),
            Some("GET_DESCRIPTOR")
        );
        assert_eq!(StandardRequest(0x42).name(), None);
        assert_eq!(
            format!("{:?}", StandardRequest(6)),
            "StandardRequest::GET_DESCRIPTOR"
        );
        assert_eq!(
            format!("{:?}", StandardRequest(0x42)),
            "StandardRequest(0x42)"
        );
        assert_eq!(format!("{}", DescriptorType::BOS), "BOS");
        assert_eq!(format!("{}", DescriptorType(0x99)), "0x99");
        assert_eq!(
            format!("{:?}", FeatureSelector(0x1234)),
            "FeatureSelector(0x1234)"
        );
        assert_eq!(
            FeatureSelector::FUNCTION_SUSPEND,
            FeatureSelector::ENDPOINT_HALT
        );
        assert_eq!(FeatureSelector(48).name(), Some("U1_ENABLE"));
        assert_eq!(u8::from(DescriptorType::HID), 0x21);
        assert_eq!(DescriptorType::from(0x22), DescriptorType::HID_REPORT);
    }

    #[test]
    fn spec_values() {
        let expected: [(StandardRequest, u8); 13] = [
            (StandardRequest::GET_STATUS, 0),
            (StandardRequest::CLEAR_FEATURE, 1),
            (StandardRequest::SET_FEATURE, 3),
            (StandardRequest::SET_ADDRESS, 5),
            (StandardRequest::GET_DESCRIPTOR, 6),
            (StandardRequest::SET_DESCRIPTOR, 7),
            (StandardRequest::GET_CONFIGURATION, 8),
            (StandardRequest::SET_CONFIGURATION, 9),
            (StandardRequest::GET_INTERFACE, 10),
            (StandardRequest::SET_INTERFACE, 11),
            (StandardRequest::SYNCH_FRAME, 12),
            (StandardRequest::SET_SEL, 48),
            (StandardRequest::SET_ISOCH_DELAY, 49),
        ];
        for (request, value) in expected {
            assert_eq!(request.0, value);
            assert!(request.name().is_some());
        }
        assert_eq!(DescriptorType::SUPERSPEED_USB_ENDPOINT_COMPANION.0, 48);
        assert_eq!(DescriptorType::INTERFACE_ASSOCIATION.0, 11);
        assert_eq!(DescriptorType::DEVICE.min_length(), 18);
        assert_eq!(DescriptorType::HID.min_length(), 2);
    }
}
