//! Loopback ports for servers that a test starts and that bind later.
//!
//! A test that starts a member (a child process, or an in-process server given a
//! config) needs its ports before the member binds them: the initial cluster names
//! every peer URL up front. The usual trick, `bind("127.0.0.1:0")` and drop the
//! listener, hands out a port from the kernel's ephemeral range (32768-60999 by
//! default), and the kernel may give that same port to any outgoing connection as its
//! source port before the member binds it. Under a loaded test run a member then fails
//! with "Address already in use" (seen in CI).
//!
//! [`free_port`] hands out ports from [`PORTS`], below the ephemeral range, which only
//! an explicit bind takes. One counter per process walks the range, so two tests of
//! one process never get the same port; it starts at an offset from the process id, so
//! two processes rarely probe the same ports, and a port something listens on (or has
//! bound) is skipped.

use std::net::TcpListener;
use std::ops::Range;
use std::sync::atomic::{AtomicU32, Ordering};

/// Where ports come from: below Linux's default ephemeral range.
pub const PORTS: Range<u16> = 20_000..32_000;

/// The next candidate, as an offset into [`PORTS`]; `u32::MAX` until first used.
static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);

/// A port in [`PORTS`] that 127.0.0.1 could bind a moment ago and that this process has
/// not handed out before; `None` only if every port of the range is taken.
pub fn free_port() -> Option<u16> {
    let span = u32::from(PORTS.end - PORTS.start);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(97) % span,
        Ordering::AcqRel,
        Ordering::Acquire,
    );
    (0..span).find_map(|_| {
        let offset = NEXT.fetch_add(1, Ordering::AcqRel) % span;
        let port = PORTS.start + u16::try_from(offset).ok()?;
        TcpListener::bind(("127.0.0.1", port)).ok().map(|_| port)
    })
}

/// `n` ports from [`free_port`]; panics naming the range if it has run out (for tests).
pub fn free_ports(n: usize) -> Vec<u16> {
    (0..n)
        .map(|_| free_port().unwrap_or_else(|| panic!("no free loopback port in {PORTS:?}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ports_are_in_the_range_distinct_and_bindable() {
        let ports = free_ports(50);
        assert_eq!(ports.iter().collect::<HashSet<_>>().len(), 50);
        for &p in &ports {
            assert!(PORTS.contains(&p), "{p} outside {PORTS:?}");
        }
        let _held = TcpListener::bind(("127.0.0.1", ports[0])).expect("a handed-out port binds");
    }

    #[test]
    fn a_port_in_use_is_skipped() {
        // Hold the next candidate, then ask: the answer must be another port.
        let probe = free_port().expect("a port");
        let next = PORTS.start
            + u16::try_from(NEXT.load(Ordering::Acquire) % u32::from(PORTS.end - PORTS.start))
                .expect("in range");
        let Ok(_held) = TcpListener::bind(("127.0.0.1", next)) else {
            return; // taken by something else already: nothing to hold
        };
        let got = free_port().expect("a port");
        assert_ne!(got, next);
        assert_ne!(got, probe);
    }

    #[test]
    fn threads_never_share_a_port() {
        let handles: Vec<_> = (0..8)
            .map(|_| std::thread::spawn(|| free_ports(20)))
            .collect();
        let mut all = HashSet::new();
        for h in handles {
            for p in h.join().expect("thread") {
                assert!(all.insert(p), "port {p} handed out twice");
            }
        }
    }
}
