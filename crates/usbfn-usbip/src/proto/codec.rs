//! Stream codecs for the URB phase: [`ServerCodec`] and [`ClientCodec`].
//!
//! Both follow `tokio_util::codec::Decoder` semantics: `decode(&mut buf)` returns `Ok(None)`
//! while the message at the front of `buf` is incomplete (reserving room for it once its size
//! is known and checked), `Ok(Some(msg))` after splitting a whole message off, and `Err` when
//! the stream is broken (after which the connection should be dropped).

use std::collections::HashMap;

use bytes::BytesMut;

use super::urb::{
    CMD_SUBMIT, CMD_UNLINK, CmdSubmit, CmdUnlink, RET_SUBMIT, RET_UNLINK, RetSubmit, RetUnlink,
    SubmitInfo, command_name, peek_command,
};
use super::{Direction, errno};
use super::{Limit, Limits, ProtoError};

/// A message the server receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// CMD_SUBMIT.
    Submit(CmdSubmit),
    /// CMD_UNLINK.
    Unlink(CmdUnlink),
}

/// A message the client receives, with what it means for the URB it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// RET_SUBMIT: URB `ret.seqnum` completed.
    Submit(RetSubmit),
    /// RET_UNLINK for the CMD_UNLINK `ret.seqnum`, which targeted URB `unlink_seqnum`.
    Unlink {
        /// The reply.
        ret: RetUnlink,
        /// The URB the CMD_UNLINK targeted.
        unlink_seqnum: u32,
        /// Whether that URB was still pending and is now given back with `ret.status`
        /// (no RET_SUBMIT will come for it). `false` when its RET_SUBMIT already arrived.
        cancelled: bool,
    },
}

/// Server side of the URB phase: decodes [`Command`]s, encodes replies.
///
/// Stateless apart from its [`Limits`]: the server, which owns URB state, enforces
/// `max_outstanding_urbs` and remembers each URB's direction for [`encode_ret_submit`].
///
/// [`encode_ret_submit`]: ServerCodec::encode_ret_submit
#[doc(alias = "UrbDecoder")]
#[derive(Debug, Clone, Default)]
pub struct ServerCodec {
    limits: Limits,
}

/// Client side of the URB phase: encodes commands, decodes [`Reply`]s.
///
/// It remembers every URB it encoded until that URB is answered, because a RET_SUBMIT's
/// layout depends on the CMD_SUBMIT (IN replies carry data; iso replies carry descriptors),
/// and so it can detect what the Linux host treats as fatal: a reply for an unknown seqnum,
/// an `actual_length` beyond the URB's buffer, a RET_UNLINK that contradicts a RET_SUBMIT.
#[derive(Debug, Clone, Default)]
pub struct ClientCodec {
    limits: Limits,
    /// Outstanding URBs by seqnum.
    submitted: HashMap<u32, SubmitInfo>,
    /// Outstanding unlinks: unlink seqnum → seqnum of the URB it targets.
    unlinks: HashMap<u32, u32>,
}

