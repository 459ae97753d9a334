//! Walking a buffer of concatenated descriptors.

use core::iter::FusedIterator;

use crate::{DescriptorType, DescriptorWriter, WireError};

/// Iterates over the descriptors in `bytes` (e.g. a full configuration descriptor set).
///
/// ```
/// use usbfn_wire::{descriptors, DescriptorType};
///
/// let bytes = [4, 0x24, 1, 2, 3, 0x25, 9];
/// let types: Vec<_> = descriptors(&bytes).map(|d| d.map(|d| d.descriptor_type)).collect();
/// assert_eq!(types, [Ok(DescriptorType::CS_INTERFACE), Ok(DescriptorType::CS_ENDPOINT)]);
/// ```
pub fn descriptors(bytes: &[u8]) -> DescriptorIter<'_> {
    DescriptorIter {
        rest: bytes,
        offset: 0,
        failed: false,
    }
}

/// Iterator over concatenated descriptors, created by [`descriptors`].
///
/// Yields each descriptor's bytes as found. A `bLength` of 0 or 1, a `bLength` larger than what
/// is left of the buffer, or a single trailing byte is an error; the iterator yields that error
/// once and then stops (it is fused). It checks no per-type minimum lengths: the typed parsers
/// do.
#[derive(Clone, Debug)]
pub struct DescriptorIter<'a> {
    rest: &'a [u8],
    offset: usize,
    failed: bool,
}

/// One descriptor borrowed from a buffer.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct RawDescriptor<'a> {
    /// `bDescriptorType`.
    pub descriptor_type: DescriptorType,
    /// The whole descriptor, header included (`bytes.len()` is `bLength`).
    pub bytes: &'a [u8],
}

/// One descriptor, owned: how class-specific and unknown descriptors are kept in a
/// [`ConfigurationTree`](crate::ConfigurationTree) or [`BosTree`](crate::BosTree).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct RawOwned {
    /// `bDescriptorType`.
    pub descriptor_type: DescriptorType,
    /// The whole descriptor, header included.
    pub bytes: Vec<u8>,
}

impl<'a> DescriptorIter<'a> {
    /// Offset in the original buffer of the next descriptor.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The bytes not yet iterated over.
    pub fn remaining(&self) -> &'a [u8] {
        self.rest
    }

    fn fail(&mut self, error: WireError) -> Option<Result<RawDescriptor<'a>, WireError>> {
        self.failed = true;
        Some(Err(error))
    }
}

impl<'a> Iterator for DescriptorIter<'a> {
    type Item = Result<RawDescriptor<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let [b_length, b_descriptor_type, ..] = *self.rest else {
            let available = self.rest.len();
            return self.fail(WireError::Truncated {
                what: "descriptor header",
                needed: 2,
                available,
            });
        };
        let descriptor_type = DescriptorType(b_descriptor_type);
        let len = usize::from(b_length);
        let split = if len < 2 {
            None
        } else {
            self.rest.split_at_checked(len)
        };
        let Some((bytes, rest)) = split else {
            return self.fail(WireError::BadLength {
                descriptor_type,
                b_length,
            });
        };
        self.rest = rest;
        self.offset += len;
        Some(Ok(RawDescriptor {
            descriptor_type,
            bytes,
        }))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.failed || self.rest.is_empty() {
            (0, Some(0))
        } else {
            // Every descriptor (or the final error) takes at least two bytes, or one.
            (1, Some(self.rest.len().div_ceil(2)))
        }
    }
}

impl FusedIterator for DescriptorIter<'_> {}

impl<'a> RawDescriptor<'a> {
    /// `bLength` (the first byte), or 0 for an empty `bytes`.
    pub fn b_length(&self) -> u8 {
        self.bytes.first().copied().unwrap_or(0)
    }

    /// The bytes after the two-byte header.
    pub fn payload(&self) -> &'a [u8] {
        self.bytes.get(2..).unwrap_or(&[])
    }

    /// Copies the descriptor.
    pub fn into_owned(self) -> RawOwned {
        RawOwned {
            descriptor_type: self.descriptor_type,
            bytes: self.bytes.to_vec(),
        }
    }
}

impl RawOwned {
    /// Builds a descriptor from its type and the bytes after the header (e.g. a HID class
    /// descriptor). Fails with [`WireError::TooLong`] when `bLength` would exceed 255.
    pub fn new(descriptor_type: DescriptorType, payload: &[u8]) -> Result<Self, WireError> {
        let b_length = descriptor_length(payload.len())?;
        let mut bytes = Vec::with_capacity(usize::from(b_length));
        bytes.extend([b_length, descriptor_type.0]);
        bytes.extend_from_slice(payload);
        Ok(Self {
            descriptor_type,
            bytes,
        })
    }

    /// Borrows it as a [`RawDescriptor`].
    pub fn as_raw(&self) -> RawDescriptor<'_> {
        RawDescriptor {
            descriptor_type: self.descriptor_type,
            bytes: &self.bytes,
        }
    }

    /// The bytes after the two-byte header.
    pub fn payload(&self) -> &[u8] {
        self.as_raw().payload()
    }

    /// Appends the bytes, unchanged, to `w`.
    pub fn write(&self, w: &mut DescriptorWriter) -> Result<(), WireError> {
        w.push_bytes(&self.bytes)
    }
}

