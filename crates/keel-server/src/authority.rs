//! Accepts etcd 3.4 clients that send a whole URL as the HTTP/2 `:authority`.
//!
//! `etcdctl` 3.4 dials `http://host:port` endpoints for some calls (`endpoint status`,
//! `endpoint hashkv`, ...) with the endpoint string itself as the gRPC authority, so the
//! request carries `:authority: http://127.0.0.1:2379`. Go's HTTP/2 server accepts it;
//! the `h2` crate under hyper resets the stream as malformed (PROTOCOL_ERROR) before any
//! handler runs. [`AuthorityFix`] sits between the socket and hyper on client
//! connections and rewrites such an authority to `host:port`.
//!
//! It reads the client-to-server byte stream as HTTP/2 frames (RFC 9113 §4): after the
//! 24-byte connection preface, each frame is a 9-byte header (length u24 big endian,
//! type u8, flags u8, stream id u32 big endian with the top bit reserved) and its
//! payload. Header blocks (a HEADERS frame, minus padding and priority fields, plus its
//! CONTINUATION frames) are HPACK-decoded with the client's dynamic table, the
//! authority fixed, and re-encoded with this layer's own encoder towards hyper (whose
//! decoder then mirrors that encoder's table), as one HEADERS frame followed by
//! CONTINUATION frames of at most [`MAX_FRAME_BYTES`]. Every other frame passes through
//! untouched, and so does a connection that does not start with the HTTP/2 preface
//! (HTTP/1.1). The server-to-client direction is not touched.
//!
//! Cost: HPACK decoding and re-encoding every request was a quarter of the server's CPU
//! under `keel-bench put`, so only a connection that needs the rewrite pays for it. The
//! first header block on a connection decides: if its authority is already `host:port`,
//! the block goes up byte for byte and the rest of the connection passes through
//! untouched (hyper's decoder then mirrors the client's encoder, as without this layer);
//! otherwise every block on that connection is rewritten as above. A client sends the
//! same authority on every stream of a connection (grpc-go takes it from the dial
//! target), so a connection that starts well does not need the rewrite later.
//!
//! Bounds: a header block is at most [`MAX_HEADER_BLOCK_BYTES`], a frame at most
//! [`MAX_FRAME_BYTES`] (the default `SETTINGS_MAX_FRAME_SIZE` hyper advertises); anything
//! larger closes the connection with an error.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use keel_proto::coalesce::Coalesced;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER_BYTES: usize = 9;
/// Largest frame payload accepted from clients and written towards hyper.
pub(crate) const MAX_FRAME_BYTES: usize = 16_384;
/// Largest header block accepted.
pub(crate) const MAX_HEADER_BLOCK_BYTES: usize = 1024 * 1024;
const TYPE_HEADERS: u8 = 0x1;
const TYPE_CONTINUATION: u8 = 0x9;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;
const READ_CHUNK_BYTES: usize = 16 * 1024;

enum Mode {
    /// Still reading the first bytes: HTTP/2 or not?
    Preface,
    Frames,
    Passthrough,
}

struct Block {
    stream: u32,
    end_stream: bool,
    fragment: Vec<u8>,
    /// The block's frames as received, passed up unchanged when no rewrite is needed.
    frames: Vec<u8>,
}

/// A client connection with the authority rewrite applied to what is read from it.
pub(crate) struct AuthorityFix<S> {
    inner: S,
    mode: Mode,
    raw: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    block: Option<Block>,
    /// A header block of this connection needed the rewrite: every block is re-encoded.
    rewriting: bool,
    decoder: fluke_hpack::Decoder<'static>,
    encoder: fluke_hpack::Encoder<'static>,
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// `scheme://host:port/...` → `host:port`; anything else unchanged.
pub(crate) fn fix_authority(value: &[u8]) -> Option<Vec<u8>> {
    let pos = value.windows(3).position(|w| w == b"://")?;
    let rest = &value[pos + 3..];
    let end = rest.iter().position(|&b| b == b'/').unwrap_or(rest.len());
    Some(rest[..end].to_vec())
}

impl<S> AuthorityFix<S> {
    pub(crate) fn new(inner: S) -> AuthorityFix<S> {
        AuthorityFix {
            inner,
            mode: Mode::Preface,
            raw: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            block: None,
            rewriting: false,
            decoder: fluke_hpack::Decoder::new(),
            encoder: fluke_hpack::Encoder::new(),
        }
    }

