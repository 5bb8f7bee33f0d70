//! The applier: a function from one committed request to its result on the store.
//!
//! Entries at or below the store's consistent index were applied before a restart (or
//! arrived inside a backend snapshot); the caller skips them before calling here.

use keel_mvcc::{ApplyIndex, MvccError, Store};
use keel_proto::keelpb::{self, internal_request::Request};

use crate::convert;
use crate::errors::ApiError;
use crate::lease::{self, Leases};
use crate::membership::Membership;

/// The result of an applied request, handed to the client's waiter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Applied {
    Put(keel_mvcc::PutResponse),
    DeleteRange(keel_mvcc::DeleteRangeResponse),
    Txn(keel_mvcc::TxnResponse),
    Compact(keel_mvcc::CompactResponse),
    Published,
    LeaseGrant {
        id: i64,
        ttl_secs: i64,
        revision: i64,
    },
    LeaseRevoke {
        revision: i64,
    },
    LeaseCheckpoint,
    /// A v2 request: the v2 store's answer (see [`crate::v2`]).
    V2(crate::v2::V2Outcome),
}

/// What a waiter receives: the result, or the client error the request ended with.
pub(crate) type ApplyResult = Result<Applied, ApiError>;

/// Why applying failed.
#[derive(Debug)]
pub(crate) enum ApplyError {
    /// The request fails for the client; the entry still counts as applied.
    Client(ApiError),
    /// The backend failed: the store must be reopened, the member stops.
    Fatal(MvccError),
}

impl From<MvccError> for ApplyError {
    fn from(err: MvccError) -> ApplyError {
        match err {
            MvccError::Backend(_) | MvccError::Io(_) | MvccError::Corrupt(_) => {
                ApplyError::Fatal(err)
            }
            MvccError::AlreadyApplied { .. } => {
                panic!("the applier offered an entry the store already holds: {err}")
            }
            other => ApplyError::Client(ApiError::from_mvcc(&other)),
        }
    }
}

/// Applies one decoded request at `at`. `membership` is updated (and stored) by publish
/// requests; `leases` by lease requests and by the keys puts and deletes change.
pub(crate) fn apply_request(
    store: &mut Store,
    membership: &mut Membership,
    leases: &Leases,
    at: ApplyIndex,
    request: Option<Request>,
) -> Result<Applied, ApplyError> {
    let Some(request) = request else {
        store.apply_noop(at)?;
        return Ok(Applied::Published);
    };
    Ok(match request {
        Request::Put(r) => {
            lease::check_put(store, leases, at, r.lease)?;
            let resp = store.put(at, &convert::put_request(&r))?;
            lease::sync_attachments(leases, store);
            Applied::Put(resp)
        }
        Request::DeleteRange(r) => {
            let resp = store.delete_range(at, &convert::delete_request(&r))?;
            lease::sync_attachments(leases, store);
            Applied::DeleteRange(resp)
        }
        Request::Txn(r) => {
            let exists = lease::lease_exists(leases);
            let resp = store.txn_checked(at, &convert::txn_request(&r), &exists)?;
            lease::sync_attachments(leases, store);
            Applied::Txn(resp)
        }
        r @ (Request::LeaseGrant(_) | Request::LeaseRevoke(_) | Request::LeaseCheckpoint(_)) => {
            lease::apply(store, leases, at, r)?
        }
        Request::Compaction(r) => Applied::Compact(store.compact(at, r.revision)?),
        // The v2 store is applied by the node loop; the backend only records the entry.
        Request::V2(_) => {
            store.apply_noop(at)?;
            Applied::V2(Ok(None))
        }
        Request::Publish(attrs) => {
            publish(membership, attrs);
            store.set_membership(at, &membership.encode())?;
            Applied::Published
        }
    })
}

/// etcd's publish: a member records its name and client URLs. Unknown (removed)
/// members are ignored.
fn publish(membership: &mut Membership, attrs: keelpb::MemberAttributes) {
    if let Some(member) = membership.members.get_mut(&attrs.member_id) {
        member.name = attrs.name;
        member.client_urls = attrs.client_urls;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_mvcc::BatchConfig;
    use keel_proto::etcdserverpb as pb;

    #[test]
    fn applies_requests_and_maps_client_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(&dir.path().join("db"), BatchConfig::default()).expect("open");
        let mut membership = Membership::default();
        let leases = Leases::new(10, 100, 1000);
        let put = Request::Put(pb::PutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            ..pb::PutRequest::default()
        });
        let r = apply_request(
            &mut store,
            &mut membership,
            &leases,
            ApplyIndex::new(1, 1),
            Some(put),
        )
        .expect("put");
        assert!(matches!(r, Applied::Put(p) if p.revision == 2));
        let compact = Request::Compaction(pb::CompactionRequest {
            revision: 5,
            physical: false,
        });
        let err = apply_request(
            &mut store,
            &mut membership,
            &leases,
            ApplyIndex::new(2, 1),
            Some(compact),
        )
        .expect_err("future revision");
        assert!(matches!(err, ApplyError::Client(ApiError::FutureRevision)));
        assert_eq!(
            store.consistent_index(),
            2,
            "a failed request still consumes its entry"
        );
    }
}
