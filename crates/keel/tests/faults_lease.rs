//! Leases on a real three-member `keel` cluster while the leader is killed with SIGKILL.
//!
//! - A lease kept alive by a client (etcd's client renews every TTL/3) does not expire:
//!   the client's keep-alive stream fails over to another member, which forwards the
//!   renewals to the new leader.
//! - A lease nobody keeps alive expires exactly once (its keys deleted in one revision,
//!   never again), not before its TTL, and not later than its TTL plus the bound
//!   `keel-server`'s lease docs give for one leader change: the leaderless gap (measured
//!   here) + the election timeout (the promotion's extension) + the checkpoint interval
//!   (5 s) + the leader's 500 ms timer, plus [`SLACK`] for the revoke's Raft round and
//!   this test's polling.
//!
//! Times are printed; the only time assertions are those two bounds.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Cluster, Impl, member_specs};
use keel_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseTimeToLiveRequest, PutRequest, RangeRequest,
    kv_client::KvClient, lease_client::LeaseClient,
};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// etcd's default election timeout, which the members run with.
const ELECTION_TIMEOUT: Duration = Duration::from_secs(1);
/// keel-server's checkpoint interval (`lease::CHECKPOINT_INTERVAL_MS`).
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(5);
/// keel-server's lease timer (`lease::TIMER_INTERVAL`).
const TIMER_INTERVAL: Duration = Duration::from_millis(500);
/// The revoke's proposal and apply, and this test's 100 ms polling with its requests.
const SLACK: Duration = Duration::from_secs(2);
/// How long one client request may take before the client tries the next member.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

const KEPT_TTL_SECS: i64 = 4;
const EXPIRING_TTL_SECS: i64 = 8;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build a tokio runtime")
}

fn endpoints(cluster: &Cluster) -> Vec<String> {
    (0..cluster.nodes.len())
        .map(|i| format!("http://{}", cluster.endpoint(i)))
        .collect()
}

/// What the keep-alive client saw.
#[derive(Default)]
struct KeepAliveLog {
    renewed: AtomicUsize,
    /// Renewals answered after the leader was killed.
    renewed_after_kill: AtomicUsize,
    /// Answers with TTL 0: the lease was gone.
    lost: AtomicUsize,
    failovers: AtomicUsize,
}

