//! The checks run on every history, as pure functions of the records.
//!
//! * **Linearizability** of the linearizable operations, with
//!   `keel_sim::linearizability` over [`KvModel`], partitioned by key.
//!   Prefix ranges become one read per key of the keyspace (absent keys read
//!   as nothing) and a compare-and-set transaction becomes a compare-and-set
//!   on its key plus, when it succeeded, a put of its second key. Checking
//!   these per-key projections is sound (see `model`).
//! * **No acknowledged write lost**: the run ends with a linearizable read of
//!   every key after the faults healed; those reads are part of the history,
//!   so a lost acknowledged write shows up as a non-linearizable key. Every
//!   key must have such a final read.
//! * **Serializable reads** return a state that existed: each value read was
//!   written by a write invoked before the read returned, and never by a
//!   write acknowledged at a revision above the read's header revision.
//!
//! * **Watch** guarantees (ordered, no duplicates, no gaps, atomic per
//!   revision, resumable, correct `prev_kv`, filters honoured): see
//!   `watch_check`.
//! * **Lease** guarantees (keys of a revoked or expired lease are gone, no
//!   early expiry): see `lease_check`.
//!
//! Histories without watch or lease traffic pass those checks trivially.

use std::collections::HashMap;

use keel_sim::linearizability::{self, CheckOptions, CheckResult, History, Operation};

use crate::history::{Outcome, Record, Request, Response};
use crate::model::{KvInput, KvModel, KvOutput};
use crate::{lease_check, watch_check};

/// Client id of the final reads after healing.
pub const FINAL_READER: u64 = u64::MAX;

/// What one check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The check holds.
    Pass,
    /// The check failed; the text says where.
    Fail(String),
    /// The checker gave up (step budget) without finding a violation.
    Inconclusive(String),
}

impl Verdict {
    /// Whether the check failed.
    pub fn failed(&self) -> bool {
        matches!(self, Verdict::Fail(_))
    }
}

/// The verdicts of every history check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryReport {
    /// Linearizability of the KV history, including the final reads.
    pub linearizability: Verdict,
    /// Every key read after healing.
    pub final_reads: Verdict,
    /// Serializable reads return states that existed.
    pub serializable: Verdict,
    /// Watch event revisions never decrease within a watcher.
    pub watch_ordered: Verdict,
    /// No watcher receives one change twice.
    pub watch_duplicates: Verdict,
    /// Watchers miss no change in their coverage and agree with the KV
    /// history and with prefix ranges.
    pub watch_gaps: Verdict,
    /// The events of one revision arrive in one response.
    pub watch_atomic: Verdict,
    /// Resumed watches continue exactly after the last revision seen.
    pub watch_resumable: Verdict,
    /// `prev_kv` is the key's previous modification.
    pub watch_prev_kv: Verdict,
    /// Filtered watchers receive no event of the filtered kind.
    pub watch_filters: Verdict,
    /// Keys of revoked or expired leases are gone; gone leases stay gone.
    pub lease_revoke: Verdict,
    /// No lease expires before its TTL after a successful renewal.
    pub lease_expiry: Verdict,
}

