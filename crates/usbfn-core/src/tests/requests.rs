//! Standard requests answered by the core, and setup forwarding to services.

use std::time::Duration;

use bytes::Bytes;
use usbfn_wire::{Direction, Recipient, RequestType, SetupPacket, StandardRequest};

use super::*;
use crate::*;

#[test]
fn halt_and_clear_from_the_host() {
    let mut h = SimHost::new(GZ, BusSpeed::High);
    h.set_configuration(1);
    let halt = std_out(StandardRequest::SET_FEATURE, Recipient::Endpoint, 0, 0x81);
    assert!(h.control_now(halt, &[]).status.is_success());
    let status = h.control_now(
        std_in(StandardRequest::GET_STATUS, Recipient::Endpoint, 0, 0x81, 2),
        &[],
    );
    assert_eq!(&status.data[..], &[1, 0]);
    assert!(h.dev.get_pipe_state(F0, PipeId(1)).expect("state"));
    h.bulk_in(1, 512);
    assert_eq!(
        h.dev.poll_urb_completion().map(|c| c.status),
        Some(CompletionStatus::Stall)
    );
    let clear = std_out(StandardRequest::CLEAR_FEATURE, Recipient::Endpoint, 0, 0x81);
    assert!(h.control_now(clear, &[]).status.is_success());
    assert_eq!(h.dev.pipe_status(PipeId(1)), Some((false, false)));
    // A nonexistent endpoint stalls.
    let bad = std_in(StandardRequest::GET_STATUS, Recipient::Endpoint, 0, 0x85, 2);
    assert_eq!(h.control_now(bad, &[]).status, CompletionStatus::Stall);
}

#[test]
fn service_stall_is_seen_by_the_host() {
    let mut h = SimHost::new(GZ, BusSpeed::High);
    h.set_configuration(1);
    h.dev
        .set_pipe_state(F0, PipeId(2), true, h.now)
        .expect("stall");
    h.bulk_out(1, Bytes::from_static(b"x"));
    assert_eq!(
        h.dev.poll_urb_completion().map(|c| c.status),
        Some(CompletionStatus::Stall)
    );
    let status = h.control_now(
        std_in(StandardRequest::GET_STATUS, Recipient::Endpoint, 0, 0x01, 2),
        &[],
    );
    assert_eq!(&status.data[..], &[1, 0]);
}

#[test]
fn vendor_requests_go_to_the_owner_and_are_answered() {
    let mut h = SimHost::new(GZ, BusSpeed::High);
    h.set_configuration(1);
    h.drain_events(F0);
    // OUT data stage.
    let write = SetupPacket::new(
        Direction::Out,
        RequestType::Vendor,
        Recipient::Device,
        0x5b,
        0,
        0,
        4,
    );
    let urb = h.control(write, b"abcd");
    assert!(
        h.dev.poll_urb_completion().is_none(),
        "waits for the service"
    );
    assert_eq!(h.drain_events(F0), vec![BusEvent::SetupPacket(write)]);
    h.dev
        .submit_transfer(
            F0,
            TransferId(1),
            PipeId(0),
            TransferRequest::Out { capacity: 4096 },
            h.now,
        )
        .expect("data");
    assert_eq!(
        h.dev.poll_transfer_completion().map(|t| t.data),
        Some(Bytes::from_static(b"abcd"))
    );
    assert!(
        h.dev.poll_urb_completion().is_none(),
        "status stage still to come"
    );
    h.dev
        .control_handshake(F0, Handshake::In, h.now)
        .expect("handshake");
    let c = h.dev.poll_urb_completion().expect("done");
    assert_eq!(
        (c.id, c.status, c.actual_length),
        (urb, CompletionStatus::Success, 4)
    );
    // IN data stage, answer shorter than wLength.
    let read = SetupPacket::new(
        Direction::In,
        RequestType::Vendor,
        Recipient::Device,
        0x5c,
        0,
        0,
        64,
    );
    let urb = h.control(read, &[]);
    assert_eq!(h.drain_events(F0), vec![BusEvent::SetupPacket(read)]);
    h.dev
        .submit_transfer(
            F0,
            TransferId(2),
            PipeId(0),
            TransferRequest::In {
                data: Bytes::from_static(b"abcd"),
                append_zero_packet: false,
            },
            h.now,
        )
        .expect("in");
    let c = h.dev.poll_urb_completion().expect("done");
    assert_eq!((c.id, &c.data[..]), (urb, &b"abcd"[..]));
    h.dev
        .control_handshake(F0, Handshake::Out, h.now)
        .expect("late handshake accepted");
    // No data stage; stall by the service.
    let nodata = SetupPacket::new(
        Direction::Out,
        RequestType::Vendor,
        Recipient::Device,
        0x77,
        0,
        0,
        0,
    );
    h.control(nodata, &[]);
    h.dev
        .set_pipe_state(F0, PipeId(0), true, h.now)
        .expect("stall ep0");
    assert_eq!(
        h.dev.poll_urb_completion().map(|c| c.status),
        Some(CompletionStatus::Stall)
    );
}

