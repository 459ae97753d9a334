//! The USB/IP server flags `serve` and `daemon` share: where to listen, the capture file, and
//! what they print for a host to attach.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use usbfn::BusSpeed;
use usbfn_usbip::proto::BusId;
use usbfn_usbip::server::{PcapTap, SendBuffer, Server, ServerOptions};
use usbfn_usbip::socket::MIN_SEND_BUFFER;

use crate::device_file::UsbipSection;

/// USB/IP's registered port.
pub(crate) const USBIP_PORT: u16 = 3240;

/// Smallest `--max-outstanding-bytes`: one 64 KiB URB.
pub(crate) const MIN_OUTSTANDING_BYTES: usize = 64 * 1024;

/// Flags of the USB/IP server.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ServerArgs {
    /// Address hosts import from, HOST:PORT (a name such as localhost:3240 is resolved; port
    /// 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:3240", value_parser = crate::util::listen_addr)]
    pub(crate) listen: SocketAddr,
    /// Allow a non-loopback listen address. USB/IP has no authentication: anyone who can
    /// reach the port can attach the devices.
    #[arg(long)]
    pub(crate) allow_remote: bool,
    /// Write every URB and completion to this file as a usbmon pcap (Wireshark opens it).
    #[arg(long, value_name = "FILE")]
    pub(crate) pcap: Option<PathBuf>,
    /// Seconds a host may stall in the middle of a message (or leave replies unread) before
    /// it is disconnected; a host idle between messages is never dropped. Overrides the
    /// device file's `usbip.idle_timeout_s`. [default: 60]
    #[arg(long, value_name = "SECONDS", value_parser = crate::util::seconds)]
    pub(crate) idle_timeout: Option<f64>,
    /// Most host connections served at once; more are closed as soon as they are accepted.
    /// Overrides `usbip.max_connections`. [default: 128]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) max_connections: Option<u32>,
    /// Most bytes of URBs outstanding on one connection (sum of their buffer lengths); a
    /// host that goes past it is disconnected. Suffixes K, M, G (binary). Overrides
    /// `usbip.max_outstanding_bytes`. [default: 128M]
    #[arg(long, value_name = "BYTES", value_parser = outstanding_bytes)]
    pub(crate) max_outstanding_bytes: Option<usize>,
    /// The kernel's send buffer (SO_SNDBUF) of every host connection: BYTES (suffixes K, M,
    /// G; at least 16K), or `auto` for the kernel's autotuning. Without it a loopback host
    /// gets 128K (it keeps a window's data in the CPU's caches) and any other the kernel's
    /// autotuning (sized for the path's round trip). Overrides `usbip.send_buffer`.
    #[arg(long, value_name = "BYTES|auto", value_parser = send_buffer)]
    pub(crate) send_buffer: Option<SendBuffer>,
}

/// `--send-buffer` and `usbip.send_buffer`: `auto` or a byte count of at least 16 KiB.
pub(crate) fn send_buffer(text: &str) -> Result<SendBuffer, String> {
    if text.trim().eq_ignore_ascii_case("auto") {
        return Ok(SendBuffer::Auto);
    }
    let n = crate::util::bytes(text).map_err(|e| format!("{e}, or auto"))?;
    if n < MIN_SEND_BUFFER {
        return Err(format!(
            "{text:?} is less than {MIN_SEND_BUFFER} bytes (16K); `auto` leaves it to the kernel"
        ));
    }
    Ok(SendBuffer::Fixed(n))
}

fn outstanding_bytes(text: &str) -> Result<usize, String> {
    let n = crate::util::bytes(text)?;
    if n < MIN_OUTSTANDING_BYTES {
        return Err(format!(
            "{text:?} is less than {MIN_OUTSTANDING_BYTES} bytes (one 64 KiB URB)"
        ));
    }
    Ok(n)
}

impl ServerArgs {
    /// Refuse a non-loopback address unless `--allow-remote`.
    pub(crate) fn check_listen(&self) -> anyhow::Result<()> {
        if !self.listen.ip().is_loopback() && !self.allow_remote {
            bail!(
                "refusing to listen on {}: USB/IP has no authentication, so anyone who can reach it can attach the devices; pass --allow-remote to do it anyway",
                self.listen
            );
        }
        Ok(())
    }

