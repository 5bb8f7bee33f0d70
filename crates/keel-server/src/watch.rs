//! `etcdserverpb.Watch`: etcd 3.4's `v3rpc/watch.go` on top of keel-mvcc's watchable
//! store.
//!
//! # One task per stream
//!
//! Each `Watch` call gets one task that owns everything of the stream: the client's
//! request stream, the bounded channel every watcher of the stream delivers into (the
//! store only ever `try_send`s into it, see keel-mvcc), and the bounded channel of
//! responses tonic writes out. etcd splits this into a receive and a send goroutine
//! joined by a control channel and a "pending until created" buffer; with one task the
//! `created` response is written before the task looks at the watcher's channel again,
//! so it always precedes the watcher's events without any buffer.
//!
//! Back pressure goes one way only: a client that does not read blocks this task on
//! the outgoing channel, the stream's watcher channel then fills up, and the store
//! turns its watchers into victims (each holding one response) and later catches them
//! up from the backend. Writers and other streams never wait for a slow reader, no
//! event is lost, and the memory held for a stream is bounded by the two channels.
//!
//! # Ids
//!
//! Client watch ids are per stream (etcd: 0 asks the server to pick the lowest unused
//! one counting up; a taken id is refused with `mvcc: duplicate watch ID provided on
//! the WatchStream`); store ids are global. The task maps between them, and a response
//! of a watcher cancelled by the client is dropped even if it was already queued.
//!
//! # Requiring a leader
//!
//! clientv3 (and so etcdctl) marks its watch streams with the `hasleader: true`
//! metadata. As etcd's stream interceptor does, such a stream is refused with
//! "etcdserver: no leader" when the member knows no leader, and an open one is ended
//! with that error once the member has gone [`MAX_NO_LEADER_CHECKS`] election timeouts
//! in a row without a leader, so the client moves to another member.
//!
//! # Progress
//!
//! A progress notice says "every event up to revision R was sent". It may only be
//! sent when the watchers are synced, and after the responses the store had already
//! queued for them: under the store lock the task checks that the watchers are synced
//! and counts what the channel holds (the store sends only under its write lock, so
//! nothing slips in between); it forwards exactly that many responses, then the
//! notice. A stream-wide progress request (watch id -1 in the answer) waiting for a
//! watcher to catch up is retried every [`PROGRESS_RETRY_INTERVAL`] and after each
//! forwarded response, as etcd 3.5 does (etcd 3.4 answered at once, before events
//! possibly still queued).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use keel_mvcc::{DEFAULT_WATCH_CHANNEL_CAPACITY, EventType, WatchId, WatchRequest, WatchResponse};
use keel_proto::etcdserverpb::{
    self as pb, watch_create_request::FilterType, watch_request::RequestUnion,
};
use keel_proto::mvccpb;
use prost::Message as _;
use tokio::sync::{mpsc, watch};
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Response, Status, Streaming};

use crate::api::{Core, GRPC_OVERHEAD_BYTES};
use crate::config::{DEFAULT_WATCH_PROGRESS_NOTIFY_INTERVAL, MIN_WATCH_PROGRESS_NOTIFY_INTERVAL};
use crate::convert;
use crate::errors::ApiError;

/// Responses queued for tonic to write out, per stream.
const OUTGOING_CAPACITY: usize = 16;
/// How often a deferred stream-wide progress request is retried.
const PROGRESS_RETRY_INTERVAL: Duration = Duration::from_millis(100);
/// etcd's `clientv3.AutoWatchID`: the client lets the server pick the id.
const AUTO_WATCH_ID: i64 = 0;
/// etcd's `clientv3.InvalidWatchID`: refused creates and stream-wide progress.
const INVALID_WATCH_ID: i64 = -1;
/// etcd's `mvcc.ErrWatcherDuplicateID`.
const ERR_DUPLICATE_ID: &str = "mvcc: duplicate watch ID provided on the WatchStream";
/// etcd's `maxNoLeaderCnt`: election timeouts without a leader before a stream that
/// requires one is ended.
const MAX_NO_LEADER_CHECKS: u32 = 3;
/// etcd's `rpctypes.MetadataRequireLeaderKey` and the value that turns it on.
const REQUIRE_LEADER_KEY: &str = "hasleader";
const REQUIRE_LEADER_VALUE: &str = "true";
/// etcd's `mvcc.ErrEmptyWatcherRange`.
const ERR_EMPTY_RANGE: &str = "mvcc: watcher range is empty";

