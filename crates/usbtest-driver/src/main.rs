//! `usbtest-driver`: runs the Linux kernel's `usbtest` cases against a device through usbfs.
//!
//! usbfn's own front end to `drivers/usb/misc/usbtest.c`, in the role of the kernel's
//! `tools/usb/testusb.c`: it finds the interface bound to usbtest (by `VID:PID`, sysfs path or
//! `/dev/bus/usb/BBB/DDD`), issues `USBDEVFS_IOCTL` carrying `USBTEST_REQUEST_64` for each
//! listed case, and prints one line per case (or one JSON object per line with `--json`).
//!
//! ```text
//! usbtest-driver --device 0525:a4a0 --cases 0-14,17-21,24,27-29 --iterations 100 \
//!     --length 1024 --vary 512 --sglen 32
//! ```
//!
//! Exit status: 0 when every case passed or did not apply (`EOPNOTSUPP`), 1 when a case
//! failed, 2 when the device could not be found or opened, 3 when a case timed out. A timeout or
//! a disconnect (`ENODEV`, `ESHUTDOWN`) ends the run: later cases are not attempted.

mod cases;
mod device;
mod errno;
#[allow(unsafe_code)] // the USBDEVFS_IOCTL call, with its SAFETY comment
mod ioctl;

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use serde::Serialize;

use cases::{CaseResult, Outcome};
use device::{Selector, TestDevice};
use ioctl::UsbtestParam64;

/// Run Linux usbtest cases against a USB device through usbfs.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Device: VID:PID (hex), a /sys path of the device or interface, or
    /// /dev/bus/usb/BBB/DDD. Default: the first interface bound to usbtest.
    #[arg(short, long)]
    device: Option<Selector>,
    /// Cases to run, e.g. 0-14,17-21,24,27-29.
    #[arg(short, long, default_value = "0-14,17-21,24,27-29")]
    cases: String,
    /// Iterations per case.
    #[arg(short, long, default_value_t = 1000)]
    iterations: u32,
    /// Transfer length in bytes.
    #[arg(short, long, default_value_t = 1024)]
    length: u32,
    /// Length variation (tests 3, 4, 7, 8, 14, 21; 14 and 21 need vary < length).
    #[arg(short, long, default_value_t = 512)]
    vary: u32,
    /// Scatter-gather list length / queue depth (tests 5-8, 15, 16, 22, 23, 27, 28).
    #[arg(short, long, default_value_t = 32)]
    sglen: u32,
    /// Seconds to wait for the device to appear and bind to usbtest.
    #[arg(short, long, default_value_t = 0.0)]
    wait: f64,
    /// Give up (report TIMEOUT and exit 3) when one case runs longer than this many
    /// seconds; 0 means no limit.
    #[arg(long, default_value_t = 0.0)]
    case_timeout: f64,
    /// Print one JSON object per line instead of text.
    #[arg(long)]
    json: bool,
    /// Label prefixed to every result line (or added to every JSON object).
    #[arg(long)]
    label: Option<String>,
    /// List the interfaces bound to usbtest and exit.
    #[arg(long)]
    list: bool,
    /// Root of sysfs.
    #[arg(long, default_value = "/sys", hide = true)]
    sysfs: PathBuf,
}

/// The closing summary.
#[derive(Debug, Serialize)]
struct Summary<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<&'a str>,
    summary: Counts,
}

