//! `save` / `recover`: the whole store as etcd 3.4's v2 snapshot JSON, so Keel and etcd
//! can read each other's v2 state.
//!
//! Format (version 2, etcd's `CurrentVersion`), one JSON object, fields in this order:
//! ```text
//! {"Root": NODE,
//!  "WatcherHub": {"EventHistory": {"Queue": {"Events": [EVENT|null; Capacity],
//!                                            "Size": n, "Front": f, "Back": b,
//!                                            "Capacity": c},
//!                                  "StartIndex": s, "LastIndex": l}},
//!  "CurrentIndex": i, "Stats": STATS, "CurrentVersion": 2}
//! NODE  = {"Path": "/a", "CreatedIndex": n, "ModifiedIndex": n,
//!          "ExpireTime": RFC3339 ("0001-01-01T00:00:00Z" = permanent),
//!          "Value": "..." ("" for directories),
//!          "Children": {name: NODE, ...} for directories | null for files}
//! EVENT = the event as clients see it (see [`crate::Event`]).
//! ```
//! The history queue is a ring of `Capacity` slots: the `Size` live events start at slot
//! `Front`. Keel writes it unrotated (`Front` 0). Watchers are not part of a snapshot: on
//! `recover` every registered watcher is dropped (its stream ends) and clients re-watch
//! from their last index, which the restored history can still answer.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde::ser::{SerializeMap, SerializeSeq, SerializeStruct};
use serde::{Deserialize, Serialize, Serializer};

use crate::event::{Action, Event, NodeExtern};
use crate::history::EventHistory;
use crate::node::{Content, Node, join};
use crate::stats::Stats;
use crate::store::{HISTORY_CAPACITY, STORE_VERSION, Store};
use crate::time::{UnixNanos, format_rfc3339_nano, parse_rfc3339};

/// Go's zero `time.Time`: a node without a TTL.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Why a snapshot could not be recovered. The store is left unchanged.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Not JSON of the expected shape.
    #[error("v2 snapshot is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A `CurrentVersion` this code does not read.
    #[error("v2 snapshot version {0} is not supported (expected {STORE_VERSION})")]
    Version(u64),
    /// Well-formed JSON that breaks a store invariant.
    #[error("v2 snapshot is inconsistent: {0}")]
    Invalid(String),
}

struct NodeJson<'a>(&'a Node);

impl Serialize for NodeJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Children<'a>(&'a BTreeMap<String, Node>);
        impl Serialize for Children<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(Some(self.0.len()))?;
                for (name, child) in self.0 {
                    m.serialize_entry(name, &NodeJson(child))?;
                }
                m.end()
            }
        }
        let n = self.0;
        let mut st = s.serialize_struct("node", 6)?;
        st.serialize_field("Path", &n.path)?;
        st.serialize_field("CreatedIndex", &n.created_index)?;
        st.serialize_field("ModifiedIndex", &n.modified_index)?;
        match n.expire_time {
            Some(t) => st.serialize_field("ExpireTime", &format_rfc3339_nano(t))?,
            None => st.serialize_field("ExpireTime", ZERO_TIME)?,
        }
        st.serialize_field("Value", n.value())?;
        match &n.content {
            Content::Dir(c) => st.serialize_field("Children", &Children(c))?,
            Content::File(_) => st.serialize_field("Children", &None::<()>)?,
        }
        st.end()
    }
}

struct QueueJson<'a>(&'a EventHistory);

impl Serialize for QueueJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Slots<'a>(&'a EventHistory);
        impl Serialize for Slots<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let h = self.0;
                let mut seq = s.serialize_seq(Some(h.capacity))?;
                for e in &h.events {
                    seq.serialize_element(&**e)?;
                }
                for _ in h.events.len()..h.capacity {
                    seq.serialize_element(&None::<()>)?;
                }
                seq.end()
            }
        }
        let h = self.0;
        let mut st = s.serialize_struct("eventQueue", 5)?;
        st.serialize_field("Events", &Slots(h))?;
        st.serialize_field("Size", &h.events.len())?;
        st.serialize_field("Front", &0)?;
        st.serialize_field("Back", &(h.events.len() % h.capacity))?;
        st.serialize_field("Capacity", &h.capacity)?;
        st.end()
    }
}

