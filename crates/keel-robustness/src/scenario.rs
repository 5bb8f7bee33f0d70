//! The fault scenarios: what is broken, and how it is healed.
//!
//! A run alternates quiet periods and faults: each cycle waits, injects the
//! scenario's fault, holds it, then heals everything (links cleared, paused
//! members resumed, killed members restarted). Choices (which member, which
//! split) come from the run's seed.
//!
//! The `failpoint-*` and `slow-disk` scenarios break a member from inside
//! through keel's failpoints, so they need a `keel` built with the
//! `failpoints` feature (the workspace test build is; they fail, saying so,
//! otherwise). A `failpoint-*` scenario arms `panic` at its point on a random
//! member and waits (bounded) until the member crashes there under traffic;
//! the crashed member stays down for the hold and is restarted on heal,
//! recovering from exactly what that crash left on disk. A point not reached
//! in time is cleared, and the event log says so.

use rand::Rng as _;
use rand::rngs::SmallRng;
use std::time::Duration;

use crate::RobustnessError;
use crate::cluster::Cluster;
use crate::proxy::LinkFaults;

/// A fault scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// `kill -9` the leader, restart it on heal.
    KillLeader,
    /// `kill -9` a follower, restart it on heal.
    KillFollower,
    /// `kill -9` any member, restart it on heal.
    KillRandom,
    /// SIGSTOP the leader, SIGCONT it on heal.
    PauseLeader,
    /// Cut the leader off from every other member (leader in the minority).
    PartitionLeader,
    /// Split the members into a random majority and minority.
    PartitionMajority,
    /// Blackhole only the leader's outgoing links: it still hears the others.
    OneWayLeader,
    /// Reset 5% of chunks and delay every chunk 20 ms ± 30 ms on every link.
    LossyLinks,
    /// Compaction every 500 ms while followers are killed and restarted.
    Compaction,
    /// Crash a random member at `raft_before_save`: entries not yet in its WAL.
    FailpointRaftBeforeSave,
    /// Crash a random member at `wal_before_sync`: written, not yet fsynced.
    FailpointWalBeforeSync,
    /// Crash a random member at `backend_before_commit`: applied entries not
    /// yet in the backend, replayed from the WAL on restart.
    FailpointBackendBeforeCommit,
    /// Crash a random member at `apply_before_consistent_index`: committed,
    /// not applied.
    FailpointApplyBeforeConsistentIndex,
    /// Slow disk on the leader: its next WAL fsyncs and backend commits sleep
    /// (a bounded count of them).
    SlowDisk,
}

/// How long a `failpoint-*` scenario waits for its member to crash.
const FAILPOINT_TRIGGER: Duration = Duration::from_secs(3);
/// How long a member that was just restarted may take to answer a failpoint request.
const FAILPOINT_REACH: Duration = Duration::from_secs(3);
/// `slow-disk`: the actions of the WAL and backend points (count-limited, so
/// the disk heals by itself).
const SLOW_WAL_SYNC: &str = "10*sleep(200)";
const SLOW_BACKEND_COMMIT: &str = "5*sleep(300)";

impl Scenario {
    /// Every scenario, in the order `all` runs them.
    pub const ALL: [Scenario; 14] = [
        Scenario::KillLeader,
        Scenario::KillFollower,
        Scenario::KillRandom,
        Scenario::PauseLeader,
        Scenario::PartitionLeader,
        Scenario::PartitionMajority,
        Scenario::OneWayLeader,
        Scenario::LossyLinks,
        Scenario::Compaction,
        Scenario::FailpointRaftBeforeSave,
        Scenario::FailpointWalBeforeSync,
        Scenario::FailpointBackendBeforeCommit,
        Scenario::FailpointApplyBeforeConsistentIndex,
        Scenario::SlowDisk,
    ];

