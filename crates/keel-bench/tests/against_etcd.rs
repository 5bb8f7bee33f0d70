//! `keel-bench` against Debian's real etcd 3.4: one member on loopback ports
//! chosen by this test, data in a temp dir, the process killed by its pid at
//! the end (also when the test fails).
//!
//! Fails, saying what to install, when `/usr/bin/etcd` is absent.

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

const ETCD: &str = "/usr/bin/etcd";
const BENCH: &str = env!("CARGO_BIN_EXE_keel-bench");
/// Bound on etcd becoming ready to serve writes.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on one `keel-bench` run; it also has its own request timeout.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// A running etcd, killed (by pid, through its `Child`) when dropped.
struct Etcd {
    child: Child,
    client_url: String,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        // It may already have exited; either way it is reaped.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_loopback_port() -> u16 {
    keel_ports::free_ports(1)[0]
}

fn start_etcd(dir: &Path) -> Etcd {
    let client_url = format!("http://127.0.0.1:{}", free_loopback_port());
    let peer_url = format!("http://127.0.0.1:{}", free_loopback_port());
    let log = File::create(dir.join("etcd.log")).expect("create the etcd log file");
    let child = Command::new(ETCD)
        .arg("--name=bench")
        .arg(format!("--data-dir={}", dir.join("data").display()))
        .arg(format!("--listen-client-urls={client_url}"))
        .arg(format!("--advertise-client-urls={client_url}"))
        .arg(format!("--listen-peer-urls={peer_url}"))
        .arg(format!("--initial-advertise-peer-urls={peer_url}"))
        .arg(format!("--initial-cluster=bench={peer_url}"))
        .arg("--initial-cluster-state=new")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start etcd");
    Etcd { child, client_url }
}

/// Runs `keel-bench` with `args`, killing it if it outlives `RUN_TIMEOUT`.
fn bench(args: &[&str]) -> Output {
    let mut child = Command::new(BENCH)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start keel-bench");
    let deadline = Instant::now() + RUN_TIMEOUT;
    // The summary is small, so the pipes cannot fill before the exit.
    while child.try_wait().expect("poll keel-bench").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("keel-bench {args:?} ran longer than {RUN_TIMEOUT:?}");
        }
        sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("collect keel-bench output")
}

fn wait_until_ready(etcd: &mut Etcd, dir: &Path) {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(status) = etcd.child.try_wait().expect("poll etcd") {
            let log = std::fs::read_to_string(dir.join("etcd.log")).unwrap_or_default();
            panic!("etcd exited early with {status}:\n{log}");
        }
        let probe = bench(&[
            "--endpoints",
            &etcd.client_url,
            "--total=1",
            "--dial-timeout=1s",
            "--request-timeout=2s",
            "put",
        ]);
        if probe.status.success() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "etcd not ready after {READY_TIMEOUT:?}: {}",
            String::from_utf8_lossy(&probe.stderr)
        );
        sleep(Duration::from_millis(100));
    }
}

fn json_summary(output: &Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "keel-bench failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON object ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn assert_all_succeeded(summary: &serde_json::Value, total: u64) {
    assert_eq!(summary["requests"], total, "{summary}");
    assert_eq!(summary["errors"], 0, "{summary}");
    let histogram_total: u64 = summary["histogram"]
        .as_array()
        .expect("a histogram")
        .iter()
        .map(|bucket| bucket["count"].as_u64().expect("a count"))
        .sum();
    assert_eq!(histogram_total, total, "{summary}");
    assert!(summary["requests_per_sec"].as_f64().expect("a rate") > 0.0);
}

/// A fresh single-member etcd, ready for writes, and the temp dir holding it.
fn ready_etcd() -> (Etcd, tempfile::TempDir) {
    assert!(
        Path::new(ETCD).exists(),
        "{ETCD} is missing (scripts/install-deps installs etcd-server)"
    );
    let dir = tempfile::tempdir().expect("create a temp dir");
    let mut etcd = start_etcd(dir.path());
    wait_until_ready(&mut etcd, dir.path());
    (etcd, dir)
}

fn sum_of_counts(summary: &serde_json::Value) -> u64 {
    summary["histogram"]
        .as_array()
        .expect("a histogram")
        .iter()
        .map(|bucket| bucket["count"].as_u64().expect("a count"))
        .sum()
}

