//! Keel's v2 keys store: etcd 3.4's `v2store` as a pure, deterministic library.
//!
//! The HTTP layer (`/v2/keys`, `/v2/stats/store`) and the Raft wiring live in the server;
//! this crate is what they apply committed requests to. It has no IO, no clock and no
//! threads: every time is passed in (TTL expirations are absolute times chosen by the
//! proposer; expiry happens only when the leader's SYNC calls
//! [`Store::delete_expired_keys`] with its time), so every member applying the same log
//! reaches the same state.
//!
//! What it holds, as etcd does:
//! - a tree of directories and files under `/`, with namespaces (etcd: `/0` membership,
//!   `/1` user keys) that cannot be written or deleted; `_`-prefixed names are hidden from
//!   listings and from recursive watchers of a parent;
//! - its own index (`X-Etcd-Index`), separate from the v3 revision: each successful write
//!   and each expiry increments it by one and records one [`Event`];
//! - the last [`HISTORY_CAPACITY`] events, answering watches with a past `waitIndex`
//!   (error 401 once that index has left the history);
//! - watchers with bounded channels ([`watch`](crate::watch) explains the delivery and why
//!   a slow watcher is dropped);
//! - counters for `/v2/stats/store` ([`Stats`]).
//!
//! Answers serialise byte for byte as etcd's: [`Event::to_json`], [`V2Error::to_json`],
//! [`Stats::to_json`] (Go's field order, `omitempty` and HTML-safe string escaping), and
//! [`Store::save`] writes etcd's v2 snapshot JSON ([`snapshot`] documents it).
//!
//! Request handling follows etcd's: [`parse_key_request`] is `parseKeyRequest` (form
//! validation, errors 2xx), [`Store::apply`] is the v2 applier that maps PUT with
//! `prevExist` / `prevValue` / `prevIndex` / `refresh` to set, create, update or
//! compare-and-swap, POST to in-order create, DELETE to delete or compare-and-delete.
//!
//! Where Keel deliberately differs from etcd 3.4 (all invisible to a correct client):
//! - listings are always sorted (etcd's unsorted order is Go's random map order);
//! - a watcher is sent an event at most once (etcd sends a deleted key's stream watcher
//!   the delete twice: once from the removal callback, once from the parent walk);
//! - a watch answered from the history ends after that event even when `stream=true`
//!   (etcd leaves such a stream open without ever sending more);
//! - `recover` ends every open watch (etcd silently orphans them).
mod error;
mod event;
mod history;
mod json;
mod node;
pub mod request;
pub mod snapshot;
mod stats;
mod store;
pub mod time;
pub mod watch;

pub use error::{ErrorCode, V2Error};
pub use event::{Action, Event, NodeExtern};
pub use request::{Method, ParsedKeyRequest, V2Request, parse_key_request};
pub use snapshot::SnapshotError;
pub use stats::Stats;
pub use store::{HISTORY_CAPACITY, STORE_VERSION, Store, TtlOptions};
pub use watch::{WATCHER_CHANNEL_CAPACITY, Watcher, WatcherId};
