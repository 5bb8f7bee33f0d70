//! Pre-vote (Ongaro's thesis §9.6) and check-quorum / leader lease (§6.2, §9.6).

mod support;

use keel_raft::{MemStorage, MessageType, StateRole};
use support::*;

#[test]
fn pre_vote_keeps_a_rejoining_partitioned_node_from_disrupting_the_leader() {
    let mut c = Cluster::with_config(&[1, 2, 3], |cfg| cfg.pre_vote = true);
    c.campaign(1);
    let term = c.term(1);
    c.isolate(3);
    for _ in 0..50 {
        c.tick_all();
    }
    assert_eq!(c.term(3), term, "pre-candidate never raises its term");
    assert_eq!(c.role(3), StateRole::PreCandidate);
    c.heal();
    for _ in 0..5 {
        c.tick_all();
    }
    assert_eq!(c.leader(), Some(1));
    assert_eq!(c.term(1), term);
    assert_eq!(c.role(3), StateRole::Follower);
}

#[test]
fn without_pre_vote_a_rejoining_node_forces_a_new_term() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.campaign(1);
    let term = c.term(1);
    c.isolate(3);
    for _ in 0..50 {
        c.tick_all();
    }
    assert!(
        c.term(3) > term + 1,
        "isolated candidate keeps raising its term"
    );
    c.heal();
    c.tick_until(100, |c| c.leader().is_some() && c.term(1) > term);
    assert!(
        c.term(1) > term,
        "the old leader was deposed by the higher term"
    );
}

#[test]
fn pre_vote_does_not_change_term_or_vote() {
    let mut cfg = config(1);
    cfg.pre_vote = true;
    let mut n = lone_node(cfg, MemStorage::new_with_conf_state(voters(&[1, 2, 3])));
    n.campaign().expect("campaign");
    let rd = n.ready();
    assert_eq!(rd.hard_state, None, "no term or vote change");
    let reqs: Vec<_> = rd.persisted_messages.iter().chain(&rd.messages).collect();
    assert!(
        reqs.iter()
            .all(|m| m.kind == MessageType::RequestPreVote && m.term == 1)
    );
    n.advance(rd);
    assert_eq!(n.status().soft_state.role, StateRole::PreCandidate);
    n.step(msg(MessageType::RequestPreVoteResponse, 2, 1, 1))
        .expect("pre-vote granted");
    let st = n.status();
    assert_eq!(st.soft_state.role, StateRole::Candidate);
    assert_eq!((st.hard_state.term, st.hard_state.vote), (1, 1));
}

#[test]
fn voter_grants_pre_vote_without_recording_a_vote() {
    let mut cfg = config(2);
    cfg.pre_vote = true;
    let mut n = lone_node(cfg, MemStorage::new_with_conf_state(voters(&[1, 2, 3])));
    n.step(msg(MessageType::RequestPreVote, 1, 2, 1))
        .expect("step");
    let out = drain(&mut n);
    assert_eq!(out[0].kind, MessageType::RequestPreVoteResponse);
    assert!(!out[0].reject);
    assert_eq!(out[0].term, 1);
    let hs = n.status().hard_state;
    assert_eq!((hs.term, hs.vote), (0, 0));
}

#[test]
fn check_quorum_leader_steps_down_when_isolated() {
    let mut c = Cluster::with_config(&[1, 2, 3], |cfg| cfg.check_quorum = true);
    c.campaign(1);
    c.isolate(1);
    let mut ticks = 0;
    while c.role(1) == StateRole::Leader {
        c.tick(1);
        c.stabilize();
        ticks += 1;
        assert!(
            ticks <= 20,
            "isolated leader kept leading for {ticks} ticks"
        );
    }
    assert_eq!(c.role(1), StateRole::Follower);
}

#[test]
fn check_quorum_leader_with_a_quorum_stays() {
    let mut c = Cluster::with_config(&[1, 2, 3], |cfg| cfg.check_quorum = true);
    c.campaign(1);
    c.isolate(3);
    for _ in 0..50 {
        c.tick(1);
        c.tick(2);
        c.stabilize();
    }
    assert_eq!(c.role(1), StateRole::Leader);
}

