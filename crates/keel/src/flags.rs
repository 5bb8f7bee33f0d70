//! etcd 3.4's command line, read the way etcd reads it.
//!
//! The table [`FLAGS`] lists every flag etcd 3.4 registers (etcdmain/config.go), in the
//! sections of its help text. Keel honours some of them; every other one is recognised and
//! rejected with `keel: flag --X is not supported yet`, so a setting is never dropped
//! silently. The handful of pre-v2 flags etcd itself ignores are ignored with etcd's warning.
//!
//! Parsing follows Go's `flag` package, which etcd uses: `-flag`, `--flag`, `-flag=value`,
//! `-flag value` (a value-taking flag consumes the next argument whatever it looks like),
//! boolean flags take a value only in the `=` form, `--` ends the flags, the last occurrence
//! of a flag wins. Then, as etcd's `SetFlagsFromEnv`, every flag not given on the command
//! line is read from its `ETCD_*` variable (upper case, dashes to underscores) when that is
//! non-empty. A variable that names a flag also given on the command line is the error etcd
//! 3.4 makes fatal ("conflicting environment variable ... is shadowed ..."); an `ETCD_*`
//! variable that names no flag is warned about.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use keel_server::{ClusterState, InitialMember, ServerConfig};
use url::Url;

/// Whether a flag takes a value (`--name x`) or is a switch (`--auto-tls`, `--auto-tls=false`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Takes a value, given as `=value` or as the next argument.
    Value,
    /// Go's boolean flag: bare means true; a value only with `=`.
    Bool,
}

/// What Keel does with a flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Support {
    /// Honoured.
    Supported,
    /// Recognised, refused with "not supported yet".
    Unsupported,
    /// Accepted and ignored with a warning, as etcd does (flags of etcd before v2).
    Ignored,
}

/// One flag of etcd 3.4.
#[derive(Clone, Copy, Debug)]
pub struct FlagSpec {
    /// The name without dashes.
    pub name: &'static str,
    /// The help section it is listed under.
    pub section: &'static str,
    /// etcd's default, as its help shows it.
    pub default: &'static str,
    /// What it does, as etcd's help says.
    pub help: &'static str,
    /// Value or switch.
    pub kind: Kind,
    /// What Keel does with it.
    pub support: Support,
}

const fn flag(
    section: &'static str,
    name: &'static str,
    default: &'static str,
    kind: Kind,
    support: Support,
    help: &'static str,
) -> FlagSpec {
    FlagSpec {
        name,
        section,
        default,
        help,
        kind,
        support,
    }
}

use Kind::{Bool, Value};
use Support::{Ignored, Supported, Unsupported};

const MEMBER: &str = "Member";
const CLUSTERING: &str = "Clustering";
const SECURITY: &str = "Security";
const AUTH: &str = "Auth";
const PROFILING: &str = "Profiling and Monitoring";
const LOGGING: &str = "Logging";
const PROXY: &str = "v2 Proxy (to be deprecated in v4)";
const EXPERIMENTAL: &str = "Experimental feature";
const UNSAFE: &str = "Unsafe feature";
const DEPRECATED: &str = "TO BE DEPRECATED";
const OTHER: &str = "Other";
/// Flags etcd accepts only to ignore them; not listed in the help.
const IGNORED: &str = "Ignored";

