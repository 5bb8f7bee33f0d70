//! Failpoints and planted bugs: how the robustness suite breaks a real member on purpose.
//!
//! Everything here is compiled in only with the `failpoints` feature; without it the
//! points expand to nothing, the planted bugs are constant `false`, no route is mounted,
//! and [`setup_from_env`] refuses `FAILPOINTS` or `KEEL_PLANTED_BUG` with an error rather
//! than ignoring them.
//!
//! # Failpoints
//!
//! Named after the place they break ([`NAMES`]); their actions are the `fail` crate's
//! (`panic`, `sleep(ms)`, `delay(ms)`, `pause`, `yield`, `print`, `off`, with `p%` and
//! `cnt*` prefixes and `->` chains). `return` is not supported: no point has a value to
//! return. A `panic` action aborts the whole process (a panic hook installed by
//! [`setup_from_env`]), so it behaves like a crash and not like a panicked thread the
//! server could notice:
//!
//! | point | where |
//! |---|---|
//! | `raft_before_leader_send` | a leader's `Ready`, before its appends go out (they go before its own fsync) |
//! | `raft_before_save` | before a `Ready`'s entries and hard state are written to the WAL |
//! | `wal_before_sync` | in keel-wal, written but before the `fdatasync` |
//! | `raft_after_save` | after the WAL fsync, before anything promising durability is sent |
//! | `raft_before_follower_send` | a non-leader's `Ready`, before the messages that promise durability go out |
//! | `apply_before_consistent_index` | before a committed entry is applied (and the consistent index moves to it) |
//! | `backend_before_commit` | before a due backend commit, with applied but uncommitted changes |
//! | `raft_before_apply_snapshot` | a follower receiving a snapshot, before the backend is replaced |
//! | `raft_after_apply_snapshot` | after the snapshot is saved and handed to the Raft log |
//!
//! Configured at start by `FAILPOINTS=name=actions;name=actions` (the `fail` crate's
//! syntax) and at run time over HTTP on every client port, like etcd's gofail endpoint:
//! `PUT /debug/failpoints/<name>` with the actions as body (204; 400 for bad actions; 404
//! for an unknown name), `DELETE /debug/failpoints/<name>` (204), `GET
//! /debug/failpoints/<name>` (its actions) and `GET /debug/failpoints` (`name=actions`
//! lines). A restarted process starts with none but what `FAILPOINTS` says.
//!
//! # Planted bugs
//!
//! `KEEL_PLANTED_BUG=<name>` at start makes the member wrong on purpose, so a test can
//! show the robustness suite catches that kind of bug ([`PlantedBug`]).

#[cfg(feature = "failpoints")]
use std::collections::HashMap;
use std::sync::OnceLock;

#[cfg(feature = "failpoints")]
use tokio::sync::oneshot;

#[cfg(feature = "failpoints")]
use crate::apply::{Applied, ApplyResult};
use crate::node::Shared;

/// Runs the failpoint `$name` in `failpoints` builds; expands to nothing otherwise.
macro_rules! fail_point {
    ($name:literal) => {
        #[cfg(feature = "failpoints")]
        fail::fail_point!($name);
    };
}
pub(crate) use fail_point;

/// Every failpoint of the server, in the order a write meets them.
pub const NAMES: [&str; 9] = [
    "raft_before_leader_send",
    "raft_before_save",
    "wal_before_sync",
    "raft_after_save",
    "raft_before_follower_send",
    "apply_before_consistent_index",
    "backend_before_commit",
    "raft_before_apply_snapshot",
    "raft_after_apply_snapshot",
];

/// The environment variable that configures failpoints at start (the `fail` crate's).
pub const FAILPOINTS_ENV: &str = "FAILPOINTS";
/// The environment variable that plants a bug at start.
pub const PLANTED_BUG_ENV: &str = "KEEL_PLANTED_BUG";

/// A server bug planted on purpose (only in `failpoints` builds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlantedBug {
    /// `follower-local-reads`: a member that is not the leader serves linearizable reads
    /// (Range, Txn) from its own store without a ReadIndex round. A follower behind the
    /// leader, or cut off from it, answers with values already overwritten.
    FollowerLocalReads,
    /// `ack-before-commit`: a plain Put is acknowledged as soon as its entry is appended
    /// to the local log, before the WAL fsync, before a quorum has it and before it is
    /// applied; the answer's revision is the store's current one (a lower bound of the
    /// real one). A leader cut off from the others acknowledges writes that a new leader
    /// then overwrites: the acknowledged write is lost. (A `kill -9` alone rarely shows
    /// it: the page cache survives a process crash and replication takes milliseconds.)
    AckBeforeCommit,
}

impl PlantedBug {
    /// Every planted bug.
    pub const ALL: [PlantedBug; 2] = [PlantedBug::FollowerLocalReads, PlantedBug::AckBeforeCommit];

