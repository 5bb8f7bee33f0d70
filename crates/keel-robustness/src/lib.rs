//! Keel's robustness suite: real clusters of `keel` processes under crashes,
//! partitions and pauses, checked for linearizability.
//!
//! # What a run does
//!
//! 1. Starts a 3- or 5-member cluster of the real `keel` binary on 127.0.0.1
//!    ([`cluster`]), with a fault-injecting TCP proxy in front of every
//!    member's peer port ([`proxy`]). The proxy tells the sending member of
//!    each connection apart through the kernel's socket table, so faults are
//!    set per *directed* link `a → b` (Keel's transport sends `a`'s messages
//!    to `b` on connections `a` opens). The cluster checks at start-up that
//!    every directed link carried an identified connection.
//! 2. Drives concurrent gRPC clients ([`traffic`]): linearizable and
//!    serializable gets, prefix ranges, puts, deletes and compare-and-set
//!    transactions writing two keys, every value unique in the run; and,
//!    when asked, watchers and lease clients (see below). Each
//!    operation is recorded with its invoke and return time ([`history`]);
//!    writes that fail ambiguously have an unknown outcome.
//! 3. Injects the [`scenario`]'s faults in cycles (kill -9 and restart,
//!    SIGSTOP/SIGCONT, blackholes, one-way and majority/minority partitions,
//!    resets and delay ± jitter, compaction during traffic, crashes at server
//!    failpoints, a slow disk), then heals.
//! 4. After healing: a linearizable read of every key (part of the history),
//!    and a comparison of the members' keyspaces at one revision (`HashKV`,
//!    or a serializable `Range` of everything when `HashKV` is unimplemented).
//! 5. Checks the history ([`check`]): linearizability per key with
//!    `keel_sim::linearizability` over [`model::KvModel`], every key read after
//!    healing (so a lost acknowledged write is a linearizability violation),
//!    and serializable reads returning states that existed.
//!
//! A failing run keeps its directory (history as JSON lines, fault events,
//! member logs and data) and prints the command that repeats it.
//!
//! # Invariants
//!
//! * Every process a run starts is killed by pid when its [`cluster::Cluster`]
//!   is dropped: on success, error, panic, or Ctrl-C (the run future is
//!   dropped).
//! * All traffic stays on 127.0.0.1; every buffer is bounded (proxy chunks,
//!   [`history::MAX_RECORDS`]); every wait has a deadline.
//! * A check never fails a correct history: unknown outcomes may or may not
//!   take effect, and multi-key operations are checked through sound per-key
//!   projections.

