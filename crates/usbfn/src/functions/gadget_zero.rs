//! Gadget Zero: the Linux kernel's test function (f_sourcesink), which the host's `usbtest`
//! driver knows as `0525:a4a0`.
//!
//! * bulk IN sources data and bulk OUT sinks it, in pattern 0 (zeros) or 1
//!   (`(i % wMaxPacketSize) % 63`); OUT data that breaks the pattern fails the transfer and
//!   halts the OUT endpoint, as the kernel's function does;
//! * vendor requests 0x5b (write, bmRequestType 0x40) and 0x5c (read back, 0xc0) store and
//!   return up to 4096 bytes of a buffer, wLength 0 included;
//! * `qlen` transfers of `buflen` bytes stay queued on each pipe for throughput.
//!
//! Isochronous endpoints are not offered (usbfn's core does not carry isochronous URBs yet).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use usbfn_core::config::{
    DeviceConfig, DeviceSection, EndpointSection, InterfaceSection, TransferTypeName,
};
use usbfn_core::{BusEvent, BusSpeed, CompletionStatus, PipeId};
use usbfn_wire::{Direction, RequestType, SetupPacket};

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

/// Options of the function.
#[derive(Clone, Debug)]
pub struct Options {
    /// The data pattern.
    pub pattern: Pattern,
    /// Transfers kept queued per pipe.
    pub qlen: usize,
    /// Bytes per transfer.
    pub buflen: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            pattern: Pattern::Zeros,
            qlen: 32,
            buflen: 4096,
        }
    }
}

/// The device configuration: 0525:a4a0, one vendor-class interface with bulk IN and OUT.
pub fn config() -> DeviceConfig {
    let bulk = |direction| EndpointSection {
        address: None,
        direction: Some(direction),
        transfer_type: TransferTypeName::Bulk,
        max_packet: None,
        interval: None,
        max_burst: 0,
        ss_attributes: 0,
        bytes_per_interval: None,
        iso_attributes: 0,
        class_descriptors: None,
    };
    DeviceConfig {
        device: DeviceSection {
            vendor_id: 0x0525,
            product_id: 0xa4a0,
            bcd_device: 0x0100,
            class: 0xff,
            subclass: 0,
            protocol: 0,
            manufacturer: Some("usbfn".into()),
            product: Some("Gadget Zero".into()),
            serial: Some("0123456789.0123456789.0123456789".into()),
            self_powered: true,
            max_power_ma: 100,
            remote_wakeup: false,
            bcd_usb: None,
            max_packet_size0: 64,
            max_speed: BusSpeed::Super,
            lpm: false,
            ms_os_vendor_code: None,
            language_id: 0x0409,
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
                bulk(usbfn_core::config::DirectionName::In),
                bulk(usbfn_core::config::DirectionName::Out),
            ],
            descriptor: None,
            alternates: Vec::new(),
        }],
        associations: Vec::new(),
        control: Default::default(),
    }
}

/// Run Gadget Zero on an opened interface until the interface fails (device dropped, or the
/// daemon connection lost): in-process on a [`crate::Interface`], or out-of-process on any
/// other [`ServiceApi`] (the daemon's IOCTL socket).
pub async fn run<S: ServiceApi>(iface: S, options: Options) -> Result<(), Error> {
    let iface = Arc::new(iface);
    let info = iface.class_info().await?;
    let pipes = |speed: BusSpeed| {
        let list = &info.at(speed).pipes;
        let find = |dir: Direction| {
            list.iter()
                .find(|(d, _)| d.b_endpoint_address.direction() == dir)
                .map(|(d, p)| (*p, usize::from(d.max_packet_size())))
        };
        (find(Direction::In), find(Direction::Out))
    };
    let generation = Arc::new(AtomicU64::new(0));
    let control = Arc::new(Mutex::new(vec![0u8; CONTROL_BUFFER]));
    let mut speed = BusSpeed::High;
    iface.activate_bus().await?;
    loop {
        let event = iface.next_event().await?;
        tracing::debug!(?event, "gadget zero event");
        match event {
            BusEvent::Reset(s) => {
                speed = s;
                generation.fetch_add(1, Ordering::SeqCst);
            }
            BusEvent::Configured(_) | BusEvent::SetInterface { alternate: 0, .. } => {
                let gen_now = generation.fetch_add(1, Ordering::SeqCst) + 1;
                let (source, sink) = pipes(speed);
                if let Some((pipe, mps)) = source {
                    let data = pattern_bytes(options.pattern, options.buflen, mps);
                    for _ in 0..options.qlen {
                        tokio::spawn(source_loop(
                            iface.clone(),
                            pipe,
                            data.clone(),
                            generation.clone(),
                            gen_now,
                        ));
                    }
                }
                if let Some((pipe, mps)) = sink {
                    for _ in 0..options.qlen {
                        tokio::spawn(sink_loop(
                            iface.clone(),
                            pipe,
                            options.clone(),
                            mps,
                            generation.clone(),
                            gen_now,
                        ));
                    }
                }
            }
            BusEvent::UnConfigured | BusEvent::Detach | BusEvent::SetInterface { .. } => {
                generation.fetch_add(1, Ordering::SeqCst);
            }
            BusEvent::SetupPacket(setup) => answer_setup(&*iface, setup, &control).await,
            BusEvent::Attach | BusEvent::Suspend | BusEvent::Resume => {}
        }
    }
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
    options: Options,
    mps: usize,
    generation: Arc<AtomicU64>,
    mine: u64,
) {
    while generation.load(Ordering::SeqCst) == mine {
        match iface.transfer_out(pipe, options.buflen).await {
            Ok(c) => {
                if let Some(at) = first_mismatch(options.pattern, &c.data, mps) {
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
                Bytes::copy_from_slice(&buf[..len])
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
pub fn first_mismatch(pattern: Pattern, data: &[u8], mps: usize) -> Option<usize> {
    match pattern {
        Pattern::Zeros => {
            // OR whole blocks together first (the compiler vectorizes it), then look for the
            // byte inside the first block that is not all zeros: the sink keeps up with
            // gigabytes per second.
            const BLOCK: usize = 64;
            let block = data
                .chunks(BLOCK)
                .position(|c| c.iter().fold(0u8, |acc, b| acc | b) != 0)?;
            let start = block * BLOCK;
            let at = data.get(start..)?.iter().position(|b| *b != 0)?;
            Some(start + at)
        }
        Pattern::Mod63 => data
            .iter()
            .enumerate()
            .position(|(i, b)| *b != pattern_byte(i, mps)),
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
    }

    #[test]
    fn config_is_valid() {
        let model = usbfn_core::DeviceModel::build(&config()).expect("valid");
        assert_eq!(model.interfaces[0].alternates[0].endpoints.len(), 2);
    }
}
