//! Keel's multi-version key-value store: etcd v3's MVCC semantics on a redb backend,
//! independent of Raft, protobufs and the network.
//!
//! # Job
//!
//! [`Store`] applies committed Raft entries (`put`, `delete_range`, `txn`, `compact`,
//! plus `apply_noop`/`set_membership` for entries that do not touch keys) in log order,
//! serves local reads (`range`, `read_txn` for serializable read-only txns), hashes the
//! keyspace (`hash`, `hash_kv`), writes and restores consistent backend copies
//! (`snapshot`; `restore` into a new file, `restore_snapshot` in place for a follower)
//! and feeds watchers (`watch`, `cancel_watch`, `sync_watchers`, and
//! `is_watcher_synced`, which tells the server when a progress notice may follow what a
//! watcher's channel already holds). Request and response
//! types mirror etcd's protos minus headers; the server maps between them.
//!
//! The store is single-owner: the server's apply loop holds it (it is `Send + Sync`)
//! and wraps it in a lock if other tasks must read. Nothing in here reads clocks; the
//! caller passes `now` to [`Store::commit_if_due`] and calls [`Store::sync_watchers`]
//! on its tick. The one thread it starts is the backend's: a batch due for a commit is
//! written to redb in the background while reads see it in memory (see `backend`), and
//! every synchronous commit, snapshot or drop waits for it first.
//!
//! Errors carry etcd's messages ([`MvccError`]). A [`MvccError::Backend`] error in the
//! middle of a request leaves memory and disk apart: the caller must drop the store and
//! reopen it (then replay the WAL from the consistent index).
//!
//! # Invariants
//!
//! - Every write request gets exactly one main revision (`current_revision + 1`) if it
//!   changes anything; the changes inside it get sub-revisions `0, 1, ...`. Reads and
//!   read-only txns never bump the revision.
//! - The consistent index (with its term) and the membership blob live in the meta
//!   table and are committed in the same redb transaction as the data produced by the
//!   entries up to that index, and a commit never splits one request. After a crash the
//!   store reopens at a state that is exactly "entries `1..=consistent_index` applied";
//!   entries at or below it are refused with [`MvccError::AlreadyApplied`], so
//!   replaying the WAL is idempotent.
//! - The in-memory key index ([`index`]) is derived entirely from the backend and
//!   rebuilt on open.
//! - Reads see writes not yet committed to redb: the pending batch is consulted first.
//! - Every buffer is bounded: the pending batch by [`BatchConfig::batch_limit_ops`]
//!   (checked between requests), watcher channels by their capacity, a victim holds
//!   one response, and one `sync_watchers` call reads about [`MAX_EVENTS_PER_SYNC`]
//!   events for at most [`MAX_WATCHERS_PER_SYNC`] watchers.
//!
//! # Measuring
//!
//! `cargo bench -p keel-mvcc --bench store` (put, range, txn, put with 1,000 watchers);
//! `cargo run -p keel-mvcc --profile ci --example mem_per_key` (memory per key of the
//! index and of a store loaded with 1M keys of 256 B).
//!
//! # Watch delivery channel
//!
//! Watchers deliver into a `tokio::sync::mpsc` bounded channel given by the caller
//! (only tokio's `sync` feature: no runtime is needed to send). The store only ever
//! calls `try_send`, so a slow reader can never block the apply loop; the server's
//! watch-stream task, which lives on tokio, can `recv().await` without a bridging
//! thread. A `std::sync::mpsc::SyncSender` would force a blocking receive there.
//!
//! # On-disk layout, version 1
//!
//! One redb file with three tables. `meta["layout_version"]` holds `1` as a 4-byte
//! big-endian integer; opening a file with another version fails. The `lease` table
//! came later without a version bump: opening a file that lacks it creates it empty,
//! and installing a snapshot that lacks it means "no leases".
//!
//! **`key` table**: `[u8; 17] → bytes`. The key is the revision: `main` as 8 bytes
//! big-endian, the byte `'_'` (0x5F), `sub` as 8 bytes big-endian (both non-negative,
//! so byte order is revision order, as in etcd). The value is a record:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | record format version, `1` |
//! | 1 | 1 | flags: bit 0 = tombstone (deletion marker); other bits 0 |
//! | 2 | 8 | `create_revision`, i64 BE (0 for a tombstone) |
//! | 10 | 8 | `mod_revision`, i64 BE (equals the key's `main`) |
//! | 18 | 8 | `version`, i64 BE (0 for a tombstone) |
//! | 26 | 8 | `lease`, i64 BE |
//! | 34 | 4 | key length `n`, u32 BE, `n >= 1` |
//! | 38 | n | key |
//! | 38+n | rest | value (empty for a tombstone) |
//!
//! **`meta` table**: `&str → bytes`: `layout_version` (u32 BE), `consistent_index`
//! (u64 BE), `term` (u64 BE), `compact_revision` (i64 BE, -1 before
//! any; the last finished compaction: revisions at or below it hold only what
//! compaction kept), `membership`
//! (opaque bytes owned by the server).
//!
//! **`lease` table**: `[u8; 8] → bytes`. The key is the lease id, i64 big-endian
//! two's complement; the value is the lease record, opaque to this crate (the server
//! stores `keel-lease`'s `LeaseRecord`, format documented there). Lease writes
//! ([`Store::put_lease_records`], [`Store::revoke_lease`]) join the pending batch, so
//! they are committed in the same redb transaction as the key-value changes and the
//! consistent index of their entry: replaying the WAL after a crash re-applies lease
//! entries exactly when their key-value changes are missing too. Compaction and
//! `hash`/`hash_kv` ignore this table (leases have no revisions; etcd's `HashKV`
//! hashes only the `key` bucket).
//!
//! # Leases
//!
//! The store knows lease ids only as the `lease` field of key-values and as keys of
//! the lease table; the lessor lives in the server. What the server needs: a txn
//! whose taken branch puts with an unknown lease fails before writing
//! ([`Store::txn_checked`], [`MvccError::LeaseNotFound`]); after each applied entry,
//! [`Store::last_changes`] lists the keys put or deleted with their new lease, so the
//! lessor's attached keys stay exact; [`Store::revoke_lease`] deletes a lease's keys
//! in one revision (one delete event each for watchers) together with its record;
//! [`Store::leased_keys`] lists live keys with a lease for reattaching at start-up.
//!
//! Compaction deletes records in the same transaction that advances
//! `compact_revision` (and the consistent index of the compaction entry), so a
//! compaction is either entirely on disk or not at all, and etcd's `physical` wait is
//! always satisfied when [`Store::compact`] returns.
//!
//! Compaction at `rev` keeps, for every key, its newest record at or below `rev`, and
//! drops it if it is a tombstone below `rev`; a tombstone at exactly `rev` stays until
//! the next compaction (as etcd since 3.4.34/3.5.15), so a watcher resuming at the
//! compaction point still sees that deletion.
//!
//! A snapshot ([`Store::snapshot`]) is a new redb file with all three tables copied from one
//! committed redb read transaction, so it is the same layout and opens as a store.
//!
//! # Hashes
//!
//! [`Store::hash_kv`] follows etcd's `HashKV` rules (CRC-32C over the bucket name
//! `key`, then the key and value bytes of the records up to the revision, skipping
//! those compaction at the revision would drop) and hashes the bytes etcd's bbolt
//! would hold for each record (the revision key with `t` appended for a tombstone,
//! and the `mvccpb.KeyValue` protobuf, see [`Record::encode_etcd_value`]), so the
//! value equals etcd's for the same history.

