//! The peer transport: Keel's own protocol (`keelpb.Raft`) over gRPC (h2c).
//!
//! Sending: one long-lived client stream per peer, fed by a bounded queue
//! ([`PEER_QUEUE_CAPACITY`] messages). The node loop never waits on the network: it
//! `try_send`s into the queue, and a full or disconnected queue makes it report the peer
//! unreachable to Raft (which backs off to probing), as etcd's transport does. The
//! peer's task drains the queue into batches (at most [`MAX_BATCH_MESSAGES`] messages and
//! about [`MAX_BATCH_BYTES`] bytes), pipelined on the stream, and reconnects with
//! exponential backoff when the stream breaks.
//!
//! Snapshots travel on their own call: the MsgSnap in a header chunk, then the backend
//! copy in [`SNAPSHOT_CHUNK_BYTES`] chunks. The outcome is reported to Raft
//! (`report_snapshot`) through the node's input channel.
//!
//! Receiving: batches are checked against the cluster id and handed to the node loop
//! (awaiting room in its bounded channel: back-pressure onto the sender's stream). A
//! snapshot is written to `member/snap/incoming-*.db`, synced, then handed over with its
//! message; the call answers once the node loop installed it.
//!
//! Both directions feed the v2 statistics ([`Stats`]): appends handed to a peer's queue
//! and appends received are counted with their encoded size, and a follower's append
//! answers, arriving here, close the append round trips the leader times (see
//! `stats.rs` for what exactly is measured).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use keel_proto::keelpb::{
    self, MessageBatch, SnapshotChunk, SnapshotHeader, SnapshotResponse, StreamResponse,
    raft_client::RaftClient, raft_server::Raft, snapshot_chunk::Part,
};
use keel_raft::{Message, MessageType, SnapshotStatus};
use prost::Message as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::convert;
use crate::node::NodeInput;
use crate::stats::Stats;

/// Messages queued for one peer before further ones are dropped.
pub(crate) const PEER_QUEUE_CAPACITY: usize = 4096;
/// Most messages in one batch on the wire.
pub(crate) const MAX_BATCH_MESSAGES: usize = 512;
/// A batch is closed once its encoded messages pass this size.
pub(crate) const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Batches in flight between the batching task and the HTTP/2 stream.
const STREAM_BUFFER_BATCHES: usize = 16;
/// Largest peer message accepted (an append of one huge entry, a batch).
pub(crate) const MAX_PEER_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
/// Size of one chunk of a streamed snapshot.
pub(crate) const SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The node loop's handle for sending to peers.
pub(crate) struct Transport {
    cluster_id: u64,
    peers: HashMap<u64, Peer>,
    runtime: tokio::runtime::Handle,
    node: mpsc::Sender<NodeInput>,
    stats: Arc<Stats>,
}

struct Peer {
    url: String,
    queue: mpsc::Sender<keelpb::Message>,
}

impl Transport {
    /// Starts one sender task per peer (`id → peer URL`); they stop when `shutdown`
    /// turns true or the transport is dropped.
    pub(crate) fn start(
        cluster_id: u64,
        peers: impl IntoIterator<Item = (u64, String)>,
        runtime: tokio::runtime::Handle,
        node: mpsc::Sender<NodeInput>,
        shutdown: watch::Receiver<bool>,
        stats: Arc<Stats>,
    ) -> Transport {
        let peers = peers
            .into_iter()
            .map(|(id, url)| {
                let (queue, rx) = mpsc::channel(PEER_QUEUE_CAPACITY);
                runtime.spawn(run_peer(
                    id,
                    url.clone(),
                    cluster_id,
                    rx,
                    node.clone(),
                    shutdown.clone(),
                    Arc::clone(&stats),
                ));
                (id, Peer { url, queue })
            })
            .collect();
        Transport {
            cluster_id,
            peers,
            runtime,
            node,
            stats,
        }
    }

