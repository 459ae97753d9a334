//! NCM Transfer Blocks (CDC NCM 1.0 §3): the parser for what the host sends (bulk OUT) and
//! the builder for what the device sends (bulk IN), NTB16 and NTB32.
//!
//! The parser never panics and never allocates more than the datagram list it returns,
//! bounded by [`MAX_DATAGRAMS`]: every length and index comes from the host and is checked
//! against the transfer before use. A structural error (signature, header or block length,
//! an NDP out of bounds, misaligned or revisited) refuses the whole NTB; a bad datagram
//! entry (out of bounds, shorter than an Ethernet header, longer than the limit) drops that
//! datagram only and is counted in [`Parsed::bad_datagrams`].

use std::ops::Range;

/// `dwSignature` of an NTH16: "NCMH".
pub const NTH16_SIGNATURE: u32 = u32::from_le_bytes(*b"NCMH");
/// `dwSignature` of an NTH32: "ncmh".
pub const NTH32_SIGNATURE: u32 = u32::from_le_bytes(*b"ncmh");
/// `dwSignature` of an NDP16 without CRC: "NCM0".
pub const NDP16_SIGNATURE: u32 = u32::from_le_bytes(*b"NCM0");
/// NDP16 with CRC-32 after each datagram: "NCM1".
pub const NDP16_CRC_SIGNATURE: u32 = u32::from_le_bytes(*b"NCM1");
/// NDP32 without CRC: "ncm0".
pub const NDP32_SIGNATURE: u32 = u32::from_le_bytes(*b"ncm0");
/// NDP32 with CRC: "ncm1".
pub const NDP32_CRC_SIGNATURE: u32 = u32::from_le_bytes(*b"ncm1");

/// NTH16 length.
pub const NTH16_LEN: usize = 12;
/// NTH32 length.
pub const NTH32_LEN: usize = 16;
/// Datagrams taken from one NTB at most (a 64 KiB NTB of minimal Ethernet frames); entries
/// beyond it are dropped and counted.
pub const MAX_DATAGRAMS: usize = 4096;
/// NDPs followed in one NTB at most (a chain longer than this, or one that loops, refuses
/// the NTB).
pub const MAX_NDPS: usize = 16;
/// Smallest datagram kept: an Ethernet header.
pub const MIN_DATAGRAM: usize = 14;

/// The NTB format, as SET_NTB_FORMAT selects it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum NtbFormat {
    /// 16-bit lengths and offsets (the default; every host).
    #[default]
    Ntb16,
    /// 32-bit lengths and offsets.
    Ntb32,
}

/// Why an NTB was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NtbError {
    /// Shorter than its transfer header.
    #[error("NTB of {0} bytes is shorter than its header")]
    Short(usize),
    /// The header's signature is not the selected format's.
    #[error("NTH signature {found:#010x} is not {expected:#010x} ({format:?})")]
    Signature {
        /// What came.
        found: u32,
        /// What the format needs.
        expected: u32,
        /// The selected format.
        format: NtbFormat,
    },
    /// wHeaderLength is not 12 (NTH16) or 16 (NTH32).
    #[error("NTH header length {0}")]
    HeaderLength(usize),
    /// The block length is larger than the transfer or than the negotiated maximum.
    #[error("NTB block length {block} (transfer {transfer} bytes, limit {limit})")]
    BlockLength {
        /// wBlockLength / dwBlockLength.
        block: usize,
        /// Bytes received.
        transfer: usize,
        /// The NTB OUT maximum size.
        limit: usize,
    },
    /// An NDP index outside the block, inside the header, or not a multiple of 4.
    #[error("NDP index {0} is out of bounds or misaligned")]
    NdpIndex(usize),
    /// An NDP with a bad signature or length.
    #[error("NDP at {at}: {what}")]
    Ndp {
        /// Its offset.
        at: usize,
        /// What is wrong.
        what: &'static str,
    },
    /// The NDP chain is longer than [`MAX_NDPS`] or comes back to an NDP already read.
    #[error("NDP chain loops or is longer than {MAX_NDPS}")]
    NdpChain,
}

