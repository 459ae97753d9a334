//! `USBFN_INTERFACE_INFO`: the request and answer of `GET_INTERFACE_DESCRIPTOR_SET`.
//!
//! # Layout and the meaning of `Size`
//!
//! A 10-byte header (`InterfaceNumber` u8 at 0, padding, `Speed` u32 at 4, `Size` u16 at 8),
//! then `InterfaceDescriptorSet` from offset 10. `sizeof(USBFN_INTERFACE_INFO)` is 12 because the
//! C declaration has a one-byte array and 4-byte alignment; a request is those 12 bytes.
//!
//! Windows documents `Size` as "the total length, in bytes, of all data for the interface".
//! usbfn reads it as **the length of `InterfaceDescriptorSet`**, without the header: an answer
//! occupies `10 + Size` bytes, and when the caller's buffer is smaller the driver fills in only
//! the header (with `Size`) and completes with `STATUS_BUFFER_TOO_SMALL`.
//! [`InterfaceInfoHeader::required_buffer_len`] gives the buffer to allocate for the retry
//! (which is also large enough if a Windows driver meant `Size` to include the header).

use crate::codec::{Reader, Writer};
use crate::{AbiError, BusSpeed};

/// The fixed part of `USBFN_INTERFACE_INFO`: the whole request, or the answer when the buffer
/// was too small.
///
/// ```
/// use usbfn_abi::{BusSpeed, InterfaceInfoHeader};
/// let request = InterfaceInfoHeader { interface_number: 1, speed: BusSpeed::HIGH, size: 0 };
/// assert_eq!(request.encode(), [1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]);
/// // A STATUS_BUFFER_TOO_SMALL answer says how much to allocate.
/// let answer = InterfaceInfoHeader::decode(&[1, 0, 0, 0, 2, 0, 0, 0, 25, 0, 0, 0])?;
/// assert_eq!(answer.required_buffer_len(), 35);
/// # Ok::<(), usbfn_abi::AbiError>(())
/// ```
#[doc(alias = "USBFN_INTERFACE_INFO")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct InterfaceInfoHeader {
    /// `InterfaceNumber`.
    #[doc(alias = "InterfaceNumber")]
    pub interface_number: u8,
    /// `Speed`: the bus speed whose descriptors are asked for.
    #[doc(alias = "Speed")]
    pub speed: BusSpeed,
    /// `Size`: bytes of `InterfaceDescriptorSet` (see the module docs).
    #[doc(alias = "Size")]
    pub size: u16,
}

/// `USBFN_INTERFACE_INFO` with its descriptor set: the answer of
/// `GET_INTERFACE_DESCRIPTOR_SET`.
///
/// ```
/// use usbfn_abi::{BusSpeed, InterfaceInfo};
/// let interface = [9, 4, 0, 0, 0, 0xFF, 0, 0, 0]; // an interface descriptor, no endpoints
/// let info = InterfaceInfo::new(0, BusSpeed::FULL, interface.to_vec())?;
/// let bytes = info.to_vec();
/// assert_eq!(bytes.len(), 19);
/// assert_eq!(&bytes[8..10], &[9, 0]); // Size
/// assert_eq!(InterfaceInfo::decode(&bytes)?, info);
/// # Ok::<(), usbfn_abi::AbiError>(())
/// ```
#[doc(alias = "USBFN_INTERFACE_INFO")]
#[doc(alias = "InterfaceDescriptorSet")]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct InterfaceInfo {
    /// `InterfaceNumber`.
    #[doc(alias = "InterfaceNumber")]
    pub interface_number: u8,
    /// `Speed`.
    #[doc(alias = "Speed")]
    pub speed: BusSpeed,
    descriptor_set: Vec<u8>,
}

/// Byte offsets (pinned against [`crate::raw::UsbfnInterfaceInfo`]).
mod field {
    pub(super) const INTERFACE_NUMBER: usize = 0;
    pub(super) const SPEED: usize = 4;
    pub(super) const SIZE: usize = 8;
    pub(super) const INTERFACE_DESCRIPTOR_SET: usize = 10;
}

impl InterfaceInfoHeader {
    /// The Windows name of the structure, as used in error messages.
    pub const WINDOWS_NAME: &'static str = "USBFN_INTERFACE_INFO";
    /// Bytes before `InterfaceDescriptorSet`.
    pub const HEADER_LEN: usize = field::INTERFACE_DESCRIPTOR_SET;
    /// `sizeof(USBFN_INTERFACE_INFO)`: the length of an encoded request.
    pub const SIZE: usize = 12;

