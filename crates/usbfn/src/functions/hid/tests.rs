//! The HID functions against the in-process host: descriptors, class requests, FIFO lines to
//! input reports, output reports, the idle rate.

use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use usbfn_core::{BusSpeed, CompletionStatus};
use usbfn_wire::{DescriptorType, Direction, Recipient, RequestType, SetupPacket};

use super::*;
use crate::Controller;
use crate::host::Host;

struct Rig {
    host: Host,
    fifo: PathBuf,
    _controller: Controller,
    _task: JoinHandle<()>,
}

async fn rig(kind: Kind, name: &str) -> Rig {
    let controller = Controller::new(&config(&kind)).expect("device");
    let iface = controller.open(&interface_name(0)).expect("open");
    let fifo = std::env::temp_dir().join(format!("usbfn-test-{name}-{}.fifo", std::process::id()));
    let _ = std::fs::remove_file(&fifo);
    let side = DeviceSide::open(
        &Options {
            kind,
            input: Some(fifo.clone()),
        },
        0,
    )
    .expect("fifo");
    let task = spawn(side, iface);
    for _ in 0..100 {
        if controller.is_ready() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let host = Host::connect(&controller, BusSpeed::High).expect("connect");
    host.set_configuration(1).await.expect("configure");
    Rig {
        host,
        fifo,
        _controller: controller,
        _task: task,
    }
}

fn write_line(fifo: &Path, line: &str) {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(fifo)
        .expect("open fifo");
    f.write_all(line.as_bytes()).expect("write fifo");
}

fn class(dir: Direction, request: u8, value: u16, len: u16) -> SetupPacket {
    SetupPacket::new(
        dir,
        RequestType::Class,
        Recipient::Interface,
        request,
        value,
        0,
        len,
    )
}

#[test]
fn keyboard_descriptors() {
    let model = usbfn_core::DeviceModel::build(&config(&Kind::Keyboard)).expect("valid");
    let set = model.descriptor_set(BusSpeed::Full).expect("fits");
    let all: Vec<Vec<u8>> = usbfn_wire::descriptors(&set.configurations[0])
        .map(|d| d.expect("well formed").bytes.to_vec())
        .collect();
    assert_eq!(&all[1][..8], &[9, 4, 0, 0, 2, 3, 1, 1]);
    assert_eq!(all[2], [9, 0x21, 0x11, 0x01, 0, 1, 0x22, 63, 0]);
    assert_eq!(&all[3][..], &[7, 5, 0x81, 3, 8, 0, 1]);
    assert_eq!(&all[4][..], &[7, 5, 0x01, 3, 8, 0, 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyboard_types_and_sees_leds() {
    let r = rig(Kind::Keyboard, "kbd").await;
    let get_report_descriptor = SetupPacket::new(
        Direction::In,
        RequestType::Standard,
        Recipient::Interface,
        6,
        0x2200,
        0,
        255,
    );
    let d = r
        .host
        .control(get_report_descriptor, Bytes::new())
        .await
        .expect("report descriptor");
    assert_eq!(&d[..], &KEYBOARD_REPORT_DESCRIPTOR);
    let hid = r
        .host
        .control(
            SetupPacket::new(
                Direction::In,
                RequestType::Standard,
                Recipient::Interface,
                6,
                u16::from(DescriptorType::HID.0) << 8,
                0,
                9,
            ),
            Bytes::new(),
        )
        .await
        .expect("HID descriptor");
    assert_eq!(hid[1], 0x21);
    r.host
        .control(class(Direction::Out, request::SET_IDLE, 0, 0), Bytes::new())
        .await
        .expect("SET_IDLE");
    let proto = r
        .host
        .control(
            class(Direction::In, request::GET_PROTOCOL, 0, 1),
            Bytes::new(),
        )
        .await
        .expect("GET_PROTOCOL");
    assert_eq!(&proto[..], &[1], "report protocol after reset");
    r.host
        .control(
            class(Direction::Out, request::SET_PROTOCOL, 0, 0),
            Bytes::new(),
        )
        .await
        .expect("SET_PROTOCOL boot");

    write_line(&r.fifo, "type hello\nreport 0200040000000000\n");
    let mut got = Vec::new();
    for _ in 0..11 {
        let c = tokio::time::timeout(Duration::from_secs(5), r.host.bulk_in(1, 8))
            .await
            .expect("input report")
            .expect("urb");
        got.push(c.data.to_vec());
    }
    let presses: Vec<u8> = got.iter().take(10).step_by(2).map(|p| p[2]).collect();
    assert_eq!(presses, [0x0b, 0x08, 0x0f, 0x0f, 0x12]);
    assert!(got.iter().take(10).skip(1).step_by(2).all(|p| p == &[0; 8]));
    assert_eq!(got[10], [2, 0, 4, 0, 0, 0, 0, 0]);
    // GET_REPORT(input) returns the last report.
    let last = r
        .host
        .control(
            class(Direction::In, request::GET_REPORT, 0x0100, 8),
            Bytes::new(),
        )
        .await
        .expect("GET_REPORT");
    assert_eq!(&last[..], &got[10][..]);
    // LEDs both ways a host sends them.
    r.host
        .control(
            class(Direction::Out, request::SET_REPORT, 0x0200, 1),
            Bytes::from_static(&[0x02]),
        )
        .await
        .expect("SET_REPORT output");
    let c = r
        .host
        .bulk_out(1, Bytes::from_static(&[0x01]))
        .await
        .expect("urb");
    assert_eq!(c.status, CompletionStatus::Success);
    // Refused: a bad report type, an unknown request.
    let bad = r
        .host
        .control(
            class(Direction::In, request::GET_REPORT, 0x0400, 8),
            Bytes::new(),
        )
        .await;
    assert!(matches!(bad, Err(Error::Transfer(CompletionStatus::Stall))));
    let _ = std::fs::remove_file(&r.fifo);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feature_and_output_reports_are_stored_and_read_back() {
    let r = rig(Kind::Keyboard, "features").await;
    let get = |kind_id: u16, len: u16| {
        r.host.control(
            class(Direction::In, request::GET_REPORT, kind_id, len),
            Bytes::new(),
        )
    };
    // Nothing set yet: zeros, as f_hid answers, with the report ID first.
    let zero = get(0x0305, 4).await.expect("GET_REPORT feature");
    assert_eq!(&zero[..], &[5, 0, 0, 0]);
    // SET_REPORT(Feature) per report ID, read back by GET_REPORT(Feature).
    for (id, data) in [(5u8, &[5u8, 0xde, 0xad][..]), (6, &[6, 1, 2, 3, 4, 5])] {
        r.host
            .control(
                class(
                    Direction::Out,
                    request::SET_REPORT,
                    0x0300 | u16::from(id),
                    u16::try_from(data.len()).expect("short"),
                ),
                Bytes::copy_from_slice(data),
            )
            .await
            .expect("SET_REPORT feature");
    }
    let five = get(0x0305, 64).await.expect("GET_REPORT feature 5");
    assert_eq!(
        &five[..],
        &[5, 0xde, 0xad],
        "the stored report, not wLength bytes"
    );
    let six = get(0x0306, 4).await.expect("GET_REPORT feature 6");
    assert_eq!(&six[..], &[6, 1, 2, 3], "cut to wLength");
    // A later SET_REPORT replaces it.
    r.host
        .control(
            class(Direction::Out, request::SET_REPORT, 0x0305, 2),
            Bytes::from_static(&[5, 0x42]),
        )
        .await
        .expect("SET_REPORT feature again");
    assert_eq!(&get(0x0305, 8).await.expect("again")[..], &[5, 0x42]);
    // Output reports (the LEDs), by SET_REPORT and by the interrupt OUT endpoint.
    r.host
        .control(
            class(Direction::Out, request::SET_REPORT, 0x0200, 1),
            Bytes::from_static(&[0x02]),
        )
        .await
        .expect("SET_REPORT output");
    assert_eq!(&get(0x0200, 1).await.expect("output")[..], &[0x02]);
    let c = r
        .host
        .bulk_out(1, Bytes::from_static(&[0x05]))
        .await
        .expect("urb");
    assert_eq!(c.status, CompletionStatus::Success);
    let mut led = Bytes::new();
    for _ in 0..100 {
        led = get(0x0200, 1).await.expect("output");
        if led[..] == [0x05] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        &led[..],
        &[0x05],
        "the interrupt OUT report is the last output"
    );
    // Input: the last report sent, none sent yet: zeros of the report's length.
    let input = get(0x0100, 8).await.expect("input");
    assert_eq!(&input[..], &[0; 8]);
    write_line(&r.fifo, "report 0000050000000000\n");
    let sent = tokio::time::timeout(Duration::from_secs(5), r.host.bulk_in(1, 8))
        .await
        .expect("input report")
        .expect("urb");
    assert_eq!(&sent.data[..], &[0, 0, 5, 0, 0, 0, 0, 0]);
    assert_eq!(&get(0x0100, 8).await.expect("input")[..], &sent.data[..]);
    let _ = std::fs::remove_file(&r.fifo);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_rate_repeats_and_boot_mouse_is_three_bytes() {
    let r = rig(Kind::Mouse, "mouse").await;
    r.host
        .control(
            class(Direction::Out, request::SET_PROTOCOL, 0, 0),
            Bytes::new(),
        )
        .await
        .expect("boot protocol");
    // 10 × 4 ms.
    r.host
        .control(
            class(Direction::Out, request::SET_IDLE, 10 << 8, 0),
            Bytes::new(),
        )
        .await
        .expect("SET_IDLE");
    let idle = r
        .host
        .control(class(Direction::In, request::GET_IDLE, 0, 1), Bytes::new())
        .await
        .expect("GET_IDLE");
    assert_eq!(&idle[..], &[10]);
    write_line(&r.fifo, "type x\nreport 01050a01\n");
    let first = r.host.bulk_in(1, 8).await.expect("urb");
    assert_eq!(
        &first.data[..],
        &[1, 5, 10],
        "the boot protocol drops the wheel"
    );
    let t0 = std::time::Instant::now();
    let again = r.host.bulk_in(1, 8).await.expect("urb");
    assert_eq!(&again.data[..], &[1, 5, 10], "repeated at the idle rate");
    assert!(t0.elapsed() >= Duration::from_millis(30));
    let _ = std::fs::remove_file(&r.fifo);
}
