//! Merges the routes received from several servers into one view, free of I/O.
//!
//! A route is present while at least one server provides it: the first server to provide it
//! makes it appear (ADD), the last one to stop makes it disappear (REMOVE). A server whose session
//! dies stops providing everything at once, so losing one of two servers withdraws only the
//! routes that server alone had.
//!
//! Received STANDARD routes whose (VNI, prefix) this client announces itself as STANDARD are
//! hidden, as in the reference client: a node must not install a route to its own prefix via
//! someone else. They are kept, though, and appear as soon as the client stops announcing that
//! prefix. Other kinds are never hidden: the load-balancer targets other nodes announce for a
//! VIP this node announces (its load balancer), and the NAT routes of other port slices of a NAT
//! IP this node shares, are exactly what this node needs.

use std::collections::HashMap;

use ipnet::IpNet;
use smallvec::SmallVec;

use super::servers::{ServerId, ServerSet};
use crate::route::{Action, NextHop, NextHopType, Route};

/// A change of the merged view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteEvent {
    /// ADD: the route appeared; REMOVE: it disappeared.
    pub action: Action,
    /// The route.
    pub route: Route,
}

/// Next hops of one (VNI, prefix), each with the set of servers providing it. Nearly always one.
type Hops = SmallVec<[(NextHop, ServerSet); 1]>;

/// The merged view of every server's routes.
#[derive(Debug, Default, Clone)]
pub struct Aggregator {
    /// VNI -> prefix -> next hops with their providers. Keyed by VNI first so that unsubscribing
    /// drops a VNI without a scan, and by (VNI, prefix) so that the own-prefix filter is a lookup.
    vnis: HashMap<u32, HashMap<IpNet, Hops>>,
    /// (VNI, prefix) this client announces, with how many of its routes use it.
    own: HashMap<(u32, IpNet), usize>,
    /// Received routes (visible or hidden).
    len: usize,
}

fn ev(action: Action, route: Route) -> RouteEvent {
    RouteEvent { action, route }
}

fn route(vni: u32, destination: IpNet, next_hop: NextHop) -> Route {
    Route {
        vni,
        destination,
        next_hop,
    }
}

impl Aggregator {
    /// An empty view.
    pub fn new() -> Self {
        Self::default()
    }

