//! Conformance suite: the dpservice API contract over real gRPC on loopback.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use std::collections::HashSet;
use std::net::Ipv6Addr;

#[tokio::test]
async fn initialization_gate_and_uuid() {
    let mut f = start().await;
    let c = &mut f.client;
    assert_aborted(c.check_initialized(CheckInitializedRequest {}).await);
    assert_aborted(
        c.get_version(GetVersionRequest {
            client_protocol: "1".into(),
            client_name: "t".into(),
            client_version: "1".into(),
        })
        .await,
    );
    assert_aborted(c.list_interfaces(ListInterfacesRequest {}).await);
    assert_aborted(
        c.create_route(CreateRouteRequest {
            vni: 1,
            route: Some(route("10.0.0.0", 8, "fc00::1", 1)),
        })
        .await,
    );
    // Even a malformed request is ABORTED before it is parsed.
    assert_aborted(c.create_interface(CreateInterfaceRequest::default()).await);

    let first = ok(c.initialize(InitializeRequest {}).await);
    assert_eq!(code(&first.status), 0);
    uuid::Uuid::parse_str(&first.uuid).expect("uuid format");
    let again = ok(c.initialize(InitializeRequest {}).await);
    assert_eq!(again.uuid, first.uuid);
    let check = ok(c.check_initialized(CheckInitializedRequest {}).await);
    assert_eq!(code(&check.status), 0);
    assert_eq!(check.uuid, first.uuid);

    // Initialize does not wipe state.
    create_iface(c, "vm1", 100, "10.0.0.1", "net_tap2").await;
    c.initialize(InitializeRequest {}).await.expect("init");
    let list = ok(c.list_interfaces(ListInterfacesRequest {}).await);
    assert_eq!(list.interfaces.len(), 1);

    // Another instance ("process") has another UUID.
    let mut g = start().await;
    let other = ok(g.client.initialize(InitializeRequest {}).await);
    assert_ne!(other.uuid, first.uuid);
}

#[tokio::test]
async fn health_service_reports_serving() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let f = start().await;
    let mut h = HealthClient::new(f.channel.clone());
    for service in ["", "dpdkironcore.v1.DPDKironcore"] {
        let r = ok(h
            .check(HealthCheckRequest {
                service: service.to_string(),
            })
            .await);
        assert_eq!(r.status, ServingStatus::Serving as i32, "{service:?}");
    }
}

#[tokio::test]
async fn version() {
    let mut f = started().await;
    let r = ok(f
        .client
        .get_version(GetVersionRequest {
            client_protocol: "dpdkironcore.v1".into(),
            client_name: "ferrinet-node".into(),
            client_version: "0.1.0".into(),
        })
        .await);
    assert_eq!(code(&r.status), 0);
    assert_eq!(r.service_protocol, "dpdkironcore.v1");
    assert!(r.service_version.starts_with("ferrinet-dataplane "));
    assert_invalid(
        f.client
            .get_version(GetVersionRequest {
                client_protocol: "".into(),
                client_name: "x".into(),
                client_version: "1".into(),
            })
            .await,
        "client_protocol",
    );
}

#[tokio::test]
async fn interface_contract() {
    let mut f = started().await;
    let c = &mut f.client;
    let r = create_iface(c, "vm1", 100, "10.0.0.1", "net_tap2").await;
    let vf = r.vf.expect("vf");
    assert_eq!(vf.name, "dtap2");
    assert_eq!((vf.domain, vf.bus, vf.slot, vf.function), (0, 0, 0, 0));
    let ul = underlay(&r.underlay_route);

    let got = ok(c.get_interface(get_iface_req("vm1")).await);
    assert_eq!(code(&got.status), 0);
    let i = got.interface.expect("interface");
    assert_eq!(text(&i.id), "vm1");
    assert_eq!(i.vni, 100);
    assert_eq!(text(&i.primary_ipv4), "10.0.0.1");
    assert_eq!(text(&i.primary_ipv6), "::");
    assert_eq!(underlay(&i.underlay_route), ul);
    assert_eq!(i.pci_name, "net_tap2");

    let list = ok(c.list_interfaces(ListInterfacesRequest {}).await);
    assert_eq!(code(&list.status), 0);
    assert_eq!(list.interfaces, vec![i.clone()]);

    // Duplicate id: 402 even on a free device.
    let dup = ok(c
        .create_interface(iface_req("vm1", 100, "10.0.0.9", "::", "net_tap3"))
        .await);
    assert_eq!(code(&dup.status), 402);
    assert!(dup.vf.is_none() && dup.underlay_route.is_empty());
    // Device in use, PF, unknown device.
    assert_eq!(
        svc(c
            .create_interface(iface_req("vm2", 100, "10.0.0.2", "::", "net_tap2"))
            .await),
        202
    );
    assert_eq!(
        svc(c
            .create_interface(iface_req("vm2", 100, "10.0.0.2", "::", "net_tap0"))
            .await),
        202
    );
    assert_eq!(
        svc(c
            .create_interface(iface_req("vm2", 100, "10.0.0.2", "::", "net_tap999"))
            .await),
        201
    );
    // Same IPv4 in the same VNI: 301; in another VNI it is fine.
    assert_eq!(
        svc(c
            .create_interface(iface_req("vm2", 100, "10.0.0.1", "::", "net_tap3"))
            .await),
        301
    );
    create_iface(c, "vm2", 200, "10.0.0.1", "net_tap3").await;
    // Same IPv6 in the same VNI: 301.
    c.create_interface(iface_req("vm3", 300, "0.0.0.0", "fd00::1", "net_tap4"))
        .await
        .expect("v6");
    assert_eq!(
        svc(c
            .create_interface(iface_req("vm4", 300, "0.0.0.0", "fd00::1", "net_tap5"))
            .await),
        301
    );

    // Delete, get after delete, double delete, re-create on the same device.
    assert_eq!(svc(c.delete_interface(del_iface_req("vm1")).await), 0);
    let g = ok(c.get_interface(get_iface_req("vm1")).await);
    assert_eq!(code(&g.status), 201);
    assert!(g.interface.is_none());
    assert_eq!(svc(c.delete_interface(del_iface_req("vm1")).await), 201);
    let again = create_iface(c, "vm1", 100, "10.0.0.1", "net_tap2").await;
    assert_ne!(
        underlay(&again.underlay_route),
        ul,
        "a new object gets a new underlay"
    );
    let list = ok(c.list_interfaces(ListInterfacesRequest {}).await);
    let ids: Vec<String> = list.interfaces.iter().map(|i| text(&i.id)).collect();
    assert_eq!(ids, ["vm1", "vm2", "vm3"]);
}

