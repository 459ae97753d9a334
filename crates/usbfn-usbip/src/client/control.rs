//! Host-style requests on endpoint 0: control transfers, descriptors, enumeration.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use bytes::Bytes;
use usbfn_wire::{
    BosDescriptor, BosTree, ConfigurationDescriptor, ConfigurationTree, DescriptorType,
    DeviceDescriptor, FeatureSelector, Recipient, SetupPacket, WireError, decode_langid_descriptor,
    decode_string_descriptor,
};

use super::{ClientError, ImportedDevice, Urb};
use crate::proto::ProtoError;

/// Length hosts ask for when reading a string descriptor.
const STRING_REQUEST_LEN: u16 = 255;
/// `DeviceDescriptor::LENGTH` as a `wLength`.
const DEVICE_LEN: u16 = 18;
/// `ConfigurationDescriptor::LENGTH` as a `wLength`.
const CONFIGURATION_LEN: u16 = 9;
/// `BosDescriptor::LENGTH` as a `wLength`.
const BOS_LEN: u16 = 5;

/// Everything [`ImportedDevice::enumerate`] read from the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceTree {
    /// The device descriptor.
    pub device: DeviceDescriptor,
    /// Its 18 bytes as received.
    pub device_bytes: Bytes,
    /// One entry per configuration index (0..bNumConfigurations).
    pub configurations: Vec<ConfigurationInfo>,
    /// LANGIDs from string descriptor 0 (empty when the device references no strings).
    pub langids: Vec<u16>,
    /// Every string the descriptors reference, by index, in the first LANGID.
    pub strings: BTreeMap<u8, String>,
    /// The BOS descriptor set, read when `bcdUSB >= 0x0201`.
    pub bos: Option<BosInfo>,
    /// The configuration value selected with SET_CONFIGURATION, if one was asked for.
    pub configured: Option<u8>,
}

/// One configuration as read by [`ImportedDevice::enumerate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigurationInfo {
    /// The descriptor set, parsed (`tree.configuration` is the configuration descriptor).
    pub tree: ConfigurationTree,
    /// The whole descriptor set as received (`wTotalLength` bytes).
    pub bytes: Bytes,
}

/// The BOS as read by [`ImportedDevice::enumerate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BosInfo {
    /// The BOS, parsed.
    pub tree: BosTree,
    /// The whole BOS as received (`wTotalLength` bytes).
    pub bytes: Bytes,
}

impl DeviceTree {
    /// The string at `index` (`None` for index 0 or one the device did not provide).
    pub fn string(&self, index: u8) -> Option<&str> {
        self.strings.get(&index).map(String::as_str)
    }
}

impl ImportedDevice {
    /// A control IN transfer; the buffer is `wLength` bytes. Returns the data stage.
    pub async fn control_in(&self, setup: SetupPacket) -> Result<Bytes, ClientError> {
        named(format!("control IN {setup}"), self.control_in_raw(setup)).await
    }

    /// A control OUT transfer; `data` must be `wLength` bytes (empty: no data stage).
    pub async fn control_out(
        &self,
        setup: SetupPacket,
        data: impl Into<Bytes>,
    ) -> Result<(), ClientError> {
        named(
            format!("control OUT {setup}"),
            self.control_out_raw(setup, data.into()),
        )
        .await
    }

    /// GET_DESCRIPTOR of `descriptor_type` / `index`, asking for `len` bytes.
    pub async fn get_descriptor(
        &self,
        descriptor_type: DescriptorType,
        index: u8,
        langid: u16,
        len: u16,
    ) -> Result<Bytes, ClientError> {
        let setup = SetupPacket::get_descriptor(descriptor_type, index, langid, len);
        let name =
            format!("GET_DESCRIPTOR({descriptor_type} {index}, langid {langid:#06x}, {len})");
        named(name, self.control_in_raw(setup)).await
    }

    /// Reads and decodes string descriptor `index` in `langid`.
    pub async fn get_string(&self, index: u8, langid: u16) -> Result<String, ClientError> {
        let bytes = self
            .get_descriptor(DescriptorType::STRING, index, langid, STRING_REQUEST_LEN)
            .await?;
        decode_string_descriptor(&bytes).map_err(ClientError::Descriptor)
    }

    /// SET_CONFIGURATION(`value`).
    pub async fn set_configuration(&self, value: u8) -> Result<(), ClientError> {
        let setup = SetupPacket::set_configuration(value);
        named(
            format!("SET_CONFIGURATION({value})"),
            self.control_out_raw(setup, Bytes::new()),
        )
        .await
    }

    /// SET_INTERFACE(`interface`, `alternate_setting`).
    pub async fn set_interface(
        &self,
        interface: u8,
        alternate_setting: u8,
    ) -> Result<(), ClientError> {
        let setup = SetupPacket::set_interface(interface, alternate_setting);
        named(
            format!("SET_INTERFACE({interface}, {alternate_setting})"),
            self.control_out_raw(setup, Bytes::new()),
        )
        .await
    }

    /// CLEAR_FEATURE(ENDPOINT_HALT) on `endpoint_address` (e.g. `0x81`).
    pub async fn clear_halt(&self, endpoint_address: u8) -> Result<(), ClientError> {
        let setup = SetupPacket::clear_feature(
            Recipient::Endpoint,
            FeatureSelector::ENDPOINT_HALT,
            endpoint_address.into(),
        );
        named(
            format!("CLEAR_FEATURE(ENDPOINT_HALT, {endpoint_address:#04x})"),
            self.control_out_raw(setup, Bytes::new()),
        )
        .await
    }

