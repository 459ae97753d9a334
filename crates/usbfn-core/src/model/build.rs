//! Validation of a [`DeviceConfig`] and the allocation of every number.

use std::collections::BTreeMap;
use std::time::Duration;

use usbfn_wire::EndpointAddress;

use super::endpoint::{check_descriptor_chain, endpoint, parse_hex};
use super::*;
use crate::config::AlternateSection;

#[derive(Default)]
pub(super) struct Builder {
    strings: BTreeMap<u8, String>,
}

pub(super) fn err(field: impl Into<String>, problem: Problem) -> ValidationError {
    ValidationError {
        field: field.into(),
        problem,
    }
}

/// `list[i]` with the 1-based index a person counts entries in the file by: the second
/// `[[interfaces]]` is `interfaces[2]`.
pub(super) fn nth(list: &str, i: usize) -> String {
    format!("{list}[{}]", i + 1)
}

/// Alternate setting `a` of the interface at `here`: its own fields for 0, else
/// `alternates[a]` (the first `[[interfaces.alternates]]` is alternate setting 1).
fn alternate_path(here: &str, a: usize) -> String {
    if a == 0 {
        here.to_owned()
    } else {
        format!("{here}.alternates[{a}]")
    }
}

/// Endpoint `e` of alternate setting `a` of interface `m`, 0-based in, 1-based out.
fn endpoint_path(m: usize, a: usize, e: usize) -> String {
    format!(
        "{}.endpoints[{}]",
        alternate_path(&nth("interfaces", m), a),
        e + 1
    )
}

/// A Microsoft OS compatible ID: 1 to 8 of `A-Z`, `0-9`, `_`, NUL padded.
fn compatible_id(field: &str, id: &str) -> Result<[u8; 8], ValidationError> {
    let ok = (1..=8).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if !ok {
        return Err(illegal(
            field,
            format!("{id:?}"),
            "1 to 8 characters of A-Z, 0-9 and _, e.g. \"WINUSB\"",
        ));
    }
    let mut out = [0u8; 8];
    out[..id.len()].copy_from_slice(id.as_bytes());
    Ok(out)
}

pub(super) fn illegal(
    field: impl Into<String>,
    value: impl ToString,
    allowed: &'static str,
) -> ValidationError {
    err(
        field,
        Problem::Illegal {
            value: value.to_string(),
            allowed,
        },
    )
}

impl Builder {
    fn string(&mut self, field: &str, text: Option<&str>) -> Result<u8, ValidationError> {
        let Some(text) = text else { return Ok(0) };
        let units = text.encode_utf16().count();
        if units > MAX_STRING_UNITS {
            return Err(err(
                field,
                Problem::TooMany {
                    what: "UTF-16 code units in a USB string",
                    count: units,
                    limit: MAX_STRING_UNITS,
                },
            ));
        }
        if let Some((&index, _)) = self.strings.iter().find(|(_, s)| s.as_str() == text) {
            return Ok(index);
        }
        let index = (1..=255u8)
            .find(|i| !self.strings.contains_key(i))
            .ok_or_else(|| {
                err(
                    field,
                    Problem::TooMany {
                        what: "strings",
                        count: 256,
                        limit: 255,
                    },
                )
            })?;
        self.strings.insert(index, text.to_owned());
        Ok(index)
    }

