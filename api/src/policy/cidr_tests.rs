//! CIDR set difference: worked examples, and a property checked exactly (sizes, overlaps,
//! maximality) and by sampling addresses.

#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use proptest::prelude::*;

use super::cidr::{cidr_difference, overlaps};

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn nets(list: &[&str]) -> Vec<IpNet> {
    list.iter().map(|s| net(s)).collect()
}

#[test]
fn a_hole_in_a_block_leaves_one_prefix_per_level() {
    assert_eq!(
        cidr_difference(net("10.0.0.0/8"), &nets(&["10.1.0.0/16"])),
        nets(&[
            "10.0.0.0/16",
            "10.2.0.0/15",
            "10.4.0.0/14",
            "10.8.0.0/13",
            "10.16.0.0/12",
            "10.32.0.0/11",
            "10.64.0.0/10",
            "10.128.0.0/9",
        ])
    );
}

#[test]
fn two_holes_share_the_levels_above_them() {
    assert_eq!(
        cidr_difference(
            net("172.17.0.0/16"),
            &nets(&["172.17.2.0/24", "172.17.1.0/24"])
        ),
        nets(&[
            "172.17.0.0/24",
            "172.17.3.0/24",
            "172.17.4.0/22",
            "172.17.8.0/21",
            "172.17.16.0/20",
            "172.17.32.0/19",
            "172.17.64.0/18",
            "172.17.128.0/17",
        ])
    );
    // Neighbouring holes that fill a larger block take the whole block away.
    assert_eq!(
        cidr_difference(net("10.0.0.0/30"), &nets(&["10.0.0.0/31", "10.0.0.2/31"])),
        vec![]
    );
}

#[test]
fn degenerate_excepts() {
    let cidr = net("10.0.0.0/24");
    assert_eq!(cidr_difference(cidr, &[]), vec![cidr]);
    assert_eq!(cidr_difference(cidr, &[cidr]), vec![]);
    assert_eq!(cidr_difference(cidr, &nets(&["10.0.0.0/8"])), vec![]);
    assert_eq!(
        cidr_difference(cidr, &nets(&["10.0.1.0/24", "::/0"])),
        vec![cidr]
    );
    // Nested excepts count once; host bits are ignored.
    assert_eq!(
        cidr_difference(net("10.0.0.7/29"), &nets(&["10.0.0.4/30", "10.0.0.5/32"])),
        nets(&["10.0.0.0/30"])
    );
    assert_eq!(
        cidr_difference(net("10.0.0.0/31"), &nets(&["10.0.0.1/32"])),
        nets(&["10.0.0.0/32"])
    );
}

#[test]
fn ipv6_and_whole_spaces() {
    assert_eq!(
        cidr_difference(net("::/0"), &nets(&["::/1"])),
        nets(&["8000::/1"])
    );
    assert_eq!(
        cidr_difference(net("0.0.0.0/0"), &nets(&["0.0.0.0/32"])).len(),
        32
    );
    assert_eq!(
        cidr_difference(net("fd00::/64"), &nets(&["fd00::1/128"])).len(),
        64
    );
}

fn to_int(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn from_int(v6: bool, value: u128) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(value))
    } else {
        IpAddr::V4(Ipv4Addr::from(value as u32))
    }
}

fn size(n: &IpNet) -> u128 {
    1u128 << (n.max_prefix_len() - n.prefix_len())
}

/// A block and excepts inside it (most of them) or anywhere (some), as integers so one
/// strategy serves both families. IPv6 blocks are at most /8 wide so sizes fit a u128.
fn case() -> impl Strategy<Value = (IpNet, Vec<IpNet>)> {
    (any::<bool>(), any::<u128>(), 0u8..=128).prop_flat_map(|(v6, seed, len)| {
        let max = if v6 { 128u8 } else { 32 };
        let len = if v6 { 8 + len % 121 } else { len % 33 };
        let base = if v6 { seed } else { seed & 0xffff_ffff };
        let cidr = IpNet::new(from_int(v6, base), len).unwrap().trunc();
        let except = (any::<u128>(), 0u8..=128, any::<bool>()).prop_map(move |(r, l, inside)| {
            let l = if inside {
                len + l % (max - len + 1)
            } else {
                l % (max + 1)
            };
            let span = size(&cidr);
            let addr = if inside {
                to_int(cidr.network()) + r % span
            } else if v6 {
                r
            } else {
                r & 0xffff_ffff
            };
            IpNet::new(from_int(v6, addr), l).unwrap().trunc()
        });
        (Just(cidr), prop::collection::vec(except, 0..8))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_difference_is_exact_disjoint_and_minimal(
        (cidr, except) in case(),
        samples in prop::collection::vec(any::<u128>(), 64),
    ) {
        let out = cidr_difference(cidr, &except);
        let v6 = cidr.addr().is_ipv6();
        let relevant: Vec<IpNet> = except.iter().copied().filter(|e| overlaps(&cidr, e)).collect();
        // Inside the block, clear of every except, pairwise disjoint, ascending.
        for (i, r) in out.iter().enumerate() {
            prop_assert!(cidr.contains(r), "{} outside {}", r, cidr);
            for e in &relevant {
                prop_assert!(!overlaps(r, e), "{} overlaps except {}", r, e);
            }
            for s in &out[i + 1..] {
                prop_assert!(!overlaps(r, s) && r < s, "{} and {}", r, s);
            }
            // Maximal: the parent block reaches outside the difference.
            if let Some(parent) = r.supernet() {
                prop_assert!(
                    !cidr.contains(&parent) || relevant.iter().any(|e| overlaps(&parent, e)),
                    "{} could be merged into {}", r, parent
                );
            }
        }
        // Covers all of it: sizes add up. Excepts nest or are disjoint, so the excepted size is
        // the sum over those no other except contains (counting equal ones once).
        let mut outer: Vec<IpNet> = relevant
            .iter()
            .map(|e| if cidr.contains(e) { *e } else { cidr })
            .collect();
        outer.sort();
        outer.dedup();
        let excepted: u128 = outer
            .iter()
            .filter(|e| !outer.iter().any(|o| o != *e && o.contains(*e)))
            .map(size)
            .sum();
        let covered: u128 = out.iter().map(size).sum();
        prop_assert_eq!(covered, size(&cidr) - excepted);
        // And by sampling: random addresses of the block, plus the edges of every piece.
        let first = to_int(cidr.network());
        let mut points: Vec<IpAddr> = samples
            .iter()
            .map(|s| from_int(v6, first + s % size(&cidr)))
            .collect();
        for n in out.iter().chain(&except) {
            let (lo, hi) = (to_int(n.network()), to_int(n.broadcast()));
            let top = if v6 { u128::MAX } else { u128::from(u32::MAX) };
            points.extend([lo, hi, lo.saturating_sub(1), hi.saturating_add(1).min(top)]
                .map(|x| from_int(v6, x)));
        }
        for ip in points {
            let expected = cidr.contains(&ip) && !except.iter().any(|e| e.contains(&ip));
            let got = out.iter().any(|r| r.contains(&ip));
            prop_assert_eq!(got, expected, "{}", ip);
        }
    }
}