#[test]
fn unanswered_setup_stalls_after_the_timeout_and_queued_requests_follow() {
    let mut h = SimHost::new(GZ, BusSpeed::High);
    let req = SetupPacket::new(
        Direction::In,
        RequestType::Vendor,
        Recipient::Device,
        0x5c,
        0,
        0,
        8,
    );
    let first = h.control(req, &[]);
    let second = h.control(
        std_in(StandardRequest::GET_STATUS, Recipient::Device, 0, 0, 2),
        &[],
    );
    assert!(h.dev.poll_urb_completion().is_none());
    let deadline = h.dev.poll_timeout().expect("a deadline");
    assert_eq!(deadline, h.now + Duration::from_secs(5));
    h.dev.handle_timeout(deadline - Duration::from_millis(1));
    assert!(h.dev.poll_urb_completion().is_none());
    h.dev.handle_timeout(deadline);
    let a = h.dev.poll_urb_completion().expect("stalled");
    assert_eq!((a.id, a.status), (first, CompletionStatus::Stall));
    let b = h.dev.poll_urb_completion().expect("next answered");
    assert_eq!((b.id, b.status), (second, CompletionStatus::Success));
    // A late answer is refused.
    let err = h.dev.submit_transfer(
        F0,
        TransferId(9),
        PipeId(0),
        TransferRequest::In {
            data: Bytes::new(),
            append_zero_packet: false,
        },
        h.now,
    );
    assert!(err.is_err());
}

/// The clock bug of issue 14: a setup packet queued behind one a service is answering is
/// forwarded when the service answers, and its deadline runs from that moment (the `now`
/// of the service's call), not from the last bus input.
#[test]
fn a_queued_setup_forwarded_by_a_service_answer_gets_a_fresh_deadline() {
    let mut h = SimHost::new(GZ, BusSpeed::High);
    let vendor_in = |len| {
        SetupPacket::new(
            Direction::In,
            RequestType::Vendor,
            Recipient::Device,
            0x5c,
            0,
            0,
            len,
        )
    };
    let first = h.control(vendor_in(4), &[]);
    let second = h.control(vendor_in(2), &[]);
    assert_eq!(h.dev.poll_timeout(), Some(h.now + Duration::from_secs(5)));
    assert_eq!(
        h.drain_events(F0),
        vec![BusEvent::SetupPacket(vendor_in(4))]
    );
    // The service answers 4 s later: the second request is forwarded then.
    let answered = h.now + Duration::from_secs(4);
    h.dev
        .submit_transfer(
            F0,
            TransferId(1),
            PipeId(0),
            TransferRequest::In {
                data: Bytes::from_static(b"abcd"),
                append_zero_packet: false,
            },
            answered,
        )
        .expect("data stage");
    // (The IN data stage completes the host's URB; the handshake owed after it is not
    // needed to move the queue on.)
    let a = h.dev.poll_urb_completion().expect("first answered");
    assert_eq!((a.id, a.status), (first, CompletionStatus::Success));
    assert_eq!(
        h.drain_events(F0),
        vec![BusEvent::SetupPacket(vendor_in(2))]
    );
    assert_eq!(
        h.dev.poll_timeout(),
        Some(answered + Duration::from_secs(5)),
        "the forwarded request's deadline runs from the answer, not from its submission"
    );
    // One second after the stale deadline it is still waiting for its service.
    h.dev.handle_timeout(h.now + Duration::from_secs(6));
    assert!(h.dev.poll_urb_completion().is_none());
    h.dev.handle_timeout(answered + Duration::from_secs(5));
    let b = h
        .dev
        .poll_urb_completion()
        .expect("stalled at its own deadline");
    assert_eq!((b.id, b.status), (second, CompletionStatus::Stall));
}

