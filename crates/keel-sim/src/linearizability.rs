//! A linearizability checker in the style of Wing & Gong / Lowe (WGL), as
//! popularised by porcupine.
//!
//! A [`History`] is a set of operations, each with an invoke time and either
//! a return time with an observed output or an unknown outcome (the client
//! gave up: the operation may or may not have taken effect, at any time after
//! its invocation). A [`Model`] is a deterministic sequential specification.
//! [`check`] decides whether some total order of the operations
//!
//! * respects real time (an operation that returned before another was
//!   invoked comes first),
//! * contains every returned operation and any subset of the unknown ones,
//! * and, replayed through the model, produces every observed output.
//!
//! The history is first split into independent partitions by
//! [`Model::partition`] (one register per key, for [`Register`]); each
//! partition is searched depth-first over "which minimal operation is
//! linearized next", with memoisation of the pair (set of linearized
//! operations, model state) so that no configuration is explored twice.
//!
//! Equal timestamps are treated as overlapping: an operation invoked at the
//! instant another returned may be ordered either way. This can only accept
//! more histories, never reject a linearizable one.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Debug;
use std::hash::Hash;

/// A deterministic sequential specification of an object.
pub trait Model {
    /// What a client asks for.
    type Input: Debug;
    /// What the object answers.
    type Output: Debug;
    /// The object's state, memoised by the checker.
    type State: Clone + Eq + Hash;
    /// Operations in different partitions never interact, so each partition
    /// is checked on its own. A model that cannot partition uses `()`.
    type Partition: Ord + Clone + Debug;

    /// The partition an operation belongs to.
    fn partition(&self, input: &Self::Input) -> Self::Partition;

    /// The state of every partition before any operation.
    fn init(&self) -> Self::State;

    /// Applies `input` to `state`, returning the next state and the output a
    /// correct object would give.
    fn step(&self, state: &Self::State, input: &Self::Input) -> (Self::State, Self::Output);

    /// Whether an `observed` output is consistent with the `expected` one
    /// computed by [`Model::step`].
    fn output_matches(&self, expected: &Self::Output, observed: &Self::Output) -> bool;

    /// Operations that never change the state. Those whose outcome is
    /// unknown constrain nothing and are dropped before the search.
    fn is_read_only(&self, input: &Self::Input) -> bool;

    /// For each operation of one partition (in invoke order), whether it is
    /// an unknown-outcome operation worth leaving out of a first, cheaper
    /// search: typically a write whose value nobody observed. Leaving out
    /// unknown operations is sound for acceptance (a linearization without
    /// them is one with them: they simply never took effect), so the first
    /// search can only fail wrongly, and when it fails the checker searches
    /// again with every operation. Unknown operations are what makes the
    /// search explode: each may or may not have happened, anywhere after its
    /// invocation. The default leaves nothing out.
    fn skippable_unknowns(&self, ops: &[&Operation<Self::Input, Self::Output>]) -> Vec<bool> {
        vec![false; ops.len()]
    }
}

/// How an operation ended, as seen by its client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<O> {
    /// The client received `output` at time `at`.
    Returned {
        /// Return time, in the same unit as the invoke time.
        at: u64,
        /// What the client observed.
        output: O,
    },
    /// The client gave up (timeout, lost connection): the operation may or
    /// may not take effect, at any time after its invocation.
    Unknown,
}

/// One client operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation<I, O> {
    /// The client that issued it (for reports only).
    pub client: u64,
    /// What was asked.
    pub input: I,
    /// Invoke time.
    pub invoked_at: u64,
    /// How it ended.
    pub outcome: Outcome<O>,
}

/// Identifies an operation inside a [`History`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpId(usize);

/// A concurrent history, built as clients invoke and complete operations.
#[derive(Debug, Clone)]
pub struct History<I, O> {
    ops: Vec<Option<Operation<I, O>>>,
}

impl<I, O> Default for History<I, O> {
    fn default() -> Self {
        Self { ops: Vec::new() }
    }
}

