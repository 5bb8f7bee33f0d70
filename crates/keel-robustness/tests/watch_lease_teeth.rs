//! The watch and lease checks have teeth: fabricated histories of what a
//! buggy server would produce (a gap, a duplicate, reordered events, a wrong
//! prev_kv, a revision split over two responses, a skipping resume, a key
//! read after its lease was revoked, an early expiry) fail exactly the check
//! about it, while the correct history passes every check.

use keel_robustness::check::{FINAL_READER, HistoryReport, Verdict, check_history};
use keel_robustness::history::{
    EventKind, Outcome, PrevKv, Record, Request, Response, WatchBatch, WatchEvent, WatchSession,
};
use keel_robustness::traffic::{KEY_PREFIX, key};

const SEC: u64 = 1_000_000_000;

fn keys() -> Vec<String> {
    (0..2).map(key).collect()
}

fn ok(client: u64, request: Request, call: u64, ret: u64, revision: i64, r: Response) -> Record {
    Record {
        client,
        member: 0,
        request,
        invoked_ns: call,
        outcome: Outcome::Ok {
            returned_ns: ret,
            revision,
            response: r,
        },
    }
}

fn put(k: usize, value: &str) -> Request {
    Request::Put {
        key: key(k),
        value: value.to_owned(),
    }
}

/// A put event of `version` with its prev_kv (`None`: the key is created).
fn put_event(
    k: usize,
    value: &str,
    rev: i64,
    created: i64,
    version: i64,
    prev: Option<(&str, i64)>,
) -> WatchEvent {
    WatchEvent {
        kind: EventKind::Put,
        key: key(k),
        value: value.to_owned(),
        mod_revision: rev,
        create_revision: created,
        version,
        lease: 0,
        prev: prev.map(|(v, at)| PrevKv {
            value: v.to_owned(),
            mod_revision: at,
            create_revision: created,
            version: version - 1,
        }),
    }
}

fn delete_event(k: usize, rev: i64, prev: (&str, i64, i64, i64)) -> WatchEvent {
    WatchEvent {
        kind: EventKind::Delete,
        key: key(k),
        value: String::new(),
        mod_revision: rev,
        create_revision: 0,
        version: 0,
        lease: 0,
        prev: Some(PrevKv {
            value: prev.0.to_owned(),
            mod_revision: prev.1,
            create_revision: prev.2,
            version: prev.3,
        }),
    }
}

fn session(
    watcher: u64,
    n: u32,
    start: i64,
    created: i64,
    batches: Vec<Vec<WatchEvent>>,
    call: u64,
) -> Record {
    let data = WatchSession {
        created_revision: Some(created),
        batches: batches
            .into_iter()
            .enumerate()
            .map(|(i, events)| WatchBatch {
                received_ns: call + 1 + i as u64,
                header_revision: events.last().map_or(created, |e| e.mod_revision),
                events,
            })
            .collect(),
        compact_revision: None,
        end: "rotation".to_owned(),
    };
    ok(
        1000 + watcher,
        Request::Watch {
            watcher,
            session: n,
            prefix: KEY_PREFIX.to_owned(),
            start_revision: start,
            prev_kv: true,
            filter_out: None,
        },
        call,
        call + 50,
        created,
        Response::Watch(data),
    )
}

/// A session of a watcher that filters out deletes.
fn no_delete(mut record: Record) -> Record {
    if let Request::Watch { filter_out, .. } = &mut record.request {
        *filter_out = Some(EventKind::Delete);
    }
    record
}

/// Revisions: 2 put k0=a, 3 put k1=b, 4 put k0=a2, 5 delete k1, 6 put k0=a3
/// and k1=c in one transaction.
fn kv_history() -> Vec<Record> {
    vec![
        ok(1, put(0, "a"), 0, 10, 2, Response::Put),
        ok(2, put(1, "b"), 0, 10, 3, Response::Put),
        ok(1, put(0, "a2"), 20, 30, 4, Response::Put),
        ok(
            2,
            Request::Delete { key: key(1) },
            20,
            30,
            5,
            Response::Deleted(1),
        ),
        ok(
            1,
            Request::CompareAndSet {
                key: key(0),
                expected: Some("a2".to_owned()),
                new: "a3".to_owned(),
                also_key: key(1),
                also_value: "c".to_owned(),
            },
            40,
            50,
            6,
            Response::Txn(true),
        ),
        ok(
            FINAL_READER,
            Request::Get {
                key: key(0),
                serializable: false,
            },
            100,
            110,
            6,
            Response::Value(Some("a3".to_owned())),
        ),
        ok(
            FINAL_READER,
            Request::Get {
                key: key(1),
                serializable: false,
            },
            100,
            110,
            6,
            Response::Value(Some("c".to_owned())),
        ),
        ok(
            FINAL_READER,
            Request::Range {
                prefix: KEY_PREFIX.to_owned(),
                serializable: false,
            },
            120,
            130,
            6,
            Response::Kvs(vec![(key(0), "a3".to_owned()), (key(1), "c".to_owned())]),
        ),
    ]
}

