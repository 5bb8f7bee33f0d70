//! Deterministic whole-cluster simulation (work in progress).
