//! Property tests: random operation sequences against a simple model of the v2 tree, and
//! snapshot round trips.

use std::collections::BTreeMap;

use keel_v2store::{ErrorCode, Store, TtlOptions};
use proptest::prelude::*;

const S: i64 = 1_000_000_000;
const NOW: i64 = 1_795_305_600 * S;

/// Paths the operations draw from: nested so that files and directories collide.
const PATHS: &[&str] = &[
    "/1/a", "/1/b", "/1/a/x", "/1/d/x", "/1/d/y", "/1/d/e/x", "/1/d", "/1/d/_h",
];

#[derive(Debug, Clone)]
enum Op {
    Set(usize, u8, Option<i64>),
    SetDir(usize),
    Create(usize, u8),
    Update(usize, u8),
    Cas(usize, u8, u8),
    Delete(usize, bool),
    Cad(usize, u8),
    Get(usize),
    Expire(i64),
}

fn op() -> impl Strategy<Value = Op> {
    let p = 0..PATHS.len();
    prop_oneof![
        (p.clone(), 0u8..3, proptest::option::of(1i64..5)).prop_map(|(p, v, t)| Op::Set(p, v, t)),
        p.clone().prop_map(Op::SetDir),
        (p.clone(), 0u8..3).prop_map(|(p, v)| Op::Create(p, v)),
        (p.clone(), 0u8..3).prop_map(|(p, v)| Op::Update(p, v)),
        (p.clone(), 0u8..3, 0u8..3).prop_map(|(p, a, b)| Op::Cas(p, a, b)),
        (p.clone(), any::<bool>()).prop_map(|(p, r)| Op::Delete(p, r)),
        (p.clone(), 0u8..3).prop_map(|(p, v)| Op::Cad(p, v)),
        p.prop_map(Op::Get),
        (1i64..4).prop_map(Op::Expire),
    ]
}

#[derive(Debug, Clone, PartialEq)]
enum M {
    File {
        value: String,
        created: u64,
        modified: u64,
    },
    Dir {
        created: u64,
    },
}

/// The model: a flat map of every existing path (namespace dirs excluded), plus expiries.
#[derive(Debug, Default, Clone)]
struct Model {
    nodes: BTreeMap<String, M>,
    expire: BTreeMap<String, i64>,
    index: u64,
}

fn parent(p: &str) -> &str {
    let cut = p.rfind('/').expect("absolute");
    &p[..cut]
}

impl Model {
    fn ancestors(p: &str) -> Vec<&str> {
        let mut out = Vec::new();
        let mut cur = parent(p);
        while cur != "/1" {
            out.push(cur);
            cur = parent(cur);
        }
        out.reverse();
        out
    }

    /// The error an existing-path lookup gives, etcd-style.
    fn lookup(&self, p: &str) -> Result<&M, ErrorCode> {
        for a in Self::ancestors(p) {
            match self.nodes.get(a) {
                None => return Err(ErrorCode::KeyNotFound),
                Some(M::File { .. }) => return Err(ErrorCode::NotDir),
                Some(M::Dir { .. }) => {}
            }
        }
        self.nodes.get(p).ok_or(ErrorCode::KeyNotFound)
    }

    fn remove_subtree(&mut self, p: &str) {
        let prefix = format!("{p}/");
        self.nodes.retain(|k, _| k != p && !k.starts_with(&prefix));
        self.expire.retain(|k, _| k != p && !k.starts_with(&prefix));
    }

    fn create(
        &mut self,
        p: &str,
        node: Option<String>,
        replace: bool,
        ttl: Option<i64>,
    ) -> Result<u64, ErrorCode> {
        for a in Self::ancestors(p) {
            if let Some(M::File { .. }) = self.nodes.get(a) {
                return Err(ErrorCode::NotDir);
            }
        }
        match self.nodes.get(p) {
            Some(M::Dir { .. }) if replace => return Err(ErrorCode::NotFile),
            Some(_) if !replace => return Err(ErrorCode::NodeExist),
            _ => {}
        }
        let next = self.index + 1;
        for a in Self::ancestors(p) {
            self.nodes
                .entry(a.to_string())
                .or_insert(M::Dir { created: next });
        }
        self.expire.remove(p);
        let n = match node {
            Some(value) => M::File {
                value,
                created: next,
                modified: next,
            },
            None => M::Dir { created: next },
        };
        self.nodes.insert(p.to_string(), n);
        if let Some(t) = ttl {
            self.expire.insert(p.to_string(), t);
        }
        self.index = next;
        Ok(next)
    }

