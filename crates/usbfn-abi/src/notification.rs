//! `USBFN_NOTIFICATION` (the answer to `BUS_EVENT_NOTIFICATION`) and `ALTERNATE_INTERFACE`.

use crate::codec::{Reader, Writer, fixed_size};
use crate::{AbiError, BusSpeed, PortType, SetupPacketRaw, UsbfnEvent};

/// `ALTERNATE_INTERFACE`: the payload of a SetInterface event, 4 bytes.
#[doc(alias = "ALTERNATE_INTERFACE")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AlternateInterface {
    /// `InterfaceNumber`.
    #[doc(alias = "InterfaceNumber")]
    pub interface_number: u16,
    /// `AlternateInterfaceNumber`: the alternate setting selected.
    #[doc(alias = "AlternateInterfaceNumber")]
    pub alternate_interface_number: u16,
}

/// `USBFN_NOTIFICATION`: a bus event and its payload, 12 bytes.
///
/// The `Event` is a `u32` at offset 0, the 8-byte union at offset 4. Which union member is
/// meaningful depends on the event; see [`NotificationData::from_union_bytes`].
///
/// ```
/// use usbfn_abi::{BusSpeed, Notification, NotificationData, UsbfnEvent};
/// let bytes = [2, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]; // Reset at high speed
/// let n = Notification::decode(&bytes)?;
/// assert_eq!(n.event, UsbfnEvent::RESET);
/// assert_eq!(n.data, NotificationData::BusSpeed(BusSpeed::HIGH));
/// assert_eq!(n.encode(), bytes);
/// # Ok::<(), usbfn_abi::AbiError>(())
/// ```
#[doc(alias = "USBFN_NOTIFICATION")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Notification {
    /// `Event`.
    #[doc(alias = "Event")]
    pub event: UsbfnEvent,
    /// The union `u`, typed by `event`.
    pub data: NotificationData,
}

/// The union of `USBFN_NOTIFICATION`, typed by the event it came with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum NotificationData {
    /// An event without payload (Attach, Detach, Suspend, Resume, UnConfigured, BusTearDown,
    /// Minimum, Maximum): the union is written as zeros and ignored on decode.
    #[default]
    None,
    /// `BusSpeed` (Reset).
    BusSpeed(BusSpeed),
    /// `SetupPacket` (SetupPacket): the 8 setup bytes as received; see
    /// [`Notification::setup_packet`] for the fields.
    SetupPacket([u8; 8]),
    /// `ConfigurationValue`, the `wValue` of SET_CONFIGURATION (Configured).
    ConfigurationValue(u16),
    /// `PortType` (the deprecated PortType event).
    PortType(PortType),
    /// `AlternateInterface` (SetInterface).
    AlternateInterface(AlternateInterface),
    /// The raw union of an event this crate does not know, kept byte for byte.
    Unknown([u8; 8]),
}

/// Byte offsets (pinned against the `raw` layouts in the tests).
mod field {
    pub(super) const EVENT: usize = 0;
    pub(super) const UNION: usize = 4;
    pub(super) const UNION_SIZE: usize = 8;
    pub(super) const ALT_INTERFACE_NUMBER: usize = 0;
    pub(super) const ALT_ALTERNATE_INTERFACE_NUMBER: usize = 2;
}

fixed_size!(AlternateInterface, "ALTERNATE_INTERFACE", 4);
fixed_size!(Notification, "USBFN_NOTIFICATION", 12);