#[test]
fn put_range_and_txn_put_against_etcd() {
    let (etcd, _dir) = ready_etcd();
    let endpoints = etcd.client_url.clone();

    // put, etcd's text layout.
    let text = bench(&[
        "--endpoints",
        &endpoints,
        "put",
        "--total",
        "200",
        "--clients",
        "4",
        "--key-space-size",
        "1000",
    ]);
    assert!(
        text.status.success(),
        "{}",
        String::from_utf8_lossy(&text.stderr)
    );
    let text = String::from_utf8(text.stdout).expect("UTF-8 output");
    for section in [
        "\nSummary:\n  Total:\t",
        "\n  Requests/sec:\t",
        "\nResponse time histogram:\n",
        "\nLatency distribution:\n  10% in ",
        "\n  99.9% in ",
    ] {
        assert!(text.contains(section), "no {section:?} in:\n{text}");
    }
    assert!(!text.contains("Error distribution"), "{text}");
    let histogram_total: u64 = text
        .lines()
        .filter_map(|line| {
            let (_, rest) = line.split_once(" [")?;
            rest.split_once("]\t|")?.0.parse::<u64>().ok()
        })
        .sum();
    assert_eq!(histogram_total, 200, "{text}");

    // put, JSON, two connections shared by the four clients.
    let put = bench(&[
        "--endpoints",
        &endpoints,
        "--total=200",
        "--clients=4",
        "--conns=2",
        "--json",
        "put",
        "--sequential-keys",
        "--key-space-size=50",
        "--val-size=64",
    ]);
    assert_all_succeeded(&json_summary(&put), 200);

    // range, linearizable and serializable, over the keys just written
    // (keys 1..50 start with bytes 2..98: see the workload docs).
    for consistency in ["l", "s"] {
        let range = bench(&[
            "--endpoints",
            &endpoints,
            "--total=200",
            "--clients=4",
            "--json",
            "range",
            "\u{1}",
            "\u{7f}",
            "--consistency",
            consistency,
            "--limit=10",
        ]);
        assert_all_succeeded(&json_summary(&range), 200);
    }

    // txn-put, four distinct keys per transaction.
    let txn = bench(&[
        "--endpoints",
        &endpoints,
        "--total=100",
        "--clients=4",
        "--json",
        "txn-put",
        "--txn-ops=4",
        "--key-space-size=100",
    ]);
    assert_all_succeeded(&json_summary(&txn), 100);

    // A transaction putting one key twice is refused before anything is sent.
    let refused = bench(&["--endpoints", &endpoints, "txn-put", "--txn-ops=2"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("a txn may not put one key twice"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

#[test]
fn txn_mixed_and_lease_keepalive_against_etcd() {
    let (etcd, _dir) = ready_etcd();
    let endpoints = etcd.client_url.clone();

    // txn-mixed: reads and writes, reported apart, together --total.
    let mixed = bench(&[
        "--endpoints",
        &endpoints,
        "--total=300",
        "--clients=4",
        "--json",
        "txn-mixed",
        "--rw-ratio=2",
        "--key-space-size=100",
        "--limit=10",
    ]);
    let mixed = json_summary(&mixed);
    let reads = mixed["read"]["requests"].as_u64().expect("read requests");
    let writes = mixed["write"]["requests"].as_u64().expect("write requests");
    assert_eq!(reads + writes, 300, "{mixed}");
    assert!(reads > writes, "two reads per write: {mixed}");
    assert_eq!(mixed["read"]["errors"], 0, "{mixed}");
    assert_eq!(mixed["write"]["errors"], 0, "{mixed}");
    assert_eq!(sum_of_counts(&mixed["read"]), reads);

    // Its text layout: etcd's first line and one heading per section.
    let text = bench(&[
        "--endpoints",
        &endpoints,
        "--total=50",
        "txn-mixed",
        "--consistency=s",
        "--end-key=\u{7f}",
    ]);
    assert!(
        text.status.success(),
        "{}",
        String::from_utf8_lossy(&text.stderr)
    );
    let text = String::from_utf8(text.stdout).expect("UTF-8 output");
    assert!(
        text.starts_with("bench with serializable range\nTotal Read Ops: "),
        "{text}"
    );
    assert!(text.contains("\nTotal Write Ops: "), "{text}");
    assert_eq!(text.matches("\nSummary:\n").count(), 2, "{text}");

    // lease-keepalive: every round trip succeeds.
    let keepalive = bench(&[
        "--endpoints",
        &endpoints,
        "--total=200",
        "--clients=4",
        "--conns=2",
        "--json",
        "lease-keepalive",
    ]);
    assert_all_succeeded(&json_summary(&keepalive), 200);
}

#[test]
fn watch_and_watch_latency_against_etcd() {
    let (etcd, _dir) = ready_etcd();
    let endpoints = etcd.client_url.clone();

    // watch: 3 streams x 4 watchers on 2 keys, 10 puts alternating between
    // the keys: each put reaches the 6 watchers of its key.
    let watch = bench(&[
        "--endpoints",
        &endpoints,
        "--clients=2",
        "--json",
        "watch",
        "--streams=3",
        "--watch-per-stream=4",
        "--watched-key-total=2",
        "--key-space-size=2",
        "--sequential-keys",
        "--put-total=10",
    ]);
    let watch = json_summary(&watch);
    assert_eq!(watch["creation"]["requests"], 12, "{watch}");
    assert_eq!(watch["creation"]["errors"], 0, "{watch}");
    assert_eq!(watch["events"]["requests"], 60, "{watch}");
    assert_eq!(watch["events"]["errors"], 0, "{watch}");
    assert_eq!(sum_of_counts(&watch["events"]), 60);

    // watch-latency on a prefix with prev_kv: every watcher sees every put.
    let latency = bench(&[
        "--endpoints",
        &endpoints,
        "--conns=2",
        "--clients=2",
        "--json",
        "watch-latency",
        "--streams=4",
        "--watchers-per-stream=5",
        "--put-total=20",
        "--put-rate=200",
        "--prefix",
        "--prevkv",
    ]);
    let latency = json_summary(&latency);
    assert_all_succeeded(&latency["put"], 20);
    assert_all_succeeded(&latency["events"], 400);

    // Text layout, and the idle hold announced on stderr.
    let text = bench(&[
        "--endpoints",
        &endpoints,
        "watch",
        "--streams=2",
        "--watch-per-stream=2",
        "--put-total=3",
        "--idle-hold=100ms",
    ]);
    assert!(
        text.status.success(),
        "{}",
        String::from_utf8_lossy(&text.stderr)
    );
    assert!(
        String::from_utf8_lossy(&text.stderr).contains("holding 4 idle watchers for 100ms"),
        "{}",
        String::from_utf8_lossy(&text.stderr)
    );
    let text = String::from_utf8(text.stdout).expect("UTF-8 output");
    let creation = text
        .find("Watch creation summary:\n\nSummary:")
        .expect("creation heading");
    let events = text
        .find("Watch events received summary:\n\nSummary:")
        .expect("events heading");
    assert!(creation < events, "{text}");
}
