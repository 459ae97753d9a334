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
    /// Gadget Zero data pattern: 0 zeros, 1 `(i % wMaxPacketSize) % 63`.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=1))]
    pattern: u8,
    /// The function of the default device, with its options:
    /// `gadget-zero[,key=value...]`, e.g. `gadget-zero,isoc_interval=1,isoc_mult=2` (keys:
    /// f_sourcesink's isoc_interval, isoc_maxpacket, isoc_mult, isoc_maxburst, iso_qlen, and
    /// int_interval, int_maxpacket, qlen, buflen, pattern).
    #[arg(long, default_value = "gadget-zero")]
    function: String,
}

#[derive(Copy, Clone, Debug, Default, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SpeedArg {
    Full,
    #[default]
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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceEntry {
    /// Built-in function: `gadget-zero`, optionally followed by `,key=value` options.
    function: String,
    #[serde(default = "default_speed")]
    speed: SpeedArg,
    #[serde(default)]
    pattern: u8,
    #[serde(default)]
    qlen: Option<usize>,
    #[serde(default)]
    buflen: Option<usize>,
    /// f_sourcesink's isochronous parameters and the interrupt ones (Gadget Zero).
    #[serde(default)]
    isoc_interval: Option<u32>,
    #[serde(default)]
    isoc_maxpacket: Option<u32>,
    #[serde(default)]
    isoc_mult: Option<u32>,
    #[serde(default)]
    isoc_maxburst: Option<u32>,
    #[serde(default)]
    iso_qlen: Option<u32>,
    #[serde(default)]
    int_interval: Option<u32>,
    #[serde(default)]
    int_maxpacket: Option<u32>,
}

impl DeviceEntry {
    /// The function name and its options: TOML keys first, then the `,key=value` list of
    /// `function` (which wins).
    fn gadget_zero_options(&self) -> anyhow::Result<(&str, gadget_zero::Options)> {
        let (name, list) = self
            .function
            .split_once(',')
            .unwrap_or((self.function.as_str(), ""));
        let mut o = gadget_zero::Options::default();
        o.set("pattern", &self.pattern.to_string())?;
        if let Some(q) = self.qlen {
            o.qlen = q.clamp(1, 256);
        }
        if let Some(b) = self.buflen {
            o.buflen = b.clamp(1, 1 << 20);
        }
        let keys = [
            ("isoc_interval", self.isoc_interval),
            ("isoc_maxpacket", self.isoc_maxpacket),
            ("isoc_mult", self.isoc_mult),
            ("isoc_maxburst", self.isoc_maxburst),
            ("iso_qlen", self.iso_qlen),
            ("int_interval", self.int_interval),
            ("int_maxpacket", self.int_maxpacket),
        ];
        for (key, value) in keys {
            if let Some(v) = value {
                o.set(key, &v.to_string())?;
            }
        }
        o.apply_list(list)?;
        Ok((name.trim(), o))
    }
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
            function: args.function.clone(),
            speed: args.speed,
            pattern: args.pattern,
            ..DeviceEntry::default()
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
    let name = entry.function.split(',').next().unwrap_or("").trim();
    match name {
        "gadget-zero" => {
            if entry.pattern > 1 {
                bail!(
                    "device[{index}].pattern is {}: 0 or 1 allowed",
                    entry.pattern
                );
            }
            let (_, options) = entry
                .gadget_zero_options()
                .with_context(|| format!("device[{index}]"))?;
            let controller = Controller::new(&gadget_zero::config_with(&options))?;
            let iface = controller.open(gadget_zero::INTERFACE_NAME)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(toml_text: &str) -> DeviceEntry {
        let cfg: ServeConfig = toml::from_str(toml_text).expect("toml");
        cfg.devices.into_iter().next().expect("one device")
    }

    #[test]
    fn gadget_zero_options_from_toml_keys_and_the_function_list() {
        let e = entry(
            "[[device]]\nfunction = \"gadget-zero,isoc_mult=2\"\nisoc_interval = 1\nisoc_mult = 1\nint_maxpacket = 64\n",
        );
        let (name, o) = e.gadget_zero_options().expect("valid");
        assert_eq!(name, "gadget-zero");
        assert_eq!((o.isoc_interval, o.isoc_mult, o.int_maxpacket), (1, 2, 64));
        assert_eq!(o.isoc_maxpacket, 1024, "the kernel's default");
        let bad = entry("[[device]]\nfunction = \"gadget-zero\"\nisoc_maxburst = 16\n");
        let err = bad.gadget_zero_options().expect_err("out of range");
        assert!(err.to_string().contains("0..=15"), "{err}");
        let bad = entry("[[device]]\nfunction = \"gadget-zero,isoc_speed=3\"\n");
        assert!(bad.gadget_zero_options().is_err());
    }
}