    /// The 12-byte request form (padding and the one-byte array zeroed).
    #[must_use]
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut out = [0; Self::SIZE];
        self.write(&mut Writer::new(&mut out));
        out
    }

    /// Writes [`encode`](Self::encode)'s 12 bytes to the start of `out`.
    ///
    /// # Errors
    ///
    /// [`AbiError::OutputTooSmall`] when `out` is shorter than 12 bytes.
    pub fn encode_into(&self, out: &mut [u8]) -> Result<usize, AbiError> {
        let got = out.len();
        let dst = out.get_mut(..Self::SIZE).ok_or(AbiError::OutputTooSmall {
            structure: Self::WINDOWS_NAME,
            need: Self::SIZE,
            got,
        })?;
        dst.copy_from_slice(&self.encode());
        Ok(Self::SIZE)
    }

    /// Decodes the 10-byte header; anything after it is ignored.
    ///
    /// # Errors
    ///
    /// [`AbiError::BufferTooShort`] for fewer than 10 bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, AbiError> {
        let r = Reader::new(bytes, Self::HEADER_LEN, Self::WINDOWS_NAME)?;
        Ok(Self {
            interface_number: r.u8(field::INTERFACE_NUMBER),
            speed: BusSpeed(r.u32(field::SPEED)),
            size: r.u16(field::SIZE),
        })
    }

    /// The output buffer that holds the header and `size` descriptor bytes:
    /// `max(12, 10 + size)`.
    #[must_use]
    pub fn required_buffer_len(&self) -> usize {
        (Self::HEADER_LEN + usize::from(self.size)).max(Self::SIZE)
    }

    fn write(&self, w: &mut Writer<'_>) {
        w.u8(field::INTERFACE_NUMBER, self.interface_number);
        w.u32(field::SPEED, self.speed.0);
        w.u16(field::SIZE, self.size);
    }
}

impl InterfaceInfo {
    /// Most bytes a descriptor set may have: `Size` is a `u16`.
    pub const MAX_DESCRIPTOR_SET_LEN: usize = u16::MAX as usize;

    /// An answer carrying `descriptor_set`.
    ///
    /// # Errors
    ///
    /// [`AbiError::DescriptorSetTooLong`] for more than 65535 bytes.
    pub fn new(
        interface_number: u8,
        speed: BusSpeed,
        descriptor_set: Vec<u8>,
    ) -> Result<Self, AbiError> {
        if descriptor_set.len() > Self::MAX_DESCRIPTOR_SET_LEN {
            return Err(AbiError::DescriptorSetTooLong {
                len: descriptor_set.len(),
                max: Self::MAX_DESCRIPTOR_SET_LEN,
            });
        }
        Ok(Self {
            interface_number,
            speed,
            descriptor_set,
        })
    }

    /// The interface's descriptors: interface, endpoint and class-specific descriptors.
    #[must_use]
    pub fn descriptor_set(&self) -> &[u8] {
        &self.descriptor_set
    }

    /// The descriptor set, by value.
    #[must_use]
    pub fn into_descriptor_set(self) -> Vec<u8> {
        self.descriptor_set
    }

    /// The header, with `size` the descriptor set's length.
    #[must_use]
    pub fn header(&self) -> InterfaceInfoHeader {
        InterfaceInfoHeader {
            interface_number: self.interface_number,
            speed: self.speed,
            // `new` and `decode` keep the length within u16.
            size: u16::try_from(self.descriptor_set.len()).unwrap_or(u16::MAX),
        }
    }

