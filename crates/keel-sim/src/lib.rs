//! Keel's deterministic whole-cluster simulator and linearizability checker.
//!
//! # Job
//!
//! * [`linearizability`]: a WGL / porcupine-style checker. A [`linearizability::History`]
//!   of client operations (invoke time, and either a return time with the observed output or
//!   an unknown outcome) is checked against a [`linearizability::Model`], a deterministic
//!   sequential specification; the search is partitioned by key and memoises (set of
//!   linearized operations, model state). [`linearizability::Register`] models a map of
//!   registers with read, write and compare-and-set; other tiers (the robustness suite
//!   against real servers) add their own models through the same trait.
//! * [`sim`]: one seeded run of a cluster of `keel_raft::RawNode`s on a virtual [`network`]
//!   (delay, reorder, drop, duplicate, symmetric and one-way partitions that heal by
//!   themselves or on a heal event) with a virtual disk per node (crashes keep only what a
//!   completed `Ready` persisted), log compaction and snapshots, membership changes (add
//!   voter, add learner, promote, remove) and leader transfers, and a client
//!   [`workload`] of ReadIndex reads, writes and compare-and-sets on a few
//!   [`registers`].
//! * [`checks`]: the properties every run must keep: at most one leader per term, log
//!   matching, leader completeness, state machine safety (no two nodes apply different
//!   entries at an index), no acknowledged write lost, converged nodes equal, and a
//!   linearizable client history.
//! * The `keel-sim` binary runs many seeds and prints a replay command per failing seed.
//!
//! # Invariants of the harness
//!
//! * A run is a pure function of its [`sim::SimConfig`]: one `SmallRng` stream seeded from
//!   the seed drives every choice, Raft's own randomness is seeded from it, and only ordered
//!   collections (`BTreeMap`, `BTreeSet`, `Vec`) are iterated to make decisions. Time is
//!   virtual.
//! * The harness follows `keel_raft::Ready`'s contract exactly unless a
//!   [`sim::HarnessBug`] is planted on purpose: `persisted_messages` leave only after the
//!   `Ready`'s snapshot, entries and hard state are in the node's storage, which is the
//!   node's disk.
//! * Every queue is bounded: the network holds at most a fixed number of messages in
//!   flight (more are dropped, like a full socket buffer), a node holds at most a fixed
//!   number of pending client requests (more are refused), each client has one operation
//!   outstanding, and a run lasts a bounded number of virtual milliseconds. What grows with
//!   the run (the history, the ledger of applied entries) is bounded by its length.
//! * The checker never rejects a linearizable history: unknown outcomes may take effect at
//!   any time after their invocation or never, and operations whose intervals touch are
//!   treated as concurrent.
//!
//! # What is not simulated
//!
//! * Disk faults other than a torn tail: no bit flips, no lost fsyncs of data that was
//!   acknowledged as durable, no slow disks.
//! * Clocks: Raft only sees ticks, all nodes tick at the same rate (no skew, so nothing
//!   here would catch a lease-based read bug).
//! * Message corruption; the transport either delivers a message intact or not at all.
//! * At most a minority of the initial cluster size is crashed at once (partitions can
//!   still cut off any number of nodes).
//! * The checker is exponential in the worst case; a search that exceeds its step budget
//!   fails the run as inconclusive rather than passing it.
//!
//! # Byte formats
//!
//! The simulated state machine's commands and snapshots have a versioned little-endian
//! format, specified in [`registers`].

pub mod checks;
pub mod linearizability;
pub mod network;
pub mod registers;
pub mod sim;
pub mod workload;
