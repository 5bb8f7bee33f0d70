//! Shared by the integration tests: the `keel` binary, a lock so that only
//! one cluster runs at a time (the suite is meant for small machines), and a
//! runtime.

#![allow(dead_code)] // each test binary uses a different part

use std::path::PathBuf;

use keel_robustness::check::Verdict;
use keel_robustness::run::{self, RunConfig, RunReport};
use std::sync::{Mutex, MutexGuard};

/// One cluster at a time per test binary.
static ONE_CLUSTER: Mutex<()> = Mutex::new(());

/// Serialises cluster runs; a panicked run does not poison the next.
pub fn one_cluster_at_a_time() -> MutexGuard<'static, ()> {
    ONE_CLUSTER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The `keel` executable; fails the test (never skips it) when it is missing.
pub fn keel_bin() -> PathBuf {
    keel_robustness::locate_keel().unwrap_or_else(|e| {
        panic!("{e}: these tests run real keel processes; build them with `cargo build -p keel --profile ci` (or set KEEL_BIN)")
    })
}

/// A small multi-threaded runtime.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Runs `config` to a verdict; fails the test when the run could not reach one.
pub fn run_to_verdict(config: RunConfig) -> RunReport {
    runtime()
        .block_on(run::run(config))
        .unwrap_or_else(|e| panic!("the run did not reach a verdict: {e}"))
}

/// The checks a report failed (convergence included), as `name: why`.
pub fn failures(report: &RunReport) -> Vec<String> {
    report
        .history
        .verdicts()
        .into_iter()
        .chain([("convergence", &report.convergence)])
        .filter_map(|(name, v)| match v {
            Verdict::Fail(why) => Some(format!("{name}: {why}")),
            Verdict::Pass | Verdict::Inconclusive(_) => None,
        })
        .collect()
}

/// Fails the test unless every check passed, with the failures, the faults, the line
/// that repeats the run and the kept directory.
pub fn assert_passed(report: &RunReport) {
    let failures = failures(report);
    assert!(
        failures.is_empty(),
        "{}\nfaults: {:?}\nrepeat with: {}\nkept: {:?}",
        failures.join("\n"),
        report.events,
        report.config.repro_line(),
        report.kept_dir
    );
}
