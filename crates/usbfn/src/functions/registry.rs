//! The registry of ready functions: every built-in function by name, so that `usbfn serve
//! --function KIND[,key=value...]`, a device file's `[function]`, `--udc` and the daemon's
//! in-process services reach all of them the same way. Adding a function is a module, a
//! variant of [`Function`] and one arm in each `match` below.

use tokio::task::JoinHandle;
use usbfn_core::config::DeviceConfig;

use super::compose::{Fragment, compose};
use super::options::{FunctionOptions, OptionError};
use super::{acm, audio, gadget_zero, hid, msc, ncm};
use crate::ServiceApi;

/// The names of the built-in functions, as `--function` takes them.
pub const KINDS: &str = "gadget-zero, acm, hid-keyboard, hid-mouse, hid, msc, audio, ncm, ecm";

/// A function's service, running.
pub type ServiceFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), crate::Error>> + Send>>;

/// A built-in function with its options.
#[derive(Clone, Debug, PartialEq)]
pub enum Function {
    /// Gadget Zero (`gadget-zero`): the kernel's source/sink test function.
    GadgetZero(gadget_zero::Options),
    /// A CDC-ACM serial port (`acm`) with a pseudo-terminal as its device side.
    Acm(acm::Options),
    /// A HID (`hid-keyboard`, `hid-mouse`, or `hid` with any report descriptor) fed from a
    /// FIFO.
    Hid(hid::Options),
    /// Mass storage (`msc`): Bulk-Only Transport with SCSI, backed by image files.
    Msc(msc::Options),
    /// USB Audio Class 2.0 (`audio`): a microphone and a speaker.
    Audio(audio::Options),
    /// A CDC-NCM network adapter (`ncm`).
    Ncm(ncm::Options),
    /// A CDC-ECM network adapter (`ecm`).
    Ecm(ncm::Options),
}

/// A function that could not start: its device-side end (a file, a terminal, a FIFO) or the
/// interfaces it was given.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The device side could not be set up.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, naming the path.
        what: String,
        /// The system's error.
        source: std::io::Error,
    },
    /// A setting or a file's content is not usable.
    #[error("{0}")]
    Invalid(String),
    /// The caller opened a different number of interfaces than the function has.
    #[error("{kind} needs {needed} interface(s), {given} were opened")]
    Interfaces {
        /// The function.
        kind: &'static str,
        /// Its interface count.
        needed: usize,
        /// How many were given.
        given: usize,
    },
}

impl Function {
    /// `kind` or `kind,key=value,...` (a bare `key` is `key=true`).
    pub fn parse(spec: &str) -> Result<Function, OptionError> {
        let (kind, list) = spec.split_once(',').unwrap_or((spec, ""));
        let mut function = Function::with_options(kind, &[])?;
        function.options_mut().apply_list(list)?;
        Ok(function)
    }

    /// `kind` with `options` set in order.
    pub fn with_options(kind: &str, options: &[(String, String)]) -> Result<Function, OptionError> {
        let mut function = match kind.trim() {
            "gadget-zero" => Function::GadgetZero(gadget_zero::Options::default()),
            "acm" => Function::Acm(acm::Options::default()),
            "hid-keyboard" => Function::Hid(hid::Options {
                kind: hid::Kind::Keyboard,
                input: None,
            }),
            "hid-mouse" => Function::Hid(hid::Options {
                kind: hid::Kind::Mouse,
                input: None,
            }),
            // Until report-descriptor= is given the descriptor is empty: start refuses it.
            "hid" => Function::Hid(hid::Options {
                kind: hid::Kind::Generic(Vec::new()),
                input: None,
            }),
            "msc" => Function::Msc(msc::Options::default()),
            "audio" => Function::Audio(audio::Options::default()),
            "ncm" => Function::Ncm(ncm::Options::new(ncm::Model::Ncm)),
            "ecm" => Function::Ecm(ncm::Options::new(ncm::Model::Ecm)),
            other => {
                return Err(OptionError::Kind {
                    given: other.to_owned(),
                    known: KINDS,
                });
            }
        };
        for (key, value) in options {
            function.options_mut().set(key, value)?;
        }
        Ok(function)
    }

