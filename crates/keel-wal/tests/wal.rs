//! The WAL on the real file system: segment cuts, release, replay rules, errors.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use keel_wal::record::Decoder;
use keel_wal::{Entry, HardState, SnapshotMarker, StdDisk, Wal, WalConfig, WalError};

const SEGMENT: u64 = keel_wal::MIN_SEGMENT_SIZE_BYTES;

fn config() -> WalConfig {
    WalConfig {
        segment_size_bytes: SEGMENT,
    }
}

fn entry(term: u64, index: u64) -> Entry {
    Entry {
        term,
        index,
        kind: 0,
        data: format!("entry {index} of term {term} ")
            .repeat(4)
            .into_bytes(),
    }
}

fn wal_dir(tmp: &tempfile::TempDir) -> PathBuf {
    tmp.path().join("member").join("wal")
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn open(dir: &Path, marker: SnapshotMarker) -> Result<(Wal<StdDisk>, keel_wal::Replay), WalError> {
    Wal::open_at(StdDisk, dir, marker, config())
}

#[test]
fn segments_are_cut_named_preallocated_and_closed_at_their_last_record() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = wal_dir(&tmp);
    let mut wal = Wal::create(StdDisk, &dir, b"node-1", config()).expect("create");
    let mut cuts = 0;
    for i in 1..=200 {
        let stats = wal
            .save(
                Some(HardState {
                    term: 1,
                    vote: 1,
                    commit: i - 1,
                }),
                &[entry(1, i)],
            )
            .expect("save");
        assert!(stats.fsync_count >= 1);
        cuts += usize::from(stats.segment_cut);
    }
    let names = wal.segment_names();
    assert_eq!(names.len(), cuts + 1);
    assert!(
        cuts >= 5,
        "only {cuts} cuts: the test does not exercise cutting"
    );
    drop(wal);
    assert_eq!(
        files(&dir),
        names,
        "no .tmp file may be left behind after drop"
    );

    let mut previous_index = 0;
    for (seq, name) in names.iter().enumerate() {
        assert_eq!(
            &name[..16],
            format!("{seq:016x}"),
            "sequence numbers have no gaps"
        );
        let index = u64::from_str_radix(&name[17..33], 16).expect("hex index");
        assert!(index >= previous_index);
        previous_index = index;
        let bytes = fs::read(dir.join(name)).expect("read");
        let mut d = Decoder::new(&bytes);
        let mut first_entry = None;
        while let Some(r) = d.next_record().expect("segment decodes") {
            if let keel_wal::Record::Entry(e) = r.record {
                first_entry.get_or_insert(e.index);
            }
        }
        if seq > 0 {
            assert_eq!(
                first_entry,
                Some(index),
                "{name}: named after its first entry"
            );
        }
        if seq + 1 < names.len() {
            assert_eq!(
                d.position(),
                bytes.len() as u64,
                "{name}: closed segments end at their last record"
            );
        } else {
            assert_eq!(bytes.len() as u64, SEGMENT, "the tail stays preallocated");
        }
    }

    let (_, replay) = open(&dir, SnapshotMarker::default()).expect("reopen");
    assert_eq!(replay.metadata, b"node-1");
    assert_eq!(
        replay.entries,
        (1..=200).map(|i| entry(1, i)).collect::<Vec<_>>()
    );
    assert_eq!(
        replay.hard_state,
        HardState {
            term: 1,
            vote: 1,
            commit: 199
        }
    );
    assert_eq!(replay.torn_tail, None);
}

#[test]
fn release_drops_only_segments_wholly_before_the_last_snapshot() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = wal_dir(&tmp);
    let mut wal = Wal::create(StdDisk, &dir, b"m", config()).expect("create");
    wal.save(
        Some(HardState {
            term: 3,
            vote: 2,
            commit: 0,
        }),
        &[],
    )
    .expect("state");
    for i in 1..=150 {
        wal.save(None, &[entry(3, i)]).expect("save");
    }
    let before = wal.segment_names();
    // Without a snapshot nothing may go, whatever index is asked for.
    wal.release_to(140).expect("release");
    assert_eq!(wal.segment_names(), before);

    let marker = SnapshotMarker {
        index: 100,
        term: 3,
    };
    wal.save_snapshot(marker).expect("snapshot");
    for i in 151..=160 {
        wal.save(None, &[entry(3, i)]).expect("save");
    }
    wal.release_to(140)
        .expect("release clamps to the snapshot at 100");
    let after = wal.segment_names();
    assert!(after.len() < before.len(), "something was released");
    let first_index = u64::from_str_radix(&after[0][17..33], 16).expect("hex");
    assert!(first_index <= 100, "the segment holding index 100 is kept");
    let second_index = after
        .get(1)
        .map(|n| u64::from_str_radix(&n[17..33], 16).expect("hex"));
    assert!(
        second_index.is_none_or(|i| i > 100),
        "only the last segment starting at or before 100 is kept"
    );
    assert_eq!(
        files(&dir).iter().filter(|n| n.ends_with(".wal")).count(),
        after.len()
    );
    drop(wal);

    let (_, replay) = open(&dir, marker).expect("open at the snapshot");
    assert_eq!(
        replay.entries,
        (101..=160).map(|i| entry(3, i)).collect::<Vec<_>>()
    );
    assert_eq!(
        replay.hard_state,
        HardState {
            term: 3,
            vote: 2,
            commit: 0
        },
        "the hard state survives releasing the segment it was saved in"
    );
    assert!(matches!(
        open(&dir, SnapshotMarker::default()),
        Err(WalError::NoSegmentForSnapshot(0))
    ));
}

