//! The data Raft exchanges with the application: log entries, persistent state, membership,
//! snapshots, messages and configuration changes.

use crate::NodeId;

/// What an entry's payload means to the application.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// Application data (or empty: the no-op a new leader appends).
    #[default]
    Normal,
    /// An encoded [`ConfChange`] (see [`ConfChange::encode`]).
    ConfChange,
}

/// One log entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    /// Term of the leader that created the entry.
    pub term: u64,
    /// Position in the log; the first real entry has index 1.
    pub index: u64,
    /// How to interpret `data`.
    pub kind: EntryKind,
    /// Opaque payload.
    pub data: Vec<u8>,
}

/// Fixed per-entry overhead counted by [`Entry::size_bytes`] (term, index and kind).
pub const ENTRY_OVERHEAD_BYTES: u64 = 17;

impl Entry {
    /// Size used for message and Ready size limits: payload plus a fixed overhead.
    pub fn size_bytes(&self) -> u64 {
        ENTRY_OVERHEAD_BYTES + self.data.len() as u64
    }
}

/// State that must be on stable storage before messages that depend on it are sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    /// Current term.
    pub term: u64,
    /// Candidate voted for in `term` (0 = none).
    pub vote: NodeId,
    /// Highest index known committed.
    pub commit: u64,
}

impl HardState {
    /// True for the all-zero state of a node that has never run.
    pub fn is_empty(&self) -> bool {
        *self == HardState::default()
    }
}

/// Membership of the cluster, as stored in snapshots and returned by conf-change application.
///
/// A joint configuration has a non-empty `voters_outgoing`; decisions then need a majority of
/// both `voters` (incoming) and `voters_outgoing`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfState {
    /// Voters of the (incoming) configuration, ascending.
    pub voters: Vec<NodeId>,
    /// Learners, ascending; never also voters.
    pub learners: Vec<NodeId>,
    /// Voters of the outgoing configuration while joint, ascending; empty otherwise.
    pub voters_outgoing: Vec<NodeId>,
    /// Nodes that become learners when the joint configuration is left (they are still
    /// outgoing voters until then), ascending.
    pub learners_next: Vec<NodeId>,
    /// Whether the leader leaves the joint configuration on its own once it is applied.
    pub auto_leave: bool,
}

/// Where a snapshot sits in the log and which membership it carries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotMetadata {
    /// Index of the last entry the snapshot covers.
    pub index: u64,
    /// Term of that entry.
    pub term: u64,
    /// Membership as of `index`.
    pub conf_state: ConfState,
}

/// A point-in-time image of the application state machine plus its position in the log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Position and membership.
    pub metadata: SnapshotMetadata,
    /// Opaque application state.
    pub data: Vec<u8>,
}

impl Snapshot {
    /// True when the snapshot covers nothing (index 0).
    pub fn is_empty(&self) -> bool {
        self.metadata.index == 0
    }
}

/// Message kinds, as in etcd's `raftpb.MessageType`.
///
/// `Hup`, `Beat`, `Unreachable`, `SnapStatus` and `CheckQuorum` are local: they never travel
/// between nodes and [`crate::RawNode::step`] rejects them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// Local: start an election.
    #[default]
    Hup,
    /// Local: leader sends heartbeats.
    Beat,
    /// A proposal (local, or forwarded by a follower to its leader).
    Propose,
    /// Leader → follower: entries to append after (`index`, `log_term`).
    Append,
    /// Follower → leader: result of an `Append` or `Snapshot`.
    AppendResponse,
    /// Candidate → voter.
    RequestVote,
    /// Voter → candidate.
    RequestVoteResponse,
    /// Leader → follower: install `snapshot`.
    Snapshot,
    /// Leader → follower: liveness and commit index.
    Heartbeat,
    /// Follower → leader.
    HeartbeatResponse,
    /// Local: the transport could not reach `from`.
    Unreachable,
    /// Local: outcome of sending a snapshot to `from` (`reject` = failed).
    SnapStatus,
    /// Local: leader checks it still hears from a quorum.
    CheckQuorum,
    /// Ask the leader to hand leadership to `from`.
    TransferLeader,
    /// Leader → transferee: campaign now, ignoring the leader lease.
    TimeoutNow,
    /// A linearizable read request carrying its context in `context`.
    ReadIndex,
    /// Leader → follower: read may be served once applied ≥ `index`.
    ReadIndexResp,
    /// Pre-candidate → voter: would you vote for me in `term`?
    RequestPreVote,
    /// Voter → pre-candidate.
    RequestPreVoteResponse,
}

impl MessageType {
    /// Messages that only exist inside one node.
    pub fn is_local(self) -> bool {
        matches!(
            self,
            MessageType::Hup
                | MessageType::Beat
                | MessageType::Unreachable
                | MessageType::SnapStatus
                | MessageType::CheckQuorum
        )
    }

    /// Responses, which the leader only accepts from nodes it tracks.
    pub fn is_response(self) -> bool {
        matches!(
            self,
            MessageType::AppendResponse
                | MessageType::RequestVoteResponse
                | MessageType::HeartbeatResponse
                | MessageType::Unreachable
                | MessageType::RequestPreVoteResponse
        )
    }

