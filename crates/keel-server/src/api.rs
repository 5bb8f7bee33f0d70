//! The client API: etcd's gRPC services `KV`, `Maintenance` (Status) and `Cluster`
//! (MemberList), and the HTTP endpoints `/health` and `/version`. Handlers only
//! validate (etcd's `v3rpc/key.go` rules), call the node, and map errors through
//! [`ApiError::status`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use keel_proto::etcdserverpb::{self as pb, request_op::Request as Op};
use keel_proto::keelpb::{self, internal_request::Request};
use prost::Message as _;
use tokio::sync::{mpsc, oneshot};
use tonic::{Response, Status};
use tracing::Instrument as _;

use crate::apply::Applied;
use crate::convert;
use crate::errors::ApiError;
use crate::node::{NodeInput, Proposal, Shared};

/// The etcd version Keel speaks, reported by `/version` and `Maintenance.Status`.
pub const ETCD_VERSION: &str = "3.4.0";
/// gRPC overhead allowed on top of `--max-request-bytes` (etcd's `grpcOverheadBytes`).
pub(crate) const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;
/// How long `/health` waits for its linearizable read (etcd: 1 s).
const HEALTH_READ_TIMEOUT: Duration = Duration::from_secs(1);

/// What every handler shares: the node's published state and its input channel.
pub(crate) struct Core {
    pub shared: Arc<Shared>,
    pub node: mpsc::Sender<NodeInput>,
    pub max_request_bytes: u64,
    pub max_txn_ops: u64,
    /// etcd's request timeout: 5 s + 2 × the election timeout.
    pub request_timeout: Duration,
    next_id: AtomicU64,
}

impl Core {
    pub(crate) fn new(
        shared: Arc<Shared>,
        node: mpsc::Sender<NodeInput>,
        max_request_bytes: u64,
        max_txn_ops: u64,
        request_timeout: Duration,
    ) -> Core {
        // etcd's idutil: the member id's low 16 bits on top, then a counter started from
        // the clock so ids do not repeat across restarts.
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let prefix = (shared.member_id & 0xffff) << 48;
        let start = prefix | ((now_ms << 8) & ((1 << 48) - 1));
        Core {
            shared,
            node,
            max_request_bytes,
            max_txn_ops,
            request_timeout,
            next_id: AtomicU64::new(start),
        }
    }

    pub(crate) fn header(&self, revision: i64) -> pb::ResponseHeader {
        pb::ResponseHeader {
            cluster_id: self.shared.cluster_id,
            member_id: self.shared.member_id,
            revision,
            raft_term: self.shared.term.load(Ordering::Acquire),
        }
    }

    /// Proposes `request` and waits until it is applied on this member.
    pub(crate) async fn propose(&self, request: Request) -> Result<Applied, ApiError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let data = keelpb::InternalRequest {
            id,
            request: Some(request),
        }
        .encode_to_vec();
        if data.len() as u64 > self.max_request_bytes {
            return Err(ApiError::RequestTooLarge);
        }
        let span = tracing::debug_span!("propose", request_id = format_args!("{id:x}"));
        let (reply, applied) = oneshot::channel();
        let wait = async {
            self.node
                .send(NodeInput::Propose(Proposal { id, data, reply }))
                .await
                .map_err(|_| ApiError::Stopped)?;
            applied.await.map_err(|_| ApiError::Stopped)?
        };
        tokio::time::timeout(self.request_timeout, wait.instrument(span))
            .await
            .map_err(|_| ApiError::Timeout)?
    }

    /// Waits until a linearizable read may be served locally (ReadIndex, batched).
    pub(crate) async fn read_index(&self, timeout: Duration) -> Result<(), ApiError> {
        let (reply, confirmed) = oneshot::channel();
        let wait = async {
            self.node
                .send(NodeInput::ReadIndex(reply))
                .await
                .map_err(|_| ApiError::Stopped)?;
            confirmed.await.map_err(|_| ApiError::Stopped)?
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(result) => result,
            Err(_) if self.shared.leader() == 0 => Err(ApiError::NoLeader),
            Err(_) => Err(ApiError::Timeout),
        }
    }

    fn range_local(&self, r: &pb::RangeRequest) -> Result<pb::RangeResponse, ApiError> {
        let resp = self
            .shared
            .store
            .read()
            .expect("store lock poisoned")
            .range(&convert::range_request(r))
            .map_err(|e| ApiError::from_mvcc(&e))?;
        let header = self.header(resp.revision);
        Ok(convert::range_response(resp, header))
    }
}

