//! The two blobs a FunctionFS function writes to its `ep0`: descriptors (v2 format: FS, HS and
//! SS lists) and strings, built from the device model for the interfaces one service-owned
//! function holds. FunctionFS numbers a function's interfaces from 0 and its strings from 1
//! "as if alone" and remaps them when the gadget binds, so both are renumbered here.

use std::collections::BTreeMap;

use usbfn_core::{BusSpeed, DeviceModel, FunctionId, PipeId};
use usbfn_wire::InterfaceAssociationDescriptor;

use crate::error::FfsError;

/// `FUNCTIONFS_DESCRIPTORS_MAGIC_V2`.
pub const DESCRIPTORS_MAGIC_V2: u32 = 3;
/// `FUNCTIONFS_STRINGS_MAGIC`.
pub const STRINGS_MAGIC: u32 = 2;
/// `FUNCTIONFS_HAS_FS_DESC`.
pub const HAS_FS_DESC: u32 = 1;
/// `FUNCTIONFS_HAS_HS_DESC`.
pub const HAS_HS_DESC: u32 = 2;
/// `FUNCTIONFS_HAS_SS_DESC`.
pub const HAS_SS_DESC: u32 = 4;
/// `FUNCTIONFS_VIRTUAL_ADDR`: endpoint files named by address (`ep81`). Not used: with it
/// FunctionFS gives the host the declared addresses while the UDC runs the endpoints it
/// picked (autoconfig), and SET_CONFIGURATION then fails (`config_ep_by_speed` -EIO) whenever
/// the two differ, as they do on dummy_hcd. Without it the files are `ep1`, `ep2`... in
/// descriptor order and the host sees the UDC's addresses.
pub const VIRTUAL_ADDR: u32 = 16;
/// `FUNCTIONFS_ALL_CTRL_RECIP`: device-recipient (vendor) requests reach this function too.
pub const ALL_CTRL_RECIP: u32 = 64;

/// The FunctionFS view of one service-owned function: a group of interfaces (one, or the
/// interfaces an IAD binds together).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionLayout {
    /// The usbfn functions (interfaces) in the group, in interface-number order.
    pub functions: Vec<FunctionId>,
    /// The model's number of the group's first interface (FunctionFS calls it 0).
    pub first_interface: u8,
    /// Endpoints in descriptor order (file `ep<i+1>`): (declared bEndpointAddress, pipe,
    /// owner).
    pub endpoints: Vec<(u8, PipeId, FunctionId)>,
    /// Whether this group receives device-recipient requests.
    pub device_requests: bool,
    /// The descriptors blob.
    pub descriptors: Vec<u8>,
    /// The strings blob.
    pub strings: Vec<u8>,
}

/// Split configuration `config_index` of `model` into FunctionFS functions and build their
/// blobs. `strings` holds the texts to serve (the model's, plus any registered ones).
pub fn layouts(
    model: &DeviceModel,
    config_index: usize,
    strings: &BTreeMap<u8, String>,
) -> Result<Vec<FunctionLayout>, FfsError> {
    let config = model
        .configurations()
        .get(config_index)
        .ok_or_else(|| FfsError::Unsupported("the device has no configuration".into()))?;
    let mut groups: Vec<(Vec<FunctionId>, Option<InterfaceAssociationDescriptor>)> = Vec::new();
    let mut i = 0;
    while i < config.interfaces.len() {
        let f = config.interfaces[i];
        let number = model.interfaces()[f.0].number;
        match config
            .associations
            .iter()
            .find(|a| a.first_interface == number)
        {
            Some(a) => {
                let count = usize::from(a.interface_count).max(1);
                let members: Vec<FunctionId> = config
                    .interfaces
                    .iter()
                    .skip(i)
                    .take(count)
                    .copied()
                    .collect();
                groups.push((
                    members,
                    Some(InterfaceAssociationDescriptor {
                        b_first_interface: a.first_interface,
                        b_interface_count: a.interface_count,
                        b_function_class: a.class.0,
                        b_function_sub_class: a.class.1,
                        b_function_protocol: a.class.2,
                        i_function: a.i_function,
                    }),
                ));
                i += count;
            }
            None => {
                groups.push((vec![f], None));
                i += 1;
            }
        }
    }
    groups
        .into_iter()
        .map(|(functions, iad)| layout(model, functions, iad, strings))
        .collect()
}

