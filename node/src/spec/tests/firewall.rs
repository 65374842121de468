//! Firewall rule validation (every rule with its field path) and the difference by id.

use std::collections::BTreeMap;

use ferrinet_proto::node::v1 as pb;
use proptest::prelude::*;

use super::strategies::arb_rules;
use super::{Case, V4, V6, any_rule, check_cases, icmp_rule, interface_pb, tcp_rule};
use crate::spec::{
    Direction, FirewallRule, PortRange, Ports, ProtocolFilter, firewall_diff,
    validate_firewall_rule, validate_interface,
};

fn net(s: &str) -> ipnet::IpNet {
    s.parse().unwrap()
}

fn rule(r: &pb::FirewallRule) -> FirewallRule {
    validate_firewall_rule("r", r, &V6).unwrap().1
}

fn rule0(i: &mut pb::NetworkInterface) -> &mut pb::FirewallRule {
    &mut i.spec.as_mut().unwrap().firewall_rules[0]
}

fn ports0(i: &mut pb::NetworkInterface) -> &mut pb::PortMatch {
    rule0(i)
        .protocol_match
        .as_mut()
        .unwrap()
        .port_range
        .as_mut()
        .unwrap()
}

fn icmp1(i: &mut pb::NetworkInterface) -> &mut pb::IcmpMatch {
    i.spec.as_mut().unwrap().firewall_rules[1]
        .protocol_match
        .as_mut()
        .unwrap()
        .icmp
        .as_mut()
        .unwrap()
}

#[test]
fn rules_resolve_defaults_by_family() {
    assert_eq!(
        rule(&tcp_rule("a")),
        FirewallRule {
            direction: Direction::Ingress,
            priority: 1000,
            source: net("10.0.0.0/8"),
            destination: net("0.0.0.0/0"),
            protocol: ProtocolFilter::Tcp(Ports {
                src: None,
                dst: Some(PortRange {
                    first: 80,
                    last: 90
                }),
            }),
        }
    );
    assert_eq!(
        rule(&icmp_rule("b")),
        FirewallRule {
            direction: Direction::Egress,
            priority: 5,
            source: net("::/0"),
            destination: net("fd00::/16"),
            protocol: ProtocolFilter::Icmp {
                icmp_type: Some(8),
                icmp_code: None
            },
        }
    );
    let any = rule(&any_rule("c"));
    assert_eq!(
        (any.source, any.destination, any.protocol),
        (net("0.0.0.0/0"), net("0.0.0.0/0"), ProtocolFilter::Any)
    );
    let mut v6_src = any_rule("d");
    v6_src.source_prefix = "fd00::/64".into();
    assert_eq!(rule(&v6_src).destination, net("::/0"));
}

#[test]
fn port_matches_resolve() {
    let with = |src: Option<i32>, end: Option<i32>| {
        let mut r = tcp_rule("p");
        let pr = r.protocol_match.as_mut().unwrap();
        pr.protocol = pb::Protocol::Udp as i32;
        pr.port_range = Some(pb::PortMatch {
            src_port: src,
            end_src_port: end,
            dst_port: None,
            end_dst_port: None,
        });
        match rule(&r).protocol {
            ProtocolFilter::Udp(p) => {
                assert_eq!(p.dst, None);
                p.src
            }
            other => panic!("{other:?}"),
        }
    };
    let range = |first, last| Some(PortRange { first, last });
    assert_eq!(with(None, None), None);
    assert_eq!(with(Some(-1), None), None);
    assert_eq!(with(Some(-1), Some(-1)), None);
    assert_eq!(with(None, Some(-1)), None);
    assert_eq!(with(Some(80), None), range(80, 80));
    assert_eq!(with(Some(0), Some(65535)), range(0, 65535));
    assert_eq!(with(Some(80), Some(80)), range(80, 80));

    let mut r = tcp_rule("p");
    r.protocol_match.as_mut().unwrap().port_range = None;
    assert_eq!(rule(&r).protocol, ProtocolFilter::Tcp(Ports::default()));
    let mut r = icmp_rule("i");
    r.protocol_match.as_mut().unwrap().icmp = None;
    assert_eq!(
        rule(&r).protocol,
        ProtocolFilter::Icmp {
            icmp_type: None,
            icmp_code: None
        }
    );
}

