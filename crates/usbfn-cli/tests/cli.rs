//! The `usbfn` binary end to end: serve with --pcap, list, probe, traffic, SIGINT, and the
//! capture decoded by Wireshark's tshark.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use usbfn_usbip::client::{self, Urb};

struct Served {
    child: Child,
    addr: String,
}

fn serve(extra: &[&str]) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_usbfn"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("usbfn serve starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut addr = None;
    let mut attach = None;
    for line in lines.by_ref().take(5) {
        let line = line.expect("line");
        if let Some(rest) = line
            .split(" on ")
            .nth(1)
            .filter(|_| line.contains("serving"))
        {
            addr = Some(rest.trim().to_owned());
        }
        if line.contains("attach: usbip") {
            attach = Some(line);
            break;
        }
    }
    let addr: String = addr.expect("serve prints its address");
    let attach = attach.expect("serve prints the usbip attach command");
    let port = addr.rsplit(':').next().expect("port");
    assert!(
        attach.contains(&format!(
            "usbip --tcp-port {port} attach -r 127.0.0.1 -b 1-1"
        )),
        "{attach}"
    );
    std::thread::spawn(move || for _ in lines {});
    Served { child, addr }
}

fn usbfn(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_usbfn"))
        .args(args)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "usbfn {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn interrupt(child: &mut Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .expect("kill")
            .success()
    );
    for _ in 0..100 {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("usbfn serve did not stop on SIGINT");
}

#[test]
fn serve_list_probe_traffic_and_pcap() {
    let dir = std::env::temp_dir().join(format!("usbfn-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let pcap = dir.join("capture.pcap");
    let mut served = serve(&[
        "--pcap",
        pcap.to_str().expect("utf-8 path"),
        "--pattern",
        "1",
    ]);

    let list: serde_json::Value =
        serde_json::from_str(&usbfn(&["list", &served.addr, "--json"])).expect("json");
    assert_eq!(list["devices"][0]["busid"], "1-1");
    assert_eq!(list["devices"][0]["vendor_id"], "0525");
    assert_eq!(list["devices"][0]["product_id"], "a4a0");
    let human = usbfn(&["list", &served.addr]);
    assert!(human.contains("0525:a4a0"), "{human}");

    let probe: serde_json::Value =
        serde_json::from_str(&usbfn(&["probe", &served.addr, "--busid", "1-1", "--json"]))
            .expect("json");
    assert_eq!(probe["device"]["product"], "Gadget Zero");
    assert_eq!(
        probe["configurations"][0]["interfaces"][0]["endpoints"][0]["wMaxPacketSize"],
        512
    );
    assert!(usbfn(&["probe", &served.addr]).contains("Endpoint Descriptor"));

    // Some bulk traffic, including a stall, for the capture.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let addr: std::net::SocketAddr = served.addr.parse().expect("addr");
        let dev = client::import(addr, "1-1").await.expect("import");
        dev.set_configuration(1).await.expect("configure");
        let c = dev.submit(Urb::bulk_in(1, 1024)).await.expect("in");
        assert_eq!(c.data[63], 0, "pattern 1 wraps at 63");
        let data: Vec<u8> = (0..512usize)
            .map(|i| u8::try_from(i % 63).unwrap_or(0))
            .collect();
        dev.submit(Urb::bulk_out(1, data))
            .await
            .expect("out")
            .into_result()
            .expect("ok");
    });

    let status = interrupt(&mut served.child);
    assert!(status.success(), "serve exits 0 on SIGINT: {status}");

    let out = Command::new("tshark")
        .args(["-r", pcap.to_str().expect("path"), "-V"])
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => panic!("tshark is needed to check the capture (apt-get install tshark): {e}"),
    };
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("Malformed") && !text.contains("malformed"),
        "tshark reports malformed packets"
    );
    let summary = Command::new("tshark")
        .args(["-r", pcap.to_str().expect("path")])
        .output()
        .expect("tshark");
    let summary = String::from_utf8_lossy(&summary.stdout);
    assert!(
        summary.contains("GET DESCRIPTOR Request DEVICE"),
        "control requests decoded: {summary}"
    );
    assert!(
        summary.contains("GET DESCRIPTOR Response CONFIGURATION"),
        "{summary}"
    );
    assert!(text.contains("URB type: URB_SUBMIT") && text.contains("URB type: URB_COMPLETE"));
    let frames = text.matches("\nFrame ").count() + usize::from(text.starts_with("Frame "));
    assert!(frames >= 20, "{frames} frames");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn remote_listen_needs_opt_in() {
    let out = Command::new(env!("CARGO_BIN_EXE_usbfn"))
        .args(["serve", "--listen", "0.0.0.0:0"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--allow-remote") && err.contains("no authentication"),
        "{err}"
    );
}

#[test]
fn repeated_functions_make_one_composite_device() {
    let mut served = serve(&[
        "--function",
        "gadget-zero",
        "--function",
        "gadget-zero,pattern=1",
    ]);
    let probe: serde_json::Value =
        serde_json::from_str(&usbfn(&["probe", &served.addr, "--busid", "1-1", "--json"]))
            .expect("json");
    assert_eq!(probe["device"]["idVendor"], 0x1d6b, "{probe}");
    assert_eq!(probe["device"]["idProduct"], 0x0104, "{probe}");
    assert_eq!(probe["device"]["bDeviceClass"], 0xef, "{probe}");
    let interfaces = probe["configurations"][0]["interfaces"]
        .as_array()
        .expect("interfaces");
    let numbers: Vec<_> = interfaces
        .iter()
        .map(|i| {
            (
                i["bInterfaceNumber"].clone(),
                i["bAlternateSetting"].clone(),
            )
        })
        .collect();
    assert_eq!(
        numbers,
        [
            (0.into(), 0.into()),
            (0.into(), 1.into()),
            (1.into(), 0.into()),
            (1.into(), 1.into())
        ]
    );
    // Each copy of Gadget Zero serves its own interface: the second one's bulk IN (0x84:
    // numbers are assigned in order, after the first copy's three IN endpoints) sources
    // pattern 1.
    assert_eq!(interfaces[2]["endpoints"][0]["bEndpointAddress"], 0x84);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let addr: std::net::SocketAddr = served.addr.parse().expect("addr");
        let dev = client::import(addr, "1-1").await.expect("import");
        dev.set_configuration(1).await.expect("configure");
        let first = dev.submit(Urb::bulk_in(1, 512)).await.expect("in");
        assert!(first.data.iter().all(|b| *b == 0), "pattern 0");
        let second = dev.submit(Urb::bulk_in(4, 512)).await.expect("in");
        assert_eq!(second.data[1], 1, "pattern 1");
    });
    assert!(interrupt(&mut served.child).success());
    let err = Command::new(env!("CARGO_BIN_EXE_usbfn"))
        .args(["serve", "--function", "teapot"])
        .output()
        .expect("runs");
    assert!(!err.status.success());
    let text = String::from_utf8_lossy(&err.stderr);
    assert!(
        text.contains("teapot") && text.contains("gadget-zero"),
        "{text}"
    );
}