    fn options_mut(&mut self) -> &mut dyn FunctionOptions {
        match self {
            Function::GadgetZero(o) => o,
            Function::Acm(o) => o,
            Function::Hid(o) => o,
            Function::Msc(o) => o,
            Function::Audio(o) => o,
            Function::Ncm(o) | Function::Ecm(o) => o,
        }
    }

    /// The function's name, as `--function` takes it.
    pub fn kind(&self) -> &'static str {
        match self {
            Function::GadgetZero(_) => "gadget-zero",
            Function::Acm(_) => "acm",
            Function::Hid(o) => match o.kind {
                hid::Kind::Keyboard => "hid-keyboard",
                hid::Kind::Mouse => "hid-mouse",
                hid::Kind::Generic(_) => "hid",
            },
            Function::Msc(_) => "msc",
            Function::Audio(_) => "audio",
            Function::Ncm(_) => "ncm",
            Function::Ecm(_) => "ecm",
        }
    }

    /// What the function's `instance`-th copy (counted per kind, from 0) adds to a device.
    /// Every interface has an InterfaceGUID: its own fixed one where the function has one
    /// (Gadget Zero's and audio's first copy), otherwise [`interface_guid`]'s.
    pub fn fragment(&self, instance: usize) -> Fragment {
        let mut fragment = self.own_fragment(instance);
        let kind = self.kind();
        for (index, iface) in fragment.interfaces.iter_mut().enumerate() {
            if iface.guid.is_none() {
                iface.guid = Some(interface_guid(kind, instance, index));
            }
        }
        fragment
    }

    fn own_fragment(&self, instance: usize) -> Fragment {
        match self {
            Function::GadgetZero(o) => gadget_zero::fragment(o, instance),
            Function::Acm(_) => Fragment {
                device: acm::device_section(),
                // Numbered as if alone; compose moves them (and the CDC descriptors).
                interfaces: acm::interfaces(instance, 0),
                associations: vec![acm::association(instance)],
            },
            Function::Hid(o) => Fragment {
                device: hid::device_section(&o.kind),
                interfaces: vec![hid::interface(&o.kind, instance)],
                associations: Vec::new(),
            },
            Function::Msc(o) => msc::fragment(o, instance),
            Function::Audio(o) => audio::fragment(o, instance),
            Function::Ncm(o) | Function::Ecm(o) => ncm::fragment(o, instance),
        }
    }

    /// Prepare the device side and spawn the function's service on `interfaces`, opened by
    /// the caller in the order of [`Function::fragment`]'s interfaces. Must be called within
    /// a tokio runtime.
    pub fn start<S: ServiceApi>(
        self,
        instance: usize,
        interfaces: Vec<S>,
    ) -> Result<JoinHandle<()>, StartError> {
        let kind = self.kind();
        let service = self.service(instance, interfaces)?;
        Ok(tokio::spawn(async move {
            match service.await {
                Ok(()) => tracing::info!(function = kind, "function ended"),
                Err(e) => tracing::error!(function = kind, error = %e, "function stopped"),
            }
        }))
    }

    /// Like [`Function::start`], but the service is returned to be awaited by the caller
    /// (`usbfn service` does, to learn when the daemon went away). It ends when the device
    /// goes away: with [`crate::Error::DeviceGone`] where the function reports it, `Ok` for
    /// the functions that run their interfaces in tasks of their own (acm, hid).
    pub fn service<S: ServiceApi>(
        self,
        instance: usize,
        interfaces: Vec<S>,
    ) -> Result<ServiceFuture, StartError> {
        let needed = self.fragment(instance).interfaces.len();
        if interfaces.len() != needed {
            return Err(StartError::Interfaces {
                kind: self.kind(),
                needed,
                given: interfaces.len(),
            });
        }
        let kind = self.kind();
        let mut interfaces = interfaces.into_iter();
        let missing = StartError::Interfaces {
            kind,
            needed,
            given: 0,
        };
        let service: ServiceFuture = match self {
            Function::GadgetZero(o) => {
                Box::pin(gadget_zero::run(interfaces.next().ok_or(missing)?, o))
            }
            Function::Acm(o) => {
                let (Some(control), Some(data)) = (interfaces.next(), interfaces.next()) else {
                    return Err(missing);
                };
                let side =
                    acm::DeviceSide::open(&o, instance).map_err(|source| StartError::Io {
                        what: "acm: making the pty".into(),
                        source,
                    })?;
                Box::pin(joined(acm::spawn(side, control, data)))
            }
            Function::Hid(o) => {
                let iface = interfaces.next().ok_or(missing)?;
                if o.kind.report_descriptor().is_empty() {
                    return Err(StartError::Invalid(
                        "hid needs report-descriptor=FILE (or use hid-keyboard or hid-mouse)"
                            .into(),
                    ));
                }
                let side =
                    hid::DeviceSide::open(&o, instance).map_err(|source| StartError::Io {
                        what: "hid: making the input FIFO".into(),
                        source,
                    })?;
                Box::pin(joined(hid::spawn(side, iface)))
            }
            Function::Msc(o) => {
                let iface = interfaces.next().ok_or(missing)?;
                let prepared =
                    msc::prepare(&o, instance).map_err(|e| StartError::Invalid(e.to_string()))?;
                Box::pin(msc::run(iface, prepared))
            }
            Function::Audio(o) => {
                let prepared = audio::prepare(o)?;
                let all: Vec<S> = interfaces.collect();
                if all.is_empty() {
                    return Err(missing);
                }
                Box::pin(audio::run(all, prepared))
            }
            Function::Ncm(o) | Function::Ecm(o) => {
                let (Some(control), Some(data)) = (interfaces.next(), interfaces.next()) else {
                    return Err(missing);
                };
                let (port, _network) = usbfn_net::start(o.network())?;
                Box::pin(ncm::run(control, data, o, instance, port))
            }
        };
        Ok(service)
    }
}

