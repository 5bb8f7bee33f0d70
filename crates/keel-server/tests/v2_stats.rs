//! `/v2/stats/self` and `/v2/stats/leader` on a real 3-member in-process cluster: the
//! append counters, rates and per-follower round trips behind them are real (counted by
//! the peer transport), shaped as etcd 3.4's `ServerStats` and `LeaderStats`.

mod support;

#[path = "../../keel-v2http/tests/common/mod.rs"]
mod http;

use std::time::{Duration, Instant};

use http::Answer;
use serde_json::Value;
use support::{Cluster, WAIT};

/// Writes in the first round.
const WRITES: u64 = 20;

async fn req(base: &str, method: &str, path: &str, form: &str) -> Answer {
    http::request(base, method, path, form).await
}

fn json(a: &Answer) -> Value {
    serde_json::from_str(&a.body).unwrap_or_else(|e| panic!("{e}: not JSON: {a:?}"))
}

async fn get_json(base: &str, path: &str) -> Value {
    let a = req(base, "GET", path, "").await;
    assert_eq!(a.status, 200, "{path}: {a:?}");
    assert_eq!(a.header("content-type"), Some("application/json"), "{a:?}");
    json(&a)
}

/// A v2 write, retried while the cluster has no leader.
async fn write(base: &str, key: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let a = req(base, "PUT", &format!("/v2/keys/{key}"), "value=v").await;
        if a.status == 200 || a.status == 201 {
            return;
        }
        assert!(Instant::now() < deadline, "write kept failing: {a:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `path` on `base` until `check` accepts its JSON; returns it.
async fn wait_json(base: &str, path: &str, mut check: impl FnMut(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = get_json(base, path).await;
        if check(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{base}{path} never matched: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn hex_id(c: &Cluster, i: usize) -> String {
    format!("{:x}", c.member_id(i))
}

fn count(v: &Value, field: &str) -> u64 {
    v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} is not a count: {v}"))
}

fn float(v: &Value, field: &str) -> f64 {
    v[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} is not a number: {v}"))
}

/// The fields etcd 3.4 prints, in its order (the rates only when not zero).
fn assert_self_shape(body: &str) {
    let v: Value = serde_json::from_str(body).expect("self stats JSON");
    let mut expected = vec!["name", "id", "state", "startTime", "leaderInfo"];
    expected.push("recvAppendRequestCnt");
    for rate in ["recvPkgRate", "recvBandwidthRate"] {
        if v.get(rate).is_some() {
            expected.push(rate);
        }
    }
    expected.push("sendAppendRequestCnt");
    for rate in ["sendPkgRate", "sendBandwidthRate"] {
        if v.get(rate).is_some() {
            expected.push(rate);
        }
    }
    let mut at = 0;
    for field in &expected {
        let key = format!("\"{field}\":");
        let found = body[at..]
            .find(&key)
            .unwrap_or_else(|| panic!("{field} missing or out of order in {body}"));
        at += found + key.len();
    }
    let fields = v.as_object().expect("object").len();
    assert_eq!(fields, expected.len(), "unexpected fields in {body}");
    let info = &v["leaderInfo"];
    for field in ["leader", "uptime", "startTime"] {
        assert!(info[field].is_string(), "leaderInfo.{field}: {body}");
    }
    for (pkg, bandwidth) in [
        ("recvPkgRate", "recvBandwidthRate"),
        ("sendPkgRate", "sendBandwidthRate"),
    ] {
        assert_eq!(
            v.get(pkg).is_some(),
            v.get(bandwidth).is_some(),
            "a window has both rates or neither: {body}"
        );
        if v.get(pkg).is_some() {
            assert!(float(&v, pkg) > 0.0 && float(&v, bandwidth) > 0.0, "{body}");
        }
    }
}

/// One follower's entry of `/v2/stats/leader`, checked for consistency; returns
/// (success, fail).
fn follower_counts(leader_stats: &Value, id: &str) -> (u64, u64) {
    let f = &leader_stats["followers"][id];
    let counts = &f["counts"];
    let (success, fail) = (count(counts, "success"), count(counts, "fail"));
    let l = &f["latency"];
    let (current, average, deviation, minimum, maximum) = (
        float(l, "current"),
        float(l, "average"),
        float(l, "standardDeviation"),
        float(l, "minimum"),
        float(l, "maximum"),
    );
    if success > 0 {
        assert!(current > 0.0, "follower {id}: {f}");
        assert!(
            0.0 < minimum && minimum <= average && average <= maximum,
            "follower {id}: {f}"
        );
        assert!(
            minimum <= current && current <= maximum,
            "follower {id}: {f}"
        );
        assert!(deviation >= 0.0, "follower {id}: {f}");
        assert!(
            deviation <= maximum - minimum + 1e-6,
            "follower {id}: the spread is within the range: {f}"
        );
    } else {
        // etcd's untouched figures: minimum starts at 2^63.
        assert_eq!(
            (current, average, maximum),
            (0.0, 0.0, 0.0),
            "follower {id}: {f}"
        );
        assert_eq!(minimum, 9_223_372_036_854_775_808.0, "follower {id}: {f}");
    }
    (success, fail)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_are_counted_both_ways_and_follower_round_trips_timed() {
    let mut c = Cluster::start(3).await;
    let leader = c.wait_leader().await;
    let followers: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let leader_id = hex_id(&c, leader);
    let follower_ids: Vec<String> = followers.iter().map(|&i| hex_id(&c, i)).collect();
    let leader_base = c.endpoint(leader);

    for i in 0..WRITES {
        write(&leader_base, &format!("k{i}")).await;
    }
    let last = format!("/v2/keys/k{}", WRITES - 1);
    for &f in &followers {
        let deadline = Instant::now() + WAIT;
        while req(&c.endpoint(f), "GET", &last, "").await.status != 200 {
            assert!(Instant::now() < deadline, "member {f} never applied {last}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // The leader sent appends, each write at least one to each follower.
    let a = req(&leader_base, "GET", "/v2/stats/self", "").await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_self_shape(&a.body);
    let me = json(&a);
    assert_eq!(me["name"], format!("m{leader}"), "{me}");
    assert_eq!(me["id"], leader_id.as_str(), "{me}");
    assert_eq!(me["state"], "StateLeader", "{me}");
    assert_eq!(me["leaderInfo"]["leader"], leader_id.as_str(), "{me}");
    assert!(count(&me, "sendAppendRequestCnt") >= 2 * WRITES, "{me}");
    assert_eq!(count(&me, "recvAppendRequestCnt"), 0, "{me}");

    // Each follower received them and knows the leader.
    for &f in &followers {
        let a = req(&c.endpoint(f), "GET", "/v2/stats/self", "").await;
        assert_eq!(a.status, 200, "{a:?}");
        assert_self_shape(&a.body);
        let v = json(&a);
        assert_eq!(v["state"], "StateFollower", "member {f}: {v}");
        assert_eq!(
            v["leaderInfo"]["leader"],
            leader_id.as_str(),
            "member {f}: {v}"
        );
        assert!(
            count(&v, "recvAppendRequestCnt") >= WRITES,
            "member {f}: {v}"
        );
        assert_eq!(count(&v, "sendAppendRequestCnt"), 0, "member {f}: {v}");
        // Only the leader answers /v2/stats/leader, with etcd's 403.
        let a = req(&c.endpoint(f), "GET", "/v2/stats/leader", "").await;
        assert_eq!(
            (a.status, a.body.as_str()),
            (403, "{\"message\":\"not current leader\"}"),
            "{a:?}"
        );
    }

    // Both followers answered appends; every settled append was one the leader sent.
    let stats = get_json(&leader_base, "/v2/stats/leader").await;
    assert_eq!(stats["leader"], leader_id.as_str(), "{stats}");
    let listed: Vec<&String> = stats["followers"]
        .as_object()
        .expect("followers")
        .keys()
        .collect();
    let mut expected_ids = follower_ids.clone();
    expected_ids.sort();
    assert_eq!(listed, expected_ids.iter().collect::<Vec<_>>(), "{stats}");
    let mut settled = 0;
    for fid in &follower_ids {
        let (success, fail) = follower_counts(&stats, fid);
        assert!(success > 0, "follower {fid} answered appends: {stats}");
        settled += success + fail;
    }
    let me = get_json(&leader_base, "/v2/stats/self").await;
    eprintln!("leader stats: {stats}\nleader's self stats: {me}");
    assert!(
        settled <= count(&me, "sendAppendRequestCnt"),
        "settled {settled} of {me}"
    );

    // Rates: present while appends flow (a write and a look within the 1 s window,
    // retried in case the machine stalls past it), gone after a second without any.
    let deadline = Instant::now() + WAIT;
    let mut round = 0;
    loop {
        write(&leader_base, &format!("rate{round}")).await;
        write(&leader_base, &format!("rate{round}b")).await;
        let a = req(&leader_base, "GET", "/v2/stats/self", "").await;
        assert_self_shape(&a.body);
        if json(&a).get("sendPkgRate").is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no send rate after writes: {a:?}"
        );
        round += 1;
    }
    wait_json(&c.endpoint(followers[0]), "/v2/stats/self", |v| {
        v.get("recvPkgRate").is_some()
    })
    .await;
    let idle = wait_json(&leader_base, "/v2/stats/self", |v| {
        v.get("sendPkgRate").is_none()
    })
    .await;
    assert!(idle.get("sendBandwidthRate").is_none(), "{idle}");

    // The leader stops: a new one is elected and says so; the stopped member is still
    // listed, and appends to it fail.
    let old_leader_id = leader_id.clone();
    c.stop(leader).await;
    let new_leader = c.wait_leader().await;
    let new_id = hex_id(&c, new_leader);
    let other = followers
        .iter()
        .copied()
        .find(|&f| f != new_leader)
        .expect("a remaining follower");
    let new_base = c.endpoint(new_leader);
    write(&new_base, "after").await;
    let me = get_json(&new_base, "/v2/stats/self").await;
    assert_eq!(
        (me["state"].clone(), me["leaderInfo"]["leader"].clone()),
        ("StateLeader".into(), new_id.as_str().into()),
        "{me}"
    );
    wait_json(&c.endpoint(other), "/v2/stats/self", |v| {
        v["leaderInfo"]["leader"] == new_id.as_str()
    })
    .await;
    let stats = wait_json(&new_base, "/v2/stats/leader", |v| {
        v["followers"][&old_leader_id]["counts"]["fail"]
            .as_u64()
            .is_some_and(|n| n > 0)
    })
    .await;
    follower_counts(&stats, &old_leader_id);
    let (success, _) = follower_counts(&stats, &hex_id(&c, other));
    assert!(success > 0, "{stats}");
    c.shutdown().await;
}
