//! The region API's objects (`ferrinet.api.v1`): their keys, the words that name their kinds in
//! store keys and logs, and the validation of what a user sends on Create and Update.
//!
//! [`validate`] checks one object on its own (syntax, ranges, families, limits of the
//! dataplane) and returns it normalized, with the defaults the proto documents filled in, so
//! that what is stored is explicit. What needs other objects (a fixed IP inside its network's
//! subnets, a referenced object existing) is the caller's to check. Every problem is reported
//! with its field path in the proto's JSON names (`spec.subnets[0].cidr`,
//! `spec.ports[1].endPort`), all of them at once.
//!
//! The conversions into the pure modules' types ([`selector`], [`policy_spec`], [`subnets`])
//! are public because realization needs them too: one parser for both.

use std::fmt;

use ferrinet_proto::api::v1 as pb;

mod convert;
mod errors;
mod validate;
mod validate_lb;
mod validate_network;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_kinds;

pub use convert::{ip_family, policy_spec, selector, subnets};
pub use errors::{FieldError, ValidationErrors};
pub use validate::validate;
pub use validate_lb::{LbProtocol, MAX_LB_PORTS, load_balancer_ports};

/// `namespace/name` of an object; the namespace is "" for Nodes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ObjKey {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
}

impl ObjKey {
    /// The object `namespace/name`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The object `reference` names from an object of `own_namespace` (an empty namespace in a
    /// reference is the referring object's own).
    pub fn resolve(reference: &pb::ObjectRef, own_namespace: &str) -> Self {
        let namespace = if reference.namespace.is_empty() {
            own_namespace
        } else {
            &reference.namespace
        };
        Self::new(namespace, reference.name.clone())
    }

    /// A reference to this object with its namespace spelled out.
    pub fn to_ref(&self) -> pb::ObjectRef {
        pb::ObjectRef {
            name: self.name.clone(),
            namespace: self.namespace.clone(),
        }
    }
}

/// `namespace/name`.
impl fmt::Display for ObjKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The kind of object `obj` holds; `None` when the oneof is empty.
pub fn kind_of(obj: &pb::Object) -> Option<pb::Kind> {
    use pb::object::Object as O;
    Some(match obj.object.as_ref()? {
        O::Network(_) => pb::Kind::Network,
        O::NetworkInterface(_) => pb::Kind::NetworkInterface,
        O::VirtualIp(_) => pb::Kind::VirtualIp,
        O::PublicPrefix(_) => pb::Kind::PublicPrefix,
        O::NatGateway(_) => pb::Kind::NatGateway,
        O::LoadBalancer(_) => pb::Kind::LoadBalancer,
        O::NetworkPolicy(_) => pb::Kind::NetworkPolicy,
        O::Node(_) => pb::Kind::Node,
    })
}

/// The metadata of the object `obj` holds.
pub fn meta(obj: &pb::Object) -> Option<&pb::ObjectMeta> {
    use pb::object::Object as O;
    match obj.object.as_ref()? {
        O::Network(o) => o.metadata.as_ref(),
        O::NetworkInterface(o) => o.metadata.as_ref(),
        O::VirtualIp(o) => o.metadata.as_ref(),
        O::PublicPrefix(o) => o.metadata.as_ref(),
        O::NatGateway(o) => o.metadata.as_ref(),
        O::LoadBalancer(o) => o.metadata.as_ref(),
        O::NetworkPolicy(o) => o.metadata.as_ref(),
        O::Node(o) => o.metadata.as_ref(),
    }
}

/// The metadata of the object `obj` holds, for the API to set its fields.
pub fn meta_mut(obj: &mut pb::Object) -> Option<&mut pb::ObjectMeta> {
    use pb::object::Object as O;
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

/// The key of the object `obj` holds; `None` when it has no object or no metadata.
pub fn key_of(obj: &pb::Object) -> Option<ObjKey> {
    meta(obj).map(|m| ObjKey::new(m.namespace.clone(), m.name.clone()))
}

/// Every kind with a word, in the proto's order.
const KIND_WORDS: [(pb::Kind, &str); 8] = [
    (pb::Kind::Network, "networks"),
    (pb::Kind::NetworkInterface, "networkinterfaces"),
    (pb::Kind::VirtualIp, "virtualips"),
    (pb::Kind::PublicPrefix, "publicprefixes"),
    (pb::Kind::NatGateway, "natgateways"),
    (pb::Kind::LoadBalancer, "loadbalancers"),
    (pb::Kind::NetworkPolicy, "networkpolicies"),
    (pb::Kind::Node, "nodes"),
];

/// The word of `kind` in store keys, placed-object labels and logs (`networkinterfaces`);
/// `"unspecified"` for [`pb::Kind::Unspecified`], which no stored object has.
pub fn kind_word(kind: pb::Kind) -> &'static str {
    KIND_WORDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or("unspecified", |(_, w)| w)
}

/// The kind [`kind_word`] names `word`.
pub fn kind_from_word(word: &str) -> Option<pb::Kind> {
    KIND_WORDS.iter().find(|(_, w)| *w == word).map(|(k, _)| *k)
}
