//! `USBFN_CLASS_INFORMATION_PACKET` and `USBFN_CLASS_INFORMATION_PACKET_EX`: the answers to
//! `GET_CLASS_INFO` and `GET_CLASS_INFO_EX`.

use crate::codec::{Reader, Writer, decode_boolean, fixed_size};
use crate::limits::{MAX_INTERFACE_GUID_LENGTH, MAX_INTERFACE_NAME_LENGTH};
use crate::{AbiError, BusSpeed, ClassInterface, ClassInterfaceEx, InterfaceGuid, InterfaceName};

/// `USBFN_CLASS_INFORMATION_PACKET`: an interface's pipes per bus speed, its name and its
/// device interface GUID; 748 bytes.
///
/// `HasInterfaceGuid` is `interface_guid.is_some()`. When it is `FALSE` the `InterfaceGuid`
/// array is written as zeros and ignored on decode.
///
/// ```
/// use usbfn_abi::{ClassInformationPacket, InterfaceName};
/// let packet = ClassInformationPacket {
///     interface_name: InterfaceName::new("HID")?,
///     interface_guid: Some("{5a6b3e7c-1d2f-4a8b-9c0d-e1f2a3b4c5d6}".parse()?),
///     ..Default::default()
/// };
/// let bytes = packet.encode();
/// assert_eq!(bytes.len(), 748);
/// assert_eq!(bytes[550], 1); // HasInterfaceGuid
/// assert_eq!(ClassInformationPacket::decode(&bytes)?, packet);
/// # Ok::<(), usbfn_abi::AbiError>(())
/// ```
#[doc(alias = "USBFN_CLASS_INFORMATION_PACKET")]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ClassInformationPacket {
    /// `FullSpeedClassInterface`.
    #[doc(alias = "FullSpeedClassInterface")]
    pub full_speed: ClassInterface,
    /// `HighSpeedClassInterface`.
    #[doc(alias = "HighSpeedClassInterface")]
    pub high_speed: ClassInterface,
    /// `InterfaceName`.
    #[doc(alias = "InterfaceName")]
    pub interface_name: InterfaceName,
    /// `InterfaceGuid`, present when `HasInterfaceGuid` is `TRUE`.
    #[doc(alias = "InterfaceGuid")]
    #[doc(alias = "HasInterfaceGuid")]
    pub interface_guid: Option<InterfaceGuid>,
    /// `SuperSpeedClassInterface`.
    #[doc(alias = "SuperSpeedClassInterface")]
    pub super_speed: ClassInterface,
}

/// `USBFN_CLASS_INFORMATION_PACKET_EX`: like [`ClassInformationPacket`] for functions that may
/// span several interfaces; 748 bytes.
#[doc(alias = "USBFN_CLASS_INFORMATION_PACKET_EX")]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ClassInformationPacketEx {
    /// `FullSpeedClassInterfaceEx`.
    #[doc(alias = "FullSpeedClassInterfaceEx")]
    pub full_speed: ClassInterfaceEx,
    /// `HighSpeedClassInterfaceEx`.
    #[doc(alias = "HighSpeedClassInterfaceEx")]
    pub high_speed: ClassInterfaceEx,
    /// `SuperSpeedClassInterfaceEx`.
    #[doc(alias = "SuperSpeedClassInterfaceEx")]
    pub super_speed: ClassInterfaceEx,
    /// `InterfaceName`.
    #[doc(alias = "InterfaceName")]
    pub interface_name: InterfaceName,
    /// `InterfaceGuid`, present when `HasInterfaceGuid` is `TRUE`.
    #[doc(alias = "InterfaceGuid")]
    #[doc(alias = "HasInterfaceGuid")]
    pub interface_guid: Option<InterfaceGuid>,
}

