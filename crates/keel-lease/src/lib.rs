//! Keel's lessor: etcd v3 lease semantics as a pure, deterministic state machine.
//!
//! # Job
//!
//! The server drives a [`Lessor`] on every member. It does no IO, starts no
//! threads and reads no clock: every operation that depends on time takes `now_ms`,
//! milliseconds of a monotonic clock the caller owns (asserted never to go back).
//! The model is etcd 3.4's `lease` package and its use in `etcdserver`.
//!
//! The lessor holds two kinds of state:
//!
//! - **Replicated** (identical on every member that applied the same entries): each
//!   lease's id, granted TTL, last checkpointed remaining TTL, and attached keys.
//!   It changes only through the `apply_*` calls for committed Raft entries
//!   ([`Lessor::apply_grant`], [`Lessor::apply_revoke`], [`Lessor::apply_checkpoint`])
//!   and through [`Lessor::attach`]/[`Lessor::detach`], which the applier calls as
//!   puts and deletes change which lease a key has. These take the same inputs on
//!   every member and give the same results.
//! - **Primary-only** timers: when each lease expires, when it is next reported,
//!   when its next checkpoint is due. Only the primary (the Raft leader, once it has
//!   applied the entries of earlier terms) has them. It renews leases
//!   ([`Lessor::renew`]), answers [`Lessor::time_to_live`], reports expired leases
//!   ([`Lessor::find_expired`]) for the server to propose revokes for, and produces
//!   checkpoint batches ([`Lessor::due_checkpoints`]) for the server to propose.
//!   Expiry is therefore decided by the leader and applied through Raft; a member
//!   that is not primary never expires a lease. [`Lessor::promote`] and
//!   [`Lessor::demote`] follow leadership.
//!
//! etcd behaviours kept: the minimum TTL ([`min_lease_ttl_secs`]: `(3 * election
//! ticks) / 2` heartbeats rounded up to seconds) raises short grants; the maximum is
//! [`MAX_LEASE_TTL_SECS`]; the errors carry etcd's messages ([`LeaseError`]); a
//! revoke returns the attached keys sorted bytewise so all members delete them in the
//! same order; expired leases are reported earliest first, at most
//! [`LessorConfig::revoke_rate_per_sec`] per second with bursts of half that (etcd's
//! `leaseRevokeRate` and its 500 ms loop), and re-reported after
//! [`LessorConfig::expired_retry_interval_ms`] if the revoke did not apply; a
//! promotion extends every lease by the given time (etcd passes the election
//! timeout); an expired lease awaiting its revoke cannot be renewed.
//!
//! # How the server drives it
//!
//! - **Committed entries**, on every member, in log order: `LeaseGrant` →
//!   [`Lessor::apply_grant`] (the id was chosen before proposing, with
//!   [`LeaseId::from_request_id`] when the client sent 0) and store the returned
//!   record; `LeaseRevoke` → [`Lessor::apply_revoke`], delete the returned keys in one
//!   revision and delete the record; `LeaseCheckpoint` → [`Lessor::apply_checkpoint`]
//!   and store the returned records; a put with a lease → check the lease exists
//!   ([`Lessor::get`]) then [`Lessor::attach`]; a put without one, or a delete →
//!   [`Lessor::detach`]. Records go in the same backend transaction as the entry's
//!   key-value changes.
//! - **Start-up and snapshots**: [`Lessor::restore`] with the stored records, then
//!   [`Lessor::attach`] every key that has a lease.
//! - **Leadership**: [`Lessor::promote`] with the election timeout once the new
//!   leader has applied every entry of earlier terms; [`Lessor::demote`] when it
//!   stops leading.
//! - **Requests on the leader**: `LeaseKeepAlive` → [`Lessor::renew`] (propose the
//!   returned checkpoint and wait for it before answering; [`LeaseError::Expired`]
//!   means wait for the revoke, then answer "not found"); `LeaseTimeToLive` →
//!   [`Lessor::time_to_live`]; followers forward both. `LeaseLeases` →
//!   [`Lessor::leases`] anywhere.
//! - **Timer**, on the leader, at [`Lessor::next_deadline_ms`] or every 500 ms like
//!   etcd: propose a revoke for each id from [`Lessor::find_expired`], and a
//!   `LeaseCheckpoint` for each batch from [`Lessor::due_checkpoints`].
//! - **Metrics**: [`Lessor::stats`] feeds etcd's lease counters.
//!
//! `keel-server`'s `lease` module is that server: it promotes the leader's lessor once
//! an entry of the leader's own term has applied, polls every 500 ms, checkpoints every
//! 5 s (so one leader change delays a lease's expiry by at most the leaderless gap +
//! the election timeout + 5 s, per the bound below), and forwards keep-alives and
//! time-to-live questions from followers to the leader over the peer port.
//!
//! # Beyond etcd: remaining TTL survives a leader change
//!
//! etcd 3.4 restarts every lease at its full TTL on a new leader unless
//! `--experimental-enable-lease-checkpoint` is set. Keel always checkpoints: the
//! primary emits, for every lease that will still be alive then, a [`Checkpoint`]
//! (remaining TTL, whole seconds rounded up, never above the granted TTL) one
//! [`LessorConfig::checkpoint_interval_ms`] after the moment the lease's recorded
//! remaining TTL describes (its last checkpoint, renewal, grant or promotion). Batches
//! are bounded by [`LessorConfig::max_checkpoint_batch`]. A renewal clears a recorded
//! or in-flight checkpoint with a `remaining_ttl_secs == 0` checkpoint
//! ([`Renewed::checkpoint`]). A new primary resumes each lease from its last applied
//! checkpoint, plus the promotion's extension.
//!
//! ## The bound
//!
//! Let a lease have TTL `T` and last been renewed (or granted) on a primary at time
//! `t`. Assume, as the server guarantees: promotion happens after the entries of
//! earlier terms are applied; a renewal's clearing checkpoint is applied before the
//! keep-alive is answered; `due_checkpoints` is called when
//! [`Lessor::next_deadline_ms`] says and its batches are applied before the leader
//! changes. Then:
//!
//! - **Never early.** No primary reports the lease expired before `t + T`. (A
//!   checkpoint at `c` records at least the true remaining time `E - c`; a primary
//!   promoted at `p >= c` sets expiry `p + extend + R >= E`.)
//! - **Bounded extension.** A leader change, demoting at `d` and promoting at `p`
//!   with extension `x`, moves the lease's expiry later by at most
//!   `(p - d) + x + checkpoint_interval_ms`: the time without a primary, the
//!   extension, and how stale the recorded remaining TTL can be (at most one
//!   interval, rounding included, since the next checkpoint is due one interval
//!   after the moment the last one describes). With `x` = the election timeout and a
//!   prompt election, a lease lives at most `checkpoint_interval_ms + election
//!   timeout` (plus the leaderless gap) longer per leader change. Across `k` leader
//!   changes since `t` it is reported expired by `t + T + Σ (gap_i + x_i +
//!   checkpoint_interval_ms)`.
//!
//! `tests/checkpoint_bound.rs` checks both over random timelines of grants, renewals,
//! revokes and leader changes between three simulated members.
//!
//! If a checkpoint proposal is lost or the server polls late, staleness grows by that
//! delay; if a revoke proposal is lost in a leader change, the new primary expires
//! the lease again after its resumed TTL.
//!
//! # Invariants
//!
//! - Every attached key is in exactly one lease's key set and in the key-owner map,
//!   pointing at that lease (asserted on detach, attach and revoke).
//! - A lease's recorded remaining TTL is in `0..=ttl`; its TTL in
//!   `min_ttl_secs..=MAX_LEASE_TTL_SECS` (restored records are raised to the minimum).
//! - On the primary every lease has exactly one expiry-queue entry and at most one
//!   checkpoint-queue entry, matching its timers (asserted when disarmed).
//! - Everything is bounded: leases by [`LessorConfig::max_leases`] (so the queues,
//!   one entry per lease each), a `find_expired` answer by its limit,
//!   [`LessorConfig::max_expired_per_call`] and the revoke rate, a checkpoint batch by
//!   [`LessorConfig::max_checkpoint_batch`].
//!
//! # Lease record, version 1
//!
//! What the server stores per lease in the backend, in the same transaction as the
//! key-value changes of the same entry ([`LeaseRecord::encode`]/[`LeaseRecord::decode`]).
//! Key: the lease id as 8 bytes, big-endian two's complement ([`LeaseRecord::key`]).
//! Value, 29 bytes, integers big-endian:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | version, `1` |
//! | 1 | 8 | `id`, i64, nonzero |
//! | 9 | 8 | `ttl_secs`, i64, `>= 1` |
//! | 17 | 8 | `remaining_ttl_secs`, i64, `0..=ttl_secs`, 0 = no checkpoint |
//! | 25 | 4 | CRC32C (Castagnoli) of bytes 0..25 |
//!
//! Attached keys are not stored: each key-value records its lease, and the server
//! reattaches keys with [`Lessor::attach`] after [`Lessor::restore`].

mod config;
mod error;
mod id;
mod lessor;
mod metrics;
mod record;

pub use config::{LessorConfig, MAX_LEASE_TTL_SECS, min_lease_ttl_secs};
pub use error::{DecodeError, LeaseError, RestoreError};
pub use id::LeaseId;
pub use lessor::{Checkpoint, Lessor, Renewed, Revoked, TimeToLive};
pub use metrics::LessorStats;
pub use record::{LeaseRecord, RECORD_LEN_BYTES, RECORD_VERSION};