/// The datagrams of one NTB.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    /// wSequence.
    pub sequence: u32,
    /// Byte ranges of the datagrams in the transfer, in NDP order.
    pub datagrams: Vec<Range<usize>>,
    /// Datagram entries dropped (out of bounds, too short, too long, over
    /// [`MAX_DATAGRAMS`]).
    pub bad_datagrams: usize,
}

fn u16_at(buf: &[u8], at: usize) -> Option<usize> {
    let b = buf.get(at..at.checked_add(2)?)?;
    Some(usize::from(u16::from_le_bytes([b[0], b[1]])))
}

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    let b = buf.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn usize_at(buf: &[u8], at: usize) -> Option<usize> {
    usize::try_from(u32_at(buf, at)?).ok()
}

/// Parse one NTB of `format` received from the host. `max_block` is the NTB OUT maximum
/// size the device advertised; `max_datagram` the largest datagram kept (e.g. 1514).
pub fn parse(
    ntb: &[u8],
    format: NtbFormat,
    max_block: usize,
    max_datagram: usize,
) -> Result<Parsed, NtbError> {
    let (nth_len, expected) = match format {
        NtbFormat::Ntb16 => (NTH16_LEN, NTH16_SIGNATURE),
        NtbFormat::Ntb32 => (NTH32_LEN, NTH32_SIGNATURE),
    };
    let short = NtbError::Short(ntb.len());
    let signature = u32_at(ntb, 0).ok_or(short.clone())?;
    if ntb.len() < nth_len {
        return Err(short);
    }
    if signature != expected {
        return Err(NtbError::Signature {
            found: signature,
            expected,
            format,
        });
    }
    let header_len = u16_at(ntb, 4).ok_or(short.clone())?;
    if header_len != nth_len {
        return Err(NtbError::HeaderLength(header_len));
    }
    let sequence = u16_at(ntb, 6).ok_or(short.clone())?;
    let (block, mut ndp) = match format {
        NtbFormat::Ntb16 => (
            u16_at(ntb, 8).ok_or(short.clone())?,
            u16_at(ntb, 10).ok_or(short.clone())?,
        ),
        NtbFormat::Ntb32 => (
            usize_at(ntb, 8).ok_or(short.clone())?,
            usize_at(ntb, 12).ok_or(short)?,
        ),
    };
    // A block length of 0 in NTB16 means "the transfer" is not allowed by the spec for
    // OUT (it is for IN with wBlockLength 0 meaning a 64 KiB block): refuse it.
    if block < nth_len || block > ntb.len() || block > max_block {
        return Err(NtbError::BlockLength {
            block,
            transfer: ntb.len(),
            limit: max_block,
        });
    }
    let block_bytes = ntb.get(..block).unwrap_or_default();
    let mut parsed = Parsed {
        sequence: u32::try_from(sequence).unwrap_or(0),
        ..Parsed::default()
    };
    let mut visited: Vec<usize> = Vec::new();
    let (ndp_header, entry_len, min_ndp_len) = match format {
        NtbFormat::Ntb16 => (8, 4, 16),
        NtbFormat::Ntb32 => (16, 8, 32),
    };
    loop {
        if ndp < nth_len
            || !ndp.is_multiple_of(4)
            || ndp.checked_add(ndp_header).is_none_or(|e| e > block)
        {
            return Err(NtbError::NdpIndex(ndp));
        }
        if visited.contains(&ndp) || visited.len() >= MAX_NDPS {
            return Err(NtbError::NdpChain);
        }
        visited.push(ndp);
        let bad = |what| NtbError::Ndp { at: ndp, what };
        let sig = u32_at(block_bytes, ndp).ok_or(bad("truncated"))?;
        let ok_sig = match format {
            NtbFormat::Ntb16 => sig == NDP16_SIGNATURE || sig == NDP16_CRC_SIGNATURE,
            NtbFormat::Ntb32 => sig == NDP32_SIGNATURE || sig == NDP32_CRC_SIGNATURE,
        };
        if !ok_sig {
            return Err(bad("signature is not NCM0/NCM1 (ncm0/ncm1 for NTB32)"));
        }
        let crc = sig == NDP16_CRC_SIGNATURE || sig == NDP32_CRC_SIGNATURE;
        let len = u16_at(block_bytes, ndp + 4).ok_or(bad("truncated"))?;
        if len < min_ndp_len || !len.is_multiple_of(4) || ndp + len > block {
            return Err(bad("wLength too short, unaligned or past the block"));
        }
        let next = match format {
            NtbFormat::Ntb16 => u16_at(block_bytes, ndp + 6),
            NtbFormat::Ntb32 => usize_at(block_bytes, ndp + 8),
        }
        .ok_or(bad("truncated"))?;
        let mut at = ndp + ndp_header;
        while at + entry_len <= ndp + len {
            let (index, length) = match format {
                NtbFormat::Ntb16 => (u16_at(block_bytes, at), u16_at(block_bytes, at + 2)),
                NtbFormat::Ntb32 => (usize_at(block_bytes, at), usize_at(block_bytes, at + 4)),
            };
            at += entry_len;
            let (Some(index), Some(length)) = (index, length) else {
                break;
            };
            if index == 0 || length == 0 {
                break;
            }
            // With CRC mode the datagram ends with its 4-byte CRC-32 (not checked: the
            // Ethernet layer above has its own checksums).
            let payload = if crc {
                length.saturating_sub(4)
            } else {
                length
            };
            let in_block =
                index >= nth_len && index.checked_add(length).is_some_and(|e| e <= block);
            if !in_block || payload < MIN_DATAGRAM || payload > max_datagram {
                parsed.bad_datagrams += 1;
                continue;
            }
            if parsed.datagrams.len() >= MAX_DATAGRAMS {
                parsed.bad_datagrams += 1;
                continue;
            }
            parsed.datagrams.push(index..index + payload);
        }
        if next == 0 {
            return Ok(parsed);
        }
        ndp = next;
    }
}

