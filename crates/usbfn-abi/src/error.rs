//! The one error type of this crate.

/// What was wrong with bytes, a string or a value handed to this crate.
///
/// Every variant names the structure or field involved and, where a limit was hit, the limit,
/// so the message alone tells a reader what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AbiError {
    /// Input bytes end before the structure does.
    #[error("buffer too short for {structure}: need {need} bytes, got {got}")]
    BufferTooShort {
        /// Windows name of the structure being decoded, e.g. `USBFN_NOTIFICATION`.
        structure: &'static str,
        /// Bytes the structure needs.
        need: usize,
        /// Bytes available.
        got: usize,
    },

    /// An output buffer cannot hold the encoded structure.
    #[error("output buffer too small for {structure}: need {need} bytes, got {got}")]
    OutputTooSmall {
        /// Windows name of the structure being encoded.
        structure: &'static str,
        /// Bytes the encoding needs.
        need: usize,
        /// Bytes the output buffer has.
        got: usize,
    },

    /// A pipe count above `MAX_NUM_USBFN_PIPES`, decoded or pushed.
    #[error("PipeCount {count} in {structure} exceeds MAX_NUM_USBFN_PIPES ({max})")]
    TooManyPipes {
        /// Windows name of the structure holding the pipe array.
        structure: &'static str,
        /// The count found or requested.
        count: usize,
        /// The limit, `MAX_NUM_USBFN_PIPES`.
        max: usize,
    },

    /// A string does not fit a fixed `WCHAR` array together with its NUL terminator.
    #[error(
        "{field} is {len} UTF-16 code units, at most {max} fit \
         ({capacity} WCHARs including the NUL terminator)"
    )]
    StringTooLong {
        /// Windows field name, e.g. `InterfaceName`.
        field: &'static str,
        /// UTF-16 code units in the string.
        len: usize,
        /// Most code units that fit (capacity minus the NUL).
        max: usize,
        /// Array length in `WCHAR`s, NUL included.
        capacity: usize,
    },

    /// A string contains U+0000, which would end the `WCHAR` string early.
    #[error("{field} contains a NUL character at UTF-16 index {index}; it would end the string")]
    InteriorNul {
        /// Windows field name.
        field: &'static str,
        /// Index (in UTF-16 code units) of the first NUL.
        index: usize,
    },

    /// A decoded `WCHAR` array has no NUL terminator.
    #[error("{field} has no NUL terminator within its {capacity} WCHARs")]
    MissingNulTerminator {
        /// Windows field name.
        field: &'static str,
        /// Array length in `WCHAR`s.
        capacity: usize,
    },

    /// A decoded `WCHAR` array is not valid UTF-16 (an unpaired surrogate).
    #[error("{field} is not valid UTF-16 (unpaired surrogate)")]
    InvalidUtf16 {
        /// Windows field name.
        field: &'static str,
    },

    /// An interface GUID string has the wrong length.
    #[error(
        "interface GUID must be 38 characters {{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}}, \
         got {len} characters"
    )]
    InvalidGuidLength {
        /// Characters in the rejected string.
        len: usize,
    },

    /// An interface GUID string has a wrong character.
    #[error(
        "interface GUID has {found:?} at position {position}, expected {expected} \
         (format {{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}})"
    )]
    InvalidGuidChar {
        /// Zero-based character position.
        position: usize,
        /// The character found there.
        found: char,
        /// What belongs there: `'{'`, `'}'`, `'-'` or `"a hex digit"`.
        expected: &'static str,
    },

    /// A `BOOLEAN` byte other than 0 (`FALSE`) or 1 (`TRUE`).
    #[error("{field} is {value:#04x}; a BOOLEAN must be 0 or 1")]
    InvalidBoolean {
        /// Windows field name.
        field: &'static str,
        /// The byte found.
        value: u8,
    },

    /// An interface descriptor set longer than the 16-bit `Size` field can describe.
    #[error(
        "interface descriptor set of {len} bytes does not fit USBFN_INTERFACE_INFO.Size \
         (at most {max})"
    )]
    DescriptorSetTooLong {
        /// Bytes in the descriptor set.
        len: usize,
        /// The limit, `u16::MAX`.
        max: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_structure_and_limit() {
        let e = AbiError::BufferTooShort {
            structure: "USBFN_CLASS_INFORMATION_PACKET",
            need: 748,
            got: 10,
        };
        assert_eq!(
            e.to_string(),
            "buffer too short for USBFN_CLASS_INFORMATION_PACKET: need 748 bytes, got 10"
        );
        let e = AbiError::StringTooLong {
            field: "InterfaceName",
            len: 45,
            max: 39,
            capacity: 40,
        };
        assert_eq!(
            e.to_string(),
            "InterfaceName is 45 UTF-16 code units, at most 39 fit \
             (40 WCHARs including the NUL terminator)"
        );
        let e = AbiError::TooManyPipes {
            structure: "USBFN_CLASS_INTERFACE",
            count: 17,
            max: 16,
        };
        assert_eq!(
            e.to_string(),
            "PipeCount 17 in USBFN_CLASS_INTERFACE exceeds MAX_NUM_USBFN_PIPES (16)"
        );
        let e = AbiError::InvalidBoolean {
            field: "HasInterfaceGuid",
            value: 2,
        };
        assert_eq!(
            e.to_string(),
            "HasInterfaceGuid is 0x02; a BOOLEAN must be 0 or 1"
        );
        let e = AbiError::InvalidGuidLength { len: 3 };
        assert!(
            e.to_string()
                .contains("{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}")
        );
    }
}
