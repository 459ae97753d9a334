//! `usbfn daemon`: the generic function driver as a system service. It owns the device and
//! its bus (USB/IP, as `usbfn serve` does) and exposes every interface as a Unix socket named
//! by its InterfaceGUID; services run in their own processes and speak `DeviceIoControl` over
//! those sockets (`docs/ipc.md`). The device is offered to hosts only while every
//! interface's service has activated the bus.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use usbfn::functions::gadget_zero;
use usbfn::{BusSpeed, Controller, DeviceConfig};
use usbfn_ipc::daemon::InterfaceSockets;
use usbfn_usbip::server::Server;

use crate::serve::SpeedArg;

/// Arguments of `usbfn daemon`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Device configuration (TOML: `[device]`, `[[interfaces]]` with a `guid` each, ...).
    /// Default: the Gadget Zero device, its service to be run by `usbfn service gadget-zero`.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address hosts import the device from (USB/IP).
    #[arg(long, default_value = "127.0.0.1:3240")]
    listen: SocketAddr,
    /// Allow a non-loopback listen address. USB/IP has no authentication: anyone who can
    /// reach the port can attach the device.
    #[arg(long)]
    allow_remote: bool,
    /// Directory of the interface sockets. Default: /run/usbfn as root,
    /// $XDG_RUNTIME_DIR/usbfn otherwise.
    #[arg(long)]
    runtime_dir: Option<PathBuf>,
    /// Speed hosts see.
    #[arg(long, value_enum, default_value = "high")]
    speed: SpeedArg,
    /// Put the device on this USB device controller (a name in /sys/class/udc) through
    /// Linux FunctionFS instead of offering it over USB/IP.
    #[arg(long, value_name = "NAME")]
    udc: Option<String>,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    if !args.listen.ip().is_loopback() && !args.allow_remote {
        bail!(
            "refusing to listen on {}: USB/IP has no authentication, so anyone who can reach it can attach the device; pass --allow-remote to do it anyway",
            args.listen
        );
    }
    let config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            DeviceConfig::from_toml(&text).with_context(|| format!("parsing {}", path.display()))?
        }
        None => gadget_zero::config(),
    };
    let dir = usbfn_ipc::path::runtime_dir_or_default(args.runtime_dir.as_deref())?;
    if let Some(udc) = &args.udc {
        return crate::ffs::daemon(udc, &config, &dir).await;
    }
    let controller = Controller::new(&config).context("building the device")?;
    let sockets = InterfaceSockets::bind(&controller, &dir)?;
    let speed = BusSpeed::from(args.speed);
    let mut builder = Server::builder();
    let busid = builder.export(controller.clone(), speed)?;
    let server = builder.build();
    let listener = std::net::TcpListener::bind(args.listen)
        .with_context(|| format!("listening on {}", args.listen))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;

    for i in sockets.interfaces() {
        println!(
            "usbfn daemon: interface {:?} {} at {}",
            i.name,
            i.guid,
            i.path.display()
        );
    }
    println!(
        "usbfn daemon: device {busid} ({speed} speed) offered to hosts once every interface's service is active"
    );
    if !addr.ip().is_loopback() {
        println!("warning: listening on {addr} without authentication (--allow-remote)");
    }
    println!("usbfn daemon: listening for USB/IP hosts on {addr}");

    let readiness = tokio::spawn(log_readiness(controller.clone()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let services = tokio::spawn(sockets.serve(stopped(stop_rx.clone())));
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
