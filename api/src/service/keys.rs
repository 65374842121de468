//! Where the region API keeps its objects in the store:
//!
//! ```text
//! /ferrinet/v1/objects/<kind>/<namespace>/<name>      -> api.v1.Object (spec and status)
//! /ferrinet/v1/objects/nodes/-/<name>                 -> api.v1.Object (a Node: no namespace)
//! /ferrinet/v1/placed/<node>/<node kind>/<node name>  -> node.v1.Object (what the node must hold)
//! ```
//!
//! `<kind>` is the kind's word (`networks`, `networkinterfaces`, ...). An object's
//! resource_version is its key's mod revision, so a stored value's own `resource_version` is not
//! read back; the reader sets it. Placed objects live under one prefix per node, so a node's
//! watch is a store watch of that prefix, resumable by revision on any replica.

use ferrinet_proto::api::v1 as pb;
use ferrinet_proto::node::v1 as node_pb;

use crate::resources::{ObjKey, kind_from_word, kind_word};

/// Every object.
pub const OBJECTS: &str = "/ferrinet/v1/objects/";
/// Every placed object.
pub const PLACED: &str = "/ferrinet/v1/placed/";

/// The namespace segment of objects without a namespace: not a DNS label, so no namespace
/// collides with it.
const NO_NAMESPACE: &str = "-";

fn namespace_segment(namespace: &str) -> &str {
    if namespace.is_empty() {
        NO_NAMESPACE
    } else {
        namespace
    }
}

/// The key of an object.
pub fn object_key(kind: pb::Kind, key: &ObjKey) -> String {
    format!(
        "{OBJECTS}{}/{}/{}",
        kind_word(kind),
        namespace_segment(&key.namespace),
        key.name
    )
}

/// The prefix of a kind's objects, optionally of one namespace.
pub fn kind_prefix(kind: pb::Kind, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("{OBJECTS}{}/{}/", kind_word(kind), namespace_segment(ns)),
        None => format!("{OBJECTS}{}/", kind_word(kind)),
    }
}

/// The kind and key of a stored object's key.
pub fn parse_object_key(key: &str) -> Option<(pb::Kind, ObjKey)> {
    let rest = key.strip_prefix(OBJECTS)?;
    let mut parts = rest.split('/');
    let (kind, ns, name) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || name.is_empty() {
        return None;
    }
    let namespace = if ns == NO_NAMESPACE { "" } else { ns };
    Some((
        kind_from_word(kind)?,
        ObjKey {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        },
    ))
}

/// The word of a node object kind in placed keys.
pub fn node_kind_word(kind: node_pb::Kind) -> &'static str {
    match kind {
        node_pb::Kind::Network => "networks",
        node_pb::Kind::NetworkInterface => "networkinterfaces",
        node_pb::Kind::LoadBalancer => "loadbalancers",
        node_pb::Kind::Unspecified => "unspecified",
    }
}

fn node_kind_from_word(word: &str) -> Option<node_pb::Kind> {
    match word {
        "networks" => Some(node_pb::Kind::Network),
        "networkinterfaces" => Some(node_pb::Kind::NetworkInterface),
        "loadbalancers" => Some(node_pb::Kind::LoadBalancer),
        _ => None,
    }
}

/// The prefix of everything placed on `node`.
pub fn node_prefix(node: &str) -> String {
    format!("{PLACED}{node}/")
}

/// The key of a node object placed on `node`.
pub fn placed_key(node: &str, kind: node_pb::Kind, name: &str) -> String {
    format!("{PLACED}{node}/{}/{name}", node_kind_word(kind))
}

/// The node, kind and name of a placed key.
pub fn parse_placed_key(key: &str) -> Option<(String, node_pb::Kind, String)> {
    let rest = key.strip_prefix(PLACED)?;
    let mut parts = rest.split('/');
    let (node, kind, name) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || name.is_empty() {
        return None;
    }
    Some((node.to_owned(), node_kind_from_word(kind)?, name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let k = ObjKey {
            namespace: "t1".into(),
            name: "web".into(),
        };
        let key = object_key(pb::Kind::NetworkInterface, &k);
        assert_eq!(key, "/ferrinet/v1/objects/networkinterfaces/t1/web");
        assert_eq!(
            parse_object_key(&key),
            Some((pb::Kind::NetworkInterface, k))
        );
        let node = ObjKey {
            namespace: String::new(),
            name: "node-1".into(),
        };
        let key = object_key(pb::Kind::Node, &node);
        assert_eq!(key, "/ferrinet/v1/objects/nodes/-/node-1");
        assert_eq!(parse_object_key(&key), Some((pb::Kind::Node, node)));
        assert!(key.starts_with(&kind_prefix(pb::Kind::Node, Some(""))));
        let p = placed_key("node-1", node_pb::Kind::NetworkInterface, "t1_web");
        assert_eq!(
            parse_placed_key(&p),
            Some((
                "node-1".into(),
                node_pb::Kind::NetworkInterface,
                "t1_web".into()
            ))
        );
        assert!(p.starts_with(&node_prefix("node-1")));
        assert_eq!(parse_placed_key("/ferrinet/v1/placed/n/x/y"), None);
        assert_eq!(parse_object_key("/ferrinet/v1/objects/nope/a/b"), None);
    }
}