impl AlternateInterface {
    /// The 4 bytes, little-endian.
    #[must_use]
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut out = [0; Self::SIZE];
        let mut w = Writer::new(&mut out);
        w.u16(field::ALT_INTERFACE_NUMBER, self.interface_number);
        w.u16(
            field::ALT_ALTERNATE_INTERFACE_NUMBER,
            self.alternate_interface_number,
        );
        out
    }

    /// Decodes the first 4 bytes.
    ///
    /// # Errors
    ///
    /// [`AbiError::BufferTooShort`].
    pub fn decode(bytes: &[u8]) -> Result<Self, AbiError> {
        let r = Reader::new(bytes, Self::SIZE, Self::WINDOWS_NAME)?;
        Ok(Self {
            interface_number: r.u16(field::ALT_INTERFACE_NUMBER),
            alternate_interface_number: r.u16(field::ALT_ALTERNATE_INTERFACE_NUMBER),
        })
    }
}

impl NotificationData {
    /// Types the 8 union bytes by the event they came with:
    ///
    /// | event | member |
    /// |---|---|
    /// | Reset | `BusSpeed` |
    /// | SetupPacket | `SetupPacket` |
    /// | Configured | `ConfigurationValue` |
    /// | PortType | `PortType` |
    /// | SetInterface | `AlternateInterface` |
    /// | other known events | none (bytes ignored) |
    /// | unknown events | [`Unknown`](Self::Unknown), bytes kept |
    ///
    /// `usbfnbase.h` also mentions the bus speed in its Detach comment; usbfn follows the spec
    /// and treats Detach as carrying nothing.
    #[must_use]
    pub fn from_union_bytes(event: UsbfnEvent, u: [u8; 8]) -> Self {
        let [a, b, c, d, ..] = u;
        let u32_at_0 = u32::from_le_bytes([a, b, c, d]);
        match event {
            UsbfnEvent::RESET => Self::BusSpeed(BusSpeed(u32_at_0)),
            UsbfnEvent::SETUP_PACKET => Self::SetupPacket(u),
            UsbfnEvent::CONFIGURED => Self::ConfigurationValue(u16::from_le_bytes([a, b])),
            UsbfnEvent::PORT_TYPE => Self::PortType(PortType(u32_at_0)),
            UsbfnEvent::SET_INTERFACE => Self::AlternateInterface(AlternateInterface {
                interface_number: u16::from_le_bytes([a, b]),
                alternate_interface_number: u16::from_le_bytes([c, d]),
            }),
            e if e.is_known() => Self::None,
            _ => Self::Unknown(u),
        }
    }

    /// The 8 union bytes (bytes past the member written as zero).
    #[must_use]
    pub fn to_union_bytes(&self) -> [u8; 8] {
        let mut u = [0u8; field::UNION_SIZE];
        let mut w = Writer::new(&mut u);
        match *self {
            Self::None => {}
            Self::BusSpeed(speed) => w.u32(0, speed.0),
            Self::SetupPacket(bytes) | Self::Unknown(bytes) => w.bytes(0, &bytes),
            Self::ConfigurationValue(value) => w.u16(0, value),
            Self::PortType(port) => w.u32(0, port.0),
            Self::AlternateInterface(alt) => w.bytes(0, &alt.encode()),
        }
        u
    }
}

impl Notification {
    /// An event with its data.
    #[must_use]
    pub const fn new(event: UsbfnEvent, data: NotificationData) -> Self {
        Self { event, data }
    }

    /// An event without payload (Attach, Detach, Suspend, Resume, UnConfigured).
    #[must_use]
    pub const fn event_only(event: UsbfnEvent) -> Self {
        Self::new(event, NotificationData::None)
    }

    /// Reset at `speed`.
    #[must_use]
    pub const fn reset(speed: BusSpeed) -> Self {
        Self::new(UsbfnEvent::RESET, NotificationData::BusSpeed(speed))
    }

    /// A setup packet for the service.
    #[must_use]
    pub const fn setup(bytes: [u8; 8]) -> Self {
        Self::new(
            UsbfnEvent::SETUP_PACKET,
            NotificationData::SetupPacket(bytes),
        )
    }

    /// Configured with `configuration_value`.
    #[must_use]
    pub const fn configured(configuration_value: u16) -> Self {
        Self::new(
            UsbfnEvent::CONFIGURED,
            NotificationData::ConfigurationValue(configuration_value),
        )
    }

