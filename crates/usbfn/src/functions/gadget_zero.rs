//! Gadget Zero: the Linux kernel's test function (f_sourcesink), which the host's `usbtest`
//! driver knows as `0525:a4a0`.
//!
//! * bulk IN sources data and bulk OUT sinks it, in pattern 0 (zeros) or 1
//!   (`(i % wMaxPacketSize) % 63`); OUT data that breaks the pattern fails the transfer and
//!   halts the OUT endpoint, as the kernel's function does;
//! * vendor requests 0x5b (write, bmRequestType 0x40) and 0x5c (read back, 0xc0) store and
//!   return up to 4096 bytes of a buffer, wLength 0 included;
//! * `qlen` transfers of `buflen` bytes stay queued on each pipe for throughput (32, or
//!   [`CONTROLLER_QLEN`] on a device controller through FunctionFS, see
//!   [`Options::for_controller`]);
//! * alternate setting 1 adds f_sourcesink's isochronous IN (source) and OUT (sink)
//!   endpoints, shaped by the kernel's module parameters `isoc_interval`, `isoc_maxpacket`,
//!   `isoc_mult` and `isoc_maxburst` with the kernel's defaults (4, 1024, 0, 0; `iso_qlen` 8);
//!   usbtest selects it with its module parameter `alt=1` (tests 15, 16, 22, 23);
//! * both alternate settings carry an interrupt IN and OUT pair, where usbtest's
//!   `get_endpoints()` looks for them (tests 25, 26): `int_interval` (default 1) and
//!   `int_maxpacket` (default 1024, at most 64 at full speed), the names and defaults of the
//!   interrupt support f_sourcesink once had.
//!
//! Endpoints: bulk 0x81/0x01, isochronous 0x82/0x02, interrupt 0x83/0x03.
//!
//! Options are set by name (`Options::set`), as `usbfn serve --function
//! gadget-zero,isoc_interval=1,isoc_mult=2` and as keys of a serve configuration's
//! `[[device]]`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use usbfn_core::config::{
    DeviceConfig, DeviceSection, EndpointSection, InterfaceSection, TransferTypeName,
};
use usbfn_core::{BusEvent, BusSpeed, CompletionStatus, PipeId};
use usbfn_wire::{Direction, RequestType, SetupPacket, TransferType};

use super::{Fragment, FunctionOptions, OptionError, number};
use crate::{Error, ServiceApi};

/// The interface GUID Gadget Zero's service opens.
pub const INTERFACE_GUID: &str = "{a4a00525-5a5a-4e2e-8000-0000000000a0}";
/// The interface name.
pub const INTERFACE_NAME: &str = "source-sink";
/// Size of the vendor-request buffer (the kernel's `USB_COMP_EP0_BUFSIZ`).
pub const CONTROL_BUFFER: usize = 4096;
/// Vendor request: store wLength bytes.
pub const REQUEST_WRITE: u8 = 0x5b;
/// Vendor request: return wLength bytes.
pub const REQUEST_READ: u8 = 0x5c;

/// Data pattern, as usbtest's `pattern` module parameter.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum Pattern {
    /// Every byte 0.
    #[default]
    Zeros,
    /// Byte i is `(i % wMaxPacketSize) % 63`.
    Mod63,
}

/// Bulk IN endpoint address.
pub const BULK_IN: u8 = 0x81;
/// Bulk OUT endpoint address.
pub const BULK_OUT: u8 = 0x01;
/// Isochronous IN endpoint address (alternate setting 1).
pub const ISO_IN: u8 = 0x82;
/// Isochronous OUT endpoint address (alternate setting 1).
pub const ISO_OUT: u8 = 0x02;
/// Interrupt IN endpoint address.
pub const INT_IN: u8 = 0x83;
/// Interrupt OUT endpoint address.
pub const INT_OUT: u8 = 0x03;

/// Isochronous packets per `TRANSFER_IN` the source queues: with `iso_qlen` transfers this
/// is the buffering that rides out a late timer wake-up (16 packets × 8 transfers).
pub const ISO_PACKETS_PER_TRANSFER: usize = 16;

