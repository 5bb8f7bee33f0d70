//! One run: start a cluster, drive traffic while a scenario injects faults,
//! heal, read every key, check convergence and the history, and keep the
//! evidence when something failed.
//!
//! With watchers, the final reads end with a linearizable range of the whole
//! prefix and a sentinel write ([`SENTINEL_KEY`]); the watchers run until they
//! have seen it (bounded by `WATCH_CATCH_UP`), so their coverage spans the
//! run.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use keel_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use keel_proto::etcdserverpb::{HashKvRequest, RangeRequest};
use rand::SeedableRng as _;
use rand::rngs::SmallRng;

use crate::RobustnessError;
use crate::check::{self, FINAL_READER, HistoryReport, Verdict};
use crate::cluster::Cluster;
use crate::history::{self, Outcome, Record, Recorder, Request};
use crate::lease;
use crate::scenario::Scenario;
use crate::traffic::{self, PlantedBug, TrafficConfig};
use crate::watch::{self, WatchControl};

/// Quiet time before each fault.
const QUIET: Duration = Duration::from_millis(1500);
/// How long each fault is held.
const HOLD: Duration = Duration::from_millis(2000);
/// Bound on the cluster recovering after the last heal.
const RECOVERY: Duration = Duration::from_secs(30);
/// Bound on the final read of one key (retried across members).
const FINAL_READ: Duration = Duration::from_secs(20);
/// Bound on the members agreeing on one revision.
const CONVERGENCE: Duration = Duration::from_secs(20);
/// Bound on the watchers catching up with the sentinel write.
const WATCH_CATCH_UP: Duration = Duration::from_secs(10);
/// The key written after the final reads, so that every watcher that can
/// catch up sees a revision past every change of the run.
pub const SENTINEL_KEY: &str = "/robustness/sentinel";

/// Everything that defines a run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The faults.
    pub scenario: Scenario,
    /// Cluster size (3 or 5).
    pub members: usize,
    /// Time under traffic and faults, before healing.
    pub duration: Duration,
    /// Seed of every random choice (traffic, faults, proxies).
    pub seed: u64,
    /// The `keel` executable.
    pub keel_bin: PathBuf,
    /// Concurrent traffic clients.
    pub clients: usize,
    /// Keys in the keyspace.
    pub keys: usize,
    /// A bug planted in the harness's client layer.
    pub planted_bug: Option<PlantedBug>,
    /// Where run directories are created.
    pub out_root: PathBuf,
    /// Keep the run directory even when every check passed.
    pub keep: bool,
    /// Extra flags for every `keel` process (e.g. `--snapshot-count=500`).
    pub keel_args: Vec<String>,
    /// Extra environment of every `keel` process (e.g. `KEEL_PLANTED_BUG`).
    pub keel_env: Vec<(String, String)>,
    /// Watchers on the key prefix ([`crate::watch`]); 0: no watch traffic.
    pub watchers: usize,
    /// Lease clients ([`crate::lease`]); 0: no lease traffic.
    pub lease_clients: usize,
}

impl RunConfig {
    /// A default run of `scenario`: 3 members, 6 clients, 8 keys.
    pub fn new(scenario: Scenario, duration: Duration, seed: u64, keel_bin: PathBuf) -> RunConfig {
        RunConfig {
            scenario,
            members: 3,
            duration,
            seed,
            keel_bin,
            clients: 6,
            keys: 8,
            planted_bug: None,
            out_root: std::env::temp_dir(),
            keep: false,
            keel_args: Vec::new(),
            keel_env: Vec::new(),
            watchers: 0,
            lease_clients: 0,
        }
    }

    /// The command line that repeats this run.
    pub fn repro_line(&self) -> String {
        let env: String = self
            .keel_env
            .iter()
            .map(|(k, v)| format!("{k}={v} "))
            .collect();
        let build = if self.scenario.needs_failpoints() || !self.keel_env.is_empty() {
            "cargo build --release -p keel --features failpoints && "
        } else {
            ""
        };
        let mut line = format!(
            "{build}{env}cargo run --release -p keel-robustness -- --scenario {} --duration {}ms --seed {} --members {} --clients {} --keys {}",
            self.scenario.name(),
            self.duration.as_millis(),
            self.seed,
            self.members,
            self.clients,
            self.keys
        );
        if let Some(bug) = self.planted_bug {
            line.push_str(&format!(" --plant {}", bug.name()));
        }
        // Always spelled out: the CLI's defaults are not RunConfig::new's.
        line.push_str(&format!(
            " --watchers {} --lease-clients {}",
            self.watchers, self.lease_clients
        ));
        for arg in &self.keel_args {
            line.push_str(&format!(" --keel-arg={arg}"));
        }
        line
    }
}

