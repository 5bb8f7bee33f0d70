//! The application's log as Raft sees it, and an in-memory implementation.

use crate::types::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};

/// Errors a [`Storage`] may return.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// The requested index is below the first available index: it was compacted into the
    /// snapshot.
    #[error("requested index is unavailable due to compaction")]
    Compacted,
    /// The requested index is above the last index.
    #[error("requested entry at index is unavailable")]
    Unavailable,
    /// A snapshot covering the requested index is not ready yet; Raft retries later.
    #[error("snapshot is temporarily unavailable")]
    SnapshotTemporarilyUnavailable,
    /// The snapshot being applied is older than the one already held.
    #[error("requested index is older than the existing snapshot")]
    SnapshotOutOfDate,
}

/// Read-only view of the durable log the application keeps.
///
/// Contract (as etcd's `raft.Storage`): everything returned here has been persisted; the
/// entries run contiguously from `first_index()` to `last_index()`, and `term(first_index() -
/// 1)` is the term of the snapshot that precedes them. Raft treats an error other than
/// [`StorageError::Compacted`] (below `first_index`) or
/// [`StorageError::SnapshotTemporarilyUnavailable`] as a lost durability guarantee and
/// panics, because it cannot make safe progress without its log.
pub trait Storage {
    /// Persisted hard state and membership at start-up.
    fn initial_state(&self) -> Result<(HardState, ConfState), StorageError>;

    /// Entries in `[lo, hi)`, stopping once their [`Entry::size_bytes`] total would exceed
    /// `max_bytes` (but always at least one entry when `lo < hi`).
    fn entries(&self, lo: u64, hi: u64, max_bytes: u64) -> Result<Vec<Entry>, StorageError>;

    /// Term of the entry at `index`, valid for `first_index() - 1 ..= last_index()`.
    fn term(&self, index: u64) -> Result<u64, StorageError>;

    /// Index of the first entry still held (the snapshot's index + 1).
    fn first_index(&self) -> Result<u64, StorageError>;

    /// Index of the last entry held (the snapshot's index if there is none).
    fn last_index(&self) -> Result<u64, StorageError>;

    /// The most recent snapshot; it must cover at least `request_index`, or return
    /// [`StorageError::SnapshotTemporarilyUnavailable`].
    fn snapshot(&self, request_index: u64) -> Result<Snapshot, StorageError>;
}

/// Truncates `entries` so their total size stays within `max_bytes`, keeping at least one.
pub(crate) fn limit_size(entries: &mut Vec<Entry>, max_bytes: u64) {
    let mut total = 0u64;
    let keep = entries
        .iter()
        .take_while(|e| {
            total = total.saturating_add(e.size_bytes());
            total <= max_bytes
        })
        .count()
        .max(1);
    entries.truncate(keep);
}

/// An in-memory [`Storage`], like etcd's `MemoryStorage`: the application appends what Raft
/// hands it in each `Ready` and compacts after snapshotting.
///
/// Invariant: `entries[0]` is a dummy entry carrying the snapshot's index and term, so
/// `first_index() == entries[0].index + 1`.
#[derive(Debug, Clone)]
pub struct MemStorage {
    hard_state: HardState,
    conf_state: ConfState,
    snapshot: Snapshot,
    entries: Vec<Entry>,
}

impl Default for MemStorage {
    fn default() -> Self {
        MemStorage::new()
    }
}

impl MemStorage {
    /// Empty storage with no membership: a node that waits to be told about its cluster.
    pub fn new() -> MemStorage {
        MemStorage {
            hard_state: HardState::default(),
            conf_state: ConfState::default(),
            snapshot: Snapshot::default(),
            entries: vec![Entry::default()],
        }
    }

    /// Empty storage bootstrapped with a membership (how tests and the simulator start a
    /// fresh cluster).
    pub fn new_with_conf_state(conf_state: ConfState) -> MemStorage {
        let mut s = MemStorage::new();
        s.snapshot.metadata.conf_state = conf_state.clone();
        s.conf_state = conf_state;
        s
    }

    /// The stored hard state.
    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    /// Records the hard state from a `Ready`.
    pub fn set_hard_state(&mut self, hs: HardState) {
        self.hard_state = hs;
    }

    /// The stored membership.
    pub fn conf_state(&self) -> &ConfState {
        &self.conf_state
    }

