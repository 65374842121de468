//! The address allocator: each rule and error, large subnets, and a state-machine property
//! against a model that knows only the spec and a map of held addresses.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use proptest::prelude::*;

use super::*;
use crate::ipam::subnet::{AddressRange, SubnetSpec};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn allocator(specs: &[SubnetSpec]) -> IpAllocator<String> {
    IpAllocator::new(NetworkSubnets::new(specs).unwrap())
}

fn o(name: &str) -> String {
    name.to_string()
}

/// `10.0.0.0/29`, gateway .1, .3 excluded; `10.0.1.0/30`; `fd00::/126`.
fn small() -> IpAllocator<String> {
    let mut first = SubnetSpec::new(net("10.0.0.0/29"));
    first.gateway = Some(ip("10.0.0.1"));
    first.excluded_addresses = vec![ip("10.0.0.3")];
    allocator(&[
        SubnetSpec::new(net("fd00::/126")),
        SubnetSpec::new(net("10.0.1.0/30")),
        first,
    ])
}

#[test]
fn dynamic_allocation_takes_the_lowest_host_address_across_subnets() {
    let mut a = small();
    let got: Vec<IpAddr> = (0..6)
        .map(|i| a.allocate(format!("if-{i}"), IpFamily::V4).unwrap())
        .collect();
    let expected = [
        "10.0.0.2", "10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.1.1", "10.0.1.2",
    ];
    assert_eq!(got, expected.map(ip));
    assert_eq!(
        a.allocate(o("late"), IpFamily::V4),
        Err(AddressError::Exhausted {
            family: IpFamily::V4
        })
    );
    assert_eq!(a.allocate(o("v6"), IpFamily::V6), Ok(ip("fd00::1")));
    assert_eq!(
        a.allocate(o("late"), IpFamily::V4).unwrap_err().to_string(),
        "every IPv4 subnet of the network is full"
    );
}

#[test]
fn a_family_without_subnets_is_named() {
    let mut a = allocator(&[SubnetSpec::new(net("10.0.0.0/24"))]);
    let err = a.allocate(o("x"), IpFamily::V6).unwrap_err();
    assert_eq!(err.to_string(), "the network has no IPv6 subnet");
}

#[test]
fn allocation_ranges_bound_dynamic_but_not_fixed_addresses() {
    let mut spec = SubnetSpec::new(net("10.0.0.0/24"));
    spec.allocation_ranges = vec![
        AddressRange::new(ip("10.0.0.100"), ip("10.0.0.101")),
        AddressRange::new(ip("10.0.0.10"), ip("10.0.0.10")),
    ];
    let mut a = allocator(&[spec]);
    a.allocate_fixed(o("fixed"), ip("10.0.0.50")).unwrap();
    let got: Vec<IpAddr> = ["a", "b", "c"]
        .iter()
        .map(|n| a.allocate(o(n), IpFamily::V4).unwrap())
        .collect();
    assert_eq!(got, ["10.0.0.10", "10.0.0.100", "10.0.0.101"].map(ip));
    assert!(a.allocate(o("d"), IpFamily::V4).is_err());
    let usage = a.usage();
    assert_eq!(usage.len(), 1);
    assert_eq!(
        (usage[0].assigned, usage[0].capacity, usage[0].free),
        (4, 3, 0)
    );
}

#[test]
fn allocation_in_a_named_subnet() {
    let mut a = small();
    assert_eq!(
        a.allocate_in(o("a"), net("10.0.1.0/30")),
        Ok(ip("10.0.1.1"))
    );
    assert_eq!(
        a.allocate_in(o("b"), net("10.0.1.0/30")),
        Ok(ip("10.0.1.2"))
    );
    let full = a.allocate_in(o("c"), net("10.0.1.0/30")).unwrap_err();
    assert_eq!(full.to_string(), "subnet 10.0.1.0/30 is full");
    let unknown = a.allocate_in(o("c"), net("10.0.2.0/30")).unwrap_err();
    assert_eq!(unknown.to_string(), "the network has no subnet 10.0.2.0/30");
}

