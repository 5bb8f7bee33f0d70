//! Debian's `etcdctl watch` (API v3) against a real `etcd` 3.4 and against `keel`,
//! started the same way on the same ports (the harness in `common`): the same writes,
//! then the same watches, and etcdctl must print the same thing for both.
//!
//! `etcdctl watch` never exits by itself while the watch is healthy, so each one runs
//! under [`watch_until`]: it is killed once it printed the lines the step expects, or
//! after a deadline (then the outputs differ and the test fails). Every watch names a
//! start revision, so what it prints does not depend on whether etcdctl connected before
//! or after a write. What legitimately differs is normalised: the Raft term in JSON
//! headers and etcdctl's own JSON log lines on stderr.

mod common;

use std::io::{Read, Write};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Cluster, ETCDCTL, Impl, MemberSpec, Output, clean_command, etcdctl, member_specs};

/// Longest any one watch step may run.
const STEP_TIMEOUT: Duration = Duration::from_secs(20);

/// Drains a pipe into a shared buffer on a thread.
fn drain(
    mut pipe: impl Read + Send + 'static,
) -> (Arc<Mutex<Vec<u8>>>, std::thread::JoinHandle<()>) {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&buffer);
    let thread = std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut chunk) {
            if n == 0 {
                break;
            }
            sink.lock()
                .expect("buffer lock")
                .extend_from_slice(&chunk[..n]);
        }
    });
    (buffer, thread)
}

fn lines_in(buffer: &Mutex<Vec<u8>>) -> usize {
    buffer
        .lock()
        .expect("buffer lock")
        .iter()
        .filter(|b| **b == b'\n')
        .count()
}

