//! Prepares the next segment file off the hot path.
//!
//! A dedicated std thread (not an async task): the crate is synchronous and free of any
//! runtime, and `fallocate` of a 64 MiB file is a blocking system call that must not stall
//! whatever executor the server runs. The thread creates `0.tmp` / `1.tmp` alternately, so
//! the file it prepares never clashes with the one the WAL is renaming, and hands each over
//! through a rendezvous channel (capacity zero): at most one prepared file waits.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::{self, JoinHandle};

use crate::disk::{Disk, DiskFile};
use crate::error::WalError;

type Prepared<F> = Result<(PathBuf, F), (PathBuf, io::Error)>;

/// Handle on the preallocation thread; dropping it stops and joins the thread.
pub(crate) struct Pipeline<D: Disk> {
    rx: Option<Receiver<Prepared<D::File>>>,
    handle: Option<JoinHandle<()>>,
}

impl<D: Disk> Pipeline<D> {
    pub(crate) fn start(disk: D, dir: &Path, segment_size_bytes: u64) -> Result<Self, WalError> {
        let (tx, rx) = sync_channel(0);
        let dir = dir.to_path_buf();
        let thread_dir = dir.clone();
        let handle = thread::Builder::new()
            .name("keel-wal-prealloc".to_owned())
            .spawn(move || run(&disk, &thread_dir, segment_size_bytes, &tx))
            .map_err(|source| WalError::Io {
                op: "spawn preallocation thread for",
                path: dir,
                source,
            })?;
        Ok(Pipeline {
            rx: Some(rx),
            handle: Some(handle),
        })
    }

    /// The next preallocated file; blocks only if the thread has not finished preparing it.
    pub(crate) fn take(&mut self) -> Result<(PathBuf, D::File), WalError> {
        let rx = self.rx.as_ref().ok_or(WalError::PipelineStopped)?;
        match rx.recv() {
            Ok(Ok(prepared)) => Ok(prepared),
            Ok(Err((path, source))) => Err(WalError::Io {
                op: "preallocate",
                path,
                source,
            }),
            Err(_) => Err(WalError::PipelineStopped),
        }
    }
}

impl<D: Disk> Drop for Pipeline<D> {
    fn drop(&mut self) {
        // Disconnecting first wakes the thread if it is blocked handing over a file.
        drop(self.rx.take());
        if let Some(handle) = self.handle.take()
            && handle.join().is_err()
        {
            tracing::error!("wal preallocation thread panicked");
        }
    }
}

fn run<D: Disk>(disk: &D, dir: &Path, size_bytes: u64, tx: &SyncSender<Prepared<D::File>>) {
    let mut count: u64 = 0;
    loop {
        let path = dir.join(format!("{}.tmp", count % 2));
        count += 1;
        let prepared = prepare(disk, &path, size_bytes);
        let failed = prepared.is_err();
        match tx.send(prepared) {
            Ok(()) if !failed => {}
            Ok(()) => return,
            Err(unsent) => {
                if let Ok((path, file)) = unsent.0 {
                    drop(file);
                    // Best effort: a leftover .tmp file is removed on the next open anyway.
                    if let Err(e) = disk.remove(&path) {
                        tracing::debug!(path = %path.display(), error = %e, "could not remove unused preallocated segment");
                    }
                }
                return;
            }
        }
    }
}

fn prepare<D: Disk>(disk: &D, path: &Path, size_bytes: u64) -> Prepared<D::File> {
    let with_path = |e: io::Error| (path.to_path_buf(), e);
    match disk.remove(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(with_path(e)),
    }
    let mut file = disk.create_new(path).map_err(with_path)?;
    file.preallocate(size_bytes).map_err(with_path)?;
    Ok((path.to_path_buf(), file))
}
