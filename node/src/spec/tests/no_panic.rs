//! Validation and the reply readers return an error, never panic, on any input.

use ferrinet_proto::dpservice::v1 as dp;
use ferrinet_proto::node::v1 as pb;
use proptest::collection::vec;
use proptest::prelude::*;

use super::{V4, V6, interface_pb, lb_pb, network_pb};
use crate::spec::dpservice::{
    firewall_rule_from_dpservice, parse_firewall_rules, parse_interface, parse_nat, parse_prefixes,
};
use crate::spec::{
    ObjectSpec, validate_interface, validate_load_balancer, validate_network, validate_object,
};

/// Mostly text that is nearly valid, sometimes anything.
fn text() -> BoxedStrategy<String> {
    prop_oneof![
        Just(String::new()),
        Just("10.0.0.1".to_string()),
        Just("fd00::1".to_string()),
        Just("0.0.0.0".to_string()),
        Just("10.0.0.0/8".to_string()),
        Just("10.0.0.1/8".to_string()),
        Just("fd00::/300".to_string()),
        Just("vm-1".to_string()),
        "[a-z0-9./:_-]{0,70}",
        any::<String>(),
    ]
    .boxed()
}

fn int() -> BoxedStrategy<i32> {
    prop_oneof![-3i32..5, 65530i32..65540, any::<i32>()].boxed()
}

fn uint() -> BoxedStrategy<u32> {
    prop_oneof![0u32..5, 65530u32..65540, any::<u32>()].boxed()
}

fn rule() -> BoxedStrategy<pb::FirewallRule> {
    let ports = (
        proptest::option::of(int()),
        proptest::option::of(int()),
        proptest::option::of(int()),
        proptest::option::of(int()),
    )
        .prop_map(|(a, b, c, d)| pb::PortMatch {
            src_port: a,
            end_src_port: b,
            dst_port: c,
            end_dst_port: d,
        });
    let pm = (
        int(),
        proptest::option::of((int(), int())),
        proptest::option::of(ports),
    )
        .prop_map(|(protocol, icmp, port_range)| pb::ProtocolMatch {
            protocol,
            icmp: icmp.map(|(t, c)| pb::IcmpMatch {
                icmp_type: t,
                icmp_code: c,
            }),
            port_range,
        });
    (
        text(),
        int(),
        int(),
        uint(),
        text(),
        text(),
        proptest::option::of(pm),
    )
        .prop_map(
            |(
                id,
                direction,
                action,
                priority,
                source_prefix,
                destination_prefix,
                protocol_match,
            )| {
                pb::FirewallRule {
                    id,
                    direction,
                    action,
                    priority,
                    source_prefix,
                    destination_prefix,
                    protocol_match,
                }
            },
        )
        .boxed()
}

fn metadata() -> BoxedStrategy<Option<pb::Metadata>> {
    proptest::option::of(
        (text(), proptest::collection::hash_map(text(), text(), 0..3)).prop_map(
            |(name, labels)| pb::Metadata {
                name,
                labels,
                ..Default::default()
            },
        ),
    )
    .boxed()
}

fn interface() -> BoxedStrategy<pb::NetworkInterface> {
    let nat = proptest::option::of(
        (text(), uint(), uint()).prop_map(|(ip, port, end_port)| pb::NatSpec {
            ip,
            port,
            end_port,
        }),
    );
    let spec = (
        text(),
        vec(text(), 0..4),
        text(),
        nat,
        vec(text(), 0..4),
        vec(text(), 0..4),
        vec(rule(), 0..4),
        proptest::option::of((any::<u64>(), any::<u64>())),
        text(),
    )
        .prop_map(
            |(network, ips, virtual_ip, nat, prefixes, lbt, fw, m, hostname)| {
                pb::NetworkInterfaceSpec {
                    network,
                    ips,
                    virtual_ip,
                    nat,
                    prefixes,
                    load_balancer_targets: lbt,
                    firewall_rules: fw,
                    metering_rate: m.map(|(t, p)| pb::MeteringRate {
                        total_rate: t,
                        public_rate: p,
                    }),
                    hostname,
                }
            },
        );
    (metadata(), proptest::option::of(spec))
        .prop_map(|(metadata, spec)| pb::NetworkInterface {
            metadata,
            spec,
            status: None,
        })
        .boxed()
}

fn network() -> BoxedStrategy<pb::Network> {
    let pp =
        (uint(), vec(text(), 0..3)).prop_map(|(id, prefixes)| pb::PeeredPrefix { id, prefixes });
    let spec =
        (uint(), vec(uint(), 0..4), vec(pp, 0..3)).prop_map(|(id, peered_ids, peered_prefixes)| {
            pb::NetworkSpec {
                id,
                peered_ids,
                peered_prefixes,
            }
        });
    (metadata(), proptest::option::of(spec))
        .prop_map(|(metadata, spec)| pb::Network {
            metadata,
            spec,
            status: None,
        })
        .boxed()
}

