//! The command line: etcd's `benchmark` flags, parsed and checked into a
//! [`Plan`].

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use rand::rngs::SmallRng;
use rand::{Rng as _, RngCore as _, SeedableRng};
use thiserror::Error;

use crate::lease::KeepAliveOperations;
use crate::report::{Report, Section};
use crate::runner::{self, RunConfig, RunError};
use crate::watch::{self, FanOut, FanOutError, Verb};
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
    /// Benchmark a mixed load of txn-put and txn-range.
    TxnMixed(TxnMixedArgs),
    /// Benchmark watch: watcher creation, then event delivery to them.
    Watch(WatchArgs),
    /// Benchmark watch latency: put to event arrival, with many watchers.
    WatchLatency(WatchLatencyArgs),
    /// Benchmark lease keepalive (`--total` round trips).
    LeaseKeepalive,
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

/// `txn-mixed`.
#[derive(Debug, Args)]
pub struct TxnMixedArgs {
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Maximum txns per second (0 is no limit).
    #[arg(long, default_value_t = 0)]
    pub rate: u32,
    /// Exclusive end of the reads' range (empty: every key).
    #[arg(long, default_value = "")]
    pub end_key: String,
    /// Maximum keys per read.
    #[arg(long, default_value_t = 1000)]
    pub limit: i64,
    /// Consistency of the reads: `l` (linearizable) or `s` (serializable).
    #[arg(long, default_value = "l")]
    pub consistency: String,
    /// Reads per write.
    #[arg(long, default_value_t = 1.0)]
    pub rw_ratio: f64,
}

/// `watch`. `--total` does not apply: `--put-total` counts the puts.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Watch streams.
    #[arg(long, default_value_t = 10)]
    pub streams: usize,
    /// Watchers per stream.
    #[arg(long, default_value_t = 100)]
    pub watch_per_stream: usize,
    /// Keys to watch (watchers are spread over them).
    #[arg(long, default_value_t = 1)]
    pub watched_key_total: usize,
    /// Puts per second (0 is no limit).
    #[arg(long, default_value_t = 0)]
    pub put_rate: u32,
    /// Puts on the watched keys.
    #[arg(long, default_value_t = 1000)]
    pub put_total: u64,
    /// Size of a watched key, in bytes.
    #[arg(long, default_value_t = 32)]
    pub key_size: usize,
    /// Number of distinct key numbers the watched keys are drawn from.
    #[arg(long, default_value_t = 1)]
    pub key_space_size: u64,
    /// Number the watched keys 0, 1, 2... instead of drawing them.
    #[arg(long)]
    pub sequential_keys: bool,
    /// Keep the watchers open and idle this long before the puts (e.g.
    /// `10s`), to measure a server's memory per idle watcher.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub idle_hold: Duration,
}

/// `watch-latency`. `--total` does not apply: `--put-total` counts the puts.
#[derive(Debug, Args)]
pub struct WatchLatencyArgs {
    /// Watch streams.
    #[arg(long, default_value_t = 10)]
    pub streams: usize,
    /// Watchers per stream.
    #[arg(long, default_value_t = 10)]
    pub watchers_per_stream: usize,
    /// Ask for the previous key-value in each event.
    #[arg(long)]
    pub prevkv: bool,
    /// Watch the key as a prefix (the range of keys starting with it), so
    /// that the server's range watchers are measured.
    #[arg(long)]
    pub prefix: bool,
    /// Puts, one at a time, on the watched key.
    #[arg(long, default_value_t = 1000)]
    pub put_total: u64,
    /// Puts per second (0 is no limit).
    #[arg(long, default_value_t = 100)]
    pub put_rate: u32,
    /// Size of the watched key, in bytes.
    #[arg(long, default_value_t = 32)]
    pub key_size: usize,
    /// Size of the put value, in bytes.
    #[arg(long, default_value_t = 32)]
    pub val_size: usize,
}

/// How the summary is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// etcd's text layout.
    Text,
    /// One JSON object.
    Json,
}

