//! HID: `hid-keyboard[,input=PATH]`, `hid-mouse[,input=PATH]` and
//! `hid,report-descriptor=FILE[,input=PATH]` — the host's `usbhid` + `hid-generic` bind them
//! (`/dev/hidraw*` and an input device).
//!
//! * Keyboard: boot interface (3/1/1), the boot report descriptor (8-byte input report,
//!   1-byte LED output report), interrupt IN and OUT. Mouse: boot interface (3/1/2),
//!   buttons, X, Y and wheel (4 bytes; 3 in the boot protocol), interrupt IN. Generic: 3/0/0
//!   with the given report descriptor, interrupt IN and OUT of 64 bytes.
//! * GET_DESCRIPTOR(report), GET/SET_REPORT, GET/SET_IDLE (a non-zero idle rate repeats the
//!   last input report every rate × 4 ms), GET/SET_PROTOCOL (boot devices only).
//! * Device side: `input=PATH` is a FIFO usbfn creates (default
//!   `$TMPDIR/usbfn-hid<N>.fifo`); each line is `report HEX` or, for the keyboard, `type TEXT`
//!   (see [`command`]). Output reports (the keyboard's LEDs), from SET_REPORT or the interrupt
//!   OUT endpoint, are printed on stdout as `hid<N>: output HEX`.

pub mod command;
pub mod request;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use usbfn_core::config::{
    DeviceSection, DirectionName, EndpointSection, InterfaceSection, PerSpeed, TransferTypeName,
};
use usbfn_core::{BusEvent, BusSpeed, CompletionStatus, DeviceConfig, PipeId};
use usbfn_wire::{Direction, SetupPacket, TransferType};

use crate::{Error, ServiceApi};
use command::{Command, MAX_LINE};
use request::{HidRequest, ReportType};

/// The boot keyboard's report descriptor (HID 1.11 appendix B.1, with the LED output report).
pub const KEYBOARD_REPORT_DESCRIPTOR: [u8; 63] = [
    0x05, 0x01, 0x09, 0x06, 0xa1, 0x01, 0x05, 0x07, 0x19, 0xe0, 0x29, 0xe7, 0x15, 0x00, 0x25, 0x01,
    0x75, 0x01, 0x95, 0x08, 0x81, 0x02, 0x95, 0x01, 0x75, 0x08, 0x81, 0x03, 0x95, 0x05, 0x75, 0x01,
    0x05, 0x08, 0x19, 0x01, 0x29, 0x05, 0x91, 0x02, 0x95, 0x01, 0x75, 0x03, 0x91, 0x03, 0x95, 0x06,
    0x75, 0x08, 0x15, 0x00, 0x25, 0x65, 0x05, 0x07, 0x19, 0x00, 0x29, 0x65, 0x81, 0x00, 0xc0,
];

/// A boot mouse with a wheel: 3 buttons, X, Y, wheel (relative, -127..=127).
pub const MOUSE_REPORT_DESCRIPTOR: [u8; 52] = [
    0x05, 0x01, 0x09, 0x02, 0xa1, 0x01, 0x09, 0x01, 0xa1, 0x00, 0x05, 0x09, 0x19, 0x01, 0x29, 0x03,
    0x15, 0x00, 0x25, 0x01, 0x95, 0x03, 0x75, 0x01, 0x81, 0x02, 0x95, 0x01, 0x75, 0x05, 0x81, 0x03,
    0x05, 0x01, 0x09, 0x30, 0x09, 0x31, 0x09, 0x38, 0x15, 0x81, 0x25, 0x7f, 0x75, 0x08, 0x95, 0x03,
    0x81, 0x06, 0xc0, 0xc0,
];

/// The largest report descriptor accepted from a file.
pub const MAX_REPORT_DESCRIPTOR: usize = 4096;
/// Input reports queued from the FIFO before its reader waits for the host.
pub const INPUT_QUEUE: usize = 256;
/// wMaxPacketSize of a generic HID's interrupt endpoints (its longest report).
pub const GENERIC_REPORT_LEN: usize = 64;

/// Which HID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `hid-keyboard`.
    Keyboard,
    /// `hid-mouse`.
    Mouse,
    /// `hid,report-descriptor=FILE`: the descriptor's bytes.
    Generic(Vec<u8>),
}

/// Options of the HID functions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Keyboard, mouse or generic.
    pub kind: Kind,
    /// `input=PATH`: the FIFO of commands.
    pub input: Option<PathBuf>,
}

