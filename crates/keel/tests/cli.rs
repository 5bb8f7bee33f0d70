//! The `keel` process as a user meets it: `--version`, `--help`, flag errors and their exit
//! codes next to etcd's, the environment form of flags, logging formats, and SIGTERM /
//! SIGINT shutting a member down cleanly with its data kept.

mod common;

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use common::{Cluster, ETCD, Impl, Output, clean_command, etcdctl, member_specs, run_bounded};

fn run(program: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut command: Command = clean_command(program);
    command.args(args).current_dir(dir.path());
    for (key, value) in env {
        command.env(key, value);
    }
    run_bounded(command, None, Duration::from_secs(20))
}

fn keel(args: &[&str], env: &[(&str, &str)]) -> Output {
    run(Impl::Keel.bin(), args, env)
}

fn etcd(args: &[&str], env: &[(&str, &str)]) -> Output {
    run(ETCD, args, env)
}

#[test]
fn version_uses_etcds_layout() {
    let out = keel(&["--version"], &[]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{out:?}");
    assert_eq!(
        lines[0],
        format!("keel Version: {}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(lines[1], "etcd API Version: 3.4");
    assert!(lines[2].starts_with("Rust Version: 1."), "{}", lines[2]);
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    assert_eq!(
        lines[3],
        format!("OS/Arch: {}/{arch}", std::env::consts::OS)
    );
    // Single-dash form, as Go accepts.
    assert_eq!(keel(&["-version"], &[]).stdout, out.stdout);
}

#[test]
fn help_prints_usage_and_every_flag() {
    for flag in ["-h", "--help", "-help"] {
        let out = keel(&[flag], &[]);
        assert_eq!(out.code, Some(0), "{flag}: {out:?}");
        assert!(out.stderr.contains("Usage:"), "{out:?}");
        assert!(
            out.stdout
                .contains("--listen-client-urls 'http://localhost:2379'")
        );
        assert!(out.stdout.contains("--data-dir '${name}.keel'"));
        assert!(out.stdout.contains("--cert-file '' [not supported yet]"));
    }
}

#[test]
fn undefined_flag_is_gos_error_with_exit_two_as_etcd() {
    let keel_out = keel(&["--bogus"], &[]);
    let etcd_out = etcd(&["--bogus"], &[]);
    assert_eq!(keel_out.code, Some(2));
    assert_eq!(keel_out.code, etcd_out.code);
    let first = |out: &Output| out.stderr.lines().next().unwrap_or_default().to_owned();
    assert_eq!(first(&keel_out), "flag provided but not defined: -bogus");
    assert_eq!(first(&keel_out), first(&etcd_out));
    assert!(keel_out.stderr.contains("Usage:"));

    let keel_out = keel(&["--heartbeat-interval", "abc"], &[]);
    let etcd_out = etcd(&["--heartbeat-interval", "abc"], &[]);
    assert_eq!(keel_out.code, Some(2));
    assert_eq!(keel_out.code, etcd_out.code);
    assert_eq!(first(&keel_out), first(&etcd_out));
}

#[test]
fn unsupported_flags_are_refused_with_exit_one() {
    for args in [
        &["--auto-tls"][..],
        &["--cert-file", "/tmp/c.pem"][..],
        &["-pre-vote=false"][..],
        &["--auto-compaction-retention=1h"][..],
        &["--config-file=/etc/etcd.yml"][..],
        &["--proxy", "on"][..],
    ] {
        let out = keel(args, &[]);
        assert_eq!(out.code, Some(1), "{args:?}: {out:?}");
        let name = args[0]
            .trim_start_matches('-')
            .split('=')
            .next()
            .unwrap_or_default();
        assert_eq!(
            out.stderr.trim_end(),
            format!("keel: flag --{name} is not supported yet"),
            "{args:?}"
        );
    }
    let out = keel(&[], &[("ETCD_DISCOVERY", "https://discovery.etcd.io/x")]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr
            .contains("keel: flag --discovery is not supported yet")
    );
}

#[test]
fn flag_errors_after_parsing_match_etcds_words_and_exit_code() {
    let cases: &[&[&str]] = &[
        &[
            "--listen-client-urls=http://example.com:1",
            "--advertise-client-urls=http://example.com:1",
        ],
        &["--listen-client-urls=http://127.0.0.1:1"],
        &["--election-timeout=400"],
        &["--heartbeat-interval=0"],
        &["extra-argument"],
    ];
    for args in cases {
        let keel_out = keel(args, &[]);
        let etcd_out = etcd(args, &[]);
        assert_eq!(keel_out.code, Some(1), "{args:?}: {keel_out:?}");
        assert_eq!(keel_out.code, etcd_out.code, "{args:?}");
        let keel_line = keel_out.stderr.lines().next().unwrap_or_default();
        let reason = keel_line
            .strip_prefix("keel: error verifying flags, ")
            .and_then(|rest| rest.strip_suffix(". See 'keel --help'."))
            .unwrap_or_else(|| panic!("{args:?}: unexpected {keel_line:?}"));
        assert!(
            etcd_out.stderr.contains(&format!(
                "error verifying flags, {reason}. See 'etcd --help'."
            )),
            "{args:?}: keel says {reason:?}, etcd said {:?}",
            etcd_out.stderr
        );
    }
}

#[test]
fn https_listen_urls_say_tls_is_not_supported() {
    let out = keel(
        &[
            "--listen-client-urls=https://127.0.0.1:1",
            "--advertise-client-urls=https://127.0.0.1:1",
        ],
        &[],
    );
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("TLS is not supported yet"), "{out:?}");
}

#[test]
fn flag_and_environment_both_set_is_fatal_as_in_etcd() {
    let keel_out = keel(&["--name", "a"], &[("ETCD_NAME", "b")]);
    let etcd_out = etcd(&["--name", "a"], &[("ETCD_NAME", "b")]);
    assert_eq!(keel_out.code, Some(1), "{keel_out:?}");
    assert_eq!(keel_out.code, etcd_out.code);
    let message = "conflicting environment variable \"ETCD_NAME\" is shadowed by corresponding command-line flag";
    assert!(keel_out.stderr.contains(message), "{keel_out:?}");
    assert!(etcd_out.stderr.contains(message), "{etcd_out:?}");
}

#[test]
fn a_member_configured_only_by_environment_starts_with_the_default_data_dir() {
    let dir = tempfile::tempdir().expect("temp dir");
    let client = common::free_port();
    let peer = common::free_port();
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let mut command = clean_command(Impl::Keel.bin());
    command
        .current_dir(dir.path())
        .env("ETCD_NAME", "envnode")
        .env("ETCD_LISTEN_CLIENT_URLS", &client_url)
        .env("ETCD_ADVERTISE_CLIENT_URLS", &client_url)
        .env("ETCD_LISTEN_PEER_URLS", &peer_url)
        .env("ETCD_INITIAL_ADVERTISE_PEER_URLS", &peer_url)
        .env("ETCD_LOGGER", "zap")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("log")).expect("log file"));
    let mut child = KillOnDrop(command.spawn().expect("spawn keel"));
    let endpoint = format!("127.0.0.1:{client}");
    let healthy = common::wait_for(Duration::from_secs(30), || {
        etcdctl(&endpoint, &["endpoint", "health"], None)
            .ok()
            .then_some(())
    });
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap_or_default();
    assert!(healthy.is_some(), "not healthy:\n{log}");
    let members = etcdctl(&endpoint, &["member", "list"], None);
    assert!(
        members.stdout.contains(", started, envnode, "),
        "{members:?}"
    );
    assert!(
        dir.path().join("envnode.keel").is_dir(),
        "data dir is ${{name}}.keel"
    );
    // zap: every log line is a JSON object; the start-up lines name the member, its data
    // dir, its ids and where it listens.
    // The server answers as soon as it started; its start-up lines follow at once.
    let log = common::wait_for(Duration::from_secs(10), || {
        let log = std::fs::read_to_string(dir.path().join("log")).ok()?;
        log.contains("ready to serve client requests")
            .then_some(log)
    })
    .unwrap_or(log);
    let messages: Vec<String> = log
        .lines()
        .map(|line| {
            let json: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("zap logs JSON lines, not {line:?}: {e}"));
            json["message"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    let member_id = members
        .stdout
        .split(',')
        .next()
        .expect("an id")
        .trim()
        .to_owned();
    for expected in [
        "name = envnode".to_owned(),
        "data dir = envnode.keel".to_owned(),
        format!("listening for client requests on 127.0.0.1:{client}"),
        format!("listening for peers on 127.0.0.1:{peer}"),
        "ready to serve client requests".to_owned(),
    ] {
        assert!(
            messages.contains(&expected),
            "no {expected:?} in {messages:#?}"
        );
    }
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with(&format!("started member {member_id} in cluster "))),
        "no start line for member {member_id} in {messages:#?}"
    );
    let _ = child.0.kill();
}

