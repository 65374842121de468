//! [`realize_network`]: the node objects of one network (its interfaces, its load balancers,
//! its node Network and those of its Ready peers) and the statuses that follow from them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferrinet_proto::api::v1 as pb;
use ferrinet_proto::node::v1 as node_pb;
use ipnet::IpNet;

use super::firewall::{self, parsed_ips};
use super::names::{placed_metadata, placed_name, placed_name_with_suffix};
use super::peerings::vni_of;
use super::{
    InterfaceDerived, Inventory, LoadBalancerDerived, NetworkDerived, NetworkRealized, PlacedKey,
};
use crate::resources::{LbProtocol, ObjKey, load_balancer_ports, selector};
use crate::selector::{LabelSelector, Labels};

/// A load balancer's interface selector: `None` when unset (selecting nothing), `Err` when it
/// does not convert (stored objects were validated, but the rules may have changed since).
type LbSelector = Result<Option<LabelSelector>, String>;

fn selects(selector: &LbSelector, labels: &Labels) -> bool {
    matches!(selector, Ok(Some(s)) if s.matches(labels))
}

/// The suffix of the IPv6 node LoadBalancer of a dual-stack load balancer.
const IPV6_SUFFIX: &str = "_6";

/// The objects of `map` in `network`'s namespace whose reference names `network`.
fn members<'a, T>(
    map: &'a BTreeMap<ObjKey, T>,
    network: &ObjKey,
    reference: impl Fn(&T) -> Option<&pb::ObjectRef>,
) -> Vec<(&'a ObjKey, &'a T)> {
    let start = ObjKey::new(network.namespace.clone(), String::new());
    map.range(start..)
        .take_while(|(k, _)| k.namespace == network.namespace)
        .filter(|(k, v)| reference(v).is_some_and(|r| ObjKey::resolve(r, &k.namespace) == *network))
        .collect()
}

fn labels_of(meta: Option<&pb::ObjectMeta>) -> Labels {
    meta.map(|m| {
        m.labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    })
    .unwrap_or_default()
}

/// Messages of one object, joined for its status.
#[derive(Default)]
struct Notes(Vec<String>);

impl Notes {
    fn add(&mut self, message: impl Into<String>) {
        self.0.push(message.into());
    }

    fn joined(self) -> String {
        self.0.join("; ")
    }
}

