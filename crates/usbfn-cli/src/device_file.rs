//! The device file: one TOML file that describes one device, read by `serve`, `daemon` and
//! `config check` (reference: `docs/config.md`).
//!
//! - `[device]`, `[[configurations]]`, `[[interfaces]]` (with `[[interfaces.endpoints]]` and
//!   `[[interfaces.alternates]]`), `[[associations]]`, `[control]`: the descriptors, as
//!   [`usbfn_core::config`] reads them. An interface with a `guid` is opened by a service
//!   process through the daemon.
//! - `[function]`: a built-in function that serves the device in-process (`kind =
//!   "gadget-zero"` and its options); it brings its own descriptors, so `[device]` and the
//!   rest are left out.
//! - `[usbip]`: how the device is exported: `speed`, and the server's limits.
//!
//! The old `serve --config` format (`[[device]]` entries naming built-in functions) still
//! works with `serve`, with a warning saying what to write instead; elsewhere it is an error
//! that says so.

use std::path::Path;

use anyhow::{Context, bail};
use serde::Deserialize;
use usbfn::DeviceConfig;
use usbfn::functions::gadget_zero;
use usbfn_core::config::{
    AssociationSection, ConfigurationSection, ControlSection, DeviceSection, InterfaceSection,
};

use crate::serve::SpeedArg;

/// A device file, read and validated.
#[derive(Debug, Clone)]
pub(crate) struct DeviceFile {
    /// The descriptors.
    pub(crate) config: DeviceConfig,
    /// The built-in function serving it in-process, if any.
    pub(crate) function: Option<Builtin>,
    /// `[usbip]`.
    pub(crate) usbip: UsbipSection,
}

/// A built-in function and its options.
#[derive(Debug, Clone)]
pub(crate) enum Builtin {
    /// Gadget Zero.
    GadgetZero(gadget_zero::Options),
    /// `acm[,pty=PATH]`: a CDC-ACM serial port.
    Acm(usbfn::functions::acm::Options),
    /// `hid-keyboard`, `hid-mouse`, `hid,report-descriptor=FILE` (`input=PATH`).
    Hid(usbfn::functions::hid::Options),
}

impl Builtin {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Builtin::GadgetZero(_) => "gadget-zero",
            Builtin::Acm(_) => "acm",
            Builtin::Hid(o) => match o.kind {
                usbfn::functions::hid::Kind::Keyboard => "hid-keyboard",
                usbfn::functions::hid::Kind::Mouse => "hid-mouse",
                usbfn::functions::hid::Kind::Generic(_) => "hid",
            },
        }
    }
}

/// `[usbip]`: how hosts see the device, and the server's limits (flags override them).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct UsbipSection {
    /// The speed hosts see (default: high).
    #[serde(default)]
    pub(crate) speed: Option<SpeedArg>,
    /// Seconds a peer may stall mid-message before it is dropped.
    #[serde(default)]
    pub(crate) idle_timeout_s: Option<f64>,
    /// Most connections served at once.
    #[serde(default)]
    pub(crate) max_connections: Option<usize>,
    /// Most URB bytes outstanding on one connection.
    #[serde(default)]
    pub(crate) max_outstanding_bytes: Option<usize>,
}

/// The file as TOML gives it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Repr {
    #[serde(default)]
    function: Option<FunctionSection>,
    #[serde(default)]
    usbip: UsbipSection,
    #[serde(default)]
    device: Option<DeviceSection>,
    #[serde(default)]
    configurations: Vec<ConfigurationSection>,
    #[serde(default)]
    interfaces: Vec<InterfaceSection>,
    #[serde(default)]
    associations: Vec<AssociationSection>,
    #[serde(default)]
    control: Option<ControlSection>,
}

/// `[function]`: `kind` and the function's options (each checked by the function itself,
/// which names the keys it knows).
#[derive(Debug, Deserialize)]
struct FunctionSection {
    kind: String,
    #[serde(flatten)]
    options: toml::Table,
}

