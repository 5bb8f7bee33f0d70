//! The command line: etcd's `benchmark` flags, parsed and checked into a
//! [`Plan`].

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use thiserror::Error;

use crate::runner::RunConfig;
use crate::workload::{Consistency, KeySpace, Workload, WorkloadError};

/// Seed of the random value and of the clients' random keys: fixed, so two
/// runs with the same flags send the same requests (as etcd's tool, built on
/// an unseeded `math/rand`, did).
const SEED: u64 = 1;

/// A load generator with etcd's `benchmark` verbs and flags.
#[derive(Debug, Parser)]
#[command(name = "keel-bench", version)]
pub struct Cli {
    /// gRPC endpoints, comma separated (`host:port` or `http://host:port`).
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        default_value = "127.0.0.1:2379"
    )]
    pub endpoints: Vec<String>,
    /// Total number of gRPC connections.
    #[arg(long, global = true, default_value_t = 1)]
    pub conns: usize,
    /// Total number of concurrent clients; they share the connections
    /// round-robin.
    #[arg(long, global = true, default_value_t = 1)]
    pub clients: usize,
    /// Total number of requests.
    #[arg(long, global = true, default_value_t = 10000)]
    pub total: u64,
    /// Print the summary as one JSON object instead of etcd's text layout.
    #[arg(long, global = true)]
    pub json: bool,
    /// Bound on establishing a connection (e.g. `500ms`, `5s`, `1m`).
    #[arg(long, global = true, default_value = "5s", value_parser = parse_duration)]
    pub dial_timeout: Duration,
    /// Bound on one request; a request that runs over is counted as an error.
    #[arg(long, global = true, default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// The workload.
    #[command(subcommand)]
    pub command: Command,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Benchmark put.
    Put(PutArgs),
    /// Benchmark range: `range KEY [END]`.
    Range(RangeArgs),
    /// Benchmark put within txns.
    TxnPut(TxnPutArgs),
}

/// Key and value shape shared by the write verbs.
#[derive(Debug, Args)]
pub struct KeyArgs {
    /// Key size of a put, in bytes.
    #[arg(long, default_value_t = 8)]
    pub key_size: usize,
    /// Value size of a put, in bytes.
    #[arg(long, default_value_t = 8)]
    pub val_size: usize,
    /// Number of distinct keys.
    #[arg(long, default_value_t = 1)]
    pub key_space_size: u64,
}

/// `put`.
#[derive(Debug, Args)]
pub struct PutArgs {
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Use sequential keys instead of random ones.
    #[arg(long)]
    pub sequential_keys: bool,
    /// Maximum requests per second (0 is no limit).
    #[arg(long, default_value_t = 0)]
    pub rate: u32,
}

/// `range`.
#[derive(Debug, Args)]
pub struct RangeArgs {
    /// The key to read.
    pub key: String,
    /// Exclusive end of the range; absent means only KEY.
    pub end: Option<String>,
    /// Consistency: `l` (linearizable) or `s` (serializable).
    #[arg(long, default_value = "l")]
    pub consistency: String,
    /// Maximum keys per response (0 is no limit).
    #[arg(long, default_value_t = 0)]
    pub limit: i64,
    /// Maximum requests per second (0 is no limit).
    #[arg(long, default_value_t = 0)]
    pub rate: u32,
}

/// `txn-put`.
#[derive(Debug, Args)]
pub struct TxnPutArgs {
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Number of puts per txn.
    #[arg(long, default_value_t = 1)]
    pub txn_ops: u64,
    /// Maximum requests per second (0 is no limit).
    #[arg(long, default_value_t = 0)]
    pub rate: u32,
}

/// How the summary is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// etcd's text layout.
    Text,
    /// One JSON object.
    Json,
}

/// A checked command line, ready to run.
#[derive(Debug)]
pub struct Plan {
    /// Connections, clients, limits.
    pub config: RunConfig,
    /// What to send.
    pub workload: Arc<Workload>,
    /// How to print the result.
    pub output: Output,
}

/// Flags that do not make a run.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PlanError {
    /// `--total 0`.
    #[error("--total must be at least 1")]
    NoRequests,
    /// A verb's settings.
    #[error(transparent)]
    Workload(#[from] WorkloadError),
}

