//! Byte-vector tests for the URB messages, written from the spec layout.

use super::*;
use crate::proto::errno;

/// Big-endian 32-bit words, as the headers are written.
fn words(ws: &[u32]) -> Vec<u8> {
    ws.iter().flat_map(|w| w.to_be_bytes()).collect()
}

/// Decodes `wire` fed in two pieces at every split point; the message must only appear once
/// complete, and bytes after it must stay in the buffer.
fn at_every_split<T: PartialEq + std::fmt::Debug>(
    wire: &[u8],
    len: usize,
    mut decode: impl FnMut(&mut BytesMut) -> Result<Option<T>, ProtoError>,
) -> T {
    let mut last = None;
    for split in 0..len {
        let mut b = BytesMut::from(&wire[..split]);
        assert_eq!(decode(&mut b).unwrap(), None, "split {split}");
        assert_eq!(b.len(), split, "a partial message must not be consumed");
        b.extend_from_slice(&wire[split..]);
        let got = decode(&mut b).unwrap().expect("complete message");
        assert_eq!(&b[..], &wire[len..], "split {split}: trailing bytes");
        if let Some(prev) = &last {
            assert_eq!(prev, &got);
        }
        last = Some(got);
    }
    last.expect("len > 0")
}

fn bulk_out() -> (CmdSubmit, Vec<u8>) {
    let cmd = CmdSubmit {
        seqnum: 5,
        devid: 0x0001_0002,
        direction: Direction::Out,
        ep: 2,
        transfer_flags: TransferFlags::ZERO_PACKET,
        transfer_buffer_length: 4,
        start_frame: 0,
        number_of_packets: 0,
        interval: 0,
        setup: [0; 8],
        data: Bytes::from_static(&[1, 2, 3, 4]),
        iso: vec![],
    };
    let mut wire = words(&[1, 5, 0x0001_0002, 0, 2, 0x40, 4, 0, 0, 0]);
    wire.extend([0; 8]); // setup
    wire.extend([1, 2, 3, 4]); // OUT data
    (cmd, wire)
}

fn control_in() -> (CmdSubmit, Vec<u8>) {
    let setup = [0x80, 0x06, 0x00, 0x01, 0x00, 0x00, 0x12, 0x00];
    let cmd = CmdSubmit {
        seqnum: 1,
        devid: 0x0001_0002,
        direction: Direction::In,
        ep: 0,
        transfer_flags: TransferFlags::DIR_IN,
        transfer_buffer_length: 18,
        start_frame: 0,
        number_of_packets: 0,
        interval: 0,
        setup,
        data: Bytes::new(),
        iso: vec![],
    };
    let mut wire = words(&[1, 1, 0x0001_0002, 1, 0, 0x200, 18, 0, 0, 0]);
    wire.extend(setup);
    (cmd, wire)
}

fn iso_out() -> (CmdSubmit, Vec<u8>) {
    let cmd = CmdSubmit {
        seqnum: 9,
        devid: 0x0001_0002,
        direction: Direction::Out,
        ep: 3,
        transfer_flags: TransferFlags::ISO_ASAP,
        transfer_buffer_length: 6,
        start_frame: 0,
        number_of_packets: 2,
        interval: 1,
        setup: [0; 8],
        data: Bytes::from_static(b"abcdef"),
        iso: vec![
            IsoPacketDescriptor {
                offset: 0,
                length: 3,
                ..Default::default()
            },
            IsoPacketDescriptor {
                offset: 3,
                length: 3,
                ..Default::default()
            },
        ],
    };
    let mut wire = words(&[1, 9, 0x0001_0002, 0, 3, 2, 6, 0, 2, 1]);
    wire.extend([0; 8]);
    wire.extend(b"abcdef");
    wire.extend(words(&[0, 3, 0, 0, 3, 3, 0, 0]));
    (cmd, wire)
}

fn encode_cmd(cmd: &CmdSubmit) -> Vec<u8> {
    let mut b = BytesMut::new();
    cmd.encode(&mut b).unwrap();
    assert_eq!(b.len(), cmd.encoded_len());
    b.to_vec()
}

#[test]
fn cmd_submit_layouts_round_trip_at_every_split() {
    let limits = Limits::default();
    for (cmd, mut wire) in [bulk_out(), control_in(), iso_out()] {
        assert_eq!(encode_cmd(&cmd), wire);
        let len = wire.len();
        wire.extend(words(&[2, 77])); // start of the next message
        let got = at_every_split(&wire, len, |b| CmdSubmit::decode(b, &limits));
        assert_eq!(got, cmd);
    }
}

