//! The device configuration: the TOML twin of the GenericUSBFn registry keys.
//!
//! | registry (`HKLM\...\Control\USBFN`) | here |
//! |---|---|
//! | `idVendor`, `idProduct`, `ManufacturerString`, `ProductString`, `iSerialNumber` | `[device]` |
//! | `Configurations\<name>\InterfaceList` | `[[configurations]]` `interfaces = [...]` |
//! | `Interfaces\<name>` (`InterfaceDescriptor`, `InterfaceGUID`, `InterfaceNumber`) | `[[interfaces]]` (`descriptor`, `guid`, `number`) |
//! | `Alternates\<name>\InterfaceList` (index = alternate setting) | `[[interfaces.alternates]]` (alternate 1, 2, ...) |
//! | `Associations\<name>` | `[[associations]]` |
//!
//! An interface declares alternate setting 0 with its own fields (`class`, `endpoints`, ...)
//! or with a raw `descriptor` blob as the registry stores it; alternates 1.. follow in
//! `alternates`. Endpoint packet sizes and intervals may be given once or per speed.
//!
//! ```toml
//! [device]
//! vendor_id = 0x0525
//! product_id = 0xa4a0
//! manufacturer = "usbfn"
//! product = "Gadget Zero"
//!
//! [[interfaces]]
//! name = "source-sink"
//! guid = "{6c5b3f5e-0d6f-4b0e-9a59-0a5c3b0e7d11}"
//! class = 0xff
//! [[interfaces.endpoints]]
//! direction = "in"
//! type = "bulk"
//! [[interfaces.endpoints]]
//! direction = "out"
//! type = "bulk"
//! ```
//!
//! Parsing only checks the shape; [`crate::model::DeviceModel::build`] validates meaning and
//! names the field that is wrong.

use serde::{Deserialize, Serialize};

use crate::types::BusSpeed;

/// A whole device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// Device descriptor fields and strings.
    pub device: DeviceSection,
    /// Configurations; empty means one configuration holding every interface.
    #[serde(default)]
    pub configurations: Vec<ConfigurationSection>,
    /// Interfaces, each opened by one service.
    #[serde(default)]
    pub interfaces: Vec<InterfaceSection>,
    /// Interface associations (IADs).
    #[serde(default)]
    pub associations: Vec<AssociationSection>,
    /// Control-pipe behaviour.
    #[serde(default)]
    pub control: ControlSection,
}

/// `[device]`: the device descriptor and the strings it names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSection {
    /// `idVendor`.
    #[doc(alias = "idVendor")]
    pub vendor_id: u16,
    /// `idProduct`.
    #[doc(alias = "idProduct")]
    pub product_id: u16,
    /// `bcdDevice`.
    #[doc(alias = "bcdDevice")]
    #[serde(default = "default_bcd_device")]
    pub bcd_device: u16,
    /// `bDeviceClass` (0: per interface).
    #[doc(alias = "bDeviceClass")]
    #[serde(default)]
    pub class: u8,
    /// `bDeviceSubClass`.
    #[serde(default)]
    pub subclass: u8,
    /// `bDeviceProtocol`.
    #[serde(default)]
    pub protocol: u8,
    /// `iManufacturer` string.
    #[serde(default)]
    pub manufacturer: Option<String>,
    /// `iProduct` string.
    #[serde(default)]
    pub product: Option<String>,
    /// `iSerialNumber` string (none: index 0).
    #[serde(default)]
    pub serial: Option<String>,
    /// bmAttributes self-powered bit.
    #[serde(default)]
    pub self_powered: bool,
    /// bMaxPower in milliamperes.
    #[serde(default = "default_max_power")]
    pub max_power_ma: u16,
    /// bmAttributes remote-wakeup bit.
    #[serde(default)]
    pub remote_wakeup: bool,
    /// `bcdUSB` below SuperSpeed; default 0x0210 when the device supports SuperSpeed or LPM,
    /// 0x0200 otherwise. At SuperSpeed it is always 0x0320.
    #[doc(alias = "bcdUSB")]
    #[serde(default)]
    pub bcd_usb: Option<u16>,
    /// `bMaxPacketSize0` at full speed (8, 16, 32 or 64); 64 at high speed, 512 at SuperSpeed.
    #[doc(alias = "bMaxPacketSize0")]
    #[serde(default = "default_max_packet0")]
    pub max_packet_size0: u8,
    /// The fastest speed the device offers.
    #[serde(default = "default_max_speed")]
    pub max_speed: BusSpeed,
    /// USB 2.0 Link Power Management, advertised in the BOS USB 2.0 extension.
    #[serde(default)]
    pub lpm: bool,
    /// The string LANGID.
    #[serde(default = "default_language")]
    pub language_id: u16,
    /// `bMS_VendorCode` of the Microsoft OS 2.0 descriptors, when an interface has a
    /// `compatible_id` (default 0x20): Windows asks for the descriptor set with this vendor
    /// request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ms_os_vendor_code: Option<u8>,
}