/// Every flag etcd 3.4 defines, in its help's order, then the ones its help leaves out.
#[rustfmt::skip]
pub const FLAGS: &[FlagSpec] = &[
    flag(MEMBER, "name", "default", Value, Supported, "Human-readable name for this member."),
    flag(MEMBER, "data-dir", "${name}.keel", Value, Supported, "Path to the data directory."),
    flag(MEMBER, "wal-dir", "", Value, Supported, "Path to the dedicated wal directory."),
    flag(MEMBER, "snapshot-count", "100000", Value, Supported, "Number of committed transactions to trigger a snapshot to disk."),
    flag(MEMBER, "heartbeat-interval", "100", Value, Supported, "Time (in milliseconds) of a heartbeat interval."),
    flag(MEMBER, "election-timeout", "1000", Value, Supported, "Time (in milliseconds) for an election to timeout. See tuning documentation for details."),
    flag(MEMBER, "initial-election-tick-advance", "true", Bool, Unsupported, "Whether to fast-forward initial election ticks on boot for faster election."),
    flag(MEMBER, "listen-peer-urls", "http://localhost:2380", Value, Supported, "List of URLs to listen on for peer traffic."),
    flag(MEMBER, "listen-client-urls", "http://localhost:2379", Value, Supported, "List of URLs to listen on for client traffic."),
    flag(MEMBER, "max-snapshots", "5", Value, Unsupported, "Maximum number of snapshot files to retain (0 is unlimited)."),
    flag(MEMBER, "max-wals", "5", Value, Unsupported, "Maximum number of wal files to retain (0 is unlimited)."),
    flag(MEMBER, "quota-backend-bytes", "0", Value, Supported, "Raise alarms when backend size exceeds the given quota (0 defaults to low space quota)."),
    flag(MEMBER, "backend-batch-interval", "", Value, Unsupported, "BackendBatchInterval is the maximum time before commit the backend transaction."),
    flag(MEMBER, "backend-batch-limit", "0", Value, Unsupported, "BackendBatchLimit is the maximum operations before commit the backend transaction."),
    flag(MEMBER, "max-txn-ops", "128", Value, Supported, "Maximum number of operations permitted in a transaction."),
    flag(MEMBER, "max-request-bytes", "1572864", Value, Supported, "Maximum client request size in bytes the server will accept."),
    flag(MEMBER, "max-concurrent-streams", "math.MaxUint32", Value, Unsupported, "Maximum concurrent streams that each client can open at a time."),
    flag(MEMBER, "grpc-keepalive-min-time", "5s", Value, Unsupported, "Minimum duration interval that a client should wait before pinging server."),
    flag(MEMBER, "grpc-keepalive-interval", "2h", Value, Unsupported, "Frequency duration of server-to-client ping to check if a connection is alive (0 to disable)."),
    flag(MEMBER, "grpc-keepalive-timeout", "20s", Value, Unsupported, "Additional duration of wait before closing a non-responsive connection (0 to disable)."),
    flag(CLUSTERING, "initial-advertise-peer-urls", "http://localhost:2380", Value, Supported, "List of this member's peer URLs to advertise to the rest of the cluster."),
    flag(CLUSTERING, "initial-cluster", "default=http://localhost:2380", Value, Supported, "Initial cluster configuration for bootstrapping."),
    flag(CLUSTERING, "initial-cluster-state", "new", Value, Supported, "Initial cluster state ('new' or 'existing')."),
    flag(CLUSTERING, "initial-cluster-token", "etcd-cluster", Value, Supported, "Initial cluster token for the etcd cluster during bootstrap."),
    flag(CLUSTERING, "advertise-client-urls", "http://localhost:2379", Value, Supported, "List of this member's client URLs to advertise to the public."),
    flag(CLUSTERING, "discovery", "", Value, Unsupported, "Discovery URL used to bootstrap the cluster."),
    flag(CLUSTERING, "discovery-fallback", "proxy", Value, Unsupported, "Expected behavior ('exit' or 'proxy') when discovery services fails."),
    flag(CLUSTERING, "discovery-proxy", "", Value, Unsupported, "HTTP proxy to use for traffic to discovery service."),
    flag(CLUSTERING, "discovery-srv", "", Value, Unsupported, "DNS srv domain used to bootstrap the cluster."),
    flag(CLUSTERING, "discovery-srv-name", "", Value, Unsupported, "Suffix to the dns srv name queried when bootstrapping."),
    flag(CLUSTERING, "strict-reconfig-check", "true", Bool, Unsupported, "Reject reconfiguration requests that would cause quorum loss."),
    flag(CLUSTERING, "pre-vote", "false", Bool, Unsupported, "Enable to run an additional Raft election phase."),
    flag(CLUSTERING, "auto-compaction-retention", "0", Value, Unsupported, "Auto compaction retention length. 0 means disable auto compaction."),
    flag(CLUSTERING, "auto-compaction-mode", "periodic", Value, Unsupported, "Interpret 'auto-compaction-retention' one of: periodic|revision."),
    flag(CLUSTERING, "enable-v2", "true", Bool, Supported, "Accept etcd V2 client requests."),
    flag(SECURITY, "cert-file", "", Value, Unsupported, "Path to the client server TLS cert file."),
    flag(SECURITY, "key-file", "", Value, Unsupported, "Path to the client server TLS key file."),
    flag(SECURITY, "client-cert-auth", "false", Bool, Unsupported, "Enable client cert authentication."),
    flag(SECURITY, "client-crl-file", "", Value, Unsupported, "Path to the client certificate revocation list file."),
    flag(SECURITY, "client-cert-allowed-hostname", "", Value, Unsupported, "Allowed TLS hostname for client cert authentication."),
    flag(SECURITY, "trusted-ca-file", "", Value, Unsupported, "Path to the client server TLS trusted CA cert file."),
    flag(SECURITY, "auto-tls", "false", Bool, Unsupported, "Client TLS using generated certificates."),
    flag(SECURITY, "peer-cert-file", "", Value, Unsupported, "Path to the peer server TLS cert file."),
    flag(SECURITY, "peer-key-file", "", Value, Unsupported, "Path to the peer server TLS key file."),
    flag(SECURITY, "peer-client-cert-auth", "false", Bool, Unsupported, "Enable peer client cert authentication."),
    flag(SECURITY, "peer-trusted-ca-file", "", Value, Unsupported, "Path to the peer server TLS trusted CA file."),
    flag(SECURITY, "peer-cert-allowed-cn", "", Value, Unsupported, "Required CN for client certs connecting to the peer endpoint."),
    flag(SECURITY, "peer-cert-allowed-hostname", "", Value, Unsupported, "Allowed TLS hostname for inter peer authentication."),
    flag(SECURITY, "peer-auto-tls", "false", Bool, Unsupported, "Peer TLS using self-generated certificates if --peer-key-file and --peer-cert-file are not provided."),
    flag(SECURITY, "peer-crl-file", "", Value, Unsupported, "Path to the peer certificate revocation list file."),
    flag(SECURITY, "cipher-suites", "", Value, Unsupported, "Comma-separated list of supported TLS cipher suites between client/server and peers (empty will be auto-populated by Go)."),
    flag(SECURITY, "cors", "*", Value, Unsupported, "Comma-separated whitelist of origins for CORS, or cross-origin resource sharing, (empty or * means allow all)."),
    flag(SECURITY, "host-whitelist", "*", Value, Unsupported, "Acceptable hostnames from HTTP client requests, if server is not secure (empty or * means allow all)."),
    flag(AUTH, "auth-token", "simple", Value, Unsupported, "Specify a v3 authentication token type and its options ('simple' or 'jwt')."),
    flag(AUTH, "bcrypt-cost", "10", Value, Unsupported, "Specify the cost / strength of the bcrypt algorithm for hashing auth passwords. Valid values are between 4 and 31."),
    flag(AUTH, "auth-token-ttl", "300", Value, Unsupported, "Time (in seconds) of the auth-token-ttl."),
    flag(PROFILING, "enable-pprof", "false", Bool, Unsupported, "Enable runtime profiling data via HTTP server. Address is at client URL + \"/debug/pprof/\""),
    flag(PROFILING, "metrics", "basic", Value, Unsupported, "Set level of detail for exported metrics, specify 'extensive' to include histogram metrics."),
    flag(PROFILING, "listen-metrics-urls", "", Value, Unsupported, "List of URLs to listen on for the metrics and health endpoints."),
    flag(LOGGING, "logger", "capnslog", Value, Supported, "Specify 'zap' for structured logging (JSON lines) or 'capnslog' (plain text)."),
    flag(LOGGING, "log-outputs", "default", Value, Supported, "Specify 'stdout' or 'stderr' ('default' is stderr)."),
    flag(LOGGING, "log-level", "info", Value, Supported, "Configures log level. Only supports debug, info, warn, error, panic, or fatal."),
    flag(PROXY, "proxy", "off", Value, Unsupported, "Proxy mode setting ('off', 'readonly' or 'on')."),
    flag(PROXY, "proxy-failure-wait", "5000", Value, Unsupported, "Time (in milliseconds) an endpoint will be held in a failed state."),
    flag(PROXY, "proxy-refresh-interval", "30000", Value, Unsupported, "Time (in milliseconds) of the endpoints refresh interval."),
    flag(PROXY, "proxy-dial-timeout", "1000", Value, Unsupported, "Time (in milliseconds) for a dial to timeout."),
    flag(PROXY, "proxy-write-timeout", "5000", Value, Unsupported, "Time (in milliseconds) for a write to timeout."),
    flag(PROXY, "proxy-read-timeout", "0", Value, Unsupported, "Time (in milliseconds) for a read to timeout."),
    flag(EXPERIMENTAL, "experimental-initial-corrupt-check", "false", Bool, Unsupported, "Enable to check data corruption before serving any client/peer traffic."),
    flag(EXPERIMENTAL, "experimental-corrupt-check-time", "0s", Value, Unsupported, "Duration of time between cluster corruption check passes."),
    flag(EXPERIMENTAL, "experimental-enable-v2v3", "", Value, Unsupported, "Serve v2 requests through the v3 backend under a given prefix."),
    flag(EXPERIMENTAL, "experimental-backend-bbolt-freelist-type", "array", Value, Unsupported, "ExperimentalBackendFreelistType specifies the type of freelist that boltdb backend uses(array and map are supported types)."),
    flag(EXPERIMENTAL, "experimental-enable-lease-checkpoint", "false", Bool, Unsupported, "ExperimentalEnableLeaseCheckpoint enables primary lessor to persist lease remainingTTL to prevent indefinite auto-renewal of long lived leases."),
    flag(EXPERIMENTAL, "experimental-enable-lease-checkpoint-persist", "false", Bool, Unsupported, "Enable persisting remainingTTL to prevent indefinite auto-renewal of long lived leases."),
    flag(EXPERIMENTAL, "experimental-compaction-batch-limit", "1000", Value, Unsupported, "ExperimentalCompactionBatchLimit sets the maximum revisions deleted in each compaction batch."),
    flag(EXPERIMENTAL, "experimental-peer-skip-client-san-verification", "false", Bool, Unsupported, "Skip verification of SAN field in client certificate for peer connections."),
    flag(EXPERIMENTAL, "experimental-watch-progress-notify-interval", "10m", Value, Supported, "Duration of periodical watch progress notification."),
    flag(EXPERIMENTAL, "experimental-warning-apply-duration", "100ms", Value, Unsupported, "Warning is generated if requests take more than this duration."),
    flag(UNSAFE, "force-new-cluster", "false", Bool, Unsupported, "Force to create a new one-member cluster."),
    flag(UNSAFE, "unsafe-no-fsync", "false", Bool, Unsupported, "Disables fsync, unsafe, will cause data loss."),
    flag(DEPRECATED, "debug", "false", Bool, Unsupported, "Enable debug-level logging for etcd. Use '--log-level=debug' instead."),
    flag(DEPRECATED, "log-package-levels", "", Value, Unsupported, "Specify a particular log level for each etcd package (eg: 'etcdmain=CRITICAL,etcdserver=DEBUG')."),
    flag(DEPRECATED, "log-output", "default", Value, Unsupported, "Use '--log-outputs'."),
    flag(OTHER, "config-file", "", Value, Unsupported, "Path to the server configuration file."),
    flag(OTHER, "enable-grpc-gateway", "true", Bool, Unsupported, "Enable GRPC gateway."),
    flag(OTHER, "version", "false", Bool, Supported, "Print the version and exit."),
    flag(IGNORED, "cluster-active-size", "", Bool, Ignored, ""),
    flag(IGNORED, "cluster-remove-delay", "", Bool, Ignored, ""),
    flag(IGNORED, "cluster-sync-interval", "", Bool, Ignored, ""),
    flag(IGNORED, "config", "", Bool, Ignored, ""),
    flag(IGNORED, "force", "", Bool, Ignored, ""),
    flag(IGNORED, "max-result-buffer", "", Bool, Ignored, ""),
    flag(IGNORED, "max-retry-attempts", "", Bool, Ignored, ""),
    flag(IGNORED, "peer-heartbeat-interval", "", Bool, Ignored, ""),
    flag(IGNORED, "peer-election-timeout", "", Bool, Ignored, ""),
    flag(IGNORED, "retry-interval", "", Bool, Ignored, ""),
    flag(IGNORED, "snapshot", "", Bool, Ignored, ""),
    flag(IGNORED, "v", "", Bool, Ignored, ""),
    flag(IGNORED, "vv", "", Bool, Ignored, ""),
];

/// The flag named `name`, if etcd defines one.
pub fn lookup(name: &str) -> Option<&'static FlagSpec> {
    FLAGS.iter().find(|spec| spec.name == name)
}

/// etcd's environment form of a flag: `ETCD_` + upper case, dashes to underscores.
pub fn env_key(name: &str) -> String {
    format!("ETCD_{}", name.to_ascii_uppercase().replace('-', "_"))
}

