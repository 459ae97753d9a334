//! `descriptors`: descriptor bytes as a host receives them (GET_DESCRIPTOR answers) or a
//! configuration file carries them (registry `InterfaceDescriptor` blobs), and setup packets.
//!
//! Every parser in `usbfn-wire` sees the same bytes. Checks: no panic; the iterator consumes
//! the input exactly (descriptor lengths add up, or it stops at an error); a tree that parses
//! writes back to bytes that parse to the same tree; a setup packet round-trips.

use usbfn_wire::{
    BosTree, ConfigurationTree, DeviceDescriptor, DeviceQualifierDescriptor, EndpointDescriptor,
    InterfaceAssociationDescriptor, InterfaceDescriptor, SetupPacket, SuperSpeedEndpointCompanion,
    decode_langid_descriptor, decode_string_descriptor, descriptors,
};

/// Run every parser on `data`.
pub fn run(data: &[u8]) {
    let mut consumed = 0usize;
    let mut failed = false;
    for d in descriptors(data) {
        match d {
            Ok(raw) => {
                assert_eq!(raw.bytes.len(), usize::from(raw.b_length()));
                assert!(raw.bytes.len() >= 2);
                consumed += raw.bytes.len();
                let _ = raw.payload();
                let owned = raw.into_owned();
                assert_eq!(owned.as_raw().bytes, raw.bytes);
            }
            Err(_) => failed = true,
        }
    }
    if !failed {
        assert_eq!(
            consumed,
            data.len(),
            "descriptors() stopped early without an error"
        );
    }

    if let Ok(tree) = ConfigurationTree::parse(data) {
        let bytes = tree.to_bytes().expect("a parsed configuration writes back");
        let again = ConfigurationTree::parse(&bytes).expect("and parses again");
        // Descriptors longer than their standard size (bLength beyond 9 or 7, which hosts
        // must accept and skip) are written back at their standard size, so only
        // wTotalLength may differ; after that, writing is a fixed point.
        assert_eq!(normalized(&again, &tree), normalized(&tree, &tree));
        assert_eq!(again.to_bytes().ok(), Some(bytes));
        for i in tree.interface_numbers() {
            assert!(tree.alternate_settings(i).count() > 0);
        }
        for alt in &tree.interfaces {
            for ep in &alt.endpoints {
                assert!(tree.endpoint(ep.descriptor.b_endpoint_address).is_some());
            }
        }
    }
    if let Ok(tree) = ConfigurationTree::parse_other_speed(data) {
        let bytes = tree
            .to_other_speed_bytes()
            .expect("a parsed other-speed configuration writes back");
        let again = ConfigurationTree::parse_other_speed(&bytes).expect("and parses again");
        assert_eq!(normalized(&again, &tree), normalized(&tree, &tree));
    }
    if let Ok(bos) = BosTree::parse(data) {
        let bytes = bos.to_bytes().expect("a parsed BOS writes back");
        let mut again = BosTree::parse(&bytes).expect("and parses again");
        assert_eq!(
            again.to_bytes().ok(),
            Some(bytes),
            "writing a BOS is a fixed point"
        );
        // As for configurations, only wTotalLength may differ.
        again.bos.w_total_length = bos.bos.w_total_length;
        assert_eq!(again, bos);
        let _ = (bos.usb20_extension(), bos.superspeed_usb());
    }
    if let Ok(d) = DeviceDescriptor::parse(data) {
        assert_eq!(DeviceDescriptor::parse(&d.to_bytes()).ok(), Some(d));
    }
    let _ = DeviceQualifierDescriptor::parse(data);
    let _ = InterfaceDescriptor::parse(data);
    let _ = InterfaceAssociationDescriptor::parse(data);
    let _ = EndpointDescriptor::parse(data);
    let _ = SuperSpeedEndpointCompanion::parse(data);
    if let Ok(s) = decode_string_descriptor(data) {
        assert!(s.encode_utf16().count() <= 126);
    }
    let _ = decode_langid_descriptor(data);
    if let Ok(setup) = SetupPacket::parse(data) {
        let bytes = setup.to_bytes();
        assert_eq!(data.get(..8), Some(&bytes[..]));
        let _ = (setup.to_string(), setup.direction(), setup.recipient());
    }
}

/// `tree` normalized for comparison with what it was written from: the `wTotalLength` of
/// `like`, and interface associations in a fixed order (writing puts each IAD before the
/// interface it names, so IADs that appeared out of that order, or name no interface, move).
fn normalized(tree: &ConfigurationTree, like: &ConfigurationTree) -> ConfigurationTree {
    let mut t = tree.clone();
    t.configuration.w_total_length = like.configuration.w_total_length;
    t.associations.sort_by_key(|a| {
        (
            a.b_first_interface,
            a.b_interface_count,
            a.b_function_class,
            a.b_function_sub_class,
            a.b_function_protocol,
            a.i_function,
        )
    });
    t
}
