//! Concurrent clients that drive the KV API and record every operation.
//!
//! Each client is one tokio task with one connection to one member (it moves
//! to the next member after an error). It issues one request at a time, drawn
//! from a seeded mix of linearizable and serializable gets, prefix ranges,
//! puts, deletes and compare-and-set transactions over a small keyspace.
//! Every value written is unique in the run (`c{client}-{seq}`), so a read
//! names the write it observed.
//!
//! Error classification (etcd semantics): a read that fails is dropped (it
//! constrains nothing); a write that fails in any way is recorded with an
//! unknown outcome, because a timeout, a broken connection or "leader changed"
//! does not say whether the entry was committed.
//!
//! Watch and lease traffic are further [`Request`] kinds driven by their own
//! client tasks ([`crate::watch`], [`crate::lease`]) recording into the same
//! [`Recorder`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use keel_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use keel_proto::etcdserverpb::kv_client::KvClient;
use keel_proto::etcdserverpb::request_op::Request as OpRequest;
use keel_proto::etcdserverpb::{
    CompactionRequest, Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng as _};
use tonic::transport::{Channel, Endpoint};

use crate::history::{Outcome, Record, Recorder, Request, Response};

/// Prefix of every key the traffic touches.
pub const KEY_PREFIX: &str = "/robustness/";
/// Time a client waits for one answer before recording an unknown outcome.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// Time allowed to connect to a member.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause after an error, so a client does not spin against a dead member.
const ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// The traffic's shape.
#[derive(Debug, Clone)]
pub struct TrafficConfig {
    /// Concurrent clients.
    pub clients: usize,
    /// Keys `KEY_PREFIX + "k{i}"` for `i < keys`.
    pub keys: usize,
    /// Seed of every client's choices.
    pub seed: u64,
    /// A bug planted in the client layer, to show the checks catch it.
    pub planted_bug: Option<PlantedBug>,
}

/// Bugs the harness can plant in its own client layer. They stand in for
/// server bugs the checks must catch (a stale local read, an acknowledged
/// write that is lost) without changing the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlantedBug {
    /// Some linearizable gets are answered from the client's memory of the
    /// last value it saw for the key, as a follower serving linearizable reads
    /// locally would answer.
    StaleCachedReads,
    /// Some puts are recorded as acknowledged without being sent, as a server
    /// acknowledging before its fsync and then crashing would behave.
    AckWithoutWrite,
    /// A watcher that reconnects resumes one revision too late (two past the
    /// last revision seen), as a server that skips the first revision of a
    /// resumed watch would behave.
    WatchResumeSkips,
    /// Some events lose their `prev_kv`, as a server that fails to attach it
    /// would behave.
    WatchDropsPrevKv,
}

impl PlantedBug {
    /// The bug's CLI name.
    pub fn name(self) -> &'static str {
        match self {
            PlantedBug::StaleCachedReads => "stale-cached-reads",
            PlantedBug::AckWithoutWrite => "ack-without-write",
            PlantedBug::WatchResumeSkips => "watch-resume-skips",
            PlantedBug::WatchDropsPrevKv => "watch-drops-prev-kv",
        }
    }

    /// Parses a CLI name.
    pub fn parse(name: &str) -> Option<PlantedBug> {
        [
            PlantedBug::StaleCachedReads,
            PlantedBug::AckWithoutWrite,
            PlantedBug::WatchResumeSkips,
            PlantedBug::WatchDropsPrevKv,
        ]
        .into_iter()
        .find(|b| b.name() == name)
    }
}

/// The key with index `i`.
pub fn key(i: usize) -> String {
    format!("{KEY_PREFIX}k{i}")
}

/// The end of a range covering every key with `prefix`.
pub fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// Opens a channel to `url`, bounded in time.
pub async fn channel(url: &str) -> Option<Channel> {
    let endpoint = Endpoint::from_shared(url.to_owned())
        .ok()?
        .connect_timeout(CONNECT_TIMEOUT);
    tokio::time::timeout(CONNECT_TIMEOUT, endpoint.connect())
        .await
        .ok()?
        .ok()
}

/// Connects to `url`, bounded in time.
pub async fn connect(url: &str) -> Option<KvClient<Channel>> {
    channel(url).await.map(KvClient::new)
}

