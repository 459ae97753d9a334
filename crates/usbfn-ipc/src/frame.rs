//! The frame codec (sans-IO): bytes in, frames out, and back. No sockets, no clock.
//!
//! Every frame starts with an 8-byte header, little-endian:
//!
//! ```text
//! offset 0  u32  length     whole frame, header included (HEADER_LEN..=MAX_FRAME_LEN)
//! offset 4  u8   kind       HELLO 1, REQUEST 2, CANCEL 3, COMPLETION 4
//! offset 5  u8×3 reserved   zero
//! ```
//!
//! followed by the kind's body (see [`Hello`], [`Request`], [`Cancel`], [`Completion`] and
//! `docs/ipc.md`). Decoders take a growing buffer and return `Ok(None)` until a whole frame is
//! there; they look at the length field as soon as its 4 bytes arrive, so an oversized frame
//! is refused before it is buffered.

#![forbid(unsafe_code)]

use bytes::{Buf, BufMut, Bytes, BytesMut};
use usbfn_abi::{IoctlCode, NtStatus};

use crate::error::FrameError;

/// The protocol version the daemon announces in [`Hello`].
pub const PROTOCOL_VERSION: u32 = 1;
/// Bytes of the frame header.
pub const HEADER_LEN: usize = 8;
/// Largest data an IN transfer carries or a completion returns: the function controller's
/// own transfer limit (`usbfn_core::MAX_TRANSFER_LENGTH`).
pub const MAX_DATA_LEN: usize = 16 * 1024 * 1024;
/// Largest IOCTL input buffer (the biggest GenericUSBFn input, `USBFN_USB_STRING`, is 512).
pub const MAX_INPUT_LEN: usize = 4096;
/// Largest frame, header included.
pub const MAX_FRAME_LEN: usize = HEADER_LEN + REQUEST_FIXED + MAX_INPUT_LEN + MAX_DATA_LEN;
/// Requests one connection may have outstanding; more complete at once with
/// `STATUS_INSUFFICIENT_RESOURCES`.
pub const MAX_OUTSTANDING_REQUESTS: usize = 512;
/// Buffer bytes (input, IN data, OUT capacity) one connection may have outstanding; more
/// complete at once with `STATUS_INSUFFICIENT_RESOURCES`.
pub const MAX_BUFFERED_BYTES: usize = 64 * 1024 * 1024;

// HELLO announces both limits as u32 fields.
const _: () = assert!(MAX_FRAME_LEN <= u32::MAX as usize);
const _: () = assert!(MAX_OUTSTANDING_REQUESTS <= u32::MAX as usize);

/// Kind byte of [`Hello`].
pub const KIND_HELLO: u8 = 1;
/// Kind byte of [`Request`].
pub const KIND_REQUEST: u8 = 2;
/// Kind byte of [`Cancel`].
pub const KIND_CANCEL: u8 = 3;
/// Kind byte of [`Completion`].
pub const KIND_COMPLETION: u8 = 4;

/// Body bytes of a HELLO.
const HELLO_BODY: usize = 16;
/// Fixed body bytes of a REQUEST (before input and output data).
const REQUEST_FIXED: usize = 20;
/// Body bytes of a CANCEL.
const CANCEL_BODY: usize = 8;
/// Fixed body bytes of a COMPLETION (before output data).
const COMPLETION_FIXED: usize = 16;

/// The daemon's first frame on every connection: did the open succeed, and the limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// [`PROTOCOL_VERSION`].
    pub version: u32,
    /// `STATUS_SUCCESS`: the interface is open for this connection. Otherwise the open failed
    /// (`STATUS_SHARING_VIOLATION`: another service has it) and the daemon closes.
    pub status: NtStatus,
    /// The daemon's [`MAX_FRAME_LEN`].
    pub max_frame_len: u32,
    /// The daemon's [`MAX_OUTSTANDING_REQUESTS`].
    pub max_outstanding: u32,
}

/// One `DeviceIoControl` call, service → daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Chosen by the service; unique among its outstanding requests. Echoed in the completion.
    pub id: u64,
    /// `dwIoControlCode`.
    pub code: IoctlCode,
    /// `lpInBuffer` (at most [`MAX_INPUT_LEN`] bytes).
    pub input: Bytes,
    /// `nOutBufferSize`.
    pub output_length: u32,
    /// The output buffer's contents, carried only for `METHOD_IN_DIRECT` codes (the driver
    /// reads them: the data of an IN transfer, the BOOLEAN of SET_PIPE_STATE); otherwise
    /// empty.
    pub output: Bytes,
}

/// `CancelIoEx` of one outstanding request, service → daemon. It has no answer of its own:
/// the request completes (with `STATUS_CANCELLED` unless it finished first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cancel {
    /// The request's id.
    pub id: u64,
}

