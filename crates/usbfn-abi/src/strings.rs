//! Fixed-size `WCHAR` fields: checked conversions between Rust strings and NUL-terminated UTF-16.
//!
//! # The NUL rule
//!
//! Every fixed `WCHAR` array in this ABI holds a NUL-terminated string, so a string of
//! `capacity` `WCHAR`s holds at most `capacity - 1` UTF-16 code units: an `InterfaceName` at
//! most 39, a `UsbString` at most 254, an `InterfaceGuid` exactly 38. A 40-unit interface name is
//! rejected ([`AbiError::StringTooLong`]), never truncated. Strings containing U+0000 are
//! rejected ([`AbiError::InteriorNul`]) because the NUL would end them early.
//!
//! Encoding writes the code units, the NUL, and zeros up to the end of the array. Decoding takes
//! the units before the first NUL and ignores whatever follows it; an array without a NUL is
//! [`AbiError::MissingNulTerminator`], unpaired surrogates are [`AbiError::InvalidUtf16`].
//! Lengths are counted in UTF-16 code units, so a character outside the Basic Multilingual Plane
//! (an emoji) counts twice.

use core::fmt;
use core::str::FromStr;

use crate::AbiError;
use crate::codec::{Reader, Writer, fixed_size};
use crate::limits::{
    INTERFACE_GUID_STRING_LENGTH, MAX_INTERFACE_GUID_LENGTH, MAX_INTERFACE_NAME_LENGTH,
    MAX_USB_STRING_LENGTH,
};