// ------------------------------------------------------------------ validation (key.go)

fn check_range(r: &pb::RangeRequest) -> Result<(), ApiError> {
    if r.key.is_empty() {
        return Err(ApiError::EmptyKey);
    }
    Ok(())
}

fn check_put(r: &pb::PutRequest) -> Result<(), ApiError> {
    if r.key.is_empty() {
        return Err(ApiError::EmptyKey);
    }
    if r.ignore_value && !r.value.is_empty() {
        return Err(ApiError::ValueProvided);
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(ApiError::LeaseProvided);
    }
    Ok(())
}

fn check_delete(r: &pb::DeleteRangeRequest) -> Result<(), ApiError> {
    if r.key.is_empty() {
        return Err(ApiError::EmptyKey);
    }
    Ok(())
}

fn check_txn(r: &pb::TxnRequest, max_txn_ops: i64) -> Result<(), ApiError> {
    let ops = r.compare.len().max(r.success.len()).max(r.failure.len()) as i64;
    if ops > max_txn_ops {
        return Err(ApiError::TooManyOps);
    }
    if r.compare.iter().any(|c| c.key.is_empty()) {
        return Err(ApiError::EmptyKey);
    }
    for op in r.success.iter().chain(&r.failure) {
        match &op.request {
            Some(Op::RequestRange(r)) => check_range(r)?,
            Some(Op::RequestPut(r)) => check_put(r)?,
            Some(Op::RequestDeleteRange(r)) => check_delete(r)?,
            Some(Op::RequestTxn(r)) => check_txn(r, max_txn_ops - ops)?,
            None => return Err(ApiError::KeyNotFound),
        }
    }
    Ok(())
}

/// `[key, end)`; an empty end is the single key, `[0]` everything from `key` on.
#[derive(Clone, Debug)]
struct Interval {
    key: Vec<u8>,
    end: Vec<u8>,
}

impl Interval {
    fn contains(&self, k: &[u8]) -> bool {
        if self.end.is_empty() {
            k == self.key.as_slice()
        } else if self.end == [0] {
            k >= self.key.as_slice()
        } else {
            k >= self.key.as_slice() && k < self.end.as_slice()
        }
    }
}

/// etcd's `checkIntervals`: within one branch, no key is put twice or both put and
/// deleted, looking into nested txns (whose two branches may put the same key).
fn check_intervals(ops: &[pb::RequestOp]) -> Result<(Vec<Vec<u8>>, Vec<Interval>), ApiError> {
    let mut dels: Vec<Interval> = ops
        .iter()
        .filter_map(|op| match &op.request {
            Some(Op::RequestDeleteRange(d)) => Some(Interval {
                key: d.key.clone(),
                end: d.range_end.clone(),
            }),
            _ => None,
        })
        .collect();
    let deleted = |dels: &[Interval], k: &[u8]| dels.iter().any(|iv| iv.contains(k));
    let mut puts: Vec<Vec<u8>> = Vec::new();
    for op in ops {
        let Some(Op::RequestTxn(t)) = &op.request else {
            continue;
        };
        let (puts_then, dels_then) = check_intervals(&t.success)?;
        let (puts_else, dels_else) = check_intervals(&t.failure)?;
        for k in &puts_then {
            if puts.contains(k) || deleted(&dels, k) {
                return Err(ApiError::DuplicateKey);
            }
        }
        for k in &puts_else {
            if (puts.contains(k) && !puts_then.contains(k)) || deleted(&dels, k) {
                return Err(ApiError::DuplicateKey);
            }
        }
        puts.extend(puts_then);
        puts.extend(puts_else);
        dels.extend(dels_then);
        dels.extend(dels_else);
    }
    for op in ops {
        let Some(Op::RequestPut(p)) = &op.request else {
            continue;
        };
        if puts.contains(&p.key) || deleted(&dels, &p.key) {
            return Err(ApiError::DuplicateKey);
        }
        puts.push(p.key.clone());
    }
    Ok((puts, dels))
}

fn txn_is_read_only(r: &pb::TxnRequest) -> bool {
    r.success
        .iter()
        .chain(&r.failure)
        .all(|op| matches!(op.request, Some(Op::RequestRange(_))))
}

fn txn_is_serializable(r: &pb::TxnRequest) -> bool {
    r.success
        .iter()
        .chain(&r.failure)
        .all(|op| matches!(&op.request, Some(Op::RequestRange(r)) if r.serializable))
}

