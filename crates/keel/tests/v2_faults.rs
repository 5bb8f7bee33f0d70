//! The v2 keys API of a 3-member `keel` cluster (real processes) under a leader crash
//! (`kill -9`): TTL keys expire exactly once whichever leader's SYNC expires them, every
//! member (the killed one after its restart too) records the same events at the same
//! indexes, and a `wait=true` watcher on a follower gets its event across the leader
//! change.

mod common;

use std::time::{Duration, Instant};

use common::{Cluster, HttpAnswer, HttpConn, Impl, http, member_specs};
use serde_json::Value;

/// Bound on every wait here.
const WAIT: Duration = Duration::from_secs(30);

fn json(a: &HttpAnswer) -> Value {
    serde_json::from_str(&a.body).unwrap_or_else(|e| panic!("{e}: not JSON: {a:?}"))
}

/// Retries a write on member `i` until the cluster answers it (no leader for a while).
fn write(c: &Cluster, i: usize, path: &str, form: &str) -> HttpAnswer {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(a) = http(&c.endpoint(i), "PUT", path, form)
            && (a.status == 200 || a.status == 201)
        {
            return a;
        }
        assert!(
            Instant::now() < deadline,
            "PUT {path} {form} on member {i} kept failing\n{}",
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One event as `(action, key, modifiedIndex)`.
type Seen = (String, String, u64);

/// Follows the recursive watch of `/ttl` on member `i` from `from` (each step a long
/// poll with `waitIndex`, answered from the history or by the next event) until `stop`
/// accepts an event; returns every event seen, in index order.
fn follow(c: &Cluster, i: usize, from: u64, mut stop: impl FnMut(&Seen) -> bool) -> Vec<Seen> {
    let mut seen = Vec::new();
    let mut index = from;
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(
            Instant::now() < deadline,
            "member {i}: watch stalled after {seen:?}"
        );
        let path = format!("/v2/keys/ttl?wait=true&recursive=true&waitIndex={index}");
        let Ok(a) =
            HttpConn::open(&c.endpoint(i), "GET", &path, "", WAIT).and_then(HttpConn::finish)
        else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        assert_eq!(a.status, 200, "member {i}: {a:?}");
        let e = json(&a);
        let event: Seen = (
            e["action"].as_str().expect("action").to_owned(),
            e["node"]["key"].as_str().expect("key").to_owned(),
            e["node"]["modifiedIndex"].as_u64().expect("modifiedIndex"),
        );
        index = event.2 + 1;
        let done = stop(&event);
        seen.push(event);
        if done {
            return seen;
        }
    }
}

#[test]
fn ttl_keys_expire_exactly_once_across_a_leader_kill() {
    let mut c = Cluster::start(Impl::Keel, &member_specs(3), &[]);
    let leader = c
        .leader(WAIT)
        .unwrap_or_else(|| panic!("no agreed leader\n{}", c.logs()));
    let (watcher, other) = ((leader + 1) % 3, (leader + 2) % 3);

    // Two keys expire before the kill (through the first leader's SYNC), four after
    // (through the next leader's).
    let ttls = [1, 1, 4, 4, 5, 5];
    let mut first = None;
    for (k, ttl) in ttls.iter().enumerate() {
        let a = write(
            &c,
            leader,
            &format!("/v2/keys/ttl/k{k}"),
            &format!("value=v&ttl={ttl}"),
        );
        let index = json(&a)["node"]["modifiedIndex"].as_u64().expect("index");
        first.get_or_insert(index);
    }
    let first = first.expect("a first write");
    // Wait for the short keys to expire on the watcher, then crash the leader.
    follow(&c, watcher, first, |e| e.0 == "expire" && e.1 == "/ttl/k1");
    c.kill(leader);
    assert!(c.leader(WAIT).is_some(), "no new leader\n{}", c.logs());

    // Every key expires; then a marker closes the range of events to check.
    let expired = follow(&c, watcher, first, {
        let mut left: Vec<String> = (0..ttls.len()).map(|k| format!("/ttl/k{k}")).collect();
        move |e: &Seen| {
            if e.0 == "expire" {
                left.retain(|k| *k != e.1);
            }
            left.is_empty()
        }
    });
    // A few more SYNC periods: a second expiry of any key would land before the marker.
    std::thread::sleep(Duration::from_secs(2));
    let marker = write(&c, other, "/v2/keys/ttl/marker", "value=m");
    let marker_index = json(&marker)["node"]["modifiedIndex"]
        .as_u64()
        .expect("index");
    let events = follow(&c, watcher, first, |e| e.2 == marker_index);
    assert!(events.len() > expired.len(), "{events:?}");
    for k in 0..ttls.len() {
        let key = format!("/ttl/k{k}");
        let sets = events.iter().filter(|e| e.0 == "set" && e.1 == key).count();
        let expires = events
            .iter()
            .filter(|e| e.0 == "expire" && e.1 == key)
            .count();
        assert_eq!((sets, expires), (1, 1), "{key}: {events:?}");
    }
    assert_eq!(
        events.len(),
        2 * ttls.len() + 1,
        "only the sets, one expire each and the marker: {events:?}"
    );

    // The other survivor and the crashed leader (restarted: WAL replay) agree exactly.
    assert_eq!(follow(&c, other, first, |e| e.2 == marker_index), events);
    c.spawn(leader);
    assert_eq!(follow(&c, leader, first, |e| e.2 == marker_index), events);
}

#[test]
fn a_follower_watcher_gets_its_event_across_a_leader_change() {
    let mut c = Cluster::start(Impl::Keel, &member_specs(3), &[]);
    let leader = c
        .leader(WAIT)
        .unwrap_or_else(|| panic!("no agreed leader\n{}", c.logs()));
    let (watcher, writer) = ((leader + 1) % 3, (leader + 2) % 3);
    let before = write(&c, writer, "/v2/keys/lc", "value=before");
    let before_index = json(&before)["node"]["modifiedIndex"]
        .as_u64()
        .expect("index");

    // The watcher may not have applied "before" yet: it waits for the next index.
    let path = format!("/v2/keys/lc?wait=true&waitIndex={}", before_index + 1);
    let mut watch =
        HttpConn::open(&c.endpoint(watcher), "GET", &path, "", WAIT).expect("open the watch");
    assert_eq!(watch.head.status, 200, "{:?}", watch.head);
    c.kill(leader);
    let new_leader = c.leader(WAIT).expect("a new leader");
    assert_ne!(new_leader, leader);

    write(&c, writer, "/v2/keys/lc", "value=after");
    let line = watch
        .next_chunk()
        .expect("the watch stays open across the leader change")
        .expect("an event");
    let e: Value = serde_json::from_str(&line).expect("event JSON");
    assert_eq!(
        (e["action"].as_str(), e["node"]["value"].as_str()),
        (Some("set"), Some("after")),
        "{e}"
    );
    assert_eq!(e["prevNode"]["value"], "before");
}
