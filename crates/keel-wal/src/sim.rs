//! An in-memory [`Disk`] that models what a power loss does to unsynced data.
//!
//! Every file keeps its durable bytes (as of its last `sync_data`) and the list of writes
//! and length changes made since. Names are durable only after `sync_dir`. [`SimDisk::crash`]
//! then, per file, keeps a random prefix of the unsynced operations and cuts the last kept
//! write at a random byte: the "torn write" a crash leaves behind. Names revert to their
//! last synced state, and file handles opened before the crash stop working.
//!
//! The prefix model matches an append-only writer on a file system that writes a file's
//! data in order; it does not model sectors persisted out of order.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::disk::{Disk, DiskFile};

/// Unsynced operations one file may accumulate before writes fail; keeps a runaway test
/// from growing memory without bound.
pub const MAX_UNSYNCED_OPS: usize = 1 << 16;

/// A simulated disk; clones share the same state.
#[derive(Clone, Debug, Default)]
pub struct SimDisk {
    // A std mutex: every critical section is a short in-memory update, and the callers are
    // plain threads (the WAL and its preallocation thread), never async tasks.
    state: Arc<Mutex<SimState>>,
}

#[derive(Debug, Default)]
struct SimState {
    epoch: u64,
    next_id: u64,
    names: BTreeMap<PathBuf, u64>,
    durable_names: BTreeMap<PathBuf, u64>,
    files: HashMap<u64, SimFileState>,
    /// Syncs (file or directory) that may still succeed; `None` means no limit.
    syncs_left: Option<u64>,
    /// Files with a live lock; a crash (the process dies) releases them all.
    locked: std::collections::HashSet<u64>,
}

impl SimState {
    fn take_sync(&mut self) -> io::Result<()> {
        match &mut self.syncs_left {
            Some(0) => Err(io::Error::other("simulated sync failure")),
            Some(n) => {
                *n -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }
}

#[derive(Debug, Default, Clone)]
struct SimFileState {
    visible: Vec<u8>,
    durable: Vec<u8>,
    unsynced: Vec<Op>,
}

#[derive(Debug, Clone)]
enum Op {
    Write { offset: usize, data: Vec<u8> },
    SetLen(usize),
}

impl Op {
    fn apply(&self, bytes: &mut Vec<u8>) {
        match self {
            Op::Write { offset, data } => {
                let end = offset + data.len();
                if bytes.len() < end {
                    bytes.resize(end, 0);
                }
                bytes[*offset..end].copy_from_slice(data);
            }
            Op::SetLen(len) => bytes.resize(*len, 0),
        }
    }
}

/// What a crash did, for test diagnostics.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CrashReport {
    /// Unsynced operations dropped, across all files.
    pub dropped_ops: usize,
    /// Files whose last kept write was cut short.
    pub torn_files: usize,
}

/// A file handle on a [`SimDisk`].
#[derive(Debug)]
pub struct SimFile {
    disk: SimDisk,
    id: u64,
    epoch: u64,
    holds_lock: bool,
}

impl Drop for SimFile {
    fn drop(&mut self) {
        if self.holds_lock {
            let mut st = self.disk.lock();
            if st.epoch == self.epoch {
                st.locked.remove(&self.id);
            }
        }
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} not found", path.display()),
    )
}

fn to_usize(v: u64) -> io::Result<usize> {
    usize::try_from(v).map_err(|_| io::Error::other("offset does not fit in memory"))
}

