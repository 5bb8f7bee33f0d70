//! Cases taken from etcd 3.4's behaviour (checked against `/usr/bin/etcd` with
//! `etcdctl -w json`, and etcd's `mvcc` and `etcdserver/apply.go`).

mod common;

use common::{Harness, cmp, keys, put_req, range_req};
use keel_mvcc::{
    CompareResult, CompareTarget, DeleteRangeRequest, MvccError, PutRequest, RangeRequest,
    RequestOp, ResponseOp, SortOrder, SortTarget, TxnRequest,
};

/// a=1 (rev 2), b=22 (3), a=333 (4), c=4 (5): the history used by the range cases.
fn abc() -> Harness {
    let mut h = Harness::new();
    assert_eq!(h.put("a", "1").revision, 2);
    assert_eq!(h.put("b", "22").revision, 3);
    assert_eq!(h.put("a", "333").revision, 4);
    assert_eq!(h.put("c", "4").revision, 5);
    h
}

#[test]
fn fresh_store_is_at_revision_one() {
    let h = Harness::new();
    let resp = h.range(&range_req("foo", "")).expect("range");
    assert_eq!(resp.revision, 1);
    assert_eq!(resp.count, 0);
    assert!(resp.kvs.is_empty());
    assert_eq!(h.store.compact_revision(), -1);
}

#[test]
fn put_sets_create_mod_and_version() {
    let h = abc();
    let a = h.get("a").expect("a exists");
    assert_eq!(
        (
            a.create_revision,
            a.mod_revision,
            a.version,
            a.value.as_slice()
        ),
        (2, 4, 2, &b"333"[..])
    );
}