/// Bulk transfers kept queued per pipe on a device controller (FunctionFS) when `qlen` is
/// not given. There every transfer's completion crosses to user space and its replacement
/// comes back, a round trip of milliseconds under load (the kernel's f_sourcesink requeues
/// inside the UDC's completion callback instead), so throughput is the queue depth over that
/// round trip: usbtest 27/28 on dummy_hcd ran 2 to 3.5 times faster at 256 than at 32
/// (docs/benchmarks.md). Two generations of 256 per direction (the one being cancelled on
/// a SET_INTERFACE and the next) stay within `usbfn_ffs::MAX_IN_FLIGHT`.
pub const CONTROLLER_QLEN: usize = 256;

/// Options of the function. The isochronous and interrupt ones carry f_sourcesink's names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// The data pattern.
    pub pattern: Pattern,
    /// Transfers kept queued per bulk and interrupt pipe.
    pub qlen: usize,
    /// Whether `qlen` was given (by [`FunctionOptions::set`]); when not,
    /// [`Options::for_controller`] raises it to [`CONTROLLER_QLEN`].
    pub qlen_given: bool,
    /// Bytes per bulk and interrupt transfer.
    pub buflen: usize,
    /// `isoc_interval`: bInterval of the isochronous endpoints, 1..=16 (2^(n-1) (micro)frames).
    pub isoc_interval: u8,
    /// `isoc_maxpacket`: wMaxPacketSize of the isochronous endpoints, 0..=1024 (at most 1023
    /// at full speed).
    pub isoc_maxpacket: u16,
    /// `isoc_mult`: additional transactions per microframe (high speed) or SuperSpeed Mult,
    /// 0..=2.
    pub isoc_mult: u8,
    /// `isoc_maxburst`: SuperSpeed bMaxBurst of the isochronous endpoints, 0..=15.
    pub isoc_maxburst: u8,
    /// `iso_qlen`: isochronous transfers kept queued per direction (each IN transfer carries
    /// [`ISO_PACKETS_PER_TRANSFER`] packets; OUT keeps as many one-packet reads).
    pub iso_qlen: usize,
    /// `int_interval`: bInterval of the interrupt endpoints (frames at full speed, 1..=255;
    /// 2^(n-1) microframes above, 1..=16).
    pub int_interval: u8,
    /// `int_maxpacket`: wMaxPacketSize of the interrupt endpoints, 1..=1024 (64 at most at
    /// full speed).
    pub int_maxpacket: u16,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            pattern: Pattern::Zeros,
            qlen: 32,
            qlen_given: false,
            buflen: 4096,
            isoc_interval: 4,
            isoc_maxpacket: 1024,
            isoc_mult: 0,
            isoc_maxburst: 0,
            iso_qlen: 8,
            int_interval: 1,
            int_maxpacket: 1024,
        }
    }
}

/// The option names, for [`OptionError::Unknown`].
const OPTION_NAMES: &str = "pattern, qlen, buflen, isoc_interval, isoc_maxpacket, isoc_mult, \
    isoc_maxburst, iso_qlen, int_interval, int_maxpacket";

impl FunctionOptions for Options {
    fn set(&mut self, key: &str, value: &str) -> Result<(), OptionError> {
        match key {
            "pattern" => {
                self.pattern = match number::<u8>(key, value, 0, 1, "0 (zeros) or 1 (mod 63)")? {
                    0 => Pattern::Zeros,
                    _ => Pattern::Mod63,
                }
            }
            "qlen" => {
                self.qlen = number(key, value, 1, 256, "1..=256")?;
                self.qlen_given = true;
            }
            "buflen" => self.buflen = number(key, value, 1, 1 << 20, "1..=1048576")?,
            "isoc_interval" => self.isoc_interval = number(key, value, 1, 16, "1..=16")?,
            "isoc_maxpacket" => self.isoc_maxpacket = number(key, value, 0, 1024, "0..=1024")?,
            "isoc_mult" => self.isoc_mult = number(key, value, 0, 2, "0..=2")?,
            "isoc_maxburst" => self.isoc_maxburst = number(key, value, 0, 15, "0..=15")?,
            "iso_qlen" => self.iso_qlen = number(key, value, 1, 64, "1..=64")?,
            "int_interval" => self.int_interval = number(key, value, 1, 16, "1..=16")?,
            "int_maxpacket" => self.int_maxpacket = number(key, value, 1, 1024, "1..=1024")?,
            other => {
                return Err(OptionError::Unknown {
                    function: "gadget-zero",
                    key: other.to_owned(),
                    known: OPTION_NAMES,
                });
            }
        }
        Ok(())
    }
}

