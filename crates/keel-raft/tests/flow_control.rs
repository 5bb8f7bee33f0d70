//! Flow control: bytes per append message, in-flight appends per follower, probe vs
//! replicate state.

mod support;

use keel_raft::{MemStorage, MessageType, ProgressState};
use support::*;

/// A leader (node 1 of {1, 2}) whose follower has acknowledged everything so far, in
/// replicate state.
fn replicating_leader(max_inflight: usize, max_size: u64) -> keel_raft::RawNode<MemStorage> {
    let mut cfg = config(1);
    cfg.max_inflight_msgs = max_inflight;
    cfg.max_size_per_msg = max_size;
    let mut n = lone_node(cfg, MemStorage::new_with_conf_state(voters(&[1, 2])));
    n.campaign().expect("campaign");
    drain(&mut n);
    n.step(msg(MessageType::RequestVoteResponse, 2, 1, 1))
        .expect("vote");
    drain(&mut n);
    let mut ack = msg(MessageType::AppendResponse, 2, 1, 1);
    ack.index = 1;
    n.step(ack).expect("ack");
    drain(&mut n);
    assert_eq!(n.status().progress[&2].state, ProgressState::Replicate);
    n
}

fn appends_to_2(out: &[keel_raft::Message]) -> Vec<&keel_raft::Message> {
    out.iter()
        .filter(|m| m.kind == MessageType::Append && m.to == 2 && !m.entries.is_empty())
        .collect()
}

#[test]
fn inflight_window_pauses_replication_until_acks_arrive() {
    let mut n = replicating_leader(3, u64::MAX);
    let mut sent = Vec::new();
    for i in 0..10u8 {
        n.propose(vec![i]).expect("propose");
        sent.extend(drain(&mut n));
    }
    let apps = appends_to_2(&sent);
    assert_eq!(apps.len(), 3, "three appends in flight, then paused");
    assert_eq!(n.status().progress[&2].inflight_msgs, 3);
    // One ack frees the window; the next append carries everything pending.
    let mut ack = msg(MessageType::AppendResponse, 2, 1, 1);
    ack.index = apps[0].entries.last().map(|e| e.index).expect("entry");
    n.step(ack).expect("ack");
    let out = drain(&mut n);
    let apps = appends_to_2(&out);
    assert_eq!(apps.len(), 1);
    assert_eq!(
        apps[0].entries.len(),
        7,
        "batched: the 7 entries that waited"
    );
}

#[test]
fn append_messages_respect_max_size_per_msg() {
    let entry_bytes = keel_raft::ENTRY_OVERHEAD_BYTES + 10;
    let mut n = replicating_leader(64, entry_bytes * 3);
    // Block sending while proposing, by driving the follower into probe state.
    n.report_unreachable(2);
    n.step(msg(MessageType::HeartbeatResponse, 2, 1, 1))
        .expect("hb");
    drain(&mut n);
    for _ in 0..10 {
        n.propose(vec![7; 10]).expect("propose");
    }
    let mut out = drain(&mut n);
    // Acknowledge each append as it comes; everything arrives in limited chunks.
    let mut total = 0;
    for _ in 0..20 {
        let apps = appends_to_2(&out);
        let Some(last_sent) = apps
            .iter()
            .filter_map(|m| m.entries.last())
            .map(|e| e.index)
            .max()
        else {
            break;
        };
        for m in &apps {
            let bytes: u64 = m.entries.iter().map(|e| e.size_bytes()).sum();
            assert!(bytes <= entry_bytes * 3, "append of {bytes} bytes");
            total += m.entries.len();
        }
        let mut ack = msg(MessageType::AppendResponse, 2, 1, 1);
        ack.index = last_sent;
        n.step(ack).expect("ack");
        out = drain(&mut n);
    }
    assert_eq!(n.status().progress[&2].matched, n.status().last_index);
    assert_eq!(total, 10, "every proposal sent exactly once");
}

#[test]
fn a_single_entry_larger_than_the_limit_is_still_sent() {
    let mut n = replicating_leader(8, 1);
    n.propose(vec![0; 1000]).expect("propose");
    let out = drain(&mut n);
    let apps = appends_to_2(&out);
    assert_eq!(apps.len(), 1);
    assert_eq!(apps[0].entries.len(), 1);
}

#[test]
fn probe_state_sends_one_append_at_a_time() {
    let mut n = replicating_leader(8, u64::MAX);
    n.report_unreachable(2);
    assert_eq!(n.status().progress[&2].state, ProgressState::Probe);
    let mut sent = Vec::new();
    for i in 0..5u8 {
        n.propose(vec![i]).expect("propose");
        sent.extend(drain(&mut n));
    }
    assert_eq!(appends_to_2(&sent).len(), 1, "one probe outstanding");
    // A heartbeat response un-pauses the probe.
    n.step(msg(MessageType::HeartbeatResponse, 2, 1, 1))
        .expect("hb");
    let out = drain(&mut n);
    assert_eq!(appends_to_2(&out).len(), 1);
}

#[test]
fn heartbeat_response_frees_a_slot_in_a_full_window() {
    let mut n = replicating_leader(1, u64::MAX);
    n.propose(b"a".to_vec()).expect("propose");
    assert_eq!(appends_to_2(&drain(&mut n)).len(), 1);
    n.propose(b"b".to_vec()).expect("propose");
    assert!(
        appends_to_2(&drain(&mut n)).is_empty(),
        "window of one is full"
    );
    n.step(msg(MessageType::HeartbeatResponse, 2, 1, 1))
        .expect("hb");
    assert_eq!(
        appends_to_2(&drain(&mut n)).len(),
        1,
        "resent after the heartbeat"
    );
}

#[test]
fn cluster_with_tiny_limits_still_replicates_everything() {
    let mut c = Cluster::with_config(&[1, 2, 3], |cfg| {
        cfg.max_inflight_msgs = 1;
        cfg.max_size_per_msg = 1;
    });
    c.campaign(1);
    for i in 0..40u8 {
        c.raw(1).propose(vec![i]).expect("propose");
    }
    c.stabilize();
    for _ in 0..5 {
        c.tick_all();
    }
    for id in c.ids() {
        assert_eq!(c.node(id).applied_data().len(), 40, "node {id}");
    }
}
