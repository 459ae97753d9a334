//! Descriptors per speed, the Linux enumeration sequence, strings.

use usbfn_wire::{
    ConfigurationDescriptor, DescriptorType, DeviceDescriptor, Recipient, StandardRequest,
};

use super::*;
use crate::*;

#[test]
fn enumeration_at_high_speed() {
    let mut h = SimHost::new(GZ, BusSpeed::High);
    let short = h.get_descriptor(DescriptorType::DEVICE, 0, 8);
    assert_eq!(short.actual_length, 8);
    let dev = h.get_descriptor(DescriptorType::DEVICE, 0, 18);
    let d = DeviceDescriptor::parse(&dev.data).expect("device descriptor");
    assert_eq!(
        (d.id_vendor, d.id_product, d.bcd_usb, d.b_max_packet_size0),
        (0x0525, 0xa4a0, 0x0210, 64)
    );
    let head = h.get_descriptor(DescriptorType::CONFIGURATION, 0, 9);
    let c = ConfigurationDescriptor::parse(&head.data).expect("config header");
    let full = h.get_descriptor(DescriptorType::CONFIGURATION, 0, c.w_total_length);
    assert_eq!(full.actual_length, usize::from(c.w_total_length));
    let tree = usbfn_wire::ConfigurationTree::parse(&full.data).expect("config tree");
    assert_eq!(tree.interfaces.len(), 2, "two alternate settings");
    let eps = &tree.interfaces[0].endpoints;
    assert_eq!(eps[0].descriptor.b_endpoint_address.0, 0x81);
    assert_eq!(eps[1].descriptor.b_endpoint_address.0, 0x01);
    assert_eq!(eps[0].descriptor.w_max_packet_size, 512);
    // Strings.
    let product = h.get_descriptor(DescriptorType::STRING, d.i_product, 255);
    assert_eq!(
        usbfn_wire::decode_string_descriptor(&product.data).expect("string"),
        "Gadget Zero"
    );
    let langs = h.get_descriptor(DescriptorType::STRING, 0, 255);
    assert_eq!(&langs.data[..], &[4, 3, 0x09, 0x04]);
    // Qualifier and other-speed configuration at high speed; BOS since bcdUSB 2.10.
    assert!(
        h.get_descriptor(DescriptorType::DEVICE_QUALIFIER, 0, 10)
            .status
            .is_success()
    );
    let other = h.get_descriptor(DescriptorType::OTHER_SPEED_CONFIGURATION, 0, 255);
    assert_eq!(other.data[1], DescriptorType::OTHER_SPEED_CONFIGURATION.0);
    assert!(
        h.get_descriptor(DescriptorType::BOS, 0, 255)
            .status
            .is_success()
    );
    // Unknown descriptors stall.
    assert_eq!(
        h.get_descriptor(DescriptorType::INTERFACE, 0, 9).status,
        CompletionStatus::Stall
    );
    assert_eq!(
        h.get_descriptor(DescriptorType::STRING, 99, 255).status,
        CompletionStatus::Stall
    );
    assert_eq!(
        h.get_descriptor(DescriptorType::CONFIGURATION, 1, 9).status,
        CompletionStatus::Stall
    );
}

#[test]
fn superspeed_descriptors_have_companions_and_no_qualifier() {
    let mut h = SimHost::new(GZ, BusSpeed::Super);
    let d = DeviceDescriptor::parse(&h.get_descriptor(DescriptorType::DEVICE, 0, 18).data)
        .expect("device");
    assert_eq!((d.bcd_usb, d.b_max_packet_size0), (0x0320, 9));
    let full = h.get_descriptor(DescriptorType::CONFIGURATION, 0, 4096);
    let tree = usbfn_wire::ConfigurationTree::parse(&full.data).expect("tree");
    let ep = &tree.interfaces[0].endpoints[0];
    assert_eq!(ep.descriptor.w_max_packet_size, 1024);
    assert!(ep.companion.is_some());
    assert_eq!(
        h.get_descriptor(DescriptorType::DEVICE_QUALIFIER, 0, 10)
            .status,
        CompletionStatus::Stall
    );
}

