//! The sans-IO core: the pcap global header and one record's bytes, for
//! `LINKTYPE_USB_LINUX_MMAPPED` (220).

use crate::record::{ENDPOINT_DIR_IN, EventType, XferType};
use crate::{IsoDesc, UsbRecord};

/// The pcap link type of the Linux usbmon binary ("mmapped") header: `LINKTYPE_USB_LINUX_MMAPPED`.
#[doc(alias = "DLT_USB_LINUX_MMAPPED")]
pub const LINKTYPE_USB_LINUX_MMAPPED: u32 = 220;

/// The pcap magic number for microsecond timestamps, written in the file's (little-endian)
/// byte order.
pub const PCAP_MAGIC_MICROSECONDS: u32 = 0xa1b2_c3d4;

/// The size of the pcap global (file) header.
pub const GLOBAL_HEADER_LEN: usize = 24;

/// The size of a pcap record header (`ts_sec`, `ts_usec`, `incl_len`, `orig_len`).
pub const RECORD_HEADER_LEN: usize = 16;

/// The size of the usbmon binary header (`struct usbmon_packet`, `pcap_usb_header_mmapped`).
pub const USBMON_HEADER_LEN: usize = 64;

/// The size of one isochronous descriptor in the file.
pub const ISO_DESC_LEN: usize = 16;

/// The most isochronous descriptors written per record (the kernel's `ISODESC_MAX`); further
/// descriptors are left out and `numdesc`/`ndesc` say how many were written.
pub const MAX_ISO_DESCRIPTORS: usize = 128;

/// The default snaplen: 256 KiB, the largest packet libpcap-based readers (tcpdump) accept
/// for this link type. Wireshark reads up to [`MAX_SNAPLEN`].
pub const DEFAULT_SNAPLEN: u32 = 0x0004_0000;

/// The smallest snaplen: the usbmon header plus [`MAX_ISO_DESCRIPTORS`] descriptors, so that
/// headers and descriptors are never cut.
pub const MIN_SNAPLEN: u32 = 64 + 128 * 16;
const _: () =
    assert!(MIN_SNAPLEN as usize == USBMON_HEADER_LEN + MAX_ISO_DESCRIPTORS * ISO_DESC_LEN);

/// The largest snaplen: 128 MiB, the largest USB packet Wireshark reads.
pub const MAX_SNAPLEN: u32 = 128 * 1024 * 1024;

/// Byte ranges of the fields of the 64-byte usbmon header, little-endian (the byte order of
/// the file, given by its magic number). Field names are the kernel's (`struct mon_bin_hdr`,
/// `Documentation/usb/usbmon.rst`).
pub mod field {
    use std::ops::Range;

    /// `u64` URB tag.
    pub const ID: Range<usize> = 0..8;
    /// `u8` event type: `'S'`, `'C'` or `'E'`.
    pub const TYPE: usize = 8;
    /// `u8` transfer type: 0 iso, 1 interrupt, 2 control, 3 bulk.
    pub const XFER_TYPE: usize = 9;
    /// `u8` endpoint address, `0x80` set for IN.
    pub const EPNUM: usize = 10;
    /// `u8` device address.
    pub const DEVNUM: usize = 11;
    /// `u16` bus number.
    pub const BUSNUM: Range<usize> = 12..14;
    /// `i8`: 0 when the setup packet is present, `'-'` otherwise.
    pub const FLAG_SETUP: usize = 14;
    /// `i8`: 0 when data is present, else `'<'` (IN submit), `'>'` (OUT completion) or `'E'`.
    pub const FLAG_DATA: usize = 15;
    /// `i64` seconds since the Unix epoch.
    pub const TS_SEC: Range<usize> = 16..24;
    /// `i32` microseconds.
    pub const TS_USEC: Range<usize> = 24..28;
    /// `i32` URB status.
    pub const STATUS: Range<usize> = 28..32;
    /// `u32` URB length (`len_urb`).
    pub const LENGTH: Range<usize> = 32..36;
    /// `u32` captured bytes after the header: isochronous descriptors plus data.
    pub const LEN_CAP: Range<usize> = 36..40;
    /// `[u8; 8]` setup packet (the union `s`, when `flag_setup` is 0).
    pub const SETUP: Range<usize> = 40..48;
    /// `i32` isochronous error count (the union `s`, isochronous without setup).
    pub const ISO_ERROR_COUNT: Range<usize> = 40..44;
    /// `i32` number of isochronous descriptors (the union `s`).
    pub const ISO_NUMDESC: Range<usize> = 44..48;
    /// `i32` polling interval.
    pub const INTERVAL: Range<usize> = 48..52;
    /// `i32` isochronous start frame.
    pub const START_FRAME: Range<usize> = 52..56;
    /// `u32` URB transfer flags.
    pub const XFER_FLAGS: Range<usize> = 56..60;
    /// `u32` number of isochronous descriptors that follow the header.
    pub const NDESC: Range<usize> = 60..64;
}

