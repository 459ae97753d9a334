//! Results, the targets they are judged against, and the human table.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::scale::ScaleResult;
use super::stats::Latency;
use super::target::{Dir, Topology, Transport};
use super::tcp::{Moved, Placement};
use usbfn_usbip::socket::DEFAULT_LOOPBACK_SEND_BUFFER;

/// One measurement. Every kind carries `transport`, `direction`, `urb_size`, `depth`,
/// `mb_per_s` (null for latency and rates) and `ratio_to_tcp` (usbfn / raw TCP for the same
/// metric: throughput and rates higher is better, latency lower is better).
#[derive(Clone, Debug, Serialize)]
pub(crate) struct BenchResult {
    pub(crate) kind: Kind,
    pub(crate) transport: &'static str,
    pub(crate) direction: &'static str,
    pub(crate) urb_size: usize,
    pub(crate) depth: usize,
    pub(crate) mb_per_s: Option<f64>,
    pub(crate) ratio_to_tcp: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tcp_mb_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) seconds: Option<f64>,
    /// Process CPU time (both ends, all threads) per byte moved: steadier than throughput
    /// on a shared machine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cpu_ns_per_byte: Option<f64>,
    /// `cpu_ns_per_byte` / raw TCP's (lower is better).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cpu_ratio_to_tcp: Option<f64>,
    /// Context switches of the process (both ends, every thread) per URB, or per write of
    /// the raw TCP baseline: the wake-ups a URB costs, a count that does not depend on load.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) switches_per_urb: Option<f64>,
    /// Where the two threads of raw TCP's fastest run ran (`free`, `same-cpu`,
    /// `split-cpus`): of this result for `tcp`, of its baseline for `control` and `events`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) placement: Option<Placement>,
    /// Raw TCP: the send buffer of the fastest run (`auto`: the kernel's autotuning, or
    /// `SO_SNDBUF` bytes: usbfn's loopback default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) send_buffer: Option<String>,
    /// Raw TCP: the fastest run of each placement, MB/s.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) mb_per_s_by_placement: BTreeMap<Placement, f64>,
    /// Raw TCP: the fastest run with each send buffer (keys as `send_buffer`), MB/s.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) mb_per_s_by_send_buffer: BTreeMap<String, f64>,
    /// Control: who answered (`core` or `service`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) answered_by: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) latency: Option<Latency>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tcp_latency: Option<Latency>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) events_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tcp_messages_per_s: Option<f64>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Kind {
    /// Raw TCP loopback with `urb_size` writes (the baseline itself).
    Tcp,
    Bulk,
    Control,
    Events,
}

/// A target from the benchmark issue, and whether this run met it. In JSON every number is a
/// number, with its unit in `unit`: `{"name", "op": ">=", "threshold": 1000.0, "unit":
/// "MB/s", "measured": 1234.5, "status": "met"}`; `measured` is left out when the run did
/// not measure it (`status` "not measured").
#[derive(Clone, Debug, Serialize)]
pub(crate) struct TargetCheck {
    pub(crate) name: String,
    pub(crate) op: Op,
    pub(crate) threshold: f64,
    pub(crate) unit: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) measured: Option<f64>,
    pub(crate) status: Status,
    /// Decimals the table shows.
    #[serde(skip)]
    decimals: usize,
}

/// How a measurement is compared with its threshold.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) enum Op {
    #[serde(rename = ">=")]
    AtLeast,
    #[serde(rename = "<=")]
    AtMost,
    #[serde(rename = "<")]
    Below,
}

/// Whether a target was met.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Status {
    Met,
    Missed,
    NotMeasured,
}

impl Op {
    fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Op::AtLeast => value >= threshold,
            Op::AtMost => value <= threshold,
            Op::Below => value < threshold,
        }
    }

    pub(crate) fn symbol(self) -> &'static str {
        match self {
            Op::AtLeast => ">=",
            Op::AtMost => "<=",
            Op::Below => "<",
        }
    }
}

/// Everything a run produced.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) quick: bool,
    pub(crate) cpus: usize,
    /// How the ends shared threads (`one-thread`, `two-threads` or `shared-workers`).
    pub(crate) topology: Topology,
    pub(crate) point_ms: u128,
    pub(crate) elapsed_s: f64,
    pub(crate) results: Vec<BenchResult>,
    pub(crate) scale: Vec<ScaleResult>,
    pub(crate) targets: Vec<TargetCheck>,
}

