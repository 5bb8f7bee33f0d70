//! One simulated run: a cluster of [`RawNode`]s on a [`Network`], with a
//! virtual disk per node, clients, faults, and the safety checks of
//! [`crate::checks`].
//!
//! # Time and determinism
//!
//! Virtual time advances in milliseconds. In each millisecond, in this
//! order: faults may strike, due messages are delivered, nodes tick (every
//! [`TICK_MS`], staggered by id), clients start or give up on operations,
//! and every running node's `Ready`s are processed in id order. All choices
//! draw from one [`SmallRng`] seeded with the run's seed, and all
//! collections iterated for decisions are ordered (`BTreeMap`, `Vec`), so a
//! seed replays exactly.
//!
//! # The virtual disk
//!
//! A node's [`MemStorage`] *is* its disk: the harness writes into it only
//! the snapshot, entries and hard state of a `Ready` it persisted, and a
//! crash keeps exactly that storage and loses everything else (the Raft
//! state in memory, the register map, pending client requests, a `Ready` in
//! progress). A restart rebuilds the node from the stored snapshot (the
//! register map is decoded from its data, the membership reset to the
//! snapshot's) and lets Raft hand out the committed entries after it again.
//! A crash can strike in the middle of a `Ready`, after its `messages` were
//! sent and while its entries are being written: a prefix of them survives
//! (a torn write), its hard state and snapshot do not.
//!
//! # Phases
//!
//! The *fault phase* runs for the configured number of milliseconds with
//! every enabled fault. The *quiesce phase* then heals the network, restarts
//! crashed nodes, stops new client operations and waits (bounded) until the
//! members agree on one applied state. Final checks: converged states are
//! equal, every acknowledged write is in them, logs match, and the client
//! history is linearizable.

use std::collections::{BTreeMap, BTreeSet};

use keel_raft::{
    ConfChange, ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfState, Config, Entry,
    EntryKind, MemStorage, Message, MessageType, NodeId, RawNode, Ready, Snapshot,
    SnapshotMetadata, SnapshotStatus, StateRole, Storage,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::checks::{Failure, Ledger, check_log_matching, is_command};
use crate::linearizability::{self, CheckOptions, CheckResult, Register, RegisterOutput};
use crate::network::{Envelope, Network, NetworkFaults};
use crate::registers::{Applied, Command, Registers};
use crate::workload::{Request, Workload, WorkloadConfig};

/// Virtual milliseconds per Raft tick.
pub const TICK_MS: u64 = 10;
/// Election timeout, in ticks (so 100–200 ms of virtual time).
const ELECTION_TICKS: u64 = 10;
/// Heartbeat interval, in ticks.
const HEARTBEAT_TICKS: u64 = 1;
/// Entries applied beyond the last snapshot before a node may compact.
const COMPACT_AFTER_ENTRIES: u64 = 24;
/// Upper bound on messages in flight on the virtual network.
const NETWORK_CAPACITY: usize = 4096;
/// `Ready`s processed per node per millisecond at most (each one usually
/// leaves nothing behind; the bound keeps a misbehaving node from spinning).
const MAX_READIES_PER_MS: usize = 8;
/// Pending client requests one node holds at most; more are refused.
const MAX_PENDING_REQUESTS: usize = 64;
/// How long the quiesce phase may take before the run fails.
const QUIESCE_LIMIT_MS: u64 = 20_000;
/// How often logs are compared during a run.
const LOG_CHECK_EVERY_MS: u64 = 100;
/// Nodes a run may create beyond its initial ones (membership changes).
const MAX_EXTRA_NODES: u64 = 4;

/// A bug planted in the harness, to show the checks catch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HarnessBug {
    /// Send `persisted_messages` (votes, append responses) before the
    /// `Ready` is persisted, so a crash can forget a vote already given.
    SendPersistedMessagesEarly,
    /// Like [`HarnessBug::SendPersistedMessagesEarly`], but only for vote
    /// requests and responses: a crash forgets a vote already given.
    SendVotesEarly,
    /// Answer reads from the local state machine, skipping ReadIndex (a
    /// serializable read passed off as linearizable): a deposed leader or
    /// a lagging follower serves stale values.
    LocalReads,
    /// Acknowledge a write as soon as it is proposed, before it commits: a
    /// leader that crashes or is deposed loses it.
    AckBeforeCommit,
}

impl HarnessBug {
    /// Whether this bug sends `message` before its `Ready` is persisted.
    fn sends_early(self, message: &Message) -> bool {
        match self {
            HarnessBug::SendPersistedMessagesEarly => true,
            HarnessBug::SendVotesEarly => matches!(
                message.kind,
                MessageType::RequestVote
                    | MessageType::RequestVoteResponse
                    | MessageType::RequestPreVote
                    | MessageType::RequestPreVoteResponse
            ),
            HarnessBug::LocalReads | HarnessBug::AckBeforeCommit => false,
        }
    }
}

/// A partition that waits for the moment Raft is most exposed, instead of
/// striking at a random time: these are the moments the paper's Figure 8
/// needs (a leader that wins but tells no one; a leader cut off right after
/// it decides a commit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Isolation {
    /// Isolate the next node that becomes leader, before its first message.
    NewLeader,
    /// Isolate the next leader to commit for the first time in its term,
    /// before the Ready that announces the commit is sent.
    LeaderAtFirstCommit,
}

/// Which faults are injected.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    /// Delay, drop, duplicate, reorder on the network.
    pub network: NetworkFaults,
    /// Node crashes (also in the middle of a `Ready`) and restarts.
    pub crashes: bool,
    /// Symmetric and one-way partitions, and heals.
    pub partitions: bool,
    /// Adding, removing and promoting nodes, adding learners.
    pub membership: bool,
    /// Snapshots and log compaction.
    pub compaction: bool,
    /// Leadership transfers.
    pub leader_transfer: bool,
    /// Mean virtual milliseconds between fault events (crashes,
    /// partitions, membership changes, leader transfers); `None` for none.
    pub mean_fault_interval_ms: Option<u32>,
}

