//! What one VNI's route table on this node should hold, and the changes that get dpservice
//! there: pure functions over what the subscriptions delivered, free of I/O.
//!
//! Sources of a table `V`, in order of precedence for one prefix:
//! 1. routes other nodes announce in `V` (STANDARD), the lowest next hop of each prefix: dpservice
//!    holds one next hop per prefix, and every node must pick the same one;
//! 2. the default routes (`0.0.0.0/0`, and `::/0` with IPv6) to the router;
//! 3. routes of each VNI `X` that exports into `V` (peering), lowest `X` first: the routes other
//!    nodes announce in `X` and this node's own routes in `X` (the servers do not send a node its
//!    own routes), inside `X`'s export filter for `V`, with next-hop VNI `X`.
//!
//! A route dpservice holds that no source wants is removed only when the source it would have
//! come from has delivered its complete set (end-of-snapshot): before that, "not received" may
//! just mean "not received yet".

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr};

use ferrinet_route_client::client::VniEvent;
use ferrinet_route_client::route::{NextHop, NextHopType, Route};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// Where a route sends packets: (next-hop VNI, underlay address).
pub type Hop = (u32, Ipv6Addr);

/// A route table: prefix -> next hop.
pub type Table = BTreeMap<IpNet, Hop>;

/// Why a route is in a desired table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Origin {
    /// Announced by another node in the table's own VNI.
    Own,
    /// The default route.
    Default,
    /// Exported into the table by this peered VNI.
    Peer(u32),
}

/// A desired table with the origin of each route.
pub type Desired = BTreeMap<IpNet, (Hop, Origin)>;

/// The routes one VNI's subscription delivered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Learned {
    /// STANDARD routes: prefix -> every next hop announced for it.
    pub standard: BTreeMap<IpNet, BTreeSet<NextHop>>,
    /// NAT routes (neighbour NATs).
    pub nats: BTreeSet<Route>,
    /// LOADBALANCER_TARGET routes: VIP -> target underlays.
    pub lb_targets: BTreeMap<IpAddr, BTreeSet<Ipv6Addr>>,
    /// The servers have delivered the initial set.
    pub complete: bool,
}

impl Learned {
    /// Applies one subscription event.
    pub fn learn(&mut self, e: VniEvent) {
        match e {
            VniEvent::Added(r) => self.add(r),
            VniEvent::Removed(r) => self.remove(&r),
            VniEvent::Complete => self.complete = true,
            // No server left: the removals that follow are not withdrawals; what is installed
            // stays until a server has sent its set again.
            VniEvent::Incomplete => self.complete = false,
            VniEvent::Snapshot { routes, complete } => {
                let was_complete = self.complete;
                *self = Self::default();
                for r in routes {
                    self.add(r);
                }
                self.complete = was_complete || complete;
            }
        }
    }

    fn add(&mut self, r: Route) {
        match r.next_hop.kind {
            NextHopType::Standard => {
                self.standard
                    .entry(r.destination)
                    .or_default()
                    .insert(r.next_hop);
            }
            NextHopType::Nat => {
                self.nats.insert(r);
            }
            NextHopType::LoadBalancerTarget => {
                self.lb_targets
                    .entry(r.destination.addr())
                    .or_default()
                    .insert(r.next_hop.address);
            }
        }
    }

    fn remove(&mut self, r: &Route) {
        match r.next_hop.kind {
            NextHopType::Standard => {
                if let Some(hops) = self.standard.get_mut(&r.destination) {
                    hops.remove(&r.next_hop);
                    if hops.is_empty() {
                        self.standard.remove(&r.destination);
                    }
                }
            }
            NextHopType::Nat => {
                self.nats.remove(r);
            }
            NextHopType::LoadBalancerTarget => {
                let vip = r.destination.addr();
                if let Some(t) = self.lb_targets.get_mut(&vip) {
                    t.remove(&r.next_hop.address);
                    if t.is_empty() {
                        self.lb_targets.remove(&vip);
                    }
                }
            }
        }
    }

    /// LOADBALANCER_TARGET routes held (one per VIP and target).
    pub fn lb_target_count(&self) -> usize {
        self.lb_targets.values().map(BTreeSet::len).sum()
    }
}

/// Whether `p` may be exported under `filter`: no filter exports everything; otherwise `p` must
/// lie inside one of the filter's prefixes. (Stricter than metalnet, which tests only `p`'s first
/// address, so a wider prefix could leak through.)
pub fn exported(filter: Option<&[IpNet]>, p: &IpNet) -> bool {
    filter.is_none_or(|f| f.iter().any(|f| f.contains(p)))
}

/// A VNI exporting into the table, with what is known of its routes.
#[derive(Debug, Clone, Copy)]
pub struct Export<'a> {
    /// The exporting VNI.
    pub vni: u32,
    /// Its export filter for the table's VNI.
    pub filter: Option<&'a [IpNet]>,
    /// What other nodes announce in it.
    pub learned: &'a Learned,
    /// This node's own STANDARD routes in it.
    pub local: &'a [Route],
}

