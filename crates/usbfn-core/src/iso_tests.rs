//! Isochronous pipe tests, and a property test against a naive frame-by-frame model.

use std::time::Instant;

use bytes::Bytes;
use proptest::prelude::*;
use usbfn_wire::Direction;

use super::*;
use crate::clock::FrameClock;
use crate::types::BusSpeed;

fn pattern(len: usize, seed: usize) -> Bytes {
    (0..len)
        .map(|i| u8::try_from((i * 7 + seed * 13) % 251).unwrap_or(0))
        .collect::<Vec<u8>>()
        .into()
}

fn asap(lengths: &[u32]) -> IsoRequest {
    let mut offset = 0;
    IsoRequest {
        packets: lengths
            .iter()
            .map(|&length| {
                let p = IsoPacket { offset, length };
                offset += length;
                p
            })
            .collect(),
        start_frame: None,
    }
}

fn pipe(direction: Direction, max_bytes: usize, interval: u64) -> IsoPipe {
    let mut p = IsoPipe::new(direction);
    p.configure(max_bytes, interval);
    p
}

fn clock() -> FrameClock {
    FrameClock::new(Instant::now(), BusSpeed::High)
}

#[test]
fn in_urb_completes_after_its_slots_with_packed_data() {
    let c = clock();
    let mut p = pipe(Direction::In, 1024, 2);
    let mut out = Completions::default();
    for i in 0..3 {
        p.submit_in_transfer(TransferId(i), pattern(1024, i as usize), 0);
    }
    // Submitted in frame 0: packets in frames 1, 3, 5; due at frame 7.
    p.submit_urb(
        UrbId(1),
        Bytes::new(),
        asap(&[1024, 1024, 1024]),
        0,
        &c,
        &mut out,
    );
    assert_eq!(p.deadline(&c), c.start_of(7));
    p.advance(6, &mut out);
    assert!(
        out.urbs.is_empty(),
        "never before the bus time its packets need"
    );
    p.advance(7, &mut out);
    let done = out.urbs.pop_front().expect("due at frame 7");
    let iso = done.iso.expect("iso results");
    assert_eq!(iso.start_frame, 1);
    assert_eq!(iso.error_count(), 0);
    assert_eq!(done.actual_length, 3072);
    let mut expected = Vec::new();
    for i in 0..3 {
        expected.extend_from_slice(&pattern(1024, i));
    }
    assert_eq!(&done.data[..], &expected[..]);
    assert_eq!(out.transfers.len(), 3);
}

#[test]
fn in_packet_without_data_in_time_goes_out_empty_and_missed() {
    let c = clock();
    let mut p = pipe(Direction::In, 512, 1);
    let mut out = Completions::default();
    p.submit_urb(
        UrbId(1),
        Bytes::new(),
        asap(&[512, 512, 512]),
        0,
        &c,
        &mut out,
    );
    // Frames 1, 2, 3. Data queued in frame 2 serves the packets of frames 2 and 3 only.
    p.advance(2, &mut out);
    p.submit_in_transfer(TransferId(1), pattern(1024, 0), 2);
    p.advance(4, &mut out);
    let done = out.urbs.pop_front().expect("due at frame 4");
    let iso = done.iso.expect("iso");
    let statuses: Vec<_> = iso.packets.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        vec![
            CompletionStatus::Missed,
            CompletionStatus::Success,
            CompletionStatus::Success
        ]
    );
    assert_eq!(iso.error_count(), 1);
    assert_eq!(done.status, CompletionStatus::Success);
    assert_eq!((done.actual_length, done.data.len()), (1024, 1024));
    assert_eq!(p.missed_in, 1);
}

#[test]
fn device_packet_larger_than_the_hosts_is_babble() {
    let c = clock();
    let mut p = pipe(Direction::In, 1024, 1);
    let mut out = Completions::default();
    p.submit_in_transfer(TransferId(1), pattern(1024, 0), 0);
    p.submit_urb(UrbId(1), Bytes::new(), asap(&[100]), 0, &c, &mut out);
    p.advance(2, &mut out);
    let done = out.urbs.pop_front().expect("done");
    let r = done.iso.expect("iso").packets[0];
    assert_eq!((r.status, r.actual_length), (CompletionStatus::Babble, 100));
    assert_eq!(done.data, pattern(1024, 0).slice(..100));
}

