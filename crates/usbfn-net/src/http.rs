//! The embedded HTTP/1.1 server's connection state machine (no I/O: bytes in, bytes out).
//!
//! * `GET /bytes/N` streams N bytes, byte i = i mod 251 ([`pattern_byte`]), N ≤
//!   [`MAX_BYTES`];
//! * `POST /sink` (or `PUT`) reads and counts the body (Content-Length, else until the client
//!   closes its side) and answers with the count;
//! * `GET /stats` answers with the device's counters ([`crate::LinkStats`]) as text;
//! * `GET /` answers with a short index.
//!
//! One request per connection (`Connection: close`). The request head is bounded
//! ([`MAX_HEAD`]); anything else gets 400, 404, 405, 411, 413 or 501.

use std::time::Duration;

/// Longest request head (request line and headers) read.
pub const MAX_HEAD: usize = 8192;
/// Largest N of `GET /bytes/N` (1 TiB).
pub const MAX_BYTES: u64 = 1 << 40;
/// The modulus of the `/bytes` pattern.
pub const PATTERN_MODULUS: u64 = 251;

/// Byte `i` of a `/bytes/N` body.
pub fn pattern_byte(i: u64) -> u8 {
    // i % 251 < 251 fits a byte.
    u8::try_from(i % PATTERN_MODULUS).unwrap_or(0)
}

/// Fill `out` with the pattern starting at byte `offset`.
pub fn fill_pattern(out: &mut [u8], offset: u64) {
    // One period, repeated: copy slices of a table instead of dividing per byte.
    static TABLE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| (0..PATTERN_MODULUS * 2).map(pattern_byte).collect());
    let mut start = usize::try_from(offset % PATTERN_MODULUS).unwrap_or(0);
    let period = usize::try_from(PATTERN_MODULUS).unwrap_or(251);
    for chunk in out.chunks_mut(period) {
        if let Some(src) = table.get(start..start + chunk.len()) {
            chunk.copy_from_slice(src);
        }
        start = (start + chunk.len()) % period;
    }
}

/// What the connection wants next.
#[derive(Debug)]
pub enum Conn {
    /// Reading the request head.
    Head(Vec<u8>),
    /// Counting a request body: `left` bytes (None: until the client closes).
    Sink {
        /// Bytes still expected.
        left: Option<u64>,
        /// Bytes counted.
        count: u64,
        /// When the first body byte arrived.
        started: Option<Duration>,
    },
    /// Sending a prepared response, then (`body` > 0) the pattern.
    Send {
        /// Response head (and a short body).
        head: Vec<u8>,
        /// Bytes of `head` sent.
        sent: usize,
        /// Pattern bytes still to send.
        body_left: u64,
        /// Offset of the next pattern byte.
        offset: u64,
    },
    /// Everything is sent: close.
    Done,
}

/// Something the connection reports when a request ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finished {
    /// A body of `bytes` was counted in `elapsed`.
    Sunk {
        /// Bytes counted.
        bytes: u64,
        /// From the first to the last body byte.
        elapsed: Duration,
    },
}

impl Default for Conn {
    fn default() -> Self {
        Conn::Head(Vec::new())
    }
}

impl Conn {
    /// Feed received bytes; `stats` renders `/stats`. Returns how many were consumed (the
    /// rest stays in the socket) and what finished.
    pub fn receive(
        &mut self,
        data: &[u8],
        now: Duration,
        stats: &dyn Fn() -> String,
    ) -> (usize, Option<Finished>) {
        match self {
            Conn::Head(buf) => {
                let room = MAX_HEAD - buf.len();
                let take = data.len().min(room);
                buf.extend_from_slice(data.get(..take).unwrap_or_default());
                let Some(end) = find(buf, b"\r\n\r\n").map(|i| i + 4) else {
                    if buf.len() >= MAX_HEAD {
                        *self = respond(413, "request head too large (limit 8192 bytes)\n");
                    }
                    return (take, None);
                };
                // Bytes after the head belong to the body: give them back.
                let extra = buf.len() - end;
                let head = String::from_utf8_lossy(buf.get(..end).unwrap_or_default()).into_owned();
                *self = route(&head, stats);
                let consumed = take - extra.min(take);
                if extra > 0
                    && let Conn::Sink { .. } = self
                {
                    let (n, f) =
                        self.receive(data.get(consumed..take).unwrap_or_default(), now, stats);
                    return (consumed + n, f);
                }
                (consumed, self.finish_sink(now))
            }
            Conn::Sink {
                left,
                count,
                started,
            } => {
                let take = match left {
                    // Saturating is right: a length beyond usize is more than any buffer holds; min() bounds it.
                    Some(l) => usize::try_from(*l).unwrap_or(usize::MAX).min(data.len()),
                    None => data.len(),
                };
                if take > 0 {
                    started.get_or_insert(now);
                }
                *count += take as u64;
                if let Some(l) = left {
                    *l -= take as u64;
                }
                (take, self.finish_sink(now))
            }
            // A client sending more than its request: read and ignore.
            Conn::Send { .. } | Conn::Done => (data.len(), None),
        }
    }

