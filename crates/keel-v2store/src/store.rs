//! The store: the tree, its index, TTL bookkeeping, history, watchers and stats, and the
//! operations etcd's v2 applier calls.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{ErrorCode, V2Error};
use crate::event::{Action, Event};
use crate::history::EventHistory;
use crate::node::{Content, Node, clean_path, components, join};
use crate::stats::Stats;
use crate::time::{MIN_EXPIRE_TIME, UnixNanos};
use crate::watch::{Watcher, WatcherHub, WatcherId};

/// Events kept for watchers with a past `waitIndex` (etcd: 1000).
pub const HISTORY_CAPACITY: usize = 1000;

/// The v2 snapshot's `CurrentVersion` (etcd's `defaultVersion`).
pub const STORE_VERSION: u64 = 2;

/// TTL options of a write (etcd's `TTLOptionSet`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TtlOptions {
    /// Absolute expiry chosen by the proposer (`now + ttl`); `None` means permanent.
    pub expire_time: Option<UnixNanos>,
    /// Only move the expiry: keep the value and do not wake watchers.
    pub refresh: bool,
}

impl TtlOptions {
    /// No TTL, no refresh.
    pub const PERMANENT: TtlOptions = TtlOptions {
        expire_time: None,
        refresh: false,
    };

    /// Expires at `t`.
    pub fn expire_at(t: UnixNanos) -> TtlOptions {
        TtlOptions {
            expire_time: Some(t),
            refresh: false,
        }
    }
}

/// etcd's v2 store, deterministic: no clock, no threads, no IO.
///
/// Invariants (checked by [`Store::check_invariants`] in tests):
/// - every write that succeeds increments `index` by exactly one and records exactly one
///   event with that index in the history (refreshes included, though watchers never see
///   them); reads and failures leave `index` alone;
/// - `ttl_keys` holds exactly the `(expire_time, path)` of every node with a TTL;
/// - every node's path is its parent's path joined with its name;
/// - the root and the namespaces given to [`Store::new`] are directories that cannot be
///   written or deleted.
///
/// Paths are cleaned like Go's `path.Clean` (so `/a/../b/` is `/b`) before use, and keys in
/// answers are the cleaned paths (etcd's HTTP layer cleans them before the store sees them).
///
/// The store is `Send + Sync`: a server can apply under a write lock and serve gets (which
/// take `&self`) under a read lock.
///
/// `now` arguments only affect the `ttl` reported in answers; the state depends solely on
/// the sequence of calls and their arguments, so every member applying the same log ends
/// up with the same store.
#[derive(Debug)]
pub struct Store {
    pub(crate) root: Node,
    pub(crate) index: u64,
    pub(crate) ttl_keys: BTreeSet<(UnixNanos, String)>,
    pub(crate) history: EventHistory,
    pub(crate) watchers: WatcherHub,
    pub(crate) stats: Stats,
    /// Gets take `&self` (so a server may serve them under a read lock); their counters
    /// are the only interior mutability.
    pub(crate) get_success: AtomicU64,
    pub(crate) get_fail: AtomicU64,
    pub(crate) readonly: Vec<String>,
}

type OpResult = Result<Arc<Event>, V2Error>;

impl Store {
    /// An empty store whose root holds the given permanent, read-only namespace
    /// directories (etcd's server uses `["/0", "/1"]`: membership and user keys).
    pub fn new(namespaces: &[&str]) -> Store {
        let mut root = Node::new_dir("/".to_string(), 0, None);
        let mut readonly = vec!["/".to_string()];
        for ns in namespaces {
            let path = clean_path(ns);
            let name = {
                let mut comps = components(&path);
                let name = comps
                    .next()
                    .expect("a namespace is not the root")
                    .to_string();
                assert!(
                    comps.next().is_none(),
                    "namespace {ns:?} must be a top-level directory"
                );
                name
            };
            let children = root.children_mut().expect("the root is a directory");
            children.insert(name, Node::new_dir(path.clone(), 0, None));
            readonly.push(path);
        }
        Store {
            root,
            index: 0,
            ttl_keys: BTreeSet::new(),
            history: EventHistory::new(HISTORY_CAPACITY),
            watchers: WatcherHub::default(),
            stats: Stats::default(),
            get_success: AtomicU64::new(0),
            get_fail: AtomicU64::new(0),
            readonly,
        }
    }

