//! What the leader knows about each follower: how far its log matches, what to send next,
//! and how much is in flight.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::NodeId;
use crate::quorum::{JointConfig, VoteResult};
use crate::raw_node::ProgressState;
use crate::types::ConfState;

/// A bounded window of append messages sent but not acknowledged, identified by the last
/// index each carried (ascending).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inflights {
    cap: usize,
    last_indexes: VecDeque<u64>,
}

impl Inflights {
    pub fn new(cap: usize) -> Inflights {
        assert!(cap > 0, "inflight capacity must be positive");
        Inflights {
            cap,
            last_indexes: VecDeque::new(),
        }
    }

    pub fn full(&self) -> bool {
        self.last_indexes.len() >= self.cap
    }

    pub fn count(&self) -> usize {
        self.last_indexes.len()
    }

    pub fn add(&mut self, last_index: u64) {
        assert!(!self.full(), "cannot add to a full inflight window");
        if let Some(&back) = self.last_indexes.back() {
            assert!(
                back < last_index,
                "inflight indexes must increase: {back} then {last_index}"
            );
        }
        self.last_indexes.push_back(last_index);
    }

    /// Forgets every message whose entries are all at or below `index`.
    pub fn free_to(&mut self, index: u64) {
        while self.last_indexes.front().is_some_and(|&i| i <= index) {
            self.last_indexes.pop_front();
        }
    }

    pub fn free_first_one(&mut self) {
        self.last_indexes.pop_front();
    }

    pub fn reset(&mut self) {
        self.last_indexes.clear();
    }
}

/// Replication progress of one node, as tracked by the leader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Highest index known to match the leader's log.
    pub matched: u64,
    /// Next index to send.
    pub next_idx: u64,
    pub state: ProgressState,
    /// Index of the snapshot being sent, in `Snapshot` state.
    pub pending_snapshot: u64,
    /// Heard from since the last check-quorum round.
    pub recent_active: bool,
    /// In `Probe` state: a probe is outstanding, wait for its answer or a heartbeat.
    pub probe_sent: bool,
    pub inflights: Inflights,
    pub is_learner: bool,
}

impl Progress {
    pub fn new(next_idx: u64, max_inflight: usize, is_learner: bool) -> Progress {
        Progress {
            matched: 0,
            next_idx,
            state: ProgressState::Probe,
            pending_snapshot: 0,
            recent_active: true,
            probe_sent: false,
            inflights: Inflights::new(max_inflight),
            is_learner,
        }
    }

    fn reset_state(&mut self, state: ProgressState) {
        self.probe_sent = false;
        self.pending_snapshot = 0;
        self.state = state;
        self.inflights.reset();
    }

    pub fn become_probe(&mut self) {
        if self.state == ProgressState::Snapshot {
            let pending = self.pending_snapshot;
            self.reset_state(ProgressState::Probe);
            self.next_idx = (self.matched + 1).max(pending + 1);
        } else {
            self.reset_state(ProgressState::Probe);
            self.next_idx = self.matched + 1;
        }
    }

    pub fn become_replicate(&mut self) {
        self.reset_state(ProgressState::Replicate);
        self.next_idx = self.matched + 1;
    }

    pub fn become_snapshot(&mut self, snapshot_index: u64) {
        self.reset_state(ProgressState::Snapshot);
        self.pending_snapshot = snapshot_index;
    }

    /// Records an acknowledgement of `index`; false if it was stale.
    pub fn maybe_update(&mut self, index: u64) -> bool {
        let updated = self.matched < index;
        if updated {
            self.matched = index;
            self.probe_sent = false;
        }
        self.next_idx = self.next_idx.max(index + 1);
        updated
    }

    /// Pipelining: assume entries up to `last` will arrive.
    pub fn optimistic_update(&mut self, last: u64) {
        self.next_idx = last + 1;
    }

    /// Handles a rejected append at `rejected`; `match_hint` is where the follower's log may
    /// match. False if the rejection is stale.
    pub fn maybe_decr_to(&mut self, rejected: u64, match_hint: u64) -> bool {
        if self.state == ProgressState::Replicate {
            if rejected <= self.matched {
                return false;
            }
            self.next_idx = self.matched + 1;
            return true;
        }
        if self.next_idx == 0 || self.next_idx - 1 != rejected {
            return false;
        }
        self.next_idx = rejected.min(match_hint + 1).max(1);
        self.probe_sent = false;
        true
    }

