//! What each verb sends: validated settings and the request for the i-th
//! operation of a run.
//!
//! Keys are built as etcd's tool builds them, so a Keel run and an etcd run
//! touch the same key space: a buffer of `key_size` zero bytes starting with
//! the key number encoded as a Go signed varint (`binary.PutVarint`: zig-zag,
//! then 7 bits per byte, low group first, high bit set on all but the last
//! byte). etcd's tool reuses one buffer, so there a short number can keep
//! trailing bytes of a longer earlier one; here every key starts from zeros,
//! so a key number always names the same key. The number of a `put` key is
//! `i % key_space_size` with `--sequential-keys`, otherwise uniform in
//! `0..key_space_size`; the j-th put of the i-th `txn-put` uses key
//! `(i * txn_ops + j) % key_space_size`. Every request of a run carries the
//! same value, `val_size` random bytes drawn once. `txn-mixed` sends
//! one-operation transactions: a read (a range) with probability
//! `rw_ratio / (1 + rw_ratio)`, otherwise a put of key `i % key_space_size`,
//! as etcd's tool does; its reads and writes are reported as two sections. Settings are checked up
//! front ([`WorkloadError`]) so that a run never sends requests that are
//! certain to fail (a key too short for its number, a transaction putting one
//! key twice).

use keel_proto::etcdserverpb::{PutRequest, RangeRequest, RequestOp, TxnRequest, request_op};
use rand::rngs::SmallRng;
use rand::{Rng, RngCore};
use thiserror::Error;

/// Settings that cannot make a meaningful run.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum WorkloadError {
    /// `--key-size 0`: etcd rejects empty keys.
    #[error("--key-size must be at least 1 (etcd rejects empty keys)")]
    EmptyKey,
    /// `--key-space-size 0`.
    #[error("--key-space-size must be at least 1")]
    EmptyKeySpace,
    /// `--key-space-size` above what a Go `int64` key number can hold.
    #[error("--key-space-size {0} is larger than 2^63")]
    KeySpaceTooLarge(u64),
    /// The largest key number does not fit in `--key-size` bytes.
    #[error(
        "--key-size {key_size} is too small for --key-space-size {key_space_size}: key numbers need {needed} bytes"
    )]
    KeyTooSmall {
        /// `--key-size`.
        key_size: usize,
        /// `--key-space-size`.
        key_space_size: u64,
        /// Bytes the varint of the largest key number takes.
        needed: usize,
    },
    /// `--txn-ops 0`.
    #[error("--txn-ops must be at least 1")]
    NoTxnOps,
    /// More puts per transaction than distinct keys: etcd refuses a
    /// transaction that puts one key twice.
    #[error(
        "--txn-ops {txn_ops} exceeds --key-space-size {key_space_size}: a txn may not put one key twice"
    )]
    TxnOpsExceedKeySpace {
        /// `--txn-ops`.
        txn_ops: u64,
        /// `--key-space-size`.
        key_space_size: u64,
    },
    /// `--rw-ratio` negative or not a number.
    #[error("--rw-ratio must be a non-negative number, got {0}")]
    BadReadWriteRatio(String),
    /// `--consistency` other than `l` or `s`.
    #[error("--consistency must be l (linearizable) or s (serializable), got {0:?}")]
    BadConsistency(String),
}

/// Read consistency of `range`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    /// `l`: linearizable (ReadIndex on the leader).
    Linearizable,
    /// `s`: serializable (served from the member's local state).
    Serializable,
}

impl std::str::FromStr for Consistency {
    type Err = WorkloadError;

    fn from_str(s: &str) -> Result<Consistency, WorkloadError> {
        match s {
            "l" => Ok(Consistency::Linearizable),
            "s" => Ok(Consistency::Serializable),
            other => Err(WorkloadError::BadConsistency(other.to_string())),
        }
    }
}

/// How keys and values of a write workload are built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpace {
    key_size: usize,
    key_space_size: u64,
    value: Vec<u8>,
}

