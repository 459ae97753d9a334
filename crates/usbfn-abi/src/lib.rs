//! The GenericUSBFn user-mode ABI: IOCTL codes, enums, `NTSTATUS` values and structures of
//! Windows' `GenericUsbFnIoctl.h` / `usbfnbase.h`, with their exact bytes.
//!
//! A usbfn service talks to its function controller with these IOCTLs and structures, whether
//! in-process, over the usbfn IOCTL socket or, later, through Windows' own `GenericUSBFn.sys`.
//! This crate is the shared vocabulary and wire format; it does no I/O and has no `unsafe`.
//!
//! # What is here
//!
//! - [`IoctlCode`]: every `IOCTL_GENERICUSBFN_*` code, computed by [`ctl_code`] and checked
//!   against the documented values at compile time.
//! - Wire enums that keep unknown values ([`UsbfnEvent`], [`BusSpeed`], [`UsbfnDirection`],
//!   [`PortType`], [`DeviceState`]) and [`NtStatus`].
//! - Safe structures, each with `SIZE`, `encode` (or `encode_into`) and `decode`:
//!   [`PipeId`], [`PipeState`], [`SetupPacketRaw`], [`EndpointDescriptorRaw`],
//!   [`PipeInformation`], [`ClassInterface`], [`ClassInterfaceEx`], [`ClassInformationPacket`],
//!   [`ClassInformationPacketEx`], [`AlternateInterface`], [`Notification`],
//!   [`InterfaceInfoHeader`], [`InterfaceInfo`], [`UsbString`].
//! - Checked fixed `WCHAR` strings: [`InterfaceName`], [`UsbStringText`], [`InterfaceGuid`]
//!   (see *Fixed `WCHAR` strings* below).
//! - [`raw`]: `#[repr(C)]` mirrors with the Windows x64 layout, for a Windows backend.
//! - The limits of `usbfnbase.h` ([`MAX_NUM_USBFN_PIPES`] and friends).
//!
//! # Bytes
//!
//! Encoding and decoding go field by field, little-endian, exactly as the structures sit in
//! memory on Windows x64; padding is written as zero and ignored on decode. Decoders read the
//! first `SIZE` bytes of their input and ignore the rest. Anything wrong with the input is an
//! [`AbiError`] naming the structure or field and the limit: never a panic, never a silent
//! truncation.
//!
//! # Fixed `WCHAR` strings
//!
//! Every fixed `WCHAR` array of this ABI holds a NUL-terminated string, so an array of N
//! `WCHAR`s holds at most N - 1 UTF-16 code units and the NUL: an `InterfaceName` (40) at most
//! 39, a `UsbString` (255) at most 254, an `InterfaceGuid` (39) exactly the 38 characters of
//! `{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}`. Longer strings are rejected with
//! [`AbiError::StringTooLong`] (naming the field and the limit), never truncated; strings
//! containing U+0000 are rejected with [`AbiError::InteriorNul`]. Lengths count UTF-16 code
//! units, so a character outside the Basic Multilingual Plane counts twice. Encoding zero-fills
//! the array after the NUL; decoding stops at the first NUL and ignores the rest, and fails on
//! an array without NUL ([`AbiError::MissingNulTerminator`]) or with an unpaired surrogate
//! ([`AbiError::InvalidUtf16`]).
//!
//! # Example
//!
//! A service asked for its class information and waits for bus events:
//!
//! ```
//! use usbfn_abi::{
//!     BusSpeed, ClassInformationPacket, ClassInterface, EndpointDescriptorRaw, InterfaceName,
//!     IoctlCode, Notification, NotificationData, PipeId, PipeInformation, PipeList, UsbfnEvent,
//! };
//!
//! // The controller's answer to GET_CLASS_INFO: one bulk IN pipe at high speed.
//! let mut pipes = PipeList::new();
//! pipes.try_push(PipeInformation {
//!     endpoint_descriptor: EndpointDescriptorRaw::from_bytes([7, 5, 0x81, 2, 0x00, 0x02, 0]),
//!     pipe_id: PipeId(1),
//! })?;
//! let info = ClassInformationPacket {
//!     high_speed: ClassInterface { interface_number: 0, pipes },
//!     interface_name: InterfaceName::new("Sensor")?,
//!     interface_guid: Some("{8F6A1E2B-3C4D-4E5F-9A0B-1C2D3E4F5A6B}".parse()?),
//!     ..Default::default()
//! };
//! let bytes = info.encode(); // what travels as the IOCTL output buffer
//! assert_eq!(bytes.len(), ClassInformationPacket::SIZE);
//!
//! // The service side.
//! let info = ClassInformationPacket::decode(&bytes)?;
//! let pipe = info.for_speed(BusSpeed::HIGH).and_then(|c| c.pipes.first()).copied();
//! assert_eq!(pipe.map(|p| p.pipe_id), Some(PipeId(1)));
//!
//! // A completed BUS_EVENT_NOTIFICATION.
//! assert_eq!(IoctlCode::BUS_EVENT_NOTIFICATION.0, 0x0022_C036);
//! let event = Notification::decode(&[2, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0])?;
//! assert_eq!(event.event, UsbfnEvent::RESET);
//! assert_eq!(event.data, NotificationData::BusSpeed(BusSpeed::HIGH));
//!
//! // Input is checked, not trusted.
//! let err = ClassInformationPacket::decode(&bytes[..10]).unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "buffer too short for USBFN_CLASS_INFORMATION_PACKET: need 748 bytes, got 10"
//! );
//! assert!(InterfaceName::new("x".repeat(40)).is_err()); // 39 + NUL is the limit
//! # Ok::<(), usbfn_abi::AbiError>(())
//! ```

#![forbid(unsafe_code)]

mod macros;

mod chapter9;
mod class_info;
mod codec;
mod enums;
mod error;
mod interface_info;
mod ioctl;
mod limits;
mod notification;
mod pipes;
pub mod raw;
mod status;
mod strings;

pub use chapter9::{EndpointDescriptorRaw, SetupPacketRaw};
pub use class_info::{ClassInformationPacket, ClassInformationPacketEx};
pub use enums::{BusSpeed, DeviceState, PortType, UsbfnBusSpeed, UsbfnDirection, UsbfnEvent};
pub use error::AbiError;
pub use interface_info::{InterfaceInfo, InterfaceInfoHeader};
pub use ioctl::{
    FILE_ANY_ACCESS, FILE_DEVICE_UNKNOWN, FILE_READ_DATA, FILE_WRITE_DATA, IoctlCode, IoctlMethod,
    METHOD_BUFFERED, METHOD_IN_DIRECT, METHOD_NEITHER, METHOD_OUT_DIRECT, ctl_code,
};
pub use limits::{
    INTERFACE_GUID_STRING_LENGTH, MAX_ALTERNATE_NAME_LENGTH, MAX_ASSOCIATION_NAME_LENGTH,
    MAX_INTERFACE_GUID_LENGTH, MAX_INTERFACE_NAME_LENGTH, MAX_NUM_USBFN_ENDPOINTS,
    MAX_NUM_USBFN_PIPES, MAX_SUPPORTED_CONFIGURATIONS, MAX_USB_STRING_LENGTH,
    USBFN_INTERRUPT_ENDPOINT_SIZE_NOT_UPDATEABLE_MASK,
};
pub use notification::{AlternateInterface, Notification, NotificationData};
pub use pipes::{ClassInterface, ClassInterfaceEx, PipeId, PipeInformation, PipeList, PipeState};
pub use status::{NtStatus, Severity};
pub use strings::{InterfaceGuid, InterfaceName, UsbString, UsbStringText};
