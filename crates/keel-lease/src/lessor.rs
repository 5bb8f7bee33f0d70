//! The lessor: the replicated lease table plus, on the primary, the timers that
//! decide expiry and checkpoints. See the crate docs for the model and its bound.

use std::collections::{BTreeMap, BTreeSet};

use crate::{
    LeaseError, LeaseId, LeaseRecord, LessorConfig, LessorStats, MAX_LEASE_TTL_SECS, RestoreError,
};

const MS_PER_SEC: u64 = 1000;

/// One lease's remaining TTL, as the primary proposes it through Raft and every
/// member applies it (etcd `LeaseCheckpoint`). `remaining_ttl_secs == 0` clears the
/// checkpoint: the lease is back to its full TTL (what a renew does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// The lease.
    pub id: LeaseId,
    /// Remaining TTL in whole seconds, rounded up; 0 for "full TTL".
    pub remaining_ttl_secs: i64,
}

/// What [`Lessor::apply_revoke`] removed: the server deletes `keys` (sorted
/// bytewise, so every member deletes in the same order) in the revoke's single
/// revision and deletes the lease's record, in one backend transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    /// The revoked lease.
    pub id: LeaseId,
    /// Keys that were attached, ascending.
    pub keys: Vec<Vec<u8>>,
}

/// A successful [`Lessor::renew`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Renewed {
    /// The lease's granted TTL, the `TTL` of etcd's `LeaseKeepAliveResponse`.
    pub ttl_secs: i64,
    /// A checkpoint clearing the lease's stale remaining TTL, when one is recorded or
    /// in flight. The server must propose it and should answer the keep-alive only
    /// once it is applied: until then a new leader would resume the lease from the
    /// stale, shorter remaining TTL (etcd answers before, and lives with that window).
    /// "In flight" is counted per lease: a checkpoint proposal that is lost within a
    /// term (not applied, no leader change) makes each later renewal of that lease
    /// carry a clearing checkpoint until the next promotion. That costs Raft entries,
    /// never correctness.
    pub checkpoint: Option<Checkpoint>,
}

/// Answer to etcd's `LeaseTimeToLive`, from the primary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeToLive {
    /// The lease.
    pub id: LeaseId,
    /// The granted TTL in seconds.
    pub granted_ttl_secs: i64,
    /// Whole seconds left before the primary reports it expired (truncated, as etcd
    /// does); 0 once expired and awaiting its revoke. May exceed the granted TTL just
    /// after a leader change, by the promotion's extension.
    pub ttl_secs: i64,
    /// Attached keys, ascending; empty unless asked for.
    pub keys: Vec<Vec<u8>>,
}

/// Replicated state of one lease: identical on every member that applied the same
/// entries.
#[derive(Debug)]
struct Lease {
    ttl_secs: i64,
    /// Last applied checkpoint, 0 for none (full TTL). Always in `0..=ttl_secs`.
    remaining_ttl_secs: i64,
    keys: BTreeSet<Vec<u8>>,
}

impl Lease {
    fn record(&self, id: LeaseId) -> LeaseRecord {
        LeaseRecord {
            id,
            ttl_secs: self.ttl_secs,
            remaining_ttl_secs: self.remaining_ttl_secs,
        }
    }

    /// What a new primary resumes the lease from: the checkpoint if any, never more
    /// than granted.
    fn resume_ttl_secs(&self) -> i64 {
        if self.remaining_ttl_secs > 0 {
            self.remaining_ttl_secs.min(self.ttl_secs)
        } else {
            self.ttl_secs
        }
    }
}

/// The primary's clock-driven state for one lease. Not replicated: a member that is
/// not primary has none.
#[derive(Debug, Clone, Copy)]
struct Timers {
    /// When the lease expires on this primary.
    expiry_ms: u64,
    /// When `find_expired` next reports it: `expiry_ms`, then pushed back by the retry
    /// interval each time it is reported. Its key in `expiry_queue`.
    report_at_ms: u64,
    /// When the next checkpoint is due, if one is needed before expiry. Its key in
    /// `checkpoint_queue`.
    checkpoint_due_ms: Option<u64>,
    /// Checkpoints this primary emitted for the lease and has not yet seen applied.
    checkpoints_in_flight: u32,
}

