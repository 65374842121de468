//! Routes, alias prefixes and load-balancer prefixes.

use crate::common::*;

#[tokio::test]
async fn route_contract_and_edge_cases() {
    let mut f = started().await;
    let c = &mut f.client;
    create_iface(c, "vm1", 100, "10.0.0.1", "net_tap2").await;
    ok(
        c.create_interface(iface_req("vm6", 100, "0.0.0.0", "fd00::1", "net_tap3"))
            .await,
    );
    create_iface(c, "vm2", 200, "10.0.0.1", "net_tap4").await;

    assert_eq!(
        create_route(c, 100, "192.168.1.0", 24, "fc00:2::1").await,
        0
    );
    assert_eq!(
        create_route(c, 100, "192.168.1.0", 24, "fc00:2::1").await,
        301,
        "duplicate"
    );
    assert_eq!(
        create_route(c, 100, "192.168.1.0", 24, "fc00:9::9").await,
        301,
        "one next hop per prefix"
    );
    assert_eq!(
        create_route(c, 100, "192.168.1.77", 24, "fc00:2::1").await,
        301,
        "host bits are masked"
    );
    assert_eq!(
        create_route(c, 100, "192.168.0.0", 16, "fc00:2::2").await,
        0,
        "overlapping prefix of another length"
    );
    assert_eq!(
        create_route(c, 100, "10.0.0.1", 32, "fc00:2::1").await,
        301,
        "an interface's own /32"
    );
    assert_eq!(
        create_route(c, 100, "fd00::1", 128, "fc00:2::1").await,
        301,
        "an interface's own /128"
    );
    assert_eq!(
        create_route(c, 100, "10.9.0.0", 16, "192.0.2.1").await,
        204,
        "IPv4 next hop"
    );
    assert_eq!(
        create_route(c, 100, "10.9.0.0", 33, "fc00:2::1").await,
        303,
        "IPv4 longer than /32"
    );
    assert_eq!(
        create_route(c, 100, "2001:db8::", 129, "fc00:2::1").await,
        303,
        "IPv6 longer than /128"
    );
    assert_eq!(create_route(c, 100, "2001:db8::", 32, "fc00:2::3").await, 0);
    assert_eq!(
        create_route(c, 200, "192.168.1.0", 24, "fc00:2::4").await,
        0,
        "same prefix, other VNI"
    );
    assert_eq!(
        svc(c
            .create_route(CreateRouteRequest {
                vni: 100,
                route: Some(route("10.8.0.0", 16, "fc00:2::1", 77)),
            })
            .await),
        0
    );

    let (st, routes) = list_routes(c, 100).await;
    assert_eq!(st, 0);
    assert_eq!(
        routes,
        [
            "10.8.0.0/16 via fc00:2::1 vni 77",
            "192.168.0.0/16 via fc00:2::2 vni 100",
            "192.168.1.0/24 via fc00:2::1 vni 100",
            "2001:db8::/32 via fc00:2::3 vni 100",
        ],
        "external routes only, IPv6 included, sorted"
    );
    let (_, all) = list_routes(c, 0).await;
    assert_eq!(all.len(), 5, "VNI 0 lists every VNI");

    // Longest-prefix match.
    let lpm = |a: &str| {
        f.dp.with_state(|s| {
            s.lookup(100, a.parse().unwrap())
                .map(|(n, _)| n.to_string())
        })
    };
    assert_eq!(lpm("192.168.1.5").as_deref(), Some("192.168.1.0/24"));
    assert_eq!(lpm("192.168.2.5").as_deref(), Some("192.168.0.0/16"));
    assert_eq!(lpm("10.0.0.1").as_deref(), Some("10.0.0.1/32"));
    assert_eq!(lpm("2001:db8::5").as_deref(), Some("2001:db8::/32"));
    assert_eq!(lpm("8.8.8.8"), None);

    let c = &mut f.client;
    assert_eq!(delete_route(c, 100, "192.168.1.0", 24).await, 0);
    assert_eq!(
        delete_route(c, 100, "192.168.1.0", 24).await,
        302,
        "double delete"
    );
    assert_eq!(
        delete_route(c, 100, "172.16.0.0", 12).await,
        302,
        "never existed"
    );
    assert_eq!(
        delete_route(c, 100, "10.0.0.1", 32).await,
        304,
        "a local route"
    );
    assert_eq!(delete_route(c, 100, "2001:db8::", 32).await, 0, "IPv6");
    assert_eq!(
        create_route(c, 100, "192.168.1.0", 24, "fc00:2::1").await,
        0,
        "re-create"
    );
    assert_invalid(
        c.create_route(CreateRouteRequest {
            vni: 100,
            route: None,
        })
        .await,
        "route",
    );
    assert_invalid(
        c.create_route(CreateRouteRequest {
            vni: 100,
            route: Some(route("10.0.0.0", 256, "fc00::1", 1)),
        })
        .await,
        "route.prefix.length",
    );
    assert_invalid(
        c.create_route(CreateRouteRequest {
            vni: 100,
            route: Some(route("10.0.0.300", 8, "fc00::1", 1)),
        })
        .await,
        "route.prefix.ip.address",
    );
    assert_invalid(
        c.create_route(CreateRouteRequest {
            vni: 100,
            route: Some(route("10.0.0.0", 8, "fc00::zz", 1)),
        })
        .await,
        "route.nexthop_address.address",
    );
    let mut mismatched = route("10.0.0.0", 8, "fc00::1", 1);
    mismatched
        .prefix
        .as_mut()
        .unwrap()
        .ip
        .as_mut()
        .unwrap()
        .ipver = IpVersion::Ipv6 as i32;
    assert_invalid(
        c.create_route(CreateRouteRequest {
            vni: 100,
            route: Some(mismatched),
        })
        .await,
        "route.prefix.ip.address",
    );
}

