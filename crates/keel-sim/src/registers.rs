//! The replicated state machine of the simulated cluster: a map of `u64`
//! registers, and the byte formats of its commands and snapshots.
//!
//! Every write carries a client request id, unique in a run. The state
//! machine remembers which ids it applied, for two reasons: a proposal that
//! the network duplicated (or that a client's node forwarded twice) must not
//! take effect twice, and the final check that no acknowledged write was lost
//! looks the id up in the surviving state.
//!
//! # Command format (version 1), the data of a normal log entry
//!
//! All integers little-endian.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | version, `1` |
//! | 1 | 1 | kind: `1` write, `2` compare-and-set |
//! | 2 | 8 | request id |
//! | 10 | 8 | key |
//! | 18 | 8 | value (the new value) |
//! | 26 | 1 | compare-and-set only: `1` if an expected value follows, `0` if the key must be absent |
//! | 27 | 8 | compare-and-set only: expected value (zero when absent) |
//!
//! A write is 26 bytes, a compare-and-set 35. An empty entry is the new
//! leader's no-op and is not a command.
//!
//! # Snapshot format (version 1)
//!
//! | size | field |
//! |---|---|
//! | 1 | version, `1` |
//! | 4 | number of registers `n` |
//! | 16 × n | key, value pairs, keys ascending |
//! | 4 | number of applied request ids `m` |
//! | 8 × m | request ids, ascending |

use std::collections::{BTreeMap, BTreeSet};

const VERSION: u8 = 1;
const KIND_WRITE: u8 = 1;
const KIND_CAS: u8 = 2;
const WRITE_LEN: usize = 26;
const CAS_LEN: usize = 35;

/// A command that changes a register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Set `key` to `value`.
    Write {
        /// Client request id.
        request: u64,
        /// Register.
        key: u64,
        /// New value.
        value: u64,
    },
    /// Set `key` to `value` if it currently holds `expected`.
    CompareAndSet {
        /// Client request id.
        request: u64,
        /// Register.
        key: u64,
        /// Required current value (`None`: never written).
        expected: Option<u64>,
        /// New value.
        value: u64,
    },
}

/// Errors decoding a command or snapshot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Unknown format version.
    #[error("unsupported format version {0}")]
    Version(u8),
    /// Unknown command kind.
    #[error("unknown command kind {0}")]
    Kind(u8),
    /// Wrong length for the kind.
    #[error("expected {expected} bytes, got {got}")]
    Length {
        /// Required length.
        expected: usize,
        /// Actual length.
        got: usize,
    },
    /// The presence flag of an expected value is neither 0 nor 1.
    #[error("bad presence flag {0}")]
    Flag(u8),
    /// A snapshot ended early.
    #[error("snapshot truncated")]
    Truncated,
    /// Keys or request ids of a snapshot are not strictly ascending.
    #[error("snapshot not sorted")]
    Unsorted,
}

fn u64_at(buf: &[u8], at: usize) -> Result<u64, DecodeError> {
    let bytes: [u8; 8] = buf
        .get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .ok_or(DecodeError::Truncated)?;
    Ok(u64::from_le_bytes(bytes))
}

fn u32_at(buf: &[u8], at: usize) -> Result<u32, DecodeError> {
    let bytes: [u8; 4] = buf
        .get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .ok_or(DecodeError::Truncated)?;
    Ok(u32::from_le_bytes(bytes))
}

impl Command {
    /// The request id.
    pub fn request(&self) -> u64 {
        match *self {
            Command::Write { request, .. } | Command::CompareAndSet { request, .. } => request,
        }
    }

