//! `core_events`: scripts of bus and service calls on the sans-IO [`Device`].
//!
//! A script is a sequence of [`Op`]s, read from the fuzzer's bytes with `arbitrary`
//! ([`Script`] implements [`Arbitrary`] by hand, one tag byte per op and little-endian fields,
//! so [`encode`] can write real scripts as seeds). [`run`] plays it against a three-interface
//! device (three interfaces with bulk, interrupt and isochronous endpoints, an alternate
//! setting, two configurations) acting as both the host and the services, and checks after every call:
//!
//! * every URB completes exactly once, or is unlinked (`unlink_urb` returns true) and never
//!   completes; `unlink_urb` of a URB still outstanding never says "already completed";
//! * an IN completion carries exactly `actual_length` bytes, never more than the URB's buffer
//!   (nor wLength for control); an OUT completion carries none; statuses are never positive;
//! * every accepted service transfer completes exactly once, and refused ones never do; a
//!   cancelled one completes (cancelled); OUT data fits the buffer;
//! * at the end a bus reset leaves nothing outstanding.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use usbfn_core::testkit::SimHost;
use usbfn_core::{
    BusSpeed, CompletionStatus, DeviceConfig, DeviceModel, FunctionId, Handshake, PipeId,
    TransferId, TransferRequest, Urb, UrbCompletion, UrbId,
};
use usbfn_wire::{Direction, SetupPacket};

/// The device every script runs against.
pub const DEVICE_TOML: &str = r#"
[device]
vendor_id = 0x1209
product_id = 0x0f22
manufacturer = "usbfn"
product = "fuzz"
serial = "0001"
remote_wakeup = true
lpm = true

[control]
setup_timeout_ms = 100

[[configurations]]
interfaces = ["data", "status"]

[[configurations]]
value = 7
interfaces = ["other"]

[[interfaces]]
name = "data"
device_request_owner = true
class = 0xff
endpoints = [{ direction = "in", type = "bulk" }, { direction = "out", type = "bulk" }]

[[interfaces.alternates]]
class = 0xff
endpoints = [
    { direction = "in", type = "interrupt", max_packet = 64 },
    { direction = "out", type = "isochronous", max_packet = 256 },
]

[[interfaces]]
name = "status"
class = 3
endpoints = [{ direction = "in", type = "interrupt", max_packet = 8 }]

[[interfaces]]
name = "other"
class = 0xff
endpoints = [{ direction = "out", type = "interrupt", max_packet = 16 }]
"#;

/// Most ops one script runs (longer inputs are cut).
pub const MAX_OPS: usize = 512;

/// One call on the device, by the host (bus side) or a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `bus_attach`.
    Attach,
    /// `bus_reset` at speed `n % 3` (full, high, super).
    Reset(u8),
    /// `bus_detach`.
    Detach,
    /// `bus_suspend`.
    Suspend,
    /// `bus_resume`.
    Resume,
    /// A control URB with these setup bytes; OUT URBs carry `data_len` bytes.
    Control {
        /// The setup packet as USB sends it.
        setup: [u8; 8],
        /// The host buffer's size (IN).
        buffer_len: u16,
        /// OUT data bytes.
        data_len: u16,
    },
    /// SET_CONFIGURATION (a shortcut to the configured state).
    SetConfiguration(u8),
    /// A data URB on endpoint `ep % 17` (16: out of range).
    Data {
        /// Endpoint number.
        ep: u8,
        /// IN (true) or OUT.
        dir_in: bool,
        /// IN buffer size or OUT data length.
        len: u16,
        /// Bit 0 SHORT_NOT_OK, bit 1 ZERO_PACKET, bit 2 isochronous (8 packets).
        flags: u8,
    },
    /// `unlink_urb` of the `n`-th outstanding URB (255: an id never used).
    Unlink(u8),
    /// `activate` function `n`.
    Activate(u8),
    /// `deactivate` function `n`.
    Deactivate(u8),
    /// `TRANSFER_IN` (or `_APPEND_ZERO_PKT`) of `len` bytes.
    TransferIn {
        /// Function index (may be out of range).
        function: u8,
        /// Pipe id.
        pipe: u8,
        /// Bytes to send.
        len: u16,
        /// `TRANSFER_IN_APPEND_ZERO_PKT`.
        append_zero: bool,
    },
    /// `TRANSFER_OUT` into a `capacity`-byte buffer.
    TransferOut {
        /// Function index.
        function: u8,
        /// Pipe id.
        pipe: u8,
        /// Buffer size.
        capacity: u16,
    },
    /// `cancel_transfer` of the `n`-th outstanding transfer (255: an id never used).
    Cancel(u8),
    /// `CONTROL_STATUS_HANDSHAKE_IN` / `_OUT`.
    Handshake {
        /// Function index.
        function: u8,
        /// `_IN` (true) or `_OUT`.
        dir_in: bool,
    },
    /// `SET_PIPE_STATE`.
    SetPipeState {
        /// Function index.
        function: u8,
        /// Pipe id.
        pipe: u8,
        /// Stall (true) or clear.
        stall: bool,
    },
    /// `GET_PIPE_STATE`.
    GetPipeState {
        /// Function index.
        function: u8,
        /// Pipe id.
        pipe: u8,
    },
    /// `REGISTER_USB_STRING` of `len` characters at `index`.
    RegisterString {
        /// String index.
        index: u8,
        /// Characters (some outside the BMP).
        len: u8,
    },
    /// Time passes; an expired setup packet times out.
    Advance(u16),
    /// Read every waiting bus event of function `n`.
    PollEvents(u8),
    /// `GET_CLASS_INFO` and `GET_INTERFACE_DESCRIPTOR_SET`.
    Query {
        /// Function index.
        function: u8,
        /// bInterfaceNumber.
        number: u8,
        /// Speed `n % 3`.
        speed: u8,
    },
}

