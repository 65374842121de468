//! Subnet validation, one test per rule, and the reserved/allocatable/capacity queries against
//! brute force on random small subnets.

#![allow(clippy::unwrap_used)]

use std::net::IpAddr;

use ipnet::IpNet;
use proptest::prelude::*;

use super::*;
use crate::ipam::family::from_int;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn range(start: &str, end: &str) -> AddressRange {
    AddressRange::new(ip(start), ip(end))
}

fn route(destination: &str, next_hop: &str) -> SubnetRoute {
    SubnetRoute {
        destination: net(destination),
        next_hop: ip(next_hop),
    }
}

/// The errors of `spec` as `"field: problem"` lines.
fn errors(spec: &SubnetSpec) -> Vec<String> {
    match Subnet::new(spec) {
        Ok(_) => Vec::new(),
        Err(e) => e.errors().iter().map(ToString::to_string).collect(),
    }
}

fn v4() -> SubnetSpec {
    SubnetSpec::new(net("10.0.0.0/24"))
}

#[test]
fn a_full_spec_validates_and_round_trips() {
    let spec = SubnetSpec {
        cidr: net("10.0.0.0/24"),
        allocation_ranges: vec![
            range("10.0.0.100", "10.0.0.199"),
            range("10.0.0.10", "10.0.0.19"),
        ],
        excluded_addresses: vec![ip("10.0.0.15")],
        gateway: Some(ip("10.0.0.1")),
        routes: vec![route("192.168.0.0/16", "10.0.0.254")],
    };
    let subnet = Subnet::new(&spec).unwrap();
    assert_eq!(subnet.cidr(), net("10.0.0.0/24"));
    assert_eq!(subnet.family(), IpFamily::V4);
    assert_eq!(subnet.gateway(), Some(ip("10.0.0.1")));
    assert_eq!(subnet.routes(), spec.routes.as_slice());
    assert_eq!(
        subnet.allocation_ranges(),
        &[
            range("10.0.0.10", "10.0.0.19"),
            range("10.0.0.100", "10.0.0.199")
        ]
    );
    assert_eq!(
        subnet.excluded_addresses().collect::<Vec<_>>(),
        vec![ip("10.0.0.15")]
    );
    assert_eq!(subnet.capacity(), 10 + 100 - 1);
    assert_eq!(Subnet::new(&subnet.to_spec()).unwrap(), subnet);
}

#[test]
fn host_bits_in_the_cidr_are_refused() {
    let spec = SubnetSpec::new(net("10.0.0.5/24"));
    assert_eq!(
        errors(&spec),
        ["cidr: 10.0.0.5/24 has host bits set (the network is 10.0.0.0/24)"]
    );
}

#[test]
fn subnets_without_an_address_to_hand_out_are_refused() {
    for cidr in ["10.0.0.0/31", "10.0.0.1/32"] {
        let errs = errors(&SubnetSpec::new(net(cidr)));
        assert!(
            errs.iter()
                .any(|e| e.contains("the prefix must be at most /30")),
            "{cidr}: {errs:?}"
        );
    }
    assert_eq!(
        errors(&SubnetSpec::new(net("fd00::/128"))),
        ["cidr: fd00::/128 leaves no address to hand out: the prefix must be at most /127"]
    );
    let v4 = Subnet::new(&SubnetSpec::new(net("10.0.0.0/30"))).unwrap();
    assert_eq!(v4.capacity(), 2);
    let v6 = Subnet::new(&SubnetSpec::new(net("fd00::/127"))).unwrap();
    assert_eq!(v6.capacity(), 1);
}

#[test]
fn range_bounds_must_be_inside_the_cidr_and_of_its_family() {
    let mut spec = v4();
    spec.allocation_ranges = vec![range("10.0.1.0", "10.0.0.20"), range("10.0.0.1", "fd00::1")];
    assert_eq!(
        errors(&spec),
        [
            "allocationRanges[0].start: 10.0.1.0 is outside 10.0.0.0/24",
            "allocationRanges[1].end: fd00::1 is not IPv4",
        ]
    );
}

#[test]
fn a_range_must_not_end_before_it_starts() {
    let mut spec = v4();
    spec.allocation_ranges = vec![range("10.0.0.20", "10.0.0.10")];
    assert_eq!(
        errors(&spec),
        ["allocationRanges[0].end: 10.0.0.10 is before the start 10.0.0.20"]
    );
    spec.allocation_ranges = vec![range("10.0.0.20", "10.0.0.20")];
    assert_eq!(Subnet::new(&spec).unwrap().capacity(), 1);
}

#[test]
fn ranges_must_not_overlap() {
    let mut spec = v4();
    spec.allocation_ranges = vec![
        range("10.0.0.10", "10.0.0.20"),
        range("10.0.0.30", "10.0.0.40"),
        range("10.0.0.40", "10.0.0.50"),
        range("10.0.0.21", "10.0.0.29"),
    ];
    assert_eq!(
        errors(&spec),
        ["allocationRanges[2]: overlaps allocationRanges[1]"]
    );
}

