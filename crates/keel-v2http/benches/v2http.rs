//! Round trips through the v2 router over a real 127.0.0.1 TCP connection, served with
//! the store test double: a PUT (set) and a GET of one key.

#[path = "../tests/common/mod.rs"]
mod common;

use criterion::{Criterion, criterion_group, criterion_main};

fn round_trips(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (_backend, base) = rt.block_on(common::start());
    let mut group = c.benchmark_group("v2http");
    group.bench_function("put_set", |b| {
        b.iter(|| {
            rt.block_on(async {
                let a = common::request(&base, "PUT", "/v2/keys/bench", "value=v").await;
                assert!(a.status == 200 || a.status == 201, "{a:?}");
            })
        })
    });
    group.bench_function("get", |b| {
        b.iter(|| {
            rt.block_on(async {
                let a = common::request(&base, "GET", "/v2/keys/bench", "").await;
                assert_eq!(a.status, 200, "{a:?}");
            })
        })
    });
    group.finish();
}

criterion_group!(benches, round_trips);
criterion_main!(benches);
