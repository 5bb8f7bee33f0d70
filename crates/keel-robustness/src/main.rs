//! `keel-robustness`: runs fault scenarios against real `keel` clusters and
//! checks every history; `--check FILE` re-checks a kept history.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Parser;
use keel_robustness::check::{self, Verdict};
use keel_robustness::history;
use keel_robustness::run::{self, RunConfig, RunReport};
use keel_robustness::scenario::Scenario;
use keel_robustness::traffic::{self, PlantedBug};

#[derive(Debug, Parser)]
#[command(
    about = "Real keel clusters under crashes, partitions and pauses, checked for linearizability"
)]
struct Args {
    /// A scenario name, or `all`.
    #[arg(long, default_value = "all")]
    scenario: String,
    /// Time under faults per scenario (`60s`, `500ms`, `2m`).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// Seed of every random choice; a fresh one when absent.
    #[arg(long)]
    seed: Option<u64>,
    /// Cluster size.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(3..=5))]
    members: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 6)]
    clients: usize,
    /// Keys in the keyspace.
    #[arg(long, default_value_t = 8)]
    keys: usize,
    /// Plant a bug in the harness's client layer (`stale-cached-reads`,
    /// `ack-without-write`, `watch-resume-skips`, `watch-drops-prev-kv`) to
    /// see the checks fail.
    #[arg(long)]
    plant: Option<String>,
    /// Keep every run directory, not only failing ones.
    #[arg(long)]
    keep: bool,
    /// Where run directories are created.
    #[arg(long)]
    out: Option<PathBuf>,
    /// An extra flag for every keel process (repeatable), e.g.
    /// `--keel-arg=--snapshot-count=500`.
    #[arg(long = "keel-arg", allow_hyphen_values = true)]
    keel_args: Vec<String>,
    /// Watchers on the key prefix (watch traffic and checks); 0: none.
    #[arg(long, default_value_t = 3)]
    watchers: usize,
    /// Lease clients (lease traffic and checks); 0: none.
    #[arg(long, default_value_t = 2)]
    lease_clients: usize,
    /// Re-check a kept `history.jsonl` instead of running.
    #[arg(long)]
    check: Option<PathBuf>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("bad duration {text:?}"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("bad duration unit in {text:?} (ms, s, m)")),
    }
}

fn main() -> ExitCode {
    match real_main() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("keel-robustness: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn real_main() -> anyhow::Result<bool> {
    let args = Args::parse();
    if let Some(path) = &args.check {
        let records = history::read_jsonl(path)?;
        let keys: Vec<String> = (0..args.keys).map(traffic::key).collect();
        let report = check::check_history(&records, &keys);
        for (name, verdict) in report.verdicts() {
            println!("{name}: {verdict:?}");
        }
        return Ok(!report.failed());
    }
    let scenarios = if args.scenario == "all" {
        Scenario::ALL.to_vec()
    } else {
        match Scenario::parse(&args.scenario) {
            Some(s) => vec![s],
            None => {
                let names: Vec<&str> = Scenario::ALL.iter().map(|s| s.name()).collect();
                bail!(
                    "unknown scenario {:?}; one of {names:?} or all",
                    args.scenario
                );
            }
        }
    };
    let planted_bug = match &args.plant {
        Some(name) => {
            Some(PlantedBug::parse(name).with_context(|| format!("unknown bug {name:?}"))?)
        }
        None => None,
    };
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs())
    });
    let keel_bin = keel_robustness::locate_keel()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let all_passed = runtime.block_on(async {
        let body = async {
            let mut all_passed = true;
            for scenario in scenarios {
                let mut config = RunConfig::new(scenario, args.duration, seed, keel_bin.clone());
                config.members = usize::try_from(args.members).context("members")?;
                config.clients = args.clients;
                config.keys = args.keys;
                config.planted_bug = planted_bug;
                config.keep = args.keep;
                config.keel_args = args.keel_args.clone();
                config.watchers = args.watchers;
                config.lease_clients = args.lease_clients;
                if let Some(out) = &args.out {
                    config.out_root = out.clone();
                }
                let report = run::run(config).await?;
                print_report(&report);
                all_passed &= !report.failed();
            }
            anyhow::Ok(all_passed)
        };
        tokio::select! {
            result = body => result,
            _ = tokio::signal::ctrl_c() => {
                // Dropping `body` dropped the cluster, which killed its processes.
                bail!("interrupted; every started process was killed")
            }
        }
    })?;
    Ok(all_passed)
}

fn print_report(report: &RunReport) {
    let c = &report.config;
    let result = if report.failed() { "FAIL" } else { "ok" };
    println!(
        "{:<20} members={} seed={} ops={} unknown={} convergence={} -> {result}",
        c.scenario.name(),
        c.members,
        c.seed,
        report.ops,
        report.unknown,
        report.convergence_method
    );
    let convergence = ("convergence", &report.convergence);
    for (name, verdict) in report.history.verdicts().into_iter().chain([convergence]) {
        match verdict {
            Verdict::Pass => {}
            Verdict::Fail(why) => println!("  {name} FAILED: {why}"),
            Verdict::Inconclusive(why) => println!("  {name} inconclusive: {why}"),
        }
    }
    if report.failed() {
        println!("  faults: {}", report.events.join("; "));
        println!("  repeat with: {}", c.repro_line());
    }
    if let Some(dir) = &report.kept_dir {
        println!(
            "  kept: {} (history.jsonl, events.log, member logs)",
            dir.display()
        );
    }
}
