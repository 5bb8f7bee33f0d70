//! In-process clusters on 127.0.0.1 for the integration tests.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use keel_proto::etcdserverpb::{
    PutRequest, RangeRequest, StatusRequest, kv_client::KvClient,
    maintenance_client::MaintenanceClient,
};
use keel_server::{InitialMember, Server, ServerConfig, ServerError};
use tonic::transport::Channel;

/// Upper bound on any wait in these tests.
pub const WAIT: Duration = Duration::from_secs(20);

/// Ports for the servers to bind (the initial cluster needs the peer ports before any
/// member starts): below the ephemeral range, never handed out twice (`keel_ports`).
pub fn free_addrs(n: usize) -> Vec<SocketAddr> {
    keel_ports::free_ports(n)
        .into_iter()
        .map(|port| SocketAddr::from(([127, 0, 0, 1], port)))
        .collect()
}

/// Configs of an `n`-member cluster with fast timers, data under `root`.
pub fn cluster_configs(root: &std::path::Path, n: usize) -> Vec<ServerConfig> {
    let peers = free_addrs(n);
    let clients = free_addrs(n);
    let initial: Vec<InitialMember> = (0..n)
        .map(|i| InitialMember {
            name: format!("m{i}"),
            peer_url: format!("http://{}", peers[i]).parse().expect("url"),
        })
        .collect();
    (0..n)
        .map(|i| {
            let mut c = ServerConfig::single_member(&format!("m{i}"), root.join(format!("m{i}")));
            c.listen_client_addrs = vec![clients[i]];
            c.advertise_client_urls = vec![format!("http://{}", clients[i]).parse().expect("url")];
            c.listen_peer_addrs = vec![peers[i]];
            c.initial_advertise_peer_urls = vec![initial[i].peer_url.clone()];
            c.initial_cluster = initial.clone();
            c.initial_cluster_token = "keel-test".to_owned();
            c.heartbeat_interval_ms = 20;
            c.election_timeout_ms = 200;
            c
        })
        .collect()
}

/// A cluster whose members may be stopped and restarted.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub configs: Vec<ServerConfig>,
    pub servers: Vec<Option<Server>>,
}

impl Cluster {
    pub async fn start(n: usize) -> Cluster {
        Cluster::start_with(n, |_| {}).await
    }

    /// Starts `n` members. The ports are picked before any member binds them, so another
    /// socket (an outgoing connection's ephemeral port) may take one meanwhile: then the
    /// cluster is started again on fresh ports.
    pub async fn start_with(n: usize, tweak: impl Fn(&mut ServerConfig)) -> Cluster {
        const ATTEMPTS: usize = 5;
        for attempt in 1..=ATTEMPTS {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut configs = cluster_configs(dir.path(), n);
            for c in &mut configs {
                tweak(c);
            }
            let mut servers = Vec::new();
            let mut port_taken = false;
            for c in &configs {
                match Server::start(c.clone()).await {
                    Ok(s) => servers.push(Some(s)),
                    Err(ServerError::Bind { addr, source }) if attempt < ATTEMPTS => {
                        eprintln!("port {addr} was taken ({source}); starting again");
                        port_taken = true;
                        break;
                    }
                    Err(e) => panic!("start member: {e}"),
                }
            }
            if port_taken {
                for s in servers.into_iter().flatten() {
                    s.shutdown().await.expect("clean shutdown");
                }
                continue;
            }
            return Cluster {
                dir,
                configs,
                servers,
            };
        }
        unreachable!("the last attempt either returns or panics")
    }

    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.configs[i].data_dir.clone()
    }

    pub fn endpoint(&self, i: usize) -> String {
        format!("http://{}", self.configs[i].listen_client_addrs[0])
    }

    pub async fn kv(&self, i: usize) -> KvClient<Channel> {
        KvClient::connect(self.endpoint(i)).await.expect("connect")
    }

    pub async fn maintenance(&self, i: usize) -> MaintenanceClient<Channel> {
        MaintenanceClient::connect(self.endpoint(i))
            .await
            .expect("connect")
    }

    pub async fn stop(&mut self, i: usize) {
        let server = self.servers[i].take().expect("member is running");
        server.shutdown().await.expect("clean shutdown");
    }

    pub async fn restart(&mut self, i: usize) {
        assert!(self.servers[i].is_none(), "member {i} is running");
        self.servers[i] = Some(
            Server::start(self.configs[i].clone())
                .await
                .expect("restart member"),
        );
    }

    pub fn member_id(&self, i: usize) -> u64 {
        self.servers[i].as_ref().expect("running").member_id()
    }

    /// Waits until every running member reports the same leader; returns its index.
    pub async fn wait_leader(&self) -> usize {
        let deadline = Instant::now() + WAIT;
        loop {
            let mut leaders = Vec::new();
            for (i, s) in self.servers.iter().enumerate() {
                if s.is_none() {
                    continue;
                }
                let leader = match self.maintenance(i).await.status(StatusRequest {}).await {
                    Ok(r) => r.into_inner().leader,
                    Err(_) => 0,
                };
                leaders.push(leader);
            }
            let first = leaders[0];
            let agreed = first != 0 && leaders.iter().all(|l| *l == first);
            let leader = (0..self.servers.len()).find(|&i| {
                self.servers[i]
                    .as_ref()
                    .is_some_and(|s| s.member_id() == first)
            });
            if let (true, Some(i)) = (agreed, leader) {
                return i;
            }
            assert!(
                Instant::now() < deadline,
                "no agreed leader within {WAIT:?}: {leaders:x?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn shutdown(mut self) {
        for i in 0..self.servers.len() {
            if self.servers[i].is_some() {
                self.stop(i).await;
            }
        }
    }
}

pub fn put(key: &str, value: &str) -> PutRequest {
    PutRequest {
        key: key.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
        ..PutRequest::default()
    }
}

pub fn get(key: &str) -> RangeRequest {
    RangeRequest {
        key: key.as_bytes().to_vec(),
        ..RangeRequest::default()
    }
}

pub fn serializable_get(key: &str) -> RangeRequest {
    RangeRequest {
        serializable: true,
        ..get(key)
    }
}

/// Retries `put` on member `i` until it succeeds (while a leader is elected).
pub async fn put_retrying(c: &Cluster, i: usize, key: &str, value: &str) -> i64 {
    let deadline = Instant::now() + WAIT;
    loop {
        let mut kv = c.kv(i).await;
        match kv.put(put(key, value)).await {
            Ok(r) => return r.into_inner().header.expect("header").revision,
            Err(status) => {
                assert!(Instant::now() < deadline, "put kept failing: {status}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Polls a serializable read on member `i` until `key` has `value`.
pub async fn wait_value(c: &Cluster, i: usize, key: &str, value: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let seen = match c.kv(i).await.range(serializable_get(key)).await {
            Ok(r) => r.into_inner().kvs.first().map(|kv| kv.value.clone()),
            Err(_) => None,
        };
        if seen.as_deref() == Some(value.as_bytes()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "member {i} never saw {key}={value}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A plain HTTP/1.1 GET on `addr`: (status code, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}