fn transport_name(t: Transport) -> &'static str {
    match t {
        Transport::InProcess => "in-process",
        Transport::Usbip => "usbip",
    }
}

fn dir_name(d: Dir) -> &'static str {
    match d {
        Dir::In => "in",
        Dir::Out => "out",
    }
}

fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

impl BenchResult {
    fn blank(kind: Kind, transport: &'static str, direction: &'static str) -> BenchResult {
        BenchResult {
            kind,
            transport,
            direction,
            urb_size: 0,
            depth: 1,
            mb_per_s: None,
            ratio_to_tcp: None,
            tcp_mb_per_s: None,
            bytes: None,
            seconds: None,
            cpu_ns_per_byte: None,
            cpu_ratio_to_tcp: None,
            switches_per_urb: None,
            placement: None,
            send_buffer: None,
            mb_per_s_by_placement: BTreeMap::new(),
            mb_per_s_by_send_buffer: BTreeMap::new(),
            answered_by: None,
            latency: None,
            tcp_latency: None,
            events_per_s: None,
            tcp_messages_per_s: None,
        }
    }

    pub(crate) fn tcp(
        size: usize,
        m: &Moved,
        by_placement: BTreeMap<Placement, f64>,
        by_send_buffer: BTreeMap<String, f64>,
    ) -> BenchResult {
        BenchResult {
            urb_size: size,
            mb_per_s: Some(m.mb_per_s()),
            ratio_to_tcp: Some(1.0),
            bytes: Some(m.bytes),
            seconds: Some(m.seconds),
            cpu_ns_per_byte: Some(m.cpu_ns_per_byte()),
            cpu_ratio_to_tcp: Some(1.0),
            switches_per_urb: Some(m.switches_per_unit()),
            placement: m.placement,
            send_buffer: Some(send_buffer_label(m.send_buffer)),
            mb_per_s_by_placement: by_placement,
            mb_per_s_by_send_buffer: by_send_buffer,
            ..BenchResult::blank(Kind::Tcp, "tcp", "stream")
        }
    }

    pub(crate) fn bulk(
        transport: Transport,
        dir: Dir,
        size: usize,
        depth: usize,
        m: &Moved,
        tcp: &Moved,
    ) -> BenchResult {
        BenchResult {
            urb_size: size,
            depth,
            mb_per_s: Some(m.mb_per_s()),
            ratio_to_tcp: ratio(m.mb_per_s(), tcp.mb_per_s()),
            tcp_mb_per_s: Some(tcp.mb_per_s()),
            bytes: Some(m.bytes),
            seconds: Some(m.seconds),
            cpu_ns_per_byte: Some(m.cpu_ns_per_byte()),
            cpu_ratio_to_tcp: ratio(m.cpu_ns_per_byte(), tcp.cpu_ns_per_byte()),
            switches_per_urb: Some(m.switches_per_unit()),
            ..BenchResult::blank(Kind::Bulk, transport_name(transport), dir_name(dir))
        }
    }

    pub(crate) fn control(
        transport: Transport,
        service: bool,
        reply: usize,
        l: &Latency,
        tcp: Option<(Placement, Latency)>,
    ) -> BenchResult {
        BenchResult {
            urb_size: reply,
            answered_by: Some(if service { "service" } else { "core" }),
            latency: Some(*l),
            ratio_to_tcp: tcp.and_then(|(_, t)| ratio(l.median_us, t.median_us)),
            tcp_latency: tcp.map(|(_, t)| t),
            placement: tcp.map(|(p, _)| p),
            ..BenchResult::blank(Kind::Control, transport_name(transport), "control-in")
        }
    }

    pub(crate) fn events(
        transport: Transport,
        depth: usize,
        rate: f64,
        (placement, tcp_rate): (Placement, f64),
    ) -> BenchResult {
        BenchResult {
            depth,
            events_per_s: Some(rate),
            tcp_messages_per_s: Some(tcp_rate),
            ratio_to_tcp: ratio(rate, tcp_rate),
            placement: Some(placement),
            ..BenchResult::blank(Kind::Events, transport_name(transport), "setup-event")
        }
    }
}

impl Report {
    pub(crate) fn new(
        quick: bool,
        topology: Topology,
        point: Duration,
        results: Vec<BenchResult>,
        scale: Vec<ScaleResult>,
        elapsed_s: f64,
    ) -> Report {
        let mut report = Report {
            quick,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            topology,
            point_ms: point.as_millis(),
            elapsed_s,
            results,
            scale,
            targets: Vec::new(),
        };
        report.targets = report.check_targets();
        report
    }

