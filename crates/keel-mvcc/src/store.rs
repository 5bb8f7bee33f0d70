//! The store: etcd's `store` + `watchableStore` + the MVCC half of `applierV3backend`.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc::Sender;

use crate::backend::{Backend, BatchConfig, META_TABLE, Meta};
use crate::error::MvccError;
use crate::index::TreeIndex;
use crate::kv::{KeyValue, Record};
use crate::lease::KeyLeaseChange;
use crate::revision::Revision;
use crate::types::{
    ApplyIndex, CompactResponse, Compare, CompareResult, CompareTarget, DeleteRangeRequest,
    DeleteRangeResponse, HashKv, PutRequest, PutResponse, RangeRequest, RangeResponse, RequestOp,
    ResponseOp, SortOrder, SortTarget, TxnRequest, TxnResponse,
};
use crate::watch::{
    Delivery, Event, EventType, WatchId, WatchRequest, WatchResponse, Watcher, WatcherGroups,
    deliver,
};

/// The name of etcd's bbolt bucket of revisions, the first bytes `HashKV` hashes.
const ETCD_KEY_BUCKET: &[u8] = b"key";

/// Most unsynced watchers caught up by one `sync_watchers` call (etcd: 512).
pub const MAX_WATCHERS_PER_SYNC: usize = 512;
/// Events read from the backend per `sync_watchers` call; whole revisions are always
/// read, so one huge txn may exceed it.
pub const MAX_EVENTS_PER_SYNC: usize = 10_000;

/// What one `sync_watchers` call did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Victims whose held response was delivered.
    pub victims_recovered: usize,
    /// Unsynced watchers that reached the current revision.
    pub newly_synced: usize,
    /// Watchers still unsynced or victims afterwards.
    pub pending: usize,
}

/// Gauges for the server's metrics (etcd names in brackets).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Keys in the index (`etcd_debugging_mvcc_keys_total`).
    pub keys: usize,
    /// Current revision (`etcd_debugging_mvcc_current_revision`).
    pub current_revision: i64,
    /// Compaction point (`etcd_debugging_mvcc_compact_revision`).
    pub compact_revision: i64,
    /// Changes waiting for a backend commit (`etcd_debugging_mvcc_pending_events_total`
    /// is the watch analogue; this one has no etcd twin).
    pub pending_ops: usize,
    /// Synced watchers.
    pub synced_watchers: usize,
    /// Watchers catching up (`etcd_debugging_mvcc_watch_stream_total` counts streams).
    pub unsynced_watchers: usize,
    /// Slow watchers holding an undelivered response (`etcd_debugging_mvcc_slow_watcher_total`).
    pub slow_watchers: usize,
}

/// Where a consistent copy of the backend was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Consistent index recorded in the copy.
    pub consistent_index: u64,
    /// Term recorded in the copy.
    pub term: u64,
    /// Size of the copy in bytes.
    pub size_bytes: u64,
}

/// The changes of one write request in progress.
pub(crate) struct WriteCtx {
    begin_rev: i64,
    changes: Vec<Event>,
}

impl WriteCtx {
    /// Revision reads inside the request see: its own changes are visible.
    fn read_rev(&self) -> i64 {
        self.begin_rev + i64::from(!self.changes.is_empty())
    }

    fn next_rev(&self) -> Revision {
        let sub = i64::try_from(self.changes.len()).expect("change count fits i64");
        Revision::new(self.begin_rev + 1, sub)
    }
}

/// The multi-version store with its watchers. One owner drives it: writes are
/// applied in Raft order with their [`ApplyIndex`], reads take `&self`.
pub struct Store {
    pub(crate) backend: Backend,
    pub(crate) index: TreeIndex,
    pub(crate) meta: Meta,
    pub(crate) current_revision: i64,
    watchers: WatcherGroups,
    /// Keys the last applied entry put or deleted, with their new lease (see
    /// [`Store::last_changes`]).
    pub(crate) last_changes: Vec<KeyLeaseChange>,
}

fn check_key(key: &[u8]) -> Result<(), MvccError> {
    if key.is_empty() {
        Err(MvccError::EmptyKey)
    } else {
        Ok(())
    }
}

impl Store {
    /// Opens the store in the redb file at `path` (created if missing) and rebuilds
    /// the key index from it.
    pub fn open(path: &Path, config: BatchConfig) -> Result<Self, MvccError> {
        let (backend, meta) = Backend::open(path, config)?;
        let mut store = Self {
            backend,
            index: TreeIndex::new(),
            meta,
            current_revision: 0,
            watchers: WatcherGroups::default(),
            last_changes: Vec::new(),
        };
        store.rebuild_index()?;
        tracing::info!(
            path = %path.display(),
            keys = store.index.len(),
            revision = store.current_revision,
            compact_revision = store.meta.compact_revision,
            consistent_index = store.meta.consistent_index,
            "mvcc store opened"
        );
        Ok(store)
    }

