//! VNI range validation, the allocator's rules, and a state-machine property against a map.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::ipam::Rejected;

fn allocator(first: u32, last: u32) -> VniAllocator<String> {
    VniAllocator::new(VniRange::new(first, last).unwrap())
}

fn o(name: &str) -> String {
    name.to_string()
}

#[test]
fn ranges_are_24_bit_nonzero_and_ordered() {
    assert_eq!(VniRange::new(0, 10), Err(VniRangeError::Zero));
    assert_eq!(
        VniRange::new(1000, MAX_VNI + 1).unwrap_err().to_string(),
        "last: 16777216 exceeds the 24-bit maximum 16777215"
    );
    assert_eq!(
        VniRange::new(20, 10).unwrap_err().to_string(),
        "last: 10 is below first 20"
    );
    let range = VniRange::new(1000, MAX_VNI).unwrap();
    assert_eq!(
        (range.first(), range.last(), range.len()),
        (1000, MAX_VNI, MAX_VNI - 999)
    );
    assert!(range.contains(1000) && range.contains(MAX_VNI) && !range.contains(999));
    assert_eq!(VniRange::new(1, 1).unwrap().len(), 1);
    assert_eq!(range.to_string(), "1000..=16777215");
}

#[test]
fn the_lowest_free_vni_is_handed_out_and_reused_after_release() {
    let mut a = allocator(100, 102);
    assert_eq!(a.allocate(o("a")), Ok(100));
    assert_eq!(a.allocate(o("b")), Ok(101));
    assert_eq!(a.allocate(o("c")), Ok(102));
    assert_eq!(
        a.allocate(o("d")).unwrap_err().to_string(),
        "every VNI of 100..=102 is taken"
    );
    assert_eq!(a.release(&o("b"), 101), Ok(true));
    assert_eq!(a.allocate(o("d")), Ok(101));
    assert_eq!((a.capacity(), a.used(), a.free()), (3, 3, 0));
}

#[test]
fn an_owner_has_one_vni_and_asking_again_returns_it() {
    let mut a = allocator(100, 200);
    assert_eq!(a.allocate(o("a")), Ok(100));
    assert_eq!(a.allocate(o("a")), Ok(100));
    a.allocate_fixed(o("a"), 100).unwrap();
    assert_eq!(
        a.allocate_fixed(o("a"), 150).unwrap_err().to_string(),
        "a holds VNI 100 already"
    );
    assert_eq!(a.vni_of(&o("a")), Some(100));
    assert_eq!(a.used(), 1);
}

#[test]
fn fixed_vnis_must_be_in_range_and_free() {
    let mut a = allocator(100, 200);
    assert_eq!(
        a.allocate_fixed(o("a"), 99).unwrap_err().to_string(),
        "VNI 99 is outside 100..=200"
    );
    a.allocate_fixed(o("a"), 150).unwrap();
    assert_eq!(
        a.allocate_fixed(o("b"), 150).unwrap_err().to_string(),
        "VNI 150 is held by a"
    );
    assert_eq!(a.holder(150), Some(&o("a")));
    assert_eq!(a.allocate(o("b")), Ok(100));
}

#[test]
fn release_checks_the_owner() {
    let mut a = allocator(100, 200);
    a.allocate(o("a")).unwrap();
    assert_eq!(
        a.release(&o("b"), 100),
        Err(VniError::Taken {
            vni: 100,
            holder: o("a")
        })
    );
    assert_eq!(a.release(&o("b"), 101), Ok(false));
    assert_eq!(a.release_owner(&o("b")), None);
    assert_eq!(a.release_owner(&o("a")), Some(100));
    assert_eq!(a.vni_of(&o("a")), None);
}

#[test]
fn restore_rebuilds_and_returns_what_no_longer_fits() {
    let mut a = allocator(100, 200);
    for name in ["a", "b", "c"] {
        a.allocate(o(name)).unwrap();
    }
    a.release(&o("b"), 101).unwrap();
    let stored: Vec<(String, u32)> = a.assignments().map(|(o, v)| (o.clone(), v)).collect();
    let (mut b, rejected) = VniAllocator::restore(a.range(), stored.clone());
    assert!(rejected.is_empty());
    assert_eq!(b.allocate(o("d")), a.allocate(o("d")));

    // The range shrank; a stored twin and a second VNI for one owner contradict the rest.
    let mut stored = stored;
    stored.extend([(o("twin"), 100), (o("a"), 102)]);
    let (c, rejected) = VniAllocator::restore(VniRange::new(100, 101).unwrap(), stored);
    let why: Vec<String> = rejected
        .iter()
        .map(|r| format!("{} {}: {}", r.owner, r.value, r.error))
        .collect();
    assert_eq!(
        why,
        [
            "c 102: VNI 102 is outside 100..=101",
            "twin 100: VNI 100 is held by a",
            "a 102: VNI 102 is outside 100..=101",
        ]
    );
    assert_eq!(c.used(), 1);
}

