//! WAL append + fdatasync throughput by batch size, next to the machine's raw
//! write + fdatasync latency. Files go under Cargo's target tmp dir (a real disk, not tmpfs).

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use keel_wal::record::encode_entry;
use keel_wal::{Disk, DiskFile, Entry, SnapshotMarker, StdDisk, Wal, WalConfig, read_all};

const ENTRY_DATA_BYTES: usize = 256;
const BATCH_SIZES: [usize; 4] = [1, 10, 100, 1000];

fn bench_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("keel-wal-bench")
        .join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).expect("clear bench dir");
    }
    dir
}

fn configure(c: &mut Criterion) -> criterion::BenchmarkGroup<'_, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group("wal");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(4));
    g
}

/// What one small save costs the disk without the WAL: a 4 KiB write into a preallocated
/// file, then fdatasync.
fn raw_fdatasync(c: &mut Criterion) {
    let dir = bench_dir("raw");
    StdDisk.create_dir_all(&dir).expect("mkdir");
    let mut file = StdDisk.create_new(&dir.join("sync")).expect("create");
    let file_bytes: u64 = 64 * 1024 * 1024;
    file.preallocate(file_bytes).expect("preallocate");
    let block = vec![0xa5u8; 4096];
    let mut offset = 0u64;
    let mut g = configure(c);
    g.bench_function("write_4KiB_fdatasync", |b| {
        b.iter(|| {
            file.write_all_at(offset, &block).expect("write");
            file.sync_data().expect("fdatasync");
            offset = (offset + 4096) % file_bytes;
        });
    });
    g.finish();
    drop(file);
    std::fs::remove_dir_all(&dir).expect("clean up");
}

fn append_fsync(c: &mut Criterion) {
    for (label, bytes) in [("entries", false), ("bytes", true)] {
        let mut g = configure(c);
        for n in BATCH_SIZES {
            let dir = bench_dir(&format!("append-{label}-{n}"));
            let mut wal =
                Wal::create(StdDisk, &dir, b"bench", WalConfig::default()).expect("create");
            let mut batch: Vec<Entry> = (0..n)
                .map(|_| Entry {
                    term: 1,
                    index: 0,
                    kind: 0,
                    data: vec![0x5a; ENTRY_DATA_BYTES],
                })
                .collect();
            g.throughput(if bytes {
                Throughput::Bytes((n * ENTRY_DATA_BYTES) as u64)
            } else {
                Throughput::Elements(n as u64)
            });
            g.bench_with_input(
                BenchmarkId::new(format!("append_fsync_{label}"), n),
                &n,
                |b, _| {
                    b.iter(|| {
                        let next = wal.last_index() + 1;
                        for (k, e) in batch.iter_mut().enumerate() {
                            e.index = next + k as u64;
                        }
                        black_box(wal.save(None, &batch).expect("save"));
                    });
                },
            );
            drop(wal);
            std::fs::remove_dir_all(&dir).expect("clean up");
        }
        g.finish();
    }
}

/// CPU cost of framing and checksumming, without any IO.
fn encode_only(c: &mut Criterion) {
    let batch: Vec<Entry> = (0..1000)
        .map(|i| Entry {
            term: 1,
            index: i + 1,
            kind: 0,
            data: vec![0x5a; ENTRY_DATA_BYTES],
        })
        .collect();
    let mut buf = Vec::new();
    let mut g = configure(c);
    g.throughput(Throughput::Bytes((batch.len() * ENTRY_DATA_BYTES) as u64));
    g.bench_function("encode_1000_entries", |b| {
        b.iter(|| {
            buf.clear();
            let mut crc = 0;
            for e in &batch {
                crc = encode_entry(e, crc, &mut buf).expect("small entry");
            }
            black_box(crc)
        });
    });
    g.finish();
}

/// Startup cost: replaying 100k entries (about 31 MB in a single segment).
fn replay(c: &mut Criterion) {
    const ENTRIES: u64 = 100_000;
    let dir = bench_dir("replay");
    let mut wal = Wal::create(StdDisk, &dir, b"bench", WalConfig::default()).expect("create");
    for chunk in 0..ENTRIES / 1000 {
        let batch: Vec<Entry> = (0..1000)
            .map(|i| Entry {
                term: 1,
                index: chunk * 1000 + i + 1,
                kind: 0,
                data: vec![0x5a; ENTRY_DATA_BYTES],
            })
            .collect();
        wal.save(None, &batch).expect("save");
    }
    drop(wal);
    let mut g = configure(c);
    g.throughput(Throughput::Elements(ENTRIES));
    g.bench_function("replay_100k_entries", |b| {
        b.iter(|| {
            let replay = read_all(&StdDisk, &dir, SnapshotMarker::default()).expect("replay");
            assert_eq!(replay.entries.len() as u64, ENTRIES);
            black_box(replay)
        });
    });
    g.finish();
    std::fs::remove_dir_all(&dir).expect("clean up");
}

criterion_group!(benches, raw_fdatasync, append_fsync, encode_only, replay);
criterion_main!(benches);