/// The node objects and derived statuses of the network `network`: its interfaces, load
/// balancers and policies are the objects of its namespace that reference it. An object that
/// cannot be realized says why in its message; it never keeps the others from being placed.
pub fn realize_network(
    inv: &Inventory,
    peerings: &BTreeMap<ObjKey, NetworkDerived>,
    network: &ObjKey,
) -> NetworkRealized {
    let interfaces = members(&inv.interfaces, network, |i| {
        i.spec.as_ref().and_then(|s| s.network_ref.as_ref())
    });
    let load_balancers = members(&inv.load_balancers, network, |l| {
        l.spec.as_ref().and_then(|s| s.network_ref.as_ref())
    });
    let policies = members(&inv.policies, network, |p| {
        p.spec.as_ref().and_then(|s| s.network_ref.as_ref())
    });
    let mut out = NetworkRealized::default();
    let rules = firewall::compile(&network.name, &interfaces, &load_balancers, &policies);
    out.policies = rules.policies;

    let vni = vni_of(inv, network);
    let blocked = if !inv.networks.contains_key(network) {
        Some(format!("network {network} does not exist"))
    } else if vni == 0 {
        Some(format!("network {network} has no VNI yet"))
    } else {
        None
    };

    if let Some(why) = &blocked {
        for derived in out.policies.values_mut().filter(|d| d.message.is_empty()) {
            derived.message = why.clone();
        }
    }

    let selectors: Vec<(&ObjKey, &pb::LoadBalancer, LbSelector)> = load_balancers
        .iter()
        .map(|(k, l)| {
            let sel = l
                .spec
                .as_ref()
                .and_then(|s| s.network_interface_selector.as_ref());
            // As in Kubernetes, an unset selector selects nothing, an empty one everything.
            let sel = sel
                .map(|s| selector(s, "spec.networkInterfaceSelector"))
                .transpose()
                .map_err(|e| e.to_string());
            (*k, *l, sel)
        })
        .collect();

    for (key, iface) in &interfaces {
        let mut notes = Notes::default();
        let labels = labels_of(iface.metadata.as_ref());
        let compiled = rules.interfaces.get(&key.name);
        let firewall_rules = match compiled {
            Some(Ok(r)) => u32::try_from(r.len()).unwrap_or(u32::MAX),
            _ => 0,
        };
        match &blocked {
            Some(why) => notes.add(why.clone()),
            None => {
                let targets = lb_targets(&selectors, &labels, iface);
                if let Some((node, object)) =
                    interface_object(inv, network, key, iface, targets, compiled, &mut notes)
                {
                    place(&mut out, node, object);
                }
            }
        }
        out.interfaces.insert(
            (*key).clone(),
            InterfaceDerived {
                firewall_rules,
                message: notes.joined(),
            },
        );
    }

    for (key, lb, selector) in &selectors {
        let mut notes = Notes::default();
        let targets = match selector {
            Ok(_) => interfaces
                .iter()
                .filter(|(_, i)| selects(selector, &labels_of(i.metadata.as_ref())))
                .map(|(k, _)| k.to_ref())
                .collect(),
            Err(e) => {
                notes.add(format!("no targets: {e}"));
                Vec::new()
            }
        };
        match &blocked {
            Some(why) => notes.add(why.clone()),
            None => {
                for (node, object) in load_balancer_objects(inv, network, key, lb, &mut notes) {
                    place(&mut out, node, object);
                }
            }
        }
        out.load_balancers.insert(
            (*key).clone(),
            LoadBalancerDerived {
                targets,
                message: notes.joined(),
            },
        );
    }

    let nodes: Vec<String> = out.placed.keys().cloned().collect();
    let mut networks = vec![network.clone()];
    networks.extend(
        ready_peers(inv, peerings, network)
            .into_iter()
            .map(|(k, _)| k),
    );
    for key in &networks {
        if let Some(object) = node_network(inv, peerings, key) {
            for node in &nodes {
                place(&mut out, node.clone(), object.clone());
            }
        }
    }
    out
}

fn place(out: &mut NetworkRealized, node: String, object: node_pb::Object) {
    if let Some(key) = PlacedKey::of(&object) {
        out.placed.entry(node).or_default().insert(key, object);
    }
}

/// The host prefixes of the load balancers selecting an interface, of the families the
/// interface has (a VIP of a family it has no address of cannot reach it), sorted.
fn lb_targets(
    selectors: &[(&ObjKey, &pb::LoadBalancer, LbSelector)],
    labels: &Labels,
    iface: &pb::NetworkInterface,
) -> Vec<String> {
    let own = parsed_ips(
        iface
            .status
            .as_ref()
            .map(|s| s.ips.as_slice())
            .unwrap_or_default(),
    );
    let mut out = BTreeSet::new();
    for (_, lb, selector) in selectors {
        if !selects(selector, labels) {
            continue;
        }
        let ips = lb
            .status
            .as_ref()
            .map(|s| s.ips.as_slice())
            .unwrap_or_default();
        for ip in parsed_ips(ips) {
            if own.iter().any(|o| o.is_ipv4() == ip.is_ipv4()) {
                out.insert(IpNet::from(ip));
            }
        }
    }
    out.iter().map(ToString::to_string).collect()
}

