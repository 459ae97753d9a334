//! The serial function's device side: a pseudo-terminal in raw mode. usbfn holds the master;
//! a user opens the slave (its path printed, or a symlink made with `pty=PATH`).
//!
//! While nobody has the slave open, the master reads fail with `EIO` and poll reports
//! `POLLHUP`: that is how the function knows whether the device side is there (the carrier it
//! reports to the host in SERIAL_STATE).
//!
//! A hang-up must not stay in the async registration: tokio keeps the "read closed" and
//! "write closed" readiness an `EPOLLHUP` sets for as long as the descriptor is registered
//! (they are never cleared), so a master registered while the slave was closed looks
//! readable and writable forever, and a read loop on it spins on `EAGAIN` once the device
//! side has opened the slave (that spin starved the runtime: the acm data test hung under
//! parallel load). So reads and writes each go through a registration of their own (of a
//! duplicate of the master) that is made while the slave is open and dropped as soon as it
//! has seen a hang-up; the next read or write after the device side reopened registers
//! afresh.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::termios::{self, BaudRate, ControlFlags, SetArg};
use tokio::io::unix::AsyncFd;

use super::cdc::{LineCoding, Parity, StopBits};

/// The pause after a write found the pty full.
const WRITE_BACKOFF: std::time::Duration = std::time::Duration::from_millis(2);

/// One read from the master.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReadOutcome {
    /// Bytes the device side wrote.
    Data(usize),
    /// Nobody has the slave open (the master read failed with `EIO`).
    PeerClosed,
}

/// A pseudo-terminal pair whose master usbfn holds.
#[derive(Debug)]
pub(crate) struct Pty {
    /// The master (non-blocking), for poll, termios and the registrations' duplicates.
    master: File,
    /// The registration reads use; `None` until made, or after it saw a hang-up.
    reader: tokio::sync::Mutex<Option<AsyncFd<File>>>,
    /// The same for writes.
    writer: tokio::sync::Mutex<Option<AsyncFd<File>>>,
    path: PathBuf,
    link: Option<PathBuf>,
}

