//! Property tests: random op sequences give the results of a simple in-memory model,
//! across clean reopens and crashes followed by a WAL-style replay.

mod common;

use std::collections::BTreeMap;

use common::Harness;
use keel_mvcc::{
    ApplyIndex, BatchConfig, Compare, CompareResult, CompareTarget, DeleteRangeRequest, KeyValue,
    MvccError, PutRequest, RangeRequest, RequestOp, Store, TxnRequest,
};
use keel_mvcc::{EventType, WatchRequest, WatchResponse};
use proptest::prelude::*;

const KEYS: &[&str] = &["a", "b", "ba", "c", "d"];

#[derive(Clone, Debug)]
enum Op {
    Put {
        key: usize,
        value: u8,
    },
    Delete {
        key: usize,
        end: Option<usize>,
    },
    /// If `key` has `version`, put `then_key`, else delete `else_key`.
    Txn {
        key: usize,
        version: i64,
        then_key: usize,
        else_key: usize,
        value: u8,
    },
    Compact {
        back: i64,
    },
    Range {
        key: usize,
        end: Option<usize>,
        back: i64,
        limit: i64,
    },
    Commit,
    Reopen,
    Crash,
    /// Read what the watcher's channel holds.
    WatchDrain,
    /// `sync_watchers`, then read the channel.
    WatchSync,
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..KEYS.len();
    let end = proptest::option::of(0..=KEYS.len());
    prop_oneof![
        6 => (key.clone(), any::<u8>()).prop_map(|(key, value)| Op::Put { key, value }),
        2 => (key.clone(), end.clone()).prop_map(|(key, end)| Op::Delete { key, end }),
        2 => (key.clone(), 0..3i64, key.clone(), key.clone(), any::<u8>()).prop_map(
            |(key, version, then_key, else_key, value)| Op::Txn { key, version, then_key, else_key, value }
        ),
        1 => (0..6i64).prop_map(|back| Op::Compact { back }),
        4 => (key, end, 0..6i64, 0..3i64).prop_map(|(key, end, back, limit)| Op::Range { key, end, back, limit }),
        1 => Just(Op::Commit),
        2 => Just(Op::WatchDrain),
        2 => Just(Op::WatchSync),
        1 => Just(Op::Reopen),
        1 => Just(Op::Crash),
    ]
}

/// `end` index `KEYS.len()` means "\0" (every key from `key` on).
fn end_bytes(end: Option<usize>) -> Vec<u8> {
    match end {
        None => Vec::new(),
        Some(i) if i == KEYS.len() => vec![0],
        Some(i) => KEYS[i].as_bytes().to_vec(),
    }
}

fn in_range(key: &[u8], end: &[u8], probe: &[u8]) -> bool {
    if end.is_empty() {
        probe == key
    } else if end == [0] {
        probe >= key
    } else {
        probe >= key && probe < end
    }
}

/// The model: the whole keyspace after every revision.
struct Model {
    /// `states[r]` is the keyspace at revision `r` (index 0 unused, 1 is empty).
    states: Vec<BTreeMap<Vec<u8>, KeyValue>>,
    compact: i64,
}

impl Model {
    fn new() -> Self {
        Self {
            states: vec![BTreeMap::new(), BTreeMap::new()],
            compact: -1,
        }
    }

    fn rev(&self) -> i64 {
        i64::try_from(self.states.len()).expect("small") - 1
    }

    fn current(&self) -> &BTreeMap<Vec<u8>, KeyValue> {
        self.states.last().expect("never empty")
    }

    fn put_into(state: &mut BTreeMap<Vec<u8>, KeyValue>, rev: i64, key: &[u8], value: &[u8]) {
        let (create, version) = match state.get(key) {
            Some(kv) => (kv.create_revision, kv.version + 1),
            None => (rev, 1),
        };
        state.insert(
            key.to_vec(),
            KeyValue {
                key: key.to_vec(),
                create_revision: create,
                mod_revision: rev,
                version,
                value: value.to_vec(),
                lease: 0,
            },
        );
    }

    fn put(&mut self, key: &[u8], value: &[u8]) {
        let rev = self.rev() + 1;
        let mut next = self.current().clone();
        Self::put_into(&mut next, rev, key, value);
        self.states.push(next);
    }

