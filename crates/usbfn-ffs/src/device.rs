//! [`FfsDevice`]: a usbfn device on a real controller through FunctionFS. It owns the
//! configfs gadget, one FunctionFS function per service-owned function (an interface, or the
//! interfaces an IAD groups), the ep0 threads, the endpoint files and the AIO context; it
//! binds the gadget to the UDC while every interface's service is active and maps the
//! FunctionFS events to GenericUSBFn bus events.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use usbfn_api::{Backend, ClassInfo, Error, InterfaceEntry};
use usbfn_core::{BusEvent, BusSpeed, DeviceConfig, DeviceModel, FunctionId, PipeId};
use usbfn_wire::SetupPacket;

use crate::aio::Aio;
use crate::blob::{self, FunctionLayout};
use crate::configfs::{self, Gadget};
use crate::ep0::{self, Ep0Command, Ep0Sink};
use crate::error::FfsError;
use crate::interface::FfsInterface;
use crate::sys;

/// Events kept per interface for a service that does not read them.
pub const MAX_QUEUED_EVENTS: usize = 1024;
/// Default directory of the FunctionFS mounts and the owner pid file.
pub const DEFAULT_MOUNT_ROOT: &str = "/run/usbfn-ffs";

/// Options of [`FfsDevice::new`].
#[derive(Clone, Debug)]
pub struct FfsOptions {
    /// The UDC, as named in `/sys/class/udc`.
    pub udc: String,
    /// Where the FunctionFS instances are mounted.
    pub mount_root: PathBuf,
}

impl FfsOptions {
    /// The defaults for `udc`.
    pub fn new(udc: impl Into<String>) -> Self {
        FfsOptions {
            udc: udc.into(),
            mount_root: PathBuf::from(DEFAULT_MOUNT_ROOT),
        }
    }
}

/// A device served through FunctionFS. Cheap to clone; [`FfsDevice::close`] (or dropping
/// the last clone) unbinds and removes the gadget.
#[derive(Clone, Debug)]
pub struct FfsDevice {
    pub(crate) shared: Arc<Shared>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) model: DeviceModel,
    pub(crate) class_info: Vec<ClassInfo>,
    pub(crate) state: Mutex<State>,
    pub(crate) events: Vec<Notify>,
    pub(crate) aio: Arc<Aio>,
    ready: watch::Sender<bool>,
    udc: String,
    gadget: Mutex<Option<Gadget>>,
    ep0_threads: Mutex<Vec<Ep0Thread>>,
}

/// An ep0 thread: its command channel, its wake-up eventfd, its handle.
type Ep0Thread = (
    mpsc::Sender<Ep0Command>,
    Arc<OwnedFd>,
    std::thread::JoinHandle<()>,
);

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) functions: Vec<FunctionState>,
    pub(crate) groups: Vec<GroupState>,
    pub(crate) pipes: HashMap<PipeId, PipeState>,
    bound: bool,
    pub(crate) closed: bool,
}

#[derive(Debug, Default)]
pub(crate) struct FunctionState {
    pub(crate) opened: bool,
    pub(crate) active: bool,
    pub(crate) group: usize,
    pub(crate) events: VecDeque<BusEvent>,
    /// The sequence numbers of the SetupPacket events in `events`, in order.
    pub(crate) setup_seqs: VecDeque<u64>,
    /// The setup packet the service took last (the one its pipe-0 calls answer).
    pub(crate) current_setup: Option<u64>,
    /// The setup packet whose data stage is done: its status handshake is accepted.
    pub(crate) handshake_owed: Option<u64>,
}

#[derive(Debug)]
pub(crate) struct GroupState {
    pub(crate) layout: FunctionLayout,
    pub(crate) enabled: bool,
    pub(crate) speed: BusSpeed,
    /// The setup packet being answered: (sequence number, owner).
    pub(crate) pending: Option<(u64, FunctionId)>,
    pub(crate) ep0: mpsc::Sender<Ep0Command>,
}

#[derive(Debug)]
pub(crate) struct PipeState {
    pub(crate) file: Arc<File>,
    pub(crate) owner: FunctionId,
    pub(crate) group: usize,
    pub(crate) address: u8,
    pub(crate) max_packet: [u16; 3],
    pub(crate) halted: bool,
}