impl Options {
    /// The options on a device controller (FunctionFS): `qlen` [`CONTROLLER_QLEN`] unless
    /// it was given.
    pub fn for_controller(mut self) -> Self {
        if !self.qlen_given {
            self.qlen = CONTROLLER_QLEN;
        }
        self
    }

    /// Isochronous bytes per interval at `speed` (one packet of a URB).
    pub fn iso_bytes_per_interval(&self, speed: BusSpeed) -> usize {
        let mps = usize::from(self.iso_maxpacket_at(speed) & 0x7ff);
        let mult = usize::from(self.isoc_mult.min(2)) + 1;
        match speed {
            BusSpeed::Full => mps,
            BusSpeed::High => mps * mult,
            BusSpeed::Super => mps * mult * (usize::from(self.isoc_maxburst.min(15)) + 1),
        }
    }

    /// The isochronous wMaxPacketSize at `speed` (with the high-bandwidth bits at high
    /// speed), as f_sourcesink fills it in.
    fn iso_maxpacket_at(&self, speed: BusSpeed) -> u16 {
        let mps = self.isoc_maxpacket.min(1024);
        match speed {
            BusSpeed::Full => mps.min(1023),
            BusSpeed::High => mps | (u16::from(self.isoc_mult.min(2)) << 11),
            BusSpeed::Super => mps,
        }
    }
}

/// The device configuration with the default options.
pub fn config() -> DeviceConfig {
    config_with(&Options::default())
}

/// The device configuration: 0525:a4a0, one vendor-class interface; alternate setting 0 has
/// bulk and interrupt IN and OUT, alternate setting 1 adds isochronous IN and OUT.
pub fn config_with(options: &Options) -> DeviceConfig {
    use usbfn_core::config::{AlternateSection, PerSpeed};
    let endpoint =
        |address: u8, transfer_type| EndpointSection::new(Some(address), None, transfer_type);
    let bulk = |address| endpoint(address, TransferTypeName::Bulk);
    let interrupt = |address| EndpointSection {
        max_packet: Some(PerSpeed::Each {
            full: Some(options.int_maxpacket.clamp(1, 64)),
            high: Some(options.int_maxpacket.clamp(1, 1024)),
            super_: Some(options.int_maxpacket.clamp(1, 1024)),
        }),
        interval: Some(PerSpeed::Each {
            full: Some(options.int_interval.max(1)),
            high: Some(options.int_interval.clamp(1, 16)),
            super_: Some(options.int_interval.clamp(1, 16)),
        }),
        ..endpoint(address, TransferTypeName::Interrupt)
    };
    let iso = |address| EndpointSection {
        max_packet: Some(PerSpeed::Each {
            full: Some(options.iso_maxpacket_at(BusSpeed::Full)),
            high: Some(options.iso_maxpacket_at(BusSpeed::High)),
            super_: Some(options.iso_maxpacket_at(BusSpeed::Super)),
        }),
        interval: Some(PerSpeed::All(options.isoc_interval.clamp(1, 16))),
        max_burst: options.isoc_maxburst.min(15),
        ss_attributes: options.isoc_mult.min(2),
        ..endpoint(address, TransferTypeName::Isochronous)
    };
    DeviceConfig {
        device: DeviceSection {
            class: 0xff,
            ..super::function_device(
                0x0525,
                0xa4a0,
                Some("Gadget Zero".into()),
                Some("0123456789.0123456789.0123456789".into()),
            )
        },
        configurations: Vec::new(),
        interfaces: vec![InterfaceSection {
            name: INTERFACE_NAME.into(),
            guid: Some(INTERFACE_GUID.into()),
            number: None,
            device_request_owner: true,
            compatible_id: None,
            class: Some(0xff),
            subclass: Some(0),
            protocol: Some(0),
            string: Some("source and sink data".into()),
            class_descriptors: None,
            endpoints: vec![
                bulk(BULK_IN),
                bulk(BULK_OUT),
                interrupt(INT_IN),
                interrupt(INT_OUT),
            ],
            descriptor: None,
            alternates: vec![AlternateSection {
                class: Some(0xff),
                subclass: Some(0),
                protocol: Some(0),
                string: Some("source and sink data".into()),
                class_descriptors: None,
                endpoints: vec![
                    bulk(BULK_IN),
                    bulk(BULK_OUT),
                    iso(ISO_IN),
                    iso(ISO_OUT),
                    interrupt(INT_IN),
                    interrupt(INT_OUT),
                ],
                descriptor: None,
            }],
        }],
        associations: Vec::new(),
        control: Default::default(),
    }
}

