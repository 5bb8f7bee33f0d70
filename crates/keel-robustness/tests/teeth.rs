//! The checks have teeth: histories that server bugs would produce fail
//! them, whether fabricated (for bugs that need a server feature flag to
//! plant) or produced by a real cluster behind a client layer with a planted
//! bug.

mod common;

use std::time::Duration;

use keel_robustness::check::{FINAL_READER, Verdict, check_history};
use keel_robustness::history::{Outcome, Record, Request, Response, read_jsonl, write_jsonl};
use keel_robustness::run::RunConfig;
use keel_robustness::scenario::Scenario;
use keel_robustness::traffic::{PlantedBug, key};

fn keys() -> Vec<String> {
    (0..2).map(key).collect()
}

fn ok(
    client: u64,
    request: Request,
    call: u64,
    ret: u64,
    revision: i64,
    response: Response,
) -> Record {
    Record {
        client,
        member: 0,
        request,
        invoked_ns: call,
        outcome: Outcome::Ok {
            returned_ns: ret,
            revision,
            response,
        },
    }
}

fn put(k: usize, value: &str) -> Request {
    Request::Put {
        key: key(k),
        value: value.to_owned(),
    }
}

fn get(k: usize, serializable: bool) -> Request {
    Request::Get {
        key: key(k),
        serializable,
    }
}

fn value(v: &str) -> Response {
    Response::Value(Some(v.to_owned()))
}

/// A correct history: two writes and reads of the latest, final reads.
fn correct() -> Vec<Record> {
    vec![
        ok(1, put(0, "a"), 0, 10, 2, Response::Put),
        ok(2, put(1, "b"), 0, 10, 3, Response::Put),
        ok(1, put(0, "a2"), 20, 30, 4, Response::Put),
        ok(2, get(0, false), 40, 50, 4, value("a2")),
        ok(3, get(0, true), 40, 50, 2, value("a")),
        ok(FINAL_READER, get(0, false), 100, 110, 4, value("a2")),
        ok(FINAL_READER, get(1, false), 100, 110, 4, value("b")),
    ]
}

#[test]
fn a_correct_history_passes_every_check() {
    let report = check_history(&correct(), &keys());
    assert!(!report.failed(), "{report:?}");
}

/// A follower serving a linearizable read from its own state, behind the
/// leader: the read returns a value overwritten before it was invoked.
#[test]
fn a_stale_linearizable_read_from_a_follower_is_caught() {
    let mut history = correct();
    history.push(ok(4, get(0, false), 60, 70, 2, value("a")));
    let report = check_history(&history, &keys());
    assert!(
        matches!(report.linearizability, Verdict::Fail(_)),
        "{report:?}"
    );
}

/// A write acknowledged before its fsync, then lost in a crash: the final
/// read after healing shows the value before it.
#[test]
fn an_acknowledged_write_lost_in_a_crash_is_caught() {
    let mut history = correct();
    history.retain(|r| r.client != FINAL_READER);
    history.push(ok(5, put(1, "lost"), 60, 70, 5, Response::Put));
    history.push(ok(FINAL_READER, get(0, false), 100, 110, 4, value("a2")));
    history.push(ok(FINAL_READER, get(1, false), 100, 110, 4, value("b")));
    let report = check_history(&history, &keys());
    assert!(
        matches!(report.linearizability, Verdict::Fail(_)),
        "{report:?}"
    );
}

/// A key nobody could read after healing fails the run, even though the
/// rest of the history is linearizable.
#[test]
fn a_key_unreadable_after_healing_is_caught() {
    let mut history = correct();
    history.retain(|r| !(r.client == FINAL_READER && r.request == get(1, false)));
    let report = check_history(&history, &keys());
    assert!(matches!(report.final_reads, Verdict::Fail(_)), "{report:?}");
}

/// Serializable reads may be stale, but never return a value from the
/// future of their revision, nor a value nobody wrote.
#[test]
fn serializable_reads_of_the_future_or_of_nothing_are_caught() {
    let mut future = correct();
    future.push(ok(6, get(0, true), 40, 50, 3, value("a2")));
    let report = check_history(&future, &keys());
    assert!(
        matches!(report.serializable, Verdict::Fail(_)),
        "{report:?}"
    );

    let mut invented = correct();
    invented.push(ok(6, get(1, true), 40, 50, 4, value("never-written")));
    let report = check_history(&invented, &keys());
    assert!(
        matches!(report.serializable, Verdict::Fail(_)),
        "{report:?}"
    );
}

/// An unknown write may or may not have happened: either final state passes.
#[test]
fn an_unknown_write_may_or_may_not_have_happened() {
    for (final_value, ok_expected) in [("a2", true), ("maybe", true), ("a", false)] {
        let mut history = correct();
        history.retain(|r| r.client != FINAL_READER);
        history.push(Record {
            client: 7,
            member: 1,
            request: put(0, "maybe"),
            invoked_ns: 35,
            outcome: Outcome::Unknown {
                error: "no answer within 3s".to_owned(),
            },
        });
        history.push(ok(
            FINAL_READER,
            get(0, false),
            100,
            110,
            5,
            value(final_value),
        ));
        history.push(ok(FINAL_READER, get(1, false), 100, 110, 5, value("b")));
        let report = check_history(&history, &keys());
        assert_eq!(
            !report.failed(),
            ok_expected,
            "final {final_value}: {report:?}"
        );
    }
}

#[test]
fn histories_round_trip_through_json_lines() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("history.jsonl");
    write_jsonl(&path, &correct()).expect("write");
    assert_eq!(read_jsonl(&path).expect("read"), correct());
}

/// The whole pipeline on a real cluster: a client layer that answers some
/// linearizable gets from memory is caught.
#[test]
fn a_planted_stale_read_bug_fails_a_real_run() {
    let _one = common::one_cluster_at_a_time();
    let mut config = RunConfig::new(
        Scenario::KillFollower,
        Duration::from_secs(6),
        21,
        common::keel_bin(),
    );
    config.planted_bug = Some(PlantedBug::StaleCachedReads);
    let report = common::run_to_verdict(config);
    if let Some(dir) = &report.kept_dir {
        // Kept because it failed, as it must; the evidence is not needed here.
        std::fs::remove_dir_all(dir).expect("remove the kept run directory");
    }
    assert!(
        matches!(report.history.linearizability, Verdict::Fail(_)),
        "stale cached reads went unnoticed: {:?}",
        report.history
    );
}
