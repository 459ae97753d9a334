//! `usbfn daemon` with services in their own processes, checked by a USB/IP host client:
//! kill -9 of the service during bulk traffic and its restart, the Python example service,
//! a composite device served by two service processes, exclusivity and a misbehaving service.
//!
//! Every test runs under a time limit, and every process it starts is killed when the test
//! ends, passed or failed (the `Proc` guard).

#![allow(clippy::cast_possible_truncation)] // test sizes are small by construction

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use usbfn::functions::gadget_zero::{self, Pattern};
use usbfn_abi::{IoctlCode, NtStatus};
use usbfn_ipc::frame::{DaemonFrame, Request, ServiceFrame};
use usbfn_usbip::client::{self, ClientError, ImportedDevice, Urb};
use usbfn_wire::{Direction, Recipient, RequestType, SetupPacket};

/// Limit for one whole test.
const TEST_LIMIT: Duration = Duration::from_secs(90);
/// Limit for one step (a process starting, the device appearing or going).
const STEP: Duration = Duration::from_secs(15);

/// A child process, killed (SIGKILL) and reaped when dropped.
struct Proc {
    child: Child,
    name: String,
}

impl Proc {
    fn spawn(name: &str, cmd: &mut Command, log: &Path) -> Proc {
        let log = std::fs::File::create(log).expect("log file");
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{name} starts: {e}"));
        Proc {
            child,
            name: name.to_owned(),
        }
    }

    /// The first stdout line containing `marker` (its stdout is drained afterwards).
    fn wait_line(&mut self, marker: &str) -> String {
        let stdout = self.child.stdout.take().expect("stdout piped");
        let (tx, rx) = std::sync::mpsc::channel();
        let marker = marker.to_owned();
        std::thread::spawn(move || {
            let mut found = false;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if !found && line.contains(&marker) {
                    found = true;
                    let _ = tx.send(line);
                }
            }
        });
        rx.recv_timeout(STEP)
            .unwrap_or_else(|_| panic!("{} printed no line with the marker in time", self.name))
    }

    /// kill -9.
    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, and its exit status (killed after [`STEP`] if it does not stop).
    fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM {pid}");
        let start = std::time::Instant::now();
        while start.elapsed() < STEP {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill9();
        panic!("{} did not stop on SIGTERM", self.name);
    }

    /// Its exit status, if it exited.
    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("wait")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// `usbfn daemon` in a fresh runtime directory, listening on a loopback port.
struct Daemon {
    proc: Proc,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Daemon {
    fn start(tag: &str, config: Option<&str>) -> Daemon {
        let dir = std::env::temp_dir().join(format!("usbfn-daemon-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let run = dir.join("run");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_usbfn"));
        cmd.args(["daemon", "--listen", "127.0.0.1:0", "--runtime-dir"])
            .arg(&run);
        if let Some(text) = config {
            let path = dir.join("device.toml");
            std::fs::write(&path, text).expect("config");
            cmd.arg("--config").arg(path);
        }
        let mut proc = Proc::spawn("usbfn daemon", &mut cmd, &dir.join("daemon.log"));
        let line = proc.wait_line("listening for USB/IP hosts on ");
        let addr = line
            .rsplit(' ')
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("address in {line:?}"));
        Daemon {
            proc,
            addr,
            dir: run,
        }
    }

    /// `usbfn service gadget-zero` against this daemon.
    fn gadget_zero(&self, name: &str, extra: &[&str]) -> Proc {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_usbfn"));
        cmd.args(["service", "gadget-zero", "--runtime-dir"])
            .arg(&self.dir)
            .args(extra);
        let log = self.log_path(name);
        Proc::spawn(name, &mut cmd, &log)
    }

    fn log_path(&self, name: &str) -> PathBuf {
        let parent = self.dir.parent().expect("parent");
        parent.join(format!("{}.log", name.replace(' ', "-")))
    }

