//! Client tests against a tiny fake server on a loopback socket (127.0.0.1:0).
#![allow(
    clippy::cast_possible_truncation,
    reason = "test lengths and seqnums are small"
)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use usbfn_wire::{SetupPacket, encode_langid_descriptor, encode_string_descriptor};

use super::*;
use crate::proto::{
    CmdSubmit, Command, DevicePath, Direction, RetSubmit, RetUnlink, ServerCodec, UsbInterface,
    UsbSpeed,
};

fn device(busid: &str) -> UsbDevice {
    UsbDevice {
        path: DevicePath::new("/sys/devices/usbfn/usb1/1-1").unwrap(),
        busid: BusId::new(busid).unwrap(),
        busnum: 1,
        devnum: 2,
        speed: UsbSpeed::HIGH,
        id_vendor: 0x1209,
        id_product: 0x0001,
        bcd_device: 0x0100,
        b_device_class: 0,
        b_device_sub_class: 0,
        b_device_protocol: 0,
        b_configuration_value: 0,
        b_num_configurations: 1,
        b_num_interfaces: 1,
    }
}

/// The server end of an imported connection.
struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    codec: ServerCodec,
}

impl Conn {
    /// The next command, `None` when the client closed the connection.
    async fn recv(&mut self) -> Option<Command> {
        loop {
            if let Some(cmd) = self.codec.decode(&mut self.buf).unwrap() {
                return Some(cmd);
            }
            if self.stream.read_buf(&mut self.buf).await.ok()? == 0 {
                return None;
            }
        }
    }

    async fn recv_submit(&mut self) -> CmdSubmit {
        match self.recv().await {
            Some(Command::Submit(c)) => c,
            other => panic!("expected CMD_SUBMIT, got {other:?}"),
        }
    }

    async fn reply(&mut self, cmd: &CmdSubmit, status: i32, data: &[u8]) {
        let ret = reply_to(cmd, status, data);
        let mut b = BytesMut::new();
        ret.encode(cmd.direction, &mut b).unwrap();
        self.stream.write_all(&b).await.unwrap();
    }

    async fn reply_unlink(&mut self, seqnum: u32, status: i32) {
        let mut b = BytesMut::new();
        RetUnlink { seqnum, status }.encode(&mut b).unwrap();
        self.stream.write_all(&b).await.unwrap();
    }
}

fn reply_to(cmd: &CmdSubmit, status: i32, data: &[u8]) -> RetSubmit {
    let (actual_length, data) = match cmd.direction {
        Direction::In => (data.len() as u32, Bytes::copy_from_slice(data)),
        Direction::Out => (cmd.transfer_buffer_length, Bytes::new()),
    };
    RetSubmit {
        seqnum: cmd.seqnum,
        status,
        actual_length,
        start_frame: 0,
        number_of_packets: 0,
        error_count: 0,
        data,
        iso: vec![],
    }
}

/// Serves one connection: answers the op request (devlist: `devices`; import: `status`
/// with `device`), then, after a successful import, runs `urbs` on the connection.
async fn serve<T, F, Fut>(
    devices: Vec<ExportedDevice>,
    status: OpStatus,
    device: UsbDevice,
    urbs: F,
) -> (SocketAddr, JoinHandle<Option<T>>)
where
    T: Send + 'static,
    F: FnOnce(Conn) -> Fut + Send + 'static,
    Fut: Future<Output = T> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = BytesMut::new();
        let req = loop {
            if let Some(req) = OpRequest::decode(&mut buf).unwrap() {
                break req;
            }
            assert_ne!(stream.read_buf(&mut buf).await.unwrap(), 0);
        };
        let mut out = BytesMut::new();
        match req {
            OpRequest::Devlist => {
                OpReply::Devlist { status, devices }
                    .encode(&mut out)
                    .unwrap();
                stream.write_all(&out).await.unwrap();
                None
            }
            OpRequest::Import { .. } => {
                let device = status.is_ok().then_some(device);
                OpReply::Import { status, device }.encode(&mut out).unwrap();
                stream.write_all(&out).await.unwrap();
                if !status.is_ok() {
                    return None;
                }
                let conn = Conn {
                    stream,
                    buf,
                    codec: ServerCodec::default(),
                };
                Some(urbs(conn).await)
            }
        }
    });
    (addr, task)
}

