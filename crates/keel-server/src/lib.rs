//! The Keel server: a Raft cluster member that etcd v3 clients talk to.
//!
//! [`ServerConfig`] is the contract with the `keel` binary: the binary turns etcd's flags
//! and `ETCD_*` environment variables into one, and [`Server::start`] runs from nothing
//! else. [`Server::shutdown`] stops it gracefully; [`Server::stopped`] tells when it
//! stopped by itself (a disk failure).
//!
//! # How a request flows
//!
//! A gRPC handler ([`api`](crate)) validates the request as etcd's `v3rpc/key.go` does,
//! encodes it as a `keelpb.InternalRequest` with a fresh request id, and sends it to the
//! node loop over a bounded channel with a oneshot for the answer. The node loop (one
//! OS thread, the only owner of the Raft node, the WAL and the applier) proposes it; for
//! each `Ready` it sends the leader's appends, writes the WAL with one fsync, sends the
//! messages that promise durability, applies committed entries to the MVCC store in
//! index order (skipping those at or below the store's consistent index) and wakes the
//! waiter registered under the entry's request id. A write is acknowledged only after
//! its entry is in the WAL (fsynced) of a quorum and applied here, so a `kill -9` at any
//! point loses no acknowledged write: replaying the WAL re-applies exactly the entries
//! the backend had not committed. Writes on a follower are forwarded by Raft to the
//! leader; the follower's waiter wakes when the entry applies on the follower.
//!
//! Linearizable reads go through ReadIndex, batched: one `read_index` round serves every
//! read queued while the previous round was in flight; each waits until the applied
//! index reaches the confirmed index, then reads the local store. Serializable reads go
//! straight to the local store. Every client request gives up after etcd's request
//! timeout (5 s + 2 × election timeout) with "etcdserver: request timed out".
//!
//! # Invariants
//!
//! - Entries are applied once, in index order; the applier asserts it.
//! - Nothing is sent that promises durability before the WAL fsync that makes it true.
//! - The backend is committed before a Raft snapshot is recorded, so the WAL released
//!   behind a snapshot is never needed to rebuild the backend.
//! - Every queue is bounded: the node's inputs (`NODE_INPUT_CAPACITY`), proposals and
//!   reads waiting in the node, each peer's outgoing queue, the snapshot chunks.
//!
//! # Files
//!
//! `<data-dir>/member/wal/*.wal` (keel-wal's format; the metadata record is this
//! member's id then the cluster id, each u64 big endian, 16 bytes),
//! `<data-dir>/member/snap/{term:016x}-{index:016x}.snap` (keel-wal's snapshot file; the
//! payload is a `keelpb.SnapshotFile`: the Raft snapshot metadata and, as data, a
//! `keelpb.SnapshotData` version 2: the membership record, `keelpb.Membership` version
//! 1, and the v2 store's JSON at the snapshot's index; data written before the v2 store
//! was replicated is the membership record alone, see [`v2`](crate)),
//! `<data-dir>/member/snap/db` (the
//! keel-mvcc backend, which also holds the membership record). A new member writes the
//! snapshot at index 0 (the initial membership, every initial member a voter) and then
//! creates the WAL: a data directory with a WAL is bootstrapped, and a restart ignores
//! the initial-cluster settings, as etcd does.
//!
//! Member and cluster ids are etcd 3.4's (see [`membership`]), so a Keel member started
//! with etcd's flags has the ids etcd would give it.
//!
//! # Client API served so far
//!
//! On every `listen_client_addrs` listener, gRPC (h2c) and HTTP/1.1 share the port:
//! `etcdserverpb.KV` (Range, Put, DeleteRange, Txn, Compact), `Watch` (below), `Lease`
//! (LeaseGrant, LeaseRevoke, LeaseKeepAlive, LeaseTimeToLive, LeaseLeases; see
//! [`lease`](crate) for how the lessor is driven and the remaining-TTL bound across
//! leader changes), `Maintenance` (Status, Hash, HashKV), `Cluster` (MemberList),
//! `GET /health`, `GET /version`; with the `failpoints` feature also `/debug/failpoints`
//! ([`failpoints`]); and, unless
//! `--enable-v2=false`, etcd's v2 HTTP API (`/v2/keys`, `/v2/members`, `/v2/machines`,
//! `/v2/stats/{self,leader,store}`, the first two counted by the peer transport as
//! etcd's, see `stats.rs`; keel-v2http's router over the replicated v2 store,
//! see `v2.rs`: v2 writes and quorum reads are Raft proposals, the leader proposes
//! etcd's SYNC every 500 ms while a v2 key has a TTL, and the v2 store lives in memory,
//! rebuilt on restart from the snapshot plus every later WAL entry). Every other
//! etcd service or method answers gRPC `Unimplemented`. Client connections pass through
//! an HTTP/2 header rewrite that accepts etcdctl 3.4's `http://host:port` authorities,
//! which the `h2` crate would otherwise reject.
//!
//! # Watch
//!
//! `Watch` follows etcd 3.4's `v3rpc/watch.go` over keel-mvcc's watchable store: many
//! watchers per stream and many streams per connection; key, prefix and from-key
//! ranges; start revisions in the past (caught up from the backend), `0` (the next
//! revision) or the future; `NOPUT`/`NODELETE` filters; `prev_kv`; client-chosen ids
//! (a taken one is refused with etcd's created-and-canceled response); `fragment`
//! (responses of `--max-request-bytes` + 512 KiB or more are split); per-watcher
//! `progress_notify` every `--experimental-watch-progress-notify-interval`; the
//! stream-wide progress request (answered with watch id -1 once every watcher of the
//! stream is synced, as etcd 3.5); a start revision below the compaction point gets the
//! created response, then one with `compact_revision` set and `canceled`. Events come
//! from this member's own apply, so a follower serves the same events as the leader,
//! each revision's events in one response, in revision order, with no gap and no
//! duplicate. The node loop drives `Store::sync_watchers` on every tick (etcd's 100 ms
//! sync loop at the default heartbeat), which retries slow watchers and catches up
//! unsynced ones a bounded chunk at a time; a stream that does not read never blocks
//! writers or other streams (one task per stream, two bounded channels, see
//! `watch.rs`). Streams that carry clientv3's `hasleader` metadata are refused, or
//! ended, with "etcdserver: no leader" as etcd's stream interceptor does.
//!
//! # Failpoints
//!
//! With the `failpoints` feature, [`failpoints`] puts the `fail` crate's points at the
//! places a crash or a slow disk matters (around the WAL save, the apply, the backend
//! commit, snapshots and sends), serves `/debug/failpoints`, and can plant a bug
//! (`KEEL_PLANTED_BUG`) for the robustness suite to catch. Without it nothing of that is
//! compiled in.
//!
//! # Peer protocol
//!
//! `keelpb.Raft` (`keel-proto/proto/keelpb/raft.proto`) on `listen_peer_addrs`:
//! Keel-to-Keel only, one long-lived client stream of message batches per peer plus one
//! call per snapshot, which streams the backend copy in 1 MiB chunks. The same port
//! serves `keelpb.PeerLease` (`keelpb/internal.proto`): a follower forwards
//! `LeaseKeepAlive` renewals and `LeaseTimeToLive` to the leader with it, since only
//! the leader's lessor holds the lease timers (etcd forwards them over HTTP on its
//! peer port).