impl<'a> From<RawDescriptor<'a>> for RawOwned {
    fn from(raw: RawDescriptor<'a>) -> Self {
        raw.into_owned()
    }
}

/// `bLength` for a descriptor with `payload_len` bytes after the header.
pub(crate) fn descriptor_length(payload_len: usize) -> Result<u8, WireError> {
    let len = payload_len.saturating_add(2);
    u8::try_from(len).map_err(|_| WireError::TooLong {
        what: "bLength",
        limit: 255,
        len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A HID mouse configuration: configuration, interface, HID, endpoint.
    const MOUSE_CONFIG: [u8; 34] = [
        0x09, 0x02, 0x22, 0x00, 0x01, 0x01, 0x00, 0xa0, 0x32, // configuration
        0x09, 0x04, 0x00, 0x00, 0x01, 0x03, 0x01, 0x02, 0x00, // interface: HID boot mouse
        0x09, 0x21, 0x11, 0x01, 0x00, 0x01, 0x22, 0x43, 0x00, // HID 1.11, report 0x43 bytes
        0x07, 0x05, 0x81, 0x03, 0x04, 0x00, 0x0a, // EP1 IN interrupt, 4 bytes, 10 ms
    ];

    #[test]
    fn walks_a_configuration() {
        let mut it = descriptors(&MOUSE_CONFIG);
        let types: Vec<DescriptorType> = it.by_ref().map(|d| d.unwrap().descriptor_type).collect();
        assert_eq!(
            types,
            [
                DescriptorType::CONFIGURATION,
                DescriptorType::INTERFACE,
                DescriptorType::HID,
                DescriptorType::ENDPOINT
            ]
        );
        assert_eq!(it.offset(), 34);
        assert!(it.remaining().is_empty());
        let hid = descriptors(&MOUSE_CONFIG).nth(2).unwrap().unwrap();
        assert_eq!(hid.b_length(), 9);
        assert_eq!(hid.payload(), &MOUSE_CONFIG[20..27]);
        assert_eq!(hid.into_owned().as_raw(), hid);
    }

    #[test]
    fn zero_length_stops() {
        let bytes = [0x09, 0x04, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x05, 0xff, 0xff];
        let mut it = descriptors(&bytes);
        assert!(it.next().unwrap().is_ok());
        assert_eq!(
            it.next(),
            Some(Err(WireError::BadLength {
                descriptor_type: DescriptorType::ENDPOINT,
                b_length: 0
            }))
        );
        assert_eq!(it.offset(), 9);
        assert_eq!(it.next(), None);
        assert_eq!(it.next(), None);
    }

    #[test]
    fn length_one_and_overlong() {
        let mut it = descriptors(&[0x01, 0x05, 0x00]);
        assert_eq!(
            it.next(),
            Some(Err(WireError::BadLength {
                descriptor_type: DescriptorType(5),
                b_length: 1
            }))
        );
        assert_eq!(it.next(), None);
        let mut it = descriptors(&MOUSE_CONFIG[..30]);
        assert_eq!(it.by_ref().filter(Result::is_ok).count(), 3);
        let mut it = descriptors(&MOUSE_CONFIG[..30]);
        assert_eq!(
            it.nth(3),
            Some(Err(WireError::BadLength {
                descriptor_type: DescriptorType::ENDPOINT,
                b_length: 7
            }))
        );
        assert_eq!(it.next(), None);
    }

    #[test]
    fn trailing_byte() {
        let mut it = descriptors(&[0x02, 0x24, 0x07]);
        assert!(it.next().unwrap().is_ok());
        assert_eq!(
            it.next(),
            Some(Err(WireError::Truncated {
                what: "descriptor header",
                needed: 2,
                available: 1
            }))
        );
        assert_eq!(it.next(), None);
        assert_eq!(descriptors(&[]).next(), None);
    }

    #[test]
    fn raw_owned() {
        let raw = RawOwned::new(DescriptorType::CS_INTERFACE, &[1, 2, 3]).unwrap();
        assert_eq!(raw.bytes, [5, 0x24, 1, 2, 3]);
        assert_eq!(raw.payload(), [1, 2, 3]);
        assert_eq!(
            RawOwned::new(DescriptorType::CS_INTERFACE, &[0; 254]),
            Err(WireError::TooLong {
                what: "bLength",
                limit: 255,
                len: 256
            })
        );
        assert_eq!(
            RawOwned::new(DescriptorType(0x41), &[0; 253])
                .unwrap()
                .bytes[0],
            255
        );
    }

    proptest! {
        #[test]
        fn never_panics_and_covers_the_buffer(
            bytes in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            let mut it = descriptors(&bytes);
            let mut total = 0;
            let mut errors = 0;
            for item in it.by_ref() {
                match item {
                    Ok(raw) => {
                        prop_assert!(raw.bytes.len() >= 2);
                        prop_assert_eq!(usize::from(raw.b_length()), raw.bytes.len());
                        total += raw.bytes.len();
                    }
                    Err(_) => errors += 1,
                }
            }
            prop_assert!(errors <= 1);
            prop_assert_eq!(it.next(), None);
            prop_assert_eq!(it.offset(), total);
            if errors == 0 {
                prop_assert_eq!(total, bytes.len());
            }
        }
    }
}
