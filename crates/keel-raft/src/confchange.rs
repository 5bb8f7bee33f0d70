//! Applying membership changes to the tracker: simple changes, entering and leaving joint
//! consensus, and restoring from a [`ConfState`]. Every function works on copies and
//! returns the new configuration only if it passes [`check_invariants`].

use crate::tracker::{Progress, ProgressMap, TrackerConfig};
use crate::types::{ConfChangeSingle, ConfChangeType, ConfState};
use crate::{Error, NodeId};

/// Works on a copy of the tracker's configuration and progress.
pub struct Changer {
    pub config: TrackerConfig,
    pub progress: ProgressMap,
    /// The leader's last index, where new nodes start probing.
    pub last_index: u64,
    pub max_inflight: usize,
}

fn invalid(why: impl Into<String>) -> Error {
    Error::ConfChangeInvalid(why.into())
}

impl Changer {
    /// Enters a joint configuration: the current voters become the outgoing half and the
    /// changes apply to the incoming half.
    pub fn enter_joint(
        mut self,
        auto_leave: bool,
        changes: &[ConfChangeSingle],
    ) -> Result<(TrackerConfig, ProgressMap), Error> {
        if self.config.is_joint() {
            return Err(invalid("config is already joint"));
        }
        if self.config.voters.incoming.is_empty() {
            return Err(invalid("can't make a zero-voter config joint"));
        }
        self.config.voters.outgoing = self.config.voters.incoming.clone();
        self.apply(changes)?;
        self.config.auto_leave = auto_leave;
        self.finish()
    }

    /// Leaves a joint configuration: the outgoing half is dropped, pending learners become
    /// learners, and nodes left in no role are forgotten.
    pub fn leave_joint(mut self) -> Result<(TrackerConfig, ProgressMap), Error> {
        if !self.config.is_joint() {
            return Err(invalid("can't leave a non-joint config"));
        }
        let next: Vec<NodeId> = self.config.learners_next.iter().copied().collect();
        for id in next {
            self.config.learners.insert(id);
            if let Some(pr) = self.progress.get_mut(&id) {
                pr.is_learner = true;
            }
        }
        self.config.learners_next.clear();
        let outgoing = std::mem::take(&mut self.config.voters.outgoing);
        for id in outgoing {
            if !self.config.voters.incoming.contains(&id) && !self.config.learners.contains(&id) {
                self.progress.remove(&id);
            }
        }
        self.config.auto_leave = false;
        self.finish()
    }

    /// Applies changes that alter at most one voter without joint consensus.
    pub fn simple(
        mut self,
        changes: &[ConfChangeSingle],
    ) -> Result<(TrackerConfig, ProgressMap), Error> {
        if self.config.is_joint() {
            return Err(invalid("can't apply simple config change in joint config"));
        }
        let before = self.config.voters.incoming.clone();
        self.apply(changes)?;
        let changed = before
            .symmetric_difference(&self.config.voters.incoming)
            .count();
        if changed > 1 {
            return Err(invalid(
                "more than one voter changed without entering joint config",
            ));
        }
        self.finish()
    }

    fn apply(&mut self, changes: &[ConfChangeSingle]) -> Result<(), Error> {
        for c in changes {
            if c.node_id == 0 {
                continue;
            }
            match c.kind {
                ConfChangeType::AddNode => self.make_voter(c.node_id),
                ConfChangeType::AddLearner => self.make_learner(c.node_id),
                ConfChangeType::RemoveNode => self.remove(c.node_id),
            }
        }
        if self.config.voters.incoming.is_empty() {
            return Err(invalid("removed all voters"));
        }
        Ok(())
    }

    fn init_progress(&mut self, id: NodeId, is_learner: bool) {
        if is_learner {
            self.config.learners.insert(id);
        } else {
            self.config.voters.incoming.insert(id);
        }
        self.progress.insert(
            id,
            Progress::new(self.last_index.max(1), self.max_inflight, is_learner),
        );
    }

