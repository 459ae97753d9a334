//! `usbfn service`: run a built-in function as a service process against `usbfn daemon`,
//! the way a Windows service opens its GenericUSBFn interface.
//!
//! The service waits for its interface's arrival in the runtime directory, opens it and runs
//! the function through [`usbfn::ServiceApi`], exactly the code `usbfn serve` runs
//! in-process. When the daemon goes away it waits for the interface to arrive again (unless
//! `--once`); when another service already has the interface it exits with an error.

use std::path::PathBuf;

use anyhow::{Context, bail};
use usbfn::Error;
use usbfn::functions::gadget_zero;
use usbfn_ipc::RemoteInterface;

use crate::daemon::shutdown_signal;

/// Arguments of `usbfn service`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  usbfn daemon --runtime-dir /tmp/usbfn &
  usbfn service gadget-zero --runtime-dir /tmp/usbfn --pattern 1
  usbfn service gadget-zero --runtime-dir /tmp/usbfn --once --timeout 3")]
pub(crate) struct Args {
    #[command(subcommand)]
    function: Function,
}

#[derive(Debug, clap::Subcommand)]
enum Function {
    /// Gadget Zero (source/sink, vendor requests 0x5b/0x5c), the function `usbfn serve` runs
    /// in-process.
    GadgetZero(GadgetZeroArgs),
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Example:
  usbfn service gadget-zero --runtime-dir /tmp/usbfn --qlen 8 --buflen 65536")]
struct GadgetZeroArgs {
    /// Directory of the interface sockets. [default: /run/usbfn as root,
    /// $XDG_RUNTIME_DIR/usbfn otherwise]
    #[arg(long, value_name = "DIR")]
    runtime_dir: Option<PathBuf>,
    /// The InterfaceGUID to open (default: Gadget Zero's).
    #[arg(long, default_value = gadget_zero::INTERFACE_GUID)]
    interface: String,
    /// Data pattern: 0 zeros, 1 `(i % wMaxPacketSize) % 63`.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=1))]
    pattern: u8,
    /// Transfers kept queued per pipe.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=256))]
    qlen: u16,
    /// Bytes per transfer.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    buflen: u32,
    /// Exit when the daemon goes away instead of waiting for the interface again, and fail
    /// if the interface does not appear within --timeout.
    #[arg(long)]
    once: bool,
    /// With --once: seconds to wait for the interface to appear.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0, value_parser = crate::util::seconds)]
    timeout: f64,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    match args.function {
        Function::GadgetZero(a) => {
            tokio::select! {
                r = gadget_zero_service(a) => r,
                () = shutdown_signal() => Ok(()),
            }
        }
    }
}

async fn gadget_zero_service(args: GadgetZeroArgs) -> anyhow::Result<()> {
    let dir = usbfn_ipc::path::runtime_dir_or_default(args.runtime_dir.as_deref())?;
    let options = gadget_zero::Options {
        pattern: if args.pattern == 1 {
            gadget_zero::Pattern::Mod63
        } else {
            gadget_zero::Pattern::Zeros
        },
        qlen: usize::from(args.qlen),
        buflen: usize::try_from(args.buflen).context("--buflen")?,
        ..gadget_zero::Options::default()
    };
    loop {
        tracing::info!(
            "waiting for interface {} in {} (start `usbfn daemon --runtime-dir {}` if none runs)",
            args.interface,
            dir.display(),
            dir.display()
        );
        let opening = RemoteInterface::wait_and_open(&dir, &args.interface);
        let iface = if args.once {
            let limit = std::time::Duration::from_secs_f64(args.timeout);
            match tokio::time::timeout(limit, opening).await {
                Ok(r) => r,
                Err(_) => bail!(
                    "interface {} did not appear in {} within {} s: is `usbfn daemon` running with that --runtime-dir and a device that has this InterfaceGUID?",
                    args.interface,
                    dir.display(),
                    args.timeout
                ),
            }
        } else {
            opening.await
        }
        .with_context(|| format!("opening interface {} in {}", args.interface, dir.display()))?;
        println!(
            "usbfn service: gadget-zero opened {}",
            iface.path().display()
        );
        match gadget_zero::run(iface, options.clone()).await {
            Err(Error::DeviceGone) if !args.once => {
                println!("usbfn service: the daemon went away; waiting for the interface again");
            }
            Err(Error::DeviceGone) => bail!("the daemon went away"),
            Err(e) => return Err(e).context("gadget zero stopped"),
            Ok(()) => return Ok(()),
        }
    }
}
