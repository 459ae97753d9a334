//! `usbip_iso`: isochronous CMD_SUBMITs from a hostile host, end to end on the server side:
//! the wire decoder, the server's conversion to the core ([`iso::iso_request`]), a sans-IO
//! Gadget Zero at alternate setting 1 (iso IN/OUT, interrupt, bulk) on a virtual bus clock,
//! and the server's RET_SUBMIT builder ([`iso::ret_submit`]).
//!
//! Input: a byte script. The first byte picks the speed and Gadget Zero's isochronous
//! parameters; then each op is one byte (`% 6`) and its arguments:
//!
//! * 0 submit: endpoint selector, the header's `number_of_packets` (which may disagree with
//!   the descriptors that follow), the descriptors actually written (offset, length: out of
//!   range, overlapping or over `wMaxPacketSize` × mult as the fuzzer likes), flags
//!   (ISO_ASAP or an explicit start frame), OUT data length;
//! * 1 unlink one outstanding URB; 2 advance the clock; 3 / 4 queue a service IN / OUT
//!   transfer on the iso pipes; 5 bus reset (every URB must end).
//!
//! Checks: nothing panics; malformed submits are refused by the decoder or answered with
//! per-packet errors; every accepted URB is answered exactly once (none after a successful
//! unlink), never before the bus time its packets need; every RET_SUBMIT encodes, decodes
//! with the Linux host's checks, echoes `number_of_packets` and every descriptor's offset and
//! length, and its packet actual lengths add up to `actual_length`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use usbfn::functions::gadget_zero;
use usbfn_core::testkit::SimHost;
use usbfn_core::{BusSpeed, DeviceModel, FunctionId, PipeId, TransferId, TransferRequest, UrbId};
use usbfn_usbip::proto::{
    CmdSubmit, Command, Direction, Limits, RetSubmit, ServerCodec, SubmitInfo, TransferFlags,
};
use usbfn_usbip::server::{SubmittedUrb, iso};

const LIMITS: Limits = Limits {
    max_transfer_buffer: 64 * 1024,
    max_iso_packets: 32,
    max_outstanding_urbs: 64,
    max_devices: 1,
};

struct Script<'a>(&'a [u8]);

impl Script<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.u8()?, self.u8()?]))
    }
}

struct Outstanding {
    cmd: CmdSubmit,
    record: SubmittedUrb,
    /// Earliest instant its completion may come (bus time of its packets).
    not_before: Option<Instant>,
}

struct Harness {
    /// The device and the virtual clock (the core's test kit).
    host: SimHost,
    speed: BusSpeed,
    frame: Duration,
    interval_frames: u32,
    urbs: HashMap<u64, Outstanding>,
    next_seq: u32,
    next_transfer: u64,
    pipes: [PipeId; 2],
}

/// Run one script.
pub fn run(data: &[u8]) {
    let mut s = Script(data);
    let Some(first) = s.u8() else { return };
    let speed = match first % 3 {
        0 => BusSpeed::Full,
        1 => BusSpeed::High,
        _ => BusSpeed::Super,
    };
    let mut options = gadget_zero::Options::default();
    options.isoc_interval = 1 + (first >> 2) % 4;
    options.isoc_mult = (first >> 4) % 3;
    options.isoc_maxburst = (first >> 6) % 4;
    let Ok(model) = DeviceModel::build(&gadget_zero::config_with(&options)) else {
        panic!("Gadget Zero's configuration must be valid for {options:?}");
    };
    let mut h = Harness::new(model, speed, &options);
    while let Some(op) = s.u8() {
        match op % 6 {
            0 => {
                let Some(()) = h.submit(&mut s) else { break };
            }
            1 => {
                let Some(pick) = s.u8() else { break };
                h.unlink(pick);
            }
            2 => {
                let Some(us) = s.u16() else { break };
                h.host.now += Duration::from_micros(u64::from(us) * 16);
                h.host.dev.handle_timeout(h.host.now);
            }
            3 | 4 => {
                let Some(len) = s.u16() else { break };
                h.transfer(op % 6 == 3, usize::from(len) % 20_000);
            }
            _ => {
                h.host.dev.bus_reset(speed, h.host.now);
                h.drain();
                assert!(h.urbs.is_empty(), "URBs left after a bus reset");
                h.configure();
            }
        }
        h.drain();
    }
    // Let the clock run out, then detach: nothing may stay unanswered.
    h.host.now += Duration::from_secs(10);
    h.host.dev.handle_timeout(h.host.now);
    h.drain();
    h.host.dev.bus_detach(h.host.now);
    h.drain();
    assert!(
        h.urbs.is_empty(),
        "URBs never answered: {:?}",
        h.urbs.keys()
    );
}

