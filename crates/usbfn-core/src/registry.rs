//! The registry form of an interface: the `InterfaceDescriptor` binary value, holding an
//! interface descriptor, its endpoint descriptors and any class-specific descriptors.
//!
//! As on Windows, bInterfaceNumber and iInterface in the blob are ignored (the stack assigns
//! them), and endpoint packet sizes are adapted per speed: bulk endpoints get the size the
//! speed requires; interrupt endpoints are capped at 64 bytes at full speed unless the
//! `USBFN_INTERRUPT_ENDPOINT_SIZE_NOT_UPDATEABLE_MASK` bit (0x80 in the high byte) is set.

use usbfn_wire::{DescriptorType, EndpointDescriptor, TransferType};

use crate::config::{EndpointSection, PerSpeed, TransferTypeName};
use crate::model::{AlternateModel, check_descriptor_chain};

const NOT_UPDATEABLE: u16 =
    (usbfn_abi::USBFN_INTERRUPT_ENDPOINT_SIZE_NOT_UPDATEABLE_MASK as u16) << 8;

/// Build an alternate setting from a registry blob. Errors are human-readable reasons.
pub(crate) fn alternate_from_blob(bytes: &[u8]) -> Result<AlternateModel, String> {
    check_descriptor_chain(bytes)?;
    let mut iter = usbfn_wire::descriptors(bytes);
    let first = iter
        .next()
        .ok_or("empty descriptor blob")?
        .map_err(|e| e.to_string())?;
    if first.descriptor_type != DescriptorType::INTERFACE {
        return Err(format!(
            "the blob must start with an interface descriptor, found {:?}",
            first.descriptor_type
        ));
    }
    let iface = usbfn_wire::InterfaceDescriptor::parse(first.bytes).map_err(|e| e.to_string())?;
    let mut alt = AlternateModel {
        class: (
            iface.b_interface_class,
            iface.b_interface_sub_class,
            iface.b_interface_protocol,
        ),
        i_interface: 0,
        class_descriptors: Vec::new(),
        endpoints: Vec::new(),
    };
    let mut sections: Vec<(EndpointSection, Vec<u8>)> = Vec::new();
    for d in iter {
        let d = d.map_err(|e| e.to_string())?;
        if d.descriptor_type == DescriptorType::ENDPOINT {
            let ep = EndpointDescriptor::parse(d.bytes).map_err(|e| e.to_string())?;
            sections.push((section_for(&ep)?, Vec::new()));
        } else if d.descriptor_type == DescriptorType::SUPERSPEED_USB_ENDPOINT_COMPANION {
            let c = usbfn_wire::SuperSpeedEndpointCompanion::parse(d.bytes)
                .map_err(|e| e.to_string())?;
            let (last, _) = sections
                .last_mut()
                .ok_or("a SuperSpeed companion before any endpoint")?;
            last.max_burst = c.b_max_burst;
            last.ss_attributes = c.bm_attributes;
            last.bytes_per_interval = Some(c.w_bytes_per_interval).filter(|b| *b != 0);
        } else if d.descriptor_type == DescriptorType::INTERFACE {
            return Err("a second interface descriptor: declare alternates separately".to_owned());
        } else {
            match sections.last_mut() {
                Some((_, extra)) => extra.extend_from_slice(d.bytes),
                None => alt.class_descriptors.extend_from_slice(d.bytes),
            }
        }
    }
    if sections.len() != usize::from(iface.b_num_endpoints) {
        return Err(format!(
            "bNumEndpoints is {} but the blob has {} endpoint descriptors",
            iface.b_num_endpoints,
            sections.len()
        ));
    }
    for (e, (mut section, extra)) in sections.into_iter().enumerate() {
        if !extra.is_empty() {
            section.class_descriptors = Some(
                extra
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(""),
            );
        }
        let model =
            crate::model::endpoint_for_registry(&format!("endpoint descriptor {e}"), &section)
                .map_err(|e| e.to_string())?;
        alt.endpoints.push(model);
    }
    Ok(alt)
}

fn section_for(ep: &EndpointDescriptor) -> Result<EndpointSection, String> {
    let raw = ep.w_max_packet_size;
    let (transfer_type, max_packet, interval) = match ep.transfer_type() {
        TransferType::Bulk => (TransferTypeName::Bulk, None, None),
        TransferType::Interrupt => {
            let fixed = raw & NOT_UPDATEABLE != 0;
            let size = raw & !NOT_UPDATEABLE;
            let full = if fixed { size } else { size.min(64) };
            let full_interval = exponent_to_frames(ep.b_interval);
            (
                TransferTypeName::Interrupt,
                Some(PerSpeed::Each {
                    full: Some(full),
                    high: Some(size),
                    super_: Some(size & 0x7ff),
                }),
                Some(PerSpeed::Each {
                    full: Some(full_interval),
                    high: Some(ep.b_interval),
                    super_: Some(ep.b_interval),
                }),
            )
        }
        TransferType::Isochronous => (
            TransferTypeName::Isochronous,
            Some(PerSpeed::Each {
                full: Some((raw & 0x7ff).min(1023)),
                high: Some(raw),
                super_: Some(raw & 0x7ff),
            }),
            Some(PerSpeed::All(ep.b_interval)),
        ),
        TransferType::Control => {
            return Err(format!(
                "endpoint {:#04x} is a control endpoint",
                ep.b_endpoint_address.0
            ));
        }
    };
    Ok(EndpointSection {
        address: Some(ep.b_endpoint_address.0),
        direction: None,
        transfer_type,
        max_packet,
        interval,
        max_burst: 0,
        ss_attributes: 0,
        bytes_per_interval: None,
        iso_attributes: ep.bm_attributes & 0x3c,
        class_descriptors: None,
    })
}

/// A high-speed interval exponent (2^(n-1) microframes) as full-speed frames.
fn exponent_to_frames(exponent: u8) -> u8 {
    let micro = 1u32 << u32::from(exponent.clamp(1, 16) - 1);
    u8::try_from((micro / 8).clamp(1, 255)).unwrap_or(255)
}
