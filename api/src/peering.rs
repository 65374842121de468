//! Network peering (OEP-8): two networks are peered when each lists the other in
//! `spec.peerings`. This module is the state machine behind a peering item's status, as a pure
//! function of all networks, the current time and a TTL ([`compute_peerings`]).
//!
//! A `spec.peerings` item is
//!
//! - **Ready** when the network it names exists and has an item naming this network back;
//! - **Pending** while the named network does not exist or has no item naming this one;
//! - **Failed** when it can never become Ready as written: the two networks' address ranges
//!   would collide once routes are exchanged, or it names its own network, or it repeats an
//!   earlier item's name or target;
//! - **Expired** once it has been Pending or Failed, without a break, for longer than the TTL:
//!   the caller then drops the item, so unanswered requests do not linger.
//!
//! The TTL clock of an item runs from the moment it stopped being Ready (or was first seen).
//! The caller keeps that moment: it stores each computed [`PeeringStatus::unready_since`] and
//! passes it back as [`PeeringItem::unready_since`] next time (for an item never computed,
//! the time it was first seen). A Ready item that loses its partner (the partner network is
//! deleted, or drops its item) is Pending again with a fresh TTL.
//!
//! An item's optional `prefixes` limit which of its network's prefixes are exposed to the peer
//! (empty: all of them). Peering fails if either network would receive a route into its own
//! address space: one network's prefixes overlapping what the other exposes.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use ipnet::IpNet;

#[cfg(test)]
mod tests;
mod validate;

pub use validate::{PeeringErrors, PeeringFieldError, PeeringProblem};

/// A network's namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetworkKey {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl NetworkKey {
    /// The network `namespace/name`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

/// `namespace/name`.
impl fmt::Display for NetworkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What peering needs of a network.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeeringNetwork {
    /// The CIDRs of its subnets.
    pub prefixes: Vec<IpNet>,
    /// `spec.peerings`, in order.
    pub peerings: Vec<PeeringItem>,
}

/// A `spec.peerings` item, with the time its TTL counts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeeringItem {
    /// `name`: unique among the network's items; the status item carries the same name.
    pub name: String,
    /// `networkRef`.
    pub network_ref: PeeringRef,
    /// `prefixes`: which of this network's prefixes the peer may reach; empty for all.
    pub prefixes: Vec<IpNet>,
    /// When the item last stopped being Ready: the previous computation's
    /// [`PeeringStatus::unready_since`], or the time the item was first seen if it was never
    /// computed. `None` means it was Ready: if it is not any more, its TTL starts now.
    pub unready_since: Option<SystemTime>,
}

impl PeeringItem {
    /// An item naming `network_ref`, first seen at `first_seen`, without a prefix filter.
    pub fn new(name: impl Into<String>, network_ref: PeeringRef, first_seen: SystemTime) -> Self {
        Self {
            name: name.into(),
            network_ref,
            prefixes: Vec::new(),
            unready_since: Some(first_seen),
        }
    }
}

/// `networkRef`: a network's name and, if not the referring network's, its namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeeringRef {
    /// `name`.
    pub name: String,
    /// `namespace`; `None` (or empty) is the referring network's namespace.
    pub namespace: Option<String>,
}

impl PeeringRef {
    /// A network of the referring network's namespace.
    pub fn local(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            namespace: None,
        }
    }

    /// A network of `namespace`.
    pub fn in_namespace(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            namespace: Some(namespace.into()),
        }
    }

    /// The network referred to from a network of `own_namespace`.
    pub fn resolve(&self, own_namespace: &str) -> NetworkKey {
        let namespace = match self.namespace.as_deref() {
            None | Some("") => own_namespace,
            Some(ns) => ns,
        };
        NetworkKey::new(namespace, self.name.clone())
    }
}

/// Why an item is Pending.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PendingReason {
    /// The named network does not exist (yet).
    #[error("the network does not exist")]
    NetworkNotFound,
    /// The named network has no item naming this network.
    #[error("the network has no peering naming this network")]
    NotReciprocated,
}

