//! `#[repr(C)]` mirrors of the `usbfnbase.h` / `usbspec.h` structures, Windows x64 layout.
//!
//! These are for a Windows backend that hands memory to `DeviceIoControl`; everything else
//! should use the safe types at the crate root, which encode and decode the same bytes field by
//! field. Chapter-9 `USB_*` structures are byte-packed (`#pragma pack(1)` in `usbspec.h`); the
//! `USBFN_*` structures use natural alignment. Field names are the Windows names in snake case
//! (each has a `doc(alias)` with the Windows spelling). Sizes and every field offset are pinned
//! by the tests at the bottom of this file.
//!
//! Reading a field of the union [`UsbfnNotificationData`] needs `unsafe`, which this crate
//! forbids; decode notifications with [`Notification::decode`](crate::Notification::decode).

use crate::limits::{
    MAX_INTERFACE_GUID_LENGTH, MAX_INTERFACE_NAME_LENGTH, MAX_NUM_USBFN_PIPES,
    MAX_USB_STRING_LENGTH,
};
use crate::{BusSpeed, PortType, UsbfnEvent};

/// `USB_DEFAULT_PIPE_SETUP_PACKET`, 8 bytes, packed.
#[doc(alias = "USB_DEFAULT_PIPE_SETUP_PACKET")]
#[repr(C, packed)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct UsbDefaultPipeSetupPacket {
    /// `bmRequestType`.
    #[doc(alias = "bmRequestType")]
    pub bm_request_type: u8,
    /// `bRequest`.
    #[doc(alias = "bRequest")]
    pub b_request: u8,
    /// `wValue`.
    #[doc(alias = "wValue")]
    pub w_value: u16,
    /// `wIndex`.
    #[doc(alias = "wIndex")]
    pub w_index: u16,
    /// `wLength`.
    #[doc(alias = "wLength")]
    pub w_length: u16,
}

/// `USB_ENDPOINT_DESCRIPTOR`, 7 bytes, packed.
#[doc(alias = "USB_ENDPOINT_DESCRIPTOR")]
#[repr(C, packed)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct UsbEndpointDescriptor {
    /// `bLength` (7).
    #[doc(alias = "bLength")]
    pub b_length: u8,
    /// `bDescriptorType` (5).
    #[doc(alias = "bDescriptorType")]
    pub b_descriptor_type: u8,
    /// `bEndpointAddress`.
    #[doc(alias = "bEndpointAddress")]
    pub b_endpoint_address: u8,
    /// `bmAttributes`.
    #[doc(alias = "bmAttributes")]
    pub bm_attributes: u8,
    /// `wMaxPacketSize`.
    #[doc(alias = "wMaxPacketSize")]
    pub w_max_packet_size: u16,
    /// `bInterval`.
    #[doc(alias = "bInterval")]
    pub b_interval: u8,
}

/// `USBFN_PIPE_INFORMATION`, 12 bytes.
#[doc(alias = "USBFN_PIPE_INFORMATION")]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct UsbfnPipeInformation {
    /// `EpDesc`.
    #[doc(alias = "EpDesc")]
    pub ep_desc: UsbEndpointDescriptor,
    /// `PipeId` (`USBFNPIPEID`, a `ULONG`).
    #[doc(alias = "PipeId")]
    pub pipe_id: u32,
}

/// `USBFN_CLASS_INTERFACE`, 196 bytes.
#[doc(alias = "USBFN_CLASS_INTERFACE")]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct UsbfnClassInterface {
    /// `InterfaceNumber`.
    #[doc(alias = "InterfaceNumber")]
    pub interface_number: u8,
    /// `PipeCount`: valid entries of `pipe_arr`.
    #[doc(alias = "PipeCount")]
    pub pipe_count: u8,
    /// `PipeArr`.
    #[doc(alias = "PipeArr")]
    pub pipe_arr: [UsbfnPipeInformation; MAX_NUM_USBFN_PIPES],
}

