//! Endpoint validation: packet sizes and intervals per speed and transfer type.

use usbfn_wire::{EndpointAddress, TransferType};

use super::build::{err, illegal};
use super::{EndpointModel, Problem, SpeedParams, ValidationError};
use crate::config::{DirectionName, EndpointSection, PerSpeed, TransferTypeName};
use crate::types::{BusSpeed, PipeId};

pub(crate) fn endpoint_for_registry(
    field: &str,
    ep: &EndpointSection,
) -> Result<EndpointModel, ValidationError> {
    endpoint(field, ep)
}

pub(super) fn endpoint(
    field: &str,
    ep: &EndpointSection,
) -> Result<EndpointModel, ValidationError> {
    let address = match (ep.address, ep.direction) {
        (Some(a), dir) => {
            let addr = EndpointAddress(a);
            if a & 0x70 != 0 || addr.number() == 0 {
                return Err(illegal(
                    format!("{field}.address"),
                    format!("{a:#04x}"),
                    "0x01..=0x0f (OUT) or 0x81..=0x8f (IN)",
                ));
            }
            if let Some(d) = dir
                && (d == DirectionName::In) != addr.is_in()
            {
                let (name, bit) = match d {
                    DirectionName::In => ("in", "clear: OUT"),
                    DirectionName::Out => ("out", "set: IN"),
                };
                return Err(illegal(
                    format!("{field}.direction"),
                    format!("\"{name}\" with address = {a:#04x} (bit 7 {bit})"),
                    "the direction of bit 7 of `address` (0x80 = IN: 0x81..=0x8f; OUT: 0x01..=0x0f); fix the address or leave `direction` out, the address already says it",
                ));
            }
            addr
        }
        (None, Some(DirectionName::In)) => EndpointAddress(0x80),
        (None, Some(DirectionName::Out)) => EndpointAddress(0x00),
        (None, None) => {
            return Err(err(
                field.to_owned(),
                Problem::Missing("`address` or `direction`"),
            ));
        }
    };
    let transfer_type = match ep.transfer_type {
        TransferTypeName::Bulk => TransferType::Bulk,
        TransferTypeName::Interrupt => TransferType::Interrupt,
        TransferTypeName::Isochronous => TransferType::Isochronous,
    };
    if ep.iso_attributes & !0x3c != 0
        || (ep.iso_attributes != 0 && transfer_type != TransferType::Isochronous)
    {
        return Err(illegal(
            format!("{field}.iso_attributes"),
            format!("{:#04x}", ep.iso_attributes),
            "bits 2..5, isochronous endpoints only",
        ));
    }
    if ep.max_burst > 15 {
        return Err(illegal(
            format!("{field}.max_burst"),
            ep.max_burst,
            "0..=15",
        ));
    }
    match transfer_type {
        TransferType::Bulk if ep.ss_attributes > 16 => {
            return Err(illegal(
                format!("{field}.ss_attributes"),
                ep.ss_attributes,
                "MaxStreams 0..=16 for bulk",
            ));
        }
        TransferType::Isochronous if ep.ss_attributes > 2 => {
            return Err(illegal(
                format!("{field}.ss_attributes"),
                ep.ss_attributes,
                "Mult 0..=2 for isochronous",
            ));
        }
        TransferType::Interrupt if ep.ss_attributes != 0 => {
            return Err(illegal(
                format!("{field}.ss_attributes"),
                ep.ss_attributes,
                "0 for interrupt",
            ));
        }
        _ => {}
    }
    let mut per_speed = [SpeedParams {
        w_max_packet_size: 0,
        interval: 0,
    }; 3];
    for speed in BusSpeed::ALL {
        let mps = ep
            .max_packet
            .and_then(|m| m.get(speed))
            .unwrap_or_else(|| default_max_packet(transfer_type, speed));
        check_max_packet(
            &format!("{field}.max_packet ({speed})"),
            transfer_type,
            speed,
            mps,
        )?;
        let interval = ep
            .interval
            .and_then(|i: PerSpeed<u8>| i.get(speed))
            .unwrap_or_else(|| default_interval(transfer_type, speed));
        check_interval(
            &format!("{field}.interval ({speed})"),
            transfer_type,
            speed,
            interval,
        )?;
        per_speed[speed.index()] = SpeedParams {
            w_max_packet_size: mps,
            interval,
        };
    }
    let ss = per_speed[BusSpeed::Super.index()];
    let mult = if transfer_type == TransferType::Isochronous {
        u16::from(ep.ss_attributes & 3) + 1
    } else {
        1
    };
    let bytes_per_interval = match ep.bytes_per_interval {
        Some(b) => b,
        None if transfer_type == TransferType::Bulk => 0,
        None => ss
            .packet_size()
            .saturating_mul(u16::from(ep.max_burst) + 1)
            .saturating_mul(mult),
    };
    let class_descriptors = match &ep.class_descriptors {
        Some(hex) => {
            let bytes = parse_hex(hex)
                .map_err(|m| err(format!("{field}.class_descriptors"), Problem::Malformed(m)))?;
            check_descriptor_chain(&bytes)
                .map_err(|m| err(format!("{field}.class_descriptors"), Problem::Malformed(m)))?;
            bytes
        }
        None => Vec::new(),
    };
    Ok(EndpointModel {
        address,
        transfer_type,
        iso_attributes: ep.iso_attributes,
        per_speed,
        max_burst: ep.max_burst,
        ss_attributes: ep.ss_attributes,
        bytes_per_interval,
        class_descriptors,
        pipe: PipeId(0),
    })
}