    /// Received routes held, visible or hidden by the own-prefix filter.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no route is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn hidden(&self, vni: u32, prefix: IpNet, hop: &NextHop) -> bool {
        hop.kind == NextHopType::Standard && self.own.contains_key(&(vni, prefix))
    }

    /// Whether `route` is in the merged view (provided by a server and not hidden).
    pub fn contains(&self, r: &Route) -> bool {
        !self.hidden(r.vni, r.destination, &r.next_hop) && self.providers(r).is_some()
    }

    /// The servers providing `route`, if any does.
    pub fn providers(&self, r: &Route) -> Option<&ServerSet> {
        self.vnis
            .get(&r.vni)
            .and_then(|p| p.get(&r.destination))
            .and_then(|h| h.iter().find(|(nh, _)| *nh == r.next_hop))
            .map(|(_, m)| m)
    }

    /// The routes of `vni` in the merged view, in no particular order.
    pub fn routes_of(&self, vni: u32) -> Vec<Route> {
        let Some(prefixes) = self.vnis.get(&vni) else {
            return Vec::new();
        };
        prefixes
            .iter()
            .flat_map(|(&p, hops)| {
                hops.iter()
                    .filter(move |(nh, _)| !self.hidden(vni, p, nh))
                    .map(move |(nh, _)| route(vni, p, *nh))
            })
            .collect()
    }

    /// Every route in the merged view, in no particular order.
    pub fn routes(&self) -> impl Iterator<Item = Route> + '_ {
        self.vnis.iter().flat_map(move |(&vni, prefixes)| {
            prefixes.iter().flat_map(move |(&p, hops)| {
                hops.iter()
                    .filter(move |(nh, _)| !self.hidden(vni, p, nh))
                    .map(move |(nh, _)| route(vni, p, *nh))
            })
        })
    }

    /// Server `server` sent an UPDATE. Returns the change of the view, if any.
    ///
    /// A repeated ADD or a REMOVE of a route the server did not provide changes nothing.
    pub fn apply(&mut self, server: ServerId, action: Action, r: Route) -> Option<RouteEvent> {
        let hidden = self.hidden(r.vni, r.destination, &r.next_hop);
        match action {
            Action::Add => {
                let hops = self
                    .vnis
                    .entry(r.vni)
                    .or_default()
                    .entry(r.destination)
                    .or_default();
                match hops.iter_mut().find(|(nh, _)| *nh == r.next_hop) {
                    Some((_, m)) => {
                        m.insert(server);
                        None
                    }
                    None => {
                        hops.push((r.next_hop, ServerSet::one(server)));
                        self.len += 1;
                        (!hidden).then(|| ev(Action::Add, r))
                    }
                }
            }
            Action::Remove => {
                let prefixes = self.vnis.get_mut(&r.vni)?;
                let hops = prefixes.get_mut(&r.destination)?;
                let i = hops.iter().position(|(nh, _)| *nh == r.next_hop)?;
                let m = &mut hops[i].1;
                if !m.remove(server) || !m.is_empty() {
                    return None;
                }
                hops.swap_remove(i);
                if hops.is_empty() {
                    prefixes.remove(&r.destination);
                    if prefixes.is_empty() {
                        self.vnis.remove(&r.vni);
                    }
                }
                self.len -= 1;
                (!hidden).then(|| ev(Action::Remove, r))
            }
        }
    }

    /// Server `server`'s session ended: everything it provided is gone. Returns the routes that
    /// disappeared from the view (those no other server provides).
    pub fn drop_server(&mut self, server: ServerId) -> Vec<RouteEvent> {
        let mut out = Vec::new();
        let own = &self.own;
        let mut removed = 0;
        self.vnis.retain(|&vni, prefixes| {
            prefixes.retain(|&p, hops| {
                let own_prefix = own.contains_key(&(vni, p));
                hops.retain(|(nh, m)| {
                    if !m.remove(server) || !m.is_empty() {
                        return true;
                    }
                    removed += 1;
                    if !(own_prefix && nh.kind == NextHopType::Standard) {
                        out.push(ev(Action::Remove, route(vni, p, *nh)));
                    }
                    false
                });
                !hops.is_empty()
            });
            !prefixes.is_empty()
        });
        self.len -= removed;
        out
    }

    /// The client unsubscribed from `vni`: its routes leave the view. Returns the REMOVEs.
    pub fn drop_vni(&mut self, vni: u32) -> Vec<RouteEvent> {
        let Some(prefixes) = self.vnis.remove(&vni) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (p, hops) in prefixes {
            self.len -= hops.len();
            for (nh, _) in hops {
                if !self.hidden(vni, p, &nh) {
                    out.push(ev(Action::Remove, route(vni, p, nh)));
                }
            }
        }
        out
    }

    /// This client now announces `r`: if it is STANDARD, received STANDARD routes with its
    /// (VNI, prefix) are hidden. Returns the REMOVEs of routes that were visible.
    pub fn announce(&mut self, r: &Route) -> Vec<RouteEvent> {
        if r.next_hop.kind != NextHopType::Standard {
            return Vec::new();
        }
        let n = self.own.entry((r.vni, r.destination)).or_insert(0);
        *n += 1;
        if *n > 1 {
            return Vec::new();
        }
        self.received_at(r.vni, r.destination, Action::Remove)
    }

    /// This client no longer announces `r`: once no announced route uses its (VNI, prefix), the
    /// received routes for it appear again. Returns the ADDs.
    pub fn withdraw(&mut self, r: &Route) -> Vec<RouteEvent> {
        if r.next_hop.kind != NextHopType::Standard {
            return Vec::new();
        }
        let key = (r.vni, r.destination);
        match self.own.get_mut(&key) {
            None => Vec::new(),
            Some(n) if *n > 1 => {
                *n -= 1;
                Vec::new()
            }
            Some(_) => {
                self.own.remove(&key);
                self.received_at(r.vni, r.destination, Action::Add)
            }
        }
    }

    fn received_at(&self, vni: u32, p: IpNet, action: Action) -> Vec<RouteEvent> {
        self.vnis
            .get(&vni)
            .and_then(|m| m.get(&p))
            .map(|hops| {
                hops.iter()
                    .filter(|(nh, _)| nh.kind == NextHopType::Standard)
                    .map(|(nh, _)| ev(action, route(vni, p, *nh)))
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};

    fn r(s: &str) -> Route {
        s.parse().unwrap()
    }

    #[test]
    fn present_while_any_server_provides() {
        let mut a = Aggregator::new();
        let x = r("23#10.0.23.0/24#2001:db8::1");
        assert_eq!(a.apply(0, Action::Add, x), Some(ev(Action::Add, x)));
        assert_eq!(a.apply(1, Action::Add, x), None);
        assert_eq!(a.apply(0, Action::Add, x), None, "repeated add");
        assert_eq!(a.providers(&x).unwrap().iter().collect::<Vec<_>>(), [0, 1]);
        assert_eq!(a.apply(0, Action::Remove, x), None);
        assert!(a.contains(&x));
        assert_eq!(a.apply(0, Action::Remove, x), None, "not provided by 0");
        assert_eq!(a.apply(1, Action::Remove, x), Some(ev(Action::Remove, x)));
        assert!(a.is_empty());
        assert_eq!(a.apply(1, Action::Remove, x), None, "unknown route");
    }

    #[test]
    fn losing_one_server_withdraws_only_its_own_routes() {
        let mut a = Aggregator::new();
        let both = r("1#10.0.0.1/32#2001:db8::1");
        let only0 = r("1#10.0.0.2/32#2001:db8::2");
        let only1 = r("2#10.0.0.3/32#2001:db8::3");
        a.apply(0, Action::Add, both);
        a.apply(1, Action::Add, both);
        a.apply(0, Action::Add, only0);
        a.apply(1, Action::Add, only1);
        assert_eq!(a.drop_server(0), vec![ev(Action::Remove, only0)]);
        assert_eq!(a.len(), 2);
        assert!(a.contains(&both) && a.contains(&only1));
        assert_eq!(a.drop_server(0), vec![]);
        let mut gone = a.drop_server(1);
        gone.sort_by_key(|e| e.route);
        assert_eq!(
            gone,
            vec![ev(Action::Remove, both), ev(Action::Remove, only1)]
        );
        assert!(a.is_empty() && a.vnis.is_empty());
    }

    #[test]
    fn more_than_64_servers() {
        let mut a = Aggregator::new();
        let x = r("23#10.0.23.0/24#2001:db8::1");
        assert!(a.apply(200, Action::Add, x).is_some());
        assert_eq!(a.apply(3, Action::Add, x), None);
        assert_eq!(a.drop_server(200), vec![]);
        assert_eq!(a.drop_server(3), vec![ev(Action::Remove, x)]);
    }

    #[test]
    fn same_prefix_different_next_hops_are_different_routes() {
        let mut a = Aggregator::new();
        let n1 = r("7#10.1.0.1/32#2001:db8::2#NAT#1024#2048");
        let n2 = r("7#10.1.0.1/32#2001:db8::2#NAT#2048#4096");
        assert!(a.apply(0, Action::Add, n1).is_some());
        assert!(a.apply(0, Action::Add, n2).is_some());
        assert_eq!(a.apply(0, Action::Remove, n1), Some(ev(Action::Remove, n1)));
        assert!(a.contains(&n2));
    }

    #[test]
    fn own_prefixes_are_hidden_until_withdrawn() {
        let mut a = Aggregator::new();
        let theirs = r("5#10.5.0.1/32#2001:db8::9");
        let mine = r("5#10.5.0.1/32#2001:db8::1");
        let mine_again = r("5#10.5.0.1/32#2001:db8::2");
        assert!(a.apply(0, Action::Add, theirs).is_some());
        assert_eq!(a.announce(&mine), vec![ev(Action::Remove, theirs)]);
        assert_eq!(a.announce(&mine_again), vec![]);
        assert!(!a.contains(&theirs));
        assert_eq!(a.apply(1, Action::Add, theirs), None);
        let other = r("5#10.5.0.1/32#2001:db8::8");
        assert_eq!(a.apply(1, Action::Add, other), None, "hidden on arrival");
        assert_eq!(a.routes().count(), 0);
        assert_eq!(a.withdraw(&mine), vec![]);
        let mut back = a.withdraw(&mine_again);
        back.sort_by_key(|e| e.route);
        assert_eq!(back, vec![ev(Action::Add, other), ev(Action::Add, theirs)]);
        assert_eq!(a.withdraw(&mine), vec![], "not announced");
    }

    #[test]
    fn only_standard_routes_are_hidden_by_own_prefixes() {
        let mut a = Aggregator::new();
        let my_vip = r("5#10.5.0.100/32#2001:db8::1");
        assert_eq!(a.announce(&my_vip), vec![]);
        // Targets of my load balancer, and another slice of a NAT IP I share, are delivered.
        let target = r("5#10.5.0.100/32#2001:db8::7#LB");
        assert_eq!(
            a.apply(0, Action::Add, target),
            Some(ev(Action::Add, target))
        );
        let my_nat = r("5#10.5.0.9/32#2001:db8::1#NAT#1024#2048");
        let their_nat = r("5#10.5.0.9/32#2001:db8::8#NAT#2048#4096");
        assert_eq!(a.announce(&my_nat), vec![]);
        assert_eq!(
            a.apply(0, Action::Add, their_nat),
            Some(ev(Action::Add, their_nat))
        );
        // A STANDARD route to my VIP via someone else is hidden.
        let theirs = r("5#10.5.0.100/32#2001:db8::9");
        assert_eq!(a.apply(0, Action::Add, theirs), None);
        let mut seen = a.routes().collect::<Vec<_>>();
        seen.sort();
        let mut want = vec![target, their_nat];
        want.sort();
        assert_eq!(seen, want);
        assert_eq!(a.withdraw(&my_vip), vec![ev(Action::Add, theirs)]);
    }

    #[test]
    fn unsubscribe_drops_the_vni() {
        let mut a = Aggregator::new();
        let x = r("9#10.9.0.0/16#2001:db8::1");
        let y = r("8#10.8.0.0/16#2001:db8::1");
        a.apply(0, Action::Add, x);
        a.apply(1, Action::Add, x);
        a.apply(0, Action::Add, y);
        assert_eq!(a.drop_vni(9), vec![ev(Action::Remove, x)]);
        assert_eq!(a.drop_vni(9), vec![]);
        assert_eq!(a.len(), 1);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Update(ServerId, Action, usize),
        Drop(ServerId),
        DropVni(u32),
        Announce(usize),
        Withdraw(usize),
    }

    fn pool() -> Vec<Route> {
        // Few routes sharing VNIs and prefixes, so that operations collide.
        let mut v = Vec::new();
        for vni in 1..=2 {
            for host in 1..=2 {
                for hop in 1..=2 {
                    v.push(r(&format!("{vni}#10.0.0.{host}/32#2001:db8::{hop}")));
                }
                // Other kinds at the same prefixes: never hidden by own prefixes.
                v.push(r(&format!("{vni}#10.0.0.{host}/32#2001:db8::3#LB")));
            }
        }
        v
    }

    fn op() -> impl Strategy<Value = Op> {
        let n = pool().len();
        prop_oneof![
            6 => (0usize..3, any::<bool>(), 0..n).prop_map(|(s, add, i)| Op::Update(s, if add { Action::Add } else { Action::Remove }, i)),
            1 => (0usize..3).prop_map(Op::Drop),
            1 => (1u32..=2).prop_map(Op::DropVni),
            1 => (0..n).prop_map(Op::Announce),
            1 => (0..n).prop_map(Op::Withdraw),
        ]
    }

    proptest! {
        /// Against a naive model: the view is the routes some server provides minus those with an
        /// own (VNI, prefix), and replaying the events reproduces exactly that view.
        #[test]
        fn matches_the_model(ops in prop::collection::vec(op(), 0..200)) {
            let pool = pool();
            let mut a = Aggregator::new();
            let mut provided: BTreeMap<Route, BTreeSet<ServerId>> = BTreeMap::new();
            let mut own: Vec<Route> = Vec::new();
            let mut seen: BTreeSet<Route> = BTreeSet::new();
            for op in ops {
                let events = match op.clone() {
                    Op::Update(s, act, i) => {
                        let rt = pool[i];
                        match act {
                            Action::Add => { provided.entry(rt).or_default().insert(s); }
                            Action::Remove => {
                                if let Some(set) = provided.get_mut(&rt) {
                                    set.remove(&s);
                                    if set.is_empty() { provided.remove(&rt); }
                                }
                            }
                        }
                        a.apply(s, act, rt).into_iter().collect()
                    }
                    Op::Drop(s) => {
                        provided.retain(|_, set| { set.remove(&s); !set.is_empty() });
                        a.drop_server(s)
                    }
                    Op::DropVni(v) => {
                        provided.retain(|rt, _| rt.vni != v);
                        a.drop_vni(v)
                    }
                    Op::Announce(i) => { own.push(pool[i]); a.announce(&pool[i]) }
                    Op::Withdraw(i) => {
                        match own.iter().position(|x| *x == pool[i]) {
                            Some(p) => { own.remove(p); a.withdraw(&pool[i]) }
                            None => vec![],
                        }
                    }
                };
                for e in events {
                    match e.action {
                        Action::Add => prop_assert!(seen.insert(e.route), "double add {:?} after {:?}", e, op),
                        Action::Remove => prop_assert!(seen.remove(&e.route), "remove of absent {:?} after {:?}", e, op),
                    }
                }
                let model: BTreeSet<Route> = provided
                    .keys()
                    .filter(|rt| !(rt.next_hop.kind == NextHopType::Standard && own.iter().any(|o| o.next_hop.kind == NextHopType::Standard && o.vni == rt.vni && o.destination == rt.destination)))
                    .copied()
                    .collect();
                prop_assert_eq!(&seen, &model, "after {:?}", op);
                prop_assert_eq!(a.routes().collect::<BTreeSet<_>>(), model);
                prop_assert_eq!(a.len(), provided.len());
            }
        }
    }
}