/// The InterfaceGUID of interface `index` (in [`Function::fragment`]'s order, from 0) of
/// the `instance`-th copy (per kind, from 0) of function `kind`, for those without a fixed
/// one: `{75736266-KKKK-4III-8NNN-000000000000}` with `75736266` ("usbf" in ASCII), `KKKK`
/// the kind's number (gadget-zero 1, acm 2, hid-keyboard 3, hid-mouse 4, hid 5, msc 6,
/// audio 7, ncm 8, ecm 9), `III` the instance and `NNN` the interface index (each modulo
/// 0x1000), all in lower-case hex. E.g. the first acm's control interface is
/// `{75736266-0002-4000-8000-000000000000}`, its data interface `...-8001-...`. A daemon
/// and a `usbfn service` given the same function list agree on them.
pub fn interface_guid(kind: &str, instance: usize, index: usize) -> String {
    let number = KIND_NUMBERS
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or(0, |(_, n)| *n);
    format!(
        "{{75736266-{number:04x}-4{:03x}-8{:03x}-000000000000}}",
        instance % 0x1000,
        index % 0x1000
    )
}

/// The kinds' numbers in [`interface_guid`]; never renumbered (services are configured by
/// them).
const KIND_NUMBERS: [(&str, u16); 9] = [
    ("gadget-zero", 1),
    ("acm", 2),
    ("hid-keyboard", 3),
    ("hid-mouse", 4),
    ("hid", 5),
    ("msc", 6),
    ("audio", 7),
    ("ncm", 8),
    ("ecm", 9),
];

/// A function that spawns its own tasks: its service ends when its task does.
async fn joined(task: JoinHandle<()>) -> Result<(), crate::Error> {
    if let Err(e) = task.await {
        tracing::error!(error = %e, "function task failed");
    }
    Ok(())
}

