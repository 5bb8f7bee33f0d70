//! Record types and the pure encoder/decoder for one segment's bytes.
//!
//! Nothing here touches a file: the encoder appends to a `Vec<u8>`, the decoder walks a
//! `&[u8]`. The byte format is specified in the crate docs; the constants below are the
//! single source of truth for it.

use std::fmt;

/// Version of the record format written into every record header.
pub const FORMAT_VERSION: u8 = 1;
/// Size of a record header in bytes.
pub const HEADER_BYTES: usize = 16;
/// Records start and end on this alignment.
pub const ALIGN_BYTES: usize = 8;
/// Largest payload a single record may carry. Bounds both what the encoder accepts and
/// what the decoder will believe from a header before it checks the bytes.
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024 * 1024;

const TYPE_METADATA: u8 = 1;
const TYPE_ENTRY: u8 = 2;
const TYPE_HARD_STATE: u8 = 3;
const TYPE_SNAPSHOT: u8 = 4;
const TYPE_CRC: u8 = 5;

/// Fixed part of an entry payload: term, index, kind.
const ENTRY_FIXED_BYTES: usize = 8 + 8 + 1;
const HARD_STATE_BYTES: usize = 24;
const SNAPSHOT_BYTES: usize = 16;
const CRC_BYTES: usize = 4;

/// One log entry. `kind` is opaque to the WAL (Raft uses it for normal vs. config change).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    pub term: u64,
    pub index: u64,
    pub kind: u8,
    pub data: Vec<u8>,
}

/// Raft's persistent state besides the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    pub term: u64,
    pub vote: u64,
    pub commit: u64,
}

impl HardState {
    /// etcd's `MustSync` rule: a changed term or vote must be durable before the node acts
    /// on it (answers a vote, for example); a commit index can always be recomputed.
    #[must_use]
    pub fn must_sync_after(&self, previous: &HardState) -> bool {
        self.term != previous.term || self.vote != previous.vote
    }
}

/// Marks that a snapshot at `index`/`term` was taken; replay starts after it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotMarker {
    pub index: u64,
    pub term: u64,
}

/// A decoded record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    Metadata(Vec<u8>),
    Entry(Entry),
    HardState(HardState),
    Snapshot(SnapshotMarker),
    /// The running CRC of everything before this segment.
    Crc(u32),
}

impl Record {
    fn type_byte(&self) -> u8 {
        match self {
            Record::Metadata(_) => TYPE_METADATA,
            Record::Entry(_) => TYPE_ENTRY,
            Record::HardState(_) => TYPE_HARD_STATE,
            Record::Snapshot(_) => TYPE_SNAPSHOT,
            Record::Crc(_) => TYPE_CRC,
        }
    }

    fn payload_len(&self) -> usize {
        match self {
            Record::Metadata(m) => m.len(),
            Record::Entry(e) => ENTRY_FIXED_BYTES.saturating_add(e.data.len()),
            Record::HardState(_) => HARD_STATE_BYTES,
            Record::Snapshot(_) => SNAPSHOT_BYTES,
            Record::Crc(_) => CRC_BYTES,
        }
    }

    fn write_payload(&self, out: &mut Vec<u8>) {
        match self {
            Record::Metadata(m) => out.extend_from_slice(m),
            Record::Entry(e) => write_entry(e, out),
            Record::HardState(h) => {
                out.extend_from_slice(&h.term.to_le_bytes());
                out.extend_from_slice(&h.vote.to_le_bytes());
                out.extend_from_slice(&h.commit.to_le_bytes());
            }
            Record::Snapshot(s) => {
                out.extend_from_slice(&s.index.to_le_bytes());
                out.extend_from_slice(&s.term.to_le_bytes());
            }
            Record::Crc(c) => out.extend_from_slice(&c.to_le_bytes()),
        }
    }
}

