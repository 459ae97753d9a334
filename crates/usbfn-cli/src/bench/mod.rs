//! `usbfn bench`: throughput, latency and scale, each printed as a ratio to raw TCP loopback
//! measured in the same run.
//!
//! * Bulk IN and OUT throughput for a grid of URB sizes and queue depths, over the in-process
//!   host and over USB/IP (usbfn's client → 127.0.0.1 → usbfn's server), against Gadget Zero.
//!   The baseline for each URB size is a blocking sender and receiver moving bytes over
//!   127.0.0.1 with writes of that size (the fastest of two runs in each thread placement,
//!   see [`tcp::Placement`]); each usbfn point then moves the same number of bytes.
//! * The ends run like the baseline's two threads: the host side (this bench and usbfn's
//!   USB/IP client) on the bench's current-thread runtime, the USB/IP server with the device
//!   and its service on a current-thread runtime of their own thread, as `usbfn serve` runs
//!   them by default (`--topology shared-workers`: every end on one runtime with a worker per
//!   CPU, as `usbfn serve --multi-thread`; `--topology one-thread`: both ends on the bench's
//!   thread, as raw TCP's `same-cpu` placement).
//! * Control round-trip latency (one at a time): GET_DESCRIPTOR answered by the core, and a
//!   vendor request answered by the service; baseline: TCP ping-pong with the same reply size.
//! * Event rate: setup packets delivered to (and answered by) the service per second with 16
//!   control requests queued; baseline: TCP request/answer pairs with 16 in flight.
//! * Scale: N idle devices exported by one server, each N in a child process: resident memory
//!   per device and import/enumerate time.

mod report;
mod scale;
mod stats;
mod target;
mod tcp;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use report::{BenchResult, Report};
use target::{Dir, Target, Topology, Transport};
use usbfn_usbip::socket::DEFAULT_LOOPBACK_SEND_BUFFER;

/// A measurement that makes no progress for this long has hung (a lost URB, a stuck
/// service): it fails instead of waiting forever.
const STALL: Duration = Duration::from_secs(30);

/// Raw TCP throughput runs per URB size and thread placement; the fastest is the baseline.
const TCP_TRIES: usize = 2;

/// Arguments of `usbfn bench`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  cargo build --release -p usbfn-cli && target/release/usbfn bench --quick
  usbfn bench --quick --json --check > bench.json   # exit status 1 if a target is missed
  usbfn bench --sizes 4K,64K --depths 16 --transports usbip --devices 0")]
pub(crate) struct Args {
    /// A smaller grid that finishes in under a minute (still covers USB/IP bulk IN and OUT at
    /// 64 KiB, depth 16).
    #[arg(long)]
    quick: bool,
    /// Print the results as JSON on stdout (progress stays on stderr): every number a JSON
    /// number, units in the key (`mb_per_s`, `median_us`) or in a `unit` field (targets).
    #[arg(long)]
    json: bool,
    /// Exit with status 1 when a measured target is missed (after printing the report), so a
    /// script can use the run; targets a smaller run does not measure do not count.
    #[arg(long)]
    check: bool,
    /// URB sizes, comma-separated (`512,4K,64K,1M`). Default: 512,4K,16K,64K,256K,1M;
    /// --quick: 512,64K,1M.
    #[arg(long, value_delimiter = ',', value_parser = parse_size)]
    sizes: Option<Vec<usize>>,
    /// Queue depths, comma-separated. Default: 1,4,16,64; --quick: 1,16.
    #[arg(long, value_delimiter = ',')]
    depths: Option<Vec<usize>>,
    /// Bulk directions to measure, comma-separated. Default: both.
    #[arg(long, value_delimiter = ',', value_enum)]
    directions: Option<Vec<Dir>>,
    /// Transports to measure, comma-separated. Default: both.
    #[arg(long, value_delimiter = ',', value_enum)]
    transports: Option<Vec<Transport>>,
    /// Device counts for the scale run, comma-separated (0 skips it). Default:
    /// 1,10,100,1000; --quick: 1000.
    #[arg(long, value_delimiter = ',')]
    devices: Option<Vec<usize>>,
    /// Milliseconds each raw TCP baseline run takes (the fastest of six is kept); usbfn
    /// points move the same bytes. Default: 400; --quick: 150.
    #[arg(long)]
    point_ms: Option<u64>,
    /// Control round trips per latency measurement. Default: 10000; --quick: 2000.
    #[arg(long)]
    rounds: Option<usize>,
    /// Devices imported and enumerated per scale run (default: all; --quick: 50).
    #[arg(long)]
    scale_sample: Option<usize>,
    /// How the host side (the bench and usbfn's USB/IP client) and the server side (the
    /// USB/IP server, the device and its service) share threads: `two-threads` (default; a
    /// current-thread runtime each, like raw TCP's sender and receiver), `one-thread` (both
    /// on one current-thread runtime, like raw TCP's `same-cpu` placement), `shared-workers`
    /// (one runtime with a worker per CPU, as `usbfn serve --multi-thread`).
    #[arg(long, value_enum, default_value = "two-threads")]
    pub(crate) topology: Topology,
    /// Internal: run one scale measurement with N devices and print it as JSON.
    #[arg(long, hide = true)]
    scale_child: Option<usize>,
}