impl<I, O> History<I, O> {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `client` invoked `input` at time `at`. Until
    /// [`History::complete`] or [`History::discard`] is called, the outcome
    /// is unknown.
    pub fn invoke(&mut self, client: u64, input: I, at: u64) -> OpId {
        self.ops.push(Some(Operation {
            client,
            input,
            invoked_at: at,
            outcome: Outcome::Unknown,
        }));
        OpId(self.ops.len() - 1)
    }

    /// Records that operation `id` returned `output` at time `at`.
    ///
    /// # Panics
    /// If `id` was already completed or discarded, or `at` precedes the
    /// invocation: both are harness bugs.
    pub fn complete(&mut self, id: OpId, output: O, at: u64) {
        let op = self
            .ops
            .get_mut(id.0)
            .and_then(Option::as_mut)
            .expect("complete: operation was discarded or never invoked");
        assert!(
            matches!(op.outcome, Outcome::Unknown),
            "complete: operation {id:?} already completed"
        );
        assert!(
            at >= op.invoked_at,
            "complete: return time {at} precedes invoke time {}",
            op.invoked_at
        );
        op.outcome = Outcome::Returned { at, output };
    }

    /// Removes operation `id`: the client knows it had no effect (for
    /// example, it was rejected before being proposed).
    ///
    /// # Panics
    /// If `id` was already completed: a returned operation cannot be undone.
    pub fn discard(&mut self, id: OpId) {
        let slot = self
            .ops
            .get_mut(id.0)
            .expect("discard: operation never invoked");
        assert!(
            slot.as_ref()
                .is_none_or(|op| matches!(op.outcome, Outcome::Unknown)),
            "discard: operation {id:?} already completed"
        );
        *slot = None;
    }

    /// Adds a fully known operation (for tests and replayed histories).
    pub fn push(&mut self, op: Operation<I, O>) -> OpId {
        if let Outcome::Returned { at, .. } = op.outcome {
            assert!(at >= op.invoked_at, "push: return precedes invocation");
        }
        self.ops.push(Some(op));
        OpId(self.ops.len() - 1)
    }

    /// The input of operation `id`, unless it was discarded.
    pub fn input(&self, id: OpId) -> Option<&I> {
        self.ops.get(id.0)?.as_ref().map(|op| &op.input)
    }

    /// The recorded operations, in invocation order of recording.
    pub fn operations(&self) -> impl Iterator<Item = &Operation<I, O>> {
        self.ops.iter().flatten()
    }

    /// Number of recorded (not discarded) operations.
    pub fn len(&self) -> usize {
        self.operations().count()
    }

    /// Whether no operation is recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Limits on the search.
#[derive(Debug, Clone, Copy)]
pub struct CheckOptions {
    /// Maximum number of model steps per partition before giving up with
    /// [`CheckResult::Inconclusive`]. Counted in steps, not wall time, so
    /// that the verdict is deterministic.
    pub max_steps_per_partition: u64,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            max_steps_per_partition: 10_000_000,
        }
    }
}

/// Evidence that a partition is not linearizable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The partition, formatted with `Debug`.
    pub partition: String,
    /// The partition's operations, formatted with `Debug`, in invoke order.
    pub operations: Vec<String>,
    /// The longest order of operations the search could linearize, as
    /// indices into `operations`; the operation that follows cannot be
    /// placed.
    pub longest_prefix: Vec<usize>,
}

/// The checker's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckResult {
    /// Every partition has a valid linearization.
    Linearizable,
    /// The first partition (in partition order) that has none.
    NotLinearizable(Violation),
    /// The step budget ran out on this partition (formatted with `Debug`)
    /// before a verdict; no partition was found to be violated.
    Inconclusive {
        /// The partition whose search was cut short.
        partition: String,
    },
}

impl CheckResult {
    /// Whether the history was proven linearizable.
    pub fn is_linearizable(&self) -> bool {
        matches!(self, CheckResult::Linearizable)
    }
}

