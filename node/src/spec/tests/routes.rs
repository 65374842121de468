use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv6Addr};

use ferrinet_route_client::route::{NextHopType, Route};
use ipnet::IpNet;
use proptest::prelude::*;

use super::strategies::{arb_interface, arb_load_balancer, arb_underlay, arb_underlays};
use super::{V6, interface_pb, lb_pb};
use crate::spec::{
    InterfaceSpec, InterfaceUnderlays, LbKind, LoadBalancerSpec, diff, interface_routes,
    load_balancer_routes, validate_interface, validate_load_balancer,
};

const VNI: u32 = 23;
const PUBLIC: u32 = 100;

fn ul(n: u16) -> Ipv6Addr {
    Ipv6Addr::new(0xfc00, 1, 0, 0, 0, 0xb, 0, n)
}

fn routes(lines: &[&str]) -> BTreeSet<Route> {
    lines.iter().map(|l| l.parse().unwrap()).collect()
}

fn full_underlays(spec: &InterfaceSpec) -> InterfaceUnderlays {
    InterfaceUnderlays {
        interface: Some(ul(1)),
        vip: Some(ul(2)),
        nat: Some(ul(3)),
        prefixes: spec
            .prefixes
            .iter()
            .zip(10..)
            .map(|(n, i)| (*n, ul(i)))
            .collect(),
        lb_targets: spec
            .lb_targets
            .iter()
            .zip(20..)
            .map(|(n, i)| (*n, ul(i)))
            .collect(),
    }
}

#[test]
fn interface_announces_the_table() {
    let (_, spec) = validate_interface(&interface_pb(), &V6).unwrap();
    let got = interface_routes(&spec, VNI, PUBLIC, &full_underlays(&spec));
    let want = routes(&[
        "23#10.0.0.5/32#fc00:1::b:0:1#STD",
        "23#fd00::5/128#fc00:1::b:0:1#STD",
        "100#fd00::5/128#fc00:1::b:0:1#STD",
        "23#10.1.0.0/24#fc00:1::b:0:a#STD",
        "23#fd00:1::/64#fc00:1::b:0:b#STD",
        "23#10.2.0.1/32#fc00:1::b:0:14#LB",
        "23#10.3.0.0/30#fc00:1::b:0:15#LB",
        "100#203.0.113.5/32#fc00:1::b:0:2#STD",
        "100#203.0.113.9/32#fc00:1::b:0:3#STD",
        "23#203.0.113.9/32#fc00:1::b:0:3#NAT#1024#2048",
    ]);
    assert_eq!(got, want);
    assert!(got.iter().all(|r| r.next_hop.target_vni == 0));
}

#[test]
fn nothing_without_underlays() {
    let (_, spec) = validate_interface(&interface_pb(), &V6).unwrap();
    let none = InterfaceUnderlays::default();
    assert!(interface_routes(&spec, VNI, PUBLIC, &none).is_empty());
    // Underlays of objects the spec does not have announce nothing either.
    let mut stray = InterfaceUnderlays::default();
    stray
        .prefixes
        .insert("192.168.0.0/16".parse().unwrap(), ul(9));
    assert!(interface_routes(&spec, VNI, PUBLIC, &stray).is_empty());
}

#[test]
fn load_balancer_announces_its_ip_by_kind() {
    let (_, mut spec) = validate_load_balancer(&lb_pb(), &V6).unwrap();
    assert_eq!(
        load_balancer_routes(&spec, VNI, PUBLIC, Some(ul(7))),
        routes(&["100#203.0.113.80/32#fc00:1::b:0:7#STD"])
    );
    spec.kind = LbKind::Internal;
    spec.ip = "fd00::80".parse().unwrap();
    assert_eq!(
        load_balancer_routes(&spec, VNI, PUBLIC, Some(ul(7))),
        routes(&["23#fd00::80/128#fc00:1::b:0:7#STD"])
    );
    assert!(load_balancer_routes(&spec, VNI, PUBLIC, None).is_empty());
}

#[test]
fn changing_the_nat_slice_withdraws_only_the_nat_route() {
    let (_, old) = validate_interface(&interface_pb(), &V6).unwrap();
    let mut new = old.clone();
    if let Some(n) = new.nat.as_mut() {
        n.end_port = 4096;
    }
    let uls = full_underlays(&old);
    let d = diff(
        &interface_routes(&new, VNI, PUBLIC, &uls),
        &interface_routes(&old, VNI, PUBLIC, &uls),
    );
    assert_eq!(
        d.remove,
        routes(&["23#203.0.113.9/32#fc00:1::b:0:3#NAT#1024#2048"])
    );
    assert_eq!(
        d.add,
        routes(&["23#203.0.113.9/32#fc00:1::b:0:3#NAT#1024#4096"])
    );
}

