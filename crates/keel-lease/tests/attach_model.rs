//! Attach, detach and revoke against a plain model: a map from key to lease. Whatever
//! the sequence, the lessor's key sets, its key-owner map and a revoke's answer agree
//! with the model, and two members applying the same sequence (one primary, one not)
//! end with the same records and keys.

use std::collections::{BTreeMap, BTreeSet};

use keel_lease::{LeaseError, LeaseId, Lessor, LessorConfig};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Grant(i64),
    Revoke(i64),
    Attach(i64, u8),
    Detach(u8),
}

fn op() -> impl Strategy<Value = Op> {
    // Few ids and keys, so operations collide often.
    prop_oneof![
        2 => (1i64..6).prop_map(Op::Grant),
        1 => (1i64..6).prop_map(Op::Revoke),
        4 => (1i64..6, 0u8..12).prop_map(|(l, k)| Op::Attach(l, k)),
        2 => (0u8..12).prop_map(Op::Detach),
    ]
}

fn key(k: u8) -> Vec<u8> {
    vec![b'k', k]
}

proptest! {
    #[test]
    fn keys_follow_the_model(ops in prop::collection::vec(op(), 1..120)) {
        let mut primary = Lessor::new(LessorConfig::default());
        primary.promote(0, 0);
        let mut follower = Lessor::new(LessorConfig::default());
        let mut owner: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
        let mut live: BTreeSet<i64> = BTreeSet::new();
        for op in &ops {
            match *op {
                Op::Grant(l) => {
                    let a = primary.apply_grant(l, 10, 0);
                    prop_assert_eq!(&a, &follower.apply_grant(l, 10, 0));
                    prop_assert_eq!(a.is_ok(), live.insert(l));
                }
                Op::Revoke(l) => {
                    let a = primary.apply_revoke(l);
                    prop_assert_eq!(&a, &follower.apply_revoke(l));
                    if live.remove(&l) {
                        let want: Vec<Vec<u8>> =
                            owner.iter().filter(|(_, o)| **o == l).map(|(k, _)| k.clone()).collect();
                        prop_assert_eq!(a.expect("live lease").keys, want);
                        owner.retain(|_, o| *o != l);
                    } else {
                        prop_assert_eq!(a, Err(LeaseError::NotFound));
                    }
                }
                Op::Attach(l, k) => {
                    let id = LeaseId::new(l).expect("nonzero");
                    let a = primary.attach(id, &key(k));
                    prop_assert_eq!(&a, &follower.attach(id, &key(k)));
                    if live.contains(&l) {
                        let before = owner.insert(key(k), l).filter(|o| *o != l);
                        prop_assert_eq!(a, Ok(before.and_then(LeaseId::new)));
                    } else {
                        prop_assert_eq!(a, Err(LeaseError::NotFound));
                    }
                }
                Op::Detach(k) => {
                    let a = primary.detach(&key(k));
                    prop_assert_eq!(a, follower.detach(&key(k)));
                    prop_assert_eq!(a.map(LeaseId::get), owner.remove(&key(k)));
                }
            }
        }
        for l in 1i64..6 {
            let id = LeaseId::new(l).expect("nonzero");
            let want: Vec<Vec<u8>> = owner.iter().filter(|(_, o)| **o == l).map(|(k, _)| k.clone()).collect();
            let got: Option<Vec<Vec<u8>>> = primary.keys(id).map(|ks| ks.map(<[u8]>::to_vec).collect());
            prop_assert_eq!(got, live.contains(&l).then_some(want));
        }
        for k in 0u8..12 {
            prop_assert_eq!(primary.lease_of(&key(k)).map(LeaseId::get), owner.get(&key(k)).copied());
        }
        prop_assert_eq!(primary.records().collect::<Vec<_>>(), follower.records().collect::<Vec<_>>());
    }
}
