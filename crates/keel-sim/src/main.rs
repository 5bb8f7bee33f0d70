//! `keel-sim`: runs seeded simulations of a Keel cluster and reports which
//! seeds violate a safety property.
//!
//! ```text
//! cargo run --release -p keel-sim -- --seeds 2000 --nodes 3
//! ```
//!
//! Every fault is on. Each failing seed prints one line with the command
//! that replays it; the last line is `N passed, M failed`.

use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use clap::{Parser, ValueEnum};
use keel_sim::checks::Failure;
use keel_sim::sim::{HarnessBug, RunReport, SimConfig, run_catching_panics};

/// A bug to plant, to see the simulator catch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Bug {
    /// Harness: send vote and append responses before persisting.
    SendBeforePersist,
    /// Harness: send vote requests and responses before persisting.
    VotesBeforePersist,
    /// Harness: answer reads locally, without ReadIndex.
    LocalReads,
    /// Harness: acknowledge writes when proposed, before they commit.
    AckBeforeCommit,
    /// keel-raft: commit entries of previous terms by counting replicas.
    CommitPreviousTerm,
}

impl Bug {
    fn flag(self) -> &'static str {
        match self {
            Bug::SendBeforePersist => "send-before-persist",
            Bug::VotesBeforePersist => "votes-before-persist",
            Bug::LocalReads => "local-reads",
            Bug::AckBeforeCommit => "ack-before-commit",
            Bug::CommitPreviousTerm => "commit-previous-term",
        }
    }
}

#[derive(Debug, Parser)]
#[command(about = "Deterministic fault-injection simulation of a Keel cluster")]
struct Args {
    /// Number of seeds to run.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// Initial voters.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=7))]
    nodes: u64,
    /// First seed; seeds `seed .. seed + seeds` are run.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print every simulated event to stderr (runs on one thread).
    #[arg(long)]
    trace: bool,
    /// Virtual milliseconds of faults per seed.
    #[arg(long, default_value_t = 3_000)]
    steps: u64,
    /// Plant a bug.
    #[arg(long, value_enum)]
    bug: Option<Bug>,
    /// Mean virtual milliseconds between fault events (crashes, partitions,
    /// membership changes, leader transfers).
    #[arg(long, default_value_t = 120)]
    fault_interval_ms: u32,
    /// Chance, per thousand, that the network drops a message.
    #[arg(long, default_value_t = 20)]
    drop_per_mille: u32,
    /// Concurrent clients.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Force Raft's append size limit in bytes (default: the seed picks 1,
    /// 256 or 64 KiB).
    #[arg(long)]
    max_append_bytes: Option<u64>,
    /// Worker threads (default: available parallelism).
    #[arg(long)]
    jobs: Option<usize>,
}

fn config_for(args: &Args, seed: u64) -> SimConfig {
    let mut c = SimConfig::new(seed, args.nodes);
    c.fault_phase_ms = args.steps;
    c.faults.mean_fault_interval_ms = Some(args.fault_interval_ms);
    c.faults.network.drop_per_mille = args.drop_per_mille;
    c.workload.clients = args.clients;
    if let Some(bytes) = args.max_append_bytes {
        c.max_append_bytes = bytes;
    }
    c.trace = args.trace;
    match args.bug {
        Some(Bug::SendBeforePersist) => {
            c.harness_bug = Some(HarnessBug::SendPersistedMessagesEarly)
        }
        Some(Bug::VotesBeforePersist) => c.harness_bug = Some(HarnessBug::SendVotesEarly),
        Some(Bug::LocalReads) => c.harness_bug = Some(HarnessBug::LocalReads),
        Some(Bug::AckBeforeCommit) => c.harness_bug = Some(HarnessBug::AckBeforeCommit),
        Some(Bug::CommitPreviousTerm) => {
            c.raft_bug = Some(keel_raft::PlantedBug::CommitPreviousTermEntries);
        }
        None => {}
    }
    c
}

fn replay_command(args: &Args, seed: u64) -> String {
    let append = args
        .max_append_bytes
        .map(|b| format!(" --max-append-bytes {b}"))
        .unwrap_or_default();
    let bug = args
        .bug
        .map(|b| format!(" --bug {}", b.flag()))
        .unwrap_or_default();
    format!(
        "cargo run --release -p keel-sim -- --seeds 1 --seed {seed} --nodes {} --steps {} \
         --fault-interval-ms {} --drop-per-mille {} --clients {}{append}{bug}",
        args.nodes, args.steps, args.fault_interval_ms, args.drop_per_mille, args.clients
    )
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !args.trace {
        // Panics are reported per seed as failures; the default hook would
        // print each one with a backtrace on top of that.
        std::panic::set_hook(Box::new(|_| {}));
    }
    let jobs = if args.trace {
        1
    } else {
        args.jobs.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    };
    let next = AtomicU64::new(args.seed);
    let end = args.seed.saturating_add(args.seeds);
    // A std mutex: workers only push a finished report, never hold it across
    // anything that blocks.
    let reports: Mutex<Vec<RunReport>> = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= end {
                        break;
                    }
                    let report = run_catching_panics(&config_for(&args, seed));
                    reports
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(report);
                }
            });
        }
    });
    let elapsed = started.elapsed();
    let mut reports = reports
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    reports.sort_by_key(|r| r.seed);
    let mut failed = 0u64;
    let mut ops = 0usize;
    let mut virtual_ms = 0u64;
    for r in &reports {
        ops += r.stats.operations;
        virtual_ms += r.stats.virtual_ms;
        if let Some(failure) = &r.failure {
            failed += 1;
            println!(
                "FAIL seed {}: {failure} | replay: {}",
                r.seed,
                replay_command(&args, r.seed)
            );
            if let (true, Failure::NotLinearizable(v)) = (args.trace, failure) {
                for (i, op) in v.operations.iter().enumerate() {
                    eprintln!("  op {i}: {op}");
                }
                eprintln!("  longest linearizable order: {:?}", v.longest_prefix);
            }
        }
    }
    let total = reports.len() as u64;
    let secs = elapsed.as_secs_f64();
    println!(
        "{total} seeds in {secs:.1} s ({:.1} seeds/s on {jobs} threads), {ops} client operations, {:.0} virtual s",
        total as f64 / secs.max(1e-9),
        virtual_ms as f64 / 1000.0
    );
    println!("{} passed, {failed} failed", total - failed);
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