/// The largest legal packet size of a transfer type at a speed.
pub fn default_max_packet(t: TransferType, speed: BusSpeed) -> u16 {
    match (t, speed) {
        (TransferType::Bulk, BusSpeed::Full) => 64,
        (TransferType::Bulk, BusSpeed::High) => 512,
        (TransferType::Bulk, BusSpeed::Super) => 1024,
        (TransferType::Interrupt, BusSpeed::Full) => 64,
        (TransferType::Isochronous, BusSpeed::Full) => 1023,
        (TransferType::Control, BusSpeed::Super) => 512,
        (TransferType::Control, _) => 64,
        (_, _) => 1024,
    }
}

fn default_interval(t: TransferType, speed: BusSpeed) -> u8 {
    match (t, speed) {
        (TransferType::Bulk | TransferType::Control, _) => 0,
        (TransferType::Interrupt, BusSpeed::Full) => 1,
        (TransferType::Interrupt, _) => 4,
        (TransferType::Isochronous, _) => 1,
    }
}

fn check_max_packet(
    field: &str,
    t: TransferType,
    speed: BusSpeed,
    mps: u16,
) -> Result<(), ValidationError> {
    let size = mps & 0x7ff;
    let mult = (mps >> 11) & 3;
    let high_bits_ok = mps >> 13 == 0;
    let ok = match (t, speed) {
        (TransferType::Bulk, BusSpeed::Full) => [8, 16, 32, 64].contains(&mps),
        (TransferType::Bulk, BusSpeed::High) => mps == 512,
        (TransferType::Bulk, BusSpeed::Super) => mps == 1024,
        (TransferType::Interrupt, BusSpeed::Full) => (1..=64).contains(&mps),
        (TransferType::Isochronous, BusSpeed::Full) => mps <= 1023,
        (TransferType::Interrupt, BusSpeed::High) => {
            high_bits_ok && (1..=1024).contains(&size) && mult <= 2
        }
        (TransferType::Isochronous, BusSpeed::High) => high_bits_ok && size <= 1024 && mult <= 2,
        (TransferType::Interrupt, BusSpeed::Super) => (1..=1024).contains(&mps),
        (TransferType::Isochronous, BusSpeed::Super) => mps <= 1024,
        (TransferType::Control, _) => false,
    };
    if ok {
        return Ok(());
    }
    let allowed = match (t, speed) {
        (TransferType::Bulk, BusSpeed::Full) => {
            "8, 16, 32 or 64 for bulk at full speed; give one value per speed with max_packet = { full = 64, high = 512, super = 1024 }, or leave max_packet out for those"
        }
        (TransferType::Bulk, BusSpeed::High) => {
            "512 for bulk at high speed; give one value per speed with max_packet = { full = 64, high = 512, super = 1024 }, or leave max_packet out for those"
        }
        (TransferType::Bulk, BusSpeed::Super) => {
            "1024 for bulk at SuperSpeed; give one value per speed with max_packet = { full = 64, high = 512, super = 1024 }, or leave max_packet out for those"
        }
        (TransferType::Interrupt, BusSpeed::Full) => {
            "1..=64 for interrupt at full speed; give one value per speed with max_packet = { full = 64, high = 1024 }"
        }
        (TransferType::Isochronous, BusSpeed::Full) => {
            "0..=1023 for isochronous at full speed; give one value per speed with max_packet = { full = 1023, high = 1024 }"
        }
        (_, BusSpeed::High) => {
            "1..=1024 bytes (0 allowed for isochronous), with at most 2 additional transactions in bits 12..11"
        }
        (_, BusSpeed::Super) => "1..=1024 (0 allowed for isochronous) at SuperSpeed",
        (TransferType::Control, _) => "not a data endpoint type",
    };
    Err(illegal(field, mps, allowed))
}