/// The node NetworkInterface of `iface` and its node, or `None` (with the reason in `notes`).
fn interface_object(
    inv: &Inventory,
    network: &ObjKey,
    key: &ObjKey,
    iface: &pb::NetworkInterface,
    load_balancer_targets: Vec<String>,
    rules: Option<&Result<Vec<node_pb::FirewallRule>, String>>,
    notes: &mut Notes,
) -> Option<(String, node_pb::Object)> {
    let spec = iface.spec.clone().unwrap_or_default();
    let status = iface.status.clone().unwrap_or_default();
    if spec.node_name.is_empty() {
        notes.add("spec.nodeName is empty: the interface is on no node");
        return None;
    }
    if !inv.nodes.contains_key(&spec.node_name) {
        notes.add(format!("node {} is not registered", spec.node_name));
        return None;
    }
    let mut ips: Vec<IpAddr> = Vec::with_capacity(status.ips.len());
    for text in &status.ips {
        match text.parse::<IpAddr>() {
            Ok(ip) => ips.push(ip),
            Err(_) => notes.add(format!("status.ips has {text:?}, which is not an address")),
        }
    }
    ips.sort_by_key(|ip| (ip.is_ipv6(), *ip));
    if ips.is_empty() {
        notes.add("no addresses allocated yet");
        return None;
    }
    let virtual_ip = match status.virtual_ip.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip.to_string(),
        Ok(IpAddr::V6(ip)) => {
            notes.add(format!(
                "virtual IP {ip} is not placed: dpservice has IPv4 virtual IPs only"
            ));
            String::new()
        }
        Err(_) => String::new(),
    };
    let nat = nat_spec(&status, &virtual_ip, notes);
    let firewall_rules = match rules {
        Some(Ok(r)) => r.clone(),
        Some(Err(e)) => {
            notes.add(format!("no firewall rules: {e}"));
            Vec::new()
        }
        None => Vec::new(),
    };
    let object = node_pb::NetworkInterface {
        metadata: Some(placed_metadata(
            placed_name(&key.namespace, &key.name),
            pb::Kind::NetworkInterface,
            key,
        )),
        spec: Some(node_pb::NetworkInterfaceSpec {
            network: placed_name(&network.namespace, &network.name),
            ips: ips.iter().map(ToString::to_string).collect(),
            virtual_ip,
            nat,
            prefixes: spec.prefixes,
            load_balancer_targets,
            firewall_rules,
            metering_rate: spec.metering_rate,
            hostname: spec.hostname,
        }),
        status: None,
    };
    Some((
        spec.node_name,
        node_pb::Object {
            object: Some(node_pb::object::Object::NetworkInterface(object)),
        },
    ))
}

/// The NAT of an interface's status, when it has one the node takes: an IPv4 address other
/// than the virtual IP and a slice `[port, end_port)` within 16 bits.
fn nat_spec(
    status: &pb::NetworkInterfaceStatus,
    virtual_ip: &str,
    notes: &mut Notes,
) -> Option<node_pb::NatSpec> {
    if status.nat_ip.is_empty() {
        return None;
    }
    let ip = match status.nat_ip.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip.to_string(),
        _ => {
            notes.add(format!(
                "NAT IP {:?} is not placed: not an IPv4 address",
                status.nat_ip
            ));
            return None;
        }
    };
    let ports_ok = status.nat_port < status.nat_end_port && status.nat_end_port <= 65535;
    if !ports_ok || ip == virtual_ip {
        notes.add(format!(
            "NAT {ip}:{}-{} is not placed: the node takes a slice port < endPort <= 65535 on an \
             address other than the virtual IP",
            status.nat_port, status.nat_end_port
        ));
        return None;
    }
    Some(node_pb::NatSpec {
        ip,
        port: status.nat_port,
        end_port: status.nat_end_port,
    })
}

/// The node LoadBalancers of `lb` on each of its registered nodes: one per address, the IPv6
/// one of a dual-stack load balancer named with a `_6` suffix.
fn load_balancer_objects(
    inv: &Inventory,
    network: &ObjKey,
    key: &ObjKey,
    lb: &pb::LoadBalancer,
    notes: &mut Notes,
) -> Vec<(String, node_pb::Object)> {
    let spec = lb.spec.clone().unwrap_or_default();
    let status = lb.status.clone().unwrap_or_default();
    let kind = match spec.r#type.as_str() {
        "Internal" => node_pb::LoadBalancerType::Internal,
        "Public" => node_pb::LoadBalancerType::Public,
        other => {
            notes.add(format!(
                "not placed: type {other:?} is not Public or Internal"
            ));
            return Vec::new();
        }
    };
    let ports = match load_balancer_ports(&spec.ports) {
        Ok(p) => p,
        Err(e) => {
            notes.add(format!("not placed: {e}"));
            return Vec::new();
        }
    };
    let mut ips: Vec<IpAddr> = parsed_ips(&status.ips);
    ips.sort_by_key(|ip| (ip.is_ipv6(), *ip));
    ips.dedup();
    if ips.is_empty() {
        notes.add("no addresses allocated yet");
        return Vec::new();
    }
    if status.nodes.is_empty() {
        notes.add("not placed on any node yet");
    }
    let dual = ips.iter().any(IpAddr::is_ipv4) && ips.iter().any(IpAddr::is_ipv6);
    let ports: Vec<node_pb::LoadBalancerPort> = ports
        .iter()
        .map(|(protocol, port)| node_pb::LoadBalancerPort {
            protocol: match protocol {
                LbProtocol::Tcp => node_pb::Protocol::Tcp,
                LbProtocol::Udp => node_pb::Protocol::Udp,
            }
            .into(),
            port: u32::from(*port),
        })
        .collect();
    let objects: Vec<node_pb::Object> = ips
        .iter()
        .map(|ip| {
            let suffix = if dual && ip.is_ipv6() {
                IPV6_SUFFIX
            } else {
                ""
            };
            let name = placed_name_with_suffix(&key.namespace, &key.name, suffix);
            node_pb::Object {
                object: Some(node_pb::object::Object::LoadBalancer(
                    node_pb::LoadBalancer {
                        metadata: Some(placed_metadata(name, pb::Kind::LoadBalancer, key)),
                        spec: Some(node_pb::LoadBalancerSpec {
                            network: placed_name(&network.namespace, &network.name),
                            r#type: kind.into(),
                            ip: ip.to_string(),
                            ports: ports.clone(),
                        }),
                        status: None,
                    },
                )),
            }
        })
        .collect();
    let mut nodes: Vec<&String> = status.nodes.iter().collect();
    nodes.sort();
    nodes.dedup();
    let mut out = Vec::new();
    for node in nodes {
        if !inv.nodes.contains_key(node) {
            notes.add(format!("node {node} is not registered"));
            continue;
        }
        out.extend(objects.iter().map(|o| (node.clone(), o.clone())));
    }
    out
}

