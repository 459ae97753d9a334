//! USB traffic as pcap files that Wireshark, tshark and tcpdump open: link type
//! `LINKTYPE_USB_LINUX_MMAPPED` (220), the Linux usbmon binary format.
//!
//! A bus (USB/IP export, usbredir, the in-process host) logs each URB the way the Linux
//! `usbmon` driver does: a **submit** record when the host hands the URB over (with the setup
//! packet of a control transfer and the OUT data, status `-EINPROGRESS`), and a **completion**
//! record when it finishes (with the IN data and the final status). Wireshark pairs the two
//! by URB id and decodes standard requests and descriptors, and class protocols above them.
//!
//! # What is here
//!
//! - [`UsbRecord`]: one usbmon event; [`Urb`] builds the submit and completion of one URB
//!   ([`UsbRecord::submit`], [`UsbRecord::complete`], [`UsbRecord::error`]).
//! - The sans-IO core: [`global_header`], [`encode_record`], [`record_len`] and the header's
//!   byte ranges in [`field`]. No clock, no I/O: timestamps come in with the record.
//! - [`PcapWriter`]: the core around any `std::io::Write`.
//!
//! # The file
//!
//! A classic pcap file (magic `0xa1b2c3d4`, microsecond timestamps, version 2.4) in
//! little-endian byte order. Each packet is the 64-byte usbmon header (`struct usbmon_packet`
//! of `Documentation/usb/usbmon.rst`, libpcap's `pcap_usb_header_mmapped`), then the
//! isochronous descriptors (16 bytes each), then the captured data. The header's multi-byte
//! fields are in the byte order of the file too: usbmon writes them in host order, and
//! libpcap and Wireshark byte-swap them when the file's magic says its writer's order differs
//! from theirs.
//!
//! # Snaplen
//!
//! The snaplen bounds each packet, header included ([`DEFAULT_SNAPLEN`], 256 KiB, is what
//! tcpdump accepts for this link type). As in usbmon, data beyond it is left out: `len_cap`
//! counts the bytes kept while `length` keeps the URB's length, and the pcap record's
//! `orig_len` the untruncated size. Sizes that do not fit the format's 32-bit fields saturate;
//! nothing here panics on any record.
//!
//! # Example
//!
//! A GET_DESCRIPTOR(Device) on endpoint 0, then a bulk IN transfer that stalls:
//!
//! ```
//! use std::time::Duration;
//! use usbfn_pcap::{PcapWriter, Urb, UsbRecord, XferType};
//!
//! let mut pcap = PcapWriter::new(Vec::new())?; // or a BufWriter<File>
//!
//! let ep0 = Urb { id: 1, transfer_type: XferType::Control, endpoint: 0x80, devnum: 2, busnum: 1 };
//! let get_descriptor = [0x80, 0x06, 0x00, 0x01, 0x00, 0x00, 0x12, 0x00];
//! let device_descriptor = [
//!     0x12, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x40, 0x09, 0x12, 0x01, 0x00, 0x00, 0x01,
//!     0x01, 0x02, 0x03, 0x01,
//! ];
//! let t = Duration::from_secs(1_700_000_000);
//! pcap.record(&UsbRecord::submit(&ep0, t, 18, &[]).with_setup(get_descriptor))?;
//! pcap.record(&UsbRecord::complete(&ep0, t, 0, 18, &device_descriptor))?;
//!
//! let bulk_in = Urb { id: 2, transfer_type: XferType::Bulk, endpoint: 0x81, devnum: 2, busnum: 1 };
//! pcap.record(&UsbRecord::submit(&bulk_in, t, 512, &[]))?;
//! pcap.record(&UsbRecord::complete(&bulk_in, t, -32 /* -EPIPE: stall */, 0, &[]))?;
//!
//! let file = pcap.into_inner();
//! assert_eq!(file.len(), 24 + 4 * (16 + 64) + 18);
//! # Ok::<(), std::io::Error>(())
//! ```
#![forbid(unsafe_code)]

mod encode;
mod record;
mod writer;

pub use encode::{
    DEFAULT_SNAPLEN, GLOBAL_HEADER_LEN, ISO_DESC_LEN, LINKTYPE_USB_LINUX_MMAPPED,
    MAX_ISO_DESCRIPTORS, MAX_SNAPLEN, MIN_SNAPLEN, PCAP_MAGIC_MICROSECONDS, RECORD_HEADER_LEN,
    USBMON_HEADER_LEN, encode_record, field, global_header, record_len,
};
pub use record::{
    ENDPOINT_DIR_IN, EventType, IsoDesc, STATUS_IN_PROGRESS, Urb, UsbRecord, XferType,
    spread_iso_in, unix_time,
};
pub use writer::PcapWriter;