/// What a checked command line runs.
#[derive(Debug)]
pub enum Job {
    /// A KV verb: `put`, `range`, `txn-put`, `txn-mixed`.
    Kv(Arc<Workload>),
    /// `watch` or `watch-latency`.
    Watch(FanOut, Verb),
    /// `lease-keepalive`.
    LeaseKeepalive,
}

/// A checked command line, ready to run.
#[derive(Debug)]
pub struct Plan {
    /// Connections, clients, limits.
    pub config: RunConfig,
    /// What to send.
    pub job: Job,
    /// How to print the result.
    pub output: Output,
}

impl Plan {
    /// Runs the job and builds the report it prints.
    pub async fn run(self) -> Result<Report, RunError> {
        match self.job {
            Job::Kv(workload) => {
                let mut summaries = runner::run(&self.config, Arc::clone(&workload)).await?;
                if let [_] = workload.sections() {
                    return Ok(Report::Single(summaries.remove(0)));
                }
                let consistency = match workload.as_ref() {
                    Workload::TxnMixed { read, .. } if read.serializable => "serializable",
                    _ => "linearizable",
                };
                let sections = workload
                    .sections()
                    .iter()
                    .zip(summaries)
                    .map(|(&key, summary)| {
                        let ops = summary.requests + summary.errors;
                        let kind = if key == "read" { "Read" } else { "Write" };
                        Section {
                            key,
                            heading: format!("Total {kind} Ops: {ops}\nDetails:"),
                            summary,
                        }
                    })
                    .collect();
                Ok(Report::Sections {
                    preamble: Some(format!("bench with {consistency} range\n")),
                    sections,
                })
            }
            Job::Watch(plan, verb) => watch::run(&self.config, plan, verb).await,
            Job::LeaseKeepalive => {
                let channels = runner::open_channels(&self.config)?;
                let (mut summaries, _) = runner::run_clients(&self.config, &channels, 1, |c| {
                    KeepAliveOperations::new(runner::channel_for(&channels, c))
                })
                .await?;
                Ok(Report::Single(summaries.remove(0)))
            }
        }
    }
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
    /// A watch verb's settings.
    #[error(transparent)]
    FanOut(#[from] FanOutError),
}

impl Cli {
    /// Checks the flags and builds the workload; `stdout_is_terminal`
    /// decides whether a progress bar is drawn.
    pub fn plan(self, stdout_is_terminal: bool) -> Result<Plan, PlanError> {
        if self.total == 0 {
            return Err(PlanError::NoRequests);
        }
        let mut rng = SmallRng::seed_from_u64(SEED);
        let (job, rate_per_sec) = match self.command {
            Command::Put(put) => {
                let keys = key_space(&put.keys, &mut rng)?;
                (Workload::put(keys, put.sequential_keys).into(), put.rate)
            }
            Command::Range(range) => {
                let consistency: Consistency = range.consistency.parse()?;
                let workload = Workload::range(
                    range.key.into_bytes(),
                    range.end.map(String::into_bytes),
                    consistency,
                    range.limit,
                );
                (workload.into(), range.rate)
            }
            Command::TxnPut(txn) => {
                let keys = key_space(&txn.keys, &mut rng)?;
                (Workload::txn_put(keys, txn.txn_ops)?.into(), txn.rate)
            }
            Command::TxnMixed(mixed) => {
                let consistency: Consistency = mixed.consistency.parse()?;
                let keys = key_space(&mixed.keys, &mut rng)?;
                let workload = Workload::txn_mixed(
                    keys,
                    mixed.rw_ratio,
                    mixed.end_key.into_bytes(),
                    consistency,
                    mixed.limit,
                )?;
                (workload.into(), mixed.rate)
            }
            Command::Watch(watch) => (Job::Watch(watch_plan(watch, &mut rng)?, Verb::Watch), 0),
            Command::WatchLatency(latency) => (
                Job::Watch(watch_latency_plan(latency, &mut rng)?, Verb::WatchLatency),
                0,
            ),
            Command::LeaseKeepalive => (Job::LeaseKeepalive, 0),
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
            job,
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

impl From<Workload> for Job {
    fn from(workload: Workload) -> Job {
        Job::Kv(Arc::new(workload))
    }
}

fn key_space(keys: &KeyArgs, rng: &mut SmallRng) -> Result<KeySpace, WorkloadError> {
    KeySpace::new(keys.key_size, keys.key_space_size, keys.val_size, rng)
}

/// `watch`'s keys are etcd's: `--watched-key-total` key numbers, sequential
/// or drawn from `--key-space-size`, each in a `--key-size` key (the KV
/// verbs' key encoding); its puts write `data`, as etcd's do.
fn watch_plan(watch: WatchArgs, rng: &mut SmallRng) -> Result<FanOut, PlanError> {
    let keys = KeySpace::new(watch.key_size, watch.key_space_size, 0, rng)?;
    let watched: Vec<Vec<u8>> = (0..watch.watched_key_total as u64)
        .map(|i| {
            let number = if watch.sequential_keys {
                i % watch.key_space_size
            } else {
                rng.random_range(0..watch.key_space_size)
            };
            keys.key(number)
        })
        .collect();
    let (keys, slots) = FanOut::distinct_keys(watched);
    let plan = FanOut {
        streams: watch.streams,
        watchers_per_stream: watch.watch_per_stream,
        keys,
        slots,
        prefix: false,
        prev_kv: false,
        put_total: watch.put_total,
        put_rate: watch.put_rate,
        value: b"data".to_vec(),
        single_putter: false,
        idle_hold: watch.idle_hold,
    };
    plan.check()?;
    Ok(plan)
}

/// `watch-latency`'s key and value are random bytes, as etcd's are.
fn watch_latency_plan(latency: WatchLatencyArgs, rng: &mut SmallRng) -> Result<FanOut, PlanError> {
    if latency.key_size == 0 {
        return Err(WorkloadError::EmptyKey.into());
    }
    let mut key = vec![0; latency.key_size];
    rng.fill_bytes(&mut key);
    let mut value = vec![0; latency.val_size];
    rng.fill_bytes(&mut value);
    let plan = FanOut {
        streams: latency.streams,
        watchers_per_stream: latency.watchers_per_stream,
        keys: vec![key],
        slots: vec![0],
        prefix: latency.prefix,
        prev_kv: latency.prevkv,
        put_total: latency.put_total,
        put_rate: latency.put_rate,
        value,
        single_putter: true,
        idle_hold: Duration::ZERO,
    };
    plan.check()?;
    Ok(plan)
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

    fn workload(plan: &Plan) -> &Workload {
        match &plan.job {
            Job::Kv(workload) => workload,
            other => panic!("not a KV verb: {other:?}"),
        }
    }

    fn fan_out(plan: &Plan) -> (&FanOut, Verb) {
        match &plan.job {
            Job::Watch(fan_out, verb) => (fan_out, *verb),
            other => panic!("not a watch verb: {other:?}"),
        }
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
        let Workload::Put { keys, sequential } = workload(&plan) else {
            panic!("put built {:?}", plan.job);
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
            workload(&plan),
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
            workload(&plan),
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
    fn txn_mixed_defaults_and_flags_are_etcds() {
        let plan = parse(&["txn-mixed"]).plan(false).expect("valid flags");
        let Workload::TxnMixed {
            keys,
            read_probability,
            read,
        } = workload(&plan)
        else {
            panic!("txn-mixed built {:?}", plan.job);
        };
        assert_eq!(*read_probability, 0.5, "--rw-ratio 1");
        assert_eq!(read.limit, 1000);
        assert!(!read.serializable);
        assert_eq!(read.range_end, vec![0], "no --end-key: every key");
        assert_eq!(keys.key(0).len(), 8);
        assert_eq!(plan.config.total, 10000);

        let plan = parse(&[
            "txn-mixed",
            "--rw-ratio=4",
            "--consistency=s",
            "--end-key=zz",
            "--limit=10",
            "--key-space-size=100",
            "--rate=50",
        ])
        .plan(false)
        .expect("valid flags");
        assert_eq!(plan.config.rate_per_sec, 50);
        let Workload::TxnMixed {
            read_probability,
            read,
            ..
        } = workload(&plan)
        else {
            panic!("txn-mixed built {:?}", plan.job);
        };
        assert_eq!(*read_probability, 0.8);
        assert_eq!((read.limit, read.serializable), (10, true));
        assert_eq!(read.range_end, b"zz");
        assert!(matches!(
            parse(&["txn-mixed", "--rw-ratio=-2"]).plan(false),
            Err(PlanError::Workload(WorkloadError::BadReadWriteRatio(_)))
        ));
        assert!(matches!(
            parse(&["txn-mixed", "--consistency=x"]).plan(false),
            Err(PlanError::Workload(WorkloadError::BadConsistency(_)))
        ));
    }

    #[test]
    fn watch_defaults_are_etcds() {
        let plan = parse(&["watch"]).plan(false).expect("valid flags");
        let (watch, verb) = fan_out(&plan);
        assert_eq!(verb, Verb::Watch);
        assert_eq!((watch.streams, watch.watchers_per_stream), (10, 100));
        assert_eq!(watch.slots, vec![0], "--watched-key-total 1");
        assert_eq!(watch.keys[0].len(), 32);
        assert_eq!((watch.put_total, watch.put_rate), (1000, 0));
        assert_eq!(watch.value, b"data");
        assert!(!watch.single_putter && !watch.prefix);
        assert_eq!(watch.idle_hold, Duration::ZERO);

        let plan = parse(&[
            "watch",
            "--streams=2",
            "--watch-per-stream=5",
            "--watched-key-total=4",
            "--key-space-size=3",
            "--sequential-keys",
            "--key-size=8",
            "--put-total=7",
            "--put-rate=9",
            "--idle-hold=2s",
        ])
        .plan(false)
        .expect("valid flags");
        let (watch, _) = fan_out(&plan);
        // Key numbers 0, 1, 2, 0: three distinct keys, the fourth slot repeats the first.
        assert_eq!(watch.keys.len(), 3);
        assert_eq!(watch.slots, vec![0, 1, 2, 0]);
        assert_eq!(watch.keys[1], vec![2, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!((watch.put_total, watch.put_rate), (7, 9));
        assert_eq!(watch.idle_hold, Duration::from_secs(2));
        assert_eq!(
            parse(&["watch", "--streams=0"]).plan(false).err(),
            Some(PlanError::FanOut(FanOutError::Zero("streams")))
        );
        assert_eq!(
            parse(&["watch", "--watched-key-total=0"]).plan(false).err(),
            Some(PlanError::FanOut(FanOutError::NoKeys))
        );
    }

    #[test]
    fn watch_latency_defaults_are_etcds() {
        let plan = parse(&["watch-latency"]).plan(false).expect("valid flags");
        let (latency, verb) = fan_out(&plan);
        assert_eq!(verb, Verb::WatchLatency);
        assert_eq!((latency.streams, latency.watchers_per_stream), (10, 10));
        assert_eq!((latency.put_total, latency.put_rate), (1000, 100));
        assert_eq!((latency.keys[0].len(), latency.value.len()), (32, 32));
        assert!(latency.single_putter && !latency.prev_kv && !latency.prefix);

        let plan = parse(&[
            "--conns=10",
            "watch-latency",
            "--streams=100",
            "--watchers-per-stream=100",
            "--prevkv",
            "--prefix",
            "--put-total=50",
            "--put-rate=0",
            "--key-size=4",
            "--val-size=256",
        ])
        .plan(false)
        .expect("valid flags");
        let (latency, _) = fan_out(&plan);
        assert_eq!(latency.watchers(), 10_000);
        assert_eq!(latency.expected_events(), 500_000);
        assert!(latency.prev_kv && latency.prefix);
        assert_eq!((latency.keys[0].len(), latency.value.len()), (4, 256));
        assert_eq!(plan.config.conns, 10);
        assert_eq!(
            parse(&["watch-latency", "--key-size=0"]).plan(false).err(),
            Some(PlanError::Workload(WorkloadError::EmptyKey))
        );
    }

    #[test]
    fn lease_keepalive_counts_total_round_trips() {
        let plan = parse(&["lease-keepalive", "--total=50", "--clients=5"])
            .plan(false)
            .expect("valid flags");
        assert!(matches!(plan.job, Job::LeaseKeepalive));
        assert_eq!((plan.config.total, plan.config.clients), (50, 5));
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