/// A server that imports `1-1` and then runs `urbs`.
async fn serve_import<T, F, Fut>(urbs: F) -> (SocketAddr, JoinHandle<Option<T>>)
where
    T: Send + 'static,
    F: FnOnce(Conn) -> Fut + Send + 'static,
    Fut: Future<Output = T> + Send,
{
    serve(vec![], OpStatus::OK, device("1-1"), urbs).await
}

#[tokio::test]
async fn list_devices_returns_the_devlist() {
    let devices = vec![
        ExportedDevice {
            device: device("1-1"),
            interfaces: vec![UsbInterface {
                b_interface_class: 0xff,
                b_interface_sub_class: 1,
                b_interface_protocol: 2,
            }],
        },
        ExportedDevice {
            device: UsbDevice {
                b_num_interfaces: 0,
                ..device("1-2")
            },
            interfaces: vec![],
        },
    ];
    let (addr, server) = serve(devices.clone(), OpStatus::OK, device("1-1"), |_| async {}).await;
    assert_eq!(list_devices(addr).await.unwrap(), devices);
    server.await.unwrap();
}

#[tokio::test]
async fn list_devices_with_limits_bounds_the_device_count() {
    let devices: Vec<_> = (1..=3)
        .map(|n| ExportedDevice {
            device: UsbDevice {
                b_num_interfaces: 0,
                ..device(&format!("1-{n}"))
            },
            interfaces: vec![],
        })
        .collect();
    let limits = |max_devices| Limits {
        max_devices,
        ..Limits::default()
    };
    let (addr, server) = serve(devices.clone(), OpStatus::OK, device("1-1"), |_| async {}).await;
    let err = list_devices_with_limits(addr, limits(2)).await.unwrap_err();
    assert!(err.to_string().contains("max_devices"), "{err}");
    let _ = server.await;
    let (addr, server) = serve(devices.clone(), OpStatus::OK, device("1-1"), |_| async {}).await;
    assert_eq!(
        list_devices_with_limits(addr, limits(3)).await.unwrap(),
        devices
    );
    server.await.unwrap();
}

#[tokio::test]
async fn import_maps_error_statuses() {
    for (status, check) in [
        (OpStatus::NODEV, "import of 1-1: no such device"),
        (
            OpStatus::DEV_BUSY,
            "import of 1-1: device busy (already imported?)",
        ),
        (OpStatus::DEV_ERR, "import of 1-1: device error"),
        (OpStatus::NA, "import of 1-1: not available"),
        (
            OpStatus::ERROR,
            "import of 1-1 failed with status ERROR (5)",
        ),
    ] {
        let (addr, server) = serve(vec![], status, device("1-1"), |_| async {}).await;
        let err = import(addr, "1-1").await.unwrap_err();
        assert_eq!(err.to_string(), check);
        server.await.unwrap();
    }
}

#[tokio::test]
async fn import_checks_the_echoed_busid() {
    let (addr, _server) = serve(vec![], OpStatus::OK, device("9-9"), |_| async {}).await;
    let err = import(addr, "1-1").await.unwrap_err();
    assert!(
        matches!(&err, ClientError::BusIdMismatch { requested, returned }
            if requested == "1-1" && returned == "9-9"),
        "{err}"
    );
}

