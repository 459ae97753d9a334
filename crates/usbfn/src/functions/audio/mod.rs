//! USB Audio Class 2.0 (`audio`): a microphone (isochronous IN) and a speaker (isochronous
//! OUT, asynchronous, with an explicit feedback endpoint), the shape of the kernel's
//! `f_uac2.c`, for Linux's `snd-usb-audio`, Windows' `usbaudio2.sys` and macOS.
//!
//! * Interfaces: AudioControl (a clock source, input and output terminals and a feature
//!   unit per path: [`descriptors`]), then the speaker's and the microphone's AudioStreaming
//!   interfaces, each with a zero-bandwidth alternate setting 0 and the stream in 1; one IAD
//!   (01/00/20) over the three.
//! * `source=sine:HZ` (default `sine:1000`) or `source=FILE.wav` (looped): what the
//!   microphone sends, exactly `rate` frames per second of bus time ([`stream`]).
//! * `sink=FILE.wav`: what the speaker receives, appended as it arrives with the header
//!   updated after every write, so the file is playable at every moment. Without `sink` the
//!   speaker's samples are discarded.
//! * `rate=44100|48000` (the clocks' initial sampling frequency; the host may set either),
//!   `channels=1..=4` (default 2), `bits=16|24` (default 16), `ppm=-5000..=5000` (default 0:
//!   how far the device's own sample clock runs from the bus clock; the microphone produces
//!   and the feedback endpoint reports `rate` × (1 + ppm/10⁶) frames per second).
//! * Class requests: [`control`]. Mute and volume apply to the samples (0 dB is bit-exact).
//!
//! Endpoints per speed: one packet per millisecond (bInterval 1 at full speed, 4 at high
//! speed), wMaxPacketSize room for [`MAX_FRAMES_PER_PACKET`] frames; SuperSpeed is not
//! offered (the device is high speed at most).

pub mod control;
pub mod descriptors;
pub mod stream;
pub mod wav;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use tokio::task::JoinHandle;
use usbfn_core::config::{
    AlternateSection, AssociationSection, DeviceSection, EndpointSection, InterfaceSection,
    PerSpeed, TransferTypeName,
};
use usbfn_core::{BusEvent, BusSpeed, CompletionStatus, PipeId};
use usbfn_wire::{Direction, TransferType};

use self::control::{ControlState, RATES, Request};
use self::descriptors::{StreamFormat, USB_IN_OT, USB_OUT_IT, hex};
use self::stream::{Generator, PacketClock, Source, apply_gain, feedback};
use self::wav::{Wav, WavFormat, WavWriter};
use super::{Fragment, FunctionOptions, OptionError, StartError, number};
use crate::{Error, ServiceApi};

/// Frames one packet has room for: 48 kHz is 48 per millisecond, plus one for the
/// accumulator's extra frame and one for a host following a fast feedback value.
pub const MAX_FRAMES_PER_PACKET: usize = 50;
/// Microphone packets kept queued (milliseconds of lead over the bus).
pub const MIC_QUEUE: usize = 32;
/// Speaker reads kept queued: a packet that finds none is lost.
pub const SPEAKER_QUEUE: usize = 64;
/// Feedback packets kept queued.
pub const FEEDBACK_QUEUE: usize = 8;
/// Writes waiting for the sink file's thread; beyond this, packets are dropped and counted.
pub const SINK_QUEUE: usize = 4096;
/// The interface GUID of the AudioControl interface (the first instance).
pub const INTERFACE_GUID: &str = "{0ac20001-7cd4-4f1a-9a5e-75736266a0c2}";

/// Options (`--function audio,key=value,...`).
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// What the microphone sends.
    pub source: SourceOption,
    /// Where the speaker's samples go.
    pub sink: Option<PathBuf>,
    /// Initial sampling frequency of both clocks.
    pub rate: u32,
    /// Channels of both paths.
    pub channels: u8,
    /// Bits per sample: 16 or 24 (3-byte subslots).
    pub bits: u8,
    /// The device sample clock's offset from the bus clock, parts per million.
    pub ppm: i32,
}

/// `source=`.
#[derive(Clone, Debug, PartialEq)]
pub enum SourceOption {
    /// `sine:HZ`.
    Sine(f64),
    /// A WAV file.
    File(PathBuf),
}