mod api;
mod apply;
mod authority;
mod config;
mod convert;
mod errors;
pub mod failpoints;
mod lease;
pub mod membership;
mod node;
mod stats;
mod storage;
mod transport;
mod v2;
// Named apart from `tokio::sync::watch`, which this file uses.
#[path = "watch.rs"]
mod watch_service;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Duration;

use axum::routing::get;
use keel_mvcc::{BatchConfig, Store};
use keel_proto::etcdserverpb::{
    cluster_server::ClusterServer, kv_server::KvServer, lease_server::LeaseServer,
    maintenance_server::MaintenanceServer, watch_server::WatchServer,
};
use keel_proto::keelpb::{self, raft_server::RaftServer};
use keel_raft::RawNode;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use api::ETCD_VERSION;
pub use config::{
    ClusterState, ConfigError, DEFAULT_ELECTION_TIMEOUT_MS, DEFAULT_HEARTBEAT_INTERVAL_MS,
    DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MAX_TXN_OPS, DEFAULT_QUOTA_BACKEND_BYTES,
    DEFAULT_SNAPSHOT_COUNT, DEFAULT_WATCH_PROGRESS_NOTIFY_INTERVAL, InitialMember,
    MAX_ELECTION_TIMEOUT_MS, MIN_WATCH_PROGRESS_NOTIFY_INTERVAL, ServerConfig,
};
pub use errors::{ApiError, ServerError};

use crate::api::Core;
use crate::membership::{Membership, go_url_string};
use crate::node::{Node, NodeInput, NodeSettings, Shared};
use crate::storage::{DiskLog, WalIdentity};
use crate::transport::{RaftService, Transport};

