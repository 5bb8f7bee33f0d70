//! The file-system surface the WAL and the snapshotter use, kept small so that a simulated
//! disk can stand in for the real one in tests.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// A directory-oriented file system. Names are plain file names inside one directory.
///
/// Durability contract (what the simulated disk enforces on a crash): file contents are
/// durable only after [`DiskFile::sync_data`]; creating, renaming and removing a name is
/// durable only after [`Disk::sync_dir`] on its directory.
pub trait Disk: Clone + Send + Sync + 'static {
    type File: DiskFile;

    /// Creates `dir` and its parents if missing.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// The names of the files directly inside `dir`, in no particular order.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Creates a new file; fails if it already exists.
    fn create_new(&self, path: &Path) -> io::Result<Self::File>;
    /// Opens an existing file for writing at explicit offsets.
    fn open_write(&self, path: &Path) -> io::Result<Self::File>;
    /// Reads a whole file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Atomically renames `from` to `to`, replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes the names in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// An open file written at explicit offsets.
pub trait DiskFile: Send + 'static {
    /// Writes all of `buf` at `offset`.
    fn write_all_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()>;
    /// Sets the file length, truncating or extending with zeros.
    fn set_len(&mut self, len_bytes: u64) -> io::Result<()>;
    /// Reserves space so the file is at least `len_bytes` long and reads back zeros there.
    fn preallocate(&mut self, len_bytes: u64) -> io::Result<()>;
    /// `fdatasync`: the written bytes (and the length needed to read them) become durable.
    fn sync_data(&mut self) -> io::Result<()>;
    /// Takes an exclusive advisory lock held until this handle is dropped; fails with
    /// [`io::ErrorKind::WouldBlock`] if another handle holds it.
    fn try_lock(&mut self) -> io::Result<()>;
}

/// The real file system through `std::fs`.
#[derive(Clone, Copy, Debug, Default)]
pub struct StdDisk;

/// A real file.
#[derive(Debug)]
pub struct StdFile {
    file: File,
}

impl Disk for StdDisk {
    type File = StdFile;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        Ok(names)
    }

    fn create_new(&self, path: &Path) -> io::Result<StdFile> {
        let file = OpenOptions::new().write(true).create_new(true).open(path)?;
        Ok(StdFile { file })
    }

    fn open_write(&self, path: &Path) -> io::Result<StdFile> {
        let file = OpenOptions::new().write(true).open(path)?;
        Ok(StdFile { file })
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        File::open(path)?.read_to_end(&mut buf)?;
        Ok(buf)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

impl DiskFile for StdFile {
    fn write_all_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }

    fn set_len(&mut self, len_bytes: u64) -> io::Result<()> {
        self.file.set_len(len_bytes)
    }

    fn preallocate(&mut self, len_bytes: u64) -> io::Result<()> {
        // fallocate reserves real blocks, so later appends neither allocate nor update the
        // file size, which keeps fdatasync cheap; set_len alone would leave a sparse file.
        match rustix::fs::fallocate(
            &self.file,
            rustix::fs::FallocateFlags::empty(),
            0,
            len_bytes,
        ) {
            Ok(()) => Ok(()),
            Err(e) if e == rustix::io::Errno::OPNOTSUPP => {
                if self.file.metadata()?.len() < len_bytes {
                    self.file.set_len(len_bytes)?;
                }
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn try_lock(&mut self) -> io::Result<()> {
        // flock(2): per open file, so a second handle in the same process conflicts too.
        self.file.try_lock().map_err(|e| match e {
            std::fs::TryLockError::WouldBlock => io::Error::from(io::ErrorKind::WouldBlock),
            std::fs::TryLockError::Error(e) => e,
        })
    }
}