mod backend;
mod error;
pub mod index;
mod kv;
mod lease;
mod revision;
mod store;
mod types;
mod watch;

pub use backend::{BatchConfig, LAYOUT_VERSION};
pub use error::MvccError;
pub use kv::{KeyValue, RECORD_FORMAT_VERSION, Record};
pub use lease::{KeyLeaseChange, LeaseRevoked};
pub use revision::{REVISION_BYTES, Revision};
pub use store::{
    MAX_EVENTS_PER_SYNC, MAX_WATCHERS_PER_SYNC, SnapshotInfo, Store, StoreStats, SyncReport,
};
pub use types::{
    ApplyIndex, CompactResponse, Compare, CompareResult, CompareTarget, DeleteRangeRequest,
    DeleteRangeResponse, HashKv, PutRequest, PutResponse, RangeRequest, RangeResponse, RequestOp,
    ResponseOp, SortOrder, SortTarget, TxnRequest, TxnResponse,
};
pub use watch::{
    DEFAULT_WATCH_CHANNEL_CAPACITY, Event, EventType, WatchId, WatchRequest, WatchResponse,
};

#[cfg(test)]
mod tests {
    fn assert_send_sync<T: Send + Sync>() {}

    /// The server moves the store into its apply task and shares it behind a lock.
    #[test]
    fn store_is_send_and_sync() {
        assert_send_sync::<crate::Store>();
    }
}
