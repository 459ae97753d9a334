//! The validated device: what a [`DeviceConfig`] means, with every number assigned.
//!
//! [`DeviceModel::build`] is the only place that allocates interface numbers, endpoint
//! numbers, pipe ids and string indexes. Everything after it (descriptors, chapter 9, pipes)
//! reads the model and never fails on its contents.

use std::collections::BTreeMap;
use std::time::Duration;

use usbfn_wire::{EndpointAddress, EndpointDescriptor, TransferType};

use crate::config::{DeviceConfig, DeviceSection};
use crate::types::{BusSpeed, FunctionId, PipeId};

mod build;
mod endpoint;

pub use endpoint::parse_hex;

pub use endpoint::default_max_packet;
pub(crate) use endpoint::{check_descriptor_chain, endpoint_for_registry};

/// `MAX_NUM_USBFN_ENDPOINTS`: data endpoints a GenericUSBFn device may have.
pub const MAX_ENDPOINTS: usize = usbfn_abi::MAX_NUM_USBFN_ENDPOINTS;
/// `MAX_SUPPORTED_CONFIGURATIONS`.
pub const MAX_CONFIGURATIONS: usize = usbfn_abi::MAX_SUPPORTED_CONFIGURATIONS;
/// Interfaces in one configuration: `bNumInterfaces` is one byte.
pub const MAX_INTERFACES_PER_CONFIGURATION: usize = 255;
/// Longest USB string in UTF-16 code units (a string descriptor's 254 payload bytes).
pub const MAX_STRING_UNITS: usize = 126;
/// Longest interface name: `MAX_INTERFACE_NAME_LENGTH` less the NUL.
pub const MAX_INTERFACE_NAME: usize = usbfn_abi::MAX_INTERFACE_NAME_LENGTH - 1;

/// A configuration that is not a valid device, with the field at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {field}: {problem}")]
pub struct ValidationError {
    /// Where, as a TOML path with 1-based indexes (the entries as a person counts them in
    /// the file), e.g. `interfaces[1] "source-sink".endpoints[2].max_packet (high)`; the
    /// first `[[interfaces.alternates]]` is `alternates[1]`, alternate setting 1.
    pub field: String,
    /// What is wrong.
    pub problem: Problem,
}

