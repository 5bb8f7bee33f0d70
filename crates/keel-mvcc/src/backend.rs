//! The redb backend with a batched write path.
//!
//! Writes go to an in-memory pending batch (revision → encoded record) that reads
//! consult before the last committed redb snapshot, like etcd's read buffer of the
//! uncommitted bolt transaction. A commit writes the batch and the meta values in one
//! redb write transaction; it happens when the caller asks (`commit_if_due`,
//! `force_commit`) or when the batch reaches its op limit, which bounds the buffer.
//!
//! Periodic commits (`commit_if_due`, `commit_if_full`) run on a background thread so
//! that the apply loop does not stop for them: with 3,000–6,000 puts in a 100 ms batch a
//! redb commit took 6–16 ms, during which every request waited (it set the put p99 under
//! `keel-bench`). The batch moves from `pending` to `in_flight`, which reads consult
//! between `pending` and the committed snapshot, until the commit finishes and the
//! snapshot is refreshed. One commit is in flight at a time; every synchronous path
//! (`commit`, compaction, snapshot, replace, counts) first waits for it, so their
//! ordering and durability are as before.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redb::{
    Database, ReadOnlyTable, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition,
};

use crate::error::MvccError;
use crate::kv::Record;
use crate::revision::{REVISION_BYTES, Revision};

type RevKey = [u8; REVISION_BYTES];

/// Revision → record table (see the crate docs).
pub(crate) const KEY_TABLE: TableDefinition<&RevKey, &[u8]> = TableDefinition::new("key");
/// Named meta values (see the crate docs).
pub(crate) const META_TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Lease id → lease record, opaque bytes owned by the server (see the crate docs).
pub(crate) const LEASE_TABLE: TableDefinition<&LeaseKey, &[u8]> = TableDefinition::new("lease");

/// A lease id as its 8-byte big-endian key.
pub(crate) type LeaseKey = [u8; 8];

pub(crate) const META_LAYOUT_VERSION: &str = "layout_version";
pub(crate) const META_CONSISTENT_INDEX: &str = "consistent_index";
pub(crate) const META_TERM: &str = "term";
pub(crate) const META_MEMBERSHIP: &str = "membership";
pub(crate) const META_COMPACT_REVISION: &str = "compact_revision";

/// redb's page cache (its default is 1 GiB). Records a read misses come from the
/// kernel's page cache with one `pread`; the key index, which every read consults first,
/// is always in memory. With 1M keys of 256 B the default cache held the whole 332 MiB
/// of used pages, most of the process's resident memory.
pub const CACHE_BYTES: usize = 64 * 1024 * 1024;

/// On-disk layout version stored under `layout_version`.
pub const LAYOUT_VERSION: u32 = 1;

/// When the pending batch is committed to redb.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchConfig {
    /// Longest time changes may stay uncommitted, checked by `commit_if_due`.
    pub batch_interval: Duration,
    /// Changes after which the batch is committed at once (etcd: 10 000).
    pub batch_limit_ops: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            batch_interval: Duration::from_millis(100),
            batch_limit_ops: 10_000,
        }
    }
}

/// Values of the meta table, kept in memory and written with every commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Meta {
    pub consistent_index: u64,
    pub term: u64,
    pub membership: Vec<u8>,
    /// -1 until the first compaction, as in etcd.
    pub compact_revision: i64,
}

impl Default for Meta {
    fn default() -> Self {
        Self {
            consistent_index: 0,
            term: 0,
            membership: Vec::new(),
            compact_revision: -1,
        }
    }
}

/// A batch handed to a commit: records, lease changes and the meta that goes with them.
struct Batch {
    keys: BTreeMap<RevKey, Vec<u8>>,
    leases: BTreeMap<LeaseKey, Option<Vec<u8>>>,
    meta: Meta,
}

/// A batch being committed on the background thread.
struct InFlight {
    batch: Arc<Batch>,
    /// `None` once joined with an error: the batch stays readable, no commit follows.
    handle: Option<JoinHandle<Result<(), MvccError>>>,
}

