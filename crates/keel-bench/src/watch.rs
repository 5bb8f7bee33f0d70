//! `watch` and `watch-latency`: many watchers on few streams, puts on the
//! watched keys, and when each watcher saw each event.
//!
//! Both verbs run three phases:
//!
//! 1. **Creation.** `--streams` Watch streams are opened, stream `s` on
//!    channel `(s % clients) % conns` (etcd's tool puts stream `s` on client
//!    `s % clients`, client `c` on connection `c % conns`). Each stream creates
//!    its watchers one after the other; a watcher's creation latency runs
//!    from sending its create request to the arrival of its `created`
//!    response (clientv3's `Watch` returns at that point too). Watcher `w`
//!    (numbered over all streams) watches key `w % keys`.
//! 2. **Puts.** The puts run through the same runner as the KV verbs, under
//!    `--put-rate` (0: no limit), each recording its revision and the
//!    instant its response arrived. `watch-latency` puts from one client on a
//!    connection of its own, as etcd's tool does; `watch` from `--clients`.
//! 3. **Events.** One task per stream records every event's `mod_revision`
//!    and arrival instant. A stream is done when each of its watchers has
//!    seen the revision of the last successful put on its key; streams still
//!    waiting `--request-timeout` after the last put are stopped.
//!
//! Events are then matched to puts by revision. An event's latency runs from
//! its put's response to the event's arrival, 0 when the event came first
//! (etcd's `watch-latency` definition, applied to `watch` too: etcd's
//! `watch` reports a latency of about 0 for every event, which measures
//! nothing). The events section's rate is events over the time from the
//! first put to the last event: the delivery rate. An expected event (a
//! successful put times the watchers of its key) that never came is an
//! error, counted under the error that ended its stream or under
//! [`EVENT_NOT_DELIVERED`].
//!
//! Memory is bounded by `watchers * put-total` event records (16 bytes each
//! plus an instant); the fan-out measurement of 10,000 watchers and 100
//! puts holds about 1M of them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use keel_proto::etcdserverpb::kv_client::KvClient;
use keel_proto::etcdserverpb::watch_client::WatchClient;
use keel_proto::etcdserverpb::{
    PutRequest, WatchCreateRequest, WatchRequest, WatchResponse, watch_request,
};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use tonic::codec::Streaming;
use tonic::transport::Channel;

use crate::report::{Report, Section, Summary};
use crate::runner::{
    Operations, Progress, RunConfig, RunError, channel_for, error_message, open_channels,
    run_clients,
};

/// The error an expected event is counted under when its stream stayed open
/// but the event did not come within `--request-timeout` of the last put.
pub const EVENT_NOT_DELIVERED: &str =
    "event not delivered within --request-timeout of the last put";

/// Requests a stream may have queued before the sender waits: creates are
/// sent one at a time, so a few slots suffice.
const STREAM_REQUEST_QUEUE: usize = 4;

/// The watchers and puts of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FanOut {
    /// `--streams`.
    pub streams: usize,
    /// Watchers per stream.
    pub watchers_per_stream: usize,
    /// The distinct watched keys.
    pub keys: Vec<Vec<u8>>,
    /// etcd's list of `--watched-key-total` keys, as indexes into `keys`
    /// (several may name one key): watcher `w` watches `slots[w % len]`,
    /// put `i` writes `slots[i % len]`.
    pub slots: Vec<usize>,
    /// Watch each key as a prefix (the range of keys starting with it).
    pub prefix: bool,
    /// `--prevkv`: ask for the previous key-value in each event.
    pub prev_kv: bool,
    /// Puts: the i-th writes `keys[slots[i % slots.len()]]`.
    pub put_total: u64,
    /// `--put-rate`, 0 for no limit.
    pub put_rate: u32,
    /// The value of every put.
    pub value: Vec<u8>,
    /// Puts come from one client on a connection of its own
    /// (`watch-latency`) rather than from `--clients` (`watch`).
    pub single_putter: bool,
    /// How long to keep the watchers open and idle between creation and the
    /// puts (for measuring a server's memory per idle watcher).
    pub idle_hold: Duration,
}

/// Settings that cannot make a watch run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FanOutError {
    /// `--streams 0` or no watchers per stream.
    #[error("--{0} must be at least 1")]
    Zero(&'static str),
    /// No key to watch.
    #[error("--watched-key-total must be at least 1")]
    NoKeys,
}

