//! A cluster of real `keel` processes on 127.0.0.1, with a fault-injecting
//! proxy in front of every member's peer port whose faults are set per
//! directed link (see `proxy`): each member advertises its proxy's URL.
//!
//! Every process is started by this module and killed by its pid when the
//! [`Cluster`] is dropped (normal end, error, panic, or the run future being
//! cancelled on Ctrl-C): the cluster is the guard.
//!
//! Members built with keel's `failpoints` feature take failpoints over HTTP
//! on their client port ([`Cluster::set_failpoint`]); a member that crashed
//! on one (its process exited) is restarted by [`Cluster::heal`] like a
//! killed one. Environment variables for every member (`FAILPOINTS`,
//! `KEEL_PLANTED_BUG`) come from [`Cluster::start_with_env`] or are inherited
//! from the harness's own environment.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use keel_proto::etcdserverpb::StatusRequest;
use keel_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::task::JoinHandle;

use crate::RobustnessError;
use crate::proxy::{self, LinkFaults, Pids, ProxyHandle};

/// How long one status probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_millis(800);
/// How long one failpoint request may take.
const FAILPOINT_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest failpoint answer read.
const FAILPOINT_ANSWER_BYTES: u64 = 64 * 1024;

/// One member: its ports, files and process.
#[derive(Debug)]
pub struct Member {
    /// `--name`.
    pub name: String,
    /// Client port (not proxied: clients talk to members directly).
    pub client_port: u16,
    /// The member's real peer port, behind the proxies.
    pub peer_port: u16,
    /// `--data-dir`.
    pub data_dir: PathBuf,
    /// stdout and stderr, appended across restarts.
    pub log_path: PathBuf,
    child: Option<Child>,
    paused: bool,
}

impl Member {
    /// The member's client URL.
    pub fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }
}

/// The running cluster and its link proxies.
#[derive(Debug)]
pub struct Cluster {
    bin: PathBuf,
    members: Vec<Member>,
    /// The proxy in front of each member, by index.
    proxies: Vec<ProxyHandle>,
    /// Member pids, read by the proxies to tell senders apart.
    pids: Pids,
    proxy_tasks: Vec<JoinHandle<()>>,
    extra_args: Vec<String>,
    /// Set in every member's environment.
    env: Vec<(String, String)>,
}

/// A port for a member: [`keel_ports::free_port`], below the ephemeral range (a port
/// from `bind(0)` could be taken again as some connection's source port before the
/// member binds it).
fn free_port() -> Result<u16, RobustnessError> {
    keel_ports::free_port()
        .ok_or_else(|| RobustnessError::Cluster(format!("no free port in {:?}", keel_ports::PORTS)))
}

impl Cluster {
    /// Starts `n` members of `bin` with data under `dir` and waits (bounded)
    /// until they elected a leader and every link carried a connection.
    pub async fn start(
        bin: &Path,
        n: usize,
        dir: &Path,
        seed: u64,
        extra_args: &[String],
    ) -> Result<Cluster, RobustnessError> {
        Cluster::start_with_env(bin, n, dir, seed, extra_args, &[]).await
    }