impl Faults {
    /// Every fault on.
    pub fn all() -> Self {
        Self {
            network: NetworkFaults {
                min_delay_ms: 1,
                max_delay_ms: 20,
                drop_per_mille: 20,
                duplicate_per_mille: 10,
            },
            crashes: true,
            partitions: true,
            membership: true,
            compaction: true,
            leader_transfer: true,
            mean_fault_interval_ms: Some(120),
        }
    }

    /// No fault at all (a healthy cluster).
    pub fn none() -> Self {
        Self {
            network: NetworkFaults::reliable(),
            crashes: false,
            partitions: false,
            membership: false,
            compaction: false,
            leader_transfer: false,
            mean_fault_interval_ms: None,
        }
    }
}

/// Everything that determines a run.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The seed of the run's only random stream.
    pub seed: u64,
    /// Initial voters (3 or 5 in the CLI).
    pub nodes: u64,
    /// Length of the fault phase, in virtual milliseconds.
    pub fault_phase_ms: u64,
    /// Faults to inject.
    pub faults: Faults,
    /// Clients and their operations.
    pub workload: WorkloadConfig,
    /// Raft's limit on entry bytes per append. Small appends split a
    /// backlog over several messages, which opens the windows that
    /// commit-rule bugs need; 1 sends one entry per message.
    pub max_append_bytes: u64,
    /// Raft's pre-vote round (etcd 3.4 defaults to off, later releases on).
    pub pre_vote: bool,
    /// Raft's check-quorum and leader lease. etcd's server always turns it
    /// on; with both it and pre-vote off, a node left in a higher term with
    /// a stale membership can stay cut off for good (it ignores the
    /// leader, and nobody it asks for votes is still a member).
    pub check_quorum: bool,
    /// A harness bug to plant.
    pub harness_bug: Option<HarnessBug>,
    /// A Raft bug to plant (keel-raft's `planted-bugs` feature).
    pub raft_bug: Option<keel_raft::PlantedBug>,
    /// Print every event to stderr.
    pub trace: bool,
}

impl SimConfig {
    /// The default run for `seed` on `nodes` voters: every fault on, 3 s of
    /// faults; check-quorum on, as etcd's server sets it, and pre-vote on
    /// or off as the seed picks.
    pub fn new(seed: u64, nodes: u64) -> Self {
        // A separate stream, so flipping these by hand replays the rest of
        // the run's choices unchanged.
        let mut options = SmallRng::seed_from_u64(seed ^ 0x6b65_656c_2d73_696d);
        Self {
            pre_vote: options.random_bool(0.5),
            max_append_bytes: [1, 256, 64 * 1024][options.random_range(0..3)],
            check_quorum: true,
            seed,
            nodes,
            fault_phase_ms: 3_000,
            faults: Faults::all(),
            workload: WorkloadConfig {
                clients: 4,
                keys: 3,
                timeout_ms: 400,
                max_think_ms: 20,
            },
            harness_bug: None,
            raft_bug: None,
            trace: false,
        }
    }
}

/// Counters of one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Virtual milliseconds simulated (both phases).
    pub virtual_ms: u64,
    /// Client operations in the history.
    pub operations: usize,
    /// Writes and compare-and-sets acknowledged.
    pub acknowledged_changes: usize,
    /// Operations that timed out.
    pub unknown_operations: u64,
    /// Operations refused by a node.
    pub refused_operations: u64,
    /// Messages delivered.
    pub messages_delivered: u64,
    /// Messages lost.
    pub messages_dropped: u64,
    /// Crashes (including in the middle of a `Ready`).
    pub crashes: u64,
    /// Membership changes applied by some node.
    pub conf_changes_applied: u64,
    /// Of those, the ones that entered a joint configuration.
    pub joint_configs_entered: u64,
    /// Snapshots installed from a leader.
    pub snapshots_installed: u64,
    /// Log compactions.
    pub compactions: u64,
    /// Terms that had a leader.
    pub terms_with_leader: usize,
    /// Highest index applied by any node.
    pub max_applied_index: u64,
}

/// The result of one run.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The seed.
    pub seed: u64,
    /// The first property violated, if any.
    pub failure: Option<Failure>,
    /// Counters.
    pub stats: Stats,
}

/// Runs one simulation. Panics inside Raft propagate; see
/// [`run_catching_panics`].
pub fn run(config: &SimConfig) -> RunReport {
    let mut sim = Simulation::new(config.clone());
    let failure = sim.run_to_end().err();
    RunReport {
        seed: config.seed,
        failure,
        stats: sim.stats(),
    }
}

/// Runs one simulation, turning a panic (a Raft invariant assertion, say)
/// into [`Failure::Panic`].
pub fn run_catching_panics(config: &SimConfig) -> RunReport {
    match std::panic::catch_unwind(|| run(config)) {
        Ok(report) => report,
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_string()))
                .unwrap_or_else(|| "non-string panic payload".to_string());
            RunReport {
                seed: config.seed,
                failure: Some(Failure::Panic(message)),
                stats: Stats::default(),
            }
        }
    }
}

/// A client request a node accepted and will answer.
#[derive(Debug, Clone, Copy)]
struct Pending {
    client: usize,
    key: u64,
}

/// A live node: Raft, the state machine, and the requests it must answer.
struct Node {
    raw: RawNode<MemStorage>,
    registers: Registers,
    applied: u64,
    /// Index of the snapshot in storage (compaction may lag behind it).
    snapshot_index: u64,
    role: StateRole,
    leader_id: NodeId,
    term: u64,
    /// Changes proposed through this node, by request id.
    pending_changes: BTreeMap<u64, Pending>,
    /// Reads waiting for leadership confirmation, by request id.
    pending_reads: BTreeMap<u64, Pending>,
    /// Confirmed reads waiting for `applied` to reach their index.
    confirmed_reads: Vec<(u64, u64, Pending)>,
    /// Crash in the middle of the next `Ready` that has something to
    /// persist.
    crash_in_next_ready: bool,
}

impl Node {
    fn pending_requests(&self) -> usize {
        self.pending_changes.len() + self.pending_reads.len() + self.confirmed_reads.len()
    }
}

