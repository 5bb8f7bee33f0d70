//! Keel's write-ahead log (WAL) and snapshot files.
//!
//! The WAL makes Raft's state durable before a node acts on it: every entry it appends,
//! its hard state (term, vote, commit) and markers of the snapshots it took. It is append
//! only and CRC protected throughout, because storage and operating systems lose and tear
//! writes. It knows nothing of Raft or MVCC: an entry's `kind` and `data` and the segment
//! metadata are opaque bytes.
//!
//! # Invariants
//!
//! - Only the last segment is ever written. A segment is written and `fdatasync`ed before
//!   it is renamed into place and the directory synced, and a closed segment is truncated
//!   to its last record and synced before the next one exists. So after any crash every
//!   segment but the last is complete, and the last one is complete up to some point.
//! - A save is one write of all its records followed by at most one `fdatasync` (two when
//!   the save fills the segment and a new one is cut); when [`Wal::save`] returns `Ok` with
//!   `fsync_count > 0`, everything saved so far is durable.
//! - Every record's CRC chains from the previous record's, across segments, so a record
//!   cannot be dropped, duplicated or reordered without a CRC mismatch.
//! - One writer: an open [`Wal`] holds an exclusive advisory lock (`flock`) on every live
//!   segment, so a second [`Wal::open_at`] on the same directory fails with
//!   [`WalError::Locked`] instead of interleaving appends.
//! - A failed write or sync poisons the [`Wal`]: what reached the disk is unknown (see
//!   "fsyncgate"), so every later call fails until the log is reopened and replayed.
//! - Nothing is dropped silently: a repaired torn tail is logged with `tracing::warn!` and
//!   reported in [`Replay::torn_tail`]; any other damage stops the open with an error that
//!   names the file and byte offset.
//!
//! # Torn tail versus corruption
//!
//! A crash can leave the last write of the last segment partly on disk: a prefix of the
//! batch, and after it the zeros of preallocated space (or the end of the file). When a
//! record fails to decode, the failure is a **torn tail** only if all of these hold:
//!
//! 1. it is in the last segment, after that segment's three header records (which were
//!    synced before the segment got its name);
//! 2. its kind is one a partial write can produce: fewer than 16 bytes left, a header that
//!    fails its own checksum, a valid header whose record runs past the end of the file,
//!    or a record whose chained CRC does not match;
//! 3. every byte after what the failed write could have touched is zero: after the
//!    16-byte header for a header checksum failure, after the record's end (as its
//!    checked header states) for a CRC mismatch.
//!
//! Then the segment is truncated at the end of the last valid record. Everything else is
//! corruption: a failure in an earlier segment, a bad record followed by any non-zero byte,
//! a zeroed header followed by data, a record whose CRC matches but whose contents are
//! invalid. The header's own checksum is what makes rule 3 sound: a flipped length cannot
//! make the decoder skip valid records, it fails the header check instead.
//!
//! The one case the rule cannot tell apart: bit rot inside the very last record of the
//! last segment, with only zeros after it, looks exactly like a torn write and is repaired
//! (logged, never silent). etcd's WAL has the same blind spot.
//!
//! The rule assumes a crash keeps a prefix of the unsynced bytes. A file system that
//! persisted a later page of the last write but not an earlier one leaves a zeroed header
//! followed by data; that is reported as corruption rather than guessed at, so the node
//! stops instead of possibly dropping synced records.
//!
//! # Files
//!
//! `<dir>/{seq:016x}-{index:016x}.wal` — `seq` counts segments from 0 without gaps;
//! `index` is the index the first entry written into the segment was expected to have
//! (the last index plus one at the cut). A segment is cut once it reaches
//! [`WalConfig::segment_size_bytes`] ([`DEFAULT_SEGMENT_SIZE_BYTES`], 64 MiB, by default);
//! the next one is preallocated by a background thread as `0.tmp` / `1.tmp`, and leftover
//! `*.tmp` files are removed on open.
//!
//! # Record format, version 1
//!
//! A segment is a sequence of records, each starting at a multiple of 8 bytes. All integers
//! are little endian. A record is a 16-byte header, the payload, and 0–7 zero bytes of
//! padding to the next multiple of 8:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | `payload_len`: payload bytes, excluding padding (≤ 256 MiB) |
//! | 4 | 1 | `type`: 1 metadata, 2 entry, 3 hard state, 4 snapshot marker, 5 crc |
//! | 5 | 1 | `pad_len`: `(8 - payload_len % 8) % 8` |
//! | 6 | 1 | format version, `1` |
//! | 7 | 1 | reserved, `0` |
//! | 8 | 4 | `crc`: CRC32C (Castagnoli) of header bytes 0..8, then payload and padding, seeded with the previous record's `crc` |
//! | 12 | 4 | `header_check`: CRC32C of header bytes 0..12, seeded with `0x4b45454c` ("KEEL") |
//! | 16 | `payload_len` | payload |
//! | 16 + `payload_len` | `pad_len` | zeros |
//!
//! Payloads by type:
//!
//! - **metadata** (1): opaque bytes, identical in every segment of a log.
//! - **entry** (2): `term` u64, `index` u64, `kind` u8, then `data` (the rest).
//! - **hard state** (3): `term` u64, `vote` u64, `commit` u64.
//! - **snapshot marker** (4): `index` u64, `term` u64.
//! - **crc** (5): `prev_crc` u32, the running CRC at the end of the previous segment (0 for
//!   the first). Its own `crc` is seeded with `prev_crc` instead of a previous record.
//!
//! Every segment begins with a crc record, then a metadata record, then a snapshot marker
//! (the first segment: index 0, term 0) or a hard state (later segments: the latest one,
//! so that releasing old segments never loses it). After them come entries, hard states
//! and snapshot markers in the order they were saved. A segment ends at its file's end or
//! where only zero bytes remain (unused preallocated space).
//!
//! # Snapshot file format, version 1
//!
//! `<dir>/{term:016x}-{index:016x}.snap`, written as `*.snap.tmp`, synced, renamed, and
//! the directory synced. Little endian:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `KEELSNAP` |
//! | 8 | 4 | format version, `1` |
//! | 12 | 4 | CRC32C of bytes 16.. (header rest and payload) |
//! | 16 | 8 | term |
//! | 24 | 8 | index |
//! | 32 | 8 | payload length |
//! | 40 | n | payload |
//!
//! Loading takes the newest file (highest term, then index) that decodes and whose
//! contents match its name; a file that fails is renamed `*.snap.broken` and the next
//! older one tried.
//!
//! # IO
//!
//! All file access goes through the [`Disk`] trait: [`StdDisk`] on `std::fs` (with
//! `fallocate` and `fdatasync`), and [`SimDisk`], which on a simulated crash loses unsynced
//! data and tears the last surviving write at a random byte.
//!
//! # Failpoints
//!
//! With the `failpoints` feature, `wal_before_sync` (the `fail` crate's actions) runs after
//! a save's records are written and before their `fdatasync`: `panic` is a crash with
//! written but unsynced records, `sleep(ms)` a slow disk. Without the feature it is not
//! compiled in.

mod disk;
mod error;
mod pipeline;
pub mod record;
mod sim;
mod snap;
mod wal;

pub use disk::{Disk, DiskFile, StdDisk, StdFile};
pub use error::{SnapError, WalError};
pub use record::{DecodeError, DecodeErrorKind, Entry, HardState, Record, SnapshotMarker};
pub use sim::{CrashReport, MAX_UNSYNCED_OPS, SimDisk, SimFile};
pub use snap::{
    MAX_SNAP_PAYLOAD_BYTES, SNAP_FORMAT_VERSION, SNAP_HEADER_BYTES, SNAP_MAGIC, SnapDecodeError,
    Snapshot, Snapshotter, decode_snapshot, encode_snapshot,
};
pub use wal::{
    DEFAULT_SEGMENT_SIZE_BYTES, MIN_SEGMENT_SIZE_BYTES, Replay, SaveStats, TornTail, Wal,
    WalConfig, exists, read_all, snapshot_markers,
};
