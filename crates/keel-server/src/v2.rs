//! The v2 keys API on the real server: the replicated `keel_v2store::Store`, how v2
//! requests travel through Raft, and the [`keel_v2http::V2Backend`] the HTTP layer calls.
//!
//! As in etcd 3.4 (`etcdserver/apply_v2.go`, `server.go`):
//! - every v2 write and every quorum GET is a Raft proposal (`keelpb.InternalRequest`
//!   field `v2`), applied on every member, in log order, to one store per member
//!   ([`V2State`], owned by the node loop, shared for reads behind a std lock);
//! - plain GETs, HEADs and `wait=true` watches are served from the local store, so a
//!   watcher on a follower sees events as the follower applies them;
//! - TTLs are absolute times chosen by the proposer; keys expire only when the leader's
//!   SYNC (proposed every [`SYNC_INTERVAL`] while a key has a TTL) is applied;
//! - membership writes go into the hidden `/0` namespace (`/0/members/<id>/raftAttributes`
//!   at bootstrap, `/0/members/<id>/attributes` on publish, `/0/version` with the first
//!   publish), so the store index a client sees matches etcd's;
//! - the store's JSON is part of every Raft snapshot ([`SnapshotData`]) and is restored
//!   from the snapshot on restart and on a snapshot from the leader; entries after the
//!   snapshot are re-applied to it even when the v3 backend already holds them.
//!
//! # Snapshot data
//!
//! The `data` of a Keel Raft snapshot is a `keelpb.SnapshotData` with `version` = 2: the
//! membership record and the v2 store at exactly the snapshot's index. Data that does
//! not decode as version 2 is the format-1 layout (the membership record alone); the v2
//! store then starts empty.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use keel_proto::keelpb::{self, internal_request::Request, v2_request::Method as PbMethod};
use keel_v2http::{BackendError, BoxFuture, ClusterView, Member, RaftStatus, V2Backend};
use keel_v2store::time::UnixNanos;
use keel_v2store::{Event, Method, Stats, Store, V2Error, V2Request, Watcher, WatcherId};
use prost::Message as _;

use crate::api::{Core, ETCD_VERSION};
use crate::apply::Applied;
use crate::errors::ApiError;
use crate::membership::Membership;
use crate::node::Shared;

/// How often the leader checks for TTL keys and proposes a SYNC (etcd's `SyncTicker`).
pub(crate) const SYNC_INTERVAL: Duration = Duration::from_millis(500);
/// `keelpb.SnapshotData.version` of the layout with the v2 store.
pub(crate) const SNAPSHOT_DATA_VERSION: u32 = 2;
/// The namespaces of etcd's server store: membership and user keys.
const NAMESPACES: [&str; 2] = [
    keel_v2store::request::CLUSTER_PREFIX,
    keel_v2store::request::KEYS_PREFIX,
];

/// What applying a v2 request gave: the store's event (none for SYNC) or its error.
pub(crate) type V2Outcome = Result<Option<Arc<Event>>, V2Error>;

/// A member's v2 store and the last log index applied to it.
///
/// `applied` is separate from the v3 backend's consistent index: the store lives in
/// memory only, so after a restart it is rebuilt from the snapshot and every later entry,
/// while the backend skips entries it already holds.
pub(crate) struct V2State {
    pub store: Store,
    pub applied: u64,
}

impl V2State {
    /// The store of a snapshot's data at `index`.
    pub(crate) fn from_snapshot(data: &[u8], index: u64) -> Result<V2State, String> {
        let mut store = Store::new(&NAMESPACES);
        if let Some(json) = decode_snapshot_data(data)?.v2_store {
            store
                .recover(&json)
                .map_err(|e| format!("v2 store in the snapshot at index {index}: {e}"))?;
        }
        Ok(V2State {
            store,
            applied: index,
        })
    }
}