enum Slot {
    Running(Box<Node>),
    Crashed {
        disk: Box<MemStorage>,
        restart_at_ms: u64,
    },
    Removed,
}

struct Simulation {
    config: SimConfig,
    rng: SmallRng,
    now_ms: u64,
    net: Network<Message>,
    slots: BTreeMap<NodeId, Slot>,
    /// For each node seen in a leader's applied membership, the highest
    /// applied index at which it was seen there.
    member_at: BTreeMap<NodeId, u64>,
    next_node_id: NodeId,
    workload: Workload,
    ledger: Ledger,
    stats: Stats,
    quiescing: bool,
    armed_isolations: BTreeSet<Isolation>,
}

impl Simulation {
    fn new(config: SimConfig) -> Self {
        assert!(config.nodes >= 1, "a cluster needs at least one node");
        let mut rng = SmallRng::seed_from_u64(config.seed);
        let workload = Workload::new(config.workload, &mut rng);
        let voters: Vec<NodeId> = (1..=config.nodes).collect();
        let mut sim = Self {
            net: Network::new(config.faults.network, NETWORK_CAPACITY),
            rng,
            now_ms: 0,
            slots: BTreeMap::new(),
            member_at: voters.iter().map(|&id| (id, 1)).collect(),
            next_node_id: config.nodes + 1,
            workload,
            ledger: Ledger::new(),
            stats: Stats::default(),
            quiescing: false,
            armed_isolations: BTreeSet::new(),
            config,
        };
        // Every initial node starts from the same snapshot at index 1 that
        // holds the membership, so nodes added later learn it from a
        // snapshot like any other state.
        let bootstrap = Snapshot {
            metadata: SnapshotMetadata {
                index: 1,
                term: 1,
                conf_state: ConfState {
                    voters: voters.clone(),
                    ..ConfState::default()
                },
            },
            data: Registers::new().encode(),
        };
        for &id in &voters {
            let mut disk = MemStorage::new();
            disk.apply_snapshot(bootstrap.clone())
                .expect("a fresh storage accepts any snapshot above index 0");
            sim.start(id, disk);
        }
        sim
    }

    fn trace(&self, what: impl FnOnce() -> String) {
        if self.config.trace {
            eprintln!("[{:>6} ms] {}", self.now_ms, what());
        }
    }

    fn raft_config(&self, id: NodeId, applied: u64) -> Config {
        let mut c = Config::new(id);
        c.election_tick = ELECTION_TICKS;
        c.heartbeat_tick = HEARTBEAT_TICKS;
        c.applied = applied;
        c.seed = self.config.seed;
        c.max_size_per_msg = self.config.max_append_bytes;
        c.max_inflight_msgs = 16;
        c.max_pending_read_index = 256;
        c.pre_vote = self.config.pre_vote;
        c.check_quorum = self.config.check_quorum;
        c.planted_bug = self.config.raft_bug;
        c
    }

    /// Starts node `id` from what `disk` holds.
    fn start(&mut self, id: NodeId, mut disk: MemStorage) {
        let snapshot = disk
            .snapshot(0)
            .expect("MemStorage always returns its latest snapshot");
        // Entries after the snapshot are applied again, membership changes
        // included, so the membership restarts from the snapshot's.
        disk.set_conf_state(snapshot.metadata.conf_state.clone());
        let registers = if snapshot.is_empty() {
            Registers::new()
        } else {
            Registers::decode(&snapshot.data).expect("snapshots are written by this harness")
        };
        let applied = snapshot.metadata.index;
        let term = disk.hard_state().term;
        let raw = RawNode::new(&self.raft_config(id, applied), disk)
            .expect("the harness builds valid configurations");
        self.trace(|| format!("node {id} starts at applied {applied}, term {term}"));
        self.slots.insert(
            id,
            Slot::Running(Box::new(Node {
                raw,
                registers,
                applied,
                snapshot_index: applied,
                role: StateRole::Follower,
                leader_id: 0,
                term,
                pending_changes: BTreeMap::new(),
                pending_reads: BTreeMap::new(),
                confirmed_reads: Vec::new(),
                crash_in_next_ready: false,
            })),
        );
    }

    fn node(&mut self, id: NodeId) -> Option<&mut Node> {
        match self.slots.get_mut(&id) {
            Some(Slot::Running(node)) => Some(node),
            _ => None,
        }
    }

    fn running(&self) -> Vec<NodeId> {
        self.slots
            .iter()
            .filter(|(_, s)| matches!(s, Slot::Running(_)))
            .map(|(&id, _)| id)
            .collect()
    }

    fn crashed(&self) -> Vec<NodeId> {
        self.slots
            .iter()
            .filter(|(_, s)| matches!(s, Slot::Crashed { .. }))
            .map(|(&id, _)| id)
            .collect()
    }

    /// The running node that leads the highest term, if any.
    fn leader(&self) -> Option<NodeId> {
        self.slots
            .iter()
            .filter_map(|(&id, s)| match s {
                Slot::Running(n) if n.role == StateRole::Leader => Some((n.term, id)),
                _ => None,
            })
            .max()
            .map(|(_, id)| id)
    }

    fn members(conf: &ConfState) -> BTreeSet<NodeId> {
        conf.voters
            .iter()
            .chain(&conf.learners)
            .chain(&conf.voters_outgoing)
            .copied()
            .collect()
    }

    fn run_to_end(&mut self) -> Result<(), Failure> {
        let fault_end = self.config.fault_phase_ms;
        while self.now_ms < fault_end {
            self.step_ms()?;
        }
        self.start_quiesce();
        let deadline = self.now_ms + QUIESCE_LIMIT_MS;
        loop {
            self.step_ms()?;
            if self.now_ms.is_multiple_of(TICK_MS) && self.converged() {
                break;
            }
            if self.now_ms >= deadline {
                // A cluster stuck after healing may be hiding a safety
                // violation; the history says more than "stuck".
                self.check_history()?;
                return Err(Failure::NoConvergence {
                    ms: QUIESCE_LIMIT_MS,
                });
            }
        }
        self.final_checks()
    }

