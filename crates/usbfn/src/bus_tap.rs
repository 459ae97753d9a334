//! Taps on the bus seam: something that sees every URB a bus submits on a [`BusPort`] and
//! every completion the device gives back, whatever the bus is (usbredir, the in-process
//! host). [`PcapBusTap`] writes them as a usbmon pcap (`--pcap`), as the USB/IP server's own
//! tap does for USB/IP.
//!
//! A tap is set on the [`Controller`] with [`Controller::set_bus_tap`]; it then sees the
//! traffic of every bus connected to that device, called with the device's lock held, in the
//! order the core saw it. Keep it short: it runs on the data path.
//!
//! [`BusPort`]: crate::BusPort
//! [`Controller`]: crate::Controller
//! [`Controller::set_bus_tap`]: crate::Controller::set_bus_tap

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use usbfn_core::{CompletionStatus, Urb, UrbCompletion, UrbId};
use usbfn_pcap::{IsoDesc, PcapWriter, UsbRecord, XferType, unix_time};
use usbfn_wire::{Direction, TransferType};

use crate::Controller;

/// Sees every URB on a device's bus.
pub trait BusTap: Send + Sync + std::fmt::Debug {
    /// The bus submitted `urb`.
    fn submit(&self, urb: &Urb);
    /// The device (or the bus, for a URB it answers itself) completed a URB.
    fn complete(&self, completion: &UrbCompletion);
    /// The bus unlinked URB `id` before it completed: it never completes.
    fn unlinked(&self, id: UrbId);
}

/// Most URBs a [`PcapBusTap`] remembers between their submit and completion; beyond it the
/// capture of further URBs' completions is left out (and said once in the log). A bus keeps
/// far fewer outstanding (usbredir's `max_outstanding` is 4096).
pub const MAX_TRACKED_URBS: usize = 65_536;

/// Largest iso IN record spread back to its packets' offsets; a larger span is captured
/// packed, as it came.
const MAX_SPREAD: u64 = 16 << 20;

/// The capture's writer; `None` once a write failed.
type SharedWriter = Arc<Mutex<Option<PcapWriter<Box<dyn Write + Send>>>>>;

/// One capture file shared by the taps of several devices.
#[derive(Clone)]
pub struct PcapSink {
    writer: SharedWriter,
}

impl std::fmt::Debug for PcapSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcapSink").finish_non_exhaustive()
    }
}

impl PcapSink {
    /// A capture on `writer`; the pcap header is written and flushed at once, so a path that
    /// cannot be written fails here and a capture no host used is a valid, empty pcap.
    pub fn new(writer: impl Write + Send + 'static) -> std::io::Result<PcapSink> {
        let mut writer = PcapWriter::new(Box::new(writer) as Box<dyn Write + Send>)?;
        writer.flush()?;
        Ok(PcapSink {
            writer: Arc::new(Mutex::new(Some(writer))),
        })
    }