impl KeySpace {
    /// Checks that every key number below `key_space_size` fits in
    /// `key_size` bytes, and draws the value from `rng`.
    pub fn new(
        key_size: usize,
        key_space_size: u64,
        val_size: usize,
        rng: &mut SmallRng,
    ) -> Result<KeySpace, WorkloadError> {
        if key_size == 0 {
            return Err(WorkloadError::EmptyKey);
        }
        if key_space_size == 0 {
            return Err(WorkloadError::EmptyKeySpace);
        }
        if key_space_size > 1 << 63 {
            return Err(WorkloadError::KeySpaceTooLarge(key_space_size));
        }
        let needed = varint_len(key_space_size - 1);
        if needed > key_size {
            return Err(WorkloadError::KeyTooSmall {
                key_size,
                key_space_size,
                needed,
            });
        }
        let mut value = vec![0; val_size];
        rng.fill_bytes(&mut value);
        Ok(KeySpace {
            key_size,
            key_space_size,
            value,
        })
    }

    /// The key numbered `number` (below the key space size).
    pub fn key(&self, number: u64) -> Vec<u8> {
        assert!(
            number < self.key_space_size,
            "key number {number} outside the key space of {}",
            self.key_space_size
        );
        let mut key = vec![0; self.key_size];
        put_varint(&mut key, number);
        key
    }

    fn put(&self, number: u64) -> PutRequest {
        PutRequest {
            key: self.key(number),
            value: self.value.clone(),
            ..PutRequest::default()
        }
    }
}

/// One verb with its settings.
#[derive(Debug, Clone, PartialEq)]
pub enum Workload {
    /// `put`.
    Put {
        /// Keys and value.
        keys: KeySpace,
        /// `--sequential-keys`.
        sequential: bool,
    },
    /// `range KEY [END]`.
    Range {
        /// The request every operation sends.
        request: RangeRequest,
    },
    /// `txn-put`.
    TxnPut {
        /// Keys and value.
        keys: KeySpace,
        /// `--txn-ops`: puts per transaction.
        txn_ops: u64,
    },
    /// `txn-mixed`.
    TxnMixed {
        /// Keys and value of the writes.
        keys: KeySpace,
        /// Chance that an operation is a read: `rw_ratio / (1 + rw_ratio)`.
        read_probability: f64,
        /// The range every read sends.
        read: RangeRequest,
    },
}

/// Section names of a verb with a single section.
const ONE_SECTION: &[&str] = &["summary"];

/// `txn-mixed`'s sections, in the order etcd prints them.
const READ_WRITE_SECTIONS: &[&str] = &["read", "write"];

/// One request to send.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// `KV.Put`.
    Put(PutRequest),
    /// `KV.Range`.
    Range(RangeRequest),
    /// `KV.Txn`.
    Txn(TxnRequest),
}

impl Workload {
    /// `put`.
    pub fn put(keys: KeySpace, sequential: bool) -> Workload {
        Workload::Put { keys, sequential }
    }

    /// `range KEY [END]`; `limit` 0 means no limit.
    pub fn range(
        key: Vec<u8>,
        range_end: Option<Vec<u8>>,
        consistency: Consistency,
        limit: i64,
    ) -> Workload {
        Workload::Range {
            request: RangeRequest {
                key,
                range_end: range_end.unwrap_or_default(),
                limit,
                serializable: consistency == Consistency::Serializable,
                ..RangeRequest::default()
            },
        }
    }

    /// `txn-put`: `txn_ops` puts of distinct keys per transaction.
    pub fn txn_put(keys: KeySpace, txn_ops: u64) -> Result<Workload, WorkloadError> {
        if txn_ops == 0 {
            return Err(WorkloadError::NoTxnOps);
        }
        if txn_ops > keys.key_space_size {
            return Err(WorkloadError::TxnOpsExceedKeySpace {
                txn_ops,
                key_space_size: keys.key_space_size,
            });
        }
        Ok(Workload::TxnPut { keys, txn_ops })
    }

