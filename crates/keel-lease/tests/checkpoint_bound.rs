//! The crate docs' bound, over random timelines: three members apply the same
//! entries; one at a time is primary; leadership moves with a leaderless gap. The
//! simulated server polls the primary a fixed `lag` after each time `next_deadline_ms`
//! says (a late poller), applies revokes and checkpoints on every member at once, and
//! applies a renewal's clearing checkpoint before the renewal counts. For every lease,
//! with `t` its last renewal (or grant) and `T` its TTL:
//!
//! - it is never reported expired before `t + T`;
//! - its expiry on the primary stays within `t + T + Σ (gap + extension + checkpoint
//!   interval + lag)` over the leader changes since `t`, at every step, and it is
//!   reported expired by then plus one more `lag`.

use std::collections::BTreeMap;

use keel_lease::{LeaseError, LeaseId, Lessor, LessorConfig};
use proptest::prelude::*;

const MEMBERS: usize = 3;
const CHECKPOINT_INTERVAL_MS: u64 = 10_000;
const ELECTION_TIMEOUT_MS: u64 = 1_000;

#[derive(Debug, Clone)]
enum Op {
    Grant {
        ttl_secs: i64,
    },
    Renew {
        pick: usize,
    },
    Revoke {
        pick: usize,
    },
    LeaderChange {
        gap_ms: u64,
        hop: usize,
    },
    /// Moves time to just before the primary's next deadline, where a leader change
    /// finds the recorded remaining TTL at its stalest.
    ToEdge {
        before_ms: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1i64..90).prop_map(|ttl_secs| Op::Grant { ttl_secs }),
        4 => any::<usize>().prop_map(|pick| Op::Renew { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Revoke { pick }),
        2 => (0u64..8_000, 1usize..MEMBERS).prop_map(|(gap_ms, hop)| Op::LeaderChange { gap_ms, hop }),
        2 => (1u64..3).prop_map(|before_ms| Op::ToEdge { before_ms }),
    ]
}

fn delay_ms() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0u64), 0u64..15_000]
}

/// What the bound promises about one lease.
#[derive(Debug)]
struct Promise {
    /// `t + T`: never expired before.
    deadline_ms: u64,
    /// Extra time leader changes since `t` may add.
    allowance_ms: u64,
}

struct Sim {
    members: Vec<Lessor>,
    leader: usize,
    now_ms: u64,
    lag_ms: u64,
    promises: BTreeMap<LeaseId, Promise>,
    next_id: i64,
    expired_reported: usize,
    checkpoints_applied: usize,
}

impl Sim {
    fn new(lag_ms: u64) -> Self {
        let config = LessorConfig {
            checkpoint_interval_ms: CHECKPOINT_INTERVAL_MS,
            revoke_rate_per_sec: 100_000,
            max_expired_per_call: 10_000,
            ..LessorConfig::default()
        };
        let mut members: Vec<Lessor> = (0..MEMBERS).map(|_| Lessor::new(config.clone())).collect();
        members[0].promote(0, ELECTION_TIMEOUT_MS);
        Self {
            members,
            leader: 0,
            now_ms: 0,
            lag_ms,
            promises: BTreeMap::new(),
            next_id: 1,
            expired_reported: 0,
            checkpoints_applied: 0,
        }
    }

    /// Moves time to `target_ms`, doing the primary's work at each of its deadlines.
    fn advance_to(&mut self, target_ms: u64) -> Result<(), TestCaseError> {
        let mut rounds = 0;
        while let Some(deadline_ms) = self.members[self.leader].next_deadline_ms() {
            let poll_ms = deadline_ms + self.lag_ms;
            if poll_ms > target_ms {
                break;
            }
            rounds += 1;
            prop_assert!(
                rounds < 100_000,
                "the primary's deadlines do not move forward"
            );
            self.now_ms = self.now_ms.max(poll_ms);
            self.poll()?;
        }
        self.now_ms = target_ms;
        Ok(())
    }

    fn poll(&mut self) -> Result<(), TestCaseError> {
        let now = self.now_ms;
        let expired = self.members[self.leader].find_expired(now, usize::MAX);
        for id in expired {
            let promise = self
                .promises
                .remove(&id)
                .expect("only live leases are reported");
            prop_assert!(
                now >= promise.deadline_ms,
                "lease {id} expired at {now}, before {}",
                promise.deadline_ms
            );
            prop_assert!(
                now <= promise.deadline_ms + promise.allowance_ms + self.lag_ms,
                "lease {id} expired at {now}, after {} + {} + lag {}",
                promise.deadline_ms,
                promise.allowance_ms,
                self.lag_ms
            );
            for m in &mut self.members {
                m.apply_revoke(id.get())
                    .expect("every member has the lease");
            }
            self.expired_reported += 1;
        }
        loop {
            let batch = self.members[self.leader].due_checkpoints(now);
            if batch.is_empty() {
                break;
            }
            self.checkpoints_applied += batch.len();
            let records: Vec<_> = self
                .members
                .iter_mut()
                .map(|m| m.apply_checkpoint(&batch))
                .collect();
            prop_assert!(
                records.windows(2).all(|w| w[0] == w[1]),
                "members disagree on a checkpoint"
            );
        }
        for (i, m) in self.members.iter_mut().enumerate() {
            if i != self.leader {
                prop_assert!(
                    m.find_expired(now, usize::MAX).is_empty(),
                    "member {i} is not primary"
                );
            }
        }
        Ok(())
    }

    fn pick(&self, pick: usize) -> Option<LeaseId> {
        let n = self.promises.len();
        (n > 0).then(|| *self.promises.keys().nth(pick % n).expect("index below len"))
    }

    fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let now = self.now_ms;
        match *op {
            Op::Grant { ttl_secs } => {
                let id = self.next_id;
                self.next_id += 1;
                let records: Vec<_> = self
                    .members
                    .iter_mut()
                    .map(|m| m.apply_grant(id, ttl_secs, now).expect("fresh id"))
                    .collect();
                prop_assert!(records.windows(2).all(|w| w[0] == w[1]));
                let ttl_ms = u64::try_from(records[0].ttl_secs).expect("positive") * 1000;
                self.promises.insert(
                    records[0].id,
                    Promise {
                        deadline_ms: now + ttl_ms,
                        allowance_ms: 0,
                    },
                );
            }
            Op::Renew { pick } => {
                let Some(id) = self.pick(pick) else {
                    return Ok(());
                };
                let renewed = match self.members[self.leader].renew(id, now) {
                    Ok(r) => r,
                    Err(LeaseError::Expired(_)) => {
                        // Expired, not yet reported by the late poller: the server
                        // waits for the revoke, the client sees "not found".
                        let deadline_ms = self.promises[&id].deadline_ms;
                        prop_assert!(
                            now >= deadline_ms,
                            "lease {id} refused at {now}, before {deadline_ms}"
                        );
                        return Ok(());
                    }
                    Err(e) => {
                        return Err(TestCaseError::fail(format!(
                            "renew of live lease {id} failed: {e}"
                        )));
                    }
                };
                if let Some(cp) = renewed.checkpoint {
                    for m in &mut self.members {
                        m.apply_checkpoint(&[cp]);
                    }
                }
                let ttl_ms = u64::try_from(renewed.ttl_secs).expect("positive") * 1000;
                self.promises.insert(
                    id,
                    Promise {
                        deadline_ms: now + ttl_ms,
                        allowance_ms: 0,
                    },
                );
            }
            Op::Revoke { pick } => {
                let Some(id) = self.pick(pick) else {
                    return Ok(());
                };
                for m in &mut self.members {
                    m.apply_revoke(id.get()).expect("live lease");
                }
                self.promises.remove(&id);
            }
            Op::LeaderChange { gap_ms, hop } => {
                self.members[self.leader].demote();
                for m in &mut self.members {
                    prop_assert_eq!(
                        m.renew(LeaseId::new(1).expect("nonzero"), now),
                        Err(LeaseError::NotPrimary)
                    );
                }
                self.now_ms += gap_ms;
                self.leader = (self.leader + hop) % MEMBERS;
                self.members[self.leader].promote(self.now_ms, ELECTION_TIMEOUT_MS);
                for p in self.promises.values_mut() {
                    p.allowance_ms +=
                        gap_ms + ELECTION_TIMEOUT_MS + CHECKPOINT_INTERVAL_MS + self.lag_ms;
                }
            }
            Op::ToEdge { before_ms } => {
                if let Some(deadline_ms) = self.members[self.leader].next_deadline_ms() {
                    let target = (deadline_ms + self.lag_ms)
                        .saturating_sub(before_ms)
                        .max(now);
                    self.advance_to(target)?;
                }
            }
        }
        self.check_window()
    }

    fn check_window(&self) -> Result<(), TestCaseError> {
        for (id, p) in &self.promises {
            let expiry = self.members[self.leader]
                .expiry_ms(*id)
                .expect("the primary times every lease");
            prop_assert!(
                expiry >= p.deadline_ms,
                "lease {id}: expiry {expiry} before deadline {}",
                p.deadline_ms
            );
            prop_assert!(
                expiry <= p.deadline_ms + p.allowance_ms,
                "lease {id}: expiry {expiry} beyond {} + {}",
                p.deadline_ms,
                p.allowance_ms
            );
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn leases_neither_expire_early_nor_outlive_the_documented_bound(
        lag_ms in prop_oneof![Just(0u64), 0u64..1_500],
        steps in prop::collection::vec((delay_ms(), op()), 1..80)
    ) {
        let mut sim = Sim::new(lag_ms);
        for (delay_ms, op) in &steps {
            sim.advance_to(sim.now_ms + delay_ms)?;
            sim.step(op)?;
        }
        // Run out the clock: every remaining lease must expire within its window.
        sim.advance_to(sim.now_ms + 200_000_000)?;
        prop_assert!(sim.promises.is_empty(), "leases left: {:?}", sim.promises);
    }
}

/// The simulation exercises what it claims to: leader changes with checkpoints
/// applied, and leases resumed from them rather than from their full TTL.
#[test]
fn a_long_lease_resumes_from_its_checkpoint_across_two_leader_changes() {
    let mut sim = Sim::new(0);
    sim.step(&Op::Grant { ttl_secs: 60 }).expect("grant");
    let id = LeaseId::new(1).expect("nonzero");
    sim.advance_to(35_000).expect("no expiry yet");
    assert_eq!(sim.checkpoints_applied, 3, "at 10, 20 and 30 s");
    assert_eq!(
        sim.members[2]
            .get(id)
            .expect("replicated")
            .remaining_ttl_secs,
        30
    );
    sim.step(&Op::LeaderChange {
        gap_ms: 2_000,
        hop: 1,
    })
    .expect("leader change");
    // Demoted at 35 s with 25 s truly left; resumes 30 s + 1 s extension from 37 s.
    assert_eq!(sim.members[1].expiry_ms(id), Some(68_000));
    sim.advance_to(50_000).expect("no expiry yet");
    sim.step(&Op::LeaderChange { gap_ms: 0, hop: 1 })
        .expect("leader change");
    sim.advance_to(1_000_000).expect("runs out");
    assert_eq!(sim.expired_reported, 1);
    assert!(sim.promises.is_empty());
}
