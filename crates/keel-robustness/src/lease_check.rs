//! The lease checks: pure functions of the records.
//!
//! A lease is *observed gone* by a successful revoke, or by a revoke or an
//! attached put answered "lease not found"; it is *observed alive* by an
//! attached put that succeeded. Those requests are applied through Raft, so
//! their answers are authoritative. Keep-alive answers are not used as
//! observations: etcd 3.4 answers them from the leader's memory, and a
//! deposed leader that has not yet stepped down may answer for a lease its
//! successor already revoked (or not yet knows of one just granted). Lease
//! ids are chosen by the client and granted once, so a lease observed gone
//! stays gone.
//!
//! * **revoke**: after a lease was observed gone, no linearizable read
//!   invoked later returns a value attached to it (a revoke deletes the
//!   lease's keys in the same step that removes the lease), and no request
//!   invoked later finds the lease alive.
//! * **expiry**: a lease no one revoked is not gone earlier than its TTL
//!   after a successful renewal (grant or keep-alive). The renewal took
//!   effect at some point of its call and the gone state was observed at
//!   some point of the observing call, so only a gone observation invoked
//!   after the renewal returned, and returned before the renewal's invoke
//!   time plus the TTL, proves an early expiry. Renewals with an unknown
//!   outcome can only make a lease live longer, and are not needed.

use std::collections::HashMap;

use crate::check::Verdict;
use crate::history::{Outcome, Record, Request, Response};

/// What the history says about one lease.
#[derive(Debug, Default)]
struct LeaseFacts {
    /// Successful renewals: (invoke ns, return ns, ttl seconds).
    renewals: Vec<(u64, u64, i64)>,
    /// Gone observations: (invoke ns, return ns, what observed it).
    gone: Vec<(u64, u64, String)>,
    /// Answers that found the lease alive: (invoke ns, what).
    alive: Vec<(u64, String)>,
    /// Invoke times of revokes, whatever their outcome.
    revokes: Vec<u64>,
}

fn lease_of(request: &Request) -> Option<i64> {
    match request {
        Request::LeaseGrant { id, .. }
        | Request::LeaseRevoke { id }
        | Request::LeaseKeepAlive { id } => Some(*id),
        Request::PutWithLease { lease, .. } => Some(*lease),
        _ => None,
    }
}

fn facts(records: &[Record]) -> HashMap<i64, LeaseFacts> {
    let mut out: HashMap<i64, LeaseFacts> = HashMap::new();
    for r in records {
        let Some(id) = lease_of(&r.request) else {
            continue;
        };
        let f = out.entry(id).or_default();
        if matches!(r.request, Request::LeaseRevoke { .. }) {
            f.revokes.push(r.invoked_ns);
        }
        let Outcome::Ok {
            returned_ns,
            response,
            ..
        } = &r.outcome
        else {
            continue;
        };
        let what = format!("client {}'s {:?}", r.client, r.request);
        let keep_alive = matches!(r.request, Request::LeaseKeepAlive { .. });
        match response {
            Response::LeaseNotFound if !keep_alive => {
                f.gone.push((r.invoked_ns, *returned_ns, what));
            }
            Response::LeaseRevoked => f.gone.push((r.invoked_ns, *returned_ns, what)),
            Response::LeaseGranted { ttl_secs } | Response::LeaseAlive { ttl_secs } => {
                f.renewals.push((r.invoked_ns, *returned_ns, *ttl_secs));
            }
            Response::Put => f.alive.push((r.invoked_ns, what)),
            _ => {}
        }
    }
    out
}

/// Keys of revoked or expired leases are gone, and gone leases stay gone.
pub fn revoke(records: &[Record]) -> Verdict {
    let facts = facts(records);
    // When each lease was first observed gone (return time).
    let gone_at: HashMap<i64, (u64, &str)> = facts
        .iter()
        .filter_map(|(id, f)| {
            f.gone
                .iter()
                .min_by_key(|g| g.1)
                .map(|g| (*id, (g.1, g.2.as_str())))
        })
        .collect();
    for (id, f) in &facts {
        let Some((gone, by)) = gone_at.get(id) else {
            continue;
        };
        if let Some((at, what)) = f.alive.iter().find(|(invoked, _)| invoked > gone) {
            return Verdict::Fail(format!(
                "lease {id:x} was gone at {gone} ns ({by}), but {what} invoked at {at} ns found it alive"
            ));
        }
    }
    let attached: HashMap<&str, i64> = records
        .iter()
        .filter_map(|r| match &r.request {
            Request::PutWithLease { value, lease, .. } => Some((value.as_str(), *lease)),
            _ => None,
        })
        .collect();
    for r in records {
        let (
            Request::Range {
                serializable: false,
                ..
            },
            Outcome::Ok {
                response: Response::Kvs(kvs),
                ..
            },
        ) = (&r.request, &r.outcome)
        else {
            continue;
        };
        for (key, value) in kvs {
            let Some(lease) = attached.get(value.as_str()) else {
                continue;
            };
            if let Some((gone, by)) = gone_at.get(lease)
                && r.invoked_ns > *gone
            {
                return Verdict::Fail(format!(
                    "client {}'s read invoked at {} ns returned {key}={value}, attached to lease {lease:x}, gone at {gone} ns ({by})",
                    r.client, r.invoked_ns
                ));
            }
        }
    }
    Verdict::Pass
}

/// No lease expires before its TTL after a successful renewal.
pub fn expiry(records: &[Record]) -> Verdict {
    for (id, f) in facts(records) {
        for (obs_invoked, obs_returned, by) in &f.gone {
            if f.revokes.iter().any(|r| r < obs_returned) {
                continue;
            }
            let early = f.renewals.iter().find(|(invoked, returned, ttl)| {
                let ttl_ns = u64::try_from(*ttl).unwrap_or(0) * 1_000_000_000;
                returned <= obs_invoked && *obs_returned <= invoked + ttl_ns
            });
            if let Some((invoked, returned, ttl)) = early {
                return Verdict::Fail(format!(
                    "lease {id:x} expired early: renewed for {ttl} s by a call in [{invoked}, {returned}] ns, gone by {obs_returned} ns ({by})"
                ));
            }
        }
    }
    Verdict::Pass
}