    /// Encodes the command (see the module docs).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(CAS_LEN);
        out.push(VERSION);
        match *self {
            Command::Write {
                request,
                key,
                value,
            } => {
                out.push(KIND_WRITE);
                out.extend_from_slice(&request.to_le_bytes());
                out.extend_from_slice(&key.to_le_bytes());
                out.extend_from_slice(&value.to_le_bytes());
                assert_eq!(out.len(), WRITE_LEN, "write encoding length");
            }
            Command::CompareAndSet {
                request,
                key,
                expected,
                value,
            } => {
                out.push(KIND_CAS);
                out.extend_from_slice(&request.to_le_bytes());
                out.extend_from_slice(&key.to_le_bytes());
                out.extend_from_slice(&value.to_le_bytes());
                out.push(u8::from(expected.is_some()));
                out.extend_from_slice(&expected.unwrap_or(0).to_le_bytes());
                assert_eq!(out.len(), CAS_LEN, "compare-and-set encoding length");
            }
        }
        out
    }

    /// Decodes a command (see the module docs).
    pub fn decode(buf: &[u8]) -> Result<Command, DecodeError> {
        let version = *buf.first().ok_or(DecodeError::Truncated)?;
        if version != VERSION {
            return Err(DecodeError::Version(version));
        }
        let kind = *buf.get(1).ok_or(DecodeError::Truncated)?;
        let expected_len = match kind {
            KIND_WRITE => WRITE_LEN,
            KIND_CAS => CAS_LEN,
            other => return Err(DecodeError::Kind(other)),
        };
        if buf.len() != expected_len {
            return Err(DecodeError::Length {
                expected: expected_len,
                got: buf.len(),
            });
        }
        let request = u64_at(buf, 2)?;
        let key = u64_at(buf, 10)?;
        let value = u64_at(buf, 18)?;
        if kind == KIND_WRITE {
            return Ok(Command::Write {
                request,
                key,
                value,
            });
        }
        let expected = match buf[26] {
            0 => None,
            1 => Some(u64_at(buf, 27)?),
            flag => return Err(DecodeError::Flag(flag)),
        };
        Ok(Command::CompareAndSet {
            request,
            key,
            expected,
            value,
        })
    }
}

/// What applying a command produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// A write took effect.
    Written,
    /// A compare-and-set ran; `true` if it swapped.
    Swapped(bool),
    /// The request id was applied before; nothing changed.
    Duplicate,
}

/// The register map.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registers {
    values: BTreeMap<u64, u64>,
    applied_requests: BTreeSet<u64>,
}

impl Registers {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `key`.
    pub fn read(&self, key: u64) -> Option<u64> {
        self.values.get(&key).copied()
    }

    /// Whether the write with this request id took effect.
    pub fn has_applied(&self, request: u64) -> bool {
        self.applied_requests.contains(&request)
    }

    /// Applies `command`.
    pub fn apply(&mut self, command: &Command) -> Applied {
        if !self.applied_requests.insert(command.request()) {
            return Applied::Duplicate;
        }
        match *command {
            Command::Write { key, value, .. } => {
                self.values.insert(key, value);
                Applied::Written
            }
            Command::CompareAndSet {
                key,
                expected,
                value,
                ..
            } => {
                let swap = self.read(key) == expected;
                if swap {
                    self.values.insert(key, value);
                }
                Applied::Swapped(swap)
            }
        }
    }

    /// Encodes the map as snapshot data (see the module docs).
    pub fn encode(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(9 + self.values.len() * 16 + self.applied_requests.len() * 8);
        out.push(VERSION);
        let registers = u32::try_from(self.values.len()).expect("fewer than 2^32 registers");
        out.extend_from_slice(&registers.to_le_bytes());
        for (key, value) in &self.values {
            out.extend_from_slice(&key.to_le_bytes());
            out.extend_from_slice(&value.to_le_bytes());
        }
        let requests =
            u32::try_from(self.applied_requests.len()).expect("fewer than 2^32 requests");
        out.extend_from_slice(&requests.to_le_bytes());
        for request in &self.applied_requests {
            out.extend_from_slice(&request.to_le_bytes());
        }
        out
    }

