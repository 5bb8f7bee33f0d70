//! Conversions between the wire types (etcd's `etcdserverpb`/`mvccpb`, Keel's `keelpb`)
//! and the library types (`keel_mvcc`, `keel_raft`, `keel_wal`). Pure functions.

use keel_mvcc as mvcc;
use keel_proto::{etcdserverpb as pb, keelpb, mvccpb};
use keel_raft as raft;

// ------------------------------------------------------------------ etcd requests → mvcc

pub(crate) fn range_request(r: &pb::RangeRequest) -> mvcc::RangeRequest {
    use pb::range_request::{SortOrder, SortTarget};
    let sort_order = match SortOrder::try_from(r.sort_order) {
        Ok(SortOrder::Ascend) => mvcc::SortOrder::Ascend,
        Ok(SortOrder::Descend) => mvcc::SortOrder::Descend,
        Ok(SortOrder::None) | Err(_) => mvcc::SortOrder::None,
    };
    let sort_target = match SortTarget::try_from(r.sort_target) {
        Ok(SortTarget::Version) => mvcc::SortTarget::Version,
        Ok(SortTarget::Create) => mvcc::SortTarget::Create,
        Ok(SortTarget::Mod) => mvcc::SortTarget::Mod,
        Ok(SortTarget::Value) => mvcc::SortTarget::Value,
        Ok(SortTarget::Key) | Err(_) => mvcc::SortTarget::Key,
    };
    mvcc::RangeRequest {
        key: r.key.clone(),
        range_end: r.range_end.clone(),
        limit: r.limit,
        revision: r.revision,
        sort_order,
        sort_target,
        keys_only: r.keys_only,
        count_only: r.count_only,
        min_mod_revision: r.min_mod_revision,
        max_mod_revision: r.max_mod_revision,
        min_create_revision: r.min_create_revision,
        max_create_revision: r.max_create_revision,
    }
}

pub(crate) fn put_request(r: &pb::PutRequest) -> mvcc::PutRequest {
    mvcc::PutRequest {
        key: r.key.clone(),
        value: r.value.clone(),
        lease: r.lease,
        prev_kv: r.prev_kv,
        ignore_value: r.ignore_value,
        ignore_lease: r.ignore_lease,
    }
}

pub(crate) fn delete_request(r: &pb::DeleteRangeRequest) -> mvcc::DeleteRangeRequest {
    mvcc::DeleteRangeRequest {
        key: r.key.clone(),
        range_end: r.range_end.clone(),
        prev_kv: r.prev_kv,
    }
}

fn compare(c: &pb::Compare) -> mvcc::Compare {
    use pb::compare::{CompareResult, CompareTarget, TargetUnion};
    let result = match CompareResult::try_from(c.result) {
        Ok(CompareResult::Greater) => mvcc::CompareResult::Greater,
        Ok(CompareResult::Less) => mvcc::CompareResult::Less,
        Ok(CompareResult::NotEqual) => mvcc::CompareResult::NotEqual,
        Ok(CompareResult::Equal) | Err(_) => mvcc::CompareResult::Equal,
    };
    let int =
        |want: fn(&TargetUnion) -> Option<i64>| c.target_union.as_ref().and_then(want).unwrap_or(0);
    let target = match CompareTarget::try_from(c.target) {
        Ok(CompareTarget::Create) => mvcc::CompareTarget::Create(int(|t| match t {
            TargetUnion::CreateRevision(v) => Some(*v),
            _ => None,
        })),
        Ok(CompareTarget::Mod) => mvcc::CompareTarget::Mod(int(|t| match t {
            TargetUnion::ModRevision(v) => Some(*v),
            _ => None,
        })),
        Ok(CompareTarget::Value) => mvcc::CompareTarget::Value(match &c.target_union {
            Some(TargetUnion::Value(v)) => v.clone(),
            _ => Vec::new(),
        }),
        Ok(CompareTarget::Lease) => mvcc::CompareTarget::Lease(int(|t| match t {
            TargetUnion::Lease(v) => Some(*v),
            _ => None,
        })),
        Ok(CompareTarget::Version) | Err(_) => mvcc::CompareTarget::Version(int(|t| match t {
            TargetUnion::Version(v) => Some(*v),
            _ => None,
        })),
    };
    mvcc::Compare {
        result,
        target,
        key: c.key.clone(),
        range_end: c.range_end.clone(),
    }
}

