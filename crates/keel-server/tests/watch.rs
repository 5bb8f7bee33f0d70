//! `etcdserverpb.Watch` against in-process servers, following etcd 3.4's
//! `v3rpc/watch.go` and `mvcc/watchable_store.go`: create and cancel, ranges, start
//! revisions, filters, prev_kv, ids, compaction, progress, fragments, many watchers on a
//! stream, a slow consumer, and a follower serving the same events as the leader.

mod support;

use std::time::{Duration, Instant};

use keel_proto::etcdserverpb::{
    CompactionRequest, DeleteRangeRequest, WatchCancelRequest, WatchCreateRequest,
    WatchProgressRequest, WatchRequest, WatchResponse, watch_client::WatchClient,
    watch_create_request::FilterType, watch_request::RequestUnion,
};
use keel_proto::mvccpb::{self, event::EventType};
use support::{Cluster, WAIT, put, put_retrying};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

/// How long "nothing more arrives" is watched for.
const QUIET: Duration = Duration::from_millis(300);

/// One client watch stream.
struct Stream {
    requests: mpsc::Sender<WatchRequest>,
    responses: Streaming<WatchResponse>,
}

impl Stream {
    async fn open(c: &Cluster, i: usize) -> Stream {
        let client = WatchClient::connect(c.endpoint(i)).await.expect("connect");
        Stream::start(client, false).await.expect("watch stream")
    }

    /// A stream with clientv3's `hasleader: true` metadata, as etcdctl opens them.
    async fn open_requiring_leader(c: &Cluster, i: usize) -> Result<Stream, tonic::Status> {
        let client = WatchClient::connect(c.endpoint(i)).await.expect("connect");
        Stream::start(client, true).await
    }

    /// A stream whose HTTP/2 windows are the protocol's minimum (64 KiB), so a client
    /// that does not read pushes back on the server after a few hundred small events.
    async fn open_small_window(c: &Cluster, i: usize) -> Stream {
        let channel = tonic::transport::Endpoint::from_shared(c.endpoint(i))
            .expect("endpoint")
            .initial_stream_window_size(65_535)
            .initial_connection_window_size(65_535)
            .connect()
            .await
            .expect("connect");
        Stream::start(WatchClient::new(channel), false)
            .await
            .expect("watch stream")
    }

    async fn start(
        client: WatchClient<tonic::transport::Channel>,
        require_leader: bool,
    ) -> Result<Stream, tonic::Status> {
        let mut client = client.max_decoding_message_size(64 << 20);
        let (requests, rx) = mpsc::channel(64);
        let mut request = tonic::Request::new(ReceiverStream::new(rx));
        if require_leader {
            request
                .metadata_mut()
                .insert("hasleader", "true".parse().expect("metadata value"));
        }
        let responses = client.watch(request).await?.into_inner();
        Ok(Stream {
            requests,
            responses,
        })
    }

    async fn send(&self, request: RequestUnion) {
        self.requests
            .send(WatchRequest {
                request_union: Some(request),
            })
            .await
            .expect("stream open");
    }

    /// Sends a create request and returns the `created` response.
    async fn create(&mut self, create: WatchCreateRequest) -> WatchResponse {
        self.send(RequestUnion::CreateRequest(create)).await;
        let r = self.next().await;
        assert!(r.created, "expected a created response, got {r:?}");
        r
    }

    async fn cancel(&self, watch_id: i64) {
        self.send(RequestUnion::CancelRequest(WatchCancelRequest { watch_id }))
            .await;
    }

    async fn next(&mut self) -> WatchResponse {
        match tokio::time::timeout(WAIT, self.responses.message()).await {
            Ok(Ok(Some(r))) => r,
            Ok(Ok(None)) => panic!("watch stream ended"),
            Ok(Err(status)) => panic!("watch stream failed: {status}"),
            Err(_) => panic!("no watch response within {WAIT:?}"),
        }
    }

