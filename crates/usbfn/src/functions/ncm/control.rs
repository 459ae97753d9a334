//! The class requests to the communication interface (CDC 1.2 ECM §6.2, NCM 1.0 §6.2) and
//! the state they set, as a decision with no I/O: [`Link::decide`] says what to answer.

use super::ntb::{InLayout, NtbFormat};
use super::{MAX_NTB, MAX_SEGMENT, MIN_NTB_IN, Model, Options};

/// CDC class request codes (bRequest).
pub mod request {
    /// SEND_ENCAPSULATED_COMMAND.
    pub const SEND_ENCAPSULATED_COMMAND: u8 = 0x00;
    /// GET_ENCAPSULATED_RESPONSE.
    pub const GET_ENCAPSULATED_RESPONSE: u8 = 0x01;
    /// SET_ETHERNET_MULTICAST_FILTERS.
    pub const SET_ETHERNET_MULTICAST_FILTERS: u8 = 0x40;
    /// SET_ETHERNET_POWER_MANAGEMENT_PATTERN_FILTER.
    pub const SET_ETHERNET_PM_PATTERN_FILTER: u8 = 0x41;
    /// GET_ETHERNET_POWER_MANAGEMENT_PATTERN_FILTER.
    pub const GET_ETHERNET_PM_PATTERN_FILTER: u8 = 0x42;
    /// SET_ETHERNET_PACKET_FILTER.
    pub const SET_ETHERNET_PACKET_FILTER: u8 = 0x43;
    /// GET_ETHERNET_STATISTIC.
    pub const GET_ETHERNET_STATISTIC: u8 = 0x44;
    /// GET_NTB_PARAMETERS.
    pub const GET_NTB_PARAMETERS: u8 = 0x80;
    /// GET_NET_ADDRESS.
    pub const GET_NET_ADDRESS: u8 = 0x81;
    /// SET_NET_ADDRESS.
    pub const SET_NET_ADDRESS: u8 = 0x82;
    /// GET_NTB_FORMAT.
    pub const GET_NTB_FORMAT: u8 = 0x83;
    /// SET_NTB_FORMAT.
    pub const SET_NTB_FORMAT: u8 = 0x84;
    /// GET_NTB_INPUT_SIZE.
    pub const GET_NTB_INPUT_SIZE: u8 = 0x85;
    /// SET_NTB_INPUT_SIZE.
    pub const SET_NTB_INPUT_SIZE: u8 = 0x86;
    /// GET_MAX_DATAGRAM_SIZE.
    pub const GET_MAX_DATAGRAM_SIZE: u8 = 0x87;
    /// SET_MAX_DATAGRAM_SIZE.
    pub const SET_MAX_DATAGRAM_SIZE: u8 = 0x88;
    /// GET_CRC_MODE.
    pub const GET_CRC_MODE: u8 = 0x89;
    /// SET_CRC_MODE.
    pub const SET_CRC_MODE: u8 = 0x8a;
}

/// Largest multicast filter list read (SET_ETHERNET_MULTICAST_FILTERS data stage).
pub const MAX_FILTER_BYTES: usize = 6 * 64;

/// The link's negotiated state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// NCM or ECM.
    pub model: Model,
    /// NTB format selected.
    pub format: NtbFormat,
    /// NTB IN size the host accepts.
    pub ntb_in_size: usize,
    /// Datagrams per IN NTB at most (0: any).
    pub ntb_in_datagrams: usize,
    /// Max datagram size set by the host.
    pub max_datagram: usize,
    /// SET_ETHERNET_PACKET_FILTER bits.
    pub packet_filter: u16,
    /// The host's MAC (GET/SET_NET_ADDRESS).
    pub host_mac: [u8; 6],
    advertised_in: usize,
    out_max: usize,
    ntb32: bool,
}

