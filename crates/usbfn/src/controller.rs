//! The runtime around the sans-IO core: one [`Controller`] per device, shared by its bus and
//! its services.
//!
//! The core sits behind a mutex that is held only for the duration of one core call and the
//! dispatch that follows it; no lock is held across an `.await`. After every call the
//! controller drains the core's outputs: URB completions and bus requests go to the bus
//! port's channel, transfer completions to the waiting transfer futures, events wake the
//! service that owns them, and a changed deadline wakes the timer task.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::{Notify, mpsc, oneshot, watch};
use usbfn_core::{
    BusRequest, BusSpeed, Device, DeviceConfig, DeviceModel, FunctionId, TransferCompletion,
    TransferId, UrbCompletion,
};

use crate::Error;
use crate::bus_tap::BusTap;
use crate::interface::Interface;

/// What the core sends a bus.
#[derive(Clone, Debug)]
pub enum BusOutput {
    /// A URB completed.
    Completion(UrbCompletion),
    /// The device asks to be disconnected (a service deactivated or went away).
    Disconnect,
}

/// A device and its runtime. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Controller {
    pub(crate) shared: Arc<Shared>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) inner: Mutex<Inner>,
    /// One per function: an event is waiting.
    pub(crate) events: Vec<Notify>,
    /// The core's deadline may have changed.
    timer: Arc<Notify>,
    ready: watch::Sender<bool>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) device: Device,
    pub(crate) waiters: IdMap<TransferId, oneshot::Sender<TransferCompletion>>,
    pub(crate) next_transfer: u64,
    pub(crate) opened: Vec<bool>,
    pub(crate) bus: Option<mpsc::UnboundedSender<BusOutput>>,
    pub(crate) bus_generation: u64,
    /// Sees every URB of every bus (`--pcap`).
    tap: Option<Arc<dyn BusTap>>,
    deadline: Option<Instant>,
    /// What `Shared::ready` holds, so dispatch only takes the watch's lock on a change.
    ready: bool,
}

