//! What the clients did: one [`Record`] per operation, with its invoke and
//! return time, written as JSON lines (one record per line, in invoke order)
//! so that a failing run's history can be kept, read and checked again.
//!
//! Times are nanoseconds since the run started, from one monotonic clock
//! shared by every client, so that real-time order between operations of
//! different clients is meaningful.

use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::RobustnessError;

/// Operations after which clients stop issuing new ones, so the history (and
/// the checker's work) stays bounded: by this plus one in-flight operation per
/// client plus the final reads. An operation that was sent is always recorded,
/// since dropping a write would make reads of its value inexplicable.
pub const MAX_RECORDS: usize = 200_000;

/// A client request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// `Range` of one key.
    Get {
        /// The key.
        key: String,
        /// Served locally by the member (no ReadIndex).
        serializable: bool,
    },
    /// `Range` of every key under a prefix.
    Range {
        /// The prefix.
        prefix: String,
        /// Served locally by the member.
        serializable: bool,
    },
    /// `Put`.
    Put {
        /// The key.
        key: String,
        /// A value no other write in the run uses.
        value: String,
    },
    /// `DeleteRange` of one key.
    Delete {
        /// The key.
        key: String,
    },
    /// `Txn`: if `key` holds `expected` (absent when `None`), put `key = new`
    /// and `also_key = also_value`; otherwise nothing.
    CompareAndSet {
        /// The compared and written key.
        key: String,
        /// The value compared against.
        expected: Option<String>,
        /// Unique value written to `key` on success.
        new: String,
        /// A second key written in the same transaction on success.
        also_key: String,
        /// Unique value written to `also_key` on success.
        also_value: String,
    },
    /// `Compact` at a revision (history only: it changes no current value).
    Compact {
        /// The revision compacted to.
        revision: i64,
    },
    /// `LeaseGrant` with a client-chosen id, so that a grant whose outcome is
    /// unknown still names its lease.
    LeaseGrant {
        /// The lease id (unique in the run).
        id: i64,
        /// Requested time to live, seconds.
        ttl_secs: i64,
    },
    /// `LeaseRevoke`.
    LeaseRevoke {
        /// The lease id.
        id: i64,
    },
    /// One `LeaseKeepAlive` request on its own stream.
    LeaseKeepAlive {
        /// The lease id.
        id: i64,
    },
    /// `Put` of a key attached to a lease.
    PutWithLease {
        /// The key (under [`crate::lease::LEASE_PREFIX`], never a KV traffic key).
        key: String,
        /// A value no other write in the run uses.
        value: String,
        /// The lease id.
        lease: i64,
    },
    /// One session (one gRPC stream) of a watcher on a prefix; a watcher that
    /// reconnects records one session per stream.
    Watch {
        /// The watcher (sessions of one watcher form one logical watch).
        watcher: u64,
        /// The session number, from 0.
        session: u32,
        /// The prefix watched.
        prefix: String,
        /// The start revision asked for (0: from now).
        start_revision: i64,
        /// Whether previous key-values were asked for.
        prev_kv: bool,
        /// Events of this kind are filtered out (`NOPUT`, `NODELETE`).
        #[serde(default)]
        filter_out: Option<EventKind>,
    },
}

impl Request {
    /// Whether the request changes no key.
    pub fn is_read(&self) -> bool {
        matches!(
            self,
            Request::Get { .. } | Request::Range { .. } | Request::Watch { .. }
        )
    }
}

/// A successful response, reduced to what the checks need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// The value of a `Get` (`None`: absent).
    Value(Option<String>),
    /// Key/value pairs of a `Range`, in key order.
    Kvs(Vec<(String, String)>),
    /// A `Put` was applied.
    Put,
    /// How many keys a `Delete` removed.
    Deleted(i64),
    /// Whether the transaction's compare succeeded.
    Txn(bool),
    /// The compaction was applied.
    Compacted,
    /// A lease grant succeeded with this time to live (seconds).
    LeaseGranted {
        /// The granted time to live.
        ttl_secs: i64,
    },
    /// A lease revoke succeeded.
    LeaseRevoked,
    /// A keep-alive renewed the lease.
    LeaseAlive {
        /// The lease's time to live.
        ttl_secs: i64,
    },
    /// The server said the lease does not exist (a revoke, a keep-alive, or
    /// a put attached to it): the request changed nothing.
    LeaseNotFound,
    /// What one watch session received.
    Watch(WatchSession),
}

