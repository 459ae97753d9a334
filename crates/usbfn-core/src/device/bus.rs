//! The bus side of the device: attach, reset, detach, suspend and resume; host URBs in,
//! completions out; the timer.

use super::*;

impl Device {
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
        if let Some(pos) = self.control.queue.iter().position(|u| u.id == id) {
            self.control.queue.remove(pos);
            return true;
        }
        if self
            .control
            .pending
            .as_ref()
            .is_some_and(|p| p.urb.id == id)
        {
            if let Some(p) = self.control.pending.take() {
                tracing::debug!(
                    urb = id.0,
                    "host unlinked a control URB a service was answering"
                );
                self.functions[p.function.0].handshake_owed = false;
            }
            self.start_next_control();
            return true;
        }
        self.pipes
            .iter_mut()
            .any(|p| p.unlink_urb(id, &mut self.out))
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
        let setup = self.control.deadline();
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
        if let Some(p) = self.control.pending.as_ref().filter(|p| p.deadline <= now) {
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
}
