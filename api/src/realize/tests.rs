//! Realization of small regions: placement, load-balancer targets, firewall rules, peering.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferrinet_proto::api::v1 as pb;
use ferrinet_proto::node::v1 as node_pb;
use node_pb::object::Object as N;
use proptest::prelude::*;

use super::*;

pub(super) const NS: &str = "t";
pub(super) const TTL: Duration = Duration::from_secs(3600);

pub(super) fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

pub(super) fn meta(ns: &str, name: &str, labels: &[(&str, &str)]) -> Option<pb::ObjectMeta> {
    Some(pb::ObjectMeta {
        namespace: ns.into(),
        name: name.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    })
}

pub(super) fn reference(ns: &str, name: &str) -> Option<pb::ObjectRef> {
    Some(pb::ObjectRef {
        name: name.into(),
        namespace: ns.into(),
    })
}

#[derive(Debug)]
pub(super) struct Region(pub(super) Inventory);

impl Region {
    pub(super) fn new() -> Self {
        let mut inv = Inventory::default();
        for n in ["node-1", "node-2", "node-3"] {
            inv.nodes.insert(
                n.into(),
                pb::Node {
                    metadata: meta("", n, &[]),
                    ..Default::default()
                },
            );
        }
        Self(inv)
    }

    pub(super) fn network(
        &mut self,
        ns: &str,
        name: &str,
        vni: u32,
        cidr: &str,
    ) -> &mut pb::Network {
        let key = ObjKey::new(ns, name);
        self.0.networks.insert(
            key.clone(),
            pb::Network {
                metadata: meta(ns, name, &[]),
                spec: Some(pb::NetworkSpec {
                    subnets: vec![pb::Subnet {
                        cidr: cidr.into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                status: Some(pb::NetworkStatus {
                    vni,
                    ..Default::default()
                }),
            },
        );
        self.0.networks.get_mut(&key).unwrap()
    }

    fn peer(&mut self, ns: &str, name: &str, item: &str, peer: (&str, &str), prefixes: &[&str]) {
        let n = self.0.networks.get_mut(&ObjKey::new(ns, name)).unwrap();
        n.spec.as_mut().unwrap().peerings.push(pb::NetworkPeering {
            name: item.into(),
            network_ref: reference(peer.0, peer.1),
            prefixes: prefixes.iter().map(|p| p.to_string()).collect(),
        });
    }

    pub(super) fn interface(
        &mut self,
        name: &str,
        network: &str,
        node: &str,
        ips: &[&str],
        labels: &[(&str, &str)],
    ) -> &mut pb::NetworkInterface {
        self.interface_in(NS, name, network, node, ips, labels)
    }

    fn interface_in(
        &mut self,
        ns: &str,
        name: &str,
        network: &str,
        node: &str,
        ips: &[&str],
        labels: &[(&str, &str)],
    ) -> &mut pb::NetworkInterface {
        let key = ObjKey::new(ns, name);
        self.0.interfaces.insert(
            key.clone(),
            pb::NetworkInterface {
                metadata: meta(ns, name, labels),
                spec: Some(pb::NetworkInterfaceSpec {
                    network_ref: reference("", network),
                    node_name: node.into(),
                    hostname: name.into(),
                    ..Default::default()
                }),
                status: Some(pb::NetworkInterfaceStatus {
                    ips: ips.iter().map(|i| i.to_string()).collect(),
                    ..Default::default()
                }),
            },
        );
        self.0.interfaces.get_mut(&key).unwrap()
    }

    fn load_balancer(
        &mut self,
        name: &str,
        network: &str,
        selector: &[(&str, &str)],
        ips: &[&str],
        nodes: &[&str],
    ) -> &mut pb::LoadBalancer {
        let key = ObjKey::new(NS, name);
        self.0.load_balancers.insert(
            key.clone(),
            pb::LoadBalancer {
                metadata: meta(NS, name, &[]),
                spec: Some(pb::LoadBalancerSpec {
                    r#type: "Internal".into(),
                    network_ref: reference("", network),
                    network_interface_selector: Some(pb::LabelSelector {
                        match_labels: selector
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .collect(),
                        match_expressions: vec![],
                    }),
                    ports: vec![
                        pb::LoadBalancerPort {
                            protocol: "TCP".into(),
                            port: 80,
                            end_port: 81,
                        },
                        pb::LoadBalancerPort {
                            protocol: "UDP".into(),
                            port: 53,
                            end_port: 0,
                        },
                    ],
                    ..Default::default()
                }),
                status: Some(pb::LoadBalancerStatus {
                    ips: ips.iter().map(|i| i.to_string()).collect(),
                    nodes: nodes.iter().map(|n| n.to_string()).collect(),
                    ..Default::default()
                }),
            },
        );
        self.0.load_balancers.get_mut(&key).unwrap()
    }

    fn policy(&mut self, name: &str, network: &str, target: (&str, &str), from: (&str, &str)) {
        self.0.policies.insert(
            ObjKey::new(NS, name),
            pb::NetworkPolicy {
                metadata: meta(NS, name, &[]),
                spec: Some(pb::NetworkPolicySpec {
                    network_ref: reference("", network),
                    network_interface_selector: Some(pb::LabelSelector {
                        match_labels: [(target.0.to_string(), target.1.to_string())].into(),
                        match_expressions: vec![],
                    }),
                    policy_types: vec!["Ingress".into()],
                    ingress: vec![pb::PolicyRule {
                        peers: vec![pb::PolicyPeer {
                            ip_block: None,
                            object_selector: Some(pb::ObjectSelector {
                                kind: "NetworkInterface".into(),
                                match_labels: [(from.0.to_string(), from.1.to_string())].into(),
                                match_expressions: vec![],
                            }),
                        }],
                        ports: vec![pb::PolicyPort {
                            protocol: "TCP".into(),
                            port: 5432,
                            end_port: 0,
                        }],
                    }],
                    egress: vec![],
                }),
                status: None,
            },
        );
    }

    pub(super) fn realize(&self) -> Realized {
        realize(&self.0, now(), TTL)
    }
}

/// What a node holds, as (kind, name) pairs.
fn held(r: &Realized, node: &str) -> BTreeSet<(node_pb::Kind, String)> {
    r.placed
        .get(node)
        .map(|objects| objects.keys().map(|k| (k.kind, k.name.clone())).collect())
        .unwrap_or_default()
}

fn set(items: &[(node_pb::Kind, &str)]) -> BTreeSet<(node_pb::Kind, String)> {
    items.iter().map(|(k, n)| (*k, n.to_string())).collect()
}

fn get<'a>(r: &'a Realized, node: &str, kind: node_pb::Kind, name: &str) -> &'a node_pb::Object {
    &r.placed[node][&PlacedKey {
        kind,
        name: name.into(),
    }]
}

pub(super) fn iface_spec<'a>(
    r: &'a Realized,
    node: &str,
    name: &str,
) -> &'a node_pb::NetworkInterfaceSpec {
    match &get(r, node, node_pb::Kind::NetworkInterface, name).object {
        Some(N::NetworkInterface(i)) => i.spec.as_ref().unwrap(),
        other => panic!("not an interface: {other:?}"),
    }
}