/// `[[configurations]]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigurationSection {
    /// `bConfigurationValue` (default: position + 1).
    #[serde(default)]
    pub value: Option<u8>,
    /// `iConfiguration` string.
    #[serde(default)]
    pub name: Option<String>,
    /// The interfaces, by `name`, in this configuration.
    pub interfaces: Vec<String>,
}

/// `[[interfaces]]`: one interface with its alternate settings, opened by one service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterfaceSection {
    /// Unique name, used by configurations and associations and as the service's
    /// `InterfaceName`.
    pub name: String,
    /// `InterfaceGUID`, `{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}`.
    #[serde(default)]
    pub guid: Option<String>,
    /// A fixed `bInterfaceNumber` (`InterfaceNumber`); otherwise the lowest free number.
    #[serde(default)]
    pub number: Option<u8>,
    /// Device-recipient vendor and class requests go to this interface's service.
    #[serde(default)]
    pub device_request_owner: bool,
    /// Microsoft OS 2.0 compatible ID (`"WINUSB"`, up to 8 ASCII characters): Windows binds
    /// that driver to the interface without an INF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compatible_id: Option<String>,
    // Alternate setting 0's fields repeat `AlternateSection`'s on purpose: serde cannot
    // combine `#[serde(flatten)]` with `deny_unknown_fields`, and a misspelt field must be an
    // error. `setting0()` gathers them back into an `AlternateSection`.
    /// Alternate setting 0: `bInterfaceClass`.
    #[serde(default)]
    pub class: Option<u8>,
    /// Alternate setting 0: `bInterfaceSubClass`.
    #[serde(default)]
    pub subclass: Option<u8>,
    /// Alternate setting 0: `bInterfaceProtocol`.
    #[serde(default)]
    pub protocol: Option<u8>,
    /// Alternate setting 0: `iInterface` string.
    #[serde(default)]
    pub string: Option<String>,
    /// Alternate setting 0: class-specific descriptors after the interface descriptor (hex).
    #[serde(default)]
    pub class_descriptors: Option<String>,
    /// Alternate setting 0: endpoints.
    #[serde(default)]
    pub endpoints: Vec<EndpointSection>,
    /// Alternate setting 0 in the registry form (see [`AlternateSection::descriptor`]).
    #[serde(default)]
    pub descriptor: Option<String>,
    /// Alternate settings 1, 2, ...
    #[serde(default)]
    pub alternates: Vec<AlternateSection>,
}

impl InterfaceSection {
    /// Alternate setting 0, gathered from the interface's own fields.
    pub fn setting0(&self) -> AlternateSection {
        AlternateSection {
            class: self.class,
            subclass: self.subclass,
            protocol: self.protocol,
            string: self.string.clone(),
            class_descriptors: self.class_descriptors.clone(),
            endpoints: self.endpoints.clone(),
            descriptor: self.descriptor.clone(),
        }
    }

    /// Every alternate setting, 0 first.
    pub fn settings(&self) -> Vec<AlternateSection> {
        std::iter::once(self.setting0())
            .chain(self.alternates.iter().cloned())
            .collect()
    }
}

