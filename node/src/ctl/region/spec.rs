//! The specs of region manifests, in the seeds' camelCase shape, for reading and writing.
//!
//! Every struct refuses unknown fields. Addresses, prefixes and enumerations stay text here:
//! [`super::convert`] checks them with the field's path in the error and writes them in their
//! canonical spelling. Fields left out while empty or zero, so that what `get -o yaml` prints
//! reads like what a user writes.

use std::collections::BTreeMap;

use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer, Serialize};

pub use crate::ctl::manifest::spec::MeteringRate;

/// A field that is accepted and ignored (set by the system; ferrinet reports it in `status`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ignored;

impl<'de> Deserialize<'de> for Ignored {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(d).map(|_| Ignored)
    }
}

/// `networkRef`, `virtualIPRef`, a peering's `networkRef`: an empty namespace is the referring
/// object's own.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectRef {
    /// The object's name.
    pub name: String,
    /// Its namespace, if another one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// OEP-1's `targetRef` of a NetworkInterface: `{kind: Network, name}`, read as `networkRef`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetRef {
    /// `Network` (or absent).
    #[serde(default)]
    pub kind: Option<String>,
    /// The network's name.
    pub name: String,
    /// Its namespace, if another one.
    #[serde(default)]
    pub namespace: Option<String>,
}

/// A label requirement of `matchExpressions`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    /// The label.
    pub key: String,
    /// `In`, `NotIn`, `Exists`, `DoesNotExist`.
    pub operator: String,
    /// For `In` and `NotIn`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// A Kubernetes label selector.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    /// Labels that must be equal.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// Further requirements.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<Requirement>,
}

/// A kind and a label selector: a PublicPrefix's `selector`, a policy peer's `objectSelector`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KindSelector {
    /// The kind selected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Labels that must be equal.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// Further requirements.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<Requirement>,
}

/// `{start, end}` (inclusive) of a subnet's `allocationRanges`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressRange {
    /// First address.
    pub start: String,
    /// Last address.
    pub end: String,
}

/// A static route handed out with a subnet.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostRoute {
    /// CIDR.
    pub destination: String,
    /// Address.
    pub nexthop: String,
}

/// One of a network's `subnets`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Subnet {
    /// The subnet.
    pub cidr: String,
    /// Where addresses are allocated from (default: the whole CIDR).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allocation_ranges: Vec<AddressRange>,
    /// Never allocated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_addresses: Vec<String>,
    /// The gateway address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Static routes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<HostRoute>,
}

/// One of a network's `peerings`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Peering {
    /// Unique among the network's peerings.
    pub name: String,
    /// The network to peer with.
    pub network_ref: ObjectRef,
    /// Of this network's prefixes, those exposed to the peer (empty: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<String>,
}

/// `spec` of a `Network`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkSpec {
    /// OEP-1's shorthand for one subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Subnets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subnets: Vec<Subnet>,
    /// Peerings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peerings: Vec<Peering>,
    /// A fixed VNI (absent: allocated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vni: Option<u32>,
    /// apinet keeps these in the spec; ferrinet sets them in `status`, so they are ignored.
    #[serde(default, rename = "providerID", skip_serializing)]
    pub provider_id: Ignored,
    /// As `providerID`.
    #[serde(default, skip_serializing)]
    pub incoming_peerings: Ignored,
}

/// One of `ips`: `{value: ADDRESS}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpValue {
    /// The address.
    pub value: String,
}

/// `virtualIP.ephemeral`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Ephemeral {
    /// `IPv4` or `IPv6`.
    pub ip_family: String,
}

/// A NetworkInterface's `virtualIP`: a VirtualIP, or an address allocated with the interface.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VirtualIpSource {
    /// A VirtualIP of the interface's namespace.
    #[serde(
        rename = "virtualIPRef",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub virtual_ip_ref: Option<ObjectRef>,
    /// Or one allocated for (and released with) the interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral: Option<Ephemeral>,
}

/// `spec` of a `NetworkInterface`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkInterfaceSpec {
    /// The network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_ref: Option<ObjectRef>,
    /// OEP-1's spelling of `networkRef`.
    #[serde(default, skip_serializing)]
    pub target_ref: Option<TargetRef>,
    /// The hypervisor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// `IPv4`, `IPv6`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_families: Vec<String>,
    /// Fixed addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpValue>,
    /// Routed prefixes behind the interface.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<String>,
    /// The public address.
    #[serde(rename = "virtualIP", default, skip_serializing_if = "Option::is_none")]
    pub virtual_ip: Option<VirtualIpSource>,
    /// DHCP hostname and DNS name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Rate limits, Mbit/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metering_rate: Option<MeteringRate>,
}