    /// The store's index (`X-Etcd-Index`): the index of the last change.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Whether any node has a TTL (a leader only needs to propose SYNCs if so).
    pub fn has_ttl_keys(&self) -> bool {
        !self.ttl_keys.is_empty()
    }

    /// The earliest expiry in the store, if any.
    pub fn next_expiry(&self) -> Option<UnixNanos> {
        self.ttl_keys.first().map(|(t, _)| *t)
    }

    /// Counters for `/v2/stats/store`, with the current watcher count.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats.clone();
        s.get_success = self.get_success.load(Ordering::Relaxed);
        s.get_fail = self.get_fail.load(Ordering::Relaxed);
        s.watchers = self.watchers.count() as u64;
        s
    }

    /// Number of registered watchers.
    pub fn watcher_count(&self) -> usize {
        self.watchers.count()
    }

    fn is_readonly(&self, path: &str) -> bool {
        self.readonly.iter().any(|r| r == path)
    }

    fn read_only_error(&self) -> V2Error {
        V2Error::new(ErrorCode::RootReadOnly, "/", self.index)
    }

    /// Reads a node; directories list their visible children (recursively if asked).
    /// Listings are always sorted by key (see [`crate::node`]), so `sorted` is accepted for
    /// API parity only.
    pub fn get(&self, path: &str, recursive: bool, _sorted: bool, now: UnixNanos) -> OpResult {
        let path = clean_path(path);
        match find(&self.root, &path, self.index) {
            Ok(n) => {
                self.get_success.fetch_add(1, Ordering::Relaxed);
                let mut e = Event::new(Action::Get, &path, n.modified_index, n.created_index);
                e.node = n.load(recursive, now);
                e.etcd_index = self.index;
                Ok(Arc::new(e))
            }
            Err(err) => {
                self.get_fail.fetch_add(1, Ordering::Relaxed);
                Err(err)
            }
        }
    }

    /// Creates or replaces a file, or creates a directory (PUT without conditions).
    /// With `refresh`, the key must exist and keeps its value; only the TTL moves.
    pub fn set(
        &mut self,
        path: &str,
        dir: bool,
        value: &str,
        opts: TtlOptions,
        now: UnixNanos,
    ) -> OpResult {
        let r = self.set_inner(path, dir, value, opts, now);
        count(&r, &mut self.stats.set_success, &mut self.stats.set_fail);
        r
    }

    fn set_inner(
        &mut self,
        path: &str,
        dir: bool,
        value: &str,
        opts: TtlOptions,
        now: UnixNanos,
    ) -> OpResult {
        let path = clean_path(path);
        let (prev, prev_value) = match find(&self.root, &path, self.index) {
            Ok(n) => (Some(n.repr(false, now)), Some(n.value().to_string())),
            Err(e) if e.code == ErrorCode::KeyNotFound => {
                if opts.refresh {
                    return Err(e);
                }
                (None, None)
            }
            Err(e) => return Err(e),
        };
        let value = match (opts.refresh, prev_value) {
            (true, Some(v)) => v,
            _ => value.to_string(),
        };
        let mut e =
            self.internal_create(&path, dir, value, true, opts.expire_time, Action::Set, now)?;
        e.etcd_index = self.index;
        e.prev_node = prev;
        e.refresh = opts.refresh;
        Ok(self.publish(e, &[]))
    }

    /// Creates a node that must not exist (PUT prevExist=false).
    pub fn create(
        &mut self,
        path: &str,
        dir: bool,
        value: &str,
        opts: TtlOptions,
        now: UnixNanos,
    ) -> OpResult {
        self.create_impl(path.to_string(), dir, value, opts, now)
    }

    /// Creates a node under `dir_path` named by the new index, zero-padded to 20 digits
    /// (POST, etcd's in-order keys).
    pub fn create_in_order(
        &mut self,
        dir_path: &str,
        dir: bool,
        value: &str,
        opts: TtlOptions,
        now: UnixNanos,
    ) -> OpResult {
        let name = format!("{}/{:020}", dir_path, self.index + 1);
        self.create_impl(name, dir, value, opts, now)
    }

    fn create_impl(
        &mut self,
        path: String,
        dir: bool,
        value: &str,
        opts: TtlOptions,
        now: UnixNanos,
    ) -> OpResult {
        let r = self
            .internal_create(
                &clean_path(&path),
                dir,
                value.to_string(),
                false,
                opts.expire_time,
                Action::Create,
                now,
            )
            .map(|mut e| {
                e.etcd_index = self.index;
                self.publish(e, &[])
            });
        count(
            &r,
            &mut self.stats.create_success,
            &mut self.stats.create_fail,
        );
        r
    }

    #[allow(clippy::too_many_arguments)]
    fn internal_create(
        &mut self,
        path: &str,
        dir: bool,
        value: String,
        replace: bool,
        expire: Option<UnixNanos>,
        action: Action,
        now: UnixNanos,
    ) -> Result<Event, V2Error> {
        let curr = self.index;
        let next = curr + 1;
        if self.is_readonly(path) {
            return Err(self.read_only_error());
        }
        let expire = expire.filter(|t| *t >= MIN_EXPIRE_TIME);
        let (dir_path, name) = split(path);
        let parent = match ensure_dir(&mut self.root, dir_path, next, curr) {
            Ok(p) => p,
            Err(mut err) => {
                // etcd counts this as a failed set whichever operation it was.
                self.stats.set_fail += 1;
                err.index = curr;
                return Err(err);
            }
        };
        let children = parent
            .children_mut()
            .expect("ensure_dir returns a directory");
        let mut e = Event::new(action, path, next, next);
        if let Some(existing) = children.get(name) {
            if !replace {
                return Err(V2Error::new(ErrorCode::NodeExist, path, curr));
            }
            if existing.is_dir() {
                return Err(V2Error::new(ErrorCode::NotFile, path, curr));
            }
            let old = children.remove(name).expect("the child was just found");
            if let Some(t) = old.expire_time {
                let had = self.ttl_keys.remove(&(t, old.path));
                assert!(had, "a node with a TTL is in ttl_keys");
            }
        }
        let node = if dir {
            e.node.dir = true;
            Node::new_dir(path.to_string(), next, expire)
        } else {
            e.node.value = Some(value.clone());
            Node::new_file(path.to_string(), value, next, expire)
        };
        (e.node.expiration, e.node.ttl) = node.expiration_and_ttl(now);
        children.insert(name.to_string(), node);
        if let Some(t) = expire {
            self.ttl_keys.insert((t, path.to_string()));
        }
        self.index = next;
        Ok(e)
    }

    /// Changes an existing node (PUT prevExist=true): a file's value and/or any node's
    /// TTL. An update without a TTL makes the node permanent.
    pub fn update(
        &mut self,
        path: &str,
        value: &str,
        opts: TtlOptions,
        now: UnixNanos,
    ) -> OpResult {
        let r = self.update_inner(path, value, opts, now);
        count(
            &r,
            &mut self.stats.update_success,
            &mut self.stats.update_fail,
        );
        r
    }

    fn update_inner(
        &mut self,
        path: &str,
        value: &str,
        opts: TtlOptions,
        now: UnixNanos,
    ) -> OpResult {
        let path = clean_path(path);
        if self.is_readonly(&path) {
            return Err(self.read_only_error());
        }
        let curr = self.index;
        let next = curr + 1;
        let n = find_mut(&mut self.root, &path, curr)?;
        if n.is_dir() && !value.is_empty() {
            return Err(V2Error::new(ErrorCode::NotFile, path, curr));
        }
        let mut e = Event::new(Action::Update, &path, next, n.created_index);
        e.etcd_index = next;
        e.prev_node = Some(n.repr(false, now));
        match &mut n.content {
            Content::File(v) => {
                if !opts.refresh {
                    value.clone_into(v);
                }
                n.modified_index = next;
                e.node.value = Some(v.clone());
            }
            // etcd's node.Write refuses directories, so a directory's modifiedIndex stays
            // put even though the event reports the new index.
            Content::Dir(_) => e.node.dir = true,
        }
        update_ttl(&mut self.ttl_keys, n, opts.expire_time);
        (e.node.expiration, e.node.ttl) = n.expiration_and_ttl(now);
        e.refresh = opts.refresh;
        self.index = next;
        Ok(self.publish(e, &[]))
    }

    /// Replaces a file's value if it matches `prev_value` (unless empty) and `prev_index`
    /// (unless 0).
    pub fn compare_and_swap(
        &mut self,
        path: &str,
        prev_value: &str,
        prev_index: u64,
        value: &str,
        opts: TtlOptions,
        now: UnixNanos,
    ) -> OpResult {
        let r = self.cas_inner(path, prev_value, prev_index, value, opts, now);
        count(
            &r,
            &mut self.stats.compare_and_swap_success,
            &mut self.stats.compare_and_swap_fail,
        );
        r
    }

    fn cas_inner(
        &mut self,
        path: &str,
        prev_value: &str,
        prev_index: u64,
        value: &str,
        opts: TtlOptions,
        now: UnixNanos,
    ) -> OpResult {
        let path = clean_path(path);
        if self.is_readonly(&path) {
            return Err(self.read_only_error());
        }
        let curr = self.index;
        let n = find_mut(&mut self.root, &path, curr)?;
        if n.is_dir() {
            return Err(V2Error::new(ErrorCode::NotFile, path, curr));
        }
        compare(n, prev_value, prev_index, curr)?;
        let next = curr + 1;
        let mut e = Event::new(Action::CompareAndSwap, &path, next, n.created_index);
        e.etcd_index = next;
        e.prev_node = Some(n.repr(false, now));
        if let Content::File(v) = &mut n.content
            && !opts.refresh
        {
            value.clone_into(v);
        }
        n.modified_index = next;
        e.node.value = Some(n.value().to_string());
        update_ttl(&mut self.ttl_keys, n, opts.expire_time);
        (e.node.expiration, e.node.ttl) = n.expiration_and_ttl(now);
        e.refresh = opts.refresh;
        self.index = next;
        Ok(self.publish(e, &[]))
    }

    /// Deletes a file, or a directory when `dir` (empty) or `recursive` (with everything
    /// below it).
    pub fn delete(&mut self, path: &str, dir: bool, recursive: bool, now: UnixNanos) -> OpResult {
        let r = self.delete_inner(path, dir || recursive, recursive, now);
        count(
            &r,
            &mut self.stats.delete_success,
            &mut self.stats.delete_fail,
        );
        r
    }

    fn delete_inner(&mut self, path: &str, dir: bool, recursive: bool, now: UnixNanos) -> OpResult {
        let path = clean_path(path);
        if self.is_readonly(&path) {
            return Err(self.read_only_error());
        }
        let curr = self.index;
        let n = find(&self.root, &path, curr)?;
        if let Some(children) = n.children() {
            if !dir {
                return Err(V2Error::new(ErrorCode::NotFile, path, curr));
            }
            if !children.is_empty() && !recursive {
                return Err(V2Error::new(ErrorCode::DirNotEmpty, path, curr));
            }
        }
        let next = curr + 1;
        let mut e = Event::new(Action::Delete, &path, next, n.created_index);
        e.etcd_index = next;
        e.prev_node = Some(n.repr(false, now));
        e.node.dir = n.is_dir();
        let removed = self.remove_subtree(&path);
        self.index = next;
        Ok(self.publish(e, &removed))
    }

    /// Deletes a file if it matches `prev_value` (unless empty) and `prev_index` (unless 0).
    pub fn compare_and_delete(
        &mut self,
        path: &str,
        prev_value: &str,
        prev_index: u64,
        now: UnixNanos,
    ) -> OpResult {
        let r = self.cad_inner(path, prev_value, prev_index, now);
        count(
            &r,
            &mut self.stats.compare_and_delete_success,
            &mut self.stats.compare_and_delete_fail,
        );
        r
    }

    fn cad_inner(
        &mut self,
        path: &str,
        prev_value: &str,
        prev_index: u64,
        now: UnixNanos,
    ) -> OpResult {
        let path = clean_path(path);
        let curr = self.index;
        let n = find(&self.root, &path, curr)?;
        if n.is_dir() {
            return Err(V2Error::new(ErrorCode::NotFile, path, curr));
        }
        compare(n, prev_value, prev_index, curr)?;
        let next = curr + 1;
        let mut e = Event::new(Action::CompareAndDelete, &path, next, n.created_index);
        e.etcd_index = next;
        e.prev_node = Some(n.repr(false, now));
        let removed = self.remove_subtree(&path);
        self.index = next;
        Ok(self.publish(e, &removed))
    }

    /// Removes every node whose expiry is at or before `cutoff`, one `expire` event each
    /// (a SYNC carrying the leader's time). Returns the events in index order.
    pub fn delete_expired_keys(&mut self, cutoff: UnixNanos) -> Vec<Arc<Event>> {
        let mut out = Vec::new();
        while let Some((t, path)) = self.ttl_keys.first().cloned() {
            if t > cutoff {
                break;
            }
            let n = find(&self.root, &path, self.index)
                .expect("every path in ttl_keys names a live node");
            let next = self.index + 1;
            let mut e = Event::new(Action::Expire, &path, next, n.created_index);
            e.etcd_index = next;
            e.prev_node = Some(n.repr(false, cutoff));
            e.node.dir = n.is_dir();
            let removed = self.remove_subtree(&path);
            self.index = next;
            self.stats.expire_count += 1;
            out.push(self.publish(e, &removed));
        }
        out
    }

    /// Watches `key` (and below it if `recursive`) for events at or after `since_index`
    /// (0: the next one). An event already in the history answers at once; otherwise the
    /// watcher is registered. Error 401 if `since_index` is older than the history.
    pub fn watch(
        &mut self,
        key: &str,
        recursive: bool,
        stream: bool,
        since_index: u64,
    ) -> Result<Watcher, V2Error> {
        let key = clean_path(key);
        let since = if since_index == 0 {
            self.index + 1
        } else {
            since_index
        };
        match self.history.scan(&key, recursive, since) {
            Err(mut err) => {
                err.index = self.index;
                Err(err)
            }
            Ok(Some(e)) => {
                let mut e = Event::clone(&e);
                e.etcd_index = self.index;
                Ok(self.watchers.answered(Arc::new(e), self.index))
            }
            Ok(None) => Ok(self
                .watchers
                .register(key, recursive, stream, since, self.index)),
        }
    }

    /// Unregisters a watcher (the client went away). Returns whether it was registered.
    pub fn remove_watcher(&mut self, id: WatcherId) -> bool {
        self.watchers.remove(id)
    }

    /// Detaches the node at `path` (which exists and is not the root), drops its TTL
    /// entries, and returns the removed paths children-first.
    fn remove_subtree(&mut self, path: &str) -> Vec<String> {
        let (dir_path, name) = split(path);
        let parent = find_mut(&mut self.root, dir_path, self.index)
            .expect("the parent of a live node exists");
        let node = parent
            .children_mut()
            .expect("the parent of a node is a directory")
            .remove(name)
            .expect("the node to remove exists");
        let mut removed = Vec::new();
        let ttl_keys = &mut self.ttl_keys;
        node.visit_post_order(&mut |n| {
            if let Some(t) = n.expire_time {
                let had = ttl_keys.remove(&(t, n.path.clone()));
                assert!(had, "a node with a TTL is in ttl_keys");
            }
            removed.push(n.path.clone());
        });
        removed
    }

    /// Records the event and wakes watchers: first those of removed paths (etcd's delete
    /// callback), then every ancestor's. Refreshes only go into the history.
    fn publish(&mut self, e: Event, removed: &[String]) -> Arc<Event> {
        assert_eq!(
            e.index(),
            self.index,
            "an event carries the index it was applied at"
        );
        let e = Arc::new(e);
        if !e.refresh {
            for p in removed {
                self.watchers.notify_path(&e, p, true);
            }
        }
        self.history.add(Arc::clone(&e));
        if !e.refresh {
            self.watchers.notify(&e);
        }
        e
    }

    /// Panics if an invariant documented on [`Store`] does not hold. O(size of the store).
    pub fn check_invariants(&self) {
        let mut ttl = BTreeSet::new();
        check_node(&self.root, "/", &mut ttl);
        assert_eq!(ttl, self.ttl_keys, "ttl_keys matches the nodes with a TTL");
        for r in &self.readonly {
            let n = find(&self.root, r, self.index).expect("read-only nodes exist");
            assert!(n.is_dir(), "read-only node {r} is a directory");
        }
        assert!(
            self.history.last_index <= self.index,
            "history is not ahead of the store"
        );
    }
}

