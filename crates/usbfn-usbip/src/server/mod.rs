//! The USB/IP server: exports usbfn devices to hosts that `usbip attach` them.
//!
//! One [`Server`] holds many devices, with busids `1-1`, `1-2`, ... in the order they were
//! added. A connection starts in the op phase (OP_REQ_DEVLIST answers and closes;
//! OP_REQ_IMPORT attaches the device: attach + bus reset at the export speed) and then
//! carries URBs until either side closes, which detaches the device.
//!
//! URBs are fully asynchronous: each CMD_SUBMIT goes to the device core and its RET_SUBMIT
//! is written only when the transfer really completes, so an IN URB with no data waits (a
//! NAK) while other endpoints flow. CMD_UNLINK answers -ECONNRESET when the URB was still
//! pending (and no RET_SUBMIT ever follows), 0 when its RET_SUBMIT already went out.
//!
//! Limits are enforced per connection ([`Limits`], [`ServerOptions`]); a peer that breaks
//! one is disconnected with a log line naming the limit, and the server and other
//! connections go on. The outstanding-URB limits are a window, not a fault: a host that
//! queues more URBs than `max_outstanding_urbs` / `max_outstanding_bytes`, or does not read
//! its replies, is simply not read from until the writer has answered some (TCP
//! backpressure); every URB accepted is answered exactly once. A peer that stops in the middle of a message (or stops reading the
//! replies) is dropped after [`ServerOptions::idle_timeout`]; a host that is merely idle
//! between messages is never dropped. `SECURITY.md` at the repository root has the threat
//! model and every limit with its default.

mod connection;
mod flow;
pub mod iso;
mod pcap;
mod replies;

pub use pcap::PcapTap;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use usbfn::{BusSpeed, Controller};

use crate::proto::{BusId, DevicePath, ExportedDevice, Limits, UsbDevice, UsbInterface, UsbSpeed};
pub use crate::socket::SendBuffer;

/// Something that wants to see every URB (the `--pcap` writer).
pub trait UrbTap: Send + Sync + std::fmt::Debug {
    /// A CMD_SUBMIT was accepted.
    fn submit(&self, device: &UsbDevice, cmd: &crate::proto::CmdSubmit);
    /// Its RET_SUBMIT is being sent.
    fn complete(&self, device: &UsbDevice, cmd: &SubmittedUrb, ret: &crate::proto::RetSubmit);
}

/// What the server remembers of a submitted URB.
#[derive(Clone, Debug)]
pub struct SubmittedUrb {
    /// Its seqnum.
    pub seqnum: u32,
    /// Its direction.
    pub direction: crate::proto::Direction,
    /// Endpoint number.
    pub ep: u8,
    /// Setup packet (control URBs).
    pub setup: [u8; 8],
    /// `transfer_buffer_length`.
    pub transfer_buffer_length: u32,
    /// `number_of_packets` as sent.
    pub number_of_packets: i32,
    /// `transfer_flags`.
    pub transfer_flags: u32,
    /// Isochronous descriptors as submitted (empty for other URBs): the reply echoes their
    /// offsets and lengths.
    pub iso: Vec<crate::proto::IsoPacketDescriptor>,
}

impl SubmittedUrb {
    /// What the server keeps of `cmd` until its answer is written.
    pub fn of(cmd: &crate::proto::CmdSubmit) -> Self {
        SubmittedUrb {
            seqnum: cmd.seqnum,
            direction: cmd.direction,
            ep: cmd.ep,
            setup: cmd.setup,
            transfer_buffer_length: cmd.transfer_buffer_length,
            number_of_packets: cmd.number_of_packets,
            transfer_flags: cmd.transfer_flags.0,
            iso: cmd.iso.clone(),
        }
    }
}

