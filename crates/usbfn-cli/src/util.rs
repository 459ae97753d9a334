//! Small pieces every subcommand shares: addresses on the command line, how errors and logs
//! are printed.

use std::net::{SocketAddr, ToSocketAddrs};

/// `--listen HOST:PORT`: an address (`127.0.0.1:3240`, `[::1]:3240`) or a name that resolves
/// (`localhost:3240`); of a name's addresses the first IPv4 one is taken (what `usbip attach
/// -r localhost` reaches first), else the first.
pub(crate) fn listen_addr(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!(
            "{text:?} is not HOST:PORT (e.g. 127.0.0.1:3240, localhost:3240, [::1]:3240)"
        ));
    };
    if port.parse::<u16>().is_err() {
        return Err(format!(
            "{text:?}: the port {port:?} is not a number from 0 to 65535"
        ));
    }
    if host.is_empty() {
        return Err(format!("{text:?} has no host (e.g. 127.0.0.1:{port})"));
    }
    let addrs: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host:?}: {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("{host:?} resolves to no address"))
}

/// `--timeout SECONDS`: a positive number of seconds, at most a day.
pub(crate) fn seconds(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(s) if s > 0.0 && s <= 86_400.0 => Ok(s),
        _ => Err(format!(
            "{text:?} is not a number of seconds between 0 and 86400 (e.g. 5 or 0.5)"
        )),
    }
}

/// A byte count: `131072`, `128K`, `128M`, `1G` (binary multiples; `KiB`, `MiB`, `GiB` too).
pub(crate) fn bytes(text: &str) -> Result<usize, String> {
    let t = text.trim().to_ascii_uppercase();
    let t = t.strip_suffix("IB").map_or(t.as_str(), |s| s);
    let t = t.strip_suffix('B').unwrap_or(t);
    let (digits, shift) = match t.chars().last() {
        Some('K') => (&t[..t.len() - 1], 10),
        Some('M') => (&t[..t.len() - 1], 20),
        Some('G') => (&t[..t.len() - 1], 30),
        _ => (t, 0),
    };
    digits
        .trim()
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(1usize << shift))
        .ok_or_else(|| format!("{text:?} is not a byte count like 65536, 64K or 128M"))
}

/// An error and its causes on one line, each cause once: `"{e:#}"` would print a cause twice
/// when an error's message already includes its source's (as `"I/O error: {0}"` with
/// `#[source]` does).
pub(crate) fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if part.is_empty() || text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// Whether logs on stderr get ANSI colours: only on a terminal, and not when `NO_COLOR` is
/// set to anything non-empty (<https://no-color.org>).
pub(crate) fn log_colours(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_takes_addresses_and_names() {
        assert_eq!(
            listen_addr("127.0.0.1:3240"),
            Ok("127.0.0.1:3240".parse().expect("addr"))
        );
        assert_eq!(listen_addr("[::1]:0"), Ok("[::1]:0".parse().expect("addr")));
        let local = listen_addr("localhost:4000").expect("localhost resolves");
        assert!(local.ip().is_loopback(), "{local}");
        assert_eq!(local.port(), 4000);
    }

    #[test]
    fn listen_errors_say_what_is_wrong() {
        let e = listen_addr("localhost").expect_err("no port");
        assert!(e.contains("HOST:PORT"), "{e}");
        let e = listen_addr("localhost:99999").expect_err("port too large");
        assert!(e.contains("65535"), "{e}");
        let e = listen_addr(":3240").expect_err("no host");
        assert!(e.contains("no host"), "{e}");
    }

    #[test]
    fn byte_counts_take_binary_suffixes() {
        assert_eq!(bytes("65536"), Ok(65536));
        assert_eq!(bytes("64K"), Ok(65536));
        assert_eq!(bytes("128MiB"), Ok(128 << 20));
        assert_eq!(bytes("1g"), Ok(1 << 30));
        for bad in ["", "K", "lots", "-1", "99999999999999999999"] {
            assert!(bytes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn seconds_are_positive_and_bounded() {
        assert_eq!(seconds("5"), Ok(5.0));
        assert_eq!(seconds("0.25"), Ok(0.25));
        for bad in ["0", "-1", "NaN", "inf", "1e9", "soon"] {
            assert!(seconds(bad).is_err(), "{bad}");
        }
    }

    /// An error whose message includes its source's, as `#[error("...: {0}")]` with
    /// `#[source]` makes.
    #[derive(Debug)]
    struct Repeats(std::io::Error);

    impl std::fmt::Display for Repeats {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "I/O error talking to the server: {}", self.0)
        }
    }

    impl std::error::Error for Repeats {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let e = anyhow::Error::new(Repeats(io)).context("listing the devices of 127.0.0.1:1");
        let text = error_text(&e);
        assert_eq!(text.matches("refused").count(), 1, "{text}");
        assert!(
            text.starts_with("listing the devices of 127.0.0.1:1: I/O error"),
            "{text}"
        );
    }

    #[test]
    fn distinct_causes_are_all_kept() {
        let e = anyhow::anyhow!("inner").context("middle").context("outer");
        assert_eq!(error_text(&e), "outer: middle: inner");
    }

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert!(log_colours(true, None));
        assert!(log_colours(true, Some(OsStr::new(""))));
        assert!(!log_colours(true, Some(OsStr::new("1"))));
        assert!(!log_colours(false, None));
    }
}
