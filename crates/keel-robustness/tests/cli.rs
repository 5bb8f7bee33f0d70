//! The `keel-robustness` binary's offline paths: re-checking a kept history
//! (exit 0 when every check holds, 1 when one fails) and argument errors
//! (exit 2).

use std::process::Command;

use keel_robustness::check::FINAL_READER;
use keel_robustness::history::{Outcome, Record, Request, Response, write_jsonl};
use keel_robustness::traffic::key;

const BIN: &str = env!("CARGO_BIN_EXE_keel-robustness");

fn read(client: u64, at: u64, value: Option<&str>) -> Record {
    Record {
        client,
        member: 0,
        request: Request::Get {
            key: key(0),
            serializable: false,
        },
        invoked_ns: at,
        outcome: Outcome::Ok {
            returned_ns: at + 1,
            revision: 2,
            response: Response::Value(value.map(str::to_owned)),
        },
    }
}

fn history(final_value: Option<&str>) -> Vec<Record> {
    vec![
        Record {
            client: 1,
            member: 0,
            request: Request::Put {
                key: key(0),
                value: "v1".to_owned(),
            },
            invoked_ns: 0,
            outcome: Outcome::Ok {
                returned_ns: 5,
                revision: 2,
                response: Response::Put,
            },
        },
        read(FINAL_READER, 10, final_value),
    ]
}

fn check(records: &[Record]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("history.jsonl");
    write_jsonl(&path, records).expect("write the history");
    let out = Command::new(BIN)
        .arg("--check")
        .arg(&path)
        .arg("--keys=1")
        .output()
        .expect("run keel-robustness");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn recheck_passes_a_correct_history() {
    let (code, stdout) = check(&history(Some("v1")));
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("linearizability: Pass"), "{stdout}");
}

#[test]
fn recheck_fails_a_history_with_a_lost_write() {
    // The final read after healing finds the key absent: the put is lost.
    let (code, stdout) = check(&history(None));
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("linearizability: Fail"), "{stdout}");
}

#[test]
fn unknown_scenario_is_an_argument_error() {
    let out = Command::new(BIN)
        .args(["--scenario", "no-such-scenario", "--duration", "1s"])
        .output()
        .expect("run keel-robustness");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown scenario"));
}
