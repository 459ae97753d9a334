//! Where interfaces live: the runtime directory and the socket name of an InterfaceGUID.
//!
//! A device interface is a Unix socket in the runtime directory named by its InterfaceGUID in
//! the form Windows' `StringFromGUID2` writes: braces, upper case
//! (`{A4A00525-5A5A-4E2E-8000-0000000000A0}`), whatever case the configuration used.
//! The runtime directory is `/run/usbfn` for root and `$XDG_RUNTIME_DIR/usbfn` for anyone
//! else, unless given explicitly.

use std::path::{Path, PathBuf};

use usbfn_abi::InterfaceGuid;

/// The runtime directory for root.
pub const SYSTEM_RUNTIME_DIR: &str = "/run/usbfn";

/// Why a path could not be worked out.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    /// Not root and `XDG_RUNTIME_DIR` is unset.
    #[error("no runtime directory: not root and XDG_RUNTIME_DIR is unset; pass --runtime-dir DIR")]
    NoRuntimeDir,
    /// The text is not a `{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}` GUID.
    #[error("{text:?} is not an InterfaceGUID {{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}}: {source}")]
    BadGuid {
        /// The text.
        text: String,
        /// Why.
        source: usbfn_abi::AbiError,
    },
}

/// The default runtime directory: `/run/usbfn` when running as root, otherwise
/// `$XDG_RUNTIME_DIR/usbfn`.
pub fn default_runtime_dir() -> Result<PathBuf, PathError> {
    if rustix::process::geteuid().is_root() {
        return Ok(PathBuf::from(SYSTEM_RUNTIME_DIR));
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => Ok(Path::new(&dir).join("usbfn")),
        _ => Err(PathError::NoRuntimeDir),
    }
}

/// `dir`, or the default runtime directory.
pub fn runtime_dir_or_default(dir: Option<&Path>) -> Result<PathBuf, PathError> {
    match dir {
        Some(d) => Ok(d.to_path_buf()),
        None => default_runtime_dir(),
    }
}

/// The socket file name of an InterfaceGUID given in any case.
pub fn socket_name(guid: &str) -> Result<String, PathError> {
    InterfaceGuid::parse(guid)
        .map(|g| g.to_string())
        .map_err(|source| PathError::BadGuid {
            text: guid.to_owned(),
            source,
        })
}

/// The socket path of an InterfaceGUID in `dir`.
pub fn socket_path(dir: &Path, guid: &str) -> Result<PathBuf, PathError> {
    Ok(dir.join(socket_name(guid)?))
}

/// The InterfaceGUID a directory entry names, if it names one (hidden and temporary files
/// do not).
pub fn guid_of_entry(name: &std::ffi::OsStr) -> Option<InterfaceGuid> {
    let text = name.to_str()?;
    let guid = InterfaceGuid::parse(text).ok()?;
    // Only the canonical spelling is an interface.
    (guid.to_string() == text).then_some(guid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_names_are_canonical() {
        let name = socket_name("{a4a00525-5a5a-4e2e-8000-0000000000a0}").expect("guid");
        assert_eq!(name, "{A4A00525-5A5A-4E2E-8000-0000000000A0}");
        assert_eq!(
            socket_path(Path::new("/tmp/x"), &name).expect("path"),
            Path::new("/tmp/x/{A4A00525-5A5A-4E2E-8000-0000000000A0}")
        );
        let e = socket_name("a4a00525").expect_err("bad");
        assert!(e.to_string().contains("not an InterfaceGUID"), "{e}");
        assert!(guid_of_entry(name.as_ref()).is_some());
        assert!(guid_of_entry("{a4a00525-5a5a-4e2e-8000-0000000000a0}".as_ref()).is_none());
        assert!(guid_of_entry(".{A4A00525-5A5A-4E2E-8000-0000000000A0}.1.tmp".as_ref()).is_none());
    }

    #[test]
    fn explicit_dir_wins() {
        assert_eq!(
            runtime_dir_or_default(Some(Path::new("/x"))).expect("dir"),
            Path::new("/x")
        );
    }
}
