//! Debian's `etcdctl` 3.4 lease commands against a real `etcd` 3.4 and against `keel`,
//! started with the same flags on the same ports (the harness of `etcdctl_compat.rs`,
//! in `common`): the same session runs against both and every output must match.
//!
//! The session needs the id `lease grant` printed, so it runs step by step, putting
//! each implementation's own id into the later commands. What legitimately differs is
//! normalised, and only that:
//! - the lease id: the server picks it from its request id generator, whose low bits
//!   come from the clock (etcd's `idutil`), so the two servers never pick the same one;
//!   it is replaced by `<lease>` (in hex as etcdctl prints it, and in decimal in JSON);
//! - `remaining(Ns)` of `lease timetolive`: seconds left depend on how long the steps
//!   in between took;
//! - the Raft term in JSON headers, an artefact of elections;
//! - etcdctl's own JSON client log lines on stderr.
//!
//! Both servers run with the default timing (100 ms heartbeat, 1 s election), so
//! etcd's minimum TTL is 2 s on both and a `lease grant 1` answers TTL(2s).

mod common;

use std::time::Duration;

use common::{
    Cluster, ETCD, ETCDCTL, Impl, MemberSpec, Output, clean_command, etcdctl, mask_number_after,
    member_specs, run_bounded, without_client_logs,
};

/// How long the unbounded `lease keep-alive` runs before the test kills it: long
/// enough for its first renewal, far shorter than the TTL/3 before its second.
const KEEP_ALIVE_RUN: Duration = Duration::from_millis(2500);

#[derive(Debug)]
struct Outcome {
    step: String,
    output: Output,
}

/// `lease 694d81e0c1a3b704 granted with TTL(60s)` → the id.
fn granted_id(output: &Output) -> String {
    output
        .stdout
        .split_whitespace()
        .nth(1)
        .filter(|id| i64::from_str_radix(id, 16).is_ok())
        .unwrap_or_else(|| panic!("no lease id in {output:?}"))
        .to_owned()
}

fn session(imp: Impl, specs: &[MemberSpec]) -> Vec<Outcome> {
    let cluster = Cluster::start(imp, specs, &[]);
    let endpoint = cluster.endpoint(0);
    let mut outcomes = Vec::new();
    let mut run = |args: &[&str]| {
        let output = etcdctl(&endpoint, args, None);
        outcomes.push(Outcome {
            step: format!("etcdctl {}", args.join(" ")),
            output: output.clone(),
        });
        output
    };

    let grant = run(&["lease", "grant", "60"]);
    let id = granted_id(&grant);
    let lease_flag = format!("--lease={id}");
    run(&["put", &lease_flag, "foo", "bar"]);
    run(&["put", &lease_flag, "foo2", "bar2"]);
    run(&["get", "foo", "-w", "json"]);
    run(&["lease", "keep-alive", "--once", &id]);
    run(&["lease", "timetolive", &id]);
    run(&["lease", "timetolive", "--keys", &id]);
    run(&["lease", "list"]);
    run(&["put", "--lease=1234", "nolease", "v"]);
    run(&["lease", "keep-alive", "--once", "1234"]);
    run(&["lease", "timetolive", "1234"]);
    run(&["lease", "revoke", "1234"]);
    // The minimum TTL raises a short grant; the lease is revoked at once.
    let short = run(&["lease", "grant", "1"]);
    let short_id = granted_id(&short);
    run(&["lease", "revoke", &short_id]);

    // The unbounded keep-alive runs until killed: its first renewal is printed at once.
    let mut command = clean_command(ETCDCTL);
    command
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .args(["lease", "keep-alive", &id]);
    let output = run_bounded(command, None, KEEP_ALIVE_RUN);
    assert_eq!(
        output.code, None,
        "{imp:?}: keep-alive ended by itself: {output:?}"
    );
    outcomes.push(Outcome {
        step: format!("etcdctl lease keep-alive {id} (killed after {KEEP_ALIVE_RUN:?})"),
        output,
    });

    let mut run = |args: &[&str]| {
        let output = etcdctl(&endpoint, args, None);
        outcomes.push(Outcome {
            step: format!("etcdctl {}", args.join(" ")),
            output,
        });
    };
    run(&["lease", "revoke", &id]);
    run(&["get", "foo", "--prefix"]);
    run(&["lease", "timetolive", &id]);
    run(&["lease", "revoke", &id]);
    run(&["lease", "list"]);
    drop(cluster);

    // Replace this implementation's lease ids by placeholders, in hex and in decimal.
    for (hex, placeholder) in [(&id, "<lease>"), (&short_id, "<short lease>")] {
        let decimal = i64::from_str_radix(hex, 16)
            .expect("checked when parsed")
            .to_string();
        for o in &mut outcomes {
            for text in [&mut o.step, &mut o.output.stdout, &mut o.output.stderr] {
                *text = text
                    .replace(hex, placeholder)
                    .replace(&decimal, placeholder);
            }
        }
    }
    outcomes
}