/// Why an item is Failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FailureReason {
    /// The item names its own network.
    #[error("a network cannot peer with itself")]
    SelfReference,
    /// The networks' address ranges would collide: `ours` (this network's) overlaps `theirs`.
    #[error("prefix {ours} overlaps the peer's prefix {theirs}")]
    Overlap {
        /// This network's prefix (or exposed prefix).
        ours: IpNet,
        /// The peer's prefix (or exposed prefix).
        theirs: IpNet,
    },
    /// An earlier item has the same name; only the first counts.
    #[error("the name is used already by spec.peerings[{first}]")]
    DuplicateName {
        /// The index of the first item with the name.
        first: usize,
    },
    /// An earlier item names the same network; only the first counts.
    #[error("peering {first:?} names the same network already")]
    DuplicateReference {
        /// The name of the first item naming the network.
        first: String,
    },
}

/// The state an item was in when it expired.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unready {
    /// It was Pending.
    #[error("pending: {0}")]
    Pending(PendingReason),
    /// It was Failed.
    #[error("failed: {0}")]
    Failed(FailureReason),
}

/// The state of a `spec.peerings` item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeeringState {
    /// Peered: the named network names this one back, in its item `peer_peering`.
    Ready {
        /// The name of the peer's matching item.
        peer_peering: String,
    },
    /// Waiting for the other side.
    Pending {
        /// Why.
        reason: PendingReason,
        /// When it expires if still unready (`None`: beyond the representable time).
        expires_at: Option<SystemTime>,
    },
    /// Not possible as written.
    Failed {
        /// Why.
        reason: FailureReason,
        /// When it expires if still unready.
        expires_at: Option<SystemTime>,
    },
    /// Unready for longer than the TTL: the caller drops the item.
    Expired {
        /// The state it expired in.
        last: Unready,
        /// When its TTL ran out.
        expired_at: SystemTime,
    },
}

impl PeeringState {
    /// The phase alone.
    pub fn phase(&self) -> PeeringPhase {
        match self {
            Self::Ready { .. } => PeeringPhase::Ready,
            Self::Pending { .. } => PeeringPhase::Pending,
            Self::Failed { .. } => PeeringPhase::Failed,
            Self::Expired { .. } => PeeringPhase::Expired,
        }
    }

    /// Whether the item is Ready.
    pub fn is_ready(&self) -> bool {
        matches!(self, Self::Ready { .. })
    }
}

/// The phase of a peering item, as `status.peerings[].state` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PeeringPhase {
    /// Peered.
    Ready,
    /// Waiting for the other side.
    Pending,
    /// Not possible as written.
    Failed,
    /// To be dropped.
    Expired,
}

impl fmt::Display for PeeringPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ready => "Ready",
            Self::Pending => "Pending",
            Self::Failed => "Failed",
            Self::Expired => "Expired",
        })
    }
}

/// The computed status of one `spec.peerings` item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeeringStatus {
    /// The item's name.
    pub name: String,
    /// The network it names (namespace resolved).
    pub peer: NetworkKey,
    /// Its state.
    pub state: PeeringState,
    /// When it stopped being Ready; `None` while Ready. Pass it back as
    /// [`PeeringItem::unready_since`].
    pub unready_since: Option<SystemTime>,
}

/// An item of another network that names this one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingPeering {
    /// The network whose item it is.
    pub from: NetworkKey,
    /// The item's name.
    pub peering: String,
    /// The item's state.
    pub state: PeeringState,
}

/// A network this one is peered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeeredNetwork {
    /// The peer.
    pub network: NetworkKey,
    /// This network's item.
    pub peering: String,
    /// The peer's item.
    pub peer_peering: String,
    /// The peer's prefixes this network routes to it: what the peer exposes.
    pub prefixes: Vec<IpNet>,
}

/// Everything peering says about one network.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetworkPeerings {
    /// The status of each `spec.peerings` item, in spec order.
    pub peerings: Vec<PeeringStatus>,
    /// Other networks' items naming this network, by network then item name.
    pub incoming: Vec<IncomingPeering>,
    /// The networks peered with this one, by key.
    pub peered: Vec<PeeredNetwork>,
}