/// What a run found.
#[derive(Debug)]
pub struct RunReport {
    /// The run.
    pub config: RunConfig,
    /// Operations recorded (traffic, compactions, final reads).
    pub ops: usize,
    /// Of which with an unknown outcome.
    pub unknown: usize,
    /// Faults injected, with their time.
    pub events: Vec<String>,
    /// History checks.
    pub history: HistoryReport,
    /// Whether every member holds the same keyspace after healing.
    pub convergence: Verdict,
    /// How convergence was compared (`HashKV`, or ranges when unimplemented).
    pub convergence_method: String,
    /// The run directory, when kept.
    pub kept_dir: Option<PathBuf>,
}

impl RunReport {
    /// Whether any check failed.
    pub fn failed(&self) -> bool {
        self.history.failed() || self.convergence.failed()
    }
}

/// Runs one scenario. Every process started is killed before this returns
/// (or when the future is dropped).
pub async fn run(config: RunConfig) -> Result<RunReport, RobustnessError> {
    let dir = tempfile::Builder::new()
        .prefix(&format!(
            "keel-robustness-{}-{}-",
            config.scenario.name(),
            config.seed
        ))
        .tempdir_in(&config.out_root)
        .map_err(|e| RobustnessError::io(&config.out_root, e))?;
    match drive(&config, dir.path()).await {
        Ok(mut report) => {
            if report.failed() || config.keep {
                report.kept_dir = Some(dir.keep());
            }
            Ok(report)
        }
        Err(e) => {
            let kept = dir.keep();
            Err(RobustnessError::Run {
                dir: kept,
                repro: config.repro_line(),
                cause: Box::new(e),
            })
        }
    }
}

