//! A simulated host for tests, benchmarks and fuzz targets of the sans-IO core (feature
//! `testkit`): it pumps a [`Device`] in virtual time, one URB at a time, the way quinn's
//! `Pair` pumps two connections. Buses (USB/IP, usbredir) and the in-process host of the
//! `usbfn` crate drive the same inputs with real I/O.
//!
//! The kit's methods panic when the device does not behave as a test assumes (an input that
//! should complete at once does not): that is the test failing. No untrusted input reaches
//! it: the `testkit` feature is enabled only by `usbfn-core`'s own dev-dependency (tests and
//! benches) and by the fuzz crate's harnesses, whose fixtures are fixed device files; no
//! program of usbfn's compiles it.

use std::time::{Duration, Instant};

use bytes::Bytes;
use usbfn_wire::{DescriptorType, SetupPacket};

use crate::{
    BusEvent, BusRequest, BusSpeed, Device, DeviceConfig, DeviceModel, FunctionId, Urb,
    UrbCompletion, UrbId,
};

/// A host attached to one device, with a virtual clock.
#[derive(Debug)]
pub struct SimHost {
    /// The device under test (its service side is driven directly by the test).
    pub dev: Device,
    /// The virtual time every input carries.
    pub now: Instant,
    next: u64,
}

impl SimHost {
    /// A device from `config` (TOML), every interface activated, attached and reset at
    /// `speed`, with the first function's events drained.
    ///
    /// # Panics
    ///
    /// When the TOML or the configuration is invalid.
    #[allow(clippy::expect_used)] // a test kit: an invalid fixture is the test's failure
    pub fn new(config: &str, speed: BusSpeed) -> Self {
        let model =
            // A test's own fixture: an invalid one is the test's failure.
            DeviceModel::build(&DeviceConfig::from_toml(config).expect("toml")).expect("valid");
        Self::from_model(model, speed)
    }

    /// As [`SimHost::new`], from a validated model.
    ///
    /// # Panics
    ///
    /// When a descriptor does not fit, or the device does not ask the bus to connect.
    #[allow(clippy::expect_used)] // a test kit
    pub fn from_model(model: DeviceModel, speed: BusSpeed) -> Self {
        let now = Instant::now();
        // A validated test fixture; its descriptors not fitting is the test's failure, and
        // activating an interface the model has cannot be refused.
        let mut dev = Device::new(model, now).expect("descriptors fit");
        for f in 0..dev.model().interfaces().len() {
            dev.activate(FunctionId(f)).expect("activate");
        }
        assert_eq!(dev.poll_bus_request(), Some(BusRequest::Ready));
        dev.bus_attach(now);
        dev.bus_reset(speed, now);
        let mut host = SimHost { dev, now, next: 1 };
        host.drain_events(FunctionId(0));
        host
    }

    /// A device from `model`, not attached and with no interface activated: for scripts that
    /// drive every bus and service input themselves (the `core_events` fuzz target).
    ///
    /// # Panics
    ///
    /// When a descriptor does not fit.
    #[allow(clippy::expect_used)] // a test kit
    pub fn unattached(model: DeviceModel) -> Self {
        let now = Instant::now();
        // A validated test fixture: its descriptors not fitting is the test's failure.
        let dev = Device::new(model, now).expect("descriptors fit");
        SimHost { dev, now, next: 1 }
    }

    /// Move the virtual clock on by `by` and let due timers fire.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        self.dev.handle_timeout(self.now);
    }

    /// A fresh URB ID.
    pub fn id(&mut self) -> UrbId {
        self.next += 1;
        UrbId(self.next)
    }

    /// Submit `urb` now, as it is (its ID included).
    pub fn submit(&mut self, urb: Urb) {
        self.dev.submit_urb(urb, self.now);
    }

    /// Submit `urb` now under a fresh ID (whatever `urb.id` held); that ID.
    pub fn submit_new(&mut self, urb: Urb) -> UrbId {
        let id = self.id();
        self.submit(Urb { id, ..urb });
        id
    }

    /// Submit a control URB; its ID.
    pub fn control(&mut self, setup: SetupPacket, data: &[u8]) -> UrbId {
        self.submit_new(Urb::control(UrbId(0), setup, Bytes::copy_from_slice(data)))
    }

    /// A control transfer the core answers by itself, at once.
    ///
    /// # Panics
    ///
    /// When it is not answered at once.
    #[allow(clippy::expect_used)] // a test kit
    pub fn control_now(&mut self, setup: SetupPacket, data: &[u8]) -> UrbCompletion {
        let id = self.control(setup, data);
        // The caller asserts the core answers this request itself; if not, the test fails.
        let c = self.dev.poll_urb_completion().expect("answered at once");
        assert_eq!(c.id, id);
        c
    }

    /// GET_DESCRIPTOR(`kind`, `index`) for `len` bytes.
    pub fn get_descriptor(&mut self, kind: DescriptorType, index: u8, len: u16) -> UrbCompletion {
        self.control_now(SetupPacket::get_descriptor(kind, index, 0, len), &[])
    }

    /// SET_CONFIGURATION(`value`).
    pub fn set_configuration(&mut self, value: u8) -> UrbCompletion {
        self.control_now(SetupPacket::set_configuration(value), &[])
    }

    /// Submit a bulk or interrupt IN URB; its ID.
    pub fn bulk_in(&mut self, ep: u8, len: usize) -> UrbId {
        self.submit_new(Urb::bulk_in(UrbId(0), ep, len))
    }

    /// Submit a bulk or interrupt OUT URB; its ID.
    pub fn bulk_out(&mut self, ep: u8, data: Bytes) -> UrbId {
        self.submit_new(Urb::bulk_out(UrbId(0), ep, data))
    }

    /// Every event queued for `f`.
    pub fn drain_events(&mut self, f: FunctionId) -> Vec<BusEvent> {
        std::iter::from_fn(|| self.dev.poll_event(f)).collect()
    }

    /// Every URB completion queued.
    pub fn drain_completions(&mut self) -> Vec<UrbCompletion> {
        std::iter::from_fn(|| self.dev.poll_urb_completion()).collect()
    }
}
