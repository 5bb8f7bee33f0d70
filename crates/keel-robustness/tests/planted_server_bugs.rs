//! The suite catches real server bugs: a `keel` built with failpoints can be
//! started with a bug planted on purpose (`KEEL_PLANTED_BUG`, see
//! keel-server's `failpoints` module). Each test runs one scenario twice on
//! the same seed, with the bug (the run's verdict must fail) and without it
//! (the run must pass), so the failure is the bug's and not the scenario's.

mod common;

use std::time::Duration;

use keel_robustness::run::{self, RunConfig, RunReport};
use keel_robustness::scenario::Scenario;

/// Time under faults: two partition cycles.
const DURATION: Duration = Duration::from_secs(8);

fn run_scenario(scenario: Scenario, seed: u64, bug: Option<&str>) -> RunReport {
    let _one = common::one_cluster_at_a_time();
    let mut config = RunConfig::new(scenario, DURATION, seed, common::keel_bin());
    if let Some(bug) = bug {
        config.keel_env = vec![("KEEL_PLANTED_BUG".to_owned(), bug.to_owned())];
    }
    common::runtime()
        .block_on(run::run(config))
        .unwrap_or_else(|e| {
            panic!(
                "the run did not reach a verdict (does the keel binary have failpoints? cargo build --profile ci -p keel --features failpoints): {e}"
            )
        })
}

/// Runs `scenario` with `bug` planted (must fail) and without (must pass).
fn caught_and_clean(scenario: Scenario, seed: u64, bug: &str) -> Vec<String> {
    let planted = run_scenario(scenario, seed, Some(bug));
    let caught = common::failures(&planted);
    if let Some(dir) = &planted.kept_dir {
        // Kept because it failed, as it must; the evidence is not needed here.
        std::fs::remove_dir_all(dir).expect("remove the kept run directory");
    }
    assert!(
        !caught.is_empty(),
        "planted bug {bug} went unnoticed: {:?}\nfaults: {:?}",
        planted.history,
        planted.events
    );
    let clean = run_scenario(scenario, seed, None);
    let failed = common::failures(&clean);
    assert!(
        failed.is_empty(),
        "without the bug the same run failed:\n{}\nfaults: {:?}\nrepeat with: {}\nkept: {:?}",
        failed.join("\n"),
        clean.events,
        clean.config.repro_line(),
        clean.kept_dir
    );
    caught
}

/// A follower serving linearizable reads from its own store, without
/// ReadIndex: the member cut off from the others keeps answering with values
/// the majority has overwritten.
#[test]
fn follower_local_reads_are_caught_by_linearizability() {
    let caught = caught_and_clean(Scenario::PartitionLeader, 41, "follower-local-reads");
    assert!(
        caught.iter().any(|f| f.starts_with("linearizability")),
        "{caught:?}"
    );
}

/// Puts acknowledged when appended to the local log, before a quorum has
/// them: a read right after the acknowledgement does not see the write yet,
/// and the leader cut off from the others acknowledges writes its successor
/// overwrites, so the final reads after healing miss them.
#[test]
fn acknowledging_before_commit_is_caught() {
    let caught = caught_and_clean(Scenario::PartitionLeader, 42, "ack-before-commit");
    assert!(
        caught.iter().any(|f| f.starts_with("linearizability")),
        "{caught:?}"
    );
}