    pub(super) fn build(mut self, config: &DeviceConfig) -> Result<DeviceModel, ValidationError> {
        let d = &config.device;
        if ![8, 16, 32, 64].contains(&d.max_packet_size0) {
            return Err(illegal(
                "device.max_packet_size0",
                d.max_packet_size0,
                "8, 16, 32 or 64",
            ));
        }
        if d.max_power_ma > 500 && d.max_speed < BusSpeed::Super {
            return Err(illegal(
                "device.max_power_ma",
                d.max_power_ma,
                "0..=500 mA below SuperSpeed",
            ));
        }
        if d.max_power_ma > 900 {
            return Err(illegal("device.max_power_ma", d.max_power_ma, "0..=900 mA"));
        }
        if let Some(bcd) = d.bcd_usb
            && !(0x0110..=0x0210).contains(&bcd)
        {
            return Err(illegal(
                "device.bcd_usb",
                format!("{bcd:#06x}"),
                "0x0110..=0x0210 (SuperSpeed always reports 0x0320)",
            ));
        }
        let i_manufacturer = self.string("device.manufacturer", d.manufacturer.as_deref())?;
        let i_product = self.string("device.product", d.product.as_deref())?;
        let i_serial = self.string("device.serial", d.serial.as_deref())?;

        // Interface names and GUIDs.
        let mut names: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, iface) in config.interfaces.iter().enumerate() {
            let field = format!("{}.name", nth("interfaces", i));
            if iface.name.is_empty() {
                return Err(err(field, Problem::Missing("a non-empty name")));
            }
            let len = iface.name.encode_utf16().count();
            if len > MAX_INTERFACE_NAME {
                return Err(err(
                    field,
                    Problem::TooMany {
                        what: "UTF-16 code units in an interface name",
                        count: len,
                        limit: MAX_INTERFACE_NAME,
                    },
                ));
            }
            if names.insert(&iface.name, i).is_some() {
                return Err(err(
                    field,
                    Problem::Duplicate {
                        what: "interface name",
                        value: iface.name.clone(),
                    },
                ));
            }
        }
        if config.interfaces.is_empty() {
            return Err(err(
                "interfaces",
                Problem::Missing("at least one interface"),
            ));
        }

        // Configurations: which interfaces each holds.
        let sections: Vec<(Option<u8>, Option<String>, Vec<usize>)> =
            if config.configurations.is_empty() {
                vec![(None, None, (0..config.interfaces.len()).collect())]
            } else {
                let mut out = Vec::new();
                for (c, section) in config.configurations.iter().enumerate() {
                    let mut members = Vec::new();
                    for name in &section.interfaces {
                        let idx = names.get(name.as_str()).copied().ok_or_else(|| {
                            err(
                                format!("{}.interfaces", nth("configurations", c)),
                                Problem::Unknown {
                                    what: "interface",
                                    name: name.clone(),
                                },
                            )
                        })?;
                        members.push(idx);
                    }
                    out.push((section.value, section.name.clone(), members));
                }
                out
            };
        if sections.len() > MAX_CONFIGURATIONS {
            return Err(err(
                "configurations",
                Problem::TooMany {
                    what: "configurations",
                    count: sections.len(),
                    limit: MAX_CONFIGURATIONS,
                },
            ));
        }
        let mut config_of: Vec<Option<usize>> = vec![None; config.interfaces.len()];
        for (c, (_, _, members)) in sections.iter().enumerate() {
            for &m in members {
                if config_of[m].replace(c).is_some() {
                    return Err(err(
                        format!("{}.interfaces", nth("configurations", c)),
                        Problem::Duplicate {
                            what: "interface (each interface belongs to one configuration)",
                            value: config.interfaces[m].name.clone(),
                        },
                    ));
                }
            }
        }
        if let Some(m) = config_of.iter().position(Option::is_none) {
            return Err(err(
                nth("interfaces", m),
                Problem::Unknown {
                    what: "configuration listing interface",
                    name: config.interfaces[m].name.clone(),
                },
            ));
        }

        // Interface numbers per configuration: fixed first, then the lowest free.
        let mut numbers = vec![0u8; config.interfaces.len()];
        for (c, (_, _, members)) in sections.iter().enumerate() {
            // bNumInterfaces is one byte.
            if members.len() > MAX_INTERFACES_PER_CONFIGURATION {
                return Err(err(
                    nth("configurations", c),
                    Problem::TooMany {
                        what: "interfaces (bNumInterfaces)",
                        count: members.len(),
                        limit: MAX_INTERFACES_PER_CONFIGURATION,
                    },
                ));
            }
            let mut used = [false; 256];
            for &m in members {
                if let Some(n) = config.interfaces[m].number {
                    if std::mem::replace(&mut used[usize::from(n)], true) {
                        return Err(err(
                            format!("{}.number", nth("interfaces", m)),
                            Problem::Duplicate {
                                what: "interface number in configuration",
                                value: format!("{n} (configurations[{}])", c + 1),
                            },
                        ));
                    }
                    numbers[m] = n;
                }
            }
            for &m in members {
                if config.interfaces[m].number.is_none() {
                    let n = (0..=255u8)
                        .find(|n| !used[usize::from(*n)])
                        .ok_or_else(|| {
                            err(
                                nth("configurations", c),
                                Problem::TooMany {
                                    what: "interfaces",
                                    count: members.len(),
                                    limit: MAX_INTERFACES_PER_CONFIGURATION,
                                },
                            )
                        })?;
                    used[usize::from(n)] = true;
                    numbers[m] = n;
                }
            }
        }

