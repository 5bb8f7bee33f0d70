//! The write-ahead log: a directory of segment files, one of which (the last) is appended to.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::disk::{Disk, DiskFile};
use crate::error::WalError;
use crate::pipeline::Pipeline;
use crate::record::{Decoder, Entry, HardState, Record, SnapshotMarker, encode, encode_entry};

/// Default size at which a segment is cut: 64 MiB, as in etcd.
pub const DEFAULT_SEGMENT_SIZE_BYTES: u64 = 64 * 1024 * 1024;
/// Smallest segment size accepted; tests use small segments to exercise cuts.
pub const MIN_SEGMENT_SIZE_BYTES: u64 = 4096;
/// Records every segment starts with: crc, metadata, then a snapshot marker (first
/// segment) or hard state (later ones). A torn tail can only come after them, because a
/// segment is synced before it is renamed into place.
const SEGMENT_HEADER_RECORDS: usize = 3;
/// The encode buffer is released back to this capacity after an unusually large batch.
const RETAINED_BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// Tunables of a [`Wal`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalConfig {
    /// A segment is cut once a save leaves it at least this long.
    pub segment_size_bytes: u64,
}

impl Default for WalConfig {
    fn default() -> Self {
        WalConfig {
            segment_size_bytes: DEFAULT_SEGMENT_SIZE_BYTES,
        }
    }
}

/// What a save cost, for the server's metrics (`etcd_disk_wal_fsync_duration_seconds`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SaveStats {
    /// Bytes appended to segment files, including a new segment's header records.
    pub bytes_written: u64,
    /// `fdatasync` calls made: 0 when nothing needed to be durable, 2 when a segment was cut.
    pub fsync_count: u32,
    /// Time spent in those `fdatasync` calls.
    pub fsync_duration: Duration,
    /// Whether this save closed the tail segment and started a new one.
    pub segment_cut: bool,
}

/// A torn tail found (and, when opening for append, repaired) in the last segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    pub file: PathBuf,
    /// End of the last valid record: everything from here on was discarded.
    pub offset: u64,
    /// Bytes from `offset` to the end of the file, including unused preallocated space.
    pub discarded_bytes: u64,
}

/// Everything replayed from the WAL after a snapshot marker.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Replay {
    /// The metadata written at the head of every segment.
    pub metadata: Vec<u8>,
    /// The latest hard state, or the default if none was ever saved.
    pub hard_state: HardState,
    /// Entries after the marker, contiguous from `marker.index + 1`; a later record at an
    /// index replaces the earlier one and everything after it.
    pub entries: Vec<Entry>,
    /// The torn tail that was found, if any.
    pub torn_tail: Option<TornTail>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Segment {
    seq: u64,
    index: u64,
}

impl Segment {
    fn name(self) -> String {
        format!("{:016x}-{:016x}.wal", self.seq, self.index)
    }

