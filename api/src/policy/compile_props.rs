//! Compilation checked against the policy model itself: for random policies and objects, a
//! sampled packet passes the compiled rules exactly when some governing policy rule allows it
//! (or nothing governs its direction); and the rule lists keep their invariants.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use proptest::prelude::*;

use super::*;
use crate::selector::LabelSelector;

const NET: &str = "n";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum L4 {
    Tcp,
    Udp,
    Icmp,
}

fn address(v6: bool, last: u8) -> IpAddr {
    if v6 {
        IpAddr::V6(std::net::Ipv6Addr::new(
            0xfd00,
            0,
            0,
            0,
            0,
            0,
            0,
            u16::from(last),
        ))
    } else {
        IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, last))
    }
}

fn labels() -> impl Strategy<Value = LabelSelector> {
    prop_oneof![
        Just(LabelSelector::everything()),
        Just(LabelSelector::from_labels([("app", "a")])),
        Just(LabelSelector::from_labels([("app", "b")])),
    ]
}

fn object(name: String) -> impl Strategy<Value = PolicyObject> {
    (
        prop_oneof![Just("a"), Just("b")],
        prop::collection::btree_set((any::<bool>(), 0u8..16), 0..3),
    )
        .prop_map(move |(app, ips)| {
            PolicyObject::new(
                name.clone(),
                NET,
                [("app", app)],
                ips.into_iter().map(|(v6, last)| address(v6, last)),
            )
        })
}

fn block() -> impl Strategy<Value = PolicyPeer> {
    (
        any::<bool>(),
        0u8..16,
        28u8..=32,
        prop::collection::vec((0u8..16, 29u8..=32), 0..3),
    )
        .prop_map(|(v6, last, len, except)| {
            let extra = if v6 { 96 } else { 0 };
            let cidr = IpNet::new(address(v6, last), len + extra).unwrap().trunc();
            let except = except
                .into_iter()
                .map(|(l, e)| IpNet::new(address(v6, l), e + extra).unwrap().trunc())
                .filter(|e| cidr.contains(e) && e.prefix_len() > cidr.prefix_len())
                .collect();
            PolicyPeer::IpBlock(IpBlock { cidr, except })
        })
}

fn peer() -> impl Strategy<Value = PolicyPeer> {
    prop_oneof![
        block(),
        (any::<bool>(), labels()).prop_map(|(lb, selector)| {
            let kind = if lb {
                ObjectKind::LoadBalancer
            } else {
                ObjectKind::NetworkInterface
            };
            PolicyPeer::ObjectSelector(ObjectSelector { kind, selector })
        }),
    ]
}

fn port() -> impl Strategy<Value = PolicyPort> {
    prop_oneof![
        Just(PolicyPort::single(Protocol::Tcp, 80)),
        Just(PolicyPort::range(Protocol::Tcp, 80, 90)),
        Just(PolicyPort::single(Protocol::Udp, 53)),
        Just(PolicyPort {
            protocol: Some(Protocol::Udp),
            port: None,
            end_port: None
        }),
        Just(PolicyPort {
            protocol: None,
            port: Some(85),
            end_port: Some(86)
        }),
    ]
}

fn policy_rule() -> impl Strategy<Value = PolicyRule> {
    (
        prop::collection::vec(peer(), 0..3),
        prop::collection::vec(port(), 0..3),
    )
        .prop_map(|(peers, ports)| PolicyRule { peers, ports })
}

fn policy(name: String) -> impl Strategy<Value = NetworkPolicy> {
    (
        labels(),
        prop::sample::subsequence(vec![PolicyType::Ingress, PolicyType::Egress], 0..=2),
        prop::collection::vec(policy_rule(), 0..3),
        prop::collection::vec(policy_rule(), 0..3),
    )
        .prop_map(
            move |(selector, policy_types, ingress, egress)| NetworkPolicy {
                name: name.clone(),
                spec: NetworkPolicySpec {
                    network_ref: NET.to_string(),
                    network_interface_selector: selector,
                    policy_types,
                    ingress,
                    egress,
                },
            },
        )
}

fn world() -> impl Strategy<Value = (Vec<NetworkPolicy>, PolicyInventory)> {
    (
        (0..3usize).prop_flat_map(|n| (0..n).map(|i| policy(format!("p{i}"))).collect::<Vec<_>>()),
        (
            object("i0".into()),
            object("i1".into()),
            object("i2".into()),
        ),
        object("lb".into()),
    )
        .prop_map(|(policies, (i0, i1, i2), lb)| {
            let inventory = PolicyInventory {
                interfaces: vec![i0, i1, i2],
                load_balancers: vec![lb],
            };
            (policies, inventory)
        })
}

fn peer_allows(peer: &PolicyPeer, addr: IpAddr, inventory: &PolicyInventory) -> bool {
    match peer {
        PolicyPeer::IpBlock(b) => {
            b.cidr.contains(&addr) && !b.except.iter().any(|e| e.contains(&addr))
        }
        PolicyPeer::ObjectSelector(s) => {
            let objects = match s.kind {
                ObjectKind::NetworkInterface => &inventory.interfaces,
                ObjectKind::LoadBalancer => &inventory.load_balancers,
            };
            objects
                .iter()
                .any(|o| s.selector.matches(&o.labels) && o.ips.contains(&addr))
        }
    }
}