#[test]
fn out_packets_keep_their_boundaries_and_unread_ones_are_dropped() {
    let c = clock();
    let mut p = pipe(Direction::Out, 1024, 1);
    let mut out = Completions::default();
    let data = pattern(1024 + 10, 3);
    p.submit_out_transfer(TransferId(1), 4096, 0);
    p.submit_urb(
        UrbId(1),
        data.clone(),
        asap(&[1024, 0, 10]),
        0,
        &c,
        &mut out,
    );
    p.submit_out_transfer(TransferId(2), 4096, 0);
    p.advance(4, &mut out);
    let lens: Vec<usize> = out.transfers.iter().map(|t| t.bytes_transferred).collect();
    assert_eq!(
        lens,
        vec![1024, 0],
        "one transfer per packet, the ZLP included"
    );
    assert_eq!(out.transfers[0].data, data.slice(..1024));
    assert_eq!(p.dropped_out, 1, "the third packet found no TRANSFER_OUT");
    let done = out.urbs.pop_front().expect("done");
    assert_eq!(done.actual_length, 1034, "the host sent every packet");
    assert!(done.data.is_empty());
}

#[test]
fn out_packet_over_the_interval_budget_is_not_delivered() {
    let c = clock();
    let mut p = pipe(Direction::Out, 512, 1);
    let mut out = Completions::default();
    p.submit_out_transfer(TransferId(1), 4096, 0);
    p.submit_urb(UrbId(1), pattern(600, 0), asap(&[600]), 0, &c, &mut out);
    p.advance(2, &mut out);
    assert!(out.transfers.is_empty());
    let r = out
        .urbs
        .pop_front()
        .expect("done")
        .iso
        .expect("iso")
        .packets[0];
    assert_eq!((r.status, r.actual_length), (CompletionStatus::Babble, 0));
}

#[test]
fn asap_urbs_continue_the_stream_and_urbs_without_asap_follow_the_previous_one() {
    let c = clock();
    let mut p = pipe(Direction::In, 8, 1);
    let mut out = Completions::default();
    p.submit_urb(UrbId(1), Bytes::new(), asap(&[8; 4]), 10, &c, &mut out);
    p.submit_urb(UrbId(2), Bytes::new(), asap(&[8; 4]), 10, &c, &mut out);
    assert_eq!(p.deadline(&c), c.start_of(15));
    p.advance(15, &mut out);
    assert_eq!(
        out.urbs.pop_front().map(|u| u.iso.map(|i| i.start_frame)),
        Some(Some(11))
    );
    // Without URB_ISO_ASAP (snd-usb-audio's URBs, resubmitted with their last start frame,
    // 11, long past): right after URB 2, in 19, whatever start_frame says.
    let mut req = asap(&[8; 4]);
    req.start_frame = Some(c.wire(11));
    p.submit_urb(UrbId(3), Bytes::new(), req, 15, &c, &mut out);
    p.advance(19, &mut out);
    assert_eq!(
        out.urbs.pop_front().map(|u| u.iso.map(|i| i.start_frame)),
        Some(Some(15))
    );
    p.advance(23, &mut out);
    assert_eq!(
        out.urbs.pop_front().map(|u| u.iso.map(|i| i.start_frame)),
        Some(Some(19))
    );
    // Submitted in 25 while URB 4 (frames 26..=29) is queued: it follows URB 4 at 30. Then
    // one submitted in 40 after the stream went idle starts at 41 as an ASAP URB would.
    p.submit_urb(UrbId(4), Bytes::new(), asap(&[8; 4]), 25, &c, &mut out);
    let mut req = asap(&[8; 4]);
    req.start_frame = Some(c.wire(3));
    p.submit_urb(UrbId(5), Bytes::new(), req.clone(), 25, &c, &mut out);
    p.advance(40, &mut out);
    let starts: Vec<u32> = out
        .urbs
        .drain(..)
        .filter_map(|u| u.iso.map(|i| i.start_frame))
        .collect();
    assert_eq!(starts, [26, 30]);
    p.submit_urb(UrbId(6), Bytes::new(), req, 40, &c, &mut out);
    p.advance(50, &mut out);
    let iso = out.urbs.pop_front().expect("done").iso.expect("iso");
    assert_eq!(iso.start_frame, 41);
    assert_eq!(iso.error_count(), 4, "no data queued: missed");
}