    /// Records the membership returned by `RawNode::apply_conf_change`.
    pub fn set_conf_state(&mut self, cs: ConfState) {
        self.conf_state = cs;
    }

    /// Replaces the whole log with `snapshot` (from a `Ready`).
    pub fn apply_snapshot(&mut self, snapshot: Snapshot) -> Result<(), StorageError> {
        if snapshot.metadata.index <= self.snapshot.metadata.index {
            return Err(StorageError::SnapshotOutOfDate);
        }
        let meta = &snapshot.metadata;
        self.entries = vec![Entry {
            term: meta.term,
            index: meta.index,
            ..Entry::default()
        }];
        self.conf_state = meta.conf_state.clone();
        if self.hard_state.commit < meta.index {
            self.hard_state.commit = meta.index;
        }
        if self.hard_state.term < meta.term {
            self.hard_state.term = meta.term;
        }
        self.snapshot = snapshot;
        Ok(())
    }

    /// Makes a snapshot at `index` (which must be applied and held) with the application's
    /// `data`; `conf_state` defaults to the stored membership.
    pub fn create_snapshot(
        &mut self,
        index: u64,
        conf_state: Option<ConfState>,
        data: Vec<u8>,
    ) -> Result<Snapshot, StorageError> {
        if index <= self.snapshot.metadata.index {
            return Err(StorageError::SnapshotOutOfDate);
        }
        let offset = self.entries[0].index;
        if index < offset {
            // Compacted away without a snapshot covering it: its term is gone.
            return Err(StorageError::Compacted);
        }
        if index > self.last_index_inner() {
            return Err(StorageError::Unavailable);
        }
        let term = self.entries[(index - offset) as usize].term;
        self.snapshot = Snapshot {
            metadata: SnapshotMetadata {
                index,
                term,
                conf_state: conf_state.unwrap_or_else(|| self.conf_state.clone()),
            },
            data,
        };
        Ok(self.snapshot.clone())
    }

    /// Discards entries before `compact_index` (which must be ≤ the last index); the entry at
    /// `compact_index` becomes the dummy.
    pub fn compact(&mut self, compact_index: u64) -> Result<(), StorageError> {
        let offset = self.entries[0].index;
        if compact_index <= offset {
            return Err(StorageError::Compacted);
        }
        if compact_index > self.last_index_inner() {
            return Err(StorageError::Unavailable);
        }
        let i = (compact_index - offset) as usize;
        self.entries.drain(..i);
        self.entries[0].data.clear();
        debug_assert_eq!(self.entries[0].index, compact_index, "dummy entry index");
        Ok(())
    }

    /// Appends entries from a `Ready`, replacing any conflicting suffix. Entries already
    /// compacted away are skipped.
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        let Some(first_new) = entries.first() else {
            return Ok(());
        };
        let first = self.entries[0].index + 1;
        let last_new = first_new.index + entries.len() as u64 - 1;
        if last_new < first {
            return Ok(());
        }
        let skip = first.saturating_sub(first_new.index) as usize;
        let entries = &entries[skip..];
        let start = entries[0].index;
        if start > self.last_index_inner() + 1 {
            return Err(StorageError::Unavailable);
        }
        let keep = (start - self.entries[0].index) as usize;
        self.entries.truncate(keep);
        self.entries.extend_from_slice(entries);
        Ok(())
    }

    fn last_index_inner(&self) -> u64 {
        self.entries[0].index + self.entries.len() as u64 - 1
    }
}

impl Storage for MemStorage {
    fn initial_state(&self) -> Result<(HardState, ConfState), StorageError> {
        Ok((self.hard_state, self.conf_state.clone()))
    }

    fn entries(&self, lo: u64, hi: u64, max_bytes: u64) -> Result<Vec<Entry>, StorageError> {
        let offset = self.entries[0].index;
        if lo <= offset {
            return Err(StorageError::Compacted);
        }
        if hi > self.last_index_inner() + 1 {
            return Err(StorageError::Unavailable);
        }
        if lo >= hi {
            return Ok(Vec::new());
        }
        let mut out = self.entries[(lo - offset) as usize..(hi - offset) as usize].to_vec();
        limit_size(&mut out, max_bytes);
        Ok(out)
    }

    fn term(&self, index: u64) -> Result<u64, StorageError> {
        let offset = self.entries[0].index;
        if index < offset {
            return Err(StorageError::Compacted);
        }
        if index > self.last_index_inner() {
            return Err(StorageError::Unavailable);
        }
        Ok(self.entries[(index - offset) as usize].term)
    }