/// A report descriptor file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DescriptorFileError {
    /// It cannot be read.
    #[error("report descriptor {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Empty or larger than [`MAX_REPORT_DESCRIPTOR`].
    #[error("report descriptor {path}: {len} bytes; 1..=4096 allowed (MAX_REPORT_DESCRIPTOR)")]
    Size {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
    },
}

/// Read a report descriptor file (raw bytes), bounded by [`MAX_REPORT_DESCRIPTOR`].
pub fn read_report_descriptor(path: &Path) -> Result<Vec<u8>, DescriptorFileError> {
    let io = |source| DescriptorFileError::Io {
        path: path.to_owned(),
        source,
    };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len == 0 || len > MAX_REPORT_DESCRIPTOR as u64 {
        return Err(DescriptorFileError::Size {
            path: path.to_owned(),
            len,
        });
    }
    std::fs::read(path).map_err(io)
}

impl Kind {
    /// The report descriptor.
    pub fn report_descriptor(&self) -> &[u8] {
        match self {
            Kind::Keyboard => &KEYBOARD_REPORT_DESCRIPTOR,
            Kind::Mouse => &MOUSE_REPORT_DESCRIPTOR,
            Kind::Generic(d) => d,
        }
    }

    /// The input report length (report protocol).
    pub fn input_len(&self) -> usize {
        match self {
            Kind::Keyboard => 8,
            Kind::Mouse => 4,
            Kind::Generic(_) => GENERIC_REPORT_LEN,
        }
    }

    /// (subclass, protocol): boot keyboard, boot mouse, or neither.
    fn subclass_protocol(&self) -> (u8, u8) {
        match self {
            Kind::Keyboard => (1, 1),
            Kind::Mouse => (1, 2),
            Kind::Generic(_) => (0, 0),
        }
    }

    fn has_out(&self) -> bool {
        !matches!(self, Kind::Mouse)
    }

    fn name(&self) -> &'static str {
        match self {
            Kind::Keyboard => "keyboard",
            Kind::Mouse => "mouse",
            Kind::Generic(_) => "HID",
        }
    }
}

/// The interface's name for instance `instance`.
pub fn interface_name(instance: usize) -> String {
    format!("hid{instance}")
}

/// The device descriptor when the HID is the whole device (the kernel's g_hid id,
/// 0525:a4ac).
pub fn device_section(kind: &Kind) -> DeviceSection {
    DeviceSection {
        ..super::function_device(
            0x0525,
            0xa4ac,
            Some(format!("usbfn {}", kind.name())),
            Some("usbfn-hid".into()),
        )
    }
}

/// The HID interface: the HID descriptor (class descriptors) and its interrupt endpoints.
pub fn interface(kind: &Kind, instance: usize) -> InterfaceSection {
    let len = u16::try_from(kind.report_descriptor().len()).unwrap_or(u16::MAX);
    let [l0, l1] = len.to_le_bytes();
    let hid = [9, 0x21, 0x11, 0x01, 0, 1, 0x22, l0, l1];
    let mps = u16::try_from(kind.input_len()).unwrap_or(64);
    let endpoint = |direction| EndpointSection {
        max_packet: Some(PerSpeed::All(mps)),
        // 1 ms at every speed: 1 frame, 2^(4-1) microframes.
        interval: Some(PerSpeed::Each {
            full: Some(1),
            high: Some(4),
            super_: Some(4),
        }),
        ..EndpointSection::new(None, Some(direction), TransferTypeName::Interrupt)
    };
    let mut endpoints = vec![endpoint(DirectionName::In)];
    if kind.has_out() {
        endpoints.push(endpoint(DirectionName::Out));
    }
    let (subclass, protocol) = kind.subclass_protocol();
    InterfaceSection {
        name: interface_name(instance),
        guid: None,
        number: None,
        device_request_owner: false,
        compatible_id: None,
        class: Some(3),
        subclass: Some(subclass),
        protocol: Some(protocol),
        string: Some(format!("usbfn {}", kind.name())),
        class_descriptors: Some(hid.iter().map(|b| format!("{b:02x}")).collect()),
        endpoints,
        descriptor: None,
        alternates: Vec::new(),
    }
}

/// The HID alone as a device.
pub fn config(kind: &Kind) -> DeviceConfig {
    DeviceConfig {
        device: device_section(kind),
        configurations: Vec::new(),
        interfaces: vec![interface(kind, 0)],
        associations: Vec::new(),
        control: Default::default(),
    }
}