#[test]
fn fixed_addresses_must_be_host_addresses_of_a_subnet() {
    let mut a = small();
    let cases = [
        (
            "10.0.0.0",
            "10.0.0.0 is the network address of subnet 10.0.0.0/29",
        ),
        (
            "10.0.0.7",
            "10.0.0.7 is the broadcast address of subnet 10.0.0.0/29",
        ),
        ("10.0.0.1", "10.0.0.1 is the gateway of subnet 10.0.0.0/29"),
        (
            "10.0.0.3",
            "10.0.0.3 is an excluded address of subnet 10.0.0.0/29",
        ),
        (
            "fd00::",
            "fd00:: is the network address of subnet fd00::/126",
        ),
        ("10.0.0.8", "10.0.0.8 is in none of the network's subnets"),
    ];
    for (address, expected) in cases {
        let err = a.allocate_fixed(o("x"), ip(address)).unwrap_err();
        assert_eq!(err.to_string(), expected);
    }
    assert!(a.is_empty());
    a.allocate_fixed(o("x"), ip("fd00::3")).unwrap();
    assert_eq!(a.holder(ip("fd00::3")), Some(&o("x")));
}

#[test]
fn a_fixed_address_is_held_once_and_a_retry_by_its_holder_succeeds() {
    let mut a = small();
    a.allocate_fixed(o("a"), ip("10.0.0.2")).unwrap();
    a.allocate_fixed(o("a"), ip("10.0.0.2")).unwrap();
    let err = a.allocate_fixed(o("b"), ip("10.0.0.2")).unwrap_err();
    assert_eq!(err.to_string(), "10.0.0.2 is held by a");
    assert_eq!(a.len(), 1);
    assert_eq!(a.allocate(o("b"), IpFamily::V4), Ok(ip("10.0.0.4")));
}

#[test]
fn release_frees_for_reuse_and_refuses_another_owners_address() {
    let mut a = small();
    let first = a.allocate(o("a"), IpFamily::V4).unwrap();
    a.allocate(o("b"), IpFamily::V4).unwrap();
    assert_eq!(
        a.release(&o("b"), first),
        Err(AddressError::Taken {
            address: first,
            holder: o("a")
        })
    );
    assert_eq!(a.release(&o("a"), first), Ok(true));
    assert_eq!(a.release(&o("a"), first), Ok(false));
    assert_eq!(a.allocate(o("c"), IpFamily::V4), Ok(first));
}

#[test]
fn an_owner_may_hold_several_addresses_and_release_them_at_once() {
    let mut a = small();
    a.allocate(o("a"), IpFamily::V6).unwrap();
    a.allocate(o("a"), IpFamily::V4).unwrap();
    a.allocate_fixed(o("a"), ip("10.0.1.2")).unwrap();
    a.allocate(o("b"), IpFamily::V4).unwrap();
    let held = ["10.0.0.2", "10.0.1.2", "fd00::1"].map(ip);
    assert_eq!(a.addresses_of(&o("a")), held);
    assert_eq!(a.release_owner(&o("a")), held);
    assert!(a.addresses_of(&o("a")).is_empty());
    assert_eq!(a.release_owner(&o("a")), Vec::<IpAddr>::new());
    assert_eq!(
        a.assignments().collect::<Vec<_>>(),
        [(&o("b"), ip("10.0.0.4"))]
    );
}

#[test]
fn restore_takes_back_what_fits_and_returns_the_rest() {
    let mut a = small();
    for i in 0..3 {
        a.allocate(format!("v4-{i}"), IpFamily::V4).unwrap();
        a.allocate(format!("v6-{i}"), IpFamily::V6).unwrap();
    }
    let stored: Vec<(String, IpAddr)> = a.assignments().map(|(o, ip)| (o.clone(), ip)).collect();
    let (mut b, rejected) = IpAllocator::restore(a.subnets().clone(), stored.clone());
    assert!(rejected.is_empty());
    assert_eq!(
        b.assignments().collect::<Vec<_>>(),
        a.assignments().collect::<Vec<_>>()
    );
    assert_eq!(
        b.allocate(o("n"), IpFamily::V4),
        a.allocate(o("n"), IpFamily::V4)
    );

    // The IPv6 subnet is gone and .4 became excluded; one address is claimed twice.
    let mut first = SubnetSpec::new(net("10.0.0.0/29"));
    first.gateway = Some(ip("10.0.0.1"));
    first.excluded_addresses = vec![ip("10.0.0.3"), ip("10.0.0.4")];
    let subnets = NetworkSubnets::new(&[first, SubnetSpec::new(net("10.0.1.0/30"))]).unwrap();
    let mut stored = stored;
    stored.push((o("twin"), ip("10.0.0.2")));
    let (c, rejected) = IpAllocator::restore(subnets, stored);
    let why: Vec<String> = rejected
        .iter()
        .map(|r| format!("{} {}: {}", r.owner, r.value, r.error))
        .collect();
    assert_eq!(
        why,
        [
            "v4-1 10.0.0.4: 10.0.0.4 is an excluded address of subnet 10.0.0.0/29",
            "v6-0 fd00::1: fd00::1 is in none of the network's subnets",
            "v6-1 fd00::2: fd00::2 is in none of the network's subnets",
            "v6-2 fd00::3: fd00::3 is in none of the network's subnets",
            "twin 10.0.0.2: 10.0.0.2 is held by v4-0",
        ]
    );
    assert_eq!(c.len(), 2);
}

