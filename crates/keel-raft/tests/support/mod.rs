//! An in-memory network of `RawNode<MemStorage>` for the Raft tests: it follows the `Ready`
//! contract exactly (persist, then send persisted messages, then apply, then advance) and
//! delivers messages in FIFO order, with optional cut links, random loss and filters.

// Each test binary uses a different subset of the helpers.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use keel_raft::{
    ConfChange, ConfState, Config, Entry, EntryKind, HardState, MemStorage, Message, MessageType,
    NodeId, RawNode, ReadState, Ready, StateRole, Status,
};

/// Upper bound on delivery rounds in one `stabilize`, so a livelock fails the test instead
/// of hanging it.
const MAX_STABILIZE_STEPS: usize = 200_000;

/// A test config: etcd's defaults but without pre-vote and check-quorum (the paper's
/// algorithm); tests turn them on where they test them.
pub fn config(id: NodeId) -> Config {
    let mut c = Config::new(id);
    c.pre_vote = false;
    c.check_quorum = false;
    c.seed = 7;
    c
}

pub fn voters(ids: &[NodeId]) -> ConfState {
    ConfState {
        voters: ids.to_vec(),
        ..ConfState::default()
    }
}

pub fn ent(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        ..Entry::default()
    }
}

pub struct TestNode {
    pub raw: RawNode<MemStorage>,
    pub config: Config,
    /// Every entry applied, in order (including no-ops and conf changes).
    pub applied: Vec<Entry>,
    pub applied_index: u64,
    pub reads: Vec<ReadState>,
    /// Snapshot indexes installed.
    pub snapshots: Vec<u64>,
    /// Highest hard-state term persisted (must never decrease).
    pub persisted_term: u64,
}

impl TestNode {
    pub fn status(&self) -> Status {
        self.raw.status()
    }

    /// Application payloads applied, in order.
    pub fn applied_data(&self) -> Vec<Vec<u8>> {
        self.applied
            .iter()
            .filter(|e| e.kind == EntryKind::Normal && !e.data.is_empty())
            .map(|e| e.data.clone())
            .collect()
    }
}

type Filter = Box<dyn FnMut(&Message) -> bool>;

pub struct Cluster {
    pub nodes: BTreeMap<NodeId, TestNode>,
    pub in_flight: VecDeque<Message>,
    /// Directed links (from, to) that drop everything.
    pub blocked: BTreeSet<(NodeId, NodeId)>,
    /// Percentage of messages lost at random.
    pub loss_percent: u64,
    rng: u64,
    /// Returns false to drop a message.
    pub filter: Option<Filter>,
    /// term → leader, for election safety.
    pub leaders: BTreeMap<u64, NodeId>,
    pub delivered: u64,
    /// index → term of every entry applied on any node (state machine safety).
    pub applied_terms: BTreeMap<u64, u64>,
    /// Whether the network reports snapshot delivery to the sender (as etcd's transport
    /// does); tests of the reporting itself turn it off and report by hand.
    pub report_snapshots: bool,
}

impl Cluster {
    pub fn new(ids: &[NodeId]) -> Cluster {
        Cluster::with_config(ids, |_| {})
    }

    pub fn with_config(ids: &[NodeId], tweak: impl Fn(&mut Config)) -> Cluster {
        let mut c = Cluster::empty();
        for &id in ids {
            let mut cfg = config(id);
            tweak(&mut cfg);
            c.add_node(cfg, MemStorage::new_with_conf_state(voters(ids)));
        }
        c
    }

    pub fn empty() -> Cluster {
        Cluster {
            nodes: BTreeMap::new(),
            in_flight: VecDeque::new(),
            blocked: BTreeSet::new(),
            loss_percent: 0,
            rng: 0x5EED,
            filter: None,
            leaders: BTreeMap::new(),
            delivered: 0,
            applied_terms: BTreeMap::new(),
            report_snapshots: true,
        }
    }

    pub fn add_node(&mut self, config: Config, storage: MemStorage) {
        let persisted_term = storage.hard_state().term;
        let raw = RawNode::new(&config, storage).expect("valid node");
        let applied_index = config.applied;
        self.nodes.insert(
            config.id,
            TestNode {
                raw,
                config,
                applied: Vec::new(),
                applied_index,
                reads: Vec::new(),
                snapshots: Vec::new(),
                persisted_term,
            },
        );
    }