fn request_op(op: &pb::RequestOp) -> Option<mvcc::RequestOp> {
    use pb::request_op::Request;
    Some(match op.request.as_ref()? {
        Request::RequestRange(r) => mvcc::RequestOp::Range(range_request(r)),
        Request::RequestPut(r) => mvcc::RequestOp::Put(put_request(r)),
        Request::RequestDeleteRange(r) => mvcc::RequestOp::DeleteRange(delete_request(r)),
        Request::RequestTxn(r) => mvcc::RequestOp::Txn(txn_request(r)),
    })
}

/// Ops with no request set are dropped; validation refuses them first (etcd answers
/// "key not found" for them).
pub(crate) fn txn_request(r: &pb::TxnRequest) -> mvcc::TxnRequest {
    mvcc::TxnRequest {
        compare: r.compare.iter().map(compare).collect(),
        success: r.success.iter().filter_map(request_op).collect(),
        failure: r.failure.iter().filter_map(request_op).collect(),
    }
}

// ------------------------------------------------------------------ mvcc responses → etcd

pub(crate) fn key_value(kv: mvcc::KeyValue) -> mvccpb::KeyValue {
    mvccpb::KeyValue {
        key: kv.key.into(),
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: kv.value.into(),
        lease: kv.lease,
    }
}

pub(crate) fn range_response(
    r: mvcc::RangeResponse,
    header: pb::ResponseHeader,
) -> pb::RangeResponse {
    pb::RangeResponse {
        header: Some(header),
        kvs: r.kvs.into_iter().map(key_value).collect(),
        more: r.more,
        count: r.count,
    }
}

pub(crate) fn put_response(r: mvcc::PutResponse, header: pb::ResponseHeader) -> pb::PutResponse {
    pb::PutResponse {
        header: Some(header),
        prev_kv: r.prev_kv.map(key_value),
    }
}

pub(crate) fn delete_response(
    r: mvcc::DeleteRangeResponse,
    header: pb::ResponseHeader,
) -> pb::DeleteRangeResponse {
    pb::DeleteRangeResponse {
        header: Some(header),
        deleted: r.deleted,
        prev_kvs: r.prev_kvs.into_iter().map(key_value).collect(),
    }
}

/// A txn response. As in etcd's applier, only the outer header is filled in: a nested
/// range, put or delete response carries a header with nothing but its revision, and a
/// nested txn response an empty header.
pub(crate) fn txn_response(r: mvcc::TxnResponse, header: pb::ResponseHeader) -> pb::TxnResponse {
    use pb::response_op::Response;
    let sub = |revision: i64| pb::ResponseHeader {
        revision,
        ..pb::ResponseHeader::default()
    };
    let responses = r
        .responses
        .into_iter()
        .map(|op| pb::ResponseOp {
            response: Some(match op {
                mvcc::ResponseOp::Range(r) => {
                    let h = sub(r.revision);
                    Response::ResponseRange(range_response(r, h))
                }
                mvcc::ResponseOp::Put(r) => {
                    let h = sub(r.revision);
                    Response::ResponsePut(put_response(r, h))
                }
                mvcc::ResponseOp::DeleteRange(r) => {
                    let h = sub(r.revision);
                    Response::ResponseDeleteRange(delete_response(r, h))
                }
                mvcc::ResponseOp::Txn(r) => {
                    Response::ResponseTxn(txn_response(r, pb::ResponseHeader::default()))
                }
            }),
        })
        .collect();
    pb::TxnResponse {
        header: Some(header),
        succeeded: r.succeeded,
        responses,
    }
}

