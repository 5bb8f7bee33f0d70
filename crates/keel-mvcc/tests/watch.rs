//! Watchers: live delivery, catch-up from the backend, compaction, slow watchers,
//! ordering (no gap, no duplicate, one revision per response).

mod common;

use common::{Harness, put_req};
use keel_mvcc::{
    DeleteRangeRequest, EventType, MAX_EVENTS_PER_SYNC, RequestOp, TxnRequest, WatchRequest,
    WatchResponse,
};
use tokio::sync::mpsc::{Receiver, channel};

fn drain(rx: &mut Receiver<WatchResponse>) -> Vec<WatchResponse> {
    let mut out = Vec::new();
    while let Ok(resp) = rx.try_recv() {
        out.push(resp);
    }
    out
}

/// (revision, key, is_put) of every event, in delivery order.
fn flatten(resps: &[WatchResponse]) -> Vec<(i64, String, bool)> {
    resps
        .iter()
        .flat_map(|r| r.events.iter())
        .map(|e| {
            (
                e.kv.mod_revision,
                String::from_utf8(e.kv.key.clone()).expect("utf8"),
                e.kind == EventType::Put,
            )
        })
        .collect()
}

fn watch_key(key: &str, start: i64) -> WatchRequest {
    WatchRequest {
        key: key.into(),
        start_revision: start,
        ..WatchRequest::default()
    }
}

fn watch_all(start: i64) -> WatchRequest {
    WatchRequest {
        key: vec![0],
        range_end: vec![0],
        start_revision: start,
        ..WatchRequest::default()
    }
}

#[test]
fn synced_watcher_sees_each_write_once() {
    let mut h = Harness::new();
    let (tx, mut rx) = channel(16);
    let id = h.store.watch(watch_key("a", 0), tx);
    h.put("a", "1");
    h.put("b", "1");
    h.del("a", "");
    let resps = drain(&mut rx);
    assert!(
        resps
            .iter()
            .all(|r| r.watch_id == id && r.compact_revision == 0)
    );
    assert_eq!(
        flatten(&resps),
        [(2, "a".into(), true), (4, "a".into(), false)]
    );
    assert_eq!(resps[1].revision, 4);
    let deleted = &resps[1].events[0].kv;
    assert!(deleted.value.is_empty() && deleted.version == 0);
}

#[test]
fn events_of_one_txn_arrive_together_with_prev_kv_and_filters() {
    let mut h = Harness::new();
    h.put("a", "old");
    let (tx, mut rx) = channel(16);
    h.store.watch(
        WatchRequest {
            prev_kv: true,
            ..watch_all(0)
        },
        tx,
    );
    let (tx_puts, mut rx_puts) = channel(16);
    h.store.watch(
        WatchRequest {
            filter_delete: true,
            ..watch_all(0)
        },
        tx_puts,
    );
    h.txn(&TxnRequest {
        compare: vec![],
        success: vec![
            RequestOp::Put(put_req("a", "new")),
            RequestOp::Put(put_req("b", "1")),
            RequestOp::DeleteRange(DeleteRangeRequest {
                key: b"c".to_vec(),
                ..DeleteRangeRequest::default()
            }),
        ],
        failure: vec![],
    })
    .expect("txn");
    h.del("a", "");
    let resps = drain(&mut rx);
    assert_eq!(resps.len(), 2, "one response per revision");
    assert_eq!(
        flatten(&resps),
        [
            (3, "a".into(), true),
            (3, "b".into(), true),
            (4, "a".into(), false)
        ]
    );
    let prev = |i: usize, j: usize| {
        resps[i].events[j]
            .prev_kv
            .as_ref()
            .map(|kv| kv.value.clone())
    };
    assert_eq!(prev(0, 0), Some(b"old".to_vec()));
    assert_eq!(prev(0, 1), None);
    assert_eq!(prev(1, 0), Some(b"new".to_vec()));
    assert_eq!(
        flatten(&drain(&mut rx_puts)),
        [(3, "a".into(), true), (3, "b".into(), true)]
    );
}

#[test]
fn watcher_from_the_past_catches_up_then_follows() {
    let mut h = Harness::new();
    for i in 0..5 {
        h.put(&format!("k{i}"), "v");
    }
    h.store.force_commit().expect("commit");
    h.put("k0", "pending"); // still in the batch: catch-up must see it too
    let (tx, mut rx) = channel(16);
    h.store.watch(watch_all(3), tx);
    assert!(
        drain(&mut rx).is_empty(),
        "unsynced watchers wait for sync_watchers"
    );
    let report = h.store.sync_watchers().expect("sync");
    assert_eq!((report.newly_synced, report.pending), (1, 0));
    h.put("k9", "live");
    let got: Vec<i64> = flatten(&drain(&mut rx)).iter().map(|e| e.0).collect();
    assert_eq!(got, [3, 4, 5, 6, 7, 8]);
}

