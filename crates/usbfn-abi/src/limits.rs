//! Limits from `usbfnbase.h`.

/// Endpoints a configuration can have besides endpoint 0.
pub const MAX_NUM_USBFN_ENDPOINTS: usize = 15;

/// Pipes in a `PipeArr`: [`MAX_NUM_USBFN_ENDPOINTS`] plus the pipe of endpoint 0.
pub const MAX_NUM_USBFN_PIPES: usize = MAX_NUM_USBFN_ENDPOINTS + 1;

/// `WCHAR`s in `InterfaceName`, the NUL terminator included.
pub const MAX_INTERFACE_NAME_LENGTH: usize = 40;

/// `WCHAR`s in the name of an `Alternates\<name>` key.
pub const MAX_ALTERNATE_NAME_LENGTH: usize = 40;

/// `WCHAR`s in the name of an `Associations\<name>` key.
pub const MAX_ASSOCIATION_NAME_LENGTH: usize = 40;

/// `WCHAR`s in `USBFN_USB_STRING.UsbString`, the NUL terminator included.
pub const MAX_USB_STRING_LENGTH: usize = 255;

/// Configurations a device can declare.
pub const MAX_SUPPORTED_CONFIGURATIONS: usize = 12;

/// Characters of an interface GUID string `{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}`.
pub const INTERFACE_GUID_STRING_LENGTH: usize = 38;

/// `WCHAR`s in `InterfaceGuid`: the 38 characters of the braced GUID plus the NUL
/// (`sizeof(L"{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}") / sizeof(WCHAR)`).
pub const MAX_INTERFACE_GUID_LENGTH: usize = INTERFACE_GUID_STRING_LENGTH + 1;

/// Set in the *high byte* of an interrupt endpoint's `wMaxPacketSize` (bit 15 of the 16-bit
/// field) to stop the stack resizing the endpoint per bus speed.
///
/// See [`EndpointDescriptorRaw::size_not_updateable`](crate::EndpointDescriptorRaw::size_not_updateable).
pub const USBFN_INTERRUPT_ENDPOINT_SIZE_NOT_UPDATEABLE_MASK: u8 = 0x80;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_match_header() {
        assert_eq!(MAX_NUM_USBFN_ENDPOINTS, 15);
        assert_eq!(MAX_NUM_USBFN_PIPES, 16);
        assert_eq!(MAX_INTERFACE_NAME_LENGTH, 40);
        assert_eq!(MAX_USB_STRING_LENGTH, 255);
        assert_eq!(MAX_SUPPORTED_CONFIGURATIONS, 12);
        assert_eq!(
            "{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}".len(),
            INTERFACE_GUID_STRING_LENGTH
        );
        assert_eq!(MAX_INTERFACE_GUID_LENGTH, 39);
        assert_eq!(USBFN_INTERRUPT_ENDPOINT_SIZE_NOT_UPDATEABLE_MASK, 0x80);
    }
}