/// The Ready peerings of `network` whose peer has a VNI: the peer and this network's item.
fn ready_peers<'a>(
    inv: &'a Inventory,
    peerings: &BTreeMap<ObjKey, NetworkDerived>,
    network: &ObjKey,
) -> Vec<(ObjKey, &'a pb::NetworkPeering)> {
    let Some(spec) = inv.networks.get(network).and_then(|n| n.spec.as_ref()) else {
        return Vec::new();
    };
    let Some(derived) = peerings.get(network) else {
        return Vec::new();
    };
    let mut out: Vec<(ObjKey, &pb::NetworkPeering)> = derived
        .peerings
        .iter()
        .filter(|s| s.state == "Ready")
        .filter_map(|s| {
            let item = spec.peerings.iter().find(|p| p.name == s.name)?;
            let peer = ObjKey::resolve(item.network_ref.as_ref()?, &network.namespace);
            (vni_of(inv, &peer) != 0).then_some((peer, item))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.dedup_by(|a, b| a.0 == b.0);
    out
}

/// The node Network of `network`, exactly as every node that needs it gets it (its own nodes
/// and those of its Ready peers); `None` while it has no VNI.
pub(crate) fn node_network(
    inv: &Inventory,
    peerings: &BTreeMap<ObjKey, NetworkDerived>,
    network: &ObjKey,
) -> Option<node_pb::Object> {
    let vni = vni_of(inv, network);
    if vni == 0 {
        return None;
    }
    let mut peered_ids = BTreeSet::new();
    let mut peered_prefixes = BTreeMap::new();
    for (peer, item) in ready_peers(inv, peerings, network) {
        let peer_vni = vni_of(inv, &peer);
        if peer_vni == vni || !peered_ids.insert(peer_vni) {
            continue;
        }
        if !item.prefixes.is_empty() {
            let prefixes: BTreeSet<IpNet> = item
                .prefixes
                .iter()
                .filter_map(|t| t.parse::<IpNet>().ok())
                .map(|n| n.trunc())
                .collect();
            peered_prefixes.insert(peer_vni, prefixes);
        }
    }
    let object = node_pb::Network {
        metadata: Some(placed_metadata(
            placed_name(&network.namespace, &network.name),
            pb::Kind::Network,
            network,
        )),
        spec: Some(node_pb::NetworkSpec {
            id: vni,
            peered_ids: peered_ids.into_iter().collect(),
            peered_prefixes: peered_prefixes
                .into_iter()
                .map(|(id, prefixes)| node_pb::PeeredPrefix {
                    id,
                    prefixes: prefixes.iter().map(ToString::to_string).collect(),
                })
                .collect(),
        }),
        status: None,
    };
    Some(node_pb::Object {
        object: Some(node_pb::object::Object::Network(object)),
    })
}
