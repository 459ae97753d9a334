//! The two ioctls: `USBDEVFS_IOCTL` on a usbfs device node, carrying usbtest's own
//! `USBTEST_REQUEST_64` to the driver bound to one interface.
//!
//! Layouts and numbers checked against Linux 6.1: `include/uapi/linux/usbdevice_fs.h`
//! (`struct usbdevfs_ioctl`, `USBDEVFS_IOCTL = _IOWR('U', 18, struct usbdevfs_ioctl)`) and
//! `drivers/usb/misc/usbtest.c` (`struct usbtest_param_64`,
//! `USBTEST_REQUEST_64 = _IOWR('U', 100, struct usbtest_param_64)`).

use std::ffi::c_void;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// `struct usbtest_param_64` from usbtest.c: five inputs, two outputs (the time the test took).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct UsbtestParam64 {
    pub(crate) test_num: u32,
    pub(crate) iterations: u32,
    pub(crate) length: u32,
    pub(crate) vary: u32,
    pub(crate) sglen: u32,
    pub(crate) duration_sec: i64,
    pub(crate) duration_usec: i64,
}

/// `struct usbdevfs_ioctl` from usbdevice_fs.h (native 64-bit layout).
#[repr(C)]
#[derive(Debug)]
struct UsbdevfsIoctl {
    ifno: libc::c_int,
    ioctl_code: libc::c_int,
    data: *mut c_void,
}

const IOC_WRITE: u32 = 1;
const IOC_READ: u32 = 2;

/// The kernel's `_IOWR(type, nr, size)` (asm-generic/ioctl.h: nr 8 bits, type 8 bits,
/// size 14 bits, direction 2 bits).
const fn iowr(ty: u8, nr: u8, size: usize) -> u32 {
    assert!(size < (1 << 14), "ioctl argument too large for _IOC_SIZE");
    #[expect(
        clippy::cast_possible_truncation,
        reason = "size is checked above to fit the 14-bit _IOC_SIZE field"
    )]
    let size = size as u32;
    ((IOC_READ | IOC_WRITE) << 30) | (size << 16) | ((ty as u32) << 8) | nr as u32
}

/// `USBDEVFS_IOCTL`: hand an ioctl to the driver bound to an interface.
pub(crate) const USBDEVFS_IOCTL: u32 = iowr(b'U', 18, size_of::<UsbdevfsIoctl>());
/// `USBTEST_REQUEST_64`: run one usbtest case.
pub(crate) const USBTEST_REQUEST_64: u32 = iowr(b'U', 100, size_of::<UsbtestParam64>());

impl UsbtestParam64 {
    /// The time the kernel measured for the test (only set when the test succeeded).
    pub(crate) fn duration(&self) -> Duration {
        let secs = u64::try_from(self.duration_sec).unwrap_or(0);
        let micros = u64::try_from(self.duration_usec).unwrap_or(0);
        Duration::from_secs(secs) + Duration::from_micros(micros)
    }
}

/// Runs one usbtest case on interface `ifno` of the usbfs device `dev`.
///
/// On success the kernel has filled in the duration. Errors carry the errno the test returned
/// (`EOPNOTSUPP` when the case does not apply to the device).
pub(crate) fn usbtest_request(dev: &File, ifno: u8, param: &mut UsbtestParam64) -> io::Result<()> {
    let mut wrapper = UsbdevfsIoctl {
        ifno: libc::c_int::from(ifno),
        ioctl_code: libc::c_int::from_ne_bytes(USBTEST_REQUEST_64.to_ne_bytes()),
        data: std::ptr::from_mut(param).cast::<c_void>(),
    };
    // libc::Ioctl is c_ulong on glibc (c_int on musl); the kernel takes the 32-bit value.
    let request = USBDEVFS_IOCTL as libc::Ioctl;
    // SAFETY: `dev` is an open file descriptor for the duration of the call; `wrapper` points
    // to a live `struct usbdevfs_ioctl` whose `data` points to a live, exclusively borrowed
    // `struct usbtest_param_64` of exactly the size encoded in `ioctl_code`, which the kernel
    // reads and writes back (at most `_IOC_SIZE` bytes) before the call returns.
    let rc = unsafe { libc::ioctl(dev.as_raw_fd(), request, &raw mut wrapper) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_the_kernel() {
        assert_eq!(size_of::<UsbtestParam64>(), 40);
        assert_eq!(size_of::<UsbdevfsIoctl>(), 16);
    }

    #[test]
    fn ioctl_numbers_match_the_kernel() {
        // Values the kernel headers produce on x86_64.
        assert_eq!(USBDEVFS_IOCTL, 0xC010_5512);
        assert_eq!(USBTEST_REQUEST_64, 0xC028_5564);
    }

    #[test]
    fn duration_combines_seconds_and_microseconds() {
        let p = UsbtestParam64 {
            duration_sec: 2,
            duration_usec: 500_000,
            ..Default::default()
        };
        assert_eq!(p.duration(), Duration::from_millis(2500));
    }
}
