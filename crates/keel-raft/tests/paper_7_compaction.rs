//! Raft paper §7, log compaction and InstallSnapshot.

mod support;

use keel_raft::{
    HardState, MemStorage, MessageType, ProgressState, Snapshot, SnapshotMetadata, SnapshotStatus,
    Storage,
};
use support::*;

#[test]
fn follower_behind_the_compacted_log_gets_a_snapshot_then_entries() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.campaign(1);
    c.isolate(3);
    for i in 0..30u8 {
        c.propose(1, &[i]).expect("propose");
    }
    let snap_index = c.snapshot_and_compact(1);
    assert!(c.node(1).raw.storage().first_index().expect("first") > 2);
    c.heal();
    c.tick_all();
    c.tick_all();
    assert_eq!(c.node(3).snapshots, vec![snap_index]);
    assert_eq!(
        c.node(3).raw.storage().snapshot(0).expect("snap").data,
        snap_index.to_le_bytes()
    );
    c.propose(1, b"after").expect("propose");
    assert_eq!(c.node(3).applied_data(), vec![b"after".to_vec()]);
    assert_eq!(c.node(3).applied_index, c.node(1).applied_index);
    let st = c.node(1).status();
    assert_eq!(st.progress[&3].state, ProgressState::Replicate);
    c.check_safety();
}

#[test]
fn leader_waits_for_snapshot_status_and_retries_after_failure() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.campaign(1);
    c.isolate(3);
    for i in 0..5u8 {
        c.propose(1, &[i]).expect("propose");
    }
    c.snapshot_and_compact(1);
    // The snapshot message is lost on the way, and the test reports it by hand.
    c.report_snapshots = false;
    c.heal();
    c.filter = Some(drop_kind(MessageType::Snapshot));
    c.tick_all();
    assert_eq!(
        c.node(1).status().progress[&3].state,
        ProgressState::Snapshot
    );
    c.tick_all();
    assert_eq!(
        c.node(1).status().progress[&3].state,
        ProgressState::Snapshot,
        "no new appends while the snapshot is in flight"
    );
    c.raw(1).report_snapshot(3, SnapshotStatus::Failure);
    assert_eq!(c.node(1).status().progress[&3].state, ProgressState::Probe);
    c.filter = None;
    c.tick_all();
    c.tick_all();
    assert_eq!(c.node(3).snapshots.len(), 1);
    assert_eq!(c.node(3).applied_index, c.node(1).applied_index);
}

#[test]
fn follower_ignores_a_snapshot_it_has_already_covered() {
    let mut s = MemStorage::new_with_conf_state(voters(&[1, 2]));
    s.append(&[ent(1, 1), ent(2, 1), ent(3, 1)])
        .expect("append");
    s.set_hard_state(HardState {
        term: 1,
        vote: 0,
        commit: 3,
    });
    let mut n = lone_node(config(2), s);
    drain(&mut n);
    let mut m = msg(MessageType::Snapshot, 1, 2, 1);
    m.snapshot = Some(Snapshot {
        metadata: SnapshotMetadata {
            index: 2,
            term: 1,
            conf_state: voters(&[1, 2]),
        },
        data: Vec::new(),
    });
    n.step(m).expect("step");
    let out = drain(&mut n);
    assert_eq!(out[0].kind, MessageType::AppendResponse);
    assert_eq!(out[0].index, 3, "answers with its commit index");
    assert_eq!(n.storage().first_index(), Ok(1), "log untouched");
}

#[test]
fn snapshot_matching_the_log_only_fast_forwards_commit() {
    let mut s = MemStorage::new_with_conf_state(voters(&[1, 2]));
    s.append(&[ent(1, 1), ent(2, 1), ent(3, 1)])
        .expect("append");
    s.set_hard_state(HardState {
        term: 1,
        vote: 0,
        commit: 1,
    });
    let mut n = lone_node(config(2), s);
    drain(&mut n);
    let mut m = msg(MessageType::Snapshot, 1, 2, 1);
    m.snapshot = Some(Snapshot {
        metadata: SnapshotMetadata {
            index: 2,
            term: 1,
            conf_state: voters(&[1, 2]),
        },
        data: Vec::new(),
    });
    n.step(m).expect("step");
    drain(&mut n);
    assert_eq!(n.status().hard_state.commit, 2);
    assert_eq!(n.storage().last_index(), Ok(3), "later entries kept");
}

#[test]
fn snapshot_replaces_a_conflicting_log() {
    let mut s = MemStorage::new_with_conf_state(voters(&[1, 2]));
    s.append(&[ent(1, 1), ent(2, 1), ent(3, 1)])
        .expect("append");
    s.set_hard_state(HardState {
        term: 1,
        vote: 0,
        commit: 1,
    });
    let mut n = lone_node(config(2), s);
    drain(&mut n);
    let mut m = msg(MessageType::Snapshot, 1, 2, 2);
    m.snapshot = Some(Snapshot {
        metadata: SnapshotMetadata {
            index: 5,
            term: 2,
            conf_state: voters(&[1, 2, 3]),
        },
        data: b"state".to_vec(),
    });
    n.step(m).expect("step");
    let rd = n.ready();
    let snap = rd.snapshot.clone().expect("snapshot to install");
    assert_eq!(snap.metadata.index, 5);
    assert!(
        rd.committed_entries.is_empty(),
        "nothing to apply beyond the snapshot"
    );
    n.storage_mut().apply_snapshot(snap).expect("apply");
    let resp = rd.persisted_messages.clone();
    n.advance(rd);
    assert_eq!(resp[0].index, 5);
    let st = n.status();
    assert_eq!(st.applied, 5);
    assert_eq!(st.conf_state.voters, vec![1, 2, 3]);
    assert_eq!(n.storage().first_index(), Ok(6));
}