pub(crate) struct Backend {
    db: Arc<Database>,
    path: PathBuf,
    config: BatchConfig,
    committed: ReadOnlyTable<&'static RevKey, &'static [u8]>,
    pending: BTreeMap<RevKey, Vec<u8>>,
    /// Lease records to write (`Some`) or delete (`None`) with the next commit.
    pending_leases: BTreeMap<LeaseKey, Option<Vec<u8>>>,
    /// The batch the background thread is committing; its revisions are all below
    /// `pending`'s.
    in_flight: Option<InFlight>,
    /// Meta differs from what redb holds.
    meta_dirty: bool,
    last_commit: Option<Instant>,
}

fn u64_meta(bytes: &[u8], name: &str) -> Result<u64, MvccError> {
    let arr: [u8; 8] = bytes
        .try_into()
        .map_err(|_| MvccError::Corrupt(format!("meta {name} is not 8 bytes")))?;
    Ok(u64::from_be_bytes(arr))
}

/// Reads the meta values (defaults for the ones never written).
fn read_meta(table: &impl ReadableTable<&'static str, &'static [u8]>) -> Result<Meta, MvccError> {
    let mut meta = Meta::default();
    let get = |name: &str| -> Result<Option<Vec<u8>>, MvccError> {
        Ok(table
            .get(name)
            .map_err(redb::Error::from)?
            .map(|v| v.value().to_vec()))
    };
    if let Some(v) = get(META_CONSISTENT_INDEX)? {
        meta.consistent_index = u64_meta(&v, META_CONSISTENT_INDEX)?;
    }
    if let Some(v) = get(META_TERM)? {
        meta.term = u64_meta(&v, META_TERM)?;
    }
    if let Some(v) = get(META_MEMBERSHIP)? {
        meta.membership = v;
    }
    if let Some(v) = get(META_COMPACT_REVISION)? {
        let raw = u64_meta(&v, META_COMPACT_REVISION)?;
        meta.compact_revision = i64::from_be_bytes(raw.to_be_bytes());
    }
    Ok(meta)
}

impl Backend {
    /// Opens (or creates) the backend file; returns it with the stored meta.
    pub(crate) fn open(path: &Path, config: BatchConfig) -> Result<(Self, Meta), MvccError> {
        assert!(config.batch_limit_ops > 0, "batch limit must be positive");
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(redb::Error::from)?;
        let txn = db.begin_write().map_err(redb::Error::from)?;
        let meta;
        {
            txn.open_table(KEY_TABLE).map_err(redb::Error::from)?;
            // Files written before leases existed have no lease table: it is created
            // here, empty, without touching the layout version.
            txn.open_table(LEASE_TABLE).map_err(redb::Error::from)?;
            let mut table = txn.open_table(META_TABLE).map_err(redb::Error::from)?;
            let stored = table
                .get(META_LAYOUT_VERSION)
                .map_err(redb::Error::from)?
                .map(|v| v.value().to_vec());
            match stored {
                None => {
                    table
                        .insert(META_LAYOUT_VERSION, &LAYOUT_VERSION.to_be_bytes()[..])
                        .map_err(redb::Error::from)?;
                }
                Some(v) if v == LAYOUT_VERSION.to_be_bytes() => {}
                Some(v) => {
                    return Err(MvccError::Corrupt(format!(
                        "unsupported layout version bytes {v:?}"
                    )));
                }
            }
            meta = read_meta(&table)?;
        }
        txn.commit().map_err(redb::Error::from)?;
        let committed = Self::read_table(&db)?;
        let backend = Self {
            db: Arc::new(db),
            path: path.to_path_buf(),
            config,
            committed,
            pending: BTreeMap::new(),
            pending_leases: BTreeMap::new(),
            in_flight: None,
            meta_dirty: false,
            last_commit: None,
        };
        Ok((backend, meta))
    }

