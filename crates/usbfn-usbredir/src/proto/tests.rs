//! Byte vectors: layouts from usb-redirection-protocol.md 0.7 / usbredirproto.h, and QEMU
//! 7.2's hello as observed on the wire.

use bytes::{BufMut, Bytes, BytesMut};

use super::*;

/// QEMU 7.2.22's hello: header (type 0, length 68, id 0), 64 bytes of version text, caps 0xff.
fn qemu_hello() -> Vec<u8> {
    let mut v = vec![0, 0, 0, 0, 68, 0, 0, 0, 0, 0, 0, 0];
    let mut text = [0u8; 64];
    let s = b"qemu usb-redir guest 7.2.22";
    text[..s.len()].copy_from_slice(s);
    v.extend_from_slice(&text);
    v.extend_from_slice(&[0xff, 0, 0, 0]);
    v
}

/// A host codec that has read QEMU's hello (64-bit ids, 32-bit bulk lengths agreed).
fn host() -> Codec {
    let mut c = Codec::new(Role::Host, Caps::USBFN, Limits::default());
    let mut b = BytesMut::from(&qemu_hello()[..]);
    c.decode(&mut b).unwrap().unwrap();
    c
}

fn header64(ty: u32, length: u32, id: u64) -> Vec<u8> {
    let mut v = Vec::new();
    v.put_u32_le(ty);
    v.put_u32_le(length);
    v.put_u64_le(id);
    v
}

#[test]
fn qemu_hello_is_80_bytes_and_agrees_on_usbfn_caps() {
    let bytes = qemu_hello();
    assert_eq!(bytes.len(), 80);
    let mut c = Codec::new(Role::Host, Caps::USBFN, Limits::default());
    let mut b = BytesMut::from(&bytes[..]);
    let m = c.decode(&mut b).unwrap().unwrap();
    assert_eq!(m.id, 0);
    assert_eq!(
        m.packet,
        Packet::Hello {
            version: "qemu usb-redir guest 7.2.22".into(),
            caps: Caps(0xff)
        }
    );
    assert!(b.is_empty());
    assert_eq!(c.agreed(), Caps::USBFN);
    assert!(
        !c.agreed().has(Caps::BULK_RECEIVING),
        "usbfn does not announce it"
    );
}