/// Refills continuously at `rate_per_sec`, holding at most `capacity` tokens. Kept
/// in thousandths of a token so integer maths is exact for whole milliseconds.
#[derive(Debug)]
struct TokenBucket {
    milli_tokens: u64,
    capacity_milli: u64,
    rate_per_sec: u64,
    last_ms: u64,
}

impl TokenBucket {
    fn full(rate_per_sec: u32, now_ms: u64) -> Self {
        let capacity = u64::from(rate_per_sec / 2).max(1);
        let capacity_milli = capacity * MS_PER_SEC;
        Self {
            milli_tokens: capacity_milli,
            capacity_milli,
            rate_per_sec: u64::from(rate_per_sec),
            last_ms: now_ms,
        }
    }

    fn available(&mut self, now_ms: u64) -> u64 {
        let elapsed_ms = now_ms.saturating_sub(self.last_ms);
        self.last_ms = self.last_ms.max(now_ms);
        // rate_per_sec tokens per 1000 ms = rate_per_sec milli-tokens per ms.
        let refill = elapsed_ms.saturating_mul(self.rate_per_sec);
        self.milli_tokens = self
            .milli_tokens
            .saturating_add(refill)
            .min(self.capacity_milli);
        self.milli_tokens / MS_PER_SEC
    }

    fn take(&mut self, tokens: u64) {
        let milli = tokens * MS_PER_SEC;
        assert!(
            milli <= self.milli_tokens,
            "took {tokens} tokens with {} milli-tokens left",
            self.milli_tokens
        );
        self.milli_tokens -= milli;
    }
}

/// Everything only the primary lessor has. Dropped on demote.
#[derive(Debug)]
struct Primary {
    timers: BTreeMap<LeaseId, Timers>,
    /// `(report_at_ms, id)` for every lease: exactly one entry per lease.
    expiry_queue: BTreeSet<(u64, LeaseId)>,
    /// `(checkpoint_due_ms, id)` for leases with a checkpoint due.
    checkpoint_queue: BTreeSet<(u64, LeaseId)>,
    revoke_bucket: TokenBucket,
}

impl Primary {
    /// Starts a new expiry period for `id` ending at `expiry_ms`, whose remaining TTL
    /// as last recorded (or about to be) corresponds to time `base_ms`; the next
    /// checkpoint is due one interval after it, if the lease is still alive then.
    fn arm(&mut self, id: LeaseId, expiry_ms: u64, base_ms: u64, checkpoint_interval_ms: u64) {
        let in_flight = self.disarm(id).map_or(0, |t| t.checkpoints_in_flight);
        let due = base_ms.saturating_add(checkpoint_interval_ms);
        let checkpoint_due_ms = (due < expiry_ms).then_some(due);
        let timers = Timers {
            expiry_ms,
            report_at_ms: expiry_ms,
            checkpoint_due_ms,
            checkpoints_in_flight: in_flight,
        };
        self.expiry_queue.insert((expiry_ms, id));
        if let Some(due) = checkpoint_due_ms {
            self.checkpoint_queue.insert((due, id));
        }
        self.timers.insert(id, timers);
    }

    fn disarm(&mut self, id: LeaseId) -> Option<Timers> {
        let timers = self.timers.remove(&id)?;
        let removed = self.expiry_queue.remove(&(timers.report_at_ms, id));
        assert!(removed, "lease {id} had timers but no expiry queue entry");
        if let Some(due) = timers.checkpoint_due_ms {
            let removed = self.checkpoint_queue.remove(&(due, id));
            assert!(
                removed,
                "lease {id} had a checkpoint due at {due} but no queue entry"
            );
        }
        Some(timers)
    }
}

/// The lease table of one member. See the crate docs.
#[derive(Debug)]
pub struct Lessor {
    config: LessorConfig,
    leases: BTreeMap<LeaseId, Lease>,
    /// Which lease each attached key belongs to; the inverse of every `Lease::keys`.
    key_owner: BTreeMap<Vec<u8>, LeaseId>,
    primary: Option<Primary>,
    last_now_ms: u64,
    stats: LessorStats,
}

impl Lessor {
    /// An empty lessor that is not primary. Panics on an invalid configuration.
    #[must_use]
    pub fn new(config: LessorConfig) -> Self {
        config.assert_valid();
        Self {
            config,
            leases: BTreeMap::new(),
            key_owner: BTreeMap::new(),
            primary: None,
            last_now_ms: 0,
            stats: LessorStats::default(),
        }
    }

