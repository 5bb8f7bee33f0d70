//! The event history: the last `capacity` events (etcd keeps 1000), from which watchers
//! with a `waitIndex` in the past are answered.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::error::{ErrorCode, V2Error};
use crate::event::{Action, Event};

#[derive(Debug, Clone)]
pub(crate) struct EventHistory {
    pub events: VecDeque<Arc<Event>>,
    pub capacity: usize,
    /// Index of the oldest kept event (0 while empty, as etcd).
    pub start_index: u64,
    /// Index of the newest kept event (0 while empty).
    pub last_index: u64,
}

impl EventHistory {
    pub fn new(capacity: usize) -> EventHistory {
        assert!(capacity > 0, "event history capacity must be positive");
        EventHistory {
            events: VecDeque::with_capacity(capacity),
            capacity,
            start_index: 0,
            last_index: 0,
        }
    }

    pub fn add(&mut self, e: Arc<Event>) {
        assert!(
            self.events
                .back()
                .is_none_or(|last| last.index() < e.index()),
            "history events must have increasing indexes ({} after {})",
            e.index(),
            self.last_index
        );
        if self.events.len() == self.capacity {
            self.events.pop_front();
        }
        self.last_index = e.index();
        self.events.push_back(e);
        self.start_index = self.events.front().map_or(0, |f| f.index());
    }

    /// The first non-refresh event at or after `index` that a watcher on `key` would see.
    /// `Ok(None)` when there is none yet (the watcher waits); error 401 when `index` is older
    /// than the history (its `index` field is filled by the caller).
    pub fn scan(
        &self,
        key: &str,
        recursive: bool,
        index: u64,
    ) -> Result<Option<Arc<Event>>, V2Error> {
        if index < self.start_index {
            return Err(V2Error::new(
                ErrorCode::EventIndexCleared,
                format!(
                    "the requested history has been cleared [{}/{}]",
                    self.start_index, index
                ),
                0,
            ));
        }
        if index > self.last_index {
            return Ok(None);
        }
        let prefix = if key.ends_with('/') {
            key.to_string()
        } else {
            format!("{key}/")
        };
        let from = self.events.partition_point(|e| e.index() < index);
        for e in self.events.range(from..) {
            if e.refresh {
                continue;
            }
            let mut hit = e.node.key == key || (recursive && e.node.key.starts_with(&prefix));
            if matches!(e.action, Action::Delete | Action::Expire)
                && let Some(prev) = &e.prev_node
                && prev.dir
            {
                hit = hit || key.starts_with(&prev.key);
            }
            if hit {
                return Ok(Some(Arc::clone(e)));
            }
        }
        Ok(None)
    }
}