impl FanOut {
    /// Checks the settings.
    pub fn check(&self) -> Result<(), FanOutError> {
        if self.streams == 0 {
            return Err(FanOutError::Zero("streams"));
        }
        if self.watchers_per_stream == 0 {
            return Err(FanOutError::Zero("watchers-per-stream"));
        }
        if self.slots.is_empty() {
            return Err(FanOutError::NoKeys);
        }
        assert!(
            self.slots.iter().all(|&k| k < self.keys.len()),
            "every slot names one of the keys"
        );
        Ok(())
    }

    /// Watchers over all streams.
    pub fn watchers(&self) -> usize {
        self.streams * self.watchers_per_stream
    }

    /// Builds the distinct keys and the slots from etcd's list of watched
    /// keys (which may repeat a key).
    pub fn distinct_keys(watched: Vec<Vec<u8>>) -> (Vec<Vec<u8>>, Vec<usize>) {
        let mut keys: Vec<Vec<u8>> = Vec::new();
        let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
        let slots = watched
            .into_iter()
            .map(|key| {
                *index.entry(key.clone()).or_insert_with(|| {
                    keys.push(key);
                    keys.len() - 1
                })
            })
            .collect();
        (keys, slots)
    }

    /// The key index watched by watcher `w`.
    fn key_of_watcher(&self, w: usize) -> usize {
        self.slots[w % self.slots.len()]
    }

    /// The key index written by put `i`.
    fn key_of_put(&self, i: u64) -> usize {
        self.slots[usize::try_from(i % self.slots.len() as u64).expect("below slots.len()")]
    }

    /// Events the puts produce if all succeed: each put, times the watchers
    /// of its key.
    pub fn expected_events(&self) -> u64 {
        let mut watchers_of_key = vec![0u64; self.keys.len()];
        for w in 0..self.watchers() {
            watchers_of_key[self.key_of_watcher(w)] += 1;
        }
        (0..self.put_total)
            .map(|i| watchers_of_key[self.key_of_put(i)])
            .sum()
    }

    fn create_request(&self, w: usize) -> WatchRequest {
        let key = self.keys[self.key_of_watcher(w)].clone();
        let range_end = if self.prefix {
            prefix_end(&key)
        } else {
            Vec::new()
        };
        WatchRequest {
            request_union: Some(watch_request::RequestUnion::CreateRequest(
                WatchCreateRequest {
                    key,
                    range_end,
                    prev_kv: self.prev_kv,
                    ..WatchCreateRequest::default()
                },
            )),
        }
    }
}

/// The end of the range of keys starting with `prefix` (etcd's
/// `GetPrefixRangeEnd`): the prefix with its last byte below 0xff
/// incremented and what follows dropped; `[0]` (every key) when there is no
/// such byte.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    match prefix.iter().rposition(|&b| b < 0xff) {
        Some(at) => {
            let mut end = prefix[..=at].to_vec();
            end[at] += 1;
            end
        }
        None => vec![0],
    }
}

/// One open Watch stream with its watchers created.
struct OpenStream {
    /// Kept so that the request side stays open during the run.
    _requests: mpsc::Sender<WatchRequest>,
    responses: Streaming<WatchResponse>,
    /// Key index of each created watcher, by watch id.
    key_of_watch: HashMap<i64, usize>,
}

/// What the creation of one stream's watchers measured.
#[derive(Default)]
struct Creation {
    latencies_secs: Vec<f64>,
    errors: BTreeMap<String, u64>,
}

/// What one stream received in the event phase.
#[derive(Default)]
struct Received {
    /// `(mod_revision, arrival)` of every event, per watcher key index.
    events: Vec<(usize, i64, Instant)>,
    /// The error that ended the stream, if one did.
    failure: Option<String>,
    /// Watchers (their key index) of this stream.
    watcher_keys: Vec<usize>,
}

