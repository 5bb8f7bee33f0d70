//! What the server's lessor needs from the store: the lease table, a revoke that
//! deletes a lease's keys in one revision, the keys each write put or deleted with
//! their new lease, and the leased keys to reattach after a restart or a snapshot.
//!
//! The store does not interpret lease records: they are opaque bytes keyed by the
//! lease id, owned by the server (Keel's `keel-lease` record format). Lease writes go
//! into the same pending batch as the key-value changes, so they are committed in the
//! same redb transaction as the data and the consistent index of their entry.

use crate::error::MvccError;
use crate::store::Store;
use crate::types::{ApplyIndex, DeleteRangeRequest};

/// A key the last applied entry put or deleted, in the order it was changed, with the
/// lease it has now: the put's lease (0 for none), or 0 for a deletion. The server
/// attaches or detaches the key in its lessor accordingly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyLeaseChange {
    /// The key.
    pub key: Vec<u8>,
    /// The key's lease after the change; 0 when it has none or was deleted.
    pub lease: i64,
}

/// What [`Store::revoke_lease`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseRevoked {
    /// The store's revision afterwards: the deletion's revision if any key was live.
    pub revision: i64,
    /// Keys deleted.
    pub deleted: i64,
}

impl Store {
    /// Every stored lease record (id, bytes), pending writes included, by ascending
    /// key bytes (the id as 8 bytes big-endian).
    pub fn lease_records(&self) -> Result<Vec<(i64, Vec<u8>)>, MvccError> {
        self.backend.lease_records()
    }

    /// Applies entry `at`, which writes lease records (a grant, a checkpoint batch):
    /// they join the pending batch with the entry's consistent index. The revision does
    /// not move, as in etcd.
    pub fn put_lease_records(
        &mut self,
        at: ApplyIndex,
        records: &[(i64, Vec<u8>)],
    ) -> Result<(), MvccError> {
        self.begin_apply(at)?;
        for (id, bytes) in records {
            assert!(*id != 0, "lease 0 means no lease and is never stored");
            self.backend.put_lease(*id, Some(bytes.clone()));
        }
        self.backend.commit_if_full(&self.meta)
    }

    /// Applies entry `at`, a lease revoke: deletes `keys` (the lease's keys, in the
    /// order every member uses) in ONE revision, with one delete event per live key
    /// for watchers, and deletes the lease's record, all in one batch. Keys that are
    /// not live are skipped.
    pub fn revoke_lease(
        &mut self,
        at: ApplyIndex,
        id: i64,
        keys: &[Vec<u8>],
    ) -> Result<LeaseRevoked, MvccError> {
        self.begin_apply(at)?;
        self.backend.put_lease(id, None);
        let mut ctx = self.begin_write();
        let mut deleted = 0;
        let mut result = Ok(());
        for key in keys {
            if key.is_empty() {
                continue;
            }
            let req = DeleteRangeRequest {
                key: key.clone(),
                range_end: Vec::new(),
                prev_kv: false,
            };
            match self.delete_in(&mut ctx, &req) {
                Ok(r) => deleted += r.deleted,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        self.finish_write(ctx)?;
        result?;
        Ok(LeaseRevoked {
            revision: self.current_revision,
            deleted,
        })
    }

    /// Keys the last applied entry put or deleted, with their new lease (0 for none or
    /// deleted), in order. Empty after an entry that changed no key.
    pub fn last_changes(&self) -> &[KeyLeaseChange] {
        &self.last_changes
    }

    /// Every live key with a lease, and its lease, ascending by key: what the server
    /// reattaches after opening the store or installing a snapshot.
    pub fn leased_keys(&self) -> Result<Vec<(Vec<u8>, i64)>, MvccError> {
        let live = self.index.range(&[0], &[0], self.current_revision);
        let mut out = Vec::new();
        for (key, entry) in live {
            let record = self.backend.get(entry.modified)?.ok_or_else(|| {
                MvccError::Corrupt(format!(
                    "revision {} of the index is missing",
                    entry.modified
                ))
            })?;
            if !record.tombstone && record.kv.lease != 0 {
                out.push((key.to_vec(), record.kv.lease));
            }
        }
        Ok(out)
    }
}
