//! The table of a connection's outstanding requests (sans-IO): admits a request only within
//! [`MAX_OUTSTANDING_REQUESTS`](crate::MAX_OUTSTANDING_REQUESTS) and
//! [`MAX_BUFFERED_BYTES`](crate::MAX_BUFFERED_BYTES), refuses a reused id, and carries a
//! value per request (the daemon keeps the request's cancel signal there).

#![forbid(unsafe_code)]

use std::collections::HashMap;

use crate::error::LimitError;

/// Outstanding requests by id, with the buffer bytes each holds.
#[derive(Debug)]
pub struct Outstanding<T> {
    entries: HashMap<u64, (usize, T)>,
    bytes: usize,
    max_requests: usize,
    max_bytes: usize,
}

impl<T> Outstanding<T> {
    /// A table with these limits.
    pub fn new(max_requests: usize, max_bytes: usize) -> Self {
        Outstanding {
            entries: HashMap::new(),
            bytes: 0,
            max_requests,
            max_bytes,
        }
    }

    /// A table with the protocol's limits.
    pub fn with_protocol_limits() -> Self {
        Self::new(crate::MAX_OUTSTANDING_REQUESTS, crate::MAX_BUFFERED_BYTES)
    }

    /// Admit request `id` holding `bytes` of buffers.
    pub fn admit(&mut self, id: u64, bytes: usize, value: T) -> Result<(), LimitError> {
        if self.entries.contains_key(&id) {
            return Err(LimitError::DuplicateId { id });
        }
        if self.entries.len() >= self.max_requests {
            return Err(LimitError::TooManyRequests {
                outstanding: self.entries.len(),
                limit: self.max_requests,
            });
        }
        let wanted = self.bytes.saturating_add(bytes);
        if wanted > self.max_bytes {
            return Err(LimitError::TooManyBytes {
                wanted,
                limit: self.max_bytes,
            });
        }
        self.bytes = wanted;
        self.entries.insert(id, (bytes, value));
        Ok(())
    }

    /// The request finished: forget it and free its bytes. Its value, if it was outstanding.
    pub fn finish(&mut self, id: u64) -> Option<T> {
        let (bytes, value) = self.entries.remove(&id)?;
        self.bytes -= bytes;
        Some(value)
    }

    /// The value of an outstanding request.
    pub fn get_mut(&mut self, id: u64) -> Option<&mut T> {
        self.entries.get_mut(&id).map(|(_, v)| v)
    }

    /// Requests outstanding.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is outstanding.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Buffer bytes outstanding.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_named_and_freed() {
        let mut t = Outstanding::new(2, 100);
        t.admit(1, 60, ()).expect("first");
        assert_eq!(t.admit(1, 1, ()), Err(LimitError::DuplicateId { id: 1 }));
        assert_eq!(
            t.admit(2, 50, ()),
            Err(LimitError::TooManyBytes {
                wanted: 110,
                limit: 100
            })
        );
        t.admit(2, 40, ()).expect("second");
        let e = t.admit(3, 0, ()).expect_err("third");
        assert_eq!(
            e,
            LimitError::TooManyRequests {
                outstanding: 2,
                limit: 2
            }
        );
        assert!(e.to_string().contains("MAX_OUTSTANDING_REQUESTS 2"), "{e}");
        assert_eq!(t.bytes(), 100);
        assert_eq!(t.finish(1), Some(()));
        assert_eq!(t.finish(1), None);
        assert_eq!((t.len(), t.bytes()), (1, 40));
        t.admit(3, 60, ()).expect("room again");
        assert!(!t.is_empty());
    }

    #[test]
    fn values_are_kept() {
        let mut t = Outstanding::with_protocol_limits();
        t.admit(7, 0, String::from("a")).expect("admit");
        if let Some(v) = t.get_mut(7) {
            v.push('b');
        }
        assert_eq!(t.finish(7).as_deref(), Some("ab"));
        assert!(t.get_mut(7).is_none());
    }
}
