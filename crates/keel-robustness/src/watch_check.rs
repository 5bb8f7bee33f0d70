//! The watch checks: pure functions of the records.
//!
//! A *watcher* is the sequence of its sessions ([`Request::Watch`] records
//! with one `watcher` number, ordered by `session`). Its *cursor* is the next
//! revision it must see: the start revision of its first session (or, for a
//! watch "from now", the created response's header revision + 1), then the
//! last event revision seen + 1. Its *coverage* runs from its first cursor to
//! the last event revision it received: events come in revision order, so a
//! correct server has delivered every change in between.
//!
//! The *known modifications* are every event any watcher received plus the
//! acknowledged writes of the KV and lease traffic, each at the revision its
//! response header names (a put, a delete that removed the key, a successful
//! transaction). Two sources naming different changes of one key at one
//! revision fail the gap check.
//!
//! * **ordered**: a watcher's event revisions never decrease.
//! * **duplicates**: no watcher receives one change (revision, key) twice.
//! * **gaps**: every known modification inside a watcher's coverage was
//!   received by it, equal to what the others received; every put event's
//!   value was written, at that revision when its write was acknowledged;
//!   and for a watcher covering the run from revision 1, replaying its
//!   events up to the header revision of any prefix range inside its
//!   coverage gives exactly what the range returned.
//! * **atomic**: the events of one revision arrive in one response (the
//!   traffic never asks for fragmented responses).
//! * **resumable**: each resumed session asks for exactly the watcher's
//!   cursor, and no session receives events before its start revision (or,
//!   from now, at or before its created revision).
//! * **filters**: a watcher that filters out puts or deletes receives none
//!   (that it receives all the others is the gap check's business: changes of
//!   a filtered kind are not required of it, and it is not replayed).
//! * **prev_kv**: on sessions that asked for it, a put of version 1 has no
//!   previous key-value, a later put or a delete has one; the previous
//!   key-value was written at the modification revision it names (a known
//!   put of that value), no known modification of the key lies between it
//!   and the event, and for a put it is the version before, of the same
//!   generation. A missing previous key-value is excused when a compaction
//!   at or past the event's revision was asked for before it arrived (etcd
//!   reads it at the revision before the event, which compaction removes).
//!
//! Unknown writes add no known modification and no revision, so they can only
//! make these checks more lenient: a correct history never fails them.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::check::Verdict;
use crate::history::{EventKind, Outcome, Record, Request, Response, WatchEvent, WatchSession};

/// One session of a watcher, as recorded.
#[derive(Debug, Clone, Copy)]
pub struct Session<'a> {
    /// The session number.
    pub session: u32,
    /// The start revision asked for.
    pub start_revision: i64,
    /// Whether previous key-values were asked for.
    pub prev_kv: bool,
    /// The watched prefix.
    pub prefix: &'a str,
    /// Events of this kind are filtered out.
    pub filter_out: Option<EventKind>,
    /// What it received.
    pub data: &'a WatchSession,
}

/// Every watcher's sessions, by watcher number, in session order.
pub fn watchers(records: &[Record]) -> BTreeMap<u64, Vec<Session<'_>>> {
    let mut out: BTreeMap<u64, Vec<Session<'_>>> = BTreeMap::new();
    for r in records {
        if let (
            Request::Watch {
                watcher,
                session,
                prefix,
                start_revision,
                prev_kv,
                filter_out,
            },
            Outcome::Ok {
                response: Response::Watch(data),
                ..
            },
        ) = (&r.request, &r.outcome)
        {
            out.entry(*watcher).or_default().push(Session {
                session: *session,
                start_revision: *start_revision,
                prev_kv: *prev_kv,
                prefix,
                filter_out: *filter_out,
                data,
            });
        }
    }
    for sessions in out.values_mut() {
        sessions.sort_by_key(|s| s.session);
    }
    out
}

