//! etcd 3.4's lease behaviours, one test per rule, named after what etcd does.

use keel_lease::{
    Checkpoint, LeaseError, LeaseId, LeaseRecord, Lessor, LessorConfig, MAX_LEASE_TTL_SECS,
    RestoreError, min_lease_ttl_secs,
};

fn id(n: i64) -> LeaseId {
    LeaseId::new(n).expect("test ids are nonzero")
}

fn lessor() -> Lessor {
    Lessor::new(LessorConfig::default())
}

#[test]
fn min_ttl_is_one_and_a_half_election_timeouts_rounded_up_to_seconds() {
    // (3 * ticks) / 2 heartbeats, integer division on ticks, then ceil to seconds.
    let table = [
        (10, 100, 2),   // etcd defaults: 15 * 100 ms = 1.5 s -> 2 s
        (10, 200, 3),   // 15 * 200 ms = 3 s exactly
        (5, 100, 1),    // 7 * 100 ms = 0.7 s -> 1 s (7, not 7.5: ticks divide first)
        (11, 100, 2),   // 16 * 100 ms = 1.6 s -> 2 s
        (50, 100, 8),   // 75 * 100 ms = 7.5 s -> 8 s
        (10, 1000, 15), // 15 s
    ];
    for (ticks, heartbeat_ms, want) in table {
        assert_eq!(
            min_lease_ttl_secs(ticks, heartbeat_ms),
            want,
            "ticks {ticks}, heartbeat {heartbeat_ms} ms"
        );
    }
    assert_eq!(LessorConfig::default().min_ttl_secs, 2);
}

#[test]
fn grant_raises_short_ttls_to_the_minimum() {
    let mut l = lessor();
    let cases = [
        (1, -5, 2),
        (2, 0, 2),
        (3, 1, 2),
        (4, 2, 2),
        (5, 3, 3),
        (6, MAX_LEASE_TTL_SECS, MAX_LEASE_TTL_SECS),
    ];
    for (n, asked, granted) in cases {
        let r = l.apply_grant(n, asked, 0).expect("valid grant");
        assert_eq!(
            r,
            LeaseRecord {
                id: id(n),
                ttl_secs: granted,
                remaining_ttl_secs: 0
            },
            "asked {asked}"
        );
    }
}

#[test]
fn grant_errors_carry_etcds_messages() {
    let mut l = lessor();
    l.apply_grant(7, 10, 0).expect("first grant");
    let cases = [
        (
            7,
            10,
            LeaseError::AlreadyExists,
            "etcdserver: lease already exists",
        ),
        (
            8,
            MAX_LEASE_TTL_SECS + 1,
            LeaseError::TtlTooLarge,
            "etcdserver: too large lease TTL",
        ),
        (
            0,
            10,
            LeaseError::NotFound,
            "etcdserver: requested lease not found",
        ),
    ];
    for (n, ttl, err, msg) in cases {
        let got = l.apply_grant(n, ttl, 0).expect_err("must fail");
        assert_eq!(got, err);
        assert_eq!(got.to_string(), msg);
    }
    // A failed grant changes nothing.
    assert_eq!(l.leases(), vec![id(7)]);
}

#[test]
fn too_large_ttl_is_checked_before_duplicate_id_as_in_etcd() {
    let mut l = lessor();
    l.apply_grant(7, 10, 0).expect("first grant");
    assert_eq!(
        l.apply_grant(7, MAX_LEASE_TTL_SECS + 1, 0),
        Err(LeaseError::TtlTooLarge)
    );
}

#[test]
fn server_chosen_ids_are_positive_and_never_zero() {
    assert_eq!(
        LeaseId::from_request_id(0x8000_0000_0000_0005).map(LeaseId::get),
        Some(5)
    );
    assert_eq!(
        LeaseId::from_request_id(u64::MAX).map(LeaseId::get),
        Some(i64::MAX)
    );
    assert_eq!(LeaseId::from_request_id(1 << 63), None);
    assert_eq!(LeaseId::from_request_id(0), None);
    assert_eq!(id(0x694d_77aa_9e38_260f).to_string(), "694d77aa9e38260f");
    assert_eq!(LeaseId::new(0), None);
}

#[test]
fn max_leases_bounds_grants_and_restores() {
    let mut l = Lessor::new(LessorConfig {
        max_leases: 2,
        ..LessorConfig::default()
    });
    l.apply_grant(1, 10, 0).expect("room");
    l.apply_grant(2, 10, 0).expect("room");
    assert_eq!(
        l.apply_grant(3, 10, 0),
        Err(LeaseError::TooManyLeases { limit: 2 })
    );
    l.apply_revoke(1).expect("exists");
    l.apply_grant(3, 10, 0).expect("room again");
    let records = (1..=3).map(|n| LeaseRecord {
        id: id(n),
        ttl_secs: 10,
        remaining_ttl_secs: 0,
    });
    assert_eq!(l.restore(records), Err(RestoreError::TooMany { limit: 2 }));
    assert!(l.is_empty());
}