        // Alternate settings and endpoints.
        let mut pipes = vec![PipeModel {
            function: FunctionId(usize::MAX),
            address: EndpointAddress(0),
        }];
        let mut interfaces = Vec::new();
        let mut device_request_owner = None;
        for (i, iface) in config.interfaces.iter().enumerate() {
            let here = format!("{} {:?}", nth("interfaces", i), iface.name);
            let guid = match &iface.guid {
                Some(g) => Some(canonical_guid(g).ok_or_else(|| {
                    illegal(
                        format!("{here}.guid"),
                        g,
                        "a GUID in the form {xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}",
                    )
                })?),
                None => None,
            };
            if let Some(g) = &guid
                && interfaces
                    .iter()
                    .any(|other: &InterfaceModel| other.guid.as_ref() == Some(g))
            {
                return Err(err(
                    format!("{here}.guid"),
                    Problem::Duplicate {
                        what: "interface GUID",
                        value: g.clone(),
                    },
                ));
            }
            if iface.device_request_owner {
                if device_request_owner.is_some() {
                    return Err(err(
                        format!("{here}.device_request_owner"),
                        Problem::Duplicate {
                            what: "device request owner",
                            value: iface.name.clone(),
                        },
                    ));
                }
                device_request_owner = Some(FunctionId(i));
            }
            let mut alternates = Vec::new();
            for (a, alt) in iface.settings().iter().enumerate() {
                let field = alternate_path(&here, a);
                alternates.push(self.alternate(&field, alt)?);
            }
            if alternates.len() > 256 {
                return Err(err(
                    format!("{here}.alternates"),
                    Problem::TooMany {
                        what: "alternate settings",
                        count: alternates.len(),
                        limit: 256,
                    },
                ));
            }
            let compatible_id = match &iface.compatible_id {
                Some(id) => Some(compatible_id(&format!("{here}.compatible_id"), id)?),
                None => None,
            };
            interfaces.push(InterfaceModel {
                name: iface.name.clone(),
                guid,
                number: numbers[i],
                configuration: config_of[i].unwrap_or(0),
                alternates,
                compatible_id,
            });
        }

        // Endpoint numbers: fixed addresses are reserved per configuration; the rest get the
        // lowest free number of their direction. Within one interface the k-th automatic
        // endpoint of a direction has the same number in every alternate setting.
        for (_, _, members) in &sections {
            let mut owner: BTreeMap<u8, usize> = BTreeMap::new();
            for &m in members {
                for (a, alt) in interfaces[m].alternates.iter().enumerate() {
                    for (e, ep) in alt.endpoints.iter().enumerate() {
                        if ep.address.number() == 0 {
                            continue;
                        }
                        if let Some(&other) = owner.get(&ep.address.0)
                            && other != m
                        {
                            return Err(err(
                                format!("{}.address", endpoint_path(m, a, e)),
                                Problem::Duplicate {
                                    what: "endpoint address in configuration",
                                    value: format!(
                                        "{:#04x} (also used by {:?})",
                                        ep.address.0, interfaces[other].name
                                    ),
                                },
                            ));
                        }
                        owner.insert(ep.address.0, m);
                    }
                }
            }
            for &m in members {
                let mut assigned: BTreeMap<(bool, usize), u8> = BTreeMap::new();
                for a in 0..interfaces[m].alternates.len() {
                    let mut kth = [0usize; 2];
                    for e in 0..interfaces[m].alternates[a].endpoints.len() {
                        let ep = &interfaces[m].alternates[a].endpoints[e];
                        if ep.address.number() != 0 {
                            continue;
                        }
                        let is_in = ep.address.is_in();
                        let k = kth[usize::from(is_in)];
                        kth[usize::from(is_in)] += 1;
                        let number = match assigned.get(&(is_in, k)) {
                            Some(&n) => n,
                            None => {
                                let dir_bit = if is_in { 0x80 } else { 0 };
                                let n = (1..=15u8).find(|n| !owner.contains_key(&(n | dir_bit))).ok_or_else(|| {
                                    err(
                                        endpoint_path(m, a, e),
                                        Problem::TooMany {
                                            what: "endpoints of one direction in a configuration",
                                            count: 16,
                                            limit: 15,
                                        },
                                    )
                                })?;
                                owner.insert(n | dir_bit, m);
                                assigned.insert((is_in, k), n);
                                n
                            }
                        };
                        let dir_bit = if is_in { 0x80 } else { 0 };
                        interfaces[m].alternates[a].endpoints[e].address =
                            EndpointAddress(number | dir_bit);
                    }
                }
            }
        }

