//! The Lease service end to end on in-process members: grant, revoke, time-to-live,
//! leases and keep-alive streams with etcd's answers and errors, puts with leases,
//! revokes and expiry deleting keys in one revision, restart, forwarding from a
//! follower, and the remaining TTL kept across a leader change.

mod support;

use std::time::{Duration, Instant};

use keel_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseLeasesRequest,
    LeaseRevokeRequest, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse, PutRequest, RangeRequest,
    RequestOp, TxnRequest, lease_client::LeaseClient, request_op,
};
use support::{Cluster, WAIT, get, put};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Code, Streaming};

async fn lease_client(c: &Cluster, i: usize) -> LeaseClient<Channel> {
    LeaseClient::connect(c.endpoint(i)).await.expect("connect")
}

fn leased(key: &str, value: &str, lease: i64) -> PutRequest {
    PutRequest {
        lease,
        ..put(key, value)
    }
}

async fn grant(c: &Cluster, i: usize, ttl: i64, id: i64) -> i64 {
    let r = lease_client(c, i)
        .await
        .lease_grant(LeaseGrantRequest { ttl, id })
        .await
        .expect("grant")
        .into_inner();
    assert_eq!(r.error, "");
    r.id
}

async fn ttl_of(c: &Cluster, i: usize, id: i64, keys: bool) -> LeaseTimeToLiveResponse {
    lease_client(c, i)
        .await
        .lease_time_to_live(LeaseTimeToLiveRequest { id, keys })
        .await
        .expect("time to live")
        .into_inner()
}

/// A keep-alive stream: the sender for requests and the answers.
async fn keep_alive_stream(
    c: &Cluster,
    i: usize,
) -> (
    mpsc::Sender<LeaseKeepAliveRequest>,
    Streaming<LeaseKeepAliveResponse>,
) {
    let (tx, rx) = mpsc::channel(8);
    let answers = lease_client(c, i)
        .await
        .lease_keep_alive(ReceiverStream::new(rx))
        .await
        .expect("open keep-alive stream")
        .into_inner();
    (tx, answers)
}

async fn keep_alive_once(
    tx: &mpsc::Sender<LeaseKeepAliveRequest>,
    answers: &mut Streaming<LeaseKeepAliveResponse>,
    id: i64,
) -> LeaseKeepAliveResponse {
    tx.send(LeaseKeepAliveRequest { id })
        .await
        .expect("send keep-alive");
    tokio::time::timeout(WAIT, answers.message())
        .await
        .expect("keep-alive answered in time")
        .expect("stream healthy")
        .expect("an answer")
}