fn ev2() -> WatchEvent {
    put_event(0, "a", 2, 2, 1, None)
}
fn ev3() -> WatchEvent {
    put_event(1, "b", 3, 3, 1, None)
}
fn ev4() -> WatchEvent {
    put_event(0, "a2", 4, 2, 2, Some(("a", 2)))
}
fn ev5() -> WatchEvent {
    delete_event(1, 5, ("b", 3, 3, 1))
}
fn ev6a() -> WatchEvent {
    put_event(0, "a3", 6, 2, 3, Some(("a2", 4)))
}
fn ev6b() -> WatchEvent {
    put_event(1, "c", 6, 6, 1, None)
}

/// Watcher 0 from revision 1, resumed once after revision 4; watcher 1 from
/// now (created at revision 3).
fn correct() -> Vec<Record> {
    let mut h = kv_history();
    h.push(session(
        0,
        0,
        1,
        1,
        vec![vec![ev2()], vec![ev3(), ev4()]],
        1,
    ));
    h.push(session(
        0,
        1,
        5,
        4,
        vec![vec![ev5()], vec![ev6a(), ev6b()]],
        35,
    ));
    h.push(session(
        1,
        0,
        0,
        3,
        vec![vec![ev4(), ev5()], vec![ev6a(), ev6b()]],
        15,
    ));
    h
}

fn failed_only(report: &HistoryReport, expected: &[&str]) {
    let failed: Vec<&str> = report
        .verdicts()
        .into_iter()
        .filter(|(_, v)| v.failed())
        .map(|(name, _)| name)
        .collect();
    for name in expected {
        assert!(failed.contains(name), "{name} did not fail: {report:#?}");
    }
    for name in &failed {
        assert!(
            expected.contains(name),
            "{name} failed too, the fabricated bug is about {expected:?}: {report:#?}"
        );
    }
}

/// Replaces watcher `w` session `s` by one built from `batches`.
fn with_session(
    mut h: Vec<Record>,
    w: u64,
    s: u32,
    start: i64,
    batches: Vec<Vec<WatchEvent>>,
) -> Vec<Record> {
    let at = h
        .iter()
        .position(|r| matches!(r.request, Request::Watch { watcher, session, .. } if watcher == w && session == s))
        .expect("the session exists");
    let old = h.remove(at);
    let Outcome::Ok {
        response: Response::Watch(data),
        ..
    } = &old.outcome
    else {
        panic!("a watch session");
    };
    let created = data.created_revision.expect("created");
    h.push(session(w, s, start, created, batches, old.invoked_ns));
    h
}

#[test]
fn a_correct_watch_history_passes_every_check() {
    let report = check_history(&correct(), &keys());
    assert!(!report.failed(), "{report:#?}");
    assert_eq!(report.watch_gaps, Verdict::Pass);
}

#[test]
fn a_filtered_watcher_passes_without_the_filtered_events_and_fails_with_them() {
    let mut h = correct();
    let puts = vec![vec![ev2()], vec![ev3(), ev4()], vec![ev6a(), ev6b()]];
    h.push(no_delete(session(2, 0, 1, 1, puts, 2)));
    let report = check_history(&h, &keys());
    assert!(!report.failed(), "{report:#?}");

    let mut h = correct();
    let all = vec![
        vec![ev2()],
        vec![ev3(), ev4()],
        vec![ev5()],
        vec![ev6a(), ev6b()],
    ];
    h.push(no_delete(session(2, 0, 1, 1, all, 2)));
    failed_only(&check_history(&h, &keys()), &["watch-filters"]);

    // Filtering deletes does not excuse a missing put.
    let mut h = correct();
    let missing_put = vec![vec![ev2()], vec![ev4()], vec![ev6a(), ev6b()]];
    h.push(no_delete(session(2, 0, 1, 1, missing_put, 2)));
    failed_only(&check_history(&h, &keys()), &["watch-gaps"]);
}