/// The device's NTB layout parameters (what GET_NTB_PARAMETERS advertises for IN).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct InLayout {
    /// The format the host selected.
    pub format: NtbFormat,
    /// The largest NTB the host accepts (SET_NTB_INPUT_SIZE, else dwNtbInMaxSize).
    pub max_size: usize,
    /// wNdpInDivisor: datagram offsets are multiples of this (payload remainder 0).
    pub divisor: usize,
    /// wNdpInAlignment: the NDP's offset is a multiple of this.
    pub ndp_alignment: usize,
    /// Datagrams per NTB at most (0: no limit), from an 8-byte SET_NTB_INPUT_SIZE.
    pub max_datagrams: usize,
}

/// Gathers frames into one IN NTB: NTH, the datagrams (each at a multiple of the divisor),
/// then one NDP at the end.
#[derive(Debug)]
pub struct NtbBuilder {
    layout: InLayout,
    buf: Vec<u8>,
    entries: Vec<(usize, usize)>,
}

fn align(n: usize, to: usize) -> usize {
    let to = to.max(1);
    n.div_ceil(to) * to
}

impl NtbBuilder {
    /// An empty NTB for `layout`.
    pub fn new(layout: InLayout) -> Self {
        let nth = match layout.format {
            NtbFormat::Ntb16 => NTH16_LEN,
            NtbFormat::Ntb32 => NTH32_LEN,
        };
        let mut buf = Vec::with_capacity(layout.max_size);
        buf.resize(nth, 0);
        NtbBuilder {
            layout,
            buf,
            entries: Vec::new(),
        }
    }

