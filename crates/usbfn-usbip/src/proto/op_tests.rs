//! Byte-vector tests for the op messages, written from the spec layout.
use super::*;

fn device(busid: &str, ifaces: u8) -> UsbDevice {
    UsbDevice {
        path: DevicePath::new("/sys/devices/usbfn/1-1").unwrap(),
        busid: BusId::new(busid).unwrap(),
        busnum: 1,
        devnum: 2,
        speed: UsbSpeed::HIGH,
        id_vendor: 0x1209,
        id_product: 0x0001,
        bcd_device: 0x0100,
        b_device_class: 0xef,
        b_device_sub_class: 2,
        b_device_protocol: 1,
        b_configuration_value: 1,
        b_num_configurations: 1,
        b_num_interfaces: ifaces,
    }
}

/// The device block written out by hand from the spec layout.
fn device_bytes(busid: &str, ifaces: u8) -> Vec<u8> {
    let mut v = vec![0u8; 312];
    let path = b"/sys/devices/usbfn/1-1";
    v[..path.len()].copy_from_slice(path);
    v[256..256 + busid.len()].copy_from_slice(busid.as_bytes());
    v[288..292].copy_from_slice(&[0, 0, 0, 1]); // busnum
    v[292..296].copy_from_slice(&[0, 0, 0, 2]); // devnum
    v[296..300].copy_from_slice(&[0, 0, 0, 3]); // speed high
    v[300..306].copy_from_slice(&[0x12, 0x09, 0x00, 0x01, 0x01, 0x00]);
    v[306..312].copy_from_slice(&[0xef, 2, 1, 1, 1, ifaces]);
    v
}

#[test]
fn request_devlist_bytes() {
    let mut b = BytesMut::new();
    OpRequest::Devlist.encode(&mut b);
    assert_eq!(&b[..], &[0x01, 0x11, 0x80, 0x05, 0, 0, 0, 0]);
    assert_eq!(OpRequest::decode(&mut b).unwrap(), Some(OpRequest::Devlist));
    assert!(b.is_empty());
}

#[test]
fn request_import_bytes_and_partial_feeds() {
    let mut wire = vec![0x01, 0x11, 0x80, 0x03, 0, 0, 0, 0];
    wire.extend_from_slice(b"1-1");
    wire.resize(40, 0);
    wire.extend_from_slice(&[0, 0, 0, 1]); // first bytes of a following URB stay put
    let mut b = BytesMut::new();
    OpRequest::Import {
        busid: BusId::new("1-1").unwrap(),
    }
    .encode(&mut b);
    assert_eq!(&b[..], &wire[..40]);
    for split in 0..40 {
        let mut b = BytesMut::from(&wire[..split]);
        assert_eq!(OpRequest::decode(&mut b).unwrap(), None, "split {split}");
        b.extend_from_slice(&wire[split..]);
        let req = OpRequest::decode(&mut b).unwrap().unwrap();
        assert_eq!(
            req,
            OpRequest::Import {
                busid: "1-1".parse().unwrap()
            }
        );
        assert_eq!(&b[..], &[0, 0, 0, 1]);
    }
}

#[test]
fn request_errors() {
    let mut b = BytesMut::from(&[0x01, 0x10, 0x80, 0x05, 0, 0, 0, 0][..]);
    assert_eq!(
        OpRequest::decode(&mut b),
        Err(ProtoError::VersionMismatch { version: 0x0110 })
    );
    let mut b = BytesMut::from(&[0x01, 0x11, 0x00, 0x05, 0, 0, 0, 0][..]);
    assert!(matches!(
        OpRequest::decode(&mut b),
        Err(ProtoError::UnexpectedOpCode { code: 5, .. })
    ));
    let mut wire = vec![0x01, 0x11, 0x80, 0x03, 0, 0, 0, 0];
    wire.extend_from_slice(&[b'x'; 32]);
    let err = OpRequest::decode(&mut BytesMut::from(&wire[..])).unwrap_err();
    assert_eq!(err.to_string(), "busid is invalid: not NUL-terminated");
}

#[test]
fn busid_and_path_validation() {
    assert!(BusId::new("").is_err());
    assert!(BusId::new("1 1").is_err());
    assert!(BusId::new(&"a".repeat(31)).is_ok());
    assert!(BusId::new(&"a".repeat(32)).is_err());
    assert!(DevicePath::new(&"p".repeat(255)).is_ok());
    assert!(DevicePath::new(&"p".repeat(256)).is_err());
    assert!(DevicePath::new("a\0b").is_err());
}

