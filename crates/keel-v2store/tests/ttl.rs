//! TTLs: expiry only through `delete_expired_keys`, `ttl` computed from the caller's clock,
//! updates that add, move or drop a TTL, and TTLs surviving a snapshot.

use keel_v2store::{Action, ErrorCode, Store, TtlOptions};

const S: i64 = 1_000_000_000;
const NOW: i64 = 1_795_305_600 * S;
const P: TtlOptions = TtlOptions::PERMANENT;

#[test]
fn ttl_counts_down_and_key_expires_at_its_time() {
    let mut s = Store::new(&["/1"]);
    let e = s
        .set(
            "/1/k",
            false,
            "v",
            TtlOptions::expire_at(NOW + 100 * S),
            NOW,
        )
        .expect("set");
    assert_eq!(e.node.ttl, 100);
    assert_eq!(e.node.expiration, Some(NOW + 100 * S));
    assert!(
        e.to_json()
            .contains(r#""expiration":"2026-11-22T00:01:40Z","ttl":100"#),
        "{}",
        e.to_json()
    );
    let g = s.get("/1/k", false, false, NOW + 30 * S + 1).expect("get");
    assert_eq!(g.node.ttl, 70, "rounded up");
    assert_eq!(s.next_expiry(), Some(NOW + 100 * S));
    assert!(s.delete_expired_keys(NOW + 100 * S - 1).is_empty());
    assert_eq!(s.index(), 1);
    let ex = s.delete_expired_keys(NOW + 100 * S);
    assert_eq!(ex.len(), 1);
    assert_eq!(ex[0].action, Action::Expire);
    assert_eq!(ex[0].index(), 2);
    assert_eq!(ex[0].node.created_index, 1);
    assert_eq!(
        ex[0]
            .prev_node
            .as_ref()
            .and_then(|p| p.value.clone())
            .as_deref(),
        Some("v")
    );
    assert_eq!(s.index(), 2);
    assert!(!s.has_ttl_keys());
    assert_eq!(s.stats().expire_count, 1);
    let err = s.get("/1/k", false, false, NOW).expect_err("gone");
    assert_eq!(err.code, ErrorCode::KeyNotFound);
    s.check_invariants();
}

#[test]
fn expired_but_not_yet_synced_keys_are_still_readable() {
    let mut s = Store::new(&[]);
    s.set("/k", false, "v", TtlOptions::expire_at(NOW + S), NOW)
        .expect("set");
    let g = s
        .get("/k", false, false, NOW + 3 * S + S / 2)
        .expect("still there");
    assert_eq!(g.node.ttl, -2, "etcd reports negative ttls until the SYNC");
}

#[test]
fn expiry_removes_whole_directories_in_expiry_order() {
    let mut s = Store::new(&["/1"]);
    s.set(
        "/1/d/a",
        false,
        "a",
        TtlOptions::expire_at(NOW + 5 * S),
        NOW,
    )
    .expect("set");
    s.set("/1/d/b", false, "b", P, NOW).expect("set");
    s.update("/1/d", "", TtlOptions::expire_at(NOW + 2 * S), NOW)
        .expect("ttl on dir");
    s.set("/1/z", false, "z", TtlOptions::expire_at(NOW + S), NOW)
        .expect("set");
    let ex = s.delete_expired_keys(NOW + 10 * S);
    let keys: Vec<_> = ex
        .iter()
        .map(|e| (e.node.key.as_str(), e.index()))
        .collect();
    assert_eq!(
        keys,
        vec![("/1/z", 5), ("/1/d", 6)],
        "the child went with its directory"
    );
    assert!(!s.has_ttl_keys());
    s.check_invariants();
}

#[test]
fn updates_add_move_and_drop_ttls() {
    let mut s = Store::new(&[]);
    s.set("/k", false, "v", P, NOW).expect("set");
    let e = s
        .update("/k", "v2", TtlOptions::expire_at(NOW + 10 * S), NOW)
        .expect("add ttl");
    assert_eq!(e.node.ttl, 10);
    assert_eq!(s.next_expiry(), Some(NOW + 10 * S));
    s.compare_and_swap(
        "/k",
        "v2",
        0,
        "v3",
        TtlOptions::expire_at(NOW + 20 * S),
        NOW,
    )
    .expect("move ttl");
    assert_eq!(s.next_expiry(), Some(NOW + 20 * S));
    let e = s.update("/k", "v4", P, NOW).expect("drop ttl");
    assert_eq!((e.node.ttl, e.node.expiration), (0, None));
    assert!(!s.has_ttl_keys());
    s.set("/k", false, "v5", TtlOptions::expire_at(NOW + S), NOW)
        .expect("ttl again");
    s.set("/k", false, "v6", P, NOW)
        .expect("set replaces and drops ttl");
    assert!(!s.has_ttl_keys());
    s.check_invariants();
}

#[test]
fn expirations_before_2000_mean_permanent_on_create() {
    let mut s = Store::new(&[]);
    let e = s
        .set(
            "/k",
            false,
            "v",
            TtlOptions::expire_at(946_684_799 * S),
            NOW,
        )
        .expect("set");
    assert_eq!(e.node.expiration, None);
    assert!(!s.has_ttl_keys());
}

#[test]
fn refresh_of_a_missing_key_fails_without_changing_the_index() {
    let mut s = Store::new(&[]);
    let refresh = TtlOptions {
        expire_time: Some(NOW + S),
        refresh: true,
    };
    let err = s.set("/k", false, "", refresh, NOW).expect_err("missing");
    assert_eq!(err.code, ErrorCode::KeyNotFound);
    assert_eq!(s.index(), 0);
}

#[test]
fn ttls_survive_save_and_recover() {
    let mut s = Store::new(&["/0", "/1"]);
    s.set(
        "/1/a",
        false,
        "a",
        TtlOptions::expire_at(NOW + 7 * S + 123),
        NOW,
    )
    .expect("set");
    s.create("/1/d", true, "", TtlOptions::expire_at(NOW + 3 * S), NOW)
        .expect("create dir");
    let snap = s.save();
    let mut r = Store::new(&["/0", "/1"]);
    r.recover(&snap).expect("recover");
    r.check_invariants();
    assert_eq!(r.next_expiry(), Some(NOW + 3 * S));
    let ex = r.delete_expired_keys(NOW + 8 * S);
    assert_eq!(ex.iter().map(|e| e.index()).collect::<Vec<_>>(), vec![3, 4]);
    assert_eq!(
        ex[1].prev_node.as_ref().and_then(|p| p.expiration),
        Some(NOW + 7 * S + 123)
    );
}
