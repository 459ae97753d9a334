//! The usbredir codec on hostile bytes: QEMU's hello (or the input's own first packet, when
//! the first byte is odd) then arbitrary packets, decoded incrementally in input-chosen
//! chunks. Never a panic or an allocation beyond the limits; every packet decoded re-encodes
//! (as a usb-guest would send it) to bytes that decode to the same packet.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use usbfn_usbredir::proto::{Caps, Codec, Limits, Packet, Role};

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let limits = Limits {
        max_data: 1 << 20,
        ..Limits::default()
    };
    let mut host = Codec::new(Role::Host, Caps::USBFN, limits);
    let mut guest = Codec::new(Role::Guest, Caps(u32::from(first) | 0x20), limits);
    let mut wire = BytesMut::new();
    if first & 1 == 0 {
        let hello = Packet::Hello {
            version: "fuzz".into(),
            caps: Caps(u32::from(first) | 0x20),
        };
        guest.encode(0, &hello, &mut wire).unwrap();
    }
    // The guest's view of the host's hello, so that it encodes with the agreed header.
    let mut h = BytesMut::new();
    host.encode(
        0,
        &Packet::Hello {
            version: "usbfn".into(),
            caps: Caps::USBFN,
        },
        &mut h,
    )
    .unwrap();
    guest.decode(&mut h).unwrap();
    let chunk = usize::from(first >> 4) + 1;
    let mut fed = 0;
    loop {
        match host.decode(&mut wire) {
            Ok(Some(m)) => {
                if matches!(m.packet, Packet::Hello { .. }) {
                    continue;
                }
                let mut again = BytesMut::new();
                // Re-encoding is only comparable when the host has the guest's hello: without
                // it the two sides disagree on the header (32- or 64-bit ids).
                if first & 1 == 0 && guest.encode(m.id, &m.packet, &mut again).is_ok() {
                    let mut check = host.clone();
                    let back = check.decode(&mut again).unwrap().unwrap();
                    assert_eq!(back, m);
                }
            }
            Ok(None) => {
                if fed >= rest.len() {
                    return;
                }
                let end = (fed + chunk).min(rest.len());
                wire.extend_from_slice(&rest[fed..end]);
                fed = end;
            }
            Err(_) => return,
        }
        assert!(
            wire.capacity() <= (2 << 20) + 4096,
            "allocation beyond the limits"
        );
    }
});
