//! Descriptors generated from the model, per bus speed.
//!
//! Rules follow the Linux composite framework, which the kernel's own gadgets (and so the
//! usbtest reference) use: `bcdUSB` 0x0320 at SuperSpeed, 0x0210 below it when the device can
//! do SuperSpeed or LPM (0x0200 otherwise, or the configured value); a device qualifier and
//! other-speed configurations only at full and high speed of a high-speed capable device; a
//! BOS descriptor whenever `bcdUSB` >= 0x0201.

use usbfn_wire::{
    BosDescriptor, ConfigurationDescriptor, DescriptorType, DeviceDescriptor,
    DeviceQualifierDescriptor, InterfaceAssociationDescriptor, InterfaceDescriptor,
    SuperSpeedEndpointCompanion, SuperSpeedUsbCapability, Usb20ExtensionCapability,
};

use crate::model::{DeviceModel, InterfaceModel};
use crate::types::BusSpeed;

/// Every descriptor the device answers GET_DESCRIPTOR with, at one speed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DescriptorSet {
    /// The speed these were generated for.
    pub speed: BusSpeed,
    /// DEVICE.
    pub device: Vec<u8>,
    /// CONFIGURATION, by index (not value).
    pub configurations: Vec<Vec<u8>>,
    /// OTHER_SPEED_CONFIGURATION, by index (empty when not applicable).
    pub other_speed: Vec<Vec<u8>>,
    /// DEVICE_QUALIFIER, when applicable.
    pub qualifier: Option<Vec<u8>>,
    /// BOS, when applicable.
    pub bos: Option<Vec<u8>>,
}

/// A generated descriptor does not fit its 16-bit length field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the {what} would be {len} bytes, more than wTotalLength can express (65535)")]
pub struct DescriptorTooLong {
    /// Which descriptor.
    pub what: &'static str,
    /// Its length.
    pub len: usize,
}

impl DeviceModel {
    /// `bcdUSB` reported at `speed`.
    pub fn bcd_usb(&self, speed: BusSpeed) -> u16 {
        if speed == BusSpeed::Super {
            return 0x0320;
        }
        self.device.bcd_usb.unwrap_or(
            // MS OS 2.0 descriptors live in the BOS, which needs bcdUSB 2.01 or more.
            if self.device.max_speed == BusSpeed::Super
                || self.device.lpm
                || self.ms_os_vendor_code().is_some()
            {
                0x0210
            } else {
                0x0200
            },
        )
    }

    /// `bMaxPacketSize0` at `speed` (the exponent 9 at SuperSpeed).
    pub fn max_packet0_field(&self, speed: BusSpeed) -> u8 {
        match speed {
            BusSpeed::Full => self.device.max_packet_size0,
            BusSpeed::High => 64,
            BusSpeed::Super => 9,
        }
    }

    /// EP0's packet size in bytes at `speed`.
    pub fn max_packet0(&self, speed: BusSpeed) -> u16 {
        match speed {
            BusSpeed::Super => 512,
            _ => u16::from(self.max_packet0_field(speed)),
        }
    }

    /// The DEVICE descriptor at `speed`.
    pub fn device_descriptor(&self, speed: BusSpeed) -> DeviceDescriptor {
        let d = &self.device;
        DeviceDescriptor {
            bcd_usb: self.bcd_usb(speed),
            b_device_class: d.class,
            b_device_sub_class: d.subclass,
            b_device_protocol: d.protocol,
            b_max_packet_size0: self.max_packet0_field(speed),
            id_vendor: d.vendor_id,
            id_product: d.product_id,
            bcd_device: d.bcd_device,
            i_manufacturer: self.i_manufacturer,
            i_product: self.i_product,
            i_serial_number: self.i_serial,
            // Fits: at most MAX_CONFIGURATIONS (12), checked by DeviceModel::build.
            b_num_configurations: u8::try_from(self.configurations.len()).unwrap_or(u8::MAX),
        }
    }

