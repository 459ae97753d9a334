//! Many outstanding transfers per endpoint file: Linux AIO, completions signalled on one
//! eventfd and reaped by one tokio task (as the kernel's `tools/usb/ffs-aio-example` does),
//! never a thread per transfer. Every submitted request is reaped exactly once: a
//! cancellation (`io_cancel`) dequeues it and its event still arrives, with an error result.
//!
//! Submissions are batched: a request is queued in user space and a flusher task gives
//! everything queued to the kernel in one `io_submit` (on a current-thread runtime it runs
//! after the service tasks the reaper woke, so the requests of one reaper pass go in one
//! system call instead of one each). A request the kernel refuses gets its error as its
//! result; a request made to follow another (a zero-length packet after its data) is not
//! submitted when that one was refused. I/O on an endpoint file outside AIO
//! ([`Aio::with_submit_lock`]) submits what is queued first, so the order on the wire is the
//! order of the calls.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;

use crate::sys::{
    self, AioContext, IOCB_CMD_PREAD, IOCB_CMD_PWRITE, IOCB_FLAG_RESFD, IoEvent, Iocb,
};

/// Requests in flight per device (the AIO context's size): the limit a service hits with
/// `STATUS_INSUFFICIENT_RESOURCES`-style refusals. Room for Gadget Zero's controller depth
/// (`CONTROLLER_QLEN` 256 per direction) twice over: on every SET_INTERFACE the previous
/// generation's cancelled requests are still being reaped while the next one is queued (at
/// 1024 the new OUT transfers were refused and the sink starved).
pub const MAX_IN_FLIGHT: usize = 4096;
// io_setup takes the context's size as a u32.
const _: () = assert!(MAX_IN_FLIGHT <= u32::MAX as usize);

/// The result of one request: bytes moved (or a negative errno) and, for reads, the data.
#[derive(Debug)]
pub(crate) struct OpResult {
    pub(crate) res: i64,
    pub(crate) data: Bytes,
}

/// Requests given to the kernel in one `io_submit` at most; queueing this many submits at
/// once instead of waiting for the flusher.
const MAX_BATCH: usize = 64;

/// The keys of one transfer's requests: the data request and, when asked for, the
/// zero-length packet that follows it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Keys {
    pub(crate) data: u64,
    pub(crate) zlp: Option<u64>,
}

/// One request: its iocb and the buffer the kernel reads or fills, kept at a fixed address
/// (boxed) until its event is reaped. The box is reused by the slot's next request, so a
/// steady stream of transfers allocates nothing here.
#[derive(Debug, Default)]
struct Op {
    iocb: Iocb,
    /// The request this one follows: not submitted if that one was refused.
    after: Option<u64>,
    read_buf: Vec<u8>,
    write_buf: Bytes,
    /// Keeps the endpoint file open while the kernel holds the request.
    file: Option<Arc<File>>,
}

/// Where a slot's request is.
#[derive(Debug)]
enum State {
    /// No request.
    Free,
    /// Queued in user space, not yet given to the kernel.
    Queued,
    /// Given to the kernel; its event is not reaped yet.
    InFlight,
    /// Reaped (or refused): the result waits for its transfer to take it.
    Done(OpResult),
}

/// One entry of the request table. A key names one use of a slot: its index and the
/// slot's generation then, so a stale key (a request already finished) never touches the
/// slot's next request.
#[derive(Debug)]
struct Slot {
    op: Box<Op>,
    generation: u32,
    state: State,
    /// Whether a transfer still wants the result; when not, the result is dropped as it
    /// arrives and the slot freed.
    wanted: bool,
    waker: Option<Waker>,
}

fn key_of(index: usize, generation: u32) -> u64 {
    // fits: the table never grows past MAX_IN_FLIGHT plus the results not yet taken, far
    // below 2^32 entries.
    (u64::from(generation) << 32) | (index as u64 & 0xffff_ffff)
}

#[derive(Debug, Default)]
struct Inner {
    /// The request table, indexed by the low half of a key.
    slots: Vec<Slot>,
    /// Free slots, reused last-freed first.
    free: Vec<usize>,
    /// Requests queued or in the kernel (what MAX_IN_FLIGHT limits).
    live: usize,
    /// Requests queued but not yet given to the kernel, in order.
    queued: Vec<u64>,
}

