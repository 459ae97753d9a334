//! Isochronous pipes: one packet per (micro)frame slot, at the pace of the bus clock.
//!
//! An isochronous URB is a list of packets; packet *i* belongs to frame
//! `start + i × interval`, and the URB completes when its last slot is over, at
//! `start + N × interval` — never sooner, whatever the service does. There is no halt, no
//! retry and no handshake:
//!
//! * **IN**: in each slot the packet takes the next packet of the service's `TRANSFER_IN`
//!   stream, if a transfer was queued by that frame. A transfer is cut into packets of the
//!   endpoint's bytes per interval (`wMaxPacketSize` × transactions); its last packet may be
//!   short, an empty transfer is one zero-length packet. A slot with nothing queued goes out
//!   empty with [`CompletionStatus::Missed`] (`-EXDEV`, as Linux host controllers report a
//!   missed packet); a device packet larger than the host's packet is
//!   [`CompletionStatus::Babble`]. IN bytes are packed back to back in the completion.
//! * **OUT**: each packet is one `TRANSFER_OUT` completion, so packet boundaries survive
//!   (a zero-length packet completes a transfer with 0 bytes). A packet larger than the
//!   transfer's buffer completes it with `Babble` and what fits. A packet that finds no
//!   `TRANSFER_OUT` queued by its frame is dropped, as a device without a buffer drops it;
//!   the host still sees it sent (it cannot know otherwise).
//! * A URB without URB_ISO_ASAP (a `start_frame` given) follows the URB before it, as Linux
//!   host controllers schedule it, even where those slots have passed: packets whose frame
//!   had passed when the URB was submitted are `Missed`. An idle stream starts it as ASAP.
//!
//! Packets are settled lazily: a packet is decided once its frame is over, using what was
//! queued (with the frame it was queued in) by then, so the result does not depend on how
//! often the core is called; the core asks to be woken only when the front URB is due.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use usbfn_wire::Direction;

use crate::clock::FrameClock;
use crate::pipe::Completions;
use crate::status::CompletionStatus;
use crate::types::{
    IsoCompletion, IsoPacket, IsoPacketResult, IsoRequest, TransferId, UrbCompletion, UrbId,
};

/// Packets one isochronous URB may carry (Linux's `USBIP_MAX_ISO_PACKETS`).
pub const MAX_ISO_PACKETS: usize = 1024;

/// The isochronous state of one pipe.
#[derive(Debug)]
pub(crate) struct IsoPipe {
    direction: Direction,
    /// Bytes one packet may carry: `wMaxPacketSize` × transactions per interval.
    max_bytes: usize,
    /// (Micro)frames between packets (≥ 1).
    interval: u64,
    urbs: VecDeque<ScheduledUrb>,
    ins: VecDeque<InTransfer>,
    outs: VecDeque<OutRead>,
    /// The frame after the last scheduled packet: where an ASAP URB continues the stream.
    stream_end: u64,
    /// OUT packets dropped because no `TRANSFER_OUT` was queued in time.
    pub(crate) dropped_out: u64,
    /// IN packets that went out empty because no `TRANSFER_IN` was queued in time.
    pub(crate) missed_in: u64,
}

#[derive(Debug)]
struct ScheduledUrb {
    id: UrbId,
    packets: Vec<IsoPacket>,
    /// OUT data (the whole buffer; packets are slices of it).
    data: Bytes,
    /// Frame of packet 0.
    start: u64,
    /// Packets in frames before this one missed their slot.
    first_usable: u64,
    wire_start: u32,
    results: Vec<IsoPacketResult>,
    received: BytesMut,
}

#[derive(Debug)]
struct InTransfer {
    id: TransferId,
    data: Bytes,
    offset: usize,
    /// The frame the service queued it in: usable from that frame's slot on.
    arrived: u64,
}

#[derive(Debug)]
struct OutRead {
    id: TransferId,
    capacity: usize,
    arrived: u64,
}

impl ScheduledUrb {
    fn frame_of(&self, packet: usize, interval: u64) -> u64 {
        // Fits: usize is at most 64 bits on every target Rust supports.
        let i = u64::try_from(packet).unwrap_or(u64::MAX);
        self.start.saturating_add(i.saturating_mul(interval))
    }

    /// The frame after its last slot: when it completes.
    fn end(&self, interval: u64) -> u64 {
        self.frame_of(self.packets.len(), interval)
    }
}

impl IsoPipe {
    pub(crate) fn new(direction: Direction) -> Self {
        IsoPipe {
            direction,
            max_bytes: 0,
            interval: 1,
            urbs: VecDeque::new(),
            ins: VecDeque::new(),
            outs: VecDeque::new(),
            stream_end: 0,
            dropped_out: 0,
            missed_in: 0,
        }
    }

    /// New endpoint parameters (configuration, alternate setting or speed change).
    pub(crate) fn configure(&mut self, max_bytes: usize, interval: u64) {
        self.max_bytes = max_bytes;
        self.interval = interval.max(1);
        self.stream_end = 0;
    }

