//! A blocking wrapper for simple services that run on their own thread.
//!
//! ```no_run
//! # fn demo(controller: usbfn::Controller, rt: tokio::runtime::Handle) -> Result<(), usbfn::Error> {
//! let iface = usbfn::blocking::Interface::new(controller.open("hello")?, rt);
//! iface.activate_bus()?;
//! let event = iface.next_event()?;
//! # Ok(()) }
//! ```

use bytes::Bytes;
use tokio::runtime::Handle;
use usbfn_core::{BusEvent, PipeId, TransferCompletion};

use crate::Error;

/// A blocking [`crate::Interface`]. Calls must not be made from inside an async runtime.
#[derive(Debug)]
pub struct Interface {
    inner: crate::Interface,
    runtime: Handle,
}

impl Interface {
    /// Wrap an opened interface; `runtime` drives the device.
    pub fn new(inner: crate::Interface, runtime: Handle) -> Self {
        Interface { inner, runtime }
    }

    /// The async interface.
    pub fn as_async(&self) -> &crate::Interface {
        &self.inner
    }

    fn block<F: std::future::Future>(&self, f: F) -> Result<F::Output, Error> {
        if Handle::try_current().is_ok() {
            return Err(Error::BlockingInAsync);
        }
        Ok(self.runtime.block_on(f))
    }

    /// See [`crate::Interface::activate_bus`].
    pub fn activate_bus(&self) -> Result<(), Error> {
        self.inner.activate_bus()
    }

    /// See [`crate::Interface::deactivate_bus`].
    pub fn deactivate_bus(&self) -> Result<(), Error> {
        self.inner.deactivate_bus()
    }

    /// See [`crate::Interface::next_event`].
    pub fn next_event(&self) -> Result<BusEvent, Error> {
        self.block(self.inner.next_event())?
    }

    /// See [`crate::Interface::transfer_in`].
    pub fn transfer_in(&self, pipe: PipeId, data: Bytes) -> Result<TransferCompletion, Error> {
        let t = self.inner.transfer_in(pipe, data);
        self.block(t)?
    }

    /// See [`crate::Interface::transfer_in_append_zero`].
    pub fn transfer_in_append_zero(
        &self,
        pipe: PipeId,
        data: Bytes,
    ) -> Result<TransferCompletion, Error> {
        let t = self.inner.transfer_in_append_zero(pipe, data);
        self.block(t)?
    }

    /// See [`crate::Interface::transfer_out`].
    pub fn transfer_out(&self, pipe: PipeId, capacity: usize) -> Result<TransferCompletion, Error> {
        let t = self.inner.transfer_out(pipe, capacity);
        self.block(t)?
    }

    /// See [`crate::Interface::control_status_handshake_in`].
    pub fn control_status_handshake_in(&self) -> Result<(), Error> {
        self.inner.control_status_handshake_in()
    }

    /// See [`crate::Interface::control_status_handshake_out`].
    pub fn control_status_handshake_out(&self) -> Result<(), Error> {
        self.inner.control_status_handshake_out()
    }

    /// See [`crate::Interface::set_pipe_state`].
    pub fn set_pipe_state(&self, pipe: PipeId, stall: bool) -> Result<(), Error> {
        self.inner.set_pipe_state(pipe, stall)
    }

    /// See [`crate::Interface::get_pipe_state`].
    pub fn get_pipe_state(&self, pipe: PipeId) -> Result<bool, Error> {
        self.inner.get_pipe_state(pipe)
    }
}