    /// The CLI name.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::KillLeader => "kill-leader",
            Scenario::KillFollower => "kill-follower",
            Scenario::KillRandom => "kill-random",
            Scenario::PauseLeader => "pause-leader",
            Scenario::PartitionLeader => "partition-leader",
            Scenario::PartitionMajority => "partition-majority",
            Scenario::OneWayLeader => "one-way-leader",
            Scenario::LossyLinks => "lossy-links",
            Scenario::Compaction => "compaction",
            Scenario::FailpointRaftBeforeSave => "failpoint-raft-before-save",
            Scenario::FailpointWalBeforeSync => "failpoint-wal-before-sync",
            Scenario::FailpointBackendBeforeCommit => "failpoint-backend-before-commit",
            Scenario::FailpointApplyBeforeConsistentIndex => {
                "failpoint-apply-before-consistent-index"
            }
            Scenario::SlowDisk => "slow-disk",
        }
    }

    /// The server failpoint a `failpoint-*` scenario crashes a member at.
    pub fn crash_point(self) -> Option<&'static str> {
        match self {
            Scenario::FailpointRaftBeforeSave => Some("raft_before_save"),
            Scenario::FailpointWalBeforeSync => Some("wal_before_sync"),
            Scenario::FailpointBackendBeforeCommit => Some("backend_before_commit"),
            Scenario::FailpointApplyBeforeConsistentIndex => Some("apply_before_consistent_index"),
            _ => None,
        }
    }

    /// Whether the scenario needs a `keel` built with failpoints.
    pub fn needs_failpoints(self) -> bool {
        self.crash_point().is_some() || self == Scenario::SlowDisk
    }

    /// Parses a CLI name.
    pub fn parse(name: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Whether a compactor runs beside the traffic.
    pub fn compacts(self) -> bool {
        matches!(self, Scenario::Compaction)
    }

    /// Injects the fault on `cluster`; returns a line for the event log.
    pub async fn inject(
        self,
        cluster: &mut Cluster,
        rng: &mut SmallRng,
    ) -> Result<String, RobustnessError> {
        let n = cluster.len();
        let leader = cluster.leader().await;
        let any = rng.random_range(0..n);
        let follower = match leader {
            Some(l) => (l + 1 + rng.random_range(0..n - 1)) % n,
            None => any,
        };
        Ok(match self {
            Scenario::KillLeader | Scenario::KillFollower | Scenario::KillRandom => {
                let victim = match self {
                    Scenario::KillLeader => leader.unwrap_or(any),
                    Scenario::KillFollower => follower,
                    _ => any,
                };
                cluster.kill(victim);
                format!("kill -9 m{victim} (leader {leader:?})")
            }
            Scenario::PauseLeader => {
                let victim = leader.unwrap_or(any);
                cluster.pause(victim)?;
                format!("SIGSTOP m{victim} (leader {leader:?})")
            }
            Scenario::PartitionLeader => {
                let victim = leader.unwrap_or(any);
                let rest: Vec<usize> = (0..n).filter(|&i| i != victim).collect();
                cluster.partition(&[victim], &rest);
                format!("partition [m{victim}] | {rest:?} (leader {leader:?})")
            }
            Scenario::PartitionMajority => {
                let mut order: Vec<usize> = (0..n).collect();
                for i in (1..n).rev() {
                    order.swap(i, rng.random_range(0..=i));
                }
                let (minority, majority) = order.split_at(n.saturating_sub(1) / 2);
                cluster.partition(minority, majority);
                format!(
                    "partition minority {minority:?} | majority {majority:?} (leader {leader:?})"
                )
            }
            Scenario::OneWayLeader => {
                let victim = leader.unwrap_or(any);
                for to in (0..n).filter(|&i| i != victim) {
                    cluster.set_link(
                        victim,
                        to,
                        LinkFaults {
                            blackhole: true,
                            ..LinkFaults::default()
                        },
                    );
                }
                format!("blackhole m{victim} -> others, one way (leader {leader:?})")
            }
            Scenario::LossyLinks => {
                let faults = LinkFaults {
                    blackhole: false,
                    drop_per_mille: 50,
                    delay_ms: 20,
                    jitter_ms: 30,
                };
                cluster.set_all_links(faults);
                format!("every link: {faults:?}")
            }
            Scenario::Compaction => {
                cluster.kill(follower);
                format!("kill -9 m{follower} during compactions (leader {leader:?})")
            }
            Scenario::FailpointRaftBeforeSave
            | Scenario::FailpointWalBeforeSync
            | Scenario::FailpointBackendBeforeCommit
            | Scenario::FailpointApplyBeforeConsistentIndex => {
                let point = self
                    .crash_point()
                    .expect("every failpoint-* scenario names its point");
                crash_at(cluster, any, point, leader).await?
            }
            Scenario::SlowDisk => {
                let victim = leader.unwrap_or(any);
                let armed = arm(cluster, victim, "wal_before_sync", SLOW_WAL_SYNC).await?
                    && arm(
                        cluster,
                        victim,
                        "backend_before_commit",
                        SLOW_BACKEND_COMMIT,
                    )
                    .await?;
                if armed {
                    format!(
                        "slow disk on m{victim}: wal_before_sync={SLOW_WAL_SYNC}, backend_before_commit={SLOW_BACKEND_COMMIT} (leader {leader:?})"
                    )
                } else {
                    format!(
                        "slow disk: m{victim} did not answer; nothing armed (leader {leader:?})"
                    )
                }
            }
        })
    }
}