struct StoreJson<'a>(&'a Store);

impl Serialize for StoreJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct History<'a> {
            #[serde(rename = "Queue")]
            queue: QueueJson<'a>,
            #[serde(rename = "StartIndex")]
            start_index: u64,
            #[serde(rename = "LastIndex")]
            last_index: u64,
        }
        #[derive(Serialize)]
        struct Hub<'a> {
            #[serde(rename = "EventHistory")]
            event_history: History<'a>,
        }
        let store = self.0;
        let h = &store.history;
        let mut st = s.serialize_struct("store", 5)?;
        st.serialize_field("Root", &NodeJson(&store.root))?;
        st.serialize_field(
            "WatcherHub",
            &Hub {
                event_history: History {
                    queue: QueueJson(h),
                    start_index: h.start_index,
                    last_index: h.last_index,
                },
            },
        )?;
        st.serialize_field("CurrentIndex", &store.index)?;
        st.serialize_field("Stats", &store.stats())?;
        st.serialize_field("CurrentVersion", &STORE_VERSION)?;
        st.end()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawStore {
    root: RawNode,
    watcher_hub: RawHub,
    current_index: u64,
    #[serde(default)]
    stats: Stats,
    current_version: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawNode {
    path: String,
    created_index: u64,
    modified_index: u64,
    expire_time: String,
    #[serde(default)]
    value: String,
    children: Option<BTreeMap<String, RawNode>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawHub {
    event_history: RawHistory,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawHistory {
    queue: RawQueue,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawQueue {
    events: Vec<Option<RawEvent>>,
    size: usize,
    front: usize,
    capacity: usize,
}

#[derive(Deserialize)]
struct RawEvent {
    action: String,
    node: Option<RawNodeExtern>,
    #[serde(rename = "prevNode")]
    prev_node: Option<RawNodeExtern>,
    #[serde(default)]
    refresh: bool,
}

#[derive(Deserialize)]
struct RawNodeExtern {
    #[serde(default)]
    key: String,
    value: Option<String>,
    #[serde(default)]
    dir: bool,
    expiration: Option<String>,
    #[serde(default)]
    ttl: i64,
    #[serde(default)]
    nodes: Option<Vec<RawNodeExtern>>,
    #[serde(rename = "modifiedIndex", default)]
    modified_index: u64,
    #[serde(rename = "createdIndex", default)]
    created_index: u64,
}

fn invalid(msg: impl Into<String>) -> SnapshotError {
    SnapshotError::Invalid(msg.into())
}

fn parse_expire(s: &str) -> Result<Option<UnixNanos>, SnapshotError> {
    if s == ZERO_TIME {
        return Ok(None);
    }
    parse_rfc3339(s)
        .map(Some)
        .ok_or_else(|| invalid(format!("bad time {s:?}")))
}

fn build_node(
    raw: RawNode,
    path: &str,
    ttl: &mut BTreeSet<(UnixNanos, String)>,
) -> Result<Node, SnapshotError> {
    if raw.path != path {
        return Err(invalid(format!(
            "node {:?} stored under {path:?}",
            raw.path
        )));
    }
    let expire_time = parse_expire(&raw.expire_time)?;
    if let Some(t) = expire_time {
        ttl.insert((t, raw.path.clone()));
    }
    let content = match raw.children {
        None => Content::File(raw.value),
        Some(children) => {
            let mut out = BTreeMap::new();
            for (name, child) in children {
                if name.is_empty() || name.contains('/') {
                    return Err(invalid(format!("bad child name {name:?} in {path}")));
                }
                let child_path = join(path, &name);
                out.insert(name, build_node(child, &child_path, ttl)?);
            }
            Content::Dir(out)
        }
    };
    Ok(Node {
        path: raw.path,
        created_index: raw.created_index,
        modified_index: raw.modified_index,
        expire_time,
        content,
    })
}

fn build_extern(raw: RawNodeExtern) -> Result<NodeExtern, SnapshotError> {
    let expiration = match raw.expiration {
        Some(s) => Some(parse_rfc3339(&s).ok_or_else(|| invalid(format!("bad expiration {s:?}")))?),
        None => None,
    };
    let nodes = raw
        .nodes
        .unwrap_or_default()
        .into_iter()
        .map(build_extern)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(NodeExtern {
        key: raw.key,
        value: raw.value,
        dir: raw.dir,
        expiration,
        ttl: raw.ttl,
        nodes,
        modified_index: raw.modified_index,
        created_index: raw.created_index,
    })
}

fn build_event(raw: RawEvent) -> Result<Event, SnapshotError> {
    let action = Action::parse(&raw.action)
        .ok_or_else(|| invalid(format!("bad action {:?}", raw.action)))?;
    let node = build_extern(
        raw.node
            .ok_or_else(|| invalid("history event without node"))?,
    )?;
    Ok(Event {
        action,
        node,
        prev_node: raw.prev_node.map(build_extern).transpose()?,
        refresh: raw.refresh,
        etcd_index: 0,
    })
}

fn build_history(raw: RawQueue, current_index: u64) -> Result<EventHistory, SnapshotError> {
    if raw.capacity == 0
        || raw.events.len() != raw.capacity
        || raw.size > raw.capacity
        || raw.front >= raw.capacity
    {
        return Err(invalid("history queue geometry"));
    }
    let mut slots: Vec<Option<RawEvent>> = raw.events;
    let mut events = VecDeque::with_capacity(HISTORY_CAPACITY);
    for k in 0..raw.size {
        let slot = (raw.front + k) % raw.capacity;
        let e = slots[slot]
            .take()
            .ok_or_else(|| invalid("empty slot inside the history"))?;
        events.push_back(build_event(e)?);
    }
    let mut h = EventHistory::new(HISTORY_CAPACITY);
    let skip = events.len().saturating_sub(HISTORY_CAPACITY);
    let mut last = 0;
    for e in events.into_iter().skip(skip) {
        let i = e.index();
        if i <= last || i > current_index {
            return Err(invalid(format!("history index {i} out of order")));
        }
        last = i;
        h.add(Arc::new(e));
    }
    Ok(h)
}

impl Store {
    /// The whole store as etcd's v2 snapshot JSON (see [`crate::snapshot`]), written
    /// straight from the live tree without copying it.
    pub fn save(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.save_into(&mut out);
        out
    }

    /// [`Store::save`] appending to a caller's buffer.
    pub fn save_into(&self, out: &mut Vec<u8>) {
        crate::json::write(out, &StoreJson(self));
    }

    /// Replaces the store's contents with a snapshot from [`Store::save`] (or etcd's).
    /// The namespaces given to [`Store::new`] must exist in it. Every watcher is dropped.
    pub fn recover(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        let raw: RawStore = serde_json::from_slice(bytes)?;
        if raw.current_version != STORE_VERSION {
            return Err(SnapshotError::Version(raw.current_version));
        }
        let mut ttl_keys = BTreeSet::new();
        let root = build_node(raw.root, "/", &mut ttl_keys)?;
        if !root.is_dir() {
            return Err(invalid("root is not a directory"));
        }
        for r in &self.readonly {
            let mut n = &root;
            for name in crate::node::components(r) {
                n = n
                    .children()
                    .and_then(|c| c.get(name))
                    .ok_or_else(|| invalid(format!("namespace {r} missing")))?;
            }
            if !n.is_dir() {
                return Err(invalid(format!("namespace {r} is not a directory")));
            }
        }
        let history = build_history(raw.watcher_hub.event_history.queue, raw.current_index)?;
        self.root = root;
        self.ttl_keys = ttl_keys;
        self.history = history;
        self.index = raw.current_index;
        self.get_success
            .store(raw.stats.get_success, Ordering::Relaxed);
        self.get_fail.store(raw.stats.get_fail, Ordering::Relaxed);
        self.stats = raw.stats;
        self.watchers.clear();
        Ok(())
    }
}