    /// SetInterface.
    #[must_use]
    pub const fn set_interface(alternate: AlternateInterface) -> Self {
        Self::new(
            UsbfnEvent::SET_INTERFACE,
            NotificationData::AlternateInterface(alternate),
        )
    }

    /// The setup packet's fields, for a SetupPacket event.
    #[must_use]
    pub const fn setup_packet(&self) -> Option<SetupPacketRaw> {
        match self.data {
            NotificationData::SetupPacket(bytes) => Some(SetupPacketRaw::from_bytes(bytes)),
            _ => None,
        }
    }

    /// The bus speed, for a Reset event.
    #[must_use]
    pub const fn bus_speed(&self) -> Option<BusSpeed> {
        match self.data {
            NotificationData::BusSpeed(speed) => Some(speed),
            _ => None,
        }
    }

    /// The 12 bytes: the event, then [`NotificationData::to_union_bytes`].
    ///
    /// The data is written as given even if it does not match the event; decoding such bytes
    /// types them by the event.
    #[must_use]
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut out = [0; Self::SIZE];
        let mut w = Writer::new(&mut out);
        w.u32(field::EVENT, self.event.0);
        w.bytes(field::UNION, &self.data.to_union_bytes());
        out
    }

    /// Decodes the first 12 bytes; the union is typed with
    /// [`NotificationData::from_union_bytes`].
    ///
    /// # Errors
    ///
    /// [`AbiError::BufferTooShort`].
    pub fn decode(bytes: &[u8]) -> Result<Self, AbiError> {
        let r = Reader::new(bytes, Self::SIZE, Self::WINDOWS_NAME)?;
        let event = UsbfnEvent(r.u32(field::EVENT));
        Ok(Self {
            event,
            data: NotificationData::from_union_bytes(event, r.array(field::UNION)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};
    use proptest::prelude::*;

    #[test]
    fn offsets_match_raw() {
        use crate::raw::{
            AlternateInterface as A, UsbfnNotification as N, UsbfnNotificationData as U,
        };
        assert_eq!(Notification::SIZE, size_of::<N>());
        assert_eq!(field::EVENT, offset_of!(N, event));
        assert_eq!(field::UNION, offset_of!(N, u));
        assert_eq!(field::UNION_SIZE, size_of::<U>());
        assert_eq!(AlternateInterface::SIZE, size_of::<A>());
        assert_eq!(field::ALT_INTERFACE_NUMBER, offset_of!(A, interface_number));
        assert_eq!(
            field::ALT_ALTERNATE_INTERFACE_NUMBER,
            offset_of!(A, alternate_interface_number)
        );
    }

    #[test]
    fn hand_written_vectors() {
        let setup = [0xA1, 0x01, 0x00, 0x01, 0x02, 0x00, 0x40, 0x00];
        let cases: [([u8; 12], Notification); 7] = [
            (
                [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                Notification::event_only(UsbfnEvent::ATTACH),
            ),
            (
                [2, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0],
                Notification::reset(BusSpeed::SUPER),
            ),
            (
                [6, 0, 0, 0, 0xA1, 0x01, 0x00, 0x01, 0x02, 0x00, 0x40, 0x00],
                Notification::setup(setup),
            ),
            (
                [7, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0],
                Notification::configured(1),
            ),
            (
                [9, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0],
                Notification::new(
                    UsbfnEvent::PORT_TYPE,
                    NotificationData::PortType(PortType::CHARGING_DOWNSTREAM),
                ),
            ),
            (
                [11, 0, 0, 0, 3, 0, 1, 0, 0, 0, 0, 0],
                Notification::set_interface(AlternateInterface {
                    interface_number: 3,
                    alternate_interface_number: 1,
                }),
            ),
            (
                [0x2A, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8],
                Notification::new(
                    UsbfnEvent(42),
                    NotificationData::Unknown([1, 2, 3, 4, 5, 6, 7, 8]),
                ),
            ),
        ];
        for (bytes, notification) in cases {
            assert_eq!(Notification::decode(&bytes), Ok(notification), "{bytes:?}");
            assert_eq!(notification.encode(), bytes, "{notification:?}");
        }
        let n = Notification::setup(setup);
        assert_eq!(
            n.setup_packet().map(|s| (s.request, s.value, s.length)),
            Some((1, 0x0100, 64))
        );
        assert_eq!(n.bus_speed(), None);
        assert_eq!(
            Notification::reset(BusSpeed::HIGH).bus_speed(),
            Some(BusSpeed::HIGH)
        );
    }

    #[test]
    fn unknown_enum_values_survive() {
        // Reset with a bus speed this crate does not know.
        let bytes = [2, 0, 0, 0, 0x10, 0, 0, 0x80, 0, 0, 0, 0];
        let n = Notification::decode(&bytes).unwrap();
        assert_eq!(n.data, NotificationData::BusSpeed(BusSpeed(0x8000_0010)));
        assert_eq!(
            format!("{:?}", n.bus_speed().unwrap()),
            "BusSpeed(0x80000010)"
        );
        assert_eq!(n.encode(), bytes);
    }

    #[test]
    fn payload_less_events_ignore_union() {
        let bytes = [3, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        let n = Notification::decode(&bytes).unwrap();
        assert_eq!(n, Notification::event_only(UsbfnEvent::DETACH));
        assert_eq!(n.encode(), [3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn truncated() {
        assert_eq!(
            Notification::decode(&[2, 0, 0, 0, 2, 0, 0, 0]),
            Err(AbiError::BufferTooShort {
                structure: "USBFN_NOTIFICATION",
                need: 12,
                got: 8
            })
        );
        assert!(matches!(
            AlternateInterface::decode(&[1, 0, 0]),
            Err(AbiError::BufferTooShort {
                structure: "ALTERNATE_INTERFACE",
                need: 4,
                got: 3
            })
        ));
    }

    fn arb_notification() -> impl Strategy<Value = Notification> {
        let simple = [
            UsbfnEvent::ATTACH,
            UsbfnEvent::DETACH,
            UsbfnEvent::SUSPEND,
            UsbfnEvent::RESUME,
            UsbfnEvent::UNCONFIGURED,
            UsbfnEvent::BUS_TEAR_DOWN,
        ];
        prop_oneof![
            proptest::sample::select(simple.to_vec()).prop_map(Notification::event_only),
            any::<u32>().prop_map(|s| Notification::reset(BusSpeed(s))),
            any::<[u8; 8]>().prop_map(Notification::setup),
            any::<u16>().prop_map(Notification::configured),
            any::<u32>().prop_map(|p| Notification::new(
                UsbfnEvent::PORT_TYPE,
                NotificationData::PortType(PortType(p))
            )),
            (any::<u16>(), any::<u16>()).prop_map(|(i, a)| Notification::set_interface(
                AlternateInterface {
                    interface_number: i,
                    alternate_interface_number: a,
                }
            )),
            (13u32.., any::<[u8; 8]>())
                .prop_map(|(e, u)| Notification::new(UsbfnEvent(e), NotificationData::Unknown(u))),
        ]
    }

    proptest! {
        #[test]
        fn decode_encode_decode_is_stable(bytes in any::<[u8; 12]>(), event in 0u32..16) {
            let mut bytes = bytes;
            bytes[..4].copy_from_slice(&event.to_le_bytes());
            let n = Notification::decode(&bytes).unwrap();
            prop_assert_eq!(Notification::decode(&n.encode()), Ok(n));
        }

        #[test]
        fn typed_round_trip(n in arb_notification()) {
            prop_assert_eq!(Notification::decode(&n.encode()), Ok(n));
        }
    }
}