    fn read_table(
        db: &Database,
    ) -> Result<ReadOnlyTable<&'static RevKey, &'static [u8]>, MvccError> {
        let txn = db.begin_read().map_err(redb::Error::from)?;
        Ok(txn.open_table(KEY_TABLE).map_err(redb::Error::from)?)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Adds a record to the pending batch. The caller commits a full batch only between
    /// requests (`commit_if_full`), so a commit never splits a request.
    pub(crate) fn put(&mut self, rev: Revision, record: &Record) {
        let old = self.pending.insert(rev.to_bytes(), record.encode());
        assert!(old.is_none(), "revision {rev} written twice");
        self.meta_dirty = true;
    }

    /// Starts a commit if the batch reached its op limit, after waiting for the one in
    /// flight: a writer faster than the backend is held back here, so at most two
    /// batches are in memory.
    pub(crate) fn commit_if_full(&mut self, meta: &Meta) -> Result<(), MvccError> {
        if self.pending_ops() >= self.config.batch_limit_ops {
            self.wait_in_flight()?;
            self.start_commit(meta);
        }
        Ok(())
    }

    /// Ends the commit in flight, if any, once it has finished; does not wait.
    fn reap_in_flight(&mut self) -> Result<(), MvccError> {
        // A failed commit (no handle left) reports its error again.
        if self
            .in_flight
            .as_ref()
            .is_some_and(|f| f.handle.as_ref().is_none_or(JoinHandle::is_finished))
        {
            self.wait_in_flight()?;
        }
        Ok(())
    }

    /// Waits for the commit in flight, if any, and moves the read snapshot past it.
    fn wait_in_flight(&mut self) -> Result<(), MvccError> {
        let Some(mut f) = self.in_flight.take() else {
            return Ok(());
        };
        let Some(handle) = f.handle.take() else {
            self.in_flight = Some(f);
            return Err(MvccError::Corrupt(
                "an earlier backend commit failed; the store must be reopened".into(),
            ));
        };
        let result = handle
            .join()
            .unwrap_or_else(|_| Err(MvccError::Corrupt("backend commit thread panicked".into())));
        if let Err(e) = result {
            // Memory and disk now differ; the caller drops the store (crate docs). The
            // batch stays readable until then.
            self.in_flight = Some(f);
            return Err(e);
        }
        self.committed = Self::read_table(&self.db)?;
        Ok(())
    }

    /// Moves the pending batch to a background commit (none may be in flight).
    fn start_commit(&mut self, meta: &Meta) {
        assert!(self.in_flight.is_none(), "one backend commit at a time");
        let batch = Arc::new(Batch {
            keys: std::mem::take(&mut self.pending),
            leases: std::mem::take(&mut self.pending_leases),
            meta: meta.clone(),
        });
        self.meta_dirty = false;
        let (db, job) = (Arc::clone(&self.db), Arc::clone(&batch));
        let handle = std::thread::Builder::new()
            .name("keel-backend-commit".into())
            .spawn(move || write_batch(&db, &job.keys, &job.leases, &job.meta, |_| Ok(())))
            .expect("spawning the backend commit thread");
        self.in_flight = Some(InFlight {
            batch,
            handle: Some(handle),
        });
    }

    /// Marks the meta values as changed so that the next commit writes them.
    pub(crate) fn touch_meta(&mut self) {
        self.meta_dirty = true;
    }

    /// Number of changes waiting for a commit.
    pub(crate) fn pending_ops(&self) -> usize {
        self.pending.len() + self.pending_leases.len()
    }

    /// Queues a lease record write (`Some`) or deletion (`None`) for the next commit,
    /// which also carries the key-value changes and consistent index of its entry.
    pub(crate) fn put_lease(&mut self, id: i64, record: Option<Vec<u8>>) {
        self.pending_leases.insert(id.to_be_bytes(), record);
        self.meta_dirty = true;
    }

    /// Every lease record, committed and pending merged, by ascending key bytes.
    pub(crate) fn lease_records(&self) -> Result<Vec<(i64, Vec<u8>)>, MvccError> {
        let mut out: BTreeMap<LeaseKey, Vec<u8>> = BTreeMap::new();
        let txn = self.db.begin_read().map_err(redb::Error::from)?;
        let table = txn.open_table(LEASE_TABLE).map_err(redb::Error::from)?;
        for entry in table.iter().map_err(redb::Error::from)? {
            let (k, v) = entry.map_err(redb::Error::from)?;
            out.insert(*k.value(), v.value().to_vec());
        }
        let in_flight = self.in_flight.as_ref().map(|f| &f.batch.leases);
        for (k, v) in in_flight.into_iter().flatten().chain(&self.pending_leases) {
            match v {
                Some(v) => out.insert(*k, v.clone()),
                None => out.remove(k),
            };
        }
        Ok(out
            .into_iter()
            .map(|(k, v)| (i64::from_be_bytes(k), v))
            .collect())
    }

    pub(crate) fn get(&self, rev: Revision) -> Result<Option<Record>, MvccError> {
        let key = rev.to_bytes();
        let in_flight = self.in_flight.as_ref().map(|f| &f.batch.keys);
        if let Some(bytes) = self
            .pending
            .get(&key)
            .or_else(|| in_flight.and_then(|k| k.get(&key)))
        {
            return Record::decode(bytes).map(Some);
        }
        match self.committed.get(&key).map_err(redb::Error::from)? {
            Some(guard) => Record::decode(guard.value()).map(Some),
            None => Ok(None),
        }
    }

    /// Calls `f` with every raw (revision key, record bytes) in `[from, to]`, in
    /// revision order, committed and pending merged; stops when `f` returns `false`.
    pub(crate) fn for_each_raw(
        &self,
        from: Revision,
        to: Revision,
        mut f: impl FnMut(&RevKey, &[u8]) -> Result<bool, MvccError>,
    ) -> Result<(), MvccError> {
        let (lo, hi) = (from.to_bytes(), to.to_bytes());
        let mut committed = self
            .committed
            .range::<&RevKey>(&lo..=&hi)
            .map_err(redb::Error::from)?
            .peekable();
        let bounds = (Bound::Included(lo), Bound::Included(hi));
        let in_flight = self
            .in_flight
            .as_ref()
            .into_iter()
            .flat_map(|f| f.batch.keys.range::<RevKey, _>(bounds));
        let mut pending = in_flight
            .chain(self.pending.range::<RevKey, _>(bounds))
            .peekable();
        loop {
            let take_committed = match (committed.peek(), pending.peek()) {
                (None, None) => return Ok(()),
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some(Ok((ck, _))), Some((pk, _))) => {
                    assert_ne!(ck.value(), *pk, "a revision both committed and pending");
                    ck.value() < *pk
                }
                (Some(Err(_)), Some(_)) => true,
            };
            let more = if take_committed {
                let (k, v) = committed
                    .next()
                    .expect("peeked")
                    .map_err(redb::Error::from)?;
                f(k.value(), v.value())?
            } else {
                let (k, v) = pending.next().expect("peeked");
                f(k, v)?
            };
            if !more {
                return Ok(());
            }
        }
    }