/// Everything a table is computed from.
#[derive(Debug, Clone)]
pub struct Sources<'a> {
    /// The table's VNI.
    pub vni: u32,
    /// What other nodes announce in it.
    pub own: &'a Learned,
    /// Next hop of the default routes.
    pub router: Option<Ipv6Addr>,
    /// Install `::/0` too.
    pub ipv6: bool,
    /// Peered VNIs exporting into it, in any order.
    pub exports: Vec<Export<'a>>,
}

fn is_default(p: &IpNet) -> bool {
    p.prefix_len() == 0
}

fn hop_of(vni: u32, nh: &NextHop) -> Hop {
    let nh_vni = if nh.target_vni == 0 {
        vni
    } else {
        nh.target_vni
    };
    (nh_vni, nh.address)
}

/// The table dpservice should hold (see the module's precedence rules).
pub fn desired(s: &Sources<'_>) -> Desired {
    let mut t: Desired = s
        .own
        .standard
        .iter()
        .filter(|(p, _)| !is_default(p))
        .filter_map(|(p, hops)| Some((*p, (hop_of(s.vni, hops.first()?), Origin::Own))))
        .collect();
    if let Some(router) = s.router {
        t.insert(
            IpNet::V4(Ipv4Net::default()),
            ((s.vni, router), Origin::Default),
        );
        if s.ipv6 {
            t.insert(
                IpNet::V6(Ipv6Net::default()),
                ((s.vni, router), Origin::Default),
            );
        }
    }
    let mut exports = s.exports.clone();
    exports.sort_by_key(|e| e.vni);
    for e in exports.iter().filter(|e| e.vni != s.vni) {
        let origin = Origin::Peer(e.vni);
        // Own routes of this node first: a prefix announced here is reached here, whatever
        // other nodes announce for it.
        let mut peer: BTreeMap<IpNet, Hop> = BTreeMap::new();
        for r in e.local {
            let hop = hop_of(e.vni, &r.next_hop);
            peer.entry(r.destination)
                .and_modify(|h| *h = (*h).min(hop))
                .or_insert(hop);
        }
        for (p, hops) in &e.learned.standard {
            if let Some(nh) = hops.first() {
                peer.entry(*p).or_insert_with(|| hop_of(e.vni, nh));
            }
        }
        for (p, hop) in peer {
            if !is_default(&p) && exported(e.filter, &p) {
                t.entry(p).or_insert((hop, origin));
            }
        }
    }
    t
}

/// What the table should hold for one prefix: the same answer as [`desired`]`.get(p)`, at the
/// cost of one prefix, so that a pass after a few route changes touches only those.
pub fn desired_one(s: &Sources<'_>, p: &IpNet) -> Option<(Hop, Origin)> {
    if is_default(p) {
        let router = s.router?;
        let wanted = matches!(p, IpNet::V4(_)) || s.ipv6;
        return wanted.then_some(((s.vni, router), Origin::Default));
    }
    if let Some(nh) = s.own.standard.get(p).and_then(|hops| hops.first()) {
        return Some((hop_of(s.vni, nh), Origin::Own));
    }
    let mut exports = s.exports.clone();
    exports.sort_by_key(|e| e.vni);
    for e in exports.iter().filter(|e| e.vni != s.vni) {
        if !exported(e.filter, p) {
            continue;
        }
        let local = e
            .local
            .iter()
            .filter(|r| r.destination == *p)
            .map(|r| hop_of(e.vni, &r.next_hop))
            .min();
        let learned = || {
            e.learned
                .standard
                .get(p)
                .and_then(|hops| hops.first())
                .map(|nh| hop_of(e.vni, nh))
        };
        if let Some(hop) = local.or_else(learned) {
            return Some((hop, Origin::Peer(e.vni)));
        }
    }
    None
}

/// The plain table of a desired one.
pub fn table(d: &Desired) -> Table {
    d.iter().map(|(p, (hop, _))| (*p, *hop)).collect()
}

/// The changes that turn `actual` into `desired`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Routes to delete first (stale, or replaced by another next hop).
    pub delete: Vec<(IpNet, Hop)>,
    /// Routes to create after the deletions.
    pub create: Vec<(IpNet, Hop)>,
    /// Routes nobody wants, kept because their source is not complete yet.
    pub kept: usize,
}

impl Plan {
    /// Whether nothing is to be done.
    pub fn is_empty(&self) -> bool {
        self.delete.is_empty() && self.create.is_empty()
    }
}

/// The plan: a route nobody wants is deleted only if `may_remove(hop)` (its source is
/// complete); a route with another next hop than wanted is replaced.
pub fn plan(desired: &Table, actual: &Table, may_remove: impl Fn(&Hop) -> bool) -> Plan {
    let mut p = Plan::default();
    for (prefix, hop) in actual {
        match desired.get(prefix) {
            Some(w) if w == hop => {}
            Some(_) => p.delete.push((*prefix, *hop)),
            None if may_remove(hop) => p.delete.push((*prefix, *hop)),
            None => p.kept += 1,
        }
    }
    for (prefix, hop) in desired {
        if actual.get(prefix) != Some(hop) {
            p.create.push((*prefix, *hop));
        }
    }
    p
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
