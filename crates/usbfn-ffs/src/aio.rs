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

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::io::unix::AsyncFd;
use tokio::sync::{Notify, oneshot};

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

/// One request: its iocb and the buffer the kernel reads or fills, kept at a fixed address
/// (boxed) until its event is reaped.
#[derive(Debug)]
struct Op {
    iocb: Iocb,
    /// The request this one follows: not submitted if that one was refused.
    after: Option<u64>,
    read_buf: Vec<u8>,
    _write_buf: Bytes,
    _file: Arc<File>,
    tx: Option<oneshot::Sender<OpResult>>,
}

#[derive(Debug)]
struct Inner {
    /// Every request not yet reaped, queued or in the kernel.
    ops: HashMap<u64, Box<Op>>,
    /// Requests queued but not yet given to the kernel, in order.
    queued: Vec<u64>,
    next: u64,
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
            inner: Mutex::new(Inner {
                ops: HashMap::new(),
                queued: Vec::new(),
                next: 1,
            }),
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

    /// Queue the requests of one transfer, in order, each a read of up to `capacity`
    /// bytes (None) or a write of the bytes given; every one after the first follows it
    /// (it is not submitted if the first is refused). Returns each request's key and where
    /// its result arrives; `Err` when the device is closed or its request limit is
    /// reached (then nothing is queued).
    pub(crate) fn submit(
        &self,
        file: &Arc<File>,
        capacity: usize,
        requests: Vec<Option<Bytes>>,
    ) -> Result<Vec<(u64, oneshot::Receiver<OpResult>)>, std::io::Error> {
        let mut inner = self.lock();
        if self.closed.load(Ordering::SeqCst) {
            return Err(std::io::Error::from_raw_os_error(libc::ESHUTDOWN));
        }
        if inner.ops.len() + requests.len() > MAX_IN_FLIGHT {
            return Err(std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                "AIO requests in flight (MAX_IN_FLIGHT)",
            ));
        }
        let mut out = Vec::with_capacity(requests.len());
        let mut first = None;
        for write in requests {
            let key = inner.next;
            inner.next += 1;
            let (tx, rx) = oneshot::channel();
            let (opcode, read_buf, write_buf) = match write {
                Some(data) => (IOCB_CMD_PWRITE, Vec::new(), data),
                None => (IOCB_CMD_PREAD, vec![0u8; capacity], Bytes::new()),
            };
            let mut op = Box::new(Op {
                iocb: Iocb::default(),
                after: first,
                read_buf,
                _write_buf: write_buf,
                _file: file.clone(),
                tx: Some(tx),
            });
            let (buf, len) = if opcode == IOCB_CMD_PREAD {
                (op.read_buf.as_mut_ptr() as u64, op.read_buf.len() as u64)
            } else {
                (op._write_buf.as_ptr() as u64, op._write_buf.len() as u64)
            };
            op.iocb = Iocb {
                aio_data: key,
                aio_lio_opcode: opcode,
                // fits: the descriptor of an open file (and below, of an OwnedFd) is
                // non-negative.
                aio_fildes: u32::try_from(file.as_raw_fd()).unwrap_or(u32::MAX),
                aio_buf: buf,
                aio_nbytes: len,
                aio_flags: IOCB_FLAG_RESFD,
                // Fits: a valid file descriptor is a non-negative i32.
                aio_resfd: u32::try_from(self.eventfd.as_raw_fd()).unwrap_or(u32::MAX),
                ..Iocb::default()
            };
            inner.ops.insert(key, op);
            inner.queued.push(key);
            first.get_or_insert(key);
            out.push((key, rx));
        }
        if inner.queued.len() >= MAX_BATCH {
            self.flush_locked(&mut inner);
        } else if inner.queued.len() == out.len() {
            self.flush.notify_one();
        }
        Ok(out)
    }

    /// Give every queued request to the kernel; a refused one gets its error as its result
    /// (and so do the ones that follow it).
    fn flush_locked(&self, inner: &mut Inner) {
        if inner.queued.is_empty() {
            return;
        }
        let keys = std::mem::take(&mut inner.queued);
        // Requests cancelled while queued are gone from `ops`.
        let mut list: Vec<(u64, Option<u64>, *mut Iocb)> = keys
            .iter()
            .filter_map(|k| {
                let op = inner.ops.get_mut(k)?;
                Some((*k, op.after, &raw mut op.iocb))
            })
            .collect();
        let mut refused: Vec<(u64, i64)> = Vec::new();
        let mut at = 0;
        while at < list.len() {
            let mut ptrs: Vec<*mut Iocb> = list[at..].iter().map(|e| e.2).collect();
            let t0 = std::time::Instant::now();
            #[allow(unsafe_code)] // the one call of sys's unsafe io_submit wrapper
            // SAFETY: every buffer (`read_buf`'s heap block or the `Bytes`) and iocb lives
            // in a boxed `Op` in `inner.ops` — never moved, never resized — until `reap` has
            // taken the request's event out of the kernel (or, for a request the kernel
            // refused, until it is removed below, the kernel holding no reference to it);
            // `read_buf` is not touched by anyone else meanwhile.
            let submitted = unsafe { self.ctx.submit(&mut ptrs) };
            bump(&self.stats.submit_ns, elapsed_ns(t0));
            bump(&self.stats.submit_calls, 1);
            match submitted {
                Ok(n) if n > 0 => {
                    bump(&self.stats.submitted, n as u64);
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
        for (key, res) in refused {
            if let Some(mut op) = inner.ops.remove(&key)
                && let Some(tx) = op.tx.take()
            {
                let _ = tx.send(OpResult {
                    res,
                    data: Bytes::new(),
                });
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

    /// Cancel request `key` if it is still in flight (its result still arrives) or queued
    /// (it is dropped).
    pub(crate) fn cancel(&self, key: u64) {
        let mut inner = self.lock();
        if let Some(pos) = inner.queued.iter().position(|k| *k == key) {
            inner.queued.remove(pos);
            inner.ops.remove(&key);
            return;
        }
        if let Some(op) = inner.ops.get_mut(&key) {
            op.tx = None;
            let iocb: *mut Iocb = &raw mut op.iocb;
            self.ctx.cancel(iocb);
        }
    }

    /// How many requests are in flight.
    pub(crate) fn in_flight(&self) -> usize {
        self.lock().ops.len()
    }

    /// Cancel everything in flight and refuse new submissions.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.flush.notify_one();
        let keys: Vec<u64> = self.lock().ops.keys().copied().collect();
        for key in keys {
            self.cancel(key);
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
                for ev in &events[..n] {
                    self.complete(ev);
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

    fn complete(&self, ev: &IoEvent) {
        let op = self.lock().ops.remove(&ev.data);
        let Some(mut op) = op else {
            tracing::warn!(key = ev.data, "AIO event for no request");
            return;
        };
        let data = if op.iocb.aio_lio_opcode == IOCB_CMD_PREAD && ev.res > 0 {
            let n = usize::try_from(ev.res).unwrap_or(0).min(op.read_buf.len());
            op.read_buf.truncate(n);
            Bytes::from(std::mem::take(&mut op.read_buf))
        } else {
            Bytes::new()
        };
        if let Some(tx) = op.tx.take() {
            let _ = tx.send(OpResult { res: ev.res, data });
        }
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

    #[tokio::test(flavor = "current_thread")]
    async fn requests_queued_together_go_in_one_io_submit() {
        let aio = Aio::new().expect("io_setup");
        tokio::spawn(aio.clone().reap());
        tokio::spawn(aio.clone().flusher());
        let f = file("batch", 4096, false);
        let mut rxs = Vec::new();
        for _ in 0..10 {
            let mut parts = aio.submit(&f, 512, vec![None]).expect("queued");
            rxs.push(parts.pop().expect("one part").1);
        }
        for rx in rxs {
            let r = rx.await.expect("a result");
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
        aio.close();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_refused_request_gets_its_error_and_its_follower_is_not_submitted() {
        let aio = Aio::new().expect("io_setup");
        tokio::spawn(aio.clone().reap());
        tokio::spawn(aio.clone().flusher());
        let ro = file("refused", 4096, false);
        let before = aio.submit(&ro, 16, vec![None]).expect("queued");
        // A write to a file opened read-only: io_submit refuses it (EBADF).
        let refused = aio
            .submit(
                &ro,
                0,
                vec![Some(Bytes::from_static(b"data")), Some(Bytes::new())],
            )
            .expect("queued");
        let after = aio.submit(&ro, 16, vec![None]).expect("queued");
        let mut results = Vec::new();
        for (_, rx) in before.into_iter().chain(refused).chain(after) {
            results.push(rx.await.expect("a result").res);
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
        let parts = aio.submit(&f, 8, vec![None]).expect("queued");
        aio.cancel(parts[0].0);
        assert_eq!(aio.in_flight(), 0);
        let mut rxs = Vec::new();
        for _ in 0..MAX_BATCH {
            rxs.extend(aio.submit(&f, 8, vec![None]).expect("queued"));
        }
        assert_eq!(
            aio.stats.submitted.load(Ordering::Relaxed),
            MAX_BATCH as u64
        );
        tokio::spawn(aio.clone().reap());
        for (_, rx) in rxs {
            assert_eq!(rx.await.expect("a result").res, 8);
        }
        // The limit counts queued requests too.
        aio.close();
        assert!(aio.submit(&f, 8, vec![None]).is_err(), "closed");
    }
}