    /// Moves what can be decided from `raw` to `out`.
    fn process(&mut self) -> io::Result<()> {
        loop {
            match self.mode {
                Mode::Preface => {
                    let n = self.raw.len().min(PREFACE.len());
                    if self.raw[..n] != PREFACE[..n] {
                        self.mode = Mode::Passthrough;
                    } else if n == PREFACE.len() {
                        self.out.extend(self.raw.drain(..n));
                        self.mode = Mode::Frames;
                    } else {
                        return Ok(());
                    }
                }
                Mode::Passthrough => {
                    self.out.append(&mut self.raw);
                    return Ok(());
                }
                Mode::Frames => {
                    if self.raw.len() < FRAME_HEADER_BYTES {
                        return Ok(());
                    }
                    let len = usize::from(self.raw[0]) << 16
                        | usize::from(self.raw[1]) << 8
                        | usize::from(self.raw[2]);
                    if len > MAX_FRAME_BYTES {
                        return Err(invalid(format!(
                            "HTTP/2 frame of {len} bytes exceeds {MAX_FRAME_BYTES}"
                        )));
                    }
                    if self.raw.len() < FRAME_HEADER_BYTES + len {
                        return Ok(());
                    }
                    let frame: Vec<u8> = self.raw.drain(..FRAME_HEADER_BYTES + len).collect();
                    self.frame(&frame)?;
                }
            }
        }
    }

    fn frame(&mut self, frame: &[u8]) -> io::Result<()> {
        let (kind, flags) = (frame[3], frame[4]);
        let stream = u32::from_be_bytes([frame[5], frame[6], frame[7], frame[8]]) & 0x7fff_ffff;
        let payload = &frame[FRAME_HEADER_BYTES..];
        match kind {
            TYPE_HEADERS => {
                if self.block.is_some() {
                    return Err(invalid(
                        "HEADERS inside an unfinished header block".to_owned(),
                    ));
                }
                let mut start = 0;
                let mut pad = 0;
                if flags & FLAG_PADDED != 0 {
                    pad = usize::from(
                        *payload
                            .first()
                            .ok_or_else(|| invalid("empty padded HEADERS".to_owned()))?,
                    );
                    start = 1;
                }
                if flags & FLAG_PRIORITY != 0 {
                    start += 5;
                }
                if start + pad > payload.len() {
                    return Err(invalid("HEADERS padding exceeds the frame".to_owned()));
                }
                self.block = Some(Block {
                    stream,
                    end_stream: flags & FLAG_END_STREAM != 0,
                    fragment: payload[start..payload.len() - pad].to_vec(),
                    frames: frame.to_vec(),
                });
            }
            TYPE_CONTINUATION => {
                let block = self
                    .block
                    .as_mut()
                    .filter(|b| b.stream == stream)
                    .ok_or_else(|| invalid("CONTINUATION without its HEADERS".to_owned()))?;
                block.fragment.extend_from_slice(payload);
                block.frames.extend_from_slice(frame);
                if block.fragment.len() > MAX_HEADER_BLOCK_BYTES {
                    return Err(invalid(format!(
                        "header block exceeds {MAX_HEADER_BLOCK_BYTES} bytes"
                    )));
                }
            }
            _ => {
                if self.block.is_some() {
                    return Err(invalid(
                        "frame inside an unfinished header block".to_owned(),
                    ));
                }
                self.out.extend_from_slice(frame);
                return Ok(());
            }
        }
        if flags & FLAG_END_HEADERS != 0 {
            let block = self
                .block
                .take()
                .expect("a header block is being assembled");
            self.emit(block)?;
        }
        Ok(())
    }

