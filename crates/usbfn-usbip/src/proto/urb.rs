//! URB messages: CMD_SUBMIT, RET_SUBMIT, CMD_UNLINK, RET_UNLINK (48-byte headers).
//!
//! Each message type has `encode` (append to a `BytesMut`) and an incremental `decode`
//! (`Ok(None)` = need more bytes; on success the message is split off the buffer front).
//! Every length is checked against [`Limits`] as soon as the header is in, before the payload
//! is waited for or anything is allocated. Payloads are zero-copy slices of the read buffer.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::flags::{Direction, TransferFlags};
use super::op::need;
use super::{Limit, Limits, ProtoError};

/// Command code: submit a URB (client → server).
pub const CMD_SUBMIT: u32 = 1;
/// Command code: unlink (cancel) a URB (client → server).
pub const CMD_UNLINK: u32 = 2;
/// Command code: a URB completed (server → client).
pub const RET_SUBMIT: u32 = 3;
/// Command code: answer to CMD_UNLINK (server → client).
pub const RET_UNLINK: u32 = 4;

/// Length of every URB message header.
pub const HEADER_LEN: usize = 48;
/// Length of one [`IsoPacketDescriptor`] on the wire.
pub const ISO_PACKET_DESCRIPTOR_LEN: usize = 16;

/// Highest endpoint number a URB may address.
pub const MAX_ENDPOINT_NUMBER: u8 = 15;

/// The name of a URB command code (`"CMD_SUBMIT"`, ...), `None` for unknown codes.
pub const fn command_name(code: u32) -> Option<&'static str> {
    match code {
        CMD_SUBMIT => Some("CMD_SUBMIT"),
        CMD_UNLINK => Some("CMD_UNLINK"),
        RET_SUBMIT => Some("RET_SUBMIT"),
        RET_UNLINK => Some("RET_UNLINK"),
        _ => None,
    }
}

/// The code of the message at the front of `buf`, once its first 4 bytes are there.
pub fn peek_command(buf: &[u8]) -> Option<u32> {
    let mut b = buf.get(..4)?;
    Some(b.get_u32())
}

/// One isochronous packet descriptor (`struct usbip_iso_packet_descriptor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IsoPacketDescriptor {
    /// Offset of the packet in the transfer buffer.
    pub offset: u32,
    /// Packet length requested.
    pub length: u32,
    /// Bytes actually transferred (replies).
    pub actual_length: u32,
    /// Per-packet status, 0 or negative errno (replies).
    pub status: i32,
}

/// CMD_SUBMIT: the client submits a URB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdSubmit {
    /// Sequence number, echoed by the RET_SUBMIT.
    pub seqnum: u32,
    /// `busnum << 16 | devnum` of the imported device.
    pub devid: u32,
    /// Direction of the data stage.
    pub direction: Direction,
    /// Endpoint number (0..=15).
    pub ep: u8,
    /// URB flags.
    pub transfer_flags: TransferFlags,
    /// IN: bytes the host can take. OUT: bytes of `data`.
    pub transfer_buffer_length: u32,
    /// Isochronous start frame.
    pub start_frame: i32,
    /// Raw packet count: > 0 for isochronous URBs; 0 (Linux) or -1 (Windows) otherwise.
    pub number_of_packets: i32,
    /// Polling interval.
    pub interval: i32,
    /// Setup packet for control URBs (zeros otherwise), as USB sends it.
    pub setup: [u8; 8],
    /// OUT data (`transfer_buffer_length` bytes); empty for IN.
    pub data: Bytes,
    /// Isochronous descriptors (`number_of_packets` of them when positive).
    pub iso: Vec<IsoPacketDescriptor>,
}

/// RET_SUBMIT: the server reports a completed URB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetSubmit {
    /// Sequence number of the CMD_SUBMIT.
    pub seqnum: u32,
    /// 0 or a negative errno (see [`errno`](super::errno)).
    pub status: i32,
    /// Bytes transferred.
    pub actual_length: u32,
    /// Isochronous start frame.
    pub start_frame: i32,
    /// Raw packet count (echo of the CMD_SUBMIT's for isochronous URBs).
    pub number_of_packets: i32,
    /// Isochronous packets that failed.
    pub error_count: i32,
    /// IN data (`actual_length` bytes, iso packets packed without gaps); empty for OUT.
    pub data: Bytes,
    /// Isochronous descriptors.
    pub iso: Vec<IsoPacketDescriptor>,
}

