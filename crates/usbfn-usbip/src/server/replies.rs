//! The replies a connection owes its host, in the order they go out, and the rule that makes
//! every URB answered exactly once.
//!
//! The writer takes completions and unlinks as they come, keeps the replies they call for in
//! a [`Replies`] queue, and encodes the whole queue right before each write. So a RET_SUBMIT
//! is in exactly one of three places: not produced yet (the URB is in the device), queued
//! here, or on the wire (its write finished before the writer looked at anything else). A
//! CMD_UNLINK then has one right answer:
//!
//! | where the URB is | answer |
//! |---|---|
//! | still in the device | the device drops it; RET_UNLINK(-ECONNRESET), no RET_SUBMIT ever |
//! | completed, RET_SUBMIT queued here | the RET_SUBMIT is taken out; RET_UNLINK(-ECONNRESET) |
//! | RET_SUBMIT on the wire | RET_UNLINK(0), after it |
//!
//! Linux's vhci-hcd gives an unlinked URB back at the *first* answer for it and tears the
//! device down at any later one, so a RET_UNLINK may never overtake the RET_SUBMIT it says
//! went out. The writer is the only place that orders replies, and this queue is sans-IO so
//! that the rule is tested deterministically (`tests` below).

use std::collections::VecDeque;

use usbfn::UrbCompletion;

use super::SubmittedUrb;
use crate::proto::RetUnlink;

/// Bytes of a RET_SUBMIT or RET_UNLINK header.
const HEADER: usize = 48;

/// One reply waiting to be encoded.
#[derive(Debug)]
pub(crate) enum Reply {
    /// A URB's completion, to become its RET_SUBMIT.
    Submit {
        urb: SubmittedUrb,
        completion: UrbCompletion,
    },
    /// A RET_UNLINK. `answers` is the URB it answers for good (one that will never have a
    /// RET_SUBMIT), so that the connection counts it as answered once this is written.
    Unlink {
        ret: RetUnlink,
        answers: Option<SubmittedUrb>,
    },
}

/// Replies decided and not yet encoded, in order.
#[derive(Debug, Default)]
pub(crate) struct Replies {
    queue: VecDeque<Reply>,
    /// Approximate bytes the queue encodes to (headers plus IN payloads), to size batches.
    bytes: usize,
}

impl Replies {
    /// Queue a URB's RET_SUBMIT.
    pub(crate) fn push_submit(&mut self, urb: SubmittedUrb, completion: UrbCompletion) {
        self.bytes = self
            .bytes
            .saturating_add(HEADER)
            .saturating_add(completion.data.len());
        self.queue.push_back(Reply::Submit { urb, completion });
    }

    /// Queue a RET_UNLINK; `answers` as in [`Reply::Unlink`].
    pub(crate) fn push_unlink(&mut self, ret: RetUnlink, answers: Option<SubmittedUrb>) {
        self.bytes = self.bytes.saturating_add(HEADER);
        self.queue.push_back(Reply::Unlink { ret, answers });
    }

    /// Take the queued RET_SUBMIT of `seqnum` out: it will never be written. `None` when none
    /// is queued (the URB is still in the device, or its RET_SUBMIT is on the wire).
    pub(crate) fn cancel_submit(&mut self, seqnum: u32) -> Option<SubmittedUrb> {
        let pos = self
            .queue
            .iter()
            .position(|r| matches!(r, Reply::Submit { urb, .. } if urb.seqnum == seqnum))?;
        match self.queue.remove(pos)? {
            Reply::Submit { urb, completion } => {
                self.bytes = self
                    .bytes
                    .saturating_sub(HEADER)
                    .saturating_sub(completion.data.len());
                Some(urb)
            }
            other => {
                // `position` matched a Submit; put anything else back where it was.
                self.queue.insert(pos, other);
                None
            }
        }
    }