    /// Datagrams added.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No datagram yet.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn ndp_len(&self, entries: usize) -> usize {
        // Header, the entries and the (0, 0) terminator.
        match self.layout.format {
            NtbFormat::Ntb16 => 8 + 4 * (entries + 1),
            NtbFormat::Ntb32 => 16 + 8 * (entries + 1),
        }
    }

    /// Whether a frame of `len` bytes still fits.
    pub fn fits(&self, len: usize) -> bool {
        let n = self.entries.len() + 1;
        if self.layout.max_datagrams != 0 && n > self.layout.max_datagrams {
            return false;
        }
        let start = align(self.buf.len(), self.layout.divisor);
        let ndp = align(start + len, self.layout.ndp_alignment.max(4));
        let total = ndp + align(self.ndp_len(n), 4);
        let limit = match self.layout.format {
            NtbFormat::Ntb16 => self.layout.max_size.min(0xffff),
            NtbFormat::Ntb32 => self.layout.max_size,
        };
        total <= limit
    }

    /// Add a frame; false (and nothing added) when it does not fit.
    pub fn push(&mut self, frame: &[u8]) -> bool {
        if !self.fits(frame.len()) {
            return false;
        }
        let start = align(self.buf.len(), self.layout.divisor);
        self.buf.resize(start, 0);
        self.buf.extend_from_slice(frame);
        self.entries.push((start, frame.len()));
        true
    }

    /// The finished NTB, numbered `sequence`.
    pub fn finish(mut self, sequence: u16) -> Vec<u8> {
        let ndp = align(self.buf.len(), self.layout.ndp_alignment.max(4));
        self.buf.resize(ndp, 0);
        let ndp_len = self.ndp_len(self.entries.len());
        let total = ndp + ndp_len;
        // Fits: push() admits a frame only while the whole NTB stays within max_size, at most 0xffff for NTB16 and MAX_NTB for NTB32, so every offset and length fits.
        let as16 = |n: usize| u16::try_from(n).unwrap_or(u16::MAX).to_le_bytes();
        let as32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
        match self.layout.format {
            NtbFormat::Ntb16 => {
                self.buf.extend_from_slice(&NDP16_SIGNATURE.to_le_bytes());
                self.buf.extend_from_slice(&as16(ndp_len));
                self.buf.extend_from_slice(&[0, 0]);
                for &(index, len) in &self.entries {
                    self.buf.extend_from_slice(&as16(index));
                    self.buf.extend_from_slice(&as16(len));
                }
                self.buf.extend_from_slice(&[0; 4]);
                let mut nth = Vec::with_capacity(NTH16_LEN);
                nth.extend_from_slice(&NTH16_SIGNATURE.to_le_bytes());
                nth.extend_from_slice(&as16(NTH16_LEN));
                nth.extend_from_slice(&sequence.to_le_bytes());
                nth.extend_from_slice(&as16(total));
                nth.extend_from_slice(&as16(ndp));
                self.buf.splice(..NTH16_LEN, nth);
            }
            NtbFormat::Ntb32 => {
                self.buf.extend_from_slice(&NDP32_SIGNATURE.to_le_bytes());
                self.buf.extend_from_slice(&as16(ndp_len));
                self.buf.extend_from_slice(&[0, 0]);
                self.buf.extend_from_slice(&[0; 8]); // dwNextNdpIndex, dwReserved12
                for &(index, len) in &self.entries {
                    self.buf.extend_from_slice(&as32(index));
                    self.buf.extend_from_slice(&as32(len));
                }
                self.buf.extend_from_slice(&[0; 8]);
                let mut nth = Vec::with_capacity(NTH32_LEN);
                nth.extend_from_slice(&NTH32_SIGNATURE.to_le_bytes());
                nth.extend_from_slice(&as16(NTH32_LEN));
                nth.extend_from_slice(&sequence.to_le_bytes());
                nth.extend_from_slice(&as32(total));
                nth.extend_from_slice(&as32(ndp));
                self.buf.splice(..NTH32_LEN, nth);
            }
        }
        self.buf
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)]
mod tests {
    use super::*;

