//! The checks have teeth: with a bug planted, some seed in a small range
//! fails, and fails for the reason the bug predicts.

use keel_raft::PlantedBug;
use keel_sim::checks::Failure;
use keel_sim::sim::{HarnessBug, SimConfig, run_catching_panics};

/// Seeds tried before concluding a bug goes unnoticed.
const SEED_BUDGET: u64 = 200;

/// A longer, denser fault schedule than the default: 20 virtual seconds
/// with a fault event every 25 ms on average. Figure 8 needs a precise chain
/// of elections, isolations and crashes, which a 3 s run rarely contains.
fn long_config(seed: u64) -> SimConfig {
    let mut c = SimConfig::new(seed, 3);
    c.fault_phase_ms = 20_000;
    c.faults.mean_fault_interval_ms = Some(25);
    c
}

/// A violated safety property, as opposed to a run that merely did not
/// settle in time or a search that ran out of budget.
fn is_safety_violation(failure: &Failure) -> bool {
    !matches!(
        failure,
        Failure::NoConvergence { .. } | Failure::CheckInconclusive { .. }
    )
}

/// Runs seeds until `wanted` matches a failure; panics if none does.
fn assert_some_seed_fails_with(
    config: impl Fn(u64) -> SimConfig,
    wanted: impl Fn(&Failure) -> bool,
    what: &str,
) {
    let found = (0..SEED_BUDGET).find_map(|seed| {
        run_catching_panics(&config(seed))
            .failure
            .filter(|f| wanted(f))
            .map(|f| (seed, f))
    });
    let Some((seed, failure)) = found else {
        panic!("no seed in 0..{SEED_BUDGET} showed {what}");
    };
    eprintln!("seed {seed}: {failure}");
}

#[test]
fn sending_persisted_messages_before_persisting_is_caught() {
    // A follower acknowledges entries, crashes before persisting them and
    // comes back without them; Raft notices the commit index it was told is
    // beyond its log, or a leader is elected without committed entries.
    assert_some_seed_fails_with(
        |seed| {
            let mut c = SimConfig::new(seed, 3);
            c.harness_bug = Some(HarnessBug::SendPersistedMessagesEarly);
            c
        },
        is_safety_violation,
        "a safety violation",
    );
}

#[test]
fn a_forgotten_vote_is_caught_as_two_leaders_in_one_term() {
    assert_some_seed_fails_with(
        |seed| {
            let mut c = long_config(seed);
            c.harness_bug = Some(HarnessBug::SendVotesEarly);
            c
        },
        |f| matches!(f, Failure::TwoLeaders { .. }),
        "two leaders in one term",
    );
}

#[test]
fn reads_that_skip_read_index_are_caught_as_not_linearizable() {
    assert_some_seed_fails_with(
        |seed| {
            let mut c = SimConfig::new(seed, 3);
            c.harness_bug = Some(HarnessBug::LocalReads);
            c
        },
        |f| matches!(f, Failure::NotLinearizable(_)),
        "a non-linearizable history",
    );
}

#[test]
fn acknowledging_writes_before_they_commit_is_caught_as_lost_writes() {
    assert_some_seed_fails_with(
        |seed| {
            let mut c = SimConfig::new(seed, 3);
            c.harness_bug = Some(HarnessBug::AckBeforeCommit);
            c
        },
        |f| matches!(f, Failure::LostWrite { .. }),
        "a lost acknowledged write",
    );
}

#[test]
fn committing_previous_term_entries_by_counting_replicas_is_caught() {
    // The Raft paper's Figure 8: an entry from an earlier term is declared
    // committed once a majority holds it, and a later leader that never had
    // it overwrites it.
    assert_some_seed_fails_with(
        |seed| {
            let mut c = long_config(seed);
            c.raft_bug = Some(PlantedBug::CommitPreviousTermEntries);
            c
        },
        is_safety_violation,
        "a safety violation",
    );
}

#[test]
fn the_long_schedule_passes_without_bugs() {
    for seed in 0..20 {
        let report = run_catching_panics(&long_config(seed));
        assert!(
            report.failure.is_none(),
            "seed {seed}: {:?}",
            report.failure
        );
    }
}
