//! Errors of the store, with etcd's messages where etcd has one.

use thiserror::Error;

/// Everything a store operation can fail with.
#[derive(Debug, Error)]
pub enum MvccError {
    /// The revision asked for was removed by a compaction (etcd `ErrCompacted`).
    #[error("mvcc: required revision has been compacted")]
    Compacted {
        /// The store's compaction point.
        compact_revision: i64,
    },
    /// The revision asked for is above the current revision (etcd `ErrFutureRev`).
    #[error("mvcc: required revision is a future revision")]
    FutureRevision {
        /// The store's current revision.
        current_revision: i64,
    },
    /// `ignore_value`/`ignore_lease` on a key that does not exist (etcd `ErrKeyNotFound`).
    #[error("etcdserver: key not found")]
    KeyNotFound,
    /// A put names a lease that does not exist (etcd `ErrLeaseNotFound`), checked
    /// against the caller's lease table in [`crate::Store::txn_checked`].
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    /// Two writes of one txn touch the same key (etcd `ErrGRPCDuplicateKey`).
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    /// A request with an empty key (etcd `ErrGRPCEmptyKey`).
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    /// [`crate::Store::read_txn`] got a txn with writes, which must go through Raft.
    #[error("mvcc: txn with writes cannot be served as a local read")]
    TxnNotReadOnly,
    /// The Raft entry was already applied before a restart: the caller skips it.
    #[error("entry {index} already applied (consistent index {consistent_index})")]
    AlreadyApplied {
        /// Index of the entry offered.
        index: u64,
        /// The store's consistent index.
        consistent_index: u64,
    },
    /// The backend file holds something this version cannot read.
    #[error("mvcc backend corrupt: {0}")]
    Corrupt(String),
    /// The backend (redb) failed; the store must be reopened.
    #[error("mvcc backend: {0}")]
    Backend(#[from] redb::Error),
    /// Reading or writing a snapshot file failed.
    #[error("mvcc snapshot io: {0}")]
    Io(#[from] std::io::Error),
}