#[tokio::test]
async fn interface_device_set_is_configurable() {
    let mut cfg = ferrinet_dataplane::DataplaneConfig::tap("fc00:1::1".parse().unwrap(), 2);
    cfg.vf_ports.push(ferrinet_dataplane::VfPort::parse(
        "0000:3b:00.0_representor_vf2=enp59s0f0v2",
    ));
    let mut f = start_with(cfg).await;
    f.client
        .initialize(InitializeRequest {})
        .await
        .expect("init");
    let c = &mut f.client;
    create_iface(c, "a", 1, "10.0.0.1", "net_tap2").await;
    create_iface(c, "b", 1, "10.0.0.2", "net_tap3").await;
    let r = create_iface(c, "c", 1, "10.0.0.3", "0000:3b:00.0_representor_vf2").await;
    assert_eq!(r.vf.expect("vf").name, "enp59s0f0v2");
    assert_eq!(
        svc(c
            .create_interface(iface_req("d", 1, "10.0.0.4", "::", "net_tap4"))
            .await),
        201
    );
}

#[tokio::test]
async fn underlay_addresses_are_unique_and_well_formed() {
    let mut f = started().await;
    let c = &mut f.client;
    let mut seen = HashSet::new();
    let mut counters = Vec::new();
    let mut check = |u: Ipv6Addr| {
        let o = u.octets();
        assert_eq!(
            &o[..8],
            &"fc00:1::".parse::<Ipv6Addr>().unwrap().octets()[..8],
            "own /64"
        );
        assert_eq!((o[8], o[9]), (0, 0), "16 zero bits");
        assert_eq!(o[10], 0, "generated addresses carry no flag");
        assert!(seen.insert(u), "duplicate underlay {u}");
        counters.push(u32::from_be_bytes([o[12], o[13], o[14], o[15]]));
    };
    for n in 0..5u32 {
        let r = create_iface(
            c,
            &format!("vm{n}"),
            7,
            &format!("10.0.0.{}", n + 1),
            &format!("net_tap{}", n + 2),
        )
        .await;
        check(underlay(&r.underlay_route));
    }
    let vip = ok(c.create_vip(vip_req("vm0", "1.1.1.1")).await);
    check(underlay(&vip.underlay_route));
    let nat = ok(c.create_nat(nat_req("vm1", "2.2.2.2", 0, 100)).await);
    check(underlay(&nat.underlay_route));
    let lb = ok(c
        .create_load_balancer(CreateLoadBalancerRequest {
            loadbalancer_id: "lb".into(),
            loadbalanced_ip: Some(ip4("3.3.3.3")),
            vni: 7,
            ..Default::default()
        })
        .await);
    check(underlay(&lb.underlay_route));
    let p = ok(c.create_prefix(prefix_req("vm2", "10.1.0.0", 24)).await);
    check(underlay(&p.underlay_route));
    let lp = ok(c
        .create_load_balancer_prefix(lb_prefix_req("vm3", "10.2.0.0", 24))
        .await);
    check(underlay(&lp.underlay_route));
    // One counter shared by all kinds: strictly increasing across them.
    assert!(
        counters.windows(2).all(|w| w[1] == w[0] + 1),
        "{counters:?}"
    );

    // Preferred underlays: accepted inside the /64 with flag 0x80, echoed back.
    let mut req = iface_req("pref", 7, "10.0.0.50", "::", "net_tap20");
    req.preferred_underlay_route = b"fc00:1::8000:0:99".to_vec();
    let r = ok(c.create_interface(req.clone()).await);
    assert_eq!(code(&r.status), 0);
    assert_eq!(
        underlay(&r.underlay_route),
        "fc00:1::8000:0:99".parse::<Ipv6Addr>().unwrap()
    );
    // Collision with an existing underlay (any kind): 401.
    let mut req2 = iface_req("pref2", 7, "10.0.0.51", "::", "net_tap21");
    req2.preferred_underlay_route = b"fc00:1::8000:0:99".to_vec();
    assert_eq!(svc(c.create_interface(req2.clone()).await), 401);
    assert_eq!(
        svc(c
            .create_vip(CreateVipRequest {
                interface_id: "vm1".into(),
                vip_ip: Some(ip4("1.1.1.9")),
                preferred_underlay_route: b"fc00:1::8000:0:99".to_vec(),
            })
            .await),
        401
    );
    // Outside the /64, no flag, not IPv6: INVALID_ARGUMENT.
    for bad in ["fc00:2::8000:0:99", "fc00:1::b:0:99", "10.0.0.1", "garbage"] {
        req2.preferred_underlay_route = bad.as_bytes().to_vec();
        assert_invalid(
            c.create_interface(req2.clone()).await,
            "preferred_underlay_route",
        );
    }
    // Deleting releases the preferred address for reuse.
    ok(c.delete_interface(del_iface_req("pref")).await);
    req2.preferred_underlay_route = b"fc00:1::8000:0:99".to_vec();
    assert_eq!(svc(c.create_interface(req2).await), 0);
}

