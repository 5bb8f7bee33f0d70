//! Leases: etcd's `Lease` gRPC service, the lease entries of the applier, the
//! leader's expiry and checkpoint timer, and the peer calls followers forward
//! keep-alives and time-to-live questions with.
//!
//! # How the lessor is driven
//!
//! Every member holds one `keel_lease::Lessor` in [`Leases`] and changes its
//! replicated state only while applying committed entries, in log order:
//! `lease_grant`, `lease_revoke` and `lease_checkpoint` entries, and puts, deletes
//! and txns, after which [`sync_attachments`] attaches or detaches every key the
//! entry changed (from `keel_mvcc::Store::last_changes`). A put (or a put on the taken
//! branch of a txn) naming a lease that does not exist fails with "etcdserver:
//! requested lease not found" when it applies, as etcd's applier checks it. Lease
//! records go to the backend's lease table in the same batch as the entry's
//! key-value changes; at start-up and after a follower installs a snapshot the
//! lessor is restored from that table and every leased key reattached.
//!
//! Only the leader's lessor is primary. The node loop promotes it once the leader
//! has applied an entry of its own term (so every entry of earlier terms, and the
//! old leader's checkpoints, are applied), extending every lease by the election
//! timeout as etcd does, and demotes it when leadership is lost. A timer task on
//! every member asks the lessor every [`TIMER_INTERVAL`] (etcd's 500 ms loop) for
//! expired leases and due checkpoints; only a primary answers, and the task proposes
//! a revoke per expired lease and one checkpoint entry per batch. A lease is never
//! expired by a clock alone: its keys go only when the revoke entry applies.
//!
//! `LeaseKeepAlive` and `LeaseTimeToLive` need the primary's timers, so a follower
//! forwards them to the leader's peer port over `keelpb.PeerLease` (etcd forwards
//! the same two calls over HTTP on its peer port), retrying until the request
//! timeout. A renewal that clears a recorded checkpoint proposes the clearing
//! checkpoint and answers only once it applied.
//!
//! # Beyond etcd: remaining TTL survives a leader change
//!
//! etcd 3.4 restarts every lease at its full TTL on a new leader unless
//! `--experimental-enable-lease-checkpoint` is on. Keel always checkpoints, every
//! [`CHECKPOINT_INTERVAL_MS`]: a new leader resumes each lease from its last
//! checkpointed remaining TTL plus the election timeout. Following keel-lease's
//! bound, a leader change never expires a lease before `renewal + TTL`, and moves its
//! expiry later by at most the leaderless gap + the election timeout +
//! [`CHECKPOINT_INTERVAL_MS`]; the leader reports an expired lease within
//! [`TIMER_INTERVAL`] of its expiry and the revoke applies one Raft round later.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use keel_lease::{Checkpoint, LeaseError, LeaseId, LeaseRecord, Lessor, LessorConfig};
use keel_mvcc::{ApplyIndex, Store};
use keel_proto::etcdserverpb as pb;
use keel_proto::keelpb::{
    self, internal_request::Request, peer_lease_client::PeerLeaseClient,
    peer_lease_server::PeerLease,
};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Response, Status, Streaming};

use crate::api::Core;
use crate::apply::{Applied, ApplyError};
use crate::errors::ApiError;

/// How often the leader looks for expired leases and due checkpoints (etcd: 500 ms).
pub(crate) const TIMER_INTERVAL: Duration = Duration::from_millis(500);
/// How often the leader records each lease's remaining TTL through Raft. etcd's
/// (optional) checkpointing defaults to 5 minutes; Keel checkpoints always and more
/// often, since the interval bounds how much longer a lease can live across a leader
/// change. Costs one Raft entry per 1,000 leases per interval.
pub(crate) const CHECKPOINT_INTERVAL_MS: u64 = 5_000;
/// Pause between attempts while a keep-alive or time-to-live waits for a leader, a
/// promotion or a revoke.
const RETRY: Duration = Duration::from_millis(50);
/// Keep-alive answers queued per stream before the stream stops reading requests.
const KEEPALIVE_STREAM_CAPACITY: usize = 16;
/// How long a connection to the leader's peer port may take.
const PEER_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The member's lessor and its clock. The lessor sits behind a std mutex: it is held
/// only for in-memory work, never across an `.await`, and always after the store lock
/// when both are taken.
pub(crate) struct Leases {
    lessor: Mutex<Lessor>,
    /// Origin of the lessor's monotonic milliseconds.
    epoch: Instant,
    /// etcd extends every lease by the election timeout on promotion.
    election_timeout_ms: u64,
    /// The leader a follower last forwarded to, with a lazily connected client.
    forward: Mutex<Option<(u64, PeerLeaseClient<tonic::transport::Channel>)>>,
}

