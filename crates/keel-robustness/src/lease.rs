//! Lease traffic: grants with client-chosen ids, keys attached to leases,
//! keep-alives, revokes, and leases left to expire, each recorded in the
//! history like the KV operations.
//!
//! A lease client is one tokio task with one connection to one member (it
//! moves to the next member after an error). It holds at most
//! [`MAX_LIVE_LEASES`] leases, each with a fate chosen at grant time:
//!
//! * **kept alive**: a keep-alive every third of its TTL for a few seconds,
//!   then revoked;
//! * **revoked**: revoked a little before its TTL runs out;
//! * **left to expire**: never renewed; probed after its TTL with puts
//!   attached to it until the server answers "lease not found" (a put is
//!   applied through Raft, so its answer is authoritative, where etcd 3.4
//!   answers `LeaseTimeToLive` and `LeaseKeepAlive` from the leader's memory,
//!   which a deposed leader may not have caught up).
//!
//! Between those it puts keys attached to its leases (under [`LEASE_PREFIX`],
//! never a key of the KV traffic, whose linearizability model knows nothing
//! of leases) and reads them back with linearizable prefix ranges. Ids are
//! chosen by the client so that a grant with an unknown outcome still names
//! its lease; such a lease is never used (it may or may not exist).
//!
//! Error classification: "requested lease not found" is a definite answer
//! ([`Response::LeaseNotFound`]); any other failure of a request that changes
//! state is recorded with an unknown outcome; failed reads are dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use keel_proto::etcdserverpb::kv_client::KvClient;
use keel_proto::etcdserverpb::lease_client::LeaseClient;
use keel_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseRevokeRequest, PutRequest,
};
use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng as _};
use tonic::transport::Channel;

use crate::history::{Outcome, Record, Recorder, Request, Response};
use crate::traffic::{self, REQUEST_TIMEOUT};

/// Prefix of every key attached to a lease (inside [`traffic::KEY_PREFIX`],
/// so watchers of the run see them, but never one of the KV traffic's keys).
pub const LEASE_PREFIX: &str = "/robustness/lease/";
/// Client ids of lease clients start here (KV clients count from 0).
pub const LEASE_CLIENT_BASE: u64 = 1 << 40;
/// Leases a client holds at once.
pub const MAX_LIVE_LEASES: usize = 4;
/// Keys per lease.
const KEYS_PER_LEASE: u32 = 3;
/// Pause between two operations, so a client does not flood the cluster.
const PACE: Duration = Duration::from_millis(40);
/// Pause after an error.
const ERROR_BACKOFF: Duration = Duration::from_millis(100);
/// Probes of a lease left to expire before giving up on it.
const MAX_PROBES: u32 = 30;

/// A member's KV and Lease services on one connection.
#[derive(Debug, Clone)]
pub struct LeaseConn {
    kv: KvClient<Channel>,
    lease: LeaseClient<Channel>,
}

impl LeaseConn {
    /// Connects to `url`, bounded in time.
    pub async fn connect(url: &str) -> Option<LeaseConn> {
        let channel = traffic::channel(url).await?;
        Some(LeaseConn {
            kv: KvClient::new(channel.clone()),
            lease: LeaseClient::new(channel),
        })
    }
}

fn is_lease_not_found(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::NotFound && status.message().contains("lease not found")
}

fn header_revision(header: Option<&keel_proto::etcdserverpb::ResponseHeader>) -> i64 {
    header.map_or(0, |h| h.revision)
}

