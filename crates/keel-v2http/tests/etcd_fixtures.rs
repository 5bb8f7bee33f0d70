//! Replays `tests/fixtures/requests.txt` against the router (served over TCP on
//! 127.0.0.1 with the store test double) and compares every answer with what etcd 3.4
//! answered (`tests/fixtures/responses.jsonl`, recorded by `fixtures.py`). The runner and
//! its normalisations are in `common/replay.rs`.

mod common;

use common::replay::{Ids, records, replay};

fn ids() -> Ids {
    Ids {
        cluster_id: common::CLUSTER_ID,
        member_id: common::MEMBER_ID,
        peer_url: common::PEER_URL.to_string(),
    }
}

#[tokio::test]
async fn router_answers_as_etcd_3_4() {
    let (backend, base) = common::start().await;
    replay(
        include_str!("fixtures/requests.txt"),
        &records(include_str!("fixtures/responses.jsonl")),
        &base,
        &ids(),
    )
    .await;
    assert_eq!(backend.watchers(), 0, "every watch was released");
}

#[tokio::test]
async fn disabled_v2_answers_as_etcd_with_enable_v2_false() {
    let (listener, base) = common::listen().await;
    common::serve(listener, keel_v2http::disabled_router());
    let lines =
        "GET /v2/keys/foo\nPUT /v2/keys/foo value=x\nGET /v2/members\nGET /v2/stats/store\n";
    replay(
        lines,
        &records(include_str!("fixtures/disabled.jsonl")),
        &base,
        &ids(),
    )
    .await;
}