    /// Replaces node `id` by a fresh one built from what it persisted, like a crash and
    /// restart; unsent messages of the old incarnation are lost.
    pub fn restart(&mut self, id: NodeId) {
        let old = self.nodes.remove(&id).expect("node exists");
        let mut config = old.config.clone();
        config.applied = old.applied_index;
        let storage = old.raw.storage().clone();
        let persisted_term = old.persisted_term;
        let raw = RawNode::new(&config, storage).expect("restart");
        self.in_flight.retain(|m| m.from != id);
        self.nodes.insert(
            id,
            TestNode {
                raw,
                config,
                applied: old.applied,
                applied_index: old.applied_index,
                reads: old.reads,
                snapshots: old.snapshots,
                persisted_term,
            },
        );
    }

    pub fn set_loss(&mut self, percent: u64, seed: u64) {
        self.loss_percent = percent;
        self.rng = seed | 1;
    }

    fn random_percent(&mut self) -> u64 {
        // xorshift64
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng % 100
    }

    pub fn node(&self, id: NodeId) -> &TestNode {
        &self.nodes[&id]
    }

    pub fn node_mut(&mut self, id: NodeId) -> &mut TestNode {
        self.nodes.get_mut(&id).expect("node exists")
    }

    pub fn raw(&mut self, id: NodeId) -> &mut RawNode<MemStorage> {
        &mut self.node_mut(id).raw
    }

    pub fn ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    /// Handles one Ready of node `id` as an application must.
    pub fn process_ready(&mut self, id: NodeId) -> Option<Ready> {
        let node = self.nodes.get_mut(&id).expect("node exists");
        if !node.raw.has_ready() {
            return None;
        }
        let rd = node.raw.ready();
        self.in_flight.extend(rd.messages.iter().cloned());
        if let Some(ss) = rd.soft_state
            && ss.role == StateRole::Leader
        {
            let term = node.raw.status().hard_state.term;
            if let Some(&other) = self.leaders.get(&term) {
                assert_eq!(other, id, "two leaders in term {term}");
            }
            self.leaders.insert(term, id);
        }
        let storage = node.raw.storage_mut();
        if let Some(snap) = &rd.snapshot {
            storage
                .apply_snapshot(snap.clone())
                .expect("apply snapshot");
            node.snapshots.push(snap.metadata.index);
            node.applied_index = snap.metadata.index;
        }
        storage.append(&rd.entries).expect("append");
        if rd.soft_state.is_some_and(|ss| ss.role == StateRole::Leader) {
            // Leader completeness: a new leader holds every entry applied anywhere (unless
            // compacted into its snapshot).
            use keel_raft::Storage;
            let s = node.raw.storage();
            let first = s.first_index().expect("first index");
            for (&index, &term) in self.applied_terms.range(first..) {
                assert_eq!(
                    s.term(index).ok(),
                    Some(term),
                    "new leader {id} lacks applied entry {index}@{term}"
                );
            }
        }
        if let Some(hs) = rd.hard_state {
            assert!(hs.term >= node.persisted_term, "persisted term went back");
            node.persisted_term = hs.term;
            node.raw.storage_mut().set_hard_state(hs);
        }
        self.in_flight.extend(rd.persisted_messages.iter().cloned());
        for e in &rd.committed_entries {
            assert_eq!(
                e.index,
                node.applied_index + 1,
                "node {id} applies out of order"
            );
            node.applied_index = e.index;
            if e.kind == EntryKind::ConfChange {
                let cc = ConfChange::decode(&e.data).expect("conf change decodes");
                // A change that fails validation is skipped, as etcd's server does.
                if let Ok(cs) = node.raw.apply_conf_change(&cc) {
                    node.raw.storage_mut().set_conf_state(cs);
                }
            }
            let known = self.applied_terms.insert(e.index, e.term);
            assert!(
                known.is_none_or(|t| t == e.term),
                "index {} applied with terms {known:?} and {}",
                e.index,
                e.term
            );
            node.applied.push(e.clone());
        }
        node.reads.extend(rd.read_states.iter().cloned());
        node.raw.advance(rd.clone());
        Some(rd)
    }