/// A `[[device]]` entry of the old `serve --config` format.
#[derive(Debug, Deserialize)]
struct LegacyEntry {
    function: String,
    #[serde(default)]
    speed: Option<SpeedArg>,
    #[serde(flatten)]
    options: toml::Table,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Legacy {
    device: Vec<LegacyEntry>,
}

/// What to write instead of the old format.
const LEGACY_HELP: &str = "this is the old `serve --config` format ([[device]] entries); \
    write one device file per device instead, e.g. `[function]` with `kind = \"gadget-zero\"` \
    (and `[usbip]` `speed = \"high\"`), and pass --config once per device \
    (`usbfn config example gadget-zero`, docs/config.md)";

/// Read one device file.
pub(crate) fn load(path: &Path) -> anyhow::Result<DeviceFile> {
    match load_any(path)? {
        Loaded::One(d) => Ok(*d),
        Loaded::Legacy(_) => bail!("{}: {LEGACY_HELP}", path.display()),
    }
}

/// Read a device file, or a file in the old serve format (one device per entry, with a
/// warning).
pub(crate) fn load_serve(path: &Path) -> anyhow::Result<Vec<DeviceFile>> {
    match load_any(path)? {
        Loaded::One(d) => Ok(vec![*d]),
        Loaded::Legacy(devices) => {
            tracing::warn!("{}: {LEGACY_HELP}; it still works for now", path.display());
            Ok(devices)
        }
    }
}

enum Loaded {
    One(Box<DeviceFile>),
    Legacy(Vec<DeviceFile>),
}

fn load_any(path: &Path) -> anyhow::Result<Loaded> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Parse and validate the text of a device file; errors name the TOML path.
fn parse(text: &str) -> Result<Loaded, String> {
    let table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
    if table.get("device").is_some_and(toml::Value::is_array) {
        let legacy: Legacy = toml::from_str(text).map_err(|e| format!("{LEGACY_HELP}: {e}"))?;
        if legacy.device.is_empty() {
            return Err("no [[device]] entries".into());
        }
        return legacy
            .device
            .into_iter()
            .enumerate()
            .map(|(i, e)| {
                let at = format!("device[{}]", i + 1);
                let function = builtin(&at, &e.function, &e.options)?;
                Ok(DeviceFile {
                    config: builtin_config(&function),
                    function: Some(function),
                    usbip: UsbipSection {
                        speed: e.speed,
                        ..UsbipSection::default()
                    },
                })
            })
            .collect::<Result<_, String>>()
            .map(Loaded::Legacy);
    }
    let repr: Repr = toml::from_str(text).map_err(|e| e.to_string())?;
    check_usbip(&repr.usbip)?;
    let has_descriptors = repr.device.is_some()
        || !repr.interfaces.is_empty()
        || !repr.configurations.is_empty()
        || !repr.associations.is_empty();
    let (config, function) = match repr.function {
        Some(f) => {
            if has_descriptors {
                return Err(format!(
                    "function.kind = {:?}: a built-in function brings its own descriptors; \
                     remove [device], [[interfaces]], [[configurations]] and [[associations]], \
                     or remove [function] and serve the interfaces with services (guid = ...)",
                    f.kind
                ));
            }
            let function = builtin("function", &f.kind, &f.options)?;
            (builtin_config(&function), Some(function))
        }
        None => {
            let Some(device) = repr.device else {
                return Err(
                    "missing [device] (vendor_id, product_id, ...): a device file needs \
                     [device] and [[interfaces]], or [function] for a built-in function"
                        .into(),
                );
            };
            let config = DeviceConfig {
                device,
                configurations: repr.configurations,
                interfaces: repr.interfaces,
                associations: repr.associations,
                control: repr.control.unwrap_or_default(),
            };
            (config, None)
        }
    };
    usbfn_core::DeviceModel::build(&config).map_err(|e| e.to_string())?;
    Ok(Loaded::One(Box::new(DeviceFile {
        config,
        function,
        usbip: repr.usbip,
    })))
}

fn check_usbip(u: &UsbipSection) -> Result<(), String> {
    if let Some(t) = u.idle_timeout_s
        && !(t > 0.0 && t <= 86_400.0)
    {
        return Err(format!(
            "usbip.idle_timeout_s = {t}: seconds between 0 and 86400 are accepted"
        ));
    }
    if u.max_connections == Some(0) {
        return Err("usbip.max_connections = 0: at least 1 is needed".into());
    }
    if let Some(b) = u.max_outstanding_bytes
        && b < crate::server_args::MIN_OUTSTANDING_BYTES
    {
        return Err(format!(
            "usbip.max_outstanding_bytes = {b}: at least {} (one 64 KiB URB) is needed",
            crate::server_args::MIN_OUTSTANDING_BYTES
        ));
    }
    Ok(())
}

/// The built-in function `spec` (`gadget-zero`, optionally followed by `,key=value`
/// options, which win over `options`), with `options` from TOML keys; errors name `at`.
pub(crate) fn builtin(at: &str, spec: &str, options: &toml::Table) -> Result<Builtin, String> {
    let (kind, list) = spec.split_once(',').unwrap_or((spec, ""));
    let key = if at == "function" { "kind" } else { "function" };
    match kind.trim() {
        "gadget-zero" => {
            let mut o = gadget_zero::Options::default();
            for (name, value) in options {
                let text = match value {
                    toml::Value::Integer(n) => n.to_string(),
                    toml::Value::String(t) => t.clone(),
                    other => {
                        return Err(format!("{at}.{name} = {other}: a number is expected"));
                    }
                };
                o.set(name, &text).map_err(|e| option_error(at, &e))?;
            }
            o.apply_list(list)
                .map_err(|e| format!("{at}.{key} = {spec:?}: {}", option_error(at, &e)))?;
            Ok(Builtin::GadgetZero(o))
        }
        kind @ ("acm" | "hid-keyboard" | "hid-mouse" | "hid") => {
            use usbfn::functions::{acm, hid};
            let mut pairs: Vec<(String, String)> = Vec::new();
            for (name, value) in options {
                let toml::Value::String(text) = value else {
                    return Err(format!(
                        "{at}.{name} = {value}: a path (string) is expected"
                    ));
                };
                pairs.push((name.clone(), text.clone()));
            }
            for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                let (k, v) = item
                    .split_once('=')
                    .ok_or_else(|| format!("{at}.{key} = {spec:?}: {item:?} is not key=value"))?;
                pairs.push((k.trim().to_owned(), v.trim().to_owned()));
            }
            let path = |name: &str| {
                pairs
                    .iter()
                    .rev()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| std::path::PathBuf::from(v))
            };
            let known: &[&str] = match kind {
                "acm" => &["pty"],
                "hid" => &["input", "report-descriptor"],
                _ => &["input"],
            };
            if let Some((k, _)) = pairs.iter().find(|(k, _)| !known.contains(&k.as_str())) {
                return Err(format!(
                    "{at}: {kind} has no option {k:?} (options: {})",
                    known.join(", ")
                ));
            }
            Ok(match kind {
                "acm" => Builtin::Acm(acm::Options { pty: path("pty") }),
                _ => {
                    let kind = match kind {
                        "hid-keyboard" => hid::Kind::Keyboard,
                        "hid-mouse" => hid::Kind::Mouse,
                        _ => {
                            let file = path("report-descriptor")
                                .ok_or_else(|| format!("{at}: hid needs report-descriptor=FILE"))?;
                            hid::Kind::Generic(
                                hid::read_report_descriptor(&file).map_err(|e| e.to_string())?,
                            )
                        }
                    };
                    Builtin::Hid(hid::Options {
                        kind,
                        input: path("input"),
                    })
                }
            })
        }
        other => Err(format!(
            "{at}.{key} = {other:?}: the built-in functions are \"gadget-zero\", \"acm\", \"hid-keyboard\", \"hid-mouse\", \"hid\""
        )),
    }
}

