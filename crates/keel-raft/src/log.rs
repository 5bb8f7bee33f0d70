//! The Raft log: the application's durable [`Storage`] followed by entries (and possibly a
//! snapshot) not yet persisted.
//!
//! Layout: `storage [first_index ..= storage.last_index]`, then `unstable.entries` starting
//! at `unstable.offset`. A pending unstable snapshot replaces everything before
//! `unstable.offset`. `committed` and `applied` never decrease; `applied <= committed <=
//! last_index()`.

use crate::Error;
use crate::storage::{Storage, StorageError, limit_size};
use crate::types::{Entry, Snapshot};

/// Entries and snapshot received but not yet handed to, and acknowledged by, the application.
#[derive(Debug, Default)]
pub struct Unstable {
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
    /// Index of `entries[0]`.
    pub offset: u64,
}

impl Unstable {
    fn maybe_first_index(&self) -> Option<u64> {
        self.snapshot.as_ref().map(|s| s.metadata.index + 1)
    }

    fn maybe_last_index(&self) -> Option<u64> {
        if !self.entries.is_empty() {
            return Some(self.offset + self.entries.len() as u64 - 1);
        }
        self.snapshot.as_ref().map(|s| s.metadata.index)
    }

    fn maybe_term(&self, index: u64) -> Option<u64> {
        if index < self.offset {
            let s = self.snapshot.as_ref()?;
            return (s.metadata.index == index).then_some(s.metadata.term);
        }
        let last = self.maybe_last_index()?;
        if index > last {
            return None;
        }
        Some(self.entries[(index - self.offset) as usize].term)
    }

    fn stable_to(&mut self, index: u64, term: u64) {
        if index < self.offset || self.maybe_term(index) != Some(term) {
            // Stale: the entries were replaced after the Ready was taken.
            return;
        }
        self.entries.drain(..=(index - self.offset) as usize);
        self.offset = index + 1;
    }

    fn stable_snap_to(&mut self, index: u64) {
        if self
            .snapshot
            .as_ref()
            .is_some_and(|s| s.metadata.index == index)
        {
            self.snapshot = None;
        }
    }

    fn restore(&mut self, snapshot: Snapshot) {
        self.offset = snapshot.metadata.index + 1;
        self.entries.clear();
        self.snapshot = Some(snapshot);
    }

    fn truncate_and_append(&mut self, ents: &[Entry]) {
        let after = ents[0].index;
        if after == self.offset + self.entries.len() as u64 {
            self.entries.extend_from_slice(ents);
        } else if after <= self.offset {
            self.offset = after;
            self.entries = ents.to_vec();
        } else {
            self.entries.truncate((after - self.offset) as usize);
            self.entries.extend_from_slice(ents);
        }
    }
}

fn storage_failed(what: &str, e: StorageError) -> ! {
    panic!("raft storage failed on {what}: {e}; the log can no longer be trusted")
}

/// The log as Raft sees it.
pub struct RaftLog<S: Storage> {
    pub store: S,
    pub unstable: Unstable,
    pub committed: u64,
    pub applied: u64,
    /// Entries up to here are durable and match the current log.
    pub persisted: u64,
    max_next_ents_size: u64,
}

impl<S: Storage> RaftLog<S> {
    /// Opens the log over what `store` holds; a store that cannot say where its log starts
    /// and ends, or whose bounds are impossible, is refused with an error.
    pub fn new(store: S, max_next_ents_size: u64) -> Result<RaftLog<S>, Error> {
        let first = store.first_index()?;
        let last = store.last_index()?;
        if first == 0 || last < first - 1 {
            return Err(Error::ConfigInvalid(format!(
                "storage log bounds are impossible: first index {first}, last index {last}"
            )));
        }
        Ok(RaftLog {
            store,
            unstable: Unstable {
                snapshot: None,
                entries: Vec::new(),
                offset: last + 1,
            },
            committed: first - 1,
            applied: first - 1,
            persisted: last,
            max_next_ents_size,
        })
    }

