//! Process harness shared by the integration tests: clusters of real `keel` (or Debian's
//! `etcd`) processes on 127.0.0.1 ports allocated here, in temporary directories, and
//! Debian's `etcdctl` to talk to them.
//!
//! Every child is killed by its pid when its [`Cluster`] is dropped, including when a test
//! panics; every wait has a deadline.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::collections::HashSet;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Debian's etcd 3.4 server and client.
pub const ETCD: &str = "/usr/bin/etcd";
/// Debian's etcdctl 3.4.
pub const ETCDCTL: &str = "/usr/bin/etcdctl";

/// Which server a cluster runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Impl {
    /// The reference: Debian's etcd 3.4.
    Etcd,
    /// This crate's binary.
    Keel,
}

impl Impl {
    /// The executable.
    pub fn bin(self) -> &'static str {
        match self {
            Impl::Etcd => ETCD,
            Impl::Keel => env!("CARGO_BIN_EXE_keel"),
        }
    }
}

/// A 127.0.0.1 port for a member to bind: below the ephemeral range, and never handed
/// to two tests of this process (`keel_ports`).
pub fn free_port() -> u16 {
    keel_ports::free_ports(1)[0]
}

/// One member's name and ports.
#[derive(Clone, Debug)]
pub struct MemberSpec {
    /// `--name`.
    pub name: String,
    /// Client port on 127.0.0.1.
    pub client_port: u16,
    /// Peer port on 127.0.0.1.
    pub peer_port: u16,
}

/// `n` members named `infra1..` with fresh ports.
pub fn member_specs(n: usize) -> Vec<MemberSpec> {
    (1..=n)
        .map(|i| MemberSpec {
            name: format!("infra{i}"),
            client_port: free_port(),
            peer_port: free_port(),
        })
        .collect()
}

/// Output of a bounded child process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    /// Exit code, `None` when killed by a signal (or by the deadline).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Output {
    /// Whether the process exited 0.
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

/// Runs `command` with `stdin`, killing it if it runs past `timeout`.
pub fn run_bounded(mut command: Command, stdin: Option<&str>, timeout: Duration) -> Output {
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn a child process");
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("stdin was piped");
        // A child that exits without reading its input is judged by its output instead.
        let _ = pipe.write_all(text.as_bytes());
    }
    // Drain both pipes on threads so a chatty child cannot block on a full pipe.
    let mut stdout = child.stdout.take().expect("stdout was piped");
    let mut stderr = child.stderr.take().expect("stderr was piped");
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut text).map(|_| text)
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut text).map(|_| text)
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll the child") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Output {
        code: status.and_then(|s| s.code()),
        stdout: out.join().expect("stdout reader").unwrap_or_default(),
        stderr: err.join().expect("stderr reader").unwrap_or_default(),
    }
}

/// A command with no `ETCD*` variables inherited from the test's environment.
pub fn clean_command(program: &str) -> Command {
    let mut command = Command::new(program);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ETCD") {
            command.env_remove(&key);
        }
    }
    command
}

/// Runs Debian's `etcdctl` (API v3) against `endpoints`.
pub fn etcdctl(endpoints: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut command = clean_command(ETCDCTL);
    command
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .arg("--dial-timeout=2s")
        .arg("--command-timeout=5s")
        .args(args);
    run_bounded(command, stdin, Duration::from_secs(20))
}

/// Polls `check` every 50 ms until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A member process and its files.
pub struct Node {
    /// Name and ports.
    pub spec: MemberSpec,
    /// `--data-dir`.
    pub data_dir: PathBuf,
    /// Where its stdout and stderr go (appended across restarts).
    pub log_path: PathBuf,
    /// The running process, if any.
    pub child: Option<Child>,
}

/// A cluster of real processes; dropping it kills every one of them by pid.
pub struct Cluster {
    /// etcd or keel.
    pub imp: Impl,
    /// Holds the data dirs and logs.
    pub dir: tempfile::TempDir,
    /// The members, in `infra1..` order.
    pub nodes: Vec<Node>,
    /// Flags added to every member's command line.
    pub extra_args: Vec<String>,
}

