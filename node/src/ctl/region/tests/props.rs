//! Conversion both ways: proto -> printed manifest (YAML and JSON text) -> parsed -> proto is
//! the identity for any object with canonical text fields (a property test), and so is
//! manifest -> proto -> manifest for the canonical documents of every kind. Parsing never
//! panics, whatever the input.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ferrinet_proto::api::v1 as pb;
use ferrinet_proto::node::v1 as node_pb;
use ipnet::IpNet;
use pb::object::Object as O;
use proptest::collection::{hash_map, vec};
use proptest::option;
use proptest::prelude::*;

use super::manifest::ALL_FIELDS;
use super::{entries, parse_in};
use crate::ctl::region::convert::spec_from_proto;
use crate::ctl::region::manifest::NamespaceDefault;
use crate::ctl::region::printed::from_proto;

fn label() -> impl Strategy<Value = String> {
    "[a-z]([a-z0-9-]{0,6}[a-z0-9])?"
}

fn free_text() -> impl Strategy<Value = String> {
    // Label values and keys, node names: anything YAML must quote correctly.
    "[a-zA-Z0-9 .:/#'\"-]{0,12}"
}

fn ip() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u32>().prop_map(|n| IpAddr::V4(Ipv4Addr::from(n)).to_string()),
        any::<u128>().prop_map(|n| IpAddr::V6(Ipv6Addr::from(n)).to_string()),
    ]
}

fn cidr() -> impl Strategy<Value = String> {
    prop_oneof![
        (any::<u32>(), 0u8..=32).prop_map(|(n, l)| IpNet::new(Ipv4Addr::from(n).into(), l)
            .map_or_else(|_| "10.0.0.0/8".to_owned(), |p| p.to_string())),
        (any::<u128>(), 0u8..=128).prop_map(|(n, l)| IpNet::new(Ipv6Addr::from(n).into(), l)
            .map_or_else(|_| "fd00::/8".to_owned(), |p| p.to_string())),
    ]
}

fn opt_text(s: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    option::of(s).prop_map(Option::unwrap_or_default)
}

fn family() -> impl Strategy<Value = String> {
    prop_oneof![Just("IPv4".to_owned()), Just("IPv6".to_owned())]
}

fn object_ref() -> impl Strategy<Value = pb::ObjectRef> {
    (label(), opt_text(label())).prop_map(|(name, namespace)| pb::ObjectRef { name, namespace })
}

fn labels() -> impl Strategy<Value = HashMap<String, String>> {
    hash_map("[a-z][a-z0-9./-]{0,8}", free_text(), 0..3)
}

fn requirement() -> impl Strategy<Value = pb::LabelRequirement> {
    (label(), 0usize..4, vec(free_text(), 1..3)).prop_map(|(key, op, values)| {
        let operator = ["In", "NotIn", "Exists", "DoesNotExist"][op].to_owned();
        let values = if op < 2 { values } else { vec![] };
        pb::LabelRequirement {
            key,
            operator,
            values,
        }
    })
}

fn selector() -> impl Strategy<Value = pb::LabelSelector> {
    (labels(), vec(requirement(), 0..3)).prop_map(|(match_labels, match_expressions)| {
        pb::LabelSelector {
            match_labels,
            match_expressions,
        }
    })
}

fn port() -> impl Strategy<Value = (String, u32, u32)> {
    (
        prop_oneof![Just(""), Just("TCP"), Just("UDP")],
        1u32..=65535,
        any::<bool>(),
    )
        .prop_flat_map(|(p, port, range)| {
            let end = if range {
                (port..=65535).boxed()
            } else {
                Just(0).boxed()
            };
            (Just(p.to_owned()), Just(port), end)
        })
}

fn peer() -> impl Strategy<Value = pb::PolicyPeer> {
    prop_oneof![
        (cidr(), vec(cidr(), 0..2)).prop_map(|(cidr, except)| pb::PolicyPeer {
            ip_block: Some(pb::IpBlock { cidr, except }),
            object_selector: None,
        }),
        (
            prop_oneof![Just("NetworkInterface"), Just("LoadBalancer")],
            labels(),
            vec(requirement(), 0..2)
        )
            .prop_map(|(kind, match_labels, match_expressions)| pb::PolicyPeer {
                ip_block: None,
                object_selector: Some(pb::ObjectSelector {
                    kind: kind.to_owned(),
                    match_labels,
                    match_expressions,
                }),
            }),
    ]
}

fn rule() -> impl Strategy<Value = pb::PolicyRule> {
    (vec(peer(), 0..3), vec(port(), 0..2)).prop_map(|(peers, ports)| pb::PolicyRule {
        peers,
        ports: ports
            .into_iter()
            .map(|(protocol, port, end_port)| pb::PolicyPort {
                protocol,
                port,
                end_port,
            })
            .collect(),
    })
}

