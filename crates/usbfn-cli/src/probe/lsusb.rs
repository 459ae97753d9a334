//! `probe`'s text output, laid out as `lsusb -v` lays it out: the field names of the spec,
//! numbers right-aligned in one column per nesting level, names after the numbers (classes,
//! strings, transfer types), `MaxPower` in mA, and the HID class descriptor decoded.

use std::fmt::Write as _;

use usbfn_usbip::client::DeviceTree;
use usbfn_wire::{
    DescriptorType, DeviceCapability, EndpointInfo, InterfaceAlt, RawOwned, SynchronizationType,
    TransferType, UsageType,
};

use super::names::{
    class_name, hid_country_name, hid_descriptor_type_name, hid_protocol_name, hid_subclass_name,
};

/// The HID class descriptor, decoded (HID 1.11 §6.2.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HidDescriptor {
    pub(crate) bcd_hid: u16,
    pub(crate) country_code: u8,
    /// `(bDescriptorType, wDescriptorLength)` of each class descriptor it lists.
    pub(crate) descriptors: Vec<(u8, u16)>,
}

impl HidDescriptor {
    /// Decodes a HID descriptor (type 0x21, header included); `None` if it is not one or is
    /// shorter than it says.
    pub(crate) fn parse(raw: &RawOwned) -> Option<HidDescriptor> {
        let b = &raw.bytes;
        if raw.descriptor_type != DescriptorType::HID || b.len() < 6 {
            return None;
        }
        let count = usize::from(b[5]);
        let list = b.get(6..6 + 3 * count)?;
        Some(HidDescriptor {
            bcd_hid: u16::from_le_bytes([b[2], b[3]]),
            country_code: b[4],
            descriptors: list
                .chunks_exact(3)
                .map(|d| (d[0], u16::from_le_bytes([d[1], d[2]])))
                .collect(),
        })
    }
}

/// Everything `probe` prints for one device. `super_speed`: the device runs at SuperSpeed
/// (bMaxPower counts 8 mA units there, 2 mA below).
pub(crate) fn render(busid: &str, speed: &str, super_speed: bool, tree: &DeviceTree) -> String {
    let mut out = Out::default();
    let d = &tree.device;
    out.line(
        0,
        &format!(
            "Bus {busid} ({speed} speed): ID {:04x}:{:04x} {} {}",
            d.id_vendor,
            d.id_product,
            string(tree, d.i_manufacturer),
            string(tree, d.i_product)
        ),
    );
    out.line(0, "Device Descriptor:");
    out.num(1, "bLength", 18, "");
    out.num(1, "bDescriptorType", 1, "");
    out.field(1, "bcdUSB", &bcd(d.bcd_usb), "");
    out.num(
        1,
        "bDeviceClass",
        d.b_device_class,
        class_name(d.b_device_class),
    );
    out.num(1, "bDeviceSubClass", d.b_device_sub_class, "");
    out.num(1, "bDeviceProtocol", d.b_device_protocol, "");
    out.num(1, "bMaxPacketSize0", d.b_max_packet_size0, "");
    out.field(1, "idVendor", &format!("0x{:04x}", d.id_vendor), "");
    out.field(1, "idProduct", &format!("0x{:04x}", d.id_product), "");
    out.field(1, "bcdDevice", &bcd(d.bcd_device), "");
    out.num(
        1,
        "iManufacturer",
        d.i_manufacturer,
        &string(tree, d.i_manufacturer),
    );
    out.num(1, "iProduct", d.i_product, &string(tree, d.i_product));
    out.num(
        1,
        "iSerial",
        d.i_serial_number,
        &string(tree, d.i_serial_number),
    );
    out.num(1, "bNumConfigurations", d.b_num_configurations, "");
    for config in &tree.configurations {
        let c = &config.tree.configuration;
        out.line(1, "Configuration Descriptor:");
        out.num(2, "bLength", 9, "");
        out.num(2, "bDescriptorType", 2, "");
        out.field(
            2,
            "wTotalLength",
            &format!("0x{:04x}", c.w_total_length),
            "",
        );
        out.num(2, "bNumInterfaces", c.b_num_interfaces, "");
        out.num(2, "bConfigurationValue", c.b_configuration_value, "");
        out.num(
            2,
            "iConfiguration",
            c.i_configuration,
            &string(tree, c.i_configuration),
        );
        out.field(2, "bmAttributes", &format!("0x{:02x}", c.bm_attributes), "");
        if c.bm_attributes & 0x40 != 0 {
            out.line(3, "Self Powered");
        } else {
            out.line(3, "(Bus Powered)");
        }
        if c.bm_attributes & 0x20 != 0 {
            out.line(3, "Remote Wakeup");
        }
        let unit = if super_speed { 8 } else { 2 };
        out.field(
            2,
            "MaxPower",
            &(u32::from(c.b_max_power) * unit).to_string(),
            "mA",
        );
        for a in &config.tree.associations {
            out.line(2, "Interface Association:");
            out.num(3, "bLength", 8, "");
            out.num(3, "bDescriptorType", 11, "");
            out.num(3, "bFirstInterface", a.b_first_interface, "");
            out.num(3, "bInterfaceCount", a.b_interface_count, "");
            out.num(
                3,
                "bFunctionClass",
                a.b_function_class,
                class_name(a.b_function_class),
            );
            out.num(3, "bFunctionSubClass", a.b_function_sub_class, "");
            out.num(3, "bFunctionProtocol", a.b_function_protocol, "");
            out.num(3, "iFunction", a.i_function, &string(tree, a.i_function));
        }
        for alt in &config.tree.interfaces {
            interface(&mut out, tree, alt);
        }
    }
    if let Some(bos) = &tree.bos {
        out.line(0, "Binary Object Store Descriptor:");
        out.num(1, "bLength", 5, "");
        out.num(1, "bDescriptorType", 15, "");
        out.field(
            1,
            "wTotalLength",
            &format!("0x{:04x}", bos.tree.bos.w_total_length),
            "",
        );
        out.num(1, "bNumDeviceCaps", bos.tree.bos.b_num_device_caps, "");
        for cap in &bos.tree.capabilities {
            capability(&mut out, cap);
        }
    }
    out.0
}

