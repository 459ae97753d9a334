//! The system calls FunctionFS needs that std does not wrap: mount/umount, Linux AIO
//! (`io_setup`, `io_submit`, `io_getevents`, `io_cancel`, `io_destroy`), eventfd, poll and the
//! FunctionFS ioctls. Every `unsafe` block of usbfn lives in this file, each with its reason,
//! but for the one call of [`AioContext::submit`] in `aio.rs` (the workspace denies
//! `unsafe_code`; both places allow it by name).
//! Errors come back as `std::io::Error` from errno.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

/// `IOCB_CMD_PREAD` (linux/aio_abi.h).
pub(crate) const IOCB_CMD_PREAD: u16 = 0;
/// `IOCB_CMD_PWRITE`.
pub(crate) const IOCB_CMD_PWRITE: u16 = 1;
/// `IOCB_FLAG_RESFD`: signal `aio_resfd` (an eventfd) on completion.
pub(crate) const IOCB_FLAG_RESFD: u32 = 1;

/// `FUNCTIONFS_CLEAR_HALT` = `_IO('g', 3)`.
const FUNCTIONFS_CLEAR_HALT: libc::c_ulong = 0x6703;

/// `struct iocb` of linux/aio_abi.h on a little-endian 64-bit machine (64 bytes).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Iocb {
    pub(crate) aio_data: u64,
    pub(crate) aio_key: u32,
    pub(crate) aio_rw_flags: i32,
    pub(crate) aio_lio_opcode: u16,
    pub(crate) aio_reqprio: i16,
    pub(crate) aio_fildes: u32,
    pub(crate) aio_buf: u64,
    pub(crate) aio_nbytes: u64,
    pub(crate) aio_offset: i64,
    pub(crate) aio_reserved2: u64,
    pub(crate) aio_flags: u32,
    pub(crate) aio_resfd: u32,
}

/// `struct io_event` (32 bytes).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IoEvent {
    pub(crate) data: u64,
    pub(crate) obj: u64,
    pub(crate) res: i64,
    pub(crate) res2: i64,
}

const _: () = assert!(std::mem::size_of::<Iocb>() == 64);
const _: () = assert!(std::mem::size_of::<IoEvent>() == 32);
#[cfg(not(all(
    target_os = "linux",
    target_endian = "little",
    target_pointer_width = "64"
)))]
compile_error!("usbfn-ffs lays out struct iocb for 64-bit little-endian Linux only");

fn cvt(r: libc::c_long) -> io::Result<libc::c_long> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn cstr(path: &Path) -> io::Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// `mount -t functionfs <source> <target>`.
pub(crate) fn mount_functionfs(source: &str, target: &Path) -> io::Result<()> {
    let source = CString::new(source)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains a NUL byte"))?;
    let target = cstr(target)?;
    let fstype = c"functionfs";
    // SAFETY: every pointer is a NUL-terminated string that outlives the call; `data` is null,
    // which mount(2) accepts.
    let r = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    cvt(libc::c_long::from(r)).map(drop)
}

/// `umount <target>` (lazily when busy, so a teardown never leaves the mount behind).
pub(crate) fn umount(target: &Path) -> io::Result<()> {
    let target = cstr(target)?;
    // SAFETY: `target` is a NUL-terminated string that outlives the call.
    let r = unsafe { libc::umount2(target.as_ptr(), 0) };
    if r == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EBUSY) {
        // SAFETY: as above.
        let r = unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        return cvt(libc::c_long::from(r)).map(drop);
    }
    Err(e)
}

/// A non-blocking eventfd.
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd(2) takes plain integers.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    cvt(libc::c_long::from(fd))?;
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Read (and so reset) an eventfd's counter; 0 when it was not signalled.
pub(crate) fn eventfd_drain(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let mut value = 0u64;
    // SAFETY: the buffer is 8 writable bytes, as eventfd reads require.
    let r = unsafe {
        libc::read(
            fd.as_raw_fd(),
            (&raw mut value).cast::<libc::c_void>(),
            std::mem::size_of::<u64>(),
        )
    };
    match cvt(r as libc::c_long) {
        Ok(_) => Ok(value),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
        Err(e) => Err(e),
    }
}

/// Signal an eventfd.
pub(crate) fn eventfd_signal(fd: BorrowedFd<'_>) -> io::Result<()> {
    let one = 1u64;
    // SAFETY: the buffer is 8 readable bytes, as eventfd writes require.
    let r = unsafe {
        libc::write(
            fd.as_raw_fd(),
            (&raw const one).cast::<libc::c_void>(),
            std::mem::size_of::<u64>(),
        )
    };
    cvt(r as libc::c_long).map(drop)
}

/// An AIO context (`aio_context_t`).
#[derive(Debug)]
pub(crate) struct AioContext(libc::c_ulong);

impl AioContext {
    /// `io_setup(nr_events)`.
    pub(crate) fn new(nr_events: u32) -> io::Result<Self> {
        let mut ctx: libc::c_ulong = 0;
        // SAFETY: `ctx` is a writable aio_context_t initialised to 0, as io_setup requires.
        let r = unsafe {
            libc::syscall(
                libc::SYS_io_setup,
                libc::c_long::from(nr_events),
                &raw mut ctx,
            )
        };
        cvt(r)?;
        Ok(AioContext(ctx))
    }

