//! The pure part of the region sync: given the objects the region placed on this node and the
//! node's current objects, what to create, update and delete, and in which order.
//!
//! Only objects labelled `ferrinet.dev/managed-by=region` are the region's; an object made
//! locally by an operator is never changed or deleted, not even when the region places an object
//! of the same name (that one is reported as refused instead). The order is the one the node
//! accepts: interfaces and load balancers that go are deleted first (freeing their VFs and their
//! networks), then networks are created or updated, then interfaces and load balancers, and
//! networks that go are deleted last, once nothing on the node uses them any more (the node
//! refuses to delete a network in use, and an interface deletion finishes asynchronously).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use ferrinet_proto::node::v1 as pb;

use crate::api::watch::kind_of;

/// The label that marks an object as placed by the region.
pub const MANAGED_BY: &str = "ferrinet.dev/managed-by";
/// Its value.
pub const REGION: &str = "region";

/// `kind/name`; networks order first.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// The kind.
    pub kind: pb::Kind,
    /// The name.
    pub name: String,
}

impl Key {
    /// The key of an object with a kind and a non-empty name.
    pub fn of(o: &pb::Object) -> Option<Self> {
        let kind = kind_of(o);
        let name = &metadata(o)?.name;
        (kind != pb::Kind::Unspecified && !name.is_empty()).then(|| Self {
            kind,
            name: name.clone(),
        })
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            pb::Kind::Network => "network",
            pb::Kind::NetworkInterface => "networkinterface",
            pb::Kind::LoadBalancer => "loadbalancer",
            pb::Kind::Unspecified => "object",
        };
        write!(f, "{kind}/{}", self.name)
    }
}

/// The object's metadata.
pub fn metadata(o: &pb::Object) -> Option<&pb::Metadata> {
    match &o.object {
        Some(pb::object::Object::Network(n)) => n.metadata.as_ref(),
        Some(pb::object::Object::NetworkInterface(i)) => i.metadata.as_ref(),
        Some(pb::object::Object::LoadBalancer(l)) => l.metadata.as_ref(),
        None => None,
    }
}

fn metadata_mut(o: &mut pb::Object) -> Option<&mut pb::Metadata> {
    match &mut o.object {
        Some(pb::object::Object::Network(n)) => Some(n.metadata.get_or_insert_default()),
        Some(pb::object::Object::NetworkInterface(i)) => Some(i.metadata.get_or_insert_default()),
        Some(pb::object::Object::LoadBalancer(l)) => Some(l.metadata.get_or_insert_default()),
        None => None,
    }
}

/// Whether the object carries `ferrinet.dev/managed-by=region`.
pub fn is_managed(o: &pb::Object) -> bool {
    metadata(o).is_some_and(|m| m.labels.get(MANAGED_BY).is_some_and(|v| v == REGION))
}

fn version(o: &pb::Object) -> u64 {
    metadata(o).map_or(0, |m| m.resource_version)
}

/// The object's phase.
pub fn phase(o: &pb::Object) -> pb::Phase {
    let p = match &o.object {
        Some(pb::object::Object::Network(n)) => n.status.as_ref().map_or(0, |s| s.phase),
        Some(pb::object::Object::NetworkInterface(i)) => i.status.as_ref().map_or(0, |s| s.phase),
        Some(pb::object::Object::LoadBalancer(l)) => l.status.as_ref().map_or(0, |s| s.phase),
        None => 0,
    };
    pb::Phase::try_from(p).unwrap_or(pb::Phase::Unspecified)
}

/// The network an interface or load balancer belongs to.
fn network_of(o: &pb::Object) -> Option<&str> {
    match &o.object {
        Some(pb::object::Object::NetworkInterface(i)) => i.spec.as_ref().map(|s| &*s.network),
        Some(pb::object::Object::LoadBalancer(l)) => l.spec.as_ref().map(|s| &*s.network),
        _ => None,
    }
}

/// Whether two objects have the same labels and spec: what the region decides.
pub fn same(a: &pb::Object, b: &pb::Object) -> bool {
    use pb::object::Object as O;
    metadata(a).map(|m| &m.labels) == metadata(b).map(|m| &m.labels)
        && match (&a.object, &b.object) {
            (Some(O::Network(x)), Some(O::Network(y))) => x.spec == y.spec,
            (Some(O::NetworkInterface(x)), Some(O::NetworkInterface(y))) => x.spec == y.spec,
            (Some(O::LoadBalancer(x)), Some(O::LoadBalancer(y))) => x.spec == y.spec,
            _ => false,
        }
}