#[test]
fn requests_without_owner_stall() {
    let mut h = SimHost::new(GZ, BusSpeed::High);
    h.set_configuration(1);
    let class_iface = SetupPacket::new(
        Direction::In,
        RequestType::Class,
        Recipient::Interface,
        1,
        0,
        7,
        8,
    );
    assert_eq!(
        h.control_now(class_iface, &[]).status,
        CompletionStatus::Stall
    );
    let set_descriptor = std_out(
        StandardRequest::SET_DESCRIPTOR,
        Recipient::Device,
        0x0100,
        0,
    );
    assert_eq!(
        h.control_now(set_descriptor, &[]).status,
        CompletionStatus::Stall
    );
}

#[test]
fn set_interface_switches_endpoints_and_cancels_transfers() {
    let mut h = SimHost::new(GZ, BusSpeed::High);
    h.set_configuration(1);
    h.drain_events(F0);
    h.dev
        .submit_transfer(
            F0,
            TransferId(1),
            PipeId(1),
            TransferRequest::In {
                data: Bytes::from_static(b"q"),
                append_zero_packet: false,
            },
            h.now,
        )
        .expect("queued");
    let set = std_out(StandardRequest::SET_INTERFACE, Recipient::Interface, 1, 0);
    assert!(h.control_now(set, &[]).status.is_success());
    let t = h.dev.poll_transfer_completion().expect("cancelled");
    assert_eq!(
        (t.id, t.status),
        (TransferId(1), CompletionStatus::Cancelled)
    );
    assert_eq!(
        h.drain_events(F0),
        vec![BusEvent::SetInterface {
            interface: 0,
            alternate: 1
        }]
    );
    let alt = h.control_now(
        std_in(
            StandardRequest::GET_INTERFACE,
            Recipient::Interface,
            0,
            0,
            1,
        ),
        &[],
    );
    assert_eq!(&alt.data[..], &[1]);
    // The OUT endpoint does not exist in alternate 1.
    h.bulk_out(1, Bytes::from_static(b"x"));
    assert_eq!(
        h.dev.poll_urb_completion().map(|c| c.status),
        Some(CompletionStatus::Stall)
    );
    let bad = std_out(StandardRequest::SET_INTERFACE, Recipient::Interface, 2, 0);
    assert_eq!(h.control_now(bad, &[]).status, CompletionStatus::Stall);
}