    pub(crate) fn queued_transfers(&self) -> usize {
        self.ins.len() + self.outs.len()
    }

    /// Schedule a host URB. `now` is the frame in progress.
    pub(crate) fn submit_urb(
        &mut self,
        id: UrbId,
        data: Bytes,
        request: IsoRequest,
        now: u64,
        clock: &FrameClock,
        out: &mut Completions,
    ) {
        let packets = request.packets;
        let in_bounds = |p: &IsoPacket| {
            usize::try_from(u64::from(p.offset) + u64::from(p.length))
                .is_ok_and(|end| end <= data.len())
        };
        if packets.len() > MAX_ISO_PACKETS
            || (self.direction == Direction::Out && !packets.iter().all(in_bounds))
        {
            tracing::debug!(
                urb = id.0,
                packets = packets.len(),
                "isochronous URB with too many packets or packets outside its buffer"
            );
            let results = packets
                .iter()
                .map(|&packet| IsoPacketResult {
                    packet,
                    actual_length: 0,
                    status: CompletionStatus::Invalid,
                })
                .collect();
            out.urbs.push_back(UrbCompletion {
                id,
                status: CompletionStatus::Invalid,
                actual_length: 0,
                data: Bytes::new(),
                iso: Some(IsoCompletion {
                    start_frame: request.start_frame.unwrap_or(0),
                    packets: results,
                }),
            });
            return;
        }
        let earliest = now.saturating_add(1).max(self.stream_end);
        // Without URB_ISO_ASAP, Linux host controllers (EHCI and xHCI since Linux 3.10;
        // `usb_submit_urb`'s documentation) put a URB right after the endpoint's previous
        // one, even in slots that have passed (those packets are missed), and start an idle
        // stream as they would an ASAP URB: the URB's start_frame is not where it goes.
        // snd-usb-audio relies on it: it never sets URB_ISO_ASAP, and over USB/IP each
        // resubmitted URB carries the start frame of its previous round, long past.
        let start = match request.start_frame {
            None => earliest,
            Some(_) if !self.urbs.is_empty() => self.stream_end,
            Some(_) => earliest,
        };
        let urb = ScheduledUrb {
            id,
            results: Vec::with_capacity(packets.len()),
            packets,
            data: if self.direction == Direction::Out {
                data
            } else {
                Bytes::new()
            },
            start,
            first_usable: earliest,
            wire_start: clock.wire(start),
            received: BytesMut::new(),
        };
        self.stream_end = self.stream_end.max(urb.end(self.interval));
        self.urbs.push_back(urb);
        self.advance(now, out);
    }

    pub(crate) fn submit_in_transfer(&mut self, id: TransferId, data: Bytes, now: u64) {
        self.ins.push_back(InTransfer {
            id,
            data,
            offset: 0,
            arrived: now,
        });
    }

    pub(crate) fn submit_out_transfer(&mut self, id: TransferId, capacity: usize, now: u64) {
        self.outs.push_back(OutRead {
            id,
            capacity,
            arrived: now,
        });
    }

    /// Settle every packet whose frame is over and complete the URBs that are due. `now` is
    /// the frame in progress.
    pub(crate) fn advance(&mut self, now: u64, out: &mut Completions) {
        let interval = self.interval;
        loop {
            let Some(mut urb) = self.urbs.pop_front() else {
                return;
            };
            while urb.results.len() < urb.packets.len() {
                let i = urb.results.len();
                let frame = urb.frame_of(i, interval);
                if frame >= now {
                    break;
                }
                let packet = urb.packets[i];
                let result = if frame < urb.first_usable {
                    IsoPacketResult {
                        packet,
                        actual_length: 0,
                        status: CompletionStatus::Missed,
                    }
                } else if self.direction == Direction::In {
                    self.in_packet(packet, frame, &mut urb.received, out)
                } else {
                    self.out_packet(packet, frame, &urb.data, out)
                };
                urb.results.push(result);
            }
            if urb.results.len() < urb.packets.len() || urb.end(interval) > now {
                self.urbs.push_front(urb);
                return;
            }
            complete(urb, CompletionStatus::Success, out);
        }
    }

    /// When the front URB is due.
    pub(crate) fn deadline(&self, clock: &FrameClock) -> Option<Instant> {
        let urb = self.urbs.front()?;
        clock.start_of(urb.end(self.interval))
    }