/// A watcher's events in arrival order, with their session and batch.
fn events<'a>(sessions: &[Session<'a>]) -> Vec<(usize, usize, &'a WatchEvent)> {
    let mut out = Vec::new();
    for (si, s) in sessions.iter().enumerate() {
        for (bi, batch) in s.data.batches.iter().enumerate() {
            for e in &batch.events {
                out.push((si, bi, e));
            }
        }
    }
    out
}

/// The cursor before each session and the first cursor, replayed from the
/// records the way a correct client computes it.
fn cursors(sessions: &[Session<'_>]) -> (Vec<Option<i64>>, Option<i64>) {
    let mut cursor: Option<i64> = None;
    let mut first = None;
    let mut before = Vec::with_capacity(sessions.len());
    for (i, s) in sessions.iter().enumerate() {
        if i == 0 && s.start_revision > 0 {
            cursor = Some(s.start_revision);
        }
        before.push(cursor);
        if cursor.is_none()
            && s.start_revision == 0
            && let Some(created) = s.data.created_revision
        {
            cursor = Some(created + 1);
        }
        if first.is_none() {
            first = cursor;
        }
        for batch in &s.data.batches {
            for e in &batch.events {
                cursor = Some(cursor.unwrap_or(0).max(e.mod_revision + 1));
            }
        }
    }
    (before, first)
}

/// Event revisions never decrease within a watcher.
pub fn ordered(records: &[Record]) -> Verdict {
    for (watcher, sessions) in watchers(records) {
        let mut last = i64::MIN;
        for (si, bi, e) in events(&sessions) {
            if e.mod_revision < last {
                return Verdict::Fail(format!(
                    "watcher {watcher} received {} at revision {} after revision {last} (session {}, response {bi})",
                    e.key, e.mod_revision, sessions[si].session
                ));
            }
            last = e.mod_revision;
        }
    }
    Verdict::Pass
}

/// No watcher receives one change twice.
pub fn duplicates(records: &[Record]) -> Verdict {
    for (watcher, sessions) in watchers(records) {
        let mut seen = HashSet::new();
        for (si, _, e) in events(&sessions) {
            if !seen.insert((e.mod_revision, e.key.as_str())) {
                return Verdict::Fail(format!(
                    "watcher {watcher} received {} at revision {} twice (again in session {})",
                    e.key, e.mod_revision, sessions[si].session
                ));
            }
        }
    }
    Verdict::Pass
}

/// The events of one revision arrive in one response of one session.
pub fn atomic(records: &[Record]) -> Verdict {
    for (watcher, sessions) in watchers(records) {
        let mut batch_of: HashMap<i64, (usize, usize)> = HashMap::new();
        for (si, bi, e) in events(&sessions) {
            let at = *batch_of.entry(e.mod_revision).or_insert((si, bi));
            if at != (si, bi) {
                return Verdict::Fail(format!(
                    "watcher {watcher} received revision {} split over two responses (session {} response {} and session {} response {bi})",
                    e.mod_revision, sessions[at.0].session, at.1, sessions[si].session
                ));
            }
        }
    }
    Verdict::Pass
}

/// Resumed sessions ask for the cursor and get nothing before their start.
pub fn resumable(records: &[Record]) -> Verdict {
    for (watcher, sessions) in watchers(records) {
        let (before, _) = cursors(&sessions);
        for (s, cursor) in sessions.iter().zip(&before) {
            if s.session > 0
                && let Some(cursor) = cursor
                && s.start_revision != *cursor
            {
                return Verdict::Fail(format!(
                    "watcher {watcher} resumed in session {} at revision {}, but the last revision it saw was {}",
                    s.session,
                    s.start_revision,
                    cursor - 1
                ));
            }
            let floor = match (s.start_revision, s.data.created_revision) {
                (0, Some(created)) => created + 1,
                (0, None) => continue,
                (start, _) => start,
            };
            for batch in &s.data.batches {
                if let Some(e) = batch.events.iter().find(|e| e.mod_revision < floor) {
                    return Verdict::Fail(format!(
                        "watcher {watcher} session {} (from revision {floor}) received {} at revision {}",
                        s.session, e.key, e.mod_revision
                    ));
                }
            }
        }
    }
    Verdict::Pass
}

/// A change of one key at one revision, as far as the checks compare it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Put or delete.
    pub kind: EventKind,
    /// The value put (empty for a delete).
    pub value: String,
}

