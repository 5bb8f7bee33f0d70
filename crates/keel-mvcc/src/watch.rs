//! Watcher bookkeeping of the watchable store (etcd's `watchableStore`).
//!
//! Every watcher is in exactly one group:
//! - **synced**: it has seen every revision up to the current one; each write is
//!   offered to it as it happens ([`WatcherGroups::notify`]).
//! - **unsynced**: it is behind (started in the past, or back from being a victim) and
//!   is caught up from the backend by `Store::sync_watchers`, a bounded chunk at a time.
//! - **victims**: its channel was full; it holds the one response that did not fit and
//!   gets nothing else until that response is delivered.
//!
//! `min_rev` is the next revision a watcher must see. It only grows, and a response is
//! only built from revisions `>= min_rev` after which `min_rev` moves past them, so a
//! watcher never sees a gap or a duplicate, and all events of one revision travel in
//! one response.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use tokio::sync::mpsc::Sender;
use tokio::sync::mpsc::error::TrySendError;

use crate::kv::KeyValue;

/// Identifies a watcher inside one store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WatchId(pub u64);

/// Kind of an [`Event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// A put.
    Put,
    /// A deletion; the event's kv has only `key` and `mod_revision`.
    Delete,
}

/// One change seen by a watcher (etcd `mvccpb.Event`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Put or delete.
    pub kind: EventType,
    /// The key-value after the change.
    pub kv: KeyValue,
    /// The key-value before the change, when the watcher asked for it and it is not
    /// compacted away.
    pub prev_kv: Option<KeyValue>,
}

/// What to watch (etcd `WatchCreateRequest`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchRequest {
    /// First key (or the only key).
    pub key: Vec<u8>,
    /// End of the interval, as in [`crate::RangeRequest`].
    pub range_end: Vec<u8>,
    /// First revision to report; 0 for "from the next write".
    pub start_revision: i64,
    /// Drop put events.
    pub filter_put: bool,
    /// Drop delete events.
    pub filter_delete: bool,
    /// Attach the previous key-value to events.
    pub prev_kv: bool,
}

/// A batch of events for one watcher, or the notice that it fell behind compaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchResponse {
    /// The watcher.
    pub watch_id: WatchId,
    /// Highest revision covered by this response.
    pub revision: i64,
    /// Events in revision order; empty on a compaction notice. Shared: every watcher
    /// that takes all of a write's events without `prev_kv` gets the same allocation,
    /// so a put watched 10,000 times is not copied 10,000 times.
    pub events: Arc<[Event]>,
    /// Non-zero: the watcher asked for revisions below this compaction point and is
    /// cancelled.
    pub compact_revision: i64,
}

/// Channel capacity (in responses) suggested for watch streams.
pub const DEFAULT_WATCH_CHANNEL_CAPACITY: usize = 1024;

pub(crate) struct Watcher {
    pub(crate) request: WatchRequest,
    pub(crate) min_rev: i64,
    pub(crate) sender: Sender<WatchResponse>,
    /// The response that did not fit into the channel (victims only).
    pub(crate) pending: Option<WatchResponse>,
}

impl Watcher {
    pub(crate) fn matches(&self, key: &[u8]) -> bool {
        let (start, end) = (&self.request.key[..], &self.request.range_end[..]);
        if end.is_empty() {
            key == start
        } else if end == [0] {
            key >= start
        } else {
            key >= start && key < end
        }
    }

    pub(crate) fn wants(&self, event: &Event) -> bool {
        let filtered = match event.kind {
            EventType::Put => self.request.filter_put,
            EventType::Delete => self.request.filter_delete,
        };
        !filtered && self.matches(&event.kv.key)
    }
}

/// Outcome of offering a response to a watcher's channel.
pub(crate) enum Delivery {
    Sent,
    Full(WatchResponse),
    Closed,
}

pub(crate) fn deliver(sender: &Sender<WatchResponse>, resp: WatchResponse) -> Delivery {
    match sender.try_send(resp) {
        Ok(()) => Delivery::Sent,
        Err(TrySendError::Full(resp)) => Delivery::Full(resp),
        Err(TrySendError::Closed(_)) => Delivery::Closed,
    }
}

/// The synced watchers, indexed so that a write only looks at the watchers of its keys
/// and at the range watchers (etcd keeps single keys in a map and ranges in an
/// interval tree; ranges here are a plain set, scanned on every write).
#[derive(Default)]
pub(crate) struct SyncedGroup {
    watchers: BTreeMap<WatchId, Watcher>,
    by_key: HashMap<Vec<u8>, BTreeSet<WatchId>>,
    ranges: BTreeSet<WatchId>,
}

impl SyncedGroup {
    pub(crate) fn insert(&mut self, id: WatchId, w: Watcher) {
        if w.request.range_end.is_empty() {
            self.by_key
                .entry(w.request.key.clone())
                .or_default()
                .insert(id);
        } else {
            self.ranges.insert(id);
        }
        let old = self.watchers.insert(id, w);
        assert!(old.is_none(), "watcher {id:?} inserted twice");
    }

