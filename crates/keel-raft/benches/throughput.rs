//! Committed entries per second through an in-memory 3-node cluster: the leader proposes a
//! batch, messages are delivered in-process, every node persists to `MemStorage`, applies,
//! and compacts its log behind the applied index.

use std::collections::VecDeque;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use keel_raft::{ConfState, Config, MemStorage, Message, RawNode, StateRole};

struct Cluster {
    nodes: Vec<RawNode<MemStorage>>,
    applied: Vec<u64>,
    net: VecDeque<Message>,
}

impl Cluster {
    fn new() -> Cluster {
        let cs = ConfState {
            voters: vec![1, 2, 3],
            ..ConfState::default()
        };
        let nodes = (1..=3u64)
            .map(|id| {
                let mut c = Config::new(id);
                c.max_inflight_msgs = 256;
                c.max_size_per_msg = 1024 * 1024;
                RawNode::new(&c, MemStorage::new_with_conf_state(cs.clone())).expect("node")
            })
            .collect();
        let mut c = Cluster {
            nodes,
            applied: vec![0; 3],
            net: VecDeque::new(),
        };
        c.nodes[0].campaign().expect("campaign");
        c.pump();
        assert_eq!(c.nodes[0].status().soft_state.role, StateRole::Leader);
        c
    }

    fn handle_ready(&mut self, i: usize) -> bool {
        let node = &mut self.nodes[i];
        if !node.has_ready() {
            return false;
        }
        let rd = node.ready();
        self.net.extend(rd.messages.iter().cloned());
        let s = node.storage_mut();
        s.append(&rd.entries).expect("append");
        if let Some(hs) = rd.hard_state {
            s.set_hard_state(hs);
        }
        self.net.extend(rd.persisted_messages.iter().cloned());
        if let Some(last) = rd.committed_entries.last() {
            self.applied[i] = last.index;
        }
        node.advance(rd);
        true
    }

    fn pump(&mut self) {
        loop {
            let mut busy = false;
            for i in 0..self.nodes.len() {
                while self.handle_ready(i) {
                    busy = true;
                }
            }
            while let Some(m) = self.net.pop_front() {
                busy = true;
                let to = (m.to - 1) as usize;
                let _ = self.nodes[to].step(m);
            }
            if !busy {
                return;
            }
        }
    }

    /// Proposes `batch` entries of `size` bytes and runs until all nodes applied them.
    fn round(&mut self, batch: usize, size: usize) {
        if batch == 1 {
            self.nodes[0].propose(vec![0xAB; size]).expect("propose");
        } else {
            let entries = (0..batch).map(|_| vec![0xAB; size]).collect();
            self.nodes[0].propose_batch(entries).expect("propose batch");
        }
        self.pump();
        let target = self.nodes[0].status().last_index;
        assert!(
            self.applied.iter().all(|&a| a == target),
            "round fully applied"
        );
        for (i, node) in self.nodes.iter_mut().enumerate() {
            let applied = self.applied[i];
            let s = node.storage_mut();
            s.create_snapshot(applied, None, Vec::new())
                .expect("snapshot");
            s.compact(applied).expect("compact");
        }
    }
}

fn throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("commit_3_nodes");
    for &(batch, size) in &[(1usize, 128usize), (64, 128), (256, 128), (64, 1024)] {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(format!("batch{batch}_bytes{size}")),
            &(batch, size),
            |b, &(batch, size)| {
                let mut cluster = Cluster::new();
                b.iter(|| cluster.round(batch, size));
            },
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_millis(300))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = throughput
}
criterion_main!(benches);