impl FfsDevice {
    /// Build the gadget for `config` on `options.udc`: configfs, FunctionFS mounts,
    /// descriptors and strings written, endpoint files open. Not bound yet: that happens when
    /// every interface's service has activated the bus. Must run inside a tokio runtime.
    /// On error nothing is left in configfs.
    pub fn new(config: &DeviceConfig, options: &FfsOptions) -> Result<Self, FfsError> {
        let model = DeviceModel::build(config)?;
        let core = usbfn_core::Device::new(model.clone(), std::time::Instant::now())
            .map_err(|e| FfsError::Unsupported(e.to_string()))?;
        let class_info = (0..model.interfaces().len())
            .map(|f| core.class_info(FunctionId(f)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| FfsError::Unsupported(e.to_string()))?;
        let layouts = blob::layouts(&model, 0, model.strings())?;
        let gadget = Gadget::create(&model, &options.udc, layouts.len(), &options.mount_root)?;
        let aio =
            Aio::new().map_err(|e| FfsError::io("setting up Linux AIO for", "io_setup", e))?;
        let (ready, _) = watch::channel(false);
        let mut functions: Vec<FunctionState> = (0..model.interfaces().len())
            .map(|_| FunctionState::default())
            .collect();
        let mut groups = Vec::new();
        let mut pipes = HashMap::new();
        let mut ep0_files = Vec::new();
        let mut receivers = Vec::new();
        for (g, (layout, (instance, mount))) in
            layouts.into_iter().zip(&gadget.instances).enumerate()
        {
            let ep0 = write_blobs(mount, instance, &layout)?;
            for (i, &(address, pipe, owner)) in layout.endpoints.iter().enumerate() {
                let path = mount.join(format!("ep{}", i + 1));
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
                    .open(&path)
                    .map_err(|e| FfsError::io("opening", &path, e))?;
                let max_packet = BusSpeed::ALL.map(|s| {
                    class_info[owner.0]
                        .at(s)
                        .pipes
                        .iter()
                        .find(|(_, p)| *p == pipe)
                        .map_or(512, |(d, _)| d.max_packet_size())
                });
                pipes.insert(
                    pipe,
                    PipeState {
                        file: Arc::new(file),
                        owner,
                        group: g,
                        address,
                        max_packet,
                        halted: false,
                    },
                );
            }
            for f in &layout.functions {
                functions[f.0].group = g;
            }
            let (tx, rx) = mpsc::channel();
            receivers.push(rx);
            ep0_files.push(ep0);
            groups.push(GroupState {
                layout,
                enabled: false,
                speed: BusSpeed::High,
                pending: None,
                ep0: tx,
            });
        }
        let shared = Arc::new(Shared {
            events: (0..model.interfaces().len())
                .map(|_| Notify::new())
                .collect(),
            class_info,
            state: Mutex::new(State {
                functions,
                groups,
                pipes,
                bound: false,
                closed: false,
            }),
            aio: aio.clone(),
            ready,
            udc: options.udc.clone(),
            gadget: Mutex::new(Some(gadget)),
            ep0_threads: Mutex::new(Vec::new()),
            model,
        });
        tokio::spawn(aio.clone().reap());
        tokio::spawn(aio.flusher());
        let timeout = shared.model.setup_timeout();
        for (g, (ep0, rx)) in ep0_files.into_iter().zip(receivers).enumerate() {
            let wake = Arc::new(
                sys::eventfd().map_err(|e| FfsError::io("creating an eventfd for", "ep0", e))?,
            );
            let sink: Arc<dyn Ep0Sink> = Arc::new(GroupSink {
                shared: Arc::downgrade(&shared),
                group: g,
            });
            let tx = lock(&shared.state).groups[g].ep0.clone();
            let w = wake.clone();
            let handle = std::thread::Builder::new()
                .name(format!("usbfn-ffs-ep0-{g}"))
                .spawn(move || ep0::run(ep0, w, rx, sink, timeout))
                .map_err(|e| FfsError::io("starting the ep0 thread for", "ep0", e))?;
            lock_any(&shared.ep0_threads).push((tx, wake, handle));
        }
        Ok(FfsDevice { shared })
    }

    /// The UDC this device is served on.
    pub fn udc(&self) -> &str {
        &self.shared.udc
    }

    /// The model the gadget was built from.
    pub fn model(&self) -> &DeviceModel {
        &self.shared.model
    }

    /// Open an interface by InterfaceGUID or name (one service per interface).
    pub fn open(&self, guid_or_name: &str) -> Result<FfsInterface, Error> {
        let m = &self.shared.model;
        let f = m
            .function_by_guid(guid_or_name)
            .or_else(|| m.function_by_name(guid_or_name))
            .ok_or_else(|| Error::NoSuchInterface(guid_or_name.to_owned()))?;
        let mut st = lock(&self.shared.state);
        if st.closed {
            return Err(Error::DeviceGone);
        }
        if std::mem::replace(&mut st.functions[f.0].opened, true) {
            return Err(Error::InterfaceBusy(guid_or_name.to_owned()));
        }
        Ok(FfsInterface::new(self.shared.clone(), f))
    }

    /// Watch readiness (every service active: the gadget is bound to the UDC).
    pub fn ready_watch(&self) -> watch::Receiver<bool> {
        self.shared.ready.subscribe()
    }

    /// Unbind from the UDC, stop the ep0 threads, cancel every transfer, unmount and
    /// remove the gadget. Idempotent; services see `Error::DeviceGone` afterwards.
    pub async fn close(&self) {
        let shared = self.shared.clone();
        let _ = tokio::task::spawn_blocking(move || shared.teardown()).await;
    }
}

impl Backend for FfsDevice {
    type Interface = FfsInterface;

