//! Pipes: `USBFNPIPEID`, the pipe-state `BOOLEAN`, `USBFN_PIPE_INFORMATION` and the per-speed
//! `USBFN_CLASS_INTERFACE` / `USBFN_CLASS_INTERFACE_EX` with their fixed pipe arrays.

use core::fmt;
use core::ops::Deref;

use crate::codec::{Reader, Writer, decode_boolean, fixed_size};
use crate::limits::MAX_NUM_USBFN_PIPES;
use crate::{AbiError, EndpointDescriptorRaw};

/// `USBFNPIPEID`: a pipe index (not an endpoint address), the input of transfer and pipe-state
/// IOCTLs. Pipe 0 is the control pipe of endpoint 0.
#[doc(alias = "USBFNPIPEID")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct PipeId(pub u32);

/// The `BOOLEAN` of `GET_PIPE_STATE` / `SET_PIPE_STATE`: `TRUE` (1) = stalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PipeState {
    /// The pipe is (or is to be) halted.
    pub stalled: bool,
}

/// `USBFN_PIPE_INFORMATION`: one configured pipe, 12 bytes.
#[doc(alias = "USBFN_PIPE_INFORMATION")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PipeInformation {
    /// `EpDesc`: the endpoint's descriptor for this speed.
    #[doc(alias = "EpDesc")]
    pub endpoint_descriptor: EndpointDescriptorRaw,
    /// `PipeId`: what to pass to transfer IOCTLs for this endpoint.
    #[doc(alias = "PipeId")]
    pub pipe_id: PipeId,
}

/// A `PipeArr` with its `PipeCount`: at most [`MAX_NUM_USBFN_PIPES`] pipes, stored inline.
///
/// Dereferences to `[PipeInformation]`. Equality compares the pipes in use only.
///
/// ```
/// use usbfn_abi::{PipeInformation, PipeList};
/// let mut pipes = PipeList::new();
/// pipes.try_push(PipeInformation::default())?;
/// assert_eq!(pipes.len(), 1);
/// assert!(PipeList::try_from(&[PipeInformation::default(); 17][..]).is_err());
/// # Ok::<(), usbfn_abi::AbiError>(())
/// ```
#[doc(alias = "PipeArr")]
#[derive(Clone, Copy, Default)]
pub struct PipeList {
    len: u8,
    pipes: [PipeInformation; MAX_NUM_USBFN_PIPES],
}

/// `USBFN_CLASS_INTERFACE`: an interface's pipes at one bus speed, 196 bytes.
#[doc(alias = "USBFN_CLASS_INTERFACE")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ClassInterface {
    /// `InterfaceNumber`.
    #[doc(alias = "InterfaceNumber")]
    pub interface_number: u8,
    /// `PipeArr` and `PipeCount`.
    #[doc(alias = "PipeArr")]
    #[doc(alias = "PipeCount")]
    pub pipes: PipeList,
}

/// `USBFN_CLASS_INTERFACE_EX`: a (possibly multi-interface) function's pipes at one bus speed,
/// 196 bytes.
#[doc(alias = "USBFN_CLASS_INTERFACE_EX")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ClassInterfaceEx {
    /// `BaseInterfaceNumber`: the first interface of the function.
    #[doc(alias = "BaseInterfaceNumber")]
    pub base_interface_number: u8,
    /// `InterfaceCount`: interfaces in the function.
    #[doc(alias = "InterfaceCount")]
    pub interface_count: u8,
    /// `PipeArr` and `PipeCount`.
    #[doc(alias = "PipeArr")]
    #[doc(alias = "PipeCount")]
    pub pipes: PipeList,
}

/// Byte offsets (pinned against the `raw` layouts in the tests).
mod field {
    /// `USBFN_PIPE_INFORMATION`.
    pub(super) const EP_DESC: usize = 0;
    pub(super) const PIPE_ID: usize = 8;
    /// `USBFN_CLASS_INTERFACE`.
    pub(super) const CI_INTERFACE_NUMBER: usize = 0;
    pub(super) const CI_PIPE_COUNT: usize = 1;
    pub(super) const CI_PIPE_ARR: usize = 4;
    /// `USBFN_CLASS_INTERFACE_EX`.
    pub(super) const CIX_BASE_INTERFACE_NUMBER: usize = 0;
    pub(super) const CIX_INTERFACE_COUNT: usize = 1;
    pub(super) const CIX_PIPE_COUNT: usize = 2;
    pub(super) const CIX_PIPE_ARR: usize = 4;
}