// ------------------------------------------------------------------ raft ↔ keelpb ↔ wal

fn entry_to_pb(e: &raft::Entry) -> keelpb::Entry {
    keelpb::Entry {
        term: e.term,
        index: e.index,
        kind: match e.kind {
            raft::EntryKind::Normal => keelpb::EntryType::EntryNormal,
            raft::EntryKind::ConfChange => keelpb::EntryType::EntryConfChange,
        } as i32,
        data: e.data.clone(),
    }
}

fn entry_from_pb(e: keelpb::Entry) -> raft::Entry {
    raft::Entry {
        term: e.term,
        index: e.index,
        kind: match keelpb::EntryType::try_from(e.kind) {
            Ok(keelpb::EntryType::EntryConfChange) => raft::EntryKind::ConfChange,
            _ => raft::EntryKind::Normal,
        },
        data: e.data,
    }
}

/// WAL entry kind byte: 0 normal, 1 configuration change.
pub(crate) fn entry_to_wal(e: &raft::Entry) -> keel_wal::Entry {
    keel_wal::Entry {
        term: e.term,
        index: e.index,
        kind: match e.kind {
            raft::EntryKind::Normal => 0,
            raft::EntryKind::ConfChange => 1,
        },
        data: e.data.clone(),
    }
}

pub(crate) fn entry_from_wal(e: keel_wal::Entry) -> Result<raft::Entry, String> {
    let kind = match e.kind {
        0 => raft::EntryKind::Normal,
        1 => raft::EntryKind::ConfChange,
        other => return Err(format!("entry {} has unknown kind {other}", e.index)),
    };
    Ok(raft::Entry {
        term: e.term,
        index: e.index,
        kind,
        data: e.data,
    })
}

pub(crate) fn conf_state_to_pb(c: &raft::ConfState) -> keelpb::ConfState {
    keelpb::ConfState {
        voters: c.voters.clone(),
        learners: c.learners.clone(),
        voters_outgoing: c.voters_outgoing.clone(),
        learners_next: c.learners_next.clone(),
        auto_leave: c.auto_leave,
    }
}

pub(crate) fn conf_state_from_pb(c: keelpb::ConfState) -> raft::ConfState {
    raft::ConfState {
        voters: c.voters,
        learners: c.learners,
        voters_outgoing: c.voters_outgoing,
        learners_next: c.learners_next,
        auto_leave: c.auto_leave,
    }
}

pub(crate) fn snapshot_to_pb(s: &raft::Snapshot) -> keelpb::Snapshot {
    keelpb::Snapshot {
        metadata: Some(keelpb::SnapshotMetadata {
            index: s.metadata.index,
            term: s.metadata.term,
            conf_state: Some(conf_state_to_pb(&s.metadata.conf_state)),
        }),
        data: s.data.clone(),
    }
}

pub(crate) fn snapshot_from_pb(s: keelpb::Snapshot) -> raft::Snapshot {
    let meta = s.metadata.unwrap_or_default();
    raft::Snapshot {
        metadata: raft::SnapshotMetadata {
            index: meta.index,
            term: meta.term,
            conf_state: conf_state_from_pb(meta.conf_state.unwrap_or_default()),
        },
        data: s.data,
    }
}

