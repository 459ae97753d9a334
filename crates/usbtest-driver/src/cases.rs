//! Case lists (`0-14,17-21,24`) and per-case results.

use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;

use crate::errno;

/// Test numbers usbtest knows in Linux 6.1 (`TEST_CASES` in tools/usb/testusb.c is 30).
pub(crate) const KNOWN_CASES: u32 = 30;

/// Longest list a case specification may expand to (guards against `0-4000000000`).
const MAX_CASES: usize = 1024;

/// Parses `0-14,17-21,24,27-29` into the listed case numbers, in the order given.
pub(crate) fn parse_case_list(spec: &str) -> anyhow::Result<Vec<u32>> {
    let mut cases = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (parse_case(a)?, parse_case(b)?),
            None => {
                let n = parse_case(part)?;
                (n, n)
            }
        };
        if first > last {
            bail!("case range {part:?} runs backwards");
        }
        for n in first..=last {
            if cases.len() == MAX_CASES {
                bail!("case list {spec:?} expands to more than {MAX_CASES} cases");
            }
            cases.push(n);
        }
    }
    if cases.is_empty() {
        bail!("empty case list");
    }
    Ok(cases)
}

fn parse_case(text: &str) -> anyhow::Result<u32> {
    text.trim()
        .parse()
        .with_context(|| format!("case number {text:?}"))
}

/// How one case ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Outcome {
    Pass,
    /// The test does not apply to this device (usbtest returned `EOPNOTSUPP`).
    #[serde(rename = "n/a")]
    NotApplicable,
    Fail,
    /// The ioctl did not return within `--case-timeout`.
    Timeout,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CaseResult {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) label: Option<String>,
    pub(crate) case: u32,
    pub(crate) iterations: u32,
    pub(crate) length: u32,
    pub(crate) vary: u32,
    pub(crate) sglen: u32,
    pub(crate) result: Outcome,
    /// The errno the test returned (none on pass and timeout).
    pub(crate) errno: Option<i32>,
    pub(crate) errno_name: Option<String>,
    /// Duration the kernel measured (pass only).
    pub(crate) kernel_seconds: Option<f64>,
    /// Duration of the ioctl as this program saw it.
    pub(crate) wall_seconds: f64,
}

impl CaseResult {
    /// The text report line.
    pub(crate) fn line(&self) -> String {
        let label = self
            .label
            .as_deref()
            .map(|l| format!("{l} "))
            .unwrap_or_default();
        let outcome = match (self.result, self.errno) {
            (Outcome::Pass, _) => "pass".to_owned(),
            (Outcome::Timeout, _) => "TIMEOUT".to_owned(),
            (Outcome::NotApplicable, Some(e)) => format!("n/a ({} {e})", errno::display(e)),
            (Outcome::Fail, Some(e)) => format!("FAIL {} {e}", errno::display(e)),
            (_, None) => format!("{:?}", self.result),
        };
        let seconds = self.kernel_seconds.unwrap_or(self.wall_seconds);
        format!(
            "{label}case {:2} iterations {} length {} vary {} sglen {}: {outcome} {seconds:.6} s",
            self.case, self.iterations, self.length, self.vary, self.sglen
        )
    }
}

/// Seconds as a float for reports.
pub(crate) fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_standard_list() {
        let cases = parse_case_list("0-14,17-21,24,27-29").unwrap();
        let mut expected: Vec<u32> = (0..=14).chain(17..=21).collect();
        expected.extend([24, 27, 28, 29]);
        assert_eq!(cases, expected);
    }

    #[test]
    fn rejects_bad_lists() {
        assert!(parse_case_list("").is_err());
        assert!(parse_case_list("5-3").is_err());
        assert!(parse_case_list("a").is_err());
        assert!(parse_case_list("0-4000000000").is_err());
        assert_eq!(parse_case_list(" 3 , 1 ").unwrap(), vec![3, 1]);
    }

    #[test]
    fn formats_lines() {
        let mut r = CaseResult {
            label: Some("dummy".into()),
            case: 10,
            iterations: 10,
            length: 1024,
            vary: 512,
            sglen: 32,
            result: Outcome::Fail,
            errno: Some(32),
            errno_name: Some("EPIPE".into()),
            kernel_seconds: None,
            wall_seconds: 0.5,
        };
        assert_eq!(
            r.line(),
            "dummy case 10 iterations 10 length 1024 vary 512 sglen 32: FAIL EPIPE 32 0.500000 s"
        );
        r.result = Outcome::NotApplicable;
        r.errno = Some(95);
        assert!(r.line().contains(": n/a (EOPNOTSUPP 95) "));
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"result\":\"n/a\""), "{json}");
    }
}