#[test]
fn watch_from_future_revision_starts_there() {
    let mut h = Harness::new();
    let (tx, mut rx) = channel(16);
    h.store.watch(watch_all(4), tx);
    for k in ["a", "b", "c", "d"] {
        h.put(k, "v");
    }
    let got: Vec<i64> = flatten(&drain(&mut rx)).iter().map(|e| e.0).collect();
    assert_eq!(got, [4, 5]);
}

#[test]
fn watcher_below_compaction_gets_compacted_notice() {
    let mut h = Harness::new();
    for k in ["a", "b", "c", "d"] {
        h.put(k, "v");
    }
    h.compact(4).expect("compact");
    let (tx, mut rx) = channel(16);
    let id = h.store.watch(watch_all(2), tx);
    h.store.sync_watchers().expect("sync");
    let resps = drain(&mut rx);
    assert_eq!(resps.len(), 1);
    assert_eq!((resps[0].watch_id, resps[0].compact_revision), (id, 4));
    assert!(resps[0].events.is_empty());
    assert_eq!(
        h.store.watcher_count(),
        0,
        "a compacted watcher is cancelled"
    );
    // Watching from the compaction point itself is allowed.
    let (tx, mut rx) = channel(16);
    h.store.watch(watch_all(4), tx);
    h.store.sync_watchers().expect("sync");
    let got: Vec<i64> = flatten(&drain(&mut rx)).iter().map(|e| e.0).collect();
    assert_eq!(got, [4, 5]);
}

#[test]
fn slow_watcher_is_moved_aside_and_resumes_without_gaps() {
    let mut h = Harness::new();
    let (slow_tx, mut slow_rx) = channel(1);
    let (fast_tx, mut fast_rx) = channel(64);
    h.store.watch(watch_all(0), slow_tx);
    h.store.watch(watch_all(0), fast_tx);
    let mut fast = Vec::new();
    for i in 0..20 {
        h.put(&format!("k{}", i % 3), &i.to_string());
        // The fast reader keeps up; the slow one reads nothing.
        fast.extend(drain(&mut fast_rx));
    }
    let want: Vec<i64> = (2..22).collect();
    assert_eq!(flatten(&fast).iter().map(|e| e.0).collect::<Vec<_>>(), want);
    // Writers were never blocked and the slow channel holds just its capacity.
    assert_eq!(h.store.current_revision(), 21);
    let stats = h.store.stats();
    assert_eq!((stats.slow_watchers, stats.synced_watchers), (1, 1));
    let mut slow = drain(&mut slow_rx);
    assert_eq!(slow.len(), 1);
    // Drain and sync until caught up; each round frees the one slot.
    for _ in 0..100 {
        let report = h.store.sync_watchers().expect("sync");
        slow.extend(drain(&mut slow_rx));
        if report.pending == 0 {
            break;
        }
    }
    assert_eq!(h.store.stats().synced_watchers, 2);
    h.put("after", "x");
    slow.extend(drain(&mut slow_rx));
    let want: Vec<i64> = (2..23).collect();
    assert_eq!(flatten(&slow).iter().map(|e| e.0).collect::<Vec<_>>(), want);
}

#[test]
fn catch_up_is_chunked_by_whole_revisions() {
    let mut h = Harness::new();
    let total = MAX_EVENTS_PER_SYNC + 500;
    // One revision with 600 changes straddles the chunk boundary.
    for i in 0..(MAX_EVENTS_PER_SYNC - 100) {
        h.put(&format!("k{i}"), "v");
    }
    let big: Vec<RequestOp> = (0..600)
        .map(|i| RequestOp::Put(put_req(&format!("t{i}"), "v")))
        .collect();
    h.txn(&TxnRequest {
        compare: vec![],
        success: big,
        failure: vec![],
    })
    .expect("txn");
    let (tx, mut rx) = channel(4);
    h.store.watch(watch_all(1), tx);
    let first = h.store.sync_watchers().expect("sync");
    assert_eq!(first.pending, 0, "the txn's revision is read whole");
    let resps = drain(&mut rx);
    let events = flatten(&resps);
    assert_eq!(events.len(), total);
    assert!(
        events.windows(2).all(|w| w[0].0 <= w[1].0),
        "revision order"
    );

    // With more revisions than one chunk, the watcher stays unsynced between calls.
    let mut h = Harness::new();
    for i in 0..(MAX_EVENTS_PER_SYNC + 10) {
        h.put(&format!("k{}", i % 50), "v");
    }
    let (tx, mut rx) = channel(4);
    h.store.watch(watch_all(1), tx);
    let first = h.store.sync_watchers().expect("sync");
    assert_eq!(first.pending, 1);
    let second = h.store.sync_watchers().expect("sync");
    assert_eq!((second.pending, second.newly_synced), (0, 1));
    let revs: Vec<i64> = flatten(&drain(&mut rx)).iter().map(|e| e.0).collect();
    let want: Vec<i64> = (2..=h.store.current_revision()).collect();
    assert_eq!(revs, want);
}

