//! Shared by the integration tests: the `keel` binary, a lock so that only
//! one cluster runs at a time (the suite is meant for small machines), and a
//! runtime.

#![allow(dead_code)] // each test binary uses a different part

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

/// One cluster at a time per test binary.
static ONE_CLUSTER: Mutex<()> = Mutex::new(());

/// Serialises cluster runs; a panicked run does not poison the next.
pub fn one_cluster_at_a_time() -> MutexGuard<'static, ()> {
    ONE_CLUSTER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The `keel` executable; fails the test (never skips it) when it is missing.
pub fn keel_bin() -> PathBuf {
    keel_robustness::locate_keel().unwrap_or_else(|e| {
        panic!("{e}: these tests run real keel processes; build them with `cargo build -p keel --profile ci` (or set KEEL_BIN)")
    })
}

/// A small multi-threaded runtime.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}
