//! Encode and decode cost of the messages on the hot paths: a small `Put`
//! request and a `Range` response carrying 100 keys.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use keel_proto::etcdserverpb::{PutRequest, RangeResponse, ResponseHeader};
use keel_proto::mvccpb::KeyValue;
use prost::Message as _;

fn put_request() -> PutRequest {
    PutRequest {
        key: b"/registry/pods/default/web-0".to_vec(),
        value: vec![0x5a; 256],
        lease: 0x1234_5678,
        ..PutRequest::default()
    }
}

fn range_response(keys: i64) -> RangeResponse {
    RangeResponse {
        header: Some(ResponseHeader {
            cluster_id: 1,
            member_id: 2,
            revision: 1_000,
            raft_term: 3,
        }),
        kvs: (0..keys)
            .map(|i| KeyValue {
                key: format!("/registry/pods/default/web-{i}")
                    .into_bytes()
                    .into(),
                create_revision: i + 1,
                mod_revision: i + 500,
                version: 3,
                value: vec![0x5a; 256].into(),
                lease: 0,
            })
            .collect(),
        more: false,
        count: keys,
    }
}

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec");
    group
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));

    let put = put_request();
    let put_bytes = put.encode_to_vec();
    group.throughput(Throughput::Bytes(put_bytes.len() as u64));
    group.bench_function("put_request_encode", |b| {
        b.iter(|| black_box(&put).encode_to_vec())
    });
    group.bench_function("put_request_decode", |b| {
        b.iter(|| PutRequest::decode(black_box(put_bytes.as_slice())).expect("encoded above"))
    });

    let range = range_response(100);
    let range_bytes = range.encode_to_vec();
    group.throughput(Throughput::Bytes(range_bytes.len() as u64));
    group.bench_function("range_response_100_encode", |b| {
        b.iter(|| black_box(&range).encode_to_vec())
    });
    group.bench_function("range_response_100_decode", |b| {
        b.iter(|| RangeResponse::decode(black_box(range_bytes.as_slice())).expect("encoded above"))
    });
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