/// What is wrong with a configuration field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// A value outside what USB or GenericUSBFn allows.
    #[error("{value} is not allowed: {allowed}")]
    Illegal {
        /// The value given.
        value: String,
        /// What would be allowed.
        allowed: &'static str,
    },
    /// The same thing declared twice.
    #[error("duplicate {what} {value}")]
    Duplicate {
        /// What kind of thing.
        what: &'static str,
        /// Its value.
        value: String,
    },
    /// More than a limit allows.
    #[error("{count} exceeds the limit of {limit} {what}")]
    TooMany {
        /// What is counted.
        what: &'static str,
        /// How many were given.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// A name that does not refer to anything.
    #[error("no {what} named {name:?}")]
    Unknown {
        /// What kind of thing.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// A required field is absent.
    #[error("missing: {0}")]
    Missing(&'static str),
    /// Bytes that do not parse.
    #[error("malformed: {0}")]
    Malformed(String),
}

/// A validated device.
#[derive(Clone, Debug)]
pub struct DeviceModel {
    pub(crate) device: DeviceSection,
    pub(crate) i_manufacturer: u8,
    pub(crate) i_product: u8,
    pub(crate) i_serial: u8,
    /// Configurations, in `bConfigurationValue` order of declaration.
    pub(crate) configurations: Vec<ConfigurationModel>,
    /// Interfaces; the index is the [`FunctionId`] a service opens.
    pub(crate) interfaces: Vec<InterfaceModel>,
    /// Pipes; index = [`PipeId`]; entry 0 is the default control pipe.
    pub(crate) pipes: Vec<PipeModel>,
    /// Strings by index (index 0, the LANGID list, is not stored here).
    pub(crate) strings: BTreeMap<u8, String>,
    pub(crate) setup_timeout: Duration,
    pub(crate) device_request_owner: Option<FunctionId>,
}

/// One configuration.
#[derive(Clone, Debug)]
pub struct ConfigurationModel {
    /// `bConfigurationValue`.
    pub value: u8,
    /// `iConfiguration`.
    pub i_configuration: u8,
    /// Its interfaces, in `bInterfaceNumber` order.
    pub interfaces: Vec<FunctionId>,
    /// Its IADs.
    pub associations: Vec<AssociationModel>,
}

/// An interface association.
#[derive(Clone, Debug)]
pub struct AssociationModel {
    /// `bFirstInterface`.
    pub first_interface: u8,
    /// `bInterfaceCount`.
    pub interface_count: u8,
    /// `bFunctionClass`, `bFunctionSubClass`, `bFunctionProtocol`.
    pub class: (u8, u8, u8),
    /// `iFunction`.
    pub i_function: u8,
}

/// One interface: a GenericUSBFn function opened by one service.
#[derive(Clone, Debug)]
pub struct InterfaceModel {
    /// Name (`InterfaceName`).
    pub name: String,
    /// `InterfaceGUID`, canonical `{...}` form.
    pub guid: Option<String>,
    /// `bInterfaceNumber`.
    pub number: u8,
    /// Index into [`DeviceModel::configurations`].
    pub configuration: usize,
    /// Alternate settings; index = `bAlternateSetting`.
    pub alternates: Vec<AlternateModel>,
    /// Microsoft OS 2.0 compatible ID, NUL padded.
    pub compatible_id: Option<[u8; 8]>,
}

/// One alternate setting.
#[derive(Clone, Debug)]
pub struct AlternateModel {
    /// `bInterfaceClass`, `bInterfaceSubClass`, `bInterfaceProtocol`.
    pub class: (u8, u8, u8),
    /// `iInterface`.
    pub i_interface: u8,
    /// Class-specific descriptors after the interface descriptor.
    pub class_descriptors: Vec<u8>,
    /// Endpoints.
    pub endpoints: Vec<EndpointModel>,
}

/// One endpoint in one alternate setting.
#[derive(Clone, Debug)]
pub struct EndpointModel {
    /// `bEndpointAddress`.
    pub address: EndpointAddress,
    /// Transfer type.
    pub transfer_type: TransferType,
    /// Isochronous synchronisation and usage bits (bmAttributes bits 2..5).
    pub iso_attributes: u8,
    /// `wMaxPacketSize` and `bInterval` per speed (index: full, high, super).
    pub per_speed: [SpeedParams; 3],
    /// SuperSpeed companion `bMaxBurst`.
    pub max_burst: u8,
    /// SuperSpeed companion `bmAttributes`.
    pub ss_attributes: u8,
    /// SuperSpeed companion `wBytesPerInterval`.
    pub bytes_per_interval: u16,
    /// Class-specific endpoint descriptors.
    pub class_descriptors: Vec<u8>,
    /// The pipe that carries this endpoint's data.
    pub pipe: PipeId,
}

/// Per-speed endpoint fields.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SpeedParams {
    /// `wMaxPacketSize`, including the high-bandwidth bits at high speed.
    pub w_max_packet_size: u16,
    /// `bInterval`.
    pub interval: u8,
}

impl SpeedParams {
    /// Bytes per packet (bits 10..0 of wMaxPacketSize).
    pub fn packet_size(&self) -> u16 {
        self.w_max_packet_size & 0x7ff
    }
}

impl EndpointModel {
    /// Per-speed fields at `speed`.
    pub fn at(&self, speed: BusSpeed) -> SpeedParams {
        self.per_speed[speed.index()]
    }

    /// The endpoint descriptor at `speed` (with the isochronous synchronization and usage
    /// bits), as the configuration descriptor and `GET_CLASS_INFO` both carry it.
    pub fn descriptor(&self, speed: BusSpeed) -> EndpointDescriptor {
        let p = self.at(speed);
        let mut desc = EndpointDescriptor::new(
            self.address,
            self.transfer_type,
            p.w_max_packet_size,
            p.interval,
        );
        if self.transfer_type == TransferType::Isochronous {
            desc.bm_attributes |= self.iso_attributes;
        }
        desc
    }
}

/// A data pipe: one endpoint address of one interface.
#[derive(Clone, Debug)]
pub struct PipeModel {
    /// Its owner (meaningless for pipe 0).
    pub function: FunctionId,
    /// Its endpoint address (0 for pipe 0).
    pub address: EndpointAddress,
}

impl DeviceModel {
    /// Validate `config` and assign every number.
    pub fn build(config: &DeviceConfig) -> Result<Self, ValidationError> {
        build::Builder::default().build(config)
    }

    /// Configurations, in `bConfigurationValue` order of declaration.
    pub fn configurations(&self) -> &[ConfigurationModel] {
        &self.configurations
    }

    /// Interfaces; the index is the [`FunctionId`] a service opens.
    pub fn interfaces(&self) -> &[InterfaceModel] {
        &self.interfaces
    }

    /// Pipes; index = [`PipeId`]; entry 0 is the default control pipe.
    pub fn pipes(&self) -> &[PipeModel] {
        &self.pipes
    }

    /// Strings by index (index 0, the LANGID list, is not stored here).
    pub fn strings(&self) -> &BTreeMap<u8, String> {
        &self.strings
    }

    /// The device section as configured.
    pub fn device(&self) -> &DeviceSection {
        &self.device
    }

    /// The fastest speed offered.
    pub fn max_speed(&self) -> BusSpeed {
        self.device.max_speed
    }

    /// The function owning interface `number` in configuration `config_index`.
    pub fn function_by_number(&self, config_index: usize, number: u8) -> Option<FunctionId> {
        self.configurations
            .get(config_index)?
            .interfaces
            .iter()
            .copied()
            .find(|f| self.interfaces.get(f.0).is_some_and(|i| i.number == number))
    }

    /// The function whose interface has this GUID (case-insensitive).
    pub fn function_by_guid(&self, guid: &str) -> Option<FunctionId> {
        self.interfaces
            .iter()
            .position(|i| {
                i.guid
                    .as_deref()
                    .is_some_and(|g| g.eq_ignore_ascii_case(guid))
            })
            .map(FunctionId)
    }

    /// The function named `name`.
    pub fn function_by_name(&self, name: &str) -> Option<FunctionId> {
        self.interfaces
            .iter()
            .position(|i| i.name == name)
            .map(FunctionId)
    }

    /// The configuration index with `bConfigurationValue` = `value`.
    pub fn configuration_index(&self, value: u8) -> Option<usize> {
        self.configurations.iter().position(|c| c.value == value)
    }

    /// The interface of a function.
    pub fn interface(&self, f: FunctionId) -> Option<&InterfaceModel> {
        self.interfaces.get(f.0)
    }

    /// The device-recipient vendor/class request owner.
    pub fn device_request_owner(&self) -> Option<FunctionId> {
        self.device_request_owner
    }

    /// The setup-answer timeout.
    pub fn setup_timeout(&self) -> Duration {
        self.setup_timeout
    }
}

#[cfg(test)]
mod tests;