        // Pipes: one per (interface, endpoint address), in declaration order.
        for (m, iface) in interfaces.iter_mut().enumerate() {
            let mut mine: Vec<(u8, PipeId)> = Vec::new();
            for (a, alt) in iface.alternates.iter_mut().enumerate() {
                let mut seen = Vec::new();
                for (e, ep) in alt.endpoints.iter_mut().enumerate() {
                    if seen.contains(&ep.address.0) {
                        return Err(err(
                            format!("{}.address", endpoint_path(m, a, e)),
                            Problem::Duplicate {
                                what: "endpoint address in alternate setting",
                                value: format!("{:#04x}", ep.address.0),
                            },
                        ));
                    }
                    seen.push(ep.address.0);
                    ep.pipe = match mine.iter().find(|(addr, _)| *addr == ep.address.0) {
                        Some(&(_, p)) => p,
                        None => {
                            // Fits: at most 256 alternate settings × 30 endpoints per
                            // interface exist at this point (the total is checked against
                            // MAX_ENDPOINTS below), far below u32::MAX.
                            let id = PipeId(u32::try_from(pipes.len()).unwrap_or(u32::MAX));
                            pipes.push(PipeModel {
                                function: FunctionId(m),
                                address: ep.address,
                            });
                            mine.push((ep.address.0, id));
                            id
                        }
                    };
                }
            }
        }
        if pipes.len() - 1 > MAX_ENDPOINTS {
            return Err(err(
                "interfaces",
                Problem::TooMany {
                    what: "data endpoints (MAX_NUM_USBFN_ENDPOINTS)",
                    count: pipes.len() - 1,
                    limit: MAX_ENDPOINTS,
                },
            ));
        }

        // Configurations and associations.
        let mut configurations = Vec::new();
        let mut values = Vec::new();
        for (c, (value, name, members)) in sections.iter().enumerate() {
            // Fits: at most MAX_CONFIGURATIONS (12) configurations were accepted above.
            let value = value.unwrap_or(u8::try_from(c + 1).unwrap_or(u8::MAX));
            if value == 0 || values.contains(&value) {
                return Err(illegal(
                    format!("{}.value", nth("configurations", c)),
                    value,
                    "a unique bConfigurationValue from 1 to 255",
                ));
            }
            values.push(value);
            let i_configuration = self.string(
                &format!("{}.name", nth("configurations", c)),
                name.as_deref(),
            )?;
            let mut ordered: Vec<FunctionId> = members.iter().map(|&m| FunctionId(m)).collect();
            ordered.sort_by_key(|f| interfaces[f.0].number);
            configurations.push(ConfigurationModel {
                value,
                i_configuration,
                interfaces: ordered,
                associations: Vec::new(),
            });
        }
        for (x, assoc) in config.associations.iter().enumerate() {
            let field = nth("associations", x);
            if assoc.interfaces.len() < 2 {
                return Err(err(
                    format!("{field}.interfaces"),
                    Problem::Missing("two or more interfaces"),
                ));
            }
            let mut members = Vec::new();
            for name in &assoc.interfaces {
                let idx = names.get(name.as_str()).copied().ok_or_else(|| {
                    err(
                        format!("{field}.interfaces"),
                        Problem::Unknown {
                            what: "interface",
                            name: name.clone(),
                        },
                    )
                })?;
                members.push(idx);
            }
            let c = interfaces[members[0]].configuration;
            let mut nums: Vec<u8> = members.iter().map(|&m| interfaces[m].number).collect();
            nums.sort_unstable();
            let consecutive = nums.windows(2).all(|w| w[1] == w[0].wrapping_add(1));
            if !consecutive || members.iter().any(|&m| interfaces[m].configuration != c) {
                return Err(illegal(
                    format!("{field}.interfaces"),
                    format!("{:?} (numbers {nums:?})", assoc.interfaces),
                    "interfaces of one configuration with consecutive numbers",
                ));
            }
            let i_function = self.string(&format!("{field}.string"), assoc.string.as_deref())?;
            configurations[c].associations.push(AssociationModel {
                first_interface: nums[0],
                // Fits: members of one configuration, at most
                // MAX_INTERFACES_PER_CONFIGURATION (255).
                interface_count: u8::try_from(nums.len()).unwrap_or(u8::MAX),
                class: (assoc.class, assoc.subclass, assoc.protocol),
                i_function,
            });
        }