/// Byte offsets (pinned against the `raw` layouts in the tests).
mod field {
    /// `USBFN_CLASS_INFORMATION_PACKET`.
    pub(super) const FULL_SPEED: usize = 0;
    pub(super) const HIGH_SPEED: usize = 196;
    pub(super) const INTERFACE_NAME: usize = 392;
    pub(super) const INTERFACE_GUID: usize = 472;
    pub(super) const HAS_INTERFACE_GUID: usize = 550;
    pub(super) const SUPER_SPEED: usize = 552;
    /// `USBFN_CLASS_INFORMATION_PACKET_EX`.
    pub(super) const EX_FULL_SPEED: usize = 0;
    pub(super) const EX_HIGH_SPEED: usize = 196;
    pub(super) const EX_SUPER_SPEED: usize = 392;
    pub(super) const EX_INTERFACE_NAME: usize = 588;
    pub(super) const EX_INTERFACE_GUID: usize = 668;
    pub(super) const EX_HAS_INTERFACE_GUID: usize = 746;
}

fixed_size!(
    ClassInformationPacket,
    "USBFN_CLASS_INFORMATION_PACKET",
    748
);
fixed_size!(
    ClassInformationPacketEx,
    "USBFN_CLASS_INFORMATION_PACKET_EX",
    748
);

impl ClassInformationPacket {
    /// The 748 bytes (padding zeroed).
    #[must_use]
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut out = [0; Self::SIZE];
        let mut w = Writer::new(&mut out);
        w.bytes(field::FULL_SPEED, &self.full_speed.encode());
        w.bytes(field::HIGH_SPEED, &self.high_speed.encode());
        write_identity(
            &mut w,
            [
                field::INTERFACE_NAME,
                field::INTERFACE_GUID,
                field::HAS_INTERFACE_GUID,
            ],
            &self.interface_name,
            self.interface_guid,
        );
        w.bytes(field::SUPER_SPEED, &self.super_speed.encode());
        out
    }

    /// Decodes the first 748 bytes.
    ///
    /// # Errors
    ///
    /// [`AbiError::BufferTooShort`], [`AbiError::TooManyPipes`], [`AbiError::InvalidBoolean`]
    /// for `HasInterfaceGuid`, and the string and GUID errors of the name and GUID fields.
    pub fn decode(bytes: &[u8]) -> Result<Self, AbiError> {
        let r = Reader::new(bytes, Self::SIZE, Self::WINDOWS_NAME)?;
        let (interface_name, interface_guid) = read_identity(
            &r,
            [
                field::INTERFACE_NAME,
                field::INTERFACE_GUID,
                field::HAS_INTERFACE_GUID,
            ],
        )?;
        Ok(Self {
            full_speed: ClassInterface::decode(r.slice(field::FULL_SPEED, ClassInterface::SIZE))?,
            high_speed: ClassInterface::decode(r.slice(field::HIGH_SPEED, ClassInterface::SIZE))?,
            interface_name,
            interface_guid,
            super_speed: ClassInterface::decode(r.slice(field::SUPER_SPEED, ClassInterface::SIZE))?,
        })
    }

    /// The pipes for a bus speed: full speed for [`BusSpeed::FULL`] (and [`BusSpeed::LOW`],
    /// which GenericUSBFn has no table for), high and super speed for theirs; `None` for other
    /// values.
    #[must_use]
    pub fn for_speed(&self, speed: BusSpeed) -> Option<&ClassInterface> {
        match speed {
            BusSpeed::LOW | BusSpeed::FULL => Some(&self.full_speed),
            BusSpeed::HIGH => Some(&self.high_speed),
            BusSpeed::SUPER => Some(&self.super_speed),
            _ => None,
        }
    }
}

