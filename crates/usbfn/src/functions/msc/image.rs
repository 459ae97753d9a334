//! The image files behind the LUNs, and the one I/O thread per function that reads and writes
//! them.
//!
//! Why a dedicated thread rather than `spawn_blocking`: file I/O of one function is then
//! strictly ordered (a write still running when a Bulk-Only Mass Storage Reset aborts its
//! command finishes before any later command's I/O, so the host never sees an older write
//! land after a newer one), it holds at most [`QUEUE_DEPTH`] requests (the window the
//! transport keeps in flight), and it never takes threads from tokio's blocking pool that
//! other functions of the same process need. The async side only awaits oneshot replies.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use tokio::sync::{mpsc, oneshot};

use super::scsi::BLOCK;

/// Requests the I/O thread queues before a sender waits (the transport's window is smaller).
pub const QUEUE_DEPTH: usize = 16;

/// A start error of an image.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The file cannot be opened.
    #[error("msc image {path}: cannot open {mode}: {source}{hint}")]
    Open {
        /// The image.
        path: PathBuf,
        /// "read-write" or "read-only".
        mode: &'static str,
        /// A hint (e.g. "; add ,ro to serve it read-only").
        hint: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a regular file or block device, or its size cannot be read.
    #[error("msc image {path}: {what}")]
    Kind {
        /// The image.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// The file is empty or not a whole number of blocks.
    #[error(
        "msc image {path}: {size} bytes is not a whole, non-zero number of 512-byte blocks (make it e.g. with `truncate -s 64M {path}`)"
    )]
    Short {
        /// The image.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
}

/// An opened image.
#[derive(Debug)]
pub struct Image {
    /// The file.
    pub file: File,
    /// Its path (for logs).
    pub path: PathBuf,
    /// Size in bytes (a multiple of 512).
    pub size: u64,
    /// Opened read-only.
    pub read_only: bool,
}

impl Image {
    /// Open `path` read-write (or read-only) and check its size.
    pub fn open(path: &Path, read_only: bool) -> Result<Image, ImageError> {
        let file = OpenOptions::new()
            .read(true)
            .write(!read_only)
            .open(path)
            .map_err(|source| ImageError::Open {
                path: path.to_owned(),
                mode: if read_only { "read-only" } else { "read-write" },
                hint: match (read_only, source.kind()) {
                    (false, std::io::ErrorKind::PermissionDenied)
                    | (false, std::io::ErrorKind::ReadOnlyFilesystem) => {
                        "; add ,ro to serve it read-only"
                    }
                    (_, std::io::ErrorKind::NotFound) => {
                        "; create it first, e.g. `truncate -s 64M FILE`"
                    }
                    _ => "",
                },
                source,
            })?;
        let kind = |what: String| ImageError::Kind {
            path: path.to_owned(),
            what,
        };
        let meta = file
            .metadata()
            .map_err(|e| kind(format!("cannot read its metadata: {e}")))?;
        let size = if meta.is_file() {
            meta.len()
        } else {
            // A block device: its size is where the end is.
            use std::io::{Seek, SeekFrom};
            let mut f = &file;
            let end = f
                .seek(SeekFrom::End(0))
                .map_err(|e| kind(format!("is not a regular file, and seeking failed: {e}")))?;
            if end == 0 {
                return Err(kind("is not a regular file or a block device".into()));
            }
            end
        };
        if size == 0 || !size.is_multiple_of(BLOCK) {
            return Err(ImageError::Short {
                path: path.to_owned(),
                size,
            });
        }
        Ok(Image {
            file,
            path: path.to_owned(),
            size,
            read_only,
        })
    }
}

/// A request to the I/O thread.
#[derive(Debug)]
enum Request {
    Read {
        lun: usize,
        offset: u64,
        len: usize,
        reply: oneshot::Sender<std::io::Result<Bytes>>,
    },
    Write {
        lun: usize,
        offset: u64,
        data: Bytes,
        reply: oneshot::Sender<std::io::Result<()>>,
    },
    Sync {
        lun: usize,
        reply: oneshot::Sender<std::io::Result<()>>,
    },
}

/// The async side's handle on the I/O thread (cheap to clone). The thread ends when every
/// handle is dropped.
#[derive(Clone, Debug)]
pub struct Io {
    tx: mpsc::Sender<Request>,
}

/// A reply still to come.
pub type Pending<T> = oneshot::Receiver<std::io::Result<T>>;

fn gone() -> std::io::Error {
    std::io::Error::other("the msc I/O thread has stopped")
}