    pub fn first_index(&self) -> u64 {
        self.unstable.maybe_first_index().unwrap_or_else(|| {
            self.store
                .first_index()
                .unwrap_or_else(|e| storage_failed("first_index", e))
        })
    }

    pub fn last_index(&self) -> u64 {
        self.unstable.maybe_last_index().unwrap_or_else(|| {
            self.store
                .last_index()
                .unwrap_or_else(|e| storage_failed("last_index", e))
        })
    }

    /// Term at `index`: `Ok(0)` past the end, `Err(Compacted)` before the snapshot.
    pub fn term(&self, index: u64) -> Result<u64, StorageError> {
        let dummy = self.first_index() - 1;
        if index < dummy {
            return Err(StorageError::Compacted);
        }
        if index > self.last_index() {
            return Ok(0);
        }
        if let Some(t) = self.unstable.maybe_term(index) {
            return Ok(t);
        }
        match self.store.term(index) {
            Ok(t) => Ok(t),
            Err(StorageError::Compacted) => Err(StorageError::Compacted),
            Err(e) => storage_failed("term", e),
        }
    }

    pub fn last_term(&self) -> u64 {
        self.term(self.last_index())
            .unwrap_or_else(|e| storage_failed("last_term", e))
    }

    pub fn match_term(&self, index: u64, term: u64) -> bool {
        self.term(index).is_ok_and(|t| t == term)
    }

    /// Whether a log ending at (`last_index`, `term`) is at least as up to date as ours.
    pub fn is_up_to_date(&self, last_index: u64, term: u64) -> bool {
        let our_term = self.last_term();
        term > our_term || (term == our_term && last_index >= self.last_index())
    }

    /// Appends the leader's `ents` after (`index`, `log_term`) if that entry matches, and
    /// raises the commit index; returns the index of the last new entry.
    pub fn maybe_append(
        &mut self,
        index: u64,
        log_term: u64,
        committed: u64,
        ents: &[Entry],
    ) -> Option<u64> {
        if !self.match_term(index, log_term) {
            return None;
        }
        let last_new = index + ents.len() as u64;
        let conflict = self.find_conflict(ents);
        if conflict != 0 {
            assert!(
                conflict > self.committed,
                "entry {conflict} conflicts with committed entry (committed {})",
                self.committed
            );
            let start = (conflict - (index + 1)) as usize;
            self.append(&ents[start..]);
        }
        self.commit_to(committed.min(last_new));
        Some(last_new)
    }

    /// First index in `ents` whose term differs from ours (or that we lack); 0 if none.
    fn find_conflict(&self, ents: &[Entry]) -> u64 {
        ents.iter()
            .find(|e| !self.match_term(e.index, e.term))
            .map_or(0, |e| e.index)
    }

    /// The largest index ≤ `index` whose term is ≤ `term`, with that term: where a log whose
    /// entry at `index` has term `term` may match ours (fast backtracking).
    pub fn find_conflict_by_term(&self, mut index: u64, term: u64) -> (u64, u64) {
        loop {
            match self.term(index) {
                Ok(t) if t <= term => return (index, t),
                Ok(_) if index > 0 => index -= 1,
                Ok(_) | Err(_) => return (index, 0),
            }
        }
    }

    /// Appends entries, replacing any conflicting suffix; returns the new last index.
    pub fn append(&mut self, ents: &[Entry]) -> u64 {
        let Some(first) = ents.first() else {
            return self.last_index();
        };
        let after = first.index - 1;
        assert!(
            after >= self.committed,
            "append after {after} would overwrite committed {}",
            self.committed
        );
        self.unstable.truncate_and_append(ents);
        self.persisted = self.persisted.min(after);
        self.last_index()
    }

