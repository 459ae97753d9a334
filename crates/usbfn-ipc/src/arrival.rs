//! Device-interface arrival, the seed's step 1: list the interfaces present in the runtime
//! directory, and watch it (inotify) for new ones.
//!
//! The daemon creates each socket under a temporary name, sets its mode and then renames it
//! to its GUID, so an arrival (`IN_MOVED_TO`, or `IN_CREATE` from other daemons) names a socket
//! that already accepts connections. When the runtime directory does not exist yet, the
//! watcher watches its parent until it appears (and when neither exists, it re-checks every
//! [`RECHECK_INTERVAL`]). A caller that must not miss an arrival
//! creates the watcher first and lists second ([`wait_for_interface`] does).
//!
//! This is the crate's one OS backend: registering the inotify descriptor with tokio is its
//! only `unsafe` block.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use tokio::io::unix::AsyncFd;
use usbfn_abi::InterfaceGuid;

use crate::path::guid_of_entry;

/// Re-check the directory this often even without inotify events, in case a rename or
/// restart raced the watch.
pub const RECHECK_INTERVAL: Duration = Duration::from_secs(1);

/// An interface present in the runtime directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceEntry {
    /// Its InterfaceGUID.
    pub guid: InterfaceGuid,
    /// Its socket.
    pub path: PathBuf,
}

/// The interfaces present in `dir` now (sockets named by a canonical GUID). A missing
/// directory has none.
pub fn list_present(dir: &Path) -> io::Result<Vec<InterfaceEntry>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry?;
        let Some(guid) = guid_of_entry(&entry.file_name()) else {
            continue;
        };
        if entry.file_type().is_ok_and(|t| t.is_socket()) {
            found.push(InterfaceEntry {
                guid,
                path: entry.path(),
            });
        }
    }
    found.sort_by_key(|e| e.guid);
    Ok(found)
}

/// Watches a runtime directory for arriving interfaces.
#[derive(Debug)]
pub struct ArrivalWatcher {
    dir: PathBuf,
    fd: AsyncFd<OwnedFd>,
    buf: Vec<MaybeUninit<u8>>,
    pending: VecDeque<InterfaceEntry>,
    state: Watching,
}

/// What the inotify descriptor watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Watching {
    /// The runtime directory: its entries are arrivals.
    Dir,
    /// Its parent, until the directory appears.
    Parent,
    /// Neither exists: re-checked every [`RECHECK_INTERVAL`].
    Nothing,
}

