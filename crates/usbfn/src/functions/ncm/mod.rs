//! USB network adapters: CDC-NCM (`ncm`) and CDC-ECM (`ecm`), with the device side chosen by
//! `net=` (`usbfn_net`): an embedded user-space TCP/IP stack (default; no privileges) or a
//! TAP interface.
//!
//! The two-interface CDC shape of the kernel's `f_ncm` / `f_ecm`: a communication interface
//! (class 2, subclass 0x0D NCM or 0x06 ECM) with Header, Union, Ethernet Networking (the
//! host's MAC address as a string) and, for NCM, the NCM functional descriptor, and an
//! interrupt IN endpoint for NETWORK_CONNECTION and CONNECTION_SPEED_CHANGE; a data interface
//! (class 0x0A) whose alternate setting 0 has no endpoints and alternate setting 1 bulk IN
//! and OUT. Both are tied by an IAD. NCM moves frames in NTBs (NTB16, NTB32 on request,
//! [`ntb`]); ECM one frame per transfer.
//!
//! Options (`--function ncm,key=value,...`, the same keys in a device file's `[function]`):
//! `net` (`embedded` or `tap:NAME`), `host_mac` / `dev_mac` (`xx:xx:xx:xx:xx:xx`; default
//! derived from `serial`), `serial`, `address` (192.168.7.1), `prefix` (24), `pool_start`,
//! `pool_end` (192.168.7.2–254), `lease` (seconds), `ntb_in_max`, `ntb_out_max` (NCM: NTB
//! sizes, 2048–65535), `ntb32` (offer NTB32), `qlen` (OUT transfers queued), `in_depth` (IN
//! transfers in flight).

pub mod control;
pub mod ntb;
pub mod service;

use std::net::Ipv4Addr;
use std::time::Duration;

use usbfn_core::BusSpeed;
use usbfn_core::config::{
    AlternateSection, AssociationSection, DeviceSection, EndpointSection, InterfaceSection,
    PerSpeed, TransferTypeName,
};

use super::compose::Fragment;
use super::options::{FunctionOptions, OptionError, flag, number};

pub use service::run;

/// Which CDC networking model.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Model {
    /// CDC-NCM: frames in NTBs.
    Ncm,
    /// CDC-ECM: one frame per transfer.
    Ecm,
}

impl Model {
    /// The name `--function` takes.
    pub fn kind(self) -> &'static str {
        match self {
            Model::Ncm => "ncm",
            Model::Ecm => "ecm",
        }
    }
}

/// The string index of the host MAC address (iMACAddress) of instance 0; instance n uses
/// this + n. Registered by the service with `REGISTER_USB_STRING` before it activates the
/// bus (the core allocates the configuration's own strings from 1 upwards, so a high index
/// never collides with them).
pub const MAC_STRING_INDEX: u8 = 0xd0;
/// Largest NTB either way (NTB16's 16-bit block length).
pub const MAX_NTB: usize = 0xffff;
/// Smallest NTB IN size a host may set (CDC NCM 1.0 §6.2.7).
pub const MIN_NTB_IN: usize = 2048;
/// Maximum Ethernet segment (wMaxSegmentSize).
pub const MAX_SEGMENT: u16 = 1514;

const OPTION_NAMES: &str = "net, host_mac, dev_mac, serial, address, prefix, pool_start, pool_end, lease, ntb_in_max, ntb_out_max, ntb32, qlen, in_depth";

/// Options of `ncm` and `ecm`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// NCM or ECM.
    pub model: Model,
    /// The device side: `usbfn_net::Network::Embedded` or `Tap`.
    pub net: NetChoice,
    /// The host's MAC address (iMACAddress); None: derived from the serial.
    pub host_mac: Option<[u8; 6]>,
    /// The embedded stack's MAC address; None: derived from the serial.
    pub dev_mac: Option<[u8; 6]>,
    /// The device's serial number string.
    pub serial: String,
    /// The embedded stack's address.
    pub address: Ipv4Addr,
    /// Its prefix length.
    pub prefix: u8,
    /// DHCP pool start.
    pub pool_start: Ipv4Addr,
    /// DHCP pool end.
    pub pool_end: Ipv4Addr,
    /// DHCP lease, seconds.
    pub lease: u32,
    /// dwNtbInMaxSize advertised.
    pub ntb_in_max: usize,
    /// dwNtbOutMaxSize advertised (and the size of each OUT transfer).
    pub ntb_out_max: usize,
    /// Offer NTB32 in bmNtbFormatsSupported.
    pub ntb32: bool,
    /// OUT transfers kept queued.
    pub qlen: usize,
    /// IN transfers in flight at most.
    pub in_depth: usize,
}

