//! Region API objects as printable manifest documents ([`from_proto`]): what `get -o json|yaml`
//! and `watch -o json` print, and what `apply -f` reads back (status and the metadata the API
//! sets are ignored there).
//!
//! The spec is [`super::convert::spec_from_proto`]'s; the status is printed in the same
//! camelCase style, fields left out while zero or empty.

use std::collections::BTreeMap;

use ferrinet_proto::api::v1 as pb;
use pb::object::Object as O;
use serde::Serialize;

use super::convert::spec_from_proto;
use super::manifest::API_VERSION;
use super::spec::{ObjectRef, Spec};
use super::{RegionKind, kind_and_meta};
use crate::ctl::output::rfc3339;

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// An object as printed: a document `apply -f` accepts.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectDoc {
    /// Always [`API_VERSION`].
    pub api_version: &'static str,
    /// The manifest kind.
    pub kind: &'static str,
    /// Metadata.
    pub metadata: MetadataDoc,
    /// The spec.
    pub spec: Spec,
    /// The status, if the API sent one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusDoc>,
}

/// Printed metadata (fields the API sets are left out while empty).
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetadataDoc {
    /// Name.
    pub name: String,
    /// Namespace (none for nodes).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Labels.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// A string of digits, as Kubernetes prints it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// Increases with every spec change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    /// Unique for the object's lifetime.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// RFC 3339, UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
}

/// A condition as printed.
#[derive(Clone, Debug, Serialize)]
pub struct ConditionDoc {
    /// Feature.
    #[serde(rename = "type")]
    pub kind: String,
    /// True if the feature works.
    pub ok: bool,
    /// CamelCase reason.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Details.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// The status of an object, by kind.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum StatusDoc {
    /// A network's.
    Network(NetworkStatusDoc),
    /// An interface's.
    NetworkInterface(Box<NetworkInterfaceStatusDoc>),
    /// A virtual IP's.
    VirtualIp(VirtualIpStatusDoc),
    /// A public prefix's.
    PublicPrefix(PublicPrefixStatusDoc),
    /// A NAT gateway's.
    NatGateway(NatGatewayStatusDoc),
    /// A load balancer's.
    LoadBalancer(LoadBalancerStatusDoc),
    /// A network policy's.
    NetworkPolicy(NetworkPolicyStatusDoc),
    /// A node's.
    Node(NodeStatusDoc),
}

/// A peering's state.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeeringStatusDoc {
    /// The peering's name.
    pub name: String,
    /// `Pending`, `Ready`, `Failed`.
    pub state: String,
    /// Why not Ready.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// `namespace/name` of the peer.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub network: String,
    /// The peer's VNI once Ready.
    #[serde(rename = "peerVNI", skip_serializing_if = "is_zero")]
    pub peer_vni: u32,
}

/// A network's status.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkStatusDoc {
    /// The VNI.
    #[serde(skip_serializing_if = "is_zero")]
    pub vni: u32,
    /// `Pending`, `Available`, `Error`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub state: String,
    /// One per peering.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub peerings: Vec<PeeringStatusDoc>,
    /// Networks whose Ready peerings name this one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub incoming_peerings: Vec<ObjectRef>,
    /// `ferrinet://namespace/name/vni/uid`.
    #[serde(rename = "providerID", skip_serializing_if = "String::is_empty")]
    pub provider_id: String,
    /// Why it is not Available.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// An interface's status.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkInterfaceStatusDoc {
    /// `Pending`, `Available`, `Error`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub state: String,
    /// Addresses in use.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
    /// The public address.
    #[serde(rename = "virtualIP", skip_serializing_if = "String::is_empty")]
    pub virtual_ip: String,
    /// The NAT address.
    #[serde(rename = "natIP", skip_serializing_if = "String::is_empty")]
    pub nat_ip: String,
    /// First port of the NAT slice.
    #[serde(skip_serializing_if = "is_zero")]
    pub nat_port: u32,
    /// End of the NAT slice (excluded).
    #[serde(skip_serializing_if = "is_zero")]
    pub nat_end_port: u32,
    /// The network's VNI.
    #[serde(skip_serializing_if = "is_zero")]
    pub vni: u32,
    /// Reported by the node.
    #[serde(rename = "underlayIP", skip_serializing_if = "String::is_empty")]
    pub underlay_ip: String,
    /// The VF.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pci_address: String,
    /// The TAP device.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub tap_device: String,
    /// DNS names.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub dns_name: String,
    /// Rules compiled from the policies that select it.
    #[serde(skip_serializing_if = "is_zero")]
    pub firewall_rules: u32,
    /// Conditions.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ConditionDoc>,
    /// Why the API could not realize it.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// A virtual IP's status.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualIpStatusDoc {
    /// The address.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ip: String,
    /// The interface that uses it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bound_to: Option<ObjectRef>,
}

