//! Speed of the linearizability checker on histories like the simulator's:
//! concurrent clients on a few registers, some outcomes unknown.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use keel_sim::linearizability::{
    CheckOptions, History, Operation, Outcome, Register, RegisterInput, RegisterOutput, check,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// A history of `ops` operations by `clients` clients on `keys` registers,
/// generated from a sequential execution: each operation takes effect at a
/// point inside its interval, so the history is linearizable. One in twenty
/// writes has an unknown outcome.
fn history(
    ops: usize,
    clients: u64,
    keys: u64,
) -> History<RegisterInput<u64, u64>, RegisterOutput<u64>> {
    let mut rng = SmallRng::seed_from_u64(42);
    let model = Register::<u64, u64>::new();
    let mut values = vec![None; keys as usize];
    let mut h = History::new();
    for i in 0..ops as u64 {
        let key = rng.random_range(0..keys);
        let input = match rng.random_range(0..3) {
            0 => RegisterInput::Read(key),
            1 => RegisterInput::Write(key, i),
            _ => RegisterInput::CompareAndSet {
                key,
                expected: values[key as usize],
                new: i,
            },
        };
        let state = &mut values[key as usize];
        let (next, output) = keel_sim::linearizability::Model::step(&model, state, &input);
        *state = next;
        // Overlap about `clients` operations at a time.
        let point = 1_000 + i * 10;
        let invoked_at = point - rng.random_range(0..10 * clients);
        let unknown = !matches!(input, RegisterInput::Read(_)) && rng.random_ratio(1, 20);
        let outcome = if unknown {
            Outcome::Unknown
        } else {
            Outcome::Returned {
                at: point + rng.random_range(0..10 * clients),
                output,
            }
        };
        h.push(Operation {
            client: i % clients,
            input,
            invoked_at,
            outcome,
        });
    }
    h
}

fn bench(c: &mut Criterion) {
    let model = Register::<u64, u64>::new();
    let mut group = c.benchmark_group("linearizability");
    group.sample_size(10);
    for (ops, clients) in [(800, 4), (1_600, 4), (1_600, 8)] {
        let h = history(ops, clients, 3);
        assert!(check(&model, &h, CheckOptions::default()).is_linearizable());
        group.bench_function(format!("{ops}_ops_{clients}_clients_3_keys"), |b| {
            b.iter(|| check(&model, black_box(&h), CheckOptions::default()))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