    /// Commits when the batch is full or `batch_interval` has passed since the last
    /// commit; returns whether it committed.
    pub(crate) fn commit_if_due(&mut self, now: Instant, meta: &Meta) -> Result<bool, MvccError> {
        let dirty = self.meta_dirty || self.pending_ops() > 0;
        let due = match self.last_commit {
            None => true,
            Some(at) => now.saturating_duration_since(at) >= self.config.batch_interval,
        };
        self.reap_in_flight()?;
        if dirty && (due || self.pending_ops() >= self.config.batch_limit_ops) {
            if self.in_flight.is_some() {
                // The previous commit is still running: this batch waits for the next
                // call rather than stopping the caller.
                return Ok(false);
            }
            self.start_commit(meta);
            self.last_commit = Some(now);
            return Ok(true);
        }
        Ok(false)
    }

    /// Writes the pending batch and `meta` in one redb transaction.
    pub(crate) fn commit(&mut self, meta: &Meta) -> Result<(), MvccError> {
        self.commit_with(meta, |_| Ok(()))
    }

    /// Commits the batch, `meta` and whatever `extra` does in the same transaction.
    pub(crate) fn commit_with(
        &mut self,
        meta: &Meta,
        extra: impl FnOnce(&mut redb::Table<&RevKey, &[u8]>) -> Result<(), MvccError>,
    ) -> Result<(), MvccError> {
        self.wait_in_flight()?;
        write_batch(&self.db, &self.pending, &self.pending_leases, meta, extra)?;
        self.pending.clear();
        self.pending_leases.clear();
        self.meta_dirty = false;
        self.committed = Self::read_table(&self.db)?;
        Ok(())
    }

