//! `ferrinetctl --api ADDR`: the same CLI, speaking to the region API
//! (`ferrinet.api.v1.RegionApi`) instead of one node's admin API.
//!
//! - [`client`]: the `--api` address and connecting to it (plaintext, or mutual TLS with the
//!   node CLI's `--ca/--cert/--key`);
//! - [`manifest`]: manifest files in the seeds' resource shape (`networking.ferrinet.dev/v1alpha1`
//!   and the OpenKCM / apinet group names), parsed strictly with the path of every bad field;
//!   [`spec`] holds their serde structs and [`convert`] maps them to and from the API's messages;
//! - [`printed`]: API objects as the documents `get -o yaml|json` prints (and `apply` reads back);
//! - [`output`]: tables, `describe` text and watch lines (pure functions);
//! - [`commands`]: the commands over any `RegionApiClient<T>` ([`commands::RegionCtl`]);
//! - [`cli`]: the command line of the `--api` mode, which the binary dispatches to.
//!
//! Exit statuses are the node CLI's ([`crate::ctl::error`]).

pub mod cli;
pub mod client;
pub mod commands;
pub mod convert;
pub mod manifest;
pub mod output;
pub mod printed;
pub mod spec;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;

use ferrinet_proto::api::v1 as pb;
use pb::object::Object as O;

/// A kind of region object, as named on the command line (singular, plural or short name, in
/// any case).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum RegionKind {
    /// A tenant's virtual network; also `networks`, `net`.
    #[value(name = "network", aliases = ["networks", "net"])]
    Network,
    /// A VM's interface; also `networkinterfaces`, `interface`, `interfaces`, `ni`.
    #[value(
        name = "networkinterface",
        aliases = ["networkinterfaces", "interface", "interfaces", "ni"]
    )]
    NetworkInterface,
    /// A public address; also `virtualips`, `vip`.
    #[value(name = "virtualip", aliases = ["virtualips", "vip"])]
    VirtualIp,
    /// Public prefixes for selected interfaces; also `publicprefixes`, `pp`.
    #[value(name = "publicprefix", aliases = ["publicprefixes", "pp"])]
    PublicPrefix,
    /// Source NAT of a network; also `natgateways`, `nat`, `natgw`.
    #[value(name = "natgateway", aliases = ["natgateways", "nat", "natgw"])]
    NatGateway,
    /// A load balancer; also `loadbalancers`, `lb`.
    #[value(name = "loadbalancer", aliases = ["loadbalancers", "lb"])]
    LoadBalancer,
    /// Firewall rules for selected interfaces; also `networkpolicies`, `netpol`.
    #[value(name = "networkpolicy", aliases = ["networkpolicies", "netpol"])]
    NetworkPolicy,
    /// A hypervisor registered by its node daemon (not namespaced); also `nodes`.
    #[value(name = "node", aliases = ["nodes"])]
    Node,
}

impl RegionKind {
    /// Every kind, in the order `apply` sends them: what others refer to first.
    pub const APPLY_ORDER: [RegionKind; 8] = [
        RegionKind::Node,
        RegionKind::Network,
        RegionKind::VirtualIp,
        RegionKind::NatGateway,
        RegionKind::NetworkInterface,
        RegionKind::PublicPrefix,
        RegionKind::LoadBalancer,
        RegionKind::NetworkPolicy,
    ];

    /// Position in [`RegionKind::APPLY_ORDER`]; deletion goes the other way.
    pub fn apply_rank(self) -> usize {
        Self::APPLY_ORDER
            .iter()
            .position(|k| *k == self)
            .unwrap_or(Self::APPLY_ORDER.len())
    }

