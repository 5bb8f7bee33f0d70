//! Deterministic whole-cluster simulation and linearizability checking.
pub mod linearizability;
pub mod network;
pub mod registers;