fixed_size!(PipeId, "USBFNPIPEID", 4);
fixed_size!(PipeState, "BOOLEAN", 1);
fixed_size!(PipeInformation, "USBFN_PIPE_INFORMATION", 12);
fixed_size!(ClassInterface, "USBFN_CLASS_INTERFACE", 196);
fixed_size!(ClassInterfaceEx, "USBFN_CLASS_INTERFACE_EX", 196);

impl PipeId {
    /// Pipe 0, the control pipe: the input of the status-handshake IOCTLs.
    pub const CONTROL: Self = Self(0);

    /// The 4 bytes, little-endian.
    #[must_use]
    pub fn encode(&self) -> [u8; Self::SIZE] {
        self.0.to_le_bytes()
    }

    /// Decodes the first 4 bytes.
    ///
    /// # Errors
    ///
    /// [`AbiError::BufferTooShort`].
    pub fn decode(bytes: &[u8]) -> Result<Self, AbiError> {
        let r = Reader::new(bytes, Self::SIZE, Self::WINDOWS_NAME)?;
        Ok(Self(r.u32(0)))
    }
}

impl fmt::Display for PipeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pipe {}", self.0)
    }
}

impl PipeState {
    /// The `BOOLEAN` byte.
    #[must_use]
    pub fn encode(&self) -> [u8; Self::SIZE] {
        [u8::from(self.stalled)]
    }

    /// Decodes the first byte: 0 = not stalled, 1 = stalled.
    ///
    /// # Errors
    ///
    /// [`AbiError::BufferTooShort`] for no bytes, [`AbiError::InvalidBoolean`] for other values.
    pub fn decode(bytes: &[u8]) -> Result<Self, AbiError> {
        let r = Reader::new(bytes, Self::SIZE, Self::WINDOWS_NAME)?;
        Ok(Self {
            stalled: decode_boolean(r.u8(0), "pipe state BOOLEAN")?,
        })
    }
}

impl PipeInformation {
    /// The 12 bytes (padding byte 7 zeroed).
    #[must_use]
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut out = [0; Self::SIZE];
        let mut w = Writer::new(&mut out);
        w.bytes(field::EP_DESC, &self.endpoint_descriptor.encode());
        w.u32(field::PIPE_ID, self.pipe_id.0);
        out
    }

    /// Decodes the first 12 bytes; the padding byte is ignored.
    ///
    /// # Errors
    ///
    /// [`AbiError::BufferTooShort`].
    pub fn decode(bytes: &[u8]) -> Result<Self, AbiError> {
        let r = Reader::new(bytes, Self::SIZE, Self::WINDOWS_NAME)?;
        Ok(Self {
            endpoint_descriptor: EndpointDescriptorRaw::from_bytes(r.array(field::EP_DESC)),
            pipe_id: PipeId(r.u32(field::PIPE_ID)),
        })
    }
}

impl PipeList {
    /// The most pipes a list holds, [`MAX_NUM_USBFN_PIPES`].
    pub const CAPACITY: usize = MAX_NUM_USBFN_PIPES;