    fn interfaces(&self) -> Vec<InterfaceEntry> {
        self.shared
            .model
            .interfaces()
            .iter()
            .map(|i| InterfaceEntry {
                name: i.name.clone(),
                guid: i.guid.clone(),
            })
            .collect()
    }

    fn open(&self, guid_or_name: &str) -> Result<FfsInterface, Error> {
        FfsDevice::open(self, guid_or_name)
    }

    fn ready_watch(&self) -> watch::Receiver<bool> {
        FfsDevice::ready_watch(self)
    }
}

/// Write the descriptors and strings to a fresh `ep0`; the endpoint files appear.
fn write_blobs(mount: &Path, instance: &str, layout: &FunctionLayout) -> Result<File, FfsError> {
    let path = mount.join("ep0");
    let mut ep0 = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| FfsError::io("opening", &path, e))?;
    ep0.write_all(&layout.descriptors)
        .map_err(|source| FfsError::DescriptorsRefused {
            what: "descriptors",
            function: instance.into(),
            source,
        })?;
    ep0.write_all(&layout.strings)
        .map_err(|source| FfsError::DescriptorsRefused {
            what: "strings",
            function: instance.into(),
            source,
        })?;
    Ok(ep0)
}

pub(crate) fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn lock_any<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn push_event(&self, st: &mut State, f: FunctionId, event: BusEvent) {
        let Some(fs) = st.functions.get_mut(f.0) else {
            return;
        };
        if !fs.active {
            return;
        }
        if fs.events.len() >= MAX_QUEUED_EVENTS {
            tracing::warn!(
                function = f.0,
                ?event,
                "event queue full (MAX_QUEUED_EVENTS): oldest event dropped"
            );
            fs.events.pop_front();
        }
        fs.events.push_back(event);
        if let Some(n) = self.events.get(f.0) {
            n.notify_one();
        }
    }

    /// A service activated or deactivated: bind or unbind the gadget.
    pub(crate) fn update_binding(&self) {
        let (all, bound, closed) = {
            let st = lock(&self.state);
            (st.functions.iter().all(|f| f.active), st.bound, st.closed)
        };
        if closed {
            return;
        }
        let gadget = lock_any(&self.gadget);
        let Some(g) = gadget.as_ref() else { return };
        if all && !bound {
            match g.bind() {
                Ok(()) => {
                    lock(&self.state).bound = true;
                    self.ready.send_replace(true);
                    tracing::info!(udc = %self.udc, "every service is active: gadget bound to the UDC");
                }
                Err(e) => tracing::error!(error = %e, "binding the gadget"),
            }
        } else if !all && bound {
            g.unbind();
            lock(&self.state).bound = false;
            self.ready.send_replace(false);
            tracing::info!(udc = %self.udc, "a service went away: gadget unbound from the UDC");
        }
    }

    fn teardown(&self) {
        {
            let mut st = lock(&self.state);
            if st.closed {
                return;
            }
            st.closed = true;
            st.bound = false;
            for f in &mut st.functions {
                f.active = false;
            }
        }
        self.ready.send_replace(false);
        if let Some(g) = lock_any(&self.gadget).as_ref() {
            g.unbind();
        }
        for (tx, wake, handle) in lock_any(&self.ep0_threads).drain(..) {
            let _ = tx.send(Ep0Command::Stop);
            let _ = sys::eventfd_signal(wake.as_fd());
            let _ = handle.join();
        }
        self.aio.close();
        for _ in 0..100 {
            if self.aio.in_flight() == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.aio.log_stats();
        lock(&self.state).pipes.clear();
        for n in &self.events {
            n.notify_waiters();
        }
        if let Some(mut g) = lock_any(&self.gadget).take()
            && let Err(e) = g.remove()
        {
            tracing::warn!(error = %e, "removing the gadget");
        }
    }

    /// Route a setup packet: the owner's function id and the packet as the service sees it
    /// (interface numbers as in the device model).
    fn route(
        &self,
        st: &State,
        group: usize,
        setup: SetupPacket,
    ) -> Option<(FunctionId, SetupPacket)> {
        let layout = &st.groups.get(group)?.layout;
        let mut seen = setup;
        let owner = match setup.bm_request_type & 0x1f {
            1 => {
                let number = layout
                    .first_interface
                    .checked_add(setup.w_index.to_le_bytes()[0])?;
                seen.w_index = (setup.w_index & 0xff00) | u16::from(number);
                layout
                    .functions
                    .iter()
                    .copied()
                    .find(|f| self.model.interfaces()[f.0].number == number)?
            }
            2 => {
                let address = setup.w_index.to_le_bytes()[0];
                layout
                    .endpoints
                    .iter()
                    .find(|(a, _, _)| *a == address)
                    .map(|(_, _, f)| *f)?
            }
            _ => self
                .model
                .device_request_owner()
                .filter(|o| layout.functions.contains(o))
                .or_else(|| layout.functions.first().copied())?,
        };
        Some((owner, seen))
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// The ep0 thread's view of one group.
struct GroupSink {
    shared: std::sync::Weak<Shared>,
    group: usize,
}

impl Ep0Sink for GroupSink {
    fn event(&self, kind: u8) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let mut st = lock(&shared.state);
        let Some(g) = st.groups.get_mut(self.group) else {
            return;
        };
        let members = g.layout.functions.clone();
        let mut out: Vec<BusEvent> = Vec::new();
        let mut per_function_set_interface = false;
        match kind {
            ep0::BIND => out.push(BusEvent::Attach),
            ep0::UNBIND => {
                g.enabled = false;
                out.push(BusEvent::Detach);
            }
            ep0::ENABLE if !g.enabled => {
                g.enabled = true;
                g.speed = configfs::current_speed(&shared.udc);
                let value = shared.model.configurations().first().map_or(1, |c| c.value);
                out.push(BusEvent::Reset(g.speed));
                out.push(BusEvent::Configured(u16::from(value)));
            }
            // A SET_INTERFACE (FunctionFS re-enables the endpoints without saying which
            // alternate setting; usbfn serves alternate 0 on FunctionFS).
            ep0::ENABLE => per_function_set_interface = true,
            ep0::DISABLE if g.enabled => {
                g.enabled = false;
                out.push(BusEvent::UnConfigured);
            }
            ep0::SUSPEND => out.push(BusEvent::Suspend),
            ep0::RESUME => out.push(BusEvent::Resume),
            _ => {}
        }
        tracing::debug!(group = self.group, kind, ?out, "FunctionFS event");
        for f in members {
            if per_function_set_interface {
                let interface = u16::from(shared.model.interfaces()[f.0].number);
                shared.push_event(
                    &mut st,
                    f,
                    BusEvent::SetInterface {
                        interface,
                        alternate: 0,
                    },
                );
            }
            for e in &out {
                shared.push_event(&mut st, f, *e);
            }
        }
    }

    fn setup(&self, seq: u64, setup: SetupPacket) -> Option<FunctionId> {
        let shared = self.shared.upgrade()?;
        let mut st = lock(&shared.state);
        let (owner, seen) = shared.route(&st, self.group, setup)?;
        if !st.functions[owner.0].active {
            return None;
        }
        st.groups[self.group].pending = Some((seq, owner));
        st.functions[owner.0].setup_seqs.push_back(seq);
        shared.push_event(&mut st, owner, BusEvent::SetupPacket(seen));
        Some(owner)
    }

    fn setup_done(&self, seq: u64, owner: FunctionId, data_stage: bool) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let mut st = lock(&shared.state);
        if let Some(g) = st.groups.get_mut(self.group)
            && g.pending.is_some_and(|(s, _)| s == seq)
        {
            g.pending = None;
        }
        if let Some(f) = st.functions.get_mut(owner.0)
            && data_stage
        {
            f.handshake_owed = Some(seq);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without the kernel pieces, setting up fails with the error that names the missing
    /// one, and nothing is left in configfs.
    #[tokio::test]
    async fn a_missing_controller_is_a_clear_error_and_leaves_nothing() {
        let udc = "usbfn-test-no-such-udc.0";
        let dir = std::env::temp_dir().join(format!("usbfn-ffs-test-{}", std::process::id()));
        let options = FfsOptions {
            udc: udc.into(),
            mount_root: dir.clone(),
        };
        let config = DeviceConfig::from_toml(
            r#"
            [device]
            vendor_id = 0x1209
            product_id = 0x0001
            [[interfaces]]
            name = "x"
            endpoints = [{ direction = "in", type = "bulk" }]
            "#,
        )
        .expect("toml");
        let err = FfsDevice::new(&config, &options).expect_err("no such UDC");
        let text = err.to_string();
        if Path::new(configfs::GADGET_ROOT).is_dir() {
            assert!(matches!(err, FfsError::NoSuchUdc { .. }), "{err}");
            assert!(text.contains(udc) && text.contains("--udc"), "{text}");
        } else {
            assert!(matches!(err, FfsError::NoConfigfs { .. }), "{err}");
            assert!(text.contains("modprobe libcomposite"), "{text}");
        }
        assert!(
            !Path::new(configfs::GADGET_ROOT)
                .join(configfs::gadget_name(udc))
                .exists()
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
