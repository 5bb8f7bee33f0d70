//! Simulated clients: each runs one operation at a time against a few
//! registers and records it in the shared [`History`].
//!
//! A client whose operation is not answered within its timeout gives up:
//! the operation stays in the history with an unknown outcome (it may still
//! take effect later). An operation the node refused outright (Raft
//! returned an error before anything was proposed) is discarded from the
//! history: it had no effect. Either way the client retries the same
//! operation, as a new request on another node, up to [`MAX_ATTEMPTS`]
//! times in all, like etcd's client does; each attempt is its own operation
//! in the history, so a write may take effect twice.

use std::collections::BTreeMap;

use rand::Rng;
use rand::rngs::SmallRng;

use crate::linearizability::{History, OpId, RegisterInput, RegisterOutput};
use crate::network::NodeId;
use crate::registers::Command;

/// Attempts at one operation before a client moves on to a new one.
pub const MAX_ATTEMPTS: u32 = 3;

/// The history type of the simulator's register workload.
pub type RegisterHistory = History<RegisterInput<u64, u64>, RegisterOutput<u64>>;

/// What a client asks a node to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// A linearizable read of `key` (through ReadIndex).
    Read {
        /// Request id, also the ReadIndex context.
        request: u64,
        /// Register.
        key: u64,
    },
    /// A write or compare-and-set, proposed to the log.
    Change(Command),
}

impl Request {
    /// The same request under another id.
    fn with_id(self, request: u64) -> Request {
        match self {
            Request::Read { key, .. } => Request::Read { request, key },
            Request::Change(Command::Write { key, value, .. }) => Request::Change(Command::Write {
                request,
                key,
                value,
            }),
            Request::Change(Command::CompareAndSet {
                key,
                expected,
                value,
                ..
            }) => Request::Change(Command::CompareAndSet {
                request,
                key,
                expected,
                value,
            }),
        }
    }

    /// The request id.
    pub fn id(&self) -> u64 {
        match self {
            Request::Read { request, .. } => *request,
            Request::Change(command) => command.request(),
        }
    }
}

/// Workload parameters.
#[derive(Debug, Clone, Copy)]
pub struct WorkloadConfig {
    /// Number of concurrent clients.
    pub clients: usize,
    /// Number of registers.
    pub keys: u64,
    /// A client gives up on an operation after this long.
    pub timeout_ms: u64,
    /// Largest pause between two operations of one client.
    pub max_think_ms: u64,
}

#[derive(Debug, Clone, Copy)]
enum ClientState {
    Idle {
        next_at_ms: u64,
    },
    Waiting {
        request: u64,
        op: OpId,
        node: NodeId,
        deadline_ms: u64,
        is_change: bool,
    },
}

#[derive(Debug)]
struct Client {
    state: ClientState,
    /// The leader the last contacted node knew of.
    leader_hint: Option<NodeId>,
    /// Last value this client read per key, to aim compare-and-sets.
    last_read: BTreeMap<u64, Option<u64>>,
    /// The last operation chosen, with its number of attempts so far.
    last_sent: Option<(Request, u32)>,
    /// Whether the next operation repeats `last_sent`.
    retry: bool,
}

/// An operation a client wants to start now.
#[derive(Debug, Clone, Copy)]
pub struct Invocation {
    /// Client index.
    pub client: usize,
    /// What to send.
    pub request: Request,
    /// Where the client would like to send it, if it knows a leader.
    pub preferred_node: Option<NodeId>,
}

/// A timed-out operation, so the cluster can forget it on the node.
#[derive(Debug, Clone, Copy)]
pub struct Abandoned {
    /// The node that held the request.
    pub node: NodeId,
    /// The request id.
    pub request: u64,
}

/// All clients and their history.
#[derive(Debug)]
pub struct Workload {
    config: WorkloadConfig,
    clients: Vec<Client>,
    history: RegisterHistory,
    next_request: u64,
    acknowledged_changes: Vec<u64>,
    unknown: u64,
    refused: u64,
    stopped: bool,
}

impl Workload {
    /// Clients that start at random times within their think time.
    pub fn new(config: WorkloadConfig, rng: &mut SmallRng) -> Self {
        assert!(config.clients > 0 && config.keys > 0, "empty workload");
        let clients = (0..config.clients)
            .map(|_| Client {
                state: ClientState::Idle {
                    next_at_ms: rng.random_range(0..=config.max_think_ms),
                },
                leader_hint: None,
                last_read: BTreeMap::new(),
                last_sent: None,
                retry: false,
            })
            .collect();
        Self {
            config,
            clients,
            history: History::new(),
            next_request: 1,
            acknowledged_changes: Vec::new(),
            unknown: 0,
            refused: 0,
            stopped: false,
        }
    }