    /// Reads responses until `n` events arrived; returns them with the responses.
    async fn events(&mut self, n: usize) -> (Vec<mvccpb::Event>, Vec<WatchResponse>) {
        let mut events = Vec::new();
        let mut responses = Vec::new();
        while events.len() < n {
            let r = self.next().await;
            events.extend(r.events.iter().cloned());
            responses.push(r);
        }
        assert_eq!(events.len(), n, "more events than expected: {responses:?}");
        (events, responses)
    }

    async fn expect_quiet(&mut self) {
        if let Ok(r) = tokio::time::timeout(QUIET, self.responses.message()).await {
            panic!("expected no response, got {r:?}");
        }
    }
}

fn watch(key: &str) -> WatchCreateRequest {
    WatchCreateRequest {
        key: key.as_bytes().to_vec(),
        ..WatchCreateRequest::default()
    }
}

fn watch_prefix(prefix: &str) -> WatchCreateRequest {
    let mut end = prefix.as_bytes().to_vec();
    *end.last_mut().expect("non-empty prefix") += 1;
    WatchCreateRequest {
        range_end: end,
        ..watch(prefix)
    }
}

fn key_of(e: &mvccpb::Event) -> String {
    String::from_utf8(e.kv.as_ref().expect("kv").key.to_vec()).expect("utf-8 key")
}

fn value_of(e: &mvccpb::Event) -> String {
    String::from_utf8(e.kv.as_ref().expect("kv").value.to_vec()).expect("utf-8 value")
}

fn rev_of(e: &mvccpb::Event) -> i64 {
    e.kv.as_ref().expect("kv").mod_revision
}

async fn single() -> Cluster {
    let c = Cluster::start(1).await;
    c.wait_leader().await;
    c
}