impl SimDisk {
    /// An empty disk.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, SimState> {
        // A panic while holding the lock can only come from a failed assertion in a test;
        // the state is still consistent enough to report, so recover it.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Simulates a power loss, choosing what survives with a generator seeded by `seed`.
    pub fn crash(&self, seed: u64) -> CrashReport {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut st = self.lock();
        let mut report = CrashReport::default();
        st.epoch += 1;
        st.syncs_left = None;
        st.locked.clear();
        st.names = st.durable_names.clone();
        let live: Vec<u64> = st.durable_names.values().copied().collect();
        st.files.retain(|id, _| live.contains(id));
        for file in st.files.values_mut() {
            let n = file.unsynced.len();
            let keep = rng.random_range(0..=n);
            report.dropped_ops += n - keep;
            let mut bytes = std::mem::take(&mut file.durable);
            for (i, op) in file.unsynced.iter().take(keep).enumerate() {
                match op {
                    Op::Write { offset, data } if i + 1 == keep && !data.is_empty() => {
                        let cut = rng.random_range(0..=data.len());
                        if cut < data.len() {
                            report.torn_files += 1;
                        }
                        Op::Write {
                            offset: *offset,
                            data: data[..cut].to_vec(),
                        }
                        .apply(&mut bytes);
                    }
                    _ => op.apply(&mut bytes),
                }
            }
            file.visible = bytes.clone();
            file.durable = bytes;
            file.unsynced.clear();
        }
        report
    }

    /// Lets `n` more syncs succeed; every sync after them fails without making anything
    /// durable, as if the machine died inside that `fdatasync`. A crash clears the limit.
    pub fn fail_syncs_after(&self, n: u64) {
        self.lock().syncs_left = Some(n);
    }

    /// Flips bits of one byte of a file, durably: bit rot or a misdirected write.
    pub fn corrupt(&self, path: &Path, offset: u64, xor: u8) -> io::Result<()> {
        let mut st = self.lock();
        let id = *st.names.get(path).ok_or_else(|| not_found(path))?;
        let file = st.files.get_mut(&id).ok_or_else(|| not_found(path))?;
        let at = to_usize(offset)?;
        for bytes in [&mut file.visible, &mut file.durable] {
            if let Some(b) = bytes.get_mut(at) {
                *b ^= xor;
            }
        }
        Ok(())
    }

    /// The current length of a file.
    pub fn len(&self, path: &Path) -> io::Result<u64> {
        let st = self.lock();
        let id = st.names.get(path).ok_or_else(|| not_found(path))?;
        Ok(st.files.get(id).map_or(0, |f| f.visible.len() as u64))
    }

    fn with_file<T>(
        &self,
        id: u64,
        epoch: u64,
        f: impl FnOnce(&mut SimFileState) -> io::Result<T>,
    ) -> io::Result<T> {
        let mut st = self.lock();
        if st.epoch != epoch {
            return Err(io::Error::other(
                "simulated disk crashed since this file was opened",
            ));
        }
        let file = st
            .files
            .get_mut(&id)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "file was removed"))?;
        f(file)
    }
}

impl Disk for SimDisk {
    type File = SimFile;

    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        // Directories are implicit in the names; there is nothing to create.
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let st = self.lock();
        Ok(st
            .names
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect())
    }

    fn create_new(&self, path: &Path) -> io::Result<SimFile> {
        let mut st = self.lock();
        if st.names.contains_key(path) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists", path.display()),
            ));
        }
        let id = st.next_id;
        st.next_id += 1;
        st.files.insert(id, SimFileState::default());
        st.names.insert(path.to_path_buf(), id);
        Ok(SimFile {
            disk: self.clone(),
            id,
            epoch: st.epoch,
            holds_lock: false,
        })
    }

    fn open_write(&self, path: &Path) -> io::Result<SimFile> {
        let st = self.lock();
        let id = *st.names.get(path).ok_or_else(|| not_found(path))?;
        Ok(SimFile {
            disk: self.clone(),
            id,
            epoch: st.epoch,
            holds_lock: false,
        })
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let st = self.lock();
        let id = st.names.get(path).ok_or_else(|| not_found(path))?;
        Ok(st
            .files
            .get(id)
            .map(|f| f.visible.clone())
            .unwrap_or_default())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.lock();
        let id = st.names.remove(from).ok_or_else(|| not_found(from))?;
        st.names.insert(to.to_path_buf(), id);
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut st = self.lock();
        st.names.remove(path).ok_or_else(|| not_found(path))?;
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.lock();
        st.take_sync()?;
        let in_dir = |p: &PathBuf| p.parent() == Some(dir);
        st.durable_names.retain(|p, _| !in_dir(p));
        let synced: Vec<(PathBuf, u64)> = st
            .names
            .iter()
            .filter(|(p, _)| in_dir(p))
            .map(|(p, id)| (p.clone(), *id))
            .collect();
        st.durable_names.extend(synced);
        let SimState {
            names,
            durable_names,
            files,
            ..
        } = &mut *st;
        files.retain(|id, _| {
            names.values().any(|v| v == id) || durable_names.values().any(|v| v == id)
        });
        Ok(())
    }
}

