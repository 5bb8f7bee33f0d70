//! Lease identifiers.

use std::fmt;

/// A lease's id: any nonzero `i64` (0 is etcd's `NoLease`, "no lease attached").
/// Ids the server picks itself are positive; a client may ask for a negative one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LeaseId(i64);

impl LeaseId {
    /// The id, or `None` for 0.
    #[must_use]
    pub const fn new(id: i64) -> Option<Self> {
        if id == 0 { None } else { Some(Self(id)) }
    }

    /// The id as etcd's protos carry it.
    #[must_use]
    pub const fn get(self) -> i64 {
        self.0
    }

    /// The id the server assigns to a grant that asked for id 0, from its next
    /// request id (etcd keeps the low 63 bits so the id is positive). `None` when
    /// that leaves 0: draw the next request id and try again, as etcd loops.
    #[must_use]
    pub const fn from_request_id(request_id: u64) -> Option<Self> {
        let positive = request_id & (u64::MAX >> 1);
        // The mask leaves at most 63 bits, so the value fits in i64.
        #[allow(clippy::cast_possible_wrap)]
        Self::new(positive as i64)
    }

    /// The 8-byte big-endian key of this lease in the backend.
    #[must_use]
    pub const fn to_key(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }
}

/// etcd prints lease ids as 16 hex digits (`etcdctl lease grant` shows `694d...`).
impl fmt::Display for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}
