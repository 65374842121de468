//! Compilation: golden rule sets for the guide's example policy, `except`, both directions,
//! ports, isolation, recompilation after label changes, ids and limits.

#![allow(clippy::unwrap_used)]

use std::net::IpAddr;

use ipnet::IpNet;

use super::validate_tests::example_policy;
use super::*;
use crate::selector::{LabelSelector, Operator, Requirement};

const NET: &str = "my-network";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn object(name: &str, labels: &[(&str, &str)], ips: &[&str]) -> PolicyObject {
    PolicyObject::new(name, NET, labels.iter().copied(), ips.iter().map(|s| ip(s)))
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

fn policy(name: &str, app: &str) -> NetworkPolicy {
    NetworkPolicy {
        name: name.to_string(),
        spec: NetworkPolicySpec {
            network_ref: NET.to_string(),
            network_interface_selector: LabelSelector::from_labels([("app", app)]),
            ..NetworkPolicySpec::default()
        },
    }
}

fn rule(peers: Vec<PolicyPeer>, ports: Vec<PolicyPort>) -> PolicyRule {
    PolicyRule { peers, ports }
}

/// The example's network: a database, two web servers (one dual-stack), a web load
/// balancer, and a web server of another network that must not count.
fn inventory() -> PolicyInventory {
    let mut other = object("web-other", &[("app", "web")], &["10.9.9.9"]);
    other.network = "other-network".to_string();
    PolicyInventory {
        interfaces: vec![
            object("db-0", &[("app", "db")], &["10.0.0.10"]),
            object("web-1", &[("app", "web")], &["10.0.0.21", "fd00::21"]),
            object("web-0", &[("app", "web")], &["10.0.0.20"]),
            other,
        ],
        load_balancers: vec![object("web-lb", &[("app", "web")], &["10.0.0.100"])],
    }
}

fn compile(policies: &[NetworkPolicy], inventory: &PolicyInventory) -> CompiledPolicies {
    compile_policies(NET, policies, inventory).unwrap()
}

/// The interface's rules as `id: direction protocol source -> destination`.
fn rules(compiled: &CompiledPolicies, iface: &str) -> Vec<String> {
    compiled.interfaces[iface]
        .rules
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// The interface's rules without ids.
fn bodies(compiled: &CompiledPolicies, iface: &str) -> Vec<String> {
    compiled.interfaces[iface]
        .rules
        .iter()
        .map(|r| {
            format!(
                "{} {} {} -> {}",
                r.direction, r.protocol, r.source, r.destination
            )
        })
        .collect()
}

#[test]
fn the_guide_example_compiles_to_these_rules() {
    let compiled = compile(&[example_policy()], &inventory());
    assert_eq!(
        rules(&compiled, "db-0"),
        [
            "my-network-policy-i0-d99b1daf: ingress tcp/5432 10.0.0.20/32 -> 0.0.0.0/0",
            "my-network-policy-i0-fe53b24c: ingress tcp/5432 10.0.0.21/32 -> 0.0.0.0/0",
            "my-network-policy-i0-ca1283e7: ingress tcp/5432 10.0.0.100/32 -> 0.0.0.0/0",
            "my-network-policy-i0-8e2541f5: ingress tcp/5432 172.17.0.0/16 -> 0.0.0.0/0",
            "my-network-policy-e0-5b94dcc8: egress tcp/8080 0.0.0.0/0 -> 10.0.0.0/24",
        ]
    );
    let db = &compiled.interfaces["db-0"];
    assert_eq!(db.policies, ["my-network-policy"]);
    assert!(db.ingress_isolated && db.egress_isolated);
    assert!(
        db.rules
            .iter()
            .all(|r| r.action == Action::Accept && r.priority == RULE_PRIORITY)
    );
    // The web servers are not selected: no rules, nothing isolated. The other network's
    // interface is not part of the result.
    for web in ["web-0", "web-1"] {
        assert_eq!(compiled.interfaces[web], InterfaceRules::default());
    }
    assert_eq!(compiled.interfaces.len(), 3);
    assert!(compiled.errors.is_empty());
}

#[test]
fn except_becomes_the_set_difference() {
    let mut p = policy("dns", "db");
    p.spec.ingress = vec![rule(
        vec![
            block("10.0.0.0/22", &["10.0.1.0/24"]),
            block("192.168.0.0/30", &["192.168.0.1/32"]),
        ],
        vec![PolicyPort::single(Protocol::Udp, 53)],
    )];
    let compiled = compile(&[p], &inventory());
    assert_eq!(
        bodies(&compiled, "db-0"),
        [
            "ingress udp/53 10.0.0.0/24 -> 0.0.0.0/0",
            "ingress udp/53 10.0.2.0/23 -> 0.0.0.0/0",
            "ingress udp/53 192.168.0.0/32 -> 0.0.0.0/0",
            "ingress udp/53 192.168.0.2/31 -> 0.0.0.0/0",
        ]
    );
}

#[test]
fn both_directions_with_ports_ranges_and_every_protocol() {
    let mut p = policy("web", "web");
    p.spec.ingress = vec![rule(
        vec![],
        vec![
            PolicyPort::single(Protocol::Tcp, 80),
            PolicyPort::range(Protocol::Tcp, 8000, 8080),
            PolicyPort {
                protocol: Some(Protocol::Udp),
                port: None,
                end_port: None,
            },
            PolicyPort {
                protocol: None,
                port: Some(443),
                end_port: None,
            },
        ],
    )];
    p.spec.egress = vec![rule(vec![block("10.0.0.0/24", &[])], vec![])];
    let compiled = compile(&[p], &inventory());
    // web-1 is dual-stack: a rule without peers allows both families; the egress block is
    // IPv4 only, so IPv6 egress is closed (the direction has rules).
    assert_eq!(
        bodies(&compiled, "web-1"),
        [
            "ingress tcp/80 0.0.0.0/0 -> 0.0.0.0/0",
            "ingress tcp/443 0.0.0.0/0 -> 0.0.0.0/0",
            "ingress tcp/8000-8080 0.0.0.0/0 -> 0.0.0.0/0",
            "ingress udp/any 0.0.0.0/0 -> 0.0.0.0/0",
            "ingress tcp/80 ::/0 -> ::/0",
            "ingress tcp/443 ::/0 -> ::/0",
            "ingress tcp/8000-8080 ::/0 -> ::/0",
            "ingress udp/any ::/0 -> ::/0",
            "egress any 0.0.0.0/0 -> 10.0.0.0/24",
        ]
    );
    assert_eq!(bodies(&compiled, "web-0").len(), 5);
    assert!(compiled.interfaces["db-0"].rules.is_empty());
}

#[test]
fn a_governed_direction_with_nothing_allowed_is_closed_by_an_isolation_rule() {
    // Selectors that match nothing allow nothing; Kubernetes would drop all ingress.
    let mut p = policy("nobody", "web");
    p.spec.ingress = vec![rule(
        vec![select(ObjectKind::NetworkInterface, "nobody")],
        vec![PolicyPort::single(Protocol::Tcp, 22)],
    )];
    let compiled = compile(&[p], &inventory());
    assert_eq!(
        rules(&compiled, "web-1"),
        [
            "isolate-ingress-ipv4: ingress tcp/0 0.0.0.0/32 -> 0.0.0.0/0",
            "isolate-ingress-ipv6: ingress tcp/0 ::/128 -> ::/0",
        ]
    );
    let web = &compiled.interfaces["web-1"];
    assert!(web.ingress_isolated && !web.egress_isolated);

    // A default-deny policy for both directions.
    let mut deny = policy("deny-all", "db");
    deny.spec.network_interface_selector = LabelSelector::everything();
    deny.spec.policy_types = vec![PolicyType::Ingress, PolicyType::Egress];
    let compiled = compile(&[deny.clone()], &inventory());
    assert_eq!(
        rules(&compiled, "db-0"),
        [
            "isolate-ingress-ipv4: ingress tcp/0 0.0.0.0/32 -> 0.0.0.0/0",
            "isolate-egress-ipv4: egress tcp/0 0.0.0.0/0 -> 0.0.0.0/32",
        ]
    );
    // Once another policy allows something in a direction, the isolation rule goes.
    let mut web = policy("allow-web", "db");
    web.spec.ingress = vec![rule(
        vec![select(ObjectKind::NetworkInterface, "web")],
        vec![PolicyPort::single(Protocol::Tcp, 5432)],
    )];
    let compiled = compile(&[deny, web], &inventory());
    assert_eq!(
        bodies(&compiled, "db-0"),
        [
            "ingress tcp/5432 10.0.0.20/32 -> 0.0.0.0/0",
            "ingress tcp/5432 10.0.0.21/32 -> 0.0.0.0/0",
            "egress tcp/0 0.0.0.0/0 -> 0.0.0.0/32",
        ]
    );
    assert_eq!(
        compiled.interfaces["db-0"].policies,
        ["allow-web", "deny-all"]
    );
}

#[test]
fn listed_policy_types_leave_other_directions_alone() {
    let mut p = example_policy();
    p.spec.policy_types = vec![PolicyType::Egress];
    let compiled = compile(&[p.clone()], &inventory());
    assert_eq!(
        bodies(&compiled, "db-0"),
        ["egress tcp/8080 0.0.0.0/0 -> 10.0.0.0/24"]
    );
    assert!(!compiled.interfaces["db-0"].ingress_isolated);
    // With policyTypes unset, egress counts because it has rules; without them it does not.
    p.spec.policy_types.clear();
    assert_eq!(
        compile(&[p.clone()], &inventory()).interfaces["db-0"]
            .rules
            .len(),
        5
    );
    p.spec.egress.clear();
    let compiled = compile(&[p], &inventory());
    assert_eq!(compiled.interfaces["db-0"].rules.len(), 4);
    assert!(!compiled.interfaces["db-0"].egress_isolated);
}

#[test]
fn policies_add_up_and_duplicate_or_covered_rules_merge() {
    let mut wide = policy("a-wide", "db");
    wide.spec.ingress = vec![rule(
        vec![block("10.0.0.0/8", &[])],
        vec![PolicyPort::range(Protocol::Tcp, 80, 90)],
    )];
    let mut narrow = policy("b-narrow", "db");
    narrow.spec.ingress = vec![rule(
        vec![
            select(ObjectKind::NetworkInterface, "web"),
            block("10.0.0.0/8", &[]),
        ],
        vec![
            PolicyPort::single(Protocol::Tcp, 85),
            PolicyPort::single(Protocol::Udp, 85),
            PolicyPort::range(Protocol::Tcp, 80, 90),
        ],
    )];
    let compiled = compile(&[narrow.clone(), wide.clone()], &inventory());
    assert_eq!(
        bodies(&compiled, "db-0"),
        [
            "ingress tcp/80-90 10.0.0.0/8 -> 0.0.0.0/0",
            "ingress udp/85 10.0.0.0/8 -> 0.0.0.0/0",
        ]
    );
    // The duplicate is kept under the first policy by name, whatever the input order.
    let ids: Vec<&str> = compiled.interfaces["db-0"]
        .rules
        .iter()
        .map(|r| r.id.as_str())
        .collect();
    assert!(
        ids[0].starts_with("a-wide-i0-") && ids[1].starts_with("b-narrow-i0-"),
        "{ids:?}"
    );
    assert_eq!(compile(&[wide, narrow], &inventory()), compiled);
}

#[test]
fn peers_resolve_to_the_objects_of_the_policy_network_only() {
    let mut p = policy("to-lb", "db");
    p.spec.policy_types = vec![PolicyType::Egress];
    p.spec.egress = vec![rule(
        vec![
            select(ObjectKind::LoadBalancer, "web"),
            select(ObjectKind::NetworkInterface, "web"),
        ],
        vec![PolicyPort::single(Protocol::Tcp, 443)],
    )];
    let mut inv = inventory();
    inv.interfaces[0].ips.push(ip("fd00::10"));
    let compiled = compile(&[p], &inv);
    assert_eq!(
        bodies(&compiled, "db-0"),
        [
            "egress tcp/443 0.0.0.0/0 -> 10.0.0.20/32",
            "egress tcp/443 0.0.0.0/0 -> 10.0.0.21/32",
            "egress tcp/443 0.0.0.0/0 -> 10.0.0.100/32",
            "egress tcp/443 ::/0 -> fd00::21/128",
        ]
    );
}

#[test]
fn peer_families_the_interface_lacks_are_skipped() {
    let mut p = policy("v4-only", "v6");
    p.spec.ingress = vec![rule(
        vec![block("10.0.0.0/8", &[])],
        vec![PolicyPort::single(Protocol::Tcp, 22)],
    )];
    let mut inv = inventory();
    inv.interfaces
        .push(object("v6-0", &[("app", "v6")], &["fd00::60"]));
    let compiled = compile(&[p.clone()], &inv);
    assert_eq!(bodies(&compiled, "v6-0"), ["ingress tcp/0 ::/128 -> ::/0"]);
    p.spec.ingress[0].peers.push(block("fd00::/8", &[]));
    let compiled = compile(&[p], &inv);
    assert_eq!(
        bodies(&compiled, "v6-0"),
        ["ingress tcp/22 fd00::/8 -> ::/0"]
    );
}

#[test]
fn recompiling_after_label_changes_follows_the_labels() {
    let policies = [example_policy()];
    let before = compile(&policies, &inventory());
    let before_rules = &before.interfaces["db-0"].rules;

    // web-0 stops being a web server: its address leaves db-0's rules, the rest keep their ids.
    let mut inv = inventory();
    inv.interfaces[2]
        .labels
        .insert("app".to_string(), "legacy".to_string());
    let after = compile(&policies, &inv);
    let after_rules = &after.interfaces["db-0"].rules;
    assert_eq!(after_rules.len(), before_rules.len() - 1);
    assert!(after_rules.iter().all(|r| before_rules.contains(r)));
    assert!(!after_rules.iter().any(|r| r.source == net("10.0.0.20/32")));

    // A new web server appears.
    inv.interfaces.push(object(
        "web-2",
        &[("app", "web"), ("tier", "x")],
        &["10.0.0.22"],
    ));
    let grown = compile(&policies, &inv);
    assert!(
        grown.interfaces["db-0"]
            .rules
            .iter()
            .any(|r| r.source == net("10.0.0.22/32"))
    );

    // db-0 stops being a database: no policy selects it, it gets no rules.
    inv.interfaces[0]
        .labels
        .insert("app".to_string(), "cache".to_string());
    let released = compile(&policies, &inv);
    assert_eq!(released.interfaces["db-0"], InterfaceRules::default());
}

#[test]
fn ids_are_dpservice_shaped_unique_and_stable() {
    let long = format!("{}policy", "very-long-name.".repeat(14));
    let mut p = policy(&long, "db");
    p.spec.ingress = vec![
        rule(
            vec![block("10.0.0.0/8", &["10.1.0.0/16"])],
            vec![PolicyPort::single(Protocol::Tcp, 1)],
        );
        12
    ];
    p.spec.ingress[11].ports = vec![PolicyPort::single(Protocol::Tcp, 2)];
    let compiled = compile(&[p.clone(), example_policy()], &inventory());
    let db = &compiled.interfaces["db-0"];
    assert_eq!(db.rules.len(), 8 + 8 + 5);
    let mut ids: Vec<&str> = db.rules.iter().map(|r| r.id.as_str()).collect();
    for id in &ids {
        assert!(!id.is_empty() && id.len() <= MAX_RULE_ID_LEN, "{id}");
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{id}"
        );
    }
    assert!(
        ids[0].starts_with("very-long-name_very-long-name_"),
        "{}",
        ids[0]
    );
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), db.rules.len());

    // Another policy, another interface or another input order leave the ids alone.
    let mut other = policy("unrelated", "web");
    other.spec.ingress = vec![rule(vec![], vec![])];
    let mut inv = inventory();
    inv.interfaces.reverse();
    let again = compile(&[example_policy(), other, p], &inv);
    assert_eq!(again.interfaces["db-0"], *db);
}