#[test]
fn leader_lease_makes_followers_ignore_disruptive_vote_requests() {
    let mut cfg = config(1);
    cfg.check_quorum = true;
    let mut n = lone_node(cfg, MemStorage::new_with_conf_state(voters(&[1, 2, 3])));
    n.step(msg(MessageType::Heartbeat, 2, 1, 1))
        .expect("heartbeat");
    drain(&mut n);
    let mut v = msg(MessageType::RequestVote, 3, 1, 2);
    v.index = 10;
    v.log_term = 5;
    n.step(v.clone()).expect("vote request");
    assert!(
        drain(&mut n).is_empty(),
        "ignored while the leader is fresh"
    );
    assert_eq!(n.status().hard_state.term, 1);
    for _ in 0..10 {
        n.tick();
    }
    drain(&mut n);
    n.step(v).expect("vote request");
    let out = drain(&mut n);
    assert!(
        out.iter()
            .any(|m| m.kind == MessageType::RequestVoteResponse && !m.reject),
        "granted once the lease expired: {out:?}"
    );
}

#[test]
fn stale_leader_learns_the_new_term_from_append_response() {
    let mut c = Cluster::with_config(&[1, 2, 3], |cfg| {
        cfg.check_quorum = true;
        cfg.pre_vote = true;
    });
    c.campaign(1);
    c.isolate(1);
    c.tick_until(200, |c| c.leader().is_some_and(|l| l != 1));
    let new_term = c.term(c.leader().expect("leader"));
    c.heal();
    // Old leader (if it has not stepped down yet) sends a stale heartbeat; the answer
    // carries the new term.
    c.raw(1).tick();
    c.stabilize();
    c.tick_all();
    assert_ne!(c.role(1), StateRole::Leader);
    assert_eq!(c.term(1), new_term);
}

#[test]
fn pre_vote_and_check_quorum_elect_and_survive_partitions() {
    let mut c = Cluster::with_config(&[1, 2, 3, 4, 5], |cfg| {
        cfg.check_quorum = true;
        cfg.pre_vote = true;
    });
    let leader = c.elect_any();
    c.propose(leader, b"1").expect("propose");
    c.isolate(leader);
    c.tick_until(200, |c| c.leader().is_some_and(|l| l != leader));
    let next = c.leader().expect("leader");
    c.propose(next, b"2").expect("propose");
    c.heal();
    for _ in 0..20 {
        c.tick_all();
    }
    for id in c.ids() {
        assert_eq!(
            c.node(id).applied_data(),
            vec![b"1".to_vec(), b"2".to_vec()],
            "node {id}"
        );
    }
    c.check_safety();
}

/// Ticks only `ids` (the others are "dead") until one of them leads; returns the ticks.
fn ticks_to_new_leader(c: &mut Cluster, ids: &[u64], max: usize) -> usize {
    for t in 1..=max {
        for &id in ids {
            c.tick(id);
        }
        c.stabilize();
        if ids.iter().any(|&id| c.role(id) == StateRole::Leader) {
            return t;
        }
    }
    panic!("no new leader within {max} ticks:\n{}", c.dump());
}

fn with_lease() -> Cluster {
    let mut c = Cluster::with_config(&[1, 2, 3], |cfg| {
        cfg.pre_vote = true;
        cfg.check_quorum = true;
    });
    c.campaign(1);
    assert_eq!(c.leader(), Some(1));
    c
}

#[test]
fn followers_told_their_leader_is_down_elect_within_one_election_timeout() {
    // Without the report a follower waits at least election_tick (10) ticks after the
    // last heartbeat, and its peer refuses the pre-vote while that lease lasts.
    let mut c = with_lease();
    c.isolate(1);
    let unreported = ticks_to_new_leader(&mut c, &[2, 3], 100);
    assert!(unreported >= 10, "elected after {unreported} ticks");

    let mut c = with_lease();
    c.isolate(1);
    c.raw(2).report_leader_down(1);
    c.raw(3).report_leader_down(1);
    let reported = ticks_to_new_leader(&mut c, &[2, 3], 100);
    assert!(reported < 10, "elected after {reported} ticks");
}

#[test]
fn a_leader_down_report_about_a_live_leader_changes_nothing() {
    let mut c = with_lease();
    let term = c.term(1);
    // Only follower 2 believes it; the leader keeps sending heartbeats.
    c.raw(2).report_leader_down(1);
    c.raw(3).report_leader_down(2); // not its leader: ignored
    for _ in 0..50 {
        c.tick_all();
    }
    assert_eq!(c.leader(), Some(1));
    assert_eq!(c.term(1), term);
    assert_eq!(c.term(2), term);
}