    /// The client closed its side.
    pub fn receive_fin(&mut self, now: Duration) -> Option<Finished> {
        match self {
            Conn::Sink { left, .. } if left.is_none() => {
                *left = Some(0);
                self.finish_sink(now)
            }
            Conn::Sink { .. } | Conn::Head(_) => {
                *self = Conn::Done;
                None
            }
            _ => None,
        }
    }

    fn finish_sink(&mut self, now: Duration) -> Option<Finished> {
        if let Conn::Sink {
            left: Some(0),
            count,
            started,
        } = *self
        {
            let elapsed = started.map(|s| now.saturating_sub(s)).unwrap_or_default();
            *self = respond(200, &format!("received {count} bytes\n"));
            return Some(Finished::Sunk {
                bytes: count,
                elapsed,
            });
        }
        None
    }

    /// Write what is due into `out` (the socket's free send space); returns bytes written.
    pub fn send(&mut self, out: &mut [u8]) -> usize {
        let Conn::Send {
            head,
            sent,
            body_left,
            offset,
        } = self
        else {
            return 0;
        };
        let mut n = 0;
        if let Some(rest) = head.get(*sent..)
            && !rest.is_empty()
        {
            n = rest.len().min(out.len());
            if let (Some(dst), Some(src)) = (out.get_mut(..n), rest.get(..n)) {
                dst.copy_from_slice(src);
            }
            *sent += n;
        }
        let body = usize::try_from(*body_left)
            // Saturating is right: min() bounds it by what is left of the buffer.
            .unwrap_or(usize::MAX)
            .min(out.len() - n);
        if body > 0
            && let Some(dst) = out.get_mut(n..n + body)
        {
            fill_pattern(dst, *offset);
            *offset += body as u64;
            *body_left -= body as u64;
            n += body;
        }
        if *sent >= head.len() && *body_left == 0 {
            *self = Conn::Done;
        }
        n
    }