#[test]
fn range_cases() {
    let h = abc();
    struct Case {
        name: &'static str,
        req: RangeRequest,
        keys: &'static [&'static str],
        more: bool,
        count: i64,
    }
    let base = |key: &str, end: &str| range_req(key, end);
    let cases = [
        Case {
            name: "single key",
            req: base("b", ""),
            keys: &["b"],
            more: false,
            count: 1,
        },
        Case {
            name: "missing key",
            req: base("zz", ""),
            keys: &[],
            more: false,
            count: 0,
        },
        Case {
            name: "half-open interval",
            req: base("a", "c"),
            keys: &["a", "b"],
            more: false,
            count: 2,
        },
        Case {
            name: "from key with \\0",
            req: base("b", "\0"),
            keys: &["b", "c"],
            more: false,
            count: 2,
        },
        Case {
            name: "all keys",
            req: base("\0", "\0"),
            keys: &["a", "b", "c"],
            more: false,
            count: 3,
        },
        Case {
            name: "end before key is empty",
            req: base("c", "a"),
            keys: &[],
            more: false,
            count: 0,
        },
        Case {
            name: "limit keeps count of all keys and sets more",
            req: RangeRequest {
                limit: 1,
                ..base("\0", "\0")
            },
            keys: &["a"],
            more: true,
            count: 3,
        },
        Case {
            name: "limit equal to the keys has no more",
            req: RangeRequest {
                limit: 3,
                ..base("\0", "\0")
            },
            keys: &["a", "b", "c"],
            more: false,
            count: 3,
        },
        Case {
            name: "the largest limit returns everything",
            req: RangeRequest {
                limit: i64::MAX,
                ..base("\0", "\0")
            },
            keys: &["a", "b", "c"],
            more: false,
            count: 3,
        },
        Case {
            name: "a negative limit means no limit",
            req: RangeRequest {
                limit: -1,
                ..base("\0", "\0")
            },
            keys: &["a", "b", "c"],
            more: false,
            count: 3,
        },
        Case {
            name: "at an older revision",
            req: RangeRequest {
                revision: 3,
                ..base("\0", "\0")
            },
            keys: &["a", "b"],
            more: false,
            count: 2,
        },
        Case {
            name: "sort by version descending",
            req: RangeRequest {
                sort_order: SortOrder::Descend,
                sort_target: SortTarget::Version,
                ..base("a", "\0")
            },
            keys: &["a", "b", "c"],
            more: false,
            count: 3,
        },
        Case {
            name: "target other than key sorts ascending by default",
            req: RangeRequest {
                sort_target: SortTarget::Mod,
                ..base("a", "\0")
            },
            keys: &["b", "a", "c"],
            more: false,
            count: 3,
        },
        Case {
            name: "sort by create descending with limit",
            req: RangeRequest {
                sort_order: SortOrder::Descend,
                sort_target: SortTarget::Create,
                limit: 2,
                ..base("a", "\0")
            },
            keys: &["c", "b"],
            more: true,
            count: 3,
        },
        Case {
            name: "sort by value ascending",
            req: RangeRequest {
                sort_order: SortOrder::Ascend,
                sort_target: SortTarget::Value,
                ..base("a", "\0")
            },
            keys: &["b", "a", "c"],
            more: false,
            count: 3,
        },
        Case {
            name: "sort by key descending",
            req: RangeRequest {
                sort_order: SortOrder::Descend,
                ..base("a", "\0")
            },
            keys: &["c", "b", "a"],
            more: false,
            count: 3,
        },
        Case {
            name: "min mod revision filters but count does not",
            req: RangeRequest {
                min_mod_revision: 4,
                ..base("a", "\0")
            },
            keys: &["a", "c"],
            more: false,
            count: 3,
        },
        Case {
            name: "max mod revision",
            req: RangeRequest {
                max_mod_revision: 4,
                ..base("a", "\0")
            },
            keys: &["a", "b"],
            more: false,
            count: 3,
        },
        Case {
            name: "min and max create revision",
            req: RangeRequest {
                min_create_revision: 3,
                max_create_revision: 3,
                ..base("a", "\0")
            },
            keys: &["b"],
            more: false,
            count: 3,
        },
        Case {
            name: "filters then limit",
            req: RangeRequest {
                min_create_revision: 3,
                limit: 1,
                ..base("a", "\0")
            },
            keys: &["b"],
            more: true,
            count: 3,
        },
        Case {
            name: "count only",
            req: RangeRequest {
                count_only: true,
                ..base("a", "\0")
            },
            keys: &[],
            more: false,
            count: 3,
        },
    ];
    for case in cases {
        let resp = h.range(&case.req).expect(case.name);
        assert_eq!(keys(&resp), case.keys, "{}: keys", case.name);
        assert_eq!(resp.more, case.more, "{}: more", case.name);
        assert_eq!(resp.count, case.count, "{}: count", case.name);
        assert_eq!(resp.revision, 5, "{}: header revision", case.name);
    }
}

#[test]
fn keys_only_drops_values() {
    let h = abc();
    let resp = h
        .range(&RangeRequest {
            keys_only: true,
            ..range_req("a", "\0")
        })
        .expect("range");
    assert_eq!(keys(&resp), ["a", "b", "c"]);
    assert!(
        resp.kvs
            .iter()
            .all(|kv| kv.value.is_empty() && kv.version > 0)
    );
}

#[test]
fn range_revision_errors() {
    let mut h = abc();
    let at = |rev| RangeRequest {
        revision: rev,
        ..range_req("a", "")
    };
    let err = h.range(&at(6)).expect_err("future");
    assert!(matches!(
        err,
        MvccError::FutureRevision {
            current_revision: 5
        }
    ));
    assert_eq!(
        err.to_string(),
        "mvcc: required revision is a future revision"
    );
    assert!(matches!(
        h.range(&RangeRequest::default()),
        Err(MvccError::EmptyKey)
    ));
    h.compact(4).expect("compact");
    let err = h.range(&at(3)).expect_err("compacted");
    assert_eq!(
        err.to_string(),
        "mvcc: required revision has been compacted"
    );
    // Reading exactly at the compaction point is allowed.
    let resp = h.range(&at(4)).expect("range at compact revision");
    assert_eq!(resp.kvs[0].value, b"333");
}

