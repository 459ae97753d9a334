//! Many outstanding transfers per endpoint file: Linux AIO, completions signalled on one
//! eventfd and reaped by one tokio task (as the kernel's `tools/usb/ffs-aio-example` does),
//! never a thread per transfer. Every submitted request is reaped exactly once: a
//! cancellation (`io_cancel`) dequeues it and its event still arrives, with an error result.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::io::unix::AsyncFd;
use tokio::sync::oneshot;

use crate::sys::{
    self, AioContext, IOCB_CMD_PREAD, IOCB_CMD_PWRITE, IOCB_FLAG_RESFD, IoEvent, Iocb,
};

/// Requests in flight per device (the AIO context's size): the limit a service hits with
/// `STATUS_INSUFFICIENT_RESOURCES`-style refusals.
pub const MAX_IN_FLIGHT: usize = 1024;
// io_setup takes the context's size as a u32.
const _: () = assert!(MAX_IN_FLIGHT <= u32::MAX as usize);

/// The result of one request: bytes moved (or a negative errno) and, for reads, the data.
#[derive(Debug)]
pub(crate) struct OpResult {
    pub(crate) res: i64,
    pub(crate) data: Bytes,
}

/// One request: its iocb and the buffer the kernel reads or fills, kept at a fixed address
/// (boxed) until its event is reaped.
#[derive(Debug)]
struct Op {
    iocb: Iocb,
    read_buf: Vec<u8>,
    _write_buf: Bytes,
    _file: Arc<File>,
    tx: Option<oneshot::Sender<OpResult>>,
}

#[derive(Debug)]
struct Inner {
    ops: HashMap<u64, Box<Op>>,
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
}

impl Aio {
    /// Set up the context; the reaper task must be spawned with [`Aio::reap`].
    pub(crate) fn new() -> std::io::Result<Arc<Self>> {
        Ok(Arc::new(Aio {
            // fits: MAX_IN_FLIGHT is a constant asserted below u32::MAX next to it.
            ctx: AioContext::new(u32::try_from(MAX_IN_FLIGHT).unwrap_or(u32::MAX))?,
            inner: Mutex::new(Inner {
                ops: HashMap::new(),
                next: 1,
            }),
            eventfd: sys::eventfd()?,
            closed: AtomicBool::new(false),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The submission lock, also taken by other I/O on endpoint files (halting), so the
    /// kernel's per-file mutex is never contended (FunctionFS answers a contended
    /// non-blocking file with EAGAIN).
    pub(crate) fn with_submit_lock<T>(&self, f: impl FnOnce() -> T) -> T {
        let _guard = self.lock();
        f()
    }

    /// Submit a read of up to `capacity` bytes (`write` None) or a write of `write`.
    /// Returns the request's key and where its result arrives; `Err` when the device's
    /// request limit is reached or the submission failed.
    pub(crate) fn submit(
        &self,
        file: &Arc<File>,
        capacity: usize,
        write: Option<Bytes>,
    ) -> Result<(u64, oneshot::Receiver<OpResult>), std::io::Error> {
        let mut inner = self.lock();
        if self.closed.load(Ordering::SeqCst) {
            return Err(std::io::Error::from_raw_os_error(libc::ESHUTDOWN));
        }
        if inner.ops.len() >= MAX_IN_FLIGHT {
            return Err(std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                "AIO requests in flight (MAX_IN_FLIGHT)",
            ));
        }
        let key = inner.next;
        inner.next += 1;
        let (tx, rx) = oneshot::channel();
        let (opcode, read_buf, write_buf) = match write {
            Some(data) => (IOCB_CMD_PWRITE, Vec::new(), data),
            None => (IOCB_CMD_PREAD, vec![0u8; capacity], Bytes::new()),
        };
        let mut op = Box::new(Op {
            iocb: Iocb::default(),
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
            // fits: the descriptor of an open file (and below, of an OwnedFd) is non-negative.
            aio_fildes: u32::try_from(file.as_raw_fd()).unwrap_or(u32::MAX),
            aio_buf: buf,
            aio_nbytes: len,
            aio_flags: IOCB_FLAG_RESFD,
            aio_resfd: u32::try_from(self.eventfd.as_raw_fd()).unwrap_or(u32::MAX),
            ..Iocb::default()
        };
        let iocb: *mut Iocb = &raw mut op.iocb;
        #[allow(unsafe_code)] // the one call of sys's unsafe io_submit wrapper
        // SAFETY: the buffer (`read_buf`'s heap block or the `Bytes`) and the iocb live in
        // the boxed `Op`, which stays in `inner.ops` — never moved, never resized — until
        // `reap` has taken the request's event out of the kernel; `read_buf` is not touched
        // by anyone else meanwhile.
        let submitted = unsafe { self.ctx.submit(iocb) };
        match submitted {
            Ok(()) => {
                inner.ops.insert(key, op);
                Ok((key, rx))
            }
            Err(e) => Err(e),
        }
    }

    /// Cancel request `key` if it is still in flight (its result still arrives).
    pub(crate) fn cancel(&self, key: u64) {
        let mut inner = self.lock();
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
            if let Ok(Ok(mut guard)) = ready {
                let _ = sys::eventfd_drain(self.eventfd.as_fd());
                guard.clear_ready();
            }
            loop {
                let n = match self.ctx.get_events(&mut events) {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::warn!(error = %e, "io_getevents");
                        break;
                    }
                };
                for ev in &events[..n] {
                    self.complete(ev);
                }
                if n < events.len() {
                    break;
                }
            }
        }
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