    /// Deletes every revision at or below `at` that is not in `keep`, in the same redb
    /// transaction as the pending batch and the meta recording the new compaction point,
    /// so a compaction is on disk entirely or not at all.
    pub(crate) fn compact(
        &mut self,
        at: i64,
        keep: &std::collections::HashSet<Revision>,
        meta: &Meta,
    ) -> Result<(), MvccError> {
        let hi = Revision::new(at, i64::MAX).to_bytes();
        self.commit_with(meta, |keys| {
            keys.retain_in::<&RevKey, _>(..=&hi, |k, _| keep.contains(&Revision::from_bytes(k)))
                .map_err(redb::Error::from)?;
            Ok(())
        })
    }

    /// Copies the committed state into a new redb file at `dest` (which must not
    /// exist); writers are not blocked because it reads one redb snapshot.
    pub(crate) fn snapshot_to(&mut self, dest: &Path) -> Result<(), MvccError> {
        self.wait_in_flight()?;
        // redb opens an existing file as a database: copying into it would merge two
        // stores. Claiming the name first fails with `AlreadyExists` instead; redb then
        // initialises the empty file.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dest)?;
        let read = self.db.begin_read().map_err(redb::Error::from)?;
        let out = Database::builder()
            .create(dest)
            .map_err(redb::Error::from)?;
        let txn = out.begin_write().map_err(redb::Error::from)?;
        {
            let src = read.open_table(KEY_TABLE).map_err(redb::Error::from)?;
            let mut dst = txn.open_table(KEY_TABLE).map_err(redb::Error::from)?;
            for entry in src.iter().map_err(redb::Error::from)? {
                let (k, v) = entry.map_err(redb::Error::from)?;
                dst.insert(k.value(), v.value())
                    .map_err(redb::Error::from)?;
            }
            let src = read.open_table(LEASE_TABLE).map_err(redb::Error::from)?;
            let mut dst = txn.open_table(LEASE_TABLE).map_err(redb::Error::from)?;
            for entry in src.iter().map_err(redb::Error::from)? {
                let (k, v) = entry.map_err(redb::Error::from)?;
                dst.insert(k.value(), v.value())
                    .map_err(redb::Error::from)?;
            }
            let src = read.open_table(META_TABLE).map_err(redb::Error::from)?;
            let mut dst = txn.open_table(META_TABLE).map_err(redb::Error::from)?;
            for entry in src.iter().map_err(redb::Error::from)? {
                let (k, v) = entry.map_err(redb::Error::from)?;
                dst.insert(k.value(), v.value())
                    .map_err(redb::Error::from)?;
            }
        }
        txn.commit().map_err(redb::Error::from)?;
        Ok(())
    }

    /// Replaces the whole content (pending batch included) with the snapshot file
    /// `snapshot`, in one redb transaction; returns the snapshot's meta.
    pub(crate) fn replace_with(&mut self, snapshot: &Path) -> Result<Meta, MvccError> {
        self.wait_in_flight()?;
        let src = redb::ReadOnlyDatabase::open(snapshot).map_err(redb::Error::from)?;
        let read = src.begin_read().map_err(redb::Error::from)?;
        let src_meta = read.open_table(META_TABLE).map_err(redb::Error::from)?;
        let version = src_meta
            .get(META_LAYOUT_VERSION)
            .map_err(redb::Error::from)?
            .map(|v| v.value().to_vec());
        if version.as_deref() != Some(&LAYOUT_VERSION.to_be_bytes()[..]) {
            return Err(MvccError::Corrupt(format!(
                "snapshot layout version bytes {version:?}, expected {LAYOUT_VERSION}"
            )));
        }
        let meta = read_meta(&src_meta)?;
        let src_keys = read.open_table(KEY_TABLE).map_err(redb::Error::from)?;
        let txn = self.db.begin_write().map_err(redb::Error::from)?;
        {
            let mut keys = txn.open_table(KEY_TABLE).map_err(redb::Error::from)?;
            keys.retain(|_, _| false).map_err(redb::Error::from)?;
            for entry in src_keys.iter().map_err(redb::Error::from)? {
                let (k, v) = entry.map_err(redb::Error::from)?;
                keys.insert(k.value(), v.value())
                    .map_err(redb::Error::from)?;
            }
            let mut leases = txn.open_table(LEASE_TABLE).map_err(redb::Error::from)?;
            leases.retain(|_, _| false).map_err(redb::Error::from)?;
            // A snapshot written before leases existed has no lease table: no leases.
            match read.open_table(LEASE_TABLE) {
                Ok(src_leases) => {
                    for entry in src_leases.iter().map_err(redb::Error::from)? {
                        let (k, v) = entry.map_err(redb::Error::from)?;
                        leases
                            .insert(k.value(), v.value())
                            .map_err(redb::Error::from)?;
                    }
                }
                Err(redb::TableError::TableDoesNotExist(_)) => {}
                Err(e) => return Err(redb::Error::from(e).into()),
            }
            let mut table = txn.open_table(META_TABLE).map_err(redb::Error::from)?;
            table.retain(|_, _| false).map_err(redb::Error::from)?;
            for entry in src_meta.iter().map_err(redb::Error::from)? {
                let (k, v) = entry.map_err(redb::Error::from)?;
                table
                    .insert(k.value(), v.value())
                    .map_err(redb::Error::from)?;
            }
        }
        txn.commit().map_err(redb::Error::from)?;
        self.pending.clear();
        self.pending_leases.clear();
        self.meta_dirty = false;
        self.committed = Self::read_table(&self.db)?;
        Ok(meta)
    }

