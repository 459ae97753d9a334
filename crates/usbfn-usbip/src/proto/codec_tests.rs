//! Stream tests for the codecs, including the no-panic / bounded-allocation property.
#![allow(clippy::cast_possible_truncation, reason = "test lengths are small")]

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::proto::{IsoPacketDescriptor, TransferFlags};
use crate::proto::{OpReply, OpRequest};

fn submit(seqnum: u32, direction: Direction, len: u32) -> CmdSubmit {
    CmdSubmit {
        seqnum,
        devid: 0x0001_0002,
        direction,
        ep: 1,
        transfer_flags: TransferFlags::NONE,
        transfer_buffer_length: len,
        start_frame: 0,
        number_of_packets: 0,
        interval: 0,
        setup: [0; 8],
        data: match direction {
            Direction::Out => Bytes::from(vec![0x5a; len as usize]),
            Direction::In => Bytes::new(),
        },
        iso: vec![],
    }
}

fn ret(seqnum: u32, status: i32, data: &'static [u8]) -> RetSubmit {
    RetSubmit {
        seqnum,
        status,
        actual_length: data.len() as u32,
        start_frame: 0,
        number_of_packets: 0,
        error_count: 0,
        data: Bytes::from_static(data),
        iso: vec![],
    }
}

fn unlink(seqnum: u32, target: u32) -> CmdUnlink {
    CmdUnlink {
        seqnum,
        devid: 0x0001_0002,
        direction: Direction::In,
        ep: 1,
        unlink_seqnum: target,
    }
}

fn ret_unlink_bytes(seqnum: u32, status: i32) -> BytesMut {
    let mut b = BytesMut::new();
    RetUnlink { seqnum, status }.encode(&mut b).unwrap();
    b
}

#[test]
fn server_decodes_a_stream_fed_byte_by_byte() {
    let mut client = ClientCodec::default();
    let mut wire = BytesMut::new();
    let cmds = [
        submit(1, Direction::Out, 3),
        submit(2, Direction::In, 512),
        submit(3, Direction::Out, 0),
    ];
    for c in &cmds {
        client.encode_submit(c, &mut wire).unwrap();
    }
    client.encode_unlink(&unlink(4, 2), &mut wire).unwrap();
    let mut server = ServerCodec::default();
    let mut rx = BytesMut::new();
    let mut got = Vec::new();
    for byte in wire.iter() {
        rx.extend_from_slice(&[*byte]);
        while let Some(cmd) = server.decode(&mut rx).unwrap() {
            got.push(cmd);
        }
    }
    let mut expected: Vec<_> = cmds.into_iter().map(Command::Submit).collect();
    expected.push(Command::Unlink(unlink(4, 2)));
    assert_eq!(got, expected);
    assert!(rx.is_empty());
}

#[test]
fn server_refuses_replies() {
    let mut b = BytesMut::new();
    ret(1, 0, b"").encode(Direction::Out, &mut b).unwrap();
    assert_eq!(
        ServerCodec::default()
            .decode(&mut b)
            .unwrap_err()
            .to_string(),
        "USB/IP command RET_SUBMIT (3) is not valid here: expected CMD_SUBMIT or CMD_UNLINK"
    );
}

#[test]
fn client_matches_replies_to_submits_out_of_order() {
    let mut client = ClientCodec::default();
    let mut sink = BytesMut::new();
    client
        .encode_submit(&submit(1, Direction::In, 8), &mut sink)
        .unwrap();
    client
        .encode_submit(&submit(2, Direction::Out, 3), &mut sink)
        .unwrap();
    assert_eq!(client.outstanding(), 2);
    let mut rx = BytesMut::new();
    let mut out_reply = ret(2, 0, b"");
    out_reply.actual_length = 3;
    out_reply.encode(Direction::Out, &mut rx).unwrap();
    ret(1, 0, b"hello").encode(Direction::In, &mut rx).unwrap();
    assert_eq!(
        client.decode(&mut rx).unwrap(),
        Some(Reply::Submit(out_reply))
    );
    assert_eq!(
        client.decode(&mut rx).unwrap(),
        Some(Reply::Submit(ret(1, 0, b"hello")))
    );
    assert_eq!(client.decode(&mut rx).unwrap(), None);
    assert_eq!(client.outstanding(), 0);
}