/// Settings shared by every stream of a server.
#[derive(Clone, Debug)]
pub(crate) struct WatchSettings {
    /// Base interval of `progress_notify` notices (jitter of up to a tenth is added per
    /// stream, as etcd does, so that watchers created together do not tick together).
    pub progress_interval: Duration,
    /// A response of a `fragment` watcher at least this large is split (etcd:
    /// `--max-request-bytes` plus the gRPC overhead allowance).
    pub fragment_limit_bytes: usize,
    /// How often a stream that requires a leader checks that there is one.
    pub election_timeout: Duration,
}

impl WatchSettings {
    /// etcd's rules: a zero interval keeps the default, a short one is raised to the
    /// minimum.
    pub(crate) fn new(
        progress_interval: Duration,
        max_request_bytes: u64,
        election_timeout: Duration,
    ) -> WatchSettings {
        let progress_interval = if progress_interval.is_zero() {
            DEFAULT_WATCH_PROGRESS_NOTIFY_INTERVAL
        } else if progress_interval < MIN_WATCH_PROGRESS_NOTIFY_INTERVAL {
            tracing::warn!(
                min = ?MIN_WATCH_PROGRESS_NOTIFY_INTERVAL,
                "adjusting watch progress notify interval to minimum period"
            );
            MIN_WATCH_PROGRESS_NOTIFY_INTERVAL
        } else {
            progress_interval
        };
        WatchSettings {
            progress_interval,
            fragment_limit_bytes: usize::try_from(max_request_bytes)
                .unwrap_or(usize::MAX)
                .saturating_add(GRPC_OVERHEAD_BYTES),
            election_timeout,
        }
    }

    fn jittered_interval(&self) -> Duration {
        let tenth = (self.progress_interval / 10).as_nanos().max(1);
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let jitter = u64::try_from(u128::from(seed) % tenth).unwrap_or(0);
        self.progress_interval + Duration::from_nanos(jitter)
    }
}

/// How often watchers whose stream was full are retried (etcd's `syncVictimsLoop`
/// runs every 10 ms while there are any); the node loop's tick alone would leave a
/// burst's overflow waiting up to a heartbeat interval.
const VICTIM_RETRY_INTERVAL: Duration = Duration::from_millis(10);

/// Retries slow (victim) watchers every [`VICTIM_RETRY_INTERVAL`] while there are any,
/// until the server is gone. Holds the server weakly, like the lease timer.
pub(crate) async fn retry_slow_watchers(core: std::sync::Weak<Core>) {
    let mut interval = tokio::time::interval(VICTIM_RETRY_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        interval.tick().await;
        let Some(core) = core.upgrade() else { return };
        let store = &core.shared.store;
        if store
            .read()
            .expect("store lock poisoned")
            .stats()
            .slow_watchers
            == 0
        {
            continue;
        }
        // A backend failure here also fails the node loop's next tick, which stops
        // the member; this task only reports it.
        if let Err(err) = store.write().expect("store lock poisoned").sync_watchers() {
            tracing::warn!(error = %err, "retrying slow watchers failed");
        }
    }
}

/// `etcdserverpb.Watch`.
pub(crate) struct WatchService {
    core: Arc<Core>,
    settings: Arc<WatchSettings>,
    stop: watch::Receiver<bool>,
}

impl WatchService {
    /// `stop` turning true ends every stream with "etcdserver: server stopped".
    pub(crate) fn new(
        core: Arc<Core>,
        settings: WatchSettings,
        stop: watch::Receiver<bool>,
    ) -> WatchService {
        WatchService {
            core,
            settings: Arc::new(settings),
            stop,
        }
    }
}

#[tonic::async_trait]
impl pb::watch_server::Watch for WatchService {
    type WatchStream = ReceiverStream<Result<pb::WatchResponse, Status>>;

    async fn watch(
        &self,
        request: tonic::Request<Streaming<pb::WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let require_leader = request
            .metadata()
            .get(REQUIRE_LEADER_KEY)
            .is_some_and(|v| v.as_bytes() == REQUIRE_LEADER_VALUE.as_bytes());
        if require_leader && self.core.shared.leader() == 0 {
            return Err(ApiError::NoLeader.status());
        }
        let inbound = request.into_inner();
        let (out, out_rx) = mpsc::channel(OUTGOING_CAPACITY);
        let (events_tx, events) = mpsc::channel(DEFAULT_WATCH_CHANNEL_CAPACITY);
        let stream = WatchStream {
            core: Arc::clone(&self.core),
            settings: Arc::clone(&self.settings),
            out,
            events_tx,
            events,
            watchers: HashMap::new(),
            by_store_id: HashMap::new(),
            next_auto_id: 0,
            progress_all_deferred: false,
            last_events: None,
            require_leader,
            stop: self.stop.clone(),
        };
        tokio::spawn(stream.run(inbound));
        Ok(Response::new(ReceiverStream::new(out_rx)))
    }
}

