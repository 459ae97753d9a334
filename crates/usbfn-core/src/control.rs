//! The default control pipe: control URBs are answered one at a time, by the chapter-9
//! engine or by the service that owns the request.
//!
//! A forwarded setup packet is answered by its service in GenericUSBFn style:
//!
//! | data stage | service calls | the host's URB completes |
//! |---|---|---|
//! | none | a status handshake (either name) | at the handshake, with no data |
//! | IN (device to host) | `TRANSFER_IN` on pipe 0, then a handshake | at `TRANSFER_IN`, with the data (at most wLength bytes) |
//! | OUT (host to device) | `TRANSFER_OUT` on pipe 0, then a handshake | at the handshake |
//!
//! `SET_PIPE_STATE(pipe 0, stall)` at any point ends the request with a STALL, and so does
//! the setup timeout. Control URBs queued behind it wait their turn.

use bytes::Bytes;
use usbfn_wire::Direction;

use crate::chapter9::Reply;
use crate::device::{
    ControlUrb, Device, MAX_QUEUED_CONTROL_URBS, PendingSetup, ServiceError, SetupStage,
};
use crate::event::BusEvent;
use crate::status::CompletionStatus;
use crate::types::{FunctionId, TransferId, TransferRequest, Urb};

impl Device {
    pub(crate) fn submit_control_urb(&mut self, urb: Urb) {
        let Some(setup) = urb.setup else {
            self.out
                .urb(urb.id, CompletionStatus::Invalid, 0, Bytes::new());
            return;
        };
        if self.control.queue.len() >= MAX_QUEUED_CONTROL_URBS {
            tracing::warn!(
                limit = MAX_QUEUED_CONTROL_URBS,
                "too many queued control URBs: STALL"
            );
            self.out
                .urb(urb.id, CompletionStatus::Stall, 0, Bytes::new());
            return;
        }
        let data = if setup.direction() == Direction::Out {
            let n = urb.data.len().min(usize::from(setup.w_length));
            urb.data.slice(..n)
        } else {
            Bytes::new()
        };
        self.control.queue.push_back(ControlUrb {
            id: urb.id,
            setup,
            data,
            buffer_len: urb.buffer_len,
        });
        if self.control.pending.is_none() {
            self.start_next_control();
        }
    }

    /// Answer queued control URBs until one has to wait for a service.
    pub(crate) fn start_next_control(&mut self) {
        while self.control.pending.is_none() {
            let Some(urb) = self.control.queue.pop_front() else {
                return;
            };
            match self.handle_setup(&urb.setup, &urb.data) {
                Reply::Data(bytes) => {
                    let limit = usize::from(urb.setup.w_length).min(urb.buffer_len);
                    let bytes = if bytes.len() > limit {
                        bytes.slice(..limit)
                    } else {
                        bytes
                    };
                    let len = bytes.len();
                    self.out.urb(urb.id, CompletionStatus::Success, len, bytes);
                }
                Reply::Ack => {
                    let len = urb.data.len();
                    self.out
                        .urb(urb.id, CompletionStatus::Success, len, Bytes::new());
                }
                Reply::Stall => {
                    tracing::debug!(setup = %urb.setup, "control request refused: STALL");
                    self.out
                        .urb(urb.id, CompletionStatus::Stall, 0, Bytes::new());
                }
                Reply::Forward(f) if self.is_active(f) => {
                    let deadline = self.now + self.model.setup_timeout();
                    let setup = urb.setup;
                    // A handshake the function still owes for its previous IN request stays
                    // owed: consumed by its next handshake call, it must not be taken as
                    // this request's status stage (that once completed a SET request before
                    // its service read the data, and dropped the data).
                    self.control.pending = Some(PendingSetup {
                        urb,
                        function: f,
                        stage: SetupStage::Data,
                        deadline,
                    });
                    self.notify(f, BusEvent::SetupPacket(setup));
                }
                Reply::Forward(_) => {
                    tracing::debug!(setup = %urb.setup, "request for an inactive service: STALL");
                    self.out
                        .urb(urb.id, CompletionStatus::Stall, 0, Bytes::new());
                }
            }
        }
    }

    /// End the request being answered by a service and move on to the next.
    pub(crate) fn finish_pending(&mut self, status: CompletionStatus, data: Bytes) {
        if let Some(p) = self.control.pending.take() {
            let actual = if p.urb.setup.direction() == Direction::In {
                data.len()
            } else if status.is_success() {
                p.urb.data.len()
            } else {
                0
            };
            self.out.urb(p.urb.id, status, actual, data);
        }
        self.start_next_control();
    }

    /// A service's `TRANSFER_IN`/`TRANSFER_OUT` on pipe 0: the data stage of the setup packet
    /// it is answering. Completes at once.
    pub(crate) fn control_data_stage(
        &mut self,
        f: FunctionId,
        id: TransferId,
        request: TransferRequest,
    ) -> Result<(), ServiceError> {
        let Some(p) = self.control.pending.as_mut().filter(|p| p.function == f) else {
            return Err(ServiceError::InvalidDeviceState(
                "pipe 0 transfers answer a setup packet, and none is pending for this interface"
                    .into(),
            ));
        };
        if p.stage != SetupStage::Data {
            return Err(ServiceError::InvalidDeviceState(
                "the data stage of this setup packet is already done".into(),
            ));
        }
        let setup = p.urb.setup;
        match (request, setup.direction()) {
            (TransferRequest::In { data, .. }, Direction::In) => {
                let limit = usize::from(setup.w_length).min(p.urb.buffer_len);
                let sent = if data.len() > limit {
                    data.slice(..limit)
                } else {
                    data
                };
                let n = sent.len();
                self.out
                    .transfer(id, CompletionStatus::Success, n, Bytes::new());
                self.functions[f.0].handshake_owed = true;
                self.finish_pending(CompletionStatus::Success, sent);
                Ok(())
            }
            (TransferRequest::Out { capacity }, Direction::Out) => {
                let data = p.urb.data.clone();
                p.stage = SetupStage::Status;
                if data.len() > capacity {
                    self.out.transfer(
                        id,
                        CompletionStatus::Babble,
                        capacity,
                        data.slice(..capacity),
                    );
                } else {
                    self.out
                        .transfer(id, CompletionStatus::Success, data.len(), data);
                }
                Ok(())
            }
            (_, dir) => Err(ServiceError::InvalidParameter(format!(
                "the pending setup packet's data stage is {dir:?}; use TRANSFER_{} on pipe 0",
                if dir == Direction::In { "IN" } else { "OUT" }
            ))),
        }
    }
}
