//! Cost of one simulated seed with every fault on (3 s of virtual faults,
//! then healing and the final checks), for 3 and 5 nodes.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use keel_sim::sim::{SimConfig, run};

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("simulation");
    group.sample_size(10);
    for nodes in [3, 5] {
        let mut seed = 0;
        group.bench_function(format!("one_seed_{nodes}_nodes"), |b| {
            b.iter(|| {
                seed += 1;
                let report = run(black_box(&SimConfig::new(seed, nodes)));
                assert!(
                    report.failure.is_none(),
                    "seed {seed}: {:?}",
                    report.failure
                );
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