/// The client went away (or the server stops): the stream ends.
struct Closed;

/// One watcher of a stream, by its client id.
struct ClientWatcher {
    store_id: WatchId,
    /// `Some` for `progress_notify` watchers: whether the next tick sends a notice
    /// (cleared by a response with events, as etcd elides the next notice then).
    progress: Option<bool>,
    fragment: bool,
    /// False once the store cancelled it for compaction; the id stays taken until the
    /// client cancels it, as in etcd.
    live: bool,
}

struct WatchStream {
    core: Arc<Core>,
    settings: Arc<WatchSettings>,
    out: mpsc::Sender<Result<pb::WatchResponse, Status>>,
    /// Cloned into every watcher of the stream.
    events_tx: mpsc::Sender<WatchResponse>,
    events: mpsc::Receiver<WatchResponse>,
    watchers: HashMap<i64, ClientWatcher>,
    by_store_id: HashMap<WatchId, i64>,
    next_auto_id: i64,
    progress_all_deferred: bool,
    /// The last event batch converted, by the store's shared allocation: the stream's
    /// other watchers of the same write reuse it (cloning `Bytes` is a reference count).
    last_events: Option<(Arc<[keel_mvcc::Event]>, Vec<mvccpb::Event>)>,
    require_leader: bool,
    /// The server stopping; also ends a send blocked on a client that does not read.
    stop: watch::Receiver<bool>,
}

/// What woke the stream task.
enum Step {
    Request(Option<Result<pb::WatchRequest, Status>>),
    Event(WatchResponse),
    ProgressTick,
    RetryProgressAll,
    LeaderCheck,
    Stop,
    ClientGone,
}

impl WatchStream {
    async fn run(mut self, mut inbound: Streaming<pb::WatchRequest>) {
        let interval = self.settings.jittered_interval();
        let mut progress =
            tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        progress.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut retry = tokio::time::interval(PROGRESS_RETRY_INTERVAL);
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut leader_check = tokio::time::interval(self.settings.election_timeout);
        leader_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut no_leader_checks = 0;
        let mut inbound_open = true;
        loop {
            let step = tokio::select! {
                request = inbound.next(), if inbound_open => Step::Request(request),
                Some(resp) = self.events.recv() => Step::Event(resp),
                _ = progress.tick() => Step::ProgressTick,
                _ = retry.tick(), if self.progress_all_deferred => Step::RetryProgressAll,
                _ = leader_check.tick(), if self.require_leader => Step::LeaderCheck,
                _ = self.stop.wait_for(|stop| *stop) => Step::Stop,
                () = self.out.closed() => Step::ClientGone,
            };
            let result = match step {
                Step::Request(Some(Ok(request))) => self.on_request(request).await,
                // A client that half-closes keeps receiving, as in etcd.
                Step::Request(None) => {
                    inbound_open = false;
                    Ok(())
                }
                Step::Request(Some(Err(status))) => {
                    tracing::debug!(%status, "watch stream receive failed");
                    Err(Closed)
                }
                Step::Event(resp) => match self.forward(resp).await {
                    Ok(()) if self.progress_all_deferred => self.progress_all().await,
                    other => other,
                },
                Step::ProgressTick => self.progress_tick().await,
                Step::RetryProgressAll => self.progress_all().await,
                Step::LeaderCheck => {
                    if self.core.shared.leader() == 0 {
                        no_leader_checks += 1;
                    } else {
                        no_leader_checks = 0;
                    }
                    if no_leader_checks >= MAX_NO_LEADER_CHECKS {
                        let _ = self.out.try_send(Err(ApiError::NoLeader.status()));
                        Err(Closed)
                    } else {
                        Ok(())
                    }
                }
                Step::Stop => {
                    let _ = self.out.try_send(Err(ApiError::Stopped.status()));
                    Err(Closed)
                }
                Step::ClientGone => Err(Closed),
            };
            if result.is_err() {
                break;
            }
        }
        self.release();
    }

    /// Cancels every watcher of the stream in the store.
    fn release(&mut self) {
        let mut store = self.core.shared.store.write().expect("store lock poisoned");
        for w in self.watchers.values().filter(|w| w.live) {
            store.cancel_watch(w.store_id);
        }
    }