    fn step_ms(&mut self) -> Result<(), Failure> {
        self.now_ms += 1;
        if !self.quiescing {
            self.maybe_fault();
        }
        self.restart_due();
        self.net.heal_expired(self.now_ms);
        while let Some(envelope) = self.net.pop_due(self.now_ms) {
            self.deliver(envelope);
        }
        for id in self.running() {
            if (self.now_ms + id * 3).is_multiple_of(TICK_MS)
                && let Some(node) = self.node(id)
            {
                node.raw.tick();
            }
        }
        self.drive_clients();
        for id in self.running() {
            self.process_readies(id)?;
        }
        if self.now_ms.is_multiple_of(LOG_CHECK_EVERY_MS) {
            self.check_logs()?;
            self.retire_removed();
            self.leave_joint();
        }
        Ok(())
    }

    fn deliver(&mut self, envelope: Envelope<Message>) {
        let to = envelope.to;
        let kind = envelope.message.kind;
        if self.config.trace {
            let m = &envelope.message;
            self.trace(|| {
                format!(
                    "deliver {kind:?} {} -> {to} term {} index {} log_term {} commit {} entries {} reject {}",
                    envelope.from, m.term, m.index, m.log_term, m.commit, m.entries.len(), m.reject
                )
            });
        }
        let Some(node) = self.node(to) else {
            return;
        };
        // Errors here are expected under faults: responses from nodes no
        // longer tracked, proposals forwarded to a node that lost leadership.
        if let Err(e) = node.raw.step(envelope.message) {
            self.trace(|| format!("node {to} rejects {kind:?} from {}: {e}", envelope.from));
        }
    }

    fn send_all(&mut self, from: NodeId, messages: Vec<Message>) -> Result<(), Failure> {
        for message in messages {
            let to = message.to;
            let snapshot_index = message.snapshot.as_ref().map(|s| s.metadata.index);
            let sent = self
                .net
                .send(&mut self.rng, self.now_ms, Envelope { from, to, message });
            if let Some(index) = snapshot_index {
                if let Some(node) = self.node(from) {
                    let status = if sent {
                        SnapshotStatus::Finish
                    } else {
                        SnapshotStatus::Failure
                    };
                    node.raw.report_snapshot(to, status);
                }
                self.refresh_snapshot(from, index)?;
            }
        }
        Ok(())
    }

    fn process_readies(&mut self, id: NodeId) -> Result<(), Failure> {
        for _ in 0..MAX_READIES_PER_MS {
            let Some(node) = self.node(id) else {
                return Ok(());
            };
            if !node.raw.has_ready() {
                return Ok(());
            }
            let rd = node.raw.ready();
            self.handle_ready(id, rd)?;
        }
        Ok(())
    }

    fn handle_ready(&mut self, id: NodeId, mut rd: Ready) -> Result<(), Failure> {
        let node = self
            .node(id)
            .expect("handle_ready is called for running nodes");
        if let Some(ss) = rd.soft_state {
            node.role = ss.role;
            node.leader_id = ss.leader_id;
        }
        if let Some(hs) = rd.hard_state {
            node.term = hs.term;
        }
        // An armed crash strikes while a Ready is being made durable.
        let crash_now = node.crash_in_next_ready && rd.must_sync;
        node.crash_in_next_ready &= !crash_now;
        let became_leader = rd.soft_state.is_some_and(|ss| ss.role == StateRole::Leader);
        // A leader's first commit in its term is when entries of earlier
        // terms become committed.
        let first_commit_of_term = node.role == StateRole::Leader
            && rd.hard_state.is_some_and(|hs| {
                let before = node.raw.storage().hard_state().commit;
                hs.commit > before && node.raw.storage().term(before).is_ok_and(|t| t < hs.term)
            });
        if let Some(ss) = rd.soft_state {
            let term = node.term;
            self.trace(|| {
                format!(
                    "node {id} is {:?} in term {term}, leader {}",
                    ss.role, ss.leader_id
                )
            });
        }
        let strikes = [
            (Isolation::NewLeader, became_leader),
            (Isolation::LeaderAtFirstCommit, first_commit_of_term),
        ];
        for (isolation, now) in strikes {
            if now && self.armed_isolations.remove(&isolation) {
                let others: Vec<NodeId> =
                    self.live_ids().into_iter().filter(|&o| o != id).collect();
                self.trace(|| format!("{isolation:?} strikes: partition [{id}] | {others:?}"));
                let until = self.now_ms + self.partition_length_ms();
                self.net.partition(&[id], &others, until);
            }
        }

        // 1. Messages that need no persistence go out at once.
        let messages = std::mem::take(&mut rd.messages);
        self.send_all(id, messages)?;
        if let Some(bug) = self.config.harness_bug {
            let (early, later) = std::mem::take(&mut rd.persisted_messages)
                .into_iter()
                .partition(|m| bug.sends_early(m));
            rd.persisted_messages = later;
            self.send_all(id, early)?;
        }
        if crash_now {
            // A torn write: the crash interrupts the write of the Ready's
            // entries, so some prefix of them reaches the disk, but neither
            // the hard state written after them nor a snapshot. Nothing was
            // promised about them yet: `persisted_messages` were not sent.
            let torn = if rd.snapshot.is_none() && !rd.entries.is_empty() {
                self.rng.random_range(0..=rd.entries.len())
            } else {
                0
            };
            self.trace(|| {
                format!(
                    "node {id} crashes in the middle of Ready {}, {torn} of its {} entries written",
                    rd.number,
                    rd.entries.len()
                )
            });
            let node = self.node(id).expect("still running");
            node.raw
                .storage_mut()
                .append(&rd.entries[..torn])
                .map_err(|e| Failure::Contract {
                    node: id,
                    what: format!("entries not appendable: {e}"),
                })?;
            self.crash(id);
            return Ok(());
        }

        // 2–3. Persist snapshot, entries, hard state.
        let node = self.node(id).expect("still running");
        if let Some(snapshot) = &rd.snapshot {
            let index = snapshot.metadata.index;
            node.registers = Registers::decode(&snapshot.data).map_err(|e| Failure::Contract {
                node: id,
                what: format!("snapshot at {index} has undecodable data: {e}"),
            })?;
            node.raw
                .storage_mut()
                .apply_snapshot(snapshot.clone())
                .map_err(|e| Failure::Contract {
                    node: id,
                    what: format!("snapshot at {index} not applicable: {e}"),
                })?;
            node.applied = index;
            node.snapshot_index = index;
            self.stats.snapshots_installed += 1;
            self.trace(|| format!("node {id} installs a snapshot at index {index}"));
        }
        let node = self.node(id).expect("still running");
        node.raw
            .storage_mut()
            .append(&rd.entries)
            .map_err(|e| Failure::Contract {
                node: id,
                what: format!("entries not appendable: {e}"),
            })?;
        if let Some(hs) = rd.hard_state {
            node.raw.storage_mut().set_hard_state(hs);
        }
        if node.role == StateRole::Leader {
            let term = node.term;
            let Some(Slot::Running(node)) = self.slots.get(&id) else {
                unreachable!("node {id} was running a moment ago");
            };
            self.ledger.observe_leader(term, id, node.raw.storage())?;
        }

        // 4. Messages that promise durability.
        let persisted = std::mem::take(&mut rd.persisted_messages);
        self.send_all(id, persisted)?;

        // 5. Apply, serve reads.
        // `advance` needs the committed entries back to know what was applied.
        let committed = std::mem::take(&mut rd.committed_entries);
        for entry in &committed {
            self.apply(id, entry)?;
        }
        rd.committed_entries = committed;
        let node = self.node(id).expect("still running");
        for rs in std::mem::take(&mut rd.read_states) {
            let Ok(bytes) = <[u8; 8]>::try_from(rs.request_ctx.as_slice()) else {
                return Err(Failure::Contract {
                    node: id,
                    what: format!("read state with foreign context {:?}", rs.request_ctx),
                });
            };
            let request = u64::from_le_bytes(bytes);
            if let Some(pending) = node.pending_reads.remove(&request) {
                node.confirmed_reads.push((rs.index, request, pending));
            }
        }
        self.serve_reads(id);

        // 6. Advance, then maybe compact.
        let node = self.node(id).expect("still running");
        node.raw.advance(rd);
        self.maybe_compact(id)
    }

