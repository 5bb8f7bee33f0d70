//! Debian's real `etcdctl` (etcd 3.4, API v3) against a tonic server built from
//! this crate's generated code. The server answers `KV.Range`, `KV.Put` and
//! `Maintenance.Status` from a tiny in-memory map, so what is tested is the
//! wire: service paths, message encodings, and the fields `etcdctl` prints.
//!
//! Skipped, with a note on stderr, when `/usr/bin/etcdctl` is absent.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keel_proto::etcdserverpb::kv_server::{Kv, KvServer};
use keel_proto::etcdserverpb::maintenance_server::{Maintenance, MaintenanceServer};
use keel_proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, CompactionRequest, CompactionResponse, DefragmentRequest,
    DefragmentResponse, DeleteRangeRequest, DeleteRangeResponse, DowngradeRequest,
    DowngradeResponse, HashKvRequest, HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest,
    MoveLeaderResponse, PutRequest, PutResponse, RangeRequest, RangeResponse, ResponseHeader,
    SnapshotRequest, SnapshotResponse, StatusRequest, StatusResponse, TxnRequest, TxnResponse,
};
use keel_proto::mvccpb::KeyValue;
use tokio::sync::oneshot;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

const ETCDCTL: &str = "/usr/bin/etcdctl";
const CLUSTER_ID: u64 = 0x1000;
const MEMBER_ID: u64 = 0x2a;
const RAFT_TERM: u64 = 3;
/// Bound on each `etcdctl` run; it also gets its own shorter dial and command
/// timeouts, so this only fires if it hangs outright.
const CHILD_TIMEOUT: Duration = Duration::from_secs(30);

/// The canned store: a map from key to its latest version, and the store
/// revision, shared by the KV and Maintenance services. A std mutex, because
/// it is never held across an `.await`.
#[derive(Clone, Default)]
struct CannedStore {
    state: Arc<Mutex<CannedState>>,
}

#[derive(Default)]
struct CannedState {
    revision: i64,
    keys: BTreeMap<Vec<u8>, KeyValue>,
}

impl CannedStore {
    fn header(revision: i64) -> Option<ResponseHeader> {
        Some(ResponseHeader {
            cluster_id: CLUSTER_ID,
            member_id: MEMBER_ID,
            revision,
            raft_term: RAFT_TERM,
        })
    }
}

#[tonic::async_trait]
impl Kv for CannedStore {
    async fn range(
        &self,
        request: Request<RangeRequest>,
    ) -> Result<Response<RangeResponse>, Status> {
        let request = request.into_inner();
        let state = self
            .state
            .lock()
            .expect("no handler panics while holding the lock");
        let in_range = |key: &Vec<u8>| match request.range_end.as_slice() {
            [] => *key == request.key,
            [0] => *key >= request.key,
            end => *key >= request.key && key.as_slice() < end,
        };
        let matching: Vec<KeyValue> = state
            .keys
            .values()
            .filter(|kv| in_range(&kv.key.to_vec()))
            .cloned()
            .collect();
        let count = i64::try_from(matching.len()).expect("a test map holds few keys");
        let limit = usize::try_from(request.limit)
            .ok()
            .filter(|&limit| limit > 0)
            .unwrap_or(usize::MAX);
        let kvs = if request.count_only {
            Vec::new()
        } else {
            matching.into_iter().take(limit).collect()
        };
        let more =
            !request.count_only && i64::try_from(kvs.len()).expect("bounded by count") < count;
        Ok(Response::new(RangeResponse {
            header: CannedStore::header(state.revision),
            kvs,
            more,
            count,
        }))
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let request = request.into_inner();
        if request.key.is_empty() {
            return Err(Status::invalid_argument("etcdserver: key is not provided"));
        }
        let mut state = self
            .state
            .lock()
            .expect("no handler panics while holding the lock");
        state.revision += 1;
        let revision = state.revision;
        let previous = state.keys.get(&request.key).cloned();
        let kv = KeyValue {
            key: request.key.clone().into(),
            create_revision: previous.as_ref().map_or(revision, |kv| kv.create_revision),
            mod_revision: revision,
            version: previous.as_ref().map_or(1, |kv| kv.version + 1),
            value: request.value.into(),
            lease: request.lease,
        };
        state.keys.insert(request.key, kv);
        let prev_kv = if request.prev_kv { previous } else { None };
        Ok(Response::new(PutResponse {
            header: CannedStore::header(revision),
            prev_kv,
        }))
    }

    async fn delete_range(
        &self,
        _: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        Err(Status::unimplemented("not part of the canned server"))
    }

    async fn txn(&self, _: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        Err(Status::unimplemented("not part of the canned server"))
    }

    async fn compact(
        &self,
        _: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        Err(Status::unimplemented("not part of the canned server"))
    }
}

