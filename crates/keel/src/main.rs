//! `keel`: one Keel member, started with etcd's flags. See the library docs for the rules.

use std::process::ExitCode;

use keel::flags::{self, Command, FlagError, LogOptions, LogOutput, Options};
use keel::{logging, version_text};
use keel_server::{Server, ServerConfig};
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info, warn};

fn main() -> ExitCode {
    let args = std::env::args_os()
        .skip(1)
        .map(|arg| arg.to_string_lossy().into_owned());
    let env: Vec<(String, String)> = std::env::vars_os()
        .map(|(key, value)| {
            (
                key.to_string_lossy().into_owned(),
                value.to_string_lossy().into_owned(),
            )
        })
        .collect();
    match flags::parse(args, &env) {
        Ok(Command::Help) => {
            eprintln!("{}", flags::USAGE);
            println!("{}", flags::help_text());
            ExitCode::SUCCESS
        }
        Ok(Command::Version) => {
            print!("{}", version_text());
            ExitCode::SUCCESS
        }
        Ok(Command::Run(options)) => run(*options, &env),
        Err(error) => {
            report_flag_error(&error);
            ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(1))
        }
    }
}

/// Prints a flag error the way etcd does: Go's flag errors verbatim followed by the usage,
/// the others as "error verifying flags".
fn report_flag_error(error: &FlagError) {
    match error {
        FlagError::Unsupported(_) | FlagError::EnvConflict(_) => eprintln!("keel: {error}"),
        _ if error.wants_usage() => {
            eprintln!("{error}");
            eprintln!("{}", flags::USAGE);
        }
        FlagError::UnsetAdvertiseClientUrls => {
            eprintln!("keel: error verifying flags, {error}. See 'keel --help'.");
            eprintln!(
                "keel: When listening on specific address(es), this keel process must advertise accessible url(s) to each connected client."
            );
        }
        _ => eprintln!("keel: error verifying flags, {error}. See 'keel --help'."),
    }
}

fn run(options: Options, env: &[(String, String)]) -> ExitCode {
    if let Err(error) = logging::init(&options.log) {
        eprintln!("keel: {error}");
        return ExitCode::FAILURE;
    }
    for warning in &options.warnings {
        warn!(target: "keel::flags", "{warning}");
    }
    for used in &options.env_used {
        info!(target: "keel::flags", "recognized and used environment variable {used}");
    }
    log_config(&options.server);
    match keel_server::failpoints::setup_from_env(env) {
        Ok(set) => {
            for line in set {
                warn!("{line}");
            }
        }
        Err(error) => {
            fatal(&options.log, &error);
            return ExitCode::FAILURE;
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            fatal(
                &options.log,
                &format!("cannot start the async runtime: {error}"),
            );
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(options.server)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            fatal(&options.log, &message);
            ExitCode::FAILURE
        }
    }
}

/// Logs a fatal error; when logs go to stdout, also says it on stderr, where a user who
/// started the process looks for why it stopped.
fn fatal(log: &LogOptions, message: &str) {
    error!("{message}");
    if log.output == LogOutput::Stdout {
        eprintln!("keel: {message}");
    }
}

fn join<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(|item| item.to_string().trim_end_matches('/').to_owned())
        .collect::<Vec<_>>()
        .join(",")
}

/// etcd's start-up lines.
fn log_config(config: &ServerConfig) {
    info!("keel Version: {}", keel::KEEL_VERSION);
    info!("etcd API Version: {}", keel::ETCD_API_VERSION);
    info!("name = {}", config.name);
    info!("data dir = {}", config.data_dir.display());
    info!("member dir = {}", config.data_dir.join("member").display());
    if let Some(wal_dir) = &config.wal_dir {
        info!("dedicated WAL dir = {}", wal_dir.display());
    }
    info!("heartbeat = {}ms", config.heartbeat_interval_ms);
    info!("election = {}ms", config.election_timeout_ms);
    info!("snapshot count = {}", config.snapshot_count);
    info!(
        "advertise client URLs = {}",
        join(&config.advertise_client_urls)
    );
    info!(
        "initial advertise peer URLs = {}",
        join(&config.initial_advertise_peer_urls)
    );
    let cluster: Vec<String> = config
        .initial_cluster
        .iter()
        .map(|member| {
            format!(
                "{}={}",
                member.name,
                member.peer_url.as_str().trim_end_matches('/')
            )
        })
        .collect();
    info!("initial cluster = {}", cluster.join(","));
}

/// Starts the server and runs it until a signal asks it to stop or it stops by itself.
async fn serve(config: ServerConfig) -> Result<(), String> {
    let mut terminate = signal(SignalKind::terminate())
        .map_err(|error| format!("cannot watch SIGTERM: {error}"))?;
    let mut interrupt =
        signal(SignalKind::interrupt()).map_err(|error| format!("cannot watch SIGINT: {error}"))?;
    // A signal during start-up stops the process too; dropping the start future releases
    // whatever it had opened.
    let server = tokio::select! {
        result = Server::start(config) => {
            result.map_err(|error| format!("cannot start the server: {error}"))?
        }
        _ = terminate.recv() => {
            info!("received terminated signal during start-up, exiting");
            return Ok(());
        }
        _ = interrupt.recv() => {
            info!("received interrupt signal during start-up, exiting");
            return Ok(());
        }
    };
    info!(
        "started member {:x} in cluster {:x}",
        server.member_id(),
        server.cluster_id()
    );
    info!("listening for peers on {}", join(server.peer_addrs()));
    info!(
        "listening for client requests on {}",
        join(server.client_addrs())
    );
    info!("ready to serve client requests");
    tokio::select! {
        _ = terminate.recv() => info!("received terminated signal, shutting down..."),
        _ = interrupt.recv() => info!("received interrupt signal, shutting down..."),
        () = server.stopped() => warn!("the server stopped by itself"),
    }
    server
        .shutdown()
        .await
        .map_err(|error| format!("shutdown failed: {error}"))?;
    info!("stopped");
    Ok(())
}