/// Why the command line or environment cannot start a server.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FlagError {
    /// Go's `flag` package: a flag etcd does not define.
    #[error("flag provided but not defined: -{0}")]
    NotDefined(String),
    /// Go's `flag` package: `---x`, `-=x`.
    #[error("bad flag syntax: {0}")]
    BadSyntax(String),
    /// Go's `flag` package: a value flag last on the line.
    #[error("flag needs an argument: -{0}")]
    NeedsArgument(String),
    /// Go's `flag` package: a value the flag cannot take.
    #[error("invalid value {value:?} for flag -{flag}: {reason}")]
    InvalidValue {
        /// The value given.
        value: String,
        /// The flag's name.
        flag: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A value from an `ETCD_*` variable the flag cannot take.
    #[error("invalid value {value:?} for {key}: {reason}")]
    InvalidEnvValue {
        /// The value given.
        value: String,
        /// The variable's name.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// etcd: an argument after the flags.
    #[error("'{0}' is not a valid flag")]
    NotAFlag(String),
    /// A flag etcd has and Keel does not honour yet.
    #[error("flag --{0} is not supported yet")]
    Unsupported(String),
    /// The same setting from a flag and from its variable (fatal in etcd 3.4).
    #[error(
        "conflicting environment variable {0:?} is shadowed by corresponding command-line flag (either unset environment variable or disable flag)"
    )]
    EnvConflict(String),
    /// etcd's `--advertise-client-urls is required ...`.
    #[error("--advertise-client-urls is required when --listen-client-urls is set explicitly")]
    UnsetAdvertiseClientUrls,
    /// Any other setting etcd or Keel refuses.
    #[error("{0}")]
    Invalid(String),
}

impl FlagError {
    /// The exit status etcd uses: 2 for what Go's flag package rejects, else 1.
    pub fn exit_code(&self) -> i32 {
        match self {
            FlagError::NotDefined(_)
            | FlagError::BadSyntax(_)
            | FlagError::NeedsArgument(_)
            | FlagError::InvalidValue { .. } => 2,
            _ => 1,
        }
    }

    /// Whether etcd follows this message with its usage text.
    pub fn wants_usage(&self) -> bool {
        self.exit_code() == 2
    }
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    /// `-h`, `-help`, `--help`.
    Help,
    /// `--version`.
    Version,
    /// Start a server.
    Run(Box<Options>),
}

/// `--log-level`. `panic` and `fatal` log as `error`: `tracing` has nothing above it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    /// `debug`
    Debug,
    /// `info`
    Info,
    /// `warn`
    Warn,
    /// `error`, `panic`, `fatal`
    Error,
}

/// `--logger`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// `capnslog`: plain text lines.
    Text,
    /// `zap`: one JSON object per line.
    Json,
}

/// `--log-outputs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogOutput {
    /// `default` or `stderr`.
    Stderr,
    /// `stdout`.
    Stdout,
}

/// How to log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogOptions {
    /// The lowest level written.
    pub level: LogLevel,
    /// Text or JSON.
    pub format: LogFormat,
    /// Where to.
    pub output: LogOutput,
}

/// Everything a run needs, and what to warn about once logging is up.
#[derive(Debug)]
pub struct Options {
    /// The server's settings.
    pub server: ServerConfig,
    /// Logging.
    pub log: LogOptions,
    /// Warnings found while reading flags and environment, in etcd's words.
    pub warnings: Vec<String>,
    /// `KEY=value` of every `ETCD_*` variable that set a flag (etcd logs these).
    pub env_used: Vec<String>,
}

/// Where a flag's value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    CommandLine,
    Env,
}

/// The values given, by flag name.
#[derive(Default)]
struct Given {
    values: BTreeMap<&'static str, (String, Source)>,
    warnings: Vec<String>,
}

impl Given {
    fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(|(value, _)| value.as_str())
    }

    fn is_set(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    /// The error for a bad value of `name`, worded by where the value came from.
    fn invalid(&self, name: &'static str, reason: impl Into<String>) -> FlagError {
        let (value, source) = self
            .values
            .get(name)
            .cloned()
            .unwrap_or_else(|| (String::new(), Source::CommandLine));
        match source {
            Source::CommandLine => FlagError::InvalidValue {
                value,
                flag: name.to_owned(),
                reason: reason.into(),
            },
            Source::Env => FlagError::InvalidEnvValue {
                value,
                key: env_key(name),
                reason: reason.into(),
            },
        }
    }
}

/// Reads `args` (without the program name) and the environment `env` as etcd 3.4 would.
pub fn parse<I, S>(args: I, env: &[(String, String)]) -> Result<Command, FlagError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let args: Vec<String> = args.into_iter().map(Into::into).collect();
    let mut given = Given::default();
    let mut index = 0;
    while index < args.len() {
        let arg = &args[index];
        index += 1;
        if arg.len() < 2 || !arg.starts_with('-') {
            return Err(FlagError::NotAFlag(arg.clone()));
        }
        let mut body = &arg[1..];
        if let Some(rest) = body.strip_prefix('-') {
            if rest.is_empty() {
                // `--` ends the flags; anything after it is an argument, which etcd refuses.
                return match args.get(index) {
                    Some(next) => Err(FlagError::NotAFlag(next.clone())),
                    None => Ok(finish(given, env)?),
                };
            }
            body = rest;
        }
        if body.is_empty() || body.starts_with('-') || body.starts_with('=') {
            return Err(FlagError::BadSyntax(arg.clone()));
        }
        let (name, inline_value) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value.to_owned())),
            None => (body, None),
        };
        let Some(spec) = lookup(name) else {
            if name == "h" || name == "help" {
                return Ok(Command::Help);
            }
            return Err(FlagError::NotDefined(name.to_owned()));
        };
        let value = match (spec.kind, inline_value) {
            (_, Some(value)) => value,
            (Kind::Bool, None) => "true".to_owned(),
            (Kind::Value, None) => match args.get(index) {
                Some(next) => {
                    index += 1;
                    next.clone()
                }
                None => return Err(FlagError::NeedsArgument(name.to_owned())),
            },
        };
        if spec.kind == Kind::Bool
            && spec.support != Support::Ignored
            && parse_bool(&value).is_none()
        {
            return Err(FlagError::InvalidValue {
                value,
                flag: spec.name.to_owned(),
                reason: "parse error".to_owned(),
            });
        }
        if spec.support == Support::Ignored {
            given.warnings.push(ignored_warning(spec.name));
        }
        given.values.insert(spec.name, (value, Source::CommandLine));
    }
    finish(given, env)
}

fn ignored_warning(name: &str) -> String {
    format!("flag \"-{name}\" is no longer supported - ignoring.")
}

/// Everything after the command line: `--version`, the environment, then the values.
fn finish(mut given: Given, env: &[(String, String)]) -> Result<Command, FlagError> {
    if given.get("version").and_then(parse_bool).unwrap_or(false) {
        return Ok(Command::Version);
    }
    let env_used = merge_env(&mut given, env)?;
    for spec in FLAGS {
        if spec.support == Support::Unsupported && given.is_set(spec.name) {
            return Err(FlagError::Unsupported(spec.name.to_owned()));
        }
    }
    let (server, log) = build(&given)?;
    Ok(Command::Run(Box::new(Options {
        server,
        log,
        warnings: given.warnings,
        env_used,
    })))
}

/// etcd's `SetFlagsFromEnv` and `verifyEnv`.
fn merge_env(given: &mut Given, env: &[(String, String)]) -> Result<Vec<String>, FlagError> {
    let on_command_line: BTreeSet<String> = given.values.keys().map(|name| env_key(name)).collect();
    let mut used = BTreeSet::new();
    let mut env_used = Vec::new();
    for spec in FLAGS {
        // `--version` is decided before the environment is read, as in etcd.
        if spec.name == "version" {
            continue;
        }
        let key = env_key(spec.name);
        if on_command_line.contains(&key) {
            continue;
        }
        let Some((_, value)) = env.iter().find(|(k, _)| *k == key) else {
            continue;
        };
        if value.is_empty() {
            continue;
        }
        if spec.kind == Kind::Bool
            && spec.support != Support::Ignored
            && parse_bool(value).is_none()
        {
            return Err(FlagError::InvalidEnvValue {
                value: value.clone(),
                key,
                reason: "parse error".to_owned(),
            });
        }
        if spec.support == Support::Ignored {
            given.warnings.push(ignored_warning(spec.name));
        }
        env_used.push(format!("{key}={value}"));
        used.insert(key);
        given.values.insert(spec.name, (value.clone(), Source::Env));
    }
    for (key, value) in env {
        if used.contains(key) {
            continue;
        }
        if on_command_line.contains(key) {
            return Err(FlagError::EnvConflict(key.clone()));
        }
        if key.starts_with("ETCD_") && key != "ETCD_VERSION" {
            given
                .warnings
                .push(format!("unrecognized environment variable {key}={value}"));
        }
    }
    Ok(env_used)
}

