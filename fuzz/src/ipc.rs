//! `ipc_frame`: the daemon's IOCTL socket frames (`usbfn-ipc`), both directions, fed in
//! chunks.
//!
//! Input layout: one control byte, then the bytes on the wire. Bits 0..=5 select the chunk
//! size (`1 + 7 * bits` bytes per read, as for the USB/IP targets); bit 6 clear: a service's
//! bytes into the daemon's decoder ([`ServiceFrame::decode`]), set: the daemon's bytes into
//! a service's ([`DaemonFrame::decode`]).
//!
//! Checks: no panic; a partial frame never grows the buffer past what `MAX_FRAME_LEN`
//! allows; decoded frames obey the limits and re-encode to frames that decode to themselves.

use bytes::BytesMut;
use usbfn_ipc::frame::{DaemonFrame, MAX_DATA_LEN, MAX_FRAME_LEN, MAX_INPUT_LEN, ServiceFrame};

use crate::usbip::{Feed, check_capacity};

/// Control byte bit: decode as a service (daemon frames).
pub const DAEMON_FRAMES: u8 = 0x40;

/// Run the decoders on `data`.
pub fn frames(data: &[u8]) {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let mut feed = Feed {
        rest,
        chunk: 1 + 7 * usize::from(control & 0x3f),
    };
    let mut buf = BytesMut::new();
    loop {
        let progress = if control & DAEMON_FRAMES == 0 {
            ServiceFrame::decode(&mut buf).map(|f| f.map(|f| check_service(&f)))
        } else {
            DaemonFrame::decode(&mut buf).map(|f| f.map(|f| check_daemon(&f)))
        };
        match progress {
            Err(_) => return,
            Ok(Some(())) => {}
            Ok(None) => {
                check_capacity(&buf, MAX_FRAME_LEN, feed.chunk);
                if !feed.more(&mut buf) {
                    return;
                }
            }
        }
    }
}

fn check_service(frame: &ServiceFrame) {
    if let ServiceFrame::Request(r) = frame {
        assert!(r.input.len() <= MAX_INPUT_LEN);
        assert!(r.output.len() <= MAX_DATA_LEN);
    }
    let mut wire = BytesMut::new();
    frame
        .encode(&mut wire)
        .expect("a decoded service frame re-encodes");
    let again = ServiceFrame::decode(&mut wire)
        .expect("re-decodes")
        .expect("whole");
    assert_eq!(&again, frame);
    assert!(wire.is_empty());
}

fn check_daemon(frame: &DaemonFrame) {
    if let DaemonFrame::Completion(c) = frame {
        assert!(c.output.len() <= MAX_DATA_LEN);
    }
    let mut wire = BytesMut::new();
    frame
        .encode(&mut wire)
        .expect("a decoded daemon frame re-encodes");
    let again = DaemonFrame::decode(&mut wire)
        .expect("re-decodes")
        .expect("whole");
    assert_eq!(&again, frame);
    assert!(wire.is_empty());
}
