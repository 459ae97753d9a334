//! `IOCTL_GENERICUSBFN_*` control codes, computed from their `CTL_CODE` parts.

use crate::macros::wire_enum;

/// `FILE_DEVICE_UNKNOWN`, the device type of every GenericUSBFn control code.
pub const FILE_DEVICE_UNKNOWN: u32 = 0x22;
/// `FILE_ANY_ACCESS`.
pub const FILE_ANY_ACCESS: u32 = 0;
/// `FILE_READ_DATA` (`FILE_READ_ACCESS`).
pub const FILE_READ_DATA: u32 = 1;
/// `FILE_WRITE_DATA` (`FILE_WRITE_ACCESS`).
pub const FILE_WRITE_DATA: u32 = 2;
/// `METHOD_BUFFERED`.
pub const METHOD_BUFFERED: u32 = 0;
/// `METHOD_IN_DIRECT`.
pub const METHOD_IN_DIRECT: u32 = 1;
/// `METHOD_OUT_DIRECT`.
pub const METHOD_OUT_DIRECT: u32 = 2;
/// `METHOD_NEITHER`.
pub const METHOD_NEITHER: u32 = 3;

/// The Windows `CTL_CODE` macro:
/// `(device_type << 16) | (access << 14) | (function << 2) | method`.
///
/// Bits of an argument beyond its field width run into the neighbouring field, exactly as in C;
/// pass `function < 0x1000`, `method < 4` and `access < 4`.
///
/// ```
/// use usbfn_abi::{ctl_code, FILE_DEVICE_UNKNOWN, FILE_READ_DATA, FILE_WRITE_DATA};
/// use usbfn_abi::{IoctlCode, METHOD_IN_DIRECT};
/// let code = ctl_code(FILE_DEVICE_UNKNOWN, 0x03, METHOD_IN_DIRECT, FILE_READ_DATA | FILE_WRITE_DATA);
/// assert_eq!(code, 0x0022_C00D);
/// assert_eq!(IoctlCode(code), IoctlCode::TRANSFER_IN);
/// ```
#[doc(alias = "CTL_CODE")]
#[must_use]
pub const fn ctl_code(device_type: u32, function: u32, method: u32, access: u32) -> u32 {
    (device_type << 16) | (access << 14) | (function << 2) | method
}

/// `CTL_CODE(FILE_DEVICE_UNKNOWN, function, method, FILE_READ_DATA | FILE_WRITE_DATA)`.
const fn generic_usbfn(function: u32, method: u32) -> u32 {
    ctl_code(
        FILE_DEVICE_UNKNOWN,
        function,
        method,
        FILE_READ_DATA | FILE_WRITE_DATA,
    )
}