/// What Gadget Zero adds to a device: [`config_with`]'s device and interface; copies after
/// the first are named `source-sink1`, `source-sink2`, ...
pub fn fragment(options: &Options, instance: usize) -> Fragment {
    let config = config_with(options);
    let mut interfaces = config.interfaces;
    if instance > 0 {
        for iface in &mut interfaces {
            iface.name = format!("{}{instance}", iface.name);
            iface.guid = None;
        }
    }
    Fragment {
        device: config.device,
        interfaces,
        associations: config.associations,
    }
}

/// Gadget Zero for a controller without isochronous or interrupt endpoints (dummy_hcd, and
/// FunctionFS, where an endpoint belongs to one alternate setting): alternate setting 0 with
/// bulk IN and OUT only, as the kernel's f_sourcesink offers when its UDC has no iso
/// endpoints. [`run`] serves it unchanged (it skips pipes the interface does not have).
pub fn bulk_only_config(options: &Options) -> DeviceConfig {
    let mut config = config_with(options);
    for iface in &mut config.interfaces {
        iface.alternates.clear();
        iface
            .endpoints
            .retain(|e| e.transfer_type == TransferTypeName::Bulk);
    }
    config
}

/// Run Gadget Zero on an opened interface until the interface fails (device dropped, or the
/// daemon connection lost): in-process on a [`crate::Interface`], or out-of-process on any
/// other [`ServiceApi`] (the daemon's IOCTL socket).
pub async fn run<S: ServiceApi>(iface: S, options: Options) -> Result<(), Error> {
    let iface = Arc::new(iface);
    let info = iface.class_info().await?;
    // (pipe, wMaxPacketSize bits 10..0) of the interface's first endpoint of a type and
    // direction at a speed (the service may run on any interface of a composite device).
    let pipe =
        |speed: BusSpeed, kind: TransferType, dir: Direction| info.find_pipe(speed, kind, dir);
    let generation = Arc::new(AtomicU64::new(0));
    // The vendor requests' buffer, allocated by the first write: thousands of idle devices
    // on one server need not hold 4 KiB each (a read before any write reads zeros).
    let control = Arc::new(Mutex::new(Vec::new()));
    let mut speed = BusSpeed::High;
    iface.activate_bus().await?;
    loop {
        let event = iface.next_event().await?;
        tracing::debug!(?event, "gadget zero event");
        let alternate = match event {
            BusEvent::Reset(s) => {
                speed = s;
                generation.fetch_add(1, Ordering::SeqCst);
                continue;
            }
            BusEvent::Configured(_) => 0,
            BusEvent::SetInterface { alternate, .. } => alternate,
            BusEvent::UnConfigured | BusEvent::Detach => {
                generation.fetch_add(1, Ordering::SeqCst);
                continue;
            }
            BusEvent::SetupPacket(setup) => {
                answer_setup(&*iface, setup, &control).await;
                continue;
            }
            BusEvent::Attach | BusEvent::Suspend | BusEvent::Resume => continue,
        };
        let gen_now = generation.fetch_add(1, Ordering::SeqCst) + 1;
        if alternate > 1 {
            continue;
        }
        let (bulk, int, iso) = (
            TransferType::Bulk,
            TransferType::Interrupt,
            TransferType::Isochronous,
        );
        let (qlen, buflen) = (options.qlen, options.buflen);
        let mut streams = vec![
            (bulk, Direction::In, qlen, buflen),
            (bulk, Direction::Out, qlen, buflen),
            (int, Direction::In, qlen, buflen),
            (int, Direction::Out, qlen, buflen),
        ];
        if alternate == 1 {
            let bpi = options.iso_bytes_per_interval(speed);
            let packets = ISO_PACKETS_PER_TRANSFER;
            streams.push((iso, Direction::In, options.iso_qlen, bpi * packets));
            // One packet per TRANSFER_OUT: as many reads as the source has packets queued.
            streams.push((iso, Direction::Out, options.iso_qlen * packets, bpi));
        }
        for (kind, dir, depth, len) in streams {
            let Some((pipe, mps)) = pipe(speed, kind, dir) else {
                continue;
            };
            if dir == Direction::In {
                let data = pattern_bytes(options.pattern, len, mps);
                for _ in 0..depth {
                    tokio::spawn(source_loop(
                        iface.clone(),
                        pipe,
                        data.clone(),
                        generation.clone(),
                        gen_now,
                    ));
                }
            } else {
                let sink = Sink {
                    // usbtest sends zeros on isochronous OUT whatever its pattern (its
                    // iso_alloc_urb never fills the buffer): those packets are not checked.
                    pattern: (kind != iso).then_some(options.pattern),
                    len,
                    mps,
                };
                for _ in 0..depth {
                    tokio::spawn(sink_loop(
                        iface.clone(),
                        pipe,
                        sink,
                        generation.clone(),
                        gen_now,
                    ));
                }
            }
        }
    }
}

