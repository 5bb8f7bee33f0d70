//! The snapshot decoder must never panic, and what it accepts must re-encode identically.
#![no_main]

use keel_wal::{decode_snapshot, encode_snapshot};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(snap) = decode_snapshot(data) {
        assert_eq!(encode_snapshot(snap.marker, &snap.data), data);
    }
});
