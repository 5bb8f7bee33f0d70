//! Crash tests on the simulated disk: whatever a power loss leaves behind, reopening the
//! WAL yields every acknowledged batch, repairs a torn tail without calling it corruption,
//! and reports real corruption with the file and byte offset.

use std::path::Path;

use keel_wal::record::Decoder;
use keel_wal::{Disk, Entry, HardState, SimDisk, SnapshotMarker, Wal, WalConfig, WalError};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const SEEDS: u64 = 1000;

fn config() -> WalConfig {
    WalConfig {
        segment_size_bytes: keel_wal::MIN_SEGMENT_SIZE_BYTES,
    }
}

fn dir() -> &'static Path {
    Path::new("/data/member/wal")
}

fn entry(rng: &mut SmallRng, term: u64, index: u64) -> Entry {
    let len = if rng.random_bool(0.1) {
        rng.random_range(1000..3000)
    } else {
        rng.random_range(0..300)
    };
    Entry {
        term,
        index,
        kind: rng.random_range(0..2),
        data: (0..len).map(|_| rng.random()).collect(),
    }
}

/// `log` after Raft appended `batch`: entries from the batch's first index on are replaced.
fn apply(log: &[Entry], batch: &[Entry]) -> Vec<Entry> {
    let Some(first) = batch.first() else {
        return log.to_vec();
    };
    let keep = usize::try_from(first.index - 1).expect("small index");
    let mut out = log[..keep.min(log.len())].to_vec();
    out.extend_from_slice(batch);
    out
}

/// A leader's batch: either the next entries, or (as after an election) a new term
/// overwriting a short uncommitted tail.
fn next_batch(rng: &mut SmallRng, log: &[Entry], term: &mut u64) -> Vec<Entry> {
    let last = log.len() as u64;
    let start = if last > 3 && rng.random_bool(0.15) {
        *term += 1;
        rng.random_range(last - 2..=last)
    } else {
        last + 1
    };
    let n = rng.random_range(1..8);
    (0..n).map(|i| entry(rng, *term, start + i)).collect()
}

struct Outcome {
    /// Entries and hard state as of the last save that returned `Ok`.
    acked: Vec<Entry>,
    acked_state: HardState,
    /// The save that failed (its sync never happened), if one did.
    failed: Option<(Vec<Entry>, HardState)>,
}

/// Writes random batches until a sync fails (the machine "dies" there) or the run ends.
fn write_until_crash(
    rng: &mut SmallRng,
    wal: &mut Wal<SimDisk>,
    mut log: Vec<Entry>,
    mut state: HardState,
) -> Outcome {
    let mut term = state.term.max(1);
    for _ in 0..rng.random_range(1..40) {
        if rng.random_bool(0.2) {
            // Commit-only change: etcd's MustSync says no fsync is needed.
            let next = HardState {
                commit: log.len() as u64,
                ..state
            };
            match wal.save(Some(next), &[]) {
                Ok(stats) => {
                    // Only a segment cut (due after a replayed overfull tail) syncs here.
                    assert!(
                        stats.fsync_count == 0 || stats.segment_cut,
                        "a commit-only change must not sync"
                    );
                    state = next;
                }
                Err(_) => {
                    return Outcome {
                        acked: log,
                        acked_state: state,
                        failed: Some((Vec::new(), next)),
                    };
                }
            }
            continue;
        }
        let batch = next_batch(rng, &log, &mut term);
        let next_state = HardState {
            term,
            vote: 1,
            commit: batch[0].index - 1,
        };
        match wal.save(Some(next_state), &batch) {
            Ok(stats) => {
                assert!(stats.fsync_count >= 1, "entries must be synced");
                log = apply(&log, &batch);
                state = next_state;
            }
            Err(e) => {
                assert!(matches!(e, WalError::Io { .. }), "unexpected error {e}");
                assert!(matches!(wal.save(None, &batch), Err(WalError::Poisoned)));
                return Outcome {
                    acked: log,
                    acked_state: state,
                    failed: Some((batch, next_state)),
                };
            }
        }
    }
    Outcome {
        acked: log,
        acked_state: state,
        failed: None,
    }
}

