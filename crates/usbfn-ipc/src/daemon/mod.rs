//! The daemon side: every interface of a [`Backend`] (the bus-backed `usbfn::Controller`, or
//! a real controller through `usbfn_ffs::FfsDevice`) as a Unix socket named by its
//! InterfaceGUID, one service connection per interface at a time. A service cannot tell
//! which backend answers it.
//!
//! A socket is bound under a temporary name, given mode 0660 and renamed to its GUID, so it
//! accepts connections from the moment it appears (its arrival). A connection opens the
//! interface ([`Backend::open`]); a second connection while one is open gets a HELLO with
//! `STATUS_SHARING_VIOLATION` and is closed. When a connection ends, for whatever reason, its
//! outstanding requests are cancelled and its opened interface is dropped: the interface
//! is deactivated and a connected host is detached.

mod connection;

use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use usbfn_api::Backend;

use crate::STATUS_SHARING_VIOLATION;
use crate::frame::Hello;
use crate::path::socket_name;

/// Mode of every interface socket: owner and group may connect (and so act as the function).
pub const SOCKET_MODE: u32 = 0o660;
/// Mode of a runtime directory the daemon creates.
pub const DIR_MODE: u32 = 0o770;

/// Why the interfaces could not be exposed.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// An interface has no InterfaceGUID, so it has no socket name.
    #[error(
        "interface {name:?} has no InterfaceGUID (guid = \"{{...}}\" in its [[interfaces]] entry): services find interfaces by GUID"
    )]
    NoGuid {
        /// The interface's name.
        name: String,
    },
    /// An InterfaceGUID does not parse.
    #[error(transparent)]
    Path(#[from] crate::path::PathError),
    /// Another daemon answers on an interface socket.
    #[error("another usbfn daemon already serves {path}")]
    AlreadyServed {
        /// The socket.
        path: PathBuf,
    },
    /// Creating the directory or a socket failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// One exposed interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExposedInterface {
    /// `InterfaceName`.
    pub name: String,
    /// The InterfaceGUID, canonical.
    pub guid: String,
    /// The socket.
    pub path: PathBuf,
}

/// A backend's interfaces, bound and ready to serve. Dropping it (served or not) removes
/// the sockets it published, and the runtime directory if it created it and it is empty, so
/// a daemon that fails after binding leaves nothing behind.
#[derive(Debug)]
pub struct InterfaceSockets<B: Backend> {
    controller: B,
    bound: Vec<(ExposedInterface, UnixListener)>,
    files: Created,
}

/// What [`InterfaceSockets::bind`] created, removed when dropped.
#[derive(Debug, Default)]
struct Created {
    sockets: Vec<PathBuf>,
    dir: Option<PathBuf>,
}

impl Drop for Created {
    fn drop(&mut self) {
        for path in self.sockets.drain(..) {
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::debug!(path = %path.display(), error = %e, "removing the socket");
            }
        }
        if let Some(dir) = self.dir.take() {
            // Fails (and so keeps it) if anything else is in it.
            if let Err(e) = std::fs::remove_dir(&dir) {
                tracing::debug!(path = %dir.display(), error = %e, "keeping the runtime directory");
            }
        }
    }
}

impl<B: Backend> InterfaceSockets<B> {
    /// Create `dir` if needed (mode [`DIR_MODE`]) and bind one socket per interface. Stale
    /// sockets (nobody answering) are replaced; a live one is an error. Needs a tokio runtime.
    pub fn bind(controller: &B, dir: &Path) -> Result<Self, DaemonError> {
        let io_err = |what, path: &Path| {
            let path = path.to_path_buf();
            move |source| DaemonError::Io { what, path, source }
        };
        let mut files = Created::default();
        if !dir.is_dir() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(DIR_MODE)
                .create(dir)
                .map_err(io_err("creating the runtime directory", dir))?;
            files.dir = Some(dir.to_path_buf());
        }
        let mut bound = Vec::new();
        for usbfn_api::InterfaceEntry { name, guid } in controller.interfaces() {
            let guid = guid.ok_or_else(|| DaemonError::NoGuid { name: name.clone() })?;
            let canonical = socket_name(&guid)?;
            let path = dir.join(&canonical);
            if std::os::unix::net::UnixStream::connect(&path).is_ok() {
                return Err(DaemonError::AlreadyServed { path });
            }
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "removed a stale interface socket")
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("removing the stale socket", &path)(e)),
            }
            let tmp = dir.join(format!(".{canonical}.{}.tmp", std::process::id()));
            let _ = std::fs::remove_file(&tmp);
            let listener = UnixListener::bind(&tmp).map_err(io_err("binding", &tmp))?;
            files.sockets.push(tmp.clone());
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(SOCKET_MODE))
                .map_err(io_err("setting the mode of", &tmp))?;
            std::fs::rename(&tmp, &path).map_err(io_err("publishing", &path))?;
            files.sockets.pop();
            files.sockets.push(path.clone());
            bound.push((
                ExposedInterface {
                    name,
                    guid: canonical,
                    path,
                },
                listener,
            ));
        }
        Ok(InterfaceSockets {
            controller: controller.clone(),
            bound,
            files,
        })
    }

    /// The interfaces and their sockets, in configuration order.
    pub fn interfaces(&self) -> impl Iterator<Item = &ExposedInterface> {
        self.bound.iter().map(|(e, _)| e)
    }

    /// Serve service connections until `shutdown` resolves; then every connection is closed
    /// (its interface deactivated) and the sockets are removed before this returns.
    pub async fn serve(self, shutdown: impl std::future::Future<Output = ()>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let InterfaceSockets {
            controller,
            bound,
            files,
        } = self;
        for (exposed, listener) in bound {
            let controller = controller.clone();
            let stop = stop_rx.clone();
            tasks.spawn(accept_loop(controller, Arc::new(exposed), listener, stop));
        }
        shutdown.await;
        let _ = stop_tx.send(true);
        while tasks.join_next().await.is_some() {}
        drop(files);
    }
}

