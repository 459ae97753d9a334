//! Isochronous URBs between the USB/IP wire and the core: the [`IsoRequest`] a CMD_SUBMIT
//! stands for, and the RET_SUBMIT for a completion.
//!
//! The reply follows what the Linux host (`usbip_recv_iso`, `usbip_pad_iso`) and the Windows
//! client (usbip-win2) check: `number_of_packets` echoed; one descriptor per submitted packet
//! with its `offset` and `length` unchanged and its own `actual_length` and `status`; IN data
//! packed without gaps, `actual_length` = the sum of the packets' actual lengths;
//! `error_count` = packets whose status is not 0; `start_frame` = the frame of the first
//! packet. The URB status is the core's (0 even when packets failed).
//!
//! Public so the fuzz targets drive exactly the server's conversions.

use bytes::Bytes;
use usbfn::UrbCompletion;
use usbfn_core::{CompletionStatus, IsoPacket, IsoRequest};

use super::SubmittedUrb;
use crate::proto::{CmdSubmit, Direction, IsoPacketDescriptor, RetSubmit, TransferFlags, errno};

/// The core's view of an isochronous CMD_SUBMIT (`None` for other URBs).
pub fn iso_request(cmd: &CmdSubmit) -> Option<IsoRequest> {
    if !cmd.is_iso() {
        return None;
    }
    let asap = cmd.transfer_flags.contains(TransferFlags::ISO_ASAP);
    Some(IsoRequest {
        packets: cmd
            .iso
            .iter()
            .map(|d| IsoPacket {
                offset: d.offset,
                length: d.length,
            })
            .collect(),
        // A negative frame number cannot name a frame: treat it as ASAP.
        start_frame: if asap {
            None
        } else {
            u32::try_from(cmd.start_frame).ok()
        },
    })
}

