//! The raw GenericUSBFn dispatcher for the bus-backed [`Interface`]: `usbfn_api::ioctl`
//! (generic over every [`crate::ServiceApi`] backend), re-exported here so existing callers
//! keep their paths.

pub use usbfn_api::ioctl::*;

use crate::interface::Interface;

impl Interface {
    /// Dispatch one raw IOCTL, as `DeviceIoControl` would. Never fails: errors are statuses.
    /// The same as [`dispatch`]`(self, request)`.
    pub async fn ioctl(&self, request: IoctlRequest) -> IoctlReply {
        dispatch(self, request).await
    }
}