    fn delete(&mut self, key: &[u8], end: &[u8]) -> i64 {
        let mut next = self.current().clone();
        next.retain(|k, _| !in_range(key, end, k));
        let deleted = i64::try_from(self.current().len() - next.len()).expect("small");
        if deleted > 0 {
            self.states.push(next);
        }
        deleted
    }

    fn range(
        &self,
        key: &[u8],
        end: &[u8],
        rev: i64,
        limit: i64,
    ) -> Result<(Vec<KeyValue>, bool, i64), &'static str> {
        if rev > self.rev() {
            return Err("future");
        }
        let rev = if rev <= 0 { self.rev() } else { rev };
        if rev < self.compact {
            return Err("compacted");
        }
        let state = &self.states[usize::try_from(rev).expect("positive")];
        let all: Vec<KeyValue> = state
            .values()
            .filter(|kv| in_range(key, end, &kv.key))
            .cloned()
            .collect();
        let count = i64::try_from(all.len()).expect("small");
        let lim = usize::try_from(limit).expect("non-negative");
        if lim > 0 && all.len() > lim {
            Ok((all[..lim].to_vec(), true, count))
        } else {
            Ok((all, false, count))
        }
    }
}

/// One event as the model sees it: revision, key, value (`None` for a delete).
type ModelEvent = (i64, Vec<u8>, Option<Vec<u8>>);

impl Model {
    /// The events of revision `rev`; every model revision comes from one op, so sub
    /// revisions follow key order.
    fn events_at(&self, rev: i64) -> Vec<ModelEvent> {
        let r = usize::try_from(rev).expect("positive");
        let (before, after) = (&self.states[r - 1], &self.states[r]);
        let mut events: Vec<ModelEvent> = after
            .values()
            .filter(|kv| kv.mod_revision == rev)
            .map(|kv| (rev, kv.key.clone(), Some(kv.value.clone())))
            .chain(
                before
                    .keys()
                    .filter(|k| !after.contains_key(*k))
                    .map(|k| (rev, k.clone(), None)),
            )
            .collect();
        events.sort();
        events
    }
}

/// A watcher on every key that checks what it receives against the model: events in
/// revision order, each revision whole in one response, no gap, no duplicate. It
/// resumes after reopens and compaction notices like a client would.
struct WatchCheck {
    rx: tokio::sync::mpsc::Receiver<WatchResponse>,
    capacity: usize,
    /// Next revision whose events the watcher must deliver.
    next_rev: i64,
}

impl WatchCheck {
    fn start(store: &mut Store, capacity: usize, from: i64) -> Self {
        let (tx, rx) = tokio::sync::mpsc::channel(capacity);
        store.watch(
            WatchRequest {
                key: vec![0],
                range_end: vec![0],
                start_revision: from,
                ..WatchRequest::default()
            },
            tx,
        );
        Self {
            rx,
            capacity,
            next_rev: from,
        }
    }

    /// Checks everything in the channel; returns whether a compaction notice came.
    fn drain(&mut self, model: &Model) -> bool {
        let mut compacted = false;
        while let Ok(resp) = self.rx.try_recv() {
            if resp.compact_revision != 0 {
                assert!(resp.events.is_empty());
                assert!(
                    self.next_rev < resp.compact_revision,
                    "notice for a watcher at {} with compaction {}",
                    self.next_rev,
                    resp.compact_revision
                );
                // Resume where a client would: at the compaction point.
                self.next_rev = resp.compact_revision;
                compacted = true;
                continue;
            }
            let mut got: Vec<ModelEvent> = resp
                .events
                .iter()
                .map(|e| {
                    let value = (e.kind == EventType::Put).then(|| e.kv.value.clone());
                    (e.kv.mod_revision, e.kv.key.clone(), value)
                })
                .collect();
            assert!(!got.is_empty(), "responses without events are not sent");
            let last = got.last().expect("non-empty").0;
            assert!(resp.revision >= last);
            let mut want = Vec::new();
            for rev in self.next_rev..=last {
                want.extend(model.events_at(rev));
            }
            got.sort_by_key(|e| e.0);
            assert_eq!(got, want, "events from revision {}", self.next_rev);
            self.next_rev = last + 1;
        }
        compacted
    }

