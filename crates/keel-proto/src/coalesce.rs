//! HTTP/2 connections that send what is queued in one socket write.
//!
//! The `h2` crate under tonic and hyper flushes the socket every time its connection
//! task has queued frames, and frames come from many tasks. A unary request from
//! tonic's client is three writes: HEADERS, a DATA frame with the message, and an
//! empty DATA frame with END_STREAM. A server answering a batch of applied writes
//! writes once per woken stream. On loopback the writer also pays for the receiver's
//! TCP processing, and every write wakes the reader. grpc-go (etcd's client and server)
//! sends whatever it has queued in one write.
//!
//! [`Coalesced`] gives Keel's server connections and keel-bench's client connections the
//! same behaviour. Writes go into a buffer. The first flush after a write wakes the
//! task and returns `Pending`, so the task goes to the back of the runtime's queue and
//! the other tasks that are ready (request handlers, request bodies, other clients on
//! this connection) queue their frames first; the next flush writes all of it. Nothing
//! waits on a timer: the delay is one turn of the runtime's queue. Large writes (watch
//! responses to many watchers, big ranges) gain nothing from this and go out as they
//! come, without the copy. Reads pass through.
//!
//! Measured with `keel-bench put` (100 clients, 10 connections) on one member:
//! keel-bench's CPU per put went from 25 µs to 15 µs with its client connections
//! coalesced, and the server's from 26 µs to 21 µs with its own (see
//! `docs/benchmarks.md`).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A write that would take the buffer past this many bytes first sends what is buffered.
const MAX_BUFFERED_BYTES: usize = 64 * 1024;
/// Writes this large are worth a syscall of their own: they are not copied into an
/// empty buffer, and a buffer this full is sent at the flush without waiting for more.
/// (A watch response to many watchers is tens of KiB; a put's answer is under 100 B.)
const LARGE_WRITE_BYTES: usize = 8 * 1024;
/// A flush waits for more only while less than this is buffered: a connection that
/// already has this much to send (many watch events at once) sends it now.
const WAIT_BELOW_BYTES: usize = 2 * 1024;
/// A buffer that grew past this is freed once sent, so that a connection which once
/// carried a large answer does not keep its buffer.
const RETAINED_BUFFER_BYTES: usize = 16 * 1024;

/// A stream whose writes are held until a flush, and whose flush first lets the other
/// ready tasks add to the buffer (see the module docs).
pub struct Coalesced<S> {
    inner: S,
    buf: Vec<u8>,
    /// How much of `buf` the stream has taken.
    sent: usize,
    /// A flush has yielded once since the last write.
    yielded: bool,
}

impl<S> Coalesced<S> {
    pub fn new(inner: S) -> Self {
        Coalesced {
            inner,
            buf: Vec::new(),
            sent: 0,
            yielded: false,
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncWrite + Unpin> Coalesced<S> {
    /// Writes the whole buffer to the stream.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.buf.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.buf[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.sent = 0;
        if self.buf.capacity() > RETAINED_BUFFER_BYTES {
            self.buf = Vec::new();
        } else {
            self.buf.clear();
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Coalesced<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Coalesced<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(data)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        if self.buf.is_empty() && len >= LARGE_WRITE_BYTES {
            // Nothing to join it with and big enough on its own: no copy, no wait.
            return Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        }
        if self.buf.len() + len > MAX_BUFFERED_BYTES {
            ready!(self.poll_send(cx))?;
            if len >= LARGE_WRITE_BYTES {
                return Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
            }
        }
        for b in bufs {
            self.buf.extend_from_slice(b);
        }
        self.yielded = false;
        Poll::Ready(Ok(len))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.buf.is_empty() {
            return Pin::new(&mut self.inner).poll_flush(cx);
        }
        if !self.yielded && self.buf.len() < WAIT_BELOW_BYTES {
            // To the back of the run queue once: whatever else is ready writes first.
            self.yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        ready!(self.poll_send(cx))?;
        self.yielded = false;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_send(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn writes_reach_the_peer_on_flush_all_at_once() {
        let (a, mut b) = tokio::io::duplex(1024);
        let mut a = Coalesced::new(a);
        a.write_all(b"one ").await.expect("write");
        a.write_all(b"two").await.expect("write");
        let mut got = [0u8; 16];
        let early = tokio::time::timeout(Duration::from_millis(50), b.read(&mut got)).await;
        assert!(early.is_err(), "nothing may arrive before a flush");
        a.flush().await.expect("flush");
        let n = b.read(&mut got).await.expect("read");
        assert_eq!(&got[..n], b"one two");
    }

    #[tokio::test]
    async fn a_large_write_goes_out_without_a_flush() {
        let (a, mut b) = tokio::io::duplex(4 * MAX_BUFFERED_BYTES);
        let mut a = Coalesced::new(a);
        a.write_all(&vec![7u8; LARGE_WRITE_BYTES])
            .await
            .expect("write");
        a.write_all(b"x").await.expect("write");
        let mut got = vec![0u8; LARGE_WRITE_BYTES];
        b.read_exact(&mut got)
            .await
            .expect("the large write went out without a flush");
        assert!(got.iter().all(|&x| x == 7));
        a.shutdown().await.expect("shutdown sends the rest");
        let mut rest = Vec::new();
        b.read_to_end(&mut rest).await.expect("read");
        assert_eq!(rest, b"x");
    }

    #[tokio::test]
    async fn small_writes_past_the_bound_send_the_buffer_first() {
        let (a, mut b) = tokio::io::duplex(4 * MAX_BUFFERED_BYTES);
        let mut a = Coalesced::new(a);
        let small = vec![3u8; LARGE_WRITE_BYTES / 2];
        let mut written = 0;
        while written <= MAX_BUFFERED_BYTES {
            a.write_all(&small).await.expect("write");
            written += small.len();
        }
        let mut got = vec![0u8; MAX_BUFFERED_BYTES];
        b.read_exact(&mut got)
            .await
            .expect("a full buffer went out without a flush");
        assert!(got.iter().all(|&x| x == 3));
    }

    #[tokio::test]
    async fn a_slow_reader_gets_everything_in_order() {
        // A pipe smaller than one flush: the flush finishes only as the reader drains.
        let (a, mut b) = tokio::io::duplex(64);
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            b.read_to_end(&mut all).await.expect("read");
            all
        });
        let mut a = Coalesced::new(a);
        let mut sent = Vec::new();
        for i in 0..200u32 {
            let times = if i % 50 == 0 { 3000 } else { i % 7 + 1 };
            let chunk = i
                .to_be_bytes()
                .repeat(usize::try_from(times).expect("small"));
            a.write_all(&chunk).await.expect("write");
            sent.extend_from_slice(&chunk);
            if i % 13 == 0 {
                a.flush().await.expect("flush");
            }
        }
        a.shutdown().await.expect("shutdown");
        drop(a);
        assert_eq!(reader.await.expect("reader"), sent);
    }
}