    fn apply(&mut self, id: NodeId, entry: &Entry) -> Result<(), Failure> {
        let node = self.node(id).expect("apply is called for running nodes");
        if entry.index != node.applied + 1 {
            return Err(Failure::Contract {
                node: id,
                what: format!(
                    "committed entry {} handed out after applied index {}",
                    entry.index, node.applied
                ),
            });
        }
        node.applied = entry.index;
        self.ledger.record_apply(id, entry)?;
        let node = self.node(id).expect("still running");
        match entry.kind {
            EntryKind::Normal if is_command(entry) => {
                let command = Command::decode(&entry.data).map_err(|e| Failure::Contract {
                    node: id,
                    what: format!("entry {} is not a command: {e}", entry.index),
                })?;
                let applied = node.registers.apply(&command);
                let request = command.request();
                let output = match applied {
                    Applied::Written => RegisterOutput::Written,
                    Applied::Swapped(swapped) => RegisterOutput::CompareAndSet(swapped),
                    Applied::Duplicate => return Ok(()),
                };
                if let Some(pending) = node.pending_changes.remove(&request) {
                    let hint = node.leader_id;
                    self.trace(|| format!("node {id} answers request {request}: {output:?}"));
                    self.workload.answer(
                        pending.client,
                        request,
                        output,
                        hint,
                        &mut self.rng,
                        self.now_ms,
                    );
                }
            }
            EntryKind::Normal => {}
            EntryKind::ConfChange => {
                let cc = ConfChange::decode(&entry.data).map_err(|e| Failure::Contract {
                    node: id,
                    what: format!("entry {} is not a conf change: {e}", entry.index),
                })?;
                let conf = node
                    .raw
                    .apply_conf_change(&cc)
                    .map_err(|e| Failure::Contract {
                        node: id,
                        what: format!("conf change at {} rejected: {e}", entry.index),
                    })?;
                node.raw.storage_mut().set_conf_state(conf.clone());
                self.stats.conf_changes_applied += 1;
                self.stats.joint_configs_entered += u64::from(!conf.voters_outgoing.is_empty());
                self.trace(|| format!("node {id} applies {cc:?} -> {conf:?}"));
            }
        }
        Ok(())
    }

    fn serve_reads(&mut self, id: NodeId) {
        let Some(node) = self.node(id) else {
            return;
        };
        let applied = node.applied;
        let (ready, waiting): (Vec<_>, Vec<_>) = node
            .confirmed_reads
            .drain(..)
            .partition(|&(index, _, _)| index <= applied);
        node.confirmed_reads = waiting;
        let answers: Vec<_> = ready
            .into_iter()
            .map(|(_, request, p)| (p.client, request, node.registers.read(p.key)))
            .collect();
        let hint = node.leader_id;
        for (client, request, value) in answers {
            self.workload.answer(
                client,
                request,
                RegisterOutput::Read(value),
                hint,
                &mut self.rng,
                self.now_ms,
            );
        }
    }

    /// Snapshots and compacts the log every [`COMPACT_AFTER_ENTRIES`] applied
    /// entries.
    fn maybe_compact(&mut self, id: NodeId) -> Result<(), Failure> {
        if !self.config.faults.compaction {
            return Ok(());
        }
        let node = self
            .node(id)
            .expect("maybe_compact is called for running nodes");
        let first = node
            .raw
            .storage()
            .first_index()
            .expect("MemStorage::first_index never fails");
        let applied = node.applied;
        if applied < first + COMPACT_AFTER_ENTRIES || applied <= node.snapshot_index {
            return Ok(());
        }
        node.snapshot_index = applied;
        let data = node.registers.encode();
        let storage = node.raw.storage_mut();
        storage
            .create_snapshot(applied, None, data)
            .and_then(|_| storage.compact(applied))
            .map_err(|e| Failure::Contract {
                node: id,
                what: format!("cannot snapshot at applied index {applied}: {e}"),
            })?;
        self.stats.compactions += 1;
        self.trace(|| format!("node {id} compacts its log up to {applied}"));
        Ok(())
    }