    fn expire(&mut self, cutoff: i64) -> u64 {
        let mut n = 0;
        loop {
            let first = self.expire.iter().map(|(k, t)| (*t, k.clone())).min();
            match first {
                Some((t, k)) if t <= cutoff => {
                    self.remove_subtree(&k);
                    self.index += 1;
                    n += 1;
                }
                _ => return n,
            }
        }
    }
}

fn value(v: u8) -> String {
    format!("v{v}")
}

fn check(store: &Store, model: &Model) {
    assert_eq!(store.index(), model.index, "index");
    for p in PATHS {
        let got = store.get(p, false, false, NOW);
        match (model.lookup(p), got) {
            (
                Ok(M::File {
                    value,
                    created,
                    modified,
                }),
                Ok(e),
            ) => {
                assert_eq!(e.node.value.as_deref(), Some(value.as_str()), "{p}");
                assert_eq!(
                    (e.node.created_index, e.node.modified_index),
                    (*created, *modified),
                    "{p}"
                );
            }
            (Ok(M::Dir { created }), Ok(e)) => {
                assert!(e.node.dir, "{p} is a dir");
                assert_eq!(e.node.created_index, *created, "{p}");
            }
            (Err(code), Err(err)) => assert_eq!(err.code, code, "{p}"),
            (m, s) => panic!("{p}: model {m:?} store {s:?}"),
        }
    }
    store.check_invariants();
}

