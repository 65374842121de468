//! Policy validation: the seed example passes, and each invalid field is named by its path.

#![allow(clippy::unwrap_used)]

use ipnet::IpNet;

use super::*;
use crate::selector::{LabelSelector, Operator, Requirement};

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn block(cidr: &str, except: &[&str]) -> PolicyPeer {
    PolicyPeer::IpBlock(IpBlock {
        cidr: net(cidr),
        except: except.iter().map(|e| net(e)).collect(),
    })
}

fn select(kind: ObjectKind, app: &str) -> PolicyPeer {
    PolicyPeer::ObjectSelector(ObjectSelector {
        kind,
        selector: LabelSelector::from_labels([("app", app)]),
    })
}

/// The example policy of the OpenKCM networking guide.
pub(super) fn example_policy() -> NetworkPolicy {
    NetworkPolicy {
        name: "my-network-policy".to_string(),
        spec: NetworkPolicySpec {
            network_ref: "my-network".to_string(),
            network_interface_selector: LabelSelector::from_labels([("app", "db")]),
            policy_types: vec![PolicyType::Ingress, PolicyType::Egress],
            ingress: vec![PolicyRule {
                peers: vec![
                    block("172.17.0.0/16", &[]),
                    select(ObjectKind::NetworkInterface, "web"),
                    select(ObjectKind::LoadBalancer, "web"),
                ],
                ports: vec![PolicyPort::single(Protocol::Tcp, 5432)],
            }],
            egress: vec![PolicyRule {
                peers: vec![block("10.0.0.0/24", &[])],
                ports: vec![PolicyPort::single(Protocol::Tcp, 8080)],
            }],
        },
    }
}