#[tokio::test]
async fn vni_lifecycle_follows_interfaces_and_load_balancers() {
    let mut f = started().await;
    let c = &mut f.client;
    assert!(!vni_in_use(c, 100).await);
    assert_eq!(create_route(c, 100, "10.0.0.0", 8, "fc00:2::1").await, 206);
    assert_eq!(list_routes(c, 100).await.0, 206);
    assert_eq!(delete_route(c, 100, "10.0.0.0", 8).await, 206);

    create_iface(c, "a", 100, "10.0.0.1", "net_tap2").await;
    create_iface(c, "b", 100, "10.0.0.2", "net_tap3").await;
    assert!(vni_in_use(c, 100).await);
    assert_eq!(
        create_route(c, 100, "192.168.0.0", 16, "fc00:2::1").await,
        0
    );
    ok(c.delete_interface(del_iface_req("a")).await);
    assert!(vni_in_use(c, 100).await, "b still uses the VNI");
    assert_eq!(list_routes(c, 100).await.1.len(), 1);
    ok(c.delete_interface(del_iface_req("b")).await);
    assert!(!vni_in_use(c, 100).await);
    assert_eq!(list_routes(c, 100).await.0, 206);
    // Tables come back empty.
    create_iface(c, "a", 100, "10.0.0.1", "net_tap2").await;
    assert_eq!(list_routes(c, 100).await, (0, vec![]));

    // A load balancer holds a VNI too.
    assert_eq!(
        svc(c
            .create_load_balancer(CreateLoadBalancerRequest {
                loadbalancer_id: "lb1".into(),
                loadbalanced_ip: Some(ip4("5.5.5.5")),
                vni: 555,
                ..Default::default()
            })
            .await),
        0
    );
    assert!(vni_in_use(c, 555).await);
    assert_eq!(create_route(c, 555, "0.0.0.0", 0, "fc00:2::1").await, 0);
    ok(c.delete_load_balancer(del_lb_req("lb1")).await);
    assert!(!vni_in_use(c, 555).await);

    // VNI type rules.
    assert_eq!(
        svc(c
            .check_vni_in_use(CheckVniInUseRequest {
                vni: 100,
                r#type: VniType::VniBoth as i32,
            })
            .await),
        203
    );
    let v6 = ok(c
        .check_vni_in_use(CheckVniInUseRequest {
            vni: 100,
            r#type: VniType::VniIpv6 as i32,
        })
        .await);
    assert_eq!((code(&v6.status), v6.in_use), (0, true));
    assert_invalid(
        c.check_vni_in_use(CheckVniInUseRequest {
            vni: 100,
            r#type: 9,
        })
        .await,
        "type",
    );
    assert_eq!(
        svc(c
            .reset_vni(ResetVniRequest {
                vni: 100,
                r#type: VniType::VniIpv4 as i32,
            })
            .await),
        203
    );
    assert_eq!(
        svc(c
            .reset_vni(ResetVniRequest {
                vni: 4242,
                r#type: VniType::VniBoth as i32,
            })
            .await),
        206
    );

    // ResetVni drops external routes and keeps local ones.
    assert_eq!(create_route(c, 100, "172.16.0.0", 12, "fc00:2::1").await, 0);
    assert_eq!(create_route(c, 100, "fd00::", 64, "fc00:2::2").await, 0);
    assert_eq!(
        svc(c
            .reset_vni(ResetVniRequest {
                vni: 100,
                r#type: VniType::VniBoth as i32,
            })
            .await),
        0
    );
    assert_eq!(list_routes(c, 100).await, (0, vec![]));
    let local =
        f.dp.with_state(|s| s.lookup(100, "10.0.0.1".parse().unwrap()));
    assert!(
        matches!(local, Some((_, ferrinet_dataplane::routes::NextHop::Local(ref id))) if &**id == "a")
    );
    assert!(vni_in_use(&mut f.client, 100).await);
}

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