    pub fn commit_to(&mut self, to: u64) {
        if self.committed < to {
            assert!(
                to <= self.last_index(),
                "commit {to} is out of range [last index {}]",
                self.last_index()
            );
            self.committed = to;
        }
    }

    /// Commits `max_index` if its entry is from `term` (Raft's commit rule).
    pub fn maybe_commit(&mut self, max_index: u64, term: u64) -> bool {
        if max_index > self.committed && self.term(max_index).is_ok_and(|t| t == term) {
            self.commit_to(max_index);
            return true;
        }
        false
    }

    pub fn applied_to(&mut self, index: u64) {
        if index == 0 {
            return;
        }
        assert!(
            index <= self.committed && index >= self.applied,
            "applied {index} is out of range [prev applied {}, committed {}]",
            self.applied,
            self.committed
        );
        self.applied = index;
    }

    pub fn stable_to(&mut self, index: u64, term: u64) {
        if self.match_term(index, term) {
            self.persisted = self.persisted.max(index);
        }
        self.unstable.stable_to(index, term);
    }

    pub fn stable_snap_to(&mut self, index: u64) {
        self.unstable.stable_snap_to(index);
        self.persisted = self.persisted.max(index);
    }

    /// Replaces the log with a snapshot.
    pub fn restore(&mut self, snapshot: Snapshot) {
        self.committed = snapshot.metadata.index;
        // What was durable beyond the old commit point may conflict with the snapshot.
        self.persisted = self.persisted.min(self.applied);
        self.unstable.restore(snapshot);
    }

    /// The snapshot to send a follower that needs entries before `first_index()`.
    pub fn snapshot(&self, request_index: u64) -> Result<Snapshot, StorageError> {
        if let Some(s) = &self.unstable.snapshot {
            return Ok(s.clone());
        }
        self.store.snapshot(request_index)
    }

    pub fn has_pending_snapshot(&self) -> bool {
        self.unstable.snapshot.is_some()
    }

    /// Entries from `lo` up to the end, within `max_bytes`.
    pub fn entries(&self, lo: u64, max_bytes: u64) -> Result<Vec<Entry>, StorageError> {
        if lo > self.last_index() {
            return Ok(Vec::new());
        }
        self.slice(lo, self.last_index() + 1, max_bytes)
    }

    /// Entries in `[lo, hi)` within `max_bytes` (at least one).
    pub fn slice(&self, lo: u64, hi: u64, max_bytes: u64) -> Result<Vec<Entry>, StorageError> {
        assert!(lo <= hi, "invalid slice {lo} > {hi}");
        if lo < self.first_index() {
            return Err(StorageError::Compacted);
        }
        assert!(
            hi <= self.last_index() + 1,
            "slice [{lo}, {hi}) out of bound [{}, {}]",
            self.first_index(),
            self.last_index()
        );
        if lo == hi {
            return Ok(Vec::new());
        }
        let off = self.unstable.offset;
        let mut out = Vec::new();
        if lo < off {
            let stored = match self.store.entries(lo, hi.min(off), max_bytes) {
                Ok(v) => v,
                Err(StorageError::Compacted) => return Err(StorageError::Compacted),
                Err(e) => storage_failed("entries", e),
            };
            let short = (stored.len() as u64) < hi.min(off) - lo;
            out = stored;
            if short {
                return Ok(out);
            }
        }
        if hi > off {
            let from = lo.max(off);
            out.extend_from_slice(
                &self.unstable.entries[(from - off) as usize..(hi - off) as usize],
            );
        }
        limit_size(&mut out, max_bytes);
        Ok(out)
    }

    /// Committed entries not yet handed out for applying, within the per-Ready byte limit.
    pub fn next_entries(&self) -> Vec<Entry> {
        let off = (self.applied + 1).max(self.first_index());
        if self.committed < off {
            return Vec::new();
        }
        self.slice(off, self.committed + 1, self.max_next_ents_size)
            .unwrap_or_else(|e| storage_failed("committed entries", e))
    }

