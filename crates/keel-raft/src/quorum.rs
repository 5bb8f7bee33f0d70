//! Majority and joint quorums: commit indexes and election outcomes.

use std::collections::{BTreeMap, BTreeSet};

use crate::NodeId;

/// Outcome of counting votes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteResult {
    /// Not decided yet: enough voters have not answered.
    Pending,
    /// A quorum rejected.
    Lost,
    /// A quorum granted.
    Won,
}

/// A set of voters deciding by simple majority.
pub type MajorityConfig = BTreeSet<NodeId>;

/// The largest index that a majority of `voters` has acknowledged (`u64::MAX` for no voters,
/// so an empty half never holds back a joint configuration).
pub fn majority_committed(voters: &MajorityConfig, acked: impl Fn(NodeId) -> u64) -> u64 {
    if voters.is_empty() {
        return u64::MAX;
    }
    let mut idx: Vec<u64> = voters.iter().map(|&id| acked(id)).collect();
    idx.sort_unstable_by(|a, b| b.cmp(a));
    idx[voters.len() / 2]
}

/// Majority vote over `voters` (`Won` for no voters).
pub fn majority_vote(voters: &MajorityConfig, votes: &BTreeMap<NodeId, bool>) -> VoteResult {
    if voters.is_empty() {
        return VoteResult::Won;
    }
    let (mut yes, mut missing) = (0usize, 0usize);
    for id in voters {
        match votes.get(id) {
            Some(true) => yes += 1,
            Some(false) => {}
            None => missing += 1,
        }
    }
    let quorum = voters.len() / 2 + 1;
    if yes >= quorum {
        VoteResult::Won
    } else if yes + missing >= quorum {
        VoteResult::Pending
    } else {
        VoteResult::Lost
    }
}

/// Incoming and outgoing voters; outside joint consensus the outgoing half is empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JointConfig {
    /// The (incoming) voters.
    pub incoming: MajorityConfig,
    /// The outgoing voters while joint.
    pub outgoing: MajorityConfig,
}

impl JointConfig {
    /// Every voter of either half.
    pub fn ids(&self) -> BTreeSet<NodeId> {
        self.incoming.union(&self.outgoing).copied().collect()
    }

    /// Whether `id` votes in either half.
    pub fn contains(&self, id: NodeId) -> bool {
        self.incoming.contains(&id) || self.outgoing.contains(&id)
    }

    /// Largest index acknowledged by a majority of both halves.
    pub fn committed(&self, acked: impl Fn(NodeId) -> u64) -> u64 {
        majority_committed(&self.incoming, &acked).min(majority_committed(&self.outgoing, &acked))
    }

    /// Joint vote: won only when both halves win, lost when either loses.
    pub fn vote_result(&self, votes: &BTreeMap<NodeId, bool>) -> VoteResult {
        let a = majority_vote(&self.incoming, votes);
        let b = majority_vote(&self.outgoing, votes);
        if a == b {
            a
        } else if a == VoteResult::Lost || b == VoteResult::Lost {
            VoteResult::Lost
        } else {
            VoteResult::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[NodeId]) -> MajorityConfig {
        ids.iter().copied().collect()
    }

    #[test]
    fn majority_commit_index() {
        let acked = |id: NodeId| [0, 5, 3, 9, 1, 7][id as usize];
        assert_eq!(majority_committed(&set(&[1]), acked), 5);
        assert_eq!(majority_committed(&set(&[1, 2]), acked), 3);
        assert_eq!(majority_committed(&set(&[1, 2, 3]), acked), 5);
        assert_eq!(majority_committed(&set(&[1, 2, 3, 4]), acked), 3);
        assert_eq!(majority_committed(&set(&[1, 2, 3, 4, 5]), acked), 5);
        assert_eq!(majority_committed(&set(&[]), acked), u64::MAX);
    }

    #[test]
    fn joint_commit_is_min_of_halves() {
        let acked = |id: NodeId| [0, 5, 3, 9, 1, 7][id as usize];
        let j = JointConfig {
            incoming: set(&[1, 2, 3]),
            outgoing: set(&[2, 4, 5]),
        };
        assert_eq!(j.committed(acked), 3);
        let simple = JointConfig {
            incoming: set(&[1, 2, 3]),
            outgoing: set(&[]),
        };
        assert_eq!(simple.committed(acked), 5);
    }

    #[test]
    fn votes() {
        let mut v = BTreeMap::new();
        let c = set(&[1, 2, 3]);
        assert_eq!(majority_vote(&c, &v), VoteResult::Pending);
        v.insert(1, true);
        assert_eq!(majority_vote(&c, &v), VoteResult::Pending);
        v.insert(2, false);
        assert_eq!(majority_vote(&c, &v), VoteResult::Pending);
        v.insert(3, false);
        assert_eq!(majority_vote(&c, &v), VoteResult::Lost);
        v.insert(3, true);
        assert_eq!(majority_vote(&c, &v), VoteResult::Won);
        let j = JointConfig {
            incoming: set(&[1, 2, 3]),
            outgoing: set(&[4, 5]),
        };
        assert_eq!(j.vote_result(&v), VoteResult::Pending);
        v.insert(4, false);
        assert_eq!(j.vote_result(&v), VoteResult::Lost);
        v.insert(4, true);
        v.insert(5, true);
        assert_eq!(j.vote_result(&v), VoteResult::Won);
    }
}