macro_rules! utf16_field {
    (
        $(#[$meta:meta])*
        $name:ident, field = $field:literal, capacity = $capacity:expr
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(String);

        impl $name {
            /// Length of the `WCHAR` array, NUL terminator included.
            pub const CAPACITY: usize = $capacity;
            /// Most UTF-16 code units the string may have (`CAPACITY - 1`).
            pub const MAX_LEN: usize = $capacity - 1;
            /// The Windows field name, as used in error messages.
            pub const FIELD: &'static str = $field;

            /// Checks that `s` fits the field (see the module docs for the NUL rule).
            ///
            /// # Errors
            ///
            /// [`AbiError::StringTooLong`] or [`AbiError::InteriorNul`].
            pub fn new(s: impl Into<String>) -> Result<Self, AbiError> {
                let s = s.into();
                check_fits(&s, Self::FIELD, Self::CAPACITY)?;
                Ok(Self(s))
            }

            /// The string.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The string, by value.
            #[must_use]
            pub fn into_string(self) -> String {
                self.0
            }

            /// Length in UTF-16 code units (without the NUL).
            #[must_use]
            pub fn utf16_len(&self) -> usize {
                self.0.encode_utf16().count()
            }

            /// The NUL-terminated, zero-padded `WCHAR` array.
            #[must_use]
            pub fn to_utf16_array(&self) -> [u16; $capacity] {
                encode_fixed(&self.0)
            }

            /// Decodes a `WCHAR` array: the units before the first NUL (only the first
            /// [`CAPACITY`](Self::CAPACITY) units are looked at).
            ///
            /// # Errors
            ///
            /// [`AbiError::MissingNulTerminator`] or [`AbiError::InvalidUtf16`].
            pub fn from_utf16_array(units: &[u16]) -> Result<Self, AbiError> {
                decode_fixed(units, Self::FIELD, Self::CAPACITY).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = AbiError;
            fn from_str(s: &str) -> Result<Self, AbiError> {
                Self::new(s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = AbiError;
            fn try_from(s: &str) -> Result<Self, AbiError> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = AbiError;
            fn try_from(s: String) -> Result<Self, AbiError> {
                Self::new(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }
    };
}

utf16_field! {
    /// The `InterfaceName` of a class information packet: the interface's registry key name,
    /// at most 39 UTF-16 code units (40 `WCHAR`s with the NUL).
    InterfaceName, field = "InterfaceName", capacity = MAX_INTERFACE_NAME_LENGTH
}

utf16_field! {
    /// The text of a `USBFN_USB_STRING`: at most 254 UTF-16 code units (255 `WCHAR`s with the
    /// NUL).
    ///
    /// A USB string descriptor itself carries at most 126 code units (`bLength` is one byte);
    /// that limit belongs to whoever builds the descriptor and is not checked here.
    #[doc(alias = "UsbString")]
    UsbStringText, field = "UsbString", capacity = MAX_USB_STRING_LENGTH
}

/// A device interface GUID, the `InterfaceGuid` of a class information packet.
///
/// Text form `{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}` (38 characters, braces required, hex
/// digits in either case); [`Display`](fmt::Display) writes upper case, as Windows'
/// `StringFromGUID2` does, so a lower-case GUID read from the wire is re-encoded in upper case.
/// The `u128` is the value in text order, the convention of `windows-sys`' `GUID::from_u128`.
///
/// ```
/// use usbfn_abi::InterfaceGuid;
/// let guid: InterfaceGuid = "{a7b1c3d5-0000-4e6f-8a9b-0123456789ab}".parse()?;
/// assert_eq!(guid.0, 0xa7b1c3d5_0000_4e6f_8a9b_0123456789ab);
/// assert_eq!(guid.to_string(), "{A7B1C3D5-0000-4E6F-8A9B-0123456789AB}");
/// assert!("a7b1c3d5-0000-4e6f-8a9b-0123456789ab".parse::<InterfaceGuid>().is_err());
/// # Ok::<(), usbfn_abi::AbiError>(())
/// ```
#[doc(alias = "GUID")]
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct InterfaceGuid(pub u128);

/// `USBFN_USB_STRING`: the input of `IOCTL_GENERICUSBFN_REGISTER_USB_STRING`, 512 bytes.
///
/// ```
/// use usbfn_abi::{UsbString, UsbStringText};
/// let s = UsbString { string_index: 4, string: UsbStringText::new("Hi")? };
/// let bytes = s.encode();
/// assert_eq!(&bytes[..8], &[4, 0, b'H', 0, b'i', 0, 0, 0]);
/// assert_eq!(UsbString::decode(&bytes)?, s);
/// # Ok::<(), usbfn_abi::AbiError>(())
/// ```
#[doc(alias = "USBFN_USB_STRING")]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct UsbString {
    /// `StringIndex`: the string descriptor index the host asks for.
    #[doc(alias = "StringIndex")]
    pub string_index: u8,
    /// `UsbString`: the text.
    #[doc(alias = "UsbString")]
    pub string: UsbStringText,
}

/// Byte offsets of `USBFN_USB_STRING` (pinned against [`crate::raw::UsbfnUsbString`]).
mod usb_string_field {
    pub(super) const STRING_INDEX: usize = 0;
    pub(super) const USB_STRING: usize = 2;
}

fixed_size!(UsbString, "USBFN_USB_STRING", 512);

impl UsbString {
    /// The 512 bytes of `USBFN_USB_STRING` (padding and the tail after the NUL zeroed).
    #[must_use]
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut out = [0; Self::SIZE];
        let mut w = Writer::new(&mut out);
        w.u8(usb_string_field::STRING_INDEX, self.string_index);
        w.utf16(usb_string_field::USB_STRING, &self.string.to_utf16_array());
        out
    }

    /// Decodes the first [`SIZE`](Self::SIZE) bytes; later bytes are ignored.
    ///
    /// # Errors
    ///
    /// [`AbiError::BufferTooShort`], [`AbiError::MissingNulTerminator`],
    /// [`AbiError::InvalidUtf16`].
    pub fn decode(bytes: &[u8]) -> Result<Self, AbiError> {
        let r = Reader::new(bytes, Self::SIZE, Self::WINDOWS_NAME)?;
        Ok(Self {
            string_index: r.u8(usb_string_field::STRING_INDEX),
            string: UsbStringText::from_utf16_array(
                &r.utf16::<MAX_USB_STRING_LENGTH>(usb_string_field::USB_STRING),
            )?,
        })
    }
}

impl InterfaceGuid {
    /// The Windows field name, as used in error messages.
    pub const FIELD: &'static str = "InterfaceGuid";

    /// Parses `{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}`.
    ///
    /// # Errors
    ///
    /// [`AbiError::InvalidGuidLength`] or [`AbiError::InvalidGuidChar`].
    pub fn parse(s: &str) -> Result<Self, AbiError> {
        let len = s.chars().count();
        if len != INTERFACE_GUID_STRING_LENGTH {
            return Err(AbiError::InvalidGuidLength { len });
        }
        let mut value: u128 = 0;
        for (position, found) in s.chars().enumerate() {
            let expected = match position {
                0 => '{',
                37 => '}',
                9 | 14 | 19 | 24 => '-',
                _ => {
                    let digit = found.to_digit(16).ok_or(AbiError::InvalidGuidChar {
                        position,
                        found,
                        expected: "a hex digit",
                    })?;
                    value = (value << 4) | u128::from(digit);
                    continue;
                }
            };
            if found != expected {
                return Err(AbiError::InvalidGuidChar {
                    position,
                    found,
                    expected: match expected {
                        '{' => "'{'",
                        '}' => "'}'",
                        _ => "'-'",
                    },
                });
            }
        }
        Ok(Self(value))
    }

    /// The GUID from its Windows `GUID` fields `Data1`..`Data4`.
    #[must_use]
    pub const fn from_fields(data1: u32, data2: u16, data3: u16, data4: [u8; 8]) -> Self {
        Self(
            ((data1 as u128) << 96)
                | ((data2 as u128) << 80)
                | ((data3 as u128) << 64)
                | (u64::from_be_bytes(data4) as u128),
        )
    }

    /// The Windows `GUID` fields `(Data1, Data2, Data3, Data4)`.
    #[must_use]
    pub const fn to_fields(self) -> (u32, u16, u16, [u8; 8]) {
        let [a, b, c, d, e, f, g, h, data4 @ ..] = self.0.to_be_bytes();
        (
            u32::from_be_bytes([a, b, c, d]),
            u16::from_be_bytes([e, f]),
            u16::from_be_bytes([g, h]),
            data4,
        )
    }

    /// The 38 ASCII characters of the upper-case braced form.
    #[must_use]
    pub fn to_ascii(self) -> [u8; INTERFACE_GUID_STRING_LENGTH] {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let mut out = [0u8; INTERFACE_GUID_STRING_LENGTH];
        let mut nibble = 0u32;
        for (position, byte) in out.iter_mut().enumerate() {
            *byte = match position {
                0 => b'{',
                37 => b'}',
                9 | 14 | 19 | 24 => b'-',
                _ => {
                    // 32 hex positions take the nibbles from the most significant down.
                    let shift = 124u32.saturating_sub(4 * nibble);
                    nibble += 1;
                    let index = usize::from(u8::try_from((self.0 >> shift) & 0xF).unwrap_or(0));
                    HEX.get(index).copied().unwrap_or(b'0')
                }
            };
        }
        out
    }

    /// The NUL-terminated `WCHAR` array of `InterfaceGuid` (38 characters + NUL).
    #[must_use]
    pub fn to_utf16_array(self) -> [u16; MAX_INTERFACE_GUID_LENGTH] {
        let mut units = [0u16; MAX_INTERFACE_GUID_LENGTH];
        for (unit, byte) in units.iter_mut().zip(self.to_ascii()) {
            *unit = u16::from(byte);
        }
        units
    }

    /// Decodes and parses an `InterfaceGuid` `WCHAR` array.
    ///
    /// # Errors
    ///
    /// Those of [`from_utf16_array`](InterfaceName::from_utf16_array) and [`parse`](Self::parse).
    pub fn from_utf16_array(units: &[u16]) -> Result<Self, AbiError> {
        Self::parse(&decode_fixed(
            units,
            Self::FIELD,
            MAX_INTERFACE_GUID_LENGTH,
        )?)
    }
}

impl fmt::Display for InterfaceGuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.to_ascii() {
            fmt::Write::write_char(f, char::from(byte))?;
        }
        Ok(())
    }
}

impl fmt::Debug for InterfaceGuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InterfaceGuid({self})")
    }
}

