//! The v2 keys API on real in-process servers, over raw HTTP/1.1 (keel-v2http's test
//! client, so the exact bytes are checked): etcd 3.4's recorded answers, the keys API's
//! operations, replication to followers and their watchers, restarts, and a follower
//! catching up by snapshot.

mod support;

#[path = "../../keel-v2http/tests/common/mod.rs"]
mod http;

use std::time::{Duration, Instant};

use http::replay::{Ids, records, replay};
use http::{Answer, Conn};
use keel_server::Server;
use serde_json::Value;
use support::{Cluster, WAIT};

fn base(c: &Cluster, i: usize) -> String {
    c.endpoint(i)
}

async fn req(base: &str, method: &str, path: &str, form: &str) -> Answer {
    http::request(base, method, path, form).await
}

fn json(a: &Answer) -> Value {
    serde_json::from_str(&a.body).unwrap_or_else(|e| panic!("{e}: not JSON: {a:?}"))
}

fn etcd_index(a: &Answer) -> u64 {
    a.header("x-etcd-index")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no X-Etcd-Index: {a:?}"))
}

/// Retries a request until it gets an answer that is not a Raft error (no leader yet,
/// a request that timed out during an election).
async fn req_retrying(base: &str, method: &str, path: &str, form: &str) -> Answer {
    let deadline = Instant::now() + WAIT;
    loop {
        let a = req(base, method, path, form).await;
        let raft_error = a.status == 500 || a.body.contains("\"errorCode\":300");
        if !raft_error {
            return a;
        }
        assert!(Instant::now() < deadline, "kept failing: {a:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls a local GET on `base` until `check` accepts the answer.
async fn wait_get(base: &str, path: &str, mut check: impl FnMut(&Answer) -> bool) -> Answer {
    let deadline = Instant::now() + WAIT;
    loop {
        let a = req(base, "GET", path, "").await;
        if check(&a) {
            return a;
        }
        assert!(
            Instant::now() < deadline,
            "{base}{path} never matched: {a:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A single member as the fixtures were recorded: named `fixture`, advertising its
/// client address.
async fn fixture_member(enable_v2: bool) -> Cluster {
    Cluster::start_with(1, |c| {
        c.name = "fixture".to_owned();
        c.initial_cluster[0].name = "fixture".to_owned();
        c.enable_v2 = enable_v2;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_server_answers_the_recorded_fixtures_as_etcd_3_4() {
    let c = fixture_member(true).await;
    let base = base(&c, 0);
    // etcd's store index is 3 before the first request (its member, its attributes, the
    // cluster version); Keel writes the same three entries into `/0`.
    wait_get(&base, "/v2/keys/", |a| {
        a.header("x-etcd-index") == Some("3")
    })
    .await;
    let server: &Server = c.servers[0].as_ref().expect("running");
    let ids = Ids {
        cluster_id: server.cluster_id(),
        member_id: server.member_id(),
        peer_url: format!("http://{}", c.configs[0].listen_peer_addrs[0]),
    };
    replay(
        include_str!("../../keel-v2http/tests/fixtures/requests.txt"),
        &records(include_str!(
            "../../keel-v2http/tests/fixtures/responses.jsonl"
        )),
        &base,
        &ids,
    )
    .await;
    let stats = json(&req(&base, "GET", "/v2/stats/store", "").await);
    assert_eq!(stats["watchers"], 0, "every watch was released");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enable_v2_false_answers_as_etcd_without_v2() {
    let c = fixture_member(false).await;
    let base = base(&c, 0);
    let server: &Server = c.servers[0].as_ref().expect("running");
    let ids = Ids {
        cluster_id: server.cluster_id(),
        member_id: server.member_id(),
        peer_url: String::new(),
    };
    let lines =
        "GET /v2/keys/foo\nPUT /v2/keys/foo value=x\nGET /v2/members\nGET /v2/stats/store\n";
    replay(
        lines,
        &records(include_str!(
            "../../keel-v2http/tests/fixtures/disabled.jsonl"
        )),
        &base,
        &ids,
    )
    .await;
    // The rest of the client port is unaffected.
    let (status, _) = support::http_get(c.configs[0].listen_client_addrs[0], "/health").await;
    assert_eq!(status, 200);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_api_set_get_dir_ttl_cas_cad_post_and_watch() {
    let c = Cluster::start(1).await;
    let b = base(&c, 0);
    // The member's publish (its attributes and the cluster version, store index 3) must
    // land first: otherwise it can fall between the PUT and the GET compared below.
    wait_get(&b, "/v2/keys/", |a| a.header("x-etcd-index") == Some("3")).await;

    let a = req_retrying(&b, "PUT", "/v2/keys/a", "value=1").await;
    assert_eq!(a.status, 201, "{a:?}");
    let set_index = etcd_index(&a);
    assert_eq!(json(&a)["node"]["modifiedIndex"], set_index);
    let a = req(&b, "GET", "/v2/keys/a", "").await;
    assert_eq!(json(&a)["node"]["value"], "1");
    assert_eq!(etcd_index(&a), set_index);
    let a = req(&b, "GET", "/v2/keys/a?quorum=true", "").await;
    assert_eq!((a.status, json(&a)["action"].clone()), (200, "get".into()));

    // Directories.
    let a = req(&b, "PUT", "/v2/keys/d", "dir=true").await;
    assert_eq!(a.status, 201);
    req(&b, "PUT", "/v2/keys/d/x", "value=y").await;
    let a = req(&b, "GET", "/v2/keys/d?recursive=true", "").await;
    assert_eq!(json(&a)["node"]["nodes"][0]["key"], "/d/x");
    let a = req(&b, "DELETE", "/v2/keys/d?dir=true", "").await;
    assert_eq!(json(&a)["errorCode"], 108, "a non-empty dir: {a:?}");
    let a = req(&b, "DELETE", "/v2/keys/d?recursive=true", "").await;
    assert_eq!(json(&a)["action"], "delete");

    // Compare-and-swap and compare-and-delete.
    let a = req(&b, "PUT", "/v2/keys/a?prevValue=nope", "value=2").await;
    assert_eq!((a.status, json(&a)["errorCode"].clone()), (412, 101.into()));
    let a = req(
        &b,
        "PUT",
        &format!("/v2/keys/a?prevIndex={set_index}"),
        "value=2",
    )
    .await;
    assert_eq!(json(&a)["action"], "compareAndSwap", "{a:?}");
    let a = req(&b, "DELETE", "/v2/keys/a?prevValue=1", "").await;
    assert_eq!(json(&a)["errorCode"], 101);
    let a = req(&b, "DELETE", "/v2/keys/a?prevValue=2", "").await;
    assert_eq!(json(&a)["action"], "compareAndDelete");
    let a = req(&b, "GET", "/v2/keys/a", "").await;
    assert_eq!((a.status, json(&a)["errorCode"].clone()), (404, 100.into()));

    // In-order keys.
    let first = json(&req(&b, "POST", "/v2/keys/q", "value=j1").await);
    let second = json(&req(&b, "POST", "/v2/keys/q", "value=j2").await);
    let (k1, k2) = (
        first["node"]["key"].as_str().expect("key").to_owned(),
        second["node"]["key"].as_str().expect("key").to_owned(),
    );
    assert!(k1 < k2 && k1.starts_with("/q/"), "{k1} {k2}");
    let listing = json(&req(&b, "GET", "/v2/keys/q?sorted=true", "").await);
    assert_eq!(listing["node"]["nodes"][1]["value"], "j2");

    // A watch with a past waitIndex is answered from the history.
    let w = json(
        &req(
            &b,
            "GET",
            &format!("/v2/keys/a?wait=true&waitIndex={set_index}"),
            "",
        )
        .await,
    );
    assert_eq!(w["action"], "set");
    // A TTL key expires through the leader's SYNC: one expire event, seen by a watcher.
    let a = req(&b, "PUT", "/v2/keys/t", "value=v&ttl=1").await;
    let t_index = etcd_index(&a);
    assert_eq!(json(&a)["node"]["ttl"], 1);
    let mut watch = Conn::open(
        &b,
        "GET",
        &format!("/v2/keys/t?wait=true&waitIndex={}", t_index + 1),
        "",
        &[],
    )
    .await;
    assert_eq!(watch.status, 200);
    let line = tokio::time::timeout(WAIT, watch.next_chunk())
        .await
        .expect("the key expires in time")
        .expect("an event");
    let e: Value = serde_json::from_str(&line).expect("event JSON");
    assert_eq!(e["action"], "expire", "{e}");
    assert_eq!(e["node"]["modifiedIndex"], t_index + 1);
    let a = req(&b, "GET", "/v2/keys/t", "").await;
    assert_eq!(a.status, 404);

    // Once more than 1000 events happened after it, an index is out of the history: 401.
    let mut writes = tokio::task::JoinSet::new();
    for batch in 0..20 {
        let b = b.clone();
        writes.spawn(async move {
            for i in 0..51 {
                let a = req(&b, "PUT", &format!("/v2/keys/fill/{batch}-{i}"), "value=x").await;
                assert!(a.status == 201, "{a:?}");
            }
        });
    }
    while let Some(r) = writes.join_next().await {
        r.expect("writer");
    }
    let a = req(
        &b,
        "GET",
        &format!("/v2/keys/a?wait=true&waitIndex={set_index}"),
        "",
    )
    .await;
    assert_eq!(
        (a.status, json(&a)["errorCode"].clone()),
        (400, 401.into()),
        "{a:?}"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_replicate_and_a_follower_watcher_sees_the_leaders_write() {
    let c = Cluster::start(3).await;
    let leader = c.wait_leader().await;
    let follower = (leader + 1) % 3;
    let other = (leader + 2) % 3;

    let mut watch = Conn::open(&base(&c, follower), "GET", "/v2/keys/w?wait=true", "", &[]).await;
    assert_eq!(watch.status, 200);

    // A write through a follower is forwarded and answered by it.
    let a = req_retrying(&base(&c, other), "PUT", "/v2/keys/w", "value=from-other").await;
    assert_eq!(a.status, 201, "{a:?}");
    let index = etcd_index(&a);
    let line = tokio::time::timeout(WAIT, watch.next_chunk())
        .await
        .expect("the follower's watcher wakes")
        .expect("an event");
    let e: Value = serde_json::from_str(&line).expect("event JSON");
    assert_eq!(
        (e["action"].clone(), e["node"]["value"].clone()),
        ("set".into(), "from-other".into())
    );

    // Every member applies it at the same store index.
    for i in 0..3 {
        let a = wait_get(&base(&c, i), "/v2/keys/w", |a| a.status == 200).await;
        assert_eq!(json(&a)["node"]["modifiedIndex"], index, "member {i}");
    }
    // Raft headers are the member's real committed index and term (as Status reports).
    let a = req(&base(&c, leader), "GET", "/v2/keys/w", "").await;
    let raft_index: u64 = a.header("x-raft-index").expect("index").parse().expect("n");
    let raft_term: u64 = a.header("x-raft-term").expect("term").parse().expect("n");
    let status = c
        .maintenance(leader)
        .await
        .status(keel_proto::etcdserverpb::StatusRequest {})
        .await
        .expect("status")
        .into_inner();
    assert_eq!(raft_term, status.raft_term, "{a:?}");
    assert!(
        raft_index <= status.raft_index && raft_index >= 5,
        "3 publishes, the leader's entry and the write are committed: {a:?}"
    );
    let members = json(&req(&base(&c, follower), "GET", "/v2/members", "").await);
    assert_eq!(members["members"].as_array().map(Vec::len), Some(3));
    let leader_stats = req(&base(&c, leader), "GET", "/v2/stats/leader", "").await;
    assert_eq!(leader_stats.status, 200);
    let follower_stats = req(&base(&c, follower), "GET", "/v2/stats/leader", "").await;
    assert_eq!(follower_stats.status, 403);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_v2_store_survives_a_restart() {
    let mut c = Cluster::start(1).await;
    let b = base(&c, 0);
    req_retrying(&b, "PUT", "/v2/keys/dir/k", "value=v1").await;
    req(&b, "PUT", "/v2/keys/dir/k", "value=v2").await;
    let a = req(&b, "PUT", "/v2/keys/long", "value=l&ttl=3600").await;
    let before = json(&req(&b, "GET", "/v2/keys/?recursive=true", "").await);
    let index_before = etcd_index(&a);
    c.stop(0).await;
    c.restart(0).await;
    let b = base(&c, 0);
    let a = wait_get(&b, "/v2/keys/dir/k", |a| a.status == 200).await;
    assert_eq!(json(&a)["node"]["value"], "v2");
    let after = json(&req(&b, "GET", "/v2/keys/?recursive=true", "").await);
    assert_eq!(after["node"]["nodes"][0], before["node"]["nodes"][0], "dir");
    assert_eq!(
        after["node"]["nodes"][1]["expiration"], before["node"]["nodes"][1]["expiration"],
        "the TTL key keeps its absolute expiry"
    );
    // The restart re-publishes the member's attributes, one more store write (as etcd).
    let a = wait_get(&b, "/v2/keys/", |a| etcd_index(a) == index_before + 1).await;
    assert_eq!(a.status, 200);
    c.shutdown().await;
}

fn snap_files(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir.join("member/snap"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".snap"))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_carry_the_v2_store_to_restarts_and_lagging_followers() {
    let mut c = Cluster::start_with(3, |cfg| cfg.snapshot_count = 20).await;
    let leader = c.wait_leader().await;
    let lagging = (leader + 1) % 3;
    req_retrying(&base(&c, leader), "PUT", "/v2/keys/before", "value=b").await;
    c.stop(lagging).await;
    let mut last = 0;
    for i in 0..120 {
        let a = req_retrying(
            &base(&c, leader),
            "PUT",
            &format!("/v2/keys/k/{i:03}"),
            &format!("value={i}"),
        )
        .await;
        assert!(a.status == 201, "{a:?}");
        last = etcd_index(&a);
    }
    assert!(
        snap_files(&c.data_dir(leader)).len() >= 2,
        "the leader took snapshots"
    );
    // The lagging follower's log is behind the leader's compacted log: it gets a snapshot.
    c.restart(lagging).await;
    let lb = base(&c, lagging);
    let a = wait_get(&lb, "/v2/keys/k/119", |a| a.status == 200).await;
    let deadline = Instant::now() + WAIT;
    while !snap_files(&c.data_dir(lagging))
        .iter()
        .any(|n| !n.ends_with("0000000000000000.snap"))
    {
        assert!(
            Instant::now() < deadline,
            "the lagging follower never recorded the leader's snapshot"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(json(&a)["node"]["modifiedIndex"], last);
    let a = req(&lb, "GET", "/v2/keys/before", "").await;
    assert_eq!(json(&a)["node"]["value"], "b");
    let listing = json(&req(&lb, "GET", "/v2/keys/k", "").await);
    assert_eq!(listing["node"]["nodes"].as_array().map(Vec::len), Some(120));
    // It keeps applying after the snapshot.
    let a = req_retrying(&base(&c, leader), "PUT", "/v2/keys/after", "value=a").await;
    let after_index = etcd_index(&a);
    let a = wait_get(&lb, "/v2/keys/after", |a| a.status == 200).await;
    assert_eq!(json(&a)["node"]["modifiedIndex"], after_index);

    // A restart of the leader rebuilds its store from its latest snapshot plus the WAL.
    let new_leader_candidate = leader;
    c.stop(new_leader_candidate).await;
    c.restart(new_leader_candidate).await;
    let a = wait_get(&base(&c, new_leader_candidate), "/v2/keys/after", |a| {
        a.status == 200
    })
    .await;
    assert_eq!(json(&a)["node"]["modifiedIndex"], after_index);
    let listing = json(&req(&base(&c, new_leader_candidate), "GET", "/v2/keys/k", "").await);
    assert_eq!(listing["node"]["nodes"].as_array().map(Vec::len), Some(120));
    // Every member agrees on the whole store.
    let want = json(
        &req(
            &base(&c, lagging),
            "GET",
            "/v2/keys/?recursive=true&sorted=true",
            "",
        )
        .await,
    );
    for i in 0..3 {
        let got = wait_get(&base(&c, i), "/v2/keys/?recursive=true&sorted=true", |a| {
            a.status == 200 && json(a) == want
        })
        .await;
        assert_eq!(json(&got), want, "member {i}");
    }
    c.shutdown().await;
}
