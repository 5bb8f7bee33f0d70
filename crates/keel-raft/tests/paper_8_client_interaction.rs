//! Raft paper §8, client interaction: linearizable reads (ReadIndex) and what happens to
//! proposals without a leader.

mod support;

use keel_raft::{Error, MemStorage, MessageType, StateRole};
use support::*;

#[test]
fn leader_answers_read_index_after_a_heartbeat_round() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.campaign(1);
    c.propose(1, b"a").expect("propose");
    let committed = c.committed(1);
    c.raw(1).read_index(b"r1".to_vec()).expect("read");
    // Before any heartbeat response, the read is not answered.
    c.process_ready(1);
    assert!(c.node(1).reads.is_empty());
    c.stabilize();
    let reads = &c.node(1).reads;
    assert_eq!(reads.len(), 1);
    assert_eq!(reads[0].request_ctx, b"r1");
    assert_eq!(reads[0].index, committed);
}

#[test]
fn follower_read_index_is_forwarded_and_answered_with_the_leaders_commit() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.campaign(1);
    c.propose(1, b"a").expect("propose");
    c.raw(3).read_index(b"from 3".to_vec()).expect("read");
    c.stabilize();
    let reads = &c.node(3).reads;
    assert_eq!(reads.len(), 1);
    assert_eq!(reads[0].request_ctx, b"from 3");
    assert_eq!(reads[0].index, c.committed(1));
    assert!(c.node(1).reads.is_empty());
}

#[test]
fn partitioned_leader_cannot_confirm_a_read() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.campaign(1);
    c.isolate(1);
    c.raw(1)
        .read_index(b"stale?".to_vec())
        .expect("accepted, pending");
    c.stabilize();
    for _ in 0..5 {
        c.tick_all();
    }
    assert!(
        c.node(1).reads.is_empty(),
        "a deposed leader must not serve reads"
    );
}

#[test]
fn new_leader_delays_reads_until_it_commits_an_entry_of_its_term() {
    let mut n = lone_node(
        config(1),
        MemStorage::new_with_conf_state(voters(&[1, 2, 3])),
    );
    n.campaign().expect("campaign");
    drain(&mut n);
    n.step(msg(MessageType::RequestVoteResponse, 2, 1, 1))
        .expect("vote");
    assert_eq!(n.status().soft_state.role, StateRole::Leader);
    drain(&mut n);
    n.read_index(b"early".to_vec()).expect("queued");
    let out = drain(&mut n);
    assert!(
        out.iter().all(|m| m.kind != MessageType::Heartbeat),
        "no read round before the term's first commit"
    );
    let mut ack = msg(MessageType::AppendResponse, 2, 1, 1);
    ack.index = 1;
    n.step(ack).expect("ack");
    let out = drain(&mut n);
    let hb = out
        .iter()
        .find(|m| m.kind == MessageType::Heartbeat && m.to == 2)
        .expect("read round started once the no-op committed");
    assert_eq!(hb.context, b"early");
    let mut resp = msg(MessageType::HeartbeatResponse, 2, 1, 1);
    resp.context = b"early".to_vec();
    n.step(resp).expect("heartbeat response");
    let rd = n.ready();
    assert_eq!(rd.read_states.len(), 1);
    assert_eq!(rd.read_states[0].index, 1);
    n.advance(rd);
}

#[test]
fn reads_are_batched_behind_one_heartbeat_round() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.campaign(1);
    for i in 0..5u8 {
        c.raw(1).read_index(vec![i]).expect("read");
    }
    c.stabilize();
    let ctxs: Vec<Vec<u8>> = c
        .node(1)
        .reads
        .iter()
        .map(|r| r.request_ctx.clone())
        .collect();
    assert_eq!(ctxs, (0..5u8).map(|i| vec![i]).collect::<Vec<_>>());
}

#[test]
fn proposals_without_a_leader_are_refused_not_dropped() {
    let mut c = Cluster::new(&[1, 2, 3]);
    assert_eq!(
        c.propose(1, b"x"),
        Err(Error::ProposalDropped),
        "no leader yet"
    );
    assert_eq!(
        c.raw(1).read_index(b"r".to_vec()),
        Err(Error::ProposalDropped)
    );
    c.isolate(1);
    c.campaign(1);
    assert_eq!(c.role(1), StateRole::Candidate);
    assert_eq!(c.propose(1, b"x"), Err(Error::ProposalDropped), "candidate");
    assert_eq!(
        c.raw(1).read_index(b"r".to_vec()),
        Err(Error::ProposalDropped)
    );
}

#[test]
fn follower_without_forwarding_refuses_proposals() {
    let mut c = Cluster::with_config(&[1, 2, 3], |cfg| cfg.disable_proposal_forwarding = true);
    c.campaign(1);
    assert_eq!(c.propose(2, b"x"), Err(Error::ProposalDropped));
    assert_eq!(c.propose(1, b"x"), Ok(()));
}

#[test]
fn uncommitted_bytes_are_bounded() {
    let mut c = Cluster::with_config(&[1, 2, 3], |cfg| cfg.max_uncommitted_entries_size = 100);
    c.campaign(1);
    c.isolate(1);
    let mut accepted = 0;
    let mut refused = 0;
    for _ in 0..10 {
        match c.raw(1).propose(vec![0; 30]) {
            Ok(()) => accepted += 1,
            Err(Error::ProposalDropped) => refused += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(accepted, 3, "30+30+30 fits in 100, a fourth does not");
    assert_eq!(refused, 7);
    c.heal();
    c.stabilize();
    c.tick_all();
    assert_eq!(c.node(1).applied_data().len(), 3);
    assert_eq!(
        c.raw(1).propose(vec![0; 30]),
        Ok(()),
        "room again after commit"
    );
}

#[test]
fn read_index_on_single_node_is_immediate_after_first_commit() {
    let mut c = Cluster::new(&[1]);
    c.campaign(1);
    c.raw(1).read_index(b"solo".to_vec()).expect("read");
    c.stabilize();
    assert_eq!(c.node(1).reads.len(), 1);
    assert_eq!(c.node(1).reads[0].index, 1);
}

#[test]
fn batched_proposals_are_appended_together_or_not_at_all() {
    let mut c = Cluster::with_config(&[1, 2, 3], |cfg| cfg.max_uncommitted_entries_size = 100);
    c.campaign(1);
    c.raw(1)
        .propose_batch(vec![b"a".to_vec(), b"b".to_vec()])
        .expect("batch");
    c.stabilize();
    assert_eq!(c.node(2).applied_data(), vec![b"a".to_vec(), b"b".to_vec()]);
    c.isolate(1);
    c.raw(1).propose(vec![0; 60]).expect("fits");
    let last = c.node(1).status().last_index;
    assert_eq!(
        c.raw(1).propose_batch(vec![vec![0; 30], vec![0; 30]]),
        Err(Error::ProposalDropped),
        "60 + 60 exceeds the limit: nothing of the batch is appended"
    );
    assert_eq!(c.node(1).status().last_index, last);
    assert_eq!(c.raw(1).propose_batch(Vec::new()), Ok(()));
    assert_eq!(
        c.raw(2).propose_batch(vec![b"x".to_vec()]),
        Ok(()),
        "forwarded"
    );
}
