//! The two hosts a benchmark drives: the in-process host, and the USB/IP client talking to
//! the USB/IP server over 127.0.0.1. Both reach a Gadget Zero (pattern 0) configured with
//! transfers large and numerous enough that the device side is never what is measured.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use usbfn::functions::gadget_zero;
use usbfn::host::{Host, UrbFuture};
use usbfn::{BusSpeed, CompletionStatus, Controller};
use usbfn_usbip::client::{self, ImportedDevice, PendingUrb, Urb};
use usbfn_usbip::server::Server;
use usbfn_wire::{DescriptorType, Direction, Recipient, RequestType, SetupPacket};

use super::stats::{Latency, process_context_switches, process_cpu_seconds};
use super::tcp::Moved;

/// Gadget Zero's bulk endpoints are IN 0x81 and OUT 0x01.
const BULK_EP: u8 = 1;
/// The speed both hosts connect at (wMaxPacketSize 512).
pub(crate) const SPEED: BusSpeed = BusSpeed::High;
/// Transfers the device keeps queued per pipe: as many as the deepest host queue.
const DEVICE_QLEN: usize = 64;
/// Smallest device transfer. Transfers are `max(URB size, this)` bytes: a multiple of the
/// URB size (sizes are powers of two), so an IN URB is a slice of one transfer and an OUT
/// transfer ends on a URB boundary, and small URBs do not cost a service round trip each.
const MIN_DEVICE_BUFLEN: usize = 64 * 1024;

/// Where URBs go.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Transport {
    /// `usbfn::host::Host`: URBs straight into the controller.
    InProcess,
    /// usbfn's USB/IP client → TCP 127.0.0.1 → usbfn's USB/IP server.
    Usbip,
}

impl Transport {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Transport::InProcess => "in-process",
            Transport::Usbip => "USB/IP loopback",
        }
    }
}

/// How the ends of a benchmark share threads.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Topology {
    /// Both ends on the bench's one thread (a current-thread runtime), as raw TCP's
    /// `same-cpu` placement puts its two threads on one CPU: the socket's limit on a VM,
    /// where a wake-up across vCPUs costs more than a 64 KiB copy. It measures what usbfn's
    /// own code costs per URB when no wake-up is forced.
    OneThread,
    /// As raw TCP's sender and receiver: the host side on the bench's (current-thread)
    /// runtime, the USB/IP server, the device and its service on a current-thread runtime of
    /// their own thread (`usbfn serve`, one thread by default). The in-process host has no second
    /// end: it shares the bench's thread with the device.
    TwoThreads,
    /// Every end on the bench's multi-thread runtime, a worker per CPU (`bench
    /// --topology shared-workers`; `usbfn serve --multi-thread`).
    SharedWorkers,
}

impl Topology {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Topology::OneThread => "host side and server on one thread (a current-thread runtime)",
            Topology::TwoThreads => {
                "host side and server on a thread each (current-thread runtimes)"
            }
            Topology::SharedWorkers => "every end on one runtime with a worker per CPU",
        }
    }
}

/// Bulk direction.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Dir {
    In,
    Out,
}

/// A configured Gadget Zero behind one transport.
///
/// Fields drop in order: the host first (so the client closes its connection before the
/// server goes away), then the server, then the service.
pub(crate) struct Target {
    pub(crate) transport: Transport,
    host: HostKind,
    _server: Option<AbortOnDrop<std::io::Result<()>>>,
    _service: AbortOnDrop<Result<(), usbfn::Error>>,
    /// The OUT payload: zeros, shared by every OUT URB.
    zeros: Bytes,
}

enum HostKind {
    Local(Host),
    Usbip(ImportedDevice),
}

