//! proptest strategies for the internal types: valid values only (what validation can produce).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use proptest::collection::{btree_map, btree_set};
use proptest::prelude::*;

use crate::spec::{
    Direction, FirewallRule, InterfaceSpec, InterfaceUnderlays, LbKind, LbProtocol,
    LoadBalancerSpec, Metering, Nat, PortRange, Ports, ProtocolFilter,
};

/// A small address space so that sets of two specs overlap often.
pub(super) fn arb_ipv4() -> impl Strategy<Value = Ipv4Addr> {
    (1u8..4, 0u8..4).prop_map(|(a, b)| Ipv4Addr::new(10, 0, a, b))
}

pub(super) fn arb_ipv6() -> impl Strategy<Value = Ipv6Addr> {
    (1u16..4, 0u16..4).prop_map(|(a, b)| Ipv6Addr::new(0xfd00, a, 0, 0, 0, 0, 0, b))
}

pub(super) fn arb_underlay() -> impl Strategy<Value = Ipv6Addr> {
    (0u16..6).prop_map(|n| Ipv6Addr::new(0xfc00, 1, 0, 0, 0, 0xb, 0, n))
}

/// A prefix without host bits, of either family.
pub(super) fn arb_net() -> impl Strategy<Value = IpNet> {
    prop_oneof![
        (arb_ipv4(), 8u8..=32)
            .prop_map(|(a, l)| IpNet::new(IpAddr::V4(a), l).map(|n| n.trunc()).unwrap()),
        (arb_ipv6(), 16u8..=128)
            .prop_map(|(a, l)| IpNet::new(IpAddr::V6(a), l).map(|n| n.trunc()).unwrap()),
    ]
}

fn arb_net_of(v6: bool) -> BoxedStrategy<IpNet> {
    if v6 {
        (arb_ipv6(), 0u8..=128)
            .prop_map(|(a, l)| IpNet::new(IpAddr::V6(a), l).map(|n| n.trunc()).unwrap())
            .boxed()
    } else {
        (arb_ipv4(), 0u8..=32)
            .prop_map(|(a, l)| IpNet::new(IpAddr::V4(a), l).map(|n| n.trunc()).unwrap())
            .boxed()
    }
}

fn arb_range() -> impl Strategy<Value = Option<PortRange>> {
    proptest::option::of((any::<u16>(), any::<u16>()).prop_map(|(a, b)| PortRange {
        first: a.min(b),
        last: a.max(b),
    }))
}

fn arb_ports() -> impl Strategy<Value = Ports> {
    (arb_range(), arb_range()).prop_map(|(src, dst)| Ports { src, dst })
}

fn arb_protocol() -> impl Strategy<Value = ProtocolFilter> {
    prop_oneof![
        Just(ProtocolFilter::Any),
        arb_ports().prop_map(ProtocolFilter::Tcp),
        arb_ports().prop_map(ProtocolFilter::Udp),
        (
            proptest::option::of(any::<u8>()),
            proptest::option::of(any::<u8>())
        )
            .prop_map(|(icmp_type, icmp_code)| ProtocolFilter::Icmp {
                icmp_type,
                icmp_code
            }),
    ]
}

pub(super) fn arb_rule() -> impl Strategy<Value = FirewallRule> {
    any::<bool>().prop_flat_map(|v6| {
        (
            any::<bool>(),
            any::<u16>(),
            arb_net_of(v6),
            arb_net_of(v6),
            arb_protocol(),
        )
            .prop_map(
                |(ingress, priority, source, destination, protocol)| FirewallRule {
                    direction: if ingress {
                        Direction::Ingress
                    } else {
                        Direction::Egress
                    },
                    priority,
                    source,
                    destination,
                    protocol,
                },
            )
    })
}

/// Rule sets over a few ids, so two sets share ids (with equal or different bodies) often.
pub(super) fn arb_rules() -> impl Strategy<Value = BTreeMap<String, FirewallRule>> {
    btree_map("r[0-5]", arb_rule(), 0..5)
}

pub(super) fn arb_interface() -> impl Strategy<Value = InterfaceSpec> {
    let ips = prop_oneof![
        arb_ipv4().prop_map(|a| (Some(a), None)),
        arb_ipv6().prop_map(|a| (None, Some(a))),
        (arb_ipv4(), arb_ipv6()).prop_map(|(a, b)| (Some(a), Some(b))),
    ];
    let nat = proptest::option::of((arb_ipv4(), any::<u16>(), any::<u16>()).prop_filter_map(
        "empty slice",
        |(ip, a, b)| {
            (a != b).then(|| Nat {
                ip: Ipv4Addr::new(203, 0, 113, ip.octets()[3]),
                port: a.min(b),
                end_port: a.max(b),
            })
        },
    ));
    let vip = proptest::option::of((0u8..4).prop_map(|d| Ipv4Addr::new(198, 51, 100, d)));
    (
        ips,
        vip,
        nat,
        btree_set(arb_net(), 0..4),
        btree_set(arb_net(), 0..4),
        arb_rules(),
        (any::<u16>(), any::<u16>()),
        proptest::option::of("[a-z]{1,8}"),
    )
        .prop_map(
            |((ipv4, ipv6), virtual_ip, nat, prefixes, lb_targets, firewall, (t, p), hostname)| {
                InterfaceSpec {
                    network: "net-1".into(),
                    ipv4,
                    ipv6,
                    virtual_ip,
                    nat,
                    prefixes,
                    lb_targets,
                    firewall,
                    metering: Metering {
                        total: u64::from(t.max(p)),
                        public: u64::from(t.min(p)),
                    },
                    hostname,
                }
            },
        )
}

/// Underlays for some of the spec's objects (and some objects not in the spec).
pub(super) fn arb_underlays(
    spec: &InterfaceSpec,
) -> impl Strategy<Value = InterfaceUnderlays> + use<> {
    let some_of = |nets: &BTreeSet<IpNet>| {
        let nets: Vec<IpNet> = nets.iter().copied().collect();
        (
            proptest::sample::subsequence(nets.clone(), 0..=nets.len()),
            btree_map(arb_net(), arb_underlay(), 0..2),
        )
            .prop_flat_map(|(chosen, extra)| {
                let n = chosen.len();
                proptest::collection::vec(arb_underlay(), n).prop_map(move |uls| {
                    let mut m = extra.clone();
                    m.extend(chosen.iter().copied().zip(uls));
                    m
                })
            })
    };
    (
        proptest::option::of(arb_underlay()),
        proptest::option::of(arb_underlay()),
        proptest::option::of(arb_underlay()),
        some_of(&spec.prefixes),
        some_of(&spec.lb_targets),
    )
        .prop_map(
            |(interface, vip, nat, prefixes, lb_targets)| InterfaceUnderlays {
                interface,
                vip,
                nat,
                prefixes,
                lb_targets,
            },
        )
}

pub(super) fn arb_load_balancer() -> impl Strategy<Value = LoadBalancerSpec> {
    (
        any::<bool>(),
        prop_oneof![
            arb_ipv4().prop_map(IpAddr::V4),
            arb_ipv6().prop_map(IpAddr::V6)
        ],
        btree_set(
            (
                prop_oneof![Just(LbProtocol::Tcp), Just(LbProtocol::Udp)],
                1u16..=65535,
            ),
            1..=15,
        ),
    )
        .prop_map(|(internal, ip, ports)| LoadBalancerSpec {
            network: "net-1".into(),
            kind: if internal {
                LbKind::Internal
            } else {
                LbKind::Public
            },
            ip,
            ports,
        })
}