async fn value_of(c: &Cluster, i: usize, key: &str) -> Option<(Vec<u8>, i64)> {
    let r = c
        .kv(i)
        .await
        .range(get(key))
        .await
        .expect("get")
        .into_inner();
    r.kvs.first().map(|kv| (kv.value.to_vec(), kv.lease))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grant_revoke_time_to_live_leases_and_keep_alive() {
    let c = Cluster::start(1).await;
    c.wait_leader().await;
    let member_id = c.member_id(0);
    let mut leases = lease_client(&c, 0).await;

    let r = leases
        .lease_grant(LeaseGrantRequest { ttl: 30, id: 0 })
        .await
        .expect("grant")
        .into_inner();
    assert!(r.id > 0, "the server picks a positive id: {}", r.id);
    assert_eq!(r.ttl, 30);
    assert_eq!(r.header.expect("header").member_id, member_id);
    let chosen = r.id;

    // A TTL below etcd's minimum is raised to it: (3 * 10 election ticks / 2) x 20 ms
    // heartbeats = 300 ms, rounded up to 1 s.
    let r = leases
        .lease_grant(LeaseGrantRequest { ttl: 0, id: 1000 })
        .await
        .expect("grant with an id")
        .into_inner();
    assert_eq!((r.id, r.ttl), (1000, 1));
    leases
        .lease_revoke(LeaseRevokeRequest { id: 1000 })
        .await
        .expect("revoke");

    let err = leases
        .lease_grant(LeaseGrantRequest {
            ttl: 30,
            id: chosen,
        })
        .await
        .expect_err("the id is taken");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(err.message(), "etcdserver: lease already exists");
    let err = leases
        .lease_grant(LeaseGrantRequest {
            ttl: 9_000_000_001,
            id: 0,
        })
        .await
        .expect_err("too long");
    assert_eq!(err.code(), Code::OutOfRange);
    assert_eq!(err.message(), "etcdserver: too large lease TTL");

    let listed = leases
        .lease_leases(LeaseLeasesRequest {})
        .await
        .expect("leases")
        .into_inner();
    assert_eq!(
        listed.leases.iter().map(|l| l.id).collect::<Vec<_>>(),
        vec![chosen]
    );

    let t = ttl_of(&c, 0, chosen, false).await;
    assert_eq!((t.id, t.granted_ttl), (chosen, 30));
    assert!(
        (29..=30).contains(&t.ttl),
        "fresh lease has its TTL: {}",
        t.ttl
    );
    assert!(t.keys.is_empty());

    // Keep-alive: the granted TTL; a missing lease answers TTL 0 and the stream goes on.
    let (tx, mut answers) = keep_alive_stream(&c, 0).await;
    let a = keep_alive_once(&tx, &mut answers, chosen).await;
    assert_eq!((a.id, a.ttl), (chosen, 30));
    assert_eq!(a.header.expect("header").member_id, member_id);
    let a = keep_alive_once(&tx, &mut answers, 424_242).await;
    assert_eq!((a.id, a.ttl), (424_242, 0));
    let a = keep_alive_once(&tx, &mut answers, chosen).await;
    assert_eq!(a.ttl, 30, "the stream survives a missing lease");
    drop(tx);

    leases
        .lease_revoke(LeaseRevokeRequest { id: chosen })
        .await
        .expect("revoke");
    let t = ttl_of(&c, 0, chosen, true).await;
    assert_eq!((t.id, t.ttl, t.granted_ttl), (chosen, -1, 0));
    let err = leases
        .lease_revoke(LeaseRevokeRequest { id: chosen })
        .await
        .expect_err("already revoked");
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(err.message(), "etcdserver: requested lease not found");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn puts_attach_keys_and_unknown_leases_fail_as_in_etcd() {
    let c = Cluster::start(1).await;
    c.wait_leader().await;
    let mut kv = c.kv(0).await;

    let err = kv
        .put(leased("k", "v", 777))
        .await
        .expect_err("no such lease");
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(err.message(), "etcdserver: requested lease not found");
    assert!(value_of(&c, 0, "k").await.is_none());

    let id = grant(&c, 0, 60, 0).await;
    kv.put(leased("k", "v", id)).await.expect("put with lease");
    kv.put(leased("k2", "v", id)).await.expect("put with lease");
    assert_eq!(value_of(&c, 0, "k").await, Some((b"v".to_vec(), id)));

    // ignore_lease keeps the key's lease; a plain put detaches it.
    kv.put(PutRequest {
        ignore_lease: true,
        ..put("k", "w")
    })
    .await
    .expect("put ignoring the lease");
    assert_eq!(value_of(&c, 0, "k").await, Some((b"w".to_vec(), id)));
    kv.put(put("k2", "plain")).await.expect("plain put");
    let t = ttl_of(&c, 0, id, true).await;
    assert_eq!(t.keys, vec![b"k".to_vec()]);

    // A txn whose taken branch puts with a missing lease fails whole.
    let txn = TxnRequest {
        compare: Vec::new(),
        success: vec![
            RequestOp {
                request: Some(request_op::Request::RequestPut(put("t1", "v"))),
            },
            RequestOp {
                request: Some(request_op::Request::RequestPut(leased("t2", "v", 778))),
            },
        ],
        failure: Vec::new(),
    };
    let err = kv.txn(txn).await.expect_err("missing lease in txn");
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(err.message(), "etcdserver: requested lease not found");
    assert!(value_of(&c, 0, "t1").await.is_none(), "nothing applied");
    let txn = TxnRequest {
        compare: Vec::new(),
        success: vec![RequestOp {
            request: Some(request_op::Request::RequestPut(leased("t3", "v", id))),
        }],
        failure: Vec::new(),
    };
    kv.txn(txn).await.expect("txn put with a lease");
    let t = ttl_of(&c, 0, id, true).await;
    assert_eq!(t.keys, vec![b"k".to_vec(), b"t3".to_vec()]);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_deletes_every_key_in_one_revision() {
    let c = Cluster::start(1).await;
    c.wait_leader().await;
    let mut kv = c.kv(0).await;
    let id = grant(&c, 0, 60, 0).await;
    for k in ["a", "b", "c"] {
        kv.put(leased(k, "v", id)).await.expect("put");
    }
    kv.put(put("keep", "v")).await.expect("put");
    let before = kv
        .put(put("marker", "v"))
        .await
        .expect("put")
        .into_inner()
        .header
        .expect("header")
        .revision;
    let r = lease_client(&c, 0)
        .await
        .lease_revoke(LeaseRevokeRequest { id })
        .await
        .expect("revoke")
        .into_inner();
    let rev = r.header.expect("header").revision;
    assert_eq!(rev, before + 1, "all deletions share one revision");
    let all = |revision| RangeRequest {
        key: b"a".to_vec(),
        range_end: b"d".to_vec(),
        revision,
        ..RangeRequest::default()
    };
    let at = kv.range(all(rev)).await.expect("range").into_inner();
    assert_eq!(at.count, 0);
    let just_before = kv.range(all(rev - 1)).await.expect("range").into_inner();
    assert_eq!(just_before.count, 3);
    assert!(value_of(&c, 0, "keep").await.is_some());
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_deletes_its_keys_not_before_its_ttl() {
    let c = Cluster::start(1).await;
    c.wait_leader().await;
    let mut kv = c.kv(0).await;
    let granted_at = Instant::now();
    let id = grant(&c, 0, 2, 0).await;
    kv.put(leased("short", "v", id)).await.expect("put");
    let deadline = granted_at + WAIT;
    let gone_at = loop {
        if value_of(&c, 0, "short").await.is_none() {
            break Instant::now();
        }
        assert!(Instant::now() < deadline, "the lease never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        gone_at - granted_at >= Duration::from_secs(2),
        "expired after {:?}, before its TTL",
        gone_at - granted_at
    );
    assert_eq!(ttl_of(&c, 0, id, false).await.ttl, -1);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_and_their_keys_survive_a_restart() {
    let mut c = Cluster::start(1).await;
    c.wait_leader().await;
    let id = grant(&c, 0, 120, 0).await;
    let mut kv = c.kv(0).await;
    kv.put(leased("x", "1", id)).await.expect("put");
    kv.put(leased("y", "2", id)).await.expect("put");
    c.stop(0).await;
    c.restart(0).await;
    c.wait_leader().await;

    let t = ttl_of(&c, 0, id, true).await;
    assert_eq!(t.granted_ttl, 120);
    assert!(t.ttl > 100, "restarted near its full TTL: {}", t.ttl);
    assert_eq!(t.keys, vec![b"x".to_vec(), b"y".to_vec()]);
    let listed = lease_client(&c, 0)
        .await
        .lease_leases(LeaseLeasesRequest {})
        .await
        .expect("leases")
        .into_inner();
    assert_eq!(listed.leases.len(), 1);
    // The keys were reattached: the revoke deletes them.
    lease_client(&c, 0)
        .await
        .lease_revoke(LeaseRevokeRequest { id })
        .await
        .expect("revoke");
    assert!(value_of(&c, 0, "x").await.is_none());
    assert!(value_of(&c, 0, "y").await.is_none());
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_forwards_keep_alive_and_time_to_live() {
    let c = Cluster::start(3).await;
    let leader = c.wait_leader().await;
    let follower = (leader + 1) % 3;
    let id = grant(&c, follower, 45, 0).await;
    c.kv(follower)
        .await
        .put(leased("f", "v", id))
        .await
        .expect("put");

    let (tx, mut answers) = keep_alive_stream(&c, follower).await;
    let a = keep_alive_once(&tx, &mut answers, id).await;
    assert_eq!((a.id, a.ttl), (id, 45));
    assert_eq!(
        a.header.expect("header").member_id,
        c.member_id(follower),
        "the follower answers with its own header"
    );
    let a = keep_alive_once(&tx, &mut answers, 99_999).await;
    assert_eq!(a.ttl, 0);
    drop(tx);

    let t = ttl_of(&c, follower, id, true).await;
    assert_eq!(t.granted_ttl, 45);
    assert!((40..=45).contains(&t.ttl), "ttl {}", t.ttl);
    assert_eq!(t.keys, vec![b"f".to_vec()]);
    assert_eq!(t.header.expect("header").member_id, c.member_id(follower));
    assert_eq!(ttl_of(&c, follower, 99_999, false).await.ttl, -1);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remaining_ttl_survives_a_leader_change() {
    let mut c = Cluster::start(3).await;
    let leader = c.wait_leader().await;
    let other = (leader + 1) % 3;
    let granted_at = Instant::now();
    let id = grant(&c, other, 10, 0).await;
    c.kv(other)
        .await
        .put(leased("ttl-key", "v", id))
        .await
        .expect("put");
    // The leader checkpoints the remaining TTL 5 s after the grant.
    tokio::time::sleep(Duration::from_millis(5_600)).await;
    c.stop(leader).await;
    let new_leader = c.wait_leader().await;
    assert_ne!(new_leader, leader);

    let t = ttl_of(&c, new_leader, id, false).await;
    assert!(
        (1..=7).contains(&t.ttl),
        "the new leader resumes from the checkpoint (about 5 s), not the full 10 s: {}",
        t.ttl
    );
    let deadline = granted_at + WAIT;
    let gone_at = loop {
        if value_of(&c, new_leader, "ttl-key").await.is_none() {
            break Instant::now();
        }
        assert!(Instant::now() < deadline, "the lease never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        gone_at - granted_at >= Duration::from_secs(10),
        "expired after {:?}, before its TTL",
        gone_at - granted_at
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_restores_leases_and_attachments_from_a_snapshot() {
    use support::{put_retrying, serializable_get, wait_value};
    let mut c = Cluster::start_with(3, |cfg| cfg.snapshot_count = 20).await;
    let leader = c.wait_leader().await;
    let lagging = (leader + 1) % 3;
    put_retrying(&c, leader, "first", "1").await;
    wait_value(&c, lagging, "first", "1").await;
    c.stop(lagging).await;

    let id = grant(&c, leader, 300, 0).await;
    c.kv(leader)
        .await
        .put(leased("snap-leased", "v", id))
        .await
        .expect("put with lease");
    for i in 0..200 {
        put_retrying(&c, leader, &format!("key{i:03}"), "v").await;
    }
    c.restart(lagging).await;
    wait_value(&c, lagging, "key199", "v").await;
    // The lagging member learnt the lease from the leader's snapshot, not its log.
    let listed = lease_client(&c, lagging)
        .await
        .lease_leases(LeaseLeasesRequest {})
        .await
        .expect("leases")
        .into_inner();
    assert_eq!(
        listed.leases.iter().map(|l| l.id).collect::<Vec<_>>(),
        vec![id]
    );
    // Every member deletes the keys its own lessor has attached: the revoke removes
    // the key on the lagging member too only if the snapshot reattached it there.
    lease_client(&c, leader)
        .await
        .lease_revoke(LeaseRevokeRequest { id })
        .await
        .expect("revoke");
    put_retrying(&c, leader, "after-revoke", "x").await;
    wait_value(&c, lagging, "after-revoke", "x").await;
    let r = c
        .kv(lagging)
        .await
        .range(serializable_get("snap-leased"))
        .await
        .expect("serializable get")
        .into_inner();
    assert!(
        r.kvs.is_empty(),
        "the revoke deleted the key on every member"
    );
    c.shutdown().await;
}
