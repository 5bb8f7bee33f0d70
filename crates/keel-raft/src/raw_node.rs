//! The application-facing interface: [`RawNode`] and its [`Ready`].

use std::collections::BTreeMap;

use crate::config::Config;
use crate::raft::Raft;
use crate::storage::Storage;
use crate::types::{
    ConfChange, ConfState, Entry, EntryKind, HardState, Message, MessageType, Snapshot,
};
use crate::{Error, NodeId};

/// A node's role.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum StateRole {
    /// Follows a leader (or waits for one).
    #[default]
    Follower,
    /// Asking for votes in a new term.
    Candidate,
    /// Leads the cluster in its term.
    Leader,
    /// Asking whether it could win an election, without changing the term.
    PreCandidate,
}

/// Volatile state worth reporting, not persisting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SoftState {
    /// The known leader (0 = none).
    pub leader_id: NodeId,
    /// This node's role.
    pub role: StateRole,
}

/// A linearizable read that may be served once the application has applied `index`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadState {
    /// Commit index at the time leadership was confirmed.
    pub index: u64,
    /// The context passed to [`RawNode::read_index`].
    pub request_ctx: Vec<u8>,
}

/// Outcome of sending a snapshot, reported through [`RawNode::report_snapshot`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotStatus {
    /// The follower received the snapshot.
    Finish,
    /// Sending failed.
    Failure,
}

/// How the leader replicates to a follower.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ProgressState {
    /// One append at a time until the follower's log position is found.
    #[default]
    Probe,
    /// Pipelined appends, up to `max_inflight_msgs` at once.
    Replicate,
    /// A snapshot is being sent; appends wait for its outcome.
    Snapshot,
}

/// A leader's view of one follower, for [`Status`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgressStatus {
    /// Highest index known replicated.
    pub matched: u64,
    /// Next index to send.
    pub next_idx: u64,
    /// Replication mode.
    pub state: ProgressState,
    /// Whether the node is a learner.
    pub is_learner: bool,
    /// Heard from during the current check-quorum window.
    pub recent_active: bool,
    /// Append messages in flight.
    pub inflight_msgs: usize,
}

/// A snapshot of a node's state for observability and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// This node.
    pub id: NodeId,
    /// Current term, vote and commit index.
    pub hard_state: HardState,
    /// Current leader and role.
    pub soft_state: SoftState,
    /// Last index handed out for applying and acknowledged by [`RawNode::advance`].
    pub applied: u64,
    /// Index of the last entry in the log.
    pub last_index: u64,
    /// Per-node progress; empty unless this node is the leader.
    pub progress: BTreeMap<NodeId, ProgressStatus>,
    /// The node leadership is being transferred to (0 = none).
    pub lead_transferee: NodeId,
    /// Current membership.
    pub conf_state: ConfState,
}

/// Everything the application must do after a batch of inputs, numbered so that
/// [`RawNode::advance`] can check it is acknowledged in order.
///
/// # Contract, in order
///
/// 1. Send `messages` now (in parallel with the rest; they do not depend on this Ready
///    being durable).
/// 2. If `snapshot` is set, persist it (and replace the state machine with it before
///    applying any entry below).
/// 3. Append `entries` to stable storage, replacing any stored entries at or after
///    `entries[0].index`; persist `hard_state` if set. Sync to disk before going on when
///    `must_sync` is true.
/// 4. Send `persisted_messages` (vote requests and responses, append responses): they
///    promise the receiver that step 2–3 are durable.
/// 5. Apply `committed_entries` in order; for [`EntryKind::ConfChange`] entries decode the
///    [`ConfChange`] and call [`RawNode::apply_conf_change`]. Serve `read_states` once the
///    applied index reaches their `index`.
/// 6. Call [`RawNode::advance`] with this Ready. Only then may [`RawNode::ready`] be called
///    again; steps, ticks and proposals may be made at any time in between.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    /// Sequence number of this Ready (1, 2, ...).
    pub number: u64,
    /// Set when leader or role changed since the previous Ready.
    pub soft_state: Option<SoftState>,
    /// Set when term, vote or commit changed since the previous Ready.
    pub hard_state: Option<HardState>,
    /// Entries to append to stable storage.
    pub entries: Vec<Entry>,
    /// Snapshot to persist and install.
    pub snapshot: Option<Snapshot>,
    /// Entries to apply to the state machine (already committed).
    pub committed_entries: Vec<Entry>,
    /// Messages to send right away.
    pub messages: Vec<Message>,
    /// Messages to send only after this Ready's snapshot, entries and hard state are durable.
    pub persisted_messages: Vec<Message>,
    /// Reads confirmed by the leader.
    pub read_states: Vec<ReadState>,
    /// Whether the hard state and entries must be synced to disk before step 4.
    pub must_sync: bool,
}