    /// Lower-case name used in messages: `network/default/NAME`.
    pub fn name(self) -> &'static str {
        match self {
            RegionKind::Network => "network",
            RegionKind::NetworkInterface => "networkinterface",
            RegionKind::VirtualIp => "virtualip",
            RegionKind::PublicPrefix => "publicprefix",
            RegionKind::NatGateway => "natgateway",
            RegionKind::LoadBalancer => "loadbalancer",
            RegionKind::NetworkPolicy => "networkpolicy",
            RegionKind::Node => "node",
        }
    }

    /// The manifest's `kind`, as the seeds spell it.
    pub fn manifest_kind(self) -> &'static str {
        match self {
            RegionKind::Network => "Network",
            RegionKind::NetworkInterface => "NetworkInterface",
            RegionKind::VirtualIp => "VirtualIP",
            RegionKind::PublicPrefix => "PublicPrefix",
            RegionKind::NatGateway => "NATGateway",
            RegionKind::LoadBalancer => "LoadBalancer",
            RegionKind::NetworkPolicy => "NetworkPolicy",
            RegionKind::Node => "Node",
        }
    }

    /// The kind of a manifest's `kind` (exact spelling, as Kubernetes requires).
    pub fn from_manifest_kind(s: &str) -> Option<RegionKind> {
        Self::APPLY_ORDER
            .into_iter()
            .find(|k| k.manifest_kind() == s)
    }

    /// False only for nodes, whose namespace is "".
    pub fn namespaced(self) -> bool {
        self != RegionKind::Node
    }

    /// The API's kind.
    pub fn proto(self) -> pb::Kind {
        match self {
            RegionKind::Network => pb::Kind::Network,
            RegionKind::NetworkInterface => pb::Kind::NetworkInterface,
            RegionKind::VirtualIp => pb::Kind::VirtualIp,
            RegionKind::PublicPrefix => pb::Kind::PublicPrefix,
            RegionKind::NatGateway => pb::Kind::NatGateway,
            RegionKind::LoadBalancer => pb::Kind::LoadBalancer,
            RegionKind::NetworkPolicy => pb::Kind::NetworkPolicy,
            RegionKind::Node => pb::Kind::Node,
        }
    }

    /// `kind/name`, or `kind/namespace/name` for a namespaced object, for messages.
    pub fn object(self, namespace: &str, name: &str) -> String {
        if namespace.is_empty() {
            format!("{}/{name}", self.name())
        } else {
            format!("{}/{namespace}/{name}", self.name())
        }
    }
}

/// The kind and metadata of an API object (`None` if its `oneof` is empty).
pub fn kind_and_meta(obj: &pb::Object) -> Option<(RegionKind, Option<&pb::ObjectMeta>)> {
    Some(match obj.object.as_ref()? {
        O::Network(o) => (RegionKind::Network, o.metadata.as_ref()),
        O::NetworkInterface(o) => (RegionKind::NetworkInterface, o.metadata.as_ref()),
        O::VirtualIp(o) => (RegionKind::VirtualIp, o.metadata.as_ref()),
        O::PublicPrefix(o) => (RegionKind::PublicPrefix, o.metadata.as_ref()),
        O::NatGateway(o) => (RegionKind::NatGateway, o.metadata.as_ref()),
        O::LoadBalancer(o) => (RegionKind::LoadBalancer, o.metadata.as_ref()),
        O::NetworkPolicy(o) => (RegionKind::NetworkPolicy, o.metadata.as_ref()),
        O::Node(o) => (RegionKind::Node, o.metadata.as_ref()),
    })
}

/// The metadata of an API object, to change it.
pub fn meta_mut(obj: &mut pb::Object) -> Option<&mut pb::ObjectMeta> {
    match obj.object.as_mut()? {
        O::Network(o) => o.metadata.as_mut(),
        O::NetworkInterface(o) => o.metadata.as_mut(),
        O::VirtualIp(o) => o.metadata.as_mut(),
        O::PublicPrefix(o) => o.metadata.as_mut(),
        O::NatGateway(o) => o.metadata.as_mut(),
        O::LoadBalancer(o) => o.metadata.as_mut(),
        O::NetworkPolicy(o) => o.metadata.as_mut(),
        O::Node(o) => o.metadata.as_mut(),
    }
}

/// The object's key (kind, namespace, name), if it has a kind.
pub fn object_key(obj: &pb::Object) -> Option<pb::ObjectKey> {
    let (kind, meta) = kind_and_meta(obj)?;
    Some(pb::ObjectKey {
        kind: kind.proto() as i32,
        namespace: meta.map_or_else(String::new, |m| m.namespace.clone()),
        name: meta.map_or_else(String::new, |m| m.name.clone()),
    })
}

/// `kind/namespace/name` of an API object, for messages.
pub fn object_label(obj: &pb::Object) -> String {
    match kind_and_meta(obj) {
        Some((kind, meta)) => kind.object(
            meta.map_or("", |m| m.namespace.as_str()),
            meta.map_or("", |m| m.name.as_str()),
        ),
        None => "object/?".to_owned(),
    }
}