pub(crate) async fn prefixes_of(c: &mut Client, id: &str) -> (u32, Vec<String>) {
    let r = ok(c
        .list_prefixes(ListPrefixesRequest {
            interface_id: id.into(),
        })
        .await);
    (
        code(&r.status),
        r.prefixes
            .iter()
            .map(|p| format!("{}/{}", text(&p.ip.as_ref().unwrap().address), p.length))
            .collect(),
    )
}

#[tokio::test]
async fn alias_prefix_contract() {
    let mut f = started().await;
    let c = &mut f.client;
    create_iface(c, "vm1", 100, "10.0.0.1", "net_tap2").await;
    create_iface(c, "vm2", 100, "10.0.0.2", "net_tap3").await;
    let mk = prefix_req;
    let del = |id: &str, a: &str, l: u32| DeletePrefixRequest {
        interface_id: id.into(),
        prefix: Some(pfx(a, l)),
    };

    let r = ok(c.create_prefix(mk("vm1", "10.1.0.0", 24)).await);
    assert_eq!(code(&r.status), 0);
    let ul = underlay(&r.underlay_route);
    assert_eq!(svc(c.create_prefix(mk("vm1", "fd00:1::", 64)).await), 0);
    assert_eq!(
        prefixes_of(c, "vm1").await,
        (
            0,
            vec!["10.1.0.0/24".to_string(), "fd00:1::/64".to_string()]
        )
    );
    let listed = ok(c
        .list_prefixes(ListPrefixesRequest {
            interface_id: "vm1".into(),
        })
        .await);
    assert_eq!(underlay(&listed.prefixes[0].underlay_route), ul);
    assert_eq!(
        svc(c.create_prefix(mk("vm1", "10.1.0.0", 24)).await),
        301,
        "duplicate"
    );
    assert_eq!(
        svc(c.create_prefix(mk("vm2", "10.1.0.0", 24)).await),
        301,
        "taken by another interface"
    );
    assert_eq!(svc(c.create_prefix(mk("vm1", "10.1.0.0", 33)).await), 303);
    assert_eq!(svc(c.create_prefix(mk("nope", "10.2.0.0", 24)).await), 205);
    // The alias prefix is a local route: not listed, not deletable as a route, routed to vm1.
    assert_eq!(list_routes(c, 100).await, (0, vec![]));
    assert_eq!(delete_route(c, 100, "10.1.0.0", 24).await, 304);
    assert_eq!(create_route(c, 100, "10.1.0.0", 24, "fc00:2::1").await, 301);

    create_iface(c, "vm3", 300, "10.0.0.3", "net_tap4").await;
    ok(c.create_prefix(mk("vm3", "10.3.0.0", 24)).await);
    assert_eq!(
        prefixes_of(c, "").await.1.len(),
        3,
        "empty id lists every interface's prefixes"
    );
    assert_eq!(prefixes_of(c, "nope").await.0, 205);

    assert_eq!(
        svc(c.delete_prefix(del("vm2", "10.1.0.0", 24)).await),
        304,
        "another interface's prefix"
    );
    assert_eq!(svc(c.delete_prefix(del("vm1", "10.1.0.0", 24)).await), 0);
    assert_eq!(
        svc(c.delete_prefix(del("vm1", "10.1.0.0", 24)).await),
        302,
        "double delete"
    );
    assert_eq!(svc(c.delete_prefix(del("nope", "10.1.0.0", 24)).await), 205);
    assert_eq!(prefixes_of(c, "vm1").await.1, ["fd00:1::/64"]);
    assert_eq!(
        svc(c.create_prefix(mk("vm2", "10.1.0.0", 24)).await),
        0,
        "re-create, on another interface"
    );
    assert_invalid(
        c.create_prefix(mk("vm1", "10.5.0.0", 300)).await,
        "prefix.length",
    );
    assert_invalid(
        c.create_prefix(CreatePrefixRequest {
            interface_id: "vm1".into(),
            ..Default::default()
        })
        .await,
        "prefix",
    );
}

