//! Watch traffic: watchers on the run's key prefix that reconnect and resume
//! as etcd's `clientv3` does, recording every event they receive.
//!
//! A watcher is one tokio task. It opens a gRPC `Watch` stream to one member
//! and creates one watch on [`traffic::KEY_PREFIX`]; that stream is a
//! *session*, recorded as one [`Request::Watch`] whose response lists every
//! batch of events received, with its arrival time and header revision. A
//! session ends on an error, on a voluntary rotation after a random 1–3 s (so
//! that resumption is exercised without faults, and a watcher stuck on a
//! partitioned member moves on), or when the watcher is done. The next
//! session goes to the next member and starts at the watcher's cursor: the
//! last event revision seen + 1, or for a watcher started "from now" the
//! created response's header revision + 1 (the revision the watch began
//! after). A watch cancelled because its start revision was compacted ends
//! the watcher, as `clientv3` reports `ErrCompacted` to its user.
//!
//! Watchers differ by index (`index % 5`): from revision 1 with `prev_kv`;
//! from now with `prev_kv`; from a past revision (a little behind the current
//! one, after a short wait) with `prev_kv`; from revision 1 without
//! `prev_kv`; from revision 1 with `prev_kv` and the `NODELETE` filter.
//!
//! At the end of a run, the run writes a sentinel key under the prefix and
//! sets [`WatchControl::until_revision`]; each watcher stops once it has seen
//! an event at or past it, so every watcher that could catch up covers every
//! revision of the run.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use keel_proto::etcdserverpb::watch_client::WatchClient;
use keel_proto::etcdserverpb::watch_create_request::FilterType;
use keel_proto::etcdserverpb::watch_request::RequestUnion;
use keel_proto::etcdserverpb::{WatchCreateRequest, WatchRequest, WatchResponse};
use keel_proto::mvccpb;
use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng as _};

use crate::history::{
    EventKind, Outcome, PrevKv, Record, Recorder, Request, Response, WatchBatch, WatchEvent,
    WatchSession,
};
use crate::traffic::{self, PlantedBug, REQUEST_TIMEOUT};

/// Client ids of watchers start here (KV clients count from 0).
pub const WATCH_CLIENT_BASE: u64 = 1 << 41;
/// Events one watcher records before it stops, bounding the history.
pub const MAX_EVENTS_PER_WATCHER: usize = 200_000;
/// Pause after an error.
const ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// Shared between the run and its watchers.
#[derive(Debug, Default)]
pub struct WatchControl {
    /// Stop at once (the run ends or was dropped).
    pub stop: AtomicBool,
    /// When positive: stop after seeing an event at or past this revision.
    pub until_revision: AtomicI64,
}

/// Where a watcher starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// Revision 1: every event of the run.
    First,
    /// The current revision (start revision 0).
    Now,
    /// A past revision, chosen after a short wait.
    Past,
}

/// What the watcher knows between sessions.
struct Cursor {
    /// The next revision the watcher must see (`None`: a "from now" watch
    /// that was never created yet).
    next: Option<i64>,
    events: usize,
}

/// Why a session ended, and whether the watcher goes on.
enum SessionEnd {
    /// Resume on another member.
    Resume(String),
    /// The watcher is done.
    Done(String),
}

