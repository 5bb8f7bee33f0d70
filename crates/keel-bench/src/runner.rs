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
fn error_message(status: &tonic::Status) -> String {
    format!(
        "rpc error: code = {:?} desc = {}",
        status.code(),
        status.message()
    )
}

/// Sends one request and waits for its response.
async fn send(client: &mut KvClient<Channel>, request: Request) -> Result<(), tonic::Status> {
    match request {
        Request::Put(put) => client.put(put).await.map(drop),
        Request::Range(range) => client.range(range).await.map(drop),
        Request::Txn(txn) => client.txn(txn).await.map(drop),
    }
}

/// Opens the channels, runs `workload` to completion and summarises it.
pub async fn run(config: &RunConfig, workload: Arc<Workload>) -> Result<Summary, RunError> {
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
            .tcp_nodelay(true)
            .connect_lazy();
        channels.push(channel);
    }

    let next_op = Arc::new(AtomicU64::new(0));
    let done_ops = Arc::new(AtomicU64::new(0));
    let limiter = Arc::new(Limiter::new(config.rate_per_sec));
    let finished = Arc::new(AtomicBool::new(false));
    let progress = config.progress.then(|| {
        tokio::spawn(draw_progress(
            Arc::clone(&done_ops),
            Arc::clone(&finished),
            config.total,
        ))
    });

    let started = Instant::now();
    let mut clients = Vec::with_capacity(config.clients);
    for c in 0..config.clients {
        let mut client = KvClient::new(channels[c % channels.len()].clone());
        let workload = Arc::clone(&workload);
        let next_op = Arc::clone(&next_op);
        let done_ops = Arc::clone(&done_ops);
        let limiter = Arc::clone(&limiter);
        let total = config.total;
        let mut rng = SmallRng::seed_from_u64(config.seed.wrapping_add(c as u64));
        clients.push(tokio::spawn(async move {
            let mut outcome = ClientOutcome::default();
            loop {
                let index = next_op.fetch_add(1, Ordering::Relaxed);
                if index >= total {
                    break;
                }
                limiter.wait().await;
                let request = workload.request(index, &mut rng);
                let sent = Instant::now();
                match send(&mut client, request).await {
                    Ok(()) => outcome.latencies_secs.push(sent.elapsed().as_secs_f64()),
                    Err(status) => *outcome.errors.entry(error_message(&status)).or_insert(0) += 1,
                }
                done_ops.fetch_add(1, Ordering::Relaxed);
            }
            outcome
        }));
    }

    let mut latencies_secs = Vec::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut joined = Ok(());
    for client in clients {
        match client.await {
            Ok(outcome) => {
                latencies_secs.extend(outcome.latencies_secs);
                for (message, count) in outcome.errors {
                    *errors.entry(message).or_insert(0) += count;
                }
            }
            Err(e) => joined = Err(e),
        }
    }
    let elapsed = started.elapsed();
    finished.store(true, Ordering::Relaxed);
    if let Some(progress) = progress {
        progress.await?;
    }
    joined?;
    let summary = Summary::new(latencies_secs, errors, elapsed);
    assert_eq!(
        summary.requests + summary.errors,
        config.total,
        "every operation is counted once, as a success or an error"
    );
    Ok(summary)
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
        let summary = run(&config, workload).await.expect("the run itself starts");
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