    /// `io_submit` of the iocbs in `list`, in order: how many the kernel queued (from the
    /// front), or the error of the first when it queued none. The caller keeps every
    /// `*iocb` and the buffer it points to alive and unmoved until the matching event has
    /// been reaped.
    ///
    /// # Safety
    ///
    /// Each iocb's `aio_buf`/`aio_nbytes` must describe memory that stays valid (and, for
    /// reads, exclusively writable by the kernel) until the completion event for its
    /// `aio_data` has been returned by [`AioContext::get_events`].
    pub(crate) unsafe fn submit(&self, list: &mut [*mut Iocb]) -> io::Result<usize> {
        let nr = libc::c_long::try_from(list.len()).unwrap_or(libc::c_long::MAX);
        // SAFETY: `list` holds `nr` pointers to valid iocbs; the buffer contract is the
        // caller's (see above).
        let r = unsafe { libc::syscall(libc::SYS_io_submit, self.0, nr, list.as_mut_ptr()) };
        usize::try_from(cvt(r)?).map_err(io::Error::other)
    }

    /// `io_cancel`: the kernel dequeues the request; its event still arrives (with an
    /// error result), so every request is reaped exactly once.
    pub(crate) fn cancel(&self, iocb: *mut Iocb) {
        let mut event = IoEvent::default();
        // SAFETY: `iocb` points at a submitted iocb the caller keeps alive; `event` is
        // writable. The result is ignored: EINPROGRESS is the normal answer and EINVAL means
        // the request already completed, whose event is reaped as usual.
        let _ = unsafe { libc::syscall(libc::SYS_io_cancel, self.0, iocb, &raw mut event) };
    }

    /// `io_getevents` without waiting: up to `out.len()` completions.
    pub(crate) fn get_events(&self, out: &mut [IoEvent]) -> io::Result<usize> {
        let mut zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let max = libc::c_long::try_from(out.len()).unwrap_or(libc::c_long::MAX);
        // SAFETY: `out` is writable for `max` events; a zero timeout never blocks.
        let r = unsafe {
            libc::syscall(
                libc::SYS_io_getevents,
                self.0,
                0 as libc::c_long,
                max,
                out.as_mut_ptr(),
                &raw mut zero,
            )
        };
        usize::try_from(cvt(r)?).map_err(io::Error::other)
    }
}

impl Drop for AioContext {
    fn drop(&mut self) {
        // SAFETY: the context was set up by io_setup and is destroyed once; io_destroy
        // cancels and waits for whatever is still in flight before it returns.
        let _ = unsafe { libc::syscall(libc::SYS_io_destroy, self.0) };
    }
}

/// `poll` on `fds` for reading, with a timeout in milliseconds (-1: forever). Returns which
/// of them are readable (or hung up).
pub(crate) fn poll_readable(fds: &[RawFd], timeout_ms: i32) -> io::Result<Vec<bool>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let n = libc::nfds_t::try_from(pfds.len()).map_err(io::Error::other)?;
    // SAFETY: `pfds` is a writable array of `n` pollfd structs.
    let r = unsafe { libc::poll(pfds.as_mut_ptr(), n, timeout_ms) };
    cvt(libc::c_long::from(r))?;
    Ok(pfds
        .iter()
        .map(|p| p.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0)
        .collect())
}

/// `ioctl(fd, FUNCTIONFS_CLEAR_HALT)`.
pub(crate) fn clear_halt(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: FUNCTIONFS_CLEAR_HALT takes no argument.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), FUNCTIONFS_CLEAR_HALT) };
    cvt(libc::c_long::from(r)).map(drop)
}

/// Whether process `pid` exists.
pub(crate) fn process_alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks for existence and permission.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Register a duplicate of `fd` with tokio's reactor for readiness.
pub(crate) fn async_readable(fd: &OwnedFd) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    let owned = fd.try_clone()?;
    // SAFETY: `owned` is a descriptor of its own (a dup), moved into the AsyncFd, so it stays
    // open and refers to the same file for the AsyncFd's whole life.
    unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(owned, tokio::io::Interest::READABLE)
    }
    .map_err(|e| e.into_parts().1)
}

/// The CPUs the calling thread may run on (`sched_getaffinity`), in ascending order.
pub(crate) fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is a plain bit array; all zeros is a valid (empty) set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a writable cpu_set_t of the size given; pid 0 is the calling thread.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    cvt(libc::c_long::from(r))?;
    let max = usize::try_from(libc::CPU_SETSIZE).unwrap_or(0);
    // SAFETY: CPU_ISSET reads bit `cpu` of the set, below CPU_SETSIZE.
    Ok((0..max)
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

/// Keep the calling thread on `cpu` (`sched_setaffinity`).
pub(crate) fn pin_thread(cpu: usize) -> io::Result<()> {
    let max = usize::try_from(libc::CPU_SETSIZE).unwrap_or(0);
    if cpu >= max {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: all zeros is an empty cpu_set_t; CPU_SET sets bit `cpu`, below CPU_SETSIZE.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size given; pid 0 is the calling thread.
    let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    cvt(libc::c_long::from(r)).map(drop)
}