#[test]
fn client_detects_unknown_seqnum_and_oversized_in() {
    let mut client = ClientCodec::default();
    let mut sink = BytesMut::new();
    client
        .encode_submit(&submit(1, Direction::In, 4), &mut sink)
        .unwrap();
    let mut rx = BytesMut::new();
    ret(9, 0, b"").encode(Direction::Out, &mut rx).unwrap();
    assert_eq!(
        client.decode(&mut rx).unwrap_err().to_string(),
        "RET_SUBMIT for unknown seqnum 9"
    );
    let mut rx = BytesMut::new();
    ret(1, 0, b"12345").encode(Direction::In, &mut rx).unwrap();
    assert!(matches!(
        client.decode(&mut rx),
        Err(ProtoError::ActualLengthExceedsBuffer {
            seqnum: 1,
            actual_length: 5,
            transfer_buffer_length: 4
        })
    ));
}

#[test]
fn unlink_of_a_pending_urb_cancels_it() {
    let mut client = ClientCodec::default();
    let mut sink = BytesMut::new();
    client
        .encode_submit(&submit(1, Direction::In, 4), &mut sink)
        .unwrap();
    client.encode_unlink(&unlink(2, 1), &mut sink).unwrap();
    let mut rx = ret_unlink_bytes(2, -errno::ECONNRESET);
    assert_eq!(
        client.decode(&mut rx).unwrap(),
        Some(Reply::Unlink {
            ret: RetUnlink {
                seqnum: 2,
                status: -104
            },
            unlink_seqnum: 1,
            cancelled: true
        })
    );
    assert_eq!(client.outstanding(), 0);
    // A RET_SUBMIT after that is for an unknown seqnum.
    let mut rx = BytesMut::new();
    ret(1, 0, b"").encode(Direction::In, &mut rx).unwrap();
    assert!(matches!(
        client.decode(&mut rx),
        Err(ProtoError::UnknownSeqnum { seqnum: 1, .. })
    ));
}

#[test]
fn unlink_after_completion_reports_zero() {
    let mut client = ClientCodec::default();
    let mut sink = BytesMut::new();
    client
        .encode_submit(&submit(1, Direction::In, 4), &mut sink)
        .unwrap();
    client.encode_unlink(&unlink(2, 1), &mut sink).unwrap();
    let mut rx = BytesMut::new();
    ret(1, 0, b"ab").encode(Direction::In, &mut rx).unwrap();
    rx.unsplit(ret_unlink_bytes(2, 0));
    assert!(matches!(client.decode(&mut rx), Ok(Some(Reply::Submit(_)))));
    assert!(matches!(
        client.decode(&mut rx),
        Ok(Some(Reply::Unlink {
            unlink_seqnum: 1,
            cancelled: false,
            ..
        }))
    ));
}

#[test]
fn contradictory_unlink_replies_are_protocol_errors() {
    // Status 0 while the URB never completed.
    let mut client = ClientCodec::default();
    let mut sink = BytesMut::new();
    client
        .encode_submit(&submit(1, Direction::In, 4), &mut sink)
        .unwrap();
    client.encode_unlink(&unlink(2, 1), &mut sink).unwrap();
    let err = client.decode(&mut ret_unlink_bytes(2, 0)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "RET_UNLINK seqnum 2 status 0 for URB 1, which never completed \
         (status 0 says its RET_SUBMIT was already sent)"
    );
    // -ECONNRESET after a RET_SUBMIT.
    let mut client = ClientCodec::default();
    client
        .encode_submit(&submit(1, Direction::In, 4), &mut sink)
        .unwrap();
    client.encode_unlink(&unlink(2, 1), &mut sink).unwrap();
    let mut rx = BytesMut::new();
    ret(1, 0, b"").encode(Direction::In, &mut rx).unwrap();
    client.decode(&mut rx).unwrap();
    assert!(matches!(
        client.decode(&mut ret_unlink_bytes(2, -104)),
        Err(ProtoError::UnlinkStatusMismatch {
            already_completed: true,
            ..
        })
    ));
    // A RET_UNLINK nobody asked for.
    assert!(matches!(
        ClientCodec::default().decode(&mut ret_unlink_bytes(5, 0)),
        Err(ProtoError::UnknownSeqnum {
            message: "RET_UNLINK",
            seqnum: 5
        })
    ));
}