/// A map keyed by ids this runtime hands out itself (sequential transfer and URB numbers,
/// never a peer's): a multiplicative hash spreads them well and costs far less than SipHash,
/// whose flood resistance buys nothing here.
pub(crate) type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// The hasher of [`IdMap`].
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(self.0.rotate_left(8) ^ u64::from(*b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        // Fibonacci hashing: the high bits (hashbrown's tag) depend on every bit of `n`.
        self.0 = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// The runtime the caller runs in, or [`Error::NoRuntime`].
fn current_runtime() -> Result<tokio::runtime::Handle, Error> {
    tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime("Controller::new"))
}

impl Controller {
    /// Build a device from a configuration, inside a tokio runtime (it spawns the timer task
    /// that expires unanswered setup packets): outside one it is [`Error::NoRuntime`]; see
    /// [`Controller::new_in`].
    pub fn new(config: &DeviceConfig) -> Result<Self, Error> {
        Self::new_in(config, &current_runtime()?)
    }

    /// [`Controller::new`] with the timer task on the runtime `handle`.
    pub fn new_in(config: &DeviceConfig, handle: &tokio::runtime::Handle) -> Result<Self, Error> {
        let model = DeviceModel::build(config)?;
        Self::from_model_in(model, handle)
    }

    /// Build a device from a validated model (inside a tokio runtime, as [`Controller::new`]).
    pub fn from_model(model: DeviceModel) -> Result<Self, Error> {
        Self::from_model_in(model, &current_runtime()?)
    }

    /// [`Controller::from_model`] with the timer task on the runtime `handle`.
    pub fn from_model_in(
        model: DeviceModel,
        handle: &tokio::runtime::Handle,
    ) -> Result<Self, Error> {
        let functions = model.interfaces().len();
        let device = Device::new(model, Instant::now())?;
        let (ready, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                device,
                waiters: IdMap::default(),
                next_transfer: 1,
                opened: vec![false; functions],
                bus: None,
                bus_generation: 0,
                tap: None,
                deadline: None,
                ready: false,
            }),
            events: (0..functions).map(|_| Notify::new()).collect(),
            timer: Arc::new(Notify::new()),
            ready,
        });
        let weak = Arc::downgrade(&shared);
        let timer = shared.timer.clone();
        handle.spawn(async move {
            // Expires setup packets that services do not answer; ends with the controller
            // (dropping `Shared` wakes it).
            loop {
                let notified = timer.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                let Some(deadline) = weak.upgrade().map(|s| s.lock().deadline) else {
                    return;
                };
                match deadline {
                    Some(d) => {
                        let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(d));
                        tokio::select! {
                            _ = sleep => {
                                let Some(shared) = weak.upgrade() else { return };
                                let mut inner = shared.lock();
                                inner.device.handle_timeout(Instant::now());
                                shared.dispatch(&mut inner);
                            }
                            _ = &mut notified => {}
                        }
                    }
                    None => notified.await,
                }
            }
        });
        Ok(Controller { shared })
    }

    /// Open an interface by its InterfaceGUID or its name, as a service does. One service
    /// per interface: a second open fails until the first [`Interface`] is dropped.
    pub fn open(&self, guid_or_name: &str) -> Result<Interface, Error> {
        let mut inner = self.shared.lock();
        let model = inner.device.model();
        let f = model
            .function_by_guid(guid_or_name)
            .or_else(|| model.function_by_name(guid_or_name))
            .ok_or_else(|| Error::NoSuchInterface(guid_or_name.to_owned()))?;
        if std::mem::replace(&mut inner.opened[f.0], true) {
            return Err(Error::InterfaceBusy(guid_or_name.to_owned()));
        }
        Ok(Interface::new(self.shared.clone(), f))
    }

    /// Open every interface in configuration order.
    pub fn open_all(&self) -> Result<Vec<Interface>, Error> {
        let names: Vec<String> =
            self.with_model(|m| m.interfaces().iter().map(|i| i.name.clone()).collect());
        names.iter().map(|n| self.open(n)).collect()
    }

    /// Read the model.
    pub fn with_model<T>(&self, f: impl FnOnce(&DeviceModel) -> T) -> T {
        f(self.shared.lock().device.model())
    }

    /// Read the device's state (current configuration, alternate settings, speed) with its
    /// model. The core's lock is held while `f` runs: keep it short.
    pub fn with_device<T>(&self, f: impl FnOnce(&Device) -> T) -> T {
        f(&self.shared.lock().device)
    }

    /// True when every service has activated the bus.
    pub fn is_ready(&self) -> bool {
        *self.shared.ready.borrow()
    }

    /// Watch readiness (every service active).
    pub fn ready_watch(&self) -> watch::Receiver<bool> {
        self.shared.ready.subscribe()
    }

    /// Let `tap` see every URB submitted on this device's bus and every completion, from
    /// now on and for every bus connected later (`None` removes it).
    pub fn set_bus_tap(&self, tap: Option<Arc<dyn BusTap>>) {
        self.shared.lock().tap = tap;
    }

    /// Connect a host at `speed`: attach + bus reset. Only one host at a time.
    pub fn connect_bus(&self, speed: BusSpeed) -> Result<BusPort, Error> {
        let mut inner = self.shared.lock();
        if inner.bus.as_ref().is_some_and(|tx| !tx.is_closed()) {
            return Err(Error::BusBusy);
        }
        let (tx, rx) = mpsc::unbounded_channel();
        inner.bus = Some(tx);
        inner.bus_generation += 1;
        let generation = inner.bus_generation;
        let now = Instant::now();
        inner.device.bus_attach(now);
        inner.device.bus_reset(speed, now);
        let speed = inner.device.speed();
        self.shared.dispatch(&mut inner);
        Ok(BusPort {
            shared: self.shared.clone(),
            rx,
            generation,
            speed,
        })
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.timer.notify_one();
    }
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock would be a bug in usbfn; the state is still
        // consistent enough to keep serving, so poisoning is ignored.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Drain every core output. Called with the lock held after each core call.
    pub(crate) fn dispatch(&self, inner: &mut Inner) {
        while let Some(c) = inner.device.poll_transfer_completion() {
            if let Some(tx) = inner.waiters.remove(&c.id) {
                // The future may have been dropped after a cancel raced the completion.
                let _ = tx.send(c);
            }
        }
        while let Some(c) = inner.device.poll_urb_completion() {
            if let Some(tap) = &inner.tap {
                tap.complete(&c);
            }
            match &inner.bus {
                Some(tx) => {
                    if tx.send(BusOutput::Completion(c)).is_err() {
                        tracing::debug!("URB completed after its bus went away");
                    }
                }
                None => tracing::debug!(urb = c.id.0, "URB completed with no bus attached"),
            }
        }
        while let Some(request) = inner.device.poll_bus_request() {
            match request {
                BusRequest::Ready => {}
                BusRequest::Disconnect => {
                    if let Some(tx) = &inner.bus {
                        let _ = tx.send(BusOutput::Disconnect);
                    }
                }
            }
        }
        let ready = inner.device.is_ready();
        if ready != inner.ready {
            inner.ready = ready;
            self.ready
                .send_if_modified(|r| std::mem::replace(r, ready) != ready);
        }
        for (f, notify) in self.events.iter().enumerate() {
            if inner.device.has_events(FunctionId(f)) {
                notify.notify_one();
            }
        }
        let deadline = inner.device.poll_timeout();
        if deadline != inner.deadline {
            inner.deadline = deadline;
            self.timer.notify_one();
        }
    }
}