fn ip_values() -> impl Strategy<Value = Vec<pb::IpValue>> {
    vec(ip().prop_map(|value| pb::IpValue { value }), 0..3)
}

fn network() -> impl Strategy<Value = O> {
    let subnet = (
        cidr(),
        vec((ip(), ip()), 0..2),
        vec(ip(), 0..2),
        opt_text(ip()),
        vec((cidr(), ip()), 0..2),
    )
        .prop_map(
            |(cidr, ranges, exclude_addresses, gateway, routes)| pb::Subnet {
                cidr,
                allocation_ranges: ranges
                    .into_iter()
                    .map(|(start, end)| pb::AddressRange { start, end })
                    .collect(),
                exclude_addresses,
                gateway,
                routes: routes
                    .into_iter()
                    .map(|(destination, nexthop)| pb::HostRoute {
                        destination,
                        nexthop,
                    })
                    .collect(),
            },
        );
    let peering = (label(), object_ref(), vec(cidr(), 0..2)).prop_map(|(name, r, prefixes)| {
        pb::NetworkPeering {
            name,
            network_ref: Some(r),
            prefixes,
        }
    });
    (
        vec(subnet, 0..2),
        vec(peering, 0..2),
        opt_text(cidr()),
        any::<u32>(),
    )
        .prop_map(|(subnets, peerings, prefix, vni)| {
            O::Network(pb::Network {
                metadata: None,
                spec: Some(pb::NetworkSpec {
                    subnets,
                    peerings,
                    prefix,
                    vni,
                }),
                status: None,
            })
        })
}

fn interface() -> impl Strategy<Value = O> {
    let vip = option::of(prop_oneof![
        object_ref().prop_map(|r| pb::VirtualIpSource {
            virtual_ip_ref: Some(r),
            ephemeral_ip_family: String::new(),
        }),
        family().prop_map(|f| pb::VirtualIpSource {
            virtual_ip_ref: None,
            ephemeral_ip_family: f,
        }),
    ]);
    let metering = option::of((0u64..10_000, 0u64..10_000))
        .prop_map(|m| m.filter(|(t, p)| *t != 0 || *p != 0));
    (
        option::of(object_ref()),
        opt_text(free_text()),
        vec(family(), 0..2),
        ip_values(),
        vec(cidr(), 0..2),
        vip,
        opt_text(label()),
        metering,
    )
        .prop_map(
            |(network_ref, node_name, ip_families, ips, prefixes, virtual_ip, hostname, m)| {
                O::NetworkInterface(pb::NetworkInterface {
                    metadata: None,
                    spec: Some(pb::NetworkInterfaceSpec {
                        network_ref,
                        node_name,
                        ip_families,
                        ips,
                        prefixes,
                        virtual_ip,
                        hostname,
                        metering_rate: m.map(|(total_rate, public_rate)| node_pb::MeteringRate {
                            total_rate,
                            public_rate,
                        }),
                    }),
                    status: None,
                })
            },
        )
}

fn others() -> impl Strategy<Value = O> {
    prop_oneof![
        (opt_text(Just("Public".to_owned())), opt_text(family())).prop_map(|(t, f)| {
            O::VirtualIp(pb::VirtualIp {
                metadata: None,
                spec: Some(pb::VirtualIpSpec {
                    r#type: t,
                    ip_family: f,
                }),
                status: None,
            })
        }),
        (
            option::of((opt_text(Just("NetworkInterface".to_owned())), selector())),
            opt_text(family())
        )
            .prop_map(|(sel, ip_family)| {
                let (kind, selector) = sel.map_or((String::new(), None), |(k, s)| (k, Some(s)));
                O::PublicPrefix(pb::PublicPrefix {
                    metadata: None,
                    spec: Some(pb::PublicPrefixSpec {
                        kind,
                        selector,
                        ip_family,
                    }),
                    status: None,
                })
            }),
        (
            opt_text(Just("Public".to_owned())),
            opt_text(family()),
            any::<u32>(),
            option::of(object_ref())
        )
            .prop_map(|(t, f, ports, network_ref)| {
                O::NatGateway(pb::NatGateway {
                    metadata: None,
                    spec: Some(pb::NatGatewaySpec {
                        r#type: t,
                        ip_family: f,
                        ports_per_network_interface: ports,
                        network_ref,
                    }),
                    status: None,
                })
            }),
        (
            prop_oneof![Just(""), Just("Public"), Just("Internal")],
            vec(family(), 0..2),
            ip_values(),
            option::of(object_ref()),
            option::of(selector()),
            vec(port(), 0..3),
            any::<u32>()
        )
            .prop_map(|(t, ip_families, ips, network_ref, sel, ports, replicas)| {
                O::LoadBalancer(pb::LoadBalancer {
                    metadata: None,
                    spec: Some(pb::LoadBalancerSpec {
                        r#type: t.to_owned(),
                        ip_families,
                        ips,
                        network_ref,
                        network_interface_selector: sel,
                        ports: ports
                            .into_iter()
                            .map(|(protocol, port, end_port)| pb::LoadBalancerPort {
                                protocol,
                                port,
                                end_port,
                            })
                            .collect(),
                        replicas,
                    }),
                    status: None,
                })
            }),
        (
            option::of(object_ref()),
            option::of(selector()),
            vec(
                prop_oneof![Just("Ingress".to_owned()), Just("Egress".to_owned())],
                0..2
            ),
            vec(rule(), 0..2),
            vec(rule(), 0..2)
        )
            .prop_map(|(network_ref, sel, policy_types, ingress, egress)| {
                O::NetworkPolicy(pb::NetworkPolicy {
                    metadata: None,
                    spec: Some(pb::NetworkPolicySpec {
                        network_ref,
                        network_interface_selector: sel,
                        policy_types,
                        ingress,
                        egress,
                    }),
                    status: None,
                })
            }),
        (opt_text(cidr()), any::<u32>()).prop_map(|(underlay_prefix, vf_capacity)| {
            O::Node(pb::Node {
                metadata: None,
                spec: Some(pb::NodeSpec {
                    underlay_prefix,
                    vf_capacity,
                }),
                status: None,
            })
        }),
    ]
}

