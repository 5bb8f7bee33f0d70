//! Expiry on the primary: order, rate limit, retries, promote and demote.

use keel_lease::{Checkpoint, LeaseId, Lessor, LessorConfig};

fn id(n: i64) -> LeaseId {
    LeaseId::new(n).expect("test ids are nonzero")
}

#[test]
fn expired_leases_are_reported_earliest_first_and_only_once_due() {
    let mut l = Lessor::new(LessorConfig::default());
    l.promote(0, 0);
    for (n, ttl) in [(1, 30), (2, 10), (3, 20), (4, 10)] {
        l.apply_grant(n, ttl, 0).expect("grant");
    }
    assert!(l.find_expired(9_999, 100).is_empty());
    assert_eq!(l.next_deadline_ms(), Some(10_000));
    // Equal expiries come out by id, so the answer is deterministic.
    assert_eq!(l.find_expired(25_000, 100), vec![id(2), id(4), id(3)]);
    for n in [2, 4, 3] {
        l.apply_revoke(n).expect("reported");
    }
    assert_eq!(l.find_expired(30_000, 100), vec![id(1)]);
}

#[test]
fn a_reported_lease_is_reported_again_after_the_retry_interval_if_not_revoked() {
    let mut l = Lessor::new(LessorConfig {
        expired_retry_interval_ms: 3_000,
        ..LessorConfig::default()
    });
    l.promote(0, 0);
    l.apply_grant(1, 10, 0).expect("grant");
    assert_eq!(l.find_expired(10_000, 10), vec![id(1)]);
    assert!(
        l.find_expired(12_999, 10).is_empty(),
        "revoke still in flight"
    );
    assert_eq!(
        l.find_expired(13_000, 10),
        vec![id(1)],
        "the revoke proposal was lost: report again"
    );
    l.apply_revoke(1).expect("revoke applies");
    assert!(l.find_expired(100_000, 10).is_empty());
}

#[test]
fn reports_are_bounded_per_call_and_rate_limited_over_time() {
    let config = LessorConfig {
        revoke_rate_per_sec: 100,
        max_expired_per_call: 40,
        expired_retry_interval_ms: 1_000_000,
        ..LessorConfig::default()
    };
    let mut l = Lessor::new(config);
    l.promote(0, 0);
    for n in 1..=2_000 {
        l.apply_grant(n, 10, 0).expect("grant");
    }
    assert_eq!(l.find_expired(10_000, 5).len(), 5, "caller's limit");
    assert_eq!(
        l.find_expired(10_000, 1_000).len(),
        40,
        "max_expired_per_call"
    );
    // Burst is half the per-second rate (50): 45 were taken, 5 remain.
    assert_eq!(l.find_expired(10_000, 1_000).len(), 5, "bucket drained");
    assert!(l.find_expired(10_000, 1_000).is_empty());
    // 100 per second refills one token every 10 ms.
    assert_eq!(l.find_expired(10_090, 1_000).len(), 9);
    // A long pause refills only up to the burst.
    assert_eq!(l.find_expired(60_000, 1_000).len(), 40);
    assert_eq!(l.find_expired(60_000, 1_000).len(), 10);
    // Over 10 s the total is the rate times the time, plus one burst.
    let mut total = 0;
    let mut now_ms = 60_000;
    while now_ms < 70_000 {
        now_ms += 100;
        total += l.find_expired(now_ms, 1_000).len();
    }
    assert_eq!(total, 1_000 / 10 * 10, "100 per second for 10 s");
    assert_eq!(l.find_expired(70_000, 1_000).len(), 0);
}

#[test]
fn promote_restarts_leases_from_now_plus_extension() {
    let mut l = Lessor::new(LessorConfig::default());
    l.apply_grant(1, 10, 0).expect("grant while follower");
    l.apply_grant(2, 600, 0).expect("grant while follower");
    l.apply_checkpoint(&[Checkpoint {
        id: id(2),
        remaining_ttl_secs: 100,
    }]);
    l.promote(50_000, 1_000);
    assert_eq!(
        l.expiry_ms(id(1)),
        Some(61_000),
        "full TTL without a checkpoint, plus the extension"
    );
    assert_eq!(
        l.expiry_ms(id(2)),
        Some(151_000),
        "checkpointed remaining TTL plus the extension"
    );
    assert!(l.find_expired(60_999, 10).is_empty());
    assert_eq!(l.find_expired(61_000, 10), vec![id(1)]);
}

#[test]
fn demote_stops_expiry_and_checkpoints_and_promote_starts_them_again() {
    let mut l = Lessor::new(LessorConfig {
        checkpoint_interval_ms: 5_000,
        ..LessorConfig::default()
    });
    l.promote(0, 0);
    l.apply_grant(1, 10, 0).expect("grant");
    l.demote();
    assert!(!l.is_primary());
    assert!(l.find_expired(100_000, 10).is_empty());
    assert!(l.due_checkpoints(100_000).is_empty());
    l.promote(100_000, 2_000);
    assert_eq!(l.expiry_ms(id(1)), Some(112_000));
    assert_eq!(l.find_expired(112_000, 10), vec![id(1)]);
}

