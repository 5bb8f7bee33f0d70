//! A fault-injecting TCP proxy in front of one member's peer port, with
//! faults set per *sending* member, so that every directed link `a → b` can
//! be broken on its own.
//!
//! Keel's peer transport opens its own connection from each sender to each
//! receiver and sends Raft messages from the connecting side, but every
//! sender dials the same URL for a receiver. The proxy tells senders apart by
//! the kernel's socket table: the accepted connection's source port names a
//! socket in `/proc/net/tcp`, whose inode appears among the file descriptors
//! of exactly one member process (`/proc/<pid>/fd`). A connection whose
//! sender cannot be identified (the process just died) is closed.
//!
//! Faults, read again for every chunk of bytes:
//! * **blackhole**: the proxy stops reading (both directions) and does not
//!   connect new connections upstream; TCP back-pressure stalls the sender as
//!   lost packets would. On heal, the stalled bytes flow again, intact.
//! * **drop**: a TCP stream cannot lose bytes without breaking the HTTP/2
//!   framing above it, so a dropped chunk resets the connection instead,
//!   losing every message in flight on it (per mille per chunk).
//! * **delay ± jitter**: each chunk is held until a deadline; deadlines never
//!   decrease, so byte order is kept.
//!
//! Invariant: bytes are forwarded in order and unmodified, or the connection
//! is closed. Every buffer is bounded ([`CHUNK_BYTES`] × [`DELAY_QUEUE_CHUNKS`]
//! per direction).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Largest chunk read at once.
pub const CHUNK_BYTES: usize = 16 * 1024;
/// Chunks held by the delay stage of one direction of one connection.
pub const DELAY_QUEUE_CHUNKS: usize = 64;
/// How often a blackholed link checks whether it was healed.
const BLACKHOLE_POLL: Duration = Duration::from_millis(20);
/// Attempts to find a connection's sender in the socket table.
const IDENTIFY_ATTEMPTS: usize = 5;

/// The faults on one link. The default forwards everything at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkFaults {
    /// Stall all traffic.
    pub blackhole: bool,
    /// Chance, per mille per chunk, that the connection is reset.
    pub drop_per_mille: u16,
    /// Delay added to every chunk.
    pub delay_ms: u64,
    /// Uniform extra delay in `0..=jitter_ms` (kept monotonic per stream).
    pub jitter_ms: u64,
}

/// The pid of every member process by index (`None`: not running). Shared by
/// the cluster, which updates it, and every proxy, which reads it.
pub type Pids = Arc<Mutex<Vec<Option<u32>>>>;

/// The control side of one running proxy (in front of member `to`).
#[derive(Debug, Clone)]
pub struct ProxyHandle {
    /// Receiving member (index).
    pub to: usize,
    /// The proxy's port on 127.0.0.1.
    pub port: u16,
    /// Faults by sending member.
    faults: Arc<Mutex<Vec<LinkFaults>>>,
    /// Connections accepted, by sending member.
    connections: Arc<Vec<AtomicU64>>,
    pids: Pids,
}

impl ProxyHandle {
    /// Replaces the faults of the link `from → to`.
    pub fn set(&self, from: usize, faults: LinkFaults) {
        lock(&self.faults)[from] = faults;
    }

    /// Clears the faults of every link into `to`.
    pub fn heal(&self) {
        lock(&self.faults).fill(LinkFaults::default());
    }

    /// The faults of the link `from → to` now.
    pub fn faults(&self, from: usize) -> LinkFaults {
        lock(&self.faults)[from]
    }

    /// Connections accepted so far from member `from`.
    pub fn connections(&self, from: usize) -> u64 {
        self.connections[from].load(Ordering::Relaxed)
    }
}

// A std mutex: held only to copy or set small values, never across an await.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Binds the proxy for member `to` of `members` on an ephemeral 127.0.0.1
/// port; it forwards once started with [`run`].
pub async fn bind(
    to: usize,
    members: usize,
    pids: Pids,
) -> std::io::Result<(ProxyHandle, TcpListener)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    Ok((
        ProxyHandle {
            to,
            port,
            faults: Arc::new(Mutex::new(vec![LinkFaults::default(); members])),
            connections: Arc::new((0..members).map(|_| AtomicU64::new(0)).collect()),
            pids,
        },
        listener,
    ))
}

/// The port of `hex` (`0100007F:1F90` in `/proc/net/tcp`).
fn hex_port(address: &str) -> Option<u16> {
    u16::from_str_radix(address.rsplit(':').next()?, 16).ok()
}