/// The RET_SUBMIT for `c`, the completion of `urb` (any URB; isochronous ones get their
/// descriptors).
pub fn ret_submit(seqnum: u32, urb: &SubmittedUrb, c: UrbCompletion) -> RetSubmit {
    let status = c.status.to_errno();
    let data = if urb.direction == Direction::In {
        c.data
    } else {
        Bytes::new()
    };
    // fits: the core completes at most the URB's buffer_len, the u32 transfer_buffer_length.
    let actual_length = u32::try_from(c.actual_length).unwrap_or(u32::MAX);
    if urb.number_of_packets <= 0 {
        return RetSubmit {
            seqnum,
            status,
            actual_length,
            start_frame: 0,
            number_of_packets: urb.number_of_packets,
            error_count: 0,
            data,
            iso: Vec::new(),
        };
    }
    let results = c.iso.as_ref().map(|i| i.packets.as_slice()).unwrap_or(&[]);
    let mut iso: Vec<IsoPacketDescriptor> = urb
        .iso
        .iter()
        .enumerate()
        .map(|(i, d)| match results.get(i) {
            Some(r) => IsoPacketDescriptor {
                offset: d.offset,
                length: d.length,
                actual_length: r.actual_length,
                status: r.status.to_errno(),
            },
            // Answered without the core (another devid): every packet failed with the URB.
            None => IsoPacketDescriptor {
                offset: d.offset,
                length: d.length,
                actual_length: 0,
                status: if status == 0 {
                    CompletionStatus::Missed.to_errno()
                } else {
                    status
                },
            },
        })
        .collect();
    let sum: u64 = iso.iter().map(|d| u64::from(d.actual_length)).sum();
    let mut data = data;
    let consistent = match urb.direction {
        Direction::In => sum == data.len() as u64,
        Direction::Out => true,
    };
    if !consistent {
        // The core packs IN data exactly; never send a reply the host would reject.
        tracing::warn!(
            seqnum,
            sum,
            data = data.len(),
            "isochronous IN data disagrees with its packets: sending every packet as failed"
        );
        for d in &mut iso {
            d.actual_length = 0;
            d.status = -errno::EPROTO;
        }
        data = Bytes::new();
    }
    let actual_length = iso
        .iter()
        .map(|d| d.actual_length)
        .fold(0u32, u32::saturating_add);
    let error_count = iso.iter().filter(|d| d.status != 0).count();
    RetSubmit {
        seqnum,
        status,
        actual_length,
        start_frame: c
            .iso
            .as_ref()
            .and_then(|i| i32::try_from(i.start_frame).ok())
            .unwrap_or(0),
        number_of_packets: urb.number_of_packets,
        // fits: at most one per descriptor, and the descriptors are the URB's positive i32
        // number_of_packets (checked against them when CMD_SUBMIT was decoded).
        error_count: i32::try_from(error_count).unwrap_or(i32::MAX),
        data,
        iso,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use usbfn_core::{CompletionStatus, IsoCompletion, IsoPacketResult, UrbId};

    fn submitted(direction: Direction, iso: Vec<IsoPacketDescriptor>) -> SubmittedUrb {
        SubmittedUrb {
            seqnum: 7,
            direction,
            ep: 1,
            setup: [0; 8],
            transfer_buffer_length: 3 * 1024,
            number_of_packets: i32::try_from(iso.len()).unwrap_or(0),
            transfer_flags: TransferFlags::ISO_ASAP.0,
            iso,
        }
    }

    fn desc(offset: u32, length: u32) -> IsoPacketDescriptor {
        IsoPacketDescriptor {
            offset,
            length,
            actual_length: 0,
            status: 0,
        }
    }

    fn result(offset: u32, length: u32, actual: u32, status: CompletionStatus) -> IsoPacketResult {
        IsoPacketResult {
            packet: IsoPacket { offset, length },
            actual_length: actual,
            status,
        }
    }

    #[test]
    fn in_reply_packs_data_echoes_offsets_and_counts_errors() {
        let urb = submitted(
            Direction::In,
            vec![desc(0, 1024), desc(1024, 1024), desc(2048, 1024)],
        );
        let c = UrbCompletion {
            id: UrbId(7),
            status: CompletionStatus::Success,
            actual_length: 1024 + 100,
            data: Bytes::from(vec![5u8; 1124]),
            iso: Some(IsoCompletion {
                start_frame: 42,
                packets: vec![
                    result(0, 1024, 1024, CompletionStatus::Success),
                    result(1024, 1024, 0, CompletionStatus::Missed),
                    result(2048, 1024, 100, CompletionStatus::Success),
                ],
            }),
        };
        let ret = ret_submit(7, &urb, c);
        assert_eq!(ret.status, 0, "the URB succeeds even when packets fail");
        assert_eq!(ret.actual_length, 1124);
        assert_eq!(ret.data.len(), 1124, "packed without gaps");
        assert_eq!((ret.number_of_packets, ret.error_count), (3, 1));
        assert_eq!(ret.start_frame, 42);
        let offsets: Vec<u32> = ret.iso.iter().map(|d| d.offset).collect();
        assert_eq!(offsets, vec![0, 1024, 2048]);
        assert_eq!(ret.iso[1].status, -errno::EXDEV);
        assert_eq!(ret.iso[2].actual_length, 100);
        let mut wire = bytes::BytesMut::new();
        ret.encode(Direction::In, &mut wire)
            .expect("consistent reply");
    }

    #[test]
    fn out_reply_has_no_data_and_sums_packet_lengths() {
        let urb = submitted(Direction::Out, vec![desc(0, 512), desc(512, 512)]);
        let c = UrbCompletion {
            id: UrbId(7),
            status: CompletionStatus::Success,
            actual_length: 1024,
            data: Bytes::new(),
            iso: Some(IsoCompletion {
                start_frame: 3,
                packets: vec![
                    result(0, 512, 512, CompletionStatus::Success),
                    result(512, 512, 512, CompletionStatus::Success),
                ],
            }),
        };
        let ret = ret_submit(7, &urb, c);
        assert_eq!((ret.actual_length, ret.error_count), (1024, 0));
        assert!(ret.data.is_empty());
    }

    #[test]
    fn reply_without_core_results_fails_every_packet_and_keeps_offsets() {
        let urb = submitted(Direction::In, vec![desc(0, 8), desc(8, 8)]);
        let c = UrbCompletion {
            id: UrbId(7),
            status: CompletionStatus::Shutdown,
            actual_length: 0,
            data: Bytes::new(),
            iso: None,
        };
        let ret = ret_submit(7, &urb, c);
        assert_eq!(ret.error_count, 2);
        assert_eq!(ret.iso[1].offset, 8);
        assert!(ret.iso.iter().all(|d| d.status == -errno::ESHUTDOWN));
    }

    #[test]
    fn inconsistent_in_data_is_never_sent() {
        let urb = submitted(Direction::In, vec![desc(0, 8)]);
        let c = UrbCompletion {
            id: UrbId(7),
            status: CompletionStatus::Success,
            actual_length: 8,
            data: Bytes::from_static(&[1, 2, 3]),
            iso: Some(IsoCompletion {
                start_frame: 0,
                packets: vec![result(0, 8, 8, CompletionStatus::Success)],
            }),
        };
        let ret = ret_submit(7, &urb, c);
        assert_eq!(
            (ret.actual_length, ret.data.len(), ret.error_count),
            (0, 0, 1)
        );
    }

    #[test]
    fn asap_and_explicit_start_frames() {
        let mut cmd = CmdSubmit {
            seqnum: 1,
            devid: 0,
            direction: Direction::In,
            ep: 1,
            transfer_flags: TransferFlags::ISO_ASAP,
            transfer_buffer_length: 16,
            start_frame: 99,
            number_of_packets: 2,
            interval: 1,
            setup: [0; 8],
            data: Bytes::new(),
            iso: vec![desc(0, 8), desc(8, 8)],
        };
        let r = iso_request(&cmd).expect("iso");
        assert_eq!(r.start_frame, None);
        assert_eq!(
            r.packets[1],
            IsoPacket {
                offset: 8,
                length: 8
            }
        );
        cmd.transfer_flags = TransferFlags(0);
        assert_eq!(iso_request(&cmd).and_then(|r| r.start_frame), Some(99));
        cmd.number_of_packets = -1;
        assert!(iso_request(&cmd).is_none(), "Windows' non-iso -1");
    }
}
