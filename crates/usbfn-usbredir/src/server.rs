//! Where a device's usbredir connections come from: a TCP or Unix socket usbfn listens on
//! (QEMU's chardev is the client, `reconnect=1` makes it come back), or an address usbfn
//! connects to (a QEMU whose chardev listens, `server=on`), again every second after the
//! connection ends.
//!
//! One guest at a time per device: a second connection while one is served is closed at
//! once (the device has one bus).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use usbfn::Controller;

use crate::host::{HostOptions, serve_connection};

/// A usbredir socket address: `HOST:PORT` or `unix:PATH`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    /// TCP.
    Tcp(SocketAddr),
    /// A Unix stream socket.
    Unix(PathBuf),
}

impl Address {
    /// Parse `unix:PATH` or a socket address (`127.0.0.1:4000`, `[::1]:4000`).
    pub fn parse(text: &str) -> Result<Address, String> {
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("unix: needs a path, e.g. unix:/tmp/usbfn.sock".into());
            }
            return Ok(Address::Unix(PathBuf::from(path)));
        }
        text.parse().map(Address::Tcp).map_err(|e| {
            format!("{text:?} is neither HOST:PORT (an IP address and a port) nor unix:PATH: {e}")
        })
    }

    /// The address of the `n`th device (0-based) when one address is given for several:
    /// TCP ports count up from this one, Unix paths get `.2`, `.3`, ... after the first.
    pub fn nth(&self, n: usize) -> Result<Address, String> {
        match self {
            Address::Tcp(a) => {
                // Port 0 (any free port) stays 0 for every device.
                let port = if a.port() == 0 {
                    0
                } else {
                    u16::try_from(usize::from(a.port()) + n)
                        .map_err(|_| format!("port {} + {n} is beyond 65535", a.port()))?
                };
                Ok(Address::Tcp(SocketAddr::new(a.ip(), port)))
            }
            Address::Unix(p) if n == 0 => Ok(Address::Unix(p.clone())),
            Address::Unix(p) => {
                let mut s = p.clone().into_os_string();
                s.push(format!(".{}", n + 1));
                Ok(Address::Unix(PathBuf::from(s)))
            }
        }
    }

    /// The `-chardev` QEMU needs to reach this address: as the client when usbfn listens
    /// (`reconnect=1`: it comes back after a restart of either side), as the server when
    /// usbfn connects.
    pub fn qemu_chardev(&self, id: &str, usbfn_listens: bool) -> String {
        let target = match self {
            Address::Tcp(a) => format!("host={},port={}", a.ip(), a.port()),
            Address::Unix(p) => format!("path={}", p.display()),
        };
        if usbfn_listens {
            format!("socket,id={id},{target},reconnect=1")
        } else {
            format!("socket,id={id},{target},server=on,wait=off")
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp(a) => write!(f, "{a}"),
            Address::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// A bound listener.
#[derive(Debug)]
pub enum Listener {
    /// TCP.
    Tcp(tokio::net::TcpListener),
    /// Unix (the path is removed when the listener is dropped).
    Unix(tokio::net::UnixListener, PathBuf),
}

impl Listener {
    /// Bind `address` (a stale Unix socket file left by an earlier run is replaced).
    pub async fn bind(address: &Address) -> std::io::Result<Listener> {
        match address {
            Address::Tcp(a) => Ok(Listener::Tcp(tokio::net::TcpListener::bind(a).await?)),
            Address::Unix(p) => {
                use std::os::unix::fs::FileTypeExt;
                if std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_socket()) {
                    std::fs::remove_file(p)?;
                }
                Ok(Listener::Unix(
                    tokio::net::UnixListener::bind(p)?,
                    p.clone(),
                ))
            }
        }
    }

    /// The bound address (with the port picked for port 0).
    pub fn local_addr(&self) -> std::io::Result<Address> {
        match self {
            Listener::Tcp(l) => Ok(Address::Tcp(l.local_addr()?)),
            Listener::Unix(_, p) => Ok(Address::Unix(p.clone())),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, p) = self {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Accept guests on `listener` for `controller` until `shutdown` changes to true.
pub async fn listen(
    controller: Controller,
    listener: Listener,
    options: HostOptions,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let busy = Arc::new(AtomicBool::new(false));
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = accept(&listener) => a,
            _ = shutdown.changed() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "usbredir accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if busy.swap(true, Ordering::AcqRel) {
            tracing::warn!(%peer, "usbredir: a guest is already attached: connection closed");
            drop(stream);
            continue;
        }
        tracing::info!(%peer, "usbredir: guest connected");
        let controller = controller.clone();
        let options = options.clone();
        let busy = busy.clone();
        let stop = shutdown.clone();
        tasks.spawn(async move {
            let r = stream.serve(&controller, &options, stop).await;
            busy.store(false, Ordering::Release);
            match r {
                Ok(()) => tracing::info!(%peer, "usbredir: guest disconnected"),
                Err(e) => tracing::warn!(%peer, error = %e, "usbredir: connection closed"),
            }
        });
    }
    tasks.shutdown().await;
    Ok(())
}

/// Connect to a listening QEMU at `address`, again every second after a failure or after
/// the connection ends, until `shutdown` changes to true.
pub async fn connect(
    controller: Controller,
    address: Address,
    options: HostOptions,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut logged = false;
    loop {
        let r = match dial(&address).await {
            Ok(stream) => {
                logged = false;
                tracing::info!(%address, "usbredir: connected to the guest");
                Some(stream.serve(&controller, &options, shutdown.clone()).await)
            }
            Err(e) => {
                if !std::mem::replace(&mut logged, true) {
                    tracing::info!(%address, error = %e, "usbredir: guest not reachable yet; retrying every second");
                }
                None
            }
        };
        if let Some(Err(e)) = r {
            tracing::warn!(%address, error = %e, "usbredir: connection closed");
        }
        if *shutdown.borrow() {
            return Ok(());
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.changed() => return Ok(()),
        }
    }
}

enum Stream {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

impl Stream {
    /// One guest's session on this connection.
    async fn serve(
        self,
        controller: &Controller,
        options: &HostOptions,
        stop: watch::Receiver<bool>,
    ) -> Result<(), crate::host::HostError> {
        match self {
            Stream::Tcp(s) => run_one(controller, s, options, stop).await,
            Stream::Unix(s) => run_one(controller, s, options, stop).await,
        }
    }
}

/// Connect to a listening QEMU (TCP without Nagle: usbredir packets are small and latency
/// bound).
async fn dial(address: &Address) -> std::io::Result<Stream> {
    Ok(match address {
        Address::Tcp(a) => {
            let s = tokio::net::TcpStream::connect(a).await?;
            let _ = s.set_nodelay(true);
            Stream::Tcp(s)
        }
        Address::Unix(p) => Stream::Unix(tokio::net::UnixStream::connect(p).await?),
    })
}

async fn accept(listener: &Listener) -> std::io::Result<(Stream, String)> {
    match listener {
        Listener::Tcp(l) => {
            let (s, peer) = l.accept().await?;
            let _ = s.set_nodelay(true);
            Ok((Stream::Tcp(s), peer.to_string()))
        }
        Listener::Unix(l, p) => {
            let (s, _) = l.accept().await?;
            Ok((Stream::Unix(s), format!("unix:{}", p.display())))
        }
    }
}

async fn run_one<S: AsyncRead + AsyncWrite + Unpin>(
    controller: &Controller,
    stream: S,
    options: &HostOptions,
    mut stop: watch::Receiver<bool>,
) -> Result<(), crate::host::HostError> {
    let stopped = async move {
        while !*stop.borrow_and_update() {
            if stop.changed().await.is_err() {
                return;
            }
        }
    };
    serve_connection(controller, stream, options, stopped).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let a = Address::parse("127.0.0.1:4000").unwrap();
        assert_eq!(a.nth(2).unwrap().to_string(), "127.0.0.1:4002");
        assert_eq!(
            a.qemu_chardev("ur0", true),
            "socket,id=ur0,host=127.0.0.1,port=4000,reconnect=1"
        );
        assert_eq!(
            a.qemu_chardev("ur0", false),
            "socket,id=ur0,host=127.0.0.1,port=4000,server=on,wait=off"
        );
        let u = Address::parse("unix:/tmp/x.sock").unwrap();
        assert_eq!(u.nth(0).unwrap().to_string(), "unix:/tmp/x.sock");
        assert_eq!(u.nth(1).unwrap().to_string(), "unix:/tmp/x.sock.2");
        assert!(Address::parse("unix:").is_err());
        assert!(Address::parse("localhost").is_err());
        assert!(Address::parse("127.0.0.1:65535").unwrap().nth(1).is_err());
    }
}