    /// [`Cluster::start`] with `env` set in every member's environment.
    pub async fn start_with_env(
        bin: &Path,
        n: usize,
        dir: &Path,
        seed: u64,
        extra_args: &[String],
        env: &[(String, String)],
    ) -> Result<Cluster, RobustnessError> {
        assert!(n >= 1, "a cluster needs a member");
        let mut members = Vec::with_capacity(n);
        for i in 0..n {
            members.push(Member {
                name: format!("m{i}"),
                client_port: free_port()?,
                peer_port: free_port()?,
                data_dir: dir.join(format!("m{i}.data")),
                log_path: dir.join(format!("m{i}.log")),
                child: None,
                paused: false,
            });
        }
        let pids: Pids = std::sync::Arc::new(std::sync::Mutex::new(vec![None; n]));
        let mut proxies = Vec::with_capacity(n);
        let mut proxy_tasks = Vec::with_capacity(n);
        for (to, member) in members.iter().enumerate() {
            let (handle, listener) = proxy::bind(to, n, pids.clone())
                .await
                .map_err(|e| RobustnessError::Cluster(format!("binding a proxy: {e}")))?;
            let proxy_seed = seed ^ (to as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            proxy_tasks.push(tokio::spawn(proxy::run(
                handle.clone(),
                listener,
                member.peer_port,
                proxy_seed,
            )));
            proxies.push(handle);
        }
        let mut cluster = Cluster {
            bin: bin.to_owned(),
            members,
            proxies,
            pids,
            proxy_tasks,
            extra_args: extra_args.to_vec(),
            env: env.to_vec(),
        };
        for i in 0..n {
            cluster.spawn(i)?;
        }
        cluster.wait_for_leader(Duration::from_secs(30)).await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let idle: Vec<String> = (0..n)
                .flat_map(|from| (0..n).map(move |to| (from, to)))
                .filter(|&(from, to)| from != to && cluster.proxies[to].connections(from) == 0)
                .map(|(from, to)| format!("m{from}->m{to}"))
                .collect();
            if idle.is_empty() {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(RobustnessError::Cluster(format!(
                    "no connection identified on peer links {} (the proxies cannot tell senders apart)",
                    idle.join(", ")
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(cluster)
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the cluster has no member (never: `start` asserts one).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Member `i`.
    pub fn member(&self, i: usize) -> &Member {
        &self.members[i]
    }

    /// Every client URL, by member index.
    pub fn client_urls(&self) -> Vec<String> {
        self.members.iter().map(Member::client_url).collect()
    }

    /// The proxy in front of member `to`.
    pub fn proxy(&self, to: usize) -> &ProxyHandle {
        &self.proxies[to]
    }

    fn proxy_url(&self, to: usize) -> String {
        format!("http://127.0.0.1:{}", self.proxies[to].port)
    }

    fn initial_cluster(&self) -> String {
        (0..self.len())
            .map(|i| format!("{}={}", self.members[i].name, self.proxy_url(i)))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn args(&self, i: usize) -> Vec<String> {
        let m = &self.members[i];
        let mut args = vec![
            format!("--name={}", m.name),
            format!("--data-dir={}", m.data_dir.display()),
            format!("--listen-client-urls={}", m.client_url()),
            format!("--advertise-client-urls={}", m.client_url()),
            format!("--listen-peer-urls=http://127.0.0.1:{}", m.peer_port),
            format!("--initial-advertise-peer-urls={}", self.proxy_url(i)),
            format!("--initial-cluster={}", self.initial_cluster()),
            "--initial-cluster-token=keel-robustness".to_owned(),
            "--initial-cluster-state=new".to_owned(),
        ];
        args.extend(self.extra_args.iter().cloned());
        args
    }

    /// Replaces the extra environment of members started from now on (a
    /// restart with `FAILPOINTS` set, say).
    pub fn set_env(&mut self, env: &[(String, String)]) {
        self.env = env.to_vec();
    }

    /// Starts member `i` (again, after a kill).
    pub fn spawn(&mut self, i: usize) -> Result<(), RobustnessError> {
        assert!(
            self.members[i].child.is_none(),
            "member {i} is already running"
        );
        let args = self.args(i);
        let m = &mut self.members[i];
        let log = File::options()
            .create(true)
            .append(true)
            .open(&m.log_path)
            .map_err(|e| RobustnessError::io(&m.log_path, e))?;
        let log_err = log
            .try_clone()
            .map_err(|e| RobustnessError::io(&m.log_path, e))?;
        let mut command = Command::new(&self.bin);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ETCD") {
                command.env_remove(&key);
            }
        }
        let child = command
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| {
                RobustnessError::Cluster(format!("starting {}: {e}", self.bin.display()))
            })?;
        proxy::lock(&self.pids)[i] = Some(child.id());
        m.child = Some(child);
        m.paused = false;
        Ok(())
    }

    /// Whether member `i` has a process (running or paused).
    pub fn is_running(&self, i: usize) -> bool {
        self.members[i].child.is_some()
    }

    /// Whether member `i`'s process exited by itself (a crash the caller
    /// caused, such as a failpoint panic); an exited member is reaped and
    /// counts as killed, so [`Cluster::heal`] restarts it.
    pub fn exited(&mut self, i: usize) -> bool {
        let gone = self.exit_status(i).is_some();
        if gone {
            self.kill(i);
        }
        gone
    }

    /// How member `i`'s process ended, if it did (not reaped).
    fn exit_status(&mut self, i: usize) -> Option<String> {
        let child = self.members[i].child.as_mut()?;
        match child.try_wait() {
            Ok(None) => None,
            Ok(Some(status)) => Some(status.to_string()),
            Err(e) => Some(format!("unknown status: {e}")),
        }
    }

    /// Whether member `i` is stopped by SIGSTOP.
    pub fn is_paused(&self, i: usize) -> bool {
        self.members[i].paused
    }

    /// `kill -9` member `i` and reap it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            // Already exited is fine: the point is that it is gone.
            let _ = child.kill();
            let _ = child.wait();
        }
        proxy::lock(&self.pids)[i] = None;
        self.members[i].paused = false;
    }

    /// Sends `signal` (`STOP` or `CONT`) to member `i`.
    fn signal(&self, i: usize, signal: &str) -> Result<(), RobustnessError> {
        let Some(child) = &self.members[i].child else {
            return Ok(());
        };
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .map_err(|e| RobustnessError::Cluster(format!("running kill -{signal}: {e}")))?;
        if !status.success() {
            return Err(RobustnessError::Cluster(format!(
                "kill -{signal} {} failed",
                child.id()
            )));
        }
        Ok(())
    }

    /// SIGSTOP member `i`.
    pub fn pause(&mut self, i: usize) -> Result<(), RobustnessError> {
        self.signal(i, "STOP")?;
        self.members[i].paused = self.members[i].child.is_some();
        Ok(())
    }

    /// SIGCONT member `i`.
    pub fn resume(&mut self, i: usize) -> Result<(), RobustnessError> {
        self.signal(i, "CONT")?;
        self.members[i].paused = false;
        Ok(())
    }

    /// Sets the faults of the link `from → to`.
    pub fn set_link(&self, from: usize, to: usize, faults: LinkFaults) {
        self.proxies[to].set(from, faults);
    }

    /// Sets the same faults on every link.
    pub fn set_all_links(&self, faults: LinkFaults) {
        for to in 0..self.len() {
            for from in (0..self.len()).filter(|&from| from != to) {
                self.set_link(from, to, faults);
            }
        }
    }

    /// Blackholes every link between `a` and `b` in both directions.
    pub fn partition(&self, a: &[usize], b: &[usize]) {
        let blackhole = LinkFaults {
            blackhole: true,
            ..LinkFaults::default()
        };
        for &x in a {
            for &y in b {
                if x != y {
                    self.set_link(x, y, blackhole);
                    self.set_link(y, x, blackhole);
                }
            }
        }
    }

    /// Clears every link fault, resumes paused members and restarts killed
    /// ones. A member whose process exited without the harness causing it
    /// (see [`Cluster::exited`]) fails the heal: that is a server crash.
    pub fn heal(&mut self) -> Result<(), RobustnessError> {
        for proxy in &self.proxies {
            proxy.heal();
        }
        for i in 0..self.len() {
            if let Some(status) = self.exit_status(i) {
                return Err(RobustnessError::Cluster(format!(
                    "m{i} exited by itself ({status}); see {}",
                    self.members[i].log_path.display()
                )));
            }
        }
        for i in 0..self.len() {
            if self.members[i].paused {
                self.resume(i)?;
            }
            if self.members[i].child.is_none() {
                self.spawn(i)?;
            }
        }
        Ok(())
    }

    /// Sets failpoint `name` to `actions` (the `fail` crate's syntax) on member
    /// `i`, over `PUT /debug/failpoints/<name>`.
    pub async fn set_failpoint(
        &self,
        i: usize,
        name: &str,
        actions: &str,
    ) -> Result<(), RobustnessError> {
        self.failpoint_request(i, "PUT", name, actions).await
    }

    /// Clears failpoint `name` on member `i`.
    pub async fn clear_failpoint(&self, i: usize, name: &str) -> Result<(), RobustnessError> {
        self.failpoint_request(i, "DELETE", name, "").await
    }

    /// Whether member `i` serves `/debug/failpoints` (its binary was built
    /// with the `failpoints` feature).
    pub async fn has_failpoints(&self, i: usize) -> Result<bool, RobustnessError> {
        Ok(self.list_failpoints(i).await?.is_some())
    }

    /// Member `i`'s configured failpoints (`name=actions` lines), or `None`
    /// when it serves no `/debug/failpoints`.
    pub async fn list_failpoints(&self, i: usize) -> Result<Option<String>, RobustnessError> {
        let (status, body) =
            http_request(self.members[i].client_port, "GET", "/debug/failpoints", "")
                .await
                .map_err(|e| {
                    RobustnessError::Cluster(format!("GET /debug/failpoints on m{i}: {e}"))
                })?;
        Ok((status == 200).then_some(body))
    }

    async fn failpoint_request(
        &self,
        i: usize,
        method: &str,
        name: &str,
        body: &str,
    ) -> Result<(), RobustnessError> {
        let path = format!("/debug/failpoints/{name}");
        let (status, answer) = http_request(self.members[i].client_port, method, &path, body)
            .await
            .map_err(|e| RobustnessError::Cluster(format!("{method} {path} on m{i}: {e}")))?;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(RobustnessError::Cluster(format!(
                "{method} {path} on m{i}: HTTP {status} {} (is keel built with --features failpoints?)",
                answer.trim()
            )))
        }
    }

    /// Asks member `i` for its status: `(leader id, member id, revision)`.
    pub async fn status(&self, i: usize) -> Option<(u64, u64, i64)> {
        if !self.is_running(i) || self.is_paused(i) {
            return None;
        }
        let url = self.members[i].client_url();
        let probe = async move {
            let mut client = MaintenanceClient::connect(url).await.ok()?;
            let status = client.status(StatusRequest {}).await.ok()?.into_inner();
            let header = status.header?;
            Some((status.leader, header.member_id, header.revision))
        };
        tokio::time::timeout(PROBE_TIMEOUT, probe)
            .await
            .ok()
            .flatten()
    }

    /// The index of the member every answering member names as leader, if
    /// they agree and the leader itself answers.
    pub async fn leader(&self) -> Option<usize> {
        let mut ids = Vec::new();
        let mut leader = None;
        for i in 0..self.len() {
            if let Some((lead, me, _)) = self.status(i).await {
                ids.push((i, me));
                if lead == 0 || leader.is_some_and(|l| l != lead) {
                    return None;
                }
                leader = Some(lead);
            }
        }
        let leader = leader?;
        ids.into_iter()
            .find(|&(_, id)| id == leader)
            .map(|(i, _)| i)
    }

    /// Waits until a leader is agreed on, or fails after `timeout`.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<usize, RobustnessError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(leader) = self.leader().await {
                return Ok(leader);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(RobustnessError::Cluster(format!(
                    "no leader within {timeout:?} (member logs are kept)"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until every member answers status and names the same leader.
    pub async fn wait_healthy(&self, timeout: Duration) -> Result<(), RobustnessError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mut all = true;
            for i in 0..self.len() {
                all &= self.status(i).await.is_some();
            }
            if all && self.leader().await.is_some() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(RobustnessError::Cluster(format!(
                    "the cluster did not become healthy within {timeout:?} after healing"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// One HTTP/1.1 request to 127.0.0.1:`port`; returns the status code and
/// body. A member without failpoints answers every unknown path through its
/// gRPC fallback (HTTP 200 with a `grpc-status` header, no body), so such an
/// answer comes back as 404.
async fn http_request(
    port: u16,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, String), String> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| e.to_string())?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut answer = Vec::new();
        stream
            .take(FAILPOINT_ANSWER_BYTES)
            .read_to_end(&mut answer)
            .await
            .map_err(|e| e.to_string())?;
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let status = answer
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse::<u16>().ok())
            .ok_or_else(|| format!("not an HTTP answer: {answer:?}"))?;
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        let grpc = head
            .lines()
            .any(|line| line.to_ascii_lowercase().starts_with("grpc-status:"));
        Ok((if grpc { 404 } else { status }, body.to_owned()))
    };
    tokio::time::timeout(FAILPOINT_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("no answer within {FAILPOINT_TIMEOUT:?}"))?
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for task in &self.proxy_tasks {
            task.abort();
        }
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}
