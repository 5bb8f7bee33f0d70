//! Raft paper §6, cluster membership changes: single-node changes, learners, and joint
//! consensus (etcd's ConfChangeV2).

mod support;

use keel_raft::{
    ConfChange, ConfChangeSingle, ConfChangeTransition, ConfChangeType, Error, MemStorage,
    StateRole,
};
use support::*;

fn change(kind: ConfChangeType, node_id: u64) -> ConfChangeSingle {
    ConfChangeSingle { kind, node_id }
}

/// A node joining a cluster bootstrapped as {1, 2, 3}: like the founders, it starts from the
/// bootstrap membership and learns every later change from the log.
fn joiner() -> MemStorage {
    MemStorage::new_with_conf_state(voters(&[1, 2, 3]))
}

fn propose_cc(c: &mut Cluster, id: u64, cc: ConfChange) -> Result<(), Error> {
    let r = c.raw(id).propose_conf_change(cc);
    c.stabilize();
    r
}

/// Commits a no-op round so every node has applied what the leader committed.
fn settle(c: &mut Cluster) {
    for _ in 0..3 {
        c.tick_all();
    }
}

#[test]
fn add_a_voter_that_catches_up_from_scratch() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.campaign(1);
    c.propose(1, b"before").expect("propose");
    c.add_node(config(4), joiner());
    propose_cc(&mut c, 1, ConfChange::single(ConfChangeType::AddNode, 4)).expect("add 4");
    settle(&mut c);
    for id in c.ids() {
        assert_eq!(
            c.node(id).status().conf_state.voters,
            vec![1, 2, 3, 4],
            "node {id}"
        );
    }
    assert_eq!(c.node(4).applied_data(), vec![b"before".to_vec()]);
    // Four voters: a majority is three.
    c.isolate(3);
    c.isolate(4);
    let before = c.committed(1);
    c.propose(1, b"needs 3 of 4").expect("propose");
    assert_eq!(c.committed(1), before);
    c.heal();
    settle(&mut c);
    assert_eq!(c.committed(1), before + 1);
    c.check_safety();
}

#[test]
fn removed_voter_stops_participating() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.campaign(1);
    propose_cc(&mut c, 1, ConfChange::single(ConfChangeType::RemoveNode, 3)).expect("remove 3");
    settle(&mut c);
    assert_eq!(c.node(1).status().conf_state.voters, vec![1, 2]);
    assert_eq!(c.node(3).status().conf_state.voters, vec![1, 2]);
    // Node 3 never campaigns again, however long it waits alone.
    c.isolate(3);
    for _ in 0..100 {
        c.tick(3);
        c.stabilize();
    }
    assert_eq!(c.role(3), StateRole::Follower);
    assert_eq!(c.raw(3).campaign(), Ok(()));
    c.stabilize();
    assert_eq!(
        c.role(3),
        StateRole::Follower,
        "campaign is a no-op for a removed node"
    );
    c.propose(1, b"two voters").expect("propose");
    assert_eq!(c.node(2).applied_data(), vec![b"two voters".to_vec()]);
}

#[test]
fn learner_replicates_without_voting_and_can_be_promoted() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.campaign(1);
    c.add_node(config(4), joiner());
    propose_cc(&mut c, 1, ConfChange::single(ConfChangeType::AddLearner, 4)).expect("learner");
    c.propose(1, b"x").expect("propose");
    settle(&mut c);
    let st = c.node(1).status();
    assert_eq!(st.conf_state.learners, vec![4]);
    assert!(st.progress[&4].is_learner);
    assert_eq!(c.node(4).applied_data(), vec![b"x".to_vec()]);
    // The learner does not count towards the quorum.
    c.isolate(2);
    c.isolate(3);
    let before = c.committed(1);
    c.propose(1, b"y").expect("propose");
    assert_eq!(c.committed(1), before, "leader + learner is no majority");
    c.heal();
    settle(&mut c);
    // A learner never campaigns.
    c.isolate(4);
    for _ in 0..100 {
        c.tick(4);
        c.stabilize();
    }
    assert_eq!(c.role(4), StateRole::Follower);
    c.heal();
    settle(&mut c);
    propose_cc(&mut c, 1, ConfChange::single(ConfChangeType::AddNode, 4)).expect("promote");
    settle(&mut c);
    let cs = c.node(4).status().conf_state;
    assert_eq!(cs.voters, vec![1, 2, 3, 4]);
    assert!(cs.learners.is_empty());
    c.check_safety();
}