/// The encoder refuses a record whose payload exceeds [`MAX_PAYLOAD_BYTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("record payload of {len_bytes} bytes exceeds the limit of {MAX_PAYLOAD_BYTES} bytes")]
pub struct RecordTooLarge {
    pub len_bytes: usize,
}

fn padding_for(payload_len: usize) -> usize {
    (ALIGN_BYTES - payload_len % ALIGN_BYTES) % ALIGN_BYTES
}

fn header_check(first12: &[u8]) -> u32 {
    // A fixed seed keeps an all-zero header from ever passing its own check.
    crc32c::crc32c_append(0x4b45_454c, first12)
}

/// Appends `record` to `out`, chaining its CRC from `prev_crc`; returns the record's CRC,
/// which seeds the next record. For a [`Record::Crc`] the chain restarts from the value it
/// carries, which the caller sets to `prev_crc`.
pub fn encode(record: &Record, prev_crc: u32, out: &mut Vec<u8>) -> Result<u32, RecordTooLarge> {
    let seed = match record {
        Record::Crc(c) => *c,
        _ => prev_crc,
    };
    encode_raw(record.type_byte(), record.payload_len(), seed, out, |o| {
        record.write_payload(o);
    })
}

/// [`encode`] for an entry without copying it into a [`Record`] first.
pub fn encode_entry(
    entry: &Entry,
    prev_crc: u32,
    out: &mut Vec<u8>,
) -> Result<u32, RecordTooLarge> {
    let payload_len = ENTRY_FIXED_BYTES.saturating_add(entry.data.len());
    encode_raw(TYPE_ENTRY, payload_len, prev_crc, out, |o| {
        write_entry(entry, o);
    })
}

fn write_entry(e: &Entry, out: &mut Vec<u8>) {
    out.extend_from_slice(&e.term.to_le_bytes());
    out.extend_from_slice(&e.index.to_le_bytes());
    out.push(e.kind);
    out.extend_from_slice(&e.data);
}

fn encode_raw(
    type_byte: u8,
    payload_len: usize,
    seed: u32,
    out: &mut Vec<u8>,
    write_payload: impl FnOnce(&mut Vec<u8>),
) -> Result<u32, RecordTooLarge> {
    if payload_len > MAX_PAYLOAD_BYTES {
        return Err(RecordTooLarge {
            len_bytes: payload_len,
        });
    }
    let pad = padding_for(payload_len);
    let start = out.len();
    assert_eq!(
        start % ALIGN_BYTES,
        0,
        "records must be appended at aligned offsets"
    );
    let len_u32 =
        u32::try_from(payload_len).expect("payload length is bounded by MAX_PAYLOAD_BYTES");
    let pad_u8 = u8::try_from(pad).expect("padding is below ALIGN_BYTES");
    out.extend_from_slice(&len_u32.to_le_bytes());
    out.extend_from_slice(&[type_byte, pad_u8, FORMAT_VERSION, 0]);
    out.extend_from_slice(&[0; 8]);
    write_payload(out);
    assert_eq!(
        out.len() - start,
        HEADER_BYTES + payload_len,
        "payload writer must write exactly the announced length"
    );
    out.resize(out.len() + pad, 0);
    let crc = crc32c::crc32c_append(
        crc32c::crc32c_append(seed, &out[start..start + 8]),
        &out[start + HEADER_BYTES..],
    );
    out[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
    let check = header_check(&out[start..start + 12]);
    out[start + 12..start + 16].copy_from_slice(&check.to_le_bytes());
    assert_eq!(out.len() % ALIGN_BYTES, 0, "records must end aligned");
    Ok(crc)
}

/// Why a record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeErrorKind {
    /// Fewer than a header's bytes remain and they are not all zero.
    PartialHeader,
    /// The header is all zero but non-zero bytes follow later in the segment.
    ZeroHeader,
    /// The header's own checksum does not match.
    HeaderChecksum,
    /// The header checks but names a format version this code does not know.
    UnsupportedVersion(u8),
    /// The header checks but names an unknown record type.
    UnknownType(u8),
    /// The header checks but its reserved byte or padding length is wrong.
    BadHeader,
    /// The header checks but the record runs past the end of the segment.
    Truncated { end: u64 },
    /// The record's chained CRC does not match its bytes.
    CrcMismatch { end: u64 },
    /// A CRC record carries a running CRC different from the one computed so far.
    CrcChainBroken { expected: u32, found: u32 },
    /// The CRC matches but the payload has the wrong shape for its type.
    Malformed(&'static str),
}

impl fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeErrorKind::PartialHeader => write!(f, "partial record header"),
            DecodeErrorKind::ZeroHeader => write!(f, "zeroed record header followed by data"),
            DecodeErrorKind::HeaderChecksum => write!(f, "record header checksum mismatch"),
            DecodeErrorKind::UnsupportedVersion(v) => write!(f, "unsupported format version {v}"),
            DecodeErrorKind::UnknownType(t) => write!(f, "unknown record type {t}"),
            DecodeErrorKind::BadHeader => write!(f, "invalid record header fields"),
            DecodeErrorKind::Truncated { end } => {
                write!(f, "record runs past the end of the file (to byte {end})")
            }
            DecodeErrorKind::CrcMismatch { .. } => write!(f, "crc mismatch"),
            DecodeErrorKind::CrcChainBroken { expected, found } => write!(
                f,
                "crc chain broken: expected running crc {expected:#010x}, found {found:#010x}"
            ),
            DecodeErrorKind::Malformed(what) => write!(f, "malformed record: {what}"),
        }
    }
}

