//! Faults on real three-member `keel` clusters: the leader killed with SIGKILL under write
//! load, a follower down long enough for the log to be compacted, every member restarted.
//! The invariant checked throughout: every write a client saw acknowledged is there after
//! the cluster recovers. Load comes from `keel-proto`'s gRPC client, many concurrent
//! clients, each failing over to the next member when its member stops answering.
//!
//! Times (how long the new election took) are printed, never asserted; every wait is
//! bounded.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Cluster, Impl, member_specs, wait_for};
use keel_proto::etcdserverpb::kv_client::KvClient;
use keel_proto::etcdserverpb::{PutRequest, RangeRequest};
use tokio::runtime::Runtime;
use tokio::sync::Mutex;

/// How long one client request may take before the client gives up on that member.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build a tokio runtime")
}

/// Acknowledged writes: key -> value.
type Acked = Arc<Mutex<BTreeMap<String, String>>>;

/// One client: puts `prefix/{client}/{seq}` until `stop`, moving to the next endpoint on any
/// error; records every acknowledged put.
async fn writer(
    client: usize,
    prefix: String,
    endpoints: Vec<String>,
    stop: Arc<AtomicBool>,
    acked: Acked,
    limit: Option<usize>,
) {
    let mut endpoint = client % endpoints.len();
    let mut connection: Option<KvClient<_>> = None;
    let mut seq = 0usize;
    while !stop.load(Ordering::Relaxed) && limit.is_none_or(|limit| seq < limit) {
        let kv = match connection.as_mut() {
            Some(kv) => kv,
            None => {
                let url = format!("http://{}", endpoints[endpoint]);
                match tokio::time::timeout(REQUEST_TIMEOUT, KvClient::connect(url)).await {
                    Ok(Ok(kv)) => connection.insert(kv),
                    _ => {
                        endpoint = (endpoint + 1) % endpoints.len();
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                }
            }
        };
        let key = format!("{prefix}/{client:02}/{seq:06}");
        let value = format!("value-{client}-{seq}");
        let request = PutRequest {
            key: key.clone().into_bytes(),
            value: value.clone().into_bytes(),
            ..PutRequest::default()
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, kv.put(request)).await {
            Ok(Ok(_)) => {
                acked.lock().await.insert(key, value);
                seq += 1;
            }
            _ => {
                // The outcome is unknown: retry the same key elsewhere; only acks count.
                connection = None;
                endpoint = (endpoint + 1) % endpoints.len();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Every key under `prefix` with its value, read from member `endpoint`.
async fn read_prefix(
    endpoint: &str,
    prefix: &str,
    serializable: bool,
) -> Result<BTreeMap<String, String>, String> {
    let mut kv = KvClient::connect(format!("http://{endpoint}"))
        .await
        .map_err(|e| e.to_string())?;
    let mut range_end = prefix.as_bytes().to_vec();
    let last = range_end.last_mut().expect("prefix is not empty");
    *last += 1;
    let response = tokio::time::timeout(
        REQUEST_TIMEOUT,
        kv.range(RangeRequest {
            key: prefix.as_bytes().to_vec(),
            range_end,
            serializable,
            ..RangeRequest::default()
        }),
    )
    .await
    .map_err(|_| "range timed out".to_owned())?
    .map_err(|e| e.to_string())?
    .into_inner();
    Ok(response
        .kvs
        .into_iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(&kv.key).into_owned(),
                String::from_utf8_lossy(&kv.value).into_owned(),
            )
        })
        .collect())
}

fn endpoints(cluster: &Cluster) -> Vec<String> {
    (0..cluster.nodes.len())
        .map(|i| cluster.endpoint(i))
        .collect()
}

/// Asserts every acknowledged write is readable, with its value, from every member.
fn assert_all_acked_present(
    rt: &Runtime,
    cluster: &Cluster,
    prefix: &str,
    acked: &BTreeMap<String, String>,
) {
    for i in 0..cluster.nodes.len() {
        let endpoint = cluster.endpoint(i);
        let stored = wait_for(Duration::from_secs(20), || {
            rt.block_on(read_prefix(&endpoint, prefix, false)).ok()
        })
        .unwrap_or_else(|| panic!("member {i} does not answer reads\n{}", cluster.logs()));
        let missing: Vec<&String> = acked
            .iter()
            .filter(|(key, value)| stored.get(*key) != Some(value))
            .map(|(key, _)| key)
            .collect();
        assert!(
            missing.is_empty(),
            "member {i} lost {} of {} acknowledged writes, first {:?}",
            missing.len(),
            acked.len(),
            missing.first()
        );
    }
}

/// Stops every member with SIGTERM (each must exit 0) and starts them all again.
fn restart_all(cluster: &mut Cluster) {
    for i in cluster.running() {
        let status = cluster.terminate(i, Duration::from_secs(15));
        assert!(
            status.is_some_and(|s| s.success()),
            "member {i} did not exit 0 on SIGTERM: {status:?}\n{}",
            cluster.logs()
        );
    }
    for i in 0..cluster.nodes.len() {
        cluster.spawn(i);
    }
    cluster.wait_healthy(Duration::from_secs(30));
}

#[test]
fn leader_killed_under_load_elects_a_new_leader_and_loses_no_acknowledged_write() {
    let rt = runtime();
    let mut cluster = Cluster::start(Impl::Keel, &member_specs(3), &[]);
    let leader = cluster
        .leader(Duration::from_secs(15))
        .unwrap_or_else(|| panic!("no leader\n{}", cluster.logs()));
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Acked = Arc::default();
    let writers: Vec<_> = (0..12)
        .map(|client| {
            rt.spawn(writer(
                client,
                "load".to_owned(),
                endpoints(&cluster),
                stop.clone(),
                acked.clone(),
                None,
            ))
        })
        .collect();
    let count = |acked: &Acked| rt.block_on(async { acked.lock().await.len() });
    let warmed = wait_for(Duration::from_secs(20), || {
        (count(&acked) >= 200).then_some(())
    });
    assert!(
        warmed.is_some(),
        "no write load before the kill\n{}",
        cluster.logs()
    );

    let killed_at = Instant::now();
    let at_kill = count(&acked);
    cluster.kill(leader);
    // Writes in flight when the leader died may still be acknowledged; more than one per
    // client means the cluster commits again.
    let first_acks = wait_for(Duration::from_secs(20), || {
        (count(&acked) > at_kill + 24).then(|| killed_at.elapsed())
    });
    assert!(
        first_acks.is_some(),
        "no write acknowledged within 20 s of killing the leader\n{}",
        cluster.logs()
    );
    eprintln!("writes acknowledged again {first_acks:?} after SIGKILL of the leader");
    let new_leader = cluster.leader(Duration::from_secs(20)).unwrap_or_else(|| {
        panic!(
            "no new leader after killing member {leader}\n{}",
            cluster.logs()
        )
    });
    assert_ne!(new_leader, leader);
    eprintln!(
        "new leader (member {new_leader}) agreed on {:?} after SIGKILL of the leader (member {leader})",
        killed_at.elapsed()
    );
    let after_election = count(&acked);
    let resumed = wait_for(Duration::from_secs(20), || {
        (count(&acked) >= after_election + 200).then_some(())
    });
    assert!(
        resumed.is_some(),
        "writes did not resume after the election\n{}",
        cluster.logs()
    );

    cluster.spawn(leader);
    cluster.wait_healthy(Duration::from_secs(30));
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        rt.block_on(writer).expect("writer task");
    }
    let acked = rt.block_on(async { acked.lock().await.clone() });
    eprintln!("{} acknowledged writes", acked.len());

    restart_all(&mut cluster);
    assert_all_acked_present(&rt, &cluster, "load", &acked);
}

#[test]
fn follower_down_through_log_compaction_catches_up() {
    let rt = runtime();
    let mut cluster = Cluster::start(Impl::Keel, &member_specs(3), &["--snapshot-count=100"]);
    let leader = cluster
        .leader(Duration::from_secs(15))
        .unwrap_or_else(|| panic!("no leader\n{}", cluster.logs()));
    let follower = (leader + 1) % 3;
    cluster.kill(follower);

    // More entries than etcd keeps for slow followers after a snapshot (5000), so a
    // follower that missed them all can only catch up from a snapshot.
    let writes_per_client = 400;
    let clients = 16;
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Acked = Arc::default();
    let live: Vec<String> = cluster
        .running()
        .iter()
        .map(|&i| cluster.endpoint(i))
        .collect();
    let writers: Vec<_> = (0..clients)
        .map(|client| {
            rt.spawn(writer(
                client,
                "snap".to_owned(),
                live.clone(),
                stop.clone(),
                acked.clone(),
                Some(writes_per_client),
            ))
        })
        .collect();
    let done = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(60), async {
            for writer in writers {
                writer.await.expect("writer task");
            }
        })
        .await
    });
    stop.store(true, Ordering::Relaxed);
    assert!(
        done.is_ok(),
        "writes did not finish within 60 s\n{}",
        cluster.logs()
    );
    let acked = rt.block_on(async { acked.lock().await.clone() });
    assert_eq!(acked.len(), writes_per_client * clients);

    cluster.spawn(follower);
    let endpoint = cluster.endpoint(follower);
    let caught_up = wait_for(Duration::from_secs(30), || {
        let stored = rt.block_on(read_prefix(&endpoint, "snap", true)).ok()?;
        (stored.len() == acked.len()).then_some(())
    });
    assert!(
        caught_up.is_some(),
        "the restarted follower did not catch up within 30 s\n{}",
        cluster.logs()
    );
    assert_all_acked_present(&rt, &cluster, "snap", &acked);
}