/// Runs `etcdctl watch ARGS` against `endpoint`. For each stage it writes the text to
/// etcdctl's stdin (kept open: interactive mode ends on EOF) and waits until stdout
/// has at least that many lines; then it kills etcdctl by pid. A watch that exits by
/// itself (a compacted start revision) ends the wait early.
fn watch_until(endpoint: &str, args: &[&str], stages: &[(&str, usize)]) -> Output {
    let mut command = clean_command(ETCDCTL);
    command
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .arg("--dial-timeout=2s")
        .arg("watch")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child: Child = command.spawn().expect("spawn etcdctl watch");
    let mut stdin = child.stdin.take().expect("stdin was piped");
    let (stdout, out_thread) = drain(child.stdout.take().expect("stdout was piped"));
    let (stderr, err_thread) = drain(child.stderr.take().expect("stderr was piped"));
    let deadline = Instant::now() + STEP_TIMEOUT;
    let mut exited = None;
    'stages: for (text, lines) in stages {
        // etcdctl may have exited already; its output tells.
        let _ = stdin.write_all(text.as_bytes());
        let _ = stdin.flush();
        while lines_in(&stdout) < *lines {
            if let Some(status) = child.try_wait().expect("poll etcdctl") {
                exited = Some(status);
                break 'stages;
            }
            if Instant::now() >= deadline {
                break 'stages;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // Give a misbehaving server the chance to print more than expected.
    std::thread::sleep(Duration::from_millis(300));
    let status = match exited {
        Some(status) => Some(status),
        None => match child.try_wait().expect("poll etcdctl") {
            Some(status) => Some(status),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                None
            }
        },
    };
    drop(stdin);
    out_thread.join().expect("stdout reader");
    err_thread.join().expect("stderr reader");
    let text = |b: &Arc<Mutex<Vec<u8>>>| {
        String::from_utf8_lossy(&b.lock().expect("buffer lock")).into_owned()
    };
    Output {
        code: status.and_then(|s| s.code()),
        stdout: text(&stdout),
        stderr: text(&stderr),
    }
}

/// Replaces the digits after each `"raft_term":` by `N`, and drops etcdctl's JSON log
/// lines from stderr.
fn normalise(output: &Output) -> Output {
    let mut stdout = String::new();
    let mut rest = output.stdout.as_str();
    let needle = "\"raft_term\":";
    while let Some(at) = rest.find(needle) {
        let (before, after) = rest.split_at(at + needle.len());
        stdout.push_str(before);
        stdout.push('N');
        rest = after.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    stdout.push_str(rest);
    let stderr = output
        .stderr
        .lines()
        .filter(|line| !line.starts_with('{'))
        .map(|line| format!("{line}\n"))
        .collect();
    Output {
        code: output.code,
        stdout,
        stderr,
    }
}

fn must(output: Output, what: &str) {
    assert!(output.ok(), "{what} failed: {output:?}");
}

/// The whole scenario against one implementation: `(step, etcdctl's output)`.
fn scenario(imp: Impl, specs: &[MemberSpec]) -> Vec<(String, Output)> {
    let cluster = Cluster::start(imp, specs, &[]);
    let endpoint = cluster.endpoint(0);
    let ctl = |args: &[&str]| must(etcdctl(&endpoint, args, None), &args.join(" "));
    // Revisions 2..=6.
    ctl(&["put", "foo", "a"]);
    ctl(&["put", "foo", "b"]);
    ctl(&["put", "foo1", "c"]);
    ctl(&["del", "foo"]);
    ctl(&["put", "zoo", "z"]);

    let mut outputs = Vec::new();
    let watch = |outputs: &mut Vec<(String, Output)>,
                 name: &str,
                 args: &[&str],
                 stages: &[(&str, usize)]| {
        outputs.push((name.to_owned(), watch_until(&endpoint, args, stages)));
    };
    watch(
        &mut outputs,
        "key from rev 2",
        &["foo", "--rev", "2"],
        &[("", 9)],
    );
    watch(
        &mut outputs,
        "prefix",
        &["--prefix", "foo", "--rev", "2"],
        &[("", 12)],
    );
    watch(
        &mut outputs,
        "range",
        &["foo", "zoo", "--rev", "2"],
        &[("", 12)],
    );
    watch(
        &mut outputs,
        "from rev 4 on",
        &["foo1", "--rev", "4"],
        &[("", 3)],
    );
    watch(
        &mut outputs,
        "prev-kv",
        &["--prev-kv", "foo", "--rev", "2"],
        &[("", 13)],
    );
    watch(
        &mut outputs,
        "json",
        &["--prefix", "foo", "--rev", "2", "-w", "json"],
        &[("", 1)],
    );
    watch(
        &mut outputs,
        "interactive with progress",
        &["-i"],
        &[("watch foo --rev 3\n", 6), ("progress\n", 7)],
    );

    // A live watch: etcdctl is (most likely) connected before the writes, and sees
    // them as they happen; the start revision keeps the output independent of that.
    let live = {
        let endpoint = endpoint.clone();
        std::thread::spawn(move || {
            watch_until(&endpoint, &["--prefix", "live/", "--rev", "7"], &[("", 9)])
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    ctl(&["put", "live/1", "one"]);
    ctl(&["put", "live/2", "two"]);
    ctl(&["del", "live/1"]);
    outputs.push(("live".to_owned(), live.join().expect("live watch thread")));

    ctl(&["compact", "6"]);
    watch(
        &mut outputs,
        "compacted start",
        &["foo", "--rev", "2"],
        &[("", 1)],
    );
    watch(
        &mut outputs,
        "compacted start, json",
        &["foo", "--rev", "2", "-w", "json"],
        &[("", 1)],
    );
    drop(cluster);
    outputs
}

#[test]
fn etcdctl_watch_prints_the_same_as_against_etcd() {
    for bin in [common::ETCD, ETCDCTL] {
        assert!(
            std::path::Path::new(bin).exists(),
            "{bin} is missing: install Debian's etcd-server and etcd-client (scripts/test does)"
        );
    }
    let specs = member_specs(1);
    let etcd = scenario(Impl::Etcd, &specs);
    let keel = scenario(Impl::Keel, &specs);
    let mut differences = Vec::new();
    for ((name, etcd), (_, keel)) in etcd.iter().zip(&keel) {
        let (expected, actual) = (normalise(etcd), normalise(keel));
        // The reference itself must have shown something, or the step tests nothing.
        assert!(
            !expected.stdout.is_empty() || !expected.stderr.is_empty(),
            "etcd printed nothing for {name}: {etcd:?}"
        );
        if expected != actual {
            differences.push(format!("{name}\n  etcd: {expected:?}\n  keel: {actual:?}"));
        }
    }
    assert!(
        differences.is_empty(),
        "{} of {} etcdctl watch outputs differ:\n{}",
        differences.len(),
        etcd.len(),
        differences.join("\n")
    );
}

/// One gRPC watch stream scripted step by step against one implementation: for each
/// step, the responses it got (up to the number expected, then whatever else arrives
/// within a short quiet period), sorted by watch id where several watchers answer one
/// write (etcd's order among watchers is its map order), with the Raft term zeroed.
fn grpc_session(imp: Impl, specs: &[MemberSpec]) -> Vec<(String, Vec<String>)> {
    use keel_proto::etcdserverpb::{
        CompactionRequest, PutRequest, WatchCancelRequest, WatchCreateRequest,
        WatchProgressRequest, WatchRequest, WatchResponse, kv_client::KvClient,
        watch_client::WatchClient, watch_request::RequestUnion,
    };
    use tonic::codegen::tokio_stream::wrappers::ReceiverStream;

    let cluster = Cluster::start(imp, specs, &[]);
    let url = format!("http://{}", cluster.endpoint(0));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let transcript = rt.block_on(async move {
        let mut kv = KvClient::connect(url.clone()).await.expect("connect kv");
        let mut put = async |key: &str, value: &str| {
            kv.put(PutRequest {
                key: key.as_bytes().to_vec(),
                value: value.as_bytes().to_vec(),
                ..PutRequest::default()
            })
            .await
            .expect("put");
        };
        put("foo", "a").await;
        put("foo", "b").await;
        let create = |c: WatchCreateRequest| Some(RequestUnion::CreateRequest(c));
        let key = |k: &str| WatchCreateRequest {
            key: k.as_bytes().to_vec(),
            ..WatchCreateRequest::default()
        };
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        // etcd's gRPC server sends the stream's headers with its first response, so the
        // first request must be queued before the call waits for them.
        tx.send(WatchRequest {
            request_union: create(WatchCreateRequest {
                start_revision: 2,
                ..key("foo")
            }),
        })
        .await
        .expect("queue the first request");
        let mut client = WatchClient::connect(url.clone())
            .await
            .expect("connect watch");
        let mut responses =
            tokio::time::timeout(STEP_TIMEOUT, client.watch(ReceiverStream::new(rx)))
                .await
                .expect("watch stream opened in time")
                .expect("watch stream")
                .into_inner();
        let mut transcript = Vec::new();
        let mut step = async |name: &str,
                              request: Option<RequestUnion>,
                              expected: usize,
                              transcript: &mut Vec<(String, Vec<String>)>| {
            if let Some(request) = request {
                tx.send(WatchRequest {
                    request_union: Some(request),
                })
                .await
                .expect("stream open");
            }
            let mut got: Vec<WatchResponse> = Vec::new();
            loop {
                let wait = if got.len() < expected {
                    STEP_TIMEOUT
                } else {
                    Duration::from_millis(400)
                };
                match tokio::time::timeout(wait, responses.message()).await {
                    Ok(Ok(Some(r))) => got.push(r),
                    Ok(other) => panic!("{imp:?}: stream ended at {name}: {other:?}"),
                    Err(_) => break,
                }
            }
            got.sort_by_key(|r| r.watch_id);
            let lines = got
                .into_iter()
                .map(|mut r| {
                    if let Some(h) = r.header.as_mut() {
                        h.raft_term = 0;
                    }
                    format!("{r:?}")
                })
                .collect();
            transcript.push((name.to_owned(), lines));
        };
        step("from revision 2 (sent first)", None, 2, &mut transcript).await;
        step("automatic id", create(key("foo")), 1, &mut transcript).await;
        step(
            "duplicate id",
            create(WatchCreateRequest {
                watch_id: 1,
                ..key("x")
            }),
            1,
            &mut transcript,
        )
        .await;
        step(
            "empty range",
            create(WatchCreateRequest {
                range_end: b"a".to_vec(),
                ..key("b")
            }),
            1,
            &mut transcript,
        )
        .await;
        step("empty key", create(key("")), 1, &mut transcript).await;
        step(
            "cancel",
            Some(RequestUnion::CancelRequest(WatchCancelRequest {
                watch_id: 2,
            })),
            1,
            &mut transcript,
        )
        .await;
        step(
            "cancel unknown",
            Some(RequestUnion::CancelRequest(WatchCancelRequest {
                watch_id: 99,
            })),
            0,
            &mut transcript,
        )
        .await;
        step(
            "progress",
            Some(RequestUnion::ProgressRequest(WatchProgressRequest {})),
            1,
            &mut transcript,
        )
        .await;
        put("foo", "c").await;
        step("a put seen by two watchers", None, 2, &mut transcript).await;
        let mut kv = KvClient::connect(url.clone()).await.expect("connect kv");
        kv.compact(CompactionRequest {
            revision: 3,
            physical: true,
        })
        .await
        .expect("compact");
        step(
            "compacted start",
            create(WatchCreateRequest {
                start_revision: 2,
                watch_id: 10,
                ..key("foo")
            }),
            2,
            &mut transcript,
        )
        .await;
        step(
            "prev_kv and filters",
            create(WatchCreateRequest {
                watch_id: 11,
                prev_kv: true,
                filters: vec![1],
                ..key("foo")
            }),
            1,
            &mut transcript,
        )
        .await;
        kv.delete_range(keel_proto::etcdserverpb::DeleteRangeRequest {
            key: b"foo".to_vec(),
            ..Default::default()
        })
        .await
        .expect("delete");
        put("foo", "d").await;
        step("delete then put", None, 5, &mut transcript).await;
        transcript
    });
    drop(cluster);
    transcript
}

#[test]
fn grpc_watch_session_answers_as_etcd() {
    assert!(
        std::path::Path::new(common::ETCD).exists(),
        "{} is missing: install Debian's etcd-server (scripts/test does)",
        common::ETCD
    );
    let specs = member_specs(1);
    let etcd = grpc_session(Impl::Etcd, &specs);
    // The reference answered every step as the script expects, so the comparison is
    // not vacuous.
    let total: usize = etcd.iter().map(|(_, lines)| lines.len()).sum();
    assert_eq!(total, 18, "etcd's transcript: {etcd:#?}");
    let keel = grpc_session(Impl::Keel, &specs);
    let mut differences = Vec::new();
    for ((name, etcd), (_, keel)) in etcd.iter().zip(&keel) {
        if etcd != keel {
            differences.push(format!("{name}\n  etcd: {etcd:#?}\n  keel: {keel:#?}"));
        }
    }
    assert!(
        differences.is_empty(),
        "{} of {} steps differ:\n{}",
        differences.len(),
        etcd.len(),
        differences.join("\n")
    );
}
