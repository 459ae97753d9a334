//! Outgoing messages batched for one vectored write: headers and small payloads are packed
//! into one buffer, large payloads stay in the `Bytes` they arrived in and go to the socket
//! without being copied (`writev`).

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Payloads shorter than this are copied next to their header: one more `iovec` costs more
/// than copying a few hundred bytes.
const COPY_BELOW: usize = 4096;
/// `iovec`s handed to one `writev` (well below Linux's `IOV_MAX` of 1024).
const MAX_IOVECS: usize = 64;

/// Bytes waiting to be written, in order.
#[derive(Debug, Default)]
pub(crate) struct WriteBatch {
    /// Sealed chunks, written front to back.
    chunks: VecDeque<Bytes>,
    /// Where headers and small payloads are appended; sealed into `chunks` before a large
    /// payload and before writing.
    packed: BytesMut,
    /// Bytes in `chunks`.
    sealed: usize,
}

impl WriteBatch {
    pub(crate) fn with_capacity(capacity: usize) -> WriteBatch {
        WriteBatch {
            chunks: VecDeque::new(),
            packed: BytesMut::with_capacity(capacity),
            sealed: 0,
        }
    }

    /// Bytes waiting.
    pub(crate) fn len(&self) -> usize {
        self.sealed + self.packed.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The buffer to encode headers (and other small parts) into, after what is queued.
    pub(crate) fn packed(&mut self) -> &mut BytesMut {
        &mut self.packed
    }

    /// Queue a payload after what is queued: copied if small, referenced if not.
    pub(crate) fn payload(&mut self, data: Bytes) {
        if data.len() < COPY_BELOW {
            self.packed.extend_from_slice(&data);
        } else {
            self.seal();
            self.sealed += data.len();
            self.chunks.push_back(data);
        }
    }

    fn seal(&mut self) {
        if !self.packed.is_empty() {
            let chunk = self.packed.split().freeze();
            self.sealed += chunk.len();
            self.chunks.push_back(chunk);
        }
    }

    /// Write everything queued, with as few `writev` calls as the socket allows.
    pub(crate) async fn write_to<W: AsyncWrite + Unpin>(
        &mut self,
        writer: &mut W,
    ) -> std::io::Result<()> {
        self.seal();
        while !self.chunks.is_empty() {
            let mut iov = [IoSlice::new(&[]); MAX_IOVECS];
            let mut count = 0;
            for (slot, chunk) in iov.iter_mut().zip(self.chunks.iter()) {
                *slot = IoSlice::new(chunk);
                count += 1;
            }
            let mut written = writer.write_vectored(&iov[..count]).await?;
            if written == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            self.sealed -= written;
            while written > 0 {
                let Some(front) = self.chunks.front_mut() else {
                    break;
                };
                if written >= front.len() {
                    written -= front.len();
                    self.chunks.pop_front();
                } else {
                    front.advance(written);
                    written = 0;
                }
            }
        }
        // Nothing refers to the packed buffer's earlier parts any more: its space is reused.
        self.packed.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// A writer that takes at most `limit` bytes per call, to exercise partial writes.
    struct Trickle {
        got: Vec<u8>,
        limit: usize,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            let n = buf.len().min(self.limit);
            self.got.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<std::io::Result<usize>> {
            let mut left = self.limit;
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(left);
                self.got.extend_from_slice(&b[..take]);
                left -= take;
                n += take;
                if left == 0 {
                    break;
                }
            }
            Poll::Ready(Ok(n))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn bytes_go_out_in_order_across_partial_writes() {
        let big: Vec<u8> = (0..10_000u32)
            .map(|i| u8::try_from(i % 251).expect("below 251"))
            .collect();
        let mut expected = Vec::new();
        let mut batch = WriteBatch::with_capacity(16);
        for round in 0..100u8 {
            batch.packed().extend_from_slice(&[round; 48]);
            expected.extend_from_slice(&[round; 48]);
            let payload = if round % 3 == 0 {
                Bytes::from(big.clone())
            } else {
                Bytes::from(vec![round; usize::from(round)])
            };
            expected.extend_from_slice(&payload);
            batch.payload(payload);
        }
        assert_eq!(batch.len(), expected.len());
        for limit in [1, 7, 4096, usize::MAX] {
            let mut w = Trickle {
                got: Vec::new(),
                limit,
            };
            let mut copy = WriteBatch {
                chunks: batch.chunks.clone(),
                packed: batch.packed.clone(),
                sealed: batch.sealed,
            };
            copy.write_to(&mut w).await.expect("write");
            assert!(copy.is_empty());
            assert_eq!(w.got, expected, "limit {limit}");
        }
    }
}