/// Known modifications by key, then revision, with where each came from;
/// or the first disagreement between two sources.
pub type Known = HashMap<String, BTreeMap<i64, (Change, String)>>;

/// The acknowledged writes of the history: (key, revision, change, source).
fn acked_writes(records: &[Record]) -> Vec<(String, i64, Change, String)> {
    let mut out = Vec::new();
    for r in records {
        let Outcome::Ok {
            revision, response, ..
        } = &r.outcome
        else {
            continue;
        };
        let put = |key: &String, value: &String| {
            (
                key.clone(),
                *revision,
                Change {
                    kind: EventKind::Put,
                    value: value.clone(),
                },
                format!("client {}'s put of {key}={value}", r.client),
            )
        };
        match (&r.request, response) {
            (Request::Put { key, value }, Response::Put)
            | (Request::PutWithLease { key, value, .. }, Response::Put) => {
                out.push(put(key, value));
            }
            (Request::Delete { key }, Response::Deleted(n)) if *n > 0 => out.push((
                key.clone(),
                *revision,
                Change {
                    kind: EventKind::Delete,
                    value: String::new(),
                },
                format!("client {}'s delete of {key}", r.client),
            )),
            (
                Request::CompareAndSet {
                    key,
                    new,
                    also_key,
                    also_value,
                    ..
                },
                Response::Txn(true),
            ) => {
                out.push(put(key, new));
                out.push(put(also_key, also_value));
            }
            _ => {}
        }
    }
    out
}

/// Builds the known modifications from every watcher's events and the
/// acknowledged writes.
pub fn known_modifications(records: &[Record]) -> Result<Known, String> {
    let mut known: Known = HashMap::new();
    let mut add = |key: &str, revision: i64, change: Change, source: String| {
        let at = known.entry(key.to_owned()).or_default();
        match at.get(&revision) {
            Some((existing, first)) if *existing != change => Err(format!(
                "{key} at revision {revision}: {source} says {change:?}, {first} says {existing:?}"
            )),
            Some(_) => Ok(()),
            None => {
                at.insert(revision, (change, source));
                Ok(())
            }
        }
    };
    for (key, revision, change, source) in acked_writes(records) {
        add(&key, revision, change, source)?;
    }
    for (watcher, sessions) in watchers(records) {
        for (si, _, e) in events(&sessions) {
            let change = Change {
                kind: e.kind,
                value: match e.kind {
                    EventKind::Put => e.value.clone(),
                    EventKind::Delete => String::new(),
                },
            };
            let source = format!("watcher {watcher} session {}", sessions[si].session);
            add(&e.key, e.mod_revision, change, source)?;
        }
    }
    Ok(known)
}

