//! Snapshot files: `{term:016x}-{index:016x}.snap`, one CRC-protected payload each.

use std::path::{Path, PathBuf};

use crate::disk::{Disk, DiskFile};
use crate::error::SnapError;
use crate::record::SnapshotMarker;

/// First bytes of every snapshot file.
pub const SNAP_MAGIC: [u8; 8] = *b"KEELSNAP";
/// Version of the snapshot file format.
pub const SNAP_FORMAT_VERSION: u32 = 1;
/// Size of the fixed header before the payload.
pub const SNAP_HEADER_BYTES: usize = 40;
/// Largest payload accepted. The payload is Raft's snapshot metadata and whatever the
/// server puts beside it; the key-value data itself lives in the backend file.
pub const MAX_SNAP_PAYLOAD_BYTES: u64 = 512 * 1024 * 1024;

/// A loaded snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub marker: SnapshotMarker,
    pub data: Vec<u8>,
}

/// Why a snapshot file's bytes were rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapDecodeError {
    #[error("file of {0} bytes is shorter than the header")]
    Short(usize),
    #[error("bad magic")]
    BadMagic,
    #[error("unsupported snapshot format version {0}")]
    UnsupportedVersion(u32),
    #[error("payload length {declared} does not match the {actual} bytes present")]
    LengthMismatch { declared: u64, actual: u64 },
    #[error("crc mismatch")]
    CrcMismatch,
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut arr = [0u8; 8];
    arr.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(arr)
}

/// Encodes a snapshot file.
#[must_use]
pub fn encode_snapshot(marker: SnapshotMarker, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(SNAP_HEADER_BYTES + data.len());
    out.extend_from_slice(&SNAP_MAGIC);
    out.extend_from_slice(&SNAP_FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&marker.term.to_le_bytes());
    out.extend_from_slice(&marker.index.to_le_bytes());
    out.extend_from_slice(&(data.len() as u64).to_le_bytes());
    out.extend_from_slice(data);
    let crc = crc32c::crc32c(&out[16..]);
    out[12..16].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(
        out.len(),
        SNAP_HEADER_BYTES + data.len(),
        "snapshot header size"
    );
    out
}

/// Decodes a snapshot file; never panics.
pub fn decode_snapshot(bytes: &[u8]) -> Result<Snapshot, SnapDecodeError> {
    if bytes.len() < SNAP_HEADER_BYTES {
        return Err(SnapDecodeError::Short(bytes.len()));
    }
    if bytes[..8] != SNAP_MAGIC {
        return Err(SnapDecodeError::BadMagic);
    }
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if version != SNAP_FORMAT_VERSION {
        return Err(SnapDecodeError::UnsupportedVersion(version));
    }
    let declared = u64_at(bytes, 32);
    let actual = (bytes.len() - SNAP_HEADER_BYTES) as u64;
    if declared != actual {
        return Err(SnapDecodeError::LengthMismatch { declared, actual });
    }
    let stored = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
    if crc32c::crc32c(&bytes[16..]) != stored {
        return Err(SnapDecodeError::CrcMismatch);
    }
    Ok(Snapshot {
        marker: SnapshotMarker {
            term: u64_at(bytes, 16),
            index: u64_at(bytes, 24),
        },
        data: bytes[SNAP_HEADER_BYTES..].to_vec(),
    })
}

fn snap_name(marker: SnapshotMarker) -> String {
    format!("{:016x}-{:016x}.snap", marker.term, marker.index)
}

fn parse_snap_name(name: &str) -> Option<SnapshotMarker> {
    let stem = name.strip_suffix(".snap")?;
    let (term, index) = stem.split_once('-')?;
    if term.len() != 16 || index.len() != 16 {
        return None;
    }
    Some(SnapshotMarker {
        term: u64::from_str_radix(term, 16).ok()?,
        index: u64::from_str_radix(index, 16).ok()?,
    })
}

/// Saves and loads snapshot files in one directory.
#[derive(Debug, Clone)]
pub struct Snapshotter<D: Disk> {
    disk: D,
    dir: PathBuf,
}

