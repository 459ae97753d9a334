//! `--udc NAME`: the same functions and services on a real USB device controller, through
//! Linux FunctionFS (crate `usbfn-ffs`), instead of the USB/IP bus.

use std::path::Path;

use anyhow::Context;
use usbfn::DeviceConfig;
use usbfn::functions::{self, Function, gadget_zero};
use usbfn_ffs::{FfsDevice, FfsOptions};
use usbfn_ipc::daemon::InterfaceSockets;

use crate::daemon::shutdown_signal;

/// `usbfn serve --udc NAME`: the built-in functions on the controller until SIGINT/SIGTERM;
/// the gadget is removed on the way out.
///
/// The device and its service run on a current-thread runtime of their own: every transfer
/// completion (the AIO reaper) wakes a service task, and on one thread that wake-up is a
/// function call instead of a cross-thread hand-off. That thread is kept on the CPU `cpu`
/// says (`usbfn_ffs::IoCpu`; by default wherever the scheduler puts it).
pub(crate) async fn serve(
    udc: &str,
    functions: Vec<Function>,
    cpu: usbfn_ffs::IoCpu,
) -> anyhow::Result<()> {
    let udc = udc.to_owned();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("usbfn-ffs".into())
        .spawn(move || {
            match usbfn_ffs::pin_io_thread(cpu) {
                Ok(Some(n)) => tracing::info!(cpu = n, "FunctionFS I/O thread kept on one CPU"),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, %cpu, "cannot keep the FunctionFS I/O thread on a CPU"),
            }
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(serve_here(&udc, &functions, stop_rx)));
            let _ = done_tx.send(result);
        })?;
    let mut done_rx = done_rx;
    tokio::select! {
        () = shutdown_signal() => {
            let _ = stop_tx.send(());
            done_rx.await?
        }
        r = &mut done_rx => r?,
    }
}

async fn serve_here(
    udc: &str,
    functions: &[Function],
    stop: tokio::sync::oneshot::Receiver<()>,
) -> anyhow::Result<()> {
    // Gadget Zero queues deeper on a controller (gadget_zero::CONTROLLER_QLEN).
    let functions: Vec<Function> = functions
        .iter()
        .cloned()
        .map(|f| match f {
            Function::GadgetZero(o) => Function::GadgetZero(o.for_controller()),
            other => other,
        })
        .collect();
    let functions = &functions[..];
    let kinds = crate::device_file::kinds(functions);
    // Gadget Zero alone offers bulk only on a controller, as f_sourcesink does on a UDC
    // without isochronous endpoints (in FunctionFS an endpoint belongs to one alternate
    // setting).
    let config = match functions {
        [Function::GadgetZero(options)] => gadget_zero::bulk_only_config(options),
        _ => functions::device_config(functions),
    };
    let device = FfsDevice::new(&config, &FfsOptions::new(udc))
        .with_context(|| format!("setting up {kinds} on {udc}"))?;
    let services = functions::start_all(functions, |name| {
        device
            .open(name)
            .with_context(|| format!("opening interface {name:?}"))
    })?;
    println!("usbfn: serving {kinds} through FunctionFS on UDC {udc}");
    // Stop when asked, or when the first function ends (it logged why).
    let aborts: Vec<_> = services.iter().map(|s| s.abort_handle()).collect();
    let (ended_tx, mut ended_rx) = tokio::sync::mpsc::channel(1);
    for service in services {
        let ended_tx = ended_tx.clone();
        tokio::spawn(async move {
            if let Err(e) = service.await {
                tracing::error!(error = %e, "a function task failed");
            }
            let _ = ended_tx.send(()).await;
        });
    }
    tokio::select! {
        _ = stop => {}
        _ = ended_rx.recv() => {}
    }
    for a in aborts {
        a.abort();
    }
    device.close().await;
    println!("usbfn: stopped; the gadget on {udc} is removed");
    Ok(())
}

/// `usbfn daemon --udc NAME`: the device on the controller, each interface as an IOCTL
/// socket for service processes. The gadget is bound while every service is active.
pub(crate) async fn daemon(
    udc: &str,
    config: &DeviceConfig,
    runtime_dir: &Path,
) -> anyhow::Result<()> {
    let device = FfsDevice::new(config, &FfsOptions::new(udc))
        .with_context(|| format!("setting up the device on {udc}"))?;
    let sockets = InterfaceSockets::bind(&device, runtime_dir)?;
    for i in sockets.interfaces() {
        println!(
            "usbfn daemon: interface {:?} {} at {}",
            i.name,
            i.guid,
            i.path.display()
        );
    }
    println!(
        "usbfn daemon: device bound to UDC {udc} (FunctionFS) once every interface's service is active"
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let services = tokio::spawn(sockets.serve(async move {
        let mut rx = stop_rx;
        let _ = rx.wait_for(|s| *s).await;
    }));
    let mut ready = device.ready_watch();
    let log = tokio::spawn(async move {
        while ready.changed().await.is_ok() {
            if *ready.borrow_and_update() {
                tracing::info!("every interface's service is active: bound to the UDC");
            } else {
                tracing::info!("a service went away: unbound from the UDC");
            }
        }
    });
    shutdown_signal().await;
    let _ = stop_tx.send(true);
    let _ = services.await;
    log.abort();
    device.close().await;
    println!("usbfn daemon: stopped; the gadget on {udc} is removed");
    Ok(())
}

/// `usbfn list --udc`: the machine's device controllers.
pub(crate) fn list_udcs(json: bool) -> anyhow::Result<()> {
    let udcs = usbfn_ffs::list_udcs().context("reading /sys/class/udc")?;
    if json {
        let list: Vec<_> = udcs
            .iter()
            .map(|(name, state, speed)| {
                serde_json::json!({
                    "udc": name, "state": state, "current_speed": speed,
                    "gadget": usbfn_ffs::udc_holder(name),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "udcs": list }))?
        );
        return Ok(());
    }
    println!("USB device controllers ({})", usbfn_ffs::UDC_ROOT);
    if udcs.is_empty() {
        println!("   (none: load a controller driver, e.g. modprobe dummy_hcd for tests)");
    }
    for (name, state, speed) in &udcs {
        let holder = usbfn_ffs::udc_holder(name).unwrap_or_else(|| "free".into());
        println!("  {name:<24} state {state:<12} speed {speed:<12} {holder}");
    }
    Ok(())
}