impl Cluster {
    /// Starts `specs` as a new cluster of `imp` with `extra_args` on every member, and
    /// waits (bounded) until every member answers `endpoint health`.
    pub fn start(imp: Impl, specs: &[MemberSpec], extra_args: &[&str]) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix(match imp {
                Impl::Etcd => "etcd-test-",
                Impl::Keel => "keel-test-",
            })
            .tempdir()
            .expect("create a temp dir");
        let nodes = specs
            .iter()
            .map(|spec| Node {
                spec: spec.clone(),
                data_dir: dir.path().join(format!("{}.data", spec.name)),
                log_path: dir.path().join(format!("{}.log", spec.name)),
                child: None,
            })
            .collect();
        let mut cluster = Cluster {
            imp,
            dir,
            nodes,
            extra_args: extra_args.iter().map(|s| (*s).to_owned()).collect(),
        };
        for i in 0..cluster.nodes.len() {
            cluster.spawn(i);
        }
        cluster.wait_healthy(Duration::from_secs(30));
        cluster
    }

    /// etcd's `--initial-cluster` for this cluster.
    pub fn initial_cluster(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("{}=http://127.0.0.1:{}", n.spec.name, n.spec.peer_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The command line of member `i`: the same for etcd and keel.
    pub fn args(&self, i: usize) -> Vec<String> {
        let node = &self.nodes[i];
        let client = format!("http://127.0.0.1:{}", node.spec.client_port);
        let peer = format!("http://127.0.0.1:{}", node.spec.peer_port);
        let mut args = vec![
            format!("--name={}", node.spec.name),
            format!("--data-dir={}", node.data_dir.display()),
            format!("--listen-client-urls={client}"),
            format!("--advertise-client-urls={client}"),
            format!("--listen-peer-urls={peer}"),
            format!("--initial-advertise-peer-urls={peer}"),
            format!("--initial-cluster={}", self.initial_cluster()),
            "--initial-cluster-token=keel-test".to_owned(),
            "--initial-cluster-state=new".to_owned(),
        ];
        args.extend(self.extra_args.iter().cloned());
        args
    }

    /// Starts member `i` (again); its log is appended to.
    pub fn spawn(&mut self, i: usize) {
        assert!(
            self.nodes[i].child.is_none(),
            "member {i} is already running"
        );
        let args = self.args(i);
        let node = &mut self.nodes[i];
        let log = File::options()
            .create(true)
            .append(true)
            .open(&node.log_path)
            .expect("open the member's log");
        let mut command = clean_command(self.imp.bin());
        command
            .args(&args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log);
        node.child = Some(command.spawn().expect("spawn a member"));
    }

    /// The pid of member `i`, if running.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.nodes[i].child.as_ref().map(Child::id)
    }

    /// `kill -9` member `i` and reap it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM member `i`, wait up to `timeout` for it to exit, SIGKILL it otherwise.
    /// Returns its exit status (`None` when it had to be killed).
    pub fn terminate(&mut self, i: usize, timeout: Duration) -> Option<ExitStatus> {
        let mut child = self.nodes[i].child.take()?;
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {} failed", child.id());
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("poll member") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether member `i` has exited by itself; reaps it if so.
    pub fn exited(&mut self, i: usize) -> Option<ExitStatus> {
        let child = self.nodes[i].child.as_mut()?;
        let status = child.try_wait().expect("poll member")?;
        self.nodes[i].child = None;
        Some(status)
    }

    /// `127.0.0.1:port` of member `i`'s client URL.
    pub fn endpoint(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.nodes[i].spec.client_port)
    }

    /// Every member's client endpoint, comma-separated.
    pub fn endpoints(&self) -> String {
        (0..self.nodes.len())
            .map(|i| self.endpoint(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The running members.
    pub fn running(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].child.is_some())
            .collect()
    }

    /// Waits until every running member answers `endpoint health`; panics with the logs
    /// after `timeout`.
    pub fn wait_healthy(&mut self, timeout: Duration) {
        let running = self.running();
        let healthy = wait_for(timeout, || {
            for &i in &running {
                if let Some(status) = self.exited(i) {
                    panic!(
                        "{:?} member {i} exited during start-up with {status}\n{}",
                        self.imp,
                        self.logs()
                    );
                }
            }
            running
                .iter()
                .all(|&i| etcdctl(&self.endpoint(i), &["endpoint", "health"], None).ok())
                .then_some(())
        });
        if healthy.is_none() {
            panic!(
                "{:?} cluster not healthy within {timeout:?}\n{}",
                self.imp,
                self.logs()
            );
        }
    }

    /// The member ids and the leader id as `endpoint status -w json` reports them from
    /// member `i`: `(member_id, leader_id, raft_term)`.
    pub fn status(&self, i: usize) -> Option<(u64, u64, u64)> {
        let out = etcdctl(
            &self.endpoint(i),
            &["endpoint", "status", "-w", "json"],
            None,
        );
        if !out.ok() {
            return None;
        }
        let json: serde_json::Value = serde_json::from_str(&out.stdout).ok()?;
        let status = &json.get(0)?["Status"];
        Some((
            status["header"]["member_id"].as_u64()?,
            status["leader"].as_u64()?,
            status["raftTerm"].as_u64()?,
        ))
    }

    /// The index of the member every running member names as leader, once they agree.
    pub fn leader(&self, timeout: Duration) -> Option<usize> {
        wait_for(timeout, || {
            let mut ids = Vec::new();
            let mut leaders = HashSet::new();
            for i in self.running() {
                let (id, leader, _) = self.status(i)?;
                ids.push((i, id));
                leaders.insert(leader);
            }
            if leaders.len() != 1 {
                return None;
            }
            let leader = *leaders.iter().next().expect("one leader");
            ids.iter().find(|(_, id)| *id == leader).map(|(i, _)| *i)
        })
    }

    /// The last 40 lines of every member's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut text = String::new();
        for node in &self.nodes {
            text.push_str(&format!(
                "--- {} ({})\n",
                node.spec.name,
                node.log_path.display()
            ));
            text.push_str(&tail(&node.log_path, 40));
        }
        text
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

/// Replaces the digits that follow each `needle` by `N`.
pub fn mask_number_after(text: &str, needle: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(needle) {
        let (before, after) = rest.split_at(at + needle.len());
        out.push_str(before);
        let digits = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits > 0 {
            out.push('N');
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

/// `stderr` without etcdctl's own JSON-formatted client log lines (retry warnings
/// with timestamps), which differ from run to run.
pub fn without_client_logs(stderr: &str) -> String {
    stderr
        .lines()
        .filter(|line| !line.starts_with('{'))
        .map(|line| format!("{line}\n"))
        .collect()
}

/// The last `lines` lines of a file.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    let mut out = all[start..].join("\n");
    out.push('\n');
    out
}

/// Runs Debian's `etcdctl` with `ETCDCTL_API=2` against `endpoints` (full URLs).
pub fn etcdctl_v2(endpoints: &str, args: &[&str]) -> Output {
    let mut command = clean_command(ETCDCTL);
    command
        .env("ETCDCTL_API", "2")
        .arg(format!("--endpoints={endpoints}"))
        .args(args);
    run_bounded(command, None, Duration::from_secs(20))
}

/// Runs a never-ending `etcdctl` v2 command (`watch --forever`, `exec-watch`) until it
/// printed `lines` stdout lines (each awaited at most `timeout`), then kills it by pid.
/// Returns the lines, or panics with what arrived.
pub fn etcdctl_v2_lines(
    endpoints: &str,
    args: &[&str],
    lines: usize,
    timeout: Duration,
) -> Vec<String> {
    use std::io::BufRead;
    let mut command = clean_command(ETCDCTL);
    command
        .env("ETCDCTL_API", "2")
        .arg(format!("--endpoints={endpoints}"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = command.spawn().expect("spawn etcdctl");
    let stdout = child.stdout.take().expect("stdout was piped");
    let (tx, rx) = std::sync::mpsc::sync_channel(64);
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut got = Vec::new();
    for _ in 0..lines {
        match rx.recv_timeout(timeout) {
            Ok(line) => got.push(line),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("etcdctl {args:?}: no line within {timeout:?} ({e}); got {got:?}");
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    got
}

/// One HTTP/1.1 answer read off the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpAnswer {
    /// Status code.
    pub status: u16,
    /// Lower-cased header names and values, in wire order.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: String,
}

impl HttpAnswer {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP/1.1 request on `127.0.0.1:port` whose answer is read as it comes (a v2 watch).
pub struct HttpConn {
    reader: std::io::BufReader<std::net::TcpStream>,
    /// The answer's status and headers (the body is read with [`HttpConn::next_chunk`]).
    pub head: HttpAnswer,
}

impl HttpConn {
    /// Sends `method path` with `form` as an url-encoded body; reads status and headers.
    /// Every read waits at most `timeout`.
    pub fn open(
        addr: &str,
        method: &str,
        path: &str,
        form: &str,
        timeout: Duration,
    ) -> std::io::Result<HttpConn> {
        use std::io::BufRead;
        let stream = std::net::TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(timeout))?;
        let mut request =
            format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        if !form.is_empty() {
            request.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
            request.push_str(&format!("Content-Length: {}\r\n", form.len()));
        }
        request.push_str("\r\n");
        request.push_str(form);
        (&stream).write_all(request.as_bytes())?;
        let mut reader = std::io::BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
        let mut headers = Vec::new();
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                headers.push((k.to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        Ok(HttpConn {
            reader,
            head: HttpAnswer {
                status,
                headers,
                body: String::new(),
            },
        })
    }

    fn chunked(&self) -> bool {
        self.head.header("transfer-encoding") == Some("chunked")
    }

    /// The next chunk of a chunked body; `None` at its end.
    pub fn next_chunk(&mut self) -> std::io::Result<Option<String>> {
        use std::io::{BufRead, Read};
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let size = usize::from_str_radix(line.trim(), 16)
            .map_err(|e| std::io::Error::other(format!("chunk size {line:?}: {e}")))?;
        let mut buf = vec![0; size + 2];
        self.reader.read_exact(&mut buf)?;
        if size == 0 {
            return Ok(None);
        }
        buf.truncate(size);
        Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
    }

    /// Reads the whole answer.
    pub fn finish(mut self) -> std::io::Result<HttpAnswer> {
        use std::io::Read;
        let mut body = String::new();
        if self.chunked() {
            while let Some(c) = self.next_chunk()? {
                body.push_str(&c);
            }
        } else {
            self.reader.read_to_string(&mut body)?;
        }
        self.head.body = body;
        Ok(self.head)
    }
}

/// One whole HTTP/1.1 request and answer (10 s bound on each read).
pub fn http(addr: &str, method: &str, path: &str, form: &str) -> std::io::Result<HttpAnswer> {
    HttpConn::open(addr, method, path, form, Duration::from_secs(10))?.finish()
}