    /// After a leader sent a snapshot older than its applied state, takes a
    /// fresh one (without compacting) for the next attempt, so the follower
    /// catches up to a recent state rather than replaying a long tail; etcd's
    /// server likewise sends a snapshot built from its current state.
    fn refresh_snapshot(&mut self, id: NodeId, sent_index: u64) -> Result<(), Failure> {
        let Some(node) = self.node(id) else {
            return Ok(());
        };
        let applied = node.applied;
        if applied <= node.snapshot_index.max(sent_index) {
            return Ok(());
        }
        node.snapshot_index = applied;
        let data = node.registers.encode();
        node.raw
            .storage_mut()
            .create_snapshot(applied, None, data)
            .map_err(|e| Failure::Contract {
                node: id,
                what: format!("cannot snapshot at applied index {applied}: {e}"),
            })?;
        self.trace(|| format!("node {id} takes a fresh snapshot at {applied} to send"));
        Ok(())
    }

    fn crash(&mut self, id: NodeId) {
        let Some(Slot::Running(node)) = self.slots.remove(&id) else {
            unreachable!("only running nodes crash");
        };
        let disk = Box::new(node.raw.storage().clone());
        let downtime = self.rng.random_range(5..=400);
        self.slots.insert(
            id,
            Slot::Crashed {
                disk,
                restart_at_ms: self.now_ms + downtime,
            },
        );
        self.stats.crashes += 1;
    }

    fn restart_due(&mut self) {
        let due: Vec<NodeId> = self
            .slots
            .iter()
            .filter(|(_, s)| {
                matches!(s, Slot::Crashed { restart_at_ms, .. } if *restart_at_ms <= self.now_ms)
            })
            .map(|(&id, _)| id)
            .collect();
        for id in due {
            let Some(Slot::Crashed { disk, .. }) = self.slots.remove(&id) else {
                unreachable!("filtered on crashed slots");
            };
            self.start(id, *disk);
        }
    }

    /// Stops nodes whose removal is committed: they were in a leader's
    /// applied membership at some index, and the current leader applied
    /// past that index to a membership without them. (Comparing indexes
    /// matters: a new leader may not have applied a node's addition yet.)
    fn retire_removed(&mut self) {
        let Some(leader) = self.leader() else {
            return;
        };
        let Some(Slot::Running(l)) = self.slots.get(&leader) else {
            unreachable!("leader() returns running nodes");
        };
        let conf = l.raw.storage().conf_state();
        let applied = l.applied;
        let members = Self::members(conf);
        for &id in &members {
            let seen = self.member_at.entry(id).or_insert(applied);
            *seen = (*seen).max(applied);
        }
        if !conf.voters_outgoing.is_empty() {
            return;
        }
        let gone: Vec<NodeId> = self
            .slots
            .iter()
            .filter(|(id, s)| {
                !matches!(s, Slot::Removed)
                    && !members.contains(id)
                    && self.member_at.get(id).is_some_and(|&at| at < applied)
            })
            .map(|(&id, _)| id)
            .collect();
        for id in gone {
            self.trace(|| format!("node {id} was removed from the cluster; stopping it"));
            self.slots.insert(id, Slot::Removed);
        }
    }

    fn drive_clients(&mut self) {
        for abandoned in self.workload.expire(&mut self.rng, self.now_ms) {
            if let Some(node) = self.node(abandoned.node) {
                node.pending_changes.remove(&abandoned.request);
                node.pending_reads.remove(&abandoned.request);
                node.confirmed_reads
                    .retain(|&(_, request, _)| request != abandoned.request);
            }
        }
        let invocations = self.workload.due(&mut self.rng, self.now_ms);
        let running = self.running();
        let local_reads = self.config.harness_bug == Some(HarnessBug::LocalReads);
        let early_acks = self.config.harness_bug == Some(HarnessBug::AckBeforeCommit);
        for inv in invocations {
            let target = match inv.preferred_node {
                Some(n) if running.contains(&n) => n,
                _ if running.is_empty() => {
                    self.workload
                        .refused(inv.client, &mut self.rng, self.now_ms);
                    continue;
                }
                _ => running[self.rng.random_range(0..running.len())],
            };
            let node = self.node(target).expect("target is running");
            if let (true, Request::Read { request, key }) = (local_reads, inv.request) {
                let value = node.registers.read(key);
                let hint = node.leader_id;
                self.workload
                    .sent(inv.client, inv.request, target, self.now_ms);
                self.workload.answer(
                    inv.client,
                    request,
                    RegisterOutput::Read(value),
                    hint,
                    &mut self.rng,
                    self.now_ms,
                );
                continue;
            }
            if node.pending_requests() >= MAX_PENDING_REQUESTS {
                self.workload
                    .refused(inv.client, &mut self.rng, self.now_ms);
                continue;
            }
            let (result, key) = match inv.request {
                Request::Read { request, key } => {
                    (node.raw.read_index(request.to_le_bytes().to_vec()), key)
                }
                Request::Change(command) => (
                    node.raw.propose(command.encode()),
                    match command {
                        Command::Write { key, .. } | Command::CompareAndSet { key, .. } => key,
                    },
                ),
            };
            match result {
                Ok(()) => {
                    let pending = Pending {
                        client: inv.client,
                        key,
                    };
                    match inv.request {
                        Request::Read { request, .. } => {
                            node.pending_reads.insert(request, pending);
                        }
                        Request::Change(command) => {
                            node.pending_changes.insert(command.request(), pending);
                        }
                    }
                    let hint = node.leader_id;
                    self.workload
                        .sent(inv.client, inv.request, target, self.now_ms);
                    if let (true, Request::Change(Command::Write { request, .. })) =
                        (early_acks, inv.request)
                    {
                        self.workload.answer(
                            inv.client,
                            request,
                            RegisterOutput::Written,
                            hint,
                            &mut self.rng,
                            self.now_ms,
                        );
                    }
                }
                Err(e) => {
                    self.trace(|| format!("node {target} refuses {:?}: {e}", inv.request));
                    self.workload
                        .refused(inv.client, &mut self.rng, self.now_ms);
                }
            }
        }
    }