#[test]
fn put_options() {
    let mut h = abc();
    let prev = h
        .put_req(&PutRequest {
            prev_kv: true,
            ..put_req("a", "x")
        })
        .expect("put");
    assert_eq!(prev.revision, 6);
    assert_eq!(prev.prev_kv.expect("prev").value, b"333");
    let none = h
        .put_req(&PutRequest {
            prev_kv: true,
            ..put_req("new", "x")
        })
        .expect("put");
    assert!(none.prev_kv.is_none());

    let err = h
        .put_req(&PutRequest {
            ignore_value: true,
            ..put_req("missing", "")
        })
        .expect_err("ignore_value on a missing key");
    assert_eq!(err.to_string(), "etcdserver: key not found");
    let err = h
        .put_req(&PutRequest {
            ignore_lease: true,
            ..put_req("missing", "")
        })
        .expect_err("ignore_lease on a missing key");
    assert!(matches!(err, MvccError::KeyNotFound));
    assert_eq!(
        h.store.current_revision(),
        7,
        "failed puts do not bump the revision"
    );

    h.put_req(&PutRequest {
        lease: 42,
        ..put_req("l", "v")
    })
    .expect("put with lease");
    h.put_req(&PutRequest {
        ignore_value: true,
        ignore_lease: true,
        ..put_req("l", "")
    })
    .expect("put keeping value and lease");
    let l = h.get("l").expect("l");
    assert_eq!((l.value.as_slice(), l.lease, l.version), (&b"v"[..], 42, 2));
    h.put_req(&PutRequest {
        ignore_value: true,
        ..put_req("l", "")
    })
    .expect("put dropping the lease");
    let l = h.get("l").expect("l");
    assert_eq!((l.value.as_slice(), l.lease), (&b"v"[..], 0));
}

#[test]
fn delete_revisions_and_recreate_versions() {
    let mut h = abc();
    let missing = h.del("zzz", "");
    assert_eq!(
        (missing.deleted, missing.revision),
        (0, 5),
        "no-op delete keeps the revision"
    );
    let del = h.del("a", "");
    assert_eq!((del.deleted, del.revision), (1, 6));
    assert_eq!(del.prev_kvs[0].value, b"333");
    assert!(h.get("a").is_none());
    let again = h.put("a", "again");
    assert_eq!(again.revision, 7);
    let a = h.get("a").expect("a");
    assert_eq!((a.create_revision, a.mod_revision, a.version), (7, 7, 1));
    // The old generation is still readable at its revisions.
    let old = h
        .range(&RangeRequest {
            revision: 5,
            ..range_req("a", "")
        })
        .expect("range");
    assert_eq!(old.kvs[0].version, 2);
    let gone = h
        .range(&RangeRequest {
            revision: 6,
            ..range_req("a", "")
        })
        .expect("range");
    assert!(gone.kvs.is_empty());

    // A range delete gives each key its own sub-revision in one main revision.
    let del = h.del("\0", "\0");
    assert_eq!((del.deleted, del.revision), (3, 8));
    assert_eq!(h.store.current_revision(), 8);
    let at = h.at();
    let err = h
        .store
        .delete_range(
            at,
            &DeleteRangeRequest {
                key: Vec::new(),
                ..DeleteRangeRequest::default()
            },
        )
        .expect_err("empty key");
    assert_eq!(err.to_string(), "etcdserver: key is not provided");
}

fn put_op(key: &str, value: &str) -> RequestOp {
    RequestOp::Put(put_req(key, value))
}

fn get_op(key: &str) -> RequestOp {
    RequestOp::Range(range_req(key, ""))
}

fn del_op(key: &str, end: &str) -> RequestOp {
    RequestOp::DeleteRange(DeleteRangeRequest {
        key: key.into(),
        range_end: end.into(),
        prev_kv: false,
    })
}

