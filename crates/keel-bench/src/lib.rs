//! `keel-bench`: a load generator with the verbs and flags of etcd's
//! `benchmark` tool, for measuring Keel and etcd with one client.
//!
//! It is a client only: it speaks etcd's v3 gRPC API through
//! [`keel_proto`]'s generated `KV` client, so the same run can target a
//! Keel cluster or a real etcd one, and the figures are comparable.
//!
//! ```text
//! keel-bench [--endpoints a:2379,b:2379] [--conns 1] [--clients 1] [--total 10000] [--json]
//!            put     [--key-size 8] [--val-size 8] [--key-space-size 1] [--sequential-keys] [--rate 0]
//!            range   KEY [END] [--consistency l|s] [--limit 0] [--rate 0]
//!            txn-put [--key-size 8] [--val-size 8] [--key-space-size 1] [--txn-ops 1] [--rate 0]
//! ```
//!
//! Beyond etcd's flags there are `--dial-timeout` (5s) and
//! `--request-timeout` (30s): a request that runs over is counted as an
//! error, so a run always ends.
//!
//! # Pieces
//!
//! - [`cli`]: the flags, checked into a [`cli::Plan`].
//! - [`workload`]: the request of each operation, with etcd's key encoding.
//! - [`rate`]: `--rate` as a burst-1 token bucket shared by all clients.
//! - [`runner`]: connections, clients sharing them round-robin, timing.
//! - [`report`]: the summary figures and etcd's text layout (or JSON).
//!
//! # Invariants
//!
//! - Every one of `--total` operations is sent exactly once and counted
//!   exactly once, as a success (with its latency) or as an error (under its
//!   message); the runner asserts `requests + errors == total`.
//! - Memory is bounded by `--total`: one latency per successful operation,
//!   one counter per distinct error message, no request queue.
//! - Errors are not fatal. The binary exits non-zero only when the flags are
//!   invalid or when every request failed.

pub mod cli;
pub mod rate;
pub mod report;
pub mod runner;
pub mod workload;
