//! `NTSTATUS` values a GenericUSBFn driver completes requests with.

use crate::macros::wire_enum;

wire_enum! {
    @const_is_windows_name
    /// An `NTSTATUS`, kept as its unsigned 32-bit pattern so any value survives.
    ///
    /// The named constants are the codes a GenericUSBFn driver (and usbfn's function controller)
    /// returns; values are those of the Windows `ntstatus.h`.
    #[doc(alias = "NTSTATUS")]
    pub struct NtStatus(u32) {
        /// The request completed.
        STATUS_SUCCESS = 0x0000_0000 => "STATUS_SUCCESS",
        /// The request is queued and completes later (overlapped I/O).
        STATUS_PENDING = 0x0000_0103 => "STATUS_PENDING",
        /// Data did not fit; the buffer holds what did (a warning, not a success).
        STATUS_BUFFER_OVERFLOW = 0x8000_0005 => "STATUS_BUFFER_OVERFLOW",
        /// Unspecified failure.
        STATUS_UNSUCCESSFUL = 0xC000_0001 => "STATUS_UNSUCCESSFUL",
        /// A parameter (pipe id, buffer length) is invalid.
        STATUS_INVALID_PARAMETER = 0xC000_000D => "STATUS_INVALID_PARAMETER",
        /// The request is not valid for this device (unknown IOCTL).
        STATUS_INVALID_DEVICE_REQUEST = 0xC000_0010 => "STATUS_INVALID_DEVICE_REQUEST",
        /// The output buffer is too small; see `USBFN_INTERFACE_INFO.Size`.
        STATUS_BUFFER_TOO_SMALL = 0xC000_0023 => "STATUS_BUFFER_TOO_SMALL",
        /// The host sent more data than the buffer holds (babble).
        STATUS_DATA_OVERRUN = 0xC000_003C => "STATUS_DATA_OVERRUN",
        /// Out of memory or another resource.
        STATUS_INSUFFICIENT_RESOURCES = 0xC000_009A => "STATUS_INSUFFICIENT_RESOURCES",
        /// A transfer failed on the bus (a stalled or broken pipe).
        STATUS_DEVICE_DATA_ERROR = 0xC000_009C => "STATUS_DEVICE_DATA_ERROR",
        /// The device is not connected to a host.
        STATUS_DEVICE_NOT_CONNECTED = 0xC000_009D => "STATUS_DEVICE_NOT_CONNECTED",
        /// The request timed out.
        STATUS_IO_TIMEOUT = 0xC000_00B5 => "STATUS_IO_TIMEOUT",
        /// The request is not supported.
        STATUS_NOT_SUPPORTED = 0xC000_00BB => "STATUS_NOT_SUPPORTED",
        /// The request was cancelled (reset, detach, unconfigure, or `CancelIo`).
        STATUS_CANCELLED = 0xC000_0120 => "STATUS_CANCELLED",
        /// The device is in the wrong state (for example, a transfer before Configured).
        STATUS_INVALID_DEVICE_STATE = 0xC000_0184 => "STATUS_INVALID_DEVICE_STATE",
    }
}

/// The severity in the top two bits of an [`NtStatus`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Severity {
    /// `STATUS_SEVERITY_SUCCESS` (0).
    Success,
    /// `STATUS_SEVERITY_INFORMATIONAL` (1), e.g. `STATUS_PENDING`'s class of values.
    Informational,
    /// `STATUS_SEVERITY_WARNING` (2), e.g. `STATUS_BUFFER_OVERFLOW`.
    Warning,
    /// `STATUS_SEVERITY_ERROR` (3).
    Error,
}

impl NtStatus {
    /// `NT_SUCCESS(status)`: success or informational (`STATUS_PENDING` counts as success);
    /// warnings such as `STATUS_BUFFER_OVERFLOW` and errors do not.
    #[doc(alias = "NT_SUCCESS")]
    #[must_use]
    pub const fn is_success(self) -> bool {
        self.0 < 0x8000_0000
    }