/// CMD_UNLINK: the client cancels a URB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CmdUnlink {
    /// Sequence number of this unlink (echoed by RET_UNLINK).
    pub seqnum: u32,
    /// `busnum << 16 | devnum` of the imported device.
    pub devid: u32,
    /// Direction of the URB being cancelled.
    pub direction: Direction,
    /// Endpoint of the URB being cancelled.
    pub ep: u8,
    /// Sequence number of the URB being cancelled.
    pub unlink_seqnum: u32,
}

/// RET_UNLINK: the server answers a CMD_UNLINK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetUnlink {
    /// Sequence number of the CMD_UNLINK.
    pub seqnum: u32,
    /// `-ECONNRESET`: cancelled, no RET_SUBMIT will follow; 0: its RET_SUBMIT was already sent.
    pub status: i32,
}

/// What a RET_SUBMIT decoder must know about the CMD_SUBMIT it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubmitInfo {
    /// Direction of the URB (IN replies carry data).
    pub direction: Direction,
    /// Buffer length of the URB (bounds `actual_length`).
    pub transfer_buffer_length: u32,
    /// Raw packet count of the URB (bounds the reply's descriptors).
    pub number_of_packets: i32,
}

impl IsoPacketDescriptor {
    /// Appends the 16-byte descriptor.
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.put_u32(self.offset);
        dst.put_u32(self.length);
        dst.put_u32(self.actual_length);
        dst.put_i32(self.status);
    }

    /// Parses a 16-byte descriptor.
    pub fn parse(b: &[u8; ISO_PACKET_DESCRIPTOR_LEN]) -> IsoPacketDescriptor {
        let mut b = &b[..];
        IsoPacketDescriptor {
            offset: b.get_u32(),
            length: b.get_u32(),
            actual_length: b.get_u32(),
            status: b.get_i32(),
        }
    }
}

impl SubmitInfo {
    /// The information a client keeps about `cmd` until it is answered.
    pub fn of(cmd: &CmdSubmit) -> SubmitInfo {
        SubmitInfo {
            direction: cmd.direction,
            transfer_buffer_length: cmd.transfer_buffer_length,
            number_of_packets: cmd.number_of_packets,
        }
    }
}

impl CmdSubmit {
    /// Whether this is an isochronous URB (`number_of_packets > 0`).
    pub const fn is_iso(&self) -> bool {
        self.number_of_packets > 0
    }