/// How long a stopping server waits for in-flight client requests beyond the request
/// timeout before it cuts them off.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);
/// Pause between attempts to publish this member's attributes.
const PUBLISH_RETRY: Duration = Duration::from_millis(500);

/// A running member. Dropping it without [`Server::shutdown`] leaves its tasks running
/// until the runtime ends.
pub struct Server {
    client_addrs: Vec<SocketAddr>,
    peer_addrs: Vec<SocketAddr>,
    member_id: u64,
    cluster_id: u64,
    request_timeout: Duration,
    node_tx: mpsc::Sender<NodeInput>,
    node_thread: Option<std::thread::JoinHandle<Result<(), ServerError>>>,
    stopped: watch::Receiver<bool>,
    client_stop: watch::Sender<bool>,
    peer_stop: watch::Sender<bool>,
    client_tasks: Vec<JoinHandle<()>>,
    peer_tasks: Vec<JoinHandle<()>>,
    background: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("member_id", &format_args!("{:x}", self.member_id))
            .field("cluster_id", &format_args!("{:x}", self.cluster_id))
            .field("client_addrs", &self.client_addrs)
            .field("peer_addrs", &self.peer_addrs)
            .finish_non_exhaustive()
    }
}

async fn bind(addrs: &[SocketAddr]) -> Result<Vec<tokio::net::TcpListener>, ServerError> {
    let mut out = Vec::with_capacity(addrs.len());
    for &addr in addrs {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        out.push(listener);
    }
    Ok(out)
}

fn local_addrs(listeners: &[tokio::net::TcpListener]) -> Result<Vec<SocketAddr>, ServerError> {
    listeners
        .iter()
        .map(|l| {
            l.local_addr().map_err(|source| ServerError::Io {
                op: "local address of",
                path: "listener".into(),
                source,
            })
        })
        .collect()
}