    /// Messages that may only be sent once the `Ready` that produced them is durable: they
    /// announce a vote, a term or log contents the receiver will rely on.
    pub fn needs_persistence(self) -> bool {
        matches!(
            self,
            MessageType::RequestVote
                | MessageType::RequestVoteResponse
                | MessageType::RequestPreVote
                | MessageType::RequestPreVoteResponse
                | MessageType::AppendResponse
        )
    }
}

/// A Raft message. Fields a kind does not use are zero / empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    /// Kind.
    pub kind: MessageType,
    /// Recipient.
    pub to: NodeId,
    /// Sender.
    pub from: NodeId,
    /// Sender's term (0 for local messages and forwarded proposals / reads).
    pub term: u64,
    /// Term of the entry at `index` (appends, votes), or the hint term of a rejection.
    pub log_term: u64,
    /// Log index the message is about.
    pub index: u64,
    /// Entries to append or propose.
    pub entries: Vec<Entry>,
    /// Leader's commit index.
    pub commit: u64,
    /// Negative answer (append, vote, snapshot status).
    pub reject: bool,
    /// On a rejected append: the index the follower suggests probing from.
    pub reject_hint: u64,
    /// For `Snapshot` messages.
    pub snapshot: Option<Snapshot>,
    /// Opaque context (read request contexts, campaign-transfer marker).
    pub context: Vec<u8>,
}

/// One membership change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConfChangeType {
    /// Add a voter, or promote a learner to voter.
    AddNode,
    /// Add a learner, or demote a voter to learner.
    AddLearner,
    /// Remove a voter or learner.
    RemoveNode,
}

/// A single change to one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConfChangeSingle {
    /// What to do.
    pub kind: ConfChangeType,
    /// To whom (0 is ignored, as in etcd).
    pub node_id: NodeId,
}

/// How a change moves through joint consensus (etcd's `ConfChangeTransition`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ConfChangeTransition {
    /// A single voter change is applied directly; anything else enters a joint configuration
    /// that the leader leaves automatically.
    #[default]
    Auto,
    /// Always enter a joint configuration and leave it automatically.
    Implicit,
    /// Always enter a joint configuration; the application leaves it by proposing an empty
    /// `ConfChange`.
    Explicit,
}

/// A membership change (etcd's `ConfChangeV2`). An empty `changes` list means "leave the
/// joint configuration".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfChange {
    /// How to transition.
    pub transition: ConfChangeTransition,
    /// Changes, applied in order.
    pub changes: Vec<ConfChangeSingle>,
    /// Opaque application context (etcd puts the member's attributes here).
    pub context: Vec<u8>,
}

/// Error decoding a [`ConfChange`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfChangeDecodeError {
    /// The buffer ended before the structure did.
    #[error("conf change truncated: need {needed} bytes at offset {offset}, have {len}")]
    Truncated {
        /// Offset of the field being read.
        offset: usize,
        /// Bytes that field needs.
        needed: usize,
        /// Total buffer length.
        len: usize,
    },
    /// Unknown format version.
    #[error("conf change has unknown version {0}")]
    Version(u8),
    /// A tag byte is not a known enum value.
    #[error("conf change has invalid {field} tag {tag}")]
    Tag {
        /// Which enum.
        field: &'static str,
        /// The byte found.
        tag: u8,
    },
    /// Bytes left over after the structure.
    #[error("conf change has {0} trailing bytes")]
    Trailing(usize),
}

/// Version byte of the [`ConfChange`] encoding.
pub const CONF_CHANGE_VERSION: u8 = 1;

impl ConfChange {
    /// A one-change `ConfChange` with the `Auto` transition.
    pub fn single(kind: ConfChangeType, node_id: NodeId) -> ConfChange {
        ConfChange {
            transition: ConfChangeTransition::Auto,
            changes: vec![ConfChangeSingle { kind, node_id }],
            context: Vec::new(),
        }
    }

    /// The change that leaves a joint configuration.
    pub fn leave_joint() -> ConfChange {
        ConfChange::default()
    }

    /// Whether applying this change leaves a joint configuration.
    pub fn leaves_joint(&self) -> bool {
        self.changes.is_empty()
    }

    /// `Some(auto_leave)` when applying this change enters a joint configuration.
    pub fn enters_joint(&self) -> Option<bool> {
        if self.transition != ConfChangeTransition::Auto || self.changes.len() > 1 {
            Some(self.transition != ConfChangeTransition::Explicit)
        } else {
            None
        }
    }

