//! The service API end to end with the in-process host.

use std::time::Duration;

use bytes::Bytes;
use usbfn::host::Host;
use usbfn::ioctl::IoctlRequest;
use usbfn::{BusEvent, BusSpeed, CompletionStatus, Controller, DeviceConfig, Error, PipeId};
use usbfn_abi::{IoctlCode, NtStatus};
use usbfn_wire::{Direction, Recipient, RequestType, SetupPacket};

const CONFIG: &str = r#"
    [device]
    vendor_id = 0x1209
    product_id = 0x0001
    [control]
    setup_timeout_ms = 200
    [[interfaces]]
    name = "loop"
    guid = "{11111111-2222-3333-4444-555555555555}"
    device_request_owner = true
    endpoints = [{ direction = "in", type = "bulk" }, { direction = "out", type = "bulk" }]
"#;

const IN: PipeId = PipeId(1);
const OUT: PipeId = PipeId(2);

async fn configured() -> (Controller, usbfn::Interface, Host) {
    let controller =
        Controller::new(&DeviceConfig::from_toml(CONFIG).expect("toml")).expect("device");
    let iface = controller
        .open("{11111111-2222-3333-4444-555555555555}")
        .expect("open by GUID");
    iface.activate_bus().expect("activate");
    assert!(controller.is_ready());
    let host = Host::connect(&controller, BusSpeed::High).expect("connect");
    host.set_configuration(1).await.expect("configure");
    let mut events = Vec::new();
    while let Some(e) = iface.try_next_event() {
        events.push(e);
    }
    assert_eq!(
        events,
        vec![
            BusEvent::Attach,
            BusEvent::Reset(BusSpeed::High),
            BusEvent::Configured(1)
        ]
    );
    (controller, iface, host)
}

#[tokio::test]
async fn many_outstanding_transfers_complete_in_order() {
    let (_c, iface, host) = configured().await;
    let sends: Vec<_> = (0..8u8)
        .map(|i| iface.transfer_in(IN, Bytes::from(vec![i; 100])))
        .collect();
    for i in 0..8u8 {
        let c = host.bulk_in(1, 512).await.expect("urb");
        assert_eq!(c.data, Bytes::from(vec![i; 100]));
    }
    for s in sends {
        assert_eq!(s.await.expect("sent").bytes_transferred, 100);
    }
    let reads: Vec<_> = (0..4).map(|_| iface.transfer_out(OUT, 512)).collect();
    for i in 0..4u8 {
        host.bulk_out(1, Bytes::from(vec![i; 10]))
            .await
            .expect("urb");
    }
    for (i, r) in (0..4u8).zip(reads) {
        assert_eq!(r.await.expect("read").data, Bytes::from(vec![i; 10]));
    }
}

#[tokio::test]
async fn dropping_a_transfer_future_cancels_it() {
    let (_c, iface, host) = configured().await;
    let first = iface.transfer_in(IN, Bytes::from_static(b"first"));
    let second = iface.transfer_in(IN, Bytes::from_static(b"second"));
    drop(first);
    let c = host.bulk_in(1, 512).await.expect("urb");
    assert_eq!(
        &c.data[..],
        b"second",
        "the dropped transfer never reached the host"
    );
    second.await.expect("sent");
}