/// A host's connection to the device. Dropping it detaches the device.
#[derive(Debug)]
pub struct BusPort {
    shared: Arc<Shared>,
    rx: mpsc::UnboundedReceiver<BusOutput>,
    generation: u64,
    speed: BusSpeed,
}

impl BusPort {
    /// The speed the device was reset at.
    pub fn speed(&self) -> BusSpeed {
        self.speed
    }

    /// Submit a URB; its completion arrives from [`BusPort::recv`].
    pub fn submit(&self, urb: usbfn_core::Urb) {
        let mut inner = self.shared.lock();
        if let Some(tap) = &inner.tap {
            tap.submit(&urb);
        }
        inner.device.submit_urb(urb, Instant::now());
        self.shared.dispatch(&mut inner);
    }

    /// Complete a URB without the device (e.g. one addressed to another device id): the
    /// completion arrives from [`BusPort::recv`] in order with the device's own.
    pub fn answer(&self, completion: UrbCompletion) {
        let inner = self.shared.lock();
        if let Some(tap) = &inner.tap {
            tap.complete(&completion);
        }
        if let Some(tx) = &inner.bus {
            let _ = tx.send(BusOutput::Completion(completion));
        }
    }

    /// Unlink a URB. True: it was pending and will never complete.
    pub fn unlink(&self, id: usbfn_core::UrbId) -> bool {
        let mut inner = self.shared.lock();
        let removed = inner.device.unlink_urb(id, Instant::now());
        if removed && let Some(tap) = &inner.tap {
            tap.unlinked(id);
        }
        self.shared.dispatch(&mut inner);
        removed
    }

    /// The next completion or request; `None` never happens while the port lives.
    pub async fn recv(&mut self) -> Option<BusOutput> {
        self.rx.recv().await
    }

    /// Take the receiving half, to read completions from another task while this port keeps
    /// submitting. [`BusPort::recv`] then returns `None`.
    pub fn take_receiver(&mut self) -> mpsc::UnboundedReceiver<BusOutput> {
        let (_, empty) = mpsc::unbounded_channel();
        std::mem::replace(&mut self.rx, empty)
    }

    /// A completion or request if one is ready now.
    pub fn try_recv(&mut self) -> Option<BusOutput> {
        self.rx.try_recv().ok()
    }

    /// A bus reset by the host (e.g. a usbredir `reset`): the device is addressed and
    /// configured again from scratch; every pending URB completes as the core decides.
    pub fn reset(&self) {
        let mut inner = self.shared.lock();
        inner.device.bus_reset(self.speed, Instant::now());
        self.shared.dispatch(&mut inner);
    }

    /// Suspend the bus.
    pub fn suspend(&self) {
        let mut inner = self.shared.lock();
        inner.device.bus_suspend();
        self.shared.dispatch(&mut inner);
    }

    /// Resume the bus.
    pub fn resume(&self) {
        let mut inner = self.shared.lock();
        inner.device.bus_resume();
        self.shared.dispatch(&mut inner);
    }
}

impl Drop for BusPort {
    fn drop(&mut self) {
        let mut inner = self.shared.lock();
        if inner.bus_generation == self.generation {
            inner.device.bus_detach(Instant::now());
            self.shared.dispatch(&mut inner);
            inner.bus = None;
        }
    }
}