#[test]
fn excluded_addresses_must_be_inside_and_listed_once() {
    let mut spec = v4();
    spec.excluded_addresses = vec![
        ip("10.0.0.7"),
        ip("10.0.1.7"),
        ip("fd00::7"),
        ip("10.0.0.7"),
    ];
    assert_eq!(
        errors(&spec),
        [
            "excludedAddresses[1]: 10.0.1.7 is outside 10.0.0.0/24",
            "excludedAddresses[2]: fd00::7 is not IPv4",
            "excludedAddresses[3]: 10.0.0.7 is listed already at excludedAddresses[0]",
        ]
    );
}

#[test]
fn the_gateway_must_be_a_host_address_of_the_subnet() {
    let cases = [
        ("10.0.1.1", "gateway: 10.0.1.1 is outside 10.0.0.0/24"),
        ("fd00::1", "gateway: fd00::1 is not IPv4"),
        ("10.0.0.0", "gateway: 10.0.0.0 is the network address"),
        ("10.0.0.255", "gateway: 10.0.0.255 is the broadcast address"),
    ];
    for (gateway, expected) in cases {
        let mut spec = v4();
        spec.gateway = Some(ip(gateway));
        assert_eq!(errors(&spec), [expected]);
    }
    // IPv6 has no broadcast address: the last one is a host like any other.
    let mut spec = SubnetSpec::new(net("fd00::/120"));
    spec.gateway = Some(ip("fd00::ff"));
    assert!(Subnet::new(&spec).is_ok());
    spec.gateway = Some(ip("fd00::"));
    assert_eq!(errors(&spec), ["gateway: fd00:: is the network address"]);
}

#[test]
fn routes_need_a_clean_distinct_destination_and_a_host_next_hop() {
    let mut spec = v4();
    spec.excluded_addresses = vec![ip("10.0.0.9")];
    spec.routes = vec![
        route("0.0.0.0/0", "10.0.0.9"),
        route("fd00::/8", "10.0.0.2"),
        route("192.168.1.1/16", "10.0.0.2"),
        route("0.0.0.0/0", "10.0.0.2"),
        route("172.16.0.0/12", "10.0.1.2"),
        route("172.17.0.0/16", "fd00::2"),
        route("172.18.0.0/16", "10.0.0.0"),
        route("172.19.0.0/16", "10.0.0.255"),
    ];
    assert_eq!(
        errors(&spec),
        [
            "routes[1].destination: fd00::/8 is not IPv4",
            "routes[2].destination: 192.168.1.1/16 has host bits set (the network is \
             192.168.0.0/16)",
            "routes[3].destination: 0.0.0.0/0 is listed already at routes[0].destination",
            "routes[4].nextHop: 10.0.1.2 is outside 10.0.0.0/24",
            "routes[5].nextHop: fd00::2 is not IPv4",
            "routes[6].nextHop: 10.0.0.0 is the network address",
            "routes[7].nextHop: 10.0.0.255 is the broadcast address",
        ]
    );
}

#[test]
fn every_error_is_reported_and_joined_in_the_display() {
    let spec = SubnetSpec {
        cidr: net("10.0.0.1/24"),
        allocation_ranges: vec![range("10.0.0.9", "10.0.0.8")],
        excluded_addresses: vec![],
        gateway: Some(ip("10.0.0.0")),
        routes: vec![],
    };
    let err = Subnet::new(&spec).unwrap_err();
    assert_eq!(err.errors().len(), 3);
    assert_eq!(
        err.to_string(),
        "cidr: 10.0.0.1/24 has host bits set (the network is 10.0.0.0/24); \
         allocationRanges[0].end: 10.0.0.8 is before the start 10.0.0.9; \
         gateway: 10.0.0.0 is the network address"
    );
}

#[test]
fn reservations_and_allocatable_addresses() {
    let spec = SubnetSpec {
        cidr: net("10.0.0.0/24"),
        allocation_ranges: vec![range("10.0.0.0", "10.0.0.10")],
        excluded_addresses: vec![ip("10.0.0.5")],
        gateway: Some(ip("10.0.0.1")),
        routes: vec![],
    };
    let subnet = Subnet::new(&spec).unwrap();
    let cases = [
        ("10.0.0.0", Some(Reservation::Network)),
        ("10.0.0.255", Some(Reservation::Broadcast)),
        ("10.0.0.1", Some(Reservation::Gateway)),
        ("10.0.0.5", Some(Reservation::Excluded)),
        ("10.0.0.2", None),
        ("10.0.1.0", None),
    ];
    for (address, expected) in cases {
        assert_eq!(subnet.reservation(ip(address)), expected, "{address}");
    }
    assert!(subnet.is_allocatable(ip("10.0.0.2")));
    assert!(
        !subnet.is_allocatable(ip("10.0.0.11")),
        "outside the ranges"
    );
    assert!(!subnet.is_allocatable(ip("10.0.0.5")));
    assert!(!subnet.is_allocatable(ip("fd00::2")));
    // 0..=10 without network, gateway and the excluded .5
    assert_eq!(subnet.capacity(), 8);
}