async fn wait_true(mut rx: watch::Receiver<bool>) {
    // An error means the sender is gone, which also means stop.
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Creates the data directory of a new member (snapshot at index 0, then the WAL).
fn bootstrap(
    config: &ServerConfig,
    wal_dir: &std::path::Path,
    snap_dir: &std::path::Path,
) -> Result<(), ServerError> {
    if config.initial_cluster_state == ClusterState::Existing {
        return Err(ServerError::Bootstrap(
            "joining an existing cluster (--initial-cluster-state=existing) is not supported yet"
                .to_owned(),
        ));
    }
    let membership = Membership::bootstrap(&config.initial_cluster, &config.initial_cluster_token)
        .map_err(ServerError::Bootstrap)?;
    let me = membership
        .members
        .values()
        .find(|m| m.name == config.name)
        .ok_or_else(|| {
            ServerError::Bootstrap(format!(
                "couldn't find local name {:?} in the initial cluster configuration",
                config.name
            ))
        })?;
    let mut advertised: Vec<String> = config
        .initial_advertise_peer_urls
        .iter()
        .map(go_url_string)
        .collect();
    advertised.sort();
    if advertised != me.peer_urls {
        return Err(ServerError::Bootstrap(format!(
            "--initial-cluster has {}={} but missing from --initial-advertise-peer-urls={} (\"{}\")",
            me.name,
            me.peer_urls.join(","),
            advertised.join(","),
            "peer URLs must match"
        )));
    }
    let identity = WalIdentity {
        member_id: me.id,
        cluster_id: membership.cluster_id,
    };
    let snapshot = storage::bootstrap_snapshot(
        membership.members.keys().copied().collect(),
        v2::encode_snapshot_data(membership.encode(), &v2::bootstrap_store(&membership)),
    );
    DiskLog::create(wal_dir, snap_dir, identity, &snapshot)?;
    tracing::info!(
        member_id = format_args!("{:x}", me.id),
        cluster_id = format_args!("{:x}", membership.cluster_id),
        "bootstrapped a new member"
    );
    Ok(())
}

impl Server {
    /// Starts a member: opens (or bootstraps) its data directory, replays the WAL, binds
    /// the client and peer listeners and serves. Fails with an error naming the file when
    /// the WAL, a snapshot or the backend is corrupt.
    pub async fn start(config: ServerConfig) -> Result<Server, ServerError> {
        config.validate()?;
        let member_dir = config.data_dir.join("member");
        let wal_dir = config
            .wal_dir
            .clone()
            .unwrap_or_else(|| member_dir.join("wal"));
        let snap_dir = member_dir.join("snap");
        let db_path = snap_dir.join("db");
        std::fs::create_dir_all(&snap_dir).map_err(ServerError::io("create", &snap_dir))?;
        remove_transfer_leftovers(&snap_dir)?;
        if !storage::wal_exists(&wal_dir)? {
            bootstrap(&config, &wal_dir, &snap_dir)?;
        } else {
            tracing::info!(wal_dir = %wal_dir.display(), "restarting from an existing data directory; initial cluster settings are ignored");
        }
        let recovered = DiskLog::open(&wal_dir, &snap_dir)?;
        let store = Store::open(&db_path, BatchConfig::default()).map_err(|source| {
            ServerError::Backend {
                path: db_path.clone(),
                source,
            }
        })?;
        let snapshot_data =
            v2::decode_snapshot_data(&recovered.snapshot.data).map_err(|reason| {
                ServerError::BadSnapshot {
                    dir: snap_dir.clone(),
                    reason,
                }
            })?;
        let membership = if store.membership().is_empty() {
            Membership::decode(&snapshot_data.membership).map_err(|reason| {
                ServerError::Membership {
                    path: snap_dir.clone(),
                    reason,
                }
            })?
        } else {
            Membership::decode(store.membership()).map_err(|reason| ServerError::Membership {
                path: db_path.clone(),
                reason,
            })?
        };
        let WalIdentity {
            member_id,
            cluster_id,
        } = recovered.identity;
        if membership.cluster_id != cluster_id {
            return Err(ServerError::Membership {
                path: db_path.clone(),
                reason: format!(
                    "backend belongs to cluster {:x}, the WAL to cluster {cluster_id:x}",
                    membership.cluster_id
                ),
            });
        }
        let election_tick = (config.election_timeout_ms / config.heartbeat_interval_ms).max(2);
        let leases = lease::Leases::new(
            election_tick,
            config.heartbeat_interval_ms,
            config.election_timeout_ms,
        );
        leases
            .restore(&store)
            .map_err(|reason| ServerError::BadLeases {
                path: db_path.clone(),
                reason,
            })?;
        let mut raft_config = keel_raft::Config::new(member_id);
        raft_config.election_tick = election_tick;
        raft_config.heartbeat_tick = 1;
        raft_config.applied = recovered.snapshot.metadata.index;
        raft_config.seed = member_id
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
        let voters = recovered.snapshot.metadata.conf_state.voters.clone();
        let mut raw = RawNode::new(&raft_config, recovered.storage)?;
        if voters == [member_id] {
            // A one-member cluster has nobody to wait for.
            raw.campaign()?;
        }

        let client_listeners = bind(&config.listen_client_addrs).await?;
        let peer_listeners = bind(&config.listen_peer_addrs).await?;
        let client_addrs = local_addrs(&client_listeners)?;
        let peer_addrs = local_addrs(&peer_listeners)?;

        let v2_state =
            v2::V2State::from_snapshot(&recovered.snapshot.data, recovered.snapshot.metadata.index)
                .map_err(|reason| ServerError::BadSnapshot {
                    dir: snap_dir.clone(),
                    reason,
                })?;
        let stats = Arc::new(stats::Stats::new(
            member_id,
            membership.members.keys().copied(),
        ));
        let shared = Arc::new(Shared {
            member_id,
            cluster_id,
            leader: AtomicU64::new(0),
            term: AtomicU64::new(0),
            commit_index: AtomicU64::new(0),
            applied_index: AtomicU64::new(store.consistent_index()),
            is_learner: AtomicBool::new(false),
            store: std::sync::RwLock::new(store),
            membership: std::sync::RwLock::new(membership.clone()),
            leases,
            v2: std::sync::RwLock::new(v2_state),
            stats: Arc::clone(&stats),
        });
        let (node_tx, node_rx) = mpsc::channel(node::NODE_INPUT_CAPACITY);
        let (client_stop, client_stop_rx) = watch::channel(false);
        let (peer_stop, peer_stop_rx) = watch::channel(false);
        let peers: Vec<(u64, String)> = membership
            .members
            .values()
            .filter(|m| m.id != member_id)
            .filter_map(|m| m.peer_urls.first().map(|u| (m.id, u.clone())))
            .collect();
        let transport = Transport::start(
            cluster_id,
            peers,
            tokio::runtime::Handle::current(),
            node_tx.clone(),
            peer_stop_rx.clone(),
            Arc::clone(&stats),
        );
        let node = Node::new(
            raw,
            recovered.log,
            Arc::clone(&shared),
            transport,
            node_rx,
            NodeSettings {
                election_tick,
                snapshot_count: config.snapshot_count.max(1),
                snap_dir: snap_dir.clone(),
            },
            membership,
            recovered.snapshot.metadata.index,
        );
        let (stopped_tx, stopped) = watch::channel(false);
        let node_thread = std::thread::Builder::new()
            .name(format!("keel-node-{member_id:x}"))
            .spawn(move || {
                let result = node.run();
                if let Err(e) = &result {
                    tracing::error!(error = %e, "node loop stopped");
                }
                stopped_tx.send_replace(true);
                result
            })
            .map_err(ServerError::io(
                "spawn the node thread for",
                &config.data_dir,
            ))?;

        let mut background = Vec::new();
        let ticker_tx = node_tx.clone();
        let heartbeat = Duration::from_millis(config.heartbeat_interval_ms);
        background.push(tokio::spawn(async move {
            let mut interval = tokio::time::interval(heartbeat);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                if ticker_tx.send(NodeInput::Tick).await.is_err() {
                    return;
                }
            }
        }));

        let request_timeout = Duration::from_millis(5000 + 2 * config.election_timeout_ms);
        let core = Arc::new(Core::new(
            Arc::clone(&shared),
            node_tx.clone(),
            config.max_request_bytes,
            config.max_txn_ops,
            request_timeout,
        ));
        background.push(tokio::spawn(lease::run_timer(Arc::downgrade(&core))));
        background.push(tokio::spawn(watch_service::retry_slow_watchers(
            Arc::downgrade(&core),
        )));

        let mut peer_tasks = Vec::new();
        for listener in peer_listeners {
            let service = RaftServer::new(RaftService::new(
                cluster_id,
                node_tx.clone(),
                snap_dir.clone(),
                Arc::clone(&stats),
            ))
            .max_decoding_message_size(transport::MAX_PEER_MESSAGE_BYTES)
            .max_encoding_message_size(transport::MAX_PEER_MESSAGE_BYTES);
            let lease_peer = lease::peer_service(&core);
            let stop = wait_true(peer_stop_rx.clone());
            peer_tasks.push(tokio::spawn(async move {
                let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
                if let Err(e) = tonic::transport::Server::builder()
                    .add_service(service)
                    .add_service(lease_peer)
                    .serve_with_incoming_shutdown(incoming, stop)
                    .await
                {
                    tracing::error!(error = %e, "peer server failed");
                }
            }));
        }

        let max_decoding = usize::try_from(config.max_request_bytes)
            .unwrap_or(usize::MAX)
            .saturating_add(api::GRPC_OVERHEAD_BYTES);
        let v2_backend: Arc<dyn keel_v2http::V2Backend> =
            Arc::new(v2::V2Server::new(Arc::clone(&core), config.name.clone()));
        // As etcd, TTL keys expire whether or not v2 is served (they may predate
        // `--enable-v2=false`).
        background.push(tokio::spawn(v2::sync_loop(Arc::clone(&core))));
        let watch_settings = watch_service::WatchSettings::new(
            config.watch_progress_notify_interval,
            config.max_request_bytes,
            Duration::from_millis(config.election_timeout_ms),
        );
        let mut client_tasks = Vec::new();
        for listener in client_listeners {
            let grpc = tonic::service::Routes::new(
                KvServer::new(api::KvService(Arc::clone(&core)))
                    .max_decoding_message_size(max_decoding),
            )
            .add_service(MaintenanceServer::new(api::MaintenanceService(Arc::clone(
                &core,
            ))))
            .add_service(ClusterServer::new(api::ClusterService(Arc::clone(&core))))
            .add_service(LeaseServer::new(lease::LeaseService(Arc::clone(&core))))
            .add_service(
                WatchServer::new(watch_service::WatchService::new(
                    Arc::clone(&core),
                    watch_settings.clone(),
                    client_stop_rx.clone(),
                ))
                .max_decoding_message_size(max_decoding),
            )
            .into_axum_router();
            let health_core = Arc::clone(&core);
            let app = axum::Router::new()
                .route(
                    "/health",
                    get(move || api::health(Arc::clone(&health_core))),
                )
                .route("/version", get(api::version))
                .merge(failpoints::router())
                .merge(if config.enable_v2 {
                    keel_v2http::router(Arc::clone(&v2_backend))
                } else {
                    keel_v2http::disabled_router()
                })
                .merge(grpc);
            let stop = wait_true(client_stop_rx.clone());
            let listener = authority::ClientListener(listener);
            client_tasks.push(tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app)
                    .with_graceful_shutdown(stop)
                    .await
                {
                    tracing::error!(error = %e, "client server failed");
                }
            }));
        }

        let publish_core = Arc::clone(&core);
        let attrs = keelpb::MemberAttributes {
            member_id,
            name: config.name.clone(),
            client_urls: config
                .advertise_client_urls
                .iter()
                .map(go_url_string)
                .collect(),
        };
        background.push(tokio::spawn(async move {
            loop {
                let request = keelpb::internal_request::Request::Publish(attrs.clone());
                match publish_core.propose(request).await {
                    Ok(_) => {
                        tracing::info!("published member attributes to the cluster");
                        return;
                    }
                    Err(ApiError::Stopped) => return,
                    Err(e) => {
                        tracing::debug!(error = %e, "publishing member attributes; retrying");
                        tokio::time::sleep(PUBLISH_RETRY).await;
                    }
                }
            }
        }));

        tracing::info!(
            member_id = format_args!("{member_id:x}"),
            cluster_id = format_args!("{cluster_id:x}"),
            ?client_addrs,
            ?peer_addrs,
            "serving"
        );
        Ok(Server {
            client_addrs,
            peer_addrs,
            member_id,
            cluster_id,
            request_timeout,
            node_tx,
            node_thread: Some(node_thread),
            stopped,
            client_stop,
            peer_stop,
            client_tasks,
            peer_tasks,
            background,
        })
    }

    /// The client addresses actually bound (a port 0 in the config is resolved here).
    pub fn client_addrs(&self) -> &[SocketAddr] {
        &self.client_addrs
    }

    /// The peer addresses actually bound.
    pub fn peer_addrs(&self) -> &[SocketAddr] {
        &self.peer_addrs
    }

    /// This member's id (etcd's derivation).
    pub fn member_id(&self) -> u64 {
        self.member_id
    }

    /// The cluster's id (etcd's derivation).
    pub fn cluster_id(&self) -> u64 {
        self.cluster_id
    }

    /// Resolves when the node loop stopped by itself (a disk or backend failure); the
    /// error comes from [`Server::shutdown`].
    pub async fn stopped(&self) {
        wait_true(self.stopped.clone()).await;
    }

    /// Stops gracefully: stops accepting clients and lets in-flight requests finish
    /// (bounded by the request timeout), then stops the node loop, which commits the
    /// backend (every acknowledged entry is already fsynced in the WAL), then the peer
    /// transport. Returns the node loop's error if it had failed.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        self.client_stop.send_replace(true);
        let deadline = self.request_timeout + SHUTDOWN_GRACE;
        for task in std::mem::take(&mut self.client_tasks) {
            let abort = task.abort_handle();
            if tokio::time::timeout(deadline, task).await.is_err() {
                tracing::warn!("in-flight client requests did not finish in time; closing them");
                abort.abort();
            }
        }
        for task in std::mem::take(&mut self.background) {
            task.abort();
        }
        // The node may already have stopped on an error: then the send fails.
        let _ = self.node_tx.send(NodeInput::Stop).await;
        let result = match self.node_thread.take() {
            Some(thread) => match tokio::task::spawn_blocking(move || thread.join()).await {
                Ok(Ok(result)) => result,
                Ok(Err(panic)) => Err(ServerError::Panicked(panic_message(&panic))),
                Err(e) => Err(ServerError::Panicked(e.to_string())),
            },
            None => Ok(()),
        };
        self.peer_stop.send_replace(true);
        for task in std::mem::take(&mut self.peer_tasks) {
            let abort = task.abort_handle();
            if tokio::time::timeout(SHUTDOWN_GRACE, task).await.is_err() {
                abort.abort();
            }
        }
        result
    }
}

/// Backend copies of snapshot transfers cut short by a crash (`outgoing-*.db`,
/// `incoming-*.db`) are useless after a restart.
fn remove_transfer_leftovers(snap_dir: &std::path::Path) -> Result<(), ServerError> {
    for entry in std::fs::read_dir(snap_dir).map_err(ServerError::io("list", snap_dir))? {
        let entry = entry.map_err(ServerError::io("list", snap_dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if (name.starts_with("outgoing-") || name.starts_with("incoming-")) && name.ends_with(".db")
        {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(ServerError::io("remove", &path))?;
        }
    }
    Ok(())
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}
