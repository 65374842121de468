//! The region's route table: which session owns which route, who subscribes to which VNI, and
//! the change each event must forward. Pure data, no I/O; owned by the server's one table task.
//!
//! Visibility rule: a subscriber X of VNI v sees route R of v iff R has an owner other than X
//! (the server never echoes a route to its announcer, and the reference client ignores routes it
//! announced itself). Every [`Change`] is computed so that the snapshot a subscriber gets from
//! [`RouteTable::subscribe`] plus the later changes addressed to it reproduce exactly that view,
//! with no duplicate ADD and no REMOVE of a route it does not have.

use std::collections::{BTreeSet, HashMap, HashSet};

use smallvec::SmallVec;

use crate::route::{Action, Route};

/// Identifies a peer session inside the server.
pub type SessionId = u64;

/// Who gets a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipients {
    /// Every subscriber of the route's VNI except this session.
    AllExcept(SessionId),
    /// Only this session (it is subscribed to the VNI).
    Only(SessionId),
}

/// An UPDATE the server must forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// ADD or REMOVE.
    pub action: Action,
    /// The route.
    pub route: Route,
    /// Who must receive it.
    pub to: Recipients,
}

/// Routes, their owners and the VNI subscriptions of every session.
#[derive(Default)]
pub struct RouteTable {
    owners: HashMap<Route, SmallVec<[SessionId; 1]>>,
    by_vni: HashMap<u32, HashSet<Route>>,
    owned: HashMap<SessionId, HashSet<Route>>,
    subs: HashMap<u32, HashSet<SessionId>>,
    session_subs: HashMap<SessionId, BTreeSet<u32>>,
}