/// Checks `history` against `model`.
pub fn check<M: Model>(
    model: &M,
    history: &History<M::Input, M::Output>,
    options: CheckOptions,
) -> CheckResult {
    let mut partitions: BTreeMap<M::Partition, Vec<&ModelOp<M>>> = BTreeMap::new();
    for op in history.operations() {
        if matches!(op.outcome, Outcome::Unknown) && model.is_read_only(&op.input) {
            continue;
        }
        partitions
            .entry(model.partition(&op.input))
            .or_default()
            .push(op);
    }
    let mut inconclusive = None;
    for (key, mut ops) in partitions {
        ops.sort_by_key(|op| op.invoked_at);
        let skippable = model.skippable_unknowns(&ops);
        assert_eq!(skippable.len(), ops.len(), "one verdict per operation");
        if skippable.iter().any(|&s| s) {
            let reduced: Vec<&ModelOp<M>> = ops
                .iter()
                .zip(&skippable)
                .filter(|&(op, &skip)| {
                    assert!(
                        !skip || matches!(op.outcome, Outcome::Unknown),
                        "only unknown-outcome operations may be skipped"
                    );
                    !skip
                })
                .map(|(op, _)| *op)
                .collect();
            if matches!(
                check_partition(model, &reduced, options.max_steps_per_partition),
                Search::Linearizable
            ) {
                continue;
            }
        }
        match check_partition(model, &ops, options.max_steps_per_partition) {
            Search::Linearizable => {}
            Search::Violated { longest_prefix } => {
                return CheckResult::NotLinearizable(Violation {
                    partition: format!("{key:?}"),
                    operations: ops.iter().map(|op| format!("{op:?}")).collect(),
                    longest_prefix,
                });
            }
            Search::OutOfSteps => {
                inconclusive.get_or_insert_with(|| format!("{key:?}"));
            }
        }
    }
    match inconclusive {
        None => CheckResult::Linearizable,
        Some(partition) => CheckResult::Inconclusive { partition },
    }
}

type ModelOp<M> = Operation<<M as Model>::Input, <M as Model>::Output>;

enum Search {
    Linearizable,
    Violated { longest_prefix: Vec<usize> },
    OutOfSteps,
}

/// A node of the doubly linked event list: the call or the return of one
/// operation. Index 0 is the head sentinel.
#[derive(Clone, Copy)]
struct Event {
    op: usize,
    is_call: bool,
    /// For a call: the index of its return event, if the operation returned.
    matching_return: Option<usize>,
    prev: usize,
    next: Option<usize>,
}

/// A set of operation indices, hashable for memoisation.
#[derive(Clone, PartialEq, Eq, Hash)]
struct BitSet(Vec<u64>);

