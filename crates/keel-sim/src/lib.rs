//! Deterministic whole-cluster simulation and linearizability checking.
pub mod checks;
pub mod linearizability;
pub mod network;
pub mod registers;
pub mod sim;
pub mod workload;
