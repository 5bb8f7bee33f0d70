//! Recovery from a v2 snapshot written by real etcd 3.4 (extracted from its `.snap` file by
//! `fixtures.sh`), and byte-identical re-saving.

use keel_v2store::{Action, Store, TtlOptions, time::parse_rfc3339};

const ETCD_SNAPSHOT: &[u8] = include_bytes!("fixtures/etcd_v2_snapshot.json");

#[test]
fn recovers_etcds_snapshot_and_saves_it_back_identically() {
    let mut s = Store::new(&["/0", "/1"]);
    s.recover(ETCD_SNAPSHOT).expect("etcd's snapshot recovers");
    s.check_invariants();
    assert_eq!(s.index(), 19);
    assert_eq!(
        s.save(),
        ETCD_SNAPSHOT,
        "save(recover(etcd)) is byte-identical to etcd's JSON"
    );

    let expiry = parse_rfc3339("2026-11-23T21:32:11.651010184Z").expect("time");
    assert_eq!(s.next_expiry(), Some(expiry));

    let now = expiry - 100_000 * 1_000_000_000;
    let dir = s.get("/1/snap", false, true, now).expect("snap dir");
    let keys: Vec<_> = dir.node.nodes.iter().map(|n| n.key.as_str()).collect();
    assert!(keys.contains(&"/1/snap/k1") && keys.contains(&"/1/snap/dir"));
    assert!(
        !keys.contains(&"/1/snap/_hidden"),
        "hidden keys stay hidden"
    );
    let ttl = s.get("/1/snap/ttl", false, false, now).expect("ttl key");
    assert_eq!(ttl.node.ttl, 100_000);

    let mut w = s.watch("/0", true, false, 1).expect("history survived");
    let e = w.events.try_recv().expect("answered from history");
    assert_eq!(e.action, Action::Create);
    assert!(e.node.key.ends_with("/raftAttributes"));

    let next = s
        .set("/1/after", false, "x", TtlOptions::PERMANENT, now)
        .expect("writes continue");
    assert_eq!(next.index(), 20);
    assert_eq!(s.delete_expired_keys(expiry).len(), 1);
    s.check_invariants();
}