    async fn send(&mut self, resp: pb::WatchResponse) -> Result<(), Closed> {
        tokio::select! {
            sent = self.out.send(Ok(resp)) => sent.map_err(|_| Closed),
            _ = self.stop.wait_for(|stop| *stop) => Err(Closed),
        }
    }

    async fn on_request(&mut self, request: pb::WatchRequest) -> Result<(), Closed> {
        match request.request_union {
            Some(RequestUnion::CreateRequest(create)) => self.create(create).await,
            Some(RequestUnion::CancelRequest(cancel)) => self.cancel(cancel.watch_id).await,
            Some(RequestUnion::ProgressRequest(_)) => {
                if self.progress_all_deferred {
                    Ok(())
                } else {
                    self.progress_all().await
                }
            }
            // etcd ignores what it does not understand rather than end the stream.
            None => Ok(()),
        }
    }

    async fn create(&mut self, create: pb::WatchCreateRequest) -> Result<(), Closed> {
        // etcd: an empty key is the smallest key, `\0`.
        let key = if create.key.is_empty() {
            vec![0]
        } else {
            create.key
        };
        // The proto's range end and keel-mvcc's agree: empty is one key, `\0` is every
        // key from `key` on.
        let range_end = create.range_end;
        let refused = if !range_end.is_empty() && range_end != [0] && key >= range_end {
            Some(ERR_EMPTY_RANGE)
        } else if create.watch_id != AUTO_WATCH_ID && self.watchers.contains_key(&create.watch_id) {
            Some(ERR_DUPLICATE_ID)
        } else {
            None
        };
        if let Some(reason) = refused {
            let revision = self.current_revision();
            return self
                .send(pb::WatchResponse {
                    header: Some(self.core.header(revision)),
                    watch_id: INVALID_WATCH_ID,
                    created: true,
                    canceled: true,
                    cancel_reason: reason.to_owned(),
                    ..pb::WatchResponse::default()
                })
                .await;
        }
        let id = if create.watch_id == AUTO_WATCH_ID {
            while self.watchers.contains_key(&self.next_auto_id) {
                self.next_auto_id += 1;
            }
            self.next_auto_id += 1;
            self.next_auto_id - 1
        } else {
            create.watch_id
        };
        let filter_put = create.filters.contains(&(FilterType::Noput as i32));
        let filter_delete = create.filters.contains(&(FilterType::Nodelete as i32));
        let (revision, store_id) = {
            let mut store = self.core.shared.store.write().expect("store lock poisoned");
            let revision = store.current_revision();
            // etcd 3.4 lets a negative start revision through to its store, where the
            // outcome depends on whether anything was compacted yet; here it means "from
            // the next revision", as 0 does.
            let start_revision = if create.start_revision <= 0 {
                revision + 1
            } else {
                create.start_revision
            };
            let request = WatchRequest {
                key,
                range_end,
                start_revision,
                filter_put,
                filter_delete,
                prev_kv: create.prev_kv,
            };
            (revision, store.watch(request, self.events_tx.clone()))
        };
        self.watchers.insert(
            id,
            ClientWatcher {
                store_id,
                progress: create.progress_notify.then_some(true),
                fragment: create.fragment,
                live: true,
            },
        );
        self.by_store_id.insert(store_id, id);
        self.send(pb::WatchResponse {
            header: Some(self.core.header(revision)),
            watch_id: id,
            created: true,
            ..pb::WatchResponse::default()
        })
        .await
    }

    /// etcd answers only a cancel of a watcher the stream has; an unknown id gets no
    /// response at all.
    async fn cancel(&mut self, id: i64) -> Result<(), Closed> {
        let Some(w) = self.watchers.remove(&id) else {
            return Ok(());
        };
        self.by_store_id.remove(&w.store_id);
        let revision = {
            let mut store = self.core.shared.store.write().expect("store lock poisoned");
            if w.live {
                store.cancel_watch(w.store_id);
            }
            store.current_revision()
        };
        self.send(pb::WatchResponse {
            header: Some(self.core.header(revision)),
            watch_id: id,
            canceled: true,
            ..pb::WatchResponse::default()
        })
        .await
    }

    fn current_revision(&self) -> i64 {
        self.core
            .shared
            .store
            .read()
            .expect("store lock poisoned")
            .current_revision()
    }

