//! Throughput of the store's hot paths: sets into a populated tree, gets, and a
//! recursive listing.

use criterion::{Criterion, criterion_group, criterion_main};
use keel_v2store::{Store, TtlOptions};

fn populated(n: u64) -> Store {
    let mut s = Store::new(&["/0", "/1"]);
    for i in 0..n {
        s.set(
            &format!("/1/dir{}/key{i}", i % 16),
            false,
            "value",
            TtlOptions::PERMANENT,
            0,
        )
        .expect("set into a fresh tree succeeds");
    }
    s
}

fn bench(c: &mut Criterion) {
    let mut s = populated(10_000);
    let mut i = 0u64;
    c.bench_function("set_existing_key_10k_tree", |b| {
        b.iter(|| {
            i += 1;
            s.set(
                &format!("/1/dir{}/key{}", i % 16, i % 10_000),
                false,
                "v2",
                TtlOptions::PERMANENT,
                0,
            )
            .expect("set succeeds")
        })
    });
    c.bench_function("get_key_10k_tree", |b| {
        b.iter(|| {
            s.get("/1/dir3/key1235", false, false, 0)
                .expect("key exists")
        })
    });
    c.bench_function("get_recursive_dir_625_keys", |b| {
        b.iter(|| s.get("/1/dir5", true, true, 0).expect("dir exists"))
    });
    let snapshot = s.save();
    c.bench_function("save_10k_keys", |b| b.iter(|| s.save()));
    c.bench_function("recover_10k_keys", |b| {
        let mut r = Store::new(&["/0", "/1"]);
        b.iter(|| r.recover(&snapshot).expect("own snapshot recovers"))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