impl ServerCodec {
    /// A codec enforcing `limits`.
    pub fn new(limits: Limits) -> ServerCodec {
        ServerCodec { limits }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Decodes the next command from the front of `buf`; `Ok(None)` means "need more".
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Command>, ProtoError> {
        let Some(code) = peek_command(buf) else {
            return super::op::need(buf, super::urb::HEADER_LEN);
        };
        match code {
            CMD_SUBMIT => Ok(CmdSubmit::decode(buf, &self.limits)?.map(Command::Submit)),
            CMD_UNLINK => Ok(CmdUnlink::decode(buf)?.map(Command::Unlink)),
            RET_SUBMIT | RET_UNLINK => Err(ProtoError::UnexpectedCommand {
                code,
                name: command_name(code).unwrap_or("?"),
                expected: "CMD_SUBMIT or CMD_UNLINK",
            }),
            code => Err(ProtoError::UnknownCommand { code }),
        }
    }

    /// Appends a RET_SUBMIT for a URB of `direction` (see [`RetSubmit::encode`]).
    pub fn encode_ret_submit(
        &mut self,
        ret: &RetSubmit,
        direction: Direction,
        dst: &mut BytesMut,
    ) -> Result<(), ProtoError> {
        ret.encode(direction, dst)
    }

    /// Appends a RET_UNLINK.
    pub fn encode_ret_unlink(
        &mut self,
        ret: &RetUnlink,
        dst: &mut BytesMut,
    ) -> Result<(), ProtoError> {
        ret.encode(dst)
    }
}

impl ClientCodec {
    /// A codec enforcing `limits` (including `max_outstanding_urbs` on encode).
    pub fn new(limits: Limits) -> ClientCodec {
        ClientCodec {
            limits,
            submitted: HashMap::new(),
            unlinks: HashMap::new(),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// URBs submitted and not yet answered.
    pub fn outstanding(&self) -> usize {
        self.submitted.len()
    }

    /// Whether `seqnum` is in use by an outstanding URB or unlink.
    pub fn is_outstanding(&self, seqnum: u32) -> bool {
        self.submitted.contains_key(&seqnum) || self.unlinks.contains_key(&seqnum)
    }

    /// Appends a CMD_SUBMIT and remembers the URB until it is answered. Refuses a seqnum
    /// still in use, more than `max_outstanding_urbs`, and lengths beyond the limits.
    pub fn encode_submit(&mut self, cmd: &CmdSubmit, dst: &mut BytesMut) -> Result<(), ProtoError> {
        self.check_submit(cmd)?;
        cmd.encode(dst)?;
        self.submitted.insert(cmd.seqnum, SubmitInfo::of(cmd));
        Ok(())
    }

    /// Like [`encode_submit`](Self::encode_submit), but appends only the 48-byte header: the
    /// caller sends `cmd.data` and then [`CmdSubmit::encode_iso`]'s bytes right after it
    /// (a vectored writer, without copying the data).
    pub fn encode_submit_header(
        &mut self,
        cmd: &CmdSubmit,
        dst: &mut BytesMut,
    ) -> Result<(), ProtoError> {
        self.check_submit(cmd)?;
        cmd.encode_header(dst)?;
        self.submitted.insert(cmd.seqnum, SubmitInfo::of(cmd));
        Ok(())
    }

    fn check_submit(&self, cmd: &CmdSubmit) -> Result<(), ProtoError> {
        const M: &str = "CMD_SUBMIT";
        if self.is_outstanding(cmd.seqnum) {
            return Err(ProtoError::DuplicateSeqnum {
                message: M,
                seqnum: cmd.seqnum,
            });
        }
        if self.submitted.len() >= self.limits.max_outstanding_urbs {
            return Err(ProtoError::LimitExceeded {
                message: M,
                field: "outstanding URBs",
                value: self.submitted.len() as u64 + 1,
                limit: Limit::MaxOutstandingUrbs,
                max: self.limits.max_outstanding_urbs as u64,
            });
        }
        if cmd.transfer_buffer_length as u64 > self.limits.max_transfer_buffer as u64 {
            return Err(ProtoError::LimitExceeded {
                message: M,
                field: "transfer_buffer_length",
                value: cmd.transfer_buffer_length.into(),
                limit: Limit::MaxTransferBuffer,
                max: self.limits.max_transfer_buffer as u64,
            });
        }
        if cmd.iso.len() > self.limits.max_iso_packets {
            return Err(ProtoError::LimitExceeded {
                message: M,
                field: "number_of_packets",
                value: cmd.iso.len() as u64,
                limit: Limit::MaxIsoPackets,
                max: self.limits.max_iso_packets as u64,
            });
        }
        Ok(())
    }

    /// Appends a CMD_UNLINK and remembers which URB it targets. Refuses a seqnum in use.
    pub fn encode_unlink(&mut self, cmd: &CmdUnlink, dst: &mut BytesMut) -> Result<(), ProtoError> {
        if self.is_outstanding(cmd.seqnum) {
            return Err(ProtoError::DuplicateSeqnum {
                message: "CMD_UNLINK",
                seqnum: cmd.seqnum,
            });
        }
        cmd.encode(dst);
        self.unlinks.insert(cmd.seqnum, cmd.unlink_seqnum);
        Ok(())
    }

    /// Decodes the next reply from the front of `buf`; `Ok(None)` means "need more".
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Reply>, ProtoError> {
        let Some(code) = peek_command(buf) else {
            return super::op::need(buf, super::urb::HEADER_LEN);
        };
        match code {
            RET_SUBMIT => self.decode_ret_submit(buf),
            RET_UNLINK => self.decode_ret_unlink(buf),
            CMD_SUBMIT | CMD_UNLINK => Err(ProtoError::UnexpectedCommand {
                code,
                name: command_name(code).unwrap_or("?"),
                expected: "RET_SUBMIT or RET_UNLINK",
            }),
            code => Err(ProtoError::UnknownCommand { code }),
        }
    }

    fn decode_ret_submit(&mut self, buf: &mut BytesMut) -> Result<Option<Reply>, ProtoError> {
        let seqnum = match buf.get(4..8) {
            Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
            _ => return super::op::need(buf, super::urb::HEADER_LEN),
        };
        let Some(info) = self.submitted.get(&seqnum) else {
            return Err(ProtoError::UnknownSeqnum {
                message: "RET_SUBMIT",
                seqnum,
            });
        };
        let Some(ret) = RetSubmit::decode(buf, info, &self.limits)? else {
            return Ok(None);
        };
        self.submitted.remove(&seqnum);
        Ok(Some(Reply::Submit(ret)))
    }

    fn decode_ret_unlink(&mut self, buf: &mut BytesMut) -> Result<Option<Reply>, ProtoError> {
        let Some(ret) = RetUnlink::decode(buf)? else {
            return Ok(None);
        };
        let Some(unlink_seqnum) = self.unlinks.remove(&ret.seqnum) else {
            return Err(ProtoError::UnknownSeqnum {
                message: "RET_UNLINK",
                seqnum: ret.seqnum,
            });
        };
        let pending = self.submitted.contains_key(&unlink_seqnum);
        // Non-zero status: the URB is given back now and never gets a RET_SUBMIT, so it must
        // still be pending. Zero: its RET_SUBMIT went out first, so it must be gone.
        if pending == (ret.status == 0) {
            return Err(ProtoError::UnlinkStatusMismatch {
                seqnum: ret.seqnum,
                status: ret.status,
                unlink_seqnum,
                already_completed: !pending,
            });
        }
        if pending {
            self.submitted.remove(&unlink_seqnum);
            if ret.status != -errno::ECONNRESET {
                tracing::debug!(
                    seqnum = ret.seqnum,
                    unlink_seqnum,
                    status = ret.status,
                    "RET_UNLINK with a status other than -ECONNRESET"
                );
            }
        }
        Ok(Some(Reply::Unlink {
            ret,
            unlink_seqnum,
            cancelled: pending,
        }))
    }
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
