use std::time::Duration;

use bytes::Bytes;
use usbfn_wire::{DescriptorType, Direction, Recipient, RequestType, SetupPacket};

use super::control::request;
use super::ntb::{self, InLayout, NtbBuilder, NtbFormat};
use super::*;
use crate::functions::{Function, device_config};
use crate::host::Host;
use crate::{BusSpeed, CompletionStatus, Controller};

fn class(dir: Direction, req: u8, value: u16, len: u16) -> SetupPacket {
    SetupPacket::new(
        dir,
        RequestType::Class,
        Recipient::Interface,
        req,
        value,
        0,
        len,
    )
}

fn set_interface(iface: u8, alt: u8) -> SetupPacket {
    SetupPacket::set_interface(iface, alt)
}

/// An ARP request from the host (`host_mac`, 192.168.7.2) for 192.168.7.1.
fn arp_request(host_mac: [u8; 6]) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&host_mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&host_mac);
    f.extend_from_slice(&[192, 168, 7, 2, 0, 0, 0, 0, 0, 0, 192, 168, 7, 1]);
    f
}

struct Rig {
    host: Host,
    _controller: Controller,
    host_mac: [u8; 6],
}

async fn rig(spec: &str) -> Rig {
    let function = Function::parse(spec).expect("valid spec");
    let host_mac = match &function {
        Function::Ncm(o) | Function::Ecm(o) => o.host_mac(),
        _ => unreachable!("a network function"),
    };
    let functions = vec![function];
    let controller = Controller::new(&device_config(&functions)).expect("valid device");
    #[derive(Debug)]
    struct E(#[allow(dead_code)] String);
    impl From<crate::functions::StartError> for E {
        fn from(e: crate::functions::StartError) -> Self {
            E(e.to_string())
        }
    }
    crate::functions::start_all(&functions, |name| {
        controller.open(name).map_err(|e| E(e.to_string()))
    })
    .expect("starts");
    // Let both interfaces activate.
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    let host = Host::connect(&controller, BusSpeed::High).expect("connects");
    host.set_configuration(1).await.expect("configured");
    Rig {
        host,
        _controller: controller,
        host_mac,
    }
}

#[test]
fn descriptors_have_the_cdc_shape() {
    for (spec, subclass) in [("ncm", 0x0d), ("ecm", 0x06)] {
        let config = device_config(&[Function::parse(spec).expect("valid")]);
        let model = usbfn_core::DeviceModel::build(&config).expect("valid model");
        let set = model.descriptor_set(BusSpeed::High).expect("fits");
        let bytes = &set.configurations[0];
        let descs: Vec<Vec<u8>> = usbfn_wire::descriptors(bytes)
            .map(|d| d.expect("well formed").bytes.to_vec())
            .collect();
        let ifaces: Vec<&Vec<u8>> = descs.iter().filter(|d| d[1] == 4).collect();
        // Control (2/subclass), data alt 0 (no endpoints), data alt 1 (two endpoints).
        assert_eq!(ifaces.len(), 3);
        assert_eq!((ifaces[0][5], ifaces[0][6], ifaces[0][4]), (2, subclass, 1));
        assert_eq!(
            (ifaces[1][2], ifaces[1][3], ifaces[1][4], ifaces[1][5]),
            (1, 0, 0, 0x0a)
        );
        assert_eq!((ifaces[2][2], ifaces[2][3], ifaces[2][4]), (1, 1, 2));
        let ether = descs
            .iter()
            .find(|d| d[1] == 0x24 && d[2] == 0x0f)
            .expect("Ethernet Networking descriptor");
        assert_eq!(ether[3], MAC_STRING_INDEX);
        assert_eq!(u16::from_le_bytes([ether[8], ether[9]]), 1514);
        let union = descs
            .iter()
            .find(|d| d[1] == 0x24 && d[2] == 0x06)
            .expect("Union");
        assert_eq!(&union[3..5], &[0, 1]);
        assert_eq!(
            descs.iter().any(|d| d[1] == 0x24 && d[2] == 0x1a),
            spec == "ncm",
            "the NCM functional descriptor only for ncm"
        );
        assert!(descs.iter().any(|d| d[1] == 0x0b), "an IAD");
    }
}

#[test]
fn options_are_checked_and_the_mac_is_stable() {
    let Function::Ncm(a) = Function::parse("ncm,serial=abc").expect("valid") else {
        panic!("ncm");
    };
    let Function::Ncm(b) = Function::parse("ncm,serial=abc,ntb_in_max=4096").expect("valid") else {
        panic!("ncm");
    };
    assert_eq!(a.host_mac(), b.host_mac());
    assert_ne!(a.host_mac(), a.dev_mac());
    assert_eq!(a.host_mac()[0] & 3, 2, "locally administered unicast");
    let Function::Ncm(c) = Function::parse("ncm,serial=abd").expect("valid") else {
        panic!("ncm");
    };
    assert_ne!(a.host_mac(), c.host_mac());
    for bad in [
        "ncm,host_mac=01:00:00:00:00:01",
        "ncm,host_mac=zz",
        "ncm,net=wifi",
        "ncm,ntb_in_max=100",
        "ncm,address=300.1.1.1",
        "ecm,ntb32=1",
        "ncm,nope=1",
    ] {
        assert!(Function::parse(bad).is_err(), "{bad}");
    }
    let Function::Ecm(e) =
        Function::parse("ecm,net=tap:usb9,host_mac=02:11:22:33:44:55").expect("valid")
    else {
        panic!("ecm");
    };
    assert_eq!(e.net, NetChoice::Tap("usb9".into()));
    assert_eq!(e.host_mac(), [2, 0x11, 0x22, 0x33, 0x44, 0x55]);
}

#[tokio::test]
async fn ncm_class_requests_notifications_and_an_arp_round_trip() {
    let r = rig("ncm").await;
    let h = &r.host;
    // The MAC string the Ethernet descriptor names.
    let s = h
        .get_descriptor(DescriptorType::STRING, MAC_STRING_INDEX, 255)
        .await
        .expect("MAC string");
    let text: String =
        char::decode_utf16(s[2..].chunks(2).map(|c| u16::from_le_bytes([c[0], c[1]])))
            .map(|c| c.expect("utf16"))
            .collect();
    assert_eq!(text, service::mac_string(r.host_mac));

    let p = h
        .control(
            class(Direction::In, request::GET_NTB_PARAMETERS, 0, 28),
            Bytes::new(),
        )
        .await
        .expect("NTB parameters");
    assert_eq!(p.len(), 28);
    assert_eq!(u16::from_le_bytes([p[0], p[1]]), 28);
    assert_eq!(u16::from_le_bytes([p[2], p[3]]), 3, "NTB16 and NTB32");
    assert_eq!(u32::from_le_bytes([p[4], p[5], p[6], p[7]]), 32768);
    // What Linux's cdc_ncm sends at bind.
    h.control(
        class(Direction::Out, request::SET_NTB_INPUT_SIZE, 0, 4),
        Bytes::from(16384u32.to_le_bytes().to_vec()),
    )
    .await
    .expect("input size");
    let got = h
        .control(
            class(Direction::In, request::GET_NTB_INPUT_SIZE, 0, 4),
            Bytes::new(),
        )
        .await
        .expect("get input size");
    assert_eq!(&got[..], &16384u32.to_le_bytes());
    let size = h
        .control(
            class(Direction::In, request::GET_MAX_DATAGRAM_SIZE, 0, 2),
            Bytes::new(),
        )
        .await
        .expect("max datagram");
    assert_eq!(&size[..], &1514u16.to_le_bytes());
    h.control(
        class(Direction::Out, request::SET_ETHERNET_PACKET_FILTER, 0x0c, 0),
        Bytes::new(),
    )
    .await
    .expect("packet filter");
    // Too small an NTB IN size and an unknown request are STALLed.
    let small = h
        .control(
            class(Direction::Out, request::SET_NTB_INPUT_SIZE, 0, 4),
            Bytes::from(100u32.to_le_bytes().to_vec()),
        )
        .await;
    assert!(
        matches!(small, Err(crate::Error::Transfer(CompletionStatus::Stall))),
        "{small:?}"
    );
    let unknown = h
        .control(class(Direction::In, 0x7f, 0, 4), Bytes::new())
        .await;
    assert!(unknown.is_err());

    h.control(set_interface(1, 1), Bytes::new())
        .await
        .expect("alt 1");
    let speed = h.bulk_in(2, 16).await.expect("speed change");
    assert_eq!(speed.status, CompletionStatus::Success, "{speed:?}");
    assert_eq!(&speed.data[..2], &[0xa1, 0x2a]);
    let connected = h.bulk_in(2, 16).await.expect("connection");
    assert_eq!(&connected.data[..], &[0xa1, 0x00, 1, 0, 0, 0, 0, 0]);

    let layout = InLayout {
        format: NtbFormat::Ntb16,
        max_size: 16384,
        divisor: 4,
        ndp_alignment: 4,
        max_datagrams: 0,
    };
    let mut b = NtbBuilder::new(layout);
    assert!(b.push(&arp_request(r.host_mac)));
    // A malformed datagram entry alongside: dropped, the ARP request still answered.
    assert!(b.push(&[0u8; 5]));
    let out = h
        .bulk_out(1, Bytes::from(b.finish(1)))
        .await
        .expect("NTB out");
    assert_eq!(out.status, CompletionStatus::Success);
    let reply = tokio::time::timeout(Duration::from_secs(5), h.bulk_in(1, 16384))
        .await
        .expect("an NTB in time")
        .expect("NTB in");
    assert!(reply.data.len() <= 16384);
    let parsed = ntb::parse(&reply.data, NtbFormat::Ntb16, 16384, 1514).expect("a valid NTB16");
    let frame = &reply.data[parsed.datagrams[0].clone()];
    assert_eq!(&frame[..6], &r.host_mac, "to the host");
    assert_eq!(&frame[12..14], &[0x08, 0x06], "ARP");
    assert_eq!(&frame[20..22], &[0, 2], "a reply");
    // A garbage NTB is dropped (no reply, no crash), and the link still works after it.
    let out = h
        .bulk_out(1, Bytes::from_static(b"NCMHxxxxxxxxxxxxxxxxxxxxxx"))
        .await
        .expect("sent");
    assert_eq!(out.status, CompletionStatus::Success);
    let mut b = NtbBuilder::new(layout);
    assert!(b.push(&arp_request(r.host_mac)));
    h.bulk_out(1, Bytes::from(b.finish(2)))
        .await
        .expect("NTB out");
    let reply = tokio::time::timeout(Duration::from_secs(5), h.bulk_in(1, 16384))
        .await
        .expect("an NTB in time")
        .expect("NTB in");
    assert!(ntb::parse(&reply.data, NtbFormat::Ntb16, 16384, 1514).is_ok());
}

#[tokio::test]
async fn ecm_moves_one_frame_per_transfer() {
    let r = rig("ecm").await;
    let h = &r.host;
    // NCM requests are not ECM's.
    assert!(
        h.control(
            class(Direction::In, request::GET_NTB_PARAMETERS, 0, 28),
            Bytes::new()
        )
        .await
        .is_err()
    );
    h.control(
        class(Direction::Out, request::SET_ETHERNET_PACKET_FILTER, 0x0e, 0),
        Bytes::new(),
    )
    .await
    .expect("packet filter");
    h.control(set_interface(1, 1), Bytes::new())
        .await
        .expect("alt 1");
    h.bulk_in(2, 16).await.expect("speed change");
    h.bulk_in(2, 16).await.expect("connection");
    h.bulk_out(1, Bytes::from(arp_request(r.host_mac)))
        .await
        .expect("frame out");
    let reply = tokio::time::timeout(Duration::from_secs(5), h.bulk_in(1, 2048))
        .await
        .expect("a frame in time")
        .expect("frame in");
    assert_eq!(&reply.data[..6], &r.host_mac);
    assert_eq!(&reply.data[12..14], &[0x08, 0x06]);
    assert_eq!(reply.data.len(), 42, "one ARP reply, unpadded");
}