/// `function.qlen = 0: 1..=256 accepted`, or the function's own message.
fn option_error(at: &str, e: &gadget_zero::OptionError) -> String {
    match e {
        gadget_zero::OptionError::Value {
            key,
            value,
            allowed,
        } => format!("{at}.{key} = {value}: {allowed} accepted"),
        other => format!("{at}: {other}"),
    }
}

/// The descriptors a built-in function brings.
pub(crate) fn builtin_config(function: &Builtin) -> DeviceConfig {
    match function {
        Builtin::GadgetZero(options) => gadget_zero::config_with(options),
        Builtin::Acm(_) => usbfn::functions::acm::config(),
        Builtin::Hid(options) => usbfn::functions::hid::config(&options.kind),
    }
}

impl DeviceFile {
    /// `0525:a4a0 "Gadget Zero", 1 interface(s), served by gadget-zero`.
    pub(crate) fn summary(&self) -> String {
        let d = &self.config.device;
        let served = match &self.function {
            Some(f) => format!("served in-process by {}", f.name()),
            None => "served by service processes through `usbfn daemon`".to_owned(),
        };
        format!(
            "{:04x}:{:04x} {:?}, {} interface(s), {served}",
            d.vendor_id,
            d.product_id,
            d.product.as_deref().unwrap_or(""),
            self.config.interfaces.len()
        )
    }
}

/// The files `usbfn config example` prints (also in `examples/devices/`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ExampleKind {
    /// A vendor-class bulk loopback, served by a service process (Python or Rust).
    Loopback,
    /// A HID boot keyboard.
    Keyboard,
    /// Two functions in one device, grouped by an interface association.
    Composite,
    /// The built-in Gadget Zero, served in-process.
    GadgetZero,
}