#[test]
fn later_entries_at_an_index_replace_the_conflicting_tail() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = wal_dir(&tmp);
    let mut wal = Wal::create(StdDisk, &dir, b"m", config()).expect("create");
    wal.save(None, &(1..=10).map(|i| entry(1, i)).collect::<Vec<_>>())
        .expect("save");
    wal.save(None, &[entry(2, 8), entry(2, 9)])
        .expect("new leader's tail");
    drop(wal);
    let (_, replay) = open(&dir, SnapshotMarker::default()).expect("open");
    let mut expected: Vec<Entry> = (1..=7).map(|i| entry(1, i)).collect();
    expected.extend([entry(2, 8), entry(2, 9)]);
    assert_eq!(replay.entries, expected);
}

#[test]
fn only_term_or_vote_changes_and_entries_are_synced() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = wal_dir(&tmp);
    let mut wal = Wal::create(StdDisk, &dir, b"m", config()).expect("create");
    let hs = HardState {
        term: 1,
        vote: 1,
        commit: 0,
    };
    assert_eq!(wal.save(None, &[]).expect("nothing").bytes_written, 0);
    assert_eq!(wal.save(Some(hs), &[]).expect("vote").fsync_count, 1);
    assert_eq!(wal.save(Some(hs), &[]).expect("unchanged").bytes_written, 0);
    let commit_only = wal
        .save(Some(HardState { commit: 5, ..hs }), &[])
        .expect("commit");
    assert_eq!(
        (commit_only.fsync_count, commit_only.bytes_written > 0),
        (0, true)
    );
    assert_eq!(
        wal.save(None, &[entry(1, 1)]).expect("entry").fsync_count,
        1
    );
    drop(wal);
    let (_, replay) = open(&dir, SnapshotMarker::default()).expect("open");
    assert_eq!(
        replay.hard_state.commit, 5,
        "an unsynced commit still reaches the file"
    );
}

#[test]
fn opening_requires_the_snapshot_marker() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = wal_dir(&tmp);
    let mut wal = Wal::create(StdDisk, &dir, b"m", config()).expect("create");
    wal.save(None, &(1..=5).map(|i| entry(1, i)).collect::<Vec<_>>())
        .expect("save");
    wal.save_snapshot(SnapshotMarker { index: 3, term: 1 })
        .expect("snap");
    drop(wal);
    assert!(matches!(
        open(&dir, SnapshotMarker { index: 4, term: 1 }),
        Err(WalError::SnapshotNotFound { index: 4, term: 1 })
    ));
    assert!(matches!(
        open(&dir, SnapshotMarker { index: 3, term: 2 }),
        Err(WalError::SnapshotMismatch {
            index: 3,
            expected: 2,
            found: 1
        })
    ));
    let (_, replay) = open(&dir, SnapshotMarker { index: 3, term: 1 }).expect("open");
    assert_eq!(replay.entries, vec![entry(1, 4), entry(1, 5)]);
    assert!(matches!(
        Wal::create(StdDisk, &dir, b"m", config()),
        Err(WalError::AlreadyExists(_))
    ));
    let empty = tmp.path().join("empty");
    fs::create_dir_all(&empty).expect("mkdir");
    assert!(matches!(
        open(&empty, SnapshotMarker::default()),
        Err(WalError::NotFound(_))
    ));
}

#[test]
fn a_missing_middle_segment_is_an_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = wal_dir(&tmp);
    let mut wal = Wal::create(StdDisk, &dir, b"m", config()).expect("create");
    while wal.segment_names().len() < 3 {
        let next = wal.last_index() + 1;
        wal.save(None, &[entry(1, next)]).expect("save");
    }
    let names = wal.segment_names();
    drop(wal);
    fs::remove_file(dir.join(&names[1])).expect("remove");
    assert!(matches!(
        open(&dir, SnapshotMarker::default()),
        Err(WalError::MissingSegment { missing: 1, .. })
    ));
}

