//! Which CPU the thread doing a device's FunctionFS I/O runs on ([`IoCpu`],
//! [`pin_io_thread`]).
//!
//! On FunctionFS every bulk IN byte is copied by the kernel inside `io_submit`, on the
//! submitting thread, under the endpoint file's mutex: streaming IN, that copy is most of
//! the I/O thread's time (usbtest 28 on dummy_hcd under QEMU TCG: `io_submit` was 75–85% of
//! it), while the controller's side of each transfer (dummy_hcd's timer, the completion
//! work item) runs elsewhere. Left to the scheduler the thread follows its wake-ups (they
//! come from FunctionFS's completion worker) onto the CPU the controller's work is on, and
//! the two take turns on one CPU while another idles; kept on one CPU of its own they run
//! side by side. Measured (docs/benchmarks.md, usbtest 27/28 against the kernel's
//! SourceSink under QEMU TCG, unpinned against pinned in one boot): 27 1.89× → 1.55× and
//! 1.93× → 1.39×, 28 1.36× → 1.25× and 1.26× → 1.26× on a quiet host; when the chosen CPU is
//! busy with something else (the vCPU sharing a host CPU with other work) the pinned thread
//! cannot move away and did as badly or worse. Not a robust gain, so not the default.

use std::fmt;
use std::str::FromStr;

/// Where the FunctionFS I/O thread runs.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum IoCpu {
    /// The last CPU the thread may run on, when it may run on more than one (the first
    /// CPUs are where interrupts usually land); else wherever the scheduler puts it.
    Auto,
    /// Wherever the scheduler puts it.
    #[default]
    Any,
    /// This CPU.
    Cpu(usize),
}

impl FromStr for IoCpu {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(IoCpu::Auto),
            "any" => Ok(IoCpu::Any),
            n => n
                .parse()
                .map(IoCpu::Cpu)
                .map_err(|_| format!("{n:?}: expected auto, any or a CPU number")),
        }
    }
}

impl fmt::Display for IoCpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IoCpu::Auto => f.write_str("auto"),
            IoCpu::Any => f.write_str("any"),
            IoCpu::Cpu(n) => write!(f, "{n}"),
        }
    }
}

/// The CPUs the calling thread may run on, in ascending order (`sched_getaffinity`). Also
/// used by `usbfn bench` to place its raw TCP baseline's threads.
pub fn allowed_cpus() -> std::io::Result<Vec<usize>> {
    crate::sys::allowed_cpus()
}

/// Keep the calling thread on `cpu` (`sched_setaffinity`).
pub fn pin_current_thread(cpu: usize) -> std::io::Result<()> {
    crate::sys::pin_thread(cpu)
}

/// Keep the calling thread (the one that will run the device's I/O) where `choice` says.
/// Returns the CPU it is now kept on, if any.
pub fn pin_io_thread(choice: IoCpu) -> std::io::Result<Option<usize>> {
    let cpu = match choice {
        IoCpu::Any => return Ok(None),
        IoCpu::Cpu(n) => n,
        IoCpu::Auto => match allowed_cpus()?[..] {
            [] | [_] => return Ok(None),
            [.., last] => last,
        },
    };
    pin_current_thread(cpu)?;
    Ok(Some(cpu))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_parse_and_print() {
        for s in ["auto", "any", "3"] {
            assert_eq!(s.parse::<IoCpu>().expect("valid").to_string(), s);
        }
        assert!("-1".parse::<IoCpu>().is_err());
        assert_eq!(pin_io_thread(IoCpu::Any).expect("no-op"), None);
    }

    #[test]
    fn auto_pins_a_thread_to_its_last_allowed_cpu() {
        std::thread::spawn(|| {
            let allowed = crate::sys::allowed_cpus().expect("sched_getaffinity");
            let pinned = pin_io_thread(IoCpu::Auto).expect("sched_setaffinity");
            if allowed.len() > 1 {
                assert_eq!(pinned, allowed.last().copied());
                assert_eq!(
                    crate::sys::allowed_cpus().expect("again"),
                    [allowed[allowed.len() - 1]]
                );
            } else {
                assert_eq!(pinned, None);
            }
        })
        .join()
        .expect("the test thread");
    }
}