/// Sends `request` to a member and reduces the answer to a [`Response`] and
/// its header revision.
pub async fn execute(
    kv: &mut KvClient<Channel>,
    request: &Request,
) -> Result<(i64, Response), String> {
    let call = async {
        match request {
            Request::Get { key, serializable } => {
                let r = kv
                    .range(RangeRequest {
                        key: key.clone().into_bytes(),
                        serializable: *serializable,
                        ..RangeRequest::default()
                    })
                    .await
                    .map_err(|s| s.to_string())?
                    .into_inner();
                let value = r.kvs.first().map(|kv| lossy(&kv.value));
                Ok((revision(r.header.as_ref()), Response::Value(value)))
            }
            Request::Range {
                prefix,
                serializable,
            } => {
                let r = kv
                    .range(RangeRequest {
                        key: prefix.clone().into_bytes(),
                        range_end: prefix_end(prefix),
                        serializable: *serializable,
                        ..RangeRequest::default()
                    })
                    .await
                    .map_err(|s| s.to_string())?
                    .into_inner();
                let kvs = r.kvs.iter().map(|kv| (lossy(&kv.key), lossy(&kv.value)));
                Ok((revision(r.header.as_ref()), Response::Kvs(kvs.collect())))
            }
            Request::Put { key, value } => {
                let r = kv
                    .put(PutRequest {
                        key: key.clone().into_bytes(),
                        value: value.clone().into_bytes(),
                        ..PutRequest::default()
                    })
                    .await
                    .map_err(|s| s.to_string())?
                    .into_inner();
                Ok((revision(r.header.as_ref()), Response::Put))
            }
            Request::Delete { key } => {
                let r = kv
                    .delete_range(DeleteRangeRequest {
                        key: key.clone().into_bytes(),
                        ..DeleteRangeRequest::default()
                    })
                    .await
                    .map_err(|s| s.to_string())?
                    .into_inner();
                Ok((revision(r.header.as_ref()), Response::Deleted(r.deleted)))
            }
            Request::CompareAndSet {
                key,
                expected,
                new,
                also_key,
                also_value,
            } => {
                let compare = match expected {
                    Some(v) => Compare {
                        result: CompareResult::Equal as i32,
                        target: CompareTarget::Value as i32,
                        key: key.clone().into_bytes(),
                        target_union: Some(TargetUnion::Value(v.clone().into_bytes())),
                        ..Compare::default()
                    },
                    None => Compare {
                        result: CompareResult::Equal as i32,
                        target: CompareTarget::Create as i32,
                        key: key.clone().into_bytes(),
                        target_union: Some(TargetUnion::CreateRevision(0)),
                        ..Compare::default()
                    },
                };
                let put = |k: &String, v: &String| RequestOp {
                    request: Some(OpRequest::RequestPut(PutRequest {
                        key: k.clone().into_bytes(),
                        value: v.clone().into_bytes(),
                        ..PutRequest::default()
                    })),
                };
                let r = kv
                    .txn(TxnRequest {
                        compare: vec![compare],
                        success: vec![put(key, new), put(also_key, also_value)],
                        failure: Vec::new(),
                    })
                    .await
                    .map_err(|s| s.to_string())?
                    .into_inner();
                Ok((revision(r.header.as_ref()), Response::Txn(r.succeeded)))
            }
            Request::Compact { revision: rev } => {
                let r = kv
                    .compact(CompactionRequest {
                        revision: *rev,
                        physical: false,
                    })
                    .await
                    .map_err(|s| s.to_string())?
                    .into_inner();
                Ok((revision(r.header.as_ref()), Response::Compacted))
            }
            other => panic!("traffic::execute drives KV requests only, got {other:?}"),
        }
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, call).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {REQUEST_TIMEOUT:?}")),
    }
}