#[test]
fn txn_one_revision_and_reads_own_writes() {
    let mut h = abc();
    let resp = h
        .txn(&TxnRequest {
            compare: vec![cmp(
                "c",
                CompareResult::Equal,
                CompareTarget::Value(b"4".to_vec()),
            )],
            success: vec![put_op("c", "5"), get_op("c"), put_op("d", "1")],
            failure: vec![],
        })
        .expect("txn");
    assert!(resp.succeeded);
    assert_eq!(resp.revision, 6);
    let ResponseOp::Range(r) = &resp.responses[1] else {
        panic!("second response is a range");
    };
    assert_eq!(r.revision, 6);
    assert_eq!((r.kvs[0].mod_revision, r.kvs[0].version), (6, 2));
    let ResponseOp::Put(p) = &resp.responses[2] else {
        panic!("third response is a put");
    };
    assert_eq!(p.revision, 6);
    assert_eq!(h.get("d").expect("d").mod_revision, 6);

    let read_only = h
        .txn(&TxnRequest {
            compare: vec![],
            success: vec![get_op("c")],
            failure: vec![],
        })
        .expect("read-only txn");
    assert_eq!(
        read_only.revision, 6,
        "read-only txns do not bump the revision"
    );
    assert_eq!(h.store.current_revision(), 6);
}

#[test]
fn txn_compares() {
    let mut h = abc();
    use CompareResult::*;
    use CompareTarget::*;
    let cases = [
        (cmp("a", Equal, Version(2)), true),
        (cmp("a", Greater, Version(1)), true),
        (cmp("a", Less, Version(2)), false),
        (cmp("a", NotEqual, Version(2)), false),
        (cmp("a", Equal, Create(2)), true),
        (cmp("a", Equal, Mod(4)), true),
        (cmp("a", Greater, Mod(4)), false),
        (cmp("a", Equal, Value(b"333".to_vec())), true),
        (cmp("a", Greater, Value(b"3".to_vec())), true),
        (cmp("a", Equal, Lease(0)), true),
        // A missing key compares as zero values, but never on value.
        (cmp("nokey", Equal, Version(0)), true),
        (cmp("nokey", Equal, Create(0)), true),
        (cmp("nokey", Equal, Value(Vec::new())), false),
        (cmp("nokey", NotEqual, Value(Vec::new())), false),
    ];
    for (c, want) in cases {
        let resp = h
            .txn(&TxnRequest {
                compare: vec![c.clone()],
                success: vec![],
                failure: vec![],
            })
            .expect("txn");
        assert_eq!(resp.succeeded, want, "{c:?}");
    }
    // Over a range every key must satisfy the compare.
    let mut over = cmp("a", Greater, Create(1));
    over.range_end = b"d".to_vec();
    let mut under = cmp("a", Less, Mod(5));
    under.range_end = b"d".to_vec();
    for (c, want) in [(over, true), (under, false)] {
        let resp = h
            .txn(&TxnRequest {
                compare: vec![c],
                success: vec![],
                failure: vec![],
            })
            .expect("txn");
        assert_eq!(resp.succeeded, want);
    }
}

#[test]
fn txn_failure_branch_and_nested() {
    let mut h = abc();
    let resp = h
        .txn(&TxnRequest {
            compare: vec![cmp("a", CompareResult::Equal, CompareTarget::Version(9))],
            success: vec![put_op("x", "no")],
            failure: vec![
                put_op("x", "yes"),
                RequestOp::Txn(TxnRequest {
                    compare: vec![cmp("x", CompareResult::Equal, CompareTarget::Version(0))],
                    success: vec![put_op("y", "nested")],
                    failure: vec![put_op("z", "nested")],
                }),
            ],
        })
        .expect("txn");
    assert!(!resp.succeeded);
    assert_eq!(resp.revision, 6);
    // Nested compares are evaluated before any op runs: x did not exist then.
    let ResponseOp::Txn(nested) = &resp.responses[1] else {
        panic!("nested txn response");
    };
    assert!(nested.succeeded);
    assert_eq!(h.get("x").expect("x").value, b"yes");
    assert_eq!(h.get("y").expect("y").mod_revision, 6);
    assert!(h.get("z").is_none());
}