fn errors(policy: &NetworkPolicy) -> Vec<String> {
    policy
        .validate()
        .unwrap_err()
        .0
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn the_example_policy_is_valid() {
    assert_eq!(example_policy().validate(), Ok(()));
    let minimal = NetworkPolicy {
        name: "deny-all".to_string(),
        spec: NetworkPolicySpec {
            network_ref: "n".to_string(),
            ..NetworkPolicySpec::default()
        },
    };
    assert_eq!(minimal.validate(), Ok(()));
}

#[test]
fn names_and_selectors_are_checked_with_their_paths() {
    let mut p = example_policy();
    p.name = "My_Policy".to_string();
    p.spec.network_ref = String::new();
    p.spec.network_interface_selector = LabelSelector::from_labels([("app", "db")])
        .with_expression(Requirement::new("tier", Operator::Exists, ["x"]));
    p.spec.ingress[0].peers[1] = PolicyPeer::ObjectSelector(ObjectSelector {
        kind: ObjectKind::NetworkInterface,
        selector: LabelSelector::from_labels([("app", "web!")]),
    });
    p.spec.policy_types = vec![PolicyType::Ingress, PolicyType::Egress, PolicyType::Ingress];
    assert_eq!(
        errors(&p),
        [
            "metadata.name: \"My_Policy\" is not a valid name (a DNS subdomain: lowercase \
             letters, digits, '-' and '.')",
            "spec.networkRef.name: \"\" is not a valid name (a DNS subdomain: lowercase \
             letters, digits, '-' and '.')",
            "spec.networkInterfaceSelector.matchExpressions[0].values: operator Exists takes \
             no values",
            "spec.policyTypes[2]: Ingress is listed already at spec.policyTypes[0]",
            "spec.ingress[0].from[1].objectSelector.matchLabels[\"app\"]: value \"web!\" is \
             invalid: use letters, digits, '-', '_' and '.', starting and ending with a letter \
             or digit (or leave it empty)",
        ]
    );
}

#[test]
fn ip_blocks_need_clean_cidrs_and_excepts_strictly_inside() {
    let mut p = example_policy();
    p.spec.ingress[0].peers = vec![
        block("10.0.0.1/8", &["10.1.0.0/16"]),
        block(
            "10.0.0.0/8",
            &[
                "10.1.0.0/16",
                "11.0.0.0/16",
                "10.0.0.0/8",
                "fd00::/64",
                "10.2.0.1/16",
                "0.0.0.0/0",
            ],
        ),
    ];
    p.spec.egress[0].peers = vec![block("fd00::/64", &["fd00::/65"])];
    assert_eq!(
        errors(&p),
        [
            "spec.ingress[0].from[0].ipBlock.cidr: 10.0.0.1/8 has host bits set (the network is \
             10.0.0.0/8)",
            "spec.ingress[0].from[1].ipBlock.except[1]: 11.0.0.0/16 is not strictly inside the \
             cidr 10.0.0.0/8",
            "spec.ingress[0].from[1].ipBlock.except[2]: 10.0.0.0/8 is not strictly inside the \
             cidr 10.0.0.0/8",
            "spec.ingress[0].from[1].ipBlock.except[3]: fd00::/64 is not strictly inside the \
             cidr 10.0.0.0/8",
            "spec.ingress[0].from[1].ipBlock.except[4]: 10.2.0.1/16 has host bits set (the \
             network is 10.2.0.0/16)",
            "spec.ingress[0].from[1].ipBlock.except[5]: 0.0.0.0/0 is not strictly inside the \
             cidr 10.0.0.0/8",
        ]
    );
}

#[test]
fn ports_need_a_start_before_their_end_and_a_filterable_protocol() {
    let mut p = example_policy();
    p.spec.ingress[0].ports = vec![
        PolicyPort::single(Protocol::Tcp, 0),
        PolicyPort::range(Protocol::Udp, 9000, 8000),
        PolicyPort {
            protocol: None,
            port: None,
            end_port: Some(80),
        },
        PolicyPort::single(Protocol::Sctp, 9),
        PolicyPort::range(Protocol::Tcp, 1, 0),
        PolicyPort::range(Protocol::Tcp, 8000, 8000),
        PolicyPort {
            protocol: Some(Protocol::Udp),
            port: None,
            end_port: None,
        },
    ];
    assert_eq!(
        errors(&p),
        [
            "spec.ingress[0].ports[0].port: 0 is not a port (1 to 65535)",
            "spec.ingress[0].ports[1].endPort: 8000 is below port 9000",
            "spec.ingress[0].ports[2].endPort: 80 needs port to be set",
            "spec.ingress[0].ports[3].protocol: SCTP cannot be enforced: dpservice firewall \
             rules filter TCP, UDP and ICMP only",
            "spec.ingress[0].ports[4].endPort: 0 is not a port (1 to 65535)",
        ]
    );
}

#[test]
fn lists_are_bounded() {
    let mut p = example_policy();
    p.spec.egress = vec![PolicyRule::default(); MAX_RULES_PER_DIRECTION + 1];
    p.spec.ingress[0].peers = vec![block("10.0.0.0/8", &[]); MAX_PEERS_PER_RULE + 1];
    p.spec.ingress[0].ports = vec![PolicyPort::single(Protocol::Udp, 53); MAX_PORTS_PER_RULE + 1];
    let many: Vec<String> = (0..=MAX_EXCEPTS)
        .map(|i| format!("10.{i}.0.0/16"))
        .collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    p.spec.ingress[0].peers[0] = block("10.0.0.0/8", &many);
    let e = p.validate().unwrap_err();
    assert_eq!(
        e.fields(),
        [
            "spec.ingress[0].from",
            "spec.ingress[0].from[0].ipBlock.except",
            "spec.ingress[0].ports",
            "spec.egress",
        ]
    );
    assert_eq!(
        e.0[0].to_string(),
        format!(
            "spec.ingress[0].from: has {} items, more than {MAX_PEERS_PER_RULE}",
            MAX_PEERS_PER_RULE + 1
        )
    );
}

#[test]
fn default_policy_types_follow_kubernetes() {
    let mut spec = example_policy().spec;
    assert!(spec.governs(PolicyType::Ingress) && spec.governs(PolicyType::Egress));
    spec.policy_types.clear();
    assert!(spec.governs(PolicyType::Ingress) && spec.governs(PolicyType::Egress));
    spec.egress.clear();
    assert!(spec.governs(PolicyType::Ingress) && !spec.governs(PolicyType::Egress));
    spec.policy_types = vec![PolicyType::Egress];
    assert!(!spec.governs(PolicyType::Ingress) && spec.governs(PolicyType::Egress));
}
