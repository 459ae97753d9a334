//! Isochronous and interrupt URBs over real loopback TCP: our USB/IP client against Gadget
//! Zero's alternate setting 1, checking the RET_SUBMIT layout and the bus pace.

#![allow(clippy::cast_possible_truncation)] // test sizes are small by construction

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use usbfn::functions::{FunctionOptions, gadget_zero};
use usbfn::{BusSpeed, Controller};
use usbfn_usbip::client::{self, ImportedDevice, Urb, UrbCompletion};
use usbfn_usbip::proto::errno;
use usbfn_usbip::server::{PcapTap, Server, ServerOptions};

struct Fixture {
    addr: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(speed: BusSpeed, options: &str) -> Fixture {
    start_with_pcap(speed, options, None).await
}

async fn start_with_pcap(
    speed: BusSpeed,
    options: &str,
    pcap: Option<&std::path::Path>,
) -> Fixture {
    let mut o = gadget_zero::Options::default();
    o.apply_list(options).expect("options");
    let gz = Controller::new(&gadget_zero::config_with(&o)).expect("gadget zero");
    let iface = gz.open(gadget_zero::INTERFACE_NAME).expect("open");
    tokio::spawn(gadget_zero::run(iface, o));
    let mut ready = gz.ready_watch();
    tokio::time::timeout(Duration::from_secs(5), ready.wait_for(|r| *r))
        .await
        .expect("ready in time")
        .expect("watch");
    let mut builder = Server::builder();
    builder.export(gz, speed).expect("export");
    let mut server = builder.build();
    if let Some(path) = pcap {
        let file = std::fs::File::create(path).expect("pcap file");
        let tap = PcapTap::new(file, server.exports()).expect("pcap tap");
        server.set_options(ServerOptions {
            tap: Some(std::sync::Arc::new(tap)),
            ..ServerOptions::default()
        });
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        server
            .serve(listener, async {
                let _ = stopped.await;
            })
            .await
    });
    Fixture { addr, _stop: stop }
}

async fn alt1(fx: &Fixture) -> ImportedDevice {
    let dev = client::import(fx.addr, "1-1").await.expect("import");
    dev.set_configuration(1).await.expect("configure");
    dev.set_interface(0, 1).await.expect("alternate setting 1");
    // Let Gadget Zero queue its isochronous transfers.
    tokio::time::sleep(Duration::from_millis(20)).await;
    dev
}

/// Everything a Linux host and usbip-win2 check in an iso RET_SUBMIT.
fn check_layout(c: &UrbCompletion, lengths: &[u32], dir_in: bool) {
    assert_eq!(c.status, 0, "the URB succeeds even when packets fail");
    assert_eq!(c.iso.len(), lengths.len(), "number_of_packets echoed");
    let mut offset = 0;
    for (d, &len) in c.iso.iter().zip(lengths) {
        assert_eq!((d.offset, d.length), (offset, len), "descriptor echoed");
        assert!(d.actual_length <= d.length);
        assert!(d.status <= 0);
        offset += len;
    }
    let sum: u32 = c.iso.iter().map(|d| d.actual_length).sum();
    assert_eq!(sum, c.actual_length, "packet actual lengths add up");
    let failed = c.iso.iter().filter(|d| d.status != 0).count();
    assert_eq!(c.error_count as usize, failed);
    if dir_in {
        assert_eq!(c.data.len() as u32, c.actual_length, "IN data packed");
    } else {
        assert!(c.data.is_empty());
    }
}

#[tokio::test]
async fn iso_in_and_out_at_high_speed_paced_by_the_microframe_clock() {
    // isoc_interval=1: one packet per 125 us microframe; isoc_mult=1: 2 × 1024 bytes each.
    let fx = start(BusSpeed::High, "isoc_interval=1,isoc_mult=1").await;
    let dev = alt1(&fx).await;
    let lengths = [2048u32; 8];
    let urbs = 40;
    let start = Instant::now();
    let handles: Vec<_> = (0..urbs)
        .map(|_| {
            dev.submit_handle(Urb::iso_in(2, &lengths, 1))
                .expect("submit")
        })
        .collect();
    let mut done = Vec::new();
    for h in handles {
        done.push(h.wait().await.expect("completion"));
    }
    let elapsed = start.elapsed();
    let bus_time = Duration::from_micros(125) * (urbs * lengths.len()) as u32;
    assert!(
        elapsed >= bus_time,
        "{elapsed:?} for {bus_time:?} of packets: faster than the bus"
    );
    assert!(
        elapsed < bus_time * 4 + Duration::from_millis(500),
        "{elapsed:?}"
    );
    let mut errors = 0;
    for c in &done {
        check_layout(c, &lengths, true);
        errors += c.error_count;
    }
    assert!(
        errors * 10 <= (urbs * lengths.len()) as i32,
        "{errors} of {} packets missed",
        urbs * lengths.len()
    );
    // Queued URBs continue one stream: each starts where the one before ended.
    for pair in done.windows(2) {
        let step = (pair[1].start_frame - pair[0].start_frame).rem_euclid(2048 * 8);
        assert_eq!(step, lengths.len() as i32, "start_frame in microframes");
    }

    let packets: Vec<Vec<u8>> = (0..4).map(|i| vec![0u8; 1000 + i]).collect();
    let refs: Vec<&[u8]> = packets.iter().map(Vec::as_slice).collect();
    let c = dev
        .submit(Urb::iso_out(2, &refs, 1))
        .await
        .expect("iso OUT");
    check_layout(&c, &[1000, 1001, 1002, 1003], false);
    assert_eq!((c.actual_length, c.error_count), (4006, 0));
}

