//! Flow control of one connection: the window of URBs accepted and not yet answered, and
//! unlinks that arrive before the URB they cancel.
//!
//! **Window.** A host may queue as many URBs as it likes; the server accepts up to
//! `max_outstanding_urbs` / `max_outstanding_bytes` of them at a time and counts each until
//! its answer (RET_SUBMIT, or the RET_UNLINK that cancelled it) is written. When the window is
//! full the reader stops reading the socket until the writer has answered some: the host's
//! TCP send buffer fills and it waits, as it would for a slow device. Nothing accepted is ever
//! dropped, and memory stays bounded by the window. Only a single URB larger than the whole
//! window is refused (it could never fit).
//!
//! **Early unlinks.** vhci-hcd sends its queued CMD_UNLINKs and CMD_SUBMITs from one thread,
//! unlinks in a loop of their own, so a URB submitted and unlinked while that thread is busy
//! sending an earlier unlink can have its CMD_UNLINK on the wire *before* its CMD_SUBMIT.
//! Answering that unlink with 0 ("already completed") would make vhci give the URB back, and
//! the RET_SUBMIT that follows would then name a seqnum vhci no longer knows: it tears the
//! device down (`cannot find a urb of seqnum N`). Seqnums of one host only grow, so an unlink
//! of a seqnum the connection has not seen yet is held until that CMD_SUBMIT arrives, which
//! is then cancelled on the spot (RET_UNLINK -ECONNRESET, the URB never reaches the device),
//! or until a later seqnum shows it never will.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::SubmittedUrb;
use crate::proto::CmdUnlink;

/// URBs a connection has accepted and not yet answered.
#[derive(Debug, Default)]
pub(crate) struct Outstanding {
    /// In the device, by seqnum: completion not yet taken by the writer.
    pub(crate) in_device: HashMap<u32, SubmittedUrb>,
    /// Accepted and not yet answered on the wire (in the device, or a reply in the writer).
    pub(crate) unanswered: usize,
    /// Sum of `transfer_buffer_length` over the unanswered URBs.
    pub(crate) unanswered_bytes: usize,
}

/// Why a URB cannot be accepted.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The window is full: wait for answers.
    Full,
    /// This URB alone is larger than the whole window (`max_outstanding_bytes`).
    TooLarge,
    /// A URB with this seqnum is still unanswered.
    SeqnumInUse,
}

/// The window and its wake-up, shared by a connection's reader and writer.
#[derive(Debug)]
pub(crate) struct Window {
    state: Mutex<Outstanding>,
    /// The writer answered something: the reader may have room again.
    room: Notify,
    max_urbs: usize,
    max_bytes: usize,
}