/// One alternate setting: either fields, or the registry's raw `InterfaceDescriptor` blob.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlternateSection {
    /// `bInterfaceClass`.
    #[serde(default)]
    pub class: Option<u8>,
    /// `bInterfaceSubClass`.
    #[serde(default)]
    pub subclass: Option<u8>,
    /// `bInterfaceProtocol`.
    #[serde(default)]
    pub protocol: Option<u8>,
    /// `iInterface` string.
    #[serde(default)]
    pub string: Option<String>,
    /// Class-specific descriptors placed after the interface descriptor, as hex bytes.
    #[serde(default)]
    pub class_descriptors: Option<String>,
    /// Endpoints.
    #[serde(default)]
    pub endpoints: Vec<EndpointSection>,
    /// The registry form: interface + endpoint (+ class-specific) descriptors as hex bytes;
    /// bInterfaceNumber and iInterface are filled in. Excludes the fields above.
    #[serde(default)]
    pub descriptor: Option<String>,
}

/// `[[interfaces.endpoints]]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSection {
    /// `bEndpointAddress`; if absent, `direction` is required and the number is allocated.
    #[serde(default)]
    pub address: Option<u8>,
    /// `in` or `out`, when `address` is absent.
    #[serde(default)]
    pub direction: Option<DirectionName>,
    /// Transfer type.
    #[serde(rename = "type")]
    pub transfer_type: TransferTypeName,
    /// wMaxPacketSize (with the high-bandwidth bits for high speed), once or per speed;
    /// default: the largest legal size for the type at each speed.
    #[serde(default)]
    pub max_packet: Option<PerSpeed<u16>>,
    /// bInterval, once or per speed (default: 1 for interrupt/iso, 0 for bulk).
    #[serde(default)]
    pub interval: Option<PerSpeed<u8>>,
    /// SuperSpeed companion `bMaxBurst` (0..=15).
    #[serde(default)]
    pub max_burst: u8,
    /// SuperSpeed companion `bmAttributes` (bulk streams or iso Mult).
    #[serde(default)]
    pub ss_attributes: u8,
    /// SuperSpeed companion `wBytesPerInterval` (periodic endpoints; default max packet ×
    /// (burst + 1)).
    #[serde(default)]
    pub bytes_per_interval: Option<u16>,
    /// Isochronous synchronisation and usage bits (bmAttributes bits 2..5).
    #[serde(default)]
    pub iso_attributes: u8,
    /// Class-specific endpoint descriptors placed after the endpoint descriptor, as hex bytes.
    #[serde(default)]
    pub class_descriptors: Option<String>,
}

impl EndpointSection {
    /// An endpoint of `transfer_type` at `address` (or, with `None`, numbered automatically
    /// in `direction`), with the defaults for everything else: packet size and interval per
    /// speed, no burst, no class descriptors.
    pub fn new(
        address: Option<u8>,
        direction: Option<DirectionName>,
        transfer_type: TransferTypeName,
    ) -> Self {
        EndpointSection {
            address,
            direction,
            transfer_type,
            max_packet: None,
            interval: None,
            max_burst: 0,
            ss_attributes: 0,
            bytes_per_interval: None,
            iso_attributes: 0,
            class_descriptors: None,
        }
    }
}

/// `in` / `out`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DirectionName {
    /// Device to host.
    In,
    /// Host to device.
    Out,
}

/// Data endpoint transfer types.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransferTypeName {
    /// Bulk.
    Bulk,
    /// Interrupt.
    Interrupt,
    /// Isochronous.
    #[serde(alias = "iso")]
    Isochronous,
}

/// A value given once for every speed, or per speed.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PerSpeed<T> {
    /// The same at every speed.
    All(T),
    /// Per speed; a missing speed takes the default.
    Each {
        /// Full speed.
        #[serde(default)]
        full: Option<T>,
        /// High speed.
        #[serde(default)]
        high: Option<T>,
        /// SuperSpeed.
        #[serde(default, rename = "super")]
        super_: Option<T>,
    },
}

impl<T: Copy> PerSpeed<T> {
    /// The value for `speed`, if given.
    pub fn get(&self, speed: BusSpeed) -> Option<T> {
        match *self {
            PerSpeed::All(v) => Some(v),
            PerSpeed::Each { full, high, super_ } => match speed {
                BusSpeed::Full => full,
                BusSpeed::High => high,
                BusSpeed::Super => super_,
            },
        }
    }
}