    /// Generate the descriptor set for `speed`.
    pub fn descriptor_set(&self, speed: BusSpeed) -> Result<DescriptorSet, DescriptorTooLong> {
        let dual = self.device.max_speed >= BusSpeed::High && speed != BusSpeed::Super;
        let mut configurations = Vec::new();
        let mut other_speed = Vec::new();
        for index in 0..self.configurations.len() {
            configurations.push(self.configuration_descriptor(
                index,
                speed,
                DescriptorType::CONFIGURATION,
            )?);
            if dual {
                let other = if speed == BusSpeed::High {
                    BusSpeed::Full
                } else {
                    BusSpeed::High
                };
                other_speed.push(self.configuration_descriptor(
                    index,
                    other,
                    DescriptorType::OTHER_SPEED_CONFIGURATION,
                )?);
            }
        }
        let qualifier = dual.then(|| {
            let other = if speed == BusSpeed::High {
                BusSpeed::Full
            } else {
                BusSpeed::High
            };
            let d = &self.device;
            DeviceQualifierDescriptor {
                bcd_usb: self.bcd_usb(other),
                b_device_class: d.class,
                b_device_sub_class: d.subclass,
                b_device_protocol: d.protocol,
                b_max_packet_size0: self.max_packet0_field(other),
                // Fits: at most MAX_CONFIGURATIONS (12).
                b_num_configurations: u8::try_from(self.configurations.len()).unwrap_or(u8::MAX),
            }
            .to_bytes()
        });
        let bos = (self.bcd_usb(speed) >= 0x0201).then(|| self.bos_descriptor());
        Ok(DescriptorSet {
            speed,
            device: self.device_descriptor(speed).to_bytes(),
            configurations,
            other_speed,
            qualifier,
            bos,
        })
    }

    /// The BOS descriptor: USB 2.0 extension (LPM bit as configured) and, for a
    /// SuperSpeed-capable device, the SuperSpeed USB capability.
    pub fn bos_descriptor(&self) -> Vec<u8> {
        let mut caps = Vec::new();
        let lpm = self.device.lpm || self.device.max_speed == BusSpeed::Super;
        caps.extend(
            Usb20ExtensionCapability {
                bm_attributes: if lpm { 0x02 } else { 0 },
            }
            .to_bytes(),
        );
        let mut count = 1u8;
        if self.device.max_speed == BusSpeed::Super {
            caps.extend(
                SuperSpeedUsbCapability {
                    bm_attributes: 0,
                    w_speeds_supported: 0x000e, // full, high and SuperSpeed
                    b_functionality_support: 1, // full speed is the lowest with all functionality
                    b_u1_dev_exit_lat: 0x0a,
                    w_u2_dev_exit_lat: 0x07ff,
                }
                .to_bytes(),
            );
            count += 1;
        }
        if let Some(platform) = self.ms_os20_platform_capability() {
            caps.extend(platform);
            count += 1;
        }
        // Fits: at most three capabilities (USB 2.0 extension 7, SuperSpeed 10, MS OS 2.0
        // platform 28 bytes).
        let total = u16::try_from(BosDescriptor::LENGTH + caps.len()).unwrap_or(u16::MAX);
        let mut out = BosDescriptor {
            w_total_length: total,
            b_num_device_caps: count,
        }
        .to_bytes();
        out.extend(caps);
        out
    }

