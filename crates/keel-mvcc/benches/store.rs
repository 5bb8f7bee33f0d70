//! Throughput of put, range and txn on a store with etcd's default batching.
//! `cargo bench -p keel-mvcc --bench store`; in test mode each bench runs once.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use keel_mvcc::{
    ApplyIndex, BatchConfig, Compare, CompareResult, CompareTarget, PutRequest, RangeRequest,
    RequestOp, Store, TxnRequest,
};

const PRELOADED_KEYS: u64 = 10_000;
const VALUE_BYTES: usize = 256;

struct Bench {
    _dir: tempfile::TempDir,
    store: Store,
    index: u64,
}

impl Bench {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("db"), BatchConfig::default()).expect("open");
        let mut b = Self {
            _dir: dir,
            store,
            index: 0,
        };
        for i in 0..PRELOADED_KEYS {
            b.put(i);
        }
        b.store.force_commit().expect("commit");
        b
    }

    fn at(&mut self) -> ApplyIndex {
        self.index += 1;
        ApplyIndex::new(self.index, 1)
    }

    fn put(&mut self, i: u64) {
        let at = self.at();
        self.store
            .put(at, &put_req(i % PRELOADED_KEYS))
            .expect("put");
    }
}

fn key(i: u64) -> Vec<u8> {
    format!("key-{i:08}").into_bytes()
}

fn put_req(i: u64) -> PutRequest {
    PutRequest {
        key: key(i),
        value: vec![b'v'; VALUE_BYTES],
        ..PutRequest::default()
    }
}

fn bench_put(c: &mut Criterion) {
    let mut b = Bench::new();
    let mut g = c.benchmark_group("put");
    g.throughput(Throughput::Elements(1));
    let mut i = 0;
    g.bench_function("put_256B_batched", |bench| {
        bench.iter(|| {
            i += 1;
            b.put(i);
        })
    });
    g.finish();
}

fn bench_range(c: &mut Criterion) {
    let b = Bench::new();
    let mut g = c.benchmark_group("range");
    g.throughput(Throughput::Elements(1));
    let mut i = 0;
    g.bench_function("get_one_key", |bench| {
        bench.iter(|| {
            i = (i + 7919) % PRELOADED_KEYS;
            let req = RangeRequest {
                key: key(i),
                ..RangeRequest::default()
            };
            black_box(b.store.range(&req).expect("range"));
        })
    });
    g.bench_function("range_100_keys", |bench| {
        bench.iter(|| {
            i = (i + 7919) % (PRELOADED_KEYS - 100);
            let req = RangeRequest {
                key: key(i),
                range_end: key(i + 100),
                ..RangeRequest::default()
            };
            black_box(b.store.range(&req).expect("range"));
        })
    });
    g.finish();
}

fn bench_txn(c: &mut Criterion) {
    let mut b = Bench::new();
    let mut g = c.benchmark_group("txn");
    g.throughput(Throughput::Elements(1));
    let mut i = 0;
    g.bench_function("compare_then_put", |bench| {
        bench.iter(|| {
            i = (i + 1) % PRELOADED_KEYS;
            let req = TxnRequest {
                compare: vec![Compare {
                    result: CompareResult::Greater,
                    target: CompareTarget::Version(0),
                    key: key(i),
                    range_end: Vec::new(),
                }],
                success: vec![RequestOp::Put(put_req(i))],
                failure: vec![],
            };
            let at = b.at();
            black_box(b.store.txn(at, &req).expect("txn"));
        })
    });
    g.finish();
}

fn bench_watch(c: &mut Criterion) {
    let mut b = Bench::new();
    let mut receivers = Vec::new();
    for i in 0..1_000 {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        b.store.watch(
            keel_mvcc::WatchRequest {
                key: format!("watched-{i}").into_bytes(),
                ..keel_mvcc::WatchRequest::default()
            },
            tx,
        );
        receivers.push(rx);
    }
    let mut g = c.benchmark_group("watch");
    g.throughput(Throughput::Elements(1));
    let mut i = 0;
    g.bench_function("put_with_1000_key_watchers_elsewhere", |bench| {
        bench.iter(|| {
            i += 1;
            b.put(i);
        })
    });
    g.finish();
    drop(receivers);
}

criterion_group!(benches, bench_put, bench_range, bench_txn, bench_watch);
criterion_main!(benches);
