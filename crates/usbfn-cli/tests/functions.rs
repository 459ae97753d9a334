//! Built-in functions as service processes: `usbfn daemon --function KIND --services
//! external` owns the device, `usbfn service KIND,...` runs the function in a process of its
//! own, and a USB/IP host client checks the function works (acm: line coding and a bulk
//! echo through the pty; msc: INQUIRY and READ(10)); kill -9 of the service withdraws the
//! device and a restarted service makes it enumerate again.
//!
//! Every process a test starts is killed when the test ends (the `Proc` guard).

#![allow(clippy::cast_possible_truncation)] // test patterns and sizes are small by construction

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use usbfn_usbip::client::{self, ImportedDevice, Urb};
use usbfn_wire::{Direction, Recipient, RequestType, SetupPacket};

/// Limit for one whole test.
const TEST_LIMIT: Duration = Duration::from_secs(90);
/// Limit for one step (a process starting, the device appearing or going).
const STEP: Duration = Duration::from_secs(15);

/// A child process whose stdout lines are collected; killed (SIGKILL) when dropped.
struct Proc {
    child: Child,
    name: String,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Proc {
    fn spawn(name: &str, cmd: &mut Command, log: &Path) -> Proc {
        let log = std::fs::File::create(log).expect("log file");
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{name} starts: {e}"));
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Proc {
            child,
            name: name.to_owned(),
            lines,
            seen: Vec::new(),
        }
    }

    /// The first stdout line (since the last match) containing `marker`.
    fn wait_line(&mut self, marker: &str) -> String {
        let deadline = Instant::now() + STEP;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(marker) => return line,
                Ok(line) => self.seen.push(line),
                Err(_) => panic!(
                    "{} printed no line with {marker:?} in time; it printed:\n{}",
                    self.name,
                    self.seen.join("\n")
                ),
            }
        }
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("usbfn-functions-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn usbfn() -> Command {
    Command::new(env!("CARGO_BIN_EXE_usbfn"))
}

/// `usbfn daemon --function F... --services external` on a loopback port.
fn daemon(dir: &Path, functions: &[&str]) -> (Proc, SocketAddr) {
    let mut cmd = usbfn();
    cmd.args([
        "daemon",
        "--listen",
        "127.0.0.1:0",
        "--services",
        "external",
    ])
    .arg("--runtime-dir")
    .arg(dir.join("run"));
    for f in functions {
        cmd.args(["--function", f]);
    }
    let mut proc = Proc::spawn("usbfn daemon", &mut cmd, &dir.join("daemon.log"));
    let line = proc.wait_line("listening for USB/IP hosts on ");
    let addr = line
        .rsplit(' ')
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("address in {line:?}"));
    (proc, addr)
}

/// `usbfn service SPEC` against the daemon in `dir`, once it opened its interfaces.
fn service(dir: &Path, spec: &str, name: &str) -> Proc {
    let mut cmd = usbfn();
    cmd.args(["service", spec, "--runtime-dir"])
        .arg(dir.join("run"));
    let log = dir.join(format!("{name}.log"));
    let mut proc = Proc::spawn(name, &mut cmd, &log);
    let kind = spec.split(',').next().unwrap_or(spec);
    proc.wait_line(&format!("usbfn service: {kind} opened "));
    proc
}

