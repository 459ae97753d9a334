//! `usbfn probe`: import a device, enumerate it like a host, print its descriptors.

use anyhow::{Context, bail};
use serde_json::{Value, json};
use usbfn_usbip::client::{self, DeviceTree};
use usbfn_wire::{DeviceCapability, TransferType};

use crate::list::{list_devices, within};

/// Arguments of `usbfn probe`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Server, HOST[:PORT] (port 3240 by default).
    #[arg(default_value = "127.0.0.1")]
    server: String,
    /// The device to probe (default: the first one listed).
    #[arg(long)]
    busid: Option<String>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
    /// Seconds to wait for each step: the list, the import, the enumeration.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0, value_parser = crate::util::seconds)]
    timeout: f64,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let addr = crate::server_addr(&args.server)?;
    let timeout = args.timeout;
    let busid = match args.busid {
        Some(b) => b,
        None => {
            let devices = list_devices(addr, timeout).await?;
            match devices.first() {
                Some(d) => d.device.busid.as_str().to_owned(),
                None => bail!("{addr} exports no devices"),
            }
        }
    };
    let device = match within(addr, timeout, client::import(addr, &busid)).await {
        Ok(d) => d,
        Err(e) if is_no_such_device(&e) => {
            let devices = list_devices(addr, timeout).await?;
            let busids: Vec<&str> = devices.iter().map(|d| d.device.busid.as_str()).collect();
            if busids.is_empty() {
                bail!("{addr} does not export {busid}: it exports no devices");
            }
            bail!(
                "{addr} does not export {busid}; it exports {} (--busid)",
                busids.join(", ")
            );
        }
        Err(e) => return Err(e.context(format!("importing {busid} from {addr}"))),
    };
    let speed = device.device().speed;
    let tree = within(addr, timeout, device.enumerate(None))
        .await
        .with_context(|| format!("enumerating {busid} from {addr}"))?;
    drop(device);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&to_json(&busid, &speed.to_string(), &tree))?
        );
    } else {
        print_tree(&busid, &speed.to_string(), &tree);
    }
    Ok(())
}

fn is_no_such_device(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<client::ClientError>(),
        Some(client::ClientError::NoSuchDevice { .. })
    )
}

fn string(tree: &DeviceTree, index: u8) -> String {
    if index == 0 {
        return String::new();
    }
    tree.strings.get(&index).cloned().unwrap_or_default()
}

