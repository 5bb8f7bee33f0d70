//! Keel's Raft: consensus as a pure, deterministic state machine, in the shape of etcd's
//! `raft` package and its Rust port `raft-rs` (the `RawNode` interface).
//!
//! # Job
//!
//! [`RawNode`] holds one node's Raft state. Its only inputs are [`RawNode::tick`] (logical
//! time), [`RawNode::step`] (a message from a peer), and the application's requests
//! ([`RawNode::propose`], [`RawNode::propose_conf_change`], [`RawNode::read_index`],
//! [`RawNode::transfer_leader`], ...). Its only output is a numbered [`Ready`]: state to
//! persist, messages to send, entries to apply. There are no threads, clocks, files or
//! sockets here, and the only randomness (the election timeout) comes from
//! [`Config::seed`], so the same inputs always give the same outputs; `keel-sim` relies on
//! that.
//!
//! Implemented: elections with randomized timeouts, pre-vote, check-quorum and the leader
//! lease; log replication with batching, pipelining, per-follower probe / replicate /
//! snapshot progress and flow control (in-flight messages, bytes per message, uncommitted
//! bytes); fast backtracking by conflict term; commit by counting replicas of current-term
//! entries only (the paper's Figure 8); log compaction and snapshot installation;
//! membership changes with learners and joint consensus (automatic or explicit leave);
//! linearizable reads (ReadIndex); leadership transfer.
//!
//! # Invariants (asserted)
//!
//! * At most one leader per term: a node votes at most once per term, and the vote is in the
//!   hard state that must be persisted before the vote response is sent (the response is in
//!   [`Ready::persisted_messages`]).
//! * Log matching: an append is accepted only if the follower holds the leader's entry at
//!   (`index`, `log_term`); a committed entry is never truncated (truncating at or below the
//!   commit index panics).
//! * The commit index never decreases and never exceeds the last index; the leader advances
//!   it only to an index whose entry is from its own term and held by a quorum of every
//!   active configuration (both halves when joint). The leader counts itself only for
//!   entries it has persisted (reported through [`RawNode::advance`]).
//! * Applied ≤ committed, and entries are handed out for applying exactly once, in order.
//! * Membership changes take effect when the application applies them
//!   ([`RawNode::apply_conf_change`]). A node outside the configuration never campaigns
//!   and never leads; a leader removed or demoted to learner refuses proposals, brings the
//!   most up-to-date voter level with its log, sends it `TimeoutNow` and steps down. A
//!   joining node installs the leader's snapshot even if that snapshot predates its
//!   addition (it then learns of its addition from the log).
//! * Every buffer is bounded: in-flight appends per follower (`max_inflight_msgs`), bytes per
//!   append (`max_size_per_msg`), uncommitted proposal bytes
//!   (`max_uncommitted_entries_size`), committed bytes per `Ready`
//!   (`max_committed_size_per_ready`), pending reads (`max_pending_read_index`).
//! * A message no correct peer sends is ignored rather than trusted: an append whose
//!   entries do not follow its (`index`, `log_term`) contiguously, an append that claims a
//!   match past our last index, a snapshot whose membership is impossible. As in etcd, a
//!   heartbeat's commit index beyond our last index (our log lost acknowledged entries)
//!   still panics.
//! * A proposal that cannot be accepted (no leader, leadership transfer in progress, a
//!   configuration change already pending, uncommitted limit reached, node removed) returns
//!   [`Error::ProposalDropped`]; it is never dropped silently by the node that received it.
//!
//! The byte format of configuration changes carried in entries is specified on
//! [`ConfChange::encode`].
//!
//! # Driving a node
//!
//! The application owns the node and runs this loop (the order of steps is the contract
//! documented on [`Ready`]):
//!
//! ```
//! use keel_raft::{Config, ConfState, EntryKind, MemStorage, RawNode, StateRole};
//!
//! let voters = ConfState { voters: vec![1], ..ConfState::default() };
//! let mut node = RawNode::new(&Config::new(1), MemStorage::new_with_conf_state(voters))?;
//! node.campaign()?;
//! let mut applied = Vec::new();
//! let mut proposed = false;
//! for _ in 0..10 {
//!     if node.status().soft_state.role == StateRole::Leader && !proposed {
//!         node.propose(b"hello".to_vec())?;
//!         proposed = true;
//!     }
//!     if !node.has_ready() {
//!         node.tick();
//!         continue;
//!     }
//!     let rd = node.ready();
//!     // 1. send rd.messages (none in a one-node cluster)
//!     let storage = node.storage_mut();
//!     if let Some(snapshot) = &rd.snapshot {
//!         storage.apply_snapshot(snapshot.clone())?; // 2.
//!     }
//!     storage.append(&rd.entries)?; // 3.
//!     if let Some(hs) = rd.hard_state {
//!         storage.set_hard_state(hs);
//!     }
//!     // 4. send rd.persisted_messages
//!     for entry in &rd.committed_entries {
//!         // 5. apply
//!         if entry.kind == EntryKind::Normal && !entry.data.is_empty() {
//!             applied.push(entry.data.clone());
//!         }
//!     }
//!     node.advance(rd); // 6.
//! }
//! assert_eq!(applied, vec![b"hello".to_vec()]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod confchange;
mod config;
mod log;
mod quorum;
mod raft;
mod raw_node;
mod read_only;
mod storage;
mod tracker;
mod types;

pub use config::Config;
#[cfg(feature = "planted-bugs")]
pub use config::PlantedBug;
pub use raw_node::{
    ProgressState, ProgressStatus, RawNode, ReadState, Ready, SnapshotStatus, SoftState, StateRole,
    Status,
};
pub use storage::{MemStorage, Storage, StorageError};
pub use types::{
    CONF_CHANGE_VERSION, ConfChange, ConfChangeDecodeError, ConfChangeSingle, ConfChangeTransition,
    ConfChangeType, ConfState, ENTRY_OVERHEAD_BYTES, Entry, EntryKind, HardState, Message,
    MessageType, Snapshot, SnapshotMetadata,
};

/// Identifies a node; 0 means "none".
pub type NodeId = u64;

/// The "no node" id.
pub const INVALID_ID: NodeId = 0;

/// Context a leader puts on the vote requests of a transfer-triggered campaign, so voters
/// ignore their leader lease (etcd's `campaignTransfer`).
pub const CAMPAIGN_TRANSFER_CONTEXT: &[u8] = b"CampaignTransfer";

/// Errors returned by [`RawNode`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The proposal or read request was not accepted (no known leader, leadership transfer
    /// in progress, a configuration change pending, a size limit reached, or this node was
    /// removed); the caller may retry.
    #[error("raft proposal dropped")]
    ProposalDropped,
    /// A local-only message type was passed to [`RawNode::step`].
    #[error("raft: cannot step raft local message")]
    StepLocalMsg,
    /// A response came from a node this node does not track.
    #[error("raft: cannot step as peer not found")]
    StepPeerNotFound,
    /// The configuration is unusable.
    #[error("invalid raft config: {0}")]
    ConfigInvalid(String),
    /// The storage failed.
    #[error("raft storage: {0}")]
    Storage(#[from] StorageError),
    /// A configuration change could not be applied.
    #[error("invalid conf change: {0}")]
    ConfChangeInvalid(String),
    /// A configuration change entry could not be decoded.
    #[error(transparent)]
    ConfChangeDecode(#[from] ConfChangeDecodeError),
}