enum InFlight {
    Local(UrbFuture),
    Usbip(PendingUrb),
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

/// A task that ends with its owner.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A Gadget Zero controller whose service moves `buflen`-byte transfers, its timer and
/// service tasks on `rt`.
async fn gadget_zero(
    buflen: usize,
    rt: &tokio::runtime::Handle,
) -> anyhow::Result<(
    Controller,
    tokio::task::JoinHandle<Result<(), usbfn::Error>>,
)> {
    let controller = Controller::new_in(&gadget_zero::config(), rt)?;
    let iface = controller.open(gadget_zero::INTERFACE_NAME)?;
    let options = gadget_zero::Options {
        pattern: gadget_zero::Pattern::Zeros,
        qlen: DEVICE_QLEN,
        buflen,
        ..gadget_zero::Options::default()
    };
    let service = rt.spawn(gadget_zero::run(iface, options));
    let mut ready = controller.ready_watch();
    tokio::time::timeout(Duration::from_secs(5), ready.wait_for(|r| *r))
        .await
        .context("Gadget Zero did not activate in time")??;
    Ok((controller, service))
}

/// The server's runtime in [`Topology::TwoThreads`]: one thread with a current-thread runtime
/// for the USB/IP server, the device and its service, so their wake-ups of each other are
/// calls on that thread; the client (the bench's own runtime) stands for the host.
fn server_runtime() -> anyhow::Result<tokio::runtime::Handle> {
    static HANDLE: std::sync::OnceLock<tokio::runtime::Handle> = std::sync::OnceLock::new();
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the server's runtime")?;
    let handle = rt.handle().clone();
    std::thread::Builder::new()
        .name("usbfn-bench-server".into())
        .spawn(move || rt.block_on(std::future::pending::<()>()))
        .context("starting the server's thread")?;
    Ok(HANDLE.get_or_init(|| handle).clone())
}

/// Export `controllers` on 127.0.0.1 (port chosen by the kernel); returns the address.
pub(crate) async fn serve(
    controllers: Vec<Controller>,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)> {
    serve_on(controllers, &tokio::runtime::Handle::current()).await
}

/// [`serve`] with the server (its listener and connection tasks) on `rt`.
async fn serve_on(
    controllers: Vec<Controller>,
    rt: &tokio::runtime::Handle,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)> {
    let mut builder = Server::builder();
    for c in controllers {
        builder.export(c, SPEED)?;
    }
    let server = builder.build();
    // The listener registers with the reactor of the runtime it is created on.
    let listener = rt
        .spawn(async { tokio::net::TcpListener::bind("127.0.0.1:0").await })
        .await??;
    let addr = listener.local_addr()?;
    let task = rt.spawn(async move { server.serve(listener, std::future::pending()).await });
    Ok((addr, task))
}

impl Target {
    /// Gadget Zero behind `transport`, configured for URBs of `urb_size` bytes (its source
    /// and sink transfers queued).
    /// In [`Topology::TwoThreads`] the USB/IP server and the device run on [`server_runtime`].
    pub(crate) async fn start(
        transport: Transport,
        urb_size: usize,
        topology: Topology,
    ) -> anyhow::Result<Target> {
        let rt = match transport {
            Transport::Usbip if topology == Topology::TwoThreads => server_runtime()?,
            _ => tokio::runtime::Handle::current(),
        };
        let (controller, service) = gadget_zero(urb_size.max(MIN_DEVICE_BUFLEN), &rt).await?;
        let (host, server) = match transport {
            Transport::InProcess => {
                let host = Host::connect(&controller, SPEED)?;
                host.set_configuration(1).await?;
                (HostKind::Local(host), None)
            }
            Transport::Usbip => {
                let (addr, server) = serve_on(vec![controller], &rt).await?;
                let dev = client::import(addr, "1-1").await?;
                dev.set_configuration(1).await?;
                (HostKind::Usbip(dev), Some(server))
            }
        };
        let target = Target {
            transport,
            host,
            _server: server.map(AbortOnDrop),
            _service: AbortOnDrop(service),
            zeros: Bytes::from(vec![0u8; urb_size]),
        };
        // The service queues its transfers from its own task after SET_CONFIGURATION: one
        // IN URB proves the source is running. It is a URB of the measured size, so the
        // ones after it still start on a transfer boundary: a smaller one would shift every
        // later URB across two transfers, which the core then joins with a copy.
        target.submit(Dir::In, urb_size)?.wait(urb_size).await?;
        Ok(target)
    }

    fn submit(&self, dir: Dir, size: usize) -> anyhow::Result<InFlight> {
        let len = u32::try_from(size)?;
        Ok(match (&self.host, dir) {
            (HostKind::Local(h), Dir::In) => InFlight::Local(h.bulk_in(BULK_EP, size)),
            (HostKind::Local(h), Dir::Out) => {
                InFlight::Local(h.bulk_out(BULK_EP, self.zeros.slice(..size)))
            }
            (HostKind::Usbip(d), Dir::In) => {
                InFlight::Usbip(d.submit_handle(Urb::bulk_in(BULK_EP, len))?)
            }
            (HostKind::Usbip(d), Dir::Out) => {
                InFlight::Usbip(d.submit_handle(Urb::bulk_out(BULK_EP, self.zeros.slice(..size)))?)
            }
        })
    }