fn port_allows(p: &PolicyPort, l4: L4, dport: u16) -> bool {
    let proto_ok = matches!(
        (p.protocol.unwrap_or(Protocol::Tcp), l4),
        (Protocol::Tcp, L4::Tcp) | (Protocol::Udp, L4::Udp)
    );
    proto_ok
        && p.port
            .is_none_or(|first| first <= dport && dport <= p.end_port.unwrap_or(first))
}

/// What the policy model says about a packet between the interface and `peer`.
fn model_allows(
    policies: &[NetworkPolicy],
    inventory: &PolicyInventory,
    iface: &PolicyObject,
    t: PolicyType,
    peer: IpAddr,
    l4: L4,
    dport: u16,
) -> bool {
    let governing: Vec<&NetworkPolicy> = policies
        .iter()
        .filter(|p| p.spec.network_interface_selector.matches(&iface.labels) && p.spec.governs(t))
        .collect();
    governing.is_empty()
        || governing.iter().any(|p| {
            p.spec.rules(t).iter().any(|r| {
                (r.peers.is_empty() || r.peers.iter().any(|x| peer_allows(x, peer, inventory)))
                    && (r.ports.is_empty() || r.ports.iter().any(|x| port_allows(x, l4, dport)))
            })
        })
}

/// What the compiled rules do with the packet, under the documented dpservice model.
fn rules_allow(
    rules: &[FirewallRule],
    direction: Direction,
    local: IpAddr,
    peer: IpAddr,
    l4: L4,
    dport: u16,
) -> bool {
    let mine: Vec<&FirewallRule> = rules.iter().filter(|r| r.direction == direction).collect();
    let (src, dst) = match direction {
        Direction::Ingress => (peer, local),
        Direction::Egress => (local, peer),
    };
    mine.is_empty()
        || mine.iter().any(|r| {
            r.source.contains(&src)
                && r.destination.contains(&dst)
                && match (r.protocol, l4) {
                    (RuleProtocol::Any, _) => true,
                    (RuleProtocol::Tcp { dst_ports }, L4::Tcp)
                    | (RuleProtocol::Udp { dst_ports }, L4::Udp) => {
                        dst_ports.is_none_or(|p| p.first <= dport && dport <= p.last)
                    }
                    _ => false,
                }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn compiled_rules_allow_exactly_what_the_policies_allow(
        (policies, inventory) in world(),
        packets in prop::collection::vec((any::<bool>(), 0u8..20, 0..3u8, prop::sample::select(vec![53u16, 79, 80, 85, 86, 87, 90, 91])), 24),
    ) {
        let compiled = compile_policies(NET, &policies, &inventory).unwrap();
        prop_assert!(compiled.errors.is_empty());
        prop_assert_eq!(compiled.interfaces.len(), inventory.interfaces.len());
        for iface in &inventory.interfaces {
            let rules = &compiled.interfaces[&iface.name].rules;
            // Invariants: sorted, unique ids of dpservice's shape, no rule covering another.
            let ids: BTreeSet<&str> = rules.iter().map(|r| r.id.as_str()).collect();
            prop_assert_eq!(ids.len(), rules.len());
            for (i, r) in rules.iter().enumerate() {
                prop_assert!(r.id.len() <= MAX_RULE_ID_LEN);
                prop_assert_eq!(r.source.addr().is_ipv6(), r.destination.addr().is_ipv6());
                prop_assert!(iface.ips.iter().any(|ip| ip.is_ipv6() == r.source.addr().is_ipv6()));
                for (j, s) in rules.iter().enumerate() {
                    prop_assert!(i == j || !s.covers(r), "{} covers {}", s, r);
                }
            }
            for (v6, last, l4, dport) in &packets {
                let Some(local) = iface.ips.iter().find(|ip| ip.is_ipv6() == *v6) else {
                    continue;
                };
                let peer = address(*v6, *last);
                let l4 = [L4::Tcp, L4::Udp, L4::Icmp][usize::from(*l4)];
                for (t, d) in [(PolicyType::Ingress, Direction::Ingress), (PolicyType::Egress, Direction::Egress)] {
                    let want = model_allows(&policies, &inventory, iface, t, peer, l4, *dport);
                    let got = rules_allow(rules, d, *local, peer, l4, *dport);
                    prop_assert_eq!(got, want, "{} {:?} {} {:?}/{} rules {:?}", iface.name, d, peer, l4, dport, rules);
                }
            }
        }
        // Input order does not matter.
        let mut reversed = policies.clone();
        reversed.reverse();
        let mut inv = inventory.clone();
        inv.interfaces.reverse();
        prop_assert_eq!(compile_policies(NET, &reversed, &inv).unwrap(), compiled);
    }
}
