//! One device connection: the guest's packets become URBs, completions become replies.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use usbfn::{BusOutput, BusPort, BusSpeed, CompletionStatus, Controller, UrbCompletion};
use usbfn_core::{IsoPacket, IsoRequest, Urb, UrbId};
use usbfn_wire::{Direction, SetupPacket, TransferType};

use super::{HostError, HostOptions, Link};
use crate::proto::{
    BulkPacket, ControlPacket, DataPacket, DeviceConnect, EpInfo, EpType, InterfaceInfo, Message,
    Packet, Speed, Status, endpoint_slot,
};

/// Why a session ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// The guest closed the connection.
    GuestClosed,
    /// The server is stopping.
    Stopped,
    /// The device stopped being ready: the guest gets device_disconnect.
    DeviceGone,
}

/// What a URB in the device answers.
#[derive(Clone, Debug)]
enum Kind {
    Control {
        request: u8,
        requesttype: u8,
        value: u16,
        index: u16,
    },
    Bulk {
        endpoint: u8,
        stream_id: u32,
    },
    InterruptOut {
        endpoint: u8,
    },
    /// One of the URBs kept queued by interrupt receiving.
    InterruptIn {
        endpoint: u8,
    },
    /// One of the URBs kept queued by an iso IN stream.
    IsoIn {
        endpoint: u8,
    },
    /// An iso OUT packet (no reply; errors stop the stream).
    IsoOut {
        endpoint: u8,
    },
    SetConfiguration,
    GetConfiguration,
    SetAltSetting {
        interface: u8,
        alt: u8,
    },
    GetAltSetting {
        interface: u8,
    },
}

#[derive(Debug)]
struct Pending {
    /// The guest's id (None for the URBs of a receiving stream).
    id: Option<u64>,
    kind: Kind,
}

/// A stream the host side keeps going on its own (interrupt receiving, iso IN).
#[derive(Debug, Default)]
struct Stream {
    /// URBs of the stream in the device.
    urbs: Vec<u64>,
    /// Id of the next packet sent to the guest (counting from 0).
    next_id: u64,
    /// URBs per refill and packets per URB.
    urb_count: usize,
    packets_per_urb: usize,
}

pub(crate) struct Session {
    controller: Controller,
    port: BusPort,
    completions: mpsc::UnboundedReceiver<BusOutput>,
    options: HostOptions,
    speed: BusSpeed,
    next_urb: u64,
    pending: HashMap<u64, Pending>,
    /// The guest's id of a pending request → its URB.
    by_id: HashMap<u64, u64>,
    interrupt: HashMap<u8, Stream>,
    iso: HashMap<u8, Stream>,
    /// The endpoint table the guest was last sent.
    endpoints: EpInfo,
}

impl Session {
    pub(crate) fn new(controller: Controller, mut port: BusPort, options: HostOptions) -> Session {
        let completions = port.take_receiver();
        let speed = port.speed();
        Session {
            controller,
            port,
            completions,
            options,
            speed,
            next_urb: 1,
            pending: HashMap::new(),
            by_id: HashMap::new(),
            interrupt: HashMap::new(),
            iso: HashMap::new(),
            endpoints: EpInfo::default(),
        }
    }

    pub(crate) fn speed(&self) -> BusSpeed {
        self.speed
    }