#[test]
fn revoke_returns_attached_keys_sorted_and_detaches_them() {
    let mut l = lessor();
    l.apply_grant(1, 10, 0).expect("grant");
    l.apply_grant(2, 10, 0).expect("grant");
    for key in [&b"b"[..], b"a", b"c\xff", b"c"] {
        l.attach(id(1), key).expect("lease exists");
    }
    l.attach(id(2), b"z").expect("lease exists");
    let revoked = l.apply_revoke(1).expect("exists");
    assert_eq!(revoked.id, id(1));
    assert_eq!(
        revoked.keys,
        vec![
            b"a".to_vec(),
            b"b".to_vec(),
            b"c".to_vec(),
            b"c\xff".to_vec()
        ]
    );
    assert_eq!(l.lease_of(b"a"), None);
    assert_eq!(l.lease_of(b"z"), Some(id(2)));
    assert_eq!(l.apply_revoke(1), Err(LeaseError::NotFound));
    assert_eq!(l.apply_revoke(0), Err(LeaseError::NotFound));
}

#[test]
fn put_with_another_lease_moves_the_key_and_delete_detaches_it() {
    let mut l = lessor();
    l.apply_grant(1, 10, 0).expect("grant");
    l.apply_grant(2, 10, 0).expect("grant");
    assert_eq!(l.attach(id(1), b"k"), Ok(None));
    assert_eq!(
        l.attach(id(1), b"k"),
        Ok(None),
        "same lease again is a no-op"
    );
    assert_eq!(l.attach(id(2), b"k"), Ok(Some(id(1))));
    assert_eq!(l.keys(id(1)).expect("exists").count(), 0);
    assert_eq!(
        l.keys(id(2)).expect("exists").collect::<Vec<_>>(),
        vec![&b"k"[..]]
    );
    assert_eq!(l.detach(b"k"), Some(id(2)), "overwritten without a lease");
    assert_eq!(l.detach(b"k"), None);
    assert_eq!(l.attach(id(9), b"k"), Err(LeaseError::NotFound));
    assert_eq!(l.lease_of(b"k"), None);
}

#[test]
fn renew_on_a_member_that_is_not_primary_is_refused() {
    let mut l = lessor();
    l.apply_grant(1, 10, 0).expect("grant");
    assert_eq!(l.renew(id(1), 5), Err(LeaseError::NotPrimary));
    assert_eq!(l.time_to_live(id(1), 5, false), Err(LeaseError::NotPrimary));
    l.promote(10, 1000);
    assert!(l.renew(id(1), 20).is_ok());
    l.demote();
    assert_eq!(l.renew(id(1), 30), Err(LeaseError::NotPrimary));
}

#[test]
fn renew_returns_the_granted_ttl_and_restarts_it() {
    let mut l = lessor();
    l.promote(0, 0);
    l.apply_grant(1, 10, 0).expect("grant");
    assert_eq!(l.expiry_ms(id(1)), Some(10_000));
    let renewed = l.renew(id(1), 6_000).expect("alive");
    assert_eq!(renewed.ttl_secs, 10);
    assert_eq!(renewed.checkpoint, None, "nothing recorded to clear");
    assert_eq!(l.expiry_ms(id(1)), Some(16_000));
    assert_eq!(l.renew(id(2), 6_000), Err(LeaseError::NotFound));
    assert_eq!(
        l.renew(id(2), 6_000).expect_err("missing").to_string(),
        "etcdserver: requested lease not found"
    );
}

#[test]
fn an_expired_lease_awaiting_its_revoke_cannot_be_renewed() {
    let mut l = lessor();
    l.promote(0, 0);
    l.apply_grant(1, 10, 0).expect("grant");
    assert_eq!(l.find_expired(10_000, 10), vec![id(1)]);
    assert_eq!(l.renew(id(1), 10_001), Err(LeaseError::Expired(id(1))));
    l.apply_revoke(1).expect("revoke applies");
    assert_eq!(l.renew(id(1), 10_002), Err(LeaseError::NotFound));
}

#[test]
fn time_to_live_reports_granted_remaining_and_keys() {
    let mut l = lessor();
    l.promote(0, 0);
    l.apply_grant(1, 30, 0).expect("grant");
    l.attach(id(1), b"y").expect("exists");
    l.attach(id(1), b"x").expect("exists");
    let ttl = l.time_to_live(id(1), 10_500, true).expect("primary");
    assert_eq!(
        (ttl.id, ttl.granted_ttl_secs, ttl.ttl_secs),
        (id(1), 30, 19),
        "19.5 s truncates to 19"
    );
    assert_eq!(ttl.keys, vec![b"x".to_vec(), b"y".to_vec()]);
    assert!(
        l.time_to_live(id(1), 10_500, false)
            .expect("primary")
            .keys
            .is_empty()
    );
    assert_eq!(
        l.time_to_live(id(1), 31_000, false)
            .expect("primary")
            .ttl_secs,
        0,
        "expired, revoke pending"
    );
    assert_eq!(
        l.time_to_live(id(2), 31_000, false),
        Err(LeaseError::NotFound)
    );
}