#[test]
fn txn_duplicate_keys_rejected() {
    let mut h = abc();
    let dup = |success: Vec<RequestOp>| TxnRequest {
        compare: vec![],
        success,
        failure: vec![],
    };
    let cases = [
        dup(vec![put_op("x", "1"), put_op("x", "2")]),
        dup(vec![put_op("x", "1"), del_op("x", "")]),
        dup(vec![put_op("b", "1"), del_op("a", "z")]),
        dup(vec![
            put_op("x", "1"),
            RequestOp::Txn(dup(vec![put_op("x", "2")])),
        ]),
        dup(vec![
            del_op("x", ""),
            RequestOp::Txn(dup(vec![put_op("x", "2")])),
        ]),
    ];
    for req in cases {
        let err = h.txn(&req).expect_err("duplicate");
        assert_eq!(
            err.to_string(),
            "etcdserver: duplicate key given in txn request"
        );
    }
    // The two branches of a nested txn may write the same key.
    let ok = dup(vec![RequestOp::Txn(TxnRequest {
        compare: vec![],
        success: vec![put_op("x", "1")],
        failure: vec![put_op("x", "2")],
    })]);
    h.txn(&ok).expect("then/else may share keys");
    // Two deletes may overlap.
    h.txn(&dup(vec![del_op("a", "c"), del_op("b", "")]))
        .expect("overlapping deletes are fine");
    assert_eq!(h.store.current_revision(), 7);
    // etcd's interval check reads a `\0` range end literally, as the empty interval
    // `[key, "\0")`, so a delete "from key" never conflicts with a put (checked against
    // etcd 3.4: `del --from-key a` then `put b 2` in one txn succeeds and leaves b=2).
    h.put("b", "1");
    h.txn(&dup(vec![del_op("a", "\0"), put_op("b", "2")]))
        .expect("a delete from key does not conflict");
    let b = h.get("b").expect("b is put again after the delete");
    assert_eq!((b.value.as_slice(), b.version), (&b"2"[..], 1));
    assert!(h.get("x").is_none(), "x was deleted by the same txn");
}

#[test]
fn txn_checks_before_applying() {
    let mut h = abc();
    let err = h
        .txn(&TxnRequest {
            compare: vec![],
            success: vec![
                put_op("x", "1"),
                RequestOp::Put(PutRequest {
                    ignore_value: true,
                    ..put_req("missing", "")
                }),
            ],
            failure: vec![],
        })
        .expect_err("ignore_value on a missing key");
    assert!(matches!(err, MvccError::KeyNotFound));
    assert!(h.get("x").is_none(), "nothing of a rejected txn is applied");
    let err = h
        .txn(&TxnRequest {
            compare: vec![],
            success: vec![
                put_op("x", "1"),
                RequestOp::Range(RangeRequest {
                    revision: 99,
                    ..range_req("a", "")
                }),
            ],
            failure: vec![],
        })
        .expect_err("future range");
    assert!(matches!(err, MvccError::FutureRevision { .. }));
    assert_eq!(h.store.current_revision(), 5);
}

#[test]
fn compaction_rules() {
    let mut h = abc();
    let err = h.compact(100).expect_err("future");
    assert_eq!(
        err.to_string(),
        "mvcc: required revision is a future revision"
    );
    h.compact(3).expect("compact at 3");
    assert_eq!(h.store.compact_revision(), 3);
    for rev in [3, 2] {
        let err = h.compact(rev).expect_err("already compacted");
        assert_eq!(
            err.to_string(),
            "mvcc: required revision has been compacted"
        );
    }
    h.del("b", "");
    h.compact(6).expect("compact at 6");
    // A deletion at exactly the compaction point is kept (etcd >= 3.4.34) so watchers
    // resuming there see it; live keys keep their newest revision.
    assert_eq!(h.store.index_keys(), 3);
    let resp = h
        .range(&RangeRequest {
            revision: 6,
            ..range_req("\0", "\0")
        })
        .expect("range at compact point");
    assert_eq!(keys(&resp), ["a", "c"]);
    assert_eq!(resp.kvs[0].version, 2, "versions survive compaction");
    // Puts after compaction continue the generation.
    h.put("a", "later");
    let a = h.get("a").expect("a");
    assert_eq!((a.create_revision, a.version), (2, 3));
    // The next compaction drops the deleted key.
    h.compact(7).expect("compact at 7");
    assert_eq!(h.store.index_keys(), 2);
}

