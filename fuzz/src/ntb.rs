//! The NCM NTB parser (`usbfn::functions::ncm::ntb`): bytes a host sends on bulk OUT.
//!
//! Input: byte 0 picks the format (bit 0: NTB32) and byte 1 the block limit (×256 + 12
//! bytes); the rest is the transfer. Checked beyond "no panic": every datagram range lies
//! inside the block and within the datagram limit, at most `MAX_DATAGRAMS` are returned, and
//! the datagrams, rebuilt into an NTB by the device-side builder, parse back identically.

use usbfn::functions::ncm::ntb::{self, InLayout, NtbBuilder, NtbFormat};

/// The largest datagram the harness allows (an Ethernet frame).
const MAX_DATAGRAM: usize = 1514;

/// Run one input.
pub fn run(data: &[u8]) {
    let (Some(&mode), Some(&limit)) = (data.first(), data.get(1)) else {
        return;
    };
    let format = if mode & 1 == 0 {
        NtbFormat::Ntb16
    } else {
        NtbFormat::Ntb32
    };
    let max_block = usize::from(limit) * 256 + 12;
    let transfer = &data[2..];
    let Ok(parsed) = ntb::parse(transfer, format, max_block, MAX_DATAGRAM) else {
        return;
    };
    assert!(parsed.datagrams.len() <= ntb::MAX_DATAGRAMS);
    let block = transfer.len().min(max_block);
    for r in &parsed.datagrams {
        assert!(r.start < r.end && r.end <= block, "{r:?} outside {block}");
        assert!(r.len() >= ntb::MIN_DATAGRAM && r.len() <= MAX_DATAGRAM);
    }
    // Rebuild what fits into IN NTBs and parse them back.
    let layout = InLayout {
        format,
        max_size: 65535,
        divisor: 4,
        ndp_alignment: 4,
        max_datagrams: 0,
    };
    let mut frames = parsed
        .datagrams
        .iter()
        .map(|r| &transfer[r.clone()])
        .peekable();
    while frames.peek().is_some() {
        let mut builder = NtbBuilder::new(layout);
        let mut expected = Vec::new();
        while let Some(f) = frames.peek() {
            if !builder.push(f) {
                break;
            }
            expected.push(*f);
            frames.next();
        }
        assert!(
            !expected.is_empty(),
            "a single frame always fits an empty NTB"
        );
        let out = builder.finish(1);
        assert!(out.len() <= 65535);
        let back = ntb::parse(&out, format, 65535, MAX_DATAGRAM).expect("built NTBs parse");
        let got: Vec<&[u8]> = back.datagrams.iter().map(|r| &out[r.clone()]).collect();
        assert_eq!(got, expected);
        assert_eq!(back.bad_datagrams, 0);
    }
}

/// Seeds: a host-style NTB16 with three datagrams, the same as NTB32, and an NDP loop.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (name, format, mode) in [
        ("ntb16", NtbFormat::Ntb16, 0u8),
        ("ntb32", NtbFormat::Ntb32, 1),
    ] {
        let mut b = NtbBuilder::new(InLayout {
            format,
            max_size: 16384,
            divisor: 4,
            ndp_alignment: 4,
            max_datagrams: 0,
        });
        for len in [60usize, 1514, 99] {
            let frame: Vec<u8> = (0..len)
                .map(|i| u8::try_from(i % 251).unwrap_or(0))
                .collect();
            b.push(&frame);
        }
        let mut seed = vec![mode, 64];
        seed.extend_from_slice(&b.finish(7));
        out.push((name.to_owned(), seed));
    }
    let mut looped = out[0].1.clone();
    // NTH16's wNdpIndex is at 2 + 10; the NDP's wNextNdpIndex at NDP + 6: point it home.
    let ndp = usize::from(u16::from_le_bytes([looped[12], looped[13]]));
    let home = looped[12..14].to_vec();
    looped[2 + ndp + 6..2 + ndp + 8].copy_from_slice(&home);
    out.push(("ndp-loop".to_owned(), looped));
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn seeds_run_and_the_loop_is_refused() {
        for (_, seed) in super::seeds() {
            super::run(&seed);
        }
        let seeds = super::seeds();
        let looped = &seeds[2].1;
        assert!(
            usbfn::functions::ncm::ntb::parse(
                &looped[2..],
                usbfn::functions::ncm::ntb::NtbFormat::Ntb16,
                65535,
                1514
            )
            .is_err()
        );
    }
}