/// Every example, by kind.
pub(crate) const EXAMPLES: &[(ExampleKind, &str)] = &[
    (
        ExampleKind::Loopback,
        include_str!("../../../examples/devices/loopback.toml"),
    ),
    (
        ExampleKind::Keyboard,
        include_str!("../../../examples/devices/keyboard.toml"),
    ),
    (
        ExampleKind::Composite,
        include_str!("../../../examples/devices/composite.toml"),
    ),
    (
        ExampleKind::GadgetZero,
        include_str!("../../../examples/devices/gadget-zero.toml"),
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Result<DeviceFile, String> {
        match parse(text)? {
            Loaded::One(d) => Ok(*d),
            Loaded::Legacy(_) => Err("legacy".into()),
        }
    }

    #[test]
    fn every_example_is_a_valid_device() {
        for (kind, text) in EXAMPLES {
            let d = one(text).unwrap_or_else(|e| panic!("{kind:?}: {e}"));
            assert!(!d.config.interfaces.is_empty(), "{kind:?}");
        }
    }

    #[test]
    fn a_builtin_function_brings_its_descriptors() {
        let d = one("[function]\nkind = \"gadget-zero\"\npattern = 1\n[usbip]\nspeed = \"full\"\n")
            .expect("valid");
        assert_eq!(d.config, gadget_zero::config());
        assert!(matches!(
            d.function,
            Some(Builtin::GadgetZero(gadget_zero::Options {
                pattern: gadget_zero::Pattern::Mod63,
                ..
            }))
        ));
        assert!(matches!(d.usbip.speed, Some(SpeedArg::Full)));
    }

    #[test]
    fn gadget_zero_options_from_keys_and_the_function_list() {
        let d = one("[function]\nkind = \"gadget-zero,isoc_mult=2\"\nisoc_interval = 1\nisoc_mult = 1\nint_maxpacket = 64\n")
            .expect("valid");
        let Some(Builtin::GadgetZero(o)) = d.function else {
            panic!("gadget zero");
        };
        assert_eq!((o.isoc_interval, o.isoc_mult, o.int_maxpacket), (1, 2, 64));
        assert_eq!(o.isoc_maxpacket, 1024, "the kernel's default");
        let err =
            one("[function]\nkind = \"gadget-zero\"\nisoc_maxburst = 16\n").expect_err("range");
        assert!(
            err.contains("function.isoc_maxburst = 16: 0..=15 accepted"),
            "{err}"
        );
        let err = one("[function]\nkind = \"gadget-zero,isoc_speed=3\"\n").expect_err("unknown");
        assert!(err.contains("no option \"isoc_speed\""), "{err}");
        let err =
            one("[[device]]\nfunction = \"gadget-zero\"\nqlen = 0\n").expect_err("legacy range");
        assert!(
            err.contains("device[1].qlen = 0: 1..=256 accepted"),
            "{err}"
        );
    }

    #[test]
    fn the_old_serve_format_still_parses_for_serve() {
        let text = "[[device]]\nfunction = \"gadget-zero\"\nspeed = \"full\"\n\n[[device]]\nfunction = \"gadget-zero\"\npattern = 1\n";
        let Ok(Loaded::Legacy(devices)) = parse(text) else {
            panic!("legacy");
        };
        assert_eq!(devices.len(), 2);
        assert!(matches!(devices[0].usbip.speed, Some(SpeedArg::Full)));
        let e = parse("[[device]]\nfunction = \"gadget-one\"\n")
            .err()
            .expect("unknown");
        assert!(
            e.contains("device[1].function") && e.contains("gadget-zero"),
            "{e}"
        );
    }

    #[test]
    fn mistakes_say_what_to_change() {
        let e =
            one("[function]\nkind = \"gadget-zero\"\n[device]\nvendor_id = 1\nproduct_id = 2\n")
                .expect_err("both");
        assert!(e.contains("brings its own descriptors"), "{e}");
        let e = one("[[interfaces]]\nname = \"x\"\n").expect_err("no device");
        assert!(e.contains("missing [device]"), "{e}");
        let e = one("[function]\nkind = \"gadget-zero\"\n[usbip]\nmax_connections = 0\n")
            .expect_err("zero");
        assert!(e.contains("usbip.max_connections"), "{e}");
        let e = one("[device]\nvendor_id = 1\nproduct_id = 2\nvendorid = 3\n").expect_err("typo");
        assert!(e.contains("vendorid") && e.contains("line 4"), "{e}");
    }
}
