use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;

fn r(s: &str) -> Route {
    s.parse().expect("test route")
}

fn net(s: &str) -> IpNet {
    s.parse().expect("test prefix")
}

fn ul(s: &str) -> Ipv6Addr {
    s.parse().expect("test address")
}

fn learned(routes: &[&str]) -> Learned {
    let mut l = Learned::default();
    l.learn(VniEvent::Snapshot {
        routes: routes.iter().map(|s| r(s)).collect(),
        complete: true,
    });
    l
}

fn sources<'a>(own: &'a Learned, exports: Vec<Export<'a>>) -> Sources<'a> {
    Sources {
        vni: 7,
        own,
        router: None,
        ipv6: false,
        exports,
    }
}

#[test]
fn lowest_next_hop_wins_and_the_next_takes_over() {
    let mut own = learned(&["7#10.0.0.1/32#fc00::2", "7#10.0.0.1/32#fc00::1"]);
    let d = table(&desired(&sources(&own, vec![])));
    assert_eq!(d.get(&net("10.0.0.1/32")), Some(&(7, ul("fc00::1"))));
    own.learn(VniEvent::Removed(r("7#10.0.0.1/32#fc00::1")));
    let d = table(&desired(&sources(&own, vec![])));
    assert_eq!(d.get(&net("10.0.0.1/32")), Some(&(7, ul("fc00::2"))));
    own.learn(VniEvent::Removed(r("7#10.0.0.1/32#fc00::2")));
    assert!(desired(&sources(&own, vec![])).is_empty());
}

#[test]
fn default_routes_follow_the_router_and_ipv6() {
    let own = Learned::default();
    let mut s = sources(&own, vec![]);
    s.router = Some(ul("fc00:ff::1"));
    let d = desired(&s);
    assert_eq!(
        d.get(&net("0.0.0.0/0")),
        Some(&((7, ul("fc00:ff::1")), Origin::Default))
    );
    assert!(!d.contains_key(&net("::/0")));
    s.ipv6 = true;
    assert!(desired(&s).contains_key(&net("::/0")));
    // An announced default route is the router's business (the public VNI), not a route.
    let own = learned(&["7#0.0.0.0/0#fc00::9"]);
    assert!(desired(&sources(&own, vec![])).is_empty());
}

#[test]
fn peered_routes_come_filtered_with_their_vni_and_lose_to_own_routes() {
    let own = learned(&["7#10.0.0.1/32#fc00::1"]);
    let peer = learned(&[
        "8#10.0.0.1/32#fc00::8",
        "8#10.8.0.1/32#fc00::8",
        "8#10.9.0.1/32#fc00::8",
        "8#10.8.0.0/16#fc00::8",
    ]);
    let local = [r("8#10.8.0.2/32#fc00::aa")];
    let filter = [net("10.8.0.0/24")];
    let d = desired(&sources(
        &own,
        vec![Export {
            vni: 8,
            filter: Some(&filter),
            learned: &peer,
            local: &local,
        }],
    ));
    let want: BTreeMap<IpNet, (Hop, Origin)> = [
        ("10.0.0.1/32", (7, "fc00::1"), Origin::Own),
        ("10.8.0.1/32", (8, "fc00::8"), Origin::Peer(8)),
        ("10.8.0.2/32", (8, "fc00::aa"), Origin::Peer(8)),
    ]
    .into_iter()
    .map(|(p, (v, a), o)| (net(p), ((v, ul(a)), o)))
    .collect();
    // 10.8.0.0/16 is wider than the filter: not exported although its first address is inside.
    assert_eq!(d, want);
}

#[test]
fn local_routes_win_over_received_ones_and_lower_peer_vni_wins() {
    let own = Learned::default();
    let p8 = learned(&["8#10.1.0.1/32#fc00::1"]);
    let p9 = learned(&["9#10.1.0.1/32#fc00::1", "9#10.2.0.1/32#fc00::1"]);
    let local9 = [r("9#10.2.0.1/32#fc00::ff")];
    let d = table(&desired(&sources(
        &own,
        vec![
            Export {
                vni: 9,
                filter: None,
                learned: &p9,
                local: &local9,
            },
            Export {
                vni: 8,
                filter: None,
                learned: &p8,
                local: &[],
            },
        ],
    )));
    assert_eq!(d.get(&net("10.1.0.1/32")), Some(&(8, ul("fc00::1"))));
    assert_eq!(d.get(&net("10.2.0.1/32")), Some(&(9, ul("fc00::ff"))));
}

#[test]
fn plan_replaces_changed_hops_and_keeps_unwanted_routes_of_incomplete_sources() {
    let desired: Table = [(net("10.0.0.1/32"), (7, ul("fc00::1")))].into();
    let actual: Table = [
        (net("10.0.0.1/32"), (7, ul("fc00::2"))),
        (net("10.0.0.2/32"), (7, ul("fc00::2"))),
        (net("10.8.0.1/32"), (8, ul("fc00::8"))),
    ]
    .into();
    let p = plan(&desired, &actual, |h| h.0 == 7);
    assert_eq!(
        p.delete,
        vec![
            (net("10.0.0.1/32"), (7, ul("fc00::2"))),
            (net("10.0.0.2/32"), (7, ul("fc00::2")))
        ]
    );
    assert_eq!(p.create, vec![(net("10.0.0.1/32"), (7, ul("fc00::1")))]);
    assert_eq!(p.kept, 1);
}

