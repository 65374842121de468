//! Validation of VirtualIPs, PublicPrefixes, NATGateways, LoadBalancers, NetworkPolicies and
//! Nodes.

#![allow(clippy::unwrap_used)]

use ferrinet_proto::api::v1 as pb;
use pb::object::Object as O;

use super::tests::{accepted, local, message, metadata, refused};

fn vip(r#type: &str, family: &str) -> O {
    O::VirtualIp(pb::VirtualIp {
        metadata: metadata("tenant-a", "vip-1"),
        spec: Some(pb::VirtualIpSpec {
            r#type: r#type.into(),
            ip_family: family.into(),
        }),
        status: None,
    })
}

#[test]
fn virtual_ips() {
    accepted(vip("Public", "IPv6"));
    assert_eq!(
        refused(vip("Private", "")),
        vec!["spec.type", "spec.ipFamily"]
    );
}

fn public_prefix(kind: &str, family: &str, selector: Option<pb::LabelSelector>) -> O {
    O::PublicPrefix(pb::PublicPrefix {
        metadata: metadata("tenant-a", "pp"),
        spec: Some(pb::PublicPrefixSpec {
            kind: kind.into(),
            selector,
            ip_family: family.into(),
        }),
        status: None,
    })
}

#[test]
fn public_prefixes() {
    let O::PublicPrefix(p) = accepted(public_prefix("NetworkInterface", "", None)) else {
        panic!("kind changed");
    };
    assert_eq!(p.spec.unwrap().ip_family, "IPv4", "the default family");
    assert!(message(public_prefix("Machine", "IPv4", None), "spec.kind").contains("no machines"));
    let selector = pb::LabelSelector {
        match_labels: [("app".to_string(), "-bad".to_string())].into(),
        match_expressions: vec![pb::LabelRequirement {
            key: "tier".into(),
            operator: "Maybe".into(),
            values: vec![],
        }],
    };
    assert_eq!(
        refused(public_prefix("NetworkInterface", "IPv7", Some(selector))),
        vec![
            "spec.selector.matchExpressions[0].operator",
            "spec.ipFamily"
        ]
    );
    let selector = pb::LabelSelector {
        match_labels: [("app".to_string(), "-bad".to_string())].into(),
        match_expressions: vec![pb::LabelRequirement {
            key: "tier".into(),
            operator: "In".into(),
            values: vec![],
        }],
    };
    assert_eq!(
        refused(public_prefix("NetworkInterface", "IPv4", Some(selector))),
        vec![
            "spec.selector.matchLabels[\"app\"]",
            "spec.selector.matchExpressions[0].values"
        ]
    );
}

fn nat_gateway(family: &str, ports: u32) -> O {
    O::NatGateway(pb::NatGateway {
        metadata: metadata("tenant-a", "nat"),
        spec: Some(pb::NatGatewaySpec {
            r#type: "Public".into(),
            ip_family: family.into(),
            ports_per_network_interface: ports,
            network_ref: local("web"),
        }),
        status: None,
    })
}

#[test]
fn nat_gateways() {
    let O::NatGateway(n) = accepted(nat_gateway("", 0)) else {
        panic!("kind changed");
    };
    let spec = n.spec.unwrap();
    assert_eq!(spec.ports_per_network_interface, 2048);
    assert_eq!(spec.ip_family, "IPv4");
    accepted(nat_gateway("IPv4", 64));
    assert_eq!(
        refused(nat_gateway("IPv6", 1000)),
        vec!["spec.ipFamily", "spec.portsPerNetworkInterface"]
    );
    let m = message(nat_gateway("IPv4", 1000), "spec.portsPerNetworkInterface");
    assert!(m.starts_with("1000 is not a power of two"), "{m}");
}

fn port(protocol: &str, port: u32, end_port: u32) -> pb::LoadBalancerPort {
    pb::LoadBalancerPort {
        protocol: protocol.into(),
        port,
        end_port,
    }
}

