//! keel-v2http's recorded etcd 3.4 answers (`tests/fixtures`) replayed against a real
//! `keel` process, with keel-v2http's fixture runner and its normalisations (see
//! `keel-v2http/tests/common/replay.rs`): ids and URLs substituted, `X-Raft-Index`
//! compared as an offset from the first answer, `X-Raft-Term` constant, the stats
//! bodies checked for shape. Everything else, `X-Etcd-Index` and every index in the
//! bodies included, must be etcd's byte for byte.

mod common;

#[path = "../../keel-v2http/tests/common/mod.rs"]
mod http;

use std::time::Duration;

use common::{Cluster, Impl, MemberSpec, free_port};
use http::replay::{Ids, records, replay};

/// A single `keel` member named as the fixtures' etcd was; v2 on (`extra` adds flags).
fn start(extra: &[&str]) -> Cluster {
    let spec = MemberSpec {
        name: "fixture".to_owned(),
        client_port: free_port(),
        peer_port: free_port(),
    };
    Cluster::start(Impl::Keel, &[spec], extra)
}

/// (cluster id, member id) from `endpoint status -w json`.
fn ids(c: &Cluster) -> Ids {
    let out = common::etcdctl(&c.endpoint(0), &["endpoint", "status", "-w", "json"], None);
    assert!(out.ok(), "{out:?}");
    let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("status JSON");
    let header = &json[0]["Status"]["header"];
    Ids {
        cluster_id: header["cluster_id"].as_u64().expect("cluster id"),
        member_id: header["member_id"].as_u64().expect("member id"),
        peer_url: format!("http://127.0.0.1:{}", c.nodes[0].spec.peer_port),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn keel_process_answers_the_recorded_fixtures_as_etcd_3_4() {
    let c = start(&[]);
    // etcd's store index was 3 when recording started (member, attributes, version).
    let settled = common::wait_for(Duration::from_secs(30), || {
        common::http(&c.endpoint(0), "GET", "/v2/keys/", "")
            .is_ok_and(|a| a.header("x-etcd-index") == Some("3"))
            .then_some(())
    });
    assert!(
        settled.is_some(),
        "the store never reached index 3\n{}",
        c.logs()
    );
    let base = format!("http://{}", c.endpoint(0));
    runtime().block_on(replay(
        include_str!("../../keel-v2http/tests/fixtures/requests.txt"),
        &records(include_str!(
            "../../keel-v2http/tests/fixtures/responses.jsonl"
        )),
        &base,
        &ids(&c),
    ));
    let stats = common::http(&c.endpoint(0), "GET", "/v2/stats/store", "").expect("stats");
    let stats: serde_json::Value = serde_json::from_str(&stats.body).expect("stats JSON");
    assert_eq!(stats["watchers"], 0, "every watch was released");
}

#[test]
fn keel_process_with_enable_v2_false_answers_as_etcd_without_v2() {
    let c = start(&["--enable-v2=false"]);
    let base = format!("http://{}", c.endpoint(0));
    let lines =
        "GET /v2/keys/foo\nPUT /v2/keys/foo value=x\nGET /v2/members\nGET /v2/stats/store\n";
    runtime().block_on(replay(
        lines,
        &records(include_str!(
            "../../keel-v2http/tests/fixtures/disabled.jsonl"
        )),
        &base,
        &ids(&c),
    ));
}