/// One watcher's loop: runs until `control` says stop, it saw the revision
/// it was asked to reach, its start revision was compacted, or the history is
/// full.
pub async fn watcher_loop(
    index: u64,
    urls: Arc<Vec<String>>,
    seed: u64,
    planted_bug: Option<PlantedBug>,
    recorder: Arc<Recorder>,
    control: Arc<WatchControl>,
) {
    assert!(!urls.is_empty(), "a watcher needs a member to talk to");
    let client = WATCH_CLIENT_BASE + index;
    let mut rng = SmallRng::seed_from_u64(seed ^ client.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let (start, prev_kv, filter_out) = match index % 5 {
        0 => (Start::First, true, None),
        1 => (Start::Now, true, None),
        2 => (Start::Past, true, None),
        3 => (Start::First, false, None),
        _ => (Start::First, true, Some(EventKind::Delete)),
    };
    let mut member = usize::try_from(index).unwrap_or(0) % urls.len();
    let mut cursor = Cursor {
        next: match start {
            Start::First => Some(1),
            Start::Now | Start::Past => None,
        },
        events: 0,
    };
    if start == Start::Past {
        tokio::time::sleep(Duration::from_secs(1)).await;
        cursor.next = Some(past_revision(&urls, &mut member, &control).await);
    }
    let mut session = 0u32;
    while !control.stop.load(Ordering::Relaxed) && !recorder.is_full() {
        let requested = match (cursor.next, planted_bug) {
            (Some(next), Some(PlantedBug::WatchResumeSkips)) if session > 0 => next + 1,
            (Some(next), _) => next,
            (None, _) => 0,
        };
        let request = Request::Watch {
            watcher: index,
            session,
            prefix: traffic::KEY_PREFIX.to_owned(),
            start_revision: requested,
            prev_kv,
            filter_out,
        };
        let invoked_ns = recorder.now_ns();
        let lifetime = Duration::from_millis(rng.random_range(1000..3000));
        let mut record = WatchSession::default();
        let end = run_session(
            &urls[member],
            &request,
            lifetime,
            &mut cursor,
            &mut record,
            &recorder,
            &control,
            planted_bug,
            &mut rng,
        )
        .await;
        let (done, why) = match end {
            SessionEnd::Resume(why) => (false, why),
            SessionEnd::Done(why) => (true, why),
        };
        record.end = why;
        let revision = record
            .batches
            .last()
            .map(|b| b.header_revision)
            .or(record.created_revision)
            .unwrap_or(0);
        recorder.push(Record {
            client,
            member,
            request,
            invoked_ns,
            outcome: Outcome::Ok {
                returned_ns: recorder.now_ns().max(invoked_ns),
                revision,
                response: Response::Watch(record),
            },
        });
        if done {
            return;
        }
        session += 1;
        member = (member + 1) % urls.len();
    }
}

/// A revision a little behind the current one, asked of any member.
async fn past_revision(urls: &[String], member: &mut usize, control: &WatchControl) -> i64 {
    let probe = Request::Get {
        key: traffic::key(0),
        serializable: false,
    };
    while !control.stop.load(Ordering::Relaxed) {
        if let Some(mut kv) = traffic::connect(&urls[*member]).await
            && let Ok((revision, _)) = traffic::execute(&mut kv, &probe).await
        {
            return (revision - 10).max(1);
        }
        *member = (*member + 1) % urls.len();
        tokio::time::sleep(ERROR_BACKOFF).await;
    }
    1
}

/// Runs one session: creates the watch and records what arrives.
#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
async fn run_session(
    url: &str,
    request: &Request,
    lifetime: Duration,
    cursor: &mut Cursor,
    record: &mut WatchSession,
    recorder: &Recorder,
    control: &WatchControl,
    planted_bug: Option<PlantedBug>,
    rng: &mut SmallRng,
) -> SessionEnd {
    let Request::Watch {
        prefix,
        start_revision,
        prev_kv,
        filter_out,
        ..
    } = request
    else {
        panic!("run_session needs a watch request, got {request:?}");
    };
    let Some(channel) = traffic::channel(url).await else {
        tokio::time::sleep(ERROR_BACKOFF).await;
        return SessionEnd::Resume(format!("cannot connect to {url}"));
    };
    let mut client = WatchClient::new(channel);
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let create = WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: prefix.clone().into_bytes(),
            range_end: traffic::prefix_end(prefix),
            start_revision: *start_revision,
            prev_kv: *prev_kv,
            filters: filter_out
                .iter()
                .map(|kind| match kind {
                    EventKind::Put => FilterType::Noput as i32,
                    EventKind::Delete => FilterType::Nodelete as i32,
                })
                .collect(),
            ..WatchCreateRequest::default()
        })),
    };
    if tx.send(create).await.is_err() {
        return SessionEnd::Resume("the request channel closed".to_owned());
    }
    let opened = tokio::time::timeout(
        REQUEST_TIMEOUT,
        client.watch(tokio_stream::wrappers::ReceiverStream::new(rx)),
    )
    .await;
    let mut stream = match opened {
        Ok(Ok(response)) => response.into_inner(),
        Ok(Err(status)) => {
            tokio::time::sleep(ERROR_BACKOFF).await;
            return SessionEnd::Resume(status.to_string());
        }
        Err(_) => return SessionEnd::Resume(format!("no stream within {REQUEST_TIMEOUT:?}")),
    };
    let session_end = tokio::time::Instant::now() + lifetime;
    let created_by = tokio::time::Instant::now() + REQUEST_TIMEOUT;
    loop {
        let until = control.until_revision.load(Ordering::Relaxed);
        if until > 0 && cursor.next.is_some_and(|next| next > until) {
            return SessionEnd::Done(format!("saw revision {until}"));
        }
        if cursor.events >= MAX_EVENTS_PER_WATCHER {
            return SessionEnd::Done(format!("{MAX_EVENTS_PER_WATCHER} events recorded"));
        }
        if control.stop.load(Ordering::Relaxed) {
            return SessionEnd::Done("stopped".to_owned());
        }
        let now = tokio::time::Instant::now();
        if record.created_revision.is_none() && now >= created_by {
            return SessionEnd::Resume(format!("not created within {REQUEST_TIMEOUT:?}"));
        }
        if now >= session_end && until == 0 {
            return SessionEnd::Resume("rotation".to_owned());
        }
        // Wake up now and then to look at the control flags.
        let message = match tokio::time::timeout(Duration::from_millis(200), stream.message()).await
        {
            Err(_) => continue,
            Ok(Err(status)) => {
                tokio::time::sleep(ERROR_BACKOFF).await;
                return SessionEnd::Resume(status.to_string());
            }
            Ok(Ok(None)) => return SessionEnd::Resume("the stream ended".to_owned()),
            Ok(Ok(Some(message))) => message,
        };
        if let Some(end) = receive(message, cursor, record, recorder, planted_bug, rng) {
            return end;
        }
    }
}

