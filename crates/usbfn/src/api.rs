//! [`ServiceApi`] (defined in `usbfn-api`, the backend seam) for the bus-backed
//! [`Interface`], and [`Backend`] for [`Controller`]: one service runs in-process (on an
//! [`Interface`] from [`crate::Controller::open`]), in a process of its own (on
//! `usbfn_ipc::RemoteInterface`, which speaks the daemon's IOCTL socket) or on a real
//! controller (`usbfn_ffs::FfsInterface`, Linux FunctionFS).
//!
//! Moving a service out of the daemon's process is one line:
//!
//! ```ignore
//! let iface = controller.open(GUID)?;                                  // in-process
//! let iface = usbfn_ipc::RemoteInterface::open(&runtime_dir, GUID).await?; // out-of-process
//! usbfn::functions::gadget_zero::run(iface, options).await?;
//! ```
//!
//! Every method is one `IOCTL_GENERICUSBFN_*`. Requests that a remote driver answers over a
//! socket are `async` here even where the in-process [`Interface`] answers at once; transfers
//! keep the in-process shape: **submitted when the method returns**, awaited later, cancelled
//! (`CancelIoEx`) when the returned future is dropped unfinished.

use std::future::Future;

use bytes::Bytes;
use usbfn_core::{BusEvent, BusSpeed, ClassInfo, PipeId, TransferCompletion};

use usbfn_api::{Backend, InterfaceEntry, ServiceApi};

use crate::Error;
use crate::controller::Controller;
use crate::interface::{Interface, Transfer};

/// The in-process interface: each request is answered by the controller at once.
impl ServiceApi for Interface {
    type Transfer = Transfer;

    fn class_info(&self) -> impl Future<Output = Result<ClassInfo, Error>> + Send {
        std::future::ready(Interface::class_info(self))
    }

    fn activate_bus(&self) -> impl Future<Output = Result<(), Error>> + Send {
        std::future::ready(Interface::activate_bus(self))
    }

    fn deactivate_bus(&self) -> impl Future<Output = Result<(), Error>> + Send {
        std::future::ready(Interface::deactivate_bus(self))
    }

    fn next_event(&self) -> impl Future<Output = Result<BusEvent, Error>> + Send {
        Interface::next_event(self)
    }

    fn transfer_in(&self, pipe: PipeId, data: Bytes) -> Transfer {
        Interface::transfer_in(self, pipe, data)
    }

    fn transfer_in_append_zero(&self, pipe: PipeId, data: Bytes) -> Transfer {
        Interface::transfer_in_append_zero(self, pipe, data)
    }

    fn transfer_out(&self, pipe: PipeId, capacity: usize) -> Transfer {
        Interface::transfer_out(self, pipe, capacity)
    }

    fn raw_completion(
        transfer: Transfer,
    ) -> impl Future<Output = Result<TransferCompletion, Error>> + Send {
        transfer.completion()
    }

    fn control_status_handshake_in(&self) -> impl Future<Output = Result<(), Error>> + Send {
        std::future::ready(Interface::control_status_handshake_in(self))
    }

    fn control_status_handshake_out(&self) -> impl Future<Output = Result<(), Error>> + Send {
        std::future::ready(Interface::control_status_handshake_out(self))
    }

    fn get_pipe_state(&self, pipe: PipeId) -> impl Future<Output = Result<bool, Error>> + Send {
        std::future::ready(Interface::get_pipe_state(self, pipe))
    }

    fn set_pipe_state(
        &self,
        pipe: PipeId,
        stall: bool,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        std::future::ready(Interface::set_pipe_state(self, pipe, stall))
    }

    fn interface_descriptor_set(
        &self,
        interface_number: u8,
        speed: BusSpeed,
    ) -> impl Future<Output = Result<Vec<u8>, Error>> + Send {
        std::future::ready(Interface::interface_descriptor_set(
            self,
            interface_number,
            speed,
        ))
    }

    fn register_usb_string(
        &self,
        index: u8,
        text: &str,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        std::future::ready(Interface::register_usb_string(self, index, text))
    }
}

/// The bus-backed controller is a backend the daemon can front.
impl Backend for Controller {
    type Interface = Interface;

    fn interfaces(&self) -> Vec<InterfaceEntry> {
        self.with_model(|m| {
            m.interfaces()
                .iter()
                .map(|i| InterfaceEntry {
                    name: i.name.clone(),
                    guid: i.guid.clone(),
                })
                .collect()
        })
    }

    fn open(&self, guid_or_name: &str) -> Result<Interface, Error> {
        Controller::open(self, guid_or_name)
    }

    fn ready_watch(&self) -> tokio::sync::watch::Receiver<bool> {
        Controller::ready_watch(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Controller, DeviceConfig};

    /// A service written only against the trait.
    async fn activate_and_read_pipes<S: ServiceApi>(iface: &S) -> Result<usize, Error> {
        let info = iface.class_info().await?;
        iface.activate_bus().await?;
        Ok(info.at(BusSpeed::High).pipes.len())
    }

    #[tokio::test]
    async fn interface_implements_the_trait() {
        let config = DeviceConfig::from_toml(
            r#"
            [device]
            vendor_id = 0x1209
            product_id = 0x0001
            [[interfaces]]
            name = "x"
            endpoints = [{ direction = "in", type = "bulk" }]
            "#,
        )
        .expect("toml");
        let controller = Controller::new(&config).expect("device");
        let iface = controller.open("x").expect("open");
        assert_eq!(activate_and_read_pipes(&iface).await.expect("api"), 1);
        assert!(controller.is_ready());
        // Not configured yet: the transfer is refused when awaited, like the inherent method.
        let t = ServiceApi::transfer_in(&iface, PipeId(1), Bytes::from_static(b"x"));
        assert!(matches!(t.await, Err(Error::Refused(_))));
        ServiceApi::deactivate_bus(&iface)
            .await
            .expect("deactivate");
        assert!(!controller.is_ready());
    }

    /// Dropping `Transfer::completion()` unfinished cancels the transfer (the raw IOCTL
    /// dispatcher awaits that future; the daemon drops it on CANCEL).
    #[tokio::test]
    async fn dropped_completion_future_cancels() {
        let config = DeviceConfig::from_toml(
            r#"
            [device]
            vendor_id = 0x1209
            product_id = 0x0001
            [[interfaces]]
            name = "x"
            endpoints = [{ direction = "out", type = "bulk" }]
            "#,
        )
        .expect("toml");
        let controller = Controller::new(&config).expect("device");
        let iface = controller.open("x").expect("open");
        iface.activate_bus().expect("activate");
        let host = crate::host::Host::connect(&controller, BusSpeed::High).expect("host");
        host.set_configuration(1).await.expect("configure");
        let first = iface.transfer_out(PipeId(1), 512).completion();
        let second = iface.transfer_out(PipeId(1), 512);
        let timed_out = tokio::time::timeout(std::time::Duration::from_millis(20), first).await;
        assert!(timed_out.is_err(), "nothing sent yet");
        let sent = host.bulk_out(1, Bytes::from_static(b"for the second"));
        let c = second.await.expect("second gets the data");
        assert_eq!(&c.data[..], b"for the second");
        sent.await.expect("urb");
    }
}