    fn make_voter(&mut self, id: NodeId) {
        let Some(pr) = self.progress.get_mut(&id) else {
            self.init_progress(id, false);
            return;
        };
        pr.is_learner = false;
        self.config.learners.remove(&id);
        self.config.learners_next.remove(&id);
        self.config.voters.incoming.insert(id);
    }

    fn make_learner(&mut self, id: NodeId) {
        let Some(pr) = self.progress.get(&id) else {
            self.init_progress(id, true);
            return;
        };
        if pr.is_learner {
            return;
        }
        let saved = pr.clone();
        self.remove(id);
        let pr = self.progress.entry(id).or_insert(saved);
        if self.config.voters.outgoing.contains(&id) {
            // Still an outgoing voter: it becomes a learner when the joint config is left.
            self.config.learners_next.insert(id);
        } else {
            pr.is_learner = true;
            self.config.learners.insert(id);
        }
    }

    fn remove(&mut self, id: NodeId) {
        if !self.progress.contains_key(&id) {
            return;
        }
        self.config.voters.incoming.remove(&id);
        self.config.learners.remove(&id);
        self.config.learners_next.remove(&id);
        if !self.config.voters.outgoing.contains(&id) {
            self.progress.remove(&id);
        }
    }

    fn finish(self) -> Result<(TrackerConfig, ProgressMap), Error> {
        check_invariants(&self.config, &self.progress)?;
        Ok((self.config, self.progress))
    }
}

/// Builds the tracker state a [`ConfState`] describes, with fresh progress for every node.
pub fn restore(
    cs: &ConfState,
    last_index: u64,
    max_inflight: usize,
) -> Result<(TrackerConfig, ProgressMap), Error> {
    let mut config = TrackerConfig {
        auto_leave: cs.auto_leave,
        ..TrackerConfig::default()
    };
    config.voters.incoming.extend(cs.voters.iter().copied());
    config
        .voters
        .outgoing
        .extend(cs.voters_outgoing.iter().copied());
    config.learners.extend(cs.learners.iter().copied());
    config
        .learners_next
        .extend(cs.learners_next.iter().copied());
    let mut progress = ProgressMap::new();
    let next = last_index.max(1);
    for id in config.voters.ids() {
        progress.insert(id, Progress::new(next, max_inflight, false));
    }
    for &id in &config.learners {
        progress.insert(id, Progress::new(next, max_inflight, true));
    }
    check_invariants(&config, &progress)?;
    Ok((config, progress))
}

