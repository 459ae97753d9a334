//! The one error type of this crate.

use core::fmt;

use crate::{DescriptorType, DeviceCapabilityType};

/// Why a setup packet or descriptor could not be parsed or written.
///
/// Every decoder in this crate returns one of these for malformed input instead of panicking;
/// every writer returns one instead of truncating. Messages name the field and the limit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The buffer ends before the fixed part of `what`.
    #[error("{what} truncated: needs {needed} bytes, only {available} available")]
    Truncated {
        /// What was being parsed, e.g. `"setup packet"`.
        what: &'static str,
        /// Bytes needed.
        needed: usize,
        /// Bytes present.
        available: usize,
    },

    /// A descriptor's `bLength` is 0 or 1, smaller than its type's fixed size, or runs past the
    /// end of the buffer.
    #[error(
        "bLength {b_length} is invalid for a {descriptor_type} descriptor: {}",
        BadLengthReason { descriptor_type: *descriptor_type, b_length: *b_length }
    )]
    BadLength {
        /// `bDescriptorType` of the offending descriptor.
        descriptor_type: DescriptorType,
        /// Its `bLength`.
        b_length: u8,
    },

    /// The descriptor is not of the expected type.
    #[error("expected a {expected} descriptor, found bDescriptorType {found}")]
    WrongDescriptorType {
        /// The type the parser was asked for.
        expected: DescriptorType,
        /// The `bDescriptorType` in the buffer.
        found: DescriptorType,
    },

    /// A device capability descriptor is not of the expected capability type.
    #[error("expected a {expected} device capability, found bDevCapabilityType {found}")]
    WrongCapabilityType {
        /// The capability type the parser was asked for.
        expected: DeviceCapabilityType,
        /// The `bDevCapabilityType` in the buffer.
        found: DeviceCapabilityType,
    },

    /// A configuration or BOS descriptor's `wTotalLength` differs from the buffer length.
    #[error("wTotalLength is {declared} but the buffer holds {actual} bytes")]
    TotalLengthMismatch {
        /// `wTotalLength`.
        declared: u16,
        /// The buffer length.
        actual: usize,
    },

    /// Writing would exceed a size limit (the writer's buffer limit, the 16-bit
    /// `wTotalLength`, the 8-bit `bLength` or a count field).
    #[error("{what} would be {len}, over the limit of {limit}")]
    TooLong {
        /// The field or buffer that overflowed, e.g. `"descriptor buffer"`, `"wTotalLength"`.
        what: &'static str,
        /// The limit.
        limit: usize,
        /// The size it would have had.
        len: usize,
    },

    /// An endpoint number outside `0..=15`.
    #[error("endpoint number {0} is out of range (0..=15)")]
    InvalidEndpointNumber(u8),

    /// A string descriptor does not hold valid UTF-16.
    #[error("string descriptor is not valid UTF-16")]
    InvalidUtf16,

    /// A string descriptor's `bLength` is odd, so it does not hold whole UTF-16 code units.
    #[error("string descriptor bLength {b_length} is odd (must be 2 + 2 per UTF-16 code unit)")]
    OddStringLength {
        /// The `bLength`.
        b_length: u8,
    },

    /// A string (or LANGID list) does not fit in one string descriptor.
    #[error("string is {len} UTF-16 code units, over the string descriptor limit of {limit}")]
    StringTooLong {
        /// The limit, [`MAX_STRING_CODE_UNITS`](crate::MAX_STRING_CODE_UNITS).
        limit: usize,
        /// The number of UTF-16 code units (or LANGIDs) given.
        len: usize,
    },

    /// An interface alternate setting has a different number of endpoint descriptors than its
    /// `bNumEndpoints` says.
    #[error(
        "interface {interface} alternate setting {alternate_setting} declares bNumEndpoints \
         {declared} but has {found} endpoint descriptors"
    )]
    NumEndpointsMismatch {
        /// `bInterfaceNumber`.
        interface: u8,
        /// `bAlternateSetting`.
        alternate_setting: u8,
        /// `bNumEndpoints`.
        declared: u8,
        /// Endpoint descriptors found.
        found: usize,
    },

    /// A BOS descriptor has a different number of capabilities than its `bNumDeviceCaps` says.
    #[error("BOS declares bNumDeviceCaps {declared} but has {found} device capabilities")]
    NumDeviceCapsMismatch {
        /// `bNumDeviceCaps`.
        declared: u8,
        /// Device capability descriptors found.
        found: usize,
    },

    /// A descriptor appears where it is not allowed, e.g. an endpoint before any interface.
    #[error("unexpected {descriptor_type} descriptor {context}")]
    UnexpectedDescriptor {
        /// Its `bDescriptorType`.
        descriptor_type: DescriptorType,
        /// Where it was found, e.g. `"before any interface descriptor"`.
        context: &'static str,
    },
}

/// Explains which `bLength` rule was broken, for the [`WireError::BadLength`] message.
struct BadLengthReason {
    descriptor_type: DescriptorType,
    b_length: u8,
}

impl fmt::Display for BadLengthReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let min = self.descriptor_type.min_length();
        let b_length = usize::from(self.b_length);
        if b_length < 2 {
            f.write_str("every descriptor is at least 2 bytes")
        } else if b_length < min {
            write!(f, "below the minimum of {min} for this type")
        } else {
            f.write_str("it runs past the end of the buffer")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_rule() {
        let e = WireError::BadLength {
            descriptor_type: DescriptorType::DEVICE,
            b_length: 0,
        };
        assert_eq!(
            e.to_string(),
            "bLength 0 is invalid for a DEVICE descriptor: every descriptor is at least 2 bytes"
        );
        let e = WireError::BadLength {
            descriptor_type: DescriptorType::ENDPOINT,
            b_length: 5,
        };
        assert!(e.to_string().contains("minimum of 7"), "{e}");
        let e = WireError::BadLength {
            descriptor_type: DescriptorType(0x41),
            b_length: 40,
        };
        assert!(e.to_string().contains("0x41"), "{e}");
        assert!(e.to_string().contains("past the end"), "{e}");
        let e = WireError::TooLong {
            what: "descriptor buffer",
            limit: 64,
            len: 65,
        };
        assert_eq!(
            e.to_string(),
            "descriptor buffer would be 65, over the limit of 64"
        );
        let e = WireError::Truncated {
            what: "setup packet",
            needed: 8,
            available: 3,
        };
        assert_eq!(
            e.to_string(),
            "setup packet truncated: needs 8 bytes, only 3 available"
        );
    }
}