    fn rebuild_index(&mut self) -> Result<(), MvccError> {
        let mut index = TreeIndex::new();
        let mut last = 0;
        self.backend.for_each_raw(
            Revision::new(0, 0),
            Revision::new(i64::MAX, i64::MAX),
            |k, v| {
                let rev = Revision::from_bytes(k);
                let rec = Record::decode(v)?;
                if rec.tombstone {
                    index.restore_tombstone(&rec.kv.key, rev);
                } else {
                    let created = Revision::new(rec.kv.create_revision, 0);
                    index.restore_put(&rec.kv.key, created, rev, rec.kv.version);
                }
                last = rev.main;
                Ok(true)
            },
        )?;
        self.index = index;
        // etcd starts at revision 1: the first write gets revision 2.
        self.current_revision = last.max(self.meta.compact_revision).max(1);
        Ok(())
    }

    /// The revision of the last write.
    pub fn current_revision(&self) -> i64 {
        self.current_revision
    }

    /// Revisions below this were compacted away; -1 before the first compaction.
    pub fn compact_revision(&self) -> i64 {
        self.meta.compact_revision
    }

    /// Index of the last Raft entry applied (persisted with the data it produced).
    pub fn consistent_index(&self) -> u64 {
        self.meta.consistent_index
    }

    /// Term of the last Raft entry applied.
    pub fn term(&self) -> u64 {
        self.meta.term
    }

    /// The opaque membership blob last stored.
    pub fn membership(&self) -> &[u8] {
        &self.meta.membership
    }

