//! Debian's `etcdctl` (`ETCDCTL_API=2`) against the router served with the store test
//! double, and the same commands against a real etcd 3.4 (`/usr/bin/etcd --enable-v2`)
//! started by the test: every command's exit status, stdout and stderr must be equal.
//!
//! Normalisation: the member id, cluster id and URLs (random / free ports in etcd) are
//! replaced by placeholders in both outputs. Watches are made deterministic by starting
//! them with `--after-index` at a known store index, so they replay their events from the
//! history instead of racing the writes; `--forever` watches are killed by the test once
//! the expected number of lines has arrived (each read bounded by a timeout), and their
//! lines are compared sorted (exec-watch runs each event's command concurrently).

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const ETCD: &str = "/usr/bin/etcd";
const ETCDCTL: &str = "/usr/bin/etcdctl";

/// Kills and reaps the etcd child when the test ends, however it ends.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    keel_ports::free_ports(1)[0]
}

fn http_get_ok(addr: &str, path: &str) -> bool {
    use std::io::Write;
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.starts_with("HTTP/1.1 200")
}

struct RealEtcd {
    _child: ChildGuard,
    _dir: tempfile::TempDir,
    base: String,
    peer: String,
}

fn start_etcd() -> RealEtcd {
    let dir = tempfile::tempdir().expect("temp dir");
    let (cport, pport) = (free_port(), free_port());
    let base = format!("http://127.0.0.1:{cport}");
    let peer = format!("http://127.0.0.1:{pport}");
    let child = Command::new(ETCD)
        .args(["--enable-v2", "--name", common::MEMBER_NAME, "--data-dir"])
        .arg(dir.path())
        .args([
            "--listen-client-urls",
            &base,
            "--advertise-client-urls",
            &base,
        ])
        .args([
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
        ])
        .arg("--initial-cluster")
        .arg(format!("{}={peer}", common::MEMBER_NAME))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start etcd");
    let child = ChildGuard(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    let addr = base.trim_start_matches("http://").to_string();
    while !http_get_ok(&addr, "/v2/keys/") {
        assert!(Instant::now() < deadline, "etcd did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    RealEtcd {
        _child: child,
        _dir: dir,
        base,
        peer,
    }
}

enum Step {
    /// Run to completion.
    Run(&'static [&'static str]),
    /// Spawn, collect this many stdout lines, then kill (a `--forever` watch).
    Forever(&'static [&'static str], usize),
}

const STEPS: &[Step] = &[
    Step::Run(&["set", "/foo", "bar"]),
    Step::Run(&["get", "/foo"]),
    Step::Run(&["get", "/missing"]),
    Step::Run(&["mk", "/mk", "v1"]),
    Step::Run(&["mk", "/mk", "v2"]),
    Step::Run(&["mkdir", "/dir"]),
    Step::Run(&["mkdir", "/dir"]),
    Step::Run(&["set", "/dir/b", "2"]),
    Step::Run(&["set", "/dir/a", "1"]),
    Step::Run(&["set", "/dir/sub/c", "3"]),
    Step::Run(&["ls", "--sort"]),
    Step::Run(&["ls", "--sort", "/dir"]),
    Step::Run(&["ls", "--recursive", "--sort", "/"]),
    Step::Run(&["ls", "-p", "--sort", "/dir"]),
    Step::Run(&["update", "/foo", "baz"]),
    Step::Run(&["update", "/nokey", "x"]),
    Step::Run(&["updatedir", "/dir"]),
    Step::Run(&["set", "--ttl", "600", "/ttl", "t"]),
    Step::Run(&["set", "--swap-with-value", "wrong", "/foo", "x"]),
    Step::Run(&["set", "--swap-with-value", "baz", "/foo", "qux"]),
    Step::Run(&["set", "--swap-with-index", "1", "/foo", "x"]),
    Step::Run(&["set", "--swap-with-index", "13", "/foo", "idx"]),
    Step::Run(&["get", "/foo"]),
    Step::Run(&["-o", "json", "get", "/foo"]),
    Step::Run(&["-o", "extended", "get", "/dir/a"]),
    Step::Run(&["rm", "/dir"]),
    Step::Run(&["rm", "--dir", "/dir"]),
    Step::Run(&["mkdir", "/empty"]),
    Step::Run(&["rmdir", "/empty"]),
    Step::Run(&["rmdir", "/dir"]),
    Step::Run(&["rm", "--recursive", "/dir"]),
    Step::Run(&["rm", "/foo"]),
    Step::Run(&["set", "/w/x", "1"]),
    Step::Run(&["set", "/w/y/z", "2"]),
    Step::Run(&["rm", "/w/x"]),
    Step::Run(&["watch", "--after-index", "17", "/w/x"]),
    Step::Forever(
        &[
            "watch",
            "--recursive",
            "--forever",
            "--after-index",
            "17",
            "/w",
        ],
        3,
    ),
    Step::Forever(
        &[
            "exec-watch",
            "--after-index",
            "17",
            "--recursive",
            "/w",
            "--",
            "sh",
            "-c",
            "echo $ETCD_WATCH_ACTION $ETCD_WATCH_KEY $ETCD_WATCH_VALUE",
        ],
        3,
    ),
    Step::Run(&["member", "list"]),
    Step::Run(&["cluster-health"]),
];