// ------------------------------------------------------------------ gRPC services

/// `etcdserverpb.KV`.
pub(crate) struct KvService(pub Arc<Core>);

fn unexpected(what: &Applied) -> Status {
    Status::internal(format!("keel: unexpected apply result {what:?}"))
}

#[tonic::async_trait]
impl pb::kv_server::Kv for KvService {
    async fn range(
        &self,
        request: tonic::Request<pb::RangeRequest>,
    ) -> Result<Response<pb::RangeResponse>, Status> {
        let r = request.into_inner();
        check_range(&r)?;
        if !r.serializable {
            self.0.read_index(self.0.request_timeout).await?;
        }
        Ok(Response::new(self.0.range_local(&r)?))
    }

    async fn put(
        &self,
        request: tonic::Request<pb::PutRequest>,
    ) -> Result<Response<pb::PutResponse>, Status> {
        let r = request.into_inner();
        check_put(&r)?;
        match self.0.propose(Request::Put(r)).await? {
            Applied::Put(resp) => {
                let header = self.0.header(resp.revision);
                Ok(Response::new(convert::put_response(resp, header)))
            }
            other => Err(unexpected(&other)),
        }
    }

    async fn delete_range(
        &self,
        request: tonic::Request<pb::DeleteRangeRequest>,
    ) -> Result<Response<pb::DeleteRangeResponse>, Status> {
        let r = request.into_inner();
        check_delete(&r)?;
        match self.0.propose(Request::DeleteRange(r)).await? {
            Applied::DeleteRange(resp) => {
                let header = self.0.header(resp.revision);
                Ok(Response::new(convert::delete_response(resp, header)))
            }
            other => Err(unexpected(&other)),
        }
    }

    async fn txn(
        &self,
        request: tonic::Request<pb::TxnRequest>,
    ) -> Result<Response<pb::TxnResponse>, Status> {
        let r = request.into_inner();
        check_txn(&r, i64::try_from(self.0.max_txn_ops).unwrap_or(i64::MAX))?;
        check_intervals(&r.success)?;
        check_intervals(&r.failure)?;
        if txn_is_read_only(&r) {
            if !txn_is_serializable(&r) {
                self.0.read_index(self.0.request_timeout).await?;
            }
            let resp = self
                .0
                .shared
                .store
                .read()
                .expect("store lock poisoned")
                .read_txn(&convert::txn_request(&r))
                .map_err(|e| ApiError::from_mvcc(&e))?;
            let header = self.0.header(resp.revision);
            return Ok(Response::new(convert::txn_response(resp, header)));
        }
        match self.0.propose(Request::Txn(r)).await? {
            Applied::Txn(resp) => {
                let header = self.0.header(resp.revision);
                Ok(Response::new(convert::txn_response(resp, header)))
            }
            other => Err(unexpected(&other)),
        }
    }

    async fn compact(
        &self,
        request: tonic::Request<pb::CompactionRequest>,
    ) -> Result<Response<pb::CompactionResponse>, Status> {
        let r = request.into_inner();
        match self.0.propose(Request::Compaction(r)).await? {
            Applied::Compact(resp) => Ok(Response::new(pb::CompactionResponse {
                header: Some(self.0.header(resp.revision)),
            })),
            other => Err(unexpected(&other)),
        }
    }
}

fn not_built(what: &str) -> Status {
    Status::unimplemented(format!("keel: {what} is not implemented yet"))
}

/// `etcdserverpb.Maintenance`: `Status`, `Hash` and `HashKV` so far.
pub(crate) struct MaintenanceService(pub Arc<Core>);

#[tonic::async_trait]
impl pb::maintenance_server::Maintenance for MaintenanceService {
    async fn alarm(
        &self,
        _: tonic::Request<pb::AlarmRequest>,
    ) -> Result<Response<pb::AlarmResponse>, Status> {
        Err(not_built("Maintenance.Alarm"))
    }

