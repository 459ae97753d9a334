//! Device-level tests: a simulated host and a scripted service pump the sans-IO core.

use std::time::{Duration, Instant};

use bytes::Bytes;
use usbfn_wire::{
    ConfigurationDescriptor, DescriptorType, DeviceDescriptor, Direction, Recipient, RequestType,
    SetupPacket, StandardRequest,
};

use crate::*;

const GZ: &str = r#"
    [device]
    vendor_id = 0x0525
    product_id = 0xa4a0
    manufacturer = "usbfn"
    product = "Gadget Zero"
    serial = "0123456789"
    [[interfaces]]
    name = "source-sink"
    guid = "{6C5B3F5E-0D6F-4B0E-9A59-0A5C3B0E7D11}"
    device_request_owner = true
    [[interfaces.endpoints]]
    direction = "in"
    type = "bulk"
    [[interfaces.endpoints]]
    direction = "out"
    type = "bulk"
    [[interfaces.alternates]]
    class = 0xff
    [[interfaces.alternates.endpoints]]
    direction = "in"
    type = "interrupt"
    max_packet = 64
"#;

/// A host that speaks to the device one URB at a time.
struct SimHost {
    dev: Device,
    now: Instant,
    next: u64,
}

const F0: FunctionId = FunctionId(0);

impl SimHost {
    fn new(config: &str, speed: BusSpeed) -> Self {
        let model =
            DeviceModel::build(&DeviceConfig::from_toml(config).expect("toml")).expect("valid");
        let now = Instant::now();
        let mut dev = Device::new(model, now).expect("descriptors fit");
        for f in 0..dev.model().interfaces.len() {
            dev.activate(FunctionId(f)).expect("activate");
        }
        assert_eq!(dev.poll_bus_request(), Some(BusRequest::Ready));
        dev.bus_attach(now);
        dev.bus_reset(speed, now);
        let mut host = SimHost { dev, now, next: 1 };
        host.drain_events(F0);
        host
    }

    fn id(&mut self) -> UrbId {
        self.next += 1;
        UrbId(self.next)
    }

    fn submit(&mut self, urb: Urb) {
        self.dev.submit_urb(urb, self.now);
    }

    fn control(&mut self, setup: SetupPacket, data: &[u8]) -> UrbId {
        let id = self.id();
        self.submit(Urb {
            id,
            endpoint: 0,
            direction: setup.direction(),
            setup: Some(setup),
            buffer_len: usize::from(setup.w_length),
            data: Bytes::copy_from_slice(data),
            short_not_ok: false,
            zero_packet: false,
            iso_packets: 0,
        });
        id
    }

    /// A control transfer answered by the core.
    fn control_now(&mut self, setup: SetupPacket, data: &[u8]) -> UrbCompletion {
        let id = self.control(setup, data);
        let c = self.dev.poll_urb_completion().expect("answered at once");
        assert_eq!(c.id, id);
        c
    }

    fn get_descriptor(&mut self, kind: DescriptorType, index: u8, len: u16) -> UrbCompletion {
        self.control_now(
            SetupPacket::new(
                Direction::In,
                RequestType::Standard,
                Recipient::Device,
                StandardRequest::GET_DESCRIPTOR.0,
                u16::from(kind.0) << 8 | u16::from(index),
                0,
                len,
            ),
            &[],
        )
    }

    fn set_configuration(&mut self, value: u8) -> UrbCompletion {
        self.control_now(
            SetupPacket::new(
                Direction::Out,
                RequestType::Standard,
                Recipient::Device,
                StandardRequest::SET_CONFIGURATION.0,
                u16::from(value),
                0,
                0,
            ),
            &[],
        )
    }

    fn bulk_in(&mut self, ep: u8, len: usize) -> UrbId {
        let id = self.id();
        self.submit(Urb {
            id,
            endpoint: ep,
            direction: Direction::In,
            setup: None,
            buffer_len: len,
            data: Bytes::new(),
            short_not_ok: false,
            zero_packet: false,
            iso_packets: 0,
        });
        id
    }