    /// `true` for the error severity (top bits `11`).
    #[must_use]
    pub const fn is_error(self) -> bool {
        self.0 >= 0xC000_0000
    }

    /// The severity field (bits 30..32).
    #[must_use]
    pub const fn severity(self) -> Severity {
        match self.0 >> 30 {
            0 => Severity::Success,
            1 => Severity::Informational,
            2 => Severity::Warning,
            _ => Severity::Error,
        }
    }

    /// The value as the signed `NTSTATUS` (`LONG`) Windows declares it as.
    #[must_use]
    pub const fn as_i32(self) -> i32 {
        self.0.cast_signed()
    }

    /// The status from a signed `NTSTATUS`.
    #[must_use]
    pub const fn from_i32(value: i32) -> Self {
        Self(value.cast_unsigned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_match_ntstatus_h() {
        let table = [
            (NtStatus::STATUS_SUCCESS, 0x0000_0000),
            (NtStatus::STATUS_PENDING, 0x0000_0103),
            (NtStatus::STATUS_CANCELLED, 0xC000_0120),
            (NtStatus::STATUS_BUFFER_TOO_SMALL, 0xC000_0023),
            (NtStatus::STATUS_INVALID_PARAMETER, 0xC000_000D),
            (NtStatus::STATUS_INVALID_DEVICE_REQUEST, 0xC000_0010),
            (NtStatus::STATUS_NOT_SUPPORTED, 0xC000_00BB),
            (NtStatus::STATUS_DEVICE_NOT_CONNECTED, 0xC000_009D),
            (NtStatus::STATUS_INVALID_DEVICE_STATE, 0xC000_0184),
            (NtStatus::STATUS_INSUFFICIENT_RESOURCES, 0xC000_009A),
            (NtStatus::STATUS_DATA_OVERRUN, 0xC000_003C),
            (NtStatus::STATUS_IO_TIMEOUT, 0xC000_00B5),
            (NtStatus::STATUS_UNSUCCESSFUL, 0xC000_0001),
            (NtStatus::STATUS_DEVICE_DATA_ERROR, 0xC000_009C),
            (NtStatus::STATUS_BUFFER_OVERFLOW, 0x8000_0005),
        ];
        for (status, value) in table {
            assert_eq!(status.0, value, "{status:?}");
        }
        assert_eq!(NtStatus::KNOWN.len(), table.len());
    }

    #[test]
    fn success_follows_nt_success() {
        assert!(NtStatus::STATUS_SUCCESS.is_success());
        assert!(NtStatus::STATUS_PENDING.is_success());
        assert!(!NtStatus::STATUS_BUFFER_OVERFLOW.is_success());
        assert!(!NtStatus::STATUS_BUFFER_OVERFLOW.is_error());
        assert!(!NtStatus::STATUS_CANCELLED.is_success());
        assert!(NtStatus::STATUS_CANCELLED.is_error());
        assert_eq!(NtStatus::STATUS_SUCCESS.severity(), Severity::Success);
        assert_eq!(NtStatus(0x4000_0000).severity(), Severity::Informational);
        assert_eq!(
            NtStatus::STATUS_BUFFER_OVERFLOW.severity(),
            Severity::Warning
        );
        assert_eq!(NtStatus::STATUS_IO_TIMEOUT.severity(), Severity::Error);
    }

    #[test]
    fn signed_view_and_debug() {
        assert_eq!(NtStatus::STATUS_CANCELLED.as_i32(), -1_073_741_536);
        assert_eq!(
            NtStatus::from_i32(-1_073_741_536),
            NtStatus::STATUS_CANCELLED
        );
        assert_eq!(format!("{:?}", NtStatus::STATUS_PENDING), "STATUS_PENDING");
        assert_eq!(
            format!("{:?}", NtStatus(0xC000_0002)),
            "NtStatus(0xc0000002)"
        );
    }
}