#[test]
fn leases_lists_every_lease_on_any_member() {
    let mut l = lessor();
    for n in [5, -3, 9] {
        l.apply_grant(n, 10, 0).expect("grant");
    }
    assert_eq!(l.leases(), vec![id(-3), id(5), id(9)]);
    assert_eq!(l.len(), 3);
}

#[test]
fn a_member_that_is_not_primary_never_expires_leases() {
    let mut l = lessor();
    l.apply_grant(1, 10, 0).expect("grant");
    assert!(l.find_expired(1_000_000, 100).is_empty());
    assert!(l.due_checkpoints(1_000_000).is_empty());
    assert_eq!(l.next_deadline_ms(), None);
    assert_eq!(l.expiry_ms(id(1)), None);
}

#[test]
fn checkpoints_are_recorded_clamped_and_unknown_ids_skipped() {
    let mut l = lessor();
    l.apply_grant(1, 100, 0).expect("grant");
    let changed = l.apply_checkpoint(&[
        Checkpoint {
            id: id(1),
            remaining_ttl_secs: 40,
        },
        Checkpoint {
            id: id(2),
            remaining_ttl_secs: 40,
        },
    ]);
    assert_eq!(
        changed,
        vec![LeaseRecord {
            id: id(1),
            ttl_secs: 100,
            remaining_ttl_secs: 40
        }]
    );
    let changed = l.apply_checkpoint(&[Checkpoint {
        id: id(1),
        remaining_ttl_secs: 500,
    }]);
    assert_eq!(
        changed[0].remaining_ttl_secs, 100,
        "never more than granted"
    );
    let changed = l.apply_checkpoint(&[Checkpoint {
        id: id(1),
        remaining_ttl_secs: -4,
    }]);
    assert_eq!(changed[0].remaining_ttl_secs, 0);
}

#[test]
fn restore_rebuilds_from_records_raises_ttls_and_demotes() {
    let mut l = lessor();
    l.promote(0, 0);
    l.apply_grant(99, 10, 0).expect("grant");
    let records = [
        LeaseRecord {
            id: id(1),
            ttl_secs: 1,
            remaining_ttl_secs: 1,
        },
        LeaseRecord {
            id: id(2),
            ttl_secs: 60,
            remaining_ttl_secs: 20,
        },
    ];
    l.restore(records).expect("distinct ids");
    assert!(!l.is_primary());
    assert_eq!(l.leases(), vec![id(1), id(2)]);
    assert_eq!(
        l.get(id(1)),
        Some(LeaseRecord {
            id: id(1),
            ttl_secs: 2,
            remaining_ttl_secs: 1
        })
    );
    assert_eq!(l.records().collect::<Vec<_>>()[1], records[1]);
    // Keys come back from the key-value store.
    l.attach(id(2), b"k").expect("restored");
    l.promote(1_000, 0);
    assert_eq!(
        l.expiry_ms(id(2)),
        Some(21_000),
        "resumes from the checkpoint"
    );
    let dup = [records[1], records[1]];
    assert_eq!(l.restore(dup), Err(RestoreError::Duplicate(id(2))));
    assert!(l.is_empty());
}

#[test]
fn every_member_applying_the_same_entries_agrees() {
    let mut primary = lessor();
    let mut follower = lessor();
    primary.promote(0, 1000);
    for (n, ttl) in [(1, 5), (2, 50), (3, 500)] {
        let a = primary.apply_grant(n, ttl, 100).expect("grant");
        let b = follower.apply_grant(n, ttl, 100).expect("grant");
        assert_eq!(a, b);
    }
    primary.attach(id(2), b"k").expect("exists");
    follower.attach(id(2), b"k").expect("exists");
    let cps = [Checkpoint {
        id: id(3),
        remaining_ttl_secs: 100,
    }];
    assert_eq!(
        primary.apply_checkpoint(&cps),
        follower.apply_checkpoint(&cps)
    );
    assert_eq!(primary.apply_revoke(2), follower.apply_revoke(2));
    assert_eq!(
        primary.records().collect::<Vec<_>>(),
        follower.records().collect::<Vec<_>>()
    );
}

#[test]
#[should_panic(expected = "clock must be monotonic")]
fn time_going_backwards_is_a_bug() {
    let mut l = lessor();
    l.promote(1_000, 0);
    let _ = l.find_expired(999, 1);
}
