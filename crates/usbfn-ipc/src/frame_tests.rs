//! Codec tests: byte vectors, partial frames, limits, and a property test that decoders
//! never panic.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use usbfn_abi::{IoctlCode, NtStatus};

use crate::error::FrameError;
use crate::frame::*;

fn encode(f: &ServiceFrame) -> BytesMut {
    let mut out = BytesMut::new();
    f.encode(&mut out).expect("encode");
    out
}

const REQUEST_BYTES: [u8; 35] = [
    35, 0, 0, 0, 2, 0, 0, 0, // length 35, REQUEST
    0x2a, 0, 0, 0, 0, 0, 0, 0, // id 42
    0x0d, 0xc0, 0x22, 0, // IOCTL_GENERICUSBFN_TRANSFER_IN
    4, 0, 0, 0, // input_length 4
    3, 0, 0, 0, // output_length 3
    1, 0, 0, 0, // input: USBFNPIPEID 1
    b'a', b'b', b'c', // output data
];

#[test]
fn request_byte_vector() {
    let r = ServiceFrame::Request(Request {
        id: 42,
        code: IoctlCode::TRANSFER_IN,
        input: Bytes::from_static(&[1, 0, 0, 0]),
        output_length: 3,
        output: Bytes::from_static(b"abc"),
    });
    assert_eq!(&encode(&r)[..], &REQUEST_BYTES);
    let mut buf = BytesMut::from(&REQUEST_BYTES[..]);
    assert_eq!(ServiceFrame::decode(&mut buf), Ok(Some(r)));
    assert!(buf.is_empty());
}

#[test]
fn cancel_hello_completion_byte_vectors() {
    let c = ServiceFrame::Cancel(Cancel { id: 0x0102 });
    let bytes = [16, 0, 0, 0, 3, 0, 0, 0, 2, 1, 0, 0, 0, 0, 0, 0];
    assert_eq!(&encode(&c)[..], &bytes);
    assert_eq!(
        ServiceFrame::decode(&mut BytesMut::from(&bytes[..])),
        Ok(Some(c))
    );

    let h = DaemonFrame::Hello(Hello {
        version: 1,
        status: NtStatus::STATUS_SUCCESS,
        max_frame_len: 0x0100_1024,
        max_outstanding: 512,
    });
    let mut out = BytesMut::new();
    h.encode(&mut out).expect("encode");
    let hello = [
        24, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x24, 0x10, 0, 1, 0, 2, 0, 0,
    ];
    assert_eq!(&out[..], &hello);
    assert_eq!(DaemonFrame::decode(&mut out), Ok(Some(h)));

    let done = DaemonFrame::Completion(Completion {
        id: 7,
        status: NtStatus::STATUS_CANCELLED,
        information: 2,
        output: Bytes::from_static(&[9, 8]),
    });
    let mut out = BytesMut::new();
    done.encode(&mut out).expect("encode");
    let bytes = [
        26, 0, 0, 0, 4, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0x20, 0x01, 0, 0xc0, 2, 0, 0, 0, 9, 8,
    ];
    assert_eq!(&out[..], &bytes);
    assert_eq!(DaemonFrame::decode(&mut out), Ok(Some(done)));
}

#[test]
fn hello_new_announces_the_limits() {
    let h = Hello::new(NtStatus::STATUS_SUCCESS);
    assert_eq!(h.version, PROTOCOL_VERSION);
    assert_eq!(h.max_frame_len as usize, MAX_FRAME_LEN);
    assert_eq!(h.max_outstanding as usize, MAX_OUTSTANDING_REQUESTS);
    assert_eq!(MAX_DATA_LEN, usbfn_core::MAX_TRANSFER_LENGTH);
}

#[test]
fn partial_frames_wait_for_more_and_leave_the_buffer() {
    for cut in 0..REQUEST_BYTES.len() {
        let mut buf = BytesMut::from(&REQUEST_BYTES[..cut]);
        assert_eq!(ServiceFrame::decode(&mut buf), Ok(None), "cut at {cut}");
        assert_eq!(&buf[..], &REQUEST_BYTES[..cut]);
        buf.extend_from_slice(&REQUEST_BYTES[cut..]);
        assert!(matches!(
            ServiceFrame::decode(&mut buf),
            Ok(Some(ServiceFrame::Request(_)))
        ));
    }
}

#[test]
fn two_frames_back_to_back() {
    let mut buf = BytesMut::from(&REQUEST_BYTES[..]);
    buf.extend_from_slice(&[16, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]);
    buf.extend_from_slice(&REQUEST_BYTES[..5]);
    assert!(matches!(
        ServiceFrame::decode(&mut buf),
        Ok(Some(ServiceFrame::Request(_)))
    ));
    assert_eq!(
        ServiceFrame::decode(&mut buf),
        Ok(Some(ServiceFrame::Cancel(Cancel { id: 2 })))
    );
    assert_eq!(ServiceFrame::decode(&mut buf), Ok(None));
    assert_eq!(buf.len(), 5);
}

#[test]
fn oversized_frame_is_refused_from_its_length_field() {
    let too_big = u32::try_from(MAX_FRAME_LEN + 1).expect("fits");
    let mut buf = BytesMut::from(&too_big.to_le_bytes()[..]);
    let e = ServiceFrame::decode(&mut buf).expect_err("too large");
    assert_eq!(
        e,
        FrameError::FrameTooLarge {
            len: u64::from(too_big),
            max: MAX_FRAME_LEN
        }
    );
    assert!(e.to_string().contains("MAX_FRAME_LEN"), "{e}");
    let mut buf = BytesMut::from(&u32::MAX.to_le_bytes()[..]);
    assert!(matches!(
        DaemonFrame::decode(&mut buf),
        Err(FrameError::FrameTooLarge { .. })
    ));
}

