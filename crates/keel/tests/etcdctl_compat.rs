//! Debian's real `etcdctl` 3.4 against a real `etcd` 3.4 and against `keel`, started with the
//! same flags on the same ports: each scenario runs the same commands against both and
//! asserts that etcdctl printed the same thing (stdout, stderr, exit code).
//!
//! etcd runs first, is killed, then keel takes the same ports, so member ids and cluster
//! ids (derived from peer URLs and the cluster token) must match exactly, as must every
//! revision, key, value, version and count.
//!
//! What legitimately differs is normalised, and only where a step asks for it:
//! - `Norm::Term`: the Raft term in response headers (`"raft_term":N`) is an artefact of
//!   how elections went, not of the data;
//! - `Norm::Status`: `endpoint status` prints the server version (`3.4.23` vs Keel's),
//!   the backend file size (bbolt vs redb) and the Raft term and indexes (Keel may write a
//!   different number of internal entries at bootstrap); endpoint, member id, leader and
//!   learner flags and errors are compared;
//! - `Norm::StatusAnyLeader`: as `Norm::Status`, and which member is leader, for three
//!   members (the first election's winner is chance);
//! - `Norm::Health`: `endpoint health` prints the time the health proposal took;
//! - everywhere: etcdctl's own JSON-formatted client log lines on stderr (retry warnings
//!   with timestamps) are dropped.

mod common;

use std::time::Duration;