    fn layout(format: NtbFormat, max_size: usize) -> InLayout {
        InLayout {
            format,
            max_size,
            divisor: 4,
            ndp_alignment: 4,
            max_datagrams: 0,
        }
    }

    fn frame(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_add(seed)).collect()
    }

    /// What the Linux host's cdc_ncm sends: NTH16, NDP16 right after it, datagrams after.
    fn linux_style_ntb16(frames: &[Vec<u8>]) -> Vec<u8> {
        let ndp_len = 8 + 4 * (frames.len() + 1);
        let mut at = NTH16_LEN + ndp_len;
        let mut entries = Vec::new();
        let mut body = Vec::new();
        for f in frames {
            at = align(at, 4);
            body.resize(at - NTH16_LEN - ndp_len, 0);
            entries.push((at, f.len()));
            body.extend_from_slice(f);
            at += f.len();
        }
        let mut ntb = Vec::new();
        ntb.extend_from_slice(b"NCMH");
        ntb.extend_from_slice(&12u16.to_le_bytes());
        ntb.extend_from_slice(&7u16.to_le_bytes());
        ntb.extend_from_slice(&(at as u16).to_le_bytes());
        ntb.extend_from_slice(&12u16.to_le_bytes());
        ntb.extend_from_slice(b"NCM0");
        ntb.extend_from_slice(&(ndp_len as u16).to_le_bytes());
        ntb.extend_from_slice(&0u16.to_le_bytes());
        for (i, l) in &entries {
            ntb.extend_from_slice(&(*i as u16).to_le_bytes());
            ntb.extend_from_slice(&(*l as u16).to_le_bytes());
        }
        ntb.extend_from_slice(&[0; 4]);
        ntb.extend_from_slice(&body);
        ntb
    }

    #[test]
    fn parses_a_host_ntb16_with_several_datagrams() {
        let frames = [frame(60, 1), frame(1514, 2), frame(99, 3)];
        let ntb = linux_style_ntb16(&frames);
        let p = parse(&ntb, NtbFormat::Ntb16, 32768, 1514).expect("valid");
        assert_eq!(p.sequence, 7);
        assert_eq!(p.bad_datagrams, 0);
        let got: Vec<&[u8]> = p.datagrams.iter().map(|r| &ntb[r.clone()]).collect();
        assert_eq!(got, frames.iter().map(|f| &f[..]).collect::<Vec<_>>());
        // Padding after the block (a host rounding the transfer up) is ignored.
        let mut padded = ntb.clone();
        padded.push(0);
        assert_eq!(
            parse(&padded, NtbFormat::Ntb16, 32768, 1514)
                .expect("valid")
                .datagrams
                .len(),
            3
        );
    }

    #[test]
    fn built_ntbs_parse_back_in_both_formats() {
        for format in [NtbFormat::Ntb16, NtbFormat::Ntb32] {
            let mut b = NtbBuilder::new(layout(format, 16384));
            let frames: Vec<Vec<u8>> = (0..10).map(|i| frame(100 + 37 * i, i as u8)).collect();
            for f in &frames {
                assert!(b.push(f));
            }
            assert_eq!(b.len(), 10);
            let ntb = b.finish(9);
            assert_eq!(ntb.len() % 4, 0);
            let p = parse(&ntb, format, 16384, 1514).expect("parses");
            assert_eq!(p.sequence, 9);
            let got: Vec<Vec<u8>> = p
                .datagrams
                .iter()
                .map(|r| ntb[r.clone()].to_vec())
                .collect();
            assert_eq!(got, frames, "{format:?}");
            assert!(p.datagrams.iter().all(|r| r.start % 4 == 0));
        }
    }

    #[test]
    fn the_builder_respects_the_host_size_and_datagram_limits() {
        let mut b = NtbBuilder::new(layout(NtbFormat::Ntb16, 2048));
        assert!(b.push(&frame(1514, 0)));
        assert!(
            !b.push(&frame(1514, 0)),
            "a second full frame does not fit 2048"
        );
        assert!(b.push(&frame(400, 0)));
        let ntb = b.finish(0);
        assert!(ntb.len() <= 2048, "{}", ntb.len());
        let mut l = layout(NtbFormat::Ntb16, 65536);
        l.max_datagrams = 2;
        let mut b = NtbBuilder::new(l);
        assert!(b.push(&frame(60, 0)) && b.push(&frame(60, 0)));
        assert!(!b.push(&frame(60, 0)));
        // NTB16 never exceeds 65535 whatever the host set.
        let mut b = NtbBuilder::new(layout(NtbFormat::Ntb16, 1 << 20));
        while b.push(&frame(1514, 0)) {}
        assert!(b.finish(0).len() <= 0xffff);
    }

    #[test]
    fn structural_errors_refuse_the_ntb() {
        let good = linux_style_ntb16(&[frame(60, 0)]);
        let p = |b: &[u8]| parse(b, NtbFormat::Ntb16, 32768, 1514);
        assert!(matches!(p(&good[..3]), Err(NtbError::Short(3))));
        assert!(matches!(p(&good[..11]), Err(NtbError::Short(11))));
        assert!(matches!(
            parse(&good, NtbFormat::Ntb32, 32768, 1514),
            Err(NtbError::Signature { .. })
        ));
        let mut b = good.clone();
        b[4] = 16;
        assert_eq!(p(&b), Err(NtbError::HeaderLength(16)));
        let mut b = good.clone();
        b[8..10].copy_from_slice(&5000u16.to_le_bytes());
        assert!(matches!(
            p(&b),
            Err(NtbError::BlockLength { block: 5000, .. })
        ));
        assert!(matches!(
            parse(&good, NtbFormat::Ntb16, 50, 1514),
            Err(NtbError::BlockLength { .. })
        ));
        for bad_index in [0u16, 6, 13, 4000] {
            let mut b = good.clone();
            b[10..12].copy_from_slice(&bad_index.to_le_bytes());
            assert!(matches!(p(&b), Err(NtbError::NdpIndex(_))), "{bad_index}");
        }
        let mut b = good.clone();
        b[12] = b'X';
        assert!(matches!(p(&b), Err(NtbError::Ndp { at: 12, .. })));
        let mut b = good.clone();
        b[16..18].copy_from_slice(&10u16.to_le_bytes());
        assert!(matches!(p(&b), Err(NtbError::Ndp { .. })));
        // An NDP whose next index points at itself: a loop.
        let mut b = good.clone();
        b[18..20].copy_from_slice(&12u16.to_le_bytes());
        assert_eq!(p(&b), Err(NtbError::NdpChain));
    }

    #[test]
    fn bad_datagrams_are_dropped_and_counted() {
        let mut ntb = linux_style_ntb16(&[frame(60, 0), frame(60, 1), frame(60, 2)]);
        // Entry 1 past the block, entry 2 shorter than an Ethernet header.
        ntb[24..26].copy_from_slice(&60000u16.to_le_bytes());
        ntb[30..32].copy_from_slice(&10u16.to_le_bytes());
        let p = parse(&ntb, NtbFormat::Ntb16, 32768, 1514).expect("structure is fine");
        assert_eq!((p.datagrams.len(), p.bad_datagrams), (1, 2));
        // Longer than the datagram limit.
        let ntb = linux_style_ntb16(&[frame(1600, 0)]);
        let p = parse(&ntb, NtbFormat::Ntb16, 32768, 1514).expect("structure is fine");
        assert_eq!((p.datagrams.len(), p.bad_datagrams), (0, 1));
    }
}