/// The parts of a snapshot's data.
pub(crate) struct SnapshotParts {
    pub membership: Vec<u8>,
    /// `None` for format-1 data (no v2 store).
    pub v2_store: Option<Vec<u8>>,
}

/// Encodes the data of a Raft snapshot (see the module docs).
pub(crate) fn encode_snapshot_data(membership: Vec<u8>, v2: &Store) -> Vec<u8> {
    keelpb::SnapshotData {
        membership,
        version: SNAPSHOT_DATA_VERSION,
        v2_store: v2.save(),
    }
    .encode_to_vec()
}

/// Decodes a Raft snapshot's data, either layout.
pub(crate) fn decode_snapshot_data(data: &[u8]) -> Result<SnapshotParts, String> {
    match keelpb::SnapshotData::decode(data) {
        Ok(d) if d.version == SNAPSHOT_DATA_VERSION => Ok(SnapshotParts {
            membership: d.membership,
            v2_store: Some(d.v2_store),
        }),
        Ok(d) if d.version != 0 => Err(format!(
            "snapshot data version {} is not one Keel knows",
            d.version
        )),
        _ => Ok(SnapshotParts {
            membership: data.to_vec(),
            v2_store: None,
        }),
    }
}

/// The v2 store of a new cluster: each initial member's `raftAttributes`, written as
/// etcd's applying of the bootstrap configuration changes writes them.
pub(crate) fn bootstrap_store(membership: &Membership) -> Store {
    let mut store = Store::new(&NAMESPACES);
    for m in membership.members.values() {
        let value = serde_json::json!({ "peerURLs": m.peer_urls }).to_string();
        let mut r = V2Request::new(Method::Put, format!("/0/members/{:x}/raftAttributes", m.id));
        r.val = value;
        store
            .apply(&r, 0)
            .expect("writing a member into a fresh store's /0 namespace succeeds");
    }
    store
}

/// The v2 effect of etcd's publish: the member's attributes, and the cluster version with
/// the first publish (etcd's leader sets it once the members are up).
pub(crate) fn apply_publish(store: &mut Store, attrs: &keelpb::MemberAttributes, now: UnixNanos) {
    let value =
        serde_json::json!({ "name": attrs.name, "clientURLs": attrs.client_urls }).to_string();
    let mut r = V2Request::new(
        Method::Put,
        format!("/0/members/{:x}/attributes", attrs.member_id),
    );
    r.val = value;
    if let Err(e) = store.apply(&r, now) {
        tracing::warn!(error = %e, "could not record member attributes in the v2 store");
    }
    if store.get("/0/version", false, false, now).is_err() {
        let mut r = V2Request::new(Method::Put, "/0/version");
        r.val = ETCD_VERSION.to_owned();
        if let Err(e) = store.apply(&r, now) {
            tracing::warn!(error = %e, "could not record the cluster version in the v2 store");
        }
    }
}

/// The v2 effect of a committed request: the outcome of a v2 request, the membership
/// writes of a publish (no outcome), nothing for the others.
pub(crate) fn apply_entry(store: &mut Store, request: Option<&Request>) -> Option<V2Outcome> {
    match request {
        // `now` only shapes the TTLs reported in the answer (etcd's store clock).
        Some(Request::V2(r)) => Some(store.apply(&from_pb(r), now())),
        Some(Request::Publish(attrs)) => {
            apply_publish(store, attrs, now());
            None
        }
        _ => None,
    }
}

