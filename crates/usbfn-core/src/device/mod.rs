//! The function controller: a sans-IO USB device with GenericUSBFn semantics.
//!
//! Inputs come from two sides and every output is polled, quinn-style:
//!
//! * the **bus** (USB/IP, usbredir, the in-process host) calls [`Device::bus_attach`],
//!   [`Device::bus_reset`], [`Device::submit_urb`], [`Device::unlink_urb`], ... and drains
//!   [`Device::poll_urb_completion`];
//! * **services** call [`Device::activate`], [`Device::submit_transfer`],
//!   [`Device::control_handshake`], [`Device::set_pipe_state`], ... and drain
//!   [`Device::poll_event`] and [`Device::poll_transfer_completion`];
//! * time is passed in: [`Device::poll_timeout`] says when [`Device::handle_timeout`] is due.

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use bytes::Bytes;
use usbfn_wire::{Direction, EndpointAddress, EndpointDescriptor, SetupPacket, TransferType};

use crate::clock::FrameClock;
use crate::descriptors::{DescriptorSet, DescriptorTooLong};
use crate::event::BusEvent;
use crate::model::DeviceModel;
use crate::model::EndpointModel;
use crate::pipe::{Completions, Pipe, PipeParams};
use crate::status::CompletionStatus;
use crate::types::{
    BusSpeed, FunctionId, IsoCompletion, IsoPacketResult, PipeId, TransferCompletion, TransferId,
    TransferRequest, Urb, UrbCompletion, UrbId,
};

/// Queued service transfers allowed per pipe.
pub const MAX_TRANSFERS_PER_PIPE: usize = 1024;
/// Largest single service transfer.
pub const MAX_TRANSFER_LENGTH: usize = 16 * 1024 * 1024;
/// Bus events kept for a service that is not reading them; more are dropped with a warning.
pub const MAX_QUEUED_EVENTS: usize = 1024;
/// Control URBs queued behind the one being answered.
pub const MAX_QUEUED_CONTROL_URBS: usize = 256;

mod bus;
mod service;
mod types;

pub use types::{BusRequest, ClassInfo, ClassInterfaceInfo, DeviceState, Handshake, ServiceError};
pub(crate) use types::{ControlPipe, ControlUrb, FunctionState, PendingSetup, SetupStage};

/// The function controller.
#[derive(Debug)]
pub struct Device {
    pub(crate) model: DeviceModel,
    pub(crate) sets: Vec<DescriptorSet>,
    pub(crate) state: DeviceState,
    pub(crate) suspended_from: DeviceState,
    pub(crate) speed: BusSpeed,
    pub(crate) address: u8,
    pub(crate) configuration: Option<usize>,
    pub(crate) alternates: Vec<u8>,
    pub(crate) remote_wakeup_enabled: bool,
    pub(crate) test_mode: Option<u8>,
    pub(crate) pipes: Vec<Pipe>,
    /// Active pipe per endpoint address (index: number + 16 for IN).
    pub(crate) active: [Option<PipeId>; 32],
    pub(crate) functions: Vec<FunctionState>,
    /// The default control pipe's state.
    pub(crate) control: ControlPipe,
    pub(crate) strings: BTreeMap<u8, String>,
    pub(crate) out: Completions,
    pub(crate) bus_requests: VecDeque<BusRequest>,
    pub(crate) now: Instant,
    /// The bus clock since the last reset.
    pub(crate) clock: FrameClock,
}

pub(crate) fn address_index(address: EndpointAddress) -> usize {
    usize::from(address.number() & 0x0f) + if address.is_in() { 16 } else { 0 }
}

impl Device {
    /// A detached device for `model`. Fails only if a generated descriptor is too long.
    pub fn new(model: DeviceModel, now: Instant) -> Result<Self, DescriptorTooLong> {
        let mut sets = Vec::new();
        for speed in BusSpeed::ALL {
            sets.push(model.descriptor_set(speed)?);
        }
        let speed = model.max_speed().min(BusSpeed::High);
        let pipes = model
            .pipes
            .iter()
            .map(|p| Pipe::new(p.address.direction(), TransferType::Bulk, 64))
            .collect();
        let functions = model
            .interfaces
            .iter()
            .map(|_| FunctionState::default())
            .collect();
        let strings = model.strings.clone();
        let alternates = vec![0; model.interfaces.len()];
        Ok(Device {
            model,
            sets,
            state: DeviceState::Detached,
            suspended_from: DeviceState::Detached,
            speed,
            address: 0,
            configuration: None,
            alternates,
            remote_wakeup_enabled: false,
            test_mode: None,
            pipes,
            active: [None; 32],
            functions,
            control: ControlPipe::default(),
            strings,
            out: Completions::default(),
            bus_requests: VecDeque::new(),
            now,
            clock: FrameClock::new(now, speed),
        })
    }