/// `USBFN_CLASS_INFORMATION_PACKET`, 748 bytes.
#[doc(alias = "USBFN_CLASS_INFORMATION_PACKET")]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UsbfnClassInformationPacket {
    /// `FullSpeedClassInterface`.
    #[doc(alias = "FullSpeedClassInterface")]
    pub full_speed_class_interface: UsbfnClassInterface,
    /// `HighSpeedClassInterface`.
    #[doc(alias = "HighSpeedClassInterface")]
    pub high_speed_class_interface: UsbfnClassInterface,
    /// `InterfaceName`, NUL-terminated UTF-16.
    #[doc(alias = "InterfaceName")]
    pub interface_name: [u16; MAX_INTERFACE_NAME_LENGTH],
    /// `InterfaceGuid`, NUL-terminated UTF-16 `{...}`.
    #[doc(alias = "InterfaceGuid")]
    pub interface_guid: [u16; MAX_INTERFACE_GUID_LENGTH],
    /// `HasInterfaceGuid` (`BOOLEAN`).
    #[doc(alias = "HasInterfaceGuid")]
    pub has_interface_guid: u8,
    /// `SuperSpeedClassInterface`.
    #[doc(alias = "SuperSpeedClassInterface")]
    pub super_speed_class_interface: UsbfnClassInterface,
}

/// `USBFN_CLASS_INTERFACE_EX`, 196 bytes.
#[doc(alias = "USBFN_CLASS_INTERFACE_EX")]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct UsbfnClassInterfaceEx {
    /// `BaseInterfaceNumber`.
    #[doc(alias = "BaseInterfaceNumber")]
    pub base_interface_number: u8,
    /// `InterfaceCount`.
    #[doc(alias = "InterfaceCount")]
    pub interface_count: u8,
    /// `PipeCount`.
    #[doc(alias = "PipeCount")]
    pub pipe_count: u8,
    /// `PipeArr`.
    #[doc(alias = "PipeArr")]
    pub pipe_arr: [UsbfnPipeInformation; MAX_NUM_USBFN_PIPES],
}

/// `USBFN_CLASS_INFORMATION_PACKET_EX`, 748 bytes.
#[doc(alias = "USBFN_CLASS_INFORMATION_PACKET_EX")]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UsbfnClassInformationPacketEx {
    /// `FullSpeedClassInterfaceEx`.
    #[doc(alias = "FullSpeedClassInterfaceEx")]
    pub full_speed_class_interface_ex: UsbfnClassInterfaceEx,
    /// `HighSpeedClassInterfaceEx`.
    #[doc(alias = "HighSpeedClassInterfaceEx")]
    pub high_speed_class_interface_ex: UsbfnClassInterfaceEx,
    /// `SuperSpeedClassInterfaceEx`.
    #[doc(alias = "SuperSpeedClassInterfaceEx")]
    pub super_speed_class_interface_ex: UsbfnClassInterfaceEx,
    /// `InterfaceName`.
    #[doc(alias = "InterfaceName")]
    pub interface_name: [u16; MAX_INTERFACE_NAME_LENGTH],
    /// `InterfaceGuid`.
    #[doc(alias = "InterfaceGuid")]
    pub interface_guid: [u16; MAX_INTERFACE_GUID_LENGTH],
    /// `HasInterfaceGuid` (`BOOLEAN`).
    #[doc(alias = "HasInterfaceGuid")]
    pub has_interface_guid: u8,
}

/// `ALTERNATE_INTERFACE`, 4 bytes.
#[doc(alias = "ALTERNATE_INTERFACE")]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AlternateInterface {
    /// `InterfaceNumber`.
    #[doc(alias = "InterfaceNumber")]
    pub interface_number: u16,
    /// `AlternateInterfaceNumber`.
    #[doc(alias = "AlternateInterfaceNumber")]
    pub alternate_interface_number: u16,
}