#[test]
fn windows_non_iso_packet_count_is_accepted() {
    let (_, mut wire) = bulk_out();
    wire[32..36].copy_from_slice(&[0xff; 4]); // number_of_packets = 0xFFFFFFFF
    let got = CmdSubmit::decode(&mut BytesMut::from(&wire[..]), &Limits::default())
        .unwrap()
        .unwrap();
    assert_eq!(got.number_of_packets, -1);
    assert!(!got.is_iso());
    assert!(got.iso.is_empty());
    assert_eq!(&got.data[..], &[1, 2, 3, 4]);
    // ... and it encodes back to the same bytes.
    assert_eq!(encode_cmd(&got), wire);
    // Any negative count means "not iso".
    wire[32..36].copy_from_slice(&(-7i32).to_be_bytes());
    let got = CmdSubmit::decode(&mut BytesMut::from(&wire[..]), &Limits::default()).unwrap();
    assert!(got.is_some_and(|c| c.iso.is_empty()));
}

#[test]
fn transfer_buffer_limit_is_checked_on_the_header_alone() {
    let mut wire = words(&[1, 1, 0, 0, 1, 0, 0x7fff_ffff, 0, 0, 0]);
    wire.extend([0; 8]);
    let mut b = BytesMut::from(&wire[..]);
    let err = CmdSubmit::decode(&mut b, &Limits::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "CMD_SUBMIT transfer_buffer_length 2147483647 exceeds max_transfer_buffer 16777216"
    );
    assert!(b.capacity() < 4096, "nothing reserved for the payload");

    let small = Limits {
        max_transfer_buffer: 4,
        ..Limits::default()
    };
    let (_, ok) = bulk_out();
    assert!(CmdSubmit::decode(&mut BytesMut::from(&ok[..]), &small).is_ok());
    let tight = Limits {
        max_transfer_buffer: 3,
        ..Limits::default()
    };
    assert!(matches!(
        CmdSubmit::decode(&mut BytesMut::from(&ok[..48]), &tight),
        Err(ProtoError::LimitExceeded {
            limit: Limit::MaxTransferBuffer,
            value: 4,
            max: 3,
            ..
        })
    ));
}

#[test]
fn negative_transfer_buffer_length_is_refused() {
    let mut wire = words(&[1, 1, 0, 0, 1, 0, 0xffff_ffff, 0, 0, 0]);
    wire.extend([0; 8]);
    let err = CmdSubmit::decode(&mut BytesMut::from(&wire[..]), &Limits::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "CMD_SUBMIT transfer_buffer_length -1 is negative"
    );
}

#[test]
fn iso_packet_limit() {
    let mut wire = words(&[1, 1, 0, 1, 3, 0, 0, 0, 1025, 0]);
    wire.extend([0; 8]);
    let err = CmdSubmit::decode(&mut BytesMut::from(&wire[..]), &Limits::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "CMD_SUBMIT number_of_packets 1025 exceeds max_iso_packets 1024"
    );
    let limits = Limits {
        max_iso_packets: 1,
        ..Limits::default()
    };
    let (_, wire) = iso_out();
    assert!(matches!(
        CmdSubmit::decode(&mut BytesMut::from(&wire[..]), &limits),
        Err(ProtoError::LimitExceeded {
            limit: Limit::MaxIsoPackets,
            value: 2,
            max: 1,
            ..
        })
    ));
}

#[test]
fn iso_descriptors_must_fit_the_buffer() {
    let (_, mut wire) = iso_out();
    // Second packet length 3 → 4: sum 7 > 6, and it ends past the buffer.
    let at = 48 + 6 + 16 + 4;
    wire[at..at + 4].copy_from_slice(&4u32.to_be_bytes());
    let err = CmdSubmit::decode(&mut BytesMut::from(&wire[..]), &Limits::default()).unwrap_err();
    assert!(
        matches!(err, ProtoError::IsoPacketOutOfBounds { index: 1, .. }),
        "{err}"
    );
    // Overlapping packets that stay in bounds but ask for more than the buffer in total.
    let (_, mut wire) = iso_out();
    let at = 48 + 6;
    wire[at..at + 8].copy_from_slice(&words(&[0, 4]));
    let err = CmdSubmit::decode(&mut BytesMut::from(&wire[..]), &Limits::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "CMD_SUBMIT iso packet lengths sum to 7, more than transfer_buffer_length 6"
    );
}