impl Inner {
    /// The slot of `key` if the key names its current request.
    fn slot(&mut self, key: u64) -> Option<&mut Slot> {
        let index = usize::try_from(key & 0xffff_ffff).ok()?;
        let slot = self.slots.get_mut(index)?;
        let current = u64::from(slot.generation) == key >> 32 && !matches!(slot.state, State::Free);
        current.then_some(slot)
    }

    /// A free slot (a new one when none is), holding nothing.
    fn take_free(&mut self) -> (usize, &mut Slot) {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot {
                    op: Box::default(),
                    generation: 0,
                    state: State::Free,
                    wanted: false,
                    waker: None,
                });
                self.slots.len() - 1
            }
        };
        (index, &mut self.slots[index])
    }

    /// Free `key`'s slot: drop what the request held, retire the key.
    fn release(&mut self, key: u64) {
        let Ok(index) = usize::try_from(key & 0xffff_ffff) else {
            return;
        };
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        slot.state = State::Free;
        slot.generation = slot.generation.wrapping_add(1);
        slot.wanted = false;
        slot.waker = None;
        slot.op.read_buf = Vec::new();
        slot.op.write_buf = Bytes::new();
        slot.op.file = None;
        slot.op.after = None;
        self.free.push(index);
    }

    /// Deliver the result of `key` (reaped or refused): kept for its transfer, whose waker
    /// is returned, or dropped when no transfer wants it.
    fn finish(&mut self, key: u64, res: i64) -> Option<Waker> {
        let slot = self.slot(key)?;
        let was_live = matches!(slot.state, State::Queued | State::InFlight);
        let data = if slot.op.iocb.aio_lio_opcode == IOCB_CMD_PREAD && res > 0 {
            let mut buf = std::mem::take(&mut slot.op.read_buf);
            buf.truncate(usize::try_from(res).unwrap_or(0));
            Bytes::from(buf)
        } else {
            Bytes::new()
        };
        let waker = if slot.wanted {
            slot.state = State::Done(OpResult { res, data });
            slot.op.write_buf = Bytes::new();
            slot.op.file = None;
            slot.waker.take()
        } else {
            self.release(key);
            None
        };
        if was_live {
            self.live -= 1;
        }
        waker
    }
}

/// A device's AIO context.
#[derive(Debug)]
pub(crate) struct Aio {
    // Declared first, so io_destroy (which waits for every request in flight) runs before
    // the buffers in `inner` are freed.
    ctx: AioContext,
    inner: Mutex<Inner>,
    eventfd: OwnedFd,
    closed: AtomicBool,
    /// Wakes the flusher when the first request is queued.
    flush: Notify,
    stats: Stats,
}

/// Counters of the AIO path (what a profile of the FFS data path needs: system calls and
/// wake-ups per completed request), logged when the device closes.
#[derive(Debug, Default)]
struct Stats {
    /// `io_submit` calls and the requests they queued.
    submit_calls: AtomicU64,
    /// Time spent inside `io_submit` and `io_getevents` (ns), and in the reaper's passes
    /// around them (delivering results), to tell the kernel's share from user space's.
    submit_ns: AtomicU64,
    getevents_ns: AtomicU64,
    reap_ns: AtomicU64,
    submitted: AtomicU64,
    /// Reaper passes woken by the eventfd, and by the fallback timer.
    wakeups: AtomicU64,
    timer_wakeups: AtomicU64,
    /// `io_getevents` calls and the events they returned.
    getevents_calls: AtomicU64,
    events: AtomicU64,
    /// Most events one reaper pass delivered.
    max_batch: AtomicU64,
}

