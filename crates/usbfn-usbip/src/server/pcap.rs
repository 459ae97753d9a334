//! `--pcap`: every URB the server accepts and answers, written as a usbmon capture.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use usbfn_pcap::{PcapWriter, UsbRecord, XferType, unix_time};
use usbfn_wire::TransferType;

use super::{Export, SubmittedUrb, UrbTap};
use crate::proto::{CmdSubmit, Direction, RetSubmit, UsbDevice};

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
                for iface in &m.interfaces {
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
            devnum: u8::try_from(device.devnum).unwrap_or(u8::MAX),
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
        self.write(&record);
    }

    fn complete(&self, device: &UsbDevice, cmd: &SubmittedUrb, ret: &RetSubmit) {
        let urb = self.urb(device, cmd.seqnum, cmd.ep, cmd.direction);
        let record = UsbRecord::complete(
            &urb,
            unix_time(std::time::SystemTime::now()),
            ret.status,
            ret.actual_length,
            &ret.data,
        );
        self.write(&record);
    }
}