/// What to do with a setup packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Send these bytes (IN data stage; cut to wLength by the caller), then the handshake.
    Data(Vec<u8>),
    /// Read the OUT data stage (wLength bytes), give it to [`Link::apply`], then handshake.
    Read,
    /// No data stage: the handshake alone.
    Ack,
    /// STALL.
    Stall,
}

impl Link {
    /// The state after configuration (and after every data-interface alternate setting 0,
    /// CDC NCM §7.2: the NTB parameters go back to their defaults).
    pub fn new(options: &Options) -> Self {
        Link {
            model: options.model,
            format: NtbFormat::Ntb16,
            ntb_in_size: options.ntb_in_max,
            ntb_in_datagrams: 0,
            max_datagram: usize::from(MAX_SEGMENT),
            packet_filter: 0x000c, // directed + broadcast, until the host sets it
            host_mac: options.host_mac(),
            advertised_in: options.ntb_in_max,
            out_max: options.ntb_out_max,
            ntb32: options.ntb32,
        }
    }

    /// Back to the defaults (the host selected data alternate setting 0).
    pub fn reset_ntb(&mut self) {
        self.format = NtbFormat::Ntb16;
        self.ntb_in_size = self.advertised_in;
        self.ntb_in_datagrams = 0;
    }

    /// The IN layout the builder uses.
    pub fn in_layout(&self) -> InLayout {
        InLayout {
            format: self.format,
            max_size: self.ntb_in_size,
            divisor: 4,
            ndp_alignment: 4,
            max_datagrams: self.ntb_in_datagrams,
        }
    }

    /// The NTB OUT size (each OUT transfer's capacity).
    pub fn out_max(&self) -> usize {
        self.out_max
    }

    /// The 28-byte NTB parameter structure (NCM 1.0 table 6-3).
    pub fn ntb_parameters(&self) -> Vec<u8> {
        let mut p = Vec::with_capacity(28);
        let u16le = |v: usize| u16::try_from(v).unwrap_or(u16::MAX).to_le_bytes();
        // Fits: the fields are the configured NTB sizes and alignments, at most MAX_NTB (0xffff).
        let u32le = |v: usize| u32::try_from(v).unwrap_or(u32::MAX).to_le_bytes();
        p.extend_from_slice(&u16le(28));
        p.extend_from_slice(&u16le(if self.ntb32 { 0x03 } else { 0x01 }));
        p.extend_from_slice(&u32le(self.advertised_in));
        p.extend_from_slice(&u16le(4)); // wNdpInDivisor
        p.extend_from_slice(&u16le(0)); // wNdpInPayloadRemainder
        p.extend_from_slice(&u16le(4)); // wNdpInAlignment
        p.extend_from_slice(&u16le(0)); // reserved
        p.extend_from_slice(&u32le(self.out_max));
        p.extend_from_slice(&u16le(4)); // wNdpOutDivisor
        p.extend_from_slice(&u16le(0)); // wNdpOutPayloadRemainder
        p.extend_from_slice(&u16le(4)); // wNdpOutAlignment
        p.extend_from_slice(&u16le(0)); // wNtbOutMaxDatagrams: no limit
        p
    }

