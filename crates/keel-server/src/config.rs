//! The server's settings, one field per etcd flag it honours, with etcd's defaults.
//!
//! Every limit lives here with its unit in its name. The `keel` binary fills this from
//! flags and environment; tests fill it directly.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

/// etcd's `--heartbeat-interval` default.
pub const DEFAULT_HEARTBEAT_INTERVAL_MS: u64 = 100;
/// etcd's `--election-timeout` default.
pub const DEFAULT_ELECTION_TIMEOUT_MS: u64 = 1000;
/// etcd 3.4's `--snapshot-count` default.
pub const DEFAULT_SNAPSHOT_COUNT: u64 = 100_000;
/// etcd's `--max-request-bytes` default (1.5 MiB).
pub const DEFAULT_MAX_REQUEST_BYTES: u64 = 1536 * 1024;
/// etcd's `--max-txn-ops` default.
pub const DEFAULT_MAX_TXN_OPS: u64 = 128;
/// etcd's backend quota when `--quota-backend-bytes` is 0 (2 GiB).
pub const DEFAULT_QUOTA_BACKEND_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// etcd's `--experimental-watch-progress-notify-interval` default (10 minutes).
pub const DEFAULT_WATCH_PROGRESS_NOTIFY_INTERVAL: Duration = Duration::from_secs(600);
/// The shortest progress notification interval etcd honours; shorter ones are raised
/// to it with a warning.
pub const MIN_WATCH_PROGRESS_NOTIFY_INTERVAL: Duration = Duration::from_millis(100);

/// etcd's upper bound on `--election-timeout`.
pub const MAX_ELECTION_TIMEOUT_MS: u64 = 50_000;

/// `--initial-cluster-state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterState {
    /// Bootstrap a new cluster from `--initial-cluster`.
    New,
    /// Join a cluster that already exists (this member was added with `member add`).
    Existing,
}

/// One `name=peer-url` pair of `--initial-cluster`. A name may appear several times, once
/// per peer URL, as in etcd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitialMember {
    /// The member's `--name`.
    pub name: String,
    /// One of its advertised peer URLs.
    pub peer_url: Url,
}

/// Everything the server needs to start.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// `--name`: this member's human-readable name.
    pub name: String,
    /// `--data-dir`: holds `member/wal`, `member/snap` and `member/snap/db`.
    pub data_dir: PathBuf,
    /// `--wal-dir`: puts the WAL somewhere else than `data_dir/member/wal`.
    pub wal_dir: Option<PathBuf>,
    /// `--listen-client-urls`, resolved to socket addresses (etcd requires IPs here).
    pub listen_client_addrs: Vec<SocketAddr>,
    /// `--advertise-client-urls`.
    pub advertise_client_urls: Vec<Url>,
    /// `--listen-peer-urls`, resolved to socket addresses.
    pub listen_peer_addrs: Vec<SocketAddr>,
    /// `--initial-advertise-peer-urls`.
    pub initial_advertise_peer_urls: Vec<Url>,
    /// `--initial-cluster`.
    pub initial_cluster: Vec<InitialMember>,
    /// `--initial-cluster-state`.
    pub initial_cluster_state: ClusterState,
    /// `--initial-cluster-token`.
    pub initial_cluster_token: String,
    /// `--heartbeat-interval`, milliseconds; one Raft tick.
    pub heartbeat_interval_ms: u64,
    /// `--election-timeout`, milliseconds.
    pub election_timeout_ms: u64,
    /// `--snapshot-count`: applied entries between two Raft snapshots.
    pub snapshot_count: u64,
    /// `--max-request-bytes`: the largest client request accepted.
    pub max_request_bytes: u64,
    /// `--max-txn-ops`: the most operations in one transaction.
    pub max_txn_ops: u64,
    /// `--quota-backend-bytes`: the backend size at which writes raise a NOSPACE alarm;
    /// 0 means [`DEFAULT_QUOTA_BACKEND_BYTES`].
    pub quota_backend_bytes: u64,
    /// `--enable-v2`: serve the v2 keys API (`/v2/...`) on the client port. Keel's default
    /// is `true` (etcd 3.4's is `false`); with `false`, `/v2/...` answers 404 as etcd does.
    pub enable_v2: bool,
    /// `--experimental-watch-progress-notify-interval`: how often a watcher created with
    /// `progress_notify` gets an empty response carrying the current revision. Zero means
    /// [`DEFAULT_WATCH_PROGRESS_NOTIFY_INTERVAL`]; below
    /// [`MIN_WATCH_PROGRESS_NOTIFY_INTERVAL`] is raised to it, as etcd does.
    pub watch_progress_notify_interval: Duration,
}

