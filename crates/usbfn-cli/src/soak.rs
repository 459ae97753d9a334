//! `usbfn soak`: mixed traffic against a `usbfn daemon` with Gadget Zero served by a
//! separate `usbfn service gadget-zero` process, for a given time, watching the daemon for
//! leaks.
//!
//! What runs at once, until the time is up:
//! * a host that imports Gadget Zero, configures it and streams batches of bulk IN and OUT
//!   URBs, control requests (GET_STATUS, vendor 0x5b/0x5c) and unlink storms (16 IN URBs
//!   queued, every other one unlinked), re-importing every couple of seconds;
//! * service restarts through the daemon: the service process is killed (SIGKILL) and
//!   started again, so the daemon detaches the host and offers the device again;
//! * malformed connections: garbage, truncated requests and imports of unknown busids.
//!
//! The daemon's resident memory, open file descriptors and threads are sampled twice a
//! second. After the warm-up they must stay flat: the median of the last tenth of the run
//! at most `--max-growth` percent above the highest sample of the first third after the
//! warm-up (descriptor and thread counts may also move by 2, a connection being set up). Every URB must be answered
//! exactly once: the client's codec fails on a second or unknown answer, a session that
//! ends without a connection error has every URB answered, and only a service restart may
//! fail URBs (by disconnecting the host). Exit status 1 when any check fails.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::AsyncWriteExt;
use usbfn_usbip::client::{self, ClientError, ImportedDevice, Urb};
use usbfn_wire::SetupPacket;

/// Arguments of `usbfn soak`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example: usbfn soak --duration 30m --json > soak.json")]
pub(crate) struct Args {
    /// How long to run: `90s`, `30m`, `2h` (a bare number is seconds).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// Time before the baseline, while the allocator and buffers reach their working size.
    /// Default: half the duration, at most 2 minutes.
    #[arg(long, value_parser = parse_duration)]
    warmup: Option<Duration>,
    /// Growth allowed after the warm-up for memory, descriptors and threads, in percent.
    #[arg(long, default_value_t = 5.0)]
    max_growth: f64,
    /// Time between service restarts (kill -9, start again).
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    restart_every: Duration,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    json: bool,
}

impl Args {
    fn warmup(&self) -> Duration {
        self.warmup
            .unwrap_or_else(|| (self.duration / 2).min(Duration::from_secs(120)))
    }
}

