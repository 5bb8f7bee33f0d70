//! Cost of reading a full etcd command line and environment into a server config.

use criterion::{Criterion, criterion_group, criterion_main};
use keel::flags::{self, Command};

fn member_args() -> Vec<String> {
    [
        "--name=infra1",
        "--data-dir",
        "/var/lib/keel/infra1",
        "--listen-client-urls=http://127.0.0.1:2379",
        "--advertise-client-urls=http://127.0.0.1:2379",
        "--listen-peer-urls=http://127.0.0.1:2380",
        "--initial-advertise-peer-urls=http://127.0.0.1:2380",
        "--initial-cluster=infra1=http://127.0.0.1:2380,infra2=http://127.0.0.1:22380,infra3=http://127.0.0.1:32380",
        "--initial-cluster-token",
        "etcd-cluster-1",
        "--initial-cluster-state=new",
        "-heartbeat-interval=100",
        "-election-timeout",
        "1000",
        "--logger=zap",
    ]
    .iter()
    .map(|arg| (*arg).to_owned())
    .collect()
}

fn parse(c: &mut Criterion) {
    let args = member_args();
    let env = vec![
        ("HOME".to_owned(), "/root".to_owned()),
        ("ETCD_SNAPSHOT_COUNT".to_owned(), "10000".to_owned()),
    ];
    c.bench_function("parse_three_member_command_line", |b| {
        b.iter(|| match flags::parse(args.iter().cloned(), &env) {
            Ok(Command::Run(options)) => options,
            other => panic!("the bench's command line must parse: {other:?}"),
        })
    });
}

criterion_group!(benches, parse);
criterion_main!(benches);
