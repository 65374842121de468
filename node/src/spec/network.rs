//! Network: a VNI and its peerings.
//!
//! A network is what interfaces and load balancers refer to by name; the node uses it for the
//! VNI (the route servers' and dpservice's key) and for peering: routes of this VNI are also
//! installed into each peered VNI, optionally only those inside the listed prefixes (an export
//! filter, as metalnet's `peeredPrefixes`).

use std::collections::{BTreeMap, BTreeSet};

use ferrinet_proto::node::v1 as pb;
use ferrinet_route_client::route::MAX_VNI;
use ipnet::IpNet;

use super::fields::{strict_prefix, validate_metadata};
use super::{Options, SpecError};

/// A validated network spec.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NetworkSpec {
    /// The VNI, `1..=16777215`.
    pub vni: u32,
    /// Peered VNIs. `None`: every route of this VNI is exported to the peer; `Some(prefixes)`:
    /// only routes inside one of them (sorted; an empty list exports nothing).
    pub peerings: BTreeMap<u32, Option<Vec<IpNet>>>,
}

fn vni(field: &str, value: u32) -> Result<u32, SpecError> {
    if (1..=MAX_VNI).contains(&value) {
        Ok(value)
    } else {
        Err(SpecError::new(
            field,
            format!("{value} is not a VNI (1 to {MAX_VNI})"),
        ))
    }
}

/// Validates a Network and returns its name and spec.
///
/// Rules: `spec.id` is a VNI; `peered_ids` are VNIs, without duplicates and not the network's
/// own; each `peered_prefixes[i].id` is one of `peered_ids` and appears once; its prefixes parse,
/// have no host bits and no duplicates. Prefixes of either family are accepted whatever
/// [`Options::ipv6_enabled`] says: a filter is harmless, and networks are shared by nodes that may
/// differ in that setting.
pub fn validate_network(
    network: &pb::Network,
    _options: &Options,
) -> Result<(String, NetworkSpec), SpecError> {
    let name = validate_metadata(network.metadata.as_ref())?;
    let spec = network
        .spec
        .as_ref()
        .ok_or_else(|| SpecError::new("spec", "missing"))?;
    let own = vni("spec.id", spec.id)?;

    let mut peerings: BTreeMap<u32, Option<Vec<IpNet>>> = BTreeMap::new();
    let mut first_index = BTreeMap::new();
    for (i, &peer) in spec.peered_ids.iter().enumerate() {
        let field = format!("spec.peered_ids[{i}]");
        vni(&field, peer)?;
        if peer == own {
            return Err(SpecError::new(
                field,
                format!("{peer} is the network's own id"),
            ));
        }
        if let Some(first) = first_index.insert(peer, i) {
            return Err(SpecError::new(
                field,
                format!("{peer} duplicates spec.peered_ids[{first}]"),
            ));
        }
        peerings.insert(peer, None);
    }

    let mut filtered = BTreeMap::new();
    for (i, pp) in spec.peered_prefixes.iter().enumerate() {
        let id_field = format!("spec.peered_prefixes[{i}].id");
        if !peerings.contains_key(&pp.id) {
            return Err(SpecError::new(
                id_field,
                format!("{} is not in spec.peered_ids", pp.id),
            ));
        }
        if let Some(first) = filtered.insert(pp.id, i) {
            return Err(SpecError::new(
                id_field,
                format!("{} duplicates spec.peered_prefixes[{first}].id", pp.id),
            ));
        }
        let mut prefixes = BTreeSet::new();
        for (j, text) in pp.prefixes.iter().enumerate() {
            let field = format!("spec.peered_prefixes[{i}].prefixes[{j}]");
            let net = strict_prefix(&field, text)?;
            if !prefixes.insert(net) {
                return Err(SpecError::new(field, format!("{net} is listed twice")));
            }
        }
        peerings.insert(pp.id, Some(prefixes.into_iter().collect()));
    }

    Ok((name, NetworkSpec { vni: own, peerings }))
}
