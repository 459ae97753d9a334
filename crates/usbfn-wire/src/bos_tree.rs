//! A whole BOS descriptor set, parsed.

use crate::{
    BosDescriptor, ContainerIdCapability, DescriptorType, DescriptorWriter, DeviceCapabilityType,
    RawOwned, SuperSpeedUsbCapability, Usb20ExtensionCapability, WireError, descriptors,
};

/// A full GET_DESCRIPTOR(BOS) answer: the header and its device capabilities.
///
/// [`parse`](Self::parse) checks that `wTotalLength` equals the buffer length, that every
/// descriptor after the header is a DEVICE_CAPABILITY, and that there are `bNumDeviceCaps` of
/// them.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct BosTree {
    /// The BOS header. When writing, both fields are recomputed.
    pub bos: BosDescriptor,
    /// The device capabilities, in order.
    pub capabilities: Vec<DeviceCapability>,
}

/// One device capability: typed when this crate knows it, raw otherwise.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum DeviceCapability {
    /// USB 2.0 extension (LPM).
    Usb20Extension(Usb20ExtensionCapability),
    /// SuperSpeed USB.
    SuperSpeedUsb(SuperSpeedUsbCapability),
    /// Container ID.
    ContainerId(ContainerIdCapability),
    /// Any other capability (platform, SuperSpeedPlus, billboard, ...), header included.
    Other(RawOwned),
}

impl BosTree {
    /// Parses a BOS descriptor set.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let bos = BosDescriptor::parse(bytes)?;
        if usize::from(bos.w_total_length) != bytes.len() {
            return Err(WireError::TotalLengthMismatch {
                declared: bos.w_total_length,
                actual: bytes.len(),
            });
        }
        let mut capabilities = Vec::new();
        let mut iter = descriptors(bytes);
        // The header, already parsed above.
        iter.next().transpose()?;
        for raw in iter {
            let raw = raw?;
            if raw.descriptor_type != DescriptorType::DEVICE_CAPABILITY {
                return Err(WireError::UnexpectedDescriptor {
                    descriptor_type: raw.descriptor_type,
                    context: "inside a BOS descriptor set",
                });
            }
            capabilities.push(DeviceCapability::parse(raw.bytes)?);
        }
        if usize::from(bos.b_num_device_caps) != capabilities.len() {
            return Err(WireError::NumDeviceCapsMismatch {
                declared: bos.b_num_device_caps,
                found: capabilities.len(),
            });
        }
        Ok(Self { bos, capabilities })
    }

    /// Encodes the set, computing `wTotalLength` and `bNumDeviceCaps`.
    pub fn to_bytes(&self) -> Result<Vec<u8>, WireError> {
        let mut w = DescriptorWriter::bos();
        for capability in &self.capabilities {
            capability.write(&mut w)?;
        }
        w.finish()
    }

    /// The first USB 2.0 extension capability.
    pub fn usb20_extension(&self) -> Option<&Usb20ExtensionCapability> {
        self.capabilities.iter().find_map(|c| match c {
            DeviceCapability::Usb20Extension(c) => Some(c),
            _ => None,
        })
    }

    /// The first SuperSpeed USB capability.
    pub fn superspeed_usb(&self) -> Option<&SuperSpeedUsbCapability> {
        self.capabilities.iter().find_map(|c| match c {
            DeviceCapability::SuperSpeedUsb(c) => Some(c),
            _ => None,
        })
    }
}

