//! Isochronous and interrupt endpoints through the device: alternate setting 1 of a
//! source/sink with iso IN/OUT, interrupt endpoints paced by their interval.

use std::time::Duration;

use super::*;

const ISO: &str = r#"
    [device]
    vendor_id = 0x0525
    product_id = 0xa4a0
    [[interfaces]]
    name = "source-sink"
    [[interfaces.endpoints]]
    address = 0x81
    type = "bulk"
    [[interfaces.endpoints]]
    address = 0x02
    type = "bulk"
    [[interfaces.endpoints]]
    address = 0x83
    type = "interrupt"
    max_packet = 64
    interval = { full = 4, high = 4, super = 4 }
    [[interfaces.alternates]]
    [[interfaces.alternates.endpoints]]
    address = 0x84
    type = "isochronous"
    max_packet = { full = 1023, high = 0x1400, super = 1024 }
    interval = 1
    [[interfaces.alternates.endpoints]]
    address = 0x05
    type = "isochronous"
    max_packet = { full = 1023, high = 1024, super = 1024 }
    interval = { full = 1, high = 4, super = 4 }
"#;

fn configured(speed: BusSpeed, alt: u8) -> SimHost {
    let mut h = SimHost::new(ISO, speed);
    assert!(h.set_configuration(1).status.is_success());
    if alt != 0 {
        let c = h.control_now(
            std_out(
                StandardRequest::SET_INTERFACE,
                Recipient::Interface,
                u16::from(alt),
                0,
            ),
            &[],
        );
        assert!(c.status.is_success());
    }
    h.drain_events(F0);
    h
}

fn pipe_of(h: &SimHost, address: u8) -> PipeId {
    h.dev
        .class_info(F0)
        .expect("class info")
        .at(h.dev.speed())
        .pipes
        .iter()
        .find(|(d, _)| d.b_endpoint_address.0 == address)
        .map(|(_, p)| *p)
        .expect("pipe")
}

fn iso_urb(h: &mut SimHost, ep: u8, direction: Direction, lengths: &[u32], data: Bytes) -> UrbId {
    let id = h.id();
    h.submit(Urb::iso(id, ep, direction, lengths, data));
    id
}

#[test]
fn iso_in_urb_completes_at_bus_pace_with_high_bandwidth_packets() {
    let mut h = configured(BusSpeed::High, 1);
    let pipe = pipe_of(&h, 0x84);
    let now = h.now;
    // wMaxPacketSize 0x1400: 1024 bytes × 3 transactions per microframe.
    for i in 0..8 {
        let data = Bytes::from(vec![i as u8; 3072]);
        h.dev
            .submit_transfer(
                F0,
                TransferId(i),
                pipe,
                TransferRequest::In {
                    data,
                    append_zero_packet: false,
                },
                now,
            )
            .expect("queued");
    }
    let urb = iso_urb(&mut h, 4, Direction::In, &[3072; 8], Bytes::new());
    let due = h.dev.poll_timeout().expect("the bus clock has a deadline");
    // Submitted in microframe 0: packets in 1..=8, complete when microframe 9 begins.
    assert_eq!(due, now + Duration::from_micros(9 * 125));
    h.dev.handle_timeout(due - Duration::from_nanos(1));
    assert!(
        h.dev.poll_urb_completion().is_none(),
        "never faster than the bus"
    );
    h.dev.handle_timeout(due);
    let c = h.dev.poll_urb_completion().expect("due");
    assert_eq!(c.id, urb);
    assert_eq!(c.actual_length, 8 * 3072);
    let iso = c.iso.expect("iso results");
    assert_eq!(iso.error_count(), 0);
    assert_eq!(iso.start_frame, 1);
    assert_eq!(c.data[3072], 1, "packet 1's bytes follow packet 0's");
    assert_eq!(
        std::iter::from_fn(|| h.dev.poll_transfer_completion()).count(),
        8
    );
}

#[test]
fn iso_out_interval_is_two_to_the_binterval_minus_one() {
    let mut h = configured(BusSpeed::High, 1);
    let pipe = pipe_of(&h, 0x05);
    let now = h.now;
    for i in 0..4 {
        h.dev
            .submit_transfer(
                F0,
                TransferId(i),
                pipe,
                TransferRequest::Out { capacity: 1024 },
                now,
            )
            .expect("queued");
    }
    iso_urb(
        &mut h,
        5,
        Direction::Out,
        &[1024; 4],
        Bytes::from(vec![9u8; 4096]),
    );
    // bInterval 4 at high speed: every 8 microframes; 4 packets span 32.
    assert_eq!(
        h.dev.poll_timeout(),
        Some(now + Duration::from_micros((1 + 32) * 125))
    );
    h.dev.handle_timeout(now + Duration::from_millis(10));
    let c = h.dev.poll_urb_completion().expect("done");
    assert_eq!(
        (c.status, c.actual_length),
        (CompletionStatus::Success, 4096)
    );
    let reads: Vec<usize> = std::iter::from_fn(|| h.dev.poll_transfer_completion())
        .map(|t| t.bytes_transferred)
        .collect();
    assert_eq!(reads, vec![1024; 4]);
}