/// Waits for the next response that is not an event batch, within
/// `timeout`.
async fn next_created(
    responses: &mut Streaming<WatchResponse>,
    timeout: Duration,
) -> Result<i64, Status> {
    loop {
        let response = tokio::time::timeout(timeout, responses.message())
            .await
            .map_err(|_| {
                Status::deadline_exceeded("no created response within --request-timeout")
            })??
            .ok_or_else(|| Status::unavailable("the watch stream ended"))?;
        if response.canceled {
            return Err(Status::failed_precondition(format!(
                "watch canceled: {}",
                response.cancel_reason
            )));
        }
        if response.created {
            return Ok(response.watch_id);
        }
    }
}

/// Opens stream `s` and creates its watchers one at a time. A stream that
/// fails is given up, with all its watchers: it comes back as what it
/// received in the event phase (nothing, ended by the creation's error), so
/// that the events its watchers miss are counted too.
async fn create_stream(
    plan: Arc<FanOut>,
    s: usize,
    channel: Channel,
    timeout: Duration,
    done: Arc<std::sync::atomic::AtomicU64>,
) -> (Creation, Result<OpenStream, Received>) {
    let mut creation = Creation::default();
    let (sender, receiver) = mpsc::channel(STREAM_REQUEST_QUEUE);
    let first = s * plan.watchers_per_stream;
    let mut key_of_watch = HashMap::with_capacity(plan.watchers_per_stream);
    let mut responses: Option<Streaming<WatchResponse>> = None;
    let mut receiver = Some(receiver);
    for w in first..first + plan.watchers_per_stream {
        let started = Instant::now();
        let created = async {
            sender
                .send(plan.create_request(w))
                .await
                .map_err(|_| Status::unavailable("the watch stream's request side closed"))?;
            if let Some(receiver) = receiver.take() {
                // etcd sends the response headers with the first response,
                // so the stream is opened after the first create is queued.
                let opened = tokio::time::timeout(
                    timeout,
                    WatchClient::new(channel.clone()).watch(ReceiverStream::new(receiver)),
                )
                .await
                .map_err(|_| {
                    Status::deadline_exceeded("watch stream not opened within --request-timeout")
                })??;
                responses = Some(opened.into_inner());
            }
            let stream = responses
                .as_mut()
                .ok_or_else(|| Status::unavailable("the watch stream failed to open"))?;
            next_created(stream, timeout).await
        }
        .await;
        done.fetch_add(1, Ordering::Relaxed);
        match created {
            Ok(watch_id) => {
                creation
                    .latencies_secs
                    .push(started.elapsed().as_secs_f64());
                key_of_watch.insert(watch_id, plan.key_of_watcher(w));
            }
            Err(status) => {
                // The stream is unusable: this and every later watcher of it
                // count as failed creations.
                let left = (first + plan.watchers_per_stream - w) as u64;
                let message = error_message(&status);
                *creation.errors.entry(message.clone()).or_insert(0) += left;
                done.fetch_add(left - 1, Ordering::Relaxed);
                let lost = Received {
                    events: Vec::new(),
                    failure: Some(message),
                    watcher_keys: (first..first + plan.watchers_per_stream)
                        .map(|w| plan.key_of_watcher(w))
                        .collect(),
                };
                return (creation, Err(lost));
            }
        }
    }
    let responses = responses.expect("a created watcher implies an open stream");
    let stream = OpenStream {
        _requests: sender,
        responses,
        key_of_watch,
    };
    (creation, Ok(stream))
}

