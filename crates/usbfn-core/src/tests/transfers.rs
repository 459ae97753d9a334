//! Transfers, configuration and bus events, cancellation.

use bytes::Bytes;

use super::*;
use crate::*;

#[test]
fn configuration_starts_bulk_flow_both_ways() {
    let mut h = SimHost::new(GZ, BusSpeed::High);
    assert!(h.set_configuration(1).status.is_success());
    assert_eq!(h.dev.state(), DeviceState::Configured);
    assert_eq!(h.drain_events(F0), vec![BusEvent::Configured(1)]);
    let info = h.dev.class_info(F0).expect("class info");
    let pipes = &info.per_speed[1].pipes;
    let (in_pipe, out_pipe) = (pipes[0].1, pipes[1].1);
    // IN: URB first, then data.
    let urb = h.bulk_in(1, 4096);
    assert!(
        h.dev.poll_urb_completion().is_none(),
        "no data yet: the URB waits"
    );
    h.dev
        .submit_transfer(
            F0,
            TransferId(1),
            in_pipe,
            TransferRequest::In {
                data: Bytes::from_static(b"hello"),
                append_zero_packet: false,
            },
            h.now,
        )
        .expect("in");
    let c = h.dev.poll_urb_completion().expect("completed");
    assert_eq!((c.id, &c.data[..]), (urb, &b"hello"[..]));
    // OUT.
    h.dev
        .submit_transfer(
            F0,
            TransferId(2),
            out_pipe,
            TransferRequest::Out { capacity: 4096 },
            h.now,
        )
        .expect("out");
    let urb = h.bulk_out(1, Bytes::from_static(b"world"));
    assert_eq!(h.dev.poll_urb_completion().map(|c| c.id), Some(urb));
    let t = h
        .dev
        .poll_transfer_completion()
        .filter(|t| t.id == TransferId(1))
        .and(h.dev.poll_transfer_completion())
        .expect("out done");
    assert_eq!(&t.data[..], b"world");
}

#[test]
fn transfers_before_configuration_are_refused() {
    let mut h = SimHost::new(GZ, BusSpeed::High);
    let err = h
        .dev
        .submit_transfer(
            F0,
            TransferId(1),
            PipeId(1),
            TransferRequest::Out { capacity: 64 },
            h.now,
        )
        .expect_err("not configured");
    assert!(matches!(err, ServiceError::InvalidDeviceState(_)), "{err}");
}

#[test]
fn detach_cancels_everything_and_reset_reports_speed() {
    let mut h = SimHost::new(GZ, BusSpeed::High);
    h.set_configuration(1);
    h.drain_events(F0);
    h.dev
        .submit_transfer(
            F0,
            TransferId(1),
            PipeId(2),
            TransferRequest::Out { capacity: 512 },
            h.now,
        )
        .expect("queued");
    let urb = h.bulk_in(1, 512);
    h.dev.bus_detach(h.now);
    assert_eq!(
        h.dev.poll_urb_completion().map(|c| (c.id, c.status)),
        Some((urb, CompletionStatus::Shutdown))
    );
    assert_eq!(
        h.dev.poll_transfer_completion().map(|t| t.status),
        Some(CompletionStatus::Cancelled)
    );
    assert_eq!(h.drain_events(F0), vec![BusEvent::Detach]);
    h.dev.bus_attach(h.now);
    h.dev.bus_reset(BusSpeed::Super, h.now);
    assert_eq!(
        h.drain_events(F0),
        vec![BusEvent::Attach, BusEvent::Reset(BusSpeed::Super)]
    );
}

#[test]
fn deactivate_asks_the_bus_to_disconnect() {
    let mut h = SimHost::new(GZ, BusSpeed::High);
    h.dev.deactivate(F0, h.now).expect("deactivate");
    assert_eq!(h.dev.poll_bus_request(), Some(BusRequest::Disconnect));
    assert!(!h.dev.is_ready());
}

#[test]
fn service_errors_name_the_problem() {
    let mut h = SimHost::new(GZ, BusSpeed::High);
    h.set_configuration(1);
    let e = h
        .dev
        .submit_transfer(
            F0,
            TransferId(1),
            PipeId(9),
            TransferRequest::Out { capacity: 1 },
            h.now,
        )
        .expect_err("no pipe 9");
    assert!(e.to_string().contains("no pipe 9"), "{e}");
    let e = h
        .dev
        .submit_transfer(
            F0,
            TransferId(1),
            PipeId(1),
            TransferRequest::Out { capacity: 1 },
            h.now,
        )
        .expect_err("wrong direction");
    assert!(matches!(e, ServiceError::InvalidParameter(_)), "{e}");
    let e = h
        .dev
        .submit_transfer(
            F0,
            TransferId(1),
            PipeId(1),
            TransferRequest::Out {
                capacity: MAX_TRANSFER_LENGTH + 1,
            },
            h.now,
        )
        .expect_err("too large");
    assert!(matches!(e, ServiceError::LimitExceeded { .. }), "{e}");
    let e = h
        .dev
        .control_handshake(F0, Handshake::In, h.now)
        .expect_err("nothing pending");
    assert!(matches!(e, ServiceError::InvalidDeviceState(_)), "{e}");
}

#[test]
fn unlink_pending_urbs() {
    let mut h = SimHost::new(GZ, BusSpeed::High);
    h.set_configuration(1);
    let urb = h.bulk_in(1, 512);
    assert!(h.dev.unlink_urb(urb, h.now));
    assert!(!h.dev.unlink_urb(urb, h.now));
    h.dev
        .submit_transfer(
            F0,
            TransferId(1),
            PipeId(1),
            TransferRequest::In {
                data: Bytes::from_static(b"z"),
                append_zero_packet: false,
            },
            h.now,
        )
        .expect("in");
    assert!(
        h.dev.poll_urb_completion().is_none(),
        "the unlinked URB never completes"
    );
}

#[test]
fn reset_and_unconfigure_cancel_transfers() {
    let mut h = SimHost::new(GZ, BusSpeed::High);
    h.set_configuration(1);
    h.dev
        .submit_transfer(
            F0,
            TransferId(1),
            PipeId(1),
            TransferRequest::In {
                data: Bytes::from_static(b"a"),
                append_zero_packet: false,
            },
            h.now,
        )
        .expect("in");
    assert!(h.set_configuration(0).status.is_success());
    let t = h.dev.poll_transfer_completion().expect("cancelled");
    assert_eq!(
        (t.id, t.status),
        (TransferId(1), CompletionStatus::Cancelled)
    );
    assert_eq!(
        h.drain_events(F0),
        vec![BusEvent::Configured(1), BusEvent::UnConfigured]
    );
    h.set_configuration(1);
    h.dev
        .submit_transfer(
            F0,
            TransferId(2),
            PipeId(2),
            TransferRequest::Out { capacity: 64 },
            h.now,
        )
        .expect("out");
    let urb = h.bulk_in(1, 64);
    h.dev.bus_reset(BusSpeed::Full, h.now);
    assert_eq!(
        h.dev.poll_transfer_completion().map(|t| (t.id, t.status)),
        Some((TransferId(2), CompletionStatus::Cancelled))
    );
    assert_eq!(
        h.dev.poll_urb_completion().map(|c| (c.id, c.status)),
        Some((urb, CompletionStatus::Shutdown))
    );
    assert_eq!(h.dev.state(), DeviceState::Default);
    assert!(
        h.drain_events(F0)
            .ends_with(&[BusEvent::Reset(BusSpeed::Full)])
    );
}
