//! `config_toml`: a device configuration file, as `usbfn serve --config` reads it.
//!
//! Text that parses and validates builds a device; then every descriptor the device would
//! answer with must parse back with `usbfn-wire` (what a host will do with it), the class
//! information of every interface must be there, and the configuration must survive a
//! TOML round trip.

use usbfn_core::{BusSpeed, Device, DeviceConfig, DeviceModel, FunctionId};
use usbfn_wire::{BosTree, ConfigurationTree, DeviceDescriptor, DeviceQualifierDescriptor};

/// Parse, validate and build `data` (UTF-8 only: the CLI reads files as strings).
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = DeviceConfig::from_toml(text) else {
        return;
    };
    if let Ok(again) = config.to_toml() {
        let reparsed = DeviceConfig::from_toml(&again).expect("serialized configuration parses");
        assert_eq!(
            reparsed, config,
            "TOML round trip changed the configuration"
        );
    }
    let Ok(model) = DeviceModel::build(&config) else {
        return;
    };
    let functions = model.interfaces().len();
    let Ok(device) = Device::new(model, std::time::Instant::now()) else {
        return;
    };
    for speed in BusSpeed::ALL {
        let set = device.descriptors(speed);
        DeviceDescriptor::parse(&set.device).expect("generated DEVICE descriptor parses");
        for c in &set.configurations {
            ConfigurationTree::parse(c).expect("generated CONFIGURATION parses");
        }
        for c in &set.other_speed {
            ConfigurationTree::parse_other_speed(c).expect("generated OTHER_SPEED parses");
        }
        if let Some(q) = &set.qualifier {
            DeviceQualifierDescriptor::parse(q).expect("generated DEVICE_QUALIFIER parses");
        }
        if let Some(b) = &set.bos {
            BosTree::parse(b).expect("generated BOS parses");
        }
    }
    for f in 0..functions {
        let info = device
            .class_info(FunctionId(f))
            .expect("class info of a real function");
        for speed in BusSpeed::ALL {
            let _ = device.interface_descriptor_set(info.at(speed).interface_number, speed);
        }
    }
}
