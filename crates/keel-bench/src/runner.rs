//! Running a workload: connections, clients, timing, progress.
//!
//! `--conns` gRPC channels are opened (each one HTTP/2 connection), the j-th
//! to endpoint `j % endpoints`; `--clients` tasks share them round-robin, the
//! c-th using channel `c % conns`. Clients claim operation numbers from one
//! shared counter until `--total` are claimed, so every operation is sent
//! exactly once and no queue sits between a generator and the clients. Each
//! client keeps its own latencies (together at most `--total` of them) and
//! error counts; they are merged into a [`Summary`] when all have finished.
//! A request's latency is measured from just before it is sent (after any
//! `--rate` wait) to the arrival of its response.
//!
//! What a client does per operation is an [`Operations`] implementation:
//! [`KvOperations`] for the KV verbs, the lease verb's keep-alives, the watch
//! verbs' puts. An operation names the report section it belongs to
//! (`txn-mixed` splits reads from writes), and each section is summarised on
//! its own.
//!
//! A failed request is counted under its error message and the client goes
//! on: channels reconnect by themselves, so a server that restarts mid-run
//! shows up as errors, not as an aborted run.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use keel_proto::etcdserverpb::kv_client::KvClient;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use thiserror::Error;
use tonic::Status;
use tonic::transport::{Channel, Endpoint};

use crate::rate::Limiter;
use crate::report::Summary;
use crate::workload::{Request, Workload};

/// How often the progress bar is redrawn.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(200);

/// Width of the progress bar in characters.
const PROGRESS_WIDTH_CHARS: u64 = 50;

/// Settings shared by all verbs.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// `--endpoints`, each `host:port` or a full `http://host:port` URL.
    pub endpoints: Vec<String>,
    /// `--conns`: gRPC connections.
    pub conns: usize,
    /// `--clients`: concurrent clients.
    pub clients: usize,
    /// `--total`: operations to send.
    pub total: u64,
    /// `--rate`: operations per second over all clients; 0 is unlimited.
    pub rate_per_sec: u32,
    /// `--dial-timeout`: bound on establishing a connection.
    pub dial_timeout: Duration,
    /// `--request-timeout`: bound on one request; a request that runs over
    /// counts as an error.
    pub request_timeout: Duration,
    /// Whether to draw a progress bar on stdout.
    pub progress: bool,
    /// Seed of the clients' random key choices (client c uses `seed + c`).
    pub seed: u64,
}

/// Settings that prevent a run from starting.
#[derive(Debug, Error)]
pub enum RunError {
    /// No endpoint given.
    #[error("--endpoints is empty")]
    NoEndpoints,
    /// `--clients 0` or `--conns 0`.
    #[error("--{0} must be at least 1")]
    Zero(&'static str),
    /// An endpoint that is not a valid URI.
    #[error("invalid endpoint {endpoint:?}: {source}")]
    BadEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// Why tonic refused it.
        source: tonic::transport::Error,
    },
    /// A client task panicked.
    #[error("a client task failed: {0}")]
    Client(#[from] tokio::task::JoinError),
}

/// What one client measured.
#[derive(Debug, Default)]
struct ClientOutcome {
    latencies_secs: Vec<f64>,
    errors: BTreeMap<String, u64>,
}

impl ClientOutcome {
    fn merge(&mut self, other: ClientOutcome) {
        self.latencies_secs.extend(other.latencies_secs);
        for (message, count) in other.errors {
            *self.errors.entry(message).or_insert(0) += count;
        }
    }
}

/// `host:port` becomes `http://host:port`; a URL with a scheme is kept.
pub fn endpoint_url(endpoint: &str) -> String {
    if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    }
}

/// The message an error is counted under, in grpc-go's form so that Keel
/// and etcd runs can be compared line by line.
pub fn error_message(status: &Status) -> String {
    format!(
        "rpc error: code = {:?} desc = {}",
        status.code(),
        status.message()
    )
}

/// Sends one request and waits for its response.
async fn send(client: &mut KvClient<Channel>, request: Request) -> Result<(), Status> {
    match request {
        Request::Put(put) => client.put(put).await.map(drop),
        Request::Range(range) => client.range(range).await.map(drop),
        Request::Txn(txn) => client.txn(txn).await.map(drop),
    }
}

/// Checks the connection settings and opens `--conns` lazy channels, the
/// j-th to endpoint `j % endpoints` (a channel connects on first use and
/// reconnects by itself).
pub fn open_channels(config: &RunConfig) -> Result<Vec<Channel>, RunError> {
    if config.endpoints.is_empty() {
        return Err(RunError::NoEndpoints);
    }
    if config.clients == 0 {
        return Err(RunError::Zero("clients"));
    }
    if config.conns == 0 {
        return Err(RunError::Zero("conns"));
    }
    let mut channels = Vec::with_capacity(config.conns);
    for j in 0..config.conns {
        let endpoint = &config.endpoints[j % config.endpoints.len()];
        let channel = Endpoint::from_shared(endpoint_url(endpoint))
            .map_err(|source| RunError::BadEndpoint {
                endpoint: endpoint.clone(),
                source,
            })?
            .connect_timeout(config.dial_timeout)
            .timeout(config.request_timeout)
            .connect_with_connector_lazy(crate::connector::Connector);
        channels.push(channel);
    }
    Ok(channels)
}