impl Default for Options {
    fn default() -> Self {
        Options {
            source: SourceOption::Sine(1000.0),
            sink: None,
            rate: 48_000,
            channels: 2,
            bits: 16,
            ppm: 0,
        }
    }
}

const OPTION_NAMES: &str = "source, sink, rate, channels, bits, ppm";

impl FunctionOptions for Options {
    fn set(&mut self, key: &str, value: &str) -> Result<(), OptionError> {
        let bad = |allowed| OptionError::Value {
            key: key.to_owned(),
            value: value.to_owned(),
            allowed,
        };
        match key {
            "source" => {
                self.source = match value.trim().strip_prefix("sine:") {
                    Some(hz) => SourceOption::Sine(
                        hz.trim()
                            .parse::<f64>()
                            .ok()
                            .filter(|h| (1.0..=20_000.0).contains(h))
                            .ok_or_else(|| bad("sine:HZ (1..=20000) or a WAV file"))?,
                    ),
                    None if !value.trim().is_empty() => SourceOption::File(value.trim().into()),
                    None => return Err(bad("sine:HZ (1..=20000) or a WAV file")),
                }
            }
            "sink" if !value.trim().is_empty() => self.sink = Some(value.trim().into()),
            "sink" => return Err(bad("a WAV file path")),
            "rate" => {
                let rate: u32 = number(key, value, 0, u32::MAX, "44100 or 48000")?;
                if !RATES.contains(&rate) {
                    return Err(bad("44100 or 48000"));
                }
                self.rate = rate;
            }
            "channels" => self.channels = number(key, value, 1, 4, "1..=4")?,
            "bits" => {
                self.bits = match number::<u8>(key, value, 16, 24, "16 or 24")? {
                    b @ (16 | 24) => b,
                    _ => return Err(bad("16 or 24")),
                }
            }
            "ppm" => self.ppm = number(key, value, -5000, 5000, "-5000..=5000")?,
            other => {
                return Err(OptionError::Unknown {
                    function: "audio",
                    key: other.to_owned(),
                    known: OPTION_NAMES,
                });
            }
        }
        Ok(())
    }
}

impl Options {
    /// The stream format.
    pub fn format(&self) -> StreamFormat {
        StreamFormat {
            channels: self.channels,
            subslot: self.bits / 8,
            bits: self.bits,
        }
    }

    fn wav_format(&self, rate: u32) -> WavFormat {
        WavFormat {
            rate,
            channels: u16::from(self.channels),
            bits: u16::from(self.bits),
        }
    }

    /// wMaxPacketSize of the data endpoints.
    pub fn max_packet(&self) -> u16 {
        u16::try_from(MAX_FRAMES_PER_PACKET * self.format().frame_bytes()).unwrap_or(1023)
    }
}

/// Interface names of instance `instance`: control, speaker, microphone.
pub fn interface_names(instance: usize) -> [String; 3] {
    ["control", "speaker", "microphone"].map(|n| format!("audio{instance}.{n}"))
}

