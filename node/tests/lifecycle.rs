//! The node in-process against the software dataplane: objects created, changed and deleted
//! through the ApiActor end up exactly so in the dataplane (read through the dpservice API),
//! every sub-feature shows as its own condition, bad input changes nothing.

#![allow(clippy::unwrap_used)]

mod kit;

use ferrinet_node::api::ApiError;
use ferrinet_node::daemon::Node;
use ferrinet_proto::dpservice::v1 as dp;
use ferrinet_proto::node::v1 as pb;
use kit::*;

fn condition<'a>(s: &'a pb::NetworkInterfaceStatus, t: &str) -> &'a pb::Condition {
    s.conditions
        .iter()
        .find(|c| c.r#type == t)
        .unwrap_or_else(|| panic!("no condition {t} in {s:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interface_lifecycle_with_every_feature() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&settings(dir.path(), "n1")).await.unwrap();
    node.ready().await;
    create(&node, network("blue", 4711)).await.unwrap();
    let mut spec = interface("web", "blue", &["10.0.0.5"]);
    spec.virtual_ip = "203.0.113.20".into();
    spec.nat = Some(pb::NatSpec {
        ip: "203.0.113.21".into(),
        port: 1024,
        end_port: 2048,
    });
    spec.prefixes = vec!["10.0.1.0/28".into()];
    spec.load_balancer_targets = vec!["10.0.0.100/32".into()];
    spec.firewall_rules = vec![pb::FirewallRule {
        id: "allow-https".into(),
        direction: pb::Direction::Ingress.into(),
        action: pb::Action::Accept.into(),
        priority: 1000,
        protocol_match: Some(pb::ProtocolMatch {
            protocol: pb::Protocol::Tcp.into(),
            icmp: None,
            port_range: Some(pb::PortMatch {
                dst_port: Some(443),
                end_dst_port: Some(443),
                ..Default::default()
            }),
        }),
        ..Default::default()
    }];
    spec.hostname = "web".into();
    create(&node, iface_object("web", spec.clone()))
        .await
        .unwrap();
    let o = until_phase(&node, pb::Kind::NetworkInterface, "web", pb::Phase::Ready).await;
    let st = iface_status(&o);
    for t in [
        "Interface",
        "VirtualIP",
        "NAT",
        "Prefixes",
        "LoadBalancerTargets",
        "Firewall",
        "RoutesAnnounced",
    ] {
        assert!(condition(&st, t).ok, "{t}: {st:?}");
    }
    assert_eq!(st.vni, 4711);
    assert_eq!(st.tap_device, "dtapvf_0");
    assert_eq!(st.device_name, "net_tap2");
    assert!(!st.underlay_ip.is_empty() && !st.virtual_ip_underlay.is_empty());
    until_dp_interfaces(&node, &[("web", 4711, "10.0.0.5", "net_tap2")]).await;
    let mut c = dataplane(&node).await;
    let vip = c
        .get_vip(dp::GetVipRequest {
            interface_id: b"web".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(vip.vip_ip.unwrap().address, b"203.0.113.20");
    let rules = c
        .list_firewall_rules(dp::ListFirewallRulesRequest {
            interface_id: b"web".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rules.rules.len(), 1);

    // Changes are applied: a new IP re-creates the interface on the same VF; the VIP goes.
    spec.ips = vec!["10.0.0.6".into()];
    spec.virtual_ip = String::new();
    let updated = update(&node, iface_object("web", spec.clone()))
        .await
        .unwrap();
    let generation = updated.object.as_ref().map(|_| 2).unwrap();
    until(
        &node,
        pb::Kind::NetworkInterface,
        "web",
        "new spec ready",
        |o| {
            let s = iface_status(o);
            s.observed_generation == generation && s.phase == pb::Phase::Ready as i32
        },
    )
    .await;
    until_dp_interfaces(&node, &[("web", 4711, "10.0.0.6", "net_tap2")]).await;
    let vip = c
        .get_vip(dp::GetVipRequest {
            interface_id: b"web".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_ne!(vip.status.unwrap().code, 0, "the VIP is gone");
    let prefixes = c
        .list_prefixes(dp::ListPrefixesRequest {
            interface_id: b"web".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        prefixes.prefixes.len(),
        1,
        "prefixes re-applied after re-creation"
    );

    // A network in use cannot be deleted.
    assert!(matches!(
        delete(&node, pb::Kind::Network, "blue").await,
        Err(ApiError::FailedPrecondition(_))
    ));
    delete(&node, pb::Kind::NetworkInterface, "web")
        .await
        .unwrap();
    until_dp_interfaces(&node, &[]).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while get(&node, pb::Kind::NetworkInterface, "web").await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "deletion did not finish"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    delete(&node, pb::Kind::Network, "blue").await.unwrap();
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_feature_is_its_own_condition() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&settings(dir.path(), "n1")).await.unwrap();
    node.ready().await;
    create(&node, network("blue", 10)).await.unwrap();
    let mut a = interface("a", "blue", &["10.0.0.1"]);
    a.nat = Some(pb::NatSpec {
        ip: "198.51.100.7".into(),
        port: 1024,
        end_port: 2048,
    });
    create(&node, iface_object("a", a)).await.unwrap();
    until_phase(&node, pb::Kind::NetworkInterface, "a", pb::Phase::Ready).await;
    // dpservice refuses a VIP equal to an existing NAT IP (DNAT_EXISTS).
    let mut b = interface("b", "blue", &["10.0.0.2"]);
    b.virtual_ip = "198.51.100.7".into();
    create(&node, iface_object("b", b)).await.unwrap();
    let o = until_phase(&node, pb::Kind::NetworkInterface, "b", pb::Phase::Error).await;
    let st = iface_status(&o);
    assert!(condition(&st, "Interface").ok);
    let vip = condition(&st, "VirtualIP");
    assert!(!vip.ok);
    assert_eq!(vip.reason, "DataplaneError");
    assert!(vip.message.contains("DNAT_EXISTS"), "{}", vip.message);
    // The other interface is unaffected.
    let a = get(&node, pb::Kind::NetworkInterface, "a").await.unwrap();
    assert_eq!(phase(&a), pb::Phase::Ready);
    // The other way round: a NAT IP equal to an existing VIP fails only the NAT condition.
    let mut v = interface("v", "blue", &["10.0.0.3"]);
    v.virtual_ip = "198.51.100.8".into();
    create(&node, iface_object("v", v)).await.unwrap();
    until_phase(&node, pb::Kind::NetworkInterface, "v", pb::Phase::Ready).await;
    let mut n = interface("n", "blue", &["10.0.0.4"]);
    n.nat = Some(pb::NatSpec {
        ip: "198.51.100.8".into(),
        port: 1024,
        end_port: 2048,
    });
    create(&node, iface_object("n", n)).await.unwrap();
    let o = until_phase(&node, pb::Kind::NetworkInterface, "n", pb::Phase::Error).await;
    let st = iface_status(&o);
    assert!(condition(&st, "Interface").ok && condition(&st, "VirtualIP").ok);
    let nat = condition(&st, "NAT");
    assert!(!nat.ok && nat.message.contains("DNAT_EXISTS"), "{nat:?}");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_names_the_field_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&settings(dir.path(), "n1")).await.unwrap();
    node.ready().await;
    create(&node, network("blue", 10)).await.unwrap();
    let cases = [
        (interface("x", "blue", &["10.0.0.300"]), "spec.ips[0]"),
        (interface("x", "blue", &[]), "spec.ips"),
        (
            interface("x", "blue", &["10.0.0.1", "10.0.0.2"]),
            "spec.ips[1]",
        ),
        (interface("x", "Bad Name!", &["10.0.0.1"]), "spec.network"),
    ];
    for (spec, field) in cases {
        match create(&node, iface_object("x", spec)).await {
            Err(ApiError::Invalid(e)) => assert_eq!(e.field, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    match create(&node, network("n", 0)).await {
        Err(ApiError::Invalid(e)) => assert_eq!(e.field, "spec.id"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        create(&node, network("blue", 11)).await,
        Err(ApiError::AlreadyExists { .. })
    ));
    let (objects, _) = ask(&node, |p| {
        ferrinet_node::api::ApiMsg::List(pb::Kind::Unspecified, p)
    })
    .await;
    assert_eq!(objects.len(), 1, "only the network exists");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_balancer_is_programmed_and_re_created_on_change() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&settings(dir.path(), "n1")).await.unwrap();
    node.ready().await;
    create(&node, network("blue", 10)).await.unwrap();
    // Created before its network exists: pending, then programmed once it does.
    create(&node, load_balancer("lb", "green", "10.0.0.100", true))
        .await
        .unwrap();
    until_phase(&node, pb::Kind::LoadBalancer, "lb", pb::Phase::Error).await;
    create(&node, network("green", 20)).await.unwrap();
    until_phase(&node, pb::Kind::LoadBalancer, "lb", pb::Phase::Ready).await;
    let mut c = dataplane(&node).await;
    let got = c
        .get_load_balancer(dp::GetLoadBalancerRequest {
            loadbalancer_id: b"lb".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.vni, 20);
    update(&node, load_balancer("lb", "green", "10.0.0.101", true))
        .await
        .unwrap();
    until(&node, pb::Kind::LoadBalancer, "lb", "new ip", |_| true).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let got = c
            .get_load_balancer(dp::GetLoadBalancerRequest {
                loadbalancer_id: b"lb".to_vec(),
            })
            .await
            .unwrap()
            .into_inner();
        if got.loadbalanced_ip.map(|i| i.address) == Some(b"10.0.0.101".to_vec()) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "load balancer not re-created"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interface_and_prefix_failures_show_as_their_conditions() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&settings(dir.path(), "n1")).await.unwrap();
    // Before the dataplane is initialized, an interface is in Error for "not initialized",
    // which is not the failure this test waits for.
    node.ready().await;
    create(&node, network("blue", 10)).await.unwrap();
    // A prefix equal to the interface's own address: dpservice answers ROUTE_EXISTS for the
    // prefix only; the interface and its other prefix are programmed.
    let mut a = interface("a", "blue", &["10.0.0.1"]);
    a.prefixes = vec!["10.0.0.1/32".into(), "10.0.9.0/24".into()];
    create(&node, iface_object("a", a)).await.unwrap();
    let o = until_phase(&node, pb::Kind::NetworkInterface, "a", pb::Phase::Error).await;
    let st = iface_status(&o);
    assert!(condition(&st, "Interface").ok);
    assert!(condition(&st, "Firewall").ok);
    let p = condition(&st, "Prefixes");
    assert!(!p.ok && p.message.contains("ROUTE_EXISTS"), "{p:?}");
    let mut c = dataplane(&node).await;
    let listed = c
        .list_prefixes(dp::ListPrefixesRequest {
            interface_id: b"a".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.prefixes.len(), 1, "the good prefix is programmed");

    // A second interface with the same IP in the VNI: the interface itself fails, and its
    // features say why they wait; fixing the spec makes it Ready.
    create(
        &node,
        iface_object("b", interface("b", "blue", &["10.0.0.1"])),
    )
    .await
    .unwrap();
    let o = until_phase(&node, pb::Kind::NetworkInterface, "b", pb::Phase::Error).await;
    let st = iface_status(&o);
    let i = condition(&st, "Interface");
    assert!(!i.ok && i.message.contains("ROUTE_EXISTS"), "{i:?}");
    assert_eq!(condition(&st, "VirtualIP").reason, "InterfaceNotReady");
    update(
        &node,
        iface_object("b", interface("b", "blue", &["10.0.0.2"])),
    )
    .await
    .unwrap();
    until_phase(&node, pb::Kind::NetworkInterface, "b", pb::Phase::Ready).await;
    node.shutdown().await;
}
