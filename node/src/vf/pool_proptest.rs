//! The pool against a model under random restores and claim/release sequences.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::naming::tap_vfs;
use super::{PoolError, UnrestoredReason, VfPool};

#[derive(Debug, Clone)]
enum Op {
    Claim(usize),
    Release(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..8).prop_map(Op::Claim),
        (0usize..8).prop_map(Op::Release),
    ]
}

fn owner(i: usize) -> String {
    format!("if-{i}")
}

fn vf_id(i: usize) -> String {
    format!("dtapvf_{i}")
}

/// The model: owner -> VF number, with the pool's VFs being `0..n`.
struct Model {
    n: usize,
    held: BTreeMap<String, usize>,
}

impl Model {
    fn holder(&self, vf: usize) -> Option<&String> {
        self.held.iter().find(|(_, v)| **v == vf).map(|(o, _)| o)
    }

    fn lowest_free(&self) -> Option<usize> {
        (0..self.n).find(|&v| self.holder(v).is_none())
    }
}

fn check_invariants(pool: &VfPool, model: &Model) -> Result<(), TestCaseError> {
    let claims: Vec<(String, String)> = pool
        .claims()
        .map(|(o, v)| (o.to_string(), v.to_string()))
        .collect();
    let expected: Vec<(String, String)> = model
        .held
        .iter()
        .map(|(o, &v)| (o.clone(), vf_id(v)))
        .collect();
    prop_assert_eq!(&claims, &expected);
    let distinct: BTreeSet<&String> = claims.iter().map(|(_, v)| v).collect();
    prop_assert_eq!(distinct.len(), claims.len(), "a VF is held twice");
    prop_assert_eq!(pool.total(), model.n);
    prop_assert_eq!(pool.claimed(), model.held.len());
    prop_assert_eq!(pool.total(), pool.free() + pool.claimed());
    prop_assert_eq!(pool.owners().count(), pool.claimed());
    for (o, v) in &claims {
        prop_assert_eq!(pool.get(o).map(|vf| vf.id()), Some(v.as_str()));
        prop_assert_eq!(pool.owner_of(v), Some(o.as_str()));
    }
    let owned = pool.iter().filter(|(_, o)| o.is_some()).count();
    prop_assert_eq!(owned, pool.claimed());
    Ok(())
}

proptest! {
    #[test]
    fn pool_matches_model(
        n in 0usize..8,
        restore in proptest::collection::vec((0usize..6, 0usize..11), 0..10),
        ops in proptest::collection::vec(op(), 0..40),
    ) {
        let persisted: Vec<(String, String)> =
            restore.iter().map(|&(o, v)| (owner(o), vf_id(v))).collect();
        let (mut pool, unrestored) = VfPool::new(tap_vfs(n as u32), persisted);

        // restoring: first claim of a VF and of an owner win, identical repeats are harmless
        let mut model = Model { n, held: BTreeMap::new() };
        let mut expected_unrestored = Vec::new();
        for &(o, v) in &restore {
            let o = owner(o);
            let reason = if v >= n {
                Some(UnrestoredReason::VfNotFound)
            } else if let Some(&held) = model.held.get(&o) {
                (held != v).then(|| UnrestoredReason::OwnerHolds { vf_id: vf_id(held) })
            } else if let Some(other) = model.holder(v) {
                Some(UnrestoredReason::VfClaimedBy { owner: other.clone() })
            } else {
                model.held.insert(o.clone(), v);
                None
            };
            if let Some(reason) = reason {
                expected_unrestored.push((o, vf_id(v), reason));
            }
        }
        let got: Vec<_> = unrestored
            .into_iter()
            .map(|u| (u.owner, u.vf_id, u.reason))
            .collect();
        prop_assert_eq!(&got, &expected_unrestored);
        // every vanished VF is reported, every first claim of a present free VF is kept
        for &(o, v) in &restore {
            if v >= n {
                let reported = got.iter().any(|(go, gv, r)| {
                    *go == owner(o) && *gv == vf_id(v) && *r == UnrestoredReason::VfNotFound
                });
                prop_assert!(reported, "vanished claim not reported");
            }
        }
        for (o, &v) in &model.held {
            prop_assert_eq!(pool.get(o).map(|vf| vf.id().to_string()), Some(vf_id(v)));
        }
        check_invariants(&pool, &model)?;

        for op in ops {
            match op {
                Op::Claim(i) => {
                    let o = owner(i);
                    let before = pool.get(&o).cloned();
                    let got = pool.claim(&o).map(|vf| vf.id().to_string());
                    let expected = match model.held.get(&o) {
                        Some(&v) => Ok(vf_id(v)),
                        None => match model.lowest_free() {
                            Some(v) => {
                                model.held.insert(o.clone(), v);
                                Ok(vf_id(v))
                            }
                            None => Err(PoolError::Exhausted),
                        },
                    };
                    prop_assert_eq!(&got, &expected);
                    if let Some(before) = before {
                        prop_assert_eq!(got, Ok(before.id().to_string()), "claim not idempotent");
                    }
                }
                Op::Release(i) => {
                    let o = owner(i);
                    let got = pool.release(&o).map(|vf| vf.id().to_string());
                    prop_assert_eq!(got, model.held.remove(&o).map(vf_id));
                    prop_assert!(pool.get(&o).is_none());
                }
            }
            check_invariants(&pool, &model)?;
        }
    }
}