#[tonic::async_trait]
impl Maintenance for CannedStore {
    /// Never opened: `snapshot` refuses before streaming.
    type SnapshotStream = tokio_stream::Empty<Result<SnapshotResponse, Status>>;

    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let revision = self
            .state
            .lock()
            .expect("no handler panics while holding the lock")
            .revision;
        let raft_index = u64::try_from(revision).expect("revisions are positive") + 5;
        Ok(Response::new(StatusResponse {
            header: CannedStore::header(revision),
            version: "3.4.23".to_owned(),
            db_size: 20_480,
            leader: MEMBER_ID,
            raft_index,
            raft_term: RAFT_TERM,
            raft_applied_index: raft_index,
            db_size_in_use: 16_384,
            ..StatusResponse::default()
        }))
    }

    async fn alarm(&self, _: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        Err(Status::unimplemented("not part of the canned server"))
    }

    async fn defragment(
        &self,
        _: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        Err(Status::unimplemented("not part of the canned server"))
    }

    async fn hash(&self, _: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        Err(Status::unimplemented("not part of the canned server"))
    }

    async fn hash_kv(&self, _: Request<HashKvRequest>) -> Result<Response<HashKvResponse>, Status> {
        Err(Status::unimplemented("not part of the canned server"))
    }

    async fn snapshot(
        &self,
        _: Request<SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        Err(Status::unimplemented("not part of the canned server"))
    }

    async fn move_leader(
        &self,
        _: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        Err(Status::unimplemented("not part of the canned server"))
    }

    async fn downgrade(
        &self,
        _: Request<DowngradeRequest>,
    ) -> Result<Response<DowngradeResponse>, Status> {
        Err(Status::unimplemented("not part of the canned server"))
    }
}

/// Runs `etcdctl` with API v3 against `addr`, bounded by `CHILD_TIMEOUT`, and
/// returns its stdout; panics with its stderr when it fails.
async fn etcdctl(addr: SocketAddr, args: &[&str]) -> String {
    let child = tokio::process::Command::new(ETCDCTL)
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={addr}"))
        .args(["--dial-timeout=5s", "--command-timeout=10s"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        // The child is ours alone; if the timeout below drops it, it is killed.
        .kill_on_drop(true)
        .spawn()
        .expect("etcdctl starts");
    let output = tokio::time::timeout(CHILD_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("etcdctl {args:?} did not finish within {CHILD_TIMEOUT:?}"))
        .expect("etcdctl's output is readable");
    let stdout = String::from_utf8(output.stdout).expect("etcdctl prints UTF-8");
    assert!(
        output.status.success(),
        "etcdctl {args:?} failed with {}: stdout {stdout:?}, stderr {:?}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_etcdctl_puts_gets_and_reads_status() {
    assert!(
        Path::new(ETCDCTL).exists(),
        "{ETCDCTL} is absent (scripts/install-deps installs etcd-client)"
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener
        .local_addr()
        .expect("bound listener has an address");
    let store = CannedStore::default();
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(
        Server::builder()
            .add_service(KvServer::new(store.clone()))
            .add_service(MaintenanceServer::new(store))
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                // Either an explicit shutdown or the test dropping the sender ends the server.
                let _ = shutdown_rx.await;
            }),
    );

    assert_eq!(etcdctl(addr, &["put", "foo", "bar"]).await, "OK\n");

    let json = etcdctl(addr, &["get", "foo", "-w", "json"]).await;
    assert_eq!(
        json.trim_end(),
        format!(
            concat!(
                r#"{{"header":{{"cluster_id":{},"member_id":{},"revision":1,"raft_term":{}}},"#,
                r#""kvs":[{{"key":"Zm9v","create_revision":1,"mod_revision":1,"version":1,"value":"YmFy"}}],"#,
                r#""count":1}}"#
            ),
            CLUSTER_ID, MEMBER_ID, RAFT_TERM
        )
    );

    assert_eq!(etcdctl(addr, &["get", "foo"]).await, "foo\nbar\n");

    // A second put bumps revision, mod_revision and version but keeps create_revision.
    assert_eq!(etcdctl(addr, &["put", "foo", "baz"]).await, "OK\n");
    assert_eq!(etcdctl(addr, &["put", "fop", "x"]).await, "OK\n");
    let json = etcdctl(addr, &["get", "foo", "-w", "json"]).await;
    assert!(
        json.contains(r#""kvs":[{"key":"Zm9v","create_revision":1,"mod_revision":2,"version":2,"value":"YmF6"}]"#),
        "{json}"
    );
    assert!(json.contains(r#""revision":3"#), "{json}");
    assert_eq!(
        etcdctl(addr, &["get", "--prefix", "fo"]).await,
        "foo\nbaz\nfop\nx\n"
    );
    assert_eq!(etcdctl(addr, &["get", "missing"]).await, "");

    let status = etcdctl(addr, &["endpoint", "status"]).await;
    assert_eq!(
        status,
        format!("{addr}, {MEMBER_ID:x}, 3.4.23, 20 kB, true, false, {RAFT_TERM}, 8, 8, \n")
    );

    shutdown_tx.send(()).expect("the server is still running");
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("server stops within 10s of shutdown")
        .expect("server task did not panic")
        .expect("server ran without transport errors");
}