async fn accept_loop<B: Backend>(
    controller: B,
    exposed: Arc<ExposedInterface>,
    listener: UnixListener,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(handle(controller.clone(), exposed.clone(), stream, stop.clone()));
                }
                Err(e) => {
                    // e.g. EMFILE: keep the connections we have.
                    tracing::warn!(error = %e, path = %exposed.path.display(), "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = stop.changed() => break,
        }
    }
    while connections.join_next().await.is_some() {}
}

async fn handle<B: Backend>(
    controller: B,
    exposed: Arc<ExposedInterface>,
    stream: UnixStream,
    stop: watch::Receiver<bool>,
) {
    let peer = stream
        .peer_cred()
        .map(|c| {
            format!(
                "pid {} uid {} gid {}",
                c.pid().map_or_else(|| "?".to_owned(), |p| p.to_string()),
                c.uid(),
                c.gid()
            )
        })
        .unwrap_or_else(|_| "unknown peer".to_owned());
    let iface = match controller.open(&exposed.guid) {
        Ok(iface) => iface,
        Err(e) => {
            let status = match &e {
                usbfn_api::Error::InterfaceBusy(_) => STATUS_SHARING_VIOLATION,
                other => other.to_ntstatus(),
            };
            tracing::warn!(interface = %exposed.name, %peer, %status, "open refused: {e}");
            connection::refuse(stream, Hello::new(status)).await;
            return;
        }
    };
    tracing::info!(interface = %exposed.name, guid = %exposed.guid, %peer, "service connected");
    match connection::serve(iface, stream, stop).await {
        Ok(()) => {
            tracing::info!(interface = %exposed.name, %peer, "service disconnected: interface deactivated")
        }
        Err(e) => tracing::warn!(
            interface = %exposed.name, %peer, error = %e,
            "service connection closed: interface deactivated"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_interfaces(second_guid: Option<&str>) -> usbfn::Controller {
        let mut config = usbfn::functions::gadget_zero::config();
        let mut second = config.interfaces[0].clone();
        second.name = "second".into();
        second.guid = second_guid.map(str::to_owned);
        second.number = None;
        second.device_request_owner = false;
        // Gadget Zero fixes its endpoint addresses; the copy takes the next free ones.
        second.alternates.clear();
        for e in &mut second.endpoints {
            e.direction = e.address.map(|a| {
                if a & 0x80 != 0 {
                    usbfn_core::config::DirectionName::In
                } else {
                    usbfn_core::config::DirectionName::Out
                }
            });
            e.address = None;
        }
        config.interfaces.push(second);
        config.configurations.clear();
        usbfn::Controller::new(&config).expect("device")
    }

    fn fresh_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("usbfn-ipc-unit-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[tokio::test]
    async fn dropped_unserved_sockets_leave_nothing_behind() {
        let dir = fresh_dir("drop");
        let controller = two_interfaces(Some("{6c5b3f5e-0d6f-4b0e-9a59-0a5c3b0e7d12}"));
        let sockets = InterfaceSockets::bind(&controller, &dir).expect("bind");
        assert_eq!(sockets.interfaces().count(), 2);
        assert!(sockets.interfaces().all(|i| i.path.exists()));
        drop(sockets);
        assert!(!dir.exists(), "the directory bind created is gone");
    }

    #[tokio::test]
    async fn a_failed_bind_removes_the_sockets_it_published() {
        let dir = fresh_dir("fail");
        // The second interface has no GUID: bind fails after publishing the first.
        let controller = two_interfaces(None);
        let err = InterfaceSockets::bind(&controller, &dir).expect_err("no guid");
        assert!(
            matches!(err, DaemonError::NoGuid { ref name } if name == "second"),
            "{err}"
        );
        assert!(!dir.exists(), "nothing left in {}", dir.display());
    }

    #[tokio::test]
    async fn a_directory_that_existed_is_kept() {
        let dir = fresh_dir("keep");
        std::fs::create_dir_all(&dir).expect("dir");
        let controller = two_interfaces(None);
        assert!(InterfaceSockets::bind(&controller, &dir).is_err());
        let left: Vec<_> = std::fs::read_dir(&dir).expect("dir").collect();
        assert!(left.is_empty(), "{left:?}");
        std::fs::remove_dir(&dir).expect("still there, empty");
    }
}