/// The 24-byte pcap global header: magic [`PCAP_MAGIC_MICROSECONDS`], version 2.4, zone and
/// sigfigs 0, `snaplen` as given, link type [`LINKTYPE_USB_LINUX_MMAPPED`]; little-endian.
pub fn global_header(snaplen: u32) -> [u8; GLOBAL_HEADER_LEN] {
    let mut h = [0; GLOBAL_HEADER_LEN];
    h[0..4].copy_from_slice(&PCAP_MAGIC_MICROSECONDS.to_le_bytes());
    h[4..6].copy_from_slice(&2u16.to_le_bytes());
    h[6..8].copy_from_slice(&4u16.to_le_bytes());
    // 8..12 thiszone and 12..16 sigfigs stay 0.
    h[16..20].copy_from_slice(&snaplen.to_le_bytes());
    h[20..24].copy_from_slice(&LINKTYPE_USB_LINUX_MMAPPED.to_le_bytes());
    h
}

/// How many bytes [`encode_record`] appends for `rec` under `snaplen`.
pub fn record_len(rec: &UsbRecord<'_>, snaplen: u32) -> usize {
    RECORD_HEADER_LEN + Layout::new(rec, snaplen).incl_len()
}

/// Appends one pcap record for `rec` to `out`: the 16-byte record header, the 64-byte usbmon
/// header, the isochronous descriptors, then the data cut to the snaplen.
///
/// `out` grows by at most `16 + snaplen` bytes, and nothing here panics. What is derived or
/// clamped:
///
/// - `snaplen` is clamped to [`MIN_SNAPLEN`]..=[`MAX_SNAPLEN`]; it bounds the whole packet
///   (header, descriptors and data). Data beyond it is left out, as usbmon does: `len_cap` and
///   the record's `incl_len` say what was kept, while `length` keeps the URB length and the
///   record's `orig_len` the untruncated size, so Wireshark marks the frame as cut.
/// - At most [`MAX_ISO_DESCRIPTORS`] descriptors are written; `ndesc` and, unless a setup
///   packet fills the union, `numdesc` give the number written.
/// - `flag_setup` is 0 with a setup packet, `'-'` without. `flag_data` is 0 when data is
///   written; with no data it is `'<'` for an IN submit, `'>'` for an OUT completion, `'E'`
///   for an error event and 0 otherwise (an empty data stage), as the kernel writes it.
/// - The timestamp's seconds saturate at `i64::MAX` in the usbmon header and at `u32::MAX`
///   (year 2106) in the pcap record header; sizes beyond `u32::MAX` saturate.
pub fn encode_record(rec: &UsbRecord<'_>, snaplen: u32, out: &mut Vec<u8>) {
    let data = encode_prefix(rec, snaplen, out);
    out.extend_from_slice(data);
}

/// What one record's sizes come to.
#[derive(Debug, Clone, Copy)]
struct Layout {
    ndesc: usize,
    captured: usize,
    flag_data: u8,
}