    /// Follows up a compaction notice or a reopen with a new watcher. A watcher may
    /// start at the compaction point itself and still sees every event of it, since
    /// compaction keeps a tombstone at exactly its revision.
    fn restart(&mut self, store: &mut Store) {
        *self = Self::start(store, self.capacity, self.next_rev);
    }

    /// Syncs until every event of the model has arrived.
    fn finish(&mut self, store: &mut Store, model: &Model) {
        for _ in 0..1_000 {
            let report = store.sync_watchers().expect("sync");
            if self.drain(model) {
                self.restart(store);
                continue;
            }
            if report.pending == 0 {
                break;
            }
        }
        for rev in self.next_rev..=model.rev() {
            assert!(
                model.events_at(rev).is_empty(),
                "events of revision {rev} never arrived"
            );
        }
    }
}

/// A write as the Raft log would carry it, replayable after a crash.
#[derive(Clone, Debug)]
enum Entry {
    Put(PutRequest),
    Delete(DeleteRangeRequest),
    Txn(TxnRequest),
    Compact(i64),
}

fn apply(store: &mut Store, at: ApplyIndex, entry: &Entry) -> Result<String, MvccError> {
    Ok(match entry {
        Entry::Put(r) => format!("{:?}", store.put(at, r)?),
        Entry::Delete(r) => format!("{:?}", store.delete_range(at, r)?),
        Entry::Txn(r) => format!("{:?}", store.txn(at, r)?),
        Entry::Compact(rev) => format!("{:?}", store.compact(at, *rev)?),
    })
}

fn err_kind(e: &MvccError) -> &'static str {
    match e {
        MvccError::Compacted { .. } => "compacted",
        MvccError::FutureRevision { .. } => "future",
        other => panic!("unexpected error {other}"),
    }
}

