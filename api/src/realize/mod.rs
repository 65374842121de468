//! Realization: what each node must hold, computed from the region's objects.
//!
//! The region actor allocates every value that must be unique (VNIs, addresses, virtual IPs,
//! NAT slices, load-balancer addresses and nodes) and writes it into the objects' statuses;
//! this module derives everything that follows from them, as a pure function of the
//! [`Inventory`] (and, for peering TTLs, of the time passed in):
//!
//! - the peering state of every network ([`realize_peerings`]);
//! - per network ([`realize_network`]) the node objects (`ferrinet.node.v1`) to place on each
//!   node: a NetworkInterface per realized interface on its node, a LoadBalancer per address of
//!   each load balancer on each of its nodes, and on every node that hosts either, the node
//!   Network of the network and of each Ready peer (the node installs a peer's routes only if it
//!   knows the peer's Network);
//! - the statuses that follow (firewall rule counts, load-balancer targets, policy selections,
//!   and why an object is not realized).
//!
//! An interface's firewall rules are what the valid policies selecting it allow; one that no
//! valid policy isolates for ingress also gets allow-all ingress rules
//! ([`ALLOW_ALL_INGRESS_V4`], [`ALLOW_ALL_INGRESS_V6`]), since the node lets nothing in without
//! an ingress rule.
//!
//! Placed objects are named with [`placed_name`] and carry [`MANAGED_BY_LABEL`] and
//! [`SOURCE_LABEL`]. Everything is in BTreeMaps and sorted vectors, so the caller can diff two
//! results directly and push only the difference.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use ferrinet_proto::api::v1 as pb;
use ferrinet_proto::node::v1 as node_pb;

mod firewall;
mod names;
mod network;
mod peerings;

#[cfg(test)]
mod firewall_tests;
#[cfg(test)]
mod names_tests;
#[cfg(test)]
mod tests;

pub use firewall::{ALLOW_ALL_INGRESS_V4, ALLOW_ALL_INGRESS_V6};
pub use names::{
    MANAGED_BY_LABEL, MANAGED_BY_REGION, SOURCE_LABEL, parse_source, placed_name, source_label,
};
pub use network::realize_network;
pub use peerings::{NetworkDerived, realize_peerings};

use crate::resources::ObjKey;

/// The region's objects as stored (spec and status), by key; nodes by name.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// Networks.
    pub networks: BTreeMap<ObjKey, pb::Network>,
    /// NetworkInterfaces.
    pub interfaces: BTreeMap<ObjKey, pb::NetworkInterface>,
    /// VirtualIPs.
    pub virtual_ips: BTreeMap<ObjKey, pb::VirtualIp>,
    /// PublicPrefixes.
    pub public_prefixes: BTreeMap<ObjKey, pb::PublicPrefix>,
    /// NATGateways.
    pub nat_gateways: BTreeMap<ObjKey, pb::NatGateway>,
    /// LoadBalancers.
    pub load_balancers: BTreeMap<ObjKey, pb::LoadBalancer>,
    /// NetworkPolicies.
    pub policies: BTreeMap<ObjKey, pb::NetworkPolicy>,
    /// Nodes, by name.
    pub nodes: BTreeMap<String, pb::Node>,
}

/// A placed object's identity on its node: the node's kind and the object's name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PlacedKey {
    /// The node object's kind.
    pub kind: node_pb::Kind,
    /// `metadata.name` of the node object.
    pub name: String,
}

impl PlacedKey {
    /// The key of a node object; `None` when it holds no object.
    pub fn of(object: &node_pb::Object) -> Option<Self> {
        use node_pb::object::Object as O;
        let (kind, meta) = match object.object.as_ref()? {
            O::Network(o) => (node_pb::Kind::Network, o.metadata.as_ref()),
            O::NetworkInterface(o) => (node_pb::Kind::NetworkInterface, o.metadata.as_ref()),
            O::LoadBalancer(o) => (node_pb::Kind::LoadBalancer, o.metadata.as_ref()),
        };
        Some(Self {
            kind,
            name: meta.map(|m| m.name.clone()).unwrap_or_default(),
        })
    }
}

/// Node name -> the objects placed on it.
pub type Placed = BTreeMap<String, BTreeMap<PlacedKey, node_pb::Object>>;

