//! Lessor costs per operation: renew (the keep-alive hot path), grant on the
//! primary (with its revoke, so the table stays at 10,000), and expiring 10,000 leases through
//! `find_expired` and revokes, 500 ms apart as the server would poll.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use keel_lease::{LeaseId, Lessor, LessorConfig};

const LEASES: i64 = 10_000;

fn primary_with_leases(count: i64) -> Lessor {
    let mut lessor = Lessor::new(LessorConfig::default());
    lessor.promote(0, 1000);
    for id in 1..=count {
        lessor.apply_grant(id, 60 + id % 50, 0).expect("fresh ids");
        lessor
            .attach(
                LeaseId::new(id).expect("nonzero"),
                format!("key/{id}").as_bytes(),
            )
            .expect("granted");
    }
    lessor
}

fn renew(c: &mut Criterion) {
    let mut lessor = primary_with_leases(LEASES);
    let mut now_ms = 0u64;
    let mut id = 0i64;
    c.bench_function("renew (10k leases)", |b| {
        b.iter(|| {
            now_ms += 1;
            id = id % LEASES + 1;
            let lease = LeaseId::new(id).expect("nonzero");
            black_box(lessor.renew(lease, now_ms).expect("alive"));
        });
    });
}

fn grant_revoke(c: &mut Criterion) {
    let mut lessor = primary_with_leases(LEASES);
    let id = LEASES + 1;
    c.bench_function("apply_grant + apply_revoke on primary (10k leases)", |b| {
        b.iter(|| {
            black_box(lessor.apply_grant(id, 60, 0).expect("fresh id"));
            black_box(lessor.apply_revoke(id).expect("just granted"));
        });
    });
}

fn expire_all(c: &mut Criterion) {
    c.bench_function("find_expired + apply_revoke, 10k leases", |b| {
        b.iter_batched(
            || primary_with_leases(LEASES),
            |mut lessor| {
                let mut now_ms = 100_000;
                while !lessor.is_empty() {
                    for id in lessor.find_expired(now_ms, usize::MAX) {
                        black_box(
                            lessor
                                .apply_revoke(id.get())
                                .expect("reported leases exist"),
                        );
                    }
                    now_ms += 500;
                }
            },
            BatchSize::LargeInput,
        );
    });
}

criterion_group!(benches, renew, grant_revoke, expire_all);
criterion_main!(benches);