#[test]
fn standard_requests_and_their_stall_cases() {
    let mut h = SimHost::new(GZ, BusSpeed::High);
    let get =
        |h: &mut SimHost, r: StandardRequest, rcpt: Recipient, value: u16, index: u16, len: u16| {
            h.control_now(std_in(r, rcpt, value, index, len), &[])
        };
    let set = |h: &mut SimHost, r: StandardRequest, rcpt: Recipient, value: u16, index: u16| {
        h.control_now(std_out(r, rcpt, value, index), &[]).status
    };
    // Before configuration: GET_CONFIGURATION says 0; interface requests stall.
    assert_eq!(
        &get(
            &mut h,
            StandardRequest::GET_CONFIGURATION,
            Recipient::Device,
            0,
            0,
            1
        )
        .data[..],
        &[0]
    );
    assert_eq!(
        get(
            &mut h,
            StandardRequest::GET_INTERFACE,
            Recipient::Interface,
            0,
            0,
            1
        )
        .status,
        CompletionStatus::Stall
    );
    assert_eq!(
        set(
            &mut h,
            StandardRequest::SET_CONFIGURATION,
            Recipient::Device,
            7,
            0
        ),
        CompletionStatus::Stall
    );
    assert_eq!(
        set(
            &mut h,
            StandardRequest::SET_ADDRESS,
            Recipient::Device,
            128,
            0
        ),
        CompletionStatus::Stall
    );
    // Device status: not self-powered, remote wakeup not supported (so its feature stalls).
    assert_eq!(
        &get(
            &mut h,
            StandardRequest::GET_STATUS,
            Recipient::Device,
            0,
            0,
            2
        )
        .data[..],
        &[0, 0]
    );
    assert_eq!(
        set(
            &mut h,
            StandardRequest::SET_FEATURE,
            Recipient::Device,
            1,
            0
        ),
        CompletionStatus::Stall
    );
    // TEST_MODE: selectors 1..=5 in wIndex's high byte.
    assert!(
        set(
            &mut h,
            StandardRequest::SET_FEATURE,
            Recipient::Device,
            2,
            0x0400
        )
        .is_success()
    );
    assert_eq!(
        set(
            &mut h,
            StandardRequest::SET_FEATURE,
            Recipient::Device,
            2,
            0x0900
        ),
        CompletionStatus::Stall
    );
    assert_eq!(
        set(
            &mut h,
            StandardRequest::CLEAR_FEATURE,
            Recipient::Device,
            2,
            0x0400
        ),
        CompletionStatus::Stall
    );
    assert!(set(&mut h, StandardRequest::SET_SEL, Recipient::Device, 0, 0).is_success());
    h.set_configuration(1);
    assert_eq!(
        &get(
            &mut h,
            StandardRequest::GET_CONFIGURATION,
            Recipient::Device,
            0,
            0,
            1
        )
        .data[..],
        &[1]
    );
    assert_eq!(
        &get(
            &mut h,
            StandardRequest::GET_STATUS,
            Recipient::Interface,
            0,
            0,
            2
        )
        .data[..],
        &[0, 0]
    );
    assert_eq!(
        get(
            &mut h,
            StandardRequest::GET_STATUS,
            Recipient::Interface,
            0,
            3,
            2
        )
        .status,
        CompletionStatus::Stall
    );
    assert_eq!(
        &get(
            &mut h,
            StandardRequest::GET_STATUS,
            Recipient::Endpoint,
            0,
            0x80,
            2
        )
        .data[..],
        &[0, 0]
    );
    assert_eq!(
        get(
            &mut h,
            StandardRequest::SYNCH_FRAME,
            Recipient::Endpoint,
            0,
            0x81,
            2
        )
        .status,
        CompletionStatus::Stall
    );
    assert_eq!(
        set(
            &mut h,
            StandardRequest::SET_FEATURE,
            Recipient::Interface,
            0,
            0
        ),
        CompletionStatus::Stall
    );
    assert_eq!(
        get(
            &mut h,
            StandardRequest::GET_STATUS,
            Recipient::Other,
            0,
            0,
            2
        )
        .status,
        CompletionStatus::Stall
    );
    // SET_CONFIGURATION(0) unconfigures.
    assert!(
        set(
            &mut h,
            StandardRequest::SET_CONFIGURATION,
            Recipient::Device,
            0,
            0
        )
        .is_success()
    );
    assert_eq!(
        (h.dev.state(), h.dev.configuration_value()),
        (DeviceState::Addressed, None)
    );
}

