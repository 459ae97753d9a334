//! Device files end to end: every file in `examples/devices/` checked (built and enumerated),
//! `config example` output usable as is, serve and daemon reading the one format (and the old
//! serve format still working, or refused with what to change), and errors that name the
//! file and the TOML path.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn usbfn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_usbfn"))
        .args(args)
        .output()
        .expect("usbfn runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/devices");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("examples/devices")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

fn temp_file(name: &str, contents: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("usbfn-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write");
    path
}

#[test]
fn every_example_device_checks_and_enumerates() {
    let files = examples();
    assert!(files.len() >= 4, "{files:?}");
    for file in files {
        let path = file.to_str().expect("utf-8");
        let out = usbfn(&["config", "check", path]);
        assert!(out.status.success(), "{path}: {}", text(&out.stderr));
        let stdout = text(&out.stdout);
        assert!(stdout.contains(": OK ("), "{stdout}");
        assert!(stdout.contains("Endpoint Descriptor:"), "{path}: {stdout}");
        assert!(!stdout.contains("UNRECOGNIZED: 09 21"), "{path}: {stdout}");
        if path.ends_with("keyboard.toml") {
            assert!(stdout.contains("HID Device Descriptor:"), "{stdout}");
        }
        if path.ends_with("loopback.toml") {
            assert!(
                stdout.contains("Platform Device Capability:")
                    && stdout.contains("{d8dd60df-4589-4cc7-9cd2-659d9e648a9f}")
                    && stdout
                        .lines()
                        .any(|l| l.contains("bMS_VendorCode") && l.ends_with(" 0x20")),
                "{stdout}"
            );
        }
        if path.ends_with("composite.toml") {
            assert!(stdout.contains("Interface Association:"), "{stdout}");
        }
        let json = usbfn(&["config", "check", path, "--json", "--speed", "super"]);
        assert!(json.status.success(), "{path}: {}", text(&json.stderr));
        let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
        assert!(v["device"]["idVendor"].is_u64(), "{v}");
    }
}

#[test]
fn config_example_prints_a_file_that_checks() {
    for kind in ["loopback", "keyboard", "composite", "gadget-zero"] {
        let out = usbfn(&["config", "example", kind]);
        assert!(out.status.success());
        let body = text(&out.stdout);
        assert!(body.starts_with('#'), "{kind} is commented: {body}");
        let file = temp_file(&format!("{kind}.toml"), &body);
        let check = usbfn(&["config", "check", file.to_str().expect("utf-8")]);
        assert!(check.status.success(), "{kind}: {}", text(&check.stderr));
    }
    let out = usbfn(&["config", "example", "nonsense"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("loopback"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn semantic_errors_name_the_file_and_the_field() {
    let file = temp_file(
        "bad-packet.toml",
        "[device]\nvendor_id = 1\nproduct_id = 2\n[[interfaces]]\nname = \"x\"\n\
         [[interfaces.endpoints]]\ndirection = \"in\"\ntype = \"bulk\"\nmax_packet = 512\n",
    );
    let path = file.to_str().expect("utf-8");
    let out = usbfn(&["config", "check", path]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains(path), "{err}");
    assert!(
        err.contains("interfaces[1] \"x\".endpoints[1].max_packet (full)"),
        "1-based TOML path: {err}"
    );
    assert!(err.contains("8, 16, 32 or 64"), "{err}");
    assert!(
        err.contains("max_packet = { full = 64, high = 512, super = 1024 }"),
        "how to give per-speed values: {err}"
    );
    assert_eq!(err.lines().count(), 1, "said once: {err}");
}

#[test]
fn the_old_serve_format_works_with_serve_and_is_explained_to_the_daemon() {
    let old = temp_file(
        "old-serve.toml",
        "[[device]]\nfunction = \"gadget-zero\"\nspeed = \"full\"\n",
    );
    let path = old.to_str().expect("utf-8");
    let out = usbfn(&["daemon", "--config", path, "--listen", "127.0.0.1:0"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains(path)
            && err.contains("old `serve --config` format")
            && err.contains("[function]"),
        "{err}"
    );
    let out = usbfn(&["config", "check", path]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("[function]"),
        "{}",
        text(&out.stderr)
    );

    // serve still takes it, says what to change, and exports at the entry's speed.
    let mut serve = Command::new(env!("CARGO_BIN_EXE_usbfn"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config", path])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("serve starts");
    let stdout = serve.stdout.take().expect("stdout");
    let attach = std::io::BufRead::lines(std::io::BufReader::new(stdout))
        .map_while(Result::ok)
        .find(|l| l.contains("attach:"));
    let _ = serve.kill();
    let out = serve.wait_with_output().expect("exits");
    let attach = attach.expect("serve prints the device");
    assert!(attach.contains("gadget-zero (full speed)"), "{attach}");
    let err = text(&out.stderr);
    assert!(
        err.contains("WARN") && err.contains("it still works"),
        "{err}"
    );
}

#[test]
fn serve_refuses_a_device_that_needs_service_processes() {
    let loopback = examples()
        .into_iter()
        .find(|p| p.ends_with("loopback.toml"))
        .expect("loopback example");
    let path = loopback.to_str().expect("utf-8");
    let out = usbfn(&["serve", "--config", path, "--listen", "127.0.0.1:0"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("usbfn daemon --config {path}")),
        "{err}"
    );
}

#[test]
fn the_daemon_names_an_interface_without_guid() {
    let file = temp_file(
        "no-guid.toml",
        "[device]\nvendor_id = 1\nproduct_id = 2\n[[interfaces]]\nname = \"a\"\nguid = \"{1e5b2b0a-8b7e-4c3a-9d2f-6c0a1b2c3d49}\"\n[[interfaces]]\nname = \"b\"\n",
    );
    let path = file.to_str().expect("utf-8");
    let dir = file.with_extension("run");
    let out = usbfn(&[
        "daemon",
        "--config",
        path,
        "--listen",
        "127.0.0.1:0",
        "--runtime-dir",
        dir.to_str().expect("utf-8"),
    ]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("{path}: interfaces[2] \"b\" has no guid")),
        "{err}"
    );
    assert!(!dir.exists(), "nothing created");
}