/// The device side of one HID, made before the service starts (a FIFO that cannot be made
/// is a start error): prints `hid0: input /tmp/usbfn-hid0.fifo`.
#[derive(Debug)]
pub struct DeviceSide {
    tag: String,
    kind: Kind,
    fifo: PathBuf,
    receiver: tokio::net::unix::pipe::Receiver,
}

impl DeviceSide {
    /// Create (or reuse) the FIFO and open it. Must run inside a tokio runtime.
    pub fn open(options: &Options, instance: usize) -> std::io::Result<DeviceSide> {
        let tag = interface_name(instance);
        let fifo = options
            .input
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join(format!("usbfn-{tag}.fifo")));
        match std::fs::symlink_metadata(&fifo) {
            Ok(m) => {
                use std::os::unix::fs::FileTypeExt;
                if !m.file_type().is_fifo() {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::AlreadyExists,
                        format!("{} exists and is not a FIFO", fifo.display()),
                    ));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o620))?;
            }
            Err(e) => return Err(e),
        }
        // Opened read-write, so that writers coming and going never make it end.
        let receiver = tokio::net::unix::pipe::OpenOptions::new()
            .read_write(true)
            .open_receiver(&fifo)?;
        device_event(&tag, &format!("input {}", fifo.display()));
        Ok(DeviceSide {
            tag,
            kind: options.kind.clone(),
            fifo,
            receiver,
        })
    }

    /// The FIFO's path.
    pub fn fifo(&self) -> &Path {
        &self.fifo
    }
}

/// Serve the HID on its opened interface until the device goes away.
pub fn spawn<S: ServiceApi>(device: DeviceSide, iface: S) -> JoinHandle<()> {
    let (tx, rx) = mpsc::channel(INPUT_QUEUE);
    let shared = Arc::new(Shared {
        tag: device.tag,
        kind: device.kind,
        state: Mutex::new(State {
            boot: false,
            idle: 0,
            last_input: None,
            inputs_by_id: BTreeMap::new(),
            last_output: None,
            features: BTreeMap::new(),
        }),
        reports: tokio::sync::Mutex::new(rx),
    });
    tokio::spawn(async move {
        let reader = tokio::spawn(read_commands(
            device.receiver,
            shared.tag.clone(),
            shared.kind.clone(),
            tx,
        ));
        if let Err(e) = serve(Arc::new(iface), shared).await {
            tracing::debug!(error = %e, "hid interface ended");
        }
        reader.abort();
    })
}

struct Shared {
    tag: String,
    kind: Kind,
    state: Mutex<State>,
    reports: tokio::sync::Mutex<mpsc::Receiver<Vec<u8>>>,
}

struct State {
    boot: bool,
    /// SET_IDLE duration (× 4 ms), 0 = only on change.
    idle: u8,
    last_input: Option<Vec<u8>>,
    /// The last input report sent per report ID (its first byte), for GET_REPORT(Input, id)
    /// of a descriptor with report IDs; at most 256 entries of at most a report each.
    inputs_by_id: BTreeMap<u8, Vec<u8>>,
    /// The last output report (SET_REPORT(Output) or the interrupt OUT endpoint).
    last_output: Option<Vec<u8>>,
    /// Feature reports the host set, by report ID (at most 256 of at most
    /// [`request::MAX_REPORT`] bytes), returned by GET_REPORT(Feature).
    features: BTreeMap<u8, Vec<u8>>,
}

impl State {
    /// What GET_REPORT(`kind`, `id`) answers: the report last sent or set, as f_hid answers
    /// zeros for one it does not have (with the report ID first when there is one).
    fn report(&self, kind: ReportType, id: u8, zeros: usize) -> Vec<u8> {
        let stored = match kind {
            ReportType::Input if id != 0 => self.inputs_by_id.get(&id),
            ReportType::Input => self.last_input.as_ref(),
            ReportType::Output => self.last_output.as_ref(),
            ReportType::Feature => self.features.get(&id),
        };
        stored.cloned().unwrap_or_else(|| {
            let mut r = vec![0; zeros.max(1)];
            if let Some(first) = r.first_mut() {
                *first = id;
            }
            r
        })
    }

    fn sent(&mut self, report: &[u8]) {
        self.last_input = Some(report.to_vec());
        if let Some(&id) = report.first() {
            self.inputs_by_id.insert(id, report.to_vec());
        }
    }
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An input report as sent under the current protocol (a boot mouse sends 3 bytes).
    fn shaped(&self, report: &[u8]) -> Bytes {
        let n = if self.kind == Kind::Mouse && self.state().boot {
            3
        } else {
            report.len()
        };
        Bytes::copy_from_slice(report.get(..n).unwrap_or(report))
    }
}