fn load_balancer(r#type: &str, ips: &[&str], ports: Vec<pb::LoadBalancerPort>) -> O {
    O::LoadBalancer(pb::LoadBalancer {
        metadata: metadata("tenant-a", "lb"),
        spec: Some(pb::LoadBalancerSpec {
            r#type: r#type.into(),
            ip_families: vec![],
            ips: ips
                .iter()
                .map(|v| pb::IpValue { value: (*v).into() })
                .collect(),
            network_ref: local("web"),
            network_interface_selector: Some(pb::LabelSelector {
                match_labels: [("app".to_string(), "web".to_string())].into(),
                match_expressions: vec![],
            }),
            ports,
            replicas: 2,
        }),
        status: None,
    })
}

#[test]
fn a_valid_load_balancer_passes_with_defaults() {
    let O::LoadBalancer(l) = accepted(load_balancer(
        "Internal",
        &["10.0.0.9", "fd00::9"],
        vec![port("", 80, 0), port("UDP", 5000, 5013)],
    )) else {
        panic!("kind changed");
    };
    let spec = l.spec.unwrap();
    assert_eq!(spec.ports[0].protocol, "TCP");
    assert_eq!(spec.ip_families, vec!["IPv4", "IPv6"]);
    accepted(load_balancer("Public", &[], vec![port("TCP", 443, 0)]));
}

#[test]
fn load_balancer_rules() {
    assert_eq!(
        refused(load_balancer("External", &[], vec![port("TCP", 80, 0)])),
        vec!["spec.type"]
    );
    assert_eq!(
        refused(load_balancer(
            "Public",
            &["1.2.3.4"],
            vec![port("TCP", 80, 0)]
        )),
        vec!["spec.ips"]
    );
    assert_eq!(
        refused(load_balancer("Internal", &[], vec![])),
        vec!["spec.ports"]
    );
    assert_eq!(
        refused(load_balancer(
            "Internal",
            &[],
            vec![
                port("SCTP", 80, 0),
                port("TCP", 0, 0),
                port("TCP", 90, 89),
                port("TCP", 70000, 0),
                port("TCP", 100, 70000),
                port("ICMP", 1, 0),
            ]
        )),
        vec![
            "spec.ports[0].protocol",
            "spec.ports[1].port",
            "spec.ports[2].endPort",
            "spec.ports[3].port",
            "spec.ports[4].endPort",
            "spec.ports[5].protocol",
        ]
    );
    let m = message(
        load_balancer("Internal", &[], vec![port("SCTP", 80, 0)]),
        "spec.ports[0].protocol",
    );
    assert!(m.contains("dpservice balances TCP and UDP"), "{m}");
}

#[test]
fn load_balancer_ports_are_limited_after_expansion() {
    let m = message(
        load_balancer(
            "Internal",
            &[],
            vec![port("TCP", 80, 0), port("UDP", 1000, 1014)],
        ),
        "spec.ports",
    );
    assert!(m.contains("16 ports, more than 15"), "{m}");
    assert!(m.contains("dpservice"), "{m}");
    accepted(load_balancer(
        "Internal",
        &[],
        vec![port("TCP", 80, 0), port("UDP", 1000, 1013)],
    ));
    assert_eq!(
        refused(load_balancer(
            "Internal",
            &[],
            vec![port("TCP", 80, 85), port("TCP", 85, 0), port("UDP", 85, 0)]
        )),
        vec!["spec.ports[1]"],
        "overlapping ranges of one protocol"
    );
    let huge = message(
        load_balancer("Internal", &[], vec![port("TCP", 1, 65535)]),
        "spec.ports",
    );
    assert!(huge.contains("65535 ports"), "{huge}");
}

fn policy(spec: pb::NetworkPolicySpec) -> O {
    O::NetworkPolicy(pb::NetworkPolicy {
        metadata: metadata("tenant-a", "allow-web"),
        spec: Some(spec),
        status: None,
    })
}