    /// Reads every descriptor the way a host does after reset, then selects configuration
    /// `configure` if given:
    ///
    /// 1. GET_DESCRIPTOR(DEVICE) for 8 bytes, then for all 18;
    /// 2. per configuration: 9 bytes, then `wTotalLength`;
    /// 3. string 0 (LANGIDs), then every string index the descriptors reference;
    /// 4. the BOS (5 bytes, then `wTotalLength`) when `bcdUSB >= 0x0201`;
    /// 5. SET_CONFIGURATION(`configure`).
    ///
    /// Any failure (stall, short or malformed descriptor) is an error naming the request.
    pub async fn enumerate(&self, configure: Option<u8>) -> Result<DeviceTree, ClientError> {
        let first = self.get_descriptor(DescriptorType::DEVICE, 0, 0, 8).await?;
        at_least(&first, 8, "device descriptor (first 8 bytes)")?;
        let device_bytes = self
            .get_descriptor(DescriptorType::DEVICE, 0, 0, DEVICE_LEN)
            .await?;
        let device = DeviceDescriptor::parse(&device_bytes).map_err(ClientError::Descriptor)?;

        let mut configurations = Vec::with_capacity(device.b_num_configurations.into());
        for index in 0..device.b_num_configurations {
            configurations.push(self.read_configuration(index).await?);
        }

        let mut indexes = BTreeSet::from([
            device.i_manufacturer,
            device.i_product,
            device.i_serial_number,
        ]);
        for c in &configurations {
            indexes.insert(c.tree.configuration.i_configuration);
            indexes.extend(c.tree.interfaces.iter().map(|i| i.descriptor.i_interface));
            indexes.extend(c.tree.associations.iter().map(|a| a.i_function));
        }
        indexes.remove(&0);
        let mut langids = Vec::new();
        let mut strings = BTreeMap::new();
        if !indexes.is_empty() {
            let zero = self
                .get_descriptor(DescriptorType::STRING, 0, 0, STRING_REQUEST_LEN)
                .await?;
            langids = decode_langid_descriptor(&zero).map_err(ClientError::Descriptor)?;
            if let Some(&langid) = langids.first() {
                for index in indexes {
                    strings.insert(index, self.get_string(index, langid).await?);
                }
            }
        }

        let bos = if device.bcd_usb >= 0x0201 {
            Some(self.read_bos().await?)
        } else {
            None
        };
        if let Some(value) = configure {
            self.set_configuration(value).await?;
        }
        Ok(DeviceTree {
            device,
            device_bytes,
            configurations,
            langids,
            strings,
            bos,
            configured: configure,
        })
    }

    async fn read_configuration(&self, index: u8) -> Result<ConfigurationInfo, ClientError> {
        let head = self
            .get_descriptor(DescriptorType::CONFIGURATION, index, 0, CONFIGURATION_LEN)
            .await?;
        let descriptor = ConfigurationDescriptor::parse(&head).map_err(ClientError::Descriptor)?;
        let total = descriptor.w_total_length;
        let bytes = self
            .get_descriptor(DescriptorType::CONFIGURATION, index, 0, total)
            .await?;
        total_length(&bytes, total)?;
        let tree = ConfigurationTree::parse(&bytes).map_err(ClientError::Descriptor)?;
        Ok(ConfigurationInfo { tree, bytes })
    }

    async fn read_bos(&self) -> Result<BosInfo, ClientError> {
        let head = self
            .get_descriptor(DescriptorType::BOS, 0, 0, BOS_LEN)
            .await?;
        let bos = BosDescriptor::parse(&head).map_err(ClientError::Descriptor)?;
        let bytes = self
            .get_descriptor(DescriptorType::BOS, 0, 0, bos.w_total_length)
            .await?;
        total_length(&bytes, bos.w_total_length)?;
        let tree = BosTree::parse(&bytes).map_err(ClientError::Descriptor)?;
        Ok(BosInfo { tree, bytes })
    }

    async fn control_in_raw(&self, setup: SetupPacket) -> Result<Bytes, ClientError> {
        if !setup.is_in() {
            return Err(invalid("control IN needs a setup packet with direction IN"));
        }
        let urb = Urb::control_in(setup.to_bytes(), setup.w_length.into());
        Ok(self.submit(urb).await?.into_result()?.data)
    }

    async fn control_out_raw(&self, setup: SetupPacket, data: Bytes) -> Result<(), ClientError> {
        if setup.is_in() {
            return Err(invalid(
                "control OUT needs a setup packet with direction OUT",
            ));
        }
        if data.len() != usize::from(setup.w_length) {
            return Err(ClientError::InvalidArgument(ProtoError::Inconsistent {
                message: "control OUT",
                what: "data bytes",
                actual: data.len() as u64,
                expected: setup.w_length.into(),
            }));
        }
        self.submit(Urb::control_out(setup.to_bytes(), data))
            .await?
            .into_result()?;
        Ok(())
    }
}

/// Runs `f`, wrapping its error in [`ClientError::Request`] named `request`.
async fn named<T>(
    request: String,
    f: impl Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    f.await.map_err(|source| ClientError::Request {
        request,
        source: Box::new(source),
    })
}

fn invalid(reason: &'static str) -> ClientError {
    ClientError::InvalidArgument(ProtoError::Malformed {
        message: "control transfer",
        reason,
    })
}

fn at_least(bytes: &[u8], needed: usize, what: &'static str) -> Result<(), ClientError> {
    if bytes.len() < needed {
        return Err(ClientError::Descriptor(WireError::Truncated {
            what,
            needed,
            available: bytes.len(),
        }));
    }
    Ok(())
}

fn total_length(bytes: &[u8], declared: u16) -> Result<(), ClientError> {
    if bytes.len() != usize::from(declared) {
        return Err(ClientError::Descriptor(WireError::TotalLengthMismatch {
            declared,
            actual: bytes.len(),
        }));
    }
    Ok(())
}