fn network_spec<'a>(r: &'a Realized, node: &str, name: &str) -> &'a node_pb::NetworkSpec {
    match &get(r, node, node_pb::Kind::Network, name).object {
        Some(N::Network(n)) => n.spec.as_ref().unwrap(),
        other => panic!("not a network: {other:?}"),
    }
}

use node_pb::Kind::{LoadBalancer as LB, Network as NET, NetworkInterface as NI};

#[test]
fn two_networks_on_two_nodes() {
    let mut region = Region::new();
    region.network(NS, "a", 100, "10.0.0.0/24");
    region.network(NS, "b", 200, "10.1.0.0/24");
    region.interface("a1", "a", "node-1", &["10.0.0.5"], &[]);
    region.interface("a2", "a", "node-2", &["10.0.0.6", "fd00::6"], &[]);
    region.interface("b1", "b", "node-2", &["10.1.0.5"], &[]);
    let r = region.realize();
    assert_eq!(
        r.placed.keys().collect::<Vec<_>>(),
        vec!["node-1", "node-2"]
    );
    assert_eq!(held(&r, "node-1"), set(&[(NET, "t_a"), (NI, "t_a1")]));
    assert_eq!(
        held(&r, "node-2"),
        set(&[(NET, "t_a"), (NET, "t_b"), (NI, "t_a2"), (NI, "t_b1")])
    );
    let spec = iface_spec(&r, "node-2", "t_a2");
    assert_eq!(spec.network, "t_a");
    assert_eq!(spec.ips, vec!["10.0.0.6", "fd00::6"]);
    assert_eq!(spec.hostname, "a2");
    assert_eq!(network_spec(&r, "node-2", "t_b").id, 200);
    for objects in r.placed.values() {
        for (key, object) in objects {
            let meta = match &object.object {
                Some(N::Network(o)) => o.metadata.as_ref(),
                Some(N::NetworkInterface(o)) => o.metadata.as_ref(),
                Some(N::LoadBalancer(o)) => o.metadata.as_ref(),
                None => None,
            }
            .unwrap();
            assert_eq!(meta.name, key.name);
            assert_eq!(meta.labels[MANAGED_BY_LABEL], MANAGED_BY_REGION);
            let (kind, source) = parse_source(&meta.labels[SOURCE_LABEL]).unwrap();
            assert_eq!(placed_name(&source.namespace, &source.name), key.name);
            assert_eq!(
                kind,
                match key.kind {
                    NET => pb::Kind::Network,
                    NI => pb::Kind::NetworkInterface,
                    _ => pb::Kind::LoadBalancer,
                }
            );
        }
    }
    assert!(r.interfaces.values().all(|d| d.message.is_empty()));
}

