//! [`PcapWriter`]: the sans-IO encoder around any `std::io::Write`.

use std::io::{self, Write};

use crate::UsbRecord;
use crate::encode::{self, DEFAULT_SNAPLEN, MAX_SNAPLEN, MIN_SNAPLEN};

/// Writes a pcap capture of USB traffic (link type `LINKTYPE_USB_LINUX_MMAPPED`) to `W`.
///
/// Each [`record`](Self::record) issues a few writes; wrap files in a `std::io::BufWriter`.
/// If a write fails part-way through a record, the file is cut mid-record, so the writer
/// refuses further records (they would be misread) and returns an error for each.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    inner: W,
    snaplen: u32,
    /// Record header, usbmon header and descriptors of the record being written (reused).
    prefix: Vec<u8>,
    broken: bool,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the pcap global header with [`DEFAULT_SNAPLEN`] and returns the writer.
    pub fn new(inner: W) -> io::Result<Self> {
        Self::with_snaplen(inner, DEFAULT_SNAPLEN)
    }

    /// Writes the pcap global header with `snaplen`, the most bytes kept per packet (usbmon
    /// header, isochronous descriptors and data; see [`encode_record`](crate::encode_record)).
    ///
    /// Fails with [`io::ErrorKind::InvalidInput`] if `snaplen` is outside
    /// [`MIN_SNAPLEN`]..=[`MAX_SNAPLEN`], before writing anything.
    pub fn with_snaplen(mut inner: W, snaplen: u32) -> io::Result<Self> {
        if !(MIN_SNAPLEN..=MAX_SNAPLEN).contains(&snaplen) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("pcap snaplen {snaplen} is outside {MIN_SNAPLEN}..={MAX_SNAPLEN} bytes"),
            ));
        }
        inner.write_all(&encode::global_header(snaplen))?;
        Ok(Self {
            inner,
            snaplen,
            prefix: Vec::new(),
            broken: false,
        })
    }

    /// Writes one record. Data beyond the snaplen is left out (the record still gives the
    /// URB's real length); see [`encode_record`](crate::encode_record).
    pub fn record(&mut self, rec: &UsbRecord<'_>) -> io::Result<()> {
        if self.broken {
            return Err(io::Error::other(
                "pcap writer: an earlier record was cut by a write error; the capture ends there",
            ));
        }
        self.prefix.clear();
        let data = encode::encode_prefix(rec, self.snaplen, &mut self.prefix);
        let written = self
            .inner
            .write_all(&self.prefix)
            .and_then(|()| self.inner.write_all(data));
        self.broken = written.is_err();
        written
    }

    /// The snaplen written in the global header.
    pub fn snaplen(&self) -> u32 {
        self.snaplen
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }

    /// The underlying writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// The underlying writer, unflushed.
    pub fn into_inner(self) -> W {
        self.inner
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::encode::{GLOBAL_HEADER_LEN, encode_record, global_header};
    use crate::{Urb, XferType};

    const URB: Urb = Urb {
        id: 1,
        transfer_type: XferType::Bulk,
        endpoint: 0x02,
        devnum: 1,
        busnum: 1,
    };

    #[test]
    fn writes_global_header_then_records() {
        let rec = UsbRecord::submit(&URB, Duration::from_secs(1), 3, &[1, 2, 3]);
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        assert_eq!(w.get_ref().as_slice(), global_header(DEFAULT_SNAPLEN));
        w.record(&rec).unwrap();
        w.flush().unwrap();
        let mut expected = global_header(DEFAULT_SNAPLEN).to_vec();
        encode_record(&rec, DEFAULT_SNAPLEN, &mut expected);
        assert_eq!(w.snaplen(), DEFAULT_SNAPLEN);
        assert_eq!(w.into_inner(), expected);
    }

    #[test]
    fn snaplen_limits_are_checked_before_writing() {
        for bad in [0, MIN_SNAPLEN - 1, MAX_SNAPLEN + 1] {
            let mut out = Vec::new();
            let err = PcapWriter::with_snaplen(&mut out, bad).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
            assert!(err.to_string().contains("snaplen"), "{err}");
            assert!(out.is_empty());
        }
        let w = PcapWriter::with_snaplen(Vec::new(), MIN_SNAPLEN).unwrap();
        assert_eq!(w.get_ref()[16..20], MIN_SNAPLEN.to_le_bytes());
        assert_eq!(w.into_inner().len(), GLOBAL_HEADER_LEN);
    }

    /// Accepts `budget` bytes, then fails.
    #[derive(Debug)]
    struct Failing {
        budget: usize,
    }

    impl Write for Failing {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.budget == 0 {
                return Err(io::Error::other("disk full"));
            }
            let n = buf.len().min(self.budget);
            self.budget -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_torn_record_stops_the_capture() {
        let rec = UsbRecord::submit(&URB, Duration::ZERO, 3, &[1, 2, 3]);
        let mut w = PcapWriter::new(Failing {
            budget: GLOBAL_HEADER_LEN + 20,
        })
        .unwrap();
        assert_eq!(w.record(&rec).unwrap_err().to_string(), "disk full");
        let err = w.record(&rec).unwrap_err();
        assert!(err.to_string().contains("earlier record"), "{err}");
        assert!(PcapWriter::new(Failing { budget: 0 }).is_err());
    }
}