    /// The model this device was built from.
    pub fn model(&self) -> &DeviceModel {
        &self.model
    }

    /// The chapter-9 state.
    pub fn state(&self) -> DeviceState {
        self.state
    }

    /// The speed of the last reset.
    pub fn speed(&self) -> BusSpeed {
        self.speed
    }

    /// The active `bConfigurationValue`, if configured.
    pub fn configuration_value(&self) -> Option<u8> {
        self.configuration
            .and_then(|c| self.model.configurations.get(c))
            .map(|c| c.value)
    }

    /// The current alternate setting of a function's interface.
    pub fn alternate_setting(&self, f: FunctionId) -> Option<u8> {
        self.alternates.get(f.0).copied()
    }

    /// True when every service has activated the bus: the device may be offered to hosts.
    pub fn is_ready(&self) -> bool {
        self.functions.iter().all(|f| f.active)
    }

    /// The descriptors the device answers with at `speed`.
    pub fn descriptors(&self, speed: BusSpeed) -> &DescriptorSet {
        // `sets` holds one entry per speed, built in `new`.
        &self.sets[speed.index()]
    }

    /// Whether a pipe is halted, and its data toggle (for tests and tracing).
    pub fn pipe_status(&self, pipe: PipeId) -> Option<(bool, bool)> {
        let p = self.pipes.get(usize::try_from(pipe.0).ok()?)?;
        Some((p.halted, p.toggle))
    }

    /// Events a service did not read in time and that were dropped.
    pub fn dropped_events(&self, f: FunctionId) -> u64 {
        self.functions.get(f.0).map_or(0, |s| s.dropped_events)
    }

    // ----- bus side -------------------------------------------------------------------
}

impl Device {
    /// Take `now` in: settle what the bus clock made due on every pipe.
    fn advance(&mut self, now: Instant) {
        self.now = now;
        let frame = self.clock.frame_at(now);
        for pipe in self.pipes.iter_mut().skip(1) {
            pipe.advance(frame, &mut self.out);
        }
    }

    /// Complete a URB at once with `status` (with per-packet results if it is isochronous).
    fn refuse_urb(&mut self, urb: Urb, status: CompletionStatus) {
        let iso = urb.iso.map(|iso| IsoCompletion {
            start_frame: iso.start_frame.unwrap_or(0),
            packets: iso
                .packets
                .into_iter()
                .map(|packet| IsoPacketResult {
                    packet,
                    actual_length: 0,
                    status,
                })
                .collect(),
        });
        self.out.urbs.push_back(UrbCompletion {
            id: urb.id,
            status,
            actual_length: 0,
            data: Bytes::new(),
            iso,
        });
    }

    fn function(&self, f: FunctionId) -> Result<&FunctionState, ServiceError> {
        self.functions
            .get(f.0)
            .ok_or_else(|| ServiceError::InvalidParameter(format!("no interface {}", f.0)))
    }

    /// The pipe index if `f` owns `pipe`.
    fn owned_pipe(&self, f: FunctionId, pipe: PipeId) -> Result<usize, ServiceError> {
        let index = usize::try_from(pipe.0)
            .ok()
            .filter(|i| *i > 0 && *i < self.pipes.len())
            .ok_or_else(|| {
                ServiceError::InvalidParameter(format!(
                    "no pipe {} (this device has pipes 0..={})",
                    pipe.0,
                    self.pipes.len() - 1
                ))
            })?;
        let owner = self.model.pipes[index].function;
        if owner != f {
            let owner = self
                .model
                .interface(owner)
                .map(|i| i.name.clone())
                .unwrap_or_default();
            return Err(ServiceError::NotOwner {
                pipe: pipe.0,
                owner,
            });
        }
        Ok(index)
    }

    pub(crate) fn function_pipes(&self, f: FunctionId) -> Vec<usize> {
        (1..self.model.pipes.len())
            .filter(|&i| self.model.pipes[i].function == f)
            .collect()
    }

    /// Queue an event for every active function (of the active configuration, for
    /// configuration events).
    pub(crate) fn broadcast(&mut self, event: BusEvent) {
        for f in 0..self.functions.len() {
            self.notify(FunctionId(f), event);
        }
    }