impl SimFile {
    fn push(&mut self, op: Op) -> io::Result<()> {
        self.disk.with_file(self.id, self.epoch, |f| {
            if f.unsynced.len() >= MAX_UNSYNCED_OPS {
                return Err(io::Error::other("simulated disk: too many unsynced writes"));
            }
            op.apply(&mut f.visible);
            f.unsynced.push(op);
            Ok(())
        })
    }
}

impl DiskFile for SimFile {
    fn write_all_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.push(Op::Write {
            offset: to_usize(offset)?,
            data: buf.to_vec(),
        })
    }

    fn set_len(&mut self, len_bytes: u64) -> io::Result<()> {
        self.push(Op::SetLen(to_usize(len_bytes)?))
    }

    fn preallocate(&mut self, len_bytes: u64) -> io::Result<()> {
        let len = to_usize(len_bytes)?;
        let current = self
            .disk
            .with_file(self.id, self.epoch, |f| Ok(f.visible.len()))?;
        if current < len {
            self.push(Op::SetLen(len))?;
        }
        Ok(())
    }

    fn try_lock(&mut self) -> io::Result<()> {
        if self.holds_lock {
            return Ok(());
        }
        let mut st = self.disk.lock();
        if st.epoch != self.epoch {
            return Err(io::Error::other(
                "simulated disk crashed since this file was opened",
            ));
        }
        if !st.locked.insert(self.id) {
            return Err(io::Error::from(io::ErrorKind::WouldBlock));
        }
        self.holds_lock = true;
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.disk.lock().take_sync()?;
        self.disk.with_file(self.id, self.epoch, |f| {
            f.durable = f.visible.clone();
            f.unsynced.clear();
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsynced_names_and_bytes_vanish() {
        let disk = SimDisk::new();
        let dir = Path::new("/d");
        let a = dir.join("a");
        let mut f = disk.create_new(&a).expect("create");
        f.write_all_at(0, b"hello").expect("write");
        f.sync_data().expect("sync");
        disk.crash(1);
        assert!(disk.read(&a).is_err(), "name was never dir-synced");

        let mut f = disk.create_new(&a).expect("create");
        f.write_all_at(0, b"hello").expect("write");
        f.sync_data().expect("sync");
        disk.sync_dir(dir).expect("sync dir");
        f.write_all_at(5, b" world").expect("write");
        disk.crash(2);
        let got = disk.read(&a).expect("durable");
        assert!(
            got.starts_with(b"hello") && b"hello world".starts_with(&got[..]),
            "{got:?}"
        );
        assert!(
            f.write_all_at(0, b"x").is_err(),
            "old handles die with the crash"
        );
    }

    #[test]
    fn crash_keeps_a_prefix_of_unsynced_writes() {
        for seed in 0..200 {
            let disk = SimDisk::new();
            let dir = Path::new("/d");
            let p = dir.join("f");
            let mut f = disk.create_new(&p).expect("create");
            f.sync_data().expect("sync");
            disk.sync_dir(dir).expect("sync dir");
            let full: Vec<u8> = (1..=200u8).collect();
            for chunk in 0..4 {
                f.write_all_at(
                    chunk * 50,
                    &full[chunk as usize * 50..(chunk as usize + 1) * 50],
                )
                .expect("write");
            }
            disk.crash(seed);
            let got = disk.read(&p).expect("durable name");
            assert!(full.starts_with(&got), "seed {seed}: not a prefix: {got:?}");
        }
    }
}
