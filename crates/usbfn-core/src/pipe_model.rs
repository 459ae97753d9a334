//! Property tests: the pipe against a naive packet-by-packet model of USB.
//!
//! The model cuts every transfer into packets one at a time (short packets, ZLPs from
//! `TRANSFER_IN_APPEND_ZERO_PKT` and `URB_ZERO_PACKET`) and feeds them to the receivers one at
//! a time, with babble whenever a packet is larger than the room left. The pipe moves runs of
//! full packets at once; both must produce exactly the same completions: every byte delivered
//! once and in order, transfers ending exactly where short packets and ZLPs fall, and babble
//! exactly when USB says so.

use bytes::Bytes;
use proptest::prelude::*;
use usbfn_wire::{Direction, TransferType};

use crate::pipe::{Completions, Pipe};
use crate::status::CompletionStatus;
use crate::types::{TransferId, UrbId};

#[derive(Copy, Clone, Debug)]
enum Op {
    /// A host URB: IN buffer size or OUT data size, and its flag (SHORT_NOT_OK for IN,
    /// ZERO_PACKET for OUT).
    Urb(usize, bool),
    /// A service transfer: IN data size or OUT capacity, and APPEND_ZERO_PKT for IN.
    Transfer(usize, bool),
}

/// (status, bytes) per completion, in order.
type Outcome = (
    Vec<(u64, CompletionStatus, Vec<u8>)>,
    Vec<(u64, CompletionStatus, Vec<u8>)>,
);

struct Packet {
    data: Vec<u8>,
    /// The index of the sender this packet belongs to, and whether it is its last.
    owner: usize,
    last: bool,
}

fn payload(len: usize, seed: usize) -> Vec<u8> {
    (0..len)
        .map(|i| u8::try_from((i * 7 + seed * 13) % 251).unwrap_or(0))
        .collect()
}

/// Cut senders into packets.
fn packets(senders: &[(usize, bool)], mps: usize) -> Vec<Packet> {
    let mut out = Vec::new();
    for (owner, &(len, zlp)) in senders.iter().enumerate() {
        let data = payload(len, owner);
        let mut chunks: Vec<Vec<u8>> = data.chunks(mps).map(<[u8]>::to_vec).collect();
        if len == 0 || (zlp && len % mps == 0) {
            chunks.push(Vec::new());
        }
        let n = chunks.len();
        for (i, c) in chunks.into_iter().enumerate() {
            out.push(Packet {
                data: c,
                owner,
                last: i + 1 == n,
            });
        }
    }
    out
}

/// Feed packets to receivers (buffer sizes, SHORT_NOT_OK) one at a time. Returns the
/// receivers' completions and the senders' completions (bytes sent), in completion order.
fn model(
    senders: &[(usize, bool)],
    receivers: &[(usize, bool)],
    mps: usize,
    receivers_are_host: bool,
) -> Outcome {
    let stream = packets(senders, mps);
    let mut recv_done = Vec::new();
    let mut send_done = Vec::new();
    let mut sent_bytes = vec![0usize; senders.len()];
    let mut p = 0;
    for (r, &(room0, short_not_ok)) in receivers.iter().enumerate() {
        let mut got: Vec<u8> = Vec::new();
        let status = loop {
            let Some(pkt) = stream.get(p) else { break None };
            p += 1;
            sent_bytes[pkt.owner] += pkt.data.len();
            if pkt.last {
                send_done.push((
                    pkt.owner as u64,
                    CompletionStatus::Success,
                    sent_bytes[pkt.owner],
                ));
            }
            let room = room0 - got.len();
            if pkt.data.len() > room {
                got.extend_from_slice(&pkt.data[..room]);
                break Some(CompletionStatus::Babble);
            }
            got.extend_from_slice(&pkt.data);
            if pkt.data.len() < mps {
                let short = got.len() < room0;
                break Some(if receivers_are_host && short_not_ok && short {
                    CompletionStatus::ShortPacket
                } else {
                    CompletionStatus::Success
                });
            }
            if got.len() == room0 {
                break Some(CompletionStatus::Success);
            }
        };
        match status {
            Some(s) => recv_done.push((r as u64, s, got)),
            None => break,
        }
    }
    let send_done = send_done
        .into_iter()
        .map(|(id, s, n)| (id, s, vec![0u8; n]))
        .collect();
    (recv_done, send_done)
}