async fn put_rev(c: &Cluster, key: &str, value: &str) -> i64 {
    c.kv(0)
        .await
        .put(put(key, value))
        .await
        .expect("put")
        .into_inner()
        .header
        .expect("header")
        .revision
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_put_cancel_with_etcd_headers() {
    let c = single().await;
    let (member_id, cluster_id) = {
        let s = c.servers[0].as_ref().expect("running");
        (s.member_id(), s.cluster_id())
    };
    let before = put_rev(&c, "other", "x").await;
    let mut s = Stream::open(&c, 0).await;
    let created = s.create(watch("foo")).await;
    assert_eq!(created.watch_id, 0, "the first automatic id is 0");
    assert!(!created.canceled);
    let h = created.header.expect("header");
    assert_eq!((h.cluster_id, h.member_id), (cluster_id, member_id));
    assert_eq!(h.revision, before, "created carries the current revision");
    assert!(h.raft_term >= 1);

    put_rev(&c, "other", "y").await;
    let rev = put_rev(&c, "foo", "bar").await;
    let r = s.next().await;
    assert_eq!(r.watch_id, 0);
    assert_eq!(r.header.as_ref().expect("header").revision, rev);
    assert_eq!(r.events.len(), 1);
    let e = &r.events[0];
    assert_eq!(e.r#type, EventType::Put as i32);
    assert_eq!(
        (key_of(e), value_of(e)),
        ("foo".to_owned(), "bar".to_owned())
    );
    let kv = e.kv.as_ref().expect("kv");
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version),
        (rev, rev, 1)
    );
    assert!(e.prev_kv.is_none(), "prev_kv only when asked for");

    c.kv(0)
        .await
        .delete_range(DeleteRangeRequest {
            key: b"foo".to_vec(),
            ..DeleteRangeRequest::default()
        })
        .await
        .expect("delete");
    let r = s.next().await;
    assert_eq!(r.events[0].r#type, EventType::Delete as i32);
    assert_eq!(rev_of(&r.events[0]), rev + 1);
    assert!(r.events[0].kv.as_ref().expect("kv").value.is_empty());

    s.cancel(0).await;
    let r = s.next().await;
    assert!(r.canceled && !r.created, "{r:?}");
    assert_eq!(r.watch_id, 0);
    put_rev(&c, "foo", "after-cancel").await;
    // A cancel of an id the stream does not have gets no answer, as in etcd.
    s.cancel(42).await;
    s.expect_quiet().await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefix_from_key_and_empty_key_ranges() {
    let c = single().await;
    let mut s = Stream::open(&c, 0).await;
    let prefix = s.create(watch_prefix("p/")).await.watch_id;
    let from_key = s
        .create(WatchCreateRequest {
            range_end: vec![0],
            ..watch("m")
        })
        .await
        .watch_id;
    // etcd: an empty key is `\0`, so with range end `\0` it watches every key.
    let everything = s
        .create(WatchCreateRequest {
            range_end: vec![0],
            ..WatchCreateRequest::default()
        })
        .await
        .watch_id;
    // An empty key alone watches the key `\0` only.
    let nul_key = s.create(WatchCreateRequest::default()).await.watch_id;
    assert_eq!([prefix, from_key, everything, nul_key], [0, 1, 2, 3]);

    for key in ["a", "p/1", "q", "p0"] {
        put_rev(&c, key, "v").await;
    }
    let mut seen: Vec<(i64, String)> = Vec::new();
    while seen.len() < 1 + 3 + 4 {
        let r = s.next().await;
        for e in &r.events {
            seen.push((r.watch_id, key_of(e)));
        }
    }
    let of = |id: i64| -> Vec<String> {
        seen.iter()
            .filter(|(w, _)| *w == id)
            .map(|(_, k)| k.clone())
            .collect()
    };
    assert_eq!(of(prefix), ["p/1"]);
    assert_eq!(of(from_key), ["p/1", "q", "p0"]);
    assert_eq!(of(everything), ["a", "p/1", "q", "p0"]);
    assert!(of(nul_key).is_empty());
    put_rev(&c, "\0", "nul").await;
    let r = s.next().await;
    let mut ids = vec![r.watch_id];
    ids.push(s.next().await.watch_id);
    ids.sort_unstable();
    assert_eq!(ids, [everything, nul_key]);
    s.expect_quiet().await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_and_future_start_revisions() {
    let c = single().await;
    let mut revs = Vec::new();
    for i in 0..5 {
        revs.push(put_rev(&c, "k", &format!("v{i}")).await);
    }
    let mut s = Stream::open(&c, 0).await;
    let created = s
        .create(WatchCreateRequest {
            start_revision: revs[1],
            ..watch("k")
        })
        .await;
    assert_eq!(created.header.expect("header").revision, revs[4]);
    let (events, _) = s.events(4).await;
    let got: Vec<(i64, String)> = events.iter().map(|e| (rev_of(e), value_of(e))).collect();
    let want: Vec<(i64, String)> = (1..5).map(|i| (revs[i], format!("v{i}"))).collect();
    assert_eq!(got, want, "history from the start revision, in order");
    // Caught up, the watcher now follows new writes.
    let next = put_rev(&c, "k", "v5").await;
    let (events, _) = s.events(1).await;
    assert_eq!(rev_of(&events[0]), next);

    let future = next + 3;
    s.create(WatchCreateRequest {
        start_revision: future,
        ..watch("f")
    })
    .await;
    for i in 0..5 {
        put_rev(&c, "f", &format!("f{i}")).await;
    }
    let (events, responses) = s.events(3).await;
    assert!(responses.iter().all(|r| r.watch_id == 1));
    let got: Vec<i64> = events.iter().map(rev_of).collect();
    assert_eq!(got, [future, future + 1, future + 2]);
    s.expect_quiet().await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_and_prev_kv() {
    let c = single().await;
    let mut s = Stream::open(&c, 0).await;
    let no_put = s
        .create(WatchCreateRequest {
            filters: vec![FilterType::Noput as i32],
            ..watch("k")
        })
        .await
        .watch_id;
    let no_delete = s
        .create(WatchCreateRequest {
            filters: vec![FilterType::Nodelete as i32],
            ..watch("k")
        })
        .await
        .watch_id;
    let prev = s
        .create(WatchCreateRequest {
            prev_kv: true,
            ..watch("k")
        })
        .await
        .watch_id;
    put_rev(&c, "k", "v1").await;
    put_rev(&c, "k", "v2").await;
    c.kv(0)
        .await
        .delete_range(DeleteRangeRequest {
            key: b"k".to_vec(),
            ..DeleteRangeRequest::default()
        })
        .await
        .expect("delete");
    let mut by_id: std::collections::BTreeMap<i64, Vec<mvccpb::Event>> = Default::default();
    let mut total = 0;
    while total < 1 + 2 + 3 {
        let r = s.next().await;
        total += r.events.len();
        by_id.entry(r.watch_id).or_default().extend(r.events);
    }
    let kinds = |id: i64| -> Vec<i32> { by_id[&id].iter().map(|e| e.r#type).collect() };
    assert_eq!(kinds(no_put), [EventType::Delete as i32]);
    assert_eq!(
        kinds(no_delete),
        [EventType::Put as i32, EventType::Put as i32]
    );
    let prevs: Vec<Option<Vec<u8>>> = by_id[&prev]
        .iter()
        .map(|e| e.prev_kv.as_ref().map(|p| p.value.to_vec()))
        .collect();
    assert_eq!(prevs, [None, Some(b"v1".to_vec()), Some(b"v2".to_vec())]);
    // The other watchers did not ask for previous values.
    assert!(by_id[&no_delete].iter().all(|e| e.prev_kv.is_none()));
    s.expect_quiet().await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_ids_duplicates_and_empty_ranges() {
    let c = single().await;
    let mut s = Stream::open(&c, 0).await;
    assert_eq!(s.create(watch("a")).await.watch_id, 0);
    let mine = s
        .create(WatchCreateRequest {
            watch_id: 1,
            ..watch("b")
        })
        .await;
    assert_eq!((mine.watch_id, mine.canceled), (1, false));
    // The automatic id skips the ones taken.
    assert_eq!(s.create(watch("c")).await.watch_id, 2);
    let dup = s
        .create(WatchCreateRequest {
            watch_id: 1,
            ..watch("d")
        })
        .await;
    assert_eq!(dup.watch_id, -1);
    assert!(dup.created && dup.canceled);
    assert_eq!(
        dup.cancel_reason,
        "mvcc: duplicate watch ID provided on the WatchStream"
    );
    let empty = s
        .create(WatchCreateRequest {
            range_end: b"a".to_vec(),
            ..watch("b")
        })
        .await;
    assert_eq!(empty.watch_id, -1);
    assert!(empty.canceled);
    assert_eq!(empty.cancel_reason, "mvcc: watcher range is empty");
    // Ids are per stream: another stream starts again at 0 and may reuse 1.
    let mut other = Stream::open(&c, 0).await;
    assert_eq!(other.create(watch("a")).await.watch_id, 0);
    let reused = other
        .create(WatchCreateRequest {
            watch_id: 1,
            ..watch("b")
        })
        .await;
    assert_eq!((reused.watch_id, reused.canceled), (1, false));
    // A cancelled id can be chosen again, and the old watcher's events stop.
    s.cancel(1).await;
    assert!(s.next().await.canceled);
    let again = s
        .create(WatchCreateRequest {
            watch_id: 1,
            ..watch("e")
        })
        .await;
    assert_eq!((again.watch_id, again.canceled), (1, false));
    put_rev(&c, "b", "v").await;
    put_rev(&c, "e", "v").await;
    let r = s.next().await;
    assert_eq!((r.watch_id, key_of(&r.events[0])), (1, "e".to_owned()));
    let r = other.next().await;
    assert_eq!((r.watch_id, key_of(&r.events[0])), (1, "b".to_owned()));
    s.expect_quiet().await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_start_revision_is_created_then_canceled() {
    let c = single().await;
    let mut revs = Vec::new();
    for i in 0..4 {
        revs.push(put_rev(&c, "k", &format!("v{i}")).await);
    }
    c.kv(0)
        .await
        .compact(CompactionRequest {
            revision: revs[2],
            physical: true,
        })
        .await
        .expect("compact");
    let mut s = Stream::open(&c, 0).await;
    let created = s
        .create(WatchCreateRequest {
            start_revision: revs[0],
            watch_id: 5,
            ..watch("k")
        })
        .await;
    assert!(!created.canceled);
    assert_eq!(created.watch_id, 5);
    let r = s.next().await;
    assert!(r.canceled, "{r:?}");
    assert_eq!(r.watch_id, created.watch_id);
    assert_eq!(r.compact_revision, revs[2]);
    assert!(r.events.is_empty());
    // etcd's compaction notice has no revision in its header.
    assert_eq!(r.header.expect("header").revision, 0);
    // At the compaction point itself the history is still there.
    let ok = s
        .create(WatchCreateRequest {
            start_revision: revs[2],
            ..watch("k")
        })
        .await;
    let (events, _) = s.events(2).await;
    assert_eq!(
        events.iter().map(rev_of).collect::<Vec<_>>(),
        [revs[2], revs[3]]
    );
    assert_ne!(ok.watch_id, created.watch_id);
    // The compacted id stays taken until the client cancels it, as in etcd.
    let dup = s
        .create(WatchCreateRequest {
            watch_id: created.watch_id,
            ..watch("k")
        })
        .await;
    assert!(dup.canceled);
    s.cancel(created.watch_id).await;
    let r = s.next().await;
    assert!(r.canceled && r.compact_revision == 0);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_notify_and_progress_request() {
    let c = Cluster::start_with(1, |cfg| {
        cfg.watch_progress_notify_interval = Duration::from_millis(200);
    })
    .await;
    c.wait_leader().await;
    let mut s = Stream::open(&c, 0).await;
    // No watcher yet: answered at once with the current revision.
    let rev = put_rev(&c, "x", "1").await;
    s.send(RequestUnion::ProgressRequest(WatchProgressRequest {}))
        .await;
    let r = s.next().await;
    assert_eq!(r.watch_id, -1);
    assert_eq!(r.header.expect("header").revision, rev);
    assert!(r.events.is_empty() && !r.created && !r.canceled);

    let plain = s.create(watch("quiet")).await.watch_id;
    let notified = s
        .create(WatchCreateRequest {
            progress_notify: true,
            ..watch("k")
        })
        .await
        .watch_id;
    let rev = put_rev(&c, "x", "2").await;
    let r = s.next().await;
    assert_eq!(
        r.watch_id, notified,
        "only progress_notify watchers get notices"
    );
    assert!(r.events.is_empty());
    assert_eq!(r.header.expect("header").revision, rev);
    let r = s.next().await;
    assert_eq!(r.watch_id, notified, "notices repeat every interval");
    assert_ne!(r.watch_id, plain);

    s.send(RequestUnion::ProgressRequest(WatchProgressRequest {}))
        .await;
    let deadline = Instant::now() + WAIT;
    loop {
        let r = s.next().await;
        if r.watch_id == -1 {
            assert_eq!(r.header.expect("header").revision, rev);
            break;
        }
        assert!(Instant::now() < deadline);
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_request_waits_for_queued_events() {
    let c = single().await;
    let mut s = Stream::open(&c, 0).await;
    s.create(watch_prefix("k/")).await;
    let mut last = 0;
    for i in 0..20 {
        last = put_rev(&c, &format!("k/{i}"), "v").await;
    }
    s.send(RequestUnion::ProgressRequest(WatchProgressRequest {}))
        .await;
    // Every event up to the notice's revision arrives before it.
    let mut events = Vec::new();
    let progress = loop {
        let r = s.next().await;
        if r.watch_id == -1 {
            break r;
        }
        events.extend(r.events);
    };
    assert_eq!(progress.header.expect("header").revision, last);
    assert_eq!(events.len(), 20);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragments_split_large_responses() {
    const KEYS: usize = 700;
    let c = Cluster::start_with(1, |cfg| cfg.max_request_bytes = 1024).await;
    c.wait_leader().await;
    let value = "v".repeat(900);
    let mut tasks = Vec::new();
    for t in 0..8 {
        let mut kv = c.kv(0).await;
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            for i in (t..KEYS).step_by(8) {
                kv.put(put(&format!("big/{i:04}"), &value))
                    .await
                    .expect("put");
            }
        }));
    }
    for t in tasks {
        t.await.expect("put task");
    }
    let mut s = Stream::open(&c, 0).await;
    // From the first revision: the catch-up response holds every put (about 650 KB,
    // over 1024 B + 512 KiB), so it is split.
    s.create(WatchCreateRequest {
        start_revision: 1,
        fragment: true,
        ..watch_prefix("big/")
    })
    .await;
    let (events, responses) = s.events(KEYS).await;
    assert!(responses.len() >= 2, "{} responses", responses.len());
    let last = responses.len() - 1;
    for (i, r) in responses.iter().enumerate() {
        assert_eq!(r.fragment, i < last, "response {i} of {}", responses.len());
    }
    let revs: Vec<i64> = events.iter().map(rev_of).collect();
    assert!(
        revs.windows(2).all(|w| w[1] == w[0] + 1),
        "contiguous revisions"
    );
    // Without `fragment` the same history comes whole.
    let mut whole = Stream::open(&c, 0).await;
    whole
        .create(WatchCreateRequest {
            start_revision: 1,
            ..watch_prefix("big/")
        })
        .await;
    let (again, responses) = whole.events(KEYS).await;
    assert!(responses.iter().all(|r| !r.fragment));
    assert_eq!(again, events);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_watchers_on_one_stream_each_see_their_key_once() {
    const WATCHERS: usize = 100;
    let c = single().await;
    let mut s = Stream::open(&c, 0).await;
    for i in 0..WATCHERS {
        let id = s.create(watch(&format!("m/{i}"))).await.watch_id;
        assert_eq!(id, i as i64);
    }
    for i in 0..WATCHERS {
        put_rev(&c, &format!("m/{i}"), &i.to_string()).await;
    }
    let mut seen = vec![0; WATCHERS];
    for _ in 0..WATCHERS {
        let r = s.next().await;
        assert_eq!(r.events.len(), 1);
        let i = usize::try_from(r.watch_id).expect("id");
        assert_eq!(key_of(&r.events[0]), format!("m/{i}"));
        seen[i] += 1;
    }
    assert!(seen.iter().all(|n| *n == 1), "{seen:?}");
    s.expect_quiet().await;
    c.shutdown().await;
}

/// Puts `n` keys `prefix{i}` from `writers` concurrent clients; returns the revisions.
/// Values are 300 bytes: the `h2` client this test uses sends GOAWAY when too many
/// DATA frames under 256 bytes sit unread in its buffers, which is exactly what a
/// slow consumer of small events would otherwise accumulate.
async fn put_many(c: &Cluster, member: usize, prefix: &str, n: usize, writers: usize) -> Vec<i64> {
    let mut tasks = Vec::new();
    for w in 0..writers {
        let mut kv = c.kv(member).await;
        let prefix = prefix.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut revs = Vec::new();
            for i in (w..n).step_by(writers) {
                let r = kv
                    .put(put(&format!("{prefix}{i:05}"), &format!("{i:0>300}")))
                    .await
                    .expect("put");
                revs.push(r.into_inner().header.expect("header").revision);
            }
            revs
        }));
    }
    let mut revs = Vec::new();
    for t in tasks {
        revs.extend(t.await.expect("put task"));
    }
    revs.sort_unstable();
    revs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_loses_nothing_and_blocks_nobody() {
    const PUTS: usize = 10_000;
    let c = single().await;
    let start = put_rev(&c, "marker", "0").await;
    let mut slow = Stream::open_small_window(&c, 0).await;
    slow.create(watch_prefix("s/")).await;
    let mut reader = Stream::open(&c, 0).await;
    reader.create(watch_prefix("s/")).await;
    // The reader keeps up while the slow stream is not read at all.
    let reading = tokio::spawn(async move {
        let (events, _) = reader.events(PUTS).await;
        events
    });
    let revs = put_many(&c, 0, "s/", PUTS, 16).await;
    assert_eq!(revs.len(), PUTS);
    assert_eq!(revs[0], start + 1);
    let fast = tokio::time::timeout(WAIT, reading)
        .await
        .expect("the reading stream is not held up by the slow one")
        .expect("reader task");
    let (slow_events, _) = slow.events(PUTS).await;
    for events in [&fast, &slow_events] {
        let got: Vec<i64> = events.iter().map(rev_of).collect();
        assert_eq!(got, revs, "every put once, in revision order");
    }
    assert_eq!(fast, slow_events);
    slow.expect_quiet().await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_while_a_slow_watcher_lags_cancels_it_after_what_it_got() {
    const PUTS: usize = 3_000;
    let c = single().await;
    let start = put_rev(&c, "marker", "0").await + 1;
    let mut slow = Stream::open_small_window(&c, 0).await;
    let id = slow.create(watch_prefix("c/")).await.watch_id;
    let revs = put_many(&c, 0, "c/", PUTS, 16).await;
    let last = *revs.last().expect("puts");
    c.kv(0)
        .await
        .compact(CompactionRequest {
            revision: last,
            physical: true,
        })
        .await
        .expect("compact");
    // The stream was not read: the watcher is behind, and now below the compaction
    // point. It gets what was already on its way, contiguous from the start, then the
    // compaction notice.
    let mut next = start;
    let notice = loop {
        let r = slow.next().await;
        if r.canceled {
            break r;
        }
        for e in &r.events {
            assert_eq!(rev_of(e), next, "contiguous events before the notice");
            next += 1;
        }
    };
    assert_eq!(notice.watch_id, id);
    assert_eq!(notice.compact_revision, last);
    assert!(
        next < last,
        "the watcher was still behind: saw up to {}",
        next - 1
    );
    slow.expect_quiet().await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_streams_the_same_events_as_the_leader() {
    const PUTS: usize = 200;
    let c = Cluster::start(3).await;
    let leader = c.wait_leader().await;
    let follower = (leader + 1) % 3;
    put_retrying(&c, leader, "warm", "up").await;
    let mut on_leader = Stream::open(&c, leader).await;
    on_leader.create(watch_prefix("f/")).await;
    let mut on_follower = Stream::open(&c, follower).await;
    let created = on_follower.create(watch_prefix("f/")).await;
    let member = created.header.expect("header").member_id;
    assert_eq!(member, c.member_id(follower), "the follower answers itself");
    let revs = put_many(&c, leader, "f/", PUTS, 4).await;
    let (from_leader, _) = on_leader.events(PUTS).await;
    let (from_follower, responses) = on_follower.events(PUTS).await;
    assert!(
        responses
            .iter()
            .all(|r| r.header.as_ref().expect("header").member_id == member)
    );
    assert_eq!(from_leader.iter().map(rev_of).collect::<Vec<_>>(), revs);
    assert_eq!(from_follower, from_leader);
    on_follower.expect_quiet().await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_requiring_a_leader_end_when_the_member_loses_it() {
    let mut c = Cluster::start(3).await;
    let leader = c.wait_leader().await;
    let survivor = (leader + 1) % 3;
    let mut s = Stream::open_requiring_leader(&c, survivor)
        .await
        .expect("a member with a leader takes the stream");
    s.create(watch("k")).await;
    let mut plain = Stream::open(&c, survivor).await;
    plain.create(watch("k")).await;
    for i in 0..3 {
        if i != survivor {
            c.stop(i).await;
        }
    }
    // Three election timeouts without a leader end the stream that asked for one.
    let status = match tokio::time::timeout(WAIT, s.responses.message()).await {
        Ok(Err(status)) => status,
        other => panic!("expected the stream to fail, got {other:?}"),
    };
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert_eq!(status.message(), "etcdserver: no leader");
    // A new one is refused at once; a stream that did not ask stays open.
    let refused = Stream::open_requiring_leader(&c, survivor)
        .await
        .err()
        .expect("no leader: refused");
    assert_eq!(refused.message(), "etcdserver: no leader");
    plain.expect_quiet().await;
    plain.create(watch("still-open")).await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_open_streams_with_server_stopped() {
    let mut c = single().await;
    let mut s = Stream::open(&c, 0).await;
    s.create(watch("k")).await;
    let server = c.servers[0].take().expect("running");
    let stopping = tokio::spawn(server.shutdown());
    let status = match tokio::time::timeout(WAIT, s.responses.message()).await {
        Ok(Err(status)) => status,
        other => panic!("expected the stream to fail, got {other:?}"),
    };
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert_eq!(status.message(), "etcdserver: server stopped");
    stopping.await.expect("task").expect("clean shutdown");
}
