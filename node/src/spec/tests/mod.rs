//! Tests of the spec layer: fixtures here, one file per concept.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod dataplane;
mod diff;
mod dpservice;
mod firewall;
mod firewall_wire;
mod interface;
mod load_balancer;
mod network;
mod no_panic;
mod routes;
mod strategies;

use std::fmt::Debug;

use ferrinet_proto::node::v1 as pb;

use super::{Options, SpecError};

pub(super) const V4: Options = Options {
    ipv6_enabled: false,
};
pub(super) const V6: Options = Options { ipv6_enabled: true };

pub(super) fn metadata(name: &str) -> Option<pb::Metadata> {
    Some(pb::Metadata {
        name: name.to_string(),
        ..Default::default()
    })
}

pub(super) fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A mutation of a good object that must fail on `field` under `options`.
pub(super) type Case<T> = (&'static str, Options, fn(&mut T));

/// Runs every case on a fresh copy of `good` and checks the reported field path and the Display
/// form `"{field}: {problem}"`.
pub(super) fn check_cases<T: Clone + Debug, S: Debug>(
    good: &T,
    validate: impl Fn(&T, &Options) -> Result<S, SpecError>,
    cases: &[Case<T>],
) {
    for (i, (field, options, mutate)) in cases.iter().enumerate() {
        let mut obj = good.clone();
        mutate(&mut obj);
        match validate(&obj, options) {
            Err(e) => {
                assert_eq!(e.field, *field, "case {i}: {e}");
                assert_eq!(e.to_string(), format!("{}: {}", e.field, e.problem));
                assert!(!e.problem.is_empty(), "case {i}");
            }
            Ok(spec) => panic!("case {i} ({field}) validated: {spec:?} from {obj:?}"),
        }
    }
}

pub(super) fn network_pb() -> pb::Network {
    pb::Network {
        metadata: metadata("net-1"),
        spec: Some(pb::NetworkSpec {
            id: 23,
            peered_ids: vec![24, 25],
            peered_prefixes: vec![pb::PeeredPrefix {
                id: 25,
                prefixes: strings(&["10.25.0.0/16", "10.0.0.0/8", "fd00:25::/64"]),
            }],
        }),
        status: None,
    }
}

pub(super) fn tcp_rule(id: &str) -> pb::FirewallRule {
    pb::FirewallRule {
        id: id.to_string(),
        direction: pb::Direction::Ingress as i32,
        action: pb::Action::Accept as i32,
        priority: 1000,
        source_prefix: "10.0.0.0/8".to_string(),
        destination_prefix: String::new(),
        protocol_match: Some(pb::ProtocolMatch {
            protocol: pb::Protocol::Tcp as i32,
            icmp: None,
            port_range: Some(pb::PortMatch {
                src_port: None,
                end_src_port: None,
                dst_port: Some(80),
                end_dst_port: Some(90),
            }),
        }),
    }
}

pub(super) fn icmp_rule(id: &str) -> pb::FirewallRule {
    pb::FirewallRule {
        id: id.to_string(),
        direction: pb::Direction::Egress as i32,
        action: pb::Action::Accept as i32,
        priority: 5,
        source_prefix: String::new(),
        destination_prefix: "fd00::/16".to_string(),
        protocol_match: Some(pb::ProtocolMatch {
            protocol: pb::Protocol::Icmp as i32,
            icmp: Some(pb::IcmpMatch {
                icmp_type: 8,
                icmp_code: -1,
            }),
            port_range: None,
        }),
    }
}

pub(super) fn any_rule(id: &str) -> pb::FirewallRule {
    pb::FirewallRule {
        id: id.to_string(),
        direction: pb::Direction::Egress as i32,
        action: pb::Action::Accept as i32,
        priority: 0,
        source_prefix: String::new(),
        destination_prefix: String::new(),
        protocol_match: None,
    }
}

/// An interface using every feature, valid with IPv6 enabled.
pub(super) fn interface_pb() -> pb::NetworkInterface {
    pb::NetworkInterface {
        metadata: metadata("vm-1"),
        spec: Some(pb::NetworkInterfaceSpec {
            network: "net-1".to_string(),
            ips: strings(&["10.0.0.5", "fd00::5"]),
            virtual_ip: "203.0.113.5".to_string(),
            nat: Some(pb::NatSpec {
                ip: "203.0.113.9".to_string(),
                port: 1024,
                end_port: 2048,
            }),
            prefixes: strings(&["10.1.0.0/24", "fd00:1::/64"]),
            load_balancer_targets: strings(&["10.2.0.1/32", "10.3.0.0/30"]),
            firewall_rules: vec![tcp_rule("r0"), icmp_rule("r1"), any_rule("r2")],
            metering_rate: Some(pb::MeteringRate {
                total_rate: 1000,
                public_rate: 100,
            }),
            hostname: "vm-1.example".to_string(),
        }),
        status: None,
    }
}

/// An interface valid without IPv6.
pub(super) fn interface_v4_pb() -> pb::NetworkInterface {
    let mut i = interface_pb();
    let s = i.spec.as_mut().unwrap();
    s.ips = strings(&["10.0.0.5"]);
    s.prefixes = strings(&["10.1.0.0/24"]);
    s.firewall_rules = vec![tcp_rule("r0"), any_rule("r2")];
    i
}

pub(super) fn lb_pb() -> pb::LoadBalancer {
    pb::LoadBalancer {
        metadata: metadata("lb-1"),
        spec: Some(pb::LoadBalancerSpec {
            network: "net-1".to_string(),
            r#type: pb::LoadBalancerType::Public as i32,
            ip: "203.0.113.80".to_string(),
            ports: vec![
                pb::LoadBalancerPort {
                    protocol: pb::Protocol::Tcp as i32,
                    port: 443,
                },
                pb::LoadBalancerPort {
                    protocol: pb::Protocol::Udp as i32,
                    port: 443,
                },
                pb::LoadBalancerPort {
                    protocol: pb::Protocol::Tcp as i32,
                    port: 80,
                },
            ],
        }),
        status: None,
    }
}