/// What realization says about an interface.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InterfaceDerived {
    /// `status.firewall_rules`: the rules placed on its node, compiled from the policies
    /// selecting it plus the allow-all ingress rules when no policy isolates it for ingress.
    pub firewall_rules: u32,
    /// `status.message`: why it, or a part of it, is not realized; "" when it is.
    pub message: String,
}

/// What realization says about a load balancer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LoadBalancerDerived {
    /// `status.targets`: the interfaces its selector selects, sorted, namespaces spelled out.
    pub targets: Vec<pb::ObjectRef>,
    /// `status.message`: why it, or a part of it, is not realized; "" when it is.
    pub message: String,
}

/// What realization says about a network policy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PolicyDerived {
    /// `status.selected_interfaces`.
    pub selected_interfaces: u32,
    /// `status.message`: why it is not enforced; "" when it is.
    pub message: String,
}

/// The node objects and derived statuses of one network.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NetworkRealized {
    /// Node name -> placed objects.
    pub placed: Placed,
    /// The network's interfaces.
    pub interfaces: BTreeMap<ObjKey, InterfaceDerived>,
    /// The network's load balancers.
    pub load_balancers: BTreeMap<ObjKey, LoadBalancerDerived>,
    /// The network's policies.
    pub policies: BTreeMap<ObjKey, PolicyDerived>,
}

/// The whole region: every network's peering state and realization.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Realized {
    /// Each network's peering state.
    pub networks: BTreeMap<ObjKey, NetworkDerived>,
    /// Node name -> placed objects, of every network.
    pub placed: Placed,
    /// Every interface.
    pub interfaces: BTreeMap<ObjKey, InterfaceDerived>,
    /// Every load balancer.
    pub load_balancers: BTreeMap<ObjKey, LoadBalancerDerived>,
    /// Every policy.
    pub policies: BTreeMap<ObjKey, PolicyDerived>,
}

/// The whole region at `now`: [`realize_peerings`], then [`realize_network`] for every network,
/// merged. Interfaces, load balancers and policies no network realizes (their network does not
/// exist) are listed with the reason. For tests and start-up; on a change the caller realizes
/// the networks it touched.
pub fn realize(inv: &Inventory, now: SystemTime, ttl: Duration) -> Realized {
    let networks = realize_peerings(inv, now, ttl);
    let mut out = Realized::default();
    let mut keys: Vec<ObjKey> = inv.networks.keys().cloned().collect();
    let referenced =
        |own: &ObjKey, r: Option<&pb::ObjectRef>| r.map(|r| ObjKey::resolve(r, &own.namespace));
    keys.extend(
        inv.interfaces.iter().filter_map(|(k, i)| {
            referenced(k, i.spec.as_ref().and_then(|s| s.network_ref.as_ref()))
        }),
    );
    keys.extend(
        inv.load_balancers.iter().filter_map(|(k, l)| {
            referenced(k, l.spec.as_ref().and_then(|s| s.network_ref.as_ref()))
        }),
    );
    keys.extend(
        inv.policies.iter().filter_map(|(k, p)| {
            referenced(k, p.spec.as_ref().and_then(|s| s.network_ref.as_ref()))
        }),
    );
    keys.sort();
    keys.dedup();
    for key in &keys {
        let realized = realize_network(inv, &networks, key);
        for (node, objects) in realized.placed {
            let on_node = out.placed.entry(node).or_default();
            for (k, o) in objects {
                // A peer's Network is placed by both sides, identically.
                on_node.entry(k).or_insert(o);
            }
        }
        out.interfaces.extend(realized.interfaces);
        out.load_balancers.extend(realized.load_balancers);
        out.policies.extend(realized.policies);
    }
    let unrealized = |what: &str| format!("not realized: {what}");
    for key in inv.interfaces.keys() {
        out.interfaces
            .entry(key.clone())
            .or_insert_with(|| InterfaceDerived {
                message: unrealized("spec.networkRef names no network of its namespace"),
                ..Default::default()
            });
    }
    for key in inv.load_balancers.keys() {
        out.load_balancers
            .entry(key.clone())
            .or_insert_with(|| LoadBalancerDerived {
                message: unrealized("spec.networkRef names no network of its namespace"),
                ..Default::default()
            });
    }
    for key in inv.policies.keys() {
        out.policies
            .entry(key.clone())
            .or_insert_with(|| PolicyDerived {
                message: unrealized("spec.networkRef names no network of its namespace"),
                ..Default::default()
            });
    }
    out.networks = networks;
    out
}