fn run_pipe(direction: Direction, ops: &[Op], mps: u16) -> Outcome {
    let mut pipe = Pipe::new(direction, TransferType::Bulk, mps);
    let mut out = Completions::default();
    let (mut urbs, mut xfers) = (0u64, 0u64);
    for op in ops {
        match (*op, direction) {
            (Op::Urb(len, flag), Direction::In) => {
                pipe.submit_in_urb(UrbId(urbs), len, flag, &mut out);
                urbs += 1;
            }
            (Op::Urb(len, flag), Direction::Out) => {
                pipe.submit_out_urb(
                    UrbId(urbs),
                    Bytes::from(payload(len, urbs as usize)),
                    flag,
                    &mut out,
                );
                urbs += 1;
            }
            (Op::Transfer(len, flag), Direction::In) => {
                pipe.submit_in_transfer(
                    TransferId(xfers),
                    Bytes::from(payload(len, xfers as usize)),
                    flag,
                    &mut out,
                );
                xfers += 1;
            }
            (Op::Transfer(len, _), Direction::Out) => {
                pipe.submit_out_transfer(TransferId(xfers), len, &mut out);
                xfers += 1;
            }
        }
    }
    let urb_done: Vec<_> = out
        .urbs
        .iter()
        .map(|c| (c.id.0, c.status, c.data.to_vec(), c.actual_length))
        .collect();
    let xfer_done: Vec<_> = out
        .transfers
        .iter()
        .map(|t| (t.id.0, t.status, t.data.to_vec(), t.bytes_transferred))
        .collect();
    match direction {
        // IN: the host URBs receive, the service transfers send.
        Direction::In => (
            urb_done
                .iter()
                .map(|(id, s, d, n)| {
                    assert_eq!(d.len(), *n);
                    (*id, *s, d.clone())
                })
                .collect(),
            xfer_done
                .iter()
                .map(|(id, s, _, n)| (*id, *s, vec![0u8; *n]))
                .collect(),
        ),
        // OUT: the service transfers receive, the host URBs send.
        Direction::Out => (
            xfer_done
                .iter()
                .map(|(id, s, d, n)| {
                    assert_eq!(d.len(), *n);
                    (*id, *s, d.clone())
                })
                .collect(),
            urb_done
                .iter()
                .map(|(id, s, _, n)| (*id, *s, vec![0u8; *n]))
                .collect(),
        ),
    }
}

/// (length, flag) per sender or receiver.
type Side = Vec<(usize, bool)>;

fn split(ops: &[Op], direction: Direction) -> (Side, Side) {
    let urbs: Vec<_> = ops
        .iter()
        .filter_map(|o| {
            if let Op::Urb(n, f) = o {
                Some((*n, *f))
            } else {
                None
            }
        })
        .collect();
    let xfers: Vec<_> = ops
        .iter()
        .filter_map(|o| {
            if let Op::Transfer(n, f) = o {
                Some((*n, *f))
            } else {
                None
            }
        })
        .collect();
    match direction {
        Direction::In => (xfers, urbs),
        Direction::Out => (urbs, xfers.into_iter().map(|(n, _)| (n, false)).collect()),
    }
}

fn ops(max_len: usize) -> impl Strategy<Value = Vec<Op>> {
    // Sizes cluster around packet multiples, where the boundary rules matter.
    let size = prop_oneof![
        0usize..max_len,
        (0usize..8).prop_map(|k| k * 64),
        (0usize..8).prop_map(|k| k * 512),
        (1usize..8).prop_map(|k| k * 512 - 1),
        (0usize..8).prop_map(|k| k * 512 + 1),
    ];
    prop::collection::vec(
        prop_oneof![
            (size.clone(), any::<bool>()).prop_map(|(n, f)| Op::Urb(n, f)),
            (size, any::<bool>()).prop_map(|(n, f)| Op::Transfer(n, f)),
        ],
        1..24,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn in_pipe_matches_the_packet_model(mps in prop::sample::select(vec![8u16, 64, 512, 1024]), ops in ops(5000)) {
        let got = run_pipe(Direction::In, &ops, mps);
        let (senders, receivers) = split(&ops, Direction::In);
        let want = model(&senders, &receivers, usize::from(mps), true);
        prop_assert_eq!(got, want);
    }

    #[test]
    fn out_pipe_matches_the_packet_model(mps in prop::sample::select(vec![8u16, 64, 512, 1024]), ops in ops(5000)) {
        let got = run_pipe(Direction::Out, &ops, mps);
        let (senders, receivers) = split(&ops, Direction::Out);
        let want = model(&senders, &receivers, usize::from(mps), false);
        prop_assert_eq!(got, want);
    }
}
