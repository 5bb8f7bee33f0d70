//! The durable form of a lease: what the server stores in the backend, in the same
//! transaction as the key-value data the entry changed. The byte format is specified
//! in the crate docs ("Lease record, version 1").

use crate::{DecodeError, LeaseId};

/// Version byte of the only record format so far.
pub const RECORD_VERSION: u8 = 1;
/// Length of an encoded version-1 record, in bytes.
pub const RECORD_LEN_BYTES: usize = 29;
/// Bytes covered by the checksum (everything before it).
const CHECKED_LEN_BYTES: usize = 25;

/// A lease's replicated, durable state. Attached keys are not in it: they are
/// recovered from the key-value store (each key records its lease), as in etcd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseRecord {
    /// The lease.
    pub id: LeaseId,
    /// Granted TTL in seconds, already raised to the minimum TTL.
    pub ttl_secs: i64,
    /// Remaining TTL at the last applied checkpoint, in seconds; 0 means none since
    /// the last grant or renew, i.e. the full `ttl_secs`.
    pub remaining_ttl_secs: i64,
}

impl LeaseRecord {
    /// The backend key for this lease: the id as 8 bytes, big-endian two's
    /// complement (etcd's lease bucket uses the same key).
    #[must_use]
    pub fn key(&self) -> [u8; 8] {
        self.id.to_key()
    }

    fn fields_valid(id: i64, ttl_secs: i64, remaining_ttl_secs: i64) -> bool {
        id != 0 && ttl_secs >= 1 && (0..=ttl_secs).contains(&remaining_ttl_secs)
    }

    /// Encodes the record (version 1). Panics if the record breaks its invariants,
    /// which the lessor never produces.
    #[must_use]
    pub fn encode(&self) -> [u8; RECORD_LEN_BYTES] {
        assert!(
            Self::fields_valid(self.id.get(), self.ttl_secs, self.remaining_ttl_secs),
            "encoding an invalid lease record: {self:?}"
        );
        let mut out = [0u8; RECORD_LEN_BYTES];
        out[0] = RECORD_VERSION;
        out[1..9].copy_from_slice(&self.id.get().to_be_bytes());
        out[9..17].copy_from_slice(&self.ttl_secs.to_be_bytes());
        out[17..25].copy_from_slice(&self.remaining_ttl_secs.to_be_bytes());
        let crc = crc32c::crc32c(&out[..CHECKED_LEN_BYTES]);
        out[25..29].copy_from_slice(&crc.to_be_bytes());
        out
    }

    /// Decodes a record written by [`LeaseRecord::encode`], checking its version,
    /// length, checksum and the same invariants `encode` asserts.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let Some(&version) = bytes.first() else {
            return Err(DecodeError::Length {
                len: 0,
                expected: RECORD_LEN_BYTES,
            });
        };
        if version != RECORD_VERSION {
            return Err(DecodeError::Version(version));
        }
        let bytes: &[u8; RECORD_LEN_BYTES] = bytes.try_into().map_err(|_| DecodeError::Length {
            len: bytes.len(),
            expected: RECORD_LEN_BYTES,
        })?;
        let stored = u32::from_be_bytes(word(bytes, 25));
        let computed = crc32c::crc32c(&bytes[..CHECKED_LEN_BYTES]);
        if stored != computed {
            return Err(DecodeError::Checksum { stored, computed });
        }
        let id = i64::from_be_bytes(dword(bytes, 1));
        let ttl_secs = i64::from_be_bytes(dword(bytes, 9));
        let remaining_ttl_secs = i64::from_be_bytes(dword(bytes, 17));
        match LeaseId::new(id) {
            Some(id) if Self::fields_valid(id.get(), ttl_secs, remaining_ttl_secs) => Ok(Self {
                id,
                ttl_secs,
                remaining_ttl_secs,
            }),
            _ => Err(DecodeError::Invalid {
                id,
                ttl_secs,
                remaining_ttl_secs,
            }),
        }
    }
}

fn dword(bytes: &[u8; RECORD_LEN_BYTES], at: usize) -> [u8; 8] {
    let mut out = [0u8; 8];
    out.copy_from_slice(&bytes[at..at + 8]);
    out
}

fn word(bytes: &[u8; RECORD_LEN_BYTES], at: usize) -> [u8; 4] {
    let mut out = [0u8; 4];
    out.copy_from_slice(&bytes[at..at + 4]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record(id: i64, ttl_secs: i64, remaining_ttl_secs: i64) -> LeaseRecord {
        LeaseRecord {
            id: LeaseId::new(id).expect("test ids are nonzero"),
            ttl_secs,
            remaining_ttl_secs,
        }
    }

    #[test]
    fn layout_is_version_id_ttl_remaining_crc_big_endian() {
        let bytes = record(0x0102_0304_0506_0708, 60, 17).encode();
        assert_eq!(bytes[0], 1);
        assert_eq!(&bytes[1..9], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&bytes[9..17], &60i64.to_be_bytes());
        assert_eq!(&bytes[17..25], &17i64.to_be_bytes());
        assert_eq!(&bytes[25..29], &crc32c::crc32c(&bytes[..25]).to_be_bytes());
        assert_eq!(record(-2, 5, 0).key(), (-2i64).to_be_bytes());
    }

    #[test]
    fn decode_rejects_damage_and_unknown_versions() {
        let good = record(7, 30, 0).encode();
        let mut flipped = good;
        flipped[12] ^= 0x40;
        assert!(matches!(
            LeaseRecord::decode(&flipped),
            Err(DecodeError::Checksum { .. })
        ));
        let mut v2 = good;
        v2[0] = 2;
        assert_eq!(LeaseRecord::decode(&v2), Err(DecodeError::Version(2)));
        assert_eq!(
            LeaseRecord::decode(&good[..28]),
            Err(DecodeError::Length {
                len: 28,
                expected: 29
            })
        );
        assert_eq!(
            LeaseRecord::decode(&[]),
            Err(DecodeError::Length {
                len: 0,
                expected: 29
            })
        );
    }

    #[test]
    fn decode_rejects_what_encode_would_refuse() {
        let mut bytes = record(7, 30, 0).encode();
        bytes[17..25].copy_from_slice(&31i64.to_be_bytes());
        let crc = crc32c::crc32c(&bytes[..25]);
        bytes[25..29].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(
            LeaseRecord::decode(&bytes),
            Err(DecodeError::Invalid {
                id: 7,
                ttl_secs: 30,
                remaining_ttl_secs: 31
            })
        );
    }

    #[test]
    #[should_panic(expected = "encoding an invalid lease record")]
    fn encode_asserts_remaining_within_ttl() {
        let _ = record(7, 30, 31).encode();
    }

    proptest! {
        #[test]
        fn round_trips(id in any::<i64>().prop_filter("nonzero", |id| *id != 0),
                       ttl in 1i64..=crate::MAX_LEASE_TTL_SECS,
                       frac in 0.0f64..=1.0) {
            #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
            let remaining = ((ttl as f64) * frac) as i64;
            let remaining = remaining.clamp(0, ttl);
            let r = record(id, ttl, remaining);
            prop_assert_eq!(LeaseRecord::decode(&r.encode()), Ok(r));
        }
    }
}
