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
}

impl Request {
    /// Whether the request changes no key.
    pub fn is_read(&self) -> bool {
        matches!(self, Request::Get { .. } | Request::Range { .. })
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
