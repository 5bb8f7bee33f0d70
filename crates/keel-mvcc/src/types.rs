//! Requests and responses, shaped like etcd's `etcdserverpb` messages without the
//! response header (each response carries the header's `revision`).

use crate::kv::KeyValue;

/// Order of a range result (etcd `RangeRequest.SortOrder`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SortOrder {
    /// Key order, unless the target is not `Key` (then ascending, as etcd does).
    #[default]
    None,
    /// Lowest target first.
    Ascend,
    /// Highest target first.
    Descend,
}

/// Field a range result is sorted by (etcd `RangeRequest.SortTarget`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SortTarget {
    /// The key.
    #[default]
    Key,
    /// The version.
    Version,
    /// The create revision.
    Create,
    /// The mod revision.
    Mod,
    /// The value.
    Value,
}

/// etcd `RangeRequest`. `range_end` empty: only `key`; `[0]`: every key `>= key`;
/// otherwise the half-open interval `[key, range_end)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeRequest {
    /// First key (or the only key).
    pub key: Vec<u8>,
    /// End of the interval, see the type docs.
    pub range_end: Vec<u8>,
    /// Most keys returned; 0 for no limit.
    pub limit: i64,
    /// Revision to read at; 0 or less for the current one.
    pub revision: i64,
    /// Order of the result.
    pub sort_order: SortOrder,
    /// Field sorted by.
    pub sort_target: SortTarget,
    /// Return keys without values.
    pub keys_only: bool,
    /// Return only the count.
    pub count_only: bool,
    /// Drop keys modified before this revision (0: no filter).
    pub min_mod_revision: i64,
    /// Drop keys modified after this revision (0: no filter).
    pub max_mod_revision: i64,
    /// Drop keys created before this revision (0: no filter).
    pub min_create_revision: i64,
    /// Drop keys created after this revision (0: no filter).
    pub max_create_revision: i64,
}

/// etcd `RangeResponse`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeResponse {
    /// Store revision when the read was served (header revision).
    pub revision: i64,
    /// The keys found, after filters, sort and limit.
    pub kvs: Vec<KeyValue>,
    /// More keys matched than `limit` allowed.
    pub more: bool,
    /// Keys in the range at the read revision, before the filters and limit.
    pub count: i64,
}

/// etcd `PutRequest`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PutRequest {
    /// The key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
    /// Lease to attach, 0 for none (the lease's existence is the server's check).
    pub lease: i64,
    /// Return the previous key-value.
    pub prev_kv: bool,
    /// Keep the current value; fails if the key does not exist.
    pub ignore_value: bool,
    /// Keep the current lease; fails if the key does not exist.
    pub ignore_lease: bool,
}

/// etcd `PutResponse`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PutResponse {
    /// Revision of the put.
    pub revision: i64,
    /// Previous key-value, if asked for and the key existed.
    pub prev_kv: Option<KeyValue>,
}

/// etcd `DeleteRangeRequest`; `range_end` as in [`RangeRequest`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteRangeRequest {
    /// First key (or the only key).
    pub key: Vec<u8>,
    /// End of the interval.
    pub range_end: Vec<u8>,
    /// Return the deleted key-values.
    pub prev_kv: bool,
}

/// etcd `DeleteRangeResponse`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteRangeResponse {
    /// Store revision after the delete (unchanged if nothing was deleted).
    pub revision: i64,
    /// Number of keys deleted.
    pub deleted: i64,
    /// The deleted key-values, if asked for.
    pub prev_kvs: Vec<KeyValue>,
}

/// What a [`Compare`] looks at, with the operand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CompareTarget {
    /// The version.
    Version(i64),
    /// The create revision.
    Create(i64),
    /// The mod revision.
    Mod(i64),
    /// The value; a missing key never compares on value.
    Value(Vec<u8>),
    /// The lease id.
    Lease(i64),
}

/// The comparison of a [`Compare`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareResult {
    /// `=`
    Equal,
    /// `>`
    Greater,
    /// `<`
    Less,
    /// `!=`
    NotEqual,
}

/// etcd `Compare`: holds when it holds for every key in the range (a missing key
/// compares as zero values, except on `Value`, which then fails).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compare {
    /// The comparison.
    pub result: CompareResult,
    /// The field and operand.
    pub target: CompareTarget,
    /// First key (or the only key).
    pub key: Vec<u8>,
    /// End of the interval, as in [`RangeRequest`].
    pub range_end: Vec<u8>,
}

/// One operation of a txn branch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestOp {
    /// A read.
    Range(RangeRequest),
    /// A put.
    Put(PutRequest),
    /// A delete.
    DeleteRange(DeleteRangeRequest),
    /// A nested txn.
    Txn(TxnRequest),
}

/// Result of one [`RequestOp`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResponseOp {
    /// Result of a read.
    Range(RangeResponse),
    /// Result of a put.
    Put(PutResponse),
    /// Result of a delete.
    DeleteRange(DeleteRangeResponse),
    /// Result of a nested txn.
    Txn(TxnResponse),
}

/// etcd `TxnRequest`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TxnRequest {
    /// All must hold for `success` to run, else `failure` runs.
    pub compare: Vec<Compare>,
    /// Ops run when the compares hold.
    pub success: Vec<RequestOp>,
    /// Ops run otherwise.
    pub failure: Vec<RequestOp>,
}

/// etcd `TxnResponse`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TxnResponse {
    /// Store revision after the txn.
    pub revision: i64,
    /// Whether the compares held.
    pub succeeded: bool,
    /// One response per op of the branch that ran.
    pub responses: Vec<ResponseOp>,
}

/// etcd `CompactionResponse`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactResponse {
    /// Store revision when the compaction was applied.
    pub revision: i64,
}

/// Result of [`crate::Store::hash_kv`] (etcd `HashKVResponse`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashKv {
    /// CRC-32C of the keyspace up to the revision asked for.
    pub hash: u32,
    /// Current revision of the store.
    pub revision: i64,
    /// The store's compaction point.
    pub compact_revision: i64,
}

/// Position of a Raft entry, given with every applied write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApplyIndex {
    /// Raft log index of the entry; must be at least 1.
    pub index: u64,
    /// Raft term of the entry.
    pub term: u64,
}

impl ApplyIndex {
    /// Entry `index` of `term`.
    pub const fn new(index: u64, term: u64) -> Self {
        Self { index, term }
    }
}