//! # Watch and lease
//!
//! With `--watchers N` / `--lease-clients N` ([`run::RunConfig::watchers`],
//! [`run::RunConfig::lease_clients`]; the CLI runs 3 watchers and 2 lease
//! clients unless told otherwise, `RunConfig::new` none, so the integration
//! tests choose per test):
//!
//! * [`watch`]: watchers on the run's prefix, from revision 1, from now and
//!   from a past revision, with and without `prev_kv`, one with the
//!   `NODELETE` filter; each session is one
//!   gRPC stream to one member, rotated every 1–3 s or on error, resuming at
//!   the last revision seen + 1 on the next member, as `clientv3` does. Each
//!   session is one [`history::Request::Watch`] record listing its batches of
//!   events (arrival time, header revision, events with their prev_kv). At
//!   the end the run writes [`run::SENTINEL_KEY`] and waits (bounded) until
//!   every watcher has seen it.
//! * [`lease`]: grants with client-chosen ids, puts attached to leases
//!   (under [`lease::LEASE_PREFIX`]), keep-alives, revokes, and leases left to
//!   expire and probed until gone; linearizable reads of the lease keys.
//! * [`watch_check`]: ordered, no duplicates, no gaps (every change known from
//!   any watcher or from the acknowledged writes is seen by every watcher
//!   covering its revision; replaying a from-the-start watcher matches every
//!   prefix range at its header revision), atomic per revision, resumable,
//!   prev_kv correct, filters honoured.
//! * [`lease_check`]: a key of a revoked or expired lease is never read after
//!   the lease was seen gone, a gone lease is never found alive again, and no
//!   lease expires before its TTL after a successful renewal.
//!
//! Each check is a [`check::Verdict`] in [`check::HistoryReport`]; a history
//! without watch or lease records passes them trivially. Planted client-side
//! bugs [`traffic::PlantedBug::WatchResumeSkips`] and
//! [`traffic::PlantedBug::WatchDropsPrevKv`] show the watch checks catch
//! what a server bug would produce.
//!
//! Against etcd: the cluster runs any binary taking etcd's flags, so
//! `KEEL_BIN=/usr/bin/etcd` runs every scenario, watch and lease traffic
//! included, against etcd 3.4. The proxy's per-direction faults then act on
//! etcd's connections, which carry messages both ways (etcd streams from the
//! dialled side), so one-way faults are not one-way there.
//!
//! # Failpoints and planted server bugs
//!
//! A `keel` built with the `failpoints` feature takes the `fail` crate's
//! failpoints (`FAILPOINTS` at start, `/debug/failpoints` on the client port;
//! see keel-server's `failpoints` module). The `failpoint-*` scenarios crash
//! a random member at `raft_before_save`, `wal_before_sync`,
//! `backend_before_commit` or `apply_before_consistent_index` under traffic
//! and restart it on heal; `slow-disk` makes the leader's WAL fsyncs and
//! backend commits sleep. `cargo test --workspace` builds `keel` with the
//! feature (this crate's dev-dependency on `keel` unifies it in), so CI needs
//! no second build; `tests/failpoints.rs` checks that the binary really
//! serves the endpoint. `KEEL_PLANTED_BUG` (set through
//! [`run::RunConfig::keel_env`], or inherited from the harness's
//! environment) plants a server bug, and `tests/planted_server_bugs.rs` shows
//! each one fails a run that passes without it.
//!
//! # Not covered
//!
//! * Power loss: a crash at a failpoint kills the process, not the machine,
//!   so written but unsynced data survives in the page cache; losing it needs
//!   keel-sim's simulated disk.
//! * No scenario arms the snapshot failpoints (`raft_before_apply_snapshot`,
//!   `raft_after_apply_snapshot`) or the send failpoints: reaching a snapshot
//!   in a run needs a small `--snapshot-count` on the members, and `run`
//!   does not pass [`run::RunConfig::keel_args`] to them yet.
//!   `tests/failpoints.rs` crashes a follower at each snapshot point
//!   directly and checks it catches up.
//! * `return` actions (a failpoint that makes the disk fail with an error).

pub mod check;
pub mod cluster;
pub mod history;
pub mod lease;
pub mod lease_check;
pub mod model;
pub mod proxy;
pub mod run;
pub mod scenario;
pub mod traffic;
pub mod watch;
pub mod watch_check;

use std::path::{Path, PathBuf};

/// Everything that can stop a run from reaching a verdict.
#[derive(Debug, thiserror::Error)]
pub enum RobustnessError {
    /// A file or directory could not be used.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The cluster could not be started, controlled or healed.
    #[error("cluster: {0}")]
    Cluster(String),
    /// A history could not be written, read or checked.
    #[error("history: {0}")]
    History(String),
    /// The `keel` executable was not found.
    #[error("keel binary not found: {0}")]
    KeelNotFound(String),
    /// A run failed before its checks; its directory is kept.
    #[error("{cause}\n  kept: {dir}\n  repeat with: {repro}")]
    Run {
        /// The kept run directory.
        dir: PathBuf,
        /// The command that repeats the run.
        repro: String,
        /// What went wrong.
        cause: Box<RobustnessError>,
    },
}

impl RobustnessError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> RobustnessError {
        RobustnessError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// Finds the `keel` executable: `$KEEL_BIN`, else `keel` next to the current
/// executable or in its parent directory (tests run from `target/<profile>/deps`).
pub fn locate_keel() -> Result<PathBuf, RobustnessError> {
    if let Some(path) = std::env::var_os("KEEL_BIN") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(RobustnessError::KeelNotFound(format!(
                "KEEL_BIN={} is not a file",
                path.display()
            )))
        };
    }
    let exe = std::env::current_exe()
        .map_err(|e| RobustnessError::KeelNotFound(format!("current executable: {e}")))?;
    let mut tried = Vec::new();
    for dir in exe.ancestors().skip(1).take(2) {
        let candidate = dir.join("keel");
        if candidate.is_file() {
            return Ok(candidate);
        }
        tried.push(candidate.display().to_string());
    }
    Err(RobustnessError::KeelNotFound(format!(
        "set KEEL_BIN or build it (cargo build -p keel --profile <same profile>); tried {}",
        tried.join(", ")
    )))
}
