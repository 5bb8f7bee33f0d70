//! The node loop: the one owner of the Raft node, the WAL and the applier.
//!
//! It runs on a dedicated OS thread, not on the tokio runtime, because every `Ready`
//! ends in an `fdatasync` of the WAL and the applier writes redb: both block for
//! milliseconds, and a blocked runtime worker would stall every client and peer
//! connection (with 2 cores there may be only two workers). Everyone else talks to it
//! through one bounded channel of [`NodeInput`]s and gets answers on oneshot channels.
//!
//! One loop iteration: take every queued input (up to [`MAX_INPUTS_PER_READY`]), then
//! handle one `Ready` in the order its contract gives: send the messages that need no
//! persistence (the leader's appends go out while it writes), persist snapshot, entries
//! and hard state with one fsync, send the messages that promise persistence, apply the
//! committed entries in order (waking their waiters), serve confirmed reads, advance.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use keel_mvcc::{ApplyIndex, Store};
use keel_proto::keelpb;
use keel_raft::{
    ConfChange, EntryKind, MemStorage, Message, MessageType, RawNode, Ready, SnapshotStatus,
    Storage as _,
};
use prost::Message as _;
use tokio::sync::{mpsc, oneshot};

use crate::apply::{self, ApplyError, ApplyResult};
use crate::errors::{ApiError, ServerError};
use crate::failpoints::{self, fail_point};
use crate::membership::Membership;
use crate::storage::DiskLog;
use crate::transport::Transport;

/// Inputs taken before a `Ready` is handled: many proposals share one fsync.
pub(crate) const MAX_INPUTS_PER_READY: usize = 1024;
/// Capacity of the node's input channel.
pub(crate) const NODE_INPUT_CAPACITY: usize = 4096;
/// Proposals waiting to apply (or for a leader) before new ones are refused with
/// "too many requests".
pub(crate) const MAX_PENDING_PROPOSALS: usize = 16_384;
/// Linearizable reads waiting at once before new ones are refused.
pub(crate) const MAX_PENDING_READS: usize = 16_384;
/// Entries kept in memory behind a snapshot for slow followers (etcd's
/// `SnapshotCatchUpEntries`); a smaller `--snapshot-count` lowers it to that count so a
/// small count in tests really sends followers snapshots.
pub(crate) const SNAPSHOT_CATCH_UP_ENTRIES: u64 = 5000;

/// State the node publishes for the API layers. The store and membership sit behind std
/// locks: they are only held for in-memory work and redb calls, never across an `.await`.
pub(crate) struct Shared {
    pub member_id: u64,
    pub cluster_id: u64,
    pub leader: AtomicU64,
    pub term: AtomicU64,
    pub commit_index: AtomicU64,
    pub applied_index: AtomicU64,
    pub is_learner: std::sync::atomic::AtomicBool,
    pub store: RwLock<Store>,
    pub membership: RwLock<Membership>,
    pub leases: crate::lease::Leases,
    /// The v2 store, applied by the node loop like `store` (std lock for the same reason).
    pub v2: RwLock<crate::v2::V2State>,
    /// The v2 statistics (`/v2/stats/self`, `/v2/stats/leader`).
    pub stats: Arc<crate::stats::Stats>,
}

impl Shared {
    pub(crate) fn leader(&self) -> u64 {
        self.leader.load(Ordering::Acquire)
    }
}

/// A request proposed through Raft.
pub(crate) struct Proposal {
    pub id: u64,
    pub data: Vec<u8>,
    pub reply: oneshot::Sender<ApplyResult>,
}

/// Everything the node loop reacts to.
pub(crate) enum NodeInput {
    /// One heartbeat interval passed.
    Tick,
    /// A client write.
    Propose(Proposal),
    /// A linearizable read: answered once applied ≥ the confirmed read index.
    ReadIndex(ReadWaiter),
    /// Messages from a peer.
    Peer(Vec<Message>),
    /// A snapshot message from a peer with the backend file it came with.
    PeerSnapshot {
        message: Box<Message>,
        db: PathBuf,
        done: oneshot::Sender<Result<(), String>>,
    },
    /// The transport could not reach a peer.
    Unreachable(u64),
    /// A peer's address refused a connection: its process is gone. A follower of it
    /// campaigns without waiting out the leader's lease (`RawNode::report_leader_down`).
    PeerDown(u64),
    /// How sending a snapshot to a peer went.
    SnapshotStatus(u64, SnapshotStatus),
    /// Stop: commit the backend and return.
    Stop,
}