impl FunctionOptions for acm::Options {
    fn set(&mut self, key: &str, value: &str) -> Result<(), OptionError> {
        match key {
            "pty" => self.pty = Some(value.trim().into()),
            other => {
                return Err(OptionError::Unknown {
                    function: "acm",
                    key: other.to_owned(),
                    known: "pty",
                });
            }
        }
        Ok(())
    }
}

impl FunctionOptions for hid::Options {
    fn set(&mut self, key: &str, value: &str) -> Result<(), OptionError> {
        match key {
            "input" => self.input = Some(value.trim().into()),
            "report-descriptor" | "report_descriptor"
                if matches!(self.kind, hid::Kind::Generic(_)) =>
            {
                let path = std::path::Path::new(value.trim());
                let bytes = hid::read_report_descriptor(path).map_err(|_| OptionError::Value {
                    key: key.to_owned(),
                    value: value.to_owned(),
                    allowed: "a readable file holding a HID report descriptor",
                })?;
                self.kind = hid::Kind::Generic(bytes);
            }
            other => {
                return Err(OptionError::Unknown {
                    function: "hid",
                    key: other.to_owned(),
                    known: match self.kind {
                        hid::Kind::Generic(_) => "input, report-descriptor",
                        _ => "input",
                    },
                });
            }
        }
        Ok(())
    }
}

impl FunctionOptions for Function {
    fn set(&mut self, key: &str, value: &str) -> Result<(), OptionError> {
        self.options_mut().set(key, value)
    }
}

/// The per-kind instance number of each function (`acm`, `msc`, `acm` → 0, 0, 1). The
/// three HID kinds count together, since their interfaces and device-side ends share the
/// names `hid0`, `hid1`, ... (`hid-keyboard`, `hid-mouse` → 0, 1).
pub fn instances(functions: &[Function]) -> Vec<usize> {
    let family = |f: &Function| match f {
        Function::Hid(_) => "hid",
        other => other.kind(),
    };
    let mut seen: Vec<&'static str> = Vec::new();
    functions
        .iter()
        .map(|f| {
            let n = seen.iter().filter(|k| **k == family(f)).count();
            seen.push(family(f));
            n
        })
        .collect()
}

/// The device `functions` make: one function's own device, or a composite of several
/// ([`compose`]).
pub fn device_config(functions: &[Function]) -> DeviceConfig {
    compose(
        functions
            .iter()
            .zip(instances(functions))
            .map(|(f, n)| f.fragment(n))
            .collect(),
    )
}