#[test]
fn a_gap_is_caught() {
    // Watcher 1 never receives the delete at revision 5.
    let h = with_session(correct(), 1, 0, 0, vec![vec![ev4()], vec![ev6a(), ev6b()]]);
    failed_only(&check_history(&h, &keys()), &["watch-gaps"]);
}

#[test]
fn a_missing_change_no_other_watcher_saw_is_caught_from_the_kv_history() {
    // Both watchers miss revision 5; only the acknowledged delete names it.
    let h = with_session(correct(), 1, 0, 0, vec![vec![ev4()], vec![ev6a(), ev6b()]]);
    let h = with_session(h, 0, 1, 5, vec![vec![ev6a(), ev6b()]]);
    failed_only(&check_history(&h, &keys()), &["watch-gaps"]);
}

#[test]
fn a_duplicate_event_is_caught() {
    // The resumed session delivers revision 4 again, although it asked for 5.
    let h = with_session(
        correct(),
        0,
        1,
        5,
        vec![vec![ev4()], vec![ev5()], vec![ev6a(), ev6b()]],
    );
    let report = check_history(&h, &keys());
    assert!(report.watch_duplicates.failed(), "{report:#?}");
    assert!(report.watch_resumable.failed(), "{report:#?}");
}

#[test]
fn reordered_events_are_caught() {
    let h = with_session(
        correct(),
        1,
        0,
        0,
        vec![vec![ev5()], vec![ev4()], vec![ev6a(), ev6b()]],
    );
    failed_only(&check_history(&h, &keys()), &["watch-ordered"]);
}

#[test]
fn a_revision_split_over_two_responses_is_caught() {
    let h = with_session(
        correct(),
        1,
        0,
        0,
        vec![vec![ev4(), ev5()], vec![ev6a()], vec![ev6b()]],
    );
    failed_only(&check_history(&h, &keys()), &["watch-atomic"]);
}

#[test]
fn a_wrong_prev_kv_is_caught() {
    // prev_kv names the value before the previous one (with the version
    // the previous one had, so only the revisions tell).
    let mut wrong = ev6a();
    wrong.prev = Some(PrevKv {
        value: "a".to_owned(),
        mod_revision: 2,
        create_revision: 2,
        version: 2,
    });
    let h = with_session(
        correct(),
        1,
        0,
        0,
        vec![vec![ev4(), ev5()], vec![wrong, ev6b()]],
    );
    failed_only(&check_history(&h, &keys()), &["watch-prev-kv"]);

    // A dropped prev_kv on a delete.
    let mut dropped = ev5();
    dropped.prev = None;
    let h = with_session(
        correct(),
        1,
        0,
        0,
        vec![vec![ev4(), dropped], vec![ev6a(), ev6b()]],
    );
    failed_only(&check_history(&h, &keys()), &["watch-prev-kv"]);

    // A dropped prev_kv is excused when the revision before was compacted.
    let mut dropped = ev5();
    dropped.prev = None;
    let mut h = with_session(
        correct(),
        1,
        0,
        0,
        vec![vec![ev4(), dropped], vec![ev6a(), ev6b()]],
    );
    h.push(ok(
        9,
        Request::Compact { revision: 5 },
        0,
        5,
        5,
        Response::Compacted,
    ));
    failed_only(&check_history(&h, &keys()), &[]);
}

#[test]
fn a_resume_that_skips_a_revision_is_caught() {
    let h = with_session(correct(), 0, 1, 6, vec![vec![ev6a(), ev6b()]]);
    failed_only(
        &check_history(&h, &keys()),
        &["watch-resumable", "watch-gaps"],
    );
}

#[test]
fn a_replay_that_disagrees_with_a_range_is_caught() {
    // Revision 6's events name the right keys but the range read at 6 saw
    // another value of k1: the range is a fabricated stale answer.
    let mut h = correct();
    h.push(ok(
        7,
        Request::Range {
            prefix: KEY_PREFIX.to_owned(),
            serializable: true,
        },
        60,
        70,
        5,
        Response::Kvs(vec![(key(0), "a2".to_owned()), (key(1), "b".to_owned())]),
    ));
    failed_only(&check_history(&h, &keys()), &["watch-gaps"]);
}

// --- leases -----------------------------------------------------------------

const LEASE: i64 = 0x1_0000_0001;

fn lease_key() -> String {
    format!("{KEY_PREFIX}lease/{LEASE:x}/0")
}

