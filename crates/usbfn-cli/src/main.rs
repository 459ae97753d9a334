//! `usbfn`: serve USB devices over USB/IP, and inspect USB/IP servers.

mod alloc;
mod bench;
mod config_cmd;
mod daemon;
mod device_file;
mod ffs;
mod list;
mod local;
mod probe;
mod serve;
mod server_args;
mod service;
mod soak;
mod usbredir;
mod util;
mod wav_cmd;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Serve user-mode USB devices (GenericUSBFn model) to hosts over USB/IP.
#[derive(Debug, Parser)]
#[command(name = "usbfn", version, about)]
struct Cli {
    /// More log output (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Export devices over USB/IP (default: Gadget Zero on 127.0.0.1:3240).
    Serve(serve::Args),
    /// List the devices a USB/IP server exports (like `usbip list -r`), or with --udc this
    /// machine's USB device controllers.
    List(list::Args),
    /// Import a device, enumerate it and print its descriptors (like `lsusb -v`).
    Probe(probe::Args),
    /// Measure throughput, latency and scale, each as a ratio to raw TCP loopback.
    Bench(bench::Args),
    /// Run the generic function driver: own the device, export it over USB/IP and expose
    /// each interface as an IOCTL socket for service processes.
    Daemon(daemon::Args),
    /// Run a built-in function as a service process against `usbfn daemon`.
    Service(service::Args),
    /// Mixed traffic against a daemon and a service process for a given time, checking that
    /// memory, descriptors and threads stay flat and every URB is answered once.
    Soak(soak::Args),
    /// Check a device file and print its descriptors, or print an example to start from.
    Config(config_cmd::Args),
    /// Measure, compare and make WAV files (the audio function's checks).
    Wav(wav_cmd::Args),
}

fn main() -> std::process::ExitCode {
    alloc::tune_for_streaming();
    quiet_exit_on_closed_stdout();
    let cli = Cli::parse();
    let default = match cli.verbose {
        // The benchmark's own servers and clients would log every import at info.
        // `config check` enumerates in-process through a server of its own, likewise.
        0 if matches!(cli.command, Command::Bench(_) | Command::Config(_)) => "warn",
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(util::log_colours(
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
            std::env::var_os("NO_COLOR").as_deref(),
        ))
        .init();
    let single_thread = match &cli.command {
        Command::Serve(a) => !a.multi_thread,
        Command::Bench(a) => a.wants_current_thread(),
        _ => false,
    };
    let runtime = if single_thread {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Runtime::new()
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("usbfn: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::List(args) => list::run(args).await,
            Command::Probe(args) => probe::run(args).await,
            Command::Bench(args) => bench::run(args).await,
            Command::Daemon(args) => daemon::run(args).await,
            Command::Service(args) => service::run(args).await,
            Command::Soak(args) => soak::run(args).await,
            Command::Config(args) => config_cmd::run(args).await,
            Command::Wav(args) => wav_cmd::run(args).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("usbfn: {}", util::error_text(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// `HOST[:PORT]` with USB/IP's port 3240 as the default.
pub(crate) fn server_addr(text: &str) -> anyhow::Result<std::net::SocketAddr> {
    use std::net::ToSocketAddrs;
    let with_port = if text.parse::<std::net::SocketAddr>().is_ok()
        || text
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.contains(':') && p.parse::<u16>().is_ok())
    {
        text.to_owned()
    } else if text.contains(':') && !text.starts_with('[') {
        format!("[{text}]:3240")
    } else {
        format!("{text}:3240")
    };
    with_port
        .to_socket_addrs()
        .map_err(|e| anyhow::anyhow!("cannot resolve {text:?}: {e}"))?
        .next()
        .ok_or_else(|| anyhow::anyhow!("{text:?} resolves to no address"))
}

/// `usbfn list | head` must end quietly when the reader goes away, as Unix tools do.
///
/// SIGPIPE stays ignored (the Rust runtime's setting) in every subcommand: a host, a service
/// or QEMU closing a socket is then an EPIPE error on that one connection, never a signal
/// that ends the server with every other device and connection (restoring the default
/// action for `list`'s sake once did exactly that to `serve`). What is left is `println!`,
/// which panics when stdout is a closed pipe; this hook turns exactly that panic into a
/// quiet, successful exit and leaves every other panic to the default hook.
fn quiet_exit_on_closed_stdout() {
    let default = std::panic::take_hook();
    let epipe = format!("(os error {})", libc::EPIPE);
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        // std's print macros panic with "failed printing to stdout: <io error>".
        if message.starts_with("failed printing to stdout") && message.ends_with(&epipe) {
            std::process::exit(0);
        }
        default(info);
    }));
}