    /// Write errors are logged once and stop the capture; they never disturb the devices.
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

/// Writes one device's URBs to a [`PcapSink`] as `LINKTYPE_USB_LINUX_MMAPPED` records, with
/// the device shown at `busnum`/`devnum`.
#[derive(Debug)]
pub struct PcapBusTap {
    sink: PcapSink,
    busnum: u16,
    devnum: u8,
    /// Transfer type by endpoint address, from the device's descriptors.
    types: HashMap<u8, XferType>,
    /// Submitted, not yet completed: URB id → (endpoint address, transfer type).
    pending: Mutex<HashMap<u64, (u8, XferType)>>,
    overflow_logged: std::sync::atomic::AtomicBool,
}

impl PcapBusTap {
    /// A tap for `controller`'s device writing to `sink`.
    pub fn new(controller: &Controller, sink: PcapSink, busnum: u16, devnum: u8) -> PcapBusTap {
        let mut types = HashMap::new();
        controller.with_model(|m| {
            for iface in m.interfaces() {
                for alt in &iface.alternates {
                    for ep in &alt.endpoints {
                        types.entry(ep.address.0).or_insert(match ep.transfer_type {
                            TransferType::Bulk => XferType::Bulk,
                            TransferType::Interrupt => XferType::Interrupt,
                            TransferType::Isochronous => XferType::Isochronous,
                            TransferType::Control => XferType::Control,
                        });
                    }
                }
            }
        });
        PcapBusTap {
            sink,
            busnum,
            devnum,
            types,
            pending: Mutex::new(HashMap::new()),
            overflow_logged: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn urb(&self, id: u64, endpoint: u8, transfer_type: XferType) -> usbfn_pcap::Urb {
        usbfn_pcap::Urb {
            id,
            transfer_type,
            endpoint,
            devnum: self.devnum,
            busnum: self.busnum,
        }
    }

    fn take(&self, id: UrbId) -> Option<(u8, XferType)> {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id.0)
    }
}

impl BusTap for PcapBusTap {
    fn submit(&self, urb: &Urb) {
        let endpoint = (urb.endpoint & 0x0f)
            | if urb.direction == Direction::In {
                0x80
            } else {
                0
            };
        let transfer_type = if urb.endpoint == 0 {
            XferType::Control
        } else {
            self.types.get(&endpoint).copied().unwrap_or(XferType::Bulk)
        };
        {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            if pending.len() >= MAX_TRACKED_URBS && !pending.contains_key(&urb.id.0) {
                if !self
                    .overflow_logged
                    .swap(true, std::sync::atomic::Ordering::Relaxed)
                {
                    tracing::warn!(
                        limit = MAX_TRACKED_URBS,
                        "pcap: too many URBs outstanding to track (MAX_TRACKED_URBS); their completions are left out of the capture"
                    );
                }
            } else {
                pending.insert(urb.id.0, (endpoint, transfer_type));
            }
        }
        let out: &[u8] = if urb.direction == Direction::Out {
            &urb.data
        } else {
            &[]
        };
        let length = if urb.direction == Direction::Out {
            urb.data.len()
        } else {
            urb.buffer_len
        };
        let record = UsbRecord::submit(
            &self.urb(urb.id.0, endpoint, transfer_type),
            unix_time(std::time::SystemTime::now()),
            // Fits: every bus gives URB lengths as u32 (USB/IP, usbredir's 32-bit lengths).
            u32::try_from(length).unwrap_or(u32::MAX),
            out,
        );
        let iso: Vec<IsoDesc> = urb
            .iso
            .iter()
            .flat_map(|i| i.packets.iter())
            .map(|p| IsoDesc {
                // usbmon shows an iso packet not done yet as -EXDEV.
                status: -usbfn_core::status::errno::EXDEV,
                offset: p.offset,
                length: p.length,
            })
            .collect();
        let record = match (&urb.setup, &urb.iso) {
            (Some(setup), _) => record.with_setup(setup.to_bytes()),
            (None, Some(i)) => record.with_iso(
                &iso,
                i.start_frame
                    .and_then(|f| i32::try_from(f).ok())
                    .unwrap_or(0),
                0,
            ),
            (None, None) => record,
        };
        self.sink.write(&record);
    }

    fn complete(&self, c: &UrbCompletion) {
        let Some((endpoint, transfer_type)) = self.take(c.id) else {
            return;
        };
        let urb = self.urb(c.id.0, endpoint, transfer_type);
        let status = c.status.to_errno();
        // Fits: a completion moves at most its URB's buffer, a u32 length.
        let actual = u32::try_from(c.actual_length).unwrap_or(u32::MAX);
        let time = unix_time(std::time::SystemTime::now());
        match &c.iso {
            Some(iso) => {
                let descs: Vec<IsoDesc> = iso
                    .packets
                    .iter()
                    .map(|p| IsoDesc {
                        status: p.status.to_errno(),
                        offset: p.packet.offset,
                        length: p.actual_length,
                    })
                    .collect();
                let spread;
                let data: &[u8] = if endpoint & 0x80 != 0 {
                    spread = usbfn_pcap::spread_iso_in(&descs, &c.data, MAX_SPREAD);
                    &spread
                } else {
                    &[]
                };
                // Fits: at most MAX_ISO_DESCRIPTORS packets per URB.
                let errors = i32::try_from(iso.error_count()).unwrap_or(i32::MAX);
                // The frame number wraps well below i32::MAX (FRAME_NUMBER_MODULUS).
                let start = i32::try_from(iso.start_frame).unwrap_or(0);
                self.sink.write(
                    &UsbRecord::complete(&urb, time, status, actual, data)
                        .with_iso(&descs, start, errors),
                );
            }
            None => {
                let data: &[u8] = if endpoint & 0x80 != 0 { &c.data } else { &[] };
                self.sink
                    .write(&UsbRecord::complete(&urb, time, status, actual, data));
            }
        }
    }