    fn first_index(&self) -> Result<u64, StorageError> {
        Ok(self.entries[0].index + 1)
    }

    fn last_index(&self) -> Result<u64, StorageError> {
        Ok(self.last_index_inner())
    }

    fn snapshot(&self, request_index: u64) -> Result<Snapshot, StorageError> {
        if self.snapshot.metadata.index < request_index {
            return Err(StorageError::SnapshotTemporarilyUnavailable);
        }
        Ok(self.snapshot.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ent(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            ..Entry::default()
        }
    }

    fn storage_3_4_5() -> MemStorage {
        let mut s = MemStorage::new();
        s.entries = vec![ent(3, 3), ent(4, 4), ent(5, 5)];
        s
    }

    #[test]
    fn term_bounds() {
        let s = storage_3_4_5();
        assert_eq!(s.term(2), Err(StorageError::Compacted));
        assert_eq!(s.term(3), Ok(3));
        assert_eq!(s.term(5), Ok(5));
        assert_eq!(s.term(6), Err(StorageError::Unavailable));
        assert_eq!(s.first_index(), Ok(4));
        assert_eq!(s.last_index(), Ok(5));
    }

    #[test]
    fn entries_respect_bounds_and_size() {
        let s = storage_3_4_5();
        assert_eq!(s.entries(3, 5, u64::MAX), Err(StorageError::Compacted));
        assert_eq!(s.entries(4, 7, u64::MAX), Err(StorageError::Unavailable));
        assert_eq!(s.entries(4, 6, u64::MAX), Ok(vec![ent(4, 4), ent(5, 5)]));
        assert_eq!(s.entries(4, 6, 0), Ok(vec![ent(4, 4)]));
        let one = ent(4, 4).size_bytes();
        assert_eq!(s.entries(4, 6, one * 2), Ok(vec![ent(4, 4), ent(5, 5)]));
    }

    #[test]
    fn append_truncates_conflicts_and_skips_compacted() {
        let mut s = storage_3_4_5();
        s.append(&[ent(3, 3), ent(4, 6), ent(5, 6)])
            .expect("append");
        assert_eq!(s.entries, vec![ent(3, 3), ent(4, 6), ent(5, 6)]);
        s.append(&[ent(5, 7), ent(6, 7)]).expect("append");
        assert_eq!(s.entries, vec![ent(3, 3), ent(4, 6), ent(5, 7), ent(6, 7)]);
        assert_eq!(s.append(&[ent(8, 7)]), Err(StorageError::Unavailable));
        s.append(&[ent(1, 1), ent(2, 2)])
            .expect("fully compacted append is a no-op");
        assert_eq!(s.last_index(), Ok(6));
    }

    #[test]
    fn compact_and_snapshot() {
        let mut s = storage_3_4_5();
        assert_eq!(s.compact(3), Err(StorageError::Compacted));
        assert_eq!(s.compact(6), Err(StorageError::Unavailable));
        let snap = s
            .create_snapshot(4, None, b"data".to_vec())
            .expect("snapshot");
        assert_eq!((snap.metadata.index, snap.metadata.term), (4, 4));
        assert_eq!(
            s.snapshot(5),
            Err(StorageError::SnapshotTemporarilyUnavailable)
        );
        s.compact(4).expect("compact");
        assert_eq!(s.first_index(), Ok(5));
        assert_eq!(s.term(4), Ok(4));
        assert_eq!(
            s.apply_snapshot(snap.clone()),
            Err(StorageError::SnapshotOutOfDate)
        );
        let mut later = snap;
        later.metadata.index = 10;
        later.metadata.term = 9;
        s.apply_snapshot(later).expect("apply");
        assert_eq!(s.first_index(), Ok(11));
        assert_eq!(s.last_index(), Ok(10));
        assert_eq!(s.hard_state().commit, 10);
    }

    #[test]
    fn snapshot_below_the_compacted_prefix_is_refused() {
        let mut s = storage_3_4_5();
        // Compacted to 4 without a snapshot there: the term of entry 3 is gone.
        s.compact(4).expect("compact");
        assert_eq!(
            s.create_snapshot(3, None, b"old".to_vec()),
            Err(StorageError::Compacted)
        );
        assert!(
            s.snapshot(0).expect("snapshot").is_empty(),
            "nothing stored"
        );
    }
}