#[test]
fn unrealizable_interfaces_say_why() {
    let mut region = Region::new();
    region.network(NS, "a", 0, "10.0.0.0/24");
    region.network(NS, "b", 200, "10.1.0.0/24");
    region.interface("a1", "a", "node-1", &["10.0.0.5"], &[]);
    region.interface("b1", "b", "", &["10.1.0.5"], &[]);
    region.interface("b2", "b", "node-9", &["10.1.0.6"], &[]);
    region.interface("b3", "b", "node-1", &[], &[]);
    region.interface("c1", "c", "node-1", &["10.2.0.5"], &[]);
    let r = region.realize();
    assert!(r.placed.is_empty(), "{:?}", r.placed);
    let message = |n: &str| r.interfaces[&ObjKey::new(NS, n)].message.clone();
    assert!(message("a1").contains("no VNI yet"));
    assert!(message("b1").contains("nodeName is empty"));
    assert!(message("b2").contains("node-9 is not registered"));
    assert!(message("b3").contains("no addresses"));
    assert!(message("c1").contains("t/c does not exist"));
}

#[test]
fn vip_and_nat_come_from_the_status() {
    let mut region = Region::new();
    region.network(NS, "a", 100, "10.0.0.0/24");
    let i = region.interface("a1", "a", "node-1", &["10.0.0.5"], &[]);
    let status = i.status.as_mut().unwrap();
    status.virtual_ip = "203.0.113.5".into();
    status.nat_ip = "203.0.113.9".into();
    status.nat_port = 1024;
    status.nat_end_port = 3072;
    let i = region.interface("a2", "a", "node-1", &["10.0.0.6"], &[]);
    i.status.as_mut().unwrap().virtual_ip = "2001:db8::5".into();
    let r = region.realize();
    let spec = iface_spec(&r, "node-1", "t_a1");
    assert_eq!(spec.virtual_ip, "203.0.113.5");
    assert_eq!(
        spec.nat,
        Some(node_pb::NatSpec {
            ip: "203.0.113.9".into(),
            port: 1024,
            end_port: 3072
        })
    );
    let spec = iface_spec(&r, "node-1", "t_a2");
    assert_eq!(spec.virtual_ip, "", "node VIPs are IPv4");
    assert!(
        r.interfaces[&ObjKey::new(NS, "a2")]
            .message
            .contains("IPv4 virtual IPs only")
    );
}