impl Io {
    /// Start the I/O thread on `images` (index = LUN).
    pub fn start(images: Vec<Image>, name: &str) -> std::io::Result<Io> {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        std::thread::Builder::new()
            .name(format!("{name}-io"))
            .spawn(move || serve(images, rx))?;
        Ok(Io { tx })
    }

    /// Queue a read of `len` bytes at `offset`.
    pub async fn read(&self, lun: usize, offset: u64, len: usize) -> Pending<Bytes> {
        let (reply, rx) = oneshot::channel();
        self.send(Request::Read {
            lun,
            offset,
            len,
            reply,
        })
        .await;
        rx
    }

    /// Queue a write of `data` at `offset`.
    pub async fn write(&self, lun: usize, offset: u64, data: Bytes) -> Pending<()> {
        let (reply, rx) = oneshot::channel();
        self.send(Request::Write {
            lun,
            offset,
            data,
            reply,
        })
        .await;
        rx
    }

    /// Queue an fdatasync of the LUN's image (after every write queued before it).
    pub async fn sync(&self, lun: usize) -> Pending<()> {
        let (reply, rx) = oneshot::channel();
        self.send(Request::Sync { lun, reply }).await;
        rx
    }

    /// Send; a stopped thread drops the request, and with it the reply sender, so the
    /// caller's receiver reports it.
    async fn send(&self, request: Request) {
        let _ = self.tx.send(request).await;
    }
}

/// Await a reply: the thread's error, or "stopped".
pub async fn wait<T>(pending: Pending<T>) -> std::io::Result<T> {
    pending.await.unwrap_or_else(|_| Err(gone()))
}

fn serve(images: Vec<Image>, mut rx: mpsc::Receiver<Request>) {
    let image = |lun: usize| {
        images
            .get(lun)
            .ok_or_else(|| std::io::Error::other(format!("no LUN {lun}")))
    };
    while let Some(request) = rx.blocking_recv() {
        match request {
            Request::Read {
                lun,
                offset,
                len,
                reply,
            } => {
                let result = image(lun).and_then(|i| {
                    let mut buf = BytesMut::zeroed(len);
                    i.file.read_exact_at(&mut buf, offset)?;
                    Ok(buf.freeze())
                });
                let _ = reply.send(result);
            }
            Request::Write {
                lun,
                offset,
                data,
                reply,
            } => {
                let result = image(lun).and_then(|i| i.file.write_all_at(&data, offset));
                if let Err(e) = &result {
                    tracing::warn!(lun, offset, error = %e, "msc image write failed");
                }
                let _ = reply.send(result);
            }
            Request::Sync { lun, reply } => {
                let result = image(lun).and_then(|i| i.file.sync_data());
                let _ = reply.send(result);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str, len: u64) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("usbfn-msc-image-{}-{name}.img", std::process::id()));
        let f = File::create(&path).expect("create");
        f.set_len(len).expect("size");
        path
    }

    #[test]
    fn start_errors_say_what_is_wrong() {
        let missing = std::env::temp_dir().join("usbfn-msc-does-not-exist.img");
        let e = Image::open(&missing, false).expect_err("missing");
        assert!(e.to_string().contains("cannot open read-write"), "{e}");
        assert!(e.to_string().contains("truncate -s"), "{e}");
        let short = temp("short", 1000);
        let e = Image::open(&short, false).expect_err("short");
        assert!(matches!(e, ImageError::Short { size: 1000, .. }), "{e}");
        let empty = temp("empty", 0);
        assert!(matches!(
            Image::open(&empty, true),
            Err(ImageError::Short { size: 0, .. })
        ));
        let good = temp("good", 4096);
        assert_eq!(Image::open(&good, false).expect("opens").size, 4096);
        for p in [short, empty, good] {
            let _ = std::fs::remove_file(p);
        }
    }

    #[tokio::test]
    async fn reads_and_writes_in_order() {
        let path = temp("rw", 8192);
        let io =
            Io::start(vec![Image::open(&path, false).expect("opens")], "test").expect("thread");
        let w = io.write(0, 512, Bytes::from_static(b"hello")).await;
        let r = io.read(0, 510, 9).await;
        wait(w).await.expect("written");
        assert_eq!(&wait(r).await.expect("read")[..], b"\0\0hello\0\0");
        assert!(
            wait(io.read(0, 8190, 4).await).await.is_err(),
            "past the end"
        );
        assert!(wait(io.read(3, 0, 4).await).await.is_err(), "no such LUN");
        wait(io.sync(0).await).await.expect("synced");
        let _ = std::fs::remove_file(path);
    }
}
