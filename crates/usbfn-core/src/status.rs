//! The one table that maps completion statuses between USB/IP, GenericUSBFn (NTSTATUS),
//! usbredir and FunctionFS.
//!
//! Every transport converts through [`CompletionStatus`]; no other module spells an errno or an
//! NTSTATUS value for a transfer outcome, and the errno values themselves are defined here
//! ([`errno`]) for every transport that carries Linux codes.

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

/// Linux errno values, as USB/IP carries them (negated) in `status` fields and FunctionFS
/// returns them from endpoint I/O: the one place they are defined.
pub mod errno {
    /// No such file or directory: a URB unlinked synchronously, a dequeued request.
    pub const ENOENT: i32 = 2;
    /// Interrupted system call.
    pub const EINTR: i32 = 4;
    /// Try again: a non-blocking FunctionFS endpoint that is not enabled.
    pub const EAGAIN: i32 = 11;
    /// Cross-device link: an isochronous packet not (fully) done in its frame.
    pub const EXDEV: i32 = 18;
    /// No such device.
    pub const ENODEV: i32 = 19;
    /// Invalid argument.
    pub const EINVAL: i32 = 22;
    /// Broken pipe: the endpoint stalled.
    pub const EPIPE: i32 = 32;
    /// Level 2 halted: FunctionFS's answer to I/O on a halted endpoint.
    pub const EL2HLT: i32 = 51;
    /// Protocol error.
    pub const EPROTO: i32 = 71;
    /// Bad message: FunctionFS's answer to a deliberate halt (I/O the wrong way).
    pub const EBADMSG: i32 = 74;
    /// Value too large: babble (the device sent more than the buffer holds).
    pub const EOVERFLOW: i32 = 75;
    /// Operation not supported.
    pub const EOPNOTSUPP: i32 = 95;
    /// Connection reset: the URB was unlinked (cancelled).
    pub const ECONNRESET: i32 = 104;
    /// Endpoint shut down: the device is gone.
    pub const ESHUTDOWN: i32 = 108;
    /// Operation in progress: the URB is still pending.
    pub const EINPROGRESS: i32 = 115;
    /// Remote I/O error: a short packet with URB_SHORT_NOT_OK.
    pub const EREMOTEIO: i32 = 121;

    /// The name of a URB status (`0` → `"OK"`, `-32` → `"EPIPE"`), `None` when unknown.
    pub const fn status_name(status: i32) -> Option<&'static str> {
        if status == 0 {
            return Some("OK");
        }
        match status.checked_neg() {
            Some(ENOENT) => Some("ENOENT"),
            Some(EINTR) => Some("EINTR"),
            Some(EAGAIN) => Some("EAGAIN"),
            Some(EXDEV) => Some("EXDEV"),
            Some(ENODEV) => Some("ENODEV"),
            Some(EINVAL) => Some("EINVAL"),
            Some(EPIPE) => Some("EPIPE"),
            Some(EL2HLT) => Some("EL2HLT"),
            Some(EPROTO) => Some("EPROTO"),
            Some(EBADMSG) => Some("EBADMSG"),
            Some(EOVERFLOW) => Some("EOVERFLOW"),
            Some(EOPNOTSUPP) => Some("EOPNOTSUPP"),
            Some(ECONNRESET) => Some("ECONNRESET"),
            Some(ESHUTDOWN) => Some("ESHUTDOWN"),
            Some(EINPROGRESS) => Some("EINPROGRESS"),
            Some(EREMOTEIO) => Some("EREMOTEIO"),
            _ => None,
        }
    }
}

use errno::*;

/// One row of the table.
struct Row {
    status: CompletionStatus,
    /// The negative errno a Linux host sees (USB/IP `RET_SUBMIT.status`, usbmon).
    linux: i32,
    /// The NTSTATUS a GenericUSBFn service sees.
    ntstatus: NtStatus,
    /// Further negative errnos that mean this outcome when FunctionFS returns them (its own
    /// codes, besides the UDC request's status in `linux`).
    functionfs: &'static [i32],
    /// The usbredir status a QEMU guest sees (`usb_redir_success` 0, `cancelled` 1, `inval`
    /// 2, `ioerror` 3, `stall` 4, `timeout` 5, `babble` 6). usbredir has no short-not-ok
    /// flag, so a short packet is a success there; a device that went away and a missed
    /// isochronous packet are I/O errors, as `usbredirhost` reports them.
    usbredir: u8,
}

