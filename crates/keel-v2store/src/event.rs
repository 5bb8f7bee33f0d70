//! Events and external node views, serialised exactly as etcd's `v2store.Event` /
//! `NodeExtern` JSON (field order and `omitempty` rules included).

use serde::{Serialize, Serializer};

use crate::time::{UnixNanos, format_rfc3339_nano};

/// What an event did; the JSON `action` string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// `get`
    Get,
    /// `create`
    Create,
    /// `set`
    Set,
    /// `update`
    Update,
    /// `delete`
    Delete,
    /// `compareAndSwap`
    CompareAndSwap,
    /// `compareAndDelete`
    CompareAndDelete,
    /// `expire`
    Expire,
}

impl Action {
    /// etcd's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Get => "get",
            Action::Create => "create",
            Action::Set => "set",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::CompareAndSwap => "compareAndSwap",
            Action::CompareAndDelete => "compareAndDelete",
            Action::Expire => "expire",
        }
    }

    /// The action with this spelling.
    pub fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "get" => Action::Get,
            "create" => Action::Create,
            "set" => Action::Set,
            "update" => Action::Update,
            "delete" => Action::Delete,
            "compareAndSwap" => Action::CompareAndSwap,
            "compareAndDelete" => Action::CompareAndDelete,
            "expire" => Action::Expire,
            _ => return None,
        })
    }
}

impl Serialize for Action {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}

fn is_false(v: &bool) -> bool {
    !*v
}

fn ser_expiration<S: Serializer>(t: &Option<UnixNanos>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&format_rfc3339_nano(*t)),
        None => s.serialize_none(),
    }
}

/// A node as clients see it (etcd's `NodeExtern`).
///
/// JSON order: key, value, dir, expiration, ttl, nodes, modifiedIndex, createdIndex; empty
/// key, absent value, `false` dir, absent expiration, zero ttl, empty nodes and zero indexes
/// are omitted, as Go's `omitempty` does.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct NodeExtern {
    /// Full path.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub key: String,
    /// A file's value; `None` for directories and for delete events' nodes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Whether the node is a directory.
    #[serde(skip_serializing_if = "is_false")]
    pub dir: bool,
    /// When the node expires (UTC, nanoseconds since the epoch).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_expiration"
    )]
    pub expiration: Option<UnixNanos>,
    /// Seconds left, rounded up, computed at the time the view was taken.
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub ttl: i64,
    /// Children (directories only, when listed); hidden (`_`) children are never listed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeExtern>,
    /// Index of the last change.
    #[serde(rename = "modifiedIndex", skip_serializing_if = "is_zero_u64")]
    pub modified_index: u64,
    /// Index of the creation.
    #[serde(rename = "createdIndex", skip_serializing_if = "is_zero_u64")]
    pub created_index: u64,
}

impl NodeExtern {
    fn trim_prefix(&mut self, prefix: &str) {
        if let Some(rest) = self.key.strip_prefix(prefix) {
            self.key = rest.to_string();
        }
        for n in &mut self.nodes {
            n.trim_prefix(prefix);
        }
    }
}

/// One change (or the answer to a get), as etcd's `v2store.Event`.
///
/// JSON: `{"action":..,"node":{..},"prevNode":{..},"refresh":true}` with `prevNode` and
/// `refresh` omitted when absent / false. `etcd_index` is not part of the JSON: it is the
/// `X-Etcd-Index` header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// What happened.
    pub action: Action,
    /// The node after the change (for deletes: its key and indexes only).
    pub node: NodeExtern,
    /// The node before the change, when there was one.
    #[serde(rename = "prevNode", skip_serializing_if = "Option::is_none")]
    pub prev_node: Option<NodeExtern>,
    /// A TTL refresh: recorded in the history but never sent to watchers.
    #[serde(skip_serializing_if = "is_false")]
    pub refresh: bool,
    /// The store index the answer was produced at (`X-Etcd-Index`).
    #[serde(skip)]
    pub etcd_index: u64,
}

/// What clients are sent: etcd's HTTP layer answers with `Event.Clone()`, which does not
/// copy `Refresh`, so `refresh` never reaches a client (it does reach snapshots).
#[derive(Serialize)]
struct ClientEvent<'a> {
    action: Action,
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<&'a NodeExtern>,
    #[serde(rename = "prevNode", skip_serializing_if = "Option::is_none")]
    prev_node: Option<&'a NodeExtern>,
}

impl Event {
    pub(crate) fn new(action: Action, key: &str, modified_index: u64, created_index: u64) -> Event {
        Event {
            action,
            node: NodeExtern {
                key: key.to_string(),
                modified_index,
                created_index,
                ..NodeExtern::default()
            },
            prev_node: None,
            refresh: false,
            etcd_index: 0,
        }
    }

    /// The index the event happened at (its node's modifiedIndex).
    pub fn index(&self) -> u64 {
        self.node.modified_index
    }

    /// etcd answers 201 Created for creates and for sets of a key that did not exist.
    pub fn is_created(&self) -> bool {
        self.action == Action::Create || (self.action == Action::Set && self.prev_node.is_none())
    }

    /// Strips a store namespace (etcd's `/1`) from every key, as etcd's HTTP layer does.
    pub fn trim_prefix(&mut self, prefix: &str) {
        self.node.trim_prefix(prefix);
        if let Some(p) = &mut self.prev_node {
            p.trim_prefix(prefix);
        }
    }

    /// The JSON body etcd writes to clients (without the trailing newline).
    pub fn to_json(&self) -> String {
        crate::json::to_string(&ClientEvent {
            action: self.action,
            node: Some(&self.node),
            prev_node: self.prev_node.as_ref(),
        })
    }

    /// The body for `noValueOnSuccess=true` on set/create/update/compareAndSwap: the node
    /// and prevNode are left out.
    pub fn to_json_without_nodes(&self) -> String {
        crate::json::to_string(&ClientEvent {
            action: self.action,
            node: None,
            prev_node: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_json_order_and_omissions() {
        let mut e = Event::new(Action::Set, "/1/nosql/foo", 23995, 23995);
        e.node.value = Some("bar".into());
        e.trim_prefix("/1");
        assert_eq!(
            e.to_json(),
            r#"{"action":"set","node":{"key":"/nosql/foo","value":"bar","modifiedIndex":23995,"createdIndex":23995}}"#
        );
        let mut root = Event::new(Action::Get, "/1", 0, 0);
        root.node.dir = true;
        root.trim_prefix("/1");
        assert_eq!(root.to_json(), r#"{"action":"get","node":{"dir":true}}"#);
        let mut r = Event::new(Action::Set, "/k", 3, 3);
        r.refresh = true;
        r.node.value = Some(String::new());
        r.node.expiration = Some(1_000_000_001);
        r.node.ttl = -2;
        assert_eq!(
            r.to_json(),
            r#"{"action":"set","node":{"key":"/k","value":"","expiration":"1970-01-01T00:00:01.000000001Z","ttl":-2,"modifiedIndex":3,"createdIndex":3}}"#
        );
        assert_eq!(
            crate::json::to_string(&r),
            r#"{"action":"set","node":{"key":"/k","value":"","expiration":"1970-01-01T00:00:01.000000001Z","ttl":-2,"modifiedIndex":3,"createdIndex":3},"refresh":true}"#
        );
        assert_eq!(r.to_json_without_nodes(), r#"{"action":"set"}"#);
    }
}