/// What the function adds to a device: 1d6b:0101 (the kernel's audio gadget ID) alone.
pub fn fragment(options: &Options, instance: usize) -> Fragment {
    let format = options.format();
    let mps = options.max_packet();
    let names = interface_names(instance);
    let iso = |direction, max_packet: PerSpeed<u16>, iso_attributes, class: Option<Vec<u8>>| {
        EndpointSection {
            max_packet: Some(max_packet),
            interval: Some(PerSpeed::Each {
                full: Some(1),
                high: Some(4),
                super_: Some(4),
            }),
            iso_attributes,
            class_descriptors: class.map(|c| hex(&c)),
            ..EndpointSection::new(None, Some(direction), TransferTypeName::Isochronous)
        }
    };
    use usbfn_core::config::DirectionName::{In, Out};
    // Asynchronous data endpoints (bits 3..2 = 01); the feedback endpoint's usage (5..4 = 01).
    let data = |direction| {
        iso(
            direction,
            PerSpeed::All(mps),
            0x04,
            Some(descriptors::iso_data_endpoint()),
        )
    };
    let feedback_ep = iso(
        In,
        PerSpeed::Each {
            full: Some(3),
            high: Some(4),
            super_: Some(4),
        },
        0x10,
        None,
    );
    let streaming = |name: &str, terminal, endpoints, string: &str| InterfaceSection {
        name: name.to_owned(),
        guid: None,
        number: None,
        device_request_owner: false,
        compatible_id: None,
        class: Some(1),
        subclass: Some(2),
        protocol: Some(0x20),
        string: Some(format!("{string} (off)")),
        class_descriptors: None,
        endpoints: Vec::new(),
        descriptor: None,
        alternates: vec![AlternateSection {
            class: Some(1),
            subclass: Some(2),
            protocol: Some(0x20),
            string: Some(string.to_owned()),
            class_descriptors: Some(hex(&descriptors::audio_streaming(terminal, &format))),
            endpoints,
            descriptor: None,
        }],
    };
    let control = InterfaceSection {
        name: names[0].clone(),
        guid: (instance == 0).then(|| INTERFACE_GUID.to_owned()),
        number: None,
        device_request_owner: true,
        compatible_id: None,
        class: Some(1),
        subclass: Some(1),
        protocol: Some(0x20),
        string: Some("usbfn audio control".into()),
        class_descriptors: Some(hex(&descriptors::audio_control(&format))),
        endpoints: Vec::new(),
        descriptor: None,
        alternates: Vec::new(),
    };
    let speaker = streaming(
        &names[1],
        USB_OUT_IT,
        vec![data(Out), feedback_ep],
        "speaker",
    );
    let microphone = streaming(&names[2], USB_IN_OT, vec![data(In)], "microphone");
    Fragment {
        device: DeviceSection {
            class: 0xef,
            subclass: 0x02,
            protocol: 0x01,
            max_speed: BusSpeed::High,
            ..super::function_device(
                0x1d6b,
                0x0101,
                Some("usbfn audio".into()),
                Some("0123456789".into()),
            )
        },
        interfaces: vec![control, speaker, microphone],
        associations: vec![AssociationSection {
            interfaces: names.to_vec(),
            class: 1,
            subclass: 0,
            protocol: 0x20,
            string: Some("usbfn audio".into()),
        }],
    }
}

/// The device side, ready to serve: the source loaded and the sink file created.
#[derive(Debug)]
pub struct Prepared {
    options: Options,
    source: Source,
    sink: Option<SyncSender<SinkMessage>>,
}

#[derive(Debug)]
enum SinkMessage {
    Format(WavFormat),
    Data(Vec<u8>),
}

/// Load the source, create the sink file (errors here are start errors).
pub fn prepare(options: Options) -> Result<Prepared, StartError> {
    let source = match &options.source {
        SourceOption::Sine(hz) => Source::Sine(*hz),
        SourceOption::File(path) => Source::File(Arc::new(
            Wav::read(path).map_err(|e| StartError::Invalid(format!("audio source: {e}")))?,
        )),
    };
    let sink = match &options.sink {
        None => None,
        Some(path) => {
            let writer = WavWriter::create(path, options.wav_format(options.rate))
                .map_err(|e| StartError::Invalid(format!("audio sink: {e}")))?;
            let (tx, rx) = sync_channel(SINK_QUEUE);
            std::thread::Builder::new()
                .name("audio-sink".into())
                .spawn(move || sink_thread(writer, rx))
                .map_err(|source| StartError::Io {
                    what: "starting the audio sink thread".into(),
                    source,
                })?;
            Some(tx)
        }
    };
    Ok(Prepared {
        options,
        source,
        sink,
    })
}

/// Serve the function on its three interfaces (control, speaker, microphone, in the order
/// of [`fragment`]) until one of them fails.
pub async fn run<S: ServiceApi>(interfaces: Vec<S>, prepared: Prepared) -> Result<(), Error> {
    let mut it = interfaces.into_iter();
    let (Some(control), Some(speaker), Some(microphone)) = (it.next(), it.next(), it.next()) else {
        return Err(Error::NoSuchInterface(
            "audio needs its control, speaker and microphone interfaces".into(),
        ));
    };
    let shared = Arc::new(Shared {
        state: Mutex::new(ControlState::new(prepared.options.rate)),
        options: prepared.options,
        source: prepared.source,
        sink: prepared.sink,
    });
    tokio::try_join!(
        control_service(control, shared.clone()),
        streaming_service(Arc::new(speaker), shared.clone(), Stream::Speaker),
        streaming_service(Arc::new(microphone), shared, Stream::Microphone),
    )?;
    Ok(())
}

