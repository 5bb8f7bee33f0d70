//! The fixture runner: replays `fixtures/requests.txt` commands against a v2 HTTP server
//! and compares each answer with etcd 3.4's recorded one. Used by this crate's
//! `etcd_fixtures.rs` (the router with a store double) and by keel-server's `v2.rs` (the
//! real server).
//!
//! Normalisations, each because the value legitimately differs between two clusters:
//! - `<CLUSTER_ID>`, `<MEMBER_ID>`, `<CLIENT_URL>`, `<PEER_URL>` in recorded headers and
//!   bodies are replaced by the server's values (etcd's ids are random, its ports free);
//!   where a recorded body held a URL placeholder (or is the store stats below),
//!   `Content-Length` is checked against the body received instead of the recorded number.
//! - `X-Raft-Index`: the Raft log of another server holds a different number of entries
//!   before the first request (its own bootstrap and election entries), so the index is
//!   compared as an offset from the first answer's: every later answer must have moved
//!   exactly as far as etcd's did. `X-Raft-Term` must equal the first answer's term
//!   throughout (etcd's stayed constant while recording). A server whose log starts as
//!   etcd's did (the double) is thereby checked exactly.
//! - `/v2/stats/self` and `/v2/stats/leader`: status and content type only; their bodies
//!   (start times, rates) are produced by the server, not the HTTP layer.
//! - `/v2/stats/store`: field names and order, and `watchers`; the other counters include
//!   etcd's internal requests (membership reads at start-up) that Keel does not make.
//! - `Date` and `Server`-style headers are not compared (only the headers in `HEADERS`).
#![allow(dead_code)] // each test binary uses a different part of this module

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::{Conn, TIMEOUT};

/// The values that stand in for etcd's placeholders.
pub struct Ids {
    pub cluster_id: u64,
    pub member_id: u64,
    pub peer_url: String,
}

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
    fn new(base: &str, ids: &Ids) -> Subst {
        Subst {
            pairs: vec![
                ("<CLUSTER_ID>", format!("{:x}", ids.cluster_id)),
                ("<MEMBER_ID>", format!("{:x}", ids.member_id)),
                ("<CLIENT_URL>", base.to_string()),
                ("<PEER_URL>", ids.peer_url.clone()),
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

/// Where the Raft headers of the first answer that had them stood: (recorded index,
/// received index, received term).
#[derive(Default)]
struct RaftBase(Option<(u64, u64, String)>);

impl RaftBase {
    /// Rewrites the recorded raft headers into what this server must answer.
    fn expect(&mut self, want: &mut BTreeMap<String, String>, got: &BTreeMap<String, String>) {
        let (Some(rec_index), Some(got_index)) =
            (want.get("x-raft-index"), got.get("x-raft-index"))
        else {
            return;
        };
        let rec_index: u64 = rec_index
            .parse()
            .expect("recorded X-Raft-Index is a number");
        let got_index: u64 = got_index.parse().expect("X-Raft-Index is a number");
        let got_term = got.get("x-raft-term").cloned().unwrap_or_default();
        let (rec0, got0, term0) = self
            .0
            .get_or_insert((rec_index, got_index, got_term))
            .clone();
        want.insert(
            "x-raft-index".to_string(),
            (got0 + rec_index - rec0).to_string(),
        );
        if want.contains_key("x-raft-term") {
            want.insert("x-raft-term".to_string(), term0);
        }
    }
}

/// Replays `lines` (the format of `fixtures/requests.txt`) against `base`, comparing
/// each answer with its record in `records`.
pub async fn replay(lines: &str, records: &[Value], base: &str, ids: &Ids) {
    let subst = Subst::new(base, ids);
    let mut raft = RaftBase::default();
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
                let got = pick_headers(&conn.headers);
                let mut want = expected_headers(rec, &subst);
                raft.expect(&mut want, &got);
                assert_eq!(got, want, "{line}");
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
                let a = super::request(base, method, path, form).await;
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
                raft.expect(&mut want, &got);
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

/// The records of a `responses.jsonl` file (its first line is a header).
pub fn records(file: &str) -> Vec<Value> {
    file.lines()
        .skip(1)
        .map(|l| serde_json::from_str(l).expect("a JSON record"))
        .collect()
}
