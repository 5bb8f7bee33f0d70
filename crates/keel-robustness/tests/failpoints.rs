//! Server failpoints from the suite's side: the `keel` binary the tests run
//! has them compiled in (the workspace test build unifies keel's
//! `failpoints` feature through this crate's dev-dependency), they are set
//! at start and over HTTP, and one bounded failpoint scenario: a member
//! crashing between applying entries and committing its backend recovers
//! without losing an acknowledged write. The snapshot failpoints, which no
//! scenario reaches, are checked on a follower that is sent a snapshot.

mod common;

use std::time::Duration;

use keel_proto::etcdserverpb::kv_client::KvClient;
use keel_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use keel_proto::etcdserverpb::{HashKvRequest, PutRequest};
use keel_robustness::cluster::Cluster;
use keel_robustness::run::RunConfig;
use keel_robustness::scenario::Scenario;

const NOT_BUILT: &str = "the keel binary the tests run has no failpoints: build it with `cargo build --profile ci -p keel --features failpoints` (a `cargo test --workspace` build does that; a later `cargo build -p keel` alone replaces it with a failpoint-free one)";

#[test]
fn the_test_keel_binary_serves_failpoints_set_at_start_and_over_http() {
    let _one = common::one_cluster_at_a_time();
    let dir = tempfile::tempdir().expect("a temp dir");
    let env = [(
        "FAILPOINTS".to_owned(),
        "raft_after_save=1*sleep(1)".to_owned(),
    )];
    for sub in ["plain", "env"] {
        std::fs::create_dir(dir.path().join(sub)).expect("a member directory");
    }
    common::runtime().block_on(async {
        let cluster = Cluster::start(&common::keel_bin(), 1, &dir.path().join("plain"), 1, &[])
            .await
            .expect("a one-member cluster");
        let listed = cluster
            .list_failpoints(0)
            .await
            .expect("GET /debug/failpoints")
            .unwrap_or_else(|| panic!("{NOT_BUILT}"));
        assert_eq!(listed, "", "a fresh member has no failpoint set");
        cluster
            .set_failpoint(0, "wal_before_sync", "sleep(1)")
            .await
            .expect("PUT a known failpoint");
        let listed = cluster
            .list_failpoints(0)
            .await
            .expect("list")
            .expect("served");
        assert!(listed.contains("wal_before_sync=sleep(1)"), "{listed:?}");
        cluster
            .clear_failpoint(0, "wal_before_sync")
            .await
            .expect("DELETE");
        let listed = cluster
            .list_failpoints(0)
            .await
            .expect("list")
            .expect("served");
        assert!(!listed.contains("wal_before_sync"), "{listed:?}");
        let unknown = cluster.set_failpoint(0, "no_such_point", "panic").await;
        assert!(unknown.is_err(), "an unknown failpoint was accepted");
        let bad = cluster.set_failpoint(0, "wal_before_sync", "sleep(").await;
        assert!(bad.is_err(), "malformed actions were accepted");
        drop(cluster);

        let cluster = Cluster::start_with_env(
            &common::keel_bin(),
            1,
            &dir.path().join("env"),
            2,
            &[],
            &env,
        )
        .await
        .expect("a one-member cluster started with FAILPOINTS");
        let listed = cluster
            .list_failpoints(0)
            .await
            .expect("list")
            .expect("served");
        assert!(
            listed.contains("raft_after_save=1*sleep(1)"),
            "FAILPOINTS was not applied at start: {listed:?}"
        );
    });
}

#[test]
fn a_member_crashed_before_its_backend_commit_recovers_without_losing_writes() {
    let _one = common::one_cluster_at_a_time();
    let config = RunConfig::new(
        Scenario::FailpointBackendBeforeCommit,
        Duration::from_secs(12),
        31,
        common::keel_bin(),
    );
    let report = common::run_to_verdict(config);
    common::assert_passed(&report);
    assert!(
        report
            .events
            .iter()
            .any(|e| e.contains("crashed at failpoint")),
        "no member crashed at the failpoint: {:?}",
        report.events
    );
    assert!(
        report.ops > 100,
        "the traffic barely ran: {} operations",
        report.ops
    );
}

/// Restarts member 2, far behind, with `point` armed: the leader sends it a
/// snapshot, it must crash at the point, and after a plain restart it must
/// catch up to the same keyspace as the others.
async fn crash_while_installing_a_snapshot(cluster: &mut Cluster, point: &str, round: usize) {
    cluster.kill(2);
    let leader = cluster
        .wait_for_leader(Duration::from_secs(30))
        .await
        .expect("a leader among m0 and m1");
    let mut kv = KvClient::connect(cluster.member(leader).client_url())
        .await
        .expect("connect to the leader");
    // More than twice --snapshot-count: the leader compacts past m2's log.
    for k in 0..150 {
        let put = PutRequest {
            key: format!("k{k}").into_bytes(),
            value: format!("{point}-{round}-{k}").into_bytes(),
            ..PutRequest::default()
        };
        // A put caught by the election after the kill may time out; retry it.
        let mut tries = 0;
        while let Err(status) = kv.put(put.clone()).await {
            tries += 1;
            assert!(tries < 3, "a put with two of three members up: {status}");
        }
    }
    cluster.set_env(&[("FAILPOINTS".to_owned(), format!("{point}=panic"))]);
    cluster.spawn(2).expect("restart m2 with the failpoint");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !cluster.exited(2) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "m2 did not crash at {point} while being sent a snapshot (log: {})",
            cluster.member(2).log_path.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.set_env(&[]);
    cluster.heal().expect("restart m2 without failpoints");
    cluster
        .wait_healthy(Duration::from_secs(30))
        .await
        .expect("m2 back after the crash");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut revisions = Vec::new();
        for i in 0..3 {
            revisions.push(cluster.status(i).await.map(|(_, _, rev)| rev));
        }
        if let Some(Some(rev)) = revisions.first().copied()
            && revisions.iter().all(|r| *r == Some(rev))
        {
            let mut hashes = Vec::new();
            for i in 0..3 {
                let mut m = MaintenanceClient::connect(cluster.member(i).client_url())
                    .await
                    .expect("connect");
                let hash = m
                    .hash_kv(HashKvRequest { revision: rev })
                    .await
                    .expect("HashKV")
                    .into_inner()
                    .hash;
                hashes.push(hash);
            }
            assert!(
                hashes.windows(2).all(|w| w[0] == w[1]),
                "after crashing at {point}, HashKV at {rev} differs: {hashes:?}"
            );
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "members did not reach one revision after crashing at {point}: {revisions:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn a_follower_crashed_while_installing_a_snapshot_catches_up() {
    let _one = common::one_cluster_at_a_time();
    let dir = tempfile::tempdir().expect("a temp dir");
    let args = ["--snapshot-count=50".to_owned()];
    common::runtime().block_on(async {
        let mut cluster = Cluster::start(&common::keel_bin(), 3, dir.path(), 3, &args)
            .await
            .expect("a three-member cluster");
        assert!(
            cluster
                .has_failpoints(0)
                .await
                .expect("GET /debug/failpoints"),
            "{NOT_BUILT}"
        );
        for (round, point) in ["raft_before_apply_snapshot", "raft_after_apply_snapshot"]
            .into_iter()
            .enumerate()
        {
            crash_while_installing_a_snapshot(&mut cluster, point, round).await;
        }
    });
}