    /// The clients that want to start an operation at `now_ms`, with the
    /// operation chosen. The caller must follow each with [`Workload::sent`]
    /// or [`Workload::refused`].
    pub fn due(&mut self, rng: &mut SmallRng, now_ms: u64) -> Vec<Invocation> {
        let mut out = Vec::new();
        if self.stopped {
            return out;
        }
        for (index, client) in self.clients.iter_mut().enumerate() {
            let ClientState::Idle { next_at_ms } = client.state else {
                continue;
            };
            if next_at_ms > now_ms {
                continue;
            }
            let request_id = self.next_request;
            self.next_request += 1;
            let (request, attempts) = match client.last_sent {
                Some((previous, attempts)) if client.retry && attempts < MAX_ATTEMPTS => {
                    (previous.with_id(request_id), attempts + 1)
                }
                _ => (
                    Self::new_request(rng, client, request_id, self.config.keys),
                    1,
                ),
            };
            client.last_sent = Some((request, attempts));
            client.retry = false;
            let preferred_node = client.leader_hint.filter(|_| rng.random_ratio(4, 5));
            out.push(Invocation {
                client: index,
                request,
                preferred_node,
            });
        }
        out
    }

    fn new_request(rng: &mut SmallRng, client: &Client, request: u64, keys: u64) -> Request {
        let key = rng.random_range(0..keys);
        // Values are request ids: unique, which keeps the checker's search
        // narrow.
        match rng.random_range(0..10) {
            0..4 => Request::Read { request, key },
            4..8 => Request::Change(Command::Write {
                request,
                key,
                value: request,
            }),
            _ => Request::Change(Command::CompareAndSet {
                request,
                key,
                expected: client.last_read.get(&key).copied().flatten(),
                value: request,
            }),
        }
    }

    /// Records that `client` sent `request` to `node` at `now_ms`.
    pub fn sent(&mut self, client: usize, request: Request, node: NodeId, now_ms: u64) {
        let input = match request {
            Request::Read { key, .. } => RegisterInput::Read(key),
            Request::Change(Command::Write { key, value, .. }) => RegisterInput::Write(key, value),
            Request::Change(Command::CompareAndSet {
                key,
                expected,
                value,
                ..
            }) => RegisterInput::CompareAndSet {
                key,
                expected,
                new: value,
            },
        };
        let op = self.history.invoke(client as u64, input, now_ms);
        let c = &mut self.clients[client];
        c.state = ClientState::Waiting {
            request: request.id(),
            op,
            node,
            deadline_ms: now_ms + self.config.timeout_ms,
            is_change: matches!(request, Request::Change(_)),
        };
    }

    /// Records that the node refused the request before proposing it: it
    /// never happened. The client tries another node soon.
    pub fn refused(&mut self, client: usize, rng: &mut SmallRng, now_ms: u64) {
        self.refused += 1;
        let c = &mut self.clients[client];
        c.leader_hint = None;
        c.retry = true;
        c.state = ClientState::Idle {
            next_at_ms: now_ms + rng.random_range(1..=self.config.max_think_ms.max(1)),
        };
    }

    /// Delivers a node's answer to request `request` of `client`. Answers to
    /// requests the client gave up on are ignored (the history keeps them
    /// unknown, which allows either outcome).
    pub fn answer(
        &mut self,
        client: usize,
        request: u64,
        output: RegisterOutput<u64>,
        leader_hint: NodeId,
        rng: &mut SmallRng,
        now_ms: u64,
    ) {
        let c = &mut self.clients[client];
        let ClientState::Waiting {
            request: waiting,
            op,
            is_change,
            ..
        } = c.state
        else {
            return;
        };
        if waiting != request {
            return;
        }
        if let RegisterOutput::Read(value) = output
            && let Some(RegisterInput::Read(key)) = self.history.input(op)
        {
            c.last_read.insert(*key, value);
        }
        self.history.complete(op, output, now_ms);
        if is_change {
            self.acknowledged_changes.push(request);
        }
        c.leader_hint = (leader_hint != 0).then_some(leader_hint);
        c.state = ClientState::Idle {
            next_at_ms: now_ms + rng.random_range(0..=self.config.max_think_ms),
        };
    }

    /// Gives up on every operation whose deadline passed; returns them so the
    /// nodes holding them can forget them.
    pub fn expire(&mut self, rng: &mut SmallRng, now_ms: u64) -> Vec<Abandoned> {
        let mut out = Vec::new();
        for c in &mut self.clients {
            let ClientState::Waiting {
                request,
                node,
                deadline_ms,
                ..
            } = c.state
            else {
                continue;
            };
            if deadline_ms > now_ms {
                continue;
            }
            self.unknown += 1;
            out.push(Abandoned { node, request });
            c.leader_hint = None;
            c.retry = true;
            c.state = ClientState::Idle {
                next_at_ms: now_ms + rng.random_range(0..=self.config.max_think_ms),
            };
        }
        out
    }

