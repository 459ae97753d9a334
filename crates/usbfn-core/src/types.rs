//! Identifiers and messages exchanged between the core, its bus and its services.

use bytes::Bytes;

use crate::status::CompletionStatus;

/// A host URB, named by the bus (USB/IP uses its seqnum).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UrbId(pub u64);

/// A service transfer, named by the service runtime.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransferId(pub u64);

/// A GenericUSBFn pipe number: pipe 0 is the default control pipe (EP0), data pipes follow in
/// configuration order.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[doc(alias = "USBFNPIPEID")]
pub struct PipeId(pub u32);

impl PipeId {
    /// The default control pipe.
    pub const CONTROL: PipeId = PipeId(0);
}

/// An opened GenericUSBFn interface: the index of an interface in the configuration.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FunctionId(pub usize);

/// The speed a host connected at.
#[derive(
    Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum BusSpeed {
    /// USB 1.1 full speed, 12 Mbit/s.
    Full,
    /// USB 2.0 high speed, 480 Mbit/s.
    High,
    /// USB 3.x SuperSpeed, 5 Gbit/s.
    Super,
}

impl BusSpeed {
    /// The GenericUSBFn `USBFN_BUS_SPEED` value.
    pub fn to_abi(self) -> usbfn_abi::BusSpeed {
        match self {
            BusSpeed::Full => usbfn_abi::BusSpeed::FULL,
            BusSpeed::High => usbfn_abi::BusSpeed::HIGH,
            BusSpeed::Super => usbfn_abi::BusSpeed::SUPER,
        }
    }

    /// The speed a `USBFN_BUS_SPEED` value names; `None` for low speed, `UsbfnBusSpeedMaximum`
    /// and values the ABI does not define.
    pub fn from_abi(speed: usbfn_abi::BusSpeed) -> Option<BusSpeed> {
        match speed {
            usbfn_abi::BusSpeed::FULL => Some(BusSpeed::Full),
            usbfn_abi::BusSpeed::HIGH => Some(BusSpeed::High),
            usbfn_abi::BusSpeed::SUPER => Some(BusSpeed::Super),
            _ => None,
        }
    }

    /// Index into per-speed tables: full 0, high 1, super 2.
    pub(crate) fn index(self) -> usize {
        match self {
            BusSpeed::Full => 0,
            BusSpeed::High => 1,
            BusSpeed::Super => 2,
        }
    }

    /// All speeds, slowest first.
    pub const ALL: [BusSpeed; 3] = [BusSpeed::Full, BusSpeed::High, BusSpeed::Super];
}

impl std::fmt::Display for BusSpeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BusSpeed::Full => "full",
            BusSpeed::High => "high",
            BusSpeed::Super => "super",
        })
    }
}

/// What the host asked of an endpoint: one URB as a bus delivers it.
#[derive(Clone, Debug)]
pub struct Urb {
    /// The bus's name for this URB, echoed in its completion.
    pub id: UrbId,
    /// Endpoint number, 0..=15.
    pub endpoint: u8,
    /// Transfer direction (for endpoint 0, the setup packet decides).
    pub direction: usbfn_wire::Direction,
    /// The setup packet of a control URB (endpoint 0 only).
    pub setup: Option<usbfn_wire::SetupPacket>,
    /// IN: the host buffer's size. OUT: ignored (the data's length is used).
    pub buffer_len: usize,
    /// OUT data.
    pub data: Bytes,
    /// `URB_SHORT_NOT_OK`: a short IN transfer is an error (-EREMOTEIO).
    pub short_not_ok: bool,
    /// `URB_ZERO_PACKET`: an OUT transfer whose length is a multiple of the packet size ends
    /// with a zero-length packet.
    pub zero_packet: bool,
    /// The packets of an isochronous URB (`None` for other transfer types).
    pub iso: Option<IsoRequest>,
}

impl Urb {
    /// A control URB on endpoint 0: `setup`, and for a host-to-device data stage `data`
    /// (an IN data stage gets a buffer of `wLength`).
    pub fn control(id: UrbId, setup: usbfn_wire::SetupPacket, data: Bytes) -> Urb {
        Urb {
            id,
            endpoint: 0,
            direction: setup.direction(),
            setup: Some(setup),
            buffer_len: usize::from(setup.w_length),
            data,
            short_not_ok: false,
            zero_packet: false,
            iso: None,
        }
    }

    /// A bulk or interrupt IN URB with a buffer of `buffer_len` bytes.
    pub fn bulk_in(id: UrbId, endpoint: u8, buffer_len: usize) -> Urb {
        Urb {
            id,
            endpoint,
            direction: usbfn_wire::Direction::In,
            setup: None,
            buffer_len,
            data: Bytes::new(),
            short_not_ok: false,
            zero_packet: false,
            iso: None,
        }
    }