#[test]
fn a_torn_tail_on_a_real_file_is_truncated_and_appending_continues() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = wal_dir(&tmp);
    let mut wal = Wal::create(StdDisk, &dir, b"m", config()).expect("create");
    wal.save(None, &[entry(1, 1), entry(1, 2)]).expect("save");
    let tail = dir.join(wal.segment_names().last().expect("tail"));
    drop(wal);

    // Half of a record, as a crash in the middle of its write leaves it.
    let bytes = fs::read(&tail).expect("read");
    let mut d = Decoder::new(&bytes);
    let mut last = None;
    while let Some(r) = d.next_record().expect("decodes") {
        last = Some(r);
    }
    let last = last.expect("records");
    let record = bytes[last.offset as usize..last.end as usize].to_vec();
    let file = fs::OpenOptions::new()
        .write(true)
        .open(&tail)
        .expect("open");
    file.write_all_at(&record[..record.len() / 2 + 3], last.end)
        .expect("tear");
    drop(file);

    let replay = keel_wal::read_all(&StdDisk, &dir, SnapshotMarker::default()).expect("read-only");
    assert!(replay.torn_tail.is_some());
    assert_eq!(
        fs::read(&tail).expect("read"),
        {
            let mut b = bytes.clone();
            b[last.end as usize..last.end as usize + record.len() / 2 + 3]
                .copy_from_slice(&record[..record.len() / 2 + 3]);
            b
        },
        "read_all must not repair"
    );

    let (mut wal, replay) = open(&dir, SnapshotMarker::default()).expect("torn tail is repaired");
    let torn = replay.torn_tail.expect("reported");
    assert_eq!(
        (torn.file.as_path(), torn.offset),
        (tail.as_path(), last.end)
    );
    assert_eq!(replay.entries, vec![entry(1, 1), entry(1, 2)]);
    wal.save(None, &[entry(1, 3)]).expect("append after repair");
    drop(wal);
    let (_, replay) = open(&dir, SnapshotMarker::default()).expect("reopen");
    assert_eq!(replay.torn_tail, None);
    assert_eq!(
        replay.entries,
        (1..=3).map(|i| entry(1, i)).collect::<Vec<_>>()
    );
}

#[test]
fn leftover_preallocated_files_are_removed_on_open() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = wal_dir(&tmp);
    drop(Wal::create(StdDisk, &dir, b"m", config()).expect("create"));
    fs::write(dir.join("1.tmp"), vec![0u8; 100]).expect("write");
    let (wal, _) = open(&dir, SnapshotMarker::default()).expect("open");
    drop(wal);
    assert!(
        files(&dir).iter().all(|n| n.ends_with(".wal")),
        "{:?}",
        files(&dir)
    );
}

#[test]
fn exists_and_snapshot_markers_for_choosing_where_to_restart() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = wal_dir(&tmp);
    assert!(!keel_wal::exists(&StdDisk, &dir).expect("missing dir"));
    fs::create_dir_all(&dir).expect("mkdir");
    assert!(!keel_wal::exists(&StdDisk, &dir).expect("empty dir"));
    let mut wal = Wal::create(StdDisk, &dir, b"m", config()).expect("create");
    assert!(keel_wal::exists(&StdDisk, &dir).expect("created"));

    let all: Vec<Entry> = (1..=300).map(|i| entry(1, i)).collect();
    for chunk in all.chunks(30) {
        wal.save(None, chunk).expect("save");
    }
    let early = SnapshotMarker {
        index: 100,
        term: 1,
    };
    let applied = SnapshotMarker {
        index: 200,
        term: 1,
    };
    let ahead = SnapshotMarker {
        index: 280,
        term: 1,
    };
    wal.save_snapshot(early).expect("snap");
    wal.save_snapshot(applied).expect("snap");
    wal.save(
        Some(HardState {
            term: 1,
            vote: 1,
            commit: 250,
        }),
        &[],
    )
    .expect("commit");
    wal.save_snapshot(ahead).expect("snap");
    assert!(
        wal.segment_names().len() > 2,
        "markers are read across segments"
    );
    drop(wal);

    let markers = keel_wal::snapshot_markers(&StdDisk, &dir).expect("markers");
    assert_eq!(
        markers,
        vec![SnapshotMarker::default(), early, applied],
        "a marker beyond the last saved commit index is not a valid restart point"
    );
}

#[test]
fn a_second_writer_is_refused_while_the_log_is_open() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = wal_dir(&tmp);
    let mut wal = Wal::create(StdDisk, &dir, b"m", config()).expect("create");
    assert!(matches!(
        open(&dir, SnapshotMarker::default()),
        Err(WalError::Locked(_))
    ));
    while wal.segment_names().len() < 3 {
        let next = wal.last_index() + 1;
        wal.save(None, &[entry(1, next)]).expect("save");
    }
    assert!(
        matches!(
            open(&dir, SnapshotMarker::default()),
            Err(WalError::Locked(_))
        ),
        "every segment stays locked across cuts"
    );
    drop(wal);
    let (_wal, replay) = open(&dir, SnapshotMarker::default()).expect("lock released on drop");
    assert!(!replay.entries.is_empty());
    assert!(matches!(
        open(&dir, SnapshotMarker::default()),
        Err(WalError::Locked(_))
    ));
}

/// An entry batch that would leave a hole after the last index is refused before it is
/// written: written, it would make every later open fail with an index gap.
#[test]
#[should_panic(expected = "would leave a gap after index 3")]
fn a_batch_that_skips_indices_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = wal_dir(&tmp);
    let mut wal = Wal::create(StdDisk, &dir, b"node-1", config()).expect("create");
    wal.save(None, &[entry(1, 1), entry(1, 2), entry(1, 3)])
        .expect("save");
    let _ = wal.save(None, &[entry(1, 5)]);
}