#[test]
fn a_slash_8_is_filled_and_searched_without_walking_it() {
    let mut a = allocator(&[SubnetSpec::new(net("10.0.0.0/8"))]);
    let stored =
        (1..=100_000u32).map(|i| (i, IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i))));
    let (mut a2, rejected) = IpAllocator::restore(a.subnets().clone(), stored);
    assert!(rejected.is_empty());
    assert_eq!(a2.allocate(0, IpFamily::V4), Ok(ip("10.1.134.161")));
    for i in 0..20_000 {
        a.allocate(i.to_string(), IpFamily::V4).unwrap();
    }
    assert_eq!(a.allocate(o("next"), IpFamily::V4), Ok(ip("10.0.78.33")));
    assert_eq!(a2.usage()[0].free, (1 << 24) - 2 - 100_001);
}

#[test]
fn an_ipv6_slash_64_hands_out_from_the_bottom_around_fixed_addresses() {
    let mut a = allocator(&[SubnetSpec::new(net("fd00:1::/64"))]);
    a.allocate_fixed(o("high"), ip("fd00:1::ffff:ffff:ffff:ffff"))
        .unwrap();
    a.allocate_fixed(o("low"), ip("fd00:1::1")).unwrap();
    assert_eq!(a.allocate(o("a"), IpFamily::V6), Ok(ip("fd00:1::2")));
    let usage = a.usage()[0];
    assert_eq!(usage.capacity, (1 << 64) - 1);
    assert_eq!(usage.free, (1 << 64) - 4);
    assert_eq!(usage.assigned, 3);
}

// ---- state machine ----

/// The subnets of the property: two IPv4 and an optional IPv6 subnet, with random ranges
/// (non-overlapping by construction), exclusions and gateways.
#[derive(Debug, Clone)]
struct Config {
    specs: Vec<SubnetSpec>,
}

const CIDRS: [&str; 3] = ["10.0.0.0/28", "10.0.0.16/29", "fd00::/125"];

fn subnet_spec(cidr: &'static str) -> impl Strategy<Value = SubnetSpec> {
    let cidr = net(cidr);
    let size = (crate::ipam::family::span(
        crate::ipam::family::to_int(cidr.network()),
        crate::ipam::family::to_int(cidr.broadcast()),
    )) as u32;
    (
        proptest::collection::btree_set(0..size, 0..5),
        proptest::collection::btree_set(0..size, 0..3),
        proptest::option::of(1..size - 1),
    )
        .prop_map(move |(cuts, excluded, gateway)| {
            let at = |o: u32| {
                crate::ipam::family::from_int(
                    IpFamily::of_net(&cidr),
                    crate::ipam::family::to_int(cidr.network()) + u128::from(o),
                )
            };
            let cuts: Vec<u32> = cuts.into_iter().collect();
            let mut spec = SubnetSpec::new(cidr);
            spec.allocation_ranges = cuts
                .chunks_exact(2)
                .map(|c| AddressRange::new(at(c[0]), at(c[1])))
                .collect();
            spec.excluded_addresses = excluded.into_iter().map(at).collect();
            spec.gateway = gateway.map(at);
            spec
        })
}

fn config() -> impl Strategy<Value = Config> {
    (
        subnet_spec(CIDRS[0]),
        subnet_spec(CIDRS[1]),
        proptest::option::of(subnet_spec(CIDRS[2])),
    )
        .prop_map(|(a, b, c)| Config {
            specs: [Some(a), Some(b), c].into_iter().flatten().collect(),
        })
}

/// Every address of the CIDRs, plus one beyond each.
fn candidates() -> Vec<IpAddr> {
    let mut all: Vec<IpAddr> = CIDRS
        .iter()
        .flat_map(|c| net(c).hosts().chain([net(c).network(), net(c).broadcast()]))
        .collect();
    all.extend([ip("10.0.0.24"), ip("fd00::8")]);
    all.sort();
    all.dedup();
    all
}

