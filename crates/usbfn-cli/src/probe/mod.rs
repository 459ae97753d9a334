//! `usbfn probe`: import a device, enumerate it like a host, print its descriptors.

pub(crate) mod json;
pub(crate) mod lsusb;
mod names;

use anyhow::{Context, bail};
use usbfn_usbip::client;
use usbfn_usbip::proto::UsbSpeed;

use crate::list::{list_devices, within};

/// Arguments of `usbfn probe`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  usbfn probe                      # the first device of 127.0.0.1:3240
  usbfn probe localhost:3241 --busid 1-2
  usbfn probe --json | jq .device.idVendor")]
pub(crate) struct Args {
    /// Server, HOST[:PORT] (port 3240 by default).
    #[arg(default_value = "127.0.0.1")]
    server: String,
    /// The device to probe. [default: the first one listed]
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
    let super_speed = speed.0 >= UsbSpeed::SUPER.0;
    if args.json {
        let value = json::to_json(&busid, &speed.to_string(), super_speed, &tree);
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!(
            "{}",
            lsusb::render(&busid, &speed.to_string(), super_speed, &tree)
        );
    }
    Ok(())
}

fn is_no_such_device(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<client::ClientError>(),
        Some(client::ClientError::NoSuchDevice { .. })
    )
}

#[cfg(test)]
mod tests {
    use usbfn::{BusSpeed, DeviceConfig};

    use super::{json, lsusb};

    /// A boot keyboard: a HID interface with its HID class descriptor and an interrupt IN
    /// endpoint.
    pub(crate) const KEYBOARD: &str = r#"
        [device]
        vendor_id = 0x1209
        product_id = 0x0001
        manufacturer = "usbfn"
        product = "Keyboard"
        max_power_ma = 100
        [[interfaces]]
        name = "keyboard"
        class = 3
        subclass = 1
        protocol = 1
        class_descriptors = "09 21 11 01 00 01 22 3f 00"
        endpoints = [{ direction = "in", type = "interrupt", max_packet = 8, interval = 10 }]
    "#;

    async fn keyboard(speed: BusSpeed) -> (usbfn_usbip::client::DeviceTree, bool) {
        let config = DeviceConfig::from_toml(KEYBOARD).expect("toml");
        let (tree, s) = crate::local::enumerate(&config, speed)
            .await
            .expect("enumerates");
        (tree, s.0 >= 5)
    }

    #[tokio::test]
    async fn text_follows_lsusb() {
        let (tree, ss) = keyboard(BusSpeed::High).await;
        assert!(!ss);
        let text = lsusb::render("1-1", "high", ss, &tree);
        for expected in [
            "  bcdUSB               2.10\n",
            "  bDeviceClass            0 (Defined at Interface level)\n",
            "  idVendor           0x1209\n",
            "  iProduct                2 Keyboard\n",
            "    MaxPower              100mA\n",
            "      bInterfaceClass         3 Human Interface Device\n",
            "      bInterfaceSubClass      1 Boot Interface Subclass\n",
            "      bInterfaceProtocol      1 Keyboard\n",
            "      HID Device Descriptor:\n",
            "        bcdHID               1.11\n",
            "        bCountryCode            0 Not supported\n",
            "        bDescriptorType        34 Report\n",
            "        wDescriptorLength      63\n",
            "        bEndpointAddress     0x81  EP 1 IN\n",
            "          Transfer Type            Interrupt\n",
            "        wMaxPacketSize     0x0008  1x 8 bytes\n",
        ] {
            assert!(text.contains(expected), "{expected:?} missing in\n{text}");
        }
        assert!(!text.contains("UNRECOGNIZED"), "{text}");
    }

    #[tokio::test]
    async fn max_power_counts_8_ma_units_at_superspeed() {
        let (tree, ss) = keyboard(BusSpeed::Super).await;
        assert!(ss);
        let text = lsusb::render("1-1", "super", ss, &tree);
        // 100 mA asked for: bMaxPower 13 (104 mA) at SuperSpeed, never 26 mA.
        let line = text
            .lines()
            .find(|l| l.contains("MaxPower"))
            .expect("MaxPower line");
        let ma: u32 = line
            .trim()
            .trim_start_matches("MaxPower")
            .trim()
            .trim_end_matches("mA")
            .parse()
            .expect("a number");
        assert!((100..108).contains(&ma), "{line}");
    }

    /// Every value in `v`, with its path.
    fn walk<'a>(
        path: String,
        v: &'a serde_json::Value,
        out: &mut Vec<(String, &'a serde_json::Value)>,
    ) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    walk(format!("{path}.{k}"), x, out);
                }
            }
            serde_json::Value::Array(a) => {
                for x in a {
                    walk(format!("{path}[]"), x, out);
                }
            }
            other => out.push((path, other)),
        }
    }

    #[tokio::test]
    async fn json_has_numbers_as_numbers_and_every_device_field() {
        let (tree, ss) = keyboard(BusSpeed::High).await;
        let v = json::to_json("1-1", "high", ss, &tree);
        let d = &v["device"];
        for field in [
            "bLength",
            "bDescriptorType",
            "bcdUSB",
            "bDeviceClass",
            "bDeviceSubClass",
            "bDeviceProtocol",
            "bMaxPacketSize0",
            "idVendor",
            "idProduct",
            "bcdDevice",
            "iManufacturer",
            "iProduct",
            "iSerialNumber",
            "bNumConfigurations",
        ] {
            assert!(
                d[field].is_u64(),
                "device.{field} is a number: {}",
                d[field]
            );
        }
        assert_eq!(d["idVendor"], 0x1209);
        assert_eq!(d["bcdUSB"], 0x0210);
        let iface = &v["configurations"][0]["interfaces"][0];
        assert_eq!(iface["endpoints"][0]["bEndpointAddress"], 0x81);
        assert_eq!(iface["hid"]["descriptors"][0]["wDescriptorLength"], 63);
        assert_eq!(v["configurations"][0]["max_power_ma"], 100);
        // One type per field: no nulls, and a field named like a spec number field is a number.
        let mut leaves = Vec::new();
        walk(String::new(), &v, &mut leaves);
        for (path, value) in leaves {
            assert!(!value.is_null(), "{path} is null");
            let name = path.rsplit('.').next().unwrap_or_default();
            let spec_number = name.starts_with(['b', 'w', 'i', 'd'])
                && name.chars().nth(1).is_some_and(|c| c.is_ascii_uppercase())
                || name.starts_with("bcd")
                || name.starts_with("bm");
            if spec_number {
                assert!(value.is_u64(), "{path} = {value} is a number");
            }
        }
    }
}
