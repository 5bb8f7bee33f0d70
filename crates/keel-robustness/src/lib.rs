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
//!    transactions writing two keys, every value unique in the run. Each
//!    operation is recorded with its invoke and return time ([`history`]);
//!    writes that fail ambiguously have an unknown outcome.
//! 3. Injects the [`scenario`]'s faults in cycles (kill -9 and restart,
//!    SIGSTOP/SIGCONT, blackholes, one-way and majority/minority partitions,
//!    resets and delay ± jitter, compaction during traffic), then heals.
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

//! # Watch and lease (not yet in the server)
//!
//! Traffic and checks are keyed by [`history::Request`]: a watch or lease
//! workload adds its request/response variants, a client task that records
//! into the same [`history::Recorder`], and a check function over the
//! records (ordered, gap-free, duplicate-free events matching the
//! linearized writes; no key outliving its expired lease) returning a
//! [`check::Verdict`] added to [`check::HistoryReport`].
//!
//! # Not covered
//!
//! Failpoints inside the server (`raft_before_save`, `wal_before_sync`,
//! `backend_before_commit`, ...) and planted server bugs (acknowledging a
//! write before its fsync, serving linearizable reads locally on a follower)
//! need server changes. The checks that would catch those bugs are tested on
//! fabricated histories, and with bugs planted in this crate's client layer
//! ([`traffic::PlantedBug`]) on real clusters.

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
