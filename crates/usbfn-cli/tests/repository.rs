//! The repository's own documents say what a newcomer needs and stay true: the license files
//! match `Cargo.toml`, the README's setup names the toolchain `Cargo.toml` asks for, and
//! `docs/config.md` documents every key the example device files and the device format use.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn workspace_package() -> toml::Table {
    let manifest: toml::Table = toml::from_str(&read("Cargo.toml")).expect("Cargo.toml");
    manifest["workspace"]["package"]
        .as_table()
        .expect("[workspace.package]")
        .clone()
}

#[test]
fn license_files_match_the_declared_license() {
    let license = workspace_package()["license"]
        .as_str()
        .expect("license")
        .to_owned();
    let ids: Vec<&str> = license.split(" OR ").collect();
    assert!(!ids.is_empty());
    for id in ids {
        let (file, title) = match id {
            "MIT" => ("LICENSE-MIT", "MIT License"),
            "Apache-2.0" => ("LICENSE-APACHE", "Apache License"),
            other => panic!("no license file rule for {other}"),
        };
        let text = read(file);
        assert!(text.contains(title), "{file} is the {id} text");
        assert!(text.len() > 1000, "{file} is the whole text");
    }
}

#[test]
fn the_readme_setup_names_what_a_fresh_machine_needs() {
    let readme = read("README.md");
    let version = workspace_package()["rust-version"]
        .as_str()
        .expect("rust-version")
        .to_owned();
    for needed in [
        format!("Rust {version}"),
        "rustup".to_owned(),
        "cargo install --path crates/usbfn-cli".to_owned(),
        "apt install usbip".to_owned(),
        "modprobe vhci-hcd".to_owned(),
        "usbip-win2".to_owned(),
        "QEMU".to_owned(),
        "docs/config.md".to_owned(),
        "CONTRIBUTING.md".to_owned(),
    ] {
        assert!(readme.contains(&needed), "README names {needed:?}");
    }
}

#[test]
fn contributing_says_how_to_run_each_tier() {
    let text = read("CONTRIBUTING.md");
    for needed in [
        "cargo test --workspace --locked",
        "cargo clippy --workspace --all-targets --locked -- -D warnings",
        "scripts/fuzz-smoke",
        "tests/conformance/run.sh",
        "usbfn bench",
        "cargo bench",
        "nightly",
    ] {
        assert!(text.contains(needed), "CONTRIBUTING.md names {needed:?}");
    }
}

/// Every key of `table`, as `key` (documented as `` `key` `` in docs/config.md), with the
/// section names as `[section]` or `[[section]]` headings.
fn keys(table: &toml::Table, prefix: &str, out: &mut Vec<(String, String)>) {
    for (k, v) in table {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) if !["max_packet", "interval"].contains(&k.as_str()) => {
                out.push((path.clone(), format!("`[{path}]`")));
                keys(t, &path, out);
            }
            toml::Value::Array(a) if a.iter().all(toml::Value::is_table) => {
                out.push((path.clone(), format!("`[[{path}]]`")));
                for t in a.iter().filter_map(toml::Value::as_table) {
                    keys(t, &path, out);
                }
            }
            _ => out.push((path, format!("`{k}`"))),
        }
    }
}

#[test]
fn config_md_documents_every_key_in_use() {
    let doc = read("docs/config.md");
    let mut all = Vec::new();
    let dir = root().join("examples/devices");
    for entry in std::fs::read_dir(&dir).expect("examples/devices") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read");
        let table: toml::Table = toml::from_str(&text).expect("toml");
        keys(&table, "", &mut all);
    }
    // The device format itself, with the fields the examples leave out.
    let full = usbfn::functions::gadget_zero::config()
        .to_toml()
        .expect("serializes");
    keys(&toml::from_str(&full).expect("toml"), "", &mut all);
    assert!(all.len() > 30, "{} keys", all.len());
    for (path, documented_as) in all {
        assert!(
            doc.contains(&documented_as),
            "docs/config.md does not document {path} (as {documented_as})"
        );
    }
}