#[test]
fn cancel_and_closed_receivers_remove_watchers() {
    let mut h = Harness::new();
    let (tx, mut rx) = channel(4);
    let id = h.store.watch(watch_key("a", 0), tx);
    assert!(h.store.cancel_watch(id));
    assert!(!h.store.cancel_watch(id));
    h.put("a", "1");
    assert!(drain(&mut rx).is_empty());
    let (tx, rx) = channel(4);
    h.store.watch(watch_key("a", 0), tx);
    drop(rx);
    h.put("a", "2");
    assert_eq!(h.store.watcher_count(), 0);
}

#[test]
fn many_key_and_range_watchers_each_get_their_own_events() {
    let mut h = Harness::new();
    let mut key_rx = Vec::new();
    for i in 0..50 {
        let (tx, rx) = channel(8);
        h.store.watch(watch_key(&format!("k{i:02}"), 0), tx);
        key_rx.push(rx);
    }
    let (tx, mut range_rx) = channel(64);
    h.store.watch(
        WatchRequest {
            key: b"k10".to_vec(),
            range_end: b"k20".to_vec(),
            ..WatchRequest::default()
        },
        tx,
    );
    let (tx, mut from_rx) = channel(64);
    h.store.watch(
        WatchRequest {
            key: b"k45".to_vec(),
            range_end: vec![0],
            ..WatchRequest::default()
        },
        tx,
    );
    for i in 0..50 {
        h.put(&format!("k{i:02}"), "v");
    }
    for (i, rx) in key_rx.iter_mut().enumerate() {
        let got = flatten(&drain(rx));
        assert_eq!(
            got,
            [(
                i64::try_from(i).expect("small") + 2,
                format!("k{i:02}"),
                true
            )]
        );
    }
    let range: Vec<String> = flatten(&drain(&mut range_rx))
        .into_iter()
        .map(|e| e.1)
        .collect();
    assert_eq!(range, (10..20).map(|i| format!("k{i}")).collect::<Vec<_>>());
    let from: Vec<String> = flatten(&drain(&mut from_rx))
        .into_iter()
        .map(|e| e.1)
        .collect();
    assert_eq!(from, (45..50).map(|i| format!("k{i}")).collect::<Vec<_>>());
    assert_eq!(h.store.watcher_count(), 52);
}

#[test]
fn watcher_at_the_compaction_point_sees_its_deletion() {
    // etcd issue 18089: a deletion at exactly the compaction revision used to be
    // compacted away, so a watcher resuming there missed it.
    let mut h = Harness::new();
    h.put("a", "1");
    h.put("b", "1");
    h.del("a", "");
    h.compact(4).expect("compact at the deletion");
    let (tx, mut rx) = channel(8);
    h.store.watch(watch_all(4), tx);
    h.store.sync_watchers().expect("sync");
    assert_eq!(flatten(&drain(&mut rx)), [(4, "a".into(), false)]);
    // Also after a restart, which rebuilds the index from the lone tombstone.
    h.crash_and_reopen(keel_mvcc::BatchConfig::default());
    let (tx, mut rx) = channel(8);
    h.store.watch(watch_all(4), tx);
    h.store.sync_watchers().expect("sync");
    assert_eq!(flatten(&drain(&mut rx)), [(4, "a".into(), false)]);
    assert!(h.get("a").is_none());
}

/// A watcher that starts (or resumes) after the end of a chunk read for a watcher far
/// behind it must not be moved back to that chunk's end: it would be sent revisions
/// before its start, or repeat ones it already had.
#[test]
fn chunked_catch_up_never_moves_a_watcher_back() {
    let mut h = Harness::new();
    for i in 0..(MAX_EVENTS_PER_SYNC + 2_000) {
        h.put(&format!("k{}", i % 50), "v");
    }
    let late_start = h.store.current_revision() - 100;
    let (tx_far, mut rx_far) = channel(8);
    let (tx_late, mut rx_late) = channel(8);
    h.store.watch(watch_all(1), tx_far);
    h.store.watch(watch_all(late_start), tx_late);
    for _ in 0..4 {
        h.store.sync_watchers().expect("sync");
    }
    let far: Vec<i64> = flatten(&drain(&mut rx_far)).iter().map(|e| e.0).collect();
    let want_far: Vec<i64> = (2..=h.store.current_revision()).collect();
    assert_eq!(far, want_far);
    let late: Vec<i64> = flatten(&drain(&mut rx_late)).iter().map(|e| e.0).collect();
    let want_late: Vec<i64> = (late_start..=h.store.current_revision()).collect();
    assert_eq!(late, want_late, "no revision before the start, none twice");
}
