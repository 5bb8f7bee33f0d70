//! Counters the server exports to Prometheus. The lessor keeps plain integers (it is
//! pure and has no registry); each field names the etcd metric it feeds.

/// Totals since the lessor was created. They survive `restore`, `promote` and
/// `demote`, like process-lifetime Prometheus counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LessorStats {
    /// Grants applied: `etcd_debugging_lease_granted_total`.
    pub granted_total: u64,
    /// Revokes applied: `etcd_debugging_lease_revoked_total`.
    pub revoked_total: u64,
    /// Renewals by this member as primary: `etcd_debugging_lease_renewed_total`.
    pub renewed_total: u64,
    /// Expired leases reported by `find_expired`, retries included. etcd's
    /// `etcd_debugging_server_lease_expired_total` counts revokes that succeeded, which
    /// only the server knows; this is the lessor's side of it.
    pub expired_reported_total: u64,
    /// Checkpoints handed out by `due_checkpoints` and `renew` (not in etcd 3.4).
    pub checkpoints_emitted_total: u64,
}