/// A request's completion, daemon → service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    /// The request's id.
    pub id: u64,
    /// The NTSTATUS.
    pub status: NtStatus,
    /// `lpBytesReturned`: output bytes, or for IN transfers the bytes sent.
    pub information: u32,
    /// Output bytes (at most the request's `output_length`; empty for `METHOD_IN_DIRECT`).
    pub output: Bytes,
}

/// A frame a service sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceFrame {
    /// A request.
    Request(Request),
    /// A cancel.
    Cancel(Cancel),
}

/// A frame the daemon sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DaemonFrame {
    /// The greeting.
    Hello(Hello),
    /// A completion.
    Completion(Completion),
}

fn kind_name(kind: u8) -> &'static str {
    match kind {
        KIND_HELLO => "HELLO",
        KIND_REQUEST => "REQUEST",
        KIND_CANCEL => "CANCEL",
        KIND_COMPLETION => "COMPLETION",
        _ => "unknown",
    }
}

fn put_header(out: &mut BytesMut, len: usize, kind: u8) -> Result<(), FrameError> {
    let len32 = u32::try_from(len)
        .ok()
        .filter(|_| len <= MAX_FRAME_LEN)
        .ok_or(FrameError::FrameTooLarge {
            len: len as u64,
            max: MAX_FRAME_LEN,
        })?;
    out.reserve(len);
    out.put_u32_le(len32);
    out.put_u8(kind);
    out.put_bytes(0, 3);
    Ok(())
}

fn data_len(field: &'static str, data: &[u8], max: usize) -> Result<u32, FrameError> {
    u32::try_from(data.len())
        .ok()
        .filter(|_| data.len() <= max)
        .ok_or(FrameError::DataTooLarge {
            field,
            len: data.len() as u64,
            max,
        })
}

impl Hello {
    /// A HELLO with this daemon's limits.
    pub fn new(status: NtStatus) -> Self {
        Hello {
            version: PROTOCOL_VERSION,
            status,
            // fits: both limits are constants asserted below u32::MAX (next to MAX_FRAME_LEN).
            max_frame_len: u32::try_from(MAX_FRAME_LEN).unwrap_or(u32::MAX),
            max_outstanding: u32::try_from(MAX_OUTSTANDING_REQUESTS).unwrap_or(u32::MAX),
        }
    }

    /// Append the frame to `out`.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), FrameError> {
        put_header(out, HEADER_LEN + HELLO_BODY, KIND_HELLO)?;
        out.put_u32_le(self.version);
        out.put_u32_le(self.status.0);
        out.put_u32_le(self.max_frame_len);
        out.put_u32_le(self.max_outstanding);
        Ok(())
    }
}

impl Request {
    /// Append the frame to `out`.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), FrameError> {
        let input_len = u32::try_from(self.input.len())
            .ok()
            .filter(|_| self.input.len() <= MAX_INPUT_LEN)
            .ok_or(FrameError::InputTooLarge {
                len: self.input.len() as u64,
                max: MAX_INPUT_LEN,
            })?;
        data_len("REQUEST output data", &self.output, MAX_DATA_LEN)?;
        let len = HEADER_LEN + REQUEST_FIXED + self.input.len() + self.output.len();
        put_header(out, len, KIND_REQUEST)?;
        out.put_u64_le(self.id);
        out.put_u32_le(self.code.0);
        out.put_u32_le(input_len);
        out.put_u32_le(self.output_length);
        out.put_slice(&self.input);
        out.put_slice(&self.output);
        Ok(())
    }
}

impl Cancel {
    /// Append the frame to `out`.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), FrameError> {
        put_header(out, HEADER_LEN + CANCEL_BODY, KIND_CANCEL)?;
        out.put_u64_le(self.id);
        Ok(())
    }
}

impl Completion {
    /// Append the frame to `out`.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), FrameError> {
        data_len("COMPLETION output", &self.output, MAX_DATA_LEN)?;
        let len = HEADER_LEN + COMPLETION_FIXED + self.output.len();
        put_header(out, len, KIND_COMPLETION)?;
        out.put_u64_le(self.id);
        out.put_u32_le(self.status.0);
        out.put_u32_le(self.information);
        out.put_slice(&self.output);
        Ok(())
    }
}