impl ClassInformationPacketEx {
    /// The 748 bytes (padding zeroed).
    #[must_use]
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut out = [0; Self::SIZE];
        let mut w = Writer::new(&mut out);
        w.bytes(field::EX_FULL_SPEED, &self.full_speed.encode());
        w.bytes(field::EX_HIGH_SPEED, &self.high_speed.encode());
        w.bytes(field::EX_SUPER_SPEED, &self.super_speed.encode());
        write_identity(
            &mut w,
            [
                field::EX_INTERFACE_NAME,
                field::EX_INTERFACE_GUID,
                field::EX_HAS_INTERFACE_GUID,
            ],
            &self.interface_name,
            self.interface_guid,
        );
        out
    }

    /// Decodes the first 748 bytes.
    ///
    /// # Errors
    ///
    /// As [`ClassInformationPacket::decode`].
    pub fn decode(bytes: &[u8]) -> Result<Self, AbiError> {
        let r = Reader::new(bytes, Self::SIZE, Self::WINDOWS_NAME)?;
        let (interface_name, interface_guid) = read_identity(
            &r,
            [
                field::EX_INTERFACE_NAME,
                field::EX_INTERFACE_GUID,
                field::EX_HAS_INTERFACE_GUID,
            ],
        )?;
        let interface = |at| ClassInterfaceEx::decode(r.slice(at, ClassInterfaceEx::SIZE));
        Ok(Self {
            full_speed: interface(field::EX_FULL_SPEED)?,
            high_speed: interface(field::EX_HIGH_SPEED)?,
            super_speed: interface(field::EX_SUPER_SPEED)?,
            interface_name,
            interface_guid,
        })
    }

    /// The pipes for a bus speed, as [`ClassInformationPacket::for_speed`].
    #[must_use]
    pub fn for_speed(&self, speed: BusSpeed) -> Option<&ClassInterfaceEx> {
        match speed {
            BusSpeed::LOW | BusSpeed::FULL => Some(&self.full_speed),
            BusSpeed::HIGH => Some(&self.high_speed),
            BusSpeed::SUPER => Some(&self.super_speed),
            _ => None,
        }
    }
}

/// Writes `InterfaceName`, `InterfaceGuid` and `HasInterfaceGuid` at `[name, guid, has]`.
fn write_identity(
    w: &mut Writer<'_>,
    [name_at, guid_at, has_at]: [usize; 3],
    name: &InterfaceName,
    guid: Option<InterfaceGuid>,
) {
    w.utf16(name_at, &name.to_utf16_array());
    if let Some(guid) = guid {
        w.utf16(guid_at, &guid.to_utf16_array());
    }
    w.u8(has_at, u8::from(guid.is_some()));
}

