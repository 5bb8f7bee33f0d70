//! The proxies really break the links they are told to: a partitioned leader
//! is replaced by the majority, a one-way cut of the leader's outgoing links
//! does the same, and healing lets the cluster agree again.

mod common;

use std::time::Duration;

use keel_robustness::cluster::Cluster;
use keel_robustness::proxy::LinkFaults;

/// Polls until the members in `among` agree on a leader other than `old`.
async fn new_leader_among(cluster: &Cluster, among: &[usize], old: u64) -> Option<u64> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < deadline {
        let mut leaders = Vec::new();
        for &i in among {
            leaders.push(cluster.status(i).await.map(|(leader, _, _)| leader));
        }
        if let Some(Some(first)) = leaders.first()
            && *first != 0
            && *first != old
            && leaders.iter().all(|l| *l == Some(*first))
        {
            return Some(*first);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

#[test]
fn partitions_and_one_way_cuts_isolate_the_leader() {
    let _one = common::one_cluster_at_a_time();
    let dir = tempfile::tempdir().expect("a temp dir");
    common::runtime().block_on(async {
        let mut cluster = Cluster::start(&common::keel_bin(), 3, dir.path(), 5, &[])
            .await
            .expect("a 3-member cluster starts");
        let leader = cluster.leader().await.expect("a leader after start");
        let (_, leader_id, _) = cluster.status(leader).await.expect("the leader answers");
        let rest: Vec<usize> = (0..3).filter(|&i| i != leader).collect();

        cluster.partition(&[leader], &rest);
        new_leader_among(&cluster, &rest, leader_id)
            .await
            .expect("the majority elects a new leader when the old one is cut off");
        cluster.heal().expect("heal");
        cluster
            .wait_healthy(Duration::from_secs(30))
            .await
            .expect("the cluster agrees again after healing");

        let leader = cluster.leader().await.expect("a leader after healing");
        let (_, leader_id, _) = cluster.status(leader).await.expect("the leader answers");
        let rest: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
        let cut = LinkFaults {
            blackhole: true,
            ..LinkFaults::default()
        };
        for &to in &rest {
            cluster.set_link(leader, to, cut);
        }
        new_leader_among(&cluster, &rest, leader_id)
            .await
            .expect("followers that stop hearing the leader elect another, one-way cut");
        cluster.heal().expect("heal");
        cluster
            .wait_healthy(Duration::from_secs(30))
            .await
            .expect("the cluster agrees again after the one-way cut heals");
    });
}
