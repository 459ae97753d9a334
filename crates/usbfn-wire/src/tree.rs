//! A whole configuration descriptor set, parsed into a tree.

use crate::{
    ConfigurationDescriptor, DescriptorType, DescriptorWriter, EndpointAddress, EndpointDescriptor,
    InterfaceAssociationDescriptor, InterfaceDescriptor, RawOwned, SuperSpeedEndpointCompanion,
    WireError, descriptors,
};

/// A full GET_DESCRIPTOR(CONFIGURATION) answer: the configuration header, the interface
/// associations, and every interface alternate setting with its endpoints.
///
/// Class-specific and unknown descriptors are kept as [`RawOwned`] on the item they follow:
/// the configuration (before any interface), the interface alternate setting (before its first
/// endpoint), or the endpoint (after it). That is where hosts look for them: a HID descriptor
/// ends up in [`InterfaceAlt::extra`], an audio class endpoint descriptor in
/// [`EndpointInfo::extra`].
///
/// [`parse`](Self::parse) checks that `wTotalLength` equals the buffer length and that every
/// alternate setting has as many endpoint descriptors as its `bNumEndpoints`. It does not check
/// `bNumInterfaces`, endpoint numbering, or that interfaces are in order: those are policy for
/// the caller. Interface association descriptors are collected wherever they appear.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct ConfigurationTree {
    /// The configuration descriptor header. When writing, `w_total_length` is recomputed.
    pub configuration: ConfigurationDescriptor,
    /// Other descriptors between the header and the first interface (e.g. OTG).
    pub extra: Vec<RawOwned>,
    /// Interface association descriptors, in order of appearance.
    pub associations: Vec<InterfaceAssociationDescriptor>,
    /// Interface alternate settings, in order of appearance.
    pub interfaces: Vec<InterfaceAlt>,
}

/// One interface alternate setting with its endpoints.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct InterfaceAlt {
    /// The interface descriptor.
    pub descriptor: InterfaceDescriptor,
    /// Class-specific descriptors between the interface descriptor and its first endpoint.
    pub extra: Vec<RawOwned>,
    /// The endpoints, in order.
    pub endpoints: Vec<EndpointInfo>,
}

/// One endpoint of an interface alternate setting.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct EndpointInfo {
    /// The endpoint descriptor.
    pub descriptor: EndpointDescriptor,
    /// The SuperSpeed endpoint companion, if present.
    pub companion: Option<SuperSpeedEndpointCompanion>,
    /// Class-specific descriptors after the endpoint (and its companion).
    pub extra: Vec<RawOwned>,
}

