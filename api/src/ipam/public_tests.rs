//! Public pool validation, the pool's rules, and a state-machine property against a map.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use proptest::prelude::*;

use super::*;
use crate::ipam::Rejected;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn cidr(s: &str) -> PoolEntry {
    PoolEntry::Cidr(net(s))
}

fn range(start: &str, end: &str) -> PoolEntry {
    PoolEntry::Range(AddressRange::new(ip(start), ip(end)))
}

fn o(name: &str) -> String {
    name.to_string()
}

fn pool(ranges: Vec<PoolEntry>, excluded: &[&str]) -> PublicIpPool<String> {
    let spec = PublicPoolSpec {
        ranges,
        excluded: excluded.iter().map(|s| ip(s)).collect(),
    };
    PublicIpPool::new(PublicRanges::new(&spec).unwrap())
}

fn errors(ranges: Vec<PoolEntry>, excluded: &[&str]) -> Vec<String> {
    let spec = PublicPoolSpec {
        ranges,
        excluded: excluded.iter().map(|s| ip(s)).collect(),
    };
    match PublicRanges::new(&spec) {
        Ok(_) => Vec::new(),
        Err(e) => e.errors().iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn pool_entries_are_clean_and_disjoint() {
    let got = errors(
        vec![
            cidr("203.0.113.0/28"),
            cidr("198.51.100.1/24"),
            range("192.0.2.10", "2001:db8::1"),
            range("192.0.2.10", "192.0.2.9"),
            range("203.0.113.15", "203.0.113.20"),
            cidr("2001:db8::/64"),
            range("2001:db8::ffff", "2001:db8:1::"),
        ],
        &[],
    );
    assert_eq!(
        got,
        [
            "ranges[1]: 198.51.100.1/24 has host bits set (the network is 198.51.100.0/24)",
            "ranges[2].end: 2001:db8::1 is not IPv4",
            "ranges[3].end: 192.0.2.9 is before the start 192.0.2.10",
            "ranges[4]: overlaps ranges[0]",
            "ranges[6]: overlaps ranges[5]",
        ]
    );
}

#[test]
fn excluded_addresses_must_be_in_the_pool_and_listed_once() {
    let got = errors(
        vec![cidr("203.0.113.0/28")],
        &["203.0.113.1", "203.0.113.16", "2001:db8::1", "203.0.113.1"],
    );
    assert_eq!(
        got,
        [
            "excluded[1]: 203.0.113.16 is in none of the pool's ranges",
            "excluded[2]: 2001:db8::1 is in none of the pool's ranges",
            "excluded[3]: 203.0.113.1 is listed already at excluded[0]",
        ]
    );
}

#[test]
fn every_address_of_a_cidr_is_handed_out_lowest_first_except_excluded_ones() {
    let mut p = pool(
        vec![
            range("198.51.100.254", "198.51.100.255"),
            cidr("192.0.2.0/31"),
        ],
        &["192.0.2.1"],
    );
    let got: Vec<IpAddr> = ["a", "b", "c"]
        .iter()
        .map(|n| p.allocate(o(n), IpFamily::V4).unwrap())
        .collect();
    assert_eq!(
        got,
        ["192.0.2.0", "198.51.100.254", "198.51.100.255"].map(ip)
    );
    assert_eq!(
        p.allocate(o("d"), IpFamily::V4).unwrap_err().to_string(),
        "every IPv4 public IP is taken"
    );
    assert_eq!(
        p.allocate(o("d"), IpFamily::V6).unwrap_err().to_string(),
        "the public pool has no IPv6 range"
    );
    let usage = p.usage(IpFamily::V4);
    assert_eq!((usage.capacity, usage.used, usage.free), (3, 3, 0));
}

#[test]
fn fixed_addresses_must_be_in_the_pool_not_excluded_and_free() {
    let mut p = pool(vec![cidr("192.0.2.0/24")], &["192.0.2.7"]);
    let cases = [
        (
            "192.0.3.1",
            "192.0.3.1 is in none of the public pool's ranges",
        ),
        (
            "2001:db8::1",
            "2001:db8::1 is in none of the public pool's ranges",
        ),
        ("192.0.2.7", "192.0.2.7 is excluded from the public pool"),
    ];
    for (address, expected) in cases {
        let err = p.allocate_fixed(o("x"), ip(address)).unwrap_err();
        assert_eq!(err.to_string(), expected);
    }
    p.allocate_fixed(o("a"), ip("192.0.2.9")).unwrap();
    p.allocate_fixed(o("a"), ip("192.0.2.9")).unwrap();
    assert_eq!(
        p.allocate_fixed(o("b"), ip("192.0.2.9"))
            .unwrap_err()
            .to_string(),
        "192.0.2.9 is held by a"
    );
    assert_eq!(p.holder(ip("192.0.2.9")), Some(&o("a")));
}

#[test]
fn an_owner_holds_several_addresses_and_release_checks_it() {
    let mut p = pool(vec![cidr("192.0.2.0/30"), cidr("2001:db8::/126")], &[]);
    p.allocate(o("nat"), IpFamily::V4).unwrap();
    p.allocate(o("nat"), IpFamily::V4).unwrap();
    p.allocate(o("vip"), IpFamily::V6).unwrap();
    p.allocate(o("nat"), IpFamily::V6).unwrap();
    assert_eq!(
        p.addresses_of(&o("nat")),
        ["192.0.2.0", "192.0.2.1", "2001:db8::1"].map(ip)
    );
    assert_eq!(
        p.release(&o("vip"), ip("192.0.2.0")),
        Err(PublicIpError::Taken {
            address: ip("192.0.2.0"),
            holder: o("nat")
        })
    );
    assert_eq!(p.release(&o("nat"), ip("192.0.2.0")), Ok(true));
    assert_eq!(p.release(&o("nat"), ip("192.0.2.0")), Ok(false));
    assert_eq!(p.allocate(o("vip"), IpFamily::V4), Ok(ip("192.0.2.0")));
    assert_eq!(
        p.release_owner(&o("nat")),
        ["192.0.2.1", "2001:db8::1"].map(ip)
    );
    assert_eq!(p.usage(IpFamily::V6).used, 1);
}

#[test]
fn restore_rebuilds_and_returns_what_left_the_pool() {
    let mut p = pool(vec![cidr("192.0.2.0/29"), cidr("2001:db8::/64")], &[]);
    for name in ["a", "b", "c"] {
        p.allocate(o(name), IpFamily::V4).unwrap();
        p.allocate(o(name), IpFamily::V6).unwrap();
    }
    let stored: Vec<(String, IpAddr)> = p.assignments().map(|(o, a)| (o.clone(), a)).collect();
    let (mut q, rejected) = PublicIpPool::restore(p.ranges().clone(), stored.clone());
    assert!(rejected.is_empty());
    assert_eq!(
        q.allocate(o("d"), IpFamily::V6),
        p.allocate(o("d"), IpFamily::V6)
    );

    let spec = PublicPoolSpec {
        ranges: vec![cidr("192.0.2.0/29")],
        excluded: vec![ip("192.0.2.1")],
    };
    let (r, rejected) = PublicIpPool::restore(PublicRanges::new(&spec).unwrap(), stored);
    let why: Vec<String> = rejected
        .iter()
        .map(|r| format!("{}: {}", r.owner, r.error))
        .collect();
    assert_eq!(
        why,
        [
            "b: 192.0.2.1 is excluded from the public pool",
            "a: 2001:db8:: is in none of the public pool's ranges",
            "b: 2001:db8::1 is in none of the public pool's ranges",
            "c: 2001:db8::2 is in none of the public pool's ranges",
        ]
    );
    assert_eq!(r.usage(IpFamily::V4).used, 2);
}

#[test]
fn a_large_ipv6_pool_is_counted_not_enumerated() {
    let mut p = pool(vec![cidr("2001:db8::/48")], &["2001:db8::"]);
    assert_eq!(p.allocate(o("a"), IpFamily::V6), Ok(ip("2001:db8::1")));
    let usage = p.usage(IpFamily::V6);
    assert_eq!(usage.capacity, (1 << 80) - 1);
    assert_eq!(usage.free, (1 << 80) - 2);
}

// ---- state machine ----

fn candidates() -> Vec<IpAddr> {
    let mut all: Vec<IpAddr> = ["192.0.2.0/29", "198.51.100.8/30", "2001:db8::/126"]
        .iter()
        .flat_map(|c| net(c).hosts().chain([net(c).network(), net(c).broadcast()]))
        .collect();
    all.sort();
    all.dedup();
    all
}

/// Pool: `192.0.2.0/29`, `198.51.100.9-198.51.100.10`, maybe `2001:db8::/126`; some excluded.
fn spec() -> impl Strategy<Value = PublicPoolSpec> {
    (
        any::<bool>(),
        proptest::collection::btree_set(0usize..20, 0..4),
    )
        .prop_map(|(v6, excluded)| {
            let mut ranges = vec![cidr("192.0.2.0/29"), range("198.51.100.9", "198.51.100.10")];
            if v6 {
                ranges.push(cidr("2001:db8::/126"));
            }
            let mut spec = PublicPoolSpec {
                ranges,
                excluded: Vec::new(),
            };
            let all = candidates();
            let inside = |a: &IpAddr| {
                PublicRanges::new(&PublicPoolSpec {
                    ranges: spec.ranges.clone(),
                    excluded: vec![],
                })
                .map(|r| r.contains(*a))
                .unwrap_or(false)
            };
            spec.excluded = excluded
                .into_iter()
                .map(|i| all[i % all.len()])
                .filter(inside)
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            spec
        })
}

#[derive(Debug, Clone)]
enum Op {
    Allocate(u8, bool),
    Fixed(u8, usize),
    Release(u8, usize),
    ReleaseOwner(u8),
    Rebuild,
}

fn op() -> impl Strategy<Value = Op> {
    let n = candidates().len();
    prop_oneof![
        4 => (0u8..5, any::<bool>()).prop_map(|(o, v6)| Op::Allocate(o, v6)),
        3 => (0u8..5, 0..n).prop_map(|(o, i)| Op::Fixed(o, i)),
        3 => (0u8..5, 0..n).prop_map(|(o, i)| Op::Release(o, i)),
        1 => (0u8..5).prop_map(Op::ReleaseOwner),
        1 => Just(Op::Rebuild),
    ]
}

/// Whether the spec (unvalidated, read naively) hands out `a`.
fn in_pool(spec: &PublicPoolSpec, a: IpAddr) -> bool {
    spec.ranges.iter().any(|e| match e {
        PoolEntry::Cidr(c) => c.contains(&a),
        PoolEntry::Range(r) => r.contains(a),
    })
}

fn model_fixed(
    spec: &PublicPoolSpec,
    held: &mut BTreeMap<IpAddr, u8>,
    owner: u8,
    a: IpAddr,
) -> Result<(), PublicIpError> {
    if !in_pool(spec, a) {
        return Err(PublicIpError::OutsidePool { address: a });
    }
    if spec.excluded.contains(&a) {
        return Err(PublicIpError::Excluded { address: a });
    }
    match held.get(&a) {
        Some(&h) if h != owner => Err(PublicIpError::Taken {
            address: a,
            holder: h.to_string(),
        }),
        _ => {
            held.insert(a, owner);
            Ok(())
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn the_pool_follows_the_model(
        spec in spec(),
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        let ranges = PublicRanges::new(&spec).unwrap();
        let mut p: PublicIpPool<u8> = PublicIpPool::new(ranges.clone());
        let mut held: BTreeMap<IpAddr, u8> = BTreeMap::new();
        let all = candidates();
        let usable = |a: &IpAddr| in_pool(&spec, *a) && !spec.excluded.contains(a);
        for op in ops {
            match op {
                Op::Allocate(owner, v6) => {
                    let family = if v6 { IpFamily::V6 } else { IpFamily::V4 };
                    let any_range = all.iter().any(|a| IpFamily::of(*a) == family && in_pool(&spec, *a));
                    let expected = if !any_range {
                        Err(PublicIpError::NoPool { family })
                    } else {
                        match all.iter().find(|a| IpFamily::of(**a) == family && usable(a) && !held.contains_key(a)) {
                            Some(&a) => {
                                held.insert(a, owner);
                                Ok(a)
                            }
                            None => Err(PublicIpError::Exhausted { family }),
                        }
                    };
                    prop_assert_eq!(p.allocate(owner, family), expected);
                }
                Op::Fixed(owner, i) => {
                    let expected = model_fixed(&spec, &mut held, owner, all[i]);
                    prop_assert_eq!(p.allocate_fixed(owner, all[i]), expected);
                }
                Op::Release(owner, i) => {
                    let a = all[i];
                    let expected = match held.get(&a) {
                        None => Ok(false),
                        Some(&h) if h == owner => {
                            held.remove(&a);
                            Ok(true)
                        }
                        Some(&h) => Err(PublicIpError::Taken { address: a, holder: h.to_string() }),
                    };
                    prop_assert_eq!(p.release(&owner, a), expected);
                }
                Op::ReleaseOwner(owner) => {
                    let expected: Vec<IpAddr> = held.iter().filter(|(_, o)| **o == owner).map(|(&a, _)| a).collect();
                    held.retain(|_, o| *o != owner);
                    prop_assert_eq!(p.release_owner(&owner), expected);
                }
                Op::Rebuild => {
                    let stored: Vec<(u8, IpAddr)> = p.assignments().map(|(&o, a)| (o, a)).collect();
                    let (rebuilt, rejected) = PublicIpPool::restore(ranges.clone(), stored);
                    prop_assert!(rejected.is_empty());
                    p = rebuilt;
                }
            }
            let got: Vec<(IpAddr, u8)> = p.assignments().map(|(&o, a)| (a, o)).collect();
            let expected: Vec<(IpAddr, u8)> = held.iter().map(|(&a, &o)| (a, o)).collect();
            prop_assert_eq!(&got, &expected);
            for &(a, o) in &got {
                prop_assert!(usable(&a), "{} handed out", a);
                prop_assert_eq!(p.holder(a), Some(&o));
            }
            for family in [IpFamily::V4, IpFamily::V6] {
                let usage = p.usage(family);
                let free = all.iter().filter(|a| IpFamily::of(**a) == family && usable(a) && !held.contains_key(a)).count();
                prop_assert_eq!(usage.free, free as u128);
                prop_assert_eq!(usage.used, held.keys().filter(|a| IpFamily::of(**a) == family).count());
            }
        }
    }

    #[test]
    fn restore_keeps_exactly_what_fixed_requests_would(
        spec in spec(),
        stored in proptest::collection::vec((0u8..4, 0usize..30), 0..20),
    ) {
        let all = candidates();
        let stored: Vec<(u8, IpAddr)> = stored.into_iter().map(|(o, i)| (o, all[i % all.len()])).collect();
        let (p, rejected) = PublicIpPool::restore(PublicRanges::new(&spec).unwrap(), stored.clone());
        let mut held = BTreeMap::new();
        let mut expected = Vec::new();
        for (owner, address) in stored {
            if let Err(error) = model_fixed(&spec, &mut held, owner, address) {
                expected.push(Rejected { owner, value: address, error });
            }
        }
        prop_assert_eq!(rejected, expected);
        let got: Vec<(IpAddr, u8)> = p.assignments().map(|(&o, a)| (a, o)).collect();
        prop_assert_eq!(got, held.into_iter().collect::<Vec<_>>());
    }
}