/// Receives events on `stream` until each watcher has seen the last put
/// revision of its key (known once `targets` holds it), the stream fails,
/// or `stop` is raised. Watchers still short of their target are counted,
/// not searched for, so a response costs the same whatever the stream's
/// number of watchers.
async fn receive_events(
    mut stream: OpenStream,
    mut targets: watch::Receiver<Option<Arc<Vec<i64>>>>,
    mut stop: watch::Receiver<bool>,
    done: Arc<std::sync::atomic::AtomicU64>,
) -> Received {
    let mut received = Received {
        watcher_keys: stream.key_of_watch.values().copied().collect(),
        ..Received::default()
    };
    // Highest revision each watcher has seen; a canceled watcher leaves.
    let mut seen: HashMap<i64, i64> = stream.key_of_watch.keys().map(|&id| (id, 0)).collect();
    // The last put revision per key, once the puts are over.
    let mut last_put: Option<Arc<Vec<i64>>> = None;
    // Watchers below their target; meaningful once `last_put` is known.
    let mut pending = usize::MAX;
    loop {
        if pending == 0 {
            return received;
        }
        tokio::select! {
            message = stream.responses.message() => match message {
                Ok(Some(response)) => {
                    let arrived = Instant::now();
                    let Some(&key) = stream.key_of_watch.get(&response.watch_id) else {
                        continue;
                    };
                    let target = last_put.as_ref().map(|last| last[key]);
                    let Some(rev) = seen.get_mut(&response.watch_id) else {
                        continue;
                    };
                    let was_short = target.is_some_and(|t| *rev < t);
                    for event in &response.events {
                        let Some(kv) = event.kv.as_ref() else { continue };
                        received.events.push((key, kv.mod_revision, arrived));
                        *rev = (*rev).max(kv.mod_revision);
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    let now_short = target.is_some_and(|t| *rev < t);
                    if response.canceled {
                        seen.remove(&response.watch_id);
                        received.failure.get_or_insert_with(|| {
                            format!("watch canceled: {}", response.cancel_reason)
                        });
                        if was_short {
                            pending -= 1;
                        }
                    } else if was_short && !now_short {
                        pending -= 1;
                    }
                }
                Ok(None) => {
                    received.failure = Some("the watch stream ended".to_string());
                    return received;
                }
                Err(status) => {
                    received.failure = Some(error_message(&status));
                    return received;
                }
            },
            changed = targets.changed() => {
                // The sender lives until every stream is joined.
                changed.expect("the targets sender outlives the streams");
                last_put = targets.borrow_and_update().clone();
                if let Some(last) = &last_put {
                    pending = seen
                        .iter()
                        .filter(|(id, rev)| **rev < last[stream.key_of_watch[*id]])
                        .count();
                }
            }
            _ = stop.changed() => return received,
        }
    }
}

/// One successful put.
#[derive(Debug, Clone, Copy)]
struct PutRecord {
    key: usize,
    revision: i64,
    answered: Instant,
}

/// The puts of the second phase, recording what each successful put got.
struct PutOperations {
    client: KvClient<Channel>,
    plan: Arc<FanOut>,
    records: Vec<PutRecord>,
}

impl Operations for PutOperations {
    async fn call(&mut self, index: u64) -> (usize, Result<(), Status>) {
        let key = self.plan.key_of_put(index);
        let request = PutRequest {
            key: self.plan.keys[key].clone(),
            value: self.plan.value.clone(),
            ..PutRequest::default()
        };
        let result = self.client.put(request).await.map(|response| {
            let revision = response
                .into_inner()
                .header
                .map(|header| header.revision)
                .unwrap_or_default();
            self.records.push(PutRecord {
                key,
                revision,
                answered: Instant::now(),
            });
        });
        (0, result)
    }
}

/// Which summaries a verb prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// `watch`: creation and events.
    Watch,
    /// `watch-latency`: puts and events.
    WatchLatency,
}