/// Open each function's interfaces with `open` (by name) and start it; the handles in
/// order. Must be called within a tokio runtime.
pub fn start_all<S, F, E>(functions: &[Function], mut open: F) -> Result<Vec<JoinHandle<()>>, E>
where
    S: ServiceApi,
    F: FnMut(&str) -> Result<S, E>,
    E: From<StartError>,
{
    let mut handles = Vec::new();
    for (function, instance) in functions.iter().zip(instances(functions)) {
        let interfaces = function
            .fragment(instance)
            .interfaces
            .iter()
            .map(|i| open(&i.name))
            .collect::<Result<Vec<_>, E>>()?;
        handles.push(function.clone().start(instance, interfaces)?);
    }
    Ok(handles)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_errors() {
        let f = Function::parse("gadget-zero,qlen=4,pattern=1").expect("valid");
        let Function::GadgetZero(o) = &f else {
            panic!("gadget zero expected");
        };
        assert_eq!((o.qlen, o.pattern), (4, gadget_zero::Pattern::Mod63));
        assert!(matches!(
            Function::parse("teapot"),
            Err(OptionError::Kind { given, .. }) if given == "teapot"
        ));
        assert!(matches!(
            Function::parse("gadget-zero,nope=1"),
            Err(OptionError::Unknown { key, .. }) if key == "nope"
        ));
    }

    #[test]
    fn every_interface_has_a_stable_distinct_guid() {
        assert_eq!(
            interface_guid("acm", 0, 1),
            "{75736266-0002-4000-8001-000000000000}"
        );
        let functions: Vec<Function> = [
            "gadget-zero",
            "acm",
            "acm",
            "hid-keyboard",
            "hid-mouse",
            "msc",
            "audio",
            "ncm",
            "ecm",
            "gadget-zero",
        ]
        .iter()
        .map(|k| Function::parse(k).expect("valid"))
        .collect();
        let config = device_config(&functions);
        let guids: Vec<&str> = config
            .interfaces
            .iter()
            .map(|i| i.guid.as_deref().expect("a guid"))
            .collect();
        assert_eq!(
            guids[0],
            gadget_zero::INTERFACE_GUID,
            "the fixed one is kept"
        );
        assert_eq!(guids[1], "{75736266-0002-4000-8000-000000000000}");
        assert_eq!(guids[3], "{75736266-0002-4001-8000-000000000000}");
        let mut distinct = guids.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), guids.len());
        for g in &guids {
            assert!(
                g.parse::<usbfn_abi::InterfaceGuid>().is_ok(),
                "{g} is a valid InterfaceGUID"
            );
        }
        // Fewer functions (all of the above have more endpoints than one device may).
        let functions: Vec<Function> = ["acm", "hid-keyboard", "hid-mouse", "msc", "acm"]
            .iter()
            .map(|k| Function::parse(k).expect("valid"))
            .collect();
        assert_eq!(instances(&functions), [0, 0, 1, 0, 1]);
        usbfn_core::DeviceModel::build(&device_config(&functions))
            .expect("a keyboard and a mouse in one composite");
    }

    #[test]
    fn alone_a_function_keeps_its_own_device() {
        let o = gadget_zero::Options::default();
        assert_eq!(
            device_config(&[Function::GadgetZero(o.clone())]),
            gadget_zero::config_with(&o)
        );
    }

    #[test]
    fn composite_numbers_interfaces_and_endpoints() {
        let gz = Function::GadgetZero(gadget_zero::Options::default());
        let functions = [gz.clone(), gz];
        assert_eq!(instances(&functions), vec![0, 1]);
        let config = device_config(&functions);
        assert_eq!(
            (
                config.device.class,
                config.device.subclass,
                config.device.protocol
            ),
            (0xef, 2, 1)
        );
        let names: Vec<_> = config.interfaces.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["source-sink", "source-sink1"]);
        assert_eq!(
            config
                .interfaces
                .iter()
                .filter(|i| i.device_request_owner)
                .count(),
            1
        );
        let model = usbfn_core::DeviceModel::build(&config).expect("valid composite");
        let mut addresses: Vec<u8> = model.pipes().iter().map(|p| p.address.0).collect();
        let count = addresses.len();
        addresses.sort_unstable();
        addresses.dedup();
        assert_eq!(addresses.len(), count, "every endpoint address is distinct");
    }

    #[test]
    fn a_cdc_function_after_another_names_its_own_interfaces() {
        let functions = [
            Function::parse("gadget-zero").expect("valid"),
            Function::parse("ncm").expect("valid"),
        ];
        let config = device_config(&functions);
        let model = usbfn_core::DeviceModel::build(&config).expect("valid composite");
        let control = model
            .interfaces()
            .iter()
            .find(|i| i.alternates[0].class.0 == 2)
            .expect("the NCM control interface");
        assert_eq!(control.number, 1);
        let cd = &control.alternates[0].class_descriptors;
        let union = cd
            .windows(5)
            .find(|w| w[0] == 5 && w[1] == 0x24 && w[2] == 0x06)
            .expect("a Union descriptor");
        assert_eq!(
            &union[3..],
            [1, 2],
            "bControlInterface 1, bSubordinateInterface 2"
        );
        let assoc = &model.configurations()[0].associations[0];
        assert_eq!((assoc.first_interface, assoc.interface_count), (1, 2));
    }
}