    /// Decodes snapshot data (see the module docs).
    pub fn decode(buf: &[u8]) -> Result<Registers, DecodeError> {
        let version = *buf.first().ok_or(DecodeError::Truncated)?;
        if version != VERSION {
            return Err(DecodeError::Version(version));
        }
        let mut at = 1;
        let registers = u32_at(buf, at)?;
        at += 4;
        let mut values = BTreeMap::new();
        for _ in 0..registers {
            let key = u64_at(buf, at)?;
            let value = u64_at(buf, at + 8)?;
            at += 16;
            if values
                .last_key_value()
                .is_some_and(|(&last, _)| last >= key)
            {
                return Err(DecodeError::Unsorted);
            }
            values.insert(key, value);
        }
        let requests = u32_at(buf, at)?;
        at += 4;
        let mut applied_requests = BTreeSet::new();
        for _ in 0..requests {
            let request = u64_at(buf, at)?;
            at += 8;
            if applied_requests.last().is_some_and(|&last| last >= request) {
                return Err(DecodeError::Unsorted);
            }
            applied_requests.insert(request);
        }
        if at != buf.len() {
            return Err(DecodeError::Length {
                expected: at,
                got: buf.len(),
            });
        }
        Ok(Registers {
            values,
            applied_requests,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip() {
        let commands = [
            Command::Write {
                request: 7,
                key: 1,
                value: u64::MAX,
            },
            Command::CompareAndSet {
                request: 8,
                key: 2,
                expected: None,
                value: 3,
            },
            Command::CompareAndSet {
                request: 9,
                key: 2,
                expected: Some(3),
                value: 4,
            },
        ];
        for command in commands {
            assert_eq!(Command::decode(&command.encode()), Ok(command));
        }
    }

    #[test]
    fn malformed_commands_are_rejected() {
        let write = Command::Write {
            request: 1,
            key: 1,
            value: 1,
        }
        .encode();
        assert_eq!(Command::decode(&[]), Err(DecodeError::Truncated));
        assert_eq!(
            Command::decode(&write[..10]),
            Err(DecodeError::Length {
                expected: 26,
                got: 10
            })
        );
        let mut bad = write.clone();
        bad[0] = 2;
        assert_eq!(Command::decode(&bad), Err(DecodeError::Version(2)));
        bad[0] = 1;
        bad[1] = 9;
        assert_eq!(Command::decode(&bad), Err(DecodeError::Kind(9)));
        let mut cas = Command::CompareAndSet {
            request: 1,
            key: 1,
            expected: None,
            value: 1,
        }
        .encode();
        cas[26] = 2;
        assert_eq!(Command::decode(&cas), Err(DecodeError::Flag(2)));
    }

    #[test]
    fn apply_follows_register_semantics_and_ignores_duplicates() {
        let mut r = Registers::new();
        let cas = |request, expected, value| Command::CompareAndSet {
            request,
            key: 5,
            expected,
            value,
        };
        assert_eq!(r.apply(&cas(1, Some(0), 1)), Applied::Swapped(false));
        assert_eq!(r.apply(&cas(2, None, 2)), Applied::Swapped(true));
        assert_eq!(r.read(5), Some(2));
        let write = Command::Write {
            request: 3,
            key: 5,
            value: 3,
        };
        assert_eq!(r.apply(&write), Applied::Written);
        assert_eq!(r.apply(&cas(4, Some(3), 4)), Applied::Swapped(true));
        assert_eq!(r.apply(&write), Applied::Duplicate);
        assert_eq!(r.read(5), Some(4));
        assert!(r.has_applied(3) && r.has_applied(1) && !r.has_applied(99));
    }

    #[test]
    fn snapshots_round_trip_and_reject_garbage() {
        let mut r = Registers::new();
        for i in 0..5 {
            r.apply(&Command::Write {
                request: 100 + i,
                key: i % 3,
                value: i,
            });
        }
        let data = r.encode();
        assert_eq!(Registers::decode(&data), Ok(r.clone()));
        assert_eq!(
            Registers::decode(&Registers::new().encode()),
            Ok(Registers::new())
        );
        assert_eq!(
            Registers::decode(&data[..data.len() - 1]),
            Err(DecodeError::Truncated)
        );
        let mut long = data.clone();
        long.push(0);
        assert!(matches!(
            Registers::decode(&long),
            Err(DecodeError::Length { .. })
        ));
        // Swap the first two keys: 0 then 1 becomes 1 then 0.
        let mut unsorted = data;
        unsorted[5..13].copy_from_slice(&1u64.to_le_bytes());
        unsorted[21..29].copy_from_slice(&0u64.to_le_bytes());
        assert_eq!(Registers::decode(&unsorted), Err(DecodeError::Unsorted));
    }
}