/// The inode of the IPv4 socket from `local_port` to `remote_port`.
fn socket_inode(table: &str, local_port: u16, remote_port: u16) -> Option<u64> {
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (local, remote, inode) = (fields.get(1)?, fields.get(2)?, fields.get(9)?);
        (hex_port(local)? == local_port && hex_port(remote)? == remote_port)
            .then(|| inode.parse().ok())
            .flatten()
    })
}

/// Which member owns the socket from `sender_port` to `proxy_port`.
fn identify_sender(sender_port: u16, proxy_port: u16, pids: &[Option<u32>]) -> Option<usize> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let inode = socket_inode(&table, sender_port, proxy_port)?;
    let wanted = format!("socket:[{inode}]");
    pids.iter().enumerate().find_map(|(i, pid)| {
        let fds = std::fs::read_dir(format!("/proc/{}/fd", (*pid)?)).ok()?;
        fds.flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == wanted.as_str()))
            .then_some(i)
    })
}

/// Accepts connections forever (until the task is aborted), forwarding each
/// to `upstream_port` under the link's faults; `seed` drives drops and jitter.
pub async fn run(handle: ProxyHandle, listener: TcpListener, upstream_port: u16, seed: u64) {
    let mut rng = SmallRng::seed_from_u64(seed);
    loop {
        let Ok((client, peer)) = listener.accept().await else {
            tokio::time::sleep(BLACKHOLE_POLL).await;
            continue;
        };
        let conn_seed = rng.random();
        let handle = handle.clone();
        tokio::spawn(async move {
            if let Some(from) = sender(&handle, peer.port()).await {
                handle.connections[from].fetch_add(1, Ordering::Relaxed);
                serve(handle, from, client, upstream_port, conn_seed).await;
            }
        });
    }
}

/// The sending member of a connection from `sender_port`, if it can be told.
async fn sender(handle: &ProxyHandle, sender_port: u16) -> Option<usize> {
    for _ in 0..IDENTIFY_ATTEMPTS {
        let pids = lock(&handle.pids).clone();
        let proxy_port = handle.port;
        let found =
            tokio::task::spawn_blocking(move || identify_sender(sender_port, proxy_port, &pids))
                .await
                .ok()
                .flatten();
        if found.is_some() {
            return found;
        }
        tokio::time::sleep(BLACKHOLE_POLL).await;
    }
    None
}

/// A link as seen by one connection: the proxy and the sending member.
#[derive(Clone)]
struct Link {
    handle: ProxyHandle,
    from: usize,
}

impl Link {
    fn faults(&self) -> LinkFaults {
        self.handle.faults(self.from)
    }
}