impl Args {
    /// The bench runs on a current-thread runtime (the host side's thread) unless its
    /// topology is [`Topology::SharedWorkers`]; the scale child keeps a worker per CPU, as
    /// `usbfn serve`.
    pub(crate) fn wants_current_thread(&self) -> bool {
        self.topology != Topology::SharedWorkers && self.scale_child.is_none()
    }
}

/// What one run measures.
#[derive(Clone, Debug)]
struct Plan {
    sizes: Vec<usize>,
    depths: Vec<usize>,
    transports: Vec<Transport>,
    directions: Vec<Dir>,
    devices: Vec<usize>,
    point: Duration,
    /// A usbfn point stops after this long even if it has not moved the baseline's bytes.
    cap: Duration,
    rounds: usize,
    scale_sample: usize,
    event_depth: usize,
    topology: Topology,
}

impl Plan {
    fn from_args(args: &Args) -> anyhow::Result<Plan> {
        let kib = 1024;
        let (sizes, depths, devices, point_ms, rounds, sample) = if args.quick {
            (
                vec![512, 64 * kib, 1024 * kib],
                vec![1, 16],
                vec![1000],
                150,
                2000,
                50,
            )
        } else {
            (
                vec![512, 4 * kib, 16 * kib, 64 * kib, 256 * kib, 1024 * kib],
                vec![1, 4, 16, 64],
                vec![1, 10, 100, 1000],
                400,
                10_000,
                usize::MAX,
            )
        };
        let sizes = args.sizes.clone().unwrap_or(sizes);
        let depths = args.depths.clone().unwrap_or(depths);
        if let Some(bad) = sizes
            .iter()
            .find(|s| **s == 0 || **s > 16 * 1024 * 1024 || !s.is_power_of_two())
        {
            anyhow::bail!("URB size {bad} is not a power of two between 1 B and 16 MiB");
        }
        if depths.iter().any(|d| *d == 0 || *d > 1024) {
            anyhow::bail!("queue depths must be between 1 and 1024");
        }
        // Bounded so that the derived limits (6x, plus timeouts) cannot overflow.
        let point = Duration::from_millis(args.point_ms.unwrap_or(point_ms).clamp(10, 600_000));
        let transports = args
            .transports
            .clone()
            .unwrap_or_else(|| vec![Transport::InProcess, Transport::Usbip]);
        Ok(Plan {
            sizes,
            depths,
            transports,
            directions: args
                .directions
                .clone()
                .unwrap_or_else(|| vec![Dir::In, Dir::Out]),
            devices: args
                .devices
                .clone()
                .unwrap_or(devices)
                .into_iter()
                .filter(|n| *n > 0)
                .collect(),
            point,
            cap: point * 6,
            rounds: args.rounds.unwrap_or(rounds).clamp(1, 10_000_000),
            scale_sample: args.scale_sample.unwrap_or(sample),
            event_depth: 16,
            topology: args.topology,
        })
    }

    fn steps(&self) -> u64 {
        let t = self.transports.len();
        let bulk = self.sizes.len() * (1 + t * self.directions.len() * self.depths.len());
        let latency = 2 + t * 2;
        let events = 1 + t;
        let scale = self.devices.len();
        // fits: usize has at most 64 bits on every Rust target.
        u64::try_from(bulk + latency + events + scale).unwrap_or(u64::MAX)
    }
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    if let Some(n) = args.scale_child {
        // Not a conversion: without --scale-sample the child imports every one of its devices
        // (`sample >= n`), which usize::MAX says for any n.
        return scale::child(n, args.scale_sample.unwrap_or(usize::MAX)).await;
    }
    let plan = Plan::from_args(&args)?;
    let started = Instant::now();
    let bar = ProgressBar::with_draw_target(Some(plan.steps()), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {pos}/{len} {msg}")
            .context("progress bar template")?
            .progress_chars("=> "),
    );
    let mut results = Vec::new();