fn check_node(n: &Node, path: &str, ttl: &mut BTreeSet<(UnixNanos, String)>) {
    assert_eq!(n.path, path, "node path matches its position");
    assert!(
        n.created_index <= n.modified_index || n.is_dir(),
        "file modified after creation"
    );
    if let Some(t) = n.expire_time {
        ttl.insert((t, n.path.clone()));
    }
    if let Some(children) = n.children() {
        for (name, c) in children {
            assert!(
                !name.is_empty() && !name.contains('/'),
                "child name {name:?} is one component"
            );
            check_node(c, &join(path, name), ttl);
        }
    }
}

fn count<T>(r: &Result<T, V2Error>, ok: &mut u64, fail: &mut u64) {
    if r.is_ok() {
        *ok += 1;
    } else {
        *fail += 1;
    }
}

/// Splits a cleaned, non-root path into its parent directory and last component.
fn split(path: &str) -> (&str, &str) {
    let cut = path.rfind('/').expect("a cleaned path starts with '/'");
    let dir = if cut == 0 { "/" } else { &path[..cut] };
    (dir, &path[cut + 1..])
}

/// etcd's `internalGet` walk: 104 at the first file on the way, 100 at the first missing
/// component.
fn find<'a>(root: &'a Node, path: &str, index: u64) -> Result<&'a Node, V2Error> {
    let mut curr = root;
    for name in components(path) {
        let Some(children) = curr.children() else {
            return Err(V2Error::new(ErrorCode::NotDir, curr.path.clone(), index));
        };
        match children.get(name) {
            Some(c) => curr = c,
            None => {
                return Err(V2Error::new(
                    ErrorCode::KeyNotFound,
                    join(&curr.path, name),
                    index,
                ));
            }
        }
    }
    Ok(curr)
}