/// Where a linearizable read learns it may go ahead.
type ReadWaiter = oneshot::Sender<Result<(), ApiError>>;

struct ReadBatch {
    ctx: [u8; 16],
    waiters: Vec<ReadWaiter>,
    issued_tick: u64,
}

/// ReadIndex batching: one `read_index` round serves every read queued behind it.
///
/// A round's context is this member's id followed by a counter: the leader keeps one
/// pending read per context and ignores a second one, so contexts must differ across
/// members (with a bare counter, two followers' first rounds collided and one waited a
/// whole election timeout for `retry_lost`).
#[derive(Default)]
struct Reads {
    member_id: u64,
    pending: Vec<ReadWaiter>,
    in_flight: Option<ReadBatch>,
    confirmed: Vec<(u64, Vec<ReadWaiter>)>,
    next_ctx: u64,
}

/// The context of a member's `n`th ReadIndex round.
fn read_context(member_id: u64, n: u64) -> [u8; 16] {
    let mut ctx = [0u8; 16];
    ctx[..8].copy_from_slice(&member_id.to_be_bytes());
    ctx[8..].copy_from_slice(&n.to_be_bytes());
    ctx
}

impl Reads {
    fn len(&self) -> usize {
        self.pending.len()
            + self.in_flight.as_ref().map_or(0, |b| b.waiters.len())
            + self.confirmed.iter().map(|(_, w)| w.len()).sum::<usize>()
    }

    fn issue(&mut self, raw: &mut RawNode<MemStorage>, tick: u64) {
        if self.in_flight.is_some() {
            return;
        }
        self.pending.retain(|w| !w.is_closed());
        if self.pending.is_empty() {
            return;
        }
        self.next_ctx += 1;
        let ctx = read_context(self.member_id, self.next_ctx);
        // Refused while there is no leader: the reads stay pending and are retried on
        // the next tick until their handlers time out.
        if raw.read_index(ctx.to_vec()).is_ok() {
            self.in_flight = Some(ReadBatch {
                ctx,
                waiters: std::mem::take(&mut self.pending),
                issued_tick: tick,
            });
        }
    }

    fn confirm(&mut self, ctx: &[u8], index: u64) {
        if let Some(batch) = self.in_flight.take_if(|b| b.ctx == ctx) {
            self.confirmed.push((index, batch.waiters));
        }
    }

    fn release(&mut self, applied: u64) {
        self.confirmed.retain_mut(|(index, waiters)| {
            if *index > applied {
                return true;
            }
            for w in waiters.drain(..) {
                // The handler may have timed out and gone.
                let _ = w.send(Ok(()));
            }
            false
        });
    }

    /// etcd answers reads caught by a leader change with "leader changed"; reads already
    /// confirmed stay valid (their index was confirmed by a leader of its term).
    fn leader_changed(&mut self) {
        if let Some(batch) = self.in_flight.take() {
            for w in batch.waiters {
                let _ = w.send(Err(ApiError::LeaderChanged));
            }
        }
    }

    /// A round unanswered for an election timeout was lost (leader change, dropped
    /// message): its reads go back to pending and a new round is issued.
    fn retry_lost(&mut self, tick: u64, election_tick: u64) {
        if let Some(batch) = self
            .in_flight
            .take_if(|b| tick - b.issued_tick >= election_tick)
        {
            let mut waiters = batch.waiters;
            waiters.append(&mut self.pending);
            self.pending = waiters;
        }
    }
}

/// Settings of the loop.
pub(crate) struct NodeSettings {
    pub election_tick: u64,
    pub snapshot_count: u64,
    pub snap_dir: PathBuf,
}

/// The node loop's state; see the module docs.
pub(crate) struct Node {
    raw: RawNode<MemStorage>,
    log: DiskLog,
    shared: Arc<Shared>,
    transport: Transport,
    inputs: mpsc::Receiver<NodeInput>,
    settings: NodeSettings,
    waiters: HashMap<u64, oneshot::Sender<ApplyResult>>,
    queued: VecDeque<Proposal>,
    reads: Reads,
    membership: Membership,
    applied: u64,
    snapshot_index: u64,
    tick: u64,
    snapshots_sent: u64,
}