fn interface(out: &mut Out, tree: &DeviceTree, alt: &InterfaceAlt) {
    let i = &alt.descriptor;
    let hid = i.b_interface_class == 3;
    out.line(2, "Interface Descriptor:");
    out.num(3, "bLength", 9, "");
    out.num(3, "bDescriptorType", 4, "");
    out.num(3, "bInterfaceNumber", i.b_interface_number, "");
    out.num(3, "bAlternateSetting", i.b_alternate_setting, "");
    out.num(3, "bNumEndpoints", i.b_num_endpoints, "");
    out.num(
        3,
        "bInterfaceClass",
        i.b_interface_class,
        class_name(i.b_interface_class),
    );
    let (sub, proto) = (i.b_interface_sub_class, i.b_interface_protocol);
    let sub_name = if hid { hid_subclass_name(sub) } else { "" };
    let proto_name = if hid {
        hid_protocol_name(sub, proto)
    } else {
        ""
    };
    out.num(3, "bInterfaceSubClass", sub, sub_name);
    out.num(3, "bInterfaceProtocol", proto, proto_name);
    out.num(3, "iInterface", i.i_interface, &string(tree, i.i_interface));
    for extra in &alt.extra {
        match HidDescriptor::parse(extra) {
            Some(h) => hid_descriptor(out, extra, &h),
            None => out.line(3, &format!("** UNRECOGNIZED: {}", hex(&extra.bytes))),
        }
    }
    for ep in &alt.endpoints {
        endpoint(out, ep);
    }
}

fn hid_descriptor(out: &mut Out, raw: &RawOwned, h: &HidDescriptor) {
    out.line(3, "HID Device Descriptor:");
    out.num(4, "bLength", raw.bytes[0], "");
    out.num(4, "bDescriptorType", raw.bytes[1], "");
    out.field(4, "bcdHID", &bcd(h.bcd_hid), "");
    out.num(
        4,
        "bCountryCode",
        h.country_code,
        hid_country_name(h.country_code),
    );
    out.field(4, "bNumDescriptors", &h.descriptors.len().to_string(), "");
    for &(t, len) in &h.descriptors {
        out.num(4, "bDescriptorType", t, hid_descriptor_type_name(t));
        out.field(4, "wDescriptorLength", &len.to_string(), "");
    }
}