    /// ep_info, interface_info, device_connect.
    pub(crate) fn connect<R, W>(&mut self, link: &mut Link<R, W>) -> Result<(), HostError>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        self.send_tables(link)?;
        let speed = self.speed;
        let d = self.controller.with_model(|m| m.device_descriptor(speed));
        link.send(
            0,
            &Packet::DeviceConnect(DeviceConnect {
                speed: match speed {
                    BusSpeed::Full => Speed::FULL,
                    BusSpeed::High => Speed::HIGH,
                    BusSpeed::Super => Speed::SUPER,
                },
                device_class: d.b_device_class,
                device_subclass: d.b_device_sub_class,
                device_protocol: d.b_device_protocol,
                vendor_id: d.id_vendor,
                product_id: d.id_product,
                device_version_bcd: d.bcd_device,
            }),
        )?;
        Ok(())
    }

    /// Serve until the guest closes, the device goes away or `stop` resolves.
    pub(crate) async fn run<R, W>(
        &mut self,
        link: &mut Link<R, W>,
        stop: &mut Pin<&mut impl Future<Output = ()>>,
    ) -> Result<End, HostError>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        loop {
            let mut gone = false;
            tokio::select! {
                biased;
                m = link.next() => match m? {
                    Some(m) => self.handle(link, m)?,
                    None => return Ok(End::GuestClosed),
                },
                c = self.completions.recv() => match c {
                    Some(BusOutput::Completion(c)) => self.complete(link, c)?,
                    Some(BusOutput::Disconnect) | None => gone = true,
                },
                () = stop.as_mut() => return Ok(End::Stopped),
            }
            // Take whatever else is ready before writing.
            while !gone && link.queued() < 256 * 1024 {
                if let Some(m) = link.try_next()? {
                    self.handle(link, m)?;
                    continue;
                }
                match self.completions.try_recv() {
                    Ok(BusOutput::Completion(c)) => self.complete(link, c)?,
                    Ok(BusOutput::Disconnect) => gone = true,
                    Err(_) => break,
                }
            }
            link.flush().await?;
            if gone {
                return Ok(End::DeviceGone);
            }
        }
    }

    fn handle<R, W>(&mut self, link: &mut Link<R, W>, m: Message) -> Result<(), HostError>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let id = m.id;
        match m.packet {
            Packet::Control(p) => {
                let setup = SetupPacket::from_bytes([
                    p.requesttype,
                    p.request,
                    p.value.to_le_bytes()[0],
                    p.value.to_le_bytes()[1],
                    p.index.to_le_bytes()[0],
                    p.index.to_le_bytes()[1],
                    p.length.to_le_bytes()[0],
                    p.length.to_le_bytes()[1],
                ]);
                let kind = Kind::Control {
                    request: p.request,
                    requesttype: p.requesttype,
                    value: p.value,
                    index: p.index,
                };
                self.submit_setup(Some(id), kind, setup, p.data)?;
            }
            Packet::Bulk(p) => {
                let kind = Kind::Bulk {
                    endpoint: p.endpoint,
                    stream_id: p.stream_id,
                };
                // Fits: a u32 length into usize on every target usbfn builds for (32/64-bit).
                let len = usize::try_from(p.length).unwrap_or(usize::MAX);
                self.submit_data(Some(id), kind, p.endpoint, len, p.data, None)?;
            }
            Packet::Interrupt(p) => {
                if p.endpoint & 0x80 != 0 {
                    // IN data only flows through interrupt receiving.
                    link.send(
                        id,
                        &Packet::Interrupt(DataPacket {
                            endpoint: p.endpoint,
                            status: Status::INVAL,
                            length: 0,
                            data: Bytes::new(),
                        }),
                    )?;
                } else {
                    let kind = Kind::InterruptOut {
                        endpoint: p.endpoint,
                    };
                    let len = usize::from(p.length);
                    self.submit_data(Some(id), kind, p.endpoint, len, p.data, None)?;
                }
            }
            Packet::Iso(p) => {
                if p.endpoint & 0x80 == 0 && self.iso.contains_key(&p.endpoint) {
                    let iso = IsoRequest {
                        packets: vec![IsoPacket {
                            offset: 0,
                            length: u32::from(p.length),
                        }],
                        start_frame: None,
                    };
                    let kind = Kind::IsoOut {
                        endpoint: p.endpoint,
                    };
                    let len = usize::from(p.length);
                    self.submit_data(None, kind, p.endpoint, len, p.data, Some(iso))?;
                } else {
                    tracing::debug!(
                        endpoint = p.endpoint,
                        "iso_packet for an endpoint without an OUT stream: dropped"
                    );
                }
            }
            Packet::SetConfiguration { configuration } => {
                self.stop_streams();
                let setup = SetupPacket::from_bytes([0x00, 9, configuration, 0, 0, 0, 0, 0]);
                self.submit_setup(Some(id), Kind::SetConfiguration, setup, Bytes::new())?;
            }
            Packet::GetConfiguration => {
                let setup = SetupPacket::from_bytes([0x80, 8, 0, 0, 0, 0, 1, 0]);
                self.submit_setup(Some(id), Kind::GetConfiguration, setup, Bytes::new())?;
            }
            Packet::SetAltSetting { interface, alt } => {
                self.stop_streams();
                let setup = SetupPacket::from_bytes([0x01, 11, alt, 0, interface, 0, 0, 0]);
                let kind = Kind::SetAltSetting { interface, alt };
                self.submit_setup(Some(id), kind, setup, Bytes::new())?;
            }
            Packet::GetAltSetting { interface } => {
                let setup = SetupPacket::from_bytes([0x81, 10, 0, 0, interface, 0, 1, 0]);
                let kind = Kind::GetAltSetting { interface };
                self.submit_setup(Some(id), kind, setup, Bytes::new())?;
            }
            Packet::Reset => {
                self.stop_streams();
                self.port.reset();
            }
            Packet::CancelDataPacket => self.cancel(link, id)?,
            Packet::StartInterruptReceiving { endpoint } => {
                let status = self.start_stream(endpoint, EpType::INTERRUPT, 1, 0);
                link.send(id, &Packet::InterruptReceivingStatus { status, endpoint })?;
            }
            Packet::StopInterruptReceiving { endpoint } => {
                self.stop_stream(endpoint, false);
                link.send(
                    id,
                    &Packet::InterruptReceivingStatus {
                        status: Status::SUCCESS,
                        endpoint,
                    },
                )?;
            }
            Packet::StartIsoStream {
                endpoint,
                pkts_per_urb,
                no_urbs,
            } => {
                let status = self.start_stream(
                    endpoint,
                    EpType::ISO,
                    usize::from(pkts_per_urb),
                    usize::from(no_urbs),
                );
                link.send(id, &Packet::IsoStreamStatus { status, endpoint })?;
            }
            Packet::StopIsoStream { endpoint } => {
                self.stop_stream(endpoint, true);
                link.send(
                    id,
                    &Packet::IsoStreamStatus {
                        status: Status::SUCCESS,
                        endpoint,
                    },
                )?;
            }
            Packet::FilterFilter { .. } | Packet::DeviceDisconnectAck => {}
            other => return Err(unexpected(&other)),
        }
        Ok(())
    }

    fn urb_id(&mut self) -> u64 {
        let n = self.next_urb;
        self.next_urb += 1;
        n
    }

    fn track(&mut self, id: Option<u64>, kind: Kind) -> Result<u64, HostError> {
        if self.pending.len() >= self.options.max_outstanding {
            return Err(HostError::TooManyOutstanding(self.pending.len()));
        }
        let urb = self.urb_id();
        if let Some(id) = id
            && let Some(old) = self.by_id.insert(id, urb)
        {
            tracing::debug!(id, old, "the guest reused the id of a pending packet");
        }
        self.pending.insert(urb, Pending { id, kind });
        Ok(urb)
    }

    fn submit_setup(
        &mut self,
        id: Option<u64>,
        kind: Kind,
        setup: SetupPacket,
        data: Bytes,
    ) -> Result<(), HostError> {
        let urb = self.track(id, kind)?;
        self.port.submit(Urb::control(UrbId(urb), setup, data));
        Ok(())
    }

    fn submit_data(
        &mut self,
        id: Option<u64>,
        kind: Kind,
        endpoint: u8,
        buffer_len: usize,
        data: Bytes,
        iso: Option<IsoRequest>,
    ) -> Result<u64, HostError> {
        let urb = self.track(id, kind)?;
        self.port.submit(Urb {
            id: UrbId(urb),
            endpoint: endpoint & 0x0f,
            direction: if endpoint & 0x80 != 0 {
                Direction::In
            } else {
                Direction::Out
            },
            setup: None,
            buffer_len,
            data,
            short_not_ok: false,
            zero_packet: false,
            iso,
        });
        Ok(urb)
    }

    /// cancel_data_packet: exactly one answer for the packet, whichever way it ends.
    fn cancel<R, W>(&mut self, link: &mut Link<R, W>, id: u64) -> Result<(), HostError>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let Some(&urb) = self.by_id.get(&id) else {
            tracing::debug!(id, "cancel_data_packet for a packet already answered");
            return Ok(());
        };
        if self.port.unlink(UrbId(urb)) {
            let cancelled = UrbCompletion {
                id: UrbId(urb),
                status: CompletionStatus::Cancelled,
                actual_length: 0,
                data: Bytes::new(),
                iso: None,
            };
            return self.complete(link, cancelled);
        }
        // It completed: its completion is in the channel; answer it now, before any packet
        // that reuses the id.
        while let Ok(out) = self.completions.try_recv() {
            match out {
                BusOutput::Completion(c) => self.complete(link, c)?,
                BusOutput::Disconnect => {
                    tracing::debug!("device disconnect while draining for a cancel");
                }
            }
        }
        Ok(())
    }

    /// A URB completed: answer the guest (exactly once: the entry leaves `pending` here).
    fn complete<R, W>(&mut self, link: &mut Link<R, W>, c: UrbCompletion) -> Result<(), HostError>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let Some(p) = self.pending.remove(&c.id.0) else {
            tracing::warn!(
                urb = c.id.0,
                "completion for a URB that is not pending: dropped"
            );
            return Ok(());
        };
        if let Some(id) = p.id
            && self.by_id.get(&id) == Some(&c.id.0)
        {
            self.by_id.remove(&id);
        }
        let id = p.id.unwrap_or(0);
        let status = Status(c.status.to_usbredir());
        let moved = c.actual_length;
        match p.kind {
            Kind::Control {
                request,
                requesttype,
                value,
                index,
            } => link.send(
                id,
                &Packet::Control(ControlPacket {
                    endpoint: requesttype & 0x80,
                    request,
                    requesttype,
                    status,
                    value,
                    index,
                    // Fits: a control transfer moves at most wLength (u16) bytes.
                    length: u16::try_from(if requesttype & 0x80 != 0 {
                        c.data.len()
                    } else {
                        moved
                    })
                    .unwrap_or(u16::MAX),
                    data: if requesttype & 0x80 != 0 {
                        c.data
                    } else {
                        Bytes::new()
                    },
                }),
            )?,
            Kind::Bulk {
                endpoint,
                stream_id,
            } => {
                let input = endpoint & 0x80 != 0;
                let length = if input { c.data.len() } else { moved };
                link.send(
                    id,
                    &Packet::Bulk(BulkPacket {
                        endpoint,
                        status,
                        // Fits: the core moves at most the URB's buffer, which came as a u32 length.
                        length: u32::try_from(length).unwrap_or(u32::MAX),
                        stream_id,
                        data: if input { c.data } else { Bytes::new() },
                    }),
                )?
            }
            Kind::InterruptOut { endpoint } => link.send(
                id,
                &Packet::Interrupt(DataPacket {
                    endpoint,
                    status,
                    // Fits: an interrupt URB's buffer is one packet (at most 3072 bytes).
                    length: u16::try_from(moved).unwrap_or(u16::MAX),
                    data: Bytes::new(),
                }),
            )?,
            Kind::InterruptIn { endpoint } => self.interrupt_in(link, endpoint, c)?,
            Kind::IsoIn { endpoint } => self.iso_in(link, endpoint, c)?,
            Kind::IsoOut { endpoint } => {
                if !matches!(
                    c.status,
                    CompletionStatus::Success | CompletionStatus::Cancelled
                ) && self.iso.contains_key(&endpoint)
                {
                    link.send(0, &Packet::IsoStreamStatus { status, endpoint })?;
                }
            }
            Kind::SetConfiguration => {
                self.send_tables(link)?;
                let configuration = self
                    .controller
                    .with_device(|d| d.configuration_value())
                    .unwrap_or(0);
                link.send(
                    id,
                    &Packet::ConfigurationStatus {
                        status,
                        configuration,
                    },
                )?;
            }
            Kind::GetConfiguration => link.send(
                id,
                &Packet::ConfigurationStatus {
                    status,
                    configuration: c.data.first().copied().unwrap_or(0),
                },
            )?,
            Kind::SetAltSetting { interface, alt } => {
                self.send_tables(link)?;
                link.send(
                    id,
                    &Packet::AltSettingStatus {
                        status,
                        interface,
                        alt: if c.status.is_success() { alt } else { 255 },
                    },
                )?;
            }
            Kind::GetAltSetting { interface } => link.send(
                id,
                &Packet::AltSettingStatus {
                    status,
                    interface,
                    alt: c.data.first().copied().unwrap_or(255),
                },
            )?,
        }
        Ok(())
    }

    /// An interrupt-receiving URB completed: its data goes out, and it is queued again.
    fn interrupt_in<R, W>(
        &mut self,
        link: &mut Link<R, W>,
        endpoint: u8,
        c: UrbCompletion,
    ) -> Result<(), HostError>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let Some(stream) = self.interrupt.get_mut(&endpoint) else {
            return Ok(()); // stopped meanwhile
        };
        stream.urbs.retain(|u| *u != c.id.0);
        if c.status == CompletionStatus::Cancelled {
            return Ok(());
        }
        if !c.status.is_success() {
            // usbredir reports a stream that stopped on its own with stall.
            self.stop_stream(endpoint, false);
            link.send(
                0,
                &Packet::InterruptReceivingStatus {
                    status: Status::STALL,
                    endpoint,
                },
            )?;
            return Ok(());
        }
        let packet_id = stream.next_id;
        stream.next_id += 1;
        link.send(
            packet_id,
            &Packet::Interrupt(DataPacket {
                endpoint,
                status: Status::SUCCESS,
                // Fits: an interrupt URB's buffer is one packet (at most 3072 bytes).
                length: u16::try_from(c.data.len()).unwrap_or(u16::MAX),
                data: c.data,
            }),
        )?;
        self.refill(endpoint, EpType::INTERRUPT)
    }

    /// An iso IN URB completed: one iso_packet per packet, then it is queued again.
    fn iso_in<R, W>(
        &mut self,
        link: &mut Link<R, W>,
        endpoint: u8,
        c: UrbCompletion,
    ) -> Result<(), HostError>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let Some(stream) = self.iso.get_mut(&endpoint) else {
            return Ok(());
        };
        stream.urbs.retain(|u| *u != c.id.0);
        if c.status == CompletionStatus::Cancelled {
            return Ok(());
        }
        let Some(iso) = c.iso.filter(|_| c.status.is_success()) else {
            self.stop_stream(endpoint, true);
            link.send(
                0,
                &Packet::IsoStreamStatus {
                    status: Status::STALL,
                    endpoint,
                },
            )?;
            return Ok(());
        };
        let mut offset = 0usize;
        for r in &iso.packets {
            let n = usize::try_from(r.actual_length).unwrap_or(0);
            let data = c
                .data
                .slice(offset.min(c.data.len())..(offset + n).min(c.data.len()));
            offset += n;
            let packet_id = stream.next_id;
            stream.next_id += 1;
            let status = if r.status == CompletionStatus::Missed {
                // A missed slot is an empty packet, as a real device's NAKed slot.
                Status::SUCCESS
            } else {
                Status(r.status.to_usbredir())
            };
            link.send(
                packet_id,
                &Packet::Iso(DataPacket {
                    endpoint,
                    status,
                    // Fits: one iso packet is at most 3 x 1024 bytes (x 16 bursts at SuperSpeed: 49152).
                    length: u16::try_from(data.len()).unwrap_or(u16::MAX),
                    data,
                }),
            )?;
        }
        self.refill(endpoint, EpType::ISO)
    }

    /// Start interrupt receiving or an iso stream on `endpoint` (checked against the
    /// endpoint table the guest has).
    fn start_stream(&mut self, endpoint: u8, ty: EpType, packets: usize, urbs: usize) -> Status {
        let slot = endpoint_slot(endpoint);
        let known = self.endpoints.ep_type.get(slot).copied();
        if known != Some(ty) {
            tracing::debug!(
                endpoint,
                ?known,
                "stream start for an endpoint of another type"
            );
            return Status::INVAL;
        }
        let streams = if ty == EpType::ISO {
            &mut self.iso
        } else {
            &mut self.interrupt
        };
        if streams.contains_key(&endpoint) {
            return Status::SUCCESS;
        }
        streams.insert(
            endpoint,
            Stream {
                urbs: Vec::new(),
                next_id: 0,
                urb_count: if ty == EpType::ISO {
                    urbs.clamp(1, 32)
                } else {
                    self.options.interrupt_urbs.max(1)
                },
                packets_per_urb: packets.clamp(1, 64),
            },
        );
        if endpoint & 0x80 == 0 {
            return Status::SUCCESS; // OUT: the guest sends the packets
        }
        match self.refill(endpoint, ty) {
            Ok(()) => Status::SUCCESS,
            Err(e) => {
                tracing::warn!(endpoint, error = %e, "stream start failed");
                Status::IOERROR
            }
        }
    }

    /// Keep a receiving stream's URBs queued.
    fn refill(&mut self, endpoint: u8, ty: EpType) -> Result<(), HostError> {
        let slot = endpoint_slot(endpoint);
        let size = usize::from(
            self.endpoints
                .max_packet_size
                .get(slot)
                .copied()
                .unwrap_or(0),
        );
        loop {
            let streams = if ty == EpType::ISO {
                &self.iso
            } else {
                &self.interrupt
            };
            let Some(stream) = streams.get(&endpoint) else {
                return Ok(());
            };
            if stream.urbs.len() >= stream.urb_count {
                return Ok(());
            }
            let packets = stream.packets_per_urb;
            let (kind, len, iso) = if ty == EpType::ISO {
                let iso = IsoRequest {
                    packets: (0..packets)
                        .map(|i| IsoPacket {
                            // Fits: packets_per_urb x the endpoint's packet size is bounded by the stream's limits, far below u32.
                            offset: u32::try_from(i * size).unwrap_or(u32::MAX),
                            length: u32::try_from(size).unwrap_or(u32::MAX),
                        })
                        .collect(),
                    start_frame: None,
                };
                (Kind::IsoIn { endpoint }, size * packets, Some(iso))
            } else {
                (Kind::InterruptIn { endpoint }, size, None)
            };
            let urb = self.submit_data(None, kind, endpoint, len, Bytes::new(), iso)?;
            let streams = if ty == EpType::ISO {
                &mut self.iso
            } else {
                &mut self.interrupt
            };
            if let Some(s) = streams.get_mut(&endpoint) {
                s.urbs.push(urb);
            }
        }
    }

    /// Stop a stream: its URBs are unlinked (they are nobody's request: no answers).
    fn stop_stream(&mut self, endpoint: u8, iso: bool) {
        let stream = if iso {
            self.iso.remove(&endpoint)
        } else {
            self.interrupt.remove(&endpoint)
        };
        for urb in stream.map(|s| s.urbs).unwrap_or_default() {
            if self.port.unlink(UrbId(urb)) {
                self.pending.remove(&urb);
            }
        }
    }

    /// A configuration or alternate-setting change, or a reset, ends every stream.
    fn stop_streams(&mut self) {
        let ints: Vec<u8> = self.interrupt.keys().copied().collect();
        for ep in ints {
            self.stop_stream(ep, false);
        }
        let isos: Vec<u8> = self.iso.keys().copied().collect();
        for ep in isos {
            self.stop_stream(ep, true);
        }
    }

    /// ep_info then interface_info for the device's current configuration.
    fn send_tables<R, W>(&mut self, link: &mut Link<R, W>) -> Result<(), HostError>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let (ep, interfaces) = tables(&self.controller, self.speed);
        link.send(0, &Packet::EpInfo(Box::new(ep.clone())))?;
        link.send(0, &Packet::InterfaceInfo(Box::new(interfaces)))?;
        self.endpoints = ep;
        Ok(())
    }
}

