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

/// `"EPIPE"`, or `"errno 1234"` for values without a known name.
pub(crate) fn display(errno: i32) -> String {
    name(errno).map_or_else(|| format!("errno {errno}"), str::to_owned)
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
    }
}