    /// Everything was written: the socket may close.
    pub fn is_done(&self) -> bool {
        matches!(self, Conn::Done)
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn respond(status: u16, body: &str) -> Conn {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Content Too Large",
        _ => "Not Implemented",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    Conn::Send {
        head: head.into_bytes(),
        sent: 0,
        body_left: 0,
        offset: 0,
    }
}

fn route(head: &str, stats: &dyn Fn() -> String) -> Conn {
    let mut lines = head.split("\r\n");
    let mut request = lines.next().unwrap_or_default().split(' ');
    let (method, target) = (
        request.next().unwrap_or_default(),
        request.next().unwrap_or_default(),
    );
    let header = |name: &str| {
        head.split("\r\n").skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    let path = target.split('?').next().unwrap_or_default();
    match (method, path) {
        ("GET" | "HEAD", p) if p.starts_with("/bytes/") => {
            let n = p.trim_start_matches("/bytes/");
            match n.parse::<u64>() {
                Ok(n) if n <= MAX_BYTES => {
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {n}\r\nConnection: close\r\n\r\n"
                    );
                    Conn::Send {
                        head: head.into_bytes(),
                        sent: 0,
                        body_left: if method == "HEAD" { 0 } else { n },
                        offset: 0,
                    }
                }
                Ok(_) => respond(413, "N is larger than 2^40\n"),
                Err(_) => respond(400, "/bytes/N needs a decimal N\n"),
            }
        }
        ("GET", "/stats") => respond(200, &stats()),
        ("GET", "/") => respond(
            200,
            "usbfn network function: GET /bytes/N, POST /sink, GET /stats\n",
        ),
        ("POST" | "PUT", "/sink") => {
            if header("transfer-encoding").is_some_and(|v| !v.eq_ignore_ascii_case("identity")) {
                return respond(
                    501,
                    "chunked bodies are not supported: send Content-Length\n",
                );
            }
            match header("content-length").map(|v| v.parse::<u64>()) {
                Some(Ok(n)) => Conn::Sink {
                    left: Some(n),
                    count: 0,
                    started: None,
                },
                Some(Err(_)) => respond(400, "Content-Length is not a number\n"),
                None => Conn::Sink {
                    left: None,
                    count: 0,
                    started: None,
                },
            }
        }
        (_, "/sink" | "/stats" | "/") => respond(405, "method not allowed\n"),
        (m, _) if m.is_empty() || !head.starts_with(m) => respond(400, "bad request line\n"),
        _ => respond(404, "not found: GET /bytes/N, POST /sink, GET /stats\n"),
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)]
mod tests {
    use super::*;

    fn drain(conn: &mut Conn, chunk: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; chunk];
        while !conn.is_done() {
            let n = conn.send(&mut buf);
            assert!(n > 0, "progress");
            out.extend_from_slice(&buf[..n]);
        }
        out
    }

    fn no_stats() -> String {
        "stats\n".into()
    }

    #[test]
    fn pattern_fill_matches_the_definition_at_any_offset() {
        for offset in [0u64, 1, 250, 251, 252, 1000, (1 << 33) + 7] {
            let mut buf = vec![0u8; 1300];
            fill_pattern(&mut buf, offset);
            for (i, b) in buf.iter().enumerate() {
                assert_eq!(
                    *b,
                    ((offset + i as u64) % 251) as u8,
                    "offset {offset} i {i}"
                );
            }
        }
    }

    #[test]
    fn get_bytes_streams_the_pattern_in_any_chunking() {
        let mut c = Conn::default();
        let req = b"GET /bytes/1000 HTTP/1.1\r\nHost: x\r\n\r\n";
        // In two pieces, the split inside the terminator.
        assert_eq!(c.receive(&req[..20], Duration::ZERO, &no_stats), (20, None));
        let (n, f) = c.receive(&req[20..], Duration::ZERO, &no_stats);
        assert_eq!((n, f), (req.len() - 20, None));
        let out = drain(&mut c, 97);
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("Content-Length: 1000\r\n"));
        let body = &out[find(&out, b"\r\n\r\n").expect("head") + 4..];
        assert_eq!(body.len(), 1000);
        assert!(body.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
    }

    #[test]
    fn post_sink_counts_the_body_even_when_it_comes_with_the_head() {
        let mut c = Conn::default();
        let mut req = b"POST /sink HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123".to_vec();
        let (n, f) = c.receive(&req, Duration::from_secs(1), &no_stats);
        assert_eq!((n, f), (req.len(), None));
        // More than the body: the extra stays unconsumed.
        req = b"456789EXTRA".to_vec();
        let (n, f) = c.receive(&req, Duration::from_secs(3), &no_stats);
        assert_eq!(n, 6);
        assert_eq!(
            f,
            Some(Finished::Sunk {
                bytes: 10,
                elapsed: Duration::from_secs(2)
            })
        );
        let text = String::from_utf8(drain(&mut c, 1000)).expect("text");
        assert!(text.ends_with("received 10 bytes\n"), "{text}");
    }

    #[test]
    fn post_without_length_counts_until_fin() {
        let mut c = Conn::default();
        c.receive(b"POST /sink HTTP/1.0\r\n\r\n", Duration::ZERO, &no_stats);
        assert_eq!(
            c.receive(&[7; 5000], Duration::ZERO, &no_stats),
            (5000, None)
        );
        assert_eq!(
            c.receive_fin(Duration::ZERO),
            Some(Finished::Sunk {
                bytes: 5000,
                elapsed: Duration::ZERO
            })
        );
        assert!(
            String::from_utf8(drain(&mut c, 64))
                .expect("text")
                .contains("received 5000 bytes")
        );
    }

    #[test]
    fn bad_requests_get_an_error_status_never_a_panic() {
        let cases: &[(&[u8], &str)] = &[
            (b"GET /bytes/x HTTP/1.1\r\n\r\n", "400"),
            (b"GET /bytes/99999999999999999 HTTP/1.1\r\n\r\n", "413"),
            (b"GET /nope HTTP/1.1\r\n\r\n", "404"),
            (b"DELETE /sink HTTP/1.1\r\n\r\n", "405"),
            (
                b"POST /sink HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                "501",
            ),
            (b"POST /sink HTTP/1.1\r\nContent-Length: -1\r\n\r\n", "400"),
            (b"\r\n\r\n", "400"),
            (b"GET /stats HTTP/1.1\r\n\r\n", "200"),
        ];
        for (req, status) in cases {
            let mut c = Conn::default();
            c.receive(req, Duration::ZERO, &no_stats);
            let text = String::from_utf8(drain(&mut c, 50)).expect("text");
            assert!(text.starts_with(&format!("HTTP/1.1 {status}")), "{text}");
        }
        let mut c = Conn::default();
        let (n, _) = c.receive(&vec![b'a'; MAX_HEAD + 100], Duration::ZERO, &no_stats);
        assert_eq!(n, MAX_HEAD);
        assert!(
            String::from_utf8(drain(&mut c, 50))
                .expect("text")
                .starts_with("HTTP/1.1 413")
        );
    }
}