/// The anonymous union `u` of `USBFN_NOTIFICATION`, 8 bytes, 4-aligned.
#[repr(C)]
#[derive(Clone, Copy)]
pub union UsbfnNotificationData {
    /// `BusSpeed`.
    pub bus_speed: BusSpeed,
    /// `SetupPacket`.
    pub setup_packet: UsbDefaultPipeSetupPacket,
    /// `ConfigurationValue`.
    pub configuration_value: u16,
    /// `PortType`.
    pub port_type: PortType,
    /// `AlternateInterface`.
    pub alternate_interface: AlternateInterface,
}

impl core::fmt::Debug for UsbfnNotificationData {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Which member is live depends on the event; reading one would need `unsafe`.
        f.debug_struct("UsbfnNotificationData")
            .finish_non_exhaustive()
    }
}

/// `USBFN_NOTIFICATION`, 12 bytes.
#[doc(alias = "USBFN_NOTIFICATION")]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct UsbfnNotification {
    /// `Event`.
    #[doc(alias = "Event")]
    pub event: UsbfnEvent,
    /// `u`: which member is valid depends on `event`.
    pub u: UsbfnNotificationData,
}

/// `USBFN_INTERFACE_INFO`, 12 bytes (a 10-byte header and the first byte of the descriptor set).
#[doc(alias = "USBFN_INTERFACE_INFO")]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct UsbfnInterfaceInfo {
    /// `InterfaceNumber`.
    #[doc(alias = "InterfaceNumber")]
    pub interface_number: u8,
    /// `Speed`.
    #[doc(alias = "Speed")]
    pub speed: BusSpeed,
    /// `Size`: bytes of descriptor set.
    #[doc(alias = "Size")]
    pub size: u16,
    /// `InterfaceDescriptorSet[1]`: the descriptor bytes continue past the end of the struct.
    #[doc(alias = "InterfaceDescriptorSet")]
    pub interface_descriptor_set: [u8; 1],
}

/// `USBFN_USB_STRING`, 512 bytes.
#[doc(alias = "USBFN_USB_STRING")]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UsbfnUsbString {
    /// `StringIndex`.
    #[doc(alias = "StringIndex")]
    pub string_index: u8,
    /// `UsbString`, NUL-terminated UTF-16.
    #[doc(alias = "UsbString")]
    pub usb_string: [u16; MAX_USB_STRING_LENGTH],
}