impl HistoryReport {
    /// Every check with its name.
    pub fn verdicts(&self) -> [(&'static str, &Verdict); 12] {
        [
            ("linearizability", &self.linearizability),
            ("final-reads", &self.final_reads),
            ("serializable-reads", &self.serializable),
            ("watch-ordered", &self.watch_ordered),
            ("watch-duplicates", &self.watch_duplicates),
            ("watch-gaps", &self.watch_gaps),
            ("watch-atomic", &self.watch_atomic),
            ("watch-resumable", &self.watch_resumable),
            ("watch-prev-kv", &self.watch_prev_kv),
            ("watch-filters", &self.watch_filters),
            ("lease-revoke", &self.lease_revoke),
            ("lease-expiry", &self.lease_expiry),
        ]
    }

    /// Whether any check failed.
    pub fn failed(&self) -> bool {
        self.verdicts().iter().any(|(_, v)| v.failed())
    }
}

/// Runs every history check on `records` over the keys `keys`.
pub fn check_history(records: &[Record], keys: &[String]) -> HistoryReport {
    HistoryReport {
        linearizability: linearizable(records, keys),
        final_reads: final_reads(records, keys),
        serializable: serializable_reads(records, keys),
        watch_ordered: watch_check::ordered(records),
        watch_duplicates: watch_check::duplicates(records),
        watch_gaps: watch_check::gaps(records),
        watch_atomic: watch_check::atomic(records),
        watch_resumable: watch_check::resumable(records),
        watch_prev_kv: watch_check::prev_kv(records),
        watch_filters: watch_check::filters(records),
        lease_revoke: lease_check::revoke(records),
        lease_expiry: lease_check::expiry(records),
    }
}

/// Converts the linearizable part of `records` to a checker history.
pub fn to_history(records: &[Record], keys: &[String]) -> History<KvInput, KvOutput> {
    let mut history = History::new();
    for r in records {
        let returned = match &r.outcome {
            Outcome::Ok {
                returned_ns,
                response,
                ..
            } => Some((*returned_ns, response)),
            Outcome::Unknown { .. } => None,
        };
        let mut add = |input: KvInput, output: Option<KvOutput>| {
            let outcome = match (returned, output) {
                (Some((at, _)), Some(output)) => linearizability::Outcome::Returned { at, output },
                _ => linearizability::Outcome::Unknown,
            };
            history.push(Operation {
                client: r.client,
                input,
                invoked_at: r.invoked_ns,
                outcome,
            });
        };
        let response = returned.map(|(_, response)| response);
        match &r.request {
            Request::Get {
                key,
                serializable: false,
            } => {
                if let Some(Response::Value(v)) = response {
                    add(KvInput::Read(key.clone()), Some(KvOutput::Read(v.clone())));
                }
            }
            Request::Range {
                prefix,
                serializable: false,
            } => {
                if let Some(Response::Kvs(kvs)) = response {
                    for key in keys.iter().filter(|k| k.starts_with(prefix.as_str())) {
                        let value = kvs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
                        add(KvInput::Read(key.clone()), Some(KvOutput::Read(value)));
                    }
                }
            }
            Request::Put { key, value } => {
                let output = response.map(|_| KvOutput::Put);
                add(KvInput::Put(key.clone(), value.clone()), output);
            }
            Request::Delete { key } => {
                let output = match response {
                    Some(Response::Deleted(n)) => Some(KvOutput::Deleted(*n > 0)),
                    _ => None,
                };
                add(KvInput::Delete(key.clone()), output);
            }
            Request::CompareAndSet {
                key,
                expected,
                new,
                also_key,
                also_value,
            } => {
                let succeeded = match response {
                    Some(Response::Txn(ok)) => Some(*ok),
                    _ => None,
                };
                add(
                    KvInput::CompareAndSet {
                        key: key.clone(),
                        expected: expected.clone(),
                        new: new.clone(),
                    },
                    succeeded.map(KvOutput::CompareAndSet),
                );
                match succeeded {
                    Some(true) => add(
                        KvInput::Put(also_key.clone(), also_value.clone()),
                        Some(KvOutput::Put),
                    ),
                    Some(false) => {}
                    None => add(KvInput::Put(also_key.clone(), also_value.clone()), None),
                }
            }
            Request::Get {
                serializable: true, ..
            }
            | Request::Range {
                serializable: true, ..
            }
            | Request::Compact { .. }
            | Request::LeaseGrant { .. }
            | Request::LeaseRevoke { .. }
            | Request::LeaseKeepAlive { .. }
            | Request::PutWithLease { .. }
            | Request::Watch { .. } => {}
        }
    }
    history
}

fn linearizable(records: &[Record], keys: &[String]) -> Verdict {
    let history = to_history(records, keys);
    match linearizability::check(&KvModel, &history, CheckOptions::default()) {
        CheckResult::Linearizable => Verdict::Pass,
        CheckResult::NotLinearizable(v) => {
            let placed: Vec<&str> = v
                .longest_prefix
                .iter()
                .filter_map(|&i| v.operations.get(i).map(String::as_str))
                .collect();
            let tail: Vec<&str> = placed.iter().rev().take(3).rev().copied().collect();
            let unplaced: Vec<&str> = v
                .operations
                .iter()
                .enumerate()
                .filter(|(i, _)| !v.longest_prefix.contains(i))
                .map(|(_, s)| s.as_str())
                .take(3)
                .collect();
            Verdict::Fail(format!(
                "key {} is not linearizable ({} operations); the longest linearizable order ends with {:?}; it cannot go on with any of {:?}",
                v.partition,
                v.operations.len(),
                tail,
                unplaced
            ))
        }
        CheckResult::Inconclusive { partition } => {
            Verdict::Inconclusive(format!("search budget exhausted on key {partition}"))
        }
    }
}

fn final_reads(records: &[Record], keys: &[String]) -> Verdict {
    let read: Vec<&String> = records
        .iter()
        .filter(|r| r.client == FINAL_READER && matches!(r.outcome, Outcome::Ok { .. }))
        .filter_map(|r| match &r.request {
            Request::Get { key, .. } => Some(key),
            _ => None,
        })
        .collect();
    let missing: Vec<&String> = keys.iter().filter(|k| !read.contains(k)).collect();
    if missing.is_empty() {
        Verdict::Pass
    } else {
        Verdict::Fail(format!(
            "no linearizable read succeeded after healing for {missing:?}"
        ))
    }
}

/// A write of `value` to a key: when it was invoked, and the revision it was
/// acknowledged at (if it was).
struct Write {
    invoked_ns: u64,
    acked_revision: Option<i64>,
}

fn serializable_reads(records: &[Record], keys: &[String]) -> Verdict {
    let mut writes: HashMap<(&str, &str), Write> = HashMap::new();
    for r in records {
        let acked_revision = match &r.outcome {
            Outcome::Ok { revision, .. } => Some(*revision),
            Outcome::Unknown { .. } => None,
        };
        let pairs: Vec<(&str, &str)> = match &r.request {
            Request::Put { key, value } => vec![(key, value)],
            Request::CompareAndSet {
                key,
                new,
                also_key,
                also_value,
                ..
            } => vec![(key, new), (also_key, also_value)],
            _ => Vec::new(),
        };
        let acked_revision = match (&r.request, &r.outcome) {
            // A failed compare wrote nothing: its revision says nothing.
            (
                Request::CompareAndSet { .. },
                Outcome::Ok {
                    response: Response::Txn(false),
                    ..
                },
            ) => None,
            _ => acked_revision,
        };
        for (key, value) in pairs {
            let previous = writes.insert(
                (key, value),
                Write {
                    invoked_ns: r.invoked_ns,
                    acked_revision,
                },
            );
            if previous.is_some() {
                return Verdict::Fail(format!(
                    "the history writes {key}={value} twice: reads cannot name their write"
                ));
            }
        }
    }
    for r in records {
        let Outcome::Ok {
            returned_ns,
            revision,
            response,
        } = &r.outcome
        else {
            continue;
        };
        let observed: Vec<(&str, &str)> = match (&r.request, response) {
            (
                Request::Get {
                    key,
                    serializable: true,
                },
                Response::Value(Some(v)),
            ) => vec![(key.as_str(), v.as_str())],
            (
                Request::Range {
                    serializable: true, ..
                },
                Response::Kvs(kvs),
            ) => kvs
                .iter()
                .filter(|(k, _)| keys.contains(k))
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
            _ => continue,
        };
        for (key, value) in observed {
            match writes.get(&(key, value)) {
                None => {
                    return Verdict::Fail(format!(
                        "serializable read by client {} from member {} returned {key}={value}, which no write wrote",
                        r.client, r.member
                    ));
                }
                Some(w) if w.invoked_ns > *returned_ns => {
                    return Verdict::Fail(format!(
                        "serializable read by client {} from member {} returned {key}={value} before its write was invoked",
                        r.client, r.member
                    ));
                }
                Some(Write {
                    acked_revision: Some(written),
                    ..
                }) if *written > *revision => {
                    return Verdict::Fail(format!(
                        "serializable read by client {} from member {} at revision {revision} returned {key}={value}, written at revision {written}",
                        r.client, r.member
                    ));
                }
                Some(_) => {}
            }
        }
    }
    Verdict::Pass
}