    /// An empty list.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            len: 0,
            pipes: [PipeInformation {
                endpoint_descriptor: EndpointDescriptorRaw {
                    length: 0,
                    descriptor_type: 0,
                    endpoint_address: 0,
                    attributes: 0,
                    max_packet_size: 0,
                    interval: 0,
                },
                pipe_id: PipeId(0),
            }; MAX_NUM_USBFN_PIPES],
        }
    }

    /// Appends a pipe.
    ///
    /// # Errors
    ///
    /// [`AbiError::TooManyPipes`] when the list already holds [`Self::CAPACITY`] pipes.
    pub fn try_push(&mut self, pipe: PipeInformation) -> Result<(), AbiError> {
        let slot = self
            .pipes
            .get_mut(usize::from(self.len))
            .ok_or(AbiError::TooManyPipes {
                structure: "PipeArr",
                count: usize::from(self.len) + 1,
                max: MAX_NUM_USBFN_PIPES,
            })?;
        *slot = pipe;
        self.len += 1;
        Ok(())
    }

    /// Removes every pipe.
    pub fn clear(&mut self) {
        *self = Self::new();
    }

    /// The pipes in use.
    #[must_use]
    pub fn as_slice(&self) -> &[PipeInformation] {
        self.pipes.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// Builds a list from a slice.
    ///
    /// # Errors
    ///
    /// [`AbiError::TooManyPipes`] for more than [`Self::CAPACITY`] pipes.
    pub fn from_slice(pipes: &[PipeInformation]) -> Result<Self, AbiError> {
        if pipes.len() > Self::CAPACITY {
            return Err(AbiError::TooManyPipes {
                structure: "PipeArr",
                count: pipes.len(),
                max: MAX_NUM_USBFN_PIPES,
            });
        }
        let mut list = Self::new();
        for pipe in pipes {
            list.try_push(*pipe)?;
        }
        Ok(list)
    }

    /// `PipeCount` and the 192 bytes of `PipeArr` (unused entries zeroed).
    fn encode(&self, w: &mut Writer<'_>, count_at: usize, arr_at: usize) {
        w.u8(count_at, self.len);
        for (i, pipe) in self.as_slice().iter().enumerate() {
            w.bytes(arr_at + i * PipeInformation::SIZE, &pipe.encode());
        }
    }

    /// Reads `PipeCount` and that many entries of `PipeArr`; later entries are ignored.
    fn decode(
        r: &Reader<'_>,
        count_at: usize,
        arr_at: usize,
        structure: &'static str,
    ) -> Result<Self, AbiError> {
        let count = usize::from(r.u8(count_at));
        if count > MAX_NUM_USBFN_PIPES {
            return Err(AbiError::TooManyPipes {
                structure,
                count,
                max: MAX_NUM_USBFN_PIPES,
            });
        }
        let mut list = Self::new();
        for i in 0..count {
            let at = arr_at + i * PipeInformation::SIZE;
            list.try_push(PipeInformation::decode(r.slice(at, PipeInformation::SIZE))?)?;
        }
        Ok(list)
    }
}

impl Deref for PipeList {
    type Target = [PipeInformation];
    fn deref(&self) -> &[PipeInformation] {
        self.as_slice()
    }
}

impl PartialEq for PipeList {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for PipeList {}

impl core::hash::Hash for PipeList {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

impl fmt::Debug for PipeList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl TryFrom<&[PipeInformation]> for PipeList {
    type Error = AbiError;
    fn try_from(pipes: &[PipeInformation]) -> Result<Self, AbiError> {
        Self::from_slice(pipes)
    }
}

impl TryFrom<Vec<PipeInformation>> for PipeList {
    type Error = AbiError;
    fn try_from(pipes: Vec<PipeInformation>) -> Result<Self, AbiError> {
        Self::from_slice(&pipes)
    }
}

impl<'a> IntoIterator for &'a PipeList {
    type Item = &'a PipeInformation;
    type IntoIter = core::slice::Iter<'a, PipeInformation>;
    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

impl ClassInterface {
    /// The 196 bytes (padding and unused pipe entries zeroed).
    #[must_use]
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut out = [0; Self::SIZE];
        let mut w = Writer::new(&mut out);
        w.u8(field::CI_INTERFACE_NUMBER, self.interface_number);
        self.pipes
            .encode(&mut w, field::CI_PIPE_COUNT, field::CI_PIPE_ARR);
        out
    }

    /// Decodes the first 196 bytes.
    ///
    /// # Errors
    ///
    /// [`AbiError::BufferTooShort`], [`AbiError::TooManyPipes`] for `PipeCount > 16`.
    pub fn decode(bytes: &[u8]) -> Result<Self, AbiError> {
        let r = Reader::new(bytes, Self::SIZE, Self::WINDOWS_NAME)?;
        Ok(Self {
            interface_number: r.u8(field::CI_INTERFACE_NUMBER),
            pipes: PipeList::decode(
                &r,
                field::CI_PIPE_COUNT,
                field::CI_PIPE_ARR,
                Self::WINDOWS_NAME,
            )?,
        })
    }
}

impl ClassInterfaceEx {
    /// The 196 bytes (padding and unused pipe entries zeroed).
    #[must_use]
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut out = [0; Self::SIZE];
        let mut w = Writer::new(&mut out);
        w.u8(field::CIX_BASE_INTERFACE_NUMBER, self.base_interface_number);
        w.u8(field::CIX_INTERFACE_COUNT, self.interface_count);
        self.pipes
            .encode(&mut w, field::CIX_PIPE_COUNT, field::CIX_PIPE_ARR);
        out
    }