fn lease_history() -> Vec<Record> {
    let l = 10_000;
    vec![
        ok(
            l,
            Request::LeaseGrant {
                id: LEASE,
                ttl_secs: 2,
            },
            0,
            SEC / 10,
            1,
            Response::LeaseGranted { ttl_secs: 2 },
        ),
        ok(
            l,
            Request::PutWithLease {
                key: lease_key(),
                value: "l0-1".to_owned(),
                lease: LEASE,
            },
            SEC / 5,
            SEC / 4,
            2,
            Response::Put,
        ),
        ok(
            l,
            Request::LeaseKeepAlive { id: LEASE },
            SEC,
            SEC + SEC / 10,
            2,
            Response::LeaseAlive { ttl_secs: 2 },
        ),
        ok(
            l,
            Request::Range {
                prefix: format!("{KEY_PREFIX}lease/"),
                serializable: false,
            },
            SEC + SEC / 5,
            SEC + SEC / 4,
            2,
            Response::Kvs(vec![(lease_key(), "l0-1".to_owned())]),
        ),
        // Gone 2.5 s after the keep-alive was invoked: a legitimate expiry.
        ok(
            l,
            Request::PutWithLease {
                key: lease_key(),
                value: "l0-2".to_owned(),
                lease: LEASE,
            },
            3 * SEC + SEC / 2,
            3 * SEC + SEC / 2 + 10,
            0,
            Response::LeaseNotFound,
        ),
        ok(
            l,
            Request::Range {
                prefix: format!("{KEY_PREFIX}lease/"),
                serializable: false,
            },
            4 * SEC,
            4 * SEC + 10,
            3,
            Response::Kvs(Vec::new()),
        ),
        ok(
            FINAL_READER,
            Request::Get {
                key: key(0),
                serializable: false,
            },
            6 * SEC,
            6 * SEC + 10,
            3,
            Response::Value(None),
        ),
        ok(
            FINAL_READER,
            Request::Get {
                key: key(1),
                serializable: false,
            },
            6 * SEC,
            6 * SEC + 10,
            3,
            Response::Value(None),
        ),
    ]
}

#[test]
fn a_correct_lease_history_passes_every_check() {
    let report = check_history(&lease_history(), &keys());
    assert!(!report.failed(), "{report:#?}");
}

#[test]
fn a_key_read_after_its_lease_expired_is_caught() {
    let mut h = lease_history();
    h.push(ok(
        10_001,
        Request::Range {
            prefix: KEY_PREFIX.to_owned(),
            serializable: false,
        },
        5 * SEC,
        5 * SEC + 10,
        3,
        Response::Kvs(vec![(lease_key(), "l0-1".to_owned())]),
    ));
    failed_only(&check_history(&h, &keys()), &["lease-revoke"]);
}

#[test]
fn a_lease_found_alive_after_its_revoke_is_caught() {
    let mut h = lease_history();
    h.retain(|r| !matches!(r.outcome, Outcome::Ok { returned_ns, .. } if returned_ns > 2 * SEC && r.client != FINAL_READER));
    h.push(ok(
        10_000,
        Request::LeaseRevoke { id: LEASE },
        2 * SEC,
        2 * SEC + 10,
        3,
        Response::LeaseRevoked,
    ));
    h.push(ok(
        10_000,
        Request::PutWithLease {
            key: lease_key(),
            value: "l0-3".to_owned(),
            lease: LEASE,
        },
        3 * SEC,
        3 * SEC + 10,
        4,
        Response::Put,
    ));
    failed_only(&check_history(&h, &keys()), &["lease-revoke"]);
}

#[test]
fn an_early_expiry_is_caught() {
    // Gone 1.5 s after a keep-alive of a 2 s lease.
    let mut h = lease_history();
    let Request::PutWithLease { .. } = h[4].request else {
        panic!("the gone observation");
    };
    h[4].invoked_ns = 2 * SEC + SEC / 2;
    h[4].outcome = Outcome::Ok {
        returned_ns: 2 * SEC + SEC / 2 + 10,
        revision: 0,
        response: Response::LeaseNotFound,
    };
    failed_only(&check_history(&h, &keys()), &["lease-expiry"]);

    // A revoke invoked before the loss explains it.
    h.push(ok(
        10_000,
        Request::LeaseRevoke { id: LEASE },
        2 * SEC,
        2 * SEC + 10,
        3,
        Response::LeaseRevoked,
    ));
    failed_only(&check_history(&h, &keys()), &[]);
}
