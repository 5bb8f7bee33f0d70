//! The trait the server implements for the HTTP layer, and the values it hands back.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use keel_v2store::time::UnixNanos;
use keel_v2store::{Event, Stats, V2Error, V2Request, Watcher, WatcherId};

/// A boxed, sendable future (the trait stays object-safe so the router holds an
/// `Arc<dyn V2Backend>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a request did not get the store's answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The store answered with a v2 error (key not found, compare failed, ...).
    #[error(transparent)]
    Store(#[from] V2Error),
    /// The request could not be replicated or served (timeout, leader lost, stopping).
    /// The text is the server's error message (etcd: `etcdserver: request timed out`);
    /// etcd's HTTP layer reports it as error 300 "Raft Internal Error" with this cause.
    #[error("{0}")]
    Unavailable(String),
}

/// Where this member's Raft log stands when an answer is written (etcd's `Response.Index`
/// and `Response.Term`, taken after the request was handled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RaftStatus {
    /// The committed index (`X-Raft-Index`).
    pub index: u64,
    /// The current term (`X-Raft-Term`).
    pub term: u64,
}

/// One cluster member as `/v2/members` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Member id (shown as lower-case hex without padding, as etcd's `types.ID`).
    pub id: u64,
    /// Name; empty for a member added but not started.
    pub name: String,
    /// Peer URLs.
    pub peer_urls: Vec<String>,
    /// Client URLs; empty for a member not started.
    pub client_urls: Vec<String>,
}

/// The cluster as this member knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterView {
    /// The cluster id (`X-Etcd-Cluster-ID`).
    pub cluster_id: u64,
    /// Members sorted by id, as etcd's `RaftCluster.Members()` lists them.
    pub members: Vec<Member>,
    /// The current leader's id, `None` during an election.
    pub leader: Option<u64>,
}

/// What the v2 HTTP layer needs from the server.
///
/// Writes (PUT, POST, DELETE) and quorum GETs (method `QGet`) go through [`propose`];
/// plain GETs and HEADs are served locally by [`get`]; `wait=true` GETs register a
/// watcher with [`watch`], which the HTTP layer removes with [`cancel_watch`] when the
/// client goes away. Every `&self` method except `propose` must answer without waiting
/// (the server typically takes its store lock briefly).
///
/// [`propose`]: V2Backend::propose
/// [`get`]: V2Backend::get
/// [`watch`]: V2Backend::watch
/// [`cancel_watch`]: V2Backend::cancel_watch
pub trait V2Backend: Send + Sync + 'static {
    /// Replicates a write or a quorum read through Raft and returns the store's answer
    /// once applied on this member. Keys are store paths (under `/1`); the answer's keys
    /// too (the HTTP layer trims the prefix).
    fn propose(&self, req: V2Request) -> BoxFuture<'_, Result<Arc<Event>, BackendError>>;

    /// Serves a non-quorum GET or a HEAD from the local store.
    fn get(&self, req: &V2Request) -> Result<Arc<Event>, BackendError>;

    /// Registers a watch for a `wait=true` GET (path, `recursive`, `stream`, `since`
    /// from the request).
    fn watch(&self, req: &V2Request) -> Result<Watcher, BackendError>;

    /// Removes a watcher whose client went away (a no-op if the store already dropped it).
    fn cancel_watch(&self, id: WatcherId);

    /// The committed index and term, read when an answer is written.
    fn raft_status(&self) -> RaftStatus;

    /// The cluster id, members and leader.
    fn cluster(&self) -> ClusterView;

    /// `/v2/stats/store`'s counters.
    fn store_stats(&self) -> Stats;

    /// `/v2/stats/self`: etcd's `ServerStats` JSON, serialised by the server (it owns the
    /// Raft counters and follows etcd's field order).
    fn self_stats(&self) -> String;

    /// `/v2/stats/leader`: etcd's `LeaderStats` JSON, or `None` when this member is not
    /// the leader (answered 403 `{"message":"not current leader"}`).
    fn leader_stats(&self) -> Option<String>;

    /// The proposer's clock in Unix nanoseconds (turns `ttl` into an absolute expiry).
    fn now(&self) -> UnixNanos;
}
