//! `usbfn daemon`: the generic function driver as a system service. It owns the device and
//! its bus (USB/IP, as `usbfn serve` does) and exposes every interface as a Unix socket named
//! by its InterfaceGUID; services run in their own processes and speak `DeviceIoControl` over
//! those sockets (`docs/ipc.md`). The device is offered to hosts only while every
//! interface's service has activated the bus.

use std::path::PathBuf;

use anyhow::{Context, bail};
use usbfn::functions::gadget_zero;
use usbfn::{BusSpeed, Controller, DeviceConfig};

use crate::device_file::{self, DeviceFile, UsbipSection};
use usbfn_ipc::daemon::InterfaceSockets;
use usbfn_usbip::server::Server;

use crate::serve::SpeedArg;
use crate::server_args::{ServerArgs, print_exports};

/// Arguments of `usbfn daemon`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  usbfn daemon --runtime-dir /tmp/usbfn &        # Gadget Zero, waiting for its service
  usbfn service gadget-zero --runtime-dir /tmp/usbfn
  usbfn daemon --config examples/devices/loopback.toml --pcap usb.pcap
  usbfn daemon --function acm --function msc --services external &
  usbfn service acm,pty=/tmp/ttyUSBFN &         # each function in a process of its own
  usbfn service msc,image=disk.img
  usbfn daemon --usbredir 127.0.0.1:4000 --speed super   # for a QEMU guest: prints its -device arguments
  usbfn probe                                    # once every interface's service is active")]
pub(crate) struct Args {
    /// The device file (docs/config.md): `[device]` and `[[interfaces]]`, each with the
    /// `guid` its service opens; or `[function]` for built-in functions (run in-process
    /// unless --services external).
    /// Default: the Gadget Zero device, its service to be run by `usbfn service gadget-zero`.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    server: ServerArgs,
    /// Directory of the interface sockets. [default: /run/usbfn as root,
    /// $XDG_RUNTIME_DIR/usbfn otherwise]
    #[arg(long, value_name = "DIR")]
    runtime_dir: Option<PathBuf>,
    /// Speed hosts see, when the device file gives no `usbip.speed`.
    #[arg(long, value_enum, default_value = "high")]
    speed: SpeedArg,
    /// Put the device on this USB device controller (a name in /sys/class/udc) through
    /// Linux FunctionFS instead of offering it over USB/IP.
    #[arg(long, value_name = "NAME")]
    udc: Option<String>,
    #[command(flatten)]
    usbredir: crate::usbredir::UsbredirArgs,
    /// A device made of built-in functions, as `usbfn serve --function` takes them
    /// (`KIND[,key=value...]`; repeat for a composite device). Instead of --config.
    #[arg(long, value_name = "KIND[,KEY=VALUE...]", conflicts_with = "config")]
    function: Vec<String>,
    /// Who serves the built-in functions of --function or a `[function]` device file:
    /// this process (`in-process`), or one `usbfn service KIND` process per function
    /// (`external`), each opening its interfaces by their InterfaceGUIDs
    /// (docs/config.md, "InterfaceGUIDs of built-in functions").
    #[arg(long, value_enum, default_value = "in-process")]
    services: Services,
}