    fn maybe_fault(&mut self) {
        let faults = self.config.faults;
        let Some(interval_ms) = faults.mean_fault_interval_ms else {
            return;
        };
        if !self.rng.random_ratio(1, interval_ms.max(1)) {
            return;
        }
        match self.rng.random_range(0..8) {
            0 | 1 if faults.crashes => self.fault_crash(),
            2 if faults.partitions => self.fault_partition(),
            3 if faults.partitions => self.fault_one_way(),
            4 if faults.partitions => {
                self.trace(|| "network heals".to_string());
                self.net.heal();
            }
            5 | 6 if faults.membership => self.fault_membership(),
            7 if faults.leader_transfer => self.fault_transfer(),
            _ => {}
        }
    }

    fn fault_crash(&mut self) {
        let running = self.running();
        // Keep a majority of the initial size up, so the cluster can make
        // progress most of the time.
        let crashed = self.crashed().len() as u64;
        if running.is_empty() || crashed >= (self.config.nodes - 1) / 2 {
            return;
        }
        // Half the time the leader: its uncommitted tail is what the
        // commit rules are about.
        let victim = match self.leader() {
            Some(leader) if self.rng.random_bool(0.5) => leader,
            _ => running[self.rng.random_range(0..running.len())],
        };
        if self.rng.random_bool(0.5) {
            self.trace(|| format!("node {victim} crashes"));
            self.crash(victim);
        } else {
            self.trace(|| format!("node {victim} will crash in its next Ready"));
            if let Some(node) = self.node(victim) {
                node.crash_in_next_ready = true;
            }
        }
    }

    fn live_ids(&self) -> Vec<NodeId> {
        self.slots
            .iter()
            .filter(|(_, s)| !matches!(s, Slot::Removed))
            .map(|(&id, _)| id)
            .collect()
    }

    fn fault_partition(&mut self) {
        let mut ids = self.live_ids();
        if ids.len() < 2 {
            return;
        }
        match self.rng.random_range(0..4) {
            0 => {
                self.trace(|| "armed: isolate the next new leader".to_string());
                self.armed_isolations.insert(Isolation::NewLeader);
                return;
            }
            1 => {
                self.trace(|| "armed: isolate the next leader at its first commit".to_string());
                self.armed_isolations.insert(Isolation::LeaderAtFirstCommit);
                return;
            }
            _ => {}
        }
        // Fisher–Yates with the run's stream.
        for i in (1..ids.len()).rev() {
            let j = self.rng.random_range(0..=i);
            ids.swap(i, j);
        }
        // Half the time the leader alone, which keeps taking writes until
        // check-quorum retires it.
        if let Some(leader) = self.leader()
            && self.rng.random_bool(0.5)
        {
            let at = ids
                .iter()
                .position(|&id| id == leader)
                .expect("the leader is live");
            ids.swap(0, at);
            let (group, others) = ids.split_at(1);
            let until = self.now_ms + self.partition_length_ms();
            self.trace(|| format!("partition {group:?} | {others:?} until {until} ms"));
            self.net.partition(group, others, until);
            return;
        }
        let split = self.rng.random_range(1..=ids.len() / 2);
        let (group, others) = ids.split_at(split);
        let until = self.now_ms + self.partition_length_ms();
        self.trace(|| format!("partition {group:?} | {others:?} until {until} ms"));
        self.net.partition(group, others, until);
    }

    /// How long a partition lasts unless a heal comes first.
    fn partition_length_ms(&mut self) -> u64 {
        self.rng.random_range(20..=800)
    }

    fn fault_one_way(&mut self) {
        let ids = self.live_ids();
        if ids.len() < 2 {
            return;
        }
        let from = ids[self.rng.random_range(0..ids.len())];
        let to = ids[self.rng.random_range(0..ids.len())];
        if from != to {
            let until = self.now_ms + self.partition_length_ms();
            self.trace(|| format!("one-way cut {from} -> {to} until {until} ms"));
            self.net.cut(from, to, until);
        }
    }

    /// Proposes a membership change on the leader: add a voter or a learner
    /// (a fresh node), promote or remove a learner, remove a voter, or
    /// replace a voter through joint consensus (leaving it automatically or,
    /// with the explicit transition, when [`Simulation::leave_joint`]
    /// proposes it).
    fn fault_membership(&mut self) {
        let Some(leader) = self.leader() else {
            return;
        };
        let Some(Slot::Running(l)) = self.slots.get(&leader) else {
            unreachable!("leader() returns running nodes");
        };
        let conf = l.raw.storage().conf_state().clone();
        if !conf.voters_outgoing.is_empty() {
            return;
        }
        let fresh = self.next_node_id;
        let can_add = fresh <= self.config.nodes + MAX_EXTRA_NODES
            && (conf.voters.len() + conf.learners.len()) < self.config.nodes as usize + 2;
        let can_remove_voter = conf.voters.len() > self.config.nodes.min(3) as usize;
        let single = |kind, id| vec![ConfChangeSingle { kind, node_id: id }];
        let mut options: Vec<Vec<ConfChangeSingle>> = Vec::new();
        if can_add {
            options.push(single(ConfChangeType::AddLearner, fresh));
            options.push(single(ConfChangeType::AddNode, fresh));
            for &v in &conf.voters {
                let mut replace = single(ConfChangeType::AddNode, fresh);
                replace.extend(single(ConfChangeType::RemoveNode, v));
                options.push(replace);
            }
        }
        for &l in &conf.learners {
            options.push(single(ConfChangeType::AddNode, l));
            options.push(single(ConfChangeType::RemoveNode, l));
        }
        if can_remove_voter {
            for &v in &conf.voters {
                options.push(single(ConfChangeType::RemoveNode, v));
            }
        }
        if options.is_empty() {
            return;
        }
        let changes = options.swap_remove(self.rng.random_range(0..options.len()));
        let transition = [
            ConfChangeTransition::Auto,
            ConfChangeTransition::Implicit,
            ConfChangeTransition::Explicit,
        ][self.rng.random_range(0..3)];
        let adds_fresh = changes.iter().any(|c| c.node_id == fresh);
        let cc = ConfChange {
            transition,
            changes,
            context: Vec::new(),
        };
        self.trace(|| format!("leader {leader} proposes {cc:?}"));
        let node = self.node(leader).expect("leader is running");
        let result = node.raw.propose_conf_change(cc);
        self.trace(|| format!("... {result:?}"));
        if result.is_ok() && adds_fresh {
            self.next_node_id += 1;
            self.start(fresh, MemStorage::new());
        }
    }