/// Go's `strconv.ParseBool`.
fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `strconv.ParseUint(value, 0, 64)`: decimal, `0x`, `0o`, `0b`, or a leading `0` for
/// octal, with its two error words.
fn parse_u64(value: &str) -> Result<u64, &'static str> {
    let (digits, radix) = if let Some(hex) = value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
    {
        (hex, 16)
    } else if let Some(octal) = value
        .strip_prefix("0o")
        .or_else(|| value.strip_prefix("0O"))
    {
        (octal, 8)
    } else if let Some(binary) = value
        .strip_prefix("0b")
        .or_else(|| value.strip_prefix("0B"))
    {
        (binary, 2)
    } else if value.len() > 1 && value.starts_with('0') {
        (&value[1..], 8)
    } else {
        (value, 10)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err("parse error");
    }
    u64::from_str_radix(digits, radix).map_err(|_| "value out of range")
}

/// Go's `strconv.ParseInt(value, 0, 64)`.
/// Go's `time.ParseDuration`: an optional sign, then one or more decimal numbers (with
/// an optional fraction) each followed by a unit (`ns`, `us`, `µs`, `μs`, `ms`, `s`, `m`,
/// `h`), e.g. `300ms`, `1.5h`, `2h45m`; a bare `0` is zero. Returns nanoseconds.
fn parse_go_duration(value: &str) -> Result<i64, &'static str> {
    const PARSE_ERROR: &str = "parse error";
    let (negative, mut rest) = match value.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, value.strip_prefix('+').unwrap_or(value)),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(PARSE_ERROR);
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(frac) => {
                let frac_len = frac.bytes().take_while(u8::is_ascii_digit).count();
                frac.split_at(frac_len)
            }
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(PARSE_ERROR);
        }
        let unit_len = after
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(after.len(), |(i, _)| i);
        let (unit, after) = after.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(PARSE_ERROR),
        };
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| PARSE_ERROR)?
        };
        let mut nanos = int.checked_mul(unit_nanos).ok_or(PARSE_ERROR)?;
        // The fraction, truncated to whole nanoseconds as Go does.
        let mut scale = unit_nanos;
        for digit in frac_part.bytes() {
            if scale < 10 {
                break;
            }
            scale /= 10;
            nanos += u128::from(digit - b'0') * scale;
        }
        total = total.checked_add(nanos).ok_or(PARSE_ERROR)?;
        if total > i64::MAX as u128 {
            return Err(PARSE_ERROR);
        }
        rest = after;
    }
    let total = i64::try_from(total).map_err(|_| PARSE_ERROR)?;
    Ok(if negative { -total } else { total })
}

fn duration_flag(
    given: &Given,
    name: &'static str,
    default: std::time::Duration,
) -> Result<std::time::Duration, FlagError> {
    match given.get(name) {
        None => Ok(default),
        Some(value) => {
            let nanos = parse_go_duration(value).map_err(|reason| given.invalid(name, reason))?;
            // A zero or negative value is "not set" to etcd, which keeps its default.
            Ok(u64::try_from(nanos)
                .ok()
                .filter(|n| *n > 0)
                .map_or(default, std::time::Duration::from_nanos))
        }
    }
}

fn parse_i64(value: &str) -> Result<i64, &'static str> {
    let (negative, magnitude) = match value.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, value.strip_prefix('+').unwrap_or(value)),
    };
    let magnitude = parse_u64(magnitude)?;
    let signed = if negative {
        0i128 - i128::from(magnitude)
    } else {
        i128::from(magnitude)
    };
    i64::try_from(signed).map_err(|_| "value out of range")
}

/// A URL split the way Go's `url.Parse` and `net.SplitHostPort` see it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct RawUrl {
    scheme: String,
    host: String,
    port: String,
    /// `scheme://host:port`, the form etcd prints and sorts.
    canonical: String,
}

/// etcd's `types.NewURLs` for one element: scheme http, https, unix or unixs, a
/// `host:port` address, no path.
fn parse_url(text: &str) -> Result<RawUrl, String> {
    let text = text.trim();
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err(format!(
            "URL scheme must be http, https, unix, or unixs: {text}"
        ));
    };
    let scheme = scheme.to_ascii_lowercase();
    if !matches!(scheme.as_str(), "http" | "https" | "unix" | "unixs") {
        return Err(format!(
            "URL scheme must be http, https, unix, or unixs: {text}"
        ));
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let not_host_port = || format!("URL address does not have the form \"host:port\": {text}");
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']').ok_or_else(not_host_port)?;
        let port = after.strip_prefix(':').ok_or_else(not_host_port)?;
        (host, port)
    } else {
        let (host, port) = authority.rsplit_once(':').ok_or_else(not_host_port)?;
        if host.contains(':') {
            return Err(not_host_port());
        }
        (host, port)
    };
    if !port.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("invalid port \":{port}\" after host"));
    }
    if tail.starts_with('/') {
        return Err(format!("URL must not contain a path: {text}"));
    }
    Ok(RawUrl {
        canonical: format!("{scheme}://{authority}"),
        scheme,
        host: host.to_owned(),
        port: port.to_owned(),
    })
}

/// A comma-separated list of URLs, sorted as etcd sorts them.
fn parse_urls(text: &str) -> Result<Vec<RawUrl>, String> {
    let mut urls = text
        .split(',')
        .map(parse_url)
        .collect::<Result<Vec<_>, _>>()?;
    urls.sort_by(|a, b| a.canonical.cmp(&b.canonical));
    urls.dedup();
    Ok(urls)
}

fn tls_not_supported(flag: &str, url: &RawUrl) -> FlagError {
    FlagError::Invalid(format!(
        "TLS is not supported yet: --{flag} has {}",
        url.canonical
    ))
}

fn unix_not_supported(flag: &str, url: &RawUrl) -> FlagError {
    FlagError::Invalid(format!(
        "unix sockets are not supported yet: --{flag} has {}",
        url.canonical
    ))
}

/// The value of a URL-list flag. etcd's URL flags accept "" as an exception that leaves the
/// previous value, the default, in place (the flag still counts as given).
fn url_flag_text<'a>(given: &'a Given, flag: &str, default: &'a str) -> &'a str {
    match given.get(flag) {
        Some(text) if !text.is_empty() => text,
        _ => default,
    }
}

/// Listen URLs: http, and an IP (or `localhost`, bound as 127.0.0.1) to bind, as etcd's
/// `checkBindURLs`.
fn bind_addrs(
    given: &Given,
    flag: &'static str,
    default: &str,
) -> Result<Vec<SocketAddr>, FlagError> {
    let text = url_flag_text(given, flag, default);
    let urls = parse_urls(text).map_err(|reason| given.invalid(flag, reason))?;
    let mut addrs = Vec::with_capacity(urls.len());
    for url in &urls {
        match url.scheme.as_str() {
            "http" => {}
            "https" => return Err(tls_not_supported(flag, url)),
            _ => return Err(unix_not_supported(flag, url)),
        }
        let ip = if url.host == "localhost" {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            url.host.parse::<IpAddr>().map_err(|_| {
                FlagError::Invalid(format!(
                    "expected IP in URL for binding ({})",
                    url.canonical
                ))
            })?
        };
        let port = url
            .port
            .parse::<u16>()
            .map_err(|_| FlagError::Invalid(format!("invalid port in {}", url.canonical)))?;
        addrs.push(SocketAddr::new(ip, port));
    }
    Ok(addrs)
}

/// Advertised URLs: http with a non-empty host, as etcd's `checkHostURLs`.
fn host_urls(given: &Given, flag: &'static str, default: &str) -> Result<Vec<Url>, FlagError> {
    let text = url_flag_text(given, flag, default);
    let urls = parse_urls(text).map_err(|reason| given.invalid(flag, reason))?;
    advertised(flag, &urls)
}

fn advertised(flag: &str, urls: &[RawUrl]) -> Result<Vec<Url>, FlagError> {
    let mut out = Vec::with_capacity(urls.len());
    for url in urls {
        match url.scheme.as_str() {
            "http" => {}
            "https" => return Err(tls_not_supported(flag, url)),
            _ => return Err(unix_not_supported(flag, url)),
        }
        if url.host.is_empty() {
            let list: Vec<&str> = urls.iter().map(|u| u.canonical.as_str()).collect();
            return Err(FlagError::Invalid(format!(
                "--{flag} {:?} must be \"host:port\" (unexpected empty host ({}))",
                list.join(","),
                url.canonical
            )));
        }
        let parsed = Url::parse(&url.canonical)
            .map_err(|error| FlagError::Invalid(format!("{}: {error}", url.canonical)))?;
        out.push(parsed);
    }
    Ok(out)
}