#[derive(Debug, Clone)]
enum Op {
    Allocate(u8, bool),
    AllocateIn(u8, usize),
    Fixed(u8, usize),
    Release(u8, usize),
    ReleaseOwner(u8),
    Rebuild,
}

fn op() -> impl Strategy<Value = Op> {
    let owner = || 0u8..5;
    let n = candidates().len();
    prop_oneof![
        4 => (owner(), any::<bool>()).prop_map(|(o, v6)| Op::Allocate(o, v6)),
        2 => (owner(), 0usize..4).prop_map(|(o, s)| Op::AllocateIn(o, s)),
        3 => (owner(), 0..n).prop_map(|(o, i)| Op::Fixed(o, i)),
        3 => (owner(), 0..n).prop_map(|(o, i)| Op::Release(o, i)),
        1 => owner().prop_map(Op::ReleaseOwner),
        1 => Just(Op::Rebuild),
    ]
}

/// What the rules say, computed from the specs alone.
struct Model<'a> {
    specs: &'a [SubnetSpec],
    held: BTreeMap<IpAddr, u8>,
}

impl Model<'_> {
    fn subnet_of(&self, a: IpAddr) -> Option<&SubnetSpec> {
        self.specs.iter().find(|s| s.cidr.contains(&a))
    }

    fn reservation(&self, spec: &SubnetSpec, a: IpAddr) -> Option<Reservation> {
        if a == spec.cidr.network() {
            Some(Reservation::Network)
        } else if IpFamily::of(a) == IpFamily::V4 && a == spec.cidr.broadcast() {
            Some(Reservation::Broadcast)
        } else if spec.gateway == Some(a) {
            Some(Reservation::Gateway)
        } else if spec.excluded_addresses.contains(&a) {
            Some(Reservation::Excluded)
        } else {
            None
        }
    }

    fn dynamic_ok(&self, spec: &SubnetSpec, a: IpAddr) -> bool {
        spec.cidr.contains(&a)
            && self.reservation(spec, a).is_none()
            && (spec.allocation_ranges.is_empty()
                || spec.allocation_ranges.iter().any(|r| r.contains(a)))
    }

    fn lowest_free(&self, spec: &SubnetSpec) -> Option<IpAddr> {
        candidates()
            .into_iter()
            .find(|&a| self.dynamic_ok(spec, a) && !self.held.contains_key(&a))
    }

    fn allocate(&mut self, owner: u8, family: IpFamily) -> Result<IpAddr, AddressError> {
        let mut specs: Vec<&SubnetSpec> = self
            .specs
            .iter()
            .filter(|s| IpFamily::of_net(&s.cidr) == family)
            .collect();
        if specs.is_empty() {
            return Err(AddressError::NoSubnet { family });
        }
        specs.sort_by_key(|s| s.cidr.network());
        let found = specs.iter().find_map(|s| self.lowest_free(s));
        let a = found.ok_or(AddressError::Exhausted { family })?;
        self.held.insert(a, owner);
        Ok(a)
    }

    fn allocate_in(&mut self, owner: u8, cidr: IpNet) -> Result<IpAddr, AddressError> {
        let spec = self
            .specs
            .iter()
            .find(|s| s.cidr == cidr)
            .ok_or(AddressError::UnknownSubnet { cidr })?;
        let a = self
            .lowest_free(spec)
            .ok_or(AddressError::SubnetExhausted { cidr })?;
        self.held.insert(a, owner);
        Ok(a)
    }

    fn fixed(&mut self, owner: u8, a: IpAddr) -> Result<(), AddressError> {
        let spec = self
            .subnet_of(a)
            .ok_or(AddressError::OutsideSubnets { address: a })?;
        if let Some(reservation) = self.reservation(spec, a) {
            return Err(AddressError::Reserved {
                address: a,
                reservation,
                cidr: spec.cidr,
            });
        }
        match self.held.get(&a) {
            Some(&h) if h != owner => Err(AddressError::Taken {
                address: a,
                holder: h.to_string(),
            }),
            _ => {
                self.held.insert(a, owner);
                Ok(())
            }
        }
    }

    fn release(&mut self, owner: u8, a: IpAddr) -> Result<bool, AddressError> {
        match self.held.get(&a) {
            None => Ok(false),
            Some(&h) if h == owner => {
                self.held.remove(&a);
                Ok(true)
            }
            Some(&h) => Err(AddressError::Taken {
                address: a,
                holder: h.to_string(),
            }),
        }
    }
}

