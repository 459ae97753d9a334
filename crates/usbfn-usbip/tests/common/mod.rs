//! The rig the USB/IP integration tests share: a server on loopback TCP exporting Gadget
//! Zero as `1-1` and, as `1-2`, a device whose IN endpoints never have data.

#![allow(dead_code)] // each test file uses its own part of the rig

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use usbfn::functions::gadget_zero;
use usbfn::{BusSpeed, Controller, DeviceConfig};
use usbfn_usbip::client::{self, ImportedDevice};
use usbfn_usbip::server::{Server, ServerOptions};
use usbfn_wire::{Direction, Recipient, RequestType, SetupPacket};

/// How long any single step may take before the test fails (generous for a loaded 2-core CI).
pub(crate) const STEP: Duration = Duration::from_secs(20);

/// The device exported as `1-2`: a bulk and an interrupt IN endpoint that never have data.
pub(crate) const IDLE: &str = r#"
    [device]
    vendor_id = 0x1209
    product_id = 0x0002
    [[interfaces]]
    name = "idle"
    endpoints = [{ direction = "in", type = "bulk" }, { direction = "in", type = "interrupt", max_packet = 8 }]
"#;

/// What the server exports and how.
#[derive(Debug, Default)]
pub(crate) struct Setup {
    /// Gadget Zero's speed (`1-2` is always high speed).
    pub(crate) speed: Option<BusSpeed>,
    /// Gadget Zero's options.
    pub(crate) gadget_zero: gadget_zero::Options,
    /// The server's options.
    pub(crate) server: ServerOptions,
}

/// A running server.
pub(crate) struct Fixture {
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    _idle: usbfn::Interface,
}

/// Panics anywhere in this process, connection tasks included (tokio catches those, so the
/// server would go on and hide them): counted by a hook and checked at every shutdown.
static PANICS: AtomicU64 = AtomicU64::new(0);

/// Install the panic-counting hook (once per process).
pub(crate) fn count_panics() {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::Relaxed);
            default(info);
        }));
    });
}

/// Start a server exporting Gadget Zero (`1-1`, once its service is active) and the idle
/// device (`1-2`).
pub(crate) async fn start(setup: Setup) -> Fixture {
    count_panics();
    let gz = Controller::new(&gadget_zero::config()).expect("gadget zero");
    let iface = gz.open(gadget_zero::INTERFACE_NAME).expect("open");
    tokio::spawn(gadget_zero::run(iface, setup.gadget_zero));
    let idle = Controller::new(&DeviceConfig::from_toml(IDLE).expect("toml")).expect("idle");
    let idle_iface = idle.open("idle").expect("open idle");
    idle_iface.activate_bus().expect("activate");
    let mut builder = Server::builder();
    let speed = setup.speed.unwrap_or(BusSpeed::High);
    assert_eq!(
        builder.export(gz.clone(), speed).expect("export").as_str(),
        "1-1"
    );
    assert_eq!(
        builder
            .export(idle, BusSpeed::High)
            .expect("export")
            .as_str(),
        "1-2"
    );
    builder.options(setup.server);
    let server = builder.build();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    // Gadget Zero activates from its own task: wait until it has.
    let mut ready = gz.ready_watch();
    tokio::time::timeout(STEP, ready.wait_for(|r| *r))
        .await
        .expect("gadget zero ready in time")
        .expect("watch");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        server
            .serve(listener, async {
                let _ = stopped.await;
            })
            .await
    });
    Fixture {
        addr,
        stop: Some(stop),
        server,
        _idle: idle_iface,
    }
}

/// Fail the test if anything in the process panicked since the hook was installed.
pub(crate) fn assert_no_panics() {
    assert_eq!(
        PANICS.load(Ordering::Relaxed),
        0,
        "a task panicked (see above)"
    );
}

impl Fixture {
    /// Stop the server: it must close every connection and return cleanly, and nothing in
    /// the process may have panicked.
    pub(crate) async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(STEP, &mut self.server)
            .await
            .expect("server stops in time")
            .expect("server task did not panic")
            .expect("serve ok");
        assert_no_panics();
    }

    /// Import `busid` with our client, retrying while the previous host is being released.
    pub(crate) async fn import(&self, busid: &str) -> ImportedDevice {
        let deadline = Instant::now() + STEP;
        loop {
            match client::import(self.addr, busid).await {
                Ok(d) => return d,
                // Busy while the server releases the previous host.
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("import {busid}: {e}"),
            }
        }
    }
}

/// A vendor request to the device (Gadget Zero's 0x5b/0x5c).
pub(crate) fn vendor(direction: Direction, request: u8, len: u16) -> SetupPacket {
    SetupPacket::new(
        direction,
        RequestType::Vendor,
        Recipient::Device,
        request,
        0,
        0,
        len,
    )
}