/// Sends a lease request (a put attached to a lease, or a prefix range) and reduces the
/// answer to a [`Response`] and its header revision (0 when the answer is
/// "lease not found", which carries no header).
///
/// # Panics
///
/// On a request that is not a lease request: the caller picks the driver.
pub async fn execute(conn: &mut LeaseConn, request: &Request) -> Result<(i64, Response), String> {
    let call = async {
        let answer = match request {
            Request::LeaseGrant { id, ttl_secs } => conn
                .lease
                .lease_grant(LeaseGrantRequest {
                    ttl: *ttl_secs,
                    id: *id,
                })
                .await
                .map(|r| {
                    let r = r.into_inner();
                    assert_eq!(r.id, *id, "a grant answered for another lease id");
                    (
                        header_revision(r.header.as_ref()),
                        Response::LeaseGranted { ttl_secs: r.ttl },
                    )
                }),
            Request::LeaseRevoke { id } => conn
                .lease
                .lease_revoke(LeaseRevokeRequest { id: *id })
                .await
                .map(|r| {
                    (
                        header_revision(r.into_inner().header.as_ref()),
                        Response::LeaseRevoked,
                    )
                }),
            Request::LeaseKeepAlive { id } => {
                // One stream per keep-alive: its answer is attributed to this
                // request alone. The sender stays open until the answer.
                let (tx, rx) = tokio::sync::mpsc::channel(1);
                tx.send(LeaseKeepAliveRequest { id: *id })
                    .await
                    .map_err(|e| e.to_string())?;
                let mut stream = conn
                    .lease
                    .lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(rx))
                    .await
                    .map_err(|s| s.to_string())?
                    .into_inner();
                let answer = stream.message().await.map_err(|s| s.to_string())?;
                drop(tx);
                let r = answer.ok_or("the keep-alive stream ended without an answer")?;
                let revision = header_revision(r.header.as_ref());
                // etcd answers a keep-alive of an unknown lease with TTL 0.
                let response = if r.ttl <= 0 {
                    Response::LeaseNotFound
                } else {
                    Response::LeaseAlive { ttl_secs: r.ttl }
                };
                return Ok((revision, response));
            }
            Request::PutWithLease { key, value, lease } => conn
                .kv
                .put(PutRequest {
                    key: key.clone().into_bytes(),
                    value: value.clone().into_bytes(),
                    lease: *lease,
                    ..PutRequest::default()
                })
                .await
                .map(|r| {
                    (
                        header_revision(r.into_inner().header.as_ref()),
                        Response::Put,
                    )
                }),
            Request::Range { .. } => {
                let mut kv = conn.kv.clone();
                return traffic::execute(&mut kv, request).await;
            }
            other => panic!("lease::execute drives lease requests only, got {other:?}"),
        };
        match answer {
            Ok(ok) => Ok(ok),
            Err(status) if is_lease_not_found(&status) => Ok((0, Response::LeaseNotFound)),
            Err(status) => Err(status.to_string()),
        }
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, call).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {REQUEST_TIMEOUT:?}")),
    }
}

/// What the client means to do with a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Renew until `until_ns`, then revoke.
    KeptAlive { until_ns: u64 },
    /// Revoke at `at_ns`.
    Revoked { at_ns: u64 },
    /// Never renew; probe after the TTL.
    Expires,
}

#[derive(Debug)]
struct Live {
    id: i64,
    ttl_secs: i64,
    fate: Fate,
    /// When the next keep-alive or probe is due.
    next_ns: u64,
    probes: u32,
}

/// Nanoseconds in `secs` seconds.
fn secs_ns(secs: i64) -> u64 {
    u64::try_from(secs).unwrap_or(0) * 1_000_000_000
}