    /// Approximate encoded size of what is queued.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Everything queued, in order, leaving the queue empty.
    pub(crate) fn take_all(&mut self) -> std::collections::vec_deque::Drain<'_, Reply> {
        self.bytes = 0;
        self.queue.drain(..)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use usbfn::CompletionStatus;
    use usbfn_core::UrbId;

    use crate::proto::{Direction, errno};

    fn urb(seqnum: u32) -> SubmittedUrb {
        SubmittedUrb {
            seqnum,
            direction: Direction::In,
            ep: 1,
            setup: [0; 8],
            transfer_buffer_length: 512,
            number_of_packets: 0,
            transfer_flags: 0,
            iso: Vec::new(),
        }
    }

    fn done(seqnum: u32) -> UrbCompletion {
        UrbCompletion {
            id: UrbId(u64::from(seqnum)),
            status: CompletionStatus::Success,
            actual_length: 512,
            data: Bytes::from(vec![7u8; 512]),
            iso: None,
        }
    }

    /// What goes on the wire, as (kind, seqnum, status).
    fn wire(replies: &mut Replies) -> Vec<(&'static str, u32, i32)> {
        replies
            .take_all()
            .map(|r| match r {
                Reply::Submit { urb, .. } => ("RET_SUBMIT", urb.seqnum, 0),
                Reply::Unlink { ret, .. } => ("RET_UNLINK", ret.seqnum, ret.status),
            })
            .collect()
    }

    /// The writer's unlink rule, as `WriteCtx::unlink` applies it once the device said the
    /// URB is no longer pending there.
    fn unlink(replies: &mut Replies, seqnum: u32, target: u32) {
        match replies.cancel_submit(target) {
            Some(urb) => replies.push_unlink(
                RetUnlink {
                    seqnum,
                    status: -errno::ECONNRESET,
                },
                Some(urb),
            ),
            None => replies.push_unlink(RetUnlink { seqnum, status: 0 }, None),
        }
    }

    #[test]
    fn an_unlink_of_a_queued_completion_cancels_it() {
        let mut r = Replies::default();
        r.push_submit(urb(1), done(1));
        r.push_submit(urb(2), done(2));
        r.push_submit(urb(3), done(3));
        unlink(&mut r, 10, 2);
        assert_eq!(
            wire(&mut r),
            [
                ("RET_SUBMIT", 1, 0),
                ("RET_SUBMIT", 3, 0),
                ("RET_UNLINK", 10, -errno::ECONNRESET)
            ]
        );
        assert!(r.is_empty());
        assert_eq!(r.bytes(), 0);
    }

    #[test]
    fn an_unlink_after_the_write_answers_zero_behind_it() {
        let mut r = Replies::default();
        r.push_submit(urb(1), done(1));
        // The writer encodes everything queued and writes it: RET_SUBMIT 1 is on the wire.
        assert_eq!(wire(&mut r), [("RET_SUBMIT", 1, 0)]);
        // The unlink, read meanwhile, is handled after that write finished.
        unlink(&mut r, 11, 1);
        assert_eq!(wire(&mut r), [("RET_UNLINK", 11, 0)]);
    }

    #[test]
    fn a_second_unlink_of_the_same_urb_cancels_nothing_more() {
        let mut r = Replies::default();
        r.push_submit(urb(5), done(5));
        unlink(&mut r, 20, 5);
        unlink(&mut r, 21, 5);
        assert_eq!(
            wire(&mut r),
            [
                ("RET_UNLINK", 20, -errno::ECONNRESET),
                ("RET_UNLINK", 21, 0)
            ]
        );
    }

    #[test]
    fn sizes_follow_the_queue() {
        let mut r = Replies::default();
        r.push_submit(urb(1), done(1));
        r.push_unlink(
            RetUnlink {
                seqnum: 2,
                status: 0,
            },
            None,
        );
        assert_eq!(r.bytes(), 48 + 512 + 48);
        assert!(r.cancel_submit(1).is_some());
        assert_eq!(r.bytes(), 48);
        assert!(r.cancel_submit(1).is_none());
    }
}