/// Renews `id` every TTL/3 on one stream, moving to the next member on any error.
async fn keep_alive(
    id: i64,
    endpoints: Vec<String>,
    mut at: usize,
    stop: Arc<AtomicBool>,
    killed: Arc<AtomicBool>,
    log: Arc<KeepAliveLog>,
) {
    let period = Duration::from_secs(u64::try_from(KEPT_TTL_SECS).expect("positive") / 3)
        .max(Duration::from_millis(500));
    'connect: while !stop.load(Ordering::Relaxed) {
        let opened = async {
            let mut client = LeaseClient::connect(endpoints[at].clone()).await.ok()?;
            let (tx, rx) = mpsc::channel(4);
            let answers = client
                .lease_keep_alive(ReceiverStream::new(rx))
                .await
                .ok()?
                .into_inner();
            Some((tx, answers))
        };
        let Ok(Some((tx, mut answers))) = tokio::time::timeout(REQUEST_TIMEOUT, opened).await
        else {
            at = (at + 1) % endpoints.len();
            log.failovers.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        while !stop.load(Ordering::Relaxed) {
            let answered = async {
                tx.send(LeaseKeepAliveRequest { id }).await.ok()?;
                answers.message().await.ok()?
            };
            match tokio::time::timeout(REQUEST_TIMEOUT, answered).await {
                Ok(Some(answer)) => {
                    if answer.ttl <= 0 {
                        log.lost.fetch_add(1, Ordering::Relaxed);
                    } else {
                        log.renewed.fetch_add(1, Ordering::Relaxed);
                        if killed.load(Ordering::Relaxed) {
                            log.renewed_after_kill.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                _ => {
                    at = (at + 1) % endpoints.len();
                    log.failovers.fetch_add(1, Ordering::Relaxed);
                    continue 'connect;
                }
            }
            tokio::time::sleep(period).await;
        }
    }
}

/// A linearizable range on the first member that answers, skipping `down`.
async fn range_anywhere(endpoints: &[String], down: usize, req: RangeRequest) -> (i64, i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for (i, url) in endpoints.iter().enumerate() {
            if i == down {
                continue;
            }
            let attempt = async {
                let mut kv = KvClient::connect(url.clone()).await.ok()?;
                let r = kv.range(req.clone()).await.ok()?.into_inner();
                Some((r.count, r.header?.revision))
            };
            if let Ok(Some(found)) = tokio::time::timeout(REQUEST_TIMEOUT, attempt).await {
                return found;
            }
        }
        assert!(Instant::now() < deadline, "no member answered a range");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn prefix(p: &str, revision: i64) -> RangeRequest {
    let mut end = p.as_bytes().to_vec();
    *end.last_mut().expect("non-empty prefix") += 1;
    RangeRequest {
        key: p.as_bytes().to_vec(),
        range_end: end,
        revision,
        count_only: true,
        ..RangeRequest::default()
    }
}

#[test]
fn leader_killed_kept_lease_lives_and_unkept_lease_expires_once_within_its_bound() {
    // The harness finds the leader and waits for health with etcdctl.
    assert!(
        std::path::Path::new(common::ETCDCTL).exists(),
        "{} is missing: install Debian's etcd-client (scripts/install-deps)",
        common::ETCDCTL
    );
    let specs = member_specs(3);
    let mut cluster = Cluster::start(Impl::Keel, &specs, &[]);
    let leader = cluster
        .leader(Duration::from_secs(30))
        .expect("a leader is elected");
    let urls = endpoints(&cluster);
    let other = (leader + 1) % 3;
    let rt = runtime();

    // Both leases are granted through a follower, their keys put there too.
    let (kept, expiring, granted_at, put_revision) = rt.block_on(async {
        let mut leases = LeaseClient::connect(urls[other].clone())
            .await
            .expect("connect");
        let mut kv = KvClient::connect(urls[other].clone())
            .await
            .expect("connect");
        let kept = leases
            .lease_grant(LeaseGrantRequest {
                ttl: KEPT_TTL_SECS,
                id: 0,
            })
            .await
            .expect("grant")
            .into_inner()
            .id;
        let granted_at = Instant::now();
        let expiring = leases
            .lease_grant(LeaseGrantRequest {
                ttl: EXPIRING_TTL_SECS,
                id: 0,
            })
            .await
            .expect("grant")
            .into_inner()
            .id;
        for k in ["a/1", "a/2"] {
            kv.put(PutRequest {
                key: k.as_bytes().to_vec(),
                value: b"kept".to_vec(),
                lease: kept,
                ..PutRequest::default()
            })
            .await
            .expect("put");
        }
        let mut put_revision = 0;
        for k in ["b/1", "b/2"] {
            put_revision = kv
                .put(PutRequest {
                    key: k.as_bytes().to_vec(),
                    value: b"expiring".to_vec(),
                    lease: expiring,
                    ..PutRequest::default()
                })
                .await
                .expect("put")
                .into_inner()
                .header
                .expect("header")
                .revision;
        }
        (kept, expiring, granted_at, put_revision)
    });

    let stop = Arc::new(AtomicBool::new(false));
    let killed = Arc::new(AtomicBool::new(false));
    let log = Arc::new(KeepAliveLog::default());
    // The keep-alive client starts on the leader, which is about to die.
    let keeper = rt.spawn(keep_alive(
        kept,
        urls.clone(),
        leader,
        Arc::clone(&stop),
        Arc::clone(&killed),
        Arc::clone(&log),
    ));

    // Past the first checkpoint of the expiring lease (5 s after its grant), kill -9.
    std::thread::sleep(Duration::from_millis(5_500).saturating_sub(granted_at.elapsed()));
    let killed_at = Instant::now();
    cluster.kill(leader);
    killed.store(true, Ordering::Relaxed);
    let new_leader = cluster
        .leader(Duration::from_secs(30))
        .expect("the survivors elect a leader");
    assert_ne!(new_leader, leader);
    let gap = killed_at.elapsed();
    println!("new leader after {gap:?}");

    let bound = Duration::from_secs(u64::try_from(EXPIRING_TTL_SECS).expect("positive"))
        + gap
        + ELECTION_TIMEOUT
        + CHECKPOINT_INTERVAL
        + TIMER_INTERVAL
        + SLACK;
    let gone_after = rt.block_on(async {
        loop {
            let (count, _) = range_anywhere(&urls, leader, prefix("b/", 0)).await;
            let elapsed = granted_at.elapsed();
            if count == 0 {
                return elapsed;
            }
            assert!(
                elapsed <= bound + Duration::from_secs(10),
                "the expiring lease still has its keys after {elapsed:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    println!("unkept lease's keys gone {gone_after:?} after its grant (bound {bound:?})");
    assert!(
        gone_after >= Duration::from_secs(u64::try_from(EXPIRING_TTL_SECS).expect("positive")),
        "expired after {gone_after:?}, before its TTL"
    );
    assert!(
        gone_after <= bound,
        "expired after {gone_after:?}, past its bound {bound:?}"
    );

    // Keep renewing a while past the expiry, then check both leases.
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    rt.block_on(async {
        let _ = tokio::time::timeout(Duration::from_secs(10), keeper).await;
    });
    println!(
        "keep-alives: {} renewed ({} after the kill), {} failovers, {} lost",
        log.renewed.load(Ordering::Relaxed),
        log.renewed_after_kill.load(Ordering::Relaxed),
        log.failovers.load(Ordering::Relaxed),
        log.lost.load(Ordering::Relaxed)
    );
    assert_eq!(
        log.lost.load(Ordering::Relaxed),
        0,
        "the kept lease was gone"
    );
    assert!(
        log.renewed_after_kill.load(Ordering::Relaxed) > 0,
        "no renewal went through another member after the kill"
    );

    rt.block_on(async {
        let (count, current) = range_anywhere(&urls, leader, prefix("a/", 0)).await;
        assert_eq!(count, 2, "the kept lease's keys are there");
        // The expiring lease's keys went in one revision, once: 2 live before it, 0 at
        // and after it, through every revision since they were put.
        let mut seen = Vec::new();
        for rev in put_revision..=current {
            let (count, _) = range_anywhere(&urls, leader, prefix("b/", rev)).await;
            seen.push(count);
        }
        let drop_at = seen.iter().position(|c| *c == 0).expect("the keys went");
        assert!(
            seen[..drop_at].iter().all(|c| *c == 2) && seen[drop_at..].iter().all(|c| *c == 0),
            "counts of b/ per revision from {put_revision}: {seen:?}"
        );
        let mut leases = LeaseClient::connect(urls[new_leader].clone())
            .await
            .expect("connect");
        let t = leases
            .lease_time_to_live(LeaseTimeToLiveRequest {
                id: expiring,
                keys: false,
            })
            .await
            .expect("time to live")
            .into_inner();
        assert_eq!(t.ttl, -1, "the expiring lease is gone");
        let t = leases
            .lease_time_to_live(LeaseTimeToLiveRequest {
                id: kept,
                keys: true,
            })
            .await
            .expect("time to live")
            .into_inner();
        assert!(t.ttl > 0, "the kept lease lives: {t:?}");
        assert_eq!(t.keys, vec![b"a/1".to_vec(), b"a/2".to_vec()]);
    });
    drop(cluster);
}
