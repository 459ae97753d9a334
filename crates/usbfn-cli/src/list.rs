//! `usbfn list`: what a USB/IP server exports.

use anyhow::Context;
use serde_json::json;

/// Arguments of `usbfn list`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  usbfn list                       # the server on 127.0.0.1:3240
  usbfn list localhost:3241 --json
  usbfn list 192.0.2.7 --timeout 1")]
pub(crate) struct Args {
    /// Server, HOST[:PORT] (port 3240 by default).
    #[arg(default_value = "127.0.0.1")]
    server: String,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
    /// Seconds to wait for the server's answer (connecting included).
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0, value_parser = crate::util::seconds)]
    timeout: f64,
    /// List this machine's USB device controllers (/sys/class/udc) and what is bound to
    /// them, for `usbfn serve --udc` / `usbfn daemon --udc`, instead of a server's exports.
    #[arg(long)]
    udc: bool,
    /// Most devices accepted in the server's answer (a longer list is refused, naming this
    /// limit).
    #[arg(long, value_name = "N", default_value_t = MAX_LISTED_DEVICES)]
    max_devices: usize,
}

/// Default of `usbfn list --max-devices`: room for a server exporting tens of thousands of
/// devices (each costs about 330 bytes of the answer).
pub(crate) const MAX_LISTED_DEVICES: usize = 65_536;

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    if args.udc {
        return crate::ffs::list_udcs(args.json);
    }
    let addr = crate::server_addr(&args.server)?;
    let devices = list_devices_up_to(addr, args.timeout, args.max_devices).await?;
    if args.json {
        let list: Vec<_> = devices
            .iter()
            .map(|d| {
                json!({
                    "busid": d.device.busid.as_str(),
                    "vendor_id": format!("{:04x}", d.device.id_vendor),
                    "product_id": format!("{:04x}", d.device.id_product),
                    "speed": d.device.speed.to_string(),
                    "path": d.device.path.as_str(),
                    "interfaces": d.interfaces.iter().map(|i| json!({
                        "class": i.b_interface_class, "subclass": i.b_interface_sub_class, "protocol": i.b_interface_protocol,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "server": addr.to_string(), "devices": list }))?
        );
        return Ok(());
    }
    println!("Exportable USB devices");
    println!("======================");
    println!(" - {addr}");
    if devices.is_empty() {
        println!("   (none)");
    }
    for d in &devices {
        let dev = &d.device;
        println!(
            "{:>8}: {:04x}:{:04x} ({} speed)",
            dev.busid, dev.id_vendor, dev.id_product, dev.speed
        );
        println!("{:>8}: {}", "", dev.path.as_str());
        for (n, i) in d.interfaces.iter().enumerate() {
            println!(
                "{:>8}  {n}: class {:02x}/{:02x}/{:02x}",
                "", i.b_interface_class, i.b_interface_sub_class, i.b_interface_protocol
            );
        }
    }
    Ok(())
}

/// OP_REQ_DEVLIST to `addr`, failing after `timeout` seconds with an error that names the
/// address (a peer that accepts and never answers, or is not a USB/IP server).
pub(crate) async fn list_devices(
    addr: std::net::SocketAddr,
    timeout: f64,
) -> anyhow::Result<Vec<usbfn_usbip::proto::ExportedDevice>> {
    within(addr, timeout, usbfn_usbip::client::list_devices(addr))
        .await
        .with_context(|| format!("listing the devices of {addr}"))
}

/// [`list_devices`] accepting up to `max_devices` devices in the answer.
pub(crate) async fn list_devices_up_to(
    addr: std::net::SocketAddr,
    timeout: f64,
    max_devices: usize,
) -> anyhow::Result<Vec<usbfn_usbip::proto::ExportedDevice>> {
    let limits = usbfn_usbip::proto::Limits {
        max_devices,
        ..usbfn_usbip::proto::Limits::default()
    };
    within(
        addr,
        timeout,
        usbfn_usbip::client::list_devices_with_limits(addr, limits),
    )
    .await
    .with_context(|| format!("listing the devices of {addr} (at most {max_devices})"))
}

/// `fut` (a request to the USB/IP server at `addr`), failing after `timeout` seconds.
pub(crate) async fn within<T, E>(
    addr: std::net::SocketAddr,
    timeout: f64,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> anyhow::Result<T>
where
    E: std::error::Error + Send + Sync + 'static,
{
    match tokio::time::timeout(std::time::Duration::from_secs_f64(timeout), fut).await {
        Ok(r) => Ok(r?),
        Err(_) => anyhow::bail!(
            "no USB/IP answer from {addr} within {timeout} s (is it a USB/IP server? --timeout sets the wait)"
        ),
    }
}