/// A whole script.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Script(pub Vec<Op>);

const TAGS: u8 = 21;

impl<'a> Arbitrary<'a> for Op {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let tag = u8::arbitrary(u)? % TAGS;
        Ok(match tag {
            0 => Op::Attach,
            1 => Op::Reset(u.arbitrary()?),
            2 => Op::Detach,
            3 => Op::Suspend,
            4 => Op::Resume,
            5 => Op::Control {
                setup: u.arbitrary()?,
                buffer_len: u.arbitrary()?,
                data_len: u.arbitrary()?,
            },
            6 => Op::SetConfiguration(u.arbitrary()?),
            7 => Op::Data {
                ep: u.arbitrary()?,
                dir_in: u.arbitrary()?,
                len: u.arbitrary()?,
                flags: u.arbitrary()?,
            },
            8 => Op::Unlink(u.arbitrary()?),
            9 => Op::Activate(u.arbitrary()?),
            10 => Op::Deactivate(u.arbitrary()?),
            11 => Op::TransferIn {
                function: u.arbitrary()?,
                pipe: u.arbitrary()?,
                len: u.arbitrary()?,
                append_zero: u.arbitrary()?,
            },
            12 => Op::TransferOut {
                function: u.arbitrary()?,
                pipe: u.arbitrary()?,
                capacity: u.arbitrary()?,
            },
            13 => Op::Cancel(u.arbitrary()?),
            14 => Op::Handshake {
                function: u.arbitrary()?,
                dir_in: u.arbitrary()?,
            },
            15 => Op::SetPipeState {
                function: u.arbitrary()?,
                pipe: u.arbitrary()?,
                stall: u.arbitrary()?,
            },
            16 => Op::GetPipeState {
                function: u.arbitrary()?,
                pipe: u.arbitrary()?,
            },
            17 => Op::RegisterString {
                index: u.arbitrary()?,
                len: u.arbitrary()?,
            },
            18 => Op::Advance(u.arbitrary()?),
            19 => Op::PollEvents(u.arbitrary()?),
            _ => Op::Query {
                function: u.arbitrary()?,
                number: u.arbitrary()?,
                speed: u.arbitrary()?,
            },
        })
    }
}

impl<'a> Arbitrary<'a> for Script {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let mut ops = Vec::new();
        while !u.is_empty() && ops.len() < MAX_OPS {
            ops.push(Op::arbitrary(u)?);
        }
        Ok(Script(ops))
    }

    fn arbitrary_take_rest(mut u: Unstructured<'a>) -> arbitrary::Result<Self> {
        Self::arbitrary(&mut u)
    }
}