fn device_event(tag: &str, what: &str) {
    tracing::info!(function = tag, "{what}");
    println!("{tag}: {what}");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn ends_stream(e: &Error) -> bool {
    matches!(
        e,
        Error::Transfer(CompletionStatus::Cancelled | CompletionStatus::Shutdown)
            | Error::Refused(_)
            | Error::DeviceGone
    )
}

/// Read the FIFO's lines (bounded by [`MAX_LINE`]) and queue their reports.
async fn read_commands(
    mut fifo: tokio::net::unix::pipe::Receiver,
    tag: String,
    kind: Kind,
    tx: mpsc::Sender<Vec<u8>>,
) {
    let mut line: Vec<u8> = Vec::with_capacity(256);
    let mut overlong = false;
    let mut buf = [0u8; 4096];
    loop {
        let n = match fifo.read(&mut buf).await {
            Ok(0) => continue,
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(function = %tag, "input FIFO read failed: {e}");
                return;
            }
        };
        for &b in buf.get(..n).unwrap_or_default() {
            if b != b'\n' {
                if line.len() <= MAX_LINE {
                    line.push(b);
                } else {
                    overlong = true;
                }
                continue;
            }
            let result = if overlong {
                Err(command::CommandError::TooLong)
            } else {
                command::parse_line(&line, kind.input_len())
            };
            line.clear();
            overlong = false;
            let reports = match result {
                Ok(Command::Report(r)) => Ok(vec![r]),
                Ok(Command::Type(_)) if kind != Kind::Keyboard => {
                    Err(command::CommandError::NotKeyboard)
                }
                Ok(Command::Type(text)) => {
                    command::type_reports(&text).map(|rs| rs.iter().map(|r| r.to_vec()).collect())
                }
                Err(e) => Err(e),
            };
            match reports {
                Ok(reports) => {
                    for r in reports {
                        if tx.send(r).await.is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(function = %tag, "input line ignored: {e}");
                    println!("{tag}: error: {e}");
                }
            }
        }
    }
}

async fn serve<S: ServiceApi>(iface: Arc<S>, shared: Arc<Shared>) -> Result<(), Error> {
    let info = iface.class_info().await?;
    let mut speed = BusSpeed::High;
    let mut session: Vec<JoinHandle<()>> = Vec::new();
    let stop = |s: &mut Vec<JoinHandle<()>>| s.drain(..).for_each(|t| t.abort());
    iface.activate_bus().await?;
    loop {
        let event = iface.next_event().await?;
        tracing::debug!(?event, function = %shared.tag, "hid event");
        let number = info.at(speed).interface_number;
        match event {
            BusEvent::Reset(s) => {
                speed = s;
                stop(&mut session);
                let mut st = shared.state();
                st.boot = false;
                st.idle = 0;
            }
            BusEvent::Configured(_) | BusEvent::SetInterface { .. } => {
                stop(&mut session);
                let pipe = |dir: Direction| {
                    info.find_pipe(speed, TransferType::Interrupt, dir)
                        .map(|(p, mps)| (p, mps.max(1)))
                };
                if let Some((p, _)) = pipe(Direction::In) {
                    session.push(tokio::spawn(send_inputs(iface.clone(), p, shared.clone())));
                }
                if let Some((p, mps)) = pipe(Direction::Out) {
                    session.push(tokio::spawn(receive_outputs(
                        iface.clone(),
                        p,
                        mps,
                        shared.clone(),
                    )));
                }
            }
            BusEvent::UnConfigured | BusEvent::Detach => stop(&mut session),
            BusEvent::SetupPacket(setup) => answer_setup(&*iface, setup, number, &shared).await,
            BusEvent::Attach | BusEvent::Suspend | BusEvent::Resume => {}
        }
    }
}

/// Input reports to the host: each queued report once; with a non-zero idle rate, the last
/// one again whenever the rate passes without a new one.
async fn send_inputs<S: ServiceApi>(iface: Arc<S>, pipe: PipeId, shared: Arc<Shared>) {
    let mut reports = shared.reports.lock().await;
    loop {
        let idle = shared.state().idle;
        let next = if idle == 0 {
            reports.recv().await
        } else {
            let period = Duration::from_millis(4 * u64::from(idle));
            match tokio::time::timeout(period, reports.recv()).await {
                Ok(r) => r,
                Err(_) => match shared.state().last_input.clone() {
                    Some(last) => Some(last),
                    None => continue,
                },
            }
        };
        let Some(report) = next else {
            return;
        };
        shared.state().sent(&report);
        let data = shared.shaped(&report);
        match iface.transfer_in(pipe, data).await {
            Ok(_) => {}
            Err(e) if ends_stream(&e) => return,
            Err(e) => tracing::debug!(error = %e, "hid input report failed"),
        }
    }
}

/// Output reports on the interrupt OUT endpoint, printed for the device side.
async fn receive_outputs<S: ServiceApi>(
    iface: Arc<S>,
    pipe: PipeId,
    mps: usize,
    shared: Arc<Shared>,
) {
    loop {
        match iface.transfer_out(pipe, mps).await {
            Ok(c) => {
                device_event(&shared.tag, &format!("output {}", hex(&c.data)));
                shared.state().last_output = Some(c.data.to_vec());
            }
            Err(e) if ends_stream(&e) => return,
            Err(e) => tracing::debug!(error = %e, "hid output report failed"),
        }
    }
}

async fn answer_setup<S: ServiceApi>(iface: &S, setup: SetupPacket, number: u8, shared: &Shared) {
    let stall = || iface.set_pipe_state(PipeId::CONTROL, true);
    let send = |data: &[u8], len: u16| {
        let n = usize::from(len).min(data.len());
        Bytes::copy_from_slice(data.get(..n).unwrap_or(data))
    };
    let boot_device = !matches!(shared.kind, Kind::Generic(_));
    let reply = match request::decode(&setup, number) {
        Ok(HidRequest::GetReportDescriptor { len }) => {
            Some(send(shared.kind.report_descriptor(), len))
        }
        Ok(HidRequest::GetReport { kind, id, len }) => {
            let zeros = match kind {
                ReportType::Input => shared.kind.input_len(),
                _ => usize::from(len),
            };
            let report = shared.state().report(kind, id, zeros);
            let report = match kind {
                ReportType::Input => shared.shaped(&report),
                _ => Bytes::from(report),
            };
            Some(send(&report, len))
        }
        Ok(HidRequest::GetIdle { .. }) => Some(Bytes::copy_from_slice(&[shared.state().idle])),
        Ok(HidRequest::GetProtocol) if boot_device => {
            Some(Bytes::copy_from_slice(&[u8::from(!shared.state().boot)]))
        }
        Ok(HidRequest::SetReport { kind, id, len }) => {
            let result = match iface.transfer_out(PipeId::CONTROL, usize::from(len)).await {
                Ok(c) => {
                    let what = match kind {
                        ReportType::Output => "output",
                        ReportType::Feature => "feature",
                        ReportType::Input => "input (set)",
                    };
                    device_event(&shared.tag, &format!("{what} {}", hex(&c.data)));
                    match kind {
                        ReportType::Output => shared.state().last_output = Some(c.data.to_vec()),
                        ReportType::Feature => {
                            shared.state().features.insert(id, c.data.to_vec());
                        }
                        ReportType::Input => {}
                    }
                    iface.control_status_handshake_in().await
                }
                Err(e) => Err(e),
            };
            finish(result, &setup);
            return;
        }
        Ok(HidRequest::SetIdle { id, duration }) => {
            if id == 0 {
                shared.state().idle = duration;
            }
            finish(iface.control_status_handshake_in().await, &setup);
            return;
        }
        Ok(HidRequest::SetProtocol { boot }) if boot_device => {
            shared.state().boot = boot;
            finish(iface.control_status_handshake_in().await, &setup);
            return;
        }
        Ok(other) => {
            tracing::debug!(function = %shared.tag, ?other, "not for this HID, stalling");
            None
        }
        Err(e) => {
            tracing::debug!(function = %shared.tag, %setup, "stalling: {e}");
            None
        }
    };
    let result = match reply {
        Some(data) => match iface.transfer_in(PipeId::CONTROL, data).await {
            Ok(_) => iface.control_status_handshake_out().await,
            Err(e) => Err(e),
        },
        None => stall().await,
    };
    finish(result, &setup);
}

fn finish(result: Result<(), Error>, setup: &SetupPacket) {
    if let Err(e) = result {
        tracing::debug!(error = %e, %setup, "hid could not answer a setup packet");
    }
}

#[cfg(test)]
mod tests;