impl BitSet {
    fn new(len: usize) -> Self {
        Self(vec![0; len.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

const HEAD: usize = 0;

fn check_partition<M: Model>(model: &M, ops: &[&ModelOp<M>], max_steps: u64) -> Search {
    // (time, is_return, op): calls sort before returns at equal times, which
    // makes touching intervals overlap.
    let mut stamps: Vec<(u64, bool, usize)> = Vec::with_capacity(ops.len() * 2);
    for (i, op) in ops.iter().enumerate() {
        stamps.push((op.invoked_at, false, i));
        if let Outcome::Returned { at, .. } = op.outcome {
            stamps.push((at, true, i));
        }
    }
    stamps.sort_unstable();

    let mut events: Vec<Event> = Vec::with_capacity(stamps.len() + 1);
    events.push(Event {
        op: usize::MAX,
        is_call: false,
        matching_return: None,
        prev: HEAD,
        next: None,
    });
    let mut call_event = vec![usize::MAX; ops.len()];
    for (pos, &(_, is_return, op)) in stamps.iter().enumerate() {
        let index = pos + 1;
        if is_return {
            let call = call_event[op];
            assert!(call != usize::MAX, "return event sorted before its call");
            events[call].matching_return = Some(index);
        } else {
            call_event[op] = index;
        }
        events.push(Event {
            op,
            is_call: !is_return,
            matching_return: None,
            prev: index - 1,
            next: None,
        });
        events[index - 1].next = Some(index);
    }

    let mut remaining_returns = stamps.iter().filter(|s| s.1).count();
    let mut linearized = BitSet::new(ops.len());
    let mut cache: HashSet<(BitSet, M::State)> = HashSet::new();
    let mut state = model.init();
    // (call event, state before it) for every operation linearized so far.
    let mut stack: Vec<(usize, M::State)> = Vec::new();
    let mut longest: Vec<usize> = Vec::new();
    let mut steps = 0u64;
    let mut cursor = events[HEAD].next;

    while remaining_returns > 0 {
        let Some(at) = cursor else {
            unreachable!("a returned operation's return event is always after its call");
        };
        let event = events[at];
        if event.is_call {
            steps += 1;
            if steps > max_steps {
                return Search::OutOfSteps;
            }
            let op = ops[event.op];
            let (next_state, expected) = model.step(&state, &op.input);
            let matches = match &op.outcome {
                Outcome::Returned { output, .. } => model.output_matches(&expected, output),
                Outcome::Unknown => true,
            };
            let mut advanced = false;
            if matches {
                let mut next_set = linearized.clone();
                next_set.set(event.op);
                if cache.insert((next_set.clone(), next_state.clone())) {
                    let before = std::mem::replace(&mut state, next_state);
                    stack.push((at, before));
                    linearized = next_set;
                    if event.matching_return.is_some() {
                        remaining_returns -= 1;
                    }
                    lift(&mut events, at);
                    if stack.len() > longest.len() {
                        longest = stack.iter().map(|&(e, _)| events[e].op).collect();
                    }
                    cursor = events[HEAD].next;
                    advanced = true;
                }
            }
            if !advanced {
                cursor = event.next;
            }
        } else {
            // The earliest pending return: its operation must already be
            // linearized, so undo the last choice and try the next one.
            let Some((call, before)) = stack.pop() else {
                return Search::Violated {
                    longest_prefix: longest,
                };
            };
            state = before;
            let op = events[call].op;
            linearized.clear(op);
            if events[call].matching_return.is_some() {
                remaining_returns += 1;
            }
            unlift(&mut events, call);
            cursor = events[call].next;
        }
    }
    Search::Linearizable
}

fn unlink(events: &mut [Event], at: usize) {
    let Event { prev, next, .. } = events[at];
    events[prev].next = next;
    if let Some(next) = next {
        events[next].prev = prev;
    }
}

fn relink(events: &mut [Event], at: usize) {
    let Event { prev, next, .. } = events[at];
    events[prev].next = Some(at);
    if let Some(next) = next {
        events[next].prev = at;
    }
}

/// Removes a call and its return from the list; their own links are kept
/// so that [`unlift`] can put them back in place.
fn lift(events: &mut [Event], call: usize) {
    unlink(events, call);
    if let Some(ret) = events[call].matching_return {
        unlink(events, ret);
    }
}

fn unlift(events: &mut [Event], call: usize) {
    if let Some(ret) = events[call].matching_return {
        relink(events, ret);
    }
    relink(events, call);
}

/// An operation on one register of a key-value map of registers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RegisterInput<K, V> {
    /// Reads the key's value (`None` if never written).
    Read(K),
    /// Sets the key's value.
    Write(K, V),
    /// Sets the key to `new` if its value equals `expected`.
    CompareAndSet {
        /// The key.
        key: K,
        /// The value the register must hold (`None`: never written).
        expected: Option<V>,
        /// The value to store on success.
        new: V,
    },
}

/// What a register operation returns.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RegisterOutput<V> {
    /// The value read.
    Read(Option<V>),
    /// The write took effect.
    Written,
    /// Whether the compare-and-set swapped.
    CompareAndSet(bool),
}

/// A map of independent registers, partitioned by key.
#[derive(Debug, Clone, Copy, Default)]
pub struct Register<K, V> {
    _types: std::marker::PhantomData<fn() -> (K, V)>,
}

impl<K, V> Register<K, V> {
    /// The register model.
    pub fn new() -> Self {
        Self {
            _types: std::marker::PhantomData,
        }
    }
}

impl<K, V> Model for Register<K, V>
where
    K: Ord + Clone + Debug,
    V: Clone + Eq + Hash + Debug,
{
    type Input = RegisterInput<K, V>;
    type Output = RegisterOutput<V>;
    type State = Option<V>;
    type Partition = K;

    fn partition(&self, input: &Self::Input) -> K {
        match input {
            RegisterInput::Read(key)
            | RegisterInput::Write(key, _)
            | RegisterInput::CompareAndSet { key, .. } => key.clone(),
        }
    }

    fn init(&self) -> Option<V> {
        None
    }

    fn step(&self, state: &Option<V>, input: &Self::Input) -> (Option<V>, Self::Output) {
        match input {
            RegisterInput::Read(_) => (state.clone(), RegisterOutput::Read(state.clone())),
            RegisterInput::Write(_, value) => (Some(value.clone()), RegisterOutput::Written),
            RegisterInput::CompareAndSet { expected, new, .. } => {
                if state == expected {
                    (Some(new.clone()), RegisterOutput::CompareAndSet(true))
                } else {
                    (state.clone(), RegisterOutput::CompareAndSet(false))
                }
            }
        }
    }

    fn output_matches(&self, expected: &Self::Output, observed: &Self::Output) -> bool {
        expected == observed
    }

    fn is_read_only(&self, input: &Self::Input) -> bool {
        matches!(input, RegisterInput::Read(_))
    }

    /// Unknown writes and compare-and-sets whose new value no read returned
    /// and no compare-and-set expected: they can only matter to explain a
    /// failed compare-and-set.
    fn skippable_unknowns(&self, ops: &[&Operation<Self::Input, Self::Output>]) -> Vec<bool> {
        let mut observed: Vec<&V> = Vec::new();
        for op in ops {
            if let Outcome::Returned {
                output: RegisterOutput::Read(Some(v)),
                ..
            } = &op.outcome
            {
                observed.push(v);
            }
            if let RegisterInput::CompareAndSet {
                expected: Some(v), ..
            } = &op.input
            {
                observed.push(v);
            }
        }
        ops.iter()
            .map(|op| {
                let written = match &op.input {
                    RegisterInput::Write(_, v) | RegisterInput::CompareAndSet { new: v, .. } => v,
                    RegisterInput::Read(_) => return false,
                };
                matches!(op.outcome, Outcome::Unknown) && !observed.contains(&written)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Reg = Register<&'static str, u64>;
    type In = RegisterInput<&'static str, u64>;
    type Out = RegisterOutput<u64>;

    fn done(h: &mut History<In, Out>, client: u64, input: In, call: u64, output: Out, ret: u64) {
        h.push(Operation {
            client,
            input,
            invoked_at: call,
            outcome: Outcome::Returned { at: ret, output },
        });
    }

    fn verdict(h: &History<In, Out>) -> CheckResult {
        check(&Reg::new(), h, CheckOptions::default())
    }

    #[test]
    fn read_may_linearize_before_a_concurrent_write() {
        // porcupine's first register history: both reads overlap the write.
        let mut h = History::new();
        done(&mut h, 0, In::Write("x", 100), 0, Out::Written, 100);
        done(&mut h, 1, In::Read("x"), 25, Out::Read(Some(100)), 75);
        done(&mut h, 2, In::Read("x"), 30, Out::Read(None), 60);
        assert_eq!(verdict(&h), CheckResult::Linearizable);
    }

    #[test]
    fn read_of_a_value_never_written_is_rejected() {
        let mut h = History::new();
        done(&mut h, 0, In::Write("x", 100), 0, Out::Written, 100);
        done(&mut h, 1, In::Read("x"), 25, Out::Read(Some(200)), 75);
        let CheckResult::NotLinearizable(v) = verdict(&h) else {
            panic!("a read of 200 was accepted");
        };
        assert_eq!(v.partition, "\"x\"");
    }

    #[test]
    fn new_then_old_read_is_rejected() {
        // porcupine's second register history: once a read returned the new
        // value, a later read cannot see the old one, even though the write
        // is still in flight.
        let mut h = History::new();
        done(&mut h, 0, In::Write("x", 200), 0, Out::Written, 100);
        done(&mut h, 1, In::Read("x"), 10, Out::Read(Some(200)), 30);
        done(&mut h, 2, In::Read("x"), 40, Out::Read(None), 90);
        assert!(matches!(verdict(&h), CheckResult::NotLinearizable(_)));
    }

    #[test]
    fn stale_read_after_sequential_writes_is_rejected() {
        let mut h = History::new();
        done(&mut h, 0, In::Write("x", 1), 0, Out::Written, 10);
        done(&mut h, 0, In::Write("x", 2), 20, Out::Written, 30);
        done(&mut h, 1, In::Read("x"), 40, Out::Read(Some(1)), 50);
        assert!(matches!(verdict(&h), CheckResult::NotLinearizable(_)));
    }

    #[test]
    fn two_successful_cas_from_the_same_value_are_rejected() {
        // Knossos' cas-register: only one of two concurrent CAS(0 -> _) can win.
        let mut h = History::new();
        done(&mut h, 0, In::Write("x", 0), 0, Out::Written, 5);
        let cas = |new| In::CompareAndSet {
            key: "x",
            expected: Some(0),
            new,
        };
        done(&mut h, 1, cas(1), 10, Out::CompareAndSet(true), 20);
        done(&mut h, 2, cas(2), 12, Out::CompareAndSet(true), 22);
        assert!(matches!(verdict(&h), CheckResult::NotLinearizable(_)));
    }

    #[test]
    fn cas_failure_needs_a_differing_value() {
        let mut h = History::new();
        let cas = In::CompareAndSet {
            key: "x",
            expected: None,
            new: 1,
        };
        done(&mut h, 0, cas.clone(), 0, Out::CompareAndSet(false), 10);
        assert!(matches!(verdict(&h), CheckResult::NotLinearizable(_)));
        // A concurrent write explains the failure.
        done(&mut h, 1, In::Write("x", 7), 5, Out::Written, 15);
        assert_eq!(verdict(&h), CheckResult::Linearizable);
    }

    #[test]
    fn knossos_multi_register_interleaving() {
        // Writes 1 and 2 overlap; readers disagree on the order but each
        // individual order can be explained only if the reads are compatible.
        let mut h = History::new();
        done(&mut h, 0, In::Write("x", 1), 0, Out::Written, 50);
        done(&mut h, 1, In::Write("x", 2), 0, Out::Written, 50);
        done(&mut h, 2, In::Read("x"), 10, Out::Read(Some(1)), 20);
        done(&mut h, 3, In::Read("x"), 25, Out::Read(Some(2)), 30);
        done(&mut h, 4, In::Read("x"), 60, Out::Read(Some(2)), 70);
        assert_eq!(verdict(&h), CheckResult::Linearizable);
        // ... but 1, 2, 1 is impossible: each write happens once.
        done(&mut h, 5, In::Read("x"), 35, Out::Read(Some(1)), 40);
        assert!(matches!(verdict(&h), CheckResult::NotLinearizable(_)));
    }

    #[test]
    fn unknown_write_may_or_may_not_take_effect() {
        let mut h = History::new();
        let lost = h.invoke(0, In::Write("x", 9), 0);
        done(&mut h, 1, In::Read("x"), 10, Out::Read(None), 20);
        done(&mut h, 1, In::Read("x"), 30, Out::Read(Some(9)), 40);
        assert_eq!(verdict(&h), CheckResult::Linearizable);
        let _ = lost;
        // It cannot take effect before it was invoked.
        let mut early = History::new();
        done(&mut early, 1, In::Read("x"), 0, Out::Read(Some(9)), 5);
        early.invoke(0, In::Write("x", 9), 10);
        assert!(matches!(verdict(&early), CheckResult::NotLinearizable(_)));
    }

    #[test]
    fn an_unobserved_unknown_write_still_explains_a_failed_cas() {
        // The first, reduced search leaves the unknown write out and fails;
        // the full search needs it.
        let mut h = History::new();
        h.invoke(0, In::Write("x", 7), 0);
        let cas = In::CompareAndSet {
            key: "x",
            expected: None,
            new: 1,
        };
        done(&mut h, 1, cas, 10, Out::CompareAndSet(false), 20);
        assert_eq!(
            Reg::new().skippable_unknowns(&h.operations().collect::<Vec<_>>()),
            vec![true, false]
        );
        assert_eq!(verdict(&h), CheckResult::Linearizable);
    }

    #[test]
    fn many_unobserved_unknown_writes_stay_cheap() {
        // 40 writes that may or may not have happened, none observed, and a
        // stale read that is fine without them: without leaving them out
        // the search would visit up to 2^40 subsets.
        let mut h = History::new();
        done(&mut h, 0, In::Write("x", 1), 0, Out::Written, 1);
        for i in 0..40 {
            h.invoke(1 + i, In::Write("x", 100 + i), 2);
        }
        done(&mut h, 99, In::Read("x"), 50, Out::Read(Some(1)), 60);
        let budget = CheckOptions {
            max_steps_per_partition: 1_000,
        };
        assert_eq!(check(&Reg::new(), &h, budget), CheckResult::Linearizable);
        let mut all: Vec<_> = h.operations().collect();
        all.sort_by_key(|op| op.invoked_at);
        assert!(matches!(
            check_partition(&Reg::new(), &all, 1_000),
            Search::OutOfSteps
        ));
    }

    #[test]
    fn discarded_operation_never_explains_a_read() {
        let mut h = History::new();
        let rejected = h.invoke(0, In::Write("x", 9), 0);
        h.discard(rejected);
        done(&mut h, 1, In::Read("x"), 30, Out::Read(Some(9)), 40);
        assert!(matches!(verdict(&h), CheckResult::NotLinearizable(_)));
    }

    #[test]
    fn invoke_complete_round_trip() {
        let mut h = History::new();
        let w = h.invoke(0, In::Write("x", 3), 0);
        let r = h.invoke(1, In::Read("x"), 1);
        h.complete(r, Out::Read(Some(3)), 4);
        h.complete(w, Out::Written, 5);
        assert_eq!(h.len(), 2);
        assert_eq!(verdict(&h), CheckResult::Linearizable);
    }

    #[test]
    fn touching_intervals_overlap() {
        let mut h = History::new();
        done(&mut h, 0, In::Write("x", 1), 0, Out::Written, 10);
        done(&mut h, 1, In::Read("x"), 10, Out::Read(None), 20);
        assert_eq!(verdict(&h), CheckResult::Linearizable);
    }

    #[test]
    fn partitions_are_independent_and_the_bad_one_is_named() {
        let mut h = History::new();
        done(&mut h, 0, In::Write("a", 1), 0, Out::Written, 10);
        done(&mut h, 0, In::Read("a"), 20, Out::Read(Some(1)), 30);
        done(&mut h, 1, In::Write("b", 1), 0, Out::Written, 10);
        done(&mut h, 1, In::Read("b"), 20, Out::Read(None), 30);
        let CheckResult::NotLinearizable(v) = verdict(&h) else {
            panic!("stale read on b accepted");
        };
        assert_eq!(v.partition, "\"b\"");
        assert_eq!(v.operations.len(), 2);
        assert_eq!(v.longest_prefix, vec![0]);
    }

    #[test]
    fn step_budget_makes_the_verdict_inconclusive() {
        let mut h = History::new();
        for i in 0..10 {
            done(&mut h, i, In::Write("x", i), 0, Out::Written, 100);
        }
        done(&mut h, 99, In::Read("x"), 200, Out::Read(Some(1000)), 300);
        let tiny = CheckOptions {
            max_steps_per_partition: 10,
        };
        assert_eq!(
            check(&Reg::new(), &h, tiny),
            CheckResult::Inconclusive {
                partition: "\"x\"".to_string()
            }
        );
        // The full search visits every (subset of writes, last write) pair:
        // 10 * 2^9 configurations, well within the default budget.
        assert!(matches!(verdict(&h), CheckResult::NotLinearizable(_)));
    }

    /// One operation of a generated sequential execution: key, kind, and how
    /// far before/after its linearization point it is invoked/returns.
    fn sequential_history(
        ops: &[(u8, u8, u64, u64, bool)],
        spacing: u64,
    ) -> History<RegisterInput<u8, u64>, RegisterOutput<u64>> {
        let model = Register::<u8, u64>::new();
        let mut states: BTreeMap<u8, Option<u64>> = BTreeMap::new();
        let mut h = History::new();
        for (i, &(key, kind, before, after, unknown)) in ops.iter().enumerate() {
            let value = i as u64;
            let input = match kind % 3 {
                0 => RegisterInput::Read(key),
                1 => RegisterInput::Write(key, value),
                _ => RegisterInput::CompareAndSet {
                    key,
                    expected: if value.is_multiple_of(2) {
                        states.get(&key).cloned().flatten()
                    } else {
                        Some(value.saturating_sub(1))
                    },
                    new: value,
                },
            };
            let state = states.entry(key).or_insert(None);
            let (next, output) = model.step(state, &input);
            *state = next;
            let point = 1_000 + i as u64 * spacing;
            let invoked_at = point - before.min(1_000);
            let outcome = if unknown {
                Outcome::Unknown
            } else {
                Outcome::Returned {
                    at: point + after,
                    output,
                }
            };
            h.push(Operation {
                client: i as u64,
                input,
                invoked_at,
                outcome,
            });
        }
        h
    }

    proptest! {
        #[test]
        fn histories_of_a_sequential_execution_are_accepted(
            ops in prop::collection::vec(
                (0u8..3, 0u8..3, 0u64..40, 0u64..40, prop::bool::weighted(0.1)),
                0..60,
            )
        ) {
            let h = sequential_history(&ops, 10);
            let model = Register::<u8, u64>::new();
            prop_assert_eq!(check(&model, &h, CheckOptions::default()), CheckResult::Linearizable);
        }

        #[test]
        fn a_corrupted_read_in_a_sequential_history_is_rejected(
            ops in prop::collection::vec((0u8..3, 0u8..3, 0u64..1, 0u64..1, Just(false)), 1..40),
            victim in any::<prop::sample::Index>(),
        ) {
            // Non-overlapping windows: the order is fixed, so a read that
            // returns a value no one wrote cannot be explained.
            let h = sequential_history(&ops, 10);
            let mut ops_out: Vec<_> = h.operations().cloned().collect();
            let i = victim.index(ops_out.len());
            ops_out[i].input = RegisterInput::Read(ops_out[i].input_key());
            if let Outcome::Returned { output, .. } = &mut ops_out[i].outcome {
                *output = RegisterOutput::Read(Some(1_000_000));
            }
            let mut corrupted = History::new();
            for op in ops_out {
                corrupted.push(op);
            }
            let model = Register::<u8, u64>::new();
            prop_assert!(matches!(
                check(&model, &corrupted, CheckOptions::default()),
                CheckResult::NotLinearizable(_)
            ));
        }
    }

    impl Operation<RegisterInput<u8, u64>, RegisterOutput<u64>> {
        fn input_key(&self) -> u8 {
            Register::<u8, u64>::new().partition(&self.input)
        }
    }
}