/// The bytes `Script::arbitrary` reads back as `ops` (for seeds).
pub fn encode(ops: &[Op]) -> Vec<u8> {
    let mut out = Vec::new();
    let tag = |out: &mut Vec<u8>, t: u8| out.push(t);
    for op in ops {
        match *op {
            Op::Attach => tag(&mut out, 0),
            Op::Reset(s) => out.extend([1, s]),
            Op::Detach => tag(&mut out, 2),
            Op::Suspend => tag(&mut out, 3),
            Op::Resume => tag(&mut out, 4),
            Op::Control {
                setup,
                buffer_len,
                data_len,
            } => {
                out.push(5);
                out.extend(setup);
                out.extend(buffer_len.to_le_bytes());
                out.extend(data_len.to_le_bytes());
            }
            Op::SetConfiguration(v) => out.extend([6, v]),
            Op::Data {
                ep,
                dir_in,
                len,
                flags,
            } => {
                out.extend([7, ep, u8::from(dir_in)]);
                out.extend(len.to_le_bytes());
                out.push(flags);
            }
            Op::Unlink(n) => out.extend([8, n]),
            Op::Activate(f) => out.extend([9, f]),
            Op::Deactivate(f) => out.extend([10, f]),
            Op::TransferIn {
                function,
                pipe,
                len,
                append_zero,
            } => {
                out.extend([11, function, pipe]);
                out.extend(len.to_le_bytes());
                out.push(u8::from(append_zero));
            }
            Op::TransferOut {
                function,
                pipe,
                capacity,
            } => {
                out.extend([12, function, pipe]);
                out.extend(capacity.to_le_bytes());
            }
            Op::Cancel(n) => out.extend([13, n]),
            Op::Handshake { function, dir_in } => out.extend([14, function, u8::from(dir_in)]),
            Op::SetPipeState {
                function,
                pipe,
                stall,
            } => out.extend([15, function, pipe, u8::from(stall)]),
            Op::GetPipeState { function, pipe } => out.extend([16, function, pipe]),
            Op::RegisterString { index, len } => out.extend([17, index, len]),
            Op::Advance(ms) => {
                out.push(18);
                out.extend(ms.to_le_bytes());
            }
            Op::PollEvents(f) => out.extend([19, f]),
            Op::Query {
                function,
                number,
                speed,
            } => out.extend([20, function, number, speed]),
        }
    }
    out
}

/// Decode `data` as a script and play it (the fuzz target).
pub fn run(data: &[u8]) {
    let Ok(script) = Script::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    play(&script.0);
}

/// Play `ops` against a fresh device, checking the invariants of the module docs.
pub fn play(ops: &[Op]) -> Stats {
    let mut sim = Sim::new();
    for op in ops {
        sim.apply(op);
        sim.drain();
    }
    sim.finish()
}

/// What a script did (for tests and seeds).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// URBs submitted.
    pub urbs: usize,
    /// URB completions with success status.
    pub urbs_ok: usize,
    /// URBs unlinked while pending.
    pub unlinked: usize,
    /// Service transfers accepted.
    pub transfers: usize,
    /// Service calls refused with an error.
    pub refused: usize,
    /// Setup packets forwarded to a service.
    pub setups_forwarded: usize,
}

#[derive(Debug)]
struct UrbInfo {
    direction: Direction,
    /// Largest IN completion allowed.
    max_in: usize,
    /// OUT bytes submitted.
    out_len: usize,
    /// Isochronous packets submitted (`None`: not isochronous).
    iso_packets: Option<Vec<usbfn_core::IsoPacket>>,
}

#[derive(Debug)]
struct TransferInfo {
    dir_in: bool,
    len: usize,
    cancelled: bool,
}

struct Sim {
    /// The device and the virtual clock (the core's test kit); this harness adds the
    /// bookkeeping that checks every answer.
    host: SimHost,
    functions: usize,
    next_transfer: u64,
    urbs: BTreeMap<UrbId, UrbInfo>,
    transfers: BTreeMap<TransferId, TransferInfo>,
    stats: Stats,
}

fn speed(n: u8) -> BusSpeed {
    BusSpeed::ALL[usize::from(n % 3)]
}

/// Payload bytes: `i % 251`, enough for any `u16` length.
#[allow(clippy::cast_possible_truncation)] // i % 251 fits a u8
static PATTERN: [u8; 65536] = {
    let mut p = [0u8; 65536];
    let mut i = 0;
    while i < p.len() {
        p[i] = (i % 251) as u8;
        i += 1;
    }
    p
};

fn pattern(len: usize) -> Bytes {
    Bytes::from_static(&PATTERN[..len.min(PATTERN.len())])
}

