//! The daemon side and the Rust client over real Unix sockets, with the device and an
//! in-process host in the test's process: Gadget Zero through `ServiceApi`, exclusivity,
//! disconnect = detach, raw statuses, cancel, limits and protocol violations.

use std::path::PathBuf;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use usbfn::functions::gadget_zero::{self, INTERFACE_GUID, Pattern};
use usbfn::host::Host;
use usbfn::{BusSpeed, Controller, DeviceConfig, Error, PipeId, ServiceApi};
use usbfn_abi::{IoctlCode, NtStatus};
use usbfn_ipc::daemon::InterfaceSockets;
use usbfn_ipc::frame::{Cancel, Completion, DaemonFrame, Request, ServiceFrame};
use usbfn_ipc::{ClientError, MAX_OUTSTANDING_REQUESTS, RemoteInterface, STATUS_SHARING_VIOLATION};
use usbfn_wire::{Direction, Recipient, RequestType, SetupPacket};

const T: Duration = Duration::from_secs(10);

struct Daemon {
    dir: PathBuf,
    controller: Controller,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

async fn daemon(tag: &str, config: &DeviceConfig) -> Daemon {
    let dir = std::env::temp_dir().join(format!("usbfn-ipc-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let controller = Controller::new(config).expect("device");
    let sockets = InterfaceSockets::bind(&controller, &dir).expect("bind");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(sockets.serve(async {
        let _ = stopped.await;
    }));
    Daemon {
        dir,
        controller,
        stop: Some(stop),
        task,
    }
}

impl Daemon {
    async fn ready(&self, ready: bool) {
        let mut watch = self.controller.ready_watch();
        tokio::time::timeout(T, watch.wait_for(|r| *r == ready))
            .await
            .expect("readiness in time")
            .expect("watch");
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(T, &mut self.task)
            .await
            .expect("daemon stops")
            .expect("join");
        assert!(
            usbfn_ipc::arrival::list_present(&self.dir)
                .expect("list")
                .is_empty(),
            "sockets removed"
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn vendor(dir: Direction, request: u8, len: u16) -> SetupPacket {
    SetupPacket::new(
        dir,
        RequestType::Vendor,
        Recipient::Device,
        request,
        0,
        0,
        len,
    )
}

#[tokio::test]
async fn gadget_zero_runs_over_the_socket() {
    let d = daemon("gz", &gadget_zero::config()).await;
    let dir = d.dir.clone();
    let service = tokio::spawn(async move {
        let iface = RemoteInterface::wait_and_open(&dir, INTERFACE_GUID)
            .await
            .expect("open");
        let options = gadget_zero::Options {
            pattern: Pattern::Mod63,
            ..Default::default()
        };
        gadget_zero::run(iface, options).await
    });
    d.ready(true).await;
    let host = Host::connect(&d.controller, BusSpeed::High).expect("host");
    tokio::time::timeout(T, async {
        host.set_configuration(1).await.expect("configure");
        for _ in 0..4 {
            let c = host.bulk_in(1, 4096).await.expect("in");
            assert_eq!(c.data.len(), 4096);
            assert_eq!(
                gadget_zero::first_mismatch(Pattern::Mod63, &c.data, 512),
                None
            );
        }
        let data = gadget_zero::pattern_bytes(Pattern::Mod63, 2048, 512);
        let c = host.bulk_out(1, data).await.expect("out");
        assert_eq!(c.status, usbfn::CompletionStatus::Success);
        let payload = Bytes::from_static(b"vendor request over a socket");
        let len = u16::try_from(payload.len()).expect("small");
        host.control(
            vendor(Direction::Out, gadget_zero::REQUEST_WRITE, len),
            payload.clone(),
        )
        .await
        .expect("write");
        let back = host
            .control(
                vendor(Direction::In, gadget_zero::REQUEST_READ, len),
                Bytes::new(),
            )
            .await
            .expect("read");
        assert_eq!(back, payload);
        // An unknown vendor request is stalled by the service.
        let stalled = host
            .control(vendor(Direction::In, 0x77, 4), Bytes::new())
            .await;
        assert!(matches!(
            stalled,
            Err(Error::Transfer(usbfn::CompletionStatus::Stall))
        ));
    })
    .await
    .expect("host traffic in time");
    drop(host);
    d.stop().await;
    // The daemon closed the connection: the service ends with DeviceGone.
    let ended = tokio::time::timeout(T, service)
        .await
        .expect("service ends")
        .expect("join");
    assert!(matches!(ended, Err(Error::DeviceGone)), "{ended:?}");
}

#[tokio::test]
async fn one_service_per_interface_and_disconnect_detaches() {
    let d = daemon("excl", &gadget_zero::config()).await;
    let first = RemoteInterface::open(&d.dir, INTERFACE_GUID)
        .await
        .expect("open");
    let second = RemoteInterface::open(&d.dir, &INTERFACE_GUID.to_uppercase()).await;
    match second {
        Err(e @ ClientError::Busy { .. }) => {
            assert!(e.to_string().contains("STATUS_SHARING_VIOLATION"), "{e}")
        }
        other => panic!("second open: {other:?}"),
    }
    ServiceApi::activate_bus(&first).await.expect("activate");
    d.ready(true).await;
    let host = Host::connect(&d.controller, BusSpeed::High).expect("host");
    host.set_configuration(1).await.expect("configure");
    // A host URB waits for the service; the service goes away.
    let waiting = host.bulk_in(1, 512);
    drop(first);
    d.ready(false).await;
    let r = tokio::time::timeout(T, waiting).await.expect("URB ends");
    assert!(r.is_err() || r.is_ok_and(|c| c.status != usbfn::CompletionStatus::Success));
    drop(host);
    // The interface can be opened again.
    let again = RemoteInterface::open(&d.dir, INTERFACE_GUID)
        .await
        .expect("reopen");
    ServiceApi::activate_bus(&again).await.expect("activate");
    d.ready(true).await;
    drop(again);
    d.stop().await;
}

const TWO: &str = r#"
    [device]
    vendor_id = 0x1209
    product_id = 0x0003
    [[interfaces]]
    name = "a"
    guid = "{aaaaaaaa-0000-0000-0000-000000000001}"
    device_request_owner = true
    string = "interface a"
    endpoints = [{ direction = "in", type = "bulk" }, { direction = "out", type = "bulk" }]
    [[interfaces]]
    name = "b"
    guid = "{bbbbbbbb-0000-0000-0000-000000000002}"
    endpoints = [{ direction = "in", type = "bulk" }, { direction = "out", type = "bulk" }]
"#;
const GUID_A: &str = "{aaaaaaaa-0000-0000-0000-000000000001}";
const GUID_B: &str = "{bbbbbbbb-0000-0000-0000-000000000002}";

#[tokio::test]
async fn remote_and_in_process_answers_match() {
    let config = DeviceConfig::from_toml(TWO).expect("toml");
    let d = daemon("parity", &config).await;
    let remote = RemoteInterface::open(&d.dir, GUID_A).await.expect("open a");
    let reference = Controller::new(&config).expect("reference device");
    let local = reference.open(GUID_A).expect("open a locally");

    let (r, l) = (
        ServiceApi::class_info(&remote).await.expect("remote"),
        ServiceApi::class_info(&local).await.expect("local"),
    );
    assert_eq!(r.per_speed, l.per_speed);
    assert_eq!(r.name, l.name);
    assert!(r.guid.expect("guid").eq_ignore_ascii_case(GUID_A));
    for speed in [BusSpeed::Full, BusSpeed::High, BusSpeed::Super] {
        assert_eq!(
            remote
                .interface_descriptor_set(0, speed)
                .await
                .expect("remote set"),
            local.interface_descriptor_set(0, speed).expect("local set"),
        );
    }
    remote
        .register_usb_string(9, "Hello")
        .await
        .expect("string");
    assert!(!remote.get_pipe_state(PipeId(1)).await.expect("state"));
    // Pipe 3 belongs to interface b: refused, as in-process.
    let theirs = remote
        .get_pipe_state(PipeId(3))
        .await
        .expect_err("not ours");
    let local_theirs = local.get_pipe_state(PipeId(3)).expect_err("not ours");
    assert_eq!(theirs.to_ntstatus(), local_theirs.to_ntstatus());
    let t = ServiceApi::transfer_in(&remote, PipeId(3), Bytes::from_static(b"x")).await;
    assert_eq!(
        t.expect_err("not ours").to_ntstatus(),
        NtStatus::STATUS_INVALID_PARAMETER
    );
    let no_setup = remote
        .control_status_handshake_in()
        .await
        .expect_err("no setup pending");
    assert_eq!(
        no_setup.to_ntstatus(),
        local
            .control_status_handshake_in()
            .expect_err("local")
            .to_ntstatus()
    );
    // Both interfaces must be active before the device is offered.
    remote.activate_bus().await.expect("activate a");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!d.controller.is_ready());
    let b = RemoteInterface::open(&d.dir, GUID_B).await.expect("open b");
    b.activate_bus().await.expect("activate b");
    d.ready(true).await;
    let host = Host::connect(&d.controller, BusSpeed::High).expect("host");
    host.set_configuration(1).await.expect("configure");
    // Stall and clear through the remote, seen by the host.
    remote.set_pipe_state(PipeId(1), true).await.expect("stall");
    assert!(remote.get_pipe_state(PipeId(1)).await.expect("state"));
    let c = host.bulk_in(1, 64).await.expect("urb");
    assert_eq!(c.status, usbfn::CompletionStatus::Stall);
    remote
        .set_pipe_state(PipeId(1), false)
        .await
        .expect("clear");
    drop(host);
    drop((remote, b));
    d.stop().await;
}

/// A raw service connection, for what the Rust client never sends.
struct Raw {
    stream: UnixStream,
    buf: BytesMut,
}

impl Raw {
    async fn connect(path: &std::path::Path) -> (Raw, usbfn_ipc::frame::Hello) {
        let stream = UnixStream::connect(path).await.expect("connect");
        let mut raw = Raw {
            stream,
            buf: BytesMut::new(),
        };
        match raw.next().await {
            Some(DaemonFrame::Hello(h)) => (raw, h),
            other => panic!("expected HELLO, got {other:?}"),
        }
    }

    async fn send(&mut self, frames: &[ServiceFrame]) {
        let mut out = BytesMut::new();
        for f in frames {
            f.encode(&mut out).expect("encode");
        }
        self.stream.write_all(&out).await.expect("write");
    }

    /// The next frame, or `None` when the daemon closed the connection.
    async fn next(&mut self) -> Option<DaemonFrame> {
        tokio::time::timeout(T, async {
            loop {
                if let Some(f) = DaemonFrame::decode(&mut self.buf).expect("valid frames") {
                    return Some(f);
                }
                match self.stream.read_buf(&mut self.buf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
        })
        .await
        .expect("daemon answers in time")
    }

    async fn completion(&mut self) -> Completion {
        match self.next().await {
            Some(DaemonFrame::Completion(c)) => c,
            other => panic!("expected a completion, got {other:?}"),
        }
    }
}

fn request(
    id: u64,
    code: IoctlCode,
    input: &[u8],
    output: &[u8],
    output_length: u32,
) -> ServiceFrame {
    ServiceFrame::Request(Request {
        id,
        code,
        input: Bytes::copy_from_slice(input),
        output_length,
        output: Bytes::copy_from_slice(output),
    })
}

#[tokio::test]
async fn misbehaving_service_gets_statuses_and_bounded_resources() {
    let config = DeviceConfig::from_toml(TWO).expect("toml");
    let d = daemon("raw", &config).await;
    let path_b = usbfn_ipc::path::socket_path(&d.dir, GUID_B).expect("path");
    let (mut raw, hello) = Raw::connect(&path_b).await;
    assert_eq!(hello.status, NtStatus::STATUS_SUCCESS);
    let (_, busy) = Raw::connect(&path_b).await;
    assert_eq!(busy.status, STATUS_SHARING_VIOLATION);

    let pipe = |p: u32| p.to_le_bytes();
    raw.send(&[
        request(1, IoctlCode(0x0022_C0FC), &[], &[], 0),
        request(2, IoctlCode::GET_CLASS_INFO, &[], &[], 10),
        request(3, IoctlCode::TRANSFER_IN, &[1, 0], b"ab", 2),
        request(4, IoctlCode::TRANSFER_IN, &pipe(3), b"ab", 5),
        request(5, IoctlCode::GET_PIPE_STATE, &pipe(3), b"carried", 1),
        request(6, IoctlCode::TRANSFER_IN, &pipe(1), b"ab", 2),
        request(7, IoctlCode::ACTIVATE_USB_BUS, &[], &[], 0),
    ])
    .await;
    let mut statuses = std::collections::BTreeMap::new();
    for _ in 0..7 {
        let c = raw.completion().await;
        statuses.insert(c.id, c.status);
    }
    assert_eq!(
        statuses[&1],
        NtStatus::STATUS_INVALID_DEVICE_REQUEST,
        "unknown code"
    );
    assert_eq!(
        statuses[&2],
        NtStatus::STATUS_BUFFER_TOO_SMALL,
        "small output"
    );
    assert_eq!(
        statuses[&3],
        NtStatus::STATUS_INVALID_PARAMETER,
        "short pipe id"
    );
    assert_eq!(
        statuses[&4],
        NtStatus::STATUS_INVALID_PARAMETER,
        "carried != length"
    );
    assert_eq!(
        statuses[&5],
        NtStatus::STATUS_INVALID_PARAMETER,
        "output not IN_DIRECT"
    );
    assert_eq!(
        statuses[&6],
        NtStatus::STATUS_INVALID_PARAMETER,
        "pipe of interface a"
    );
    assert_eq!(statuses[&7], NtStatus::STATUS_SUCCESS, "activate");

    // Interface a in-process, configured, so OUT transfers on b's pipe 4 wait for the host.
    let a = d.controller.open(GUID_A).expect("open a");
    a.activate_bus().expect("activate a");
    d.ready(true).await;
    let host = Host::connect(&d.controller, BusSpeed::High).expect("host");
    host.set_configuration(1).await.expect("configure");

    // Flood: more OUT transfers than the connection may have outstanding.
    let extra = 20u64;
    let total = u64::try_from(MAX_OUTSTANDING_REQUESTS).expect("fits") + extra;
    let frames: Vec<_> = (100..100 + total)
        .map(|id| request(id, IoctlCode::TRANSFER_OUT, &pipe(4), &[], 512))
        .collect();
    raw.send(&frames).await;
    for _ in 0..extra {
        let c = raw.completion().await;
        assert_eq!(c.status, NtStatus::STATUS_INSUFFICIENT_RESOURCES);
        assert!(
            c.id >= 100 + total - extra,
            "the last ones are refused: {}",
            c.id
        );
    }
    // The host still reaches interface a meanwhile.
    let t = a.transfer_in(PipeId(1), Bytes::from_static(b"still here"));
    let c = tokio::time::timeout(T, host.bulk_in(1, 512))
        .await
        .expect("in time")
        .expect("urb");
    assert_eq!(&c.data[..], b"still here");
    t.await.expect("sent");
    // Cancel them all: each completes exactly once, cancelled.
    let cancels: Vec<_> = (100..100 + total - extra)
        .map(|id| ServiceFrame::Cancel(Cancel { id }))
        .collect();
    raw.send(&cancels).await;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..(total - extra) {
        let c = raw.completion().await;
        assert_eq!(c.status, NtStatus::STATUS_CANCELLED);
        assert!(seen.insert(c.id), "completed twice: {}", c.id);
    }
    // A reused id is a protocol violation: the connection ends and the host is detached.
    raw.send(&[
        request(1000, IoctlCode::TRANSFER_OUT, &pipe(4), &[], 512),
        request(1000, IoctlCode::TRANSFER_OUT, &pipe(4), &[], 512),
    ])
    .await;
    loop {
        match raw.next().await {
            Some(DaemonFrame::Completion(_)) => {}
            None => break,
            Some(other) => panic!("unexpected {other:?}"),
        }
    }
    d.ready(false).await;
    drop(host);

    // Garbage and an oversized frame header: closed each time, daemon unaffected.
    for bytes in [vec![0xffu8; 16], u32::MAX.to_le_bytes().to_vec()] {
        let (mut raw, hello) = Raw::connect(&path_b).await;
        assert_eq!(hello.status, NtStatus::STATUS_SUCCESS);
        raw.stream.write_all(&bytes).await.expect("write");
        assert!(raw.next().await.is_none(), "closed after {bytes:?}");
    }
    let b = RemoteInterface::open(&d.dir, GUID_B)
        .await
        .expect("b again");
    b.activate_bus().await.expect("activate");
    d.ready(true).await;
    drop((a, b));
    d.stop().await;
}

#[tokio::test]
async fn dropping_a_remote_transfer_cancels_it() {
    let config = DeviceConfig::from_toml(TWO).expect("toml");
    let d = daemon("cancel", &config).await;
    let a = RemoteInterface::open(&d.dir, GUID_A).await.expect("a");
    let b = RemoteInterface::open(&d.dir, GUID_B).await.expect("b");
    a.activate_bus().await.expect("activate");
    b.activate_bus().await.expect("activate");
    d.ready(true).await;
    let host = Host::connect(&d.controller, BusSpeed::High).expect("host");
    host.set_configuration(1).await.expect("configure");
    let pending = ServiceApi::transfer_out(&a, PipeId(2), 512);
    let kept = ServiceApi::transfer_out(&a, PipeId(2), 512);
    assert_eq!(a.outstanding(), 2);
    drop(pending);
    tokio::time::timeout(T, async {
        while a.outstanding() > 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the cancel completes");
    // The kept transfer gets the host's data (the cancelled one did not swallow it).
    let sent = host.bulk_out(1, Bytes::from_static(b"to the kept one"));
    let c = tokio::time::timeout(T, kept)
        .await
        .expect("in time")
        .expect("data");
    assert_eq!(&c.data[..], b"to the kept one");
    sent.await.expect("urb");
    // Client-side limit: the daemon never sees more than it allows.
    let many: Vec<_> = (0..MAX_OUTSTANDING_REQUESTS)
        .map(|_| ServiceApi::transfer_out(&b, PipeId(4), 64))
        .collect();
    let over = ServiceApi::transfer_out(&b, PipeId(4), 64).await;
    assert!(
        matches!(
            over,
            Err(Error::Refused(
                usbfn_core::ServiceError::LimitExceeded { .. }
            ))
        ),
        "{over:?}"
    );
    drop(many);
    drop(host);
    drop((a, b));
    d.stop().await;
}

/// A service's outstanding OUT transfers on one pipe get the host's packets in the order it
/// submitted them, on a multi-threaded runtime where the daemon's per-request tasks run in
/// any order (they once did: a later transfer took an earlier packet).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outstanding_transfers_complete_in_submission_order() {
    let config = DeviceConfig::from_toml(TWO).expect("toml");
    let d = daemon("order", &config).await;
    let a = RemoteInterface::open(&d.dir, GUID_A).await.expect("a");
    let b = RemoteInterface::open(&d.dir, GUID_B).await.expect("b");
    a.activate_bus().await.expect("activate");
    b.activate_bus().await.expect("activate");
    d.ready(true).await;
    let host = Host::connect(&d.controller, BusSpeed::High).expect("host");
    host.set_configuration(1).await.expect("configure");
    for round in 0..10u8 {
        let queued: Vec<_> = (0..32)
            .map(|_| ServiceApi::transfer_out(&a, PipeId(2), 512))
            .collect();
        // One host write of 32 packets, each numbered.
        let data: Vec<u8> = (0..32u8)
            .flat_map(|p| std::iter::repeat_n(p ^ round, 512))
            .collect();
        let sent = host.bulk_out(1, Bytes::from(data));
        for (i, t) in queued.into_iter().enumerate() {
            let c = tokio::time::timeout(T, t)
                .await
                .expect("in time")
                .expect("data");
            assert_eq!(c.data.len(), 512);
            assert_eq!(
                usize::from(c.data[0] ^ round),
                i,
                "round {round}: transfer {i} got packet {}",
                c.data[0] ^ round
            );
        }
        sent.await.expect("urb");
    }
    drop(host);
    drop((a, b));
    d.stop().await;
}

/// An output buffer the protocol cannot carry is refused as the daemon refuses one beyond
/// MAX_DATA_LEN, not sent with a size clamped to u32::MAX.
#[cfg(target_pointer_width = "64")]
#[tokio::test]
async fn oversized_output_buffers_are_refused_alike() {
    let config = DeviceConfig::from_toml(TWO).expect("toml");
    let d = daemon("oversized", &config).await;
    let remote = RemoteInterface::open(&d.dir, GUID_A).await.expect("open a");
    let ask = |code: IoctlCode, output_capacity: usize| usbfn::ioctl::IoctlRequest {
        code,
        input: Bytes::new(),
        output: Bytes::new(),
        output_capacity,
    };
    let over_data = usbfn_ipc::MAX_DATA_LEN + 1;
    for (code, status) in [
        (
            IoctlCode::GET_CLASS_INFO,
            NtStatus::STATUS_INVALID_PARAMETER,
        ),
        (
            IoctlCode(0x0022_0000),
            NtStatus::STATUS_INVALID_DEVICE_REQUEST,
        ),
    ] {
        let by_daemon = remote.ioctl(ask(code, over_data)).await;
        assert_eq!(by_daemon.status, status, "{code}");
        assert_eq!(remote.ioctl(ask(code, 1 << 32)).await, by_daemon, "{code}");
    }
    drop(remote);
    d.stop().await;
}
