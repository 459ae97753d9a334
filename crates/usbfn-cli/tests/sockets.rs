//! The `usbfn` binary against peers that go away: hosts that close their connection while
//! replies are still being written must cost that connection only (no SIGPIPE ends the
//! process), and `list`/`probe` into a closed pipe end quietly.
//!
//! These run the real binary, not the library: the signal disposition is the binary's own
//! (the test harness ignores SIGPIPE, so an in-process server would never see the signal).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use usbfn_usbip::proto::{CmdSubmit, Direction, TransferFlags};

/// Device id of busid `1-1` (`busnum << 16 | devnum`).
const DEVID_1_1: u32 = 0x0001_0002;

/// A `usbfn serve` child, killed when dropped.
struct Served {
    child: Child,
    addr: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `usbfn serve` with two Gadget Zero devices (`1-1`, `1-2`) on an ephemeral port.
fn serve_two(dir: &std::path::Path) -> Served {
    let config = dir.join("two.toml");
    std::fs::write(
        &config,
        "[[device]]\nfunction = \"gadget-zero\"\n[[device]]\nfunction = \"gadget-zero\"\n",
    )
    .expect("write config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_usbfn"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("usbfn serve starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut addr = None;
    for line in lines.by_ref().take(10) {
        let line = line.expect("line");
        if let Some(rest) = line
            .split(" on ")
            .nth(1)
            .filter(|_| line.contains("serving"))
        {
            addr = Some(rest.trim().to_owned());
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Served {
        child,
        addr: addr.expect("serve prints its address"),
    }
}

/// OP_REQ_IMPORT of `busid` on a fresh connection; the connection after a successful reply.
fn import(addr: &str, busid: &str) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let mut req = vec![0x01, 0x11, 0x80, 0x03, 0, 0, 0, 0];
        let mut field = [0u8; 32];
        field[..busid.len()].copy_from_slice(busid.as_bytes());
        req.extend_from_slice(&field);
        s.write_all(&req).expect("OP_REQ_IMPORT");
        let mut header = [0u8; 8];
        s.read_exact(&mut header).expect("OP_REP_IMPORT");
        if header[4..8] == [0, 0, 0, 0] {
            let mut block = [0u8; 312];
            s.read_exact(&mut block).expect("device block");
            return s;
        }
        // Busy while the server releases the previous connection.
        assert!(Instant::now() < deadline, "{busid} stays busy");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn submit(seqnum: u32, direction: Direction, ep: u8, len: u32, setup: [u8; 8]) -> BytesMut {
    let mut out = BytesMut::new();
    CmdSubmit {
        seqnum,
        devid: DEVID_1_1,
        direction,
        ep,
        transfer_flags: TransferFlags(0),
        transfer_buffer_length: len,
        start_frame: 0,
        number_of_packets: 0,
        interval: 0,
        setup,
        data: bytes::Bytes::new(),
        iso: Vec::new(),
    }
    .encode(&mut out)
    .expect("encodes");
    out
}

/// Hosts that queue 64 bulk IN URBs of 64 KiB and close at once (a `usbip detach` during
/// traffic, a crashed host): the server writes replies into a closed socket (EPIPE, then
/// RST) many times over and must keep serving, the other device included.
#[test]
fn hosts_that_close_with_replies_in_flight_do_not_end_the_server() {
    const ITERATIONS: usize = 50;
    let dir = tempdir();
    let mut served = serve_two(&dir);
    for i in 0..ITERATIONS {
        assert!(
            served.child.try_wait().expect("try_wait").is_none(),
            "usbfn serve died after {i} host(s) closed mid-transfer"
        );
        let mut s = import(&served.addr, "1-1");
        // SET_CONFIGURATION(1), answered before the flood.
        s.write_all(&submit(1, Direction::Out, 0, 0, [0, 9, 1, 0, 0, 0, 0, 0]))
            .expect("SET_CONFIGURATION");
        let mut ret = [0u8; 48];
        s.read_exact(&mut ret).expect("its RET_SUBMIT");
        let mut flood = BytesMut::new();
        for k in 0..64 {
            flood.extend_from_slice(&submit(2 + k, Direction::In, 1, 64 * 1024, [0; 8]));
        }
        s.write_all(&flood).expect("64 bulk IN URBs");
        if i % 2 == 0 {
            // Take a little, so that some replies are mid-write when the socket goes.
            let mut some = [0u8; 1000];
            let _ = s.read(&mut some);
        }
        drop(s);
    }
    // Both devices still enumerate and the process is alive.
    for busid in ["1-1", "1-2"] {
        let out = Command::new(env!("CARGO_BIN_EXE_usbfn"))
            .args(["probe", &served.addr, "--busid", busid])
            .output()
            .expect("probe runs");
        assert!(
            out.status.success(),
            "probe {busid} after the closes: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("0525"));
    }
    assert!(
        served.child.try_wait().expect("try_wait").is_none(),
        "serve is still running"
    );
    eprintln!(
        "{ITERATIONS} hosts closed with 64 x 64 KiB IN replies in flight; serve kept serving"
    );
}

/// `usbfn list`/`probe` whose stdout is a pipe nobody reads end quietly and successfully.
#[test]
fn list_and_probe_into_a_closed_pipe_end_quietly() {
    let dir = tempdir();
    let served = serve_two(&dir);
    for args in [
        vec!["list", served.addr.as_str()],
        vec!["probe", served.addr.as_str(), "--busid", "1-2"],
    ] {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader); // every write to stdout fails with EPIPE
        let out = Command::new(env!("CARGO_BIN_EXE_usbfn"))
            .args(&args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "usbfn {args:?} into a closed pipe: {:?} {stderr}",
            out.status
        );
        assert!(!stderr.contains("panicked"), "usbfn {args:?}: {stderr}");
    }
}

/// A fresh directory under the target dir's tmp (removed with it).
fn tempdir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "sockets-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).expect("tempdir");
    dir
}