#[test]
fn remote_wakeup_feature_when_supported() {
    let config = GZ.replace(
        "serial = \"0123456789\"",
        "serial = \"0123456789\"\nremote_wakeup = true\nself_powered = true",
    );
    let mut h = SimHost::new(&config, BusSpeed::High);
    let status = std_in(StandardRequest::GET_STATUS, Recipient::Device, 0, 0, 2);
    assert_eq!(
        &h.control_now(status, &[]).data[..],
        &[1, 0],
        "self-powered"
    );
    assert!(
        h.control_now(
            std_out(StandardRequest::SET_FEATURE, Recipient::Device, 1, 0),
            &[]
        )
        .status
        .is_success()
    );
    assert_eq!(
        &h.control_now(status, &[]).data[..],
        &[3, 0],
        "self-powered + remote wakeup"
    );
    assert!(
        h.control_now(
            std_out(StandardRequest::CLEAR_FEATURE, Recipient::Device, 1, 0),
            &[]
        )
        .status
        .is_success()
    );
    assert_eq!(&h.control_now(status, &[]).data[..], &[1, 0]);
}

#[test]
fn forwarded_setup_without_data_stage_is_acknowledged_by_the_handshake() {
    let mut h = SimHost::new(GZ, BusSpeed::High);
    h.set_configuration(1);
    h.drain_events(F0);
    let class = SetupPacket::new(
        Direction::Out,
        RequestType::Class,
        Recipient::Interface,
        0x0a,
        0,
        0,
        0,
    );
    let urb = h.control(class, &[]);
    assert_eq!(h.drain_events(F0), vec![BusEvent::SetupPacket(class)]);
    assert!(h.dev.poll_urb_completion().is_none());
    h.dev
        .control_handshake(F0, Handshake::Out, h.now)
        .expect("documented name");
    let c = h.dev.poll_urb_completion().expect("done");
    assert_eq!(
        (c.id, c.status, c.actual_length),
        (urb, CompletionStatus::Success, 0)
    );
}

#[test]
fn the_handshake_owed_after_an_in_request_is_not_the_next_requests_status_stage() {
    let mut h = SimHost::new(GZ, BusSpeed::High);
    h.set_configuration(1);
    h.drain_events(F0);
    let get = SetupPacket::new(
        Direction::In,
        RequestType::Vendor,
        Recipient::Device,
        0x5c,
        0,
        0,
        4,
    );
    let set = SetupPacket::new(
        Direction::Out,
        RequestType::Vendor,
        Recipient::Device,
        0x5b,
        0,
        0,
        3,
    );
    let urb = h.control(get, &[]);
    assert_eq!(h.drain_events(F0), vec![BusEvent::SetupPacket(get)]);
    h.dev
        .submit_transfer(
            F0,
            TransferId(1),
            PipeId(0),
            TransferRequest::In {
                data: Bytes::from_static(b"abcd"),
                append_zero_packet: false,
            },
            h.now,
        )
        .expect("in");
    assert_eq!(h.dev.poll_urb_completion().expect("get done").id, urb);
    // The host's next request is forwarded before the service's handshake for the first.
    let next = h.control(set, b"xyz");
    assert_eq!(h.drain_events(F0), vec![BusEvent::SetupPacket(set)]);
    h.dev
        .control_handshake(F0, Handshake::Out, h.now)
        .expect("the owed handshake");
    assert!(
        h.dev.poll_urb_completion().is_none(),
        "the SET is not completed by the GET's handshake"
    );
    h.dev
        .submit_transfer(
            F0,
            TransferId(2),
            PipeId(0),
            TransferRequest::Out { capacity: 3 },
            h.now,
        )
        .expect("the SET's data stage is still there");
    let data = std::iter::from_fn(|| h.dev.poll_transfer_completion())
        .find(|c| c.id == TransferId(2))
        .expect("the SET's data");
    assert_eq!(&data.data[..], b"xyz");
    h.dev
        .control_handshake(F0, Handshake::In, h.now)
        .expect("the SET's handshake");
    let c = h.dev.poll_urb_completion().expect("set done");
    assert_eq!((c.id, c.status), (next, CompletionStatus::Success));
}

