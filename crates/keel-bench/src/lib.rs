//! `keel-bench`: a load generator with the verbs and flags of etcd's
//! `benchmark` tool, for measuring Keel and etcd with one client.
//!
//! It is a client only: it speaks etcd's v3 gRPC API through
//! [`keel_proto`]'s generated `KV`, `Watch` and `Lease` clients, so the same
//! run can target a Keel cluster or a real etcd one, and the figures are
//! comparable.
//!
//! ```text
//! keel-bench [--endpoints a:2379,b:2379] [--conns 1] [--clients 1] [--total 10000] [--json]
//!            put     [--key-size 8] [--val-size 8] [--key-space-size 1] [--sequential-keys] [--rate 0]
//!            range   KEY [END] [--consistency l|s] [--limit 0] [--rate 0]
//!            txn-put [--key-size 8] [--val-size 8] [--key-space-size 1] [--txn-ops 1] [--rate 0]
//!            txn-mixed [--rw-ratio 1] [--key-size 8] [--val-size 8] [--key-space-size 1]
//!                      [--consistency l|s] [--end-key ""] [--limit 1000] [--rate 0]
//!            watch   [--streams 10] [--watch-per-stream 100] [--watched-key-total 1]
//!                    [--put-total 1000] [--put-rate 0] [--key-size 32] [--key-space-size 1]
//!                    [--sequential-keys] [--idle-hold 0s]
//!            watch-latency [--streams 10] [--watchers-per-stream 10] [--prevkv] [--prefix]
//!                          [--put-total 1000] [--put-rate 100] [--key-size 32] [--val-size 32]
//!            lease-keepalive
//! ```
//!
//! The verbs, flags and defaults are etcd 3.4/3.5 `benchmark`'s; the
//! summaries are laid out as etcd's (`txn-mixed`: reads then writes;
//! `watch`: watcher creation then event delivery; `watch-latency`: puts then
//! put-to-event latency), and `--json` prints the same figures as one object
//! (for the multi-section verbs, one key per section). `--total` counts the
//! operations of the KV verbs and of `lease-keepalive`; the watch verbs count
//! puts with `--put-total`. Where this tool differs from etcd's on purpose
//! (`--put-rate 0` is no limit, `watch` reports real put-to-event latencies,
//! `txn-mixed` honours `--end-key`, `--prefix` and `--idle-hold` are
//! additions), the verb's module says so.
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
//! - [`runner`]: connections, clients sharing them round-robin, timing, the
//!   progress bar; the per-operation work of a verb is an
//!   [`runner::Operations`].
//! - [`lease`]: `lease-keepalive`'s operations.
//! - [`watch`]: `watch` and `watch-latency`: watch streams, puts, matching
//!   events to puts.
//! - [`report`]: the summary figures and etcd's text layout (or JSON).
//!
//! # Invariants
//!
//! - Every one of `--total` operations is sent exactly once and counted
//!   exactly once, as a success (with its latency) or as an error (under its
//!   message); the runner asserts `requests + errors == total`. In the watch
//!   verbs every expected event (a successful put times the watchers of its
//!   key) is counted once, as delivered or as an error.
//! - Memory is bounded by `--total` (one latency per successful operation,
//!   one counter per distinct error message, no request queue), and in the
//!   watch verbs by `watchers * put-total` event records.
//! - Every wait is bounded: requests by `--request-timeout`, events by
//!   `--request-timeout` after the last put.
//! - Errors are not fatal. The binary exits non-zero only when the flags are
//!   invalid or when every request failed.

pub mod cli;
pub mod connector;
pub mod lease;
pub mod rate;
pub mod report;
pub mod runner;
pub mod watch;
pub mod workload;