    /// Stops clients from starting new operations (the run is winding
    /// down); operations in flight still complete or time out.
    pub fn stop(&mut self) {
        self.stopped = true;
    }

    /// Whether any client waits for an answer.
    pub fn has_outstanding(&self) -> bool {
        self.clients
            .iter()
            .any(|c| matches!(c.state, ClientState::Waiting { .. }))
    }

    /// The history so far.
    pub fn history(&self) -> &RegisterHistory {
        &self.history
    }

    /// Request ids of writes and compare-and-sets that were answered.
    pub fn acknowledged_changes(&self) -> &[u64] {
        &self.acknowledged_changes
    }

    /// Operations that timed out (outcome unknown).
    pub fn unknown(&self) -> u64 {
        self.unknown
    }

    /// Operations refused by a node.
    pub fn refused_count(&self) -> u64 {
        self.refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linearizability::Outcome;
    use rand::SeedableRng;

    fn one_client() -> (Workload, SmallRng) {
        let mut rng = SmallRng::seed_from_u64(3);
        let config = WorkloadConfig {
            clients: 1,
            keys: 2,
            timeout_ms: 100,
            max_think_ms: 0,
        };
        (Workload::new(config, &mut rng), rng)
    }

    fn same_operation(a: Request, b: Request) -> bool {
        a.with_id(0) == b.with_id(0)
    }

    #[test]
    fn a_timed_out_operation_is_retried_as_a_new_request_a_bounded_number_of_times() {
        let (mut w, mut rng) = one_client();
        let mut now = 0;
        let first = w.due(&mut rng, now)[0].request;
        let mut sent = vec![first];
        w.sent(0, first, 1, now);
        for _ in 1..MAX_ATTEMPTS {
            now += 100;
            let abandoned = w.expire(&mut rng, now);
            assert_eq!(abandoned.len(), 1);
            let retry = w.due(&mut rng, now)[0].request;
            assert!(same_operation(retry, first), "{retry:?} is not {first:?}");
            assert!(
                sent.iter().all(|r| r.id() != retry.id()),
                "request ids repeat"
            );
            w.sent(0, retry, 2, now);
            sent.push(retry);
        }
        now += 100;
        w.expire(&mut rng, now);
        let next = w.due(&mut rng, now)[0].request;
        assert!(sent.iter().all(|r| r.id() != next.id()));
        assert_eq!(w.unknown(), u64::from(MAX_ATTEMPTS));
        assert_eq!(w.history().len(), MAX_ATTEMPTS as usize);
        assert!(
            w.history()
                .operations()
                .all(|op| op.outcome == Outcome::Unknown)
        );
    }

    #[test]
    fn a_refused_operation_leaves_no_trace_and_is_retried() {
        let (mut w, mut rng) = one_client();
        let first = w.due(&mut rng, 0)[0].request;
        w.refused(0, &mut rng, 0);
        assert!(w.history().is_empty());
        let retry = w.due(&mut rng, 1)[0].request;
        assert!(same_operation(retry, first));
        assert_eq!(w.refused_count(), 1);
    }

    #[test]
    fn late_answers_are_ignored_and_acknowledged_changes_recorded() {
        let (mut w, mut rng) = one_client();
        let mut now = 0;
        // Run until the client picks a change, answering reads on the way.
        let change = loop {
            let r = w.due(&mut rng, now)[0].request;
            w.sent(0, r, 1, now);
            match r {
                Request::Read { request, .. } => {
                    w.answer(0, request, RegisterOutput::Read(None), 1, &mut rng, now)
                }
                Request::Change(_) => break r,
            }
            now += 1;
        };
        w.answer(
            0,
            change.id() + 1_000,
            RegisterOutput::Written,
            1,
            &mut rng,
            now,
        );
        assert!(
            w.has_outstanding(),
            "an answer to another request completed this one"
        );
        let output = match change {
            Request::Change(Command::Write { .. }) => RegisterOutput::Written,
            _ => RegisterOutput::CompareAndSet(true),
        };
        w.answer(0, change.id(), output.clone(), 1, &mut rng, now + 1);
        assert!(!w.has_outstanding());
        assert_eq!(w.acknowledged_changes(), &[change.id()]);
        // The same answer again changes nothing.
        w.answer(0, change.id(), output, 1, &mut rng, now + 2);
        assert_eq!(w.acknowledged_changes(), &[change.id()]);
    }

    #[test]
    fn a_stopped_workload_starts_nothing_new() {
        let (mut w, mut rng) = one_client();
        w.stop();
        assert!(w.due(&mut rng, 1_000).is_empty());
    }
}