/// Every known modification in a watcher's coverage was received, events
/// agree with the writes, and replays agree with prefix ranges.
pub fn gaps(records: &[Record]) -> Verdict {
    let known = match known_modifications(records) {
        Ok(known) => known,
        Err(why) => return Verdict::Fail(format!("two sources disagree on a change: {why}")),
    };
    let mut written_at: HashMap<&str, Option<i64>> = HashMap::new();
    for r in records {
        let acked = match (&r.request, &r.outcome) {
            (
                _,
                Outcome::Ok {
                    response: Response::Txn(false) | Response::LeaseNotFound,
                    ..
                },
            ) => continue,
            (_, Outcome::Ok { revision, .. }) => Some(*revision),
            (_, Outcome::Unknown { .. }) => None,
        };
        match &r.request {
            Request::Put { value, .. } | Request::PutWithLease { value, .. } => {
                written_at.insert(value, acked);
            }
            Request::CompareAndSet {
                new, also_value, ..
            } => {
                written_at.insert(new, acked);
                written_at.insert(also_value, acked);
            }
            _ => {}
        }
    }
    let watchers = watchers(records);
    for (watcher, sessions) in &watchers {
        let evs = events(sessions);
        for (_, _, e) in &evs {
            if e.kind != EventKind::Put {
                continue;
            }
            match written_at.get(e.value.as_str()) {
                None => {
                    return Verdict::Fail(format!(
                        "watcher {watcher} received {}={} at revision {}, a value no write wrote",
                        e.key, e.value, e.mod_revision
                    ));
                }
                Some(Some(at)) if *at != e.mod_revision => {
                    return Verdict::Fail(format!(
                        "watcher {watcher} received {}={} at revision {}, acknowledged at revision {at}",
                        e.key, e.value, e.mod_revision
                    ));
                }
                Some(_) => {}
            }
        }
        let (_, first) = cursors(sessions);
        let (Some(from), Some(last)) = (first, evs.last().map(|(_, _, e)| e.mod_revision)) else {
            continue;
        };
        let prefix = sessions[0].prefix;
        let filter_out = sessions[0].filter_out;
        let received: HashSet<(i64, &str)> = evs
            .iter()
            .map(|(_, _, e)| (e.mod_revision, e.key.as_str()))
            .collect();
        for (key, changes) in known.iter().filter(|(k, _)| k.starts_with(prefix)) {
            for (revision, (change, source)) in changes.range(from..=last) {
                if Some(change.kind) == filter_out {
                    continue;
                }
                if !received.contains(&(*revision, key.as_str())) {
                    return Verdict::Fail(format!(
                        "watcher {watcher} (covering revisions {from}..={last}) missed {key} at revision {revision} ({change:?}, from {source})"
                    ));
                }
            }
        }
        if from == 1
            && filter_out.is_none()
            && let Err(why) = replay_matches_ranges(records, prefix, &evs, last)
        {
            return Verdict::Fail(format!("watcher {watcher}: {why}"));
        }
    }
    Verdict::Pass
}

/// A prefix range that answered: (header revision, prefix, pairs, client).
type RangeRead<'a> = (i64, &'a str, &'a [(String, String)], u64);

/// Replays a watcher's events (which cover revisions 1..=`last`) and compares
/// the state at every prefix range's header revision with what it returned.
fn replay_matches_ranges(
    records: &[Record],
    watched: &str,
    evs: &[(usize, usize, &WatchEvent)],
    last: i64,
) -> Result<(), String> {
    let mut ranges: Vec<RangeRead<'_>> = records
        .iter()
        .filter_map(|r| match (&r.request, &r.outcome) {
            (
                Request::Range { prefix, .. },
                Outcome::Ok {
                    revision,
                    response: Response::Kvs(kvs),
                    ..
                },
            ) if *revision >= 1 && *revision <= last && prefix.starts_with(watched) => {
                Some((*revision, prefix.as_str(), kvs.as_slice(), r.client))
            }
            _ => None,
        })
        .collect();
    ranges.sort_by_key(|r| r.0);
    let mut state: BTreeMap<&str, &str> = BTreeMap::new();
    let mut next = 0;
    for (revision, prefix, kvs, client) in ranges {
        while next < evs.len() && evs[next].2.mod_revision <= revision {
            let e = evs[next].2;
            match e.kind {
                EventKind::Put => {
                    state.insert(&e.key, &e.value);
                }
                EventKind::Delete => {
                    state.remove(e.key.as_str());
                }
            }
            next += 1;
        }
        let expected: Vec<(&str, &str)> = state
            .range(prefix..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (*k, *v))
            .collect();
        let got: Vec<(&str, &str)> = kvs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        if expected != got {
            let missing: Vec<_> = expected.iter().filter(|kv| !got.contains(kv)).collect();
            let extra: Vec<_> = got.iter().filter(|kv| !expected.contains(kv)).collect();
            return Err(format!(
                "replaying its events to revision {revision} gives a different {prefix}* than client {client}'s range at that revision: events alone have {missing:?}, the range alone has {extra:?}"
            ));
        }
    }
    Ok(())
}

