//! etcd's v3 gRPC API for Keel: the `.proto` files and the Rust code that
//! `prost` and `tonic` generate from them.
//!
//! # What is here
//!
//! `proto/` holds Keel's own proto files, one per etcd package:
//!
//! | module | file | services |
//! |---|---|---|
//! | [`mvccpb`] | `proto/mvccpb/kv.proto` | none (`KeyValue`, `Event`) |
//! | [`authpb`] | `proto/authpb/auth.proto` | none (`User`, `Role`, `Permission`) |
//! | [`etcdserverpb`] | `proto/etcdserverpb/rpc.proto` | `KV`, `Watch`, `Lease`, `Cluster`, `Maintenance`, `Auth` |
//! | [`v3lockpb`] | `proto/v3lockpb/v3lock.proto` | `Lock` |
//! | [`v3electionpb`] | `proto/v3electionpb/v3election.proto` | `Election` |
//!
//! Each module holds the messages plus, for every service, a `*_client` module
//! (e.g. [`etcdserverpb::kv_client::KvClient`]) and a `*_server` module with the
//! trait to implement and the tonic service wrapping it (e.g.
//! [`etcdserverpb::kv_server::Kv`] and [`etcdserverpb::kv_server::KvServer`]).
//! Module names are etcd's package names, so a proto path such as
//! `etcdserverpb.RangeRequest` is `keel_proto::etcdserverpb::RangeRequest`.
//! [`FILE_DESCRIPTOR_SET`] is the encoded `google.protobuf.FileDescriptorSet`
//! of all five files (with source info), for gRPC reflection.
//! [`coalesce::Coalesced`] wraps a connection so that what HTTP/2 has queued
//! goes out in one socket write, as grpc-go does; the server's client
//! connections and keel-bench's use it.
//!
//! A client and a server use the generated types directly:
//!
//! ```no_run
//! use keel_proto::etcdserverpb::{PutRequest, RangeRequest, kv_client::KvClient};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let mut kv = KvClient::connect("http://127.0.0.1:2379").await?;
//! kv.put(PutRequest { key: b"foo".to_vec(), value: b"bar".to_vec(), ..PutRequest::default() })
//!     .await?;
//! let range = kv.range(RangeRequest { key: b"foo".to_vec(), ..RangeRequest::default() }).await?;
//! assert_eq!(range.into_inner().kvs[0].value, &b"bar"[..]);
//! # Ok(())
//! # }
//! ```
//!
//! `mvccpb.KeyValue`'s `key` and `value` are `bytes::Bytes` (cheap to clone: a watched
//! event goes to many watchers); every other `bytes` field is a `Vec<u8>`.
//!
//! `build.rs` compiles the files with `protox`, a proto compiler written in
//! Rust, then generates code with `tonic-prost-build`: no system `protoc` is
//! involved.
//!
//! # The compatibility invariant
//!
//! A client of etcd must not see a difference on the wire. So for every
//! message the package, message, enum and field names, the field numbers,
//! types, labels and oneof membership, and for every service the rpc names,
//! request/response types and streaming flags, are exactly those of
//! **etcd 3.4** (the version Debian ships as `etcd-server`/`etcd-client`
//! 3.4.23). On top of that we carry what etcd 3.5 and 3.6 added in a way old
//! clients ignore; each addition is commented "Added in etcd 3.x" in the proto:
//!
//! - rpcs `Maintenance.Downgrade` (3.5) and `Auth.AuthStatus` (3.5) with their
//!   messages `DowngradeRequest` (and its enum `DowngradeAction`),
//!   `DowngradeResponse`, `AuthStatusRequest`, `AuthStatusResponse`;
//! - `MemberListRequest.linearizable` (3.5), `AuthUserAddRequest.hashedPassword`
//!   (3.5), `AuthUserChangePasswordRequest.hashedPassword` (3.5);
//! - `HashKVResponse.hash_revision`, `SnapshotResponse.version`,
//!   `StatusResponse.storageVersion`, `.dbSizeQuota`, `.downgradeInfo` and the
//!   message `DowngradeInfo` (all 3.6).
//!
//! Left out on purpose: gogoproto options and `google.api.http` annotations
//! (no effect on the wire; the JSON gateway is written by hand), etcd 3.6's
//! `versionpb` annotations (options only, they generate no code), and 3.6's
//! test-only `DowngradeVersionTestRequest`, which no rpc carries. etcd's
//! internal protos (raftpb, walpb, etcdserver.proto, raft_internal.proto) are
//! not part of the client API and are not here.
//!
//! # How compatibility is checked
//!
//! - `tests/etcd_protos_match.rs` compiles etcd's own 3.4 protos from the
//!   Debian package `golang-etcd-server-dev`
//!   (`/usr/share/gocode/src/go.etcd.io/etcd/`, with its gogoproto and
//!   googleapis imports from `golang-github-gogo-protobuf-dev` and
//!   `golang-github-grpc-ecosystem-grpc-gateway-dev`) with `protox`, and
//!   compares every message, enum and service with [`FILE_DESCRIPTOR_SET`].
//!   Anything missing or different fails the test; anything extra fails
//!   unless it is one of the later-etcd additions listed above, with the
//!   number and type etcd gave it. Run it alone, with its report printed:
//!   `cargo test -p keel-proto --profile ci --test etcd_protos_match -- --nocapture`.
//!   Set `KEEL_GOCODE_SRC` to use another Go source tree than
//!   `/usr/share/gocode/src`. When etcd's protos are absent the test fails
//!   (`scripts/install-deps` installs them).
//! - `tests/etcdctl.rs` serves canned `KV.Range`, `KV.Put` and
//!   `Maintenance.Status` handlers on 127.0.0.1 and drives Debian's real
//!   `etcdctl` 3.4 (`put`, `get -w json`, `get`, `endpoint status`) against
//!   them, asserting on its output.
//!
//! # Naming in Rust
//!
//! `prost` turns field names into snake case, so etcd's mixed-case fields get
//! Rust names like `id` (`ID`), `ttl` (`TTL`), `granted_ttl` (`grantedTTL`),
//! `db_size_in_use` (`dbSizeInUse`) and `peer_ur_ls` (`peerURLs`). Only the Rust
//! identifier changes; the wire and the JSON names stay etcd's.

