//! `usbip_server` and `usbip_client`: the USB/IP stream decoders, fed in chunks.
//!
//! Input layout (both targets): one control byte, then the bytes on the wire.
//!
//! * bits 0..=5: chunk size selector: the stream arrives `1 + 7 * (bits)` bytes at a time
//!   (1 to 442), as TCP might cut it;
//! * bit 6: start in the URB phase (skip the op message);
//! * bit 7: small limits ([`SMALL`]) instead of the defaults.
//!
//! Checks: decoders never panic; while a message is incomplete the buffer never grows
//! past what the limits allow; every decoded message re-encodes and decodes to itself and
//! obeys the limits.

use bytes::BytesMut;
use usbfn_usbip::proto::{
    ClientCodec, CmdSubmit, CmdUnlink, Command, Direction, Limits, OpReply, OpRequest, Reply,
    ServerCodec, TransferFlags,
};

/// The limits selected by bit 7: small enough that the fuzzer hits every one.
pub const SMALL: Limits = Limits {
    max_transfer_buffer: 4096,
    max_iso_packets: 8,
    max_outstanding_urbs: 16,
    max_devices: 4,
};

/// Control byte bits.
pub const URB_PHASE: u8 = 0x40;
/// Control byte bit: [`SMALL`] limits.
pub const SMALL_LIMITS: u8 = 0x80;

/// Longest op-phase message a client sends: OP_REQ_IMPORT (header and busid).
const MAX_OP_REQUEST: usize = 8 + 32;

/// The rest of a stream, delivered `chunk` bytes at a time.
pub(crate) struct Feed<'a> {
    pub(crate) rest: &'a [u8],
    pub(crate) chunk: usize,
}

impl Feed<'_> {
    /// Move the next chunk into `buf`; false when the stream is over.
    pub(crate) fn more(&mut self, buf: &mut BytesMut) -> bool {
        if self.rest.is_empty() {
            return false;
        }
        let n = self.chunk.min(self.rest.len());
        buf.extend_from_slice(&self.rest[..n]);
        self.rest = &self.rest[n..];
        true
    }
}

fn setup(data: &[u8]) -> Option<(u8, Limits, Feed<'_>)> {
    let (&control, rest) = data.split_first()?;
    let limits = if control & SMALL_LIMITS != 0 {
        SMALL
    } else {
        Limits::DEFAULT
    };
    let chunk = 1 + 7 * usize::from(control & 0x3f);
    Some((control, limits, Feed { rest, chunk }))
}

/// Bound on a buffer holding an incomplete message of at most `max` bytes: what the decoder
/// reserved plus what one read appends, with room for `BytesMut`'s growth policy.
pub(crate) fn check_capacity(buf: &BytesMut, max: usize, chunk: usize) {
    let bound = 2 * (max + chunk) + 64;
    assert!(
        buf.capacity() <= bound,
        "buffer of {} bytes holding a partial message (largest allowed {max}): capacity {}",
        buf.len(),
        buf.capacity()
    );
}

/// A host's bytes as the server sees them.
pub fn server_stream(data: &[u8]) {
    let Some((control, limits, mut feed)) = setup(data) else {
        return;
    };
    let mut buf = BytesMut::new();
    if control & URB_PHASE == 0 {
        loop {
            match OpRequest::decode(&mut buf) {
                Err(_) => return,
                Ok(Some(req)) => {
                    let mut again = BytesMut::new();
                    req.encode(&mut again);
                    assert_eq!(
                        OpRequest::decode(&mut again).ok().flatten(),
                        Some(req.clone())
                    );
                    assert!(again.is_empty());
                    if req == OpRequest::Devlist {
                        return; // the server answers and closes
                    }
                    break;
                }
                Ok(None) => {
                    check_capacity(&buf, MAX_OP_REQUEST, feed.chunk);
                    if !feed.more(&mut buf) {
                        return;
                    }
                }
            }
        }
    }
    let mut codec = ServerCodec::new(limits);
    loop {
        match codec.decode(&mut buf) {
            Err(_) => return,
            Ok(Some(Command::Submit(cmd))) => check_submit(&cmd, &limits),
            Ok(Some(Command::Unlink(cmd))) => check_unlink(&cmd),
            Ok(None) => {
                check_capacity(&buf, limits.max_message_len(), feed.chunk);
                if !feed.more(&mut buf) {
                    return;
                }
            }
        }
    }
}

fn check_submit(cmd: &CmdSubmit, limits: &Limits) {
    assert!(cmd.ep <= 15, "endpoint {}", cmd.ep);
    assert!(cmd.transfer_buffer_length as usize <= limits.max_transfer_buffer);
    let data = if cmd.direction == Direction::Out {
        cmd.transfer_buffer_length as usize
    } else {
        0
    };
    assert_eq!(cmd.data.len(), data, "OUT data length");
    let packets = usize::try_from(cmd.number_of_packets).unwrap_or(0);
    assert_eq!(cmd.iso.len(), packets, "iso descriptors");
    assert!(packets <= limits.max_iso_packets);
    let mut wire = BytesMut::new();
    cmd.encode(&mut wire)
        .expect("a decoded CMD_SUBMIT re-encodes");
    let again = ServerCodec::new(*limits)
        .decode(&mut wire)
        .expect("re-decodes")
        .expect("whole");
    assert_eq!(again, Command::Submit(cmd.clone()));
    assert!(wire.is_empty());
}