    /// Gauges for metrics.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            keys: self.index.len(),
            current_revision: self.current_revision,
            compact_revision: self.meta.compact_revision,
            pending_ops: self.backend.pending_ops(),
            synced_watchers: self.watchers.synced.len(),
            unsynced_watchers: self.watchers.unsynced.len(),
            slow_watchers: self.watchers.victims.len(),
        }
    }

    /// Number of keys in the index (live or with history left).
    pub fn index_keys(&self) -> usize {
        self.index.len()
    }

    /// Claims the entry `at`, refusing entries at or below the consistent index.
    pub(crate) fn begin_apply(&mut self, at: ApplyIndex) -> Result<(), MvccError> {
        self.last_changes.clear();
        if at.index <= self.meta.consistent_index {
            return Err(MvccError::AlreadyApplied {
                index: at.index,
                consistent_index: self.meta.consistent_index,
            });
        }
        self.meta.consistent_index = at.index;
        self.meta.term = at.term;
        self.backend.touch_meta();
        Ok(())
    }

    /// Records an entry that does not touch the keyspace (lease, auth, ...), so that it
    /// is not applied twice either.
    pub fn apply_noop(&mut self, at: ApplyIndex) -> Result<(), MvccError> {
        self.begin_apply(at)?;
        self.backend.commit_if_full(&self.meta)
    }

    /// Stores the membership blob as part of applying entry `at`.
    pub fn set_membership(&mut self, at: ApplyIndex, membership: &[u8]) -> Result<(), MvccError> {
        self.begin_apply(at)?;
        self.meta.membership = membership.to_vec();
        self.backend.commit_if_full(&self.meta)
    }

    pub(crate) fn finish_write(&mut self, ctx: WriteCtx) -> Result<(), MvccError> {
        self.last_changes
            .extend(ctx.changes.iter().map(|e| KeyLeaseChange {
                key: e.kv.key.clone(),
                lease: e.kv.lease,
            }));
        if !ctx.changes.is_empty() {
            let rev = ctx.begin_rev + 1;
            self.current_revision = rev;
            let (index, backend) = (&self.index, &self.backend);
            // The request is applied already and must be announced; if the previous
            // value cannot be read back, the event goes out without it.
            self.watchers.notify(rev, &ctx.changes, |kv| {
                prev_kv_of(index, backend, kv).ok().flatten()
            });
        }
        self.backend.commit_if_full(&self.meta)
    }

    pub(crate) fn begin_write(&self) -> WriteCtx {
        WriteCtx {
            begin_rev: self.current_revision,
            changes: Vec::new(),
        }
    }

    // ---------------------------------------------------------------- reads

    /// Serves a range at the current revision (etcd `Range`, serializable).
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse, MvccError> {
        check_key(&req.key)?;
        self.range_at(self.current_revision, req)
    }

    /// `KV.Range` at read view `cur`, then etcd's apply-layer filters, sort and limit.
    fn range_at(&self, cur: i64, req: &RangeRequest) -> Result<RangeResponse, MvccError> {
        let fetch_all = req.sort_order != SortOrder::None
            || req.min_mod_revision != 0
            || req.max_mod_revision != 0
            || req.min_create_revision != 0
            || req.max_create_revision != 0;
        let limit = match (fetch_all, req.limit) {
            (true, _) => 0,
            // One more than asked tells whether there is `more`; `i64::MAX` already
            // means everything (etcd's Go addition wraps to "no limit").
            (false, l) if l > 0 => l.saturating_add(1),
            (false, l) => l,
        };
        let (mut kvs, count) = self.range_keys(
            &req.key,
            &req.range_end,
            req.revision,
            cur,
            limit,
            req.count_only,
        )?;
        kvs.retain(|kv| {
            !(req.max_mod_revision != 0 && kv.mod_revision > req.max_mod_revision
                || req.min_mod_revision != 0 && kv.mod_revision < req.min_mod_revision
                || req.max_create_revision != 0 && kv.create_revision > req.max_create_revision
                || req.min_create_revision != 0 && kv.create_revision < req.min_create_revision)
        });
        let order = match (req.sort_order, req.sort_target) {
            (SortOrder::None, SortTarget::Key) => SortOrder::None,
            (SortOrder::None, _) => SortOrder::Ascend,
            (o, _) => o,
        };
        if order != SortOrder::None {
            let by = |a: &KeyValue, b: &KeyValue| -> Ordering {
                match req.sort_target {
                    SortTarget::Key => a.key.cmp(&b.key),
                    SortTarget::Version => a.version.cmp(&b.version),
                    SortTarget::Create => a.create_revision.cmp(&b.create_revision),
                    SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
                    SortTarget::Value => a.value.cmp(&b.value),
                }
            };
            if order == SortOrder::Descend {
                kvs.sort_by(|a, b| by(b, a));
            } else {
                kvs.sort_by(by);
            }
        }
        let mut more = false;
        if req.limit > 0 {
            let max = usize::try_from(req.limit).unwrap_or(usize::MAX);
            if kvs.len() > max {
                kvs.truncate(max);
                more = true;
            }
        }
        if req.keys_only {
            for kv in &mut kvs {
                kv.value.clear();
            }
        }
        Ok(RangeResponse {
            revision: cur,
            kvs,
            more,
            count,
        })
    }

    /// etcd `rangeKeys`: the key-values at `rev` (current if `<= 0`), at most `limit`
    /// of them (0: all), and how many keys the range holds at `rev`.
    fn range_keys(
        &self,
        key: &[u8],
        end: &[u8],
        rev: i64,
        cur: i64,
        limit: i64,
        count_only: bool,
    ) -> Result<(Vec<KeyValue>, i64), MvccError> {
        if rev > cur {
            return Err(MvccError::FutureRevision {
                current_revision: cur,
            });
        }
        let rev = if rev <= 0 { cur } else { rev };
        if rev < self.meta.compact_revision {
            return Err(MvccError::Compacted {
                compact_revision: self.meta.compact_revision,
            });
        }
        let keep = match usize::try_from(limit) {
            _ if count_only => 0,
            Ok(l) if l > 0 => l,
            _ => usize::MAX,
        };
        let (found, count) = self.index.range_limited(key, end, rev, keep);
        let count = i64::try_from(count).expect("key count fits i64");
        let mut kvs = Vec::with_capacity(found.len());
        for (k, entry) in &found {
            let rec = self.backend.get(entry.modified)?.ok_or_else(|| {
                MvccError::Corrupt(format!(
                    "revision {} of the index is missing",
                    entry.modified
                ))
            })?;
            assert!(
                !rec.tombstone && rec.kv.key == *k,
                "index points at revision {} which is not a put of the key",
                entry.modified
            );
            kvs.push(rec.kv);
        }
        Ok((kvs, count))
    }

    // ---------------------------------------------------------------- writes

    /// Applies a put (etcd `Put`).
    pub fn put(&mut self, at: ApplyIndex, req: &PutRequest) -> Result<PutResponse, MvccError> {
        self.begin_apply(at)?;
        check_key(&req.key)?;
        let mut ctx = self.begin_write();
        let result = self.put_in(&mut ctx, req);
        self.finish_write(ctx)?;
        result
    }

    fn put_in(&mut self, ctx: &mut WriteCtx, req: &PutRequest) -> Result<PutResponse, MvccError> {
        let cur = ctx.read_rev();
        let prev = if req.ignore_value || req.ignore_lease || req.prev_kv {
            self.range_keys(&req.key, &[], 0, cur, 0, false)?.0.pop()
        } else {
            None
        };
        if (req.ignore_value || req.ignore_lease) && prev.is_none() {
            return Err(MvccError::KeyNotFound);
        }
        let mut value = req.value.clone();
        let mut lease = req.lease;
        if let Some(p) = &prev {
            if req.ignore_value {
                value = p.value.clone();
            }
            if req.ignore_lease {
                lease = p.lease;
            }
        }
        let rev = ctx.next_rev();
        let (create_revision, version) = match self.index.get(&req.key, rev.main) {
            Some(e) => (e.created.main, e.version + 1),
            None => (rev.main, 1),
        };
        let kv = KeyValue {
            key: req.key.clone(),
            create_revision,
            mod_revision: rev.main,
            version,
            value,
            lease,
        };
        let record = Record {
            kv,
            tombstone: false,
        };
        self.backend.put(rev, &record);
        self.index.put(&req.key, rev);
        ctx.changes.push(Event {
            kind: EventType::Put,
            kv: record.kv,
            prev_kv: None,
        });
        Ok(PutResponse {
            revision: rev.main,
            prev_kv: prev.filter(|_| req.prev_kv),
        })
    }

    /// Applies a delete of a key or range (etcd `DeleteRange`).
    pub fn delete_range(
        &mut self,
        at: ApplyIndex,
        req: &DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse, MvccError> {
        self.begin_apply(at)?;
        check_key(&req.key)?;
        let mut ctx = self.begin_write();
        let result = self.delete_in(&mut ctx, req);
        self.finish_write(ctx)?;
        result
    }

    pub(crate) fn delete_in(
        &mut self,
        ctx: &mut WriteCtx,
        req: &DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse, MvccError> {
        let read_rev = ctx.read_rev();
        let prev_kvs = if req.prev_kv {
            self.range_keys(&req.key, &req.range_end, 0, read_rev, 0, false)?
                .0
        } else {
            Vec::new()
        };
        let keys: Vec<Vec<u8>> = self
            .index
            .range(&req.key, &req.range_end, read_rev)
            .into_iter()
            .map(|(k, _)| k.to_vec())
            .collect();
        for key in &keys {
            let rev = ctx.next_rev();
            let kv = KeyValue {
                key: key.clone(),
                mod_revision: rev.main,
                ..KeyValue::default()
            };
            let record = Record {
                kv,
                tombstone: true,
            };
            self.backend.put(rev, &record);
            let ended = self.index.tombstone(key, rev);
            assert!(ended, "deleting a key the index just listed as live");
            ctx.changes.push(Event {
                kind: EventType::Delete,
                kv: record.kv,
                prev_kv: None,
            });
        }
        Ok(DeleteRangeResponse {
            revision: ctx.read_rev(),
            deleted: i64::try_from(keys.len()).expect("key count fits i64"),
            prev_kvs,
        })
    }

    /// Applies a txn (etcd `Txn`): compares, then one branch, all at one revision.
    /// Every lease a put names is taken to exist; see [`Store::txn_checked`].
    pub fn txn(&mut self, at: ApplyIndex, req: &TxnRequest) -> Result<TxnResponse, MvccError> {
        self.txn_checked(at, req, &|_| true)
    }

    /// [`Store::txn`] where a put on the branch taken that names a lease for which
    /// `lease_exists` is false fails the whole txn with [`MvccError::LeaseNotFound`]
    /// before anything is written (etcd's `checkRequestPut`).
    pub fn txn_checked(
        &mut self,
        at: ApplyIndex,
        req: &TxnRequest,
        lease_exists: &dyn Fn(i64) -> bool,
    ) -> Result<TxnResponse, MvccError> {
        self.begin_apply(at)?;
        validate_txn(req)?;
        let cur = self.current_revision;
        let mut path = Vec::new();
        self.compare_path(cur, req, &mut path)?;
        if !txn_is_read_only(req) {
            self.check_ops(cur, req, &path, &mut 0, &|s, cur, op| {
                s.check_put(cur, op, lease_exists)
            })?;
        }
        self.check_ops(cur, req, &path, &mut 0, &|s, cur, op| {
            s.check_range(cur, op)
        })?;
        let mut ctx = self.begin_write();
        let result = self.apply_txn(&mut ctx, req, &path, &mut 0);
        let rev = ctx.read_rev();
        self.finish_write(ctx)?;
        let mut resp = result?;
        resp.revision = rev;
        Ok(resp)
    }

    /// Serves a read-only txn locally (etcd's serializable txn), without a Raft entry.
    pub fn read_txn(&self, req: &TxnRequest) -> Result<TxnResponse, MvccError> {
        if !txn_is_read_only(req) {
            return Err(MvccError::TxnNotReadOnly);
        }
        validate_txn(req)?;
        let cur = self.current_revision;
        let mut path = Vec::new();
        self.compare_path(cur, req, &mut path)?;
        self.check_ops(cur, req, &path, &mut 0, &|s, cur, op| {
            s.check_range(cur, op)
        })?;
        self.apply_read_txn(cur, req, &path, &mut 0)
    }

    fn apply_read_txn(
        &self,
        cur: i64,
        req: &TxnRequest,
        path: &[bool],
        at: &mut usize,
    ) -> Result<TxnResponse, MvccError> {
        let (succeeded, ops) = take_branch(req, path, at);
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            responses.push(match op {
                RequestOp::Range(r) => ResponseOp::Range(self.range_at(cur, r)?),
                RequestOp::Txn(nested) => {
                    ResponseOp::Txn(self.apply_read_txn(cur, nested, path, at)?)
                }
                RequestOp::Put(_) | RequestOp::DeleteRange(_) => {
                    unreachable!("read_txn checked that the txn has no writes")
                }
            });
        }
        Ok(TxnResponse {
            revision: cur,
            succeeded,
            responses,
        })
    }

    /// Evaluates the compares of `req` and of every nested txn on the branch taken,
    /// depth first, all against read view `cur` (etcd `compareToPath`).
    fn compare_path(
        &self,
        cur: i64,
        req: &TxnRequest,
        path: &mut Vec<bool>,
    ) -> Result<(), MvccError> {
        let mut ok = true;
        for c in &req.compare {
            if !self.compare_holds(cur, c)? {
                ok = false;
                break;
            }
        }
        path.push(ok);
        let ops = if ok { &req.success } else { &req.failure };
        for op in ops {
            if let RequestOp::Txn(nested) = op {
                self.compare_path(cur, nested, path)?;
            }
        }
        Ok(())
    }

    fn compare_holds(&self, cur: i64, c: &Compare) -> Result<bool, MvccError> {
        let (kvs, _) = self.range_keys(&c.key, &c.range_end, 0, cur, 0, false)?;
        if kvs.is_empty() {
            if matches!(c.target, CompareTarget::Value(_)) {
                return Ok(false);
            }
            return Ok(compare_kv(c, &KeyValue::default()));
        }
        Ok(kvs.iter().all(|kv| compare_kv(c, kv)))
    }

    /// Runs `check` over the ops on the branch `path` takes (etcd `checkRequests`).
    fn check_ops(
        &self,
        cur: i64,
        req: &TxnRequest,
        path: &[bool],
        at: &mut usize,
        check: &dyn Fn(&Self, i64, &RequestOp) -> Result<(), MvccError>,
    ) -> Result<(), MvccError> {
        let (_, ops) = take_branch(req, path, at);
        for op in ops {
            match op {
                RequestOp::Txn(nested) => self.check_ops(cur, nested, path, at, check)?,
                other => check(self, cur, other)?,
            }
        }
        Ok(())
    }

    fn check_put(
        &self,
        cur: i64,
        op: &RequestOp,
        lease_exists: &dyn Fn(i64) -> bool,
    ) -> Result<(), MvccError> {
        if let RequestOp::Put(p) = op {
            if (p.ignore_value || p.ignore_lease) && self.index.get(&p.key, cur).is_none() {
                return Err(MvccError::KeyNotFound);
            }
            if p.lease != 0 && !lease_exists(p.lease) {
                return Err(MvccError::LeaseNotFound);
            }
        }
        Ok(())
    }

    fn check_range(&self, cur: i64, op: &RequestOp) -> Result<(), MvccError> {
        if let RequestOp::Range(r) = op {
            if r.revision > cur {
                return Err(MvccError::FutureRevision {
                    current_revision: cur,
                });
            }
            if r.revision != 0 && r.revision < self.meta.compact_revision {
                return Err(MvccError::Compacted {
                    compact_revision: self.meta.compact_revision,
                });
            }
        }
        Ok(())
    }

    fn apply_txn(
        &mut self,
        ctx: &mut WriteCtx,
        req: &TxnRequest,
        path: &[bool],
        at: &mut usize,
    ) -> Result<TxnResponse, MvccError> {
        let (succeeded, ops) = take_branch(req, path, at);
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            let resp = match op {
                RequestOp::Range(r) => ResponseOp::Range(self.range_at(ctx.read_rev(), r)?),
                RequestOp::Put(p) => ResponseOp::Put(self.put_in(ctx, p)?),
                RequestOp::DeleteRange(d) => ResponseOp::DeleteRange(self.delete_in(ctx, d)?),
                RequestOp::Txn(nested) => {
                    let mut r = self.apply_txn(ctx, nested, path, at)?;
                    r.revision = ctx.read_rev();
                    ResponseOp::Txn(r)
                }
            };
            responses.push(resp);
        }
        Ok(TxnResponse {
            revision: ctx.read_rev(),
            succeeded,
            responses,
        })
    }

    /// Applies a compaction at `rev` (etcd `Compact`): every key keeps its newest
    /// revision at or below `rev` unless that is a deletion. The backend is compacted
    /// before this returns, so etcd's `physical` wait is always satisfied.
    pub fn compact(&mut self, at: ApplyIndex, rev: i64) -> Result<CompactResponse, MvccError> {
        self.begin_apply(at)?;
        if rev <= self.meta.compact_revision {
            return Err(MvccError::Compacted {
                compact_revision: self.meta.compact_revision,
            });
        }
        if rev > self.current_revision {
            return Err(MvccError::FutureRevision {
                current_revision: self.current_revision,
            });
        }
        self.meta.compact_revision = rev;
        let keep = self.index.compact(rev);
        self.backend.compact(rev, &keep, &self.meta)?;
        tracing::debug!(
            revision = rev,
            kept = keep.len(),
            "mvcc compaction finished"
        );
        Ok(CompactResponse {
            revision: self.current_revision,
        })
    }

    // ---------------------------------------------------------------- batching

    /// Commits the pending batch if the batch interval passed since the last commit (or
    /// the batch is full). The server calls it on its tick.
    pub fn commit_if_due(&mut self, now: Instant) -> Result<bool, MvccError> {
        self.backend.commit_if_due(now, &self.meta)
    }

    /// Commits the pending batch now.
    pub fn force_commit(&mut self) -> Result<(), MvccError> {
        self.backend.commit(&self.meta)
    }

    /// Changes waiting for a backend commit.
    pub fn pending_ops(&self) -> usize {
        self.backend.pending_ops()
    }

    // ---------------------------------------------------------------- hashes, snapshots

    /// CRC-32C of the whole committed backend after a forced commit (etcd `Hash`),
    /// leaving out the consistent index and term, which differ between members.
    pub fn hash(&mut self) -> Result<u32, MvccError> {
        self.force_commit()?;
        let mut crc = crc32c::crc32c(ETCD_KEY_BUCKET);
        self.backend.for_each_raw(
            Revision::new(0, 0),
            Revision::new(i64::MAX, i64::MAX),
            |k, v| {
                crc = crc32c::crc32c_append(crc, k);
                crc = crc32c::crc32c_append(crc, v);
                Ok(true)
            },
        )?;
        crc = crc32c::crc32c_append(crc, META_TABLE.to_string().as_bytes());
        crc = crc32c::crc32c_append(crc, &self.meta.membership);
        crc = crc32c::crc32c_append(crc, &self.meta.compact_revision.to_be_bytes());
        Ok(crc)
    }

    /// etcd `HashKV`: CRC-32C over the records up to `rev` (0: current) that a member
    /// holds whatever its compaction progress: those above the compaction point and
    /// those at or below it that compaction at `rev` keeps.
    pub fn hash_kv(&self, rev: i64) -> Result<HashKv, MvccError> {
        let (compact, cur) = (self.meta.compact_revision, self.current_revision);
        if rev > 0 && rev <= compact {
            return Err(MvccError::Compacted {
                compact_revision: compact,
            });
        }
        if rev > cur {
            return Err(MvccError::FutureRevision {
                current_revision: cur,
            });
        }
        let rev = if rev == 0 { cur } else { rev };
        let keep = self.index.keep(rev);
        // etcd hashes its bucket's name, then each key (the revision, with `t` appended
        // for a tombstone) and value (the mvccpb.KeyValue protobuf); hashing the same
        // bytes gives etcd's number for the same history.
        let mut crc = crc32c::crc32c(ETCD_KEY_BUCKET);
        let mut value = Vec::new();
        self.backend
            .for_each_raw(Revision::new(0, 0), Revision::new(rev, i64::MAX), |k, v| {
                let r = Revision::from_bytes(k);
                if r.main <= compact && !keep.is_empty() && !keep.contains(&r) {
                    return Ok(true);
                }
                let record = Record::decode(v)?;
                crc = crc32c::crc32c_append(crc, k);
                if record.tombstone {
                    crc = crc32c::crc32c_append(crc, b"t");
                }
                value.clear();
                record.encode_etcd_value(&mut value);
                crc = crc32c::crc32c_append(crc, &value);
                Ok(true)
            })?;
        Ok(HashKv {
            hash: crc,
            revision: cur,
            compact_revision: compact,
        })
    }

    /// Commits, then writes a consistent copy of the backend to `dest` (a new redb
    /// file) for a follower snapshot or a backup. Fails with an `AlreadyExists` I/O
    /// error if `dest` exists.
    pub fn snapshot(&mut self, dest: &Path) -> Result<SnapshotInfo, MvccError> {
        self.force_commit()?;
        self.backend.snapshot_to(dest)?;
        Ok(SnapshotInfo {
            consistent_index: self.meta.consistent_index,
            term: self.meta.term,
            size_bytes: std::fs::metadata(dest)?.len(),
        })
    }

    /// Copies the snapshot file `snapshot` (made by [`Store::snapshot`]) to `path` and
    /// opens a store on it; `path` must not hold a store already.
    pub fn restore(snapshot: &Path, path: &Path, config: BatchConfig) -> Result<Self, MvccError> {
        if path.exists() {
            return Err(MvccError::Io(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("restore target {} exists", path.display()),
            )));
        }
        let tmp = path.with_extension("restoring");
        std::fs::copy(snapshot, &tmp)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Self::open(path, config)
    }

    /// Replaces the store's whole content with a snapshot made by [`Store::snapshot`]
    /// (a follower installing the leader's snapshot, etcd's `store.Restore`). Pending
    /// changes are dropped; watchers stay and resume from their next revision through
    /// the unsynced group (or get a compaction notice if the snapshot compacted past it).
    pub fn restore_snapshot(&mut self, snapshot: &Path) -> Result<(), MvccError> {
        self.meta = self.backend.replace_with(snapshot)?;
        self.rebuild_index()?;
        let synced = self.watchers.synced.take_all();
        self.watchers.unsynced.extend(synced);
        Ok(())
    }

    /// Size of the backend file in bytes (etcd `dbSize`).
    pub fn db_size_bytes(&self) -> Result<u64, MvccError> {
        self.backend.size_bytes()
    }

    /// Bytes of the backend in use, the rest being free pages (etcd `dbSizeInUse`).
    pub fn db_size_in_use_bytes(&self) -> Result<u64, MvccError> {
        self.backend.size_in_use_bytes()
    }

    /// Records committed to redb (the pending batch not counted), after waiting for a
    /// background commit in flight.
    pub fn committed_records(&mut self) -> Result<u64, MvccError> {
        self.backend.committed_len()
    }

    /// Path of the backend file.
    pub fn path(&self) -> &Path {
        self.backend.path()
    }

    // ---------------------------------------------------------------- watch

    /// Starts a watcher delivering into `sender` (bounded by its capacity). A start
    /// revision in the past puts it in the unsynced group, caught up by
    /// [`Store::sync_watchers`].
    pub fn watch(&mut self, req: WatchRequest, sender: Sender<WatchResponse>) -> WatchId {
        let id = self.watchers.next_id();
        let start = req.start_revision;
        let synced = start == 0 || start > self.current_revision;
        let min_rev = if start == 0 {
            self.current_revision + 1
        } else {
            start
        };
        let w = Watcher {
            request: req,
            min_rev,
            sender,
            pending: None,
        };
        if synced {
            self.watchers.synced.insert(id, w);
        } else {
            self.watchers.unsynced.insert(id, w);
        }
        id
    }

    /// Cancels a watcher; `false` if it did not exist (any more).
    pub fn cancel_watch(&mut self, id: WatchId) -> bool {
        self.watchers.cancel(id)
    }

    /// Whether the watcher is synced: every revision up to the current one has been
    /// offered to its channel, so a progress notice sent after what the channel holds
    /// now cannot overtake an event (etcd answers progress requests only then).
    pub fn is_watcher_synced(&self, id: WatchId) -> bool {
        self.watchers.synced.contains(&id)
    }

    /// Number of watchers in all groups.
    pub fn watcher_count(&self) -> usize {
        self.watchers.len()
    }

    /// Retries victims, then catches up to [`MAX_WATCHERS_PER_SYNC`] unsynced watchers
    /// by one chunk of at most [`MAX_EVENTS_PER_SYNC`] events. The server calls it
    /// periodically (etcd: every 100 ms) and whenever it reports pending work.
    pub fn sync_watchers(&mut self) -> Result<SyncReport, MvccError> {
        let mut report = SyncReport::default();
        let cur = self.current_revision;
        let ids: Vec<WatchId> = self.watchers.victims.keys().copied().collect();
        for id in ids {
            let mut w = self.watchers.victims.remove(&id).expect("listed victim");
            let resp = w.pending.take().expect("a victim holds a response");
            match deliver(&w.sender, resp) {
                Delivery::Sent => {
                    report.victims_recovered += 1;
                    if w.min_rev <= cur {
                        self.watchers.unsynced.insert(id, w);
                    } else {
                        self.watchers.synced.insert(id, w);
                    }
                }
                Delivery::Full(resp) => {
                    w.pending = Some(resp);
                    self.watchers.victims.insert(id, w);
                }
                Delivery::Closed => {}
            }
        }
        self.sync_unsynced(cur, &mut report)?;
        report.pending = self.watchers.unsynced.len() + self.watchers.victims.len();
        Ok(report)
    }

    fn sync_unsynced(&mut self, cur: i64, report: &mut SyncReport) -> Result<(), MvccError> {
        let compact = self.meta.compact_revision;
        let ids = self.watchers.next_unsynced_batch(MAX_WATCHERS_PER_SYNC);
        let mut batch = Vec::with_capacity(ids.len());
        for id in ids {
            let w = self.watchers.unsynced.remove(&id).expect("listed unsynced");
            if w.min_rev < compact {
                let notice = WatchResponse {
                    watch_id: id,
                    revision: cur,
                    events: Arc::from([]),
                    compact_revision: compact,
                };
                if let Delivery::Full(_) = deliver(&w.sender, notice) {
                    self.watchers.unsynced.insert(id, w);
                }
                continue;
            }
            if w.min_rev > cur {
                report.newly_synced += 1;
                self.watchers.synced.insert(id, w);
                continue;
            }
            batch.push((id, w));
        }
        let Some(from) = batch.iter().map(|(_, w)| w.min_rev).min() else {
            return Ok(());
        };
        let (events, upto) = self.read_events(from, cur)?;
        // Watchers that take every event from the same revision on, without prev_kv,
        // share one allocation (as in `WatcherGroups::notify`).
        let mut shared: std::collections::HashMap<i64, Arc<[Event]>> =
            std::collections::HashMap::new();
        for (id, mut w) in batch {
            let from_min = |(rev, _): &&(i64, Event)| *rev >= w.min_rev;
            let takes_all =
                !w.request.prev_kv && events.iter().filter(from_min).all(|(_, e)| w.wants(e));
            let mine: Arc<[Event]> = if takes_all {
                Arc::clone(shared.entry(w.min_rev).or_insert_with(|| {
                    events
                        .iter()
                        .filter(from_min)
                        .map(|(_, e)| e.clone())
                        .collect()
                }))
            } else {
                events
                    .iter()
                    .filter(|(rev, e)| *rev >= w.min_rev && w.wants(e))
                    .map(|(_, e)| {
                        let mut e = e.clone();
                        if w.request.prev_kv {
                            e.prev_kv = prev_kv_of(&self.index, &self.backend, &e.kv)?;
                        }
                        Ok(e)
                    })
                    .collect::<Result<_, MvccError>>()?
            };
            // A watcher that starts (or resumed) past this chunk keeps its place.
            w.min_rev = w.min_rev.max(upto + 1);
            let caught_up = upto >= cur;
            if mine.is_empty() {
                self.regroup(id, w, caught_up, report);
                continue;
            }
            let resp = WatchResponse {
                watch_id: id,
                revision: upto,
                events: mine,
                compact_revision: 0,
            };
            match deliver(&w.sender, resp) {
                Delivery::Sent => self.regroup(id, w, caught_up, report),
                Delivery::Full(resp) => {
                    w.pending = Some(resp);
                    self.watchers.victims.insert(id, w);
                }
                Delivery::Closed => {}
            }
        }
        Ok(())
    }

    fn regroup(&mut self, id: WatchId, w: Watcher, caught_up: bool, report: &mut SyncReport) {
        if caught_up {
            report.newly_synced += 1;
            self.watchers.synced.insert(id, w);
        } else {
            self.watchers.unsynced.insert(id, w);
        }
    }

    /// Events of revisions `from..=cur` from the backend, whole revisions only, about
    /// [`MAX_EVENTS_PER_SYNC`] of them; returns them with the last revision covered.
    fn read_events(&self, from: i64, cur: i64) -> Result<(Vec<(i64, Event)>, i64), MvccError> {
        let mut events: Vec<(i64, Event)> = Vec::new();
        let mut upto = cur;
        self.backend.for_each_raw(
            Revision::new(from, 0),
            Revision::new(cur, i64::MAX),
            |k, v| {
                let rev = Revision::from_bytes(k);
                if events.len() >= MAX_EVENTS_PER_SYNC
                    && events.last().is_some_and(|(last, _)| *last != rev.main)
                {
                    upto = rev.main - 1;
                    return Ok(false);
                }
                let rec = Record::decode(v)?;
                let kind = if rec.tombstone {
                    EventType::Delete
                } else {
                    EventType::Put
                };
                events.push((
                    rev.main,
                    Event {
                        kind,
                        kv: rec.kv,
                        prev_kv: None,
                    },
                ));
                Ok(true)
            },
        )?;
        Ok((events, upto))
    }
}

