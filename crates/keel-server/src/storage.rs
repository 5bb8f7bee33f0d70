//! The Raft log on disk and in memory: the WAL and snapshot files behind a
//! `keel_raft::MemStorage`, as etcd keeps `raft.MemoryStorage` in front of its WAL.
//!
//! Everything Raft reads comes from the in-memory log, which only ever holds what the
//! WAL already made durable (entries are appended to it after [`DiskLog::save`]).

use std::path::{Path, PathBuf};

use keel_proto::keelpb;
use keel_raft::{ConfState, HardState, MemStorage, Snapshot};
use keel_wal::{SnapshotMarker, Snapshotter, StdDisk, Wal, WalConfig, WalError};
use prost::Message as _;

use crate::convert;
use crate::errors::ServerError;

/// Size of the WAL metadata record: member id then cluster id, each u64 big endian.
const WAL_METADATA_BYTES: usize = 16;
/// Snapshot files kept in `member/snap` (etcd's `--max-snapshots` default).
pub(crate) const MAX_SNAPSHOT_FILES: usize = 5;

/// Which member and cluster a data directory belongs to, from the WAL metadata record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WalIdentity {
    pub member_id: u64,
    pub cluster_id: u64,
}

impl WalIdentity {
    fn encode(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(WAL_METADATA_BYTES);
        out.extend_from_slice(&self.member_id.to_be_bytes());
        out.extend_from_slice(&self.cluster_id.to_be_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<WalIdentity> {
        if bytes.len() != WAL_METADATA_BYTES {
            return None;
        }
        let mut a = [0u8; 8];
        a.copy_from_slice(&bytes[..8]);
        let member_id = u64::from_be_bytes(a);
        a.copy_from_slice(&bytes[8..]);
        Some(WalIdentity {
            member_id,
            cluster_id: u64::from_be_bytes(a),
        })
    }
}

/// The WAL and the snapshot files of one member.
pub(crate) struct DiskLog {
    wal: Wal<StdDisk>,
    wal_dir: PathBuf,
    snapshotter: Snapshotter<StdDisk>,
    snap_dir: PathBuf,
}

/// What a restart recovers from disk.
pub(crate) struct Recovered {
    pub log: DiskLog,
    pub identity: WalIdentity,
    /// The in-memory log: snapshot, replayed entries and hard state.
    pub storage: MemStorage,
    /// The snapshot the log starts from (index 0 when the member never took one).
    pub snapshot: Snapshot,
}

/// Whether `wal_dir` holds a write-ahead log (etcd's `wal.Exist`).
pub(crate) fn wal_exists(wal_dir: &Path) -> Result<bool, ServerError> {
    match std::fs::read_dir(wal_dir) {
        Ok(entries) => {
            for entry in entries {
                let entry = entry.map_err(ServerError::io("list", wal_dir))?;
                if entry.file_name().to_string_lossy().ends_with(".wal") {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(ServerError::io("list", wal_dir)(e)),
    }
}

fn encode_snapshot_file(snapshot: &Snapshot) -> Vec<u8> {
    keelpb::SnapshotFile {
        snapshot: Some(convert::snapshot_to_pb(snapshot)),
    }
    .encode_to_vec()
}

fn marker(snapshot: &Snapshot) -> SnapshotMarker {
    SnapshotMarker {
        index: snapshot.metadata.index,
        term: snapshot.metadata.term,
    }
}

impl DiskLog {
    /// Bootstraps a new member: the initial snapshot (index 0: the first membership) is
    /// written first, the WAL last, because the WAL's existence is what marks a data
    /// directory as bootstrapped.
    pub(crate) fn create(
        wal_dir: &Path,
        snap_dir: &Path,
        identity: WalIdentity,
        initial: &Snapshot,
    ) -> Result<DiskLog, ServerError> {
        assert_eq!(
            initial.metadata.index, 0,
            "the bootstrap snapshot is at index 0"
        );
        let snapshotter =
            Snapshotter::new(StdDisk, snap_dir).map_err(|source| ServerError::Snap {
                dir: snap_dir.to_path_buf(),
                source,
            })?;
        // A bootstrap that crashed before creating the WAL may have left this file.
        let stale = snap_dir.join(format!("{:016x}-{:016x}.snap", 0, 0));
        match std::fs::remove_file(&stale) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(ServerError::io("remove", &stale)(e));
            }
            _ => {}
        }
        snapshotter
            .save(marker(initial), &encode_snapshot_file(initial))
            .map_err(|source| ServerError::Snap {
                dir: snap_dir.to_path_buf(),
                source,
            })?;
        let wal = Wal::create(StdDisk, wal_dir, &identity.encode(), WalConfig::default()).map_err(
            |source| ServerError::Wal {
                dir: wal_dir.to_path_buf(),
                source,
            },
        )?;
        Ok(DiskLog {
            wal,
            wal_dir: wal_dir.to_path_buf(),
            snapshotter,
            snap_dir: snap_dir.to_path_buf(),
        })
    }

    /// Opens an existing member's log: the newest snapshot file whose marker the WAL
    /// holds, then the WAL replayed from it.
    pub(crate) fn open(wal_dir: &Path, snap_dir: &Path) -> Result<Recovered, ServerError> {
        let snap_err = |source| ServerError::Snap {
            dir: snap_dir.to_path_buf(),
            source,
        };
        let wal_err = |source| ServerError::Wal {
            dir: wal_dir.to_path_buf(),
            source,
        };
        let snapshotter = Snapshotter::new(StdDisk, snap_dir).map_err(snap_err)?;
        let mut refused: Vec<SnapshotMarker> = Vec::new();
        loop {
            let loaded = snapshotter
                .load_matching(|m| !refused.contains(&m))
                .map_err(snap_err)?;
            let Some(file) = loaded else {
                return Err(ServerError::BadSnapshot {
                    dir: snap_dir.to_path_buf(),
                    reason: "no snapshot file matches a snapshot marker in the WAL".to_owned(),
                });
            };
            let snapshot = keelpb::SnapshotFile::decode(file.data.as_slice())
                .ok()
                .and_then(|f| f.snapshot)
                .map(convert::snapshot_from_pb)
                .ok_or_else(|| ServerError::BadSnapshot {
                    dir: snap_dir.to_path_buf(),
                    reason: format!(
                        "snapshot {:016x}-{:016x}.snap does not hold a Raft snapshot",
                        file.marker.term, file.marker.index
                    ),
                })?;
            if marker(&snapshot) != file.marker {
                return Err(ServerError::BadSnapshot {
                    dir: snap_dir.to_path_buf(),
                    reason: format!(
                        "snapshot {:016x}-{:016x}.snap holds index {} term {}",
                        file.marker.term,
                        file.marker.index,
                        snapshot.metadata.index,
                        snapshot.metadata.term
                    ),
                });
            }
            let (wal, replay) =
                match Wal::open_at(StdDisk, wal_dir, file.marker, WalConfig::default()) {
                    Ok(opened) => opened,
                    // The snapshot file was written but the crash came before its WAL marker:
                    // fall back to the previous snapshot, as etcd does.
                    Err(WalError::SnapshotNotFound { .. }) => {
                        tracing::warn!(
                            index = file.marker.index,
                            term = file.marker.term,
                            "snapshot file has no marker in the WAL; trying an older one"
                        );
                        refused.push(file.marker);
                        continue;
                    }
                    Err(source) => return Err(wal_err(source)),
                };
            let identity =
                WalIdentity::decode(&replay.metadata).ok_or_else(|| ServerError::Wal {
                    dir: wal_dir.to_path_buf(),
                    source: WalError::Layout {
                        file: wal_dir.to_path_buf(),
                        offset: 0,
                        what: "metadata record is not a Keel member identity",
                    },
                })?;
            let mut storage = MemStorage::new_with_conf_state(snapshot.metadata.conf_state.clone());
            if snapshot.metadata.index > 0 {
                storage
                    .apply_snapshot(snapshot.clone())
                    .expect("a fresh in-memory log accepts any snapshot past index 0");
            }
            let mut entries = Vec::with_capacity(replay.entries.len());
            for e in replay.entries {
                entries.push(convert::entry_from_wal(e).map_err(|reason| {
                    ServerError::BadSnapshot {
                        dir: wal_dir.to_path_buf(),
                        reason,
                    }
                })?);
            }
            storage
                .append(&entries)
                .expect("replayed entries follow the snapshot contiguously");
            let hs = replay.hard_state;
            storage.set_hard_state(HardState {
                term: hs.term.max(snapshot.metadata.term),
                vote: hs.vote,
                commit: hs.commit.max(snapshot.metadata.index),
            });
            return Ok(Recovered {
                log: DiskLog {
                    wal,
                    wal_dir: wal_dir.to_path_buf(),
                    snapshotter,
                    snap_dir: snap_dir.to_path_buf(),
                },
                identity,
                storage,
                snapshot,
            });
        }
    }

    /// Appends `entries` and the hard state with at most one fsync.
    pub(crate) fn save(
        &mut self,
        hard_state: Option<HardState>,
        entries: &[keel_raft::Entry],
    ) -> Result<(), ServerError> {
        let hs = hard_state.map(|h| keel_wal::HardState {
            term: h.term,
            vote: h.vote,
            commit: h.commit,
        });
        let entries: Vec<keel_wal::Entry> = entries.iter().map(convert::entry_to_wal).collect();
        self.wal
            .save(hs, &entries)
            .map_err(|source| ServerError::Wal {
                dir: self.wal_dir.clone(),
                source,
            })?;
        Ok(())
    }

    /// Saves a snapshot: the file first, then its WAL marker (so a WAL marker always has
    /// its file), then drops snapshot files beyond [`MAX_SNAPSHOT_FILES`].
    pub(crate) fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), ServerError> {
        self.snapshotter
            .save(marker(snapshot), &encode_snapshot_file(snapshot))
            .map_err(|source| ServerError::Snap {
                dir: self.snap_dir.clone(),
                source,
            })?;
        self.wal
            .save_snapshot(marker(snapshot))
            .map_err(|source| ServerError::Wal {
                dir: self.wal_dir.clone(),
                source,
            })?;
        self.purge_snapshot_files()
    }

    fn purge_snapshot_files(&self) -> Result<(), ServerError> {
        let mut names: Vec<String> = std::fs::read_dir(&self.snap_dir)
            .map_err(ServerError::io("list", &self.snap_dir))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".snap") && n.len() == 16 + 1 + 16 + 5)
            .collect();
        // Names are fixed-width hex `term-index`, so string order is age order.
        names.sort();
        let excess = names.len().saturating_sub(MAX_SNAPSHOT_FILES);
        for name in &names[..excess] {
            let path = self.snap_dir.join(name);
            std::fs::remove_file(&path).map_err(ServerError::io("remove", &path))?;
        }
        Ok(())
    }

