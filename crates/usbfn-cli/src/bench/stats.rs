//! Latency summaries.

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
}