/// Wait until the daemon lists `n` devices.
async fn wait_listed(addr: SocketAddr, n: usize) {
    let listed = tokio::time::timeout(STEP, async {
        loop {
            if let Ok(devices) = client::list_devices(addr).await
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

async fn import(addr: SocketAddr) -> ImportedDevice {
    tokio::time::timeout(STEP, client::import(addr, "1-1"))
        .await
        .expect("import in time")
        .expect("import")
}

/// Enumerate and configure; the product string and the endpoint numbers (IN, OUT) of the
/// first interface of `class` with bulk endpoints.
async fn enumerate(dev: &ImportedDevice, class: u8) -> (String, u8, u8) {
    let tree = tokio::time::timeout(STEP, dev.enumerate(Some(1)))
        .await
        .expect("enumerate in time")
        .expect("enumerate");
    let product = tree.string(tree.device.i_product).unwrap_or("").to_owned();
    let alt = tree.configurations[0]
        .tree
        .interfaces
        .iter()
        .find(|i| i.descriptor.b_interface_class == class)
        .unwrap_or_else(|| panic!("an interface of class {class:#04x}"));
    let ep = |input: bool| {
        alt.endpoints
            .iter()
            .map(|e| e.descriptor.b_endpoint_address.0)
            .find(|a| (a & 0x80 != 0) == input)
            .expect("a bulk endpoint")
            & 0x0f
    };
    (product, ep(true), ep(false))
}

fn class_request(dir: Direction, request: u8, value: u16, index: u16, len: u16) -> SetupPacket {
    SetupPacket::new(
        dir,
        RequestType::Class,
        Recipient::Interface,
        request,
        value,
        index,
        len,
    )
}

/// A pty opened by the test, read on a thread of its own (a read blocks until data comes).
struct PtyEnd {
    file: std::fs::File,
    read: mpsc::Receiver<Vec<u8>>,
}

impl PtyEnd {
    fn open(path: &Path) -> PtyEnd {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
        let mut reader = file.try_clone().expect("clone");
        let (tx, read) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    return;
                }
            }
        });
        PtyEnd { file, read }
    }

    /// `n` bytes from the pty, or what came within [`STEP`].
    fn read_exact(&self, n: usize) -> Vec<u8> {
        let deadline = Instant::now() + STEP;
        let mut got = Vec::new();
        while got.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(chunk) = self.read.recv_timeout(left) else {
                break;
            };
            got.extend(chunk);
        }
        got
    }
}

async fn line_coding_round_trip(dev: &ImportedDevice, coding: [u8; 7]) {
    dev.control_out(
        class_request(Direction::Out, 0x20, 0, 0, 7),
        Bytes::copy_from_slice(&coding),
    )
    .await
    .expect("SET_LINE_CODING");
    let back = dev
        .control_in(class_request(Direction::In, 0x21, 0, 0, 7))
        .await
        .expect("GET_LINE_CODING");
    assert_eq!(&back[..], &coding[..], "the line coding comes back");
}

/// Host → pty → (echoed by the test) → host, byte-exact.
async fn echo_through_the_pty(dev: &ImportedDevice, pty: &PtyEnd, ep_in: u8, ep_out: u8) {
    let data: Vec<u8> = (0..3000u32).map(|i| (i * 7 + 3) as u8).collect();
    dev.submit(Urb::bulk_out(ep_out, data.clone()))
        .await
        .expect("bulk out")
        .into_result()
        .expect("bulk out ok");
    let got = pty.read_exact(data.len());
    let first = got.iter().zip(&data).position(|(a, b)| a != b);
    assert!(
        got == data,
        "the host's bytes arrive on the pty: {} of {} bytes, first difference at {first:?}",
        got.len(),
        data.len()
    );
    (&pty.file).write_all(&got).expect("pty write");
    let mut back = Vec::new();
    let deadline = Instant::now() + STEP;
    while back.len() < data.len() && Instant::now() < deadline {
        let c = tokio::time::timeout(STEP, dev.submit(Urb::bulk_in(ep_in, 4096)))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "bulk in in time ({} of {} bytes back)",
                    back.len(),
                    data.len()
                )
            })
            .expect("bulk in")
            .into_result()
            .expect("bulk in ok");
        back.extend_from_slice(&c.data);
    }
    assert_eq!(back, data, "the device side's bytes reach the host");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acm_as_a_service_process_then_kill9_and_restart() {
    tokio::time::timeout(TEST_LIMIT, async {
        let tmp = TempDir::new("acm");
        let (_daemon, addr) = daemon(&tmp.0, &["acm"]);
        let link = tmp.0.join("tty");
        let spec = format!("acm,pty={}", link.display());
        let mut svc = service(&tmp.0, &spec, "acm service 1");
        wait_listed(addr, 1).await;
        let dev = import(addr).await;
        let (product, ep_in, ep_out) = enumerate(&dev, 0x0a).await;
        assert_eq!(product, "usbfn serial port");
        let coding = [0x00, 0xc2, 0x01, 0x00, 0, 0, 8]; // 115200 8N1
        line_coding_round_trip(&dev, coding).await;
        svc.wait_line("acm0: line coding 115200");
        let pty = PtyEnd::open(&link);
        echo_through_the_pty(&dev, &pty, ep_in, ep_out).await;

        svc.kill9();
        wait_listed(addr, 0).await;
        let gone = tokio::time::timeout(STEP, dev.submit(Urb::bulk_in(ep_in, 64)))
            .await
            .expect("the URB ends in time");
        assert!(
            gone.and_then(|c| c.into_result()).is_err(),
            "the host is detached"
        );
        drop(dev);
        drop(pty);

        let _svc = service(&tmp.0, &spec, "acm service 2");
        wait_listed(addr, 1).await;
        let dev = import(addr).await;
        let (product, ep_in, ep_out) = enumerate(&dev, 0x0a).await;
        assert_eq!(product, "usbfn serial port", "enumerates again");
        line_coding_round_trip(&dev, [0x80, 0x25, 0, 0, 0, 0, 8]).await; // 9600 8N1
        let pty = PtyEnd::open(&link);
        echo_through_the_pty(&dev, &pty, ep_in, ep_out).await;
    })
    .await
    .expect("test finished in time");
}

