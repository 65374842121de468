//! Admin API objects as printable manifest documents ([`from_proto`]): what `get -o json|yaml`
//! and `watch -o json` print, and what `apply -f` reads back (the status is ignored there).
//!
//! `ipFamilies` and `ipFamily` are derived from the addresses; the status is printed in the same
//! camelCase style as the spec; fields the node sets are left out while zero or empty.
//! `nodeName` is not part of the API and is not printed.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ferrinet_proto::node::v1 as pb;
use ipnet::IpNet;
use pb::object::Object as O;
use serde::Serialize;

use super::API_VERSION_FERRINET;
use super::spec::{
    Action, Direction, FirewallRule, IcmpMatch, IpFamily, LoadBalancerPort, LoadBalancerSpec,
    LoadBalancerType, LocalRef, MeteringRate, Nat, NetworkInterfaceSpec, NetworkSpec, PeeredPrefix,
    PortMatch, Protocol, ProtocolMatch,
};
use crate::ctl::output::rfc3339;

/// An object as printed by `get -o json|yaml`: a document `apply -f` accepts (the status is
/// ignored there).
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum ObjectDoc {
    /// A network.
    Network(Box<Doc<NetworkSpec, NetworkStatusDoc>>),
    /// An interface.
    NetworkInterface(Box<Doc<NetworkInterfaceSpec, NetworkInterfaceStatusDoc>>),
    /// A load balancer.
    LoadBalancer(Box<Doc<LoadBalancerSpec, LoadBalancerStatusDoc>>),
}

/// A printed document.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Doc<S, T> {
    /// Always [`API_VERSION_FERRINET`].
    pub api_version: &'static str,
    /// `Network`, `NetworkInterface` or `LoadBalancer`.
    pub kind: &'static str,
    /// Metadata.
    pub metadata: MetadataDoc,
    /// The spec.
    pub spec: S,
    /// The status, if the node sent one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<T>,
}

/// Printed metadata (fields set by the node are left out while 0).
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetadataDoc {
    /// Name.
    pub name: String,
    /// Labels.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// A string of digits, as Kubernetes prints it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// Increases with every spec change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    /// RFC 3339, UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
}

/// A condition as printed.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConditionDoc {
    /// Feature.
    #[serde(rename = "type")]
    pub kind: String,
    /// Programmed / announced.
    pub ok: bool,
    /// CamelCase reason.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Details.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// RFC 3339, UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

/// A network's status as printed.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkStatusDoc {
    /// `Pending`, `Ready`, `Error`, `Deleting`.
    pub phase: &'static str,
    /// Conditions.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ConditionDoc>,
    /// One per peered VNI.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub peerings: Vec<PeeringDoc>,
    /// Interfaces and load balancers of this node in the network.
    pub users: u32,
    /// The generation the status describes.
    pub observed_generation: u64,
    /// The VNI's table on this node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routes: Option<NetworkRoutesDoc>,
}

/// A network's table on this node as printed.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkRoutesDoc {
    /// `Waiting`, `Complete`, `NoRouteServers` or `NotInUse`.
    pub subscription: String,
    /// Routes of other nodes.
    pub standard: RouteCountsDoc,
    /// Neighbour NATs.
    pub nat: RouteCountsDoc,
    /// Targets of this node's load balancers.
    pub load_balancer_targets: RouteCountsDoc,
    /// Routes of peered VNIs.
    pub peered: RouteCountsDoc,
    /// Next hop of the default routes.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub router: String,
    /// The last failed write.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub last_error: String,
}

/// Route counts as printed.
#[derive(Clone, Debug, Serialize)]
pub struct RouteCountsDoc {
    /// Received.
    pub learned: u32,
    /// Held by the dataplane.
    pub installed: u32,
    /// Writes that failed in the last pass.
    pub failed: u32,
}

fn counts(c: Option<&pb::RouteCounts>) -> RouteCountsDoc {
    let c = c.copied().unwrap_or_default();
    RouteCountsDoc {
        learned: c.learned,
        installed: c.installed,
        failed: c.failed,
    }
}

/// A peering's state as printed.
#[derive(Clone, Debug, Serialize)]
pub struct PeeringDoc {
    /// Peered VNI.
    pub id: u32,
    /// `Pending`, `Ready` or `Error`.
    pub state: String,
    /// Details.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// An interface's status as printed.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkInterfaceStatusDoc {
    /// `Pending`, `Ready`, `Error`, `Deleting`.
    pub phase: &'static str,
    /// Conditions.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ConditionDoc>,
    /// The network's VNI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vni: Option<u32>,
    /// Underlay IPv6 address.
    #[serde(rename = "underlayIP", skip_serializing_if = "Option::is_none")]
    pub underlay_ip: Option<String>,
    /// VF mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pci_address: Option<PciAddressDoc>,
    /// TAP mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tap_device: Option<String>,
    /// dpservice's port name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,
    /// The virtual IP's underlay address.
    #[serde(rename = "virtualIPUnderlay", skip_serializing_if = "Option::is_none")]
    pub virtual_ip_underlay: Option<String>,
    /// The NAT IP's underlay address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nat_underlay: Option<String>,
    /// The generation the status describes.
    pub observed_generation: u64,
}