    /// `txn-mixed`: reads of `[\0, end_key)` (`end_key` empty: every key),
    /// at most `limit` keys each, and writes, `rw_ratio` reads per write.
    ///
    /// etcd's tool asks for the whole key space whatever `--end-key` says
    /// (its prefix option overrides the range end); here `--end-key` bounds
    /// the reads, and its empty default reads every key as etcd does.
    pub fn txn_mixed(
        keys: KeySpace,
        rw_ratio: f64,
        end_key: Vec<u8>,
        consistency: Consistency,
        limit: i64,
    ) -> Result<Workload, WorkloadError> {
        if !(rw_ratio.is_finite() && rw_ratio >= 0.0) {
            return Err(WorkloadError::BadReadWriteRatio(rw_ratio.to_string()));
        }
        let range_end = if end_key.is_empty() { vec![0] } else { end_key };
        Ok(Workload::TxnMixed {
            keys,
            read_probability: rw_ratio / (1.0 + rw_ratio),
            read: RangeRequest {
                key: vec![0],
                range_end,
                limit,
                serializable: consistency == Consistency::Serializable,
                ..RangeRequest::default()
            },
        })
    }

    /// Names of the report sections (also the JSON keys when there are
    /// several).
    pub fn sections(&self) -> &'static [&'static str] {
        match self {
            Workload::TxnMixed { .. } => READ_WRITE_SECTIONS,
            _ => ONE_SECTION,
        }
    }

    /// The section (an index into [`Workload::sections`]) `request` is
    /// reported in.
    pub fn section_of(&self, request: &Request) -> usize {
        match (self, request) {
            (Workload::TxnMixed { .. }, Request::Txn(txn)) => {
                let reads = txn
                    .success
                    .iter()
                    .all(|op| matches!(op.request, Some(request_op::Request::RequestRange(_))));
                if reads { 0 } else { 1 }
            }
            _ => 0,
        }
    }

    /// The request of operation number `index` (0-based) of the run.
    pub fn request(&self, index: u64, rng: &mut SmallRng) -> Request {
        match self {
            Workload::Put { keys, sequential } => {
                let number = if *sequential {
                    index % keys.key_space_size
                } else {
                    rng.random_range(0..keys.key_space_size)
                };
                Request::Put(keys.put(number))
            }
            Workload::Range { request } => Request::Range(request.clone()),
            Workload::TxnPut { keys, txn_ops } => {
                // Wrapping is harmless: the product only picks a starting key,
                // and `txn_ops <= key_space_size` keeps the keys distinct.
                let first = index.wrapping_mul(*txn_ops) % keys.key_space_size;
                let success = (0..*txn_ops)
                    .map(|j| RequestOp {
                        request: Some(request_op::Request::RequestPut(
                            keys.put((first + j) % keys.key_space_size),
                        )),
                    })
                    .collect();
                Request::Txn(TxnRequest {
                    success,
                    ..TxnRequest::default()
                })
            }
            Workload::TxnMixed {
                keys,
                read_probability,
                read,
            } => {
                let op = if rng.random::<f64>() < *read_probability {
                    request_op::Request::RequestRange(read.clone())
                } else {
                    request_op::Request::RequestPut(keys.put(index % keys.key_space_size))
                };
                Request::Txn(TxnRequest {
                    success: vec![RequestOp { request: Some(op) }],
                    ..TxnRequest::default()
                })
            }
        }
    }
}

/// Length in bytes of the Go signed varint of `number`.
fn varint_len(number: u64) -> usize {
    let zigzag = number << 1;
    let bits = 64 - zigzag.leading_zeros() as usize;
    bits.div_ceil(7).max(1)
}