wire_enum! {
    /// A device I/O control code; the named constants are the `IOCTL_GENERICUSBFN_*` codes.
    ///
    /// Input and output buffers per code are listed on each constant. "Input" is
    /// `lpInBuffer`, "output" is `lpOutBuffer` of `DeviceIoControl`.
    pub struct IoctlCode(u32) {
        /// Send data to the host. Input: [`PipeId`](crate::PipeId). Output buffer: the data.
        TRANSFER_IN = generic_usbfn(0x03, METHOD_IN_DIRECT)
            => "IOCTL_GENERICUSBFN_TRANSFER_IN",
        /// Send data to the host, then a zero-length packet when the length is a multiple of
        /// `wMaxPacketSize`. Input: [`PipeId`](crate::PipeId). Output buffer: the data.
        TRANSFER_IN_APPEND_ZERO_PKT = generic_usbfn(0x04, METHOD_IN_DIRECT)
            => "IOCTL_GENERICUSBFN_TRANSFER_IN_APPEND_ZERO_PKT",
        /// Receive data from the host. Input: [`PipeId`](crate::PipeId). Output: the buffer
        /// that receives the data; bytes returned = actual length.
        TRANSFER_OUT = generic_usbfn(0x05, METHOD_OUT_DIRECT)
            => "IOCTL_GENERICUSBFN_TRANSFER_OUT",
        /// Complete a control transfer's status stage, IN token. Input: pipe 0.
        CONTROL_STATUS_HANDSHAKE_IN = generic_usbfn(0x06, METHOD_BUFFERED)
            => "IOCTL_GENERICUSBFN_CONTROL_STATUS_HANDSHAKE_IN",
        /// Complete a control transfer's status stage, OUT token. Input: pipe 0.
        CONTROL_STATUS_HANDSHAKE_OUT = generic_usbfn(0x07, METHOD_BUFFERED)
            => "IOCTL_GENERICUSBFN_CONTROL_STATUS_HANDSHAKE_OUT",
        /// Output: [`ClassInformationPacket`](crate::ClassInformationPacket).
        GET_CLASS_INFO = generic_usbfn(0x08, METHOD_OUT_DIRECT)
            => "IOCTL_GENERICUSBFN_GET_CLASS_INFO",
        /// Input: [`PipeId`](crate::PipeId). Output: [`PipeState`](crate::PipeState).
        GET_PIPE_STATE = generic_usbfn(0x09, METHOD_OUT_DIRECT)
            => "IOCTL_GENERICUSBFN_GET_PIPE_STATE",
        /// Input: [`PipeId`](crate::PipeId). The [`PipeState`](crate::PipeState) travels in the
        /// *output* buffer.
        SET_PIPE_STATE = generic_usbfn(0x0A, METHOD_IN_DIRECT)
            => "IOCTL_GENERICUSBFN_SET_PIPE_STATE",
        /// The service is ready; no buffers.
        ACTIVATE_USB_BUS = generic_usbfn(0x0B, METHOD_BUFFERED)
            => "IOCTL_GENERICUSBFN_ACTIVATE_USB_BUS",
        /// Disconnect from the host; no buffers (not supported on Windows itself).
        DEACTIVATE_USB_BUS = generic_usbfn(0x0C, METHOD_BUFFERED)
            => "IOCTL_GENERICUSBFN_DEACTIVATE_USB_BUS",
        /// Wait for a bus event. Output: [`Notification`](crate::Notification).
        BUS_EVENT_NOTIFICATION = generic_usbfn(0x0D, METHOD_OUT_DIRECT)
            => "IOCTL_GENERICUSBFN_BUS_EVENT_NOTIFICATION",
        /// Output: [`ClassInformationPacketEx`](crate::ClassInformationPacketEx).
        GET_CLASS_INFO_EX = generic_usbfn(0x0E, METHOD_OUT_DIRECT)
            => "IOCTL_GENERICUSBFN_GET_CLASS_INFO_EX",
        /// Input: [`InterfaceInfoHeader`](crate::InterfaceInfoHeader). Output:
        /// [`InterfaceInfo`](crate::InterfaceInfo), or only its header with `Size` filled in
        /// and `STATUS_BUFFER_TOO_SMALL`.
        GET_INTERFACE_DESCRIPTOR_SET = generic_usbfn(0x0F, METHOD_OUT_DIRECT)
            => "IOCTL_GENERICUSBFN_GET_INTERFACE_DESCRIPTOR_SET",
        /// Input: [`UsbString`](crate::UsbString). No output.
        REGISTER_USB_STRING = generic_usbfn(0x10, METHOD_IN_DIRECT)
            => "IOCTL_GENERICUSBFN_REGISTER_USB_STRING",
    }
}