#[test]
fn too_many_rules_fail_that_interface_only() {
    let mut p = policy("huge", "db");
    p.spec.ingress = vec![rule(
        (0..40)
            .map(|i| block(&format!("192.168.0.{i}/32"), &[]))
            .collect(),
        (1..=30)
            .map(|port| PolicyPort::single(Protocol::Udp, port))
            .collect(),
    )];
    let compiled = compile(&[p, example_policy()], &inventory());
    assert_eq!(
        compiled.errors["db-0"].to_string(),
        "the policies selecting it (huge, my-network-policy) compile to 1205 firewall rules, \
         more than 1024"
    );
    assert!(!compiled.interfaces.contains_key("db-0"));
    assert_eq!(compiled.interfaces.len(), 2);

    // A single block with many excepts, times many ports, is refused before expanding.
    let mut p = policy("holes", "web");
    let holes: Vec<String> = (0..MAX_EXCEPTS).map(|i| format!("10.0.{i}.1/32")).collect();
    let holes: Vec<&str> = holes.iter().map(String::as_str).collect();
    p.spec.ingress = vec![rule(
        vec![block("0.0.0.0/0", &holes)],
        (1..=16)
            .map(|port| PolicyPort::single(Protocol::Tcp, port))
            .collect(),
    )];
    let compiled = compile(&[p], &inventory());
    assert_eq!(
        compiled.errors["web-0"],
        InterfaceError::TooManyCandidates {
            max: MAX_CANDIDATE_RULES,
            policies: vec!["holes".to_string()]
        }
    );
    assert!(compiled.errors.contains_key("web-1"));
    assert!(compiled.interfaces["db-0"].rules.is_empty());
}