fn canonical(url: &Url) -> String {
    url.as_str().trim_end_matches('/').to_owned()
}

/// etcd's `types.NewURLsMap`: `name=url` pairs; a name may repeat, one pair per URL.
fn parse_initial_cluster(text: &str) -> Result<Vec<InitialMember>, FlagError> {
    let mut by_name: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for pair in text.split(',').filter(|pair| !pair.is_empty()) {
        let (name, url) = pair.split_once('=').unwrap_or((pair, ""));
        by_name.entry(name).or_default().push(url);
    }
    let mut members = Vec::new();
    for (name, urls) in by_name {
        let urls = urls
            .into_iter()
            .map(parse_url)
            .collect::<Result<Vec<_>, _>>()
            .map_err(FlagError::Invalid)?;
        for peer_url in advertised("initial-cluster", &urls)? {
            members.push(InitialMember {
                name: name.to_owned(),
                peer_url,
            });
        }
    }
    members.sort_by_key(|member| format!("{}={}", member.name, canonical(&member.peer_url)));
    Ok(members)
}

fn u64_flag(given: &Given, name: &'static str, default: u64) -> Result<u64, FlagError> {
    match given.get(name) {
        None => Ok(default),
        Some(value) => parse_u64(value).map_err(|reason| given.invalid(name, reason)),
    }
}

/// Turns the given values into the server's settings, with etcd's defaults and checks.
fn build(given: &Given) -> Result<(ServerConfig, LogOptions), FlagError> {
    let log = log_options(given)?;
    let name = given.get("name").unwrap_or("default").to_owned();
    let data_dir = match given.get("data-dir") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(format!("{name}.keel")),
    };
    let wal_dir = given
        .get("wal-dir")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from);

    let listen_peer_addrs = bind_addrs(given, "listen-peer-urls", "http://localhost:2380")?;
    let listen_client_addrs = bind_addrs(given, "listen-client-urls", "http://localhost:2379")?;
    let initial_advertise_peer_urls = host_urls(
        given,
        "initial-advertise-peer-urls",
        "http://localhost:2380",
    )?;
    let advertise_client_urls =
        if given.is_set("listen-client-urls") && !given.is_set("advertise-client-urls") {
            Vec::new()
        } else {
            host_urls(given, "advertise-client-urls", "http://localhost:2379")?
        };

    // etcd computes the default initial cluster from the default name and peer URL, and
    // replaces it by `name=` the advertised peer URLs when only `--name` was changed.
    const DEFAULT_INITIAL_CLUSTER: &str = "default=http://localhost:2380";
    let mut initial_cluster_text = given
        .get("initial-cluster")
        .unwrap_or(DEFAULT_INITIAL_CLUSTER)
        .to_owned();
    if name != "default" && initial_cluster_text == DEFAULT_INITIAL_CLUSTER {
        initial_cluster_text = initial_advertise_peer_urls
            .iter()
            .map(|url| format!("{name}={}", canonical(url)))
            .collect::<Vec<_>>()
            .join(",");
    }
    let initial_cluster = parse_initial_cluster(&initial_cluster_text)?;

    let initial_cluster_state = match given.get("initial-cluster-state").unwrap_or("new") {
        "new" => ClusterState::New,
        "existing" => ClusterState::Existing,
        _ => return Err(given.invalid("initial-cluster-state", "invalid value")),
    };
    let initial_cluster_token = given
        .get("initial-cluster-token")
        .unwrap_or("etcd-cluster")
        .to_owned();

    let quota_backend_bytes = match given.get("quota-backend-bytes") {
        None => 0,
        Some(value) => {
            let quota =
                parse_i64(value).map_err(|reason| given.invalid("quota-backend-bytes", reason))?;
            u64::try_from(quota).map_err(|_| {
                FlagError::Invalid(format!(
                    "--quota-backend-bytes must be >= 0 (set to {quota})"
                ))
            })?
        }
    };

    let config = ServerConfig {
        name,
        data_dir,
        wal_dir,
        listen_client_addrs,
        advertise_client_urls,
        listen_peer_addrs,
        initial_advertise_peer_urls,
        initial_cluster,
        initial_cluster_state,
        initial_cluster_token,
        heartbeat_interval_ms: u64_flag(
            given,
            "heartbeat-interval",
            keel_server::DEFAULT_HEARTBEAT_INTERVAL_MS,
        )?,
        election_timeout_ms: u64_flag(
            given,
            "election-timeout",
            keel_server::DEFAULT_ELECTION_TIMEOUT_MS,
        )?,
        snapshot_count: u64_flag(given, "snapshot-count", keel_server::DEFAULT_SNAPSHOT_COUNT)?,
        max_request_bytes: u64_flag(
            given,
            "max-request-bytes",
            keel_server::DEFAULT_MAX_REQUEST_BYTES,
        )?,
        max_txn_ops: u64_flag(given, "max-txn-ops", keel_server::DEFAULT_MAX_TXN_OPS)?,
        quota_backend_bytes,
        // Keel serves v2 unless told not to (etcd 3.4 defaults to false; see docs/flags.md).
        enable_v2: match given.get("enable-v2") {
            None => true,
            Some(value) => {
                parse_bool(value).ok_or_else(|| given.invalid("enable-v2", "parse error"))?
            }
        },
        watch_progress_notify_interval: duration_flag(
            given,
            "experimental-watch-progress-notify-interval",
            keel_server::DEFAULT_WATCH_PROGRESS_NOTIFY_INTERVAL,
        )?,
    };
    validate(&config)?;
    Ok((config, log))
}

/// etcd's `embed.Config.Validate` order: timing first (the server's checks, worded as
/// etcd's), then the advertise-client-urls rule, which etcd checks last.
fn validate(config: &ServerConfig) -> Result<(), FlagError> {
    let timing = ServerConfig {
        initial_cluster: vec![InitialMember {
            name: config.name.clone(),
            peer_url: Url::parse("http://localhost:2380").expect("a literal URL parses"),
        }],
        ..config.clone()
    };
    timing
        .validate()
        .map_err(|error| FlagError::Invalid(error.to_string()))?;
    if config.advertise_client_urls.is_empty() {
        return Err(FlagError::UnsetAdvertiseClientUrls);
    }
    Ok(())
}

fn log_options(given: &Given) -> Result<LogOptions, FlagError> {
    let level = match given.get("log-level").unwrap_or("info") {
        "debug" => LogLevel::Debug,
        "info" => LogLevel::Info,
        "warn" => LogLevel::Warn,
        "error" | "panic" | "fatal" => LogLevel::Error,
        other => {
            return Err(FlagError::Invalid(format!(
                "unknown log-level {other:?} (only supports debug, info, warn, error, panic, or fatal)"
            )));
        }
    };
    let format = match given.get("logger").unwrap_or("capnslog") {
        "capnslog" => LogFormat::Text,
        "zap" => LogFormat::Json,
        other => {
            return Err(FlagError::Invalid(format!(
                "unknown logger option {other:?}"
            )));
        }
    };
    let mut outputs = BTreeSet::new();
    for output in given.get("log-outputs").unwrap_or("default").split(',') {
        match output {
            "default" | "stderr" => outputs.insert("stderr"),
            "stdout" => outputs.insert("stdout"),
            other => {
                return Err(FlagError::Invalid(format!(
                    "unknown log-output {other:?} (only supports \"default\", \"stderr\", \"stdout\")"
                )));
            }
        };
    }
    let output = match (outputs.contains("stderr"), outputs.contains("stdout")) {
        (true, true) => {
            return Err(FlagError::Invalid(
                "--log-outputs takes one of default, stderr or stdout in keel".to_owned(),
            ));
        }
        (_, true) => LogOutput::Stdout,
        _ => LogOutput::Stderr,
    };
    Ok(LogOptions {
        level,
        format,
        output,
    })
}

/// The usage line etcd prints on stderr with `-h` and after a flag error.
pub const USAGE: &str = "Usage:

  keel [flags]
    Start a keel server.

  keel --version
    Show the version of keel.

  keel -h | --help
    Show the help information about keel.
";