#[test]
fn load_balancer_selector_moves_targets() {
    let mut region = Region::new();
    region.network(NS, "a", 100, "10.0.0.0/24");
    region.interface("web", "a", "node-1", &["10.0.0.5"], &[("app", "web")]);
    region.interface("db", "a", "node-2", &["10.0.0.6"], &[("app", "db")]);
    region.load_balancer("lb", "a", &[("app", "web")], &["10.0.0.100"], &["node-3"]);
    let r = region.realize();
    assert_eq!(
        iface_spec(&r, "node-1", "t_web").load_balancer_targets,
        vec!["10.0.0.100/32"]
    );
    assert!(
        iface_spec(&r, "node-2", "t_db")
            .load_balancer_targets
            .is_empty()
    );
    let lb = &r.load_balancers[&ObjKey::new(NS, "lb")];
    assert_eq!(lb.targets, vec![ObjKey::new(NS, "web").to_ref()]);
    assert_eq!(held(&r, "node-3"), set(&[(NET, "t_a"), (LB, "t_lb")]));
    match &get(&r, "node-3", LB, "t_lb").object {
        Some(N::LoadBalancer(l)) => {
            let spec = l.spec.as_ref().unwrap();
            assert_eq!(spec.ip, "10.0.0.100");
            assert_eq!(spec.network, "t_a");
            assert_eq!(spec.r#type, i32::from(node_pb::LoadBalancerType::Internal));
            let ports: Vec<(i32, u32)> = spec.ports.iter().map(|p| (p.protocol, p.port)).collect();
            let (tcp, udp) = (node_pb::Protocol::Tcp as i32, node_pb::Protocol::Udp as i32);
            assert_eq!(ports, vec![(tcp, 80), (tcp, 81), (udp, 53)]);
        }
        other => panic!("not a load balancer: {other:?}"),
    }

    let lb = region
        .0
        .load_balancers
        .get_mut(&ObjKey::new(NS, "lb"))
        .unwrap();
    let selector = lb
        .spec
        .as_mut()
        .unwrap()
        .network_interface_selector
        .as_mut()
        .unwrap();
    selector.match_labels = [("app".to_string(), "db".to_string())].into();
    let r = region.realize();
    assert!(
        iface_spec(&r, "node-1", "t_web")
            .load_balancer_targets
            .is_empty()
    );
    assert_eq!(
        iface_spec(&r, "node-2", "t_db").load_balancer_targets,
        vec!["10.0.0.100/32"]
    );
    let lb = &r.load_balancers[&ObjKey::new(NS, "lb")];
    assert_eq!(lb.targets, vec![ObjKey::new(NS, "db").to_ref()]);
}

#[test]
fn an_unset_selector_selects_nothing() {
    let mut region = Region::new();
    region.network(NS, "a", 100, "10.0.0.0/24");
    region.interface("web", "a", "node-1", &["10.0.0.5"], &[("app", "web")]);
    region.load_balancer("lb", "a", &[], &["10.0.0.100"], &["node-1"]);
    let r = region.realize();
    assert_eq!(
        r.load_balancers[&ObjKey::new(NS, "lb")].targets.len(),
        1,
        "empty: all"
    );
    region
        .0
        .load_balancers
        .get_mut(&ObjKey::new(NS, "lb"))
        .unwrap()
        .spec
        .as_mut()
        .unwrap()
        .network_interface_selector = None;
    let r = region.realize();
    assert!(r.load_balancers[&ObjKey::new(NS, "lb")].targets.is_empty());
}

#[test]
fn dual_stack_load_balancers_have_one_object_per_family() {
    let mut region = Region::new();
    region.network(NS, "a", 100, "10.0.0.0/24");
    region.interface("v4", "a", "node-1", &["10.0.0.5"], &[("app", "web")]);
    region.interface("v6", "a", "node-1", &["fd00::5"], &[("app", "web")]);
    region.load_balancer(
        "lb",
        "a",
        &[("app", "web")],
        &["fd00::100", "10.0.0.100"],
        &["node-2", "node-1"],
    );
    let r = region.realize();
    for node in ["node-1", "node-2"] {
        let lbs: Vec<String> = held(&r, node)
            .into_iter()
            .filter(|(k, _)| *k == LB)
            .map(|(_, n)| n)
            .collect();
        assert_eq!(lbs, vec!["t_lb", "t_lb_6"]);
    }
    assert_eq!(
        iface_spec(&r, "node-1", "t_v4").load_balancer_targets,
        vec!["10.0.0.100/32"]
    );
    assert_eq!(
        iface_spec(&r, "node-1", "t_v6").load_balancer_targets,
        vec!["fd00::100/128"]
    );
}

#[test]
fn policies_compile_to_rules_on_the_selected_interfaces_only() {
    let mut region = Region::new();
    region.network(NS, "a", 100, "10.0.0.0/24");
    region.interface("web", "a", "node-1", &["10.0.0.5"], &[("app", "web")]);
    region.interface("db", "a", "node-2", &["10.0.0.6"], &[("app", "db")]);
    region.policy("db-from-web", "a", ("app", "db"), ("app", "web"));
    let r = region.realize();
    let rules = &iface_spec(&r, "node-2", "t_db").firewall_rules;
    assert_eq!(rules.len(), 1, "{rules:?}");
    let rule = &rules[0];
    assert_eq!(rule.source_prefix, "10.0.0.5/32");
    assert_eq!(rule.destination_prefix, "0.0.0.0/0");
    assert_eq!(rule.direction, i32::from(node_pb::Direction::Ingress));
    assert_eq!(rule.action, i32::from(node_pb::Action::Accept));
    let pm = rule.protocol_match.as_ref().unwrap();
    assert_eq!(pm.protocol, i32::from(node_pb::Protocol::Tcp));
    let ports = pm.port_range.as_ref().unwrap();
    assert_eq!(
        (ports.dst_port, ports.end_dst_port),
        (Some(5432), Some(5432))
    );
    assert!(rule.id.len() <= 63 && !rule.id.is_empty());
    // No policy selects web, so it takes all ingress.
    let ids: Vec<&str> = iface_spec(&r, "node-1", "t_web")
        .firewall_rules
        .iter()
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(ids, vec![ALLOW_ALL_INGRESS_V4]);
    assert_eq!(r.interfaces[&ObjKey::new(NS, "db")].firewall_rules, 1);
    assert_eq!(r.interfaces[&ObjKey::new(NS, "web")].firewall_rules, 1);
    let p = &r.policies[&ObjKey::new(NS, "db-from-web")];
    assert_eq!((p.selected_interfaces, p.message.as_str()), (1, ""));
}

#[test]
fn an_invalid_policy_is_reported_and_not_enforced() {
    let mut region = Region::new();
    region.network(NS, "a", 100, "10.0.0.0/24");
    region.interface("db", "a", "node-2", &["10.0.0.6"], &[("app", "db")]);
    region.policy("bad", "a", ("app", "db"), ("app", "web"));
    let p = region.0.policies.get_mut(&ObjKey::new(NS, "bad")).unwrap();
    p.spec.as_mut().unwrap().ingress[0].ports[0].protocol = "SCTP".into();
    let r = region.realize();
    assert!(r.policies[&ObjKey::new(NS, "bad")].message.contains("SCTP"));
    // Not enforced: db is as open as if no policy selected it.
    let ids: Vec<&str> = iface_spec(&r, "node-2", "t_db")
        .firewall_rules
        .iter()
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(ids, vec![ALLOW_ALL_INGRESS_V4]);
}

fn peered_region(answer: bool) -> Region {
    let mut region = Region::new();
    region.network(NS, "a", 100, "10.0.0.0/24");
    region.network("u", "b", 200, "10.1.0.0/24");
    region.peer(NS, "a", "to-b", ("u", "b"), &["10.0.0.0/25"]);
    if answer {
        region.peer("u", "b", "to-a", (NS, "a"), &[]);
    }
    region.interface("a1", "a", "node-1", &["10.0.0.5"], &[]);
    region.interface_in("u", "b1", "b", "node-2", &["10.1.0.5"], &[]);
    region
}

#[test]
fn a_ready_peering_places_both_networks_on_either_side() {
    let r = peered_region(true).realize();
    let a = &r.networks[&ObjKey::new(NS, "a")];
    assert_eq!(a.peerings[0].state, "Ready");
    assert_eq!(a.peerings[0].peer_vni, 200);
    assert_eq!(a.peerings[0].network, "u/b");
    assert_eq!(a.incoming, vec![ObjKey::new("u", "b").to_ref()]);
    assert!(a.unready_since_unix_ms.is_empty());
    for node in ["node-1", "node-2"] {
        let networks: BTreeSet<(node_pb::Kind, String)> = held(&r, node)
            .into_iter()
            .filter(|(k, _)| *k == NET)
            .collect();
        assert_eq!(networks, set(&[(NET, "t_a"), (NET, "u_b")]), "{node}");
        let a = network_spec(&r, node, "t_a");
        assert_eq!(a.peered_ids, vec![200]);
        assert_eq!(
            a.peered_prefixes,
            vec![node_pb::PeeredPrefix {
                id: 200,
                prefixes: vec!["10.0.0.0/25".into()]
            }],
            "a's filter on what it exports to b"
        );
        let b = network_spec(&r, node, "u_b");
        assert_eq!(b.peered_ids, vec![100]);
        assert!(b.peered_prefixes.is_empty());
    }
    // The peer's Network on this side's node is exactly what the peer's own nodes get.
    assert_eq!(get(&r, "node-1", NET, "u_b"), get(&r, "node-2", NET, "u_b"));
}

#[test]
fn a_pending_peering_places_neither() {
    let r = peered_region(false).realize();
    let a = &r.networks[&ObjKey::new(NS, "a")];
    assert_eq!(a.peerings[0].state, "Pending");
    assert_eq!(a.peerings[0].peer_vni, 0);
    assert!(a.peerings[0].reason.contains("no peering naming"));
    assert_eq!(
        a.unready_since_unix_ms.get("to-b"),
        Some(&peerings::to_unix_ms(now()))
    );
    assert_eq!(held(&r, "node-1"), set(&[(NET, "t_a"), (NI, "t_a1")]));
    assert_eq!(held(&r, "node-2"), set(&[(NET, "u_b"), (NI, "u_b1")]));
    assert!(network_spec(&r, "node-1", "t_a").peered_ids.is_empty());
    assert!(network_spec(&r, "node-2", "u_b").peered_ids.is_empty());
}

#[test]
fn an_unanswered_peering_expires_after_its_ttl() {
    let mut region = peered_region(false);
    let since = peerings::to_unix_ms(now() - TTL - Duration::from_secs(1));
    let a = region.0.networks.get_mut(&ObjKey::new(NS, "a")).unwrap();
    a.status
        .as_mut()
        .unwrap()
        .peering_unready_since_unix_ms
        .insert("to-b".into(), since);
    let r = region.realize();
    let a = &r.networks[&ObjKey::new(NS, "a")];
    assert_eq!(a.expired, vec!["to-b"]);
    assert!(a.peerings.is_empty());
}

#[test]
fn time_converts_both_ways() {
    for ms in [0_i64, 1, -1, 1_700_000_000_123, -86_400_000] {
        assert_eq!(peerings::to_unix_ms(peerings::from_unix_ms(ms)), ms);
    }
}

/// What `realize` gives, rebuilt from `realize_network` of each network, merged.
fn folded(inv: &Inventory) -> Placed {
    let peerings = realize_peerings(inv, now(), TTL);
    let mut out: Placed = BTreeMap::new();
    for key in inv.networks.keys() {
        for (node, objects) in realize_network(inv, &peerings, key).placed {
            for (k, o) in objects {
                let slot = out.entry(node.clone()).or_default().entry(k);
                match slot {
                    std::collections::btree_map::Entry::Vacant(v) => {
                        v.insert(o);
                    }
                    std::collections::btree_map::Entry::Occupied(e) => {
                        assert_eq!(e.get(), &o, "two networks place different objects");
                    }
                }
            }
        }
    }
    out
}

fn arbitrary_region() -> impl Strategy<Value = Region> {
    let networks = prop::collection::vec((0u32..3, any::<bool>()), 3);
    let peerings = prop::collection::vec((0usize..3, 0usize..3), 0..5);
    let interfaces = prop::collection::vec((0usize..3, 0usize..4, 0usize..2, any::<bool>()), 0..8);
    let lbs = prop::collection::vec((0usize..3, 0usize..2, 0usize..4), 0..3);
    (networks, peerings, interfaces, lbs).prop_map(|(networks, peerings, interfaces, lbs)| {
        let mut region = Region::new();
        let names = ["n0", "n1", "n2"];
        for (i, (vni, _)) in networks.iter().enumerate() {
            let vni = if *vni == 0 { 0 } else { 100 + i as u32 };
            region.network(NS, names[i], vni, &format!("10.{i}.0.0/24"));
        }
        for (k, (from, to)) in peerings.iter().enumerate() {
            region.peer(NS, names[*from], &format!("p{k}"), ("", names[*to]), &[]);
        }
        let nodes = ["node-1", "node-2", "node-3", ""];
        let apps = ["web", "db"];
        for (k, (net, node, app, v6)) in interfaces.iter().enumerate() {
            let v4 = format!("10.{net}.0.{}", 10 + k);
            let v6addr = format!("fd0{net}::{}", 10 + k);
            let ips: Vec<&str> = if *v6 {
                vec![v4.as_str(), v6addr.as_str()]
            } else {
                vec![v4.as_str()]
            };
            region.interface(
                &format!("i{k}"),
                names[*net],
                nodes[*node],
                &ips,
                &[("app", apps[*app])],
            );
        }
        for (k, (net, app, node)) in lbs.iter().enumerate() {
            let ip = format!("10.{net}.0.{}", 200 + k);
            region.load_balancer(
                &format!("lb{k}"),
                names[*net],
                &[("app", apps[*app])],
                &[ip.as_str()],
                &[nodes[*node]],
            );
        }
        region
    })
}

proptest! {
    #[test]
    fn realization_is_consistent(region in arbitrary_region()) {
        let r = region.realize();
        prop_assert_eq!(&r, &region.realize(), "deterministic");
        prop_assert_eq!(&r.placed, &folded(&region.0), "realize is the fold of realize_network");
        for (node, objects) in &r.placed {
            let used: BTreeSet<&str> = objects
                .values()
                .filter_map(|o| match &o.object {
                    Some(N::NetworkInterface(i)) => i.spec.as_ref().map(|s| s.network.as_str()),
                    Some(N::LoadBalancer(l)) => l.spec.as_ref().map(|s| s.network.as_str()),
                    _ => None,
                })
                .collect();
            for (key, object) in objects {
                prop_assert!(key.name.len() <= 63 && !key.name.is_empty());
                let network = match &object.object {
                    Some(N::NetworkInterface(i)) => i.spec.as_ref().map(|s| s.network.clone()),
                    Some(N::LoadBalancer(l)) => l.spec.as_ref().map(|s| s.network.clone()),
                    _ => None,
                };
                if let Some(network) = network {
                    let needed = PlacedKey { kind: NET, name: network };
                    prop_assert!(objects.contains_key(&needed), "{node} lacks {:?}", needed);
                }
                if let Some(N::Network(n)) = &object.object
                    && used.contains(key.name.as_str())
                {
                    // Every peer of a network in use here is held here too.
                    let ids: BTreeSet<u32> = objects
                        .values()
                        .filter_map(|o| match &o.object {
                            Some(N::Network(n)) => n.spec.as_ref().map(|s| s.id),
                            _ => None,
                        })
                        .collect();
                    for id in &n.spec.as_ref().unwrap().peered_ids {
                        prop_assert!(ids.contains(id), "{node}: peer {id} not held");
                    }
                }
            }
        }
    }
}