    /// Bytes [`encode`](Self::encode) appends.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.data.len() + self.iso.len() * ISO_PACKET_DESCRIPTOR_LEN
    }

    /// Appends the message. Fails (appending nothing) when `data` or `iso` disagree with the
    /// header fields, or `transfer_buffer_length` does not fit the signed wire field.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), ProtoError> {
        self.encode_header(dst)?;
        dst.reserve(self.encoded_len() - HEADER_LEN);
        dst.put_slice(&self.data);
        self.encode_iso(dst);
        Ok(())
    }

    /// Appends only the 48-byte header of [`encode`](Self::encode)'s message, after the same
    /// checks, for a writer that sends `data` from its own buffer (no copy) and then
    /// [`encode_iso`](Self::encode_iso)'s bytes. On error nothing is appended.
    pub fn encode_header(&self, dst: &mut BytesMut) -> Result<(), ProtoError> {
        const M: &str = "CMD_SUBMIT";
        let tbl = wire_i32(M, "transfer_buffer_length", self.transfer_buffer_length)?;
        let data_expected = match self.direction {
            Direction::Out => self.transfer_buffer_length,
            Direction::In => 0,
        };
        check_count(M, "data bytes", self.data.len(), data_expected.into())?;
        check_count(
            M,
            "iso descriptors",
            self.iso.len(),
            iso_count(self.number_of_packets),
        )?;
        dst.reserve(HEADER_LEN);
        put_basic(
            dst,
            CMD_SUBMIT,
            self.seqnum,
            self.devid,
            self.direction.to_wire(),
            self.ep,
        );
        dst.put_u32(self.transfer_flags.0);
        dst.put_i32(tbl);
        dst.put_i32(self.start_frame);
        dst.put_i32(self.number_of_packets);
        dst.put_i32(self.interval);
        dst.put_slice(&self.setup);
        Ok(())
    }

    /// Appends the iso descriptors, which follow the data on the wire.
    pub fn encode_iso(&self, dst: &mut BytesMut) {
        for d in &self.iso {
            d.encode(dst);
        }
    }

    /// Decodes a CMD_SUBMIT from the front of `buf` (server side).
    pub fn decode(buf: &mut BytesMut, limits: &Limits) -> Result<Option<CmdSubmit>, ProtoError> {
        const M: &str = "CMD_SUBMIT";
        let Some(h) = Header::peek(buf) else {
            return need(buf, HEADER_LEN);
        };
        h.expect(CMD_SUBMIT, "CMD_SUBMIT")?;
        let direction = h.direction(M)?;
        let ep = h.ep(M)?;
        let tbl = non_negative(M, "transfer_buffer_length", h.word(1))?;
        check_limit(
            M,
            "transfer_buffer_length",
            tbl.into(),
            Limit::MaxTransferBuffer,
            limits.max_transfer_buffer,
        )?;
        let number_of_packets = h.word(3);
        let packets = iso_count(number_of_packets);
        check_limit(
            M,
            "number_of_packets",
            packets,
            Limit::MaxIsoPackets,
            limits.max_iso_packets,
        )?;
        let data_len = if direction.is_in() { 0 } else { tbl as usize };
        let total = message_len(data_len, packets);
        if buf.len() < total {
            return need(buf, total);
        }
        let iso = parse_iso(buf, HEADER_LEN + data_len, total);
        check_iso_bounds(M, &iso, tbl)?;
        let mut msg = buf.split_to(total);
        msg.advance(HEADER_LEN);
        Ok(Some(CmdSubmit {
            seqnum: h.seqnum,
            devid: h.devid,
            direction,
            ep,
            transfer_flags: TransferFlags(h.word(0) as u32),
            transfer_buffer_length: tbl,
            start_frame: h.word(2),
            number_of_packets,
            interval: h.word(4),
            setup: h.setup(),
            data: msg.split_to(data_len).freeze(),
            iso,
        }))
    }
}

impl RetSubmit {
    /// Whether this reply carries iso descriptors (`number_of_packets > 0`).
    pub const fn is_iso(&self) -> bool {
        self.number_of_packets > 0
    }

    /// Appends the message for a URB of `direction` (server side; devid, direction and ep
    /// are sent as 0). IN replies must carry exactly `actual_length` bytes of data, OUT
    /// replies none; `iso` must hold `number_of_packets` descriptors when that is positive;
    /// the status must be 0 or negative. On error nothing is appended.
    pub fn encode(&self, direction: Direction, dst: &mut BytesMut) -> Result<(), ProtoError> {
        self.encode_header(direction, dst)?;
        dst.reserve(self.data.len() + self.iso.len() * ISO_PACKET_DESCRIPTOR_LEN);
        dst.put_slice(&self.data);
        self.encode_iso(dst);
        Ok(())
    }

