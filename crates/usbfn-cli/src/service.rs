//! `usbfn service`: run a built-in function as a service process against `usbfn daemon`,
//! the way a Windows service opens its GenericUSBFn interface.
//!
//! The service waits for its interfaces' arrival in the runtime directory (each named by its
//! InterfaceGUID: the function's own, `usbfn::functions::interface_guid`), opens them and
//! runs the function through [`usbfn::ServiceApi`], exactly the code `usbfn serve` runs
//! in-process. When the daemon goes away it waits for the interfaces to arrive again (unless
//! `--once`); when another service already has an interface it exits with an error.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use usbfn::Error;
use usbfn::functions::{Function, FunctionOptions};
use usbfn_ipc::RemoteInterface;

use crate::daemon::shutdown_signal;

/// Arguments of `usbfn service`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  usbfn daemon --runtime-dir /tmp/usbfn &
  usbfn service gadget-zero --runtime-dir /tmp/usbfn --pattern 1
  usbfn service gadget-zero --runtime-dir /tmp/usbfn --once --timeout 3
  usbfn daemon --runtime-dir /tmp/usbfn --function acm --function msc --services external &
  usbfn service acm,pty=/tmp/ttyUSBFN --runtime-dir /tmp/usbfn &
  usbfn service msc,image=disk.img --runtime-dir /tmp/usbfn
  usbfn service acm --instance 1 --runtime-dir /tmp/usbfn   # the device's second acm")]
pub(crate) struct Args {
    /// The function and its options, as `usbfn serve --function` takes them
    /// (`KIND[,key=value...]`; docs/config.md lists the keys). Options that shape the
    /// descriptors (e.g. gadget-zero's, hid's report-descriptor) must match the daemon's.
    #[arg(value_name = "KIND[,KEY=VALUE...]")]
    function: String,
    /// Which copy of this kind in the daemon's device (0 for the first acm, 1 for the
    /// second, ...): it selects the InterfaceGUIDs and the device-side names (acm1, ...).
    #[arg(long, value_name = "N", default_value_t = 0)]
    instance: usize,
    /// Directory of the interface sockets. [default: /run/usbfn as root,
    /// $XDG_RUNTIME_DIR/usbfn otherwise]
    #[arg(long, value_name = "DIR")]
    runtime_dir: Option<PathBuf>,
    /// The InterfaceGUID to open, instead of the function's own; repeat, in the function's
    /// interface order, for a function of several interfaces (for a device file whose
    /// interfaces have guids of their own).
    #[arg(long, value_name = "GUID")]
    interface: Vec<String>,
    /// Gadget Zero: data pattern, 0 zeros, 1 `(i % wMaxPacketSize) % 63` (as `pattern=`).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=1))]
    pattern: Option<u8>,
    /// Gadget Zero: transfers kept queued per pipe (as `qlen=`). [default: 32]
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    qlen: Option<u16>,
    /// Gadget Zero: bytes per transfer (as `buflen=`). [default: 4096]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    buflen: Option<u32>,
    /// Exit when the daemon goes away instead of waiting for the interfaces again, and fail
    /// if they do not appear within --timeout.
    #[arg(long)]
    once: bool,
    /// With --once: seconds to wait for the interfaces to appear.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0, value_parser = crate::util::seconds)]
    timeout: f64,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    tokio::select! {
        r = service(args) => r,
        () = shutdown_signal() => Ok(()),
    }
}

/// The function `args` name, with Gadget Zero's flags as its options.
fn function(args: &Args) -> anyhow::Result<Function> {
    let spec = args.function.as_str();
    let mut function = Function::parse(spec).map_err(|e| anyhow::anyhow!("{spec:?}: {e}"))?;
    let flags = [
        ("pattern", args.pattern.map(u32::from)),
        ("qlen", args.qlen.map(u32::from)),
        ("buflen", args.buflen),
    ];
    for (key, value) in flags {
        let Some(value) = value else { continue };
        if function.kind() != "gadget-zero" {
            bail!(
                "--{key} is Gadget Zero's; give {}'s options after its kind ({},key=value)",
                function.kind(),
                function.kind()
            );
        }
        function
            .set(key, &value.to_string())
            .map_err(|e| anyhow::anyhow!("--{key} {value}: {e}"))?;
    }
    Ok(function)
}

async fn service(args: Args) -> anyhow::Result<()> {
    let dir = usbfn_ipc::path::runtime_dir_or_default(args.runtime_dir.as_deref())?;
    let function = function(&args)?;
    let kind = function.kind();
    let own: Vec<String> = function
        .fragment(args.instance)
        .interfaces
        .iter()
        .filter_map(|i| i.guid.clone())
        .collect();
    let guids = if args.interface.is_empty() {
        own
    } else if args.interface.len() == own.len() {
        args.interface.clone()
    } else {
        bail!(
            "{kind} has {} interface(s): give --interface once per interface, in order ({} given)",
            own.len(),
            args.interface.len()
        );
    };
    loop {
        for guid in &guids {
            tracing::info!(
                "waiting for interface {guid} in {} (start `usbfn daemon --runtime-dir {}` if none runs)",
                dir.display(),
                dir.display()
            );
        }
        let opening = open_all(&dir, &guids);
        let interfaces = if args.once {
            let limit = Duration::from_secs_f64(args.timeout);
            match tokio::time::timeout(limit, opening).await {
                Ok(r) => r,
                Err(_) => bail!(
                    "interface {} did not appear in {} within {} s: is `usbfn daemon` running with that --runtime-dir and a device that has this InterfaceGUID?",
                    guids.join(", "),
                    dir.display(),
                    args.timeout
                ),
            }
        } else {
            opening.await
        }?;
        let paths: Vec<String> = interfaces
            .iter()
            .map(|i| i.path().display().to_string())
            .collect();
        println!("usbfn service: {kind} opened {}", paths.join(", "));
        let running = function
            .clone()
            .service(args.instance, interfaces)
            .with_context(|| format!("starting {kind}"))?;
        match running.await {
            Err(Error::DeviceGone) | Ok(()) if !args.once => {
                println!("usbfn service: the daemon went away; waiting for the interface again");
                // Not a busy loop if the function ends at once for another reason.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(Error::DeviceGone) => bail!("the daemon went away"),
            Err(e) => return Err(e).with_context(|| format!("{kind} stopped")),
            Ok(()) => return Ok(()),
        }
    }
}

/// Wait for each interface in turn and open it.
async fn open_all(dir: &std::path::Path, guids: &[String]) -> anyhow::Result<Vec<RemoteInterface>> {
    let mut interfaces = Vec::new();
    for guid in guids {
        let iface = RemoteInterface::wait_and_open(dir, guid)
            .await
            .with_context(|| format!("opening interface {guid} in {}", dir.display()))?;
        interfaces.push(iface);
    }
    Ok(interfaces)
}
