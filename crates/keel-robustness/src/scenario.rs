//! The fault scenarios: what is broken, and how it is healed.
//!
//! A run alternates quiet periods and faults: each cycle waits, injects the
//! scenario's fault, holds it, then heals everything (links cleared, paused
//! members resumed, killed members restarted). Choices (which member, which
//! split) come from the run's seed.

use rand::Rng as _;
use rand::rngs::SmallRng;

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
}

impl Scenario {
    /// Every scenario, in the order `all` runs them.
    pub const ALL: [Scenario; 9] = [
        Scenario::KillLeader,
        Scenario::KillFollower,
        Scenario::KillRandom,
        Scenario::PauseLeader,
        Scenario::PartitionLeader,
        Scenario::PartitionMajority,
        Scenario::OneWayLeader,
        Scenario::LossyLinks,
        Scenario::Compaction,
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
        }
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
        })
    }
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