#[test]
fn a_urb_without_asap_behind_a_late_stream_misses_the_passed_slots() {
    let c = clock();
    let mut p = pipe(Direction::In, 8, 1);
    let mut out = Completions::default();
    // URB 1 covers 1..=8; URB 2 (no ASAP) is submitted in 12 while URB 1 is still queued
    // (the core was not called in between): it goes to 9..=16, and 9..=12 had passed.
    p.submit_urb(UrbId(1), Bytes::new(), asap(&[8; 8]), 0, &c, &mut out);
    let mut req = asap(&[8; 8]);
    req.start_frame = Some(0);
    for i in 0..16 {
        p.submit_in_transfer(TransferId(i), pattern(8, 0), 0);
    }
    p.submit_urb(UrbId(2), Bytes::new(), req, 12, &c, &mut out);
    p.advance(30, &mut out);
    let starts: Vec<(u32, usize)> = out
        .urbs
        .drain(..)
        .filter_map(|u| u.iso.map(|i| (i.start_frame, i.error_count())))
        .collect();
    assert_eq!(starts, [(1, 0), (9, 4)]);
}

#[test]
fn unlink_cancel_and_fail_answer_every_urb_once() {
    let c = clock();
    let mut p = pipe(Direction::In, 8, 1);
    let mut out = Completions::default();
    p.submit_urb(UrbId(1), Bytes::new(), asap(&[8; 2]), 0, &c, &mut out);
    p.submit_urb(UrbId(2), Bytes::new(), asap(&[8; 2]), 0, &c, &mut out);
    assert!(p.unlink_urb(UrbId(1)));
    assert!(!p.unlink_urb(UrbId(1)));
    p.submit_in_transfer(TransferId(9), pattern(8, 0), 0);
    assert!(p.cancel_transfer(TransferId(9), CompletionStatus::Cancelled, &mut out));
    assert_eq!(
        out.transfers.pop_front().map(|t| t.status),
        Some(CompletionStatus::Cancelled)
    );
    p.fail_all_urbs(CompletionStatus::Shutdown, &mut out);
    let done = out.urbs.pop_front().expect("URB 2 fails");
    assert_eq!(
        (done.id, done.status),
        (UrbId(2), CompletionStatus::Shutdown)
    );
    assert_eq!(done.iso.map(|i| i.error_count()), Some(2));
    assert!(out.urbs.is_empty());
}

#[test]
fn malformed_urbs_are_refused_with_per_packet_results() {
    let c = clock();
    let mut p = pipe(Direction::Out, 64, 1);
    let mut out = Completions::default();
    let req = IsoRequest {
        packets: vec![IsoPacket {
            offset: u32::MAX,
            length: 64,
        }],
        start_frame: None,
    };
    p.submit_urb(UrbId(1), pattern(64, 0), req, 0, &c, &mut out);
    let done = out.urbs.pop_front().expect("refused at once");
    assert_eq!(done.status, CompletionStatus::Invalid);
    assert_eq!(done.iso.map(|i| i.packets.len()), Some(1));
    let too_many = asap(&vec![0; MAX_ISO_PACKETS + 1]);
    p.submit_urb(UrbId(2), Bytes::new(), too_many, 0, &c, &mut out);
    assert_eq!(
        out.urbs.pop_front().map(|u| u.status),
        Some(CompletionStatus::Invalid)
    );
}

/// One packet of the naive model's outcome: (status, actual length).
type PacketOutcome = (CompletionStatus, u32);

/// The naive model: walk the frames one by one. URBs are `(submit frame, packet lengths)`
/// (ASAP); IN transfers `(arrival frame, length)`. Returns per URB its completion frame and
/// packet outcomes, and the IN bytes in order.
fn model_in(
    urbs: &[(u64, Vec<u32>)],
    transfers: &[(u64, usize)],
    max: usize,
    interval: u64,
) -> Vec<(u64, Vec<PacketOutcome>, Vec<u8>)> {
    // Cut transfers into packets.
    let mut packets: Vec<(u64, Vec<u8>)> = Vec::new();
    for (i, &(arrived, len)) in transfers.iter().enumerate() {
        let data = pattern(len, i);
        if len == 0 {
            packets.push((arrived, Vec::new()));
        }
        for chunk in data.chunks(max) {
            packets.push((arrived, chunk.to_vec()));
        }
    }
    let mut next = 0;
    let mut stream_end = 0;
    let mut result = Vec::new();
    for (submitted, lengths) in urbs {
        let start = (submitted + 1).max(stream_end);
        stream_end = start + lengths.len() as u64 * interval;
        let mut outcomes = Vec::new();
        let mut bytes = Vec::new();
        for (i, &len) in lengths.iter().enumerate() {
            let frame = start + i as u64 * interval;
            match packets.get(next) {
                Some((arrived, data)) if *arrived <= frame => {
                    next += 1;
                    let take = data.len().min(len as usize);
                    bytes.extend_from_slice(&data[..take]);
                    let status = if data.len() > len as usize {
                        CompletionStatus::Babble
                    } else {
                        CompletionStatus::Success
                    };
                    outcomes.push((status, take as u32));
                }
                _ => outcomes.push((CompletionStatus::Missed, 0)),
            }
        }
        result.push((stream_end, outcomes, bytes));
    }
    result
}

