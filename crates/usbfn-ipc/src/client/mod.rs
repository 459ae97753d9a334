//! The Rust client: a service's handle to one interface of the daemon, with the same
//! [`usbfn::ServiceApi`] as the in-process [`usbfn::Interface`].
//!
//! A [`RemoteInterface`] is one connection. Requests are written by a writer task in
//! submission order and completed by a reader task in whatever order the daemon answers;
//! many are outstanding at once. [`RemoteInterface::submit`] is the raw `DeviceIoControl`;
//! dropping the [`PendingIoctl`] it returns before it completes sends a CANCEL
//! (`CancelIoEx`). When the connection ends, every outstanding request fails with
//! [`usbfn::Error::DeviceGone`].

mod api;

pub use api::{
    RemoteTransfer, bus_event_from_notification, class_info_from_packet, completion_status,
    status_error,
};

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};
use usbfn::Error;
use usbfn_abi::{IoctlCode, NtStatus};
use usbfn_core::ServiceError;

use crate::arrival::{ArrivalWatcher, wait_with};
use crate::error::FrameError;
use crate::frame::{
    Cancel, Completion, DaemonFrame, MAX_DATA_LEN, MAX_INPUT_LEN, PROTOCOL_VERSION, Request,
    ServiceFrame,
};
use crate::path::{PathError, socket_path};
use crate::{STATUS_SHARING_VIOLATION, frame::MAX_OUTSTANDING_REQUESTS};

/// How long the daemon has to send its HELLO.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`RemoteInterface::wait_and_open`] retries an interface that is busy (the
/// daemon may still be closing a previous connection of this service).
pub const BUSY_GRACE: Duration = Duration::from_secs(2);