    /// Queues `m` for its recipient; false when it had to be dropped (unknown peer,
    /// queue full or closed): the caller reports the peer unreachable.
    pub(crate) fn send(&self, m: Message) -> bool {
        let Some(peer) = self.peers.get(&m.to) else {
            return false;
        };
        let Some(wire) = convert::message_to_pb(&m) else {
            return true;
        };
        if m.kind != MessageType::Append {
            return peer.queue.try_send(wire).is_ok();
        }
        let last_index = m.index + m.entries.len() as u64;
        let size_bytes = wire.encoded_len();
        self.stats
            .send_append(m.to, m.index, last_index, size_bytes, || {
                peer.queue.try_send(wire).is_ok()
            })
    }

    /// Streams a snapshot message and the backend copy at `db` to its recipient, then
    /// reports the outcome to the node loop and removes the copy.
    pub(crate) fn send_snapshot(&self, m: Message, db: PathBuf) {
        assert_eq!(
            m.kind,
            MessageType::Snapshot,
            "send_snapshot takes MsgSnap only"
        );
        let to = m.to;
        let node = self.node.clone();
        let Some(peer) = self.peers.get(&to) else {
            let _ = std::fs::remove_file(&db);
            let _ = node.try_send(NodeInput::SnapshotStatus(to, SnapshotStatus::Failure));
            return;
        };
        let url = peer.url.clone();
        let cluster_id = self.cluster_id;
        self.runtime.spawn(async move {
            let status = match stream_snapshot(&url, cluster_id, &m, &db).await {
                Ok(()) => SnapshotStatus::Finish,
                Err(e) => {
                    tracing::warn!(to = format_args!("{to:x}"), error = %e, "sending a snapshot failed");
                    SnapshotStatus::Failure
                }
            };
            let _ = tokio::fs::remove_file(&db).await;
            // Raft sends nothing else to this peer until it hears the outcome: wait for room.
            let _ = node.send(NodeInput::SnapshotStatus(to, status)).await;
        });
    }
}

/// A failed peer connection.
struct ConnectError {
    message: String,
    /// The peer's address answered with a refusal: nothing listens there, so the member's
    /// process is gone (as opposed to a timeout, which a partition also gives).
    refused: bool,
}

impl From<ConnectError> for String {
    fn from(e: ConnectError) -> String {
        e.message
    }
}

/// Whether `e` or one of its sources is a refused TCP connection.
fn is_refused(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(e) = next {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
        {
            return true;
        }
        next = e.source();
    }
    false
}

async fn connect(url: &str) -> Result<RaftClient<tonic::transport::Channel>, ConnectError> {
    let endpoint = tonic::transport::Endpoint::from_shared(url.to_owned())
        .map_err(|e| ConnectError {
            message: format!("bad peer URL {url}: {e}"),
            refused: false,
        })?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true);
    let channel = endpoint.connect().await.map_err(|e| ConnectError {
        message: format!("connecting to {url}: {e}"),
        refused: is_refused(&e),
    })?;
    Ok(RaftClient::new(channel)
        .max_decoding_message_size(MAX_PEER_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_PEER_MESSAGE_BYTES))
}

async fn stream_snapshot(
    url: &str,
    cluster_id: u64,
    m: &Message,
    db: &std::path::Path,
) -> Result<(), String> {
    let mut client = connect(url).await?;
    let mut file = tokio::fs::File::open(db)
        .await
        .map_err(|e| format!("opening {}: {e}", db.display()))?;
    let size_bytes = file
        .metadata()
        .await
        .map_err(|e| format!("reading {}: {e}", db.display()))?
        .len();
    let (tx, rx) = mpsc::channel(4);
    let header = SnapshotChunk {
        part: Some(Part::Header(Box::new(SnapshotHeader {
            cluster_id,
            message: convert::message_to_pb(m),
            size_bytes,
        }))),
    };
    let call = tokio::spawn(async move { client.snapshot(ReceiverStream::new(rx)).await });
    let feed = async {
        tx.send(header)
            .await
            .map_err(|_| "snapshot stream closed".to_owned())?;
        let mut buf = vec![0u8; SNAPSHOT_CHUNK_BYTES];
        loop {
            let n = file
                .read(&mut buf)
                .await
                .map_err(|e| format!("reading {}: {e}", db.display()))?;
            if n == 0 {
                return Ok::<(), String>(());
            }
            let chunk = SnapshotChunk {
                part: Some(Part::Data(buf[..n].to_vec())),
            };
            tx.send(chunk)
                .await
                .map_err(|_| "snapshot stream closed".to_owned())?;
        }
    };
    let fed = feed.await;
    drop(tx);
    let answer = call.await.map_err(|e| format!("snapshot task: {e}"))?;
    fed?;
    answer
        .map(|_| ())
        .map_err(|status| format!("peer refused the snapshot: {status}"))
}

