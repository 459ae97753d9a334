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

/// USB device states (chapter 9), as GenericUSBFn's `USBFN_DEVICE_STATE` names them.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DeviceState {
    /// Not connected to a host.
    Detached,
    /// Connected, not yet reset.
    Attached,
    /// Reset, address 0.
    Default,
    /// Has an address.
    Addressed,
    /// Has a configuration.
    Configured,
    /// Suspended (from any connected state).
    Suspended,
}

/// What a bus should do on the device's behalf.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum BusRequest {
    /// A service deactivated the bus: disconnect the host.
    Disconnect,
    /// The device became ready (every service activated): it may be offered to hosts.
    Ready,
}

/// Why a service request was refused. Each maps to one NTSTATUS.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// A parameter is wrong (unknown pipe, wrong direction, bad index).
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    /// The request does not fit the device's state (not configured, no setup pending, ...).
    #[error("invalid device state: {0}")]
    InvalidDeviceState(String),
    /// The pipe belongs to another interface.
    #[error("pipe {pipe} belongs to interface {owner:?}, not to this one")]
    NotOwner {
        /// The pipe.
        pipe: u32,
        /// Its owner.
        owner: String,
    },
    /// A limit was hit.
    #[error("limit exceeded: {what} (limit {limit})")]
    LimitExceeded {
        /// What.
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// Not supported by usbfn.
    #[error("not supported: {0}")]
    NotSupported(&'static str),
}

impl ServiceError {
    /// The NTSTATUS for this refusal.
    pub fn to_ntstatus(&self) -> usbfn_abi::NtStatus {
        use usbfn_abi::NtStatus;
        match self {
            ServiceError::InvalidParameter(_) | ServiceError::NotOwner { .. } => {
                NtStatus::STATUS_INVALID_PARAMETER
            }
            ServiceError::InvalidDeviceState(_) => NtStatus::STATUS_INVALID_DEVICE_STATE,
            ServiceError::LimitExceeded { .. } => NtStatus::STATUS_INSUFFICIENT_RESOURCES,
            ServiceError::NotSupported(_) => NtStatus::STATUS_NOT_SUPPORTED,
        }
    }
}

/// The two directions a control status handshake can be named by.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Handshake {
    /// `CONTROL_STATUS_HANDSHAKE_IN`.
    In,
    /// `CONTROL_STATUS_HANDSHAKE_OUT`.
    Out,
}

/// Pipes of one interface at one speed, as `GET_CLASS_INFO` reports them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassInterfaceInfo {
    /// bInterfaceNumber.
    pub interface_number: u8,
    /// Data pipes (pipe 0 is implicit): the endpoint descriptor at this speed (of the first
    /// alternate setting that declares the address) and the pipe id.
    pub pipes: Vec<(EndpointDescriptor, PipeId)>,
}

/// `GET_CLASS_INFO` for one interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassInfo {
    /// Per speed: full, high, super.
    pub per_speed: [ClassInterfaceInfo; 3],
    /// InterfaceName.
    pub name: String,
    /// InterfaceGuid.
    pub guid: Option<String>,
}

impl ClassInfo {
    /// The pipes at `speed`.
    pub fn at(&self, speed: BusSpeed) -> &ClassInterfaceInfo {
        &self.per_speed[speed.index()]
    }
}

#[derive(Debug, Default)]
pub(crate) struct FunctionState {
    pub(crate) active: bool,
    pub(crate) events: VecDeque<BusEvent>,
    pub(crate) dropped_events: u64,
    /// An IN data stage was answered and the URB completed; a status handshake may follow.
    pub(crate) handshake_owed: bool,
}

#[derive(Debug)]
pub(crate) struct ControlUrb {
    pub(crate) id: UrbId,
    pub(crate) setup: SetupPacket,
    pub(crate) data: Bytes,
    pub(crate) buffer_len: usize,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum SetupStage {
    /// Waiting for the service's data-stage transfer on pipe 0.
    Data,
    /// OUT data was delivered; waiting for the status handshake.
    Status,
}

#[derive(Debug)]
pub(crate) struct PendingSetup {
    pub(crate) urb: ControlUrb,
    pub(crate) function: FunctionId,
    pub(crate) stage: SetupStage,
    pub(crate) deadline: Instant,
}

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
    pub(crate) control_queue: VecDeque<ControlUrb>,
    pub(crate) pending: Option<PendingSetup>,
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
            control_queue: VecDeque::new(),
            pending: None,
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