/// The channel client (or watch stream) number `c` uses: `c % conns`.
pub fn channel_for(channels: &[Channel], c: usize) -> Channel {
    channels[c % channels.len()].clone()
}

/// What one client does for each operation it claims. The runner times
/// [`Operations::call`], so anything slow that is not the operation itself
/// belongs in [`Operations::prepare`], which runs before the clock starts.
pub trait Operations: Send + 'static {
    /// Readies the client (e.g. grants the lease it keeps alive). A failure
    /// is not fatal: `call` is expected to retry what `prepare` could not do.
    fn prepare(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Performs operation number `index` and says which section of the
    /// report it belongs to (below the `sections` given to [`run_clients`])
    /// and whether it succeeded.
    fn call(&mut self, index: u64) -> impl Future<Output = (usize, Result<(), Status>)> + Send;
}

/// The KV verbs' operations: one request of the workload per operation.
#[derive(Debug)]
pub struct KvOperations {
    client: KvClient<Channel>,
    workload: Arc<Workload>,
    rng: SmallRng,
}

impl Operations for KvOperations {
    async fn call(&mut self, index: u64) -> (usize, Result<(), Status>) {
        let request = self.workload.request(index, &mut self.rng);
        let section = self.workload.section_of(&request);
        (section, send(&mut self.client, request).await)
    }
}

/// Opens the channels, runs the KV `workload` to completion and summarises
/// each of its sections (see [`Workload::sections`]).
pub async fn run(config: &RunConfig, workload: Arc<Workload>) -> Result<Vec<Summary>, RunError> {
    let channels = open_channels(config)?;
    let sections = workload.sections().len();
    let (summaries, _) = run_clients(config, &channels, sections, |c| KvOperations {
        client: KvClient::new(channel_for(&channels, c)),
        workload: Arc::clone(&workload),
        rng: SmallRng::seed_from_u64(config.seed.wrapping_add(c as u64)),
    })
    .await?;
    Ok(summaries)
}

/// Runs `config.total` operations over `config.clients` clients built by
/// `make_client(c)`, under `config.rate_per_sec`, and summarises them per
/// section. Returns the summaries and the clients (so that a client can
/// hand back what it recorded).
pub async fn run_clients<C, F>(
    config: &RunConfig,
    channels: &[Channel],
    sections: usize,
    mut make_client: F,
) -> Result<(Vec<Summary>, Vec<C>), RunError>
where
    C: Operations,
    F: FnMut(usize) -> C,
{
    if config.clients == 0 {
        return Err(RunError::Zero("clients"));
    }
    assert!(!channels.is_empty(), "open_channels opens at least one");
    assert!(sections > 0, "a run reports at least one section");
    let mut prepared = Vec::with_capacity(config.clients);
    for c in 0..config.clients {
        let mut client = make_client(c);
        client.prepare().await;
        prepared.push(client);
    }

    let next_op = Arc::new(AtomicU64::new(0));
    let limiter = Arc::new(Limiter::new(config.rate_per_sec));
    let progress = Progress::start(config.progress, config.total);

    let started = Instant::now();
    let mut tasks = Vec::with_capacity(config.clients);
    for mut client in prepared {
        let next_op = Arc::clone(&next_op);
        let done_ops = progress.counter();
        let limiter = Arc::clone(&limiter);
        let total = config.total;
        tasks.push(tokio::spawn(async move {
            let mut outcomes: Vec<ClientOutcome> =
                (0..sections).map(|_| ClientOutcome::default()).collect();
            loop {
                let index = next_op.fetch_add(1, Ordering::Relaxed);
                if index >= total {
                    break;
                }
                limiter.wait().await;
                let sent = Instant::now();
                let (section, result) = client.call(index).await;
                assert!(
                    section < sections,
                    "operation {index} reported section {section} of {sections}"
                );
                let outcome = &mut outcomes[section];
                match result {
                    Ok(()) => outcome.latencies_secs.push(sent.elapsed().as_secs_f64()),
                    Err(status) => *outcome.errors.entry(error_message(&status)).or_insert(0) += 1,
                }
                done_ops.fetch_add(1, Ordering::Relaxed);
            }
            (outcomes, client)
        }));
    }

    let mut merged: Vec<ClientOutcome> = (0..sections).map(|_| ClientOutcome::default()).collect();
    let mut clients = Vec::with_capacity(config.clients);
    let mut joined = Ok(());
    for task in tasks {
        match task.await {
            Ok((outcomes, client)) => {
                for (into, outcome) in merged.iter_mut().zip(outcomes) {
                    into.merge(outcome);
                }
                clients.push(client);
            }
            Err(e) => joined = Err(e),
        }
    }
    let elapsed = started.elapsed();
    progress.finish().await?;
    joined?;
    let summaries: Vec<Summary> = merged
        .into_iter()
        .map(|outcome| Summary::new(outcome.latencies_secs, outcome.errors, elapsed))
        .collect();
    assert_eq!(
        summaries.iter().map(|s| s.requests + s.errors).sum::<u64>(),
        config.total,
        "every operation is counted once, as a success or an error"
    );
    Ok((summaries, clients))
}