impl Harness {
    fn new(model: DeviceModel, speed: BusSpeed, options: &gadget_zero::Options) -> Self {
        let host = SimHost::from_model(model, speed);
        let info = host.dev.class_info(FunctionId(0)).expect("class info");
        let pipe = |address: u8| {
            info.at(speed)
                .pipes
                .iter()
                .find(|(d, _)| d.b_endpoint_address.0 == address)
                .map_or(PipeId(1), |(_, p)| *p)
        };
        let pipes = [pipe(gadget_zero::ISO_IN), pipe(gadget_zero::ISO_OUT)];
        let frame = usbfn_core::frame_duration(speed);
        let mut h = Harness {
            host,
            speed,
            frame,
            interval_frames: 1 << (options.isoc_interval - 1),
            urbs: HashMap::new(),
            next_seq: 1,
            next_transfer: 1,
            pipes,
        };
        h.configure();
        h
    }

    /// SET_CONFIGURATION(1), SET_INTERFACE(0, 1), answered by the core at once (nothing else
    /// is outstanding: this runs first and after a bus reset).
    fn configure(&mut self) {
        self.host.set_configuration(1);
        self.host
            .control_now(usbfn_wire::SetupPacket::set_interface(0, 1), &[]);
        self.host.drain_events(FunctionId(0));
    }

    fn submit(&mut self, s: &mut Script<'_>) -> Option<()> {
        let selector = s.u8()?;
        let (ep, direction) = match selector % 4 {
            0 => (2, Direction::In),
            1 => (2, Direction::Out),
            2 => (1, Direction::In), // bulk: an iso URB on the wrong endpoint type
            _ => (3, Direction::Out), // interrupt
        };
        let header_count = match s.u8()? {
            255 => -1,
            254 => i32::MAX,
            n => i32::from(n % 40),
        };
        let written = usize::from(s.u8()? % 40);
        let flags = s.u8()?;
        let start_frame = i32::from(s.u16()?);
        let out_len = if direction == Direction::Out {
            usize::from(s.u16()?) % 40_000
        } else {
            0
        };
        let mut descriptors = Vec::new();
        for _ in 0..written {
            let offset = u32::from(s.u16()?);
            let length = u32::from(s.u16()?) % 8192;
            descriptors.push((offset, length));
        }
        let in_len: u32 = descriptors.iter().map(|d| d.1).sum();
        let tbl = if direction == Direction::Out {
            u32::try_from(out_len).unwrap_or(u32::MAX)
        } else {
            in_len.max(u32::from(flags))
        };
        let seqnum = self.next_seq;
        self.next_seq += 1;
        let mut wire = BytesMut::new();
        for word in [1u32, seqnum, 0x0001_0002, u32::from(direction.is_in()), ep] {
            wire.put_u32(word);
        }
        let mut tf = if direction.is_in() { 0x200 } else { 0 };
        if flags & 1 != 0 {
            tf |= TransferFlags::ISO_ASAP.0;
        }
        wire.put_u32(tf);
        wire.put_u32(tbl);
        wire.put_i32(start_frame);
        wire.put_i32(header_count);
        wire.put_i32(1);
        wire.put_slice(&[0; 8]);
        wire.put_bytes(0x5a, out_len);
        for (offset, length) in &descriptors {
            wire.put_u32(*offset);
            wire.put_u32(*length);
            wire.put_u32(0);
            wire.put_i32(0);
        }
        let mut codec = ServerCodec::new(LIMITS);
        // Whatever follows a short count is decoded as the next message, as on a stream.
        while let Ok(Some(cmd)) = codec.decode(&mut wire) {
            if let Command::Submit(cmd) = cmd {
                self.accept(cmd);
            }
        }
        Some(())
    }

    fn accept(&mut self, cmd: CmdSubmit) {
        assert!(
            cmd.iso.len() <= LIMITS.max_iso_packets,
            "decoder let more descriptors than the limit through"
        );
        let id = u64::from(cmd.seqnum);
        if self.urbs.contains_key(&id) {
            return; // a reused seqnum: the server refuses those before the core
        }
        let request = iso::iso_request(&cmd);
        let record = SubmittedUrb::of(&cmd);
        // An ASAP iso URB to the iso endpoint cannot complete before its packets' bus time.
        let not_before = (cmd.ep == 2 && cmd.transfer_flags.contains(TransferFlags::ISO_ASAP))
            .then(|| {
                let frames = cmd.iso.len() as u32 * self.interval_frames;
                self.host.now + self.frame * frames
            })
            .filter(|_| !cmd.iso.is_empty() && request.is_some());
        let urb = usbfn_usbip::server::core_urb(cmd.clone());
        debug_assert_eq!(urb.id, UrbId(id));
        self.urbs.insert(
            id,
            Outstanding {
                cmd,
                record,
                not_before,
            },
        );
        self.host.dev.submit_urb(urb, self.host.now);
    }

