//! `usbfn config`: check a device file (and see the descriptors hosts would get), or print a
//! commented one to start from.

use std::path::PathBuf;

use anyhow::Context;

use crate::device_file::{self, EXAMPLES};
use crate::serve::SpeedArg;

/// Arguments of `usbfn config`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  usbfn config example loopback > my-device.toml
  usbfn config check my-device.toml
  usbfn daemon --config my-device.toml")]
pub(crate) struct Args {
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ConfigCommand {
    /// Validate a device file and print the descriptors a host would read, as `usbfn probe`
    /// prints them (the device is built and enumerated in-process; nothing is exported).
    #[command(after_help = "Example:
  usbfn config check examples/devices/loopback.toml --speed super")]
    Check {
        /// The device file (TOML; see docs/config.md).
        file: PathBuf,
        /// The speed to enumerate at.
        #[arg(long, value_enum, default_value = "high")]
        speed: SpeedArg,
        /// Print the descriptors as JSON (as `usbfn probe --json`).
        #[arg(long)]
        json: bool,
    },
    /// Print a complete, commented device file to start from.
    #[command(after_help = "Example:
  usbfn config example keyboard > keyboard.toml")]
    Example {
        /// Which one.
        #[arg(value_enum, default_value = "loopback")]
        kind: device_file::ExampleKind,
    },
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        ConfigCommand::Check { file, speed, json } => {
            let device = device_file::load(&file)?;
            let (tree, usb_speed) = crate::local::enumerate(&device.config, speed.into())
                .await
                .with_context(|| format!("{}: enumerating the device", file.display()))?;
            let super_speed = usb_speed.0 >= usbfn_usbip::proto::UsbSpeed::SUPER.0;
            let speed = usb_speed.to_string();
            if json {
                let value = crate::probe::json::to_json("-", &speed, super_speed, &tree);
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                println!("{}: OK ({})", file.display(), device.summary());
                print!(
                    "{}",
                    crate::probe::lsusb::render("-", &speed, super_speed, &tree)
                );
            }
            Ok(())
        }
        ConfigCommand::Example { kind } => {
            let text = EXAMPLES
                .iter()
                .find(|(k, _)| *k == kind)
                .map(|(_, text)| *text)
                .unwrap_or_default();
            print!("{text}");
            Ok(())
        }
    }
}