fn endpoint(out: &mut Out, ep: &EndpointInfo) {
    let e = &ep.descriptor;
    let a = e.b_endpoint_address;
    out.line(3, "Endpoint Descriptor:");
    out.num(4, "bLength", 7, "");
    out.num(4, "bDescriptorType", 5, "");
    let dir = if a.is_in() { "IN" } else { "OUT" };
    out.field(
        4,
        "bEndpointAddress",
        &format!("0x{:02x}", a.0),
        &format!("  EP {} {dir}", a.number()),
    );
    out.num(4, "bmAttributes", e.bm_attributes, "");
    out.line(
        5,
        &format!(
            "Transfer Type            {}",
            transfer_name(e.transfer_type())
        ),
    );
    out.line(
        5,
        &format!(
            "Synch Type               {}",
            synch_name(e.synchronization_type())
        ),
    );
    out.line(
        5,
        &format!("Usage Type               {}", usage_name(e.usage_type())),
    );
    out.field(
        4,
        "wMaxPacketSize",
        &format!("0x{:04x}", e.w_max_packet_size),
        &format!(
            "  {}x {} bytes",
            1 + e.additional_transactions(),
            e.max_packet_size()
        ),
    );
    out.num(4, "bInterval", e.b_interval, "");
    if let Some(c) = &ep.companion {
        out.num(4, "bMaxBurst", c.b_max_burst, "");
        if e.transfer_type() == TransferType::Bulk && c.bm_attributes & 0x1f != 0 {
            out.field(
                4,
                "MaxStreams",
                &(1u32 << (c.bm_attributes & 0x1f)).to_string(),
                "",
            );
        }
        if e.transfer_type() == TransferType::Isochronous {
            out.num(4, "Mult", c.bm_attributes & 0x3, "");
        }
        if matches!(
            e.transfer_type(),
            TransferType::Isochronous | TransferType::Interrupt
        ) {
            out.field(
                4,
                "wBytesPerInterval",
                &c.w_bytes_per_interval.to_string(),
                "",
            );
        }
    }
    for extra in &ep.extra {
        out.line(4, &format!("** UNRECOGNIZED: {}", hex(&extra.bytes)));
    }
}

fn capability(out: &mut Out, cap: &DeviceCapability) {
    match cap {
        DeviceCapability::Usb20Extension(c) => {
            out.line(1, "USB 2.0 Extension Device Capability:");
            out.num(2, "bDevCapabilityType", 2, "");
            out.field(2, "bmAttributes", &format!("0x{:08x}", c.bm_attributes), "");
            if c.bm_attributes & 0x2 != 0 {
                out.line(3, "HIRD Link Power Management (LPM) Supported");
            }
        }
        DeviceCapability::SuperSpeedUsb(c) => {
            out.line(1, "SuperSpeed USB Device Capability:");
            out.num(2, "bDevCapabilityType", 3, "");
            out.field(2, "bmAttributes", &format!("0x{:02x}", c.bm_attributes), "");
            out.field(
                2,
                "wSpeedsSupported",
                &format!("0x{:04x}", c.w_speeds_supported),
                "",
            );
            for (bit, name) in [
                (0, "Low Speed (1Mbps)"),
                (1, "Full Speed (12Mbps)"),
                (2, "High Speed (480Mbps)"),
                (3, "SuperSpeed (5Gbps)"),
            ] {
                if c.w_speeds_supported & (1 << bit) != 0 {
                    out.line(3, &format!("Device can operate at {name}"));
                }
            }
            out.num(2, "bFunctionalitySupport", c.b_functionality_support, "");
            out.num(2, "bU1DevExitLat", c.b_u1_dev_exit_lat, " micro seconds");
            out.field(
                2,
                "bU2DevExitLat",
                &c.w_u2_dev_exit_lat.to_string(),
                " micro seconds",
            );
        }
        DeviceCapability::ContainerId(c) => {
            out.line(1, "Container ID Device Capability:");
            out.num(2, "bDevCapabilityType", 4, "");
            out.line(
                2,
                &format!("ContainerID             {}", uuid(&c.container_id)),
            );
        }
        DeviceCapability::Other(raw) if raw.bytes.len() >= 20 && raw.bytes[2] == 0x05 => {
            let b = &raw.bytes;
            out.line(1, "Platform Device Capability:");
            out.num(2, "bLength", b[0], "");
            out.num(2, "bDevCapabilityType", 5, "");
            let uuid_bytes: [u8; 16] = b[4..20].try_into().unwrap_or([0; 16]);
            out.line(
                2,
                &format!("PlatformCapabilityUUID    {}", uuid(&uuid_bytes)),
            );
            if uuid_bytes == MS_OS_20_UUID && b.len() >= 28 {
                out.line(3, "MS OS 2.0 descriptor:");
                out.field(
                    4,
                    "dwWindowsVersion",
                    &format!("0x{:08x}", u32::from_le_bytes([b[20], b[21], b[22], b[23]])),
                    "",
                );
                out.field(
                    4,
                    "wMSOSDescriptorSetTotalLength",
                    &u16::from_le_bytes([b[24], b[25]]).to_string(),
                    "",
                );
                out.field(4, "bMS_VendorCode", &format!("0x{:02x}", b[26]), "");
                out.num(4, "bAltEnumCode", b[27], "");
            } else if b.len() > 20 {
                out.line(2, &format!("CapabilityData: {}", hex(&b[20..])));
            }
        }
        DeviceCapability::Other(raw) => {
            out.line(1, &format!("** UNRECOGNIZED: {}", hex(&raw.bytes)));
        }
    }
}