fn find_mut<'a>(root: &'a mut Node, path: &str, index: u64) -> Result<&'a mut Node, V2Error> {
    let mut curr = root;
    for name in components(path) {
        let parent_path = curr.path.clone();
        let Some(children) = curr.children_mut() else {
            return Err(V2Error::new(ErrorCode::NotDir, parent_path, index));
        };
        match children.get_mut(name) {
            Some(c) => curr = c,
            None => {
                return Err(V2Error::new(
                    ErrorCode::KeyNotFound,
                    join(&parent_path, name),
                    index,
                ));
            }
        }
    }
    Ok(curr)
}

/// etcd's `checkDir` walk: missing directories are created with index `next`; a file on
/// the way is error 104.
fn ensure_dir<'a>(
    root: &'a mut Node,
    path: &str,
    next: u64,
    index: u64,
) -> Result<&'a mut Node, V2Error> {
    let mut curr = root;
    for name in components(path) {
        let parent_path = curr.path.clone();
        let children = curr
            .children_mut()
            .expect("the walk only descends into directories");
        let child = children
            .entry(name.to_string())
            .or_insert_with(|| Node::new_dir(join(&parent_path, name), next, None));
        if !child.is_dir() {
            return Err(V2Error::new(ErrorCode::NotDir, child.path.clone(), index));
        }
        curr = child;
    }
    Ok(curr)
}