/// `spec` of a `VirtualIP`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualIpSpec {
    /// `Public`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub vip_type: Option<String>,
    /// `IPv4` or `IPv6`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_family: Option<String>,
}

/// `spec` of a `PublicPrefix`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PublicPrefixSpec {
    /// The kind (`NetworkInterface`) and labels of the targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<KindSelector>,
    /// `IPv4` (default) or `IPv6`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_family: Option<String>,
}

/// `spec` of a `NATGateway`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NatGatewaySpec {
    /// `Public`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub nat_type: Option<String>,
    /// `IPv4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_family: Option<String>,
    /// Absent: 2048.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports_per_network_interface: Option<u32>,
    /// The network it serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_ref: Option<ObjectRef>,
}

/// A port or port range of a load balancer or a policy rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Port {
    /// `TCP` (default) or `UDP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// The port.
    pub port: u32,
    /// Inclusive end of a range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_port: Option<u32>,
}

/// `spec` of a `LoadBalancer`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadBalancerSpec {
    /// `Public` or `Internal`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub lb_type: Option<String>,
    /// `IPv4`, `IPv6`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_families: Vec<String>,
    /// Internal only: fixed addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpValue>,
    /// The network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_ref: Option<ObjectRef>,
    /// The targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_interface_selector: Option<LabelSelector>,
    /// Ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    /// Nodes that carry it (absent: the configured default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
}

/// `{cidr, except}` of a policy peer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpBlock {
    /// The block.
    pub cidr: String,
    /// Sub-blocks left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub except: Vec<String>,
}

/// A policy peer: exactly one of `ipBlock` and `objectSelector`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyPeer {
    /// Addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_block: Option<IpBlock>,
    /// Interfaces or load balancers by label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_selector: Option<KindSelector>,
}

/// One of `ingress`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngressRule {
    /// Sources.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<PolicyPeer>,
    /// Ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
}

/// One of `egress`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressRule {
    /// Destinations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<PolicyPeer>,
    /// Ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
}

/// `spec` of a `NetworkPolicy`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkPolicySpec {
    /// The network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_ref: Option<ObjectRef>,
    /// The interfaces it applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_interface_selector: Option<LabelSelector>,
    /// `Ingress`, `Egress`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policy_types: Vec<String>,
    /// Allowed incoming traffic.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<IngressRule>,
    /// Allowed outgoing traffic.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<EgressRule>,
}

/// `spec` of a `Node`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSpec {
    /// The node's underlay prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub underlay_prefix: Option<String>,
    /// VFs it can hand out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vf_capacity: Option<u32>,
}

/// A document's spec, by kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Spec {
    /// `kind: Network`.
    Network(NetworkSpec),
    /// `kind: NetworkInterface`.
    NetworkInterface(NetworkInterfaceSpec),
    /// `kind: VirtualIP`.
    VirtualIp(VirtualIpSpec),
    /// `kind: PublicPrefix`.
    PublicPrefix(PublicPrefixSpec),
    /// `kind: NATGateway`.
    NatGateway(NatGatewaySpec),
    /// `kind: LoadBalancer`.
    LoadBalancer(LoadBalancerSpec),
    /// `kind: NetworkPolicy`.
    NetworkPolicy(NetworkPolicySpec),
    /// `kind: Node`.
    Node(NodeSpec),
}

impl Spec {
    /// The spec's kind.
    pub fn kind(&self) -> super::RegionKind {
        use super::RegionKind as K;
        match self {
            Spec::Network(_) => K::Network,
            Spec::NetworkInterface(_) => K::NetworkInterface,
            Spec::VirtualIp(_) => K::VirtualIp,
            Spec::PublicPrefix(_) => K::PublicPrefix,
            Spec::NatGateway(_) => K::NatGateway,
            Spec::LoadBalancer(_) => K::LoadBalancer,
            Spec::NetworkPolicy(_) => K::NetworkPolicy,
            Spec::Node(_) => K::Node,
        }
    }

    /// The empty spec of `kind` (a document without `spec`).
    pub fn empty(kind: super::RegionKind) -> Spec {
        use super::RegionKind as K;
        match kind {
            K::Network => Spec::Network(NetworkSpec::default()),
            K::NetworkInterface => Spec::NetworkInterface(NetworkInterfaceSpec::default()),
            K::VirtualIp => Spec::VirtualIp(VirtualIpSpec::default()),
            K::PublicPrefix => Spec::PublicPrefix(PublicPrefixSpec::default()),
            K::NatGateway => Spec::NatGateway(NatGatewaySpec::default()),
            K::LoadBalancer => Spec::LoadBalancer(LoadBalancerSpec::default()),
            K::NetworkPolicy => Spec::NetworkPolicy(NetworkPolicySpec::default()),
            K::Node => Spec::Node(NodeSpec::default()),
        }
    }
}