/// Runs the three phases (see the module docs) and builds `verb`'s report.
pub async fn run(config: &RunConfig, plan: FanOut, verb: Verb) -> Result<Report, RunError> {
    let plan = Arc::new(plan);
    let channels = open_channels(config)?;

    // 1. Creation.
    let progress = Progress::start(config.progress, plan.watchers() as u64);
    let started = Instant::now();
    let mut creating = Vec::with_capacity(plan.streams);
    for s in 0..plan.streams {
        let channel = channel_for(&channels, s % config.clients);
        creating.push(tokio::spawn(create_stream(
            Arc::clone(&plan),
            s,
            channel,
            config.request_timeout,
            progress.counter(),
        )));
    }
    let mut creation = Creation::default();
    let mut streams = Vec::with_capacity(plan.streams);
    let mut received = Vec::with_capacity(plan.streams);
    for task in creating {
        let (created, stream) = task.await?;
        creation.latencies_secs.extend(created.latencies_secs);
        for (message, count) in created.errors {
            *creation.errors.entry(message).or_insert(0) += count;
        }
        match stream {
            Ok(stream) => streams.push(stream),
            Err(lost) => received.push(lost),
        }
    }
    let creation = Summary::new(creation.latencies_secs, creation.errors, started.elapsed());
    progress.finish().await?;
    if !plan.idle_hold.is_zero() {
        eprintln!(
            "holding {} idle watchers for {:?}",
            creation.requests, plan.idle_hold
        );
        tokio::time::sleep(plan.idle_hold).await;
    }

    // 3. Event receivers, started before the puts so none is missed.
    let progress = Progress::start(config.progress, plan.expected_events());
    let (targets_tx, targets_rx) = watch::channel(None);
    let (stop_tx, stop_rx) = watch::channel(false);
    let receivers: Vec<_> = streams
        .into_iter()
        .map(|stream| {
            tokio::spawn(receive_events(
                stream,
                targets_rx.clone(),
                stop_rx.clone(),
                progress.counter(),
            ))
        })
        .collect();

    // 2. Puts.
    let puts_started = Instant::now();
    let put_config = RunConfig {
        total: plan.put_total,
        rate_per_sec: plan.put_rate,
        progress: false,
        clients: if plan.single_putter {
            1
        } else {
            config.clients
        },
        conns: 1,
        ..config.clone()
    };
    let (put_summary, putters) = if plan.put_total == 0 {
        (
            Summary::new(Vec::new(), BTreeMap::new(), Duration::ZERO),
            Vec::new(),
        )
    } else {
        let put_channels = if plan.single_putter {
            open_channels(&put_config)?
        } else {
            channels.clone()
        };
        let (mut summaries, putters) =
            run_clients(&put_config, &put_channels, 1, |c| PutOperations {
                client: KvClient::new(channel_for(&put_channels, c)),
                plan: Arc::clone(&plan),
                records: Vec::new(),
            })
            .await?;
        (summaries.remove(0), putters)
    };
    let puts: Vec<PutRecord> = putters.into_iter().flat_map(|p| p.records).collect();
    let mut last_put = vec![0i64; plan.keys.len()];
    for put in &puts {
        last_put[put.key] = last_put[put.key].max(put.revision);
    }
    // Only an error if every receiver is gone, and then there is nobody to tell.
    let _ = targets_tx.send(Some(Arc::new(last_put)));
    let grace = config.request_timeout;
    let stopper = tokio::spawn(async move {
        tokio::time::sleep(grace).await;
        let _ = stop_tx.send(true);
    });
    for receiver in receivers {
        received.push(receiver.await?);
    }
    stopper.abort();
    progress.finish().await?;
    let events = match_events(&puts, &received, puts_started);

    let sections = match verb {
        Verb::Watch => vec![
            Section {
                key: "creation",
                heading: "Watch creation summary:\n".to_string(),
                summary: creation,
            },
            Section {
                key: "events",
                heading: "Watch events received summary:\n".to_string(),
                summary: events,
            },
        ],
        Verb::WatchLatency => vec![
            Section {
                key: "put",
                heading: "\nPut summary:\n".to_string(),
                summary: put_summary,
            },
            Section {
                key: "events",
                heading: "\nWatch events summary:\n".to_string(),
                summary: events,
            },
        ],
    };
    Ok(Report::Sections {
        preamble: None,
        sections,
    })
}