#[test]
fn header_field_errors() {
    let limits = Limits::default();
    let decode = |w: &[u8]| CmdSubmit::decode(&mut BytesMut::from(w), &limits);
    let (_, wire) = control_in();
    let mut bad = wire.clone();
    bad[12..16].copy_from_slice(&words(&[2]));
    assert_eq!(
        decode(&bad).unwrap_err().to_string(),
        "CMD_SUBMIT direction 2 is neither 0 (out) nor 1 (in)"
    );
    let mut bad = wire.clone();
    bad[16..20].copy_from_slice(&words(&[16]));
    assert!(matches!(
        decode(&bad),
        Err(ProtoError::InvalidEndpoint { value: 16, .. })
    ));
    let mut bad = wire.clone();
    bad[0..4].copy_from_slice(&words(&[9]));
    assert_eq!(
        decode(&bad).unwrap_err().to_string(),
        "unknown USB/IP command code 0x00000009"
    );
    let mut bad = wire;
    bad[0..4].copy_from_slice(&words(&[3]));
    assert!(matches!(
        decode(&bad),
        Err(ProtoError::UnexpectedCommand { code: 3, .. })
    ));
}

#[test]
fn ret_submit_in_carries_actual_length_bytes() {
    let ret = RetSubmit {
        seqnum: 1,
        status: 0,
        actual_length: 3,
        start_frame: 0,
        number_of_packets: 0,
        error_count: 0,
        data: Bytes::from_static(&[0xa, 0xb, 0xc]),
        iso: vec![],
    };
    let mut wire = words(&[3, 1, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0]);
    wire.extend([0xa, 0xb, 0xc]);
    let mut b = BytesMut::new();
    ret.encode(Direction::In, &mut b).unwrap();
    assert_eq!(&b[..], &wire[..]);
    let info = SubmitInfo {
        direction: Direction::In,
        transfer_buffer_length: 18,
        number_of_packets: 0,
    };
    let limits = Limits::default();
    let got = at_every_split(&wire, wire.len(), |b| RetSubmit::decode(b, &info, &limits));
    assert_eq!(got, ret);
}

#[test]
fn ret_submit_out_carries_no_data() {
    let ret = RetSubmit {
        seqnum: 5,
        status: -errno::EPIPE,
        actual_length: 2,
        start_frame: 0,
        number_of_packets: -1,
        error_count: 0,
        data: Bytes::new(),
        iso: vec![],
    };
    let wire = words(&[3, 5, 0, 0, 0, (-32i32) as u32, 2, 0, 0xffff_ffff, 0, 0, 0]);
    let mut b = BytesMut::new();
    ret.encode(Direction::Out, &mut b).unwrap();
    assert_eq!(&b[..], &wire[..]);
    let info = SubmitInfo {
        direction: Direction::Out,
        transfer_buffer_length: 4,
        number_of_packets: -1,
    };
    let got = RetSubmit::decode(&mut BytesMut::from(&wire[..]), &info, &Limits::default());
    assert_eq!(got.unwrap(), Some(ret.clone()));
    // An OUT reply with data is inconsistent and refused on encode.
    let with_data = RetSubmit {
        data: Bytes::from_static(&[1, 2]),
        ..ret
    };
    assert!(matches!(
        with_data.encode(Direction::Out, &mut BytesMut::new()),
        Err(ProtoError::Inconsistent { .. })
    ));
}

#[test]
fn ret_submit_iso_in_is_packed() {
    let ret = RetSubmit {
        seqnum: 7,
        status: 0,
        actual_length: 5,
        start_frame: 100,
        number_of_packets: 2,
        error_count: 0,
        data: Bytes::from_static(b"abcde"),
        iso: vec![
            IsoPacketDescriptor {
                offset: 0,
                length: 4,
                actual_length: 2,
                status: 0,
            },
            IsoPacketDescriptor {
                offset: 4,
                length: 4,
                actual_length: 3,
                status: 0,
            },
        ],
    };
    let mut wire = words(&[3, 7, 0, 0, 0, 0, 5, 100, 2, 0, 0, 0]);
    wire.extend(b"abcde");
    wire.extend(words(&[0, 4, 2, 0, 4, 4, 3, 0]));
    let mut b = BytesMut::new();
    ret.encode(Direction::In, &mut b).unwrap();
    assert_eq!(&b[..], &wire[..]);
    let info = SubmitInfo {
        direction: Direction::In,
        transfer_buffer_length: 8,
        number_of_packets: 2,
    };
    let limits = Limits::default();
    assert_eq!(
        at_every_split(&wire, wire.len(), |b| RetSubmit::decode(b, &info, &limits)),
        ret
    );
    // More descriptors than submitted.
    let one = SubmitInfo {
        number_of_packets: 1,
        ..info
    };
    assert!(matches!(
        RetSubmit::decode(&mut BytesMut::from(&wire[..]), &one, &limits),
        Err(ProtoError::IsoPacketCountMismatch {
            returned: 2,
            submitted: 1,
            ..
        })
    ));
    // Descriptor actual_lengths that do not add up.
    let mut bad = wire.clone();
    let at = 48 + 5 + 8;
    bad[at..at + 4].copy_from_slice(&words(&[1]));
    assert_eq!(
        RetSubmit::decode(&mut BytesMut::from(&bad[..]), &info, &limits)
            .unwrap_err()
            .to_string(),
        "RET_SUBMIT seqnum 7: iso packet actual_lengths sum to 4, but actual_length is 5"
    );
}