/// A filtered watcher receives no event of the kind it filtered out.
pub fn filters(records: &[Record]) -> Verdict {
    for (watcher, sessions) in watchers(records) {
        for (si, _, e) in events(&sessions) {
            if Some(e.kind) == sessions[si].filter_out {
                return Verdict::Fail(format!(
                    "watcher {watcher} filters out {:?} events but received one for {} at revision {} (session {})",
                    e.kind, e.key, e.mod_revision, sessions[si].session
                ));
            }
        }
    }
    Verdict::Pass
}

/// Previous key-values are those of the key's previous modification.
pub fn prev_kv(records: &[Record]) -> Verdict {
    // On a disagreement the gap check fails; this check then knows nothing.
    let known = known_modifications(records).unwrap_or_default();
    let compactions: Vec<(u64, i64)> = records
        .iter()
        .filter_map(|r| match r.request {
            Request::Compact { revision } => Some((r.invoked_ns, revision)),
            _ => None,
        })
        .collect();
    let compacted_by = |revision: i64, at_ns: u64| {
        compactions
            .iter()
            .any(|&(invoked, to)| invoked <= at_ns && to >= revision)
    };
    for (watcher, sessions) in watchers(records) {
        for s in sessions.iter().filter(|s| s.prev_kv) {
            for batch in &s.data.batches {
                for e in &batch.events {
                    let fail = |why: String| {
                        Verdict::Fail(format!(
                            "watcher {watcher} session {}: {} at revision {} ({:?}): {why}",
                            s.session, e.key, e.mod_revision, e.kind
                        ))
                    };
                    let Some(prev) = &e.prev else {
                        let needed = e.kind == EventKind::Delete || e.version > 1;
                        if needed && !compacted_by(e.mod_revision, batch.received_ns) {
                            return fail("no prev_kv, but the key existed before".to_owned());
                        }
                        continue;
                    };
                    if e.kind == EventKind::Put && e.version == 1 {
                        return fail(format!(
                            "a create carries prev_kv {}={} from revision {}",
                            e.key, prev.value, prev.mod_revision
                        ));
                    }
                    if prev.mod_revision >= e.mod_revision {
                        return fail(format!(
                            "prev_kv from revision {}, not before the event",
                            prev.mod_revision
                        ));
                    }
                    if e.kind == EventKind::Put
                        && (prev.version != e.version - 1
                            || prev.create_revision != e.create_revision)
                    {
                        return fail(format!(
                            "prev_kv is version {} created at {}, the event version {} created at {}",
                            prev.version, prev.create_revision, e.version, e.create_revision
                        ));
                    }
                    let Some(changes) = known.get(&e.key) else {
                        continue;
                    };
                    if let Some((change, source)) = changes.get(&prev.mod_revision)
                        && (change.kind != EventKind::Put || change.value != prev.value)
                    {
                        return fail(format!(
                            "prev_kv says {}={} at revision {}, but {source} says {change:?}",
                            e.key, prev.value, prev.mod_revision
                        ));
                    }
                    if let Some((between, (change, source))) =
                        changes.range(prev.mod_revision + 1..e.mod_revision).next()
                    {
                        return fail(format!(
                            "prev_kv is from revision {}, but {source} shows {change:?} at revision {between}, in between",
                            prev.mod_revision
                        ));
                    }
                }
            }
        }
    }
    Verdict::Pass
}
