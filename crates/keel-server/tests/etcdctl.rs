//! Debian's real `etcdctl` 3.4 against an in-process Keel cluster, and the real `etcd`
//! 3.4 started with the same flags to compare member and cluster ids.

mod support;

use std::time::{Duration, Instant};

use support::{Cluster, WAIT, free_addrs};
use tokio::process::Command;

const ETCDCTL: &str = "/usr/bin/etcdctl";
const ETCD: &str = "/usr/bin/etcd";

async fn etcdctl(endpoints: &str, args: &[&str]) -> (bool, String) {
    let out = tokio::time::timeout(
        WAIT,
        Command::new(ETCDCTL)
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={endpoints}"))
            .arg("--command-timeout=10s")
            .args(args)
            .output(),
    )
    .await
    .expect("etcdctl finished in time")
    .expect("etcdctl runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_put_get_status_health_member_list() {
    let c = Cluster::start(3).await;
    let leader = c.wait_leader().await;
    let follower = (leader + 1) % 3;
    let ep = c.endpoint(follower);

    assert_eq!(
        etcdctl(&ep, &["put", "foo", "bar"]).await,
        (true, "OK\n".to_owned())
    );
    assert_eq!(
        etcdctl(&ep, &["get", "foo"]).await,
        (true, "foo\nbar\n".to_owned())
    );

    let (ok, health) = etcdctl(&ep, &["endpoint", "health"]).await;
    assert!(ok && health.contains("is healthy"), "{health}");

    let (ok, status) = etcdctl(&ep, &["endpoint", "status", "-w", "json"]).await;
    assert!(ok, "{status}");
    let leader_id = c.member_id(leader);
    // etcdctl prints ids as JSON numbers.
    assert!(
        status.contains(&format!("\"leader\":{leader_id}")),
        "{status}"
    );
    assert!(status.contains("\"version\":\"3.4.0\""), "{status}");

    // Members publish their names and client URLs through Raft after they start.
    let deadline = Instant::now() + WAIT;
    loop {
        let (ok, list) = etcdctl(&ep, &["member", "list"]).await;
        assert!(ok, "{list}");
        let lines: Vec<&str> = list.lines().collect();
        assert_eq!(lines.len(), 3, "{list}");
        let complete = (0..3).all(|i| {
            let id = format!("{:x}", c.member_id(i));
            lines.iter().any(|l| {
                l.starts_with(&id) && l.contains(&format!(", m{i}, ")) && l.contains(&c.endpoint(i))
            })
        });
        if complete {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "member list never complete: {list}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.shutdown().await;
}

/// A one-member etcd and a one-member Keel with the same flags get the same ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_and_cluster_ids_match_real_etcd() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addrs = free_addrs(2);
    let (client, peer) = (
        format!("http://{}", addrs[0]),
        format!("http://{}", addrs[1]),
    );
    let mut etcd = Command::new(ETCD)
        .args([
            "--name=idcheck",
            &format!("--data-dir={}", dir.path().join("etcd").display()),
            &format!("--listen-client-urls={client}"),
            &format!("--advertise-client-urls={client}"),
            &format!("--listen-peer-urls={peer}"),
            &format!("--initial-advertise-peer-urls={peer}"),
            &format!("--initial-cluster=idcheck={peer}"),
            "--initial-cluster-token=token-for-ids",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("etcd starts");
    let deadline = Instant::now() + WAIT;
    let header = loop {
        let (ok, out) = etcdctl(&client, &["member", "list", "-w", "json"]).await;
        if ok {
            break out;
        }
        assert!(Instant::now() < deadline, "etcd never answered: {out}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    etcd.kill().await.expect("stop etcd");

    let mut config = support::cluster_configs(dir.path(), 1).remove(0);
    config.name = "idcheck".to_owned();
    config.initial_cluster[0].name = "idcheck".to_owned();
    config.initial_cluster[0].peer_url = peer.parse().expect("url");
    config.initial_advertise_peer_urls = vec![peer.parse().expect("url")];
    config.initial_cluster_token = "token-for-ids".to_owned();
    let keel = keel_server::Server::start(config)
        .await
        .expect("keel starts");
    assert!(
        header.contains(&format!("\"cluster_id\":{}", keel.cluster_id())),
        "etcd: {header}, keel cluster id {}",
        keel.cluster_id()
    );
    assert!(
        header.contains(&format!("\"member_id\":{}", keel.member_id())),
        "etcd: {header}, keel member id {}",
        keel.member_id()
    );
    keel.shutdown().await.expect("shutdown");
}