    /// Removes WAL segments wholly before `index` (never past the last snapshot marker).
    pub(crate) fn release_to(&mut self, index: u64) -> Result<(), ServerError> {
        self.wal
            .release_to(index)
            .map_err(|source| ServerError::Wal {
                dir: self.wal_dir.clone(),
                source,
            })
    }
}

/// The bootstrap snapshot of a new cluster: index 0, every initial member a voter, the
/// membership record as data.
pub(crate) fn bootstrap_snapshot(voters: Vec<u64>, membership: Vec<u8>) -> Snapshot {
    Snapshot {
        metadata: keel_raft::SnapshotMetadata {
            index: 0,
            term: 0,
            conf_state: ConfState {
                voters,
                ..ConfState::default()
            },
        },
        data: membership,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_round_trips() {
        let id = WalIdentity {
            member_id: 0x8e9e_05c5_2164_694d,
            cluster_id: 7,
        };
        assert_eq!(WalIdentity::decode(&id.encode()), Some(id));
        assert_eq!(WalIdentity::decode(&[0; 3]), None);
    }

    #[test]
    fn create_then_open_recovers_entries_and_state() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (wal_dir, snap_dir) = (dir.path().join("wal"), dir.path().join("snap"));
        let identity = WalIdentity {
            member_id: 1,
            cluster_id: 2,
        };
        let boot = bootstrap_snapshot(vec![1], b"m".to_vec());
        let mut log = DiskLog::create(&wal_dir, &snap_dir, identity, &boot).expect("create");
        let entries: Vec<keel_raft::Entry> = (1..=3)
            .map(|i| keel_raft::Entry {
                term: 1,
                index: i,
                data: vec![i as u8],
                ..keel_raft::Entry::default()
            })
            .collect();
        let hs = HardState {
            term: 1,
            vote: 1,
            commit: 3,
        };
        log.save(Some(hs), &entries).expect("save");
        drop(log);
        assert!(wal_exists(&wal_dir).expect("list"));
        let rec = DiskLog::open(&wal_dir, &snap_dir).expect("open");
        assert_eq!(rec.identity, identity);
        assert_eq!(rec.snapshot, boot);
        use keel_raft::Storage as _;
        assert_eq!(rec.storage.last_index(), Ok(3));
        assert_eq!(rec.storage.initial_state().expect("state").0, hs);
        assert_eq!(
            rec.storage.initial_state().expect("state").1.voters,
            vec![1]
        );
    }
}