    /// A host port saw the device connect.
    pub fn bus_attach(&mut self, now: Instant) {
        self.now = now;
        self.state = DeviceState::Attached;
        self.broadcast(BusEvent::Attach);
    }

    /// A bus reset at `speed` (clamped to the device's maximum): transfers are cancelled,
    /// the configuration dropped, the address cleared.
    pub fn bus_reset(&mut self, speed: BusSpeed, now: Instant) {
        self.now = now;
        self.abort_everything(CompletionStatus::Cancelled, CompletionStatus::Shutdown);
        self.speed = speed.min(self.model.max_speed());
        self.clock = FrameClock::new(now, self.speed);
        self.state = DeviceState::Default;
        self.address = 0;
        self.remote_wakeup_enabled = false;
        self.test_mode = None;
        let speed = self.speed;
        self.broadcast(BusEvent::Reset(speed));
    }

    /// The host disconnected: every URB and transfer ends.
    pub fn bus_detach(&mut self, now: Instant) {
        self.now = now;
        if self.state == DeviceState::Detached {
            return;
        }
        self.abort_everything(CompletionStatus::Cancelled, CompletionStatus::Shutdown);
        self.state = DeviceState::Detached;
        self.broadcast(BusEvent::Detach);
    }

    /// The bus went idle.
    pub fn bus_suspend(&mut self) {
        if matches!(self.state, DeviceState::Detached | DeviceState::Suspended) {
            return;
        }
        self.suspended_from = self.state;
        self.state = DeviceState::Suspended;
        self.broadcast(BusEvent::Suspend);
    }

    /// The bus resumed.
    pub fn bus_resume(&mut self) {
        if self.state != DeviceState::Suspended {
            return;
        }
        self.state = self.suspended_from;
        self.broadcast(BusEvent::Resume);
    }

    /// A URB from the host. Every URB completes exactly once through
    /// [`Device::poll_urb_completion`], now or later, unless [`Device::unlink_urb`] removes it.
    pub fn submit_urb(&mut self, urb: Urb, now: Instant) {
        self.advance(now);
        if matches!(self.state, DeviceState::Detached | DeviceState::Attached) {
            self.refuse_urb(urb, CompletionStatus::Shutdown);
            return;
        }
        if urb.endpoint == 0 {
            if urb.iso.is_some() {
                // Endpoint 0 is a control endpoint: refused like any iso URB on a non-iso
                // endpoint, with a result for every packet.
                self.refuse_urb(urb, CompletionStatus::Invalid);
                return;
            }
            self.submit_control_urb(urb);
            return;
        }
        if urb.endpoint > 15 {
            self.refuse_urb(urb, CompletionStatus::Invalid);
            return;
        }
        let dir_bit = if urb.direction == Direction::In {
            0x80
        } else {
            0
        };
        let address = EndpointAddress(urb.endpoint | dir_bit);
        let Some(pipe_id) = self.active[address_index(address)] else {
            // No such endpoint in the current configuration and alternate setting.
            self.refuse_urb(urb, CompletionStatus::Stall);
            return;
        };
        let Some(index) = usize::try_from(pipe_id.0)
            .ok()
            .filter(|i| *i < self.pipes.len())
        else {
            self.refuse_urb(urb, CompletionStatus::Invalid);
            return;
        };
        let is_iso = self.pipes[index].transfer_type == TransferType::Isochronous;
        if is_iso != urb.iso.is_some() {
            // An isochronous URB on another endpoint type, or the reverse: a host HCD
            // refuses those at submit; refuse them here too.
            self.refuse_urb(urb, CompletionStatus::Invalid);
            return;
        }
        let frame = self.clock.frame_at(now);
        let pipe = &mut self.pipes[index];
        if let Some(iso) = urb.iso {
            pipe.iso
                .submit_urb(urb.id, urb.data, iso, frame, &self.clock, &mut self.out);
            return;
        }
        match urb.direction {
            Direction::In => {
                pipe.submit_in_urb(urb.id, urb.buffer_len, urb.short_not_ok, &mut self.out)
            }
            Direction::Out => pipe.submit_out_urb(urb.id, urb.data, urb.zero_packet, &mut self.out),
        }
    }