    /// Proposes leaving a joint configuration that does not leave by
    /// itself (the explicit transition).
    fn leave_joint(&mut self) {
        let Some(leader) = self.leader() else {
            return;
        };
        let node = self.node(leader).expect("leader is running");
        let conf = node.raw.storage().conf_state();
        if conf.voters_outgoing.is_empty() || conf.auto_leave {
            return;
        }
        let result = node.raw.propose_conf_change(ConfChange::leave_joint());
        self.trace(|| {
            format!("leader {leader} proposes to leave the joint configuration: {result:?}")
        });
    }

    fn fault_transfer(&mut self) {
        let Some(leader) = self.leader() else {
            return;
        };
        let Some(Slot::Running(l)) = self.slots.get(&leader) else {
            unreachable!("leader() returns running nodes");
        };
        let voters = l.raw.storage().conf_state().voters.clone();
        if voters.len() < 2 {
            return;
        }
        let to = voters[self.rng.random_range(0..voters.len())];
        if to == leader {
            return;
        }
        let node = self.node(leader).expect("leader is running");
        let result = node.raw.transfer_leader(to);
        self.trace(|| format!("leader {leader} transfers to {to}: {result:?}"));
    }

    fn start_quiesce(&mut self) {
        self.trace(|| "faults stop; healing and restarting everything".to_string());
        self.quiescing = true;
        self.armed_isolations.clear();
        self.net.heal();
        self.net.set_faults(NetworkFaults {
            min_delay_ms: 1,
            max_delay_ms: 5,
            drop_per_mille: 0,
            duplicate_per_mille: 0,
        });
        for id in self.crashed() {
            let Some(Slot::Crashed { disk, .. }) = self.slots.remove(&id) else {
                unreachable!("crashed() returns crashed slots");
            };
            self.start(id, *disk);
        }
        for id in self.running() {
            if let Some(node) = self.node(id) {
                node.crash_in_next_ready = false;
            }
        }
        self.workload.stop();
    }

    /// Whether a leader exists, no client waits, and every member has
    /// applied everything in the leader's log.
    fn converged(&mut self) -> bool {
        if self.workload.has_outstanding() {
            return false;
        }
        self.retire_removed();
        let Some(leader) = self.leader() else {
            return false;
        };
        let Some(Slot::Running(l)) = self.slots.get(&leader) else {
            unreachable!("leader() returns running nodes");
        };
        let last = l
            .raw
            .storage()
            .last_index()
            .expect("MemStorage::last_index never fails");
        let conf = l.raw.storage().conf_state();
        if !conf.voters_outgoing.is_empty() {
            return false;
        }
        Self::members(conf).iter().all(|id| {
            matches!(self.slots.get(id), Some(Slot::Running(n)) if n.applied == last && n.raw.storage().hard_state().commit == last)
        })
    }

    fn check_logs(&self) -> Result<(), Failure> {
        let logs: Vec<(NodeId, &MemStorage)> = self
            .slots
            .iter()
            .filter_map(|(&id, s)| match s {
                Slot::Running(n) => Some((id, n.raw.storage())),
                Slot::Crashed { disk, .. } => Some((id, &**disk)),
                Slot::Removed => None,
            })
            .collect();
        check_log_matching(&logs)
    }

    fn final_checks(&mut self) -> Result<(), Failure> {
        self.check_logs()?;
        let running: Vec<(NodeId, &Node)> = self
            .slots
            .iter()
            .filter_map(|(&id, s)| match s {
                Slot::Running(n) => Some((id, &**n)),
                _ => None,
            })
            .collect();
        let leader = self.leader().expect("converged implies a leader");
        let Some(Slot::Running(l)) = self.slots.get(&leader) else {
            unreachable!("leader() returns running nodes");
        };
        let members = Self::members(l.raw.storage().conf_state());
        let converged: Vec<&(NodeId, &Node)> = running
            .iter()
            .filter(|(id, _)| members.contains(id))
            .collect();
        let Some((&&(first_id, first), rest)) = converged.split_first() else {
            unreachable!("converged() saw every member of a non-empty membership running");
        };
        for &&(id, node) in rest {
            if node.registers != first.registers {
                return Err(Failure::Diverged {
                    a: first_id,
                    b: id,
                    index: node.applied,
                });
            }
        }
        for &request in self.workload.acknowledged_changes() {
            if !first.registers.has_applied(request) {
                return Err(Failure::LostWrite {
                    request,
                    node: first_id,
                });
            }
        }
        self.check_history()
    }

    fn check_history(&self) -> Result<(), Failure> {
        let model = Register::<u64, u64>::new();
        match linearizability::check(&model, self.workload.history(), CheckOptions::default()) {
            CheckResult::Linearizable => Ok(()),
            CheckResult::NotLinearizable(v) => Err(Failure::NotLinearizable(Box::new(v))),
            CheckResult::Inconclusive { partition } => {
                Err(Failure::CheckInconclusive { partition })
            }
        }
    }

    fn stats(&self) -> Stats {
        let mut s = self.stats.clone();
        s.virtual_ms = self.now_ms;
        s.operations = self.workload.history().len();
        s.acknowledged_changes = self.workload.acknowledged_changes().len();
        s.unknown_operations = self.workload.unknown();
        s.refused_operations = self.workload.refused_count();
        s.messages_delivered = self.net.delivered();
        s.messages_dropped = self.net.dropped();
        s.terms_with_leader = self.ledger.terms_with_leader();
        s.max_applied_index = self.ledger.max_applied();
        s
    }
}