/// An item's verdict before the TTL is applied.
enum Verdict {
    Ready { peer_peering: String },
    Unready(Unready),
}

/// The peering state of every network: each item's status, who names each network, and who
/// each network is peered with. Every network of `networks` has an entry; the result depends
/// only on the arguments.
pub fn compute_peerings(
    networks: &BTreeMap<NetworkKey, PeeringNetwork>,
    now: SystemTime,
    ttl: Duration,
) -> BTreeMap<NetworkKey, NetworkPeerings> {
    // The item that speaks for each (network, target) pair; later repeats are Failed.
    let mut primary: BTreeMap<(&NetworkKey, NetworkKey), usize> = BTreeMap::new();
    let mut verdicts: BTreeMap<&NetworkKey, Vec<Option<Verdict>>> = BTreeMap::new();
    for (key, network) in networks {
        let mut out = Vec::with_capacity(network.peerings.len());
        for (i, item) in network.peerings.iter().enumerate() {
            let target = item.network_ref.resolve(&key.namespace);
            let failed = |reason| Some(Verdict::Unready(Unready::Failed(reason)));
            let verdict = if let Some(first) = network.peerings[..i]
                .iter()
                .position(|p| p.name == item.name)
            {
                failed(FailureReason::DuplicateName { first })
            } else if target == *key {
                failed(FailureReason::SelfReference)
            } else if let Some(&first) = primary.get(&(key, target.clone())) {
                failed(FailureReason::DuplicateReference {
                    first: network.peerings[first].name.clone(),
                })
            } else {
                primary.insert((key, target), i);
                None
            };
            out.push(verdict);
        }
        verdicts.insert(key, out);
    }
    for ((key, target), &i) in &primary {
        let verdict = match networks.get_key_value(target) {
            None => Verdict::Unready(Unready::Pending(PendingReason::NetworkNotFound)),
            Some((target_key, peer)) => match primary.get(&(target_key, (*key).clone())) {
                None => Verdict::Unready(Unready::Pending(PendingReason::NotReciprocated)),
                Some(&j) => {
                    let (ours, theirs) = (&networks[*key], peer);
                    match collision(key, ours, i, target_key, theirs, j) {
                        Some((ours, theirs)) => {
                            Verdict::Unready(Unready::Failed(FailureReason::Overlap {
                                ours,
                                theirs,
                            }))
                        }
                        None => Verdict::Ready {
                            peer_peering: theirs.peerings[j].name.clone(),
                        },
                    }
                }
            },
        };
        if let Some(slot) = verdicts.get_mut(*key).and_then(|v| v.get_mut(i)) {
            *slot = Some(verdict);
        }
    }

    let mut out: BTreeMap<NetworkKey, NetworkPeerings> = networks
        .keys()
        .map(|k| (k.clone(), NetworkPeerings::default()))
        .collect();
    for (key, network) in networks {
        let mine = verdicts.remove(key).unwrap_or_default();
        for (item, verdict) in network.peerings.iter().zip(mine) {
            let peer = item.network_ref.resolve(&key.namespace);
            // Every item got a verdict above; a missing one can only be a bug, and Pending is
            // its harmless reading.
            let verdict = verdict.unwrap_or(Verdict::Unready(Unready::Pending(
                PendingReason::NotReciprocated,
            )));
            let status = status(item, peer.clone(), verdict, now, ttl);
            if let Some(entry) = out.get_mut(&peer)
                && peer != *key
            {
                entry.incoming.push(IncomingPeering {
                    from: key.clone(),
                    peering: item.name.clone(),
                    state: status.state.clone(),
                });
            }
            if let (PeeringState::Ready { peer_peering }, Some(theirs)) =
                (&status.state, networks.get(&peer))
            {
                let exposed = theirs
                    .peerings
                    .iter()
                    .find(|p| p.name == *peer_peering)
                    .map(|p| exposed(&theirs.prefixes, &p.prefixes))
                    .unwrap_or_default();
                if let Some(entry) = out.get_mut(key) {
                    entry.peered.push(PeeredNetwork {
                        network: peer.clone(),
                        peering: item.name.clone(),
                        peer_peering: peer_peering.clone(),
                        prefixes: exposed,
                    });
                }
            }
            if let Some(entry) = out.get_mut(key) {
                entry.peerings.push(status);
            }
        }
    }
    for entry in out.values_mut() {
        entry
            .incoming
            .sort_by(|a, b| (&a.from, &a.peering).cmp(&(&b.from, &b.peering)));
        entry.peered.sort_by(|a, b| a.network.cmp(&b.network));
    }
    out
}