/// The endpoint and interface tables of the device's current configuration and alternate
/// settings at `speed` (endpoint 0 only while unconfigured).
pub(crate) fn tables(controller: &Controller, speed: BusSpeed) -> (EpInfo, InterfaceInfo) {
    controller.with_device(|d| {
        let m = d.model();
        let mut ep = EpInfo::default();
        let mps0 = m.device_descriptor(speed).b_max_packet_size0;
        let mps0 = if speed == BusSpeed::Super {
            1u16 << mps0.min(15)
        } else {
            u16::from(mps0)
        };
        for slot in [endpoint_slot(0x00), endpoint_slot(0x80)] {
            ep.ep_type[slot] = EpType::CONTROL;
            ep.max_packet_size[slot] = mps0;
        }
        let mut info = InterfaceInfo::default();
        let Some(config) = d
            .configuration_value()
            .and_then(|v| m.configuration_index(v))
            .and_then(|i| m.configurations().get(i))
        else {
            return (ep, info);
        };
        for (n, f) in config.interfaces.iter().take(32).enumerate() {
            let Some(iface) = m.interface(*f) else {
                continue;
            };
            let alt = usize::from(d.alternate_setting(*f).unwrap_or(0));
            let Some(a) = iface.alternates.get(alt) else {
                continue;
            };
            info.interface_count += 1;
            info.interface[n] = iface.number;
            (info.class[n], info.subclass[n], info.protocol[n]) = a.class;
            for e in &a.endpoints {
                let slot = endpoint_slot(e.address.0);
                let params = e.at(speed);
                let mult = match speed {
                    BusSpeed::High => 1 + (params.w_max_packet_size >> 11 & 3),
                    _ => 1,
                };
                ep.ep_type[slot] = match e.transfer_type {
                    TransferType::Control => EpType::CONTROL,
                    TransferType::Isochronous => EpType::ISO,
                    TransferType::Bulk => EpType::BULK,
                    TransferType::Interrupt => EpType::INTERRUPT,
                };
                ep.interval[slot] = params.interval;
                ep.interface[slot] = iface.number;
                ep.max_packet_size[slot] = match e.transfer_type {
                    TransferType::Isochronous | TransferType::Interrupt => {
                        if speed == BusSpeed::Super && e.bytes_per_interval > 0 {
                            e.bytes_per_interval
                        } else {
                            params.packet_size() * mult
                        }
                    }
                    _ => params.packet_size(),
                };
            }
        }
        (ep, info)
    })
}

