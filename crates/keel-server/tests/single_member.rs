//! One member: the KV API round trips with etcd's headers, etcd's errors, the HTTP
//! endpoints, restart, and a corrupt WAL at startup.

mod support;

use keel_proto::etcdserverpb::{
    CompactionRequest, Compare, DeleteRangeRequest, MemberListRequest, RangeRequest, RequestOp,
    StatusRequest, TxnRequest, cluster_client::ClusterClient, compare, request_op,
};
use keel_server::{Server, ServerError};
use support::{Cluster, get, http_get, put};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_delete_txn_compact_round_trip_with_headers() {
    let c = Cluster::start(1).await;
    c.wait_leader().await;
    let (member_id, cluster_id) = {
        let s = c.servers[0].as_ref().expect("running");
        (s.member_id(), s.cluster_id())
    };
    let mut kv = c.kv(0).await;

    let r = kv.put(put("foo", "bar")).await.expect("put").into_inner();
    let h = r.header.expect("header");
    assert_eq!((h.cluster_id, h.member_id), (cluster_id, member_id));
    assert!(h.raft_term >= 1, "term {}", h.raft_term);
    let first_rev = h.revision;
    assert!(first_rev >= 2);

    let r = kv.range(get("foo")).await.expect("get").into_inner();
    assert_eq!(r.header.expect("header").revision, first_rev);
    assert_eq!(r.count, 1);
    assert_eq!(r.kvs[0].value, &b"bar"[..]);
    assert_eq!(
        (
            r.kvs[0].create_revision,
            r.kvs[0].mod_revision,
            r.kvs[0].version
        ),
        (first_rev, first_rev, 1)
    );

    let mut p = put("foo", "baz");
    p.prev_kv = true;
    let r = kv.put(p).await.expect("put").into_inner();
    assert_eq!(r.prev_kv.expect("prev kv").value, &b"bar"[..]);
    assert_eq!(r.header.expect("header").revision, first_rev + 1);

    let txn = TxnRequest {
        compare: vec![Compare {
            result: compare::CompareResult::Equal as i32,
            target: compare::CompareTarget::Value as i32,
            key: b"foo".to_vec(),
            target_union: Some(compare::TargetUnion::Value(b"baz".to_vec())),
            ..Compare::default()
        }],
        success: vec![
            RequestOp {
                request: Some(request_op::Request::RequestPut(put("t1", "v"))),
            },
            RequestOp {
                request: Some(request_op::Request::RequestRange(get("foo"))),
            },
        ],
        failure: vec![],
    };
    let r = kv.txn(txn).await.expect("txn").into_inner();
    assert!(r.succeeded);
    assert_eq!(r.header.expect("header").revision, first_rev + 2);
    assert_eq!(r.responses.len(), 2);

    let r = kv
        .delete_range(DeleteRangeRequest {
            key: b"foo".to_vec(),
            prev_kv: true,
            ..DeleteRangeRequest::default()
        })
        .await
        .expect("delete")
        .into_inner();
    assert_eq!(r.deleted, 1);
    assert_eq!(r.prev_kvs[0].value, &b"baz"[..]);
    assert_eq!(r.header.expect("header").revision, first_rev + 3);
    assert_eq!(
        kv.range(get("foo")).await.expect("get").into_inner().count,
        0
    );

    let r = kv
        .compact(CompactionRequest {
            revision: first_rev + 1,
            physical: true,
        })
        .await
        .expect("compact")
        .into_inner();
    assert_eq!(r.header.expect("header").revision, first_rev + 3);
    let old = RangeRequest {
        revision: first_rev,
        ..get("foo")
    };
    let err = kv.range(old).await.expect_err("compacted");
    assert_eq!(err.code(), Code::OutOfRange);
    assert_eq!(
        err.message(),
        "etcdserver: mvcc: required revision has been compacted"
    );

    let status = c
        .maintenance(0)
        .await
        .status(StatusRequest {})
        .await
        .expect("status")
        .into_inner();
    assert_eq!(status.leader, member_id);
    assert_eq!(status.version, keel_server::ETCD_VERSION);
    assert!(status.db_size > 0);
    assert!(status.raft_applied_index >= 5 && status.raft_index >= status.raft_applied_index);

    let members = ClusterClient::connect(c.endpoint(0))
        .await
        .expect("connect")
        .member_list(MemberListRequest::default())
        .await
        .expect("member list")
        .into_inner();
    assert_eq!(members.members.len(), 1);
    assert_eq!(members.members[0].id, member_id);
    assert_eq!(members.members[0].name, "m0");

    let addr = c.configs[0].listen_client_addrs[0];
    assert_eq!(
        http_get(addr, "/health").await,
        (200, "{\"health\":\"true\"}".to_owned())
    );
    assert_eq!(
        http_get(addr, "/version").await,
        (
            200,
            "{\"etcdserver\":\"3.4.0\",\"etcdcluster\":\"3.4.0\"}".to_owned()
        )
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_carry_etcd_text_and_code() {
    let c = Cluster::start_with(1, |cfg| {
        cfg.max_request_bytes = 1024;
        cfg.max_txn_ops = 4;
    })
    .await;
    c.wait_leader().await;
    let mut kv = c.kv(0).await;
    let check = |r: Result<_, tonic::Status>, code: Code, text: &str| {
        let err = r.expect_err(text);
        assert_eq!((err.code(), err.message()), (code, text));
    };

    check(
        kv.put(put("big", &"x".repeat(2000))).await.map(|_| ()),
        Code::InvalidArgument,
        "etcdserver: request is too large",
    );
    check(
        kv.put(put("", "v")).await.map(|_| ()),
        Code::InvalidArgument,
        "etcdserver: key is not provided",
    );
    check(
        kv.range(get("")).await.map(|_| ()),
        Code::InvalidArgument,
        "etcdserver: key is not provided",
    );
    let op = |k: &str| RequestOp {
        request: Some(request_op::Request::RequestPut(put(k, "v"))),
    };
    let too_many = TxnRequest {
        success: ["a", "b", "c", "d", "e"].iter().map(|k| op(k)).collect(),
        ..TxnRequest::default()
    };
    check(
        kv.txn(too_many).await.map(|_| ()),
        Code::InvalidArgument,
        "etcdserver: too many operations in txn request",
    );
    let dup = TxnRequest {
        success: vec![op("a"), op("a")],
        ..TxnRequest::default()
    };
    check(
        kv.txn(dup).await.map(|_| ()),
        Code::InvalidArgument,
        "etcdserver: duplicate key given in txn request",
    );

    let rev = kv
        .put(put("k", "v"))
        .await
        .expect("put")
        .into_inner()
        .header
        .expect("header")
        .revision;
    let future = RangeRequest {
        revision: rev + 10,
        ..get("k")
    };
    check(
        kv.range(future).await.map(|_| ()),
        Code::OutOfRange,
        "etcdserver: mvcc: required revision is a future revision",
    );
    check(
        kv.compact(CompactionRequest {
            revision: rev + 10,
            physical: false,
        })
        .await
        .map(|_| ()),
        Code::OutOfRange,
        "etcdserver: mvcc: required revision is a future revision",
    );
    kv.compact(CompactionRequest {
        revision: rev,
        physical: false,
    })
    .await
    .expect("compact");
    check(
        kv.compact(CompactionRequest {
            revision: rev,
            physical: false,
        })
        .await
        .map(|_| ()),
        Code::OutOfRange,
        "etcdserver: mvcc: required revision has been compacted",
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_data_and_ignores_initial_cluster() {
    let mut c = Cluster::start(1).await;
    c.wait_leader().await;
    let id = c.member_id(0);
    for i in 0..50 {
        c.kv(0)
            .await
            .put(put(&format!("k{i}"), &format!("v{i}")))
            .await
            .expect("put");
    }
    c.stop(0).await;
    // A restart reads the data dir only: changing the initial cluster changes nothing.
    c.configs[0].initial_cluster_token = "another-token".to_owned();
    c.restart(0).await;
    assert_eq!(c.member_id(0), id);
    c.wait_leader().await;
    let r = c
        .kv(0)
        .await
        .range(get("k49"))
        .await
        .expect("get")
        .into_inner();
    assert_eq!(r.kvs[0].value, &b"v49"[..]);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_wal_fails_startup_naming_the_file() {
    let mut c = Cluster::start(1).await;
    c.wait_leader().await;
    for i in 0..20 {
        c.kv(0)
            .await
            .put(put(&format!("k{i}"), &"v".repeat(100)))
            .await
            .expect("put");
    }
    c.stop(0).await;
    let wal_dir = c.data_dir(0).join("member").join("wal");
    let segment = std::fs::read_dir(&wal_dir)
        .expect("wal dir")
        .map(|e| e.expect("entry").path())
        .find(|p| p.extension().is_some_and(|e| e == "wal"))
        .expect("a segment");
    let mut bytes = std::fs::read(&segment).expect("read segment");
    // Flip a byte well inside the written records (not a torn tail: valid records follow).
    bytes[600] ^= 0xff;
    std::fs::write(&segment, &bytes).expect("write segment");
    let err = Server::start(c.configs[0].clone())
        .await
        .expect_err("corrupt WAL must fail");
    assert!(matches!(err, ServerError::Wal { .. }), "{err:?}");
    let name = segment
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert!(
        err.to_string().contains(&name),
        "error does not name {name}: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_not_built_yet_answer_unimplemented() {
    use keel_proto::etcdserverpb::{DefragmentRequest, maintenance_client::MaintenanceClient};
    let c = Cluster::start(1).await;
    c.wait_leader().await;
    let err = MaintenanceClient::connect(c.endpoint(0))
        .await
        .expect("connect")
        .defragment(DefragmentRequest {})
        .await
        .expect_err("no defragment yet");
    assert_eq!(err.code(), Code::Unimplemented);
    assert_eq!(
        err.message(),
        "keel: Maintenance.Defragment is not implemented yet"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_backend_fails_startup_naming_the_file() {
    let mut c = Cluster::start(1).await;
    c.wait_leader().await;
    c.kv(0).await.put(put("k", "v")).await.expect("put");
    c.stop(0).await;
    let db = c.data_dir(0).join("member").join("snap").join("db");
    std::fs::write(&db, vec![0xa5u8; 8192]).expect("overwrite backend");
    let err = Server::start(c.configs[0].clone())
        .await
        .expect_err("corrupt backend must fail");
    assert!(matches!(err, ServerError::Backend { .. }), "{err:?}");
    assert!(err.to_string().contains(&db.display().to_string()), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_in_flight_writes_and_keeps_every_acknowledged_one() {
    let mut c = Cluster::start(1).await;
    c.wait_leader().await;
    let kv = c.kv(0).await;
    let mut writers = Vec::new();
    for w in 0..8 {
        let mut kv = kv.clone();
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..1000 {
                let key = format!("w{w}-{i:04}");
                match kv.put(put(&key, "v")).await {
                    Ok(_) => acked.push(key),
                    Err(_) => break,
                }
            }
            acked
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    c.stop(0).await;
    let mut acked = Vec::new();
    for w in writers {
        acked.extend(w.await.expect("writer"));
    }
    assert!(
        !acked.is_empty(),
        "some writes were acknowledged before the shutdown"
    );
    c.restart(0).await;
    c.wait_leader().await;
    let mut kv = c.kv(0).await;
    for key in &acked {
        let r = kv.range(get(key)).await.expect("get").into_inner();
        assert_eq!(r.count, 1, "acknowledged write {key} was lost");
    }
    c.shutdown().await;
}