    fn bulk(&self, transport: &str, dir: &str, size: usize, depth: usize) -> Option<&BenchResult> {
        self.results.iter().find(|r| {
            r.kind == Kind::Bulk
                && r.transport == transport
                && r.direction == dir
                && r.urb_size == size
                && r.depth == depth
        })
    }

    fn check_targets(&self) -> Vec<TargetCheck> {
        let mut out = Vec::new();
        let kib64 = 64 * 1024;
        for dir in ["in", "out"] {
            let r = self.bulk("usbip", dir, kib64, 16);
            out.push(check(
                format!("USB/IP bulk {} 64 KiB depth 16", dir.to_uppercase()),
                (Op::AtLeast, 1000.0, "MB/s", 0),
                r.and_then(|r| r.mb_per_s),
            ));
            out.push(check(
                format!(
                    "USB/IP bulk {} 64 KiB depth 16 vs raw TCP",
                    dir.to_uppercase()
                ),
                (Op::AtLeast, 0.6, "ratio to raw TCP", 2),
                r.and_then(|r| r.ratio_to_tcp),
            ));
        }
        for dir in ["in", "out"] {
            let r = self.bulk("in-process", dir, kib64, 16);
            out.push(check(
                format!("in-process bulk {} 64 KiB depth 16", dir.to_uppercase()),
                (Op::AtLeast, 5000.0, "MB/s", 0),
                r.and_then(|r| r.mb_per_s),
            ));
        }
        let control = self.results.iter().find(|r| {
            r.kind == Kind::Control && r.transport == "usbip" && r.answered_by == Some("core")
        });
        out.push(check(
            "USB/IP control round trip (GET_DESCRIPTOR), median".into(),
            (Op::AtMost, 50.0, "us", 1),
            control.and_then(|r| r.latency.map(|l| l.median_us)),
        ));
        let thousand = self.scale.iter().find(|s| s.devices == 1000);
        out.push(check(
            "1000 idle exported devices, process RSS".into(),
            (Op::Below, 100.0, "MB", 1),
            thousand.map(|s| s.rss_after_kib as f64 * 1024.0 / 1e6),
        ));
        let ten_thousand = self.scale.iter().find(|s| s.devices == 10_000);
        out.push(check(
            "10000 idle exported devices, process RSS".into(),
            (Op::Below, 150.0, "MB", 1),
            ten_thousand.map(|s| s.rss_after_kib.max(s.rss_listed_kib) as f64 * 1024.0 / 1e6),
        ));
        out.push(check(
            "10000 idle exported devices, OP_REQ_DEVLIST answered, slowest of 5".into(),
            (Op::Below, 1000.0, "ms", 1),
            ten_thousand.map(|s| s.list_max_ms),
        ));
        out
    }

    /// The targets this run measured and missed.
    pub(crate) fn missed(&self) -> Vec<&TargetCheck> {
        self.targets
            .iter()
            .filter(|t| t.status == Status::Missed)
            .collect()
    }