const KEYBOARD: &str = r#"
    [device]
    vendor_id = 0x1209
    product_id = 0x0001
    [[interfaces]]
    name = "keyboard"
    class = 3
    subclass = 1
    protocol = 1
    class_descriptors = "09 21 11 01 00 01 22 3f 00"
    endpoints = [{ direction = "in", type = "interrupt", max_packet = 8 }]
    [[interfaces]]
    name = "vendor"
    class = 0xff
"#;

/// GET_DESCRIPTOR to interface `iface` of descriptor type `t`.
fn interface_descriptor(t: u8, iface: u16, len: u16) -> SetupPacket {
    std_in(
        StandardRequest::GET_DESCRIPTOR,
        Recipient::Interface,
        u16::from(t) << 8,
        iface,
        len,
    )
}

#[test]
fn the_hid_descriptor_is_answered_from_the_interface_class_descriptors() {
    let mut h = SimHost::new(KEYBOARD, BusSpeed::Full);
    h.set_configuration(1);
    h.drain_events(F0);
    let c = h.control_now(interface_descriptor(0x21, 0, 9), &[]);
    assert_eq!(c.status, CompletionStatus::Success);
    assert_eq!(&c.data[..], &[9, 0x21, 0x11, 0x01, 0, 1, 0x22, 0x3f, 0]);
    assert!(
        h.drain_events(F0).is_empty(),
        "not forwarded to the service"
    );
    // wLength shorter than the descriptor: the first bytes.
    let c = h.control_now(interface_descriptor(0x21, 0, 4), &[]);
    assert_eq!(&c.data[..], &[9, 0x21, 0x11, 0x01]);
    // There is one HID descriptor: index 1 is the service's business.
    let second = std_in(
        StandardRequest::GET_DESCRIPTOR,
        Recipient::Interface,
        0x2101,
        0,
        9,
    );
    h.control(second, &[]);
    assert_eq!(h.drain_events(F0), vec![BusEvent::SetupPacket(second)]);
}

#[test]
fn the_report_descriptor_and_interfaces_without_hid_go_to_the_service() {
    let mut h = SimHost::new(KEYBOARD, BusSpeed::Full);
    h.set_configuration(1);
    h.drain_events(F0);
    h.drain_events(FunctionId(1));
    let report = interface_descriptor(0x22, 0, 63);
    h.control(report, &[]);
    assert_eq!(h.drain_events(F0), vec![BusEvent::SetupPacket(report)]);
    let mut h = SimHost::new(KEYBOARD, BusSpeed::Full);
    h.set_configuration(1);
    h.drain_events(FunctionId(1));
    let hid_of_vendor = interface_descriptor(0x21, 1, 9);
    h.control(hid_of_vendor, &[]);
    assert_eq!(
        h.drain_events(FunctionId(1)),
        vec![BusEvent::SetupPacket(hid_of_vendor)]
    );
}

const WINUSB: &str = r#"
    [device]
    vendor_id = 0x1209
    product_id = 0x0001
    max_speed = "high"
    [[interfaces]]
    name = "loopback"
    compatible_id = "WINUSB"
    device_request_owner = true
    endpoints = [{ direction = "in", type = "bulk" }, { direction = "out", type = "bulk" }]
"#;

const UUID: [u8; 16] = [
    0xdf, 0x60, 0xdd, 0xd8, 0x89, 0x45, 0xc7, 0x4c, 0x9c, 0xd2, 0x65, 0x9d, 0x9e, 0x64, 0x8a, 0x9f,
];