    /// The `KEEL_PLANTED_BUG` value.
    pub fn name(self) -> &'static str {
        match self {
            PlantedBug::FollowerLocalReads => "follower-local-reads",
            PlantedBug::AckBeforeCommit => "ack-before-commit",
        }
    }

    /// Parses a `KEEL_PLANTED_BUG` value.
    pub fn parse(name: &str) -> Option<PlantedBug> {
        PlantedBug::ALL.into_iter().find(|b| b.name() == name)
    }
}

/// The bug planted in this process, set once by [`setup_from_env`].
static PLANTED: OnceLock<PlantedBug> = OnceLock::new();

/// Whether `FAILPOINTS` and `KEEL_PLANTED_BUG` work in this build.
pub const ENABLED: bool = cfg!(feature = "failpoints");

/// Configures failpoints from `FAILPOINTS` and the planted bug from `KEEL_PLANTED_BUG`
/// (looked up in `env`), and makes a failpoint panic abort the process. Call once, at
/// process start. Returns what was set, for the log; an error names the bad setting (or,
/// without the `failpoints` feature, that either variable is set at all).
pub fn setup_from_env(env: &[(String, String)]) -> Result<Vec<String>, String> {
    let lookup = |key: &str| {
        env.iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let failpoints = lookup(FAILPOINTS_ENV);
    let planted = lookup(PLANTED_BUG_ENV);
    if !ENABLED {
        return match failpoints
            .map(|_| FAILPOINTS_ENV)
            .or(planted.map(|_| PLANTED_BUG_ENV))
        {
            Some(var) => Err(format!(
                "{var} is set but this keel was built without the `failpoints` feature (cargo build -p keel --features failpoints)"
            )),
            None => Ok(Vec::new()),
        };
    }
    let mut set = Vec::new();
    if let Some(value) = planted {
        let bug = PlantedBug::parse(value).ok_or_else(|| {
            let known: Vec<&str> = PlantedBug::ALL.iter().map(|b| b.name()).collect();
            format!(
                "{PLANTED_BUG_ENV}={value}: unknown planted bug (known: {})",
                known.join(", ")
            )
        })?;
        if PLANTED.set(bug).is_err() && PLANTED.get() != Some(&bug) {
            return Err(format!(
                "{PLANTED_BUG_ENV}={value}: another bug is already planted in this process"
            ));
        }
        set.push(format!("planted bug {}", bug.name()));
    }
    if let Some(value) = failpoints {
        for item in value.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, actions) = item
                .split_once('=')
                .ok_or_else(|| format!("{FAILPOINTS_ENV}: {item:?} is not name=actions"))?;
            configure(name.trim(), actions.trim())
                .map_err(|e| format!("{FAILPOINTS_ENV}: {name}: {e}"))?;
            set.push(format!("failpoint {name}={actions}"));
        }
    }
    #[cfg(feature = "failpoints")]
    install_abort_on_failpoint_panic();
    Ok(set)
}

/// Sets failpoint `name` to `actions` (the `fail` crate's syntax).
#[cfg(feature = "failpoints")]
fn configure(name: &str, actions: &str) -> Result<(), String> {
    if !NAMES.contains(&name) {
        return Err(format!("unknown failpoint (known: {})", NAMES.join(", ")));
    }
    if actions.contains("return") {
        return Err(
            "the return action is not supported: no failpoint has a value to return".to_owned(),
        );
    }
    fail::cfg(name, actions)
}

#[cfg(not(feature = "failpoints"))]
fn configure(_name: &str, _actions: &str) -> Result<(), String> {
    Err("this keel was built without the `failpoints` feature".to_owned())
}

/// A failpoint's `panic` must look like a crash: after the usual panic message, abort.
/// Other panics keep their normal behaviour.
#[cfg(feature = "failpoints")]
fn install_abort_on_failpoint_panic() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            previous(info);
            // The `fail` crate panics from its own source, with "failpoint <name> panic"
            // unless the action gave a message.
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            let in_fail = info.location().is_some_and(|l| {
                std::path::Path::new(l.file())
                    .components()
                    .any(|c| c.as_os_str().to_string_lossy().starts_with("fail-"))
            });
            if in_fail || (message.starts_with("failpoint ") && message.ends_with(" panic")) {
                eprintln!("keel: a failpoint panicked; aborting the process like a crash");
                std::process::abort();
            }
        }));
    });
}

/// Whether `bug` is planted in this process.
pub(crate) fn planted(bug: PlantedBug) -> bool {
    ENABLED && PLANTED.get() == Some(&bug)
}

