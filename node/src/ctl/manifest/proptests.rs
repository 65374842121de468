//! Property: any admin API object (with the node's fields cleared) printed as YAML or JSON and
//! read back as a manifest is the same object, so `get -o yaml | apply -f -` never changes
//! anything.

#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ferrinet_proto::node::v1 as pb;
use ipnet::IpNet;
use pb::object::Object as O;
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;

use super::{Source, parse};
use crate::ctl::output;

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<Ipv4Addr>().prop_map(IpAddr::V4),
        any::<Ipv6Addr>().prop_map(IpAddr::V6),
    ]
}

fn v4() -> impl Strategy<Value = String> {
    any::<Ipv4Addr>().prop_map(|a| a.to_string())
}

fn prefix_of(v6: bool) -> BoxedStrategy<String> {
    if v6 {
        (any::<Ipv6Addr>(), 0u8..=128)
            .prop_map(|(a, l)| IpNet::new(IpAddr::V6(a), l).unwrap().to_string())
            .boxed()
    } else {
        (any::<Ipv4Addr>(), 0u8..=32)
            .prop_map(|(a, l)| IpNet::new(IpAddr::V4(a), l).unwrap().to_string())
            .boxed()
    }
}

fn prefix() -> impl Strategy<Value = String> {
    any::<bool>().prop_flat_map(prefix_of)
}

/// Text that YAML could mistake for another type unless it is quoted.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9 :#.-]{0,8}",
        Just("null".to_owned()),
        Just("yes".to_owned()),
        Just("0x1F".to_owned()),
        Just("1e3".to_owned()),
        Just("~".to_owned()),
        Just("- x".to_owned()),
    ]
}

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_-]{0,12}"
}

fn metadata() -> impl Strategy<Value = Option<pb::Metadata>> {
    (
        name(),
        btree_map("[a-z][a-z./-]{0,6}", text(), 0..3),
        any::<u64>(),
    )
        .prop_map(|(name, labels, rv)| {
            Some(pb::Metadata {
                name,
                labels: labels.into_iter().collect(),
                resource_version: rv,
                ..Default::default()
            })
        })
}

fn firewall_rule() -> impl Strategy<Value = pb::FirewallRule> {
    let ports = (
        option::of(-1i32..70000),
        option::of(-1i32..70000),
        option::of(-1i32..70000),
        option::of(-1i32..70000),
    )
        .prop_map(|(a, b, c, d)| pb::PortMatch {
            src_port: a,
            end_src_port: b,
            dst_port: c,
            end_dst_port: d,
        });
    let protocol_match = (
        1i32..=3,
        option::of((-1i32..256, -1i32..256)),
        option::of(ports),
    )
        .prop_map(|(protocol, icmp, port_range)| pb::ProtocolMatch {
            protocol,
            icmp: icmp.map(|(icmp_type, icmp_code)| pb::IcmpMatch {
                icmp_type,
                icmp_code,
            }),
            port_range,
        });
    (
        any::<bool>().prop_flat_map(|v6| (prefix_of(v6), prefix_of(v6))),
        name(),
        1i32..=2,
        1i32..=2,
        any::<u32>(),
        option::of(protocol_match),
    )
        .prop_map(
            |((src, dst), id, direction, action, priority, protocol_match)| pb::FirewallRule {
                id,
                direction,
                action,
                priority,
                source_prefix: src,
                destination_prefix: dst,
                protocol_match,
            },
        )
}

fn interface_spec() -> impl Strategy<Value = pb::NetworkInterfaceSpec> {
    let target = prop_oneof![ip().prop_map(|a| a.to_string()), prefix()];
    (
        (name(), vec(ip(), 0..3), option::of(v4())),
        option::of((v4(), any::<u32>(), any::<u32>())),
        (
            vec(prefix(), 0..3),
            vec(target, 0..3),
            vec(firewall_rule(), 0..3),
        ),
        option::of((any::<u64>(), any::<u64>())),
        option::of("[a-z][a-z0-9.-]{0,10}"),
    )
        .prop_map(
            |((network, ips, vip), nat, (prefixes, targets, rules), rate, hostname)| {
                pb::NetworkInterfaceSpec {
                    network,
                    ips: ips.iter().map(IpAddr::to_string).collect(),
                    virtual_ip: vip.unwrap_or_default(),
                    nat: nat.map(|(ip, port, end_port)| pb::NatSpec { ip, port, end_port }),
                    prefixes,
                    load_balancer_targets: targets,
                    firewall_rules: rules,
                    metering_rate: rate.map(|(total_rate, public_rate)| pb::MeteringRate {
                        total_rate,
                        public_rate,
                    }),
                    hostname: hostname.unwrap_or_default(),
                }
            },
        )
}

fn object() -> impl Strategy<Value = pb::Object> {
    let network = (
        metadata(),
        any::<u32>(),
        vec(any::<u32>(), 0..3),
        vec((any::<u32>(), vec(prefix(), 0..3)), 0..3),
    )
        .prop_map(|(metadata, id, peered_ids, pp)| {
            O::Network(pb::Network {
                metadata,
                spec: Some(pb::NetworkSpec {
                    id,
                    peered_ids,
                    peered_prefixes: pp
                        .into_iter()
                        .map(|(id, prefixes)| pb::PeeredPrefix { id, prefixes })
                        .collect(),
                }),
                status: None,
            })
        });
    let interface = (metadata(), interface_spec()).prop_map(|(metadata, spec)| {
        O::NetworkInterface(pb::NetworkInterface {
            metadata,
            spec: Some(spec),
            status: None,
        })
    });
    let load_balancer = (
        metadata(),
        name(),
        1i32..=2,
        ip(),
        vec((1i32..=3, any::<u32>()), 0..4),
    )
        .prop_map(|(metadata, network, r#type, ip, ports)| {
            O::LoadBalancer(pb::LoadBalancer {
                metadata,
                spec: Some(pb::LoadBalancerSpec {
                    network,
                    r#type,
                    ip: ip.to_string(),
                    ports: ports
                        .into_iter()
                        .map(|(protocol, port)| pb::LoadBalancerPort { protocol, port })
                        .collect(),
                }),
                status: None,
            })
        });
    prop_oneof![network, interface, load_balancer].prop_map(|o| pb::Object { object: Some(o) })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn printed_objects_read_back_unchanged(objects in vec(object(), 1..4)) {
        let docs = output::docs(&objects);
        for text in [output::yaml(&docs).unwrap(), output::json(&docs).unwrap()] {
            let back = parse(&Source { name: "p".into(), text: text.clone() });
            let back: Vec<pb::Object> = match back {
                Ok(entries) => entries.into_iter().map(|e| e.object).collect(),
                Err(e) => return Err(TestCaseError::fail(format!("{e}\n{text}"))),
            };
            prop_assert_eq!(&back, &objects, "{}", text);
        }
    }
}