async fn drive(config: &RunConfig, dir: &Path) -> Result<RunReport, RobustnessError> {
    let keys: Vec<String> = (0..config.keys).map(traffic::key).collect();
    let mut cluster = Cluster::start_with_env(
        &config.keel_bin,
        config.members,
        dir,
        config.seed,
        &config.keel_args,
        &config.keel_env,
    )
    .await?;
    let urls = Arc::new(cluster.client_urls());
    let recorder = Arc::new(Recorder::new());
    let stop = Arc::new(AtomicBool::new(false));
    let _stop_guard = StopOnDrop(stop.clone());
    let traffic_config = TrafficConfig {
        clients: config.clients,
        keys: config.keys,
        seed: config.seed,
        planted_bug: config.planted_bug,
    };
    let mut tasks = Vec::new();
    for id in 0..config.clients as u64 {
        tasks.push(tokio::spawn(traffic::client_loop(
            id,
            urls.clone(),
            traffic_config.clone(),
            recorder.clone(),
            stop.clone(),
        )));
    }
    for index in 0..config.lease_clients as u64 {
        tasks.push(tokio::spawn(lease::lease_loop(
            index,
            urls.clone(),
            config.seed,
            recorder.clone(),
            stop.clone(),
        )));
    }
    let watch_control = Arc::new(WatchControl::default());
    let _watch_stop_guard = StopWatchersOnDrop(watch_control.clone());
    let mut watchers = Vec::with_capacity(config.watchers);
    for index in 0..config.watchers as u64 {
        watchers.push(tokio::spawn(watch::watcher_loop(
            index,
            urls.clone(),
            config.seed,
            config.planted_bug,
            recorder.clone(),
            watch_control.clone(),
        )));
    }
    if config.scenario.compacts() {
        tasks.push(tokio::spawn(traffic::compactor_loop(
            urls.clone(),
            recorder.clone(),
            stop.clone(),
            Duration::from_millis(500),
        )));
    }

    let mut rng = SmallRng::seed_from_u64(config.seed);
    let mut events = Vec::new();
    let end = tokio::time::Instant::now() + config.duration;
    while tokio::time::Instant::now() + QUIET + HOLD <= end {
        tokio::time::sleep(QUIET).await;
        let event = config.scenario.inject(&mut cluster, &mut rng).await?;
        events.push(format!("{:>8.3}s {event}", secs(recorder.now_ns())));
        tokio::time::sleep(HOLD).await;
        cluster.heal()?;
        events.push(format!("{:>8.3}s heal", secs(recorder.now_ns())));
    }
    tokio::time::sleep_until(end).await;
    cluster.heal()?;
    let recovered = cluster.wait_healthy(RECOVERY).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        // A client task that panicked is a harness bug: surface it.
        task.await
            .map_err(|e| RobustnessError::Cluster(format!("a traffic task failed: {e}")))?;
    }
    recovered?;

    for key in &keys {
        let request = Request::Get {
            key: key.clone(),
            serializable: false,
        };
        final_request(&urls, request, &recorder).await;
    }
    if !watchers.is_empty() {
        let range = Request::Range {
            prefix: traffic::KEY_PREFIX.to_owned(),
            serializable: false,
        };
        final_request(&urls, range, &recorder).await;
        match sentinel(&urls, &recorder).await {
            Some(revision) => {
                watch_control
                    .until_revision
                    .store(revision, Ordering::Relaxed);
                let deadline = tokio::time::Instant::now() + WATCH_CATCH_UP;
                while !watchers.iter().all(tokio::task::JoinHandle::is_finished)
                    && tokio::time::Instant::now() < deadline
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            None => {
                events.push("the sentinel write failed: watchers stop where they are".to_owned())
            }
        }
    }
    watch_control.stop.store(true, Ordering::Relaxed);
    for watcher in watchers {
        watcher
            .await
            .map_err(|e| RobustnessError::Cluster(format!("a watcher failed: {e}")))?;
    }
    let (convergence, convergence_method) = convergence(&cluster).await;
    drop(cluster);

    let records = recorder.snapshot();
    history::write_jsonl(&dir.join("history.jsonl"), &records)?;
    std::fs::write(dir.join("events.log"), events.join("\n") + "\n")
        .map_err(|e| RobustnessError::io(dir, e))?;
    let unknown = records
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Unknown { .. }))
        .count();
    let check_keys = keys.clone();
    let history = tokio::task::spawn_blocking(move || {
        let report = check::check_history(&records, &check_keys);
        (report, records.len())
    })
    .await
    .map_err(|e| RobustnessError::History(format!("the checker failed: {e}")))?;
    Ok(RunReport {
        config: config.clone(),
        ops: history.1,
        unknown,
        events,
        history: history.0,
        convergence,
        convergence_method,
        kept_dir: None,
    })
}

/// Stops the traffic tasks when a run ends early (an error, or the run
/// future dropped on Ctrl-C), so none outlives its cluster.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn secs(ns: u64) -> f64 {
    Duration::from_nanos(ns).as_secs_f64()
}

/// Stops the watchers when a run ends early.
struct StopWatchersOnDrop(Arc<WatchControl>);

impl Drop for StopWatchersOnDrop {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::Relaxed);
    }
}

