//! `usbfn serve`: export devices run by built-in functions over USB/IP, in one process.

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde::Deserialize;
use usbfn::functions::{self, Function};
use usbfn::{BusSpeed, Controller};
use usbfn_usbip::server::Server;

use crate::device_file::{self, DeviceFile, UsbipSection};
use crate::server_args::{ServerArgs, merge_usbip, print_exports};

/// Arguments of `usbfn serve`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  usbfn serve                                   # Gadget Zero on 127.0.0.1:3240
  usbfn serve --listen localhost:3241 --speed super --pcap usb.pcap
  usbfn serve --function gadget-zero,isoc_interval=1,isoc_mult=2   # iso alt 1 options
  usbfn serve --function gadget-zero --function gadget-zero        # a composite device
  usbfn serve --config examples/devices/gadget-zero.toml --config other.toml
  sudo usbip attach -r 127.0.0.1 -b 1-1         # on the host (apt install usbip; modprobe vhci-hcd)
  usbfn serve --usbredir 127.0.0.1:4000 --speed super   # for a QEMU guest: prints its -device arguments")]
pub(crate) struct Args {
    /// A device file served by a built-in function (`[function]`, see docs/config.md);
    /// repeat for more devices, exported as busids 1-1, 1-2, ... in order. The old
    /// `[[device]]` list still works. Default: one Gadget Zero.
    #[arg(long, value_name = "FILE")]
    config: Vec<PathBuf>,
    #[command(flatten)]
    pub(crate) server: ServerArgs,
    /// Run the server, the devices and their services on a worker thread per CPU (a
    /// multi-thread runtime). Default: one thread (a current-thread runtime), on which a
    /// URB's hand-offs between the connection, the device and its service are calls rather
    /// than cross-thread wake-ups: in the conformance guest usbfn then spends 38 CPU ticks on
    /// usbtest case 27 instead of 95, and on the host its control p99 is ~10 µs instead of
    /// ~100 µs (docs/benchmarks.md). Worth it when several devices each need a CPU. Blocking
    /// work (image files, ptys) runs on tokio's blocking threads either way.
    #[arg(long, conflicts_with = "single_thread")]
    pub(crate) multi_thread: bool,
    /// One thread (the default; kept for scripts that ask for it).
    #[arg(long)]
    pub(crate) single_thread: bool,
    /// Speed hosts see, for devices whose file gives no `usbip.speed`.
    #[arg(long, value_enum, default_value = "high")]
    pub(crate) speed: SpeedArg,
    /// Serve on this USB device controller (a name in /sys/class/udc) through Linux
    /// FunctionFS instead of USB/IP. See `usbfn list --udc`.
    #[arg(long, value_name = "NAME")]
    udc: Option<String>,
    /// With --udc: the CPU of the thread doing the FunctionFS I/O. `any` (the default)
    /// leaves it to the scheduler; `auto` keeps it on the last CPU the process may use
    /// (when it may use several), so the kernel's copy of every IN byte in that thread runs
    /// beside the controller's work instead of taking turns with it on one CPU (faster
    /// when that CPU is otherwise free, slower when it is not); a number picks the CPU.
    #[arg(
        long,
        value_name = "auto|any|N",
        default_value = "any",
        requires = "udc"
    )]
    udc_cpu: usbfn_ffs::IoCpu,
    /// Gadget Zero data pattern (the default device): 0 zeros, 1 `(i % wMaxPacketSize) % 63`.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=1))]
    pattern: u8,
    /// The function of the default device, with its options, as `KIND[,key=value...]`
    /// (the same keys as `[function]` in a device file; docs/config.md lists them). Repeat
    /// for a composite device of several functions. E.g.
    /// `gadget-zero,isoc_interval=1,isoc_mult=2` (f_sourcesink's keys isoc_interval,
    /// isoc_maxpacket, isoc_mult, isoc_maxburst, iso_qlen, and int_interval, int_maxpacket,
    /// qlen, buflen, pattern).
    #[arg(
        long,
        value_name = "KIND[,KEY=VALUE...]",
        default_value = "gadget-zero"
    )]
    function: Vec<String>,
    #[command(flatten)]
    pub(crate) usbredir: crate::usbredir::UsbredirArgs,
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
        let mut functions = Vec::new();
        for spec in &args.function {
            // --pattern is Gadget Zero's; a `pattern=` in the spec wins over it.
            let mut options = toml::Table::new();
            if spec.split(',').next().map(str::trim) == Some("gadget-zero") {
                options.insert(
                    "pattern".into(),
                    toml::Value::Integer(i64::from(args.pattern)),
                );
            }
            functions.push(
                device_file::builtin("--function", spec, &options).map_err(anyhow::Error::msg)?,
            );
        }
        devices.push((
            PathBuf::from("(default)"),
            DeviceFile {
                config: functions::device_config(&functions),
                functions,
                usbip: UsbipSection::default(),
            },
        ));
    } else if args.function != ["gadget-zero"] {
        bail!(
            "--function sets the default device; with --config, give the function and its options in the file's [function] section"
        );
    }
    if let Some(udc) = &args.udc {
        let [(path, device)] = &devices[..] else {
            bail!("--udc serves one device; {} are configured", devices.len());
        };
        if device.functions.is_empty() {
            bail!(
                "{}: serve --udc runs built-in functions; a device served by service processes runs under `usbfn daemon --udc`",
                path.display()
            );
        }
        return crate::ffs::serve(udc, device.functions.clone(), args.udc_cpu).await;
    }
    let files: Vec<(String, &UsbipSection)> = devices
        .iter()
        .map(|(p, d)| (p.display().to_string(), &d.usbip))
        .collect();
    if let Some(plan) = args.usbredir.plan(&files, &args.server)? {
        return serve_usbredir(&args, &devices, &plan).await;
    }
    let limits = merge_usbip(devices.iter().map(|(p, d)| (p.as_path(), &d.usbip)))?;
    let mut builder = Server::builder();
    let mut exported = Vec::new();
    for (path, device) in &devices {
        if device.functions.is_empty() {
            bail!(
                "{}: serve runs built-in functions only ([function] kind = ...); a device whose interfaces are served by service processes runs under `usbfn daemon --config {}`",
                path.display(),
                path.display()
            );
        };
        let controller = start_builtin(&device.config, &device.functions)?;
        let speed = BusSpeed::from(device.usbip.speed.unwrap_or(args.speed));
        let busid = builder.export(controller, speed)?;
        exported.push((busid, device_file::kinds(&device.functions), speed));
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

/// Serve every device over usbredir, one address each, until a signal.
async fn serve_usbredir(
    args: &Args,
    devices: &[(PathBuf, DeviceFile)],
    plan: &crate::usbredir::Plan,
) -> anyhow::Result<()> {
    let mut endpoints = crate::usbredir::Endpoints::new(&args.server)?;
    let mut lines = Vec::new();
    for (n, ((path, device), address)) in devices.iter().zip(&plan.addresses).enumerate() {
        if device.functions.is_empty() {
            bail!(
                "{}: serve runs built-in functions only ([function] kind = ...); a device whose interfaces are served by service processes runs under `usbfn daemon --usbredir ADDR --config {}`",
                path.display(),
                path.display()
            );
        }
        let controller = start_builtin(&device.config, &device.functions)?;
        let speed = BusSpeed::from(device.usbip.speed.unwrap_or(args.speed));
        let idle = args.server.idle_timeout.or(device.usbip.idle_timeout_s);
        let what = device_file::kinds(&device.functions);
        lines.push(
            endpoints
                .start(n, controller, address, plan.listens, speed, idle, &what)
                .await?,
        );
    }
    let signal = crate::usbredir::shutdown_signal_installed()?;
    println!(
        "usbfn: serving {} device(s) over usbredir ({})",
        devices.len(),
        if plan.listens {
            "listening"
        } else {
            "connecting to QEMU"
        }
    );
    if let Some(path) = &args.server.pcap {
        println!("usbfn: writing URBs to {}", path.display());
    }
    for line in lines {
        println!("{line}");
    }
    signal.await;
    endpoints.stop().await;
    println!("usbfn: stopped");
    Ok(())
}

/// Build the device and run its built-in functions on it in this process.
pub(crate) fn start_builtin(
    config: &usbfn::DeviceConfig,
    functions: &[Function],
) -> anyhow::Result<Controller> {
    let controller = Controller::new(config)?;
    functions::start_all(functions, |name| {
        controller
            .open(name)
            .with_context(|| format!("opening interface {name:?}"))
    })?;
    Ok(controller)
}

pub(crate) async fn shutdown_signal() {
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