#[test]
fn client_encode_limits_and_duplicates() {
    let limits = Limits {
        max_outstanding_urbs: 2,
        max_transfer_buffer: 64,
        ..Limits::default()
    };
    let mut client = ClientCodec::new(limits);
    let mut sink = BytesMut::new();
    client
        .encode_submit(&submit(1, Direction::In, 8), &mut sink)
        .unwrap();
    assert!(matches!(
        client.encode_submit(&submit(1, Direction::In, 8), &mut sink),
        Err(ProtoError::DuplicateSeqnum { seqnum: 1, .. })
    ));
    assert!(matches!(
        client.encode_unlink(&unlink(1, 1), &mut sink),
        Err(ProtoError::DuplicateSeqnum { seqnum: 1, .. })
    ));
    assert_eq!(
        client
            .encode_submit(&submit(2, Direction::In, 65), &mut sink)
            .unwrap_err()
            .to_string(),
        "CMD_SUBMIT transfer_buffer_length 65 exceeds max_transfer_buffer 64"
    );
    client
        .encode_submit(&submit(2, Direction::In, 8), &mut sink)
        .unwrap();
    assert_eq!(
        client
            .encode_submit(&submit(3, Direction::In, 8), &mut sink)
            .unwrap_err()
            .to_string(),
        "CMD_SUBMIT outstanding URBs 3 exceeds max_outstanding_urbs 2"
    );
    assert_eq!(client.outstanding(), 2);
}

#[test]
fn client_iso_round_trip() {
    let mut client = ClientCodec::default();
    let mut cmd = submit(1, Direction::In, 8);
    cmd.number_of_packets = 2;
    cmd.iso = vec![
        IsoPacketDescriptor {
            offset: 0,
            length: 4,
            ..Default::default()
        },
        IsoPacketDescriptor {
            offset: 4,
            length: 4,
            ..Default::default()
        },
    ];
    let mut wire = BytesMut::new();
    client.encode_submit(&cmd, &mut wire).unwrap();
    let Some(Command::Submit(got)) = ServerCodec::default().decode(&mut wire).unwrap() else {
        panic!("expected a submit");
    };
    assert_eq!(got, cmd);
    let mut reply = ret(1, 0, b"abcdef");
    reply.number_of_packets = 2;
    reply.iso = vec![
        IsoPacketDescriptor {
            actual_length: 4,
            ..cmd.iso[0]
        },
        IsoPacketDescriptor {
            actual_length: 2,
            ..cmd.iso[1]
        },
    ];
    let mut rx = BytesMut::new();
    reply.encode(Direction::In, &mut rx).unwrap();
    assert_eq!(client.decode(&mut rx).unwrap(), Some(Reply::Submit(reply)));
}

/// Small limits so that any unchecked length would show up as a large allocation.
const SMALL: Limits = Limits {
    max_transfer_buffer: 4096,
    max_iso_packets: 16,
    max_outstanding_urbs: 8,
    max_devices: 4,
};

/// A 48-byte header with plausible fields (so decoding gets past the first checks), then
/// arbitrary bytes.
fn message_like() -> impl Strategy<Value = Vec<u8>> {
    let word = |small: std::ops::Range<u32>| prop_oneof![small, any::<u32>()];
    (
        prop_oneof![Just(1u32), Just(2), Just(3), Just(4), any::<u32>()],
        (1u32..10, any::<u32>(), word(0..2), word(0..16)),
        (
            any::<u32>(),
            word(0..100),
            any::<u32>(),
            prop_oneof![Just(u32::MAX), word(0..5)],
        ),
        (any::<u32>(), any::<[u8; 8]>()),
        prop::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(
            |(cmd, (seq, devid, dir, ep), (w0, w1, w2, w3), (w4, setup), tail)| {
                let mut v: Vec<u8> = [cmd, seq, devid, dir, ep, w0, w1, w2, w3, w4]
                    .iter()
                    .flat_map(|w| w.to_be_bytes())
                    .collect();
                v.extend(setup);
                v.extend(tail);
                v
            },
        )
}

/// An op header with version 0x0111 and a known code, a small count, then arbitrary bytes
/// sprinkled with NULs (so busid/path fields sometimes validate).
fn op_like() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![Just(0x8005u16), Just(0x8003), Just(0x0005), Just(0x0003)],
        prop_oneof![Just(0u32), 0u32..6],
        prop_oneof![0u32..3, any::<u32>()],
        prop::collection::vec(prop_oneof![Just(0u8), Just(b'1'), any::<u8>()], 0..1400),
    )
        .prop_map(|(code, status, count, tail)| {
            let mut v = vec![0x01, 0x11];
            v.extend(code.to_be_bytes());
            v.extend(status.to_be_bytes());
            v.extend(count.to_be_bytes());
            v.extend(tail);
            v
        })
}