/// A decode failure at `offset`, the first byte of the record that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} at byte offset {offset}")]
pub struct DecodeError {
    pub offset: u64,
    pub kind: DecodeErrorKind,
}

impl DecodeError {
    /// Applies the torn-tail rule (see the crate docs) to a failure in the **last** segment:
    /// the failure is a torn write if nothing but zeros follows the bytes the failed write
    /// could have touched. Failures that a torn write cannot produce (a record whose CRC
    /// checks but whose content is invalid, a header that checks but is nonsensical, a
    /// zeroed header with data after it) are never torn.
    #[must_use]
    pub fn is_torn_tail(&self, segment: &[u8]) -> bool {
        let touched_end = match self.kind {
            DecodeErrorKind::PartialHeader | DecodeErrorKind::Truncated { .. } => {
                return true;
            }
            DecodeErrorKind::HeaderChecksum => self.offset.saturating_add(HEADER_BYTES as u64),
            DecodeErrorKind::CrcMismatch { end } => end,
            DecodeErrorKind::ZeroHeader
            | DecodeErrorKind::UnsupportedVersion(_)
            | DecodeErrorKind::UnknownType(_)
            | DecodeErrorKind::BadHeader
            | DecodeErrorKind::CrcChainBroken { .. }
            | DecodeErrorKind::Malformed(_) => return false,
        };
        let from = usize::try_from(touched_end).map_or(segment.len(), |e| e.min(segment.len()));
        all_zero(&segment[from..])
    }
}

fn all_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == 0)
}

/// A record together with where it sits in the segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub record: Record,
    /// Offset of the record's first header byte.
    pub offset: u64,
    /// Offset just past the record's padding.
    pub end: u64,
}

/// Walks the records of one segment. Never panics, whatever the input.
#[derive(Debug)]
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Running CRC; `None` until the first CRC record has been read.
    crc: Option<u32>,
    failed: bool,
}

impl<'a> Decoder<'a> {
    /// A decoder for the first segment of a read, which trusts its leading CRC record.
    #[must_use]
    pub fn new(buf: &'a [u8]) -> Self {
        Decoder {
            buf,
            pos: 0,
            crc: None,
            failed: false,
        }
    }

    /// A decoder for a segment that continues a chain ending in `running_crc`.
    #[must_use]
    pub fn continuing(buf: &'a [u8], running_crc: u32) -> Self {
        Decoder {
            buf,
            pos: 0,
            crc: Some(running_crc),
            failed: false,
        }
    }

