//! Watchers: registered per exact path, woken by events on that path (and, when
//! recursive, below it), each through its own bounded channel.
//!
//! Delivery is a `tokio::sync::mpsc` channel of capacity [`WATCHER_CHANNEL_CAPACITY`]
//! (etcd's 100). The store only ever `try_send`s, so applying a log entry never waits on
//! a client; a watcher whose channel is full is removed (its sender dropped, so the
//! receiver sees the end of the stream once drained), exactly where etcd drops a slow
//! watcher. A receiver that was dropped is removed the same way on the next event for it.
//! A channel was chosen over a poll API because the HTTP layer needs to await a long poll
//! or stream without re-locking the store on every wake-up.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::event::Event;

/// Buffered events per watcher before it counts as slow and is removed (etcd: 100).
pub const WATCHER_CHANNEL_CAPACITY: usize = 100;

/// Identifies a registered watcher, for [`crate::Store::remove_watcher`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WatcherId(pub u64);

/// The client's side of a watch.
#[derive(Debug)]
pub struct Watcher {
    /// Pass to [`crate::Store::remove_watcher`] when the client goes away. A watcher that
    /// was answered from the history is never registered; removing it is a no-op.
    pub id: WatcherId,
    /// The store index when the watch was made (etcd's `X-Etcd-Index` for a watch).
    pub start_index: u64,
    /// Events in index order. `None` from `recv` means the store dropped the watcher: a
    /// one-shot watcher after its event, a slow watcher, or every watcher on `recover`.
    pub events: mpsc::Receiver<Arc<Event>>,
}

#[derive(Debug)]
struct Entry {
    id: WatcherId,
    sender: mpsc::Sender<Arc<Event>>,
    recursive: bool,
    stream: bool,
    since_index: u64,
    /// Index of the last event sent; a deleted key is reported once even though etcd
    /// reaches its watchers both through the delete callback and the parent walk.
    last_sent: u64,
}

#[derive(Debug, Default)]
pub(crate) struct WatcherHub {
    by_path: HashMap<String, Vec<Entry>>,
    paths: HashMap<WatcherId, String>,
    next_id: u64,
}

impl WatcherHub {
    pub fn count(&self) -> usize {
        self.paths.len()
    }

    fn allocate_id(&mut self) -> WatcherId {
        self.next_id += 1;
        WatcherId(self.next_id)
    }

    /// A watcher already answered from the history: its one event is queued and the
    /// sender dropped, so the stream ends after it.
    pub fn answered(&mut self, event: Arc<Event>, start_index: u64) -> Watcher {
        let (tx, rx) = mpsc::channel(1);
        tx.try_send(event)
            .expect("a fresh channel of capacity 1 has room for one event");
        Watcher {
            id: self.allocate_id(),
            start_index,
            events: rx,
        }
    }

    pub fn register(
        &mut self,
        path: String,
        recursive: bool,
        stream: bool,
        since_index: u64,
        start_index: u64,
    ) -> Watcher {
        let (tx, rx) = mpsc::channel(WATCHER_CHANNEL_CAPACITY);
        let id = self.allocate_id();
        self.by_path.entry(path.clone()).or_default().push(Entry {
            id,
            sender: tx,
            recursive,
            stream,
            since_index,
            last_sent: 0,
        });
        self.paths.insert(id, path);
        Watcher {
            id,
            start_index,
            events: rx,
        }
    }

    pub fn remove(&mut self, id: WatcherId) -> bool {
        let Some(path) = self.paths.remove(&id) else {
            return false;
        };
        let list = self
            .by_path
            .get_mut(&path)
            .expect("every registered watcher's path has a list");
        list.retain(|e| e.id != id);
        if list.is_empty() {
            self.by_path.remove(&path);
        }
        true
    }

    /// Drops every watcher (their receivers see the end of the stream).
    pub fn clear(&mut self) {
        self.by_path.clear();
        self.paths.clear();
    }

    /// etcd's `notify`: every watcher on each ancestor of the event's key, and the key.
    pub fn notify(&mut self, e: &Arc<Event>) {
        if self.by_path.is_empty() {
            return;
        }
        let key = e.node.key.as_str();
        self.notify_path(e, "/", false);
        let mut end = 0;
        while let Some(off) = key[end + 1..].find('/') {
            end += 1 + off;
            self.notify_path(e, &key[..end], false);
        }
        if key != "/" {
            self.notify_path(e, key, false);
        }
    }

    /// etcd's `notifyWatchers` for one watched path. `deleted` marks a path removed by the
    /// event (reported even to non-recursive watchers of a deleted directory's children).
    pub fn notify_path(&mut self, e: &Arc<Event>, path: &str, deleted: bool) {
        let Some(list) = self.by_path.get_mut(path) else {
            return;
        };
        let original = e.node.key == path;
        if !original && is_hidden(path, &e.node.key) {
            return;
        }
        let index = e.index();
        let mut removed = Vec::new();
        list.retain_mut(|w| {
            if !(w.recursive || original || deleted) || index < w.since_index {
                return true;
            }
            if w.last_sent >= index {
                return true;
            }
            w.last_sent = index;
            if w.sender.try_send(Arc::clone(e)).is_err() {
                removed.push(w.id);
                return false;
            }
            if w.stream {
                true
            } else {
                removed.push(w.id);
                false
            }
        });
        if list.is_empty() {
            self.by_path.remove(path);
        }
        for id in removed {
            self.paths.remove(&id);
        }
    }
}

/// etcd's `isHidden`: whether the part of `key` below `watch_path` has a `_` component.
fn is_hidden(watch_path: &str, key: &str) -> bool {
    match key.get(watch_path.len()..) {
        Some(rest) => crate::node::clean_path(rest).contains("/_"),
        None => false,
    }
}
