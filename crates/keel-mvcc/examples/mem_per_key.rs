//! Memory per key: loads N keys (default 1,000,000) with 256-byte values and reports
//! the resident-set growth per key, first of the bare key index, then of a whole store.
//!
//! `cargo run -p keel-mvcc --profile ci --example mem_per_key [-- <keys>]` (Linux: reads
//! `/proc/self/status`).

use std::time::Instant;

use keel_mvcc::index::TreeIndex;
use keel_mvcc::{ApplyIndex, BatchConfig, PutRequest, Revision, Store};

const VALUE_BYTES: usize = 256;

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS line");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("VmRSS value");
    kib * 1024
}

fn key(i: u64) -> Vec<u8> {
    format!("key-{i:08}").into_bytes()
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("key count"))
        .unwrap_or(1_000_000);
    let n_f = n as f64;

    let before = rss_bytes();
    let started = Instant::now();
    let mut index = TreeIndex::new();
    for i in 0..n {
        index.put(
            &key(i),
            Revision::new(i64::try_from(i).expect("fits") + 2, 0),
        );
    }
    let index_secs = started.elapsed().as_secs_f64();
    let index_bytes = rss_bytes().saturating_sub(before);
    println!(
        "index only: {n} keys in {index_secs:.2} s, {:.1} bytes/key (RSS delta {} MiB)",
        index_bytes as f64 / n_f,
        index_bytes >> 20
    );
    drop(index);

    let dir = std::env::temp_dir().join(format!("keel-mvcc-mem-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let before = rss_bytes();
    let started = Instant::now();
    let mut store = Store::open(&dir.join("db"), BatchConfig::default()).expect("open");
    let value = vec![b'v'; VALUE_BYTES];
    for i in 0..n {
        let req = PutRequest {
            key: key(i),
            value: value.clone(),
            ..PutRequest::default()
        };
        store.put(ApplyIndex::new(i + 1, 1), &req).expect("put");
    }
    store.force_commit().expect("commit");
    let elapsed = started.elapsed();
    let store_bytes = rss_bytes().saturating_sub(before);
    println!(
        "store: {n} keys of {VALUE_BYTES} B in {:.1} s ({:.0} puts/s), RSS delta {:.1} bytes/key ({} MiB), db file {} MiB, in use {} MiB",
        elapsed.as_secs_f64(),
        n_f / elapsed.as_secs_f64(),
        store_bytes as f64 / n_f,
        store_bytes >> 20,
        store.db_size_bytes().expect("size") >> 20,
        store.db_size_in_use_bytes().expect("in use") >> 20,
    );
    drop(store);
    // The freed store's memory is reused by the allocator, so only time is reported.
    let started = Instant::now();
    let reopened = Store::open(&dir.join("db"), BatchConfig::default()).expect("reopen");
    println!(
        "reopen (index rebuild) of {} keys: {:.1} s",
        reopened.index_keys(),
        started.elapsed().as_secs_f64(),
    );
    drop(reopened);
    std::fs::remove_dir_all(&dir).expect("remove temp dir");
}