impl Leases {
    /// A lessor with etcd's minimum TTL for this member's timing.
    pub(crate) fn new(election_tick: u64, heartbeat_ms: u64, election_timeout_ms: u64) -> Leases {
        let config = LessorConfig {
            min_ttl_secs: keel_lease::min_lease_ttl_secs(election_tick, heartbeat_ms),
            checkpoint_interval_ms: CHECKPOINT_INTERVAL_MS,
            expired_retry_interval_ms: 5_000 + 2 * election_timeout_ms,
            ..LessorConfig::default()
        };
        Leases {
            lessor: Mutex::new(Lessor::new(config)),
            epoch: Instant::now(),
            election_timeout_ms,
            forward: Mutex::new(None),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Lessor> {
        self.lessor.lock().expect("lessor lock poisoned")
    }

    /// Milliseconds on the lessor's clock; read while holding the lock so that the
    /// values the lessor sees never go back.
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Replaces the lessor's state with the store's lease table and reattaches every
    /// leased key (start-up, a follower installing a snapshot). Leaves it not primary.
    pub(crate) fn restore(&self, store: &Store) -> Result<(), String> {
        let mut records = Vec::new();
        for (id, bytes) in store.lease_records().map_err(|e| e.to_string())? {
            let record = LeaseRecord::decode(&bytes).map_err(|e| format!("lease {id}: {e}"))?;
            if record.id.get() != id {
                return Err(format!("lease record under id {id} names {}", record.id));
            }
            records.push(record);
        }
        let keys = store.leased_keys().map_err(|e| e.to_string())?;
        let mut lessor = self.lock();
        lessor.restore(records).map_err(|e| e.to_string())?;
        let mut orphans = 0usize;
        for (key, lease) in keys {
            let attached = LeaseId::new(lease).is_some_and(|id| lessor.attach(id, &key).is_ok());
            if !attached {
                orphans += 1;
            }
        }
        if orphans > 0 {
            tracing::warn!(orphans, "keys name leases the lease table does not hold");
        }
        tracing::info!(leases = lessor.len(), "lessor restored from the backend");
        Ok(())
    }

    /// Follows leadership: primary once leading with an entry of the current term
    /// applied (`caught_up`), demoted as soon as not leading.
    pub(crate) fn follow_leadership(&self, leading: bool, caught_up: bool) {
        let mut lessor = self.lock();
        if !leading {
            lessor.demote();
        } else if caught_up && !lessor.is_primary() {
            let now = self.now_ms();
            lessor.promote(now, self.election_timeout_ms);
        }
    }

    fn exists(&self, id: i64) -> bool {
        LeaseId::new(id).is_some_and(|id| self.lock().get(id).is_some())
    }
}

// ------------------------------------------------------------------ applier

/// Checks a put's lease before it applies; a missing lease consumes the entry and
/// fails the request with etcd's error.
pub(crate) fn check_put(
    store: &mut Store,
    leases: &Leases,
    at: ApplyIndex,
    lease: i64,
) -> Result<(), ApplyError> {
    if lease != 0 && !leases.exists(lease) {
        store.apply_noop(at)?;
        return Err(ApplyError::Client(ApiError::LeaseNotFound));
    }
    Ok(())
}

/// The lease check a txn applies to the puts of its taken branch.
pub(crate) fn lease_exists(leases: &Leases) -> impl Fn(i64) -> bool + '_ {
    move |id| leases.exists(id)
}

/// Attaches or detaches every key the last applied entry put or deleted.
pub(crate) fn sync_attachments(leases: &Leases, store: &Store) {
    let changes = store.last_changes();
    if changes.is_empty() {
        return;
    }
    let mut lessor = leases.lock();
    for change in changes {
        match LeaseId::new(change.lease) {
            Some(id) => {
                if lessor.attach(id, &change.key).is_err() {
                    // Only a put that skipped the lease check gets here.
                    tracing::warn!(lease = %id, "a key was put with a lease that does not exist");
                    lessor.detach(&change.key);
                }
            }
            None => {
                lessor.detach(&change.key);
            }
        }
    }
}

/// Applies a lease entry on this member.
pub(crate) fn apply(
    store: &mut Store,
    leases: &Leases,
    at: ApplyIndex,
    request: Request,
) -> Result<Applied, ApplyError> {
    match request {
        Request::LeaseGrant(r) => {
            let granted = {
                let mut lessor = leases.lock();
                let now = leases.now_ms();
                lessor.apply_grant(r.id, r.ttl, now)
            };
            match granted {
                Ok(record) => {
                    store.put_lease_records(at, &[(record.id.get(), record.encode().to_vec())])?;
                    Ok(Applied::LeaseGrant {
                        id: record.id.get(),
                        ttl_secs: record.ttl_secs,
                        revision: store.current_revision(),
                    })
                }
                Err(e) => {
                    store.apply_noop(at)?;
                    Err(ApplyError::Client(ApiError::from_lease(&e)))
                }
            }
        }
        Request::LeaseRevoke(r) => {
            let revoked = leases.lock().apply_revoke(r.id);
            match revoked {
                Ok(revoked) => {
                    let done = store.revoke_lease(at, revoked.id.get(), &revoked.keys)?;
                    tracing::debug!(lease = %revoked.id, deleted = done.deleted, "lease revoked");
                    Ok(Applied::LeaseRevoke {
                        revision: done.revision,
                    })
                }
                Err(e) => {
                    store.apply_noop(at)?;
                    Err(ApplyError::Client(ApiError::from_lease(&e)))
                }
            }
        }
        Request::LeaseCheckpoint(r) => {
            let checkpoints: Vec<Checkpoint> = r
                .checkpoints
                .iter()
                .filter_map(|c| {
                    Some(Checkpoint {
                        id: LeaseId::new(c.id)?,
                        remaining_ttl_secs: c.remaining_ttl,
                    })
                })
                .collect();
            let records = leases.lock().apply_checkpoint(&checkpoints);
            let encoded: Vec<(i64, Vec<u8>)> = records
                .iter()
                .map(|r| (r.id.get(), r.encode().to_vec()))
                .collect();
            store.put_lease_records(at, &encoded)?;
            Ok(Applied::LeaseCheckpoint)
        }
        other => unreachable!("lease::apply got a non-lease request {other:?}"),
    }
}

// ------------------------------------------------------------------ leader timer

/// Runs on every member until the server is gone: on the primary, proposes revokes
/// for expired leases and checkpoint batches. The proposals run as their own tasks,
/// so a slow Raft round never delays the next look; the node bounds how many wait.
/// It holds the server only weakly between ticks, so that a stopped server's store
/// is released (and its backend file closed) however late the task is dropped.
pub(crate) async fn run_timer(core: Weak<Core>) {
    let mut interval = tokio::time::interval(TIMER_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(core) = core.upgrade() else {
            return;
        };
        let leases = &core.shared.leases;
        let (expired, batches) = {
            let mut lessor = leases.lock();
            if !lessor.is_primary() {
                continue;
            }
            let now = leases.now_ms();
            let expired = lessor.find_expired(now, usize::MAX);
            let max_batch = lessor.config().max_checkpoint_batch;
            let mut batches = Vec::new();
            loop {
                let batch = lessor.due_checkpoints(now);
                let full = batch.len() >= max_batch;
                if !batch.is_empty() {
                    batches.push(batch);
                }
                if !full {
                    break;
                }
            }
            (expired, batches)
        };
        for id in expired {
            let core = Arc::clone(&core);
            tokio::spawn(async move {
                let request = Request::LeaseRevoke(pb::LeaseRevokeRequest { id: id.get() });
                match core.propose(request).await {
                    Ok(_) => tracing::debug!(lease = %id, "expired lease revoked"),
                    // Revoked meanwhile by a client: nothing left to do.
                    Err(ApiError::LeaseNotFound) => {}
                    // The lessor reports it again after its retry interval.
                    Err(e) => tracing::debug!(lease = %id, error = %e, "revoking an expired lease"),
                }
            });
        }
        for batch in batches {
            let core = Arc::clone(&core);
            tokio::spawn(async move {
                if let Err(e) = core.propose(checkpoint_request(&batch)).await {
                    tracing::debug!(error = %e, "proposing lease checkpoints");
                }
            });
        }
    }
}

fn checkpoint_request(batch: &[Checkpoint]) -> Request {
    Request::LeaseCheckpoint(pb::LeaseCheckpointRequest {
        checkpoints: batch
            .iter()
            .map(|c| pb::LeaseCheckpoint {
                id: c.id.get(),
                remaining_ttl: c.remaining_ttl_secs,
            })
            .collect(),
    })
}

// ------------------------------------------------------------------ renew, time-to-live

/// One attempt on the local lessor.
enum Local<T> {
    Done(T),
    /// Not the primary (yet, or any more): forward, or wait.
    NotPrimary,
    /// Expired, its revoke pending: wait for it.
    Wait,
}

fn is_leader(core: &Core) -> bool {
    core.shared.leader() == core.shared.member_id
}

/// etcd's `waitAppliedIndex`: the leader answers lease questions only once it has
/// applied what it committed.
async fn wait_applied(core: &Core, deadline: tokio::time::Instant) -> Result<(), ApiError> {
    let target = core.shared.commit_index.load(Ordering::Acquire);
    while core.shared.applied_index.load(Ordering::Acquire) < target {
        if tokio::time::Instant::now() >= deadline {
            return Err(ApiError::Timeout);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// Renews on this member's lessor: the granted TTL, 0 when the lease does not exist.
async fn renew_local(core: &Core, id: i64) -> Result<Local<i64>, ApiError> {
    let Some(lease) = LeaseId::new(id) else {
        return Ok(Local::Done(0));
    };
    let renewed = {
        let leases = &core.shared.leases;
        let mut lessor = leases.lock();
        let now = leases.now_ms();
        lessor.renew(lease, now)
    };
    match renewed {
        Ok(r) => {
            if let Some(cp) = r.checkpoint {
                // Until the clearing checkpoint applies, a new leader would resume the
                // lease from its stale remaining TTL: answer only afterwards.
                core.propose(checkpoint_request(&[cp])).await?;
            }
            Ok(Local::Done(r.ttl_secs))
        }
        Err(LeaseError::NotFound) => Ok(Local::Done(0)),
        Err(LeaseError::NotPrimary) => Ok(Local::NotPrimary),
        Err(LeaseError::Expired(_)) => Ok(Local::Wait),
        Err(e) => Err(ApiError::from_lease(&e)),
    }
}

/// Time-to-live on this member's lessor; TTL -1 when the lease does not exist.
fn time_to_live_local(
    core: &Core,
    r: &pb::LeaseTimeToLiveRequest,
) -> Result<Local<pb::LeaseTimeToLiveResponse>, ApiError> {
    let not_found = pb::LeaseTimeToLiveResponse {
        header: None,
        id: r.id,
        ttl: -1,
        granted_ttl: 0,
        keys: Vec::new(),
    };
    let Some(lease) = LeaseId::new(r.id) else {
        return Ok(Local::Done(not_found));
    };
    let leases = &core.shared.leases;
    let mut lessor = leases.lock();
    let now = leases.now_ms();
    match lessor.time_to_live(lease, now, r.keys) {
        Ok(t) => Ok(Local::Done(pb::LeaseTimeToLiveResponse {
            header: None,
            id: r.id,
            ttl: t.ttl_secs,
            granted_ttl: t.granted_ttl_secs,
            keys: t.keys,
        })),
        Err(LeaseError::NotFound) => Ok(Local::Done(not_found)),
        Err(LeaseError::NotPrimary) => Ok(Local::NotPrimary),
        Err(e) => Err(ApiError::from_lease(&e)),
    }
}

/// The client to the current leader's peer port, reused while it stays leader.
fn leader_client(core: &Core, leader: u64) -> Option<PeerLeaseClient<tonic::transport::Channel>> {
    let mut cached = core
        .shared
        .leases
        .forward
        .lock()
        .expect("forward lock poisoned");
    if let Some((id, client)) = cached.as_ref()
        && *id == leader
    {
        return Some(client.clone());
    }
    let url = core
        .shared
        .membership
        .read()
        .expect("membership lock poisoned")
        .members
        .get(&leader)?
        .peer_urls
        .first()?
        .clone();
    let endpoint = tonic::transport::Endpoint::from_shared(url)
        .ok()?
        .connect_timeout(PEER_CONNECT_TIMEOUT)
        .tcp_nodelay(true);
    let client = PeerLeaseClient::new(endpoint.connect_lazy());
    *cached = Some((leader, client.clone()));
    Some(client)
}

/// Where a lease question is answered: here when leading, else at the leader.
enum Route {
    Local,
    Forward(PeerLeaseClient<tonic::transport::Channel>),
    Wait,
}

fn route(core: &Core, may_forward: bool) -> Route {
    let leader = core.shared.leader();
    if leader == core.shared.member_id {
        return Route::Local;
    }
    if leader == 0 || !may_forward {
        return Route::Wait;
    }
    leader_client(core, leader).map_or(Route::Wait, Route::Forward)
}

fn timed_out(core: &Core) -> ApiError {
    if core.shared.leader() == 0 {
        ApiError::NoLeader
    } else {
        ApiError::Timeout
    }
}

/// etcd's `LeaseRenew`: renew at the leader (forwarding when `may_forward`), waiting
/// through elections, promotions and pending revokes until the request timeout.
pub(crate) async fn renew(core: &Core, id: i64, may_forward: bool) -> Result<i64, ApiError> {
    let deadline = tokio::time::Instant::now() + core.request_timeout;
    loop {
        if !may_forward && !is_leader(core) {
            // A forwarded call reached a member that no longer leads: the forwarding
            // member retries with the leader it learns next.
            return Err(ApiError::LeaderChanged);
        }
        match route(core, may_forward) {
            Route::Local if is_leader(core) => {
                wait_applied(core, deadline).await?;
                match renew_local(core, id).await? {
                    Local::Done(ttl) => return Ok(ttl),
                    Local::NotPrimary | Local::Wait => {}
                }
            }
            Route::Forward(mut client) => {
                let request = pb::LeaseKeepAliveRequest { id };
                match tokio::time::timeout_at(deadline, client.renew(request)).await {
                    Ok(Ok(resp)) => return Ok(resp.into_inner().ttl),
                    Ok(Err(status)) => {
                        tracing::debug!(%status, "forwarding a lease renewal to the leader")
                    }
                    Err(_) => return Err(timed_out(core)),
                }
            }
            Route::Local | Route::Wait => {}
        }
        if tokio::time::Instant::now() + RETRY >= deadline {
            return Err(timed_out(core));
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// etcd's `LeaseTimeToLive`, at the leader; the header is left for the caller.
pub(crate) async fn time_to_live(
    core: &Core,
    r: &pb::LeaseTimeToLiveRequest,
    may_forward: bool,
) -> Result<pb::LeaseTimeToLiveResponse, ApiError> {
    let deadline = tokio::time::Instant::now() + core.request_timeout;
    loop {
        if !may_forward && !is_leader(core) {
            return Err(ApiError::LeaderChanged);
        }
        match route(core, may_forward) {
            Route::Local if is_leader(core) => {
                wait_applied(core, deadline).await?;
                if let Local::Done(resp) = time_to_live_local(core, r)? {
                    return Ok(resp);
                }
            }
            Route::Forward(mut client) => {
                match tokio::time::timeout_at(deadline, client.time_to_live(*r)).await {
                    Ok(Ok(resp)) => return Ok(resp.into_inner()),
                    Ok(Err(status)) => {
                        tracing::debug!(%status, "forwarding a lease time-to-live to the leader")
                    }
                    Err(_) => return Err(timed_out(core)),
                }
            }
            Route::Local | Route::Wait => {}
        }
        if tokio::time::Instant::now() + RETRY >= deadline {
            return Err(timed_out(core));
        }
        tokio::time::sleep(RETRY).await;
    }
}

// ------------------------------------------------------------------ gRPC: etcdserverpb.Lease

/// `etcdserverpb.Lease`.
pub(crate) struct LeaseService(pub Arc<Core>);

type KeepAliveStream =
    Pin<Box<dyn Stream<Item = Result<pb::LeaseKeepAliveResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl pb::lease_server::Lease for LeaseService {
    async fn lease_grant(
        &self,
        request: tonic::Request<pb::LeaseGrantRequest>,
    ) -> Result<Response<pb::LeaseGrantResponse>, Status> {
        let mut r = request.into_inner();
        // etcd picks the id before proposing, from its request id generator, keeping
        // it positive, so every member applies the same id.
        while r.id == 0 {
            r.id = LeaseId::from_request_id(self.0.next_request_id()).map_or(0, LeaseId::get);
        }
        match self.0.propose(Request::LeaseGrant(r)).await? {
            Applied::LeaseGrant {
                id,
                ttl_secs,
                revision,
            } => Ok(Response::new(pb::LeaseGrantResponse {
                header: Some(self.0.header(revision)),
                id,
                ttl: ttl_secs,
                error: String::new(),
            })),
            other => Err(crate::api::unexpected(&other)),
        }
    }

    async fn lease_revoke(
        &self,
        request: tonic::Request<pb::LeaseRevokeRequest>,
    ) -> Result<Response<pb::LeaseRevokeResponse>, Status> {
        let r = request.into_inner();
        match self.0.propose(Request::LeaseRevoke(r)).await? {
            Applied::LeaseRevoke { revision } => Ok(Response::new(pb::LeaseRevokeResponse {
                header: Some(self.0.header(revision)),
            })),
            other => Err(crate::api::unexpected(&other)),
        }
    }

    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_keep_alive(
        &self,
        request: tonic::Request<Streaming<pb::LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(KEEPALIVE_STREAM_CAPACITY);
        // Weak while idle: an open stream must not keep a stopped server's store alive.
        let weak = Arc::downgrade(&self.0);
        tokio::spawn(async move {
            loop {
                let req = match inbound.message().await {
                    Ok(Some(req)) => req,
                    // The client closed its side, or the stream broke.
                    Ok(None) | Err(_) => return,
                };
                let Some(core) = weak.upgrade() else {
                    let _ = tx.send(Err(ApiError::Stopped.status())).await;
                    return;
                };
                // The header is taken before renewing, as etcd does, so its revision
                // is never past a revoke the renewal raced with.
                let header = core.header(core.current_revision());
                let answer = match renew(&core, req.id, true).await {
                    Ok(ttl) => Ok(pb::LeaseKeepAliveResponse {
                        header: Some(header),
                        id: req.id,
                        ttl,
                    }),
                    Err(e) => Err(e.status()),
                };
                let failed = answer.is_err();
                if tx.send(answer).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn lease_time_to_live(
        &self,
        request: tonic::Request<pb::LeaseTimeToLiveRequest>,
    ) -> Result<Response<pb::LeaseTimeToLiveResponse>, Status> {
        let r = request.into_inner();
        let mut resp = time_to_live(&self.0, &r, true).await?;
        resp.header = Some(self.0.header(self.0.current_revision()));
        Ok(Response::new(resp))
    }

    async fn lease_leases(
        &self,
        _: tonic::Request<pb::LeaseLeasesRequest>,
    ) -> Result<Response<pb::LeaseLeasesResponse>, Status> {
        let leases = self
            .0
            .shared
            .leases
            .lock()
            .leases()
            .into_iter()
            .map(|id| pb::LeaseStatus { id: id.get() })
            .collect();
        Ok(Response::new(pb::LeaseLeasesResponse {
            header: Some(self.0.header(self.0.current_revision())),
            leases,
        }))
    }
}

// ------------------------------------------------------------------ gRPC: keelpb.PeerLease

/// The leader's side of forwarded lease calls, on the peer port. It holds the server
/// weakly: peer connections outlive a stopped server's peer listener (the other
/// members keep them open), and must not keep its store, and backend file, open.
pub(crate) struct PeerLeaseService(Weak<Core>);

impl PeerLeaseService {
    fn core(&self) -> Result<Arc<Core>, Status> {
        self.0.upgrade().ok_or_else(|| ApiError::Stopped.status())
    }
}

#[tonic::async_trait]
impl PeerLease for PeerLeaseService {
    async fn renew(
        &self,
        request: tonic::Request<pb::LeaseKeepAliveRequest>,
    ) -> Result<Response<pb::LeaseKeepAliveResponse>, Status> {
        let id = request.into_inner().id;
        let ttl = renew(&*self.core()?, id, false).await?;
        Ok(Response::new(pb::LeaseKeepAliveResponse {
            header: None,
            id,
            ttl,
        }))
    }

    async fn time_to_live(
        &self,
        request: tonic::Request<pb::LeaseTimeToLiveRequest>,
    ) -> Result<Response<pb::LeaseTimeToLiveResponse>, Status> {
        let r = request.into_inner();
        Ok(Response::new(
            time_to_live(&*self.core()?, &r, false).await?,
        ))
    }
}

/// The peer-port service for forwarded lease calls.
pub(crate) fn peer_service(
    core: &Arc<Core>,
) -> keelpb::peer_lease_server::PeerLeaseServer<PeerLeaseService> {
    keelpb::peer_lease_server::PeerLeaseServer::new(PeerLeaseService(Arc::downgrade(core)))
}