fn layout(
    model: &DeviceModel,
    functions: Vec<FunctionId>,
    iad: Option<InterfaceAssociationDescriptor>,
    strings: &BTreeMap<u8, String>,
) -> Result<FunctionLayout, FfsError> {
    let first_interface = functions
        .iter()
        .map(|f| model.interfaces()[f.0].number)
        .min()
        .unwrap_or(0);
    let speeds: &[BusSpeed] = if model.max_speed() == BusSpeed::Super {
        &[BusSpeed::Full, BusSpeed::High, BusSpeed::Super]
    } else {
        &[BusSpeed::Full, BusSpeed::High]
    };
    let mut string_map: Vec<u8> = Vec::new(); // local index - 1 → model index
    let mut lists = Vec::new();
    for &speed in speeds {
        let mut bytes = Vec::new();
        if let Some(iad) = &iad {
            bytes.extend(iad.to_bytes());
        }
        for f in &functions {
            let number = model.interfaces()[f.0].number;
            let set = model
                .interface_descriptor_set(number, speed)
                .ok_or_else(|| {
                    FfsError::Unsupported(format!("interface {number} has no descriptors"))
                })?;
            bytes.extend(set);
        }
        let count = renumber(&mut bytes, first_interface, &mut string_map)?;
        lists.push((bytes, count));
    }
    let mut endpoints = Vec::new();
    if let Some((fs, _)) = lists.first() {
        for d in walk(fs) {
            if d.get(1) == Some(&usbfn_wire::DescriptorType::ENDPOINT.0) && d.len() >= 7 {
                let address = d[2];
                let pipe = model
                    .pipes()
                    .iter()
                    .enumerate()
                    .find(|(_, p)| p.address.0 == address && functions.contains(&p.function))
                    // fits: a model has at most MAX_ENDPOINTS + 1 pipes (checked when built).
                    .map(|(i, p)| (PipeId(u32::try_from(i).unwrap_or(u32::MAX)), p.function))
                    .ok_or_else(|| {
                        FfsError::Unsupported(format!("endpoint {address:#04x} has no pipe"))
                    })?;
                if endpoints.iter().any(|(a, _, _)| *a == address) {
                    return Err(FfsError::Unsupported(format!(
                        "endpoint {address:#04x} appears in several alternate settings; FunctionFS needs one descriptor per endpoint address"
                    )));
                }
                endpoints.push((address, pipe.0, pipe.1));
            }
        }
    }
    let device_requests = model
        .device_request_owner()
        .is_some_and(|owner| functions.contains(&owner));
    let mut flags = HAS_FS_DESC | HAS_HS_DESC;
    if speeds.len() == 3 {
        flags |= HAS_SS_DESC;
    }
    if device_requests {
        flags |= ALL_CTRL_RECIP;
    }
    let mut descriptors = Vec::new();
    descriptors.extend(DESCRIPTORS_MAGIC_V2.to_le_bytes());
    descriptors.extend(0u32.to_le_bytes()); // length, filled in below
    descriptors.extend(flags.to_le_bytes());
    for (_, count) in &lists {
        descriptors.extend(count.to_le_bytes());
    }
    for (bytes, _) in &lists {
        descriptors.extend(bytes);
    }
    set_length(&mut descriptors)?;

    let texts: Vec<&str> = string_map
        .iter()
        .map(|i| strings.get(i).map_or("", String::as_str))
        .collect();
    let strings = strings_blob(model.device().language_id, &texts)?;
    Ok(FunctionLayout {
        functions,
        first_interface,
        endpoints,
        device_requests,
        descriptors,
        strings,
    })
}

/// The strings blob: one language, `texts[i]` is local string index `i + 1`.
pub fn strings_blob(language_id: u16, texts: &[&str]) -> Result<Vec<u8>, FfsError> {
    let mut out = Vec::new();
    out.extend(STRINGS_MAGIC.to_le_bytes());
    out.extend(0u32.to_le_bytes());
    let count =
        u32::try_from(texts.len()).map_err(|_| FfsError::Unsupported("too many strings".into()))?;
    out.extend(count.to_le_bytes());
    out.extend(u32::from(!texts.is_empty()).to_le_bytes());
    if !texts.is_empty() {
        out.extend(language_id.to_le_bytes());
        for t in texts {
            if t.contains('\0') {
                return Err(FfsError::Unsupported(format!(
                    "string {t:?} contains a NUL"
                )));
            }
            out.extend(t.as_bytes());
            out.push(0);
        }
    }
    set_length(&mut out)?;
    Ok(out)
}