    /// Decodes the first 196 bytes.
    ///
    /// # Errors
    ///
    /// [`AbiError::BufferTooShort`], [`AbiError::TooManyPipes`] for `PipeCount > 16`.
    pub fn decode(bytes: &[u8]) -> Result<Self, AbiError> {
        let r = Reader::new(bytes, Self::SIZE, Self::WINDOWS_NAME)?;
        Ok(Self {
            base_interface_number: r.u8(field::CIX_BASE_INTERFACE_NUMBER),
            interface_count: r.u8(field::CIX_INTERFACE_COUNT),
            pipes: PipeList::decode(
                &r,
                field::CIX_PIPE_COUNT,
                field::CIX_PIPE_ARR,
                Self::WINDOWS_NAME,
            )?,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};
    use proptest::prelude::*;

    pub(crate) fn bulk_in(pipe_id: u32) -> PipeInformation {
        PipeInformation {
            endpoint_descriptor: EndpointDescriptorRaw {
                length: 7,
                descriptor_type: 5,
                endpoint_address: 0x81,
                attributes: 0x02,
                max_packet_size: 512,
                interval: 0,
            },
            pipe_id: PipeId(pipe_id),
        }
    }

    pub(crate) fn arb_pipe() -> impl Strategy<Value = PipeInformation> {
        (any::<[u8; 7]>(), any::<u32>()).prop_map(|(ep, id)| PipeInformation {
            endpoint_descriptor: EndpointDescriptorRaw::from_bytes(ep),
            pipe_id: PipeId(id),
        })
    }

    pub(crate) fn arb_pipe_list() -> impl Strategy<Value = PipeList> {
        proptest::collection::vec(arb_pipe(), 0..=MAX_NUM_USBFN_PIPES)
            .prop_map(|v| PipeList::try_from(v).unwrap())
    }

    pub(crate) fn arb_class_interface() -> impl Strategy<Value = ClassInterface> {
        (any::<u8>(), arb_pipe_list()).prop_map(|(interface_number, pipes)| ClassInterface {
            interface_number,
            pipes,
        })
    }

    pub(crate) fn arb_class_interface_ex() -> impl Strategy<Value = ClassInterfaceEx> {
        (any::<u8>(), any::<u8>(), arb_pipe_list()).prop_map(|(base, count, pipes)| {
            ClassInterfaceEx {
                base_interface_number: base,
                interface_count: count,
                pipes,
            }
        })
    }

    #[test]
    fn offsets_match_raw() {
        use crate::raw::{
            UsbfnClassInterface as Ci, UsbfnClassInterfaceEx as Cix, UsbfnPipeInformation as P,
        };
        assert_eq!(PipeInformation::SIZE, size_of::<P>());
        assert_eq!(field::EP_DESC, offset_of!(P, ep_desc));
        assert_eq!(field::PIPE_ID, offset_of!(P, pipe_id));
        assert_eq!(ClassInterface::SIZE, size_of::<Ci>());
        assert_eq!(field::CI_INTERFACE_NUMBER, offset_of!(Ci, interface_number));
        assert_eq!(field::CI_PIPE_COUNT, offset_of!(Ci, pipe_count));
        assert_eq!(field::CI_PIPE_ARR, offset_of!(Ci, pipe_arr));
        assert_eq!(ClassInterfaceEx::SIZE, size_of::<Cix>());
        assert_eq!(
            field::CIX_BASE_INTERFACE_NUMBER,
            offset_of!(Cix, base_interface_number)
        );
        assert_eq!(field::CIX_INTERFACE_COUNT, offset_of!(Cix, interface_count));
        assert_eq!(field::CIX_PIPE_COUNT, offset_of!(Cix, pipe_count));
        assert_eq!(field::CIX_PIPE_ARR, offset_of!(Cix, pipe_arr));
        assert_eq!(PipeId::SIZE, size_of::<u32>());
    }

    #[test]
    fn pipe_id_and_state_bytes() {
        assert_eq!(PipeId(0x0102_0304).encode(), [4, 3, 2, 1]);
        assert_eq!(PipeId::decode(&[4, 3, 2, 1, 9]), Ok(PipeId(0x0102_0304)));
        assert!(matches!(
            PipeId::decode(&[1, 2]),
            Err(AbiError::BufferTooShort {
                structure: "USBFNPIPEID",
                need: 4,
                got: 2
            })
        ));
        assert_eq!(PipeId::CONTROL.to_string(), "pipe 0");
        assert_eq!(PipeState { stalled: true }.encode(), [1]);
        assert_eq!(PipeState::decode(&[0]), Ok(PipeState { stalled: false }));
        assert_eq!(PipeState::decode(&[1]), Ok(PipeState { stalled: true }));
        assert!(matches!(
            PipeState::decode(&[2]),
            Err(AbiError::InvalidBoolean { value: 2, .. })
        ));
        assert!(PipeState::decode(&[]).is_err());
    }

    #[test]
    fn pipe_information_bytes() {
        let p = bulk_in(3);
        let bytes = [7, 5, 0x81, 0x02, 0x00, 0x02, 0x00, 0x00, 3, 0, 0, 0];
        assert_eq!(p.encode(), bytes);
        // A non-zero padding byte is ignored on decode.
        let mut dirty = bytes;
        dirty[7] = 0xEE;
        assert_eq!(PipeInformation::decode(&dirty), Ok(p));
        assert!(matches!(
            PipeInformation::decode(&bytes[..11]),
            Err(AbiError::BufferTooShort {
                need: 12,
                got: 11,
                ..
            })
        ));
    }

    #[test]
    fn class_interface_hand_written_bytes() {
        let mut bytes = [0u8; 196];
        bytes[0] = 2; // InterfaceNumber
        bytes[1] = 2; // PipeCount
        bytes[4..16].copy_from_slice(&bulk_in(1).encode());
        bytes[16..28].copy_from_slice(&bulk_in(2).encode());
        bytes[28] = 0xAB; // garbage past PipeCount is ignored
        let ci = ClassInterface::decode(&bytes).unwrap();
        assert_eq!(ci.interface_number, 2);
        assert_eq!(ci.pipes.as_slice(), &[bulk_in(1), bulk_in(2)]);
        bytes[28] = 0;
        assert_eq!(ci.encode(), bytes);
    }

    #[test]
    fn class_interface_rejects_pipe_count_over_16() {
        let mut bytes = [0u8; 196];
        bytes[1] = 17;
        let err = ClassInterface::decode(&bytes).unwrap_err();
        assert_eq!(
            err,
            AbiError::TooManyPipes {
                structure: "USBFN_CLASS_INTERFACE",
                count: 17,
                max: 16
            }
        );
        bytes[1] = 0;
        bytes[2] = 17;
        assert!(matches!(
            ClassInterfaceEx::decode(&bytes),
            Err(AbiError::TooManyPipes {
                structure: "USBFN_CLASS_INTERFACE_EX",
                count: 17,
                ..
            })
        ));
        bytes[1] = 16;
        bytes[2] = 16;
        assert_eq!(ClassInterface::decode(&bytes).unwrap().pipes.len(), 16);
        assert_eq!(ClassInterfaceEx::decode(&bytes).unwrap().pipes.len(), 16);
    }

    #[test]
    fn class_interface_ex_hand_written_bytes() {
        let mut bytes = [0u8; 196];
        bytes[0] = 3;
        bytes[1] = 2;
        bytes[2] = 1;
        bytes[4..16].copy_from_slice(&bulk_in(9).encode());
        let cix = ClassInterfaceEx::decode(&bytes).unwrap();
        assert_eq!(cix.base_interface_number, 3);
        assert_eq!(cix.interface_count, 2);
        assert_eq!(&*cix.pipes, &[bulk_in(9)]);
        assert_eq!(cix.encode(), bytes);
        assert!(matches!(
            ClassInterfaceEx::decode(&bytes[..195]),
            Err(AbiError::BufferTooShort {
                structure: "USBFN_CLASS_INTERFACE_EX",
                need: 196,
                got: 195
            })
        ));
    }

    #[test]
    fn pipe_list_capacity() {
        let mut list = PipeList::new();
        for i in 0..16 {
            list.try_push(bulk_in(i)).unwrap();
        }
        assert_eq!(
            list.try_push(bulk_in(16)),
            Err(AbiError::TooManyPipes {
                structure: "PipeArr",
                count: 17,
                max: 16
            })
        );
        assert_eq!(list.len(), 16);
        assert_eq!((&list).into_iter().count(), 16);
        list.clear();
        assert!(list.is_empty());
        assert_eq!(list, PipeList::default());
        assert_eq!(format!("{list:?}"), "[]");
        assert!(PipeList::try_from(vec![bulk_in(0); 17]).is_err());
    }

    proptest! {
        #[test]
        fn class_interface_round_trip(ci in arb_class_interface()) {
            prop_assert_eq!(ClassInterface::decode(&ci.encode()), Ok(ci));
        }

        #[test]
        fn class_interface_ex_round_trip(cix in arb_class_interface_ex()) {
            prop_assert_eq!(ClassInterfaceEx::decode(&cix.encode()), Ok(cix));
        }

        #[test]
        fn class_interface_decode_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..250)
        ) {
            let _ = ClassInterface::decode(&bytes);
            let _ = ClassInterfaceEx::decode(&bytes);
        }
    }
}