#[test]
fn header_errors() {
    let cases: [(&[u8], FrameError); 6] = [
        (
            &[4, 0, 0, 0],
            FrameError::FrameTooShort {
                kind: "any",
                len: 4,
                min: HEADER_LEN,
            },
        ),
        (
            &[8, 0, 0, 0, 9, 0, 0, 0],
            FrameError::UnknownKind { kind: 9 },
        ),
        (
            &[16, 0, 0, 0, 3, 1, 0, 0],
            FrameError::ReservedNotZero { kind: "CANCEL" },
        ),
        (
            &[12, 0, 0, 0, 2, 0, 0, 0],
            FrameError::FrameTooShort {
                kind: "REQUEST",
                len: 12,
                min: 28,
            },
        ),
        (
            &[17, 0, 0, 0, 3, 0, 0, 0],
            FrameError::FrameTooLong {
                kind: "CANCEL",
                len: 17,
                size: 16,
            },
        ),
        (
            &[24, 0, 0, 0, 1, 0, 0, 0],
            FrameError::WrongDirection {
                kind: "HELLO",
                direction: "by the service",
            },
        ),
    ];
    for (bytes, expected) in cases {
        let mut buf = BytesMut::from(bytes);
        buf.resize(64, 0);
        assert_eq!(ServiceFrame::decode(&mut buf), Err(expected), "{bytes:?}");
    }
    let mut buf = BytesMut::from(&REQUEST_BYTES[..]);
    assert_eq!(
        DaemonFrame::decode(&mut buf),
        Err(FrameError::WrongDirection {
            kind: "REQUEST",
            direction: "by the daemon"
        })
    );
}

#[test]
fn input_length_limits() {
    let mut bytes = REQUEST_BYTES;
    bytes[20..24].copy_from_slice(&8u32.to_le_bytes());
    assert_eq!(
        ServiceFrame::decode(&mut BytesMut::from(&bytes[..])),
        Err(FrameError::InputOverrun {
            input_length: 8,
            available: 7
        })
    );
    let big = u32::try_from(MAX_INPUT_LEN + 1).expect("fits");
    bytes[20..24].copy_from_slice(&big.to_le_bytes());
    let e = ServiceFrame::decode(&mut BytesMut::from(&bytes[..])).expect_err("too big");
    assert!(e.to_string().contains("MAX_INPUT_LEN"), "{e}");
    let r = Request {
        id: 1,
        code: IoctlCode::GET_CLASS_INFO,
        input: Bytes::from(vec![0; MAX_INPUT_LEN + 1]),
        output_length: 0,
        output: Bytes::new(),
    };
    assert!(matches!(
        r.encode(&mut BytesMut::new()),
        Err(FrameError::InputTooLarge { .. })
    ));
}

#[test]
fn data_limits_on_encode() {
    let c = Completion {
        id: 1,
        status: NtStatus::STATUS_SUCCESS,
        information: 0,
        output: Bytes::from(vec![0; MAX_DATA_LEN + 1]),
    };
    let e = c.encode(&mut BytesMut::new()).expect_err("too big");
    assert!(e.to_string().contains("MAX_DATA_LEN"), "{e}");
    // The largest legal request round-trips.
    let r = ServiceFrame::Request(Request {
        id: 1,
        code: IoctlCode::TRANSFER_IN,
        input: Bytes::from(vec![1; MAX_INPUT_LEN]),
        output_length: u32::try_from(MAX_DATA_LEN).expect("fits"),
        output: Bytes::from(vec![2; MAX_DATA_LEN]),
    });
    let mut buf = encode(&r);
    assert_eq!(buf.len(), MAX_FRAME_LEN);
    assert_eq!(ServiceFrame::decode(&mut buf), Ok(Some(r)));
}

proptest! {
    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut a = BytesMut::from(&bytes[..]);
        while let Ok(Some(_)) = ServiceFrame::decode(&mut a) {}
        let mut b = BytesMut::from(&bytes[..]);
        while let Ok(Some(_)) = DaemonFrame::decode(&mut b) {}
    }

    #[test]
    fn decoders_never_panic_on_plausible_headers(
        len in 0u32..64,
        kind in 0u8..6,
        tail in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut bytes = len.to_le_bytes().to_vec();
        bytes.extend_from_slice(&[kind, 0, 0, 0]);
        bytes.extend_from_slice(&tail);
        let _ = ServiceFrame::decode(&mut BytesMut::from(&bytes[..]));
        let _ = DaemonFrame::decode(&mut BytesMut::from(&bytes[..]));
    }

    #[test]
    fn requests_round_trip(
        id in any::<u64>(),
        code in any::<u32>(),
        input in proptest::collection::vec(any::<u8>(), 0..64),
        output in proptest::collection::vec(any::<u8>(), 0..64),
        output_length in any::<u32>(),
        split in 0usize..200,
    ) {
        let r = ServiceFrame::Request(Request {
            id,
            code: IoctlCode(code),
            input: input.into(),
            output_length,
            output: output.into(),
        });
        let bytes = encode(&r);
        let split = split.min(bytes.len());
        let mut buf = BytesMut::from(&bytes[..split]);
        let first = ServiceFrame::decode(&mut buf);
        if split < bytes.len() {
            prop_assert_eq!(first, Ok(None));
            buf.extend_from_slice(&bytes[split..]);
            prop_assert_eq!(ServiceFrame::decode(&mut buf), Ok(Some(r)));
        } else {
            prop_assert_eq!(first, Ok(Some(r)));
        }
    }
}