impl Window {
    pub(crate) fn new(max_urbs: usize, max_bytes: usize) -> Arc<Window> {
        Arc::new(Window {
            state: Mutex::default(),
            room: Notify::new(),
            max_urbs: max_urbs.max(1),
            max_bytes,
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Outstanding> {
        // Nothing panics while holding it; a poisoned lock still has consistent counts.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Accept `urb` into the window, or say why not.
    pub(crate) fn try_accept(&self, urb: &SubmittedUrb) -> Result<(), Refusal> {
        let bytes = urb_bytes(urb);
        let mut s = self.lock();
        if bytes > self.max_bytes {
            return Err(Refusal::TooLarge);
        }
        if s.in_device.contains_key(&urb.seqnum) {
            return Err(Refusal::SeqnumInUse);
        }
        if s.unanswered >= self.max_urbs
            || s.unanswered_bytes.saturating_add(bytes) > self.max_bytes
        {
            return Err(Refusal::Full);
        }
        s.unanswered += 1;
        s.unanswered_bytes = s.unanswered_bytes.saturating_add(bytes);
        s.in_device.insert(urb.seqnum, urb.clone());
        Ok(())
    }

    /// Wait until the writer has answered something since the last call.
    pub(crate) async fn room(&self) {
        // `notify_one` keeps a permit when nobody waits, so an answer written between a
        // refused `try_accept` and this call is not missed.
        self.room.notified().await;
    }

    /// The URB's completion was taken from the device (its reply is now the writer's).
    pub(crate) fn take_from_device(&self, seqnum: u32) -> Option<SubmittedUrb> {
        self.lock().in_device.remove(&seqnum)
    }

    /// These URBs are answered on the wire: free their room.
    pub(crate) fn answered<'a>(&self, urbs: impl IntoIterator<Item = &'a SubmittedUrb>) {
        let mut freed = 0usize;
        {
            let mut s = self.lock();
            for urb in urbs {
                s.unanswered = s.unanswered.saturating_sub(1);
                s.unanswered_bytes = s.unanswered_bytes.saturating_sub(urb_bytes(urb));
                freed += 1;
            }
        }
        if freed > 0 {
            self.room.notify_one();
        }
    }

    /// `max_outstanding_urbs`, `max_outstanding_bytes`.
    pub(crate) fn limits(&self) -> (usize, usize) {
        (self.max_urbs, self.max_bytes)
    }
}

fn urb_bytes(urb: &SubmittedUrb) -> usize {
    crate::usize_from(urb.transfer_buffer_length)
}

/// What the reader does with a CMD_UNLINK or a CMD_SUBMIT, given the early unlinks it holds.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Early {
    /// Give the unlink to the writer now.
    Forward(CmdUnlink),
    /// The unlink was held: nothing to do yet.
    Held,
}

/// Unlinks of seqnums the connection has not seen a CMD_SUBMIT for yet.
#[derive(Debug, Default)]
pub(crate) struct EarlyUnlinks {
    /// The newest CMD_SUBMIT seqnum seen (`None` before the first).
    newest: Option<u32>,
    /// By the seqnum they cancel, with when they arrived.
    held: HashMap<u32, (CmdUnlink, Instant)>,
}

/// At most this many unlinks are held; the oldest is forwarded (answered 0) past it.
pub(crate) const MAX_EARLY_UNLINKS: usize = 1024;

/// How long an early unlink waits for its CMD_SUBMIT before it is answered as "nothing to
/// cancel". vhci sends that CMD_SUBMIT right after the unlink, from the same thread; a
/// second is far beyond that even on a loaded emulated guest.
pub(crate) const EARLY_UNLINK_HOLD: Duration = Duration::from_secs(1);

impl EarlyUnlinks {
    /// A CMD_UNLINK arrived at `now`.
    pub(crate) fn unlink(&mut self, u: CmdUnlink, now: Instant) -> Vec<Early> {
        let seen = self.newest.is_some_and(|n| not_after(u.unlink_seqnum, n));
        // A host numbers an unlink after the URB it cancels: an unlink of its own seqnum or
        // a later one cancels nothing that can still come.
        let can_come = u.unlink_seqnum != u.seqnum && not_after(u.unlink_seqnum, u.seqnum);
        if seen || !can_come {
            return vec![Early::Forward(u)];
        }
        tracing::debug!(
            seqnum = u.seqnum,
            target = u.unlink_seqnum,
            "CMD_UNLINK before its CMD_SUBMIT: held until it arrives"
        );
        let mut out = Vec::new();
        if self.held.len() >= MAX_EARLY_UNLINKS
            && let Some(oldest) = self.oldest_held()
            && let Some((old, _)) = self.held.remove(&oldest)
        {
            out.push(Early::Forward(old));
        }
        if let Some((previous, _)) = self.held.insert(u.unlink_seqnum, (u, now)) {
            // A second unlink of the same future URB: the first is answered as "nothing to
            // cancel" by the writer, this one cancels.
            out.push(Early::Forward(previous));
        }
        out.push(Early::Held);
        out
    }

    /// The held unlink whose URB is due first: the nearest seqnum after the newest seen.
    fn oldest_held(&self) -> Option<u32> {
        let reference = self.newest.unwrap_or(0);
        self.held
            .keys()
            .copied()
            .min_by_key(|k| k.wrapping_sub(reference))
    }

    /// A CMD_SUBMIT with `seqnum` arrived. Returns the held unlink that cancels it, if any,
    /// and pushes to `forward` the held unlinks whose URB can no longer come (their seqnum
    /// is older than this one).
    pub(crate) fn submit(
        &mut self,
        seqnum: u32,
        forward: &mut Vec<CmdUnlink>,
    ) -> Option<CmdUnlink> {
        self.newest = Some(match self.newest {
            Some(n) if not_after(seqnum, n) => n,
            _ => seqnum,
        });
        if self.held.is_empty() {
            return None;
        }
        let cancels = self.held.remove(&seqnum).map(|(u, _)| u);
        let stale: Vec<u32> = self
            .held
            .keys()
            .copied()
            .filter(|k| not_after(*k, seqnum))
            .collect();
        for k in stale {
            if let Some((u, _)) = self.held.remove(&k) {
                forward.push(u);
            }
        }
        cancels
    }

    /// When the first held unlink has waited [`EARLY_UNLINK_HOLD`].
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.held
            .values()
            .map(|(_, at)| *at)
            .min()
            .and_then(|at| at.checked_add(EARLY_UNLINK_HOLD))
    }

    /// Give up on held unlinks that waited [`EARLY_UNLINK_HOLD`] by `now`: they go to the
    /// writer, which answers them as cancelling nothing.
    pub(crate) fn expire(&mut self, now: Instant, forward: &mut Vec<CmdUnlink>) {
        let due: Vec<u32> = self
            .held
            .iter()
            .filter(|(_, (_, at))| at.checked_add(EARLY_UNLINK_HOLD).is_none_or(|d| d <= now))
            .map(|(k, _)| *k)
            .collect();
        for k in due {
            if let Some((u, _)) = self.held.remove(&k) {
                tracing::debug!(
                    seqnum = u.seqnum,
                    target = u.unlink_seqnum,
                    "held CMD_UNLINK: its CMD_SUBMIT never came"
                );
                forward.push(u);
            }
        }
    }
}

/// `a` is `b` or comes before it, in seqnum order (which wraps at 2^32).
fn not_after(a: u32, b: u32) -> bool {
    // Reinterpreting the wrapped difference as signed is the point of the comparison.
    #[allow(clippy::cast_possible_wrap)]
    let d = b.wrapping_sub(a) as i32;
    d >= 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Direction;

    fn urb(seqnum: u32, len: u32) -> SubmittedUrb {
        SubmittedUrb {
            seqnum,
            direction: Direction::Out,
            ep: 1,
            setup: [0; 8],
            transfer_buffer_length: len,
            number_of_packets: 0,
            transfer_flags: 0,
            iso: Vec::new(),
        }
    }

    fn cmd_unlink(seqnum: u32, target: u32) -> CmdUnlink {
        CmdUnlink {
            seqnum,
            devid: 0x1_0002,
            direction: Direction::Out,
            ep: 1,
            unlink_seqnum: target,
        }
    }

    impl EarlyUnlinks {
        fn unlink_at(&mut self, u: CmdUnlink) -> Vec<Early> {
            self.unlink(u, Instant::now())
        }
    }

    #[test]
    fn the_window_fills_and_opens_again() {
        let w = Window::new(2, 1000);
        assert_eq!(w.try_accept(&urb(1, 400)), Ok(()));
        assert_eq!(w.try_accept(&urb(1, 10)), Err(Refusal::SeqnumInUse));
        assert_eq!(w.try_accept(&urb(2, 700)), Err(Refusal::Full)); // bytes
        assert_eq!(w.try_accept(&urb(2, 600)), Ok(()));
        assert_eq!(w.try_accept(&urb(3, 1)), Err(Refusal::Full)); // count
        assert_eq!(w.try_accept(&urb(4, 1001)), Err(Refusal::TooLarge));
        let taken = w.take_from_device(1).expect("in the device");
        // Taken by the writer but not yet written: still counted.
        assert_eq!(w.try_accept(&urb(3, 1)), Err(Refusal::Full));
        w.answered([&taken]);
        assert_eq!(w.try_accept(&urb(3, 1)), Ok(()));
        let s = w.lock();
        assert_eq!((s.unanswered, s.unanswered_bytes), (2, 601));
    }

    #[tokio::test]
    async fn an_answer_before_the_wait_is_not_missed() {
        let w = Window::new(1, 100);
        w.try_accept(&urb(1, 1)).expect("room");
        assert_eq!(w.try_accept(&urb(2, 1)), Err(Refusal::Full));
        let u = w.take_from_device(1).expect("in the device");
        w.answered([&u]);
        tokio::time::timeout(std::time::Duration::from_secs(5), w.room())
            .await
            .expect("the permit from answered() wakes the waiter");
    }

    #[test]
    fn unlinks_of_seen_seqnums_go_straight_to_the_writer() {
        let mut e = EarlyUnlinks::default();
        let mut fwd = Vec::new();
        assert_eq!(e.submit(100, &mut fwd), None);
        assert_eq!(
            e.unlink_at(cmd_unlink(101, 100)),
            [Early::Forward(cmd_unlink(101, 100))]
        );
        assert_eq!(
            e.unlink_at(cmd_unlink(102, 50)),
            [Early::Forward(cmd_unlink(102, 50))]
        );
        assert!(fwd.is_empty());
    }

    #[test]
    fn an_unlink_before_its_submit_cancels_that_submit() {
        let mut e = EarlyUnlinks::default();
        let mut fwd = Vec::new();
        e.submit(27, &mut fwd);
        // vhci: CMD_UNLINK(29 → 28) overtakes CMD_SUBMIT(28).
        assert_eq!(e.unlink_at(cmd_unlink(29, 28)), [Early::Held]);
        assert_eq!(e.submit(28, &mut fwd), Some(cmd_unlink(29, 28)));
        assert!(fwd.is_empty());
        // Handled once: the next submit finds nothing held.
        assert_eq!(e.submit(30, &mut fwd), None);
    }

    #[test]
    fn a_held_unlink_whose_urb_never_comes_is_forwarded() {
        let mut e = EarlyUnlinks::default();
        let mut fwd = Vec::new();
        assert_eq!(e.unlink_at(cmd_unlink(9, 5)), [Early::Held]); // before any submit
        assert_eq!(e.submit(6, &mut fwd), None);
        assert_eq!(fwd, [cmd_unlink(9, 5)]);
    }

    #[test]
    fn unlinks_that_cannot_precede_their_urb_are_not_held() {
        let mut e = EarlyUnlinks::default();
        let mut fwd = Vec::new();
        e.submit(10, &mut fwd);
        // Of its own seqnum, or of one numbered after it.
        assert_eq!(
            e.unlink_at(cmd_unlink(12, 12)),
            [Early::Forward(cmd_unlink(12, 12))]
        );
        assert_eq!(
            e.unlink_at(cmd_unlink(13, 777)),
            [Early::Forward(cmd_unlink(13, 777))]
        );
        assert_eq!(e.deadline(), None);
    }

    #[test]
    fn a_held_unlink_expires_after_the_hold() {
        let mut e = EarlyUnlinks::default();
        let mut fwd = Vec::new();
        let t0 = Instant::now();
        e.submit(1, &mut fwd);
        assert_eq!(e.unlink(cmd_unlink(9, 5), t0), [Early::Held]);
        assert_eq!(e.deadline(), Some(t0 + EARLY_UNLINK_HOLD));
        e.expire(t0 + EARLY_UNLINK_HOLD / 2, &mut fwd);
        assert!(fwd.is_empty());
        e.expire(t0 + EARLY_UNLINK_HOLD, &mut fwd);
        assert_eq!(fwd, [cmd_unlink(9, 5)]);
        assert_eq!(e.deadline(), None);
        // Its URB arriving afterwards is an ordinary submit.
        assert_eq!(e.submit(5, &mut fwd), None);
    }

    #[test]
    fn seqnum_order_wraps() {
        assert!(not_after(u32::MAX, 0));
        assert!(!not_after(0, u32::MAX));
        assert!(not_after(7, 7));
        let mut e = EarlyUnlinks::default();
        let mut fwd = Vec::new();
        e.submit(u32::MAX - 1, &mut fwd);
        assert_eq!(e.unlink_at(cmd_unlink(2, 0)), [Early::Held]);
        assert_eq!(e.submit(u32::MAX, &mut fwd), None);
        assert_eq!(e.submit(0, &mut fwd), Some(cmd_unlink(2, 0)));
    }

    #[test]
    fn held_unlinks_are_bounded() {
        let mut e = EarlyUnlinks::default();
        let mut fwd = Vec::new();
        e.submit(0, &mut fwd);
        let mut forwarded = 0;
        for i in 0..(u32::try_from(MAX_EARLY_UNLINKS).expect("small") + 10) {
            for r in e.unlink_at(cmd_unlink(100_000 + i, 1 + i)) {
                if matches!(r, Early::Forward(_)) {
                    forwarded += 1;
                }
            }
        }
        assert_eq!(e.held.len(), MAX_EARLY_UNLINKS);
        assert_eq!(forwarded, 10);
    }
}
