//! Data pipes: host URBs meet service transfers one USB packet at a time.
//!
//! A pipe holds two queues, the host's URBs and the service's transfers, and moves data between
//! their fronts in `wMaxPacketSize` packets, with USB's rules for where a transfer ends:
//!
//! * a **short packet** (shorter than `wMaxPacketSize`, including a zero-length packet) ends both
//!   the host URB and the device transfer it belongs to;
//! * a **full packet** ends neither, unless it fills the receiving buffer exactly;
//! * a packet larger than the room left in the receiving buffer is **babble**: the receiver
//!   ends with [`CompletionStatus::Babble`];
//! * an IN URB whose buffer is not full when a short packet ends it fails with
//!   [`CompletionStatus::ShortPacket`] if the host set `URB_SHORT_NOT_OK`.
//!
//! Whole runs of full packets are moved at once, so the cost is per transfer, not per packet.
//! Nothing here knows about sockets, time or services: the pipe only fills a [`Completions`]
//! sink that the device drains.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use usbfn_wire::{Direction, TransferType};

use crate::iso::IsoPipe;
use crate::status::CompletionStatus;
use crate::types::{TransferCompletion, TransferId, UrbCompletion, UrbId};

/// Completions produced by pipes and the control engine, drained by the device's `poll_*`.
#[derive(Debug, Default)]
pub(crate) struct Completions {
    pub(crate) urbs: VecDeque<UrbCompletion>,
    pub(crate) transfers: VecDeque<TransferCompletion>,
}

impl Completions {
    pub(crate) fn urb(&mut self, id: UrbId, status: CompletionStatus, actual: usize, data: Bytes) {
        self.urbs.push_back(UrbCompletion {
            id,
            status,
            actual_length: actual,
            data,
            iso: None,
        });
    }

    pub(crate) fn transfer(
        &mut self,
        id: TransferId,
        status: CompletionStatus,
        bytes: usize,
        data: Bytes,
    ) {
        self.transfers.push_back(TransferCompletion {
            id,
            status,
            bytes_transferred: bytes,
            data,
        });
    }
}

/// Data gathered from several sources, joined only when more than one part arrived.
#[derive(Debug, Default)]
struct Gather {
    first: Bytes,
    rest: Vec<Bytes>,
    len: usize,
}

impl Gather {
    fn push(&mut self, part: Bytes) {
        if part.is_empty() {
            return;
        }
        self.len += part.len();
        if self.first.is_empty() {
            self.first = part;
        } else {
            self.rest.push(part);
        }
    }

    fn finish(self) -> Bytes {
        if self.rest.is_empty() {
            return self.first;
        }
        let mut all = BytesMut::with_capacity(self.len);
        all.extend_from_slice(&self.first);
        for part in &self.rest {
            all.extend_from_slice(part);
        }
        all.freeze()
    }
}

#[derive(Debug)]
enum HostUrb {
    In {
        id: UrbId,
        buffer_len: usize,
        short_not_ok: bool,
        received: Gather,
    },
    Out {
        id: UrbId,
        data: Bytes,
        offset: usize,
        /// A zero-length packet is still to be sent: for an empty URB, or after a full last
        /// packet when the host set `URB_ZERO_PACKET`.
        zlp_pending: bool,
    },
}

impl HostUrb {
    fn id(&self) -> UrbId {
        match self {
            HostUrb::In { id, .. } | HostUrb::Out { id, .. } => *id,
        }
    }
}

#[derive(Debug)]
enum DeviceTransfer {
    In {
        /// `None`: packets given back by an unlinked host URB (see [`Pipe::unlink_urb`]);
        /// the service's transfer they came from has completed already.
        id: Option<TransferId>,
        data: Bytes,
        offset: usize,
        zlp_pending: bool,
    },
    Out {
        id: TransferId,
        capacity: usize,
        received: Gather,
    },
}

impl DeviceTransfer {
    /// The service's transfer this is (`None` for packets an unlinked URB gave back).
    fn id(&self) -> Option<TransferId> {
        match self {
            DeviceTransfer::In { id, .. } => *id,
            DeviceTransfer::Out { id, .. } => Some(*id),
        }
    }
}