    /// Appends only the 48-byte header of [`encode`](Self::encode)'s message, after the same
    /// checks, for a writer that sends `data` from its own buffer (no copy) and then
    /// [`encode_iso`](Self::encode_iso)'s bytes. On error nothing is appended.
    pub fn encode_header(
        &self,
        direction: Direction,
        dst: &mut BytesMut,
    ) -> Result<(), ProtoError> {
        const M: &str = "RET_SUBMIT";
        let actual_length = wire_i32(M, "actual_length", self.actual_length)?;
        check_status(M, self.seqnum, self.status)?;
        let data_expected = if direction.is_in() {
            self.actual_length
        } else {
            0
        };
        check_count(M, "data bytes", self.data.len(), data_expected.into())?;
        check_count(
            M,
            "iso descriptors",
            self.iso.len(),
            iso_count(self.number_of_packets),
        )?;
        dst.reserve(HEADER_LEN);
        put_basic(dst, RET_SUBMIT, self.seqnum, 0, 0, 0);
        dst.put_i32(self.status);
        dst.put_i32(actual_length);
        dst.put_i32(self.start_frame);
        dst.put_i32(self.number_of_packets);
        dst.put_i32(self.error_count);
        dst.put_bytes(0, 8);
        Ok(())
    }

    /// Appends the iso descriptors, which follow the data on the wire (nothing for other
    /// transfer types).
    pub fn encode_iso(&self, dst: &mut BytesMut) {
        for d in &self.iso {
            d.encode(dst);
        }
    }

    /// Decodes a RET_SUBMIT answering the URB described by `submitted` (client side).
    ///
    /// Checks what the Linux host checks: `actual_length` within the URB's buffer, no more
    /// iso descriptors than submitted, iso `actual_length`s adding up to `actual_length`;
    /// plus a non-positive status. Descriptors are read only when the URB was isochronous.
    pub fn decode(
        buf: &mut BytesMut,
        submitted: &SubmitInfo,
        limits: &Limits,
    ) -> Result<Option<RetSubmit>, ProtoError> {
        const M: &str = "RET_SUBMIT";
        let Some(h) = Header::peek(buf) else {
            return need(buf, HEADER_LEN);
        };
        h.expect(RET_SUBMIT, "RET_SUBMIT")?;
        let status = h.word(0);
        check_status(M, h.seqnum, status)?;
        let actual_length = non_negative(M, "actual_length", h.word(1))?;
        if actual_length > submitted.transfer_buffer_length {
            return Err(ProtoError::ActualLengthExceedsBuffer {
                seqnum: h.seqnum,
                actual_length,
                transfer_buffer_length: submitted.transfer_buffer_length,
            });
        }
        check_limit(
            M,
            "actual_length",
            actual_length.into(),
            Limit::MaxTransferBuffer,
            limits.max_transfer_buffer,
        )?;
        let number_of_packets = h.word(3);
        let packets = if submitted.number_of_packets > 0 {
            if number_of_packets > submitted.number_of_packets {
                return Err(ProtoError::IsoPacketCountMismatch {
                    seqnum: h.seqnum,
                    returned: number_of_packets,
                    submitted: submitted.number_of_packets,
                });
            }
            iso_count(number_of_packets)
        } else {
            0
        };
        check_limit(
            M,
            "number_of_packets",
            packets,
            Limit::MaxIsoPackets,
            limits.max_iso_packets,
        )?;
        let data_len = if submitted.direction.is_in() {
            actual_length as usize
        } else {
            0
        };
        let total = message_len(data_len, packets);
        if buf.len() < total {
            return need(buf, total);
        }
        let iso = parse_iso(buf, HEADER_LEN + data_len, total);
        if !iso.is_empty() {
            let sum: u64 = iso.iter().map(|d| u64::from(d.actual_length)).sum();
            if sum != u64::from(actual_length) {
                return Err(ProtoError::IsoActualLengthMismatch {
                    message: M,
                    seqnum: h.seqnum,
                    sum,
                    actual_length,
                });
            }
        }
        let mut msg = buf.split_to(total);
        msg.advance(HEADER_LEN);
        Ok(Some(RetSubmit {
            seqnum: h.seqnum,
            status,
            actual_length,
            start_frame: h.word(2),
            number_of_packets,
            error_count: h.word(4),
            data: msg.split_to(data_len).freeze(),
            iso,
        }))
    }
}

impl CmdUnlink {
    /// Appends the message.
    pub fn encode(&self, dst: &mut BytesMut) {
        put_basic(
            dst,
            CMD_UNLINK,
            self.seqnum,
            self.devid,
            self.direction.to_wire(),
            self.ep,
        );
        dst.put_u32(self.unlink_seqnum);
        dst.put_bytes(0, 24);
    }