/// `net=`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetChoice {
    /// The embedded stack.
    Embedded,
    /// A TAP interface.
    Tap(String),
}

impl Options {
    /// The defaults for `model`.
    pub fn new(model: Model) -> Self {
        Options {
            model,
            net: NetChoice::Embedded,
            host_mac: None,
            dev_mac: None,
            serial: format!("usbfn-{}-0001", model.kind()),
            address: Ipv4Addr::new(192, 168, 7, 1),
            prefix: 24,
            pool_start: Ipv4Addr::new(192, 168, 7, 2),
            pool_end: Ipv4Addr::new(192, 168, 7, 254),
            lease: 3600,
            ntb_in_max: 32768,
            ntb_out_max: 32768,
            ntb32: true,
            qlen: 8,
            in_depth: 4,
        }
    }

    /// The host's MAC: set, or `02:` + 5 bytes of a hash of the serial.
    pub fn host_mac(&self) -> [u8; 6] {
        self.host_mac
            .unwrap_or_else(|| derived_mac(&self.serial, 0x02))
    }

    /// The device stack's MAC: set, or `06:` + the same 5 bytes.
    pub fn dev_mac(&self) -> [u8; 6] {
        self.dev_mac
            .unwrap_or_else(|| derived_mac(&self.serial, 0x06))
    }

    /// The network `usbfn_net::start` runs.
    pub fn network(&self) -> usbfn_net::Network {
        match &self.net {
            NetChoice::Tap(name) => usbfn_net::Network::Tap(name.clone()),
            NetChoice::Embedded => usbfn_net::Network::Embedded(usbfn_net::EmbeddedConfig {
                mac: self.dev_mac(),
                address: self.address,
                prefix_len: self.prefix,
                pool_start: self.pool_start,
                pool_end: self.pool_end,
                lease: Duration::from_secs(u64::from(self.lease)),
                ..usbfn_net::EmbeddedConfig::default()
            }),
        }
    }
}

/// A locally administered unicast MAC from FNV-1a of `serial` (stable across builds).
fn derived_mac(serial: &str, first: u8) -> [u8; 6] {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in serial.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let b = h.to_le_bytes();
    [first, b[0], b[1], b[2], b[3], b[4]]
}