/// A progress bar on stdout, or nothing when stdout is not a terminal.
#[derive(Debug)]
pub struct Progress {
    done: Arc<AtomicU64>,
    finished: Arc<AtomicBool>,
    drawer: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    /// Starts drawing `done / total` if `enabled`.
    pub fn start(enabled: bool, total: u64) -> Progress {
        let done = Arc::new(AtomicU64::new(0));
        let finished = Arc::new(AtomicBool::new(false));
        let drawer = enabled.then(|| {
            tokio::spawn(draw_progress(
                Arc::clone(&done),
                Arc::clone(&finished),
                total,
            ))
        });
        Progress {
            done,
            finished,
            drawer,
        }
    }

    /// The counter the workers advance.
    pub fn counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.done)
    }

    /// Draws the last state and ends the line.
    pub async fn finish(self) -> Result<(), tokio::task::JoinError> {
        self.finished.store(true, Ordering::Relaxed);
        match self.drawer {
            Some(drawer) => drawer.await,
            None => Ok(()),
        }
    }
}

/// Redraws `done/total` on stdout until `finished`, then ends the line.
async fn draw_progress(done_ops: Arc<AtomicU64>, finished: Arc<AtomicBool>, total: u64) {
    let mut ticker = tokio::time::interval(PROGRESS_INTERVAL);
    loop {
        ticker.tick().await;
        let last = finished.load(Ordering::Relaxed);
        let done = done_ops.load(Ordering::Relaxed).min(total);
        let filled = (done * PROGRESS_WIDTH_CHARS)
            .checked_div(total)
            .unwrap_or(PROGRESS_WIDTH_CHARS);
        let bar: String = (0..PROGRESS_WIDTH_CHARS)
            .map(|i| if i < filled { '=' } else { ' ' })
            .collect();
        let mut stdout = std::io::stdout().lock();
        // A progress bar that cannot be drawn is not worth failing the run.
        let _ = write!(stdout, "\r {done} / {total} [{bar}]");
        if last {
            let _ = writeln!(stdout);
        }
        let _ = stdout.flush();
        if last {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_without_scheme_get_http() {
        assert_eq!(endpoint_url("127.0.0.1:2379"), "http://127.0.0.1:2379");
        assert_eq!(endpoint_url("http://10.0.0.1:2379"), "http://10.0.0.1:2379");
        assert_eq!(endpoint_url("https://h:1"), "https://h:1");
    }

    #[test]
    fn errors_read_like_grpc_go() {
        let status = tonic::Status::unavailable("connection refused");
        assert_eq!(
            error_message(&status),
            "rpc error: code = Unavailable desc = connection refused"
        );
    }

    #[tokio::test]
    async fn unreachable_server_counts_every_request_as_an_error() {
        // Bind and drop a listener to get a loopback port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind an ephemeral loopback port")
            .port();
        let config = RunConfig {
            endpoints: vec![format!("127.0.0.1:{port}")],
            conns: 2,
            clients: 3,
            total: 20,
            rate_per_sec: 0,
            dial_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(2),
            progress: false,
            seed: 1,
        };
        let workload = Arc::new(Workload::range(
            b"k".to_vec(),
            None,
            crate::workload::Consistency::Linearizable,
            0,
        ));
        let summaries = run(&config, workload).await.expect("the run itself starts");
        assert_eq!(summaries.len(), 1, "range has one section");
        let summary = &summaries[0];
        assert_eq!(summary.requests, 0);
        assert_eq!(summary.errors, 20);
        assert!(
            summary
                .error_distribution
                .keys()
                .all(|m| m.starts_with("rpc error: code = ")),
            "{:?}",
            summary.error_distribution
        );
    }

    #[tokio::test]
    async fn zero_clients_or_conns_is_refused() {
        let mut config = RunConfig {
            endpoints: vec!["127.0.0.1:1".to_string()],
            conns: 1,
            clients: 0,
            total: 1,
            rate_per_sec: 0,
            dial_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(1),
            progress: false,
            seed: 1,
        };
        let workload = Arc::new(Workload::range(
            b"k".to_vec(),
            None,
            crate::workload::Consistency::Linearizable,
            0,
        ));
        assert!(matches!(
            run(&config, Arc::clone(&workload)).await,
            Err(RunError::Zero("clients"))
        ));
        config.clients = 1;
        config.conns = 0;
        assert!(matches!(
            run(&config, Arc::clone(&workload)).await,
            Err(RunError::Zero("conns"))
        ));
        config.conns = 1;
        config.endpoints.clear();
        assert!(matches!(
            run(&config, workload).await,
            Err(RunError::NoEndpoints)
        ));
    }
}
