//! Errors of the lessor. Client-facing variants carry etcd's exact messages; the
//! server maps them to gRPC codes in its one error table.

use crate::LeaseId;

/// An operation on leases failed. Nothing was changed when this is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    /// The lease does not exist (etcd `ErrLeaseNotFound`, gRPC `NotFound`). Also what
    /// etcd answers to a grant with id 0 once it reaches the applier.
    #[error("etcdserver: requested lease not found")]
    NotFound,
    /// A grant named an id that is already in use (etcd `ErrLeaseExist`,
    /// gRPC `FailedPrecondition`).
    #[error("etcdserver: lease already exists")]
    AlreadyExists,
    /// A grant asked for more than [`crate::MAX_LEASE_TTL_SECS`] (etcd
    /// `ErrLeaseTTLTooLarge`, gRPC `OutOfRange`).
    #[error("etcdserver: too large lease TTL")]
    TtlTooLarge,
    /// Renew or time-to-live on a member that is not the primary lessor (etcd
    /// `ErrNotPrimary`): the server forwards the request to the leader.
    #[error("not a primary lessor")]
    NotPrimary,
    /// Renew of a lease whose expiry has passed on this primary: its revoke has been
    /// (or is about to be) proposed, so it cannot be renewed. etcd blocks the renew
    /// until the revoke applies (then answers "requested lease not found") or the
    /// member is demoted (then forwards); the server does the same waiting.
    #[error("lease {0} has expired and is being revoked")]
    Expired(LeaseId),
    /// A grant would exceed [`crate::LessorConfig::max_leases`]. Not in etcd, which
    /// has no bound; the answer is deterministic, so every member refuses alike.
    #[error("etcdserver: too many leases (limit {limit})")]
    TooManyLeases {
        /// The configured bound.
        limit: usize,
    },
}

/// A persisted lease record could not be decoded: the backend holds bytes this
/// version did not write, or they were damaged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Wrong length for the record's version.
    #[error("lease record: {len} bytes, expected {expected}")]
    Length {
        /// Bytes found.
        len: usize,
        /// Bytes the format has.
        expected: usize,
    },
    /// A format version this build does not know.
    #[error("lease record: unknown version {0}")]
    Version(u8),
    /// The checksum does not match the bytes.
    #[error("lease record: checksum mismatch (stored {stored:08x}, computed {computed:08x})")]
    Checksum {
        /// CRC32C found in the record.
        stored: u32,
        /// CRC32C of the bytes it covers.
        computed: u32,
    },
    /// The fields decode but break a record invariant (id 0, TTL below 1, remaining
    /// TTL outside `0..=ttl`).
    #[error(
        "lease record: invalid field values (id {id}, ttl {ttl_secs}, remaining {remaining_ttl_secs})"
    )]
    Invalid {
        /// Decoded id.
        id: i64,
        /// Decoded TTL in seconds.
        ttl_secs: i64,
        /// Decoded remaining TTL in seconds.
        remaining_ttl_secs: i64,
    },
}

/// [`crate::Lessor::restore`] refused its input; the lessor is left empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// Two records carry the same id.
    #[error("restore: lease {0} appears twice")]
    Duplicate(LeaseId),
    /// More records than [`crate::LessorConfig::max_leases`].
    #[error("restore: more than {limit} leases")]
    TooMany {
        /// The configured bound.
        limit: usize,
    },
}
