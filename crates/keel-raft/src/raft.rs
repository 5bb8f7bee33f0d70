//! The Raft protocol proper: roles, elections, replication, commit, reads, transfers and
//! membership. [`crate::RawNode`] wraps it with the Ready/advance bookkeeping.

use std::collections::BTreeMap;

use crate::confchange::{self, Changer};
use crate::config::Config;
#[cfg(feature = "planted-bugs")]
use crate::config::PlantedBug;
use crate::log::RaftLog;
use crate::quorum::VoteResult;
use crate::raw_node::{ProgressState, ProgressStatus, ReadState, SoftState, StateRole, Status};
use crate::read_only::ReadOnly;
use crate::storage::{Storage, StorageError};
use crate::tracker::{Progress, ProgressMap, ProgressTracker, TrackerConfig};
use crate::types::{
    ConfChange, ConfState, Entry, EntryKind, HardState, Message, MessageType, Snapshot,
};
use crate::{CAMPAIGN_TRANSFER_CONTEXT, Error, NodeId};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CampaignType {
    PreElection,
    Election,
    Transfer,
}

fn vote_response_kind(kind: MessageType) -> MessageType {
    match kind {
        MessageType::RequestVote => MessageType::RequestVoteResponse,
        MessageType::RequestPreVote => MessageType::RequestPreVoteResponse,
        other => panic!("{other:?} is not a vote request"),
    }
}

/// splitmix64: a tiny deterministic generator, enough to spread election timeouts.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub struct Raft<S: Storage> {
    id: NodeId,
    term: u64,
    vote: NodeId,
    log: RaftLog<S>,
    prs: ProgressTracker,
    role: StateRole,
    lead: NodeId,
    lead_transferee: NodeId,
    /// Index of the latest conf change proposed by this leader; another may be proposed
    /// only once it is applied.
    pending_conf_index: u64,
    uncommitted_size: u64,
    read_only: ReadOnly,
    /// Reads that arrived before this leader committed an entry of its term.
    pending_reads: Vec<Message>,
    msgs: Vec<Message>,
    read_states: Vec<ReadState>,
    election_elapsed: u64,
    heartbeat_elapsed: u64,
    election_timeout: u64,
    heartbeat_timeout: u64,
    randomized_election_timeout: u64,
    rng_state: u64,
    check_quorum: bool,
    pre_vote: bool,
    disable_proposal_forwarding: bool,
    max_msg_size: u64,
    max_uncommitted_size: u64,
    max_pending_reads: usize,
    #[cfg(feature = "planted-bugs")]
    planted_bug: Option<PlantedBug>,
}

impl<S: Storage> Raft<S> {
    pub fn new(c: &Config, store: S) -> Result<Raft<S>, Error> {
        c.validate()?;
        let (hs, cs) = store.initial_state()?;
        let log = RaftLog::new(store, c.max_committed_size_per_ready)?;
        let (config, progress) = confchange::restore(&cs, log.last_index(), c.max_inflight_msgs)?;
        let mut r = Raft {
            id: c.id,
            term: 0,
            vote: 0,
            log,
            prs: ProgressTracker::new(c.max_inflight_msgs),
            role: StateRole::Follower,
            lead: 0,
            lead_transferee: 0,
            pending_conf_index: 0,
            uncommitted_size: 0,
            read_only: ReadOnly::default(),
            pending_reads: Vec::new(),
            msgs: Vec::new(),
            read_states: Vec::new(),
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            election_timeout: c.election_tick,
            heartbeat_timeout: c.heartbeat_tick,
            randomized_election_timeout: c.election_tick,
            rng_state: c.seed ^ c.id.wrapping_mul(0xA076_1D64_78BD_642F),
            check_quorum: c.check_quorum,
            pre_vote: c.pre_vote,
            disable_proposal_forwarding: c.disable_proposal_forwarding,
            max_msg_size: c.max_size_per_msg,
            max_uncommitted_size: c.max_uncommitted_entries_size,
            max_pending_reads: c.max_pending_read_index,
            #[cfg(feature = "planted-bugs")]
            planted_bug: c.planted_bug,
        };
        r.prs.config = config;
        r.prs.progress = progress;
        if !hs.is_empty() {
            if hs.commit < r.log.committed || hs.commit > r.log.last_index() {
                return Err(Error::ConfigInvalid(format!(
                    "hard state commit {} is out of range [{}, {}]",
                    hs.commit,
                    r.log.committed,
                    r.log.last_index()
                )));
            }
            r.log.committed = hs.commit;
            r.term = hs.term;
            r.vote = hs.vote;
        }
        if c.applied > 0 {
            if c.applied > r.log.committed || c.applied < r.log.applied {
                return Err(Error::ConfigInvalid(format!(
                    "applied {} is out of range [{}, {}]",
                    c.applied, r.log.applied, r.log.committed
                )));
            }
            r.log.applied_to(c.applied);
        }
        r.become_follower(r.term, 0);
        Ok(r)
    }