impl ConfigurationTree {
    /// Parses a configuration descriptor set (type CONFIGURATION).
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        Self::parse_as(bytes, DescriptorType::CONFIGURATION)
    }

    /// Parses an other-speed configuration descriptor set (type OTHER_SPEED_CONFIGURATION).
    pub fn parse_other_speed(bytes: &[u8]) -> Result<Self, WireError> {
        Self::parse_as(bytes, DescriptorType::OTHER_SPEED_CONFIGURATION)
    }

    /// Parses a configuration descriptor set whose header has type `descriptor_type`.
    pub fn parse_as(bytes: &[u8], descriptor_type: DescriptorType) -> Result<Self, WireError> {
        let configuration = ConfigurationDescriptor::parse_as(bytes, descriptor_type)?;
        if usize::from(configuration.w_total_length) != bytes.len() {
            return Err(WireError::TotalLengthMismatch {
                declared: configuration.w_total_length,
                actual: bytes.len(),
            });
        }
        let mut tree = Self {
            configuration,
            extra: Vec::new(),
            associations: Vec::new(),
            interfaces: Vec::new(),
        };
        let mut iter = descriptors(bytes);
        // The header, already parsed above.
        iter.next().transpose()?;
        for raw in iter {
            let raw = raw?;
            match raw.descriptor_type {
                DescriptorType::INTERFACE_ASSOCIATION => {
                    tree.associations
                        .push(InterfaceAssociationDescriptor::parse(raw.bytes)?);
                }
                DescriptorType::INTERFACE => {
                    if let Some(previous) = tree.interfaces.last() {
                        previous.check_endpoint_count()?;
                    }
                    tree.interfaces.push(InterfaceAlt {
                        descriptor: InterfaceDescriptor::parse(raw.bytes)?,
                        extra: Vec::new(),
                        endpoints: Vec::new(),
                    });
                }
                DescriptorType::ENDPOINT => {
                    let descriptor = EndpointDescriptor::parse(raw.bytes)?;
                    let Some(interface) = tree.interfaces.last_mut() else {
                        return Err(unexpected(raw.descriptor_type, "before any interface"));
                    };
                    let extra = Vec::new();
                    interface.endpoints.push(EndpointInfo {
                        descriptor,
                        companion: None,
                        extra,
                    });
                }
                DescriptorType::SUPERSPEED_USB_ENDPOINT_COMPANION => {
                    let companion = SuperSpeedEndpointCompanion::parse(raw.bytes)?;
                    let endpoint = tree
                        .interfaces
                        .last_mut()
                        .and_then(|i| i.endpoints.last_mut());
                    match endpoint {
                        None => {
                            let context = "without an endpoint descriptor before it";
                            return Err(unexpected(raw.descriptor_type, context));
                        }
                        Some(EndpointInfo {
                            companion: Some(_), ..
                        }) => {
                            let context = "after the endpoint already had one";
                            return Err(unexpected(raw.descriptor_type, context));
                        }
                        Some(endpoint) => endpoint.companion = Some(companion),
                    }
                }
                DescriptorType::DEVICE
                | DescriptorType::CONFIGURATION
                | DescriptorType::OTHER_SPEED_CONFIGURATION
                | DescriptorType::DEVICE_QUALIFIER
                | DescriptorType::BOS => {
                    let context = "inside a configuration descriptor set";
                    return Err(unexpected(raw.descriptor_type, context));
                }
                _ => {
                    let owner = match tree.interfaces.last_mut() {
                        None => &mut tree.extra,
                        Some(interface) => match interface.endpoints.last_mut() {
                            None => &mut interface.extra,
                            Some(endpoint) => &mut endpoint.extra,
                        },
                    };
                    owner.push(raw.into_owned());
                }
            }
        }
        if let Some(last) = tree.interfaces.last() {
            last.check_endpoint_count()?;
        }
        Ok(tree)
    }

    /// Encodes the set (type CONFIGURATION), with `wTotalLength` computed.
    ///
    /// Each interface association is written just before the first interface descriptor it
    /// names (or at the end if none matches). Fails with [`WireError::TooLong`] past 65535
    /// bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, WireError> {
        let mut w = DescriptorWriter::configuration(&self.configuration);
        self.write_body(&mut w)?;
        w.finish()
    }

    /// Like [`to_bytes`](Self::to_bytes) with header type OTHER_SPEED_CONFIGURATION.
    pub fn to_other_speed_bytes(&self) -> Result<Vec<u8>, WireError> {
        let mut w = DescriptorWriter::other_speed_configuration(&self.configuration);
        self.write_body(&mut w)?;
        w.finish()
    }

    /// Writes everything after the configuration header into `w`.
    pub fn write_body(&self, w: &mut DescriptorWriter) -> Result<(), WireError> {
        for raw in &self.extra {
            raw.write(w)?;
        }
        let mut written = vec![false; self.associations.len()];
        for interface in &self.interfaces {
            let number = interface.descriptor.b_interface_number;
            for (iad, done) in self.associations.iter().zip(written.iter_mut()) {
                if !*done && iad.b_first_interface == number {
                    *done = true;
                    iad.write(w)?;
                }
            }
            interface.write(w)?;
        }
        for (iad, done) in self.associations.iter().zip(&written) {
            if !done {
                iad.write(w)?;
            }
        }
        Ok(())
    }

    /// The alternate setting `alternate_setting` of interface `interface`.
    pub fn interface(&self, interface: u8, alternate_setting: u8) -> Option<&InterfaceAlt> {
        self.interfaces.iter().find(|alt| {
            alt.descriptor.b_interface_number == interface
                && alt.descriptor.b_alternate_setting == alternate_setting
        })
    }

    /// All alternate settings of interface `interface`, in order.
    pub fn alternate_settings(&self, interface: u8) -> impl Iterator<Item = &InterfaceAlt> {
        self.interfaces
            .iter()
            .filter(move |alt| alt.descriptor.b_interface_number == interface)
    }

    /// The distinct interface numbers, in order of first appearance.
    pub fn interface_numbers(&self) -> Vec<u8> {
        let mut numbers: Vec<u8> = Vec::new();
        for alt in &self.interfaces {
            let number = alt.descriptor.b_interface_number;
            if !numbers.contains(&number) {
                numbers.push(number);
            }
        }
        numbers
    }

    /// The first endpoint with address `address`, with the alternate setting it belongs to.
    pub fn endpoint(&self, address: EndpointAddress) -> Option<(&InterfaceAlt, &EndpointInfo)> {
        self.interfaces.iter().find_map(|alt| {
            let endpoint = alt
                .endpoints
                .iter()
                .find(|ep| ep.descriptor.b_endpoint_address == address)?;
            Some((alt, endpoint))
        })
    }
}

