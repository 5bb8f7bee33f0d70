//! Behaviour the etcd fixtures cannot show: watcher release, backend failures, a
//! follower's leader stats, refused membership changes.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Conn, StoreBackendDouble};
use keel_v2http::{BackendError, BoxFuture, ClusterView, RaftStatus, V2Backend};
use keel_v2store::{Event, Stats, V2Request, Watcher, WatcherId};

/// Waits (bounded) until the double has `n` watchers.
async fn await_watchers(backend: &StoreBackendDouble, n: usize) {
    let deadline = Instant::now() + common::TIMEOUT;
    while backend.watchers() != n {
        assert!(
            Instant::now() < deadline,
            "watchers stayed at {} (want {n})",
            backend.watchers()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn abandoned_long_poll_and_stream_release_their_watchers() {
    let (backend, base) = common::start().await;
    let poll = Conn::open(&base, "GET", "/v2/keys/a?wait=true", "", &[]).await;
    let stream = Conn::open(&base, "GET", "/v2/keys/b?wait=true&stream=true", "", &[]).await;
    assert_eq!((poll.status, stream.status), (200, 200));
    assert_eq!(backend.watchers(), 2, "both watches registered");
    drop(poll);
    await_watchers(&backend, 1).await;
    drop(stream);
    await_watchers(&backend, 0).await;
}

#[tokio::test]
async fn answered_long_poll_releases_its_watcher_and_ends() {
    let (backend, base) = common::start().await;
    let mut poll = Conn::open(
        &base,
        "GET",
        "/v2/keys/dir?wait=true&recursive=true",
        "",
        &[],
    )
    .await;
    let put = common::request(&base, "PUT", "/v2/keys/dir/k", "value=v").await;
    assert_eq!(put.status, 201);
    let line = poll.next_chunk().await.expect("the event");
    assert!(line.contains("\"key\":\"/dir/k\""), "{line}");
    assert_eq!(
        poll.next_chunk().await,
        None,
        "a long poll ends after one event"
    );
    await_watchers(&backend, 0).await;
}

/// A follower whose Raft proposals fail: delegates reads to the store double.
struct FailingFollower(Arc<StoreBackendDouble>);

impl V2Backend for FailingFollower {
    fn propose(&self, _req: V2Request) -> BoxFuture<'_, Result<Arc<Event>, BackendError>> {
        Box::pin(async {
            Err(BackendError::Unavailable(
                "etcdserver: request timed out".into(),
            ))
        })
    }
    fn get(&self, req: &V2Request) -> Result<Arc<Event>, BackendError> {
        self.0.get(req)
    }
    fn watch(&self, req: &V2Request) -> Result<Watcher, BackendError> {
        self.0.watch(req)
    }
    fn cancel_watch(&self, id: WatcherId) {
        self.0.cancel_watch(id)
    }
    fn raft_status(&self) -> RaftStatus {
        self.0.raft_status()
    }
    fn cluster(&self) -> ClusterView {
        self.0.cluster()
    }
    fn store_stats(&self) -> Stats {
        self.0.store_stats()
    }
    fn self_stats(&self) -> String {
        self.0.self_stats()
    }
    fn leader_stats(&self) -> Option<String> {
        None
    }
    fn now(&self) -> i64 {
        self.0.now()
    }
}

#[tokio::test]
async fn backend_failures_are_raft_internal_errors_and_followers_refuse_leader_stats() {
    let (listener, base) = common::listen().await;
    let backend = Arc::new(FailingFollower(StoreBackendDouble::new(&base)));
    common::serve(listener, keel_v2http::router(backend));
    let a = common::request(&base, "PUT", "/v2/keys/k", "value=v").await;
    assert_eq!(a.status, 500);
    assert_eq!(
        a.body,
        "{\"errorCode\":300,\"message\":\"Raft Internal Error\",\"cause\":\"etcdserver: request timed out\",\"index\":0}\n"
    );
    assert_eq!(a.header("x-etcd-index"), Some("0"));
    let a = common::request(&base, "GET", "/v2/stats/leader", "").await;
    assert_eq!(a.status, 403);
    assert_eq!(a.body, "{\"message\":\"not current leader\"}");
    assert_eq!(a.header("content-type"), Some("application/json"));
}

async fn member_request(base: &str, method: &str, path: &str, json: &str) -> common::Answer {
    let headers = [("Content-Type", "application/json")];
    Conn::open_body(base, method, path, json, &headers)
        .await
        .read_all()
        .await
}

#[tokio::test]
async fn membership_changes_are_refused_after_etcds_validation() {
    let (_backend, base) = common::start().await;
    let id = format!("{:x}", common::MEMBER_ID);
    let refused = "{\"message\":\"Internal Server Error\"}";
    let a = common::request(&base, "DELETE", &format!("/v2/members/{id}"), "").await;
    assert_eq!((a.status, a.body.as_str()), (500, refused));
    let a = common::request(&base, "DELETE", "/v2/members/abc", "").await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (404, "{\"message\":\"No such member: abc\"}")
    );
    let a = common::request(&base, "PUT", &format!("/v2/members/{id}"), "").await;
    assert_eq!(a.status, 415, "PUT needs a JSON body: {a:?}");
    assert_eq!(
        a.header("x-etcd-cluster-id"),
        Some(format!("{:x}", common::CLUSTER_ID).as_str())
    );
}

#[tokio::test]
async fn json_member_bodies_are_decoded_before_the_refusal() {
    let (_backend, base) = common::start().await;
    let id = format!("{:x}", common::MEMBER_ID);
    let a = member_request(&base, "POST", "/v2/members", "{").await;
    assert_eq!(a.status, 400, "a body that does not decode: {a:?}");
    let body = r#"{"peerURLs":["http://127.0.0.1:2390"]}"#;
    let a = member_request(&base, "POST", "/v2/members", body).await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (500, "{\"message\":\"Internal Server Error\"}")
    );
    let a = member_request(&base, "PUT", &format!("/v2/members/{id}"), body).await;
    assert_eq!(a.status, 500, "{a:?}");
    let a = member_request(&base, "PUT", "/v2/members/abc", body).await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (404, "{\"message\":\"No such member: abc\"}")
    );
}