/// A prefix given to one interface.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicPrefixTargetDoc {
    /// The interface.
    pub network_interface: ObjectRef,
    /// Its prefix.
    pub prefix: String,
}

/// A public prefix's status.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicPrefixStatusDoc {
    /// The prefixes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<String>,
    /// Who has which.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<PublicPrefixTargetDoc>,
    /// Why not all are given out.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// One NAT address.
#[derive(Clone, Debug, Serialize)]
pub struct NatIpDoc {
    /// Its name.
    pub name: String,
    /// The address.
    pub ip: String,
}

/// A NAT gateway's status.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NatGatewayStatusDoc {
    /// Addresses.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<NatIpDoc>,
    /// Interfaces with a slice.
    pub used_slices: u32,
    /// Slices the addresses offer.
    pub capacity: u32,
    /// Why not every interface has a slice.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// A load balancer's status.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerStatusDoc {
    /// `Pending`, `Available`, `Error`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub state: String,
    /// Its addresses.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
    /// The selected interfaces.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<ObjectRef>,
    /// The nodes carrying it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
    /// Why it is not Available.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// A network policy's status.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicyStatusDoc {
    /// Interfaces selected.
    pub selected_interfaces: u32,
    /// Problems compiling it.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// A node's status.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatusDoc {
    /// `Ready` or `NotReady`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub state: String,
    /// RFC 3339, UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_expires: Option<String>,
    /// Interfaces placed on it.
    pub network_interfaces: u32,
    /// Load balancers placed on it.
    pub load_balancers: u32,
}

fn ref_doc(r: &pb::ObjectRef) -> ObjectRef {
    ObjectRef {
        name: r.name.clone(),
        namespace: (!r.namespace.is_empty()).then(|| r.namespace.clone()),
    }
}

/// Conditions as printed.
pub fn condition_docs(v: &[pb::Condition]) -> Vec<ConditionDoc> {
    v.iter()
        .map(|c| ConditionDoc {
            kind: c.r#type.clone(),
            ok: c.ok,
            reason: c.reason.clone(),
            message: c.message.clone(),
        })
        .collect()
}

fn metadata_doc(m: Option<&pb::ObjectMeta>) -> MetadataDoc {
    let m = m.cloned().unwrap_or_default();
    MetadataDoc {
        name: m.name,
        namespace: m.namespace,
        labels: m.labels.into_iter().collect(),
        resource_version: (m.resource_version != 0).then(|| m.resource_version.to_string()),
        generation: (m.generation != 0).then_some(m.generation),
        uid: m.uid,
        creation_timestamp: (m.created_unix_ms > 0).then(|| rfc3339(m.created_unix_ms)),
    }
}