    fn deliver(&mut self, m: Message) {
        let lost = self.blocked.contains(&(m.from, m.to))
            || (self.loss_percent > 0 && self.random_percent() < self.loss_percent)
            || self.filter.as_mut().is_some_and(|f| !f(&m));
        if m.kind == MessageType::Snapshot && self.report_snapshots {
            // Like etcd's snapshot stream, the transport knows whether a snapshot arrived and
            // reports it to the sender.
            let status = if lost || !self.nodes.contains_key(&m.to) {
                keel_raft::SnapshotStatus::Failure
            } else {
                keel_raft::SnapshotStatus::Finish
            };
            if let Some(sender) = self.nodes.get_mut(&m.from) {
                sender.raw.report_snapshot(m.to, status);
            }
        }
        if lost {
            return;
        }
        if let Some(node) = self.nodes.get_mut(&m.to) {
            self.delivered += 1;
            // Errors (a forwarded proposal the leader refused, a response from an unknown
            // peer) are what a server would log and ignore.
            let _ = node.raw.step(m);
        }
    }

    /// Processes Readies and delivers messages until nothing is left.
    pub fn stabilize(&mut self) {
        for _ in 0..MAX_STABILIZE_STEPS {
            let mut progressed = false;
            for id in self.ids() {
                while self.process_ready(id).is_some() {
                    progressed = true;
                }
            }
            while let Some(m) = self.in_flight.pop_front() {
                progressed = true;
                self.deliver(m);
            }
            if !progressed {
                return;
            }
        }
        panic!("cluster did not stabilize within {MAX_STABILIZE_STEPS} rounds");
    }

    /// Delivers only the messages currently in flight (one network hop), after draining
    /// Readies.
    pub fn step_once(&mut self) {
        for id in self.ids() {
            while self.process_ready(id).is_some() {}
        }
        let batch: Vec<Message> = self.in_flight.drain(..).collect();
        for m in batch {
            self.deliver(m);
        }
    }

    pub fn tick(&mut self, id: NodeId) {
        self.raw(id).tick();
    }

    /// Ticks every node once and stabilizes.
    pub fn tick_all(&mut self) {
        for id in self.ids() {
            self.tick(id);
        }
        self.stabilize();
    }

    pub fn campaign(&mut self, id: NodeId) {
        self.raw(id).campaign().expect("campaign");
        self.stabilize();
    }

    pub fn propose(&mut self, id: NodeId, data: &[u8]) -> Result<(), keel_raft::Error> {
        let r = self.raw(id).propose(data.to_vec());
        self.stabilize();
        r
    }

    pub fn role(&self, id: NodeId) -> StateRole {
        self.node(id).status().soft_state.role
    }

    pub fn term(&self, id: NodeId) -> u64 {
        self.node(id).status().hard_state.term
    }

    pub fn hard_state(&self, id: NodeId) -> HardState {
        self.node(id).status().hard_state
    }

    pub fn committed(&self, id: NodeId) -> u64 {
        self.hard_state(id).commit
    }

