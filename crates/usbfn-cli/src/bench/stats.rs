//! Latency summaries and CPU time.

use std::time::Duration;

/// Percentiles of a set of round-trip times.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub(crate) struct Latency {
    pub(crate) samples: usize,
    pub(crate) median_us: f64,
    pub(crate) p99_us: f64,
    pub(crate) min_us: f64,
}

impl Latency {
    pub(crate) fn from_samples(mut samples: Vec<Duration>) -> Latency {
        samples.sort_unstable();
        // Nearest rank: the sample at index ceil(per_mille * n / 1000) - 1.
        let at = |per_mille: usize| -> f64 {
            let n = samples.len();
            if n == 0 {
                return 0.0;
            }
            let rank = (n * per_mille).div_ceil(1000).clamp(1, n);
            samples[rank - 1].as_secs_f64() * 1e6
        };
        Latency {
            samples: samples.len(),
            median_us: at(500),
            p99_us: at(990),
            min_us: samples.first().map_or(0.0, |d| d.as_secs_f64() * 1e6),
        }
    }
}

/// CPU time this process has used so far (user + system, every thread), in seconds.
pub(crate) fn process_cpu_seconds() -> f64 {
    let Some(usage) = rusage() else {
        return 0.0;
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Context switches of this process so far (voluntary + involuntary, every thread): each
/// voluntary one is a thread going to sleep to wait for a wake-up, so the difference over a
/// run counts the wake-ups it cost, whatever the machine's load.
pub(crate) fn process_context_switches() -> u64 {
    rusage().map_or(0, |u| {
        u64::try_from(u.ru_nvcsw).unwrap_or(0) + u64::try_from(u.ru_nivcsw).unwrap_or(0)
    })
}

#[allow(unsafe_code)] // getrusage, with its SAFETY comments
fn rusage() -> Option<libc::rusage> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes one `rusage` through the valid pointer it is given and reads
    // nothing else; RUSAGE_SELF is always a valid `who`.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: getrusage returned 0, so it filled the struct (and it was zeroed before).
    Some(unsafe { usage.assume_init() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let samples = (1..=100).map(Duration::from_micros).collect();
        let l = Latency::from_samples(samples);
        assert_eq!(l.samples, 100);
        assert!((l.median_us - 50.0).abs() < 1e-6);
        assert!((l.p99_us - 99.0).abs() < 1e-6);
        assert!((l.min_us - 1.0).abs() < 1e-6);
        let empty = Latency::from_samples(Vec::new());
        assert_eq!(empty.samples, 0);
    }

    #[test]
    fn cpu_time_moves_forward() {
        let before = process_cpu_seconds();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(process_cpu_seconds() >= before);
    }
}
