//! The baseline: raw TCP over 127.0.0.1 in blocking threads, with nothing but the kernel
//! between the two ends. Every usbfn number is printed as a ratio to one of these.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use super::stats::{Latency, process_context_switches, process_cpu_seconds};

/// A USB/IP header is 48 bytes; requests and replies of the latency baselines carry one.
const HEADER: usize = 48;

/// Where the two threads of a raw TCP run are allowed to run. On a VM a wake-up of a thread on
/// another vCPU is an inter-processor interrupt and costs more than the copy of a 64 KiB
/// write, so which placement the scheduler picks decides the figure: a free run measured
/// 1.7–5.9 GB/s at 64 KiB from one run to the next on this project's 2-vCPU machine. The
/// baseline tries every placement and keeps the fastest: the socket's limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Placement {
    /// Wherever the scheduler puts them.
    Free,
    /// Both pinned to the first CPU the process may use.
    SameCpu,
    /// Sender on the first CPU, receiver on the second (as `SameCpu` on one CPU).
    SplitCpus,
}

impl Placement {
    pub(crate) const ALL: [Placement; 3] =
        [Placement::Free, Placement::SameCpu, Placement::SplitCpus];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Placement::Free => "free",
            Placement::SameCpu => "same-cpu",
            Placement::SplitCpus => "split-cpus",
        }
    }

    /// The CPUs of the sender and the receiver, `None` for free.
    fn cpus(self) -> (Option<usize>, Option<usize>) {
        let cpus = allowed_cpus();
        let first = cpus.first().copied();
        let second = cpus.get(1).copied().or(first);
        match self {
            Placement::Free => (None, None),
            Placement::SameCpu => (first, first),
            Placement::SplitCpus => (first, second),
        }
    }
}

/// The CPUs this process may run on, in order (none if the kernel will not say).
fn allowed_cpus() -> Vec<usize> {
    usbfn_ffs::allowed_cpus().unwrap_or_default()
}

/// Pin the calling thread to `cpu` (a no-op for `None`, or when the kernel refuses).
fn pin_to(cpu: Option<usize>) {
    if let Some(cpu) = cpu
        && let Err(e) = usbfn_ffs::pin_current_thread(cpu)
    {
        tracing::debug!(cpu, error = %e, "could not pin a raw TCP baseline thread");
    }
}

/// Bytes moved and the time it took.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Moved {
    pub(crate) bytes: u64,
    pub(crate) seconds: f64,
    /// CPU time the whole process spent meanwhile (both ends, every thread).
    pub(crate) cpu_seconds: f64,
    /// Context switches of the whole process meanwhile.
    pub(crate) switches: u64,
    /// Writes (raw TCP) or URBs (usbfn) that moved the bytes.
    pub(crate) units: u64,
    /// Raw TCP: where its threads ran (`None` for usbfn's points).
    pub(crate) placement: Option<Placement>,
    /// Raw TCP: the `SO_SNDBUF` both ends set (`None`: the kernel's autotuning).
    pub(crate) send_buffer: Option<usize>,
}

impl Moved {
    /// CPU nanoseconds spent per byte moved.
    pub(crate) fn cpu_ns_per_byte(&self) -> f64 {
        if self.bytes > 0 {
            self.cpu_seconds * 1e9 / self.bytes as f64
        } else {
            0.0
        }
    }

    /// Context switches per write (raw TCP) or per URB.
    pub(crate) fn switches_per_unit(&self) -> f64 {
        if self.units > 0 {
            self.switches as f64 / self.units as f64
        } else {
            0.0
        }
    }

    pub(crate) fn mb_per_s(&self) -> f64 {
        if self.seconds > 0.0 {
            self.bytes as f64 / self.seconds / 1e6
        } else {
            0.0
        }
    }
}

/// A connected loopback pair with `TCP_NODELAY`, and `send_buffer` as both ends' `SO_SNDBUF`
/// (`None`: the kernel's autotuning).
fn pair(send_buffer: Option<usize>) -> std::io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let client = TcpStream::connect(listener.local_addr()?)?;
    let (server, _) = listener.accept()?;
    for end in [&client, &server] {
        end.set_nodelay(true)?;
        if let Some(n) = send_buffer {
            socket2::SockRef::from(end).set_send_buffer_size(n)?;
        }
    }
    Ok((client, server))
}