    // ----- accessors used by RawNode -------------------------------------------------------

    pub fn id(&self) -> NodeId {
        self.id
    }

    pub fn tracks(&self, id: NodeId) -> bool {
        self.prs.progress.contains_key(&id)
    }

    pub fn soft_state(&self) -> SoftState {
        SoftState {
            leader_id: self.lead,
            role: self.role,
        }
    }

    pub fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.log.committed,
        }
    }

    pub fn has_unstable(&self) -> bool {
        !self.log.unstable.entries.is_empty() || self.log.unstable.snapshot.is_some()
    }

    pub fn unstable(&self) -> (Vec<Entry>, Option<Snapshot>) {
        (
            self.log.unstable.entries.clone(),
            self.log.unstable.snapshot.clone(),
        )
    }

    pub fn has_next_entries(&self) -> bool {
        self.log.has_next_entries()
    }

    pub fn next_entries(&self) -> Vec<Entry> {
        self.log.next_entries()
    }

    pub fn has_messages_or_reads(&self) -> bool {
        !self.msgs.is_empty() || !self.read_states.is_empty()
    }

    pub fn take_messages(&mut self) -> Vec<Message> {
        std::mem::take(&mut self.msgs)
    }

    pub fn take_read_states(&mut self) -> Vec<ReadState> {
        std::mem::take(&mut self.read_states)
    }

    pub fn storage(&self) -> &S {
        &self.log.store
    }

    pub fn storage_mut(&mut self) -> &mut S {
        &mut self.log.store
    }

    pub fn status(&self) -> Status {
        let progress = if self.role == StateRole::Leader {
            self.prs
                .progress
                .iter()
                .map(|(&id, p)| {
                    let st = ProgressStatus {
                        matched: p.matched,
                        next_idx: p.next_idx,
                        state: p.state,
                        is_learner: p.is_learner,
                        recent_active: p.recent_active,
                        inflight_msgs: p.inflights.count(),
                    };
                    (id, st)
                })
                .collect()
        } else {
            BTreeMap::new()
        };
        Status {
            id: self.id,
            hard_state: self.hard_state(),
            soft_state: self.soft_state(),
            applied: self.log.applied,
            last_index: self.log.last_index(),
            progress,
            lead_transferee: self.lead_transferee,
            conf_state: self.prs.config.to_conf_state(),
        }
    }

    /// Records that the application persisted a Ready's snapshot and entries and applied
    /// its committed entries.
    pub fn advance(
        &mut self,
        snapshot_index: Option<u64>,
        last_entry: Option<(u64, u64)>,
        committed: &[Entry],
    ) {
        if let Some(index) = snapshot_index {
            self.log.stable_snap_to(index);
            if index > self.log.applied {
                self.log.applied_to(index);
            }
        }
        if let Some((index, term)) = last_entry {
            self.log.stable_to(index, term);
        }
        if let Some(last) = committed.last() {
            self.log.applied_to(last.index);
            let applied_bytes: u64 = committed.iter().map(|e| e.data.len() as u64).sum();
            self.uncommitted_size = self.uncommitted_size.saturating_sub(applied_bytes);
        }
        if self.role != StateRole::Leader {
            return;
        }
        // The leader counts itself towards a quorum only for entries it has persisted.
        let persisted = self.log.persisted.min(self.log.last_index());
        let id = self.id;
        if self
            .prs
            .progress
            .get_mut(&id)
            .is_some_and(|pr| pr.maybe_update(persisted))
            && self.maybe_commit()
        {
            self.on_commit_advanced();
        }
        if self.prs.config.auto_leave && self.log.applied >= self.pending_conf_index {
            // A refused proposal (e.g. during a transfer) is retried on a later advance.
            let _ = self.step(Message {
                kind: MessageType::Propose,
                from: id,
                entries: vec![Entry {
                    kind: EntryKind::ConfChange,
                    data: ConfChange::leave_joint().encode(),
                    ..Entry::default()
                }],
                ..Message::default()
            });
        }
    }

    // ----- role transitions ----------------------------------------------------------------

    fn reset(&mut self, term: u64) {
        if self.term != term {
            self.term = term;
            self.vote = 0;
        }
        self.lead = 0;
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.randomized_election_timeout =
            self.election_timeout + splitmix64(&mut self.rng_state) % self.election_timeout;
        self.lead_transferee = 0;
        self.prs.reset_votes();
        let last = self.log.last_index();
        let persisted = self.log.persisted.min(last);
        let max_inflight = self.prs.max_inflight;
        for (&id, pr) in self.prs.progress.iter_mut() {
            *pr = Progress::new(last + 1, max_inflight, pr.is_learner);
            if id == self.id {
                pr.matched = persisted;
            }
        }
        self.pending_conf_index = 0;
        self.uncommitted_size = 0;
        self.read_only = ReadOnly::default();
        self.pending_reads.clear();
    }

    fn become_follower(&mut self, term: u64, lead: NodeId) {
        self.reset(term);
        self.lead = lead;
        self.role = StateRole::Follower;
    }

    fn become_candidate(&mut self) {
        assert!(
            self.role != StateRole::Leader,
            "invalid transition [leader -> candidate]"
        );
        self.reset(self.term + 1);
        self.vote = self.id;
        self.role = StateRole::Candidate;
    }

    fn become_pre_candidate(&mut self) {
        assert!(
            self.role != StateRole::Leader,
            "invalid transition [leader -> pre-candidate]"
        );
        // Neither the term nor the vote change: a pre-vote round disturbs nobody.
        self.prs.reset_votes();
        self.lead = 0;
        self.role = StateRole::PreCandidate;
    }

    fn become_leader(&mut self) {
        assert!(
            self.role != StateRole::Follower,
            "invalid transition [follower -> leader]"
        );
        self.reset(self.term);
        self.lead = self.id;
        self.role = StateRole::Leader;
        let id = self.id;
        if let Some(pr) = self.prs.progress.get_mut(&id) {
            pr.become_replicate();
        }
        // Conservatively treat every entry of earlier terms as a possibly pending conf change.
        self.pending_conf_index = self.log.last_index();
        let mut noop = vec![Entry::default()];
        assert!(
            self.append_entry(&mut noop),
            "the empty entry of a new leader must always be accepted"
        );
    }

    fn promotable(&self) -> bool {
        self.prs
            .progress
            .get(&self.id)
            .is_some_and(|p| !p.is_learner)
            && !self.log.has_pending_snapshot()
    }

    fn abort_leader_transfer(&mut self) {
        self.lead_transferee = 0;
    }

    // ----- time ----------------------------------------------------------------------------

    pub fn tick(&mut self) {
        if self.role == StateRole::Leader {
            self.tick_heartbeat();
        } else {
            self.tick_election();
        }
    }

    fn tick_election(&mut self) {
        self.election_elapsed += 1;
        if self.promotable() && self.election_elapsed >= self.randomized_election_timeout {
            self.election_elapsed = 0;
            self.hup(if self.pre_vote {
                CampaignType::PreElection
            } else {
                CampaignType::Election
            });
        }
    }

    /// The application learned that the process of member `id` is gone (its peer port
    /// refuses connections). A follower of `id` stops honouring its lease at once and
    /// campaigns after the random part of its election timeout only,
    /// `[0, election_timeout)` ticks instead of `[election_timeout, 2 * election_timeout)`
    /// since the last heartbeat. A leader that is in fact alive loses nothing: its next
    /// heartbeat resets `election_elapsed`, and with pre-vote a follower that still hears
    /// from it refuses the pre-candidate.
    pub fn leader_down(&mut self, id: NodeId) {
        if self.role == StateRole::Follower && self.lead == id && id != 0 {
            self.election_elapsed = self.election_elapsed.max(self.election_timeout);
        }
    }

    fn tick_heartbeat(&mut self) {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        if self.election_elapsed >= self.election_timeout {
            self.election_elapsed = 0;
            if self.check_quorum {
                self.check_quorum_active();
            }
            if self.role == StateRole::Leader && self.lead_transferee != 0 {
                // The transfer did not finish within an election timeout.
                self.abort_leader_transfer();
            }
            // A leader that is no longer a voter retries its hand-over.
            self.hand_off_if_not_voter();
        }
        if self.role != StateRole::Leader {
            return;
        }
        if self.heartbeat_elapsed >= self.heartbeat_timeout {
            self.heartbeat_elapsed = 0;
            self.bcast_heartbeat();
        }
    }

    fn check_quorum_active(&mut self) {
        if !self.prs.quorum_active(self.id) {
            self.become_follower(self.term, 0);
            return;
        }
        let id = self.id;
        for (&pid, pr) in self.prs.progress.iter_mut() {
            if pid != id {
                pr.recent_active = false;
            }
        }
    }

    // ----- sending -------------------------------------------------------------------------

    fn send(&mut self, mut m: Message) {
        m.from = self.id;
        if matches!(
            m.kind,
            MessageType::RequestVote
                | MessageType::RequestVoteResponse
                | MessageType::RequestPreVote
                | MessageType::RequestPreVoteResponse
        ) {
            assert!(m.term != 0, "term must be set when sending {:?}", m.kind);
        } else {
            assert!(
                m.term == 0,
                "term must not be preset when sending {:?}",
                m.kind
            );
            m.term = self.term;
        }
        self.msgs.push(m);
    }

    /// Forwards a request to the leader unchanged (term 0, original sender kept), like a
    /// local message the leader handles.
    fn forward(&mut self, mut m: Message) {
        m.to = self.lead;
        m.term = 0;
        self.msgs.push(m);
    }

    fn peers(&self) -> Vec<NodeId> {
        self.prs
            .progress
            .keys()
            .copied()
            .filter(|&id| id != self.id)
            .collect()
    }

    fn send_append(&mut self, to: NodeId) {
        self.maybe_send_append(to, true);
    }

    /// Sends entries (or a snapshot) to `to` if its progress allows; true if sent.
    fn maybe_send_append(&mut self, to: NodeId, send_if_empty: bool) -> bool {
        let Some(pr) = self.prs.progress.get(&to) else {
            return false;
        };
        if pr.is_paused() {
            return false;
        }
        let next = pr.next_idx;
        let term = self.log.term(next - 1);
        let ents = self.log.entries(next, self.max_msg_size);
        let m = match (term, ents) {
            (Ok(log_term), Ok(entries)) => {
                if entries.is_empty() && !send_if_empty {
                    return false;
                }
                let pr = self.progress_mut(to);
                if let Some(last) = entries.last().map(|e| e.index) {
                    match pr.state {
                        ProgressState::Replicate => {
                            pr.optimistic_update(last);
                            pr.inflights.add(last);
                        }
                        ProgressState::Probe => pr.probe_sent = true,
                        ProgressState::Snapshot => {
                            panic!("{to} is in snapshot state; appends must wait")
                        }
                    }
                }
                Message {
                    kind: MessageType::Append,
                    to,
                    index: next - 1,
                    log_term,
                    entries,
                    commit: self.log.committed,
                    ..Message::default()
                }
            }
            _ => {
                // The entries `to` needs were compacted: send a snapshot instead.
                if !pr.recent_active {
                    return false;
                }
                let snapshot = match self.log.snapshot(next - 1) {
                    Ok(s) => s,
                    Err(StorageError::SnapshotTemporarilyUnavailable) => return false,
                    Err(e) => panic!("raft storage failed to provide a snapshot: {e}"),
                };
                assert!(!snapshot.is_empty(), "need a non-empty snapshot for {to}");
                self.progress_mut(to)
                    .become_snapshot(snapshot.metadata.index);
                Message {
                    kind: MessageType::Snapshot,
                    to,
                    snapshot: Some(snapshot),
                    ..Message::default()
                }
            }
        };
        self.send(m);
        true
    }

    fn progress_mut(&mut self, id: NodeId) -> &mut Progress {
        self.prs
            .progress
            .get_mut(&id)
            .expect("callers only name nodes whose progress they just looked up")
    }

    fn bcast_append(&mut self) {
        for id in self.peers() {
            self.send_append(id);
        }
    }

    fn bcast_heartbeat(&mut self) {
        let ctx = self
            .read_only
            .last_pending_ctx()
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        for id in self.peers() {
            let matched = self.prs.progress.get(&id).map_or(0, |p| p.matched);
            // Never tell a follower to commit beyond what it is known to hold.
            let commit = matched.min(self.log.committed);
            self.send(Message {
                kind: MessageType::Heartbeat,
                to: id,
                commit,
                context: ctx.clone(),
                ..Message::default()
            });
        }
    }

    fn send_timeout_now(&mut self, to: NodeId) {
        self.send(Message {
            kind: MessageType::TimeoutNow,
            to,
            ..Message::default()
        });
        if !self.prs.config.voters.contains(self.id) {
            // A leader that is no longer a voter hands over here: `to` holds our whole log,
            // so it wins an election in the new configuration even if it ignores this
            // message and waits for its own timeout.
            self.become_follower(self.term, 0);
        }
    }

    // ----- commit --------------------------------------------------------------------------

    fn maybe_commit(&mut self) -> bool {
        let index = self.prs.committed();
        #[cfg(feature = "planted-bugs")]
        if self.planted_bug == Some(PlantedBug::CommitPreviousTermEntries) {
            let term = self.log.term(index).unwrap_or(0);
            return self.log.maybe_commit(index, term);
        }
        self.log.maybe_commit(index, self.term)
    }

    fn committed_entry_in_current_term(&self) -> bool {
        self.log
            .term(self.log.committed)
            .is_ok_and(|t| t == self.term)
    }

    /// After the leader's commit index moved: release reads waiting for the first commit of
    /// this term and tell followers.
    fn on_commit_advanced(&mut self) {
        if !self.pending_reads.is_empty() && self.committed_entry_in_current_term() {
            for m in std::mem::take(&mut self.pending_reads) {
                // Forwarded reads that no longer fit are dropped; their senders time out.
                let _ = self.leader_read_index(m);
            }
        }
        self.bcast_append();
    }

    fn append_entry(&mut self, entries: &mut [Entry]) -> bool {
        let last = self.log.last_index();
        for (i, e) in entries.iter_mut().enumerate() {
            e.term = self.term;
            e.index = last + 1 + i as u64;
        }
        let size: u64 = entries.iter().map(|e| e.data.len() as u64).sum();
        if self.max_uncommitted_size > 0
            && self.uncommitted_size > 0
            && size > 0
            && self.uncommitted_size + size > self.max_uncommitted_size
        {
            return false;
        }
        self.uncommitted_size += size;
        self.log.append(entries);
        true
    }

    // ----- elections -----------------------------------------------------------------------

    fn has_unapplied_conf_changes(&self) -> bool {
        let lo = (self.log.applied + 1).max(self.log.first_index());
        let hi = self.log.committed + 1;
        if lo >= hi {
            return false;
        }
        self.log
            .slice(lo, hi, u64::MAX)
            .is_ok_and(|ents| ents.iter().any(|e| e.kind == EntryKind::ConfChange))
    }

    fn hup(&mut self, t: CampaignType) {
        if self.role == StateRole::Leader || !self.promotable() {
            return;
        }
        if self.has_unapplied_conf_changes() {
            // Campaigning now could elect a node whose membership view is about to change.
            return;
        }
        self.campaign(t);
    }

    fn campaign(&mut self, t: CampaignType) {
        let (kind, term) = if t == CampaignType::PreElection {
            self.become_pre_candidate();
            (MessageType::RequestPreVote, self.term + 1)
        } else {
            self.become_candidate();
            (MessageType::RequestVote, self.term)
        };
        if self.poll(self.id, true) == VoteResult::Won {
            // A single voter wins on its own.
            if t == CampaignType::PreElection {
                self.campaign(CampaignType::Election);
            } else {
                self.become_leader();
                self.bcast_append();
            }
            return;
        }
        let index = self.log.last_index();
        let log_term = self.log.last_term();
        let context = if t == CampaignType::Transfer {
            CAMPAIGN_TRANSFER_CONTEXT.to_vec()
        } else {
            Vec::new()
        };
        for id in self.prs.config.voters.ids() {
            if id == self.id {
                continue;
            }
            self.send(Message {
                kind,
                to: id,
                term,
                index,
                log_term,
                context: context.clone(),
                ..Message::default()
            });
        }
    }

    fn poll(&mut self, id: NodeId, granted: bool) -> VoteResult {
        self.prs.record_vote(id, granted);
        self.prs.tally_votes().2
    }

    // ----- the state machine ---------------------------------------------------------------

    pub fn step(&mut self, m: Message) -> Result<(), Error> {
        if m.term > self.term {
            if matches!(
                m.kind,
                MessageType::RequestVote | MessageType::RequestPreVote
            ) {
                let forced = m.context == CAMPAIGN_TRANSFER_CONTEXT;
                let in_lease = self.check_quorum
                    && self.lead != 0
                    && self.election_elapsed < self.election_timeout;
                if !forced && in_lease {
                    // Leader lease: we heard from a leader recently, so this candidate is
                    // probably partitioned; do not let it disrupt the cluster.
                    return Ok(());
                }
            }
            match m.kind {
                // A pre-vote never changes our term; a granted pre-vote response carries the
                // future term the pre-candidate asked about.
                MessageType::RequestPreVote => {}
                MessageType::RequestPreVoteResponse if !m.reject => {}
                MessageType::Append | MessageType::Heartbeat | MessageType::Snapshot => {
                    self.become_follower(m.term, m.from);
                }
                _ => self.become_follower(m.term, 0),
            }
        } else if m.term != 0 && m.term < self.term {
            if (self.check_quorum || self.pre_vote)
                && matches!(m.kind, MessageType::Heartbeat | MessageType::Append)
            {
                // A stale leader, possibly cut off and unaware: answer so it learns our term
                // and steps down (otherwise pre-vote / the lease could keep it stuck).
                self.send(Message {
                    kind: MessageType::AppendResponse,
                    to: m.from,
                    ..Message::default()
                });
            } else if m.kind == MessageType::RequestPreVote {
                self.send(Message {
                    kind: MessageType::RequestPreVoteResponse,
                    to: m.from,
                    term: self.term,
                    reject: true,
                    ..Message::default()
                });
            }
            return Ok(());
        }

        match m.kind {
            MessageType::Hup => {
                self.hup(if self.pre_vote {
                    CampaignType::PreElection
                } else {
                    CampaignType::Election
                });
                Ok(())
            }
            MessageType::RequestVote | MessageType::RequestPreVote => {
                self.handle_vote_request(m);
                Ok(())
            }
            _ => match self.role {
                StateRole::Leader => self.step_leader(m),
                StateRole::Candidate | StateRole::PreCandidate => self.step_candidate(m),
                StateRole::Follower => self.step_follower(m),
            },
        }
    }

    fn handle_vote_request(&mut self, m: Message) {
        let can_vote = self.vote == m.from
            || (self.vote == 0 && self.lead == 0)
            || (m.kind == MessageType::RequestPreVote && m.term > self.term);
        let resp = vote_response_kind(m.kind);
        if can_vote && self.log.is_up_to_date(m.index, m.log_term) {
            self.send(Message {
                kind: resp,
                to: m.from,
                term: m.term,
                ..Message::default()
            });
            if m.kind == MessageType::RequestVote {
                self.election_elapsed = 0;
                self.vote = m.from;
            }
        } else {
            self.send(Message {
                kind: resp,
                to: m.from,
                term: self.term,
                reject: true,
                ..Message::default()
            });
        }
    }

    fn step_leader(&mut self, m: Message) -> Result<(), Error> {
        match m.kind {
            MessageType::Beat => {
                self.bcast_heartbeat();
                return Ok(());
            }
            MessageType::CheckQuorum => {
                self.check_quorum_active();
                return Ok(());
            }
            MessageType::Propose => return self.leader_propose(m),
            MessageType::ReadIndex => return self.leader_read_index(m),
            _ => {}
        }
        let from = m.from;
        let Some(pr) = self.prs.progress.get_mut(&from) else {
            return Ok(());
        };
        match m.kind {
            MessageType::AppendResponse => {
                pr.recent_active = true;
                if m.reject {
                    let next_probe = if m.log_term > 0 {
                        self.log.find_conflict_by_term(m.reject_hint, m.log_term).0
                    } else {
                        m.reject_hint
                    };
                    let pr = self.progress_mut(from);
                    if pr.maybe_decr_to(m.index, next_probe) {
                        if pr.state == ProgressState::Replicate {
                            pr.become_probe();
                        }
                        self.send_append(from);
                    }
                    return Ok(());
                }
                let was_paused = pr.is_paused();
                if !pr.maybe_update(m.index) {
                    return Ok(());
                }
                match pr.state {
                    ProgressState::Probe => pr.become_replicate(),
                    ProgressState::Snapshot => {
                        if pr.matched + 1 >= self.log.first_index() {
                            pr.become_probe();
                            pr.become_replicate();
                        }
                    }
                    ProgressState::Replicate => pr.inflights.free_to(m.index),
                }
                if self.maybe_commit() {
                    self.on_commit_advanced();
                } else if was_paused {
                    self.send_append(from);
                }
                // Keep the pipeline full while there is more to send.
                while self.maybe_send_append(from, false) {}
                let matched = self.prs.progress.get(&from).map_or(0, |p| p.matched);
                if from == self.lead_transferee && matched == self.log.last_index() {
                    self.send_timeout_now(from);
                }
            }
            MessageType::HeartbeatResponse => {
                pr.recent_active = true;
                pr.probe_sent = false;
                if pr.state == ProgressState::Replicate && pr.inflights.full() {
                    pr.inflights.free_first_one();
                }
                let caught_up = pr.matched == self.log.last_index();
                if !caught_up {
                    self.send_append(from);
                } else if from == self.lead_transferee {
                    // The transferee may have ignored an earlier TimeoutNow (it refuses to
                    // campaign while it has committed conf changes to apply): repeat it.
                    self.send_timeout_now(from);
                }
                if m.context.is_empty() {
                    return Ok(());
                }
                let Some(acks) = self.read_only.recv_ack(from, &m.context) else {
                    return Ok(());
                };
                let votes: BTreeMap<NodeId, bool> = acks.iter().map(|&id| (id, true)).collect();
                if self.prs.config.voters.vote_result(&votes) != VoteResult::Won {
                    return Ok(());
                }
                for rs in self.read_only.advance(&m.context) {
                    self.respond_read(rs.req, rs.index);
                }
            }
            MessageType::SnapStatus => {
                if pr.state != ProgressState::Snapshot {
                    return Ok(());
                }
                if m.reject {
                    pr.pending_snapshot = 0;
                }
                pr.become_probe();
                // Wait for the follower's answer (or a heartbeat) before probing again.
                pr.probe_sent = true;
            }
            MessageType::Unreachable if pr.state == ProgressState::Replicate => {
                pr.become_probe();
            }
            MessageType::TransferLeader => {
                if pr.is_learner {
                    return Ok(());
                }
                self.start_transfer(from);
            }
            _ => {}
        }
        Ok(())
    }

    fn start_transfer(&mut self, transferee: NodeId) {
        if self.lead_transferee != 0 {
            if self.lead_transferee == transferee {
                return;
            }
            self.abort_leader_transfer();
        }
        if transferee == self.id {
            return;
        }
        // The transfer must finish within an election timeout.
        self.election_elapsed = 0;
        self.lead_transferee = transferee;
        let matched = self.prs.progress.get(&transferee).map_or(0, |p| p.matched);
        if matched == self.log.last_index() {
            self.send_timeout_now(transferee);
        } else {
            self.send_append(transferee);
        }
    }

    /// A leader that is no longer a voter (removed, or demoted to learner) keeps leading
    /// only until it has handed over: it refuses proposals, keeps replicating until the
    /// voter with the most of its log holds all of it, sends that voter `TimeoutNow` and
    /// steps down. Stepping down at once could strand the new configuration: its voters may
    /// lack entries that the demoted nodes hold, and those nodes may no longer campaign.
    fn hand_off_if_not_voter(&mut self) {
        if self.role != StateRole::Leader
            || self.lead_transferee != 0
            || self.prs.config.voters.contains(self.id)
        {
            return;
        }
        let best = self
            .prs
            .config
            .voters
            .ids()
            .into_iter()
            .filter(|&id| id != self.id)
            .max_by_key(|id| self.prs.progress.get(id).map_or(0, |p| p.matched));
        if let Some(transferee) = best {
            self.start_transfer(transferee);
        }
    }

    fn leader_propose(&mut self, m: Message) -> Result<(), Error> {
        if m.entries.is_empty()
            || !self.prs.config.voters.contains(self.id)
            || self.lead_transferee != 0
        {
            return Err(Error::ProposalDropped);
        }
        let mut entries = m.entries;
        let mut conf_change_at = None;
        for (i, e) in entries.iter().enumerate() {
            if e.kind != EntryKind::ConfChange {
                continue;
            }
            let cc = ConfChange::decode(&e.data)?;
            let already_pending =
                self.pending_conf_index > self.log.applied || conf_change_at.is_some();
            let already_joint = self.prs.config.is_joint();
            if already_pending || already_joint != cc.leaves_joint() {
                return Err(Error::ProposalDropped);
            }
            conf_change_at = Some(i as u64);
        }
        if !self.append_entry(&mut entries) {
            return Err(Error::ProposalDropped);
        }
        if let Some(i) = conf_change_at {
            self.pending_conf_index = entries[0].index + i;
        }
        self.bcast_append();
        Ok(())
    }

    fn leader_read_index(&mut self, m: Message) -> Result<(), Error> {
        let local = m.from == self.id || m.from == 0;
        let dropped = if local {
            Err(Error::ProposalDropped)
        } else {
            Ok(())
        };
        if !self.committed_entry_in_current_term() {
            // Our commit index may still lag entries committed by earlier leaders.
            if self.pending_reads.len() >= self.max_pending_reads {
                return dropped;
            }
            self.pending_reads.push(m);
            return Ok(());
        }
        if self.prs.is_singleton() {
            let index = self.log.committed;
            self.respond_read(m, index);
            return Ok(());
        }
        if self.read_only.len() >= self.max_pending_reads {
            return dropped;
        }
        let ctx = m.context.clone();
        self.read_only.add_request(self.log.committed, m, self.id);
        let _ = self.read_only.recv_ack(self.id, &ctx);
        self.bcast_heartbeat();
        Ok(())
    }

    fn respond_read(&mut self, req: Message, index: u64) {
        if req.from == self.id || req.from == 0 {
            self.read_states.push(ReadState {
                index,
                request_ctx: req.context,
            });
        } else {
            self.send(Message {
                kind: MessageType::ReadIndexResp,
                to: req.from,
                index,
                context: req.context,
                ..Message::default()
            });
        }
    }

    fn step_candidate(&mut self, m: Message) -> Result<(), Error> {
        let my_resp = if self.role == StateRole::PreCandidate {
            MessageType::RequestPreVoteResponse
        } else {
            MessageType::RequestVoteResponse
        };
        match m.kind {
            MessageType::Propose => return Err(Error::ProposalDropped),
            MessageType::ReadIndex if m.from == self.id || m.from == 0 => {
                return Err(Error::ProposalDropped);
            }
            MessageType::Append => {
                self.become_follower(m.term, m.from);
                self.handle_append(m);
            }
            MessageType::Heartbeat => {
                self.become_follower(m.term, m.from);
                self.handle_heartbeat(m);
            }
            MessageType::Snapshot => {
                self.become_follower(m.term, m.from);
                self.handle_snapshot(m);
            }
            kind if kind == my_resp => match self.poll(m.from, !m.reject) {
                VoteResult::Won => {
                    if self.role == StateRole::PreCandidate {
                        self.campaign(CampaignType::Election);
                    } else {
                        self.become_leader();
                        self.bcast_append();
                    }
                }
                VoteResult::Lost => self.become_follower(self.term, 0),
                VoteResult::Pending => {}
            },
            _ => {}
        }
        Ok(())
    }

    fn step_follower(&mut self, m: Message) -> Result<(), Error> {
        match m.kind {
            MessageType::Propose => {
                if self.lead == 0 || self.disable_proposal_forwarding {
                    return Err(Error::ProposalDropped);
                }
                self.forward(m);
            }
            MessageType::Append => {
                self.election_elapsed = 0;
                self.lead = m.from;
                self.handle_append(m);
            }
            MessageType::Heartbeat => {
                self.election_elapsed = 0;
                self.lead = m.from;
                self.handle_heartbeat(m);
            }
            MessageType::Snapshot => {
                self.election_elapsed = 0;
                self.lead = m.from;
                self.handle_snapshot(m);
            }
            MessageType::TransferLeader if self.lead != 0 => self.forward(m),
            MessageType::TimeoutNow => {
                // Transfers skip pre-vote: the old leader asked for it, nothing is partitioned.
                self.hup(CampaignType::Transfer);
            }
            MessageType::ReadIndex => {
                if self.lead == 0 {
                    if m.from == self.id || m.from == 0 {
                        return Err(Error::ProposalDropped);
                    }
                    return Ok(());
                }
                self.forward(m);
            }
            MessageType::ReadIndexResp => {
                self.read_states.push(ReadState {
                    index: m.index,
                    request_ctx: m.context,
                });
            }
            _ => {}
        }
        Ok(())
    }

    fn handle_append(&mut self, m: Message) {
        if m.index < self.log.committed {
            let committed = self.log.committed;
            self.send(Message {
                kind: MessageType::AppendResponse,
                to: m.from,
                index: committed,
                ..Message::default()
            });
            return;
        }
        let contiguous = m
            .entries
            .iter()
            .zip(m.index + 1..)
            .all(|(e, index)| e.index == index);
        if !contiguous {
            // No correct leader sends this; appending it would corrupt the log.
            return;
        }
        // Past our last index `term()` reads 0, which must not match a forged term of 0.
        let appended = if m.index <= self.log.last_index() {
            self.log
                .maybe_append(m.index, m.log_term, m.commit, &m.entries)
        } else {
            None
        };
        match appended {
            Some(last) => self.send(Message {
                kind: MessageType::AppendResponse,
                to: m.from,
                index: last,
                ..Message::default()
            }),
            None => {
                // Suggest where the leader should probe next: the last entry whose term is
                // no newer than the leader's term at m.index, skipping whole terms at once.
                let hint = m.index.min(self.log.last_index());
                let (hint_index, hint_term) = self.log.find_conflict_by_term(hint, m.log_term);
                self.send(Message {
                    kind: MessageType::AppendResponse,
                    to: m.from,
                    index: m.index,
                    reject: true,
                    reject_hint: hint_index,
                    log_term: hint_term,
                    ..Message::default()
                });
            }
        }
    }

    fn handle_heartbeat(&mut self, m: Message) {
        self.log.commit_to(m.commit);
        self.send(Message {
            kind: MessageType::HeartbeatResponse,
            to: m.from,
            context: m.context,
            ..Message::default()
        });
    }

    fn handle_snapshot(&mut self, m: Message) {
        let Some(snapshot) = m.snapshot else {
            return;
        };
        let index = if self.restore(snapshot) {
            self.log.last_index()
        } else {
            self.log.committed
        };
        self.send(Message {
            kind: MessageType::AppendResponse,
            to: m.from,
            index,
            ..Message::default()
        });
    }

    /// Installs `snapshot` if it is news; false if ignored.
    fn restore(&mut self, snapshot: Snapshot) -> bool {
        let meta = &snapshot.metadata;
        if meta.index <= self.log.committed {
            return false;
        }
        // Unlike etcd, a snapshot whose membership does not include us is installed too: a
        // node being added is sent the leader's latest snapshot, which may predate its
        // addition. Without a progress entry for itself it can neither campaign nor
        // propose until it applies the entry that adds it.
        if self.log.match_term(meta.index, meta.term) {
            // We already hold the snapshot's last entry: just fast-forward the commit.
            self.log.commit_to(meta.index);
            return false;
        }
        let cs = meta.conf_state.clone();
        // Validate the membership before touching the log: a snapshot with an impossible
        // configuration (no correct leader sends one) is ignored rather than installed.
        // After the restore the log ends at the snapshot's index.
        let Ok((config, progress)) = confchange::restore(&cs, meta.index, self.prs.max_inflight)
        else {
            return false;
        };
        self.log.restore(snapshot);
        let got = self.switch_to_config(config, progress);
        assert_eq!(got, cs, "restored configuration must equal the snapshot's");
        true
    }

    // ----- membership ----------------------------------------------------------------------

    pub fn apply_conf_change(&mut self, cc: &ConfChange) -> Result<ConfState, Error> {
        let changer = Changer {
            config: self.prs.config.clone(),
            progress: self.prs.progress.clone(),
            last_index: self.log.last_index(),
            max_inflight: self.prs.max_inflight,
        };
        let (config, progress) = if cc.leaves_joint() {
            changer.leave_joint()?
        } else if let Some(auto_leave) = cc.enters_joint() {
            changer.enter_joint(auto_leave, &cc.changes)?
        } else {
            changer.simple(&cc.changes)?
        };
        Ok(self.switch_to_config(config, progress))
    }

    fn switch_to_config(&mut self, config: TrackerConfig, progress: ProgressMap) -> ConfState {
        self.prs.config = config;
        self.prs.progress = progress;
        let cs = self.prs.config.to_conf_state();
        if self.role != StateRole::Leader {
            return cs;
        }
        if self.maybe_commit() {
            self.on_commit_advanced();
        } else {
            for id in self.peers() {
                self.maybe_send_append(id, false);
            }
        }
        if self.lead_transferee != 0 && !self.prs.config.voters.contains(self.lead_transferee) {
            self.abort_leader_transfer();
        }
        self.hand_off_if_not_voter();
        cs
    }
}