    async fn status(
        &self,
        _: tonic::Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let shared = &self.0.shared;
        let (revision, db_size, db_size_in_use) = {
            let store = shared.store.read().expect("store lock poisoned");
            let size = store.db_size_bytes().map_err(|e| ApiError::from_mvcc(&e))?;
            let in_use = store
                .db_size_in_use_bytes()
                .map_err(|e| ApiError::from_mvcc(&e))?;
            (store.current_revision(), size, in_use)
        };
        let leader = shared.leader();
        let errors = if leader == 0 {
            vec![ApiError::NoLeader.to_string()]
        } else {
            Vec::new()
        };
        Ok(Response::new(pb::StatusResponse {
            header: Some(self.0.header(revision)),
            version: ETCD_VERSION.to_owned(),
            db_size: i64::try_from(db_size).unwrap_or(i64::MAX),
            leader,
            raft_index: shared.commit_index.load(Ordering::Acquire),
            raft_term: shared.term.load(Ordering::Acquire),
            raft_applied_index: shared.applied_index.load(Ordering::Acquire),
            errors,
            db_size_in_use: i64::try_from(db_size_in_use).unwrap_or(i64::MAX),
            is_learner: shared.is_learner.load(Ordering::Acquire),
            ..pb::StatusResponse::default()
        }))
    }

    async fn defragment(
        &self,
        _: tonic::Request<pb::DefragmentRequest>,
    ) -> Result<Response<pb::DefragmentResponse>, Status> {
        Err(not_built("Maintenance.Defragment"))
    }

    async fn hash(
        &self,
        _: tonic::Request<pb::HashRequest>,
    ) -> Result<Response<pb::HashResponse>, Status> {
        // A full scan after a forced backend commit: blocking work, off the runtime.
        let shared = Arc::clone(&self.0.shared);
        let (hash, revision) = tokio::task::spawn_blocking(move || {
            let mut store = shared.store.write().expect("store lock poisoned");
            let hash = store.hash().map_err(|e| ApiError::from_mvcc(&e))?;
            Ok::<_, ApiError>((hash, store.current_revision()))
        })
        .await
        .map_err(|e| Status::internal(format!("keel: hash task: {e}")))??;
        Ok(Response::new(pb::HashResponse {
            header: Some(self.0.header(revision)),
            hash,
        }))
    }

    async fn hash_kv(
        &self,
        request: tonic::Request<pb::HashKvRequest>,
    ) -> Result<Response<pb::HashKvResponse>, Status> {
        let rev = request.into_inner().revision;
        let shared = Arc::clone(&self.0.shared);
        let h = tokio::task::spawn_blocking(move || {
            let store = shared.store.read().expect("store lock poisoned");
            store.hash_kv(rev).map_err(|e| ApiError::from_mvcc(&e))
        })
        .await
        .map_err(|e| Status::internal(format!("keel: hash task: {e}")))??;
        Ok(Response::new(pb::HashKvResponse {
            header: Some(self.0.header(h.revision)),
            hash: h.hash,
            compact_revision: h.compact_revision,
            hash_revision: if rev == 0 { h.revision } else { rev },
        }))
    }

    type SnapshotStream = tokio_stream::Empty<Result<pb::SnapshotResponse, Status>>;

    async fn snapshot(
        &self,
        _: tonic::Request<pb::SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        Err(not_built("Maintenance.Snapshot"))
    }

    async fn move_leader(
        &self,
        _: tonic::Request<pb::MoveLeaderRequest>,
    ) -> Result<Response<pb::MoveLeaderResponse>, Status> {
        Err(not_built("Maintenance.MoveLeader"))
    }

    async fn downgrade(
        &self,
        _: tonic::Request<pb::DowngradeRequest>,
    ) -> Result<Response<pb::DowngradeResponse>, Status> {
        Err(not_built("Maintenance.Downgrade"))
    }
}

/// `etcdserverpb.Cluster`: `MemberList` only so far.
pub(crate) struct ClusterService(pub Arc<Core>);

#[tonic::async_trait]
impl pb::cluster_server::Cluster for ClusterService {
    async fn member_add(
        &self,
        _: tonic::Request<pb::MemberAddRequest>,
    ) -> Result<Response<pb::MemberAddResponse>, Status> {
        Err(not_built("Cluster.MemberAdd"))
    }

    async fn member_remove(
        &self,
        _: tonic::Request<pb::MemberRemoveRequest>,
    ) -> Result<Response<pb::MemberRemoveResponse>, Status> {
        Err(not_built("Cluster.MemberRemove"))
    }

    async fn member_update(
        &self,
        _: tonic::Request<pb::MemberUpdateRequest>,
    ) -> Result<Response<pb::MemberUpdateResponse>, Status> {
        Err(not_built("Cluster.MemberUpdate"))
    }

