//! Three members in one process: writes through a follower, linearizable and
//! serializable reads, leader failover, a full restart, and a follower catching up by
//! snapshot.

mod support;

use keel_proto::etcdserverpb::{MemberListRequest, RangeRequest, cluster_client::ClusterClient};
use support::{Cluster, get, put, put_retrying, serializable_get, wait_value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_a_follower_and_both_read_kinds() {
    let c = Cluster::start(3).await;
    let leader = c.wait_leader().await;
    let follower = (leader + 1) % 3;
    let ids: Vec<u64> = (0..3).map(|i| c.member_id(i)).collect();

    let r = c
        .kv(follower)
        .await
        .put(put("via-follower", "1"))
        .await
        .expect("put on follower")
        .into_inner();
    let h = r.header.expect("header");
    assert_eq!(
        h.member_id, ids[follower],
        "the follower answers with its own id"
    );
    let rev = h.revision;

    // A linearizable read on any member sees the write at once.
    for i in 0..3 {
        let r = c
            .kv(i)
            .await
            .range(get("via-follower"))
            .await
            .expect("linearizable get")
            .into_inner();
        assert_eq!(r.kvs[0].value, &b"1"[..], "member {i}");
        assert!(r.header.expect("header").revision >= rev);
    }
    // A serializable read is local; every member gets there.
    for i in 0..3 {
        wait_value(&c, i, "via-follower", "1").await;
    }
    let r = c
        .kv(follower)
        .await
        .range(serializable_get("via-follower"))
        .await
        .expect("serializable")
        .into_inner();
    assert_eq!(r.header.expect("header").member_id, ids[follower]);

    // Many concurrent linearizable reads share ReadIndex rounds and all succeed.
    let mut reads = Vec::new();
    for n in 0..64 {
        let mut kv = c.kv(n % 3).await;
        reads.push(tokio::spawn(
            async move { kv.range(get("via-follower")).await },
        ));
    }
    for read in reads {
        let r = read.await.expect("task").expect("read").into_inner();
        assert_eq!(r.kvs[0].value, &b"1"[..]);
    }

    let members = ClusterClient::connect(c.endpoint(0))
        .await
        .expect("connect")
        .member_list(MemberListRequest::default())
        .await
        .expect("member list")
        .into_inner();
    let mut listed: Vec<u64> = members.members.iter().map(|m| m.id).collect();
    listed.sort_unstable();
    let mut expected = ids.clone();
    expected.sort_unstable();
    assert_eq!(listed, expected);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_shutdown_elects_a_new_leader_and_writes_resume() {
    let mut c = Cluster::start(3).await;
    let leader = c.wait_leader().await;
    let old_id = c.member_id(leader);
    put_retrying(&c, leader, "before", "1").await;
    c.stop(leader).await;
    let new_leader = c.wait_leader().await;
    assert_ne!(c.member_id(new_leader), old_id);
    let survivor = (0..3)
        .find(|&i| i != leader && i != new_leader)
        .expect("a third member");
    put_retrying(&c, survivor, "after", "2").await;
    let r = c
        .kv(new_leader)
        .await
        .range(get("before"))
        .await
        .expect("get")
        .into_inner();
    assert_eq!(r.kvs[0].value, &b"1"[..]);
    // The old leader comes back as a follower and catches up.
    c.restart(leader).await;
    wait_value(&c, leader, "after", "2").await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_every_member_keeps_the_data() {
    let mut c = Cluster::start(3).await;
    c.wait_leader().await;
    for i in 0..30 {
        put_retrying(&c, i % 3, &format!("k{i:02}"), &format!("v{i}")).await;
    }
    for i in 0..3 {
        c.stop(i).await;
    }
    for i in 0..3 {
        c.restart(i).await;
    }
    c.wait_leader().await;
    for i in 0..3 {
        let r = c
            .kv(i)
            .await
            .range(RangeRequest {
                key: b"k".to_vec(),
                range_end: b"l".to_vec(),
                ..RangeRequest::default()
            })
            .await
            .expect("range")
            .into_inner();
        assert_eq!(r.count, 30, "member {i}");
        assert_eq!(r.kvs[29].value, &b"v29"[..]);
    }
    put_retrying(&c, 0, "after-restart", "x").await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_follower_catches_up_by_snapshot() {
    let mut c = Cluster::start_with(3, |cfg| cfg.snapshot_count = 20).await;
    let leader = c.wait_leader().await;
    let lagging = (leader + 1) % 3;
    put_retrying(&c, leader, "first", "1").await;
    wait_value(&c, lagging, "first", "1").await;
    c.stop(lagging).await;
    for i in 0..200 {
        put_retrying(&c, leader, &format!("key{i:03}"), &format!("value{i}")).await;
    }
    // The leader's log now starts far past what the stopped follower holds.
    let snap_dir = c.data_dir(leader).join("member").join("snap");
    let snaps = std::fs::read_dir(&snap_dir)
        .expect("snap dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".snap"))
        })
        .count();
    assert!(snaps >= 2, "the leader took snapshots ({snaps} files)");
    c.restart(lagging).await;
    wait_value(&c, lagging, "key199", "value199").await;
    wait_value(&c, lagging, "key000", "value0").await;
    let follower_snap_dir = c.data_dir(lagging).join("member").join("snap");
    // The backend is restored just before the snapshot file is written: poll for it.
    let deadline = std::time::Instant::now() + support::WAIT;
    loop {
        let files: Vec<String> = std::fs::read_dir(&follower_snap_dir)
            .expect("snap dir")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        let installed = files
            .iter()
            .any(|n| n.ends_with(".snap") && !n.ends_with("-0000000000000000.snap"));
        if installed {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the follower never recorded a snapshot: {files:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // It keeps applying normally after the snapshot.
    put_retrying(&c, leader, "after-snapshot", "y").await;
    wait_value(&c, lagging, "after-snapshot", "y").await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_quorum_requests_fail_with_etcd_errors() {
    let mut c = Cluster::start(3).await;
    let leader = c.wait_leader().await;
    put_retrying(&c, leader, "k", "v").await;
    let alone = (leader + 1) % 3;
    wait_value(&c, alone, "k", "v").await;
    for i in 0..3 {
        if i != alone {
            c.stop(i).await;
        }
    }
    let addr = c.configs[alone].listen_client_addrs[0];
    let deadline = std::time::Instant::now() + support::WAIT;
    loop {
        let (code, body) = support::http_get(addr, "/health").await;
        if code == 503 {
            assert_eq!(body, "{\"health\":\"false\"}\n");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "/health stayed {code} {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut kv = c.kv(alone).await;
    let mut reader = kv.clone();
    let (read, write) = tokio::join!(reader.range(get("k")), kv.put(put("k", "w")));
    let read = read.expect_err("no linearizable read without a leader");
    assert_eq!(
        (read.code(), read.message()),
        (tonic::Code::Unavailable, "etcdserver: no leader")
    );
    let write = write.expect_err("no write without a quorum");
    assert_eq!(
        (write.code(), write.message()),
        (tonic::Code::Unavailable, "etcdserver: request timed out")
    );
    // Serializable reads are still served from the local store.
    let r = c
        .kv(alone)
        .await
        .range(serializable_get("k"))
        .await
        .expect("serializable")
        .into_inner();
    assert_eq!(r.kvs[0].value, &b"v"[..]);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_agree_on_the_keyspace_hash() {
    use keel_proto::etcdserverpb::HashKvRequest;
    let c = Cluster::start(3).await;
    let leader = c.wait_leader().await;
    let mut rev = 0;
    for i in 0..20 {
        rev = put_retrying(&c, leader, &format!("h{i}"), "v").await;
    }
    for i in 0..3 {
        wait_value(&c, i, "h19", "v").await;
    }
    let mut hashes = Vec::new();
    for i in 0..3 {
        let r = c
            .maintenance(i)
            .await
            .hash_kv(HashKvRequest { revision: rev })
            .await
            .expect("hashkv")
            .into_inner();
        assert_eq!(r.hash_revision, rev);
        hashes.push(r.hash);
    }
    assert!(hashes.iter().all(|h| *h == hashes[0]), "{hashes:x?}");
    let err = c
        .maintenance(0)
        .await
        .hash_kv(HashKvRequest {
            revision: rev + 100,
        })
        .await
        .expect_err("future revision");
    assert_eq!(
        err.message(),
        "etcdserver: mvcc: required revision is a future revision"
    );
    c.shutdown().await;
}
