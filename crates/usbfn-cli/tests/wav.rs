//! `usbfn wav`: generate, analyze and compare end to end (what the audio conformance guest
//! runs, without Python).

use std::path::PathBuf;
use std::process::Command;

fn usbfn(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_usbfn"))
        .args(args)
        .output()
        .expect("usbfn runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|w| w.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key} in {line}"))
}

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("usbfn-wav-cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

#[test]
fn generate_analyze_compare() {
    let d = dir();
    let sine = d.join("sine.wav");
    let noise = d.join("noise.wav");
    let s = sine.to_str().expect("utf-8");
    let n = noise.to_str().expect("utf-8");
    let (ok, out) = usbfn(&["wav", "generate", s, "--seconds", "1", "--sine", "1000"]);
    assert!(ok, "{out}");
    let (ok, out) = usbfn(&["wav", "analyze", s]);
    assert!(ok, "{out}");
    assert_eq!(field(&out, "frames"), "48000");
    let f: f64 = field(&out, "frequency").parse().expect("number");
    assert!((f - 1000.0).abs() < 0.5, "{out}");
    let (ok, out) = usbfn(&["wav", "analyze", "--json", s]);
    assert!(ok && out.contains("\"frames\":48000"), "{out}");

    let (ok, out) = usbfn(&["wav", "generate", n, "--seconds", "0.5", "--bits", "24"]);
    assert!(ok, "{out}");
    let (ok, out) = usbfn(&["wav", "compare", n, n]);
    assert!(ok, "{out}");
    assert_eq!(field(&out, "equal"), field(&out, "samples"));
    assert_eq!(field(&out, "offset"), "0");
    // Different channel counts cannot be compared; a text file is not a WAV file.
    let mono = d.join("mono.wav");
    let m = mono.to_str().expect("utf-8");
    assert!(usbfn(&["wav", "generate", m, "--channels", "1", "--seconds", "0.1"]).0);
    let (ok, out) = usbfn(&["wav", "compare", n, m]);
    assert!(!ok && out.contains("channels"), "{out}");
    let text = d.join("text.wav");
    std::fs::write(&text, "not audio").expect("write");
    let (ok, out) = usbfn(&["wav", "analyze", text.to_str().expect("utf-8")]);
    assert!(!ok && out.contains("RIFF"), "{out}");
    let (ok, out) = usbfn(&["wav", "generate", n, "--bits", "8"]);
    assert!(!ok && out.contains("16 or 24"), "{out}");
    std::fs::remove_dir_all(&d).ok();
}
