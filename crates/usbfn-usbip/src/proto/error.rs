//! [`ProtoError`]: everything the codec can reject, with the message, field and limit named.

use std::fmt;

/// A configurable limit of [`Limits`](super::Limits), named in [`ProtoError::LimitExceeded`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// [`Limits::max_transfer_buffer`](super::Limits::max_transfer_buffer).
    MaxTransferBuffer,
    /// [`Limits::max_iso_packets`](super::Limits::max_iso_packets).
    MaxIsoPackets,
    /// [`Limits::max_outstanding_urbs`](super::Limits::max_outstanding_urbs).
    MaxOutstandingUrbs,
    /// [`Limits::max_devices`](super::Limits::max_devices).
    MaxDevices,
    /// The wire field is a signed 32-bit integer: `i32::MAX` is all it can carry.
    WireI32,
    /// The wire field is one byte: `u8::MAX` is all it can carry.
    WireU8,
    /// `devnum` is the low 16 bits of `devid` (`busnum << 16 | devnum`): `0xffff` is the most.
    DevidDevnum,
}

impl Limit {
    /// The limit's name as written in [`Limits`](super::Limits).
    pub const fn name(self) -> &'static str {
        match self {
            Limit::MaxTransferBuffer => "max_transfer_buffer",
            Limit::MaxIsoPackets => "max_iso_packets",
            Limit::MaxOutstandingUrbs => "max_outstanding_urbs",
            Limit::MaxDevices => "max_devices",
            Limit::WireI32 => "i32::MAX",
            Limit::WireU8 => "u8::MAX",
            Limit::DevidDevnum => "devid's 16-bit devnum",
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a USB/IP message could not be decoded or encoded.
///
/// `message` fields name the USB/IP message (`"CMD_SUBMIT"`, `"OP_REP_DEVLIST"`, ...), `field`
/// the header field as the kernel's `usbip_common.h` spells it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtoError {
    /// A length or count is larger than a configured limit.
    #[error("{message} {field} {value} exceeds {limit} {max}")]
    LimitExceeded {
        /// Message name.
        message: &'static str,
        /// Field name.
        field: &'static str,
        /// The value received (or asked to send).
        value: u64,
        /// Which limit.
        limit: Limit,
        /// The limit's value.
        max: u64,
    },
    /// A signed length field carries a negative value.
    #[error("{message} {field} {value} is negative")]
    NegativeLength {
        /// Message name.
        message: &'static str,
        /// Field name.
        field: &'static str,
        /// The value received.
        value: i32,
    },
    /// The 32-bit command code is none of CMD_SUBMIT, CMD_UNLINK, RET_SUBMIT, RET_UNLINK.
    #[error("unknown USB/IP command code {code:#010x}")]
    UnknownCommand {
        /// The code received.
        code: u32,
    },
    /// A known command arrived in the wrong direction (e.g. a RET_SUBMIT sent to a server).
    #[error("USB/IP command {name} ({code}) is not valid here: expected {expected}")]
    UnexpectedCommand {
        /// The code received.
        code: u32,
        /// Its name.
        name: &'static str,
        /// What this decoder accepts.
        expected: &'static str,
    },
    /// The direction field is neither 0 (out) nor 1 (in).
    #[error("{message} direction {value} is neither 0 (out) nor 1 (in)")]
    InvalidDirection {
        /// Message name.
        message: &'static str,
        /// The value received.
        value: u32,
    },
    /// The endpoint number is above 15.
    #[error("{message} ep {value} is not an endpoint number (0..=15)")]
    InvalidEndpoint {
        /// Message name.
        message: &'static str,
        /// The value received.
        value: u32,
    },
    /// The iso descriptors ask for more bytes than the transfer buffer holds.
    #[error(
        "{message} iso packet lengths sum to {sum}, more than transfer_buffer_length {transfer_buffer_length}"
    )]
    IsoLengthsExceedBuffer {
        /// Message name.
        message: &'static str,
        /// Sum of the descriptors' `length`.
        sum: u64,
        /// The transfer buffer length.
        transfer_buffer_length: u32,
    },
    /// One iso descriptor points outside the transfer buffer.
    #[error(
        "{message} iso packet {index} (offset {offset}, length {length}) lies outside transfer_buffer_length {transfer_buffer_length}"
    )]
    IsoPacketOutOfBounds {
        /// Message name.
        message: &'static str,
        /// Index of the descriptor.
        index: usize,
        /// Its offset.
        offset: u32,
        /// Its length.
        length: u32,
        /// The transfer buffer length.
        transfer_buffer_length: u32,
    },
    /// The iso descriptors' `actual_length`s do not add up to the reply's `actual_length`.
    #[error(
        "{message} seqnum {seqnum}: iso packet actual_lengths sum to {sum}, but actual_length is {actual_length}"
    )]
    IsoActualLengthMismatch {
        /// Message name.
        message: &'static str,
        /// Sequence number of the reply.
        seqnum: u32,
        /// Sum of the descriptors' `actual_length`.
        sum: u64,
        /// The reply's `actual_length`.
        actual_length: u32,
    },
    /// A reply carries more iso descriptors than the URB was submitted with.
    #[error(
        "RET_SUBMIT seqnum {seqnum} number_of_packets {returned} exceeds the {submitted} packets submitted"
    )]
    IsoPacketCountMismatch {
        /// Sequence number of the reply.
        seqnum: u32,
        /// `number_of_packets` in the reply.
        returned: i32,
        /// `number_of_packets` of the CMD_SUBMIT.
        submitted: i32,
    },
    /// A reply names a sequence number that is not outstanding (the Linux host drops the
    /// device when this happens).
    #[error("{message} for unknown seqnum {seqnum}")]
    UnknownSeqnum {
        /// Message name.
        message: &'static str,
        /// The sequence number.
        seqnum: u32,
    },
    /// A reply reports more bytes than the URB's buffer holds (Linux: "malicious packet").
    #[error(
        "RET_SUBMIT seqnum {seqnum} actual_length {actual_length} exceeds the URB's transfer_buffer_length {transfer_buffer_length}"
    )]
    ActualLengthExceedsBuffer {
        /// Sequence number of the reply.
        seqnum: u32,
        /// The reply's `actual_length`.
        actual_length: u32,
        /// The CMD_SUBMIT's `transfer_buffer_length`.
        transfer_buffer_length: u32,
    },
    /// A reply carries a positive status; USB/IP statuses are 0 or a negative errno.
    #[error("{message} seqnum {seqnum} has positive status {status}; only 0 or -errno are valid")]
    PositiveStatus {
        /// Message name.
        message: &'static str,
        /// Sequence number of the reply.
        seqnum: u32,
        /// The status.
        status: i32,
    },
    /// A RET_UNLINK contradicts what was already received for the unlinked URB.
    #[error(
        "RET_UNLINK seqnum {seqnum} status {status} for URB {unlink_seqnum}, {}",
        if *.already_completed { "which had already completed (a non-zero status says its RET_SUBMIT was never sent)" }
        else { "which never completed (status 0 says its RET_SUBMIT was already sent)" }
    )]
    UnlinkStatusMismatch {
        /// Sequence number of the RET_UNLINK.
        seqnum: u32,
        /// Its status.
        status: i32,
        /// The URB it was about.
        unlink_seqnum: u32,
        /// Whether a RET_SUBMIT for that URB had already been received.
        already_completed: bool,
    },
    /// Encoding a command whose sequence number is still outstanding.
    #[error("{message} seqnum {seqnum} is already outstanding")]
    DuplicateSeqnum {
        /// Message name.
        message: &'static str,
        /// The sequence number.
        seqnum: u32,
    },
    /// Encoding a message whose data does not match its length fields.
    #[error("{message} carries {actual} {what}, but its header says {expected}")]
    Inconsistent {
        /// Message name.
        message: &'static str,
        /// What was counted ("data bytes", "iso descriptors", "interfaces").
        what: &'static str,
        /// What was supplied.
        actual: u64,
        /// What the header field says.
        expected: u64,
    },
    /// An op message has a version other than 0x0111.
    #[error(
        "USB/IP op version {version:#06x} is not the supported {:#06x}",
        super::USBIP_VERSION
    )]
    VersionMismatch {
        /// The version received.
        version: u16,
    },
    /// An op code this side does not accept.
    #[error("USB/IP op code {code:#06x} is not valid here: expected {expected}")]
    UnexpectedOpCode {
        /// The code received.
        code: u16,
        /// What this decoder accepts.
        expected: &'static str,
    },
    /// A successful OP_REP_IMPORT without a device, or similar structural error.
    #[error("{message}: {reason}")]
    Malformed {
        /// Message name.
        message: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// A string field (busid, path) is not acceptable.
    #[error("{field} is invalid: {reason}")]
    InvalidString {
        /// Field name ("busid", "path").
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
}
