//! Firewall rules to dpservice and back: exact wire form, unreadable replies, round trips.

use std::collections::BTreeMap;

use ferrinet_proto::dpservice::v1 as dp;
use ferrinet_proto::node::v1 as pb;
use proptest::prelude::*;

use super::strategies::arb_rule;
use super::{V6, any_rule, icmp_rule, tcp_rule};
use crate::spec::dpservice::{
    firewall_rule_from_dpservice, firewall_rule_to_dpservice, parse_firewall_rules,
};
use crate::spec::{FirewallRule, ProtocolFilter, validate_firewall_rule};

fn rule(r: &pb::FirewallRule) -> FirewallRule {
    validate_firewall_rule("r", r, &V6).unwrap().1
}

#[test]
fn translation_to_dpservice_is_exact() {
    use dp::protocol_filter::Filter;
    let ip = |v: dp::IpVersion, a: &str| dp::IpAddress {
        ipver: v as i32,
        address: a.as_bytes().to_vec(),
    };
    let pfx = |v, a, length| dp::Prefix {
        ip: Some(ip(v, a)),
        length,
        underlay_route: vec![],
    };
    assert_eq!(
        firewall_rule_to_dpservice("a", &rule(&tcp_rule("a"))),
        dp::FirewallRule {
            id: b"a".to_vec(),
            direction: dp::TrafficDirection::Ingress as i32,
            action: dp::FirewallAction::Accept as i32,
            priority: 1000,
            source_prefix: Some(pfx(dp::IpVersion::Ipv4, "10.0.0.0", 8)),
            destination_prefix: Some(pfx(dp::IpVersion::Ipv4, "0.0.0.0", 0)),
            protocol_filter: Some(dp::ProtocolFilter {
                filter: Some(Filter::Tcp(dp::TcpFilter {
                    src_port_lower: -1,
                    src_port_upper: -1,
                    dst_port_lower: 80,
                    dst_port_upper: 90,
                }))
            }),
        }
    );
    // An IPv6 rule's "any" is ::/0, not metalnet's 0.0.0.0/0.
    let icmp = firewall_rule_to_dpservice("b", &rule(&icmp_rule("b")));
    assert_eq!(icmp.direction, dp::TrafficDirection::Egress as i32);
    assert_eq!(icmp.source_prefix, Some(pfx(dp::IpVersion::Ipv6, "::", 0)));
    assert_eq!(
        icmp.protocol_filter.and_then(|f| f.filter),
        Some(Filter::Icmp(dp::IcmpFilter {
            icmp_type: 8,
            icmp_code: -1
        }))
    );
    let any = firewall_rule_to_dpservice("c", &rule(&any_rule("c")));
    assert_eq!(any.protocol_filter, None);
}

