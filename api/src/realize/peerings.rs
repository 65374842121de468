//! The peering state of every network ([`realize_peerings`]): the peering module's state
//! machine fed from the stored networks, its answer in the shape of `NetworkStatus`.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferrinet_proto::api::v1 as pb;
use ipnet::IpNet;

use super::Inventory;
use crate::peering::{
    NetworkKey, PeeringItem, PeeringNetwork, PeeringRef, PeeringState, compute_peerings,
};
use crate::resources::ObjKey;

/// What peering says about one network, for its status.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetworkDerived {
    /// `status.peerings`: one per `spec.peerings` item in spec order, except the expired ones.
    pub peerings: Vec<pb::NetworkPeeringStatus>,
    /// `status.incoming_peerings`: the networks whose Ready items name this one, sorted.
    pub incoming: Vec<pb::ObjectRef>,
    /// `status.peering_unready_since_unix_ms`: when each item that is not Ready stopped being
    /// Ready (or was first seen). Persist it: it is fed back next time.
    pub unready_since_unix_ms: BTreeMap<String, i64>,
    /// The items past their TTL: the caller drops them from the spec.
    pub expired: Vec<String>,
}

/// The peering states of every network of `inv` at `now`; items unready for longer than `ttl`
/// expire. The persisted `status.peering_unready_since_unix_ms` is where each item's TTL
/// counts from; an item without an entry counts from `now`.
pub fn realize_peerings(
    inv: &Inventory,
    now: SystemTime,
    ttl: Duration,
) -> BTreeMap<ObjKey, NetworkDerived> {
    let networks: BTreeMap<NetworkKey, PeeringNetwork> = inv
        .networks
        .iter()
        .map(|(key, n)| {
            let key = NetworkKey::new(key.namespace.clone(), key.name.clone());
            (key, peering_network(n, now))
        })
        .collect();
    let computed = compute_peerings(&networks, now, ttl);
    computed
        .into_iter()
        .map(|(key, np)| {
            let mut out = NetworkDerived::default();
            for status in np.peerings {
                let (state, reason) = match &status.state {
                    PeeringState::Ready { .. } => ("Ready", String::new()),
                    PeeringState::Pending { reason, .. } => ("Pending", reason.to_string()),
                    PeeringState::Failed { reason, .. } => ("Failed", reason.to_string()),
                    PeeringState::Expired { .. } => {
                        out.expired.push(status.name.clone());
                        continue;
                    }
                };
                let peer = ObjKey::new(status.peer.namespace.clone(), status.peer.name.clone());
                let peer_vni = if status.state.is_ready() {
                    vni_of(inv, &peer)
                } else {
                    0
                };
                if let Some(since) = status.unready_since {
                    out.unready_since_unix_ms
                        .entry(status.name.clone())
                        .or_insert_with(|| to_unix_ms(since));
                }
                out.peerings.push(pb::NetworkPeeringStatus {
                    name: status.name,
                    state: state.to_string(),
                    reason,
                    network: peer.to_string(),
                    peer_vni,
                });
            }
            let mut incoming: Vec<pb::ObjectRef> = np
                .incoming
                .iter()
                .filter(|i| i.state.is_ready())
                .map(|i| pb::ObjectRef {
                    name: i.from.name.clone(),
                    namespace: i.from.namespace.clone(),
                })
                .collect();
            incoming.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
            incoming.dedup();
            out.incoming = incoming;
            (ObjKey::new(key.namespace, key.name), out)
        })
        .collect()
}

/// The VNI of a network, 0 when it has none yet or does not exist.
pub(crate) fn vni_of(inv: &Inventory, key: &ObjKey) -> u32 {
    inv.networks
        .get(key)
        .and_then(|n| n.status.as_ref())
        .map_or(0, |s| s.vni)
}

/// What peering needs of a stored network. Stored specs were validated, so text that does not
/// parse is left out rather than reported.
fn peering_network(network: &pb::Network, now: SystemTime) -> PeeringNetwork {
    let Some(spec) = &network.spec else {
        return PeeringNetwork::default();
    };
    let since = network
        .status
        .as_ref()
        .map(|s| &s.peering_unready_since_unix_ms);
    PeeringNetwork {
        prefixes: network_prefixes(spec),
        peerings: spec
            .peerings
            .iter()
            .map(|p| {
                let reference = p.network_ref.clone().unwrap_or_default();
                PeeringItem {
                    name: p.name.clone(),
                    network_ref: PeeringRef {
                        name: reference.name,
                        namespace: Some(reference.namespace).filter(|ns| !ns.is_empty()),
                    },
                    prefixes: p.prefixes.iter().filter_map(|t| t.parse().ok()).collect(),
                    unready_since: Some(
                        since
                            .and_then(|m| m.get(&p.name))
                            .map_or(now, |&ms| from_unix_ms(ms)),
                    ),
                }
            })
            .collect(),
    }
}

/// The CIDRs of a network's subnets and `spec.prefix`.
pub(crate) fn network_prefixes(spec: &pb::NetworkSpec) -> Vec<IpNet> {
    spec.subnets
        .iter()
        .map(|s| s.cidr.as_str())
        .chain((!spec.prefix.is_empty()).then_some(spec.prefix.as_str()))
        .filter_map(|t| t.parse().ok())
        .collect()
}

/// Milliseconds since the Unix epoch, negative before it, saturating.
pub(crate) fn to_unix_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

/// The time `ms` milliseconds after the Unix epoch (before it when negative); the epoch when
/// the platform cannot represent it.
pub(crate) fn from_unix_ms(ms: i64) -> SystemTime {
    let d = Duration::from_millis(ms.unsigned_abs());
    let t = if ms >= 0 {
        UNIX_EPOCH.checked_add(d)
    } else {
        UNIX_EPOCH.checked_sub(d)
    };
    t.unwrap_or(UNIX_EPOCH)
}
