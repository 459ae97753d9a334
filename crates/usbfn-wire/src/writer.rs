//! Building descriptor buffers with a size limit and back-patched total lengths.

use crate::iter::descriptor_length;
use crate::{BosDescriptor, ConfigurationDescriptor, DescriptorType, WireError, descriptors};

/// Builds a descriptor buffer (a configuration set, a BOS, a class descriptor block) that
/// never exceeds a hard size limit.
///
/// Every push checks the limit and returns [`WireError::TooLong`] instead of growing past it
/// or panicking; the buffer is left as it was before the failed push. The default limit is
/// [`DEFAULT_LIMIT`](Self::DEFAULT_LIMIT) (65535 bytes, the most a `wLength` can ask for).
///
/// Writers made by [`configuration`](Self::configuration) and [`bos`](Self::bos) back-patch
/// the header on [`finish`](Self::finish): `wTotalLength` for both, `bNumDeviceCaps` for BOS.
/// Other counts (`bNumInterfaces`, `bNumEndpoints`) are written as given.
///
/// ```
/// use usbfn_wire::{ConfigurationDescriptor, DescriptorWriter, InterfaceDescriptor};
///
/// let config = ConfigurationDescriptor {
///     w_total_length: 0, // patched by finish()
///     b_num_interfaces: 1,
///     b_configuration_value: 1,
///     i_configuration: 0,
///     bm_attributes: ConfigurationDescriptor::ATTR_RESERVED_ONE,
///     b_max_power: 50,
/// };
/// let mut w = DescriptorWriter::configuration(&config);
/// InterfaceDescriptor {
///     b_interface_number: 0,
///     b_alternate_setting: 0,
///     b_num_endpoints: 0,
///     b_interface_class: 0xff,
///     b_interface_sub_class: 0,
///     b_interface_protocol: 0,
///     i_interface: 0,
/// }
/// .write(&mut w)?;
/// let bytes = w.finish()?;
/// assert_eq!(bytes.len(), 18);
/// assert_eq!(&bytes[2..4], &[18, 0]);
/// # Ok::<(), usbfn_wire::WireError>(())
/// ```
#[derive(Clone, Debug)]
pub struct DescriptorWriter {
    buf: Vec<u8>,
    limit: usize,
    header: Header,
}

/// A position recorded by [`DescriptorWriter::begin_total_length`], to patch a 16-bit length
/// field later with [`DescriptorWriter::end_total_length`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[must_use = "pass the mark to end_total_length to patch the length field"]
pub struct LengthMark {
    start: usize,
    field_offset: usize,
}

/// Which header `finish` back-patches.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Header {
    None,
    TotalLength,
    Bos,
}

impl DescriptorWriter {
    /// The default size limit: 65535 bytes.
    pub const DEFAULT_LIMIT: usize = 65535;

    /// An empty writer with the default limit and nothing to back-patch.
    pub fn new() -> Self {
        Self::with_limit(Self::DEFAULT_LIMIT)
    }

    /// An empty writer holding at most `limit` bytes.
    pub fn with_limit(limit: usize) -> Self {
        Self {
            buf: Vec::new(),
            limit,
            header: Header::None,
        }
    }

    /// A writer that starts with `desc` and patches its `wTotalLength` on
    /// [`finish`](Self::finish).
    pub fn configuration(desc: &ConfigurationDescriptor) -> Self {
        Self::starting_with(&desc.to_array(), Header::TotalLength)
    }

    /// Like [`configuration`](Self::configuration) with type OTHER_SPEED_CONFIGURATION.
    pub fn other_speed_configuration(desc: &ConfigurationDescriptor) -> Self {
        let bytes = desc.to_array_as(DescriptorType::OTHER_SPEED_CONFIGURATION);
        Self::starting_with(&bytes, Header::TotalLength)
    }

    /// A writer that starts with a BOS header and, on [`finish`](Self::finish), patches its
    /// `wTotalLength` and sets `bNumDeviceCaps` to the number of DEVICE_CAPABILITY descriptors
    /// written after it.
    pub fn bos() -> Self {
        let header = BosDescriptor {
            w_total_length: 0,
            b_num_device_caps: 0,
        };
        Self::starting_with(&header.to_array(), Header::Bos)
    }

