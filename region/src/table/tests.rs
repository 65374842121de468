//! Unit and property tests of the route table against a naive model.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::route::{NextHop, NextHopType};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv6Addr;

/// Route number `n` of a VNI. Numbers 4 to 7 differ from others only in the address
/// family, the next-hop kind or the port range, to exercise the identity of routes.
fn route(vni: u32, n: u8) -> Route {
    let mut r = Route {
        vni,
        destination: format!("10.0.0.{}/32", n % 4).parse().unwrap(),
        next_hop: NextHop {
            address: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(n % 3)),
            target_vni: 0,
            kind: NextHopType::Standard,
            port_from: 0,
            port_to: 0,
        },
    };
    match n {
        // Same bits as route 0's destination, other family.
        4 => r.destination = "::a00:0/32".parse().unwrap(),
        5 => r.next_hop.kind = NextHopType::LoadBalancerTarget,
        6 | 7 => {
            r.next_hop.kind = NextHopType::Nat;
            (r.next_hop.port_from, r.next_hop.port_to) = (1024, 2048 + u16::from(n));
        }
        _ => {}
    }
    r
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

#[test]
fn table_memory_per_route_within_target() {
    // 100,000 routes of one session in 100 VNIs; the target is 150 bytes per route.
    let mut t = RouteTable::new();
    for i in 0..100_000u32 {
        let mut r = route(i % 100, 0);
        r.destination = IpNet::from(std::net::IpAddr::from(std::net::Ipv4Addr::from(
            0x0a00_0000 + i,
        )));
        assert!(t.announce(1, r).is_some());
    }
    let per_route = t.heap_bytes() / t.route_count();
    assert!(per_route <= 150, "{per_route} bytes per route");
    // Another session keeps 1,000 routes and a subscription after the big one leaves: the
    // memory of the 100,000 must be given back, not kept at the peak.
    for i in 0..1_000u32 {
        t.announce(2, route(i % 10, 4));
        let mut r = route(i % 100, 5);
        r.next_hop.target_vni = i;
        t.announce(2, r);
    }
    t.subscribe(2, 3);
    assert_eq!(t.remove_session(1).len(), 100_000);
    assert_eq!(t.route_count(), 1_010);
    let left = t.heap_bytes();
    assert!(left <= 1_010 * 300, "{left} bytes kept for 1,010 routes");
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
    let r = (0..VNIS, 0u8..8).prop_map(|(v, n)| route(v, n));
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
        t.check_invariants();
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
        let counts: Vec<(u32, usize)> = vnis
            .iter()
            .map(|&v| (v, m.owners.keys().filter(|r| r.vni == v).count()))
            .collect();
        prop_assert_eq!(t.vni_route_counts(), counts);
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