impl Node {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        raw: RawNode<MemStorage>,
        log: DiskLog,
        shared: Arc<Shared>,
        transport: Transport,
        inputs: mpsc::Receiver<NodeInput>,
        settings: NodeSettings,
        membership: Membership,
        snapshot_index: u64,
    ) -> Node {
        let member_id = shared.member_id;
        Node {
            raw,
            log,
            shared,
            transport,
            inputs,
            settings,
            waiters: HashMap::new(),
            queued: VecDeque::new(),
            reads: Reads {
                member_id,
                ..Reads::default()
            },
            membership,
            applied: snapshot_index,
            snapshot_index,
            tick: 0,
            snapshots_sent: 0,
        }
    }

    /// Runs until [`NodeInput::Stop`], the input channel closing, or an IO failure.
    pub(crate) fn run(mut self) -> Result<(), ServerError> {
        let result = self.run_loop();
        let commit = self
            .shared
            .store
            .write()
            .expect("store lock poisoned")
            .force_commit();
        result?;
        commit.map_err(|source| self.backend_error(source))
    }

    fn run_loop(&mut self) -> Result<(), ServerError> {
        while let Some(first) = self.inputs.blocking_recv() {
            let mut stop = self.handle(first)?;
            let mut taken = 1;
            while !stop && taken < MAX_INPUTS_PER_READY {
                match self.inputs.try_recv() {
                    Ok(input) => stop = self.handle(input)?,
                    Err(_) => break,
                }
                taken += 1;
            }
            if stop {
                return Ok(());
            }
            while self.raw.has_ready() {
                let rd = self.raw.ready();
                self.handle_ready(rd)?;
            }
            self.maybe_snapshot()?;
        }
        Ok(())
    }

    fn backend_error(&self, source: keel_mvcc::MvccError) -> ServerError {
        let path = self
            .shared
            .store
            .read()
            .expect("store lock poisoned")
            .path()
            .to_path_buf();
        ServerError::Backend { path, source }
    }

    /// Returns true on [`NodeInput::Stop`].
    fn handle(&mut self, input: NodeInput) -> Result<bool, ServerError> {
        match input {
            NodeInput::Tick => self.on_tick()?,
            NodeInput::Propose(p) => self.propose(p),
            NodeInput::ReadIndex(reply) => {
                if self.reads.len() >= MAX_PENDING_READS {
                    let _ = reply.send(Err(ApiError::TooManyRequests));
                } else {
                    self.reads.pending.push(reply);
                    self.reads.issue(&mut self.raw, self.tick);
                }
            }
            NodeInput::Peer(messages) => {
                for m in messages {
                    self.step(m);
                }
            }
            NodeInput::PeerSnapshot { message, db, done } => {
                let result = self.install_snapshot(*message, &db);
                let _ = std::fs::remove_file(&db);
                let _ = done.send(result);
            }
            NodeInput::Unreachable(id) => self.raw.report_unreachable(id),
            NodeInput::PeerDown(id) => self.raw.report_leader_down(id),
            NodeInput::SnapshotStatus(id, status) => self.raw.report_snapshot(id, status),
            NodeInput::Stop => return Ok(true),
        }
        Ok(false)
    }

    fn step(&mut self, m: Message) {
        let (kind, from) = (m.kind, m.from);
        if let Err(e) = self.raw.step(m) {
            tracing::debug!(?kind, from, error = %e, "raft refused a peer message");
        }
    }

    /// A follower receiving the leader's snapshot: the backend file replaces the store
    /// before Raft sees the message, so the state machine already holds the snapshot when
    /// its `Ready` comes. A snapshot not ahead of the store is only stepped (Raft answers
    /// the leader), never restored backwards.
    fn install_snapshot(&mut self, message: Message, db: &std::path::Path) -> Result<(), String> {
        let Some(snapshot) = message.snapshot.as_ref() else {
            return Err("snapshot message without a snapshot".to_owned());
        };
        let index = snapshot.metadata.index;
        {
            let mut store = self.shared.store.write().expect("store lock poisoned");
            if index > store.consistent_index() {
                fail_point!("raft_before_apply_snapshot");
                store.restore_snapshot(db).map_err(|e| e.to_string())?;
                tracing::info!(
                    index,
                    consistent_index = store.consistent_index(),
                    "restored the backend from the leader's snapshot"
                );
                self.shared.leases.restore(&store)?;
                match Membership::decode(store.membership()) {
                    Ok(m) => {
                        self.membership = m.clone();
                        *self
                            .shared
                            .membership
                            .write()
                            .expect("membership lock poisoned") = m;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "snapshot backend has no usable membership")
                    }
                }
            }
        }
        self.step(message);
        Ok(())
    }

    fn propose(&mut self, p: Proposal) {
        if self.waiters.len() + self.queued.len() >= MAX_PENDING_PROPOSALS {
            let _ = p.reply.send(Err(ApiError::TooManyRequests));
            return;
        }
        if self.shared.leader() == 0 {
            // etcd's proposals block until there is a leader; they wait here instead,
            // bounded, and their handlers time out if none comes.
            self.queued.push_back(p);
            return;
        }
        match self.raw.propose(p.data) {
            Ok(()) => {
                let previous = self.waiters.insert(p.id, p.reply);
                assert!(previous.is_none(), "request id {:x} proposed twice", p.id);
            }
            Err(e) => {
                let _ = p.reply.send(Err(ApiError::ProposalDropped(e.to_string())));
            }
        }
    }

    fn flush_queued(&mut self) {
        if self.shared.leader() == 0 {
            return;
        }
        for p in std::mem::take(&mut self.queued) {
            if !p.reply.is_closed() {
                self.propose(p);
            }
        }
    }

    fn on_tick(&mut self) -> Result<(), ServerError> {
        self.raw.tick();
        self.tick += 1;
        self.reads
            .retry_lost(self.tick, self.settings.election_tick);
        self.reads.issue(&mut self.raw, self.tick);
        self.flush_queued();
        if self.tick.is_multiple_of(self.settings.election_tick) {
            // Handlers that timed out left their waiters behind.
            self.waiters.retain(|_, w| !w.is_closed());
            self.queued.retain(|p| !p.reply.is_closed());
        }
        let mut store = self.shared.store.write().expect("store lock poisoned");
        if store.pending_ops() > 0 {
            fail_point!("backend_before_commit");
        }
        if let Err(source) = store.commit_if_due(Instant::now()) {
            drop(store);
            return Err(self.backend_error(source));
        }
        // etcd's syncWatchersLoop runs every 100 ms, the default tick: slow and
        // catching-up watchers get their next bounded chunk here.
        if let Err(source) = store.sync_watchers() {
            drop(store);
            return Err(self.backend_error(source));
        }
        Ok(())
    }

    fn send(&mut self, messages: Vec<Message>) {
        for m in messages {
            if m.kind == MessageType::Snapshot {
                self.send_snapshot(m);
            } else {
                let to = m.to;
                if !self.transport.send(m) {
                    self.raw.report_unreachable(to);
                }
            }
        }
    }

    /// etcd's merged snapshot: the Raft snapshot message plus a fresh copy of the
    /// backend (whose consistent index may be past the snapshot's index; the follower
    /// skips those entries when they arrive).
    fn send_snapshot(&mut self, m: Message) {
        let to = m.to;
        self.snapshots_sent += 1;
        let path = self
            .settings
            .snap_dir
            .join(format!("outgoing-{to:016x}-{}.db", self.snapshots_sent));
        let made = self
            .shared
            .store
            .write()
            .expect("store lock poisoned")
            .snapshot(&path);
        match made {
            Ok(info) => {
                tracing::info!(
                    to = format_args!("{to:x}"),
                    index = m.snapshot.as_ref().map_or(0, |s| s.metadata.index),
                    size_bytes = info.size_bytes,
                    "sending a snapshot"
                );
                self.transport.send_snapshot(m, path);
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not copy the backend for a snapshot");
                let _ = std::fs::remove_file(&path);
                self.raw.report_snapshot(to, SnapshotStatus::Failure);
            }
        }
    }

    fn handle_ready(&mut self, mut rd: Ready) -> Result<(), ServerError> {
        if let Some(ss) = rd.soft_state {
            if ss.leader_id != self.shared.member_id {
                self.shared.leases.follow_leadership(false, false);
            }
            let previous = self.shared.leader.swap(ss.leader_id, Ordering::AcqRel);
            if previous != ss.leader_id {
                if previous != 0 {
                    self.reads.leader_changed();
                }
                if ss.leader_id == self.shared.member_id {
                    self.shared.stats.became_leader();
                }
                tracing::info!(leader = format_args!("{:x}", ss.leader_id), role = ?ss.role, "leader changed");
            }
        }
        if let Some(hs) = rd.hard_state {
            self.shared.term.store(hs.term, Ordering::Release);
            self.shared.commit_index.store(hs.commit, Ordering::Release);
        }
        if self.shared.leader() == self.shared.member_id && !rd.messages.is_empty() {
            fail_point!("raft_before_leader_send");
        }
        self.send(std::mem::take(&mut rd.messages));
        if let Some(snapshot) = &rd.snapshot {
            self.log.save_snapshot(snapshot)?;
            self.raw
                .storage_mut()
                .apply_snapshot(snapshot.clone())
                .expect("raft hands out only snapshots newer than the log's");
            self.restore_v2(snapshot)?;
            self.applied = self.applied.max(snapshot.metadata.index);
            self.snapshot_index = snapshot.metadata.index;
            self.shared
                .applied_index
                .store(self.applied, Ordering::Release);
            fail_point!("raft_after_apply_snapshot");
        }
        failpoints::ack_before_commit(&rd.entries, &mut self.waiters, &self.shared);
        fail_point!("raft_before_save");
        self.log.save(rd.hard_state, &rd.entries)?;
        fail_point!("raft_after_save");
        if let Some(hs) = rd.hard_state {
            self.raw.storage_mut().set_hard_state(hs);
        }
        self.raw
            .storage_mut()
            .append(&rd.entries)
            .expect("raft appends contiguously to its own log");
        if self.shared.leader() != self.shared.member_id && !rd.persisted_messages.is_empty() {
            fail_point!("raft_before_follower_send");
        }
        self.send(std::mem::take(&mut rd.persisted_messages));
        self.apply_entries(&rd.committed_entries)?;
        for rs in std::mem::take(&mut rd.read_states) {
            self.reads.confirm(&rs.request_ctx, rs.index);
        }
        self.reads.release(self.applied);
        self.reads.issue(&mut self.raw, self.tick);
        self.raw.advance(rd);
        self.flush_queued();
        Ok(())
    }

    fn apply_entries(&mut self, entries: &[keel_raft::Entry]) -> Result<(), ServerError> {
        if entries.is_empty() {
            return Ok(());
        }
        let shared = Arc::clone(&self.shared);
        let mut store = shared.store.write().expect("store lock poisoned");
        let mut v2 = shared.v2.write().expect("v2 store lock poisoned");
        for e in entries {
            assert!(
                e.index == self.applied + 1 || e.index <= self.applied,
                "entry {} applied out of order after {}",
                e.index,
                self.applied
            );
            // The backend skips what it already holds; the v2 store, rebuilt from the
            // snapshot at each start, takes every entry after the one it reflects.
            let v3_due = e.index > store.consistent_index();
            let v2_due = e.index > v2.applied;
            if !v3_due && !v2_due {
                self.applied = self.applied.max(e.index);
                continue;
            }
            fail_point!("apply_before_consistent_index");
            if v2_due {
                v2.applied = e.index;
            }
            let at = ApplyIndex::new(e.index, e.term);
            let (id, result) = match e.kind {
                _ if !v3_due && e.kind != EntryKind::Normal => {
                    self.applied = self.applied.max(e.index);
                    continue;
                }
                EntryKind::ConfChange => {
                    let cc = ConfChange::decode(&e.data).map_err(|err| {
                        ServerError::NodeFailed(format!("entry {}: {err}", e.index))
                    })?;
                    let cs = self.raw.apply_conf_change(&cc).map_err(|err| {
                        ServerError::NodeFailed(format!("entry {}: {err}", e.index))
                    })?;
                    self.raw.storage_mut().set_conf_state(cs);
                    (
                        None,
                        apply::apply_request(
                            &mut store,
                            &mut self.membership,
                            &shared.leases,
                            at,
                            None,
                        ),
                    )
                }
                EntryKind::Normal if e.data.is_empty() => {
                    if !v3_due {
                        self.applied = self.applied.max(e.index);
                        continue;
                    }
                    (
                        None,
                        apply::apply_request(
                            &mut store,
                            &mut self.membership,
                            &shared.leases,
                            at,
                            None,
                        ),
                    )
                }
                EntryKind::Normal => {
                    let req =
                        keelpb::InternalRequest::decode(e.data.as_slice()).map_err(|err| {
                            ServerError::NodeFailed(format!(
                                "committed entry {} is not a Keel request: {err}",
                                e.index
                            ))
                        })?;
                    let published = matches!(
                        req.request,
                        Some(keelpb::internal_request::Request::Publish(_))
                    );
                    let v2_outcome = if v2_due {
                        crate::v2::apply_entry(&mut v2.store, req.request.as_ref())
                    } else {
                        None
                    };
                    if !v3_due {
                        self.applied = self.applied.max(e.index);
                        continue;
                    }
                    let result = apply::apply_request(
                        &mut store,
                        &mut self.membership,
                        &shared.leases,
                        at,
                        req.request,
                    );
                    let result = match (result, v2_outcome) {
                        (Ok(_), Some(outcome)) => Ok(apply::Applied::V2(outcome)),
                        (result, _) => result,
                    };
                    if published {
                        *self
                            .shared
                            .membership
                            .write()
                            .expect("membership lock poisoned") = self.membership.clone();
                    }
                    (Some(req.id), result)
                }
            };
            let result = match result {
                Ok(applied) => Ok(applied),
                Err(ApplyError::Client(e)) => Err(e),
                Err(ApplyError::Fatal(source)) => {
                    return Err(ServerError::Backend {
                        path: store.path().to_path_buf(),
                        source,
                    });
                }
            };
            self.applied = e.index;
            if let Some(waiter) = id.and_then(|id| self.waiters.remove(&id)) {
                let _ = waiter.send(result);
            }
        }
        self.shared
            .applied_index
            .store(self.applied, Ordering::Release);
        // A leader that applied an entry of its own term has applied every earlier
        // one: its lessor may become primary.
        let leading = self.shared.leader() == self.shared.member_id;
        let term = self.shared.term.load(Ordering::Acquire);
        let caught_up = entries.last().is_some_and(|e| e.term == term);
        if leading {
            self.shared.leases.follow_leadership(true, caught_up);
        }
        Ok(())
    }

    /// A snapshot from the leader: the v2 store it carries replaces ours when it is
    /// ahead (the entries it covers will not be applied here).
    fn restore_v2(&mut self, snapshot: &keel_raft::Snapshot) -> Result<(), ServerError> {
        let index = snapshot.metadata.index;
        let mut v2 = self.shared.v2.write().expect("v2 store lock poisoned");
        if index <= v2.applied {
            return Ok(());
        }
        *v2 = crate::v2::V2State::from_snapshot(&snapshot.data, index).map_err(|reason| {
            ServerError::BadSnapshot {
                dir: self.settings.snap_dir.clone(),
                reason,
            }
        })?;
        tracing::info!(
            index,
            v2_index = v2.store.index(),
            "restored the v2 store from a snapshot"
        );
        Ok(())
    }

    /// etcd's `triggerSnapshot`: after `snapshot_count` applied entries, a Raft snapshot
    /// (metadata and membership; the backend, committed first, is the state), the
    /// in-memory log compacted keeping a tail, and WAL segments before it released.
    fn maybe_snapshot(&mut self) -> Result<(), ServerError> {
        if self.applied <= self.snapshot_index + self.settings.snapshot_count {
            return Ok(());
        }
        let index = self.applied;
        {
            let mut store = self.shared.store.write().expect("store lock poisoned");
            fail_point!("backend_before_commit");
            if let Err(source) = store.force_commit() {
                let path = store.path().to_path_buf();
                return Err(ServerError::Backend { path, source });
            }
        }
        let data = {
            let v2 = self.shared.v2.read().expect("v2 store lock poisoned");
            assert_eq!(
                v2.applied, index,
                "the v2 store reflects the applied index when a snapshot is taken"
            );
            crate::v2::encode_snapshot_data(self.membership.encode(), &v2.store)
        };
        let snapshot = self
            .raw
            .storage_mut()
            .create_snapshot(index, None, data)
            .expect("the applied index is in the log and past the last snapshot");
        self.log.save_snapshot(&snapshot)?;
        self.snapshot_index = index;
        let tail = SNAPSHOT_CATCH_UP_ENTRIES.min(self.settings.snapshot_count);
        let compact_to = index.saturating_sub(tail);
        let first = self.raw.storage().first_index().expect("in-memory log");
        if compact_to >= first {
            self.raw
                .storage_mut()
                .compact(compact_to)
                .expect("compacting below the applied index");
        }
        self.log.release_to(index)?;
        tracing::info!(index, compacted_to = compact_to, "took a snapshot");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_contexts_of_different_members_never_collide() {
        // The leader ignores a ReadIndex whose context is already pending, so the same
        // round number on two followers must still give two contexts.
        for n in [1, 2, 1000] {
            assert_ne!(read_context(0x8e9e_05c5, n), read_context(0x91bc_3c39, n));
            assert_ne!(
                read_context(0x8e9e_05c5, n),
                read_context(0x8e9e_05c5, n + 1)
            );
        }
    }
}