#[test]
fn a_snapshot_replaces_what_was_learned_and_keeps_completeness() {
    let mut l = learned(&["7#10.0.0.1/32#fc00::1", "7#10.0.0.9/32#fc00::1#NAT#0#1024"]);
    l.learn(VniEvent::Snapshot {
        routes: vec![r("7#10.0.0.2/32#fc00::1"), r("7#10.0.0.100/32#fc00::5#LB")],
        complete: false,
    });
    assert!(l.complete);
    assert_eq!(
        l.standard.keys().copied().collect::<Vec<_>>(),
        vec![net("10.0.0.2/32")]
    );
    assert!(l.nats.is_empty());
    assert_eq!(l.lb_target_count(), 1);
}

fn arb_prefix() -> impl Strategy<Value = IpNet> {
    (0u8..4, prop_oneof![Just(32u8), Just(24u8), Just(16u8)]).prop_map(|(b, len)| {
        IpNet::V4(Ipv4Net::new(std::net::Ipv4Addr::new(10, b, 0, 1), len).expect("len <= 32"))
            .trunc()
    })
}

fn arb_hop() -> impl Strategy<Value = Hop> {
    (7u32..10, 1u16..4).prop_map(|(v, a)| (v, Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, a)))
}

fn arb_routes(vni: u32) -> impl Strategy<Value = Vec<Route>> {
    proptest::collection::vec((arb_prefix(), 1u16..4), 0..6).prop_map(move |v| {
        v.into_iter()
            .map(|(p, a)| Route {
                vni,
                destination: p,
                next_hop: NextHop {
                    address: Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, a),
                    target_vni: 0,
                    kind: NextHopType::Standard,
                    port_from: 0,
                    port_to: 0,
                },
            })
            .collect()
    })
}

proptest! {
    /// Applying the plan to the dataplane gives exactly the desired table, except for unwanted
    /// routes of incomplete sources, which stay; nothing desired is ever deleted unchanged.
    #[test]
    fn the_plan_converges_and_never_removes_what_an_incomplete_source_may_provide(
        own in arb_routes(7),
        peer in arb_routes(8),
        local in arb_routes(8),
        filter in proptest::option::of(proptest::collection::vec(arb_prefix(), 0..2)),
        actual in proptest::collection::btree_map(arb_prefix(), arb_hop(), 0..8),
        own_complete: bool,
        peer_complete: bool,
        router: bool,
    ) {
        let mut own_l = Learned::default();
        own_l.learn(VniEvent::Snapshot { routes: own, complete: own_complete });
        let mut peer_l = Learned::default();
        peer_l.learn(VniEvent::Snapshot { routes: peer, complete: peer_complete });
        let s = Sources {
            vni: 7,
            own: &own_l,
            router: router.then(|| Ipv6Addr::new(0xfc00, 0xff, 0, 0, 0, 0, 0, 1)),
            ipv6: false,
            exports: vec![Export {
                vni: 8,
                filter: filter.as_deref(),
                learned: &peer_l,
                local: &local,
            }],
        };
        let d = desired(&s);
        let want = table(&d);
        // The one-prefix answer agrees with the whole table, for every prefix in play.
        let mut prefixes: BTreeSet<IpNet> = d.keys().copied().collect();
        prefixes.extend(own_l.standard.keys());
        prefixes.extend(peer_l.standard.keys());
        prefixes.extend(local.iter().map(|r| r.destination));
        prefixes.extend(actual.keys());
        prefixes.insert(IpNet::V4(Ipv4Net::default()));
        prefixes.insert(IpNet::V6(Ipv6Net::default()));
        for p in &prefixes {
            prop_assert_eq!(desired_one(&s, p), d.get(p).copied(), "prefix {}", p);
        }
        let may_remove = |h: &Hop| own_l.complete && (h.0 != 8 || peer_l.complete);
        let p = plan(&want, &actual, may_remove);
        let mut after = actual.clone();
        for (prefix, hop) in &p.delete {
            prop_assert_eq!(after.remove(prefix), Some(*hop));
            prop_assert!(want.get(prefix) != Some(hop));
        }
        for (prefix, hop) in &p.create {
            prop_assert!(after.insert(*prefix, *hop).is_none());
        }
        for (prefix, hop) in &after {
            match want.get(prefix) {
                Some(w) => prop_assert_eq!(w, hop),
                None => prop_assert!(!may_remove(hop), "{prefix} should have gone"),
            }
        }
        for (prefix, hop) in &want {
            prop_assert_eq!(after.get(prefix), Some(hop));
        }
        // Every peered route is inside the filter and every own route wins.
        for (prefix, (hop, origin)) in &d {
            match origin {
                Origin::Peer(v) => {
                    prop_assert_eq!(*v, 8);
                    prop_assert_eq!(hop.0, 8);
                    prop_assert!(exported(filter.as_deref(), prefix));
                    prop_assert!(!own_l.standard.contains_key(prefix));
                }
                Origin::Own => prop_assert_eq!(hop.0, 7),
                Origin::Default => prop_assert_eq!(prefix.prefix_len(), 0),
            }
        }
    }
}

#[test]
fn losing_every_server_makes_the_set_incomplete_until_complete_again() {
    let mut l = learned(&["7#10.0.0.1/32#fc00::1"]);
    assert!(l.complete);
    l.learn(VniEvent::Incomplete);
    l.learn(VniEvent::Removed(r("7#10.0.0.1/32#fc00::1")));
    assert!(!l.complete, "removals after Incomplete are no withdrawals");
    let want: Table = [(net("10.0.0.1/32"), (7, ul("fc00::1")))].into();
    let p = plan(&table(&desired(&sources(&l, vec![]))), &want, |_| {
        l.complete
    });
    assert!(p.delete.is_empty() && p.kept == 1, "{p:?}");
    l.learn(VniEvent::Complete);
    assert!(l.complete);
}
