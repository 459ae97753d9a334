//! `probe --json`: the descriptors under their spec field names, every number a JSON number,
//! every field always of one type (strings for string descriptors, `""` when the index is 0);
//! objects that a device may not have (the SuperSpeed companion, the BOS, the HID descriptor)
//! are left out rather than `null`.

use serde_json::{Map, Value, json};
use usbfn_usbip::client::DeviceTree;
use usbfn_wire::{EndpointInfo, InterfaceAlt};

use super::lsusb::{HidDescriptor, hex, string, transfer_name};

/// The whole device as JSON.
pub(crate) fn to_json(busid: &str, speed: &str, super_speed: bool, tree: &DeviceTree) -> Value {
    let d = &tree.device;
    let unit = if super_speed { 8 } else { 2 };
    let configurations: Vec<Value> = tree
        .configurations
        .iter()
        .map(|config| {
            let c = &config.tree.configuration;
            json!({
                "bLength": 9,
                "bDescriptorType": 2,
                "wTotalLength": c.w_total_length,
                "bNumInterfaces": c.b_num_interfaces,
                "bConfigurationValue": c.b_configuration_value,
                "iConfiguration": c.i_configuration,
                "configuration": string(tree, c.i_configuration),
                "bmAttributes": c.bm_attributes,
                "bMaxPower": c.b_max_power,
                "max_power_ma": u32::from(c.b_max_power) * unit,
                "associations": config.tree.associations.iter().map(|a| json!({
                    "bFirstInterface": a.b_first_interface,
                    "bInterfaceCount": a.b_interface_count,
                    "bFunctionClass": a.b_function_class,
                    "bFunctionSubClass": a.b_function_sub_class,
                    "bFunctionProtocol": a.b_function_protocol,
                    "iFunction": a.i_function,
                    "function": string(tree, a.i_function),
                })).collect::<Vec<_>>(),
                "interfaces": config.tree.interfaces.iter().map(|alt| interface(tree, alt)).collect::<Vec<_>>(),
            })
        })
        .collect();
    let mut out = json!({
        "busid": busid,
        "speed": speed,
        "device": {
            "bLength": 18,
            "bDescriptorType": 1,
            "bcdUSB": d.bcd_usb,
            "bDeviceClass": d.b_device_class,
            "bDeviceSubClass": d.b_device_sub_class,
            "bDeviceProtocol": d.b_device_protocol,
            "bMaxPacketSize0": d.b_max_packet_size0,
            "idVendor": d.id_vendor,
            "idProduct": d.id_product,
            "bcdDevice": d.bcd_device,
            "iManufacturer": d.i_manufacturer,
            "iProduct": d.i_product,
            "iSerialNumber": d.i_serial_number,
            "bNumConfigurations": d.b_num_configurations,
            "manufacturer": string(tree, d.i_manufacturer),
            "product": string(tree, d.i_product),
            "serial": string(tree, d.i_serial_number),
        },
        "configurations": configurations,
    });
    if let (Some(bos), Some(map)) = (&tree.bos, out.as_object_mut()) {
        map.insert(
            "bos".into(),
            json!({
                "wTotalLength": bos.tree.bos.w_total_length,
                "bNumDeviceCaps": bos.tree.bos.b_num_device_caps,
                "bytes": hex(&bos.bytes),
            }),
        );
    }
    out
}

fn interface(tree: &DeviceTree, alt: &InterfaceAlt) -> Value {
    let i = &alt.descriptor;
    let mut map = Map::new();
    for (k, v) in [
        ("bInterfaceNumber", i.b_interface_number),
        ("bAlternateSetting", i.b_alternate_setting),
        ("bNumEndpoints", i.b_num_endpoints),
        ("bInterfaceClass", i.b_interface_class),
        ("bInterfaceSubClass", i.b_interface_sub_class),
        ("bInterfaceProtocol", i.b_interface_protocol),
        ("iInterface", i.i_interface),
    ] {
        map.insert(k.into(), v.into());
    }
    map.insert("interface".into(), string(tree, i.i_interface).into());
    if let Some(h) = alt.extra.iter().find_map(HidDescriptor::parse) {
        map.insert(
            "hid".into(),
            json!({
                "bcdHID": h.bcd_hid,
                "bCountryCode": h.country_code,
                "descriptors": h.descriptors.iter().map(|(t, len)| json!({
                    "bDescriptorType": t, "wDescriptorLength": len,
                })).collect::<Vec<_>>(),
            }),
        );
    }
    map.insert(
        "class_descriptors".into(),
        alt.extra
            .iter()
            .map(|e| Value::from(hex(&e.bytes)))
            .collect::<Vec<_>>()
            .into(),
    );
    map.insert(
        "endpoints".into(),
        alt.endpoints
            .iter()
            .map(endpoint)
            .collect::<Vec<_>>()
            .into(),
    );
    Value::Object(map)
}

fn endpoint(ep: &EndpointInfo) -> Value {
    let e = &ep.descriptor;
    let mut v = json!({
        "bEndpointAddress": e.b_endpoint_address.0,
        "bmAttributes": e.bm_attributes,
        "type": transfer_name(e.transfer_type()),
        "wMaxPacketSize": e.w_max_packet_size,
        "max_packet_size": e.max_packet_size(),
        "bInterval": e.b_interval,
    });
    if let (Some(c), Some(map)) = (&ep.companion, v.as_object_mut()) {
        map.insert(
            "companion".into(),
            json!({
                "bMaxBurst": c.b_max_burst,
                "bmAttributes": c.bm_attributes,
                "wBytesPerInterval": c.w_bytes_per_interval,
            }),
        );
    }
    v
}
