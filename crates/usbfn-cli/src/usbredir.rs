//! `--usbredir ADDR` / `--usbredir-connect ADDR` of `usbfn serve` and `usbfn daemon`: the
//! devices for QEMU guests, one usbredir endpoint per device (its device file's
//! `[usbip] usbredir`, or the flag's address counted up in device order), with the `--pcap`
//! tap on each device's bus.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use usbfn::bus_tap::{PcapBusTap, PcapSink};
use usbfn::{BusSpeed, Controller};
use usbfn_usbredir::host::HostOptions;
use usbfn_usbredir::server::{self, Address, Listener};

use crate::device_file::UsbipSection;
use crate::server_args::ServerArgs;

/// The usbredir flags `serve` and `daemon` share.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct UsbredirArgs {
    /// Serve the devices to QEMU guests over usbredir instead of USB/IP, listening on
    /// HOST:PORT or unix:PATH (QEMU's `-chardev socket` connects, `-device usb-redir` uses
    /// it; the exact arguments are printed). Several devices: one port each, counting up
    /// (Unix: PATH, PATH.2, ...), unless a device file names its own (`[usbip] usbredir`).
    /// Loopback only unless --allow-remote.
    #[arg(long, value_name = "ADDR", value_parser = Address::parse,
          conflicts_with = "usbredir_connect")]
    pub(crate) usbredir: Option<Address>,
    /// Like --usbredir, but connect to a QEMU whose usb-redir chardev listens
    /// (`server=on`) at HOST:PORT or unix:PATH; retried every second.
    #[arg(long, value_name = "ADDR", value_parser = Address::parse)]
    pub(crate) usbredir_connect: Option<Address>,
}

/// Where each device is served, when usbredir is asked for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    /// One address per device, in device order.
    pub(crate) addresses: Vec<Address>,
    /// usbfn listens (QEMU connects), or connects to a listening QEMU.
    pub(crate) listens: bool,
}

impl UsbredirArgs {
    /// The usbredir plan for devices with these `[usbip]` sections: `None` when neither the
    /// flags nor any file ask for usbredir (the devices go over USB/IP). A device file's
    /// `usbredir` wins over the flag's counted address; without a flag every device needs
    /// its own key (usbfn does not serve USB/IP and usbredir at once).
    pub(crate) fn plan(
        &self,
        files: &[(String, &UsbipSection)],
        server: &ServerArgs,
    ) -> anyhow::Result<Option<Plan>> {
        let base = self.usbredir.as_ref().or(self.usbredir_connect.as_ref());
        let listens = self.usbredir_connect.is_none();
        if base.is_none() && files.iter().all(|(_, u)| u.usbredir.is_none()) {
            return Ok(None);
        }
        let mut addresses = Vec::with_capacity(files.len());
        for (n, (name, u)) in files.iter().enumerate() {
            let address = match (&u.usbredir, base) {
                (Some(a), _) => a.clone(),
                (None, Some(b)) => b.nth(n).map_err(anyhow::Error::msg)?,
                (None, None) => bail!(
                    "{name}: no usbredir address: other devices have `[usbip] usbredir`, so give this one its own (or pass --usbredir ADDR); USB/IP and usbredir are not served at once"
                ),
            };
            if let Address::Tcp(a) = &address
                && !a.ip().is_loopback()
                && !server.allow_remote
            {
                bail!(
                    "refusing usbredir on {a}: usbredir has no authentication, so anyone who can reach it can use the devices; pass --allow-remote to do it anyway"
                );
            }
            if addresses.contains(&address) && !matches!(&address, Address::Tcp(a) if a.port() == 0)
            {
                bail!("{name}: usbredir address {address} is already another device's");
            }
            addresses.push(address);
        }
        Ok(Some(Plan { addresses, listens }))
    }
}

/// SIGINT or SIGTERM, with both handlers installed now: call it before printing the lines a
/// caller waits for, so a signal sent right after them is not lost to the default action.
pub(crate) fn shutdown_signal_installed() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("watching SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("watching SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("signal received: stopping");
    })
}

/// The usbredir endpoints of running devices, until [`Endpoints::stop`].
pub(crate) struct Endpoints {
    stop_tx: tokio::sync::watch::Sender<bool>,
    tasks: tokio::task::JoinSet<std::io::Result<()>>,
    pcap: Option<PcapSink>,
}

impl Endpoints {
    /// No endpoint yet; `--pcap` (if given) is created now, so a bad path fails at start.
    pub(crate) fn new(server: &ServerArgs) -> anyhow::Result<Endpoints> {
        let pcap = match &server.pcap {
            Some(path) => {
                let file = std::fs::File::create(path)
                    .with_context(|| format!("creating the capture {}", path.display()))?;
                Some(
                    PcapSink::new(std::io::BufWriter::new(file)).with_context(|| {
                        format!("writing the capture header to {}", path.display())
                    })?,
                )
            }
            None => None,
        };
        let (stop_tx, _) = tokio::sync::watch::channel(false);
        Ok(Endpoints {
            stop_tx,
            tasks: tokio::task::JoinSet::new(),
            pcap,
        })
    }

