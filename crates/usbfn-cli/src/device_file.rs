//! The device file: one TOML file that describes one device, read by `serve`, `daemon` and
//! `config check` (reference: `docs/config.md`).
//!
//! - `[device]`, `[[configurations]]`, `[[interfaces]]` (with `[[interfaces.endpoints]]` and
//!   `[[interfaces.alternates]]`), `[[associations]]`, `[control]`: the descriptors, as
//!   [`usbfn_core::config`] reads them. An interface with a `guid` is opened by a service
//!   process through the daemon.
//! - `[function]`: a built-in function that serves the device in-process (`kind =
//!   "gadget-zero"` and its options); it brings its own descriptors, so `[device]` and the
//!   rest are left out. `[[function]]` (several tables) makes a composite device of several.
//! - `[usbip]`: how the device is exported: `speed`, and the server's limits.
//!
//! The old `serve --config` format (`[[device]]` entries naming built-in functions) still
//! works with `serve`, with a warning saying what to write instead; elsewhere it is an error
//! that says so.

use std::path::Path;

use anyhow::{Context, bail};
use serde::Deserialize;
use usbfn::DeviceConfig;
use usbfn::functions::{self, Function, FunctionOptions, OptionError};
use usbfn_core::config::{
    AssociationSection, ConfigurationSection, ControlSection, DeviceSection, InterfaceSection,
};

use usbfn_usbredir::server::Address;

use crate::serve::SpeedArg;

/// A device file, read and validated.
#[derive(Debug, Clone)]
pub(crate) struct DeviceFile {
    /// The descriptors.
    pub(crate) config: DeviceConfig,
    /// The built-in functions serving it in-process, in interface order (none: service
    /// processes serve it).
    pub(crate) functions: Vec<Function>,
    /// `[usbip]`.
    pub(crate) usbip: UsbipSection,
}

/// `acm + msc`: the kinds of `functions`, for messages.
pub(crate) fn kinds(functions: &[Function]) -> String {
    functions
        .iter()
        .map(Function::kind)
        .collect::<Vec<_>>()
        .join(" + ")
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
    /// The kernel's send buffer of each connection: bytes (an integer or `"256K"`) or
    /// `"auto"`.
    #[serde(default, deserialize_with = "send_buffer")]
    pub(crate) send_buffer: Option<usbfn_usbip::server::SendBuffer>,
    /// Serve this device over usbredir at this address (`HOST:PORT` or `unix:PATH`).
    #[serde(default, deserialize_with = "usbredir_address")]
    pub(crate) usbredir: Option<Address>,
}

/// `send_buffer = 262144`, `"256K"` or `"auto"`.
fn send_buffer<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<usbfn_usbip::server::SendBuffer>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Bytes(u64),
        Text(String),
    }
    let text = match Repr::deserialize(d)? {
        Repr::Bytes(n) => n.to_string(),
        Repr::Text(t) => t,
    };
    crate::server_args::send_buffer(&text)
        .map(Some)
        .map_err(|e| serde::de::Error::custom(format!("send_buffer = {text:?}: {e}")))
}

/// `usbredir = "127.0.0.1:4000"` or `"unix:/run/usbfn/qemu.sock"`.
fn usbredir_address<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Address>, D::Error> {
    let text = String::deserialize(d)?;
    Address::parse(&text)
        .map(Some)
        .map_err(|e| serde::de::Error::custom(format!("usbredir = {text:?}: {e}")))
}

/// The file as TOML gives it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Repr {
    #[serde(default)]
    function: Option<OneOrMany>,
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

/// `[function]` (one) or `[[function]]` (several, a composite device).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(FunctionSection),
    Many(Vec<FunctionSection>),
}

