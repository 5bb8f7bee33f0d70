//! Crash idempotency: the consistent index is committed with the data, so replaying
//! the log after a crash converges to the state of a store that never crashed.

mod common;

use std::time::{Duration, Instant};

use common::{Harness, put_req};
use keel_mvcc::{ApplyIndex, BatchConfig, DeleteRangeRequest, MvccError, RangeRequest, Store};

#[derive(Clone, Debug)]
enum Entry {
    Put(String, String),
    Delete(String),
    Compact(i64),
    Membership(Vec<u8>),
    Noop,
}

fn log() -> Vec<Entry> {
    let mut log = Vec::new();
    for i in 0..60u32 {
        let key = format!("k{:02}", i % 17);
        log.push(Entry::Put(key.clone(), format!("v{i}")));
        if i % 7 == 3 {
            log.push(Entry::Delete(key));
        }
        if i % 20 == 19 {
            log.push(Entry::Compact(i64::from(i)));
            log.push(Entry::Membership(vec![u8::try_from(i).expect("small")]));
        }
        if i % 9 == 0 {
            log.push(Entry::Noop);
        }
    }
    log
}

fn apply(store: &mut Store, at: ApplyIndex, entry: &Entry) -> Result<(), MvccError> {
    match entry {
        Entry::Put(k, v) => store.put(at, &put_req(k, v)).map(|_| ()),
        Entry::Delete(k) => store
            .delete_range(
                at,
                &DeleteRangeRequest {
                    key: k.clone().into_bytes(),
                    ..DeleteRangeRequest::default()
                },
            )
            .map(|_| ()),
        Entry::Compact(rev) => store.compact(at, *rev).map(|_| ()),
        Entry::Membership(m) => store.set_membership(at, m),
        Entry::Noop => store.apply_noop(at),
    }
}

fn index_of(i: usize) -> ApplyIndex {
    ApplyIndex::new(u64::try_from(i).expect("small") + 1, 3)
}

fn everything(store: &Store) -> Vec<keel_mvcc::KeyValue> {
    store
        .range(&RangeRequest {
            key: vec![0],
            range_end: vec![0],
            ..RangeRequest::default()
        })
        .expect("range")
        .kvs
}

#[test]
fn replay_after_crash_at_any_point_converges() {
    let entries = log();
    let mut reference = Harness::new();
    for (i, e) in entries.iter().enumerate() {
        apply(&mut reference.store, index_of(i), e).expect("reference apply");
    }
    let want_hash = reference.store.hash().expect("hash");
    let want_kvs = everything(&reference.store);
    let config = BatchConfig {
        batch_interval: Duration::from_millis(100),
        batch_limit_ops: 5,
    };
    for crash_after in (0..entries.len()).step_by(7) {
        let mut h = Harness::with_config(config);
        let start = Instant::now();
        for (i, e) in entries.iter().enumerate().take(crash_after) {
            apply(&mut h.store, index_of(i), e).expect("apply");
            if i % 4 == 0 {
                // The caller's clock: every fourth entry "100 ms" have passed.
                let now = start + Duration::from_millis(100 * u64::try_from(i).expect("small"));
                h.store.commit_if_due(now).expect("commit if due");
            }
        }
        h.crash_and_reopen(config);
        let ci = h.store.consistent_index();
        assert!(ci <= u64::try_from(crash_after).expect("small"));
        for (i, e) in entries.iter().enumerate() {
            let at = index_of(i);
            match apply(&mut h.store, at, e) {
                Err(MvccError::AlreadyApplied { .. }) => {
                    assert!(at.index <= ci, "entry {} above ci {ci} refused", at.index)
                }
                _ => assert!(
                    at.index > ci,
                    "entry {} at or below ci {ci} re-applied",
                    at.index
                ),
            }
        }
        assert_eq!(everything(&h.store), want_kvs, "crash after {crash_after}");
        assert_eq!(
            h.store.hash().expect("hash"),
            want_hash,
            "crash after {crash_after}"
        );
        assert_eq!(h.store.membership(), reference.store.membership());
        assert_eq!(
            h.store.compact_revision(),
            reference.store.compact_revision()
        );
        assert_eq!(h.store.term(), 3);
    }
}

#[test]
fn reapplying_committed_entries_changes_nothing() {
    let mut h = Harness::new();
    h.put("a", "1");
    h.put("b", "2");
    h.store.force_commit().expect("commit");
    let before = h.store.hash().expect("hash");
    for index in 1..=2 {
        let err = h
            .store
            .put(ApplyIndex::new(index, 1), &put_req("a", "changed"))
            .expect_err("already applied");
        assert!(matches!(
            err,
            MvccError::AlreadyApplied {
                consistent_index: 2,
                ..
            }
        ));
    }
    assert_eq!(h.store.hash().expect("hash"), before);
    assert_eq!(h.store.current_revision(), 3);
}

#[test]
fn batch_commits_follow_the_callers_clock_and_op_limit() {
    let config = BatchConfig {
        batch_interval: Duration::from_millis(100),
        batch_limit_ops: 3,
    };
    let mut h = Harness::with_config(config);
    let t0 = Instant::now();
    assert!(!h.store.commit_if_due(t0).expect("nothing to commit"));
    h.put("a", "1");
    assert_eq!(h.store.pending_ops(), 1);
    assert_eq!(h.store.committed_records().expect("records"), 0);
    // Reads see the pending write.
    assert_eq!(h.get("a").expect("a").value, b"1");
    assert!(h.store.commit_if_due(t0).expect("first commit is due"));
    assert_eq!(h.store.committed_records().expect("records"), 1);
    h.put("b", "2");
    assert!(
        !h.store
            .commit_if_due(t0 + Duration::from_millis(50))
            .expect("not due")
    );
    assert!(
        h.store
            .commit_if_due(t0 + Duration::from_millis(100))
            .expect("due")
    );
    // The op limit commits without the clock.
    for k in ["c", "d", "e"] {
        h.put(k, "x");
    }
    assert_eq!(h.store.pending_ops(), 0);
    assert_eq!(h.store.committed_records().expect("records"), 5);
}

#[test]
fn reads_see_a_batch_while_it_is_committed_in_the_background() {
    let config = BatchConfig {
        batch_interval: Duration::from_millis(100),
        batch_limit_ops: 1_000_000,
    };
    let mut h = Harness::with_config(config);
    let keys: Vec<String> = (0..20_000).map(|i| format!("k{i:05}")).collect();
    for k in &keys {
        h.put(k, "v1");
    }
    // A 20,000-record batch takes milliseconds to commit: the reads below run while it
    // is in flight (or just after), and must see every record either way.
    assert!(
        h.store
            .commit_if_due(Instant::now())
            .expect("commit is due")
    );
    assert_eq!(h.store.pending_ops(), 0);
    h.put("k00000", "v2");
    let all = everything(&h.store);
    assert_eq!(all.len(), keys.len());
    assert_eq!(all[0].value, b"v2");
    assert!(all[1..].iter().all(|kv| kv.value == b"v1"));
    // An older revision of the same key, from the batch being committed.
    let first = h
        .store
        .range(&RangeRequest {
            key: b"k00000".to_vec(),
            revision: 2,
            ..RangeRequest::default()
        })
        .expect("range at revision 2");
    assert_eq!(first.kvs[0].value, b"v1");
    assert_eq!(h.store.committed_records().expect("records"), 20_000);
    h.crash_and_reopen(config);
    assert_eq!(h.store.consistent_index(), 20_000);
}