impl Pty {
    /// Open a pty pair in raw mode; with `link`, make a symlink to the slave there (an
    /// existing symlink is replaced; any other file is left alone and is an error).
    pub(crate) fn open(link: Option<&Path>) -> io::Result<Pty> {
        let pair = nix::pty::openpty(None, None)?;
        let mut attrs = termios::tcgetattr(&pair.slave)?;
        termios::cfmakeraw(&mut attrs);
        // No modem-control hangups on the device side: the line is local.
        attrs.control_flags |= ControlFlags::CLOCAL;
        termios::tcsetattr(&pair.slave, SetArg::TCSANOW, &attrs)?;
        let path = nix::unistd::ttyname(&pair.slave)?;
        let flags = nix::fcntl::fcntl(&pair.master, nix::fcntl::FcntlArg::F_GETFL)?;
        let flags = nix::fcntl::OFlag::from_bits_retain(flags) | nix::fcntl::OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(&pair.master, nix::fcntl::FcntlArg::F_SETFL(flags))?;
        let link = match link {
            Some(link) => {
                match std::fs::symlink_metadata(link) {
                    Ok(m) if m.file_type().is_symlink() => std::fs::remove_file(link)?,
                    Ok(_) => {
                        return Err(io::Error::new(
                            io::ErrorKind::AlreadyExists,
                            format!("{} exists and is not a symlink", link.display()),
                        ));
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
                std::os::unix::fs::symlink(&path, link)?;
                Some(link.to_owned())
            }
            None => None,
        };
        // The slave is closed here: the device side's own open is what raises the carrier.
        drop(pair.slave);
        Ok(Pty {
            master: File::from(pair.master),
            reader: tokio::sync::Mutex::new(None),
            writer: tokio::sync::Mutex::new(None),
            path,
            link,
        })
    }

    /// A fresh registration of a duplicate of the master, or `None` while nobody has the
    /// slave open (it would start with a hang-up).
    fn register(&self) -> io::Result<Option<AsyncFd<File>>> {
        if !self.peer_open() {
            return Ok(None);
        }
        // `AsyncFd::new` is deprecated in favour of the unsafe `register` because a caller
        // could close the descriptor while it is registered; here the `File` owns it and is
        // moved into the `AsyncFd`, so it stays open exactly as long as the registration
        // (the condition `register` asks for), and this crate forbids `unsafe`.
        #[allow(deprecated)]
        let fd = AsyncFd::new(self.master.try_clone()?)?;
        Ok(Some(fd))
    }

    /// The slave's path (`/dev/pts/N`).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The symlink made for `pty=PATH`.
    pub(crate) fn link(&self) -> Option<&Path> {
        self.link.as_deref()
    }

    /// Whether someone has the slave open.
    pub(crate) fn peer_open(&self) -> bool {
        let mut fds = [PollFd::new(self.master.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::ZERO) {
            Ok(_) => !fds[0]
                .revents()
                .is_some_and(|r| r.contains(PollFlags::POLLHUP)),
            Err(_) => false,
        }
    }

    /// Read what the device side wrote. With the slave closed, what it wrote before closing
    /// is still read (`echo hello >PTY` opens, writes and closes between two carrier polls);
    /// `PeerClosed` once that is drained.
    pub(crate) async fn read(&self, buf: &mut [u8]) -> io::Result<ReadOutcome> {
        let mut slot = self.reader.lock().await;
        loop {
            if slot.is_none() {
                *slot = self.register()?;
            }
            let Some(fd) = slot.as_ref() else {
                return self.read_closed(buf);
            };
            let mut guard = fd.readable().await?;
            let hung_up = guard.ready().is_read_closed();
            match guard.try_io(|f| f.get_ref().read(buf)) {
                Ok(Ok(n)) => return Ok(ReadOutcome::Data(n)),
                Ok(Err(e)) if e.raw_os_error() == Some(nix::libc::EIO) => {
                    *slot = None;
                    return Ok(ReadOutcome::PeerClosed);
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(e)) => return Err(e),
                // Closed and reopened since the registration: its "closed" readiness would
                // never clear, so register again.
                Err(_would_block) if hung_up => *slot = None,
                Err(_would_block) => {}
            }
        }
    }

    /// A read of the (non-blocking) master while nobody has the slave open: the bytes the
    /// device side left behind, or `PeerClosed` (`EIO` once they are drained; `EAGAIN` if
    /// it was reopened meanwhile and wrote nothing yet).
    fn read_closed(&self, buf: &mut [u8]) -> io::Result<ReadOutcome> {
        loop {
            return match (&self.master).read(buf) {
                Ok(0) => Ok(ReadOutcome::PeerClosed),
                Ok(n) => Ok(ReadOutcome::Data(n)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if e.raw_os_error() == Some(nix::libc::EIO)
                        || e.kind() == io::ErrorKind::WouldBlock =>
                {
                    Ok(ReadOutcome::PeerClosed)
                }
                Err(e) => Err(e),
            };
        }
    }

    /// Write some of `data` to the device side (waits while the pty's buffer is full, which
    /// is how a slow reader holds the host back). `Ok(0)` only for an empty `data`.
    pub(crate) async fn write(&self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        let mut slot = self.writer.lock().await;
        loop {
            if slot.is_none() {
                *slot = self.register()?;
            }
            let Some(fd) = slot.as_ref() else {
                // What a write to the master of a closed pty gives.
                return Err(io::Error::from_raw_os_error(nix::libc::EIO));
            };
            let mut guard = fd.writable().await?;
            let hung_up = guard.ready().is_write_closed();
            match guard.try_io(|f| f.get_ref().write(data)) {
                Ok(Ok(0)) => guard.clear_ready(),
                Ok(Ok(n)) => return Ok(n),
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(e)) => {
                    if e.raw_os_error() == Some(nix::libc::EIO) {
                        *slot = None;
                    }
                    return Err(e);
                }
                Err(_would_block) if hung_up => *slot = None,
                Err(_would_block) => {
                    // A full pty still reports POLLOUT edges to the master whenever the
                    // slave side moves (measured: a busy loop on EAGAIN otherwise); back off
                    // briefly so a slow reader costs no CPU.
                    tokio::time::sleep(WRITE_BACKOFF).await;
                }
            }
        }
    }

    /// Show the host's line coding on the device side: `stty -F <pty>` reports its speed,
    /// character size, parity and stop bits (the raw-mode flags are left as they are).
    pub(crate) fn apply_line_coding(&self, coding: &LineCoding) -> io::Result<()> {
        let fd = &self.master;
        let mut attrs = termios::tcgetattr(fd)?;
        if let Some(baud) = baud_rate(coding.rate) {
            termios::cfsetspeed(&mut attrs, baud)?;
        }
        let c = &mut attrs.control_flags;
        c.remove(ControlFlags::CSIZE | ControlFlags::PARENB | ControlFlags::PARODD);
        c.remove(ControlFlags::CSTOPB | ControlFlags::CMSPAR);
        c.insert(match coding.data_bits {
            5 => ControlFlags::CS5,
            6 => ControlFlags::CS6,
            7 => ControlFlags::CS7,
            _ => ControlFlags::CS8,
        });
        match coding.parity {
            Parity::None => {}
            Parity::Odd => c.insert(ControlFlags::PARENB | ControlFlags::PARODD),
            Parity::Even => c.insert(ControlFlags::PARENB),
            Parity::Mark => {
                c.insert(ControlFlags::PARENB | ControlFlags::PARODD | ControlFlags::CMSPAR)
            }
            Parity::Space => c.insert(ControlFlags::PARENB | ControlFlags::CMSPAR),
        }
        if coding.stop_bits != StopBits::One {
            c.insert(ControlFlags::CSTOPB);
        }
        termios::tcsetattr(fd, SetArg::TCSANOW, &attrs)?;
        Ok(())
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        if let Some(link) = &self.link {
            let _ = std::fs::remove_file(link);
        }
    }
}

/// The termios speed for a line coding's rate, when it is one termios knows.
fn baud_rate(rate: u32) -> Option<BaudRate> {
    use BaudRate::*;
    Some(match rate {
        50 => B50,
        75 => B75,
        110 => B110,
        134 => B134,
        150 => B150,
        200 => B200,
        300 => B300,
        600 => B600,
        1200 => B1200,
        1800 => B1800,
        2400 => B2400,
        4800 => B4800,
        9600 => B9600,
        19200 => B19200,
        38400 => B38400,
        57600 => B57600,
        115_200 => B115200,
        230_400 => B230400,
        460_800 => B460800,
        500_000 => B500000,
        576_000 => B576000,
        921_600 => B921600,
        1_000_000 => B1000000,
        1_152_000 => B1152000,
        1_500_000 => B1500000,
        2_000_000 => B2000000,
        2_500_000 => B2500000,
        3_000_000 => B3000000,
        3_500_000 => B3500000,
        4_000_000 => B4000000,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn raw_pty_carries_bytes_both_ways_and_sees_the_peer() {
        let pty = Pty::open(None).expect("pty");
        assert!(!pty.peer_open(), "nobody has the slave open yet");
        let mut buf = [0u8; 64];
        assert_eq!(
            pty.read(&mut buf).await.expect("read"),
            ReadOutcome::PeerClosed
        );
        let mut slave = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(pty.path())
            .expect("open slave");
        assert!(pty.peer_open());
        // Raw: no echo, no CR/LF translation, 0x03 and 0x04 are plain bytes.
        let bytes = [0x03u8, b'\n', 0x04, 0xff, b'\r'];
        assert_eq!(pty.write(&bytes).await.expect("write"), bytes.len());
        let mut got = [0u8; 5];
        slave.read_exact(&mut got).expect("slave read");
        assert_eq!(got, bytes);
        slave.write_all(&bytes).expect("slave write");
        let mut n = 0;
        while n < bytes.len() {
            match pty.read(&mut buf[n..]).await.expect("read") {
                ReadOutcome::Data(k) => n += k,
                ReadOutcome::PeerClosed => panic!("peer is open"),
            }
        }
        assert_eq!(&buf[..5], &bytes);
        // The host's line coding shows on the device side.
        let coding = LineCoding::parse(&[0x00, 0xe1, 0, 0, 2, 2, 7]).expect("57600 7E2");
        pty.apply_line_coding(&coding).expect("apply");
        let attrs = termios::tcgetattr(&slave).expect("attrs");
        assert_eq!(termios::cfgetospeed(&attrs), BaudRate::B57600);
        // Linux's pty driver keeps CS8 without parity whatever is set; stop bits stay.
        assert!(attrs.control_flags.contains(ControlFlags::CSTOPB));
        drop(slave);
        assert!(!pty.peer_open());
    }

    #[tokio::test]
    async fn link_replaces_a_symlink_but_not_a_file() {
        let dir = std::env::temp_dir().join(format!("usbfn-pty-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let link = dir.join("ttyUSBFN");
        std::os::unix::fs::symlink("/nonexistent", &link).expect("old link");
        let pty = Pty::open(Some(&link)).expect("pty");
        assert_eq!(std::fs::read_link(&link).expect("link"), pty.path());
        drop(pty);
        assert!(std::fs::symlink_metadata(&link).is_err(), "removed on drop");
        std::fs::write(&link, b"keep").expect("file");
        assert!(Pty::open(Some(&link)).is_err());
        assert_eq!(std::fs::read(&link).expect("kept"), b"keep");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
