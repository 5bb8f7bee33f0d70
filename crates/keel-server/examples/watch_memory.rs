//! Memory per idle watcher: the resident set of this process (one in-process member plus
//! the gRPC client) before and after creating N idle watchers (default 10,000) over 10
//! watch streams, each on its own key.
//!
//! `cargo run -p keel-server --profile ci --example watch_memory [N]`
//!
//! The figure includes the client's side of the streams; it is a measure, not a test.

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use keel_proto::etcdserverpb::{
    PutRequest, WatchCreateRequest, WatchRequest, kv_client::KvClient, watch_client::WatchClient,
    watch_request::RequestUnion,
};
use keel_server::{Server, ServerConfig};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

const STREAMS: usize = 10;

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .expect("local addr")
}

/// `VmRSS` from `/proc/self/status`, in bytes.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/self/status");
    kib * 1024
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let watchers: usize = std::env::args()
        .nth(1)
        .map_or(10_000, |n| n.parse().expect("N is a number"));
    let dir = tempfile::tempdir().expect("tempdir");
    let (client, peer) = (free_addr(), free_addr());
    let mut config = ServerConfig::single_member("mem", dir.path().join("mem"));
    config.listen_client_addrs = vec![client];
    config.advertise_client_urls = vec![format!("http://{client}").parse().expect("url")];
    config.listen_peer_addrs = vec![peer];
    let peer_url: url::Url = format!("http://{peer}").parse().expect("url");
    config.initial_advertise_peer_urls = vec![peer_url.clone()];
    config.initial_cluster[0].peer_url = peer_url;
    let server = Server::start(config).await.expect("start a member");
    let endpoint = format!("http://{client}");

    let mut kv = KvClient::connect(endpoint.clone()).await.expect("connect");
    let deadline = Instant::now() + Duration::from_secs(20);
    while kv
        .put(PutRequest {
            key: b"ready".to_vec(),
            ..PutRequest::default()
        })
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "no leader");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Settle allocations of the first requests before the baseline.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_bytes();

    let mut streams = Vec::new();
    for s in 0..STREAMS {
        let mut client = WatchClient::connect(endpoint.clone())
            .await
            .expect("connect");
        let (tx, rx) = mpsc::channel(256);
        let mut responses = client
            .watch(ReceiverStream::new(rx))
            .await
            .expect("watch")
            .into_inner();
        let mine: Vec<usize> = (s..watchers).step_by(STREAMS).collect();
        let sender = tx.clone();
        let keys = mine.clone();
        let sending = tokio::spawn(async move {
            for n in keys {
                let create = WatchCreateRequest {
                    key: format!("idle/{n:06}").into_bytes(),
                    ..WatchCreateRequest::default()
                };
                sender
                    .send(WatchRequest {
                        request_union: Some(RequestUnion::CreateRequest(create)),
                    })
                    .await
                    .expect("stream open");
            }
        });
        for _ in 0..mine.len() {
            let r = responses
                .message()
                .await
                .expect("watch response")
                .expect("stream open");
            assert!(r.created && !r.canceled, "{r:?}");
        }
        sending.await.expect("sender task");
        streams.push((tx, responses));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = rss_bytes();
    let per_watcher = after.saturating_sub(before) as f64 / watchers as f64;
    println!(
        "{watchers} idle watchers on {STREAMS} streams: RSS {:.1} MiB -> {:.1} MiB, {per_watcher:.0} bytes per watcher (server and client)",
        before as f64 / (1 << 20) as f64,
        after as f64 / (1 << 20) as f64,
    );
    drop(streams);
    server.shutdown().await.expect("clean shutdown");
}