fn check(a: &IpAllocator<u8>, model: &Model<'_>) -> Result<(), TestCaseError> {
    let got: Vec<(IpAddr, u8)> = a.assignments().map(|(&o, ip)| (ip, o)).collect();
    let expected: Vec<(IpAddr, u8)> = model.held.iter().map(|(&ip, &o)| (ip, o)).collect();
    prop_assert_eq!(&got, &expected);
    prop_assert_eq!(a.len(), expected.len());
    for &(address, owner) in &got {
        let spec = model.subnet_of(address);
        prop_assert!(spec.is_some(), "{} outside the subnets", address);
        if let Some(spec) = spec {
            prop_assert_eq!(
                model.reservation(spec, address),
                None,
                "{} is reserved",
                address
            );
        }
        prop_assert_eq!(a.holder(address), Some(&owner));
        prop_assert!(a.addresses_of(&owner).contains(&address));
    }
    for usage in a.usage() {
        let spec = model.specs.iter().find(|s| s.cidr == usage.cidr).unwrap();
        let free = candidates()
            .into_iter()
            .filter(|&c| model.dynamic_ok(spec, c) && !model.held.contains_key(&c))
            .count();
        prop_assert_eq!(usage.free, free as u128);
        let assigned = model.held.keys().filter(|h| spec.cidr.contains(*h)).count();
        prop_assert_eq!(usage.assigned, assigned);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn the_allocator_follows_the_model(
        config in config(),
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        let subnets = NetworkSubnets::new(&config.specs).unwrap();
        let mut allocator: IpAllocator<u8> = IpAllocator::new(subnets.clone());
        let mut model = Model { specs: &config.specs, held: BTreeMap::new() };
        let all = candidates();
        for op in ops {
            match op {
                Op::Allocate(owner, v6) => {
                    let family = if v6 { IpFamily::V6 } else { IpFamily::V4 };
                    prop_assert_eq!(allocator.allocate(owner, family), model.allocate(owner, family));
                }
                Op::AllocateIn(owner, s) => {
                    let cidr = CIDRS.get(s).map_or_else(|| net("10.9.0.0/24"), |c| net(c));
                    prop_assert_eq!(allocator.allocate_in(owner, cidr), model.allocate_in(owner, cidr));
                }
                Op::Fixed(owner, i) => {
                    prop_assert_eq!(allocator.allocate_fixed(owner, all[i]), model.fixed(owner, all[i]));
                }
                Op::Release(owner, i) => {
                    prop_assert_eq!(allocator.release(&owner, all[i]), model.release(owner, all[i]));
                }
                Op::ReleaseOwner(owner) => {
                    let expected: Vec<IpAddr> = model.held.iter().filter(|(_, o)| **o == owner).map(|(&a, _)| a).collect();
                    model.held.retain(|_, o| *o != owner);
                    prop_assert_eq!(allocator.release_owner(&owner), expected);
                }
                Op::Rebuild => {
                    let stored: Vec<(u8, IpAddr)> = allocator.assignments().map(|(&o, a)| (o, a)).collect();
                    let (rebuilt, rejected) = IpAllocator::restore(subnets.clone(), stored);
                    prop_assert!(rejected.is_empty(), "{:?}", rejected);
                    allocator = rebuilt;
                }
            }
            check(&allocator, &model)?;
        }
    }

    #[test]
    fn restore_keeps_exactly_what_fixed_requests_would(
        config in config(),
        stored in proptest::collection::vec((0u8..4, 0usize..40), 0..30),
    ) {
        let all = candidates();
        let stored: Vec<(u8, IpAddr)> = stored.into_iter().map(|(o, i)| (o, all[i % all.len()])).collect();
        let subnets = NetworkSubnets::new(&config.specs).unwrap();
        let (allocator, rejected) = IpAllocator::restore(subnets, stored.clone());
        let mut model = Model { specs: &config.specs, held: BTreeMap::new() };
        let mut expected = Vec::new();
        for (owner, address) in stored {
            if let Err(error) = model.fixed(owner, address) {
                expected.push(crate::ipam::Rejected { owner, value: address, error });
            }
        }
        prop_assert_eq!(rejected, expected);
        check(&allocator, &model)?;
    }
}