    fn in_packet(
        &mut self,
        packet: IsoPacket,
        frame: u64,
        received: &mut BytesMut,
        out: &mut Completions,
    ) -> IsoPacketResult {
        let Some(t) = self.ins.front_mut().filter(|t| t.arrived <= frame) else {
            self.missed_in += 1;
            return IsoPacketResult {
                packet,
                actual_length: 0,
                status: CompletionStatus::Missed,
            };
        };
        // Fits: usize is at least 32 bits on every target usbfn builds for.
        let room = usize::try_from(packet.length).unwrap_or(usize::MAX);
        let p = (t.data.len() - t.offset).min(self.max_bytes);
        let (taken, status) = if p > room {
            (room, CompletionStatus::Babble)
        } else {
            (p, CompletionStatus::Success)
        };
        received.extend_from_slice(&t.data[t.offset..t.offset + taken]);
        t.offset += p;
        if t.offset == t.data.len()
            && let Some(t) = self.ins.pop_front()
        {
            out.transfer(t.id, CompletionStatus::Success, t.offset, Bytes::new());
        }
        IsoPacketResult {
            packet,
            // Fits: `taken` is at most `room`, a u32.
            actual_length: u32::try_from(taken).unwrap_or(u32::MAX),
            status,
        }
    }

    fn out_packet(
        &mut self,
        packet: IsoPacket,
        frame: u64,
        data: &Bytes,
        out: &mut Completions,
    ) -> IsoPacketResult {
        // Bounds were checked at submit (and a u32 fits usize on every target usbfn builds
        // for).
        let start = usize::try_from(packet.offset).unwrap_or(usize::MAX);
        let len = usize::try_from(packet.length).unwrap_or(usize::MAX);
        let Some(bytes) = start
            .checked_add(len)
            .and_then(|end| data.get(start..end))
            .map(|b| data.slice_ref(b))
        else {
            return IsoPacketResult {
                packet,
                actual_length: 0,
                status: CompletionStatus::Invalid,
            };
        };
        if len > self.max_bytes {
            // More than the endpoint carries in one interval: the packet is not sent.
            return IsoPacketResult {
                packet,
                actual_length: 0,
                status: CompletionStatus::Babble,
            };
        }
        match self.outs.front().filter(|r| r.arrived <= frame) {
            Some(_) => {
                if let Some(r) = self.outs.pop_front() {
                    if len > r.capacity {
                        out.transfer(
                            r.id,
                            CompletionStatus::Babble,
                            r.capacity,
                            bytes.slice(..r.capacity),
                        );
                    } else {
                        out.transfer(r.id, CompletionStatus::Success, len, bytes);
                    }
                }
            }
            None => self.dropped_out += 1,
        }
        IsoPacketResult {
            packet,
            actual_length: packet.length,
            status: CompletionStatus::Success,
        }
    }

    /// Remove a host URB that has not completed. False if it is not queued here.
    pub(crate) fn unlink_urb(&mut self, id: UrbId) -> bool {
        match self.urbs.iter().position(|u| u.id == id) {
            Some(pos) => {
                self.urbs.remove(pos);
                true
            }
            None => false,
        }
    }

    /// Cancel a service transfer with `status`. False if it is not queued here.
    pub(crate) fn cancel_transfer(
        &mut self,
        id: TransferId,
        status: CompletionStatus,
        out: &mut Completions,
    ) -> bool {
        if let Some(pos) = self.ins.iter().position(|t| t.id == id) {
            if let Some(t) = self.ins.remove(pos) {
                out.transfer(t.id, status, t.offset, Bytes::new());
            }
            return true;
        }
        if let Some(pos) = self.outs.iter().position(|r| r.id == id) {
            if let Some(r) = self.outs.remove(pos) {
                out.transfer(r.id, status, 0, Bytes::new());
            }
            return true;
        }
        false
    }

    pub(crate) fn cancel_all_transfers(&mut self, status: CompletionStatus, out: &mut Completions) {
        while let Some(t) = self.ins.pop_front() {
            out.transfer(t.id, status, t.offset, Bytes::new());
        }
        while let Some(r) = self.outs.pop_front() {
            out.transfer(r.id, status, 0, Bytes::new());
        }
    }

    /// Complete every host URB with `status`; packets not yet settled get it too.
    pub(crate) fn fail_all_urbs(&mut self, status: CompletionStatus, out: &mut Completions) {
        while let Some(urb) = self.urbs.pop_front() {
            complete(urb, status, out);
        }
        self.stream_end = 0;
    }
}

fn complete(mut urb: ScheduledUrb, status: CompletionStatus, out: &mut Completions) {
    for &packet in &urb.packets[urb.results.len()..] {
        urb.results.push(IsoPacketResult {
            packet,
            actual_length: 0,
            status,
        });
    }
    let actual: usize = urb
        .results
        .iter()
        // Fits: u32 into usize (at least 32 bits on every target usbfn builds for).
        .map(|r| usize::try_from(r.actual_length).unwrap_or(usize::MAX))
        .fold(0, usize::saturating_add);
    out.urbs.push_back(UrbCompletion {
        id: urb.id,
        status,
        actual_length: actual,
        data: urb.received.freeze(),
        iso: Some(IsoCompletion {
            start_frame: urb.wire_start,
            packets: urb.results,
        }),
    });
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // test sizes are small
#[path = "iso_tests.rs"]
mod tests;