/// What a sink reads and checks.
#[derive(Copy, Clone, Debug)]
struct Sink {
    /// `None`: do not check.
    pattern: Option<Pattern>,
    len: usize,
    mps: usize,
}

/// Keep one IN transfer queued until the generation changes.
async fn source_loop<S: ServiceApi>(
    iface: Arc<S>,
    pipe: PipeId,
    data: Bytes,
    generation: Arc<AtomicU64>,
    mine: u64,
) {
    while generation.load(Ordering::SeqCst) == mine {
        match iface.transfer_in(pipe, data.clone()).await {
            Ok(_) => {}
            Err(Error::Transfer(CompletionStatus::Cancelled | CompletionStatus::Shutdown))
            | Err(Error::Refused(_))
            | Err(Error::DeviceGone) => return,
            Err(e) => tracing::debug!(error = %e, "gadget zero source transfer failed"),
        }
    }
}

/// Keep one OUT transfer queued and check what arrives.
async fn sink_loop<S: ServiceApi>(
    iface: Arc<S>,
    pipe: PipeId,
    sink: Sink,
    generation: Arc<AtomicU64>,
    mine: u64,
) {
    while generation.load(Ordering::SeqCst) == mine {
        match iface.transfer_out(pipe, sink.len).await {
            Ok(c) => {
                if let Some(at) = sink
                    .pattern
                    .and_then(|p| first_mismatch(p, &c.data, sink.mps))
                {
                    tracing::warn!(
                        offset = at,
                        "gadget zero: OUT data breaks the pattern; halting the endpoint"
                    );
                    let _ = iface.set_pipe_state(pipe, true).await;
                }
            }
            Err(Error::Transfer(CompletionStatus::Cancelled | CompletionStatus::Shutdown))
            | Err(Error::Refused(_))
            | Err(Error::DeviceGone) => return,
            Err(e) => tracing::debug!(error = %e, "gadget zero sink transfer failed"),
        }
    }
}