impl Layout {
    fn new(rec: &UsbRecord<'_>, snaplen: u32) -> Self {
        let snaplen = usize_from(snaplen.clamp(MIN_SNAPLEN, MAX_SNAPLEN));
        let ndesc = rec.iso.len().min(MAX_ISO_DESCRIPTORS);
        // MIN_SNAPLEN leaves room for the header and every descriptor.
        let room = snaplen.saturating_sub(USBMON_HEADER_LEN + ndesc * ISO_DESC_LEN);
        let captured = rec.data.len().min(room);
        let flag_data = if !rec.data.is_empty() {
            0
        } else {
            match rec.event {
                EventType::Submit if rec.endpoint & ENDPOINT_DIR_IN != 0 => b'<',
                EventType::Complete if rec.endpoint & ENDPOINT_DIR_IN == 0 => b'>',
                EventType::Error => b'E',
                _ => 0,
            }
        };
        Self {
            ndesc,
            captured,
            flag_data,
        }
    }

    /// Descriptors plus captured data: `len_cap`.
    fn len_cap(&self) -> usize {
        self.ndesc * ISO_DESC_LEN + self.captured
    }

    /// The bytes of the packet in the file: `incl_len`.
    fn incl_len(&self) -> usize {
        USBMON_HEADER_LEN + self.len_cap()
    }

    /// The untruncated packet size: `orig_len`, as libpcap computes it for usbmon captures
    /// (with data present, from the URB length, never below what was captured).
    fn orig_len(&self, rec: &UsbRecord<'_>) -> usize {
        let data = if self.flag_data == 0 {
            rec.data.len().max(usize_from(rec.urb_length))
        } else {
            rec.data.len()
        };
        (USBMON_HEADER_LEN + self.ndesc * ISO_DESC_LEN).saturating_add(data)
    }
}

/// Appends everything but the data (record header, usbmon header, descriptors) and returns
/// the data to write after it.
pub(crate) fn encode_prefix<'a>(rec: &UsbRecord<'a>, snaplen: u32, out: &mut Vec<u8>) -> &'a [u8] {
    let layout = Layout::new(rec, snaplen);
    let secs = rec.timestamp.as_secs();
    let micros = rec.timestamp.subsec_micros();

    out.reserve(RECORD_HEADER_LEN + layout.incl_len());
    // saturates on purpose (documented at encode_record): the pcap record's seconds end in 2106.
    out.extend_from_slice(&u32::try_from(secs).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&micros.to_le_bytes());
    out.extend_from_slice(&u32_sat(layout.incl_len()).to_le_bytes());
    out.extend_from_slice(&u32_sat(layout.orig_len(rec)).to_le_bytes());

    let mut h = [0u8; USBMON_HEADER_LEN];
    h[field::ID].copy_from_slice(&rec.id.to_le_bytes());
    h[field::TYPE] = rec.event.as_u8();
    h[field::XFER_TYPE] = rec.transfer_type.as_u8();
    h[field::EPNUM] = rec.endpoint;
    h[field::DEVNUM] = rec.devnum;
    h[field::BUSNUM].copy_from_slice(&rec.busnum.to_le_bytes());
    h[field::FLAG_SETUP] = if rec.setup.is_some() { 0 } else { b'-' };
    h[field::FLAG_DATA] = layout.flag_data;
    // saturates on purpose (documented at encode_record), as in the record header above.
    h[field::TS_SEC].copy_from_slice(&i64::try_from(secs).unwrap_or(i64::MAX).to_le_bytes());
    // fits: subsec_micros is below 1_000_000.
    h[field::TS_USEC].copy_from_slice(&i32::try_from(micros).unwrap_or(i32::MAX).to_le_bytes());
    h[field::STATUS].copy_from_slice(&rec.status.to_le_bytes());
    h[field::LENGTH].copy_from_slice(&rec.urb_length.to_le_bytes());
    h[field::LEN_CAP].copy_from_slice(&u32_sat(layout.len_cap()).to_le_bytes());
    if let Some(setup) = rec.setup {
        h[field::SETUP].copy_from_slice(&setup);
    } else if rec.transfer_type == XferType::Isochronous {
        h[field::ISO_ERROR_COUNT].copy_from_slice(&rec.iso_error_count.to_le_bytes());
        h[field::ISO_NUMDESC].copy_from_slice(&u32_sat(layout.ndesc).to_le_bytes());
    }
    h[field::INTERVAL].copy_from_slice(&rec.interval.to_le_bytes());
    h[field::START_FRAME].copy_from_slice(&rec.start_frame.to_le_bytes());
    h[field::XFER_FLAGS].copy_from_slice(&rec.transfer_flags.to_le_bytes());
    h[field::NDESC].copy_from_slice(&u32_sat(layout.ndesc).to_le_bytes());
    out.extend_from_slice(&h);

    for d in rec.iso.iter().take(layout.ndesc) {
        out.extend_from_slice(&iso_desc_bytes(d));
    }
    rec.data.get(..layout.captured).unwrap_or_default()
}