#[test]
fn unreadable_dpservice_rules_name_the_field() {
    use dp::protocol_filter::Filter;
    let good = firewall_rule_to_dpservice("a", &rule(&tcp_rule("a")));
    let tcp = |f: fn(&mut dp::TcpFilter)| {
        let mut r = good.clone();
        if let Some(Filter::Tcp(t)) = r.protocol_filter.as_mut().and_then(|p| p.filter.as_mut()) {
            f(t);
        }
        r
    };
    let with = |f: fn(&mut dp::FirewallRule)| {
        let mut r = good.clone();
        f(&mut r);
        r
    };
    let cases = [
        ("id", with(|r| r.id.clear())),
        ("id", with(|r| r.id = vec![0xff])),
        ("direction", with(|r| r.direction = 5)),
        (
            "action",
            with(|r| r.action = dp::FirewallAction::Drop as i32),
        ),
        ("priority", with(|r| r.priority = 70000)),
        ("source_prefix", with(|r| r.source_prefix = None)),
        (
            "source_prefix.ip",
            with(|r| r.source_prefix.as_mut().unwrap().ip = None),
        ),
        (
            "source_prefix.length",
            with(|r| r.source_prefix.as_mut().unwrap().length = 33),
        ),
        (
            "destination_prefix.ip.address",
            with(|r| {
                r.destination_prefix
                    .as_mut()
                    .unwrap()
                    .ip
                    .as_mut()
                    .unwrap()
                    .address = b"::".to_vec()
            }),
        ),
        (
            "destination_prefix.ip.ipver",
            with(|r| {
                r.destination_prefix
                    .as_mut()
                    .unwrap()
                    .ip
                    .as_mut()
                    .unwrap()
                    .ipver = 4
            }),
        ),
        (
            "protocol_filter.tcp.src_port_lower",
            tcp(|t| t.src_port_upper = 80),
        ),
        (
            "protocol_filter.tcp.dst_port_upper",
            tcp(|t| t.dst_port_upper = 79),
        ),
        (
            "protocol_filter.tcp.dst_port_upper",
            tcp(|t| t.dst_port_upper = 65536),
        ),
        (
            "protocol_filter.tcp.dst_port_lower",
            tcp(|t| t.dst_port_lower = -5),
        ),
        (
            "protocol_filter.icmp.icmp_type",
            with(|r| {
                r.protocol_filter = Some(dp::ProtocolFilter {
                    filter: Some(Filter::Icmp(dp::IcmpFilter {
                        icmp_type: 300,
                        icmp_code: 0,
                    })),
                })
            }),
        ),
        (
            "protocol_filter.icmp.icmp_code",
            with(|r| {
                r.protocol_filter = Some(dp::ProtocolFilter {
                    filter: Some(Filter::Icmp(dp::IcmpFilter {
                        icmp_type: 0,
                        icmp_code: -2,
                    })),
                })
            }),
        ),
    ];
    for (field, r) in cases {
        let e = firewall_rule_from_dpservice(&r).unwrap_err();
        assert_eq!(e.field, field, "{e}");
    }
    // An empty ProtocolFilter message is "any protocol", like no message.
    let r = with(|r| r.protocol_filter = Some(dp::ProtocolFilter { filter: None }));
    assert_eq!(
        firewall_rule_from_dpservice(&r).unwrap().1.protocol,
        ProtocolFilter::Any
    );
}

#[test]
fn listed_rules_keep_going_past_unreadable_ones() {
    let a = rule(&tcp_rule("a"));
    let mut drop = firewall_rule_to_dpservice("b", &a);
    drop.action = dp::FirewallAction::Drop as i32;
    let listed = parse_firewall_rules(&[
        firewall_rule_to_dpservice("a", &a),
        drop,
        firewall_rule_to_dpservice("c", &a),
    ]);
    assert_eq!(listed.rules.keys().collect::<Vec<_>>(), vec!["a", "c"]);
    assert_eq!(
        listed.unreadable.get("b").map(|e| e.field.as_str()),
        Some("rules[1].action")
    );

    let desired = BTreeMap::from([("a".to_string(), a), ("b".to_string(), a)]);
    let d = listed.diff(&desired);
    assert_eq!(d.delete.iter().collect::<Vec<_>>(), vec!["b", "c"]);
    assert_eq!(d.create.keys().collect::<Vec<_>>(), vec!["b"]);
}

proptest! {
    #[test]
    fn dpservice_round_trip(id in "[A-Za-z0-9_-]{1,63}", r in arb_rule()) {
        let wire = firewall_rule_to_dpservice(&id, &r);
        prop_assert_eq!(firewall_rule_from_dpservice(&wire), Ok((id, r)));
    }

    #[test]
    fn admin_api_to_dpservice_and_back(
        protocol in 0i32..4,
        ports in proptest::array::uniform4(proptest::option::of(-1i32..=65535)),
        icmp in proptest::option::of((-1i32..=255, -1i32..=255)),
        v6 in any::<bool>(),
    ) {
        let mut r = tcp_rule("rt");
        r.source_prefix = if v6 { "fd00::/8".into() } else { "10.0.0.0/8".into() };
        r.protocol_match = (protocol != 0).then(|| pb::ProtocolMatch {
            protocol,
            icmp: (protocol == 3).then_some(()).and(icmp).map(|(t, c)| pb::IcmpMatch {
                icmp_type: t,
                icmp_code: c,
            }),
            port_range: (protocol != 3).then_some(pb::PortMatch {
                src_port: ports[0],
                end_src_port: ports[1],
                dst_port: ports[2],
                end_dst_port: ports[3],
            }),
        });
        // Whatever validates survives the trip to dpservice and back unchanged.
        if let Ok((id, body)) = validate_firewall_rule("r", &r, &V6) {
            let back = firewall_rule_from_dpservice(&firewall_rule_to_dpservice(&id, &body));
            prop_assert_eq!(back, Ok((id, body)));
        }
    }
}
