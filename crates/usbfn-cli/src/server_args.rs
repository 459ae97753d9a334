//! The USB/IP server flags `serve` and `daemon` share: where to listen, the capture file, and
//! what they print for a host to attach.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use usbfn::BusSpeed;
use usbfn_usbip::proto::BusId;
use usbfn_usbip::server::{PcapTap, Server, ServerOptions};

/// USB/IP's registered port.
pub(crate) const USBIP_PORT: u16 = 3240;

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

    /// The server options these flags ask for, with the `--pcap` tap over `server`'s exports.
    pub(crate) fn options(&self, server: &Server) -> anyhow::Result<ServerOptions> {
        let mut options = ServerOptions::default();
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