// Sizes on the targets Windows runs on (where `u16`/`u32` are naturally aligned).
#[cfg(any(
    target_arch = "x86_64",
    target_arch = "x86",
    target_arch = "aarch64",
    target_arch = "arm"
))]
const _: () = {
    use core::mem::size_of;
    assert!(size_of::<UsbDefaultPipeSetupPacket>() == 8);
    assert!(size_of::<UsbEndpointDescriptor>() == 7);
    assert!(size_of::<UsbfnPipeInformation>() == 12);
    assert!(size_of::<UsbfnClassInterface>() == 196);
    assert!(size_of::<UsbfnClassInformationPacket>() == 748);
    assert!(size_of::<UsbfnClassInterfaceEx>() == 196);
    assert!(size_of::<UsbfnClassInformationPacketEx>() == 748);
    assert!(size_of::<AlternateInterface>() == 4);
    assert!(size_of::<UsbfnNotificationData>() == 8);
    assert!(size_of::<UsbfnNotification>() == 12);
    assert!(size_of::<UsbfnInterfaceInfo>() == 12);
    assert!(size_of::<UsbfnUsbString>() == 512);
};

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{align_of, offset_of, size_of};

    /// `layout!(test_name, Type, size, align, field => offset, ...)`: a test that the Rust
    /// type has the C layout (`size_of`, `align_of`, every field's `offset_of`) the Windows
    /// headers give.
    macro_rules! layout {
        ($name:ident, $t:ty, $size:expr, $align:expr, $($field:ident => $offset:expr),+ $(,)?) => {
            #[test]
            fn $name() {
                assert_eq!(size_of::<$t>(), $size, "size of {}", stringify!($t));
                assert_eq!(align_of::<$t>(), $align, "alignment of {}", stringify!($t));
                $(assert_eq!(
                    offset_of!($t, $field),
                    $offset,
                    "offset of {}.{}",
                    stringify!($t),
                    stringify!($field)
                );)+
            }
        };
    }

    layout!(
        setup_packet_layout,
        UsbDefaultPipeSetupPacket,
        8,
        1,
        bm_request_type => 0,
        b_request => 1,
        w_value => 2,
        w_index => 4,
        w_length => 6,
    );

    layout!(
        endpoint_descriptor_layout,
        UsbEndpointDescriptor,
        7,
        1,
        b_length => 0,
        b_descriptor_type => 1,
        b_endpoint_address => 2,
        bm_attributes => 3,
        w_max_packet_size => 4,
        b_interval => 6,
    );

    layout!(
        pipe_information_layout,
        UsbfnPipeInformation,
        12,
        4,
        ep_desc => 0,
        pipe_id => 8,
    );

    layout!(
        class_interface_layout,
        UsbfnClassInterface,
        196,
        4,
        interface_number => 0,
        pipe_count => 1,
        pipe_arr => 4,
    );

    layout!(
        class_information_packet_layout,
        UsbfnClassInformationPacket,
        748,
        4,
        full_speed_class_interface => 0,
        high_speed_class_interface => 196,
        interface_name => 392,
        interface_guid => 472,
        has_interface_guid => 550,
        super_speed_class_interface => 552,
    );

    layout!(
        class_interface_ex_layout,
        UsbfnClassInterfaceEx,
        196,
        4,
        base_interface_number => 0,
        interface_count => 1,
        pipe_count => 2,
        pipe_arr => 4,
    );

    layout!(
        class_information_packet_ex_layout,
        UsbfnClassInformationPacketEx,
        748,
        4,
        full_speed_class_interface_ex => 0,
        high_speed_class_interface_ex => 196,
        super_speed_class_interface_ex => 392,
        interface_name => 588,
        interface_guid => 668,
        has_interface_guid => 746,
    );

    layout!(
        alternate_interface_layout,
        AlternateInterface,
        4,
        2,
        interface_number => 0,
        alternate_interface_number => 2,
    );

    layout!(
        notification_layout,
        UsbfnNotification,
        12,
        4,
        event => 0,
        u => 4,
    );

    layout!(
        interface_info_layout,
        UsbfnInterfaceInfo,
        12,
        4,
        interface_number => 0,
        speed => 4,
        size => 8,
        interface_descriptor_set => 10,
    );

    layout!(
        usb_string_layout,
        UsbfnUsbString,
        512,
        2,
        string_index => 0,
        usb_string => 2,
    );

    // Every member of the notification's union starts at 0.
    layout!(
        notification_data_layout,
        UsbfnNotificationData,
        8,
        4,
        bus_speed => 0,
        setup_packet => 0,
        configuration_value => 0,
        port_type => 0,
        alternate_interface => 0,
    );

    #[test]
    fn pipe_array_size() {
        assert_eq!(
            size_of::<[UsbfnPipeInformation; MAX_NUM_USBFN_PIPES]>(),
            192
        );
    }

    #[test]
    fn enum_fields_are_u32_sized() {
        assert_eq!(size_of::<UsbfnEvent>(), 4);
        assert_eq!(size_of::<BusSpeed>(), 4);
        assert_eq!(size_of::<PortType>(), 4);
        assert_eq!(align_of::<BusSpeed>(), 4);
    }

    #[test]
    fn union_debug_is_opaque() {
        let n = UsbfnNotification {
            event: UsbfnEvent::RESET,
            u: UsbfnNotificationData {
                bus_speed: BusSpeed::HIGH,
            },
        };
        assert_eq!(
            format!("{n:?}"),
            "UsbfnNotification { event: UsbfnEventReset, u: UsbfnNotificationData { .. } }"
        );
    }
}