/// [`PlantedBug::FollowerLocalReads`]: whether this member skips ReadIndex.
pub(crate) fn serves_reads_locally(shared: &Shared) -> bool {
    planted(PlantedBug::FollowerLocalReads) && shared.leader() != shared.member_id
}

/// [`PlantedBug::AckBeforeCommit`]: wakes the waiters of plain Puts among `entries` (just
/// appended to the local log, not yet saved) with a made-up success.
#[cfg(feature = "failpoints")]
pub(crate) fn ack_before_commit(
    entries: &[keel_raft::Entry],
    waiters: &mut HashMap<u64, oneshot::Sender<ApplyResult>>,
    shared: &Shared,
) {
    use keel_proto::keelpb::{self, internal_request::Request};
    use prost::Message as _;

    if !planted(PlantedBug::AckBeforeCommit) || waiters.is_empty() {
        return;
    }
    for e in entries {
        if e.kind != keel_raft::EntryKind::Normal || e.data.is_empty() {
            continue;
        }
        let Ok(req) = keelpb::InternalRequest::decode(e.data.as_slice()) else {
            continue;
        };
        let Some(Request::Put(put)) = &req.request else {
            continue;
        };
        if put.prev_kv {
            continue;
        }
        if let Some(waiter) = waiters.remove(&req.id) {
            let revision = shared
                .store
                .read()
                .expect("store lock poisoned")
                .current_revision();
            let _ = waiter.send(Ok(Applied::Put(keel_mvcc::PutResponse {
                revision,
                prev_kv: None,
            })));
        }
    }
}

#[cfg(not(feature = "failpoints"))]
pub(crate) fn ack_before_commit<W>(
    _entries: &[keel_raft::Entry],
    _waiters: &mut W,
    _shared: &Shared,
) {
}

/// The `/debug/failpoints` routes in `failpoints` builds; no route otherwise.
pub(crate) fn router() -> axum::Router {
    #[cfg(feature = "failpoints")]
    {
        use axum::routing::get;
        axum::Router::new()
            .route("/debug/failpoints", get(http::list))
            .route(
                "/debug/failpoints/{name}",
                get(http::get_one).put(http::set).delete(http::remove),
            )
    }
    #[cfg(not(feature = "failpoints"))]
    {
        axum::Router::new()
    }
}

#[cfg(feature = "failpoints")]
mod http {
    use axum::extract::Path;
    use axum::http::StatusCode;

    use super::{NAMES, configure};

    fn known(name: &str) -> Result<(), (StatusCode, String)> {
        if NAMES.contains(&name) {
            Ok(())
        } else {
            Err((
                StatusCode::NOT_FOUND,
                format!("unknown failpoint {name:?}\n"),
            ))
        }
    }

    /// `name=actions` lines, sorted, of the configured failpoints.
    pub(super) async fn list() -> String {
        let mut points = fail::list();
        points.sort();
        points
            .into_iter()
            .map(|(name, actions)| format!("{name}={actions}\n"))
            .collect()
    }

    pub(super) async fn get_one(Path(name): Path<String>) -> Result<String, (StatusCode, String)> {
        known(&name)?;
        fail::list()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, actions)| actions + "\n")
            .ok_or((
                StatusCode::NOT_FOUND,
                format!("failpoint {name} is not set\n"),
            ))
    }

    pub(super) async fn set(
        Path(name): Path<String>,
        body: String,
    ) -> Result<StatusCode, (StatusCode, String)> {
        known(&name)?;
        configure(&name, body.trim())
            .map(|()| StatusCode::NO_CONTENT)
            .map_err(|e| (StatusCode::BAD_REQUEST, format!("{e}\n")))
    }

    pub(super) async fn remove(
        Path(name): Path<String>,
    ) -> Result<StatusCode, (StatusCode, String)> {
        known(&name)?;
        fail::remove(&name);
        Ok(StatusCode::NO_CONTENT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planted_bug_names_round_trip() {
        for bug in PlantedBug::ALL {
            assert_eq!(PlantedBug::parse(bug.name()), Some(bug));
        }
        assert_eq!(PlantedBug::parse("nope"), None);
    }

    #[test]
    fn setup_refuses_bad_settings() {
        let env = |k: &str, v: &str| vec![(k.to_owned(), v.to_owned())];
        assert!(setup_from_env(&env(FAILPOINTS_ENV, "no_such_point=panic")).is_err());
        assert!(setup_from_env(&env(FAILPOINTS_ENV, "raft_before_save")).is_err());
        assert!(setup_from_env(&env(PLANTED_BUG_ENV, "nope")).is_err());
        assert_eq!(setup_from_env(&[]), Ok(Vec::new()));
        // Without the feature, even a valid setting is refused rather than ignored.
        assert_eq!(
            setup_from_env(&env(FAILPOINTS_ENV, "raft_before_save=off")).is_ok(),
            ENABLED
        );
    }
}