/// What one watch stream delivered, in arrival order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct WatchSession {
    /// Header revision of the `created` response (`None`: never created).
    pub created_revision: Option<i64>,
    /// Every response carrying events, in arrival order.
    pub batches: Vec<WatchBatch>,
    /// Set when the server cancelled the watch because its start revision
    /// was compacted.
    pub compact_revision: Option<i64>,
    /// Why the session ended.
    pub end: String,
}

/// One `WatchResponse` with events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchBatch {
    /// Arrival time (ns since the run started).
    pub received_ns: u64,
    /// The response header's revision.
    pub header_revision: i64,
    /// The events, in the order received.
    pub events: Vec<WatchEvent>,
}

/// Whether an event put or deleted its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    /// `PUT`.
    Put,
    /// `DELETE`.
    Delete,
}

/// One `mvccpb.Event`, reduced to what the checks compare.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WatchEvent {
    /// Put or delete.
    pub kind: EventKind,
    /// The key.
    pub key: String,
    /// The value written (empty for a delete).
    pub value: String,
    /// The revision of the change.
    pub mod_revision: i64,
    /// The key's create revision (0 for a delete).
    pub create_revision: i64,
    /// The key's version after the change (0 for a delete).
    pub version: i64,
    /// The lease the key is attached to (0: none).
    pub lease: i64,
    /// The key before the change, when asked for and sent.
    pub prev: Option<PrevKv>,
}

/// The `prev_kv` of an event.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PrevKv {
    /// The previous value.
    pub value: String,
    /// The revision that wrote it.
    pub mod_revision: i64,
    /// Its create revision.
    pub create_revision: i64,
    /// Its version.
    pub version: i64,
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The member answered.
    Ok {
        /// Return time (ns since the run started).
        returned_ns: u64,
        /// The response header's revision.
        revision: i64,
        /// The answer.
        response: Response,
    },
    /// No answer, or an error that does not say whether the request was
    /// applied (timeout, connection lost, leader changed): it may take effect
    /// at any time after its invocation.
    Unknown {
        /// What the client saw.
        error: String,
    },
}

/// One client operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The client (a traffic task, or the final reader).
    pub client: u64,
    /// Index of the member the request was sent to.
    pub member: usize,
    /// What was asked.
    pub request: Request,
    /// Invoke time (ns since the run started).
    pub invoked_ns: u64,
    /// How it ended.
    pub outcome: Outcome,
}

/// The shared, bounded log of operations of one run.
///
/// A std mutex: it is held only to push one record, never across an await.
#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    records: Mutex<Vec<Record>>,
}

impl Recorder {
    /// A recorder whose clock starts now.
    pub fn new() -> Recorder {
        Recorder {
            start: Instant::now(),
            records: Mutex::new(Vec::new()),
        }
    }

    /// Nanoseconds since the recorder was created.
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Whether the history reached [`MAX_RECORDS`].
    pub fn is_full(&self) -> bool {
        self.lock().len() >= MAX_RECORDS
    }

    /// Appends a finished operation.
    pub fn push(&self, record: Record) {
        if let Outcome::Ok { returned_ns, .. } = &record.outcome {
            assert!(
                *returned_ns >= record.invoked_ns,
                "an operation returned before it was invoked: {record:?}"
            );
        }
        self.lock().push(record);
    }

    /// The records so far, in invoke order.
    pub fn snapshot(&self) -> Vec<Record> {
        let mut records = self.lock().clone();
        records.sort_by_key(|r| r.invoked_ns);
        records
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Record>> {
        // A panicking client cannot leave a half-pushed Vec: push is one call.
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

/// Writes `records` as JSON lines.
pub fn write_jsonl(path: &Path, records: &[Record]) -> Result<(), RobustnessError> {
    let file = std::fs::File::create(path).map_err(|e| RobustnessError::io(path, e))?;
    let mut out = std::io::BufWriter::new(file);
    for record in records {
        serde_json::to_writer(&mut out, record)
            .map_err(|e| RobustnessError::History(format!("{}: {e}", path.display())))?;
        out.write_all(b"\n")
            .map_err(|e| RobustnessError::io(path, e))?;
    }
    out.flush().map_err(|e| RobustnessError::io(path, e))
}

/// Reads a JSON-lines history written by [`write_jsonl`].
pub fn read_jsonl(path: &Path) -> Result<Vec<Record>, RobustnessError> {
    let file = std::fs::File::open(path).map_err(|e| RobustnessError::io(path, e))?;
    let mut records = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| RobustnessError::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let record = serde_json::from_str(&line)
            .map_err(|e| RobustnessError::History(format!("{}:{}: {e}", path.display(), n + 1)))?;
        records.push(record);
    }
    Ok(records)
}
