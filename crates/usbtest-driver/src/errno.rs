//! Symbolic names for the errno values usbtest and usbfs return.

/// The symbolic name of `errno` (`"EPIPE"`), or `None` when it is not one of the values the
/// USB stack is known to return.
pub(crate) fn name(errno: i32) -> Option<&'static str> {
    Some(match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::E2BIG => "E2BIG",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EXDEV => "EXDEV",
        libc::ENODEV => "ENODEV",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::ENOTTY => "ENOTTY",
        libc::EPIPE => "EPIPE",
        libc::EDOM => "EDOM",
        libc::ERANGE => "ERANGE",
        libc::ENOSYS => "ENOSYS",
        libc::ENODATA => "ENODATA",
        libc::ETIME => "ETIME",
        libc::ENOSR => "ENOSR",
        libc::ECOMM => "ECOMM",
        libc::EPROTO => "EPROTO",
        libc::EOVERFLOW => "EOVERFLOW",
        libc::EILSEQ => "EILSEQ",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ECONNRESET => "ECONNRESET",
        libc::ESHUTDOWN => "ESHUTDOWN",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::EINPROGRESS => "EINPROGRESS",
        libc::EREMOTEIO => "EREMOTEIO",
        _ => return None,
    })
}

/// The name of `errno`, including usbtest's unlink encodings: tests 11/12 return the URB
/// status minus 1000 (asynchronous unlink) or minus 2000 (`usb_kill_urb`), so `1075` is
/// `"1000+EOVERFLOW"`.
pub(crate) fn describe(errno: i32) -> Option<String> {
    if let Some(n) = name(errno) {
        return Some(n.to_owned());
    }
    [1000, 2000].into_iter().find_map(|offset| {
        let inner = errno.checked_sub(offset).filter(|e| *e > 0)?;
        name(inner).map(|n| format!("{offset}+{n}"))
    })
}

/// `"EPIPE"`, `"1000+EOVERFLOW"`, or `"errno 1234"` for values without a known name.
pub(crate) fn display(errno: i32) -> String {
    describe(errno).unwrap_or_else(|| format!("errno {errno}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_usb_errors() {
        assert_eq!(name(32), Some("EPIPE"));
        assert_eq!(name(95), Some("EOPNOTSUPP"));
        assert_eq!(name(121), Some("EREMOTEIO"));
        assert_eq!(display(9999), "errno 9999");
        assert_eq!(display(1075), "1000+EOVERFLOW");
        assert_eq!(display(2104), "2000+ECONNRESET");
        assert_eq!(describe(1500), None);
    }
}
