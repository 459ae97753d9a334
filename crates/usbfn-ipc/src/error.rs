//! Errors of the frame codec and of the request table. Each names the limit or field that was
//! broken; a [`FrameError`] ends the connection (the byte stream cannot be resynchronised),
//! a [`LimitError`] only refuses one request.

#![forbid(unsafe_code)]

/// A byte stream that is not a valid sequence of frames. Decoding never panics; it returns
/// one of these and the connection is closed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length field announces more than [`crate::MAX_FRAME_LEN`].
    #[error("frame of {len} bytes exceeds MAX_FRAME_LEN ({max} bytes)")]
    FrameTooLarge {
        /// The announced length.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// The length field is smaller than the fixed part of the frame kind.
    #[error("{kind} frame of {len} bytes is shorter than its fixed part ({min} bytes)")]
    FrameTooShort {
        /// The frame kind's name.
        kind: &'static str,
        /// The announced length.
        len: usize,
        /// The fixed size of that kind.
        min: usize,
    },
    /// A fixed-size frame (HELLO, CANCEL) is longer than its size.
    #[error("{kind} frame of {len} bytes: it is exactly {size} bytes")]
    FrameTooLong {
        /// The frame kind's name.
        kind: &'static str,
        /// The announced length.
        len: usize,
        /// Its size.
        size: usize,
    },
    /// The kind byte is not one this protocol version defines.
    #[error("unknown frame kind 0x{kind:02x}")]
    UnknownKind {
        /// The kind byte.
        kind: u8,
    },
    /// A frame kind that travels the other way (e.g. a COMPLETION sent by a service).
    #[error("{kind} frame sent {direction}, but it only travels the other way")]
    WrongDirection {
        /// The frame kind's name.
        kind: &'static str,
        /// `"by the service"` or `"by the daemon"`.
        direction: &'static str,
    },
    /// The three reserved header bytes are not zero.
    #[error("{kind} frame has non-zero reserved header bytes")]
    ReservedNotZero {
        /// The frame kind's name.
        kind: &'static str,
    },
    /// A REQUEST's `input_length` exceeds [`crate::MAX_INPUT_LEN`].
    #[error("REQUEST input_length {len} exceeds MAX_INPUT_LEN ({max} bytes)")]
    InputTooLarge {
        /// The announced input length.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// A REQUEST's `input_length` runs past the end of the frame.
    #[error("REQUEST input_length {input_length} runs past the frame ({available} bytes left)")]
    InputOverrun {
        /// The announced input length.
        input_length: usize,
        /// Bytes left in the frame after the fixed part.
        available: usize,
    },
    /// Data (an IN transfer's bytes, a completion's output) exceeds [`crate::MAX_DATA_LEN`].
    #[error("{field} of {len} bytes exceeds MAX_DATA_LEN ({max} bytes)")]
    DataTooLarge {
        /// Which field.
        field: &'static str,
        /// Its length.
        len: u64,
        /// The limit.
        max: usize,
    },
}

/// Why the daemon refused to take one more request on a connection. The request completes
/// at once with `STATUS_INSUFFICIENT_RESOURCES` (limits) or ends the connection (a reused id).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// More requests outstanding than [`crate::MAX_OUTSTANDING_REQUESTS`].
    #[error(
        "{outstanding} requests already outstanding on this connection (MAX_OUTSTANDING_REQUESTS {limit})"
    )]
    TooManyRequests {
        /// Requests outstanding before this one.
        outstanding: usize,
        /// The limit.
        limit: usize,
    },
    /// The buffers of the outstanding requests would exceed
    /// [`crate::MAX_BUFFERED_BYTES`].
    #[error(
        "{wanted} buffer bytes would be outstanding on this connection (MAX_BUFFERED_BYTES {limit})"
    )]
    TooManyBytes {
        /// Bytes that would be outstanding with this request.
        wanted: usize,
        /// The limit.
        limit: usize,
    },
    /// The request id is already in use by an outstanding request: a protocol violation.
    #[error("request id {id} is already outstanding on this connection")]
    DuplicateId {
        /// The id.
        id: u64,
    },
}