    /// Decide how to answer a class request `b_request` with `w_value`, `w_length`, in
    /// direction IN (`device_to_host`).
    pub fn decide(
        &mut self,
        b_request: u8,
        w_value: u16,
        w_length: u16,
        device_to_host: bool,
    ) -> Answer {
        use request::*;
        let ncm = self.model == Model::Ncm;
        match (b_request, device_to_host) {
            (SET_ETHERNET_PACKET_FILTER, false) if w_length == 0 => {
                self.packet_filter = w_value;
                Answer::Ack
            }
            (SET_ETHERNET_MULTICAST_FILTERS, false) => {
                if usize::from(w_length) > MAX_FILTER_BYTES || !w_length.is_multiple_of(6) {
                    Answer::Stall
                } else if w_length == 0 {
                    Answer::Ack
                } else {
                    Answer::Read
                }
            }
            (GET_NTB_PARAMETERS, true) if ncm => Answer::Data(self.ntb_parameters()),
            (GET_NET_ADDRESS, true) if ncm => Answer::Data(self.host_mac.to_vec()),
            (SET_NET_ADDRESS, false) if ncm && w_length == 6 => Answer::Read,
            (GET_NTB_FORMAT, true) if ncm => Answer::Data(match self.format {
                NtbFormat::Ntb16 => vec![0, 0],
                NtbFormat::Ntb32 => vec![1, 0],
            }),
            (SET_NTB_FORMAT, false) if ncm && w_length == 0 => match w_value {
                0 => {
                    self.format = NtbFormat::Ntb16;
                    Answer::Ack
                }
                1 if self.ntb32 => {
                    self.format = NtbFormat::Ntb32;
                    Answer::Ack
                }
                _ => Answer::Stall,
            },
            (GET_NTB_INPUT_SIZE, true) if ncm => {
                let mut v = u32::try_from(self.ntb_in_size)
                    // Fits: ntb_in_size is at most MAX_NTB (0xffff).
                    .unwrap_or(u32::MAX)
                    .to_le_bytes()
                    .to_vec();
                if w_length >= 8 {
                    v.extend_from_slice(
                        &u16::try_from(self.ntb_in_datagrams)
                            .unwrap_or(0)
                            .to_le_bytes(),
                    );
                    v.extend_from_slice(&[0, 0]);
                }
                Answer::Data(v)
            }
            (SET_NTB_INPUT_SIZE, false) if ncm && (w_length == 4 || w_length == 8) => Answer::Read,
            (GET_MAX_DATAGRAM_SIZE, true) if ncm => Answer::Data(
                u16::try_from(self.max_datagram)
                    .unwrap_or(MAX_SEGMENT)
                    .to_le_bytes()
                    .to_vec(),
            ),
            (SET_MAX_DATAGRAM_SIZE, false) if ncm && w_length == 2 => Answer::Read,
            (GET_CRC_MODE, true) if ncm => Answer::Data(vec![0, 0]),
            (SET_CRC_MODE, false) if ncm && w_length == 0 && w_value == 0 => Answer::Ack,
            _ => Answer::Stall,
        }
    }

    /// Apply an OUT data stage that [`Link::decide`] asked for; false: refuse (STALL).
    pub fn apply(&mut self, b_request: u8, data: &[u8]) -> bool {
        use request::*;
        match b_request {
            SET_ETHERNET_MULTICAST_FILTERS => true,
            SET_NET_ADDRESS => match <[u8; 6]>::try_from(data) {
                Ok(mac) if mac[0] & 1 == 0 => {
                    self.host_mac = mac;
                    true
                }
                _ => false,
            },
            SET_NTB_INPUT_SIZE => {
                let Some(size) = data.get(..4).and_then(|b| <[u8; 4]>::try_from(b).ok()) else {
                    return false;
                };
                // Fits: a u32 into usize on every target usbfn builds for; the range check follows.
                let size = usize::try_from(u32::from_le_bytes(size)).unwrap_or(usize::MAX);
                if !(MIN_NTB_IN..=self.advertised_in.clamp(MIN_NTB_IN, MAX_NTB)).contains(&size) {
                    return false;
                }
                self.ntb_in_size = size;
                self.ntb_in_datagrams = match data.get(4..6) {
                    Some(d) => usize::from(u16::from_le_bytes([d[0], d[1]])),
                    None => 0,
                };
                true
            }
            SET_MAX_DATAGRAM_SIZE => match data {
                [lo, hi] => {
                    let size = usize::from(u16::from_le_bytes([*lo, *hi]));
                    if (usbfn_net::MIN_FRAME..=usize::from(MAX_SEGMENT)).contains(&size) {
                        self.max_datagram = size;
                        true
                    } else {
                        false
                    }
                }
                _ => false,
            },
            _ => false,
        }
    }
}