/// One lease client's loop: runs until `stop` is set or the history is full.
/// `index` numbers the lease clients from 0.
pub async fn lease_loop(
    index: u64,
    urls: Arc<Vec<String>>,
    seed: u64,
    recorder: Arc<Recorder>,
    stop: Arc<AtomicBool>,
) {
    assert!(!urls.is_empty(), "traffic needs a member to talk to");
    let client = LEASE_CLIENT_BASE + index;
    let mut rng = SmallRng::seed_from_u64(seed ^ client.wrapping_mul(0x2545_f491_4f6c_dd1d));
    let mut member = usize::try_from(index).unwrap_or(0) % urls.len();
    let mut conn: Option<LeaseConn> = None;
    let mut live: Vec<Live> = Vec::new();
    let mut seq = 0u64;
    let mut next_id = 0i64;
    let id_base = i64::try_from(index + 1).unwrap_or(1) << 32;
    while !stop.load(Ordering::Relaxed) && !recorder.is_full() {
        if conn.is_none() {
            conn = LeaseConn::connect(&urls[member]).await;
            if conn.is_none() {
                member = (member + 1) % urls.len();
                tokio::time::sleep(ERROR_BACKOFF).await;
                continue;
            }
        }
        seq += 1;
        let now = recorder.now_ns();
        let due = live.iter().position(|l| l.next_ns <= now);
        let (request, slot) = match due {
            Some(i) => {
                let l = &live[i];
                let request = match l.fate {
                    Fate::KeptAlive { until_ns } if now < until_ns => {
                        Request::LeaseKeepAlive { id: l.id }
                    }
                    Fate::KeptAlive { .. } | Fate::Revoked { .. } => {
                        Request::LeaseRevoke { id: l.id }
                    }
                    Fate::Expires => Request::PutWithLease {
                        key: format!("{LEASE_PREFIX}{:x}/probe", l.id),
                        value: format!("l{index}-{seq}"),
                        lease: l.id,
                    },
                };
                (request, Some(i))
            }
            None if live.len() < MAX_LIVE_LEASES && rng.random_bool(0.3) => {
                next_id += 1;
                let ttl_secs = rng.random_range(2..=4);
                (
                    Request::LeaseGrant {
                        id: id_base | next_id,
                        ttl_secs,
                    },
                    None,
                )
            }
            None if !live.is_empty() && rng.random_bool(0.7) => {
                let i = rng.random_range(0..live.len());
                let l = &live[i];
                let j = rng.random_range(0..KEYS_PER_LEASE);
                (
                    Request::PutWithLease {
                        key: format!("{LEASE_PREFIX}{:x}/{j}", l.id),
                        value: format!("l{index}-{seq}"),
                        lease: l.id,
                    },
                    Some(i),
                )
            }
            None => (
                Request::Range {
                    prefix: LEASE_PREFIX.to_owned(),
                    serializable: false,
                },
                None,
            ),
        };
        let sent_to = member;
        let invoked_ns = recorder.now_ns();
        let result = execute(conn.as_mut().expect("connected above"), &request).await;
        let returned_ns = recorder.now_ns();
        let outcome = match result {
            Ok((revision, response)) => Outcome::Ok {
                returned_ns,
                revision,
                response,
            },
            Err(error) => {
                conn = None;
                member = (member + 1) % urls.len();
                if request.is_read() {
                    tokio::time::sleep(ERROR_BACKOFF).await;
                    continue;
                }
                Outcome::Unknown { error }
            }
        };
        update(&mut live, slot, &request, &outcome, returned_ns, &mut rng);
        let failed = matches!(outcome, Outcome::Unknown { .. });
        recorder.push(Record {
            client,
            member: sent_to,
            request,
            invoked_ns,
            outcome,
        });
        tokio::time::sleep(if failed { ERROR_BACKOFF } else { PACE }).await;
    }
}

/// Updates the client's leases after an answer.
fn update(
    live: &mut Vec<Live>,
    slot: Option<usize>,
    request: &Request,
    outcome: &Outcome,
    returned_ns: u64,
    rng: &mut SmallRng,
) {
    let response = match outcome {
        Outcome::Ok { response, .. } => Some(response),
        Outcome::Unknown { .. } => None,
    };
    match (request, response, slot) {
        (Request::LeaseGrant { id, .. }, Some(Response::LeaseGranted { ttl_secs }), _) => {
            let ttl_ns = secs_ns(*ttl_secs);
            let fate = match rng.random_range(0..3u32) {
                0 => Fate::KeptAlive {
                    until_ns: returned_ns + ttl_ns * 2,
                },
                1 => Fate::Revoked {
                    at_ns: returned_ns + ttl_ns / 2,
                },
                _ => Fate::Expires,
            };
            let next_ns = match fate {
                Fate::KeptAlive { .. } => returned_ns + ttl_ns / 3,
                Fate::Revoked { at_ns } => at_ns,
                Fate::Expires => returned_ns + ttl_ns + 1_000_000_000,
            };
            live.push(Live {
                id: *id,
                ttl_secs: *ttl_secs,
                fate,
                next_ns,
                probes: 0,
            });
        }
        // An unknown grant: the lease may or may not exist; it is not used.
        (Request::LeaseGrant { .. }, _, _) => {}
        (_, Some(Response::LeaseNotFound), Some(i)) => {
            live.swap_remove(i);
        }
        (Request::LeaseRevoke { .. }, _, Some(i)) => {
            live.swap_remove(i);
        }
        (Request::LeaseKeepAlive { .. }, Some(Response::LeaseAlive { .. }), Some(i)) => {
            let l = &mut live[i];
            l.next_ns = returned_ns + secs_ns(l.ttl_secs) / 3;
        }
        // A keep-alive that may have been lost: try again at once.
        (Request::LeaseKeepAlive { .. }, None, Some(i)) => live[i].next_ns = returned_ns,
        // A probe of a lease left to expire found it still there.
        (Request::PutWithLease { .. }, _, Some(i))
            if live[i].fate == Fate::Expires && live[i].next_ns <= returned_ns =>
        {
            let l = &mut live[i];
            l.probes += 1;
            if l.probes >= MAX_PROBES {
                live.swap_remove(i);
            } else {
                l.next_ns = returned_ns + 500_000_000;
            }
        }
        _ => {}
    }
}
