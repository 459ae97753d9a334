//! `usbfn serve`: export devices run by built-in functions over USB/IP, in one process.

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde::Deserialize;
use usbfn::functions::gadget_zero;
use usbfn::{BusSpeed, Controller};
use usbfn_usbip::server::Server;

use crate::device_file::{self, Builtin, DeviceFile, UsbipSection};
use crate::server_args::{ServerArgs, merge_usbip, print_exports};

/// Arguments of `usbfn serve`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  usbfn serve                                   # Gadget Zero on 127.0.0.1:3240
  usbfn serve --listen localhost:3241 --speed super --pcap usb.pcap
  usbfn serve --function gadget-zero,isoc_interval=1,isoc_mult=2   # iso alt 1 options
  usbfn serve --config examples/devices/gadget-zero.toml --config other.toml
  sudo usbip attach -r 127.0.0.1 -b 1-1         # on the host (apt install usbip; modprobe vhci-hcd)")]
pub(crate) struct Args {
    /// A device file served by a built-in function (`[function]`, see docs/config.md);
    /// repeat for more devices, exported as busids 1-1, 1-2, ... in order. The old
    /// `[[device]]` list still works. Default: one Gadget Zero.
    #[arg(long, value_name = "FILE")]
    config: Vec<PathBuf>,
    #[command(flatten)]
    server: ServerArgs,
    /// Speed hosts see, for devices whose file gives no `usbip.speed`.
    #[arg(long, value_enum, default_value = "high")]
    speed: SpeedArg,
    /// Serve on this USB device controller (a name in /sys/class/udc) through Linux
    /// FunctionFS instead of USB/IP. See `usbfn list --udc`.
    #[arg(long, value_name = "NAME")]
    udc: Option<String>,
    /// Gadget Zero data pattern (the default device): 0 zeros, 1 `(i % wMaxPacketSize) % 63`.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=1))]
    pattern: u8,
    /// The function of the default device, with its options:
    /// `gadget-zero[,key=value...]`, e.g. `gadget-zero,isoc_interval=1,isoc_mult=2` (keys:
    /// f_sourcesink's isoc_interval, isoc_maxpacket, isoc_mult, isoc_maxburst, iso_qlen, and
    /// int_interval, int_maxpacket, qlen, buflen, pattern; the same keys as `[function]` in a
    /// device file).
    #[arg(
        long,
        value_name = "KIND[,KEY=VALUE...]",
        default_value = "gadget-zero"
    )]
    function: String,
}

/// `--speed`, and `speed` in device files.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SpeedArg {
    Full,
    High,
    Super,
}

impl From<SpeedArg> for BusSpeed {
    fn from(s: SpeedArg) -> Self {
        match s {
            SpeedArg::Full => BusSpeed::Full,
            SpeedArg::High => BusSpeed::High,
            SpeedArg::Super => BusSpeed::Super,
        }
    }
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    args.server.check_listen()?;
    let mut devices: Vec<(PathBuf, DeviceFile)> = Vec::new();
    for path in &args.config {
        for device in device_file::load_serve(path)? {
            devices.push((path.clone(), device));
        }
    }
    if args.config.is_empty() {
        let mut options = toml::Table::new();
        if args.function.starts_with("gadget-zero") {
            options.insert(
                "pattern".into(),
                toml::Value::Integer(i64::from(args.pattern)),
            );
        }
        let function = device_file::builtin("--function", &args.function, &options)
            .map_err(anyhow::Error::msg)?;
        devices.push((
            PathBuf::from("(default)"),
            DeviceFile {
                config: device_file::builtin_config(&function),
                function: Some(function),
                usbip: UsbipSection::default(),
            },
        ));
    } else if args.function != "gadget-zero" {
        bail!(
            "--function sets the default device; with --config, give the function and its options in the file's [function] section"
        );
    }
    if let Some(udc) = &args.udc {
        let [(path, device)] = &devices[..] else {
            bail!("--udc serves one device; {} are configured", devices.len());
        };
        let Some(Builtin::GadgetZero(options)) = &device.function else {
            bail!(
                "{}: serve --udc runs the built-in gadget-zero; a device served by service processes runs under `usbfn daemon --udc`",
                path.display()
            );
        };
        return crate::ffs::serve(udc, options.clone()).await;
    }
    let limits = merge_usbip(devices.iter().map(|(p, d)| (p.as_path(), &d.usbip)))?;
    let mut builder = Server::builder();
    let mut exported = Vec::new();
    for (path, device) in &devices {
        let Some(function) = &device.function else {
            bail!(
                "{}: serve runs built-in functions only ([function] kind = ...); a device whose interfaces are served by service processes runs under `usbfn daemon --config {}`",
                path.display(),
                path.display()
            );
        };
        let controller = start_builtin(&device.config, function)?;
        let speed = BusSpeed::from(device.usbip.speed.unwrap_or(args.speed));
        let busid = builder.export(controller, speed)?;
        exported.push((busid, function.name().to_owned(), speed));
    }
    let mut server = builder.build();
    let listen = args.server.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    server.set_options(args.server.options(&server, &limits)?);
    if let Some(path) = &args.server.pcap {
        println!("usbfn: writing URBs to {}", path.display());
    }
    let addr = listener.local_addr()?;
    println!(
        "usbfn: serving {} device(s) over USB/IP on {addr}",
        exported.len()
    );
    print_exports(addr, &exported);
    server.serve(listener, shutdown_signal()).await?;
    println!("usbfn: stopped");
    Ok(())
}

/// Build the device and run its built-in function on it in this process.
pub(crate) fn start_builtin(
    config: &usbfn::DeviceConfig,
    function: &Builtin,
) -> anyhow::Result<Controller> {
    let controller = Controller::new(config)?;
    match function {
        Builtin::GadgetZero(options) => {
            let iface = controller.open(gadget_zero::INTERFACE_NAME)?;
            let options = options.clone();
            tokio::spawn(async move {
                if let Err(e) = gadget_zero::run(iface, options).await {
                    tracing::error!(error = %e, "gadget zero stopped");
                }
            });
        }
        Builtin::Acm(options) => {
            use usbfn::functions::acm;
            let side = acm::DeviceSide::open(options, 0).context("acm: making the pty")?;
            let [c, d] = acm::interface_names(0);
            acm::spawn(side, controller.open(&c)?, controller.open(&d)?);
        }
        Builtin::Hid(options) => {
            use usbfn::functions::hid;
            let side = hid::DeviceSide::open(options, 0).context("hid: making the input FIFO")?;
            hid::spawn(side, controller.open(&hid::interface_name(0))?);
        }
    }
    Ok(controller)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("signal received: detaching hosts");
}