/// A sender writes `write_size`-byte buffers for `duration`, a receiver reads them with a
/// buffer of the same size; the time runs until the receiver has the last byte. Both are
/// threads of their own (so pinning them leaves no other thread pinned), placed as
/// `placement` says; `send_buffer` is the sockets' `SO_SNDBUF` (`None`: autotuned).
pub(crate) fn throughput(
    write_size: usize,
    duration: Duration,
    placement: Placement,
    send_buffer: Option<usize>,
) -> std::io::Result<Moved> {
    let (tx, mut rx) = pair(send_buffer)?;
    let (sender_cpu, receiver_cpu) = placement.cpus();
    let receiver = thread::spawn(move || -> std::io::Result<(u64, Instant)> {
        pin_to(receiver_cpu);
        let mut buf = vec![0u8; write_size];
        let mut got = 0u64;
        loop {
            let n = rx.read(&mut buf)?;
            if n == 0 {
                return Ok((got, Instant::now()));
            }
            got += n as u64;
        }
    });
    let sender = thread::spawn(move || send_for(tx, write_size, duration, sender_cpu));
    let (sent, start, cpu, switches) = sender
        .join()
        .map_err(|_| std::io::Error::other("TCP sender thread panicked"))??;
    let (got, end) = receiver
        .join()
        .map_err(|_| std::io::Error::other("TCP receiver thread panicked"))??;
    if got != sent {
        return Err(std::io::Error::other(format!(
            "TCP baseline lost data: sent {sent}, received {got}"
        )));
    }
    Ok(Moved {
        bytes: got,
        seconds: (end - start).as_secs_f64(),
        cpu_seconds: process_cpu_seconds() - cpu,
        switches: process_context_switches().saturating_sub(switches),
        units: got / write_size.max(1) as u64,
        placement: Some(placement),
        send_buffer,
    })
}

/// The sender of [`throughput`]: bytes sent, when it started, and the process's CPU time and
/// context switches at the start.
fn send_for(
    mut tx: TcpStream,
    write_size: usize,
    duration: Duration,
    cpu: Option<usize>,
) -> std::io::Result<(u64, Instant, f64, u64)> {
    pin_to(cpu);
    let buf = vec![0u8; write_size];
    let cpu = process_cpu_seconds();
    let switches = process_context_switches();
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < duration {
        // Check the clock every 64 writes at most, so small writes are not dominated by it.
        for _ in 0..64 {
            tx.write_all(&buf)?;
            sent += write_size as u64;
        }
    }
    tx.shutdown(std::net::Shutdown::Write)?;
    Ok((sent, start, cpu, switches))
}

/// Run a request/answer baseline: an echo thread answers each 48-byte request with
/// `reply_len` bytes while `client` runs on a thread of its own; both placed as `placement`
/// says.
fn with_echo<T: Send + 'static>(
    reply_len: usize,
    placement: Placement,
    client: impl FnOnce(TcpStream) -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    let (near, mut server) = pair(None)?;
    let (client_cpu, echo_cpu) = placement.cpus();
    let echo = thread::spawn(move || -> std::io::Result<()> {
        pin_to(echo_cpu);
        let mut req = [0u8; HEADER];
        let reply = vec![0u8; HEADER + reply_len];
        loop {
            match server.read_exact(&mut req) {
                Ok(()) => server.write_all(&reply)?,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    });
    let result = thread::spawn(move || {
        pin_to(client_cpu);
        // Dropping the stream at the end lets the echo thread see EOF.
        client(near)
    })
    .join()
    .map_err(|_| std::io::Error::other("TCP client thread panicked"))?;
    echo.join()
        .map_err(|_| std::io::Error::other("TCP echo thread panicked"))??;
    result
}

/// Ping-pong: a 48-byte request, a `reply_len`-byte answer, one at a time, `rounds` times.
pub(crate) fn round_trip(
    reply_len: usize,
    rounds: usize,
    placement: Placement,
) -> std::io::Result<Latency> {
    with_echo(reply_len, placement, move |mut client| {
        let req = [0u8; HEADER];
        let mut reply = vec![0u8; HEADER + reply_len];
        let mut samples = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let t = Instant::now();
            client.write_all(&req)?;
            client.read_exact(&mut reply)?;
            samples.push(t.elapsed());
        }
        Ok(Latency::from_samples(samples))
    })
}

/// Request/answer pairs of 48 bytes each way with `depth` requests in flight: messages per
/// second (the baseline for event delivery with queued control requests).
pub(crate) fn message_rate(
    depth: usize,
    duration: Duration,
    placement: Placement,
) -> std::io::Result<f64> {
    with_echo(0, placement, move |mut client| {
        let msg = [0u8; HEADER];
        let mut reply = [0u8; HEADER];
        for _ in 0..depth {
            client.write_all(&msg)?;
        }
        let start = Instant::now();
        let mut done = 0u64;
        while start.elapsed() < duration {
            client.read_exact(&mut reply)?;
            done += 1;
            client.write_all(&msg)?;
        }
        let seconds = start.elapsed().as_secs_f64();
        for _ in 0..depth {
            client.read_exact(&mut reply)?;
        }
        Ok(done as f64 / seconds)
    })
}