/// Writes [`SENTINEL_KEY`] (retried with a fresh value on every member until
/// one acknowledges it; every attempt is recorded) and returns its revision.
async fn sentinel(urls: &[String], recorder: &Recorder) -> Option<i64> {
    let deadline = tokio::time::Instant::now() + FINAL_READ;
    let mut attempt = 0;
    let mut member = 0;
    while tokio::time::Instant::now() < deadline {
        attempt += 1;
        let request = Request::Put {
            key: SENTINEL_KEY.to_owned(),
            value: format!("sentinel-{attempt}"),
        };
        if let Some(mut kv) = traffic::connect(&urls[member]).await {
            let invoked_ns = recorder.now_ns();
            let result = traffic::execute(&mut kv, &request).await;
            let outcome = match &result {
                Ok((revision, response)) => Outcome::Ok {
                    returned_ns: recorder.now_ns(),
                    revision: *revision,
                    response: response.clone(),
                },
                Err(error) => Outcome::Unknown {
                    error: error.clone(),
                },
            };
            recorder.push(Record {
                client: FINAL_READER,
                member,
                request,
                invoked_ns,
                outcome,
            });
            if let Ok((revision, _)) = result {
                return Some(revision);
            }
        }
        member = (member + 1) % urls.len();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// A read (a get or a prefix range), retried on every member until one
/// answers; the answer is recorded as the final reader's.
async fn final_request(urls: &[String], request: Request, recorder: &Recorder) {
    assert!(request.is_read(), "only reads are retried: {request:?}");
    let deadline = tokio::time::Instant::now() + FINAL_READ;
    let mut member = 0;
    while tokio::time::Instant::now() < deadline {
        if let Some(mut kv) = traffic::connect(&urls[member]).await {
            let invoked_ns = recorder.now_ns();
            if let Ok((revision, response)) = traffic::execute(&mut kv, &request).await {
                recorder.push(Record {
                    client: FINAL_READER,
                    member,
                    request,
                    invoked_ns,
                    outcome: Outcome::Ok {
                        returned_ns: recorder.now_ns(),
                        revision,
                        response,
                    },
                });
                return;
            }
        }
        member = (member + 1) % urls.len();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Compares the members' keyspaces at one revision: `HashKV` when the server
/// implements it, otherwise a serializable `Range` of everything on each
/// member at that revision.
async fn convergence(cluster: &Cluster) -> (Verdict, String) {
    let deadline = tokio::time::Instant::now() + CONVERGENCE;
    let revision = loop {
        let mut revisions = Vec::new();
        for i in 0..cluster.len() {
            revisions.push(cluster.status(i).await.map(|(_, _, rev)| rev));
        }
        if let Some(Some(first)) = revisions.first()
            && revisions.iter().all(|r| *r == Some(*first))
        {
            break *first;
        }
        if tokio::time::Instant::now() >= deadline {
            return (
                Verdict::Fail(format!(
                    "members did not reach one revision within {CONVERGENCE:?}: {revisions:?}"
                )),
                "revision".to_owned(),
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut hashes = Vec::new();
    let mut unimplemented = false;
    for i in 0..cluster.len() {
        let url = cluster.member(i).client_url();
        let answer = tokio::time::timeout(traffic::REQUEST_TIMEOUT, async move {
            let mut client = MaintenanceClient::connect(url)
                .await
                .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
            client.hash_kv(HashKvRequest { revision }).await
        })
        .await;
        match answer {
            Ok(Ok(r)) => hashes.push(r.into_inner().hash),
            Ok(Err(status)) if status.code() == tonic::Code::Unimplemented => {
                unimplemented = true;
                break;
            }
            Ok(Err(status)) => {
                return (
                    Verdict::Fail(format!("HashKV on m{i}: {status}")),
                    "HashKV".to_owned(),
                );
            }
            Err(_) => {
                return (
                    Verdict::Fail(format!("HashKV on m{i} did not answer")),
                    "HashKV".to_owned(),
                );
            }
        }
    }
    if !unimplemented {
        let verdict = if hashes.windows(2).all(|w| w[0] == w[1]) {
            Verdict::Pass
        } else {
            Verdict::Fail(format!("HashKV at revision {revision} differs: {hashes:?}"))
        };
        return (verdict, format!("HashKV@{revision}"));
    }
    let method = format!("Range@{revision} (HashKV unimplemented)");
    let mut states = Vec::new();
    for i in 0..cluster.len() {
        let Some(mut kv) = traffic::connect(&cluster.member(i).client_url()).await else {
            return (Verdict::Fail(format!("cannot connect to m{i}")), method);
        };
        let request = RangeRequest {
            key: vec![0],
            range_end: vec![0],
            revision,
            serializable: true,
            ..RangeRequest::default()
        };
        match tokio::time::timeout(traffic::REQUEST_TIMEOUT, kv.range(request)).await {
            Ok(Ok(r)) => {
                let kvs: Vec<_> = r
                    .into_inner()
                    .kvs
                    .into_iter()
                    .map(|kv| {
                        (
                            kv.key,
                            kv.value,
                            kv.create_revision,
                            kv.mod_revision,
                            kv.version,
                        )
                    })
                    .collect();
                states.push(kvs);
            }
            Ok(Err(status)) => {
                return (Verdict::Fail(format!("Range on m{i}: {status}")), method);
            }
            Err(_) => {
                return (
                    Verdict::Fail(format!("Range on m{i} did not answer")),
                    method,
                );
            }
        }
    }
    let verdict = match states.iter().position(|s| *s != states[0]) {
        None => Verdict::Pass,
        Some(i) => Verdict::Fail(format!(
            "m{i} holds a different keyspace than m0 at revision {revision} ({} vs {} keys)",
            states[i].len(),
            states[0].len()
        )),
    };
    (verdict, method)
}