    /// The configuration this lessor runs with.
    #[must_use]
    pub fn config(&self) -> &LessorConfig {
        &self.config
    }

    /// Counters for the server's metrics.
    #[must_use]
    pub fn stats(&self) -> LessorStats {
        self.stats
    }

    /// Whether this member is the primary lessor (the Raft leader that has applied
    /// its predecessors' entries).
    #[must_use]
    pub fn is_primary(&self) -> bool {
        self.primary.is_some()
    }

    /// Number of leases.
    #[must_use]
    pub fn len(&self) -> usize {
        self.leases.len()
    }

    /// Whether there are no leases.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.leases.is_empty()
    }

    fn observe(&mut self, now_ms: u64) {
        assert!(
            now_ms >= self.last_now_ms,
            "the lessor's clock must be monotonic: {now_ms} ms after {} ms",
            self.last_now_ms
        );
        self.last_now_ms = now_ms;
    }

    // ----- replicated operations: same input, same result on every member -----

    /// Applies a committed `LeaseGrant`. `id` is what the entry carries (0 is refused
    /// as etcd's applier does); a TTL below the minimum is raised to it. Returns the
    /// record to store. On the primary, the lease starts expiring at `now_ms`.
    pub fn apply_grant(
        &mut self,
        id: i64,
        ttl_secs: i64,
        now_ms: u64,
    ) -> Result<LeaseRecord, LeaseError> {
        self.observe(now_ms);
        let id = LeaseId::new(id).ok_or(LeaseError::NotFound)?;
        if ttl_secs > MAX_LEASE_TTL_SECS {
            return Err(LeaseError::TtlTooLarge);
        }
        if self.leases.contains_key(&id) {
            return Err(LeaseError::AlreadyExists);
        }
        if self.leases.len() >= self.config.max_leases {
            return Err(LeaseError::TooManyLeases {
                limit: self.config.max_leases,
            });
        }
        let ttl_secs = ttl_secs.max(self.config.min_ttl_secs);
        let lease = Lease {
            ttl_secs,
            remaining_ttl_secs: 0,
            keys: BTreeSet::new(),
        };
        let record = lease.record(id);
        self.leases.insert(id, lease);
        let interval = self.config.checkpoint_interval_ms;
        if let Some(primary) = &mut self.primary {
            primary.arm(
                id,
                now_ms.saturating_add(secs_to_ms(ttl_secs)),
                now_ms,
                interval,
            );
        }
        self.stats.granted_total += 1;
        Ok(record)
    }

    /// Applies a committed `LeaseRevoke` (a client's, or one the primary proposed for
    /// an expired lease). Detaches and returns the keys; the server deletes them and
    /// the lease's record ([`LeaseRecord::key`]) in the same transaction.
    pub fn apply_revoke(&mut self, id: i64) -> Result<Revoked, LeaseError> {
        let id = LeaseId::new(id).ok_or(LeaseError::NotFound)?;
        let lease = self.leases.remove(&id).ok_or(LeaseError::NotFound)?;
        for key in &lease.keys {
            let owner = self.key_owner.remove(key);
            assert_eq!(
                owner,
                Some(id),
                "key attached to lease {id} was owned by {owner:?}"
            );
        }
        if let Some(primary) = &mut self.primary {
            let timers = primary.disarm(id);
            assert!(
                timers.is_some(),
                "the primary had no timers for live lease {id}"
            );
        }
        self.stats.revoked_total += 1;
        Ok(Revoked {
            id,
            keys: lease.keys.into_iter().collect(),
        })
    }

    /// Applies a committed `LeaseCheckpoint` batch: records each lease's remaining TTL
    /// (clamped to `0..=ttl`; 0 clears it). Unknown ids are skipped, as in etcd: the
    /// lease was revoked after the checkpoint was proposed. Returns the records to
    /// store, in batch order. Expiry on the primary is not changed: checkpoints only
    /// matter to the next primary.
    pub fn apply_checkpoint(&mut self, checkpoints: &[Checkpoint]) -> Vec<LeaseRecord> {
        let mut changed = Vec::with_capacity(checkpoints.len());
        for cp in checkpoints {
            let Some(lease) = self.leases.get_mut(&cp.id) else {
                continue;
            };
            lease.remaining_ttl_secs = cp.remaining_ttl_secs.clamp(0, lease.ttl_secs);
            changed.push(lease.record(cp.id));
            if let Some(timers) = self.primary.as_mut().and_then(|p| p.timers.get_mut(&cp.id)) {
                timers.checkpoints_in_flight = timers.checkpoints_in_flight.saturating_sub(1);
            }
        }
        changed
    }

    /// Attaches `key` to lease `id` (a put with that lease), moving it from the lease
    /// it was attached to, which is returned. Also used when the key-value store is
    /// reloaded, to reattach every key to its lease.
    pub fn attach(&mut self, id: LeaseId, key: &[u8]) -> Result<Option<LeaseId>, LeaseError> {
        let lease = self.leases.get_mut(&id).ok_or(LeaseError::NotFound)?;
        lease.keys.insert(key.to_vec());
        let previous = self.key_owner.insert(key.to_vec(), id);
        match previous {
            Some(old) if old != id => {
                let removed = self
                    .leases
                    .get_mut(&old)
                    .is_some_and(|l| l.keys.remove(key));
                assert!(removed, "key owned by lease {old} was not in its key set");
                Ok(Some(old))
            }
            _ => Ok(None),
        }
    }

    /// Detaches `key` from its lease (the key was deleted, or overwritten without a
    /// lease). Returns the lease it belonged to, if any.
    pub fn detach(&mut self, key: &[u8]) -> Option<LeaseId> {
        let id = self.key_owner.remove(key)?;
        let removed = self.leases.get_mut(&id).is_some_and(|l| l.keys.remove(key));
        assert!(removed, "key owned by lease {id} was not in its key set");
        Some(id)
    }

    /// Replaces the whole table with persisted records (start-up, or a snapshot from
    /// the leader) and leaves the lessor not primary: the server promotes it again if
    /// it leads. TTLs below the minimum are raised to it, as etcd does. Keys are
    /// reattached afterwards with [`Lessor::attach`].
    pub fn restore(
        &mut self,
        records: impl IntoIterator<Item = LeaseRecord>,
    ) -> Result<(), RestoreError> {
        self.leases.clear();
        self.key_owner.clear();
        self.primary = None;
        for r in records {
            if self.leases.len() >= self.config.max_leases {
                self.leases.clear();
                return Err(RestoreError::TooMany {
                    limit: self.config.max_leases,
                });
            }
            let ttl_secs = r.ttl_secs.max(self.config.min_ttl_secs);
            let lease = Lease {
                ttl_secs,
                remaining_ttl_secs: r.remaining_ttl_secs.clamp(0, ttl_secs),
                keys: BTreeSet::new(),
            };
            if self.leases.insert(r.id, lease).is_some() {
                self.leases.clear();
                return Err(RestoreError::Duplicate(r.id));
            }
        }
        Ok(())
    }

    // ----- reads of replicated state: any member -----

    /// The lease's durable state, if it exists.
    #[must_use]
    pub fn get(&self, id: LeaseId) -> Option<LeaseRecord> {
        self.leases.get(&id).map(|l| l.record(id))
    }

    /// All leases' durable state, by id (for a full write of the lease table).
    pub fn records(&self) -> impl Iterator<Item = LeaseRecord> + '_ {
        self.leases.iter().map(|(id, l)| l.record(*id))
    }

    /// All lease ids, ascending (etcd's `LeaseLeases`).
    #[must_use]
    pub fn leases(&self) -> Vec<LeaseId> {
        self.leases.keys().copied().collect()
    }

    /// The keys attached to a lease, ascending.
    pub fn keys(&self, id: LeaseId) -> Option<impl Iterator<Item = &[u8]> + '_> {
        self.leases
            .get(&id)
            .map(|l| l.keys.iter().map(Vec::as_slice))
    }

    /// The lease `key` is attached to.
    #[must_use]
    pub fn lease_of(&self, key: &[u8]) -> Option<LeaseId> {
        self.key_owner.get(key).copied()
    }

    // ----- leadership -----

    /// Makes this member the primary lessor, at `now_ms`, extending every lease by
    /// `extend_ms` (etcd passes the election timeout). Call it once the new leader has
    /// applied every entry of earlier terms, so all checkpoints proposed by the old
    /// primary are in. Each lease resumes from its checkpointed remaining TTL (never
    /// more than granted), or its full TTL without one.
    pub fn promote(&mut self, now_ms: u64, extend_ms: u64) {
        self.observe(now_ms);
        let mut primary = Primary {
            timers: BTreeMap::new(),
            expiry_queue: BTreeSet::new(),
            checkpoint_queue: BTreeSet::new(),
            revoke_bucket: TokenBucket::full(self.config.revoke_rate_per_sec, now_ms),
        };
        let start_ms = now_ms.saturating_add(extend_ms);
        for (id, lease) in &self.leases {
            let expiry_ms = start_ms.saturating_add(secs_to_ms(lease.resume_ttl_secs()));
            primary.arm(*id, expiry_ms, start_ms, self.config.checkpoint_interval_ms);
        }
        self.primary = Some(primary);
        tracing::info!(
            leases = self.leases.len(),
            extend_ms,
            "lessor promoted to primary"
        );
    }

    /// Stops being primary: no lease expires here any more, and renewals are refused.
    pub fn demote(&mut self) {
        if self.primary.is_some() {
            tracing::info!(leases = self.leases.len(), "lessor demoted");
        }
        self.primary = None;
    }

    // ----- primary only -----

    /// Renews lease `id` at `now_ms` (a keep-alive) and returns its TTL. Only the
    /// primary renews; an expired lease awaiting its revoke cannot be renewed.
    pub fn renew(&mut self, id: LeaseId, now_ms: u64) -> Result<Renewed, LeaseError> {
        self.observe(now_ms);
        let interval = self.config.checkpoint_interval_ms;
        let primary = self.primary.as_mut().ok_or(LeaseError::NotPrimary)?;
        let lease = self.leases.get(&id).ok_or(LeaseError::NotFound)?;
        let timers = *primary
            .timers
            .get(&id)
            .expect("the primary arms a timer for every lease");
        if timers.expiry_ms <= now_ms {
            return Err(LeaseError::Expired(id));
        }
        primary.arm(
            id,
            now_ms.saturating_add(secs_to_ms(lease.ttl_secs)),
            now_ms,
            interval,
        );
        let checkpoint = if lease.remaining_ttl_secs != 0 || timers.checkpoints_in_flight > 0 {
            let t = primary.timers.get_mut(&id).expect("armed just above");
            t.checkpoints_in_flight = t.checkpoints_in_flight.saturating_add(1);
            self.stats.checkpoints_emitted_total += 1;
            Some(Checkpoint {
                id,
                remaining_ttl_secs: 0,
            })
        } else {
            None
        };
        self.stats.renewed_total += 1;
        Ok(Renewed {
            ttl_secs: lease.ttl_secs,
            checkpoint,
        })
    }

    /// etcd's `LeaseTimeToLive`, answered by the primary (others forward).
    pub fn time_to_live(
        &mut self,
        id: LeaseId,
        now_ms: u64,
        with_keys: bool,
    ) -> Result<TimeToLive, LeaseError> {
        self.observe(now_ms);
        let primary = self.primary.as_ref().ok_or(LeaseError::NotPrimary)?;
        let lease = self.leases.get(&id).ok_or(LeaseError::NotFound)?;
        let timers = primary
            .timers
            .get(&id)
            .expect("the primary arms a timer for every lease");
        let left_ms = timers.expiry_ms.saturating_sub(now_ms);
        let ttl_secs = i64::try_from(left_ms / MS_PER_SEC).unwrap_or(i64::MAX);
        let keys = if with_keys {
            lease.keys.iter().cloned().collect()
        } else {
            Vec::new()
        };
        Ok(TimeToLive {
            id,
            granted_ttl_secs: lease.ttl_secs,
            ttl_secs,
            keys,
        })
    }

    /// Leases whose expiry has passed, earliest first, for the server to propose
    /// revokes for. At most `limit`, [`LessorConfig::max_expired_per_call`], and what
    /// the revoke rate allows. A reported lease is reported again after
    /// [`LessorConfig::expired_retry_interval_ms`] if its revoke has not applied by
    /// then. Empty on a member that is not primary: only the leader expires leases.
    pub fn find_expired(&mut self, now_ms: u64, limit: usize) -> Vec<LeaseId> {
        self.observe(now_ms);
        let retry_ms = self.config.expired_retry_interval_ms;
        let cap = limit.min(self.config.max_expired_per_call);
        let Some(primary) = &mut self.primary else {
            return Vec::new();
        };
        let allowed =
            usize::try_from(primary.revoke_bucket.available(now_ms)).unwrap_or(usize::MAX);
        let cap = cap.min(allowed);
        let mut expired = Vec::new();
        while expired.len() < cap {
            let Some(&(report_at_ms, id)) = primary.expiry_queue.first() else {
                break;
            };
            if report_at_ms > now_ms {
                break;
            }
            primary.expiry_queue.pop_first();
            let next = now_ms.saturating_add(retry_ms);
            primary.expiry_queue.insert((next, id));
            let timers = primary
                .timers
                .get_mut(&id)
                .expect("every queued lease has timers");
            timers.report_at_ms = next;
            expired.push(id);
            self.stats.expired_reported_total += 1;
        }
        primary.revoke_bucket.take(expired.len() as u64);
        if !expired.is_empty() {
            tracing::debug!(count = expired.len(), now_ms, "expired leases to revoke");
        }
        expired
    }

    /// Checkpoints due at `now_ms`, at most [`LessorConfig::max_checkpoint_batch`]:
    /// one batch for the server to propose as one `LeaseCheckpoint` entry. Call it
    /// again while it returns a full batch. Empty on a member that is not primary.
    pub fn due_checkpoints(&mut self, now_ms: u64) -> Vec<Checkpoint> {
        self.observe(now_ms);
        let interval = self.config.checkpoint_interval_ms;
        let max = self.config.max_checkpoint_batch;
        let Some(primary) = &mut self.primary else {
            return Vec::new();
        };
        let mut batch = Vec::new();
        while batch.len() < max {
            let Some(&(due_ms, id)) = primary.checkpoint_queue.first() else {
                break;
            };
            if due_ms > now_ms {
                break;
            }
            primary.checkpoint_queue.pop_first();
            let timers = primary
                .timers
                .get_mut(&id)
                .expect("every queued lease has timers");
            timers.checkpoint_due_ms = None;
            if timers.expiry_ms <= now_ms {
                // Expired: its revoke is what matters now.
                continue;
            }
            let ttl_secs = self
                .leases
                .get(&id)
                .expect("every timer belongs to a lease")
                .ttl_secs;
            let left_secs =
                i64::try_from((timers.expiry_ms - now_ms).div_ceil(MS_PER_SEC)).unwrap_or(i64::MAX);
            let remaining_ttl_secs = left_secs.min(ttl_secs);
            // The checkpoint states the remaining TTL as of `base`, at or before now
            // (rounding up to whole seconds moves it earlier); the next one is due an
            // interval after that, so no lease goes longer than one interval between
            // the time its recorded remaining TTL describes and the next.
            let base_ms = timers.expiry_ms - secs_to_ms(remaining_ttl_secs);
            let next = base_ms.saturating_add(interval);
            assert!(
                next > now_ms,
                "a checkpoint interval of at least 1 s always schedules ahead"
            );
            if next < timers.expiry_ms {
                timers.checkpoint_due_ms = Some(next);
                primary.checkpoint_queue.insert((next, id));
            }
            timers.checkpoints_in_flight = timers.checkpoints_in_flight.saturating_add(1);
            self.stats.checkpoints_emitted_total += 1;
            batch.push(Checkpoint {
                id,
                remaining_ttl_secs,
            });
        }
        if !batch.is_empty() {
            tracing::debug!(count = batch.len(), now_ms, "lease checkpoints due");
        }
        batch
    }

    /// The earliest time at which [`Lessor::find_expired`] or
    /// [`Lessor::due_checkpoints`] would return something (ignoring the revoke rate),
    /// so the server can sleep until then. `None` when not primary or nothing is
    /// scheduled.
    #[must_use]
    pub fn next_deadline_ms(&self) -> Option<u64> {
        let primary = self.primary.as_ref()?;
        let expiry = primary.expiry_queue.first().map(|e| e.0);
        let checkpoint = primary.checkpoint_queue.first().map(|e| e.0);
        match (expiry, checkpoint) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// When lease `id` expires on this primary.
    #[must_use]
    pub fn expiry_ms(&self, id: LeaseId) -> Option<u64> {
        self.primary.as_ref()?.timers.get(&id).map(|t| t.expiry_ms)
    }
}

/// Seconds (a TTL, at least 0 and at most [`MAX_LEASE_TTL_SECS`]) to milliseconds.
fn secs_to_ms(secs: i64) -> u64 {
    let secs = u64::try_from(secs).expect("TTLs are never negative");
    secs.saturating_mul(MS_PER_SEC)
}
