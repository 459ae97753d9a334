//! `--pcap`: every URB the server accepts and answers, written as a usbmon capture.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use usbfn_pcap::{IsoDesc, PcapWriter, UsbRecord, XferType, unix_time};
use usbfn_wire::TransferType;

use super::{Export, SubmittedUrb, UrbTap};
use crate::proto::{CmdSubmit, Direction, IsoPacketDescriptor, RetSubmit, UsbDevice, errno};

/// Writes URBs as `LINKTYPE_USB_LINUX_MMAPPED` records. Write errors are logged once and
/// stop the capture; they never disturb the devices.
pub struct PcapTap<W: Write + Send> {
    writer: Mutex<Option<PcapWriter<W>>>,
    /// Transfer type by (devid, endpoint address), from the exported devices' descriptors.
    types: HashMap<(u32, u8), XferType>,
}

impl<W: Write + Send> std::fmt::Debug for PcapTap<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcapTap")
            .field("endpoints", &self.types.len())
            .finish()
    }
}

impl<W: Write + Send> PcapTap<W> {
    /// A tap for `exports` writing to `writer`; the pcap header is written and flushed.
    pub fn new(writer: W, exports: &[Arc<Export>]) -> std::io::Result<Self> {
        let mut types = HashMap::new();
        for export in exports {
            let devid = (export.busnum << 16) | export.devnum;
            export.controller.with_model(|m| {
                for iface in m.interfaces() {
                    for alt in &iface.alternates {
                        for ep in &alt.endpoints {
                            types
                                .entry((devid, ep.address.0))
                                .or_insert(match ep.transfer_type {
                                    TransferType::Bulk => XferType::Bulk,
                                    TransferType::Interrupt => XferType::Interrupt,
                                    TransferType::Isochronous => XferType::Isochronous,
                                    TransferType::Control => XferType::Control,
                                });
                        }
                    }
                }
            });
        }
        // The header goes out at once: a capture of a server no host used yet is a valid,
        // empty pcap, and a `--pcap` path that cannot be written fails at start.
        let mut writer = PcapWriter::new(writer)?;
        writer.flush()?;
        Ok(PcapTap {
            writer: Mutex::new(Some(writer)),
            types,
        })
    }

    fn urb(
        &self,
        device: &UsbDevice,
        seqnum: u32,
        ep: u8,
        direction: Direction,
    ) -> usbfn_pcap::Urb {
        let address = ep | if direction == Direction::In { 0x80 } else { 0 };
        let transfer_type = if ep == 0 {
            XferType::Control
        } else {
            self.types
                .get(&(device.devid(), address))
                .copied()
                .unwrap_or(XferType::Bulk)
        };
        usbfn_pcap::Urb {
            id: (u64::from(device.devid()) << 32) | u64::from(seqnum),
            transfer_type,
            endpoint: address,
            // saturates on purpose: usbmon's devnum is one byte; from the 254th export on all show
            // 255 in the capture, their URBs still told apart by `id` (which holds the devid).
            devnum: u8::try_from(device.devnum).unwrap_or(u8::MAX),
            // fits: every export is on bus 1 (ServerBuilder::export).
            busnum: u16::try_from(device.busnum).unwrap_or(u16::MAX),
        }
    }

    fn write(&self, record: &UsbRecord<'_>) {
        let mut guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = guard.as_mut()
            && let Err(e) = w.record(record).and_then(|()| w.flush())
        {
            tracing::error!(error = %e, "writing the pcap capture failed; capture stopped");
            *guard = None;
        }
    }
}

impl<W: Write + Send> UrbTap for PcapTap<W> {
    fn submit(&self, device: &UsbDevice, cmd: &CmdSubmit) {
        let urb = self.urb(device, cmd.seqnum, cmd.ep, cmd.direction);
        let mut record = UsbRecord::submit(
            &urb,
            unix_time(std::time::SystemTime::now()),
            cmd.transfer_buffer_length,
            &cmd.data,
        )
        .with_transfer_flags(cmd.transfer_flags.0)
        .with_interval(cmd.interval);
        if cmd.ep == 0 {
            record = record.with_setup(cmd.setup);
        }
        let iso = submit_descriptors(&cmd.iso);
        if cmd.is_iso() {
            record = record.with_iso(&iso, cmd.start_frame, 0);
        }
        self.write(&record);
    }

    fn complete(&self, device: &UsbDevice, cmd: &SubmittedUrb, ret: &RetSubmit) {
        let urb = self.urb(device, cmd.seqnum, cmd.ep, cmd.direction);
        let iso = complete_descriptors(&ret.iso);
        // usbmon shows iso IN data where the packets sit in the host's buffer (each at its
        // descriptor's offset); USB/IP packs it. Spread it back so offsets point into it.
        let spread;
        let data = if ret.is_iso() && cmd.direction == Direction::In {
            // No cap: the offsets were checked against the URB's buffer when it was submitted.
            spread = usbfn_pcap::spread_iso_in(&iso, &ret.data, u64::MAX);
            &spread[..]
        } else {
            &ret.data[..]
        };
        let mut record = UsbRecord::complete(
            &urb,
            unix_time(std::time::SystemTime::now()),
            ret.status,
            ret.actual_length,
            data,
        );
        if ret.is_iso() {
            record = record.with_iso(&iso, ret.start_frame, ret.error_count);
        }
        self.write(&record);
    }
}

/// usbmon's descriptors of a submitted URB: requested lengths, status `-EXDEV` (what
/// `usb_submit_urb` sets until the packet is done).
fn submit_descriptors(iso: &[IsoPacketDescriptor]) -> Vec<IsoDesc> {
    iso.iter()
        .map(|d| IsoDesc {
            status: -errno::EXDEV,
            offset: d.offset,
            length: d.length,
        })
        .collect()
}

/// usbmon's descriptors of a completed URB: actual lengths and per-packet status.
fn complete_descriptors(iso: &[IsoPacketDescriptor]) -> Vec<IsoDesc> {
    iso.iter()
        .map(|d| IsoDesc {
            status: d.status,
            offset: d.offset,
            length: d.actual_length,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(offset: u32, length: u32, actual_length: u32, status: i32) -> IsoPacketDescriptor {
        IsoPacketDescriptor {
            offset,
            length,
            actual_length,
            status,
        }
    }

    #[test]
    fn packed_iso_in_data_goes_back_to_its_offsets() {
        let iso = [desc(0, 4, 2, 0), desc(4, 4, 0, -18), desc(8, 4, 3, 0)];
        let spread = |iso: &[IsoPacketDescriptor], packed: &[u8]| {
            usbfn_pcap::spread_iso_in(&complete_descriptors(iso), packed, u64::MAX)
        };
        let out = spread(&iso, &[1, 2, 7, 8, 9]);
        assert_eq!(out, vec![1, 2, 0, 0, 0, 0, 0, 0, 7, 8, 9]);
        assert!(spread(&[desc(0, 4, 0, -18)], &[]).is_empty());
        let c = complete_descriptors(&iso);
        assert_eq!((c[1].status, c[2].length), (-18, 3));
        assert_eq!(submit_descriptors(&iso)[0].status, -errno::EXDEV);
    }
}
