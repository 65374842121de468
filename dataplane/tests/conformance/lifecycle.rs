//! Initialization, health, version, interfaces, underlay addresses and the VNI lifecycle.

use crate::common::*;
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