impl DeviceCapability {
    /// Parses the device capability descriptor at the start of `bytes`; only its `bLength`
    /// bytes are read.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        Ok(match DeviceCapabilityType::of(bytes)? {
            DeviceCapabilityType::USB_2_0_EXTENSION => {
                Self::Usb20Extension(Usb20ExtensionCapability::parse(bytes)?)
            }
            DeviceCapabilityType::SUPERSPEED_USB => {
                Self::SuperSpeedUsb(SuperSpeedUsbCapability::parse(bytes)?)
            }
            DeviceCapabilityType::CONTAINER_ID => {
                Self::ContainerId(ContainerIdCapability::parse(bytes)?)
            }
            _ => {
                // `of` checked that bLength is within the buffer.
                let len = bytes.first().map_or(0, |&b| usize::from(b));
                let bytes = bytes.get(..len).unwrap_or(bytes).to_vec();
                Self::Other(RawOwned {
                    descriptor_type: DescriptorType::DEVICE_CAPABILITY,
                    bytes,
                })
            }
        })
    }

    /// `bDevCapabilityType`.
    pub fn capability_type(&self) -> DeviceCapabilityType {
        match self {
            Self::Usb20Extension(_) => Usb20ExtensionCapability::CAPABILITY_TYPE,
            Self::SuperSpeedUsb(_) => SuperSpeedUsbCapability::CAPABILITY_TYPE,
            Self::ContainerId(_) => ContainerIdCapability::CAPABILITY_TYPE,
            Self::Other(raw) => DeviceCapabilityType(raw.bytes.get(2).copied().unwrap_or(0)),
        }
    }

    /// Appends the capability to `w`.
    pub fn write(&self, w: &mut DescriptorWriter) -> Result<(), WireError> {
        match self {
            Self::Usb20Extension(c) => c.write(w),
            Self::SuperSpeedUsb(c) => c.write(w),
            Self::ContainerId(c) => c.write(w),
            Self::Other(raw) => raw.write(w),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_vectors::USB3_BOS;
    use proptest::prelude::*;

    #[test]
    fn usb3_bos() {
        let tree = BosTree::parse(&USB3_BOS).unwrap();
        assert_eq!(tree.bos.b_num_device_caps, 2);
        assert!(tree.usb20_extension().unwrap().lpm());
        assert_eq!(tree.superspeed_usb().unwrap().w_u2_dev_exit_lat, 0x07ff);
        assert_eq!(
            tree.capabilities
                .iter()
                .map(DeviceCapability::capability_type)
                .collect::<Vec<_>>(),
            [
                DeviceCapabilityType::USB_2_0_EXTENSION,
                DeviceCapabilityType::SUPERSPEED_USB
            ]
        );
        assert_eq!(tree.to_bytes().unwrap(), USB3_BOS);
    }

    #[test]
    fn unknown_capabilities_are_kept() {
        // A WebUSB-style platform capability (UUID shortened to zeros here).
        let mut platform = vec![24, 0x10, 0x05, 0x00];
        platform.extend([0u8; 16]);
        platform.extend([0x00, 0x01, 0x01, 0x01]);
        let mut bytes = USB3_BOS.to_vec();
        bytes.extend(&platform);
        bytes[2] = u8::try_from(bytes.len()).unwrap();
        bytes[4] = 3;
        let tree = BosTree::parse(&bytes).unwrap();
        let other = &tree.capabilities[2];
        assert_eq!(other.capability_type(), DeviceCapabilityType::PLATFORM);
        assert_eq!(
            *other,
            DeviceCapability::Other(RawOwned {
                descriptor_type: DescriptorType::DEVICE_CAPABILITY,
                bytes: platform,
            })
        );
        assert_eq!(tree.to_bytes().unwrap(), bytes);
    }

    #[test]
    fn malformed_sets() {
        assert_eq!(
            BosTree::parse(&USB3_BOS[..21]),
            Err(WireError::TotalLengthMismatch {
                declared: 22,
                actual: 21
            })
        );
        let mut count = USB3_BOS;
        count[4] = 3;
        assert_eq!(
            BosTree::parse(&count),
            Err(WireError::NumDeviceCapsMismatch {
                declared: 3,
                found: 2
            })
        );
        let mut foreign = USB3_BOS;
        foreign[6] = 0x05; // the USB 2.0 extension is now an "endpoint"
        assert_eq!(
            BosTree::parse(&foreign),
            Err(WireError::UnexpectedDescriptor {
                descriptor_type: DescriptorType::ENDPOINT,
                context: "inside a BOS descriptor set"
            })
        );
        let mut zero = USB3_BOS;
        zero[5] = 0;
        assert!(matches!(
            BosTree::parse(&zero),
            Err(WireError::BadLength { b_length: 0, .. })
        ));
        let mut short_cap = USB3_BOS;
        short_cap[5] = 5; // USB 2.0 extension claims 5 bytes; 2 bytes left over
        assert!(matches!(
            BosTree::parse(&short_cap),
            Err(WireError::Truncated { .. })
        ));
        assert!(matches!(
            BosTree::parse(&[5, 0x0f]),
            Err(WireError::BadLength { .. })
        ));
    }

    fn any_capability() -> impl Strategy<Value = DeviceCapability> {
        prop_oneof![
            any::<u32>().prop_map(
                |a| DeviceCapability::Usb20Extension(Usb20ExtensionCapability { bm_attributes: a })
            ),
            any::<(u8, u16, u8, u8, u16)>().prop_map(|s| DeviceCapability::SuperSpeedUsb(
                SuperSpeedUsbCapability {
                    bm_attributes: s.0,
                    w_speeds_supported: s.1,
                    b_functionality_support: s.2,
                    b_u1_dev_exit_lat: s.3,
                    w_u2_dev_exit_lat: s.4,
                }
            )),
            any::<[u8; 16]>().prop_map(|id| DeviceCapability::ContainerId(ContainerIdCapability {
                container_id: id
            })),
            (5u8..0x20, proptest::collection::vec(any::<u8>(), 0..30)).prop_map(|(ty, rest)| {
                let mut payload = vec![ty];
                payload.extend(rest);
                DeviceCapability::Other(
                    RawOwned::new(DescriptorType::DEVICE_CAPABILITY, &payload).unwrap(),
                )
            }),
        ]
    }

    proptest! {
        #[test]
        fn write_parse_round_trip(capabilities in proptest::collection::vec(any_capability(), 0..6)) {
            let mut tree = BosTree {
                bos: BosDescriptor { w_total_length: 0, b_num_device_caps: 0 },
                capabilities,
            };
            let bytes = tree.to_bytes().unwrap();
            tree.bos = BosDescriptor {
                w_total_length: u16::try_from(bytes.len()).unwrap(),
                b_num_device_caps: u8::try_from(tree.capabilities.len()).unwrap(),
            };
            prop_assert_eq!(BosTree::parse(&bytes), Ok(tree));
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = BosTree::parse(&bytes);
            let _ = DeviceCapability::parse(&bytes);
        }

        #[test]
        fn parse_never_panics_on_mutated_sets(
            edits in proptest::collection::vec((0usize..22, any::<u8>()), 1..5),
        ) {
            let mut bytes = USB3_BOS;
            for (at, value) in edits {
                if let Some(b) = bytes.get_mut(at) {
                    *b = value;
                }
            }
            let _ = BosTree::parse(&bytes);
        }
    }
}
