//! The segment decoder must never panic, and whatever it accepts must re-encode to the
//! very same bytes (so nothing it accepts was misread).
#![no_main]

use keel_wal::record::{Decoder, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut decoder = Decoder::new(data);
    let mut reencoded = Vec::new();
    let mut crc = 0;
    loop {
        match decoder.next_record() {
            Ok(Some(d)) => {
                assert_eq!(d.offset as usize, reencoded.len(), "records are contiguous");
                crc = encode(&d.record, crc, &mut reencoded).expect("a decoded record re-encodes");
                assert_eq!(d.end as usize, reencoded.len(), "record length matches");
                assert_eq!(Some(crc), decoder.running_crc(), "chained crc matches");
            }
            Ok(None) => {
                assert!(data[reencoded.len()..].iter().all(|&b| b == 0), "clean end only before zeros");
                break;
            }
            Err(e) => {
                assert_eq!(e.offset as usize, reencoded.len(), "error at the failing record");
                let _ = e.is_torn_tail(data);
                break;
            }
        }
    }
    assert_eq!(&data[..reencoded.len()], &reencoded[..], "decoded bytes re-encode identically");

    // The same bytes as a continuation of an earlier segment.
    let seed = data.iter().take(4).fold(0u32, |acc, &b| acc.rotate_left(8) ^ u32::from(b));
    let mut cont = Decoder::continuing(data, seed);
    for _ in 0..4096 {
        match cont.next_record() {
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
});