async fn answer_setup<S: ServiceApi>(iface: &S, setup: SetupPacket, control: &Mutex<Vec<u8>>) {
    let len = usize::from(setup.w_length);
    let vendor = setup.request_type() == RequestType::Vendor;
    let plain = setup.w_value == 0 && setup.w_index == 0 && len <= CONTROL_BUFFER;
    let result = match (vendor && plain, setup.b_request, setup.direction()) {
        (true, REQUEST_WRITE, Direction::Out) => {
            if len > 0 {
                match iface.transfer_out(PipeId::CONTROL, len).await {
                    Ok(c) => {
                        let mut buf = control.lock().unwrap_or_else(|p| p.into_inner());
                        buf.resize(CONTROL_BUFFER, 0);
                        let n = c.data.len().min(buf.len());
                        buf[..n].copy_from_slice(&c.data[..n]);
                    }
                    Err(e) => tracing::debug!(error = %e, "control write data stage failed"),
                }
            }
            iface.control_status_handshake_in().await
        }
        (true, REQUEST_READ, Direction::In) => {
            let data = {
                let buf = control.lock().unwrap_or_else(|p| p.into_inner());
                // `len` <= CONTROL_BUFFER (`plain`); past what was written it reads zeros.
                let mut data = vec![0u8; len];
                let n = buf.len().min(len);
                data[..n].copy_from_slice(&buf[..n]);
                Bytes::from(data)
            };
            match iface.transfer_in(PipeId::CONTROL, data).await {
                Ok(_) => iface.control_status_handshake_out().await,
                Err(e) => Err(e),
            }
        }
        _ => iface.set_pipe_state(PipeId::CONTROL, true).await,
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, %setup, "gadget zero could not answer a setup packet");
    }
}

/// `buflen` bytes of `pattern` for packets of `mps` bytes.
pub fn pattern_bytes(pattern: Pattern, buflen: usize, mps: usize) -> Bytes {
    match pattern {
        Pattern::Zeros => Bytes::from(vec![0u8; buflen]),
        Pattern::Mod63 => (0..buflen)
            .map(|i| pattern_byte(i, mps))
            .collect::<Vec<u8>>()
            .into(),
    }
}

fn pattern_byte(i: usize, mps: usize) -> u8 {
    // `% 63` keeps the value below 63, so it fits a byte.
    u8::try_from((i % mps.max(1)) % 63).unwrap_or(0)
}

