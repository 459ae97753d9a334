//! The one table that maps completion statuses between USB/IP, GenericUSBFn (NTSTATUS),
//! usbredir and FunctionFS.
//!
//! Every transport converts through [`CompletionStatus`]; no other module spells an errno or an
//! NTSTATUS value for a transfer outcome.

use usbfn_abi::NtStatus;

/// How a host URB or a service transfer ended.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum CompletionStatus {
    /// Completed normally (possibly short, when short packets are allowed).
    Success,
    /// The endpoint is halted, or a control request was refused (protocol STALL).
    Stall,
    /// A packet was larger than the room left in the receiving buffer (babble / overflow).
    Babble,
    /// The transfer ended with a short packet and the host asked for `SHORT_NOT_OK`.
    ShortPacket,
    /// Cancelled: unlinked by the host, cancelled by the service, or by a bus reset, a
    /// configuration change or an alternate-setting change.
    Cancelled,
    /// The device is gone: detached, or the bus was deactivated.
    Shutdown,
    /// The request is not supported.
    NotSupported,
    /// An isochronous packet that missed its (micro)frame: the device had no data for an IN
    /// packet in time, or the packet's frame had passed (per packet only; the URB's own
    /// status stays `Success`).
    Missed,
    /// The request itself was malformed (wrong direction, impossible length).
    Invalid,
}

/// One row per status: Linux errno as USB/IP carries it (negated on the wire), NTSTATUS as
/// GenericUSBFn returns it.
const TABLE: &[(CompletionStatus, i32, NtStatus)] = &[
    (CompletionStatus::Success, 0, NtStatus::STATUS_SUCCESS),
    (
        CompletionStatus::Stall,
        -32,
        NtStatus::STATUS_DEVICE_DATA_ERROR,
    ), // -EPIPE
    (CompletionStatus::Babble, -75, NtStatus::STATUS_DATA_OVERRUN), // -EOVERFLOW
    (
        CompletionStatus::ShortPacket,
        -121,
        NtStatus::STATUS_SUCCESS,
    ), // -EREMOTEIO
    (
        CompletionStatus::Cancelled,
        -104,
        NtStatus::STATUS_CANCELLED,
    ), // -ECONNRESET
    (
        CompletionStatus::Shutdown,
        -108,
        NtStatus::STATUS_DEVICE_NOT_CONNECTED,
    ), // -ESHUTDOWN
    (
        CompletionStatus::NotSupported,
        -95,
        NtStatus::STATUS_NOT_SUPPORTED,
    ), // -EOPNOTSUPP
    (CompletionStatus::Missed, -18, NtStatus::STATUS_IO_TIMEOUT),   // -EXDEV
    (
        CompletionStatus::Invalid,
        -22,
        NtStatus::STATUS_INVALID_PARAMETER,
    ), // -EINVAL
];

/// The usbredir column (`usb_redir_success` 0, `cancelled` 1, `inval` 2, `ioerror` 3, `stall` 4,
/// `timeout` 5, `babble` 6), one row per status. usbredir has no short-not-ok flag, so a short
/// packet is a success there; a device that went away and a missed isochronous packet are
/// I/O errors, as `usbredirhost` reports them.
const USBREDIR: &[(CompletionStatus, u8)] = &[
    (CompletionStatus::Success, 0),
    (CompletionStatus::Stall, 4),
    (CompletionStatus::Babble, 6),
    (CompletionStatus::ShortPacket, 0),
    (CompletionStatus::Cancelled, 1),
    (CompletionStatus::Shutdown, 3),
    (CompletionStatus::NotSupported, 2),
    (CompletionStatus::Missed, 3),
    (CompletionStatus::Invalid, 2),
];

impl CompletionStatus {
    /// The negative errno a Linux host expects in `RET_SUBMIT.status` (0 for success).
    pub fn to_errno(self) -> i32 {
        TABLE
            .iter()
            .find(|(s, _, _)| *s == self)
            .map_or(-71, |(_, errno, _)| *errno) // -EPROTO: unreachable, every variant has a row
    }

    /// The NTSTATUS a GenericUSBFn service sees for a transfer that ended this way.
    pub fn to_ntstatus(self) -> NtStatus {
        TABLE
            .iter()
            .find(|(s, _, _)| *s == self)
            .map_or(NtStatus::STATUS_UNSUCCESSFUL, |(_, _, nt)| *nt)
    }

    /// The usbredir status a QEMU guest sees for a URB that ended this way.
    pub fn to_usbredir(self) -> u8 {
        USBREDIR
            .iter()
            .find(|(s, _)| *s == self)
            .map_or(3, |(_, v)| *v) // ioerror: unreachable, every variant has a row
    }

    /// The status for a usbredir status received from a peer: I/O errors and timeouts mean
    /// the transfer could not run (`Shutdown`), unknown values are `Invalid`.
    pub fn from_usbredir(status: u8) -> Self {
        match status {
            0 => Self::Success,
            1 => Self::Cancelled,
            4 => Self::Stall,
            6 => Self::Babble,
            3 | 5 => Self::Shutdown,
            _ => Self::Invalid,
        }
    }