/// {D8DD60DF-4589-4CC7-9CD2-659D9E648A9F} as the bytes go on the wire.
const MS_OS_20_UUID: [u8; 16] = [
    0xdf, 0x60, 0xdd, 0xd8, 0x89, 0x45, 0xc7, 0x4c, 0x9c, 0xd2, 0x65, 0x9d, 0x9e, 0x64, 0x8a, 0x9f,
];

/// Lines being built.
#[derive(Default)]
struct Out(String);

impl Out {
    fn line(&mut self, depth: usize, text: &str) {
        let _ = writeln!(self.0, "{:indent$}{text}", "", indent = 2 * depth);
    }

    /// `name` and `value` with the value ending in column 25 after the indent, as lsusb
    /// prints them, then `after` (a name after the number: one space between them).
    fn field(&mut self, depth: usize, name: &str, value: &str, after: &str) {
        let gap = 25usize.saturating_sub(name.len() + value.len()).max(1);
        let line = format!("{name}{:gap$}{value}{after}", "");
        self.line(depth, line.trim_end());
    }

    fn num(&mut self, depth: usize, name: &str, value: u8, name_after: &str) {
        let after = if name_after.is_empty() || name_after.starts_with(' ') {
            name_after.to_owned()
        } else {
            format!(" {name_after}")
        };
        self.field(depth, name, &value.to_string(), &after);
    }
}

pub(crate) fn string(tree: &DeviceTree, index: u8) -> String {
    if index == 0 {
        return String::new();
    }
    tree.strings.get(&index).cloned().unwrap_or_default()
}

/// `bcdUSB` 0x0210 as `2.10`.
fn bcd(v: u16) -> String {
    format!("{:x}.{:02x}", v >> 8, v & 0xff)
}

pub(crate) fn transfer_name(t: TransferType) -> &'static str {
    match t {
        TransferType::Control => "Control",
        TransferType::Isochronous => "Isochronous",
        TransferType::Bulk => "Bulk",
        TransferType::Interrupt => "Interrupt",
    }
}

fn synch_name(s: SynchronizationType) -> &'static str {
    match s {
        SynchronizationType::NoSync => "None",
        SynchronizationType::Asynchronous => "Asynchronous",
        SynchronizationType::Adaptive => "Adaptive",
        SynchronizationType::Synchronous => "Synchronous",
    }
}

fn usage_name(u: UsageType) -> &'static str {
    match u {
        UsageType::Data => "Data",
        UsageType::Feedback => "Feedback",
        UsageType::ImplicitFeedbackData => "Implicit feedback Data",
        UsageType::Reserved => "Reserved",
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The container ID as lsusb prints it: `{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}` from the
/// wire bytes (the first three groups little-endian).
fn uuid(b: &[u8; 16]) -> String {
    format!(
        "{{{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{}}}",
        b[3],
        b[2],
        b[1],
        b[0],
        b[5],
        b[4],
        b[7],
        b[6],
        b[8],
        b[9],
        b[10..]
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(bytes: &[u8]) -> RawOwned {
        RawOwned {
            descriptor_type: DescriptorType(bytes[1]),
            bytes: bytes.to_vec(),
        }
    }

    #[test]
    fn hid_descriptor_decodes_and_rejects_short_ones() {
        let h = HidDescriptor::parse(&raw(&[9, 0x21, 0x11, 0x01, 0, 1, 0x22, 63, 0]))
            .expect("a HID descriptor");
        assert_eq!(h.bcd_hid, 0x0111);
        assert_eq!(h.descriptors, vec![(0x22, 63)]);
        assert_eq!(
            HidDescriptor::parse(&raw(&[7, 0x21, 0x11, 0x01, 0, 1, 0x22])),
            None
        );
        assert_eq!(
            HidDescriptor::parse(&raw(&[9, 0x24, 0x11, 0x01, 0, 1, 0x22, 63, 0])),
            None
        );
    }

    #[test]
    fn fields_line_up_as_lsusb_prints_them() {
        let mut out = Out::default();
        out.num(1, "bLength", 18, "");
        out.field(1, "idVendor", "0x0525", "");
        out.field(1, "bcdUSB", &bcd(0x0200), "");
        out.num(1, "bDeviceClass", 255, "Vendor Specific Class");
        out.field(2, "MaxPower", "100", "mA");
        assert_eq!(
            out.0,
            "  bLength                18\n\
             \x20 idVendor           0x0525\n\
             \x20 bcdUSB               2.00\n\
             \x20 bDeviceClass          255 Vendor Specific Class\n\
             \x20   MaxPower              100mA\n"
        );
    }

    #[test]
    fn container_id_prints_as_a_uuid() {
        let b = [
            0x78, 0x56, 0x34, 0x12, 0x34, 0x12, 0x78, 0x56, 0x9a, 0xbc, 1, 2, 3, 4, 5, 6,
        ];
        assert_eq!(uuid(&b), "{12345678-1234-5678-9abc-010203040506}");
    }
}