fn elapsed_ns(since: std::time::Instant) -> u64 {
    u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

fn bump(c: &AtomicU64, by: u64) {
    c.fetch_add(by, Ordering::Relaxed);
}

impl Aio {
    /// Set up the context; the reaper task must be spawned with [`Aio::reap`].
    pub(crate) fn new() -> std::io::Result<Arc<Self>> {
        Ok(Arc::new(Aio {
            // fits: MAX_IN_FLIGHT is a constant asserted below u32::MAX next to it.
            ctx: AioContext::new(u32::try_from(MAX_IN_FLIGHT).unwrap_or(u32::MAX))?,
            inner: Mutex::new(Inner::default()),
            eventfd: sys::eventfd()?,
            closed: AtomicBool::new(false),
            flush: Notify::new(),
            stats: Stats::default(),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The submission lock, also taken by other I/O on endpoint files (halting), so the
    /// kernel's per-file mutex is never contended (FunctionFS answers a contended
    /// non-blocking file with EAGAIN). What is queued is submitted first.
    pub(crate) fn with_submit_lock<T>(&self, f: impl FnOnce() -> T) -> T {
        let mut guard = self.lock();
        self.flush_locked(&mut guard);
        f()
    }

    /// Queue the requests of one transfer: a read of up to `capacity` bytes (`write`
    /// None) or a write of the bytes given, then, when `zlp`, a zero-length write that
    /// follows it (not submitted if the first is refused). Returns the requests' keys,
    /// whose results [`Aio::poll_result`] gives; `Err` when the device is closed or its
    /// request limit is reached (then nothing is queued).
    pub(crate) fn submit(
        &self,
        file: &Arc<File>,
        capacity: usize,
        write: Option<Bytes>,
        zlp: bool,
    ) -> Result<Keys, std::io::Error> {
        let mut inner = self.lock();
        if self.closed.load(Ordering::SeqCst) {
            return Err(std::io::Error::from_raw_os_error(libc::ESHUTDOWN));
        }
        let count = 1 + usize::from(zlp);
        if inner.live + count > MAX_IN_FLIGHT {
            return Err(std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                "AIO requests in flight (MAX_IN_FLIGHT)",
            ));
        }
        // fits: a valid file descriptor is a non-negative i32 (the file's and the eventfd's).
        let fildes = u32::try_from(file.as_raw_fd()).unwrap_or(u32::MAX);
        let resfd = u32::try_from(self.eventfd.as_raw_fd()).unwrap_or(u32::MAX);
        let mut queue = |write: Option<Bytes>, after: Option<u64>| {
            let (index, slot) = inner.take_free();
            let key = key_of(index, slot.generation);
            let op = &mut *slot.op;
            let (opcode, buf, len) = match write {
                Some(data) => {
                    op.write_buf = data;
                    let (p, n) = (op.write_buf.as_ptr(), op.write_buf.len());
                    (IOCB_CMD_PWRITE, p as u64, n as u64)
                }
                None => {
                    op.read_buf = vec![0u8; capacity];
                    let (p, n) = (op.read_buf.as_mut_ptr(), op.read_buf.len());
                    (IOCB_CMD_PREAD, p as u64, n as u64)
                }
            };
            op.after = after;
            op.file = Some(file.clone());
            op.iocb = Iocb {
                aio_data: key,
                aio_lio_opcode: opcode,
                aio_fildes: fildes,
                aio_buf: buf,
                aio_nbytes: len,
                aio_flags: IOCB_FLAG_RESFD,
                aio_resfd: resfd,
                ..Iocb::default()
            };
            slot.state = State::Queued;
            slot.wanted = true;
            inner.live += 1;
            inner.queued.push(key);
            key
        };
        let data = queue(write, None);
        let zlp = zlp.then(|| queue(Some(Bytes::new()), Some(data)));
        if inner.queued.len() >= MAX_BATCH {
            self.flush_locked(&mut inner);
        } else if inner.queued.len() == count {
            self.flush.notify_one();
        }
        Ok(Keys { data, zlp })
    }

    /// Give every queued request to the kernel; a refused one gets its error as its result
    /// (and so do the ones that follow it).
    fn flush_locked(&self, inner: &mut Inner) {
        if inner.queued.is_empty() {
            return;
        }
        let keys = std::mem::take(&mut inner.queued);
        // Requests cancelled while queued are gone from `queued` already.
        let mut list: Vec<(u64, Option<u64>, *mut Iocb)> = keys
            .iter()
            .filter_map(|k| {
                let slot = inner.slot(*k)?;
                Some((*k, slot.op.after, &raw mut slot.op.iocb))
            })
            .collect();
        let mut refused: Vec<(u64, i64)> = Vec::new();
        let mut at = 0;
        while at < list.len() {
            let mut ptrs: Vec<*mut Iocb> = list[at..].iter().map(|e| e.2).collect();
            let t0 = std::time::Instant::now();
            #[allow(unsafe_code)] // the one call of sys's unsafe io_submit wrapper
            // SAFETY: every buffer (`read_buf`'s heap block or the `Bytes`) and iocb lives
            // in a boxed `Op` of a slot of `inner.slots` — the box never moved or freed,
            // the buffer never resized or dropped, while the slot's request is in the
            // kernel: a slot is released or its buffers taken only by `Inner::finish`
            // (after `reap` has taken the request's event out of the kernel, or for a
            // request the kernel refused, which it holds no reference to) and `cancel` of
            // a request still queued in user space; `read_buf` is not touched by anyone
            // else meanwhile.
            let submitted = unsafe { self.ctx.submit(&mut ptrs) };
            bump(&self.stats.submit_ns, elapsed_ns(t0));
            bump(&self.stats.submit_calls, 1);
            match submitted {
                Ok(n) if n > 0 => {
                    bump(&self.stats.submitted, n as u64);
                    for &(key, _, _) in &list[at..at + n] {
                        if let Some(slot) = inner.slot(key) {
                            slot.state = State::InFlight;
                        }
                    }
                    at += n;
                }
                other => {
                    let errno = match other {
                        Err(e) => e.raw_os_error().unwrap_or(libc::EIO),
                        Ok(_) => libc::EAGAIN,
                    };
                    let (key, _, _) = list[at];
                    refused.push((key, -i64::from(errno)));
                    at += 1;
                    while let Some(&(next, Some(after), _)) = list.get(at) {
                        if after != key {
                            break;
                        }
                        refused.push((next, -i64::from(errno)));
                        at += 1;
                    }
                }
            }
        }
        list.clear();
        // The queue's buffer goes back for the next batch.
        let mut keys = keys;
        keys.clear();
        if inner.queued.is_empty() {
            inner.queued = keys;
        }
        for (key, res) in refused {
            if let Some(waker) = inner.finish(key, res) {
                waker.wake();
            }
        }
    }

    /// The flusher: submit what is queued whenever the first request of a batch is queued.
    /// Ends when the device is closed.
    pub(crate) async fn flusher(self: Arc<Self>) {
        loop {
            self.flush.notified().await;
            let mut inner = self.lock();
            self.flush_locked(&mut inner);
            if self.closed.load(Ordering::SeqCst) {
                return;
            }
        }
    }

    /// The result of request `key`: `Ready(None)` when it was cancelled (or the key is
    /// not a request's), else `Pending` until it is reaped. Taking the result frees the
    /// request's slot.
    pub(crate) fn poll_result(&self, key: u64, cx: &mut Context<'_>) -> Poll<Option<OpResult>> {
        let mut inner = self.lock();
        let Some(slot) = inner.slot(key) else {
            return Poll::Ready(None);
        };
        if !slot.wanted {
            return Poll::Ready(None);
        }
        if let State::Done(_) = slot.state {
            let State::Done(result) = std::mem::replace(&mut slot.state, State::Free) else {
                return Poll::Ready(None);
            };
            inner.release(key);
            return Poll::Ready(Some(result));
        }
        match &slot.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => slot.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Nobody will take request `key`'s result (its transfer ended on an earlier
    /// request's error): dropped as it arrives. The request itself goes on.
    pub(crate) fn forget(&self, key: u64) {
        let mut inner = self.lock();
        let Some(slot) = inner.slot(key) else { return };
        if let State::Done(_) = slot.state {
            inner.release(key);
        } else {
            slot.wanted = false;
            slot.waker = None;
        }
    }

    /// Cancel request `key` if it is still in flight (its event still arrives and is
    /// dropped) or queued (it is dropped); a result not yet taken is dropped. A transfer
    /// polling it sees it gone.
    pub(crate) fn cancel(&self, key: u64) {
        let waker = {
            let mut inner = self.lock();
            self.cancel_locked(&mut inner, key)
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn cancel_locked(&self, inner: &mut Inner, key: u64) -> Option<Waker> {
        let slot = inner.slot(key)?;
        let waker = slot.waker.take();
        match slot.state {
            State::Free => {}
            State::Done(_) => inner.release(key),
            State::InFlight => {
                slot.wanted = false;
                let iocb: *mut Iocb = &raw mut slot.op.iocb;
                self.ctx.cancel(iocb);
            }
            State::Queued => {
                if let Some(pos) = inner.queued.iter().position(|k| *k == key) {
                    inner.queued.remove(pos);
                }
                inner.release(key);
                inner.live -= 1;
            }
        }
        waker
    }

    /// How many requests are in flight (queued or in the kernel).
    pub(crate) fn in_flight(&self) -> usize {
        self.lock().live
    }

    /// Cancel everything in flight and refuse new submissions.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.flush.notify_one();
        let wakers: Vec<Waker> = {
            let mut inner = self.lock();
            let keys: Vec<u64> = inner
                .slots
                .iter()
                .enumerate()
                .filter(|(_, s)| matches!(s.state, State::Queued | State::InFlight))
                .map(|(i, s)| key_of(i, s.generation))
                .collect();
            keys.into_iter()
                .filter_map(|k| self.cancel_locked(&mut inner, k))
                .collect()
        };
        for w in wakers {
            w.wake();
        }
    }

    /// The reaper: wait on the eventfd, deliver every completed request. Ends when the
    /// device is closed and nothing is in flight.
    pub(crate) async fn reap(self: Arc<Self>) {
        let fd: AsyncFd<OwnedFd> = match sys::async_readable(&self.eventfd) {
            Ok(fd) => fd,
            Err(e) => {
                tracing::error!(error = %e, "cannot watch the AIO eventfd; transfers will not complete");
                return;
            }
        };
        let mut events = [IoEvent::default(); 64];
        let mut wakers: Vec<Waker> = Vec::new();
        loop {
            if self.closed.load(Ordering::SeqCst) && self.in_flight() == 0 {
                return;
            }
            let ready =
                tokio::time::timeout(std::time::Duration::from_millis(200), fd.readable()).await;
            match ready {
                Ok(Ok(mut guard)) => {
                    bump(&self.stats.wakeups, 1);
                    let _ = sys::eventfd_drain(self.eventfd.as_fd());
                    guard.clear_ready();
                }
                _ => bump(&self.stats.timer_wakeups, 1),
            }
            let mut batch = 0u64;
            let pass = std::time::Instant::now();
            loop {
                bump(&self.stats.getevents_calls, 1);
                let t0 = std::time::Instant::now();
                let got = self.ctx.get_events(&mut events);
                bump(&self.stats.getevents_ns, elapsed_ns(t0));
                let n = match got {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::warn!(error = %e, "io_getevents");
                        break;
                    }
                };
                {
                    // One lock for the whole batch; the tasks are woken after it is let go.
                    let mut inner = self.lock();
                    for ev in &events[..n] {
                        if inner.slot(ev.data).is_none() {
                            tracing::warn!(key = ev.data, "AIO event for no request");
                            continue;
                        }
                        wakers.extend(inner.finish(ev.data, ev.res));
                    }
                }
                for w in wakers.drain(..) {
                    w.wake();
                }
                // fits: n <= 64.
                batch += n as u64;
                if n < events.len() {
                    break;
                }
            }
            bump(&self.stats.reap_ns, elapsed_ns(pass));
            bump(&self.stats.events, batch);
            self.stats.max_batch.fetch_max(batch, Ordering::Relaxed);
        }
    }

    /// Log the counters (at close).
    pub(crate) fn log_stats(&self) {
        let s = &self.stats;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let events = get(&s.events);
        let wakeups = get(&s.wakeups) + get(&s.timer_wakeups);
        tracing::info!(
            io_submit_calls = get(&s.submit_calls),
            requests_submitted = get(&s.submitted),
            eventfd_wakeups = get(&s.wakeups),
            timer_wakeups = get(&s.timer_wakeups),
            io_getevents_calls = get(&s.getevents_calls),
            io_submit_us = get(&s.submit_ns) / 1000,
            io_getevents_us = get(&s.getevents_ns) / 1000,
            reaper_pass_us = get(&s.reap_ns) / 1000,
            events_reaped = events,
            events_per_wakeup = format!("{:.2}", events as f64 / wakeups.max(1) as f64),
            max_events_per_wakeup = get(&s.max_batch),
            "aio statistics"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A file of `len` bytes in the test's temporary directory (AIO on a regular file
    /// completes at once, which is enough to check submission and reaping).
    fn file(name: &str, len: usize, writable: bool) -> Arc<File> {
        let path =
            std::env::temp_dir().join(format!("usbfn-ffs-aio-{}-{name}", std::process::id()));
        let mut f = File::create(&path).expect("create");
        f.write_all(&vec![7u8; len]).expect("fill");
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(writable)
            .open(&path)
            .expect("open");
        let _ = std::fs::remove_file(&path);
        Arc::new(f)
    }

    /// The result of request `key`, once reaped.
    async fn result(aio: &Aio, key: u64) -> Option<OpResult> {
        std::future::poll_fn(|cx| aio.poll_result(key, cx)).await
    }

    #[tokio::test(flavor = "current_thread")]
    async fn requests_queued_together_go_in_one_io_submit() {
        let aio = Aio::new().expect("io_setup");
        tokio::spawn(aio.clone().reap());
        tokio::spawn(aio.clone().flusher());
        let f = file("batch", 4096, false);
        let mut keys = Vec::new();
        for _ in 0..10 {
            keys.push(aio.submit(&f, 512, None, false).expect("queued").data);
        }
        for key in keys {
            let r = result(&aio, key).await.expect("a result");
            assert_eq!(r.res, 512);
            assert_eq!(&r.data[..], &[7u8; 512][..]);
        }
        let s = &aio.stats;
        assert_eq!(s.submitted.load(Ordering::Relaxed), 10);
        assert_eq!(
            s.submit_calls.load(Ordering::Relaxed),
            1,
            "one io_submit for the batch"
        );
        assert_eq!(aio.in_flight(), 0);
        // The slots are reused: a second round allocates no new ones.
        let before = aio.lock().slots.len();
        let again = aio.submit(&f, 512, None, false).expect("queued").data;
        assert_eq!(result(&aio, again).await.expect("a result").res, 512);
        assert_eq!(aio.lock().slots.len(), before);
        assert!(
            result(&aio, again).await.is_none(),
            "a taken result's key names no request"
        );
        aio.close();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_refused_request_gets_its_error_and_its_follower_is_not_submitted() {
        let aio = Aio::new().expect("io_setup");
        tokio::spawn(aio.clone().reap());
        tokio::spawn(aio.clone().flusher());
        let ro = file("refused", 4096, false);
        let before = aio.submit(&ro, 16, None, false).expect("queued");
        // A write to a file opened read-only: io_submit refuses it (EBADF).
        let refused = aio
            .submit(&ro, 0, Some(Bytes::from_static(b"data")), true)
            .expect("queued");
        let after = aio.submit(&ro, 16, None, false).expect("queued");
        let keys = [
            Some(before.data),
            Some(refused.data),
            refused.zlp,
            Some(after.data),
        ];
        let mut results = Vec::new();
        for key in keys {
            let key = key.expect("a key");
            results.push(result(&aio, key).await.expect("a result").res);
        }
        assert_eq!(
            results,
            [16, -i64::from(libc::EBADF), -i64::from(libc::EBADF), 16]
        );
        // The follower was never given to the kernel: 2 of the 4 were submitted.
        assert_eq!(aio.stats.submitted.load(Ordering::Relaxed), 2);
        assert_eq!(aio.in_flight(), 0);
        aio.close();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_request_cancelled_while_queued_is_dropped_and_a_full_batch_goes_at_once() {
        let aio = Aio::new().expect("io_setup");
        let f = file("cancel", 4096, false);
        // No flusher yet: the requests stay queued.
        let first = aio.submit(&f, 8, None, false).expect("queued").data;
        aio.cancel(first);
        assert_eq!(aio.in_flight(), 0);
        assert!(result(&aio, first).await.is_none(), "cancelled: gone");
        let mut keys = Vec::new();
        for _ in 0..MAX_BATCH {
            keys.push(aio.submit(&f, 8, None, false).expect("queued").data);
        }
        assert_eq!(
            aio.stats.submitted.load(Ordering::Relaxed),
            MAX_BATCH as u64
        );
        tokio::spawn(aio.clone().reap());
        for key in keys {
            assert_eq!(result(&aio, key).await.expect("a result").res, 8);
        }
        // The limit counts queued requests too.
        aio.close();
        assert!(aio.submit(&f, 8, None, false).is_err(), "closed");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_forgotten_result_is_dropped_when_it_arrives() {
        let aio = Aio::new().expect("io_setup");
        tokio::spawn(aio.clone().reap());
        tokio::spawn(aio.clone().flusher());
        let f = file("forget", 4096, false);
        let forgotten = aio.submit(&f, 8, None, false).expect("queued").data;
        aio.forget(forgotten);
        let kept = aio.submit(&f, 8, None, false).expect("queued").data;
        assert_eq!(result(&aio, kept).await.expect("a result").res, 8);
        assert_eq!(aio.in_flight(), 0);
        assert!(result(&aio, forgotten).await.is_none());
        let inner = aio.lock();
        assert!(
            inner.slots.iter().all(|s| matches!(s.state, State::Free)),
            "both slots free again"
        );
        drop(inner);
        aio.close();
    }
}
