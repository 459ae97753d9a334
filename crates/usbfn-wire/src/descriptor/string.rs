//! STRING descriptors (USB 2.0 §9.6.7): index 0 lists LANGIDs, the others hold UTF-16LE text.

use super::checked_descriptor;
use crate::{DescriptorType, WireError};

/// Most UTF-16 code units (or LANGIDs) one string descriptor holds: `bLength` is a byte, so
/// `2 + 2 * 126 = 254` is the largest even length.
pub const MAX_STRING_CODE_UNITS: usize = 126;

/// LANGID for English (United States), the one almost every device offers.
pub const LANGID_EN_US: u16 = 0x0409;

/// Encodes `s` as a string descriptor (UTF-16LE, no terminator).
///
/// Fails with [`WireError::StringTooLong`] when `s` is more than
/// [`MAX_STRING_CODE_UNITS`] UTF-16 code units; it is never cut short silently.
pub fn encode_string_descriptor(s: &str) -> Result<Vec<u8>, WireError> {
    let len = s.encode_utf16().count();
    let b_length = descriptor_length(len)?;
    let mut out = Vec::with_capacity(usize::from(b_length));
    out.extend([b_length, DescriptorType::STRING.0]);
    out.extend(s.encode_utf16().flat_map(u16::to_le_bytes));
    Ok(out)
}

/// Encodes string descriptor 0, the list of supported LANGIDs.
///
/// Fails with [`WireError::StringTooLong`] for more than [`MAX_STRING_CODE_UNITS`] LANGIDs.
pub fn encode_langid_descriptor(langids: &[u16]) -> Result<Vec<u8>, WireError> {
    let b_length = descriptor_length(langids.len())?;
    let mut out = Vec::with_capacity(usize::from(b_length));
    out.extend([b_length, DescriptorType::STRING.0]);
    out.extend(langids.iter().flat_map(|id| id.to_le_bytes()));
    Ok(out)
}

/// Decodes the string descriptor at the start of `bytes` into text.
///
/// Only `bLength` bytes are read. Fails on a bad header, an odd `bLength`
/// ([`WireError::OddStringLength`]) or unpaired surrogates ([`WireError::InvalidUtf16`]).
pub fn decode_string_descriptor(bytes: &[u8]) -> Result<String, WireError> {
    let units: Vec<u16> = code_units(bytes)?.collect();
    String::from_utf16(&units).map_err(|_| WireError::InvalidUtf16)
}

/// Decodes string descriptor 0 into its LANGIDs.
pub fn decode_langid_descriptor(bytes: &[u8]) -> Result<Vec<u16>, WireError> {
    Ok(code_units(bytes)?.collect())
}

/// `bLength` for a string descriptor of `units` code units.
fn descriptor_length(units: usize) -> Result<u8, WireError> {
    if units > MAX_STRING_CODE_UNITS {
        return Err(WireError::StringTooLong {
            limit: MAX_STRING_CODE_UNITS,
            len: units,
        });
    }
    u8::try_from(2 + 2 * units).map_err(|_| WireError::StringTooLong {
        limit: MAX_STRING_CODE_UNITS,
        len: units,
    })
}

/// The little-endian code units of the string descriptor at the start of `bytes`.
fn code_units(bytes: &[u8]) -> Result<impl Iterator<Item = u16> + '_, WireError> {
    let d = checked_descriptor(bytes, DescriptorType::STRING, 2, "string descriptor")?;
    let body = d.get(2..).unwrap_or(&[]);
    let (units, rest) = body.as_chunks::<2>();
    if !rest.is_empty() {
        let b_length = bytes.first().copied().unwrap_or(0);
        return Err(WireError::OddStringLength { b_length });
    }
    Ok(units.iter().map(|&pair| u16::from_le_bytes(pair)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encode_and_decode() {
        let bytes = encode_string_descriptor("usbfn").unwrap();
        assert_eq!(bytes, [12, 3, b'u', 0, b's', 0, b'b', 0, b'f', 0, b'n', 0]);
        assert_eq!(decode_string_descriptor(&bytes).unwrap(), "usbfn");
        // Non-BMP characters take two code units.
        let bytes = encode_string_descriptor("µ🦀").unwrap();
        assert_eq!(bytes[0], 2 + 2 * 3);
        assert_eq!(decode_string_descriptor(&bytes).unwrap(), "µ🦀");
        assert_eq!(encode_string_descriptor("").unwrap(), [2, 3]);
        assert_eq!(decode_string_descriptor(&[2, 3, 0xff]).unwrap(), "");
    }

    #[test]
    fn langids() {
        let bytes = encode_langid_descriptor(&[LANGID_EN_US, 0x0407]).unwrap();
        assert_eq!(bytes, [6, 3, 0x09, 0x04, 0x07, 0x04]);
        assert_eq!(decode_langid_descriptor(&bytes).unwrap(), [0x0409, 0x0407]);
        assert_eq!(
            encode_langid_descriptor(&[0; 127]),
            Err(WireError::StringTooLong {
                limit: 126,
                len: 127
            })
        );
    }

    #[test]
    fn length_limit() {
        let max = "x".repeat(126);
        assert_eq!(encode_string_descriptor(&max).unwrap().len(), 254);
        assert_eq!(
            encode_string_descriptor(&"x".repeat(127)),
            Err(WireError::StringTooLong {
                limit: 126,
                len: 127
            })
        );
        // 64 crabs are 128 code units.
        assert_eq!(
            encode_string_descriptor(&"🦀".repeat(64)),
            Err(WireError::StringTooLong {
                limit: 126,
                len: 128
            })
        );
    }

    #[test]
    fn malformed() {
        assert_eq!(
            decode_string_descriptor(&[3, 3, b'a']),
            Err(WireError::OddStringLength { b_length: 3 })
        );
        assert_eq!(
            decode_string_descriptor(&[6, 3, b'a', 0]),
            Err(WireError::BadLength {
                descriptor_type: DescriptorType::STRING,
                b_length: 6
            })
        );
        assert_eq!(
            decode_string_descriptor(&[0, 3]),
            Err(WireError::BadLength {
                descriptor_type: DescriptorType::STRING,
                b_length: 0
            })
        );
        assert_eq!(
            decode_string_descriptor(&[4, 1, b'a', 0]),
            Err(WireError::WrongDescriptorType {
                expected: DescriptorType::STRING,
                found: DescriptorType::DEVICE
            })
        );
        assert!(matches!(
            decode_string_descriptor(&[]),
            Err(WireError::Truncated { .. })
        ));
        // A lone high surrogate.
        assert_eq!(
            decode_string_descriptor(&[4, 3, 0x00, 0xd8]),
            Err(WireError::InvalidUtf16)
        );
    }

    proptest! {
        #[test]
        fn string_round_trip(s in "\\PC{0,63}") {
            match encode_string_descriptor(&s) {
                Ok(bytes) => prop_assert_eq!(decode_string_descriptor(&bytes), Ok(s)),
                Err(WireError::StringTooLong { len, .. }) => prop_assert!(len > 126),
                Err(e) => prop_assert!(false, "unexpected error {e}"),
            }
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_string_descriptor(&bytes);
            let _ = decode_langid_descriptor(&bytes);
        }
    }
}