#[test]
fn node_restarts_from_a_compacted_log() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.campaign(1);
    for i in 0..10u8 {
        c.propose(1, &[i]).expect("propose");
    }
    for id in c.ids() {
        c.snapshot_and_compact(id);
    }
    c.restart(2);
    c.restart(1);
    let leader = c.elect_any();
    c.propose(leader, b"after restart").expect("propose");
    for id in c.ids() {
        assert_eq!(
            c.node(id).applied_data().last().map(Vec::as_slice),
            Some(&b"after restart"[..])
        );
    }
    c.check_safety();
}

/// A storage whose snapshot is not ready for the first `failures` requests.
struct SlowSnapshots {
    inner: MemStorage,
    failures: std::cell::Cell<u32>,
}

impl Storage for SlowSnapshots {
    fn initial_state(&self) -> Result<(HardState, keel_raft::ConfState), keel_raft::StorageError> {
        self.inner.initial_state()
    }
    fn entries(
        &self,
        lo: u64,
        hi: u64,
        max: u64,
    ) -> Result<Vec<keel_raft::Entry>, keel_raft::StorageError> {
        self.inner.entries(lo, hi, max)
    }
    fn term(&self, index: u64) -> Result<u64, keel_raft::StorageError> {
        self.inner.term(index)
    }
    fn first_index(&self) -> Result<u64, keel_raft::StorageError> {
        self.inner.first_index()
    }
    fn last_index(&self) -> Result<u64, keel_raft::StorageError> {
        self.inner.last_index()
    }
    fn snapshot(&self, request_index: u64) -> Result<Snapshot, keel_raft::StorageError> {
        if self.failures.get() > 0 {
            self.failures.set(self.failures.get() - 1);
            return Err(keel_raft::StorageError::SnapshotTemporarilyUnavailable);
        }
        self.inner.snapshot(request_index)
    }
}

fn drain_slow(n: &mut keel_raft::RawNode<SlowSnapshots>) -> Vec<keel_raft::Message> {
    let mut out = Vec::new();
    while n.has_ready() {
        let rd = n.ready();
        n.storage_mut().inner.append(&rd.entries).expect("append");
        if let Some(hs) = rd.hard_state {
            n.storage_mut().inner.set_hard_state(hs);
        }
        out.extend(rd.messages.iter().cloned());
        out.extend(rd.persisted_messages.iter().cloned());
        n.advance(rd);
    }
    out
}

#[test]
fn snapshot_temporarily_unavailable_is_retried() {
    let mut inner = MemStorage::new_with_conf_state(voters(&[1, 2]));
    inner
        .append(&[ent(1, 1), ent(2, 1), ent(3, 1), ent(4, 1)])
        .expect("append");
    inner.set_hard_state(HardState {
        term: 1,
        vote: 0,
        commit: 4,
    });
    inner
        .create_snapshot(3, None, b"s".to_vec())
        .expect("snapshot");
    inner.compact(3).expect("compact");
    let mut cfg = config(1);
    cfg.applied = 4;
    let storage = SlowSnapshots {
        inner,
        failures: std::cell::Cell::new(2),
    };
    let mut n = keel_raft::RawNode::new(&cfg, storage).expect("node");
    n.campaign().expect("campaign");
    drain_slow(&mut n);
    n.step(msg(MessageType::RequestVoteResponse, 2, 1, 2))
        .expect("vote");
    drain_slow(&mut n);
    // Node 2 has nothing: it rejects the probe and hints index 0.
    let mut rej = msg(MessageType::AppendResponse, 2, 1, 2);
    rej.reject = true;
    rej.index = 4;
    n.step(rej).expect("reject");
    let sent = drain_slow(&mut n);
    assert!(
        sent.iter().all(|m| m.kind != MessageType::Snapshot),
        "snapshot not ready yet"
    );
    let mut tries = 0;
    loop {
        n.step(msg(MessageType::HeartbeatResponse, 2, 1, 2))
            .expect("heartbeat response");
        let sent = drain_slow(&mut n);
        tries += 1;
        if let Some(m) = sent.iter().find(|m| m.kind == MessageType::Snapshot) {
            assert_eq!(m.snapshot.as_ref().map(|s| s.metadata.index), Some(3));
            break;
        }
        assert!(tries < 5, "snapshot never sent");
    }
    assert_eq!(n.status().progress[&2].state, ProgressState::Snapshot);
}

#[test]
fn joining_node_installs_a_snapshot_that_predates_its_addition() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.campaign(1);
    for i in 0..10u8 {
        c.propose(1, &[i]).expect("propose");
    }
    let snap_index = c.snapshot_and_compact(1);
    // A brand-new node: no log, no membership.
    c.add_node(config(4), MemStorage::new());
    c.raw(1)
        .propose_conf_change(keel_raft::ConfChange::single(
            keel_raft::ConfChangeType::AddNode,
            4,
        ))
        .expect("add 4");
    c.stabilize();
    for _ in 0..5 {
        c.tick_all();
    }
    assert_eq!(c.node(4).snapshots, vec![snap_index]);
    assert_eq!(c.node(4).status().conf_state.voters, vec![1, 2, 3, 4]);
    c.propose(1, b"with 4").expect("propose");
    assert_eq!(c.node(4).applied_data(), vec![b"with 4".to_vec()]);
    c.check_safety();
}