    // Raw TCP loopback, one baseline per URB size.
    let mut tcp_rates = BTreeMap::new();
    for &size in &plan.sizes {
        bar.set_message(format!("raw TCP, {} writes", report::size_label(size)));
        let point = plan.point;
        // The fastest of a few runs: the limit is what the loopback can do, not what a
        // moment of contention on a shared machine let it do.
        // Each placement with the kernel's autotuned send buffer and with the one usbfn
        // gives its loopback connections: the baseline is the faster, so a smaller buffer
        // is not what usbfn is credited for.
        let runs = each_placement(TCP_TRIES, move |p| {
            Ok([
                tcp::throughput(size, point, p, None)?,
                tcp::throughput(size, point, p, Some(DEFAULT_LOOPBACK_SEND_BUFFER))?,
            ])
        })
        .await?;
        let runs: Vec<tcp::Moved> = runs.into_iter().flat_map(|(_, pair)| pair).collect();
        let (mut by_placement, mut by_send_buffer) = (BTreeMap::new(), BTreeMap::new());
        for moved in &runs {
            if let Some(placement) = moved.placement {
                keep_fastest(&mut by_placement, placement, moved.mb_per_s());
            }
            let buffer = report::send_buffer_label(moved.send_buffer);
            keep_fastest(&mut by_send_buffer, buffer, moved.mb_per_s());
        }
        let Some(moved) = runs
            .into_iter()
            .max_by(|a, b| a.mb_per_s().total_cmp(&b.mb_per_s()))
        else {
            continue;
        };
        tcp_rates.insert(size, moved);
        results.push(BenchResult::tcp(size, &moved, by_placement, by_send_buffer));
        bar.inc(1);
    }

    for &transport in &plan.transports {
        for &size in &plan.sizes {
            let Some(tcp) = tcp_rates.get(&size).copied() else {
                continue;
            };
            // A fresh device per URB size, its transfers sized for it.
            let target = within(STALL, Target::start(transport, size, plan.topology)).await?;
            let count = (tcp.bytes / size as u64).max(1);
            for &dir in &plan.directions {
                for &depth in &plan.depths {
                    bar.set_message(format!(
                        "{} bulk {dir:?} {} depth {depth}",
                        transport.label(),
                        report::size_label(size)
                    ));
                    let what =
                        || format!("{} bulk {dir:?} {size} B depth {depth}", transport.label());
                    let moved = within(
                        plan.cap + STALL,
                        target.bulk(dir, size, depth, count.max(depth as u64), plan.cap),
                    )
                    .await
                    .with_context(what)?;
                    results.push(BenchResult::bulk(transport, dir, size, depth, &moved, &tcp));
                    bar.inc(1);
                }
            }
        }
    }

    // Control round trips.
    let rounds = plan.rounds;
    let mut tcp_rtt = BTreeMap::new();
    for reply in [18usize, 64] {
        bar.set_message(format!("raw TCP ping-pong, {reply}-byte answers"));
        // The fastest placement's (lowest median): the ping-pong costs a wake-up each way.
        let best = each_placement(1, move |p| tcp::round_trip(reply, rounds, p))
            .await?
            .into_iter()
            .min_by(|(_, a), (_, b)| a.median_us.total_cmp(&b.median_us));
        if let Some(best) = best {
            tcp_rtt.insert(reply, best);
        }
        bar.inc(1);
    }
    for &transport in &plan.transports {
        let target = within(STALL, Target::start(transport, 512, plan.topology)).await?;
        for service in [false, true] {
            bar.set_message(format!("{} control round trips", transport.label()));
            // A millisecond per round trip is generous; STALL on top for the warm-up.
            let limit = STALL.saturating_add(Duration::from_millis(rounds as u64));
            let l = within(limit, target.control_latency(service, rounds)).await?;
            let reply = if service { 64 } else { 18 };
            let base = tcp_rtt.get(&reply).copied();
            results.push(BenchResult::control(transport, service, reply, &l, base));
            bar.inc(1);
        }
    }

    // Event notification rate.
    bar.set_message("raw TCP request/answer rate");
    let (depth, point) = (plan.event_depth, plan.point);
    let tcp_rate = each_placement(1, move |p| tcp::message_rate(depth, point, p))
        .await?
        .into_iter()
        .max_by(|(_, a), (_, b)| a.total_cmp(b))
        .unwrap_or((tcp::Placement::Free, 0.0));
    bar.inc(1);
    for &transport in &plan.transports {
        bar.set_message(format!("{} setup events", transport.label()));
        let target = within(STALL, Target::start(transport, 512, plan.topology)).await?;
        let rate = within(
            plan.point + STALL,
            target.event_rate(plan.event_depth, plan.point),
        )
        .await?;
        results.push(BenchResult::events(
            transport,
            plan.event_depth,
            rate,
            tcp_rate,
        ));
        bar.inc(1);
    }

    // Scale.
    let mut scale = Vec::new();
    for &n in &plan.devices {
        bar.set_message(format!("{n} exported devices"));
        scale.push(scale::measure(n, plan.scale_sample).await?);
        bar.inc(1);
    }
    bar.finish_and_clear();

    let report = Report::new(
        args.quick,
        plan.topology,
        plan.point,
        results,
        scale,
        started.elapsed().as_secs_f64(),
    );
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    if args.check {
        check_targets(&report)?;
    }
    Ok(())
}