    fn parse(name: &str) -> Option<Segment> {
        let stem = name.strip_suffix(".wal")?;
        let (seq, index) = stem.split_once('-')?;
        if seq.len() != 16 || index.len() != 16 {
            return None;
        }
        Some(Segment {
            seq: u64::from_str_radix(seq, 16).ok()?,
            index: u64::from_str_radix(index, 16).ok()?,
        })
    }
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> WalError {
    let path = path.to_path_buf();
    move |source| WalError::Io { op, path, source }
}

/// The segments in `dir`, ordered by sequence number, checked to have no gaps.
fn list_segments<D: Disk>(disk: &D, dir: &Path) -> Result<Vec<Segment>, WalError> {
    let mut segments = Vec::new();
    for name in disk.list(dir).map_err(io_err("list", dir))? {
        if name.ends_with(".wal") {
            segments.push(Segment::parse(&name).ok_or(WalError::BadSegmentName(name))?);
        }
    }
    segments.sort_by_key(|s| s.seq);
    for pair in segments.windows(2) {
        if pair[1].seq != pair[0].seq + 1 {
            return Err(WalError::MissingSegment {
                dir: dir.to_path_buf(),
                missing: pair[0].seq + 1,
            });
        }
    }
    Ok(segments)
}

/// Removes preallocated files that never became segments.
fn remove_tmp_files<D: Disk>(disk: &D, dir: &Path) -> Result<(), WalError> {
    for name in disk.list(dir).map_err(io_err("list", dir))? {
        if name.ends_with(".tmp") {
            let path = dir.join(&name);
            disk.remove(&path).map_err(io_err("remove", &path))?;
        }
    }
    Ok(())
}

/// Where a walk over segments stopped.
struct WalkEnd {
    metadata: Vec<u8>,
    torn_tail: Option<TornTail>,
    /// End of the last valid record in the last segment.
    tail_valid_end: u64,
    /// CRC of that record.
    crc: u32,
}

/// Decodes `segments` (a suffix of the log: its last element is the log's last segment)
/// in order, checking the CRC chain and each segment's header records, and hands every
/// record after a segment's crc and metadata records to `visit`. Applies the torn-tail
/// rule of the crate docs to the last segment; any other failure is an error.
fn walk<D: Disk>(
    disk: &D,
    dir: &Path,
    segments: &[Segment],
    mut visit: impl FnMut(&Path, u64, Record) -> Result<(), WalError>,
) -> Result<WalkEnd, WalError> {
    let mut metadata: Option<Vec<u8>> = None;
    let mut crc: Option<u32> = None;
    let mut torn_tail = None;
    let mut tail_valid_end = 0;
    for (pos, seg) in segments.iter().enumerate() {
        let is_last = pos + 1 == segments.len();
        let path = dir.join(seg.name());
        let buf = disk.read(&path).map_err(io_err("read", &path))?;
        let mut decoder = match crc {
            None => Decoder::new(&buf),
            Some(c) => Decoder::continuing(&buf, c),
        };
        let mut records = 0usize;
        loop {
            let decoded = match decoder.next_record() {
                Ok(Some(d)) => d,
                Ok(None) => break,
                Err(e) => {
                    if is_last && records >= SEGMENT_HEADER_RECORDS && e.is_torn_tail(&buf) {
                        let offset = decoder.position();
                        torn_tail = Some(TornTail {
                            file: path.clone(),
                            offset,
                            discarded_bytes: buf.len() as u64 - offset,
                        });
                        break;
                    }
                    return Err(WalError::Corrupt {
                        file: path,
                        offset: e.offset,
                        kind: e.kind,
                    });
                }
            };
            let layout = |what| WalError::Layout {
                file: path.clone(),
                offset: decoded.offset,
                what,
            };
            match (records, decoded.record) {
                (0, Record::Crc(_)) => {}
                (0, _) => return Err(layout("segment does not start with a crc record")),
                (_, Record::Crc(_)) => return Err(layout("crc record inside a segment")),
                (1, Record::Metadata(m)) => match &metadata {
                    Some(prev) if *prev != m => {
                        return Err(WalError::MetadataConflict { file: path });
                    }
                    Some(_) => {}
                    None => metadata = Some(m),
                },
                (1, _) => return Err(layout("second record of a segment is not metadata")),
                (_, Record::Metadata(_)) => return Err(layout("metadata record inside a segment")),
                (_, record) => visit(&path, decoded.offset, record)?,
            }
            records += 1;
        }
        if records < SEGMENT_HEADER_RECORDS {
            return Err(WalError::Layout {
                file: path,
                offset: decoder.position(),
                what: "segment is missing its header records",
            });
        }
        crc = decoder.running_crc();
        tail_valid_end = decoder.position();
    }
    Ok(WalkEnd {
        metadata: metadata.expect("every walked segment had a metadata record"),
        torn_tail,
        tail_valid_end,
        crc: crc.expect("every walked segment had a crc record"),
    })
}

/// Result of reading the segments from a marker to the end.
struct Scan {
    replay: Replay,
    segments: Vec<Segment>,
    tail_valid_end: u64,
    crc: u32,
    last_index: u64,
    last_snapshot: SnapshotMarker,
}

fn scan<D: Disk>(
    disk: &D,
    dir: &Path,
    segments: Vec<Segment>,
    marker: SnapshotMarker,
) -> Result<Scan, WalError> {
    if segments.is_empty() {
        return Err(WalError::NotFound(dir.to_path_buf()));
    }
    let start = segments
        .iter()
        .rposition(|s| s.index <= marker.index)
        .ok_or(WalError::NoSegmentForSnapshot(marker.index))?;
    let mut replay = Replay::default();
    let mut found_marker = false;
    let mut last_index = 0;
    let mut last_snapshot = SnapshotMarker::default();
    let end = walk(disk, dir, &segments[start..], |path, offset, record| {
        match record {
            Record::Entry(e) => {
                let index = e.index;
                if index > marker.index {
                    let next = marker.index + replay.entries.len() as u64 + 1;
                    if index > next {
                        return Err(WalError::IndexGap {
                            file: path.to_path_buf(),
                            offset,
                            last: next - 1,
                            found: index,
                        });
                    }
                    let keep = usize::try_from(index - marker.index - 1)
                        .expect("bounded by entries.len() just above");
                    replay.entries.truncate(keep);
                    replay.entries.push(e);
                }
                last_index = index;
            }
            Record::HardState(h) => replay.hard_state = h,
            Record::Snapshot(s) => {
                if s.index == marker.index {
                    if s.term != marker.term {
                        return Err(WalError::SnapshotMismatch {
                            index: s.index,
                            expected: marker.term,
                            found: s.term,
                        });
                    }
                    found_marker = true;
                }
                if s.index >= last_snapshot.index {
                    last_snapshot = s;
                }
                last_index = last_index.max(s.index);
            }
            Record::Crc(_) | Record::Metadata(_) => {
                unreachable!("walk handles crc and metadata records itself")
            }
        }
        Ok(())
    })?;
    if !found_marker {
        return Err(WalError::SnapshotNotFound {
            index: marker.index,
            term: marker.term,
        });
    }
    replay.metadata = end.metadata;
    replay.torn_tail = end.torn_tail;
    Ok(Scan {
        replay,
        segments,
        tail_valid_end: end.tail_valid_end,
        crc: end.crc,
        last_index,
        last_snapshot,
    })
}

/// Whether `dir` holds a write-ahead log (at least one segment file).
pub fn exists<D: Disk>(disk: &D, dir: &Path) -> Result<bool, WalError> {
    match disk.list(dir) {
        Ok(_) => Ok(!list_segments(disk, dir)?.is_empty()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err("list", dir)(e)),
    }
}

/// The snapshot markers in the whole log that a restart may open at: those at or below
/// the last saved commit index (a snapshot beyond it cannot have been applied yet),
/// oldest first. Pair with [`crate::Snapshotter::load_matching`] to pick the newest
/// snapshot file the log can continue from. Reads only; a torn tail is tolerated.
pub fn snapshot_markers<D: Disk>(disk: &D, dir: &Path) -> Result<Vec<SnapshotMarker>, WalError> {
    let segments = list_segments(disk, dir)?;
    if segments.is_empty() {
        return Err(WalError::NotFound(dir.to_path_buf()));
    }
    let mut markers = Vec::new();
    let mut commit = 0;
    walk(disk, dir, &segments, |_, _, record| {
        match record {
            Record::Snapshot(s) => markers.push(s),
            Record::HardState(h) => commit = h.commit,
            Record::Entry(_) | Record::Crc(_) | Record::Metadata(_) => {}
        }
        Ok(())
    })?;
    markers.retain(|m| m.index <= commit);
    Ok(markers)
}

/// Reads the WAL in `dir` from `marker` without changing anything: a torn tail is reported
/// in [`Replay::torn_tail`] but not repaired. For inspection tools.
pub fn read_all<D: Disk>(disk: &D, dir: &Path, marker: SnapshotMarker) -> Result<Replay, WalError> {
    scan(disk, dir, list_segments(disk, dir)?, marker).map(|s| s.replay)
}

/// An open write-ahead log, appending to its last segment.
pub struct Wal<D: Disk> {
    disk: D,
    dir: PathBuf,
    config: WalConfig,
    metadata: Vec<u8>,
    /// Live segments, oldest first; the last one is `tail`.
    segments: Vec<Segment>,
    /// Locked handles of the live segments before the tail, in the same order, so that no
    /// second writer can open this log while it is open (etcd locks its segments too).
    held: Vec<D::File>,
    tail: D::File,
    tail_offset: u64,
    /// CRC of the last record written: the seed of the next one.
    crc: u32,
    last_index: u64,
    /// The last hard state written, repeated at the head of each new segment.
    hard_state: HardState,
    last_snapshot: SnapshotMarker,
    pipeline: Pipeline<D>,
    buf: Vec<u8>,
    /// Set when a write or sync failed: what reached the disk is unknown, so the only safe
    /// continuation is to reopen (and replay) the log.
    poisoned: bool,
}

impl<D: Disk> std::fmt::Debug for Wal<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.dir)
            .field("segments", &self.segments.len())
            .field("tail_offset", &self.tail_offset)
            .field("last_index", &self.last_index)
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

