//! `usbfn serve`: export devices over USB/IP.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use serde::Deserialize;
use usbfn::functions::gadget_zero;
use usbfn::{BusSpeed, Controller};
use usbfn_usbip::server::{PcapTap, Server, ServerOptions};

/// Arguments of `usbfn serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// A serve configuration (TOML: `[[device]]` entries naming built-in functions). Default:
    /// one Gadget Zero.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3240")]
    listen: SocketAddr,
    /// Allow a non-loopback listen address. USB/IP has no authentication: anyone who can
    /// reach the port can attach the devices.
    #[arg(long)]
    allow_remote: bool,
    /// Speed hosts see (default device).
    #[arg(long, value_enum, default_value = "high")]
    speed: SpeedArg,
    /// Write every URB and completion to this file as a usbmon pcap (Wireshark opens it).
    #[arg(long)]
    pcap: Option<PathBuf>,
    /// Serve on this USB device controller (a name in /sys/class/udc) through Linux
    /// FunctionFS instead of USB/IP. See `usbfn list --udc`.
    #[arg(long, value_name = "NAME")]
    udc: Option<String>,
    /// Gadget Zero data pattern: 0 zeros, 1 `(i % wMaxPacketSize) % 63`.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=1))]
    pattern: u8,
}

#[derive(Copy, Clone, Debug, clap::ValueEnum, Deserialize)]
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

/// `--config` file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServeConfig {
    #[serde(rename = "device")]
    devices: Vec<DeviceEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceEntry {
    /// Built-in function: `gadget-zero`.
    function: String,
    #[serde(default = "default_speed")]
    speed: SpeedArg,
    #[serde(default)]
    pattern: u8,
    #[serde(default)]
    qlen: Option<usize>,
    #[serde(default)]
    buflen: Option<usize>,
}

fn default_speed() -> SpeedArg {
    SpeedArg::High
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    if !args.listen.ip().is_loopback() && !args.allow_remote {
        bail!(
            "refusing to listen on {}: USB/IP has no authentication, so anyone who can reach it can attach the devices; pass --allow-remote to do it anyway",
            args.listen
        );
    }
    let entries = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let cfg: ServeConfig =
                toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
            if cfg.devices.is_empty() {
                bail!("{}: no [[device]] entries", path.display());
            }
            cfg.devices
        }
        None => vec![DeviceEntry {
            function: "gadget-zero".into(),
            speed: args.speed,
            pattern: args.pattern,
            qlen: None,
            buflen: None,
        }],
    };
    if let Some(udc) = &args.udc {
        let [entry] = &entries[..] else {
            bail!("--udc serves one device; {} are configured", entries.len());
        };
        if entry.function != "gadget-zero" {
            bail!(
                "device[0].function is {:?}: the built-in functions are \"gadget-zero\"",
                entry.function
            );
        }
        return crate::ffs::serve(udc, gadget_zero_options(0, entry)?).await;
    }
    let mut builder = Server::builder();
    let mut exported = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let controller = start_function(i, entry)?;
        let busid = builder.export(controller, entry.speed.into())?;
        exported.push((busid, entry.function.clone(), BusSpeed::from(entry.speed)));
    }
    let mut server = builder.build();
    if let Some(path) = &args.pcap {
        let file =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let tap = PcapTap::new(std::io::BufWriter::new(file), server.exports())?;
        server.set_options(ServerOptions {
            tap: Some(std::sync::Arc::new(tap)),
            ..ServerOptions::default()
        });
        println!("usbfn: writing URBs to {}", path.display());
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let addr = listener.local_addr()?;
    println!(
        "usbfn: serving {} device(s) over USB/IP on {addr}",
        exported.len()
    );
    for (busid, function, speed) in &exported {
        println!(
            "  {busid}  {function} ({speed} speed)   attach: usbip attach -r {} -b {busid}",
            addr.ip()
        );
    }
    if !addr.ip().is_loopback() {
        println!("warning: listening on {addr} without authentication (--allow-remote)");
    }
    server.serve(listener, shutdown_signal()).await?;
    println!("usbfn: stopped");
    Ok(())
}

fn start_function(index: usize, entry: &DeviceEntry) -> anyhow::Result<Controller> {
    match entry.function.as_str() {
        "gadget-zero" => {
            let controller = Controller::new(&gadget_zero::config())?;
            let iface = controller.open(gadget_zero::INTERFACE_NAME)?;
            let options = gadget_zero_options(index, entry)?;
            tokio::spawn(async move {
                if let Err(e) = gadget_zero::run(iface, options).await {
                    tracing::error!(error = %e, "gadget zero stopped");
                }
            });
            Ok(controller)
        }
        other => bail!(
            "device[{index}].function is {other:?}: the built-in functions are \"gadget-zero\""
        ),
    }
}

fn gadget_zero_options(index: usize, entry: &DeviceEntry) -> anyhow::Result<gadget_zero::Options> {
    let pattern = match entry.pattern {
        0 => gadget_zero::Pattern::Zeros,
        1 => gadget_zero::Pattern::Mod63,
        p => bail!("device[{index}].pattern is {p}: 0 or 1 allowed"),
    };
    let defaults = gadget_zero::Options::default();
    Ok(gadget_zero::Options {
        pattern,
        qlen: entry.qlen.unwrap_or(defaults.qlen).clamp(1, 256),
        buflen: entry.buflen.unwrap_or(defaults.buflen).clamp(1, 1 << 20),
    })
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