/// The local clock in Unix nanoseconds.
pub(crate) fn now() -> UnixNanos {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// The wire form of a request the HTTP layer proposes.
pub(crate) fn to_pb(r: &V2Request) -> keelpb::V2Request {
    let method = match r.method {
        Method::Post => PbMethod::Post,
        Method::Put => PbMethod::Put,
        Method::Delete => PbMethod::Delete,
        // A GET reaching the log is a quorum read.
        Method::QGet | Method::Get | Method::Head => PbMethod::Qget,
        Method::Sync => PbMethod::Sync,
    };
    keelpb::V2Request {
        method: method as i32,
        path: r.path.clone(),
        val: r.val.clone(),
        dir: r.dir,
        prev_value: r.prev_value.clone(),
        prev_index: r.prev_index,
        prev_exist: r.prev_exist,
        recursive: r.recursive,
        sorted: r.sorted,
        refresh: r.refresh,
        expiration: r.expiration,
        time: r.time,
    }
}

/// The store's request for a committed one.
pub(crate) fn from_pb(r: &keelpb::V2Request) -> V2Request {
    let method = match PbMethod::try_from(r.method) {
        Ok(PbMethod::Post) => Method::Post,
        Ok(PbMethod::Put) => Method::Put,
        Ok(PbMethod::Delete) => Method::Delete,
        Ok(PbMethod::Sync) => Method::Sync,
        // Only QGET is left; an unknown method reads, which changes nothing.
        Ok(PbMethod::Qget | PbMethod::Unspecified) | Err(_) => Method::QGet,
    };
    let mut out = V2Request::new(method, r.path.clone());
    out.val = r.val.clone();
    out.dir = r.dir;
    out.prev_value = r.prev_value.clone();
    out.prev_index = r.prev_index;
    out.prev_exist = r.prev_exist;
    out.recursive = r.recursive;
    out.sorted = r.sorted;
    out.quorum = method == Method::QGet;
    out.refresh = r.refresh;
    out.expiration = r.expiration;
    out.time = r.time;
    out
}

/// The server's [`V2Backend`].
pub(crate) struct V2Server {
    core: Arc<Core>,
    name: String,
}

impl V2Server {
    pub(crate) fn new(core: Arc<Core>, name: String) -> V2Server {
        V2Server { core, name }
    }

    fn shared(&self) -> &Shared {
        &self.core.shared
    }

    fn v2_read(&self) -> std::sync::RwLockReadGuard<'_, V2State> {
        self.shared().v2.read().expect("v2 store lock poisoned")
    }

    fn v2_write(&self) -> std::sync::RwLockWriteGuard<'_, V2State> {
        self.shared().v2.write().expect("v2 store lock poisoned")
    }
}

fn unavailable(e: ApiError) -> BackendError {
    BackendError::Unavailable(e.to_string())
}

impl V2Backend for V2Server {
    fn propose(&self, req: V2Request) -> BoxFuture<'_, Result<Arc<Event>, BackendError>> {
        Box::pin(async move {
            let request = Request::V2(to_pb(&req));
            match self.core.propose(request).await.map_err(unavailable)? {
                Applied::V2(Ok(Some(e))) => Ok(e),
                Applied::V2(Err(e)) => Err(BackendError::Store(e)),
                other => Err(BackendError::Unavailable(format!(
                    "etcdserver: unexpected answer to a v2 request: {other:?}"
                ))),
            }
        })
    }

    fn get(&self, req: &V2Request) -> Result<Arc<Event>, BackendError> {
        Ok(self
            .v2_read()
            .store
            .get(&req.path, req.recursive, req.sorted, now())?)
    }

    fn watch(&self, req: &V2Request) -> Result<Watcher, BackendError> {
        Ok(self
            .v2_write()
            .store
            .watch(&req.path, req.recursive, req.stream, req.since)?)
    }

    fn cancel_watch(&self, id: WatcherId) {
        self.v2_write().store.remove_watcher(id);
    }

    fn raft_status(&self) -> RaftStatus {
        RaftStatus {
            index: self.shared().commit_index.load(Ordering::Acquire),
            term: self.shared().term.load(Ordering::Acquire),
        }
    }

    fn cluster(&self) -> ClusterView {
        let shared = self.shared();
        let membership = shared.membership.read().expect("membership lock poisoned");
        let leader = shared.leader();
        ClusterView {
            cluster_id: shared.cluster_id,
            members: membership
                .members
                .values()
                .map(|m| Member {
                    id: m.id,
                    name: m.name.clone(),
                    peer_urls: m.peer_urls.clone(),
                    client_urls: m.client_urls.clone(),
                })
                .collect(),
            leader: (leader != 0).then_some(leader),
        }
    }

    fn store_stats(&self) -> Stats {
        self.v2_read().store.stats()
    }

    /// etcd's `ServerStats` JSON (see `stats.rs`).
    fn self_stats(&self) -> String {
        self.shared().stats.self_json(&self.name)
    }

    /// etcd's `LeaderStats` JSON while this member leads (see `stats.rs`).
    fn leader_stats(&self) -> Option<String> {
        let shared = self.shared();
        (shared.leader() == shared.member_id).then(|| shared.stats.leader_json())
    }

    fn now(&self) -> UnixNanos {
        now()
    }
}

