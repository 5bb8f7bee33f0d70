//! The lease table and what the server's lessor needs from the store.

mod common;

use common::{Harness, put_req};
use keel_mvcc::{
    BatchConfig, EventType, KeyLeaseChange, MvccError, PutRequest, RequestOp, Store, TxnRequest,
    WatchRequest,
};

fn leased(key: &str, lease: i64) -> PutRequest {
    PutRequest {
        lease,
        ..put_req(key, "v")
    }
}

#[test]
fn lease_records_are_stored_with_their_entry_and_survive_a_reopen() {
    let mut h = Harness::new();
    let at = h.at();
    h.store
        .put_lease_records(at, &[(7, b"seven".to_vec()), (-3, b"minus".to_vec())])
        .expect("grant");
    assert_eq!(
        h.store.current_revision(),
        1,
        "lease writes bump no revision"
    );
    assert_eq!(h.store.consistent_index(), 1);
    // Pending records are visible before the batch is committed.
    assert_eq!(
        h.store.lease_records().expect("records"),
        vec![(7, b"seven".to_vec()), (-3, b"minus".to_vec())],
        "ordered by key bytes: positive ids before negative ones"
    );
    h.store.force_commit().expect("commit");
    h.crash_and_reopen(BatchConfig::default());
    assert_eq!(h.store.lease_records().expect("records").len(), 2);
    assert_eq!(h.store.consistent_index(), 1);
}

#[test]
fn an_uncommitted_lease_write_is_lost_with_its_consistent_index() {
    let mut h = Harness::new();
    h.put("k", "v");
    h.store.force_commit().expect("commit");
    let at = h.at();
    h.store
        .put_lease_records(at, &[(1, b"r".to_vec())])
        .expect("grant");
    h.crash_and_reopen(BatchConfig::default());
    assert!(h.store.lease_records().expect("records").is_empty());
    assert_eq!(
        h.store.consistent_index(),
        1,
        "the grant is replayed from the WAL"
    );
}

#[test]
fn revoke_deletes_every_key_in_one_revision_with_one_event_each() {
    let mut h = Harness::new();
    let at = h.at();
    h.store
        .put_lease_records(at, &[(5, b"r".to_vec())])
        .expect("grant");
    for k in ["a", "b", "c"] {
        h.put_req(&leased(k, 5)).expect("put");
    }
    let before = h.store.current_revision();
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    h.store.watch(
        WatchRequest {
            key: b"a".to_vec(),
            range_end: b"z".to_vec(),
            start_revision: 0,
            filter_put: false,
            filter_delete: false,
            prev_kv: false,
        },
        tx,
    );
    let at = h.at();
    let keys = vec![
        b"a".to_vec(),
        b"b".to_vec(),
        b"c".to_vec(),
        b"gone".to_vec(),
    ];
    let r = h.store.revoke_lease(at, 5, &keys).expect("revoke");
    assert_eq!(r.deleted, 3, "a key that is not live is skipped");
    assert_eq!(r.revision, before + 1, "one revision for all deletions");
    assert!(h.store.lease_records().expect("records").is_empty());
    assert!(h.get("a").is_none() && h.get("b").is_none() && h.get("c").is_none());
    assert_eq!(
        h.store.last_changes(),
        &[
            KeyLeaseChange {
                key: b"a".to_vec(),
                lease: 0
            },
            KeyLeaseChange {
                key: b"b".to_vec(),
                lease: 0
            },
            KeyLeaseChange {
                key: b"c".to_vec(),
                lease: 0
            },
        ]
    );
    let resp = rx.try_recv().expect("one response for the revoke");
    assert_eq!(resp.events.len(), 3);
    assert!(
        resp.events
            .iter()
            .all(|e| e.kind == EventType::Delete && e.kv.mod_revision == before + 1)
    );
    assert!(rx.try_recv().is_err(), "exactly one response");
}

#[test]
fn a_revoke_without_live_keys_bumps_no_revision() {
    let mut h = Harness::new();
    let at = h.at();
    h.store
        .put_lease_records(at, &[(9, b"r".to_vec())])
        .expect("grant");
    let at = h.at();
    let r = h.store.revoke_lease(at, 9, &[]).expect("revoke");
    assert_eq!((r.revision, r.deleted), (1, 0));
}

#[test]
fn last_changes_report_puts_and_deletes_with_their_new_lease() {
    let mut h = Harness::new();
    h.put_req(&leased("a", 4)).expect("put");
    assert_eq!(
        h.store.last_changes(),
        &[KeyLeaseChange {
            key: b"a".to_vec(),
            lease: 4
        }]
    );
    // ignore_lease keeps the stored lease.
    h.put_req(&PutRequest {
        ignore_lease: true,
        ..put_req("a", "w")
    })
    .expect("put");
    assert_eq!(h.store.last_changes()[0].lease, 4);
    h.put("a", "x");
    assert_eq!(h.store.last_changes()[0].lease, 0);
    h.del("a", "");
    assert_eq!(
        h.store.last_changes(),
        &[KeyLeaseChange {
            key: b"a".to_vec(),
            lease: 0
        }]
    );
    let at = h.at();
    h.store.apply_noop(at).expect("noop");
    assert!(h.store.last_changes().is_empty());
}

#[test]
fn txn_checked_refuses_an_unknown_lease_on_the_taken_branch_only() {
    let mut h = Harness::new();
    let req = TxnRequest {
        compare: Vec::new(),
        success: vec![RequestOp::Put(leased("k", 77))],
        failure: vec![RequestOp::Put(leased("other", 99))],
    };
    let at = h.at();
    let err = h
        .store
        .txn_checked(at, &req, &|id| id == 99)
        .expect_err("lease 77 is unknown");
    assert!(matches!(err, MvccError::LeaseNotFound));
    assert_eq!(err.to_string(), "etcdserver: requested lease not found");
    assert!(h.get("k").is_none(), "nothing was written");
    let at = h.at();
    let r = h
        .store
        .txn_checked(at, &req, &|id| id == 77)
        .expect("the failure branch is not checked");
    assert!(r.succeeded);
    assert_eq!(h.get("k").expect("written").lease, 77);
}

#[test]
fn leased_keys_list_live_keys_with_a_lease() {
    let mut h = Harness::new();
    h.put_req(&leased("a", 1)).expect("put");
    h.put("b", "plain");
    h.put_req(&leased("c", 2)).expect("put");
    h.put_req(&leased("d", 2)).expect("put");
    h.del("d", "");
    assert_eq!(
        h.store.leased_keys().expect("keys"),
        vec![(b"a".to_vec(), 1), (b"c".to_vec(), 2)]
    );
}

#[test]
fn snapshots_carry_the_lease_table() {
    let mut h = Harness::new();
    let at = h.at();
    h.store
        .put_lease_records(at, &[(3, b"three".to_vec())])
        .expect("grant");
    let snap = h.dir.path().join("snap.db");
    h.store.snapshot(&snap).expect("snapshot");

    let other_dir = tempfile::tempdir().expect("tempdir");
    let mut other =
        Store::open(&other_dir.path().join("db"), BatchConfig::default()).expect("open");
    other
        .put_lease_records(keel_mvcc::ApplyIndex::new(1, 1), &[(8, b"old".to_vec())])
        .expect("grant");
    other.restore_snapshot(&snap).expect("install");
    assert_eq!(
        other.lease_records().expect("records"),
        vec![(3, b"three".to_vec())],
        "the installed snapshot replaces the lease table, pending writes included"
    );
}