    /// Sends one response from the store to the client.
    async fn forward(&mut self, resp: WatchResponse) -> Result<(), Closed> {
        let Some(&id) = self.by_store_id.get(&resp.watch_id) else {
            // Cancelled by the client after the store queued this.
            return Ok(());
        };
        let w = self
            .watchers
            .get_mut(&id)
            .expect("a mapped store id has its client watcher");
        let compacted = resp.compact_revision != 0;
        if compacted {
            w.live = false;
            self.by_store_id.remove(&resp.watch_id);
        }
        if !resp.events.is_empty()
            && let Some(due) = &mut w.progress
        {
            *due = false;
        }
        let fragment = w.fragment;
        // etcd's compaction notice carries no revision, so its header says 0.
        let revision = if compacted { 0 } else { resp.revision };
        let out = pb::WatchResponse {
            header: Some(self.core.header(revision)),
            watch_id: id,
            canceled: compacted,
            compact_revision: resp.compact_revision,
            events: self.converted(&resp.events),
            ..pb::WatchResponse::default()
        };
        if fragment {
            for part in fragments(out, self.settings.fragment_limit_bytes) {
                self.send(part).await?;
            }
            Ok(())
        } else {
            self.send(out).await
        }
    }

    /// `events` as protobuf, converted once per store batch for the whole stream.
    fn converted(&mut self, events: &Arc<[keel_mvcc::Event]>) -> Vec<mvccpb::Event> {
        if events.is_empty() {
            return Vec::new();
        }
        if let Some((batch, pb)) = &self.last_events
            && Arc::ptr_eq(batch, events)
        {
            return pb.clone();
        }
        let pb: Vec<mvccpb::Event> = events.iter().cloned().map(event).collect();
        self.last_events = Some((Arc::clone(events), pb.clone()));
        pb
    }

    /// Forwards the `n` responses the watcher channel held when it was counted.
    async fn forward_queued(&mut self, n: usize) -> Result<(), Closed> {
        for _ in 0..n {
            match self.events.try_recv() {
                Ok(resp) => self.forward(resp).await?,
                Err(_) => break,
            }
        }
        Ok(())
    }

    /// The store's current revision, which of `ids` are synced, and how many responses
    /// the channel holds, all seen at one instant under the store lock.
    fn progress_snapshot(&self, ids: &[WatchId]) -> (i64, Vec<bool>, usize) {
        let store = self.core.shared.store.read().expect("store lock poisoned");
        let synced = ids.iter().map(|id| store.is_watcher_synced(*id)).collect();
        (store.current_revision(), synced, self.events.len())
    }

    /// etcd's progress ticker: a notice for each `progress_notify` watcher that got no
    /// events since the last tick and is synced now.
    async fn progress_tick(&mut self) -> Result<(), Closed> {
        let mut due = Vec::new();
        for (&id, w) in &mut self.watchers {
            if let Some(flag) = &mut w.progress {
                if *flag && w.live {
                    due.push((id, w.store_id));
                }
                *flag = true;
            }
        }
        if due.is_empty() {
            return Ok(());
        }
        let store_ids: Vec<WatchId> = due.iter().map(|(_, s)| *s).collect();
        let (revision, synced, queued) = self.progress_snapshot(&store_ids);
        self.forward_queued(queued).await?;
        for ((id, _), synced) in due.into_iter().zip(synced) {
            let still_live = self.watchers.get(&id).is_some_and(|w| w.live);
            if synced && still_live {
                self.send(pb::WatchResponse {
                    header: Some(self.core.header(revision)),
                    watch_id: id,
                    ..pb::WatchResponse::default()
                })
                .await?;
            }
        }
        Ok(())
    }

    /// A stream-wide progress request: answered (watch id -1, the current revision in
    /// the header) once every live watcher of the stream is synced.
    async fn progress_all(&mut self) -> Result<(), Closed> {
        let store_ids: Vec<WatchId> = self
            .watchers
            .values()
            .filter(|w| w.live)
            .map(|w| w.store_id)
            .collect();
        let (revision, synced, queued) = self.progress_snapshot(&store_ids);
        if !synced.iter().all(|s| *s) {
            self.progress_all_deferred = true;
            return Ok(());
        }
        self.progress_all_deferred = false;
        self.forward_queued(queued).await?;
        self.send(pb::WatchResponse {
            header: Some(self.core.header(revision)),
            watch_id: INVALID_WATCH_ID,
            ..pb::WatchResponse::default()
        })
        .await
    }
}