#[test]
fn compaction_survives_reopen() {
    let mut h = abc();
    h.del("b", "");
    h.compact(6).expect("compact");
    h.store.force_commit().expect("commit");
    let before = h.store.hash_kv(0).expect("hash");
    h.crash_and_reopen(keel_mvcc::BatchConfig::default());
    assert_eq!(h.store.compact_revision(), 6);
    assert_eq!(h.store.current_revision(), 6);
    assert_eq!(h.store.hash_kv(0).expect("hash"), before);
    let a = h.get("a").expect("a");
    assert_eq!((a.create_revision, a.version), (2, 2));
    h.put("a", "x");
    assert_eq!(h.get("a").expect("a").version, 3);
    assert!(h.get("b").is_none());
}

#[test]
fn hash_kv_rules() {
    let mut h = abc();
    let at4 = h.store.hash_kv(4).expect("hash at 4");
    assert_eq!(at4.revision, 5);
    assert_eq!(at4.compact_revision, -1);
    assert_ne!(at4.hash, h.store.hash_kv(5).expect("hash at 5").hash);
    assert_eq!(
        h.store.hash_kv(0).expect("hash").hash,
        h.store.hash_kv(5).expect("hash").hash
    );
    assert!(matches!(
        h.store.hash_kv(6),
        Err(MvccError::FutureRevision { .. })
    ));
    // Two members that applied the same entries agree, whatever their batching; etcd
    // compares hashes only between members at the same compaction point.
    let mut other = Harness::with_config(keel_mvcc::BatchConfig {
        batch_limit_ops: 1,
        ..keel_mvcc::BatchConfig::default()
    });
    for (k, v) in [("a", "1"), ("b", "22"), ("a", "333"), ("c", "4")] {
        other.put(k, v);
    }
    h.compact(4).expect("compact");
    other.compact(4).expect("compact");
    let after = h.store.hash_kv(5).expect("hash at 5 after compaction");
    assert_eq!(
        after,
        other.store.hash_kv(5).expect("hash on the other member")
    );
    assert_eq!(after.compact_revision, 4);
    assert_eq!(
        h.store.hash().expect("hash"),
        other.store.hash().expect("hash")
    );
    assert!(matches!(
        h.store.hash_kv(4),
        Err(MvccError::Compacted {
            compact_revision: 4
        })
    ));
}

#[test]
fn snapshot_and_restore() {
    let mut h = abc();
    h.del("b", "");
    let at = h.at();
    h.store.set_membership(at, b"members").expect("membership");
    let snap = h.dir.path().join("snap.db");
    let info = h.store.snapshot(&snap).expect("snapshot");
    assert_eq!(info.consistent_index, 6);
    assert!(info.size_bytes > 0);
    // Writes after the snapshot are not in it.
    h.put("after", "x");
    let target = h.dir.path().join("restored.db");
    let restored = keel_mvcc::Store::restore(&snap, &target, keel_mvcc::BatchConfig::default())
        .expect("restore");
    assert_eq!(restored.current_revision(), 6);
    assert_eq!(restored.consistent_index(), 6);
    assert_eq!(restored.membership(), b"members");
    let all = restored.range(&range_req("\0", "\0")).expect("range");
    assert_eq!(keys(&all), ["a", "c"]);
    assert!(
        keel_mvcc::Store::restore(&snap, &target, keel_mvcc::BatchConfig::default()).is_err(),
        "restore does not overwrite a store"
    );
}

