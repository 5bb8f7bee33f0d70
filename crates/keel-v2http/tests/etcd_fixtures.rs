//! Replays `tests/fixtures/requests.txt` against the router (served over TCP on
//! 127.0.0.1 with the store test double) and compares every answer with what etcd 3.4
//! answered (`tests/fixtures/responses.jsonl`, recorded by `fixtures.py`).
//!
//! Normalisations, each because the value legitimately differs between two clusters:
//! - `<CLUSTER_ID>`, `<MEMBER_ID>`, `<CLIENT_URL>`, `<PEER_URL>` in recorded headers and
//!   bodies are replaced by the double's values (etcd's ids are random, its ports free);
//!   where a recorded body held a URL placeholder (or is the store stats below),
//!   `Content-Length` is checked against the body received instead of the recorded number.
//! - `/v2/stats/self` and `/v2/stats/leader`: status and content type only; their bodies
//!   (start times, rates) are produced by the server, not this crate.
//! - `/v2/stats/store`: field names and order, and `watchers`; the other counters include
//!   etcd's internal requests (membership reads at start-up) that the double does not make.
//! - `Date` and `Server`-style headers are not compared (only the headers in `HEADERS`).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Conn, TIMEOUT};
use serde_json::Value;

const HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "transfer-encoding",
    "x-etcd-index",
    "x-raft-index",
    "x-raft-term",
    "x-etcd-cluster-id",
    "allow",
    "x-content-type-options",
];

struct Subst {
    pairs: Vec<(&'static str, String)>,
}

impl Subst {
    fn new(base: &str) -> Subst {
        Subst {
            pairs: vec![
                ("<CLUSTER_ID>", format!("{:x}", common::CLUSTER_ID)),
                ("<MEMBER_ID>", format!("{:x}", common::MEMBER_ID)),
                ("<CLIENT_URL>", base.to_string()),
                ("<PEER_URL>", common::PEER_URL.to_string()),
            ],
        }
    }

    fn apply(&self, s: &str) -> String {
        let mut s = s.to_string();
        for (k, v) in &self.pairs {
            s = s.replace(k, v);
        }
        s
    }
}

fn pick_headers(headers: &[(String, String)]) -> BTreeMap<String, String> {
    headers
        .iter()
        .filter(|(k, _)| HEADERS.contains(&k.as_str()))
        .cloned()
        .collect()
}

fn expected_headers(rec: &Value, subst: &Subst) -> BTreeMap<String, String> {
    rec["headers"]
        .as_object()
        .expect("headers object")
        .iter()
        .map(|(k, v)| (k.clone(), subst.apply(v.as_str().expect("header string"))))
        .collect()
}

/// The field names of a flat JSON object of numbers, in text order.
fn field_names(json: &str) -> Vec<String> {
    json.trim_matches(|c| c == '{' || c == '}')
        .split(',')
        .map(|kv| {
            kv.split(':')
                .next()
                .expect("a field")
                .trim_matches('"')
                .to_string()
        })
        .collect()
}

fn check_stats_store(expected: &str, actual: &str) {
    assert_eq!(
        field_names(actual),
        field_names(expected),
        "stats fields in order"
    );
    let e: Value = serde_json::from_str(expected).expect("etcd stats");
    let a: Value = serde_json::from_str(actual).expect("our stats");
    assert_eq!(
        a["watchers"], e["watchers"],
        "watchers after an abandoned poll"
    );
}

async fn replay(lines: &str, records: &[Value], base: &str) {
    let subst = Subst::new(base);
    let mut recs = records.iter();
    let mut open: BTreeMap<String, Conn> = BTreeMap::new();
    for line in lines.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parts: Vec<&str> = line.split(' ').collect();
        match parts[0] {
            "SLEEP" => {
                let secs: f64 = parts[1].parse().expect("seconds");
                tokio::time::sleep(Duration::from_secs_f64(secs)).await;
                continue;
            }
            "CLOSE" => {
                drop(open.remove(parts[1]).expect("open connection"));
                continue;
            }
            _ => {}
        }
        let rec = recs.next().expect("a recorded answer for every command");
        assert_eq!(rec["cmd"].as_str(), Some(line), "fixture order");
        match parts[0] {
            "OPEN" => {
                let conn = Conn::open(base, parts[2], parts[3], "", &[]).await;
                assert_eq!(u64::from(conn.status), rec["status"], "{line}");
                assert_eq!(
                    pick_headers(&conn.headers),
                    expected_headers(rec, &subst),
                    "{line}"
                );
                open.insert(parts[1].to_string(), conn);
            }
            "LINE" | "END" => {
                let conn = open.get_mut(parts[1]).expect("open connection");
                let mut got = tokio::time::timeout(TIMEOUT, conn.next_chunk())
                    .await
                    .expect("an event in time")
                    .unwrap_or_default();
                if parts[0] == "END" {
                    let conn = open.remove(parts[1]).expect("open connection");
                    got.push_str(&conn.read_all().await.body);
                }
                assert_eq!(
                    got,
                    subst.apply(rec["line"].as_str().expect("line")),
                    "{line}"
                );
            }
            method => {
                let path = parts[1];
                let form = parts.get(2).copied().unwrap_or("");
                let a = common::request(base, method, path, form).await;
                assert_eq!(u64::from(a.status), rec["status"], "{line}: {a:?}");
                let mut want = expected_headers(rec, &subst);
                let mut got = pick_headers(&a.headers);
                let raw_body = rec["body"].as_str();
                let stats = path == "/v2/stats/store" && a.status == 200;
                if stats || raw_body.is_some_and(|b| b.contains("_URL>")) {
                    want.remove("content-length");
                    let len = got.remove("content-length").expect("content-length");
                    assert_eq!(len, a.body.len().to_string(), "{line}");
                }
                if rec["body"].is_null() {
                    got.remove("content-length");
                }
                assert_eq!(got, want, "{line}: headers");
                match raw_body {
                    None => {}
                    Some(b) if stats => check_stats_store(b, &a.body),
                    Some(b) => assert_eq!(a.body, subst.apply(b), "{line}: body"),
                }
            }
        }
    }
    assert!(recs.next().is_none(), "every recorded answer was replayed");
}

fn records(file: &str) -> Vec<Value> {
    file.lines()
        .skip(1)
        .map(|l| serde_json::from_str(l).expect("a JSON record"))
        .collect()
}

#[tokio::test]
async fn router_answers_as_etcd_3_4() {
    let (backend, base) = common::start().await;
    replay(
        include_str!("fixtures/requests.txt"),
        &records(include_str!("fixtures/responses.jsonl")),
        &base,
    )
    .await;
    assert_eq!(backend.watchers(), 0, "every watch was released");
}

#[tokio::test]
async fn disabled_v2_answers_as_etcd_with_enable_v2_false() {
    let (listener, base) = common::listen().await;
    common::serve(listener, keel_v2http::disabled_router());
    let lines =
        "GET /v2/keys/foo\nPUT /v2/keys/foo value=x\nGET /v2/members\nGET /v2/stats/store\n";
    replay(
        lines,
        &records(include_str!("fixtures/disabled.jsonl")),
        &base,
    )
    .await;
}