async fn prefixes_of(c: &mut Client, id: &str) -> (u32, Vec<String>) {
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

#[tokio::test]
async fn vip_contract() {
    let mut f = started().await;
    let c = &mut f.client;
    create_iface(c, "vm1", 100, "10.0.0.1", "net_tap2").await;
    create_iface(c, "vm2", 100, "10.0.0.2", "net_tap3").await;
    let mk = vip_req;
    let get = |id: &str| GetVipRequest {
        interface_id: id.into(),
    };
    let del = |id: &str| DeleteVipRequest {
        interface_id: id.into(),
    };

    let r = ok(c.create_vip(mk("vm1", "45.0.0.1")).await);
    assert_eq!(code(&r.status), 0);
    let g = ok(c.get_vip(get("vm1")).await);
    assert_eq!(code(&g.status), 0);
    assert_eq!(g.vip_ip, Some(ip4("45.0.0.1")));
    assert_eq!(g.underlay_route, r.underlay_route);
    assert_eq!(
        svc(c.create_vip(mk("vm1", "45.0.0.2")).await),
        343,
        "second VIP"
    );
    assert_eq!(
        svc(c.create_vip(mk("vm2", "2001:db8::1")).await),
        204,
        "IPv6"
    );
    assert_eq!(svc(c.create_vip(mk("nope", "45.0.0.3")).await), 205);
    assert_eq!(svc(c.get_vip(get("vm2")).await), 341, "no VIP");
    assert_eq!(svc(c.get_vip(get("nope")).await), 205);
    // A VIP equal to an existing NAT IP of the VNI.
    ok(c.create_nat(nat_req("vm2", "46.0.0.1", 1000, 2000)).await);
    create_iface(c, "vm3", 100, "10.0.0.3", "net_tap4").await;
    assert_eq!(svc(c.create_vip(mk("vm3", "46.0.0.1")).await), 323);
    assert_eq!(
        svc(c.create_vip(mk("vm3", "45.0.0.1")).await),
        323,
        "another interface's VIP"
    );

    assert_eq!(svc(c.delete_vip(del("vm1")).await), 0);
    assert_eq!(svc(c.get_vip(get("vm1")).await), 341);
    assert_eq!(svc(c.delete_vip(del("vm1")).await), 341, "double delete");
    assert_eq!(svc(c.delete_vip(del("nope")).await), 205);
    assert_eq!(
        svc(c.create_vip(mk("vm1", "45.0.0.1")).await),
        0,
        "re-create"
    );
    assert_invalid(c.create_vip(mk("vm1", "45.0.0")).await, "vip_ip.address");
    assert_invalid(
        c.create_vip(CreateVipRequest {
            interface_id: "vm1".into(),
            ..Default::default()
        })
        .await,
        "vip_ip",
    );
}

async fn local_nats(c: &mut Client, nat_ip: &str) -> (u32, Vec<String>) {
    let r = ok(c
        .list_local_nats(ListLocalNatsRequest {
            nat_ip: Some(ip(nat_ip)),
        })
        .await);
    (
        code(&r.status),
        r.nat_entries
            .iter()
            .map(|e| {
                format!(
                    "{} {} [{},{}) vni {}",
                    text(&e.nat_ip.as_ref().unwrap().address),
                    text(&e.actual_nat_ip.as_ref().unwrap().address),
                    e.min_port,
                    e.max_port,
                    e.vni
                )
            })
            .collect(),
    )
}

#[tokio::test]
async fn nat_contract() {
    let mut f = started().await;
    let c = &mut f.client;
    create_iface(c, "vm1", 100, "10.0.0.1", "net_tap2").await;
    create_iface(c, "vm2", 100, "10.0.0.2", "net_tap3").await;
    create_iface(c, "vm3", 100, "10.0.0.3", "net_tap4").await;

    let mk = nat_req;
    let r = ok(c.create_nat(mk("vm1", "50.0.0.1", 0, 1024)).await);
    assert_eq!(code(&r.status), 0);
    let g = ok(c.get_nat(get_nat_req("vm1")).await);
    assert_eq!(code(&g.status), 0);
    assert_eq!(
        (g.nat_ip, g.min_port, g.max_port),
        (Some(ip4("50.0.0.1")), 0, 1024)
    );
    assert_eq!(g.underlay_route, r.underlay_route);
    assert_eq!(
        svc(c.create_nat(mk("vm1", "50.0.0.9", 0, 10)).await),
        343,
        "second NAT"
    );
    // Half-open slices: [1024, 2048) touches [0, 1024) without overlapping; shared NAT IP.
    assert_eq!(
        svc(c.create_nat(mk("vm2", "50.0.0.1", 1024, 2048)).await),
        0
    );
    assert_eq!(
        svc(c.create_nat(mk("vm3", "50.0.0.1", 2000, 3000)).await),
        202,
        "overlapping slice"
    );
    assert_eq!(
        svc(c.create_nat(mk("vm3", "2001:db8::1", 0, 10)).await),
        204
    );
    assert_eq!(
        svc(c.create_nat(mk("nope", "50.0.0.1", 5000, 6000)).await),
        205
    );
    // A NAT IP equal to a VIP of the VNI.
    ok(c.create_vip(vip_req("vm3", "51.0.0.1")).await);
    assert_eq!(svc(c.create_nat(mk("vm3", "51.0.0.1", 0, 10)).await), 323);

    assert_eq!(
        local_nats(c, "50.0.0.1").await,
        (
            0,
            vec![
                "10.0.0.1 50.0.0.1 [0,1024) vni 100".to_string(),
                "10.0.0.2 50.0.0.1 [1024,2048) vni 100".to_string()
            ]
        )
    );
    ok(c.create_nat(mk("vm3", "52.0.0.1", 100, 200)).await);
    assert_eq!(
        local_nats(c, "0.0.0.0").await.1.len(),
        3,
        "0.0.0.0 lists every NAT"
    );
    assert_eq!(local_nats(c, "9.9.9.9").await, (0, vec![]));
    assert_eq!(local_nats(c, "::").await.0, 204);
    assert_invalid(
        c.list_local_nats(ListLocalNatsRequest {
            nat_ip: Some(ip4("")),
        })
        .await,
        "nat_ip.address",
    );

    assert_eq!(svc(c.delete_nat(del_nat_req("vm1")).await), 0);
    assert_eq!(svc(c.get_nat(get_nat_req("vm1")).await), 341);
    assert_eq!(svc(c.delete_nat(del_nat_req("vm1")).await), 341);
    assert_eq!(svc(c.delete_nat(del_nat_req("nope")).await), 205);
    assert_eq!(
        svc(c.create_nat(mk("vm1", "50.0.0.1", 0, 1024)).await),
        0,
        "re-create"
    );

    assert_invalid(
        c.create_nat(mk("vm1", "50.0.0.1", 10, 10)).await,
        "max_port",
    );
    assert_invalid(
        c.create_nat(mk("vm1", "50.0.0.1", 20, 10)).await,
        "max_port",
    );
    assert_invalid(
        c.create_nat(mk("vm1", "50.0.0.1", 70000, 70001)).await,
        "min_port",
    );
    assert_invalid(
        c.create_nat(mk("vm1", "50.0.0.1", 0, 65536)).await,
        "max_port",
    );
}

#[tokio::test]
async fn neighbor_nat_contract() {
    let mut f = started().await;
    let c = &mut f.client;
    let mk = |a: &str, vni: u32, lo: u32, hi: u32| CreateNeighborNatRequest {
        nat_ip: Some(ip(a)),
        vni,
        min_port: lo,
        max_port: hi,
        underlay_route: b"fc00:2::77".to_vec(),
    };
    let del = |a: &str, vni: u32, lo: u32, hi: u32| DeleteNeighborNatRequest {
        nat_ip: Some(ip(a)),
        vni,
        min_port: lo,
        max_port: hi,
    };
    let list = |a: &str| ListNeighborNatsRequest {
        nat_ip: Some(ip(a)),
    };

    assert_eq!(
        svc(c.create_neighbor_nat(mk("60.0.0.1", 100, 1000, 2000)).await),
        0
    );
    assert_eq!(
        svc(c.create_neighbor_nat(mk("60.0.0.1", 100, 1000, 2000)).await),
        202,
        "duplicate"
    );
    assert_eq!(
        svc(c.create_neighbor_nat(mk("60.0.0.1", 100, 1999, 2500)).await),
        202,
        "overlap"
    );
    assert_eq!(
        svc(c.create_neighbor_nat(mk("60.0.0.1", 100, 500, 1001)).await),
        202,
        "overlap below"
    );
    assert_eq!(
        svc(c.create_neighbor_nat(mk("60.0.0.1", 100, 2000, 3000)).await),
        0,
        "adjacent, half-open"
    );
    assert_eq!(
        svc(c.create_neighbor_nat(mk("60.0.0.1", 200, 1000, 2000)).await),
        0,
        "other VNI"
    );
    assert_eq!(
        svc(c.create_neighbor_nat(mk("60.0.0.2", 100, 1000, 2000)).await),
        0,
        "other IP"
    );
    assert_eq!(
        svc(c.create_neighbor_nat(mk("2001:db8::1", 100, 1, 2)).await),
        204
    );
    // A local NAT slice overlapping a neighbour's slice of the same IP.
    create_iface(c, "vm1", 100, "10.0.0.1", "net_tap2").await;
    assert_eq!(
        svc(c.create_nat(nat_req("vm1", "60.0.0.1", 2500, 2600)).await),
        202
    );

    let l = ok(c.list_neighbor_nats(list("60.0.0.1")).await);
    assert_eq!(code(&l.status), 0);
    assert_eq!(l.nat_entries.len(), 3);
    assert!(l.nat_entries.iter().all(
        |e| text(&e.underlay_route) == "fc00:2::77" && e.actual_nat_ip == Some(ip4("60.0.0.1"))
    ));
    assert_eq!(
        ok(c.list_neighbor_nats(list("0.0.0.0")).await)
            .nat_entries
            .len(),
        4
    );
    assert_invalid(
        c.list_neighbor_nats(ListNeighborNatsRequest {
            nat_ip: Some(ip4("")),
        })
        .await,
        "nat_ip.address",
    );

    assert_eq!(
        svc(c
            .delete_neighbor_nat(del("60.0.0.1", 100, 1000, 2000))
            .await),
        0
    );
    assert_eq!(
        svc(c
            .delete_neighbor_nat(del("60.0.0.1", 100, 1000, 2000))
            .await),
        201
    );
    assert_eq!(
        svc(c
            .delete_neighbor_nat(del("60.0.0.1", 100, 1000, 1500))
            .await),
        201,
        "exact slice only"
    );
    assert_eq!(
        svc(c.create_neighbor_nat(mk("60.0.0.1", 100, 1000, 2000)).await),
        0,
        "re-create"
    );
    let mut bad = mk("60.0.0.9", 100, 1, 2);
    bad.underlay_route = b"10.0.0.1".to_vec();
    assert_invalid(c.create_neighbor_nat(bad).await, "underlay_route");
    assert_invalid(
        c.create_neighbor_nat(mk("60.0.0.9", 100, 2, 2)).await,
        "max_port",
    );
}

fn lb_req(id: &str, vni: u32, addr: &str, ports: &[(u32, Protocol)]) -> CreateLoadBalancerRequest {
    CreateLoadBalancerRequest {
        loadbalancer_id: id.into(),
        loadbalanced_ip: Some(ip(addr)),
        vni,
        loadbalanced_ports: ports
            .iter()
            .map(|(p, pr)| LbPort {
                port: *p,
                protocol: *pr as i32,
            })
            .collect(),
        preferred_underlay_route: vec![],
    }
}

#[tokio::test]
async fn load_balancer_contract() {
    let mut f = started().await;
    let c = &mut f.client;
    let ports = [
        (80, Protocol::Tcp),
        (80, Protocol::Udp),
        (443, Protocol::Tcp),
    ];
    let r = ok(c
        .create_load_balancer(lb_req("lb1", 100, "70.0.0.1", &ports))
        .await);
    assert_eq!(code(&r.status), 0);
    let g = ok(c.get_load_balancer(get_lb_req("lb1")).await);
    assert_eq!(code(&g.status), 0);
    assert_eq!(
        (g.vni, g.loadbalanced_ip.clone(), g.underlay_route.clone()),
        (100, Some(ip4("70.0.0.1")), r.underlay_route.clone())
    );
    assert_eq!(
        g.loadbalanced_ports,
        lb_req("x", 0, "1.1.1.1", &ports).loadbalanced_ports
    );
    let l = ok(c.list_load_balancers(ListLoadBalancersRequest {}).await);
    assert_eq!(code(&l.status), 0);
    assert_eq!(l.loadbalancers.len(), 1);
    assert_eq!(
        (
            text(&l.loadbalancers[0].id).as_str(),
            l.loadbalancers[0].ports.len()
        ),
        ("lb1", 3)
    );
    assert_eq!(
        svc(c
            .create_load_balancer(lb_req("lb1", 100, "70.0.0.2", &[]))
            .await),
        202,
        "duplicate id"
    );
    assert_eq!(
        svc(c
            .create_load_balancer(lb_req("lb2", 100, "2001:db8::70", &[(53, Protocol::Udp)]))
            .await),
        0,
        "IPv6 LB"
    );

    // Port rules.
    assert_invalid(
        c.create_load_balancer(lb_req("lb3", 100, "70.0.0.3", &[(8, Protocol::Icmp)]))
            .await,
        "loadbalanced_ports.protocol",
    );
    assert_invalid(
        c.create_load_balancer(lb_req("lb3", 100, "70.0.0.3", &[(8, Protocol::Sctp)]))
            .await,
        "loadbalanced_ports.protocol",
    );
    assert_invalid(
        c.create_load_balancer(lb_req(
            "lb3",
            100,
            "70.0.0.3",
            &[(80, Protocol::Tcp), (80, Protocol::Tcp)],
        ))
        .await,
        "loadbalanced_ports",
    );
    assert_invalid(
        c.create_load_balancer(lb_req("lb3", 100, "70.0.0.3", &[(65536, Protocol::Tcp)]))
            .await,
        "loadbalanced_ports.port",
    );
    let fifteen: Vec<(u32, Protocol)> = (1..=15).map(|p| (p, Protocol::Tcp)).collect();
    let sixteen: Vec<(u32, Protocol)> = (1..=16).map(|p| (p, Protocol::Tcp)).collect();
    assert_invalid(
        c.create_load_balancer(lb_req("lb3", 100, "70.0.0.3", &sixteen))
            .await,
        "loadbalanced_ports",
    );
    assert_eq!(
        svc(c
            .create_load_balancer(lb_req("lb3", 100, "70.0.0.3", &fifteen))
            .await),
        0
    );

    // Targets.
    let tgt = |id: &str, a: &str| CreateLoadBalancerTargetRequest {
        loadbalancer_id: id.into(),
        target_ip: Some(ip(a)),
    };
    let dtgt = |id: &str, a: &str| DeleteLoadBalancerTargetRequest {
        loadbalancer_id: id.into(),
        target_ip: Some(ip(a)),
    };
    let ltgt = |id: &str| ListLoadBalancerTargetsRequest {
        loadbalancer_id: id.into(),
    };
    assert_eq!(
        svc(c.create_load_balancer_target(tgt("lb1", "fc00:2::1")).await),
        0
    );
    assert_eq!(
        svc(c.create_load_balancer_target(tgt("lb1", "fc00:2::1")).await),
        202
    );
    assert_eq!(
        svc(c.create_load_balancer_target(tgt("lb1", "10.0.0.1")).await),
        204
    );
    assert_eq!(
        svc(c
            .create_load_balancer_target(tgt("nope", "fc00:2::1"))
            .await),
        422
    );
    let lt = ok(c.list_load_balancer_targets(ltgt("lb1")).await);
    assert_eq!(
        (code(&lt.status), lt.target_ips),
        (0, vec![ip6("fc00:2::1")])
    );
    assert_eq!(svc(c.list_load_balancer_targets(ltgt("nope")).await), 422);
    for n in 2..=64 {
        assert_eq!(
            svc(c
                .create_load_balancer_target(tgt("lb1", &format!("fc00:2::{n:x}")))
                .await),
            0
        );
    }
    assert_eq!(
        svc(c.create_load_balancer_target(tgt("lb1", "fc00:3::1")).await),
        209,
        "more than 64 targets"
    );
    ok(c.create_load_balancer_target(tgt("lb2", "fc00:4::1")).await);
    assert_eq!(
        ok(c.list_load_balancer_targets(ltgt("")).await)
            .target_ips
            .len(),
        65,
        "empty id lists all"
    );
    assert_eq!(
        svc(c
            .delete_load_balancer_target(dtgt("lb1", "fc00:2::1"))
            .await),
        0
    );
    assert_eq!(
        svc(c
            .delete_load_balancer_target(dtgt("lb1", "fc00:2::1"))
            .await),
        421
    );
    assert_eq!(
        svc(c
            .delete_load_balancer_target(dtgt("nope", "fc00:2::1"))
            .await),
        422
    );
    assert_eq!(
        svc(c.create_load_balancer_target(tgt("lb1", "fc00:2::1")).await),
        0,
        "re-create"
    );

    // Delete, get after delete, double delete, re-create.
    assert_eq!(svc(c.delete_load_balancer(del_lb_req("lb1")).await), 0);
    assert_eq!(svc(c.get_load_balancer(get_lb_req("lb1")).await), 201);
    assert_eq!(svc(c.delete_load_balancer(del_lb_req("lb1")).await), 201);
    assert_eq!(svc(c.list_load_balancer_targets(ltgt("lb1")).await), 422);
    assert_eq!(
        svc(c
            .create_load_balancer(lb_req("lb1", 100, "70.0.0.1", &ports))
            .await),
        0
    );
    assert!(
        ok(c.list_load_balancer_targets(ltgt("lb1")).await)
            .target_ips
            .is_empty(),
        "targets went with the LB"
    );
}

fn fw_rule(id: &str) -> FirewallRule {
    FirewallRule {
        id: id.into(),
        direction: TrafficDirection::Ingress as i32,
        action: FirewallAction::Accept as i32,
        priority: 1000,
        source_prefix: Some(pfx("0.0.0.0", 0)),
        destination_prefix: Some(pfx("10.0.0.0", 8)),
        protocol_filter: Some(ProtocolFilter {
            filter: Some(protocol_filter::Filter::Tcp(TcpFilter {
                src_port_lower: -1,
                src_port_upper: -1,
                dst_port_lower: 80,
                dst_port_upper: 443,
            })),
        }),
    }
}

#[tokio::test]
async fn firewall_rule_contract() {
    let mut f = started().await;
    let c = &mut f.client;
    create_iface(c, "vm1", 100, "10.0.0.1", "net_tap2").await;
    let mk = |id: &str, rule: FirewallRule| CreateFirewallRuleRequest {
        interface_id: id.into(),
        rule: Some(rule),
    };
    let get = |id: &str, r: &str| GetFirewallRuleRequest {
        interface_id: id.into(),
        rule_id: r.into(),
    };
    let del = |id: &str, r: &str| DeleteFirewallRuleRequest {
        interface_id: id.into(),
        rule_id: r.into(),
    };

    let r = ok(c.create_firewall_rule(mk("vm1", fw_rule("r1"))).await);
    assert_eq!(code(&r.status), 0);
    assert_eq!(r.rule_id, b"r1", "the id the client sent, not garbage");
    let g = ok(c.get_firewall_rule(get("vm1", "r1")).await);
    assert_eq!(code(&g.status), 0);
    assert_eq!(g.rule, Some(fw_rule("r1")));
    let mut icmp = fw_rule("r2");
    icmp.direction = TrafficDirection::Egress as i32;
    icmp.source_prefix = Some(pfx("fd00::", 64));
    icmp.protocol_filter = Some(ProtocolFilter {
        filter: Some(protocol_filter::Filter::Icmp(IcmpFilter {
            icmp_type: 8,
            icmp_code: -1,
        })),
    });
    assert_eq!(svc(c.create_firewall_rule(mk("vm1", icmp)).await), 0);
    let mut any = fw_rule("r3");
    any.protocol_filter = None;
    assert_eq!(svc(c.create_firewall_rule(mk("vm1", any)).await), 0);
    let l = ok(c.list_firewall_rules(list_rules_req("vm1")).await);
    assert_eq!(code(&l.status), 0);
    assert_eq!(
        l.rules.iter().map(|r| text(&r.id)).collect::<Vec<_>>(),
        ["r1", "r2", "r3"]
    );

    assert_eq!(
        svc(c.create_firewall_rule(mk("vm1", fw_rule("r1"))).await),
        202,
        "duplicate id"
    );
    let mut drop = fw_rule("r4");
    drop.action = FirewallAction::Drop as i32;
    assert_eq!(svc(c.create_firewall_rule(mk("vm1", drop)).await), 441);
    assert_eq!(
        svc(c.create_firewall_rule(mk("nope", fw_rule("r4"))).await),
        205
    );
    assert_eq!(svc(c.get_firewall_rule(get("vm1", "r9")).await), 201);
    assert_eq!(svc(c.get_firewall_rule(get("nope", "r1")).await), 205);
    assert_eq!(
        svc(c.list_firewall_rules(list_rules_req("nope")).await),
        205
    );

    assert_eq!(svc(c.delete_firewall_rule(del("vm1", "r1")).await), 0);
    assert_eq!(svc(c.get_firewall_rule(get("vm1", "r1")).await), 201);
    assert_eq!(svc(c.delete_firewall_rule(del("vm1", "r1")).await), 201);
    assert_eq!(svc(c.delete_firewall_rule(del("nope", "r1")).await), 205);
    assert_eq!(
        svc(c.create_firewall_rule(mk("vm1", fw_rule("r1"))).await),
        0,
        "re-create"
    );

    // Bounds.
    let tcp = |sl: i32, su: i32, dl: i32, du: i32| {
        let mut r = fw_rule("rb");
        r.protocol_filter = Some(ProtocolFilter {
            filter: Some(protocol_filter::Filter::Tcp(TcpFilter {
                src_port_lower: sl,
                src_port_upper: su,
                dst_port_lower: dl,
                dst_port_upper: du,
            })),
        });
        r
    };
    assert_invalid(
        c.create_firewall_rule(mk("vm1", tcp(65536, 65536, -1, -1)))
            .await,
        "rule.protocol_filter.tcp.src_port_lower",
    );
    assert_invalid(
        c.create_firewall_rule(mk("vm1", tcp(-2, 5, -1, -1))).await,
        "rule.protocol_filter.tcp.src_port_lower",
    );
    assert_invalid(
        c.create_firewall_rule(mk("vm1", tcp(-1, -1, 443, 80)))
            .await,
        "rule.protocol_filter.tcp.dst_port_upper",
    );
    let mut udp = fw_rule("rb");
    udp.protocol_filter = Some(ProtocolFilter {
        filter: Some(protocol_filter::Filter::Udp(UdpFilter {
            src_port_lower: 10,
            src_port_upper: 5,
            dst_port_lower: -1,
            dst_port_upper: -1,
        })),
    });
    assert_invalid(
        c.create_firewall_rule(mk("vm1", udp)).await,
        "rule.protocol_filter.udp.src_port_upper",
    );
    let mut icmp_bad = fw_rule("rb");
    icmp_bad.protocol_filter = Some(ProtocolFilter {
        filter: Some(protocol_filter::Filter::Icmp(IcmpFilter {
            icmp_type: 256,
            icmp_code: 0,
        })),
    });
    assert_invalid(
        c.create_firewall_rule(mk("vm1", icmp_bad)).await,
        "rule.protocol_filter.icmp.icmp_type",
    );
    let mut long = fw_rule("rb");
    long.source_prefix = Some(pfx("10.0.0.0", 33));
    assert_invalid(
        c.create_firewall_rule(mk("vm1", long)).await,
        "rule.source_prefix.length",
    );
    let mut prio = fw_rule("rb");
    prio.priority = 70000;
    assert_invalid(
        c.create_firewall_rule(mk("vm1", prio)).await,
        "rule.priority",
    );
    let mut dir = fw_rule("rb");
    dir.direction = 5;
    assert_invalid(
        c.create_firewall_rule(mk("vm1", dir)).await,
        "rule.direction",
    );
    assert_invalid(
        c.create_firewall_rule(mk("vm1", fw_rule(""))).await,
        "rule.id",
    );
    assert_invalid(
        c.create_firewall_rule(CreateFirewallRuleRequest {
            interface_id: "vm1".into(),
            rule: None,
        })
        .await,
        "rule",
    );
    assert_invalid(c.get_firewall_rule(get("vm1", "")).await, "rule_id");
}

#[tokio::test]
async fn deleting_an_interface_removes_everything_attached() {
    let mut f = started().await;
    let c = &mut f.client;
    create_iface(c, "vm1", 100, "10.0.0.1", "net_tap2").await;
    create_iface(c, "keep", 100, "10.0.0.2", "net_tap3").await;
    let before = f.dp.counts();
    let c = &mut f.client;
    ok(c.create_vip(vip_req("vm1", "80.0.0.1")).await);
    ok(c.create_nat(nat_req("vm1", "80.0.0.2", 0, 100)).await);
    ok(c.create_prefix(prefix_req("vm1", "10.5.0.0", 16)).await);
    ok(
        c.create_load_balancer_prefix(lb_prefix_req("vm1", "10.6.0.0", 16))
            .await,
    );
    ok(c.create_firewall_rule(CreateFirewallRuleRequest {
        interface_id: "vm1".into(),
        rule: Some(fw_rule("r1")),
    })
    .await);
    assert_eq!(svc(c.delete_interface(del_iface_req("vm1")).await), 0);
    let after = f.dp.counts();
    let mut want = before.clone();
    want.interfaces -= 1;
    want.local_routes -= 1;
    want.underlays -= 1;
    assert_eq!(after, want);
    let c = &mut f.client;
    assert_eq!(
        local_nats(c, "0.0.0.0").await,
        (0, vec![]),
        "no NAT entry left behind"
    );
    assert!(
        ok(c.list_prefixes(ListPrefixesRequest {
            interface_id: vec![]
        })
        .await)
        .prefixes
        .is_empty()
    );
    // Everything can be created again, by another interface too.
    assert_eq!(
        create_route(c, 100, "10.5.0.0", 16, "fc00:2::1").await,
        0,
        "the alias prefix route is gone"
    );
    assert_eq!(svc(c.create_vip(vip_req("keep", "80.0.0.1")).await), 0);
    assert_eq!(
        svc(c.create_nat(nat_req("keep", "80.0.0.2", 0, 100)).await),
        0
    );
    create_iface(c, "vm1", 100, "10.0.0.1", "net_tap2").await;
    let rules = ok(c.list_firewall_rules(list_rules_req("vm1")).await);
    assert!(rules.rules.is_empty());
}

#[tokio::test]
async fn capture_is_never_active() {
    let mut f = started().await;
    let c = &mut f.client;
    let cfg = CaptureConfig {
        sink_node_ip: Some(ip6("fc00:9::1")),
        udp_src_port: 3000,
        udp_dst_port: 3001,
        interfaces: vec![CapturedInterface {
            interface_type: CaptureInterfaceType::SingleVf as i32,
            filter: vec![],
            spec: Some(captured_interface::Spec::VfName(b"vm1".to_vec())),
        }],
    };
    assert_eq!(
        svc(c
            .capture_start(CaptureStartRequest {
                capture_config: Some(cfg.clone()),
            })
            .await),
        211
    );
    assert_eq!(svc(c.capture_stop(CaptureStopRequest {}).await), 211);
    let status = ok(c.capture_status(CaptureStatusRequest {}).await);
    assert_eq!((code(&status.status), status.is_active), (0, false));
    let mut bad = cfg;
    bad.udp_src_port = 70000;
    assert_invalid(
        c.capture_start(CaptureStartRequest {
            capture_config: Some(bad),
        })
        .await,
        "capture_config.udp_src_port",
    );
}

#[tokio::test]
async fn malformed_requests_are_rejected_and_leave_state_untouched() {
    let mut f = started().await;
    let c = &mut f.client;
    create_iface(c, "vm1", 100, "10.0.0.1", "net_tap2").await;
    ok(
        c.create_load_balancer(lb_req("lb1", 100, "70.0.0.1", &[(80, Protocol::Tcp)]))
            .await,
    );
    let before = f.dp.counts();
    let c = &mut f.client;
    let long_id = "x".repeat(64);

    let mut both_off = iface_req("vm2", 100, "0.0.0.0", "::", "net_tap3");
    assert_invalid(
        c.create_interface(both_off.clone()).await,
        "ipv4_config.primary_address",
    );
    both_off.ipv4_config = None;
    assert_invalid(
        c.create_interface(both_off).await,
        "ipv4_config.primary_address",
    );
    assert_invalid(
        c.create_interface(iface_req("vm2", 100, "", "::", "net_tap3"))
            .await,
        "ipv4_config.primary_address",
    );
    assert_invalid(
        c.create_interface(iface_req("vm2", 100, "10.0.0.2", "", "net_tap3"))
            .await,
        "ipv6_config.primary_address",
    );
    assert_invalid(
        c.create_interface(iface_req("vm2", 100, "fd00::2", "::", "net_tap3"))
            .await,
        "ipv4_config.primary_address",
    );
    assert_invalid(
        c.create_interface(iface_req("vm2", 100, "10.0.0.2", "10.0.0.3", "net_tap3"))
            .await,
        "ipv6_config.primary_address",
    );
    assert_invalid(
        c.create_interface(iface_req(&long_id, 100, "10.0.0.2", "::", "net_tap3"))
            .await,
        "interface_id",
    );
    assert_invalid(
        c.create_interface(iface_req("", 100, "10.0.0.2", "::", "net_tap3"))
            .await,
        "interface_id",
    );
    assert_invalid(
        c.create_interface(iface_req("vm 2", 100, "10.0.0.2", "::", "net_tap3"))
            .await,
        "interface_id",
    );
    assert_invalid(
        c.create_interface(iface_req("vm2", 100, "10.0.0.2", "::", ""))
            .await,
        "device_name",
    );
    let mut bad_type = iface_req("vm2", 100, "10.0.0.2", "::", "net_tap3");
    bad_type.interface_type = 9;
    assert_invalid(c.create_interface(bad_type).await, "interface_type");
    let mut bad_pxe = iface_req("vm2", 100, "10.0.0.2", "::", "net_tap3");
    bad_pxe.pxe_config = Some(PxeConfig {
        next_server: "not-an-ip".into(),
        boot_filename: "boot".into(),
    });
    assert_invalid(c.create_interface(bad_pxe).await, "pxe_config.next_server");
    let mut bad_utf8 = iface_req("vm2", 100, "10.0.0.2", "::", "net_tap3");
    bad_utf8.ipv4_config = Some(IpConfig {
        primary_address: vec![0xff, 0xfe],
    });
    assert_invalid(
        c.create_interface(bad_utf8).await,
        "ipv4_config.primary_address",
    );
    assert_invalid(
        c.get_interface(GetInterfaceRequest {
            interface_id: long_id.clone().into(),
        })
        .await,
        "interface_id",
    );
    assert_invalid(
        c.delete_interface(DeleteInterfaceRequest {
            interface_id: vec![],
        })
        .await,
        "interface_id",
    );
    assert_invalid(
        c.create_vip(CreateVipRequest {
            interface_id: "vm1".into(),
            vip_ip: Some(IpAddress {
                ipver: 3,
                address: b"1.1.1.1".to_vec(),
            }),
            ..Default::default()
        })
        .await,
        "vip_ip.ipver",
    );
    assert_invalid(
        c.create_nat(nat_req("vm1", "1.1.1.1", 5, 1)).await,
        "max_port",
    );
    assert_invalid(
        c.create_prefix(prefix_req("vm1", "10.7.0.0", 1000)).await,
        "prefix.length",
    );
    assert_invalid(
        c.create_load_balancer_prefix(CreateLoadBalancerPrefixRequest {
            interface_id: "vm1".into(),
            prefix: Some(pfx("10.7.0.0", 16)),
            preferred_underlay_route: b"fc00:9::8000:0:1".to_vec(),
        })
        .await,
        "preferred_underlay_route",
    );
    assert_invalid(
        c.create_route(CreateRouteRequest {
            vni: 100,
            route: Some(route("10.7.0.0", 16, "", 100)),
        })
        .await,
        "route.nexthop_address.address",
    );
    assert_invalid(
        c.delete_route(DeleteRouteRequest {
            vni: 100,
            route: Some(route("bogus", 16, "::", 100)),
        })
        .await,
        "route.prefix.ip.address",
    );
    assert_invalid(
        c.create_load_balancer(lb_req(&long_id, 100, "70.0.0.2", &[]))
            .await,
        "loadbalancer_id",
    );
    assert_invalid(
        c.create_load_balancer(lb_req("lb2", 100, "70.0.0", &[]))
            .await,
        "loadbalanced_ip.address",
    );
    assert_invalid(
        c.create_load_balancer_target(CreateLoadBalancerTargetRequest {
            loadbalancer_id: "lb1".into(),
            target_ip: Some(ip6("fc00::g")),
        })
        .await,
        "target_ip.address",
    );
    assert_invalid(
        c.delete_load_balancer(DeleteLoadBalancerRequest {
            loadbalancer_id: vec![],
        })
        .await,
        "loadbalancer_id",
    );
    assert_invalid(
        c.reset_vni(ResetVniRequest {
            vni: 100,
            r#type: -1,
        })
        .await,
        "type",
    );
    assert_invalid(
        c.list_local_nats(ListLocalNatsRequest { nat_ip: None })
            .await,
        "nat_ip",
    );
    assert_invalid(
        c.list_firewall_rules(ListFirewallRulesRequest {
            interface_id: vec![],
        })
        .await,
        "interface_id",
    );
    assert_invalid(
        c.list_prefixes(ListPrefixesRequest {
            interface_id: long_id.into(),
        })
        .await,
        "interface_id",
    );

    assert_eq!(f.dp.counts(), before, "rejected requests changed nothing");
    assert_eq!(list_routes(&mut f.client, 100).await, (0, vec![]));
}

#[tokio::test]
async fn status_service_counts_objects_per_kind() {
    use ferrinet_proto::dataplane_status::v1::{CountsRequest, status_client::StatusClient};
    let mut f = start().await;
    let mut status = StatusClient::new(f.channel.clone());
    // Not gated by Initialize: an idle dataplane can be inspected.
    let idle = ok(status.counts(CountsRequest {}).await);
    assert!(idle.counts.iter().all(|c| c.count == 0));
    f.client
        .initialize(InitializeRequest {})
        .await
        .expect("init");
    create_iface(&mut f.client, "vm1", 100, "10.0.0.1", "net_tap2").await;
    assert_eq!(
        create_route(&mut f.client, 100, "10.9.0.0", 16, "fc00:2::1").await,
        0
    );
    let counts = ok(status.counts(CountsRequest {}).await);
    let get = |k: &str| counts.counts.iter().find(|c| c.kind == k).map(|c| c.count);
    assert_eq!(get("interfaces"), Some(1));
    assert_eq!(get("vnis"), Some(1));
    assert_eq!(get("routes"), Some(1));
    assert_eq!(get("local_routes"), Some(1));
    assert_eq!(get("underlays"), Some(1));
    f.shutdown().await;
}