    fn bulk_out(&mut self, ep: u8, data: Bytes) -> UrbId {
        let id = self.id();
        self.submit(Urb {
            id,
            endpoint: ep,
            direction: Direction::Out,
            setup: None,
            buffer_len: data.len(),
            data,
            short_not_ok: false,
            zero_packet: false,
            iso_packets: 0,
        });
        id
    }

    fn drain_events(&mut self, f: FunctionId) -> Vec<BusEvent> {
        std::iter::from_fn(|| self.dev.poll_event(f)).collect()
    }
}

fn std_out(request: StandardRequest, recipient: Recipient, value: u16, index: u16) -> SetupPacket {
    SetupPacket::new(
        Direction::Out,
        RequestType::Standard,
        recipient,
        request.0,
        value,
        index,
        0,
    )
}

fn std_in(
    request: StandardRequest,
    recipient: Recipient,
    value: u16,
    index: u16,
    len: u16,
) -> SetupPacket {
    SetupPacket::new(
        Direction::In,
        RequestType::Standard,
        recipient,
        request.0,
        value,
        index,
        len,
    )
}

#[test]
fn enumeration_at_high_speed() {
    let mut h = SimHost::new(GZ, BusSpeed::High);
    let short = h.get_descriptor(DescriptorType::DEVICE, 0, 8);
    assert_eq!(short.actual_length, 8);
    let dev = h.get_descriptor(DescriptorType::DEVICE, 0, 18);
    let d = DeviceDescriptor::parse(&dev.data).expect("device descriptor");
    assert_eq!(
        (d.id_vendor, d.id_product, d.bcd_usb, d.b_max_packet_size0),
        (0x0525, 0xa4a0, 0x0210, 64)
    );
    let head = h.get_descriptor(DescriptorType::CONFIGURATION, 0, 9);
    let c = ConfigurationDescriptor::parse(&head.data).expect("config header");
    let full = h.get_descriptor(DescriptorType::CONFIGURATION, 0, c.w_total_length);
    assert_eq!(full.actual_length, usize::from(c.w_total_length));
    let tree = usbfn_wire::ConfigurationTree::parse(&full.data).expect("config tree");
    assert_eq!(tree.interfaces.len(), 2, "two alternate settings");
    let eps = &tree.interfaces[0].endpoints;
    assert_eq!(eps[0].descriptor.b_endpoint_address.0, 0x81);
    assert_eq!(eps[1].descriptor.b_endpoint_address.0, 0x01);
    assert_eq!(eps[0].descriptor.w_max_packet_size, 512);
    // Strings.
    let product = h.get_descriptor(DescriptorType::STRING, d.i_product, 255);
    assert_eq!(
        usbfn_wire::decode_string_descriptor(&product.data).expect("string"),
        "Gadget Zero"
    );
    let langs = h.get_descriptor(DescriptorType::STRING, 0, 255);
    assert_eq!(&langs.data[..], &[4, 3, 0x09, 0x04]);
    // Qualifier and other-speed configuration at high speed; BOS since bcdUSB 2.10.
    assert!(
        h.get_descriptor(DescriptorType::DEVICE_QUALIFIER, 0, 10)
            .status
            .is_success()
    );
    let other = h.get_descriptor(DescriptorType::OTHER_SPEED_CONFIGURATION, 0, 255);
    assert_eq!(other.data[1], DescriptorType::OTHER_SPEED_CONFIGURATION.0);
    assert!(
        h.get_descriptor(DescriptorType::BOS, 0, 255)
            .status
            .is_success()
    );
    // Unknown descriptors stall.
    assert_eq!(
        h.get_descriptor(DescriptorType::INTERFACE, 0, 9).status,
        CompletionStatus::Stall
    );
    assert_eq!(
        h.get_descriptor(DescriptorType::STRING, 99, 255).status,
        CompletionStatus::Stall
    );
    assert_eq!(
        h.get_descriptor(DescriptorType::CONFIGURATION, 1, 9).status,
        CompletionStatus::Stall
    );
}