/// Packets the guest may send while no device is connected (after device_disconnect, its
/// last requests may still arrive): requests are answered with an I/O error, the rest
/// ignored.
pub(crate) fn answer_without_device<R, W>(
    link: &mut Link<R, W>,
    m: Message,
) -> Result<(), HostError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let err = Status::IOERROR;
    let reply = match m.packet {
        Packet::Control(p) => Packet::Control(ControlPacket {
            status: err,
            length: 0,
            data: Bytes::new(),
            ..p
        }),
        Packet::Bulk(p) => Packet::Bulk(BulkPacket {
            status: err,
            length: 0,
            data: Bytes::new(),
            ..p
        }),
        Packet::Interrupt(p) => Packet::Interrupt(DataPacket {
            status: err,
            length: 0,
            data: Bytes::new(),
            ..p
        }),
        Packet::SetConfiguration { .. } | Packet::GetConfiguration => Packet::ConfigurationStatus {
            status: err,
            configuration: 0,
        },
        Packet::SetAltSetting { interface, .. } | Packet::GetAltSetting { interface } => {
            Packet::AltSettingStatus {
                status: err,
                interface,
                alt: 255,
            }
        }
        Packet::StartInterruptReceiving { endpoint }
        | Packet::StopInterruptReceiving { endpoint } => Packet::InterruptReceivingStatus {
            status: err,
            endpoint,
        },
        Packet::StartIsoStream { endpoint, .. } | Packet::StopIsoStream { endpoint } => {
            Packet::IsoStreamStatus {
                status: err,
                endpoint,
            }
        }
        Packet::Iso(_)
        | Packet::Reset
        | Packet::CancelDataPacket
        | Packet::FilterFilter { .. }
        | Packet::DeviceDisconnectAck => return Ok(()),
        other => return Err(unexpected(&other)),
    };
    link.send(m.id, &reply)?;
    Ok(())
}

fn unexpected(p: &Packet) -> HostError {
    HostError::Unexpected(format!(
        "packet type {} is not one a usb-guest sends to a usb-host with the agreed capabilities",
        p.packet_type()
    ))
}