/// The key-value `kv.key` had just before `kv.mod_revision`, if still readable.
fn prev_kv_of(
    index: &TreeIndex,
    backend: &Backend,
    kv: &KeyValue,
) -> Result<Option<KeyValue>, MvccError> {
    let Some(entry) = index.get(&kv.key, kv.mod_revision - 1) else {
        return Ok(None);
    };
    Ok(backend.get(entry.modified)?.map(|r| r.kv))
}

fn compare_kv(c: &Compare, kv: &KeyValue) -> bool {
    let ord = match &c.target {
        CompareTarget::Value(v) => kv.value.as_slice().cmp(v.as_slice()),
        CompareTarget::Create(r) => kv.create_revision.cmp(r),
        CompareTarget::Mod(r) => kv.mod_revision.cmp(r),
        CompareTarget::Version(v) => kv.version.cmp(v),
        CompareTarget::Lease(l) => kv.lease.cmp(l),
    };
    match c.result {
        CompareResult::Equal => ord == Ordering::Equal,
        CompareResult::NotEqual => ord != Ordering::Equal,
        CompareResult::Greater => ord == Ordering::Greater,
        CompareResult::Less => ord == Ordering::Less,
    }
}

/// etcd `isTxnReadonly`: no put or delete anywhere in either branch.
/// Takes the next step of a txn's compare path (see `compare_path`, one entry per txn
/// in depth-first order): whether `req`'s compares held, and the ops of that branch.
fn take_branch<'r>(req: &'r TxnRequest, path: &[bool], at: &mut usize) -> (bool, &'r [RequestOp]) {
    let succeeded = path[*at];
    *at += 1;
    let ops = if succeeded {
        &req.success
    } else {
        &req.failure
    };
    (succeeded, ops)
}

