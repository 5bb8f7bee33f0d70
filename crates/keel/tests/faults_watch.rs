//! Watch across a leader crash on a real three-member `keel` cluster: one watcher streams
//! from a follower, one from the leader, while writers put keys; the leader is killed
//! with SIGKILL half-way. A watcher whose stream breaks resumes on the next member from
//! the revision after the last one it saw, as clientv3 does. Each must see every write
//! exactly once, in revision order, with no gap: checked against the writes the writers
//! saw acknowledged (with their revisions) and against a final linearizable range.
//!
//! Bounded: a few hundred puts, every wait with a deadline.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Cluster, Impl, member_specs};
use keel_proto::etcdserverpb::kv_client::KvClient;
use keel_proto::etcdserverpb::watch_client::WatchClient;
use keel_proto::etcdserverpb::{
    PutRequest, RangeRequest, WatchCreateRequest, WatchRequest, watch_request::RequestUnion,
};
use keel_proto::mvccpb::event::EventType;

const PREFIX: &str = "fw/";
const WRITERS: usize = 4;
const PUTS_PER_WRITER: usize = 75;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// Upper bound on the whole run after the cluster is up.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

fn prefix_end() -> Vec<u8> {
    let mut end = PREFIX.as_bytes().to_vec();
    *end.last_mut().expect("non-empty prefix") += 1;
    end
}

/// An event as a watcher saw it: (revision, key, value; empty for a delete).
type Seen = (i64, String, String);

/// Puts `fw/{writer}/{seq}` until done, failing over to the next member on any error;
/// returns (key, revision) of every acknowledged put.
async fn writer(
    id: usize,
    endpoints: Vec<String>,
    acked_count: Arc<AtomicUsize>,
) -> Vec<(String, i64)> {
    let mut endpoint = id % endpoints.len();
    let mut acked = Vec::new();
    let mut seq = 0;
    let deadline = Instant::now() + RUN_TIMEOUT;
    while seq < PUTS_PER_WRITER {
        assert!(Instant::now() < deadline, "writer {id} stuck at {seq}");
        let url = format!("http://{}", endpoints[endpoint]);
        let Ok(Ok(mut kv)) = tokio::time::timeout(REQUEST_TIMEOUT, KvClient::connect(url)).await
        else {
            endpoint = (endpoint + 1) % endpoints.len();
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        while seq < PUTS_PER_WRITER {
            let key = format!("{PREFIX}{id}/{seq:04}");
            let request = PutRequest {
                key: key.clone().into_bytes(),
                value: format!("value-{id}-{seq}").into_bytes(),
                ..PutRequest::default()
            };
            match tokio::time::timeout(REQUEST_TIMEOUT, kv.put(request)).await {
                Ok(Ok(r)) => {
                    let rev = r.into_inner().header.expect("header").revision;
                    acked.push((key, rev));
                    acked_count.fetch_add(1, Ordering::Relaxed);
                    seq += 1;
                }
                _ => {
                    // Unknown outcome: the same key again elsewhere; only acks count.
                    endpoint = (endpoint + 1) % endpoints.len();
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    break;
                }
            }
        }
    }
    acked
}

/// Watches the prefix from `start` on member `first`, moving to the next member (from
/// the revision after the last event) whenever the stream fails; returns once it has
/// seen revision `target` (set by the test when the writes are done) or `stop` is set.
async fn watcher(
    first: usize,
    endpoints: Vec<String>,
    start: i64,
    target: Arc<AtomicI64>,
    stop: Arc<AtomicBool>,
) -> (Vec<Seen>, usize) {
    let mut endpoint = first;
    let mut next = start;
    let mut seen: Vec<Seen> = Vec::new();
    let mut resumes = 0;
    'connect: while !stop.load(Ordering::Relaxed) {
        let reached = |next: i64| {
            let t = target.load(Ordering::Acquire);
            t > 0 && next > t
        };
        if reached(next) {
            break;
        }
        let url = format!("http://{}", endpoints[endpoint]);
        let client = match tokio::time::timeout(REQUEST_TIMEOUT, WatchClient::connect(url)).await {
            Ok(Ok(c)) => c,
            _ => {
                endpoint = (endpoint + 1) % endpoints.len();
                resumes += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let mut client = client.max_decoding_message_size(64 << 20);
        let create = WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key: PREFIX.as_bytes().to_vec(),
                range_end: prefix_end(),
                start_revision: next,
                ..WatchCreateRequest::default()
            })),
        };
        let opened = tokio::time::timeout(
            REQUEST_TIMEOUT,
            client.watch(tonic::codegen::tokio_stream::iter(vec![create])),
        )
        .await;
        let mut stream = match opened {
            Ok(Ok(r)) => r.into_inner(),
            _ => {
                endpoint = (endpoint + 1) % endpoints.len();
                resumes += 1;
                continue;
            }
        };
        loop {
            if stop.load(Ordering::Relaxed) || reached(next) {
                break 'connect;
            }
            // Waking up now and then to look at the target; a quiet stream is healthy.
            let message =
                match tokio::time::timeout(Duration::from_millis(200), stream.message()).await {
                    Err(_) => continue,
                    Ok(m) => m,
                };
            match message {
                Ok(Some(r)) => {
                    assert!(!r.canceled, "watch canceled: {r:?}");
                    for e in r.events {
                        let kv = e.kv.expect("event kv");
                        assert!(
                            kv.mod_revision >= next,
                            "revision {} again (expected >= {next})",
                            kv.mod_revision
                        );
                        next = kv.mod_revision + 1;
                        let value = if e.r#type == EventType::Delete as i32 {
                            String::new()
                        } else {
                            String::from_utf8_lossy(&kv.value).into_owned()
                        };
                        seen.push((
                            kv.mod_revision,
                            String::from_utf8_lossy(&kv.key).into_owned(),
                            value,
                        ));
                    }
                }
                _ => {
                    // The member went away: resume elsewhere after the last revision seen.
                    endpoint = (endpoint + 1) % endpoints.len();
                    resumes += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue 'connect;
                }
            }
        }
    }
    (seen, resumes)
}