/// One Bulk-Only command: the CBW, its data IN stage of `len` bytes, and the CSW status.
async fn bot_in(
    dev: &ImportedDevice,
    ep_in: u8,
    ep_out: u8,
    tag: u32,
    cdb: &[u8],
    len: u32,
) -> (Bytes, u8) {
    let mut cbw = Vec::with_capacity(31);
    cbw.extend_from_slice(b"USBC");
    cbw.extend_from_slice(&tag.to_le_bytes());
    cbw.extend_from_slice(&len.to_le_bytes());
    cbw.push(0x80);
    cbw.push(0);
    cbw.push(cdb.len() as u8);
    let mut block = [0u8; 16];
    block[..cdb.len()].copy_from_slice(cdb);
    cbw.extend_from_slice(&block);
    let step = |f| async move { tokio::time::timeout(STEP, f).await.expect("in time") };
    step(dev.submit(Urb::bulk_out(ep_out, cbw)))
        .await
        .expect("CBW")
        .into_result()
        .expect("CBW ok");
    let data = step(dev.submit(Urb::bulk_in(ep_in, len)))
        .await
        .expect("data")
        .into_result()
        .expect("data ok")
        .data;
    let csw = step(dev.submit(Urb::bulk_in(ep_in, 13)))
        .await
        .expect("CSW")
        .into_result()
        .expect("CSW ok")
        .data;
    assert_eq!(csw.len(), 13);
    assert_eq!(&csw[..4], b"USBS");
    assert_eq!(&csw[4..8], &tag.to_le_bytes());
    (data, csw[12])
}

async fn inquiry_and_read(dev: &ImportedDevice, image: &[u8]) {
    let (product, ep_in, ep_out) = enumerate(dev, 0x08).await;
    assert_eq!(product, "usbfn Mass Storage");
    let (inquiry, status) = bot_in(dev, ep_in, ep_out, 1, &[0x12, 0, 0, 0, 36, 0], 36).await;
    assert_eq!(status, 0, "INQUIRY passes");
    assert_eq!(inquiry.len(), 36);
    assert_eq!(inquiry[0] & 0x1f, 0, "a direct-access block device");
    // READ(10) of blocks 3 and 4.
    let cdb = [0x28, 0, 0, 0, 0, 3, 0, 0, 2, 0];
    let (data, status) = bot_in(dev, ep_in, ep_out, 2, &cdb, 1024).await;
    assert_eq!(status, 0, "READ(10) passes");
    assert_eq!(&data[..], &image[3 * 512..5 * 512], "the image's blocks");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msc_as_a_service_process_then_kill9_and_restart() {
    tokio::time::timeout(TEST_LIMIT, async {
        let tmp = TempDir::new("msc");
        let image: Vec<u8> = (0..1024 * 1024u32)
            .map(|i| (i / 512 + i * 13) as u8)
            .collect();
        let path = tmp.0.join("disk.img");
        std::fs::write(&path, &image).expect("image");
        let (_daemon, addr) = daemon(&tmp.0, &["msc"]);
        let spec = format!("msc,image={}", path.display());
        let mut svc = service(&tmp.0, &spec, "msc service 1");
        wait_listed(addr, 1).await;
        let dev = import(addr).await;
        inquiry_and_read(&dev, &image).await;

        svc.kill9();
        wait_listed(addr, 0).await;
        drop(dev);
        let _svc = service(&tmp.0, &spec, "msc service 2");
        wait_listed(addr, 1).await;
        let dev = import(addr).await;
        inquiry_and_read(&dev, &image).await;
    })
    .await
    .expect("test finished in time");
}