fn event(e: keel_mvcc::Event) -> mvccpb::Event {
    let kind = match e.kind {
        EventType::Put => mvccpb::event::EventType::Put,
        EventType::Delete => mvccpb::event::EventType::Delete,
    };
    mvccpb::Event {
        r#type: kind as i32,
        kv: Some(convert::key_value(e.kv)),
        prev_kv: e.prev_kv.map(convert::key_value),
    }
}

/// etcd's `sendFragments`: a response of at least `limit_bytes` with more than one event
/// is split into responses of less than `limit_bytes` each (one event may exceed it
/// alone), every part but the last marked `fragment`.
fn fragments(resp: pb::WatchResponse, limit_bytes: usize) -> Vec<pb::WatchResponse> {
    if resp.events.len() < 2 || resp.encoded_len() < limit_bytes {
        return vec![resp];
    }
    let mut template = resp;
    let events = std::mem::take(&mut template.events);
    template.fragment = true;
    let base = template.encoded_len();
    // Field 11, length-delimited: one tag byte, the length, the message.
    let size_of = |e: &mvccpb::Event| {
        let len = e.encoded_len();
        1 + prost::encoding::encoded_len_varint(len as u64) + len
    };
    let mut parts = Vec::new();
    let mut current: Vec<mvccpb::Event> = Vec::new();
    let mut size = base;
    for e in events {
        let len = size_of(&e);
        if !current.is_empty() && size + len >= limit_bytes {
            parts.push(pb::WatchResponse {
                events: std::mem::take(&mut current),
                ..template.clone()
            });
            size = base;
        }
        size += len;
        current.push(e);
    }
    parts.push(pb::WatchResponse {
        events: current,
        fragment: false,
        ..template
    });
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put_event(key: &str, value_len: usize) -> mvccpb::Event {
        mvccpb::Event {
            r#type: mvccpb::event::EventType::Put as i32,
            kv: Some(mvccpb::KeyValue {
                key: key.as_bytes().to_vec().into(),
                value: vec![b'v'; value_len].into(),
                create_revision: 2,
                mod_revision: 2,
                version: 1,
                lease: 0,
            }),
            prev_kv: None,
        }
    }

    fn response(events: Vec<mvccpb::Event>) -> pb::WatchResponse {
        pb::WatchResponse {
            header: Some(pb::ResponseHeader {
                cluster_id: 1,
                member_id: 2,
                revision: 2,
                raft_term: 3,
            }),
            watch_id: 7,
            events,
            ..pb::WatchResponse::default()
        }
    }

    #[test]
    fn small_responses_and_single_events_are_not_fragmented() {
        let one = response(vec![put_event("a", 10_000)]);
        assert_eq!(fragments(one.clone(), 100), vec![one]);
        let small = response(vec![put_event("a", 1), put_event("b", 1)]);
        assert_eq!(fragments(small.clone(), 1000), vec![small]);
    }

    #[test]
    fn fragments_stay_under_the_limit_and_keep_every_event_in_order() {
        let events: Vec<mvccpb::Event> = (0..50)
            .map(|i| put_event(&format!("k{i:02}"), 100))
            .collect();
        let parts = fragments(response(events.clone()), 1000);
        assert!(parts.len() > 5, "{} parts", parts.len());
        for (i, part) in parts.iter().enumerate() {
            assert!(
                part.encoded_len() < 1000,
                "part {i} is {} bytes",
                part.encoded_len()
            );
            assert_eq!(part.fragment, i + 1 < parts.len());
            assert_eq!(part.watch_id, 7);
            assert_eq!(part.header, response(Vec::new()).header);
        }
        let joined: Vec<mvccpb::Event> = parts.into_iter().flat_map(|p| p.events).collect();
        assert_eq!(joined, events);
    }

    #[test]
    fn settings_follow_etcd_bounds() {
        let s = WatchSettings::new(Duration::ZERO, 10, Duration::from_secs(1));
        assert_eq!(s.progress_interval, DEFAULT_WATCH_PROGRESS_NOTIFY_INTERVAL);
        assert_eq!(s.fragment_limit_bytes, 10 + GRPC_OVERHEAD_BYTES);
        let s = WatchSettings::new(Duration::from_millis(1), 10, Duration::from_secs(1));
        assert_eq!(s.progress_interval, MIN_WATCH_PROGRESS_NOTIFY_INTERVAL);
        let jittered = s.jittered_interval();
        assert!(jittered >= s.progress_interval);
        assert!(
            jittered < s.progress_interval + s.progress_interval / 10 + Duration::from_nanos(1)
        );
    }
}
