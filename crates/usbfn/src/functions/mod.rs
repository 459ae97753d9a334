//! Ready-made USB functions, written only against the public service API
//! ([`crate::ServiceApi`]), so each runs in-process, as a service process under the daemon,
//! and on every bus and backend.
//!
//! ```text
//!   --function KIND,k=v  /  [function] kind = ...      (registry: Function::parse)
//!          │
//!          ▼
//!   Function ──fragment()──▶ Fragment ──compose()──▶ DeviceConfig ──▶ Controller / FfsDevice
//!          │
//!          └──start(interfaces)──▶ the function's service task, on ServiceApi
//! ```

pub mod acm;
pub mod audio;
mod compose;
pub mod gadget_zero;
pub mod hid;
pub mod msc;
pub mod ncm;
mod options;
mod registry;

pub use compose::{
    COMPOSITE_PRODUCT_ID, COMPOSITE_VENDOR_ID, Fragment, compose, default_device, function_device,
};
pub use options::{FunctionOptions, OptionError, flag, number};
pub use registry::{
    Function, KINDS, ServiceFuture, StartError, device_config, instances, interface_guid, start_all,
};