    fn emit(&mut self, block: Block) -> io::Result<()> {
        let mut headers = self
            .decoder
            .decode(&block.fragment)
            .map_err(|e| invalid(format!("HPACK: {e:?}")))?;
        for (name, value) in &mut headers {
            let fixed = (name.as_slice() == b":authority")
                .then(|| fix_authority(value))
                .flatten();
            if let Some(fixed) = fixed {
                *value = fixed;
                self.rewriting = true;
            }
        }
        if !self.rewriting {
            // The connection's first block needs no rewrite: from here on hyper reads the
            // client's bytes as they are.
            self.out.extend_from_slice(&block.frames);
            self.mode = Mode::Passthrough;
            return Ok(());
        }
        let encoded = self
            .encoder
            .encode(headers.iter().map(|(n, v)| (n.as_slice(), v.as_slice())));
        let chunks: Vec<&[u8]> = if encoded.is_empty() {
            vec![&[]]
        } else {
            encoded.chunks(MAX_FRAME_BYTES).collect()
        };
        let last = chunks.len() - 1;
        for (i, chunk) in chunks.into_iter().enumerate() {
            let (kind, mut flags) = if i == 0 {
                (
                    TYPE_HEADERS,
                    if block.end_stream { FLAG_END_STREAM } else { 0 },
                )
            } else {
                (TYPE_CONTINUATION, 0)
            };
            if i == last {
                flags |= FLAG_END_HEADERS;
            }
            let len = chunk.len();
            self.out.extend_from_slice(&[
                (len >> 16) as u8,
                (len >> 8) as u8,
                len as u8,
                kind,
                flags,
            ]);
            self.out.extend_from_slice(&block.stream.to_be_bytes());
            self.out.extend_from_slice(chunk);
        }
        Ok(())
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityFix<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if matches!(this.mode, Mode::Passthrough)
                && this.out_pos == this.out.len()
                && this.raw.is_empty()
            {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            if this.out_pos < this.out.len() {
                let n = buf.remaining().min(this.out.len() - this.out_pos);
                buf.put_slice(&this.out[this.out_pos..this.out_pos + n]);
                this.out_pos += n;
                if this.out_pos == this.out.len() {
                    this.out.clear();
                    this.out_pos = 0;
                }
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; READ_CHUNK_BYTES];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                // End of stream: whatever is left undecided goes up as it is, and hyper
                // sees the truncated connection.
                if this.raw.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                this.out.append(&mut this.raw);
                continue;
            }
            this.raw.extend_from_slice(read.filled());
            this.process()?;
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The client listener: TCP_NODELAY (gRPC answers are small writes that would otherwise
/// wait for the client's delayed ACK), writes coalesced (`keel_proto::coalesce`: the
/// answers to a batch of applied requests leave in one write per connection) and the
/// authority fix on every connection.
pub(crate) struct ClientListener(pub TcpListener);

impl axum::serve::Listener for ClientListener {
    type Io = AuthorityFix<Coalesced<TcpStream>>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((tcp, addr)) => {
                    if let Err(e) = tcp.set_nodelay(true) {
                        tracing::debug!(error = %e, "could not set TCP_NODELAY");
                    }
                    return (AuthorityFix::new(Coalesced::new(tcp)), addr);
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accepting a client connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt as _;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    async fn read_all(input: Vec<u8>) -> Vec<u8> {
        let mut fix = AuthorityFix::new(input.as_slice());
        let mut out = Vec::new();
        fix.read_to_end(&mut out).await.expect("read");
        out
    }

    #[test]
    fn authority_loses_scheme_and_path() {
        assert_eq!(
            fix_authority(b"http://127.0.0.1:2379"),
            Some(b"127.0.0.1:2379".to_vec())
        );
        assert_eq!(fix_authority(b"https://h:1/x/y"), Some(b"h:1".to_vec()));
        assert_eq!(fix_authority(b"127.0.0.1:2379"), None);
    }

    #[tokio::test]
    async fn rewrites_split_padded_header_blocks_and_passes_other_frames() {
        let mut client = fluke_hpack::Encoder::new();
        let headers: Vec<(&[u8], &[u8])> = vec![
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":authority", b"http://127.0.0.1:2379"),
            (b":path", b"/etcdserverpb.Maintenance/Status"),
        ];
        let block = client.encode(headers.clone());
        let mut input = PREFACE.to_vec();
        input.extend(frame(0x4, 0, 0, &[])); // SETTINGS
        // HEADERS (padded, priority) carrying half the block, CONTINUATION the rest.
        let (a, b) = block.split_at(block.len() / 2);
        let mut payload = vec![3u8, 0, 0, 0, 0, 16];
        payload.extend_from_slice(a);
        payload.extend_from_slice(&[0, 0, 0]);
        input.extend(frame(
            TYPE_HEADERS,
            FLAG_PADDED | FLAG_PRIORITY | FLAG_END_STREAM,
            1,
            &payload,
        ));
        input.extend(frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 1, b));
        // The same headers again: the client's encoder now indexes them.
        input.extend(frame(
            TYPE_HEADERS,
            FLAG_END_HEADERS,
            3,
            &client.encode(headers),
        ));
        let out = read_all(input).await;

        assert_eq!(&out[..24], PREFACE);
        let mut rest = &out[24..];
        let mut decoder = fluke_hpack::Decoder::new();
        let mut seen = Vec::new();
        while !rest.is_empty() {
            let len = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
            let (kind, flags) = (rest[3], rest[4]);
            let payload = &rest[9..9 + len];
            if kind == TYPE_HEADERS {
                assert_ne!(flags & FLAG_END_HEADERS, 0);
                let decoded = decoder.decode(payload).expect("hpack");
                let authority = decoded
                    .iter()
                    .find(|(n, _)| n == b":authority")
                    .expect("authority");
                assert_eq!(authority.1, b"127.0.0.1:2379");
                seen.push((kind, flags & FLAG_END_STREAM));
            } else {
                seen.push((kind, 0));
            }
            rest = &rest[9 + len..];
        }
        assert_eq!(
            seen,
            vec![(0x4, 0), (TYPE_HEADERS, FLAG_END_STREAM), (TYPE_HEADERS, 0)]
        );
    }

    #[tokio::test]
    async fn a_connection_that_starts_with_a_good_authority_passes_through_byte_for_byte() {
        let mut client = fluke_hpack::Encoder::new();
        let headers: Vec<(&[u8], &[u8])> = vec![
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":authority", b"127.0.0.1:2379"),
            (b":path", b"/etcdserverpb.KV/Put"),
        ];
        let mut input = PREFACE.to_vec();
        input.extend(frame(0x4, 0, 0, &[])); // SETTINGS
        // Padded: a rewrite would drop the padding, so equal bytes mean no rewrite.
        let mut payload = vec![2u8];
        payload.extend(client.encode(headers.clone()));
        payload.extend_from_slice(&[0, 0]);
        input.extend(frame(
            TYPE_HEADERS,
            FLAG_END_HEADERS | FLAG_PADDED,
            1,
            &payload,
        ));
        input.extend(frame(0x0, FLAG_END_STREAM, 1, b"body")); // DATA
        input.extend(frame(
            TYPE_HEADERS,
            FLAG_END_HEADERS,
            3,
            &client.encode(headers),
        ));
        assert_eq!(read_all(input.clone()).await, input);
    }

    #[tokio::test]
    async fn http1_passes_through() {
        let input = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
        assert_eq!(read_all(input.clone()).await, input);
    }
}