#[test]
fn full_speed_uses_64_byte_bulk() {
    let mut h = SimHost::new(GZ, BusSpeed::Full);
    let full = h.get_descriptor(DescriptorType::CONFIGURATION, 0, 4096);
    let tree = usbfn_wire::ConfigurationTree::parse(&full.data).expect("tree");
    assert_eq!(
        tree.interfaces[0].endpoints[0].descriptor.w_max_packet_size,
        64
    );
}

#[test]
fn descriptor_answers_are_truncated_to_wlength() {
    let mut h = SimHost::new(GZ, BusSpeed::High);
    for len in [0u16, 1, 9, 17, 18, 64, 255] {
        let c = h.get_descriptor(DescriptorType::DEVICE, 0, len);
        assert_eq!(c.actual_length, usize::from(len).min(18), "wLength {len}");
    }
}

#[test]
fn registered_strings_are_served() {
    let mut h = SimHost::new(GZ, BusSpeed::High);
    h.dev.register_string(42, "late").expect("register");
    let s = h.get_descriptor(DescriptorType::STRING, 42, 255);
    assert_eq!(
        usbfn_wire::decode_string_descriptor(&s.data).expect("string"),
        "late"
    );
    assert!(h.dev.register_string(0, "x").is_err());
}

#[test]
fn linux_enumeration_sequence_byte_for_byte() {
    let mut h = SimHost::new(GZ, BusSpeed::High);
    let device: [u8; 18] = [
        0x12, 0x01, 0x10, 0x02, 0x00, 0x00, 0x00, 0x40, 0x25, 0x05, 0xa0, 0xa4, 0x00, 0x01, 0x01,
        0x02, 0x03, 0x01,
    ];
    // Linux first asks for 64 bytes; the device answers its 18 (a short transfer).
    let first = h.get_descriptor(DescriptorType::DEVICE, 0, 64);
    assert_eq!(&first.data[..], &device[..]);
    let set_address = std_out(StandardRequest::SET_ADDRESS, Recipient::Device, 2, 0);
    assert!(h.control_now(set_address, &[]).status.is_success());
    assert_eq!(h.dev.state(), DeviceState::Addressed);
    assert_eq!(
        &h.get_descriptor(DescriptorType::DEVICE, 0, 18).data[..],
        &device[..]
    );
    let config: [u8; 48] = [
        0x09, 0x02, 0x30, 0x00, 0x01, 0x01, 0x00, 0x80,
        0x32, // configuration, 48 bytes, 100 mA
        0x09, 0x04, 0x00, 0x00, 0x02, 0xff, 0x00, 0x00, 0x00, // interface 0 alt 0
        0x07, 0x05, 0x81, 0x02, 0x00, 0x02, 0x00, // bulk IN 512
        0x07, 0x05, 0x01, 0x02, 0x00, 0x02, 0x00, // bulk OUT 512
        0x09, 0x04, 0x00, 0x01, 0x01, 0xff, 0x00, 0x00, 0x00, // interface 0 alt 1
        0x07, 0x05, 0x81, 0x03, 0x40, 0x00, 0x04, // interrupt IN 64, 1 ms
    ];
    assert_eq!(
        &h.get_descriptor(DescriptorType::CONFIGURATION, 0, 9).data[..],
        &config[..9]
    );
    assert_eq!(
        &h.get_descriptor(DescriptorType::CONFIGURATION, 0, 48).data[..],
        &config[..]
    );
    assert_eq!(
        &h.get_descriptor(DescriptorType::STRING, 0, 255).data[..],
        &[0x04, 0x03, 0x09, 0x04]
    );
    let expect_string = |s: &str| {
        let mut v = vec![u8::try_from(2 + 2 * s.len()).expect("short"), 0x03];
        v.extend(s.encode_utf16().flat_map(u16::to_le_bytes));
        v
    };
    assert_eq!(
        &h.get_descriptor(DescriptorType::STRING, 2, 255).data[..],
        &expect_string("Gadget Zero")[..]
    );
    assert_eq!(
        &h.get_descriptor(DescriptorType::STRING, 1, 255).data[..],
        &expect_string("usbfn")[..]
    );
    assert_eq!(
        &h.get_descriptor(DescriptorType::STRING, 3, 255).data[..],
        &expect_string("0123456789")[..]
    );
    assert!(h.set_configuration(1).status.is_success());
    assert_eq!(
        (h.dev.state(), h.dev.configuration_value()),
        (DeviceState::Configured, Some(1))
    );
}