/// etcd's `monitor`-loop SYNC: while this member leads and a v2 key has a TTL, propose
/// the leader's time every [`SYNC_INTERVAL`]; applying it expires the keys due.
pub(crate) async fn sync_loop(core: Arc<Core>) {
    let mut interval = tokio::time::interval(SYNC_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        interval.tick().await;
        let shared = &core.shared;
        if shared.leader() != shared.member_id {
            continue;
        }
        let has_ttl = shared
            .v2
            .read()
            .expect("v2 store lock poisoned")
            .store
            .has_ttl_keys();
        if !has_ttl {
            continue;
        }
        let mut sync = V2Request::new(Method::Sync, "");
        sync.time = now();
        match core.propose(Request::V2(to_pb(&sync))).await {
            Ok(_) => {}
            Err(ApiError::Stopped) => return,
            Err(e) => tracing::debug!(error = %e, "v2 SYNC not applied"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_through_the_wire_form() {
        let mut r = V2Request::new(Method::Put, "/1/a");
        r.val = "v".into();
        r.prev_exist = Some(false);
        r.refresh = Some(true);
        r.expiration = 42;
        r.prev_index = 7;
        r.prev_value = "p".into();
        r.dir = true;
        r.recursive = true;
        assert_eq!(from_pb(&to_pb(&r)), r);
        let mut q = V2Request::new(Method::QGet, "/1/a");
        q.quorum = true;
        q.sorted = true;
        assert_eq!(from_pb(&to_pb(&q)), q);
    }

    #[test]
    fn snapshot_data_carries_membership_and_store() {
        let mut store = Store::new(&NAMESPACES);
        let mut r = V2Request::new(Method::Put, "/1/k");
        r.val = "v".into();
        store.apply(&r, 0).expect("set");
        let data = encode_snapshot_data(b"members".to_vec(), &store);
        let parts = decode_snapshot_data(&data).expect("decodes");
        assert_eq!(parts.membership, b"members");
        let state = V2State::from_snapshot(&data, 9).expect("recovers");
        assert_eq!((state.store.index(), state.applied), (1, 9));
        // Format 1: the membership record alone.
        let legacy = keelpb::Membership {
            version: 1,
            cluster_id: 5,
            members: vec![],
        }
        .encode_to_vec();
        let parts = decode_snapshot_data(&legacy).expect("format 1");
        assert_eq!(parts.membership, legacy);
        assert!(parts.v2_store.is_none());
    }

    #[test]
    fn publish_records_attributes_then_the_version_once() {
        let mut store = Store::new(&NAMESPACES);
        let attrs = keelpb::MemberAttributes {
            member_id: 0xab,
            name: "n".into(),
            client_urls: vec!["http://127.0.0.1:1".into()],
        };
        apply_publish(&mut store, &attrs, 0);
        assert_eq!(store.index(), 2);
        apply_publish(&mut store, &attrs, 0);
        assert_eq!(store.index(), 3, "the version is written once");
    }
}