impl RouteTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Session `from` announces `route`. Returns the change to forward, if any.
    pub fn announce(&mut self, from: SessionId, route: Route) -> Option<Change> {
        let owners = self.owners.entry(route).or_default();
        if owners.contains(&from) {
            return None;
        }
        owners.push(from);
        let (n, first) = (owners.len(), owners[0]);
        self.owned.entry(from).or_default().insert(route);
        match n {
            1 => {
                self.by_vni.entry(route.vni).or_default().insert(route);
                Some(Change {
                    action: Action::Add,
                    route,
                    to: Recipients::AllExcept(from),
                })
            }
            // The earlier sole owner did not see its own route; now another owner provides it.
            2 if self.is_subscribed(first, route.vni) => Some(Change {
                action: Action::Add,
                route,
                to: Recipients::Only(first),
            }),
            _ => None,
        }
    }

    /// Session `from` withdraws `route` (no-op -> None if it did not own it).
    pub fn withdraw(&mut self, from: SessionId, route: &Route) -> Option<Change> {
        let owners = self.owners.get_mut(route)?;
        let pos = owners.iter().position(|&o| o == from)?;
        owners.remove(pos);
        let (n, first) = (owners.len(), owners.first().copied());
        if let Some(set) = self.owned.get_mut(&from) {
            set.remove(route);
            if set.is_empty() {
                self.owned.remove(&from);
            }
        }
        match (n, first) {
            (0, _) => {
                self.owners.remove(route);
                if let Some(set) = self.by_vni.get_mut(&route.vni) {
                    set.remove(route);
                    if set.is_empty() {
                        self.by_vni.remove(&route.vni);
                    }
                }
                Some(Change {
                    action: Action::Remove,
                    route: *route,
                    to: Recipients::AllExcept(from),
                })
            }
            // The remaining owner saw the route only because `from` also provided it.
            (1, Some(x)) if self.is_subscribed(x, route.vni) => Some(Change {
                action: Action::Remove,
                route: *route,
                to: Recipients::Only(x),
            }),
            _ => None,
        }
    }

    /// Register `session` as subscriber of `vni` and return the snapshot it must be sent (every
    /// route of `vni` it should see), or None if it was already subscribed (a duplicate
    /// SUBSCRIBE is harmless: nothing is resent).
    ///
    /// Registering and taking the snapshot happen in this one call, so with the table owned by
    /// one task nothing is lost or duplicated between the snapshot and the live stream.
    pub fn subscribe(&mut self, session: SessionId, vni: u32) -> Option<Vec<Route>> {
        if !self.subs.entry(vni).or_default().insert(session) {
            return None;
        }
        self.session_subs.entry(session).or_default().insert(vni);
        let snapshot = self
            .by_vni
            .get(&vni)
            .map(|set| {
                set.iter()
                    .filter(|r| self.owners[*r].iter().any(|&o| o != session))
                    .copied()
                    .collect()
            })
            .unwrap_or_default();
        Some(snapshot)
    }

    /// Drop the subscription and withdraw every route `session` announced in `vni` (as the
    /// reference server does). Returns the changes to forward.
    pub fn unsubscribe(&mut self, session: SessionId, vni: u32) -> Vec<Change> {
        self.drop_subscription(session, vni);
        let mine: Vec<Route> = self
            .owned
            .get(&session)
            .map(|set| set.iter().filter(|r| r.vni == vni).copied().collect())
            .unwrap_or_default();
        mine.iter()
            .filter_map(|r| self.withdraw(session, r))
            .collect()
    }

    /// Session ended: withdraw everything it owned, drop its subscriptions.
    pub fn remove_session(&mut self, session: SessionId) -> Vec<Change> {
        for vni in self.subscriptions(session) {
            self.drop_subscription(session, vni);
        }
        let mine: Vec<Route> = self
            .owned
            .get(&session)
            .map(|set| set.iter().copied().collect())
            .unwrap_or_default();
        mine.iter()
            .filter_map(|r| self.withdraw(session, r))
            .collect()
    }

    fn drop_subscription(&mut self, session: SessionId, vni: u32) {
        if let Some(set) = self.subs.get_mut(&vni) {
            set.remove(&session);
            if set.is_empty() {
                self.subs.remove(&vni);
            }
        }
        if let Some(set) = self.session_subs.get_mut(&session) {
            set.remove(&vni);
            if set.is_empty() {
                self.session_subs.remove(&session);
            }
        }
    }

    /// Subscribers of a VNI (for fan-out of [`Recipients::AllExcept`] changes).
    pub fn subscribers(&self, vni: u32) -> impl Iterator<Item = SessionId> + '_ {
        self.subs.get(&vni).into_iter().flatten().copied()
    }

    /// Whether `session` subscribes to `vni`.
    pub fn is_subscribed(&self, session: SessionId, vni: u32) -> bool {
        self.subs.get(&vni).is_some_and(|s| s.contains(&session))
    }

    /// The VNIs `session` subscribes to, sorted.
    pub fn subscriptions(&self, session: SessionId) -> Vec<u32> {
        self.session_subs
            .get(&session)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Number of distinct routes.
    pub fn route_count(&self) -> usize {
        self.owners.len()
    }

    /// Number of routes `session` owns.
    pub fn owned_count(&self, session: SessionId) -> usize {
        self.owned.get(&session).map_or(0, HashSet::len)
    }

    /// The VNIs that have routes, sorted.
    pub fn vnis(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.by_vni.keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// Routes of a VNI with their owners (both sorted), for `/routes.json`.
    pub fn routes_of(&self, vni: u32) -> Vec<(Route, Vec<SessionId>)> {
        let mut v: Vec<(Route, Vec<SessionId>)> = self
            .by_vni
            .get(&vni)
            .into_iter()
            .flatten()
            .map(|r| {
                let mut o = self.owners[r].to_vec();
                o.sort_unstable();
                (*r, o)
            })
            .collect();
        v.sort_unstable();
        v
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::route::{NextHop, NextHopType};
    use proptest::prelude::*;
    use std::collections::BTreeMap;
    use std::net::Ipv6Addr;

    fn route(vni: u32, n: u8) -> Route {
        Route {
            vni,
            destination: format!("10.0.0.{n}/32").parse().unwrap(),
            next_hop: NextHop {
                address: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(n % 3)),
                target_vni: 0,
                kind: NextHopType::Standard,
                port_from: 0,
                port_to: 0,
            },
        }
    }

    fn add(route: Route, to: Recipients) -> Option<Change> {
        Some(Change {
            action: Action::Add,
            route,
            to,
        })
    }

    fn remove(route: Route, to: Recipients) -> Option<Change> {
        Some(Change {
            action: Action::Remove,
            route,
            to,
        })
    }

    #[test]
    fn table_announce_withdraw_single_owner() {
        let mut t = RouteTable::new();
        let r = route(7, 1);
        assert_eq!(t.announce(1, r), add(r, Recipients::AllExcept(1)));
        assert_eq!(t.announce(1, r), None, "duplicate announce");
        assert_eq!((t.route_count(), t.owned_count(1)), (1, 1));
        assert_eq!(t.vnis(), vec![7]);
        assert_eq!(t.withdraw(2, &r), None, "not an owner");
        assert_eq!(t.withdraw(1, &r), remove(r, Recipients::AllExcept(1)));
        assert_eq!(t.withdraw(1, &r), None);
        assert_eq!((t.route_count(), t.owned_count(1)), (0, 0));
        assert!(t.vnis().is_empty());
    }

    #[test]
    fn table_second_owner_makes_route_visible_to_first() {
        let mut t = RouteTable::new();
        let r = route(7, 1);
        assert_eq!(t.subscribe(1, 7), Some(vec![]));
        assert_eq!(t.announce(1, r), add(r, Recipients::AllExcept(1)));
        assert_eq!(t.announce(2, r), add(r, Recipients::Only(1)));
        assert_eq!(t.announce(3, r), None);
        assert_eq!(t.routes_of(7), vec![(r, vec![1, 2, 3])]);
        assert_eq!(t.withdraw(2, &r), None);
        assert_eq!(t.withdraw(3, &r), remove(r, Recipients::Only(1)));
        // Session 2 re-announces while 1 is not subscribed: nobody to tell.
        assert_eq!(
            t.unsubscribe(1, 7),
            vec![remove(r, Recipients::AllExcept(1)).unwrap()]
        );
        assert_eq!(t.announce(2, r), add(r, Recipients::AllExcept(2)));
        assert_eq!(t.announce(1, r), None, "2 is not subscribed");
    }

    #[test]
    fn table_subscribe_snapshot_and_duplicate() {
        let mut t = RouteTable::new();
        let (a, b, c) = (route(7, 1), route(7, 2), route(8, 3));
        t.announce(1, a);
        t.announce(2, b);
        t.announce(2, c);
        assert_eq!(t.subscribe(1, 7), Some(vec![b]), "own route not sent back");
        assert_eq!(
            t.subscribe(1, 7),
            None,
            "duplicate subscribe resends nothing"
        );
        assert_eq!(t.subscribe(1, 8), Some(vec![c]));
        assert_eq!(t.subscriptions(1), vec![7, 8]);
        assert!(t.is_subscribed(1, 8));
        let mut subs: Vec<_> = t.subscribers(7).collect();
        subs.sort_unstable();
        assert_eq!(subs, vec![1]);
    }

    #[test]
    fn table_remove_session_withdraws_and_unsubscribes() {
        let mut t = RouteTable::new();
        let (a, b) = (route(7, 1), route(8, 2));
        t.subscribe(1, 7);
        t.subscribe(2, 7);
        t.announce(1, a);
        t.announce(1, b);
        t.announce(2, a);
        let mut ch = t.remove_session(1);
        ch.sort_unstable_by_key(|c| c.route);
        assert_eq!(
            ch,
            vec![
                remove(a, Recipients::Only(2)).unwrap(),
                remove(b, Recipients::AllExcept(1)).unwrap()
            ]
        );
        assert!(t.subscriptions(1).is_empty());
        assert_eq!(t.subscribers(7).collect::<Vec<_>>(), vec![2]);
        assert_eq!(
            (t.route_count(), t.owned_count(1), t.owned_count(2)),
            (1, 0, 1)
        );
    }

    /// An operation of the property test.
    #[derive(Debug, Clone)]
    enum Op {
        Announce(SessionId, Route),
        Withdraw(SessionId, Route),
        Subscribe(SessionId, u32),
        Unsubscribe(SessionId, u32),
        RemoveSession(SessionId),
    }

    const SESSIONS: SessionId = 4;
    const VNIS: u32 = 3;

    fn arb_op() -> impl Strategy<Value = Op> {
        let s = 0..SESSIONS;
        let v = 0..VNIS;
        let r = (0..VNIS, 0u8..4).prop_map(|(v, n)| route(v, n));
        prop_oneof![
            4 => (s.clone(), r.clone()).prop_map(|(s, r)| Op::Announce(s, r)),
            3 => (s.clone(), r).prop_map(|(s, r)| Op::Withdraw(s, r)),
            3 => (s.clone(), v.clone()).prop_map(|(s, v)| Op::Subscribe(s, v)),
            1 => (s.clone(), v).prop_map(|(s, v)| Op::Unsubscribe(s, v)),
            1 => s.prop_map(Op::RemoveSession),
        ]
    }

    /// The naive model: owners per route, subscriptions, and what each subscriber was sent.
    #[derive(Default)]
    struct Model {
        owners: BTreeMap<Route, BTreeSet<SessionId>>,
        subs: BTreeSet<(SessionId, u32)>,
        views: BTreeMap<(SessionId, u32), BTreeSet<Route>>,
    }

    impl Model {
        fn expected_view(&self, s: SessionId, vni: u32) -> BTreeSet<Route> {
            self.owners
                .iter()
                .filter(|(r, o)| r.vni == vni && o.iter().any(|&x| x != s))
                .map(|(r, _)| *r)
                .collect()
        }

        /// Delivers a change to its recipients as the server would, checking it is no
        /// duplicate ADD and no REMOVE of an unseen route.
        fn deliver(&mut self, t: &RouteTable, c: &Change) -> Result<(), TestCaseError> {
            let vni = c.route.vni;
            let targets: Vec<SessionId> = match c.to {
                Recipients::AllExcept(s) => t.subscribers(vni).filter(|&x| x != s).collect(),
                Recipients::Only(x) => {
                    prop_assert!(t.is_subscribed(x, vni), "Only({x}) not subscribed: {c:?}");
                    vec![x]
                }
            };
            for x in targets {
                let view = self.views.entry((x, vni)).or_default();
                match c.action {
                    Action::Add => {
                        prop_assert!(view.insert(c.route), "duplicate ADD to {x}: {c:?}")
                    }
                    Action::Remove => {
                        prop_assert!(view.remove(&c.route), "REMOVE of unseen to {x}: {c:?}")
                    }
                }
            }
            Ok(())
        }

        fn unsubscribe(&mut self, s: SessionId, vni: u32) {
            self.subs.remove(&(s, vni));
            self.views.remove(&(s, vni));
            for (r, o) in self.owners.iter_mut() {
                if r.vni == vni {
                    o.remove(&s);
                }
            }
            self.owners.retain(|_, o| !o.is_empty());
        }
    }

    fn run_ops(ops: Vec<Op>) -> Result<(), TestCaseError> {
        let mut t = RouteTable::new();
        let mut m = Model::default();
        for op in ops {
            let changes: Vec<Change> = match op {
                Op::Announce(s, r) => {
                    let c = t.announce(s, r);
                    m.owners.entry(r).or_default().insert(s);
                    c.into_iter().collect()
                }
                Op::Withdraw(s, r) => {
                    let c = t.withdraw(s, &r);
                    let owned = m.owners.get_mut(&r).is_some_and(|o| o.remove(&s));
                    prop_assert!(owned || c.is_none(), "change without ownership: {:?}", c);
                    m.owners.retain(|_, o| !o.is_empty());
                    c.into_iter().collect()
                }
                Op::Subscribe(s, v) => {
                    let snap = t.subscribe(s, v);
                    let fresh = m.subs.insert((s, v));
                    prop_assert_eq!(snap.is_some(), fresh);
                    if let Some(snap) = snap {
                        let set: BTreeSet<Route> = snap.iter().copied().collect();
                        prop_assert_eq!(set.len(), snap.len(), "duplicates in snapshot");
                        prop_assert!(set.iter().all(|r| r.vni == v));
                        m.views.insert((s, v), set);
                    }
                    vec![]
                }
                Op::Unsubscribe(s, v) => {
                    let c = t.unsubscribe(s, v);
                    m.unsubscribe(s, v);
                    c
                }
                Op::RemoveSession(s) => {
                    let c = t.remove_session(s);
                    for v in 0..VNIS {
                        m.unsubscribe(s, v);
                    }
                    c
                }
            };
            // Subscriptions do not change while a call's changes are produced, so the
            // subscriber sets after the call are the ones at the moment of each change.
            for c in &changes {
                m.deliver(&t, c)?;
            }
            for s in 0..SESSIONS {
                let subs: Vec<u32> = (0..VNIS).filter(|&v| m.subs.contains(&(s, v))).collect();
                prop_assert_eq!(t.subscriptions(s), subs);
                let owned = m.owners.values().filter(|o| o.contains(&s)).count();
                prop_assert_eq!(t.owned_count(s), owned);
                for v in 0..VNIS {
                    prop_assert_eq!(t.is_subscribed(s, v), m.subs.contains(&(s, v)));
                    if m.subs.contains(&(s, v)) {
                        let seen = m.views.get(&(s, v)).cloned().unwrap_or_default();
                        prop_assert_eq!(seen, m.expected_view(s, v), "view of {} in {}", s, v);
                    }
                }
            }
            prop_assert_eq!(t.route_count(), m.owners.len());
            let vnis: BTreeSet<u32> = m.owners.keys().map(|r| r.vni).collect();
            prop_assert_eq!(t.vnis(), vnis.iter().copied().collect::<Vec<_>>());
            for v in 0..VNIS {
                let want: Vec<(Route, Vec<SessionId>)> = m
                    .owners
                    .iter()
                    .filter(|(r, _)| r.vni == v)
                    .map(|(r, o)| (*r, o.iter().copied().collect()))
                    .collect();
                prop_assert_eq!(t.routes_of(v), want);
                let mut subs: Vec<SessionId> = t.subscribers(v).collect();
                subs.sort_unstable();
                let want: Vec<SessionId> = (0..SESSIONS)
                    .filter(|&s| m.subs.contains(&(s, v)))
                    .collect();
                prop_assert_eq!(subs, want);
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn table_streams_match_visibility(ops in prop::collection::vec(arb_op(), 1..120)) {
            run_ops(ops)?;
        }
    }
}
