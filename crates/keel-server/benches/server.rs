//! End-to-end throughput of a Keel member over gRPC on 127.0.0.1: puts (each acked after
//! the WAL fsync and apply), one at a time and 64 at once (sharing fsyncs), on one
//! member and on three; linearizable (ReadIndex) and serializable ranges.
//!
//! `cargo bench -p keel-server --bench server`

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use keel_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use keel_proto::etcdserverpb::{PutRequest, RangeRequest, StatusRequest, kv_client::KvClient};
use keel_server::{InitialMember, Server, ServerConfig};
use tonic::transport::Channel;

const CONCURRENT: usize = 64;

fn free_addrs(n: usize) -> Vec<SocketAddr> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("addr"))
        .collect()
}

struct Bench {
    _dir: tempfile::TempDir,
    servers: Vec<Server>,
    kv: KvClient<Channel>,
}

async fn start(n: usize) -> Bench {
    let dir = tempfile::tempdir().expect("tempdir");
    let (peers, clients) = (free_addrs(n), free_addrs(n));
    let initial: Vec<InitialMember> = (0..n)
        .map(|i| InitialMember {
            name: format!("b{i}"),
            peer_url: format!("http://{}", peers[i]).parse().expect("url"),
        })
        .collect();
    let mut servers = Vec::new();
    for i in 0..n {
        let mut c = ServerConfig::single_member(&format!("b{i}"), dir.path().join(format!("b{i}")));
        c.listen_client_addrs = vec![clients[i]];
        c.listen_peer_addrs = vec![peers[i]];
        c.initial_advertise_peer_urls = vec![initial[i].peer_url.clone()];
        c.initial_cluster = initial.clone();
        c.heartbeat_interval_ms = 20;
        c.election_timeout_ms = 200;
        servers.push(Server::start(c).await.expect("start"));
    }
    let endpoint = format!("http://{}", clients[0]);
    let mut maintenance = MaintenanceClient::connect(endpoint.clone())
        .await
        .expect("connect");
    loop {
        let status = maintenance
            .status(StatusRequest {})
            .await
            .expect("status")
            .into_inner();
        if status.leader != 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let kv = KvClient::connect(endpoint).await.expect("connect");
    let mut b = Bench {
        _dir: dir,
        servers,
        kv,
    };
    // The first write after an election may wait for the leader's first commit.
    put(&mut b.kv, 0).await;
    b
}

async fn put(kv: &mut KvClient<Channel>, i: usize) {
    kv.put(PutRequest {
        key: format!("key{:06}", i % 1000).into_bytes(),
        value: vec![b'v'; 256],
        ..PutRequest::default()
    })
    .await
    .expect("put");
}

async fn put_concurrent(kv: &KvClient<Channel>, base: usize) {
    let mut tasks = Vec::with_capacity(CONCURRENT);
    for i in 0..CONCURRENT {
        let mut kv = kv.clone();
        tasks.push(tokio::spawn(async move { put(&mut kv, base + i).await }));
    }
    for t in tasks {
        t.await.expect("task");
    }
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("server");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500));

    for members in [1usize, 3] {
        let mut b = rt.block_on(start(members));
        let mut n = 0usize;
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("put_sequential/{members}_members"), |bench| {
            bench.iter(|| {
                n += 1;
                rt.block_on(put(&mut b.kv, n));
            })
        });
        group.throughput(Throughput::Elements(CONCURRENT as u64));
        group.bench_function(
            format!("put_{CONCURRENT}_concurrent/{members}_members"),
            |bench| {
                bench.iter(|| {
                    n += CONCURRENT;
                    rt.block_on(put_concurrent(&b.kv, n));
                })
            },
        );
        if members == 1 {
            group.throughput(Throughput::Elements(1));
            for serializable in [false, true] {
                let name = if serializable {
                    "range_serializable"
                } else {
                    "range_linearizable"
                };
                group.bench_function(name, |bench| {
                    bench.iter(|| {
                        rt.block_on(b.kv.range(RangeRequest {
                            key: b"key000001".to_vec(),
                            serializable,
                            ..RangeRequest::default()
                        }))
                        .expect("range")
                    })
                });
            }
        }
        for s in b.servers.drain(..) {
            rt.block_on(s.shutdown()).expect("shutdown");
        }
    }
    group.finish();
}

criterion_group!(server, benches);
criterion_main!(server);
