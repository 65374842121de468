//! Interface deletion, capture, malformed requests, the status service.

use crate::common::*;
use crate::firewall::fw_rule;
use crate::load_balancers::lb_req;
use crate::nat::local_nats;

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
