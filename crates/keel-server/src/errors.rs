//! Every error of the server: [`ServerError`] for starting and stopping, [`ApiError`] for
//! client requests, and the one table ([`ApiError::status`]) that maps a client error to
//! etcd's exact text and gRPC code (etcd's `v3rpc/rpctypes/error.go`).

use std::net::SocketAddr;
use std::path::PathBuf;

use keel_mvcc::MvccError;
use keel_wal::{SnapError, WalError};
use tonic::{Code, Status};

use crate::config::ConfigError;

/// Why the server could not start, or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration is unusable.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// The write-ahead log could not be created, opened, replayed or written. A corrupt
    /// segment is named (with its byte offset) in the source error.
    #[error("write-ahead log in {dir}: {source}")]
    Wal {
        /// The WAL directory.
        dir: PathBuf,
        /// What failed, naming the segment file where one is at fault.
        #[source]
        source: WalError,
    },
    /// A snapshot file could not be read or written.
    #[error("snapshot files in {dir}: {source}")]
    Snap {
        /// The snapshot directory.
        dir: PathBuf,
        /// What failed.
        #[source]
        source: SnapError,
    },
    /// A snapshot file decoded but its contents make no sense.
    #[error("snapshot file in {dir} is invalid: {reason}")]
    BadSnapshot {
        /// The snapshot directory.
        dir: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The backend (`member/snap/db`) could not be opened or written.
    #[error("backend {path}: {source}")]
    Backend {
        /// The backend file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: MvccError,
    },
    /// The membership stored in the backend or a snapshot cannot be decoded.
    #[error("membership record in {path} is corrupt: {reason}")]
    Membership {
        /// The file it was read from.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The backend's lease table cannot be loaded into the lessor.
    #[error("lease table in {path} is unusable: {reason}")]
    BadLeases {
        /// The backend file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The initial cluster settings cannot form a cluster.
    #[error("initial cluster: {0}")]
    Bootstrap(String),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file system operation on the data directory failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was attempted.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The Raft node refused its configuration or storage.
    #[error("raft: {0}")]
    Raft(#[from] keel_raft::Error),
    /// The node loop thread stopped on an error (disk failure); the message says which.
    #[error("node loop stopped: {0}")]
    NodeFailed(String),
    /// A server thread or task panicked.
    #[error("a server task panicked: {0}")]
    Panicked(String),
}

impl ServerError {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> ServerError {
        let path = path.into();
        move |source| ServerError::Io { op, path, source }
    }
}

/// A client request's failure. Each variant is one of etcd's client-visible errors;
/// [`ApiError::status`] is the only place that knows their text and code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// etcd `ErrGRPCEmptyKey`.
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    /// etcd `ErrGRPCKeyNotFound`.
    #[error("etcdserver: key not found")]
    KeyNotFound,
    /// etcd `ErrGRPCValueProvided`.
    #[error("etcdserver: value is provided")]
    ValueProvided,
    /// etcd `ErrGRPCLeaseProvided`.
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    /// etcd `ErrGRPCLeaseNotFound`.
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    /// etcd `ErrGRPCLeaseExist`.
    #[error("etcdserver: lease already exists")]
    LeaseExist,
    /// etcd `ErrGRPCLeaseTTLTooLarge`.
    #[error("etcdserver: too large lease TTL")]
    LeaseTtlTooLarge,
    /// A grant beyond keel-lease's bound on live leases (no etcd twin: etcd has none).
    #[error("etcdserver: too many leases (limit {0})")]
    TooManyLeases(usize),
    /// etcd `ErrGRPCTooManyOps`.
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps,
    /// etcd `ErrGRPCDuplicateKey`.
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    /// etcd `ErrGRPCCompacted`.
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted,
    /// etcd `ErrGRPCFutureRev`.
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRevision,
    /// etcd `ErrGRPCRequestTooLarge`.
    #[error("etcdserver: request is too large")]
    RequestTooLarge,
    /// etcd `ErrGRPCTooManyRequests`.
    #[error("etcdserver: too many requests")]
    TooManyRequests,
    /// etcd `ErrGRPCNoLeader`.
    #[error("etcdserver: no leader")]
    NoLeader,
    /// etcd `ErrGRPCLeaderChanged`.
    #[error("etcdserver: leader changed")]
    LeaderChanged,
    /// etcd `ErrGRPCTimeout`.
    #[error("etcdserver: request timed out")]
    Timeout,
    /// etcd `ErrGRPCStopped`.
    #[error("etcdserver: server stopped")]
    Stopped,
    /// Raft refused the proposal (etcd passes raft's `ErrProposalDropped` through with
    /// gRPC code Unknown).
    #[error("{0}")]
    ProposalDropped(String),
    /// The backend failed while serving the request (etcd would panic here); the member
    /// stops.
    #[error("etcdserver: backend failure: {0}")]
    Backend(String),
}

impl ApiError {
    /// The gRPC status etcd sends for this error: the one mapping table.
    pub fn status(&self) -> Status {
        let code = match self {
            ApiError::EmptyKey
            | ApiError::KeyNotFound
            | ApiError::ValueProvided
            | ApiError::LeaseProvided
            | ApiError::TooManyOps
            | ApiError::DuplicateKey
            | ApiError::RequestTooLarge => Code::InvalidArgument,
            ApiError::Compacted | ApiError::FutureRevision | ApiError::LeaseTtlTooLarge => {
                Code::OutOfRange
            }
            ApiError::LeaseNotFound => Code::NotFound,
            ApiError::LeaseExist => Code::FailedPrecondition,
            ApiError::TooManyRequests | ApiError::TooManyLeases(_) => Code::ResourceExhausted,
            ApiError::NoLeader
            | ApiError::LeaderChanged
            | ApiError::Timeout
            | ApiError::Stopped => Code::Unavailable,
            ApiError::Backend(_) => Code::Internal,
            ApiError::ProposalDropped(_) => Code::Unknown,
        };
        Status::new(code, self.to_string())
    }

    /// The client error for an MVCC failure while applying or reading.
    pub(crate) fn from_mvcc(err: &MvccError) -> ApiError {
        match err {
            MvccError::Compacted { .. } => ApiError::Compacted,
            MvccError::FutureRevision { .. } => ApiError::FutureRevision,
            MvccError::KeyNotFound => ApiError::KeyNotFound,
            MvccError::DuplicateKey => ApiError::DuplicateKey,
            MvccError::EmptyKey => ApiError::EmptyKey,
            MvccError::LeaseNotFound => ApiError::LeaseNotFound,
            other => ApiError::Backend(other.to_string()),
        }
    }
}

impl ApiError {
    /// The client error for a lessor failure. `NotPrimary` and `Expired` are handled
    /// by the server (forward, wait) before they could reach a client; should one get
    /// here it is reported as etcd reports a renewal it could not place.
    pub(crate) fn from_lease(err: &keel_lease::LeaseError) -> ApiError {
        use keel_lease::LeaseError;
        match err {
            LeaseError::NotFound | LeaseError::Expired(_) => ApiError::LeaseNotFound,
            LeaseError::AlreadyExists => ApiError::LeaseExist,
            LeaseError::TtlTooLarge => ApiError::LeaseTtlTooLarge,
            LeaseError::TooManyLeases { limit } => ApiError::TooManyLeases(*limit),
            LeaseError::NotPrimary => ApiError::LeaderChanged,
        }
    }
}

impl From<ApiError> for Status {
    fn from(err: ApiError) -> Status {
        err.status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_etcd() {
        let cases = [
            (
                ApiError::EmptyKey,
                Code::InvalidArgument,
                "etcdserver: key is not provided",
            ),
            (
                ApiError::TooManyOps,
                Code::InvalidArgument,
                "etcdserver: too many operations in txn request",
            ),
            (
                ApiError::DuplicateKey,
                Code::InvalidArgument,
                "etcdserver: duplicate key given in txn request",
            ),
            (
                ApiError::RequestTooLarge,
                Code::InvalidArgument,
                "etcdserver: request is too large",
            ),
            (
                ApiError::Compacted,
                Code::OutOfRange,
                "etcdserver: mvcc: required revision has been compacted",
            ),
            (
                ApiError::FutureRevision,
                Code::OutOfRange,
                "etcdserver: mvcc: required revision is a future revision",
            ),
            (
                ApiError::NoLeader,
                Code::Unavailable,
                "etcdserver: no leader",
            ),
            (
                ApiError::LeaseNotFound,
                Code::NotFound,
                "etcdserver: requested lease not found",
            ),
            (
                ApiError::LeaseExist,
                Code::FailedPrecondition,
                "etcdserver: lease already exists",
            ),
            (
                ApiError::LeaseTtlTooLarge,
                Code::OutOfRange,
                "etcdserver: too large lease TTL",
            ),
            (
                ApiError::LeaderChanged,
                Code::Unavailable,
                "etcdserver: leader changed",
            ),
            (
                ApiError::Timeout,
                Code::Unavailable,
                "etcdserver: request timed out",
            ),
            (
                ApiError::TooManyRequests,
                Code::ResourceExhausted,
                "etcdserver: too many requests",
            ),
        ];
        for (err, code, text) in cases {
            let status = err.status();
            assert_eq!(status.code(), code, "{err:?}");
            assert_eq!(status.message(), text, "{err:?}");
        }
    }

    #[test]
    fn mvcc_errors_map_to_their_etcd_twins() {
        assert_eq!(
            ApiError::from_mvcc(&MvccError::Compacted {
                compact_revision: 3
            }),
            ApiError::Compacted
        );
        assert_eq!(
            ApiError::from_mvcc(&MvccError::FutureRevision {
                current_revision: 3
            }),
            ApiError::FutureRevision
        );
        assert_eq!(
            ApiError::from_mvcc(&MvccError::DuplicateKey),
            ApiError::DuplicateKey
        );
    }
}