/// The rules every configuration obeys (etcd's `checkInvariants`).
pub fn check_invariants(config: &TrackerConfig, progress: &ProgressMap) -> Result<(), Error> {
    for id in config
        .voters
        .ids()
        .iter()
        .chain(&config.learners)
        .chain(&config.learners_next)
    {
        if !progress.contains_key(id) {
            return Err(invalid(format!("no progress for {id}")));
        }
    }
    for id in &config.learners_next {
        if !config.voters.outgoing.contains(id) {
            return Err(invalid(format!(
                "{id} is in learners_next, but not outgoing"
            )));
        }
        if progress.get(id).is_some_and(|p| p.is_learner) {
            return Err(invalid(format!(
                "{id} is in learners_next, but is already marked as learner"
            )));
        }
    }
    for id in &config.learners {
        if config.voters.contains(*id) {
            return Err(invalid(format!("{id} is a learner and a voter")));
        }
        if !progress.get(id).is_some_and(|p| p.is_learner) {
            return Err(invalid(format!(
                "{id} is in learners, but is not marked as learner"
            )));
        }
    }
    if !config.is_joint() {
        if !config.learners_next.is_empty() {
            return Err(invalid("learners_next must be empty when not joint"));
        }
        if config.auto_leave {
            return Err(invalid("auto_leave must be false when not joint"));
        }
    }
    for (id, pr) in progress {
        let known = config.voters.contains(*id) || config.learners.contains(id);
        if !known {
            return Err(invalid(format!(
                "progress for {id}, which is in no configuration"
            )));
        }
        if pr.is_learner && config.voters.contains(*id) {
            return Err(invalid(format!("voter {id} is marked as learner")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ConfChangeSingle;

    fn changer(cs: &ConfState) -> Changer {
        let (config, progress) = restore(cs, 10, 8).expect("restore");
        Changer {
            config,
            progress,
            last_index: 10,
            max_inflight: 8,
        }
    }

    fn add(id: NodeId) -> ConfChangeSingle {
        ConfChangeSingle {
            kind: ConfChangeType::AddNode,
            node_id: id,
        }
    }
    fn learner(id: NodeId) -> ConfChangeSingle {
        ConfChangeSingle {
            kind: ConfChangeType::AddLearner,
            node_id: id,
        }
    }
    fn remove(id: NodeId) -> ConfChangeSingle {
        ConfChangeSingle {
            kind: ConfChangeType::RemoveNode,
            node_id: id,
        }
    }

    fn cs(voters: &[NodeId]) -> ConfState {
        ConfState {
            voters: voters.to_vec(),
            ..ConfState::default()
        }
    }

    #[test]
    fn simple_changes_allow_one_voter() {
        let (c, _) = changer(&cs(&[1, 2, 3])).simple(&[add(4)]).expect("add");
        assert_eq!(c.to_conf_state().voters, vec![1, 2, 3, 4]);
        assert!(changer(&cs(&[1, 2, 3])).simple(&[add(4), add(5)]).is_err());
        assert!(changer(&cs(&[1])).simple(&[remove(1)]).is_err());
        let (c, _) = changer(&cs(&[1, 2, 3]))
            .simple(&[learner(4), learner(5)])
            .expect("learners do not vote");
        assert_eq!(c.to_conf_state().learners, vec![4, 5]);
    }

    #[test]
    fn joint_demotion_goes_through_learners_next() {
        let (config, progress) = changer(&cs(&[1, 2, 3]))
            .enter_joint(true, &[learner(3), add(4)])
            .expect("enter");
        let st = config.to_conf_state();
        assert_eq!(st.voters, vec![1, 2, 4]);
        assert_eq!(st.voters_outgoing, vec![1, 2, 3]);
        assert_eq!(st.learners_next, vec![3]);
        assert!(st.auto_leave);
        let ch = Changer {
            config,
            progress,
            last_index: 10,
            max_inflight: 8,
        };
        let (config, progress) = ch.leave_joint().expect("leave");
        let st = config.to_conf_state();
        assert_eq!(st.voters, vec![1, 2, 4]);
        assert_eq!(st.learners, vec![3]);
        assert!(st.voters_outgoing.is_empty() && st.learners_next.is_empty());
        assert!(progress[&3].is_learner);
    }

    #[test]
    fn joint_removal_forgets_node_on_leave() {
        let (config, progress) = changer(&cs(&[1, 2, 3]))
            .enter_joint(false, &[remove(3), add(5)])
            .expect("enter");
        assert!(progress.contains_key(&3), "outgoing voter keeps progress");
        assert!(changer(&cs(&[1, 2, 3])).leave_joint().is_err());
        let (c2, p2) = Changer {
            config,
            progress,
            last_index: 10,
            max_inflight: 8,
        }
        .leave_joint()
        .expect("leave");
        assert!(!p2.contains_key(&3));
        assert_eq!(c2.to_conf_state().voters, vec![1, 2, 5]);
    }

    #[test]
    fn restore_rejects_inconsistent_state() {
        let bad = ConfState {
            voters: vec![1, 2],
            learners: vec![2],
            ..ConfState::default()
        };
        assert!(restore(&bad, 1, 8).is_err());
        let bad = ConfState {
            voters: vec![1],
            learners_next: vec![2],
            ..ConfState::default()
        };
        assert!(restore(&bad, 1, 8).is_err());
        let ok = ConfState {
            voters: vec![1, 4],
            voters_outgoing: vec![1, 2, 3],
            learners_next: vec![3],
            learners: vec![5],
            auto_leave: true,
        };
        let (config, _) = restore(&ok, 1, 8).expect("restore");
        assert_eq!(config.to_conf_state(), ok);
    }
}
