//! Server failpoints from the suite's side: the `keel` binary the tests run
//! has them compiled in (the workspace test build unifies keel's
//! `failpoints` feature through this crate's dev-dependency), they are set
//! at start and over HTTP, and one bounded failpoint scenario: a member
//! crashing between applying entries and committing its backend recovers
//! without losing an acknowledged write.

mod common;

use std::time::Duration;

use keel_robustness::check::Verdict;
use keel_robustness::cluster::Cluster;
use keel_robustness::run::{self, RunConfig};
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
    let report = common::runtime()
        .block_on(run::run(config))
        .unwrap_or_else(|e| panic!("the run did not reach a verdict: {e}"));
    let failures: Vec<String> = report
        .history
        .verdicts()
        .into_iter()
        .chain([("convergence", &report.convergence)])
        .filter_map(|(name, v)| match v {
            Verdict::Fail(why) => Some(format!("{name}: {why}")),
            Verdict::Pass | Verdict::Inconclusive(_) => None,
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{}\nfaults: {:?}\nrepeat with: {}\nkept: {:?}",
        failures.join("\n"),
        report.events,
        report.config.repro_line(),
        report.kept_dir
    );
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