#[test]
fn full_speed_frames_are_a_millisecond() {
    let mut h = configured(BusSpeed::Full, 1);
    let now = h.now;
    iso_urb(&mut h, 4, Direction::In, &[1023; 3], Bytes::new());
    assert_eq!(h.dev.poll_timeout(), Some(now + Duration::from_millis(4)));
    h.dev.handle_timeout(now + Duration::from_millis(4));
    let c = h.dev.poll_urb_completion().expect("done");
    let iso = c.iso.expect("iso");
    assert_eq!(iso.error_count(), 3, "no data queued: every packet missed");
    assert_eq!(c.status, CompletionStatus::Success);
}

#[test]
fn iso_endpoints_have_no_halt_and_reject_non_iso_urbs() {
    let mut h = configured(BusSpeed::High, 1);
    let pipe = pipe_of(&h, 0x84);
    let c = h.control_now(
        std_out(StandardRequest::SET_FEATURE, Recipient::Endpoint, 0, 0x84),
        &[],
    );
    assert_eq!(c.status, CompletionStatus::Stall);
    assert!(h.dev.set_pipe_state(F0, pipe, true, h.now).is_err());
    let bulk = h.bulk_in(4, 1024);
    let c = h.dev.poll_urb_completion().expect("refused");
    assert_eq!((c.id, c.status), (bulk, CompletionStatus::Invalid));
    // And an iso URB to a bulk endpoint (of alternate setting 0) gets per-packet results.
    let c = h.control_now(
        std_out(StandardRequest::SET_INTERFACE, Recipient::Interface, 0, 0),
        &[],
    );
    assert!(c.status.is_success());
    iso_urb(&mut h, 1, Direction::In, &[512; 2], Bytes::new());
    let c = h.dev.poll_urb_completion().expect("refused");
    assert_eq!(c.status, CompletionStatus::Invalid);
    assert_eq!(c.iso.map(|i| i.packets.len()), Some(2));
    // So is one to endpoint 0 (found by the core_events fuzz target: it went to the control
    // queue and completed without per-packet results).
    iso_urb(&mut h, 0, Direction::In, &[8; 3], Bytes::new());
    let c = h.dev.poll_urb_completion().expect("refused");
    assert_eq!(c.status, CompletionStatus::Invalid);
    assert_eq!(c.iso.map(|i| i.packets.len()), Some(3));
}

#[test]
fn reset_fails_pending_iso_urbs_with_every_packet() {
    let mut h = configured(BusSpeed::High, 1);
    let urb = iso_urb(&mut h, 4, Direction::In, &[1024; 5], Bytes::new());
    h.dev.bus_reset(BusSpeed::High, h.now);
    let c = h.dev.poll_urb_completion().expect("failed");
    assert_eq!((c.id, c.status), (urb, CompletionStatus::Shutdown));
    assert_eq!(c.iso.map(|i| i.error_count()), Some(5));
    assert_eq!(h.dev.poll_timeout(), None);
}

#[test]
fn interrupt_in_stays_pending_and_then_takes_one_packet_per_interval() {
    let mut h = configured(BusSpeed::Full, 0);
    let pipe = pipe_of(&h, 0x83);
    let urb = h.bulk_in(3, 256);
    assert!(h.dev.poll_urb_completion().is_none());
    assert_eq!(
        h.dev.poll_timeout(),
        None,
        "a NAKed interrupt IN needs no timer"
    );
    let later = h.now + Duration::from_millis(50);
    h.dev
        .submit_transfer(
            F0,
            TransferId(1),
            pipe,
            TransferRequest::In {
                data: Bytes::from(vec![7u8; 256]),
                append_zero_packet: false,
            },
            later,
        )
        .expect("queued");
    // 4 packets of 64 bytes, 4 frames apart, from frame 50: the last in frame 62.
    let due = h.dev.poll_timeout().expect("completion waits for the bus");
    assert_eq!(due, h.now + Duration::from_millis(63));
    assert!(h.dev.poll_urb_completion().is_none());
    h.dev.handle_timeout(due);
    let c = h.dev.poll_urb_completion().expect("due");
    assert_eq!((c.id, c.actual_length), (urb, 256));
    // The next URB continues after the last slot used.
    h.dev
        .submit_transfer(
            F0,
            TransferId(2),
            pipe,
            TransferRequest::In {
                data: Bytes::from(vec![1u8; 10]),
                append_zero_packet: false,
            },
            due,
        )
        .expect("queued");
    h.bulk_in(3, 64);
    assert_eq!(
        h.dev.poll_timeout(),
        Some(h.now + Duration::from_millis(67))
    );
}

#[test]
fn unlinking_a_paced_interrupt_urb_answers_nothing_more() {
    let mut h = configured(BusSpeed::High, 0);
    let pipe = pipe_of(&h, 0x83);
    let now = h.now;
    h.dev
        .submit_transfer(
            F0,
            TransferId(1),
            pipe,
            TransferRequest::In {
                data: Bytes::from(vec![7u8; 10]),
                append_zero_packet: false,
            },
            now,
        )
        .expect("queued");
    let urb = h.bulk_in(3, 64);
    assert!(h.dev.poll_timeout().is_some());
    assert!(h.dev.unlink_urb(urb, h.now));
    h.dev.handle_timeout(now + Duration::from_secs(1));
    assert!(h.dev.poll_urb_completion().is_none());
    assert_eq!(h.dev.poll_timeout(), None);
}