#[test]
fn ret_submit_checks_what_linux_checks() {
    let limits = Limits::default();
    let info = SubmitInfo {
        direction: Direction::In,
        transfer_buffer_length: 2,
        number_of_packets: 0,
    };
    let wire = words(&[3, 1, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0]);
    assert_eq!(
        RetSubmit::decode(&mut BytesMut::from(&wire[..]), &info, &limits)
            .unwrap_err()
            .to_string(),
        "RET_SUBMIT seqnum 1 actual_length 3 exceeds the URB's transfer_buffer_length 2"
    );
    let wire = words(&[3, 1, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0]);
    assert!(matches!(
        RetSubmit::decode(&mut BytesMut::from(&wire[..]), &info, &limits),
        Err(ProtoError::PositiveStatus { status: 5, .. })
    ));
    let wire = words(&[3, 1, 0, 0, 0, 0, 0xffff_fff0, 0, 0, 0, 0, 0]);
    assert!(matches!(
        RetSubmit::decode(&mut BytesMut::from(&wire[..]), &info, &limits),
        Err(ProtoError::NegativeLength { value: -16, .. })
    ));
}

#[test]
fn unlink_messages() {
    let cmd = CmdUnlink {
        seqnum: 8,
        devid: 0x0001_0002,
        direction: Direction::In,
        ep: 1,
        unlink_seqnum: 6,
    };
    let mut wire = words(&[2, 8, 0x0001_0002, 1, 1, 6]);
    wire.extend([0; 24]);
    let mut b = BytesMut::new();
    cmd.encode(&mut b);
    assert_eq!(&b[..], &wire[..]);
    assert_eq!(at_every_split(&wire, 48, CmdUnlink::decode), cmd);

    let ret = RetUnlink {
        seqnum: 8,
        status: -errno::ECONNRESET,
    };
    let mut wire = words(&[4, 8, 0, 0, 0, (-104i32) as u32]);
    wire.extend([0; 24]);
    let mut b = BytesMut::new();
    ret.encode(&mut b).unwrap();
    assert_eq!(&b[..], &wire[..]);
    assert_eq!(at_every_split(&wire, 48, RetUnlink::decode), ret);
    let positive = RetUnlink {
        seqnum: 1,
        status: 1,
    };
    assert!(positive.encode(&mut BytesMut::new()).is_err());
}

#[test]
fn encode_refuses_inconsistent_submits() {
    let (cmd, _) = bulk_out();
    let short = CmdSubmit {
        transfer_buffer_length: 5,
        ..cmd.clone()
    };
    let mut b = BytesMut::new();
    assert_eq!(
        short.encode(&mut b).unwrap_err().to_string(),
        "CMD_SUBMIT carries 4 data bytes, but its header says 5"
    );
    assert!(b.is_empty());
    let huge = CmdSubmit {
        direction: Direction::In,
        data: Bytes::new(),
        transfer_buffer_length: u32::MAX,
        ..cmd.clone()
    };
    assert!(matches!(
        huge.encode(&mut b),
        Err(ProtoError::LimitExceeded {
            limit: Limit::WireI32,
            ..
        })
    ));
    let (iso, _) = iso_out();
    let missing = CmdSubmit { iso: vec![], ..iso };
    assert!(missing.encode(&mut b).is_err());
    assert!(b.is_empty());
}

#[test]
fn names_and_flags() {
    assert_eq!(errno::status_name(-32), Some("EPIPE"));
    assert_eq!(errno::status_name(0), Some("OK"));
    assert_eq!(errno::status_name(-1000), None);
    assert_eq!(errno::status_name(i32::MIN), None);
    assert_eq!(
        format!("{:?}", TransferFlags::DIR_IN | TransferFlags::SHORT_NOT_OK),
        "TransferFlags(SHORT_NOT_OK | DIR_IN)"
    );
    assert_eq!(
        format!("{:?}", TransferFlags(0x8001)),
        "TransferFlags(SHORT_NOT_OK | 0x8000)"
    );
    assert_eq!(format!("{:?}", TransferFlags::NONE), "TransferFlags(0x0)");
    assert!((TransferFlags::DIR_IN | TransferFlags::ZERO_PACKET).contains(TransferFlags::DIR_IN));
    assert_eq!(command_name(RET_UNLINK), Some("RET_UNLINK"));
}