    pub(crate) fn remove(&mut self, id: &WatchId) -> Option<Watcher> {
        let w = self.watchers.remove(id)?;
        if w.request.range_end.is_empty() {
            let ids = self
                .by_key
                .get_mut(&w.request.key)
                .expect("a single-key watcher is indexed by its key");
            ids.remove(id);
            if ids.is_empty() {
                self.by_key.remove(&w.request.key);
            }
        } else {
            self.ranges.remove(id);
        }
        Some(w)
    }

    pub(crate) fn len(&self) -> usize {
        self.watchers.len()
    }

    pub(crate) fn contains(&self, id: &WatchId) -> bool {
        self.watchers.contains_key(id)
    }

    pub(crate) fn take_all(&mut self) -> BTreeMap<WatchId, Watcher> {
        self.by_key.clear();
        self.ranges.clear();
        std::mem::take(&mut self.watchers)
    }

    /// Watchers that may want one of `events`.
    fn candidates(&self, events: &[Event]) -> BTreeSet<WatchId> {
        let mut ids = self.ranges.clone();
        for e in events {
            if let Some(key_ids) = self.by_key.get(&e.kv.key) {
                ids.extend(key_ids);
            }
        }
        ids
    }
}

/// The three watcher groups.
#[derive(Default)]
pub(crate) struct WatcherGroups {
    pub(crate) synced: SyncedGroup,
    pub(crate) unsynced: BTreeMap<WatchId, Watcher>,
    pub(crate) victims: BTreeMap<WatchId, Watcher>,
    next_id: u64,
    /// Where the next unsynced batch starts, so that batches take turns.
    unsynced_cursor: u64,
}

impl WatcherGroups {
    /// Up to `max` unsynced watcher ids, starting after the previous batch and wrapping
    /// around, so no watcher waits for more than one round of batches.
    pub(crate) fn next_unsynced_batch(&mut self, max: usize) -> Vec<WatchId> {
        let from = WatchId(self.unsynced_cursor);
        let ids: Vec<WatchId> = self
            .unsynced
            .range(from..)
            .chain(self.unsynced.range(..from))
            .map(|(id, _)| *id)
            .take(max)
            .collect();
        if let Some(last) = ids.last() {
            self.unsynced_cursor = last.0 + 1;
        }
        ids
    }

    pub(crate) fn next_id(&mut self) -> WatchId {
        let id = WatchId(self.next_id);
        self.next_id += 1;
        id
    }

    pub(crate) fn cancel(&mut self, id: WatchId) -> bool {
        self.synced.remove(&id).is_some()
            || self.unsynced.remove(&id).is_some()
            || self.victims.remove(&id).is_some()
    }

    pub(crate) fn len(&self) -> usize {
        self.synced.len() + self.unsynced.len() + self.victims.len()
    }

    /// Offers the events of revision `rev` (all of them) to the synced watchers;
    /// `prev` looks up the previous key-value for watchers that want it.
    pub(crate) fn notify(
        &mut self,
        rev: i64,
        events: &[Event],
        mut prev: impl FnMut(&KeyValue) -> Option<KeyValue>,
    ) {
        let mut moved = Vec::new();
        let mut shared: Option<Arc<[Event]>> = None;
        for id in self.synced.candidates(events) {
            let w = self
                .synced
                .watchers
                .get_mut(&id)
                .expect("candidates are synced watchers");
            if w.min_rev > rev {
                continue;
            }
            let mine: Arc<[Event]> = if !w.request.prev_kv && events.iter().all(|e| w.wants(e)) {
                Arc::clone(shared.get_or_insert_with(|| Arc::from(events)))
            } else {
                events
                    .iter()
                    .filter(|e| w.wants(e))
                    .map(|e| {
                        let mut e = e.clone();
                        if w.request.prev_kv {
                            e.prev_kv = prev(&e.kv);
                        }
                        e
                    })
                    .collect()
            };
            w.min_rev = rev + 1;
            if mine.is_empty() {
                continue;
            }
            let resp = WatchResponse {
                watch_id: id,
                revision: rev,
                events: mine,
                compact_revision: 0,
            };
            match deliver(&w.sender, resp) {
                Delivery::Sent => {}
                Delivery::Full(resp) => moved.push((id, Some(resp))),
                Delivery::Closed => moved.push((id, None)),
            }
        }
        for (id, pending) in moved {
            let mut w = self.synced.remove(&id).expect("moved watcher is synced");
            if pending.is_some() {
                w.pending = pending;
                self.victims.insert(id, w);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watcher() -> Watcher {
        let (sender, _rx) = tokio::sync::mpsc::channel(1);
        Watcher {
            request: WatchRequest::default(),
            min_rev: 1,
            sender,
            pending: None,
        }
    }

    #[test]
    fn unsynced_batches_take_turns() {
        let mut groups = WatcherGroups::default();
        for _ in 0..5 {
            let id = groups.next_id();
            groups.unsynced.insert(id, watcher());
        }
        let ids = |v: Vec<WatchId>| v.into_iter().map(|id| id.0).collect::<Vec<_>>();
        assert_eq!(ids(groups.next_unsynced_batch(2)), [0, 1]);
        assert_eq!(ids(groups.next_unsynced_batch(2)), [2, 3]);
        assert_eq!(ids(groups.next_unsynced_batch(2)), [4, 0]);
        groups.unsynced.remove(&WatchId(1));
        assert_eq!(ids(groups.next_unsynced_batch(9)), [2, 3, 4, 0]);
    }
}