/// Kills a child that outlives its test.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_port_in_use_is_a_fatal_start_error() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("address").port();
    let url = format!("http://127.0.0.1:{port}");
    let peer = format!("http://127.0.0.1:{}", common::free_port());
    let out = keel(
        &[
            &format!("--listen-client-urls={url}"),
            &format!("--advertise-client-urls={url}"),
            &format!("--listen-peer-urls={peer}"),
            &format!("--initial-advertise-peer-urls={peer}"),
        ],
        &[],
    );
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(!out.stderr.trim().is_empty(), "the reason is on stderr");
}

fn signal_stops_cleanly_and_keeps_data(signal: &str) {
    let mut cluster = Cluster::start(Impl::Keel, &member_specs(1), &[]);
    let put = etcdctl(&cluster.endpoint(0), &["put", "kept", signal], None);
    assert!(put.ok(), "{put:?}");
    // capnslog, the default logger: "2026-11-22 17:05:05.026945 I | keel: name = infra1".
    let log = std::fs::read_to_string(&cluster.nodes[0].log_path).expect("read the log");
    let line = log
        .lines()
        .find(|line| line.ends_with(" I | keel: name = infra1"))
        .unwrap_or_else(|| panic!("no capnslog name line in\n{log}"));
    let stamp = &line[..26];
    assert!(
        stamp.chars().enumerate().all(|(i, c)| match i {
            4 | 7 => c == '-',
            10 => c == ' ',
            13 | 16 => c == ':',
            19 => c == '.',
            _ => c.is_ascii_digit(),
        }),
        "not a capnslog timestamp: {line:?}"
    );
    let pid = cluster.pid(0).expect("running");
    let sent = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success());
    let status = common::wait_for(Duration::from_secs(15), || cluster.exited(0));
    assert!(
        status.is_some_and(|s| s.success()),
        "keel did not exit 0 after SIG{signal}: {status:?}\n{}",
        cluster.logs()
    );
    cluster.spawn(0);
    cluster.wait_healthy(Duration::from_secs(30));
    let get = etcdctl(
        &cluster.endpoint(0),
        &["get", "kept", "--print-value-only"],
        None,
    );
    assert_eq!(get.stdout.trim(), signal, "{get:?}");
}

#[test]
fn sigterm_shuts_down_cleanly_and_keeps_data() {
    signal_stops_cleanly_and_keeps_data("TERM");
}

#[test]
fn sigint_shuts_down_cleanly_and_keeps_data() {
    signal_stops_cleanly_and_keeps_data("INT");
}
