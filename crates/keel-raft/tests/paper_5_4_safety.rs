//! Raft paper §5.4, safety: the election restriction and committing entries from previous
//! terms (Figure 8).

mod support;

use keel_raft::{HardState, MemStorage, MessageType, StateRole};
use support::*;

/// The state of Figure 8 (c) about to happen: S5 led term 3 and wrote 2@3 only locally;
/// S1 and S2 hold 2@2 from term 2; everyone is at term 3 with only index 1 committed.
fn figure_8_cluster(tweak: impl Fn(&mut keel_raft::Config)) -> Cluster {
    let logs: [(u64, Vec<(u64, u64)>); 5] = [
        (1, vec![(1, 1), (2, 2)]),
        (2, vec![(1, 1), (2, 2)]),
        (3, vec![(1, 1)]),
        (4, vec![(1, 1)]),
        (5, vec![(1, 1), (2, 3)]),
    ];
    let mut c = Cluster::empty();
    for (id, log) in logs {
        let mut s = MemStorage::new_with_conf_state(voters(&[1, 2, 3, 4, 5]));
        let ents: Vec<_> = log.iter().map(|&(i, t)| ent(i, t)).collect();
        s.append(&ents).expect("append");
        s.set_hard_state(HardState {
            term: 3,
            vote: 0,
            commit: 1,
        });
        let mut cfg = config(id);
        // One entry per append, so a follower can get 2@2 without 3@4.
        cfg.max_size_per_msg = 1;
        tweak(&mut cfg);
        c.add_node(cfg, s);
    }
    c
}

/// Figure 8 (c): S1 leads term 4 and gets 2@2 onto a majority (S1, S3, S4) while its own
/// 3@4 is lost on the way.
fn run_figure_8_c(c: &mut Cluster) {
    c.isolate(5);
    // 3@4 never arrives where it would be accepted: S2 (which matches at index 2) never
    // gets it, S3 and S4 only get the first probe, which they reject for lacking index 2.
    let mut probed = std::collections::BTreeSet::new();
    c.filter = Some(Box::new(move |m| {
        let carries_3 = m.entries.iter().any(|e| e.index == 3);
        if m.from != 1 || m.kind != MessageType::Append || !carries_3 {
            return true;
        }
        m.to != 2 && probed.insert(m.to)
    }));
    c.campaign(1);
    assert_eq!(c.role(1), StateRole::Leader);
    assert_eq!(c.term(1), 4);
    assert_eq!(c.log(3).last().map(|e| (e.index, e.term)), Some((2, 2)));
    assert_eq!(c.log(4).last().map(|e| (e.index, e.term)), Some((2, 2)));
}

#[test]
fn figure_8_entry_of_previous_term_is_not_committed_by_counting_replicas() {
    let mut c = figure_8_cluster(|_| {});
    run_figure_8_c(&mut c);
    assert_eq!(
        c.committed(1),
        1,
        "2@2 is on a majority but must not be committed"
    );

    // Figure 8 (d): S1 crashes, S5 is elected by S2, S3, S4 and overwrites index 2.
    c.filter = None;
    c.heal();
    c.isolate(1);
    c.campaign(5);
    if c.role(5) != StateRole::Leader {
        // Its first campaign (term 4) met voters that had already voted for S1 in term 4.
        c.campaign(5);
    }
    assert_eq!(c.role(5), StateRole::Leader);
    c.propose(5, b"after").expect("propose");
    for id in [2, 3, 4, 5] {
        let at2 = c
            .node(id)
            .applied
            .iter()
            .find(|e| e.index == 2)
            .map(|e| e.term);
        assert_eq!(at2, Some(3), "node {id} applied S5's entry at index 2");
    }
    // S1 comes back and is repaired; nobody ever applied 2@2.
    c.heal();
    c.tick_all();
    c.tick_all();
    c.check_safety();
    assert_eq!(c.log(1), c.log(5));
}

