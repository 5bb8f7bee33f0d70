//! Read requests a leader is confirming with a heartbeat round (ReadIndex).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::NodeId;
use crate::types::Message;

/// One read request waiting for a quorum of heartbeat acknowledgements.
#[derive(Debug, Clone)]
pub struct ReadIndexStatus {
    /// The original request (its `from` says whom to answer).
    pub req: Message,
    /// Commit index when the request arrived: the read may be served once applied ≥ it.
    pub index: u64,
    pub acks: BTreeSet<NodeId>,
}

/// Pending reads in arrival order, keyed by their (unique) context.
#[derive(Debug, Default)]
pub struct ReadOnly {
    pending: BTreeMap<Vec<u8>, ReadIndexStatus>,
    queue: VecDeque<Vec<u8>>,
}

impl ReadOnly {
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Registers a request; a context already pending is ignored.
    pub fn add_request(&mut self, index: u64, req: Message, self_id: NodeId) {
        let ctx = req.context.clone();
        if self.pending.contains_key(&ctx) {
            return;
        }
        let mut acks = BTreeSet::new();
        acks.insert(self_id);
        self.pending
            .insert(ctx.clone(), ReadIndexStatus { req, index, acks });
        self.queue.push_back(ctx);
    }

    /// Records a heartbeat acknowledgement carrying `ctx`; returns who has acknowledged it.
    pub fn recv_ack(&mut self, from: NodeId, ctx: &[u8]) -> Option<&BTreeSet<NodeId>> {
        let status = self.pending.get_mut(ctx)?;
        status.acks.insert(from);
        Some(&status.acks)
    }

    /// Releases the request with `ctx` and every request queued before it (a quorum that
    /// confirmed a later heartbeat confirmed the earlier ones too).
    pub fn advance(&mut self, ctx: &[u8]) -> Vec<ReadIndexStatus> {
        let Some(pos) = self.queue.iter().position(|c| c.as_slice() == ctx) else {
            return Vec::new();
        };
        self.queue
            .drain(..=pos)
            .filter_map(|c| self.pending.remove(&c))
            .collect()
    }

    pub fn last_pending_ctx(&self) -> Option<&[u8]> {
        self.queue.back().map(Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(ctx: &[u8]) -> Message {
        Message {
            context: ctx.to_vec(),
            ..Message::default()
        }
    }

    #[test]
    fn advance_releases_prefix() {
        let mut ro = ReadOnly::default();
        ro.add_request(5, req(b"a"), 1);
        ro.add_request(6, req(b"b"), 1);
        ro.add_request(7, req(b"c"), 1);
        ro.add_request(8, req(b"b"), 1);
        assert_eq!(ro.len(), 3);
        assert_eq!(ro.recv_ack(2, b"b").map(|a| a.len()), Some(2));
        assert!(ro.recv_ack(2, b"zz").is_none());
        let done: Vec<u64> = ro.advance(b"b").iter().map(|s| s.index).collect();
        assert_eq!(done, vec![5, 6]);
        assert_eq!(ro.last_pending_ctx(), Some(&b"c"[..]));
        assert!(ro.advance(b"a").is_empty());
    }
}