/// A snapshot is written only into a new file: copying into an existing store file
/// would merge the two and ship revisions the source no longer has.
#[test]
fn snapshot_refuses_an_existing_destination() {
    let mut other = Harness::new();
    other.put("stale", "x");
    other.store.force_commit().expect("commit");
    let stale_path = other.db_path();
    drop(other.store);

    let mut h = abc();
    let err = h
        .store
        .snapshot(&stale_path)
        .expect_err("the destination exists");
    assert!(matches!(err, MvccError::Io(ref e) if e.kind() == std::io::ErrorKind::AlreadyExists));
    let target = h.dir.path().join("restored.db");
    let restored =
        keel_mvcc::Store::restore(&stale_path, &target, keel_mvcc::BatchConfig::default())
            .expect("the untouched file still opens");
    let all = restored.range(&range_req("\0", "\0")).expect("range");
    assert_eq!(
        keys(&all),
        ["stale"],
        "the existing file was not written to"
    );
}

#[test]
fn db_sizes() {
    let mut h = abc();
    h.store.force_commit().expect("commit");
    let size = h.store.db_size_bytes().expect("size");
    let in_use = h.store.db_size_in_use_bytes().expect("in use");
    assert!(in_use > 0 && in_use <= size, "in use {in_use} of {size}");
    assert_eq!(h.store.committed_records().expect("records"), 4);
}

#[test]
fn serializable_read_txn_matches_the_applied_one() {
    let mut h = abc();
    let req = TxnRequest {
        compare: vec![cmp("a", CompareResult::Equal, CompareTarget::Version(2))],
        success: vec![
            get_op("a"),
            RequestOp::Txn(TxnRequest {
                compare: vec![cmp("b", CompareResult::Less, CompareTarget::Mod(3))],
                success: vec![get_op("b")],
                failure: vec![get_op("c")],
            }),
        ],
        failure: vec![get_op("b")],
    };
    let local = h.store.read_txn(&req).expect("read txn");
    assert!(local.succeeded);
    let ResponseOp::Txn(nested) = &local.responses[1] else {
        panic!("nested response");
    };
    assert!(!nested.succeeded);
    assert_eq!(local, h.txn(&req).expect("applied txn"));
    let writes = TxnRequest {
        compare: vec![],
        success: vec![],
        failure: vec![put_op("x", "1")],
    };
    assert!(matches!(
        h.store.read_txn(&writes),
        Err(MvccError::TxnNotReadOnly)
    ));
}

#[test]
fn restore_snapshot_in_place_keeps_watchers() {
    let mut leader = abc();
    leader.del("b", "");
    leader.compact(4).expect("compact");
    leader.put("d", "5");
    let snap = leader.dir.path().join("snap.db");
    leader.store.snapshot(&snap).expect("snapshot");

    let mut follower = Harness::new();
    follower.put("stale", "x");
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    follower.store.watch(
        keel_mvcc::WatchRequest {
            key: b"d".to_vec(),
            start_revision: 7,
            ..keel_mvcc::WatchRequest::default()
        },
        tx,
    );
    follower.store.restore_snapshot(&snap).expect("restore");
    assert_eq!(follower.store.current_revision(), 7);
    assert_eq!(follower.store.compact_revision(), 4);
    assert_eq!(
        follower.store.consistent_index(),
        leader.store.consistent_index()
    );
    let all = follower.range(&range_req("\0", "\0")).expect("range");
    assert_eq!(keys(&all), ["a", "c", "d"]);
    assert_eq!(
        follower.store.hash_kv(0).expect("hash"),
        leader.store.hash_kv(0).expect("hash")
    );
    follower.store.sync_watchers().expect("sync");
    let resp = rx
        .try_recv()
        .expect("the watcher sees revision 7 from the snapshot");
    assert_eq!(resp.events[0].kv.mod_revision, 7);
    // Entries after the snapshot apply normally.
    follower.next_index = follower.store.consistent_index() + 1;
    assert_eq!(follower.put("e", "6").revision, 8);
}
