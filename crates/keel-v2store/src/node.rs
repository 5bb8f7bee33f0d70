//! The in-memory tree: every node owns its children, so a path walk from the root is the
//! only way in (no parent pointers, no shared ownership).

use std::collections::BTreeMap;

use crate::event::NodeExtern;
use crate::time::{UnixNanos, ttl_seconds};

/// A file's value or a directory's children. Children are kept sorted by name, which is
/// also the order of their full keys, so listings come out sorted whether or not the
/// client asked (etcd's unsorted order is Go's random map order, so sorted is one of the
/// orders it may return).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Content {
    File(String),
    Dir(BTreeMap<String, Node>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Node {
    /// Full cleaned path (`/a/b`); the root is `/`.
    pub path: String,
    pub created_index: u64,
    pub modified_index: u64,
    /// `None` is permanent.
    pub expire_time: Option<UnixNanos>,
    pub content: Content,
}

impl Node {
    pub fn new_file(path: String, value: String, index: u64, expire: Option<UnixNanos>) -> Node {
        Node {
            path,
            created_index: index,
            modified_index: index,
            expire_time: expire,
            content: Content::File(value),
        }
    }

    pub fn new_dir(path: String, index: u64, expire: Option<UnixNanos>) -> Node {
        Node {
            path,
            created_index: index,
            modified_index: index,
            expire_time: expire,
            content: Content::Dir(BTreeMap::new()),
        }
    }

    pub fn is_dir(&self) -> bool {
        matches!(self.content, Content::Dir(_))
    }

    /// A directory's value reads as the empty string (what etcd compares against).
    pub fn value(&self) -> &str {
        match &self.content {
            Content::File(v) => v,
            Content::Dir(_) => "",
        }
    }

    pub fn children(&self) -> Option<&BTreeMap<String, Node>> {
        match &self.content {
            Content::Dir(c) => Some(c),
            Content::File(_) => None,
        }
    }

    pub fn children_mut(&mut self) -> Option<&mut BTreeMap<String, Node>> {
        match &mut self.content {
            Content::Dir(c) => Some(c),
            Content::File(_) => None,
        }
    }

    /// The last path component; `_`-prefixed nodes are hidden from listings.
    pub fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or("")
    }

    pub fn is_hidden(&self) -> bool {
        self.name().starts_with('_')
    }

    pub fn expiration_and_ttl(&self, now: UnixNanos) -> (Option<UnixNanos>, i64) {
        match self.expire_time {
            Some(t) => (Some(t), ttl_seconds(t, now)),
            None => (None, 0),
        }
    }

    /// etcd's `node.Repr`: the node itself; a directory's children only if `recursive`.
    pub fn repr(&self, recursive: bool, now: UnixNanos) -> NodeExtern {
        let (expiration, ttl) = self.expiration_and_ttl(now);
        let mut out = NodeExtern {
            key: self.path.clone(),
            value: None,
            dir: false,
            expiration,
            ttl,
            nodes: Vec::new(),
            modified_index: self.modified_index,
            created_index: self.created_index,
        };
        match &self.content {
            Content::File(v) => out.value = Some(v.clone()),
            Content::Dir(children) => {
                out.dir = true;
                if recursive {
                    out.nodes = list(children, true, now);
                }
            }
        }
        out
    }

    /// etcd's `loadInternalNode` for a get: a directory always lists one level, deeper
    /// levels only when `recursive`.
    pub fn load(&self, recursive: bool, now: UnixNanos) -> NodeExtern {
        let mut out = self.repr(false, now);
        if let Content::Dir(children) = &self.content {
            out.nodes = list(children, recursive, now);
        }
        out
    }

    /// Visits this subtree children-first (the order etcd removes and reports nodes in).
    pub fn visit_post_order(&self, f: &mut impl FnMut(&Node)) {
        if let Content::Dir(children) = &self.content {
            for child in children.values() {
                child.visit_post_order(f);
            }
        }
        f(self);
    }
}

fn list(children: &BTreeMap<String, Node>, recursive: bool, now: UnixNanos) -> Vec<NodeExtern> {
    children
        .values()
        .filter(|c| !c.is_hidden())
        .map(|c| c.repr(recursive, now))
        .collect()
}

/// Go's `path.Clean(path.Join("/", p))`: absolute, no empty, `.` or `..` components, no
/// trailing slash (except the root itself).
pub fn clean_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for comp in p.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let mut out = String::with_capacity(p.len() + 1);
    for c in &parts {
        out.push('/');
        out.push_str(c);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// Joins a cleaned directory path and a child name.
pub fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// Splits a cleaned path into its components (none for the root).
pub fn components(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_path_like_go() {
        for (input, want) in [
            ("", "/"),
            ("/", "/"),
            ("foo", "/foo"),
            ("/foo/", "/foo"),
            ("//a//b/./c/..", "/a/b"),
            ("/../..", "/"),
            ("/1/a/../b", "/1/b"),
        ] {
            assert_eq!(clean_path(input), want, "{input:?}");
        }
    }
}
