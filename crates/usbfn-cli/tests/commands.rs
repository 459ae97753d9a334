//! What a newcomer meets at the command line: time limits against peers that are not USB/IP
//! servers, errors that name what they were about (once), logs without colour codes in a
//! pipe, the daemon's attach line and capture, and a daemon that fails to start leaving
//! nothing behind.
//!
//! Every process a test starts is killed when the test ends (the `Proc` guard).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Limit for a process to print what the test waits for.
const STEP: Duration = Duration::from_secs(15);

fn usbfn() -> Command {
    Command::new(env!("CARGO_BIN_EXE_usbfn"))
}

/// Run to completion; its output and how long it took.
fn run(args: &[&str]) -> (Output, Duration) {
    let start = Instant::now();
    let out = usbfn().args(args).output().expect("usbfn runs");
    (out, start.elapsed())
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("usbfn-commands-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A child process, killed and reaped when dropped; its stdout read line by line.
struct Proc {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Proc {
    fn spawn(cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("usbfn starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Proc { child, lines }
    }

    /// Lines up to and including the first that contains `marker`.
    fn until(&self, marker: &str) -> Vec<String> {
        let deadline = Instant::now() + STEP;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let done = line.contains(marker);
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("no line with {marker:?} in time; got {seen:#?}");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A peer that accepts connections and runs `each` on every one, in a thread.
fn fake_peer(each: fn(std::net::TcpStream)) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || each(stream));
        }
    });
    addr
}

/// Accepts and never answers.
fn silent(stream: std::net::TcpStream) {
    std::thread::sleep(Duration::from_secs(30));
    drop(stream);
}

/// Answers like a web server.
fn http(mut stream: std::net::TcpStream) {
    let mut buf = [0u8; 64];
    let _ = stream.read(&mut buf);
    let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    std::thread::sleep(Duration::from_secs(30));
}

/// A port nobody listens on.
fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

#[test]
fn list_and_probe_time_out_against_a_silent_peer() {
    let addr = fake_peer(silent).to_string();
    for cmd in ["list", "probe"] {
        let (out, took) = run(&[cmd, &addr, "--timeout", "0.5"]);
        assert!(!out.status.success(), "{cmd} fails");
        assert!(took < Duration::from_secs(5), "{cmd} took {took:?}");
        let err = stderr(&out);
        assert!(
            err.contains(&format!("no USB/IP answer from {addr} within 0.5 s")),
            "{cmd}: {err}"
        );
    }
}

#[test]
fn the_timeout_has_a_default_shown_in_help() {
    for cmd in ["list", "probe"] {
        let (out, _) = run(&[cmd, "--help"]);
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            help.contains("--timeout <SECONDS>") && help.contains("[default: 5]"),
            "{cmd}: {help}"
        );
    }
    let (out, _) = run(&["list", "x", "--timeout", "0"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("number of seconds"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_peer_that_is_not_usbip_is_an_error_naming_it() {
    let addr = fake_peer(http).to_string();
    for cmd in ["list", "probe"] {
        let (out, took) = run(&[cmd, &addr, "--timeout", "5"]);
        assert!(!out.status.success());
        assert!(took < Duration::from_secs(5), "{cmd} took {took:?}");
        let err = stderr(&out);
        assert!(
            err.contains(&addr) && err.contains("protocol error"),
            "{cmd}: {err}"
        );
    }
}

#[test]
fn connection_refused_is_said_once_with_the_address() {
    let addr = closed_port().to_string();
    let (out, _) = run(&["list", &addr]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.matches("Connection refused").count(), 1, "{err}");
    assert!(err.contains(&addr), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn serve_on_localhost_and_probe_of_an_unknown_busid_lists_the_busids() {
    let served = Proc::spawn(usbfn().args(["serve", "--listen", "localhost:0"]));
    let lines = served.until("attach:");
    let addr = lines
        .iter()
        .find_map(|l| l.split(" on ").nth(1).filter(|_| l.contains("serving")))
        .expect("serve prints its address")
        .trim()
        .to_owned();
    let parsed: SocketAddr = addr.parse().expect("an address");
    assert!(parsed.ip().is_loopback(), "{addr}");
    let attach = lines.last().expect("attach line");
    assert!(
        attach.contains(&format!(
            "usbip --tcp-port {} attach -r {} -b 1-1",
            parsed.port(),
            parsed.ip()
        )),
        "{attach}"
    );
    let (out, _) = run(&["probe", &addr, "--busid", "3-9"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{addr} does not export 3-9; it exports 1-1")),
        "{err}"
    );
    // A name works for the client commands too.
    let (out, _) = run(&["list", &format!("localhost:{}", parsed.port())]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn listen_errors_say_what_an_address_looks_like() {
    let (out, _) = run(&["serve", "--listen", "localhost"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("HOST:PORT"), "{}", stderr(&out));
}

#[test]
fn a_service_without_daemon_says_what_it_waits_for_and_gives_up_with_once() {
    let dir = temp_dir("once");
    let run_dir = dir.join("run");
    let run_dir = run_dir.to_str().expect("utf-8");
    let (out, took) = run(&[
        "service",
        "gadget-zero",
        "--runtime-dir",
        run_dir,
        "--once",
        "--timeout",
        "0.5",
    ]);
    assert!(!out.status.success());
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let err = stderr(&out);
    let guid = "{a4a00525-5a5a-4e2e-8000-0000000000a0}";
    assert!(
        err.contains(" INFO ")
            && err.contains(&format!("waiting for interface {guid} in {run_dir}")),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "interface {guid} did not appear in {run_dir} within 0.5 s"
        )),
        "{err}"
    );
    assert!(
        !err.contains('\u{1b}'),
        "no ANSI escapes in a pipe: {err:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn no_color_and_a_pipe_both_mean_no_escapes() {
    // NO_COLOR on its own (stderr is a pipe here in any case).
    let dir = temp_dir("nocolor");
    let out = usbfn()
        .env("NO_COLOR", "1")
        .args([
            "service",
            "gadget-zero",
            "--once",
            "--timeout",
            "0.2",
            "--runtime-dir",
        ])
        .arg(dir.join("run"))
        .output()
        .expect("runs");
    let err = stderr(&out);
    assert!(err.contains("waiting for interface"), "{err}");
    assert!(!err.contains('\u{1b}'), "{err:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn daemon_writes_a_capture_and_prints_the_attach_command() {
    let dir = temp_dir("pcap");
    let pcap = dir.join("daemon.pcap");
    let daemon = Proc::spawn(
        usbfn()
            .args(["daemon", "--listen", "127.0.0.1:0", "--pcap"])
            .arg(&pcap)
            .arg("--runtime-dir")
            .arg(dir.join("run")),
    );
    let lines = daemon.until("attach:");
    let text = lines.join("\n");
    assert!(
        text.contains(&format!("writing URBs to {}", pcap.display())),
        "{text}"
    );
    let addr: SocketAddr = lines
        .iter()
        .find_map(|l| l.strip_prefix("usbfn daemon: listening for USB/IP hosts on "))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("address in {text}"));
    let attach = lines.last().expect("attach line");
    assert!(
        attach.contains(&format!(
            "usbip --tcp-port {} attach -r 127.0.0.1 -b 1-1",
            addr.port()
        )),
        "{attach}"
    );
    // The header is there before any host came.
    let header = std::fs::read(&pcap).expect("capture created");
    assert_eq!(header.len(), 24, "just the pcap header");
    assert_eq!(
        &header[..4],
        &0xa1b2_c3d4u32.to_le_bytes()[..],
        "pcap magic"
    );
    // With the service running, a probe's URBs are captured.
    let _service = Proc::spawn(
        usbfn()
            .args(["service", "gadget-zero", "--runtime-dir"])
            .arg(dir.join("run")),
    );
    let deadline = Instant::now() + STEP;
    let probed = loop {
        let (out, _) = run(&["probe", &addr.to_string()]);
        if out.status.success() || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(probed.status.success(), "{}", stderr(&probed));
    let captured = std::fs::read(&pcap).expect("capture");
    assert!(captured.len() > 24 + 20 * 64, "{} bytes", captured.len());
    drop(daemon);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_daemon_that_cannot_listen_leaves_no_runtime_files() {
    let dir = temp_dir("busy");
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let run_dir = dir.join("run");
    let out = usbfn()
        .args(["daemon", "--listen", &addr, "--runtime-dir"])
        .arg(&run_dir)
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains(&format!("listening on {addr}")), "{err}");
    assert_eq!(err.matches("Address already in use").count(), 1, "{err}");
    assert!(!run_dir.exists(), "{} was left behind", run_dir.display());
    let _ = std::fs::remove_dir_all(&dir);
}

/// `serve` with `extra` flags; its address.
fn serve_with(extra: &[&str]) -> (Proc, SocketAddr) {
    let served = Proc::spawn(
        usbfn()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra),
    );
    let lines = served.until("attach:");
    let addr = lines
        .iter()
        .find_map(|l| l.split(" on ").nth(1).filter(|_| l.contains("serving")))
        .and_then(|a| a.trim().parse().ok())
        .expect("serve prints its address");
    (served, addr)
}

/// How long until the server closes a connection that sends nothing (at most `limit`).
fn closed_after(addr: SocketAddr, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(limit)).expect("timeout");
    let mut buf = [0u8; 8];
    match stream.read(&mut buf) {
        Ok(0) => Some(start.elapsed()),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Some(start.elapsed()),
        _ => None,
    }
}

#[test]
fn idle_timeout_flag_drops_a_silent_peer() {
    let (_served, addr) = serve_with(&["--idle-timeout", "0.3"]);
    let took = closed_after(addr, Duration::from_secs(10)).expect("closed by the server");
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

#[test]
fn single_thread_serve_lists_and_enumerates_its_device() {
    let (_served, addr) = serve_with(&["--single-thread"]);
    let addr = addr.to_string();
    let (out, _) = run(&["list", &addr]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1-1: 0525:a4a0"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let (out, _) = run(&["probe", &addr, "--busid", "1-1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Endpoint Descriptor"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn list_refuses_more_devices_than_max_devices_naming_the_limit() {
    let (_served, addr) = serve_with(&[]);
    let (out, _) = run(&["list", &addr.to_string(), "--max-devices", "0"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("max_devices") && err.contains("at most 0"),
        "{err}"
    );
}

#[test]
fn max_connections_flag_refuses_the_next_connection() {
    let (_served, addr) = serve_with(&["--max-connections", "1"]);
    // The first connection sits in the op phase; the second is closed at once.
    let _first = std::net::TcpStream::connect(addr).expect("connect");
    std::thread::sleep(Duration::from_millis(100));
    let took = closed_after(addr, Duration::from_secs(5)).expect("second refused");
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[test]
fn limits_and_their_defaults_are_in_help() {
    for cmd in ["serve", "daemon"] {
        let (out, _) = run(&[cmd, "--help"]);
        let help = String::from_utf8_lossy(&out.stdout).replace('\n', " ");
        for flag in [
            "--idle-timeout <SECONDS>",
            "--max-connections <N>",
            "--max-outstanding-bytes <BYTES>",
        ] {
            assert!(help.contains(flag), "{cmd}: {flag}: {help}");
        }
        for default in ["[default: 60]", "[default: 128]", "[default: 128M]"] {
            assert!(help.contains(default), "{cmd}: {default}: {help}");
        }
    }
}

#[test]
fn bench_json_is_numbers_and_check_passes_when_nothing_measured_is_missed() {
    // A tiny run that measures none of the targets (they are at 64 KiB and over USB/IP).
    let (out, _) = run(&[
        "bench",
        "--sizes",
        "512",
        "--depths",
        "1",
        "--transports",
        "in-process",
        "--directions",
        "in",
        "--devices",
        "0",
        "--point-ms",
        "10",
        "--rounds",
        "10",
        "--json",
        "--check",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let results = v["results"].as_array().expect("results");
    assert!(!results.is_empty());
    for r in results {
        for key in ["urb_size", "depth"] {
            assert!(r[key].is_u64(), "{key}: {r}");
        }
        if r["kind"] == "bulk" || r["kind"] == "tcp" {
            assert!(r["mb_per_s"].is_f64(), "{r}");
        }
    }
    for t in v["targets"].as_array().expect("targets") {
        assert!(t["threshold"].is_number(), "{t}");
        assert_eq!(t["status"], "not_measured", "{t}");
    }
}

#[test]
fn every_subcommand_help_has_an_example_and_its_defaults() {
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["serve"],
            &[
                "[default: 127.0.0.1:3240]",
                "[default: high]",
                "Default: one Gadget Zero",
            ],
        ),
        (&["list"], &["[default: 127.0.0.1]", "[default: 5]"]),
        (
            &["probe"],
            &[
                "[default: 127.0.0.1]",
                "[default: 5]",
                "[default: the first one listed]",
            ],
        ),
        (
            &["bench"],
            &["Default: 1,4,16,64", "Default: 400", "Default: 10000"],
        ),
        (
            &["daemon"],
            &["[default: 127.0.0.1:3240]", "[default: /run/usbfn as root"],
        ),
        (&["service"], &[]),
        (
            &["service", "gadget-zero"],
            &["[default: 32]", "[default: 4096]", "[default: 10]"],
        ),
        (&["config"], &[]),
        (&["config", "check"], &["[default: high]"]),
        (&["config", "example"], &["[default: loopback]"]),
    ];
    for (cmd, defaults) in cases {
        let mut args = cmd.to_vec();
        args.push("--help");
        let (out, _) = run(&args);
        assert!(out.status.success(), "{cmd:?}");
        let help = String::from_utf8_lossy(&out.stdout).replace('\n', " ");
        let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(help.contains("Example"), "{cmd:?} has an example: {help}");
        assert!(help.contains("usbfn "), "{cmd:?}: {help}");
        for d in *defaults {
            assert!(help.contains(d), "{cmd:?}: {d:?} in {help}");
        }
    }
}

#[test]
fn a_service_finds_its_interface_again_after_a_clean_daemon_restart() {
    // A daemon that stops cleanly removes the runtime directory it created; a waiting
    // service must still see the interface arrive when the next daemon creates it again.
    let dir = temp_dir("restart");
    let run_dir = dir.join("run");
    let port = closed_port().port().to_string();
    let listen = format!("127.0.0.1:{port}");
    let daemon = |dir: &std::path::Path| {
        let d = Proc::spawn(
            usbfn()
                .args(["daemon", "--listen", &listen, "--runtime-dir"])
                .arg(dir),
        );
        d.until("attach:");
        d
    };
    let mut first = daemon(&run_dir);
    let _service = Proc::spawn(
        usbfn()
            .args(["service", "gadget-zero", "--runtime-dir"])
            .arg(&run_dir),
    );
    let listed = |n: usize| {
        let deadline = Instant::now() + STEP;
        while Instant::now() < deadline {
            let (out, _) = run(&["list", &listen, "--json"]);
            if out.status.success() {
                let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
                if v["devices"].as_array().is_some_and(|d| d.len() == n) {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    };
    assert!(listed(1), "offered once the service is active");
    let pid = first.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .is_ok_and(|s| s.success())
    );
    let status = first.child.wait().expect("daemon exits");
    assert!(status.success(), "{status}");
    assert!(
        !run_dir.exists(),
        "the directory the daemon created is removed"
    );
    let _second = daemon(&run_dir);
    assert!(listed(1), "the service came back to the new daemon");
    let _ = std::fs::remove_dir_all(&dir);
}