#[tokio::test]
async fn import_refuses_an_invalid_busid() {
    let (a, _b) = tokio::io::duplex(64);
    let err = import_over(a, "has space", Limits::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::InvalidArgument(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_submits_complete_out_of_order() {
    const N: usize = 8;
    let (addr, server) = serve_import(|mut conn| async move {
        let mut cmds = Vec::new();
        for _ in 0..N {
            cmds.push(conn.recv_submit().await);
        }
        // Answer newest first; IN URBs get their seqnum as data.
        for c in cmds.iter().rev() {
            let byte = c.seqnum as u8;
            conn.reply(c, 0, &[byte; 4]).await;
        }
        assert!(conn.recv().await.is_none(), "client closes");
        cmds.len()
    })
    .await;
    let dev = Arc::new(import(addr, "1-1").await.unwrap());
    assert_eq!(dev.devid(), 0x0001_0002);
    let mut tasks = Vec::new();
    for i in 0..N {
        let dev = dev.clone();
        tasks.push(tokio::spawn(async move {
            let urb = if i % 2 == 0 {
                Urb::bulk_in(1, 64)
            } else {
                Urb::bulk_out(2, vec![i as u8; 10])
            };
            let pending = dev.submit_handle(urb).unwrap();
            let seqnum = pending.seqnum();
            let done = pending.wait().await.unwrap();
            assert_eq!(done.status, 0);
            if i % 2 == 0 {
                assert_eq!(&done.data[..], &[seqnum as u8; 4]);
            } else {
                assert_eq!(done.actual_length, 10);
                assert!(done.data.is_empty());
            }
            seqnum
        }));
    }
    let mut seqnums = Vec::new();
    for t in tasks {
        seqnums.push(t.await.unwrap());
    }
    seqnums.sort_unstable();
    seqnums.dedup();
    assert_eq!(seqnums.len(), N, "seqnums are unique");
    assert_eq!(dev.outstanding(), 0);
    assert!(dev.connection_error().is_none());
    drop(dev);
    assert_eq!(server.await.unwrap(), Some(N));
}

#[tokio::test]
async fn unlink_of_a_pending_urb_cancels_it() {
    let (addr, server) = serve_import(|mut conn| async move {
        let urb = conn.recv_submit().await;
        let Some(Command::Unlink(u)) = conn.recv().await else {
            panic!("expected CMD_UNLINK");
        };
        assert_eq!(u.unlink_seqnum, urb.seqnum);
        assert_eq!((u.direction, u.ep), (Direction::In, 1));
        conn.reply_unlink(u.seqnum, -errno::ECONNRESET).await;
        // The device keeps working afterwards.
        let next = conn.recv_submit().await;
        conn.reply(&next, 0, b"ok").await;
    })
    .await;
    let dev = import(addr, "1-1").await.unwrap();
    let pending = dev.submit_handle(Urb::bulk_in(1, 64)).unwrap();
    assert_eq!(
        dev.unlink(pending.seqnum()).await.unwrap(),
        -errno::ECONNRESET
    );
    let done = pending.wait().await.unwrap();
    assert_eq!(done.status, -errno::ECONNRESET);
    assert!(done.data.is_empty());
    let again = dev.submit(Urb::bulk_in(1, 64)).await.unwrap();
    assert_eq!(&again.data[..], b"ok");
    server.await.unwrap();
}

#[tokio::test]
async fn unlink_after_completion_returns_zero() {
    let (addr, server) = serve_import(|mut conn| async move {
        let urb = conn.recv_submit().await;
        conn.reply(&urb, 0, b"data").await;
        let Some(Command::Unlink(u)) = conn.recv().await else {
            panic!("expected CMD_UNLINK");
        };
        conn.reply_unlink(u.seqnum, 0).await;
        conn.recv().await
    })
    .await;
    let dev = import(addr, "1-1").await.unwrap();
    let pending = dev.submit_handle(Urb::bulk_in(1, 64)).unwrap();
    let seqnum = pending.seqnum();
    assert_eq!(&pending.wait().await.unwrap().data[..], b"data");
    assert_eq!(dev.unlink(seqnum).await.unwrap(), 0);
    assert!(dev.connection_error().is_none());
    drop(dev);
    assert_eq!(server.await.unwrap(), Some(None));
}

#[tokio::test]
async fn unknown_seqnum_fails_the_connection() {
    let (addr, server) = serve_import(|mut conn| async move {
        let urb = conn.recv_submit().await;
        let bogus = CmdSubmit {
            seqnum: urb.seqnum + 100,
            ..urb
        };
        conn.reply(&bogus, 0, b"x").await;
        // The client drops the connection, like the Linux host does.
        conn.recv().await.is_none()
    })
    .await;
    let dev = import(addr, "1-1").await.unwrap();
    let err = dev.submit(Urb::bulk_in(1, 64)).await.unwrap_err();
    assert!(err.is_protocol_error(), "{err}");
    assert!(
        err.to_string().contains("RET_SUBMIT for unknown seqnum"),
        "{err}"
    );
    assert!(matches!(
        dev.connection_error(),
        Some(ClientError::Protocol(ProtoError::UnknownSeqnum { .. }))
    ));
    assert!(
        dev.submit(Urb::bulk_in(1, 1))
            .await
            .unwrap_err()
            .is_protocol_error()
    );
    assert_eq!(
        server.await.unwrap(),
        Some(true),
        "client closed the socket"
    );
}

#[tokio::test]
async fn oversized_in_reply_fails_the_connection() {
    let (addr, _server) = serve_import(|mut conn| async move {
        let urb = conn.recv_submit().await;
        conn.reply(&urb, 0, &[0; 9]).await;
        conn.recv().await
    })
    .await;
    let dev = import(addr, "1-1").await.unwrap();
    let err = dev.submit(Urb::bulk_in(1, 8)).await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Protocol(ProtoError::ActualLengthExceedsBuffer {
                actual_length: 9,
                transfer_buffer_length: 8,
                ..
            })
        ),
        "{err}"
    );
}

#[tokio::test]
async fn closed_connection_fails_pending_urbs() {
    let (addr, server) = serve_import(|mut conn| async move {
        conn.recv_submit().await;
        conn.recv_submit().await;
        // Dropping the connection closes it with both URBs pending.
    })
    .await;
    let dev = import(addr, "1-1").await.unwrap();
    let a = dev.submit_handle(Urb::bulk_in(1, 8)).unwrap();
    let b = dev.submit_handle(Urb::bulk_out(2, &b"abc"[..])).unwrap();
    server.await.unwrap();
    for p in [a, b] {
        assert!(matches!(p.wait().await, Err(ClientError::ConnectionClosed)));
    }
    assert!(matches!(
        dev.connection_error(),
        Some(ClientError::ConnectionClosed)
    ));
}

#[tokio::test]
async fn dropping_the_device_fails_pending_urbs() {
    let (addr, _server) = serve_import(|mut conn| async move { conn.recv().await }).await;
    let dev = import(addr, "1-1").await.unwrap();
    let pending = dev.submit_handle(Urb::bulk_in(1, 8)).unwrap();
    drop(dev);
    assert!(matches!(pending.wait().await, Err(ClientError::Closed)));
}

#[tokio::test]
async fn outstanding_limit_is_enforced() {
    let (addr, _server) = serve_import(|mut conn| async move { conn.recv().await }).await;
    let limits = Limits {
        max_outstanding_urbs: 1,
        ..Limits::default()
    };
    let dev = import_with_limits(addr, "1-1", limits).await.unwrap();
    let _first = dev.submit_handle(Urb::bulk_in(1, 8)).unwrap();
    let err = dev.submit_handle(Urb::bulk_in(1, 8)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid request: CMD_SUBMIT outstanding URBs 2 exceeds max_outstanding_urbs 1"
    );
}

#[tokio::test]
async fn iso_in_reply_is_unpacked_per_packet() {
    let (addr, server) = serve_import(|mut conn| async move {
        let c = conn.recv_submit().await;
        assert_eq!(c.number_of_packets, 3);
        assert_eq!(c.transfer_buffer_length, 24);
        // Packets of 2, 0 and 3 bytes, packed without gaps.
        let iso = c
            .iso
            .iter()
            .zip([2u32, 0, 3])
            .map(|(d, n)| crate::proto::IsoPacketDescriptor {
                actual_length: n,
                ..*d
            })
            .collect();
        let ret = RetSubmit {
            number_of_packets: 3,
            iso,
            ..reply_to(&c, 0, b"abxyz")
        };
        let mut b = BytesMut::new();
        ret.encode(Direction::In, &mut b).unwrap();
        conn.stream.write_all(&b).await.unwrap();
        conn.recv().await
    })
    .await;
    let dev = import(addr, "1-1").await.unwrap();
    let done = dev.submit(Urb::iso_in(3, &[8, 8, 8], 1)).await.unwrap();
    let packets: Vec<(u32, Bytes)> = done.iso_packets().map(|(d, b)| (d.offset, b)).collect();
    assert_eq!(
        packets,
        vec![
            (0, Bytes::from_static(b"ab")),
            (8, Bytes::new()),
            (16, Bytes::from_static(b"xyz"))
        ]
    );
    drop(dev);
    assert_eq!(server.await.unwrap(), Some(None));
}

/// Canned descriptors of a USB 2.1 device with one vendor interface and two bulk endpoints.
struct Canned;

impl Canned {
    const DEVICE: [u8; 18] = [
        18, 1, 0x10, 0x02, 0, 0, 0, 64, 0x09, 0x12, 0x01, 0x00, 0x00, 0x01, 1, 2, 3, 1,
    ];
    const CONFIG: [u8; 32] = [
        9, 2, 32, 0, 1, 1, 0, 0x80, 50, // configuration
        9, 4, 0, 0, 2, 0xff, 0, 0, 4, // interface, iInterface 4
        7, 5, 0x81, 2, 0x00, 0x02, 0, // EP1 IN bulk 512
        7, 5, 0x02, 2, 0x00, 0x02, 0, // EP2 OUT bulk 512
    ];
    const BOS: [u8; 12] = [5, 15, 12, 0, 1, 7, 16, 2, 0x02, 0, 0, 0];
    const STRINGS: [&str; 4] = ["usbfn", "Loopback", "0001", "Vendor interface"];

    fn answer(setup: SetupPacket) -> Option<Vec<u8>> {
        let [index, dtype] = setup.w_value.to_le_bytes();
        match (setup.bm_request_type, setup.b_request, dtype, index) {
            (0x80, 6, 1, 0) => Some(Self::DEVICE.to_vec()),
            (0x80, 6, 2, 0) => Some(Self::CONFIG.to_vec()),
            (0x80, 6, 15, 0) => Some(Self::BOS.to_vec()),
            (0x80, 6, 3, 0) => Some(encode_langid_descriptor(&[0x0409]).unwrap()),
            (0x80, 6, 3, i @ 1..=4) if setup.w_index == 0x0409 => {
                Some(encode_string_descriptor(Self::STRINGS[usize::from(i) - 1]).unwrap())
            }
            (0x00, 9, _, _) => Some(vec![]),
            _ => None,
        }
    }
}

/// A fake device on endpoint 0: answers [`Canned`] requests, stalls the rest, records setups.
async fn canned_device(mut conn: Conn) -> Vec<SetupPacket> {
    let mut seen = Vec::new();
    while let Some(cmd) = conn.recv().await {
        let Command::Submit(c) = cmd else { continue };
        let setup = SetupPacket::from_bytes(c.setup);
        seen.push(setup);
        match Canned::answer(setup) {
            Some(mut data) => {
                data.truncate(usize::from(setup.w_length));
                conn.reply(&c, 0, &data).await;
            }
            None => conn.reply(&c, -errno::EPIPE, &[]).await,
        }
    }
    seen
}

#[tokio::test]
async fn enumerate_reads_what_a_host_reads() {
    let (addr, server) = serve_import(canned_device).await;
    let dev = import(addr, "1-1").await.unwrap();
    let tree = dev.enumerate(Some(1)).await.unwrap();
    assert_eq!(tree.device.id_vendor, 0x1209);
    assert_eq!(&tree.device_bytes[..], &Canned::DEVICE);
    assert_eq!(tree.configurations.len(), 1);
    let config = &tree.configurations[0];
    assert_eq!(config.tree.configuration.w_total_length, 32);
    assert_eq!(&config.bytes[..], &Canned::CONFIG);
    assert_eq!(config.tree.interfaces[0].endpoints.len(), 2);
    assert_eq!(tree.langids, vec![0x0409]);
    assert_eq!(tree.string(2), Some("Loopback"));
    assert_eq!(tree.string(4), Some("Vendor interface"));
    assert_eq!(tree.strings.len(), 4);
    let bos = tree.bos.as_ref().expect("bcdUSB 0x0210 has a BOS");
    assert_eq!(&bos.bytes[..], &Canned::BOS);
    assert_eq!(bos.tree.capabilities.len(), 1);
    assert_eq!(tree.configured, Some(1));

    // A stall comes back as an error naming the request.
    let err = dev
        .get_descriptor(usbfn_wire::DescriptorType::STRING, 9, 0x0409, 255)
        .await
        .unwrap_err();
    assert!(err.is_stall(), "{err}");
    assert!(err.to_string().starts_with("GET_DESCRIPTOR("), "{err}");
    drop(dev);

    let seen: Vec<(u8, u16, u16)> = server
        .await
        .unwrap()
        .unwrap()
        .iter()
        .map(|s| (s.b_request, s.w_value, s.w_length))
        .collect();
    assert_eq!(
        seen,
        vec![
            (6, 0x0100, 8),
            (6, 0x0100, 18),
            (6, 0x0200, 9),
            (6, 0x0200, 32),
            (6, 0x0300, 255),
            (6, 0x0301, 255),
            (6, 0x0302, 255),
            (6, 0x0303, 255),
            (6, 0x0304, 255),
            (6, 0x0f00, 5),
            (6, 0x0f00, 12),
            (9, 1, 0),
            (6, 0x0309, 255),
        ]
    );
}

#[tokio::test]
async fn control_helpers_check_their_arguments() {
    let (addr, _server) = serve_import(canned_device).await;
    let dev = import(addr, "1-1").await.unwrap();
    let err = dev
        .control_out(SetupPacket::set_configuration(1), &b"x"[..])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("carries 1 data bytes"), "{err}");
    let err = dev
        .control_in(SetupPacket::set_configuration(1))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("direction IN"), "{err}");
    dev.set_configuration(1).await.unwrap();
    assert!(dev.set_interface(0, 1).await.unwrap_err().is_stall());
}