impl Sim {
    fn new() -> Sim {
        static MODEL: OnceLock<DeviceModel> = OnceLock::new();
        let model = MODEL
            .get_or_init(|| {
                let config =
                    DeviceConfig::from_toml(DEVICE_TOML).expect("the fuzz device's TOML parses");
                DeviceModel::build(&config).expect("the fuzz device is valid")
            })
            .clone();
        let functions = model.interfaces().len();
        Sim {
            host: SimHost::unattached(model),
            functions,
            next_transfer: 1,
            urbs: BTreeMap::new(),
            transfers: BTreeMap::new(),
            stats: Stats::default(),
        }
    }

    fn function(&self, n: u8) -> FunctionId {
        // One past the last function is an invalid id, on purpose.
        FunctionId(usize::from(n) % (self.functions + 1))
    }

    fn submit(&mut self, urb: Urb) {
        let max_in = match urb.setup {
            Some(s) if urb.endpoint == 0 => urb.buffer_len.min(usize::from(s.w_length)),
            _ => urb.buffer_len,
        };
        let info = UrbInfo {
            direction: urb.direction,
            max_in,
            out_len: urb.data.len(),
            iso_packets: urb.iso.as_ref().map(|i| i.packets.clone()),
        };
        self.stats.urbs += 1;
        // Completions are polled only after the op, so the record is in place in time.
        let id = self.host.submit_new(urb);
        self.urbs.insert(id, info);
    }

    fn transfer(&mut self, f: FunctionId, pipe: PipeId, request: TransferRequest) {
        let id = TransferId(self.next_transfer);
        self.next_transfer += 1;
        let (dir_in, len) = match &request {
            TransferRequest::In { data, .. } => (true, data.len()),
            TransferRequest::Out { capacity } => (false, *capacity),
        };
        match self
            .host
            .dev
            .submit_transfer(f, id, pipe, request, self.host.now)
        {
            Ok(()) => {
                self.stats.transfers += 1;
                self.transfers.insert(
                    id,
                    TransferInfo {
                        dir_in,
                        len,
                        cancelled: false,
                    },
                );
            }
            Err(_) => self.stats.refused += 1,
        }
    }

