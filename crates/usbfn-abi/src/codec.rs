//! Little-endian field access for the encoders and decoders (crate-private).
//!
//! The no-panic contract: a [`Reader`] is only built over a slice whose length was checked
//! against the structure's size, and every decoder reads only at constant offsets below that
//! size (each module's `field` offsets are pinned by tests against the `raw` layouts). A
//! [`Writer`] wraps an array of exactly the structure's size. Reads and writes outside the slice
//! therefore cannot happen; if a future bug made one, the read yields zeros and the write is
//! dropped instead of panicking, and the byte-vector tests would catch it.

use crate::AbiError;

/// Reads little-endian fields from a length-checked slice.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Checks that `bytes` holds at least `need` bytes of `structure`.
    pub(crate) fn new(
        bytes: &'a [u8],
        need: usize,
        structure: &'static str,
    ) -> Result<Self, AbiError> {
        if bytes.len() < need {
            return Err(AbiError::BufferTooShort {
                structure,
                need,
                got: bytes.len(),
            });
        }
        Ok(Self { bytes })
    }

    pub(crate) fn array<const N: usize>(&self, at: usize) -> [u8; N] {
        at.checked_add(N)
            .and_then(|end| self.bytes.get(at..end))
            .and_then(|s| <[u8; N]>::try_from(s).ok())
            .unwrap_or([0; N])
    }

    pub(crate) fn u8(&self, at: usize) -> u8 {
        let [b] = self.array::<1>(at);
        b
    }

    pub(crate) fn u16(&self, at: usize) -> u16 {
        u16::from_le_bytes(self.array(at))
    }

    pub(crate) fn u32(&self, at: usize) -> u32 {
        u32::from_le_bytes(self.array(at))
    }

    /// `len` bytes from `at` (empty if out of range, which the contract above excludes).
    pub(crate) fn slice(&self, at: usize, len: usize) -> &'a [u8] {
        at.checked_add(len)
            .and_then(|end| self.bytes.get(at..end))
            .unwrap_or(&[])
    }

    /// `N` little-endian `u16`s from `at`.
    pub(crate) fn utf16<const N: usize>(&self, at: usize) -> [u16; N] {
        let mut units = [0u16; N];
        for (i, unit) in units.iter_mut().enumerate() {
            *unit = self.u16(at + 2 * i);
        }
        units
    }
}

/// Writes little-endian fields into a buffer of the structure's size.
#[derive(Debug)]
pub(crate) struct Writer<'a> {
    out: &'a mut [u8],
}

impl<'a> Writer<'a> {
    pub(crate) fn new(out: &'a mut [u8]) -> Self {
        Self { out }
    }

    pub(crate) fn bytes(&mut self, at: usize, bytes: &[u8]) {
        if let Some(dst) = at
            .checked_add(bytes.len())
            .and_then(|end| self.out.get_mut(at..end))
        {
            // `dst` has exactly `bytes.len()` bytes, so this cannot panic.
            dst.copy_from_slice(bytes);
        }
    }

    pub(crate) fn u8(&mut self, at: usize, value: u8) {
        self.bytes(at, &[value]);
    }

    pub(crate) fn u16(&mut self, at: usize, value: u16) {
        self.bytes(at, &value.to_le_bytes());
    }

    pub(crate) fn u32(&mut self, at: usize, value: u32) {
        self.bytes(at, &value.to_le_bytes());
    }

    pub(crate) fn utf16(&mut self, at: usize, units: &[u16]) {
        for (i, unit) in units.iter().enumerate() {
            self.u16(at + 2 * i, *unit);
        }
    }
}

/// Decodes a `BOOLEAN`: 0 is `FALSE`, 1 is `TRUE`, anything else is an error.
pub(crate) fn decode_boolean(value: u8, field: &'static str) -> Result<bool, AbiError> {
    match value {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(AbiError::InvalidBoolean { field, value }),
    }
}

/// Adds `SIZE`, `WINDOWS_NAME` and `encode_into` to a fixed-size type that has
/// `fn encode(&self) -> [u8; SIZE]`.
macro_rules! fixed_size {
    ($ty:ty, $windows_name:literal, $size:expr) => {
        impl $ty {
            /// Bytes of the encoded structure (its Windows `sizeof`).
            pub const SIZE: usize = $size;

            /// The Windows name of the structure, as used in error messages.
            pub const WINDOWS_NAME: &'static str = $windows_name;

            /// Writes the [`SIZE`](Self::SIZE) encoded bytes to the start of `out` and returns
            /// how many were written; bytes of `out` past that are left alone.
            ///
            /// # Errors
            ///
            /// [`AbiError::OutputTooSmall`](crate::AbiError::OutputTooSmall) when `out` is
            /// shorter than [`SIZE`](Self::SIZE).
            pub fn encode_into(&self, out: &mut [u8]) -> Result<usize, $crate::AbiError> {
                let got = out.len();
                let dst = out
                    .get_mut(..Self::SIZE)
                    .ok_or($crate::AbiError::OutputTooSmall {
                        structure: Self::WINDOWS_NAME,
                        need: Self::SIZE,
                        got,
                    })?;
                dst.copy_from_slice(&self.encode());
                Ok(Self::SIZE)
            }
        }
    };
}

pub(crate) use fixed_size;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_checks_length_and_reads_le() {
        let bytes = [1, 2, 3, 4, 5, 6];
        assert_eq!(
            Reader::new(&bytes, 7, "X").map(|_| ()),
            Err(AbiError::BufferTooShort {
                structure: "X",
                need: 7,
                got: 6
            })
        );
        let r = Reader::new(&bytes, 6, "X").unwrap();
        assert_eq!(r.u8(0), 1);
        assert_eq!(r.u16(0), 0x0201);
        assert_eq!(r.u32(2), 0x0605_0403);
        assert_eq!(r.utf16::<2>(2), [0x0403, 0x0605]);
        assert_eq!(r.slice(4, 2), &[5, 6]);
        // Out of range (excluded by the contract) yields zeros, not a panic.
        assert_eq!(r.u32(4), 0);
        assert_eq!(r.slice(5, 9), &[] as &[u8]);
    }

    #[test]
    fn writer_writes_le_and_drops_out_of_range() {
        let mut out = [0u8; 6];
        let mut w = Writer::new(&mut out);
        w.u8(0, 0xAA);
        w.u16(1, 0x0201);
        w.utf16(3, &[0x0403]);
        w.u32(4, 0xFFFF_FFFF);
        assert_eq!(out, [0xAA, 0x01, 0x02, 0x03, 0x04, 0x00]);
    }

    #[test]
    fn boolean() {
        assert_eq!(decode_boolean(0, "F"), Ok(false));
        assert_eq!(decode_boolean(1, "F"), Ok(true));
        assert_eq!(
            decode_boolean(2, "F"),
            Err(AbiError::InvalidBoolean {
                field: "F",
                value: 2
            })
        );
    }
}