    fn unlinked(&self, id: UrbId) {
        let Some((endpoint, transfer_type)) = self.take(id) else {
            return;
        };
        let urb = self.urb(id.0, endpoint, transfer_type);
        self.sink.write(&UsbRecord::complete(
            &urb,
            unix_time(std::time::SystemTime::now()),
            CompletionStatus::Cancelled.to_errno(),
            0,
            &[],
        ));
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use usbfn_core::BusSpeed;
    use usbfn_pcap::{GLOBAL_HEADER_LEN, RECORD_HEADER_LEN, field};
    use usbfn_wire::DescriptorType;

    use super::*;
    use crate::functions::gadget_zero;
    use crate::host::Host;

    /// A `Write` into a buffer the test keeps.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// (type, xfer_type, epnum, devnum, status, length) of each record.
    fn records(file: &[u8]) -> Vec<(u8, u8, u8, u8, i32, u32)> {
        let mut out = Vec::new();
        let mut at = GLOBAL_HEADER_LEN;
        while at < file.len() {
            let incl = u32::from_le_bytes(file[at + 8..at + 12].try_into().unwrap()) as usize;
            let h = &file[at + RECORD_HEADER_LEN..at + RECORD_HEADER_LEN + incl];
            out.push((
                h[field::TYPE],
                h[field::XFER_TYPE],
                h[field::EPNUM],
                h[field::DEVNUM],
                i32::from_le_bytes(h[field::STATUS].try_into().unwrap()),
                u32::from_le_bytes(h[field::LENGTH].try_into().unwrap()),
            ));
            at += RECORD_HEADER_LEN + incl;
        }
        out
    }

    #[tokio::test]
    async fn every_urb_on_the_bus_is_captured_with_its_completion() {
        let gz = Controller::new(&gadget_zero::config()).unwrap();
        let iface = gz.open(gadget_zero::INTERFACE_NAME).unwrap();
        tokio::spawn(gadget_zero::run(iface, gadget_zero::Options::default()));
        let buf = Shared::default();
        let sink = PcapSink::new(buf.clone()).unwrap();
        gz.set_bus_tap(Some(Arc::new(PcapBusTap::new(&gz, sink, 1, 7))));
        while !gz.is_ready() {
            tokio::task::yield_now().await;
        }
        let host = Host::connect(&gz, BusSpeed::High).unwrap();
        let d = host
            .get_descriptor(DescriptorType::DEVICE, 0, 18)
            .await
            .unwrap();
        assert_eq!(d.len(), 18);
        host.set_configuration(1).await.unwrap();
        let out = host
            .bulk_out(gadget_zero::BULK_OUT & 0x0f, Bytes::from(vec![0u8; 512]))
            .await
            .unwrap();
        assert_eq!(out.actual_length, 512);
        let pending = host.bulk_in(gadget_zero::BULK_IN & 0x0f, 512);
        let got = pending.await.unwrap();
        assert_eq!(got.actual_length, 512);
        gz.set_bus_tap(None);
        let file = buf.0.lock().unwrap().clone();
        let r = records(&file);
        let s = i32::from(b'S');
        let c = i32::from(b'C');
        let kinds: Vec<(i32, u8, u8)> = r.iter().map(|x| (i32::from(x.0), x.1, x.2)).collect();
        assert_eq!(
            kinds,
            vec![
                (s, 2, 0x80),
                (c, 2, 0x80),
                (s, 2, 0x00),
                (c, 2, 0x00),
                (s, 3, 0x01),
                (c, 3, 0x01),
                (s, 3, 0x81),
                (c, 3, 0x81),
            ],
            "{r:?}"
        );
        assert!(r.iter().all(|x| x.3 == 7), "devnum 7 on every record");
        // Submit lengths: the buffer (IN) or the data (OUT); completions: what moved.
        assert_eq!((r[0].4, r[0].5), (-115, 18));
        assert_eq!((r[1].4, r[1].5), (0, 18));
        assert_eq!((r[4].5, r[5].5, r[6].5, r[7].5), (512, 512, 512, 512));
    }

    #[tokio::test]
    async fn an_unlinked_urb_is_captured_as_cancelled_once() {
        let gz = Controller::new(&gadget_zero::config()).unwrap();
        // No service: nothing answers bulk IN, so the URB stays pending until unlinked.
        let buf = Shared::default();
        let sink = PcapSink::new(buf.clone()).unwrap();
        gz.set_bus_tap(Some(Arc::new(PcapBusTap::new(&gz, sink, 1, 2))));
        let host = Host::connect(&gz, BusSpeed::High).unwrap();
        host.set_configuration(1).await.unwrap();
        let pending = host.bulk_in(gadget_zero::BULK_IN & 0x0f, 64);
        assert!(host.unlink(pending.id()));
        drop(host);
        let r = records(&buf.0.lock().unwrap());
        let last: Vec<_> = r.iter().filter(|x| x.2 == 0x81).collect();
        assert_eq!(last.len(), 2, "{r:?}");
        assert_eq!((last[1].0, last[1].4), (b'C', -104));
    }
}