    /// Bytes of the encoding: `max(12, 10 + descriptor set length)`.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        self.header().required_buffer_len()
    }

    /// Writes the header and the descriptor set to the start of `out` and returns
    /// [`encoded_len`](Self::encoded_len).
    ///
    /// # Errors
    ///
    /// [`AbiError::OutputTooSmall`] when `out` is shorter than
    /// [`encoded_len`](Self::encoded_len); a driver then answers with only the header
    /// ([`InterfaceInfoHeader::encode_into`] of [`header`](Self::header)) and
    /// `STATUS_BUFFER_TOO_SMALL`.
    pub fn encode_into(&self, out: &mut [u8]) -> Result<usize, AbiError> {
        let need = self.encoded_len();
        let got = out.len();
        let dst = out.get_mut(..need).ok_or(AbiError::OutputTooSmall {
            structure: InterfaceInfoHeader::WINDOWS_NAME,
            need,
            got,
        })?;
        dst.fill(0);
        let mut w = Writer::new(dst);
        self.header().write(&mut w);
        w.bytes(field::INTERFACE_DESCRIPTOR_SET, &self.descriptor_set);
        Ok(need)
    }

    /// The encoding as a new vector of [`encoded_len`](Self::encoded_len) bytes.
    #[must_use]
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = vec![0; self.encoded_len()];
        // Cannot fail: `out` has exactly `encoded_len` bytes.
        let _ = self.encode_into(&mut out);
        out
    }

    /// Decodes a header and the `Size` descriptor bytes after it; later bytes are ignored.
    ///
    /// # Errors
    ///
    /// [`AbiError::BufferTooShort`] when fewer than `10 + Size` bytes are present (for a
    /// `STATUS_BUFFER_TOO_SMALL` answer, use [`InterfaceInfoHeader::decode`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, AbiError> {
        let header = InterfaceInfoHeader::decode(bytes)?;
        let len = usize::from(header.size);
        let r = Reader::new(
            bytes,
            InterfaceInfoHeader::HEADER_LEN + len,
            InterfaceInfoHeader::WINDOWS_NAME,
        )?;
        Ok(Self {
            interface_number: header.interface_number,
            speed: header.speed,
            descriptor_set: r.slice(field::INTERFACE_DESCRIPTOR_SET, len).to_vec(),
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
        use crate::raw::UsbfnInterfaceInfo as R;
        assert_eq!(InterfaceInfoHeader::SIZE, size_of::<R>());
        assert_eq!(field::INTERFACE_NUMBER, offset_of!(R, interface_number));
        assert_eq!(field::SPEED, offset_of!(R, speed));
        assert_eq!(field::SIZE, offset_of!(R, size));
        assert_eq!(
            field::INTERFACE_DESCRIPTOR_SET,
            offset_of!(R, interface_descriptor_set)
        );
        assert_eq!(InterfaceInfoHeader::HEADER_LEN, 10);
    }

    #[test]
    fn hand_written_answer() {
        let mut bytes = vec![2, 0xEE, 0xEE, 0xEE, 1, 0, 0, 0, 3, 0, 0xA, 0xB, 0xC, 0xFF];
        let info = InterfaceInfo::decode(&bytes).unwrap();
        assert_eq!(info.interface_number, 2);
        assert_eq!(info.speed, BusSpeed::FULL);
        assert_eq!(info.descriptor_set(), &[0xA, 0xB, 0xC]);
        assert_eq!(info.encoded_len(), 13);
        // Padding is written as zero, trailing bytes are not part of the answer.
        bytes[1..4].fill(0);
        bytes.truncate(13);
        assert_eq!(info.to_vec(), bytes);
    }

    #[test]
    fn truncated_answers() {
        let bytes = [2, 0, 0, 0, 1, 0, 0, 0, 30, 0, 9, 4];
        assert_eq!(
            InterfaceInfo::decode(&bytes),
            Err(AbiError::BufferTooShort {
                structure: "USBFN_INTERFACE_INFO",
                need: 40,
                got: 12
            })
        );
        let header = InterfaceInfoHeader::decode(&bytes).unwrap();
        assert_eq!(header.size, 30);
        assert_eq!(header.required_buffer_len(), 40);
        assert!(matches!(
            InterfaceInfoHeader::decode(&bytes[..9]),
            Err(AbiError::BufferTooShort {
                need: 10,
                got: 9,
                ..
            })
        ));
    }

    #[test]
    fn small_and_empty_sets_pad_to_sizeof() {
        let info = InterfaceInfo::new(1, BusSpeed::HIGH, vec![]).unwrap();
        assert_eq!(info.to_vec(), [1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(info.header().encode().to_vec(), info.to_vec());
        let one = InterfaceInfo::new(1, BusSpeed::HIGH, vec![7]).unwrap();
        assert_eq!(one.to_vec(), [1, 0, 0, 0, 2, 0, 0, 0, 1, 0, 7, 0]);
        assert_eq!(InterfaceInfo::decode(&one.to_vec()), Ok(one));
    }

    #[test]
    fn limits_and_output_errors() {
        assert_eq!(
            InterfaceInfo::new(0, BusSpeed::FULL, vec![0; 65_536]),
            Err(AbiError::DescriptorSetTooLong {
                len: 65_536,
                max: 65_535
            })
        );
        let max = InterfaceInfo::new(0, BusSpeed::FULL, vec![1; 65_535]).unwrap();
        assert_eq!(max.header().size, 65_535);
        assert_eq!(InterfaceInfo::decode(&max.to_vec()), Ok(max));
        let info = InterfaceInfo::new(0, BusSpeed::FULL, vec![1; 20]).unwrap();
        let mut small = [0u8; 29];
        assert_eq!(
            info.encode_into(&mut small),
            Err(AbiError::OutputTooSmall {
                structure: "USBFN_INTERFACE_INFO",
                need: 30,
                got: 29
            })
        );
        assert_eq!(info.header().encode_into(&mut small), Ok(12));
        assert_eq!(&small[8..10], &[20, 0]);
        assert!(info.header().encode_into(&mut [0; 11]).is_err());
    }

    proptest! {
        #[test]
        fn round_trip(
            number in any::<u8>(),
            speed in any::<u32>(),
            set in proptest::collection::vec(any::<u8>(), 0..600),
        ) {
            let info = InterfaceInfo::new(number, BusSpeed(speed), set).unwrap();
            let bytes = info.to_vec();
            prop_assert_eq!(bytes.len(), info.encoded_len());
            prop_assert_eq!(InterfaceInfoHeader::decode(&bytes), Ok(info.header()));
            prop_assert_eq!(InterfaceInfo::decode(&bytes), Ok(info));
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = InterfaceInfo::decode(&bytes);
        }
    }
}