    /// The host cancels a URB. True: it was pending and is gone (no completion will come);
    /// false: unknown or already completed.
    pub fn unlink_urb(&mut self, id: UrbId, now: Instant) -> bool {
        self.now = now;
        if let Some(pos) = self.control_queue.iter().position(|u| u.id == id) {
            self.control_queue.remove(pos);
            return true;
        }
        if self.pending.as_ref().is_some_and(|p| p.urb.id == id) {
            if let Some(p) = self.pending.take() {
                tracing::debug!(
                    urb = id.0,
                    "host unlinked a control URB a service was answering"
                );
                self.functions[p.function.0].handshake_owed = false;
            }
            self.start_next_control();
            return true;
        }
        self.pipes.iter_mut().any(|p| p.unlink_urb(id))
    }

    /// The next URB completion for the bus.
    pub fn poll_urb_completion(&mut self) -> Option<UrbCompletion> {
        self.out.urbs.pop_front()
    }

    /// What the bus should do next, if anything.
    pub fn poll_bus_request(&mut self) -> Option<BusRequest> {
        self.bus_requests.pop_front()
    }

    /// When [`Device::handle_timeout`] should next be called: a setup packet's timeout, or
    /// the bus clock making an isochronous or interrupt URB due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let setup = self.pending.as_ref().map(|p| p.deadline);
        self.pipes
            .iter()
            .skip(1)
            .filter_map(|p| p.deadline(&self.clock))
            .chain(setup)
            .min()
    }

    /// Complete what the bus clock made due (isochronous and interrupt URBs), and expire a
    /// setup packet a service did not answer in time: the host sees a STALL.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        if let Some(p) = self.pending.as_ref().filter(|p| p.deadline <= now) {
            let setup = p.urb.setup;
            let name = self
                .model
                .interfaces
                .get(p.function.0)
                .map(|i| i.name.clone())
                .unwrap_or_default();
            tracing::warn!(interface = %name, %setup, timeout = ?self.model.setup_timeout(), "service did not answer a setup packet in time: STALL");
            self.finish_pending(CompletionStatus::Stall, Bytes::new());
        }
    }

    // ----- service side ---------------------------------------------------------------

    /// `ACTIVATE_USB_BUS`.
    pub fn activate(&mut self, f: FunctionId) -> Result<(), ServiceError> {
        self.function(f)?;
        let was_ready = self.is_ready();
        self.functions[f.0].active = true;
        if !was_ready && self.is_ready() {
            self.bus_requests.push_back(BusRequest::Ready);
        }
        Ok(())
    }

    /// `DEACTIVATE_USB_BUS`: the function's transfers are cancelled and a connected host is
    /// disconnected (the bus is asked to detach).
    pub fn deactivate(&mut self, f: FunctionId, now: Instant) -> Result<(), ServiceError> {
        self.function(f)?;
        self.now = now;
        if !self.functions[f.0].active {
            return Ok(());
        }
        self.functions[f.0].active = false;
        self.functions[f.0].events.clear();
        self.functions[f.0].handshake_owed = false;
        if self.pending.as_ref().is_some_and(|p| p.function == f) {
            self.finish_pending(CompletionStatus::Stall, Bytes::new());
        }
        for pipe in self.function_pipes(f) {
            self.pipes[pipe].cancel_all_transfers(CompletionStatus::Cancelled, &mut self.out);
        }
        if self.state != DeviceState::Detached {
            self.bus_requests.push_back(BusRequest::Disconnect);
        }
        Ok(())
    }

    /// Whether a function has activated the bus.
    pub fn is_active(&self, f: FunctionId) -> bool {
        self.functions.get(f.0).is_some_and(|s| s.active)
    }

    /// Whether a service has unread events.
    pub fn has_events(&self, f: FunctionId) -> bool {
        self.functions
            .get(f.0)
            .is_some_and(|s| !s.events.is_empty())
    }

    /// The next bus event for a service (`BUS_EVENT_NOTIFICATION`).
    pub fn poll_event(&mut self, f: FunctionId) -> Option<BusEvent> {
        self.functions.get_mut(f.0)?.events.pop_front()
    }

    /// Queue a transfer. Its completion arrives through [`Device::poll_transfer_completion`].
    pub fn submit_transfer(
        &mut self,
        f: FunctionId,
        id: TransferId,
        pipe: PipeId,
        request: TransferRequest,
        now: Instant,
    ) -> Result<(), ServiceError> {
        self.function(f)?;
        self.advance(now);
        let len = match &request {
            TransferRequest::In { data, .. } => data.len(),
            TransferRequest::Out { capacity } => *capacity,
        };
        if len > MAX_TRANSFER_LENGTH {
            return Err(ServiceError::LimitExceeded {
                what: "transfer length (MAX_TRANSFER_LENGTH)",
                limit: MAX_TRANSFER_LENGTH,
            });
        }
        if pipe == PipeId::CONTROL {
            return self.control_data_stage(f, id, request);
        }
        let index = self.owned_pipe(f, pipe)?;
        if self.state != DeviceState::Configured && self.state != DeviceState::Suspended {
            return Err(ServiceError::InvalidDeviceState(format!(
                "transfers need a configured device; the device is {:?}",
                self.state
            )));
        }
        let address = self.model.pipes[index].address;
        if self.active[address_index(address)] != Some(pipe) {
            return Err(ServiceError::InvalidDeviceState(format!(
                "pipe {} (endpoint {:#04x}) is not part of the current alternate setting",
                pipe.0, address.0
            )));
        }
        let frame = self.clock.frame_at(now);
        let p = &mut self.pipes[index];
        if p.queued_transfers() >= MAX_TRANSFERS_PER_PIPE {
            return Err(ServiceError::LimitExceeded {
                what: "queued transfers per pipe (MAX_TRANSFERS_PER_PIPE)",
                limit: MAX_TRANSFERS_PER_PIPE,
            });
        }
        if p.transfer_type == TransferType::Isochronous {
            match (request, p.direction) {
                (TransferRequest::In { data, .. }, Direction::In) => {
                    p.iso.submit_in_transfer(id, data, frame);
                }
                (TransferRequest::Out { capacity }, Direction::Out) => {
                    p.iso.submit_out_transfer(id, capacity, frame);
                }
                (_, dir) => return Err(wrong_direction(pipe, dir)),
            }
            return Ok(());
        }
        match (request, p.direction) {
            (
                TransferRequest::In {
                    data,
                    append_zero_packet,
                },
                Direction::In,
            ) => {
                p.submit_in_transfer(id, data, append_zero_packet, &mut self.out);
            }
            (TransferRequest::Out { capacity }, Direction::Out) => {
                p.submit_out_transfer(id, capacity, &mut self.out);
            }
            (_, dir) => return Err(wrong_direction(pipe, dir)),
        }
        Ok(())
    }

    /// Cancel a queued transfer (CancelIoEx, or a dropped future). It completes with
    /// [`CompletionStatus::Cancelled`]. False if it is not queued (already complete).
    pub fn cancel_transfer(&mut self, id: TransferId) -> bool {
        let out = &mut self.out;
        self.pipes
            .iter_mut()
            .any(|p| p.cancel_transfer(id, CompletionStatus::Cancelled, out))
    }

    /// The next service transfer completion.
    pub fn poll_transfer_completion(&mut self) -> Option<TransferCompletion> {
        self.out.transfers.pop_front()
    }

    /// `GET_PIPE_STATE`: true when stalled.
    pub fn get_pipe_state(&self, f: FunctionId, pipe: PipeId) -> Result<bool, ServiceError> {
        self.function(f)?;
        if pipe == PipeId::CONTROL {
            return Ok(false);
        }
        let index = self.owned_pipe(f, pipe)?;
        Ok(self.pipes[index].halted)
    }

    /// `SET_PIPE_STATE`: stall or un-stall a pipe. Stalling pipe 0 refuses the setup packet
    /// being answered.
    pub fn set_pipe_state(
        &mut self,
        f: FunctionId,
        pipe: PipeId,
        stall: bool,
        now: Instant,
    ) -> Result<(), ServiceError> {
        self.function(f)?;
        self.now = now;
        if pipe == PipeId::CONTROL {
            if !stall {
                return Ok(());
            }
            return match &self.pending {
                Some(p) if p.function == f => {
                    self.finish_pending(CompletionStatus::Stall, Bytes::new());
                    Ok(())
                }
                _ => Err(ServiceError::InvalidDeviceState(
                    "no setup packet of this interface is being answered".into(),
                )),
            };
        }
        let index = self.owned_pipe(f, pipe)?;
        let p = &mut self.pipes[index];
        if p.transfer_type == TransferType::Isochronous {
            return if stall {
                Err(ServiceError::InvalidParameter(format!(
                    "pipe {} is isochronous: isochronous endpoints have no halt",
                    pipe.0
                )))
            } else {
                Ok(())
            };
        }
        if stall {
            p.set_halt(&mut self.out);
        } else {
            p.clear_halt(&mut self.out);
        }
        Ok(())
    }

    /// `CONTROL_STATUS_HANDSHAKE_IN` / `_OUT`: finish the status stage of the setup packet
    /// being answered. Both names are accepted for either direction (the GenericUSBFn
    /// header names them from the data stage, USB from the status stage).
    pub fn control_handshake(
        &mut self,
        f: FunctionId,
        _which: Handshake,
        now: Instant,
    ) -> Result<(), ServiceError> {
        self.function(f)?;
        self.now = now;
        match &self.pending {
            Some(p) if p.function == f => {
                if p.stage == SetupStage::Data && p.urb.setup.w_length > 0 {
                    if p.urb.setup.direction() == Direction::Out {
                        // The service acknowledges without reading the data: accept it.
                        let len = p.urb.data.len();
                        self.finish_pending(CompletionStatus::Success, Bytes::new());
                        tracing::debug!(
                            len,
                            "status handshake before reading OUT data: data discarded"
                        );
                        return Ok(());
                    }
                    return Err(ServiceError::InvalidDeviceState(
                        "the setup packet has an IN data stage: send it with TRANSFER_IN on pipe 0 first".into(),
                    ));
                }
                self.finish_pending(CompletionStatus::Success, Bytes::new());
                Ok(())
            }
            _ if self.functions[f.0].handshake_owed => {
                self.functions[f.0].handshake_owed = false;
                Ok(())
            }
            _ => Err(ServiceError::InvalidDeviceState(
                "no setup packet of this interface is being answered".into(),
            )),
        }
    }

    /// `REGISTER_USB_STRING`: serve `text` at string index `index` (1..=255).
    pub fn register_string(&mut self, index: u8, text: &str) -> Result<(), ServiceError> {
        if index == 0 {
            return Err(ServiceError::InvalidParameter(
                "string index 0 is the LANGID list".into(),
            ));
        }
        let units = text.encode_utf16().count();
        if units > crate::model::MAX_STRING_UNITS {
            return Err(ServiceError::InvalidParameter(format!(
                "string of {units} UTF-16 code units exceeds the limit of {}",
                crate::model::MAX_STRING_UNITS
            )));
        }
        self.strings.insert(index, text.to_owned());
        Ok(())
    }

    /// `GET_CLASS_INFO`: the interface's pipes at each speed.
    pub fn class_info(&self, f: FunctionId) -> Result<ClassInfo, ServiceError> {
        let iface = self
            .model
            .interface(f)
            .ok_or_else(|| ServiceError::InvalidParameter(format!("no interface {}", f.0)))?;
        let per_speed = BusSpeed::ALL.map(|speed| {
            let mut pipes: Vec<(EndpointDescriptor, PipeId)> = Vec::new();
            for alt in &iface.alternates {
                for ep in &alt.endpoints {
                    if pipes.iter().any(|(_, p)| *p == ep.pipe) {
                        continue;
                    }
                    let params = ep.at(speed);
                    let mut desc = EndpointDescriptor::new(
                        ep.address,
                        ep.transfer_type,
                        params.w_max_packet_size,
                        params.interval,
                    );
                    if ep.transfer_type == TransferType::Isochronous {
                        desc.bm_attributes |= ep.iso_attributes;
                    }
                    pipes.push((desc, ep.pipe));
                }
            }
            ClassInterfaceInfo {
                interface_number: iface.number,
                pipes,
            }
        });
        Ok(ClassInfo {
            per_speed,
            name: iface.name.clone(),
            guid: iface.guid.clone(),
        })
    }

    /// `GET_INTERFACE_DESCRIPTOR_SET`.
    pub fn interface_descriptor_set(
        &self,
        number: u8,
        speed: BusSpeed,
    ) -> Result<Vec<u8>, ServiceError> {
        self.model
            .interface_descriptor_set(number, speed)
            .ok_or_else(|| ServiceError::InvalidParameter(format!("no interface number {number}")))
    }

    // ----- internals ------------------------------------------------------------------

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
        if let Some(p) = self.pending.take() {
            self.out.urb(p.urb.id, urb_status, 0, Bytes::new());
        }
        while let Some(u) = self.control_queue.pop_front() {
            self.out.urb(u.id, urb_status, 0, Bytes::new());
        }
        for f in &mut self.functions {
            f.handshake_owed = false;
        }
        for pipe in self.pipes.iter_mut().skip(1) {
            pipe.cancel_all_transfers(transfer_status, &mut self.out);
            pipe.fail_all_urbs(urb_status, &mut self.out);
        }
        self.configuration = None;
        self.active = [None; 32];
        self.alternates.iter_mut().for_each(|a| *a = 0);
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