impl Cli {
    /// Checks the flags and builds the workload; `stdout_is_terminal`
    /// decides whether a progress bar is drawn.
    pub fn plan(self, stdout_is_terminal: bool) -> Result<Plan, PlanError> {
        if self.total == 0 {
            return Err(PlanError::NoRequests);
        }
        let mut rng = SmallRng::seed_from_u64(SEED);
        let (workload, rate_per_sec) = match self.command {
            Command::Put(put) => {
                let keys = key_space(&put.keys, &mut rng)?;
                (Workload::put(keys, put.sequential_keys), put.rate)
            }
            Command::Range(range) => {
                let consistency: Consistency = range.consistency.parse()?;
                let workload = Workload::range(
                    range.key.into_bytes(),
                    range.end.map(String::into_bytes),
                    consistency,
                    range.limit,
                );
                (workload, range.rate)
            }
            Command::TxnPut(txn) => {
                let keys = key_space(&txn.keys, &mut rng)?;
                (Workload::txn_put(keys, txn.txn_ops)?, txn.rate)
            }
        };
        Ok(Plan {
            config: RunConfig {
                endpoints: self.endpoints,
                conns: self.conns,
                clients: self.clients,
                total: self.total,
                rate_per_sec,
                dial_timeout: self.dial_timeout,
                request_timeout: self.request_timeout,
                progress: stdout_is_terminal,
                seed: SEED,
            },
            workload: Arc::new(workload),
            output: if self.json {
                Output::Json
            } else {
                Output::Text
            },
        })
    }
}

/// Whether the progress bar may be drawn.
pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

fn key_space(keys: &KeyArgs, rng: &mut SmallRng) -> Result<KeySpace, WorkloadError> {
    KeySpace::new(keys.key_size, keys.key_space_size, keys.val_size, rng)
}

/// Parses a duration written as a whole number followed by `ms`, `s` or `m`
/// (a subset of Go's `time.ParseDuration`, which etcd's flags use).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?} has no unit (use ms, s or m)"))?;
    let (digits, unit) = text.split_at(split);
    let amount: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} does not start with a number"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(amount)),
        "s" => Ok(Duration::from_secs(amount)),
        "m" => amount
            .checked_mul(60)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{text:?} is too long")),
        other => Err(format!(
            "unknown unit {other:?} in {text:?} (use ms, s or m)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use keel_proto::etcdserverpb::RangeRequest;

    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("keel-bench").chain(args.iter().copied()))
            .expect("valid command line")
    }

    #[test]
    fn defaults_are_etcds() {
        let plan = parse(&["put"]).plan(false).expect("valid flags");
        assert_eq!(plan.config.endpoints, vec!["127.0.0.1:2379"]);
        assert_eq!(plan.config.conns, 1);
        assert_eq!(plan.config.clients, 1);
        assert_eq!(plan.config.total, 10000);
        assert_eq!(plan.config.rate_per_sec, 0);
        assert_eq!(plan.output, Output::Text);
        let Workload::Put { keys, sequential } = plan.workload.as_ref() else {
            panic!("put built {:?}", plan.workload);
        };
        assert!(!sequential);
        assert_eq!(keys.key(0).len(), 8);
    }

    #[test]
    fn global_flags_go_before_or_after_the_verb() {
        let before = parse(&[
            "--endpoints",
            "a:1,b:2",
            "--clients",
            "4",
            "--total",
            "200",
            "put",
        ]);
        let after = parse(&[
            "put",
            "--endpoints=a:1,b:2",
            "--clients=4",
            "--total=200",
            "--json",
        ]);
        for cli in [before, after] {
            assert_eq!(cli.endpoints, vec!["a:1", "b:2"]);
            assert_eq!(cli.clients, 4);
            assert_eq!(cli.total, 200);
        }
    }

    #[test]
    fn range_takes_key_end_and_consistency() {
        let plan = parse(&[
            "range",
            "a",
            "z",
            "--consistency",
            "s",
            "--limit",
            "5",
            "--rate",
            "9",
        ])
        .plan(false)
        .expect("valid flags");
        assert_eq!(plan.config.rate_per_sec, 9);
        assert_eq!(
            plan.workload.as_ref(),
            &Workload::Range {
                request: RangeRequest {
                    key: b"a".to_vec(),
                    range_end: b"z".to_vec(),
                    limit: 5,
                    serializable: true,
                    ..RangeRequest::default()
                }
            }
        );
        assert_eq!(
            parse(&["range", "a", "--consistency", "x"])
                .plan(false)
                .err(),
            Some(PlanError::Workload(WorkloadError::BadConsistency(
                "x".to_string()
            )))
        );
        assert!(
            Cli::try_parse_from(["keel-bench", "range"]).is_err(),
            "KEY is required"
        );
    }

    #[test]
    fn txn_put_flags_are_checked() {
        let plan = parse(&["txn-put", "--txn-ops", "4", "--key-space-size", "100"])
            .plan(false)
            .expect("valid flags");
        assert!(matches!(
            plan.workload.as_ref(),
            Workload::TxnPut { txn_ops: 4, .. }
        ));
        assert!(matches!(
            parse(&["txn-put", "--txn-ops", "4"]).plan(false),
            Err(PlanError::Workload(WorkloadError::TxnOpsExceedKeySpace {
                txn_ops: 4,
                key_space_size: 1
            }))
        ));
        assert_eq!(
            parse(&["put", "--total", "0"]).plan(false).err(),
            Some(PlanError::NoRequests)
        );
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("5h").is_err());
    }
}