#[derive(Debug, Default, Serialize)]
struct Counts {
    pass: usize,
    not_applicable: usize,
    fail: usize,
    timeout: usize,
    seconds: f64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(Verdict::Passed) => ExitCode::SUCCESS,
        Ok(Verdict::Failed) => ExitCode::from(1),
        Ok(Verdict::TimedOut) => ExitCode::from(3),
        Err(e) => {
            eprintln!("usbtest-driver: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Every case passed or did not apply.
    Passed,
    /// Some case failed.
    Failed,
    /// A case did not return within `--case-timeout`; later cases did not run.
    TimedOut,
}

/// Runs the listed cases.
fn run(args: &Args) -> anyhow::Result<Verdict> {
    let cases = cases::parse_case_list(&args.cases)?;
    for &case in &cases {
        if case >= cases::KNOWN_CASES {
            eprintln!("usbtest-driver: warning: case {case} is beyond Linux 6.1's 0..29");
        }
    }
    if args.list {
        for dev in device::bound_devices(&args.sysfs)? {
            println!("{dev}");
        }
        return Ok(Verdict::Passed);
    }
    let selector = args.device.clone().unwrap_or(Selector::Any);
    let wait = Duration::try_from_secs_f64(args.wait).context("--wait")?;
    let case_timeout = Duration::try_from_secs_f64(args.case_timeout).context("--case-timeout")?;
    let dev = device::find(&args.sysfs, &selector, wait)?;
    let node = dev.dev_node();
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&node)
        .with_context(|| format!("opening {} (is devtmpfs mounted on /dev?)", node.display()))?;
    let file = Arc::new(file);
    report_device(args, &dev)?;

    let started = Instant::now();
    let mut counts = Counts::default();
    for case in cases {
        let param = UsbtestParam64 {
            test_num: case,
            iterations: args.iterations,
            length: args.length,
            vary: args.vary,
            sglen: args.sglen,
            ..UsbtestParam64::default()
        };
        let result = run_case(args, &file, dev.interface, param, case_timeout);
        match result.result {
            Outcome::Pass => counts.pass += 1,
            Outcome::NotApplicable => counts.not_applicable += 1,
            Outcome::Fail => counts.fail += 1,
            Outcome::Timeout => counts.timeout += 1,
        }
        emit(args, &result.line(), &result)?;
        if result.result == Outcome::Timeout {
            // The ioctl is still running in the kernel and cannot be cancelled; stop here.
            break;
        }
        if matches!(result.errno, Some(libc::ENODEV | libc::ESHUTDOWN)) {
            // The device is gone (disconnected): every later case would fail the same way.
            eprintln!("usbtest-driver: device disconnected during case {case}; stopping");
            break;
        }
    }
    counts.seconds = cases::seconds(started.elapsed());
    let verdict = if counts.timeout > 0 {
        Verdict::TimedOut
    } else if counts.fail > 0 {
        Verdict::Failed
    } else {
        Verdict::Passed
    };
    let text = format!(
        "{}summary: {} pass, {} n/a, {} fail, {} timeout, {:.3} s",
        args.label
            .as_deref()
            .map(|l| format!("{l} "))
            .unwrap_or_default(),
        counts.pass,
        counts.not_applicable,
        counts.fail,
        counts.timeout,
        counts.seconds
    );
    emit(
        args,
        &text,
        &Summary {
            label: args.label.as_deref(),
            summary: counts,
        },
    )?;
    Ok(verdict)
}

/// Runs one case in a worker thread so a hung ioctl can be reported.
fn run_case(
    args: &Args,
    file: &Arc<File>,
    interface: u8,
    mut param: UsbtestParam64,
    timeout: Duration,
) -> CaseResult {
    let started = Instant::now();
    let (tx, rx) = mpsc::channel();
    let worker_file = Arc::clone(file);
    thread::spawn(move || {
        let outcome = ioctl::usbtest_request(&worker_file, interface, &mut param);
        // The receiver is gone only after a timeout, when nobody needs the answer.
        let _ = tx.send((
            outcome.map_err(|e| e.raw_os_error().unwrap_or(libc::EIO)),
            param,
        ));
    });
    let received = if timeout.is_zero() {
        rx.recv().ok()
    } else {
        rx.recv_timeout(timeout).ok()
    };
    let wall_seconds = cases::seconds(started.elapsed());
    let mut result = CaseResult {
        label: args.label.clone(),
        case: param.test_num,
        iterations: param.iterations,
        length: param.length,
        vary: param.vary,
        sglen: param.sglen,
        result: Outcome::Timeout,
        errno: None,
        errno_name: None,
        kernel_seconds: None,
        wall_seconds,
    };
    match received {
        None => {}
        Some((Ok(()), done)) => {
            result.result = Outcome::Pass;
            result.kernel_seconds = Some(cases::seconds(done.duration()));
        }
        Some((Err(e), _)) => {
            result.result = if e == libc::EOPNOTSUPP {
                Outcome::NotApplicable
            } else {
                Outcome::Fail
            };
            result.errno = Some(e);
            result.errno_name = errno::describe(e);
        }
    }
    result
}

fn report_device(args: &Args, dev: &TestDevice) -> anyhow::Result<()> {
    #[derive(Serialize)]
    struct DeviceLine<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        label: Option<&'a str>,
        device: &'a TestDevice,
        speed_name: &'a str,
        dev_node: PathBuf,
    }
    let label = args
        .label
        .as_deref()
        .map(|l| format!("{l} "))
        .unwrap_or_default();
    let line = DeviceLine {
        label: args.label.as_deref(),
        device: dev,
        speed_name: dev.speed_name(),
        dev_node: dev.dev_node(),
    };
    emit(args, &format!("{label}device {dev}"), &line)
}

/// Prints `text`, or `json` as one line with `--json`; flushes so a serial console sees it.
fn emit<T: Serialize>(args: &Args, text: &str, json: &T) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, json)?;
        writeln!(out)?;
    } else {
        writeln!(out, "{text}")?;
    }
    out.flush()?;
    Ok(())
}