#[test]
fn capacity_of_large_subnets_is_computed_not_enumerated() {
    let v4 = Subnet::new(&SubnetSpec::new(net("10.0.0.0/8"))).unwrap();
    assert_eq!(v4.capacity(), (1 << 24) - 2);
    let v6 = Subnet::new(&SubnetSpec::new(net("fd00::/64"))).unwrap();
    assert_eq!(v6.capacity(), (1u128 << 64) - 1);
    let all = Subnet::new(&SubnetSpec::new(net("::/0"))).unwrap();
    assert_eq!(all.capacity(), u128::MAX);
}

#[test]
fn network_subnets_must_not_overlap_and_paths_name_the_subnet() {
    let mut second = SubnetSpec::new(net("10.1.0.0/24"));
    second.allocation_ranges = vec![range("10.1.0.10", "10.2.0.1")];
    let specs = [
        SubnetSpec::new(net("10.0.0.0/24")),
        second,
        SubnetSpec::new(net("10.0.0.0/16")),
        SubnetSpec::new(net("fd00::/64")),
    ];
    let err = NetworkSubnets::new(&specs).unwrap_err();
    let got: Vec<String> = err.errors().iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        [
            "subnets[1].allocationRanges[0].end: 10.2.0.1 is outside 10.1.0.0/24",
            "subnets[2].cidr: overlaps subnets[0].cidr",
        ]
    );
    assert_eq!(err.errors()[0].field, "subnets[1].allocationRanges[0].end");
}

#[test]
fn network_subnets_are_kept_ascending_and_found_by_address_and_cidr() {
    let specs = [
        SubnetSpec::new(net("fd00::/64")),
        SubnetSpec::new(net("10.1.0.0/24")),
        SubnetSpec::new(net("10.0.0.0/24")),
    ];
    let subnets = NetworkSubnets::new(&specs).unwrap();
    let order: Vec<IpNet> = subnets.subnets().iter().map(Subnet::cidr).collect();
    assert_eq!(
        order,
        [net("10.0.0.0/24"), net("10.1.0.0/24"), net("fd00::/64")]
    );
    assert_eq!(subnets.of_family(IpFamily::V6).count(), 1);
    assert_eq!(
        subnets.containing(ip("10.1.0.9")).map(Subnet::cidr),
        Some(net("10.1.0.0/24"))
    );
    assert!(subnets.containing(ip("10.2.0.9")).is_none());
    assert!(subnets.get(net("10.1.0.0/24")).is_some());
    assert!(subnets.get(net("10.1.0.0/25")).is_none());
    assert!(NetworkSubnets::new(&[]).unwrap().subnets().is_empty());
}

/// Specs around `10.0.0.0/27` and `fd00::/123`, valid and not: offsets may fall outside the
/// CIDR, ranges may be reversed or overlap.
fn small_spec() -> impl Strategy<Value = SubnetSpec> {
    let offsets = || proptest::collection::vec(0u32..40, 0..4);
    (
        any::<bool>(),
        proptest::collection::vec((0u32..40, 0u32..40), 0..3),
        offsets(),
        proptest::option::of(0u32..40),
    )
        .prop_map(|(v6, ranges, excluded, gateway)| {
            let at = |o: u32| -> IpAddr {
                if v6 {
                    IpAddr::V6(std::net::Ipv6Addr::from(0xfd00u128 << 112 | u128::from(o)))
                } else {
                    IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + o))
                }
            };
            SubnetSpec {
                cidr: if v6 {
                    net("fd00::/123")
                } else {
                    net("10.0.0.0/27")
                },
                allocation_ranges: ranges
                    .into_iter()
                    .map(|(s, e)| AddressRange::new(at(s), at(e)))
                    .collect(),
                excluded_addresses: excluded.into_iter().map(at).collect(),
                gateway: gateway.map(at),
                routes: Vec::new(),
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn queries_match_brute_force(spec in small_spec()) {
        let Ok(subnet) = Subnet::new(&spec) else {
            return Ok(());
        };
        let (first, last) = net_bounds(&spec.cidr);
        let mut allocatable = 0u128;
        for a in (first..=last).map(|v| from_int(subnet.family(), v)) {
            let in_ranges = spec.allocation_ranges.is_empty()
                || spec.allocation_ranges.iter().any(|r| r.contains(a));
            let reserved = a == spec.cidr.network()
                || (subnet.family() == IpFamily::V4 && a == spec.cidr.broadcast())
                || spec.gateway == Some(a)
                || spec.excluded_addresses.contains(&a);
            prop_assert_eq!(subnet.reservation(a).is_some(), reserved, "{}", a);
            prop_assert_eq!(subnet.is_allocatable(a), in_ranges && !reserved, "{}", a);
            if in_ranges && !reserved {
                allocatable += 1;
            }
        }
        prop_assert_eq!(subnet.capacity(), allocatable);
    }
}
