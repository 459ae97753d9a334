//! Mass storage (`msc,image=FILE[,ro][,removable]`): USB Mass Storage Bulk-Only Transport
//! with the SCSI commands Linux, Windows and macOS send, backed by image files, one per LUN.
//!
//! * **Interface** class 0x08 (mass storage), subclass 0x06 (SCSI transparent), protocol
//!   0x50 (Bulk-Only); bulk IN and OUT.
//! * **Class requests**: Bulk-Only Mass Storage Reset (0x21/0xFF) aborts the command in
//!   progress and re-arms for a CBW; Get Max LUN (0xA1/0xFE) answers the LUN count - 1.
//! * **Transport** ([`transport`]): every CBW is checked (BOT §6.2), as f_mass_storage
//!   does: one that is not valid wedges bulk IN (halted even after CLEAR_FEATURE(HALT)) and
//!   drops bulk OUT data until the Bulk-Only Mass Storage Reset; one that is not meaningful
//!   halts both bulk endpoints once. The thirteen cases of BOT §6.7 ([`bot::Plan`]) decide the data stage,
//!   the endpoint halts and phase errors; residues are exact.
//! * **SCSI** ([`scsi`]): TEST UNIT READY, REQUEST SENSE, INQUIRY (VPD 0x00/0x80/0x83), MODE
//!   SENSE(6/10), START STOP UNIT, PREVENT ALLOW MEDIUM REMOVAL, READ FORMAT CAPACITIES, READ
//!   CAPACITY(10/16), READ(6/10/16), WRITE(6/10/16), VERIFY(10), SYNCHRONIZE CACHE(10/16),
//!   REPORT LUNS. Anything else fails with ILLEGAL REQUEST / INVALID COMMAND OPERATION CODE.
//! * **Durability**: a WRITE with FUA and SYNCHRONIZE CACHE are on stable storage
//!   (`fdatasync`) before their CSW; every other write is in the image (the OS page cache)
//!   before its CSW, so it survives the usbfn process being killed.
//! * **Read-only** (`ro`): the image is opened read-only; writes fail with DATA PROTECT /
//!   WRITE PROTECTED, and MODE SENSE sets WP.
//! * **Streaming**: block data moves through a bounded window ([`transport::WINDOW`] chunks
//!   of [`transport::CHUNK`] bytes) with file I/O on one thread per function ([`image`]).
//!
//! Options (`--function msc,...` or a `[function]` table's keys):
//!
//! | key | meaning |
//! |---|---|
//! | `image=PATH` | a LUN backed by PATH (repeat for several LUNs, up to 16) |
//! | `ro` | the latest `image=` is read-only (before any `image=`: the first) |
//! | `removable` | the latest `image=` is removable (RMB; START STOP UNIT may eject it) |
//! | `luns=image=PATH;ro;removable` | one LUN with its flags (a TOML `luns = [{...}]` table becomes this) |

pub mod bot;
pub mod image;
pub mod scsi;
pub mod transport;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::task::JoinHandle;
use usbfn_core::config::{DeviceSection, EndpointSection, InterfaceSection, TransferTypeName};
use usbfn_core::{BusEvent, BusSpeed, ClassInfo};
use usbfn_wire::{Direction, RequestType, SetupPacket, TransferType};

use super::compose::Fragment;
use super::options::{FunctionOptions, OptionError, flag};
use crate::{Error, ServiceApi};
use bot::{MAX_LUNS, REQUEST_GET_MAX_LUN, REQUEST_RESET};
use image::{Image, ImageError, Io};
use scsi::{BLOCK, Identity, Lun};
use transport::{Pipes, Shared, Stopped};

/// The option names, for error messages.
pub const OPTION_NAMES: &str = "image, ro, removable, luns";
/// The vendor ID of a mass-storage device alone (pid.codes).
pub const VENDOR_ID: u16 = 0x1209;
/// Its product ID (pid.codes' test PID).
pub const PRODUCT_ID: u16 = 0x0001;

/// One logical unit's options.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct LunOptions {
    /// The image file (or block device).
    pub image: PathBuf,
    /// Serve it read-only.
    pub read_only: bool,
    /// Report it removable.
    pub removable: bool,
}

/// The function's options: its LUNs in order.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Options {
    /// The LUNs (LUN 0 first).
    pub luns: Vec<LunOptions>,
    /// Flags given before the first `image=`.
    early: (bool, bool),
}

impl Options {
    fn push(&mut self, lun: LunOptions, key: &str, value: &str) -> Result<(), OptionError> {
        if self.luns.len() >= MAX_LUNS {
            return Err(OptionError::Value {
                key: key.to_owned(),
                value: value.to_owned(),
                allowed: "at most 16 LUNs (bCBWLUN has 4 bits):",
            });
        }
        self.luns.push(lun);
        Ok(())
    }