    /// Decodes a CMD_UNLINK from the front of `buf` (server side).
    pub fn decode(buf: &mut BytesMut) -> Result<Option<CmdUnlink>, ProtoError> {
        const M: &str = "CMD_UNLINK";
        let Some(h) = Header::peek(buf) else {
            return need(buf, HEADER_LEN);
        };
        h.expect(CMD_UNLINK, "CMD_UNLINK")?;
        let unlink = CmdUnlink {
            seqnum: h.seqnum,
            devid: h.devid,
            direction: h.direction(M)?,
            ep: h.ep(M)?,
            unlink_seqnum: h.word(0) as u32,
        };
        buf.advance(HEADER_LEN);
        Ok(Some(unlink))
    }
}

impl RetUnlink {
    /// Appends the message (server side; devid, direction and ep are sent as 0). A positive
    /// status is refused.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), ProtoError> {
        check_status("RET_UNLINK", self.seqnum, self.status)?;
        put_basic(dst, RET_UNLINK, self.seqnum, 0, 0, 0);
        dst.put_i32(self.status);
        dst.put_bytes(0, 24);
        Ok(())
    }

    /// Decodes a RET_UNLINK from the front of `buf` (client side).
    pub fn decode(buf: &mut BytesMut) -> Result<Option<RetUnlink>, ProtoError> {
        let Some(h) = Header::peek(buf) else {
            return need(buf, HEADER_LEN);
        };
        h.expect(RET_UNLINK, "RET_UNLINK")?;
        let status = h.word(0);
        check_status("RET_UNLINK", h.seqnum, status)?;
        buf.advance(HEADER_LEN);
        Ok(Some(RetUnlink {
            seqnum: h.seqnum,
            status,
        }))
    }
}

/// The 48-byte header, split into the basic part and the 28 command-specific bytes.
#[derive(Debug, Clone, Copy)]
struct Header {
    command: u32,
    seqnum: u32,
    devid: u32,
    direction: u32,
    ep: u32,
    /// Bytes 20..48.
    rest: [u8; 28],
}

impl Header {
    fn peek(buf: &[u8]) -> Option<Header> {
        let mut b = buf.get(..HEADER_LEN)?;
        let (command, seqnum, devid, direction, ep) = (
            b.get_u32(),
            b.get_u32(),
            b.get_u32(),
            b.get_u32(),
            b.get_u32(),
        );
        let rest = b.try_into().ok()?;
        Some(Header {
            command,
            seqnum,
            devid,
            direction,
            ep,
            rest,
        })
    }

    /// The `i`-th big-endian 32-bit word after the basic part (0..=6).
    fn word(&self, i: usize) -> i32 {
        match self.rest.get(i * 4..i * 4 + 4) {
            Some(&[a, b, c, d]) => i32::from_be_bytes([a, b, c, d]),
            _ => 0, // callers pass constant indexes 0..=4
        }
    }

    /// The setup packet: bytes 40..48 of the header.
    fn setup(&self) -> [u8; 8] {
        let mut s = [0; 8];
        s.copy_from_slice(&self.rest[20..28]);
        s
    }

    fn expect(&self, code: u32, expected: &'static str) -> Result<(), ProtoError> {
        if self.command == code {
            return Ok(());
        }
        match command_name(self.command) {
            Some(name) => Err(ProtoError::UnexpectedCommand {
                code: self.command,
                name,
                expected,
            }),
            None => Err(ProtoError::UnknownCommand { code: self.command }),
        }
    }

    fn direction(&self, message: &'static str) -> Result<Direction, ProtoError> {
        Direction::from_wire(self.direction).ok_or(ProtoError::InvalidDirection {
            message,
            value: self.direction,
        })
    }

    fn ep(&self, message: &'static str) -> Result<u8, ProtoError> {
        match u8::try_from(self.ep) {
            Ok(ep) if ep <= MAX_ENDPOINT_NUMBER => Ok(ep),
            _ => Err(ProtoError::InvalidEndpoint {
                message,
                value: self.ep,
            }),
        }
    }
}

