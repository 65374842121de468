//! Firewall rules of realized interfaces: allow-all ingress for interfaces no policy isolates
//! for ingress, exactly the policies' rules for the others.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use ferrinet_proto::api::v1 as pb;
use ferrinet_proto::node::v1 as node_pb;
use node_pb::object::Object as N;
use proptest::prelude::*;

use super::tests::{NS, Region, iface_spec, meta, reference};
use super::*;

const INGRESS: i32 = node_pb::Direction::Ingress as i32;
const EGRESS: i32 = node_pb::Direction::Egress as i32;

/// A policy peer: an address block, or the interfaces labelled `app=<value>`.
#[derive(Debug, Clone, Copy)]
enum Peer {
    Block(&'static str),
    App(&'static str),
}

fn peer(p: Peer) -> pb::PolicyPeer {
    match p {
        Peer::Block(cidr) => pb::PolicyPeer {
            ip_block: Some(pb::IpBlock {
                cidr: cidr.into(),
                except: vec![],
            }),
            object_selector: None,
        },
        Peer::App(app) => pb::PolicyPeer {
            ip_block: None,
            object_selector: Some(pb::ObjectSelector {
                kind: "NetworkInterface".into(),
                match_labels: [("app".to_string(), app.to_string())].into(),
                match_expressions: vec![],
            }),
        },
    }
}

/// A rule from/to `peers`, to TCP `port` (`None`: every protocol).
fn policy_rule(peers: &[Peer], port: Option<(&str, u32)>) -> pb::PolicyRule {
    pb::PolicyRule {
        peers: peers.iter().copied().map(peer).collect(),
        ports: port
            .map(|(protocol, port)| pb::PolicyPort {
                protocol: protocol.into(),
                port,
                end_port: 0,
            })
            .into_iter()
            .collect(),
    }
}

/// Stores a policy of network `a` selecting `app=<target>` (every interface for "").
fn add_policy(
    region: &mut Region,
    name: &str,
    target: &str,
    types: &[&str],
    ingress: Vec<pb::PolicyRule>,
    egress: Vec<pb::PolicyRule>,
) {
    let match_labels = if target.is_empty() {
        Default::default()
    } else {
        [("app".to_string(), target.to_string())].into()
    };
    region.0.policies.insert(
        ObjKey::new(NS, name),
        pb::NetworkPolicy {
            metadata: meta(NS, name, &[]),
            spec: Some(pb::NetworkPolicySpec {
                network_ref: reference("", "a"),
                network_interface_selector: Some(pb::LabelSelector {
                    match_labels,
                    match_expressions: vec![],
                }),
                policy_types: types.iter().map(|t| t.to_string()).collect(),
                ingress,
                egress,
            }),
            status: None,
        },
    );
}

fn ids(rules: &[node_pb::FirewallRule]) -> Vec<&str> {
    rules.iter().map(|r| r.id.as_str()).collect()
}

fn is_allow_all(rule: &node_pb::FirewallRule) -> bool {
    rule.id == ALLOW_ALL_INGRESS_V4 || rule.id == ALLOW_ALL_INGRESS_V6
}

/// A network `a` with a dual-stack `web`, an IPv4 `db` and an IPv6 `cache`, on node-1.
fn three_interfaces() -> Region {
    let mut region = Region::new();
    region.network(NS, "a", 100, "10.0.0.0/24");
    region.interface(
        "web",
        "a",
        "node-1",
        &["10.0.0.5", "fd00::5"],
        &[("app", "web")],
    );
    region.interface("db", "a", "node-1", &["10.0.0.6"], &[("app", "db")]);
    region.interface("cache", "a", "node-1", &["fd00::7"], &[("app", "cache")]);
    region
}

#[test]
fn unselected_interfaces_take_all_ingress_of_their_families() {
    let r = three_interfaces().realize();
    let web = &iface_spec(&r, "node-1", "t_web").firewall_rules;
    let any = |id: &str, prefix: &str| node_pb::FirewallRule {
        id: id.into(),
        direction: INGRESS,
        action: node_pb::Action::Accept.into(),
        priority: 1000,
        source_prefix: prefix.into(),
        destination_prefix: prefix.into(),
        protocol_match: None,
    };
    assert_eq!(
        web,
        &vec![
            any(ALLOW_ALL_INGRESS_V4, "0.0.0.0/0"),
            any(ALLOW_ALL_INGRESS_V6, "::/0"),
        ]
    );
    assert!(
        web.iter().all(|r| r.direction != EGRESS),
        "egress stays open"
    );
    assert_eq!(
        iface_spec(&r, "node-1", "t_db").firewall_rules,
        vec![any(ALLOW_ALL_INGRESS_V4, "0.0.0.0/0")],
        "no IPv6 address, no IPv6 rule"
    );
    assert_eq!(
        iface_spec(&r, "node-1", "t_cache").firewall_rules,
        vec![any(ALLOW_ALL_INGRESS_V6, "::/0")],
        "no IPv4 address, no IPv4 rule"
    );
    let count = |n: &str| r.interfaces[&ObjKey::new(NS, n)].firewall_rules;
    assert_eq!((count("web"), count("db"), count("cache")), (2, 1, 1));
}

#[test]
fn an_ingress_policy_replaces_allow_all_with_what_it_allows() {
    let mut region = three_interfaces();
    add_policy(
        &mut region,
        "web-from-db",
        "web",
        &["Ingress"],
        vec![policy_rule(&[Peer::App("db")], Some(("TCP", 80)))],
        vec![],
    );
    let r = region.realize();
    let web = &iface_spec(&r, "node-1", "t_web").firewall_rules;
    assert_eq!(web.len(), 1, "{web:?}");
    assert_eq!(web[0].direction, INGRESS);
    assert_eq!(web[0].source_prefix, "10.0.0.6/32");
    assert!(!web.iter().any(is_allow_all), "{web:?}");
    assert_eq!(r.interfaces[&ObjKey::new(NS, "web")].firewall_rules, 1);
    // The others are not selected and stay open.
    assert_eq!(
        ids(&iface_spec(&r, "node-1", "t_db").firewall_rules),
        vec![ALLOW_ALL_INGRESS_V4]
    );
}

#[test]
fn an_ingress_policy_allowing_nothing_isolates() {
    let mut region = three_interfaces();
    add_policy(&mut region, "deny-all", "web", &["Ingress"], vec![], vec![]);
    let r = region.realize();
    let web = &iface_spec(&r, "node-1", "t_web").firewall_rules;
    assert!(!web.is_empty() && !web.iter().any(is_allow_all), "{web:?}");
    assert!(web.iter().all(|r| r.id.starts_with("isolate-ingress")));
}

#[test]
fn an_egress_only_policy_keeps_allow_all_ingress() {
    let mut region = three_interfaces();
    add_policy(
        &mut region,
        "web-out",
        "web",
        &["Egress"],
        vec![],
        vec![policy_rule(
            &[Peer::Block("10.9.0.0/16")],
            Some(("TCP", 443)),
        )],
    );
    let r = region.realize();
    let web = &iface_spec(&r, "node-1", "t_web").firewall_rules;
    let (ingress, egress): (Vec<_>, Vec<_>) = web.iter().partition(|r| r.direction == INGRESS);
    let ingress: Vec<&str> = ingress.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ingress, vec![ALLOW_ALL_INGRESS_V4, ALLOW_ALL_INGRESS_V6]);
    assert_eq!(egress.len(), 1, "{web:?}");
    assert_eq!(egress[0].destination_prefix, "10.9.0.0/16");
    assert_eq!(egress[0].source_prefix, "0.0.0.0/0");
    assert!(!is_allow_all(egress[0]));
    assert_eq!(r.interfaces[&ObjKey::new(NS, "web")].firewall_rules, 3);
}

#[test]
fn without_policy_types_an_egress_policy_governs_ingress_too() {
    // Kubernetes' default: a policy without policyTypes governs Ingress, and Egress if it has
    // egress rules. So this policy isolates web for ingress, allowing nothing in.
    let mut region = three_interfaces();
    add_policy(
        &mut region,
        "web-out",
        "web",
        &[],
        vec![],
        vec![policy_rule(&[Peer::Block("10.9.0.0/16")], None)],
    );
    let r = region.realize();
    let web = &iface_spec(&r, "node-1", "t_web").firewall_rules;
    assert!(!web.iter().any(is_allow_all), "{web:?}");
    assert!(web.iter().any(|r| r.direction == EGRESS));
    assert!(
        web.iter()
            .filter(|r| r.direction == INGRESS)
            .all(|r| r.id.starts_with("isolate-ingress"))
    );
}

#[test]
fn allow_all_rules_are_the_same_whenever_they_are_placed() {
    let mut region = three_interfaces();
    let before = region.realize();
    let rules = |r: &Realized, n: &str| iface_spec(r, "node-1", n).firewall_rules.clone();
    // A policy on another interface changes nothing here...
    add_policy(&mut region, "db-closed", "db", &["Ingress"], vec![], vec![]);
    let with_db = region.realize();
    assert_eq!(rules(&before, "t_web"), rules(&with_db, "t_web"));
    // ...and when a policy stops selecting web, web gets back exactly the rules it had.
    add_policy(
        &mut region,
        "web-closed",
        "web",
        &["Ingress"],
        vec![],
        vec![],
    );
    assert!(!rules(&region.realize(), "t_web").iter().any(is_allow_all));
    region
        .0
        .interfaces
        .get_mut(&ObjKey::new(NS, "web"))
        .unwrap()
        .metadata = meta(NS, "web", &[("app", "other")]);
    assert_eq!(rules(&before, "t_web"), rules(&region.realize(), "t_web"));
}

/// One generated policy: target app ("" = every interface), policyTypes, whether it has an
/// ingress and an egress rule (peer index, with a port or not), and whether it is invalid.
type PolicyCase = (
    usize,
    usize,
    Option<(usize, bool)>,
    Option<(usize, bool)>,
    bool,
);

const APPS: [&str; 3] = ["web", "db", ""];
const TYPES: [&[&str]; 4] = [&[], &["Ingress"], &["Egress"], &["Ingress", "Egress"]];
const PEERS: [Peer; 3] = [
    Peer::App("web"),
    Peer::App("db"),
    Peer::Block("10.9.0.0/16"),
];

fn arbitrary_policies() -> impl Strategy<Value = (Vec<(usize, usize)>, Vec<PolicyCase>)> {
    let interfaces = prop::collection::vec((0usize..2, 0usize..3), 1..5);
    let rule = prop::option::of((0usize..PEERS.len(), any::<bool>()));
    let policies = prop::collection::vec(
        (
            0usize..APPS.len(),
            0usize..TYPES.len(),
            rule.clone(),
            rule,
            any::<bool>(),
        ),
        0..4,
    );
    (interfaces, policies)
}

/// Whether a policy case governs ingress/egress (Kubernetes' defaults for no policyTypes).
fn governs(case: &PolicyCase) -> (bool, bool) {
    let (_, types, _, egress, _) = case;
    let types = TYPES[*types];
    if types.is_empty() {
        (true, egress.is_some())
    } else {
        (types.contains(&"Ingress"), types.contains(&"Egress"))
    }
}

fn build(interfaces: &[(usize, usize)], policies: &[PolicyCase]) -> Region {
    let mut region = Region::new();
    region.network(NS, "a", 100, "10.0.0.0/24");
    for (k, (app, family)) in interfaces.iter().enumerate() {
        let v4 = format!("10.0.0.{}", 10 + k);
        let v6 = format!("fd00::{}", 10 + k);
        let ips: Vec<&str> = match family {
            0 => vec![v4.as_str()],
            1 => vec![v6.as_str()],
            _ => vec![v4.as_str(), v6.as_str()],
        };
        region.interface(
            &format!("i{k}"),
            "a",
            "node-1",
            &ips,
            &[("app", APPS[*app])],
        );
    }
    for (k, (app, types, ingress, egress, invalid)) in policies.iter().enumerate() {
        let rule = |r: &Option<(usize, bool)>, protocol: &str| {
            r.map(|(p, port)| policy_rule(&[PEERS[p]], port.then_some((protocol, 5432))))
                .into_iter()
                .collect::<Vec<_>>()
        };
        let mut ingress = rule(ingress, "TCP");
        if *invalid {
            // SCTP is refused at validation: the policy is reported and not enforced.
            ingress.push(policy_rule(&[PEERS[0]], Some(("SCTP", 1))));
        }
        add_policy(
            &mut region,
            &format!("p{k}"),
            APPS[*app],
            TYPES[*types],
            ingress,
            rule(egress, "UDP"),
        );
    }
    region
}

/// The rules of interface `name` as placed on node-1.
fn placed_rules(r: &Realized, name: &str) -> Vec<node_pb::FirewallRule> {
    let key = PlacedKey {
        kind: node_pb::Kind::NetworkInterface,
        name: format!("t_{name}"),
    };
    match &r.placed["node-1"][&key].object {
        Some(N::NetworkInterface(i)) => i.spec.as_ref().unwrap().firewall_rules.clone(),
        other => panic!("not an interface: {other:?}"),
    }
}

proptest! {
    #[test]
    fn ingress_is_open_exactly_where_no_policy_isolates_it(
        (interfaces, policies) in arbitrary_policies()
    ) {
        let region = build(&interfaces, &policies);
        let r = region.realize();
        prop_assert_eq!(&r, &region.realize(), "deterministic");
        for (k, (app, family)) in interfaces.iter().enumerate() {
            let name = format!("i{k}");
            let selecting: Vec<(bool, bool)> = policies
                .iter()
                .filter(|c| !c.4 && (APPS[c.0].is_empty() || c.0 == *app))
                .map(governs)
                .collect();
            let isolated_in = selecting.iter().any(|g| g.0);
            let isolated_out = selecting.iter().any(|g| g.1);
            let rules = placed_rules(&r, &name);
            let unique: BTreeSet<&str> = rules.iter().map(|r| r.id.as_str()).collect();
            prop_assert_eq!(unique.len(), rules.len(), "ids unique: {:?}", rules);
            prop_assert_eq!(
                r.interfaces[&ObjKey::new(NS, &name)].firewall_rules as usize,
                rules.len()
            );
            // Generated policies never allow everything, so only allow-all rules open ingress
            // from anywhere to any protocol.
            let open: Vec<&str> = rules
                .iter()
                .filter(|r| {
                    r.direction == INGRESS
                        && r.protocol_match.is_none()
                        && (r.source_prefix == "0.0.0.0/0" || r.source_prefix == "::/0")
                })
                .map(|r| r.id.as_str())
                .collect();
            let allow_all: Vec<&str> = rules
                .iter()
                .filter(|r| is_allow_all(r))
                .map(|r| r.id.as_str())
                .collect();
            let want: Vec<&str> = match (isolated_in, family) {
                (true, _) => vec![],
                (false, 0) => vec![ALLOW_ALL_INGRESS_V4],
                (false, 1) => vec![ALLOW_ALL_INGRESS_V6],
                (false, _) => vec![ALLOW_ALL_INGRESS_V4, ALLOW_ALL_INGRESS_V6],
            };
            prop_assert_eq!(&open, &want, "{}: {:?}", name, rules);
            prop_assert_eq!(&allow_all, &want, "{}: {:?}", name, rules);
            prop_assert!(
                rules.iter().any(|r| r.direction == INGRESS),
                "{}: isolated or not, an interface has an ingress rule: {:?}", name, rules
            );
            prop_assert_eq!(
                rules.iter().any(|r| r.direction == EGRESS),
                isolated_out,
                "{}: egress rules only under an egress policy: {:?}", name, rules
            );
        }
    }
}