#[tokio::test]
async fn setup_answered_by_the_service_and_timeout_stall() {
    let (_c, iface, host) = configured().await;
    let setup = SetupPacket::new(
        Direction::In,
        RequestType::Vendor,
        Recipient::Device,
        0x5c,
        0,
        0,
        16,
    );
    let service = async {
        let BusEvent::SetupPacket(s) = iface.next_event().await.expect("event") else {
            panic!("setup expected")
        };
        assert_eq!(s, setup);
        iface
            .transfer_in(PipeId::CONTROL, Bytes::from_static(b"answer"))
            .await
            .expect("data stage");
        iface.control_status_handshake_out().expect("status");
    };
    let (answer, ()) = tokio::join!(host.control(setup, Bytes::new()), service);
    assert_eq!(&answer.expect("control")[..], b"answer");
    // Nobody answers this one: the host sees a STALL after the 200 ms timeout.
    let started = std::time::Instant::now();
    let err = host
        .control(setup, Bytes::new())
        .await
        .expect_err("stalled");
    assert!(
        matches!(err, Error::Transfer(CompletionStatus::Stall)),
        "{err}"
    );
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn raw_ioctls_speak_the_windows_layout() {
    let (_c, iface, host) = configured().await;
    let reply = iface
        .ioctl(IoctlRequest {
            code: IoctlCode::GET_CLASS_INFO,
            input: Bytes::new(),
            output: Bytes::new(),
            output_capacity: 748,
        })
        .await;
    assert_eq!(
        (reply.status, reply.information),
        (NtStatus::STATUS_SUCCESS, 748)
    );
    let info = usbfn_abi::ClassInformationPacket::decode(&reply.output).expect("decodes");
    assert_eq!(info.high_speed.pipes.len(), 2);
    assert_eq!(
        info.high_speed.pipes[0].endpoint_descriptor.max_packet_size,
        512
    );
    assert_eq!(
        info.full_speed.pipes[0].endpoint_descriptor.max_packet_size,
        64
    );
    assert!(info.interface_guid.is_some());
    let small = iface
        .ioctl(IoctlRequest {
            code: IoctlCode::GET_CLASS_INFO,
            input: Bytes::new(),
            output: Bytes::new(),
            output_capacity: 10,
        })
        .await;
    assert_eq!(small.status, NtStatus::STATUS_BUFFER_TOO_SMALL);
    let bad = iface
        .ioctl(IoctlRequest {
            code: IoctlCode(0x0022_C0FF),
            input: Bytes::new(),
            output: Bytes::new(),
            output_capacity: 0,
        })
        .await;
    assert_eq!(bad.status, NtStatus::STATUS_INVALID_DEVICE_REQUEST);
    // TRANSFER_IN: pipe id in the input, data in the (IN_DIRECT) output buffer.
    let urb = host.bulk_in(1, 64);
    let sent = iface
        .ioctl(IoctlRequest {
            code: IoctlCode::TRANSFER_IN,
            input: Bytes::copy_from_slice(&1u32.to_le_bytes()),
            output: Bytes::from_static(b"raw"),
            output_capacity: 0,
        })
        .await;
    assert_eq!(
        (sent.status, sent.information),
        (NtStatus::STATUS_SUCCESS, 3)
    );
    assert_eq!(&urb.await.expect("urb").data[..], b"raw");
    // Stall through SET_PIPE_STATE, read back with GET_PIPE_STATE.
    let pipe = Bytes::copy_from_slice(&2u32.to_le_bytes());
    let set = iface
        .ioctl(IoctlRequest {
            code: IoctlCode::SET_PIPE_STATE,
            input: pipe.clone(),
            output: Bytes::from_static(&[1]),
            output_capacity: 0,
        })
        .await;
    assert_eq!(set.status, NtStatus::STATUS_SUCCESS);
    let get = iface
        .ioctl(IoctlRequest {
            code: IoctlCode::GET_PIPE_STATE,
            input: pipe,
            output: Bytes::new(),
            output_capacity: 1,
        })
        .await;
    assert_eq!(&get.output[..], &[1]);
    // Interface descriptor set with too small a buffer reports the size.
    let header = usbfn_abi::InterfaceInfoHeader {
        interface_number: 0,
        speed: usbfn_abi::BusSpeed::HIGH,
        size: 0,
    };
    let r = iface
        .ioctl(IoctlRequest {
            code: IoctlCode::GET_INTERFACE_DESCRIPTOR_SET,
            input: Bytes::copy_from_slice(&header.encode()),
            output: Bytes::new(),
            output_capacity: 12,
        })
        .await;
    assert_eq!(r.status, NtStatus::STATUS_BUFFER_TOO_SMALL);
    let h = usbfn_abi::InterfaceInfoHeader::decode(&r.output).expect("header");
    assert_eq!(h.size, 9 + 7 + 7);
}

#[tokio::test]
async fn closing_the_service_disconnects_the_host() {
    let (controller, iface, host) = configured().await;
    let pending = host.bulk_in(1, 512);
    drop(iface);
    assert!(!controller.is_ready());
    assert!(
        pending.await.is_err(),
        "the pending URB fails when the device goes away"
    );
    assert!(
        controller.open("loop").is_ok(),
        "the interface can be opened again"
    );
}

#[tokio::test]
async fn second_open_and_second_host_are_refused() {
    let (controller, _iface, _host) = configured().await;
    assert!(matches!(
        controller.open("loop"),
        Err(Error::InterfaceBusy(_))
    ));
    assert!(matches!(
        Host::connect(&controller, BusSpeed::High),
        Err(Error::BusBusy)
    ));
}

#[test]
fn blocking_wrapper_refuses_to_block_inside_a_runtime() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let controller = rt.block_on(async {
        Controller::new(&DeviceConfig::from_toml(CONFIG).expect("toml")).expect("device")
    });
    let iface = usbfn::blocking::Interface::new(
        controller.open("loop").expect("open"),
        rt.handle().clone(),
    );
    iface.activate_bus().expect("activate");
    let inside = rt.block_on(async { iface.next_event().map(|_| ()) });
    assert!(matches!(inside, Err(Error::BlockingInAsync)));
    let _host = rt.block_on(async { Host::connect(&controller, BusSpeed::Full).expect("host") });
    assert_eq!(iface.next_event().expect("event"), BusEvent::Attach);
    assert_eq!(
        iface.next_event().expect("event"),
        BusEvent::Reset(BusSpeed::Full)
    );
}
