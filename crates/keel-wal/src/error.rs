//! Errors of the WAL and the snapshotter.

use std::io;
use std::path::PathBuf;

use crate::record::DecodeErrorKind;

/// Errors from [`crate::Wal`] and [`crate::read_all`].
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("wal: {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Bytes that fail their checks somewhere other than a torn tail.
    #[error("wal: corrupted segment {file} at byte offset {offset}: {kind}")]
    Corrupt {
        file: PathBuf,
        offset: u64,
        kind: DecodeErrorKind,
    },
    #[error("wal: {0} is locked by another open write-ahead log")]
    Locked(PathBuf),
    #[error("wal: no segment files in {0}")]
    NotFound(PathBuf),
    #[error("wal: {0} already holds a write-ahead log")]
    AlreadyExists(PathBuf),
    #[error("wal: file name {0} is not a segment name")]
    BadSegmentName(String),
    #[error("wal: segment sequence has a gap: {missing:016x} is missing in {dir}")]
    MissingSegment { dir: PathBuf, missing: u64 },
    #[error("wal: no segment covers snapshot index {0}")]
    NoSegmentForSnapshot(u64),
    #[error("wal: snapshot marker (index {index}, term {term}) not found")]
    SnapshotNotFound { index: u64, term: u64 },
    #[error("wal: snapshot marker at index {index} has term {found}, expected {expected}")]
    SnapshotMismatch {
        index: u64,
        expected: u64,
        found: u64,
    },
    #[error("wal: metadata in {file} differs from the metadata before it")]
    MetadataConflict { file: PathBuf },
    #[error("wal: {file} at byte offset {offset}: {what}")]
    Layout {
        file: PathBuf,
        offset: u64,
        what: &'static str,
    },
    #[error("wal: {file} at byte offset {offset}: entry index {found} leaves a gap after {last}")]
    IndexGap {
        file: PathBuf,
        offset: u64,
        last: u64,
        found: u64,
    },
    #[error("wal: entry index {found} would leave a gap after the last index {last}")]
    NonContiguous { last: u64, found: u64 },
    #[error("wal: {0}")]
    TooLarge(#[from] crate::record::RecordTooLarge),
    #[error("wal: unusable after an earlier write or sync failure")]
    Poisoned,
    #[error("wal: the segment preallocation thread stopped")]
    PipelineStopped,
}

/// Errors from [`crate::Snapshotter`].
#[derive(Debug, thiserror::Error)]
pub enum SnapError {
    #[error("snap: {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("snap: payload of {len_bytes} bytes exceeds the limit of {max_bytes} bytes")]
    TooLarge { len_bytes: u64, max_bytes: u64 },
}