/// `[[associations]]`: an interface association descriptor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssociationSection {
    /// Two or more interfaces, by name, with consecutive numbers.
    pub interfaces: Vec<String>,
    /// `bFunctionClass`.
    pub class: u8,
    /// `bFunctionSubClass`.
    #[serde(default)]
    pub subclass: u8,
    /// `bFunctionProtocol`.
    #[serde(default)]
    pub protocol: u8,
    /// `iFunction` string.
    #[serde(default)]
    pub string: Option<String>,
}

/// `[control]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlSection {
    /// A setup packet forwarded to a service that does not answer within this time is
    /// STALLed, so the host never hangs.
    #[serde(default = "default_setup_timeout")]
    pub setup_timeout_ms: u64,
}

impl Default for ControlSection {
    fn default() -> Self {
        ControlSection {
            setup_timeout_ms: default_setup_timeout(),
        }
    }
}

fn default_bcd_device() -> u16 {
    0x0100
}
fn default_max_power() -> u16 {
    100
}
fn default_max_packet0() -> u8 {
    64
}
fn default_max_speed() -> BusSpeed {
    BusSpeed::Super
}
fn default_language() -> u16 {
    0x0409
}
fn default_setup_timeout() -> u64 {
    5000
}

/// Errors reading a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The TOML did not parse or did not match the schema.
    #[error("configuration is not valid TOML for usbfn: {0}")]
    Toml(#[from] toml::de::Error),
    /// The configuration parsed but is not a valid device.
    #[error(transparent)]
    Invalid(#[from] crate::model::ValidationError),
}

impl DeviceConfig {
    /// Parse TOML text (shape only; see [`crate::model::DeviceModel::build`]).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        Ok(toml::from_str(text)?)
    }

    /// Serialize to TOML.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string_pretty(self)
    }
}

/// Bytes as the hex text `class_descriptors` and `descriptor` take (`05 24 06 00 01`).
pub fn to_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The bytes of hex text as `class_descriptors` and `descriptor` take it (whitespace, commas
/// or colons between bytes; `0x` prefixes allowed).
pub use crate::model::parse_hex;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_module_example() {
        let text = r#"
            [device]
            vendor_id = 0x0525
            product_id = 0xa4a0
            manufacturer = "usbfn"
            product = "Gadget Zero"

            [[interfaces]]
            name = "source-sink"
            guid = "{6c5b3f5e-0d6f-4b0e-9a59-0a5c3b0e7d11}"
            class = 0xff
            [[interfaces.endpoints]]
            direction = "in"
            type = "bulk"
            max_packet = { full = 64, high = 512 }
            [[interfaces.endpoints]]
            direction = "out"
            type = "bulk"
            max_packet = 512
        "#;
        let cfg = DeviceConfig::from_toml(text).expect("parses");
        assert_eq!(cfg.device.vendor_id, 0x0525);
        assert_eq!(cfg.device.max_speed, BusSpeed::Super);
        let eps = &cfg.interfaces[0].endpoints;
        assert_eq!(
            eps[0].max_packet.and_then(|m| m.get(BusSpeed::High)),
            Some(512)
        );
        assert_eq!(eps[0].max_packet.and_then(|m| m.get(BusSpeed::Super)), None);
        assert_eq!(
            eps[1].max_packet.and_then(|m| m.get(BusSpeed::Super)),
            Some(512)
        );
        assert_eq!(cfg.control.setup_timeout_ms, 5000);
        let again = DeviceConfig::from_toml(&cfg.to_toml().expect("serializes")).expect("reparses");
        assert_eq!(again, cfg);
    }

    #[test]
    fn unknown_fields_are_errors_that_name_them() {
        let err =
            DeviceConfig::from_toml("[device]\nvendor_id = 1\nproduct_id = 2\nvendorid = 3\n")
                .expect_err("unknown field");
        assert!(err.to_string().contains("vendorid"), "{err}");
    }

    #[test]
    fn out_of_range_numbers_are_errors() {
        let err = DeviceConfig::from_toml("[device]\nvendor_id = 0x10000\nproduct_id = 2\n")
            .expect_err("too large for u16");
        assert!(err.to_string().contains("vendor_id"), "{err}");
    }
}