    /// Serve device `n` (0-based, its number in the capture is `n + 1`) on `address`; the
    /// line to print (address, what, speed and QEMU's arguments).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn start(
        &mut self,
        n: usize,
        controller: Controller,
        address: &Address,
        listens: bool,
        speed: BusSpeed,
        idle_timeout: Option<f64>,
        what: &str,
    ) -> anyhow::Result<String> {
        if let Some(sink) = &self.pcap {
            // usbmon's device number is a u8: devices past 255 in one capture share 255 (a label only).
            let devnum = u8::try_from(n + 1).unwrap_or(u8::MAX);
            let tap = PcapBusTap::new(&controller, sink.clone(), 1, devnum);
            controller.set_bus_tap(Some(Arc::new(tap)));
        }
        let mut options = HostOptions {
            speed,
            ..HostOptions::default()
        };
        if let Some(s) = idle_timeout {
            options.idle_timeout = Duration::from_secs_f64(s);
        }
        let stop = self.stop_tx.subscribe();
        let shown = if listens {
            let listener = Listener::bind(address)
                .await
                .with_context(|| format!("listening for usbredir on {address}"))?;
            let bound = listener.local_addr()?;
            self.tasks
                .spawn(server::listen(controller, listener, options, stop));
            bound
        } else {
            self.tasks
                .spawn(server::connect(controller, address.clone(), options, stop));
            address.clone()
        };
        let id = format!("usbredir{n}");
        let (controller_dev, bus) = match speed {
            BusSpeed::Super => ("qemu-xhci,id=xhci", "xhci.0"),
            BusSpeed::High => ("usb-ehci,id=ehci", "ehci.0"),
            BusSpeed::Full => ("piix3-usb-uhci,id=uhci", "uhci.0"),
        };
        let mut line = format!(
            "  {shown}  {what} ({speed} speed)   qemu: -device {controller_dev} -chardev {} -device usb-redir,chardev={id},bus={bus}",
            shown.qemu_chardev(&id, listens),
        );
        if matches!(&shown, Address::Tcp(a) if !a.ip().is_loopback()) {
            line.push_str(&format!(
                "\nwarning: usbredir on {shown} without authentication (--allow-remote)"
            ));
        }
        Ok(line)
    }

    /// Stop every endpoint (guests see their connection close) and wait for them.
    pub(crate) async fn stop(mut self) {
        let _ = self.stop_tx.send(true);
        while let Some(r) = self.tasks.join_next().await {
            if let Ok(Err(e)) = r {
                tracing::warn!(error = %e, "usbredir endpoint ended");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        usbredir: UsbredirArgs,
    }

    fn section(addr: Option<&str>) -> UsbipSection {
        UsbipSection {
            usbredir: addr.map(|a| Address::parse(a).unwrap()),
            ..UsbipSection::default()
        }
    }

    fn plan(flags: &[&str], files: &[Option<&str>]) -> anyhow::Result<Option<Plan>> {
        let cli = Cli::try_parse_from(std::iter::once("t").chain(flags.iter().copied())).unwrap();
        let sections: Vec<UsbipSection> = files.iter().map(|a| section(*a)).collect();
        let named: Vec<(String, &UsbipSection)> = sections
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("dev{i}.toml"), s))
            .collect();
        cli.usbredir.plan(&named, &cli.server)
    }

    fn addrs(p: &Plan) -> Vec<String> {
        p.addresses.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_file_key_wins_and_the_rest_count_up_from_the_flag() {
        assert_eq!(plan(&[], &[None, None]).unwrap(), None);
        let p = plan(
            &["--usbredir", "127.0.0.1:4000"],
            &[None, Some("127.0.0.1:5000"), None],
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            addrs(&p),
            ["127.0.0.1:4000", "127.0.0.1:5000", "127.0.0.1:4002"]
        );
        assert!(p.listens);
        let p = plan(&[], &[Some("unix:/tmp/a"), Some("127.0.0.1:4001")])
            .unwrap()
            .unwrap();
        assert_eq!(addrs(&p), ["unix:/tmp/a", "127.0.0.1:4001"]);
        let p = plan(&["--usbredir-connect", "127.0.0.1:4000"], &[None])
            .unwrap()
            .unwrap();
        assert!(!p.listens);
    }

    #[test]
    fn mixed_duplicate_and_remote_addresses_are_refused_with_the_reason() {
        let e = plan(&[], &[Some("127.0.0.1:4000"), None]).unwrap_err();
        assert!(
            e.to_string().contains("dev1.toml: no usbredir address"),
            "{e}"
        );
        let e = plan(&[], &[Some("127.0.0.1:4000"), Some("127.0.0.1:4000")]).unwrap_err();
        assert!(e.to_string().contains("already another device's"), "{e}");
        let e = plan(&[], &[Some("192.0.2.1:4000")]).unwrap_err();
        assert!(e.to_string().contains("--allow-remote"), "{e}");
        assert!(
            plan(&["--allow-remote"], &[Some("192.0.2.1:4000")])
                .unwrap()
                .is_some()
        );
        // Port 0 (any free port) may repeat: each device gets its own.
        assert!(plan(&[], &[Some("127.0.0.1:0"), Some("127.0.0.1:0")]).is_ok());
    }
}
