//! Raft paper §5.2, leader election.

mod support;

use keel_raft::{MemStorage, MessageType, StateRole};
use support::*;

#[test]
fn followers_start_an_election_and_one_leader_wins() {
    let mut c = Cluster::new(&[1, 2, 3]);
    let leader = c.elect_any();
    let term = c.term(leader);
    for id in c.ids() {
        assert_eq!(c.term(id), term, "everyone learns the leader's term");
        if id != leader {
            assert_eq!(c.role(id), StateRole::Follower);
            assert_eq!(c.node(id).status().soft_state.leader_id, leader);
        }
    }
    assert_eq!(c.leaders.len(), 1);
}

#[test]
fn election_timeout_is_randomized_within_one_to_two_timeouts() {
    let mut fired_at = Vec::new();
    for seed in 0..20u64 {
        let mut cfg = config(1);
        cfg.seed = seed;
        let mut n = lone_node(cfg, MemStorage::new_with_conf_state(voters(&[1, 2, 3])));
        let mut ticks = 0;
        while n.status().soft_state.role == StateRole::Follower {
            n.tick();
            ticks += 1;
            assert!(ticks < 20, "no election within 2 * election_tick");
        }
        assert!(ticks >= 10, "election before election_tick: {ticks}");
        fired_at.push(ticks);
    }
    fired_at.sort_unstable();
    fired_at.dedup();
    assert!(fired_at.len() > 3, "timeouts are spread: {fired_at:?}");
}

#[test]
fn candidate_requests_votes_from_all_voters_after_persisting() {
    let mut n = lone_node(
        config(1),
        MemStorage::new_with_conf_state(voters(&[1, 2, 3])),
    );
    n.campaign().expect("campaign");
    let rd = n.ready();
    assert_eq!(rd.hard_state.map(|h| (h.term, h.vote)), Some((1, 1)));
    assert!(
        rd.must_sync,
        "a vote must be synced before vote requests leave"
    );
    assert!(rd.messages.is_empty());
    let mut to: Vec<u64> = rd
        .persisted_messages
        .iter()
        .map(|m| {
            assert_eq!(m.kind, MessageType::RequestVote);
            assert_eq!(m.term, 1);
            m.to
        })
        .collect();
    to.sort_unstable();
    assert_eq!(to, vec![2, 3]);
}

#[test]
fn a_node_votes_at_most_once_per_term() {
    let mut n = lone_node(
        config(1),
        MemStorage::new_with_conf_state(voters(&[1, 2, 3])),
    );
    n.step(msg(MessageType::RequestVote, 2, 1, 5))
        .expect("step");
    let out = drain(&mut n);
    assert_eq!(out.len(), 1);
    assert!(!out[0].reject);
    assert_eq!(n.status().hard_state.vote, 2);
    n.step(msg(MessageType::RequestVote, 3, 1, 5))
        .expect("step");
    let out = drain(&mut n);
    assert!(
        out[0].reject,
        "second candidate of the same term is refused"
    );
    n.step(msg(MessageType::RequestVote, 2, 1, 5))
        .expect("step");
    assert!(!drain(&mut n)[0].reject, "the same candidate may ask again");
}

#[test]
fn vote_is_refused_to_a_less_up_to_date_log() {
    let mut s = MemStorage::new_with_conf_state(voters(&[1, 2, 3]));
    s.append(&[ent(1, 1), ent(2, 2)]).expect("append");
    s.set_hard_state(keel_raft::HardState {
        term: 2,
        vote: 0,
        commit: 0,
    });
    let mut n = lone_node(config(1), s);
    let mut m = msg(MessageType::RequestVote, 2, 1, 3);
    m.log_term = 1;
    m.index = 5;
    n.step(m).expect("step");
    assert!(
        drain(&mut n)[0].reject,
        "older last term loses despite longer log"
    );
    let mut m = msg(MessageType::RequestVote, 3, 1, 3);
    m.log_term = 2;
    m.index = 1;
    n.step(m).expect("step");
    assert!(drain(&mut n)[0].reject, "same last term, shorter log");
    let mut m = msg(MessageType::RequestVote, 3, 1, 3);
    m.log_term = 2;
    m.index = 2;
    n.step(m).expect("step");
    assert!(!drain(&mut n)[0].reject, "equal log wins the vote");
}

#[test]
fn candidate_returns_to_follower_on_append_from_leader_of_its_term() {
    let mut n = lone_node(
        config(1),
        MemStorage::new_with_conf_state(voters(&[1, 2, 3])),
    );
    n.campaign().expect("campaign");
    drain(&mut n);
    assert_eq!(n.status().soft_state.role, StateRole::Candidate);
    n.step(msg(MessageType::Heartbeat, 2, 1, 1)).expect("step");
    let st = n.status();
    assert_eq!(st.soft_state.role, StateRole::Follower);
    assert_eq!(st.soft_state.leader_id, 2);
    assert_eq!(st.hard_state.term, 1);
}

#[test]
fn candidate_that_loses_becomes_follower() {
    let mut n = lone_node(
        config(1),
        MemStorage::new_with_conf_state(voters(&[1, 2, 3])),
    );
    n.campaign().expect("campaign");
    drain(&mut n);
    let mut rej = msg(MessageType::RequestVoteResponse, 2, 1, 1);
    rej.reject = true;
    n.step(rej.clone()).expect("step");
    assert_eq!(n.status().soft_state.role, StateRole::Candidate);
    rej.from = 3;
    n.step(rej).expect("step");
    assert_eq!(n.status().soft_state.role, StateRole::Follower);
}

#[test]
fn leader_steps_down_on_higher_term() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.campaign(1);
    assert_eq!(c.role(1), StateRole::Leader);
    c.isolate(1);
    c.campaign(2);
    assert_eq!(c.role(2), StateRole::Leader);
    assert_eq!(
        c.role(1),
        StateRole::Leader,
        "isolated old leader does not know yet"
    );
    c.heal();
    c.tick_until(20, |c| c.role(1) == StateRole::Follower);
    assert_eq!(c.term(1), c.term(2));
    assert_eq!(c.leader(), Some(2));
}

#[test]
fn five_nodes_elect_exactly_one_leader_per_term_under_contention() {
    let mut c = Cluster::new(&[1, 2, 3, 4, 5]);
    // Everybody times out at once: split votes must resolve by randomization.
    for id in c.ids() {
        c.raw(id).campaign().expect("campaign");
    }
    c.stabilize();
    c.elect_any();
    c.tick_until(200, |c| {
        let l = c.leader();
        l.is_some()
            && c.ids()
                .iter()
                .all(|&id| c.term(id) == c.term(l.unwrap_or(0)))
    });
    assert!(
        !c.leaders.is_empty(),
        "leaders are recorded per term (two in one term panics)"
    );
}

#[test]
fn single_node_elects_itself_and_commits() {
    let mut c = Cluster::new(&[1]);
    c.campaign(1);
    assert_eq!(c.role(1), StateRole::Leader);
    c.propose(1, b"x").expect("propose");
    assert_eq!(c.node(1).applied_data(), vec![b"x".to_vec()]);
}