fn revision(header: Option<&keel_proto::etcdserverpb::ResponseHeader>) -> i64 {
    header.map_or(0, |h| h.revision)
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// One client's loop: runs until `stop` is set or the history is full.
pub async fn client_loop(
    id: u64,
    urls: Arc<Vec<String>>,
    config: TrafficConfig,
    recorder: Arc<Recorder>,
    stop: Arc<AtomicBool>,
) {
    assert!(!urls.is_empty(), "traffic needs a member to talk to");
    assert!(config.keys >= 2, "transactions write two distinct keys");
    let mut rng = SmallRng::seed_from_u64(config.seed ^ id.wrapping_mul(0x2545_f491_4f6c_dd1d));
    let mut member = usize::try_from(id).unwrap_or(0) % urls.len();
    let mut kv: Option<KvClient<Channel>> = None;
    let mut seq = 0u64;
    let mut last_seen: Vec<Option<String>> = vec![None; config.keys];
    while !stop.load(Ordering::Relaxed) && !recorder.is_full() {
        if kv.is_none() {
            kv = connect(&urls[member]).await;
            if kv.is_none() {
                member = (member + 1) % urls.len();
                tokio::time::sleep(ERROR_BACKOFF).await;
                continue;
            }
        }
        seq += 1;
        let k = rng.random_range(0..config.keys);
        let value = format!("c{id}-{seq}");
        let request = match rng.random_range(0..100u32) {
            0..30 => Request::Get {
                key: key(k),
                serializable: false,
            },
            30..40 => Request::Get {
                key: key(k),
                serializable: true,
            },
            40..46 => Request::Range {
                prefix: KEY_PREFIX.to_owned(),
                serializable: false,
            },
            46..50 => Request::Range {
                prefix: KEY_PREFIX.to_owned(),
                serializable: true,
            },
            50..75 => Request::Put { key: key(k), value },
            75..83 => Request::Delete { key: key(k) },
            _ => {
                let other = (k + 1 + rng.random_range(0..config.keys - 1)) % config.keys;
                Request::CompareAndSet {
                    key: key(k),
                    expected: last_seen[k].clone(),
                    new: value.clone(),
                    also_key: key(other),
                    also_value: format!("{value}-also"),
                }
            }
        };
        let sent_to = member;
        let invoked_ns = recorder.now_ns();
        let planted = match (config.planted_bug, &request) {
            (
                Some(PlantedBug::StaleCachedReads),
                Request::Get {
                    serializable: false,
                    ..
                },
            ) if rng.random_bool(0.5) => Some(Response::Value(last_seen[k].clone())),
            (Some(PlantedBug::AckWithoutWrite), Request::Put { .. }) if rng.random_bool(0.2) => {
                Some(Response::Put)
            }
            _ => None,
        };
        let result = match planted {
            Some(response) => Ok((0, response)),
            None => {
                let conn = kv.as_mut().expect("connected above");
                execute(conn, &request).await
            }
        };
        let outcome = match result {
            Ok((revision, response)) => {
                remember(&mut last_seen, k, &request, &response);
                Outcome::Ok {
                    returned_ns: recorder.now_ns(),
                    revision,
                    response,
                }
            }
            Err(error) => {
                kv = None;
                member = (member + 1) % urls.len();
                if request.is_read() {
                    tokio::time::sleep(ERROR_BACKOFF).await;
                    continue;
                }
                Outcome::Unknown { error }
            }
        };
        let failed = matches!(outcome, Outcome::Unknown { .. });
        recorder.push(Record {
            client: id,
            member: sent_to,
            request,
            invoked_ns,
            outcome,
        });
        if failed {
            tokio::time::sleep(ERROR_BACKOFF).await;
        }
    }
}

/// Updates the client's memory of the last value it saw for key `k`.
fn remember(last_seen: &mut [Option<String>], k: usize, request: &Request, response: &Response) {
    match (request, response) {
        (Request::Get { .. }, Response::Value(v)) => last_seen[k] = v.clone(),
        (Request::Put { value, .. }, Response::Put) => last_seen[k] = Some(value.clone()),
        (Request::Delete { .. }, Response::Deleted(_)) => last_seen[k] = None,
        (Request::CompareAndSet { new, .. }, Response::Txn(true)) => {
            last_seen[k] = Some(new.clone());
        }
        _ => {}
    }
}

/// Periodically compacts to a little behind the current revision, recording
/// each compaction, until `stop` is set.
pub async fn compactor_loop(
    urls: Arc<Vec<String>>,
    recorder: Arc<Recorder>,
    stop: Arc<AtomicBool>,
    every: Duration,
) {
    const CLIENT_ID: u64 = u64::MAX - 1;
    let mut member = 0usize;
    while !stop.load(Ordering::Relaxed) && !recorder.is_full() {
        tokio::time::sleep(every).await;
        let Some(mut kv) = connect(&urls[member]).await else {
            member = (member + 1) % urls.len();
            continue;
        };
        let probe = Request::Get {
            key: key(0),
            serializable: false,
        };
        let Ok((current, _)) = execute(&mut kv, &probe).await else {
            member = (member + 1) % urls.len();
            continue;
        };
        let request = Request::Compact {
            revision: (current - 20).max(1),
        };
        let invoked_ns = recorder.now_ns();
        let outcome = match execute(&mut kv, &request).await {
            Ok((revision, response)) => Outcome::Ok {
                returned_ns: recorder.now_ns(),
                revision,
                response,
            },
            Err(error) => Outcome::Unknown { error },
        };
        recorder.push(Record {
            client: CLIENT_ID,
            member,
            request,
            invoked_ns,
            outcome,
        });
    }
}