impl FromStr for InterfaceGuid {
    type Err = AbiError;
    fn from_str(s: &str) -> Result<Self, AbiError> {
        Self::parse(s)
    }
}

impl TryFrom<&str> for InterfaceGuid {
    type Error = AbiError;
    fn try_from(s: &str) -> Result<Self, AbiError> {
        Self::parse(s)
    }
}

/// Checks that `s` has no NUL and at most `capacity - 1` UTF-16 code units.
fn check_fits(s: &str, field: &'static str, capacity: usize) -> Result<(), AbiError> {
    let mut len = 0usize;
    for (index, unit) in s.encode_utf16().enumerate() {
        if unit == 0 {
            return Err(AbiError::InteriorNul { field, index });
        }
        len += 1;
    }
    let max = capacity.saturating_sub(1);
    if len > max {
        return Err(AbiError::StringTooLong {
            field,
            len,
            max,
            capacity,
        });
    }
    Ok(())
}

/// `s` as a NUL-terminated, zero-padded array; `s` was checked by [`check_fits`], so nothing
/// is cut (the `zip` stops at `N` regardless).
fn encode_fixed<const N: usize>(s: &str) -> [u16; N] {
    let mut units = [0u16; N];
    for (slot, unit) in units.iter_mut().zip(s.encode_utf16()) {
        *slot = unit;
    }
    units
}

