//! Messages no correct peer sends (a corrupted or hostile transport) must neither panic
//! the node nor corrupt its log: they are ignored or rejected.

mod support;

use keel_raft::{ConfState, Entry, MemStorage, MessageType, Snapshot, SnapshotMetadata, Storage};
use support::*;

/// A follower of node 1 in term 2 holding entries 1..=3 of term 1, nothing committed.
fn follower() -> keel_raft::RawNode<MemStorage> {
    let mut storage = MemStorage::new_with_conf_state(voters(&[1, 2, 3]));
    storage
        .append(&[ent(1, 1), ent(2, 1), ent(3, 1)])
        .expect("append");
    let mut raw = lone_node(config(2), storage);
    let mut hb = msg(MessageType::Heartbeat, 1, 2, 2);
    hb.commit = 0;
    raw.step(hb).expect("heartbeat");
    drain(&mut raw);
    raw
}

#[test]
fn snapshot_with_an_invalid_membership_is_ignored() {
    let mut raw = follower();
    let mut m = msg(MessageType::Snapshot, 1, 2, 2);
    m.snapshot = Some(Snapshot {
        metadata: SnapshotMetadata {
            index: 10,
            term: 2,
            // Node 3 cannot be a voter and a learner at once.
            conf_state: ConfState {
                voters: vec![1, 2, 3],
                learners: vec![3],
                ..ConfState::default()
            },
        },
        data: b"state".to_vec(),
    });
    raw.step(m).expect("step");
    let out = drain(&mut raw);
    let st = raw.status();
    assert_eq!(st.last_index, 3, "log kept");
    assert_eq!(st.hard_state.commit, 0, "nothing committed");
    assert_eq!(st.conf_state, voters(&[1, 2, 3]), "membership kept");
    assert!(
        raw.storage().snapshot(0).expect("snapshot").is_empty(),
        "invalid snapshot not persisted"
    );
    assert!(
        out.iter()
            .filter(|m| m.kind == MessageType::AppendResponse)
            .all(|m| m.index == 0),
        "the leader is not told the snapshot was installed: {out:?}"
    );
}

#[test]
fn append_whose_entries_do_not_follow_the_previous_index_is_ignored() {
    let mut raw = follower();
    let mut m = msg(MessageType::Append, 1, 2, 2);
    m.index = 3;
    m.log_term = 1;
    // Entry 2 cannot follow entry 3.
    m.entries = vec![ent(2, 2)];
    raw.step(m).expect("step");
    drain(&mut raw);
    let mut gap = msg(MessageType::Append, 1, 2, 2);
    gap.index = 3;
    gap.log_term = 1;
    // Entries 4 and 6 leave a hole at 5.
    gap.entries = vec![ent(4, 2), ent(6, 2)];
    raw.step(gap).expect("step");
    drain(&mut raw);
    assert_eq!(raw.status().last_index, 3);
    let stored: Vec<Entry> = raw.storage().entries(1, 4, u64::MAX).expect("entries");
    assert_eq!(stored, vec![ent(1, 1), ent(2, 1), ent(3, 1)]);
}

#[test]
fn append_past_the_end_with_term_zero_does_not_leave_a_gap() {
    let mut raw = follower();
    let mut m = msg(MessageType::Append, 1, 2, 2);
    // Index 7 is past our last index 3; a term of 0 there must not count as a match.
    m.index = 7;
    m.log_term = 0;
    m.entries = vec![ent(8, 2)];
    raw.step(m).expect("step");
    let out = drain(&mut raw);
    assert_eq!(raw.status().last_index, 3, "no entry appended after a gap");
    let resp = out
        .iter()
        .find(|m| m.kind == MessageType::AppendResponse)
        .expect("an answer");
    assert!(resp.reject, "rejected: {resp:?}");
}