#[test]
fn every_acknowledged_batch_survives_a_crash_and_the_tail_is_repaired() {
    let mut torn_seen = 0;
    for seed in 0..SEEDS {
        let mut rng = SmallRng::seed_from_u64(seed);
        let disk = SimDisk::new();
        let mut wal = Wal::create(disk.clone(), dir(), b"cluster-7", config()).expect("create");
        let mut log = Vec::new();
        let mut state = HardState::default();
        for round in 0..3 {
            disk.fail_syncs_after(rng.random_range(0..60));
            let out = write_until_crash(&mut rng, &mut wal, log, state);
            drop(wal);
            disk.crash(seed * 10 + round);

            let (reopened, replay) =
                Wal::open_at(disk.clone(), dir(), SnapshotMarker::default(), config())
                    .unwrap_or_else(|e| panic!("seed {seed} round {round}: reopen failed: {e}"));
            assert_eq!(replay.metadata, b"cluster-7");
            torn_seen += usize::from(replay.torn_tail.is_some());
            // The replay is the acknowledged log plus some prefix of the failed batch.
            let failed_batch = out.failed.as_ref().map_or(&[][..], |(b, _)| &b[..]);
            let matches_prefix = (0..=failed_batch.len())
                .any(|k| replay.entries == apply(&out.acked, &failed_batch[..k]));
            assert!(
                matches_prefix,
                "seed {seed} round {round}: replayed {} entries, acked {}, failed batch {}",
                replay.entries.len(),
                out.acked.len(),
                failed_batch.len()
            );
            let votes_ok = replay.hard_state.term == out.acked_state.term
                && replay.hard_state.vote == out.acked_state.vote
                || out.failed.as_ref().is_some_and(|(_, s)| {
                    replay.hard_state.term == s.term && replay.hard_state.vote == s.vote
                });
            assert!(
                votes_ok,
                "seed {seed} round {round}: hard state {:?} lost",
                replay.hard_state
            );
            log = replay.entries;
            state = replay.hard_state;
            wal = reopened;
        }
        // After the last crash the log must still take appends and read back cleanly.
        let next = log.len() as u64 + 1;
        let tail = vec![entry(&mut rng, state.term.max(1), next)];
        wal.save(None, &tail).expect("append after repair");
        drop(wal);
        let (_, replay) = Wal::open_at(disk.clone(), dir(), SnapshotMarker::default(), config())
            .expect("clean reopen");
        assert_eq!(
            replay.torn_tail, None,
            "seed {seed}: clean shutdown left a torn tail"
        );
        assert_eq!(replay.entries, apply(&log, &tail), "seed {seed}");
    }
    assert!(
        torn_seen > 0,
        "no seed produced a torn tail: the test exercises nothing"
    );
}

/// Offsets of every record in a segment's bytes, and where the valid records end.
fn record_offsets(bytes: &[u8]) -> Vec<(u64, u64)> {
    let mut d = Decoder::new(bytes);
    let mut out = Vec::new();
    while let Ok(Some(r)) = d.next_record() {
        out.push((r.offset, r.end));
    }
    out
}

#[test]
fn a_flipped_byte_before_the_tail_is_corruption_naming_file_and_offset() {
    for seed in 0..SEEDS {
        let mut rng = SmallRng::seed_from_u64(seed);
        let disk = SimDisk::new();
        let mut wal = Wal::create(disk.clone(), dir(), b"m", config()).expect("create");
        let mut log = Vec::new();
        let mut term = 1;
        for _ in 0..rng.random_range(2..30) {
            let batch = next_batch(&mut rng, &log, &mut term);
            wal.save(
                Some(HardState {
                    term,
                    vote: 2,
                    commit: 0,
                }),
                &batch,
            )
            .expect("save");
            log = apply(&log, &batch);
        }
        let names = wal.segment_names();
        drop(wal);

        // Pick a byte in a record that has a valid record after it (the last record of the
        // last segment is indistinguishable from a torn write, see the crate docs).
        let which = rng.random_range(0..names.len());
        let path = dir().join(&names[which]);
        let bytes = disk.read(&path).expect("read segment");
        let mut records = record_offsets(&bytes);
        if which == names.len() - 1 {
            records.pop();
        }
        if records.is_empty() {
            continue;
        }
        let (start, end) = records[rng.random_range(0..records.len())];
        let at = rng.random_range(start..end);
        disk.corrupt(&path, at, 1 << rng.random_range(0..8))
            .expect("corrupt");

        let err = Wal::open_at(disk.clone(), dir(), SnapshotMarker::default(), config())
            .expect_err("corruption must be reported");
        match &err {
            WalError::Corrupt { file, offset, .. } => {
                assert_eq!(file, &path, "seed {seed}");
                assert!(
                    *offset <= at && at < end,
                    "seed {seed}: error at {offset}, flip at {at}"
                );
            }
            other => panic!("seed {seed}: expected corruption, got {other}"),
        }
        let msg = err.to_string();
        assert!(
            msg.contains(&names[which]) && msg.contains("byte offset"),
            "{msg}"
        );
        assert!(
            keel_wal::read_all(&disk, dir(), SnapshotMarker::default()).is_err(),
            "read-only replay must fail the same way"
        );
    }
}

#[test]
fn the_simulated_disk_enforces_the_writer_lock_until_a_crash() {
    let disk = SimDisk::new();
    let wal = Wal::create(disk.clone(), dir(), b"m", config()).expect("create");
    assert!(matches!(
        Wal::open_at(disk.clone(), dir(), SnapshotMarker::default(), config()),
        Err(WalError::Locked(_))
    ));
    drop(wal);
    let second =
        Wal::open_at(disk.clone(), dir(), SnapshotMarker::default(), config()).expect("free");
    // The process dies with the log open: nothing of it runs again, not even its drop.
    std::mem::forget(second);
    disk.crash(1);
    Wal::open_at(disk.clone(), dir(), SnapshotMarker::default(), config())
        .expect("a crash releases locks");
}