fn valid_policy() -> pb::NetworkPolicySpec {
    pb::NetworkPolicySpec {
        network_ref: local("web"),
        network_interface_selector: Some(pb::LabelSelector {
            match_labels: [("app".to_string(), "db".to_string())].into(),
            match_expressions: vec![],
        }),
        policy_types: vec!["Ingress".into()],
        ingress: vec![pb::PolicyRule {
            peers: vec![
                pb::PolicyPeer {
                    ip_block: Some(pb::IpBlock {
                        cidr: "10.0.0.0/16".into(),
                        except: vec!["10.0.1.0/24".into()],
                    }),
                    object_selector: None,
                },
                pb::PolicyPeer {
                    ip_block: None,
                    object_selector: Some(pb::ObjectSelector {
                        kind: "NetworkInterface".into(),
                        match_labels: [("app".to_string(), "web".to_string())].into(),
                        match_expressions: vec![],
                    }),
                },
            ],
            ports: vec![pb::PolicyPort {
                protocol: String::new(),
                port: 5432,
                end_port: 0,
            }],
        }],
        egress: vec![],
    }
}

#[test]
fn a_valid_policy_passes_with_defaults() {
    let O::NetworkPolicy(p) = accepted(policy(valid_policy())) else {
        panic!("kind changed");
    };
    assert_eq!(p.spec.unwrap().ingress[0].ports[0].protocol, "TCP");
    let converted = super::policy_spec(&valid_policy()).unwrap();
    assert_eq!(converted.network_ref, "web");
    assert_eq!(converted.ingress[0].peers.len(), 2);
}

#[test]
fn policy_rules_map_to_the_proto_paths() {
    let mut spec = valid_policy();
    spec.policy_types = vec!["Ingress".into(), "Sideways".into(), "Ingress".into()];
    let rule = &mut spec.ingress[0];
    rule.peers[0].ip_block.as_mut().unwrap().except = vec!["10.1.0.0/24".into()];
    rule.peers.push(pb::PolicyPeer::default());
    rule.ports[0].protocol = "SCTP".into();
    rule.ports.push(pb::PolicyPort {
        protocol: "UDP".into(),
        port: 100,
        end_port: 99,
    });
    // Conversion errors come first; the model is checked once the spec converts.
    assert_eq!(
        refused(policy(spec.clone())),
        vec!["spec.policyTypes[1]", "spec.ingress[0].peers[2]"]
    );
    spec.policy_types = vec!["Ingress".into(), "Ingress".into()];
    spec.ingress[0].peers.pop();
    assert_eq!(
        refused(policy(spec.clone())),
        vec![
            "spec.policyTypes[1]",
            "spec.ingress[0].peers[0].ipBlock.except[0]",
            "spec.ingress[0].ports[0].protocol",
            "spec.ingress[0].ports[1].endPort",
        ]
    );
    spec.ingress[0].ports.truncate(1);
    spec.policy_types.truncate(1);
    spec.ingress[0].peers.truncate(1);
    let m = message(policy(spec), "spec.ingress[0].ports[0].protocol");
    assert!(m.contains("SCTP"), "{m}");
}

#[test]
fn policy_references_and_selectors() {
    let mut spec = valid_policy();
    spec.network_ref = None;
    spec.network_interface_selector = Some(pb::LabelSelector {
        match_labels: [("app".to_string(), "no good".to_string())].into(),
        match_expressions: vec![],
    });
    assert_eq!(
        refused(policy(spec)),
        vec![
            "spec.networkRef.name",
            "spec.networkInterfaceSelector.matchLabels[\"app\"]"
        ]
    );
}

fn node(namespace: &str, prefix: &str) -> O {
    O::Node(pb::Node {
        metadata: metadata(namespace, "node-1"),
        spec: Some(pb::NodeSpec {
            underlay_prefix: prefix.into(),
            vf_capacity: 126,
        }),
        status: None,
    })
}

#[test]
fn nodes() {
    let O::Node(n) = accepted(node("", "FC00:1::/64")) else {
        panic!("kind changed");
    };
    assert_eq!(n.spec.unwrap().underlay_prefix, "fc00:1::/64");
    assert_eq!(
        refused(node("tenant-a", "10.0.0.0/8")),
        vec!["metadata.namespace", "spec.underlayPrefix"]
    );
    assert_eq!(refused(node("", "")), vec!["spec.underlayPrefix"]);
    assert_eq!(
        refused(node("", "fc00:1::1/64")),
        vec!["spec.underlayPrefix"]
    );
}