fn apply(store: &mut Store, model: &mut Model, op: &Op, now: &mut i64) {
    let p = |i: &usize| PATHS[*i];
    let perm = TtlOptions::PERMANENT;
    match op {
        Op::Set(i, v, ttl) => {
            let t = ttl.map(|t| *now + t * S);
            let opts = TtlOptions {
                expire_time: t,
                refresh: false,
            };
            let got = store
                .set(p(i), false, &value(*v), opts, *now)
                .map(|e| e.index());
            let want = model.create(p(i), Some(value(*v)), true, t);
            assert_eq!(got.map_err(|e| e.code), want, "{op:?}");
        }
        Op::SetDir(i) => {
            let got = store.set(p(i), true, "", perm, *now).map(|e| e.index());
            let want = model.create(p(i), None, true, None);
            assert_eq!(got.map_err(|e| e.code), want, "{op:?}");
        }
        Op::Create(i, v) => {
            let got = store
                .create(p(i), false, &value(*v), perm, *now)
                .map(|e| e.index());
            let want = model.create(p(i), Some(value(*v)), false, None);
            assert_eq!(got.map_err(|e| e.code), want, "{op:?}");
        }
        Op::Update(i, v) | Op::Cas(i, _, v) => {
            let prev = match op {
                Op::Cas(_, pv, _) => value(*pv),
                _ => String::new(),
            };
            let got = match op {
                Op::Cas(..) => store.compare_and_swap(p(i), &prev, 0, &value(*v), perm, *now),
                _ => store.update(p(i), &value(*v), perm, *now),
            };
            let is_cas = matches!(op, Op::Cas(..));
            let want = match model.lookup(p(i)).cloned() {
                Err(c) => Err(c),
                Ok(M::Dir { .. }) => Err(ErrorCode::NotFile),
                Ok(M::File { value: cur, .. }) if is_cas && cur != prev => {
                    Err(ErrorCode::TestFailed)
                }
                Ok(M::File { created, .. }) => {
                    model.index += 1;
                    model.expire.remove(p(i));
                    model.nodes.insert(
                        p(i).to_string(),
                        M::File {
                            value: value(*v),
                            created,
                            modified: model.index,
                        },
                    );
                    Ok(model.index)
                }
            };
            assert_eq!(got.map(|e| e.index()).map_err(|e| e.code), want, "{op:?}");
        }
        Op::Delete(i, recursive) => {
            let got = store
                .delete(p(i), false, *recursive, *now)
                .map(|e| e.index());
            let want = match model.lookup(p(i)).cloned() {
                Err(c) => Err(c),
                Ok(M::Dir { .. }) if !recursive => Err(ErrorCode::NotFile),
                Ok(_) => {
                    model.remove_subtree(p(i));
                    model.index += 1;
                    Ok(model.index)
                }
            };
            assert_eq!(got.map_err(|e| e.code), want, "{op:?}");
        }
        Op::Cad(i, v) => {
            let got = store
                .compare_and_delete(p(i), &value(*v), 0, *now)
                .map(|e| e.index());
            let want = match model.lookup(p(i)).cloned() {
                Err(c) => Err(c),
                Ok(M::Dir { .. }) => Err(ErrorCode::NotFile),
                Ok(M::File { value: cur, .. }) if cur != value(*v) => Err(ErrorCode::TestFailed),
                Ok(_) => {
                    model.remove_subtree(p(i));
                    model.index += 1;
                    Ok(model.index)
                }
            };
            assert_eq!(got.map_err(|e| e.code), want, "{op:?}");
        }
        Op::Get(i) => {
            let got = store.get(p(i), true, true, *now).map(|e| e.etcd_index);
            let want = model.lookup(p(i)).map(|_| model.index);
            assert_eq!(got.map_err(|e| e.code), want, "{op:?}");
        }
        Op::Expire(secs) => {
            *now += secs * S;
            let got = store.delete_expired_keys(*now).len() as u64;
            assert_eq!(got, model.expire(*now), "{op:?}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn store_matches_model(ops in proptest::collection::vec(op(), 1..60)) {
        let mut store = Store::new(&["/0", "/1"]);
        let mut model = Model::default();
        let mut now = NOW;
        for op in &ops {
            apply(&mut store, &mut model, op, &mut now);
            check(&store, &model);
        }
    }

    #[test]
    fn save_recover_round_trips(ops in proptest::collection::vec(op(), 0..80)) {
        let mut store = Store::new(&["/0", "/1"]);
        let mut model = Model::default();
        let mut now = NOW;
        for op in &ops {
            apply(&mut store, &mut model, op, &mut now);
        }
        let snap = store.save();
        let mut back = Store::new(&["/0", "/1"]);
        back.recover(&snap).expect("recover own snapshot");
        back.check_invariants();
        prop_assert_eq!(back.save(), snap.clone(), "save(recover(x)) == x");
        prop_assert_eq!(back.index(), store.index());
        prop_assert_eq!(back.stats(), store.stats());
        prop_assert_eq!(back.next_expiry(), store.next_expiry());
        let a = store.get("/1", true, true, now).expect("root");
        let b = back.get("/1", true, true, now).expect("root");
        prop_assert_eq!(a.to_json(), b.to_json());
        for since in 1..=store.index() {
            let mut wa = store.watch("/1", true, false, since).expect("in history");
            let mut wb = back.watch("/1", true, false, since).expect("in history");
            let ea = wa.events.try_recv().ok().map(|e| e.to_json());
            let eb = wb.events.try_recv().ok().map(|e| e.to_json());
            prop_assert_eq!(ea, eb, "history answer from {}", since);
            store.remove_watcher(wa.id);
            back.remove_watcher(wb.id);
        }
        // Both continue identically.
        let (mut m1, mut m2) = (model.clone(), model.clone());
        let (mut n1, mut n2) = (now, now);
        for op in &ops {
            apply(&mut store, &mut m1, op, &mut n1);
            apply(&mut back, &mut m2, op, &mut n2);
        }
        prop_assert_eq!(store.save(), back.save(), "same ops after recovery give the same state");
    }
}

#[test]
fn corrupt_snapshots_are_rejected_and_leave_the_store_alone() {
    let mut s = Store::new(&["/0", "/1"]);
    s.set("/1/k", false, "v", TtlOptions::PERMANENT, NOW)
        .expect("set");
    let before = s.save();
    let text = String::from_utf8(before.clone()).expect("utf-8");
    for bad in [
        text.replace("\"CurrentVersion\":2", "\"CurrentVersion\":3"),
        text.replace("\"Path\":\"/1/k\"", "\"Path\":\"/1/j\""),
        text.replace("\"Children\":{\"0\"", "\"Children\":{\"zz\""),
        text[..text.len() / 2].to_string(),
    ] {
        assert!(s.recover(bad.as_bytes()).is_err(), "{bad}");
        assert_eq!(s.save(), before);
    }
}