/// Records one response; returns how the session ends, if it does.
fn receive(
    message: WatchResponse,
    cursor: &mut Cursor,
    record: &mut WatchSession,
    recorder: &Recorder,
    planted_bug: Option<PlantedBug>,
    rng: &mut SmallRng,
) -> Option<SessionEnd> {
    let header_revision = message.header.as_ref().map_or(0, |h| h.revision);
    if message.created {
        record.created_revision = Some(header_revision);
        if cursor.next.is_none() {
            cursor.next = Some(header_revision + 1);
        }
    }
    if message.canceled {
        if message.compact_revision > 0 {
            record.compact_revision = Some(message.compact_revision);
            return Some(SessionEnd::Done(format!(
                "compacted at {}",
                message.compact_revision
            )));
        }
        return Some(SessionEnd::Resume(format!(
            "cancelled: {}",
            message.cancel_reason
        )));
    }
    if message.events.is_empty() {
        return None;
    }
    let mut events = Vec::with_capacity(message.events.len());
    for event in &message.events {
        let mut event = convert(event);
        if planted_bug == Some(PlantedBug::WatchDropsPrevKv)
            && event.prev.is_some()
            && rng.random_bool(0.3)
        {
            event.prev = None;
        }
        cursor.next = Some(cursor.next.unwrap_or(0).max(event.mod_revision + 1));
        events.push(event);
    }
    cursor.events += events.len();
    record.batches.push(WatchBatch {
        received_ns: recorder.now_ns(),
        header_revision,
        events,
    });
    None
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Reduces an `mvccpb.Event` to a [`WatchEvent`].
pub fn convert(event: &mvccpb::Event) -> WatchEvent {
    let kind = if event.r#type == mvccpb::event::EventType::Delete as i32 {
        EventKind::Delete
    } else {
        EventKind::Put
    };
    let kv = event.kv.clone().unwrap_or_default();
    WatchEvent {
        kind,
        key: lossy(&kv.key),
        value: lossy(&kv.value),
        mod_revision: kv.mod_revision,
        create_revision: kv.create_revision,
        version: kv.version,
        lease: kv.lease,
        prev: event.prev_kv.as_ref().map(|p| PrevKv {
            value: lossy(&p.value),
            mod_revision: p.mod_revision,
            create_revision: p.create_revision,
            version: p.version,
        }),
    }
}