/// A Raft node driven by the application; see the crate docs and [`Ready`].
pub struct RawNode<S: Storage> {
    raft: Raft<S>,
    prev_soft_state: SoftState,
    prev_hard_state: HardState,
    /// Number of the last Ready handed out.
    ready_number: u64,
    /// Whether that Ready still awaits `advance`.
    awaiting_advance: bool,
}

impl<S: Storage> RawNode<S> {
    /// Creates a node from its configuration and storage (which supplies the persisted hard
    /// state, membership and log). A node restarting after a crash passes the applied index
    /// in [`Config::applied`].
    pub fn new(config: &Config, storage: S) -> Result<RawNode<S>, Error> {
        let raft = Raft::new(config, storage)?;
        Ok(RawNode {
            prev_soft_state: raft.soft_state(),
            prev_hard_state: raft.hard_state(),
            raft,
            ready_number: 0,
            awaiting_advance: false,
        })
    }

    /// Advances logical time by one tick (elections, heartbeats, check-quorum).
    pub fn tick(&mut self) {
        self.raft.tick();
    }

    /// Starts an election now (if this node may campaign).
    pub fn campaign(&mut self) -> Result<(), Error> {
        self.raft.step(Message {
            kind: MessageType::Hup,
            ..Message::default()
        })
    }

    /// Feeds a message received from a peer.
    ///
    /// A proposal forwarded by a follower that this leader refuses returns
    /// [`Error::ProposalDropped`] here; as in etcd the follower's client is not told, so the
    /// application times such requests out. Messages produced by a step are buffered until
    /// the next [`RawNode::ready`]; the application bounds that buffer by taking a Ready
    /// after each batch of inputs.
    pub fn step(&mut self, m: Message) -> Result<(), Error> {
        if m.kind.is_local() {
            return Err(Error::StepLocalMsg);
        }
        if m.kind.is_response() && !self.raft.tracks(m.from) {
            return Err(Error::StepPeerNotFound);
        }
        self.raft.step(m)
    }

    /// Proposes `data` to be appended to the log.
    pub fn propose(&mut self, data: Vec<u8>) -> Result<(), Error> {
        self.propose_entry(EntryKind::Normal, data)
    }

    /// Proposes several entries at once, all or nothing: they are appended together and
    /// sent to followers in the same append messages. An empty batch does nothing.
    pub fn propose_batch(&mut self, batch: Vec<Vec<u8>>) -> Result<(), Error> {
        if batch.is_empty() {
            return Ok(());
        }
        let id = self.raft.id();
        self.raft.step(Message {
            kind: MessageType::Propose,
            from: id,
            entries: batch
                .into_iter()
                .map(|data| Entry {
                    data,
                    ..Entry::default()
                })
                .collect(),
            ..Message::default()
        })
    }

    /// Proposes a membership change.
    pub fn propose_conf_change(&mut self, cc: ConfChange) -> Result<(), Error> {
        self.propose_entry(EntryKind::ConfChange, cc.encode())
    }

    fn propose_entry(&mut self, kind: EntryKind, data: Vec<u8>) -> Result<(), Error> {
        let id = self.raft.id();
        self.raft.step(Message {
            kind: MessageType::Propose,
            from: id,
            entries: vec![Entry {
                kind,
                data,
                ..Entry::default()
            }],
            ..Message::default()
        })
    }

    /// Requests a linearizable read; the answer arrives as a [`ReadState`] carrying `ctx`,
    /// which must be unique among pending reads.
    pub fn read_index(&mut self, ctx: Vec<u8>) -> Result<(), Error> {
        let id = self.raft.id();
        self.raft.step(Message {
            kind: MessageType::ReadIndex,
            from: id,
            context: ctx,
            ..Message::default()
        })
    }

    /// Asks the leader to hand leadership to `transferee`.
    pub fn transfer_leader(&mut self, transferee: NodeId) -> Result<(), Error> {
        self.raft.step(Message {
            kind: MessageType::TransferLeader,
            from: transferee,
            ..Message::default()
        })
    }