#[test]
fn our_hello_bytes() {
    let c = Codec::new(Role::Host, Caps::USBFN, Limits::default());
    let mut out = BytesMut::new();
    c.encode(
        0,
        &Packet::Hello {
            version: "usbfn".into(),
            caps: Caps::USBFN,
        },
        &mut out,
    )
    .unwrap();
    assert_eq!(out.len(), 80);
    assert_eq!(&out[..12], &[0, 0, 0, 0, 68, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(&out[12..17], b"usbfn");
    assert!(out[17..76].iter().all(|b| *b == 0));
    // connect_device_version | device_disconnect_ack | ep_info_max_packet_size | 64bits_ids
    // | 32bits_bulk_length = bits 1, 3, 4, 5, 6.
    assert_eq!(&out[76..], &[0x7a, 0, 0, 0]);
}

#[test]
fn header_is_decoded_incrementally_one_byte_at_a_time() {
    let mut c = Codec::new(Role::Host, Caps::USBFN, Limits::default());
    let mut b = BytesMut::new();
    for (i, byte) in qemu_hello().into_iter().enumerate() {
        assert!(c.decode(&mut b).unwrap().is_none(), "byte {i}");
        b.put_u8(byte);
    }
    assert!(c.decode(&mut b).unwrap().is_some());
}

#[test]
fn control_out_request_with_64_bit_id() {
    let mut c = host();
    // SET_FEATURE-like vendor request OUT with 3 data bytes, id 0x1_0000_0002.
    let mut v = header64(100, 13, 0x1_0000_0002);
    v.extend_from_slice(&[0x00, 0x5b, 0x40, 0, 0x34, 0x12, 0x02, 0, 3, 0]);
    v.extend_from_slice(&[1, 2, 3]);
    let mut b = BytesMut::from(&v[..]);
    let m = c.decode(&mut b).unwrap().unwrap();
    assert_eq!(m.id, 0x1_0000_0002);
    assert_eq!(
        m.packet,
        Packet::Control(ControlPacket {
            endpoint: 0,
            request: 0x5b,
            requesttype: 0x40,
            status: Status::SUCCESS,
            value: 0x1234,
            index: 2,
            length: 3,
            data: Bytes::from_static(&[1, 2, 3]),
        })
    );
}

#[test]
fn control_in_reply_bytes() {
    let c = host();
    let mut out = BytesMut::new();
    let reply = Packet::Control(ControlPacket {
        endpoint: 0x80,
        request: 6,
        requesttype: 0x80,
        status: Status::SUCCESS,
        value: 0x0100,
        index: 0,
        length: 2,
        data: Bytes::from_static(&[18, 1]),
    });
    c.encode(7, &reply, &mut out).unwrap();
    let mut expected = header64(100, 12, 7);
    expected.extend_from_slice(&[0x80, 6, 0x80, 0, 0x00, 0x01, 0, 0, 2, 0, 18, 1]);
    assert_eq!(&out[..], &expected[..]);
    // And a guest codec reads it back.
    let mut g = Codec::new(Role::Guest, Caps(0xff), Limits::default());
    let mut hello = BytesMut::new();
    c.encode(
        0,
        &Packet::Hello {
            version: "x".into(),
            caps: Caps::USBFN,
        },
        &mut hello,
    )
    .unwrap();
    g.decode(&mut hello).unwrap().unwrap();
    let m = g.decode(&mut out).unwrap().unwrap();
    assert_eq!(m.packet, reply);
}

#[test]
fn bulk_in_request_with_32_bit_length() {
    let mut c = host();
    // 0x12345 bytes from EP 0x81: length 0x2345, length_high 0x0001.
    let mut v = header64(101, 10, 9);
    v.extend_from_slice(&[0x81, 0, 0x45, 0x23, 0, 0, 0, 0, 0x01, 0x00]);
    let mut b = BytesMut::from(&v[..]);
    let m = c.decode(&mut b).unwrap().unwrap();
    let Packet::Bulk(p) = m.packet else { panic!() };
    assert_eq!((p.endpoint, p.length, p.data.len()), (0x81, 0x12345, 0));
}

#[test]
fn bulk_without_32_bit_lengths_has_an_8_byte_header() {
    let mut c = Codec::new(Role::Host, Caps(Caps::IDS_64), Limits::default());
    let mut b = BytesMut::from(&qemu_hello()[..]);
    c.decode(&mut b).unwrap();
    let mut v = header64(101, 10, 1);
    v.extend_from_slice(&[0x02, 0, 2, 0, 0, 0, 0, 0, 0xaa, 0xbb]);
    let mut b = BytesMut::from(&v[..]);
    let Packet::Bulk(p) = c.decode(&mut b).unwrap().unwrap().packet else {
        panic!()
    };
    assert_eq!(&p.data[..], &[0xaa, 0xbb]);
    let mut out = BytesMut::new();
    let big = Packet::Bulk(BulkPacket {
        endpoint: 0x81,
        status: Status::SUCCESS,
        length: 0x10000,
        stream_id: 0,
        data: Bytes::from(vec![0; 0x10000]),
    });
    assert!(matches!(
        c.encode(1, &big, &mut out),
        Err(ProtoError::LimitExceeded { .. })
    ));
    assert!(out.is_empty(), "nothing written on error");
}

#[test]
fn ep_info_and_interface_info_sizes() {
    let c = host();
    let mut out = BytesMut::new();
    let mut ep = EpInfo::default();
    ep.ep_type[0] = EpType::CONTROL;
    ep.ep_type[endpoint_slot(0x80)] = EpType::CONTROL;
    ep.max_packet_size[endpoint_slot(0x81)] = 512;
    c.encode(0, &Packet::EpInfo(Box::new(ep)), &mut out)
        .unwrap();
    // 16 header + 96 + 64 (max_packet_size); no max_streams without bulk_streams.
    assert_eq!(out.len(), 16 + 160);
    assert_eq!(&out[4..8], &160u32.to_le_bytes());
    assert_eq!(out[16], 0);
    assert_eq!(out[16 + 16], 0, "slot 16 is IN endpoint 0");
    assert_eq!(out[16 + 1], 255);
    assert_eq!(&out[16 + 96 + 2 * 17..16 + 96 + 2 * 17 + 2], &[0, 2]);
    let mut out = BytesMut::new();
    c.encode(0, &Packet::InterfaceInfo(Box::default()), &mut out)
        .unwrap();
    assert_eq!(out.len(), 16 + 132);
}

#[test]
fn device_connect_with_version() {
    let c = host();
    let mut out = BytesMut::new();
    c.encode(
        0,
        &Packet::DeviceConnect(DeviceConnect {
            speed: Speed::HIGH,
            device_class: 0xff,
            device_subclass: 0,
            device_protocol: 0,
            vendor_id: 0x0525,
            product_id: 0xa4a0,
            device_version_bcd: 0x0100,
        }),
        &mut out,
    )
    .unwrap();
    let mut expected = header64(1, 10, 0);
    expected.extend_from_slice(&[2, 0xff, 0, 0, 0x25, 0x05, 0xa0, 0xa4, 0x00, 0x01]);
    assert_eq!(&out[..], &expected[..]);
}

#[test]
fn small_control_packets() {
    let mut c = host();
    let cases: Vec<(Vec<u8>, Packet)> = vec![
        (
            [header64(6, 1, 5), vec![1]].concat(),
            Packet::SetConfiguration { configuration: 1 },
        ),
        (header64(7, 0, 5), Packet::GetConfiguration),
        (
            [header64(9, 2, 5), vec![0, 1]].concat(),
            Packet::SetAltSetting {
                interface: 0,
                alt: 1,
            },
        ),
        (
            [header64(10, 1, 5), vec![3]].concat(),
            Packet::GetAltSetting { interface: 3 },
        ),
        (header64(3, 0, 0), Packet::Reset),
        (header64(21, 0, 77), Packet::CancelDataPacket),
        (
            [header64(15, 1, 0), vec![0x83]].concat(),
            Packet::StartInterruptReceiving { endpoint: 0x83 },
        ),
        (
            [header64(12, 3, 0), vec![0x84, 8, 4]].concat(),
            Packet::StartIsoStream {
                endpoint: 0x84,
                pkts_per_urb: 8,
                no_urbs: 4,
            },
        ),
        (header64(24, 0, 0), Packet::DeviceDisconnectAck),
    ];
    for (bytes, packet) in cases {
        let mut b = BytesMut::from(&bytes[..]);
        let m = c.decode(&mut b).unwrap().unwrap();
        assert_eq!(m.packet, packet);
        // Round trip through the encoder gives the same bytes.
        let mut out = BytesMut::new();
        c.encode(m.id, &m.packet, &mut out).unwrap();
        assert_eq!(&out[..], &bytes[..], "{packet:?}");
    }
}

#[test]
fn hostile_input_is_refused_with_the_rule_named() {
    // Not hello first.
    let mut c = Codec::new(Role::Host, Caps::USBFN, Limits::default());
    let mut b = BytesMut::from(&[3u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..]);
    assert_eq!(c.decode(&mut b), Err(ProtoError::HelloFirst(3)));
    let mut c = host();
    // Hello again.
    let mut b = BytesMut::from(&header64(0, 68, 0)[..]);
    assert_eq!(c.decode(&mut b), Err(ProtoError::HelloAgain));
    // Unknown type.
    let mut b = BytesMut::from(&header64(99, 0, 0)[..]);
    assert_eq!(c.decode(&mut b), Err(ProtoError::UnknownType(99)));
    // Short type header.
    let mut b = BytesMut::from(&header64(100, 4, 0)[..]);
    assert!(matches!(
        c.decode(&mut b),
        Err(ProtoError::ShortHeader { .. })
    ));
    // Data after a packet with none.
    let mut b = BytesMut::from(&header64(3, 1, 0)[..]);
    assert!(matches!(
        c.decode(&mut b),
        Err(ProtoError::UnexpectedData { .. })
    ));
    // A length beyond max_data is refused from the header alone, before any allocation.
    let mut b = BytesMut::from(&header64(101, 0xffff_fff0, 0)[..]);
    let e = c.decode(&mut b).unwrap_err();
    assert!(e.to_string().contains("max_data"), "{e}");
    assert!(b.capacity() < 1024);
    // IN request with data.
    let mut v = header64(101, 12, 0);
    v.extend_from_slice(&[0x81, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 2]);
    let mut b = BytesMut::from(&v[..]);
    assert!(matches!(
        c.decode(&mut b),
        Err(ProtoError::DataLength { .. })
    ));
    // OUT request whose data is shorter than its length.
    let mut v = header64(101, 11, 0);
    v.extend_from_slice(&[0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1]);
    let mut b = BytesMut::from(&v[..]);
    assert!(matches!(
        c.decode(&mut b),
        Err(ProtoError::DataLength { .. })
    ));
    // Interface count beyond 32.
    let mut v = header64(4, 132, 0);
    v.extend_from_slice(&33u32.to_le_bytes());
    v.extend_from_slice(&[0; 128]);
    let mut b = BytesMut::from(&v[..]);
    assert!(matches!(
        c.decode(&mut b),
        Err(ProtoError::LimitExceeded { .. })
    ));
    // Hello caps not whole words.
    let mut c = Codec::new(Role::Host, Caps::USBFN, Limits::default());
    let mut v = vec![0, 0, 0, 0, 66, 0, 0, 0, 0, 0, 0, 0];
    v.extend_from_slice(&[0; 66]);
    let mut b = BytesMut::from(&v[..]);
    assert_eq!(c.decode(&mut b), Err(ProtoError::CapsLength(2)));
}

#[test]
fn nothing_but_hello_before_the_peers_hello() {
    let c = Codec::new(Role::Host, Caps::USBFN, Limits::default());
    let mut out = BytesMut::new();
    assert_eq!(
        c.encode(0, &Packet::Reset, &mut out),
        Err(ProtoError::BeforeHello("reset"))
    );
}

#[test]
fn endpoint_slots() {
    assert_eq!(endpoint_slot(0x00), 0);
    assert_eq!(endpoint_slot(0x01), 1);
    assert_eq!(endpoint_slot(0x80), 16);
    assert_eq!(endpoint_slot(0x81), 17);
    assert_eq!(endpoint_slot(0x8f), 31);
}