    /// Wait until hosts see `n` devices.
    async fn wait_listed(&self, n: usize) {
        let listed = tokio::time::timeout(STEP, async {
            loop {
                if let Ok(devices) = client::list_devices(self.addr).await
                    && devices.len() == n
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        })
        .await;
        assert!(
            listed.is_ok(),
            "the daemon did not list {n} device(s) in time"
        );
    }

    async fn listed(&self) -> usize {
        client::list_devices(self.addr).await.expect("list").len()
    }

    /// The end of the daemon's log so far.
    fn log(&self) -> String {
        let path = self.dir.parent().map(|p| p.join("daemon.log"));
        let text = path
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// SIGTERM: the daemon exits 0 and removes its sockets.
    fn stop(&mut self) {
        let status = self.proc.terminate();
        assert!(status.success(), "daemon exit status {status}");
        assert!(
            usbfn_ipc::arrival::list_present(&self.dir)
                .expect("list")
                .is_empty(),
            "sockets removed on exit"
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.proc.kill9();
        if let Some(parent) = self.dir.parent() {
            let _ = std::fs::remove_dir_all(parent);
        }
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

async fn import(addr: SocketAddr) -> ImportedDevice {
    tokio::time::timeout(STEP, client::import(addr, "1-1"))
        .await
        .expect("import in time")
        .expect("import")
}

/// What a host checks of a Gadget Zero, whichever process or language serves it.
async fn host_checks(dev: &ImportedDevice, pattern: Pattern, ep: u8) {
    for len in [512u32, 4096] {
        let c = dev
            .submit(Urb::bulk_in(ep, len))
            .await
            .expect("bulk in")
            .into_result()
            .expect("bulk in ok");
        assert_eq!(c.data.len(), len as usize);
        assert_eq!(gadget_zero::first_mismatch(pattern, &c.data, 512), None);
    }
    let data = gadget_zero::pattern_bytes(pattern, 4096, 512);
    dev.submit(Urb::bulk_out(ep, data))
        .await
        .expect("bulk out")
        .into_result()
        .expect("bulk out ok");
}

async fn vendor_checks(dev: &ImportedDevice) {
    let payload = Bytes::from_static(b"stored by the service process");
    let len = payload.len() as u16;
    dev.control_out(
        vendor(Direction::Out, gadget_zero::REQUEST_WRITE, len),
        payload.clone(),
    )
    .await
    .expect("vendor write");
    let back = dev
        .control_in(vendor(Direction::In, gadget_zero::REQUEST_READ, len))
        .await
        .expect("vendor read");
    assert_eq!(back, payload);
    let e = dev
        .control_in(vendor(Direction::In, 0x77, 8))
        .await
        .expect_err("unknown vendor request");
    assert!(e.is_stall(), "{e}");
}

/// Bulk IN and OUT on `ep` from `tasks` tasks until a URB fails; the number of URBs that
/// completed is counted in `done`. Returns the first error.
fn traffic(
    dev: &Arc<ImportedDevice>,
    ep: u8,
    tasks: usize,
    done: &Arc<AtomicU64>,
) -> Vec<tokio::task::JoinHandle<ClientError>> {
    (0..tasks)
        .map(|i| {
            let dev = dev.clone();
            let done = done.clone();
            tokio::spawn(async move {
                loop {
                    let urb = if i % 2 == 0 {
                        Urb::bulk_in(ep, 4096)
                    } else {
                        Urb::bulk_out(ep, vec![0u8; 4096])
                    };
                    match dev.submit(urb).await.and_then(|c| c.into_result()) {
                        Ok(_) => done.fetch_add(1, Ordering::Relaxed),
                        Err(e) => return e,
                    };
                }
            })
        })
        .collect()
}

async fn wait_count(done: &AtomicU64, at_least: u64) {
    let reached = tokio::time::timeout(STEP, async {
        while done.load(Ordering::Relaxed) < at_least {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(reached.is_ok(), "{at_least} URBs did not complete in time");
}

async fn all_fail(daemon: &Daemon, tasks: Vec<tokio::task::JoinHandle<ClientError>>) {
    for t in tasks {
        let Ok(e) = tokio::time::timeout(STEP, t).await else {
            panic!(
                "traffic did not stop in time after the service died; daemon log:\n{}",
                daemon.log()
            );
        };
        let e = e.expect("join");
        assert!(
            matches!(
                e,
                ClientError::ConnectionClosed | ClientError::UrbFailed { .. } | ClientError::Io(_)
            ),
            "{e}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_of_the_service_during_bulk_traffic_then_restart() {
    tokio::time::timeout(TEST_LIMIT, async {
        let mut daemon = Daemon::start("kill9", None);
        assert_eq!(daemon.listed().await, 0, "no service: not offered");
        let refused = client::import(daemon.addr, "1-1").await;
        assert!(
            matches!(refused, Err(ClientError::NotAvailable { .. })),
            "{refused:?}"
        );

        let mut service = daemon.gadget_zero("service 1", &[]);
        service.wait_line("gadget-zero opened");
        daemon.wait_listed(1).await;
        let dev = Arc::new(import(daemon.addr).await);
        dev.set_configuration(1).await.expect("configure");
        host_checks(&dev, Pattern::Zeros, 1).await;

        let done = Arc::new(AtomicU64::new(0));
        let tasks = traffic(&dev, 1, 4, &done);
        wait_count(&done, 200).await;
        service.kill9();
        all_fail(&daemon, tasks).await;
        daemon.wait_listed(0).await;
        drop(dev);

        let mut service = daemon.gadget_zero("service 2", &[]);
        service.wait_line("gadget-zero opened");
        daemon.wait_listed(1).await;
        let dev = Arc::new(import(daemon.addr).await);
        let tree = dev.enumerate(Some(1)).await.expect("enumerate");
        assert_eq!(tree.string(tree.device.i_product), Some("Gadget Zero"));
        host_checks(&dev, Pattern::Zeros, 1).await;
        vendor_checks(&dev).await;
        let done = Arc::new(AtomicU64::new(0));
        let tasks = traffic(&dev, 1, 4, &done);
        wait_count(&done, 200).await;
        for t in &tasks {
            t.abort();
        }
        drop(dev);
        daemon.stop();
        // The service outlives the daemon, waiting for its interface to come back.
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            service.exited().is_none(),
            "the service waits for the daemon"
        );
    })
    .await
    .expect("test finished in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_example_service_passes_the_host_checks() {
    tokio::time::timeout(TEST_LIMIT, async {
        let mut daemon = Daemon::start("python", None);
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/python/gadget_zero_service.py");
        let mut cmd = Command::new("python3");
        cmd.arg(&script)
            .arg("--runtime-dir")
            .arg(&daemon.dir)
            .args(["--pattern", "1"]);
        let mut python = Proc::spawn("python service", &mut cmd, &daemon.log_path("python"));
        python.wait_line("bus activated");
        daemon.wait_listed(1).await;
        let dev = import(daemon.addr).await;
        let tree = dev.enumerate(Some(1)).await.expect("enumerate");
        assert_eq!(tree.device.id_vendor, 0x0525);
        host_checks(&dev, Pattern::Mod63, 1).await;
        vendor_checks(&dev).await;
        // Many URBs at once, answered by the service's outstanding transfers.
        let pending: Vec<_> = (0..16)
            .map(|_| dev.submit_handle(Urb::bulk_in(1, 4096)).expect("submit"))
            .collect();
        for p in pending {
            let c = p.wait().await.expect("urb").into_result().expect("ok");
            assert_eq!(
                gadget_zero::first_mismatch(Pattern::Mod63, &c.data, 512),
                None
            );
        }
        python.kill9();
        daemon.wait_listed(0).await;
        drop(dev);
        daemon.stop();
    })
    .await
    .expect("test finished in time");
}

/// The newcomer's story: the loopback device file from `examples/devices/`, served by the
/// daemon with the Python loopback service, bytes written come back in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_example_served_by_the_daemon_and_the_python_service() {
    tokio::time::timeout(TEST_LIMIT, async {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let device = std::fs::read_to_string(root.join("examples/devices/loopback.toml"))
            .expect("loopback.toml");
        let mut daemon = Daemon::start("loopback", Some(&device));
        let mut cmd = Command::new("python3");
        cmd.arg(root.join("examples/python/loopback_service.py"))
            .arg("--runtime-dir")
            .arg(&daemon.dir);
        let mut python = Proc::spawn("loopback service", &mut cmd, &daemon.log_path("loopback"));
        python.wait_line("bus activated");
        daemon.wait_listed(1).await;
        let dev = import(daemon.addr).await;
        let tree = dev.enumerate(Some(1)).await.expect("enumerate");
        assert_eq!(
            (tree.device.id_vendor, tree.device.id_product),
            (0x1209, 0x0001)
        );
        for len in [1u32, 512, 3000] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            // The IN URB first: the service loops one packet at a time, so the host reads
            // while it writes, as a loopback user does.
            let back = dev.submit_handle(Urb::bulk_in(1, len)).expect("in");
            dev.submit(Urb::bulk_out(1, data.clone()))
                .await
                .expect("out")
                .into_result()
                .expect("accepted");
            let back = back
                .wait()
                .await
                .expect("in")
                .into_result()
                .expect("answered");
            assert_eq!(&back.data[..], &data[..], "{len} bytes come back");
        }
        python.kill9();
        daemon.wait_listed(0).await;
        drop(dev);
        daemon.stop();
    })
    .await
    .expect("test finished in time");
}

const COMPOSITE: &str = r#"
[device]
vendor_id = 0x1209
product_id = 0x0c0c
product = "two services"
[[interfaces]]
name = "a"
guid = "{aaaaaaaa-1111-4000-8000-00000000000a}"
device_request_owner = true
class = 0xff
endpoints = [{ direction = "in", type = "bulk" }, { direction = "out", type = "bulk" }]
[[interfaces]]
name = "b"
guid = "{bbbbbbbb-2222-4000-8000-00000000000b}"
class = 0xff
endpoints = [{ direction = "in", type = "bulk" }, { direction = "out", type = "bulk" }]
"#;
const GUID_A: &str = "{aaaaaaaa-1111-4000-8000-00000000000a}";
const GUID_B: &str = "{bbbbbbbb-2222-4000-8000-00000000000b}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composite_device_with_two_service_processes() {
    tokio::time::timeout(TEST_LIMIT, async {
        let mut daemon = Daemon::start("composite", Some(COMPOSITE));
        let mut a = daemon.gadget_zero("service a", &["--interface", GUID_A]);
        a.wait_line("gadget-zero opened");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            daemon.listed().await,
            0,
            "b has no service yet: not offered"
        );
        let mut b = daemon.gadget_zero("service b", &["--interface", GUID_B, "--pattern", "1"]);
        b.wait_line("gadget-zero opened");
        daemon.wait_listed(1).await;

        let dev = Arc::new(import(daemon.addr).await);
        let tree = dev.enumerate(Some(1)).await.expect("enumerate");
        assert_eq!(tree.configurations[0].tree.interfaces.len(), 2);
        // Interface a owns endpoints 1, interface b endpoints 2: both at once.
        tokio::join!(
            host_checks(&dev, Pattern::Zeros, 1),
            host_checks(&dev, Pattern::Mod63, 2),
            vendor_checks(&dev),
        );
        let (done_a, done_b) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let traffic_a = traffic(&dev, 1, 2, &done_a);
        let traffic_b = traffic(&dev, 2, 2, &done_b);
        wait_count(&done_a, 100).await;
        wait_count(&done_b, 100).await;

        // One service dies: the host is detached from the whole device.
        b.kill9();
        all_fail(&daemon, traffic_a).await;
        all_fail(&daemon, traffic_b).await;
        daemon.wait_listed(0).await;
        assert!(a.exited().is_none(), "service a is unaffected");
        drop(dev);

        let mut b = daemon.gadget_zero("service b2", &["--interface", GUID_B, "--pattern", "1"]);
        b.wait_line("gadget-zero opened");
        daemon.wait_listed(1).await;
        let dev = import(daemon.addr).await;
        dev.set_configuration(1).await.expect("configure");
        tokio::join!(
            host_checks(&dev, Pattern::Zeros, 1),
            host_checks(&dev, Pattern::Mod63, 2)
        );
        drop(dev);
        daemon.stop();
    })
    .await
    .expect("test finished in time");
}

/// A raw service connection from the test process.
struct Raw {
    stream: tokio::net::UnixStream,
    buf: BytesMut,
}

impl Raw {
    async fn open(dir: &Path, guid: &str) -> (Raw, NtStatus) {
        let path = usbfn_ipc::path::socket_path(dir, guid).expect("path");
        let stream = tokio::net::UnixStream::connect(path)
            .await
            .expect("connect");
        let mut raw = Raw {
            stream,
            buf: BytesMut::new(),
        };
        match raw.next().await {
            Some(DaemonFrame::Hello(h)) => (raw, h.status),
            other => panic!("expected HELLO: {other:?}"),
        }
    }

    async fn send(&mut self, frames: &[ServiceFrame]) {
        let mut out = BytesMut::new();
        for f in frames {
            f.encode(&mut out).expect("encode");
        }
        self.stream.write_all(&out).await.expect("write");
    }

    async fn next(&mut self) -> Option<DaemonFrame> {
        tokio::time::timeout(STEP, async {
            loop {
                if let Some(f) = DaemonFrame::decode(&mut self.buf).expect("frames") {
                    return Some(f);
                }
                match self.stream.read_buf(&mut self.buf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
        })
        .await
        .expect("the daemon answers in time")
    }

    async fn status(&mut self) -> (u64, NtStatus) {
        match self.next().await {
            Some(DaemonFrame::Completion(c)) => (c.id, c.status),
            other => panic!("expected a completion: {other:?}"),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusive_open_and_a_misbehaving_service_process() {
    tokio::time::timeout(TEST_LIMIT, async {
        let mut daemon = Daemon::start("misbehave", Some(COMPOSITE));
        let mut a = daemon.gadget_zero("service a", &["--interface", GUID_A]);
        a.wait_line("gadget-zero opened");

        // A second service for the same interface is told it is busy and exits.
        let mut second = daemon.gadget_zero("second a", &["--interface", GUID_A]);
        let status = tokio::time::timeout(STEP, async {
            loop {
                if let Some(s) = second.exited() {
                    return s;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the second service exits");
        assert!(!status.success());
        let log = std::fs::read_to_string(daemon.log_path("second a")).expect("log");
        assert!(log.contains("already open by another service"), "{log}");

        // The test process is b's service, and a bad one.
        let (mut b, hello) = Raw::open(&daemon.dir, GUID_B).await;
        assert_eq!(hello, NtStatus::STATUS_SUCCESS);
        let pipe = |p: u32| p.to_le_bytes();
        b.send(&[
            request(1, IoctlCode(0x0022_C0FC), &[], &[], 0),
            request(2, IoctlCode::GET_CLASS_INFO, &[], &[], 100),
            request(3, IoctlCode::TRANSFER_IN, &pipe(1), b"not mine", 8),
            request(4, IoctlCode::ACTIVATE_USB_BUS, &[], &[], 0),
        ])
        .await;
        let mut got = std::collections::BTreeMap::new();
        for _ in 0..4 {
            let (id, s) = b.status().await;
            got.insert(id, s);
        }
        assert_eq!(got[&1], NtStatus::STATUS_INVALID_DEVICE_REQUEST);
        assert_eq!(got[&2], NtStatus::STATUS_BUFFER_TOO_SMALL);
        assert_eq!(got[&3], NtStatus::STATUS_INVALID_PARAMETER, "a's pipe");
        assert_eq!(got[&4], NtStatus::STATUS_SUCCESS);
        daemon.wait_listed(1).await;
        let dev = import(daemon.addr).await;
        dev.set_configuration(1).await.expect("configure");

        // A flood of OUT transfers on b's own pipe (4): the excess is refused, a still works.
        let max = usbfn_ipc::MAX_OUTSTANDING_REQUESTS as u64;
        let flood: Vec<_> = (100..100 + max + 50)
            .map(|id| request(id, IoctlCode::TRANSFER_OUT, &pipe(4), &[], 512))
            .collect();
        b.send(&flood).await;
        for _ in 0..50 {
            assert_eq!(b.status().await.1, NtStatus::STATUS_INSUFFICIENT_RESOURCES);
        }
        host_checks(&dev, Pattern::Zeros, 1).await;

        // Then bytes that are no frame: b's connection is closed, the host detached, and
        // the daemon and service a live on.
        b.stream
            .write_all(&u32::MAX.to_le_bytes())
            .await
            .expect("write");
        loop {
            match b.next().await {
                Some(DaemonFrame::Completion(_)) => {}
                None => break,
                Some(other) => panic!("{other:?}"),
            }
        }
        daemon.wait_listed(0).await;
        assert!(a.exited().is_none(), "service a is unaffected");
        drop(dev);

        let (b, hello) = Raw::open(&daemon.dir, GUID_B).await;
        assert_eq!(hello, NtStatus::STATUS_SUCCESS, "b can be opened again");
        drop(b);
        daemon.stop();
    })
    .await
    .expect("test finished in time");
}