/// etcdctl under coreutils' `timeout`, so a command that hangs fails the test instead.
fn etcdctl(base: &str, args: &[&str]) -> Command {
    let mut c = Command::new("timeout");
    c.arg("20").arg(ETCDCTL);
    with_args(c, base, args)
}

/// etcdctl itself (a `--forever` watch, killed by the test).
fn etcdctl_forever(base: &str, args: &[&str]) -> Command {
    with_args(Command::new(ETCDCTL), base, args)
}

fn with_args(mut c: Command, base: &str, args: &[&str]) -> Command {
    c.env("ETCDCTL_API", "2")
        .arg("--endpoints")
        .arg(base)
        .args(args)
        .stdin(Stdio::null());
    c
}

fn run_step(base: &str, step: &Step) -> String {
    match step {
        Step::Run(args) => {
            let out = etcdctl(base, args).output().expect("etcdctl runs");
            format!(
                "$ {}\nstatus {:?}\n{}{}",
                args.join(" "),
                out.status.code(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        }
        Step::Forever(args, lines) => {
            let mut child = ChildGuard(
                etcdctl_forever(base, args)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("etcdctl starts"),
            );
            let stdout = child.0.stdout.take().expect("piped stdout");
            let (tx, rx) = mpsc::sync_channel(64);
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            let mut out = format!("$ {}\n", args.join(" "));
            let mut got = Vec::new();
            for _ in 0..*lines {
                let line = rx.recv_timeout(common::TIMEOUT).unwrap_or_else(|e| {
                    panic!("{base}: no watch line in time ({e}) after:\n{out}")
                });
                got.push(line);
            }
            // exec-watch runs each event's command in its own goroutine, so its lines
            // arrive in any order.
            got.sort();
            out.push_str(&got.join("\n"));
            out
        }
    }
}

fn normalise(s: &str, base: &str, peer: &str, member_id: &str) -> String {
    s.replace(base, "<CLIENT_URL>")
        .replace(peer, "<PEER_URL>")
        .replace(member_id, "<MEMBER_ID>")
}

fn member_id(base: &str) -> String {
    let out = etcdctl(base, &["member", "list"])
        .output()
        .expect("etcdctl member list");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.split(':').next().expect("an id").trim().to_string()
}

async fn health() -> axum::response::Response {
    keel_v2http::reply::json(200, r#"{"health":"true"}"#)
}

#[test]
fn etcdctl_v2_prints_the_same_against_keel_and_etcd() {
    let etcd = start_etcd();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // cluster-health asks each member's /health: the double serves it for this test only.
    let extra = axum::Router::new().route("/health", axum::routing::get(health));
    let (_backend, keel) = rt.block_on(common::start_with(extra));
    let etcd_id = member_id(&etcd.base);
    let keel_id = format!("{:x}", common::MEMBER_ID);
    for step in STEPS {
        let want = normalise(
            &run_step(&etcd.base, step),
            &etcd.base,
            &etcd.peer,
            &etcd_id,
        );
        let got = normalise(&run_step(&keel, step), &keel, common::PEER_URL, &keel_id);
        assert_eq!(got, want);
    }
}