    fn refused<T, E>(&mut self, r: Result<T, E>) {
        if r.is_err() {
            self.stats.refused += 1;
        }
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Attach => self.host.dev.bus_attach(self.host.now),
            Op::Reset(s) => self.host.dev.bus_reset(speed(s), self.host.now),
            Op::Detach => self.host.dev.bus_detach(self.host.now),
            Op::Suspend => self.host.dev.bus_suspend(),
            Op::Resume => self.host.dev.bus_resume(),
            Op::Control {
                setup,
                buffer_len,
                data_len,
            } => {
                let setup = SetupPacket::from_bytes(setup);
                let direction = setup.direction();
                let data = if direction == Direction::Out {
                    pattern(usize::from(data_len))
                } else {
                    Bytes::new()
                };
                // The buffer is fuzzed apart from wLength, on purpose.
                self.submit(Urb {
                    buffer_len: usize::from(buffer_len),
                    ..Urb::control(UrbId(0), setup, data)
                });
            }
            Op::SetConfiguration(value) => {
                let setup = SetupPacket::set_configuration(value);
                self.submit(Urb::control(UrbId(0), setup, Bytes::new()));
            }
            Op::Data {
                ep,
                dir_in,
                len,
                flags,
            } => {
                let direction = if dir_in {
                    Direction::In
                } else {
                    Direction::Out
                };
                let len = usize::from(len);
                let ep = ep % 17;
                let urb = match direction {
                    Direction::In => Urb::bulk_in(UrbId(0), ep, len),
                    Direction::Out => Urb::bulk_out(UrbId(0), ep, pattern(len)),
                };
                self.submit(Urb {
                    short_not_ok: flags & 1 != 0,
                    zero_packet: flags & 2 != 0,
                    iso: (flags & 4 != 0).then(|| iso_packets(len, 8)),
                    ..urb
                });
            }
            Op::Unlink(n) => {
                let target = if n == u8::MAX || self.urbs.is_empty() {
                    None
                } else {
                    self.urbs
                        .keys()
                        .nth(usize::from(n) % self.urbs.len())
                        .copied()
                };
                match target {
                    Some(id) => {
                        if self.host.dev.unlink_urb(id, self.host.now) {
                            self.urbs.remove(&id);
                            self.stats.unlinked += 1;
                        } else {
                            panic!(
                                "unlink_urb({id:?}) said 'unknown or completed' for a URB that \
                                 is outstanding (its completion was never polled)"
                            );
                        }
                    }
                    None => {
                        // An ID the host allocates but never submits.
                        let never = self.host.id();
                        assert!(
                            !self.host.dev.unlink_urb(never, self.host.now),
                            "unlinked a URB never submitted"
                        );
                    }
                }
            }
            Op::Activate(f) => {
                let r = self.host.dev.activate(self.function(f));
                self.refused(r);
            }
            Op::Deactivate(f) => {
                let r = self.host.dev.deactivate(self.function(f), self.host.now);
                self.refused(r);
            }
            Op::TransferIn {
                function,
                pipe,
                len,
                append_zero,
            } => {
                let request = TransferRequest::In {
                    data: pattern(usize::from(len)),
                    append_zero_packet: append_zero,
                };
                self.transfer(self.function(function), PipeId(u32::from(pipe)), request);
            }
            Op::TransferOut {
                function,
                pipe,
                capacity,
            } => {
                let request = TransferRequest::Out {
                    capacity: usize::from(capacity),
                };
                self.transfer(self.function(function), PipeId(u32::from(pipe)), request);
            }
            Op::Cancel(n) => {
                let target = if n == u8::MAX || self.transfers.is_empty() {
                    None
                } else {
                    self.transfers
                        .keys()
                        .nth(usize::from(n) % self.transfers.len())
                        .copied()
                };
                match target {
                    Some(id) => {
                        if self.host.dev.cancel_transfer(id) {
                            if let Some(t) = self.transfers.get_mut(&id) {
                                t.cancelled = true;
                            }
                        } else {
                            panic!(
                                "cancel_transfer({id:?}) found nothing for a transfer that is \
                                 outstanding (its completion was never polled)"
                            );
                        }
                    }
                    None => {
                        let never = TransferId(self.next_transfer + 1_000_000);
                        assert!(
                            !self.host.dev.cancel_transfer(never),
                            "cancelled a transfer never submitted"
                        );
                    }
                }
            }
            Op::Handshake { function, dir_in } => {
                let which = if dir_in {
                    Handshake::In
                } else {
                    Handshake::Out
                };
                let r =
                    self.host
                        .dev
                        .control_handshake(self.function(function), which, self.host.now);
                self.refused(r);
            }
            Op::SetPipeState {
                function,
                pipe,
                stall,
            } => {
                let r = self.host.dev.set_pipe_state(
                    self.function(function),
                    PipeId(u32::from(pipe)),
                    stall,
                    self.host.now,
                );
                self.refused(r);
            }
            Op::GetPipeState { function, pipe } => {
                let r = self
                    .host
                    .dev
                    .get_pipe_state(self.function(function), PipeId(u32::from(pipe)));
                self.refused(r);
            }
            Op::RegisterString { index, len } => {
                let text: String = (0..len)
                    .map(|i| if i % 7 == 6 { '\u{1F50C}' } else { 'a' })
                    .collect();
                let r = self.host.dev.register_string(index, &text);
                self.refused(r);
            }
            Op::Advance(ms) => {
                self.host.now += Duration::from_millis(u64::from(ms));
                if self
                    .host
                    .dev
                    .poll_timeout()
                    .is_some_and(|d| d <= self.host.now)
                {
                    self.host.dev.handle_timeout(self.host.now);
                }
            }
            Op::PollEvents(f) => {
                let f = self.function(f);
                let mut n = 0usize;
                while let Some(e) = self.host.dev.poll_event(f) {
                    n += 1;
                    if matches!(e, usbfn_core::BusEvent::SetupPacket(_)) {
                        self.stats.setups_forwarded += 1;
                    }
                    let _ = e.to_notification_bytes();
                }
                assert!(
                    n <= usbfn_core::MAX_QUEUED_EVENTS,
                    "{n} events queued for one service (limit MAX_QUEUED_EVENTS)"
                );
            }
            Op::Query {
                function,
                number,
                speed: s,
            } => {
                let r = self.host.dev.class_info(self.function(function));
                self.refused(r);
                let r = self.host.dev.interface_descriptor_set(number, speed(s));
                self.refused(r);
            }
        }
    }

    /// Poll every output and check it against what is outstanding.
    fn drain(&mut self) {
        while let Some(c) = self.host.dev.poll_urb_completion() {
            self.check_urb(&c);
        }
        while let Some(c) = self.host.dev.poll_transfer_completion() {
            let Some(t) = self.transfers.remove(&c.id) else {
                panic!("completion for a transfer that is not outstanding: {c:?}");
            };
            assert!(
                c.bytes_transferred <= t.len,
                "transfer moved {} bytes of {}: {c:?}",
                c.bytes_transferred,
                t.len
            );
            if t.dir_in {
                assert!(c.data.is_empty(), "IN transfer completion with data: {c:?}");
            } else {
                assert_eq!(
                    c.data.len(),
                    c.bytes_transferred,
                    "OUT transfer data: {c:?}"
                );
            }
            if t.cancelled {
                assert_ne!(
                    c.status,
                    CompletionStatus::Success,
                    "a cancelled transfer completed successfully"
                );
            }
        }
        while self.host.dev.poll_bus_request().is_some() {}
    }

    fn check_urb(&mut self, c: &UrbCompletion) {
        let Some(u) = self.urbs.remove(&c.id) else {
            panic!("completion for a URB that is not outstanding (twice, or after unlink): {c:?}");
        };
        assert!(c.status.to_errno() <= 0, "positive status: {c:?}");
        if c.status == CompletionStatus::Success {
            self.stats.urbs_ok += 1;
        }
        match (&u.iso_packets, &c.iso) {
            (None, None) => {}
            (Some(sent), Some(done)) => {
                assert_eq!(sent.len(), done.packets.len(), "iso packet count: {c:?}");
                let mut sum = 0usize;
                for (p, r) in sent.iter().zip(&done.packets) {
                    assert_eq!(*p, r.packet, "iso packet not echoed: {c:?}");
                    assert!(r.actual_length <= p.length, "iso packet overfilled: {c:?}");
                    sum += r.actual_length as usize;
                }
                assert_eq!(
                    sum, c.actual_length,
                    "iso actual lengths vs the URB's: {c:?}"
                );
            }
            _ => panic!("iso results missing or unexpected: {c:?}"),
        }
        match u.direction {
            Direction::In => {
                assert_eq!(
                    c.data.len(),
                    c.actual_length,
                    "IN data vs actual_length: {c:?}"
                );
                assert!(
                    c.actual_length <= u.max_in,
                    "IN completion of {} bytes for a {}-byte buffer",
                    c.actual_length,
                    u.max_in
                );
            }
            Direction::Out => {
                assert!(c.data.is_empty(), "OUT completion with data: {c:?}");
                assert!(
                    c.actual_length <= u.out_len,
                    "OUT completion took {} of {} bytes",
                    c.actual_length,
                    u.out_len
                );
            }
        }
    }

    fn finish(mut self) -> Stats {
        // A bus reset ends everything: nothing may stay outstanding.
        self.host.dev.bus_reset(BusSpeed::High, self.host.now);
        self.drain();
        for f in 0..self.functions {
            let _ = self.host.dev.deactivate(FunctionId(f), self.host.now);
        }
        self.drain();
        assert!(
            self.urbs.is_empty(),
            "URBs never completed after a bus reset: {:?}",
            self.urbs.keys().collect::<Vec<_>>()
        );
        assert!(
            self.transfers.is_empty(),
            "transfers never completed after a bus reset: {:?}",
            self.transfers.keys().collect::<Vec<_>>()
        );
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_is_what_arbitrary_reads() {
        for (name, bytes) in crate::seeds::core_events() {
            let script = Script::arbitrary_take_rest(Unstructured::new(&bytes)).expect("decodes");
            assert_eq!(encode(&script.0), bytes, "{name}");
        }
    }

    #[test]
    fn seeds_reach_the_interesting_states() {
        let mut total = Stats::default();
        for (_, bytes) in crate::seeds::core_events() {
            let script = Script::arbitrary_take_rest(Unstructured::new(&bytes)).expect("decodes");
            let s = play(&script.0);
            total.urbs_ok += s.urbs_ok;
            total.unlinked += s.unlinked;
            total.transfers += s.transfers;
            total.setups_forwarded += s.setups_forwarded;
        }
        assert!(total.urbs_ok > 20, "{total:?}");
        assert!(total.unlinked > 2, "{total:?}");
        assert!(total.transfers > 5, "{total:?}");
        assert!(total.setups_forwarded > 2, "{total:?}");
    }
}

/// `count` packets splitting `len` bytes (the last takes the rest), ASAP.
fn iso_packets(len: usize, count: u32) -> usbfn_core::IsoRequest {
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    let each = len / count;
    usbfn_core::IsoRequest {
        packets: (0..count)
            .map(|i| usbfn_core::IsoPacket {
                offset: i * each,
                length: if i + 1 == count { len - i * each } else { each },
            })
            .collect(),
        start_frame: None,
    }
}