/// What the workers count.
#[derive(Debug, Default)]
struct Counters {
    urbs: AtomicU64,
    answered: AtomicU64,
    /// Failed because the host was disconnected (a service restart).
    disconnected: AtomicU64,
    /// Failed by an answer the client could not match (a second or unknown answer).
    protocol_errors: AtomicU64,
    /// Sessions that ended cleanly with a URB unanswered.
    unanswered: AtomicU64,
    imports: AtomicU64,
    unlinks: AtomicU64,
    cancelled: AtomicU64,
    restarts: AtomicU64,
    malformed: AtomicU64,
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// One sample of the daemon process.
#[derive(Clone, Copy, Debug, serde::Serialize)]
struct Sample {
    secs: f64,
    rss_kib: u64,
    fds: u64,
    threads: u64,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    if args.warmup() >= args.duration {
        bail!(
            "--warmup ({:?}) must be shorter than --duration ({:?})",
            args.warmup(),
            args.duration
        );
    }
    let exe = std::env::current_exe().context("finding the usbfn binary")?;
    let dir = std::env::temp_dir().join(format!("usbfn-soak-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let result = soak(&args, &exe, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn soak(args: &Args, exe: &Path, dir: &Path) -> anyhow::Result<()> {
    let run_dir = dir.join("run");
    let mut daemon = Proc::spawn(
        Command::new(exe)
            .args(["daemon", "--listen", "127.0.0.1:0", "--runtime-dir"])
            .arg(&run_dir),
        &dir.join("daemon.log"),
    )
    .context("starting usbfn daemon")?;
    let line = daemon.wait_line("listening for USB/IP hosts on ", Duration::from_secs(20))?;
    let addr: SocketAddr = line
        .rsplit(' ')
        .next()
        .and_then(|a| a.parse().ok())
        .with_context(|| format!("no address in the daemon's line {line:?}"))?;
    let service_cmd = || {
        let mut c = Command::new(exe);
        c.args(["service", "gadget-zero", "--runtime-dir"])
            .arg(&run_dir);
        c
    };
    let mut service = Proc::spawn(&mut service_cmd(), &dir.join("service.log"))
        .context("starting usbfn service gadget-zero")?;
    tracing::info!(%addr, duration = ?args.duration, "soak: daemon and Gadget Zero service started");

    let counters = Arc::new(Counters::default());
    let start = Instant::now();
    let deadline = start + args.duration;
    let traffic = tokio::spawn(traffic(addr, deadline, counters.clone()));
    let malformed = tokio::spawn(malformed(addr, deadline, counters.clone()));
    let mut samples = Vec::new();
    let mut next_restart = start + args.restart_every;
    let mut next_progress = start + Duration::from_secs(10);
    let daemon_pid = daemon.child.id();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Some(status) = daemon.child.try_wait()? {
            bail!(
                "usbfn daemon exited during the soak ({status}); its log: {}",
                dir.join("daemon.log").display()
            );
        }
        samples.push(sample(daemon_pid, start)?);
        let now = Instant::now();
        if now >= next_restart && now + Duration::from_secs(2) < deadline {
            service.kill9();
            service = Proc::spawn(&mut service_cmd(), &dir.join("service.log"))
                .context("restarting usbfn service gadget-zero")?;
            add(&counters.restarts, 1);
            next_restart = now + args.restart_every;
        }
        if now >= next_progress {
            tracing::info!(
                elapsed = ?now.duration_since(start),
                urbs = get(&counters.answered),
                imports = get(&counters.imports),
                restarts = get(&counters.restarts),
                rss_kib = samples.last().map_or(0, |s| s.rss_kib),
                "soak: running"
            );
            next_progress = now + Duration::from_secs(10);
        }
    }
    traffic.await.context("the traffic task")?;
    malformed.await.context("the malformed-connection task")?;
    let report = Report::new(args, &samples, &counters)?;
    service.kill9();
    daemon.terminate();
    report.print(args.json)?;
    if report.failures.is_empty() {
        Ok(())
    } else {
        bail!("soak failed: {}", report.failures.join("; "))
    }
}

/// The host: import, configure, batches of mixed URBs, re-import every ~2 s.
async fn traffic(addr: SocketAddr, deadline: Instant, c: Arc<Counters>) {
    while Instant::now() < deadline {
        let dev = match client::import(addr, "1-1").await {
            Ok(d) => d,
            // Not offered (a service restarting) or busy (the previous session releasing).
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        add(&c.imports, 1);
        if dev.set_configuration(1).await.is_err() {
            continue;
        }
        let session_end = (Instant::now() + Duration::from_secs(2)).min(deadline);
        let mut clean = true;
        while Instant::now() < session_end {
            if let Err(e) = batch(&dev, &c).await {
                if e.is_protocol_error() {
                    tracing::error!(error = %e, "soak: protocol error");
                }
                clean = false;
                break;
            }
        }
        if clean && dev.outstanding() != 0 {
            add(&c.unanswered, dev.outstanding() as u64);
        }
    }
}

/// One batch: 8 bulk IN + 8 bulk OUT of 16 KiB, GET_STATUS, vendor write and read back,
/// then 16 IN URBs with every other one unlinked. Every URB submitted is waited for, even
/// after one failed, so that each is counted once as answered or as failed.
async fn batch(dev: &ImportedDevice, c: &Counters) -> Result<(), ClientError> {
    let mut first_error: Option<ClientError> = None;
    let mut pending = Vec::new();
    for _ in 0..8 {
        pending.push(dev.submit_handle(Urb::bulk_in(1, 16 * 1024)));
        pending.push(dev.submit_handle(Urb::bulk_out(1, vec![0u8; 16 * 1024])));
    }
    for p in pending {
        // A URB the client refused to send (the connection is down) was never submitted.
        let p = p?;
        add(&c.urbs, 1);
        if let Err(e) = finish(p.wait().await, c) {
            first_error.get_or_insert(e);
        }
    }
    if let Some(e) = first_error.take() {
        return Err(e);
    }
    let data = vec![0x5a; 64];
    let requests = [
        SetupPacket::from_bytes([0x80, 0, 0, 0, 0, 0, 2, 0]),
        SetupPacket::from_bytes([0x40, 0x5b, 0, 0, 0, 0, 64, 0]),
        SetupPacket::from_bytes([0xc0, 0x5c, 0, 0, 0, 0, 64, 0]),
    ];
    for setup in requests {
        add(&c.urbs, 1);
        let r = if setup.bm_request_type & 0x80 == 0 {
            dev.control_out(setup, data.clone()).await.map(drop)
        } else {
            dev.control_in(setup).await.map(drop)
        };
        finish(r, c)?;
    }
    // Unlink storm.
    let mut storm = Vec::new();
    for _ in 0..16 {
        storm.push(dev.submit_handle(Urb::bulk_in(1, 64 * 1024))?);
        add(&c.urbs, 1);
    }
    for p in storm.iter().step_by(2) {
        match dev.unlink(p.seqnum()).await {
            Ok(status) => {
                add(&c.unlinks, 1);
                if status != 0 {
                    add(&c.cancelled, 1);
                }
            }
            Err(e) => {
                first_error.get_or_insert(e);
                break;
            }
        }
    }
    for p in storm {
        // A cancelled URB completes with -ECONNRESET: answered too.
        let r = p.wait().await.map(drop).or_else(unlinked);
        if let Err(e) = finish(r, c) {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

fn unlinked(e: ClientError) -> Result<(), ClientError> {
    if e.urb_status() == Some(-104) {
        Ok(())
    } else {
        Err(e)
    }
}

fn finish<T>(r: Result<T, ClientError>, c: &Counters) -> Result<(), ClientError> {
    match r {
        Ok(_) => {
            add(&c.answered, 1);
            Ok(())
        }
        // A status (stall, short) is an answer; only connection-level failures are not.
        Err(e) if e.urb_status().is_some() => {
            add(&c.answered, 1);
            Ok(())
        }
        Err(e) => {
            if e.is_protocol_error() {
                add(&c.protocol_errors, 1);
            } else {
                add(&c.disconnected, 1);
            }
            Err(e)
        }
    }
}

/// Peers that break the protocol, five times a second.
async fn malformed(addr: SocketAddr, deadline: Instant, c: Arc<Counters>) {
    let cases: [&[u8]; 4] = [
        b"GET / HTTP/1.1\r\n\r\n",
        &[0x01, 0x11, 0x80, 0x03, 0, 0, 0, 0, b'9', b'-', b'9'], // truncated import
        &[0x02, 0x00, 0x80, 0x05, 0, 0, 0, 0],                   // wrong version
        &[0xff; 64],
    ];
    let mut i = 0usize;
    while Instant::now() < deadline {
        if let Ok(mut s) = tokio::net::TcpStream::connect(addr).await {
            let _ = s.write_all(cases[i % cases.len()]).await;
            let _ = s.shutdown().await;
            add(&c.malformed, 1);
        }
        // A DEVLIST now and then: a well-behaved peer among the bad ones.
        if i.is_multiple_of(5) {
            let _ = client::list_devices(addr).await;
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The daemon's VmRSS, open descriptors and threads.
fn sample(pid: u32, start: Instant) -> anyhow::Result<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .with_context(|| format!("listing /proc/{pid}/fd"))?
        .count() as u64;
    Ok(Sample {
        secs: start.elapsed().as_secs_f64(),
        rss_kib: field("VmRSS:"),
        fds,
        threads: field("Threads:"),
    })
}

#[derive(Debug, serde::Serialize)]
struct Report {
    duration_s: f64,
    urbs: u64,
    urbs_answered: u64,
    urbs_failed_by_disconnect: u64,
    protocol_errors: u64,
    unanswered_in_clean_sessions: u64,
    imports: u64,
    unlinks: u64,
    unlinks_cancelled: u64,
    service_restarts: u64,
    malformed_connections: u64,
    baseline: Sample,
    end: Sample,
    rss_growth_percent: f64,
    fds_growth_percent: f64,
    threads_growth_percent: f64,
    max_growth_percent: f64,
    failures: Vec<String>,
    samples: Vec<Sample>,
}

impl Report {
    fn new(args: &Args, samples: &[Sample], c: &Counters) -> anyhow::Result<Report> {
        let warm = args.warmup().as_secs_f64();
        let after: Vec<Sample> = samples.iter().copied().filter(|s| s.secs >= warm).collect();
        if after.len() < 6 {
            bail!(
                "only {} samples after the warm-up: run longer than --warmup",
                after.len()
            );
        }
        // RSS is the allocator's high-water mark: it rises in steps until the run has seen
        // its peak concurrency (a restart's reconnect burst) and glibc keeps freed memory.
        // So the baseline is the highest sample of the first third after the warm-up and the
        // end is the median of the last tenth: a leak grows past both, a step does not.
        let third = (after.len() / 3).max(1);
        let tenth = (after.len() / 10).max(3);
        let baseline = highest(&after[..third]);
        let end = median(&after[after.len() - tenth..]);
        let growth = |a: u64, b: u64| {
            if a == 0 {
                0.0
            } else {
                (b as f64 - a as f64) * 100.0 / a as f64
            }
        };
        let mut failures = Vec::new();
        let rss = growth(baseline.rss_kib, end.rss_kib);
        if rss > args.max_growth {
            failures.push(format!(
                "memory grew {rss:.1}% after the warm-up ({} -> {} KiB; limit {}%)",
                baseline.rss_kib, end.rss_kib, args.max_growth
            ));
        }
        let fds = growth(baseline.fds, end.fds);
        let threads = growth(baseline.threads, end.threads);
        for (what, pct, a, b) in [
            ("open descriptors", fds, baseline.fds, end.fds),
            ("threads", threads, baseline.threads, end.threads),
        ] {
            if pct > args.max_growth && b > a + 2 {
                failures.push(format!(
                    "{what} grew {pct:.1}% after the warm-up ({a} -> {b}; limit {}%)",
                    args.max_growth
                ));
            }
        }
        let r = Report {
            duration_s: args.duration.as_secs_f64(),
            urbs: get(&c.urbs),
            urbs_answered: get(&c.answered),
            urbs_failed_by_disconnect: get(&c.disconnected),
            protocol_errors: get(&c.protocol_errors),
            unanswered_in_clean_sessions: get(&c.unanswered),
            imports: get(&c.imports),
            unlinks: get(&c.unlinks),
            unlinks_cancelled: get(&c.cancelled),
            service_restarts: get(&c.restarts),
            malformed_connections: get(&c.malformed),
            baseline,
            end,
            rss_growth_percent: rss,
            fds_growth_percent: fds,
            threads_growth_percent: threads,
            max_growth_percent: args.max_growth,
            failures,
            samples: samples.to_vec(),
        };
        let mut r = r;
        if r.protocol_errors > 0 {
            r.failures.push(format!(
                "{} protocol errors (an answer the host could not match)",
                r.protocol_errors
            ));
        }
        if r.unanswered_in_clean_sessions > 0 {
            r.failures.push(format!(
                "{} URBs unanswered in sessions that ended without an error",
                r.unanswered_in_clean_sessions
            ));
        }
        let accounted = r.urbs_answered + r.urbs_failed_by_disconnect + r.protocol_errors;
        if accounted != r.urbs {
            r.failures.push(format!(
                "{} URBs submitted but {} answered, {} failed by a disconnect and {} protocol errors",
                r.urbs, r.urbs_answered, r.urbs_failed_by_disconnect, r.protocol_errors
            ));
        }
        if r.urbs_answered == 0 {
            r.failures.push("no URB was answered".into());
        }
        if r.service_restarts > 0 && r.imports <= r.service_restarts {
            r.failures.push(format!(
                "{} imports for {} service restarts: the device did not come back",
                r.imports, r.service_restarts
            ));
        }
        Ok(r)
    }

    fn print(&self, json: bool) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        if json {
            serde_json::to_writer_pretty(&mut out, self)?;
            writeln!(out)?;
            return Ok(());
        }
        writeln!(out, "soak: {:.0} s", self.duration_s)?;
        writeln!(
            out,
            "  URBs         {} submitted, {} answered once, {} failed by a service restart's disconnect, {} protocol errors, {} unanswered",
            self.urbs,
            self.urbs_answered,
            self.urbs_failed_by_disconnect,
            self.protocol_errors,
            self.unanswered_in_clean_sessions
        )?;
        writeln!(
            out,
            "  traffic      {} imports, {} unlinks ({} cancelled), {} service restarts, {} malformed connections",
            self.imports,
            self.unlinks,
            self.unlinks_cancelled,
            self.service_restarts,
            self.malformed_connections
        )?;
        writeln!(
            out,
            "  daemon       RSS {} -> {} KiB ({:+.1}%), fds {} -> {} ({:+.1}%), threads {} -> {} ({:+.1}%); limit {}%",
            self.baseline.rss_kib,
            self.end.rss_kib,
            self.rss_growth_percent,
            self.baseline.fds,
            self.end.fds,
            self.fds_growth_percent,
            self.baseline.threads,
            self.end.threads,
            self.threads_growth_percent,
            self.max_growth_percent
        )?;
        if self.failures.is_empty() {
            writeln!(out, "soak: passed")?;
        } else {
            for f in &self.failures {
                writeln!(out, "soak: FAIL {f}")?;
            }
        }
        Ok(())
    }
}

/// The per-field median of `samples` (not empty).
fn median(samples: &[Sample]) -> Sample {
    let mid = |f: fn(&Sample) -> u64| {
        let mut v: Vec<u64> = samples.iter().map(f).collect();
        v.sort_unstable();
        v.get(v.len() / 2).copied().unwrap_or(0)
    };
    Sample {
        secs: samples.first().map_or(0.0, |s| s.secs),
        rss_kib: mid(|s| s.rss_kib),
        fds: mid(|s| s.fds),
        threads: mid(|s| s.threads),
    }
}

/// The per-field maximum of `samples`.
fn highest(samples: &[Sample]) -> Sample {
    let max = |f: fn(&Sample) -> u64| samples.iter().map(f).max().unwrap_or(0);
    Sample {
        secs: samples.first().map_or(0.0, |s| s.secs),
        rss_kib: max(|s| s.rss_kib),
        fds: max(|s| s.fds),
        threads: max(|s| s.threads),
    }
}

/// `90`, `90s`, `30m`, `2h`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (num, unit) = t
        .find(|ch: char| !ch.is_ascii_digit())
        .map_or((t, "s"), |i| t.split_at(i));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. 90s, 30m, 2h)"))?;
    let secs = match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        _ => None,
    }
    .ok_or_else(|| format!("{text:?} is not a duration (e.g. 90s, 30m, 2h)"))?;
    Ok(Duration::from_secs(secs))
}

/// A child process, killed when dropped.
struct Proc {
    child: Child,
    lines: Option<std::sync::mpsc::Receiver<String>>,
}

impl Proc {
    fn spawn(cmd: &mut Command, log: &Path) -> anyhow::Result<Proc> {
        let log =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()?;
        let (tx, rx) = std::sync::mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        Ok(Proc {
            child,
            lines: Some(rx),
        })
    }

    /// The first stdout line containing `marker`.
    fn wait_line(&mut self, marker: &str, within: Duration) -> anyhow::Result<String> {
        let rx = self.lines.as_ref().context("stdout already taken")?;
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains(marker) => return Ok(line),
                Ok(_) => {}
                Err(_) => bail!("no line with {marker:?} within {within:?}"),
            }
        }
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then SIGKILL after 5 s.
    fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill9();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_duration("1d").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("99999999999999999999h").is_err());
    }