/// The core's URB for a CMD_SUBMIT, with its seqnum as the URB ID. Public so the fuzz
/// targets submit exactly what the server does.
pub fn core_urb(cmd: crate::proto::CmdSubmit) -> usbfn_core::Urb {
    use crate::proto::{Direction, TransferFlags};
    let flags = cmd.transfer_flags;
    usbfn_core::Urb {
        id: usbfn_core::UrbId(u64::from(cmd.seqnum)),
        endpoint: cmd.ep,
        direction: match cmd.direction {
            Direction::In => usbfn_wire::Direction::In,
            Direction::Out => usbfn_wire::Direction::Out,
        },
        setup: (cmd.ep == 0).then(|| usbfn_wire::SetupPacket::from_bytes(cmd.setup)),
        buffer_len: crate::usize_from(cmd.transfer_buffer_length),
        iso: iso::iso_request(&cmd),
        data: cmd.data,
        short_not_ok: flags.contains(TransferFlags::SHORT_NOT_OK),
        zero_packet: flags.contains(TransferFlags::ZERO_PACKET),
    }
}

/// A device exported by the server.
#[derive(Debug)]
pub struct Export {
    /// The busid hosts import.
    pub busid: BusId,
    /// The device.
    pub controller: Controller,
    /// The speed hosts see.
    pub speed: BusSpeed,
    pub(crate) busnum: u32,
    pub(crate) devnum: u32,
    pub(crate) imported: Mutex<bool>,
}

impl Export {
    /// The 312-byte device block for DEVLIST and IMPORT replies.
    pub fn usb_device(&self) -> Result<UsbDevice, crate::proto::ProtoError> {
        let (device, value, interfaces) = self.controller.with_model(|m| {
            let d = m.device_descriptor(self.speed);
            let first = m.configurations().first();
            (
                d,
                first.map_or(0, |c| c.value),
                first.map_or(0, |c| c.interfaces.len()),
            )
        });
        Ok(UsbDevice {
            path: DevicePath::new(&format!(
                "/sys/devices/usbfn/usb{}/{}",
                self.busnum, self.busid
            ))?,
            busid: self.busid.clone(),
            busnum: self.busnum,
            devnum: self.devnum,
            speed: usbip_speed(self.speed),
            id_vendor: device.id_vendor,
            id_product: device.id_product,
            bcd_device: device.bcd_device,
            b_device_class: device.b_device_class,
            b_device_sub_class: device.b_device_sub_class,
            b_device_protocol: device.b_device_protocol,
            b_configuration_value: value,
            b_num_configurations: device.b_num_configurations,
            b_num_interfaces: u8::try_from(interfaces).map_err(|_| {
                crate::proto::ProtoError::LimitExceeded {
                    message: "USB/IP device block",
                    field: "bNumInterfaces",
                    value: interfaces as u64,
                    limit: crate::proto::Limit::WireU8,
                    max: u8::MAX.into(),
                }
            })?,
        })
    }

    /// The DEVLIST entry: the device block and the first configuration's interfaces.
    pub fn exported(&self) -> Result<ExportedDevice, crate::proto::ProtoError> {
        let interfaces = self.controller.with_model(|m| {
            m.configurations()
                .first()
                .map(|c| {
                    c.interfaces
                        .iter()
                        .filter_map(|f| m.interface(*f))
                        .filter_map(|i| i.alternates.first())
                        .map(|a| UsbInterface {
                            b_interface_class: a.class.0,
                            b_interface_sub_class: a.class.1,
                            b_interface_protocol: a.class.2,
                        })
                        .collect()
                })
                .unwrap_or_default()
        });
        Ok(ExportedDevice {
            device: self.usb_device()?,
            interfaces,
        })
    }