    /// Applies a committed membership change; returns the new membership, which the
    /// application persists with its applied state.
    pub fn apply_conf_change(&mut self, cc: &ConfChange) -> Result<ConfState, Error> {
        self.raft.apply_conf_change(cc)
    }

    /// Tells the leader that `id` could not be reached (back off to probing).
    pub fn report_unreachable(&mut self, id: NodeId) {
        self.step_local(MessageType::Unreachable, id, false);
    }

    /// Tells a follower that member `id`'s process is gone (see `Raft::leader_down`);
    /// ignored unless `id` is its leader.
    pub fn report_leader_down(&mut self, id: NodeId) {
        self.raft.leader_down(id);
    }

    /// Tells the leader how sending a snapshot to `id` went. The transport must report
    /// every snapshot message it was handed (as etcd's snapshot stream does): the leader
    /// sends nothing else to `id` until it hears the outcome or an append response.
    pub fn report_snapshot(&mut self, id: NodeId, status: SnapshotStatus) {
        self.step_local(
            MessageType::SnapStatus,
            id,
            status == SnapshotStatus::Failure,
        );
    }

    fn step_local(&mut self, kind: MessageType, from: NodeId, reject: bool) {
        let m = Message {
            kind,
            from,
            reject,
            ..Message::default()
        };
        // Local reports never fail: they only update leader bookkeeping and are ignored by
        // other roles.
        if let Err(e) = self.raft.step(m) {
            unreachable!("local report {kind:?} failed: {e}");
        }
    }

    /// Whether [`RawNode::ready`] has anything to hand out.
    pub fn has_ready(&self) -> bool {
        if self.awaiting_advance {
            return false;
        }
        let r = &self.raft;
        r.soft_state() != self.prev_soft_state
            || (r.hard_state() != self.prev_hard_state && !r.hard_state().is_empty())
            || r.has_unstable()
            || r.has_next_entries()
            || r.has_messages_or_reads()
    }

    /// Takes the next Ready. Panics if the previous one was not passed to
    /// [`RawNode::advance`] yet.
    pub fn ready(&mut self) -> Ready {
        assert!(
            !self.awaiting_advance,
            "Ready {} must be advanced before taking another",
            self.ready_number
        );
        self.ready_number += 1;
        self.awaiting_advance = true;
        let ss = self.raft.soft_state();
        let hs = self.raft.hard_state();
        let soft_state = (ss != self.prev_soft_state).then_some(ss);
        let hard_state = (hs != self.prev_hard_state).then_some(hs);
        let must_sync = hard_state.is_some_and(|h| {
            h.term != self.prev_hard_state.term || h.vote != self.prev_hard_state.vote
        });
        self.prev_soft_state = ss;
        self.prev_hard_state = hs;
        let (entries, snapshot) = self.raft.unstable();
        let (messages, persisted_messages) = self
            .raft
            .take_messages()
            .into_iter()
            .partition(|m| !m.kind.needs_persistence());
        Ready {
            number: self.ready_number,
            soft_state,
            hard_state,
            must_sync: must_sync || !entries.is_empty() || snapshot.is_some(),
            entries,
            snapshot,
            committed_entries: self.raft.next_entries(),
            messages,
            persisted_messages,
            read_states: self.raft.take_read_states(),
        }
    }

    /// Acknowledges that `rd` has been processed as its contract says.
    pub fn advance(&mut self, rd: Ready) {
        assert!(
            self.awaiting_advance && rd.number == self.ready_number,
            "advance of Ready {} but the outstanding Ready is {} (awaiting: {})",
            rd.number,
            self.ready_number,
            self.awaiting_advance
        );
        self.awaiting_advance = false;
        self.raft.advance(
            rd.snapshot.as_ref().map(|s| s.metadata.index),
            rd.entries.last().map(|e| (e.index, e.term)),
            &rd.committed_entries,
        );
    }

    /// Current state, for observability and tests.
    pub fn status(&self) -> Status {
        self.raft.status()
    }

    /// The application's storage.
    pub fn storage(&self) -> &S {
        self.raft.storage()
    }

    /// The application's storage, to append and compact; only what Raft handed out in a
    /// Ready may be written.
    pub fn storage_mut(&mut self) -> &mut S {
        self.raft.storage_mut()
    }
}