/// The flag help printed on stdout by `--help`, from [`FLAGS`].
pub fn help_text() -> String {
    let mut text = String::new();
    let mut section = "";
    for spec in FLAGS {
        if spec.section == IGNORED || spec.name == "version" {
            continue;
        }
        if spec.section != section {
            section = spec.section;
            text.push('\n');
            text.push_str(section);
            text.push_str(":\n");
        }
        let note = if spec.support == Support::Unsupported {
            " [not supported yet]"
        } else {
            ""
        };
        text.push_str(&format!(
            "  --{} '{}'{note}\n    {}\n",
            spec.name, spec.default, spec.help
        ));
    }
    text.push_str("\nEvery flag can also be set with its ETCD_* environment variable (e.g. --data-dir as ETCD_DATA_DIR).\n");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn run(args: &[&str], pairs: &[(&str, &str)]) -> Result<Options, FlagError> {
        match parse(args.iter().copied(), &env(pairs))? {
            Command::Run(options) => Ok(*options),
            other => panic!("expected a run, got {other:?}"),
        }
    }

    fn url(text: &str) -> Url {
        Url::parse(text).expect("test URLs parse")
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("test addresses parse")
    }

    #[test]
    fn defaults_are_etcds_with_keel_data_dir() {
        let options = run(&[], &[]).expect("no flags is a valid start");
        let config = options.server;
        assert_eq!(config.name, "default");
        assert_eq!(config.data_dir, PathBuf::from("default.keel"));
        assert_eq!(config.wal_dir, None);
        assert_eq!(config.listen_client_addrs, vec![addr("127.0.0.1:2379")]);
        assert_eq!(config.listen_peer_addrs, vec![addr("127.0.0.1:2380")]);
        assert_eq!(
            config.advertise_client_urls,
            vec![url("http://localhost:2379")]
        );
        assert_eq!(
            config.initial_advertise_peer_urls,
            vec![url("http://localhost:2380")]
        );
        assert_eq!(
            config.initial_cluster,
            vec![InitialMember {
                name: "default".to_owned(),
                peer_url: url("http://localhost:2380"),
            }]
        );
        assert_eq!(config.initial_cluster_state, ClusterState::New);
        assert_eq!(config.initial_cluster_token, "etcd-cluster");
        assert_eq!(config.heartbeat_interval_ms, 100);
        assert_eq!(config.election_timeout_ms, 1000);
        assert_eq!(config.snapshot_count, 100_000);
        assert_eq!(config.max_request_bytes, 1_572_864);
        assert_eq!(config.max_txn_ops, 128);
        assert_eq!(config.quota_backend_bytes, 0);
        assert_eq!(
            options.log,
            LogOptions {
                level: LogLevel::Info,
                format: LogFormat::Text,
                output: LogOutput::Stderr,
            }
        );
        assert!(options.warnings.is_empty());
    }

    #[test]
    fn name_moves_data_dir_and_default_initial_cluster() {
        let config = run(&["--name", "infra1"], &[]).expect("valid").server;
        assert_eq!(config.data_dir, PathBuf::from("infra1.keel"));
        assert_eq!(
            config.initial_cluster,
            vec![InitialMember {
                name: "infra1".to_owned(),
                peer_url: url("http://localhost:2380"),
            }]
        );
        let config = run(
            &[
                "--name=n1",
                "--initial-advertise-peer-urls=http://127.0.0.1:12380,http://10.0.0.1:12380",
            ],
            &[],
        )
        .expect("valid")
        .server;
        let names: Vec<String> = config
            .initial_cluster
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url))
            .collect();
        assert_eq!(
            names,
            vec!["n1=http://10.0.0.1:12380/", "n1=http://127.0.0.1:12380/"]
        );
    }

    #[test]
    fn every_go_flag_form_is_read() {
        for args in [
            &["--name", "x"][..],
            &["--name=x"][..],
            &["-name", "x"][..],
            &["-name=x"][..],
        ] {
            let config = run(args, &[]).expect("valid").server;
            assert_eq!(config.name, "x", "{args:?}");
        }
        // A value flag takes the next argument whatever it looks like.
        let config = run(&["--data-dir", "-odd"], &[]).expect("valid").server;
        assert_eq!(config.data_dir, PathBuf::from("-odd"));
        // The last occurrence wins, as in Go.
        let config = run(&["--snapshot-count=5", "-snapshot-count", "7"], &[])
            .expect("valid")
            .server;
        assert_eq!(config.snapshot_count, 7);
        // Go's integer syntax.
        let config = run(&["--max-txn-ops=0x10"], &[]).expect("valid").server;
        assert_eq!(config.max_txn_ops, 16);
    }

    #[test]
    fn go_flag_package_errors_exit_two() {
        let cases: &[(&[&str], FlagError)] = &[
            (&["--bogus"], FlagError::NotDefined("bogus".to_owned())),
            (&["-bogus=1"], FlagError::NotDefined("bogus".to_owned())),
            (&["---name"], FlagError::BadSyntax("---name".to_owned())),
            (&["-=x"], FlagError::BadSyntax("-=x".to_owned())),
            (&["--name"], FlagError::NeedsArgument("name".to_owned())),
            (
                &["--heartbeat-interval", "abc"],
                FlagError::InvalidValue {
                    value: "abc".to_owned(),
                    flag: "heartbeat-interval".to_owned(),
                    reason: "parse error".to_owned(),
                },
            ),
            (
                &["--snapshot-count=99999999999999999999"],
                FlagError::InvalidValue {
                    value: "99999999999999999999".to_owned(),
                    flag: "snapshot-count".to_owned(),
                    reason: "value out of range".to_owned(),
                },
            ),
            (
                &["--initial-cluster-state", "foo"],
                FlagError::InvalidValue {
                    value: "foo".to_owned(),
                    flag: "initial-cluster-state".to_owned(),
                    reason: "invalid value".to_owned(),
                },
            ),
        ];
        for (args, expected) in cases {
            let error = parse(args.iter().copied(), &[]).expect_err("must be refused");
            assert_eq!(&error, expected, "{args:?}");
            assert_eq!(error.exit_code(), 2, "{args:?}");
            assert!(error.wants_usage());
        }
        assert_eq!(
            FlagError::NotDefined("bogus".to_owned()).to_string(),
            "flag provided but not defined: -bogus"
        );
    }

    #[test]
    fn arguments_after_flags_are_refused() {
        let error = parse(["--name", "x", "extra"], &[]).expect_err("refused");
        assert_eq!(error, FlagError::NotAFlag("extra".to_owned()));
        assert_eq!(error.to_string(), "'extra' is not a valid flag");
        assert_eq!(error.exit_code(), 1);
        let error = parse(["--", "x"], &[]).expect_err("refused");
        assert_eq!(error, FlagError::NotAFlag("x".to_owned()));
        run(&["--name=y", "--"], &[]).expect("a trailing -- is fine");
    }

    #[test]
    fn help_and_version() {
        for help in ["-h", "--h", "-help", "--help"] {
            assert!(matches!(parse([help], &[]), Ok(Command::Help)), "{help}");
        }
        assert!(matches!(parse(["--version"], &[]), Ok(Command::Version)));
        assert!(matches!(
            parse(["-version=true"], &[]),
            Ok(Command::Version)
        ));
        // --version wins over later validation, as in etcd.
        assert!(matches!(
            parse(["--version", "--heartbeat-interval=0"], &[]),
            Ok(Command::Version)
        ));
        assert!(matches!(
            parse(["--version=false"], &[]),
            Ok(Command::Run(_))
        ));
        // A flag error before -h is reported first, as Go parses left to right.
        assert!(parse(["--bogus", "-h"], &[]).is_err());
        let text = help_text();
        assert!(text.contains("--data-dir '${name}.keel'"));
        assert!(text.contains("--auto-tls 'false' [not supported yet]"));
    }

    #[test]
    fn every_unsupported_flag_is_refused_by_flag_and_by_env() {
        let mut count = 0;
        for spec in FLAGS.iter().filter(|s| s.support == Support::Unsupported) {
            count += 1;
            let arg = match spec.kind {
                Kind::Bool => format!("--{}", spec.name),
                Kind::Value => format!("--{}=x", spec.name),
            };
            let error = parse([arg.as_str()], &[]).expect_err("unsupported");
            assert_eq!(error, FlagError::Unsupported(spec.name.to_owned()));
            assert_eq!(
                error.to_string(),
                format!("flag --{} is not supported yet", spec.name)
            );
            assert_eq!(error.exit_code(), 1);
            let value = if spec.kind == Kind::Bool { "true" } else { "x" };
            let error = parse(Vec::<String>::new(), &env(&[(&env_key(spec.name), value)]))
                .expect_err("unsupported from env");
            assert_eq!(error, FlagError::Unsupported(spec.name.to_owned()));
        }
        // Even a value equal to etcd's default is refused: nothing is silently dropped.
        assert_eq!(
            parse(["--pre-vote=false"], &[]).expect_err("refused"),
            FlagError::Unsupported("pre-vote".to_owned())
        );
        assert!(
            count > 60,
            "etcd 3.4 has more than 60 flags Keel does not honour"
        );
    }

    #[test]
    fn help_lists_every_flag_of_etcd_help() {
        // Names from etcd 3.4's etcdmain/help.go flagsline, in order.
        #[rustfmt::skip]
        let etcd_help = [
            "name", "data-dir", "wal-dir", "snapshot-count", "heartbeat-interval",
            "election-timeout", "initial-election-tick-advance", "listen-peer-urls",
            "listen-client-urls", "max-snapshots", "max-wals", "quota-backend-bytes",
            "backend-batch-interval", "backend-batch-limit", "max-txn-ops",
            "max-request-bytes", "max-concurrent-streams", "grpc-keepalive-min-time",
            "grpc-keepalive-interval", "grpc-keepalive-timeout",
            "initial-advertise-peer-urls", "initial-cluster", "initial-cluster-state",
            "initial-cluster-token", "advertise-client-urls", "discovery",
            "discovery-fallback", "discovery-proxy", "discovery-srv", "discovery-srv-name",
            "strict-reconfig-check", "pre-vote", "auto-compaction-retention",
            "auto-compaction-mode", "enable-v2", "cert-file", "key-file",
            "client-cert-auth", "client-crl-file", "client-cert-allowed-hostname",
            "trusted-ca-file", "auto-tls", "peer-cert-file", "peer-key-file",
            "peer-client-cert-auth", "peer-trusted-ca-file", "peer-cert-allowed-cn",
            "peer-cert-allowed-hostname", "peer-auto-tls", "peer-crl-file", "cipher-suites",
            "cors", "host-whitelist", "auth-token", "bcrypt-cost", "auth-token-ttl",
            "enable-pprof", "metrics", "listen-metrics-urls", "logger", "log-outputs",
            "log-level", "proxy", "proxy-failure-wait", "proxy-refresh-interval",
            "proxy-dial-timeout", "proxy-write-timeout", "proxy-read-timeout",
            "experimental-initial-corrupt-check", "experimental-corrupt-check-time",
            "experimental-enable-v2v3", "experimental-backend-bbolt-freelist-type",
            "experimental-enable-lease-checkpoint", "experimental-compaction-batch-limit",
            "experimental-peer-skip-client-san-verification",
            "experimental-watch-progress-notify-interval",
            "experimental-warning-apply-duration", "force-new-cluster", "debug",
            "log-package-levels",
        ];
        let help = help_text();
        for name in etcd_help {
            let spec = lookup(name).unwrap_or_else(|| panic!("--{name} missing"));
            assert_ne!(spec.support, Support::Ignored, "--{name}");
            assert!(
                help.contains(&format!("  --{name} '")),
                "--{name} not in help"
            );
        }
        let names: BTreeSet<&str> = FLAGS.iter().map(|s| s.name).collect();
        assert_eq!(names.len(), FLAGS.len(), "a flag is listed twice");
    }

    #[test]
    fn environment_fills_what_the_command_line_leaves() {
        let options = run(
            &["--name", "a"],
            &[
                ("ETCD_DATA_DIR", "/tmp/x"),
                ("ETCD_HEARTBEAT_INTERVAL", "50"),
                ("ETCD_INITIAL_CLUSTER_STATE", "existing"),
                ("ETCD_WAL_DIR", ""),
                ("PATH", "/bin"),
            ],
        )
        .expect("valid");
        assert_eq!(options.server.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(options.server.heartbeat_interval_ms, 50);
        assert_eq!(options.server.initial_cluster_state, ClusterState::Existing);
        assert_eq!(options.server.wal_dir, None);
        assert_eq!(
            options.env_used,
            vec![
                "ETCD_DATA_DIR=/tmp/x",
                "ETCD_HEARTBEAT_INTERVAL=50",
                "ETCD_INITIAL_CLUSTER_STATE=existing",
            ]
        );
        // An empty variable sets nothing and is, as in etcd, "unrecognized".
        assert_eq!(
            options.warnings,
            vec!["unrecognized environment variable ETCD_WAL_DIR="]
        );
    }

    #[test]
    fn flag_and_env_for_the_same_setting_is_etcds_fatal_conflict() {
        let error = run(&["--name", "cli"], &[("ETCD_NAME", "env")]).expect_err("conflict");
        assert_eq!(error, FlagError::EnvConflict("ETCD_NAME".to_owned()));
        assert_eq!(
            error.to_string(),
            "conflicting environment variable \"ETCD_NAME\" is shadowed by corresponding command-line flag (either unset environment variable or disable flag)"
        );
        assert_eq!(error.exit_code(), 1);
    }

    #[test]
    fn unknown_etcd_variables_are_warned_about() {
        let options = run(&[], &[("ETCD_NOT_A_FLAG", "1"), ("ETCDCTL_API", "3")]).expect("valid");
        assert_eq!(
            options.warnings,
            vec!["unrecognized environment variable ETCD_NOT_A_FLAG=1"]
        );
    }

    #[test]
    fn bad_env_values_name_the_variable() {
        let error = run(&[], &[("ETCD_ELECTION_TIMEOUT", "soon")]).expect_err("bad");
        assert_eq!(
            error.to_string(),
            "invalid value \"soon\" for ETCD_ELECTION_TIMEOUT: parse error"
        );
        assert_eq!(error.exit_code(), 1);
        let error = run(&[], &[("ETCD_PRE_VOTE", "maybe")]).expect_err("bad");
        assert_eq!(
            error.to_string(),
            "invalid value \"maybe\" for ETCD_PRE_VOTE: parse error"
        );
    }

    #[test]
    fn ignored_legacy_flags_warn_like_etcd() {
        let options = run(&["-v", "--force"], &[]).expect("ignored");
        assert_eq!(
            options.warnings,
            vec![
                "flag \"-v\" is no longer supported - ignoring.",
                "flag \"-force\" is no longer supported - ignoring.",
            ]
        );
    }

    #[test]
    fn listen_urls_need_an_ip_and_plain_http() {
        let listen = ["--listen-client-urls"];
        let advertise = "--advertise-client-urls=http://example.com:2379";
        let cases = [
            (
                "http://example.com:2379",
                "expected IP in URL for binding (http://example.com:2379)",
            ),
            (
                "https://127.0.0.1:2379",
                "TLS is not supported yet: --listen-client-urls has https://127.0.0.1:2379",
            ),
            (
                "unix://127.0.0.1:2379",
                "unix sockets are not supported yet: --listen-client-urls has unix://127.0.0.1:2379",
            ),
        ];
        for (value, message) in cases {
            let error = run(&[listen[0], value, advertise], &[]).expect_err(value);
            assert_eq!(error.to_string(), message);
            assert_eq!(error.exit_code(), 1);
        }
        let config = run(
            &[
                "--listen-client-urls=http://127.0.0.1:1,http://[::1]:2,http://localhost:3",
                advertise,
            ],
            &[],
        )
        .expect("valid")
        .server;
        let mut addrs = config.listen_client_addrs.clone();
        addrs.sort();
        assert_eq!(
            addrs,
            vec![addr("127.0.0.1:1"), addr("127.0.0.1:3"), addr("[::1]:2")]
        );
        let error = run(&["--listen-peer-urls=https://127.0.0.1:2380"], &[]).expect_err("tls");
        assert!(error.to_string().starts_with("TLS is not supported yet"));
    }

    #[test]
    fn malformed_urls_are_go_flag_errors() {
        let cases = [
            (
                "localhost:2379",
                "URL scheme must be http, https, unix, or unixs: localhost:2379",
            ),
            (
                "ftp://1.2.3.4:1",
                "URL scheme must be http, https, unix, or unixs: ftp://1.2.3.4:1",
            ),
            (
                "http://1.2.3.4",
                "URL address does not have the form \"host:port\": http://1.2.3.4",
            ),
            (
                "http://1.2.3.4:1/x",
                "URL must not contain a path: http://1.2.3.4:1/x",
            ),
            (
                "http://1.2.3.4:1/",
                "URL must not contain a path: http://1.2.3.4:1/",
            ),
        ];
        for (value, reason) in cases {
            let error = run(&["--listen-peer-urls", value], &[]).expect_err(value);
            assert_eq!(
                error,
                FlagError::InvalidValue {
                    value: value.to_owned(),
                    flag: "listen-peer-urls".to_owned(),
                    reason: reason.to_owned(),
                }
            );
        }
        let error = run(&["--initial-advertise-peer-urls=http://:2380"], &[]).expect_err("empty");
        assert_eq!(
            error.to_string(),
            "--initial-advertise-peer-urls \"http://:2380\" must be \"host:port\" (unexpected empty host (http://:2380))"
        );
    }

    #[test]
    fn explicit_listen_client_urls_need_advertise_client_urls() {
        let error =
            run(&["--listen-client-urls=http://127.0.0.1:12379"], &[]).expect_err("etcd's rule");
        assert_eq!(error, FlagError::UnsetAdvertiseClientUrls);
        assert_eq!(
            error.to_string(),
            "--advertise-client-urls is required when --listen-client-urls is set explicitly"
        );
        let error = run(
            &[],
            &[("ETCD_LISTEN_CLIENT_URLS", "http://127.0.0.1:12379")],
        )
        .expect_err("set from env counts as set");
        assert_eq!(error, FlagError::UnsetAdvertiseClientUrls);
        // An empty value keeps etcd's default, and the flag counts as given.
        let config = run(
            &[
                "--listen-client-urls=http://127.0.0.1:12379",
                "--advertise-client-urls=",
            ],
            &[],
        )
        .expect("advertises the default")
        .server;
        assert_eq!(
            config.advertise_client_urls,
            vec![url("http://localhost:2379")]
        );
        let error = run(&["--listen-client-urls="], &[]).expect_err("given, so advertise too");
        assert_eq!(error, FlagError::UnsetAdvertiseClientUrls);
        let config = run(&["--listen-peer-urls="], &[])
            .expect("listens on the default")
            .server;
        assert_eq!(config.listen_peer_addrs, vec![addr("127.0.0.1:2380")]);
        // Timing errors come first, as etcd checks them first.
        let error = run(
            &[
                "--listen-client-urls=http://127.0.0.1:12379",
                "--heartbeat-interval=0",
            ],
            &[],
        )
        .expect_err("bad");
        assert_eq!(
            error.to_string(),
            "--heartbeat-interval must be >0 (set to 0ms)"
        );
    }

    #[test]
    fn timing_limits_are_etcds() {
        let error = run(&["--election-timeout=400"], &[]).expect_err("too short");
        assert_eq!(
            error.to_string(),
            "--election-timeout[400ms] should be at least as 5 times as --heartbeat-interval[100ms]"
        );
        let error = run(&["--election-timeout=60000"], &[]).expect_err("too long");
        assert_eq!(
            error.to_string(),
            "--election-timeout[60000ms] is too long, and should be set less than 50000ms"
        );
    }

    #[test]
    fn initial_cluster_is_parsed_and_sorted() {
        let config = run(
            &[
                "--name=infra2",
                "--initial-cluster",
                "infra3=http://127.0.0.1:32380,infra1=http://127.0.0.1:2380,infra2=http://127.0.0.1:22380",
            ],
            &[],
        )
        .expect("valid")
        .server;
        let names: Vec<&str> = config
            .initial_cluster
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(names, vec!["infra1", "infra2", "infra3"]);
        assert_eq!(
            config.initial_cluster[2].peer_url,
            url("http://127.0.0.1:32380")
        );
        let error = run(&["--initial-cluster=default=127.0.0.1:2380"], &[]).expect_err("bad url");
        assert!(error.to_string().contains("URL scheme must be"), "{error}");
        let error =
            run(&["--initial-cluster=default=https://127.0.0.1:2380"], &[]).expect_err("tls");
        assert!(
            error.to_string().starts_with("TLS is not supported yet"),
            "{error}"
        );
    }

    #[test]
    fn quota_and_logging_values() {
        let error = run(&["--quota-backend-bytes=-1"], &[]).expect_err("negative");
        assert_eq!(
            error.to_string(),
            "--quota-backend-bytes must be >= 0 (set to -1)"
        );
        let config = run(&["--quota-backend-bytes=8589934592"], &[])
            .expect("valid")
            .server;
        assert_eq!(config.quota_backend_bytes, 8 * 1024 * 1024 * 1024);
        let log = run(
            &["--logger=zap", "--log-level=debug", "--log-outputs=stdout"],
            &[],
        )
        .expect("valid")
        .log;
        assert_eq!(
            log,
            LogOptions {
                level: LogLevel::Debug,
                format: LogFormat::Json,
                output: LogOutput::Stdout,
            }
        );
        assert_eq!(
            run(&["--log-level=fatal"], &[]).expect("valid").log.level,
            LogLevel::Error
        );
        assert_eq!(
            run(&["--log-outputs=default,stderr"], &[])
                .expect("valid")
                .log
                .output,
            LogOutput::Stderr
        );
        let error = run(&["--logger=syslog"], &[]).expect_err("bad logger");
        assert_eq!(error.to_string(), "unknown logger option \"syslog\"");
        assert!(run(&["--log-level=loud"], &[]).is_err());
        assert!(run(&["--log-outputs=/var/log/x"], &[]).is_err());
        assert!(run(&["--log-outputs=stdout,stderr"], &[]).is_err());
    }

    #[test]
    fn env_keys_follow_etcd() {
        assert_eq!(env_key("data-dir"), "ETCD_DATA_DIR");
        assert_eq!(
            env_key("experimental-backend-bbolt-freelist-type"),
            "ETCD_EXPERIMENTAL_BACKEND_BBOLT_FREELIST_TYPE"
        );
    }

    #[test]
    fn go_integers() {
        assert_eq!(parse_u64("10"), Ok(10));
        assert_eq!(parse_u64("010"), Ok(8));
        assert_eq!(parse_u64("0b11"), Ok(3));
        assert_eq!(parse_u64("0"), Ok(0));
        assert_eq!(parse_u64(""), Err("parse error"));
        assert_eq!(parse_u64("-1"), Err("parse error"));
        assert_eq!(parse_u64("18446744073709551616"), Err("value out of range"));
        assert_eq!(parse_i64("-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(parse_i64("9223372036854775808"), Err("value out of range"));
    }

    #[test]
    fn go_durations_parse_as_go_does() {
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert_eq!(parse_go_duration("10m"), Ok(600_000_000_000));
        assert_eq!(parse_go_duration("300ms"), Ok(300_000_000));
        assert_eq!(parse_go_duration("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(parse_go_duration("2h45m"), Ok(9_900_000_000_000));
        assert_eq!(parse_go_duration(".5s"), Ok(500_000_000));
        assert_eq!(parse_go_duration("1.s"), Ok(1_000_000_000));
        assert_eq!(parse_go_duration("+7us"), Ok(7_000));
        assert_eq!(parse_go_duration("3\u{b5}s"), Ok(3_000));
        assert_eq!(parse_go_duration("-1s"), Ok(-1_000_000_000));
        assert_eq!(parse_go_duration("1.0000000001s"), Ok(1_000_000_000));
        for bad in [
            "",
            "10",
            "s",
            ".s",
            "1x",
            "1s2",
            "-",
            "1..5s",
            "9999999999999999999h",
        ] {
            assert_eq!(parse_go_duration(bad), Err("parse error"), "{bad:?}");
        }
    }

    #[test]
    fn watch_progress_notify_interval_takes_a_go_duration() {
        let flag = "--experimental-watch-progress-notify-interval";
        let options = run(&[flag, "250ms"], &[]).expect("valid");
        assert_eq!(
            options.server.watch_progress_notify_interval,
            std::time::Duration::from_millis(250)
        );
        let options = run(&[], &[]).expect("valid");
        assert_eq!(
            options.server.watch_progress_notify_interval,
            keel_server::DEFAULT_WATCH_PROGRESS_NOTIFY_INTERVAL
        );
        let options = run(
            &[],
            &[("ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL", "1m")],
        )
        .expect("valid");
        assert_eq!(
            options.server.watch_progress_notify_interval,
            std::time::Duration::from_secs(60)
        );
        let error = run(&[flag, "10"], &[]).expect_err("no unit");
        assert_eq!(
            error.to_string(),
            "invalid value \"10\" for flag -experimental-watch-progress-notify-interval: parse error"
        );
        assert_eq!(error.exit_code(), 2);
    }

    #[test]
    fn docs_list_every_flag_with_its_environment_form_and_support() {
        let docs = include_str!("../../../docs/flags.md");
        for spec in FLAGS {
            let prefix = format!("| `--{}` |", spec.name);
            let row = docs
                .lines()
                .find(|line| line.starts_with(&prefix))
                .unwrap_or_else(|| panic!("docs/flags.md has no row for --{}", spec.name));
            assert!(row.contains(&format!("`{}`", env_key(spec.name))), "{row}");
            let status = match spec.support {
                Support::Supported => "| supported |",
                Support::Unsupported => "| not supported yet |",
                Support::Ignored => "| ignored with a warning |",
            };
            assert!(row.contains(status), "{row}");
        }
    }
}
