//! `usbfn serve`: export devices over USB/IP.

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde::Deserialize;
use usbfn::functions::gadget_zero;
use usbfn::{BusSpeed, Controller};
use usbfn_usbip::server::Server;

use crate::server_args::{ServerArgs, print_exports};

/// Arguments of `usbfn serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// A serve configuration (TOML: `[[device]]` entries naming built-in functions). Default:
    /// one Gadget Zero.
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    server: ServerArgs,
    /// Speed hosts see (default device).
    #[arg(long, value_enum, default_value = "high")]
    speed: SpeedArg,
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
    args.server.check_listen()?;
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
    let mut builder = Server::builder();
    let mut exported = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let controller = start_function(i, entry)?;
        let busid = builder.export(controller, entry.speed.into())?;
        exported.push((busid, entry.function.clone(), BusSpeed::from(entry.speed)));
    }
    let mut server = builder.build();
    let listen = args.server.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    server.set_options(args.server.options(&server)?);
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

fn start_function(index: usize, entry: &DeviceEntry) -> anyhow::Result<Controller> {
    match entry.function.as_str() {
        "gadget-zero" => {
            let controller = Controller::new(&gadget_zero::config())?;
            let iface = controller.open(gadget_zero::INTERFACE_NAME)?;
            let pattern = match entry.pattern {
                0 => gadget_zero::Pattern::Zeros,
                1 => gadget_zero::Pattern::Mod63,
                p => bail!("device[{index}].pattern is {p}: 0 or 1 allowed"),
            };
            let defaults = gadget_zero::Options::default();
            let options = gadget_zero::Options {
                pattern,
                qlen: entry.qlen.unwrap_or(defaults.qlen).clamp(1, 256),
                buflen: entry.buflen.unwrap_or(defaults.buflen).clamp(1, 1 << 20),
            };
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
