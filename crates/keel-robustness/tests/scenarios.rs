//! The bounded CI subset: short runs of a few scenarios against real `keel`
//! clusters; a test fails when any check fails, printing the line that
//! repeats the run and the kept directory.

mod common;

use std::time::Duration;

use keel_robustness::run::RunConfig;
use keel_robustness::scenario::Scenario;

fn run_scenario(scenario: Scenario, members: usize, seed: u64) {
    let _one = common::one_cluster_at_a_time();
    let mut config = RunConfig::new(scenario, Duration::from_secs(10), seed, common::keel_bin());
    config.members = members;
    let report = common::run_to_verdict(config);
    common::assert_passed(&report);
    assert!(
        report.ops > 100,
        "the traffic barely ran: {} operations",
        report.ops
    );
    assert!(!report.events.is_empty(), "no fault was injected");
}

#[test]
fn kill_leader_three_members() {
    run_scenario(Scenario::KillLeader, 3, 11);
}

#[test]
fn majority_minority_partition_five_members() {
    run_scenario(Scenario::PartitionMajority, 5, 12);
}

#[test]
fn pause_leader_three_members() {
    run_scenario(Scenario::PauseLeader, 3, 13);
}

#[test]
fn compaction_during_traffic_three_members() {
    run_scenario(Scenario::Compaction, 3, 14);
}