/// Reads `InterfaceName`, `HasInterfaceGuid` and (when set) `InterfaceGuid`.
fn read_identity(
    r: &Reader<'_>,
    [name_at, guid_at, has_at]: [usize; 3],
) -> Result<(InterfaceName, Option<InterfaceGuid>), AbiError> {
    let has_guid = decode_boolean(r.u8(has_at), "HasInterfaceGuid")?;
    let name = InterfaceName::from_utf16_array(&r.utf16::<MAX_INTERFACE_NAME_LENGTH>(name_at))?;
    let guid = if has_guid {
        Some(InterfaceGuid::from_utf16_array(
            &r.utf16::<MAX_INTERFACE_GUID_LENGTH>(guid_at),
        )?)
    } else {
        None
    };
    Ok((name, guid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PipeList;
    use crate::pipes::tests::{arb_class_interface, arb_class_interface_ex, bulk_in};
    use core::mem::{offset_of, size_of};
    use proptest::prelude::*;

    const GUID: &str = "{DA0E7A9C-1E8B-4C41-9E53-0A8C5D1F2B3E}";

    fn sample() -> ClassInformationPacket {
        let mut pipes = PipeList::new();
        pipes.try_push(bulk_in(1)).unwrap();
        ClassInformationPacket {
            full_speed: ClassInterface {
                interface_number: 0,
                pipes,
            },
            high_speed: ClassInterface {
                interface_number: 0,
                pipes,
            },
            interface_name: InterfaceName::new("Sample").unwrap(),
            interface_guid: Some(GUID.parse().unwrap()),
            super_speed: ClassInterface::default(),
        }
    }

    #[test]
    fn offsets_match_raw() {
        use crate::raw::{UsbfnClassInformationPacket as P, UsbfnClassInformationPacketEx as X};
        assert_eq!(ClassInformationPacket::SIZE, size_of::<P>());
        assert_eq!(field::FULL_SPEED, offset_of!(P, full_speed_class_interface));
        assert_eq!(field::HIGH_SPEED, offset_of!(P, high_speed_class_interface));
        assert_eq!(field::INTERFACE_NAME, offset_of!(P, interface_name));
        assert_eq!(field::INTERFACE_GUID, offset_of!(P, interface_guid));
        assert_eq!(field::HAS_INTERFACE_GUID, offset_of!(P, has_interface_guid));
        assert_eq!(
            field::SUPER_SPEED,
            offset_of!(P, super_speed_class_interface)
        );
        assert_eq!(ClassInformationPacketEx::SIZE, size_of::<X>());
        assert_eq!(
            field::EX_FULL_SPEED,
            offset_of!(X, full_speed_class_interface_ex)
        );
        assert_eq!(
            field::EX_HIGH_SPEED,
            offset_of!(X, high_speed_class_interface_ex)
        );
        assert_eq!(
            field::EX_SUPER_SPEED,
            offset_of!(X, super_speed_class_interface_ex)
        );
        assert_eq!(field::EX_INTERFACE_NAME, offset_of!(X, interface_name));
        assert_eq!(field::EX_INTERFACE_GUID, offset_of!(X, interface_guid));
        assert_eq!(
            field::EX_HAS_INTERFACE_GUID,
            offset_of!(X, has_interface_guid)
        );
    }

    #[test]
    fn packet_hand_written_bytes() {
        let mut bytes = [0u8; 748];
        // FullSpeed: interface 0, one pipe.
        bytes[1] = 1;
        bytes[4..16].copy_from_slice(&bulk_in(1).encode());
        // HighSpeed: the same.
        bytes[197] = 1;
        bytes[200..212].copy_from_slice(&bulk_in(1).encode());
        // InterfaceName "Sample" at 392.
        for (i, c) in "Sample".bytes().enumerate() {
            bytes[392 + 2 * i] = c;
        }
        // InterfaceGuid at 472.
        for (i, c) in GUID.bytes().enumerate() {
            bytes[472 + 2 * i] = c;
        }
        bytes[550] = 1;
        assert_eq!(ClassInformationPacket::decode(&bytes), Ok(sample()));
        assert_eq!(sample().encode(), bytes);
        assert_eq!(
            sample().for_speed(BusSpeed::HIGH),
            Some(&sample().high_speed)
        );
        assert_eq!(sample().for_speed(BusSpeed(42)), None);
    }

    #[test]
    fn packet_without_guid_ignores_guid_array() {
        let mut packet = sample();
        packet.interface_guid = None;
        let mut bytes = packet.encode();
        assert_eq!(bytes[550], 0);
        assert!(bytes[472..550].iter().all(|&b| b == 0));
        bytes[472] = 0x41; // garbage in the unused GUID array
        assert_eq!(ClassInformationPacket::decode(&bytes), Ok(packet));
    }

    #[test]
    fn packet_errors() {
        let bytes = sample().encode();
        assert_eq!(
            ClassInformationPacket::decode(&bytes[..10]),
            Err(AbiError::BufferTooShort {
                structure: "USBFN_CLASS_INFORMATION_PACKET",
                need: 748,
                got: 10
            })
        );
        let mut bad = bytes;
        bad[550] = 2;
        assert!(matches!(
            ClassInformationPacket::decode(&bad),
            Err(AbiError::InvalidBoolean {
                field: "HasInterfaceGuid",
                value: 2
            })
        ));
        let mut bad = bytes;
        bad[472] = b'x';
        assert!(matches!(
            ClassInformationPacket::decode(&bad),
            Err(AbiError::InvalidGuidChar {
                position: 0,
                found: 'x',
                ..
            })
        ));
        let mut bad = bytes;
        bad[392..472].fill(0x41);
        assert!(matches!(
            ClassInformationPacket::decode(&bad),
            Err(AbiError::MissingNulTerminator {
                field: "InterfaceName",
                capacity: 40
            })
        ));
        let mut bad = bytes;
        bad[553] = 17; // SuperSpeed PipeCount
        assert!(matches!(
            ClassInformationPacket::decode(&bad),
            Err(AbiError::TooManyPipes { count: 17, .. })
        ));
    }

    #[test]
    fn packet_ex_hand_written_bytes() {
        let mut bytes = [0u8; 748];
        bytes[392] = 4; // SuperSpeedEx.BaseInterfaceNumber
        bytes[393] = 2; // SuperSpeedEx.InterfaceCount
        bytes[394] = 1; // SuperSpeedEx.PipeCount
        bytes[396..408].copy_from_slice(&bulk_in(5).encode());
        bytes[588] = b'N';
        for (i, c) in GUID.bytes().enumerate() {
            bytes[668 + 2 * i] = c;
        }
        bytes[746] = 1;
        let packet = ClassInformationPacketEx::decode(&bytes).unwrap();
        assert_eq!(packet.super_speed.base_interface_number, 4);
        assert_eq!(packet.super_speed.interface_count, 2);
        assert_eq!(packet.super_speed.pipes.as_slice(), &[bulk_in(5)]);
        assert_eq!(packet.interface_name.as_str(), "N");
        assert_eq!(
            packet.interface_guid.map(|g| g.to_string()).as_deref(),
            Some(GUID)
        );
        assert_eq!(packet.encode(), bytes);
        assert_eq!(packet.for_speed(BusSpeed::SUPER), Some(&packet.super_speed));
        assert!(matches!(
            ClassInformationPacketEx::decode(&bytes[..747]),
            Err(AbiError::BufferTooShort {
                structure: "USBFN_CLASS_INFORMATION_PACKET_EX",
                need: 748,
                got: 747
            })
        ));
    }

    fn arb_identity() -> impl Strategy<Value = (InterfaceName, Option<InterfaceGuid>)> {
        (
            "[a-zA-Z0-9 äöü😀]{0,19}",
            proptest::option::of(any::<u128>()),
        )
            .prop_map(|(name, guid)| (InterfaceName::new(name).unwrap(), guid.map(InterfaceGuid)))
    }

    proptest! {
        #[test]
        fn packet_round_trip(
            fs in arb_class_interface(),
            hs in arb_class_interface(),
            ss in arb_class_interface(),
            (interface_name, interface_guid) in arb_identity(),
        ) {
            let p = ClassInformationPacket {
                full_speed: fs,
                high_speed: hs,
                interface_name,
                interface_guid,
                super_speed: ss,
            };
            prop_assert_eq!(ClassInformationPacket::decode(&p.encode()), Ok(p));
        }

        #[test]
        fn packet_ex_round_trip(
            fs in arb_class_interface_ex(),
            hs in arb_class_interface_ex(),
            ss in arb_class_interface_ex(),
            (interface_name, interface_guid) in arb_identity(),
        ) {
            let p = ClassInformationPacketEx {
                full_speed: fs,
                high_speed: hs,
                super_speed: ss,
                interface_name,
                interface_guid,
            };
            prop_assert_eq!(ClassInformationPacketEx::decode(&p.encode()), Ok(p));
        }

        #[test]
        fn packet_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 740..760)) {
            let _ = ClassInformationPacket::decode(&bytes);
            let _ = ClassInformationPacketEx::decode(&bytes);
        }
    }
}
