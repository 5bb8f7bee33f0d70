//! Debian's `etcdctl` with `ETCDCTL_API=2` against a real `etcd` 3.4 (`--enable-v2`) and
//! against `keel` (v2 on by default), started with the same flags on the same ports: each
//! scenario runs the same commands against both and asserts that etcdctl printed the
//! same thing (exit code, stdout, stderr).
//!
//! Because both run on the same ports with the same cluster token, member ids, cluster
//! ids and URLs are equal, and because Keel writes the same membership entries into the
//! v2 store's hidden `/0` namespace as etcd, so are the store indexes: nothing is
//! normalised except the order of `exec-watch` lines (etcdctl runs each event's command
//! concurrently, so they print in any order; they are compared sorted) and, with three
//! members, which member `member list` marks `isLeader=true` (the first election's
//! winner is chance; exactly one member must be marked). Watches start at
//! a known `--after-index`, so they replay their events from the store's history instead
//! of racing the writes; `--forever` watches are killed by pid once the expected number
//! of lines arrived.

mod common;

use std::time::Duration;

use common::{Cluster, Impl, MemberSpec, etcdctl_v2, etcdctl_v2_lines, member_specs};

/// How long a `--forever` watch may take to print its next line.
const LINE_TIMEOUT: Duration = Duration::from_secs(15);

enum Step {
    /// Run to completion on member `.1`.
    Run(&'static [&'static str], usize),
    /// Spawn, collect this many stdout lines, then kill (a `--forever` watch).
    Forever(&'static [&'static str], usize),
}

fn run_steps(imp: Impl, specs: &[MemberSpec], extra: &[&str], steps: &[Step]) -> Vec<String> {
    let cluster = Cluster::start(imp, specs, extra);
    let url = |i: usize| format!("http://{}", cluster.endpoint(i));
    // Wait until every member's raftAttributes and attributes and the cluster version
    // are in the store (etcd writes the version once every member published): they are
    // store writes, so every later index depends on them.
    let settled_index = (2 * specs.len() + 1).to_string();
    let settled = common::wait_for(Duration::from_secs(30), || {
        (0..specs.len())
            .all(|i| {
                common::http(&cluster.endpoint(i), "GET", "/v2/keys/", "")
                    .is_ok_and(|a| a.header("x-etcd-index") == Some(settled_index.as_str()))
            })
            .then_some(())
    });
    assert!(
        settled.is_some(),
        "{imp:?}: members never all published\n{}",
        cluster.logs()
    );
    let outputs = steps
        .iter()
        .map(|step| match step {
            Step::Run(args, member) => {
                let out = etcdctl_v2(&url(*member), args);
                if args.first() == Some(&"member") {
                    assert_eq!(
                        out.stdout.matches("isLeader=true").count(),
                        1,
                        "{imp:?}: one leader in {out:?}"
                    );
                }
                format!(
                    "$ {} (member {member})\nstatus {:?}\n{}{}",
                    args.join(" "),
                    out.code,
                    out.stdout,
                    out.stderr
                )
            }
            Step::Forever(args, lines) => {
                let mut got = etcdctl_v2_lines(&url(0), args, *lines, LINE_TIMEOUT);
                got.sort();
                format!("$ {}\n{}", args.join(" "), got.join("\n"))
            }
        })
        .collect();
    drop(cluster);
    outputs
}

/// Runs `steps` against etcd then keel on the same ports and compares every output.
fn compare(members: usize, steps: &[Step]) {
    let specs = member_specs(members);
    let etcd = run_steps(Impl::Etcd, &specs, &["--enable-v2"], steps);
    let keel = run_steps(Impl::Keel, &specs, &[], steps);
    let leader_chance = |text: &String| {
        if members > 1 {
            text.replace("isLeader=true", "isLeader=<?>")
                .replace("isLeader=false", "isLeader=<?>")
        } else {
            text.clone()
        }
    };
    let differences: Vec<String> = etcd
        .iter()
        .zip(&keel)
        .filter(|(e, k)| leader_chance(e) != leader_chance(k))
        .map(|(e, k)| format!("etcd:\n{e}\nkeel:\n{k}"))
        .collect();
    assert!(
        differences.is_empty(),
        "{} of {} etcdctl v2 outputs differ between etcd and keel:\n{}",
        differences.len(),
        steps.len(),
        differences.join("\n---\n")
    );
}

