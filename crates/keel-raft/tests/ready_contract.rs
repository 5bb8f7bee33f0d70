//! The `Ready` / `advance` contract between Raft and the application.

mod support;

use keel_raft::{
    ConfState, Entry, Error, HardState, MemStorage, Message, MessageType, Snapshot, StateRole,
    Storage, StorageError,
};
use support::*;

fn three() -> keel_raft::RawNode<MemStorage> {
    lone_node(
        config(1),
        MemStorage::new_with_conf_state(voters(&[1, 2, 3])),
    )
}

#[test]
fn readies_are_numbered_and_only_one_is_outstanding() {
    let mut n = three();
    n.campaign().expect("campaign");
    assert!(n.has_ready());
    let rd = n.ready();
    assert_eq!(rd.number, 1);
    assert!(!n.has_ready(), "nothing more until advance");
    n.advance(rd);
    n.step(msg(MessageType::RequestVoteResponse, 2, 1, 1))
        .expect("vote");
    let rd = n.ready();
    assert_eq!(rd.number, 2);
    n.advance(rd);
}

#[test]
#[should_panic(expected = "must be advanced")]
fn taking_a_second_ready_before_advance_panics() {
    let mut n = three();
    n.campaign().expect("campaign");
    let _first = n.ready();
    let _second = n.ready();
}

#[test]
#[should_panic(expected = "advance of Ready")]
fn advancing_a_stale_ready_panics() {
    let mut n = three();
    n.campaign().expect("campaign");
    let rd = n.ready();
    let stale = rd.clone();
    n.advance(rd);
    n.advance(stale);
}

#[test]
fn soft_and_hard_state_are_reported_only_when_changed() {
    let mut n = three();
    n.campaign().expect("campaign");
    let rd = n.ready();
    assert_eq!(rd.soft_state.map(|s| s.role), Some(StateRole::Candidate));
    assert!(rd.hard_state.is_some());
    assert!(rd.must_sync);
    n.advance(rd);
    // A heartbeat response from a peer changes nothing persistent.
    n.step(msg(MessageType::RequestVoteResponse, 2, 1, 1))
        .expect("vote");
    let rd = n.ready();
    assert_eq!(rd.soft_state.map(|s| s.role), Some(StateRole::Leader));
    assert_eq!(
        rd.hard_state, None,
        "term and vote unchanged, commit not advanced"
    );
    assert_eq!(rd.entries.len(), 1, "the new leader's empty entry");
    assert!(rd.must_sync, "entries must be synced");
    assert!(
        rd.persisted_messages.is_empty(),
        "appends go out immediately"
    );
    assert!(rd.messages.iter().all(|m| m.kind == MessageType::Append));
    n.storage_mut().append(&rd.entries).expect("append");
    n.advance(rd);
}

#[test]
fn commit_only_change_does_not_require_sync() {
    let mut n = lone_node(config(2), MemStorage::new_with_conf_state(voters(&[1, 2])));
    let mut app: Message = msg(MessageType::Append, 1, 2, 1);
    app.entries = vec![ent(1, 1)];
    n.step(app).expect("append");
    drain(&mut n);
    let mut hb = msg(MessageType::Heartbeat, 1, 2, 1);
    hb.commit = 1;
    n.step(hb).expect("heartbeat");
    let rd = n.ready();
    assert_eq!(rd.hard_state.map(|h| h.commit), Some(1));
    assert!(!rd.must_sync);
    assert_eq!(rd.committed_entries, vec![ent(1, 1)]);
    n.advance(rd);
    assert_eq!(n.status().applied, 1);
}

#[test]
fn committed_entries_per_ready_are_bounded() {
    let mut cfg = config(2);
    cfg.max_committed_size_per_ready = keel_raft::ENTRY_OVERHEAD_BYTES * 2;
    let mut n = lone_node(cfg, MemStorage::new_with_conf_state(voters(&[1, 2])));
    let mut app = msg(MessageType::Append, 1, 2, 1);
    app.entries = (1..=5).map(|i| ent(i, 1)).collect();
    app.commit = 5;
    n.step(app).expect("append");
    let mut batches = Vec::new();
    while n.has_ready() {
        let rd = n.ready();
        n.storage_mut().append(&rd.entries).expect("append");
        if !rd.committed_entries.is_empty() {
            batches.push(rd.committed_entries.len());
        }
        n.advance(rd);
    }
    assert_eq!(batches, vec![2, 2, 1]);
}

#[test]
fn local_messages_and_unknown_responders_are_rejected() {
    let mut n = three();
    assert_eq!(
        n.step(msg(MessageType::Hup, 0, 1, 0)),
        Err(Error::StepLocalMsg)
    );
    assert_eq!(
        n.step(msg(MessageType::Beat, 0, 1, 0)),
        Err(Error::StepLocalMsg)
    );
    assert_eq!(
        n.step(msg(MessageType::AppendResponse, 9, 1, 1)),
        Err(Error::StepPeerNotFound)
    );
}

#[test]
fn invalid_configs_are_refused() {
    let mut cfg = config(1);
    cfg.election_tick = 1;
    assert!(matches!(
        keel_raft::RawNode::new(&cfg, MemStorage::new()),
        Err(Error::ConfigInvalid(_))
    ));
    let mut cfg = config(1);
    cfg.applied = 5;
    assert!(matches!(
        keel_raft::RawNode::new(&cfg, MemStorage::new()),
        Err(Error::ConfigInvalid(_))
    ));
}

/// A storage whose reported log bounds are broken (as after disk corruption).
struct BrokenBounds {
    inner: MemStorage,
    first: Result<u64, StorageError>,
    last: u64,
}

impl Storage for BrokenBounds {
    fn initial_state(&self) -> Result<(HardState, ConfState), StorageError> {
        self.inner.initial_state()
    }
    fn entries(&self, lo: u64, hi: u64, max_bytes: u64) -> Result<Vec<Entry>, StorageError> {
        self.inner.entries(lo, hi, max_bytes)
    }
    fn term(&self, index: u64) -> Result<u64, StorageError> {
        self.inner.term(index)
    }
    fn first_index(&self) -> Result<u64, StorageError> {
        self.first.clone()
    }
    fn last_index(&self) -> Result<u64, StorageError> {
        Ok(self.last)
    }
    fn snapshot(&self, request_index: u64) -> Result<Snapshot, StorageError> {
        self.inner.snapshot(request_index)
    }
}

#[test]
fn storage_with_broken_log_bounds_is_refused_at_start() {
    let open = |first: Result<u64, StorageError>, last: u64| {
        let inner = MemStorage::new_with_conf_state(voters(&[1, 2, 3]));
        keel_raft::RawNode::new(&config(1), BrokenBounds { inner, first, last }).err()
    };
    assert!(matches!(open(Ok(0), 0), Some(Error::ConfigInvalid(_))));
    assert!(matches!(open(Ok(10), 3), Some(Error::ConfigInvalid(_))));
    assert_eq!(
        open(Err(StorageError::Unavailable), 0),
        Some(Error::Storage(StorageError::Unavailable))
    );
    assert!(open(Ok(1), 0).is_none(), "an empty log is fine");
}
