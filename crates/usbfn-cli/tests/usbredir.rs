//! `usbfn daemon --usbredir` and `usbfn serve --usbredir` end to end, against a scripted
//! usbredir guest (the role QEMU's `-device usb-redir` plays) built on the crate's codec:
//! a service process on the daemon's socket, the device withdrawn and offered again when the
//! service dies and comes back, one endpoint per device from the device files'
//! `[usbip] usbredir` keys, and the `--pcap` capture of the usbredir traffic decoded by tshark.
//!
//! Every process a test starts is killed when the test ends, passed or failed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use usbfn_usbredir::proto::{
    BulkPacket, Caps, Codec, ControlPacket, Limits, Message, Packet, Role, Status,
};

/// Limit for one step (a process starting, a packet arriving).
const STEP: Duration = Duration::from_secs(20);

/// A child process, killed and reaped when dropped.
struct Proc(Child);

impl Proc {
    fn spawn(cmd: &mut Command, log: &Path) -> Proc {
        let log = std::fs::File::create(log).expect("log file");
        Proc(
            cmd.stdout(Stdio::piped())
                .stderr(log)
                .spawn()
                .expect("usbfn starts"),
        )
    }

    /// Every stdout line up to and including the `n`th containing `marker` (stdout is
    /// drained afterwards).
    fn lines_until(&mut self, marker: &str, n: usize) -> Vec<String> {
        let stdout = self.0.stdout.take().expect("stdout piped");
        let (tx, rx) = std::sync::mpsc::channel();
        let wanted = marker.to_owned();
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut found = 0;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if found < n {
                    found += usize::from(line.contains(&wanted));
                    seen.push(line);
                    if found == n {
                        let _ = tx.send(std::mem::take(&mut seen));
                    }
                }
            }
        });
        rx.recv_timeout(STEP)
            .unwrap_or_else(|_| panic!("no {n} line(s) with {marker:?} in time"))
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.0.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()));
        let start = Instant::now();
        while start.elapsed() < STEP {
            if let Some(s) = self.0.try_wait().expect("wait") {
                return s;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("did not stop on SIGTERM");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("usbfn-usbredir-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// The address at the start of a `  ADDR  what (speed)   qemu: ...` line.
fn address(line: &str) -> String {
    assert!(line.contains("qemu: -device "), "{line}");
    line.split_whitespace().next().expect("address").to_owned()
}

/// A scripted usb-guest: QEMU's capabilities over a blocking TCP stream.
struct Guest {
    codec: Codec,
    io: TcpStream,
    buf: BytesMut,
}

impl Guest {
    /// Connect and exchange hellos.
    fn connect(addr: &str) -> Guest {
        let io = TcpStream::connect(addr).expect("connect to usbfn's usbredir socket");
        io.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let mut g = Guest {
            codec: Codec::new(Role::Guest, Caps(0xff), Limits::default()),
            io,
            buf: BytesMut::new(),
        };
        g.send(
            0,
            &Packet::Hello {
                version: "usbfn test guest".into(),
                caps: Caps(0xff),
            },
        );
        let hello = g.recv(STEP).expect("usbfn's hello");
        assert!(matches!(hello.packet, Packet::Hello { .. }), "{hello:?}");
        g
    }

    fn send(&mut self, id: u64, p: &Packet) {
        let mut out = BytesMut::new();
        self.codec.encode(id, p, &mut out).expect("encode");
        self.io.write_all(&out).expect("send");
    }

    /// The next packet within `limit`; `None` if none came.
    fn recv(&mut self, limit: Duration) -> Option<Message> {
        let start = Instant::now();
        loop {
            if let Some(m) = self.codec.decode(&mut self.buf).expect("valid packet") {
                return Some(m);
            }
            if start.elapsed() > limit {
                return None;
            }
            let mut chunk = [0u8; 65536];
            match self.io.read(&mut chunk) {
                Ok(0) => panic!("usbfn closed the connection"),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    fn expect(&mut self) -> Message {
        self.recv(STEP).expect("a packet in time")
    }

    /// ep_info, interface_info, device_connect: (vendor, product).
    fn expect_connect(&mut self) -> (u16, u16) {
        let m = self.expect();
        assert!(matches!(m.packet, Packet::EpInfo(_)), "{m:?}");
        let m = self.expect();
        assert!(matches!(m.packet, Packet::InterfaceInfo(_)), "{m:?}");
        match self.expect().packet {
            Packet::DeviceConnect(d) => (d.vendor_id, d.product_id),
            other => panic!("device_connect expected: {other:?}"),
        }
    }

    fn device_descriptor(&mut self, id: u64) -> Bytes {
        self.send(
            id,
            &Packet::Control(ControlPacket {
                endpoint: 0x80,
                request: 6,
                requesttype: 0x80,
                status: Status::SUCCESS,
                value: 0x0100,
                index: 0,
                length: 18,
                data: Bytes::new(),
            }),
        );
        let m = self.expect();
        assert_eq!(m.id, id);
        match m.packet {
            Packet::Control(c) => {
                assert_eq!(c.status, Status::SUCCESS);
                c.data
            }
            other => panic!("{other:?}"),
        }
    }

    fn configure(&mut self, id: u64) {
        self.send(id, &Packet::SetConfiguration { configuration: 1 });
        loop {
            let m = self.expect();
            if let Packet::ConfigurationStatus { status, .. } = m.packet {
                assert_eq!((m.id, status), (id, Status::SUCCESS));
                return;
            }
        }
    }

    fn bulk(&mut self, id: u64, endpoint: u8, length: u32, data: Bytes) -> BulkPacket {
        self.send(
            id,
            &Packet::Bulk(BulkPacket {
                endpoint,
                status: Status::SUCCESS,
                length,
                stream_id: 0,
                data,
            }),
        );
        let m = self.expect();
        assert_eq!(m.id, id);
        match m.packet {
            Packet::Bulk(b) => b,
            other => panic!("{other:?}"),
        }
    }
}

/// Gadget Zero pattern 1 at high speed: byte i is `(i % 512) % 63`.
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| u8::try_from((i % 512) % 63).unwrap_or(0))
        .collect()
}

/// `tshark -r FILE -T fields` of the capture: (urb type, transfer type, endpoint) per frame.
fn tshark_fields(pcap: &Path) -> Vec<(String, String, String)> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args([
            "-T",
            "fields",
            "-e",
            "usb.urb_type",
            "-e",
            "usb.transfer_type",
        ])
        .args(["-e", "usb.endpoint_address"])
        .output()
        .unwrap_or_else(|e| {
            panic!("tshark is needed to check the capture (apt-get install tshark): {e}")
        });
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verbose = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .arg("-V")
        .output()
        .expect("tshark");
    let text = String::from_utf8_lossy(&verbose.stdout);
    assert!(
        !text.to_lowercase().contains("malformed"),
        "tshark reports malformed packets"
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let mut f = l.split('\t').map(str::to_owned);
            (
                f.next().unwrap_or_default(),
                f.next().unwrap_or_default(),
                f.next().unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn daemon_serves_a_service_process_over_usbredir_and_captures_it() {
    let dir = temp_dir("daemon");
    let run = dir.join("run");
    let pcap = dir.join("usbredir.pcap");
    let mut daemon = Proc::spawn(
        Command::new(env!("CARGO_BIN_EXE_usbfn"))
            .args(["daemon", "--usbredir", "127.0.0.1:0", "--runtime-dir"])
            .arg(&run)
            .arg("--pcap")
            .arg(&pcap),
        &dir.join("daemon.log"),
    );
    let lines = daemon.lines_until("qemu: ", 1);
    let addr = address(lines.last().expect("line"));
    assert!(
        lines.iter().any(|l| l.contains("usbredir for QEMU guests")),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("USB/IP")),
        "no USB/IP listener: {lines:?}"
    );
    let mut guest = Guest::connect(&addr);
    // No service yet: the device is not offered.
    assert!(
        guest.recv(Duration::from_millis(600)).is_none(),
        "nothing before the service is active"
    );
    let service = |name: &str| {
        Proc::spawn(
            Command::new(env!("CARGO_BIN_EXE_usbfn"))
                .args(["service", "gadget-zero", "--pattern", "1", "--runtime-dir"])
                .arg(&run),
            &dir.join(format!("{name}.log")),
        )
    };
    let mut first = service("service1");
    assert_eq!(guest.expect_connect(), (0x0525, 0xa4a0));
    let d = guest.device_descriptor(1);
    assert_eq!(&d[..2], &[18, 1]);
    assert_eq!(&d[8..12], &[0x25, 0x05, 0xa0, 0xa4]);
    guest.configure(2);
    let out = guest.bulk(3, 0x01, 8192, Bytes::from(pattern(8192)));
    assert_eq!((out.status, out.length), (Status::SUCCESS, 8192));
    let got = guest.bulk(4, 0x81, 4096, Bytes::new());
    assert_eq!(got.status, Status::SUCCESS);
    assert_eq!(got.data, pattern(4096), "bulk IN byte-exact");

    // The service dies: the guest sees the device go, then come back with a new one.
    let _ = first.0.kill();
    let _ = first.0.wait();
    loop {
        let m = guest.expect();
        if matches!(m.packet, Packet::DeviceDisconnect) {
            break;
        }
    }
    let _second = service("service2");
    assert_eq!(guest.expect_connect(), (0x0525, 0xa4a0));
    guest.configure(5);
    let got = guest.bulk(6, 0x81, 1024, Bytes::new());
    assert_eq!(got.data, pattern(1024), "bulk IN after the restart");

    drop(guest);
    let status = daemon.terminate();
    assert!(status.success(), "daemon exits 0 on SIGTERM: {status}");

    let frames = tshark_fields(&pcap);
    // usbmon transfer types: 2 control, 3 bulk; urb types 'S' (submit) and 'C' (complete).
    let count = |ty: &str, xfer: &str, ep: &str| {
        frames
            .iter()
            .filter(|(t, x, e)| t == ty && x == xfer && e == ep)
            .count()
    };
    assert!(
        count("'S'", "0x03", "0x81") >= 2,
        "bulk IN submits: {frames:?}"
    );
    assert!(count("'C'", "0x03", "0x81") >= 2, "bulk IN completions");
    assert_eq!(count("'S'", "0x03", "0x01"), 1, "the bulk OUT submit");
    assert!(count("'S'", "0x02", "0x80") >= 1, "control IN submits");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn serve_gives_each_device_its_own_usbredir_endpoint_from_its_file() {
    let dir = temp_dir("serve");
    let pcap = dir.join("two.pcap");
    let mut configs = Vec::new();
    for (name, kind) in [("a", "gadget-zero"), ("b", "gadget-zero")] {
        let path = dir.join(format!("{name}.toml"));
        // Port 0: each device listens on a free port of its own.
        std::fs::write(
            &path,
            format!("[function]\nkind = \"{kind}\"\n\n[usbip]\nusbredir = \"127.0.0.1:0\"\n"),
        )
        .expect("device file");
        configs.push(path);
    }
    let mut serve = Proc::spawn(
        Command::new(env!("CARGO_BIN_EXE_usbfn"))
            .args(["serve", "--config"])
            .arg(&configs[0])
            .arg("--config")
            .arg(&configs[1])
            .arg("--pcap")
            .arg(&pcap),
        &dir.join("serve.log"),
    );
    let lines = serve.lines_until("qemu: ", 2);
    let shown: Vec<&String> = lines.iter().filter(|l| l.contains("qemu: ")).collect();
    let (a, b) = (address(shown[0]), address(shown[1]));
    assert_ne!(a, b, "one endpoint per device");
    assert!(shown[0].contains("chardev=usbredir0") && shown[1].contains("chardev=usbredir1"));
    // Both guests at once, each on its own device.
    let mut ga = Guest::connect(&a);
    let mut gb = Guest::connect(&b);
    assert_eq!(ga.expect_connect(), (0x0525, 0xa4a0));
    assert_eq!(gb.expect_connect(), (0x0525, 0xa4a0));
    ga.configure(1);
    gb.configure(1);
    let got = ga.bulk(2, 0x81, 512, Bytes::new());
    assert_eq!((got.status, got.data.len()), (Status::SUCCESS, 512));
    let got = gb.bulk(2, 0x81, 1024, Bytes::new());
    assert_eq!((got.status, got.data.len()), (Status::SUCCESS, 1024));
    drop((ga, gb));
    assert!(serve.terminate().success());
    // One capture, the two devices told apart by their device numbers.
    let out = Command::new("tshark")
        .arg("-r")
        .arg(&pcap)
        .args([
            "-T",
            "fields",
            "-e",
            "usb.device_address",
            "-e",
            "usb.urb_len",
        ])
        .args(["-Y", "usb.endpoint_address == 0x81 && usb.urb_type == 'C'"])
        .output()
        .expect("tshark (apt-get install tshark)");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut rows: Vec<&str> = text.lines().collect();
    rows.sort_unstable();
    assert_eq!(rows, ["1\t512", "2\t1024"], "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_usbredir_key_names_the_file_and_the_key() {
    let dir = temp_dir("bad");
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        "[function]\nkind = \"gadget-zero\"\n\n[usbip]\nusbredir = \"localhost\"\n",
    )
    .expect("file");
    let out = Command::new(env!("CARGO_BIN_EXE_usbfn"))
        .args(["config", "check"])
        .arg(&path)
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("usbredir = \"localhost\""),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_typed_line_reaches_the_guest_as_every_report_over_interrupt_receiving() {
    let dir = temp_dir("hid");
    let fifo = dir.join("kbd.fifo");
    let mut serve = Proc::spawn(
        Command::new(env!("CARGO_BIN_EXE_usbfn"))
            .args(["serve", "--usbredir", "127.0.0.1:0", "--function"])
            .arg(format!("hid-keyboard,input={}", fifo.display())),
        &dir.join("serve.log"),
    );
    let lines = serve.lines_until("qemu: ", 1);
    let mut g = Guest::connect(&address(lines.last().expect("line")));
    g.expect_connect();
    g.configure(1);
    g.send(2, &Packet::StartInterruptReceiving { endpoint: 0x81 });
    let m = g.expect();
    assert!(
        matches!(
            m.packet,
            Packet::InterruptReceivingStatus {
                status: Status::SUCCESS,
                endpoint: 0x81
            }
        ),
        "{m:?}"
    );
    std::fs::write(&fifo, "type hello\n").expect("write the FIFO");
    let mut reports = Vec::new();
    while reports.len() < 10 {
        let Some(m) = g.recv(STEP) else { break };
        if let Packet::Interrupt(p) = m.packet {
            reports.push(p.data.to_vec());
        }
    }
    let keys: Vec<u8> = reports.iter().map(|r| r[2]).collect();
    assert_eq!(
        keys,
        [0x0b, 0, 0x08, 0, 0x0f, 0, 0x0f, 0, 0x12, 0],
        "{reports:?}"
    );
    drop(g);
    assert!(serve.terminate().success());
    let _ = std::fs::remove_dir_all(&dir);
}
