//! Safety properties checked during and after every simulated run, and the
//! [`Failure`]s that report their violation.

use std::collections::BTreeMap;

use keel_raft::{Entry, EntryKind, MemStorage, NodeId, Storage};

use crate::linearizability::Violation;

/// A violated property. The first one ends the run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// Election safety: two nodes led the same term.
    #[error("two leaders in term {term}: nodes {first} and {second}")]
    TwoLeaders {
        /// The term.
        term: u64,
        /// The leader seen first.
        first: NodeId,
        /// The other one.
        second: NodeId,
    },
    /// Log matching: two logs agree on the term at `index` but differ at or
    /// before it.
    #[error(
        "log matching: nodes {a} and {b} hold term {term} at index {index} but differ at index {differ_at}"
    )]
    LogMatching {
        /// One node.
        a: NodeId,
        /// The other.
        b: NodeId,
        /// Highest index where their terms agree.
        index: u64,
        /// That term.
        term: u64,
        /// Where the entries differ.
        differ_at: u64,
    },
    /// Leader completeness: a new leader lacks an entry committed in an
    /// earlier term.
    #[error("leader completeness: leader {leader} of term {term} lacks committed entry {index}")]
    LeaderCompleteness {
        /// The leader.
        leader: NodeId,
        /// Its term.
        term: u64,
        /// The committed index it does not hold (or holds differently).
        index: u64,
    },
    /// State machine safety: two nodes applied different entries at one index.
    #[error(
        "state machine safety: node {node} applied entry (term {term}) at index {index}, others applied term {expected_term}"
    )]
    StateMachineSafety {
        /// The node that disagreed with the first applier.
        node: NodeId,
        /// The index.
        index: u64,
        /// Term of the entry it applied.
        term: u64,
        /// Term of the entry applied first at that index.
        expected_term: u64,
    },
    /// The client history has no linearization.
    #[error("not linearizable on key {}: {} operations, longest linearizable prefix {}", .0.partition, .0.operations.len(), .0.longest_prefix.len())]
    NotLinearizable(Box<Violation>),
    /// The linearizability search ran out of budget.
    #[error("linearizability check inconclusive on key {partition} (step budget exhausted)")]
    CheckInconclusive {
        /// The key.
        partition: String,
    },
    /// An acknowledged write is missing from a converged node's state.
    #[error("acknowledged write {request} is not in the final state of node {node}")]
    LostWrite {
        /// The write's request id.
        request: u64,
        /// The node lacking it.
        node: NodeId,
    },
    /// Converged nodes hold different register maps.
    #[error("nodes {a} and {b} converged to different states at index {index}")]
    Diverged {
        /// One node.
        a: NodeId,
        /// The other.
        b: NodeId,
        /// Their common applied index.
        index: u64,
    },
    /// After faults stopped, the cluster did not catch up in time.
    #[error("cluster did not converge within {ms} ms of healing")]
    NoConvergence {
        /// The limit.
        ms: u64,
    },
    /// Raft broke the contract of its `Ready` or storage.
    #[error("raft contract broken on node {node}: {what}")]
    Contract {
        /// The node.
        node: NodeId,
        /// What happened.
        what: String,
    },
    /// Something panicked (a Raft invariant assertion, typically).
    #[error("panic: {0}")]
    Panic(String),
}

/// What the cluster as a whole has done: every entry applied by any node,
/// and the leader of every term. Grows with the run, which is bounded by
/// the simulation's step count.
#[derive(Debug, Default)]
pub struct Ledger {
    applied: BTreeMap<u64, Entry>,
    leaders: BTreeMap<u64, NodeId>,
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `node` applied `entry`; fails if another node applied a
    /// different entry at that index.
    pub fn record_apply(&mut self, node: NodeId, entry: &Entry) -> Result<(), Failure> {
        match self.applied.get(&entry.index) {
            None => {
                self.applied.insert(entry.index, entry.clone());
                Ok(())
            }
            Some(first) if first == entry => Ok(()),
            Some(first) => Err(Failure::StateMachineSafety {
                node,
                index: entry.index,
                term: entry.term,
                expected_term: first.term,
            }),
        }
    }

    /// Highest index any node applied.
    pub fn max_applied(&self) -> u64 {
        self.applied.last_key_value().map_or(0, |(&i, _)| i)
    }

    /// Records that `node` acts as leader of `term`. The first time a term's
    /// leader is seen, checks that its log holds every entry applied so far
    /// from earlier terms.
    pub fn observe_leader(
        &mut self,
        term: u64,
        node: NodeId,
        log: &MemStorage,
    ) -> Result<(), Failure> {
        if let Some(&first) = self.leaders.get(&term) {
            if first != node {
                return Err(Failure::TwoLeaders {
                    term,
                    first,
                    second: node,
                });
            }
            return Ok(());
        }
        self.leaders.insert(term, node);
        let (first_index, last_index) = bounds(log);
        for (&index, entry) in self.applied.range(first_index..) {
            if entry.term >= term {
                continue;
            }
            let held = (index <= last_index)
                .then(|| log.entries(index, index + 1, u64::MAX).ok())
                .flatten()
                .and_then(|mut v| v.pop());
            if held.as_ref() != Some(entry) {
                return Err(Failure::LeaderCompleteness {
                    leader: node,
                    term,
                    index,
                });
            }
        }
        Ok(())
    }