fn run(ops: Vec<Op>, batch_limit_ops: usize, watch_capacity: usize) {
    let config = BatchConfig {
        batch_limit_ops,
        ..BatchConfig::default()
    };
    let mut h = Harness::with_config(config);
    let mut model = Model::new();
    let mut watch = WatchCheck::start(&mut h.store, watch_capacity, 1);
    let mut log: Vec<(ApplyIndex, Entry, String)> = Vec::new();
    let submit = |h: &mut Harness,
                  log: &mut Vec<(ApplyIndex, Entry, String)>,
                  entry: Entry|
     -> Result<String, MvccError> {
        let at = h.at();
        let result = apply(&mut h.store, at, &entry);
        let shown = match &result {
            Ok(s) => s.clone(),
            Err(e) => e.to_string(),
        };
        log.push((at, entry, shown));
        result
    };
    for op in ops {
        match op {
            Op::Put { key, value } => {
                let k = KEYS[key].as_bytes();
                let resp = submit(
                    &mut h,
                    &mut log,
                    Entry::Put(PutRequest {
                        key: k.to_vec(),
                        value: vec![value],
                        ..PutRequest::default()
                    }),
                );
                resp.expect("put");
                model.put(k, &[value]);
            }
            Op::Delete { key, end } => {
                let (k, e) = (KEYS[key].as_bytes(), end_bytes(end));
                let req = DeleteRangeRequest {
                    key: k.to_vec(),
                    range_end: e.clone(),
                    prev_kv: false,
                };
                submit(&mut h, &mut log, Entry::Delete(req)).expect("delete");
                model.delete(k, &e);
            }
            Op::Txn {
                key,
                version,
                then_key,
                else_key,
                value,
            } => {
                let k = KEYS[key].as_bytes();
                let holds = model.current().get(k).map_or(0, |kv| kv.version) == version;
                let req = TxnRequest {
                    compare: vec![Compare {
                        result: CompareResult::Equal,
                        target: CompareTarget::Version(version),
                        key: k.to_vec(),
                        range_end: Vec::new(),
                    }],
                    success: vec![RequestOp::Put(PutRequest {
                        key: KEYS[then_key].as_bytes().to_vec(),
                        value: vec![value],
                        ..PutRequest::default()
                    })],
                    failure: vec![RequestOp::DeleteRange(DeleteRangeRequest {
                        key: KEYS[else_key].as_bytes().to_vec(),
                        range_end: Vec::new(),
                        prev_kv: false,
                    })],
                };
                let resp = submit(&mut h, &mut log, Entry::Txn(req)).expect("txn");
                assert!(resp.contains(&format!("succeeded: {holds}")), "{resp}");
                if holds {
                    model.put(KEYS[then_key].as_bytes(), &[value]);
                } else {
                    model.delete(KEYS[else_key].as_bytes(), &[]);
                }
            }
            Op::Compact { back } => {
                let rev = model.rev() - back;
                let result = submit(&mut h, &mut log, Entry::Compact(rev));
                let want = if rev <= model.compact {
                    Err("compacted")
                } else {
                    Ok(())
                };
                assert_eq!(result.as_ref().map(|_| ()).map_err(err_kind), want);
                if want.is_ok() {
                    model.compact = rev;
                }
            }
            Op::Range {
                key,
                end,
                back,
                limit,
            } => {
                let (k, e) = (KEYS[key].as_bytes(), end_bytes(end));
                // back 0 reads at "current" (revision 0), otherwise at rev - back + 1,
                // which is a future revision for back 0 is never asked.
                let rev = if back == 0 { 0 } else { model.rev() - back + 1 };
                let got = h.store.range(&RangeRequest {
                    key: k.to_vec(),
                    range_end: e.clone(),
                    revision: rev,
                    limit,
                    ..RangeRequest::default()
                });
                let want = model.range(k, &e, rev, limit);
                match (got, want) {
                    (Ok(g), Ok((kvs, more, count))) => {
                        assert_eq!(g.kvs, kvs);
                        assert_eq!((g.more, g.count), (more, count));
                        assert_eq!(g.revision, model.rev());
                    }
                    (Err(e), Err(w)) => assert_eq!(err_kind(&e), w),
                    (g, w) => panic!("store {g:?} model {w:?}"),
                }
            }
            Op::Commit => h.store.force_commit().expect("commit"),
            Op::WatchDrain => {
                if watch.drain(&model) {
                    watch.restart(&mut h.store);
                }
            }
            Op::WatchSync => {
                h.store.sync_watchers().expect("sync");
                if watch.drain(&model) {
                    watch.restart(&mut h.store);
                }
            }
            Op::Reopen => {
                h.store.force_commit().expect("commit");
                h.crash_and_reopen(config);
                assert_eq!(h.store.consistent_index() + 1, h.next_index);
                watch.drain(&model);
                watch.restart(&mut h.store);
            }
            Op::Crash => {
                h.crash_and_reopen(config);
                let ci = h.store.consistent_index();
                // Replay the whole log as a restarted server would: entries at or
                // below the consistent index are refused, the rest give the same
                // results as the first time.
                for (at, entry, first) in &log {
                    let again = apply(&mut h.store, *at, entry);
                    if at.index <= ci {
                        assert!(matches!(again, Err(MvccError::AlreadyApplied { .. })));
                    } else {
                        let shown = match again {
                            Ok(s) => s,
                            Err(e) => e.to_string(),
                        };
                        assert_eq!(&shown, first, "replay of entry {}", at.index);
                    }
                }
                watch.drain(&model);
                watch.restart(&mut h.store);
            }
        }
        assert_eq!(h.store.current_revision(), model.rev());
    }
    watch.finish(&mut h.store, &model);
    // Final full comparison at every readable revision.
    for rev in model.compact.max(1)..=model.rev() {
        let got = h
            .store
            .range(&RangeRequest {
                key: vec![0],
                range_end: vec![0],
                revision: rev,
                ..RangeRequest::default()
            })
            .expect("range");
        let want: Vec<KeyValue> = model.states[usize::try_from(rev).expect("positive")]
            .values()
            .cloned()
            .collect();
        assert_eq!(got.kvs, want, "keyspace at revision {rev}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_model(
        ops in proptest::collection::vec(op(), 1..60),
        small_batches in any::<bool>(),
        watch_capacity in 1..4usize,
    ) {
        run(ops, if small_batches { 3 } else { 10_000 }, watch_capacity);
    }
}