#[test]
fn device_block_matches_layout() {
    let mut b = BytesMut::new();
    device("1-1", 2).encode(&mut b);
    assert_eq!(&b[..], &device_bytes("1-1", 2)[..]);
    let parsed = UsbDevice::parse(b[..].try_into().unwrap()).unwrap();
    assert_eq!(parsed, device("1-1", 2));
    assert_eq!(parsed.devid(), 0x0001_0002);
}

#[test]
fn devlist_reply_bytes_and_partial_feeds() {
    let mut wire = vec![0x01, 0x11, 0x00, 0x05, 0, 0, 0, 0, 0, 0, 0, 2];
    wire.extend(device_bytes("1-1", 2));
    wire.extend([0x02, 0x02, 0x01, 0x00, 0x0a, 0x00, 0x00, 0x00]);
    wire.extend(device_bytes("1-2", 0));
    let reply = OpReply::Devlist {
        status: OpStatus::OK,
        devices: vec![
            ExportedDevice {
                device: device("1-1", 2),
                interfaces: vec![
                    UsbInterface {
                        b_interface_class: 2,
                        b_interface_sub_class: 2,
                        b_interface_protocol: 1,
                    },
                    UsbInterface {
                        b_interface_class: 0x0a,
                        ..Default::default()
                    },
                ],
            },
            ExportedDevice {
                device: device("1-2", 0),
                interfaces: vec![],
            },
        ],
    };
    let mut b = BytesMut::new();
    reply.encode(&mut b).unwrap();
    assert_eq!(&b[..], &wire[..]);
    let limits = Limits::default();
    for split in 0..wire.len() {
        let mut b = BytesMut::from(&wire[..split]);
        assert_eq!(
            OpReply::decode(&mut b, &limits).unwrap(),
            None,
            "split {split}"
        );
        b.extend_from_slice(&wire[split..]);
        assert_eq!(
            OpReply::decode(&mut b, &limits).unwrap().as_ref(),
            Some(&reply)
        );
        assert!(b.is_empty());
    }
}

#[test]
fn devlist_device_limit_checked_before_data() {
    let wire = [0x01, 0x11, 0x00, 0x05, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff];
    let err = OpReply::decode(&mut BytesMut::from(&wire[..]), &Limits::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "OP_REP_DEVLIST ndev 4294967295 exceeds max_devices 256"
    );
}

#[test]
fn import_reply_ok_and_errors() {
    let mut wire = vec![0x01, 0x11, 0x00, 0x03, 0, 0, 0, 0];
    wire.extend(device_bytes("1-1", 1));
    let reply = OpReply::Import {
        status: OpStatus::OK,
        device: Some(device("1-1", 1)),
    };
    let mut b = BytesMut::new();
    reply.encode(&mut b).unwrap();
    assert_eq!(&b[..], &wire[..]);
    let limits = Limits::default();
    for split in 0..wire.len() {
        let mut b = BytesMut::from(&wire[..split]);
        assert_eq!(OpReply::decode(&mut b, &limits).unwrap(), None);
        b.extend_from_slice(&wire[split..]);
        assert_eq!(
            OpReply::decode(&mut b, &limits).unwrap().as_ref(),
            Some(&reply)
        );
    }
    let mut b = BytesMut::from(&[0x01, 0x11, 0x00, 0x03, 0, 0, 0, 4][..]);
    assert_eq!(
        OpReply::decode(&mut b, &limits).unwrap(),
        Some(OpReply::Import {
            status: OpStatus::NODEV,
            device: None
        })
    );
    let bad = OpReply::Import {
        status: OpStatus::OK,
        device: None,
    };
    assert!(bad.encode(&mut BytesMut::new()).is_err());
}

#[test]
fn inconsistent_interface_count_is_refused() {
    let reply = OpReply::Devlist {
        status: OpStatus::OK,
        devices: vec![ExportedDevice {
            device: device("1-1", 3),
            interfaces: vec![],
        }],
    };
    let mut b = BytesMut::new();
    assert!(reply.encode(&mut b).is_err());
    assert!(b.is_empty());
}

#[test]
fn names() {
    assert_eq!(OpStatus::DEV_BUSY.to_string(), "DEV_BUSY (2)");
    assert_eq!(format!("{:?}", OpStatus(9)), "OpStatus(9)");
    assert_eq!(UsbSpeed::SUPER_PLUS.to_string(), "super-plus");
    assert_eq!(UsbSpeed(7).to_string(), "speed 7");
}
