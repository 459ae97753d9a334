//! USB 2.0 / 3.x chapter-9 vocabulary: setup packets, request codes, and standard descriptors,
//! parsed from and written to bytes.
//!
//! This is the wire layer of usbfn: no I/O, no clock, no allocation beyond the buffers it
//! returns, and no panics on any input. Everything a host or a configuration file sends
//! through here gets a typed [`WireError`] when malformed.
//!
//! - [`SetupPacket`] with [`Direction`], [`RequestType`], [`Recipient`];
//! - wire newtypes that keep unknown values: [`StandardRequest`], [`FeatureSelector`],
//!   [`DescriptorType`], [`DeviceCapabilityType`];
//! - [`EndpointAddress`] and [`TransferType`];
//! - fixed descriptors ([`DeviceDescriptor`], [`ConfigurationDescriptor`],
//!   [`InterfaceDescriptor`], [`EndpointDescriptor`], ...), each with `parse`, `to_bytes`
//!   and `write`;
//! - string descriptors: [`encode_string_descriptor`], [`decode_string_descriptor`],
//!   [`encode_langid_descriptor`];
//! - [`descriptors`], an iterator over concatenated descriptors;
//! - [`ConfigurationTree`] and [`BosTree`]: a whole GET_DESCRIPTOR(CONFIGURATION) or
//!   GET_DESCRIPTOR(BOS) answer, parsed and checked, and written back;
//! - [`DescriptorWriter`], which builds descriptor sets under a size limit and back-patches
//!   `wTotalLength`.
//!
//! Struct fields use snake-case spec names (`id_vendor`); search the docs for the spec
//! spelling (`idVendor`) and the alias finds them.
//!
//! ```
//! use usbfn_wire::{DescriptorType, SetupPacket, StandardRequest, WireError};
//!
//! // The first request a host sends.
//! let setup = SetupPacket::parse(&[0x80, 0x06, 0x00, 0x01, 0x00, 0x00, 0x40, 0x00])?;
//! assert!(setup.direction().is_in());
//! assert_eq!(setup.standard_request(), Some(StandardRequest::GET_DESCRIPTOR));
//! assert_eq!(setup.descriptor_type(), DescriptorType::DEVICE);
//! assert_eq!(setup.to_string(), "SETUP 80 06 0100 0000 0040");
//!
//! // Malformed input is an error, never a panic.
//! assert!(matches!(SetupPacket::parse(&[0x80, 0x06]), Err(WireError::Truncated { .. })));
//! # Ok::<(), WireError>(())
//! ```
//!
//! Building a configuration and reading it back:
//!
//! ```
//! use usbfn_wire::{
//!     ConfigurationDescriptor, ConfigurationTree, DescriptorWriter, Direction,
//!     EndpointAddress, EndpointDescriptor, InterfaceDescriptor, TransferType, WireError,
//! };
//!
//! let mut w = DescriptorWriter::configuration(&ConfigurationDescriptor {
//!     w_total_length: 0, // back-patched by finish()
//!     b_num_interfaces: 1,
//!     b_configuration_value: 1,
//!     i_configuration: 0,
//!     bm_attributes: ConfigurationDescriptor::ATTR_RESERVED_ONE,
//!     b_max_power: 50,
//! });
//! InterfaceDescriptor {
//!     b_interface_number: 0,
//!     b_alternate_setting: 0,
//!     b_num_endpoints: 2,
//!     b_interface_class: 0xff,
//!     b_interface_sub_class: 0,
//!     b_interface_protocol: 0,
//!     i_interface: 0,
//! }
//! .write(&mut w)?;
//! for direction in [Direction::In, Direction::Out] {
//!     let address = EndpointAddress::new(1, direction)?;
//!     EndpointDescriptor::new(address, TransferType::Bulk, 512, 0).write(&mut w)?;
//! }
//! let bytes = w.finish()?;
//! assert_eq!(bytes.len(), 32);
//!
//! let tree = ConfigurationTree::parse(&bytes)?;
//! assert_eq!(tree.configuration.w_total_length, 32);
//! let (_, ep) = tree.endpoint(EndpointAddress(0x81)).expect("EP1 IN is there");
//! assert_eq!(ep.descriptor.max_packet_size(), 512);
//! assert_eq!(tree.to_bytes()?, bytes);
//! # Ok::<(), WireError>(())
//! ```
#![forbid(unsafe_code)]

#[macro_use]
mod macros;

pub mod address;
pub mod bos_tree;
pub mod descriptor;
pub mod error;
pub mod iter;
pub mod request;
pub mod setup;
#[cfg(test)]
mod test_vectors;
pub mod tree;
pub mod writer;

pub use address::{EndpointAddress, SynchronizationType, TransferType, UsageType};
pub use bos_tree::{BosTree, DeviceCapability};
pub use descriptor::bos::{
    BosDescriptor, ContainerIdCapability, DeviceCapabilityType, SuperSpeedUsbCapability,
    Usb20ExtensionCapability,
};
pub use descriptor::config::{
    ConfigurationDescriptor, InterfaceAssociationDescriptor, InterfaceDescriptor,
};
pub use descriptor::device::{DeviceDescriptor, DeviceQualifierDescriptor};
pub use descriptor::endpoint::{EndpointDescriptor, SuperSpeedEndpointCompanion};
pub use descriptor::string::{
    LANGID_EN_US, MAX_STRING_CODE_UNITS, decode_langid_descriptor, decode_string_descriptor,
    encode_langid_descriptor, encode_string_descriptor,
};
pub use error::WireError;
pub use iter::{DescriptorIter, RawDescriptor, RawOwned, descriptors};
pub use request::{DescriptorType, FeatureSelector, StandardRequest, status};
pub use setup::{Direction, Recipient, RequestType, SetupPacket};
pub use tree::{ConfigurationTree, EndpointInfo, InterfaceAlt};
pub use writer::{DescriptorWriter, LengthMark};