impl ArrivalWatcher {
    /// Start watching `dir` (or its parent, until `dir` exists). Needs a tokio runtime.
    pub fn new(dir: &Path) -> io::Result<Self> {
        let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)?;
        // tokio's only non-deprecated way to poll a descriptor is `unsafe`.
        #[allow(unsafe_code)]
        // SAFETY: `register` needs `as_raw_fd()` to stay one open descriptor for the
        // AsyncFd's whole life. An `OwnedFd` owns its descriptor, always returns the same
        // one, and is only closed when dropped, which happens with the AsyncFd.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(io::Error::from)?;
        let mut w = ArrivalWatcher {
            dir: dir.to_path_buf(),
            fd,
            buf: vec![MaybeUninit::uninit(); 16 * 1024],
            pending: VecDeque::new(),
            state: Watching::Nothing,
        };
        w.watch()?;
        Ok(w)
    }

    /// The directory watched.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The next interface that arrives (the same one again if it is re-created).
    pub async fn next(&mut self) -> io::Result<InterfaceEntry> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Ok(e);
            }
            if self.state == Watching::Nothing {
                tokio::time::sleep(RECHECK_INTERVAL).await;
                self.watch()?;
                continue;
            }
            let mut guard = self.fd.readable().await?;
            let mut events = Vec::new();
            let buf = &mut self.buf;
            match guard.try_io(|fd| read_events(fd.get_ref(), buf, &mut events)) {
                Ok(result) => result?,
                Err(_would_block) => continue,
            }
            drop(guard);
            for (mask, name) in events {
                self.handle(mask, name)?;
            }
        }
    }

    fn watch(&mut self) -> io::Result<()> {
        let entry_flags = WatchFlags::CREATE
            | WatchFlags::MOVED_TO
            | WatchFlags::DELETE_SELF
            | WatchFlags::MOVE_SELF;
        match inotify::add_watch(self.fd.get_ref(), &self.dir, entry_flags) {
            Ok(_) => {
                self.state = Watching::Dir;
                // Whatever arrived before the watch existed.
                self.pending.extend(list_present(&self.dir)?);
                Ok(())
            }
            Err(rustix::io::Errno::NOENT) => {
                let parent = match self.dir.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                    _ => PathBuf::from("."),
                };
                match inotify::add_watch(
                    self.fd.get_ref(),
                    &parent,
                    WatchFlags::CREATE | WatchFlags::MOVED_TO,
                ) {
                    Ok(_) => self.state = Watching::Parent,
                    Err(rustix::io::Errno::NOENT) => {
                        self.state = Watching::Nothing;
                        return Ok(());
                    }
                    Err(e) => return Err(e.into()),
                }
                // The directory may have appeared between the two calls.
                if self.dir.is_dir() {
                    return self.watch();
                }
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    fn handle(&mut self, mask: ReadFlags, name: Option<Vec<u8>>) -> io::Result<()> {
        if mask.contains(ReadFlags::QUEUE_OVERFLOW) {
            self.pending.extend(list_present(&self.dir)?);
            return Ok(());
        }
        if self.state == Watching::Dir {
            if mask.intersects(ReadFlags::DELETE_SELF | ReadFlags::MOVE_SELF) {
                tracing::debug!(dir = %self.dir.display(), "runtime directory went away");
                return self.watch();
            }
            let Some(name) = name else { return Ok(()) };
            let name = OsStr::from_bytes(&name);
            if let Some(guid) = guid_of_entry(name) {
                self.pending.push_back(InterfaceEntry {
                    guid,
                    path: self.dir.join(name),
                });
            }
        } else if self.dir.is_dir() {
            // Something was created in the parent: maybe our directory.
            self.watch()?;
        }
        Ok(())
    }
}

/// Read every queued inotify event. `WouldBlock` when there were none.
fn read_events(
    fd: &OwnedFd,
    buf: &mut [MaybeUninit<u8>],
    out: &mut Vec<(ReadFlags, Option<Vec<u8>>)>,
) -> io::Result<()> {
    let mut reader = inotify::Reader::new(fd, buf);
    loop {
        match reader.next() {
            Ok(event) => out.push((
                event.events(),
                event.file_name().map(|n| n.to_bytes().to_vec()),
            )),
            Err(rustix::io::Errno::AGAIN) if out.is_empty() => {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Err(rustix::io::Errno::AGAIN) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        if reader.is_buffer_empty() {
            return Ok(());
        }
    }
}

/// Wait until the interface `guid` is present in `dir`, and return its socket path. Present
/// now: returns at once. `guid` may be in any case.
pub async fn wait_for_interface(dir: &Path, guid: &str) -> Result<PathBuf, crate::ClientError> {
    let path = crate::path::socket_path(dir, guid)?;
    let mut watcher = ArrivalWatcher::new(dir)?;
    wait_with(&mut watcher, &path).await?;
    Ok(path)
}

/// Wait with an existing watcher until `path` exists (checked at once, then on every
/// arrival and every [`RECHECK_INTERVAL`]).
pub(crate) async fn wait_with(watcher: &mut ArrivalWatcher, path: &Path) -> io::Result<()> {
    loop {
        if path.exists() {
            return Ok(());
        }
        tokio::select! {
            arrival = watcher.next() => {
                let arrival = arrival?;
                tracing::debug!(path = %arrival.path.display(), "interface arrival");
            }
            () = tokio::time::sleep(RECHECK_INTERVAL) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("usbfn-arrival-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    const GUID: &str = "{A4A00525-5A5A-4E2E-8000-0000000000A0}";

    #[tokio::test]
    async fn lists_and_watches_arrivals_even_before_the_directory_exists() {
        let dir = temp_dir("watch");
        assert!(
            list_present(&dir)
                .expect("missing dir lists nothing")
                .is_empty()
        );
        let mut watcher = ArrivalWatcher::new(&dir).expect("watch the parent");
        std::fs::create_dir(&dir).expect("mkdir");
        // Not interfaces: a regular file named like one, a temporary name.
        std::fs::write(dir.join("{11111111-2222-3333-4444-555555555555}"), b"").expect("file");
        let tmp = dir.join(".tmp-socket");
        let _listener = std::os::unix::net::UnixListener::bind(&tmp).expect("bind");
        std::fs::rename(&tmp, dir.join(GUID)).expect("rename");
        let arrival = tokio::time::timeout(Duration::from_secs(5), watcher.next())
            .await
            .expect("in time")
            .expect("arrival");
        assert_eq!(arrival.guid.to_string(), GUID);
        let present = list_present(&dir).expect("list");
        assert_eq!(present.len(), 1, "{present:?}");
        assert_eq!(present[0].path, dir.join(GUID));
        let path = tokio::time::timeout(
            Duration::from_secs(5),
            wait_for_interface(&dir, &GUID.to_lowercase()),
        )
        .await
        .expect("in time")
        .expect("present");
        assert_eq!(path, dir.join(GUID));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn survives_the_directory_and_its_parent_going_away() {
        let top = temp_dir("gone");
        let dir = top.join("run");
        std::fs::create_dir_all(&dir).expect("mkdir");
        let mut watcher = ArrivalWatcher::new(&dir).expect("watch");
        std::fs::remove_dir_all(&top).expect("rm");
        let later = {
            let dir = dir.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                std::fs::create_dir_all(&dir).expect("mkdir again");
                let tmp = dir.join(".tmp-socket");
                let listener = std::os::unix::net::UnixListener::bind(&tmp).expect("bind");
                std::fs::rename(&tmp, dir.join(GUID)).expect("rename");
                listener
            })
        };
        let arrival = tokio::time::timeout(Duration::from_secs(5), watcher.next())
            .await
            .expect("in time")
            .expect("arrival");
        assert_eq!(arrival.path, dir.join(GUID));
        drop(later.await.expect("join"));
        let _ = std::fs::remove_dir_all(&top);
    }
}