/// Why an interface could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The runtime directory or GUID is not usable.
    #[error(transparent)]
    Path(#[from] PathError),
    /// Connecting to or reading the socket failed.
    #[error("cannot talk to the usbfn daemon at {path}: {source}")]
    Connect {
        /// The socket.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Watching the runtime directory failed.
    #[error("watching the runtime directory: {0}")]
    Watch(#[from] io::Error),
    /// Another service has the interface open.
    #[error(
        "interface {path} is already open by another service (STATUS_SHARING_VIOLATION): one service per interface"
    )]
    Busy {
        /// The socket.
        path: PathBuf,
    },
    /// The daemon refused the open with another status.
    #[error("the daemon refused to open {path}: {status}")]
    OpenFailed {
        /// The socket.
        path: PathBuf,
        /// The status in its HELLO.
        status: NtStatus,
    },
    /// The daemon speaks another protocol version.
    #[error("the daemon speaks IPC protocol version {got}; this client speaks {PROTOCOL_VERSION}")]
    Version {
        /// The daemon's version.
        got: u32,
    },
    /// The daemon sent something that is not a frame.
    #[error("protocol error from the daemon: {0}")]
    Protocol(#[from] FrameError),
    /// The daemon sent no HELLO in time, or closed before it.
    #[error("the daemon sent no HELLO within {HELLO_TIMEOUT:?} at {path}")]
    NoHello {
        /// The socket.
        path: PathBuf,
    },
}

/// One opened interface of the daemon. Dropping it closes the connection: the daemon
/// deactivates the interface and a connected host is detached.
#[derive(Debug)]
pub struct RemoteInterface {
    shared: Arc<Shared>,
    path: PathBuf,
    reader: tokio::task::JoinHandle<()>,
    writer: tokio::task::JoinHandle<()>,
}

#[derive(Debug)]
struct Shared {
    frames: mpsc::UnboundedSender<ServiceFrame>,
    state: Mutex<State>,
    max_outstanding: usize,
}

#[derive(Debug, Default)]
struct State {
    /// Outstanding at the daemon; `None`: cancelled here, completion still to come.
    pending: HashMap<u64, Option<oneshot::Sender<Completion>>>,
    next_id: u64,
    closed: bool,
}

/// A raw request in flight: resolves to its completion, or [`Error::DeviceGone`] when the
/// connection ended first. Dropping it unfinished cancels the request.
#[derive(Debug)]
#[must_use = "a request is cancelled when its future is dropped"]
pub struct PendingIoctl {
    shared: Arc<Shared>,
    id: u64,
    rx: Option<oneshot::Receiver<Completion>>,
    early: Option<Error>,
}

impl RemoteInterface {
    /// Open the interface `guid` (any case) in runtime directory `dir`, which must be present
    /// now. See [`RemoteInterface::wait_and_open`] to wait for its arrival.
    pub async fn open(dir: impl AsRef<Path>, guid: &str) -> Result<Self, ClientError> {
        Self::open_path(&socket_path(dir.as_ref(), guid)?).await
    }

    /// Wait for the interface's arrival in `dir` (inotify), then open it. A stale socket
    /// (daemon gone) or a busy interface is retried on the next arrival; busy for longer than
    /// [`BUSY_GRACE`] is an error.
    pub async fn wait_and_open(dir: impl AsRef<Path>, guid: &str) -> Result<Self, ClientError> {
        let path = socket_path(dir.as_ref(), guid)?;
        let mut watcher = ArrivalWatcher::new(dir.as_ref())?;
        let mut busy_since = None;
        loop {
            wait_with(&mut watcher, &path).await?;
            match Self::open_path(&path).await {
                Ok(iface) => return Ok(iface),
                Err(ClientError::Busy { path }) => {
                    let since = *busy_since.get_or_insert_with(tokio::time::Instant::now);
                    if since.elapsed() >= BUSY_GRACE {
                        return Err(ClientError::Busy { path });
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                // A stale socket (daemon killed), or a daemon stopping or restarting.
                Err(e @ (ClientError::Connect { .. } | ClientError::NoHello { .. }))
                    if is_transient(&e) =>
                {
                    tracing::debug!(path = %path.display(), error = %e, "interface not answering: waiting for the daemon");
                    tokio::select! {
                        r = watcher.next() => { r?; }
                        () = tokio::time::sleep(crate::arrival::RECHECK_INTERVAL) => {}
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Open the interface behind socket `path`.
    pub async fn open_path(path: &Path) -> Result<Self, ClientError> {
        let connect = |source| ClientError::Connect {
            path: path.to_path_buf(),
            source,
        };
        let stream = UnixStream::connect(path).await.map_err(connect)?;
        let (mut rd, wr) = stream.into_split();
        let mut buf = BytesMut::with_capacity(4096);
        let hello = tokio::time::timeout(HELLO_TIMEOUT, async {
            loop {
                if let Some(frame) = DaemonFrame::decode(&mut buf)? {
                    return Ok::<_, ClientError>(Some(frame));
                }
                if rd.read_buf(&mut buf).await.map_err(connect)? == 0 {
                    return Ok(None);
                }
            }
        })
        .await
        .unwrap_or(Ok(None))?;
        let hello = match hello {
            Some(DaemonFrame::Hello(h)) => h,
            Some(DaemonFrame::Completion(_)) | None => {
                return Err(ClientError::NoHello {
                    path: path.to_path_buf(),
                });
            }
        };
        if hello.version != PROTOCOL_VERSION {
            return Err(ClientError::Version { got: hello.version });
        }
        if hello.status == STATUS_SHARING_VIOLATION {
            return Err(ClientError::Busy {
                path: path.to_path_buf(),
            });
        }
        if hello.status != NtStatus::STATUS_SUCCESS {
            return Err(ClientError::OpenFailed {
                path: path.to_path_buf(),
                status: hello.status,
            });
        }
        let max_outstanding =
            crate::usize_from(hello.max_outstanding).min(MAX_OUTSTANDING_REQUESTS);
        let (frames, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            frames,
            state: Mutex::new(State {
                next_id: 1,
                ..State::default()
            }),
            max_outstanding,
        });
        let reader = tokio::spawn(read_loop(shared.clone(), rd, buf));
        let writer = tokio::spawn(write_loop(wr, rx));
        tracing::debug!(path = %path.display(), "interface opened");
        Ok(RemoteInterface {
            shared,
            path: path.to_path_buf(),
            reader,
            writer,
        })
    }

    /// The socket this interface was opened through.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Requests outstanding at the daemon (cancelled ones included until they complete).
    pub fn outstanding(&self) -> usize {
        self.shared.lock().pending.len()
    }

    /// True once the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed
    }

    /// The raw `DeviceIoControl`: `output` is the output buffer's contents for
    /// `METHOD_IN_DIRECT` codes (and must then be `output_length` bytes), empty otherwise.
    /// Sent at once; await the completion.
    pub fn submit(
        &self,
        code: IoctlCode,
        input: Bytes,
        output: Bytes,
        output_length: u32,
    ) -> PendingIoctl {
        let early = |e| PendingIoctl {
            shared: self.shared.clone(),
            id: 0,
            rx: None,
            early: Some(e),
        };
        if input.len() > MAX_INPUT_LEN || output.len() > MAX_DATA_LEN {
            return early(Error::Refused(ServiceError::InvalidParameter(format!(
                "buffer too large for the IPC protocol (MAX_INPUT_LEN {MAX_INPUT_LEN}, MAX_DATA_LEN {MAX_DATA_LEN})"
            ))));
        }
        let mut state = self.shared.lock();
        if state.closed {
            return early(Error::DeviceGone);
        }
        if state.pending.len() >= self.shared.max_outstanding {
            return early(Error::Refused(ServiceError::LimitExceeded {
                what: "requests outstanding on one IPC connection (MAX_OUTSTANDING_REQUESTS)",
                limit: self.shared.max_outstanding,
            }));
        }
        let id = state.next_id;
        state.next_id += 1;
        let (tx, rx) = oneshot::channel();
        state.pending.insert(id, Some(tx));
        let frame = ServiceFrame::Request(Request {
            id,
            code,
            input,
            output_length,
            output,
        });
        if self.shared.frames.send(frame).is_err() {
            state.pending.remove(&id);
            return early(Error::DeviceGone);
        }
        drop(state);
        PendingIoctl {
            shared: self.shared.clone(),
            id,
            rx: Some(rx),
            early: None,
        }
    }

    /// [`usbfn::Interface::ioctl`] over the socket: the same request, the same reply.
    pub async fn ioctl(&self, request: usbfn::ioctl::IoctlRequest) -> usbfn::ioctl::IoctlReply {
        // nOutBufferSize is a u32 on the wire: a larger buffer is refused here with the status
        // the daemon gives one beyond MAX_DATA_LEN, instead of being announced as u32::MAX.
        let Ok(output_length) = u32::try_from(request.output_capacity) else {
            tracing::debug!(
                code = %request.code, output_capacity = request.output_capacity,
                "IOCTL refused: output buffer larger than the IPC protocol carries (MAX_DATA_LEN {MAX_DATA_LEN})"
            );
            let status = if IoctlCode::KNOWN.contains(&request.code) {
                NtStatus::STATUS_INVALID_PARAMETER
            } else {
                NtStatus::STATUS_INVALID_DEVICE_REQUEST
            };
            return usbfn::ioctl::IoctlReply {
                status,
                information: 0,
                output: Bytes::new(),
            };
        };
        match self
            .submit(request.code, request.input, request.output, output_length)
            .await
        {
            Ok(c) => usbfn::ioctl::IoctlReply {
                status: c.status,
                information: crate::usize_from(c.information),
                output: c.output,
            },
            Err(e) => usbfn::ioctl::IoctlReply {
                status: e.to_ntstatus(),
                information: 0,
                output: Bytes::new(),
            },
        }
    }
}

/// Whether an open failed only because the daemon is not (yet, or any more) answering.
fn is_transient(e: &ClientError) -> bool {
    match e {
        ClientError::NoHello { .. } => true,
        ClientError::Connect { source, .. } => matches!(
            source.kind(),
            io::ErrorKind::ConnectionRefused
                | io::ErrorKind::NotFound
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::UnexpectedEof
        ),
        _ => false,
    }
}

impl Drop for RemoteInterface {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
        self.shared.close();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding this lock; a poisoned table is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The connection ended: fail everything outstanding.
    fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.pending.clear();
    }
}

impl PendingIoctl {
    /// The request id on the wire (0 for a request refused before it was sent).
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl Future for PendingIoctl {
    type Output = Result<Completion, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(e) = self.early.take() {
            return Poll::Ready(Err(e));
        }
        let Some(rx) = self.rx.as_mut() else {
            return Poll::Ready(Err(Error::DeviceGone));
        };
        let result = std::task::ready!(Pin::new(rx).poll(cx));
        self.rx = None;
        Poll::Ready(result.map_err(|_| Error::DeviceGone))
    }
}

impl Drop for PendingIoctl {
    fn drop(&mut self) {
        if self.rx.is_none() {
            return;
        }
        let mut state = self.shared.lock();
        if let Some(slot) = state.pending.get_mut(&self.id) {
            // Keep counting it until the daemon's completion arrives.
            *slot = None;
            let _ = self
                .shared
                .frames
                .send(ServiceFrame::Cancel(Cancel { id: self.id }));
        }
    }
}

async fn read_loop(shared: Arc<Shared>, mut rd: OwnedReadHalf, mut buf: BytesMut) {
    let why = loop {
        match DaemonFrame::decode(&mut buf) {
            Ok(Some(DaemonFrame::Completion(c))) => {
                let slot = shared.lock().pending.remove(&c.id);
                match slot {
                    Some(Some(tx)) => {
                        let _ = tx.send(c);
                    }
                    Some(None) => {} // cancelled here; nobody waits
                    None => {
                        break format!("completion for request {} that is not outstanding", c.id);
                    }
                }
                continue;
            }
            Ok(Some(DaemonFrame::Hello(_))) => break "a second HELLO".to_owned(),
            Ok(None) => {}
            Err(e) => break e.to_string(),
        }
        match rd.read_buf(&mut buf).await {
            Ok(0) => break "the daemon closed the connection".to_owned(),
            Ok(_) => {}
            Err(e) => break e.to_string(),
        }
    };
    tracing::info!(reason = %why, "usbfn daemon connection ended");
    shared.close();
}

async fn write_loop(mut wr: OwnedWriteHalf, mut rx: mpsc::UnboundedReceiver<ServiceFrame>) {
    let mut out = BytesMut::with_capacity(64 * 1024);
    while let Some(frame) = rx.recv().await {
        let mut next = Some(frame);
        while let Some(frame) = next.take() {
            if let Err(e) = frame.encode(&mut out) {
                // Sizes were checked in `submit`; a frame that still does not encode is
                // dropped rather than corrupting the stream.
                tracing::warn!(error = %e, "request not sent");
            }
            if out.len() < 256 * 1024 {
                next = rx.try_recv().ok();
            }
        }
        if let Err(e) = wr.write_all(&out).await {
            tracing::debug!(error = %e, "writing to the daemon failed");
            return;
        }
        out.clear();
    }
}