#[test]
fn figure_8_previous_term_entry_commits_with_the_first_current_term_entry() {
    let mut c = figure_8_cluster(|_| {});
    run_figure_8_c(&mut c);
    assert_eq!(c.committed(1), 1);
    // Figure 8 (e): 3@4 reaches a majority, committing 2@2 with it.
    c.filter = None;
    c.tick_all();
    c.tick_all();
    assert_eq!(c.committed(1), 3);
    assert_eq!(
        c.node(1)
            .applied
            .iter()
            .map(|e| (e.index, e.term))
            .collect::<Vec<_>>(),
        vec![(1, 1), (2, 2), (3, 4)]
    );
    // S5 can no longer win: its last term 3 is behind a majority's 4.
    c.heal();
    c.isolate(1);
    c.campaign(5);
    c.campaign(5);
    assert_ne!(c.role(5), StateRole::Leader);
    c.check_safety();
}

#[cfg(feature = "planted-bugs")]
#[test]
#[should_panic(expected = "new leader 5 lacks applied entry 2@2")]
fn planted_figure_8_bug_is_caught_by_the_leader_completeness_check() {
    let mut c = figure_8_cluster(|cfg| {
        cfg.planted_bug = Some(keel_raft::PlantedBug::CommitPreviousTermEntries)
    });
    run_figure_8_c(&mut c);
    assert_eq!(
        c.committed(1),
        2,
        "the bug commits 2@2 by counting replicas"
    );
    assert!(
        c.node(1)
            .applied
            .iter()
            .any(|e| (e.index, e.term) == (2, 2))
    );
    // Figure 8 (d): S5 can still be elected, and would overwrite the applied 2@2; the test
    // network's leader completeness check stops the run there.
    c.filter = None;
    c.heal();
    c.isolate(1);
    c.campaign(5);
    c.campaign(5);
}

#[test]
fn election_restriction_keeps_committed_entries() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.campaign(1);
    c.isolate(3);
    c.propose(1, b"committed").expect("propose");
    assert_eq!(c.node(1).applied_data(), vec![b"committed".to_vec()]);
    // Node 3 missed the entry: it may not become leader while 1 and 2 have it.
    c.heal();
    c.isolate(1);
    c.cut(1, 3);
    c.raw(3).campaign().expect("campaign");
    c.stabilize();
    assert_ne!(c.role(3), StateRole::Leader);
    c.campaign(2);
    assert_eq!(c.role(2), StateRole::Leader);
    c.tick_all();
    assert_eq!(c.node(3).applied_data(), vec![b"committed".to_vec()]);
    c.check_safety();
}

#[test]
fn leader_only_commits_by_counting_entries_of_its_term() {
    // etcd's TestLeaderOnlyCommitsLogFromCurrentTerm, through the public interface.
    let mut s = MemStorage::new_with_conf_state(voters(&[1, 2, 3]));
    s.append(&[ent(1, 1), ent(2, 2)]).expect("append");
    s.set_hard_state(HardState {
        term: 2,
        vote: 0,
        commit: 0,
    });
    let mut n = lone_node(config(1), s);
    n.campaign().expect("campaign");
    drain(&mut n);
    for from in [2, 3] {
        let mut v = msg(MessageType::RequestVoteResponse, from, 1, 3);
        v.reject = false;
        n.step(v).expect("vote");
    }
    assert_eq!(n.status().soft_state.role, StateRole::Leader);
    drain(&mut n);
    let mut ack = msg(MessageType::AppendResponse, 2, 1, 3);
    ack.index = 2;
    n.step(ack).expect("ack");
    drain(&mut n);
    assert_eq!(n.status().hard_state.commit, 0, "index 2 is from term 2");
    let mut ack = msg(MessageType::AppendResponse, 2, 1, 3);
    ack.index = 3;
    n.step(ack).expect("ack");
    drain(&mut n);
    assert_eq!(
        n.status().hard_state.commit,
        3,
        "the term-3 entry commits all before it"
    );
}

#[test]
fn committed_entries_survive_repeated_leader_changes() {
    let mut c = Cluster::new(&[1, 2, 3, 4, 5]);
    let mut expected = Vec::new();
    for round in 0..10u8 {
        let leader = c.elect_any();
        c.propose(leader, &[round]).expect("propose");
        expected.push(vec![round]);
        c.isolate(leader);
        c.tick_until(100, |c| c.leader().is_some_and(|l| l != leader));
        c.heal();
        c.tick_all();
    }
    c.tick_all();
    for id in c.ids() {
        assert_eq!(c.node(id).applied_data(), expected, "node {id}");
    }
    c.check_safety();
}