    pub fn has_next_entries(&self) -> bool {
        self.committed + 1 > (self.applied + 1).max(self.first_index())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemStorage;

    fn ent(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            ..Entry::default()
        }
    }

    fn log_with(ents: &[Entry]) -> RaftLog<MemStorage> {
        let mut s = MemStorage::new();
        s.append(ents).expect("append");
        RaftLog::new(s, u64::MAX).expect("valid storage")
    }

    #[test]
    fn append_over_unstable_and_stable() {
        let mut l = log_with(&[ent(1, 1), ent(2, 2)]);
        assert_eq!(l.append(&[ent(3, 2)]), 3);
        assert_eq!(l.append(&[ent(2, 3)]), 2);
        assert_eq!(l.term(2), Ok(3));
        assert_eq!(
            l.persisted, 1,
            "overwritten durable entry is no longer persisted"
        );
        assert_eq!(l.unstable.offset, 2);
    }

    #[test]
    fn maybe_append_matches_and_commits() {
        let mut l = log_with(&[ent(1, 1), ent(2, 2), ent(3, 3)]);
        assert_eq!(l.maybe_append(3, 2, 3, &[ent(4, 4)]), None);
        assert_eq!(l.maybe_append(3, 3, 2, &[ent(4, 4)]), Some(4));
        assert_eq!(l.committed, 2);
        assert_eq!(l.maybe_append(2, 2, 4, &[ent(3, 4)]), Some(3));
        assert_eq!(l.last_index(), 3, "conflicting suffix truncated");
        assert_eq!(l.committed, 3);
    }

    #[test]
    #[should_panic(expected = "conflicts with committed")]
    fn truncating_committed_entry_panics() {
        let mut l = log_with(&[ent(1, 1), ent(2, 2)]);
        l.commit_to(2);
        l.maybe_append(1, 1, 2, &[ent(2, 3)]);
    }

    #[test]
    fn commit_rule_requires_current_term() {
        let mut l = log_with(&[ent(1, 1), ent(2, 2)]);
        assert!(!l.maybe_commit(2, 3));
        assert!(l.maybe_commit(2, 2));
        assert_eq!(l.committed, 2);
    }

    #[test]
    fn find_conflict_by_term_skips_higher_terms() {
        let l = log_with(&[ent(1, 1), ent(2, 2), ent(3, 4), ent(4, 4), ent(5, 5)]);
        assert_eq!(l.find_conflict_by_term(5, 3), (2, 2));
        assert_eq!(l.find_conflict_by_term(5, 5), (5, 5));
        assert_eq!(l.find_conflict_by_term(4, 0), (0, 0));
    }

    #[test]
    fn next_entries_and_stable() {
        let mut l = log_with(&[ent(1, 1)]);
        l.append(&[ent(2, 1), ent(3, 1)]);
        l.commit_to(2);
        assert_eq!(l.next_entries(), vec![ent(1, 1), ent(2, 1)]);
        l.applied_to(2);
        assert!(!l.has_next_entries());
        let unstable = l.unstable.entries.clone();
        l.store.append(&unstable).expect("persist");
        l.stable_to(3, 1);
        assert!(l.unstable.entries.is_empty());
        assert_eq!(l.persisted, 3);
        l.stable_to(3, 9);
        assert_eq!(l.persisted, 3);
    }

    #[test]
    fn restore_snapshot() {
        let mut l = log_with(&[ent(1, 1), ent(2, 1)]);
        let mut snap = Snapshot::default();
        snap.metadata.index = 10;
        snap.metadata.term = 3;
        l.restore(snap);
        assert_eq!(l.first_index(), 11);
        assert_eq!(l.last_index(), 10);
        assert_eq!(l.term(10), Ok(3));
        assert_eq!(l.committed, 10);
        assert_eq!(l.term(5), Err(StorageError::Compacted));
    }
}