/// One peer's sender: batches from the queue onto a long-lived stream, reconnecting.
async fn run_peer(
    id: u64,
    url: String,
    cluster_id: u64,
    mut queue: mpsc::Receiver<keelpb::Message>,
    node: mpsc::Sender<NodeInput>,
    mut shutdown: watch::Receiver<bool>,
    stats: Arc<Stats>,
) {
    let mut backoff = BACKOFF_MIN;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let mut client = match connect(&url).await {
            Ok(client) => client,
            Err(e) => {
                tracing::debug!(peer = format_args!("{id:x}"), error = %e.message, "peer unreachable");
                if e.refused {
                    let _ = node.try_send(NodeInput::PeerDown(id));
                }
                let _ = node.try_send(NodeInput::Unreachable(id));
                // Drop what queued up meanwhile: Raft resends what still matters.
                while queue.try_recv().is_ok() {}
                stats.peer_unreachable(id);
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => return,
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        backoff = BACKOFF_MIN;
        let (tx, rx) = mpsc::channel::<MessageBatch>(STREAM_BUFFER_BATCHES);
        let mut call = tokio::spawn(async move { client.stream(ReceiverStream::new(rx)).await });
        loop {
            tokio::select! {
                first = queue.recv() => {
                    let Some(first) = first else {
                        call.abort();
                        return;
                    };
                    let mut bytes = first.encoded_len();
                    let mut messages = vec![first];
                    while messages.len() < MAX_BATCH_MESSAGES && bytes < MAX_BATCH_BYTES {
                        match queue.try_recv() {
                            Ok(m) => {
                                bytes += m.encoded_len();
                                messages.push(m);
                            }
                            Err(_) => break,
                        }
                    }
                    if tx.send(MessageBatch { cluster_id, messages }).await.is_err() {
                        break;
                    }
                }
                ended = &mut call => {
                    let why = match ended {
                        Ok(Ok(_)) => "closed by the peer".to_owned(),
                        Ok(Err(status)) => status.to_string(),
                        Err(e) => e.to_string(),
                    };
                    tracing::debug!(peer = format_args!("{id:x}"), why, "peer stream ended");
                    break;
                }
                _ = shutdown.changed() => {
                    call.abort();
                    return;
                }
            }
        }
        call.abort();
        let _ = node.try_send(NodeInput::Unreachable(id));
        stats.peer_unreachable(id);
    }
}

/// The receiving side of the peer protocol.
pub(crate) struct RaftService {
    cluster_id: u64,
    node: mpsc::Sender<NodeInput>,
    snap_dir: PathBuf,
    received: Arc<AtomicU64>,
    stats: Arc<Stats>,
}

impl RaftService {
    pub(crate) fn new(
        cluster_id: u64,
        node: mpsc::Sender<NodeInput>,
        snap_dir: PathBuf,
        stats: Arc<Stats>,
    ) -> RaftService {
        RaftService {
            cluster_id,
            node,
            snap_dir,
            received: Arc::new(AtomicU64::new(0)),
            stats,
        }
    }

    fn check_cluster(&self, cluster_id: u64) -> Result<(), Status> {
        if cluster_id != self.cluster_id {
            return Err(Status::failed_precondition(format!(
                "cluster ID mismatch: this member is in cluster {:x}, the sender in {cluster_id:x}",
                self.cluster_id
            )));
        }
        Ok(())
    }

    async fn receive_snapshot(
        &self,
        inbound: &mut Streaming<SnapshotChunk>,
        path: &std::path::Path,
    ) -> Result<Message, Status> {
        let header = match inbound.message().await? {
            Some(SnapshotChunk {
                part: Some(Part::Header(h)),
            }) => h,
            _ => {
                return Err(Status::invalid_argument(
                    "snapshot stream must start with its header",
                ));
            }
        };
        self.check_cluster(header.cluster_id)?;
        let message = header
            .message
            .and_then(convert::message_from_pb)
            .filter(|m| m.kind == MessageType::Snapshot && m.snapshot.is_some())
            .ok_or_else(|| Status::invalid_argument("snapshot header does not carry a MsgSnap"))?;
        let io = |e: std::io::Error| Status::internal(format!("writing {}: {e}", path.display()));
        let mut file = tokio::fs::File::create(path).await.map_err(io)?;
        let mut written = 0u64;
        while let Some(chunk) = inbound.message().await? {
            let Some(Part::Data(data)) = chunk.part else {
                return Err(Status::invalid_argument("a snapshot stream has one header"));
            };
            written += data.len() as u64;
            if written > header.size_bytes {
                return Err(Status::invalid_argument(
                    "snapshot is longer than its header says",
                ));
            }
            file.write_all(&data).await.map_err(io)?;
        }
        if written != header.size_bytes {
            return Err(Status::invalid_argument(format!(
                "snapshot ended after {written} of {} bytes",
                header.size_bytes
            )));
        }
        file.sync_all().await.map_err(io)?;
        Ok(message)
    }
}

#[tonic::async_trait]
impl Raft for RaftService {
    async fn stream(
        &self,
        request: Request<Streaming<MessageBatch>>,
    ) -> Result<Response<StreamResponse>, Status> {
        let mut inbound = request.into_inner();
        while let Some(batch) = inbound.message().await? {
            self.check_cluster(batch.cluster_id)?;
            let messages: Vec<Message> = batch
                .messages
                .into_iter()
                .filter_map(|wire| {
                    if wire.kind == keelpb::MessageType::MsgAppend as i32 {
                        self.stats.received_append(wire.from, wire.encoded_len());
                    }
                    let m = convert::message_from_pb(wire)?;
                    if m.kind == MessageType::AppendResponse {
                        self.stats.append_answered(m.from, m.index, m.reject);
                    }
                    Some(m)
                })
                .collect();
            if self.node.send(NodeInput::Peer(messages)).await.is_err() {
                return Err(Status::unavailable("member stopped"));
            }
        }
        Ok(Response::new(StreamResponse {}))
    }

    async fn snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<SnapshotResponse>, Status> {
        let mut inbound = request.into_inner();
        let n = self.received.fetch_add(1, Ordering::Relaxed);
        let path = self.snap_dir.join(format!("incoming-{n}.db"));
        let message = match self.receive_snapshot(&mut inbound, &path).await {
            Ok(message) => message,
            Err(status) => {
                let _ = tokio::fs::remove_file(&path).await;
                return Err(status);
            }
        };
        let (done, installed) = oneshot::channel();
        let input = NodeInput::PeerSnapshot {
            message: Box::new(message),
            db: path.clone(),
            done,
        };
        if self.node.send(input).await.is_err() {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(Status::unavailable("member stopped"));
        }
        match installed.await {
            Ok(Ok(())) => Ok(Response::new(SnapshotResponse {})),
            Ok(Err(e)) => Err(Status::internal(format!("installing the snapshot: {e}"))),
            Err(_) => Err(Status::unavailable("member stopped")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_closed_port_is_refused_and_a_bad_url_is_not() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let err = connect(&format!("http://{addr}"))
            .await
            .expect_err("nothing listens");
        assert!(err.refused, "{}", err.message);

        // Failing before any connection attempt is not a refusal.
        let bad = connect("http://[::1:bad").await.expect_err("bad URL");
        assert!(!bad.refused, "{}", bad.message);
    }
}
