//! `net=tap:NAME`: the host's frames bridged to a TAP interface of the device's machine, with
//! the `tun` crate (Linux `/dev/net/tun`, `IFF_TAP | IFF_NO_PI`). Creating or attaching to a
//! TAP interface needs CAP_NET_ADMIN (or a persistent interface owned by the user).

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::{LinkStats, MAX_FRAME};

/// Why the TAP interface could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    /// No permission: the process lacks CAP_NET_ADMIN.
    #[error(
        "cannot open TAP interface {name:?}: {error} (net=tap needs CAP_NET_ADMIN: run as root, \
         `sudo setcap cap_net_admin+ep $(which usbfn)`, or create it first with \
         `ip tuntap add dev {name} mode tap user $USER`; net=embedded needs no privileges)"
    )]
    Permission {
        /// The interface.
        name: String,
        /// What the kernel said (in the message, so not a `source`).
        error: std::io::Error,
    },
    /// Any other failure (no /dev/net/tun, a bad name, ...).
    #[error("cannot open TAP interface {name:?}: {message}")]
    Open {
        /// The interface.
        name: String,
        /// What went wrong.
        message: String,
    },
}

/// Longest interface name Linux takes (IFNAMSIZ - 1).
const MAX_NAME: usize = 15;

pub(crate) fn start(
    name: &str,
    mut from_host: mpsc::Receiver<Bytes>,
    to_host: mpsc::Sender<Bytes>,
    stats: Arc<LinkStats>,
) -> Result<tokio::task::JoinHandle<()>, TapError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !valid {
        return Err(TapError::Open {
            name: name.to_owned(),
            message: format!(
                "an interface name is 1 to {MAX_NAME} characters of A-Z, a-z, 0-9, '-', '_', '.'"
            ),
        });
    }
    let mut config = tun::Configuration::default();
    config.tun_name(name).layer(tun::Layer::L2).up();
    let device = tun::create_as_async(&config).map_err(|e| match e {
        tun::Error::Io(io) if io.kind() == std::io::ErrorKind::PermissionDenied => {
            TapError::Permission {
                name: name.to_owned(),
                error: io,
            }
        }
        other => TapError::Open {
            name: name.to_owned(),
            message: other.to_string(),
        },
    })?;
    let device = Arc::new(device);
    tracing::info!(interface = name, "TAP network up");
    let name = name.to_owned();
    Ok(tokio::spawn(async move {
        let reader = device.clone();
        let stats_r = stats.clone();
        let inbound = async move {
            let mut buf = vec![0u8; MAX_FRAME + 64];
            loop {
                match reader.recv(&mut buf).await {
                    Ok(n) if n <= MAX_FRAME => {
                        let frame = Bytes::copy_from_slice(buf.get(..n).unwrap_or_default());
                        match to_host.try_send(frame) {
                            Ok(()) => LinkStats::bump(&stats_r.frames_to_host),
                            Err(mpsc::error::TrySendError::Full(_)) => {
                                LinkStats::bump(&stats_r.dropped_to_host)
                            }
                            Err(mpsc::error::TrySendError::Closed(_)) => return,
                        }
                    }
                    Ok(_) => LinkStats::bump(&stats_r.dropped_to_host),
                    Err(e) => {
                        tracing::warn!(error = %e, "TAP read failed");
                        return;
                    }
                }
            }
        };
        let outbound = async move {
            while let Some(frame) = from_host.recv().await {
                if let Err(e) = device.send(&frame).await {
                    tracing::debug!(error = %e, "TAP write failed; frame dropped");
                    LinkStats::bump(&stats.dropped_to_network);
                }
            }
        };
        tokio::select! {
            _ = inbound => {}
            _ = outbound => {}
        }
        tracing::info!(interface = %name, "TAP network down");
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bad_interface_names_are_refused_before_any_system_call() {
        for name in ["", "much-too-long-name", "bad/name", "sp ace"] {
            let (_tx, rx) = mpsc::channel(1);
            let (tx2, _rx2) = mpsc::channel(1);
            let err = start(name, rx, tx2, Arc::default()).expect_err("refused");
            assert!(matches!(err, TapError::Open { .. }), "{name:?}: {err}");
            assert!(err.to_string().contains("1 to 15 characters"), "{err}");
        }
    }
}