impl<D: Disk> Snapshotter<D> {
    /// Uses `dir`, creating it if needed and removing half-written `.snap.tmp` files.
    pub fn new(disk: D, dir: &Path) -> Result<Self, SnapError> {
        let err = |op, path: &Path| {
            let path = path.to_path_buf();
            move |source| SnapError::Io { op, path, source }
        };
        disk.create_dir_all(dir).map_err(err("create", dir))?;
        for name in disk.list(dir).map_err(err("list", dir))? {
            if name.ends_with(".snap.tmp") {
                let path = dir.join(&name);
                disk.remove(&path).map_err(err("remove", &path))?;
            }
        }
        Ok(Snapshotter {
            disk,
            dir: dir.to_path_buf(),
        })
    }

    fn io(&self, op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> SnapError {
        let path = path.to_path_buf();
        move |source| SnapError::Io { op, path, source }
    }

    /// Writes the snapshot durably: to a temporary file, synced, renamed into place, and
    /// the directory synced, so a crash leaves either no file or a complete one.
    pub fn save(&self, marker: SnapshotMarker, data: &[u8]) -> Result<PathBuf, SnapError> {
        if data.len() as u64 > MAX_SNAP_PAYLOAD_BYTES {
            return Err(SnapError::TooLarge {
                len_bytes: data.len() as u64,
                max_bytes: MAX_SNAP_PAYLOAD_BYTES,
            });
        }
        let name = snap_name(marker);
        let path = self.dir.join(&name);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let bytes = encode_snapshot(marker, data);
        let mut file = self
            .disk
            .create_new(&tmp)
            .map_err(self.io("create", &tmp))?;
        file.write_all_at(0, &bytes)
            .map_err(self.io("write", &tmp))?;
        file.sync_data().map_err(self.io("sync", &tmp))?;
        drop(file);
        self.disk
            .rename(&tmp, &path)
            .map_err(self.io("rename", &tmp))?;
        self.disk
            .sync_dir(&self.dir)
            .map_err(self.io("sync", &self.dir))?;
        Ok(path)
    }

    /// The newest valid snapshot, or `None` if there is none.
    pub fn load(&self) -> Result<Option<Snapshot>, SnapError> {
        self.load_matching(|_| true)
    }

    /// The newest valid snapshot whose marker `accept` allows (for example, one whose
    /// marker is in the WAL). Files that fail their checks are renamed `*.broken` and the
    /// next older one is tried.
    pub fn load_matching(
        &self,
        accept: impl Fn(SnapshotMarker) -> bool,
    ) -> Result<Option<Snapshot>, SnapError> {
        let mut candidates: Vec<(SnapshotMarker, String)> = self
            .disk
            .list(&self.dir)
            .map_err(self.io("list", &self.dir))?
            .into_iter()
            .filter_map(|name| parse_snap_name(&name).map(|m| (m, name)))
            .filter(|(m, _)| accept(*m))
            .collect();
        // Newest first: names order by term, then index, as etcd's do.
        candidates.sort_by_key(|(m, _)| std::cmp::Reverse((m.term, m.index)));
        for (marker, name) in candidates {
            let path = self.dir.join(&name);
            let bytes = self.disk.read(&path).map_err(self.io("read", &path))?;
            let reason = match decode_snapshot(&bytes) {
                Ok(snap) if snap.marker == marker => return Ok(Some(snap)),
                Ok(snap) => format!(
                    "contents are for index {} term {}, not the file name's",
                    snap.marker.index, snap.marker.term
                ),
                Err(e) => e.to_string(),
            };
            let broken = self.dir.join(format!("{name}.broken"));
            tracing::warn!(file = %path.display(), %reason, "snap: renaming broken snapshot file");
            self.disk
                .rename(&path, &broken)
                .map_err(self.io("rename", &path))?;
            self.disk
                .sync_dir(&self.dir)
                .map_err(self.io("sync", &self.dir))?;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn snapshot_round_trip(term in any::<u64>(), index in any::<u64>(), data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let marker = SnapshotMarker { index, term };
            let bytes = encode_snapshot(marker, &data);
            prop_assert_eq!(decode_snapshot(&bytes), Ok(Snapshot { marker, data }));
            prop_assert_eq!(parse_snap_name(&snap_name(marker)), Some(marker));
        }

        #[test]
        fn any_flip_is_rejected(data in proptest::collection::vec(any::<u8>(), 0..64), at in any::<prop::sample::Index>(), bit in 0u8..8) {
            let mut bytes = encode_snapshot(SnapshotMarker { index: 5, term: 2 }, &data);
            let at = at.index(bytes.len());
            bytes[at] ^= 1 << bit;
            prop_assert!(decode_snapshot(&bytes).is_err());
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = decode_snapshot(&bytes);
        }
    }
}