    /// Number of terms that had a leader.
    pub fn terms_with_leader(&self) -> usize {
        self.leaders.len()
    }
}

/// First and last index of the entries a storage holds.
fn bounds(log: &MemStorage) -> (u64, u64) {
    let first = log
        .first_index()
        .expect("MemStorage::first_index never fails");
    let last = log
        .last_index()
        .expect("MemStorage::last_index never fails");
    (first, last)
}

/// The entries of `log` as (index -> entry); the snapshot boundary is
/// represented by its term alone.
fn entries_of(log: &MemStorage) -> Vec<Entry> {
    let (first, last) = bounds(log);
    if first > last {
        return Vec::new();
    }
    log.entries(first, last + 1, u64::MAX)
        .expect("MemStorage holds every index between first and last")
}

/// Checks log matching between every pair of logs: if two logs hold an
/// entry with the same index and term, they hold identical entries at every
/// index up to it (within what both still hold).
pub fn check_log_matching(logs: &[(NodeId, &MemStorage)]) -> Result<(), Failure> {
    let all: Vec<(NodeId, Vec<Entry>)> = logs.iter().map(|&(id, l)| (id, entries_of(l))).collect();
    for (i, (a, log_a)) in all.iter().enumerate() {
        for (b, log_b) in &all[i + 1..] {
            check_pair(*a, log_a, *b, log_b)?;
        }
    }
    Ok(())
}

fn check_pair(a: NodeId, log_a: &[Entry], b: NodeId, log_b: &[Entry]) -> Result<(), Failure> {
    let (Some(fa), Some(fb)) = (log_a.first(), log_b.first()) else {
        return Ok(());
    };
    let lo = fa.index.max(fb.index);
    let hi = log_a
        .last()
        .map_or(0, |e| e.index)
        .min(log_b.last().map_or(0, |e| e.index));
    if lo > hi {
        return Ok(());
    }
    let at = |log: &[Entry], first: u64, index: u64| -> Entry {
        let entry = log[(index - first) as usize].clone();
        assert_eq!(entry.index, index, "log entries are contiguous");
        entry
    };
    // The highest index where the terms agree: everything at or below it
    // must be identical.
    let Some(top) = (lo..=hi)
        .rev()
        .find(|&i| at(log_a, fa.index, i).term == at(log_b, fb.index, i).term)
    else {
        return Ok(());
    };
    let term = at(log_a, fa.index, top).term;
    for i in lo..=top {
        let (ea, eb) = (at(log_a, fa.index, i), at(log_b, fb.index, i));
        if ea != eb {
            return Err(Failure::LogMatching {
                a,
                b,
                index: top,
                term,
                differ_at: i,
            });
        }
    }
    Ok(())
}

/// Whether an entry carries a client command (not a no-op, not a
/// membership change).
pub fn is_command(entry: &Entry) -> bool {
    entry.kind == EntryKind::Normal && !entry.data.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
        Entry {
            index,
            term,
            kind: EntryKind::Normal,
            data: data.to_vec(),
        }
    }

    fn log(entries: &[Entry]) -> MemStorage {
        let mut s = MemStorage::new();
        s.append(entries).expect("contiguous test log");
        s
    }

    #[test]
    fn ledger_catches_different_entries_at_one_index() {
        let mut l = Ledger::new();
        assert_eq!(l.record_apply(1, &entry(1, 1, b"a")), Ok(()));
        assert_eq!(l.record_apply(2, &entry(1, 1, b"a")), Ok(()));
        assert!(matches!(
            l.record_apply(3, &entry(1, 2, b"b")),
            Err(Failure::StateMachineSafety {
                node: 3,
                index: 1,
                ..
            })
        ));
        assert_eq!(l.max_applied(), 1);
    }

    #[test]
    fn ledger_catches_two_leaders_and_incomplete_leaders() {
        let mut l = Ledger::new();
        l.record_apply(1, &entry(1, 1, b"a")).expect("first apply");
        l.record_apply(1, &entry(2, 1, b"b")).expect("first apply");
        let full = log(&[entry(1, 1, b"a"), entry(2, 1, b"b")]);
        let short = log(&[entry(1, 1, b"a")]);
        assert_eq!(l.observe_leader(2, 1, &full), Ok(()));
        assert_eq!(l.observe_leader(2, 1, &full), Ok(()));
        assert!(matches!(
            l.observe_leader(2, 2, &full),
            Err(Failure::TwoLeaders {
                term: 2,
                first: 1,
                second: 2
            })
        ));
        assert!(matches!(
            l.observe_leader(3, 2, &short),
            Err(Failure::LeaderCompleteness {
                leader: 2,
                term: 3,
                index: 2
            })
        ));
    }

    #[test]
    fn log_matching_accepts_diverging_tails_and_rejects_bad_prefixes() {
        let a = log(&[entry(1, 1, b"a"), entry(2, 1, b"b"), entry(3, 2, b"c")]);
        let b = log(&[entry(1, 1, b"a"), entry(2, 1, b"b"), entry(3, 3, b"x")]);
        assert_eq!(check_log_matching(&[(1, &a), (2, &b)]), Ok(()));
        let c = log(&[entry(1, 1, b"z"), entry(2, 1, b"b")]);
        assert!(matches!(
            check_log_matching(&[(1, &a), (3, &c)]),
            Err(Failure::LogMatching {
                index: 2,
                differ_at: 1,
                ..
            })
        ));
    }
}