/// One data endpoint's state: halt, data toggle and the two queues.
#[derive(Debug)]
pub(crate) struct Pipe {
    pub(crate) direction: Direction,
    pub(crate) transfer_type: TransferType,
    /// Bytes per packet at the current speed and alternate setting (never 0).
    max_packet: usize,
    pub(crate) halted: bool,
    /// DATA0 = false, DATA1 = true; reset by CLEAR_FEATURE(ENDPOINT_HALT), SET_CONFIGURATION and
    /// SET_INTERFACE.
    pub(crate) toggle: bool,
    urbs: VecDeque<HostUrb>,
    transfers: VecDeque<DeviceTransfer>,
    /// Interrupt endpoints: one packet per interval.
    pacing: Option<Pacing>,
    /// Isochronous endpoints: the packet schedule (used when `transfer_type` is
    /// isochronous).
    pub(crate) iso: IsoPipe,
}

/// How a pipe's endpoint moves packets, at the current speed and alternate setting.
#[derive(Copy, Clone, Debug)]
pub(crate) struct PipeParams {
    pub(crate) transfer_type: TransferType,
    /// Bytes per packet (bits 10..0 of wMaxPacketSize).
    pub(crate) max_packet: u16,
    /// (Micro)frames between the endpoint's service opportunities (interrupt, isochronous).
    pub(crate) interval: u64,
    /// Packets per interval: high-bandwidth transactions × SuperSpeed burst.
    pub(crate) transactions: u16,
}

/// An interrupt endpoint's schedule: packets take one slot each, `interval` frames apart,
/// and a URB completes when the frame of its last packet is over. Data moves as soon as both
/// sides are there; only completions wait, so the cost is per URB, not per interval.
#[derive(Debug)]
struct Pacing {
    interval: u64,
    /// Packets per interval (a high-bandwidth endpoint moves up to 3).
    per_interval: u64,
    /// The frame in progress (set by the device before each call).
    now: u64,
    /// The first frame a new packet may use.
    next_slot: u64,
    /// The frame after the last packet moved so far.
    last_end: u64,
    /// Completed URBs waiting for the end of their last packet's frame.
    deferred: VecDeque<(u64, UrbCompletion)>,
}

impl Pacing {
    fn take_slots(&mut self, packets: usize) {
        // Fits: usize is at most 64 bits on every target Rust supports.
        let packets = u64::try_from(packets).unwrap_or(u64::MAX).max(1);
        let intervals = packets.div_ceil(self.per_interval);
        let start = self.next_slot.max(self.now);
        let last = start.saturating_add((intervals - 1).saturating_mul(self.interval));
        self.next_slot = last.saturating_add(self.interval);
        self.last_end = last.saturating_add(1);
    }
}

impl Pipe {
    pub(crate) fn new(direction: Direction, transfer_type: TransferType, max_packet: u16) -> Self {
        Pipe {
            direction,
            transfer_type,
            max_packet: usize::from(max_packet.max(1)),
            halted: false,
            toggle: false,
            urbs: VecDeque::new(),
            transfers: VecDeque::new(),
            pacing: None,
            iso: IsoPipe::new(direction),
        }
    }

    fn is_iso(&self) -> bool {
        self.transfer_type == TransferType::Isochronous
    }

    /// Settle what the frame in progress, `frame`, makes due: iso packets and URBs, paced
    /// interrupt completions.
    pub(crate) fn advance(&mut self, frame: u64, out: &mut Completions) {
        if self.is_iso() {
            self.iso.advance(frame, out);
        }
        if let Some(p) = &mut self.pacing {
            p.now = frame;
            while p.deferred.front().is_some_and(|(due, _)| *due <= frame) {
                if let Some((_, c)) = p.deferred.pop_front() {
                    out.urbs.push_back(c);
                }
            }
        }
    }