fn check_config(config: &WalConfig) {
    assert!(
        config.segment_size_bytes >= MIN_SEGMENT_SIZE_BYTES,
        "segment_size_bytes {} is below the minimum {MIN_SEGMENT_SIZE_BYTES}",
        config.segment_size_bytes
    );
}

impl<D: Disk> Wal<D> {
    /// Creates a new WAL in `dir` whose first segment holds `metadata` and the marker of
    /// the empty snapshot (index 0, term 0). Fails if `dir` already holds segments.
    pub fn create(
        disk: D,
        dir: &Path,
        metadata: &[u8],
        config: WalConfig,
    ) -> Result<Self, WalError> {
        check_config(&config);
        disk.create_dir_all(dir).map_err(io_err("create", dir))?;
        if !list_segments(&disk, dir)?.is_empty() {
            return Err(WalError::AlreadyExists(dir.to_path_buf()));
        }
        remove_tmp_files(&disk, dir)?;
        let mut pipeline = Pipeline::start(disk.clone(), dir, config.segment_size_bytes)?;
        let (tmp_path, mut file) = pipeline.take()?;
        lock(&mut file, &tmp_path)?;
        let mut buf = Vec::new();
        let mut crc = encode(&Record::Crc(0), 0, &mut buf)?;
        crc = encode(&Record::Metadata(metadata.to_vec()), crc, &mut buf)?;
        crc = encode(&Record::Snapshot(SnapshotMarker::default()), crc, &mut buf)?;
        file.write_all_at(0, &buf)
            .map_err(io_err("write", &tmp_path))?;
        file.sync_data().map_err(io_err("sync", &tmp_path))?;
        let first = Segment { seq: 0, index: 0 };
        let path = dir.join(first.name());
        disk.rename(&tmp_path, &path)
            .map_err(io_err("rename", &tmp_path))?;
        disk.sync_dir(dir).map_err(io_err("sync", dir))?;
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            disk.sync_dir(parent).map_err(io_err("sync", parent))?;
        }
        Ok(Wal {
            disk,
            dir: dir.to_path_buf(),
            config,
            metadata: metadata.to_vec(),
            segments: vec![first],
            held: Vec::new(),
            tail: file,
            tail_offset: buf.len() as u64,
            crc,
            last_index: 0,
            hard_state: HardState::default(),
            last_snapshot: SnapshotMarker::default(),
            pipeline,
            buf: Vec::new(),
            poisoned: false,
        })
    }

    /// Opens the WAL in `dir` for appending and replays it from `marker`, which must be a
    /// snapshot marker saved in the log (`SnapshotMarker::default()` for a log without a
    /// snapshot). A torn tail in the last segment is truncated away (and logged); any
    /// other damage is an error naming the file and byte offset.
    pub fn open_at(
        disk: D,
        dir: &Path,
        marker: SnapshotMarker,
        config: WalConfig,
    ) -> Result<(Self, Replay), WalError> {
        check_config(&config);
        // Lock every segment before touching anything: a second writer stops here.
        let segments = list_segments(&disk, dir)?;
        let mut held = Vec::with_capacity(segments.len());
        for seg in &segments {
            let path = dir.join(seg.name());
            let mut file = disk.open_write(&path).map_err(io_err("open", &path))?;
            lock(&mut file, &path)?;
            held.push(file);
        }
        remove_tmp_files(&disk, dir)?;
        let scan = scan(&disk, dir, segments, marker)?;
        let tail_segment = *scan
            .segments
            .last()
            .expect("scan found at least one segment");
        let tail_path = dir.join(tail_segment.name());
        let mut tail = held.pop().expect("one locked handle per segment");
        if let Some(torn) = &scan.replay.torn_tail {
            tracing::warn!(
                file = %torn.file.display(),
                offset = torn.offset,
                discarded_bytes = torn.discarded_bytes,
                "wal: repairing torn tail by truncating after the last valid record"
            );
            tail.set_len(torn.offset)
                .map_err(io_err("truncate", &tail_path))?;
        }
        tail.preallocate(config.segment_size_bytes)
            .map_err(io_err("preallocate", &tail_path))?;
        tail.sync_data().map_err(io_err("sync", &tail_path))?;
        let pipeline = Pipeline::start(disk.clone(), dir, config.segment_size_bytes)?;
        let wal = Wal {
            disk,
            dir: dir.to_path_buf(),
            config,
            metadata: scan.replay.metadata.clone(),
            segments: scan.segments,
            held,
            tail,
            tail_offset: scan.tail_valid_end,
            crc: scan.crc,
            last_index: scan.last_index,
            hard_state: scan.replay.hard_state,
            last_snapshot: scan.last_snapshot,
            pipeline,
            buf: Vec::new(),
            poisoned: false,
        };
        Ok((wal, scan.replay))
    }

    /// Index of the last entry written (or of a later snapshot marker).
    #[must_use]
    pub fn last_index(&self) -> u64 {
        self.last_index
    }

    /// Names of the live segment files, oldest first.
    #[must_use]
    pub fn segment_names(&self) -> Vec<String> {
        self.segments.iter().map(|s| s.name()).collect()
    }

    /// Appends `entries` and, if it changed, `hard_state`, with at most one `fdatasync`
    /// (two when the batch fills the segment and a new one is cut). The sync is skipped
    /// when only the commit index changed, as etcd's `MustSync` does. Entries in one batch
    /// must have consecutive indices, the first at most one past [`Wal::last_index`]
    /// (a lower one overwrites the log from there); both are asserted.
    pub fn save(
        &mut self,
        hard_state: Option<HardState>,
        entries: &[Entry],
    ) -> Result<SaveStats, WalError> {
        self.check_usable()?;
        let new_state = hard_state.filter(|h| *h != self.hard_state);
        if new_state.is_none() && entries.is_empty() {
            return Ok(SaveStats::default());
        }
        for pair in entries.windows(2) {
            assert_eq!(
                pair[0].index.checked_add(1),
                Some(pair[1].index),
                "entries of one batch must have consecutive indices"
            );
        }
        if let Some(first) = entries.first() {
            // Written, a hole would make every later open fail with `IndexGap`.
            assert!(
                first.index <= self.last_index.saturating_add(1),
                "entry {} would leave a gap after index {}",
                first.index,
                self.last_index
            );
        }
        let must_sync =
            !entries.is_empty() || new_state.is_some_and(|h| h.must_sync_after(&self.hard_state));
        self.buf.clear();
        let mut crc = self.crc;
        for e in entries {
            crc = encode_entry(e, crc, &mut self.buf)?;
        }
        if let Some(h) = new_state {
            crc = encode(&Record::HardState(h), crc, &mut self.buf)?;
        }
        let mut stats = self.append_buf(crc)?;
        if let Some(last) = entries.last() {
            self.last_index = last.index;
        }
        if let Some(h) = new_state {
            self.hard_state = h;
        }
        self.finish(must_sync, &mut stats)?;
        Ok(stats)
    }

    /// Records that a snapshot at `marker` was taken, durably.
    pub fn save_snapshot(&mut self, marker: SnapshotMarker) -> Result<SaveStats, WalError> {
        self.check_usable()?;
        self.buf.clear();
        let crc = encode(&Record::Snapshot(marker), self.crc, &mut self.buf)?;
        let mut stats = self.append_buf(crc)?;
        self.last_index = self.last_index.max(marker.index);
        if marker.index >= self.last_snapshot.index {
            self.last_snapshot = marker;
        }
        self.finish(true, &mut stats)?;
        Ok(stats)
    }

    /// Removes the segments that hold nothing at or after `index`, never going past the
    /// last saved snapshot marker: a later [`Wal::open_at`] with that marker still finds
    /// every segment it reads.
    pub fn release_to(&mut self, index: u64) -> Result<(), WalError> {
        self.check_usable()?;
        let index = index.min(self.last_snapshot.index);
        let keep_from = self
            .segments
            .iter()
            .rposition(|s| s.index <= index)
            .unwrap_or(0);
        if keep_from == 0 {
            return Ok(());
        }
        for seg in &self.segments[..keep_from] {
            let path = self.dir.join(seg.name());
            match self.disk.remove(&path) {
                // Already gone: an earlier release failed part way through.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                other => other.map_err(io_err("remove", &path))?,
            }
        }
        self.disk
            .sync_dir(&self.dir)
            .map_err(io_err("sync", &self.dir))?;
        tracing::info!(
            dir = %self.dir.display(),
            released = keep_from,
            up_to_index = index,
            "wal: released old segments"
        );
        self.segments.drain(..keep_from);
        self.held.drain(..keep_from);
        Ok(())
    }

    fn check_usable(&self) -> Result<(), WalError> {
        if self.poisoned {
            Err(WalError::Poisoned)
        } else {
            Ok(())
        }
    }

    /// Writes `self.buf` at the tail; `crc` is the CRC of its last record.
    fn append_buf(&mut self, crc: u32) -> Result<SaveStats, WalError> {
        let path = self.tail_path();
        if let Err(e) = self.tail.write_all_at(self.tail_offset, &self.buf) {
            self.poisoned = true;
            return Err(io_err("write", &path)(e));
        }
        let written = self.buf.len() as u64;
        self.tail_offset += written;
        self.crc = crc;
        if self.buf.capacity() > RETAINED_BUFFER_BYTES {
            self.buf = Vec::new();
        }
        Ok(SaveStats {
            bytes_written: written,
            ..SaveStats::default()
        })
    }

    fn finish(&mut self, must_sync: bool, stats: &mut SaveStats) -> Result<(), WalError> {
        let result = if self.tail_offset >= self.config.segment_size_bytes {
            self.cut(stats)
        } else if must_sync {
            // Records are written, not yet durable: a crash here loses nothing acknowledged.
            #[cfg(feature = "failpoints")]
            fail::fail_point!("wal_before_sync");
            let path = self.tail_path();
            timed_sync(&mut self.tail, &path, stats)
        } else {
            Ok(())
        };
        if result.is_err() {
            self.poisoned = true;
        }
        result
    }

    fn tail_path(&self) -> PathBuf {
        let tail = self
            .segments
            .last()
            .expect("a wal always has a tail segment");
        self.dir.join(tail.name())
    }

    /// Closes the tail segment and continues in a freshly preallocated one.
    fn cut(&mut self, stats: &mut SaveStats) -> Result<(), WalError> {
        let old_path = self.tail_path();
        // Drop the unused preallocated space so a closed segment ends at its last record.
        self.tail
            .set_len(self.tail_offset)
            .map_err(io_err("truncate", &old_path))?;
        timed_sync(&mut self.tail, &old_path, stats)?;

        let (tmp_path, mut file) = self.pipeline.take()?;
        lock(&mut file, &tmp_path)?;
        let prev = *self
            .segments
            .last()
            .expect("a wal always has a tail segment");
        let next = Segment {
            seq: prev.seq + 1,
            index: self.last_index + 1,
        };
        let mut buf = Vec::new();
        let mut crc = encode(&Record::Crc(self.crc), self.crc, &mut buf)?;
        crc = encode(&Record::Metadata(self.metadata.clone()), crc, &mut buf)?;
        crc = encode(&Record::HardState(self.hard_state), crc, &mut buf)?;
        file.write_all_at(0, &buf)
            .map_err(io_err("write", &tmp_path))?;
        timed_sync(&mut file, &tmp_path, stats)?;
        let path = self.dir.join(next.name());
        self.disk
            .rename(&tmp_path, &path)
            .map_err(io_err("rename", &tmp_path))?;
        self.disk
            .sync_dir(&self.dir)
            .map_err(io_err("sync", &self.dir))?;
        tracing::info!(segment = %path.display(), "wal: cut a new segment");

        self.held.push(std::mem::replace(&mut self.tail, file));
        self.tail_offset = buf.len() as u64;
        self.crc = crc;
        self.segments.push(next);
        stats.bytes_written += buf.len() as u64;
        stats.segment_cut = true;
        Ok(())
    }
}

fn lock<F: DiskFile>(file: &mut F, path: &Path) -> Result<(), WalError> {
    file.try_lock().map_err(|e| {
        if e.kind() == io::ErrorKind::WouldBlock {
            WalError::Locked(path.to_path_buf())
        } else {
            io_err("lock", path)(e)
        }
    })
}

fn timed_sync<F: DiskFile>(
    file: &mut F,
    path: &Path,
    stats: &mut SaveStats,
) -> Result<(), WalError> {
    let started = Instant::now();
    file.sync_data().map_err(io_err("sync", path))?;
    stats.fsync_duration += started.elapsed();
    stats.fsync_count += 1;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Segment;

    #[test]
    fn segment_names_round_trip_and_sort_by_sequence() {
        let s = Segment {
            seq: 0x1f,
            index: 0xabc,
        };
        assert_eq!(s.name(), "000000000000001f-0000000000000abc.wal");
        assert_eq!(Segment::parse(&s.name()), Some(s));
        assert_eq!(Segment::parse("1f-abc.wal"), None);
        assert_eq!(
            Segment::parse("000000000000001f-0000000000000abc.snap"),
            None
        );
    }
}