    /// Offset just past the last record decoded successfully.
    #[must_use]
    pub fn position(&self) -> u64 {
        self.pos as u64
    }

    /// Running CRC after the last record decoded successfully.
    #[must_use]
    pub fn running_crc(&self) -> Option<u32> {
        self.crc
    }

    /// The next record; `Ok(None)` at a clean end (end of buffer, or nothing but zeros from
    /// an aligned record boundary onwards: unused preallocated space). After an error the
    /// decoder yields nothing more: every later call fails at the same position.
    pub fn next_record(&mut self) -> Result<Option<Decoded>, DecodeError> {
        if self.failed {
            return Err(self.error(DecodeErrorKind::Malformed("decoder already failed")));
        }
        let result = self.decode_one();
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    fn error(&self, kind: DecodeErrorKind) -> DecodeError {
        DecodeError {
            offset: self.pos as u64,
            kind,
        }
    }

    fn decode_one(&mut self) -> Result<Option<Decoded>, DecodeError> {
        let rest = &self.buf[self.pos..];
        if rest.is_empty() {
            return Ok(None);
        }
        if rest.len() < HEADER_BYTES {
            return if all_zero(rest) {
                Ok(None)
            } else {
                Err(self.error(DecodeErrorKind::PartialHeader))
            };
        }
        let header = &rest[..HEADER_BYTES];
        if all_zero(header) {
            return if all_zero(rest) {
                Ok(None)
            } else {
                Err(self.error(DecodeErrorKind::ZeroHeader))
            };
        }
        let stored_check = u32::from_le_bytes([header[12], header[13], header[14], header[15]]);
        if header_check(&header[..12]) != stored_check {
            return Err(self.error(DecodeErrorKind::HeaderChecksum));
        }
        let payload_len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let (type_byte, pad, version, reserved) =
            (header[4], header[5] as usize, header[6], header[7]);
        if version != FORMAT_VERSION {
            return Err(self.error(DecodeErrorKind::UnsupportedVersion(version)));
        }
        if !(TYPE_METADATA..=TYPE_CRC).contains(&type_byte) {
            return Err(self.error(DecodeErrorKind::UnknownType(type_byte)));
        }
        if reserved != 0 || pad != padding_for(payload_len) || payload_len > MAX_PAYLOAD_BYTES {
            return Err(self.error(DecodeErrorKind::BadHeader));
        }
        let record_len = HEADER_BYTES + payload_len + pad;
        let end = self.pos as u64 + record_len as u64;
        if record_len > rest.len() {
            return Err(self.error(DecodeErrorKind::Truncated { end }));
        }
        let stored_crc = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
        let body = &rest[HEADER_BYTES..record_len];
        let payload = &body[..payload_len];
        let seed = if type_byte == TYPE_CRC {
            read_u32(payload).ok_or_else(|| {
                self.error(DecodeErrorKind::Malformed(
                    "crc record has the wrong length",
                ))
            })?
        } else {
            match self.crc {
                Some(c) => c,
                None => {
                    return Err(self.error(DecodeErrorKind::Malformed(
                        "segment does not start with a crc record",
                    )));
                }
            }
        };
        let crc = crc32c::crc32c_append(crc32c::crc32c_append(seed, &header[..8]), body);
        if crc != stored_crc {
            return Err(self.error(DecodeErrorKind::CrcMismatch { end }));
        }
        let record = parse_payload(type_byte, payload)
            .map_err(|what| self.error(DecodeErrorKind::Malformed(what)))?;
        if let (Record::Crc(found), Some(expected)) = (&record, self.crc)
            && *found != expected
        {
            return Err(self.error(DecodeErrorKind::CrcChainBroken {
                expected,
                found: *found,
            }));
        }
        let offset = self.pos as u64;
        self.pos += record_len;
        self.crc = Some(crc);
        Ok(Some(Decoded {
            record,
            offset,
            end,
        }))
    }
}

fn read_u32(b: &[u8]) -> Option<u32> {
    let arr: [u8; 4] = b.try_into().ok()?;
    Some(u32::from_le_bytes(arr))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut arr = [0u8; 8];
    arr.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(arr)
}

fn parse_payload(type_byte: u8, p: &[u8]) -> Result<Record, &'static str> {
    match type_byte {
        TYPE_METADATA => Ok(Record::Metadata(p.to_vec())),
        TYPE_ENTRY => {
            if p.len() < ENTRY_FIXED_BYTES {
                return Err("entry payload too short");
            }
            Ok(Record::Entry(Entry {
                term: u64_at(p, 0),
                index: u64_at(p, 8),
                kind: p[16],
                data: p[ENTRY_FIXED_BYTES..].to_vec(),
            }))
        }
        TYPE_HARD_STATE => {
            if p.len() != HARD_STATE_BYTES {
                return Err("hard state payload has the wrong length");
            }
            Ok(Record::HardState(HardState {
                term: u64_at(p, 0),
                vote: u64_at(p, 8),
                commit: u64_at(p, 16),
            }))
        }
        TYPE_SNAPSHOT => {
            if p.len() != SNAPSHOT_BYTES {
                return Err("snapshot marker payload has the wrong length");
            }
            Ok(Record::Snapshot(SnapshotMarker {
                index: u64_at(p, 0),
                term: u64_at(p, 8),
            }))
        }
        TYPE_CRC => read_u32(p)
            .map(Record::Crc)
            .ok_or("crc record has the wrong length"),
        _ => Err("unknown record type"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_record() -> impl Strategy<Value = Record> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64).prop_map(Record::Metadata),
            (
                any::<u64>(),
                any::<u64>(),
                any::<u8>(),
                proptest::collection::vec(any::<u8>(), 0..300)
            )
                .prop_map(|(term, index, kind, data)| Record::Entry(Entry {
                    term,
                    index,
                    kind,
                    data
                })),
            (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(term, vote, commit)| {
                Record::HardState(HardState { term, vote, commit })
            }),
            (any::<u64>(), any::<u64>())
                .prop_map(|(index, term)| Record::Snapshot(SnapshotMarker { index, term })),
        ]
    }

    fn encode_segment(start_crc: u32, records: &[Record]) -> (Vec<u8>, u32) {
        let mut out = Vec::new();
        let mut crc = encode(&Record::Crc(start_crc), start_crc, &mut out).expect("small record");
        for r in records {
            crc = encode(r, crc, &mut out).expect("small record");
        }
        (out, crc)
    }

    fn decode_all(buf: &[u8]) -> Result<Vec<Record>, DecodeError> {
        let mut d = Decoder::new(buf);
        let mut out = Vec::new();
        while let Some(r) = d.next_record()? {
            out.push(r.record);
        }
        Ok(out)
    }

    proptest! {
        #[test]
        fn round_trip(start in any::<u32>(), records in proptest::collection::vec(arb_record(), 0..20)) {
            let (buf, last_crc) = encode_segment(start, &records);
            prop_assert_eq!(buf.len() % ALIGN_BYTES, 0);
            let mut d = Decoder::new(&buf);
            let mut got = Vec::new();
            while let Some(r) = d.next_record().expect("valid segment decodes") {
                prop_assert_eq!(r.offset % ALIGN_BYTES as u64, 0);
                got.push(r.record);
            }
            prop_assert_eq!(got.first(), Some(&Record::Crc(start)));
            prop_assert_eq!(&got[1..], &records[..]);
            prop_assert_eq!(d.running_crc(), Some(last_crc));
            prop_assert_eq!(d.position(), buf.len() as u64);
        }

        #[test]
        fn trailing_zeros_are_a_clean_end(records in proptest::collection::vec(arb_record(), 0..8), zeros in 0usize..100) {
            let (mut buf, _) = encode_segment(0, &records);
            let len = buf.len();
            buf.resize(len + zeros, 0);
            let mut d = Decoder::new(&buf);
            let mut n = 0;
            while d.next_record().expect("zeros after records are a clean end").is_some() {
                n += 1;
            }
            prop_assert_eq!(n, records.len() + 1);
            prop_assert_eq!(d.position(), len as u64);
        }

        #[test]
        fn any_single_byte_flip_is_detected(records in proptest::collection::vec(arb_record(), 1..8), at in any::<prop::sample::Index>(), bit in 0u8..8) {
            let (mut buf, _) = encode_segment(7, &records);
            let at = at.index(buf.len());
            buf[at] ^= 1 << bit;
            let err = decode_all(&buf).expect_err("a flipped bit must not decode");
            prop_assert!(err.offset <= at as u64, "error at {} reported after the flip at {}", err.offset, at);
        }

        #[test]
        fn torn_prefix_is_a_torn_tail(records in proptest::collection::vec(arb_record(), 1..8), cut in any::<prop::sample::Index>(), prealloc in 0usize..64) {
            let (full, _) = encode_segment(3, &records);
            let cut = cut.index(full.len());
            let mut buf = full[..cut].to_vec();
            buf.resize(cut + prealloc, 0);
            let mut d = Decoder::new(&buf);
            let mut got = Vec::new();
            loop {
                match d.next_record() {
                    Ok(Some(r)) => got.push(r.record),
                    Ok(None) => break,
                    Err(e) => {
                        prop_assert!(e.is_torn_tail(&buf), "{e} at cut {cut} not seen as torn");
                        break;
                    }
                }
            }
            // Missing bytes read back as zeros, so a record whose lost bytes were zeros
            // anyway decodes intact; what comes back is always a prefix of what was written.
            let mut written = vec![Record::Crc(3)];
            written.extend(records);
            prop_assert!(got.len() <= written.len() && written[..got.len()] == got[..]);
        }

        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512), seed in any::<u32>()) {
            let mut d = Decoder::continuing(&bytes, seed);
            for _ in 0..100 {
                match d.next_record() {
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
            let _ = DecodeError { offset: 0, kind: DecodeErrorKind::HeaderChecksum }.is_torn_tail(&bytes);
        }
    }

    #[test]
    fn flip_before_valid_records_is_not_torn() {
        let records: Vec<Record> = (1..=5)
            .map(|i| {
                Record::Entry(Entry {
                    term: 1,
                    index: i,
                    kind: 0,
                    data: vec![0xab; 40],
                })
            })
            .collect();
        let (mut buf, _) = encode_segment(0, &records);
        let second_entry = (HEADER_BYTES + 8) + (HEADER_BYTES + ENTRY_FIXED_BYTES + 40 + 7);
        buf[second_entry + HEADER_BYTES + 3] ^= 0x10;
        let err = decode_all(&buf).expect_err("flip must be detected");
        assert_eq!(err.offset, second_entry as u64);
        assert!(matches!(err.kind, DecodeErrorKind::CrcMismatch { .. }));
        assert!(
            !err.is_torn_tail(&buf),
            "data follows the bad record, so it is corruption"
        );
    }

    #[test]
    fn oversized_record_is_refused() {
        let e = Entry {
            data: vec![0; MAX_PAYLOAD_BYTES],
            ..Entry::default()
        };
        let mut out = Vec::new();
        assert_eq!(
            encode(&Record::Entry(e), 0, &mut out),
            Err(RecordTooLarge {
                len_bytes: MAX_PAYLOAD_BYTES + ENTRY_FIXED_BYTES
            })
        );
    }

    #[test]
    fn must_sync_follows_etcd() {
        let a = HardState {
            term: 1,
            vote: 2,
            commit: 3,
        };
        assert!(!HardState { commit: 9, ..a }.must_sync_after(&a));
        assert!(HardState { term: 2, ..a }.must_sync_after(&a));
        assert!(HardState { vote: 3, ..a }.must_sync_after(&a));
    }
}