fn set_length(blob: &mut [u8]) -> Result<(), FfsError> {
    let len = u32::try_from(blob.len())
        .map_err(|_| FfsError::Unsupported("descriptor blob longer than 4 GiB".into()))?;
    if let Some(field) = blob.get_mut(4..8) {
        field.copy_from_slice(&len.to_le_bytes());
    }
    Ok(())
}

/// Each descriptor of a concatenated list (stops at a malformed bLength).
fn walk(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        let len = usize::from(*rest.first()?);
        if len < 2 || len > rest.len() {
            return None;
        }
        let (d, tail) = rest.split_at(len);
        rest = tail;
        Some(d)
    })
}

/// Renumber interfaces from `first` to 0 and string indexes to the function's own (1..),
/// in place; returns the number of descriptors.
fn renumber(bytes: &mut [u8], first: u8, string_map: &mut Vec<u8>) -> Result<u32, FfsError> {
    let local_string = |index: u8, map: &mut Vec<u8>| -> u8 {
        if index == 0 {
            return 0;
        }
        let pos = map.iter().position(|i| *i == index).unwrap_or_else(|| {
            map.push(index);
            map.len() - 1
        });
        u8::try_from(pos + 1).unwrap_or(0)
    };
    let mut at = 0;
    let mut count = 0u32;
    while at < bytes.len() {
        let len = usize::from(bytes[at]);
        if len < 2 || at + len > bytes.len() {
            return Err(FfsError::Unsupported(format!(
                "malformed descriptor at offset {at} of an interface descriptor set"
            )));
        }
        let d = &mut bytes[at..at + len];
        match d[1] {
            // INTERFACE: bInterfaceNumber (2), iInterface (8)
            4 if len >= 9 => {
                d[2] = d[2].checked_sub(first).ok_or_else(|| {
                    FfsError::Unsupported("interfaces of a function are not contiguous".into())
                })?;
                d[8] = local_string(d[8], string_map);
            }
            // INTERFACE_ASSOCIATION: bFirstInterface (2), iFunction (7)
            11 if len >= 8 => {
                d[2] = d[2].saturating_sub(first);
                d[7] = local_string(d[7], string_map);
            }
            _ => {}
        }
        at += len;
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use usbfn_core::DeviceConfig;

    fn model(toml: &str) -> DeviceModel {
        DeviceModel::build(&DeviceConfig::from_toml(toml).expect("toml")).expect("model")
    }

    #[test]
    fn strings_blob_bytes() {
        let b = strings_blob(0x0409, &["ab", "c"]).expect("blob");
        assert_eq!(b.len(), 23);
        assert_eq!(&b[..4], &[2, 0, 0, 0]);
        assert_eq!(
            u32::from_le_bytes(b[4..8].try_into().expect("4")) as usize,
            b.len()
        );
        assert_eq!(&b[8..16], &[2, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(&b[16..], &[0x09, 0x04, b'a', b'b', 0, b'c', 0]);
        let none = strings_blob(0x0409, &[]).expect("blob");
        assert_eq!(none, [2, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(strings_blob(0x0409, &["a\0b"]).is_err());
    }

    #[test]
    fn gadget_zero_layout() {
        let m = DeviceModel::build(&usbfn_core_gadget_zero()).expect("model");
        let l = layouts(&m, 0, m.strings()).expect("layouts");
        assert_eq!(l.len(), 1);
        let f = &l[0];
        assert!(f.device_requests, "Gadget Zero owns the vendor requests");
        let d = &f.descriptors;
        assert_eq!(&d[..4], &[3, 0, 0, 0]);
        assert_eq!(
            u32::from_le_bytes(d[4..8].try_into().expect("4")) as usize,
            d.len()
        );
        let flags = u32::from_le_bytes(d[8..12].try_into().expect("4"));
        assert_eq!(
            flags,
            HAS_FS_DESC | HAS_HS_DESC | HAS_SS_DESC | ALL_CTRL_RECIP
        );
        assert_eq!(flags & VIRTUAL_ADDR, 0, "see VIRTUAL_ADDR");
        // FS and HS: interface + 2 endpoints; SS: + 2 companions.
        assert_eq!(&d[12..24], &[3, 0, 0, 0, 3, 0, 0, 0, 5, 0, 0, 0]);
        // The first interface descriptor: number 0, iInterface local string 1.
        assert_eq!(&d[24..33], &[9, 4, 0, 0, 2, 0xff, 0, 0, 1]);
        assert_eq!(f.endpoints.len(), 2);
        assert_eq!(f.endpoints[0].1, PipeId(1));
        let s = &f.strings;
        assert_eq!(&s[8..12], &[1, 0, 0, 0]);
        assert!(s.ends_with(b"source and sink data\0"));
    }

    fn usbfn_core_gadget_zero() -> DeviceConfig {
        DeviceConfig::from_toml(
            r#"
            [device]
            vendor_id = 0x0525
            product_id = 0xa4a0
            class = 0xff
            max_speed = "super"
            [[interfaces]]
            name = "source-sink"
            device_request_owner = true
            class = 0xff
            string = "source and sink data"
            endpoints = [{ direction = "in", type = "bulk" }, { direction = "out", type = "bulk" }]
            "#,
        )
        .expect("toml")
    }

    #[test]
    fn two_functions_number_their_interfaces_from_zero() {
        let m = model(
            r#"
            [device]
            vendor_id = 0x1209
            product_id = 0x0001
            [[interfaces]]
            name = "a"
            string = "first"
            endpoints = [{ direction = "in", type = "bulk" }]
            [[interfaces]]
            name = "b"
            string = "second"
            endpoints = [{ direction = "out", type = "bulk" }]
            "#,
        );
        let l = layouts(&m, 0, m.strings()).expect("layouts");
        assert_eq!(l.len(), 2);
        assert_eq!(l[1].first_interface, 1);
        assert_eq!(l[1].functions, vec![FunctionId(1)]);
        // The first list (full speed) starts with interface 0, string 1.
        let iface = &first_list(&l[1].descriptors)[..9];
        assert_eq!((iface[1], iface[2], iface[8]), (4, 0, 1));
        assert!(l[1].strings.ends_with(b"second\0"));
        assert!(!l[1].device_requests);
    }

    #[test]
    fn an_association_makes_one_function_with_its_iad() {
        let m = model(
            r#"
            [device]
            vendor_id = 0x1209
            product_id = 0x0001
            [[interfaces]]
            name = "a"
            endpoints = [{ direction = "in", type = "interrupt" }]
            [[interfaces]]
            name = "b"
            endpoints = [{ direction = "out", type = "bulk" }, { direction = "in", type = "bulk" }]
            [[associations]]
            interfaces = ["a", "b"]
            class = 2
            subclass = 2
            protocol = 1
            "#,
        );
        let l = layouts(&m, 0, m.strings()).expect("layouts");
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].functions, vec![FunctionId(0), FunctionId(1)]);
        assert_eq!(l[0].endpoints.len(), 3);
        let first = &first_list(&l[0].descriptors)[..8];
        assert_eq!((first[0], first[1], first[2], first[3]), (8, 11, 0, 2));
    }

    /// The descriptors after the v2 header (magic, length, flags, one count per flag).
    fn first_list(d: &[u8]) -> &[u8] {
        let flags = u32::from_le_bytes(d[8..12].try_into().expect("4"));
        let counts = (flags & (HAS_FS_DESC | HAS_HS_DESC | HAS_SS_DESC)).count_ones() as usize;
        &d[12 + 4 * counts..]
    }

    #[test]
    fn renumber_rejects_truncated_descriptors() {
        let mut map = Vec::new();
        assert!(renumber(&mut [9, 4, 0], 0, &mut map).is_err());
        assert!(renumber(&mut [1, 4], 0, &mut map).is_err());
        let mut ok = [9, 4, 3, 0, 0, 0, 0, 0, 7];
        assert_eq!(renumber(&mut ok, 3, &mut map).expect("ok"), 1);
        assert_eq!((ok[2], ok[8]), (0, 1));
        assert_eq!(map, vec![7]);
        assert!(renumber(&mut [9, 4, 1, 0, 0, 0, 0, 0, 0], 2, &mut map).is_err());
    }
}