    /// CONFIGURATION (or OTHER_SPEED_CONFIGURATION) descriptor `index` with every interface,
    /// association and endpoint at `speed`.
    pub fn configuration_descriptor(
        &self,
        index: usize,
        speed: BusSpeed,
        descriptor_type: DescriptorType,
    ) -> Result<Vec<u8>, DescriptorTooLong> {
        let Some(config) = self.configurations.get(index) else {
            return Ok(Vec::new());
        };
        let d = &self.device;
        let mut attributes = ConfigurationDescriptor::ATTR_RESERVED_ONE;
        if d.self_powered {
            attributes |= ConfigurationDescriptor::ATTR_SELF_POWERED;
        }
        if d.remote_wakeup {
            attributes |= ConfigurationDescriptor::ATTR_REMOTE_WAKEUP;
        }
        let unit = if speed == BusSpeed::Super { 8 } else { 2 };
        // Fits: max_power_ma is at most 500 (900 at SuperSpeed, in 8 mA units), checked by
        // DeviceModel::build.
        let max_power = u8::try_from(d.max_power_ma.div_ceil(unit)).unwrap_or(u8::MAX);
        let mut body = Vec::new();
        for &f in &config.interfaces {
            let Some(iface) = self.interfaces.get(f.0) else {
                continue;
            };
            if let Some(a) = config
                .associations
                .iter()
                .find(|a| a.first_interface == iface.number)
            {
                body.extend(
                    InterfaceAssociationDescriptor {
                        b_first_interface: a.first_interface,
                        b_interface_count: a.interface_count,
                        b_function_class: a.class.0,
                        b_function_sub_class: a.class.1,
                        b_function_protocol: a.class.2,
                        i_function: a.i_function,
                    }
                    .to_bytes(),
                );
            }
            body.extend(interface_descriptors(iface, speed));
        }
        let len = ConfigurationDescriptor::LENGTH + body.len();
        let total = u16::try_from(len).map_err(|_| DescriptorTooLong {
            what: "configuration descriptor",
            len,
        })?;
        let header = ConfigurationDescriptor {
            w_total_length: total,
            // Fits: at most MAX_INTERFACES_PER_CONFIGURATION (255), checked by
            // DeviceModel::build.
            b_num_interfaces: u8::try_from(config.interfaces.len()).unwrap_or(u8::MAX),
            b_configuration_value: config.value,
            i_configuration: config.i_configuration,
            bm_attributes: attributes,
            b_max_power: max_power,
        };
        let mut out = header.to_bytes();
        if let Some(kind) = out.get_mut(1) {
            *kind = descriptor_type.0;
        }
        out.extend(body);
        Ok(out)
    }

    /// `GET_INTERFACE_DESCRIPTOR_SET`: an interface's descriptors (every alternate setting,
    /// endpoints and class-specific descriptors) at `speed`.
    pub fn interface_descriptor_set(&self, number: u8, speed: BusSpeed) -> Option<Vec<u8>> {
        let iface = self.interfaces.iter().find(|i| i.number == number)?;
        Some(interface_descriptors(iface, speed))
    }
}

/// One interface's descriptors at `speed`: each alternate with its class-specific
/// descriptors, endpoints, SuperSpeed companions and endpoint class descriptors.
fn interface_descriptors(iface: &InterfaceModel, speed: BusSpeed) -> Vec<u8> {
    let mut out = Vec::new();
    for (alt_number, alt) in iface.alternates.iter().enumerate() {
        out.extend(
            InterfaceDescriptor {
                b_interface_number: iface.number,
                // Fit: at most 256 alternate settings (numbers 0..=255) and 15 endpoints per
                // direction in one, checked by DeviceModel::build.
                b_alternate_setting: u8::try_from(alt_number).unwrap_or(u8::MAX),
                b_num_endpoints: u8::try_from(alt.endpoints.len()).unwrap_or(u8::MAX),
                b_interface_class: alt.class.0,
                b_interface_sub_class: alt.class.1,
                b_interface_protocol: alt.class.2,
                i_interface: alt.i_interface,
            }
            .to_bytes(),
        );
        out.extend_from_slice(&alt.class_descriptors);
        for ep in &alt.endpoints {
            out.extend(ep.descriptor(speed).to_bytes());
            if speed == BusSpeed::Super {
                out.extend(
                    SuperSpeedEndpointCompanion {
                        b_max_burst: ep.max_burst,
                        bm_attributes: ep.ss_attributes,
                        w_bytes_per_interval: ep.bytes_per_interval,
                    }
                    .to_bytes(),
                );
            }
            out.extend_from_slice(&ep.class_descriptors);
        }
    }
    out
}