    /// When this pipe next needs [`Pipe::advance`]: the front iso URB's end, or the first
    /// held interrupt completion's due frame.
    pub(crate) fn deadline(&self, clock: &crate::clock::FrameClock) -> Option<std::time::Instant> {
        let iso = if self.is_iso() {
            self.iso.deadline(clock)
        } else {
            None
        };
        let paced = self
            .pacing
            .as_ref()
            .and_then(|p| p.deferred.front())
            .and_then(|(due, _)| clock.start_of(*due));
        match (iso, paced) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Complete a host URB now, or at the end of its last packet's frame on a paced pipe.
    fn finish_urb(
        &mut self,
        id: UrbId,
        status: CompletionStatus,
        actual: usize,
        data: Bytes,
        out: &mut Completions,
    ) {
        let c = UrbCompletion {
            id,
            status,
            actual_length: actual,
            data,
            iso: None,
        };
        match &mut self.pacing {
            Some(p) => p.deferred.push_back((p.last_end, c)),
            None => out.urbs.push_back(c),
        }
    }

    /// Release paced completions at once (halt, reset, detach).
    fn flush_deferred(&mut self, out: &mut Completions) {
        if let Some(p) = &mut self.pacing {
            out.urbs.extend(p.deferred.drain(..).map(|(_, c)| c));
        }
    }

    pub(crate) fn queued_transfers(&self) -> usize {
        self.transfers.len() + self.iso.queued_transfers()
    }

    /// Queue a host URB. `direction` must match the pipe's (the device checks).
    pub(crate) fn submit_in_urb(
        &mut self,
        id: UrbId,
        buffer_len: usize,
        short_not_ok: bool,
        out: &mut Completions,
    ) {
        if self.halted {
            out.urb(id, CompletionStatus::Stall, 0, Bytes::new());
            return;
        }
        self.urbs.push_back(HostUrb::In {
            id,
            buffer_len,
            short_not_ok,
            received: Gather::default(),
        });
        self.pump(out);
    }

    pub(crate) fn submit_out_urb(
        &mut self,
        id: UrbId,
        data: Bytes,
        zero_packet: bool,
        out: &mut Completions,
    ) {
        if self.halted {
            out.urb(id, CompletionStatus::Stall, 0, Bytes::new());
            return;
        }
        let zlp_pending =
            data.is_empty() || (zero_packet && data.len().is_multiple_of(self.max_packet));
        self.urbs.push_back(HostUrb::Out {
            id,
            data,
            offset: 0,
            zlp_pending,
        });
        self.pump(out);
    }

    pub(crate) fn submit_in_transfer(
        &mut self,
        id: TransferId,
        data: Bytes,
        append_zero_packet: bool,
        out: &mut Completions,
    ) {
        let zlp_pending =
            data.is_empty() || (append_zero_packet && data.len().is_multiple_of(self.max_packet));
        self.transfers.push_back(DeviceTransfer::In {
            id: Some(id),
            data,
            offset: 0,
            zlp_pending,
        });
        self.pump(out);
    }

    pub(crate) fn submit_out_transfer(
        &mut self,
        id: TransferId,
        capacity: usize,
        out: &mut Completions,
    ) {
        self.transfers.push_back(DeviceTransfer::Out {
            id,
            capacity,
            received: Gather::default(),
        });
        self.pump(out);
    }

    /// Remove a host URB that has not completed. Returns false if it is not queued here.
    ///
    /// An IN URB holding full packets from the service (it waits for more, or for a short
    /// packet) gives them back to the front of the pipe, with the data toggle they took: the
    /// host's cancelled URB never delivers them (USB/IP's RET_UNLINK and usbredir's cancelled
    /// status carry no data), while the service was told they were sent. The next IN URB
    /// receives them first, so no byte the service wrote is lost. Only the front URB can hold
    /// packets, and it does so only when the service's queue is empty, so they go back in
    /// order.
    pub(crate) fn unlink_urb(&mut self, id: UrbId, out: &mut Completions) -> bool {
        if self.iso.unlink_urb(id) {
            return true;
        }
        if let Some(p) = &mut self.pacing
            && let Some(pos) = p.deferred.iter().position(|(_, c)| c.id == id)
        {
            // Its data moved, but the host cancelled before the completion was due.
            p.deferred.remove(pos);
            return true;
        }
        let Some(pos) = self.urbs.iter().position(|u| u.id() == id) else {
            return false;
        };
        if let Some(HostUrb::In { received, .. }) = self.urbs.remove(pos)
            && received.len > 0
        {
            // Whole packets only: a short packet or babble would have completed the URB.
            self.advance_toggle(received.len / self.max_packet);
            self.transfers.push_front(DeviceTransfer::In {
                id: None,
                data: received.finish(),
                offset: 0,
                zlp_pending: false,
            });
            self.pump(out);
        }
        true
    }

    /// Cancel a service transfer; it completes with `status` and whatever it moved so far.
    pub(crate) fn cancel_transfer(
        &mut self,
        id: TransferId,
        status: CompletionStatus,
        out: &mut Completions,
    ) -> bool {
        if self.iso.cancel_transfer(id, status, out) {
            return true;
        }
        let Some(pos) = self.transfers.iter().position(|t| t.id() == Some(id)) else {
            return false;
        };
        if let Some(t) = self.transfers.remove(pos) {
            finish_transfer(t, status, out);
        }
        // The next transfer may now meet a waiting URB.
        self.pump(out);
        true
    }

    /// Cancel every queued service transfer with `transfers` and fail every waiting host URB
    /// with `urbs`: what a configuration change, an alternate-setting change and a bus reset
    /// or detach do to a pipe.
    pub(crate) fn abort(
        &mut self,
        transfers: CompletionStatus,
        urbs: CompletionStatus,
        out: &mut Completions,
    ) {
        self.cancel_all_transfers(transfers, out);
        self.fail_all_urbs(urbs, out);
    }

    /// Cancel every service transfer with `status`.
    pub(crate) fn cancel_all_transfers(&mut self, status: CompletionStatus, out: &mut Completions) {
        self.iso.cancel_all_transfers(status, out);
        while let Some(t) = self.transfers.pop_front() {
            finish_transfer(t, status, out);
        }
    }

    /// Complete every host URB with `status`.
    pub(crate) fn fail_all_urbs(&mut self, status: CompletionStatus, out: &mut Completions) {
        self.flush_deferred(out);
        self.iso.fail_all_urbs(status, out);
        while let Some(u) = self.urbs.pop_front() {
            out.urb(u.id(), status, 0, Bytes::new());
        }
    }

    /// Halt the endpoint (SET_FEATURE(ENDPOINT_HALT) or a service's SET_PIPE_STATE): every
    /// queued host URB fails with STALL, as will new ones until the halt is cleared.
    pub(crate) fn set_halt(&mut self, out: &mut Completions) {
        self.halted = true;
        self.fail_all_urbs(CompletionStatus::Stall, out);
    }

    /// Clear the halt and reset the data toggle to DATA0.
    pub(crate) fn clear_halt(&mut self, out: &mut Completions) {
        self.halted = false;
        self.toggle = false;
        self.pump(out);
    }

    /// Re-arm for a new configuration or alternate setting: new packet size, toggle DATA0,
    /// not halted.
    pub(crate) fn reconfigure(&mut self, params: PipeParams) {
        self.transfer_type = params.transfer_type;
        self.max_packet = usize::from(params.max_packet.max(1));
        self.halted = false;
        self.toggle = false;
        let interval = params.interval.max(1);
        self.pacing = (params.transfer_type == TransferType::Interrupt).then(|| Pacing {
            interval,
            per_interval: u64::from(params.transactions.max(1)),
            now: 0,
            next_slot: 0,
            last_end: 0,
            deferred: VecDeque::new(),
        });
        self.iso.configure(
            usize::from(params.max_packet) * usize::from(params.transactions.max(1)),
            interval,
        );
    }

    fn advance_toggle(&mut self, packets: usize) {
        if packets % 2 == 1 {
            self.toggle = !self.toggle;
        }
    }

    /// Move data between the queue fronts until one side runs dry.
    fn pump(&mut self, out: &mut Completions) {
        if self.halted {
            return;
        }
        match self.direction {
            Direction::In => self.pump_in(out),
            Direction::Out => self.pump_out(out),
        }
    }

    fn pump_in(&mut self, out: &mut Completions) {
        let mps = self.max_packet;
        loop {
            let (
                Some(HostUrb::In {
                    id: urb_id,
                    buffer_len,
                    short_not_ok,
                    received,
                }),
                Some(DeviceTransfer::In {
                    id: xfer_id,
                    data,
                    offset,
                    zlp_pending,
                }),
            ) = (self.urbs.front_mut(), self.transfers.front_mut())
            else {
                return;
            };
            let room = *buffer_len - received.len;
            let avail = data.len() - *offset;
            let (urb_done, xfer_done, urb_status, packets);
            if avail == 0 {
                // Only the zero-length packet is left: it is short, so it ends both.
                *zlp_pending = false;
                packets = 1;
                urb_done = true;
                xfer_done = true;
                urb_status = short_status(*short_not_ok, room);
            } else {
                let full = (room / mps).min(avail / mps);
                if full > 0 {
                    let n = full * mps;
                    received.push(data.slice(*offset..*offset + n));
                    *offset += n;
                    packets = full;
                    xfer_done = *offset == data.len() && !*zlp_pending;
                    urb_done = received.len == *buffer_len;
                    urb_status = CompletionStatus::Success;
                } else {
                    let p = avail.min(mps);
                    packets = 1;
                    if p > room {
                        // The device's packet does not fit what the host has left: babble.
                        received.push(data.slice(*offset..*offset + room));
                        *offset += p;
                        urb_done = true;
                        urb_status = CompletionStatus::Babble;
                        xfer_done = p < mps || (*offset == data.len() && !*zlp_pending);
                    } else {
                        // full == 0 and p <= room imply avail < mps: a short packet ends both.
                        received.push(data.slice(*offset..*offset + p));
                        *offset += p;
                        urb_done = true;
                        xfer_done = true;
                        urb_status = short_status(*short_not_ok, room - p);
                    }
                }
            }
            let (urb_id, xfer_id) = (*urb_id, *xfer_id);
            self.advance_toggle(packets);
            if let Some(p) = &mut self.pacing {
                p.take_slots(packets);
            }
            if xfer_done && let Some(t) = self.transfers.pop_front() {
                finish_transfer(t, CompletionStatus::Success, out);
            }
            if urb_done && let Some(HostUrb::In { received, .. }) = self.urbs.pop_front() {
                let len = received.len;
                self.finish_urb(urb_id, urb_status, len, received.finish(), out);
            }
            let _ = xfer_id;
        }
    }

    fn pump_out(&mut self, out: &mut Completions) {
        let mps = self.max_packet;
        loop {
            let (
                Some(HostUrb::Out {
                    id: _,
                    data,
                    offset,
                    zlp_pending,
                }),
                Some(DeviceTransfer::Out {
                    id: _,
                    capacity,
                    received,
                }),
            ) = (self.urbs.front_mut(), self.transfers.front_mut())
            else {
                return;
            };
            let avail = data.len() - *offset;
            let room = *capacity - received.len;
            let (urb_done, xfer_done, xfer_status, packets);
            if avail == 0 {
                // Only the zero-length packet is left: a short packet ends the device read.
                *zlp_pending = false;
                packets = 1;
                urb_done = true;
                xfer_done = true;
                xfer_status = CompletionStatus::Success;
            } else {
                let full = (room / mps).min(avail / mps);
                if full > 0 {
                    let n = full * mps;
                    received.push(data.slice(*offset..*offset + n));
                    *offset += n;
                    packets = full;
                    xfer_done = received.len == *capacity;
                    xfer_status = CompletionStatus::Success;
                    urb_done = *offset == data.len() && !*zlp_pending;
                } else {
                    let p = avail.min(mps);
                    packets = 1;
                    if p > room {
                        // The host's packet overflows the device's buffer: babble for the
                        // device read; the packet is consumed.
                        received.push(data.slice(*offset..*offset + room));
                        *offset += p;
                        xfer_done = true;
                        xfer_status = CompletionStatus::Babble;
                        urb_done = *offset == data.len() && !*zlp_pending;
                    } else {
                        // A short packet: the last of the URB, and it ends the device read.
                        received.push(data.slice(*offset..*offset + p));
                        *offset += p;
                        xfer_done = true;
                        xfer_status = CompletionStatus::Success;
                        urb_done = true;
                    }
                }
            }
            self.advance_toggle(packets);
            if let Some(p) = &mut self.pacing {
                p.take_slots(packets);
            }
            if xfer_done && let Some(t) = self.transfers.pop_front() {
                finish_transfer(t, xfer_status, out);
            }
            if urb_done && let Some(HostUrb::Out { id, data, .. }) = self.urbs.pop_front() {
                self.finish_urb(id, CompletionStatus::Success, data.len(), Bytes::new(), out);
            }
        }
    }
}

fn short_status(short_not_ok: bool, room_left: usize) -> CompletionStatus {
    if short_not_ok && room_left > 0 {
        CompletionStatus::ShortPacket
    } else {
        CompletionStatus::Success
    }
}

fn finish_transfer(t: DeviceTransfer, status: CompletionStatus, out: &mut Completions) {
    match t {
        DeviceTransfer::In {
            id, offset, data, ..
        } => {
            // Given-back packets were reported with the transfer they came from.
            if let Some(id) = id {
                out.transfer(id, status, offset.min(data.len()), Bytes::new());
            }
        }
        DeviceTransfer::Out { id, received, .. } => {
            let len = received.len;
            out.transfer(id, status, len, received.finish());
        }
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // test byte patterns wrap on purpose
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pattern(len: usize, seed: u8) -> Bytes {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect::<Vec<u8>>()
            .into()
    }

    fn in_pipe(mps: u16) -> Pipe {
        Pipe::new(Direction::In, TransferType::Bulk, mps)
    }

    fn out_pipe(mps: u16) -> Pipe {
        Pipe::new(Direction::Out, TransferType::Bulk, mps)
    }

    #[test]
    fn in_urb_waits_until_the_device_sends() {
        let mut p = in_pipe(512);
        let mut out = Completions::default();
        p.submit_in_urb(UrbId(1), 1024, false, &mut out);
        assert!(
            out.urbs.is_empty(),
            "a pending IN URB is a NAK, not an empty answer"
        );
        p.submit_in_transfer(TransferId(7), pattern(100, 0), false, &mut out);
        let c = out.urbs.pop_front().expect("URB completes");
        assert_eq!(
            (c.id, c.status, c.actual_length),
            (UrbId(1), CompletionStatus::Success, 100)
        );
        assert_eq!(c.data, pattern(100, 0));
        let t = out.transfers.pop_front().expect("transfer completes");
        assert_eq!((t.id, t.bytes_transferred), (TransferId(7), 100));
    }

    #[test]
    fn full_packet_transfer_without_zlp_continues_into_the_next() {
        let mut p = in_pipe(512);
        let mut out = Completions::default();
        p.submit_in_urb(UrbId(1), 2048, false, &mut out);
        p.submit_in_transfer(TransferId(1), pattern(512, 1), false, &mut out);
        assert!(
            out.urbs.is_empty(),
            "a full last packet does not end the host transfer"
        );
        assert_eq!(out.transfers.len(), 1, "the device transfer is done");
        p.submit_in_transfer(TransferId(2), pattern(10, 2), false, &mut out);
        let c = out.urbs.pop_front().expect("short packet ends the URB");
        assert_eq!(c.actual_length, 522);
        assert_eq!(&c.data[..512], &pattern(512, 1)[..]);
        assert_eq!(&c.data[512..], &pattern(10, 2)[..]);
    }

    #[test]
    fn append_zero_packet_ends_the_host_transfer() {
        let mut p = in_pipe(512);
        let mut out = Completions::default();
        p.submit_in_urb(UrbId(1), 2048, false, &mut out);
        p.submit_in_transfer(TransferId(1), pattern(1024, 1), true, &mut out);
        let c = out.urbs.pop_front().expect("ZLP ends the URB");
        assert_eq!(
            (c.status, c.actual_length),
            (CompletionStatus::Success, 1024)
        );
        assert_eq!(out.transfers.len(), 1);
    }

    #[test]
    fn zlp_after_a_urb_filled_exactly_goes_to_the_next_urb() {
        let mut p = in_pipe(64);
        let mut out = Completions::default();
        p.submit_in_transfer(TransferId(1), pattern(64, 1), true, &mut out);
        p.submit_in_urb(UrbId(1), 64, false, &mut out);
        assert_eq!(out.urbs.pop_front().map(|c| c.actual_length), Some(64));
        assert!(out.transfers.is_empty(), "the ZLP is still to be sent");
        p.submit_in_urb(UrbId(2), 64, false, &mut out);
        let c = out.urbs.pop_front().expect("ZLP completes the second URB");
        assert_eq!((c.id, c.actual_length), (UrbId(2), 0));
        assert_eq!(out.transfers.len(), 1);
    }

    #[test]
    fn packet_larger_than_the_room_left_is_babble() {
        let mut p = in_pipe(512);
        let mut out = Completions::default();
        p.submit_in_urb(UrbId(1), 1000, false, &mut out);
        p.submit_in_transfer(TransferId(1), pattern(4096, 0), false, &mut out);
        let c = out.urbs.pop_front().expect("babble completes the URB");
        assert_eq!(
            (c.status, c.actual_length),
            (CompletionStatus::Babble, 1000)
        );
        assert_eq!(c.data, pattern(4096, 0).slice(..1000));
        assert!(
            out.transfers.is_empty(),
            "the device transfer goes on with its next packet"
        );
    }

    #[test]
    fn short_not_ok_reports_remote_io_error() {
        let mut p = in_pipe(64);
        let mut out = Completions::default();
        p.submit_in_urb(UrbId(1), 128, true, &mut out);
        p.submit_in_transfer(TransferId(1), pattern(10, 0), false, &mut out);
        let c = out.urbs.pop_front().expect("completes");
        assert_eq!(
            (c.status, c.actual_length),
            (CompletionStatus::ShortPacket, 10)
        );
    }

    #[test]
    fn out_urb_spans_several_device_reads() {
        let mut p = out_pipe(512);
        let mut out = Completions::default();
        p.submit_out_urb(UrbId(1), pattern(3000, 3), false, &mut out);
        assert!(out.urbs.is_empty(), "NAK until the device reads");
        p.submit_out_transfer(TransferId(1), 1024, &mut out);
        p.submit_out_transfer(TransferId(2), 1024, &mut out);
        p.submit_out_transfer(TransferId(3), 4096, &mut out);
        let lens: Vec<usize> = out.transfers.iter().map(|t| t.bytes_transferred).collect();
        assert_eq!(lens, vec![1024, 1024, 952]);
        let c = out.urbs.pop_front().expect("URB done");
        assert_eq!(
            (c.status, c.actual_length),
            (CompletionStatus::Success, 3000)
        );
    }

    #[test]
    fn device_read_spans_several_out_urbs_until_short_packet() {
        let mut p = out_pipe(64);
        let mut out = Completions::default();
        p.submit_out_transfer(TransferId(1), 4096, &mut out);
        p.submit_out_urb(UrbId(1), pattern(128, 0), false, &mut out);
        p.submit_out_urb(UrbId(2), pattern(64, 1), false, &mut out);
        assert_eq!(out.urbs.len(), 2);
        assert!(out.transfers.is_empty(), "full packets do not end the read");
        p.submit_out_urb(UrbId(3), pattern(0, 0), false, &mut out);
        let t = out.transfers.pop_front().expect("the ZLP ends the read");
        assert_eq!(t.bytes_transferred, 192);
        assert_eq!(&t.data[128..], &pattern(64, 1)[..]);
    }

    #[test]
    fn zero_packet_flag_sends_a_zlp_after_full_packets() {
        let mut p = out_pipe(64);
        let mut out = Completions::default();
        p.submit_out_transfer(TransferId(1), 4096, &mut out);
        p.submit_out_urb(UrbId(1), pattern(128, 0), true, &mut out);
        assert_eq!(
            out.transfers.pop_front().map(|t| t.bytes_transferred),
            Some(128)
        );
        assert_eq!(out.urbs.len(), 1);
    }

    #[test]
    fn out_packet_overflowing_the_device_buffer_is_babble_for_the_device() {
        let mut p = out_pipe(64);
        let mut out = Completions::default();
        p.submit_out_transfer(TransferId(1), 10, &mut out);
        p.submit_out_urb(UrbId(1), pattern(64, 0), false, &mut out);
        let t = out.transfers.pop_front().expect("completes");
        assert_eq!(
            (t.status, t.bytes_transferred),
            (CompletionStatus::Babble, 10)
        );
    }

    #[test]
    fn halt_fails_urbs_and_clear_resets_toggle() {
        let mut p = in_pipe(64);
        let mut out = Completions::default();
        p.submit_in_transfer(TransferId(1), pattern(64, 0), false, &mut out);
        p.submit_in_urb(UrbId(1), 64, false, &mut out);
        assert!(p.toggle, "one packet moved: DATA1 next");
        p.submit_in_urb(UrbId(2), 64, false, &mut out);
        out.urbs.clear();
        p.set_halt(&mut out);
        assert_eq!(
            out.urbs.pop_front().map(|c| c.status),
            Some(CompletionStatus::Stall)
        );
        p.submit_in_urb(UrbId(3), 64, false, &mut out);
        assert_eq!(
            out.urbs.pop_front().map(|c| c.status),
            Some(CompletionStatus::Stall)
        );
        p.clear_halt(&mut out);
        assert!(!p.toggle && !p.halted);
    }

    #[test]
    fn unlinked_in_urb_gives_its_packets_back() {
        let mut p = in_pipe(64);
        let mut out = Completions::default();
        let data = pattern(128, 7);
        // Two full packets: the service's transfer is done, the URB waits for more.
        p.submit_in_urb(UrbId(1), 256, false, &mut out);
        p.submit_in_transfer(TransferId(1), data.slice(..128), false, &mut out);
        assert_eq!(
            out.transfers
                .pop_front()
                .map(|t| (t.id, t.bytes_transferred)),
            Some((TransferId(1), 128))
        );
        assert!(out.urbs.is_empty());
        assert!(!p.toggle, "two packets leave the toggle at DATA0");
        p.submit_in_urb(UrbId(2), 256, false, &mut out);
        assert!(p.unlink_urb(UrbId(1), &mut out));
        // The waiting URB 2 got the two packets back; nothing ended it yet.
        assert!(out.urbs.is_empty() && out.transfers.is_empty());
        p.submit_in_transfer(TransferId(2), pattern(10, 9), false, &mut out);
        let c = out
            .urbs
            .pop_front()
            .expect("URB 2 completes with the short packet");
        assert_eq!(c.id, UrbId(2));
        assert_eq!(c.actual_length, 138);
        assert_eq!(&c.data[..128], &data[..]);
        assert_eq!(&c.data[128..], &pattern(10, 9)[..]);
        // Only the service's own transfers are reported, once each.
        assert_eq!(out.transfers.pop_front().map(|t| t.id), Some(TransferId(2)));
        assert!(out.transfers.is_empty());
        // 2 + 1 packets on the wire for URB 2: DATA0, DATA1, DATA0 → toggle DATA1.
        assert!(p.toggle);
    }

    #[test]
    fn unlinked_in_urb_restores_an_odd_toggle() {
        let mut p = in_pipe(64);
        let mut out = Completions::default();
        p.submit_in_urb(UrbId(1), 256, false, &mut out);
        p.submit_in_transfer(TransferId(1), pattern(64, 1), false, &mut out);
        assert!(p.toggle, "one packet moved the toggle to DATA1");
        assert!(p.unlink_urb(UrbId(1), &mut out));
        assert!(!p.toggle, "the packet given back was never delivered");
        // A cancel of the finished transfer finds nothing; the given-back packet stays.
        assert!(!p.cancel_transfer(TransferId(1), CompletionStatus::Cancelled, &mut out));
        p.submit_in_urb(UrbId(2), 64, false, &mut out);
        assert_eq!(
            out.urbs.pop_front().map(|c| (c.id, c.actual_length)),
            Some((UrbId(2), 64))
        );
    }

    #[test]
    fn unlink_and_cancel() {
        let mut p = in_pipe(64);
        let mut out = Completions::default();
        p.submit_in_urb(UrbId(1), 64, false, &mut out);
        assert!(p.unlink_urb(UrbId(1), &mut out));
        assert!(!p.unlink_urb(UrbId(1), &mut out));
        p.submit_in_transfer(TransferId(1), pattern(10, 0), false, &mut out);
        assert!(p.cancel_transfer(TransferId(1), CompletionStatus::Cancelled, &mut out));
        assert_eq!(
            out.transfers.pop_front().map(|t| t.status),
            Some(CompletionStatus::Cancelled)
        );
        assert!(out.urbs.is_empty());
    }

    proptest! {
        /// With host buffers that are multiples of the packet size (what hosts use), IN data
        /// arrives intact and in order, and every URB ends full or at a transfer's end.
        #[test]
        fn in_data_is_conserved(
            mps in prop::sample::select(vec![8u16, 64, 512, 1024]),
            sizes in prop::collection::vec((0usize..3000, any::<bool>()), 1..12),
            urb_packets in prop::collection::vec(1usize..10, 1..30),
        ) {
            let mut p = in_pipe(mps);
            let mut out = Completions::default();
            let mut sent = Vec::new();
            for (i, (len, zlp)) in sizes.iter().enumerate() {
                let data = pattern(*len, i as u8);
                sent.extend_from_slice(&data);
                p.submit_in_transfer(TransferId(i as u64), data, *zlp, &mut out);
            }
            for (i, n) in urb_packets.iter().enumerate() {
                p.submit_in_urb(UrbId(i as u64), n * usize::from(mps), false, &mut out);
            }
            let mut received = Vec::new();
            for c in &out.urbs {
                prop_assert_eq!(c.status, CompletionStatus::Success);
                prop_assert_eq!(c.actual_length, c.data.len());
                received.extend_from_slice(&c.data);
            }
            prop_assert!(sent.starts_with(&received));
            // A transfer may be done while its last bytes sit in a URB that is still
            // filling, so only the total sent bounds what the device reports.
            let done: usize = out.transfers.iter().map(|t| t.bytes_transferred).sum();
            prop_assert!(done <= sent.len());
        }

        /// With device reads that are multiples of the packet size, OUT data arrives intact.
        #[test]
        fn out_data_is_conserved(
            mps in prop::sample::select(vec![8u16, 64, 512]),
            urbs in prop::collection::vec((0usize..3000, any::<bool>()), 1..12),
            reads in prop::collection::vec(1usize..10, 1..40),
        ) {
            let mut p = out_pipe(mps);
            let mut out = Completions::default();
            let mut sent = Vec::new();
            for (i, (len, zlp)) in urbs.iter().enumerate() {
                let data = pattern(*len, i as u8);
                sent.extend_from_slice(&data);
                p.submit_out_urb(UrbId(i as u64), data, *zlp, &mut out);
            }
            for (i, n) in reads.iter().enumerate() {
                p.submit_out_transfer(TransferId(i as u64), n * usize::from(mps), &mut out);
            }
            let mut received = Vec::new();
            for t in &out.transfers {
                prop_assert_eq!(t.status, CompletionStatus::Success);
                received.extend_from_slice(&t.data);
            }
            prop_assert!(sent.starts_with(&received));
            let acked: usize = out.urbs.iter().map(|c| c.actual_length).sum();
            prop_assert!(acked <= sent.len());
        }
    }
}