    /// Number of committed records.
    pub(crate) fn committed_len(&mut self) -> Result<u64, MvccError> {
        self.wait_in_flight()?;
        Ok(self.committed.len().map_err(redb::Error::from)?)
    }

    /// Size of the backend file in bytes.
    pub(crate) fn size_bytes(&self) -> Result<u64, MvccError> {
        Ok(std::fs::metadata(&self.path)?.len())
    }

    /// Bytes of the file in allocated pages (etcd's "size in use").
    /// (A commit in flight holds redb's write lock: `begin_write` waits for it.)
    pub(crate) fn size_in_use_bytes(&self) -> Result<u64, MvccError> {
        let txn = self.db.begin_write().map_err(redb::Error::from)?;
        let stats = txn.stats().map_err(redb::Error::from)?;
        txn.abort().map_err(redb::Error::from)?;
        let page = u64::try_from(stats.page_size()).expect("page size fits u64");
        Ok(stats.allocated_pages() * page)
    }
}

impl Drop for Backend {
    /// A commit in flight finishes before the file can be opened again.
    fn drop(&mut self) {
        if let Some(handle) = self.in_flight.take().and_then(|f| f.handle)
            && let Ok(Err(e)) = handle.join()
        {
            tracing::warn!(error = %e, "backend commit failed while closing; the WAL replays it");
        }
    }
}

/// Writes `keys`, `leases`, `meta` and whatever `extra` does in one redb transaction.
fn write_batch(
    db: &Database,
    keys: &BTreeMap<RevKey, Vec<u8>>,
    leases: &BTreeMap<LeaseKey, Option<Vec<u8>>>,
    meta: &Meta,
    extra: impl FnOnce(&mut redb::Table<&RevKey, &[u8]>) -> Result<(), MvccError>,
) -> Result<(), MvccError> {
    let txn = db.begin_write().map_err(redb::Error::from)?;
    {
        let mut table = txn.open_table(KEY_TABLE).map_err(redb::Error::from)?;
        for (k, v) in keys {
            table.insert(k, v.as_slice()).map_err(redb::Error::from)?;
        }
        extra(&mut table)?;
        let mut table = txn.open_table(LEASE_TABLE).map_err(redb::Error::from)?;
        for (k, v) in leases {
            match v {
                Some(v) => table.insert(k, v.as_slice()),
                None => table.remove(k),
            }
            .map_err(redb::Error::from)?;
        }
        let mut table = txn.open_table(META_TABLE).map_err(redb::Error::from)?;
        for (name, value) in [
            (
                META_CONSISTENT_INDEX,
                &meta.consistent_index.to_be_bytes()[..],
            ),
            (META_TERM, &meta.term.to_be_bytes()[..]),
            (META_MEMBERSHIP, meta.membership.as_slice()),
            (
                META_COMPACT_REVISION,
                &meta.compact_revision.to_be_bytes()[..],
            ),
        ] {
            table.insert(name, value).map_err(redb::Error::from)?;
        }
    }
    txn.commit().map_err(redb::Error::from)?;
    Ok(())
}