/// The string before the first NUL among the first `capacity` units.
fn decode_fixed(units: &[u16], field: &'static str, capacity: usize) -> Result<String, AbiError> {
    let window = units.get(..capacity).unwrap_or(units);
    let end = window
        .iter()
        .position(|&u| u == 0)
        .ok_or(AbiError::MissingNulTerminator { field, capacity })?;
    let text = window.get(..end).unwrap_or(&[]);
    String::from_utf16(text).map_err(|_| AbiError::InvalidUtf16 { field })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn interface_name_limits() {
        assert_eq!(InterfaceName::CAPACITY, 40);
        assert_eq!(InterfaceName::MAX_LEN, 39);
        let ok = "n".repeat(39);
        assert_eq!(InterfaceName::new(ok.clone()).unwrap().as_str(), ok);
        assert_eq!(
            InterfaceName::new("n".repeat(40)),
            Err(AbiError::StringTooLong {
                field: "InterfaceName",
                len: 40,
                max: 39,
                capacity: 40
            })
        );
        // 20 emoji are 40 UTF-16 code units.
        assert!(matches!(
            InterfaceName::new("😀".repeat(20)),
            Err(AbiError::StringTooLong { len: 40, .. })
        ));
        assert_eq!(
            "ab\0c".parse::<InterfaceName>(),
            Err(AbiError::InteriorNul {
                field: "InterfaceName",
                index: 2
            })
        );
        let e = InterfaceName::new("x".repeat(41)).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("InterfaceName is 41 UTF-16 code units")
        );
    }

    #[test]
    fn usb_string_text_limits() {
        assert!(UsbStringText::new("s".repeat(254)).is_ok());
        assert!(matches!(
            UsbStringText::new("s".repeat(255)),
            Err(AbiError::StringTooLong {
                field: "UsbString",
                len: 255,
                max: 254,
                capacity: 255
            })
        ));
    }

    #[test]
    fn utf16_array_encoding() {
        let name = InterfaceName::new("Aé😀").unwrap();
        let units = name.to_utf16_array();
        assert_eq!(&units[..5], &[0x41, 0xE9, 0xD83D, 0xDE00, 0]);
        assert!(units[5..].iter().all(|&u| u == 0));
        assert_eq!(InterfaceName::from_utf16_array(&units).unwrap(), name);
        assert_eq!(name.utf16_len(), 4);
    }

    #[test]
    fn utf16_array_decoding_errors() {
        assert_eq!(
            InterfaceName::from_utf16_array(&[0x41; 40]),
            Err(AbiError::MissingNulTerminator {
                field: "InterfaceName",
                capacity: 40
            })
        );
        // A NUL past the capacity does not count.
        let mut long = [0x41u16; 41];
        long[40] = 0;
        assert!(InterfaceName::from_utf16_array(&long).is_err());
        assert_eq!(
            InterfaceName::from_utf16_array(&[0xD800, 0]),
            Err(AbiError::InvalidUtf16 {
                field: "InterfaceName"
            })
        );
        // Bytes after the NUL are ignored.
        assert_eq!(
            InterfaceName::from_utf16_array(&[0x61, 0, 0x62])
                .unwrap()
                .as_str(),
            "a"
        );
    }

    #[test]
    fn guid_parse_and_format() {
        let g = InterfaceGuid::parse("{12345678-9abc-DEF0-1122-334455667788}").unwrap();
        assert_eq!(g.0, 0x1234_5678_9ABC_DEF0_1122_3344_5566_7788);
        assert_eq!(g.to_string(), "{12345678-9ABC-DEF0-1122-334455667788}");
        assert_eq!(
            format!("{g:?}"),
            "InterfaceGuid({12345678-9ABC-DEF0-1122-334455667788})"
        );
        assert_eq!(
            g.to_fields(),
            (
                0x1234_5678,
                0x9ABC,
                0xDEF0,
                [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]
            )
        );
        let (a, b, c, d) = g.to_fields();
        assert_eq!(InterfaceGuid::from_fields(a, b, c, d), g);
        let units = g.to_utf16_array();
        assert_eq!(units[0], u16::from(b'{'));
        assert_eq!(units[37], u16::from(b'}'));
        assert_eq!(units[38], 0);
        assert_eq!(InterfaceGuid::from_utf16_array(&units), Ok(g));
    }

    #[test]
    fn guid_errors() {
        assert_eq!(
            InterfaceGuid::parse("12345678-9abc-def0-1122-334455667788"),
            Err(AbiError::InvalidGuidLength { len: 36 })
        );
        assert_eq!(
            InterfaceGuid::parse("{12345678-9abc-def0-1122-33445566778g}"),
            Err(AbiError::InvalidGuidChar {
                position: 36,
                found: 'g',
                expected: "a hex digit"
            })
        );
        assert_eq!(
            InterfaceGuid::parse("{12345678_9abc-def0-1122-334455667788}"),
            Err(AbiError::InvalidGuidChar {
                position: 9,
                found: '_',
                expected: "'-'"
            })
        );
        assert_eq!(
            InterfaceGuid::parse("(12345678-9abc-def0-1122-334455667788}"),
            Err(AbiError::InvalidGuidChar {
                position: 0,
                found: '(',
                expected: "'{'"
            })
        );
        assert!(matches!(
            InterfaceGuid::parse("{12345678-9abc-def0-1122-33445566778é}"),
            Err(AbiError::InvalidGuidChar {
                position: 36,
                found: 'é',
                ..
            })
        ));
        // A 38-WCHAR array without NUL.
        assert!(matches!(
            InterfaceGuid::from_utf16_array(&[u16::from(b'{'); 39]),
            Err(AbiError::MissingNulTerminator {
                field: "InterfaceGuid",
                capacity: 39
            })
        ));
    }

    #[test]
    fn usb_string_bytes() {
        let s = UsbString {
            string_index: 7,
            string: UsbStringText::new("€").unwrap(),
        };
        let mut expected = [0u8; 512];
        expected[0] = 7;
        expected[2] = 0xAC;
        expected[3] = 0x20;
        assert_eq!(s.encode(), expected);
        assert_eq!(UsbString::decode(&expected), Ok(s.clone()));
        let mut out = vec![0xFF; 600];
        assert_eq!(s.encode_into(&mut out), Ok(512));
        assert_eq!(out[511], 0);
        assert_eq!(out[512], 0xFF);
        assert_eq!(
            s.encode_into(&mut [0; 100]),
            Err(AbiError::OutputTooSmall {
                structure: "USBFN_USB_STRING",
                need: 512,
                got: 100
            })
        );
        assert_eq!(
            UsbString::decode(&expected[..511]),
            Err(AbiError::BufferTooShort {
                structure: "USBFN_USB_STRING",
                need: 512,
                got: 511
            })
        );
        // No NUL in all 255 WCHARs.
        let full = [0x41u8; 512];
        assert!(matches!(
            UsbString::decode(&full),
            Err(AbiError::MissingNulTerminator {
                field: "UsbString",
                ..
            })
        ));
    }

    #[test]
    fn usb_string_offsets_match_raw() {
        use crate::raw::UsbfnUsbString as R;
        assert_eq!(
            usb_string_field::STRING_INDEX,
            core::mem::offset_of!(R, string_index)
        );
        assert_eq!(
            usb_string_field::USB_STRING,
            core::mem::offset_of!(R, usb_string)
        );
        assert_eq!(UsbString::SIZE, core::mem::size_of::<R>());
    }

    proptest! {
        #[test]
        fn guid_text_round_trip(v in any::<u128>()) {
            let g = InterfaceGuid(v);
            prop_assert_eq!(InterfaceGuid::parse(&g.to_string()), Ok(g));
            prop_assert_eq!(InterfaceGuid::parse(&g.to_string().to_lowercase()), Ok(g));
            prop_assert_eq!(InterfaceGuid::from_utf16_array(&g.to_utf16_array()), Ok(g));
        }

        #[test]
        fn name_round_trip_or_typed_error(s in "\\PC{0,45}") {
            match InterfaceName::new(s.clone()) {
                Ok(name) => {
                    prop_assert!(name.utf16_len() <= 39);
                    prop_assert_eq!(
                        InterfaceName::from_utf16_array(&name.to_utf16_array()),
                        Ok(name)
                    );
                }
                Err(AbiError::StringTooLong { len, .. }) => prop_assert!(len >= 40),
                Err(AbiError::InteriorNul { .. }) => prop_assert!(s.contains('\0')),
                Err(e) => prop_assert!(false, "unexpected {e}"),
            }
        }

        #[test]
        fn usb_string_round_trip(index in any::<u8>(), s in "[^\u{0}]{0,100}") {
            if let Ok(string) = UsbStringText::new(s) {
                let v = UsbString { string_index: index, string };
                prop_assert_eq!(UsbString::decode(&v.encode()), Ok(v));
            }
        }

        #[test]
        fn usb_string_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = UsbString::decode(&bytes);
        }
    }
}