    /// The human-readable report.
    pub(crate) fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "usbfn bench{} — {} CPUs, {}; raw TCP baseline per URB size: fastest of 12 runs of \
             {} ms (per thread placement 2 with the kernel's autotuned send buffer, 2 with \
             usbfn's loopback one); ratio = usbfn / raw TCP 127.0.0.1 measured in this run",
            if self.quick { " --quick" } else { "" },
            self.cpus,
            self.topology.label(),
            self.point_ms
        );
        let mut sizes: Vec<usize> = self
            .results
            .iter()
            .filter(|r| r.kind == Kind::Tcp)
            .map(|r| r.urb_size)
            .collect();
        sizes.dedup();
        let _ = writeln!(
            s,
            "\nRaw TCP by thread placement: MB/s of the fastest run each"
        );
        let _ = writeln!(
            s,
            "  {:>8}  {:>9}  {:>9}  {:>10}  {:>9}  {:>9}  baseline",
            "write",
            "free",
            "same-cpu",
            "split-cpus",
            "auto buf",
            format!("{}K buf", DEFAULT_LOOPBACK_SEND_BUFFER >> 10)
        );
        for r in self.results.iter().filter(|r| r.kind == Kind::Tcp) {
            let at = |p: Placement| {
                r.mb_per_s_by_placement
                    .get(&p)
                    .map_or_else(|| "-".to_owned(), |v| format!("{v:.0}"))
            };
            let buf = |n: Option<usize>| {
                r.mb_per_s_by_send_buffer
                    .get(&send_buffer_label(n))
                    .map_or_else(|| "-".to_owned(), |v| format!("{v:.0}"))
            };
            let _ = writeln!(
                s,
                "  {:>8}  {:>9}  {:>9}  {:>10}  {:>9}  {:>9}  {}, {} buffer",
                size_label(r.urb_size),
                at(Placement::Free),
                at(Placement::SameCpu),
                at(Placement::SplitCpus),
                buf(None),
                buf(Some(DEFAULT_LOOPBACK_SEND_BUFFER)),
                r.placement.map_or("-", Placement::label),
                r.send_buffer.as_deref().unwrap_or("-")
            );
        }
        let mut depths: Vec<usize> = self
            .results
            .iter()
            .filter(|r| r.kind == Kind::Bulk)
            .map(|r| r.depth)
            .collect();
        depths.sort_unstable();
        depths.dedup();
        for (transport, tlabel) in [
            ("in-process", "in-process host"),
            ("usbip", "USB/IP loopback"),
        ] {
            for dir in ["in", "out"] {
                let _ = writeln!(
                    s,
                    "\nBulk {} over {tlabel}: MB/s (ratio to raw TCP)",
                    dir.to_uppercase()
                );
                let _ = write!(s, "  {:>8}  {:>9}", "URB", "raw TCP");
                for d in &depths {
                    let _ = write!(s, "  {:>17}", format!("depth {d}"));
                }
                let _ = writeln!(s);
                for &size in &sizes {
                    let tcp = self
                        .results
                        .iter()
                        .find(|r| r.kind == Kind::Tcp && r.urb_size == size)
                        .and_then(|r| r.mb_per_s)
                        .unwrap_or(0.0);
                    let _ = write!(s, "  {:>8}  {tcp:>9.0}", size_label(size));
                    for &d in &depths {
                        let cell = self
                            .bulk(transport, dir, size, d)
                            .and_then(|r| Some((r.mb_per_s?, r.ratio_to_tcp?)))
                            .map_or_else(|| "-".to_owned(), |(v, q)| format!("{v:.0} ({q:.2})"));
                        let _ = write!(s, "  {cell:>17}");
                    }
                    let _ = writeln!(s);
                }
            }
        }
        if let Some(&deepest) = depths.last() {
            let _ = writeln!(
                s,
                "\nCPU per byte moved, both ends, depth {deepest}: ns/B (ratio to raw TCP, lower is better)"
            );
            let _ = write!(s, "  {:<24}", "");
            for &size in &sizes {
                let _ = write!(s, "  {:>13}", size_label(size));
            }
            let _ = writeln!(s);
            let tcp_row = sizes.iter().map(|&size| {
                self.results
                    .iter()
                    .find(|r| r.kind == Kind::Tcp && r.urb_size == size)
                    .and_then(|r| r.cpu_ns_per_byte)
                    .map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"))
            });
            let _ = write!(s, "  {:<24}", "raw TCP");
            for cell in tcp_row {
                let _ = write!(s, "  {cell:>13}");
            }
            let _ = writeln!(s);
            for (transport, tlabel) in [("in-process", "in-process"), ("usbip", "USB/IP")] {
                for dir in ["in", "out"] {
                    let _ = write!(s, "  {:<24}", format!("{tlabel} {}", dir.to_uppercase()));
                    for &size in &sizes {
                        let cell = self
                            .bulk(transport, dir, size, deepest)
                            .and_then(|r| Some((r.cpu_ns_per_byte?, r.cpu_ratio_to_tcp?)))
                            .map_or_else(|| "-".to_owned(), |(v, q)| format!("{v:.2} ({q:.2})"));
                        let _ = write!(s, "  {cell:>13}");
                    }
                    let _ = writeln!(s);
                }
            }
        }
        let _ = writeln!(
            s,
            "\nControl round trip, one at a time (ratio = usbfn median / TCP ping-pong median)"
        );
        let _ = writeln!(
            s,
            "  {:<16} {:<36} {:>10} {:>10} {:>12} {:>7}",
            "transport", "request", "median us", "p99 us", "TCP med us", "ratio"
        );
        for r in self.results.iter().filter(|r| r.kind == Kind::Control) {
            let (Some(l), Some(t)) = (r.latency, r.tcp_latency) else {
                continue;
            };
            let request = if r.answered_by == Some("service") {
                "vendor 0x5c, 64 B (service answers)"
            } else {
                "GET_DESCRIPTOR, 18 B (core answers)"
            };
            let _ = writeln!(
                s,
                "  {:<16} {:<36} {:>10.1} {:>10.1} {:>12.1} {:>7.2}",
                r.transport,
                request,
                l.median_us,
                l.p99_us,
                t.median_us,
                r.ratio_to_tcp.unwrap_or(0.0)
            );
        }
        let _ = writeln!(
            s,
            "\nSetup-packet events to the service, 16 control requests queued"
        );
        let _ = writeln!(
            s,
            "  {:<16} {:>12} {:>14} {:>7}",
            "transport", "events/s", "TCP msgs/s", "ratio"
        );
        for r in self.results.iter().filter(|r| r.kind == Kind::Events) {
            let _ = writeln!(
                s,
                "  {:<16} {:>12.0} {:>14.0} {:>7.2}",
                r.transport,
                r.events_per_s.unwrap_or(0.0),
                r.tcp_messages_per_s.unwrap_or(0.0),
                r.ratio_to_tcp.unwrap_or(0.0)
            );
        }
        if !self.scale.is_empty() {
            let _ = writeln!(s, "\nScale: idle Gadget Zeros exported by one server");
            let _ = writeln!(
                s,
                "  {:>7} {:>10} {:>12} {:>9} {:>9} {:>12} {:>13} {:>12} {:>11} {:>11}",
                "devices",
                "RSS MB",
                "KiB/device",
                "setup s",
                "imported",
                "import med",
                "enumerate med",
                "total s",
                "list med",
                "list max"
            );
            for r in &self.scale {
                let _ = writeln!(
                    s,
                    "  {:>7} {:>10.1} {:>12.1} {:>9.2} {:>9} {:>9.0} us {:>10.0} us {:>12.2} {:>8.1} ms {:>8.1} ms",
                    r.devices,
                    r.rss_after_kib as f64 * 1024.0 / 1e6,
                    r.kib_per_device,
                    r.setup_s,
                    r.imported,
                    r.import_median_us,
                    r.enumerate_median_us,
                    r.import_total_s,
                    r.list_median_ms,
                    r.list_max_ms
                );
            }
        }
        let _ = writeln!(s, "\nTargets");
        for t in &self.targets {
            let verdict = match t.status {
                Status::Met => "met",
                Status::Missed => "MISSED",
                Status::NotMeasured => "not measured",
            };
            let d = t.decimals;
            let target = format!("{} {:.d$} {}", t.op.symbol(), t.threshold, t.unit);
            let measured = t
                .measured
                .map_or_else(|| "-".to_owned(), |v| format!("{v:.d$}"));
            let _ = writeln!(
                s,
                "  {:<52} {:>22} {:>8}  {}",
                t.name, target, measured, verdict
            );
        }
        let _ = writeln!(s, "\n(total {:.1} s)", self.elapsed_s);
        s
    }
}

/// `(op, threshold, unit, decimals shown)` applied to a measurement.
fn check(
    name: String,
    (op, threshold, unit, decimals): (Op, f64, &'static str, usize),
    value: Option<f64>,
) -> TargetCheck {
    let status = match value {
        Some(v) if op.holds(v, threshold) => Status::Met,
        Some(_) => Status::Missed,
        None => Status::NotMeasured,
    };
    TargetCheck {
        name,
        op,
        threshold,
        unit,
        measured: value,
        status,
        decimals,
    }
}

/// `512 B`, `64 KiB`, `1 MiB`.
pub(crate) fn size_label(size: usize) -> String {
    if size >= 1 << 20 && size.is_multiple_of(1 << 20) {
        format!("{} MiB", size >> 20)
    } else if size >= 1 << 10 && size.is_multiple_of(1 << 10) {
        format!("{} KiB", size >> 10)
    } else {
        format!("{size} B")
    }
}

/// How a raw TCP run's send buffer is named in the report: `auto` (the kernel's autotuning)
/// or the `SO_SNDBUF` bytes asked for.
pub(crate) fn send_buffer_label(send_buffer: Option<usize>) -> String {
    send_buffer.map_or_else(|| "auto".to_owned(), |n| n.to_string())
}
