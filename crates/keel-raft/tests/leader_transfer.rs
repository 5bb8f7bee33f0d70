//! Leadership transfer (thesis §3.10): the leader brings the transferee up to date and sends
//! it `TimeoutNow`; proposals are refused while the transfer is in progress.

mod support;

use keel_raft::{ConfChange, ConfChangeType, Error, MemStorage, MessageType, StateRole};
use support::*;

fn lease_cluster() -> Cluster {
    Cluster::with_config(&[1, 2, 3], |cfg| {
        cfg.check_quorum = true;
        cfg.pre_vote = true;
    })
}

#[test]
fn transfer_to_an_up_to_date_follower() {
    let mut c = lease_cluster();
    c.campaign(1);
    c.propose(1, b"x").expect("propose");
    let term = c.term(1);
    c.raw(1).transfer_leader(2).expect("transfer");
    c.stabilize();
    assert_eq!(c.leader(), Some(2));
    assert_eq!(c.term(2), term + 1);
    assert_eq!(c.role(1), StateRole::Follower);
    c.propose(2, b"y").expect("new leader accepts");
    assert_eq!(c.node(1).applied_data(), vec![b"x".to_vec(), b"y".to_vec()]);
}

#[test]
fn transfer_to_a_lagging_follower_catches_it_up_first() {
    let mut c = lease_cluster();
    c.campaign(1);
    c.isolate(3);
    for i in 0..10u8 {
        c.propose(1, &[i]).expect("propose");
    }
    c.heal();
    c.raw(1).transfer_leader(3).expect("transfer");
    c.stabilize();
    assert_eq!(c.leader(), Some(3));
    assert_eq!(c.node(3).applied_data().len(), 10);
    c.check_safety();
}

#[test]
fn proposals_are_refused_during_a_transfer_and_accepted_after_it_times_out() {
    let mut c = lease_cluster();
    c.campaign(1);
    c.isolate(3);
    c.raw(1).transfer_leader(3).expect("transfer");
    c.stabilize();
    assert_eq!(c.node(1).status().lead_transferee, 3);
    assert_eq!(c.propose(1, b"during"), Err(Error::ProposalDropped));
    let mut ticks = 0;
    while c.node(1).status().lead_transferee != 0 {
        c.tick(1);
        c.tick(2);
        c.stabilize();
        ticks += 1;
        assert!(
            ticks <= 10,
            "transfer not aborted after an election timeout"
        );
    }
    assert_eq!(c.role(1), StateRole::Leader);
    c.propose(1, b"after").expect("accepted again");
}

#[test]
fn transfer_to_self_or_to_a_learner_is_ignored() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.campaign(1);
    c.add_node(
        config(4),
        MemStorage::new_with_conf_state(voters(&[1, 2, 3])),
    );
    c.raw(1)
        .propose_conf_change(ConfChange::single(ConfChangeType::AddLearner, 4))
        .expect("learner");
    c.stabilize();
    c.tick_all();
    c.raw(1).transfer_leader(1).expect("self");
    c.stabilize();
    assert_eq!(c.node(1).status().lead_transferee, 0);
    c.raw(1).transfer_leader(4).expect("learner");
    c.stabilize();
    assert_eq!(c.node(1).status().lead_transferee, 0);
    assert_eq!(c.leader(), Some(1));
}

#[test]
fn transfer_requested_on_a_follower_is_forwarded_to_the_leader() {
    let mut c = lease_cluster();
    c.campaign(1);
    c.raw(2).transfer_leader(2).expect("transfer");
    c.stabilize();
    assert_eq!(c.leader(), Some(2));
}

#[test]
fn timeout_now_campaign_overrides_the_leader_lease() {
    let mut c = lease_cluster();
    c.campaign(1);
    // Followers heard from the leader just now: an ordinary campaign by 3 would be ignored.
    c.raw(3).campaign().expect("campaign");
    c.stabilize();
    assert_eq!(c.leader(), Some(1));
    assert_eq!(
        c.role(3),
        StateRole::PreCandidate,
        "its pre-votes were ignored"
    );
    // The leader's next heartbeat returns it to follower.
    c.tick_all();
    assert_eq!(c.role(3), StateRole::Follower);
    let mut seen_transfer_ctx = false;
    c.filter = Some(Box::new(move |m| {
        if m.kind == MessageType::RequestVote {
            seen_transfer_ctx |= m.context == keel_raft::CAMPAIGN_TRANSFER_CONTEXT;
            assert!(
                seen_transfer_ctx,
                "transfer votes carry the transfer context"
            );
        }
        true
    }));
    c.raw(1).transfer_leader(3).expect("transfer");
    c.stabilize();
    assert_eq!(c.leader(), Some(3));
}
