//! An in-process host: submits URBs straight into a [`Controller`], for tests, examples and
//! benchmarks that need a host without sockets.
//!
//! It is a bus on real tasks (a [`BusPort`] like USB/IP's and usbredir's), so it runs in real
//! time; for the sans-IO core in virtual time use `usbfn_core::testkit::SimHost`. Both build
//! their URBs with the same constructors ([`Urb::control`], [`Urb::bulk_in`],
//! [`Urb::bulk_out`]) and standard requests with [`SetupPacket`]'s.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::sync::oneshot;
use usbfn_core::{BusSpeed, CompletionStatus, Urb, UrbCompletion, UrbId};
use usbfn_wire::{DescriptorType, SetupPacket};

use crate::Error;
use crate::controller::{BusOutput, BusPort, Controller, IdMap};

type Pending = Arc<Mutex<IdMap<UrbId, oneshot::Sender<UrbCompletion>>>>;

/// A host connected to a device in the same process.
#[derive(Debug)]
pub struct Host {
    port: BusPort,
    pending: Pending,
    next: AtomicU64,
    dispatcher: tokio::task::JoinHandle<()>,
}

/// A URB in flight; resolves to its completion (whatever its status).
#[derive(Debug)]
#[must_use = "a URB future does nothing unless awaited"]
pub struct UrbFuture {
    id: UrbId,
    rx: oneshot::Receiver<UrbCompletion>,
}

impl UrbFuture {
    /// The URB's id (for [`Host::unlink`]).
    pub fn id(&self) -> UrbId {
        self.id
    }
}

impl Future for UrbFuture {
    type Output = Result<UrbCompletion, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.map_err(|_| Error::DeviceGone))
    }
}

impl Host {
    /// Connect to `controller` at `speed` (attach + reset).
    pub fn connect(controller: &Controller, speed: BusSpeed) -> Result<Self, Error> {
        let mut port = controller.connect_bus(speed)?;
        let mut rx = port.take_receiver();
        let pending: Pending = Arc::default();
        let table = pending.clone();
        let dispatcher = tokio::spawn(async move {
            while let Some(out) = rx.recv().await {
                match out {
                    BusOutput::Completion(c) => {
                        let tx = table
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&c.id);
                        if let Some(tx) = tx {
                            let _ = tx.send(c);
                        }
                    }
                    BusOutput::Disconnect => {
                        // Fail everything outstanding: dropping the senders wakes the futures.
                        table.lock().unwrap_or_else(|p| p.into_inner()).clear();
                    }
                }
            }
        });
        Ok(Host {
            port,
            pending,
            next: AtomicU64::new(1),
            dispatcher,
        })
    }

    /// The speed the device was reset at.
    pub fn speed(&self) -> BusSpeed {
        self.port.speed()
    }

    /// Submit a URB (its `id` is replaced by a fresh one).
    pub fn submit(&self, mut urb: Urb) -> UrbFuture {
        let id = UrbId(self.next.fetch_add(1, Ordering::Relaxed));
        urb.id = id;
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
        self.port.submit(urb);
        UrbFuture { id, rx }
    }

    /// Unlink a URB. True if it was still pending (its future then fails).
    pub fn unlink(&self, id: UrbId) -> bool {
        let removed = self.port.unlink(id);
        if removed {
            self.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
        }
        removed
    }

    /// A bulk or interrupt IN URB on endpoint `ep` with a `len`-byte buffer.
    pub fn bulk_in(&self, ep: u8, len: usize) -> UrbFuture {
        self.submit(Urb::bulk_in(UrbId(0), ep, len))
    }

    /// A bulk or interrupt OUT URB.
    pub fn bulk_out(&self, ep: u8, data: Bytes) -> UrbFuture {
        self.submit(Urb::bulk_out(UrbId(0), ep, data))
    }

    /// A control transfer; fails unless it completes successfully.
    pub async fn control(&self, setup: SetupPacket, data: Bytes) -> Result<Bytes, Error> {
        let c = self.submit(Urb::control(UrbId(0), setup, data)).await?;
        if c.status != CompletionStatus::Success {
            return Err(Error::Transfer(c.status));
        }
        Ok(c.data)
    }

    /// GET_DESCRIPTOR from the device.
    pub async fn get_descriptor(
        &self,
        kind: DescriptorType,
        index: u8,
        len: u16,
    ) -> Result<Bytes, Error> {
        let setup = SetupPacket::get_descriptor(kind, index, 0, len);
        self.control(setup, Bytes::new()).await
    }

    /// SET_CONFIGURATION.
    pub async fn set_configuration(&self, value: u8) -> Result<(), Error> {
        let setup = SetupPacket::set_configuration(value);
        self.control(setup, Bytes::new()).await.map(|_| ())
    }

    /// Suspend the bus.
    pub fn suspend(&self) {
        self.port.suspend();
    }

    /// Resume the bus.
    pub fn resume(&self) {
        self.port.resume();
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.dispatcher.abort();
    }
}