fn parse_mac(key: &str, value: &str) -> Result<[u8; 6], OptionError> {
    let bad = || OptionError::Value {
        key: key.to_owned(),
        value: value.to_owned(),
        allowed: "a unicast MAC address xx:xx:xx:xx:xx:xx",
    };
    let parts: Vec<&str> = value.trim().split([':', '-']).collect();
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut mac = [0u8; 6];
    for (m, p) in mac.iter_mut().zip(parts) {
        if p.len() != 2 {
            return Err(bad());
        }
        *m = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    if mac[0] & 1 != 0 || mac == [0; 6] {
        return Err(bad());
    }
    Ok(mac)
}

fn parse_ip(key: &str, value: &str) -> Result<Ipv4Addr, OptionError> {
    value.trim().parse().map_err(|_| OptionError::Value {
        key: key.to_owned(),
        value: value.to_owned(),
        allowed: "an IPv4 address",
    })
}

impl FunctionOptions for Options {
    fn set(&mut self, key: &str, value: &str) -> Result<(), OptionError> {
        let ncm_only = |key: &str| -> Result<(), OptionError> {
            if self.model == Model::Ecm {
                Err(OptionError::Unknown {
                    function: "ecm",
                    key: key.to_owned(),
                    known: "net, host_mac, dev_mac, serial, address, prefix, pool_start, pool_end, lease, qlen, in_depth (ntb_* are ncm's)",
                })
            } else {
                Ok(())
            }
        };
        match key {
            "net" => {
                self.net = match value.trim() {
                    "embedded" => NetChoice::Embedded,
                    v if v.starts_with("tap:") && v.len() > 4 => {
                        NetChoice::Tap(v.trim_start_matches("tap:").to_owned())
                    }
                    _ => {
                        return Err(OptionError::Value {
                            key: key.to_owned(),
                            value: value.to_owned(),
                            allowed: "embedded or tap:NAME",
                        });
                    }
                }
            }
            "host_mac" => self.host_mac = Some(parse_mac(key, value)?),
            "dev_mac" => self.dev_mac = Some(parse_mac(key, value)?),
            "serial" => {
                let v = value.trim();
                if v.is_empty() || v.encode_utf16().count() > 126 {
                    return Err(OptionError::Value {
                        key: key.to_owned(),
                        value: value.to_owned(),
                        allowed: "1 to 126 characters",
                    });
                }
                self.serial = v.to_owned();
            }
            "address" => self.address = parse_ip(key, value)?,
            "pool_start" => self.pool_start = parse_ip(key, value)?,
            "pool_end" => self.pool_end = parse_ip(key, value)?,
            "prefix" => self.prefix = number(key, value, 8, 30, "8..=30")?,
            "lease" => self.lease = number(key, value, 60, 86400 * 7, "60..=604800 seconds")?,
            "ntb_in_max" => {
                ncm_only(key)?;
                self.ntb_in_max = number(key, value, MIN_NTB_IN, MAX_NTB, "2048..=65535")?;
            }
            "ntb_out_max" => {
                ncm_only(key)?;
                self.ntb_out_max = number(key, value, MIN_NTB_IN, MAX_NTB, "2048..=65535")?;
            }
            "ntb32" => {
                ncm_only(key)?;
                self.ntb32 = flag(key, value)?;
            }
            "qlen" => self.qlen = number(key, value, 1, 64, "1..=64")?,
            "in_depth" => self.in_depth = number(key, value, 1, 64, "1..=64")?,
            other => {
                return Err(OptionError::Unknown {
                    function: self.model.kind(),
                    key: other.to_owned(),
                    known: OPTION_NAMES,
                });
            }
        }
        Ok(())
    }
}

/// Bulk IN and OUT, interrupt IN endpoint addresses when the function is alone.
pub const BULK_IN: u8 = 0x81;
/// See [`BULK_IN`].
pub const BULK_OUT: u8 = 0x01;
/// See [`BULK_IN`].
pub const NOTIFY_IN: u8 = 0x82;
/// wMaxPacketSize of the notification endpoint (a CONNECTION_SPEED_CHANGE in one packet).
pub const NOTIFY_MAX_PACKET: u16 = 16;

use usbfn_core::config::to_hex as hex;

/// bmNetworkCapabilities of the NCM functional descriptor: packet filter, net address,
/// max datagram size, 8-byte NTB input size.
pub const NETWORK_CAPABILITIES: u8 = 0x01 | 0x02 | 0x08 | 0x20;

/// The CDC functional descriptors of the communication interface (interfaces `control` and
/// `data`, the MAC string at `mac_index`).
pub fn functional_descriptors(model: Model, control: u8, data: u8, mac_index: u8) -> Vec<u8> {
    let mut d = vec![0x05, 0x24, 0x00, 0x10, 0x01]; // Header, bcdCDC 1.10
    d.extend_from_slice(&[0x05, 0x24, 0x06, control, data]); // Union
    let seg = MAX_SEGMENT.to_le_bytes();
    // Ethernet Networking: iMACAddress, bmEthernetStatistics 0, wMaxSegmentSize,
    // wNumberMCFilters 0, bNumberPowerFilters 0.
    d.extend_from_slice(&[
        0x0d, 0x24, 0x0f, mac_index, 0, 0, 0, 0, seg[0], seg[1], 0, 0, 0,
    ]);
    if model == Model::Ncm {
        d.extend_from_slice(&[0x06, 0x24, 0x1a, 0x00, 0x01, NETWORK_CAPABILITIES]);
    }
    d
}

/// The interface names of instance `instance`: (control, data).
pub fn interface_names(model: Model, instance: usize) -> (String, String) {
    let k = model.kind();
    (
        format!("{k}{instance}.control"),
        format!("{k}{instance}.data"),
    )
}

/// What one `ncm`/`ecm` instance adds to a device. Alone, the control and data interfaces
/// are numbers 0 and 1 (the Union names them).
pub fn fragment(options: &Options, instance: usize) -> Fragment {
    let model = options.model;
    let (control_name, data_name) = interface_names(model, instance);
    let endpoint =
        |address: u8, transfer_type| EndpointSection::new(Some(address), None, transfer_type);
    let notify = EndpointSection {
        max_packet: Some(PerSpeed::All(NOTIFY_MAX_PACKET)),
        // 32 ms, as f_ncm's LOG2_STATUS_INTERVAL_MSEC.
        interval: Some(PerSpeed::Each {
            full: Some(32),
            high: Some(9),
            super_: Some(9),
        }),
        ..endpoint(NOTIFY_IN, TransferTypeName::Interrupt)
    };
    // Instances beyond 255 share the last string index (saturating_add): a composite that large is refused by the model anyway (255 interfaces).
    let mac_index = MAC_STRING_INDEX.saturating_add(u8::try_from(instance).unwrap_or(u8::MAX));
    let (subclass, data_protocol, product_id, product) = match model {
        Model::Ncm => (0x0d, 0x01, 0xa4a1, "usbfn NCM network adapter"),
        Model::Ecm => (0x06, 0x00, 0xa4a2, "usbfn ECM network adapter"),
    };
    let control = InterfaceSection {
        name: control_name.clone(),
        guid: None,
        number: Some(0),
        device_request_owner: false,
        compatible_id: None,
        class: Some(0x02),
        subclass: Some(subclass),
        protocol: Some(0),
        string: Some(format!("{} control", model.kind().to_uppercase())),
        class_descriptors: Some(hex(&functional_descriptors(model, 0, 1, mac_index))),
        endpoints: vec![notify],
        descriptor: None,
        alternates: Vec::new(),
    };
    let data = InterfaceSection {
        name: data_name.clone(),
        guid: None,
        number: Some(1),
        device_request_owner: false,
        compatible_id: None,
        class: Some(0x0a),
        subclass: Some(0),
        protocol: Some(data_protocol),
        string: None,
        class_descriptors: None,
        endpoints: Vec::new(),
        descriptor: None,
        alternates: vec![AlternateSection {
            class: Some(0x0a),
            subclass: Some(0),
            protocol: Some(data_protocol),
            string: None,
            class_descriptors: None,
            endpoints: vec![
                endpoint(BULK_IN, TransferTypeName::Bulk),
                endpoint(BULK_OUT, TransferTypeName::Bulk),
            ],
            descriptor: None,
        }],
    };
    Fragment {
        device: DeviceSection {
            vendor_id: 0x0525,
            product_id,
            bcd_device: 0x0100,
            class: 0xef,
            subclass: 0x02,
            protocol: 0x01,
            manufacturer: Some("usbfn".into()),
            product: Some(product.into()),
            serial: Some(options.serial.clone()),
            self_powered: true,
            max_power_ma: 100,
            remote_wakeup: false,
            bcd_usb: None,
            max_packet_size0: 64,
            max_speed: BusSpeed::Super,
            lpm: false,
            ms_os_vendor_code: None,
            language_id: 0x0409,
        },
        interfaces: vec![control, data],
        associations: vec![AssociationSection {
            interfaces: vec![control_name, data_name],
            class: 0x02,
            subclass,
            protocol: 0,
            string: None,
        }],
    }
}

/// `usbfn_net` could not start: a start error of the function.
impl From<usbfn_net::NetError> for super::StartError {
    fn from(e: usbfn_net::NetError) -> Self {
        super::StartError::Invalid(e.to_string())
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)]
mod tests;