    /// The leader with the highest term, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.status().soft_state.role == StateRole::Leader)
            .max_by_key(|(_, n)| n.status().hard_state.term)
            .map(|(&id, _)| id)
    }

    pub fn isolate(&mut self, id: NodeId) {
        for other in self.ids() {
            if other != id {
                self.blocked.insert((id, other));
                self.blocked.insert((other, id));
            }
        }
    }

    pub fn cut(&mut self, a: NodeId, b: NodeId) {
        self.blocked.insert((a, b));
        self.blocked.insert((b, a));
    }

    pub fn heal(&mut self) {
        self.blocked.clear();
    }

    /// Ticks all nodes until `pred` holds; panics after `max_ticks`.
    pub fn tick_until(&mut self, max_ticks: usize, mut pred: impl FnMut(&Cluster) -> bool) {
        for _ in 0..max_ticks {
            if pred(self) {
                return;
            }
            self.tick_all();
        }
        assert!(
            pred(self),
            "condition not reached within {max_ticks} ticks:\n{}",
            self.dump()
        );
    }

    /// One line per node: role, term, vote, commit, applied, last index, progress.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for (id, n) in &self.nodes {
            let st = n.status();
            let prs: Vec<String> = st
                .progress
                .iter()
                .map(|(p, pr)| format!("{p}:{:?} m{} n{}", pr.state, pr.matched, pr.next_idx))
                .collect();
            out.push_str(&format!(
                "{id}: {:?} lead {} term {} vote {} commit {} applied {} last {} cs {:?} [{}]\n",
                st.soft_state.role,
                st.soft_state.leader_id,
                st.hard_state.term,
                st.hard_state.vote,
                st.hard_state.commit,
                st.applied,
                st.last_index,
                st.conf_state.voters,
                prs.join(", ")
            ));
        }
        out
    }

    /// Ticks until some node leads, and returns it.
    pub fn elect_any(&mut self) -> NodeId {
        self.tick_until(1000, |c| c.leader().is_some());
        self.leader().expect("a leader")
    }

    /// Log entries of `id`, from storage (persisted) — the first index after compaction.
    pub fn log(&self, id: NodeId) -> Vec<Entry> {
        use keel_raft::Storage;
        let s = self.node(id).raw.storage();
        let first = s.first_index().expect("first");
        let last = s.last_index().expect("last");
        s.entries(first, last + 1, u64::MAX).expect("entries")
    }

    /// Raft's safety properties across the cluster: every pair of logs agrees on entries
    /// with the same index and term and on everything before them (log matching), and
    /// applied sequences are prefixes of one another (state machine safety).
    pub fn check_safety(&self) {
        let logs: Vec<(NodeId, Vec<Entry>)> = self
            .ids()
            .into_iter()
            .map(|id| (id, self.log(id)))
            .collect();
        for (a, la) in &logs {
            for (b, lb) in &logs {
                if a >= b {
                    continue;
                }
                let common: BTreeMap<u64, &Entry> = la.iter().map(|e| (e.index, e)).collect();
                let mut matched_at = None;
                for e in lb {
                    if let Some(o) = common.get(&e.index)
                        && o.term == e.term
                    {
                        matched_at = Some(e.index);
                    }
                }
                if let Some(top) = matched_at {
                    for e in lb.iter().filter(|e| e.index <= top) {
                        if let Some(o) = common.get(&e.index) {
                            assert_eq!(
                                *o, e,
                                "log matching violated between {a} and {b} at {}",
                                e.index
                            );
                        }
                    }
                }
            }
        }
        let applied: Vec<(NodeId, BTreeMap<u64, &Entry>)> = self
            .nodes
            .iter()
            .map(|(&id, n)| (id, n.applied.iter().map(|e| (e.index, e)).collect()))
            .collect();
        for (a, xa) in &applied {
            for (b, xb) in &applied {
                for (i, e) in xa {
                    if let Some(o) = xb.get(i) {
                        assert_eq!(e, o, "nodes {a} and {b} applied different entries at {i}");
                    }
                }
            }
        }
    }
}

/// A message filter that drops messages of `kind`.
pub fn drop_kind(kind: MessageType) -> Filter {
    Box::new(move |m| m.kind != kind)
}

/// Builds a single node over `storage` for tests that step messages by hand.
pub fn lone_node(cfg: Config, storage: MemStorage) -> RawNode<MemStorage> {
    RawNode::new(&cfg, storage).expect("valid node")
}

/// Persists and advances every pending Ready of a hand-driven node; returns the messages it
/// sent (immediate and after persistence), in order.
pub fn drain(raw: &mut RawNode<MemStorage>) -> Vec<Message> {
    let mut out = Vec::new();
    while raw.has_ready() {
        let rd = raw.ready();
        let s = raw.storage_mut();
        if let Some(snap) = &rd.snapshot {
            s.apply_snapshot(snap.clone()).expect("apply snapshot");
        }
        s.append(&rd.entries).expect("append");
        if let Some(hs) = rd.hard_state {
            s.set_hard_state(hs);
        }
        out.extend(rd.messages.iter().cloned());
        out.extend(rd.persisted_messages.iter().cloned());
        for e in &rd.committed_entries {
            if e.kind == EntryKind::ConfChange {
                let cc = ConfChange::decode(&e.data).expect("conf change decodes");
                if let Ok(cs) = raw.apply_conf_change(&cc) {
                    raw.storage_mut().set_conf_state(cs);
                }
            }
        }
        raw.advance(rd);
    }
    out
}

/// A message `from` → `to` of `kind` in `term`.
pub fn msg(kind: MessageType, from: NodeId, to: NodeId, term: u64) -> Message {
    Message {
        kind,
        from,
        to,
        term,
        ..Message::default()
    }
}

impl Cluster {
    /// Node `id` snapshots at its applied index (data = that index, little-endian) and
    /// compacts its log up to it.
    pub fn snapshot_and_compact(&mut self, id: NodeId) -> u64 {
        let node = self.node_mut(id);
        let applied = node.applied_index;
        let s = node.raw.storage_mut();
        s.create_snapshot(applied, None, applied.to_le_bytes().to_vec())
            .expect("create snapshot");
        s.compact(applied).expect("compact");
        applied
    }
}