#[test]
fn etcdctl_v2_keys_commands_match_etcd() {
    use Step::{Forever, Run};
    let steps = [
        Run(&["set", "/foo", "bar"], 0),
        Run(&["get", "/foo"], 0),
        Run(&["get", "/missing"], 0),
        Run(&["mk", "/mk", "v1"], 0),
        Run(&["mk", "/mk", "v2"], 0),
        Run(&["mkdir", "/dir"], 0),
        Run(&["mkdir", "/dir"], 0),
        Run(&["set", "/dir/b", "2"], 0),
        Run(&["set", "/dir/a", "1"], 0),
        Run(&["set", "/dir/sub/c", "3"], 0),
        Run(&["ls", "--sort"], 0),
        Run(&["ls", "--sort", "/dir"], 0),
        Run(&["ls", "--recursive", "--sort", "/"], 0),
        Run(&["ls", "-p", "--sort", "/dir"], 0),
        Run(&["update", "/foo", "baz"], 0),
        Run(&["update", "/nokey", "x"], 0),
        Run(&["updatedir", "/dir"], 0),
        Run(&["set", "--ttl", "600", "/ttl", "t"], 0),
        Run(&["set", "--swap-with-value", "wrong", "/foo", "x"], 0),
        Run(&["set", "--swap-with-value", "baz", "/foo", "qux"], 0),
        Run(&["set", "--swap-with-index", "1", "/foo", "x"], 0),
        Run(&["set", "--swap-with-index", "13", "/foo", "idx"], 0),
        Run(&["get", "/foo"], 0),
        Run(&["-o", "json", "get", "/foo"], 0),
        Run(&["-o", "extended", "get", "/dir/a"], 0),
        Run(&["rm", "/dir"], 0),
        Run(&["rm", "--dir", "/dir"], 0),
        Run(&["mkdir", "/empty"], 0),
        Run(&["rmdir", "/empty"], 0),
        Run(&["rmdir", "/dir"], 0),
        Run(&["rm", "--recursive", "/dir"], 0),
        Run(&["rm", "/foo"], 0),
        Run(&["set", "/w/x", "1"], 0),
        Run(&["set", "/w/y/z", "2"], 0),
        Run(&["rm", "/w/x"], 0),
        Run(&["watch", "--after-index", "17", "/w/x"], 0),
        Forever(
            &[
                "watch",
                "--recursive",
                "--forever",
                "--after-index",
                "17",
                "/w",
            ],
            3,
        ),
        Forever(
            &[
                "exec-watch",
                "--after-index",
                "17",
                "--recursive",
                "/w",
                "--",
                "sh",
                "-c",
                "echo $ETCD_WATCH_ACTION $ETCD_WATCH_KEY $ETCD_WATCH_VALUE",
            ],
            3,
        ),
        Run(&["member", "list"], 0),
        Run(&["cluster-health"], 0),
    ];
    compare(1, &steps);
}

#[test]
fn etcdctl_v2_on_three_members_matches_etcd() {
    use Step::Run;
    let steps = [
        Run(&["member", "list"], 0),
        Run(&["member", "list"], 2),
        Run(&["cluster-health"], 1),
        Run(&["set", "/a", "1"], 0),
        Run(&["set", "/b", "2"], 1),
        Run(&["mk", "/c", "3"], 2),
        Run(&["get", "--quorum", "/a"], 2),
        Run(&["get", "--quorum", "/b"], 0),
        Run(&["ls", "--sort", "--quorum", "/"], 1),
        Run(&["rm", "/a"], 2),
        Run(&["get", "--quorum", "/a"], 1),
    ];
    compare(3, &steps);
}