fn txn_is_read_only(req: &TxnRequest) -> bool {
    req.success.iter().chain(&req.failure).all(|op| match op {
        RequestOp::Range(_) => true,
        RequestOp::Put(_) | RequestOp::DeleteRange(_) => false,
        RequestOp::Txn(nested) => txn_is_read_only(nested),
    })
}

/// etcd's API-layer txn checks: keys present, no key written twice on any path.
fn validate_txn(req: &TxnRequest) -> Result<(), MvccError> {
    check_keys(req)?;
    check_intervals(&req.success)?;
    check_intervals(&req.failure)?;
    Ok(())
}

fn check_keys(req: &TxnRequest) -> Result<(), MvccError> {
    for c in &req.compare {
        check_key(&c.key)?;
    }
    for op in req.success.iter().chain(&req.failure) {
        match op {
            RequestOp::Range(r) => check_key(&r.key)?,
            RequestOp::Put(p) => check_key(&p.key)?,
            RequestOp::DeleteRange(d) => check_key(&d.key)?,
            RequestOp::Txn(nested) => check_keys(nested)?,
        }
    }
    Ok(())
}

type Interval = (Vec<u8>, Vec<u8>);

/// etcd `checkIntervals`: returns the puts and deletes of `ops` (nested txns
/// included), failing when a put meets another put or a delete of the same level or
/// below. The two branches of a nested txn may put the same key: only one runs.
fn check_intervals(ops: &[RequestOp]) -> Result<(HashSet<Vec<u8>>, Vec<Interval>), MvccError> {
    let mut dels: Vec<Interval> = ops
        .iter()
        .filter_map(|op| match op {
            RequestOp::DeleteRange(d) => Some((d.key.clone(), d.range_end.clone())),
            _ => None,
        })
        .collect();
    // etcd builds these intervals from the raw range end, so a `\0` end ("from key")
    // is the empty interval `[key, "\0")` here, not "to the end": it conflicts with no
    // put. A client can tell, so the check follows etcd rather than `range_contains`.
    let deleted = |dels: &[Interval], k: &[u8]| {
        dels.iter().any(|(s, e)| {
            if e.is_empty() {
                k == s.as_slice()
            } else {
                k >= s.as_slice() && k < e.as_slice()
            }
        })
    };
    let mut puts: HashSet<Vec<u8>> = HashSet::new();
    for op in ops {
        let RequestOp::Txn(nested) = op else {
            continue;
        };
        let (puts_then, dels_then) = check_intervals(&nested.success)?;
        let (puts_else, dels_else) = check_intervals(&nested.failure)?;
        for k in &puts_then {
            if puts.contains(k) || deleted(&dels, k) {
                return Err(MvccError::DuplicateKey);
            }
        }
        puts.extend(puts_then.iter().cloned());
        for k in puts_else {
            if (puts.contains(&k) && !puts_then.contains(&k)) || deleted(&dels, &k) {
                return Err(MvccError::DuplicateKey);
            }
            puts.insert(k);
        }
        dels.extend(dels_then);
        dels.extend(dels_else);
    }
    for op in ops {
        let RequestOp::Put(p) = op else {
            continue;
        };
        if puts.contains(&p.key) || deleted(&dels, &p.key) {
            return Err(MvccError::DuplicateKey);
        }
        puts.insert(p.key.clone());
    }
    Ok((puts, dels))
}