    /// The server options these flags ask for, over the device files' `[usbip]` values
    /// (`file`), with the `--pcap` tap over `server`'s exports.
    pub(crate) fn options(
        &self,
        server: &Server,
        file: &UsbipSection,
    ) -> anyhow::Result<ServerOptions> {
        let mut options = ServerOptions::default();
        if let Some(s) = self.idle_timeout.or(file.idle_timeout_s) {
            options.idle_timeout = Duration::from_secs_f64(s);
        }
        if let Some(n) = self.max_connections {
            // fits: a u32 widens to usize on the 32- and 64-bit targets usbfn builds for.
            options.max_connections = usize::try_from(n).unwrap_or(usize::MAX);
        } else if let Some(n) = file.max_connections {
            options.max_connections = n;
        }
        if let Some(b) = self.max_outstanding_bytes.or(file.max_outstanding_bytes) {
            options.max_outstanding_bytes = b;
        }
        if let Some(b) = self.send_buffer.or(file.send_buffer) {
            options.send_buffer = b;
        }
        if let Some(path) = &self.pcap {
            let file = std::fs::File::create(path)
                .with_context(|| format!("creating the capture {}", path.display()))?;
            let tap = PcapTap::new(std::io::BufWriter::new(file), server.exports())
                .with_context(|| format!("writing the capture header to {}", path.display()))?;
            options.tap = Some(Arc::new(tap));
        }
        Ok(options)
    }
}

/// The command a Linux host runs (as root) to attach `busid` from a server on `addr`.
pub(crate) fn attach_command(addr: SocketAddr, busid: &BusId) -> String {
    let host = match addr.ip() {
        std::net::IpAddr::V6(ip) => ip.to_string(),
        std::net::IpAddr::V4(ip) => ip.to_string(),
    };
    if addr.port() == USBIP_PORT {
        format!("usbip attach -r {host} -b {busid}")
    } else {
        // usbip(8) takes the port as a global option, before the subcommand.
        format!(
            "usbip --tcp-port {} attach -r {host} -b {busid}",
            addr.port()
        )
    }
}

/// One line per exported device: its busid, what it is, and how to attach it.
pub(crate) fn print_exports(addr: SocketAddr, exports: &[(BusId, String, BusSpeed)]) {
    for (busid, what, speed) in exports {
        println!(
            "  {busid}  {what} ({speed} speed)   attach: {}",
            attach_command(addr, busid)
        );
    }
    if !addr.ip().is_loopback() {
        println!("warning: listening on {addr} without authentication (--allow-remote)");
    }
}

