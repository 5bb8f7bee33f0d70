//! The lessor's limits and intervals, with their units, in one place.

/// The largest TTL a grant may ask for, in seconds (etcd `MaxLeaseTTL`).
pub const MAX_LEASE_TTL_SECS: i64 = 9_000_000_000;

/// etcd's minimum lease TTL for a member's timing: `(3 * election_ticks) / 2`
/// heartbeats (integer division on ticks, as etcd does), rounded *up* to whole
/// seconds. A shorter lease could expire during one election, before any client had
/// a leader to renew it with.
///
/// etcd's defaults (heartbeat 100 ms, election 1000 ms, so 10 ticks) give 2 s.
#[must_use]
pub fn min_lease_ttl_secs(election_ticks: u64, heartbeat_ms: u64) -> i64 {
    let ticks = election_ticks.saturating_mul(3) / 2;
    let min_ttl_ms = ticks.saturating_mul(heartbeat_ms);
    i64::try_from(min_ttl_ms.div_ceil(1000)).unwrap_or(i64::MAX)
}

/// How a [`crate::Lessor`] behaves. Every member of a cluster must use the same
/// `min_ttl_secs` and `max_leases`, because grants apply them; the rest is local to
/// the primary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LessorConfig {
    /// Grants below this TTL are raised to it; see [`min_lease_ttl_secs`]. At least 1.
    pub min_ttl_secs: i64,
    /// How often the primary checkpoints a lease's remaining TTL (etcd
    /// `--experimental-lease-checkpoint-interval`, default 5 minutes). It is the main
    /// term of the extension bound in the crate docs. At least 1000.
    pub checkpoint_interval_ms: u64,
    /// After reporting a lease as expired, report it again after this long if its
    /// revoke has not been applied (the proposal may have been lost). etcd uses the
    /// request timeout (5 s + 2 × election timeout). At least 1.
    pub expired_retry_interval_ms: u64,
    /// Expired leases reported per second, over time (etcd `leaseRevokeRate`). The
    /// burst is half of it, which is what etcd's loop allows per 500 ms round. At
    /// least 1.
    pub revoke_rate_per_sec: u32,
    /// Most leases one [`crate::Lessor::find_expired`] call returns. At least 1.
    pub max_expired_per_call: usize,
    /// Most checkpoints in one batch, i.e. one Raft entry (etcd
    /// `maxLeaseCheckpointBatchSize`). At least 1.
    pub max_checkpoint_batch: usize,
    /// Most leases that may exist at once; grants beyond it fail. At least 1.
    pub max_leases: usize,
}

impl Default for LessorConfig {
    fn default() -> Self {
        Self {
            min_ttl_secs: min_lease_ttl_secs(10, 100),
            checkpoint_interval_ms: 5 * 60 * 1000,
            expired_retry_interval_ms: 5_000,
            revoke_rate_per_sec: 1000,
            max_expired_per_call: 500,
            max_checkpoint_batch: 1000,
            max_leases: 10_000_000,
        }
    }
}

impl LessorConfig {
    /// Panics with the broken rule if a field is out of range; a configuration is
    /// built once at start-up, so a bad one is a programming or flag-checking error.
    pub(crate) fn assert_valid(&self) {
        assert!(
            self.min_ttl_secs >= 1,
            "min_ttl_secs must be at least 1, got {}",
            self.min_ttl_secs
        );
        assert!(
            self.min_ttl_secs <= MAX_LEASE_TTL_SECS,
            "min_ttl_secs {} exceeds the maximum lease TTL",
            self.min_ttl_secs
        );
        assert!(
            self.checkpoint_interval_ms >= 1000,
            "checkpoint_interval_ms must be at least one second (checkpoints carry whole seconds), got {}",
            self.checkpoint_interval_ms
        );
        assert!(
            self.expired_retry_interval_ms >= 1,
            "expired_retry_interval_ms must be positive"
        );
        assert!(
            self.revoke_rate_per_sec >= 1,
            "revoke_rate_per_sec must be positive"
        );
        assert!(
            self.max_expired_per_call >= 1,
            "max_expired_per_call must be positive"
        );
        assert!(
            self.max_checkpoint_batch >= 1,
            "max_checkpoint_batch must be positive"
        );
        assert!(self.max_leases >= 1, "max_leases must be positive");
    }
}
