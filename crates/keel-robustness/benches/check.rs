//! Cost of checking a recorded history: conversion to per-key operations plus
//! the linearizability, final-read and serializable-read checks, on a
//! synthetic history of 4 overlapping clients over 8 keys.

use criterion::{Criterion, criterion_group, criterion_main};
use keel_robustness::check::{FINAL_READER, check_history};
use keel_robustness::history::{Outcome, Record, Request, Response};
use keel_robustness::traffic::key;

fn synthetic(ops: u64) -> Vec<Record> {
    let keys = 8u64;
    let mut records = Vec::new();
    let mut last: Vec<Option<String>> = vec![None; keys as usize];
    for i in 0..ops {
        let k = (i * 7 % keys) as usize;
        // Each operation overlaps its neighbours: invoked at 10 i, returned at 10 i + 25.
        let (request, response) = if i % 3 == 0 {
            let value = format!("v{i}");
            last[k] = Some(value.clone());
            (Request::Put { key: key(k), value }, Response::Put)
        } else {
            (
                Request::Get {
                    key: key(k),
                    serializable: i % 5 == 0,
                },
                Response::Value(last[k].clone()),
            )
        };
        records.push(Record {
            client: i % 4,
            member: 0,
            request,
            invoked_ns: 10 * i,
            outcome: Outcome::Ok {
                returned_ns: 10 * i + 5,
                revision: i64::try_from(i).expect("small"),
                response,
            },
        });
    }
    for (k, value) in last.iter().enumerate() {
        records.push(Record {
            client: FINAL_READER,
            member: 0,
            request: Request::Get {
                key: key(k),
                serializable: false,
            },
            invoked_ns: 10 * ops + 100,
            outcome: Outcome::Ok {
                returned_ns: 10 * ops + 200,
                revision: 0,
                response: Response::Value(value.clone()),
            },
        });
    }
    records
}

fn bench(c: &mut Criterion) {
    let records = synthetic(5_000);
    let keys: Vec<String> = (0..8).map(key).collect();
    c.bench_function("check_history 5000 ops", |b| {
        b.iter(|| {
            let report = check_history(&records, &keys);
            assert!(
                !report.failed(),
                "the synthetic history is correct: {report:?}"
            );
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = bench
}
criterion_main!(benches);
