//! The sequential specification of the keyspace the traffic touches, for
//! `keel_sim::linearizability`: one register per key whose value is absent or
//! a string, with read, put, delete (reporting whether the key existed) and
//! compare-and-set.
//!
//! Ranges and multi-key transactions are not single-key operations; the
//! checker only ever sees their per-key projections (see `check`). Checking
//! each key's projection is sound: a linearizable history of the whole map
//! projects to a linearizable history of every key, so a projection that has
//! no linearization proves a violation. It is weaker than a whole-map check
//! (atomicity across keys is not verified).

use keel_sim::linearizability::{Model, Operation, Outcome};

/// One operation on one key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KvInput {
    /// Linearizable read of the key.
    Read(String),
    /// Sets the key.
    Put(String, String),
    /// Deletes the key.
    Delete(String),
    /// Sets the key to `new` if it holds `expected` (`None`: absent).
    CompareAndSet {
        /// The key.
        key: String,
        /// Value the key must hold.
        expected: Option<String>,
        /// Value stored on success.
        new: String,
    },
}

impl KvInput {
    /// The key this operation touches.
    pub fn key(&self) -> &str {
        match self {
            KvInput::Read(key)
            | KvInput::Put(key, _)
            | KvInput::Delete(key)
            | KvInput::CompareAndSet { key, .. } => key,
        }
    }
}

/// What an operation on one key returns.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KvOutput {
    /// The value read.
    Read(Option<String>),
    /// The put took effect.
    Put,
    /// Whether the delete removed a live key.
    Deleted(bool),
    /// Whether the compare-and-set swapped.
    CompareAndSet(bool),
}

/// Registers keyed by string, with deletes; partitioned by key.
#[derive(Debug, Clone, Copy, Default)]
pub struct KvModel;

impl Model for KvModel {
    type Input = KvInput;
    type Output = KvOutput;
    type State = Option<String>;
    type Partition = String;

    fn partition(&self, input: &KvInput) -> String {
        input.key().to_owned()
    }

    fn init(&self) -> Option<String> {
        None
    }

    fn step(&self, state: &Option<String>, input: &KvInput) -> (Option<String>, KvOutput) {
        match input {
            KvInput::Read(_) => (state.clone(), KvOutput::Read(state.clone())),
            KvInput::Put(_, value) => (Some(value.clone()), KvOutput::Put),
            KvInput::Delete(_) => (None, KvOutput::Deleted(state.is_some())),
            KvInput::CompareAndSet { expected, new, .. } => {
                if state == expected {
                    (Some(new.clone()), KvOutput::CompareAndSet(true))
                } else {
                    (state.clone(), KvOutput::CompareAndSet(false))
                }
            }
        }
    }

    fn output_matches(&self, expected: &KvOutput, observed: &KvOutput) -> bool {
        expected == observed
    }

    fn is_read_only(&self, input: &KvInput) -> bool {
        matches!(input, KvInput::Read(_))
    }

    /// Unknown puts and compare-and-sets whose value nobody observed (no read
    /// returned it, no compare-and-set expected it). Unknown deletes are kept:
    /// they carry no value by which to tell whether they were observed.
    fn skippable_unknowns(&self, ops: &[&Operation<KvInput, KvOutput>]) -> Vec<bool> {
        let mut observed: Vec<&String> = Vec::new();
        for op in ops {
            if let Outcome::Returned {
                output: KvOutput::Read(Some(v)),
                ..
            } = &op.outcome
            {
                observed.push(v);
            }
            if let KvInput::CompareAndSet {
                expected: Some(v), ..
            } = &op.input
            {
                observed.push(v);
            }
        }
        ops.iter()
            .map(|op| {
                let written = match &op.input {
                    KvInput::Put(_, v) | KvInput::CompareAndSet { new: v, .. } => v,
                    KvInput::Read(_) | KvInput::Delete(_) => return false,
                };
                matches!(op.outcome, Outcome::Unknown) && !observed.contains(&written)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_sim::linearizability::{CheckOptions, History, check};

    fn done(
        h: &mut History<KvInput, KvOutput>,
        input: KvInput,
        call: u64,
        out: KvOutput,
        ret: u64,
    ) {
        h.push(Operation {
            client: 0,
            input,
            invoked_at: call,
            outcome: Outcome::Returned {
                at: ret,
                output: out,
            },
        });
    }

    fn put(k: &str, v: &str) -> KvInput {
        KvInput::Put(k.into(), v.into())
    }

    #[test]
    fn a_read_after_a_delete_sees_nothing() {
        let mut h = History::new();
        done(&mut h, put("a", "1"), 0, KvOutput::Put, 1);
        done(
            &mut h,
            KvInput::Delete("a".into()),
            2,
            KvOutput::Deleted(true),
            3,
        );
        done(
            &mut h,
            KvInput::Read("a".into()),
            4,
            KvOutput::Read(None),
            5,
        );
        assert!(check(&KvModel, &h, CheckOptions::default()).is_linearizable());
        let mut stale = h.clone();
        done(
            &mut stale,
            KvInput::Read("a".into()),
            6,
            KvOutput::Read(Some("1".into())),
            7,
        );
        assert!(!check(&KvModel, &stale, CheckOptions::default()).is_linearizable());
    }

    #[test]
    fn a_delete_of_an_absent_key_reports_nothing_deleted() {
        let mut h = History::new();
        done(
            &mut h,
            KvInput::Delete("a".into()),
            0,
            KvOutput::Deleted(true),
            1,
        );
        assert!(!check(&KvModel, &h, CheckOptions::default()).is_linearizable());
    }

    #[test]
    fn an_unknown_put_may_explain_a_later_read() {
        let mut h = History::new();
        h.push(Operation {
            client: 1,
            input: put("a", "x"),
            invoked_at: 0,
            outcome: Outcome::Unknown,
        });
        done(
            &mut h,
            KvInput::Read("a".into()),
            10,
            KvOutput::Read(Some("x".into())),
            11,
        );
        done(
            &mut h,
            KvInput::Read("a".into()),
            12,
            KvOutput::Read(Some("x".into())),
            13,
        );
        assert!(check(&KvModel, &h, CheckOptions::default()).is_linearizable());
    }

    #[test]
    fn compare_and_set_against_absence() {
        let mut h = History::new();
        let cas = |new: &str| KvInput::CompareAndSet {
            key: "a".into(),
            expected: None,
            new: new.into(),
        };
        done(&mut h, cas("1"), 0, KvOutput::CompareAndSet(true), 1);
        done(&mut h, cas("2"), 2, KvOutput::CompareAndSet(true), 3);
        assert!(!check(&KvModel, &h, CheckOptions::default()).is_linearizable());
    }
}