    fn flag_latest(&mut self, key: &str, value: &str) -> Result<(), OptionError> {
        let on = flag(key, value)?;
        let (ro, removable) = match self.luns.last_mut() {
            Some(l) => (&mut l.read_only, &mut l.removable),
            None => (&mut self.early.0, &mut self.early.1),
        };
        if key == "ro" {
            *ro = on;
        } else {
            *removable = on;
        }
        Ok(())
    }
}

impl FunctionOptions for Options {
    fn set(&mut self, key: &str, value: &str) -> Result<(), OptionError> {
        match key {
            "image" => {
                let image = PathBuf::from(value.trim());
                if image.as_os_str().is_empty() {
                    return Err(OptionError::Value {
                        key: key.into(),
                        value: value.into(),
                        allowed: "a file path",
                    });
                }
                let (read_only, removable) = if self.luns.is_empty() {
                    self.early
                } else {
                    (false, false)
                };
                self.push(
                    LunOptions {
                        image,
                        read_only,
                        removable,
                    },
                    key,
                    value,
                )?;
            }
            "ro" | "removable" => self.flag_latest(key, value)?,
            "luns" | "lun" => {
                let mut lun = LunOptions::default();
                for item in value.split(';').map(str::trim).filter(|i| !i.is_empty()) {
                    let (k, v) = item.split_once('=').unwrap_or((item, "true"));
                    match k.trim() {
                        "image" => lun.image = PathBuf::from(v.trim()),
                        "ro" => lun.read_only = flag("ro", v)?,
                        "removable" => lun.removable = flag("removable", v)?,
                        _ => {
                            return Err(OptionError::Value {
                                key: key.into(),
                                value: value.into(),
                                allowed: "image=PATH;ro;removable (keys image, ro, removable)",
                            });
                        }
                    }
                }
                if lun.image.as_os_str().is_empty() {
                    return Err(OptionError::Value {
                        key: key.into(),
                        value: value.into(),
                        allowed: "a LUN with image=PATH",
                    });
                }
                self.push(lun, key, value)?;
            }
            other => {
                return Err(OptionError::Unknown {
                    function: "msc",
                    key: other.to_owned(),
                    known: OPTION_NAMES,
                });
            }
        }
        Ok(())
    }
}

/// The device descriptor of a mass-storage device alone.
pub fn device() -> DeviceSection {
    DeviceSection {
        ..super::function_device(
            VENDOR_ID,
            PRODUCT_ID,
            Some("usbfn Mass Storage".into()),
            Some("0123456789AB".into()),
        )
    }
}

/// The interface name of instance `instance`.
pub fn interface_name(instance: usize) -> String {
    format!("msc{instance}")
}

/// One interface (class 8/6/0x50) with bulk IN 0x81 and OUT 0x01 (renumbered in a composite).
pub fn fragment(_options: &Options, instance: usize) -> Fragment {
    let bulk = |address: u8| EndpointSection::new(Some(address), None, TransferTypeName::Bulk);
    Fragment {
        device: device(),
        interfaces: vec![InterfaceSection {
            name: interface_name(instance),
            guid: None,
            number: None,
            device_request_owner: false,
            compatible_id: None,
            class: Some(0x08),
            subclass: Some(0x06),
            protocol: Some(0x50),
            string: Some("Mass Storage".into()),
            class_descriptors: None,
            endpoints: vec![bulk(0x81), bulk(0x01)],
            descriptor: None,
            alternates: Vec::new(),
        }],
        associations: Vec::new(),
    }
}

/// The device side, ready: the images opened and checked, the I/O thread running.
#[derive(Debug)]
pub struct Prepared {
    shared: Arc<Shared>,
}

/// Why the function cannot start.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// No `image=` given.
    #[error("msc needs at least one image=FILE (e.g. --function msc,image=disk.img)")]
    NoImage,
    /// An image cannot be used.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The I/O thread could not start.
    #[error("msc: cannot start the I/O thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// Open every image (errors: missing, short, unwritable without `ro`) and start the I/O
/// thread.
pub fn prepare(options: &Options, instance: usize) -> Result<Prepared, PrepareError> {
    if options.luns.is_empty() {
        return Err(PrepareError::NoImage);
    }
    let mut images = Vec::new();
    let mut luns = Vec::new();
    for (n, l) in options.luns.iter().enumerate() {
        let image = Image::open(&l.image, l.read_only)?;
        tracing::info!(
            lun = n,
            image = %image.path.display(),
            bytes = image.size,
            read_only = l.read_only,
            removable = l.removable,
            "msc: LUN ready"
        );
        luns.push(Lun::new(
            image.size / BLOCK,
            l.read_only,
            l.removable,
            format!("USBFN{instance:02}{n:02}"),
        ));
        images.push(image);
    }
    let io = Io::start(images, &interface_name(instance)).map_err(PrepareError::Thread)?;
    Ok(Prepared {
        shared: Arc::new(Shared {
            luns: Mutex::new(luns),
            identity: Identity::default(),
            io,
            wedged: AtomicBool::new(false),
        }),
    })
}