/// A `[[device]]` entry of the old `serve --config` format.
#[derive(Debug, Deserialize)]
struct LegacyEntry {
    function: String,
    #[serde(default)]
    speed: Option<SpeedArg>,
    #[serde(default, deserialize_with = "usbredir_address")]
    usbredir: Option<Address>,
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
                    config: functions::device_config(std::slice::from_ref(&function)),
                    functions: vec![function],
                    usbip: UsbipSection {
                        speed: e.speed,
                        usbredir: e.usbredir,
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
    let (config, functions) = match repr.function {
        Some(f) => {
            let sections = match f {
                OneOrMany::One(f) => vec![("function".to_owned(), f)],
                OneOrMany::Many(list) => list
                    .into_iter()
                    .enumerate()
                    .map(|(i, f)| (format!("function[{}]", i + 1), f))
                    .collect(),
            };
            let Some((_, first)) = sections.first() else {
                return Err("[[function]] is empty: name at least one function".into());
            };
            if has_descriptors {
                return Err(format!(
                    "function.kind = {:?}: a built-in function brings its own descriptors; \
                     remove [device], [[interfaces]], [[configurations]] and [[associations]], \
                     or remove [function] and serve the interfaces with services (guid = ...)",
                    first.kind
                ));
            }
            let functions = sections
                .iter()
                .map(|(at, f)| builtin(at, &f.kind, &f.options))
                .collect::<Result<Vec<_>, _>>()?;
            (functions::device_config(&functions), functions)
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
            (config, Vec::new())
        }
    };
    usbfn_core::DeviceModel::build(&config).map_err(|e| e.to_string())?;
    Ok(Loaded::One(Box::new(DeviceFile {
        config,
        functions,
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

/// The built-in function `spec` (`KIND`, optionally followed by `,key=value` options, which
/// win over `options`), with `options` from TOML keys (a list sets the key once per item, in
/// order); errors name `at`.
pub(crate) fn builtin(at: &str, spec: &str, options: &toml::Table) -> Result<Function, String> {
    let (kind, list) = spec.split_once(',').unwrap_or((spec, ""));
    let key = if at.starts_with("function") {
        "kind"
    } else {
        "function"
    };
    let mut pairs = Vec::new();
    for (name, value) in options {
        let items = match value {
            toml::Value::Array(items) => items.iter().collect(),
            one => vec![one],
        };
        for item in items {
            let text = match item {
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::String(t) => t.clone(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Float(f) => f.to_string(),
                // A table (e.g. one of msc's `luns`) is one option value, `k=v;k=v`.
                toml::Value::Table(t) => t
                    .iter()
                    .map(|(k, v)| match v {
                        toml::Value::String(s) => format!("{k}={s}"),
                        v => format!("{k}={v}"),
                    })
                    .collect::<Vec<_>>()
                    .join(";"),
                other => {
                    return Err(format!(
                        "{at}.{name} = {other}: a number, a string or true/false is expected"
                    ));
                }
            };
            pairs.push((name.clone(), text));
        }
    }
    let mut function = Function::with_options(kind, &pairs).map_err(|e| match e {
        OptionError::Kind { .. } => format!("{at}.{key} = {kind:?}: {e}"),
        e => option_error(at, &e),
    })?;
    function
        .apply_list(list)
        .map_err(|e| format!("{at}.{key} = {spec:?}: {}", option_error(at, &e)))?;
    Ok(function)
}

/// `function.qlen = 0: 1..=256 accepted`, or the function's own message.
fn option_error(at: &str, e: &OptionError) -> String {
    match e {
        OptionError::Value {
            key,
            value,
            allowed,
        } => format!("{at}.{key} = {value}: {allowed} accepted"),
        other => format!("{at}: {other}"),
    }
}

impl DeviceFile {
    /// `0525:a4a0 "Gadget Zero", 1 interface(s), served by gadget-zero`.
    pub(crate) fn summary(&self) -> String {
        let d = &self.config.device;
        let served = if self.functions.is_empty() {
            "served by service processes through `usbfn daemon`".to_owned()
        } else {
            format!("served in-process by {}", kinds(&self.functions))
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
    /// The built-in mass-storage function with two LUNs.
    Msc,
    /// The built-in CDC-NCM network adapter with its embedded network.
    Ncm,
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
    (
        ExampleKind::Msc,
        include_str!("../../../examples/devices/msc.toml"),
    ),
    (
        ExampleKind::Ncm,
        include_str!("../../../examples/devices/ncm.toml"),
    ),
];

#[cfg(test)]
mod tests {
    use super::*;
    use usbfn::functions::gadget_zero;

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
    fn msc_luns_from_a_table_list() {
        let d = one(
            "[function]\nkind = \"msc\"\nluns = [{ image = \"a.img\" }, { image = \"b.img\", ro = true, removable = true }]\n",
        )
        .expect("valid");
        let [Function::Msc(o)] = &d.functions[..] else {
            panic!("one msc function");
        };
        let luns: Vec<_> = o
            .luns
            .iter()
            .map(|l| (l.image.display().to_string(), l.read_only, l.removable))
            .collect();
        assert_eq!(
            luns,
            [("a.img".into(), false, false), ("b.img".into(), true, true)]
        );
        assert_eq!(d.config.interfaces[0].class, Some(0x08));
    }

    #[test]
    fn a_builtin_function_brings_its_descriptors() {
        let d = one("[function]\nkind = \"gadget-zero\"\npattern = 1\n[usbip]\nspeed = \"full\"\n")
            .expect("valid");
        assert_eq!(d.config, gadget_zero::config());
        assert!(matches!(
            &d.functions[..],
            [Function::GadgetZero(gadget_zero::Options {
                pattern: gadget_zero::Pattern::Mod63,
                ..
            })]
        ));
        assert!(matches!(d.usbip.speed, Some(SpeedArg::Full)));
    }

    #[test]
    fn gadget_zero_options_from_keys_and_the_function_list() {
        let d = one("[function]\nkind = \"gadget-zero,isoc_mult=2\"\nisoc_interval = 1\nisoc_mult = 1\nint_maxpacket = 64\n")
            .expect("valid");
        let [Function::GadgetZero(o)] = &d.functions[..] else {
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
    fn several_function_tables_make_a_composite_device() {
        let d = one(
            "[[function]]\nkind = \"gadget-zero\"\n[[function]]\nkind = \"gadget-zero\"\npattern = 1\n",
        )
        .expect("valid");
        assert_eq!(kinds(&d.functions), "gadget-zero + gadget-zero");
        assert_eq!(d.config.device.class, 0xef);
        assert_eq!(d.config.interfaces.len(), 2);
        let e = one("[[function]]\nkind = \"gadget-zero\"\n[[function]]\nkind = \"gadget-zero\"\nqlen = 0\n")
            .expect_err("range");
        assert!(e.contains("function[2].qlen = 0"), "{e}");
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

    #[test]
    fn send_buffer_takes_bytes_a_size_or_auto() {
        use usbfn_usbip::server::SendBuffer;
        let section = |value: &str| {
            one(&format!(
                "[function]\nkind = \"gadget-zero\"\n[usbip]\nsend_buffer = {value}\n"
            ))
            .map(|d| d.usbip.send_buffer)
        };
        assert_eq!(section("262144"), Ok(Some(SendBuffer::Fixed(262_144))));
        assert_eq!(section("\"64K\""), Ok(Some(SendBuffer::Fixed(65_536))));
        assert_eq!(section("\"auto\""), Ok(Some(SendBuffer::Auto)));
        let e = section("100").expect_err("too small");
        assert!(e.contains("send_buffer") && e.contains("16K"), "{e}");
        let e = section("\"big\"").expect_err("not a size");
        assert!(e.contains("send_buffer") && e.contains("auto"), "{e}");
    }
}