fn vendor_in(request: u8, index: u16, len: u16) -> SetupPacket {
    SetupPacket::new(
        Direction::In,
        RequestType::Vendor,
        Recipient::Device,
        request,
        0,
        index,
        len,
    )
}

fn bos(h: &mut SimHost) -> Vec<u8> {
    let c = h.control_now(
        std_in(
            StandardRequest::GET_DESCRIPTOR,
            Recipient::Device,
            0x0f00,
            0,
            255,
        ),
        &[],
    );
    assert_eq!(c.status, CompletionStatus::Success);
    c.data.to_vec()
}

#[test]
fn ms_os_20_compatible_id_for_a_single_interface_device() {
    let mut h = SimHost::new(WINUSB, BusSpeed::High);
    let device = h.control_now(
        std_in(
            StandardRequest::GET_DESCRIPTOR,
            Recipient::Device,
            0x0100,
            0,
            18,
        ),
        &[],
    );
    assert_eq!(
        &device.data[2..4],
        &[0x10, 0x02],
        "bcdUSB 2.10: the BOS is read"
    );
    let bos = bos(&mut h);
    let at = bos
        .windows(16)
        .position(|w| w == UUID)
        .expect("MS OS 2.0 platform capability");
    assert_eq!(&bos[at - 4..at], &[28, 0x10, 0x05, 0]);
    // dwWindowsVersion, wMSOSDescriptorSetTotalLength 30, bMS_VendorCode 0x20, bAltEnumCode.
    assert_eq!(&bos[at + 16..at + 24], &[0, 0, 3, 6, 30, 0, 0x20, 0]);
    assert_eq!(bos[4], 2, "USB 2.0 extension + platform");
    assert_eq!(usize::from(u16::from_le_bytes([bos[2], bos[3]])), bos.len());

    h.set_configuration(1);
    h.drain_events(F0);
    let set = h.control_now(vendor_in(0x20, 7, 30), &[]);
    assert_eq!(set.status, CompletionStatus::Success);
    let mut want = vec![10, 0, 0, 0, 0, 0, 3, 6, 30, 0, 20, 0, 3, 0];
    want.extend(b"WINUSB\0\0");
    want.extend([0u8; 8]);
    assert_eq!(&set.data[..], &want[..]);
    assert!(h.drain_events(F0).is_empty(), "answered by the core");
    // Another wIndex is the service's (the device request owner's).
    let other = vendor_in(0x20, 4, 16);
    h.control(other, &[]);
    assert_eq!(h.drain_events(F0), vec![BusEvent::SetupPacket(other)]);
}

#[test]
fn ms_os_20_function_subsets_for_a_composite_device() {
    let composite = r#"
        [device]
        vendor_id = 0x1209
        product_id = 0x0003
        ms_os_vendor_code = 0x42
        [[interfaces]]
        name = "hid"
        class = 3
        [[interfaces]]
        name = "vendor"
        compatible_id = "WINUSB"
        endpoints = [{ direction = "in", type = "bulk" }]
    "#;
    let mut h = SimHost::new(composite, BusSpeed::High);
    let bos = bos(&mut h);
    let at = bos.windows(16).position(|w| w == UUID).expect("capability");
    // Set header 10 + configuration subset 8 + function subset 8 + compatible ID 20.
    assert_eq!(&bos[at + 20..at + 23], &[46, 0, 0x42]);
    let set = h.control_now(vendor_in(0x42, 7, 46), &[]);
    assert_eq!(set.data.len(), 46);
    assert_eq!(
        &set.data[10..18],
        &[8, 0, 1, 0, 0, 0, 36, 0],
        "configuration 0, 36 bytes"
    );
    assert_eq!(
        &set.data[18..26],
        &[8, 0, 2, 0, 1, 0, 28, 0],
        "function at interface 1"
    );
    assert_eq!(&set.data[30..36], b"WINUSB");
}