fn fuzz_input() -> impl Strategy<Value = (Vec<u8>, usize)> {
    (
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..600),
            prop::collection::vec(message_like(), 1..4).prop_map(|v| v.concat()),
            op_like(),
        ],
        1usize..64,
    )
}

/// Feeds `input` in `chunk`-sized pieces until the decoder errors or the input is used up,
/// checking the read buffer never grows past what the limits allow.
fn feed<T>(
    input: &[u8],
    chunk: usize,
    mut decode: impl FnMut(&mut BytesMut) -> Result<Option<T>, ProtoError>,
) -> Result<(), TestCaseError> {
    let bound = 2 * (SMALL.max_message_len() + input.len()) + 8192;
    let mut buf = BytesMut::new();
    for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match decode(&mut buf) {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return Ok(()),
            }
            prop_assert!(buf.capacity() <= bound, "capacity {}", buf.capacity());
        }
        prop_assert!(buf.capacity() <= bound, "capacity {}", buf.capacity());
    }
    Ok(())
}

proptest! {
    #[test]
    fn decoders_never_panic_nor_over_allocate((input, chunk) in fuzz_input()) {
        let mut server = ServerCodec::new(SMALL);
        feed(&input, chunk, |b| server.decode(b))?;

        let mut client = ClientCodec::new(SMALL);
        let mut sink = BytesMut::new();
        for (seq, dir) in [(1, Direction::In), (2, Direction::Out), (3, Direction::In)] {
            client.encode_submit(&submit(seq, dir, 64), &mut sink).unwrap();
        }
        let mut iso = submit(4, Direction::In, 64);
        iso.number_of_packets = 4;
        iso.iso = vec![IsoPacketDescriptor { length: 16, ..Default::default() }; 4];
        client.encode_submit(&iso, &mut sink).unwrap();
        client.encode_unlink(&unlink(5, 1), &mut sink).unwrap();
        feed(&input, chunk, |b| client.decode(b))?;

        feed(&input, chunk, OpRequest::decode)?;
        feed(&input, chunk, |b| OpReply::decode(b, &SMALL))?;
    }

    #[test]
    fn submits_round_trip_through_any_split(
        seqnum in any::<u32>(),
        out in any::<bool>(),
        len in 0u32..300,
        np in prop_oneof![Just(0i32), Just(-1), 1i32..5],
        flags in any::<u32>(),
        setup in any::<[u8; 8]>(),
        split in any::<prop::sample::Index>(),
    ) {
        let direction = if out { Direction::Out } else { Direction::In };
        let mut cmd = submit(seqnum, direction, len);
        cmd.transfer_flags = TransferFlags(flags);
        cmd.setup = setup;
        cmd.number_of_packets = np;
        if np > 0 {
            let each = len / np as u32;
            cmd.iso = (0..np as u32)
                .map(|i| IsoPacketDescriptor { offset: i * each, length: each, ..Default::default() })
                .collect();
        }
        let mut wire = BytesMut::new();
        ClientCodec::default().encode_submit(&cmd, &mut wire).unwrap();
        let at = split.index(wire.len());
        let mut rx = BytesMut::from(&wire[..at]);
        let mut server = ServerCodec::default();
        prop_assert_eq!(server.decode(&mut rx).unwrap(), None);
        rx.extend_from_slice(&wire[at..]);
        prop_assert_eq!(server.decode(&mut rx).unwrap(), Some(Command::Submit(cmd)));
        prop_assert!(rx.is_empty());
    }
}
