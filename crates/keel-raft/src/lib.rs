//! Raft consensus as a pure state machine (work in progress).
