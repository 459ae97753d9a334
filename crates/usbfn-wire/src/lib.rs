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
#![forbid(unsafe_code)]

#[macro_use]
mod macros;

pub mod address;
pub mod descriptor;
pub mod error;
pub mod iter;
pub mod request;
pub mod setup;
pub mod writer;

pub use address::{EndpointAddress, SynchronizationType, TransferType, UsageType};
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
pub use writer::{DescriptorWriter, LengthMark};