/// `--check`: an error naming every measured target that was missed.
fn check_targets(report: &Report) -> anyhow::Result<()> {
    let missed = report.missed();
    if missed.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = missed
        .iter()
        .map(|t| {
            format!(
                "{} ({} {} {} wanted, {} measured)",
                t.name,
                t.op.symbol(),
                t.threshold,
                t.unit,
                t.measured
                    .map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"))
            )
        })
        .collect();
    anyhow::bail!("{} target(s) missed: {}", missed.len(), names.join("; "))
}

/// `fut`, failing after `limit`.
async fn within<T>(
    limit: Duration,
    fut: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| anyhow::anyhow!("no result within {limit:?}: the measurement hung"))?
}

/// `512`, `4K`, `64KiB`, `1M`, `1MiB` (binary multiples).
fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let upper = t.to_ascii_uppercase();
    let (digits, mult) = if let Some(d) = upper
        .strip_suffix("KIB")
        .or_else(|| upper.strip_suffix('K'))
    {
        (d, 1024)
    } else if let Some(d) = upper
        .strip_suffix("MIB")
        .or_else(|| upper.strip_suffix('M'))
    {
        (d, 1024 * 1024)
    } else {
        (upper.strip_suffix('B').unwrap_or(&upper), 1)
    };
    digits
        .trim()
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("{text:?} is not a size like 512, 4K or 1M"))
}

/// Keep in `map` the larger of what `key` had and `mb_per_s`.
fn keep_fastest<K: Ord>(map: &mut BTreeMap<K, f64>, key: K, mb_per_s: f64) {
    let fastest = map.entry(key).or_insert(0.0);
    *fastest = fastest.max(mb_per_s);
}

/// Run a raw TCP baseline `tries` times in each thread placement (on blocking threads: the
/// baseline's own threads block), every result with the placement it ran in.
async fn each_placement<T: Send + 'static>(
    tries: usize,
    run: impl Fn(tcp::Placement) -> std::io::Result<T> + Clone + Send + 'static,
) -> anyhow::Result<Vec<(tcp::Placement, T)>> {
    let mut results = Vec::new();
    for placement in tcp::Placement::ALL.repeat(tries) {
        let run = run.clone();
        let r = tokio::task::spawn_blocking(move || run(placement)).await??;
        results.push((placement, r));
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report_with(mb_per_s: f64) -> Report {
        let moved = tcp::Moved {
            bytes: 1 << 30,
            seconds: 1.0,
            cpu_seconds: 1.0,
            switches: 0,
            units: 1,
            placement: Some(tcp::Placement::Free),
            send_buffer: None,
        };
        let mut r = BenchResult::tcp(64 * 1024, &moved, BTreeMap::new(), BTreeMap::new());
        r.kind = report::Kind::Bulk;
        r.transport = "usbip";
        r.direction = "in";
        r.depth = 16;
        r.mb_per_s = Some(mb_per_s);
        r.ratio_to_tcp = Some(0.9);
        Report::new(
            true,
            Topology::TwoThreads,
            Duration::from_millis(10),
            vec![r],
            Vec::new(),
            1.0,
        )
    }

    #[test]
    fn check_fails_on_a_missed_target_only() {
        let fast = report_with(2000.0);
        assert!(check_targets(&fast).is_ok(), "met, or not measured");
        let slow = report_with(10.0);
        let e = check_targets(&slow).expect_err("1000 MB/s missed");
        let text = e.to_string();
        assert!(
            text.starts_with("1 target(s) missed: USB/IP bulk IN 64 KiB depth 16"),
            "{text}"
        );
    }

    #[test]
    fn json_targets_are_numbers_with_units() {
        let v = serde_json::to_value(report_with(10.0)).expect("json");
        let t = &v["targets"][0];
        assert_eq!(t["op"], ">=");
        assert_eq!(t["threshold"], 1000.0);
        assert_eq!(t["unit"], "MB/s");
        assert_eq!(t["measured"], 10.0);
        assert_eq!(t["status"], "missed");
        let unmeasured = v["targets"]
            .as_array()
            .expect("targets")
            .iter()
            .find(|t| t["status"] == "not_measured")
            .expect("the in-process targets are not measured here");
        assert!(unmeasured.get("measured").is_none(), "{unmeasured}");
        // Every value under "targets" is a number except the names, units and statuses.
        for t in v["targets"].as_array().expect("targets") {
            for (k, x) in t.as_object().expect("object") {
                let text_field = matches!(k.as_str(), "name" | "unit" | "op" | "status");
                assert_eq!(x.is_string(), text_field, "{k} = {x}");
            }
        }
    }

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("1m"), Ok(1 << 20));
        assert!(parse_size("lots").is_err());
    }
}
