//! The service side of the device: one method per GenericUSBFn IOCTL (activate, events,
//! transfers, pipe state, handshakes, strings, class info).

use super::*;

impl Device {
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
        if self
            .control
            .pending
            .as_ref()
            .is_some_and(|p| p.function == f)
        {
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
            return match &self.control.pending {
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
        // The status stage of an IN request the host already has its data for (the URB
        // completed at TRANSFER_IN): it comes first, even when the host's next request to
        // this function is pending by now.
        if self.functions[f.0].handshake_owed {
            self.functions[f.0].handshake_owed = false;
            return Ok(());
        }
        match &self.control.pending {
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
                    pipes.push((ep.descriptor(speed), ep.pipe));
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
}