impl InterfaceAlt {
    /// Writes the interface descriptor, its extras and its endpoints into `w`.
    pub fn write(&self, w: &mut DescriptorWriter) -> Result<(), WireError> {
        self.descriptor.write(w)?;
        for raw in &self.extra {
            raw.write(w)?;
        }
        for endpoint in &self.endpoints {
            endpoint.write(w)?;
        }
        Ok(())
    }

    fn check_endpoint_count(&self) -> Result<(), WireError> {
        let declared = self.descriptor.b_num_endpoints;
        if usize::from(declared) == self.endpoints.len() {
            return Ok(());
        }
        Err(WireError::NumEndpointsMismatch {
            interface: self.descriptor.b_interface_number,
            alternate_setting: self.descriptor.b_alternate_setting,
            declared,
            found: self.endpoints.len(),
        })
    }
}

impl EndpointInfo {
    /// Writes the endpoint descriptor, its companion and its extras into `w`.
    pub fn write(&self, w: &mut DescriptorWriter) -> Result<(), WireError> {
        self.descriptor.write(w)?;
        if let Some(companion) = &self.companion {
            companion.write(w)?;
        }
        for raw in &self.extra {
            raw.write(w)?;
        }
        Ok(())
    }
}

fn unexpected(descriptor_type: DescriptorType, context: &'static str) -> WireError {
    WireError::UnexpectedDescriptor {
        descriptor_type,
        context,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{TransferType, test_vectors::*};
    use proptest::prelude::*;

    #[test]
    fn gadget_zero_source_sink() {
        let tree = ConfigurationTree::parse(&GADGET_ZERO_HS).unwrap();
        assert_eq!(tree.configuration.b_configuration_value, 3);
        assert!(tree.configuration.self_powered());
        assert_eq!(tree.interface_numbers(), [0]);
        assert_eq!(tree.interfaces.len(), 2);
        assert_eq!(tree.alternate_settings(0).count(), 2);
        let alt1 = tree.interface(0, 1).unwrap();
        assert_eq!(alt1.endpoints.len(), 4);
        let iso = &alt1.endpoints[2].descriptor;
        assert_eq!(iso.transfer_type(), TransferType::Isochronous);
        assert_eq!(iso.max_packet_size(), 1024);
        let (alt, ep) = tree.endpoint(EndpointAddress(0x01)).unwrap();
        assert_eq!(alt.descriptor.b_alternate_setting, 0);
        assert_eq!(ep.descriptor.max_packet_size(), 512);
        assert!(tree.endpoint(EndpointAddress(0x85)).is_none());
        assert_eq!(tree.to_bytes().unwrap(), GADGET_ZERO_HS);
    }

    #[test]
    fn hid_mouse_keeps_the_hid_descriptor() {
        let tree = ConfigurationTree::parse(&HID_MOUSE_CONFIG).unwrap();
        let alt = tree.interface(0, 0).unwrap();
        assert_eq!(alt.descriptor.b_interface_class, 3);
        assert_eq!(alt.extra.len(), 1);
        assert_eq!(alt.extra[0].descriptor_type, DescriptorType::HID);
        assert_eq!(alt.extra[0].bytes, HID_MOUSE_CONFIG[18..27]);
        assert_eq!(
            alt.endpoints[0].descriptor.transfer_type(),
            TransferType::Interrupt
        );
        assert_eq!(tree.to_bytes().unwrap(), HID_MOUSE_CONFIG);
    }

    #[test]
    fn superspeed_companions() {
        let tree = ConfigurationTree::parse(&SUPERSPEED_BULK_CONFIG).unwrap();
        let alt = &tree.interfaces[0];
        assert!(
            alt.endpoints
                .iter()
                .all(|ep| ep.companion.is_some_and(|c| c.b_max_burst == 15))
        );
        assert_eq!(tree.to_bytes().unwrap(), SUPERSPEED_BULK_CONFIG);
    }

    #[test]
    fn cdc_acm_with_iad() {
        let tree = ConfigurationTree::parse(&CDC_ACM_CONFIG).unwrap();
        assert_eq!(tree.associations.len(), 1);
        assert_eq!(tree.associations[0].b_interface_count, 2);
        assert_eq!(tree.interfaces[0].extra.len(), 4);
        assert!(
            tree.interfaces[0]
                .extra
                .iter()
                .all(|d| d.descriptor_type == DescriptorType::CS_INTERFACE)
        );
        assert_eq!(tree.interface_numbers(), [0, 1]);
        assert_eq!(tree.to_bytes().unwrap(), CDC_ACM_CONFIG);
    }

    #[test]
    fn other_speed() {
        let tree = ConfigurationTree::parse(&HID_MOUSE_CONFIG).unwrap();
        let other = tree.to_other_speed_bytes().unwrap();
        assert_eq!(other[1], 7);
        assert_eq!(ConfigurationTree::parse_other_speed(&other).unwrap(), tree);
        assert!(matches!(
            ConfigurationTree::parse(&other),
            Err(WireError::WrongDescriptorType { .. })
        ));
    }

    #[test]
    fn total_length_mismatch() {
        let short = &GADGET_ZERO_HS[..GADGET_ZERO_HS.len() - 1];
        assert_eq!(
            ConfigurationTree::parse(short),
            Err(WireError::TotalLengthMismatch {
                declared: 69,
                actual: 68
            })
        );
        let mut long = GADGET_ZERO_HS.to_vec();
        long.push(0);
        assert_eq!(
            ConfigurationTree::parse(&long),
            Err(WireError::TotalLengthMismatch {
                declared: 69,
                actual: 70
            })
        );
        // Only the header, as a host's first 9-byte read returns it.
        assert_eq!(
            ConfigurationTree::parse(&GADGET_ZERO_HS[..9]),
            Err(WireError::TotalLengthMismatch {
                declared: 69,
                actual: 9
            })
        );
        assert!(matches!(
            ConfigurationTree::parse(&GADGET_ZERO_HS[..5]),
            Err(WireError::BadLength { .. })
        ));
        assert!(matches!(
            ConfigurationTree::parse(&[]),
            Err(WireError::Truncated { .. })
        ));
    }

    #[test]
    fn endpoint_count_mismatch() {
        let mut bytes = GADGET_ZERO_HS;
        bytes[9 + 4] = 3; // alt 0 claims three endpoints
        assert_eq!(
            ConfigurationTree::parse(&bytes),
            Err(WireError::NumEndpointsMismatch {
                interface: 0,
                alternate_setting: 0,
                declared: 3,
                found: 2
            })
        );
        let mut bytes = GADGET_ZERO_HS;
        bytes[32 + 4] = 1; // alt 1 (the last interface) claims one
        assert_eq!(
            ConfigurationTree::parse(&bytes),
            Err(WireError::NumEndpointsMismatch {
                interface: 0,
                alternate_setting: 1,
                declared: 1,
                found: 4
            })
        );
    }

    #[test]
    fn bad_lengths_inside_the_set() {
        // bLength 0 on the second endpoint.
        let mut bytes = GADGET_ZERO_HS;
        bytes[25] = 0;
        assert_eq!(
            ConfigurationTree::parse(&bytes),
            Err(WireError::BadLength {
                descriptor_type: DescriptorType::ENDPOINT,
                b_length: 0
            })
        );
        // The last endpoint's bLength runs past the end.
        let mut bytes = GADGET_ZERO_HS;
        bytes[62] = 8;
        assert_eq!(
            ConfigurationTree::parse(&bytes),
            Err(WireError::BadLength {
                descriptor_type: DescriptorType::ENDPOINT,
                b_length: 8
            })
        );
        // An interface descriptor cut to 5 bytes (the rest becomes an unknown descriptor).
        let mut bytes = HID_MOUSE_CONFIG;
        bytes[9] = 5;
        bytes[14] = 4;
        assert_eq!(
            ConfigurationTree::parse(&bytes),
            Err(WireError::BadLength {
                descriptor_type: DescriptorType::INTERFACE,
                b_length: 5
            })
        );
    }

    #[test]
    fn misplaced_descriptors() {
        let config = [0x09, 0x02, 0x10, 0x00, 0x01, 0x01, 0x00, 0x80, 0x32];
        let with = |tail: &[u8]| {
            let mut bytes = config.to_vec();
            bytes.extend_from_slice(tail);
            bytes[2] = u8::try_from(bytes.len()).unwrap();
            ConfigurationTree::parse(&bytes)
        };
        let endpoint = [0x07, 0x05, 0x81, 0x02, 0x40, 0x00, 0x00];
        assert_eq!(
            with(&endpoint),
            Err(WireError::UnexpectedDescriptor {
                descriptor_type: DescriptorType::ENDPOINT,
                context: "before any interface"
            })
        );
        let interface = [0x09, 0x04, 0x00, 0x00, 0x01, 0xff, 0x00, 0x00, 0x00];
        let companion = [0x06, 0x30, 0x00, 0x00, 0x00, 0x00];
        let bad = with(&[&interface[..], &companion].concat());
        assert!(
            matches!(bad, Err(WireError::UnexpectedDescriptor { .. })),
            "{bad:?}"
        );
        let twice = with(&[&interface[..], &endpoint, &companion, &companion].concat());
        assert!(
            matches!(twice, Err(WireError::UnexpectedDescriptor { .. })),
            "{twice:?}"
        );
        let nested = with(&config);
        assert_eq!(
            nested,
            Err(WireError::UnexpectedDescriptor {
                descriptor_type: DescriptorType::CONFIGURATION,
                context: "inside a configuration descriptor set"
            })
        );
        // Unknown descriptors before any interface stay on the configuration.
        let otg = [0x03, 0x09, 0x03];
        let tree = with(&[&otg[..], &interface, &endpoint].concat()).unwrap();
        assert_eq!(tree.extra[0].bytes, otg);
        assert_eq!(tree.interfaces[0].endpoints.len(), 1);
    }

    #[test]
    fn unmatched_association_written_last() {
        let mut tree = ConfigurationTree::parse(&CDC_ACM_CONFIG).unwrap();
        tree.associations[0].b_first_interface = 7;
        let bytes = tree.to_bytes().unwrap();
        assert_eq!(bytes[bytes.len() - 8..], tree.associations[0].to_array());
        assert_eq!(ConfigurationTree::parse(&bytes).unwrap(), tree);
    }

    #[test]
    fn too_long_to_write() {
        let mut tree = ConfigurationTree::parse(&HID_MOUSE_CONFIG).unwrap();
        let big = RawOwned::new(DescriptorType(0x41), &[0; 253]).unwrap();
        tree.extra = vec![big; 258];
        assert!(matches!(
            tree.to_bytes(),
            Err(WireError::TooLong { limit: 65535, .. })
        ));
    }

    fn any_extra() -> impl Strategy<Value = Vec<RawOwned>> {
        let raw = (
            prop_oneof![Just(0x21u8), Just(0x24), Just(0x25), Just(0x41), Just(49)],
            proptest::collection::vec(any::<u8>(), 0..12),
        )
            .prop_map(|(ty, payload)| RawOwned::new(DescriptorType(ty), &payload).unwrap());
        proptest::collection::vec(raw, 0..3)
    }

    fn any_endpoint() -> impl Strategy<Value = EndpointInfo> {
        (
            any::<(u8, u8, u16, u8)>(),
            proptest::option::of(any::<(u8, u8, u16)>()),
            any_extra(),
        )
            .prop_map(|(e, c, extra)| EndpointInfo {
                descriptor: EndpointDescriptor {
                    b_endpoint_address: EndpointAddress(e.0),
                    bm_attributes: e.1,
                    w_max_packet_size: e.2,
                    b_interval: e.3,
                },
                companion: c.map(|c| SuperSpeedEndpointCompanion {
                    b_max_burst: c.0,
                    bm_attributes: c.1,
                    w_bytes_per_interval: c.2,
                }),
                extra,
            })
    }

    fn any_interface() -> impl Strategy<Value = InterfaceAlt> {
        (
            any::<[u8; 6]>(),
            any_extra(),
            proptest::collection::vec(any_endpoint(), 0..4),
        )
            .prop_map(|(i, extra, endpoints)| InterfaceAlt {
                descriptor: InterfaceDescriptor {
                    b_interface_number: i[0] % 8,
                    b_alternate_setting: i[1],
                    b_num_endpoints: u8::try_from(endpoints.len()).unwrap(),
                    b_interface_class: i[2],
                    b_interface_sub_class: i[3],
                    b_interface_protocol: i[4],
                    i_interface: i[5],
                },
                extra,
                endpoints,
            })
    }

    fn any_tree() -> impl Strategy<Value = ConfigurationTree> {
        (
            any::<[u8; 5]>(),
            any_extra(),
            proptest::collection::vec((any::<usize>(), any::<[u8; 5]>()), 0..3),
            proptest::collection::vec(any_interface(), 0..5),
        )
            .prop_map(|(c, extra, iads, mut interfaces)| {
                interfaces.sort_by_key(|alt| alt.descriptor.b_interface_number);
                let numbers: Vec<u8> = interfaces
                    .iter()
                    .map(|alt| alt.descriptor.b_interface_number)
                    .collect();
                let mut associations: Vec<InterfaceAssociationDescriptor> = iads
                    .into_iter()
                    .map(|(pick, a)| InterfaceAssociationDescriptor {
                        b_first_interface: numbers
                            .get(pick % numbers.len().max(1))
                            .copied()
                            .unwrap_or(a[0]),
                        b_interface_count: a[1],
                        b_function_class: a[2],
                        b_function_sub_class: a[3],
                        b_function_protocol: a[4],
                        i_function: 0,
                    })
                    .collect();
                if !numbers.is_empty() {
                    associations.sort_by_key(|iad| iad.b_first_interface);
                }
                ConfigurationTree {
                    configuration: ConfigurationDescriptor {
                        w_total_length: 0,
                        b_num_interfaces: c[0],
                        b_configuration_value: c[1],
                        i_configuration: c[2],
                        bm_attributes: c[3],
                        b_max_power: c[4],
                    },
                    extra,
                    associations,
                    interfaces,
                }
            })
    }

    proptest! {
        #[test]
        fn write_parse_round_trip(mut tree in any_tree()) {
            let bytes = tree.to_bytes().unwrap();
            tree.configuration.w_total_length = u16::try_from(bytes.len()).unwrap();
            let parsed = ConfigurationTree::parse(&bytes);
            prop_assert_eq!(parsed.as_ref(), Ok(&tree));
            prop_assert_eq!(parsed.unwrap().to_bytes().unwrap(), bytes);
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = ConfigurationTree::parse(&bytes);
            let _ = ConfigurationTree::parse_other_speed(&bytes);
        }

        #[test]
        fn parse_never_panics_on_mutated_sets(
            which in 0usize..4,
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
            cut in any::<Option<usize>>(),
        ) {
            let mut bytes = [&GADGET_ZERO_HS[..], &HID_MOUSE_CONFIG, &SUPERSPEED_BULK_CONFIG, &CDC_ACM_CONFIG][which].to_vec();
            for (at, value) in edits {
                let len = bytes.len();
                if let Some(b) = bytes.get_mut(at % len) {
                    *b = value;
                }
            }
            if let Some(cut) = cut {
                bytes.truncate(cut % (bytes.len() + 1));
            }
            // Keep wTotalLength consistent so parsing reaches the descriptors.
            let total = u16::try_from(bytes.len()).unwrap().to_le_bytes();
            if let Some(field) = bytes.get_mut(2..4) {
                field.copy_from_slice(&total);
            }
            if let Ok(tree) = ConfigurationTree::parse(&bytes) {
                // Anything that parses re-encodes to a set that parses the same.
                let again = tree.to_bytes().unwrap();
                let reparsed = ConfigurationTree::parse(&again).unwrap();
                prop_assert_eq!(reparsed.interfaces, tree.interfaces);
            }
        }
    }
}