/// A PCI address as printed (metalnet's shape).
#[derive(Clone, Debug, Serialize)]
pub struct PciAddressDoc {
    /// Domain (`0000`).
    pub domain: String,
    /// Bus (`3b`).
    pub bus: String,
    /// Device (`00`).
    pub slot: String,
    /// Function (`2`).
    pub function: String,
}

/// A load balancer's status as printed.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerStatusDoc {
    /// `Pending`, `Ready`, `Error`, `Deleting`.
    pub phase: &'static str,
    /// Conditions.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ConditionDoc>,
    /// The network's VNI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vni: Option<u32>,
    /// Underlay IPv6 address.
    #[serde(rename = "underlayIP", skip_serializing_if = "Option::is_none")]
    pub underlay_ip: Option<String>,
    /// Installed targets.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    /// The generation the status describes.
    pub observed_generation: u64,
}

/// A phase's printed name.
pub fn phase_name(phase: i32) -> &'static str {
    match pb::Phase::try_from(phase) {
        Ok(pb::Phase::Pending) => "Pending",
        Ok(pb::Phase::Ready) => "Ready",
        Ok(pb::Phase::Error) => "Error",
        Ok(pb::Phase::Deleting) => "Deleting",
        Ok(pb::Phase::Unspecified) | Err(_) => "Unknown",
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

fn non_zero<T: Default + PartialEq>(v: T) -> Option<T> {
    (v != T::default()).then_some(v)
}

fn metadata_doc(m: Option<&pb::Metadata>) -> MetadataDoc {
    let Some(m) = m else {
        return MetadataDoc::default();
    };
    MetadataDoc {
        name: m.name.clone(),
        labels: m.labels.clone().into_iter().collect(),
        resource_version: non_zero(m.resource_version).map(|v| v.to_string()),
        generation: non_zero(m.generation),
        creation_timestamp: non_zero(m.created_unix_ms).map(rfc3339),
    }
}

fn conditions(list: &[pb::Condition]) -> Vec<ConditionDoc> {
    list.iter()
        .map(|c| ConditionDoc {
            kind: c.r#type.clone(),
            ok: c.ok,
            reason: c.reason.clone(),
            message: c.message.clone(),
            last_transition_time: non_zero(c.last_transition_unix_ms).map(rfc3339),
        })
        .collect()
}

fn doc<S, T>(
    kind: &'static str,
    m: Option<&pb::Metadata>,
    spec: S,
    status: Option<T>,
) -> Box<Doc<S, T>> {
    Box::new(Doc {
        api_version: API_VERSION_FERRINET,
        kind,
        metadata: metadata_doc(m),
        spec,
        status,
    })
}

/// The printable document of an object (`None` if its `oneof` is empty).
pub fn from_proto(obj: &pb::Object) -> Option<ObjectDoc> {
    Some(match obj.object.as_ref()? {
        O::Network(n) => ObjectDoc::Network(doc(
            "Network",
            n.metadata.as_ref(),
            network_doc(&n.spec.clone().unwrap_or_default()),
            n.status.as_ref().map(|s| NetworkStatusDoc {
                phase: phase_name(s.phase),
                conditions: conditions(&s.conditions),
                peerings: s
                    .peerings
                    .iter()
                    .map(|p| PeeringDoc {
                        id: p.id,
                        state: p.state.clone(),
                        message: p.message.clone(),
                    })
                    .collect(),
                users: s.users,
                observed_generation: s.observed_generation,
                routes: s.routes.as_ref().map(|r| NetworkRoutesDoc {
                    subscription: r.subscription.clone(),
                    standard: counts(r.standard.as_ref()),
                    nat: counts(r.nat.as_ref()),
                    load_balancer_targets: counts(r.load_balancer_targets.as_ref()),
                    peered: counts(r.peered.as_ref()),
                    router: r.router.clone(),
                    last_error: r.last_error.clone(),
                }),
            }),
        )),
        O::NetworkInterface(n) => ObjectDoc::NetworkInterface(doc(
            "NetworkInterface",
            n.metadata.as_ref(),
            interface_doc(&n.spec.clone().unwrap_or_default()),
            n.status.as_ref().map(|s| NetworkInterfaceStatusDoc {
                phase: phase_name(s.phase),
                conditions: conditions(&s.conditions),
                vni: non_zero(s.vni),
                underlay_ip: non_empty(&s.underlay_ip),
                pci_address: s.pci_address.as_ref().map(|p| PciAddressDoc {
                    domain: p.domain.clone(),
                    bus: p.bus.clone(),
                    slot: p.slot.clone(),
                    function: p.function.clone(),
                }),
                tap_device: non_empty(&s.tap_device),
                device_name: non_empty(&s.device_name),
                virtual_ip_underlay: non_empty(&s.virtual_ip_underlay),
                nat_underlay: non_empty(&s.nat_underlay),
                observed_generation: s.observed_generation,
            }),
        )),
        O::LoadBalancer(l) => ObjectDoc::LoadBalancer(doc(
            "LoadBalancer",
            l.metadata.as_ref(),
            load_balancer_doc(&l.spec.clone().unwrap_or_default()),
            l.status.as_ref().map(|s| LoadBalancerStatusDoc {
                phase: phase_name(s.phase),
                conditions: conditions(&s.conditions),
                vni: non_zero(s.vni),
                underlay_ip: non_empty(&s.underlay_ip),
                targets: s.targets.clone(),
                observed_generation: s.observed_generation,
            }),
        )),
    })
}

fn network_doc(s: &pb::NetworkSpec) -> NetworkSpec {
    NetworkSpec {
        id: s.id,
        peered_ids: s.peered_ids.clone(),
        peered_prefixes: s
            .peered_prefixes
            .iter()
            .map(|p| PeeredPrefix {
                id: p.id,
                prefixes: p.prefixes.clone(),
            })
            .collect(),
    }
}

fn address_family(s: &str) -> Option<IpFamily> {
    s.parse::<IpAddr>().ok().map(IpFamily::of)
}

fn interface_doc(s: &pb::NetworkInterfaceSpec) -> NetworkInterfaceSpec {
    NetworkInterfaceSpec {
        network_ref: LocalRef {
            name: s.network.clone(),
        },
        node_name: None,
        ip_families: s
            .ips
            .iter()
            .map(|a| address_family(a))
            .collect::<Option<Vec<_>>>()
            .unwrap_or_default(),
        ips: s.ips.clone(),
        virtual_ip: non_empty(&s.virtual_ip),
        nat: s.nat.as_ref().map(|n| Nat {
            ip: n.ip.clone(),
            port: n.port,
            end_port: n.end_port,
        }),
        prefixes: s.prefixes.clone(),
        load_balancer_targets: s.load_balancer_targets.clone(),
        firewall_rules: s.firewall_rules.iter().map(firewall_rule_doc).collect(),
        metering_rate: s.metering_rate.as_ref().map(|m| MeteringRate {
            total_rate: Some(m.total_rate),
            public_rate: Some(m.public_rate),
        }),
        hostname: non_empty(&s.hostname),
    }
}

fn doc_protocol(p: i32) -> Option<Protocol> {
    match pb::Protocol::try_from(p) {
        Ok(pb::Protocol::Tcp) => Some(Protocol::Tcp),
        Ok(pb::Protocol::Udp) => Some(Protocol::Udp),
        Ok(pb::Protocol::Icmp) => Some(Protocol::Icmp),
        Ok(pb::Protocol::Unspecified) | Err(_) => None,
    }
}

fn firewall_rule_doc(r: &pb::FirewallRule) -> FirewallRule {
    let prefix_family = |p: &str| p.parse::<IpNet>().ok().map(|p| IpFamily::of(p.addr()));
    let protocol_match = r.protocol_match.as_ref().and_then(|m| {
        let protocol_type = doc_protocol(m.protocol);
        if protocol_type.is_none() && m.icmp.is_none() && m.port_range.is_none() {
            return None;
        }
        Some(ProtocolMatch {
            protocol_type,
            icmp: m.icmp.as_ref().map(|i| IcmpMatch {
                icmp_type: Some(i.icmp_type),
                icmp_code: Some(i.icmp_code),
            }),
            port_range: m.port_range.as_ref().map(|p| PortMatch {
                src_port: p.src_port,
                end_src_port: p.end_src_port,
                dst_port: p.dst_port,
                end_dst_port: p.end_dst_port,
            }),
        })
    });
    FirewallRule {
        id: r.id.clone(),
        direction: match pb::Direction::try_from(r.direction) {
            Ok(pb::Direction::Ingress) => Some(Direction::Ingress),
            Ok(pb::Direction::Egress) => Some(Direction::Egress),
            _ => None,
        },
        action: match pb::Action::try_from(r.action) {
            Ok(pb::Action::Accept) => Some(Action::Accept),
            Ok(pb::Action::Deny) => Some(Action::Deny),
            _ => None,
        },
        priority: r.priority,
        ip_family: prefix_family(&r.source_prefix).or(prefix_family(&r.destination_prefix)),
        source_prefix: non_empty(&r.source_prefix),
        destination_prefix: non_empty(&r.destination_prefix),
        protocol_match,
    }
}

fn load_balancer_doc(s: &pb::LoadBalancerSpec) -> LoadBalancerSpec {
    LoadBalancerSpec {
        network_ref: LocalRef {
            name: s.network.clone(),
        },
        lb_type: match pb::LoadBalancerType::try_from(s.r#type) {
            Ok(pb::LoadBalancerType::Internal) => Some(LoadBalancerType::Internal),
            Ok(pb::LoadBalancerType::Public) => Some(LoadBalancerType::Public),
            _ => None,
        },
        ip_family: address_family(&s.ip),
        ip: s.ip.clone(),
        ports: s
            .ports
            .iter()
            .map(|p| LoadBalancerPort {
                protocol: doc_protocol(p.protocol),
                port: p.port,
            })
            .collect(),
        node_name: None,
    }
}