/// The status of an item from its verdict: Ready resets the TTL clock, anything else keeps
/// it running and expires the item once it has run out.
fn status(
    item: &PeeringItem,
    peer: NetworkKey,
    verdict: Verdict,
    now: SystemTime,
    ttl: Duration,
) -> PeeringStatus {
    let (state, unready_since) = match verdict {
        Verdict::Ready { peer_peering } => (PeeringState::Ready { peer_peering }, None),
        Verdict::Unready(last) => {
            let since = item.unready_since.unwrap_or(now);
            let expires_at = since.checked_add(ttl);
            let state = match (expires_at, last) {
                (Some(expired_at), last) if now > expired_at => {
                    PeeringState::Expired { last, expired_at }
                }
                (expires_at, Unready::Pending(reason)) => {
                    PeeringState::Pending { reason, expires_at }
                }
                (expires_at, Unready::Failed(reason)) => {
                    PeeringState::Failed { reason, expires_at }
                }
            };
            (state, Some(since))
        }
    };
    PeeringStatus {
        name: item.name.clone(),
        peer,
        state,
        unready_since,
    }
}

/// The prefixes a network exposes through an item: all its prefixes, or the parts of them the
/// item's filter names. Sorted, without duplicates.
pub fn exposed(own: &[IpNet], filter: &[IpNet]) -> Vec<IpNet> {
    let mut out: Vec<IpNet> = if filter.is_empty() {
        own.iter().map(IpNet::trunc).collect()
    } else {
        // Two CIDRs that share addresses nest, so their intersection is the smaller one.
        own.iter()
            .flat_map(|o| {
                filter.iter().filter_map(move |f| {
                    let (o, f) = (o.trunc(), f.trunc());
                    if o.contains(&f) {
                        Some(f)
                    } else if f.contains(&o) {
                        Some(o)
                    } else {
                        None
                    }
                })
            })
            .collect()
    };
    out.sort();
    out.dedup();
    out
}

/// The first colliding pair of prefixes between two networks matched through items `i` of `a`
/// and `j` of `b`, as `(a's, b's)`: a network's own prefixes must not overlap what the other
/// exposes. The search always runs from the lower key, so both sides report the same pair.
fn collision(
    a_key: &NetworkKey,
    a: &PeeringNetwork,
    i: usize,
    b_key: &NetworkKey,
    b: &PeeringNetwork,
    j: usize,
) -> Option<(IpNet, IpNet)> {
    let filter = |n: &PeeringNetwork, k: usize| {
        n.peerings
            .get(k)
            .map(|p| p.prefixes.as_slice())
            .unwrap_or_default()
            .to_vec()
    };
    let side = |n: &PeeringNetwork, k: usize| {
        let own: Vec<IpNet> = n.prefixes.iter().map(IpNet::trunc).collect();
        let out = exposed(&own, &filter(n, k));
        (own, out)
    };
    let (a_side, b_side) = (side(a, i), side(b, j));
    let (lo, hi, swapped) = if a_key <= b_key {
        (&a_side, &b_side, false)
    } else {
        (&b_side, &a_side, true)
    };
    let overlapping = |xs: &[IpNet], ys: &[IpNet]| -> Vec<(IpNet, IpNet)> {
        xs.iter()
            .flat_map(|x| ys.iter().map(move |y| (*x, *y)))
            .filter(|(x, y)| x.contains(y) || y.contains(x))
            .collect()
    };
    let mut pairs = overlapping(&lo.0, &hi.1);
    pairs.extend(overlapping(&lo.1, &hi.0));
    let (x, y) = pairs.into_iter().min()?;
    Some(if swapped { (y, x) } else { (x, y) })
}