/// The wire form of a message; `None` for local kinds, which never travel.
pub(crate) fn message_to_pb(m: &raft::Message) -> Option<keelpb::Message> {
    use keelpb::MessageType as P;
    use raft::MessageType as R;
    let kind = match m.kind {
        R::Propose => P::MsgPropose,
        R::Append => P::MsgAppend,
        R::AppendResponse => P::MsgAppendResponse,
        R::RequestVote => P::MsgRequestVote,
        R::RequestVoteResponse => P::MsgRequestVoteResponse,
        R::Snapshot => P::MsgSnapshot,
        R::Heartbeat => P::MsgHeartbeat,
        R::HeartbeatResponse => P::MsgHeartbeatResponse,
        R::TransferLeader => P::MsgTransferLeader,
        R::TimeoutNow => P::MsgTimeoutNow,
        R::ReadIndex => P::MsgReadIndex,
        R::ReadIndexResp => P::MsgReadIndexResp,
        R::RequestPreVote => P::MsgRequestPreVote,
        R::RequestPreVoteResponse => P::MsgRequestPreVoteResponse,
        R::Hup | R::Beat | R::Unreachable | R::SnapStatus | R::CheckQuorum => return None,
    };
    Some(keelpb::Message {
        kind: kind as i32,
        to: m.to,
        from: m.from,
        term: m.term,
        log_term: m.log_term,
        index: m.index,
        entries: m.entries.iter().map(entry_to_pb).collect(),
        commit: m.commit,
        reject: m.reject,
        reject_hint: m.reject_hint,
        snapshot: m.snapshot.as_ref().map(snapshot_to_pb),
        context: m.context.clone(),
    })
}

/// A message from the wire; `None` for an unknown kind.
pub(crate) fn message_from_pb(m: keelpb::Message) -> Option<raft::Message> {
    use keelpb::MessageType as P;
    use raft::MessageType as R;
    let kind = match P::try_from(m.kind).ok()? {
        P::MsgPropose => R::Propose,
        P::MsgAppend => R::Append,
        P::MsgAppendResponse => R::AppendResponse,
        P::MsgRequestVote => R::RequestVote,
        P::MsgRequestVoteResponse => R::RequestVoteResponse,
        P::MsgSnapshot => R::Snapshot,
        P::MsgHeartbeat => R::Heartbeat,
        P::MsgHeartbeatResponse => R::HeartbeatResponse,
        P::MsgTransferLeader => R::TransferLeader,
        P::MsgTimeoutNow => R::TimeoutNow,
        P::MsgReadIndex => R::ReadIndex,
        P::MsgReadIndexResp => R::ReadIndexResp,
        P::MsgRequestPreVote => R::RequestPreVote,
        P::MsgRequestPreVoteResponse => R::RequestPreVoteResponse,
    };
    Some(raft::Message {
        kind,
        to: m.to,
        from: m.from,
        term: m.term,
        log_term: m.log_term,
        index: m.index,
        entries: m.entries.into_iter().map(entry_from_pb).collect(),
        commit: m.commit,
        reject: m.reject,
        reject_hint: m.reject_hint,
        snapshot: m.snapshot.map(snapshot_from_pb),
        context: m.context,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_through_the_wire_form() {
        let m = raft::Message {
            kind: raft::MessageType::Snapshot,
            to: 2,
            from: 1,
            term: 3,
            log_term: 2,
            index: 9,
            entries: vec![raft::Entry {
                term: 3,
                index: 10,
                kind: raft::EntryKind::ConfChange,
                data: b"x".to_vec(),
            }],
            commit: 8,
            reject: true,
            reject_hint: 4,
            snapshot: Some(raft::Snapshot {
                metadata: raft::SnapshotMetadata {
                    index: 9,
                    term: 2,
                    conf_state: raft::ConfState {
                        voters: vec![1, 2, 3],
                        ..raft::ConfState::default()
                    },
                },
                data: b"members".to_vec(),
            }),
            context: b"ctx".to_vec(),
        };
        let wire = message_to_pb(&m).expect("network kind");
        assert_eq!(message_from_pb(wire), Some(m));
        let local = raft::Message {
            kind: raft::MessageType::Hup,
            ..raft::Message::default()
        };
        assert_eq!(message_to_pb(&local), None);
    }

    #[test]
    fn wal_entries_round_trip() {
        let e = raft::Entry {
            term: 1,
            index: 2,
            kind: raft::EntryKind::ConfChange,
            data: vec![1, 2],
        };
        assert_eq!(entry_from_wal(entry_to_wal(&e)), Ok(e));
        let bad = keel_wal::Entry {
            kind: 9,
            ..keel_wal::Entry::default()
        };
        assert!(entry_from_wal(bad).is_err());
    }
}