#[tokio::test]
async fn load_balancer_prefix_contract() {
    let mut f = started().await;
    let c = &mut f.client;
    create_iface(c, "vm1", 100, "10.0.0.1", "net_tap2").await;
    create_iface(c, "vm2", 100, "10.0.0.2", "net_tap3").await;
    let mk = lb_prefix_req;
    let del = |id: &str, a: &str, l: u32| DeleteLoadBalancerPrefixRequest {
        interface_id: id.into(),
        prefix: Some(pfx(a, l)),
    };
    let list = |id: &str| ListLoadBalancerPrefixesRequest {
        interface_id: id.into(),
    };

    let r = ok(c
        .create_load_balancer_prefix(mk("vm1", "20.0.0.0", 24))
        .await);
    assert_eq!(code(&r.status), 0);
    let l = ok(c.list_load_balancer_prefixes(list("vm1")).await);
    assert_eq!(code(&l.status), 0);
    assert_eq!(l.prefixes.len(), 1);
    assert_eq!(l.prefixes[0].underlay_route, r.underlay_route);
    assert_eq!(
        svc(c
            .create_load_balancer_prefix(mk("vm1", "20.0.0.0", 24))
            .await),
        202
    );
    assert_eq!(
        svc(c
            .create_load_balancer_prefix(mk("nope", "20.0.0.0", 24))
            .await),
        205
    );
    ok(c.create_load_balancer_prefix(mk("vm2", "20.0.1.0", 24))
        .await);
    assert_eq!(
        ok(c.list_load_balancer_prefixes(list("")).await)
            .prefixes
            .len(),
        2
    );
    assert_eq!(svc(c.list_load_balancer_prefixes(list("nope")).await), 205);
    assert_eq!(
        svc(c
            .delete_load_balancer_prefix(del("vm1", "20.0.0.0", 24))
            .await),
        0
    );
    assert_eq!(
        svc(c
            .delete_load_balancer_prefix(del("vm1", "20.0.0.0", 24))
            .await),
        201
    );
    assert_eq!(
        svc(c
            .delete_load_balancer_prefix(del("nope", "20.0.0.0", 24))
            .await),
        205
    );
    assert!(
        ok(c.list_load_balancer_prefixes(list("vm1")).await)
            .prefixes
            .is_empty()
    );
    assert_eq!(
        svc(c
            .create_load_balancer_prefix(mk("vm1", "20.0.0.0", 24))
            .await),
        0
    );
}