    fn submit_control(&self, setup: SetupPacket, data: Bytes) -> anyhow::Result<InFlight> {
        Ok(match &self.host {
            HostKind::Local(h) => InFlight::Local(h.submit(usbfn_core::Urb::control(
                usbfn_core::UrbId(0),
                setup,
                data,
            ))),
            HostKind::Usbip(d) => {
                let urb = if setup.is_in() {
                    Urb::control_in(setup.to_bytes(), u32::from(setup.w_length))
                } else {
                    Urb::control_out(setup.to_bytes(), data)
                };
                InFlight::Usbip(d.submit_handle(urb)?)
            }
        })
    }

    /// Keep `depth` URBs of `size` bytes in flight until `count` have completed or `cap` has
    /// passed (after a warm-up of `depth` URBs). Every URB must succeed with `size` bytes.
    pub(crate) async fn bulk(
        &self,
        dir: Dir,
        size: usize,
        depth: usize,
        count: u64,
        cap: Duration,
    ) -> anyhow::Result<Moved> {
        for _ in 0..depth.min(4) {
            self.submit(dir, size)?.wait(size).await?;
        }
        let depth = depth.max(1);
        let mut queue = VecDeque::with_capacity(depth);
        let cpu = process_cpu_seconds();
        let switches = process_context_switches();
        let start = Instant::now();
        let mut submitted = 0u64;
        while submitted < count && queue.len() < depth {
            queue.push_back(self.submit(dir, size)?);
            submitted += 1;
        }
        let mut bytes = 0u64;
        while let Some(urb) = queue.pop_front() {
            bytes += urb.wait(size).await?;
            if submitted < count && start.elapsed() < cap {
                queue.push_back(self.submit(dir, size)?);
                submitted += 1;
            }
        }
        Ok(Moved {
            bytes,
            seconds: start.elapsed().as_secs_f64(),
            cpu_seconds: process_cpu_seconds() - cpu,
            switches: process_context_switches().saturating_sub(switches),
            units: submitted,
            placement: None,
            send_buffer: None,
        })
    }

    /// `rounds` control transfers one at a time: GET_DESCRIPTOR(DEVICE) answered by the
    /// core's chapter-9 engine (`service: false`), or Gadget Zero's vendor read-back request
    /// 0x5c of 64 bytes answered by its service.
    pub(crate) async fn control_latency(
        &self,
        service: bool,
        rounds: usize,
    ) -> anyhow::Result<Latency> {
        let (setup, len) = if service {
            (vendor(Direction::In, gadget_zero::REQUEST_READ, 64), 64)
        } else {
            (
                SetupPacket::get_descriptor(DescriptorType::DEVICE, 0, 0, 18),
                18,
            )
        };
        for _ in 0..rounds.min(100) {
            self.submit_control(setup, Bytes::new())?.wait(len).await?;
        }
        let mut samples = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let t = Instant::now();
            self.submit_control(setup, Bytes::new())?.wait(len).await?;
            samples.push(t.elapsed());
        }
        Ok(Latency::from_samples(samples))
    }

    /// Setup packets delivered to the service per second: `depth` vendor write requests
    /// without a data stage queued at the device's control pipe, each a `SetupPacket` event
    /// that Gadget Zero answers with a status handshake.
    pub(crate) async fn event_rate(&self, depth: usize, duration: Duration) -> anyhow::Result<f64> {
        let setup = vendor(Direction::Out, gadget_zero::REQUEST_WRITE, 0);
        let mut queue = VecDeque::with_capacity(depth);
        for _ in 0..depth.max(1) {
            queue.push_back(self.submit_control(setup, Bytes::new())?);
        }
        let start = Instant::now();
        let mut done = 0u64;
        while let Some(urb) = queue.pop_front() {
            urb.wait(0).await?;
            done += 1;
            if start.elapsed() < duration {
                queue.push_back(self.submit_control(setup, Bytes::new())?);
            }
        }
        Ok(done as f64 / start.elapsed().as_secs_f64())
    }
}

impl InFlight {
    /// Wait for the completion; fails unless it succeeded with exactly `expect` bytes.
    async fn wait(self, expect: usize) -> anyhow::Result<u64> {
        let (ok, actual) = match self {
            InFlight::Local(f) => {
                let c = f.await?;
                (c.status == CompletionStatus::Success, c.actual_length)
            }
            InFlight::Usbip(p) => {
                let c = p.wait().await?;
                (c.status == 0, usize::try_from(c.actual_length)?)
            }
        };
        if !ok || actual != expect {
            bail!(
                "URB failed or came back short: expected {expect} bytes, got {actual} (ok: {ok})"
            );
        }
        Ok(u64::try_from(actual)?)
    }
}

fn vendor(direction: Direction, request: u8, len: u16) -> SetupPacket {
    SetupPacket::new(
        direction,
        RequestType::Vendor,
        Recipient::Device,
        request,
        0,
        0,
        len,
    )
}