wire_enum! {
    /// The buffering method in the low two bits of a control code.
    pub struct IoctlMethod(u32) {
        /// `METHOD_BUFFERED`: both buffers copied through a system buffer.
        BUFFERED = METHOD_BUFFERED => "METHOD_BUFFERED",
        /// `METHOD_IN_DIRECT`: the output buffer is read by the driver (data to send).
        IN_DIRECT = METHOD_IN_DIRECT => "METHOD_IN_DIRECT",
        /// `METHOD_OUT_DIRECT`: the output buffer is written by the driver (data received).
        OUT_DIRECT = METHOD_OUT_DIRECT => "METHOD_OUT_DIRECT",
        /// `METHOD_NEITHER`: raw user pointers.
        NEITHER = METHOD_NEITHER => "METHOD_NEITHER",
    }
}

impl IoctlCode {
    /// The `DeviceType` field, bits 16..32 ([`FILE_DEVICE_UNKNOWN`] for GenericUSBFn).
    #[must_use]
    pub const fn device_type(self) -> u32 {
        self.0 >> 16
    }

    /// The `Access` field, bits 14..16 (`FILE_READ_DATA | FILE_WRITE_DATA` for GenericUSBFn).
    #[must_use]
    pub const fn access(self) -> u32 {
        (self.0 >> 14) & 0x3
    }

    /// The `Function` field, bits 2..14.
    #[must_use]
    pub const fn function(self) -> u32 {
        (self.0 >> 2) & 0xFFF
    }

    /// The `Method` field, bits 0..2.
    #[must_use]
    pub const fn method(self) -> IoctlMethod {
        IoctlMethod(self.0 & 0x3)
    }

    /// The GenericUSBFn code with this function number, if there is one.
    #[must_use]
    pub fn from_function(function: u32) -> Option<Self> {
        Self::KNOWN
            .iter()
            .copied()
            .find(|c| c.function() == function)
    }
}

// The table values of the spec, checked at compile time.
const _: () = {
    assert!(IoctlCode::TRANSFER_IN.0 == 0x0022_C00D);
    assert!(IoctlCode::TRANSFER_IN_APPEND_ZERO_PKT.0 == 0x0022_C011);
    assert!(IoctlCode::TRANSFER_OUT.0 == 0x0022_C016);
    assert!(IoctlCode::CONTROL_STATUS_HANDSHAKE_IN.0 == 0x0022_C018);
    assert!(IoctlCode::CONTROL_STATUS_HANDSHAKE_OUT.0 == 0x0022_C01C);
    assert!(IoctlCode::GET_CLASS_INFO.0 == 0x0022_C022);
    assert!(IoctlCode::GET_PIPE_STATE.0 == 0x0022_C026);
    assert!(IoctlCode::SET_PIPE_STATE.0 == 0x0022_C029);
    assert!(IoctlCode::ACTIVATE_USB_BUS.0 == 0x0022_C02C);
    assert!(IoctlCode::DEACTIVATE_USB_BUS.0 == 0x0022_C030);
    assert!(IoctlCode::BUS_EVENT_NOTIFICATION.0 == 0x0022_C036);
    assert!(IoctlCode::GET_CLASS_INFO_EX.0 == 0x0022_C03A);
    assert!(IoctlCode::GET_INTERFACE_DESCRIPTOR_SET.0 == 0x0022_C03E);
    assert!(IoctlCode::REGISTER_USB_STRING.0 == 0x0022_C041);
};

#[cfg(test)]
mod tests {
    use super::*;

