//! The inventory by kind: the region actor moves objects in and out of the typed maps of
//! [`Inventory`] as generic [`pb::Object`]s, and asks which network an object belongs to.

use ferrinet_proto::api::v1 as pb;
use pb::object::Object as O;

use crate::realize::Inventory;
use crate::resources::ObjKey;

use super::actor::RegionState;

/// The object of `kind` at `key`, as a generic object.
pub(super) fn object(inv: &Inventory, kind: pb::Kind, key: &ObjKey) -> Option<pb::Object> {
    let o = match kind {
        pb::Kind::Network => O::Network(inv.networks.get(key)?.clone()),
        pb::Kind::NetworkInterface => O::NetworkInterface(inv.interfaces.get(key)?.clone()),
        pb::Kind::VirtualIp => O::VirtualIp(inv.virtual_ips.get(key)?.clone()),
        pb::Kind::PublicPrefix => O::PublicPrefix(inv.public_prefixes.get(key)?.clone()),
        pb::Kind::NatGateway => O::NatGateway(inv.nat_gateways.get(key)?.clone()),
        pb::Kind::LoadBalancer => O::LoadBalancer(inv.load_balancers.get(key)?.clone()),
        pb::Kind::NetworkPolicy => O::NetworkPolicy(inv.policies.get(key)?.clone()),
        pb::Kind::Node => O::Node(inv.nodes.get(&key.name)?.clone()),
        pb::Kind::Unspecified => return None,
    };
    Some(pb::Object { object: Some(o) })
}

/// Puts `obj` (of `kind`) at `key`.
pub(super) fn insert(inv: &mut Inventory, key: ObjKey, obj: pb::Object) {
    match obj.object {
        Some(O::Network(o)) => {
            inv.networks.insert(key, o);
        }
        Some(O::NetworkInterface(o)) => {
            inv.interfaces.insert(key, o);
        }
        Some(O::VirtualIp(o)) => {
            inv.virtual_ips.insert(key, o);
        }
        Some(O::PublicPrefix(o)) => {
            inv.public_prefixes.insert(key, o);
        }
        Some(O::NatGateway(o)) => {
            inv.nat_gateways.insert(key, o);
        }
        Some(O::LoadBalancer(o)) => {
            inv.load_balancers.insert(key, o);
        }
        Some(O::NetworkPolicy(o)) => {
            inv.policies.insert(key, o);
        }
        Some(O::Node(o)) => {
            inv.nodes.insert(key.name, o);
        }
        None => {}
    }
}

/// Removes the object of `kind` at `key`.
pub(super) fn remove(inv: &mut Inventory, kind: pb::Kind, key: &ObjKey) {
    match kind {
        pb::Kind::Network => {
            inv.networks.remove(key);
        }
        pb::Kind::NetworkInterface => {
            inv.interfaces.remove(key);
        }
        pb::Kind::VirtualIp => {
            inv.virtual_ips.remove(key);
        }
        pb::Kind::PublicPrefix => {
            inv.public_prefixes.remove(key);
        }
        pb::Kind::NatGateway => {
            inv.nat_gateways.remove(key);
        }
        pb::Kind::LoadBalancer => {
            inv.load_balancers.remove(key);
        }
        pb::Kind::NetworkPolicy => {
            inv.policies.remove(key);
        }
        pb::Kind::Node => {
            inv.nodes.remove(&key.name);
        }
        pb::Kind::Unspecified => {}
    }
}

/// The network a network-scoped object belongs to (a Network is its own).
pub(super) fn network_of(inv: &Inventory, kind: pb::Kind, key: &ObjKey) -> Option<ObjKey> {
    let r = match kind {
        pb::Kind::Network => return Some(key.clone()),
        pb::Kind::NetworkInterface => inv.interfaces.get(key)?.spec.as_ref()?.network_ref.clone(),
        pb::Kind::NatGateway => inv
            .nat_gateways
            .get(key)?
            .spec
            .as_ref()?
            .network_ref
            .clone(),
        pb::Kind::LoadBalancer => inv
            .load_balancers
            .get(key)?
            .spec
            .as_ref()?
            .network_ref
            .clone(),
        pb::Kind::NetworkPolicy => inv.policies.get(key)?.spec.as_ref()?.network_ref.clone(),
        pb::Kind::VirtualIp => {
            let bound = inv
                .virtual_ips
                .get(key)?
                .status
                .as_ref()?
                .bound_to
                .clone()?;
            let ni = ObjKey::resolve(&bound, &key.namespace);
            return network_of(inv, pb::Kind::NetworkInterface, &ni);
        }
        _ => None,
    }?;
    Some(ObjKey::resolve(&r, &key.namespace))
}

impl RegionState {
    pub(super) fn object(&self, kind: pb::Kind, key: &ObjKey) -> Option<pb::Object> {
        object(&self.inv, kind, key)
    }

    pub(super) fn insert(&mut self, _kind: pb::Kind, key: ObjKey, obj: pb::Object) {
        insert(&mut self.inv, key, obj);
    }

    pub(super) fn remove(&mut self, kind: pb::Kind, key: &ObjKey) {
        remove(&mut self.inv, kind, key);
    }

    pub(super) fn network_of(&self, kind: pb::Kind, key: &ObjKey) -> Option<ObjKey> {
        network_of(&self.inv, kind, key)
    }
}
