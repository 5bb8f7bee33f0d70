//! Node configuration and its limits.

use crate::{Error, NodeId};

/// A deliberately wrong behaviour, compiled in only with the `planted-bugs` feature, so the
/// simulator can prove it catches real safety violations.
#[cfg(feature = "planted-bugs")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlantedBug {
    /// The leader commits an index once a quorum holds it, even if the entry there is from an
    /// earlier term (the Raft paper's Figure 8 bug).
    CommitPreviousTermEntries,
}

/// Configuration of one Raft node. Sizes are in bytes, times in ticks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// This node's id; never 0.
    pub id: NodeId,
    /// A follower that hears nothing from a leader for a random time in
    /// `[election_tick, 2 * election_tick)` ticks starts an election.
    pub election_tick: u64,
    /// A leader sends heartbeats every `heartbeat_tick` ticks; must be below `election_tick`.
    pub heartbeat_tick: u64,
    /// The last index the application has applied (when restarting); 0 for a fresh node.
    pub applied: u64,
    /// Upper bound on the entry bytes in one append message (at least one entry is sent).
    pub max_size_per_msg: u64,
    /// Upper bound on append messages in flight to one follower in replicate state.
    pub max_inflight_msgs: usize,
    /// Upper bound on the bytes of proposed but uncommitted entries on the leader; further
    /// proposals fail with [`Error::ProposalDropped`]. 0 means unlimited.
    pub max_uncommitted_entries_size: u64,
    /// Upper bound on the committed entry bytes returned in one `Ready` (at least one entry).
    pub max_committed_size_per_ready: u64,
    /// Upper bound on read requests waiting on the leader for confirmation; further requests
    /// fail with [`Error::ProposalDropped`] (local) or are dropped (forwarded).
    pub max_pending_read_index: usize,
    /// Leader steps down when it has not heard from a quorum for an election timeout, and
    /// followers that hear from a leader ignore vote requests for that long (leader lease).
    pub check_quorum: bool,
    /// Run a pre-vote round before incrementing the term, so a partitioned node rejoining
    /// does not disrupt the cluster.
    pub pre_vote: bool,
    /// Followers refuse proposals instead of forwarding them to the leader.
    pub disable_proposal_forwarding: bool,
    /// Seed of the election-timeout randomness (mixed with `id`, so nodes of one cluster may
    /// share it).
    pub seed: u64,
    /// A planted bug for the simulator's self-test; `None` in any real use.
    #[cfg(feature = "planted-bugs")]
    pub planted_bug: Option<PlantedBug>,
}

impl Config {
    /// etcd's defaults for node `id`: election 10 ticks, heartbeat 1 tick, 1 MiB messages,
    /// 256 in-flight appends, 1 GiB of uncommitted proposals.
    pub fn new(id: NodeId) -> Config {
        Config {
            id,
            election_tick: 10,
            heartbeat_tick: 1,
            applied: 0,
            max_size_per_msg: 1024 * 1024,
            max_inflight_msgs: 256,
            max_uncommitted_entries_size: 1 << 30,
            max_committed_size_per_ready: 64 * 1024 * 1024,
            max_pending_read_index: 4096,
            check_quorum: true,
            pre_vote: true,
            disable_proposal_forwarding: false,
            seed: 0,
            #[cfg(feature = "planted-bugs")]
            planted_bug: None,
        }
    }

    /// Checks the configuration is usable.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |why: &str| Err(Error::ConfigInvalid(why.to_string()));
        if self.id == 0 {
            return bad("id must not be 0");
        }
        if self.heartbeat_tick == 0 {
            return bad("heartbeat_tick must be greater than 0");
        }
        if self.election_tick <= self.heartbeat_tick {
            return bad("election_tick must be greater than heartbeat_tick");
        }
        if self.max_inflight_msgs == 0 {
            return bad("max_inflight_msgs must be greater than 0");
        }
        if self.max_size_per_msg == 0 {
            return bad("max_size_per_msg must be greater than 0");
        }
        if self.max_committed_size_per_ready == 0 {
            return bad("max_committed_size_per_ready must be greater than 0");
        }
        if self.max_pending_read_index == 0 {
            return bad("max_pending_read_index must be greater than 0");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_limits_are_checked() {
        assert_eq!(Config::new(1).validate(), Ok(()));
        assert!(Config::new(0).validate().is_err());
        let mut c = Config::new(1);
        c.election_tick = 1;
        assert!(c.validate().is_err());
        let mut c = Config::new(1);
        c.heartbeat_tick = 0;
        assert!(c.validate().is_err());
        let mut c = Config::new(1);
        c.max_inflight_msgs = 0;
        assert!(c.validate().is_err());
        let mut c = Config::new(1);
        c.max_size_per_msg = 0;
        assert!(c.validate().is_err());
    }
}