/// Sets failpoint `point` to `actions` on member `i`, retrying while the
/// member (maybe just restarted) does not answer. Returns whether it was set;
/// fails when the member answers but has no failpoints.
async fn arm(
    cluster: &Cluster,
    i: usize,
    point: &str,
    actions: &str,
) -> Result<bool, RobustnessError> {
    let deadline = tokio::time::Instant::now() + FAILPOINT_REACH;
    loop {
        if let Ok(supported) = cluster.has_failpoints(i).await {
            if !supported {
                return Err(RobustnessError::Cluster(format!(
                    "m{i} does not serve /debug/failpoints: its keel was built without the `failpoints` feature (cargo build -p keel --features failpoints; the workspace test build has it)"
                )));
            }
            return cluster
                .set_failpoint(i, point, actions)
                .await
                .map(|()| true);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Arms `panic` at `point` on member `victim` and waits (bounded) for the
/// crash; a point not reached in time is cleared again.
async fn crash_at(
    cluster: &mut Cluster,
    victim: usize,
    point: &str,
    leader: Option<usize>,
) -> Result<String, RobustnessError> {
    if !arm(cluster, victim, point, "panic").await? {
        return Ok(format!(
            "m{victim} did not answer; {point} not armed (leader {leader:?})"
        ));
    }
    let armed = tokio::time::Instant::now();
    while armed.elapsed() < FAILPOINT_TRIGGER {
        if cluster.exited(victim) {
            return Ok(format!(
                "m{victim} crashed at failpoint {point} {} ms after arming (leader {leader:?})",
                armed.elapsed().as_millis()
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Cleared so that it cannot fire after the final heal. It may have fired
    // just before: give an aborting process a moment to be seen as exited.
    let cleared = cluster.clear_failpoint(victim, point).await;
    let settle = tokio::time::Instant::now();
    while settle.elapsed() < Duration::from_millis(300) {
        if cluster.exited(victim) {
            return Ok(format!(
                "m{victim} crashed at failpoint {point} as it was being cleared (leader {leader:?})"
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cleared?;
    Ok(format!(
        "failpoint {point} on m{victim} not reached within {FAILPOINT_TRIGGER:?}; cleared (leader {leader:?})"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in Scenario::ALL {
            assert_eq!(Scenario::parse(s.name()), Some(s));
        }
        assert_eq!(Scenario::parse("nope"), None);
    }
}