/// One row per status, one column per transport.
const TABLE: &[Row] = &[
    Row {
        status: CompletionStatus::Success,
        linux: 0,
        ntstatus: NtStatus::STATUS_SUCCESS,
        usbredir: 0,
        functionfs: &[],
    },
    Row {
        status: CompletionStatus::Stall,
        linux: -EPIPE,
        ntstatus: NtStatus::STATUS_DEVICE_DATA_ERROR,
        usbredir: 4,
        functionfs: &[-EBADMSG, -EL2HLT],
    },
    Row {
        status: CompletionStatus::Babble,
        linux: -EOVERFLOW,
        ntstatus: NtStatus::STATUS_DATA_OVERRUN,
        usbredir: 6,
        functionfs: &[],
    },
    Row {
        status: CompletionStatus::ShortPacket,
        linux: -EREMOTEIO,
        ntstatus: NtStatus::STATUS_SUCCESS,
        usbredir: 0,
        functionfs: &[],
    },
    Row {
        status: CompletionStatus::Cancelled,
        linux: -ECONNRESET,
        ntstatus: NtStatus::STATUS_CANCELLED,
        usbredir: 1,
        functionfs: &[-EINTR, -ENOENT],
    },
    Row {
        status: CompletionStatus::Shutdown,
        linux: -ESHUTDOWN,
        ntstatus: NtStatus::STATUS_DEVICE_NOT_CONNECTED,
        usbredir: 3,
        functionfs: &[-EAGAIN, -ENODEV],
    },
    Row {
        status: CompletionStatus::NotSupported,
        linux: -EOPNOTSUPP,
        ntstatus: NtStatus::STATUS_NOT_SUPPORTED,
        usbredir: 2,
        functionfs: &[],
    },
    Row {
        status: CompletionStatus::Missed,
        linux: -EXDEV,
        ntstatus: NtStatus::STATUS_IO_TIMEOUT,
        usbredir: 3,
        functionfs: &[],
    },
    Row {
        status: CompletionStatus::Invalid,
        linux: -EINVAL,
        ntstatus: NtStatus::STATUS_INVALID_PARAMETER,
        usbredir: 2,
        functionfs: &[],
    },
];

/// The row of `status` (every variant has one: a test checks it).
fn row(status: CompletionStatus) -> Option<&'static Row> {
    TABLE.iter().find(|r| r.status == status)
}

impl CompletionStatus {
    /// The negative errno a Linux host expects in `RET_SUBMIT.status` (0 for success).
    pub fn to_errno(self) -> i32 {
        row(self).map_or(-EPROTO, |r| r.linux)
    }

    /// The NTSTATUS a GenericUSBFn service sees for a transfer that ended this way.
    pub fn to_ntstatus(self) -> NtStatus {
        row(self).map_or(NtStatus::STATUS_UNSUCCESSFUL, |r| r.ntstatus)
    }

    /// The usbredir status a QEMU guest sees for a URB that ended this way.
    pub fn to_usbredir(self) -> u8 {
        row(self).map_or(3, |r| r.usbredir) // ioerror: unreachable, every variant has a row
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
        if errno == -ENODEV {
            return Some(Self::Shutdown);
        }
        TABLE.iter().find(|r| r.linux == errno).map(|r| r.status)
    }

    /// The status for the (negative) result of a FunctionFS endpoint I/O: the UDC request's
    /// status as a Linux host would see it, or one of FunctionFS's own codes (the
    /// `functionfs` column); anything else is [`CompletionStatus::Invalid`].
    pub fn from_functionfs_errno(errno: i32) -> Self {
        TABLE
            .iter()
            .find(|r| r.linux == errno || r.functionfs.contains(&errno))
            .map_or(Self::Invalid, |r| r.status)
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
            assert_eq!(TABLE.iter().filter(|r| r.status == s).count(), 1, "{s:?}");
            assert_eq!(CompletionStatus::from_errno(s.to_errno()), Some(s));
            assert!(s.to_errno() <= 0, "never a positive status");
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
    fn usbredir_values() {
        use CompletionStatus as S;
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
    fn ntstatus_values() {
        assert_eq!(
            CompletionStatus::Cancelled.to_ntstatus(),
            NtStatus::STATUS_CANCELLED
        );
        assert!(CompletionStatus::Success.to_ntstatus().is_success());
    }
}