#[test]
fn bad_rules_name_the_field() {
    let cases: &[Case<pb::NetworkInterface>] = &[
        ("spec.firewall_rules[2].id", V6, |i| {
            i.spec.as_mut().unwrap().firewall_rules[2].id = "r0".into()
        }),
        ("spec.firewall_rules[0].id", V6, |i| rule0(i).id.clear()),
        ("spec.firewall_rules[0].id", V6, |i| {
            rule0(i).id = "a b".into()
        }),
        ("spec.firewall_rules[0].id", V6, |i| {
            rule0(i).id = "r".repeat(64)
        }),
        ("spec.firewall_rules[0].direction", V6, |i| {
            rule0(i).direction = 0
        }),
        ("spec.firewall_rules[0].direction", V6, |i| {
            rule0(i).direction = 9
        }),
        ("spec.firewall_rules[0].action", V6, |i| rule0(i).action = 0),
        ("spec.firewall_rules[0].action", V6, |i| {
            rule0(i).action = pb::Action::Deny as i32
        }),
        ("spec.firewall_rules[0].action", V6, |i| rule0(i).action = 7),
        ("spec.firewall_rules[0].priority", V6, |i| {
            rule0(i).priority = 65536
        }),
        ("spec.firewall_rules[0].source_prefix", V6, |i| {
            rule0(i).source_prefix = "10.0.0.1/8".into()
        }),
        ("spec.firewall_rules[0].source_prefix", V6, |i| {
            rule0(i).source_prefix = "junk".into()
        }),
        ("spec.firewall_rules[0].source_prefix", V4, |i| {
            let s = i.spec.as_mut().unwrap();
            s.ips.truncate(1);
            s.prefixes.truncate(1);
            rule0(i).source_prefix = "fd00::/8".into();
        }),
        ("spec.firewall_rules[0].destination_prefix", V6, |i| {
            rule0(i).destination_prefix = "fd00::/8".into()
        }),
        ("spec.firewall_rules[0].destination_prefix", V6, |i| {
            rule0(i).destination_prefix = "10.0.0.1/31".into()
        }),
        ("spec.firewall_rules[0].protocol_match.protocol", V6, |i| {
            rule0(i).protocol_match.as_mut().unwrap().protocol = 0
        }),
        ("spec.firewall_rules[0].protocol_match.protocol", V6, |i| {
            rule0(i).protocol_match.as_mut().unwrap().protocol = 9
        }),
        ("spec.firewall_rules[0].protocol_match.icmp", V6, |i| {
            rule0(i).protocol_match.as_mut().unwrap().icmp = Some(pb::IcmpMatch::default())
        }),
        (
            "spec.firewall_rules[1].protocol_match.port_range",
            V6,
            |i| {
                i.spec.as_mut().unwrap().firewall_rules[1]
                    .protocol_match
                    .as_mut()
                    .unwrap()
                    .port_range = Some(pb::PortMatch::default())
            },
        ),
        (
            "spec.firewall_rules[0].protocol_match.port_range.src_port",
            V6,
            |i| ports0(i).src_port = Some(-2),
        ),
        (
            "spec.firewall_rules[0].protocol_match.port_range.src_port",
            V6,
            |i| ports0(i).src_port = Some(65536),
        ),
        (
            "spec.firewall_rules[0].protocol_match.port_range.end_src_port",
            V6,
            |i| ports0(i).end_src_port = Some(5),
        ),
        (
            "spec.firewall_rules[0].protocol_match.port_range.end_src_port",
            V6,
            |i| {
                let p = ports0(i);
                p.src_port = Some(-1);
                p.end_src_port = Some(5);
            },
        ),
        (
            "spec.firewall_rules[0].protocol_match.port_range.end_src_port",
            V6,
            |i| {
                let p = ports0(i);
                p.src_port = Some(80);
                p.end_src_port = Some(-1);
            },
        ),
        (
            "spec.firewall_rules[0].protocol_match.port_range.end_src_port",
            V6,
            |i| {
                let p = ports0(i);
                p.src_port = Some(80);
                p.end_src_port = Some(65536);
            },
        ),
        (
            "spec.firewall_rules[0].protocol_match.port_range.dst_port",
            V6,
            |i| ports0(i).dst_port = Some(70000),
        ),
        (
            "spec.firewall_rules[0].protocol_match.port_range.end_dst_port",
            V6,
            |i| ports0(i).end_dst_port = Some(79),
        ),
        (
            "spec.firewall_rules[1].protocol_match.icmp.icmp_type",
            V6,
            |i| icmp1(i).icmp_type = 256,
        ),
        (
            "spec.firewall_rules[1].protocol_match.icmp.icmp_type",
            V6,
            |i| icmp1(i).icmp_type = -2,
        ),
        (
            "spec.firewall_rules[1].protocol_match.icmp.icmp_code",
            V6,
            |i| icmp1(i).icmp_code = 256,
        ),
    ];
    check_cases(&interface_pb(), validate_interface, cases);
}

#[test]
fn deny_says_why() {
    let mut r = tcp_rule("x");
    r.action = pb::Action::Deny as i32;
    let e = validate_firewall_rule("spec.firewall_rules[0]", &r, &V6).unwrap_err();
    assert_eq!(
        e.to_string(),
        "spec.firewall_rules[0].action: DENY is not supported: dpservice has ACCEPT rules only"
    );
}

#[test]
fn diff_by_id_recreates_changed_bodies() {
    let a = rule(&tcp_rule("a"));
    let b = rule(&icmp_rule("b"));
    let mut changed = a;
    changed.priority = 1;
    let desired = BTreeMap::from([
        ("same".to_string(), a),
        ("changed".into(), changed),
        ("new".into(), b),
    ]);
    let actual = BTreeMap::from([
        ("same".to_string(), a),
        ("changed".into(), a),
        ("old".into(), b),
    ]);
    let d = firewall_diff(&desired, &actual);
    assert_eq!(
        d.delete.iter().map(String::as_str).collect::<Vec<_>>(),
        vec!["changed", "old"]
    );
    assert_eq!(
        d.create.keys().map(String::as_str).collect::<Vec<_>>(),
        vec!["changed", "new"]
    );
    assert_eq!(d.create.get("changed"), Some(&changed));
    assert!(firewall_diff(&desired, &desired).is_empty());
}

proptest! {
    #[test]
    fn applying_the_firewall_diff_reaches_desired(
        desired in arb_rules(),
        actual in arb_rules(),
    ) {
        let d = firewall_diff(&desired, &actual);
        let mut state = actual.clone();
        for id in &d.delete {
            prop_assert!(state.remove(id).is_some());
        }
        for (id, r) in &d.create {
            prop_assert!(state.insert(id.clone(), *r).is_none());
        }
        prop_assert_eq!(&state, &desired);
        // Rules that are already right are never touched.
        for (id, r) in &desired {
            if actual.get(id) == Some(r) {
                prop_assert!(!d.delete.contains(id) && !d.create.contains_key(id));
            }
        }
    }
}