#[test]
fn replacing_two_voters_goes_through_joint_consensus_and_leaves_automatically() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.campaign(1);
    c.add_node(config(4), joiner());
    c.add_node(config(5), joiner());
    let cc = ConfChange {
        transition: ConfChangeTransition::Auto,
        changes: vec![
            change(ConfChangeType::AddNode, 4),
            change(ConfChangeType::AddNode, 5),
            change(ConfChangeType::RemoveNode, 2),
            change(ConfChangeType::RemoveNode, 3),
        ],
        context: Vec::new(),
    };
    propose_cc(&mut c, 1, cc).expect("joint");
    settle(&mut c);
    for id in [1, 4, 5] {
        let cs = c.node(id).status().conf_state;
        assert_eq!(cs.voters, vec![1, 4, 5], "node {id}");
        assert!(
            cs.voters_outgoing.is_empty(),
            "joint config left automatically on {id}"
        );
    }
    // The new configuration works without the removed nodes.
    c.isolate(2);
    c.isolate(3);
    c.propose(1, b"new config").expect("propose");
    assert_eq!(c.node(5).applied_data(), vec![b"new config".to_vec()]);
    c.check_safety();
}

#[test]
fn explicit_joint_config_needs_both_majorities_until_left() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.campaign(1);
    c.add_node(config(4), joiner());
    c.add_node(config(5), joiner());
    let cc = ConfChange {
        transition: ConfChangeTransition::Explicit,
        changes: vec![
            change(ConfChangeType::AddNode, 4),
            change(ConfChangeType::AddNode, 5),
            change(ConfChangeType::RemoveNode, 3),
        ],
        context: Vec::new(),
    };
    propose_cc(&mut c, 1, cc).expect("enter joint");
    settle(&mut c);
    let cs = c.node(1).status().conf_state;
    assert_eq!(cs.voters, vec![1, 2, 4, 5]);
    assert_eq!(cs.voters_outgoing, vec![1, 2, 3]);
    assert!(!cs.auto_leave);
    // Old majority {1,2} present but new majority {1,2,4,5} needs three: cut 4 and 5.
    c.isolate(4);
    c.isolate(5);
    let before = c.committed(1);
    c.propose(1, b"joint").expect("propose");
    assert_eq!(c.committed(1), before, "incoming half has no majority");
    c.heal();
    settle(&mut c);
    assert_eq!(c.committed(1), before + 1);
    // Only a leave may be proposed while joint.
    assert_eq!(
        propose_cc(&mut c, 1, ConfChange::single(ConfChangeType::AddNode, 6)),
        Err(Error::ProposalDropped)
    );
    propose_cc(&mut c, 1, ConfChange::leave_joint()).expect("leave");
    settle(&mut c);
    let cs = c.node(1).status().conf_state;
    assert_eq!(cs.voters, vec![1, 2, 4, 5]);
    assert!(cs.voters_outgoing.is_empty());
    c.check_safety();
}

#[test]
fn only_one_conf_change_may_be_pending() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.campaign(1);
    c.isolate(2);
    c.isolate(3);
    c.raw(1)
        .propose_conf_change(ConfChange::single(ConfChangeType::AddLearner, 4))
        .expect("first");
    assert_eq!(
        c.raw(1)
            .propose_conf_change(ConfChange::single(ConfChangeType::AddLearner, 5)),
        Err(Error::ProposalDropped)
    );
    c.heal();
    settle(&mut c);
    c.raw(1)
        .propose_conf_change(ConfChange::single(ConfChangeType::AddLearner, 5))
        .expect("allowed once the first is applied");
}

#[test]
fn removed_leader_steps_down_and_the_rest_elect_a_new_one() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.campaign(1);
    propose_cc(&mut c, 1, ConfChange::single(ConfChangeType::RemoveNode, 1)).expect("remove self");
    settle(&mut c);
    assert_ne!(c.role(1), StateRole::Leader);
    c.tick_until(100, |c| c.leader().is_some_and(|l| l != 1));
    let leader = c.leader().expect("leader");
    c.propose(leader, b"without 1").expect("propose");
    assert_eq!(c.node(2).applied_data(), vec![b"without 1".to_vec()]);
    assert_eq!(c.node(2).status().conf_state.voters, vec![2, 3]);
}

#[test]
fn demoting_a_voter_in_joint_config_goes_through_learners_next() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.campaign(1);
    let cc = ConfChange {
        transition: ConfChangeTransition::Implicit,
        changes: vec![change(ConfChangeType::AddLearner, 3)],
        context: Vec::new(),
    };
    propose_cc(&mut c, 1, cc).expect("demote");
    settle(&mut c);
    let cs = c.node(3).status().conf_state;
    assert_eq!(cs.voters, vec![1, 2]);
    assert_eq!(cs.learners, vec![3]);
    assert!(cs.voters_outgoing.is_empty() && cs.learners_next.is_empty());
}
