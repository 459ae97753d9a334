//! Scale: N idle Gadget Zero devices exported by one server. Each N runs in a child process
//! of its own (`usbfn bench --scale-child N`), so resident memory is not polluted by earlier
//! runs: the child reports VmRSS before and after building the devices, and the time to
//! import and enumerate them.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use usbfn::Controller;
use usbfn::functions::gadget_zero;
use usbfn_usbip::client;

use super::stats::Latency;
use super::target;

/// What one child reports.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct ScaleResult {
    pub(crate) devices: usize,
    pub(crate) rss_before_kib: u64,
    pub(crate) rss_after_kib: u64,
    pub(crate) kib_per_device: f64,
    /// Building, activating and exporting every device.
    pub(crate) setup_s: f64,
    /// Devices imported (and enumerated), one at a time.
    pub(crate) imported: usize,
    /// Connect + OP_REQ_IMPORT until the reply.
    pub(crate) import_median_us: f64,
    pub(crate) import_p99_us: f64,
    /// Reading every descriptor the way a host does after reset.
    pub(crate) enumerate_median_us: f64,
    pub(crate) enumerate_p99_us: f64,
    /// Import + enumerate of all `imported` devices, one after the other.
    pub(crate) import_total_s: f64,
    /// OP_REQ_DEVLIST on a fresh connection until every device of the answer is decoded
    /// (what `usbip list` / `usbfn list` wait for), median and slowest of [`LIST_ROUNDS`].
    #[serde(default)]
    pub(crate) list_median_ms: f64,
    #[serde(default)]
    pub(crate) list_max_ms: f64,
    /// Bytes of one OP_REP_DEVLIST answer.
    #[serde(default)]
    pub(crate) list_bytes: usize,
    /// VmRSS after the imports and the listings (the client's copies of the lists freed).
    #[serde(default)]
    pub(crate) rss_listed_kib: u64,
}

/// OP_REQ_DEVLIST rounds per scale run.
const LIST_ROUNDS: usize = 5;

/// VmRSS of this process in KiB.
fn rss_kib() -> anyhow::Result<u64> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS in /proc/self/status")?;
    let kib = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kib)
}

/// Run in the child: build `n` devices, measure, print one JSON line on stdout.
pub(crate) async fn child(n: usize, sample: usize) -> anyhow::Result<()> {
    // Let the runtime's threads and the allocator settle before the baseline.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let before = rss_kib()?;
    let start = Instant::now();
    let mut controllers = Vec::with_capacity(n);
    for _ in 0..n {
        let controller = Controller::new(&gadget_zero::config())?;
        let iface = controller.open(gadget_zero::INTERFACE_NAME)?;
        tokio::spawn(gadget_zero::run(iface, gadget_zero::Options::default()));
        controllers.push(controller);
    }
    for c in &controllers {
        let mut ready = c.ready_watch();
        tokio::time::timeout(Duration::from_secs(10), ready.wait_for(|r| *r))
            .await
            .context("a device did not activate in time")??;
    }
    let (addr, _server) = target::serve(controllers).await?;
    let setup_s = start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let after = rss_kib()?;

    // Import a spread of devices: every one when `sample` >= n.
    let picks: Vec<usize> = if sample >= n {
        (1..=n).collect()
    } else {
        let step = n.div_ceil(sample.max(1));
        (1..=n).step_by(step.max(1)).chain([n]).collect()
    };
    let mut imports = Vec::with_capacity(picks.len());
    let mut enumerations = Vec::with_capacity(picks.len());
    let all = Instant::now();
    for port in &picks {
        let busid = format!("1-{port}");
        let t = Instant::now();
        let dev = client::import(addr, &busid).await?;
        imports.push(t.elapsed());
        let t = Instant::now();
        let tree = dev.enumerate(None).await?;
        enumerations.push(t.elapsed());
        if tree.device.id_vendor != 0x0525 {
            bail!("device {busid} enumerated as {:04x}", tree.device.id_vendor);
        }
    }
    let import_total_s = all.elapsed().as_secs_f64();

    // Every device listed, as a host's `usbip list -r` asks for them.
    let limits = usbfn_usbip::proto::Limits {
        max_devices: n.max(1),
        ..usbfn_usbip::proto::Limits::default()
    };
    let mut lists = Vec::with_capacity(LIST_ROUNDS);
    let mut list_bytes = 0;
    for _ in 0..LIST_ROUNDS {
        let t = Instant::now();
        let devices = client::list_devices_with_limits(addr, limits).await?;
        lists.push(t.elapsed().as_secs_f64() * 1e3);
        if devices.len() != n {
            bail!("OP_REP_DEVLIST listed {} devices of {n}", devices.len());
        }
        list_bytes = devlist_bytes(&devices);
    }
    lists.sort_by(f64::total_cmp);
    let list_median_ms = lists.get(lists.len() / 2).copied().unwrap_or(0.0);
    let list_max_ms = lists.last().copied().unwrap_or(0.0);
    let rss_listed_kib = rss_kib()?;
    let imported = imports.len();
    let import = Latency::from_samples(imports);
    let enumerate = Latency::from_samples(enumerations);
    let result = ScaleResult {
        devices: n,
        rss_before_kib: before,
        rss_after_kib: after,
        kib_per_device: after.saturating_sub(before) as f64 / n.max(1) as f64,
        setup_s,
        imported,
        import_median_us: import.median_us,
        import_p99_us: import.p99_us,
        enumerate_median_us: enumerate.median_us,
        enumerate_p99_us: enumerate.p99_us,
        import_total_s,
        list_median_ms,
        list_max_ms,
        list_bytes,
        rss_listed_kib,
    };
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

/// Size of the OP_REP_DEVLIST that carried `devices`: the 12-byte op header with the count,
/// then per device its 312-byte block and 4 bytes per interface.
fn devlist_bytes(devices: &[usbfn_usbip::proto::ExportedDevice]) -> usize {
    use usbfn_usbip::proto::op::{USB_DEVICE_LEN, USB_INTERFACE_LEN};
    12 + devices
        .iter()
        .map(|d| USB_DEVICE_LEN + USB_INTERFACE_LEN * d.interfaces.len())
        .sum::<usize>()
}

/// Run in the parent: one child per `n`.
pub(crate) async fn measure(n: usize, sample: usize) -> anyhow::Result<ScaleResult> {
    let exe = std::env::current_exe().context("locating the usbfn binary")?;
    let args = [
        "bench".to_owned(),
        "--scale-child".to_owned(),
        n.to_string(),
        "--scale-sample".to_owned(),
        sample.to_string(),
    ];
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(exe)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .output()
    })
    .await?
    .context("running the scale child")?;
    if !output.status.success() {
        bail!("scale run with {n} devices failed ({})", output.status);
    }
    let text = String::from_utf8(output.stdout)?;
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .context("the scale child printed no result")?;
    Ok(serde_json::from_str(line)?)
}
