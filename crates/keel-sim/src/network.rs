//! The virtual network: a bounded set of in-flight messages, each delivered
//! at a virtual time chosen when it is sent.
//!
//! Faults: random delay (which also reorders), drop, duplicate, and
//! directional cuts between pairs of nodes (a symmetric partition is two
//! cuts), each lasting until a given time or until healed. A cut is checked
//! both when a message is sent and when it is due, so a partition also
//! loses what was in flight across it.

use std::collections::BTreeMap;

use rand::Rng;
use rand::rngs::SmallRng;

/// Node identifier, as used by Raft.
pub type NodeId = u64;

/// How the network misbehaves. Probabilities are in parts per thousand.
#[derive(Debug, Clone, Copy)]
pub struct NetworkFaults {
    /// Smallest delivery delay, in virtual milliseconds.
    pub min_delay_ms: u64,
    /// Largest delivery delay, in virtual milliseconds.
    pub max_delay_ms: u64,
    /// Chance that a message is lost.
    pub drop_per_mille: u32,
    /// Chance that a message is delivered twice (with independent delays).
    pub duplicate_per_mille: u32,
}

impl NetworkFaults {
    /// A network that delivers everything once, in 1 ms.
    pub fn reliable() -> Self {
        Self {
            min_delay_ms: 1,
            max_delay_ms: 1,
            drop_per_mille: 0,
            duplicate_per_mille: 0,
        }
    }
}

/// A message in flight.
#[derive(Debug, Clone)]
pub struct Envelope<M> {
    /// Sender.
    pub from: NodeId,
    /// Receiver.
    pub to: NodeId,
    /// Payload.
    pub message: M,
}

/// The virtual network. `M` is the message type.
#[derive(Debug)]
pub struct Network<M> {
    faults: NetworkFaults,
    capacity: usize,
    /// Keyed by (due time, send sequence): iteration order is delivery order.
    in_flight: BTreeMap<(u64, u64), Envelope<M>>,
    next_seq: u64,
    /// Directional cuts: (from, to) pairs that cannot communicate, and the
    /// time the cut heals by itself.
    cuts: BTreeMap<(NodeId, NodeId), u64>,
    dropped: u64,
    delivered: u64,
}

impl<M: Clone> Network<M> {
    /// A network with at most `capacity` messages in flight; beyond that,
    /// new messages are dropped, as a full socket buffer would.
    pub fn new(faults: NetworkFaults, capacity: usize) -> Self {
        assert!(
            faults.min_delay_ms >= 1 && faults.min_delay_ms <= faults.max_delay_ms,
            "delays must satisfy 1 <= min <= max"
        );
        assert!(capacity > 0, "network capacity must be positive");
        Self {
            faults,
            capacity,
            in_flight: BTreeMap::new(),
            next_seq: 0,
            cuts: BTreeMap::new(),
            dropped: 0,
            delivered: 0,
        }
    }

    /// Sends `message` at time `now_ms`, subject to faults. Returns whether
    /// it was put on the wire (it may still be cut off before delivery).
    pub fn send(&mut self, rng: &mut SmallRng, now_ms: u64, envelope: Envelope<M>) -> bool {
        if self.is_cut(envelope.from, envelope.to)
            || rng.random_ratio(self.faults.drop_per_mille, 1000)
        {
            self.dropped += 1;
            return false;
        }
        if rng.random_ratio(self.faults.duplicate_per_mille, 1000) {
            self.enqueue(rng, now_ms, envelope.clone());
        }
        self.enqueue(rng, now_ms, envelope)
    }

    /// Changes the fault rates from now on (messages in flight keep their
    /// delivery time).
    pub fn set_faults(&mut self, faults: NetworkFaults) {
        assert!(
            faults.min_delay_ms >= 1 && faults.min_delay_ms <= faults.max_delay_ms,
            "delays must satisfy 1 <= min <= max"
        );
        self.faults = faults;
    }

    fn enqueue(&mut self, rng: &mut SmallRng, now_ms: u64, envelope: Envelope<M>) -> bool {
        if self.in_flight.len() >= self.capacity {
            self.dropped += 1;
            return false;
        }
        let delay = rng.random_range(self.faults.min_delay_ms..=self.faults.max_delay_ms);
        self.in_flight
            .insert((now_ms + delay, self.next_seq), envelope);
        self.next_seq += 1;
        true
    }

    /// Removes and returns the earliest message due at or before `now_ms`
    /// that is not cut off; cut-off ones are dropped on the way.
    pub fn pop_due(&mut self, now_ms: u64) -> Option<Envelope<M>> {
        loop {
            let entry = self.in_flight.first_entry()?;
            if entry.key().0 > now_ms {
                return None;
            }
            let envelope = entry.remove();
            if self.is_cut(envelope.from, envelope.to) {
                self.dropped += 1;
                continue;
            }
            self.delivered += 1;
            return Some(envelope);
        }
    }