    #[test]
    fn growth_uses_medians_after_the_warmup() {
        let s = |secs: f64, rss: u64| Sample {
            secs,
            rss_kib: rss,
            fds: 20,
            threads: 4,
        };
        let args = Args {
            duration: Duration::from_secs(20),
            warmup: Some(Duration::from_secs(2)),
            max_growth: 5.0,
            restart_every: Duration::from_secs(15),
            json: false,
        };
        let c = Counters::default();
        add(&c.urbs, 1);
        add(&c.answered, 1);
        // Warm-up spike ignored; one late spike ignored by the median; flat otherwise.
        let mut samples: Vec<Sample> = (0..40).map(|i| s(f64::from(i) * 0.5, 10_000)).collect();
        samples[1].rss_kib = 50_000;
        samples[38].rss_kib = 30_000;
        let r = Report::new(&args, &samples, &c).expect("report");
        assert!(r.failures.is_empty(), "{:?}", r.failures);
        // A high-water step soon after the warm-up (a reconnect burst) is not a leak.
        let mut stepped: Vec<Sample> = (0..40).map(|i| s(f64::from(i) * 0.5, 10_000)).collect();
        for x in &mut stepped[8..] {
            x.rss_kib = 10_800;
        }
        let r = Report::new(&args, &stepped, &c).expect("report");
        assert!(r.failures.is_empty(), "{:?}", r.failures);
        // A steady climb of 10% fails.
        let climbing: Vec<Sample> = (0..40u32)
            .map(|i| s(f64::from(i) * 0.5, 10_000 + u64::from(i) * 30))
            .collect();
        let r = Report::new(&args, &climbing, &c).expect("report");
        assert!(
            r.failures.iter().any(|f| f.contains("memory grew")),
            "{:?}",
            r.failures
        );
    }
}