    /// Encodes to bytes (little-endian, fixed widths):
    ///
    /// ```text
    /// u8  version (= 1)
    /// u8  transition: 0 Auto, 1 Implicit, 2 Explicit
    /// u32 number of changes n
    /// n × { u8 kind: 0 AddNode, 1 AddLearner, 2 RemoveNode; u64 node_id }
    /// u32 context length m
    /// m bytes of context
    /// ```
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(10 + 9 * self.changes.len() + self.context.len());
        out.push(CONF_CHANGE_VERSION);
        out.push(match self.transition {
            ConfChangeTransition::Auto => 0,
            ConfChangeTransition::Implicit => 1,
            ConfChangeTransition::Explicit => 2,
        });
        let n =
            u32::try_from(self.changes.len()).expect("a conf change has fewer than 2^32 changes");
        out.extend_from_slice(&n.to_le_bytes());
        for c in &self.changes {
            out.push(match c.kind {
                ConfChangeType::AddNode => 0,
                ConfChangeType::AddLearner => 1,
                ConfChangeType::RemoveNode => 2,
            });
            out.extend_from_slice(&c.node_id.to_le_bytes());
        }
        let m = u32::try_from(self.context.len()).expect("a conf change context is below 4 GiB");
        out.extend_from_slice(&m.to_le_bytes());
        out.extend_from_slice(&self.context);
        debug_assert_eq!(
            ConfChange::decode(&out).as_ref(),
            Ok(self),
            "encode and decode must be inverse"
        );
        out
    }

    /// Decodes the format written by [`ConfChange::encode`].
    pub fn decode(buf: &[u8]) -> Result<ConfChange, ConfChangeDecodeError> {
        let mut r = Reader { buf, pos: 0 };
        let version = r.u8()?;
        if version != CONF_CHANGE_VERSION {
            return Err(ConfChangeDecodeError::Version(version));
        }
        let transition = match r.u8()? {
            0 => ConfChangeTransition::Auto,
            1 => ConfChangeTransition::Implicit,
            2 => ConfChangeTransition::Explicit,
            tag => {
                return Err(ConfChangeDecodeError::Tag {
                    field: "transition",
                    tag,
                });
            }
        };
        let n = r.u32()? as usize;
        // Each change is 9 bytes: refuse counts the buffer cannot hold before allocating.
        r.need(n.saturating_mul(9))?;
        let mut changes = Vec::with_capacity(n);
        for _ in 0..n {
            let kind = match r.u8()? {
                0 => ConfChangeType::AddNode,
                1 => ConfChangeType::AddLearner,
                2 => ConfChangeType::RemoveNode,
                tag => return Err(ConfChangeDecodeError::Tag { field: "kind", tag }),
            };
            let node_id = r.u64()?;
            changes.push(ConfChangeSingle { kind, node_id });
        }
        let m = r.u32()? as usize;
        let context = r.bytes(m)?.to_vec();
        if r.pos != buf.len() {
            return Err(ConfChangeDecodeError::Trailing(buf.len() - r.pos));
        }
        Ok(ConfChange {
            transition,
            changes,
            context,
        })
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn need(&self, n: usize) -> Result<(), ConfChangeDecodeError> {
        if self.buf.len() - self.pos < n {
            return Err(ConfChangeDecodeError::Truncated {
                offset: self.pos,
                needed: n,
                len: self.buf.len(),
            });
        }
        Ok(())
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], ConfChangeDecodeError> {
        self.need(n)?;
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, ConfChangeDecodeError> {
        Ok(self.bytes(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, ConfChangeDecodeError> {
        let b = self.bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, ConfChangeDecodeError> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_cc() -> impl Strategy<Value = ConfChange> {
        let single = (0u8..3, any::<u64>()).prop_map(|(k, node_id)| ConfChangeSingle {
            kind: match k {
                0 => ConfChangeType::AddNode,
                1 => ConfChangeType::AddLearner,
                _ => ConfChangeType::RemoveNode,
            },
            node_id,
        });
        (
            0u8..3,
            proptest::collection::vec(single, 0..6),
            proptest::collection::vec(any::<u8>(), 0..16),
        )
            .prop_map(|(t, changes, context)| ConfChange {
                transition: match t {
                    0 => ConfChangeTransition::Auto,
                    1 => ConfChangeTransition::Implicit,
                    _ => ConfChangeTransition::Explicit,
                },
                changes,
                context,
            })
    }

    proptest! {
        #[test]
        fn conf_change_roundtrips(cc in arb_cc()) {
            let bytes = cc.encode();
            prop_assert_eq!(ConfChange::decode(&bytes), Ok(cc));
        }

        #[test]
        fn conf_change_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = ConfChange::decode(&bytes);
        }

        #[test]
        fn truncated_conf_change_is_rejected(cc in arb_cc(), cut in 0usize..64) {
            let bytes = cc.encode();
            let cut = cut % bytes.len();
            prop_assert!(ConfChange::decode(&bytes[..cut]).is_err());
        }
    }

    #[test]
    fn transitions_decide_joint() {
        let one = ConfChange::single(ConfChangeType::AddNode, 4);
        assert_eq!(one.enters_joint(), None);
        let mut two = one.clone();
        two.changes.push(ConfChangeSingle {
            kind: ConfChangeType::RemoveNode,
            node_id: 1,
        });
        assert_eq!(two.enters_joint(), Some(true));
        two.transition = ConfChangeTransition::Explicit;
        assert_eq!(two.enters_joint(), Some(false));
        assert!(ConfChange::leave_joint().leaves_joint());
    }
}