fn check_interval(
    field: &str,
    t: TransferType,
    speed: BusSpeed,
    interval: u8,
) -> Result<(), ValidationError> {
    let (ok, allowed) = match (t, speed) {
        (TransferType::Bulk, BusSpeed::High) => (true, ""),
        (TransferType::Bulk, _) => (interval == 0, "0 for bulk at full speed and SuperSpeed"),
        (TransferType::Interrupt, BusSpeed::Full) => (interval >= 1, "1..=255 frames"),
        (TransferType::Interrupt | TransferType::Isochronous, _) => (
            (1..=16).contains(&interval),
            "1..=16 (2^(n-1) (micro)frames)",
        ),
        (TransferType::Control, _) => (interval == 0, "0"),
    };
    if ok {
        Ok(())
    } else {
        Err(illegal(field, interval, allowed))
    }
}

/// Parse hex bytes, ignoring whitespace, `:`, `,` and `0x` prefixes.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for token in text.split(|c: char| c.is_whitespace() || c == ',' || c == ':') {
        let token = token
            .strip_prefix("0x")
            .or_else(|| token.strip_prefix("0X"))
            .unwrap_or(token);
        if token.len() % 2 != 0 {
            return Err(format!("hex token {token:?} has an odd number of digits"));
        }
        for pair in token.as_bytes().chunks(2) {
            let s = std::str::from_utf8(pair)
                .map_err(|_| format!("non-ASCII in hex token {token:?}"))?;
            out.push(u8::from_str_radix(s, 16).map_err(|_| format!("{s:?} is not a hex byte"))?);
        }
        if out.len() > 65_535 {
            return Err("more than 65535 bytes".to_owned());
        }
    }
    Ok(out)
}

/// Check that bytes are a well-formed chain of descriptors that may stand in an interface's
/// descriptor set.
pub(crate) fn check_descriptor_chain(bytes: &[u8]) -> Result<(), String> {
    for d in usbfn_wire::descriptors(bytes) {
        let d = d.map_err(|e| e.to_string())?;
        check_not_top_level(d.descriptor_type)?;
    }
    Ok(())
}

/// A device, configuration, other-speed configuration, device qualifier or BOS descriptor
/// cannot be part of an interface's descriptors (a host refuses the configuration).
fn check_not_top_level(t: usbfn_wire::DescriptorType) -> Result<(), String> {
    use usbfn_wire::DescriptorType as T;
    if [
        T::DEVICE,
        T::CONFIGURATION,
        T::OTHER_SPEED_CONFIGURATION,
        T::DEVICE_QUALIFIER,
        T::BOS,
    ]
    .contains(&t)
    {
        return Err(format!(
            "a {t} descriptor inside an interface's descriptors: only class-specific (and \
             interface/endpoint) descriptors belong there"
        ));
    }
    Ok(())
}