    /// The status for a negative errno received from a peer, if it is one usbfn knows.
    /// `-ENODEV` and `-ESHUTDOWN` both mean the device is gone.
    pub fn from_errno(errno: i32) -> Option<Self> {
        if errno == -19 {
            return Some(Self::Shutdown);
        }
        TABLE
            .iter()
            .find(|(_, e, _)| *e == errno)
            .map(|(s, _, _)| *s)
    }

    /// The status for the (negative) result of a FunctionFS endpoint I/O: the FunctionFS
    /// column of the table. FunctionFS reports the UDC request's status as is, plus its own
    /// codes: `-EAGAIN` (a non-blocking endpoint file that is not enabled) and `-EINTR`
    /// (an interrupted request) mean the transfer never ran; `-EBADMSG` and `-EL2HLT` are
    /// the answers to a deliberate halt.
    pub fn from_functionfs_errno(errno: i32) -> Self {
        match errno {
            -11 | -19 | -108 => Self::Shutdown, // -EAGAIN, -ENODEV, -ESHUTDOWN
            -104 | -4 | -2 => Self::Cancelled,  // -ECONNRESET, -EINTR, -ENOENT (dequeued)
            -74 | -51 => Self::Stall,           // -EBADMSG, -EL2HLT
            other => Self::from_errno(other).unwrap_or(Self::Invalid),
        }
    }

    /// True for [`CompletionStatus::Success`].
    pub fn is_success(self) -> bool {
        self == Self::Success
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_has_one_row_and_round_trips_through_errno() {
        let all = [
            CompletionStatus::Success,
            CompletionStatus::Stall,
            CompletionStatus::Babble,
            CompletionStatus::ShortPacket,
            CompletionStatus::Cancelled,
            CompletionStatus::Shutdown,
            CompletionStatus::NotSupported,
            CompletionStatus::Missed,
            CompletionStatus::Invalid,
        ];
        for s in all {
            assert_eq!(TABLE.iter().filter(|(t, _, _)| *t == s).count(), 1, "{s:?}");
            assert_eq!(CompletionStatus::from_errno(s.to_errno()), Some(s));
            assert!(s.to_errno() <= 0, "never a positive status");
        }
    }

    #[test]
    fn usbredir_values() {
        use CompletionStatus as S;
        assert_eq!(USBREDIR.len(), TABLE.len(), "one usbredir row per status");
        for (s, _, _) in TABLE {
            assert_eq!(USBREDIR.iter().filter(|(t, _)| t == s).count(), 1, "{s:?}");
        }
        assert_eq!(S::Success.to_usbredir(), 0);
        assert_eq!(S::Cancelled.to_usbredir(), 1);
        assert_eq!(S::Invalid.to_usbredir(), 2);
        assert_eq!(S::Shutdown.to_usbredir(), 3);
        assert_eq!(S::Stall.to_usbredir(), 4);
        assert_eq!(S::Babble.to_usbredir(), 6);
        assert_eq!(S::ShortPacket.to_usbredir(), 0);
        for v in [0, 1, 4, 6] {
            assert_eq!(S::from_usbredir(v).to_usbredir(), v);
        }
    }

    #[test]
    fn linux_errno_values() {
        assert_eq!(CompletionStatus::Stall.to_errno(), -32);
        assert_eq!(CompletionStatus::Babble.to_errno(), -75);
        assert_eq!(CompletionStatus::ShortPacket.to_errno(), -121);
        assert_eq!(CompletionStatus::Cancelled.to_errno(), -104);
        assert_eq!(CompletionStatus::Shutdown.to_errno(), -108);
        assert_eq!(CompletionStatus::Missed.to_errno(), -18);
        assert_eq!(
            CompletionStatus::from_errno(-19),
            Some(CompletionStatus::Shutdown)
        );
        assert_eq!(CompletionStatus::from_errno(-1), None);
    }

    #[test]
    fn functionfs_errno_values() {
        use CompletionStatus as S;
        assert_eq!(S::from_functionfs_errno(-108), S::Shutdown);
        assert_eq!(S::from_functionfs_errno(-11), S::Shutdown);
        assert_eq!(S::from_functionfs_errno(-104), S::Cancelled);
        assert_eq!(S::from_functionfs_errno(-32), S::Stall);
        assert_eq!(S::from_functionfs_errno(-51), S::Stall);
        assert_eq!(S::from_functionfs_errno(-75), S::Babble);
        assert_eq!(S::from_functionfs_errno(-5), S::Invalid);
    }

    #[test]
    fn ntstatus_values() {
        assert_eq!(
            CompletionStatus::Cancelled.to_ntstatus(),
            NtStatus::STATUS_CANCELLED
        );
        assert!(CompletionStatus::Success.to_ntstatus().is_success());
    }
}