/// Writes the Go signed varint of `number` (below 2^63) at the start of
/// `buf`, which must be long enough.
fn put_varint(buf: &mut [u8], number: u64) {
    assert!(number < 1 << 63, "key numbers are Go int64 values");
    let mut rest = number << 1;
    let mut at = 0;
    while rest >= 0x80 {
        buf[at] = (rest as u8 & 0x7f) | 0x80;
        rest >>= 7;
        at += 1;
    }
    buf[at] = rest as u8;
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn rng() -> SmallRng {
        SmallRng::seed_from_u64(7)
    }

    #[test]
    fn keys_are_go_signed_varints_in_zeroed_buffers() {
        let keys = KeySpace::new(8, 1 << 20, 4, &mut rng()).expect("valid settings");
        assert_eq!(keys.key(0), vec![0; 8]);
        assert_eq!(keys.key(1), vec![2, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(keys.key(63), vec![126, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(keys.key(64), vec![0x80, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(keys.key(300), vec![0xd8, 4, 0, 0, 0, 0, 0, 0]);
        assert_eq!(keys.value.len(), 4);
    }

    #[test]
    fn varint_length_matches_encoding() {
        for number in [0, 1, 63, 64, 8191, 8192, 1 << 40, (1 << 63) - 1] {
            let mut buf = [0xffu8; 10];
            put_varint(&mut buf, number);
            let used = buf.iter().position(|b| b & 0x80 == 0).expect("a last byte") + 1;
            assert_eq!(used, varint_len(number), "number {number}");
        }
    }

    #[test]
    fn settings_are_checked() {
        let mut r = rng();
        assert_eq!(KeySpace::new(0, 1, 8, &mut r), Err(WorkloadError::EmptyKey));
        assert_eq!(
            KeySpace::new(8, 0, 8, &mut r),
            Err(WorkloadError::EmptyKeySpace)
        );
        assert_eq!(
            KeySpace::new(1, 65, 8, &mut r),
            Err(WorkloadError::KeyTooSmall {
                key_size: 1,
                key_space_size: 65,
                needed: 2
            })
        );
        assert!(KeySpace::new(1, 64, 8, &mut r).is_ok());
        let keys = KeySpace::new(8, 3, 8, &mut r).expect("valid settings");
        assert_eq!(
            Workload::txn_put(keys.clone(), 4),
            Err(WorkloadError::TxnOpsExceedKeySpace {
                txn_ops: 4,
                key_space_size: 3
            })
        );
        assert_eq!(Workload::txn_put(keys, 0), Err(WorkloadError::NoTxnOps));
        assert_eq!(
            "x".parse::<Consistency>(),
            Err(WorkloadError::BadConsistency("x".to_string()))
        );
    }

    #[test]
    fn sequential_puts_cycle_through_the_key_space() {
        let keys = KeySpace::new(8, 3, 8, &mut rng()).expect("valid settings");
        let workload = Workload::put(keys.clone(), true);
        let mut r = rng();
        let got: Vec<Vec<u8>> = (0..5)
            .map(|i| match workload.request(i, &mut r) {
                Request::Put(put) => put.key,
                other => panic!("put workload built {other:?}"),
            })
            .collect();
        let want: Vec<Vec<u8>> = [0, 1, 2, 0, 1].iter().map(|&n| keys.key(n)).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn random_puts_stay_in_the_key_space_and_share_the_value() {
        let keys = KeySpace::new(8, 10, 16, &mut rng()).expect("valid settings");
        let allowed: Vec<Vec<u8>> = (0..10).map(|n| keys.key(n)).collect();
        let workload = Workload::put(keys.clone(), false);
        let mut r = rng();
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..500 {
            let Request::Put(put) = workload.request(i, &mut r) else {
                panic!("put workload built another request");
            };
            assert!(allowed.contains(&put.key), "key {:?}", put.key);
            assert_eq!(put.value, keys.value);
            seen.insert(put.key);
        }
        assert_eq!(seen.len(), 10, "500 uniform draws hit all 10 keys");
    }

    #[test]
    fn txn_put_uses_distinct_consecutive_keys() {
        let keys = KeySpace::new(8, 5, 8, &mut rng()).expect("valid settings");
        let workload = Workload::txn_put(keys.clone(), 3).expect("valid settings");
        let Request::Txn(txn) = workload.request(1, &mut rng()) else {
            panic!("txn-put workload built another request");
        };
        assert!(txn.compare.is_empty() && txn.failure.is_empty());
        let got: Vec<Vec<u8>> = txn
            .success
            .into_iter()
            .map(|op| match op.request {
                Some(request_op::Request::RequestPut(put)) => put.key,
                other => panic!("txn-put op is {other:?}"),
            })
            .collect();
        // Operation 1 with 3 ops per txn starts at key 3 and wraps at 5.
        assert_eq!(got, vec![keys.key(3), keys.key(4), keys.key(0)]);
    }

    #[test]
    fn txn_mixed_splits_reads_and_writes_by_the_ratio() {
        let keys = KeySpace::new(8, 4, 8, &mut rng()).expect("valid settings");
        let workload =
            Workload::txn_mixed(keys.clone(), 3.0, Vec::new(), Consistency::Serializable, 7)
                .expect("valid settings");
        assert_eq!(workload.sections(), &["read", "write"]);
        let mut r = rng();
        let mut per_section = [0u32; 2];
        for i in 0..4000 {
            let request = workload.request(i, &mut r);
            let section = workload.section_of(&request);
            per_section[section] += 1;
            let Request::Txn(txn) = request else {
                panic!("txn-mixed built another request");
            };
            assert_eq!(txn.success.len(), 1);
            match &txn.success[0].request {
                Some(request_op::Request::RequestRange(range)) => {
                    assert_eq!(section, 0);
                    assert_eq!(range.key, vec![0]);
                    assert_eq!(range.range_end, vec![0], "no --end-key reads every key");
                    assert_eq!(range.limit, 7);
                    assert!(range.serializable);
                }
                Some(request_op::Request::RequestPut(put)) => {
                    assert_eq!(section, 1);
                    assert_eq!(put.key, keys.key(i % 4), "writes cycle through the keys");
                }
                other => panic!("txn-mixed op is {other:?}"),
            }
        }
        // Three reads per write: about 3000 of 4000.
        assert!((2800..3200).contains(&per_section[0]), "{per_section:?}");

        let writes_only = Workload::txn_mixed(
            keys.clone(),
            0.0,
            b"z".to_vec(),
            Consistency::Linearizable,
            1,
        )
        .expect("valid settings");
        assert!((0..100).all(|i| {
            let request = writes_only.request(i, &mut r);
            writes_only.section_of(&request) == 1
        }));
        let Workload::TxnMixed { read, .. } = &writes_only else {
            panic!("txn_mixed built {writes_only:?}");
        };
        assert_eq!(read.range_end, b"z", "--end-key bounds the reads");
        assert!(!read.serializable);
        assert_eq!(
            Workload::txn_mixed(keys.clone(), -1.0, Vec::new(), Consistency::Linearizable, 1),
            Err(WorkloadError::BadReadWriteRatio("-1".to_string()))
        );
        assert!(
            Workload::txn_mixed(keys, f64::NAN, Vec::new(), Consistency::Linearizable, 1).is_err()
        );
    }

    #[test]
    fn range_request_carries_its_flags() {
        let workload = Workload::range(
            b"a".to_vec(),
            Some(b"b".to_vec()),
            Consistency::Serializable,
            10,
        );
        let Request::Range(range) = workload.request(0, &mut rng()) else {
            panic!("range workload built another request");
        };
        assert_eq!(range.key, b"a");
        assert_eq!(range.range_end, b"b");
        assert_eq!(range.limit, 10);
        assert!(range.serializable);
        let linearizable = Workload::range(b"a".to_vec(), None, Consistency::Linearizable, 0);
        let Request::Range(range) = linearizable.request(0, &mut rng()) else {
            panic!("range workload built another request");
        };
        assert!(range.range_end.is_empty() && !range.serializable && range.limit == 0);
    }
}
