//! Raft paper §5.3, log replication.

mod support;

use keel_raft::{HardState, MemStorage, Message, MessageType, StateRole};
use support::*;

#[test]
fn leader_replicates_and_all_apply_in_order() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.campaign(1);
    for i in 0..20u8 {
        c.propose(1, &[i]).expect("propose");
    }
    let want: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i]).collect();
    c.tick_all();
    for id in c.ids() {
        assert_eq!(c.node(id).applied_data(), want, "node {id}");
    }
    c.check_safety();
}

#[test]
fn new_leader_appends_an_empty_entry_of_its_term() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.campaign(2);
    let log = c.log(2);
    let last = log.last().expect("entry");
    assert_eq!((last.index, last.term), (1, c.term(2)));
    assert!(last.data.is_empty());
    assert_eq!(c.committed(2), 1);
}

#[test]
fn followers_forward_proposals_to_the_leader() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.campaign(1);
    c.propose(3, b"via follower").expect("forwarded");
    for id in c.ids() {
        assert_eq!(c.node(id).applied_data(), vec![b"via follower".to_vec()]);
    }
}

#[test]
fn entry_commits_once_a_majority_has_it() {
    let mut c = Cluster::new(&[1, 2, 3, 4, 5]);
    c.campaign(1);
    let before = c.committed(1);
    c.isolate(4);
    c.isolate(5);
    c.propose(1, b"a").expect("propose");
    assert_eq!(c.committed(1), before + 1, "3 of 5 is a majority");
    c.isolate(3);
    c.propose(1, b"b").expect("propose");
    assert_eq!(c.committed(1), before + 1, "2 of 5 is not");
    c.heal();
    c.tick_all();
    c.tick_all();
    assert_eq!(c.committed(1), before + 2);
    for id in c.ids() {
        assert_eq!(
            c.node(id).applied_data(),
            vec![b"a".to_vec(), b"b".to_vec()]
        );
    }
}

#[test]
fn follower_rejects_append_that_does_not_match_and_hints_by_term() {
    let mut s = MemStorage::new_with_conf_state(voters(&[1, 2]));
    s.append(&[ent(1, 1), ent(2, 1), ent(3, 2), ent(4, 2), ent(5, 2)])
        .expect("append");
    s.set_hard_state(HardState {
        term: 2,
        vote: 0,
        commit: 1,
    });
    let mut n = lone_node(config(2), s);
    let mut m = msg(MessageType::Append, 1, 2, 4);
    m.index = 7;
    m.log_term = 4;
    n.step(m).expect("step");
    let out = drain(&mut n);
    let r = &out[0];
    assert_eq!(r.kind, MessageType::AppendResponse);
    assert!(r.reject);
    assert_eq!(r.index, 7);
    assert_eq!(
        (r.reject_hint, r.log_term),
        (5, 2),
        "probe from our last entry"
    );
    let mut m = msg(MessageType::Append, 1, 2, 4);
    m.index = 5;
    m.log_term = 3;
    n.step(m).expect("step");
    let r = &drain(&mut n)[0];
    assert!(r.reject);
    assert_eq!((r.reject_hint, r.log_term), (5, 2));
    let mut m = msg(MessageType::Append, 1, 2, 4);
    m.index = 4;
    m.log_term = 1;
    n.step(m).expect("step");
    let r = &drain(&mut n)[0];
    assert!(r.reject);
    assert_eq!(
        (r.reject_hint, r.log_term),
        (2, 1),
        "skips the whole term-2 run"
    );
}

#[test]
fn follower_truncates_conflicting_uncommitted_suffix() {
    let mut s = MemStorage::new_with_conf_state(voters(&[1, 2]));
    s.append(&[ent(1, 1), ent(2, 1), ent(3, 1)])
        .expect("append");
    s.set_hard_state(HardState {
        term: 1,
        vote: 0,
        commit: 1,
    });
    let mut n = lone_node(config(2), s);
    let mut m = msg(MessageType::Append, 1, 2, 2);
    m.index = 1;
    m.log_term = 1;
    m.entries = vec![ent(2, 2)];
    m.commit = 2;
    n.step(m).expect("step");
    let out = drain(&mut n);
    assert!(!out[0].reject);
    assert_eq!(out[0].index, 2);
    use keel_raft::Storage;
    assert_eq!(n.storage().last_index(), Ok(2));
    assert_eq!(n.storage().term(2), Ok(2));
    assert_eq!(n.status().hard_state.commit, 2);
}

#[test]
fn leader_backtracks_to_a_lagging_follower_and_repairs_it() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.campaign(1);
    c.isolate(3);
    for i in 0..50u8 {
        c.propose(1, &[i]).expect("propose");
    }
    c.heal();
    c.tick_all();
    c.tick_all();
    assert_eq!(c.node(3).applied_data().len(), 50);
    c.check_safety();
}

#[test]
fn repairs_divergent_follower_logs_figure_7() {
    // Paper Figure 7: a term-8 leader with followers holding missing, extra and conflicting
    // entries. Each follower is paired with the leader alone, so the leader must repair it.
    let leader_log: Vec<(u64, u64)> = vec![
        (1, 1),
        (2, 1),
        (3, 1),
        (4, 4),
        (5, 4),
        (6, 5),
        (7, 5),
        (8, 6),
        (9, 6),
        (10, 6),
    ];
    let followers: Vec<Vec<u64>> = vec![
        vec![1, 1, 1, 4, 4, 5, 5, 6, 6],          // a: missing one
        vec![1, 1, 1, 4],                         // b: missing many
        vec![1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],    // c: extra entry
        vec![1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7], // d: extra of a later term
        vec![1, 1, 1, 4, 4, 4, 4],                // e: conflicting
        vec![1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],    // f: conflicting, longer
    ];
    for (k, terms) in followers.into_iter().enumerate() {
        // Node 3 holds the leader's log so node 1 wins even when node 2's log is longer.
        let mut c = Cluster::empty();
        let leader_ents: Vec<_> = leader_log.iter().map(|&(i, t)| ent(i, t)).collect();
        let follower_ents: Vec<_> = terms
            .iter()
            .enumerate()
            .map(|(i, &t)| ent(i as u64 + 1, t))
            .collect();
        for (id, ents) in [(1, &leader_ents), (2, &follower_ents), (3, &leader_ents)] {
            let mut s = MemStorage::new_with_conf_state(voters(&[1, 2, 3]));
            s.append(ents).expect("append");
            s.set_hard_state(HardState {
                term: 7,
                vote: 0,
                commit: 0,
            });
            c.add_node(config(id), s);
        }
        c.campaign(1);
        assert_eq!(c.role(1), StateRole::Leader, "case {k}");
        c.propose(1, b"x").expect("propose");
        c.tick_all();
        assert_eq!(c.log(2), c.log(1), "follower {k} repaired");
        c.check_safety();
    }
}

#[test]
fn append_responses_wait_for_persistence() {
    let mut n = lone_node(config(2), MemStorage::new_with_conf_state(voters(&[1, 2])));
    let mut m: Message = msg(MessageType::Append, 1, 2, 1);
    m.entries = vec![ent(1, 1)];
    n.step(m).expect("step");
    let rd = n.ready();
    assert_eq!(rd.entries, vec![ent(1, 1)]);
    assert!(rd.messages.is_empty());
    assert_eq!(rd.persisted_messages.len(), 1);
    assert_eq!(rd.persisted_messages[0].kind, MessageType::AppendResponse);
    n.advance(rd);
}