/// The bulk pipes of the interface at `speed`.
fn pipes(info: &ClassInfo, speed: BusSpeed) -> Option<Pipes> {
    let find = |dir: Direction| info.find_pipe(speed, TransferType::Bulk, dir);
    let (bulk_in, mps) = find(Direction::In)?;
    let (bulk_out, _) = find(Direction::Out)?;
    Some(Pipes {
        bulk_in,
        bulk_out,
        max_packet: mps.max(8),
    })
}

/// Serve the function on its interface until the interface fails.
pub async fn run<S: ServiceApi>(iface: S, prepared: Prepared) -> Result<(), Error> {
    let iface = Arc::new(iface);
    let info = iface.class_info().await?;
    let shared = prepared.shared;
    let luns = shared.luns.lock().map(|l| l.len()).unwrap_or(1);
    let mut speed = BusSpeed::High;
    let mut current: Option<Pipes> = None;
    let mut transport: Option<JoinHandle<Stopped>> = None;
    iface.activate_bus().await?;
    loop {
        let event = iface.next_event().await?;
        tracing::debug!(?event, "msc event");
        match event {
            BusEvent::Reset(s) => {
                speed = s;
                stop(&mut transport).await;
                shared.wedged.store(false, Ordering::SeqCst);
                current = None;
            }
            BusEvent::Configured(_) | BusEvent::SetInterface { .. } => {
                stop(&mut transport).await;
                // A new configuration re-arms the endpoints un-halted.
                shared.wedged.store(false, Ordering::SeqCst);
                current = pipes(&info, speed);
                if current.is_none() {
                    tracing::error!("msc: the interface has no bulk IN and OUT pipes");
                }
                transport = current.map(|p| start(&iface, p, &shared));
            }
            BusEvent::UnConfigured | BusEvent::Detach => {
                stop(&mut transport).await;
                current = None;
            }
            BusEvent::SetupPacket(setup) => {
                let result = match class_request(&setup) {
                    Some(REQUEST_RESET) => {
                        // Abort the command in progress and wait for the next CBW; the host
                        // then clears both halts (reset recovery).
                        tracing::info!("msc: Bulk-Only Mass Storage Reset");
                        stop(&mut transport).await;
                        // As f_mass_storage: the reset ends a wedge, and clears the halt of
                        // bulk-in it forced (the host's CLEAR_FEATUREs follow anyway).
                        if shared.wedged.swap(false, Ordering::SeqCst)
                            && let Some(p) = current
                            && let Err(e) = iface.set_pipe_state(p.bulk_in, false).await
                        {
                            tracing::debug!(error = %e, "msc: clearing the wedged bulk-in failed");
                        }
                        transport = current.map(|p| start(&iface, p, &shared));
                        iface.control_status_handshake_in().await
                    }
                    Some(REQUEST_GET_MAX_LUN) => {
                        let max = u8::try_from(luns.saturating_sub(1)).unwrap_or(15);
                        match iface
                            .transfer_in(
                                usbfn_core::PipeId::CONTROL,
                                Bytes::copy_from_slice(&[max]),
                            )
                            .await
                        {
                            Ok(_) => iface.control_status_handshake_out().await,
                            Err(e) => Err(e),
                        }
                    }
                    _ => {
                        tracing::debug!(%setup, "msc: request not supported; stalling");
                        iface
                            .set_pipe_state(usbfn_core::PipeId::CONTROL, true)
                            .await
                    }
                };
                if let Err(e) = result {
                    tracing::debug!(error = %e, %setup, "msc: could not answer a setup packet");
                }
            }
            BusEvent::Attach | BusEvent::Suspend | BusEvent::Resume => {}
        }
    }
}

/// `Some(bRequest)` for the two Bulk-Only class requests with their required fields.
fn class_request(setup: &SetupPacket) -> Option<u8> {
    if setup.request_type() != RequestType::Class || setup.w_value != 0 {
        return None;
    }
    match (setup.b_request, setup.direction(), setup.w_length) {
        (REQUEST_RESET, Direction::Out, 0) => Some(REQUEST_RESET),
        (REQUEST_GET_MAX_LUN, Direction::In, 1..) => Some(REQUEST_GET_MAX_LUN),
        _ => None,
    }
}

fn start<S: ServiceApi>(iface: &Arc<S>, pipes: Pipes, shared: &Arc<Shared>) -> JoinHandle<Stopped> {
    let (iface, shared) = (iface.clone(), shared.clone());
    tokio::spawn(async move {
        let stopped = transport::run(iface, pipes, shared).await;
        tracing::debug!(?stopped, "msc transport stopped");
        stopped
    })
}

/// Abort the transport task and wait until it is gone (its transfers are cancelled when
/// its futures drop).
async fn stop(transport: &mut Option<JoinHandle<Stopped>>) {
    if let Some(t) = transport.take() {
        t.abort();
        let _ = t.await;
    }
}

#[cfg(test)]
mod tests;
