//! A NetworkPolicy as the user writes it (Kubernetes' NetworkPolicy with interfaces and load
//! balancers in place of pods), and the network objects its selectors are resolved against.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::selector::{LabelSelector, Labels};

/// A NetworkPolicy: its name (unique in the namespace) and spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkPolicy {
    /// `metadata.name`.
    pub name: String,
    /// `spec`.
    pub spec: NetworkPolicySpec,
}

/// `spec` of a NetworkPolicy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetworkPolicySpec {
    /// `networkRef.name`: the Network (in the policy's namespace) whose interfaces it governs.
    pub network_ref: String,
    /// `networkInterfaceSelector`: the interfaces the policy applies to; empty selects every
    /// interface of the network.
    pub network_interface_selector: LabelSelector,
    /// `policyTypes`. Empty means Kubernetes' default: Ingress, plus Egress when `egress` has
    /// rules. When given, a direction not listed is not governed even if it has rules.
    pub policy_types: Vec<PolicyType>,
    /// `ingress`: what may reach the selected interfaces (each rule's peers are its `from`).
    pub ingress: Vec<PolicyRule>,
    /// `egress`: what the selected interfaces may reach (each rule's peers are its `to`).
    pub egress: Vec<PolicyRule>,
}

impl NetworkPolicySpec {
    /// Whether the policy governs `direction`, with Kubernetes' default for empty
    /// `policyTypes`.
    pub fn governs(&self, direction: PolicyType) -> bool {
        if self.policy_types.is_empty() {
            match direction {
                PolicyType::Ingress => true,
                PolicyType::Egress => !self.egress.is_empty(),
            }
        } else {
            self.policy_types.contains(&direction)
        }
    }

    /// The rules of `direction`.
    pub fn rules(&self, direction: PolicyType) -> &[PolicyRule] {
        match direction {
            PolicyType::Ingress => &self.ingress,
            PolicyType::Egress => &self.egress,
        }
    }
}

/// A direction a policy may govern (`policyTypes` item).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PolicyType {
    /// Traffic towards the selected interfaces.
    Ingress,
    /// Traffic from the selected interfaces.
    Egress,
}

impl PolicyType {
    /// Both directions, ingress first.
    pub const ALL: [PolicyType; 2] = [PolicyType::Ingress, PolicyType::Egress];

    /// The spec field of this direction's rules (`ingress`, `egress`).
    pub fn rules_field(self) -> &'static str {
        match self {
            Self::Ingress => "ingress",
            Self::Egress => "egress",
        }
    }

    /// The field of a rule's peers in this direction (`from`, `to`).
    pub fn peers_field(self) -> &'static str {
        match self {
            Self::Ingress => "from",
            Self::Egress => "to",
        }
    }
}

impl fmt::Display for PolicyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ingress => "Ingress",
            Self::Egress => "Egress",
        })
    }
}

/// An ingress or egress rule: traffic from (ingress) or to (egress) any of the peers, on any of
/// the ports. No peers means every address; no ports means every protocol and port.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PolicyRule {
    /// `from` (ingress) or `to` (egress).
    pub peers: Vec<PolicyPeer>,
    /// `ports`.
    pub ports: Vec<PolicyPort>,
}

/// One item of `from` / `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyPeer {
    /// `ipBlock`: a CIDR minus some of its sub-CIDRs.
    IpBlock(IpBlock),
    /// `objectSelector`: the addresses of the network's objects of a kind with matching labels.
    ObjectSelector(ObjectSelector),
}

/// `ipBlock`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpBlock {
    /// `cidr`, without host bits.
    pub cidr: IpNet,
    /// `except`: CIDRs strictly inside `cidr`, of its family, that are not part of the peer.
    pub except: Vec<IpNet>,
}

/// `objectSelector`: `kind` plus an inline label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSelector {
    /// `kind`.
    pub kind: ObjectKind,
    /// `matchLabels`, `matchExpressions`; empty selects every object of the kind.
    pub selector: LabelSelector,
}

/// The kinds of object a peer can select.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    /// NetworkInterface: its addresses in the network.
    NetworkInterface,
    /// LoadBalancer: its addresses.
    LoadBalancer,
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NetworkInterface => "NetworkInterface",
            Self::LoadBalancer => "LoadBalancer",
        })
    }
}

/// A `ports` item: destination ports of one protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyPort {
    /// `protocol`; unset means TCP.
    pub protocol: Option<Protocol>,
    /// `port`: 1..=65535; unset means every port of the protocol.
    pub port: Option<u16>,
    /// `endPort`: the last port of the range `port..=endPort`; needs `port`.
    pub end_port: Option<u16>,
}

impl PolicyPort {
    /// One port of `protocol`.
    pub fn single(protocol: Protocol, port: u16) -> Self {
        Self {
            protocol: Some(protocol),
            port: Some(port),
            end_port: None,
        }
    }

    /// The ports `port..=end_port` of `protocol`.
    pub fn range(protocol: Protocol, port: u16, end_port: u16) -> Self {
        Self {
            protocol: Some(protocol),
            port: Some(port),
            end_port: Some(end_port),
        }
    }
}

/// A `ports` protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP (the default).
    Tcp,
    /// UDP.
    Udp,
    /// SCTP: accepted by the API's type, refused by validation because dpservice's firewall
    /// cannot filter it.
    Sctp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tcp => "TCP",
            Self::Udp => "UDP",
            Self::Sctp => "SCTP",
        })
    }
}

/// A network interface or load balancer as policies see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyObject {
    /// Its name (unique per kind in the namespace).
    pub name: String,
    /// The Network it belongs to.
    pub network: String,
    /// Its labels.
    pub labels: Labels,
    /// Its addresses: an interface's IPs in the network, a load balancer's IPs.
    pub ips: Vec<IpAddr>,
}

impl PolicyObject {
    /// An object of `network` with these labels and addresses.
    pub fn new<K: Into<String>, V: Into<String>>(
        name: impl Into<String>,
        network: impl Into<String>,
        labels: impl IntoIterator<Item = (K, V)>,
        ips: impl IntoIterator<Item = IpAddr>,
    ) -> Self {
        Self {
            name: name.into(),
            network: network.into(),
            labels: labels
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            ips: ips.into_iter().collect(),
        }
    }
}

/// The objects selectors are resolved against. Objects of other networks than the one being
/// compiled are ignored, so a namespace's whole inventory may be passed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PolicyInventory {
    /// NetworkInterfaces: the policies' targets and `NetworkInterface` peers.
    pub interfaces: Vec<PolicyObject>,
    /// LoadBalancers: `LoadBalancer` peers.
    pub load_balancers: Vec<PolicyObject>,
}
