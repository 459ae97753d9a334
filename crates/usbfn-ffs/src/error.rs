//! Why a FunctionFS device could not be set up. Each variant names the cause and what to do.

use std::io;
use std::path::PathBuf;

/// Setting up or tearing down the gadget failed.
#[derive(Debug, thiserror::Error)]
pub enum FfsError {
    /// No `/sys/class/udc/NAME`.
    #[error(
        "no USB device controller {udc:?} in /sys/class/udc (available: {available}); name one of those with --udc, or load the controller's driver (for tests: modprobe dummy_hcd)"
    )]
    NoSuchUdc {
        /// The name asked for.
        udc: String,
        /// What exists.
        available: String,
    },
    /// Another gadget is bound to the UDC.
    #[error(
        "the USB device controller {udc:?} is in use by {holder}; unbind it first (echo \"\" > <gadget>/UDC, or stop the other usbfn) or name another controller"
    )]
    UdcBusy {
        /// The controller.
        udc: String,
        /// Who holds it.
        holder: String,
    },
    /// configfs or libcomposite is missing.
    #[error(
        "no USB gadget configfs at {path}: load libcomposite and mount configfs (modprobe libcomposite; mount -t configfs none /sys/kernel/config)"
    )]
    NoConfigfs {
        /// The directory looked for.
        path: PathBuf,
    },
    /// functionfs (`usb_f_fs`) is missing.
    #[error("the kernel has no FunctionFS ({detail}): load it with modprobe usb_f_fs")]
    NoFunctionfs {
        /// What failed.
        detail: String,
    },
    /// Not allowed.
    #[error(
        "permission denied while {what} {path}: creating gadgets and mounting FunctionFS needs root (or CAP_SYS_ADMIN)"
    )]
    Permission {
        /// What was being done.
        what: &'static str,
        /// Where.
        path: PathBuf,
    },
    /// The kernel refused the descriptors or strings.
    #[error(
        "FunctionFS refused the {what} of function {function:?} ({source}); the kernel log (dmesg) says which descriptor it rejected"
    )]
    DescriptorsRefused {
        /// "descriptors" or "strings".
        what: &'static str,
        /// The ffs instance.
        function: String,
        /// The errno.
        source: io::Error,
    },
    /// The device cannot be expressed with FunctionFS.
    #[error("this device cannot be served through FunctionFS: {0}")]
    Unsupported(String),
    /// Any other system call failure.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The device configuration is not valid.
    #[error(transparent)]
    Config(#[from] usbfn_core::ValidationError),
}

impl FfsError {
    /// An I/O error at `path`, turned into [`FfsError::Permission`] when it is EACCES/EPERM.
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        let path = path.into();
        if source.kind() == io::ErrorKind::PermissionDenied {
            FfsError::Permission { what, path }
        } else {
            FfsError::Io { what, path, source }
        }
    }
}