/// The offset of the first byte that breaks the pattern.
///
/// Both patterns are compared a block at a time against a copy of what the block should
/// hold (`memcmp`, which the C library vectorizes), and only the first block that differs is
/// searched byte by byte: a per-byte loop with a `%` per byte checked mod63 data at about
/// 2 GB/s, the block compare at memory speed (70 GB/s on the project machine), so the
/// sink is not what limits bulk OUT.
pub fn first_mismatch(pattern: Pattern, data: &[u8], mps: usize) -> Option<usize> {
    match pattern {
        Pattern::Zeros => {
            const ZEROS: [u8; 4096] = [0; 4096];
            let block = data
                .chunks(ZEROS.len())
                .position(|c| c != &ZEROS[..c.len()])?;
            let start = block * ZEROS.len();
            let at = data.get(start..)?.iter().position(|b| *b != 0)?;
            Some(start + at)
        }
        Pattern::Mod63 => {
            // The pattern restarts at every packet: one packet's worth is the whole of it.
            const MAX_PACKET: usize = 1024;
            let mps = mps.max(1);
            let mut packet = [0u8; MAX_PACKET];
            let start = match packet.get_mut(..mps) {
                Some(packet) => {
                    for (i, b) in packet.iter_mut().enumerate() {
                        *b = pattern_byte(i, mps);
                    }
                    let packet = &*packet;
                    mps * data.chunks(mps).position(|c| c != &packet[..c.len()])?
                }
                // A packet larger than any bulk one (never in Gadget Zero): byte by byte.
                None => 0,
            };
            let at = data
                .get(start..)?
                .iter()
                .enumerate()
                .position(|(i, b)| *b != pattern_byte(start + i, mps))?;
            Some(start + at)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let p = pattern_bytes(Pattern::Mod63, 1100, 512);
        assert_eq!(p[62], 62);
        assert_eq!(p[63], 0);
        assert_eq!(p[511], (511 % 63) as u8);
        assert_eq!(p[512], 0);
        assert_eq!(first_mismatch(Pattern::Mod63, &p, 512), None);
        assert_eq!(first_mismatch(Pattern::Mod63, &p, 64), Some(64));
        assert_eq!(first_mismatch(Pattern::Zeros, &[0, 0, 1], 64), Some(2));
    }

    /// The block compare finds what the byte-by-byte definition finds, in any packet, for
    /// packet sizes below and above the block of the fast path.
    #[test]
    fn mod63_check_finds_the_first_broken_byte_in_any_packet() {
        for mps in [8, 64, 512, 1024, 2048] {
            let good = pattern_bytes(Pattern::Mod63, 3 * mps + 17, mps);
            assert_eq!(
                first_mismatch(Pattern::Mod63, &good, mps),
                None,
                "mps {mps}"
            );
            for at in [0, 1, mps - 1, mps, 2 * mps + 5, good.len() - 1] {
                let mut bad = good.to_vec();
                bad[at] ^= 0x40;
                assert_eq!(
                    first_mismatch(Pattern::Mod63, &bad, mps),
                    Some(at),
                    "mps {mps}"
                );
            }
        }
        assert_eq!(first_mismatch(Pattern::Mod63, &[], 512), None);
        assert_eq!(first_mismatch(Pattern::Mod63, &[0, 1, 3], 0), Some(1));
    }

    #[test]
    fn zero_check_finds_the_first_non_zero_byte_across_blocks() {
        let mut zeros = vec![0u8; 1000];
        assert_eq!(first_mismatch(Pattern::Zeros, &zeros, 64), None);
        assert_eq!(first_mismatch(Pattern::Zeros, &[], 64), None);
        zeros[999] = 1;
        assert_eq!(first_mismatch(Pattern::Zeros, &zeros, 64), Some(999));
        zeros[777] = 5;
        assert_eq!(first_mismatch(Pattern::Zeros, &zeros, 64), Some(777));
        zeros[0] = 2;
        assert_eq!(first_mismatch(Pattern::Zeros, &zeros, 64), Some(0));
        let mut long = vec![0u8; 3 * 4096 + 9];
        assert_eq!(first_mismatch(Pattern::Zeros, &long, 64), None);
        long[2 * 4096 + 3] = 1;
        assert_eq!(
            first_mismatch(Pattern::Zeros, &long, 64),
            Some(2 * 4096 + 3)
        );
    }

    #[tokio::test]
    async fn vendor_read_back_returns_zeros_then_what_was_written() {
        let controller = crate::Controller::new(&config()).expect("controller");
        let iface = controller.open(INTERFACE_NAME).expect("interface");
        let service = tokio::spawn(run(iface, Options::default()));
        let mut ready = controller.ready_watch();
        ready.wait_for(|r| *r).await.expect("active");
        let host = crate::host::Host::connect(&controller, BusSpeed::High).expect("host");
        let vendor = |dir, request, len| {
            SetupPacket::new(
                dir,
                RequestType::Vendor,
                usbfn_wire::Recipient::Device,
                request,
                0,
                0,
                len,
            )
        };
        let read = vendor(Direction::In, REQUEST_READ, 8);
        let before = host.control(read, Bytes::new()).await.expect("read");
        assert_eq!(&before[..], [0u8; 8], "nothing written yet: zeros");
        let write = vendor(Direction::Out, REQUEST_WRITE, 5);
        host.control(write, Bytes::from_static(b"hello"))
            .await
            .expect("write");
        let after = host.control(read, Bytes::new()).await.expect("read");
        assert_eq!(&after[..], b"hello\0\0\0");
        let full_len = u16::try_from(CONTROL_BUFFER).expect("4096 fits");
        let full = vendor(Direction::In, REQUEST_READ, full_len);
        let all = host.control(full, Bytes::new()).await.expect("read");
        assert_eq!(all.len(), CONTROL_BUFFER);
        service.abort();
    }

    #[test]
    fn config_is_valid() {
        let model = usbfn_core::DeviceModel::build(&config()).expect("valid");
        assert_eq!(model.interfaces()[0].alternates[0].endpoints.len(), 4);
        assert_eq!(model.interfaces()[0].alternates[1].endpoints.len(), 6);
    }

    /// The endpoint descriptor (bytes) for `address` in alternate setting `alt` at `speed`.
    fn endpoint(options: &Options, speed: BusSpeed, alt: u8, address: u8) -> Vec<u8> {
        let model = usbfn_core::DeviceModel::build(&config_with(options)).expect("valid");
        let set = model.descriptor_set(speed).expect("fits");
        let config = &set.configurations[0];
        let mut current_alt = None;
        for d in usbfn_wire::descriptors(config) {
            let d = d.expect("well formed").bytes;
            match d.get(1) {
                Some(4) => current_alt = d.get(3).copied(),
                Some(5) if current_alt == Some(alt) && d.get(2) == Some(&address) => {
                    return d.to_vec();
                }
                _ => {}
            }
        }
        panic!("no endpoint {address:#04x} in alternate setting {alt}");
    }

    #[test]
    fn iso_endpoints_follow_f_sourcesink_and_its_defaults() {
        let d = Options::default();
        assert_eq!(
            (
                d.isoc_interval,
                d.isoc_maxpacket,
                d.isoc_mult,
                d.isoc_maxburst,
                d.iso_qlen
            ),
            (4, 1024, 0, 0, 8),
            "the kernel's GZERO_ISOC_INTERVAL, GZERO_ISOC_MAXPACKET, 0, 0, GZERO_SS_ISO_QLEN"
        );
        // bmAttributes 1 (isochronous, no sync), wMaxPacketSize, bInterval.
        assert_eq!(
            endpoint(&d, BusSpeed::Full, 1, ISO_IN),
            [7, 5, 0x82, 1, 0xff, 0x03, 4]
        );
        assert_eq!(
            endpoint(&d, BusSpeed::High, 1, ISO_OUT),
            [7, 5, 0x02, 1, 0x00, 0x04, 4]
        );
        let mut o = Options::default();
        o.apply_list("isoc_interval=1,isoc_mult=2,isoc_maxpacket=512")
            .expect("valid options");
        assert_eq!(
            endpoint(&o, BusSpeed::High, 1, ISO_IN),
            [7, 5, 0x82, 1, 0x00, 0x12, 1],
            "512 | 2 << 11"
        );
        assert_eq!(o.iso_bytes_per_interval(BusSpeed::High), 1536);
        o.set("isoc_maxburst", "3").expect("valid");
        assert_eq!(o.iso_bytes_per_interval(BusSpeed::Super), 512 * 3 * 4);
        usbfn_core::DeviceModel::build(&config_with(&o)).expect("valid with burst");
    }

    #[test]
    fn interrupt_endpoints_in_both_alternate_settings() {
        let d = Options::default();
        for alt in [0, 1] {
            assert_eq!(
                endpoint(&d, BusSpeed::Full, alt, INT_IN),
                [7, 5, 0x83, 3, 64, 0, 1]
            );
            assert_eq!(
                endpoint(&d, BusSpeed::High, alt, INT_OUT),
                [7, 5, 0x03, 3, 0x00, 0x04, 1]
            );
        }
    }

    #[test]
    fn options_by_name_are_checked() {
        let mut o = Options::default();
        assert!(matches!(
            o.set("isoc_mult", "3"),
            Err(OptionError::Value { .. })
        ));
        assert!(matches!(
            o.set("isoc_interval", "0"),
            Err(OptionError::Value { .. })
        ));
        assert!(matches!(
            o.set("nope", "1"),
            Err(OptionError::Unknown { .. })
        ));
        assert!(
            matches!(o.apply_list("isoc_mult"), Err(OptionError::Value { .. })),
            "a bare key is key=true, not a number"
        );
        assert_eq!(o, Options::default(), "failed sets change nothing");
        o.apply_list("pattern=1, qlen=4,").expect("valid");
        assert_eq!((o.pattern, o.qlen), (Pattern::Mod63, 4));
        assert_eq!(o.clone().for_controller().qlen, 4, "a given qlen stays");
        let d = Options::default();
        assert_eq!((d.qlen, d.for_controller().qlen), (32, CONTROLLER_QLEN));
        let mut e = Options::default();
        e.apply_list("qlen=32").expect("valid");
        assert_eq!(e.for_controller().qlen, 32, "an explicit default stays too");
    }
}