use common::{
    Cluster, Impl, MemberSpec, Output, etcdctl, mask_number_after, member_specs,
    without_client_logs,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Norm {
    Exact,
    Term,
    Status,
    /// `Norm::Status` and the is-leader column too: which of three members wins the first
    /// election is not part of the contract.
    StatusAnyLeader,
    Health,
}

struct Step {
    args: Vec<String>,
    stdin: Option<String>,
    norm: Norm,
    /// The member whose endpoint etcdctl talks to.
    member: usize,
    /// Give etcdctl the endpoint as `http://127.0.0.1:port` rather than `127.0.0.1:port`
    /// (etcdctl 3.4 then sends the whole URL as the HTTP/2 `:authority`).
    with_scheme: bool,
}

fn step(args: &[&str]) -> Step {
    Step {
        args: args.iter().map(|s| (*s).to_owned()).collect(),
        stdin: None,
        norm: Norm::Exact,
        member: 0,
        with_scheme: false,
    }
}

impl Step {
    fn stdin(mut self, text: &str) -> Step {
        self.stdin = Some(text.to_owned());
        self
    }

    fn norm(mut self, norm: Norm) -> Step {
        self.norm = norm;
        self
    }

    fn at(mut self, member: usize) -> Step {
        self.member = member;
        self
    }

    fn with_scheme(mut self) -> Step {
        self.with_scheme = true;
        self
    }

    fn describe(&self) -> String {
        let scheme = if self.with_scheme {
            ", http:// endpoint"
        } else {
            ""
        };
        format!(
            "etcdctl {} (member {}{scheme})",
            self.args.join(" "),
            self.member
        )
    }
}

fn normalise_status(text: &str, any_leader: bool) -> String {
    text.lines()
        .map(|line| {
            let fields: Vec<&str> = line.split(", ").collect();
            if fields.len() < 10 {
                return line.to_owned();
            }
            // endpoint, id, version, db size, is leader, is learner, term, index,
            // applied index, errors
            format!(
                "{}, {}, <version>, <db size>, {}, {}, <term>, <index>, <applied>, {}",
                fields[0],
                fields[1],
                if any_leader { "<leader?>" } else { fields[4] },
                fields[5],
                fields[9..].join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn normalise_health(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("took = ") {
            Some(at) => format!("{}took = <duration>", &line[..at]),
            None => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn normalise(norm: Norm, output: &Output) -> Output {
    let stderr = without_client_logs(&output.stderr);
    let (stdout, stderr) = match norm {
        Norm::Exact => (output.stdout.clone(), stderr),
        Norm::Term => (mask_number_after(&output.stdout, "\"raft_term\":"), stderr),
        Norm::Status => (
            normalise_status(&output.stdout, false),
            normalise_status(&stderr, false),
        ),
        Norm::StatusAnyLeader => (
            normalise_status(&output.stdout, true),
            normalise_status(&stderr, true),
        ),
        Norm::Health => (normalise_health(&output.stdout), normalise_health(&stderr)),
    };
    Output {
        code: output.code,
        stdout,
        stderr,
    }
}

fn run_steps(imp: Impl, specs: &[MemberSpec], extra: &[&str], steps: &[Step]) -> Vec<Output> {
    let mut cluster = Cluster::start(imp, specs, extra);
    // Let the members publish their attributes before anything reads membership.
    cluster.wait_healthy(Duration::from_secs(30));
    let outputs = steps
        .iter()
        .map(|step| {
            let args: Vec<&str> = step.args.iter().map(String::as_str).collect();
            let endpoint = cluster.endpoint(step.member);
            let endpoint = if step.with_scheme {
                format!("http://{endpoint}")
            } else {
                endpoint
            };
            etcdctl(&endpoint, &args, step.stdin.as_deref())
        })
        .collect();
    drop(cluster);
    outputs
}

/// Runs `steps` against etcd then keel on the same ports and compares every output.
fn compare(members: usize, extra: &[&str], steps: &[Step]) {
    let specs = member_specs(members);
    let etcd = run_steps(Impl::Etcd, &specs, extra, steps);
    let keel = run_steps(Impl::Keel, &specs, extra, steps);
    let mut differences = Vec::new();
    for ((step, etcd), keel) in steps.iter().zip(&etcd).zip(&keel) {
        let expected = normalise(step.norm, etcd);
        let actual = normalise(step.norm, keel);
        if expected != actual {
            differences.push(format!(
                "{}\n  etcd: {expected:?}\n  keel: {actual:?}",
                step.describe()
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "{} of {} etcdctl outputs differ between etcd and keel:\n{}",
        differences.len(),
        steps.len(),
        differences.join("\n")
    );
}

#[test]
fn put_and_get_with_every_range_option_match_etcd() {
    let mut steps = vec![
        step(&["put", "foo", "bar"]),
        step(&["put", "foo1", "bar1"]),
        step(&["put", "foo2", "bar2"]),
        step(&["put", "foo3", "a3"]),
        step(&["put", "zoo", "z"]),
        step(&["put", "foo", "bar-v2"]),
        step(&["put", "foo1", "bar1-v2", "--prev-kv"]),
        step(&["get", "foo"]),
        step(&["get", "missing"]),
        step(&["get", "foo", "--prefix"]),
        step(&["get", "foo", "--from-key"]),
        step(&["get", "foo", "foo3"]),
        step(&["get", "foo", "--rev=2"]),
        step(&["get", "foo", "--rev=6"]),
        step(&["get", "foo", "--prefix", "--sort-by=KEY", "--order=DESCEND"]),
        step(&[
            "get",
            "foo",
            "--prefix",
            "--sort-by=VALUE",
            "--order=ASCEND",
        ]),
        step(&[
            "get",
            "foo",
            "--prefix",
            "--sort-by=CREATE",
            "--order=DESCEND",
        ]),
        step(&[
            "get",
            "foo",
            "--prefix",
            "--sort-by=MODIFY",
            "--order=ASCEND",
        ]),
        step(&[
            "get",
            "foo",
            "--prefix",
            "--sort-by=VERSION",
            "--order=DESCEND",
        ]),
        step(&["get", "foo", "--prefix", "--limit=2"]),
        step(&["get", "foo", "--prefix", "--limit=2", "--order=DESCEND"]),
        step(&["get", "foo", "--prefix", "--keys-only"]),
        // etcdctl 3.4 has no --count-only (3.5 added it): the count is checked through
        // `-w json`, whose "count" field is what --count-only prints.
        step(&["get", "foo", "--prefix", "--keys-only", "-w", "json"]).norm(Norm::Term),
        step(&[
            "get",
            "foo",
            "--prefix",
            "--limit=1",
            "--keys-only",
            "-w",
            "json",
        ])
        .norm(Norm::Term),
        step(&["get", "foo", "--print-value-only"]),
        step(&["get", "foo", "--prefix", "--print-value-only"]),
        step(&["get", "foo", "-w", "json"]).norm(Norm::Term),
        step(&["get", "foo", "--prefix", "--limit=1", "-w", "json"]).norm(Norm::Term),
        step(&["get", "", "--from-key", "--keys-only"]),
        step(&["get", "foo", "--rev=100"]),
        step(&["put", "", "empty-key"]),
    ];
    steps.push(step(&["get", "foo", "--consistency=s"]));
    compare(1, &[], &steps);
}

#[test]
fn delete_txn_and_compaction_match_etcd() {
    let txn = "mod(\"k1\") > \"0\"\n\nput k1 \"then\"\nget k2\n\nput k1 \"else\"\n\n";
    let txn_failing = "value(\"k2\") = \"nope\"\n\ndel k1\n\nput k3 v3\nget k3\n\n";
    let steps = vec![
        step(&["put", "k1", "v1"]),
        step(&["put", "k2", "v2"]),
        step(&["put", "k3", "v3"]),
        step(&["put", "p/a", "1"]),
        step(&["put", "p/b", "2"]),
        step(&["put", "p/c", "3"]),
        step(&["del", "k3"]),
        step(&["del", "k3"]),
        step(&["del", "p/", "--prefix", "--prev-kv"]),
        step(&["del", "k2", "--prev-kv"]),
        // Tombstones and txns are in the hashed history from here on.
        step(&["endpoint", "hashkv"]),
        step(&["put", "k2", "again"]),
        step(&["txn"]).stdin(txn),
        step(&["txn", "-i"]).stdin(txn_failing),
        step(&["txn", "-w", "json"]).stdin(txn).norm(Norm::Term),
        step(&["get", "k", "--prefix", "-w", "json"]).norm(Norm::Term),
        step(&["get", "k1", "--rev=1"]),
        step(&["compaction", "5"]),
        step(&["get", "k1", "--rev=4"]),
        step(&["get", "k1", "--rev=5"]),
        step(&["compaction", "3"]),
        step(&["compaction", "100"]),
        step(&["compaction", "--physical", "8"]),
        // After compaction HashKV skips what compaction dropped, as etcd's does.
        step(&["endpoint", "hashkv"]),
        step(&["get", "", "--from-key"]),
        step(&["del", "", "--from-key"]),
        step(&["get", "", "--from-key", "-w", "json"]).norm(Norm::Term),
    ];
    compare(1, &[], &steps);
}

#[test]
fn single_member_endpoint_and_member_commands_match_etcd() {
    let steps = vec![
        step(&["member", "list"]),
        step(&["member", "list", "-w", "json"]).norm(Norm::Term),
        step(&["endpoint", "health"]).norm(Norm::Health),
        step(&["endpoint", "status"]).norm(Norm::Status),
        step(&["put", "a", "1"]),
        step(&["endpoint", "hashkv"]),
        step(&["put", "b", "2"]).with_scheme(),
        step(&["get", "", "--from-key"]).with_scheme(),
        step(&["endpoint", "status"])
            .norm(Norm::Status)
            .with_scheme(),
    ];
    compare(1, &[], &steps);
}

#[test]
fn three_members_match_etcd() {
    let steps = vec![
        step(&["member", "list"]),
        step(&["member", "list"]).at(2),
        step(&["member", "list", "-w", "json"])
            .norm(Norm::Term)
            .at(1),
        step(&["endpoint", "health"]).norm(Norm::Health).at(1),
        step(&["endpoint", "status", "--cluster"]).norm(Norm::StatusAnyLeader),
        step(&["put", "a", "1"]),
        step(&["put", "b", "2"]).at(1),
        step(&["put", "c", "3"]).at(2),
        step(&["get", "", "--from-key"]).at(2),
        step(&["get", "a", "-w", "json"]).norm(Norm::Term).at(1),
        step(&["get", "", "--from-key", "--consistency=s", "--keys-only"]).at(1),
        step(&["del", "", "--from-key", "--prev-kv"]).at(1),
        step(&["compaction", "3"]).at(2),
        step(&["get", "a", "--rev=2"]).at(0),
    ];
    compare(3, &[], &steps);
}
