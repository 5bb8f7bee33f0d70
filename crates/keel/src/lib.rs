//! The `keel` binary: started exactly like `etcd`, it runs one Keel member.
//!
//! Its job is the edge between a user and [`keel_server::Server`]: read etcd 3.4's flags and
//! `ETCD_*` variables into a [`keel_server::ServerConfig`] ([`flags`]), set up logging
//! through `tracing` ([`logging`]), start the server, and on SIGTERM or SIGINT shut it down
//! (stop accepting, finish what is in flight, sync) and exit 0.
//!
//! Invariants:
//! - every etcd 3.4 flag is either honoured or refused with "not supported yet"; none is
//!   accepted and silently dropped (etcd's own ignored pre-v2 flags are warned about, as
//!   etcd does);
//! - the binary never binds anything but the listen URLs it was given;
//! - exit status is etcd's: 0 after `--help`, `--version` or a clean shutdown, 2 for what
//!   Go's flag parser rejects (undefined flag, bad syntax, bad value), 1 for every other
//!   error, including a server that fails to start.
//!
//! The one deliberate difference from etcd: the default data directory is `${name}.keel`.
//!
//! Built with the `failpoints` feature (never by `cargo build --release --bin keel`; the
//! workspace test build turns it on for the robustness suite), the binary reads
//! `FAILPOINTS` and `KEEL_PLANTED_BUG` at start (see `keel_server::failpoints` and
//! `docs/failpoints.md`); without it, either variable set is a start-up error.

pub mod flags;
pub mod logging;

/// Keel's version.
pub const KEEL_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The etcd API version Keel speaks.
pub const ETCD_API_VERSION: &str = "3.4";

/// `keel --version`, laid out as `etcd --version`.
pub fn version_text() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    };
    format!(
        "keel Version: {KEEL_VERSION}\netcd API Version: {ETCD_API_VERSION}\nRust Version: {}\nOS/Arch: {}/{arch}\n",
        env!("KEEL_RUSTC_VERSION"),
        std::env::consts::OS,
    )
}