fn load_balancer() -> BoxedStrategy<pb::LoadBalancer> {
    let port = (int(), uint()).prop_map(|(protocol, port)| pb::LoadBalancerPort { protocol, port });
    let spec = (text(), int(), text(), vec(port, 0..17)).prop_map(|(network, t, ip, ports)| {
        pb::LoadBalancerSpec {
            network,
            r#type: t,
            ip,
            ports,
        }
    });
    (metadata(), proptest::option::of(spec))
        .prop_map(|(metadata, spec)| pb::LoadBalancer {
            metadata,
            spec,
            status: None,
        })
        .boxed()
}

fn bytes() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        Just(b"10.0.0.1".to_vec()),
        Just(b"fc00::1".to_vec()),
        vec(any::<u8>(), 0..20),
    ]
    .boxed()
}

fn dp_prefix() -> BoxedStrategy<dp::Prefix> {
    (int(), bytes(), uint(), bytes())
        .prop_map(|(ipver, address, length, underlay_route)| dp::Prefix {
            ip: Some(dp::IpAddress { ipver, address }),
            length,
            underlay_route,
        })
        .boxed()
}

fn dp_rule() -> BoxedStrategy<dp::FirewallRule> {
    use dp::protocol_filter::Filter;
    let filter = prop_oneof![
        Just(None),
        (int(), int()).prop_map(|(t, c)| Some(Filter::Icmp(dp::IcmpFilter {
            icmp_type: t,
            icmp_code: c
        }))),
        (int(), int(), int(), int()).prop_map(|(a, b, c, d)| Some(Filter::Tcp(dp::TcpFilter {
            src_port_lower: a,
            src_port_upper: b,
            dst_port_lower: c,
            dst_port_upper: d,
        }))),
    ];
    (
        bytes(),
        int(),
        int(),
        uint(),
        proptest::option::of(dp_prefix()),
        proptest::option::of(dp_prefix()),
        filter,
    )
        .prop_map(
            |(id, direction, action, priority, s, d, f)| dp::FirewallRule {
                id,
                direction,
                action,
                priority,
                source_prefix: s,
                destination_prefix: d,
                protocol_filter: f.map(|f| dp::ProtocolFilter { filter: Some(f) }),
            },
        )
        .boxed()
}

proptest! {
    #[test]
    fn validation_never_panics(
        i in interface(),
        n in network(),
        l in load_balancer(),
        v6 in any::<bool>(),
    ) {
        let o = if v6 { V6 } else { V4 };
        if let Err(e) = validate_interface(&i, &o) {
            prop_assert!(!e.field.is_empty() && !e.problem.is_empty());
        }
        if let Err(e) = validate_network(&n, &o) {
            prop_assert!(!e.field.is_empty() && !e.problem.is_empty());
        }
        if let Err(e) = validate_load_balancer(&l, &o) {
            prop_assert!(!e.field.is_empty() && !e.problem.is_empty());
        }
        let obj = pb::Object { object: Some(pb::object::Object::NetworkInterface(i)) };
        let _ = validate_object(&obj, &o);
    }

    #[test]
    fn readers_never_panic(
        rules in vec(dp_rule(), 0..4),
        prefixes in vec(dp_prefix(), 0..4),
        a in bytes(), b in bytes(), c in bytes(),
        min in uint(), max in uint(),
    ) {
        for r in &rules {
            let _ = firewall_rule_from_dpservice(r);
        }
        let _ = parse_firewall_rules(&rules);
        let _ = parse_prefixes(&prefixes);
        let _ = parse_interface(&dp::Interface {
            id: a.clone(),
            vni: min,
            primary_ipv4: a,
            primary_ipv6: b,
            underlay_route: c.clone(),
            pci_name: String::new(),
            metering_params: None,
            hostname: String::new(),
        });
        let _ = parse_nat(&dp::GetNatResponse {
            status: None,
            nat_ip: None,
            min_port: min,
            max_port: max,
            underlay_route: c,
        });
    }
}

#[test]
fn validate_object_dispatches_by_kind() {
    use pb::object::Object;
    let e = validate_object(&pb::Object { object: None }, &V6).unwrap_err();
    assert_eq!(e.to_string(), "object: missing");
    let check = |o: Object, name: &str, kind: fn(&ObjectSpec) -> bool| {
        let (n, spec) = validate_object(&pb::Object { object: Some(o) }, &V6).unwrap();
        assert_eq!(n, name);
        assert!(kind(&spec), "{spec:?}");
    };
    check(Object::Network(network_pb()), "net-1", |s| {
        matches!(s, ObjectSpec::Network(_))
    });
    check(Object::NetworkInterface(interface_pb()), "vm-1", |s| {
        matches!(s, ObjectSpec::Interface(_))
    });
    check(Object::LoadBalancer(lb_pb()), "lb-1", |s| {
        matches!(s, ObjectSpec::LoadBalancer(_))
    });
    let mut bad = lb_pb();
    bad.metadata = None;
    let o = pb::Object {
        object: Some(Object::LoadBalancer(bad)),
    };
    assert_eq!(validate_object(&o, &V6).unwrap_err().field, "metadata.name");
}