proptest! {
    /// The lazily settled pipe, driven frame by frame, matches the naive model exactly:
    /// the same packet outcomes, the same bytes, and each URB completing exactly in the
    /// frame its last slot ends (never earlier).
    #[test]
    fn iso_in_matches_the_frame_by_frame_model(
        max in prop::sample::select(vec![8usize, 64, 1024]),
        interval in prop::sample::select(vec![1u64, 2, 8]),
        urbs in prop::collection::vec((0u64..40, prop::collection::vec(0u32..1100, 1..6)), 1..8),
        transfers in prop::collection::vec((0u64..60, 0usize..3000), 0..10),
    ) {
        let mut urbs = urbs;
        urbs.sort_by_key(|u| u.0);
        let mut transfers = transfers;
        transfers.sort_by_key(|t| t.0);
        let expected = model_in(&urbs, &transfers, max, interval);
        let c = clock();
        let mut p = pipe(Direction::In, max, interval);
        let mut out = Completions::default();
        let mut got: Vec<(u64, UrbCompletion)> = Vec::new();
        let last = expected.iter().map(|e| e.0).max().unwrap_or(0) + 2;
        for frame in 0..=last {
            p.advance(frame, &mut out);
            while let Some(done) = out.urbs.pop_front() {
                got.push((frame, done));
            }
            for (i, (at, len)) in transfers.iter().enumerate() {
                if *at == frame {
                    p.submit_in_transfer(TransferId(i as u64), pattern(*len, i), frame);
                }
            }
            for (i, (at, lengths)) in urbs.iter().enumerate() {
                if *at == frame {
                    p.submit_urb(UrbId(i as u64), Bytes::new(), asap(lengths), frame, &c, &mut out);
                }
            }
        }
        prop_assert_eq!(got.len(), expected.len());
        for ((frame, done), (due, outcomes, bytes)) in got.iter().zip(&expected) {
            prop_assert_eq!(frame, due);
            let iso = done.iso.as_ref().expect("iso results");
            let mine: Vec<PacketOutcome> =
                iso.packets.iter().map(|r| (r.status, r.actual_length)).collect();
            prop_assert_eq!(&mine, outcomes);
            prop_assert_eq!(&done.data[..], &bytes[..]);
            prop_assert_eq!(done.actual_length, bytes.len());
        }
    }

    /// OUT: every packet that meets a read queued by its frame is one transfer completion
    /// with exactly that packet's bytes; the others are counted as dropped.
    #[test]
    fn iso_out_delivers_packets_whole_and_in_order(
        max in prop::sample::select(vec![8usize, 64, 1024]),
        lengths in prop::collection::vec(0u32..1024, 1..20),
        reads in prop::collection::vec(0u64..30, 0..25),
    ) {
        let lengths: Vec<u32> = lengths.into_iter().map(|l| l.min(max as u32)).collect();
        let total: u32 = lengths.iter().sum();
        let data = pattern(total as usize, 1);
        let c = clock();
        let mut p = pipe(Direction::Out, max, 1);
        let mut out = Completions::default();
        let mut reads = reads;
        reads.sort_unstable();
        p.submit_urb(UrbId(1), data.clone(), asap(&lengths), 0, &c, &mut out);
        let end = lengths.len() as u64 + 1;
        let mut delivered = 0usize;
        for frame in 0..=end {
            p.advance(frame, &mut out);
            for (i, r) in reads.iter().enumerate() {
                if *r == frame {
                    p.submit_out_transfer(TransferId(i as u64), 4096, frame);
                }
            }
        }
        let mut offset = 0usize;
        let mut transfers = out.transfers.iter();
        for (i, &len) in lengths.iter().enumerate() {
            let frame = 1 + i as u64;
            // The model: the packet finds a read if one arrived by its frame and is unused.
            let available = reads.iter().filter(|r| **r <= frame).count() > delivered;
            if available {
                delivered += 1;
                let t = transfers.next().expect("a completion per delivered packet");
                prop_assert_eq!(&t.data[..], &data[offset..offset + len as usize]);
            }
            offset += len as usize;
        }
        prop_assert!(transfers.next().is_none());
        prop_assert_eq!(p.dropped_out as usize, lengths.len() - delivered);
        let done = out.urbs.pop_front().expect("completed");
        prop_assert_eq!(done.actual_length, total as usize);
    }
}