    /// (code, function, method, table value) from the spec.
    const TABLE: [(IoctlCode, u32, IoctlMethod, u32); 14] = [
        (
            IoctlCode::TRANSFER_IN,
            0x03,
            IoctlMethod::IN_DIRECT,
            0x0022_C00D,
        ),
        (
            IoctlCode::TRANSFER_IN_APPEND_ZERO_PKT,
            0x04,
            IoctlMethod::IN_DIRECT,
            0x0022_C011,
        ),
        (
            IoctlCode::TRANSFER_OUT,
            0x05,
            IoctlMethod::OUT_DIRECT,
            0x0022_C016,
        ),
        (
            IoctlCode::CONTROL_STATUS_HANDSHAKE_IN,
            0x06,
            IoctlMethod::BUFFERED,
            0x0022_C018,
        ),
        (
            IoctlCode::CONTROL_STATUS_HANDSHAKE_OUT,
            0x07,
            IoctlMethod::BUFFERED,
            0x0022_C01C,
        ),
        (
            IoctlCode::GET_CLASS_INFO,
            0x08,
            IoctlMethod::OUT_DIRECT,
            0x0022_C022,
        ),
        (
            IoctlCode::GET_PIPE_STATE,
            0x09,
            IoctlMethod::OUT_DIRECT,
            0x0022_C026,
        ),
        (
            IoctlCode::SET_PIPE_STATE,
            0x0A,
            IoctlMethod::IN_DIRECT,
            0x0022_C029,
        ),
        (
            IoctlCode::ACTIVATE_USB_BUS,
            0x0B,
            IoctlMethod::BUFFERED,
            0x0022_C02C,
        ),
        (
            IoctlCode::DEACTIVATE_USB_BUS,
            0x0C,
            IoctlMethod::BUFFERED,
            0x0022_C030,
        ),
        (
            IoctlCode::BUS_EVENT_NOTIFICATION,
            0x0D,
            IoctlMethod::OUT_DIRECT,
            0x0022_C036,
        ),
        (
            IoctlCode::GET_CLASS_INFO_EX,
            0x0E,
            IoctlMethod::OUT_DIRECT,
            0x0022_C03A,
        ),
        (
            IoctlCode::GET_INTERFACE_DESCRIPTOR_SET,
            0x0F,
            IoctlMethod::OUT_DIRECT,
            0x0022_C03E,
        ),
        (
            IoctlCode::REGISTER_USB_STRING,
            0x10,
            IoctlMethod::IN_DIRECT,
            0x0022_C041,
        ),
    ];

    #[test]
    fn codes_match_table_and_decompose() {
        for (code, function, method, value) in TABLE {
            assert_eq!(code.0, value, "{code:?}");
            assert_eq!(
                ctl_code(
                    FILE_DEVICE_UNKNOWN,
                    function,
                    method.0,
                    FILE_READ_DATA | FILE_WRITE_DATA
                ),
                value
            );
            assert_eq!(code.function(), function);
            assert_eq!(code.method(), method);
            assert_eq!(code.device_type(), FILE_DEVICE_UNKNOWN);
            assert_eq!(code.access(), FILE_READ_DATA | FILE_WRITE_DATA);
            assert_eq!(IoctlCode::from_function(function), Some(code));
        }
        assert_eq!(IoctlCode::KNOWN.len(), TABLE.len());
        assert_eq!(IoctlCode::from_function(0x11), None);
    }

    #[test]
    fn windows_sdk_decimal_values() {
        // The same codes as they appear, in decimal, in the Windows SDK metadata.
        assert_eq!(IoctlCode::TRANSFER_IN.0, 2_277_389);
        assert_eq!(IoctlCode::BUS_EVENT_NOTIFICATION.0, 2_277_430);
        assert_eq!(IoctlCode::REGISTER_USB_STRING.0, 2_277_441);
    }

    #[test]
    fn names_and_debug() {
        assert_eq!(
            IoctlCode::TRANSFER_IN.name(),
            Some("IOCTL_GENERICUSBFN_TRANSFER_IN")
        );
        assert_eq!(
            format!("{:?}", IoctlCode::GET_CLASS_INFO_EX),
            "IOCTL_GENERICUSBFN_GET_CLASS_INFO_EX"
        );
        assert_eq!(
            format!("{:?}", IoctlCode(0x0022_C044)),
            "IoctlCode(0x0022c044)"
        );
        assert_eq!(IoctlCode(0x0022_C044).name(), None);
        assert_eq!(format!("{}", IoctlMethod::OUT_DIRECT), "METHOD_OUT_DIRECT");
        assert_eq!(IoctlCode(0x0022_C044).method(), IoctlMethod::BUFFERED);
    }
}