fn put_basic(dst: &mut BytesMut, command: u32, seqnum: u32, devid: u32, dir: u32, ep: u8) {
    dst.put_u32(command);
    dst.put_u32(seqnum);
    dst.put_u32(devid);
    dst.put_u32(dir);
    dst.put_u32(ep.into());
}

/// Descriptors carried for a raw `number_of_packets`: the count when positive, else none.
fn iso_count(number_of_packets: i32) -> u64 {
    u64::try_from(number_of_packets).unwrap_or(0)
}

/// Bytes of a message with `data_len` payload bytes and `packets` iso descriptors. Callers
/// have checked both against [`Limits`]; saturating keeps absurd limits from wrapping.
fn message_len(data_len: usize, packets: u64) -> usize {
    // saturates on purpose: `packets` was checked against Limits::max_iso_packets, so only an
    // absurd limit on a 32-bit target gets here, and a saturated length never wraps short.
    let packets = usize::try_from(packets).unwrap_or(usize::MAX);
    HEADER_LEN
        .saturating_add(data_len)
        .saturating_add(packets.saturating_mul(ISO_PACKET_DESCRIPTOR_LEN))
}

/// Parses the descriptors in `at..end`; the caller has checked they are all buffered.
fn parse_iso(buf: &[u8], at: usize, end: usize) -> Vec<IsoPacketDescriptor> {
    let Some(bytes) = buf.get(at..end) else {
        return Vec::new();
    };
    bytes
        .chunks_exact(ISO_PACKET_DESCRIPTOR_LEN)
        .filter_map(|c| c.try_into().ok())
        .map(IsoPacketDescriptor::parse)
        .collect()
}

fn check_iso_bounds(
    message: &'static str,
    iso: &[IsoPacketDescriptor],
    transfer_buffer_length: u32,
) -> Result<(), ProtoError> {
    let tbl = u64::from(transfer_buffer_length);
    for (index, d) in iso.iter().enumerate() {
        if u64::from(d.offset) + u64::from(d.length) > tbl {
            return Err(ProtoError::IsoPacketOutOfBounds {
                message,
                index,
                offset: d.offset,
                length: d.length,
                transfer_buffer_length,
            });
        }
    }
    let sum: u64 = iso.iter().map(|d| u64::from(d.length)).sum();
    if sum > tbl {
        return Err(ProtoError::IsoLengthsExceedBuffer {
            message,
            sum,
            transfer_buffer_length,
        });
    }
    Ok(())
}

fn non_negative(message: &'static str, field: &'static str, value: i32) -> Result<u32, ProtoError> {
    u32::try_from(value).map_err(|_| ProtoError::NegativeLength {
        message,
        field,
        value,
    })
}

fn check_limit(
    message: &'static str,
    field: &'static str,
    value: u64,
    limit: Limit,
    max: usize,
) -> Result<(), ProtoError> {
    let max = max as u64;
    if value > max {
        return Err(ProtoError::LimitExceeded {
            message,
            field,
            value,
            limit,
            max,
        });
    }
    Ok(())
}

fn check_status(message: &'static str, seqnum: u32, status: i32) -> Result<(), ProtoError> {
    if status > 0 {
        return Err(ProtoError::PositiveStatus {
            message,
            seqnum,
            status,
        });
    }
    Ok(())
}

fn check_count(
    message: &'static str,
    what: &'static str,
    actual: usize,
    expected: u64,
) -> Result<(), ProtoError> {
    let actual = actual as u64;
    if actual != expected {
        return Err(ProtoError::Inconsistent {
            message,
            what,
            actual,
            expected,
        });
    }
    Ok(())
}

fn wire_i32(message: &'static str, field: &'static str, value: u32) -> Result<i32, ProtoError> {
    i32::try_from(value).map_err(|_| ProtoError::LimitExceeded {
        message,
        field,
        value: value.into(),
        limit: Limit::WireI32,
        max: i32::MAX as u64,
    })
}

#[cfg(test)]
#[path = "urb_tests.rs"]
mod tests;