    /// Whether sending appends must wait.
    pub fn is_paused(&self) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.inflights.full(),
            ProgressState::Snapshot => true,
        }
    }
}

/// Membership as the tracker sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrackerConfig {
    pub voters: JointConfig,
    pub learners: BTreeSet<NodeId>,
    pub learners_next: BTreeSet<NodeId>,
    pub auto_leave: bool,
}

impl TrackerConfig {
    pub fn is_joint(&self) -> bool {
        !self.voters.outgoing.is_empty()
    }

    pub fn to_conf_state(&self) -> ConfState {
        ConfState {
            voters: self.voters.incoming.iter().copied().collect(),
            learners: self.learners.iter().copied().collect(),
            voters_outgoing: self.voters.outgoing.iter().copied().collect(),
            learners_next: self.learners_next.iter().copied().collect(),
            auto_leave: self.auto_leave,
        }
    }
}

pub type ProgressMap = BTreeMap<NodeId, Progress>;

/// Membership, per-node progress and the votes of the current election.
#[derive(Clone, Debug)]
pub struct ProgressTracker {
    pub config: TrackerConfig,
    pub progress: ProgressMap,
    pub votes: BTreeMap<NodeId, bool>,
    pub max_inflight: usize,
}

impl ProgressTracker {
    pub fn new(max_inflight: usize) -> ProgressTracker {
        ProgressTracker {
            config: TrackerConfig::default(),
            progress: ProgressMap::new(),
            votes: BTreeMap::new(),
            max_inflight,
        }
    }

    /// Largest index held by a quorum, by `matched`.
    pub fn committed(&self) -> u64 {
        self.config
            .voters
            .committed(|id| self.progress.get(&id).map_or(0, |p| p.matched))
    }

    pub fn reset_votes(&mut self) {
        self.votes.clear();
    }

    pub fn record_vote(&mut self, id: NodeId, granted: bool) {
        self.votes.entry(id).or_insert(granted);
    }

    /// (granted, rejected, outcome) among voters.
    pub fn tally_votes(&self) -> (usize, usize, VoteResult) {
        let (mut granted, mut rejected) = (0, 0);
        for id in self.config.voters.ids() {
            match self.votes.get(&id) {
                Some(true) => granted += 1,
                Some(false) => rejected += 1,
                None => {}
            }
        }
        (
            granted,
            rejected,
            self.config.voters.vote_result(&self.votes),
        )
    }

    /// Whether a quorum has been recently active (`self_id` always counts).
    pub fn quorum_active(&self, self_id: NodeId) -> bool {
        let mut votes = BTreeMap::new();
        for (&id, pr) in &self.progress {
            if !pr.is_learner {
                votes.insert(id, id == self_id || pr.recent_active);
            }
        }
        self.config.voters.vote_result(&votes) == VoteResult::Won
    }

    pub fn is_singleton(&self) -> bool {
        self.config.voters.incoming.len() == 1 && self.config.voters.outgoing.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inflights_window() {
        let mut w = Inflights::new(3);
        w.add(2);
        w.add(4);
        w.add(7);
        assert!(w.full());
        w.free_to(4);
        assert_eq!(w.count(), 1);
        w.free_first_one();
        assert_eq!(w.count(), 0);
    }

    #[test]
    fn probe_backtracks_only_on_matching_rejection() {
        let mut p = Progress::new(10, 4, false);
        assert!(!p.maybe_decr_to(5, 5), "stale rejection ignored");
        assert!(p.maybe_decr_to(9, 3));
        assert_eq!(p.next_idx, 4);
        p.maybe_update(3);
        p.become_replicate();
        assert_eq!(p.next_idx, 4);
        p.optimistic_update(8);
        assert!(!p.maybe_decr_to(2, 2), "rejection below match is stale");
        assert!(p.maybe_decr_to(6, 6));
        assert_eq!(p.next_idx, 4);
    }

    #[test]
    fn snapshot_progress_resumes_after_snapshot() {
        let mut p = Progress::new(5, 4, false);
        p.become_snapshot(20);
        assert!(p.is_paused());
        p.become_probe();
        assert_eq!(p.next_idx, 21);
        assert!(!p.is_paused());
    }
}