async fn put_on_any(endpoints: &[String], key: &str) -> i64 {
    let deadline = Instant::now() + RUN_TIMEOUT;
    loop {
        for e in endpoints {
            let Ok(Ok(mut kv)) =
                tokio::time::timeout(REQUEST_TIMEOUT, KvClient::connect(format!("http://{e}")))
                    .await
            else {
                continue;
            };
            let request = PutRequest {
                key: key.as_bytes().to_vec(),
                value: b"x".to_vec(),
                ..PutRequest::default()
            };
            if let Ok(Ok(r)) = tokio::time::timeout(REQUEST_TIMEOUT, kv.put(request)).await {
                return r.into_inner().header.expect("header").revision;
            }
        }
        assert!(Instant::now() < deadline, "no member took a put");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A linearizable range of the prefix on one of `endpoints`: (revision, key → (mod
/// revision, value)).
async fn final_range(endpoints: &[String]) -> (i64, BTreeMap<String, (i64, String)>) {
    let deadline = Instant::now() + RUN_TIMEOUT;
    loop {
        for e in endpoints {
            let Ok(Ok(mut kv)) =
                tokio::time::timeout(REQUEST_TIMEOUT, KvClient::connect(format!("http://{e}")))
                    .await
            else {
                continue;
            };
            let request = RangeRequest {
                key: PREFIX.as_bytes().to_vec(),
                range_end: prefix_end(),
                ..RangeRequest::default()
            };
            if let Ok(Ok(r)) = tokio::time::timeout(REQUEST_TIMEOUT, kv.range(request)).await {
                let r = r.into_inner();
                let kvs = r
                    .kvs
                    .into_iter()
                    .map(|kv| {
                        (
                            String::from_utf8_lossy(&kv.key).into_owned(),
                            (
                                kv.mod_revision,
                                String::from_utf8_lossy(&kv.value).into_owned(),
                            ),
                        )
                    })
                    .collect();
                return (r.header.expect("header").revision, kvs);
            }
        }
        assert!(
            Instant::now() < deadline,
            "no member served the final range"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn watchers_see_every_write_once_in_order_across_a_leader_kill() {
    assert!(
        std::path::Path::new(common::ETCDCTL).exists(),
        "{} is missing: the harness needs Debian's etcd-client (scripts/test installs it)",
        common::ETCDCTL
    );
    let specs = member_specs(3);
    let mut cluster = Cluster::start(Impl::Keel, &specs, &[]);
    let leader = cluster
        .leader(Duration::from_secs(20))
        .expect("a leader is elected");
    let follower = (leader + 1) % 3;
    let endpoints: Vec<String> = (0..3).map(|i| cluster.endpoint(i)).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");

    let start = rt.block_on(put_on_any(&endpoints, "before-watch")) + 1;
    let target = Arc::new(AtomicI64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let acked_count = Arc::new(AtomicUsize::new(0));
    let watchers: Vec<_> = [follower, leader]
        .into_iter()
        .map(|first| {
            rt.spawn(watcher(
                first,
                endpoints.clone(),
                start,
                Arc::clone(&target),
                Arc::clone(&stop),
            ))
        })
        .collect();
    let writers: Vec<_> = (0..WRITERS)
        .map(|id| rt.spawn(writer(id, endpoints.clone(), Arc::clone(&acked_count))))
        .collect();

    // Half-way, kill -9 the leader.
    let half = WRITERS * PUTS_PER_WRITER / 2;
    let deadline = Instant::now() + RUN_TIMEOUT;
    while acked_count.load(Ordering::Relaxed) < half {
        assert!(Instant::now() < deadline, "writes did not get half-way");
        std::thread::sleep(Duration::from_millis(10));
    }
    cluster.kill(leader);
    let killed_at = Instant::now();

    let acked: Vec<(String, i64)> = rt.block_on(async {
        let mut all = Vec::new();
        for w in writers {
            all.extend(w.await.expect("writer task"));
        }
        all
    });
    println!(
        "{} puts acknowledged; the writers finished {:?} after the kill",
        acked.len(),
        killed_at.elapsed()
    );
    let survivors: Vec<String> = (0..3)
        .filter(|i| *i != leader)
        .map(|i| endpoints[i].clone())
        .collect();
    let (final_rev, stored) = rt.block_on(final_range(&survivors));
    target.store(final_rev, Ordering::Release);
    let results: Vec<(Vec<Seen>, usize)> = rt.block_on(async {
        let mut out = Vec::new();
        for w in watchers {
            match tokio::time::timeout(RUN_TIMEOUT, w).await {
                Ok(r) => out.push(r.expect("watcher task")),
                Err(_) => {
                    stop.store(true, Ordering::Relaxed);
                    panic!("a watcher did not reach revision {final_rev}");
                }
            }
        }
        out
    });
    drop(cluster);

    assert_eq!(acked.len(), WRITERS * PUTS_PER_WRITER);
    for ((seen, resumes), name) in results.iter().zip(["follower", "leader"]) {
        println!(
            "watcher first on the {name}: {} events, {resumes} resumes",
            seen.len()
        );
        // Only the writers wrote after `start`: every revision once, in order, no gap.
        let revs: Vec<i64> = seen.iter().map(|(r, _, _)| *r).collect();
        let expected: Vec<i64> = (start..=final_rev).collect();
        assert_eq!(revs, expected, "watcher first on the {name}");
        let by_rev: BTreeMap<i64, &Seen> = seen.iter().map(|s| (s.0, s)).collect();
        for (key, rev) in &acked {
            let (_, k, _) = by_rev
                .get(rev)
                .unwrap_or_else(|| panic!("{name}: acknowledged {key}@{rev} not seen"));
            assert_eq!(k, key, "{name}: revision {rev}");
        }
        let mut last: BTreeMap<&str, (i64, &str)> = BTreeMap::new();
        for (rev, key, value) in seen {
            last.insert(key, (*rev, value));
        }
        let last: BTreeMap<String, (i64, String)> = last
            .into_iter()
            .map(|(k, (r, v))| (k.to_owned(), (r, v.to_owned())))
            .collect();
        assert_eq!(
            last, stored,
            "{name}: the last event of each key is what is stored"
        );
    }
    assert_eq!(
        results[0].0, results[1].0,
        "both watchers saw the same history"
    );
    assert!(
        results[1].1 >= 1,
        "the watcher on the killed leader had to resume elsewhere"
    );
}
