//! Device-level tests: a simulated host (`SimHost`) and a scripted service pump the sans-IO
//! core.

mod descriptors;
#[allow(clippy::cast_possible_truncation)] // test sizes are small
mod periodic;
mod requests;
mod transfers;

use std::time::Instant;

use bytes::Bytes;
use usbfn_wire::{DescriptorType, Direction, Recipient, RequestType, SetupPacket, StandardRequest};

use crate::*;

pub(super) const GZ: &str = r#"
    [device]
    vendor_id = 0x0525
    product_id = 0xa4a0
    manufacturer = "usbfn"
    product = "Gadget Zero"
    serial = "0123456789"
    [[interfaces]]
    name = "source-sink"
    guid = "{6C5B3F5E-0D6F-4B0E-9A59-0A5C3B0E7D11}"
    device_request_owner = true
    [[interfaces.endpoints]]
    direction = "in"
    type = "bulk"
    [[interfaces.endpoints]]
    direction = "out"
    type = "bulk"
    [[interfaces.alternates]]
    class = 0xff
    [[interfaces.alternates.endpoints]]
    direction = "in"
    type = "interrupt"
    max_packet = 64
"#;

/// A host that speaks to the device one URB at a time.
pub(super) struct SimHost {
    pub(super) dev: Device,
    pub(super) now: Instant,
    next: u64,
}

pub(super) const F0: FunctionId = FunctionId(0);

impl SimHost {
    pub(super) fn new(config: &str, speed: BusSpeed) -> Self {
        let model =
            DeviceModel::build(&DeviceConfig::from_toml(config).expect("toml")).expect("valid");
        let now = Instant::now();
        let mut dev = Device::new(model, now).expect("descriptors fit");
        for f in 0..dev.model().interfaces.len() {
            dev.activate(FunctionId(f)).expect("activate");
        }
        assert_eq!(dev.poll_bus_request(), Some(BusRequest::Ready));
        dev.bus_attach(now);
        dev.bus_reset(speed, now);
        let mut host = SimHost { dev, now, next: 1 };
        host.drain_events(F0);
        host
    }

    pub(super) fn id(&mut self) -> UrbId {
        self.next += 1;
        UrbId(self.next)
    }

    pub(super) fn submit(&mut self, urb: Urb) {
        self.dev.submit_urb(urb, self.now);
    }

    pub(super) fn control(&mut self, setup: SetupPacket, data: &[u8]) -> UrbId {
        let id = self.id();
        self.submit(Urb {
            id,
            endpoint: 0,
            direction: setup.direction(),
            setup: Some(setup),
            buffer_len: usize::from(setup.w_length),
            data: Bytes::copy_from_slice(data),
            short_not_ok: false,
            zero_packet: false,
            iso: None,
        });
        id
    }

    /// A control transfer answered by the core.
    pub(super) fn control_now(&mut self, setup: SetupPacket, data: &[u8]) -> UrbCompletion {
        let id = self.control(setup, data);
        let c = self.dev.poll_urb_completion().expect("answered at once");
        assert_eq!(c.id, id);
        c
    }

    pub(super) fn get_descriptor(
        &mut self,
        kind: DescriptorType,
        index: u8,
        len: u16,
    ) -> UrbCompletion {
        self.control_now(
            SetupPacket::new(
                Direction::In,
                RequestType::Standard,
                Recipient::Device,
                StandardRequest::GET_DESCRIPTOR.0,
                u16::from(kind.0) << 8 | u16::from(index),
                0,
                len,
            ),
            &[],
        )
    }

    pub(super) fn set_configuration(&mut self, value: u8) -> UrbCompletion {
        self.control_now(
            SetupPacket::new(
                Direction::Out,
                RequestType::Standard,
                Recipient::Device,
                StandardRequest::SET_CONFIGURATION.0,
                u16::from(value),
                0,
                0,
            ),
            &[],
        )
    }

    pub(super) fn bulk_in(&mut self, ep: u8, len: usize) -> UrbId {
        let id = self.id();
        self.submit(Urb {
            id,
            endpoint: ep,
            direction: Direction::In,
            setup: None,
            buffer_len: len,
            data: Bytes::new(),
            short_not_ok: false,
            zero_packet: false,
            iso: None,
        });
        id
    }

    pub(super) fn bulk_out(&mut self, ep: u8, data: Bytes) -> UrbId {
        let id = self.id();
        self.submit(Urb {
            id,
            endpoint: ep,
            direction: Direction::Out,
            setup: None,
            buffer_len: data.len(),
            data,
            short_not_ok: false,
            zero_packet: false,
            iso: None,
        });
        id
    }

    pub(super) fn drain_events(&mut self, f: FunctionId) -> Vec<BusEvent> {
        std::iter::from_fn(|| self.dev.poll_event(f)).collect()
    }
}

pub(super) fn std_out(
    request: StandardRequest,
    recipient: Recipient,
    value: u16,
    index: u16,
) -> SetupPacket {
    SetupPacket::new(
        Direction::Out,
        RequestType::Standard,
        recipient,
        request.0,
        value,
        index,
        0,
    )
}

pub(super) fn std_in(
    request: StandardRequest,
    recipient: Recipient,
    value: u16,
    index: u16,
    len: u16,
) -> SetupPacket {
    SetupPacket::new(
        Direction::In,
        RequestType::Standard,
        recipient,
        request.0,
        value,
        index,
        len,
    )
}
