//! `usbfn list`: what a USB/IP server exports.

use serde_json::json;

/// Arguments of `usbfn list`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Server, HOST[:PORT] (port 3240 by default).
    #[arg(default_value = "127.0.0.1")]
    server: String,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
    /// List this machine's USB device controllers (/sys/class/udc) and what is bound to
    /// them, for `usbfn serve --udc` / `usbfn daemon --udc`, instead of a server's exports.
    #[arg(long)]
    udc: bool,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    if args.udc {
        return crate::ffs::list_udcs(args.json);
    }
    let addr = crate::server_addr(&args.server)?;
    let devices = usbfn_usbip::client::list_devices(addr).await?;
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