/// What the node should hold for a placed object: its name, its labels (marked as the
/// region's, in case the region left that out) and its spec; versions, timestamps and status are
/// the node's own. `None` for an object without kind or name.
pub fn desired(placed: &pb::Object) -> Option<(Key, pb::Object)> {
    use pb::object::Object as O;
    let key = Key::of(placed)?;
    let mut o = placed.clone();
    match &mut o.object {
        Some(O::Network(n)) => n.status = None,
        Some(O::NetworkInterface(i)) => i.status = None,
        Some(O::LoadBalancer(l)) => l.status = None,
        None => return None,
    }
    let m = metadata_mut(&mut o)?;
    *m = pb::Metadata {
        name: std::mem::take(&mut m.name),
        labels: std::mem::take(&mut m.labels),
        ..Default::default()
    };
    m.labels.insert(MANAGED_BY.into(), REGION.into());
    Some((key, o))
}

fn with_version(o: &pb::Object, v: u64) -> pb::Object {
    let mut o = o.clone();
    if let Some(m) = metadata_mut(&mut o) {
        m.resource_version = v;
    }
    o
}

/// One change to make through the ApiActor.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Create the object.
    Create(pb::Object),
    /// Replace spec and labels; the resource_version is the one planned against, so a
    /// concurrent local change makes it fail instead of being overwritten.
    Update(pb::Object),
    /// Delete, at the version planned against.
    Delete(Key, u64),
}

impl Step {
    /// The object it changes.
    pub fn key(&self) -> Option<Key> {
        match self {
            Self::Create(o) | Self::Update(o) => Key::of(o),
            Self::Delete(k, _) => Some(k.clone()),
        }
    }
}

/// What to do, in order, and what cannot be done now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// The changes, in the order to make them.
    pub steps: Vec<Step>,
    /// Placed objects whose name a local (not region-managed) object holds: left alone.
    pub foreign: Vec<Key>,
    /// Objects that need another plan later: placed ones still being deleted on the node, and
    /// networks to delete that something on the node still uses.
    pub waiting: Vec<Key>,
}

/// Plans how the node's `current` objects become the `desired` ones (from [`desired`]).
///
/// `prune`: managed objects not desired are deleted (only once the region's snapshot is
/// complete). `hold`: desired objects neither created nor updated (the node refused them as they
/// are), but not pruned either.
pub fn plan(
    desired: &BTreeMap<Key, pb::Object>,
    current: &[pb::Object],
    prune: bool,
    hold: &BTreeSet<Key>,
) -> Plan {
    let current: BTreeMap<Key, &pb::Object> = current
        .iter()
        .filter_map(|o| Key::of(o).map(|k| (k, o)))
        .collect();
    let mut p = Plan::default();
    let (mut nets, mut users) = (Vec::new(), Vec::new());
    // Where each interface and load balancer points once the upserts are made.
    let mut uses: BTreeMap<&Key, Option<&str>> =
        current.iter().map(|(k, o)| (k, network_of(o))).collect();
    for (k, want) in desired {
        if hold.contains(k) {
            continue;
        }
        let step = match current.get(k) {
            None => Step::Create(want.clone()),
            Some(have) if !is_managed(have) => {
                p.foreign.push(k.clone());
                continue;
            }
            Some(have) if phase(have) == pb::Phase::Deleting => {
                p.waiting.push(k.clone());
                continue;
            }
            Some(have) if same(have, want) => continue,
            Some(have) => Step::Update(with_version(want, version(have))),
        };
        uses.insert(k, network_of(want));
        if k.kind == pb::Kind::Network {
            nets.push(step);
        } else {
            users.push(step);
        }
    }
    let mut net_deletes = Vec::new();
    if prune {
        for (k, have) in &current {
            if !is_managed(have) || desired.contains_key(k) || phase(have) == pb::Phase::Deleting {
                continue;
            }
            if k.kind != pb::Kind::Network {
                p.steps.push(Step::Delete(k.clone(), version(have)));
            } else if uses
                .iter()
                .any(|(u, n)| u.kind != pb::Kind::Network && *n == Some(k.name.as_str()))
            {
                p.waiting.push(k.clone());
            } else {
                net_deletes.push(Step::Delete(k.clone(), version(have)));
            }
        }
    }
    p.steps.extend(nets);
    p.steps.extend(users);
    p.steps.extend(net_deletes);
    p
}

#[cfg(test)]
#[path = "apply_tests.rs"]
mod tests;