/// The status of an object as printed (`None` without one).
pub fn status_doc(obj: &pb::Object) -> Option<StatusDoc> {
    Some(match obj.object.as_ref()? {
        O::Network(o) => {
            let s = o.status.as_ref()?;
            StatusDoc::Network(NetworkStatusDoc {
                vni: s.vni,
                state: s.state.clone(),
                peerings: s
                    .peerings
                    .iter()
                    .map(|p| PeeringStatusDoc {
                        name: p.name.clone(),
                        state: p.state.clone(),
                        reason: p.reason.clone(),
                        network: p.network.clone(),
                        peer_vni: p.peer_vni,
                    })
                    .collect(),
                incoming_peerings: s.incoming_peerings.iter().map(ref_doc).collect(),
                provider_id: s.provider_id.clone(),
                message: s.message.clone(),
            })
        }
        O::NetworkInterface(o) => {
            let s = o.status.as_ref()?;
            StatusDoc::NetworkInterface(Box::new(NetworkInterfaceStatusDoc {
                state: s.state.clone(),
                ips: s.ips.clone(),
                virtual_ip: s.virtual_ip.clone(),
                nat_ip: s.nat_ip.clone(),
                nat_port: s.nat_port,
                nat_end_port: s.nat_end_port,
                vni: s.vni,
                underlay_ip: s.underlay_ip.clone(),
                pci_address: s.pci_address.clone(),
                tap_device: s.tap_device.clone(),
                dns_name: s.dns_name.clone(),
                firewall_rules: s.firewall_rules,
                conditions: condition_docs(&s.conditions),
                message: s.message.clone(),
            }))
        }
        O::VirtualIp(o) => {
            let s = o.status.as_ref()?;
            StatusDoc::VirtualIp(VirtualIpStatusDoc {
                ip: s.ip.clone(),
                bound_to: s
                    .bound_to
                    .as_ref()
                    .filter(|r| !r.name.is_empty())
                    .map(ref_doc),
            })
        }
        O::PublicPrefix(o) => {
            let s = o.status.as_ref()?;
            StatusDoc::PublicPrefix(PublicPrefixStatusDoc {
                prefixes: s.prefixes.clone(),
                targets: s
                    .targets
                    .iter()
                    .map(|t| PublicPrefixTargetDoc {
                        network_interface: t
                            .network_interface
                            .as_ref()
                            .map(ref_doc)
                            .unwrap_or_default(),
                        prefix: t.prefix.clone(),
                    })
                    .collect(),
                message: s.message.clone(),
            })
        }
        O::NatGateway(o) => {
            let s = o.status.as_ref()?;
            StatusDoc::NatGateway(NatGatewayStatusDoc {
                ips: s
                    .ips
                    .iter()
                    .map(|i| NatIpDoc {
                        name: i.name.clone(),
                        ip: i.ip.clone(),
                    })
                    .collect(),
                used_slices: s.used_slices,
                capacity: s.capacity,
                message: s.message.clone(),
            })
        }
        O::LoadBalancer(o) => {
            let s = o.status.as_ref()?;
            StatusDoc::LoadBalancer(LoadBalancerStatusDoc {
                state: s.state.clone(),
                ips: s.ips.clone(),
                targets: s.targets.iter().map(ref_doc).collect(),
                nodes: s.nodes.clone(),
                message: s.message.clone(),
            })
        }
        O::NetworkPolicy(o) => {
            let s = o.status.as_ref()?;
            StatusDoc::NetworkPolicy(NetworkPolicyStatusDoc {
                selected_interfaces: s.selected_interfaces,
                message: s.message.clone(),
            })
        }
        O::Node(o) => {
            let s = o.status.as_ref()?;
            StatusDoc::Node(NodeStatusDoc {
                state: s.state.clone(),
                lease_expires: (s.lease_expires_unix_ms > 0)
                    .then(|| rfc3339(s.lease_expires_unix_ms)),
                network_interfaces: s.network_interfaces,
                load_balancers: s.load_balancers,
            })
        }
    })
}

/// The printable document of an API object (`None` if its `oneof` is empty).
pub fn from_proto(obj: &pb::Object) -> Option<ObjectDoc> {
    let (kind, meta): (RegionKind, _) = kind_and_meta(obj)?;
    Some(ObjectDoc {
        api_version: API_VERSION,
        kind: kind.manifest_kind(),
        metadata: metadata_doc(meta),
        spec: spec_from_proto(obj)?,
        status: status_doc(obj),
    })
}

/// The printable documents of `objects`, in order.
pub fn docs(objects: &[pb::Object]) -> Vec<ObjectDoc> {
    objects.iter().filter_map(from_proto).collect()
}
