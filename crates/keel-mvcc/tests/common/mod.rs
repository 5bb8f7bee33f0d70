//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use keel_mvcc::{
    ApplyIndex, BatchConfig, Compare, CompareResult, CompareTarget, DeleteRangeRequest,
    DeleteRangeResponse, KeyValue, MvccError, PutRequest, PutResponse, RangeRequest, RangeResponse,
    Store, TxnRequest, TxnResponse,
};

/// A store in a temp dir that numbers the entries it applies like a Raft log.
pub struct Harness {
    pub dir: tempfile::TempDir,
    pub store: Store,
    pub next_index: u64,
}

impl Harness {
    pub fn new() -> Self {
        Self::with_config(BatchConfig::default())
    }

    pub fn with_config(config: BatchConfig) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("db"), config).expect("open store");
        Self {
            dir,
            store,
            next_index: 1,
        }
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("db")
    }

    pub fn at(&mut self) -> ApplyIndex {
        let at = ApplyIndex::new(self.next_index, 1);
        self.next_index += 1;
        at
    }

    pub fn put(&mut self, key: &str, value: &str) -> PutResponse {
        let at = self.at();
        self.store
            .put(at, &put_req(key, value))
            .expect("put succeeds")
    }

    pub fn put_req(&mut self, req: &PutRequest) -> Result<PutResponse, MvccError> {
        let at = self.at();
        self.store.put(at, req)
    }

    pub fn del(&mut self, key: &str, end: &str) -> DeleteRangeResponse {
        let at = self.at();
        self.store
            .delete_range(
                at,
                &DeleteRangeRequest {
                    key: key.into(),
                    range_end: end.into(),
                    prev_kv: true,
                },
            )
            .expect("delete succeeds")
    }

    pub fn txn(&mut self, req: &TxnRequest) -> Result<TxnResponse, MvccError> {
        let at = self.at();
        self.store.txn(at, req)
    }

    pub fn compact(&mut self, rev: i64) -> Result<(), MvccError> {
        let at = self.at();
        self.store.compact(at, rev).map(|_| ())
    }

    pub fn get(&self, key: &str) -> Option<KeyValue> {
        self.store
            .range(&range_req(key, ""))
            .expect("range succeeds")
            .kvs
            .pop()
    }

    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse, MvccError> {
        self.store.range(req)
    }

    /// Drops the store without committing (a crash) and reopens it.
    pub fn crash_and_reopen(&mut self, config: BatchConfig) {
        let path = self.db_path();
        let placeholder_dir = tempfile::tempdir().expect("temp dir");
        let placeholder =
            Store::open(&placeholder_dir.path().join("db"), config).expect("open placeholder");
        drop(std::mem::replace(&mut self.store, placeholder));
        self.store = Store::open(&path, config).expect("reopen store");
    }
}

pub fn put_req(key: &str, value: &str) -> PutRequest {
    PutRequest {
        key: key.into(),
        value: value.into(),
        ..PutRequest::default()
    }
}

pub fn range_req(key: &str, end: &str) -> RangeRequest {
    RangeRequest {
        key: key.into(),
        range_end: end.into(),
        ..RangeRequest::default()
    }
}

pub fn cmp(key: &str, result: CompareResult, target: CompareTarget) -> Compare {
    Compare {
        result,
        target,
        key: key.into(),
        range_end: Vec::new(),
    }
}

pub fn keys(resp: &RangeResponse) -> Vec<String> {
    resp.kvs
        .iter()
        .map(|kv| String::from_utf8(kv.key.clone()).expect("utf8 key"))
        .collect()
}