/// etcd lists a lease's keys in Go map order, which changes from run to run: sorts the
/// names inside `attached keys([...])`.
fn sort_attached_keys(text: &str) -> String {
    const OPEN: &str = "attached keys([";
    let Some(start) = text.find(OPEN).map(|i| i + OPEN.len()) else {
        return text.to_owned();
    };
    let Some(len) = text[start..].find("])") else {
        return text.to_owned();
    };
    let mut keys: Vec<&str> = text[start..start + len].split(' ').collect();
    keys.sort_unstable();
    format!(
        "{}{}{}",
        &text[..start],
        keys.join(" "),
        &text[start + len..]
    )
}

fn normalise(output: &Output) -> Output {
    let stdout = sort_attached_keys(&output.stdout);
    let stdout = mask_number_after(&stdout, "remaining(");
    let stdout = mask_number_after(&stdout, "\"raft_term\":");
    Output {
        code: output.code,
        stdout,
        stderr: without_client_logs(&output.stderr),
    }
}

#[test]
fn etcdctl_lease_commands_print_the_same_against_etcd_and_keel() {
    for tool in [ETCD, ETCDCTL] {
        assert!(
            std::path::Path::new(tool).exists(),
            "{tool} is missing: install Debian's etcd-server and etcd-client (scripts/install-deps)"
        );
    }
    // The same names and ports for both, so member and cluster ids match too.
    let specs = member_specs(1);
    let etcd = session(Impl::Etcd, &specs);
    let keel = session(Impl::Keel, &specs);
    assert_eq!(etcd.len(), keel.len());
    let mut differences = Vec::new();
    for (e, k) in etcd.iter().zip(&keel) {
        assert_eq!(e.step, k.step, "the sessions ran the same steps");
        let (expected, actual) = (normalise(&e.output), normalise(&k.output));
        if expected != actual {
            differences.push(format!(
                "{}\n  etcd: {expected:?}\n  keel: {actual:?}",
                e.step
            ));
        }
    }
    // The session must have exercised what it claims: a sanity check on etcd's side.
    let etcd_said = |step: &str| -> String {
        etcd.iter()
            .find(|o| o.step.starts_with(step))
            .map(|o| o.output.stdout.clone())
            .unwrap_or_else(|| panic!("no step {step}"))
    };
    assert_eq!(
        etcd_said("etcdctl lease grant 60"),
        "lease <lease> granted with TTL(60s)\n"
    );
    let with_keys = sort_attached_keys(&etcd_said("etcdctl lease timetolive --keys"));
    assert!(
        with_keys.contains("attached keys([foo foo2])"),
        "etcd said {with_keys:?}; the whole etcd session: {etcd:#?}"
    );
    assert!(
        etcd_said("etcdctl lease keep-alive <lease> (killed")
            .starts_with("lease <lease> keepalived with TTL(60)\n")
    );
    assert_eq!(
        etcd_said("etcdctl lease grant 1"),
        "lease <short lease> granted with TTL(2s)\n"
    );
    assert!(
        differences.is_empty(),
        "{} of {} etcdctl outputs differ between etcd and keel:\n{}",
        differences.len(),
        etcd.len(),
        differences.join("\n")
    );
}

#[test]
fn attached_keys_are_compared_in_sorted_order() {
    assert_eq!(
        sort_attached_keys(
            "lease 1 granted with TTL(60s), remaining(59s), attached keys([foo2 foo])\n"
        ),
        "lease 1 granted with TTL(60s), remaining(59s), attached keys([foo foo2])\n"
    );
    assert_eq!(sort_attached_keys("attached keys([])"), "attached keys([])");
    assert_eq!(sort_attached_keys("no keys here"), "no keys here");
}