pub mod coalesce;

/// Storage-level types shared by the other packages (etcd's `mvccpb`).
pub mod mvccpb {
    include!(concat!(env!("OUT_DIR"), "/mvccpb.rs"));
}

/// Auth store records (etcd's `authpb`).
pub mod authpb {
    include!(concat!(env!("OUT_DIR"), "/authpb.rs"));
}

/// The client API: KV, Watch, Lease, Cluster, Maintenance and Auth (etcd's
/// `etcdserverpb`).
pub mod etcdserverpb {
    include!(concat!(env!("OUT_DIR"), "/etcdserverpb.rs"));
}

/// The distributed lock service (etcd's `v3lockpb`).
pub mod v3lockpb {
    include!(concat!(env!("OUT_DIR"), "/v3lockpb.rs"));
}

/// The leader election service (etcd's `v3electionpb`).
pub mod v3electionpb {
    include!(concat!(env!("OUT_DIR"), "/v3electionpb.rs"));
}

/// Keel's own peer protocol and Raft proposals (`proto/keelpb/raft.proto` and
/// `proto/keelpb/internal.proto`): Raft messages between Keel members, the request
/// envelope proposed through Raft, and the membership record. Not part of etcd's
/// client API and not in [`FILE_DESCRIPTOR_SET`].
pub mod keelpb {
    include!(concat!(env!("OUT_DIR"), "/keelpb.rs"));
}

/// Encoded `google.protobuf.FileDescriptorSet` of etcd's client API proto files in
/// this crate (not `keelpb`), source info included, as served by gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/keel_descriptor.bin"));