#[test]
fn restarting_every_member_recovers_the_same_data() {
    let rt = runtime();
    let mut cluster = Cluster::start(Impl::Keel, &member_specs(3), &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Acked = Arc::default();
    let writers: Vec<_> = (0..4)
        .map(|client| {
            rt.spawn(writer(
                client,
                "restart".to_owned(),
                endpoints(&cluster),
                stop.clone(),
                acked.clone(),
                Some(100),
            ))
        })
        .collect();
    let done = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(60), async {
            for writer in writers {
                writer.await.expect("writer task");
            }
        })
        .await
    });
    stop.store(true, Ordering::Relaxed);
    assert!(
        done.is_ok(),
        "writes did not finish within 60 s\n{}",
        cluster.logs()
    );
    let acked = rt.block_on(async { acked.lock().await.clone() });
    assert_eq!(acked.len(), 400);
    let before = common::etcdctl(
        &cluster.endpoint(0),
        &["get", "restart", "--prefix", "-w", "json"],
        None,
    );
    assert!(before.ok(), "{before:?}");
    let revision = |json: &str| -> (i64, serde_json::Value) {
        let value: serde_json::Value = serde_json::from_str(json).expect("etcdctl prints JSON");
        (
            value["header"]["revision"].as_i64().expect("a revision"),
            value["kvs"].clone(),
        )
    };
    let (revision_before, kvs_before) = revision(&before.stdout);

    restart_all(&mut cluster);
    for i in 0..3 {
        let after = common::etcdctl(
            &cluster.endpoint(i),
            &["get", "restart", "--prefix", "-w", "json"],
            None,
        );
        assert!(after.ok(), "{after:?}");
        let (revision_after, kvs_after) = revision(&after.stdout);
        assert_eq!(revision_after, revision_before, "member {i}");
        assert_eq!(kvs_after, kvs_before, "member {i}");
    }
    assert_all_acked_present(&rt, &cluster, "restart", &acked);
    let hashes = common::etcdctl(
        &cluster.endpoints(),
        &["endpoint", "hashkv", "-w", "json"],
        None,
    );
    assert!(hashes.ok(), "{hashes:?}");
    let hashes: serde_json::Value = serde_json::from_str(&hashes.stdout).expect("JSON");
    let distinct: std::collections::BTreeSet<u64> = hashes
        .as_array()
        .expect("one entry per endpoint")
        .iter()
        .map(|entry| entry["HashKV"]["hash"].as_u64().expect("a hash"))
        .collect();
    assert_eq!(
        distinct.len(),
        1,
        "members disagree on the keyspace hash: {hashes}"
    );
}
