//! The Keel server: the node loop that owns the Raft node, the peer transport, the applier,
//! leases, cluster membership and maintenance, and the client-facing API layers.
//!
//! [`ServerConfig`] is the contract with the `keel` binary: the binary turns etcd's flags
//! and `ETCD_*` environment variables into one, and the server runs from nothing else.

mod config;

pub use config::{
    ClusterState, ConfigError, DEFAULT_ELECTION_TIMEOUT_MS, DEFAULT_HEARTBEAT_INTERVAL_MS,
    DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MAX_TXN_OPS, DEFAULT_QUOTA_BACKEND_BYTES,
    DEFAULT_SNAPSHOT_COUNT, InitialMember, MAX_ELECTION_TIMEOUT_MS, ServerConfig,
};