fn object() -> impl Strategy<Value = pb::Object> {
    (
        prop_oneof![network(), interface(), others()],
        label(),
        label(),
        labels(),
    )
        .prop_map(|(mut o, ns, name, labels)| {
            let node = matches!(o, O::Node(_));
            let meta = Some(pb::ObjectMeta {
                namespace: if node { String::new() } else { ns },
                name,
                labels,
                ..Default::default()
            });
            match &mut o {
                O::Network(x) => x.metadata = meta,
                O::NetworkInterface(x) => x.metadata = meta,
                O::VirtualIp(x) => x.metadata = meta,
                O::PublicPrefix(x) => x.metadata = meta,
                O::NatGateway(x) => x.metadata = meta,
                O::LoadBalancer(x) => x.metadata = meta,
                O::NetworkPolicy(x) => x.metadata = meta,
                O::Node(x) => x.metadata = meta,
            }
            pb::Object { object: Some(o) }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// What `get -o yaml|json` prints parses back into the object it printed.
    #[test]
    fn printed_documents_parse_back_to_the_object(obj in object()) {
        let doc = from_proto(&obj).unwrap();
        let yaml = yaml_serde::to_string(&doc).unwrap();
        let back = parse_in(&yaml, &NamespaceDefault::default());
        prop_assert!(back.is_ok(), "{yaml}\n{back:?}");
        let back = back.unwrap();
        prop_assert_eq!(&back[0].object, &obj, "{}", yaml);
        let json = serde_json::to_string(&doc).unwrap();
        let back = parse_in(&json, &NamespaceDefault::default()).unwrap();
        prop_assert_eq!(&back[0].object, &obj);
    }

    /// Parsing never panics on arbitrary text, nor on arbitrary specs of a valid document.
    #[test]
    fn parsing_never_panics(text in ".{0,200}", kind in 0usize..8, spec in "[\\[\\]{}:, a-zA-Z0-9./-]{0,80}") {
        let _ = parse_in(&text, &NamespaceDefault::default());
        let kinds = ["Network", "NetworkInterface", "VirtualIP", "PublicPrefix", "NATGateway",
                     "LoadBalancer", "NetworkPolicy", "Node"];
        let doc = format!("apiVersion: networking.ferrinet.dev/v1alpha1\nkind: {}\nmetadata: {{name: a}}\nspec: {spec}\n", kinds[kind]);
        let _ = parse_in(&doc, &NamespaceDefault::default());
    }
}

/// The canonical documents of every kind: manifest -> proto -> manifest is the identity.
#[test]
fn manifest_to_proto_to_manifest_is_the_identity() {
    for e in entries(ALL_FIELDS) {
        assert_eq!(
            spec_from_proto(&e.object),
            Some(e.doc.spec.clone()),
            "{}",
            e.label()
        );
        let printed = yaml_serde::to_string(&from_proto(&e.object).unwrap()).unwrap();
        let again = entries(&printed);
        assert_eq!(again[0].doc.spec, e.doc.spec, "{printed}");
        assert_eq!(again[0].doc.metadata.labels, e.doc.metadata.labels);
        assert_eq!(again[0].object, e.object);
    }
}
