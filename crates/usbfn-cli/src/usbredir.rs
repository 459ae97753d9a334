//! `usbfn serve --usbredir ADDR` / `--usbredir-connect ADDR`: the devices for QEMU guests.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use usbfn::BusSpeed;
use usbfn_usbredir::host::HostOptions;
use usbfn_usbredir::server::{self, Address, Listener};

use crate::device_file::DeviceFile;
use crate::serve::{Args, shutdown_signal, start_builtin};

/// Serve every device over usbredir, one address each, until a signal.
pub(crate) async fn serve(args: &Args, devices: &[(PathBuf, DeviceFile)]) -> anyhow::Result<()> {
    let (base, usbfn_listens) = match (&args.usbredir, &args.usbredir_connect) {
        (Some(a), _) => (a.clone(), true),
        (None, Some(a)) => (a.clone(), false),
        (None, None) => bail!("--usbredir or --usbredir-connect is needed"),
    };
    if let Address::Tcp(a) = &base
        && !a.ip().is_loopback()
        && !args.server.allow_remote
    {
        bail!(
            "refusing usbredir on {a}: usbredir has no authentication, so anyone who can reach it can use the devices; pass --allow-remote to do it anyway"
        );
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    println!(
        "usbfn: serving {} device(s) over usbredir ({})",
        devices.len(),
        if usbfn_listens {
            "listening"
        } else {
            "connecting to QEMU"
        }
    );
    for (n, (path, device)) in devices.iter().enumerate() {
        if device.functions.is_empty() {
            bail!(
                "{}: serve runs built-in functions only ([function] kind = ...)",
                path.display()
            );
        }
        let controller = start_builtin(&device.config, &device.functions)?;
        let speed = BusSpeed::from(device.usbip.speed.unwrap_or(args.speed));
        let mut options = HostOptions {
            speed,
            ..HostOptions::default()
        };
        if let Some(s) = args.server.idle_timeout.or(device.usbip.idle_timeout_s) {
            options.idle_timeout = Duration::from_secs_f64(s);
        }
        let address = base.nth(n).map_err(anyhow::Error::msg)?;
        let id = format!("usbredir{n}");
        let (controller_dev, bus) = match speed {
            BusSpeed::Super => ("qemu-xhci,id=xhci", "xhci.0"),
            BusSpeed::High => ("usb-ehci,id=ehci", "ehci.0"),
            BusSpeed::Full => ("piix3-usb-uhci,id=uhci", "uhci.0"),
        };
        let shown = if usbfn_listens {
            let listener = Listener::bind(&address)
                .await
                .with_context(|| format!("listening for usbredir on {address}"))?;
            let bound = listener.local_addr()?;
            tasks.spawn(server::listen(
                controller,
                listener,
                options,
                stop_rx.clone(),
            ));
            bound
        } else {
            tasks.spawn(server::connect(
                controller,
                address.clone(),
                options,
                stop_rx.clone(),
            ));
            address
        };
        println!(
            "  {shown}  {} ({speed} speed)   qemu: -device {controller_dev} -chardev {} -device usb-redir,chardev={id},bus={bus}",
            crate::device_file::kinds(&device.functions),
            shown.qemu_chardev(&id, usbfn_listens),
        );
    }
    if matches!(&base, Address::Tcp(a) if !a.ip().is_loopback()) {
        println!("warning: usbredir on {base} without authentication (--allow-remote)");
    }
    shutdown_signal().await;
    let _ = stop_tx.send(true);
    while let Some(r) = tasks.join_next().await {
        if let Ok(Err(e)) = r {
            tracing::warn!(error = %e, "usbredir endpoint ended");
        }
    }
    println!("usbfn: stopped");
    Ok(())
}