struct Shared {
    state: Mutex<ControlState>,
    options: Options,
    source: Source,
    sink: Option<SyncSender<SinkMessage>>,
}

impl Shared {
    fn state(&self) -> ControlState {
        *self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Stream {
    Speaker,
    Microphone,
}

async fn control_service<S: ServiceApi>(iface: S, shared: Arc<Shared>) -> Result<(), Error> {
    iface.activate_bus().await?;
    loop {
        if let BusEvent::SetupPacket(setup) = iface.next_event().await? {
            let answered = answer(&iface, &shared, &setup).await;
            if let Err(e) = answered {
                tracing::debug!(%setup, error = %e, "audio control request failed");
            }
        }
    }
}

async fn answer<S: ServiceApi>(
    iface: &S,
    shared: &Shared,
    setup: &usbfn_wire::SetupPacket,
) -> Result<(), Error> {
    let Some(request) = Request::from_setup(setup) else {
        return iface.set_pipe_state(PipeId::CONTROL, true).await;
    };
    if request.direction == Direction::In {
        let data = shared
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&request);
        match data {
            Some(data) => {
                iface
                    .transfer_in(PipeId::CONTROL, Bytes::from(data))
                    .await?;
                iface.control_status_handshake_out().await
            }
            None => {
                tracing::debug!(%setup, "audio: unsupported get request, stalling");
                iface.set_pipe_state(PipeId::CONTROL, true).await
            }
        }
    } else {
        let length = shared
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .set_length(&request);
        let Some(length) = length else {
            tracing::debug!(%setup, "audio: unsupported set request, stalling");
            return iface.set_pipe_state(PipeId::CONTROL, true).await;
        };
        let data = iface.transfer_out(PipeId::CONTROL, length).await?.data;
        let applied = shared
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .set(&request, &data);
        match applied {
            Ok(()) => {
                tracing::info!(state = ?shared.state(), "audio control set");
                iface.control_status_handshake_in().await
            }
            Err(why) => {
                tracing::warn!(%setup, %why, "audio: set request refused, stalling");
                iface.set_pipe_state(PipeId::CONTROL, true).await
            }
        }
    }
}

/// Figures of one stream, logged when it stops.
#[derive(Debug, Default)]
struct Stats {
    packets: u64,
    frames: u64,
    empty: u64,
    dropped: u64,
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Stats {
    fn log(&self, path: Stream, rate: u32) {
        let seconds = match (self.first, self.last) {
            (Some(a), Some(b)) => b.duration_since(a).as_secs_f64(),
            _ => 0.0,
        };
        let per_second = if seconds > 0.0 {
            // From the first packet's completion to the last's: packets - 1 intervals.
            self.frames as f64 * (self.packets.saturating_sub(1) as f64 / self.packets as f64)
                / seconds
        } else {
            0.0
        };
        // Frames per packet depend on the packet sizes alone, not on how often the host
        // served a slot: for the microphone the device's accumulator, for the speaker what
        // the host derived from the feedback value.
        let per_packet = self.frames as f64 / self.packets.max(1) as f64;
        tracing::info!(
            target: "usbfn::audio",
            path = ?path,
            rate,
            packets = self.packets,
            frames = self.frames,
            frames_per_packet = format!("{per_packet:.4}"),
            empty_packets = self.empty,
            dropped = self.dropped,
            seconds = format!("{seconds:.3}"),
            frames_per_second = format!("{per_second:.1}"),
            "audio stream stopped"
        );
    }
}

/// A stream's task, its figures and its rate.
type Running = (JoinHandle<()>, Arc<Mutex<Stats>>, u32);

async fn streaming_service<S: ServiceApi>(
    iface: Arc<S>,
    shared: Arc<Shared>,
    path: Stream,
) -> Result<(), Error> {
    let info = iface.class_info().await?;
    let pipe = |speed: BusSpeed, dir: Direction, feedback: bool| {
        info.find_pipe_where(speed, |d| {
            d.transfer_type() == TransferType::Isochronous
                && d.b_endpoint_address.direction() == dir
                && (d.bm_attributes & 0x30 == 0x10) == feedback
        })
    };
    let mut speed = BusSpeed::High;
    let mut running: Option<Running> = None;
    let stop = |running: &mut Option<Running>| {
        if let Some((task, stats, rate)) = running.take() {
            task.abort();
            stats
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .log(path, rate);
        }
    };
    iface.activate_bus().await?;
    loop {
        let event = iface.next_event().await?;
        match event {
            BusEvent::Reset(s) => {
                speed = s;
                stop(&mut running);
            }
            BusEvent::Configured(_) | BusEvent::UnConfigured | BusEvent::Detach => {
                stop(&mut running);
            }
            BusEvent::SetInterface { alternate, .. } => {
                stop(&mut running);
                if alternate != 1 {
                    continue;
                }
                let stats = Arc::new(Mutex::new(Stats::default()));
                let task = match path {
                    Stream::Microphone => {
                        let Some((data, mps)) = pipe(speed, Direction::In, false) else {
                            continue;
                        };
                        let rate = shared.state().microphone.rate;
                        let s = shared.clone();
                        let st = stats.clone();
                        let i = iface.clone();
                        (tokio::spawn(microphone_stream(i, data, mps, s, st)), rate)
                    }
                    Stream::Speaker => {
                        let Some((data, mps)) = pipe(speed, Direction::Out, false) else {
                            continue;
                        };
                        let fb = pipe(speed, Direction::In, true).map(|(p, _)| p);
                        let rate = shared.state().speaker.rate;
                        let s = shared.clone();
                        let st = stats.clone();
                        let i = iface.clone();
                        (
                            tokio::spawn(speaker_stream(i, data, mps, fb, speed, s, st)),
                            rate,
                        )
                    }
                };
                tracing::info!(path = ?path, ?speed, rate = task.1, "audio stream started");
                running = Some((task.0, stats, task.1));
            }
            BusEvent::SetupPacket(setup) => {
                tracing::debug!(%setup, "audio streaming interface: request stalled");
                let _ = iface.set_pipe_state(PipeId::CONTROL, true).await;
            }
            BusEvent::Attach | BusEvent::Suspend | BusEvent::Resume => {}
        }
    }
}

/// Whether a transfer error ends the stream (cancelled by an alternate-setting change,
/// the device gone); others (a missed slot) are counted and the stream goes on.
fn ends_stream(e: &Error) -> bool {
    matches!(
        e,
        Error::Transfer(CompletionStatus::Cancelled | CompletionStatus::Shutdown)
            | Error::Refused(_)
            | Error::DeviceGone
    )
}

async fn microphone_stream<S: ServiceApi>(
    iface: Arc<S>,
    pipe: PipeId,
    mps: usize,
    shared: Arc<Shared>,
    stats: Arc<Mutex<Stats>>,
) {
    let o = &shared.options;
    let rate = shared.state().microphone.rate;
    let mut clock = PacketClock::new(rate, o.ppm);
    let mut generator = Generator::new(shared.source.clone(), rate);
    let frame_bytes = o.format().frame_bytes();
    let mut queue: VecDeque<(S::Transfer, u64)> = VecDeque::new();
    loop {
        while queue.len() < MIC_QUEUE {
            let frames = clock.next_frames().min(mps / frame_bytes.max(1));
            let gain = shared.state().microphone.gain();
            let mut data = Vec::with_capacity(frames * frame_bytes);
            generator.fill(&mut data, frames, o.channels, u16::from(o.bits), gain);
            queue.push_back((iface.transfer_in(pipe, Bytes::from(data)), frames as u64));
        }
        let Some((transfer, frames)) = queue.pop_front() else {
            return;
        };
        let result = transfer.await;
        let mut s = stats.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(_) => {
                let now = Instant::now();
                s.first.get_or_insert(now);
                s.last = Some(now);
                s.packets += 1;
                s.frames += frames;
            }
            Err(e) if ends_stream(&e) => return,
            Err(e) => {
                s.dropped += 1;
                tracing::debug!(error = %e, "audio microphone packet failed");
            }
        }
    }
}

async fn speaker_stream<S: ServiceApi>(
    iface: Arc<S>,
    pipe: PipeId,
    mps: usize,
    feedback_pipe: Option<PipeId>,
    speed: BusSpeed,
    shared: Arc<Shared>,
    stats: Arc<Mutex<Stats>>,
) {
    let o = shared.options.clone();
    let rate = shared.state().speaker.rate;
    let frame_bytes = o.format().frame_bytes().max(1);
    if let Some(sink) = &shared.sink {
        let _ = sink.try_send(SinkMessage::Format(o.wav_format(rate)));
    }
    let value = Bytes::from(feedback(speed, rate, o.ppm));
    let fb_iface = iface.clone();
    let feedback_loop = async move {
        let Some(fb) = feedback_pipe else {
            return;
        };
        let mut queue: VecDeque<S::Transfer> = VecDeque::new();
        loop {
            while queue.len() < FEEDBACK_QUEUE {
                queue.push_back(fb_iface.transfer_in(fb, value.clone()));
            }
            let Some(t) = queue.pop_front() else {
                return;
            };
            match t.await {
                Err(e) if ends_stream(&e) => return,
                _ => {}
            }
        }
    };
    let data_loop = async move {
        let mut queue: VecDeque<S::Transfer> = VecDeque::new();
        let mut dropped_logged = false;
        loop {
            while queue.len() < SPEAKER_QUEUE {
                queue.push_back(iface.transfer_out(pipe, mps));
            }
            let Some(t) = queue.pop_front() else {
                return;
            };
            let completion = match t.await {
                Ok(c) => c,
                Err(e) if ends_stream(&e) => return,
                Err(e) => {
                    tracing::debug!(error = %e, "audio speaker packet failed");
                    continue;
                }
            };
            let mut data = completion.data.to_vec();
            data.truncate(data.len() - data.len() % frame_bytes);
            let gain = shared.state().speaker.gain();
            apply_gain(&mut data, u16::from(o.bits), gain);
            let mut s = stats.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            s.first.get_or_insert(now);
            s.last = Some(now);
            s.packets += 1;
            s.frames += (data.len() / frame_bytes) as u64;
            if data.is_empty() {
                s.empty += 1;
                continue;
            }
            if let Some(sink) = &shared.sink {
                match sink.try_send(SinkMessage::Data(data)) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => {
                        s.dropped += 1;
                        if !dropped_logged {
                            dropped_logged = true;
                            tracing::warn!(
                                limit = SINK_QUEUE,
                                "audio sink file is not keeping up: packets dropped (the \
                                 queue of {SINK_QUEUE} writes is full)"
                            );
                        }
                    }
                    Err(TrySendError::Disconnected(_)) => {}
                }
            }
        }
    };
    tokio::join!(feedback_loop, data_loop);
}

/// The sink file's thread: batches what is queued into one append (and one header update).
fn sink_thread(mut writer: WavWriter, rx: Receiver<SinkMessage>) {
    let mut failed = false;
    let mut flush = |writer: &mut WavWriter, batch: &mut Vec<u8>| {
        if !batch.is_empty()
            && !failed
            && let Err(e) = writer.append(batch)
        {
            tracing::error!(error = %e, "audio sink: writing stopped");
            failed = true;
        }
        batch.clear();
    };
    let mut batch = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(message) = next {
            match message {
                SinkMessage::Data(d) => batch.extend_from_slice(&d),
                SinkMessage::Format(f) => {
                    flush(&mut writer, &mut batch);
                    match writer.set_format(f) {
                        Ok(true) => {}
                        Ok(false) => tracing::warn!(
                            header = ?writer.format(),
                            stream = ?f,
                            "audio sink: the host changed the format after data was \
                             written; the file keeps its first format"
                        ),
                        Err(e) => tracing::error!(error = %e, "audio sink header"),
                    }
                }
            }
            next = rx.try_recv().ok();
        }
        flush(&mut writer, &mut batch);
    }
}

#[cfg(test)]
mod tests;