#[test]
fn invalid_or_ambiguous_inputs_are_refused_whole() {
    let mut bad = example_policy();
    bad.spec.ingress[0].ports[0].port = Some(0);
    let err = compile_policies(NET, &[bad.clone()], &inventory()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "policy \"my-network-policy\": spec.ingress[0].ports[0].port: 0 is not a port (1 to \
         65535)"
    );
    // Another network's invalid policy is not this network's problem.
    bad.spec.network_ref = "other-network".to_string();
    assert!(compile_policies(NET, &[bad], &inventory()).is_ok());

    let twice = [example_policy(), example_policy()];
    assert_eq!(
        compile_policies(NET, &twice, &inventory()),
        Err(CompileError::DuplicatePolicy {
            name: "my-network-policy".to_string()
        })
    );
    let mut inv = inventory();
    inv.load_balancers.push(inv.load_balancers[0].clone());
    assert_eq!(
        compile_policies(NET, &[], &inv).unwrap_err().to_string(),
        "LoadBalancer \"web-lb\" is listed twice"
    );
}

#[test]
fn match_expressions_select_targets_and_peers() {
    let mut p = policy("not-db", "db");
    p.spec.network_interface_selector = LabelSelector::everything()
        .with_expression(Requirement::new("app", Operator::NotIn, ["db"]));
    p.spec.ingress = vec![rule(
        vec![PolicyPeer::ObjectSelector(ObjectSelector {
            kind: ObjectKind::NetworkInterface,
            selector: LabelSelector::parse("app in (db)").unwrap(),
        })],
        vec![],
    )];
    let compiled = compile(&[p], &inventory());
    assert_eq!(
        bodies(&compiled, "web-0"),
        ["ingress any 10.0.0.10/32 -> 0.0.0.0/0"]
    );
    assert!(compiled.interfaces["db-0"].rules.is_empty());
}