    /// Whether messages from `from` to `to` are being lost.
    pub fn is_cut(&self, from: NodeId, to: NodeId) -> bool {
        self.cuts.contains_key(&(from, to))
    }

    /// Stops messages from `from` to `to` (one way) until `until_ms` (a
    /// longer existing cut is kept).
    pub fn cut(&mut self, from: NodeId, to: NodeId, until_ms: u64) {
        let end = self.cuts.entry((from, to)).or_insert(until_ms);
        *end = (*end).max(until_ms);
    }

    /// Splits `group` from every node in `others`, both ways, until
    /// `until_ms`.
    pub fn partition(&mut self, group: &[NodeId], others: &[NodeId], until_ms: u64) {
        for &a in group {
            for &b in others {
                self.cut(a, b, until_ms);
                self.cut(b, a, until_ms);
            }
        }
    }

    /// Removes every cut.
    pub fn heal(&mut self) {
        self.cuts.clear();
    }

    /// Removes the cuts whose time is up at `now_ms`.
    pub fn heal_expired(&mut self, now_ms: u64) {
        self.cuts.retain(|_, &mut until| until > now_ms);
    }

    /// Messages currently in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Messages lost so far (faults, cuts, full buffer, crashes).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Messages delivered so far.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Whether any cut is in place.
    pub fn has_cuts(&self) -> bool {
        !self.cuts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn env(from: NodeId, to: NodeId, message: u32) -> Envelope<u32> {
        Envelope { from, to, message }
    }

    fn drain(net: &mut Network<u32>, now: u64) -> Vec<u32> {
        std::iter::from_fn(|| net.pop_due(now).map(|e| e.message)).collect()
    }

    #[test]
    fn reliable_network_delivers_in_order_after_the_delay() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut net = Network::new(NetworkFaults::reliable(), 16);
        net.send(&mut rng, 0, env(1, 2, 10));
        net.send(&mut rng, 0, env(1, 2, 11));
        assert!(drain(&mut net, 0).is_empty());
        assert_eq!(drain(&mut net, 1), vec![10, 11]);
    }

    #[test]
    fn cuts_are_directional_and_drop_messages_in_flight() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut net = Network::new(NetworkFaults::reliable(), 16);
        assert!(net.send(&mut rng, 0, env(1, 2, 1)));
        net.cut(1, 2, u64::MAX);
        net.send(&mut rng, 0, env(2, 1, 2));
        assert!(!net.send(&mut rng, 0, env(1, 2, 3)));
        assert_eq!(drain(&mut net, 5), vec![2]);
        assert_eq!(net.dropped(), 2);
        net.heal();
        net.send(&mut rng, 5, env(1, 2, 4));
        assert_eq!(drain(&mut net, 6), vec![4]);
    }

    #[test]
    fn partitions_heal_by_themselves_when_their_time_is_up() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut net = Network::new(NetworkFaults::reliable(), 16);
        net.partition(&[1], &[2, 3], 10);
        net.cut(2, 3, 20);
        assert!(net.is_cut(1, 2) && net.is_cut(3, 1) && net.is_cut(2, 3));
        assert!(!net.is_cut(2, 1) || net.is_cut(1, 2));
        net.heal_expired(10);
        assert!(!net.is_cut(1, 2) && !net.is_cut(3, 1) && net.is_cut(2, 3));
        assert!(!net.send(&mut rng, 10, env(2, 3, 1)));
        net.heal_expired(20);
        assert!(!net.has_cuts());
    }

    #[test]
    fn capacity_bounds_messages_in_flight() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut net = Network::new(NetworkFaults::reliable(), 2);
        for i in 0..5 {
            net.send(&mut rng, 0, env(1, 2, i));
        }
        assert_eq!(net.in_flight(), 2);
        assert_eq!(net.dropped(), 3);
    }

    #[test]
    fn faulty_network_reorders_drops_and_duplicates() {
        let mut rng = SmallRng::seed_from_u64(7);
        let faults = NetworkFaults {
            min_delay_ms: 1,
            max_delay_ms: 50,
            drop_per_mille: 100,
            duplicate_per_mille: 100,
        };
        let mut net = Network::new(faults, 10_000);
        for i in 0..1000 {
            net.send(&mut rng, 0, env(1, 2, i));
        }
        let got = drain(&mut net, 100);
        let mut sorted = got.clone();
        sorted.sort_unstable();
        assert_ne!(got, sorted, "random delays must reorder");
        sorted.dedup();
        assert!(sorted.len() < got.len(), "some messages must be duplicated");
        assert!(sorted.len() < 1000, "some messages must be dropped");
    }
}