#[tokio::test]
async fn iso_at_full_speed_takes_a_millisecond_per_packet_of_the_default_interval() {
    // The kernel's default isoc_interval 4 is 2^3 = 8 frames at full speed.
    let fx = start(BusSpeed::Full, "").await;
    let dev = alt1(&fx).await;
    let lengths = [1023u32; 4];
    let start = Instant::now();
    let c = dev
        .submit(Urb::iso_in(2, &lengths, 8))
        .await
        .expect("iso IN");
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(32),
        "{elapsed:?} < 4 × 8 ms"
    );
    check_layout(&c, &lengths, true);
}

#[tokio::test]
async fn unlinked_iso_urb_gets_no_ret_submit() {
    let fx = start(BusSpeed::High, "").await;
    let dev = alt1(&fx).await;
    // 1024 packets at 8 microframes each: a second of bus time.
    let h = dev
        .submit_handle(Urb::iso_in(2, &[1024; 1024], 8))
        .expect("submit");
    let seqnum = h.seqnum();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        dev.unlink(seqnum).await.expect("unlink"),
        -errno::ECONNRESET
    );
    let c = h.wait().await.expect("waiter");
    assert_eq!(c.status, -errno::ECONNRESET);
    // The connection is still good.
    let c = dev
        .submit(Urb::iso_in(2, &[1024; 2], 8))
        .await
        .expect("next");
    check_layout(&c, &[1024; 2], true);
}

#[tokio::test]
async fn interrupt_urbs_take_one_packet_per_interval() {
    // Full speed: wMaxPacketSize 64, bInterval 1 frame; 1024 bytes are 16 packets.
    let fx = start(BusSpeed::Full, "").await;
    let dev = client::import(fx.addr, "1-1").await.expect("import");
    dev.set_configuration(1).await.expect("configure");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let start = Instant::now();
    for _ in 0..4 {
        let c = dev
            .submit(Urb::bulk_in(3, 1024))
            .await
            .expect("interrupt IN");
        assert_eq!((c.status, c.actual_length), (0, 1024));
    }
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(64),
        "{elapsed:?} < 4 × 16 frames"
    );
    let c = dev
        .submit(Urb::bulk_out(3, vec![0u8; 100]))
        .await
        .expect("interrupt OUT");
    assert_eq!((c.status, c.actual_length), (0, 100));
}

#[tokio::test]
async fn pcap_of_iso_urbs_decodes_in_tshark_without_malformed_frames() {
    let dir = std::env::temp_dir().join(format!("usbfn-iso-pcap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("iso.pcap");
    let fx = start_with_pcap(BusSpeed::High, "isoc_interval=1", Some(&path)).await;
    let dev = alt1(&fx).await;
    let c = dev
        .submit(Urb::iso_in(2, &[1024, 512, 1024], 1))
        .await
        .expect("iso IN");
    check_layout(&c, &[1024, 512, 1024], true);
    let packets = [vec![1u8; 100], vec![2u8; 0], vec![3u8; 1024]];
    let refs: Vec<&[u8]> = packets.iter().map(Vec::as_slice).collect();
    dev.submit(Urb::iso_out(2, &refs, 1))
        .await
        .expect("iso OUT");
    drop(dev);
    drop(fx);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let output = std::process::Command::new("tshark")
        .arg("-r")
        .arg(&path)
        .args([
            "-Y",
            "usb.transfer_type == 0",
            "-T",
            "fields",
            "-E",
            "separator=|",
        ])
        .args([
            "-e",
            "usb.urb_type",
            "-e",
            "usb.iso.numdesc",
            "-e",
            "usb.iso.iso_off",
        ])
        .args([
            "-e",
            "usb.iso.iso_len",
            "-e",
            "usb.iso.iso_status",
            "-e",
            "_ws.malformed",
        ])
        .output()
        .expect("tshark is installed (Debian: apt-get install tshark)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        !stdout.contains("alformed")
            && !stderr.contains("alformed")
            && !stdout.contains("Exception"),
        "{stdout}{stderr}"
    );
    let rows: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        rows.len(),
        4,
        "two iso URBs, submitted and completed: {stdout}"
    );
    assert!(
        rows[0].starts_with("'S'|3,3|0,1024,1536|1024,512,1024|-18,-18,-18"),
        "{stdout}"
    );
    // Gadget Zero's 1024-byte packet does not fit the host's 512: babble for that packet.
    assert!(
        rows[1].starts_with("'C'|3,3|0,1024,1536|1024,512,1024|0,-75,0"),
        "{stdout}"
    );
    assert!(
        rows[3].starts_with("'C'|3,3|0,100,100|100,0,1024|0,0,0"),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
