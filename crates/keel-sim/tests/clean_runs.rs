//! Fault-heavy runs of a correct cluster pass every check, and the faults
//! they claim to inject really happen.

use keel_sim::sim::{Faults, SimConfig, Stats, run_catching_panics};

const SEEDS_PER_TOPOLOGY: u64 = 50;

fn run_seeds(nodes: u64) -> Vec<Stats> {
    (0..SEEDS_PER_TOPOLOGY)
        .map(|seed| {
            let report = run_catching_panics(&SimConfig::new(seed, nodes));
            if let Some(failure) = report.failure {
                panic!("seed {seed} on {nodes} nodes failed: {failure}");
            }
            report.stats
        })
        .collect()
}

fn assert_faults_were_exercised(stats: &[Stats]) {
    let total = |f: fn(&Stats) -> u64| stats.iter().map(f).sum::<u64>();
    assert!(total(|s| s.crashes) > 0, "no crash happened");
    assert!(
        total(|s| s.snapshots_installed) > 0,
        "no snapshot was installed"
    );
    assert!(total(|s| s.compactions) > 0, "no log was compacted");
    assert!(
        total(|s| s.conf_changes_applied) > 0,
        "no membership change was applied"
    );
    assert!(
        total(|s| s.joint_configs_entered) > 0,
        "no joint configuration was entered"
    );
    assert!(
        total(|s| s.unknown_operations) > 0,
        "no client operation timed out"
    );
    assert!(
        total(|s| s.messages_dropped) > 0,
        "the network dropped nothing"
    );
    assert!(
        total(|s| s.acknowledged_changes as u64) > 10 * SEEDS_PER_TOPOLOGY,
        "clients made almost no progress"
    );
    assert!(
        stats.iter().all(|s| s.terms_with_leader >= 1),
        "some run never elected a leader"
    );
}

#[test]
fn three_node_clusters_survive_every_fault() {
    assert_faults_were_exercised(&run_seeds(3));
}

#[test]
fn five_node_clusters_survive_every_fault() {
    assert_faults_were_exercised(&run_seeds(5));
}

#[test]
fn a_seed_replays_exactly() {
    let config = SimConfig::new(7, 3);
    let first = run_catching_panics(&config);
    let second = run_catching_panics(&config);
    assert!(first.failure.is_none(), "{:?}", first.failure);
    assert_eq!(first.stats, second.stats);
    let other = run_catching_panics(&SimConfig::new(8, 3));
    assert_ne!(first.stats, other.stats, "different seeds ran identically");
}

#[test]
fn a_healthy_cluster_answers_every_operation() {
    let mut config = SimConfig::new(1, 3);
    config.faults = Faults::none();
    let report = run_catching_panics(&config);
    assert!(report.failure.is_none(), "{:?}", report.failure);
    let s = report.stats;
    assert_eq!(s.unknown_operations, 0, "{s:?}");
    assert_eq!(s.crashes, 0);
    // One election, or two after a split vote; never a leader change after.
    assert!(
        s.terms_with_leader <= 2,
        "a healthy cluster keeps its leader: {s:?}"
    );
    assert!(s.acknowledged_changes > 100, "{s:?}");
}