/// A setting that cannot work; the message is etcd's where etcd has one.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// Anything wrong with the combination of settings.
    #[error("{0}")]
    Invalid(String),
}

impl ServerConfig {
    /// etcd's defaults for a single member named `default` with its data in `data_dir`,
    /// listening on 127.0.0.1:2379 (clients) and 127.0.0.1:2380 (peers).
    pub fn single_member(name: &str, data_dir: PathBuf) -> ServerConfig {
        let client: Url = "http://localhost:2379"
            .parse()
            .expect("a literal URL parses");
        let peer: Url = "http://localhost:2380"
            .parse()
            .expect("a literal URL parses");
        ServerConfig {
            name: name.to_owned(),
            data_dir,
            wal_dir: None,
            listen_client_addrs: vec![SocketAddr::from(([127, 0, 0, 1], 2379))],
            advertise_client_urls: vec![client],
            listen_peer_addrs: vec![SocketAddr::from(([127, 0, 0, 1], 2380))],
            initial_advertise_peer_urls: vec![peer.clone()],
            initial_cluster: vec![InitialMember {
                name: name.to_owned(),
                peer_url: peer,
            }],
            initial_cluster_state: ClusterState::New,
            initial_cluster_token: "etcd-cluster".to_owned(),
            heartbeat_interval_ms: DEFAULT_HEARTBEAT_INTERVAL_MS,
            election_timeout_ms: DEFAULT_ELECTION_TIMEOUT_MS,
            snapshot_count: DEFAULT_SNAPSHOT_COUNT,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            max_txn_ops: DEFAULT_MAX_TXN_OPS,
            quota_backend_bytes: 0,
            enable_v2: true,
            watch_progress_notify_interval: DEFAULT_WATCH_PROGRESS_NOTIFY_INTERVAL,
        }
    }

    /// Checks the settings against each other, with etcd's messages.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.heartbeat_interval_ms == 0 {
            return Err(ConfigError::Invalid(format!(
                "--heartbeat-interval must be >0 (set to {}ms)",
                self.heartbeat_interval_ms
            )));
        }
        if self.election_timeout_ms == 0 {
            return Err(ConfigError::Invalid(format!(
                "--election-timeout must be >0 (set to {}ms)",
                self.election_timeout_ms
            )));
        }
        if 5 * self.heartbeat_interval_ms > self.election_timeout_ms {
            return Err(ConfigError::Invalid(format!(
                "--election-timeout[{}ms] should be at least as 5 times as --heartbeat-interval[{}ms]",
                self.election_timeout_ms, self.heartbeat_interval_ms
            )));
        }
        if self.election_timeout_ms > MAX_ELECTION_TIMEOUT_MS {
            return Err(ConfigError::Invalid(format!(
                "--election-timeout[{}ms] is too long, and should be set less than {}ms",
                self.election_timeout_ms, MAX_ELECTION_TIMEOUT_MS
            )));
        }
        if !self
            .initial_cluster
            .iter()
            .any(|member| member.name == self.name)
        {
            return Err(ConfigError::Invalid(format!(
                "couldn't find local name {:?} in the initial cluster configuration",
                self.name
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        ServerConfig::single_member("default", PathBuf::from("default.keel"))
            .validate()
            .expect("etcd's defaults are valid");
    }

    #[test]
    fn election_timeout_must_cover_five_heartbeats() {
        let mut config = ServerConfig::single_member("default", PathBuf::from("d"));
        config.election_timeout_ms = 400;
        assert_eq!(
            config.validate(),
            Err(ConfigError::Invalid(
                "--election-timeout[400ms] should be at least as 5 times as --heartbeat-interval[100ms]"
                    .to_owned()
            ))
        );
    }

    #[test]
    fn local_name_must_be_in_initial_cluster() {
        let mut config = ServerConfig::single_member("default", PathBuf::from("d"));
        config.name = "other".to_owned();
        assert!(config.validate().is_err());
    }
}