        Ok(DeviceModel {
            device: d.clone(),
            i_manufacturer,
            i_product,
            i_serial,
            configurations,
            interfaces,
            pipes,
            strings: self.strings,
            setup_timeout: Duration::from_millis(config.control.setup_timeout_ms),
            device_request_owner,
        })
    }

    fn alternate(
        &mut self,
        field: &str,
        alt: &AlternateSection,
    ) -> Result<AlternateModel, ValidationError> {
        if let Some(blob) = &alt.descriptor {
            if alt.class.is_some()
                || alt.subclass.is_some()
                || alt.protocol.is_some()
                || !alt.endpoints.is_empty()
                || alt.class_descriptors.is_some()
            {
                return Err(illegal(
                    format!("{field}.descriptor"),
                    "descriptor together with class/endpoints fields",
                    "either the registry `descriptor` blob or the fields, not both",
                ));
            }
            let bytes = parse_hex(blob)
                .map_err(|m| err(format!("{field}.descriptor"), Problem::Malformed(m)))?;
            let mut model = crate::registry::alternate_from_blob(&bytes)
                .map_err(|m| err(format!("{field}.descriptor"), Problem::Malformed(m)))?;
            model.i_interface = self.string(&format!("{field}.string"), alt.string.as_deref())?;
            return Ok(model);
        }
        let class_descriptors = match &alt.class_descriptors {
            Some(hex) => {
                let bytes = parse_hex(hex).map_err(|m| {
                    err(format!("{field}.class_descriptors"), Problem::Malformed(m))
                })?;
                check_descriptor_chain(&bytes).map_err(|m| {
                    err(format!("{field}.class_descriptors"), Problem::Malformed(m))
                })?;
                bytes
            }
            None => Vec::new(),
        };
        let mut endpoints = Vec::new();
        for (e, ep) in alt.endpoints.iter().enumerate() {
            endpoints.push(endpoint(&format!("{field}.endpoints[{}]", e + 1), ep)?);
        }
        if endpoints.len() > MAX_ENDPOINTS {
            return Err(err(
                format!("{field}.endpoints"),
                Problem::TooMany {
                    what: "endpoints in an alternate setting",
                    count: endpoints.len(),
                    limit: MAX_ENDPOINTS,
                },
            ));
        }
        Ok(AlternateModel {
            class: (
                alt.class.unwrap_or(0xff),
                alt.subclass.unwrap_or(0),
                alt.protocol.unwrap_or(0),
            ),
            i_interface: self.string(&format!("{field}.string"), alt.string.as_deref())?,
            class_descriptors,
            endpoints,
        })
    }
}

/// Accept `{...}` or bare GUIDs in any case; return the canonical braced lower-case form.
fn canonical_guid(text: &str) -> Option<String> {
    let inner = text
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or(text);
    let groups: Vec<&str> = inner.split('-').collect();
    let lens = [8, 4, 4, 4, 12];
    if groups.len() != 5
        || groups
            .iter()
            .zip(lens)
            .any(|(g, l)| g.len() != l || !g.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return None;
    }
    Some(format!("{{{}}}", inner.to_ascii_lowercase()))
}