#[test]
fn grants_on_a_follower_start_expiring_only_when_it_is_promoted() {
    let mut l = Lessor::new(LessorConfig::default());
    l.apply_grant(1, 5, 0).expect("grant");
    assert!(l.find_expired(1_000_000, 10).is_empty());
    l.promote(1_000_000, 0);
    assert_eq!(l.find_expired(1_005_000, 10), vec![id(1)]);
}

#[test]
fn checkpoints_come_every_interval_while_the_lease_will_outlive_the_next_one() {
    let mut l = Lessor::new(LessorConfig {
        checkpoint_interval_ms: 10_000,
        ..LessorConfig::default()
    });
    l.promote(0, 0);
    l.apply_grant(1, 35, 0).expect("grant");
    l.apply_grant(2, 10, 0)
        .expect("outlived by no checkpoint: never checkpointed");
    assert_eq!(l.next_deadline_ms(), Some(10_000));
    assert!(l.due_checkpoints(9_999).is_empty());
    // Poll late: the remaining TTL rounds up, so the checkpoint describes 10 s, not 10.3 s.
    assert_eq!(
        l.due_checkpoints(10_300),
        vec![Checkpoint {
            id: id(1),
            remaining_ttl_secs: 25
        }]
    );
    assert_eq!(l.due_checkpoints(19_999), vec![], "next one is due at 20 s");
    assert_eq!(
        l.due_checkpoints(20_000),
        vec![Checkpoint {
            id: id(1),
            remaining_ttl_secs: 15
        }]
    );
    assert_eq!(
        l.due_checkpoints(30_000),
        vec![Checkpoint {
            id: id(1),
            remaining_ttl_secs: 5
        }]
    );
    assert_eq!(
        l.due_checkpoints(1_000_000),
        vec![],
        "expires before another interval"
    );
}

#[test]
fn checkpoint_batches_are_bounded() {
    let config = LessorConfig {
        checkpoint_interval_ms: 1_000,
        max_checkpoint_batch: 7,
        ..LessorConfig::default()
    };
    let mut l = Lessor::new(config);
    l.promote(0, 0);
    for n in 1..=20 {
        l.apply_grant(n, 100, 0).expect("grant");
    }
    let sizes: Vec<usize> = (0..4).map(|_| l.due_checkpoints(1_000).len()).collect();
    assert_eq!(sizes, vec![7, 7, 6, 0]);
}

#[test]
fn renew_clears_a_recorded_or_in_flight_checkpoint() {
    let mut l = Lessor::new(LessorConfig {
        checkpoint_interval_ms: 10_000,
        ..LessorConfig::default()
    });
    l.promote(0, 0);
    l.apply_grant(1, 60, 0).expect("grant");
    let cps = l.due_checkpoints(10_000);
    assert_eq!(
        cps,
        vec![Checkpoint {
            id: id(1),
            remaining_ttl_secs: 50
        }]
    );
    // Renewed before the checkpoint applied: it is in flight, and would leave a stale
    // 50 s behind, so the renew clears it.
    let renewed = l.renew(id(1), 11_000).expect("alive");
    assert_eq!(
        renewed.checkpoint,
        Some(Checkpoint {
            id: id(1),
            remaining_ttl_secs: 0
        })
    );
    l.apply_checkpoint(&cps);
    l.apply_checkpoint(&[renewed.checkpoint.expect("checked above")]);
    assert_eq!(l.get(id(1)).expect("exists").remaining_ttl_secs, 0);
    // Nothing recorded, nothing in flight: no clearing entry.
    assert_eq!(l.renew(id(1), 12_000).expect("alive").checkpoint, None);
    // Recorded: cleared again.
    let cps = l.due_checkpoints(22_000);
    assert_eq!(cps.len(), 1);
    l.apply_checkpoint(&cps);
    assert!(l.renew(id(1), 23_000).expect("alive").checkpoint.is_some());
}

#[test]
fn stats_count_what_etcds_lease_metrics_count() {
    let mut l = Lessor::new(LessorConfig {
        checkpoint_interval_ms: 10_000,
        ..LessorConfig::default()
    });
    l.promote(0, 0);
    l.apply_grant(1, 60, 0).expect("grant");
    l.apply_grant(2, 10, 0).expect("grant");
    assert!(
        l.apply_grant(2, 10, 0).is_err(),
        "failed grants are not counted"
    );
    l.renew(id(2), 5_000).expect("alive");
    let cps = l.due_checkpoints(10_000);
    l.apply_checkpoint(&cps);
    l.renew(id(1), 11_000)
        .expect("alive, clears the checkpoint");
    assert_eq!(l.find_expired(15_000, 10), vec![id(2)]);
    l.apply_revoke(2).expect("reported");
    let stats = l.stats();
    assert_eq!(
        (
            stats.granted_total,
            stats.renewed_total,
            stats.revoked_total
        ),
        (2, 2, 1)
    );
    assert_eq!(
        (
            stats.expired_reported_total,
            stats.checkpoints_emitted_total
        ),
        (1, 2)
    );
}