#[test]
fn superspeed_descriptors_have_companions_and_no_qualifier() {
    let mut h = SimHost::new(GZ, BusSpeed::Super);
    let d = DeviceDescriptor::parse(&h.get_descriptor(DescriptorType::DEVICE, 0, 18).data)
        .expect("device");
    assert_eq!((d.bcd_usb, d.b_max_packet_size0), (0x0320, 9));
    let full = h.get_descriptor(DescriptorType::CONFIGURATION, 0, 4096);
    let tree = usbfn_wire::ConfigurationTree::parse(&full.data).expect("tree");
    let ep = &tree.interfaces[0].endpoints[0];
    assert_eq!(ep.descriptor.w_max_packet_size, 1024);
    assert!(ep.companion.is_some());
    assert_eq!(
        h.get_descriptor(DescriptorType::DEVICE_QUALIFIER, 0, 10)
            .status,
        CompletionStatus::Stall
    );
}

#[test]
fn full_speed_uses_64_byte_bulk() {
    let mut h = SimHost::new(GZ, BusSpeed::Full);
    let full = h.get_descriptor(DescriptorType::CONFIGURATION, 0, 4096);
    let tree = usbfn_wire::ConfigurationTree::parse(&full.data).expect("tree");
    assert_eq!(
        tree.interfaces[0].endpoints[0].descriptor.w_max_packet_size,
        64
    );
}

#[test]
fn descriptor_answers_are_truncated_to_wlength() {
    let mut h = SimHost::new(GZ, BusSpeed::High);
    for len in [0u16, 1, 9, 17, 18, 64, 255] {
        let c = h.get_descriptor(DescriptorType::DEVICE, 0, len);
        assert_eq!(c.actual_length, usize::from(len).min(18), "wLength {len}");
    }
}

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
        )
        .expect_err("not configured");
    assert!(matches!(err, ServiceError::InvalidDeviceState(_)), "{err}");
}

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
    h.dev.set_pipe_state(F0, PipeId(2), true).expect("stall");
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
        .control_handshake(F0, Handshake::In)
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
        )
        .expect("in");
    let c = h.dev.poll_urb_completion().expect("done");
    assert_eq!((c.id, &c.data[..]), (urb, &b"abcd"[..]));
    h.dev
        .control_handshake(F0, Handshake::Out)
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
        .set_pipe_state(F0, PipeId(0), true)
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
    );
    assert!(err.is_err());
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
    h.dev.deactivate(F0).expect("deactivate");
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
        )
        .expect_err("too large");
    assert!(matches!(e, ServiceError::LimitExceeded { .. }), "{e}");
    let e = h
        .dev
        .control_handshake(F0, Handshake::In)
        .expect_err("nothing pending");
    assert!(matches!(e, ServiceError::InvalidDeviceState(_)), "{e}");
}

#[test]
fn registered_strings_are_served() {
    let mut h = SimHost::new(GZ, BusSpeed::High);
    h.dev.register_string(42, "late").expect("register");
    let s = h.get_descriptor(DescriptorType::STRING, 42, 255);
    assert_eq!(
        usbfn_wire::decode_string_descriptor(&s.data).expect("string"),
        "late"
    );
    assert!(h.dev.register_string(0, "x").is_err());
}

#[test]
fn unlink_pending_urbs() {
    let mut h = SimHost::new(GZ, BusSpeed::High);
    h.set_configuration(1);
    let urb = h.bulk_in(1, 512);
    assert!(h.dev.unlink_urb(urb));
    assert!(!h.dev.unlink_urb(urb));
    h.dev
        .submit_transfer(
            F0,
            TransferId(1),
            PipeId(1),
            TransferRequest::In {
                data: Bytes::from_static(b"z"),
                append_zero_packet: false,
            },
        )
        .expect("in");
    assert!(
        h.dev.poll_urb_completion().is_none(),
        "the unlinked URB never completes"
    );
}