fn check_unlink(cmd: &CmdUnlink) {
    let mut wire = BytesMut::new();
    cmd.encode(&mut wire);
    let again = ServerCodec::new(Limits::DEFAULT)
        .decode(&mut wire)
        .expect("re-decodes")
        .expect("whole");
    assert_eq!(again, Command::Unlink(*cmd));
}

/// The URBs the client has outstanding when its input starts, one per `mask` bit pattern:
/// seqnum `i + 1`, IN or OUT, bulk or isochronous.
pub fn client_urbs() -> Vec<CmdSubmit> {
    (0..8u32)
        .map(|i| {
            let dir_in = i % 2 == 0;
            let iso = i >= 4;
            let len = 64 << i;
            CmdSubmit {
                seqnum: i + 1,
                devid: 0x0001_0002,
                direction: if dir_in {
                    Direction::In
                } else {
                    Direction::Out
                },
                ep: 1 + (i % 3) as u8,
                transfer_flags: if dir_in {
                    TransferFlags::DIR_IN
                } else {
                    TransferFlags::NONE
                },
                transfer_buffer_length: len,
                start_frame: 0,
                number_of_packets: if iso { 4 } else { 0 },
                interval: 0,
                setup: [0; 8],
                data: if dir_in {
                    bytes::Bytes::new()
                } else {
                    bytes::Bytes::from(vec![0xa5; len as usize])
                },
                iso: if iso {
                    (0..4)
                        .map(|k| usbfn_usbip::proto::IsoPacketDescriptor {
                            offset: k * (len / 4),
                            length: len / 4,
                            actual_length: 0,
                            status: 0,
                        })
                        .collect()
                } else {
                    Vec::new()
                },
            }
        })
        .collect()
}

/// Seqnum of the unlink the client has outstanding for URB `n` (URBs 1 and 2 have one).
pub const UNLINK_BASE: u32 = 100;

/// A server's bytes as our client sees them, after it submitted [`client_urbs`] and
/// unlinked URBs 1 and 2.
pub fn client_stream(data: &[u8]) {
    let Some((control, limits, mut feed)) = setup(data) else {
        return;
    };
    let mut buf = BytesMut::new();
    if control & URB_PHASE == 0 {
        loop {
            match OpReply::decode(&mut buf, &limits) {
                Err(_) => return,
                Ok(Some(reply)) => {
                    if let OpReply::Devlist { devices, .. } = &reply {
                        assert!(devices.len() <= limits.max_devices);
                        for d in devices {
                            assert_eq!(d.interfaces.len(), usize::from(d.device.b_num_interfaces));
                        }
                    }
                    let mut again = BytesMut::new();
                    if reply.encode(&mut again).is_ok() {
                        assert_eq!(
                            OpReply::decode(&mut again, &limits).ok().flatten(),
                            Some(reply.clone())
                        );
                    }
                    if !matches!(
                        reply,
                        OpReply::Import {
                            device: Some(_),
                            ..
                        }
                    ) {
                        return;
                    }
                    break;
                }
                Ok(None) => {
                    // An OP_REP_DEVLIST is bounded by max_devices blocks of 312 + 255 * 4.
                    let max = 12 + limits.max_devices * (312 + 255 * 4);
                    check_capacity(&buf, max, feed.chunk);
                    if !feed.more(&mut buf) {
                        return;
                    }
                }
            }
        }
    }
    let mut codec = ClientCodec::new(Limits {
        max_outstanding_urbs: 64,
        ..limits
    });
    let urbs = client_urbs();
    let mut scratch = BytesMut::new();
    for cmd in &urbs {
        // Under SMALL limits the larger URBs are refused, as a real client would.
        let _ = codec.encode_submit(cmd, &mut scratch);
    }
    for n in [1u32, 2] {
        let unlink = CmdUnlink {
            seqnum: UNLINK_BASE + n,
            devid: 0x0001_0002,
            direction: Direction::In,
            ep: 1,
            unlink_seqnum: n,
        };
        let _ = codec.encode_unlink(&unlink, &mut scratch);
    }
    loop {
        let before = codec.outstanding();
        match codec.decode(&mut buf) {
            Err(_) => return,
            Ok(Some(Reply::Submit(ret))) => {
                let Some(cmd) = urbs.iter().find(|c| c.seqnum == ret.seqnum) else {
                    panic!(
                        "RET_SUBMIT for seqnum {} accepted without a URB",
                        ret.seqnum
                    );
                };
                assert!(ret.status <= 0);
                assert!(ret.actual_length <= cmd.transfer_buffer_length);
                if cmd.direction == Direction::In {
                    assert_eq!(ret.data.len(), ret.actual_length as usize);
                } else {
                    assert!(ret.data.is_empty());
                }
                assert!(ret.iso.len() <= cmd.iso.len());
                assert_eq!(codec.outstanding() + 1, before);
            }
            Ok(Some(Reply::Unlink { ret, cancelled, .. })) => {
                if cancelled {
                    assert_eq!(codec.outstanding() + 1, before);
                    assert_ne!(ret.status, 0);
                } else {
                    assert_eq!(ret.status, 0);
                }
            }
            Ok(None) => {
                check_capacity(&buf, limits.max_message_len(), feed.chunk);
                if !feed.more(&mut buf) {
                    return;
                }
            }
        }
    }
}