/// One descriptor as `struct mon_bin_isodesc`: status, offset, length, zero padding.
fn iso_desc_bytes(d: &IsoDesc) -> [u8; ISO_DESC_LEN] {
    let mut b = [0; ISO_DESC_LEN];
    b[0..4].copy_from_slice(&d.status.to_le_bytes());
    b[4..8].copy_from_slice(&d.offset.to_le_bytes());
    b[8..12].copy_from_slice(&d.length.to_le_bytes());
    b
}

/// A size for a u32 field. saturates on purpose for `orig_len`, the one unbounded caller
/// (documented at encode_record: sizes beyond u32::MAX saturate); the others fit: `incl_len`
/// and `len_cap` are at most the snaplen (clamped to MAX_SNAPLEN in Layout::new), `ndesc` at
/// most MAX_ISO_DESCRIPTORS.
fn u32_sat(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

// `usize_from` widens; usbfn builds for 32- and 64-bit targets only.
const _: () = assert!(usize::BITS >= u32::BITS);

/// A u32 as a usize: lossless, `usize` has at least 32 bits (asserted above).
const fn usize_from(n: u32) -> usize {
    n as usize
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::Urb;

    fn le32(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }

    #[test]
    fn global_header_bytes() {
        assert_eq!(
            global_header(DEFAULT_SNAPLEN),
            [
                0xd4, 0xc3, 0xb2, 0xa1, // magic, microseconds
                2, 0, 4, 0, // version 2.4
                0, 0, 0, 0, // thiszone
                0, 0, 0, 0, // sigfigs
                0x00, 0x00, 0x04, 0x00, // snaplen 0x40000
                220, 0, 0, 0, // LINKTYPE_USB_LINUX_MMAPPED
            ]
        );
    }

    #[test]
    fn control_submit_with_setup() {
        let urb = Urb {
            id: 0x1122_3344_5566_7788,
            transfer_type: XferType::Control,
            endpoint: 0x80,
            devnum: 3,
            busnum: 2,
        };
        let setup = [0x80, 0x06, 0x00, 0x01, 0x00, 0x00, 0x12, 0x00];
        let rec = UsbRecord::submit(&urb, Duration::new(1_700_000_000, 123_456_789), 18, &[])
            .with_setup(setup)
            .with_transfer_flags(0x0000_0200);
        let mut out = Vec::new();
        encode_record(&rec, DEFAULT_SNAPLEN, &mut out);
        assert_eq!(out.len(), record_len(&rec, DEFAULT_SNAPLEN));
        #[rustfmt::skip]
        let expected: [u8; 80] = [
            // pcap record header: ts_sec, ts_usec, incl_len 64, orig_len 64
            0x00, 0xf1, 0x53, 0x65,  0x40, 0xe2, 0x01, 0x00,  64, 0, 0, 0,  64, 0, 0, 0,
            // id
            0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,
            b'S', 2, 0x80, 3,  2, 0,  0, b'<',
            // ts_sec (i64), ts_usec
            0x00, 0xf1, 0x53, 0x65, 0, 0, 0, 0,  0x40, 0xe2, 0x01, 0x00,
            // status -115, length 18, len_cap 0
            0x8d, 0xff, 0xff, 0xff,  18, 0, 0, 0,  0, 0, 0, 0,
            // setup
            0x80, 0x06, 0x00, 0x01, 0x00, 0x00, 0x12, 0x00,
            // interval, start_frame, xfer_flags, ndesc
            0, 0, 0, 0,  0, 0, 0, 0,  0x00, 0x02, 0, 0,  0, 0, 0, 0,
        ];
        assert_eq!(out, expected);
        let h = &out[RECORD_HEADER_LEN..];
        assert_eq!(h[field::FLAG_SETUP], 0);
        assert_eq!(&h[field::SETUP], &setup);
        assert_eq!(i32::from_le_bytes([h[28], h[29], h[30], h[31]]), -115);
    }

    #[test]
    fn bulk_in_completion_with_data() {
        let urb = Urb {
            id: 9,
            transfer_type: XferType::Bulk,
            endpoint: 0x81,
            devnum: 5,
            busnum: 0x0102,
        };
        let data = [0xde, 0xad, 0xbe, 0xef, 0x01];
        let rec = UsbRecord::complete(&urb, Duration::from_micros(2_000_007), 0, 5, &data);
        let mut out = Vec::new();
        encode_record(&rec, DEFAULT_SNAPLEN, &mut out);
        assert_eq!(out.len(), 16 + 64 + 5);
        assert_eq!(
            (le32(&out, 0), le32(&out, 4), le32(&out, 8), le32(&out, 12)),
            (2, 7, 69, 69)
        );
        let h = &out[RECORD_HEADER_LEN..];
        assert_eq!(&h[field::ID], &9u64.to_le_bytes());
        assert_eq!(
            [
                h[field::TYPE],
                h[field::XFER_TYPE],
                h[field::EPNUM],
                h[field::DEVNUM]
            ],
            [b'C', 3, 0x81, 5]
        );
        assert_eq!(&h[field::BUSNUM], &[0x02, 0x01]);
        assert_eq!([h[field::FLAG_SETUP], h[field::FLAG_DATA]], [b'-', 0]);
        assert_eq!(&h[field::TS_SEC], &2i64.to_le_bytes());
        assert_eq!(&h[field::TS_USEC], &7i32.to_le_bytes());
        assert_eq!(&h[field::STATUS], &0i32.to_le_bytes());
        assert_eq!(&h[field::LENGTH], &5u32.to_le_bytes());
        assert_eq!(&h[field::LEN_CAP], &5u32.to_le_bytes());
        assert_eq!(&h[40..64], &[0; 24]); // union, interval, start_frame, xfer_flags, ndesc
        assert_eq!(&h[64..], &data);
    }

    #[test]
    fn data_flags_follow_the_kernel() {
        let flag = |event, endpoint: u8, data: &[u8]| {
            let urb = Urb {
                id: 1,
                transfer_type: XferType::Bulk,
                endpoint,
                devnum: 1,
                busnum: 1,
            };
            let rec = UsbRecord {
                event,
                ..UsbRecord::submit(&urb, Duration::ZERO, 4, data)
            };
            let mut out = Vec::new();
            encode_record(&rec, DEFAULT_SNAPLEN, &mut out);
            out[RECORD_HEADER_LEN + field::FLAG_DATA]
        };
        assert_eq!(flag(EventType::Submit, 0x81, &[]), b'<');
        assert_eq!(flag(EventType::Submit, 0x01, &[]), 0);
        assert_eq!(flag(EventType::Submit, 0x01, &[1]), 0);
        assert_eq!(flag(EventType::Complete, 0x01, &[]), b'>');
        assert_eq!(flag(EventType::Complete, 0x81, &[]), 0);
        assert_eq!(flag(EventType::Error, 0x81, &[]), b'E');
    }

    #[test]
    fn data_beyond_snaplen_is_cut_but_length_kept() {
        let urb = Urb {
            id: 1,
            transfer_type: XferType::Bulk,
            endpoint: 0x02,
            devnum: 1,
            busnum: 1,
        };
        let data = vec![0xaa; usize_from(MIN_SNAPLEN) + 100];
        let n = u32_sat(data.len());
        let rec = UsbRecord::submit(&urb, Duration::ZERO, n, &data);
        // A snaplen below the minimum is raised to it.
        for snaplen in [0, MIN_SNAPLEN] {
            let mut out = Vec::new();
            encode_record(&rec, snaplen, &mut out);
            assert_eq!(out.len(), RECORD_HEADER_LEN + usize_from(MIN_SNAPLEN));
            assert_eq!(le32(&out, 8), MIN_SNAPLEN); // incl_len
            assert_eq!(le32(&out, 12), 64 + n); // orig_len: the real size
            let h = &out[RECORD_HEADER_LEN..];
            assert_eq!(&h[field::LENGTH], &n.to_le_bytes());
            assert_eq!(&h[field::LEN_CAP], &(MIN_SNAPLEN - 64).to_le_bytes());
            assert_eq!(h[field::FLAG_DATA], 0);
        }
    }

    #[test]
    fn iso_descriptors_come_before_the_data() {
        let urb = Urb {
            id: 4,
            transfer_type: XferType::Isochronous,
            endpoint: 0x83,
            devnum: 1,
            busnum: 1,
        };
        let iso = [
            IsoDesc {
                status: 0,
                offset: 0,
                length: 2,
            },
            IsoDesc {
                status: -18,
                offset: 2,
                length: 1,
            },
        ];
        let rec = UsbRecord::complete(&urb, Duration::ZERO, 0, 3, &[1, 2, 3])
            .with_iso(&iso, 77, 1)
            .with_interval(1);
        let mut out = Vec::new();
        encode_record(&rec, DEFAULT_SNAPLEN, &mut out);
        let h = &out[RECORD_HEADER_LEN..];
        assert_eq!(h.len(), 64 + 32 + 3);
        assert_eq!(&h[field::LEN_CAP], &35u32.to_le_bytes());
        assert_eq!(&h[field::ISO_ERROR_COUNT], &1i32.to_le_bytes());
        assert_eq!(&h[field::ISO_NUMDESC], &2i32.to_le_bytes());
        assert_eq!(&h[field::INTERVAL], &1i32.to_le_bytes());
        assert_eq!(&h[field::START_FRAME], &77i32.to_le_bytes());
        assert_eq!(&h[field::NDESC], &2u32.to_le_bytes());
        assert_eq!(
            &h[64..80],
            &[0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            &h[80..96],
            &[0xee, 0xff, 0xff, 0xff, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(&h[96..], &[1, 2, 3]);
    }

    #[test]
    fn too_many_iso_descriptors_are_capped() {
        let urb = Urb {
            id: 4,
            transfer_type: XferType::Isochronous,
            endpoint: 0x03,
            devnum: 1,
            busnum: 1,
        };
        let iso = vec![IsoDesc::default(); MAX_ISO_DESCRIPTORS + 5];
        let rec = UsbRecord::submit(&urb, Duration::ZERO, 0, &[]).with_iso(&iso, 0, 0);
        let mut out = Vec::new();
        encode_record(&rec, MIN_SNAPLEN, &mut out);
        let h = &out[RECORD_HEADER_LEN..];
        assert_eq!(h.len(), usize_from(MIN_SNAPLEN));
        assert_eq!(le32(h, 60), 128);
        assert_eq!(le32(h, 44), 128);
    }

    #[test]
    fn extreme_values_saturate_without_panicking() {
        let urb = Urb {
            id: u64::MAX,
            transfer_type: XferType::Interrupt,
            endpoint: 0xff,
            devnum: 0xff,
            busnum: u16::MAX,
        };
        let rec = UsbRecord::complete(&urb, Duration::MAX, i32::MIN, u32::MAX, &[1]);
        let mut out = Vec::new();
        encode_record(&rec, u32::MAX, &mut out);
        assert_eq!(le32(&out, 0), u32::MAX);
        assert_eq!(le32(&out, 4), 999_999);
        assert_eq!(le32(&out, 12), u32::MAX); // orig_len saturates
        assert_eq!(&out[16 + 16..16 + 24], &i64::MAX.to_le_bytes());
    }
}