/// etcd's `node.Compare` and the cause text of its 101 error.
fn compare(n: &Node, prev_value: &str, prev_index: u64, index: u64) -> Result<(), V2Error> {
    let index_ok = prev_index == 0 || n.modified_index == prev_index;
    let value_ok = prev_value.is_empty() || n.value() == prev_value;
    let cause = match (value_ok, index_ok) {
        (true, true) => return Ok(()),
        (false, true) => format!("[{} != {}]", prev_value, n.value()),
        (true, false) => format!("[{} != {}]", prev_index, n.modified_index),
        (false, false) => format!(
            "[{} != {}] [{} != {}]",
            prev_value,
            n.value(),
            prev_index,
            n.modified_index
        ),
    };
    Err(V2Error::new(ErrorCode::TestFailed, cause, index))
}

/// etcd's `node.UpdateTTL`: `None` makes the node permanent.
fn update_ttl(
    ttl_keys: &mut BTreeSet<(UnixNanos, String)>,
    n: &mut Node,
    expire: Option<UnixNanos>,
) {
    if let Some(old) = n.expire_time {
        let had = ttl_keys.remove(&(old, n.path.clone()));
        assert!(had, "a node with a TTL is in ttl_keys");
    }
    n.expire_time = expire;
    if let Some(t) = expire {
        ttl_keys.insert((t, n.path.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn store_is_send_and_sync() {
        assert_send_sync::<Store>();
    }

    #[test]
    fn namespaces_and_root_are_read_only() {
        let mut s = Store::new(&["/0", "/1"]);
        for p in ["/", "/0", "/1", "/1/../0/"] {
            assert_eq!(
                s.set(p, false, "v", TtlOptions::PERMANENT, 0)
                    .map_err(|e| e.code),
                Err(ErrorCode::RootReadOnly)
            );
            assert_eq!(
                s.delete(p, true, true, 0).map_err(|e| e.code),
                Err(ErrorCode::RootReadOnly)
            );
            assert_eq!(
                s.update(p, "", TtlOptions::PERMANENT, 0)
                    .map_err(|e| e.code),
                Err(ErrorCode::RootReadOnly)
            );
        }
        assert_eq!(s.index(), 0);
        s.check_invariants();
    }
}