    fn starting_with(header_bytes: &[u8], header: Header) -> Self {
        Self {
            buf: header_bytes.to_vec(),
            limit: Self::DEFAULT_LIMIT,
            header,
        }
    }

    /// Changes the size limit. Bytes already written are kept; if they exceed the new limit,
    /// the next push and [`finish`](Self::finish) fail.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// The size limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Bytes that can still be written before the limit.
    pub fn remaining(&self) -> usize {
        self.limit.saturating_sub(self.buf.len())
    }

    /// The bytes written so far (not yet back-patched).
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Appends `bytes` (one or more whole descriptors, or part of one).
    ///
    /// Fails with [`WireError::TooLong`] and writes nothing if the limit would be exceeded.
    pub fn push_bytes(&mut self, bytes: &[u8]) -> Result<(), WireError> {
        let len = self.buf.len().saturating_add(bytes.len());
        if len > self.limit {
            return Err(WireError::TooLong {
                what: "descriptor buffer",
                limit: self.limit,
                len,
            });
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    /// Appends one descriptor made of a header (`bLength`, `descriptor_type`) and `payload`.
    ///
    /// Fails with [`WireError::TooLong`] if `bLength` would exceed 255 or the buffer its limit.
    pub fn push_descriptor(
        &mut self,
        descriptor_type: DescriptorType,
        payload: &[u8],
    ) -> Result<(), WireError> {
        let b_length = descriptor_length(payload.len())?;
        let len = self.buf.len().saturating_add(usize::from(b_length));
        if len > self.limit {
            return Err(WireError::TooLong {
                what: "descriptor buffer",
                limit: self.limit,
                len,
            });
        }
        self.buf.extend([b_length, descriptor_type.0]);
        self.buf.extend_from_slice(payload);
        Ok(())
    }

    /// Records the current position as the start of a descriptor whose `wTotalLength` sits at
    /// byte offset 2 (like a configuration descriptor) and covers everything written until
    /// [`end_total_length`](Self::end_total_length).
    pub fn begin_total_length(&self) -> LengthMark {
        self.begin_length_field(2)
    }

    /// Like [`begin_total_length`](Self::begin_total_length) for a length field at
    /// `field_offset` bytes into the descriptor (e.g. 5 for a UVC class-specific
    /// VideoControl interface header's `wTotalLength`).
    pub fn begin_length_field(&self, field_offset: usize) -> LengthMark {
        LengthMark {
            start: self.buf.len(),
            field_offset,
        }
    }

    /// Writes the number of bytes since `mark` into the length field `mark` points at.
    ///
    /// Fails with [`WireError::Truncated`] if the field itself was never written and with
    /// [`WireError::TooLong`] if the length does not fit in 16 bits.
    pub fn end_total_length(&mut self, mark: LengthMark) -> Result<(), WireError> {
        let len = self.buf.len().saturating_sub(mark.start);
        patch_u16(
            &mut self.buf,
            mark.start.saturating_add(mark.field_offset),
            len,
        )
    }

    /// Back-patches the header (see the type docs) and returns the bytes.
    ///
    /// Fails with [`WireError::TooLong`] if the buffer is over the limit or a patched field
    /// overflows, and, for BOS, with the error of a malformed descriptor written after the
    /// header (they are walked to count the capabilities).
    pub fn finish(mut self) -> Result<Vec<u8>, WireError> {
        let len = self.buf.len();
        if len > self.limit {
            return Err(WireError::TooLong {
                what: "descriptor buffer",
                limit: self.limit,
                len,
            });
        }
        match self.header {
            Header::None => {}
            Header::TotalLength => patch_u16(&mut self.buf, 2, len)?,
            Header::Bos => {
                patch_u16(&mut self.buf, 2, len)?;
                let mut caps = 0usize;
                for raw in descriptors(self.buf.get(BosDescriptor::LENGTH..).unwrap_or(&[])) {
                    if raw?.descriptor_type == DescriptorType::DEVICE_CAPABILITY {
                        caps += 1;
                    }
                }
                let count = u8::try_from(caps).map_err(|_| WireError::TooLong {
                    what: "bNumDeviceCaps",
                    limit: usize::from(u8::MAX),
                    len: caps,
                })?;
                if let Some(slot) = self.buf.get_mut(4) {
                    *slot = count;
                }
            }
        }
        Ok(self.buf)
    }
}

impl Default for DescriptorWriter {
    fn default() -> Self {
        Self::new()
    }
}

/// Writes `value` as a little-endian `u16` at `at`.
fn patch_u16(buf: &mut [u8], at: usize, value: usize) -> Result<(), WireError> {
    let available = buf.len();
    let field = at
        .checked_add(2)
        .and_then(|end| buf.get_mut(at..end))
        .ok_or(WireError::Truncated {
            what: "length field",
            needed: at.saturating_add(2),
            available,
        })?;
    let value = u16::try_from(value).map_err(|_| WireError::TooLong {
        what: "wTotalLength",
        limit: usize::from(u16::MAX),
        len: value,
    })?;
    field.copy_from_slice(&value.to_le_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        DeviceCapabilityType, EndpointAddress, EndpointDescriptor, SuperSpeedUsbCapability,
        TransferType, Usb20ExtensionCapability,
    };
    use proptest::prelude::*;

    fn config() -> ConfigurationDescriptor {
        ConfigurationDescriptor {
            w_total_length: 0xdead,
            b_num_interfaces: 1,
            b_configuration_value: 1,
            i_configuration: 0,
            bm_attributes: 0x80,
            b_max_power: 50,
        }
    }

    #[test]
    fn configuration_total_length_is_patched() {
        let mut w = DescriptorWriter::configuration(&config());
        let ep = EndpointDescriptor::new(EndpointAddress(0x81), TransferType::Bulk, 64, 0);
        ep.write(&mut w).unwrap();
        w.push_descriptor(DescriptorType::CS_ENDPOINT, &[1, 2])
            .unwrap();
        assert_eq!(w.len(), 9 + 7 + 4);
        let bytes = w.finish().unwrap();
        assert_eq!(
            ConfigurationDescriptor::parse(&bytes)
                .unwrap()
                .w_total_length,
            20
        );
        assert_eq!(&bytes[16..], &[4, 0x25, 1, 2]);
        let other = DescriptorWriter::other_speed_configuration(&config())
            .finish()
            .unwrap();
        assert_eq!(other, [9, 7, 9, 0, 1, 1, 0, 0x80, 50]);
    }

    #[test]
    fn bos_is_patched() {
        let mut w = DescriptorWriter::bos();
        Usb20ExtensionCapability {
            bm_attributes: Usb20ExtensionCapability::ATTR_LPM,
        }
        .write(&mut w)
        .unwrap();
        SuperSpeedUsbCapability {
            bm_attributes: 0,
            w_speeds_supported: 0x0e,
            b_functionality_support: 1,
            b_u1_dev_exit_lat: 10,
            w_u2_dev_exit_lat: 0x07ff,
        }
        .write(&mut w)
        .unwrap();
        w.push_descriptor(
            DescriptorType::DEVICE_CAPABILITY,
            &[DeviceCapabilityType::PLATFORM.0],
        )
        .unwrap();
        let bytes = w.finish().unwrap();
        assert_eq!(&bytes[..5], &[5, 0x0f, 25, 0, 3]);
        assert_eq!(bytes.len(), 25);
    }

    #[test]
    fn bos_with_malformed_push_fails() {
        let mut w = DescriptorWriter::bos();
        w.push_bytes(&[0x00, 0x10]).unwrap();
        assert_eq!(
            w.finish(),
            Err(WireError::BadLength {
                descriptor_type: DescriptorType::DEVICE_CAPABILITY,
                b_length: 0
            })
        );
    }

    #[test]
    fn overflow_is_an_error_not_a_panic() {
        let mut w = DescriptorWriter::with_limit(10);
        w.push_bytes(&[0; 8]).unwrap();
        assert_eq!(
            w.push_bytes(&[0; 3]),
            Err(WireError::TooLong {
                what: "descriptor buffer",
                limit: 10,
                len: 11
            })
        );
        assert_eq!(w.len(), 8, "a failed push writes nothing");
        assert_eq!(w.remaining(), 2);
        assert_eq!(
            w.push_descriptor(DescriptorType::STRING, &[0; 1]),
            Err(WireError::TooLong {
                what: "descriptor buffer",
                limit: 10,
                len: 11
            })
        );
        w.push_bytes(&[0; 2]).unwrap();
        assert_eq!(w.finish().unwrap().len(), 10);

        // A configuration that outgrows wTotalLength.
        let mut w = DescriptorWriter::configuration(&config());
        w.set_limit(100_000);
        w.push_bytes(&vec![0; 70_000]).unwrap();
        assert_eq!(
            w.finish(),
            Err(WireError::TooLong {
                what: "wTotalLength",
                limit: 65535,
                len: 70_009
            })
        );
        // The default limit stops it earlier.
        let mut w = DescriptorWriter::configuration(&config());
        assert!(matches!(
            w.push_bytes(&vec![0; 65_530]),
            Err(WireError::TooLong {
                limit: 65535,
                len: 65_539,
                ..
            })
        ));
        // Lowering the limit below what is written fails at finish.
        let mut w = DescriptorWriter::configuration(&config());
        w.set_limit(4);
        assert_eq!(
            w.finish(),
            Err(WireError::TooLong {
                what: "descriptor buffer",
                limit: 4,
                len: 9
            })
        );
        assert_eq!(
            DescriptorWriter::new().push_descriptor(DescriptorType(0x41), &[0; 254]),
            Err(WireError::TooLong {
                what: "bLength",
                limit: 255,
                len: 256
            })
        );
    }

    #[test]
    fn nested_length_fields() {
        // A class-specific header whose wTotalLength (at offset 5) covers the unit
        // descriptors after it, like a UVC VideoControl interface header.
        let mut w = DescriptorWriter::new();
        w.push_bytes(&[9, 4, 0, 0, 0, 0x0e, 1, 0, 0]).unwrap();
        let mark = w.begin_length_field(5);
        w.push_descriptor(DescriptorType::CS_INTERFACE, &[1, 0x10, 0x01, 0, 0, 0, 0])
            .unwrap();
        w.push_descriptor(DescriptorType::CS_INTERFACE, &[2, 1, 1, 2, 0])
            .unwrap();
        w.end_total_length(mark).unwrap();
        let bytes = w.finish().unwrap();
        assert_eq!(&bytes[9 + 5..9 + 7], &[16, 0]);

        // A mark whose field was never written.
        let mut w = DescriptorWriter::new();
        let mark = w.begin_total_length();
        w.push_bytes(&[3]).unwrap();
        assert_eq!(
            w.end_total_length(mark),
            Err(WireError::Truncated {
                what: "length field",
                needed: 4,
                available: 1
            })
        );
    }

    proptest! {
        #[test]
        fn pushes_never_exceed_the_limit(
            limit in 0usize..600,
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8),
            field_offset in 0usize..usize::MAX,
        ) {
            let mut w = DescriptorWriter::with_limit(limit);
            let mark = w.begin_length_field(field_offset);
            for chunk in &chunks {
                let before = w.len();
                match w.push_bytes(chunk) {
                    Ok(()) => prop_assert_eq!(w.len(), before + chunk.len()),
                    Err(WireError::TooLong { .. }) => prop_assert_eq!(w.len(), before),
                    Err(e) => prop_assert!(false, "unexpected {e}"),
                }
                let _ = w.push_descriptor(DescriptorType(0x41), chunk);
                prop_assert!(w.len() <= limit);
            }
            let _ = w.end_total_length(mark);
            let bytes = w.finish();
            prop_assert!(bytes.is_ok_and(|b| b.len() <= limit));
        }

        #[test]
        fn bos_finish_never_panics(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..8)) {
            let mut w = DescriptorWriter::bos();
            for chunk in &chunks {
                w.push_bytes(chunk).unwrap();
            }
            let _ = w.finish();
        }
    }
}