fn transfer_name(t: TransferType) -> &'static str {
    match t {
        TransferType::Control => "Control",
        TransferType::Isochronous => "Isochronous",
        TransferType::Bulk => "Bulk",
        TransferType::Interrupt => "Interrupt",
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn print_tree(busid: &str, speed: &str, tree: &DeviceTree) {
    let d = &tree.device;
    println!(
        "Bus {busid} ({speed} speed): ID {:04x}:{:04x} {} {}",
        d.id_vendor,
        d.id_product,
        string(tree, d.i_manufacturer),
        string(tree, d.i_product)
    );
    println!("Device Descriptor:");
    println!(
        "  bcdUSB            {:x}.{:02x}",
        d.bcd_usb >> 8,
        d.bcd_usb & 0xff
    );
    println!("  bDeviceClass      {:>5}", d.b_device_class);
    println!("  bDeviceSubClass   {:>5}", d.b_device_sub_class);
    println!("  bDeviceProtocol   {:>5}", d.b_device_protocol);
    println!("  bMaxPacketSize0   {:>5}", d.b_max_packet_size0);
    println!("  idVendor         0x{:04x}", d.id_vendor);
    println!("  idProduct        0x{:04x}", d.id_product);
    println!(
        "  bcdDevice         {:x}.{:02x}",
        d.bcd_device >> 8,
        d.bcd_device & 0xff
    );
    println!(
        "  iManufacturer     {:>5} {}",
        d.i_manufacturer,
        string(tree, d.i_manufacturer)
    );
    println!(
        "  iProduct          {:>5} {}",
        d.i_product,
        string(tree, d.i_product)
    );
    println!(
        "  iSerial           {:>5} {}",
        d.i_serial_number,
        string(tree, d.i_serial_number)
    );
    println!("  bNumConfigurations {:>4}", d.b_num_configurations);
    for config in &tree.configurations {
        let c = &config.tree.configuration;
        println!("  Configuration Descriptor:");
        println!("    wTotalLength     0x{:04x}", c.w_total_length);
        println!("    bNumInterfaces   {:>6}", c.b_num_interfaces);
        println!("    bConfigurationValue {:>3}", c.b_configuration_value);
        println!(
            "    iConfiguration   {:>6} {}",
            c.i_configuration,
            string(tree, c.i_configuration)
        );
        println!("    bmAttributes       0x{:02x}", c.bm_attributes);
        println!("    MaxPower         {:>6}", c.b_max_power);
        for a in &config.tree.associations {
            println!("    Interface Association:");
            println!("      bFirstInterface  {:>5}", a.b_first_interface);
            println!("      bInterfaceCount  {:>5}", a.b_interface_count);
            println!("      bFunctionClass   {:>5}", a.b_function_class);
            println!(
                "      iFunction        {:>5} {}",
                a.i_function,
                string(tree, a.i_function)
            );
        }
        for alt in &config.tree.interfaces {
            let i = &alt.descriptor;
            println!("    Interface Descriptor:");
            println!("      bInterfaceNumber   {:>3}", i.b_interface_number);
            println!("      bAlternateSetting  {:>3}", i.b_alternate_setting);
            println!("      bNumEndpoints      {:>3}", i.b_num_endpoints);
            println!("      bInterfaceClass    {:>3}", i.b_interface_class);
            println!("      bInterfaceSubClass {:>3}", i.b_interface_sub_class);
            println!("      bInterfaceProtocol {:>3}", i.b_interface_protocol);
            println!(
                "      iInterface         {:>3} {}",
                i.i_interface,
                string(tree, i.i_interface)
            );
            for extra in &alt.extra {
                println!(
                    "      ** class descriptor {:?}: {}",
                    extra.descriptor_type,
                    hex(&extra.bytes)
                );
            }
            for ep in &alt.endpoints {
                let e = &ep.descriptor;
                println!("      Endpoint Descriptor:");
                println!(
                    "        bEndpointAddress   0x{:02x}  EP {} {}",
                    e.b_endpoint_address.0,
                    e.b_endpoint_address.number(),
                    if e.b_endpoint_address.is_in() {
                        "IN"
                    } else {
                        "OUT"
                    }
                );
                println!(
                    "        Transfer Type        {}",
                    transfer_name(e.transfer_type())
                );
                println!(
                    "        wMaxPacketSize   0x{:04x}  {} bytes",
                    e.w_max_packet_size,
                    e.max_packet_size()
                );
                println!("        bInterval          {:>4}", e.b_interval);
                if let Some(c) = &ep.companion {
                    println!("        bMaxBurst          {:>4}", c.b_max_burst);
                }
            }
        }
    }
    if let Some(bos) = &tree.bos {
        println!("Binary Object Store Descriptor:");
        for cap in &bos.tree.capabilities {
            match cap {
                DeviceCapability::Usb20Extension(c) => println!(
                    "  USB 2.0 Extension: bmAttributes 0x{:08x}",
                    c.bm_attributes
                ),
                DeviceCapability::SuperSpeedUsb(c) => println!(
                    "  SuperSpeed USB: wSpeedsSupported 0x{:04x}",
                    c.w_speeds_supported
                ),
                DeviceCapability::ContainerId(c) => {
                    println!("  Container ID: {}", hex(&c.container_id))
                }
                DeviceCapability::Other(raw) => println!("  Capability: {}", hex(&raw.bytes)),
            }
        }
    }
}

fn to_json(busid: &str, speed: &str, tree: &DeviceTree) -> Value {
    let d = &tree.device;
    let configurations: Vec<Value> = tree
        .configurations
        .iter()
        .map(|config| {
            let c = &config.tree.configuration;
            json!({
                "bConfigurationValue": c.b_configuration_value,
                "wTotalLength": c.w_total_length,
                "bmAttributes": c.bm_attributes,
                "bMaxPower": c.b_max_power,
                "interfaces": config.tree.interfaces.iter().map(|alt| {
                    let i = &alt.descriptor;
                    json!({
                        "bInterfaceNumber": i.b_interface_number,
                        "bAlternateSetting": i.b_alternate_setting,
                        "bInterfaceClass": i.b_interface_class,
                        "bInterfaceSubClass": i.b_interface_sub_class,
                        "bInterfaceProtocol": i.b_interface_protocol,
                        "iInterface": string(tree, i.i_interface),
                        "endpoints": alt.endpoints.iter().map(|ep| json!({
                            "bEndpointAddress": format!("0x{:02x}", ep.descriptor.b_endpoint_address.0),
                            "type": transfer_name(ep.descriptor.transfer_type()),
                            "wMaxPacketSize": ep.descriptor.w_max_packet_size,
                            "bInterval": ep.descriptor.b_interval,
                            "bMaxBurst": ep.companion.map(|c| c.b_max_burst),
                        })).collect::<Vec<_>>(),
                    })
                }).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "busid": busid,
        "speed": speed,
        "device": {
            "bcdUSB": format!("{:04x}", d.bcd_usb),
            "idVendor": format!("{:04x}", d.id_vendor),
            "idProduct": format!("{:04x}", d.id_product),
            "bcdDevice": format!("{:04x}", d.bcd_device),
            "bDeviceClass": d.b_device_class,
            "bMaxPacketSize0": d.b_max_packet_size0,
            "manufacturer": string(tree, d.i_manufacturer),
            "product": string(tree, d.i_product),
            "serial": string(tree, d.i_serial_number),
            "bNumConfigurations": d.b_num_configurations,
        },
        "configurations": configurations,
        "bos": tree.bos.as_ref().map(|b| hex(&b.bytes)),
    })
}