#[test]
fn the_full_24_bit_range_is_searched_without_walking_it() {
    let range = VniRange::new(1, MAX_VNI).unwrap();
    let stored = (1..=200_000u32).map(|v| (v, v));
    let (mut a, rejected) = VniAllocator::restore(range, stored);
    assert!(rejected.is_empty());
    assert_eq!(a.allocate(0), Ok(200_001));
    a.allocate_fixed(1_000_000, MAX_VNI).unwrap();
    assert_eq!(a.free(), MAX_VNI - 200_002);
}

#[derive(Debug, Clone)]
enum Op {
    Allocate(u8),
    Fixed(u8, u32),
    Release(u8, u32),
    ReleaseOwner(u8),
    Rebuild,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..8).prop_map(Op::Allocate),
        2 => (0u8..8, 8u32..24).prop_map(|(o, v)| Op::Fixed(o, v)),
        3 => (0u8..8, 8u32..24).prop_map(|(o, v)| Op::Release(o, v)),
        1 => (0u8..8).prop_map(Op::ReleaseOwner),
        1 => Just(Op::Rebuild),
    ]
}

/// The model: owner -> VNI.
fn model_fixed(
    held: &mut BTreeMap<u8, u32>,
    range: VniRange,
    owner: u8,
    vni: u32,
) -> Result<(), VniError> {
    if !range.contains(vni) {
        return Err(VniError::OutOfRange { vni, range });
    }
    if let Some(&v) = held.get(&owner) {
        return if v == vni {
            Ok(())
        } else {
            Err(VniError::OwnerHasVni {
                owner: owner.to_string(),
                vni: v,
            })
        };
    }
    if let Some((&h, _)) = held.iter().find(|(_, v)| **v == vni) {
        return Err(VniError::Taken {
            vni,
            holder: h.to_string(),
        });
    }
    held.insert(owner, vni);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn the_allocator_follows_the_model(
        first in 10u32..14,
        len in 1u32..8,
        ops in proptest::collection::vec(op(), 1..50),
    ) {
        let range = VniRange::new(first, first + len - 1).unwrap();
        let mut a: VniAllocator<u8> = VniAllocator::new(range);
        let mut held: BTreeMap<u8, u32> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Allocate(owner) => {
                    let expected = match held.get(&owner) {
                        Some(&v) => Ok(v),
                        None => match (range.first()..=range.last()).find(|v| !held.values().any(|h| h == v)) {
                            Some(v) => {
                                held.insert(owner, v);
                                Ok(v)
                            }
                            None => Err(VniError::Exhausted { range }),
                        },
                    };
                    prop_assert_eq!(a.allocate(owner), expected);
                }
                Op::Fixed(owner, vni) => {
                    let expected = model_fixed(&mut held, range, owner, vni);
                    prop_assert_eq!(a.allocate_fixed(owner, vni), expected);
                }
                Op::Release(owner, vni) => {
                    let expected = match held.iter().find(|(_, v)| **v == vni).map(|(&o, _)| o) {
                        None => Ok(false),
                        Some(h) if h == owner => {
                            held.remove(&owner);
                            Ok(true)
                        }
                        Some(h) => Err(VniError::Taken { vni, holder: h.to_string() }),
                    };
                    prop_assert_eq!(a.release(&owner, vni), expected);
                }
                Op::ReleaseOwner(owner) => {
                    prop_assert_eq!(a.release_owner(&owner), held.remove(&owner));
                }
                Op::Rebuild => {
                    let stored: Vec<(u8, u32)> = a.assignments().map(|(&o, v)| (o, v)).collect();
                    let (rebuilt, rejected) = VniAllocator::restore(range, stored);
                    prop_assert!(rejected.is_empty());
                    a = rebuilt;
                }
            }
            let mut got: Vec<(u8, u32)> = a.assignments().map(|(&o, v)| (o, v)).collect();
            let vnis: Vec<u32> = got.iter().map(|&(_, v)| v).collect();
            prop_assert!(vnis.windows(2).all(|w| w[0] < w[1]), "a VNI held twice: {:?}", vnis);
            prop_assert!(vnis.iter().all(|&v| range.contains(v)));
            got.sort();
            let expected: Vec<(u8, u32)> = held.iter().map(|(&o, &v)| (o, v)).collect();
            prop_assert_eq!(got, expected);
            prop_assert_eq!(a.used() as usize, held.len());
            prop_assert_eq!(a.free(), range.len() - a.used());
            for (&o, &v) in &held {
                prop_assert_eq!(a.vni_of(&o), Some(v));
                prop_assert_eq!(a.holder(v), Some(&o));
            }
        }
    }

    #[test]
    fn restore_keeps_exactly_what_fixed_requests_would(
        stored in proptest::collection::vec((0u8..6, 5u32..20), 0..20),
    ) {
        let range = VniRange::new(8, 16).unwrap();
        let (a, rejected) = VniAllocator::restore(range, stored.clone());
        let mut held = BTreeMap::new();
        let mut expected = Vec::new();
        for (owner, vni) in stored {
            if let Err(error) = model_fixed(&mut held, range, owner, vni) {
                expected.push(Rejected { owner, value: vni, error });
            }
        }
        prop_assert_eq!(rejected, expected);
        prop_assert_eq!(a.used() as usize, held.len());
    }
}