/// The `[usbip]` limits of several device files as one: each limit from the file that sets
/// it; two files that set it differently are an error (the server has one value).
pub(crate) fn merge_usbip<'a>(
    files: impl IntoIterator<Item = (&'a std::path::Path, &'a UsbipSection)>,
) -> anyhow::Result<UsbipSection> {
    let mut merged = UsbipSection::default();
    let mut from: [Option<&std::path::Path>; 4] = [None; 4];
    for (path, u) in files {
        macro_rules! take {
            ($field:ident, $slot:expr, $key:literal) => {
                if let Some(v) = u.$field {
                    match merged.$field {
                        Some(old) if old != v => bail!(
                            "{}: usbip.{} = {v} disagrees with {} ({old}): the server has one value; pass --{} to choose",
                            path.display(),
                            $key,
                            from[$slot].map_or_else(String::new, |p| p.display().to_string()),
                            $key.replace('_', "-").trim_end_matches("-s"),
                        ),
                        _ => {
                            merged.$field = Some(v);
                            from[$slot] = Some(path);
                        }
                    }
                }
            };
        }
        take!(idle_timeout_s, 0, "idle_timeout_s");
        take!(max_connections, 1, "max_connections");
        take!(max_outstanding_bytes, 2, "max_outstanding_bytes");
        take!(send_buffer, 3, "send_buffer");
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attach_command_names_the_port_only_when_not_3240() {
        let busid = BusId::new("1-2").expect("busid");
        let default: SocketAddr = "127.0.0.1:3240".parse().expect("addr");
        assert_eq!(
            attach_command(default, &busid),
            "usbip attach -r 127.0.0.1 -b 1-2"
        );
        let other: SocketAddr = "127.0.0.1:4000".parse().expect("addr");
        assert_eq!(
            attach_command(other, &busid),
            "usbip --tcp-port 4000 attach -r 127.0.0.1 -b 1-2"
        );
    }
}

#[cfg(test)]
mod limit_tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        server: ServerArgs,
    }

    fn options(args: &[&str], file: &UsbipSection) -> ServerOptions {
        let cli = Cli::try_parse_from(std::iter::once("usbfn").chain(args.iter().copied()))
            .expect("parses");
        cli.server
            .options(&Server::builder().build(), file)
            .expect("options")
    }

    /// The help texts write the defaults out ("[default: 60]"): they must be the server's.
    #[test]
    fn the_defaults_in_help_are_the_servers_constants() {
        use clap::CommandFactory;
        let help = Cli::command().render_long_help().to_string();
        let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
        let d = ServerOptions::default();
        for (flag, default) in [
            ("--idle-timeout", d.idle_timeout.as_secs().to_string()),
            ("--max-connections", d.max_connections.to_string()),
            (
                "--max-outstanding-bytes",
                format!("{}M", d.max_outstanding_bytes >> 20),
            ),
        ] {
            let at = help.find(flag).expect("flag in help");
            let rest = &help[at..];
            let end = rest.find("[default: ").expect("a default");
            let shown = &rest[end + 10..];
            assert!(
                shown.starts_with(&format!("{default}]")),
                "{flag}: help says {}, the server {default}",
                &shown[..shown.find(']').unwrap_or(0)]
            );
        }
        assert_eq!(d.max_outstanding_bytes % (1 << 20), 0);
    }

    #[test]
    fn defaults_are_the_servers() {
        let o = options(&[], &UsbipSection::default());
        let d = ServerOptions::default();
        assert_eq!(o.idle_timeout, d.idle_timeout);
        assert_eq!(o.max_connections, d.max_connections);
        assert_eq!(o.max_outstanding_bytes, d.max_outstanding_bytes);
        assert_eq!(o.send_buffer, d.send_buffer);
    }

    #[test]
    fn send_buffer_is_auto_or_bytes_and_the_flag_overrides_the_file() {
        let file = UsbipSection {
            send_buffer: Some(SendBuffer::Auto),
            ..UsbipSection::default()
        };
        assert_eq!(options(&[], &file).send_buffer, SendBuffer::Auto);
        let o = options(&["--send-buffer", "1M"], &file);
        assert_eq!(o.send_buffer, SendBuffer::Fixed(1 << 20));
        let o = options(&["--send-buffer", "AUTO"], &UsbipSection::default());
        assert_eq!(o.send_buffer, SendBuffer::Auto);
        for bad in ["1K", "lots", "-5"] {
            let r = Cli::try_parse_from(["usbfn", "--send-buffer", bad]);
            assert!(r.is_err(), "{bad}");
        }
    }

    #[test]
    fn flags_override_the_file() {
        let file = UsbipSection {
            idle_timeout_s: Some(5.0),
            max_connections: Some(3),
            max_outstanding_bytes: Some(1 << 20),
            ..UsbipSection::default()
        };
        let o = options(&[], &file);
        assert_eq!(o.idle_timeout, Duration::from_secs(5));
        assert_eq!(o.max_connections, 3);
        assert_eq!(o.max_outstanding_bytes, 1 << 20);
        let o = options(
            &[
                "--idle-timeout",
                "0.5",
                "--max-connections",
                "7",
                "--max-outstanding-bytes",
                "2M",
            ],
            &file,
        );
        assert_eq!(o.idle_timeout, Duration::from_millis(500));
        assert_eq!(o.max_connections, 7);
        assert_eq!(o.max_outstanding_bytes, 2 << 20);
    }

    #[test]
    fn bad_limits_are_refused_by_the_parser() {
        for args in [
            ["--max-connections", "0"],
            ["--max-outstanding-bytes", "1K"],
            ["--idle-timeout", "0"],
        ] {
            let r = Cli::try_parse_from(std::iter::once("usbfn").chain(args));
            assert!(r.is_err(), "{args:?}");
        }
    }

    #[test]
    fn files_that_disagree_on_a_limit_are_an_error() {
        let a = UsbipSection {
            max_connections: Some(3),
            ..UsbipSection::default()
        };
        let b = UsbipSection {
            max_connections: Some(4),
            idle_timeout_s: Some(2.0),
            ..UsbipSection::default()
        };
        let (pa, pb) = (
            std::path::Path::new("a.toml"),
            std::path::Path::new("b.toml"),
        );
        let merged = merge_usbip([(pa, &a), (pa, &a)]).expect("same value twice");
        assert_eq!(merged.max_connections, Some(3));
        let e = merge_usbip([(pa, &a), (pb, &b)]).expect_err("disagree");
        let text = e.to_string();
        assert!(
            text.contains("b.toml")
                && text.contains("a.toml")
                && text.contains("--max-connections"),
            "{text}"
        );
    }
}
