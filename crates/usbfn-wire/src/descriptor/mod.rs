//! Typed standard descriptors: parse from bytes, write into a [`DescriptorWriter`].
//!
//! Every fixed-size descriptor struct has:
//! - `LENGTH`: its `bLength`, and `DESCRIPTOR_TYPE`;
//! - `parse(bytes)`: reads the descriptor at the start of `bytes`. It checks that the buffer
//!   holds a header, that `bDescriptorType` matches, and that `bLength` is at least `LENGTH`
//!   and within the buffer. A `bLength` larger than `LENGTH` is accepted (later spec revisions
//!   and class extensions append fields) and the extra bytes are ignored; bytes after
//!   `bLength` are not looked at. A buffer cut short of `bLength` (say, the 8-byte first read
//!   of a device descriptor) is [`WireError::BadLength`]; one without even the 2-byte header
//!   is [`WireError::Truncated`].
//! - `to_array()` / `to_bytes()`: the `LENGTH` wire bytes;
//! - `write(&mut DescriptorWriter)`: appends them, failing only when the writer's limit is hit.
//!
//! [`DescriptorWriter`]: crate::DescriptorWriter

pub mod bos;
pub mod config;
pub mod device;
pub mod endpoint;
pub mod string;

use crate::{DescriptorType, WireError};

/// Checks the header of the descriptor at the start of `bytes` and returns its `bLength` bytes.
///
/// `min` is the smallest acceptable `bLength` (at least 2).
pub(crate) fn checked_descriptor<'a>(
    bytes: &'a [u8],
    expected: DescriptorType,
    min: usize,
    what: &'static str,
) -> Result<&'a [u8], WireError> {
    let [b_length, b_descriptor_type, ..] = *bytes else {
        return Err(WireError::Truncated {
            what,
            needed: min.max(2),
            available: bytes.len(),
        });
    };
    let found = DescriptorType(b_descriptor_type);
    if found != expected {
        return Err(WireError::WrongDescriptorType { expected, found });
    }
    let len = usize::from(b_length);
    if len < min.max(2) {
        return Err(WireError::BadLength {
            descriptor_type: found,
            b_length,
        });
    }
    bytes.get(..len).ok_or(WireError::BadLength {
        descriptor_type: found,
        b_length,
    })
}

/// [`checked_descriptor`] for a fixed-size descriptor of `N` bytes: returns its first `N` bytes.
pub(crate) fn fixed_descriptor<'a, const N: usize>(
    bytes: &'a [u8],
    expected: DescriptorType,
    what: &'static str,
) -> Result<&'a [u8; N], WireError> {
    let descriptor = checked_descriptor(bytes, expected, N, what)?;
    // `checked_descriptor` guarantees `descriptor.len() >= N`; the error arm is unreachable
    // but keeps this function panic-free without an unwrap.
    descriptor.first_chunk::<N>().ok_or(WireError::Truncated {
        what,
        needed: N,
        available: descriptor.len(),
    })
}

/// A little-endian `u16` from two bytes.
pub(crate) const fn le16(lo: u8, hi: u8) -> u16 {
    u16::from_le_bytes([lo, hi])
}

/// Generates `to_bytes` and `write` for a descriptor struct that has `to_array`.
macro_rules! fixed_descriptor_io {
    ($ty:ty) => {
        impl $ty {
            /// The wire bytes, as a `Vec`.
            pub fn to_bytes(&self) -> Vec<u8> {
                self.to_array().to_vec()
            }

            /// Appends the wire bytes to `w`.
            ///
            /// Fails with [`WireError::TooLong`](crate::WireError::TooLong) if that would
            /// exceed the writer's limit.
            pub fn write(&self, w: &mut crate::DescriptorWriter) -> Result<(), crate::WireError> {
                w.push_bytes(&self.to_array())
            }
        }
    };
}
pub(crate) use fixed_descriptor_io;