    /// A bulk or interrupt OUT URB carrying `data`.
    pub fn bulk_out(id: UrbId, endpoint: u8, data: Bytes) -> Urb {
        Urb {
            id,
            endpoint,
            direction: usbfn_wire::Direction::Out,
            setup: None,
            buffer_len: data.len(),
            data,
            short_not_ok: false,
            zero_packet: false,
            iso: None,
        }
    }

    /// An isochronous URB: one packet per `lengths` entry, laid out back to back (OUT
    /// `data` holds them; an IN buffer is their sum), started as soon as possible.
    pub fn iso(
        id: UrbId,
        endpoint: u8,
        direction: usbfn_wire::Direction,
        lengths: &[u32],
        data: Bytes,
    ) -> Urb {
        let mut offset = 0u32;
        let packets = lengths
            .iter()
            .map(|&length| {
                let p = IsoPacket { offset, length };
                offset = offset.saturating_add(length);
                p
            })
            .collect();
        Urb {
            id,
            endpoint,
            direction,
            setup: None,
            // Fits: u32 into usize on every target usbfn builds for.
            buffer_len: usize::try_from(offset).unwrap_or(usize::MAX),
            data,
            short_not_ok: false,
            zero_packet: false,
            iso: Some(IsoRequest {
                packets,
                start_frame: None,
            }),
        }
    }
}

/// The packets of an isochronous URB and where it starts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IsoRequest {
    /// One entry per (micro)frame slot of the endpoint's interval, in order.
    pub packets: Vec<IsoPacket>,
    /// `None`: as soon as possible (`URB_ISO_ASAP`). `Some(n)`: the host's frame number to
    /// start in (frames at full speed, microframes at high and SuperSpeed, modulo
    /// [`crate::FRAME_NUMBER_MODULUS`]).
    pub start_frame: Option<u32>,
}

/// One packet of an isochronous URB as the host describes it.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
#[doc(alias = "usb_iso_packet_descriptor")]
pub struct IsoPacket {
    /// Where the packet's bytes are in the URB's buffer.
    pub offset: u32,
    /// The packet's length: OUT, the bytes to send; IN, the most the host takes.
    pub length: u32,
}

/// How one isochronous packet went.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct IsoPacketResult {
    /// The packet as submitted.
    pub packet: IsoPacket,
    /// Bytes moved in this packet.
    pub actual_length: u32,
    /// The packet's own outcome (the URB's status stays `Success` when packets fail).
    pub status: CompletionStatus,
}

/// The isochronous part of a URB completion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IsoCompletion {
    /// The host frame number of the URB's first packet (same units as
    /// [`IsoRequest::start_frame`]).
    pub start_frame: u32,
    /// One result per submitted packet, in order.
    pub packets: Vec<IsoPacketResult>,
}

impl IsoCompletion {
    /// Packets whose status is not `Success`.
    pub fn error_count(&self) -> usize {
        self.packets
            .iter()
            .filter(|p| !p.status.is_success())
            .count()
    }
}

/// How a host URB ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrbCompletion {
    /// The URB.
    pub id: UrbId,
    /// Its outcome.
    pub status: CompletionStatus,
    /// Bytes moved: IN bytes delivered to the host, OUT bytes taken by the device.
    pub actual_length: usize,
    /// IN data (empty for OUT). For an isochronous URB the packets' bytes are packed back to
    /// back, without gaps.
    pub data: Bytes,
    /// Per-packet results of an isochronous URB: present exactly when the URB had
    /// [`Urb::iso`], with one result per packet.
    pub iso: Option<IsoCompletion>,
}

/// A service's request on a pipe.
#[derive(Clone, Debug)]
pub enum TransferRequest {
    /// `TRANSFER_IN` or `TRANSFER_IN_APPEND_ZERO_PKT`: send `data` to the host.
    In {
        /// The data.
        data: Bytes,
        /// End a transfer whose length is a multiple of wMaxPacketSize with a zero-length packet.
        append_zero_packet: bool,
    },
    /// `TRANSFER_OUT`: receive up to `capacity` bytes from the host.
    Out {
        /// The buffer size.
        capacity: usize,
    },
}

/// How a service transfer ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferCompletion {
    /// The transfer.
    pub id: TransferId,
    /// Its outcome.
    pub status: CompletionStatus,
    /// Bytes moved (IN: sent to the host; OUT: received).
    pub bytes_transferred: usize,
    /// OUT data received (empty for IN).
    pub data: Bytes,
}
