//! The stored record ([`KeyValue`]) and its backend value encoding (format version 1).

use crate::error::MvccError;

/// A key's state at one revision, as etcd's `mvccpb.KeyValue`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct KeyValue {
    /// The key; never empty for a stored record.
    pub key: Vec<u8>,
    /// Revision of the put that started the key's current generation.
    pub create_revision: i64,
    /// Revision of the last change of the key.
    pub mod_revision: i64,
    /// Number of puts in the key's current generation (1 after creation).
    pub version: i64,
    /// The value.
    pub value: Vec<u8>,
    /// Lease the key is attached to, 0 for none.
    pub lease: i64,
}

/// Value format version written in byte 0 of every record.
pub const RECORD_FORMAT_VERSION: u8 = 1;
const FLAG_TOMBSTONE: u8 = 0b0000_0001;
const HEADER_BYTES: usize = 2 + 4 * 8 + 4;

/// A decoded backend record: the key-value and whether it marks a deletion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// For a tombstone only `key` and `mod_revision` are set.
    pub kv: KeyValue,
    /// The record marks the deletion of `kv.key` at `kv.mod_revision`.
    pub tombstone: bool,
}

impl Record {
    /// Encodes as documented in the crate docs ("Record value").
    pub fn encode(&self) -> Vec<u8> {
        let kv = &self.kv;
        assert!(!kv.key.is_empty(), "records always have a key");
        if self.tombstone {
            assert!(
                kv.value.is_empty() && kv.create_revision == 0 && kv.version == 0,
                "a tombstone carries only its key and revision"
            );
        }
        let key_len = u32::try_from(kv.key.len()).expect("keys are far below 4 GiB");
        let mut out = Vec::with_capacity(HEADER_BYTES + kv.key.len() + kv.value.len());
        out.push(RECORD_FORMAT_VERSION);
        out.push(if self.tombstone { FLAG_TOMBSTONE } else { 0 });
        for n in [kv.create_revision, kv.mod_revision, kv.version, kv.lease] {
            out.extend_from_slice(&n.to_be_bytes());
        }
        out.extend_from_slice(&key_len.to_be_bytes());
        out.extend_from_slice(&kv.key);
        out.extend_from_slice(&kv.value);
        out
    }

    /// Appends the value etcd keeps in its `key` bucket for this record: the
    /// `mvccpb.KeyValue` protobuf (proto3, zero fields omitted, fields in number
    /// order), which for a tombstone holds only the key. Hashing these bytes makes
    /// [`crate::Store::hash_kv`] give the same number as etcd's `HashKV`.
    pub fn encode_etcd_value(&self, out: &mut Vec<u8>) {
        let kv = &self.kv;
        put_bytes_field(out, 1, &kv.key);
        if self.tombstone {
            return;
        }
        put_int_field(out, 2, kv.create_revision);
        put_int_field(out, 3, kv.mod_revision);
        put_int_field(out, 4, kv.version);
        put_bytes_field(out, 5, &kv.value);
        put_int_field(out, 6, kv.lease);
    }

    /// Decodes [`Record::encode`]; a record that does not parse is corruption.
    pub fn decode(bytes: &[u8]) -> Result<Self, MvccError> {
        let corrupt = |why: &str| MvccError::Corrupt(format!("record: {why}"));
        if bytes.len() < HEADER_BYTES {
            return Err(corrupt("shorter than its header"));
        }
        if bytes[0] != RECORD_FORMAT_VERSION {
            return Err(corrupt(&format!("unknown format version {}", bytes[0])));
        }
        let flags = bytes[1];
        if flags & !FLAG_TOMBSTONE != 0 {
            return Err(corrupt(&format!("unknown flags {flags:#x}")));
        }
        let int = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            i64::from_be_bytes(b)
        };
        let mut len = [0u8; 4];
        len.copy_from_slice(&bytes[34..38]);
        let key_len = usize::try_from(u32::from_be_bytes(len))
            .map_err(|_| corrupt("key length overflows usize"))?;
        let key_end = HEADER_BYTES
            .checked_add(key_len)
            .filter(|end| *end <= bytes.len())
            .ok_or_else(|| corrupt("key runs past the record"))?;
        if key_len == 0 {
            return Err(corrupt("empty key"));
        }
        Ok(Self {
            kv: KeyValue {
                key: bytes[HEADER_BYTES..key_end].to_vec(),
                create_revision: int(2),
                mod_revision: int(10),
                version: int(18),
                value: bytes[key_end..].to_vec(),
                lease: int(26),
            },
            tombstone: flags & FLAG_TOMBSTONE != 0,
        })
    }
}

/// Protobuf wire types used by [`Record::encode_etcd_value`].
const WIRE_VARINT: u8 = 0;
const WIRE_LEN: u8 = 2;

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n & 0x7f) as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn put_int_field(out: &mut Vec<u8>, field: u8, n: i64) {
    if n != 0 {
        out.push(field << 3 | WIRE_VARINT);
        // int64 goes on the wire as its two's complement, sign-extended to 64 bits.
        put_varint(out, n as u64);
    }
}

fn put_bytes_field(out: &mut Vec<u8>, field: u8, bytes: &[u8]) {
    if !bytes.is_empty() {
        out.push(field << 3 | WIRE_LEN);
        put_varint(out, bytes.len() as u64);
        out.extend_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let put = Record {
            kv: KeyValue {
                key: b"foo".to_vec(),
                create_revision: 2,
                mod_revision: 7,
                version: 3,
                value: b"bar".to_vec(),
                lease: -5,
            },
            tombstone: false,
        };
        let del = Record {
            kv: KeyValue {
                key: b"foo".to_vec(),
                mod_revision: 9,
                ..KeyValue::default()
            },
            tombstone: true,
        };
        for rec in [put, del] {
            assert_eq!(Record::decode(&rec.encode()).expect("decodes"), rec);
        }
    }

    #[test]
    fn corrupt_records_are_rejected() {
        let good = Record {
            kv: KeyValue {
                key: b"k".to_vec(),
                mod_revision: 1,
                create_revision: 1,
                version: 1,
                ..KeyValue::default()
            },
            tombstone: false,
        }
        .encode();
        assert!(Record::decode(&good[..10]).is_err());
        let mut bad_version = good.clone();
        bad_version[0] = 9;
        assert!(Record::decode(&bad_version).is_err());
        let mut bad_len = good;
        bad_len[37] = 200;
        assert!(Record::decode(&bad_len).is_err());
    }
}