    pub(crate) fn notify(&mut self, f: FunctionId, event: BusEvent) {
        let Some(state) = self.functions.get_mut(f.0) else {
            return;
        };
        if !state.active {
            return;
        }
        if state.events.len() >= MAX_QUEUED_EVENTS {
            state.dropped_events += 1;
            tracing::warn!(
                function = f.0,
                ?event,
                limit = MAX_QUEUED_EVENTS,
                "service is not reading bus events: event dropped"
            );
            return;
        }
        state.events.push_back(event);
    }

    /// Cancel every transfer, fail every URB, drop the configuration.
    fn abort_everything(
        &mut self,
        transfer_status: CompletionStatus,
        urb_status: CompletionStatus,
    ) {
        for id in self.control.drain() {
            self.out.urb(id, urb_status, 0, Bytes::new());
        }
        for f in &mut self.functions {
            f.handshake_owed = false;
        }
        for pipe in self.pipes.iter_mut().skip(1) {
            pipe.abort(transfer_status, urb_status, &mut self.out);
        }
        self.configuration = None;
        self.active = [None; 32];
        self.alternates.iter_mut().for_each(|a| *a = 0);
    }

    /// A configuration or alternate-setting change for `f`: its transfers are cancelled and
    /// the host's URBs on its pipes fail with `-ESHUTDOWN`, as a Linux UDC driver does.
    pub(crate) fn abort_function_pipes(&mut self, f: FunctionId) {
        for pipe in self.function_pipes(f) {
            if let Some(p) = self.pipes.get_mut(pipe) {
                p.abort(
                    CompletionStatus::Cancelled,
                    CompletionStatus::Shutdown,
                    &mut self.out,
                );
            }
        }
    }

    /// Make `config_index`'s interfaces (at their current alternate settings) the active
    /// pipes, at the current speed.
    pub(crate) fn activate_pipes(&mut self, f: FunctionId) {
        let Some(iface) = self.model.interfaces.get(f.0) else {
            return;
        };
        // Drop this function's previous endpoints.
        for slot in self.active.iter_mut() {
            if let Some(p) = *slot
                && self
                    .model
                    .pipes
                    // An unrepresentable ID matches no pipe (`get` is None).
                    .get(usize::try_from(p.0).unwrap_or(usize::MAX))
                    .is_some_and(|m| m.function == f)
            {
                *slot = None;
            }
        }
        let alt = usize::from(self.alternates[f.0]);
        let Some(setting) = iface.alternates.get(alt) else {
            return;
        };
        for ep in &setting.endpoints {
            let params = pipe_params(ep, self.speed);
            if let Some(pipe) = usize::try_from(ep.pipe.0)
                .ok()
                .and_then(|i| self.pipes.get_mut(i))
            {
                pipe.reconfigure(params);
            }
            self.active[address_index(ep.address)] = Some(ep.pipe);
        }
    }
}

fn wrong_direction(pipe: PipeId, dir: Direction) -> ServiceError {
    ServiceError::InvalidParameter(format!(
        "pipe {} is an {dir:?} pipe; use TRANSFER_{} on it",
        pipe.0,
        if dir == Direction::In { "IN" } else { "OUT" }
    ))
}

/// How an endpoint moves packets at `speed`: packet size, interval in (micro)frames
/// (`bInterval` frames for full-speed interrupt, `2^(bInterval-1)` otherwise) and packets
/// per interval (high-bandwidth transactions at high speed; burst × Mult at SuperSpeed).
pub(crate) fn pipe_params(ep: &EndpointModel, speed: BusSpeed) -> PipeParams {
    let at = ep.at(speed);
    let exponent = |b: u8| 1u64 << (b.clamp(1, 16) - 1);
    let interval = match (ep.transfer_type, speed) {
        (TransferType::Interrupt, BusSpeed::Full) => u64::from(at.interval.max(1)),
        (TransferType::Interrupt | TransferType::Isochronous, _) => exponent(at.interval),
        _ => 1,
    };
    let transactions = match speed {
        BusSpeed::Full => 1,
        BusSpeed::High => ((at.w_max_packet_size >> 11) & 3) + 1,
        BusSpeed::Super => {
            let mult = if ep.transfer_type == TransferType::Isochronous {
                u16::from(ep.ss_attributes & 3) + 1
            } else {
                1
            };
            (u16::from(ep.max_burst) + 1) * mult
        }
    };
    PipeParams {
        transfer_type: ep.transfer_type,
        max_packet: at.packet_size(),
        interval,
        transactions,
    }
}