impl ServiceFrame {
    /// Append the frame to `out`.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), FrameError> {
        match self {
            ServiceFrame::Request(r) => r.encode(out),
            ServiceFrame::Cancel(c) => c.encode(out),
        }
    }

    /// Take one whole frame off the front of `buf` (the daemon's decoder). `Ok(None)`: more
    /// bytes are needed and `buf` is untouched.
    pub fn decode(buf: &mut BytesMut) -> Result<Option<Self>, FrameError> {
        let Some((kind, mut body)) = take_frame(buf)? else {
            return Ok(None);
        };
        let frame = match kind {
            KIND_REQUEST => {
                let id = body.get_u64_le();
                let code = IoctlCode(body.get_u32_le());
                let input_length = body.get_u32_le();
                let output_length = body.get_u32_le();
                let input_len = usize::try_from(input_length)
                    .ok()
                    .filter(|n| *n <= MAX_INPUT_LEN)
                    .ok_or(FrameError::InputTooLarge {
                        len: u64::from(input_length),
                        max: MAX_INPUT_LEN,
                    })?;
                if input_len > body.len() {
                    return Err(FrameError::InputOverrun {
                        input_length: input_len,
                        available: body.len(),
                    });
                }
                let input = body.split_to(input_len);
                data_len("REQUEST output data", &body, MAX_DATA_LEN)?;
                ServiceFrame::Request(Request {
                    id,
                    code,
                    input,
                    output_length,
                    output: body,
                })
            }
            KIND_CANCEL => ServiceFrame::Cancel(Cancel {
                id: body.get_u64_le(),
            }),
            _ => {
                return Err(FrameError::WrongDirection {
                    kind: kind_name(kind),
                    direction: "by the service",
                });
            }
        };
        Ok(Some(frame))
    }
}

impl DaemonFrame {
    /// Append the frame to `out`.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), FrameError> {
        match self {
            DaemonFrame::Hello(h) => h.encode(out),
            DaemonFrame::Completion(c) => c.encode(out),
        }
    }

    /// Take one whole frame off the front of `buf` (the service's decoder). `Ok(None)`: more
    /// bytes are needed and `buf` is untouched.
    pub fn decode(buf: &mut BytesMut) -> Result<Option<Self>, FrameError> {
        let Some((kind, mut body)) = take_frame(buf)? else {
            return Ok(None);
        };
        let frame = match kind {
            KIND_HELLO => DaemonFrame::Hello(Hello {
                version: body.get_u32_le(),
                status: NtStatus(body.get_u32_le()),
                max_frame_len: body.get_u32_le(),
                max_outstanding: body.get_u32_le(),
            }),
            KIND_COMPLETION => {
                let id = body.get_u64_le();
                let status = NtStatus(body.get_u32_le());
                let information = body.get_u32_le();
                data_len("COMPLETION output", &body, MAX_DATA_LEN)?;
                DaemonFrame::Completion(Completion {
                    id,
                    status,
                    information,
                    output: body,
                })
            }
            _ => {
                return Err(FrameError::WrongDirection {
                    kind: kind_name(kind),
                    direction: "by the daemon",
                });
            }
        };
        Ok(Some(frame))
    }
}

/// Check the header and split one whole frame off `buf`: its kind and its body, whose length
/// is at least the kind's fixed part (so the fixed fields can be read without checks).
fn take_frame(buf: &mut BytesMut) -> Result<Option<(u8, Bytes)>, FrameError> {
    let Some(len_bytes) = buf.get(..4) else {
        return Ok(None);
    };
    let mut len_field = [0u8; 4];
    len_field.copy_from_slice(len_bytes);
    let announced = u32::from_le_bytes(len_field);
    let len = usize::try_from(announced)
        .ok()
        .filter(|n| *n <= MAX_FRAME_LEN)
        .ok_or(FrameError::FrameTooLarge {
            len: u64::from(announced),
            max: MAX_FRAME_LEN,
        })?;
    if len < HEADER_LEN {
        return Err(FrameError::FrameTooShort {
            kind: "any",
            len,
            min: HEADER_LEN,
        });
    }
    let Some(header) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let kind = header[4];
    let name = kind_name(kind);
    let (min, exact) = match kind {
        KIND_HELLO => (HELLO_BODY, true),
        KIND_REQUEST => (REQUEST_FIXED, false),
        KIND_CANCEL => (CANCEL_BODY, true),
        KIND_COMPLETION => (COMPLETION_FIXED, false),
        _ => return Err(FrameError::UnknownKind { kind }),
    };
    if header[5..HEADER_LEN] != [0, 0, 0] {
        return Err(FrameError::ReservedNotZero { kind: name });
    }
    if len < HEADER_LEN + min {
        return Err(FrameError::FrameTooShort {
            kind: name,
            len,
            min: HEADER_LEN + min,
        });
    }
    if exact && len != HEADER_LEN + min {
        return Err(FrameError::FrameTooLong {
            kind: name,
            len,
            size: HEADER_LEN + min,
        });
    }
    if buf.len() < len {
        // Make room for the rest now, so the reader fills it without reallocating often.
        buf.reserve(len - buf.len());
        return Ok(None);
    }
    let mut frame = buf.split_to(len).freeze();
    frame.advance(HEADER_LEN);
    Ok(Some((kind, frame)))
}