/// `--services`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Services {
    /// The daemon runs the built-in functions itself.
    InProcess,
    /// Service processes run them (`usbfn service KIND`), as any other interface's service.
    External,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    args.server.check_listen()?;
    let mut device = match &args.config {
        Some(path) => device_file::load(path)?,
        None if !args.function.is_empty() => {
            let functions = args
                .function
                .iter()
                .map(|spec| {
                    device_file::builtin("--function", spec, &toml::Table::new())
                        .map_err(anyhow::Error::msg)
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            DeviceFile {
                config: usbfn::functions::device_config(&functions),
                functions,
                usbip: UsbipSection::default(),
            }
        }
        None => DeviceFile {
            // On a controller (FunctionFS) Gadget Zero offers bulk only, as f_sourcesink does
            // on a UDC without isochronous endpoints.
            config: if args.udc.is_some() {
                gadget_zero::bulk_only_config(&gadget_zero::Options::default())
            } else {
                gadget_zero::config()
            },
            functions: Vec::new(),
            usbip: UsbipSection::default(),
        },
    };
    if args.services == Services::External {
        if device.functions.is_empty() {
            bail!(
                "--services external is for built-in functions (--function, or a [function] device file); this device's interfaces are served by service processes already"
            );
        }
        for (function, instance) in device
            .functions
            .iter()
            .zip(usbfn::functions::instances(&device.functions))
        {
            let instance = if instance == 0 {
                String::new()
            } else {
                format!(" --instance {instance}")
            };
            println!(
                "usbfn daemon: {} is served by `usbfn service {}{instance}`",
                function.kind(),
                function.kind()
            );
        }
        // From here on the device is one whose interfaces have service processes.
        device.functions.clear();
    }
    let config = &device.config;
    if device.functions.is_empty()
        && let Some((i, iface)) = config
            .interfaces
            .iter()
            .enumerate()
            .find(|(_, iface)| iface.guid.is_none())
    {
        bail!(
            "{}: interfaces[{}] {:?} has no guid: a service process opens its interface by its InterfaceGUID, so give it one (guid = \"{{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}}\")",
            args.config
                .as_deref()
                .map_or_else(|| "(default)".into(), |p| p.display().to_string()),
            i + 1,
            iface.name
        );
    }
    let dir = usbfn_ipc::path::runtime_dir_or_default(args.runtime_dir.as_deref())?;
    if let Some(udc) = &args.udc {
        if !device.functions.is_empty() {
            bail!(
                "--udc runs a device whose interfaces are served by service processes; a [function] device runs under `usbfn serve --udc`"
            );
        }
        return crate::ffs::daemon(udc, config, &dir).await;
    }
    let controller = if device.functions.is_empty() {
        Controller::new(config).context("building the device")?
    } else {
        crate::serve::start_builtin(config, &device.functions)?
    };
    let speed = BusSpeed::from(device.usbip.speed.unwrap_or(args.speed));
    let name = args
        .config
        .as_deref()
        .map_or_else(|| "(default)".into(), |p| p.display().to_string());
    if let Some(plan) = args.usbredir.plan(&[(name, &device.usbip)], &args.server)? {
        return daemon_usbredir(&args, &device, controller, speed, &dir, &plan).await;
    }
    let mut builder = Server::builder();
    let busid = builder.export(controller.clone(), speed)?;
    let mut server = builder.build();
    // What can fail on a busy machine comes first (the port, the capture file); the
    // interface sockets last, and they are removed again if anything fails after them.
    let listen = args.server.listen;
    let listener =
        std::net::TcpListener::bind(listen).with_context(|| format!("listening on {listen}"))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    server.set_options(args.server.options(&server, &device.usbip)?);
    let sockets = bind_sockets(&args, &device, &controller, &dir)?;
    println!(
        "usbfn daemon: device {busid} ({speed} speed) offered to hosts once every interface's service is active"
    );
    println!("usbfn daemon: listening for USB/IP hosts on {addr}");
    print_exports(addr, &[(busid, device_name(config), speed)]);

    let readiness = tokio::spawn(log_readiness(controller.clone()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let until = stopped(stop_rx.clone());
    let services = tokio::spawn(async move {
        match sockets {
            Some(s) => s.serve(until).await,
            None => until.await,
        }
    });
    let usbip = serve_usbip(server, controller, listener, stop_rx);
    tokio::pin!(usbip);
    tokio::select! {
        r = &mut usbip => {
            // The server only returns on shutdown; an error here is fatal for the daemon.
            let _ = stop_tx.send(true);
            let _ = services.await;
            r?;
            bail!("the USB/IP server stopped");
        }
        () = shutdown_signal() => {}
    }
    let _ = stop_tx.send(true);
    usbip.await?;
    services.await?;
    readiness.abort();
    println!("usbfn daemon: stopped");
    Ok(())
}

/// The daemon with its device on usbredir: the interface sockets as over USB/IP, the device
/// offered to the guest (`device_connect`) while every service is active, withdrawn
/// (`device_disconnect`) when one goes away.
async fn daemon_usbredir(
    args: &Args,
    device: &DeviceFile,
    controller: Controller,
    speed: BusSpeed,
    dir: &std::path::Path,
    plan: &crate::usbredir::Plan,
) -> anyhow::Result<()> {
    let Some(address) = plan.addresses.first() else {
        bail!("no usbredir address for the device");
    };
    // What can fail on a busy machine comes first (the socket, the capture file); the
    // interface sockets last.
    let mut endpoints = crate::usbredir::Endpoints::new(&args.server)?;
    let line = endpoints
        .start(
            0,
            controller.clone(),
            address,
            plan.listens,
            speed,
            args.server.idle_timeout.or(device.usbip.idle_timeout_s),
            &device_name(&device.config),
        )
        .await?;
    let signal = crate::usbredir::shutdown_signal_installed()?;
    let sockets = bind_sockets(args, device, &controller, dir)?;
    println!(
        "usbfn daemon: device ({speed} speed) offered to the QEMU guest once every interface's service is active"
    );
    println!(
        "usbfn daemon: usbredir for QEMU guests ({})",
        if plan.listens {
            "listening"
        } else {
            "connecting to QEMU"
        }
    );
    println!("{line}");
    let readiness = tokio::spawn(log_readiness(controller.clone()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let services = tokio::spawn(async move {
        let mut rx = stop_rx;
        let until = async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        match sockets {
            Some(s) => s.serve(until).await,
            None => until.await,
        }
    });
    signal.await;
    endpoints.stop().await;
    let _ = stop_tx.send(true);
    services.await?;
    readiness.abort();
    println!("usbfn daemon: stopped");
    Ok(())
}

/// `0525:a4a0 "Gadget Zero"`: what the device is, for the attach line.
fn device_name(config: &DeviceConfig) -> String {
    let d = &config.device;
    match &d.product {
        Some(p) => format!("{:04x}:{:04x} {p:?}", d.vendor_id, d.product_id),
        None => format!("{:04x}:{:04x}", d.vendor_id, d.product_id),
    }
}

/// Serve USB/IP until `stop`. Whenever the device stops being ready (a service deactivated,
/// disconnected or died) every host connection is closed, so no host stays attached to a
/// device whose functions are not all there, whatever the bus does with the core's
/// disconnect request; then serving goes on with the same listening socket.
async fn serve_usbip(
    server: Server,
    controller: Controller,
    listener: std::net::TcpListener,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    loop {
        let cycle = tokio::net::TcpListener::from_std(listener.try_clone()?)?;
        let mut ready = controller.ready_watch();
        let mut stopping = stop.clone();
        let withdrawn = async move {
            let _ = ready.wait_for(|r| *r).await;
            let _ = ready.wait_for(|r| !*r).await;
        };
        let until = async move {
            tokio::select! {
                () = withdrawn => {}
                _ = stopping.wait_for(|s| *s) => {}
            }
        };
        server.serve(cycle, until).await?;
        if *stop.borrow() {
            return Ok(());
        }
        tracing::info!("a service went away: hosts detached from the device");
    }
}

async fn log_readiness(controller: Controller) {
    let mut ready = controller.ready_watch();
    loop {
        if *ready.borrow_and_update() {
            tracing::info!("every interface's service is active: the device is offered to hosts");
        } else {
            tracing::info!("not every interface's service is active: the device is not offered");
        }
        if ready.changed().await.is_err() {
            return;
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; stopping on SIGINT only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    tracing::info!("signal received: stopping");
}

/// The interface sockets service processes open (none for built-in functions this process
/// runs), announced with the capture file, if any.
fn bind_sockets(
    args: &Args,
    device: &DeviceFile,
    controller: &Controller,
    dir: &std::path::Path,
) -> anyhow::Result<Option<InterfaceSockets<Controller>>> {
    let sockets = if device.functions.is_empty() {
        Some(InterfaceSockets::bind(controller, dir)?)
    } else {
        None
    };
    for i in sockets.iter().flat_map(InterfaceSockets::interfaces) {
        println!(
            "usbfn daemon: interface {:?} {} at {}",
            i.name,
            i.guid,
            i.path.display()
        );
    }
    if let Some(path) = &args.server.pcap {
        println!("usbfn daemon: writing URBs to {}", path.display());
    }
    Ok(sockets)
}