    /// True while a host has it imported.
    pub fn is_imported(&self) -> bool {
        *self.imported.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The USB/IP speed code of a bus speed.
pub fn usbip_speed(speed: BusSpeed) -> UsbSpeed {
    match speed {
        BusSpeed::Full => UsbSpeed(2),
        BusSpeed::High => UsbSpeed(3),
        BusSpeed::Super => UsbSpeed(5),
    }
}

/// Default [`ServerOptions::idle_timeout`]: 60 s.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default [`ServerOptions::max_connections`]: 128 connections at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 128;
/// Default [`ServerOptions::max_outstanding_bytes`]: 128 MiB per connection.
pub const DEFAULT_MAX_OUTSTANDING_BYTES: usize = 128 * 1024 * 1024;

/// Server settings.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Per-connection limits.
    pub limits: Limits,
    /// Sees every URB (for `--pcap`).
    pub tap: Option<Arc<dyn UrbTap>>,
    /// How long a peer may stall in the middle of something before it is disconnected:
    /// the op request must arrive within this time of connecting (and its reply be taken);
    /// in the URB phase each message must arrive within this time of its first byte, and
    /// each batch of replies be taken within this time. A host that is idle between
    /// messages is never dropped. `Duration::MAX` disables it.
    pub idle_timeout: Duration,
    /// Most connections served at once (in any phase); more are closed as soon as they are
    /// accepted, until one ends.
    pub max_connections: usize,
    /// Most bytes of URBs outstanding on one connection: the sum of
    /// `transfer_buffer_length` of every URB accepted and not yet answered (IN buffers the
    /// device fills, OUT data it holds). When it is reached the server stops reading the
    /// connection until replies are written (backpressure); only a single URB larger than
    /// this is refused, by disconnecting the host.
    pub max_outstanding_bytes: usize,
    /// The kernel's send buffer of each connection (default: 128 KiB for loopback peers,
    /// autotuning for the others; see [`crate::socket`]).
    pub send_buffer: SendBuffer,
}

impl Default for ServerOptions {
    fn default() -> ServerOptions {
        ServerOptions {
            limits: Limits::default(),
            tap: None,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_outstanding_bytes: DEFAULT_MAX_OUTSTANDING_BYTES,
            send_buffer: SendBuffer::default(),
        }
    }
}

/// A USB/IP server for a set of devices.
#[derive(Debug, Clone)]
pub struct Server {
    pub(crate) exports: Arc<Vec<Arc<Export>>>,
    pub(crate) options: ServerOptions,
}

/// The devnum of the `port`th export (1-based): `port + 1`, refused past the 16 bits `devid`
/// keeps for it, where it would alias another export's devid.
fn devnum(port: usize) -> Result<u32, crate::proto::ProtoError> {
    let devnum = port + 1;
    u32::try_from(devnum).ok().filter(|&d| d <= 0xffff).ok_or(
        crate::proto::ProtoError::LimitExceeded {
            message: "USB/IP device block",
            field: "devnum",
            value: devnum as u64,
            limit: crate::proto::Limit::DevidDevnum,
            max: 0xffff,
        },
    )
}

/// Builds a [`Server`].
#[derive(Debug, Default)]
pub struct ServerBuilder {
    exports: Vec<Arc<Export>>,
    options: ServerOptions,
}

impl ServerBuilder {
    /// Export `controller` at `speed`; returns its busid (`1-1`, `1-2`, ...).
    pub fn export(
        &mut self,
        controller: Controller,
        speed: BusSpeed,
    ) -> Result<BusId, crate::proto::ProtoError> {
        let port = self.exports.len() + 1;
        let busid = BusId::new(&format!("1-{port}"))?;
        self.exports.push(Arc::new(Export {
            busid: busid.clone(),
            controller,
            speed,
            busnum: 1,
            devnum: devnum(port)?,
            imported: Mutex::new(false),
        }));
        Ok(busid)
    }

    /// Set the options.
    pub fn options(&mut self, options: ServerOptions) -> &mut Self {
        self.options = options;
        self
    }