/// The table of `routes.rs`, one row at a time.
fn model_rows(
    s: &InterfaceSpec,
    vni: u32,
    public: u32,
    u: &InterfaceUnderlays,
) -> Vec<BTreeSet<Route>> {
    let std =
        |v: u32, d: IpNet, a: Ipv6Addr| -> Route { format!("{v}#{d}#{a}#STD").parse().unwrap() };
    let host = |ip: IpAddr| IpNet::from(ip);
    let mut rows = vec![];
    // interface IP (each)
    rows.push(u.interface.map_or_else(BTreeSet::new, |a| {
        s.ips().map(|ip| std(vni, host(ip), a)).collect()
    }));
    // interface IPv6 IP (also, public)
    rows.push(u.interface.map_or_else(BTreeSet::new, |a| {
        s.ipv6
            .map(|ip| std(public, host(IpAddr::V6(ip)), a))
            .into_iter()
            .collect()
    }));
    // prefix
    rows.push(
        s.prefixes
            .iter()
            .filter_map(|n| u.prefixes.get(n).map(|a| std(vni, *n, *a)))
            .collect(),
    );
    // LB target
    rows.push(
        s.lb_targets
            .iter()
            .filter_map(|n| {
                u.lb_targets
                    .get(n)
                    .map(|a| format!("{vni}#{n}#{a}#LB").parse().unwrap())
            })
            .collect(),
    );
    // VIP
    rows.push(
        s.virtual_ip
            .zip(u.vip)
            .map(|(ip, a)| std(public, host(IpAddr::V4(ip)), a))
            .into_iter()
            .collect(),
    );
    // NAT (public)
    rows.push(
        s.nat
            .zip(u.nat)
            .map(|(n, a)| std(public, host(IpAddr::V4(n.ip)), a))
            .into_iter()
            .collect(),
    );
    // NAT (network, with ports)
    rows.push(
        s.nat
            .zip(u.nat)
            .map(|(n, a)| {
                format!("{vni}#{}/32#{a}#NAT#{}#{}", n.ip, n.port, n.end_port)
                    .parse()
                    .unwrap()
            })
            .into_iter()
            .collect(),
    );
    rows
}

fn lb_model(s: &LoadBalancerSpec, vni: u32, public: u32, ul: Option<Ipv6Addr>) -> BTreeSet<Route> {
    let v = if s.kind == LbKind::Internal {
        vni
    } else {
        public
    };
    ul.map(|a| {
        format!("{v}#{}#{a}#STD", IpNet::from(s.ip))
            .parse()
            .unwrap()
    })
    .into_iter()
    .collect()
}

fn spec_and_underlays() -> impl Strategy<Value = (InterfaceSpec, InterfaceUnderlays)> {
    arb_interface().prop_flat_map(|s| {
        let u = arb_underlays(&s);
        (Just(s), u)
    })
}

proptest! {
    #[test]
    fn interface_routes_are_the_union_of_the_rows(
        (spec, uls) in spec_and_underlays(),
        vni in 1u32..5,
        public in 1u32..5,
    ) {
        let got = interface_routes(&spec, vni, public, &uls);
        let union: BTreeSet<Route> =
            model_rows(&spec, vni, public, &uls).into_iter().flatten().collect();
        prop_assert_eq!(&got, &union);
        let known: BTreeSet<Ipv6Addr> = uls
            .interface
            .into_iter()
            .chain(uls.vip)
            .chain(uls.nat)
            .chain(uls.prefixes.values().copied())
            .chain(uls.lb_targets.values().copied())
            .collect();
        for r in &got {
            prop_assert_eq!(r.next_hop.target_vni, 0);
            prop_assert!(known.contains(&r.next_hop.address));
            prop_assert!(r.vni == vni || r.vni == public);
            // Every route is one a route server accepts.
            let update = r.to_update(ferrinet_route_client::route::Action::Add);
            let (_, back) = Route::from_update(&update).unwrap();
            prop_assert_eq!(back, *r);
            if r.next_hop.kind == NextHopType::Nat {
                prop_assert!(r.next_hop.port_from < r.next_hop.port_to);
            }
        }
    }

    #[test]
    fn load_balancer_routes_match_the_table(
        spec in arb_load_balancer(),
        ul in proptest::option::of(arb_underlay()),
        vni in 1u32..5,
        public in 1u32..5,
    ) {
        prop_assert_eq!(
            load_balancer_routes(&spec, vni, public, ul),
            lb_model(&spec, vni, public, ul)
        );
    }

    #[test]
    fn announcement_diffs_withdraw_exactly_what_went_away(
        (a, ua) in spec_and_underlays(),
        (b, ub) in spec_and_underlays(),
        same_vni in any::<bool>(),
    ) {
        let old = interface_routes(&a, VNI, PUBLIC, &ua);
        let new = interface_routes(&b, if same_vni { VNI } else { VNI + 1 }, PUBLIC, &ub);
        let d = diff(&new, &old);
        prop_assert!(d.remove.iter().all(|r| old.contains(r) && !new.contains(r)));
        prop_assert!(d.add.iter().all(|r| new.contains(r) && !old.contains(r)));
        let mut announced = old.clone();
        for r in &d.remove { announced.remove(r); }
        announced.extend(d.add.iter().copied());
        prop_assert_eq!(&announced, &new);
        // Routes in both are neither withdrawn nor re-announced (no churn).
        for r in old.intersection(&new) {
            prop_assert!(!d.remove.contains(r) && !d.add.contains(r));
        }
    }
}