/// Matches the events to the successful puts by revision (see the module
/// docs) and summarises them.
fn match_events(puts: &[PutRecord], received: &[Received], puts_started: Instant) -> Summary {
    let by_revision: HashMap<i64, &PutRecord> = puts.iter().map(|p| (p.revision, p)).collect();
    let mut puts_per_key: HashMap<usize, u64> = HashMap::new();
    for put in puts {
        *puts_per_key.entry(put.key).or_insert(0) += 1;
    }
    let mut latencies_secs = Vec::new();
    let mut errors = BTreeMap::new();
    let mut last_arrival = puts_started;
    for stream in received {
        let expected: u64 = stream
            .watcher_keys
            .iter()
            .map(|key| puts_per_key.get(key).copied().unwrap_or(0))
            .sum();
        let mut delivered = 0u64;
        for &(key, revision, arrived) in &stream.events {
            let Some(put) = by_revision.get(&revision) else {
                continue;
            };
            if put.key != key {
                continue;
            }
            delivered += 1;
            last_arrival = last_arrival.max(arrived);
            let latency = arrived.saturating_duration_since(put.answered);
            latencies_secs.push(latency.as_secs_f64());
        }
        let missing = expected.saturating_sub(delivered);
        if missing > 0 {
            let reason = stream
                .failure
                .clone()
                .unwrap_or_else(|| EVENT_NOT_DELIVERED.to_string());
            *errors.entry(reason).or_insert(0) += missing;
        }
    }
    Summary::new(latencies_secs, errors, last_arrival - puts_started)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(streams: usize, per_stream: usize, keys: usize, put_total: u64) -> FanOut {
        FanOut {
            streams,
            watchers_per_stream: per_stream,
            keys: (0..keys).map(|k| vec![b'k', k as u8]).collect(),
            slots: (0..keys).collect(),
            prefix: false,
            prev_kv: false,
            put_total,
            put_rate: 0,
            value: b"data".to_vec(),
            single_putter: false,
            idle_hold: Duration::ZERO,
        }
    }

    #[test]
    fn prefix_end_is_etcds() {
        assert_eq!(prefix_end(b"abc"), b"abd");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    }

    #[test]
    fn watchers_and_puts_spread_over_the_keys() {
        // 2 streams x 3 watchers on 2 keys: key 0 has watchers 0, 2, 4.
        let p = plan(2, 3, 2, 5);
        assert_eq!(p.watchers(), 6);
        // Puts 0, 2, 4 hit key 0 (3 watchers), puts 1, 3 key 1 (3 watchers).
        assert_eq!(p.expected_events(), 15);
        let uneven = plan(1, 3, 2, 2);
        // Key 0: watchers 0 and 2; key 1: watcher 1. Puts: key 0, key 1.
        assert_eq!(uneven.expected_events(), 3);
        assert_eq!(plan(0, 1, 1, 1).check(), Err(FanOutError::Zero("streams")));
        assert_eq!(
            plan(1, 0, 1, 1).check(),
            Err(FanOutError::Zero("watchers-per-stream"))
        );
        assert_eq!(plan(1, 1, 0, 1).check(), Err(FanOutError::NoKeys));
        // etcd's list may repeat a key: one key, watched through both slots.
        let (keys, slots) =
            FanOut::distinct_keys(vec![b"a".to_vec(), b"b".to_vec(), b"a".to_vec()]);
        assert_eq!(keys, vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(slots, vec![0, 1, 0]);
        let repeated = FanOut {
            keys: vec![b"a".to_vec()],
            slots: vec![0, 0],
            ..plan(1, 2, 1, 3)
        };
        // Both watchers watch "a", every put writes it.
        assert_eq!(repeated.expected_events(), 6);
        let mut prefixed = plan(1, 1, 1, 1);
        prefixed.prefix = true;
        prefixed.prev_kv = true;
        let Some(watch_request::RequestUnion::CreateRequest(create)) =
            prefixed.create_request(0).request_union
        else {
            panic!("a create request");
        };
        assert_eq!(create.key, b"k\0");
        assert_eq!(create.range_end, b"k\x01");
        assert!(create.prev_kv);
    }

    #[test]
    fn events_are_matched_to_puts_by_revision() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let puts = [
            PutRecord {
                key: 0,
                revision: 10,
                answered: at(5),
            },
            PutRecord {
                key: 0,
                revision: 11,
                answered: at(20),
            },
        ];
        let complete = Received {
            // Revision 9 is no put of this run; the second event came before
            // its put's response: latency 0.
            events: vec![(0, 9, at(1)), (0, 10, at(7)), (0, 11, at(19))],
            failure: None,
            watcher_keys: vec![0],
        };
        let cut_short = Received {
            events: vec![(0, 10, at(30))],
            failure: Some("the watch stream ended".to_string()),
            watcher_keys: vec![0, 0],
        };
        let silent = Received {
            events: Vec::new(),
            failure: None,
            watcher_keys: vec![0],
        };
        let summary = match_events(&puts, &[complete, cut_short, silent], t0);
        // Expected: 2 + 4 + 2 events; delivered: 2 + 1 + 0.
        assert_eq!(summary.requests, 3);
        assert_eq!(summary.errors, 5);
        assert_eq!(summary.error_distribution["the watch stream ended"], 3);
        assert_eq!(summary.error_distribution[EVENT_NOT_DELIVERED], 2);
        assert!((summary.slowest_secs - 0.025).abs() < 1e-9);
        assert_eq!(summary.fastest_secs, 0.0);
        assert!((summary.total_secs - 0.030).abs() < 1e-9);
    }
}