    async fn member_list(
        &self,
        request: tonic::Request<pb::MemberListRequest>,
    ) -> Result<Response<pb::MemberListResponse>, Status> {
        if request.into_inner().linearizable {
            self.0.read_index(self.0.request_timeout).await?;
        }
        let members = self
            .0
            .shared
            .membership
            .read()
            .expect("membership lock poisoned")
            .members
            .values()
            .map(|m| pb::Member {
                id: m.id,
                name: m.name.clone(),
                peer_ur_ls: m.peer_urls.clone(),
                client_ur_ls: m.client_urls.clone(),
                is_learner: m.is_learner,
            })
            .collect();
        // etcd's Cluster service headers carry no revision: members are not in the keyspace.
        Ok(Response::new(pb::MemberListResponse {
            header: Some(self.0.header(0)),
            members,
        }))
    }

    async fn member_promote(
        &self,
        _: tonic::Request<pb::MemberPromoteRequest>,
    ) -> Result<Response<pb::MemberPromoteResponse>, Status> {
        Err(not_built("Cluster.MemberPromote"))
    }
}

// ------------------------------------------------------------------ HTTP

/// `GET /health`: etcd 3.4's body, `{"health":"true"}`, or `{"health":"false"}` with
/// 503 when there is no leader or a linearizable read fails (the reason is logged, as
/// 3.4 does).
pub(crate) async fn health(core: Arc<Core>) -> axum::response::Response {
    let reason = if core.shared.leader() == 0 {
        Some("no leader".to_owned())
    } else {
        core.read_index(HEALTH_READ_TIMEOUT)
            .await
            .err()
            .map(|e| e.to_string())
    };
    match reason {
        None => (
            StatusCode::OK,
            [("content-type", "text/plain; charset=utf-8")],
            "{\"health\":\"true\"}",
        )
            .into_response(),
        Some(reason) => {
            tracing::warn!(reason, "/health error (status code 503)");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [("content-type", "text/plain; charset=utf-8")],
                "{\"health\":\"false\"}\n",
            )
                .into_response()
        }
    }
}

/// `GET /version`.
pub(crate) async fn version() -> axum::response::Response {
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        format!("{{\"etcdserver\":\"{ETCD_VERSION}\",\"etcdcluster\":\"{ETCD_VERSION}\"}}"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: &str) -> pb::RequestOp {
        pb::RequestOp {
            request: Some(Op::RequestPut(pb::PutRequest {
                key: k.as_bytes().to_vec(),
                ..pb::PutRequest::default()
            })),
        }
    }

    fn del(k: &str, end: &str) -> pb::RequestOp {
        pb::RequestOp {
            request: Some(Op::RequestDeleteRange(pb::DeleteRangeRequest {
                key: k.as_bytes().to_vec(),
                range_end: end.as_bytes().to_vec(),
                ..pb::DeleteRangeRequest::default()
            })),
        }
    }

    fn txn(success: Vec<pb::RequestOp>, failure: Vec<pb::RequestOp>) -> pb::RequestOp {
        pb::RequestOp {
            request: Some(Op::RequestTxn(pb::TxnRequest {
                compare: Vec::new(),
                success,
                failure,
            })),
        }
    }

    #[test]
    fn duplicate_keys_follow_etcd_check_intervals() {
        assert!(check_intervals(&[put("a"), put("b")]).is_ok());
        assert_eq!(
            check_intervals(&[put("a"), put("a")]).err(),
            Some(ApiError::DuplicateKey)
        );
        assert_eq!(
            check_intervals(&[del("a", "c"), put("b")]).err(),
            Some(ApiError::DuplicateKey)
        );
        assert!(check_intervals(&[del("a", "c"), put("c")]).is_ok());
        // Both branches of a nested txn may put the same key; the outer one may not.
        assert!(check_intervals(&[txn(vec![put("a")], vec![put("a")])]).is_ok());
        assert_eq!(
            check_intervals(&[txn(vec![put("a")], vec![]), put("a")]).err(),
            Some(ApiError::DuplicateKey)
        );
    }

    #[test]
    fn txn_limits_count_the_largest_branch() {
        let r = pb::TxnRequest {
            compare: Vec::new(),
            success: vec![put("a"), put("b"), put("c")],
            failure: Vec::new(),
        };
        assert!(check_txn(&r, 3).is_ok());
        assert_eq!(check_txn(&r, 2), Err(ApiError::TooManyOps));
        let empty_op = pb::TxnRequest {
            success: vec![pb::RequestOp { request: None }],
            ..pb::TxnRequest::default()
        };
        assert_eq!(check_txn(&empty_op, 3), Err(ApiError::KeyNotFound));
    }
}
