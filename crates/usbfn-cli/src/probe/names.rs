//! The names `lsusb` prints next to numbers (from usb.ids and the class specs).

/// The name of a base class code (`bDeviceClass`, `bInterfaceClass`, `bFunctionClass`).
pub(crate) fn class_name(class: u8) -> &'static str {
    match class {
        0x00 => "(Defined at Interface level)",
        0x01 => "Audio",
        0x02 => "Communications",
        0x03 => "Human Interface Device",
        0x05 => "Physical Interface Device",
        0x06 => "Imaging",
        0x07 => "Printer",
        0x08 => "Mass Storage",
        0x09 => "Hub",
        0x0a => "CDC Data",
        0x0b => "Chip/SmartCard",
        0x0d => "Content Security",
        0x0e => "Video",
        0x0f => "Personal Healthcare",
        0x10 => "Audio/Video",
        0x11 => "Billboard",
        0x12 => "Type-C Bridge",
        0xdc => "Diagnostic",
        0xe0 => "Wireless",
        0xef => "Miscellaneous Device",
        0xfe => "Application Specific Interface",
        0xff => "Vendor Specific Class",
        _ => "[unknown]",
    }
}

/// HID subclass and protocol names (HID 1.11 §4.2, §4.3), for interface class 3.
pub(crate) fn hid_subclass_name(subclass: u8) -> &'static str {
    match subclass {
        0 => "No Subclass",
        1 => "Boot Interface Subclass",
        _ => "",
    }
}

/// HID boot protocol names, meaningful with the boot subclass.
pub(crate) fn hid_protocol_name(subclass: u8, protocol: u8) -> &'static str {
    match (subclass, protocol) {
        (_, 0) => "None",
        (1, 1) => "Keyboard",
        (1, 2) => "Mouse",
        _ => "",
    }
}

/// HID class descriptor types (`bDescriptorType` in the HID descriptor's list).
pub(crate) fn hid_descriptor_type_name(t: u8) -> &'static str {
    match t {
        0x22 => "Report",
        0x23 => "Physical",
        _ => "",
    }
}

/// `bCountryCode` of the HID descriptor (HID 1.11 §6.2.1), as lsusb prints the common ones.
pub(crate) fn hid_country_name(code: u8) -> &'static str {
    match code {
        0 => "Not supported",
        9 => "French",
        13 => "International (ISO)",
        32 => "UK",
        33 => "US",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_names_lsusb_prints() {
        assert_eq!(class_name(0xff), "Vendor Specific Class");
        assert_eq!(class_name(3), "Human Interface Device");
        assert_eq!(class_name(0x42), "[unknown]");
        assert_eq!(hid_protocol_name(1, 1), "Keyboard");
        assert_eq!(hid_protocol_name(0, 1), "");
        assert_eq!(hid_descriptor_type_name(0x22), "Report");
        assert_eq!(hid_country_name(0), "Not supported");
    }
}