    /// Finish.
    pub fn build(self) -> Server {
        Server {
            exports: Arc::new(self.exports),
            options: self.options,
        }
    }
}

impl Server {
    /// Start building a server.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// Replace the options (before serving).
    pub fn set_options(&mut self, options: ServerOptions) {
        self.options = options;
    }

    /// The exported devices.
    pub fn exports(&self) -> &[Arc<Export>] {
        &self.exports
    }

    /// Accept connections until `shutdown` resolves; then every connection is closed (its
    /// device detached) before this returns.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        let mut tasks = tokio::task::JoinSet::new();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut refusing = false;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(x) => x,
                        Err(e) => {
                            // e.g. EMFILE: keep serving the connections we have.
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    while tasks.try_join_next().is_some() {}
                    let limit = self.options.max_connections;
                    if tasks.len() >= limit {
                        // Closing at once costs the peer a reconnect, the server nothing.
                        if !std::mem::replace(&mut refusing, true) {
                            tracing::warn!(%peer, limit, "max_connections reached: refusing connections");
                        } else {
                            tracing::debug!(%peer, limit, "connection refused (max_connections)");
                        }
                        drop(stream);
                        continue;
                    }
                    if std::mem::replace(&mut refusing, false) {
                        tracing::info!(limit, "below max_connections again: accepting connections");
                    }
                    let server = self.clone();
                    let stop = stop_rx.clone();
                    tasks.spawn(async move { server.handle(stream, peer, stop).await });
                }
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                () = &mut shutdown => break,
            }
        }
        let _ = stop_tx.send(true);
        while tasks.join_next().await.is_some() {}
        Ok(())
    }

    async fn handle(
        &self,
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
        stop: tokio::sync::watch::Receiver<bool>,
    ) {
        crate::socket::tune(&stream, peer, self.options.send_buffer);
        match connection::run(self, stream, peer, stop).await {
            Ok(()) => tracing::debug!(%peer, "connection closed"),
            Err(e) => tracing::warn!(%peer, error = %e, "connection closed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Limit, ProtoError};
    use usbfn::DeviceConfig;

    fn interfaces_toml(n: usize) -> String {
        let mut s = String::from("[device]\nvendor_id = 0x1209\nproduct_id = 0x0002\n");
        for i in 0..n {
            s.push_str(&format!("[[interfaces]]\nname = \"i{i}\"\n"));
        }
        s
    }

    fn export_of(n: usize) -> Arc<Export> {
        let config = DeviceConfig::from_toml(&interfaces_toml(n)).expect("toml");
        let controller = Controller::new(&config).expect("device");
        let mut b = ServerBuilder::default();
        b.export(controller, BusSpeed::High).expect("export");
        b.exports.pop().expect("one export")
    }

    #[tokio::test]
    async fn device_block_counts_interfaces() {
        let d = export_of(255).usb_device().expect("255 interfaces fit");
        assert_eq!(d.b_num_interfaces, 255);
    }

    /// bNumInterfaces is one byte: the core refuses a 256th interface in a configuration, so
    /// an IMPORT reply never has to describe one (`usb_device` still checks).
    #[tokio::test]
    async fn a_256th_interface_never_reaches_the_device_block() {
        let config = DeviceConfig::from_toml(&interfaces_toml(256)).expect("toml");
        let e = Controller::new(&config).expect_err("256 do not fit bNumInterfaces");
        assert!(e.to_string().contains("bNumInterfaces"), "{e}");
    }

    #[test]
    fn devnum_is_refused_past_devids_16_bits() {
        assert_eq!(devnum(1).expect("first export"), 2);
        assert_eq!(devnum(0xfffe).expect("last that fits"), 0xffff);
        let e = devnum(0xffff).expect_err("would alias busnum's bits of devid");
        assert!(
            matches!(
                e,
                ProtoError::LimitExceeded {
                    field: "devnum",
                    value: 0x1_0000,
                    limit: Limit::DevidDevnum,
                    ..
                }
            ),
            "{e:?}"
        );
    }
}