async fn serve(handle: ProxyHandle, from: usize, client: TcpStream, upstream_port: u16, seed: u64) {
    let link = Link { handle, from };
    while link.faults().blackhole {
        tokio::time::sleep(BLACKHOLE_POLL).await;
    }
    let Ok(upstream) = TcpStream::connect(("127.0.0.1", upstream_port)).await else {
        return; // the member is down: dropping `client` closes it
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    let mut forward = tokio::spawn(pipe(link.clone(), client_read, upstream_write, seed));
    let mut backward = tokio::spawn(pipe(link, upstream_read, client_write, seed ^ 0x5eed));
    // Either direction ending (EOF, error or a drop) closes the whole connection.
    tokio::select! {
        _ = &mut forward => backward.abort(),
        _ = &mut backward => forward.abort(),
    }
}

/// One direction: read chunks, decide their fate, and hand them to a writer
/// that releases each at its deadline.
async fn pipe(link: Link, mut from: OwnedReadHalf, to: OwnedWriteHalf, seed: u64) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>(DELAY_QUEUE_CHUNKS);
    let writer = tokio::spawn(release(rx, to));
    let mut last_deadline = Instant::now();
    let mut buf = vec![0u8; CHUNK_BYTES];
    let mut dropped = false;
    loop {
        while link.faults().blackhole {
            tokio::time::sleep(BLACKHOLE_POLL).await;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let faults = link.faults();
        if faults.drop_per_mille > 0 && rng.random_range(0..1000u16) < faults.drop_per_mille {
            dropped = true;
            break;
        }
        let jitter = if faults.jitter_ms > 0 {
            rng.random_range(0..=faults.jitter_ms)
        } else {
            0
        };
        let deadline =
            (Instant::now() + Duration::from_millis(faults.delay_ms + jitter)).max(last_deadline);
        last_deadline = deadline;
        if tx.send((deadline, buf[..n].to_vec())).await.is_err() {
            break;
        }
    }
    drop(tx);
    if dropped {
        writer.abort();
    } else {
        // End of stream: deliver what is still held, then close.
        let _ = writer.await;
    }
}

async fn release(mut rx: mpsc::Receiver<(Instant, Vec<u8>)>, mut to: OwnedWriteHalf) {
    while let Some((deadline, bytes)) = rx.recv().await {
        tokio::time::sleep_until(deadline).await;
        if to.write_all(&bytes).await.is_err() {
            return;
        }
    }
    let _ = to.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn this_process_is_member_0() -> Pids {
        Arc::new(Mutex::new(vec![Some(std::process::id()), None]))
    }

    #[test]
    fn socket_table_lookup() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F90 0100007F:0050 01 00000000:00000000 00:00000000 00000000     0        0 4242 1 0\n";
        assert_eq!(socket_inode(table, 0x1f90, 0x50), Some(4242));
        assert_eq!(socket_inode(table, 0x50, 0x1f90), None);
    }

    #[tokio::test]
    async fn unknown_senders_are_refused() {
        let upstream = echo_server().await;
        let pids: Pids = Arc::new(Mutex::new(vec![None, None]));
        let (handle, listener) = bind(1, 2, pids).await.expect("bind proxy");
        tokio::spawn(run(handle.clone(), listener, upstream, 7));
        let result = tokio::time::timeout(Duration::from_secs(10), roundtrip(handle.port, b"x"))
            .await
            .expect("bounded");
        assert!(result.is_err(), "a connection from no member is closed");
    }

    async fn echo_server() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        port
    }

    async fn roundtrip(port: u16, payload: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
        s.write_all(payload).await?;
        let mut got = vec![0u8; payload.len()];
        s.read_exact(&mut got).await?;
        Ok(got)
    }

    #[tokio::test]
    async fn forwards_bytes_in_order_with_delay_and_jitter() {
        let upstream = echo_server().await;
        let (handle, listener) = bind(1, 2, this_process_is_member_0())
            .await
            .expect("bind proxy");
        handle.set(
            0,
            LinkFaults {
                delay_ms: 5,
                jitter_ms: 5,
                ..LinkFaults::default()
            },
        );
        tokio::spawn(run(handle.clone(), listener, upstream, 7));
        let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let got = tokio::time::timeout(Duration::from_secs(20), roundtrip(handle.port, &payload))
            .await
            .expect("bounded")
            .expect("round trip through the proxy");
        assert_eq!(got, payload, "the proxy must not reorder or alter bytes");
        assert_eq!(handle.connections(0), 1, "the test process is member 0");
        assert_eq!(handle.connections(1), 0);
    }

    #[tokio::test]
    async fn blackhole_stalls_and_heal_resumes() {
        let upstream = echo_server().await;
        let (handle, listener) = bind(1, 2, this_process_is_member_0())
            .await
            .expect("bind proxy");
        tokio::spawn(run(handle.clone(), listener, upstream, 7));
        handle.set(
            0,
            LinkFaults {
                blackhole: true,
                ..LinkFaults::default()
            },
        );
        let stalled =
            tokio::time::timeout(Duration::from_millis(300), roundtrip(handle.port, b"ping")).await;
        assert!(stalled.is_err(), "a blackholed link must not deliver");
        handle.heal();
        let got = tokio::time::timeout(Duration::from_secs(10), roundtrip(handle.port, b"pong"))
            .await
            .expect("bounded")
            .expect("healed link delivers");
        assert_eq!(got, b"pong");
    }

    #[tokio::test]
    async fn drops_reset_the_connection() {
        let upstream = echo_server().await;
        let (handle, listener) = bind(1, 2, this_process_is_member_0())
            .await
            .expect("bind proxy");
        handle.set(
            0,
            LinkFaults {
                drop_per_mille: 1000,
                ..LinkFaults::default()
            },
        );
        tokio::spawn(run(handle.clone(), listener, upstream, 7));
        let result = tokio::time::timeout(Duration::from_secs(10), roundtrip(handle.port, b"x"))
            .await
            .expect("bounded");
        assert!(result.is_err(), "a dropped chunk closes the connection");
    }
}