    fn unlink(&mut self, pick: u8) {
        let mut ids: Vec<u64> = self.urbs.keys().copied().collect();
        if ids.is_empty() {
            return;
        }
        ids.sort_unstable();
        let id = ids[usize::from(pick) % ids.len()];
        if self.host.dev.unlink_urb(UrbId(id), self.host.now) {
            self.urbs.remove(&id);
        }
    }

    fn transfer(&mut self, dir_in: bool, len: usize) {
        let pipe = self.pipes[usize::from(!dir_in)];
        let id = TransferId(self.next_transfer);
        self.next_transfer += 1;
        let request = if dir_in {
            TransferRequest::In {
                data: Bytes::from(vec![0x33; len]),
                append_zero_packet: false,
            }
        } else {
            TransferRequest::Out { capacity: len }
        };
        let _ = self
            .host
            .dev
            .submit_transfer(FunctionId(0), id, pipe, request, self.host.now);
    }

    fn drain(&mut self) {
        while let Some(c) = self.host.dev.poll_urb_completion() {
            self.check(c);
        }
        while self.host.dev.poll_transfer_completion().is_some() {}
        while self.host.dev.poll_event(FunctionId(0)).is_some() {}
        while self.host.dev.poll_bus_request().is_some() {}
    }

    fn check(&mut self, c: usbfn_core::UrbCompletion) {
        let Some(u) = self.urbs.remove(&c.id.0) else {
            panic!("completion for a URB that is not outstanding (twice, or after unlink): {c:?}");
        };
        if c.status.is_success()
            && let Some(t) = u.not_before
        {
            assert!(
                self.host.now >= t,
                "iso URB completed before the bus time of its packets ({:?} early, {:?})",
                t - self.host.now,
                self.speed
            );
        }
        let ret = iso::ret_submit(u.record.seqnum, &u.record, c);
        let mut wire = BytesMut::new();
        ret.encode(u.cmd.direction, &mut wire)
            .expect("the RET_SUBMIT builder produced an inconsistent reply");
        let decoded = RetSubmit::decode(&mut wire, &SubmitInfo::of(&u.cmd), &LIMITS)
            .expect("the Linux host's checks reject our RET_SUBMIT")
            .expect("a whole message");
        assert_eq!(decoded, ret);
        assert!(ret.status <= 0);
        assert_eq!(ret.number_of_packets, u.cmd.number_of_packets);
        if u.cmd.is_iso() {
            assert_eq!(ret.iso.len(), u.cmd.iso.len(), "descriptor count echoed");
            for (r, d) in ret.iso.iter().zip(&u.cmd.iso) {
                assert_eq!((r.offset, r.length), (d.offset, d.length), "offset echoed");
                assert!(r.actual_length <= r.length);
            }
            let sum: u64 = ret.iso.iter().map(|d| u64::from(d.actual_length)).sum();
            assert_eq!(sum, u64::from(ret.actual_length));
            let errors = ret.iso.iter().filter(|d| d.status != 0).count();
            assert_eq!(ret.error_count as usize, errors);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripted_iso_traffic() {
        // High speed, isoc_interval 1; queue IN data, submit an ASAP IN URB of 3 packets and
        // an OUT URB whose header claims more descriptors than it carries, advance, reset.
        let mut script = vec![1u8];
        script.extend_from_slice(&[3, 0x00, 0x10]); // IN transfer of 4096
        script.extend_from_slice(&[0, 0, 3, 3, 1, 0, 0]); // submit iso IN, 3 packets, ASAP
        for (off, len) in [(0u16, 1024u16), (1024, 1024), (2048, 100)] {
            script.extend_from_slice(&off.to_le_bytes());
            script.extend_from_slice(&len.to_le_bytes());
        }
        script.extend_from_slice(&[0, 1, 9, 2, 0, 5, 0, 0x00, 0x08]); // OUT: count 9, 2 written
        script.extend_from_slice(&[0, 0, 0, 4, 0, 4, 0, 4]);
        script.extend_from_slice(&[2, 0xff, 0x00]); // advance 4 ms
        script.extend_from_slice(&[1, 0]); // unlink something
        script.push(5); // reset
        run(&script);
    }

    #[test]
    fn empty_and_truncated_scripts() {
        run(&[]);
        run(&[2]);
        run(&[2, 0, 1]);
    }
}
