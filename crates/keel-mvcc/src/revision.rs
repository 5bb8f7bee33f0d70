//! Revisions and their 17-byte backend key encoding.

use std::fmt;

/// Length of an encoded revision: `main` (8 bytes BE), `'_'`, `sub` (8 bytes BE).
pub const REVISION_BYTES: usize = 17;

/// A point in the store's history. `main` is bumped once per write request (a whole
/// txn shares one), `sub` numbers the changes inside it from 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision {
    /// Revision of the write request; never negative.
    pub main: i64,
    /// Index of the change inside its request; never negative.
    pub sub: i64,
}

impl Revision {
    /// A revision `{main, sub}`.
    pub const fn new(main: i64, sub: i64) -> Self {
        Self { main, sub }
    }

    /// Encodes as `{main:8 BE}{'_'}{sub:8 BE}`, so byte order equals revision order
    /// (both parts are non-negative).
    pub fn to_bytes(self) -> [u8; REVISION_BYTES] {
        assert!(
            self.main >= 0 && self.sub >= 0,
            "revision {self} must not be negative"
        );
        let mut out = [0u8; REVISION_BYTES];
        out[..8].copy_from_slice(&self.main.to_be_bytes());
        out[8] = b'_';
        out[9..].copy_from_slice(&self.sub.to_be_bytes());
        out
    }

    /// Decodes [`Revision::to_bytes`]; panics on bytes that no version of Keel writes,
    /// because the backend key table only ever holds encoded revisions.
    pub fn from_bytes(bytes: &[u8; REVISION_BYTES]) -> Self {
        assert_eq!(bytes[8], b'_', "corrupt revision key {bytes:?}");
        let mut main = [0u8; 8];
        main.copy_from_slice(&bytes[..8]);
        let mut sub = [0u8; 8];
        sub.copy_from_slice(&bytes[9..]);
        let rev = Self::new(i64::from_be_bytes(main), i64::from_be_bytes(sub));
        assert!(
            rev.main >= 0 && rev.sub >= 0,
            "corrupt revision key {bytes:?}"
        );
        rev
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.main, self.sub)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_and_orders_like_revisions() {
        let revs = [
            Revision::new(0, 0),
            Revision::new(1, 0),
            Revision::new(1, 1),
            Revision::new(2, 0),
            Revision::new(256, 3),
            Revision::new(i64::MAX, i64::MAX),
        ];
        for pair in revs.windows(2) {
            assert!(pair[0].to_bytes() < pair[1].to_bytes());
        }
        for rev in revs {
            assert_eq!(Revision::from_bytes(&rev.to_bytes()), rev);
        }
    }
}
