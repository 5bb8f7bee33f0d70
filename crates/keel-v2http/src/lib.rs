//! Keel's etcd v2 HTTP API: `/v2/keys`, `/v2/members`, `/v2/machines` and
//! `/v2/stats/{store,self,leader}`, answering byte for byte as etcd 3.4's `v2http`.
//!
//! The layer only parses, calls the server and writes answers. The server implements
//! [`V2Backend`] (writes and quorum reads through Raft, local reads, watches, cluster
//! info) and mounts [`router`] on the client port; `/version` and `/health` are the
//! server's. With `--enable-v2=false` the router is not mounted and `/v2/...` paths get
//! Go's `404 page not found\n` ([`reply::not_found`], [`disabled_router`]).
//!
//! What the answers look like (etcd's `writeKeyEvent`, `writeKeyError`, `handleKeyWatch`):
//! - key answers: status 201 for a created key (create, or set of a new key), else 200;
//!   `Content-Type: application/json`, `X-Etcd-Index` (the store index of the answer),
//!   `X-Raft-Index` / `X-Raft-Term` (committed index and term when the answer is
//!   written), `X-Etcd-Cluster-ID` (lower-case hex); the body is the event JSON from
//!   `keel-v2store` with the `/1` namespace trimmed, plus `\n`. HEAD answers the same
//!   headers without a body.
//! - key errors: `X-Etcd-Index` = the error's index, the error code's status, body
//!   `{"errorCode":..,"message":..,"cause":..,"index":..}\n`. A backend failure that is
//!   not a store error is error 300 with the server's message as cause, index 0.
//! - watches (`wait=true`): headers at once (`X-Etcd-Index` = the watcher's start index),
//!   then, chunked, one event line (long poll) or one line per event (`stream=true`).
//!   As in etcd (`defaultWatchTimeout` is `math.MaxInt64`) the server never times a watch
//!   out; it ends when the client goes away or the store drops the watcher. The watcher
//!   is removed from the store when the response body is dropped, which hyper does when
//!   the client closes the connection, so an abandoned long poll releases its watcher.
//! - other errors use etcd's `httptypes.HTTPError` (`{"message":".."}`, no newline) or
//!   Go's `http.Error` (text plus `\n`, e.g. 405 `Method Not Allowed` with `Allow`).
//!
//! Form values are read as Go's `ParseForm` does: the url-encoded body (PUT and POST
//! with `Content-Type: application/x-www-form-urlencoded`, at most
//! [`keys::MAX_FORM_BODY_BYTES`]) before the query; validation is
//! `keel_v2store::parse_key_request`.
//!
//! Differences from etcd 3.4 that a client can see: no v2 auth (`/v2/auth`, 401s);
//! membership changes answer 500 (see [`cluster`]); Go's `ServeMux` redirects unclean
//! paths (`/v2/keys/a/../b`) with 301, Keel serves them at the cleaned key; the member
//! body decoder's 400 messages are serde's, not Go's.
//!
//! Testing: `fixtures.py` records etcd 3.4's answers to `tests/fixtures/requests.txt`
//! (status, headers, bodies, long polls, streams); `tests/etcd_fixtures.rs` replays them
//! against this router over TCP with a store-backed test double, and `tests/etcdctl.rs`
//! runs Debian's `etcdctl` (v2) against both. The runner (`tests/common/replay.rs`) is
//! also used by keel-server's `tests/v2.rs` to replay the fixtures against the real
//! server.
mod backend;
pub mod cluster;
pub mod keys;
pub mod reply;

use std::sync::Arc;

use axum::Router;
use axum::routing::any;

pub use backend::{BackendError, BoxFuture, ClusterView, Member, RaftStatus, V2Backend};

/// The v2 API's routes, to be merged into the client port's router.
pub fn router(backend: Arc<dyn V2Backend>) -> Router {
    Router::new()
        .route("/v2/keys", any(keys::handle))
        .route("/v2/keys/", any(keys::handle))
        .route("/v2/keys/{*key}", any(keys::handle))
        .route("/v2/members", any(cluster::members))
        .route("/v2/members/", any(cluster::members))
        .route("/v2/members/{*id}", any(cluster::members))
        .route("/v2/machines", any(cluster::machines))
        .route("/v2/stats/store", any(cluster::store_stats))
        .route("/v2/stats/self", any(cluster::self_stats))
        .route("/v2/stats/leader", any(cluster::leader_stats))
        .route("/v2", any(not_found))
        .route("/v2/{*rest}", any(not_found))
        .with_state(backend)
}

/// What the client port serves under `/v2` when the v2 API is disabled: Go's
/// `404 page not found\n` for every path, as etcd 3.4 with `--enable-v2=false`.
pub fn disabled_router() -> Router {
    Router::new()
        .route("/v2", any(not_found))
        .route("/v2/{*rest}", any(not_found))
}

async fn not_found() -> axum::response::Response {
    reply::not_found()
}
