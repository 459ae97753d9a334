//! [`Backend`]: what the daemon fronts. A backend owns one device and hands out its
//! interfaces to services by InterfaceGUID; the daemon exposes each as a socket and never
//! learns whether the device is on an emulated bus or a real controller.

use tokio::sync::watch;

use crate::error::Error;
use crate::service::ServiceApi;

/// One interface a backend offers, in configuration order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceEntry {
    /// `InterfaceName`.
    pub name: String,
    /// Its InterfaceGUID, as configured (none: it cannot be found by GUID).
    pub guid: Option<String>,
}

/// A device whose interfaces services open: the bus-backed `usbfn::Controller`, or a
/// kernel-function backend such as `usbfn_ffs::FfsDevice`.
pub trait Backend: Clone + Send + Sync + 'static {
    /// An opened interface.
    type Interface: ServiceApi;

    /// The interfaces, in configuration order.
    fn interfaces(&self) -> Vec<InterfaceEntry>;

    /// Open an interface by InterfaceGUID or name. One service per interface: a second open
    /// fails with [`Error::InterfaceBusy`] until the first interface is dropped, and dropping
    /// it deactivates the bus for it.
    fn open(&self, guid_or_name: &str) -> Result<Self::Interface, Error>;

    /// True while every interface's service has activated the bus (the device is offered
    /// to the host).
    fn ready_watch(&self) -> watch::Receiver<bool>;
}
